package nntp

import (
	"bytes"
	"context"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/article"
)

// scriptConn is a net.Conn that reads a fixed client byte stream, then EOF,
// and records what the server writes. It makes a fuzz run deterministic and
// fast, and, the input being finite, bounds the session.
type scriptConn struct {
	in  *bytes.Reader
	mu  sync.Mutex
	out bytes.Buffer
}

func (c *scriptConn) Read(p []byte) (int, error) { return c.in.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(p)
}
func (c *scriptConn) Close() error                     { return nil }
func (c *scriptConn) LocalAddr() net.Addr              { return fuzzAddr{} }
func (c *scriptConn) RemoteAddr() net.Addr             { return fuzzAddr{} }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

type fuzzAddr struct{}

func (fuzzAddr) Network() string { return "fuzz" }
func (fuzzAddr) String() string  { return "fuzz:0" }

// checkingHandler decides like fakeHandler (plus "zero" for an invalid
// Verdict) and checks what the server hands it. Pipelined TAKETHIS
// articles are received concurrently, hence mu.
type checkingHandler struct {
	t        *testing.T
	maxBytes int64
	mu       sync.Mutex
	accepted int // articles accepted by Post or Receive
}

func (h *checkingHandler) accept() {
	h.mu.Lock()
	h.accepted++
	h.mu.Unlock()
}

func (h *checkingHandler) verdict(s string) Verdict {
	if strings.Contains(s, "zero") {
		return Verdict{}
	}
	return decide(s)
}

func (h *checkingHandler) checkArticle(art []byte) {
	if int64(len(art)) > h.maxBytes {
		h.t.Errorf("handler got %d bytes, limit %d", len(art), h.maxBytes)
	}
	if len(art) > 0 && !bytes.HasSuffix(art, []byte("\r\n")) {
		h.t.Errorf("article %q does not end in CRLF", art)
	}
	for _, l := range bytes.SplitAfter(art, []byte("\r\n")) {
		body := bytes.TrimSuffix(l, []byte("\r\n"))
		if bytes.ContainsAny(body, "\r\n") {
			h.t.Errorf("bare CR or LF in article line %q", l)
		}
	}
}

func (h *checkingHandler) Post(_ context.Context, s *Session, art []byte) Verdict {
	if !s.CanPost {
		h.t.Error("Post in a session without CanPost")
	}
	h.checkArticle(art)
	v := h.verdict(string(art))
	if v.Kind == Accept {
		h.accept()
	}
	return v
}

func (h *checkingHandler) Check(_ context.Context, s *Session, id string) Verdict {
	if !s.CanFeed {
		h.t.Error("Check in a session without CanFeed")
	}
	if !article.ValidMessageID(id) {
		h.t.Errorf("Check got invalid Message-ID %q", id)
	}
	return h.verdict(id)
}

func (h *checkingHandler) Receive(_ context.Context, s *Session, id string, art []byte) Verdict {
	if !s.CanFeed {
		h.t.Error("Receive in a session without CanFeed")
	}
	if !article.ValidMessageID(id) {
		h.t.Errorf("Receive got invalid Message-ID %q", id)
	}
	h.checkArticle(art)
	v := h.verdict(id)
	if v.Kind == Accept {
		h.accept()
	}
	return v
}

// FuzzServer feeds arbitrary client byte streams to a session. Beyond not
// panicking and ending, the server must speak well-formed NNTP: status
// lines "ddd text" of at most 512 octets, multi-line blocks only after 100
// and 101 and always closed by ".", nothing after 205 or 400, and exactly
// one acknowledgement (235, 239, 240) per article the handler accepted,
// except after a 400: articles pipelined behind a deferred TAKETHIS may be
// accepted and left unanswered (see takethis), never the other way round.
// perms chooses CanPost (bit 0) and CanFeed (bit 1), and offers STARTTLS
// (bit 2) and AUTHINFO (bit 3). The script is clear text, so a handshake
// after STARTTLS fails and ends the session; what is fuzzed there is the
// way to it, and AUTHINFO in clear.
func FuzzServer(f *testing.F) {
	pki := newTestPKI(f)
	art := "Path: not-for-mail\r\nFrom: DST <dst@site-a.example>\r\nNewsgroups: dst.reports\r\n" +
		"Subject: trap hit 203.0.113.7\r\nMessage-ID: <u1@site-a.example>\r\n\r\n..dotted\r\nbody\r\n"
	for _, seed := range []struct {
		perms  uint8
		stream string
	}{
		{1, "POST\r\n" + art + ".\r\nQUIT\r\n"},
		{1, "CAPABILITIES\r\nMODE READER\r\nPOST\r\nSubject: refuse\r\n\r\nx\r\n.\r\nPOST\r\n" + art + ".\r\nQUIT\r\n"},
		{2, "CAPABILITIES\r\nIHAVE <u1@site-a.example>\r\n" + art + ".\r\nIHAVE <refuse@x>\r\nIHAVE <later@x>\r\nQUIT\r\n"},
		{2, "MODE STREAM\r\nCHECK <u1@site-a.example>\r\nCHECK <refuse@x>\r\nTAKETHIS <u1@site-a.example>\r\n" + art + ".\r\n" +
			"TAKETHIS <refuse@x>\r\n" + art + ".\r\nCHECK <later@x>\r\nQUIT\r\n"},
		{2, "MODE STREAM\r\nTAKETHIS <later@x>\r\n" + art + ".\r\nCHECK <a@b>\r\n"},
		{2, "TAKETHIS <a1@x>\r\n" + art + ".\r\nCHECK <a2@x>\r\nTAKETHIS <later@x>\r\n" + art + ".\r\nTAKETHIS <a3@x>\r\n" + art +
			".\r\nTAKETHIS <zero@x>\r\n" + art + ".\r\nDATE\r\n"},
		{2, "TAKETHIS <a1@x>\r\n" + art + ".\r\nTAKETHIS <refuse@x>\r\n" + art + ".\r\nMODE STREAM\r\nTAKETHIS <a2@x>\r\n" + art + ".\r\n"},
		{3, "HELP\r\nDATE\r\nPOST\r\nbare\nLF\r\n.\n.\r\nTAKETHIS bad\r\nx\r\n.\r\nCHECK\r\nIHAVE <zero@x>\r\n" + art + ".\r\n"},
		{3, "DATE " + strings.Repeat("x", 600) + "\r\nTAKETHIS <" + strings.Repeat("y", 600) + "@x>\r\nQUIT\r\n.\r\nDATE\r\n"},
		{3, "POST\r\n" + strings.Repeat("0123456789abcdef\r\n", 200) + ".\r\nDATE\r\n"},
		{0, "POST\r\nIHAVE <a@b>\r\nTAKETHIS <a@b>\r\nQUIT\r\n.\r\nMODE STREAM\r\nmode stream\r\n"},
		{3, "GET / HTTP/1.0\r\n\r\n\x00\x01\r\n"},
		{12, "CAPABILITIES\r\nHELP\r\nIHAVE <a@b>\r\nAUTHINFO USER feeder\r\nAUTHINFO PASS s3cret\r\nSTARTTLS\r\nCAPABILITIES\r\n"},
		{8, "AUTHINFO PASS x\r\nAUTHINFO\r\nAUTHINFO SASL PLAIN\r\nauthinfo user a b\r\nMODE STREAM\r\nTAKETHIS <a@b>\r\nx\r\n.\r\nCHECK <a@b>\r\n"},
		{6, "MODE STREAM\r\nSTARTTLS\r\n\x16\x03\x01\x00\x05hello"},
		{4, "STARTTLS x\r\nSTARTTLS\r\nDATE\r\n"},
		{1, "STARTTLS\r\nAUTHINFO USER a\r\nQUIT\r\n"},
		{15, "AUTHINFO PASS " + strings.Repeat("p", 600) + "\r\nDATE\r\nQUIT\r\n"},
	} {
		f.Add(seed.perms, []byte(seed.stream))
	}

	status := regexp.MustCompile(`^[1-5][0-9][0-9]( [^\x00-\x1f\x7f]*)?$`)
	f.Fuzz(func(t *testing.T, perms uint8, stream []byte) {
		h := &checkingHandler{t: t, maxBytes: 2048}
		srv := &Server{
			Handler:  h,
			Hostname: "fuzz.test",
			Authorize: func(_ net.Conn, s Session) (Session, bool) {
				s.CanPost, s.CanFeed = perms&1 != 0, perms&2 != 0 || s.User != ""
				return s, true
			},
			Limits: Limits{MaxArticleBytes: h.maxBytes},
		}
		if perms&4 != 0 {
			srv.TLSConfig = pki.serverConfig()
		}
		if perms&8 != 0 {
			srv.Authenticate = func(_ *Session, user, pass string) bool {
				t.Errorf("Authenticate(%q) called without TLS", user)
				return true
			}
		}
		conn := &scriptConn{in: bytes.NewReader(stream)}
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.ServeConn(context.Background(), conn)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("ServeConn did not return after the input ended")
		}

		out := conn.out.String()
		// After 382 the stream belongs to TLS (here a failed handshake,
		// and maybe its alert): what follows is not NNTP.
		if i := strings.Index("\r\n"+out, "\r\n382 "); i >= 0 {
			out = out[:i+strings.Index(out[i:], "\r\n")+2]
		}
		if !strings.HasSuffix(out, "\r\n") {
			t.Fatalf("output does not end in CRLF: %q", out)
		}
		lines := strings.Split(strings.TrimSuffix(out, "\r\n"), "\r\n")
		inBlock, ended, acks, last := false, false, 0, ""
		for i, l := range lines {
			switch {
			case ended:
				t.Fatalf("line %d %q after the session ended", i, l)
			case strings.ContainsAny(l, "\r\n"):
				t.Fatalf("line %d %q has a bare CR or LF", i, l)
			case inBlock:
				if l == "." {
					inBlock = false
				} else if strings.HasPrefix(l, ".") {
					t.Fatalf("line %d %q: data line not dot-stuffed", i, l)
				}
				continue
			case !status.MatchString(l):
				t.Fatalf("line %d %q is not a status line", i, l)
			case len(l)+2 > maxResponseBytes:
				t.Fatalf("line %d is %d bytes long", i, len(l)+2)
			case i == 0 && l[:3] != "200" && l[:3] != "201":
				t.Fatalf("greeting %q", l)
			}
			last = l[:3]
			switch last {
			case "100", "101":
				inBlock = true
			case "205", "400":
				ended = true
			case "235", "239", "240":
				acks++
			}
		}
		if inBlock {
			t.Fatalf("multi-line response not terminated: %q", out)
		}
		// ServeConn has returned, so every Receive has.
		if acks > h.accepted || acks < h.accepted && last != "400" {
			t.Fatalf("%d acknowledgements for %d accepted articles", acks, h.accepted)
		}
	})
}
