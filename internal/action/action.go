package action

import (
	"context"
	"errors"
	"time"

	"github.com/dst-traps/dst/internal/store"
)

// Action is one thing dstd does with events. Its methods must be safe for
// concurrent use: the runner calls Do from up to Concurrency goroutines.
type Action interface {
	// Name is the name of the action's queue in the store, such as "log"
	// or "program". It must not change between runs of dstd, or events
	// left in the old queue are stranded.
	Name() string
	// Wants says which events the action consumes: it is the action's
	// subscription (store.DB.Subscribe), so the store enqueues only those,
	// and the runner acknowledges any other it finds (left from an older
	// configuration) without calling Do. An event read back from the
	// queue has no Cause or Path (see store.Event), so Wants must take
	// the zero Cause.
	Wants(ev store.Event) bool
	// Do handles one event. nil means done, and the event is removed from
	// the queue; an error wrapping ErrPermanent drops the event; any other
	// error has it retried later. Do must return soon after ctx is done.
	Do(ctx context.Context, ev store.Event) error
}

// BatchAction is an Action that takes its events in batches: DNS UPDATE
// sends one message for many. The runner gives DoBatch up to BatchSize
// events at a time, in queue order, one batch at a time, and treats the
// batch as one: nil acknowledges every event of it, an error retries them
// all together, and nothing after them is handed over until they are
// done, so a later event never overtakes an earlier one that failed. Do
// is not called.
type BatchAction interface {
	Action
	BatchSize() int
	DoBatch(ctx context.Context, evs []store.Event) error
}

// SyncAction is an Action whose Do does its work without making it
// durable, and whose Sync makes durable the work of every Do that has
// returned. The runner calls Sync before it acknowledges an event, once
// for all the events done within SyncDelay of each other: the report log
// writes each line at once (a reader sees it) and syncs the file once for
// many lines, instead of once per line.
type SyncAction interface {
	Action
	Sync() error
}

// SyncDelay is the longest the runner gathers the events of a SyncAction
// before it calls Sync for them. Their acknowledgements wait for the
// sync; nothing else does.
const SyncDelay = 50 * time.Millisecond

// ErrPermanent, wrapped in an error returned by Action.Do, means that
// trying again cannot help (a bad configuration, an event that cannot be
// handled), so the runner drops the event instead of retrying it.
var ErrPermanent = errors.New("permanent failure")

// ErrNeedsAdmin, wrapped in an error returned by Do or DoBatch, means
// that retrying will not help until an administrator fixes something (a
// key the server refuses, its policy): the runner keeps the events and
// retries, but logs each failure as an error whose message is the cause,
// rather than as a warning.
var ErrNeedsAdmin = errors.New("needs the administrator")

// Queue is the part of the store a runner needs. It is store.Queue,
// defined there once for every queue consumer; the name stays for
// callers of this package.
type Queue = store.Queue
