package nntp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// Tests of TLS (implicit and STARTTLS), AUTHINFO and the re-authorization
// that follows them.

// authRecorder is an Authorize for a peer that must show the test
// client certificate or log in as "feeder", and records what it was shown.
type authRecorder struct {
	mu    sync.Mutex
	calls []Session
}

func (a *authRecorder) authorize(_ net.Conn, s Session) (Session, bool) {
	a.mu.Lock()
	a.calls = append(a.calls, s)
	a.mu.Unlock()
	s.Peer = "peer.example" // known by address; feeding needs more
	if s.User == "feeder" {
		s.CanFeed = true
	}
	if s.TLS != nil && len(s.TLS.PeerCertificates) > 0 && s.TLS.PeerCertificates[0].Subject.CommonName == "peer.example" {
		s.CanFeed = true
	}
	return s, true
}

func (a *authRecorder) seen() []Session {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Session(nil), a.calls...)
}

const testPassword = "s3cret word" // with a space: RFC 4643 allows them

func checkFeederPassword(_ *Session, user, pass string) bool {
	return user == "feeder" && pass == testPassword
}

// authServer is a server whose feeding peer must authenticate, with TLS
// offered (STARTTLS) and AUTHINFO if auth.
func authServer(t *testing.T, pki *testPKI, h Handler, auth bool) (*Server, *authRecorder) {
	t.Helper()
	rec := &authRecorder{}
	srv := newServer(h, false, false)
	srv.Authorize = rec.authorize
	srv.TLSConfig = pki.serverConfig()
	if auth {
		srv.Authenticate = checkFeederPassword
	}
	return srv, rec
}

// startTLSListener serves srv with implicit TLS on a fresh port.
func startTLSListener(t *testing.T, srv *Server) string {
	t.Helper()
	if srv.Log == nil {
		srv.Log = testLogger(t)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), tls.NewListener(ln, srv.TLSConfig)) }()
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

func connectTLS(t *testing.T, addr string, cfg *tls.Config) *client {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

// startTLS sends STARTTLS, wants 382, and continues the session under TLS.
func (c *client) startTLS(cfg *tls.Config) {
	c.t.Helper()
	c.send("STARTTLS\r\n")
	c.expect("382 ")
	if c.br.Buffered() != 0 {
		c.t.Fatal("the server sent something after 382")
	}
	tc := tls.Client(c.c, cfg)
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake after STARTTLS: %v", err)
	}
	c.c, c.br = tc, bufio.NewReader(tc)
}

func (c *client) capabilities() string {
	c.t.Helper()
	c.send("CAPABILITIES\r\n")
	c.expect("101 ")
	return strings.Join(c.multiline(), "|")
}

func TestImplicitTLS(t *testing.T) {
	pki := newTestPKI(t)
	h := &fakeHandler{}
	srv, rec := authServer(t, pki, h, true)
	addr := startTLSListener(t, srv)

	// With the peer's certificate: Authorize sees it before the greeting.
	c := connectTLS(t, addr, pki.clientConfig(true))
	c.expect("201 news.test ")
	calls := rec.seen()
	if len(calls) != 1 || calls[0].TLS == nil || len(calls[0].TLS.PeerCertificates) == 0 {
		t.Fatalf("Authorize saw %+v, want the TLS state with the client certificate", calls)
	}
	if got := calls[0].TLS.PeerCertificates[0]; !got.Equal(pki.clientCert) {
		t.Errorf("Authorize saw certificate %q", got.Subject)
	}
	if s := calls[0]; s.ID == 0 || s.Remote == nil || s.Unix || s.CanFeed {
		t.Errorf("Authorize got facts %+v", s)
	}
	// Under TLS already: no STARTTLS; authenticated by certificate, but
	// AUTHINFO is still there for a User.
	if got, want := c.capabilities(), "VERSION 2|IMPLEMENTATION DST dstd|IHAVE|STREAMING|AUTHINFO USER"; got != want {
		t.Errorf("capabilities %q, want %q", got, want)
	}
	c.send("STARTTLS\r\n")
	c.expect("502 ")
	c.send("IHAVE <a@b.example>\r\n")
	c.expect("335 ")
	c.send(testArticle + ".\r\n")
	c.expect("235 ")
	c.send("QUIT\r\n")
	c.expect("205 ")
	c.expectClosed()
	h.mu.Lock()
	if len(h.sessions) != 1 || h.sessions[0].TLS == nil || !h.sessions[0].CanFeed || h.sessions[0].Peer != "peer.example" {
		t.Errorf("the handler saw sessions %+v", h.sessions)
	}
	h.mu.Unlock()

	// Without a certificate: greeted, but not a feeder until it logs in.
	c = connectTLS(t, addr, pki.clientConfig(false))
	c.expect("201 ")
	c.send("CHECK <a@b.example>\r\n")
	c.expect("480 ")
	c.send("AUTHINFO USER feeder\r\n")
	c.expect("381 ")
	c.send("AUTHINFO PASS " + testPassword + "\r\n")
	c.expect("281 ")
	c.send("CHECK <a@b.example>\r\n")
	c.expect("238 ")
}

func TestImplicitTLSHandshakeTimeout(t *testing.T) {
	pki := newTestPKI(t)
	srv, rec := authServer(t, pki, &fakeHandler{}, false)
	srv.Limits.HandshakeTimeout = 100 * time.Millisecond
	addr := startTLSListener(t, srv)
	c := connect(t, "tcp", addr) // speaks no TLS, says nothing
	start := time.Now()
	if n, err := io.Copy(io.Discard, c.c); err != nil || n != 0 {
		t.Errorf("got %d bytes, %v; want the connection closed", n, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("closed after %v", d)
	}
	if len(rec.seen()) != 0 {
		t.Error("Authorize called without a handshake")
	}
}

func TestStartTLS(t *testing.T) {
	pki := newTestPKI(t)
	h := &fakeHandler{}
	srv, rec := authServer(t, pki, h, true)
	addr := startServer(t, srv)

	c := connect(t, "tcp", addr)
	c.expect("201 ")
	if got, want := c.capabilities(), "VERSION 2|IMPLEMENTATION DST dstd|STARTTLS|AUTHINFO"; got != want {
		t.Errorf("capabilities in clear %q, want %q", got, want)
	}
	c.send("HELP\r\n")
	c.expect("100 ")
	if help := strings.Join(c.multiline(), "|"); !strings.Contains(help, "STARTTLS") || !strings.Contains(help, "AUTHINFO") {
		t.Errorf("HELP in clear: %q", help)
	}
	c.send("IHAVE <a@b.example>\r\n")
	c.expect("480 ") // a certificate or a password may still grant it
	c.send("STARTTLS now\r\n")
	c.expect("501 ")

	c.startTLS(pki.clientConfig(true))
	// RFC 4642 §2.2.2: the client asks again, and the answer is new.
	if got, want := c.capabilities(), "VERSION 2|IMPLEMENTATION DST dstd|IHAVE|STREAMING|AUTHINFO USER"; got != want {
		t.Errorf("capabilities after STARTTLS %q, want %q", got, want)
	}
	calls := rec.seen()
	if len(calls) != 2 || calls[0].TLS != nil || calls[1].TLS == nil || len(calls[1].TLS.PeerCertificates) != 1 {
		t.Fatalf("Authorize calls %+v: want one in clear, then one with the client certificate", calls)
	}
	if calls[1].ID != calls[0].ID || calls[1].CanFeed {
		t.Errorf("second Authorize got %+v: same ID, and no grants carried over", calls[1])
	}
	c.send("STARTTLS\r\n")
	c.expect("502 ") // RFC 4642 §2.2.1
	c.send("MODE STREAM\r\n")
	c.expect("203 ")
	c.send("TAKETHIS <a@b.example>\r\n" + testArticle + ".\r\n")
	c.expect("239 ")
	c.send("QUIT\r\n")
	c.expect("205 ")
	c.expectClosed()
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.received["<a@b.example>"]; !ok {
		t.Error("the article did not reach the handler")
	}
}

// TestStartTLSFailure: a client that goes on in clear after 382 is not
// served; the connection is closed (RFC 4642 §2.2.2).
func TestStartTLSFailure(t *testing.T) {
	pki := newTestPKI(t)
	srv, _ := authServer(t, pki, &fakeHandler{}, true)
	addr := startServer(t, srv)
	c := connect(t, "tcp", addr)
	c.expect("201 ")
	c.send("STARTTLS\r\n")
	c.expect("382 ")
	c.send("DATE\r\n")
	rest, err := io.ReadAll(c.br)
	if err != nil && !strings.Contains(err.Error(), "reset") {
		t.Errorf("reading to the end: %v", err)
	}
	if bytes.Contains(rest, []byte("111")) {
		t.Errorf("a command in clear was answered after 382: %q", rest)
	}
}

// TestStartTLSInjection: commands pipelined after STARTTLS, in clear, must
// not run as if they had come under TLS (CVE-2011-0411).
func TestStartTLSInjection(t *testing.T) {
	pki := newTestPKI(t)
	h := &fakeHandler{}
	srv, _ := authServer(t, pki, h, true)
	addr := startServer(t, srv)
	c := connect(t, "tcp", addr)
	c.expect("201 ")
	c.send("STARTTLS\r\nDATE\r\n")
	c.expect("382 ")
	tc := tls.Client(c.c, pki.clientConfig(false))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	c.c, c.br = tc, bufio.NewReader(tc)
	c.send("QUIT\r\n")
	c.expect("205 ") // not 111: the DATE sent in clear was dropped
}

func TestStartTLSNotOffered(t *testing.T) {
	addr := startServer(t, newServer(&fakeHandler{}, true, false))
	c := connect(t, "tcp", addr)
	c.expect("200 ")
	if got := c.capabilities(); strings.Contains(got, "STARTTLS") || strings.Contains(got, "AUTHINFO") {
		t.Errorf("capabilities %q without TLSConfig or Authenticate", got)
	}
	c.send("STARTTLS\r\n")
	c.expect("580 ") // RFC 4642 §2.2.1: and the session goes on
	c.send("AUTHINFO USER x\r\n")
	c.expect("502 ")
	c.send("IHAVE <a@b.example>\r\n")
	c.expect("502 ") // nothing could grant it
	c.send("DATE\r\n")
	c.expect("111 ")
}

// TestStartTLSRefused: Authorize may refuse once it has seen the TLS
// state; the next command is answered 400 and the session ends.
func TestStartTLSRefused(t *testing.T) {
	pki := newTestPKI(t)
	srv, _ := authServer(t, pki, &fakeHandler{}, false)
	srv.Authorize = func(_ net.Conn, s Session) (Session, bool) {
		return s, s.TLS == nil || len(s.TLS.PeerCertificates) > 0
	}
	addr := startServer(t, srv)
	c := connect(t, "tcp", addr)
	c.expect("201 ")
	c.startTLS(pki.clientConfig(false))
	c.send("CAPABILITIES\r\n")
	c.expect("400 access denied")
	c.expectClosed()
}

func TestAuthinfo(t *testing.T) {
	pki := newTestPKI(t)
	h := &fakeHandler{}
	srv, rec := authServer(t, pki, h, true)
	addr := startServer(t, srv)
	c := connect(t, "tcp", addr)
	c.expect("201 ")
	c.startTLS(pki.clientConfig(false))
	if got, want := c.capabilities(), "VERSION 2|IMPLEMENTATION DST dstd|AUTHINFO USER"; got != want {
		t.Errorf("capabilities %q, want %q", got, want)
	}
	for _, tc := range []struct{ cmd, want string }{
		{"IHAVE <a@b.example>", "480 "},
		{"MODE STREAM", "480 "},
		{"AUTHINFO PASS " + testPassword, "482 "}, // RFC 4643 §2.3.2: PASS before USER
		{"AUTHINFO", "501 "},
		{"AUTHINFO USER", "501 "},
		{"AUTHINFO FOO bar", "501 "},
		{"AUTHINFO SASL PLAIN", "503 "},
		{"AUTHINFO USER feeder", "381 "},
		{"AUTHINFO PASS wrong", "481 "},
		{"AUTHINFO PASS " + testPassword, "482 "}, // a failure forgets the USER
		{"authinfo user feeder", "381 "},
		{"AUTHINFO PASS  \t" + testPassword, "281 "}, // blanks before the password are separators
		{"AUTHINFO USER feeder", "502 "},             // RFC 4643 §2.2: once authenticated
		{"STARTTLS", "502 "},
	} {
		c.send(tc.cmd + "\r\n")
		if got := c.line(); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%q: got %q, want %q...", tc.cmd, got, tc.want)
		}
	}
	if got, want := c.capabilities(), "VERSION 2|IMPLEMENTATION DST dstd|IHAVE|STREAMING"; got != want {
		t.Errorf("capabilities after AUTHINFO %q, want %q", got, want)
	}
	c.send("IHAVE <a@b.example>\r\n")
	c.expect("335 ")
	c.send(testArticle + ".\r\n")
	c.expect("235 ")
	calls := rec.seen()
	if last := calls[len(calls)-1]; last.User != "feeder" || last.TLS == nil {
		t.Errorf("last Authorize got %+v, want User feeder under TLS", last)
	}
}

func TestAuthinfoFailuresClose(t *testing.T) {
	pki := newTestPKI(t)
	srv, _ := authServer(t, pki, &fakeHandler{}, true)
	addr := startTLSListener(t, srv)
	c := connectTLS(t, addr, pki.clientConfig(false))
	c.expect("201 ")
	for i := range maxAuthFailures {
		c.send("AUTHINFO USER feeder\r\n")
		c.expect("381 ")
		c.send("AUTHINFO PASS guess\r\n")
		l := c.expect("481 ")
		if last := i == maxAuthFailures-1; last != strings.Contains(l, "closing") {
			t.Errorf("failure %d: %q", i+1, l)
		}
	}
	c.expectClosed()
}

// TestAuthinfoNeedsAuthorize: a good password that Authorize does not
// honour (say, from the wrong address) is a failure.
func TestAuthinfoNeedsAuthorize(t *testing.T) {
	pki := newTestPKI(t)
	srv, _ := authServer(t, pki, &fakeHandler{}, true)
	srv.Authorize = func(_ net.Conn, s Session) (Session, bool) { return s, s.User == "" }
	addr := startTLSListener(t, srv)
	c := connectTLS(t, addr, pki.clientConfig(false))
	c.expect("201 ")
	c.send("AUTHINFO USER feeder\r\nAUTHINFO PASS " + testPassword + "\r\n")
	c.expect("381 ")
	c.expect("481 ")
	if got := c.capabilities(); !strings.Contains(got, "AUTHINFO USER") {
		t.Errorf("capabilities %q: the session should be as before", got)
	}
}

// TestAuthinfoInClear: a password is never taken without TLS (RFC 4643
// §2.2: 483), and nothing of it reaches Authenticate.
func TestAuthinfoInClear(t *testing.T) {
	pki := newTestPKI(t)
	for _, offerTLS := range []bool{true, false} {
		srv, _ := authServer(t, pki, &fakeHandler{}, true)
		srv.Authenticate = func(*Session, string, string) bool {
			t.Error("Authenticate called in clear")
			return true
		}
		if !offerTLS {
			srv.TLSConfig = nil
		}
		c := connect(t, "tcp", startServer(t, srv))
		c.expect("201 ")
		caps := c.capabilities()
		if strings.Contains(caps, "AUTHINFO USER") || offerTLS != strings.Contains(caps, "AUTHINFO") {
			t.Errorf("TLS offered %v: capabilities %q", offerTLS, caps)
		}
		c.send("AUTHINFO USER feeder\r\n")
		c.expect("483 ")
		c.send("AUTHINFO PASS " + testPassword + "\r\n")
		c.expect("483 ")
		c.send("IHAVE <a@b.example>\r\n")
		if offerTLS {
			c.expect("480 ")
		} else {
			c.expect("502 ") // AUTHINFO can never be used here
		}
	}
}

// TestAuthorizeCannotForgeFacts: the server's facts win over what
// Authorize returns.
func TestAuthorizeCannotForgeFacts(t *testing.T) {
	h := &fakeHandler{}
	srv := newServer(h, true, false)
	srv.Authorize = func(net.Conn, Session) (Session, bool) {
		return Session{ID: 999, User: "root", Unix: true, TLS: &tls.ConnectionState{}, CanPost: true}, true
	}
	c := connect(t, "tcp", startServer(t, srv))
	c.expect("200 ")
	c.send("POST\r\n")
	c.expect("340 ")
	c.send(testArticle + ".\r\n")
	c.expect("240 ")
	if s := h.sessions[0]; s.ID == 999 || s.User != "" || s.Unix || s.TLS != nil || s.Remote == nil || !s.CanPost {
		t.Errorf("handler got %+v", s)
	}
}

// syncBuffer is a bytes.Buffer for a log written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestPasswordNotLogged runs AUTHINFO in every shape with the log at its
// most verbose, and looks for the passwords in it.
func TestPasswordNotLogged(t *testing.T) {
	pki := newTestPKI(t)
	var logs syncBuffer
	srv, _ := authServer(t, pki, &fakeHandler{}, true)
	srv.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: LevelTrace}))
	srv.Limits.MaxLineBytes = 64
	addr := startTLSListener(t, srv)

	long := "longsecret" + strings.Repeat("x", 80)
	c := connectTLS(t, addr, pki.clientConfig(false))
	c.expect("201 ")
	for _, tc := range []struct{ cmd, want string }{
		{"AUTHINFO PASS early-secret", "482 "},
		{"AUTHINFO USER feeder", "381 "},
		{"AUTHINFO PASS wrong-secret", "481 "},
		{"AUTHINFO PASS " + long, "501 "}, // too long, logged in part
		{"AUTHINFO\x01PASS ctl-secret", "500 "},
		{"authinfo  Pass\tcase-secret", "482 "},
		{"AUTHINFO USER feeder", "381 "},
		{"AUTHINFO PASS " + testPassword, "281 "},
	} {
		c.send(tc.cmd + "\r\n")
		if got := c.line(); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%.30q: got %q, want %q...", tc.cmd, got, tc.want)
		}
	}
	c.send("QUIT\r\n")
	c.expect("205 ")
	c.expectClosed()
	// The session's last lines are logged as it ends; wait for them.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "session end") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	out := logs.String()
	for _, secret := range []string{"early-secret", "wrong-secret", "longsecret", "ctl-secret", "case-secret", "s3cret"} {
		if strings.Contains(out, secret) {
			t.Errorf("password %q in the log:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "[redacted]") || !strings.Contains(out, "AUTHINFO USER feeder") {
		t.Errorf("the transcript is missing:\n%s", out)
	}
}
