package site

import (
	"bytes"
	"crypto/subtle"
	"encoding/pem"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/dst-traps/dst/internal/ingest"
	"github.com/dst-traps/dst/internal/nntp"
)

// peerAuth is what an incoming [[peer]] must show to feed: one of its
// addresses and, if it has any, its certificate or its AUTHINFO user.
type peerAuth struct {
	name     string
	addrs    []netip.Prefix
	needCert bool   // it must present cert (client_cert)
	cert     []byte // DER; nil when client_cert could not be read: nothing matches
	user     string // it may authenticate as user instead (auth_user)
}

// peersAt names the peers whose addresses contain a: nntp.Pools' Peers.
func peersAt(peers []peerAuth, a netip.Addr) []string {
	var names []string
	for _, p := range peers {
		for _, pr := range p.addrs {
			if pr.Contains(a) {
				names = append(names, p.name)
				break
			}
		}
	}
	return names
}

// authorize is the NNTP server's Authorize, without its closure: local
// submission is allowed on the Unix socket and from postAllow; feeding
// from a peer's addresses, and, for a peer that requires it, with its
// client certificate or its AUTHINFO user (either will do). The server
// asks again after STARTTLS and AUTHINFO, with s.TLS and s.User filled in.
// A peer's address that has not yet shown what it must is let in with no
// grants, so that STARTTLS or AUTHINFO may still prove who it is.
func authorize(peers []peerAuth, postAllow []netip.Prefix, s nntp.Session) (nntp.Session, bool) {
	if s.Unix {
		s.CanPost = true
		return s, true
	}
	if s.Remote == nil {
		return s, false
	}
	ap, err := netip.ParseAddrPort(s.Remote.String())
	if err != nil {
		return s, false
	}
	ip := ap.Addr().Unmap()
	for _, p := range postAllow {
		if p.Contains(ip) {
			s.CanPost = true
		}
	}
	mustAuthenticate := false
	for _, p := range peers {
		for _, a := range p.addrs {
			if !a.Contains(ip) || s.CanFeed {
				continue
			}
			certOK := p.cert != nil && s.TLS != nil && len(s.TLS.PeerCertificates) > 0 &&
				bytes.Equal(s.TLS.PeerCertificates[0].Raw, p.cert)
			userOK := p.user != "" && s.User == p.user
			if (!p.needCert && p.user == "") || certOK || userOK {
				s.CanFeed, s.Peer = true, p.name
			} else {
				mustAuthenticate = true
			}
		}
	}
	return s, s.CanPost || s.CanFeed || mustAuthenticate
}

// incomingPeers reads the [[peer]] tables' incoming side. A client_cert
// that cannot be read fails closed: the peer cannot feed until it is fixed.
func (s *Site) incomingPeers() []peerAuth {
	var peers []peerAuth
	for _, p := range s.cfg.Peers {
		pe := peerAuth{name: p.Name, addrs: p.Addresses.Netip(), needCert: p.ClientCert != "", user: p.AuthUser}
		if pe.needCert {
			b, err := os.ReadFile(p.ClientCert)
			if blk, _ := pem.Decode(b); err == nil && blk != nil && blk.Type == "CERTIFICATE" {
				pe.cert = blk.Bytes
			} else {
				s.log.Error("peer client_cert unreadable; the peer cannot feed (check the file is a PEM certificate dstd's user can read, then restart dstd)",
					"peer", p.Name, "file", p.ClientCert, "err", err)
			}
		}
		peers = append(peers, pe)
	}
	return peers
}

func (s *Site) nntpServer() *nntp.Server {
	postAllow := s.cfg.NNTP.PostAllow.Netip()
	peers := s.incomingPeers()
	s.incoming = newIncoming()
	srv := &nntp.Server{
		Handler:  countingHandler{ingest.NNTPHandler(s.in), s.incoming},
		Log:      s.log.With("component", "nntp"),
		Hostname: s.cfg.Site,
		Limits: nntp.Limits{
			MaxArticleBytes:  s.cfg.NNTP.MaxArticleBytes,
			IdleTimeout:      s.cfg.NNTP.IdleTimeout.Duration,
			HandshakeTimeout: s.cfg.NNTP.TLSHandshakeTimeout.Duration,
		},
		// A pool per class, decided from the address before anything
		// is read (or a TLS handshake done): a flood of connections from
		// one class, one address or one local user takes its own share,
		// never dstc's on the socket nor the peers'.
		Classify: (&nntp.Pools{
			MaxLocal:        s.cfg.NNTP.MaxLocalConnections,
			MaxLocalPerUser: s.cfg.NNTP.MaxLocalConnectionsPerUser,
			MaxPeer:         s.cfg.NNTP.MaxPeerConnections,
			MaxOther:        s.cfg.NNTP.MaxConnections,
			MaxOtherPerAddr: s.cfg.NNTP.MaxConnectionsPerIP,
			Peers:           func(a netip.Addr) []string { return peersAt(peers, a) },
		}).Classify,
		OnRefuse: func(c nntp.Class, reason string) {
			s.met.NNTPRefused.WithLabelValues(refusedLabel(c, reason)).Inc()
		},
		Authorize: func(_ net.Conn, sess nntp.Session) (nntp.Session, bool) {
			sess, ok := authorize(peers, postAllow, sess)
			if !ok && sess.Remote != nil {
				s.met.NNTPRefused.WithLabelValues("address").Inc()
			}
			if ok {
				s.incoming.authorized(sess)
			}
			return sess, ok
		},
		// A refused address is most often a local program posting over
		// TCP, as dstc did before the socket was its default.
		DeniedText: func(sess nntp.Session) string {
			host := "this address"
			if sess.Remote != nil {
				if h, _, err := net.SplitHostPort(sess.Remote.String()); err == nil {
					host = h
				}
			}
			return fmt.Sprintf("access denied: %s may not post (nntp.post_allow) nor feed (no [[peer]] has it); "+
				"submit reports through the Unix socket %s (dstc's default), or add the address to nntp.post_allow",
				host, orNone(s.cfg.NNTP.Socket))
		},
		OnConnChange: func(delta int) { s.met.NNTPConnections.WithLabelValues("all").Add(float64(delta)) },
		OnSessionEnd: s.incoming.ended,
		TLSConfig:    s.serverTLS(),
	}
	creds := map[string]string{}
	for _, p := range s.cfg.Peers {
		if p.AuthUser != "" {
			creds[p.AuthUser] = p.AuthPassword
		}
	}
	if len(creds) > 0 {
		srv.Authenticate = func(_ *nntp.Session, user, pass string) bool {
			want, ok := creds[user]
			// Compare in constant time so a wrong password's timing
			// does not tell how much of it was right.
			return ok && subtle.ConstantTimeCompare([]byte(want), []byte(pass)) == 1
		}
	}
	return srv
}

// refusedLabel is the reason label of dst_nntp_refused_connections_total
// for a connection the server turned away before serving it: which pool
// was full names who is flooding ("other-client-limit": one address).
func refusedLabel(c nntp.Class, reason string) string {
	switch reason {
	case nntp.RefusedLimit, nntp.RefusedKeyLimit:
		return c.Name + "-" + reason
	case nntp.RefusedNotHere:
		return "tls-not-peer" // the one listener Pools closes to some
	}
	return reason
}
