package nntp

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// The tests of pipelined TAKETHIS (pipeline.go): Receive calls of one
// connection run at once, and everything else stays as if commands were run
// one at a time.

// stuckAfter is how long a test handler waits for something the server
// should make happen before it gives up and fails the test, rather than
// hang it.
const stuckAfter = 5 * time.Second

// takeThis is a TAKETHIS command with its article, whose Message-ID is id.
func takeThis(id string) string {
	return "TAKETHIS " + id + "\r\n" + strings.Replace(testArticle, "<a@b.example>", id, 1) + ".\r\n"
}

// pipeHandler records, in order, the calls the server makes ("check <id>",
// "receive <id>" when a Receive starts and "received <id>" when it
// returns), and holds every Receive until release is closed or its ctx is
// done. It decides like fakeHandler.
type pipeHandler struct {
	fakeHandler
	t        *testing.T
	release  chan struct{}
	mu       sync.Mutex
	events   []string
	inFlight int // Receive calls running
	peak     int // the most Receive calls that ran at once
	// afterCancel, if set, is how long Receive goes on after its ctx is
	// done, as a handler that finishes its commit would.
	afterCancel time.Duration
	// slow is how long Receive goes on after release, by Message-ID.
	slow map[string]time.Duration
}

func newPipeHandler(t *testing.T) *pipeHandler {
	return &pipeHandler{t: t, release: make(chan struct{})}
}

func (h *pipeHandler) event(e string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, e)
}

func (h *pipeHandler) Check(_ context.Context, _ *Session, id string) Verdict {
	h.event("check " + id)
	return decide(id)
}

func (h *pipeHandler) Receive(ctx context.Context, _ *Session, id string, _ []byte) Verdict {
	h.mu.Lock()
	h.events = append(h.events, "receive "+id)
	h.inFlight++
	h.peak = max(h.peak, h.inFlight)
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.events = append(h.events, "received "+id)
		h.inFlight--
		h.mu.Unlock()
	}()
	select {
	case <-h.release:
		time.Sleep(h.slow[id])
	case <-ctx.Done():
		time.Sleep(h.afterCancel)
		return Deferred("cancelled")
	case <-time.After(stuckAfter):
		h.t.Errorf("Receive(%s) was never released", id)
	}
	return decide(id)
}

// waitFor polls cond until it holds, or fails the test after stuckAfter.
func (h *pipeHandler) waitFor(what string, cond func(events []string, inFlight int) bool) {
	h.t.Helper()
	deadline := time.Now().Add(stuckAfter)
	for {
		h.mu.Lock()
		ok := cond(h.events, h.inFlight)
		events := slices.Clone(h.events)
		h.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s; handler calls: %q", what, events)
		}
		time.Sleep(time.Millisecond)
	}
}

// settled checks cond in a synctest bubble once every goroutine of the
// bubble but the test's is durably blocked: what a server would do next
// without more input has been done, so cond failing is not a matter of
// timing.
func (h *pipeHandler) settled(what string, cond func(events []string, inFlight int) bool) {
	h.t.Helper()
	synctest.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	if !cond(h.events, h.inFlight) {
		h.t.Fatalf("once the server had done what it could: not %s; %d Receive calls running, handler calls: %q", what, h.inFlight, h.events)
	}
}

func (h *pipeHandler) snapshot() (events []string, inFlight, peak int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.events), h.inFlight, h.peak
}

// countPrefix counts the events that start with prefix.
func countPrefix(events []string, prefix string) int {
	n := 0
	for _, e := range events {
		if strings.HasPrefix(e, prefix) {
			n++
		}
	}
	return n
}

// servePipe serves one connection with ServeConn under ctx over net.Pipe
// and returns the client's side and a channel closed when ServeConn has
// returned. It is for tests run in a synctest bubble: there, a goroutine
// blocked on the pipe, on a channel or on a sync.Cond is durably blocked,
// so after synctest.Wait the server has done everything it would do
// without more input, and a negative assertion ("IHAVE was not run yet")
// cannot pass just because a wrong server was slow. Over TCP, a goroutine
// blocked in a read is not durably blocked, so synctest.Wait would never
// return. A net.Pipe write waits for the reader: a test that sends more
// than the server reads before it answers writes from a goroutine.
func servePipe(t *testing.T, srv *Server, ctx context.Context) (*client, <-chan struct{}) {
	t.Helper()
	if srv.Log == nil {
		srv.Log = testLogger(t)
	}
	cc, sc := net.Pipe()
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.ServeConn(ctx, sc)
	}()
	c := &client{t: t, c: cc, br: bufio.NewReader(cc)}
	cc.SetDeadline(time.Now().Add(20 * time.Second)) // the bubble's clock
	t.Cleanup(func() {
		cc.Close()
		<-served
	})
	return c, served
}

// expectSilence checks, in a synctest bubble, that the server has nothing
// to say once every goroutine has done what it can: a response would be
// a pipe write waiting for this read.
func (c *client) expectSilence(why string) {
	c.t.Helper()
	synctest.Wait()
	// The bubble's clock moves only once every goroutine in it is
	// durably blocked, so this deadline passes only if no response is
	// on its way.
	c.c.SetReadDeadline(time.Now().Add(time.Nanosecond))
	if l, err := c.br.ReadString('\n'); err == nil || l != "" {
		c.t.Fatalf("answered %q %s", l, why)
	}
	c.c.SetReadDeadline(time.Now().Add(20 * time.Second))
}

// reverseHandler's Receive waits until all n calls are in flight, then
// they return in the reverse of the order of their articles: the call for
// <art{i}...> returns after the one for <art{i+1}...>. A server that runs
// them one at a time fails the test after stuckAfter instead of hanging.
type reverseHandler struct {
	fakeHandler
	t        *testing.T
	n        int
	all      chan struct{}   // closed when n calls have started
	returned []chan struct{} // returned[i] is closed when call i returns
	mu       sync.Mutex
	started  int
	order    []int // the calls' indexes in the order they returned
}

func (h *reverseHandler) Receive(_ context.Context, _ *Session, id string, _ []byte) Verdict {
	var i int
	if _, err := fmt.Sscanf(id, "<art%d", &i); err != nil || i < 0 || i >= h.n {
		h.t.Errorf("unexpected Receive(%s)", id)
		return Refused("unexpected")
	}
	h.mu.Lock()
	if h.started++; h.started == h.n {
		close(h.all)
	}
	h.mu.Unlock()
	select {
	case <-h.all:
	case <-time.After(stuckAfter):
		h.mu.Lock()
		h.t.Errorf("Receive(%s): only %d of %d calls ever ran at once", id, h.started, h.n)
		h.mu.Unlock()
	}
	if i+1 < h.n {
		select {
		case <-h.returned[i+1]:
		case <-time.After(stuckAfter):
			h.t.Errorf("Receive(%s): the next one never returned", id)
		}
	}
	h.mu.Lock()
	h.order = append(h.order, i)
	h.mu.Unlock()
	defer close(h.returned[i])
	return decide(id)
}

// TestPipelinedTakeThisConcurrent: the articles of pipelined TAKETHIS are
// received at once, and answered in command order even though their
// Receive calls return in the reverse order.
func TestPipelinedTakeThisConcurrent(t *testing.T) {
	const n = 20
	h := &reverseHandler{t: t, n: n, all: make(chan struct{})}
	for range n {
		h.returned = append(h.returned, make(chan struct{}))
	}
	addr := startServer(t, newServer(h, false, true))
	c := connect(t, "tcp", addr)
	c.expect("201 ")
	id := func(i int) string {
		if i%4 == 1 {
			return fmt.Sprintf("<art%d-refuse@x>", i)
		}
		return fmt.Sprintf("<art%d@x>", i)
	}
	want := func(i int) string {
		if i%4 == 1 {
			return "439 " + id(i) + " you said refuse"
		}
		return "239 " + id(i)
	}
	var batch strings.Builder
	batch.WriteString("MODE STREAM\r\n")
	for i := range n {
		batch.WriteString(takeThis(id(i)))
	}
	c.send(batch.String())
	c.expect("203 ")
	for i := range n {
		c.expect(want(i))
	}
	c.send("QUIT\r\n")
	c.expect("205 ")
	c.expectClosed()
	h.mu.Lock()
	defer h.mu.Unlock()
	reverse := make([]int, n)
	for i := range n {
		reverse[i] = n - 1 - i
	}
	if !slices.Equal(h.order, reverse) {
		t.Errorf("Receive calls returned in the order %v, want %v", h.order, reverse)
	}
}

// TestPipelinedCheck: CHECK is decided at once while earlier TAKETHIS
// articles are being received, and answered in its turn.
func TestPipelinedCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newPipeHandler(t)
		c, _ := servePipe(t, newServer(h, false, true), t.Context())
		c.expect("201 ")
		c.send("MODE STREAM\r\n")
		c.expect("203 ")
		c.send(takeThis("<t1@x>") + "CHECK <c1@x>\r\n" + takeThis("<refuse-t2@x>") +
			"CHECK <refuse-c2@x>\r\nCHECK <bad>\r\n" + takeThis("<t3@x>") + "CHECK <c3@x>\r\n")
		h.settled("every CHECK decided while every Receive is held", func(ev []string, inFlight int) bool {
			return countPrefix(ev, "check ") == 3 && inFlight == 3
		})
		// Nothing may be answered yet: the first response is a TAKETHIS's.
		c.expectSilence("before the first Receive returned")
		close(h.release)
		for _, want := range []string{
			"239 <t1@x>", "238 <c1@x>", "439 <refuse-t2@x>", "438 <refuse-c2@x>",
			"438 <bad> syntax error", "239 <t3@x>", "238 <c3@x>",
		} {
			c.expect(want)
		}
	})
}

// TestBarrierAfterPipeline: a command other than CHECK and TAKETHIS (here
// IHAVE, DATE and QUIT) runs only once every earlier TAKETHIS has been
// received and answered.
func TestBarrierAfterPipeline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newPipeHandler(t)
		c, served := servePipe(t, newServer(h, false, true), t.Context())
		c.expect("201 ")
		c.send("MODE STREAM\r\n")
		c.expect("203 ")
		c.send(takeThis("<t1@x>") + takeThis("<t2@x>") + "IHAVE <i1@x>\r\n")
		// The server has read all three commands (they fit its buffer):
		// a wrong one would have offered IHAVE to the handler by now.
		h.settled("both Receive calls held and IHAVE not offered", func(ev []string, inFlight int) bool {
			return inFlight == 2 && countPrefix(ev, "check ") == 0
		})
		close(h.release)
		c.expect("239 <t1@x>")
		c.expect("239 <t2@x>")
		c.expect("335 ")
		ev, _, _ := h.snapshot()
		if i := slices.Index(ev, "check <i1@x>"); i < 0 || countPrefix(ev[:i], "received ") != 2 {
			t.Errorf("handler calls %q: IHAVE's offer must come after both Receive calls returned", ev)
		}
		c.send(strings.Replace(testArticle, "<a@b.example>", "<i1@x>", 1) + ".\r\n")
		c.expect("235 ")

		// The same with DATE and QUIT, sent in one write behind a TAKETHIS.
		c.send(takeThis("<t3@x>") + "DATE\r\n" + takeThis("<t4@x>") + "QUIT\r\n")
		c.expect("239 <t3@x>")
		c.expect("111 ")
		c.expect("239 <t4@x>")
		c.expect("205 ")
		c.expectClosed()
		<-served
	})
}

// serveOne serves one connection with ServeConn under ctx and returns the
// client's side and a channel closed when ServeConn has returned.
func serveOne(t *testing.T, srv *Server, ctx context.Context) (*client, <-chan struct{}) {
	t.Helper()
	if srv.Log == nil {
		srv.Log = testLogger(t)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c := connect(t, "tcp", ln.Addr().String())
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.ServeConn(ctx, nc)
	}()
	t.Cleanup(func() { <-served })
	return c, served
}

// TestPipelineDefer: a TAKETHIS deferred in the middle of a pipeline is
// answered 400 after the responses before it, the responses after it are
// not sent, the connection is closed without waiting for the client, and
// ServeConn returns only after the Receive calls still running have.
func TestPipelineDefer(t *testing.T) {
	h := newPipeHandler(t)
	h.slow = map[string]time.Duration{"<t4@x>": 300 * time.Millisecond}
	srv := newServer(h, false, true)
	c, served := serveOne(t, srv, context.Background())
	c.expect("201 ")
	c.send(takeThis("<t1@x>") + takeThis("<later-t2@x>") + takeThis("<t3@x>") + takeThis("<t4@x>"))
	h.waitFor("all four Receive calls", func(_ []string, inFlight int) bool { return inFlight == 4 })
	close(h.release)
	c.expect("239 <t1@x>")
	c.expect("400 you said later")
	start := time.Now()
	c.expectClosed() // the client sends nothing more, and does not hang up
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the connection was closed %v after the 400", d)
	}
	<-served
	if ev, inFlight, _ := h.snapshot(); inFlight != 0 || countPrefix(ev, "received ") != 4 {
		t.Errorf("ServeConn returned with %d Receive calls running; handler calls %q", inFlight, ev)
	}
}

// TestPipelineDeferStopsReceiving: once a 400 is out, the articles read
// after it are not handed to the handler.
func TestPipelineDeferStopsReceiving(t *testing.T) {
	h := &fakeHandler{}
	srv := newServer(h, false, true)
	c, served := serveOne(t, srv, context.Background())
	c.expect("201 ")
	c.send(takeThis("<later@x>"))
	c.expect("400 ")
	// Sent after the 400 was read, before the server stopped reading or
	// after: either way it must not reach the handler.
	c.c.Write([]byte(takeThis("<t2@x>")))
	c.expectClosed()
	<-served
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.received["<t2@x>"]; ok {
		t.Error("an article sent after the 400 was received")
	}
}

// TestPipelineShutdown: Shutdown while Receive calls are in flight waits
// for them and for their responses, then says goodbye.
func TestPipelineShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newPipeHandler(t)
		srv := newServer(h, false, true)
		c, _ := servePipe(t, srv, t.Context())
		c.expect("201 ")
		c.send(takeThis("<t1@x>") + takeThis("<t2@x>") + takeThis("<t3@x>"))
		h.settled("three Receive calls", func(_ []string, inFlight int) bool { return inFlight == 3 })

		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			done <- srv.Shutdown(ctx)
		}()
		// Once everything is blocked, a Shutdown that does not wait for
		// the articles has returned.
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Shutdown returned %v while articles were being received", err)
		default:
		}
		close(h.release)
		c.expect("239 <t1@x>")
		c.expect("239 <t2@x>")
		c.expect("239 <t3@x>")
		c.expectClosed("400 server shutting down")
		if err := <-done; err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if _, inFlight, _ := h.snapshot(); inFlight != 0 {
			t.Errorf("Shutdown returned with %d Receive calls running", inFlight)
		}
	})
}

// TestPipelineCancel: when the connection is torn down (ServeConn's ctx)
// with Receive calls in flight, their ctx is cancelled and ServeConn
// returns only after they have.
func TestPipelineCancel(t *testing.T) {
	h := newPipeHandler(t)
	h.afterCancel = 200 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, served := serveOne(t, newServer(h, false, true), ctx)
	c.expect("201 ")
	c.send(takeThis("<t1@x>") + takeThis("<t2@x>"))
	h.waitFor("both Receive calls", func(_ []string, inFlight int) bool { return inFlight == 2 })
	cancel()
	c.expectClosed("400 ")
	<-served
	if ev, inFlight, _ := h.snapshot(); inFlight != 0 || countPrefix(ev, "received ") != 2 {
		t.Errorf("ServeConn returned with %d Receive calls running; handler calls %q", inFlight, ev)
	}
}

// TestPipelineBound: at most maxInFlight articles of one connection are
// being received at once; the next TAKETHIS waits for the oldest.
func TestPipelineBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newPipeHandler(t)
		c, _ := servePipe(t, newServer(h, false, true), t.Context())
		c.expect("201 ")
		const n = maxInFlight + 10
		var batch strings.Builder
		for i := range n {
			batch.WriteString(takeThis(fmt.Sprintf("<t%d@x>", i)))
		}
		go c.c.Write([]byte(batch.String())) // may block until the server reads on
		// A wrong server would have started every article by now.
		h.settled("maxInFlight Receive calls", func(_ []string, inFlight int) bool { return inFlight == maxInFlight })
		close(h.release)
		for i := range n {
			c.expect(fmt.Sprintf("239 <t%d@x>", i))
		}
		if _, _, peak := h.snapshot(); peak != maxInFlight {
			t.Errorf("at most %d Receive calls at once, want %d", peak, maxInFlight)
		}
	})
}

// TestPipelineByteBound: the articles being received at once stay within
// Limits.MaxPipelinedBytes, so a peer sending big articles cannot make the
// server hold maxInFlight of them.
func TestPipelineByteBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newPipeHandler(t)
		srv := newServer(h, false, true)
		size := int64(len(strings.Replace(testArticle, "<a@b.example>", "<t0@x>", 1)))
		srv.Limits.MaxPipelinedBytes = 3*size + size/2 // room for 3 articles, not 4
		c, _ := servePipe(t, srv, t.Context())
		c.expect("201 ")
		const n = 10
		var batch strings.Builder
		for i := range n {
			batch.WriteString(takeThis(fmt.Sprintf("<t%d@x>", i)))
		}
		go c.c.Write([]byte(batch.String()))
		// A wrong server would have started a fourth article by now.
		h.settled("3 Receive calls (the byte bound)", func(_ []string, inFlight int) bool { return inFlight == 3 })
		close(h.release)
		for i := range n {
			c.expect(fmt.Sprintf("239 <t%d@x>", i))
		}
		if _, _, peak := h.snapshot(); peak != 3 {
			t.Errorf("at most %d Receive calls at once, want 3", peak)
		}
	})
}
