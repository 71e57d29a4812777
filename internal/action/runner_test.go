package action

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/dst-traps/dst/internal/dsttest"
	"github.com/dst-traps/dst/internal/metrics"
	"github.com/dst-traps/dst/internal/store"
)

var _ Queue = (*store.DB)(nil)

// fakeQueue is an in-memory Queue with the store's semantics.
type fakeQueue struct {
	mu      sync.Mutex
	seq     uint64
	items   map[string][]store.QueueItem // by queue, in Seq order
	retries []retryRec
	failAck bool
	ackGate chan struct{} // if not nil, QueueAck waits for it to close (a slow commit)
}

type retryRec struct {
	queue string
	seq   uint64
	next  time.Time
}

func newFakeQueue() *fakeQueue { return &fakeQueue{items: map[string][]store.QueueItem{}} }

func (q *fakeQueue) add(queue string, ev store.Event) uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.seq++
	q.items[queue] = append(q.items[queue], store.QueueItem{Seq: q.seq, Event: ev})
	return q.seq
}

func (q *fakeQueue) QueueNext(queue string, now time.Time, n int, skip func(uint64) bool) ([]store.QueueItem, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []store.QueueItem
	for _, it := range q.items[queue] {
		if len(out) == n {
			break
		}
		if it.NextAttempt.After(now) || (skip != nil && skip(it.Seq)) {
			continue
		}
		out = append(out, it)
	}
	return out, nil
}

func (q *fakeQueue) QueueAck(queue string, seq uint64) error {
	if q.ackGate != nil {
		<-q.ackGate
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failAck {
		return errors.New("disk on fire")
	}
	q.items[queue] = slices.DeleteFunc(q.items[queue], func(it store.QueueItem) bool { return it.Seq == seq })
	return nil
}

func (q *fakeQueue) QueueRetry(queue string, seq uint64, next time.Time) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, it := range q.items[queue] {
		if it.Seq == seq {
			q.items[queue][i].Attempts++
			q.items[queue][i].NextAttempt = next
			q.retries = append(q.retries, retryRec{queue, seq, next})
			return nil
		}
	}
	return errors.New("no such item")
}

func (q *fakeQueue) QueueDepth(queue string) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items[queue]), nil
}

func (q *fakeQueue) get(queue string) []store.QueueItem {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.items[queue])
}

func (q *fakeQueue) retryLog() []retryRec {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.retries)
}

// funcAction is an Action made of a function.
type funcAction struct {
	name  string
	do    func(ctx context.Context, ev store.Event) error
	wants func(store.Event) bool
}

func (a *funcAction) Name() string { return a.name }
func (a *funcAction) Wants(ev store.Event) bool {
	return a.wants == nil || a.wants(ev)
}
func (a *funcAction) Do(ctx context.Context, ev store.Event) error { return a.do(ctx, ev) }

var t0 = time.Date(2026, 11, 29, 10, 10, 10, 0, time.UTC)

func testEvent(i int) store.Event {
	return store.Event{Kind: store.EventReport, Time: t0, IP: netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}),
		MessageID: fmt.Sprintf("<%d@site-a.example>", i), Origin: "site-a.example"}
}

// startRun runs Run in a goroutine and returns a function that stops it
// and checks that it returned nil.
func startRun(t *testing.T, q Queue, a Action, opt RunnerOptions) (stop func()) {
	t.Helper()
	return dsttest.Go(t, func(ctx context.Context) error { return Run(ctx, q, a, opt) })
}

func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func metricValue(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		t.Fatal(err)
	}
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	t.Fatalf("metric is neither gauge nor counter")
	return 0
}

// The runner tests run in a synctest bubble: its clock is fake and moves
// only when every goroutine of the test is blocked, so synctest.Wait is "the
// runner has done all it can now", and a time.Sleep of the test moves the
// clock to exactly when a retry is due. A negative assertion after Wait
// cannot pass merely because the runner had not got round to it yet.

func TestRunAcksOnSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		q := newFakeQueue()
		for i := range 3 {
			q.add("log", testEvent(i))
		}
		q.add("other", testEvent(9)) // another action's queue: not touched
		var mu sync.Mutex
		var got []string
		a := &funcAction{name: "log", do: func(_ context.Context, ev store.Event) error {
			mu.Lock()
			got = append(got, ev.MessageID)
			mu.Unlock()
			return nil
		}}
		met := metrics.New(prometheus.NewRegistry())
		stats := &Stats{}
		stop := startRun(t, q, a, RunnerOptions{Metrics: met, Stats: stats})

		synctest.Wait()
		if n := len(q.get("log")); n != 0 {
			t.Fatalf("%d items left in the queue, want 0", n)
		}
		stop()
		want := []string{"<0@site-a.example>", "<1@site-a.example>", "<2@site-a.example>"}
		if !slices.Equal(got, want) {
			t.Errorf("Do saw %v, want %v in queue order", got, want)
		}
		if n := len(q.get("other")); n != 1 {
			t.Errorf("other queue has %d items, want 1", n)
		}
		if v := metricValue(t, met.ActionDone.WithLabelValues("log")); v != 3 {
			t.Errorf("done_total = %v, want 3", v)
		}
		if v := metricValue(t, met.QueueDepth.WithLabelValues("log")); v != 0 {
			t.Errorf("queue_depth = %v, want 0", v)
		}
		if s := stats.Snapshot(); s.Done != 3 || s.Failures != 0 || !s.LastSuccess.Equal(start) {
			t.Errorf("stats = %+v, want 3 done at %v", s, start)
		}
	})
}

func TestRunKickStartsNewWorkAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		q := newFakeQueue()
		var n atomic.Int32
		a := &funcAction{name: "log", do: func(context.Context, store.Event) error { n.Add(1); return nil }}
		k := make(chan struct{}, 1)
		// Poll is an hour: only the kick can make the runner look again.
		startRun(t, q, a, RunnerOptions{Kick: k, Poll: time.Hour})
		synctest.Wait() // it has found the queue empty and sleeps
		q.add("log", testEvent(1))
		synctest.Wait()
		if c := n.Load(); c != 0 {
			t.Fatalf("Do called %d times before the kick: the runner did not sleep on an empty queue", c)
		}
		kick(k)
		synctest.Wait()
		if c := n.Load(); c != 1 {
			t.Errorf("Do called %d times after the kick, want 1", c)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("the kicked event waited %v, want none", d)
		}
	})
}

func TestRunRetriesWithGrowingBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newFakeQueue()
		seq := q.add("program", testEvent(1))
		var calls atomic.Int32
		a := &funcAction{name: "program", do: func(context.Context, store.Event) error {
			calls.Add(1)
			return errors.New("exit status 75")
		}}
		k := make(chan struct{}, 1)
		met := metrics.New(prometheus.NewRegistry())
		stats := &Stats{}
		minB, maxB := time.Second, 8*time.Second
		// Poll is an hour: the retries are due well before, so the runner
		// must wake for each of its own accord.
		startRun(t, q, a, RunnerOptions{MinBackoff: minB, MaxBackoff: maxB, Kick: k, Metrics: met, Stats: stats, Poll: time.Hour})

		// Nominal delays: 1s 2s 4s 8s 8s 8s; each actual delay lies in
		// (nominal/2, nominal].
		nominal := []time.Duration{1, 2, 4, 8, 8, 8}
		attempted := time.Now()
		for i, nom := range nominal {
			nom *= time.Second
			synctest.Wait()
			log := q.retryLog()
			if len(log) != i+1 {
				t.Fatalf("%d retries scheduled after attempt %d, want %d", len(log), i+1, i+1)
			}
			r := log[i]
			if r.seq != seq {
				t.Fatalf("retry of seq %d, want %d", r.seq, seq)
			}
			if d := r.next.Sub(attempted); d < nom/2 || d > nom {
				t.Errorf("retry %d after %v, want between %v and %v", i+1, d, nom/2, nom)
			}
			if it := q.get("program")[0]; it.Attempts != i+1 {
				t.Errorf("attempts = %d, want %d", it.Attempts, i+1)
			}
			// Not due yet: a kick must not run it again.
			time.Sleep(time.Until(r.next) - time.Millisecond)
			kick(k)
			synctest.Wait()
			if c := int(calls.Load()); c != i+1 {
				t.Fatalf("Do called %d times before retry %d was due, want %d", c, i+1, i+1)
			}
			// Due: the runner wakes for it without a kick.
			time.Sleep(time.Until(r.next))
			attempted = time.Now()
		}
		synctest.Wait()
		if c := int(calls.Load()); c != len(nominal)+1 {
			t.Errorf("Do called %d times, want %d", c, len(nominal)+1)
		}
		if v := metricValue(t, met.ActionFailures.WithLabelValues("program")); v != float64(len(nominal)+1) {
			t.Errorf("failures_total = %v, want %d", v, len(nominal)+1)
		}
		if s := stats.Snapshot(); s.LastError != "exit status 75" || s.Done != 0 {
			t.Errorf("stats = %+v, want last error \"exit status 75\" and nothing done", s)
		}
	})
}

func TestRunDropsPermanentFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newFakeQueue()
		q.add("program", testEvent(1))
		q.add("program", testEvent(2))
		var calls atomic.Int32
		a := &funcAction{name: "program", do: func(_ context.Context, ev store.Event) error {
			calls.Add(1)
			if ev.MessageID == "<1@site-a.example>" {
				return fmt.Errorf("no command configured: %w", ErrPermanent)
			}
			return nil
		}}
		met := metrics.New(prometheus.NewRegistry())
		startRun(t, q, a, RunnerOptions{Metrics: met})
		synctest.Wait()
		if n := len(q.get("program")); n != 0 {
			t.Errorf("%d items left in the queue, want 0", n)
		}
		if n := len(q.retryLog()); n != 0 {
			t.Errorf("%d retries scheduled for a permanent failure, want 0", n)
		}
		if c := calls.Load(); c != 2 {
			t.Errorf("Do called %d times, want 2", c)
		}
		if v := metricValue(t, met.ActionFailures.WithLabelValues("program")); v != 1 {
			t.Errorf("failures_total = %v, want 1", v)
		}
	})
}

func TestRunMaxAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newFakeQueue()
		q.add("program", testEvent(1))
		var calls atomic.Int32
		a := &funcAction{name: "program", do: func(context.Context, store.Event) error {
			calls.Add(1)
			return errors.New("peer down")
		}}
		startRun(t, q, a, RunnerOptions{MaxAttempts: 3, Poll: time.Hour})
		for i := 1; i <= 2; i++ {
			synctest.Wait()
			log := q.retryLog()
			if len(log) != i {
				t.Fatalf("%d retries scheduled after attempt %d, want %d", len(log), i, i)
			}
			time.Sleep(time.Until(log[i-1].next))
		}
		synctest.Wait()
		if n := len(q.get("program")); n != 0 {
			t.Errorf("%d items left after the last attempt, want 0: the event was not dropped", n)
		}
		if c := calls.Load(); c != 3 {
			t.Errorf("Do called %d times, want 3", c)
		}
		if n := len(q.retryLog()); n != 2 {
			t.Errorf("%d retries scheduled, want 2", n)
		}
	})
}

func TestRunConcurrencyBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const conc, total = 3, 10
		q := newFakeQueue()
		for i := range total {
			q.add("program", testEvent(i))
		}
		var cur, peak, done atomic.Int32
		release := make(chan struct{})
		a := &funcAction{name: "program", do: func(context.Context, store.Event) error {
			n := cur.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			<-release
			cur.Add(-1)
			done.Add(1)
			return nil
		}}
		k := make(chan struct{}, 1)
		startRun(t, q, a, RunnerOptions{Concurrency: conc, Kick: k})
		synctest.Wait()
		kick(k) // a kick while full must not start a fourth
		synctest.Wait()
		if c, p := cur.Load(), peak.Load(); c != conc || p != conc {
			t.Fatalf("%d events in flight (peak %d), want %d", c, p, conc)
		}
		close(release)
		synctest.Wait()
		if d, n := done.Load(), len(q.get("program")); d != total || n != 0 {
			t.Errorf("%d events done, %d left in the queue; want %d and 0", d, n, total)
		}
		if p := peak.Load(); p != conc {
			t.Errorf("peak concurrency %d, want %d", p, conc)
		}
	})
}

// TestRunDoesNotWaitForAcks: with Concurrency 1, the next event's Do runs
// while the previous ack waits for its commit, and an item being acked is
// not handed out again.
func TestRunDoesNotWaitForAcks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newFakeQueue()
		q.ackGate = make(chan struct{})
		for i := range 3 {
			q.add("log", testEvent(i))
		}
		var calls atomic.Int32
		a := &funcAction{name: "log", do: func(context.Context, store.Event) error { calls.Add(1); return nil }}
		k := make(chan struct{}, 1)
		startRun(t, q, a, RunnerOptions{Kick: k})
		synctest.Wait()
		if c := calls.Load(); c != 3 {
			t.Fatalf("Do called %d times with every ack pending, want 3", c)
		}
		kick(k)
		synctest.Wait()
		if c := calls.Load(); c != 3 {
			t.Errorf("Do called %d times, want 3: an item was handed out again before its ack", c)
		}
		close(q.ackGate)
		synctest.Wait()
		if n := len(q.get("log")); n != 0 {
			t.Errorf("%d items left after the acks, want 0", n)
		}
	})
}

func TestRunBlockedActionDoesNotBlockOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newFakeQueue()
		for i := range 5 {
			q.add("slow", testEvent(i))
			q.add("fast", testEvent(i))
		}
		slow := &funcAction{name: "slow", do: func(ctx context.Context, _ store.Event) error {
			<-ctx.Done() // hangs until dstd stops
			return ctx.Err()
		}}
		var fastDone atomic.Int32
		fast := &funcAction{name: "fast", do: func(context.Context, store.Event) error { fastDone.Add(1); return nil }}
		stopSlow := startRun(t, q, slow, RunnerOptions{})
		startRun(t, q, fast, RunnerOptions{})
		synctest.Wait()
		if n := fastDone.Load(); n != 5 {
			t.Errorf("the fast action did %d events while the slow one hung, want 5", n)
		}
		stopSlow()
		// The interrupted event is not lost, and no attempt was counted.
		items := q.get("slow")
		if len(items) != 5 || items[0].Attempts != 0 {
			t.Errorf("slow queue after shutdown: %d items, first with %d attempts; want 5 and 0", len(items), items[0].Attempts)
		}
	})
}

func TestRunCancelWaitsForInFlightDo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newFakeQueue()
		q.add("log", testEvent(1))
		started := make(chan struct{})
		var finished atomic.Bool
		a := &funcAction{name: "log", do: func(ctx context.Context, _ store.Event) error {
			close(started)
			<-ctx.Done()
			time.Sleep(10 * time.Millisecond) // a program being killed (fake time)
			finished.Store(true)
			return ctx.Err()
		}}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- Run(ctx, q, a, RunnerOptions{}) }()
		<-started
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v, want nil", err)
			}
			if !finished.Load() {
				t.Errorf("Run returned before the in-flight Do")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
		if n := len(q.get("log")); n != 1 {
			t.Errorf("queue has %d items after an interrupted Do, want 1", n)
		}
	})
}

func TestRunAcksUnwantedEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newFakeQueue()
		q.add("program", store.Event{Kind: store.EventExpired, Time: t0, IP: netip.MustParseAddr("203.0.113.7")})
		var calls atomic.Int32
		a := &funcAction{name: "program",
			wants: func(ev store.Event) bool { return ev.Kind == store.EventReport },
			do:    func(context.Context, store.Event) error { calls.Add(1); return nil }}
		startRun(t, q, a, RunnerOptions{})
		synctest.Wait()
		if n := len(q.get("program")); n != 0 {
			t.Errorf("%d unwanted events left in the queue, want 0", n)
		}
		if c := calls.Load(); c != 0 {
			t.Errorf("Do called %d times for an unwanted event", c)
		}
	})
}

func TestRunPanicIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newFakeQueue()
		q.add("log", testEvent(1))
		a := &funcAction{name: "log", do: func(context.Context, store.Event) error { panic("boom") }}
		startRun(t, q, a, RunnerOptions{})
		synctest.Wait()
		if n := len(q.retryLog()); n != 1 {
			t.Errorf("%d retries after a panic, want 1", n)
		}
	})
}

func TestRunAckFailureKeepsEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newFakeQueue()
		q.failAck = true
		q.add("log", testEvent(1))
		var calls atomic.Int32
		a := &funcAction{name: "log", do: func(context.Context, store.Event) error { calls.Add(1); return nil }}
		// The runner pauses MinBackoff after a store error, then does the
		// event again: at least once, never lost.
		startRun(t, q, a, RunnerOptions{MinBackoff: time.Second, Poll: time.Hour})
		synctest.Wait()
		time.Sleep(time.Second - time.Millisecond)
		synctest.Wait()
		if c := calls.Load(); c != 1 {
			t.Fatalf("Do called %d times before the pause after the store error ended, want 1", c)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if c := calls.Load(); c != 2 {
			t.Errorf("Do called %d times once the pause ended, want 2", c)
		}
		if n := len(q.get("log")); n != 1 {
			t.Errorf("queue has %d items, want 1", n)
		}
	})
}

func TestRunRejectsMissingParts(t *testing.T) {
	if err := Run(context.Background(), nil, &funcAction{name: "x"}, RunnerOptions{}); err == nil {
		t.Error("Run with no queue succeeded")
	}
	if err := Run(context.Background(), newFakeQueue(), &funcAction{}, RunnerOptions{}); err == nil {
		t.Error("Run with a nameless action succeeded")
	}
}

// syncAction is a funcAction with a Sync that counts its calls and
// records how many items were still queued at each.
type syncAction struct {
	funcAction
	q      *fakeQueue
	mu     sync.Mutex
	queued []int
}

func (a *syncAction) Sync() error {
	n := len(a.q.get(a.name))
	a.mu.Lock()
	a.queued = append(a.queued, n)
	a.mu.Unlock()
	return nil
}

// TestRunSyncAction: the events a SyncAction did together are synced once,
// SyncDelay after the first, and acknowledged only then.
func TestRunSyncAction(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newFakeQueue()
		for i := range 3 {
			q.add("log", testEvent(i))
		}
		var done atomic.Int32
		a := &syncAction{funcAction: funcAction{name: "log", do: func(context.Context, store.Event) error {
			done.Add(1)
			return nil
		}}, q: q}
		stop := startRun(t, q, a, RunnerOptions{})
		defer stop()

		synctest.Wait()
		if n := done.Load(); n != 3 {
			t.Fatalf("Do ran %d times, want 3 before any sync", n)
		}
		if n := len(q.get("log")); n != 3 {
			t.Fatalf("%d items left before the sync, want 3: acknowledged before they were synced", n)
		}
		time.Sleep(SyncDelay)
		synctest.Wait()
		a.mu.Lock()
		queued := slices.Clone(a.queued)
		a.mu.Unlock()
		if !slices.Equal(queued, []int{3}) {
			t.Errorf("Sync calls saw %v items queued, want one call with all 3", queued)
		}
		if n := len(q.get("log")); n != 0 {
			t.Errorf("%d items left after the sync, want 0", n)
		}
	})
}
