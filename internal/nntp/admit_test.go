package nntp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Tests of admission: the pools of Pools, their limits per client, and
// the implicit-TLS listener closed to all but peers before the handshake.

// refusalRecorder is an OnRefuse that keeps what it was told, and an
// OnConnChange that tells each connection's end.
type refusalRecorder struct {
	mu      sync.Mutex
	got     []string // class name, key and reason of each refusal
	classes []Class
	// admitted and ended are told of each connection admitted and
	// ended (OnConnChange), so that a test can wait for them.
	admitted, ended chan struct{}
}

func newRefusalRecorder(srv *Server) *refusalRecorder {
	r := &refusalRecorder{admitted: make(chan struct{}, 100), ended: make(chan struct{}, 100)}
	srv.OnRefuse = func(c Class, reason string) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.got = append(r.got, c.Name+" "+c.Key+" "+reason)
		r.classes = append(r.classes, c)
	}
	srv.OnConnChange = func(d int) {
		if d > 0 {
			r.admitted <- struct{}{}
		} else {
			r.ended <- struct{}{}
		}
	}
	return r
}

func (r *refusalRecorder) refusals() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

// testPools has peer.example at 127.0.0.2 and small limits.
func testPools() *Pools {
	return &Pools{
		MaxLocal: 3, MaxLocalPerUser: 1,
		MaxPeer:  2,
		MaxOther: 3, MaxOtherPerAddr: 2,
		Peers: func(a netip.Addr) []string {
			if a == netip.MustParseAddr("127.0.0.2") {
				return []string{"peer.example"}
			}
			return nil
		},
	}
}

// connectFrom connects to addr from the loopback address src.
func connectFrom(t *testing.T, src, addr string) *client {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

// expectNothing checks that the server closes without sending a byte.
func (c *client) expectNothing() {
	c.t.Helper()
	n, err := io.Copy(io.Discard, c.c)
	if n != 0 || (err != nil && !errors.Is(err, syscall.ECONNRESET)) {
		c.t.Errorf("got %d bytes (%v), want the connection closed without a word", n, err)
	}
}

func TestPoolsLimitPerAddress(t *testing.T) {
	srv := newServer(&fakeHandler{}, true, true)
	srv.Classify = testPools().Classify
	rec := newRefusalRecorder(srv)
	addr := startServer(t, srv)

	a1 := connectFrom(t, "127.0.0.1", addr)
	a1.expect("200 ")
	a2 := connectFrom(t, "127.0.0.1", addr)
	a2.expect("200 ")
	// A third from the same address is refused at once, before it says
	// anything, while another address still has its share.
	a3 := connectFrom(t, "127.0.0.1", addr)
	a3.expect("400 too many connections from your address")
	a3.expectClosed()
	b1 := connectFrom(t, "127.0.0.3", addr)
	b1.expect("200 ")

	// The class is full (3) now: a fourth address is refused for that.
	c1 := connectFrom(t, "127.0.0.4", addr)
	c1.expect("400 too many connections, try again later")
	c1.expectClosed()

	// The peer has a pool of its own, with its own limit.
	p1 := connectFrom(t, "127.0.0.2", addr)
	p1.expect("200 ")
	p2 := connectFrom(t, "127.0.0.2", addr)
	p2.expect("200 ")
	p3 := connectFrom(t, "127.0.0.2", addr)
	p3.expect("400 too many connections from your address")
	p3.expectClosed()

	want := []string{"other 127.0.0.1 client-limit", "other 127.0.0.4 limit", "peer peer.example client-limit"}
	if got := rec.refusals(); !equalStrings(got, want) {
		t.Errorf("refusals %q, want %q", got, want)
	}

	// A slot given back is a slot to take.
	a1.send("QUIT\r\n")
	a1.expect("205 ")
	a1.expectClosed()
	<-rec.ended
	a4 := connectFrom(t, "127.0.0.1", addr)
	a4.expect("200 ")
}

func TestPoolsIPv6PerPrefix(t *testing.T) {
	p := testPools()
	for _, tc := range []struct {
		remote  string
		key     string
		class   string
		allowed bool
	}{
		{"[2001:db8:1:2::1]:1000", "2001:db8:1:2::/64", ClassOther, true},
		{"[2001:db8:1:2:ffff::9]:1000", "2001:db8:1:2::/64", ClassOther, true},
		{"[::ffff:192.0.2.1]:1000", "192.0.2.1", ClassOther, true},
		{"[::ffff:127.0.0.2]:1000", "peer.example", ClassPeer, true},
	} {
		c := &fakeAddrConn{remote: netip.MustParseAddrPort(tc.remote)}
		cl, ok := p.Classify(c, false)
		if cl.Name != tc.class || cl.Key != tc.key || ok != tc.allowed {
			t.Errorf("%s: class %+v, %v; want %s %s", tc.remote, cl, ok, tc.class, tc.key)
		}
		if cl, ok := p.Classify(c, true); ok != (tc.class == ClassPeer) {
			t.Errorf("%s on implicit TLS: class %+v, admitted %v", tc.remote, cl, ok)
		}
	}
}

// fakeAddrConn is a TCP connection from remote, for Classify.
type fakeAddrConn struct {
	net.Conn
	remote netip.AddrPort
}

func (c *fakeAddrConn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(c.remote) }
func (c *fakeAddrConn) LocalAddr() net.Addr {
	return net.TCPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:119"))
}

func TestPoolsLocalPerUser(t *testing.T) {
	srv := newServer(&fakeHandler{}, true, true)
	srv.Log = testLogger(t)
	srv.Classify = testPools().Classify
	rec := newRefusalRecorder(srv)
	sock := filepath.Join(t.TempDir(), "nntp.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	c1 := connect(t, "unix", sock)
	c1.expect("200 ")
	// The same user again: over its share (1), though the class (3) is not
	// full.
	c2 := connect(t, "unix", sock)
	c2.expect("400 too many connections from your user")
	c2.expectClosed()
	want := []string{"local uid " + strconv.Itoa(os.Getuid()) + " client-limit"}
	if got := rec.refusals(); !equalStrings(got, want) {
		t.Errorf("refusals %q, want %q", got, want)
	}
}

// TestImplicitTLSOnlyForPeers: a non-peer is closed before the handshake,
// at once (the handshake deadline is far away), and a peer over its limit
// too; a peer within it is served.
func TestImplicitTLSOnlyForPeers(t *testing.T) {
	pki := newTestPKI(t)
	srv, _ := authServer(t, pki, &fakeHandler{}, false)
	srv.Limits.HandshakeTimeout = time.Hour
	srv.Classify = testPools().Classify
	rec := newRefusalRecorder(srv)
	addr := startTLSListener(t, srv)

	stranger := connectFrom(t, "127.0.0.1", addr)
	stranger.expectNothing()

	p1 := connectTLSFrom(t, "127.0.0.2", addr, pki.clientConfig(true))
	p1.expect("201 ")
	<-rec.admitted
	p2 := connectFrom(t, "127.0.0.2", addr) // holds a slot without a handshake
	<-rec.admitted
	p3 := connectFrom(t, "127.0.0.2", addr)
	p3.expectNothing() // over its limit: no handshake, no 400
	p1.send("DATE\r\n")
	p1.expect("111 ")
	p2.c.Close()
	<-rec.ended // p2's slot is free
	p4 := connectTLSFrom(t, "127.0.0.2", addr, pki.clientConfig(true))
	p4.expect("201 ")

	want := []string{"other 127.0.0.1 not-allowed", "peer peer.example client-limit", "peer peer.example tls-handshake"}
	if got := rec.refusals(); !equalStrings(got, want) {
		t.Errorf("refusals %q, want %q", got, want)
	}
}

// TestHandshakeDeadlineFreesSlot: a peer that starts a handshake and goes
// quiet holds its slot only until the handshake deadline.
func TestHandshakeDeadlineFreesSlot(t *testing.T) {
	pki := newTestPKI(t)
	srv, _ := authServer(t, pki, &fakeHandler{}, false)
	srv.Limits.HandshakeTimeout = 200 * time.Millisecond
	pools := testPools()
	pools.MaxPeer = 1
	srv.Classify = pools.Classify
	rec := newRefusalRecorder(srv)
	addr := startTLSListener(t, srv)

	quiet := connectFrom(t, "127.0.0.2", addr)
	quiet.expectNothing() // cut off at the deadline
	<-rec.ended
	p := connectTLSFrom(t, "127.0.0.2", addr, pki.clientConfig(true))
	p.expect("201 ")
}

func connectTLSFrom(t *testing.T, src, addr string, cfg *tls.Config) *client {
	t.Helper()
	d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestStartTLSHandshakeDeadline: after 382, a client that never starts its
// handshake is cut off at the handshake deadline, not the idle one.
func TestStartTLSHandshakeDeadline(t *testing.T) {
	pki := newTestPKI(t)
	srv, _ := authServer(t, pki, &fakeHandler{}, false)
	srv.Limits.HandshakeTimeout = 200 * time.Millisecond
	srv.Limits.IdleTimeout = time.Hour
	rec := newRefusalRecorder(srv)
	addr := startServer(t, srv)
	c := connect(t, "tcp", addr)
	c.expect("201 ")
	c.send("STARTTLS\r\n")
	c.expect("382 ")
	c.expectNothing()
	<-rec.ended
	if got, want := rec.refusals(), []string{"all  tls-handshake"}; !equalStrings(got, want) {
		t.Errorf("refusals %q, want %q", got, want)
	}
}
