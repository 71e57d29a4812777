package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/spool"
)

// liveness bounds how long a test waits for run to return: far more than
// it needs when it works, so only a hang (the bug) trips it.
const liveness = 10 * time.Second

// endless is /dev/zero: a message that never ends. reading is closed once
// more than 1 MiB has been read, when run is surely reading it.
type endless struct {
	read    atomic.Int64
	once    sync.Once
	reading chan struct{}
}

func newEndless() *endless { return &endless{reading: make(chan struct{})} }

func (e *endless) Read(p []byte) (int, error) {
	clear(p)
	if e.read.Add(int64(len(p))) > 1<<20 {
		e.once.Do(func() { close(e.reading) })
	}
	return len(p), nil
}

// stalled is an MTA that stops writing mid-message: its Read blocks until
// the test ends. reading is closed when the first Read begins.
type stalled struct {
	once    sync.Once
	reading chan struct{}
	release chan struct{}
}

func newStalled(t *testing.T) *stalled {
	s := &stalled{reading: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(func() { close(s.release) })
	return s
}

func (s *stalled) Read(p []byte) (int, error) {
	s.once.Do(func() { close(s.reading) })
	<-s.release
	return 0, errors.New("released")
}

type runResult struct {
	code int
	log  string
	took time.Duration
}

// runAsync runs dstc in a goroutine; wait returns its result, or fails the
// test if it does not return within liveness.
func runAsync(t *testing.T, ctx context.Context, stdin io.Reader, args ...string) (wait func() runResult) {
	t.Helper()
	done := make(chan runResult, 1)
	start := time.Now()
	go func() {
		var out, errb bytes.Buffer
		code := run(ctx, append([]string{"-log", "stderr"}, args...), stdin, &out, &errb)
		done <- runResult{code, errb.String(), time.Since(start)}
	}()
	return func() runResult {
		t.Helper()
		select {
		case r := <-done:
			return r
		case <-time.After(liveness):
			t.Fatalf("dstc did not return within %s", liveness)
			return runResult{}
		}
	}
}

// spoolDir is an empty spool with its tmp/ and new/.
func spoolDir(t *testing.T) string {
	dir := t.TempDir()
	for _, d := range []string{"tmp", "new"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// requireEmptySpool fails unless dir's tmp/ and new/ hold nothing.
func requireEmptySpool(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []string{"tmp", "new"} {
		des, err := os.ReadDir(filepath.Join(dir, d))
		if err != nil {
			t.Fatal(err)
		}
		if len(des) != 0 {
			t.Errorf("spool %s/ holds %d files, want none", d, len(des))
		}
	}
}

// noDstd is a dstd address where nothing listens.
func noDstd(t *testing.T) string { return "unix:" + filepath.Join(t.TempDir(), "no-dstd.sock") }

func TestStopWhileReadingEndless(t *testing.T) {
	dir := spoolDir(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	in := newEndless()
	wait := runAsync(t, ctx, in, "-m", "mx1.example.net", "-s", noDstd(t), "-spool", dir)
	<-in.reading
	cancel(errors.New("SIGTERM received (test)"))
	r := wait()
	if r.code != exitTempFail {
		t.Fatalf("exit %d, want %d: %s", r.code, exitTempFail, r.log)
	}
	if !strings.Contains(r.log, "stopped while reading the message") || !strings.Contains(r.log, "SIGTERM received") {
		t.Errorf("the log does not say why dstc stopped: %s", r.log)
	}
	requireEmptySpool(t, dir)
}

// TestStopWhileReadingStalled: a read that blocks must not hold up the
// exit either.
func TestStopWhileReadingStalled(t *testing.T) {
	dir := spoolDir(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	in := newStalled(t)
	wait := runAsync(t, ctx, in, "-m", "mx1.example.net", "-s", noDstd(t), "-spool", dir)
	<-in.reading
	cancel(errors.New("SIGINT received (test)"))
	if r := wait(); r.code != exitTempFail || !strings.Contains(r.log, "SIGINT received") {
		t.Fatalf("exit %d, want %d, and the signal in the log: %s", r.code, exitTempFail, r.log)
	}
	requireEmptySpool(t, dir)
}

func TestTimeoutWhileReading(t *testing.T) {
	for name, in := range map[string]io.Reader{
		"endless": newEndless(),
		"stalled": newStalled(t),
	} {
		t.Run(name, func(t *testing.T) {
			dir := spoolDir(t)
			r := runAsync(t, context.Background(), in, "-m", "mx1.example.net", "-s", noDstd(t), "-spool", dir, "-timeout", "300ms")()
			if r.code != exitTempFail {
				t.Fatalf("exit %d, want %d: %s", r.code, exitTempFail, r.log)
			}
			if r.took < 300*time.Millisecond {
				t.Errorf("gave up after %s, before -timeout", r.took)
			}
			if !strings.Contains(r.log, "-timeout 300ms reached") {
				t.Errorf("the log does not say -timeout was reached: %s", r.log)
			}
			requireEmptySpool(t, dir)
		})
	}
}

// TestStopBeforeRun: a dstc stopped before it starts reads nothing into
// the spool, even when the message is a complete one.
func TestStopBeforeRun(t *testing.T) {
	dir := spoolDir(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("SIGTERM received (test)"))
	msg := readFile(t, "../../examples/trap-hit.eml")
	r := runAsync(t, ctx, bytes.NewReader(msg), "-m", "mx[12].example.net", "-s", noDstd(t), "-spool", dir)()
	if r.code != exitTempFail {
		t.Fatalf("exit %d, want %d: %s", r.code, exitTempFail, r.log)
	}
	requireEmptySpool(t, dir)
}

// TestStopWhileDrainingAfterUsageError: with a usage error dstc still reads
// its input to the end, but a signal stops that too.
func TestStopWhileDrainingAfterUsageError(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	in := newEndless()
	wait := runAsync(t, ctx, in, "-bogus")
	<-in.reading
	cancel(errors.New("SIGTERM received (test)"))
	if r := wait(); r.code != exitTempFail || !strings.Contains(r.log, "SIGTERM received") {
		t.Fatalf("exit %d, want %d, and the signal in the log: %s", r.code, exitTempFail, r.log)
	}
}

// hungDstd accepts connections and never answers. accepted is closed at
// the first one.
func hungDstd(t *testing.T) (addr string, accepted chan struct{}) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = make(chan struct{})
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		first := true
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			if first {
				close(accepted)
				first = false
			}
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String(), accepted
}

func TestStopWhileSubmitting(t *testing.T) {
	dir := spoolDir(t)
	addr, accepted := hungDstd(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	msg := readFile(t, "../../examples/trap-hit.eml")
	wait := runAsync(t, ctx, bytes.NewReader(msg), "-m", "mx[12].example.net", "-s", addr, "-spool", dir)
	<-accepted
	cancel(errors.New("SIGTERM received (test)"))
	r := wait()
	if r.code != exitTempFail {
		t.Fatalf("exit %d, want %d: %s", r.code, exitTempFail, r.log)
	}
	if !strings.Contains(r.log, "stopped while submitting") {
		t.Errorf("the log does not say where dstc stopped: %s", r.log)
	}
	requireEmptySpool(t, dir)
}

// TestHungDstdStillSpools: -timeout bounds the whole run, but a dstd that
// takes the connection and never answers must still leave time to spool.
func TestHungDstdStillSpools(t *testing.T) {
	dir := spoolDir(t)
	addr, _ := hungDstd(t)
	msg := readFile(t, "../../examples/trap-hit.eml")
	r := runAsync(t, context.Background(), bytes.NewReader(msg), "-m", "mx[12].example.net", "-s", addr, "-spool", dir, "-timeout", "1500ms")()
	if r.code != exitOK {
		t.Fatalf("exit %d, want 0: %s", r.code, r.log)
	}
	es, err := spool.List(dir)
	if err != nil || len(es) != 1 {
		t.Fatalf("spool holds %d reports (%v), want 1: %s", len(es), err, r.log)
	}
	if got := sourceIP(t, readFile(t, es[0].Path)); got != "203.0.113.7" {
		t.Errorf("spooled Source-IP = %s", got)
	}
}
