package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	bolt "go.etcd.io/bbolt"
)

// EventKind says what happened to an address.
type EventKind uint8

const (
	EventReport   EventKind = iota + 1 // a report was stored
	EventExpired                       // a listing expired
	EventDelisted                      // an administrator removed a listing
)

func (k EventKind) String() string {
	switch k {
	case EventReport:
		return "report"
	case EventExpired:
		return "expired"
	case EventDelisted:
		return "delisted"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is what an action queue holds: enough for a log line, a DNS update
// or a feed, with the article itself fetched by Message-ID when needed.
type Event struct {
	Kind      EventKind
	Time      time.Time
	IP        netip.Addr
	MessageID string    // EventReport
	Origin    string    // EventReport
	Listed    bool      // EventReport: the address is listed after this report (false: below threshold)
	Expires   time.Time // EventReport when Listed
	// By is, for EventDelisted, who delisted ("dstctl", ...); for a
	// report kept in a feed's refused queue (QueueMove), why the peer
	// refused it.
	By string
	// Class is an EventReport's class (DST-Class) when it is not spam:
	// "backscatter", "auto-reply", or a name a newer site sent. "" is
	// spam, as for a report without the field.
	Class string

	// Cause and Path are for the subscribers (DB.Subscribe) and are not
	// queued: an event read from a queue has neither.
	Cause Cause
	// Path is the Path header of the article an EventReport names (a
	// report, or a cancel control article): a feed skips the peers in it.
	Path string
}

// QueueItem is an event waiting in a queue.
type QueueItem struct {
	Seq         uint64 // position in the queue; increases with each Enqueue
	Event       Event
	Attempts    int       // failed attempts so far
	NextAttempt time.Time // not before; zero for a new item, which is due at once
}

// Queue is what a consumer of a durable queue needs: the action runner,
// the DNS UPDATE sender and the peer feeds. *DB implements it; tests give
// fakes.
type Queue interface {
	QueueNext(queue string, now time.Time, n int, skip func(seq uint64) bool) ([]QueueItem, error)
	QueueAck(queue string, seq uint64) error
	QueueRetry(queue string, seq uint64, next time.Time) error
	QueueDepth(queue string) (int, error)
}

var _ Queue = (*DB)(nil)

// uniqueQueues checks queue names and drops repeats, keeping order.
func uniqueQueues(names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		if err := validQueueName(n); err != nil {
			return nil, err
		}
		dup := false
		for _, o := range out {
			dup = dup || o == n
		}
		if !dup {
			out = append(out, n)
		}
	}
	return out, nil
}

func validQueueName(n string) error {
	if n == "" || len(n) > maxQueueNameLen {
		return fmt.Errorf("queue name %q must be 1 to %d bytes", n, maxQueueNameLen)
	}
	return nil
}

// Enqueue puts ev on each of the named queues, whatever their subscribers
// want: for events that no write of the store makes (tests, tools). The
// observers hear of it like any write's events.
func (db *DB) Enqueue(queues []string, ev Event) error {
	queues, err := uniqueQueues(queues)
	if err != nil {
		return fmt.Errorf("enqueue %s event: %w", ev.Kind, err)
	}
	if err := validEvent(ev); err != nil {
		return fmt.Errorf("enqueue %s event: %w", ev.Kind, err)
	}
	ev.IP = unmapped(ev.IP)
	var e *effects
	err = db.batch(func(tx *bolt.Tx) error {
		e = db.newEffects()
		return e.enqueue(bucketsOf(tx), queues, ev)
	})
	if err != nil {
		return fmt.Errorf("enqueue %s event for %s: %w", ev.Kind, ev.IP, err)
	}
	db.committed(e)
	return nil
}

// QueueNext returns up to n items of the queue, in Seq order, that are due
// at now and for which skip (if not nil) returns false; skip lets a runner
// pass over items it already has in flight. skip runs inside a read
// transaction and must not call methods of db.
func (db *DB) QueueNext(queue string, now time.Time, n int, skip func(seq uint64) bool) ([]QueueItem, error) {
	if err := validQueueName(queue); err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, fmt.Errorf("read queue %s: count %d must be positive", queue, n)
	}
	var items []QueueItem
	err := db.bdb.View(func(tx *bolt.Tx) error {
		q := tx.Bucket([]byte(bucketQueues)).Bucket([]byte(queue))
		if q == nil {
			return nil // nothing was ever queued
		}
		c := q.Cursor()
		for k, v := c.First(); k != nil && len(items) < n; k, v = c.Next() {
			// A consumer calls this once per item it takes, with the
			// items it has in hand still queued: skipping those by key
			// spares decoding them again each time.
			if skip != nil && len(k) == 8 && skip(binary.BigEndian.Uint64(k)) {
				continue
			}
			it, err := decodeItem(k, v)
			if err != nil {
				return err
			}
			if it.NextAttempt.After(now) {
				continue
			}
			items = append(items, it)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read queue %s: %w", queue, err)
	}
	return items, nil
}

// QueueAck removes an item that has been handled. Acknowledging an item that
// is not there (already acknowledged) is not an error.
//
// Like AddReport it shares commits with concurrent writers, so
// acknowledgements from many runners cost one fsync; the price is waiting
// for the commit under way, if any, so a runner should not wait for one ack
// before starting the next item.
func (db *DB) QueueAck(queue string, seq uint64) error {
	return db.queueAck(queue, seq, db.batch)
}

// QueueAckLazy is QueueAck for a consumer that does not wait for the
// acknowledgement before going on (the action runner): it joins the next
// commit of another writer, or commits after LazyWait (see LazyWait). A
// crash in between makes the item handled again, as delivery is at least
// once anyway.
func (db *DB) QueueAckLazy(queue string, seq uint64) error {
	return db.queueAck(queue, seq, db.batchLazy)
}

func (db *DB) queueAck(queue string, seq uint64, batch func(func(*bolt.Tx) error) error) error {
	if err := validQueueName(queue); err != nil {
		return err
	}
	key := seqKey(seq)
	err := batch(func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		q := b.queues.Bucket([]byte(queue))
		if q == nil || q.Get(key) == nil {
			return nil
		}
		if err := q.Delete(key); err != nil {
			return err
		}
		return addCounter(b.meta, depthPrefix+queue, -1)
	})
	if err != nil {
		return fmt.Errorf("acknowledge item %d of queue %s: %w", seq, queue, err)
	}
	return nil
}

// QueueAckAll removes many handled items of one queue together, for a
// consumer that gathers its acknowledgements (a feed does). It is lazy,
// like QueueAckLazy: the items join the next commit of another writer, or
// are committed after LazyWait, rather than costing a commit of their
// own. Items not there are skipped, as with QueueAck.
func (db *DB) QueueAckAll(queue string, seqs []uint64) error {
	return db.queueAckAll(queue, seqs, db.batchLazy)
}

// QueueAckAllNow is QueueAckAll committed at once, for a consumer working
// through a backlog: waiting LazyWait for each batch would cap it at a
// batch per LazyWait when nothing else commits (a quiet site catching a
// peer up).
func (db *DB) QueueAckAllNow(queue string, seqs []uint64) error {
	return db.queueAckAll(queue, seqs, db.batch)
}

func (db *DB) queueAckAll(queue string, seqs []uint64, batch func(func(*bolt.Tx) error) error) error {
	if err := validQueueName(queue); err != nil {
		return err
	}
	if len(seqs) == 0 {
		return nil
	}
	err := batch(func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		q := b.queues.Bucket([]byte(queue))
		if q == nil {
			return nil
		}
		n := int64(0)
		for _, seq := range seqs {
			key := seqKey(seq)
			if q.Get(key) == nil {
				continue
			}
			if err := q.Delete(key); err != nil {
				return err
			}
			n++
		}
		if n == 0 {
			return nil
		}
		return addCounter(b.meta, depthPrefix+queue, -n)
	})
	if err != nil {
		return fmt.Errorf("acknowledge %d items of queue %s: %w", len(seqs), queue, err)
	}
	return nil
}

// QueueRetry records a failed attempt at an item and sets when it is next
// due.
func (db *DB) QueueRetry(queue string, seq uint64, next time.Time) error {
	if err := validQueueName(queue); err != nil {
		return err
	}
	key := seqKey(seq)
	err := db.batch(func(tx *bolt.Tx) error {
		var q *bolt.Bucket
		if q = tx.Bucket([]byte(bucketQueues)).Bucket([]byte(queue)); q == nil {
			return errors.New("no such item (already acknowledged?)")
		}
		v := q.Get(key)
		if v == nil {
			return errors.New("no such item (already acknowledged?)")
		}
		it, err := decodeItem(key, v)
		if err != nil {
			return err
		}
		it.Attempts++
		it.NextAttempt = next
		return q.Put(key, encodeItem(it))
	})
	if err != nil {
		return fmt.Errorf("reschedule item %d of queue %s: %w", seq, queue, err)
	}
	return nil
}

// QueueDepth returns the number of items in the queue, from a counter.
func (db *DB) QueueDepth(queue string) (int, error) {
	if err := validQueueName(queue); err != nil {
		return 0, err
	}
	var n int64
	err := db.bdb.View(func(tx *bolt.Tx) error {
		n = getCounter(tx.Bucket([]byte(bucketMeta)), depthPrefix+queue)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read depth of queue %s: %w", queue, err)
	}
	return int(n), nil
}
