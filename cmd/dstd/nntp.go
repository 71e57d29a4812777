package main

import (
	"net"
	"net/netip"

	"github.com/dst-traps/dst/internal/config"
	"github.com/dst-traps/dst/internal/ingest"
	"github.com/dst-traps/dst/internal/nntp"
)

func (d *daemon) nntpServer() *nntp.Server {
	postAllow, _ := config.ParsePrefixes(d.cfg.NNTP.PostAllow)
	type peer struct {
		name  string
		addrs []netip.Prefix
	}
	var peers []peer
	for _, p := range d.cfg.Peers {
		a, _ := config.ParsePrefixes(p.Addresses)
		peers = append(peers, peer{p.Name, a})
	}
	return &nntp.Server{
		Handler:  ingest.NNTPHandler(d.in),
		Log:      d.log.With("component", "nntp"),
		Hostname: d.cfg.Site,
		Limits: nntp.Limits{
			MaxConns:        d.cfg.NNTP.MaxConnections,
			MaxArticleBytes: d.cfg.NNTP.MaxArticleBytes,
			IdleTimeout:     d.cfg.NNTP.IdleTimeout.Duration,
		},
		// Local submission is allowed on the Unix socket and from
		// post_allow; feeding from configured peers' addresses only.
		Authorize: func(c net.Conn) (nntp.Session, bool) {
			s := nntp.Session{Remote: c.RemoteAddr()}
			if _, ok := c.(*net.UnixConn); ok {
				s.Unix, s.CanPost = true, true
				return s, true
			}
			ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
			if err != nil {
				return s, false
			}
			ip := ap.Addr().Unmap()
			for _, p := range postAllow {
				if p.Contains(ip) {
					s.CanPost = true
				}
			}
			for _, p := range peers {
				for _, a := range p.addrs {
					if a.Contains(ip) && !s.CanFeed {
						s.CanFeed, s.Peer = true, p.name
					}
				}
			}
			if !s.CanPost && !s.CanFeed {
				d.met.NNTPRefused.WithLabelValues("address").Inc()
			}
			return s, s.CanPost || s.CanFeed
		},
		OnConnChange: func(delta int) { d.met.NNTPConnections.WithLabelValues("all").Add(float64(delta)) },
	}
}
