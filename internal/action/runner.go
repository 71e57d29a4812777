package action

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/dst-traps/dst/internal/metrics"
	"github.com/dst-traps/dst/internal/retry"
	"github.com/dst-traps/dst/internal/store"
)

// Defaults for the zero values of RunnerOptions.
const (
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = 10 * time.Minute
	DefaultPoll       = time.Minute
)

// RunnerOptions tune Run. The zero value works: one event at a time,
// backoff from 1s to 10m, retries for ever.
type RunnerOptions struct {
	// Concurrency is how many events Do handles at once (default 1). The
	// report log wants 1 so that its lines keep the queue's order; even
	// then the runner does not wait for one event's ack to be committed
	// before it starts the next (up to maxSettling acks pending).
	Concurrency int
	// The delay before retry n is MinBackoff·2^(n-1), capped at
	// MaxBackoff, then jittered down by up to half so that events failing
	// together (a peer down, dstd restarted) do not retry together.
	MinBackoff, MaxBackoff time.Duration
	// MaxAttempts is how many attempts an event gets before it is dropped
	// with an error in the log. Zero or less: no limit.
	MaxAttempts int
	// Poll is the longest the runner sleeps without looking at its queue
	// (default DefaultPoll). It only matters for retries scheduled before
	// dstd started, whose times the runner does not know, and after a
	// store error.
	Poll time.Duration
	// Kick wakes the runner at once. The ingest path sends on it
	// (without blocking: a buffered channel of one, and a select with a
	// default case) after each commit that enqueued something.
	Kick <-chan struct{}
	// Log receives the runner's messages; nil discards them.
	Log *slog.Logger
	// Metrics, if not nil, gets QueueDepth, ActionDone and ActionFailures
	// with label queue = the action's name.
	Metrics *metrics.Metrics
	// Stats, if not nil, is kept up to date for status displays.
	Stats *Stats
	// Now is the clock (default time.Now); tests inject their own and
	// send on Kick after moving it.
	Now func() time.Time
}

func (o RunnerOptions) withDefaults() RunnerOptions {
	if o.Concurrency <= 0 {
		o.Concurrency = 1
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	o.MaxBackoff = max(o.MaxBackoff, o.MinBackoff)
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Stats counts what a runner did since dstd started, for "dstctl queues".
// The zero value is ready; it is safe for concurrent use.
type Stats struct {
	mu sync.Mutex
	s  StatsSnapshot
}

// StatsSnapshot is a copy of Stats at one moment.
type StatsSnapshot struct {
	Done          int64     // events handled successfully
	Failures      int64     // failed attempts, including those dropped
	LastError     string    // text of the last failure
	LastErrorTime time.Time // zero if none
	LastSuccess   time.Time // zero if none
}

// Snapshot returns the current counts.
func (s *Stats) Snapshot() StatsSnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.s
}

func (s *Stats) success(now time.Time) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.s.Done++
	s.s.LastSuccess = now
	s.mu.Unlock()
}

func (s *Stats) failure(now time.Time, err error) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.s.Failures++
	s.s.LastError = err.Error()
	s.s.LastErrorTime = now
	s.mu.Unlock()
}

// Run consumes the queue of action a until ctx is done. It takes up to
// opt.Concurrency due events that are not already being handled, calls
// a.Do on each in its own goroutine, and acknowledges each success or
// schedules a retry. A BatchAction gets its events in batches instead
// (see BatchAction; Concurrency does not apply). It returns nil once ctx is done and every Do it
// started has returned (Do gets ctx, so it should return promptly).
//
// Store errors do not stop Run: they are logged, and it tries again a
// little later. It returns an error only for a call that cannot work.
func Run(ctx context.Context, q Queue, a Action, opt RunnerOptions) error {
	if q == nil || a == nil {
		return errors.New("action runner needs a queue and an action")
	}
	if a.Name() == "" {
		return errors.New("action runner: the action has no name")
	}
	opt = opt.withDefaults()
	r := &runner{q: q, a: a, name: a.Name(), opt: opt, log: opt.Log}
	if sa, ok := a.(SyncAction); ok {
		r.sync.fn = sa.Sync
	}
	if b, ok := a.(BatchAction); ok {
		r.batchLoop(ctx, b)
		return nil
	}
	r.loop(ctx)
	return nil
}

type runner struct {
	q    Queue
	a    Action
	name string
	opt  RunnerOptions
	log  *slog.Logger
	sync groupSync
}

// groupSync calls fn (a SyncAction's Sync) once for the callers of wait
// that come within SyncDelay of the first, and gives each its error.
type groupSync struct {
	fn      func() error // nil: not a SyncAction, wait returns at once
	mu      sync.Mutex
	waiting []chan error
}

func (g *groupSync) wait() error {
	if g.fn == nil {
		return nil
	}
	c := make(chan error, 1)
	g.mu.Lock()
	g.waiting = append(g.waiting, c)
	if len(g.waiting) == 1 {
		time.AfterFunc(SyncDelay, g.flush)
	}
	g.mu.Unlock()
	return <-c
}

func (g *groupSync) flush() {
	g.mu.Lock()
	w := g.waiting
	g.waiting = nil
	g.mu.Unlock()
	err := g.fn()
	for _, c := range w {
		c <- err
	}
}

// maxSettling bounds the items whose Do has returned but whose ack or
// retry the store has not yet committed. Letting them settle in the
// background means the next Do need not wait for the commit (an
// acknowledgement is lazy: it waits to join another writer's commit, up
// to store.LazyWait), so even a runner with Concurrency 1 keeps up with a
// burst.
const maxSettling = 256

// result is what a worker tells the loop about an item: first that Do
// returned (its slot is free), then that the store has recorded the
// outcome (the item may be read again).
type result struct {
	seq         uint64
	settled     bool      // false: Do returned; true: ack or retry done
	retryAt     time.Time // settled, rescheduled: the item is due again then
	storeFailed bool      // settled: the store refused the ack or the retry
}

// loop is the only goroutine that reads the queue and the in-flight set;
// workers report back on results, so neither needs a lock.
func (r *runner) loop(ctx context.Context) {
	conc := r.opt.Concurrency
	doing := 0                        // items in Do
	inflight := make(map[uint64]bool) // items in Do or settling: not to be read again
	// Room for both reports of every item that can be in flight, so a
	// worker never blocks on a report, even after the loop stops reading.
	results := make(chan result, 2*(conc+maxSettling))
	var wg sync.WaitGroup
	var retries retry.Times  // retry times this runner scheduled
	var pauseUntil time.Time // after a store error
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()

	take := func(res result) {
		if !res.settled {
			doing--
			return
		}
		delete(inflight, res.seq)
		if !res.retryAt.IsZero() {
			heap.Push(&retries, res.retryAt)
		}
		if res.storeFailed {
			pauseUntil = r.opt.Now().Add(r.opt.MinBackoff)
		}
	}

	for {
		now := r.opt.Now()
		n := min(conc-doing, conc+maxSettling-len(inflight))
		if n > 0 && ctx.Err() == nil && !now.Before(pauseUntil) {
			items, err := r.q.QueueNext(r.name, now, n, func(seq uint64) bool { return inflight[seq] })
			if err != nil {
				r.log.Error("cannot read the action queue; will try again", "err", err)
				pauseUntil = now.Add(r.opt.MinBackoff)
			}
			for _, it := range items {
				inflight[it.Seq] = true
				doing++
				wg.Add(1)
				go func() {
					defer wg.Done()
					results <- r.handle(ctx, it, func() { results <- result{seq: it.Seq} })
				}()
			}
		}
		r.updateDepth()

		for retries.Len() > 0 && !retries[0].After(now) {
			heap.Pop(&retries)
		}
		wake := now.Add(r.opt.Poll)
		if retries.Len() > 0 && retries[0].Before(wake) {
			wake = retries[0]
		}
		if pauseUntil.After(now) && pauseUntil.Before(wake) {
			wake = pauseUntil
		}
		timer.Reset(wake.Sub(now))

		select {
		case <-ctx.Done():
			wg.Wait()
			r.updateDepth()
			return
		case <-r.opt.Kick:
		case <-timer.C:
		case res := <-results:
			take(res)
			// Take every other report that is waiting, so that one
			// queue read serves them all.
			for more := true; more; {
				select {
				case res := <-results:
					take(res)
				default:
					more = false
				}
			}
		}
	}
}

func (r *runner) updateDepth() {
	if r.opt.Metrics == nil {
		return
	}
	n, err := r.q.QueueDepth(r.name)
	if err != nil {
		r.log.Warn("cannot read the depth of the action queue", "err", err)
		return
	}
	r.opt.Metrics.QueueDepth.WithLabelValues(r.name).Set(float64(n))
}

// handle runs Do for one item, calls doDone as soon as Do has returned,
// then records the outcome in the store.
func (r *runner) handle(ctx context.Context, it store.QueueItem, doDone func()) result {
	res := result{seq: it.Seq, settled: true}
	ev := it.Event
	log := r.log.With("seq", it.Seq, "event", ev.Kind.String(), "ip", ev.IP, "message_id", ev.MessageID)

	if !r.a.Wants(ev) {
		doDone()
		log.Debug("acknowledging an event this action does not take (queued under an older configuration)")
		res.storeFailed = r.ackLazy(log, it.Seq)
		return res
	}
	err := r.do(ctx, ev)
	doDone()
	if err == nil {
		err = r.sync.wait()
	}
	if err == nil {
		res.storeFailed = r.ackLazy(log, it.Seq)
		r.opt.Stats.success(r.opt.Now())
		if m := r.opt.Metrics; m != nil {
			m.ActionDone.WithLabelValues(r.name).Inc()
		}
		return res
	}
	if ctx.Err() != nil {
		// dstd is stopping and the failure is most likely the
		// cancellation itself: leave the item as it is, to be done
		// again at the next start, without counting an attempt.
		log.Info("event interrupted by shutdown; it stays queued", "err", err)
		return res
	}

	now := r.opt.Now()
	r.opt.Stats.failure(now, err)
	if m := r.opt.Metrics; m != nil {
		m.ActionFailures.WithLabelValues(r.name).Inc()
	}
	attempts := it.Attempts + 1
	switch {
	case errors.Is(err, ErrPermanent):
		log.Error("dropping event: the action failed and retrying cannot help", "err", err, "attempts", attempts)
		res.storeFailed = r.ackLazy(log, it.Seq)
	case r.opt.MaxAttempts > 0 && attempts >= r.opt.MaxAttempts:
		log.Error("dropping event: the action failed too many times", "err", err, "attempts", attempts)
		res.storeFailed = r.ackLazy(log, it.Seq)
	default:
		next := now.Add(retry.Backoff(attempts, r.opt.MinBackoff, r.opt.MaxBackoff))
		if qerr := r.q.QueueRetry(r.name, it.Seq, next); qerr != nil {
			log.Error("cannot reschedule a failed event; it will be tried again soon", "err", qerr, "action_err", err)
			res.storeFailed = true
			return res
		}
		logRetry(log, "action failed; will retry", err, 1, attempts, next)
		res.retryAt = next
	}
	return res
}

// lazyQueue is a Queue whose acknowledgements can wait to share another
// writer's commit (store.DB.QueueAckLazy).
type lazyQueue interface {
	QueueAckLazy(queue string, seq uint64) error
}

// ack removes an item and reports whether the store failed.
func (r *runner) ack(log *slog.Logger, seq uint64) bool {
	return r.ackWith(r.q.QueueAck, log, seq)
}

// ackLazy is ack for the items of loop, which does not wait for their
// acknowledgements (they settle in the background): they are lazy when
// the queue allows. The report log acknowledges every report, and one
// commit each doubled a site's commits per report. (The batch runner
// waits for each batch's acknowledgements before the next batch, so its
// are not lazy.)
func (r *runner) ackLazy(log *slog.Logger, seq uint64) bool {
	if lq, ok := r.q.(lazyQueue); ok {
		return r.ackWith(lq.QueueAckLazy, log, seq)
	}
	return r.ack(log, seq)
}

func (r *runner) ackWith(ack func(queue string, seq uint64) error, log *slog.Logger, seq uint64) bool {
	if err := ack(r.name, seq); err != nil {
		// The item stays queued, so the action will see it again:
		// delivery is at least once.
		log.Error("cannot acknowledge a handled event; it will be handled again", "err", err)
		return true
	}
	return false
}

// do calls Do and turns a panic into an error, so that one bad event
// costs a retry (and a stack trace in the log) rather than all of dstd.
func (r *runner) do(ctx context.Context, ev store.Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("action panicked", "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("action %s panicked: %v", r.name, p)
		}
	}()
	return r.a.Do(ctx, ev)
}
