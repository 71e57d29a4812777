package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"

	"github.com/dst-traps/dst/internal/admin"
	"github.com/dst-traps/dst/internal/article"
	"github.com/dst-traps/dst/internal/config"
	"github.com/dst-traps/dst/internal/feed"
)

// buildFeeds makes one feeder per peer that has an outgoing feed.
func (d *daemon) buildFeeds() error {
	var cert *tls.Certificate
	if d.cfg.TLS.Cert != "" {
		c, err := tls.LoadX509KeyPair(d.cfg.TLS.Cert, d.cfg.TLS.Key)
		if err != nil {
			return fmt.Errorf("tls.cert/tls.key: %w", err)
		}
		cert = &c
	}
	for _, p := range d.cfg.Peers {
		if p.Feed == "" {
			continue
		}
		tc, err := clientTLS(p, cert)
		if err != nil {
			return err
		}
		kick := make(chan struct{}, 1)
		d.feedKicks = append(d.feedKicks, kick)
		d.feeders = append(d.feeders, feed.New(feed.Peer{
			Name: p.Name, Addr: p.Feed, TLS: p.TLS, TLSConfig: tc,
			Username: p.Username, Password: p.Password, LocalAddr: p.Source,
		}, d.db, feed.Options{
			Site: d.cfg.Site, Log: d.log, Metrics: d.met, Kick: kick,
		}))
		d.feedPeers = append(d.feedPeers, p.Name)
	}
	return nil
}

// clientTLS is the TLS configuration of an outgoing feed: the peer's server
// certificate verified against its configured CA (or the system roots),
// and this site's certificate as client certificate.
func clientTLS(p config.Peer, cert *tls.Certificate) (*tls.Config, error) {
	if p.TLS == "" {
		return nil, nil
	}
	host, _, _ := net.SplitHostPort(p.Feed)
	tc := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
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
		tc.Certificates = []tls.Certificate{*cert}
	}
	return tc, nil
}

// feedQueues is ingest's FeedQueues: every outgoing peer not named in Path.
func (d *daemon) feedQueues(path string) []string {
	var qs []string
	for _, p := range d.feedPeers {
		if !article.PathContains(path, p) {
			qs = append(qs, feed.QueueName(p))
		}
	}
	return qs
}

func (d *daemon) Peers(_ context.Context) ([]admin.PeerStatus, error) {
	var out []admin.PeerStatus
	for _, f := range d.feeders {
		s := f.Status()
		out = append(out, admin.PeerStatus{Name: s.Name, Addr: s.Addr, Connected: s.Connected, Streaming: s.Streaming,
			Depth: s.Depth, Sent: s.Sent, Refused: s.Refused, Deferred: s.Deferred,
			LastSuccess: s.LastSuccess, LastError: s.LastError, LastErrorTime: s.LastErrorTime})
	}
	return out, nil
}
