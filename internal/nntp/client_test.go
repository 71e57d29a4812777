package nntp

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/textproto"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeConn is the server side of a scripted session. Its helpers fail the
// test on any surprise, so scripts read like a transcript.
type fakeConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func (f *fakeConn) send(line string) {
	f.t.Helper()
	if _, err := io.WriteString(f.c, line+"\r\n"); err != nil {
		f.t.Errorf("server: writing %q: %v", line, err)
	}
}

// expect reads one raw line and checks it, CRLF included.
func (f *fakeConn) expect(want string) {
	f.t.Helper()
	line, err := f.br.ReadString('\n')
	if err != nil {
		f.t.Errorf("server: waiting for %q: %v", want, err)
		return
	}
	if line != want+"\r\n" {
		f.t.Errorf("server: got %q, want %q", line, want+"\r\n")
	}
}

// readArticle reads the raw dot-encoded article up to and including the
// terminating ".\r\n".
func (f *fakeConn) readArticle() string {
	f.t.Helper()
	var b strings.Builder
	for {
		line, err := f.br.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			f.t.Errorf("server: reading article: %v (got %q)", err, b.String())
			return b.String()
		}
		if line == ".\r\n" {
			return b.String()
		}
	}
}

// serve starts a one-connection server on network ("tcp" or "unix") that
// runs script, and returns the address to give Dial. The test waits for
// the script to finish.
func serve(t *testing.T, network string, script func(*fakeConn)) string {
	t.Helper()
	var ln net.Listener
	var err error
	var addr string
	switch network {
	case "tcp":
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err == nil {
			addr = ln.Addr().String()
		}
	case "unix":
		path := filepath.Join(t.TempDir(), "nntp.sock")
		ln, err = net.Listen("unix", path)
		addr = path
	}
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
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		script(&fakeConn{t: t, c: c, br: bufio.NewReader(c)})
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return addr
}

func dial(t *testing.T, addr string) *Client {
	t.Helper()
	c, err := Dial(context.Background(), addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPostAccepted(t *testing.T) {
	for _, tc := range []struct {
		name, article, wire string
	}{
		{"CRLF", "Subject: x\r\n\r\nbody\r\n", "Subject: x\r\n\r\nbody\r\n.\r\n"},
		{"bare LF becomes CRLF", "Subject: x\n\nline 1\nline 2\n", "Subject: x\r\n\r\nline 1\r\nline 2\r\n.\r\n"},
		{"dot-stuffing", "Subject: x\r\n\r\n.\r\n.leading dot\r\n..two\r\nmid.dle\r\n", "Subject: x\r\n\r\n..\r\n..leading dot\r\n...two\r\nmid.dle\r\n.\r\n"},
		{"dot-stuffing with bare LF", "Subject: x\n\n.\n", "Subject: x\r\n\r\n..\r\n.\r\n"},
		{"unterminated last line", "Subject: x\r\n\r\nlast", "Subject: x\r\n\r\nlast\r\n.\r\n"},
	} {
		for _, network := range []string{"tcp", "unix"} {
			t.Run(tc.name+"/"+network, func(t *testing.T) {
				addr := serve(t, network, func(s *fakeConn) {
					s.send("200 dstd ready, posting allowed")
					s.expect("POST")
					s.send("340 send article")
					if got := s.readArticle(); got != tc.wire {
						t.Errorf("server received %q, want %q", got, tc.wire)
					}
					s.send("240 article received")
					s.expect("QUIT")
					s.send("205 bye")
				})
				if network == "unix" {
					addr = "unix:" + addr
				}
				c := dial(t, addr)
				if !c.PostingAllowed() {
					t.Error("PostingAllowed = false after 200")
				}
				if err := c.Post(context.Background(), []byte(tc.article)); err != nil {
					t.Fatalf("Post: %v", err)
				}
				if err := c.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
		}
	}
}

func TestUnixPathWithoutPrefix(t *testing.T) {
	addr := serve(t, "unix", func(s *fakeConn) {
		s.send("201 no posting")
		s.expect("QUIT")
		s.send("205 bye")
	})
	c := dial(t, addr) // an absolute path, no "unix:"
	if c.PostingAllowed() {
		t.Error("PostingAllowed = true after 201")
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestPostRefused(t *testing.T) {
	for _, tc := range []struct {
		name      string
		script    func(*fakeConn)
		code      int
		permanent bool
	}{
		{"441 after the article", func(s *fakeConn) {
			s.send("200 ready")
			s.expect("POST")
			s.send("340 go ahead")
			s.readArticle()
			s.send("441 no Source-IP in report")
			// The session goes on after a refusal.
			s.expect("QUIT")
			s.send("205 bye")
		}, 441, true},
		{"440 posting not permitted", func(s *fakeConn) {
			s.send("201 read only")
			s.expect("POST")
			s.send("440 posting not permitted")
			s.expect("QUIT")
			s.send("205 bye")
		}, 440, false},
		{"400 after POST", func(s *fakeConn) {
			s.send("200 ready")
			s.expect("POST")
			s.send("400 shutting down")
			s.expect("QUIT")
			s.send("205 bye")
		}, 400, false},
		{"436 after the article", func(s *fakeConn) {
			s.send("200 ready")
			s.expect("POST")
			s.send("340 go ahead")
			s.readArticle()
			s.send("436 store failed, try later")
			s.expect("QUIT")
			s.send("205 bye")
		}, 436, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, serve(t, "tcp", tc.script))
			err := c.Post(context.Background(), []byte("Subject: x\r\n\r\nbody\r\n"))
			var ne *Error
			if !errors.As(err, &ne) {
				t.Fatalf("Post error %v is not an *Error", err)
			}
			if ne.Code != tc.code || ne.Permanent() != tc.permanent {
				t.Errorf("got code %d permanent %v, want %d %v", ne.Code, ne.Permanent(), tc.code, tc.permanent)
			}
			if !strings.Contains(err.Error(), "NNTP server replied") {
				t.Errorf("error text %q", err)
			}
			if err := c.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
}

func TestDialRefused(t *testing.T) {
	for _, tc := range []struct {
		greeting string
		code     int
	}{
		{"400 service temporarily unavailable", 400},
		{"502 service permanently unavailable", 502},
		{"480 odd greeting", 480},
	} {
		t.Run(tc.greeting, func(t *testing.T) {
			addr := serve(t, "tcp", func(s *fakeConn) { s.send(tc.greeting) })
			c, err := Dial(context.Background(), addr, 5*time.Second)
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			var ne *Error
			if !errors.As(err, &ne) || ne.Code != tc.code {
				t.Fatalf("Dial error %v, want *Error with code %d", err, tc.code)
			}
			if ne.Permanent() {
				t.Error("a refused greeting must not count as permanent")
			}
		})
	}
}

func TestDialBadGreeting(t *testing.T) {
	for _, greeting := range []string{"hello", "20", "2000 x", "099 x", "+20 x", strings.Repeat("2", maxResponseLine+10)} {
		addr := serve(t, "tcp", func(s *fakeConn) { s.send(greeting) })
		c, err := Dial(context.Background(), addr, 5*time.Second)
		if err == nil {
			c.Close()
			t.Fatalf("Dial accepted greeting %.20q", greeting)
		}
		var ne *Error
		if errors.As(err, &ne) {
			t.Errorf("greeting %.20q gave *Error %v, want a protocol error", greeting, err)
		}
	}
}

func TestDialNoServer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.sock")
	_, err := Dial(context.Background(), path, time.Second)
	if err == nil || !strings.Contains(err.Error(), "connecting to "+path) {
		t.Errorf("err = %v", err)
	}
}

func TestServerClosesMidArticle(t *testing.T) {
	addr := serve(t, "tcp", func(s *fakeConn) {
		s.send("200 ready")
		s.expect("POST")
		s.send("340 go ahead")
		s.expect("Subject: x") // first line only, then hang up
	})
	c := dial(t, addr)
	err := c.Post(context.Background(), []byte("Subject: x\r\n\r\n"+strings.Repeat("body line\r\n", 10)))
	if err == nil {
		t.Fatal("Post succeeded")
	}
	var ne *Error
	if errors.As(err, &ne) {
		t.Errorf("got *Error %v, want an I/O error", err)
	}
	// The session is gone; another Post must not talk to the socket.
	if err2 := c.Post(context.Background(), []byte("Subject: y\r\n\r\n")); err2 == nil || !strings.Contains(err2.Error(), "unusable") {
		t.Errorf("second Post: %v", err2)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close after a broken session: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestPostHonoursContext(t *testing.T) {
	t.Run("deadline", func(t *testing.T) {
		release := make(chan struct{})
		addr := serve(t, "tcp", func(s *fakeConn) {
			s.send("200 ready")
			s.expect("POST")
			<-release // never answers in time
		})
		defer close(release)
		c := dial(t, addr)
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := c.Post(ctx, []byte("Subject: x\r\n\r\n"))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("Post took %v", d)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		release := make(chan struct{})
		addr := serve(t, "tcp", func(s *fakeConn) {
			s.send("200 ready")
			s.expect("POST")
			<-release
		})
		defer close(release)
		c := dial(t, addr)
		defer c.Close()
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		err := c.Post(ctx, []byte("Subject: x\r\n\r\n"))
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})
	t.Run("already cancelled", func(t *testing.T) {
		addr := serve(t, "tcp", func(s *fakeConn) {
			s.send("200 ready")
			// Nothing was sent, so the session is still good.
			s.expect("QUIT")
			s.send("205 bye")
		})
		c := dial(t, addr)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := c.Post(ctx, []byte("Subject: x\r\n\r\n")); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	t.Run("client timeout", func(t *testing.T) {
		release := make(chan struct{})
		addr := serve(t, "tcp", func(s *fakeConn) {
			s.send("200 ready")
			s.expect("POST")
			<-release
		})
		defer close(release)
		c, err := Dial(context.Background(), addr, 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		err = c.Post(context.Background(), []byte("Subject: x\r\n\r\n"))
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("err = %v, want a timeout", err)
		}
	})
}

func TestCloseWithoutGoodbye(t *testing.T) {
	addr := serve(t, "tcp", func(s *fakeConn) {
		s.send("200 ready")
		s.expect("QUIT")
		s.send("500 what?")
	})
	c := dial(t, addr)
	err := c.Close()
	var ne *Error
	if !errors.As(err, &ne) || ne.Code != 500 {
		t.Errorf("Close = %v, want *Error 500", err)
	}
}

// countingConn counts the writes made to a connection.
type countingConn struct {
	net.Conn
	writes int
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes++
	return c.Conn.Write(p)
}

// TestTakeTheseOneWrite: the TAKETHIS of a TakeThese go out in order, in
// one write while they fit the buffer, and their answers come back in
// order; a bad message-ID among them stops all before anything is sent.
func TestTakeTheseOneWrite(t *testing.T) {
	body := strings.Repeat("a report line of the size of a DST report.\r\n", 35) // about 1.5 KiB
	ids := []string{"<1@take.test>", "<2@take.test>", "<3@take.test>"}
	addr := serve(t, "tcp", func(f *fakeConn) {
		f.send("200 ready")
		for _, id := range ids {
			f.expect("TAKETHIS " + id)
			if got, want := f.readArticle(), "Message-ID: "+id+"\r\n\r\n"+body+".\r\n"; got != want {
				t.Errorf("server: article %s is %q, want %q", id, got, want)
			}
		}
		for _, id := range ids {
			f.send("239 " + id)
		}
		f.expect("QUIT")
		f.send("205 bye")
	})
	c := dial(t, addr)
	cc := &countingConn{Conn: c.conn}
	c.conn, c.w = cc, textproto.NewWriter(bufio.NewWriterSize(cc, clientWriteBuffer))
	ctx := context.Background()

	if err := c.TakeThese(ctx, Offer{ID: ids[0], Article: []byte("x")}, Offer{ID: "no-brackets", Article: []byte("x")}); err == nil || cc.writes != 0 {
		t.Errorf("with a bad message-ID: %v and %d writes, want an error and none", err, cc.writes)
	}
	var offers []Offer
	for _, id := range ids {
		offers = append(offers, Offer{ID: id, Article: []byte("Message-ID: " + id + "\r\n\r\n" + body)})
	}
	if err := c.TakeThese(ctx, offers...); err != nil {
		t.Fatal(err)
	}
	if cc.writes != 1 {
		t.Errorf("%d TAKETHIS of %d bytes each took %d writes, want 1", len(ids), len(offers[0].Article), cc.writes)
	}
	for _, id := range ids {
		r, err := c.NextResult(ctx)
		if err != nil || r.MsgID != id || r.Code != 239 {
			t.Errorf("answer %+v, %v; want 239 for %s", r, err, id)
		}
	}
	if err := c.Close(); err != nil {
		t.Error(err)
	}
}
