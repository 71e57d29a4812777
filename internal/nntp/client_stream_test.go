package nntp_test

// Tests of the feeding side of the client (DialWith, CAPABILITIES, MODE
// STREAM, CHECK/TAKETHIS, IHAVE, TLS, AUTHINFO), against the package's own
// Server where it can play the part and against scripted servers where it
// cannot (yet). They live in package nntp_test, so they use only the
// exported API and cannot collide with the server tests' helpers.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/nntp"
)

// peerHandler is a Handler for a feeding peer: it wants every article it
// has not received yet, except those whose Message-ID says "dup" (438/435);
// it refuses articles containing "reject" (439/437) and defers those
// containing "later" (400 and close / 436).
type peerHandler struct {
	mu       sync.Mutex
	order    []string
	received map[string][]byte
	remotes  []string
}

func (h *peerHandler) Post(context.Context, *nntp.Session, []byte) nntp.Verdict {
	return nntp.Refused("no posting here")
}

func (h *peerHandler) Check(_ context.Context, _ *nntp.Session, id string) nntp.Verdict {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.received[id]; ok || strings.Contains(id, "dup") {
		return nntp.Refused("already have it")
	}
	return nntp.Accepted()
}

func (h *peerHandler) Receive(_ context.Context, _ *nntp.Session, id string, art []byte) nntp.Verdict {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case bytes.Contains(art, []byte("reject")):
		return nntp.Refused("rejected because you said so")
	case bytes.Contains(art, []byte("later")):
		return nntp.Deferred("disk full, try later")
	}
	if h.received == nil {
		h.received = make(map[string][]byte)
	}
	h.received[id] = art
	h.order = append(h.order, id)
	return nntp.Accepted()
}

func (h *peerHandler) got(id string) []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.received[id]
}

// startPeer serves a Server with h on 127.0.0.1:0 (through TLS if cfg is
// not nil) and returns its address.
func startPeer(t *testing.T, h *peerHandler, feed bool, cfg *tls.Config) string {
	t.Helper()
	srv := &nntp.Server{
		Handler:  h,
		Hostname: "peer.test",
		Authorize: func(c net.Conn, _ nntp.Session) (nntp.Session, bool) {
			h.mu.Lock()
			h.remotes = append(h.remotes, c.RemoteAddr().String())
			h.mu.Unlock()
			return nntp.Session{CanFeed: feed, Peer: "feeder.test"}, true
		},
	}
	return serveOn(t, srv, cfg)
}

// serveOn serves srv on 127.0.0.1:0 (through TLS if cfg is not nil) until
// the test ends, and returns its address.
func serveOn(t *testing.T, srv *nntp.Server, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
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
	return ln.Addr().String()
}

func testArticle(id, body string) []byte {
	return []byte("Path: a.test!not-for-mail\r\nMessage-ID: " + id + "\r\nSubject: test\r\n\r\n" + body)
}

// TestStreamPipelined feeds 500 articles the way a feeder does: one
// goroutine keeps up to window commands in flight, another reads the
// answers, and every 238 is followed by TAKETHIS.
func TestStreamPipelined(t *testing.T) {
	h := &peerHandler{}
	addr := startPeer(t, h, true, nil)
	ctx := context.Background()
	c, err := nntp.DialWith(ctx, addr, nntp.DialOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, err := c.ModeStream(ctx); !ok || err != nil {
		t.Fatalf("ModeStream = %v, %v", ok, err)
	}

	const n, window = 500, 64
	arts := make(map[string][]byte)
	var ids []string
	for i := range n {
		id := fmt.Sprintf("<%d@a.test>", i)
		if i%50 == 7 {
			id = fmt.Sprintf("<%d.dup@a.test>", i)
		}
		// Leading dots and a line of just "." must arrive unchanged.
		// (The Server refuses a lone CR; TestStreamWire covers it.)
		body := fmt.Sprintf(".line %d\r\n.\r\nmid.dle\r\n..two\r\n", i)
		if i%100 == 42 {
			body += "reject me\r\n"
		}
		arts[id] = testArticle(id, body)
		ids = append(ids, id)
	}

	rctx, stop := context.WithCancel(ctx)
	defer stop()
	results := make(chan nntp.Result, window+1)
	readErr := make(chan error, 1)
	go func() {
		for {
			r, err := c.NextResult(rctx)
			if err != nil {
				readErr <- err
				return
			}
			results <- r
		}
	}()

	var answers []nntp.Result
	inflight, next := 0, 0
	for len(answers) < n || inflight > 0 {
		// Fill the window with CHECKs, in batches.
		var batch []string
		for inflight+len(batch) < window && next < n {
			batch = append(batch, ids[next])
			next++
		}
		if len(batch) > 0 {
			if err := c.Check(ctx, batch...); err != nil {
				t.Fatal(err)
			}
			inflight += len(batch)
		}
		if c.Unanswered() > window {
			t.Fatalf("%d unanswered, window %d", c.Unanswered(), window)
		}
		var r nntp.Result
		select {
		case r = <-results:
		case err := <-readErr:
			t.Fatalf("NextResult: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("no answer")
		}
		inflight--
		if r.Command == "CHECK" && r.Kind() == nntp.Accept {
			if r.Code != 238 {
				t.Errorf("CHECK accept with code %d", r.Code)
			}
			if err := c.TakeThis(ctx, r.MsgID, arts[r.MsgID]); err != nil {
				t.Fatal(err)
			}
			inflight++
			continue
		}
		answers = append(answers, r)
	}

	var sent, refusedCheck, refusedTake int
	for _, r := range answers {
		switch {
		case r.Command == "TAKETHIS" && r.Code == 239:
			sent++
		case r.Command == "CHECK" && r.Code == 438 && r.Kind() == nntp.Refuse:
			refusedCheck++
		case r.Command == "TAKETHIS" && r.Code == 439 && r.Kind() == nntp.Refuse:
			refusedTake++
			if r.Text != "rejected because you said so" {
				t.Errorf("439 text %q", r.Text)
			}
		default:
			t.Errorf("unexpected answer %+v", r)
		}
	}
	if refusedCheck != 10 || refusedTake != 5 || sent != n-15 {
		t.Errorf("sent %d, refused at CHECK %d, at TAKETHIS %d", sent, refusedCheck, refusedTake)
	}
	for _, id := range ids {
		got := h.got(id)
		if strings.Contains(id, "dup") || bytes.Contains(arts[id], []byte("reject")) {
			if got != nil {
				t.Errorf("%s was stored", id)
			}
			continue
		}
		if !bytes.Equal(got, arts[id]) {
			t.Fatalf("%s arrived as %q, want %q", id, got, arts[id])
		}
	}
	// The answers came in the order of the commands: the CHECK answers
	// follow the order of ids.
	var checkOrder []string
	for _, r := range answers {
		if r.Command == "CHECK" {
			checkOrder = append(checkOrder, r.MsgID)
		}
	}
	for i := 1; i < len(checkOrder); i++ {
		if indexOf(ids, checkOrder[i]) < indexOf(ids, checkOrder[i-1]) {
			t.Fatalf("CHECK answers out of order: %s after %s", checkOrder[i], checkOrder[i-1])
		}
	}

	stop()
	if err := <-readErr; !errors.Is(err, context.Canceled) {
		t.Errorf("reader stopped with %v", err)
	}
	// The reader was waiting for a command, not reading: the session is
	// intact and Close says goodbye properly.
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// TestTakeThisDeferred: a 400 to TAKETHIS is the server's "try later"; the
// session is over.
func TestTakeThisDeferred(t *testing.T) {
	h := &peerHandler{}
	addr := startPeer(t, h, true, nil)
	ctx := context.Background()
	c, err := nntp.DialWith(ctx, addr, nntp.DialOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.TakeThis(ctx, "<x@a.test>", testArticle("<x@a.test>", "later\r\n")); err != nil {
		t.Fatal(err)
	}
	r, err := c.NextResult(ctx)
	var ne *nntp.Error
	if !errors.As(err, &ne) || ne.Code != 400 {
		t.Fatalf("NextResult = %+v, %v; want *Error 400", r, err)
	}
	if r.MsgID != "<x@a.test>" || r.Kind() != nntp.Defer {
		t.Errorf("result %+v, kind %v", r, r.Kind())
	}
	if err := c.Check(ctx, "<y@a.test>"); err == nil || !strings.Contains(err.Error(), "unusable") {
		t.Errorf("Check after 400: %v", err)
	}
}

func TestClientIHave(t *testing.T) {
	h := &peerHandler{}
	addr := startPeer(t, h, true, nil)
	ctx := context.Background()
	c, err := nntp.DialWith(ctx, addr, nntp.DialOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, tc := range []struct {
		id, body string
		code     int
		kind     nntp.Kind
	}{
		{"<ok@a.test>", ".dot\r\nbody\r\n", 235, nntp.Accept},
		{"<ok@a.test>", "again\r\n", 435, nntp.Refuse}, // the peer has it now
		{"<x.dup@a.test>", "body\r\n", 435, nntp.Refuse},
		{"<r@a.test>", "reject\r\n", 437, nntp.Refuse},
		{"<l@a.test>", "later\r\n", 436, nntp.Defer},
	} {
		art := testArticle(tc.id, tc.body)
		r, err := c.IHave(ctx, tc.id, art)
		if err != nil {
			t.Fatalf("IHave %s: %v", tc.id, err)
		}
		if r.Code != tc.code || r.Kind() != tc.kind || r.Command != "IHAVE" || r.MsgID != tc.id {
			t.Errorf("IHave %s = %+v kind %v, want %d %v", tc.id, r, r.Kind(), tc.code, tc.kind)
		}
		if tc.code == 235 && !bytes.Equal(h.got(tc.id), art) {
			t.Errorf("stored %q", h.got(tc.id))
		}
	}
	if _, err := c.IHave(ctx, "not an id", nil); err == nil {
		t.Error("IHave accepted an invalid message-ID")
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestNotAFeed: the Server answers 502 to a session that may not feed;
// ModeStream takes it as "no streaming" and IHAVE gives the *Error.
func TestNotAFeed(t *testing.T) {
	addr := startPeer(t, &peerHandler{}, false, nil)
	ctx := context.Background()
	c, err := nntp.DialWith(ctx, addr, nntp.DialOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, err := c.ModeStream(ctx); ok || err != nil {
		t.Errorf("ModeStream = %v, %v", ok, err)
	}
	_, err = c.IHave(ctx, "<a@a.test>", testArticle("<a@a.test>", "x\r\n"))
	var ne *nntp.Error
	if !errors.As(err, &ne) || ne.Code != 502 {
		t.Errorf("IHave = %v, want *Error 502", err)
	}
	caps, err := c.Capabilities(ctx)
	if err != nil || len(caps) == 0 || caps[0] != "VERSION 2" {
		t.Errorf("Capabilities = %q, %v", caps, err)
	}
}

// TestLocalAddr: the connection comes from the source address asked for.
func TestLocalAddr(t *testing.T) {
	h := &peerHandler{}
	addr := startPeer(t, h, true, nil)
	for _, la := range []string{"127.0.0.2", "127.0.0.2:0"} {
		c, err := nntp.DialWith(context.Background(), addr, nntp.DialOptions{Timeout: 5 * time.Second, LocalAddr: la})
		if err != nil {
			t.Fatalf("LocalAddr %s: %v", la, err)
		}
		c.Close()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.remotes {
		if host, _, _ := net.SplitHostPort(r); host != "127.0.0.2" {
			t.Errorf("connection came from %s", r)
		}
	}
	if _, err := nntp.DialWith(context.Background(), addr, nntp.DialOptions{LocalAddr: "not-an-ip"}); err == nil {
		t.Error("a bad source address was accepted")
	}
}

// selfSigned returns a server certificate for 127.0.0.1 and "peer.test",
// and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "peer.test"},
		DNSNames:     []string{"peer.test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

func TestClientImplicitTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	h := &peerHandler{}
	addr := startPeer(t, h, true, &tls.Config{Certificates: []tls.Certificate{cert}})
	ctx := context.Background()

	c, err := nntp.DialWith(ctx, addr, nntp.DialOptions{Timeout: 5 * time.Second, TLS: nntp.TLSImplicit,
		TLSConfig: &tls.Config{RootCAs: pool}}) // ServerName comes from the address
	if err != nil {
		t.Fatal(err)
	}
	if !c.TLS() {
		t.Error("TLS() = false")
	}
	if ok, err := c.ModeStream(ctx); !ok || err != nil {
		t.Fatalf("ModeStream = %v, %v", ok, err)
	}
	art := testArticle("<tls@a.test>", "over TLS\r\n")
	if err := c.Check(ctx, "<tls@a.test>"); err != nil {
		t.Fatal(err)
	}
	if r, err := c.NextResult(ctx); err != nil || r.Code != 238 {
		t.Fatalf("CHECK: %+v, %v", r, err)
	}
	if err := c.TakeThis(ctx, "<tls@a.test>", art); err != nil {
		t.Fatal(err)
	}
	if r, err := c.NextResult(ctx); err != nil || r.Code != 239 {
		t.Fatalf("TAKETHIS: %+v, %v", r, err)
	}
	if !bytes.Equal(h.got("<tls@a.test>"), art) {
		t.Errorf("stored %q", h.got("<tls@a.test>"))
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}

	// A certificate that does not match the name is refused.
	_, err = nntp.DialWith(ctx, addr, nntp.DialOptions{Timeout: 5 * time.Second, TLS: nntp.TLSImplicit,
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: "other.test"}})
	if err == nil {
		t.Error("a certificate for another name was accepted")
	}
	// So is one nobody vouches for.
	_, err = nntp.DialWith(ctx, addr, nntp.DialOptions{Timeout: 5 * time.Second, TLS: nntp.TLSImplicit})
	if err == nil {
		t.Error("an untrusted certificate was accepted")
	}
}

// script is the server side of a scripted session.
type script struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

func (s *script) send(lines ...string) {
	s.t.Helper()
	for _, l := range lines {
		if _, err := io.WriteString(s.conn, l+"\r\n"); err != nil {
			s.t.Errorf("server: writing %q: %v", l, err)
		}
	}
}

func (s *script) expect(want string) {
	s.t.Helper()
	line, err := s.br.ReadString('\n')
	if err != nil {
		s.t.Errorf("server: waiting for %q: %v", want, err)
		return
	}
	if line != want+"\r\n" {
		s.t.Errorf("server: got %q, want %q", line, want+"\r\n")
	}
}

func (s *script) readBlock() string {
	s.t.Helper()
	var b strings.Builder
	for {
		line, err := s.br.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			s.t.Errorf("server: reading a block: %v (got %q)", err, b.String())
			return b.String()
		}
		if line == ".\r\n" {
			return b.String()
		}
	}
}

// starttls upgrades the scripted connection.
func (s *script) starttls(cert tls.Certificate) {
	s.t.Helper()
	tc := tls.Server(s.conn, &tls.Config{Certificates: []tls.Certificate{cert}})
	if err := tc.Handshake(); err != nil {
		s.t.Errorf("server: TLS handshake: %v", err)
	}
	s.conn = tc
	s.br = bufio.NewReader(tc)
}

// scripted serves one connection with fn and returns the address.
func scripted(t *testing.T, fn func(*script)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			t.Errorf("server: accept: %v", err)
			return
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		s := &script{t: t, conn: c, br: bufio.NewReader(c)}
		fn(s)
		s.conn.Close()
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String()
}

// TestClientStartTLSAuthServer: STARTTLS, then AUTHINFO, against the package's
// Server, which lets only an authenticated user feed.
func TestClientStartTLSAuthServer(t *testing.T) {
	cert, pool := selfSigned(t)
	h := &peerHandler{}
	addr := serveOn(t, &nntp.Server{
		Handler:   h,
		Hostname:  "peer.test",
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Authenticate: func(_ *nntp.Session, user, pass string) bool {
			return user == "feeder" && pass == "s3cret"
		},
		Authorize: func(_ net.Conn, s nntp.Session) (nntp.Session, bool) {
			return nntp.Session{CanFeed: s.User == "feeder" && s.TLS != nil, Peer: "feeder.test"}, true
		},
	}, nil)
	ctx := context.Background()
	opts := nntp.DialOptions{Timeout: 5 * time.Second, TLS: nntp.TLSStartTLS,
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: "peer.test"}, Username: "feeder", Password: "s3cret"}

	c, err := nntp.DialWith(ctx, addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !c.TLS() {
		t.Error("TLS() = false after STARTTLS")
	}
	if ok, err := c.ModeStream(ctx); !ok || err != nil {
		t.Fatalf("ModeStream = %v, %v", ok, err)
	}
	art := testArticle("<auth@a.test>", "authenticated\r\n")
	if err := c.TakeThis(ctx, "<auth@a.test>", art); err != nil {
		t.Fatal(err)
	}
	if r, err := c.NextResult(ctx); err != nil || r.Code != 239 {
		t.Fatalf("TAKETHIS: %+v, %v", r, err)
	}
	if !bytes.Equal(h.got("<auth@a.test>"), art) {
		t.Errorf("stored %q", h.got("<auth@a.test>"))
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}

	bad := opts
	bad.Password = "wrong"
	_, err = nntp.DialWith(ctx, addr, bad)
	var ne *nntp.Error
	if !errors.As(err, &ne) || ne.Code != 481 {
		t.Errorf("wrong password: %v, want *Error 481", err)
	}

	// Without authenticating, the session may not feed: not a reason to
	// fall back to IHAVE, but an error the operator must see.
	anon := opts
	anon.Username, anon.Password = "", ""
	c, err = nntp.DialWith(ctx, addr, anon)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, err := c.ModeStream(ctx); ok || !errors.As(err, &ne) || ne.Code != 480 {
		t.Errorf("ModeStream without AUTHINFO = %v, %v; want *Error 480", ok, err)
	}
}

// TestClientStartTLSAndAuth follows RFC 4642 and RFC 4643 step by step, against a
// script that pins down every line.
func TestClientStartTLSAndAuth(t *testing.T) {
	cert, pool := selfSigned(t)
	addr := scripted(t, func(s *script) {
		s.send("200 ready")
		s.expect("CAPABILITIES")
		s.send("101 list", "VERSION 2", "IHAVE", "STARTTLS", ".")
		s.expect("STARTTLS")
		s.send("382 go ahead")
		s.starttls(cert)
		s.expect("CAPABILITIES")
		s.send("101 list", "VERSION 2", "IHAVE", "STREAMING", "AUTHINFO USER", ".")
		s.expect("AUTHINFO USER feeder")
		s.send("381 password please")
		s.expect("AUTHINFO PASS s3cret word")
		s.send("281 welcome")
		s.expect("MODE STREAM")
		s.send("203 streaming ok")
		s.expect("QUIT")
		s.send("205 bye")
	})
	ctx := context.Background()
	c, err := nntp.DialWith(ctx, addr, nntp.DialOptions{Timeout: 5 * time.Second, TLS: nntp.TLSStartTLS,
		TLSConfig: &tls.Config{RootCAs: pool}, Username: "feeder", Password: "s3cret word"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.TLS() {
		t.Error("TLS() = false after STARTTLS")
	}
	if ok, err := c.ModeStream(ctx); !ok || err != nil {
		t.Errorf("ModeStream = %v, %v", ok, err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestClientStartTLSRefusals(t *testing.T) {
	_, pool := selfSigned(t)
	for _, tc := range []struct {
		name   string
		script func(*script)
		want   string
		code   int
	}{
		{"not offered", func(s *script) {
			s.send("200 ready")
			s.expect("CAPABILITIES")
			s.send("101 list", "VERSION 2", "IHAVE", ".")
		}, "does not offer STARTTLS", 0},
		{"refused", func(s *script) {
			s.send("200 ready")
			s.expect("CAPABILITIES")
			s.send("101 list", "VERSION 2", "STARTTLS", ".")
			s.expect("STARTTLS")
			s.send("580 can not initiate TLS negotiation")
		}, "refused STARTTLS", 580},
		{"injection after 382", func(s *script) {
			s.send("200 ready")
			s.expect("CAPABILITIES")
			s.send("101 list", "VERSION 2", "STARTTLS", ".")
			s.expect("STARTTLS")
			// Both lines in one write, so they reach the client's
			// buffer together.
			io.WriteString(s.conn, "382 go ahead\r\n281 injected\r\n")
		}, "sent data after its 382", 0},
		{"no CAPABILITIES", func(s *script) {
			s.send("200 ready")
			s.expect("CAPABILITIES")
			s.send("500 what?")
		}, "whether it offers STARTTLS", 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := scripted(t, tc.script)
			_, err := nntp.DialWith(context.Background(), addr, nntp.DialOptions{Timeout: 5 * time.Second,
				TLS: nntp.TLSStartTLS, TLSConfig: &tls.Config{RootCAs: pool}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			var ne *nntp.Error
			if got := errors.As(err, &ne); got != (tc.code != 0) || (got && ne.Code != tc.code) {
				t.Errorf("err = %v, want *Error %d", err, tc.code)
			}
		})
	}
}

func TestClientAuthinfo(t *testing.T) {
	t.Run("password refused over plaintext", func(t *testing.T) {
		// No server: the refusal comes before connecting.
		_, err := nntp.DialWith(context.Background(), "127.0.0.1:1", nntp.DialOptions{Username: "u", Password: "p"})
		if err == nil || !strings.Contains(err.Error(), "without TLS") {
			t.Fatalf("err = %v", err)
		}
		if strings.Contains(err.Error(), "\"p\"") {
			t.Errorf("the password is in the error: %v", err)
		}
	})
	t.Run("plaintext allowed explicitly", func(t *testing.T) {
		addr := scripted(t, func(s *script) {
			s.send("200 ready")
			s.expect("AUTHINFO USER u")
			s.send("381 more")
			s.expect("AUTHINFO PASS p")
			s.send("281 ok")
			s.expect("QUIT")
			s.send("205 bye")
		})
		c, err := nntp.DialWith(context.Background(), addr, nntp.DialOptions{Timeout: 5 * time.Second,
			Username: "u", Password: "p", AllowPlaintextAuth: true})
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	})
	t.Run("user alone", func(t *testing.T) {
		addr := scripted(t, func(s *script) {
			s.send("200 ready")
			s.expect("AUTHINFO USER u")
			s.send("281 ok, no password needed")
			s.expect("QUIT")
			s.send("205 bye")
		})
		c, err := nntp.DialWith(context.Background(), addr, nntp.DialOptions{Timeout: 5 * time.Second, Username: "u"})
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	})
	t.Run("rejected", func(t *testing.T) {
		addr := scripted(t, func(s *script) {
			s.send("200 ready")
			s.expect("AUTHINFO USER u")
			s.send("381 more")
			s.expect("AUTHINFO PASS wrong")
			s.send("481 authentication failed")
		})
		_, err := nntp.DialWith(context.Background(), addr, nntp.DialOptions{Timeout: 5 * time.Second,
			Username: "u", Password: "wrong", AllowPlaintextAuth: true})
		var ne *nntp.Error
		if !errors.As(err, &ne) || ne.Code != 481 {
			t.Fatalf("err = %v, want *Error 481", err)
		}
		if strings.Contains(err.Error(), "wrong") {
			t.Errorf("the password is in the error: %v", err)
		}
	})
	t.Run("line break in the password", func(t *testing.T) {
		_, err := nntp.DialWith(context.Background(), "127.0.0.1:1", nntp.DialOptions{Username: "u",
			Password: "p\r\nQUIT", AllowPlaintextAuth: true})
		if err == nil {
			t.Fatal("accepted")
		}
	})
}

// TestStreamWire checks the bytes of CHECK and TAKETHIS on the wire, and
// what the client makes of odd answers.
func TestStreamWire(t *testing.T) {
	art := "Path: x!not-for-mail\r\n\r\n.dot\r\nlone\rCR\r\nbare LF\n..\r\nno end"
	wire := "Path: x!not-for-mail\r\n\r\n..dot\r\nlone\rCR\r\nbare LF\r\n...\r\nno end\r\n.\r\n"
	addr := scripted(t, func(s *script) {
		s.send("200 ready")
		s.expect("MODE STREAM")
		s.send("203 ok")
		s.expect("CHECK <1@x>")
		s.expect("CHECK <2@x>")
		s.send("238 <1@x>", "431 <2@x> busy")
		s.expect("TAKETHIS <1@x>")
		if got := s.readBlock(); got != wire {
			t.Errorf("article on the wire %q, want %q", got, wire)
		}
		s.send("239 <1@x> thanks")
		s.expect("CHECK <3@x>")
		s.send("238 <4@x>") // another article: out of step
	})
	ctx := context.Background()
	c, err := nntp.DialWith(ctx, addr, nntp.DialOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, err := c.ModeStream(ctx); !ok || err != nil {
		t.Fatalf("ModeStream = %v, %v", ok, err)
	}
	if err := c.Check(ctx, "<1@x>", "<2@x>"); err != nil {
		t.Fatal(err)
	}
	if r, err := c.NextResult(ctx); err != nil || r.Code != 238 || r.MsgID != "<1@x>" || r.Text != "" {
		t.Errorf("first answer %+v, %v", r, err)
	}
	if r, err := c.NextResult(ctx); err != nil || r.Code != 431 || r.Kind() != nntp.Defer || r.Text != "busy" {
		t.Errorf("second answer %+v, %v", r, err)
	}
	if err := c.TakeThis(ctx, "<1@x>", []byte(art)); err != nil {
		t.Fatal(err)
	}
	if r, err := c.NextResult(ctx); err != nil || r.Code != 239 || r.Text != "thanks" {
		t.Errorf("TAKETHIS answer %+v, %v", r, err)
	}
	if err := c.Check(ctx, "<3@x>"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.NextResult(ctx); err == nil || !strings.Contains(err.Error(), "out of step") {
		t.Errorf("out-of-step answer gave %v", err)
	}
	if err := c.Check(ctx, "bad id"); err == nil {
		t.Error("Check accepted an invalid message-ID")
	}
}

// TestModeStreamUnknown: a server that does not know MODE STREAM.
func TestModeStreamUnknown(t *testing.T) {
	addr := scripted(t, func(s *script) {
		s.send("200 ready")
		s.expect("MODE STREAM")
		s.send("500 unknown command")
		s.expect("MODE STREAM")
		s.send("480 authentication required")
		s.expect("QUIT")
		s.send("205 bye")
	})
	ctx := context.Background()
	c, err := nntp.DialWith(ctx, addr, nntp.DialOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := c.ModeStream(ctx); ok || err != nil {
		t.Errorf("ModeStream after 500 = %v, %v", ok, err)
	}
	_, err = c.ModeStream(ctx)
	var ne *nntp.Error
	if !errors.As(err, &ne) || ne.Code != 480 {
		t.Errorf("ModeStream after 480: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestCloseWithUnanswered: Close does not wait for answers nobody reads,
// nor send a QUIT whose answer would be taken for theirs.
func TestCloseWithUnanswered(t *testing.T) {
	addr := scripted(t, func(s *script) {
		s.send("200 ready")
		s.expect("CHECK <1@x>")
		// No answer; the client must hang up without QUIT.
		if line, err := s.br.ReadString('\n'); err == nil {
			t.Errorf("server got %q after the CHECK, want the connection closed", line)
		}
	})
	ctx := context.Background()
	c, err := nntp.DialWith(ctx, addr, nntp.DialOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Check(ctx, "<1@x>"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.IHave(ctx, "<2@x>", nil); err == nil || !strings.Contains(err.Error(), "unanswered") {
		t.Errorf("IHave with a CHECK unanswered: %v", err)
	}
	start := time.Now()
	c.Close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v", d)
	}
}
