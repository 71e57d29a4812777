package site

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

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
		}, s.db, feed.Options{
			Site: s.cfg.Site, Log: s.log, Metrics: s.met, Kick: kick,
		}))
		s.feedPeers = append(s.feedPeers, p.Name)
	}
	return nil
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

func (s *Site) Peers(_ context.Context) ([]admin.PeerStatus, error) {
	var out []admin.PeerStatus
	for _, f := range s.feeders {
		st := f.Status()
		out = append(out, admin.PeerStatus{Name: st.Name, Addr: st.Addr, Connected: st.Connected, Streaming: st.Streaming,
			Depth: st.Depth, Sent: st.Sent, Refused: st.Refused, Deferred: st.Deferred,
			LastSuccess: st.LastSuccess, LastError: st.LastError, LastErrorTime: st.LastErrorTime})
	}
	return out, nil
}
