package nntp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeHandler decides by looking at its input, so a test picks the verdict
// by choosing the Message-ID or the article: a Message-ID or article that
// contains "refuse" is refused, "later" deferred, anything else accepted.
type fakeHandler struct {
	mu       sync.Mutex
	posts    [][]byte
	checks   []string
	received map[string][]byte
	sessions []Session
	// block, if set, holds Post until it is closed or ctx is done; started
	// is told when Post begins.
	block   chan struct{}
	started chan struct{}
	ctxErr  error
}

func decide(s string) Verdict {
	switch {
	case strings.Contains(s, "refuse"):
		return Refused("you said refuse")
	case strings.Contains(s, "later"):
		return Deferred("you said later")
	}
	return Accepted()
}

func (h *fakeHandler) Post(ctx context.Context, s *Session, art []byte) Verdict {
	if h.started != nil {
		h.started <- struct{}{}
	}
	if h.block != nil {
		select {
		case <-h.block:
		case <-ctx.Done():
			h.mu.Lock()
			h.ctxErr = ctx.Err()
			h.mu.Unlock()
			return Deferred("cancelled")
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.posts = append(h.posts, art)
	h.sessions = append(h.sessions, *s)
	return decide(string(art))
}

func (h *fakeHandler) Check(_ context.Context, s *Session, id string) Verdict {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks = append(h.checks, id)
	return decide(id)
}

func (h *fakeHandler) Receive(_ context.Context, s *Session, id string, art []byte) Verdict {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.received == nil {
		h.received = make(map[string][]byte)
	}
	h.received[id] = art
	h.sessions = append(h.sessions, *s)
	return decide(id)
}

func (h *fakeHandler) nPosts() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.posts)
}

// permit returns an Authorize that grants what it is told.
func permit(post, feed bool) func(net.Conn, Session) (Session, bool) {
	return func(_ net.Conn, s Session) (Session, bool) {
		s.CanPost, s.CanFeed = post, feed
		if feed {
			s.Peer = "peer.example"
		}
		return s, true
	}
}

// testLogger sends the server's log, transcripts included, to t.Log, which
// shows it only for failing tests (or with -v).
// A session goroutine may still log after the test has ended (a forced
// Shutdown closes connections without waiting for them); t.Log then would
// race with the end of the test, so the writer goes quiet at cleanup.
func testLogger(t *testing.T) *slog.Logger {
	w := &tWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: LevelTrace}))
}

type tWriter struct {
	t    *testing.T
	mu   sync.Mutex
	done bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// startServer serves srv on a fresh TCP port and returns the address. The
// server is shut down when the test ends.
func startServer(t *testing.T, srv *Server) string {
	t.Helper()
	if srv.Log == nil {
		srv.Log = testLogger(t)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
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
	return ln.Addr().String()
}

func newServer(h Handler, post, feed bool) *Server {
	return &Server{
		Handler:   h,
		Hostname:  "news.test",
		Authorize: permit(post, feed),
		Limits:    Limits{IdleTimeout: 10 * time.Second, ArticleTimeout: 10 * time.Second},
	}
}

// client is the test's side of a session; its helpers fail the test on any
// surprise, so a test reads like a transcript.
type client struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func connect(t *testing.T, network, addr string) *client {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatalf("writing %.40q: %v", s, err)
	}
}

func (c *client) line() string {
	c.t.Helper()
	l, err := c.br.ReadString('\n')
	if err != nil {
		c.t.Fatalf("reading a response: %v (got %q)", err, l)
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("response %q does not end in CRLF", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// expect reads one response line and checks that it starts with prefix.
func (c *client) expect(prefix string) string {
	c.t.Helper()
	l := c.line()
	if !strings.HasPrefix(l, prefix) {
		c.t.Fatalf("got %q, want %q...", l, prefix)
	}
	return l
}

// multiline reads data lines up to ".".
func (c *client) multiline() []string {
	c.t.Helper()
	var lines []string
	for {
		l := c.line()
		if l == "." {
			return lines
		}
		lines = append(lines, l)
	}
}

// expectClosed checks that the server closes the connection, allowing
// lines starting with allowed before it does.
func (c *client) expectClosed(allowed ...string) {
	c.t.Helper()
	for {
		l, err := c.br.ReadString('\n')
		if err != nil {
			if l != "" {
				c.t.Errorf("partial line %q before close", l)
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
				c.t.Errorf("waiting for close: %v", err)
			}
			return
		}
		ok := false
		for _, a := range allowed {
			ok = ok || strings.HasPrefix(l, a)
		}
		if !ok {
			c.t.Fatalf("got %q, want the connection closed", l)
		}
	}
}

const testArticle = "Path: not-for-mail\r\nMessage-ID: <a@b.example>\r\nSubject: x\r\n\r\nbody\r\n"

func TestGreeting(t *testing.T) {
	for _, tc := range []struct {
		post bool
		want string
	}{{true, "200 news.test "}, {false, "201 news.test "}} {
		addr := startServer(t, newServer(&fakeHandler{}, tc.post, true))
		c := connect(t, "tcp", addr)
		c.expect(tc.want)
		c.send("QUIT\r\n")
		c.expect("205 ")
		c.expectClosed()
	}
}

func TestCapabilities(t *testing.T) {
	for _, tc := range []struct {
		post, feed bool
		want       []string
	}{
		{false, false, []string{"VERSION 2", "IMPLEMENTATION DST dstd"}},
		{true, false, []string{"VERSION 2", "IMPLEMENTATION DST dstd", "POST"}},
		{false, true, []string{"VERSION 2", "IMPLEMENTATION DST dstd", "IHAVE", "STREAMING"}},
	} {
		addr := startServer(t, newServer(&fakeHandler{}, tc.post, tc.feed))
		c := connect(t, "tcp", addr)
		c.expect("20")
		c.send("capabilities\r\n") // keywords are case-insensitive
		c.expect("101 ")
		if got := c.multiline(); strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("post=%v feed=%v: capabilities %q, want %q", tc.post, tc.feed, got, tc.want)
		}
		c.send("CAPABILITIES a b\r\n")
		c.expect("501 ")
	}
}

func TestSimpleCommands(t *testing.T) {
	addr := startServer(t, newServer(&fakeHandler{}, true, true))
	c := connect(t, "tcp", addr)
	c.expect("200 ")

	c.send("DATE\r\n")
	d := c.expect("111 ")
	if !regexp.MustCompile(`^111 \d{14}$`).MatchString(d) {
		t.Errorf("DATE answered %q", d)
	}
	if ts, err := time.Parse("20060102150405", d[4:]); err != nil || time.Since(ts).Abs() > time.Minute {
		t.Errorf("DATE %q is not now (UTC): %v", d, err)
	}

	c.send("HELP\r\n")
	c.expect("100 ")
	help := strings.Join(c.multiline(), "\n")
	for _, want := range []string{"CHECK message-ID", "IHAVE message-ID", "POST", "TAKETHIS message-ID", "QUIT"} {
		if !strings.Contains(help, want) {
			t.Errorf("HELP lacks %q:\n%s", want, help)
		}
	}

	for _, tc := range []struct{ cmd, want string }{
		{"MODE STREAM", "203 "},
		{"mode reader", "200 "},
		{"MODE FOO", "501 "},
		{"MODE", "501 "},
		{"FROB", "500 "},
		{"", "500 "},
		{"   ", "500 "},
		{"DATE x", "501 "},
		{"HELP me", "501 "},
		{"POST now", "501 "},
		{"CHECK", "501 "},
		{"CHECK <a@b> <c@d>", "501 "},
		{"IHAVE", "501 "},
		{"DATE \x00", "501 "},
		{"DATE\x00", "500 "},
		{"date\tfoo", "501 "}, // tab separates arguments
		{"ARTICLE <a@b>", "500 "},
	} {
		c.send(tc.cmd + "\r\n")
		if got := c.line(); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%q: got %q, want %q...", tc.cmd, got, tc.want)
		}
		// A good command in between, or the bad ones in a row would
		// end the session (TestTooManyBadCommands).
		c.send("DATE\r\n")
		c.expect("111 ")
	}
	c.send("DATE\n") // a bare LF ends a command line too, as in innd
	c.expect("111 ")
	c.send("QUIT\r\n")
	c.expect("205 ")
	c.expectClosed()
}

func TestPost(t *testing.T) {
	h := &fakeHandler{}
	addr := startServer(t, newServer(h, true, false))
	c := connect(t, "tcp", addr)
	c.expect("200 ")

	// Dot-stuffed lines arrive unstuffed; CRLFs are kept.
	c.send("POST\r\n")
	c.expect("340 ")
	c.send("Subject: x\r\n\r\n..\r\n..leading dot\r\n...two\r\nmid.dle\r\n.\r\n")
	c.expect("240 ")
	if want := "Subject: x\r\n\r\n.\r\n.leading dot\r\n..two\r\nmid.dle\r\n"; string(h.posts[0]) != want {
		t.Errorf("handler got %q, want %q", h.posts[0], want)
	}
	if s := h.sessions[0]; !s.CanPost || s.ID == 0 || s.Remote == nil {
		t.Errorf("session %+v", s)
	}

	for _, tc := range []struct{ body, want string }{
		{"Subject: refuse\r\n\r\nx\r\n", "441 you said refuse"},
		{"Subject: later\r\n\r\nx\r\n", "403 you said later"},
		{"", "240 "}, // an empty article is the handler's business
	} {
		c.send("POST\r\n")
		c.expect("340 ")
		c.send(tc.body + ".\r\n")
		c.expect(tc.want)
	}
	c.send("IHAVE <x@y>\r\n")
	c.expect("502 ")
	c.send("QUIT\r\n")
	c.expect("205 ")
}

func TestPostNotAllowed(t *testing.T) {
	h := &fakeHandler{}
	addr := startServer(t, newServer(h, false, true))
	c := connect(t, "tcp", addr)
	c.expect("201 ")
	c.send("POST\r\n")
	c.expect("440 ")
	c.send("DATE\r\n") // the session goes on
	c.expect("111 ")
	if h.nPosts() != 0 {
		t.Error("handler called")
	}
}

func TestIHave(t *testing.T) {
	h := &fakeHandler{}
	addr := startServer(t, newServer(h, false, true))
	c := connect(t, "tcp", addr)
	c.expect("201 ")
	for _, tc := range []struct{ id, offer, final string }{
		{"<ok@site.example>", "335 ", "235 "},
		{"<refuse@site.example>", "435 you said refuse", ""},
		{"<later@site.example>", "436 you said later", ""},
		{"<bad id@x>", "501 ", ""}, // two arguments
		{"<no-at-sign>", "435 syntax error", ""},
	} {
		c.send("IHAVE " + tc.id + "\r\n")
		c.expect(tc.offer)
		if tc.final != "" {
			c.send(testArticle + ".\r\n")
			c.expect(tc.final)
			if got := string(h.received[tc.id]); got != testArticle {
				t.Errorf("handler received %q", got)
			}
		}
	}
	// The article is refused after 335 when it is malformed.
	c.send("IHAVE <ok2@site.example>\r\n")
	c.expect("335 ")
	c.send("Subject: x\n\nbare LF\n.\r\n")
	c.expect("437 bare LF")
	c.send("QUIT\r\n")
	c.expect("205 ")
}

// rejectingHandler wants every offer but refuses or defers what it gets.
type rejectingHandler struct {
	fakeHandler
	v Verdict
}

func (h *rejectingHandler) Check(context.Context, *Session, string) Verdict { return Accepted() }
func (h *rejectingHandler) Receive(context.Context, *Session, string, []byte) Verdict {
	return h.v
}

func TestIHaveSecondPhase(t *testing.T) {
	for _, tc := range []struct {
		v    Verdict
		want string
	}{
		{Refused("bad signature"), "437 bad signature"},
		{Deferred("disk full"), "436 disk full"},
		{Refused(""), "437 transfer rejected"},
		{Verdict{}, "436 internal error"}, // a zero Verdict is never an ack
	} {
		addr := startServer(t, newServer(&rejectingHandler{v: tc.v}, false, true))
		c := connect(t, "tcp", addr)
		c.expect("201 ")
		c.send("IHAVE <a@b.example>\r\n")
		c.expect("335 ")
		c.send(testArticle + ".\r\n")
		c.expect(tc.want)
		c.send("DATE\r\n")
		c.expect("111 ")
	}
}

func TestFeedNotAllowed(t *testing.T) {
	h := &fakeHandler{}
	addr := startServer(t, newServer(h, true, false))
	c := connect(t, "tcp", addr)
	c.expect("200 ")
	c.send("IHAVE <a@b.example>\r\n")
	c.expect("502 ")
	c.send("CHECK <a@b.example>\r\n")
	c.expect("502 ")
	c.send("MODE STREAM\r\n")
	c.expect("502 ")
	// TAKETHIS's article is read before the refusal, so none of its
	// lines is taken for a command.
	c.send("TAKETHIS <a@b.example>\r\nQUIT\r\n.\r\n")
	c.expect("502 ")
	c.send("TAKETHIS <a@b.example>\x01\r\nQUIT\r\n.\r\n")
	c.expect("502 ")
	c.send("DATE\r\n")
	c.expect("111 ")
	if len(h.checks)+len(h.received) != 0 {
		t.Error("handler called")
	}
}

func TestStreaming(t *testing.T) {
	h := &fakeHandler{}
	addr := startServer(t, newServer(h, false, true))
	c := connect(t, "tcp", addr)
	c.expect("201 ")
	c.send("MODE STREAM\r\n")
	c.expect("203 ")
	for _, tc := range []struct{ cmd, want string }{
		{"CHECK <a@b.example>", "238 <a@b.example>"},
		{"CHECK <refuse@b.example>", "438 <refuse@b.example> you said refuse"},
		{"CHECK <later@b.example>", "431 <later@b.example> you said later"},
		{"CHECK <not valid>", "501 "},
		{"CHECK not-valid", "438 not-valid syntax error"},
		{"TAKETHIS <a@b.example>\r\n" + testArticle + ".", "239 <a@b.example>"},
		{"TAKETHIS <refuse@b.example>\r\n" + testArticle + ".", "439 <refuse@b.example> you said refuse"},
		{"TAKETHIS nonsense\r\n" + testArticle + ".", "439 nonsense syntax error"},
		{"TAKETHIS <x@b.example>\r\nbare\nLF\r\n.", "439 <x@b.example> bare LF"},
		{"TAKETHIS\r\n" + testArticle + ".", "501 "},
		{"TAKETHIS <a\x00@b.example>\r\n" + testArticle + ".", "439 <a @b.example> syntax error"},
	} {
		c.send(tc.cmd + "\r\n")
		if got := c.line(); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%.30q: got %q, want %q...", tc.cmd, got, tc.want)
		}
	}
	if _, ok := h.received["<refuse@b.example>"]; !ok {
		t.Error("refused TAKETHIS did not reach the handler")
	}
	// A temporary failure has no TAKETHIS code: 400 and the end.
	c.send("TAKETHIS <later@b.example>\r\n" + testArticle + ".\r\n")
	c.expect("400 you said later")
	c.expectClosed()
}

// TestPipelining writes 100 CHECK and 100 TAKETHIS before reading any
// answer, as innfeed does, and wants the answers in order.
func TestPipelining(t *testing.T) {
	h := &fakeHandler{}
	addr := startServer(t, newServer(h, false, true))
	c := connect(t, "tcp", addr)
	c.expect("201 ")

	const n = 100
	id := func(i int) string {
		if i%3 == 1 {
			return fmt.Sprintf("<refuse%d@site.example>", i)
		}
		return fmt.Sprintf("<art%d@site.example>", i)
	}
	var batch bytes.Buffer
	batch.WriteString("MODE STREAM\r\n")
	for i := range n {
		fmt.Fprintf(&batch, "CHECK %s\r\n", id(i))
	}
	for i := range n {
		fmt.Fprintf(&batch, "TAKETHIS %s\r\n%s.\r\n", id(i), strings.Replace(testArticle, "<a@b.example>", id(i), 1))
	}
	batch.WriteString("QUIT\r\n")
	c.send(batch.String())

	c.expect("203 ")
	for i := range n {
		want := "238 " + id(i)
		if i%3 == 1 {
			want = "438 " + id(i)
		}
		c.expect(want)
	}
	for i := range n {
		want := "239 " + id(i)
		if i%3 == 1 {
			want = "439 " + id(i)
		}
		c.expect(want)
	}
	c.expect("205 ")
	c.expectClosed()
	if len(h.received) != n {
		t.Errorf("handler received %d articles, want %d", len(h.received), n)
	}
}

// TestOversizeArticle sends 10 MiB to a server that takes 1 KiB: the
// article must be refused without being kept, and the session must go on.
func TestOversizeArticle(t *testing.T) {
	h := &fakeHandler{}
	srv := newServer(h, true, true)
	srv.Limits.MaxArticleBytes = 1 << 10
	addr := startServer(t, srv)

	for _, tc := range []struct{ cmd, intermediate, want string }{
		{"POST", "340 ", "441 article larger than 1024 bytes"},
		{"IHAVE <big@site.example>", "335 ", "437 article larger"},
		{"TAKETHIS <big@site.example>", "", "439 <big@site.example> article larger"},
	} {
		c := connect(t, "tcp", addr)
		c.expect("20")
		c.send(tc.cmd + "\r\n")
		if tc.intermediate != "" {
			c.expect(tc.intermediate)
		}

		line := []byte(strings.Repeat("x", 1022) + "\r\n")
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		c.send("Subject: big\r\n\r\n")
		for range 10 << 10 { // 10 MiB, one preallocated line at a time
			if _, err := c.c.Write(line); err != nil {
				t.Fatal(err)
			}
		}
		c.send(".\r\n")
		c.expect(tc.want)
		runtime.ReadMemStats(&after)
		// Everything the process allocated meanwhile, not just what is
		// live: an article buffered whole would be 10 MiB or more.
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
			t.Errorf("%s: %d bytes allocated while reading a 10 MiB article", tc.cmd, grew)
		}
		c.send("DATE\r\n")
		c.expect("111 ")
	}
	if len(h.posts)+len(h.received) != 0 {
		t.Errorf("the handler saw an oversize article")
	}
}

// TestNoSmuggling: only CRLF "." CRLF ends an article. A ".\n" inside is
// data (and makes the article refused), so the "command" after it is not
// run.
func TestNoSmuggling(t *testing.T) {
	h := &fakeHandler{}
	addr := startServer(t, newServer(h, true, true))
	c := connect(t, "tcp", addr)
	c.expect("200 ")
	c.send("POST\r\n")
	c.expect("340 ")
	c.send("Subject: x\r\n\r\nbody\n.\nPOST\r\n.\r\n")
	c.expect("441 bare LF")
	c.send("DATE\r\n") // the next answer is DATE's, not a smuggled POST's

	c.expect("111 ")
	if h.nPosts() != 0 {
		t.Error("handler called")
	}
}

func TestLongCommandLine(t *testing.T) {
	h := &fakeHandler{}
	addr := startServer(t, newServer(h, true, true))
	c := connect(t, "tcp", addr)
	c.expect("200 ")

	c.send("DATE " + strings.Repeat("x", 100<<10) + "\r\n")
	c.expect("501 ")
	c.send("DATE\r\n")
	c.expect("111 ")

	// 512 bytes with CRLF is the limit (RFC 3977 §3.1); 513 is over.
	c.send("CHECK <" + strings.Repeat("a", 512-len("CHECK <@b>\r\n")) + "@b>\r\n")
	c.expect("438 ") // within the limit, but longer than a msg-id may be
	c.send("CHECK <" + strings.Repeat("a", 513-len("CHECK <@b>\r\n")) + "@b>\r\n")
	c.expect("501 ")

	// A too-long TAKETHIS still has its article read.
	c.send("TAKETHIS <" + strings.Repeat("a", 600) + "@b>\r\n" + "QUIT\r\n.\r\n")
	c.expect("501 ")
	c.send("DATE\r\n")
	c.expect("111 ")
}

func TestTooManyBadCommands(t *testing.T) {
	addr := startServer(t, newServer(&fakeHandler{}, true, true))
	c := connect(t, "tcp", addr)
	c.expect("200 ")
	c.send("GET / HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n" + strings.Repeat("X\r\n", 20))
	c.expectClosed("500 ", "400 too many")
}

// TestBadMessageIDsAreNotBadCommands: a peer offering many malformed
// Message-IDs gets "not wanted" for each, and keeps its session.
func TestBadMessageIDsAreNotBadCommands(t *testing.T) {
	addr := startServer(t, newServer(&fakeHandler{}, false, true))
	c := connect(t, "tcp", addr)
	c.expect("201 ")
	for i := range 2 * maxBadCommands {
		c.send(fmt.Sprintf("CHECK bad%d\r\n", i))
		c.expect(fmt.Sprintf("438 bad%d ", i))
	}
	c.send("DATE\r\n")
	c.expect("111 ")
}

func TestNoHandler(t *testing.T) {
	srv := newServer(nil, true, true)
	srv.Handler = nil
	c := connect(t, "tcp", startServer(t, srv))
	c.expect("400 ")
	c.expectClosed()
}

func TestAccessDenied(t *testing.T) {
	srv := newServer(&fakeHandler{}, true, true)
	srv.Authorize = func(net.Conn, Session) (Session, bool) { return Session{}, false }
	addr := startServer(t, srv)
	c := connect(t, "tcp", addr)
	c.expect("502 access denied")
	c.expectClosed()

	// No Authorize at all fails closed.
	srv2 := newServer(&fakeHandler{}, true, true)
	srv2.Authorize = nil
	c = connect(t, "tcp", startServer(t, srv2))
	c.expect("502 ")
	c.expectClosed()

	// DeniedText says what to do instead, with the connection's facts.
	srv3 := newServer(&fakeHandler{}, true, true)
	srv3.Authorize = func(net.Conn, Session) (Session, bool) { return Session{}, false }
	srv3.DeniedText = func(s Session) string { return "no posting from " + s.Remote.Network() + ": use the socket" }
	c = connect(t, "tcp", startServer(t, srv3))
	c.expect("502 no posting from tcp: use the socket")
	c.expectClosed()
}

func TestMaxConns(t *testing.T) {
	var mu sync.Mutex
	gauge, peak := 0, 0
	srv := newServer(&fakeHandler{}, true, true)
	srv.Limits.MaxConns = 2
	srv.OnConnChange = func(d int) {
		mu.Lock()
		defer mu.Unlock()
		gauge += d
		peak = max(peak, gauge)
	}
	addr := startServer(t, srv)
	c1 := connect(t, "tcp", addr)
	c1.expect("200 ")
	c2 := connect(t, "tcp", addr)
	c2.expect("200 ")
	c3 := connect(t, "tcp", addr)
	c3.expect("400 too many connections")
	c3.expectClosed()

	c1.send("QUIT\r\n")
	c1.expect("205 ")
	c1.expectClosed()
	// The slot is free once the server has noticed.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c4 := connect(t, "tcp", addr)
		if l := c4.line(); strings.HasPrefix(l, "200 ") {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("fourth connection: %q", l)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if peak != 2 {
		t.Errorf("connection gauge peaked at %d, want 2", peak)
	}
}

func TestIdleTimeout(t *testing.T) {
	srv := newServer(&fakeHandler{}, true, true)
	srv.Limits.IdleTimeout = 100 * time.Millisecond
	addr := startServer(t, srv)
	c := connect(t, "tcp", addr)
	c.expect("200 ")
	start := time.Now()
	c.expectClosed("400 idle timeout")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("closed after %v", d)
	}
}

func TestArticleTimeout(t *testing.T) {
	srv := newServer(&fakeHandler{}, true, true)
	srv.Limits.ArticleTimeout = 100 * time.Millisecond
	addr := startServer(t, srv)
	c := connect(t, "tcp", addr)
	c.expect("200 ")
	c.send("POST\r\n")
	c.expect("340 ")
	c.send("Subject: slow\r\n") // and nothing more
	c.expectClosed()
}

func TestShutdownIdle(t *testing.T) {
	srv := newServer(&fakeHandler{}, true, true)
	srv.Log = testLogger(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), ln) }()
	c := connect(t, "tcp", ln.Addr().String())
	c.expect("200 ")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Shutdown took %v with an idle connection", d)
	}
	c.expectClosed("400 server shutting down")
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("still accepting after Shutdown")
	}
}

// TestShutdownBusy: the command in progress is finished and answered, then
// the connection is closed.
func TestShutdownBusy(t *testing.T) {
	h := &fakeHandler{block: make(chan struct{}), started: make(chan struct{}, 1)}
	srv := newServer(h, true, true)
	addr := startServer(t, srv)
	c := connect(t, "tcp", addr)
	c.expect("200 ")
	c.send("POST\r\n")
	c.expect("340 ")
	c.send(testArticle + ".\r\n")
	<-h.started

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v while a command was in progress", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(h.block)
	c.expect("240 ")
	c.expectClosed("400 server shutting down")
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestShutdownForced: when Shutdown's context expires, busy connections
// are closed and their handlers' contexts cancelled.
func TestShutdownForced(t *testing.T) {
	h := &fakeHandler{block: make(chan struct{}), started: make(chan struct{}, 1)}
	srv := newServer(h, true, true)
	srv.Log = testLogger(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(context.Background(), ln)
	c := connect(t, "tcp", ln.Addr().String())
	c.expect("200 ")
	c.send("POST\r\n")
	c.expect("340 ")
	c.send(testArticle + ".\r\n")
	<-h.started

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want DeadlineExceeded", err)
	}
	// The handler may still get its answer out before the close wins.
	c.expectClosed("403 cancelled", "400 ")
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.mu.Lock()
		cerr := h.ctxErr
		h.mu.Unlock()
		if cerr != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the handler's context was not cancelled")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestServeContext: cancelling Serve's context stops it and drains.
func TestServeContext(t *testing.T) {
	srv := newServer(&fakeHandler{}, true, true)
	srv.Log = testLogger(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	c := connect(t, "tcp", ln.Addr().String())
	c.expect("200 ")
	cancel()
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	c.expectClosed("400 ")
}

// TestClientInterop runs the package's own Client (what dstc uses) against
// the Server over a Unix socket.
func TestClientInterop(t *testing.T) {
	h := &fakeHandler{}
	srv := newServer(h, false, false)
	srv.Log = testLogger(t)
	srv.Authorize = func(_ net.Conn, s Session) (Session, bool) {
		s.CanPost = s.Unix
		return s, true
	}
	path := filepath.Join(t.TempDir(), "post.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(context.Background(), ln)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()

	cl, err := Dial(context.Background(), "unix:"+path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !cl.PostingAllowed() {
		t.Error("PostingAllowed = false over the socket")
	}
	if err := cl.Post(context.Background(), []byte("Subject: x\n\n.dot\nbody\n")); err != nil {
		t.Fatalf("Post: %v", err)
	}
	var ne *Error
	err = cl.Post(context.Background(), []byte("Subject: refuse\n\nx\n"))
	if !errors.As(err, &ne) || ne.Code != 441 || !ne.Permanent() {
		t.Errorf("refused Post: %v", err)
	}
	err = cl.Post(context.Background(), []byte("Subject: later\n\nx\n"))
	if !errors.As(err, &ne) || ne.Code != 403 || ne.Permanent() {
		t.Errorf("deferred Post: %v, want a temporary *Error", err)
	}
	if err := cl.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if got, want := string(h.posts[0]), "Subject: x\r\n\r\n.dot\r\nbody\r\n"; got != want {
		t.Errorf("handler got %q, want %q", got, want)
	}
	if !h.sessions[0].Unix {
		t.Error("session not marked Unix")
	}
}
