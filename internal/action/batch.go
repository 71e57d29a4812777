package action

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/dst-traps/dst/internal/retry"
	"github.com/dst-traps/dst/internal/store"
)

// farFuture reads a queue whatever its items' retry times: the batch
// runner looks at the head of the queue, due or not.
const farFuture = 100 * 365 * 24 * time.Hour

// batchLoop is Run for a BatchAction: one batch at a time, from the head
// of the queue. A failed batch is rescheduled whole, so the head is not
// due until the batch is, and nothing behind it is handed over meanwhile;
// the same holds for retries scheduled before dstd restarted.
func (r *runner) batchLoop(ctx context.Context, a BatchAction) {
	size := max(a.BatchSize(), 1)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var pauseUntil time.Time // after a store error
	for ctx.Err() == nil {
		now := r.opt.Now()
		wait := r.opt.Poll
		if now.Before(pauseUntil) {
			wait = pauseUntil.Sub(now)
		} else {
			items, err := r.q.QueueNext(r.name, now.Add(farFuture), size, nil)
			if err != nil {
				r.log.Error("cannot read the action queue; will try again", "err", err)
				pauseUntil = now.Add(r.opt.MinBackoff)
				wait = r.opt.MinBackoff
			}
			// The head of the queue and the items due behind it.
			due := 0
			for due < len(items) && !items[due].NextAttempt.After(now) {
				due++
			}
			switch {
			case due > 0:
				if r.runBatch(ctx, a, items[:due]) {
					pauseUntil = r.opt.Now().Add(r.opt.MinBackoff)
				} else if due == size {
					continue // a full batch: more may be due at once
				}
				continue // what follows the batch is due now, or at its retry time
			case len(items) > 0:
				wait = min(wait, items[0].NextAttempt.Sub(now))
			}
		}
		r.updateDepth()
		timer.Reset(max(wait, 0))
		select {
		case <-ctx.Done():
		case <-r.opt.Kick:
		case <-timer.C:
		}
	}
	r.updateDepth()
}

// runBatch hands one batch to DoBatch and records the outcome. It reports
// whether the store failed to record it, so that the loop pauses rather
// than reading the same items at once.
func (r *runner) runBatch(ctx context.Context, a BatchAction, items []store.QueueItem) (storeFailed bool) {
	var evs []store.Event
	attempts := 0
	for _, it := range items {
		attempts = max(attempts, it.Attempts+1)
		// Events the action does not take (queued under an older
		// configuration) are acknowledged with the batch.
		if a.Wants(it.Event) {
			evs = append(evs, it.Event)
		}
	}
	log := r.log.With("first_seq", items[0].Seq, "events", len(items))
	var err error
	if len(evs) > 0 {
		err = r.doBatch(ctx, a, evs)
	}
	if err == nil {
		failed := r.ackAll(log, items)
		now := r.opt.Now()
		if r.opt.Stats != nil {
			for range evs {
				r.opt.Stats.success(now)
			}
		}
		if m := r.opt.Metrics; m != nil {
			m.ActionDone.WithLabelValues(r.name).Add(float64(len(evs)))
		}
		log.Debug("batch done", "handled", len(evs))
		return failed
	}
	if ctx.Err() != nil {
		// dstd is stopping: the batch stays as it is, to be done again at
		// the next start, without counting an attempt.
		log.Info("batch interrupted by shutdown; its events stay queued", "err", err)
		return false
	}
	now := r.opt.Now()
	r.opt.Stats.failure(now, err)
	if m := r.opt.Metrics; m != nil {
		m.ActionFailures.WithLabelValues(r.name).Add(float64(len(items)))
	}
	switch {
	case errors.Is(err, ErrPermanent):
		log.Error("dropping a batch of events: the action failed and retrying cannot help", "err", err, "attempts", attempts)
		return r.ackAll(log, items)
	case r.opt.MaxAttempts > 0 && attempts >= r.opt.MaxAttempts:
		log.Error("dropping a batch of events: the action failed too many times", "err", err, "attempts", attempts)
		return r.ackAll(log, items)
	}
	// Every item of the batch is due again at the same time, so that the
	// batch stays whole and in order.
	next := now.Add(retry.Backoff(attempts, r.opt.MinBackoff, r.opt.MaxBackoff))
	for _, it := range items {
		if qerr := r.q.QueueRetry(r.name, it.Seq, next); qerr != nil {
			log.Error("cannot reschedule a failed event; it will be tried again soon", "seq", it.Seq, "err", qerr, "action_err", err)
			storeFailed = true
		}
	}
	logRetry(log, "action failed; the events stay queued and will be tried again", err, len(items), attempts, next)
	return storeFailed
}

// doBatch calls DoBatch and turns a panic into an error, as do does.
func (r *runner) doBatch(ctx context.Context, a BatchAction, evs []store.Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("action panicked", "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("action %s panicked: %v", r.name, p)
		}
	}()
	return a.DoBatch(ctx, evs)
}

// ackAll acknowledges the items concurrently: the store merges concurrent
// acknowledgements into one commit, while sequential ones would each wait
// for their own. It reports whether the store failed.
func (r *runner) ackAll(log *slog.Logger, items []store.QueueItem) bool {
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := false
	for _, it := range items {
		wg.Go(func() {
			if r.ack(log.With("seq", it.Seq), it.Seq) {
				mu.Lock()
				failed = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return failed
}

// logRetry logs a failure that will be retried: as an error with the
// cause as its message when only an administrator can fix it, else as a
// warning saying msg.
func logRetry(log *slog.Logger, msg string, err error, events, attempts int, next time.Time) {
	if errors.Is(err, ErrNeedsAdmin) {
		log.Error(err.Error(), "events_kept", events, "attempts", attempts, "next_attempt", next)
		return
	}
	log.Warn(msg, "err", err, "events", events, "attempts", attempts, "next_attempt", next)
}
