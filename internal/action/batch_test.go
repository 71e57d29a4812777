package action

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dst-traps/dst/internal/dsttest"
	"github.com/dst-traps/dst/internal/metrics"
	"github.com/dst-traps/dst/internal/store"
)

// batchAction is a BatchAction made of a function; it records each batch.
type batchAction struct {
	funcAction
	size int
	fail func(call int) error // the error of the call-th DoBatch (from 0), nil: success

	mu      sync.Mutex
	batches [][]string // Message-IDs of each batch handed over
}

func (a *batchAction) BatchSize() int { return a.size }

func (a *batchAction) DoBatch(_ context.Context, evs []store.Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var ids []string
	for _, ev := range evs {
		ids = append(ids, ev.MessageID)
	}
	a.batches = append(a.batches, ids)
	if a.fail != nil {
		return a.fail(len(a.batches) - 1)
	}
	return nil
}

func (a *batchAction) calls() [][]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.batches)
}

func newBatchAction(size int) *batchAction {
	return &batchAction{funcAction: funcAction{name: "batch", do: func(context.Context, store.Event) error {
		panic("Do called on a BatchAction")
	}}, size: size}
}

func ids(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, testEvent(i).MessageID)
	}
	return out
}

func TestBatchDelivery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newFakeQueue()
		for i := range 250 {
			q.add("batch", testEvent(i))
		}
		a := newBatchAction(100)
		met := metrics.New(prometheus.NewRegistry())
		stats := &Stats{}
		stop := startRun(t, q, a, RunnerOptions{Metrics: met, Stats: stats, Concurrency: 8})
		synctest.Wait()
		stop()
		if got, want := a.calls(), [][]string{ids(0, 100), ids(100, 200), ids(200, 250)}; !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("batches %v, want 100, 100 and 50 in queue order", got)
		}
		if n := len(q.get("batch")); n != 0 {
			t.Errorf("%d items left, want all acknowledged", n)
		}
		if s := stats.Snapshot(); s.Done != 250 || s.Failures != 0 {
			t.Errorf("stats %+v, want 250 done", s)
		}
		if v := metricValue(t, met.ActionDone.WithLabelValues("batch")); v != 250 {
			t.Errorf("actions done %v, want 250", v)
		}
	})
}

// A failed batch is retried whole, after its backoff and not before, and
// nothing queued after it overtakes it: DNS UPDATE must not publish a
// newer state that the retried older events would then undo.
func TestBatchRetryKeepsOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newFakeQueue()
		for i := range 3 {
			q.add("batch", testEvent(i))
		}
		unwanted := testEvent(3)
		unwanted.Origin = "old-config"
		q.add("batch", unwanted)
		a := newBatchAction(10)
		a.wants = func(ev store.Event) bool { return ev.Origin != "old-config" }
		a.fail = func(call int) error {
			if call < 2 {
				return errors.New("server down")
			}
			return nil
		}
		kickCh := make(chan struct{}, 1)
		var logBuf dsttest.SyncBuffer
		met := metrics.New(prometheus.NewRegistry())
		stats := &Stats{}
		const minB = time.Second
		stop := startRun(t, q, a, RunnerOptions{Kick: kickCh, MinBackoff: minB, MaxBackoff: time.Minute, Metrics: met, Stats: stats,
			Log: slog.New(slog.NewTextHandler(&logBuf, nil))})
		synctest.Wait()
		failedAt := time.Now()
		if got := a.calls(); len(got) != 1 || !slices.Equal(got[0], ids(0, 3)) {
			t.Fatalf("batches %v, want one of the 3 wanted events", got)
		}
		// New events while the batch waits for its retry: due now, but
		// behind the failed ones.
		q.add("batch", testEvent(5))
		kick(kickCh)
		synctest.Wait()
		if got := a.calls(); len(got) != 1 {
			t.Fatalf("batches %v: a newer event overtook the failed batch", got)
		}
		for _, it := range q.get("batch")[:4] {
			if it.Attempts != 1 || it.NextAttempt.Before(failedAt.Add(minB/2)) {
				t.Errorf("item %d: %d attempts, next %v; want the whole batch rescheduled", it.Seq, it.Attempts, it.NextAttempt.Sub(failedAt))
			}
		}
		time.Sleep(minB)
		synctest.Wait()
		time.Sleep(2 * minB)
		synctest.Wait()
		stop()
		got := a.calls()
		// The newer event follows the retried ones, in the same batch.
		later := append(ids(0, 3), testEvent(5).MessageID)
		want := [][]string{ids(0, 3), later, later}
		if !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("batches %v, want %v", got, want)
		}
		if n := len(q.get("batch")); n != 0 {
			t.Errorf("%d items left, want all acknowledged (the unwanted one too)", n)
		}
		if s := stats.Snapshot(); s.Done != 4 || s.Failures != 2 {
			t.Errorf("stats %+v, want 4 done and 2 failed attempts", s)
		}
		if v := metricValue(t, met.ActionFailures.WithLabelValues("batch")); v != 9 {
			t.Errorf("action failures %v, want 9 (attempts of 4, then 5 events)", v)
		}
		if out := logBuf.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "server down") {
			t.Errorf("log does not warn of the failure:\n%s", out)
		}
	})
}

// A retry scheduled before a restart holds the queue until it is due.
func TestBatchHeadRetryAfterRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newFakeQueue()
		seq := q.add("batch", testEvent(0))
		q.add("batch", testEvent(1))
		if err := q.QueueRetry("batch", seq, time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		a := newBatchAction(10)
		stop := startRun(t, q, a, RunnerOptions{})
		synctest.Wait()
		if got := a.calls(); len(got) != 0 {
			t.Fatalf("batches %v before the head's retry time", got)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		stop()
		if got := a.calls(); len(got) != 1 || !slices.Equal(got[0], ids(0, 2)) {
			t.Errorf("batches %v, want both in order once the head is due", got)
		}
	})
}

// A failure only the administrator can fix is one ERROR line with the
// cause as its message; the events are kept.
func TestBatchNeedsAdmin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newFakeQueue()
		for i := range 3 {
			q.add("batch", testEvent(i))
		}
		a := newBatchAction(10)
		a.fail = func(int) error { return fmt.Errorf("key refused: fix it: %w", ErrNeedsAdmin) }
		var logBuf dsttest.SyncBuffer
		stop := startRun(t, q, a, RunnerOptions{Log: slog.New(slog.NewTextHandler(&logBuf, nil))})
		synctest.Wait()
		stop()
		out := logBuf.String()
		if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, `msg="key refused: fix it`) || !strings.Contains(out, "events_kept=3") {
			t.Errorf("log:\n%s\nwant an ERROR with the cause and events_kept=3", out)
		}
		if n := len(q.get("batch")); n != 3 {
			t.Errorf("%d items left, want the 3 kept", n)
		}
	})
}
