package nntp

import (
	"bufio"
	"io"
	"sync"
	"sync/atomic"
)

// Pipelined TAKETHIS.
//
// A streaming peer sends TAKETHIS after TAKETHIS without waiting for the
// answers (RFC 4644 §2.5). Run one at a time, every article would wait for
// its own commit and fsync before the next one is even read. Instead, once
// an article is read and has passed the checks that need no handler, its
// Receive runs in a goroutine of its own while the session reads on, so the
// store can put the articles of one peer in one commit (store.DB's group
// commit), and the responses go out as the calls return, in command order.
//
// What does not change:
//   - Responses are written in the order the commands came (RFC 4644 §2.5
//     lets a peer match them by order; ours, and innfeed, do).
//   - A TAKETHIS is answered only after its Receive has returned: an
//     acknowledgement still means the article is durably stored.
//   - Every command other than CHECK and TAKETHIS first waits until every
//     earlier response has been written (see dispatch), so it runs as it
//     did: AUTHINFO and STARTTLS, which change the Session, never overlap a
//     Receive that reads it, and IHAVE, POST or QUIT come after the answers
//     to the articles sent before them. CHECK is answered at once (Check
//     is cheap and reads only), its response queued behind the pending
//     ones.
//   - serve returns only after every Receive it started has returned, so
//     the store is not closed under one, and Shutdown still means every
//     article taken was answered after its commit.

// maxInFlight bounds the responses of one session that are not written yet,
// and so the Receive calls it runs at once and the articles it holds in
// memory: a TAKETHIS that would be one more waits for the oldest to be
// written. Our feeder keeps at most 64 commands unanswered
// (feed.DefaultWindow), so it never waits here.
const maxInFlight = 64

// replyQueue is a session's outgoing responses, in command order. It owns the
// session's buffered writer: every write and flush is done under mu, by
// serve's goroutine or by the goroutine of a Receive that has just
// returned.
type replyQueue struct {
	mu       sync.Mutex
	changed  sync.Cond      // on mu; broadcast when responses leave the queue
	bw       *bufio.Writer  // guarded by mu
	queue    []*response    // not written yet, oldest first; guarded by mu
	bytes    int64          // of the articles whose Receive runs; guarded by mu
	maxBytes int64          // Limits.MaxPipelinedBytes
	ended    atomic.Bool    // a response ended the session: no more are written
	running  sync.WaitGroup // the goroutines of start
	// onEnd is called, without mu, when a response written by a Receive's
	// goroutine ends the session, to wake serve if it waits for a command.
	onEnd func()
}

// response is one response in the queue: whole lines, CRLF included, once
// known.
type response struct {
	text  string
	ready bool
	ends  bool // the session ends once it is written (see closesAfter)
}

func newReplyQueue(w io.Writer, maxBytes int64, onEnd func()) *replyQueue {
	q := &replyQueue{bw: bufio.NewWriter(w), maxBytes: maxBytes, onEnd: onEnd}
	q.changed.L = &q.mu
	return q
}

// send queues a response known now: it is written at once if nothing is
// waiting before it, and otherwise by whoever writes the one before it. It
// is not flushed here: serve flushes before it reads (flushReader), so that
// a pipelined batch of CHECKs is answered in a few writes.
func (q *replyQueue) send(text string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.queue = append(q.queue, &response{text: text, ready: true})
	q.writeReady()
}

// start runs fn, the Receive of an article of size bytes, in a goroutine
// of its own; what it returns is the next response in command order, and
// ends says the session ends after it. When maxInFlight responses are
// already waiting, or the articles being received would exceed maxBytes,
// start first waits for earlier ones. Once the session has ended, fn is
// not run at all: its response could not be sent.
func (q *replyQueue) start(size int64, fn func() (text string, ends bool)) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for (len(q.queue) >= maxInFlight || (q.bytes > 0 && q.bytes+size > q.maxBytes)) && !q.ended.Load() {
		q.changed.Wait()
	}
	if q.ended.Load() {
		return
	}
	r := &response{}
	q.queue = append(q.queue, r)
	q.bytes += size
	q.running.Add(1)
	go func() {
		defer q.running.Done()
		text, ends := fn()
		q.finish(r, size, text, ends)
	}()
}

// finish completes r and writes what is ready, then flushes: a goroutine
// that has just written must not leave its bytes in the buffer, since serve
// may be waiting for the client, which may be waiting for them. Responses
// that are ready together (the articles of one group commit) share a write.
func (q *replyQueue) finish(r *response, size int64, text string, ends bool) {
	q.mu.Lock()
	r.text, r.ready, r.ends = text, true, ends
	q.bytes -= size
	q.changed.Broadcast() // start may wait for bytes, not only for the head
	ended := q.writeReady()
	q.bw.Flush() // an error sticks in bw; serve sees it at its next flush
	q.mu.Unlock()
	if ended && q.onEnd != nil {
		q.onEnd()
	}
}

// writeReady writes the responses at the head of the queue that are ready,
// and reports whether one of them ended the session. Once the session has
// ended, the responses behind the one that ended it are dropped unwritten.
// mu is held.
func (q *replyQueue) writeReady() (endedNow bool) {
	n := 0
	for n < len(q.queue) && q.queue[n].ready {
		r := q.queue[n]
		q.queue[n] = nil
		n++
		if q.ended.Load() {
			continue
		}
		q.bw.WriteString(r.text)
		if r.ends {
			q.ended.Store(true)
			endedNow = true
		}
	}
	if n > 0 {
		q.queue = q.queue[n:]
		q.changed.Broadcast()
	}
	return endedNow
}

// wait blocks until every queued response has been written or dropped,
// which is after every Receive started so far has returned. It reports
// whether the session goes on (no response has ended it).
func (q *replyQueue) wait() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.queue) > 0 {
		q.changed.Wait()
	}
	return !q.ended.Load()
}

// flush writes out what is buffered.
func (q *replyQueue) flush() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bw.Flush()
}

// reset points the writer at w (after STARTTLS), dropping anything buffered.
func (q *replyQueue) reset(w io.Writer) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.bw.Reset(w)
}
