package action

import (
	"context"
	"errors"

	"github.com/dst-traps/dst/internal/store"
)

// Action is one thing dstd does with events. Its methods must be safe for
// concurrent use: the runner calls Do from up to Concurrency goroutines.
type Action interface {
	// Name is the name of the action's queue in the store, such as "log"
	// or "program". It must not change between runs of dstd, or events
	// left in the old queue are stranded.
	Name() string
	// Wants says which events the action consumes; dstd enqueues only
	// those, and the runner acknowledges any other it finds (left from an
	// older configuration) without calling Do.
	Wants(ev store.Event) bool
	// Do handles one event. nil means done, and the event is removed from
	// the queue; an error wrapping ErrPermanent drops the event; any other
	// error has it retried later. Do must return soon after ctx is done.
	Do(ctx context.Context, ev store.Event) error
}

// ErrPermanent, wrapped in an error returned by Action.Do, means that
// trying again cannot help (a bad configuration, an event that cannot be
// handled), so the runner drops the event instead of retrying it.
var ErrPermanent = errors.New("permanent failure")

// Queue is the part of the store a runner needs. It is store.Queue,
// defined there once for every queue consumer; the name stays for
// callers of this package.
type Queue = store.Queue
