package site

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"

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
	certFile string // client_cert, for the log
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
// remoteIP is the address a TCP session comes from, IPv4 unmapped.
func remoteIP(s nntp.Session) (netip.Addr, bool) {
	switch a := s.Remote.(type) {
	case nil:
		return netip.Addr{}, false
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap(), true
	}
	ap, err := netip.ParseAddrPort(s.Remote.String())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

// A peer's address that has not yet shown what it must is let in with no
// grants, so that STARTTLS or AUTHINFO may still prove who it is.
func authorize(peers []peerAuth, postAllow []netip.Prefix, s nntp.Session) (nntp.Session, bool) {
	if s.Unix {
		s.CanPost = true
		return s, true
	}
	ip, ok := remoteIP(s)
	if !ok {
		return s, false
	}
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

// pinMismatch is a peer whose address a session comes from, under TLS,
// that presented another certificate than its client_cert, or none.
type pinMismatch struct {
	peer      peerAuth
	presented *x509.Certificate // nil: none presented
}

// pinMismatches are the pinned peers at s's address whose pin s's
// certificate does not match, for a session that authorize did not let
// feed. Only the authorization that follows a handshake is looked at (no
// AUTHINFO user yet), so that each handshake is told once.
func pinMismatches(peers []peerAuth, s nntp.Session) []pinMismatch {
	if s.TLS == nil || s.User != "" {
		return nil
	}
	ip, ok := remoteIP(s)
	if !ok {
		return nil
	}
	var presented *x509.Certificate
	if len(s.TLS.PeerCertificates) > 0 {
		presented = s.TLS.PeerCertificates[0]
	}
	var out []pinMismatch
	for _, p := range peers {
		// A client_cert that could not be read was logged at the start.
		if !p.needCert || p.cert == nil || !slices.ContainsFunc(p.addrs, func(a netip.Prefix) bool { return a.Contains(ip) }) {
			continue
		}
		if presented == nil || !bytes.Equal(presented.Raw, p.cert) {
			out = append(out, pinMismatch{peer: p, presented: presented})
		}
	}
	return out
}

// fingerprint is the SHA-256 fingerprint of a certificate (DER) as
// `openssl x509 -noout -fingerprint -sha256` prints it, so that an
// administrator can compare it with the file's.
func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	var b strings.Builder
	for i, c := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", c)
	}
	return b.String()
}

// logPinMismatch warns, at the receiver, that a pinned peer presented
// another certificate: the sender sees only 480 or 502, and without both
// fingerprints nobody can tell a renewed certificate from a wrong file.
func (s *Site) logPinMismatch(m pinMismatch, remote net.Addr) {
	s.met.NNTPRefused.WithLabelValues(refusedPinMismatch).Inc()
	presented, subject := "(none)", "(none)"
	if m.presented != nil {
		presented, subject = fingerprint(m.presented.Raw), m.presented.Subject.String()
	}
	msg := "peer's TLS client certificate does not match its pin (client_cert): it may not feed by certificate; if it renewed its certificate, put the new one in client_cert and restart dstd"
	if m.presented == nil {
		msg = "peer presented no TLS client certificate, but client_cert pins one: it may not feed by certificate; have it send tls.cert as its client certificate"
	}
	s.log.Warn(msg, "peer", m.peer.name, "remote", remote.String(), "client_cert", m.peer.certFile,
		"expected_sha256", fingerprint(m.peer.cert), "presented_sha256", presented, "presented_subject", subject)
}

// refusedPinMismatch is the reason label of dst_nntp_refused_connections_total
// for a peer whose certificate does not match its pin.
const refusedPinMismatch = "peer-cert-mismatch"

// incomingPeers reads the [[peer]] tables' incoming side. A client_cert
// that cannot be read fails closed: the peer cannot feed until it is fixed.
func (s *Site) incomingPeers() []peerAuth {
	var peers []peerAuth
	for _, p := range s.cfg.Peers {
		pe := peerAuth{name: p.Name, addrs: p.Addresses.Netip(), needCert: p.ClientCert != "", certFile: p.ClientCert, user: p.AuthUser}
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
		Handler:  countingHandler{Handler: ingest.NNTPHandler(s.in), in: s.incoming, offered: s.peersOffered(), peers: peers},
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
		Authorize: func(_ net.Conn, facts nntp.Session) (nntp.Session, bool) {
			sess, ok := authorize(peers, postAllow, facts)
			if !ok && sess.Remote != nil {
				s.met.NNTPRefused.WithLabelValues("address").Inc()
			}
			if ok {
				s.incoming.authorized(sess)
			}
			if !sess.CanFeed {
				for _, m := range pinMismatches(peers, facts) {
					s.logPinMismatch(m, facts.Remote)
				}
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
