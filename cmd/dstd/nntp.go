package main

import (
	"bytes"
	"crypto/subtle"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/dst-traps/dst/internal/config"
	"github.com/dst-traps/dst/internal/ingest"
	"github.com/dst-traps/dst/internal/nntp"
)

func (d *daemon) nntpServer() *nntp.Server {
	postAllow, _ := config.ParsePrefixes(d.cfg.NNTP.PostAllow)
	type peer struct {
		name     string
		addrs    []netip.Prefix
		needCert bool   // it must present cert (client_cert)
		cert     []byte // DER; nil when client_cert could not be read: nothing matches
		user     string // it must authenticate as user (auth_user)
	}
	var peers []peer
	for _, p := range d.cfg.Peers {
		a, _ := config.ParsePrefixes(p.Addresses)
		pe := peer{name: p.Name, addrs: a, needCert: p.ClientCert != "", user: p.AuthUser}
		if pe.needCert {
			b, err := os.ReadFile(p.ClientCert)
			if blk, _ := pem.Decode(b); err == nil && blk != nil && blk.Type == "CERTIFICATE" {
				pe.cert = blk.Bytes
			} else {
				// Fail closed: the peer cannot feed until this is fixed.
				d.log.Error("peer client_cert unreadable; the peer cannot feed", "peer", p.Name, "file", p.ClientCert, "err", err)
			}
		}
		peers = append(peers, pe)
	}
	srv := &nntp.Server{
		Handler:  ingest.NNTPHandler(d.in),
		Log:      d.log.With("component", "nntp"),
		Hostname: d.cfg.Site,
		Limits: nntp.Limits{
			MaxArticleBytes:  d.cfg.NNTP.MaxArticleBytes,
			IdleTimeout:      d.cfg.NNTP.IdleTimeout.Duration,
			HandshakeTimeout: d.cfg.NNTP.TLSHandshakeTimeout.Duration,
		},
		// A pool per class, decided from the address before anything
		// is read (or a TLS handshake done): a flood of connections from
		// one class, one address or one local user takes its own share,
		// never dstc's on the socket nor the peers'.
		Classify: (&nntp.Pools{
			MaxLocal:        d.cfg.NNTP.MaxLocalConnections,
			MaxLocalPerUser: d.cfg.NNTP.MaxLocalConnectionsPerUser,
			MaxPeer:         d.cfg.NNTP.MaxPeerConnections,
			MaxOther:        d.cfg.NNTP.MaxConnections,
			MaxOtherPerAddr: d.cfg.NNTP.MaxConnectionsPerIP,
			Peers: func(a netip.Addr) []string {
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
			},
		}).Classify,
		OnRefuse: func(c nntp.Class, reason string) {
			d.met.NNTPRefused.WithLabelValues(refusedLabel(c, reason)).Inc()
		},
		// Local submission is allowed on the Unix socket and from
		// post_allow; feeding from configured peers' addresses, and,
		// for a peer that requires it, with its client certificate or
		// its AUTHINFO user (either will do). The server asks again
		// after STARTTLS and AUTHINFO, with s.TLS and s.User filled in.
		Authorize: func(_ net.Conn, s nntp.Session) (nntp.Session, bool) {
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
						// Greet it without CanFeed: STARTTLS or
						// AUTHINFO may still prove who it is.
						mustAuthenticate = true
					}
				}
			}
			if !s.CanPost && !s.CanFeed && !mustAuthenticate {
				d.met.NNTPRefused.WithLabelValues("address").Inc()
				return s, false
			}
			return s, true
		},
		// A refused address is most often a local program posting over
		// TCP, as dstc did before the socket was its default.
		DeniedText: func(s nntp.Session) string {
			host := "this address"
			if s.Remote != nil {
				if h, _, err := net.SplitHostPort(s.Remote.String()); err == nil {
					host = h
				}
			}
			return fmt.Sprintf("access denied: %s may not post (nntp.post_allow) nor feed (no [[peer]] has it); "+
				"submit reports through the Unix socket %s (dstc's default), or add the address to nntp.post_allow",
				host, orNone(d.cfg.NNTP.Socket))
		},
		OnConnChange: func(delta int) { d.met.NNTPConnections.WithLabelValues("all").Add(float64(delta)) },
	}
	srv.TLSConfig = d.serverTLS
	creds := map[string]string{}
	for _, p := range d.cfg.Peers {
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

// loadServerTLS reads the site's certificate for STARTTLS and the implicit
// TLS listeners. Client certificates are requested, not required: peers
// pinned with client_cert are matched in Authorize, others may use AUTHINFO.
func (d *daemon) loadServerTLS() error {
	if d.cfg.TLS.Cert == "" {
		return nil
	}
	cert, err := tls.LoadX509KeyPair(d.cfg.TLS.Cert, d.cfg.TLS.Key)
	if err != nil {
		return fmt.Errorf("tls.cert/tls.key: %w", err)
	}
	d.serverTLS = &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequestClientCert,
		MinVersion:   tls.VersionTLS12,
	}
	return nil
}
