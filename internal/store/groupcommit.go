package store

import (
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Group commit without a timer.
//
// A commit is two fsyncs, whatever it holds. Writers that come while one
// is under way join the next, which starts as soon as that one ends: a
// writer alone commits at once, and under load each commit carries
// everything that arrived during the previous one. bbolt's Batch, used
// before, instead held every commit for a fixed delay (MaxBatchDelay) as
// soon as two writers met. In a network of sites that meet all the time
// (each report arrives over several links, and each is acknowledged to a
// few queues), that delay was paid at every hop, and on a loaded machine
// its timer fired late.

// Writes that need not be durable at once (a consumer's acknowledgements,
// which a crash only turns into a repeat) can be lazy: a lazy write waits
// for the next commit that another writer starts, and joins it, or starts
// one itself after LazyWait, or at once when maxLazy are waiting. In a
// network of sites every report is acknowledged to several queues (the
// report log, each feed); committed on their own, these acknowledgements
// were more commits than the reports themselves, each two fsyncs and a
// wake-up of every goroutine involved. Joined to the next report's commit
// they cost a few bucket writes.

// LazyWait is the longest a lazy write waits for another commit to join.
const LazyWait = 100 * time.Millisecond

// maxLazy is the most lazy writes that wait for LazyWait: the one that
// makes maxLazy starts their commit at once. A site's reports leave a few
// lazy writes each, which the next report's commit takes; only a backlog
// gathers this many.
const maxLazy = 64

// maxGroup bounds the writes in one commit (bbolt's MaxBatchSize), so
// that one transaction does not grow without end under a flood.
const maxGroup = 1000

// groupCall is one write waiting to be committed.
type groupCall struct {
	fn  func(*bolt.Tx) error
	res chan groupResult // buffered: whoever commits never waits for the caller
}

// groupResult is either the outcome of the call's write, or (lead) the
// order to commit the writes pending now, the call's own among them.
type groupResult struct {
	err  error
	lead bool
}

// groupCommit is the state of DB.batch.
type groupCommit struct {
	mu      sync.Mutex
	pending []*groupCall
	leading bool // a writer is committing; pending waits for the next commit
	// lazy are lazy writes waiting for a commit to join; lazyTimer
	// starts one for them when none came within LazyWait.
	lazy      []*groupCall
	lazyTimer *time.Timer
	commits   int // transactions committed (for tests)
}

// batch runs fn in a write transaction shared with the writers that
// arrive meanwhile (see above). fn must be idempotent and have no effect
// outside tx: it may run twice, when another write of its group fails and
// the rest are committed again without it.
func (db *DB) batch(fn func(*bolt.Tx) error) error {
	g := &db.group
	c := &groupCall{fn: fn, res: make(chan groupResult, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, c)
	lead := !g.leading
	g.leading = true
	g.mu.Unlock()
	if !lead {
		r := <-c.res
		if !r.lead {
			return r.err
		}
	}
	// This writer commits what is pending (its own write first of all),
	// then hands over to a writer of the next group, if any, so that it
	// does not keep working for others once its own write is done.
	db.lead()
	return (<-c.res).err
}

// batchLazy is batch for a write that may wait up to LazyWait for another
// writer's commit to join (see LazyWait). It returns once the write is
// committed, as batch does.
func (db *DB) batchLazy(fn func(*bolt.Tx) error) error {
	g := &db.group
	c := &groupCall{fn: fn, res: make(chan groupResult, 1)}
	g.mu.Lock()
	g.lazy = append(g.lazy, c)
	lead := false
	if len(g.lazy) >= maxLazy {
		// So many waiting are a backlog going through (the report log
		// catching up after a restart): waiting LazyWait for each
		// maxLazy of them would cap it at maxLazy per LazyWait.
		if g.lazyTimer != nil {
			g.lazyTimer.Stop()
			g.lazyTimer = nil
		}
		g.pending = append(g.pending, g.lazy...)
		g.lazy = nil
		lead = !g.leading
		g.leading = true
	} else if g.lazyTimer == nil {
		g.lazyTimer = time.AfterFunc(LazyWait, db.flushLazy)
	}
	g.mu.Unlock()
	if lead {
		db.lead()
		return (<-c.res).err
	}
	r := <-c.res
	if !r.lead {
		return r.err
	}
	db.lead()
	return (<-c.res).err
}

// flushLazy commits the lazy writes that no other commit took in time.
func (db *DB) flushLazy() {
	g := &db.group
	g.mu.Lock()
	g.lazyTimer = nil
	if len(g.lazy) == 0 {
		g.mu.Unlock()
		return
	}
	g.pending = append(g.pending, g.lazy...)
	g.lazy = nil
	if g.leading {
		g.mu.Unlock() // the commit under way hands over to them
		return
	}
	g.leading = true
	g.mu.Unlock()
	db.lead()
}

// lead commits what is pending, lazy writes included, and hands over to a
// writer of the next group, if any, so that the leader does not keep
// working for others once its own write is done. The caller has set
// leading.
func (db *DB) lead() {
	g := &db.group
	g.mu.Lock()
	if len(g.lazy) > 0 {
		g.pending = append(g.pending, g.lazy...)
		g.lazy = nil
		if g.lazyTimer != nil {
			g.lazyTimer.Stop()
			g.lazyTimer = nil
		}
	}
	n := min(len(g.pending), maxGroup)
	calls := g.pending[:n:n]
	g.pending = g.pending[n:]
	g.mu.Unlock()
	db.commitGroup(calls)
	g.mu.Lock()
	if len(g.pending) > 0 {
		g.pending[0].res <- groupResult{lead: true}
	} else {
		g.leading = false
	}
	g.mu.Unlock()
}

// commitGroup commits calls in one transaction and tells each its
// result. A call that fails is run again alone, to return its own error
// without failing the others, which are committed again without it.
func (db *DB) commitGroup(calls []*groupCall) {
	for len(calls) > 0 {
		db.group.mu.Lock()
		db.group.commits++
		db.group.mu.Unlock()
		failed := -1
		err := db.bdb.Update(func(tx *bolt.Tx) error {
			for i, c := range calls {
				if err := safeCall(c.fn, tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			for _, c := range calls {
				c.res <- groupResult{err: err}
			}
			return
		}
		c := calls[failed]
		if len(calls) == 1 {
			c.res <- groupResult{err: err}
			return
		}
		c.res <- groupResult{err: db.bdb.Update(func(tx *bolt.Tx) error { return safeCall(c.fn, tx) })}
		calls = append(calls[:failed:failed], calls[failed+1:]...)
	}
}

// errPanicked wraps a panic in a write, turned into its error so that the
// writers that shared its commit are not taken down with it.
var errPanicked = errors.New("panic in a write transaction")

func safeCall(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", errPanicked, p)
		}
	}()
	return fn(tx)
}
