package site

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"github.com/dst-traps/dst/internal/admin"
	"github.com/dst-traps/dst/internal/config"
	"github.com/dst-traps/dst/internal/feed"
)

// buildFeeds makes one feeder per peer that has an outgoing feed.
func (s *Site) buildFeeds() error {
	for _, p := range s.cfg.Peers {
		if p.Feed.IsZero() {
			continue
		}
		tc, err := clientTLS(p, s.cert)
		if err != nil {
			return err
		}
		kick := make(chan struct{}, 1)
		s.feedKicks = append(s.feedKicks, kick)
		s.feeders = append(s.feeders, feed.New(feed.Peer{
			Name: p.Name, Addr: p.Feed.String(), TLS: string(p.TLS), TLSConfig: tc,
			Username: p.Username, Password: p.Password, LocalAddr: p.Source,
			CheckSize: checkSize(p),
		}, s.db, feed.Options{
			Site: s.cfg.Site, Log: s.log, Metrics: s.met, Kick: kick,
			PeerHas: s.peersOffered().For(p.Name),
		}))
		s.feedPeers = append(s.feedPeers, p.Name)
	}
	return nil
}

// peersOffered is what the NNTP server records and the feeds consult:
// the articles each peer offered lately.
func (s *Site) peersOffered() *feed.Offered {
	if s.offered == nil {
		s.offered = feed.NewOffered()
	}
	return s.offered
}

// clientTLS is the TLS configuration of an outgoing feed: the peer's server
// certificate verified against its configured CA (or the system roots),
// and this site's certificate as client certificate.
func clientTLS(p config.Peer, cert *certificate) (*tls.Config, error) {
	if p.TLS == config.PeerTLSNone {
		return nil, nil
	}
	tc := &tls.Config{ServerName: p.Feed.Host, MinVersion: tls.VersionTLS12}
	if p.ServerName != "" {
		tc.ServerName = p.ServerName
	}
	if p.CA != "" {
		pem, err := os.ReadFile(p.CA)
		if err != nil {
			return nil, fmt.Errorf("peer %q ca: %w", p.Name, err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("peer %q ca %s: no PEM certificate in it", p.Name, p.CA)
		}
	}
	if cert != nil {
		tc.GetClientCertificate = cert.getClient
	}
	return tc, nil
}

// Peers describes every configured peer: the outgoing feed to it, if
// any, and what it fed this site, if it may.
func (s *Site) Peers(_ context.Context) ([]admin.PeerStatus, error) {
	var out []admin.PeerStatus
	for _, p := range s.cfg.Peers {
		ps := admin.PeerStatus{Name: p.Name}
		if f := s.feederOf(p.Name); f != nil {
			st := f.Status()
			ps = admin.PeerStatus{Name: st.Name, Addr: st.Addr, Connected: st.Connected, Streaming: st.Streaming,
				Depth: st.Depth, Sent: st.Sent, Refused: st.Refused, Deferred: st.Deferred, Skipped: st.Skipped,
				LastSuccess: st.LastSuccess, LastError: st.LastError, LastErrorTime: st.LastErrorTime,
				Outgoing: true, TLSMode: tlsModeName(st.TLSMode), Refusals: refusalCounts(st.Refusals), Kept: st.Kept, RetryAt: st.RetryAt}
			if st.TLS.State != "" {
				t := tlsState(st.TLS)
				ps.TLS = &t
			}
		}
		if len(p.Addresses) > 0 && s.incoming != nil {
			ps.Incoming = s.incoming.status(p.Name)
		}
		out = append(out, ps)
	}
	return out, nil
}

func tlsModeName(m string) string {
	if m == feed.TLSNone {
		return "none"
	}
	return m
}

// feederOf is the feed to peer, or nil.
func (s *Site) feederOf(peer string) *feed.Feeder {
	for i, name := range s.feedPeers {
		if name == peer {
			return s.feeders[i]
		}
	}
	return nil
}

// feedFor is the feed to peer, or a request error that says what is wrong.
func (s *Site) feedFor(peer string) (*feed.Feeder, error) {
	if f := s.feederOf(peer); f != nil {
		return f, nil
	}
	for _, p := range s.cfg.Peers {
		if p.Name == peer {
			return nil, &admin.RequestError{Err: fmt.Errorf("peer %q has no outgoing feed (no feed address in its [[peer]] table)", peer)}
		}
	}
	return nil, &admin.RequestError{Err: fmt.Errorf("no peer %q is configured; dstctl peers lists them", peer)}
}

// Refeed offers peer again the reports it refused for a keyring or clock
// reason, kept since.
func (s *Site) Refeed(_ context.Context, peer, reason string) (admin.RefeedResult, error) {
	f, err := s.feedFor(peer)
	if err != nil {
		return admin.RefeedResult{}, err
	}
	if reason != "all" && !feed.Fixable(reason) {
		return admin.RefeedResult{}, &admin.RequestError{Err: fmt.Errorf("reason %q: use keyring, clock or all (other refusals are not kept)", reason)}
	}
	n, err := f.Refeed(reason)
	if err != nil {
		return admin.RefeedResult{}, err
	}
	s.log.Info("refused reports offered again", "by", "dstctl", "peer", peer, "reason", reason, "reports", n)
	return admin.RefeedResult{Peer: peer, Reason: reason, Refed: n, Kept: f.Status().Kept}, nil
}

// Flush makes the feed to peer try now.
func (s *Site) Flush(_ context.Context, peer string) (admin.FlushResult, error) {
	f, err := s.feedFor(peer)
	if err != nil {
		return admin.FlushResult{}, err
	}
	n, err := f.Flush()
	if err != nil {
		return admin.FlushResult{}, err
	}
	return admin.FlushResult{Peer: peer, Due: n}, nil
}

// TestPeer makes a round trip to peer without a report.
func (s *Site) TestPeer(ctx context.Context, peer string) (admin.TestResult, error) {
	f, err := s.feedFor(peer)
	if err != nil {
		return admin.TestResult{}, err
	}
	r := f.Test(ctx)
	s.log.Info("peer tested", "by", "dstctl", "peer", peer, "ok", r.OK, "duration", r.Duration.Round(time.Millisecond))
	out := admin.TestResult{Peer: r.Peer, Addr: r.Addr, OK: r.OK, DurationMS: ms(r.Duration), Streaming: r.Streaming,
		Steps: []admin.TestStep{}}
	if r.TLS.State != "" {
		t := tlsState(r.TLS)
		out.TLS = &t
	}
	for _, st := range r.Steps {
		out.Steps = append(out.Steps, admin.TestStep{Step: st.Step, Detail: st.Detail, DurationMS: ms(st.Duration), Error: st.Err})
	}
	return out, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

var _ admin.PeerControl = (*Site)(nil)

// checkSize turns [[peer]] check_size into feed.Peer.CheckSize, where zero
// means the default and a negative size CHECK for every report.
func checkSize(p config.Peer) int {
	switch {
	case p.CheckSize == nil:
		return 0
	case *p.CheckSize == 0:
		return -1
	default:
		return *p.CheckSize
	}
}
