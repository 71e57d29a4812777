package nntp_test

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/dsttest"
	"github.com/dst-traps/dst/internal/nntp"
)

// TestSessionEndAndDate: OnSessionEnd hears of each session Authorize let
// in, with its grants and TLS state, once it ends; DATE answers the
// server's time; ConnectionState tells the TLS of the session.
func TestSessionEndAndDate(t *testing.T) {
	cert, roots := selfSigned(t)
	var (
		mu    sync.Mutex
		ended []nntp.Session
	)
	srv := &nntp.Server{
		Handler:  &peerHandler{},
		Hostname: "peer.test",
		Authorize: func(_ net.Conn, s nntp.Session) (nntp.Session, bool) {
			return nntp.Session{CanFeed: true, Peer: "feeder.test"}, true
		},
		OnSessionEnd: func(s nntp.Session) {
			mu.Lock()
			ended = append(ended, s)
			mu.Unlock()
		},
	}
	addr := serveOn(t, srv, &tls.Config{Certificates: []tls.Certificate{cert}})
	ctx := context.Background()
	c, err := nntp.DialWith(ctx, addr, nntp.DialOptions{Timeout: 5 * time.Second, TLS: nntp.TLSImplicit,
		TLSConfig: &tls.Config{RootCAs: roots, ServerName: "peer.test"}})
	if err != nil {
		t.Fatal(err)
	}
	cs, ok := c.ConnectionState()
	if !ok || cs.Version == 0 || len(cs.PeerCertificates) == 0 {
		t.Errorf("ConnectionState = %+v, %v; want the TLS session with the server's certificate", cs, ok)
	}
	before := time.Now().UTC().Truncate(time.Second)
	d, err := c.Date(ctx)
	if err != nil || d.Before(before) || d.After(time.Now().Add(time.Second)) {
		t.Errorf("Date = %v, %v; want about now", d, err)
	}
	mu.Lock()
	n := len(ended)
	mu.Unlock()
	if n != 0 {
		t.Errorf("OnSessionEnd called while the session runs")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	dsttest.WaitFor(t, 10*time.Second, "the end of the session", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(ended) > 0
	})
	mu.Lock()
	defer mu.Unlock()
	if len(ended) != 1 || ended[0].Peer != "feeder.test" || !ended[0].CanFeed || ended[0].TLS == nil || ended[0].ID == 0 {
		t.Errorf("OnSessionEnd got %+v; want the one session, with its grants and TLS", ended)
	}

	plain, err := nntp.Dial(ctx, serveOn(t, &nntp.Server{Handler: &peerHandler{}, Authorize: func(_ net.Conn, s nntp.Session) (nntp.Session, bool) { return s, true }}, nil), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, ok := plain.ConnectionState(); ok {
		t.Error("ConnectionState of a plain session says TLS")
	}
}
