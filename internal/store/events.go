package store

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// The store routes the events its writes make: each queue has one
// subscriber, whose wants function picks the events it takes (Subscribe),
// and every write that makes events (AddReport, Cancel, Delist, Expire,
// Enqueue) appends each to the queues that want it inside its own
// transaction, so an event is queued if and only if its change committed.
// After the commit the write tells the observers (OnCommit) what changed:
// the listings, and how many events each queue got. dstd's one observer
// keeps the DNS index, counts metrics and wakes the consumers.

// Cause says why a write made an event, so that subscribers can tell
// events of one Kind apart. It is not kept in the queue: an event read
// back from a queue has the zero Cause, CauseListing.
type Cause uint8

const (
	// CauseListing: the event is about this site's list: a report counted
	// here (pending, listed or extended), an expiry, a delisting (by an
	// administrator or by a cancel).
	CauseListing Cause = iota
	// CauseRelay: a peer's report stored only to relay it
	// (IngestParams.RelayOnly); it counts for nothing here.
	CauseRelay
	// CauseCancel: a cancel control article, stored to flood it. The
	// EventReport names the control article; IP is the cancelled
	// report's, when it is known here.
	CauseCancel
	// CauseUpdate: a cancel changed a listing that stays (fewer hits or
	// origins). The EventReport is Listed, with the listing's expiry, for
	// what republishes a listing (DNS UPDATE: A and TXT again).
	CauseUpdate
)

func (c Cause) String() string {
	switch c {
	case CauseListing:
		return "listing"
	case CauseRelay:
		return "relay"
	case CauseCancel:
		return "cancel"
	case CauseUpdate:
		return "update"
	}
	return fmt.Sprintf("Cause(%d)", uint8(c))
}

// ChangeKind says what a write did to a listing.
type ChangeKind uint8

const (
	ChangeListed    ChangeKind = iota + 1 // a report listed the address
	ChangeExtended                        // a report extended the listing
	ChangeUpdated                         // a cancel took a report out of a listing that stays
	ChangeExpired                         // the listing expired (Expire)
	ChangeDelisted                        // an administrator removed it (Delist)
	ChangeCancelled                       // a cancel removed it
)

// Removed reports whether the listing is gone after the change.
func (k ChangeKind) Removed() bool {
	return k == ChangeExpired || k == ChangeDelisted || k == ChangeCancelled
}

// String is the kind's name; for removals it is the reason label of the
// metric dst_store_listings_removed_total.
func (k ChangeKind) String() string {
	switch k {
	case ChangeListed:
		return "listed"
	case ChangeExtended:
		return "extended"
	case ChangeUpdated:
		return "updated"
	case ChangeExpired:
		return "expired"
	case ChangeDelisted:
		return "delisted"
	case ChangeCancelled:
		return "cancelled"
	}
	return fmt.Sprintf("ChangeKind(%d)", uint8(k))
}

// Change is what one write did to one address's listing.
type Change struct {
	Kind ChangeKind
	// Listing is the listing after the change; for a removal, the one
	// removed.
	Listing Listing
	// Origin and Date are those of the report that made a ChangeListed
	// or ChangeExtended (zero for the other kinds), for the trap-to-listed
	// latency.
	Origin string
	Date   time.Time
}

// Commit is what one committed write changed, as the observers see it.
type Commit struct {
	// Listings are the listings the write added, changed or removed, in
	// the order it did so.
	Listings []Change
	// Queued counts the events the write enqueued, by queue name.
	Queued map[string]int
}

// empty reports whether the write changed nothing the observers hear of.
func (c Commit) empty() bool { return len(c.Listings) == 0 && len(c.Queued) == 0 }

type subscriber struct {
	queue string
	wants func(Event) bool
}

// hooks are the subscribers and observers. They are set up before the
// store is used; the lock only makes a late call safe, not meaningful.
type hooks struct {
	mu        sync.RWMutex
	subs      []subscriber
	observers []func(Commit)
}

// Subscribe makes queue get, from now on, every event for which wants
// returns true (every event, if wants is nil). Call it at setup, before
// the writes whose events the queue must not miss. wants runs inside the
// write transaction: it must be quick and must not call methods of db.
// Each queue has one subscriber.
func (db *DB) Subscribe(queue string, wants func(Event) bool) error {
	if err := validQueueName(queue); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	db.hooks.mu.Lock()
	defer db.hooks.mu.Unlock()
	for _, s := range db.hooks.subs {
		if s.queue == queue {
			return fmt.Errorf("subscribe: queue %s has a subscriber already (two actions or peers with one name?)", queue)
		}
	}
	db.hooks.subs = append(db.hooks.subs, subscriber{queue: queue, wants: wants})
	return nil
}

// OnCommit adds an observer: after each write that committed a change to
// a listing or enqueued an event, fn is called once with what that write
// did, in the writer's goroutine. Writes that share a commit (see
// DB.batch) are told apart, each with its own part. Observers of
// concurrent writes run concurrently and in no set order, so one that
// must end in the latest state should read it from the store. fn may call
// methods of db.
func (db *DB) OnCommit(fn func(Commit)) {
	db.hooks.mu.Lock()
	defer db.hooks.mu.Unlock()
	db.hooks.observers = append(db.hooks.observers, fn)
}

// effects collects what one run of a write transaction does that the
// subscribers and observers hear of. A transaction that the group commit
// runs again starts from new effects, so only the run that committed
// counts.
type effects struct {
	subs []subscriber
	c    Commit
}

// newEffects starts the effects of one transaction run.
func (db *DB) newEffects() *effects {
	db.hooks.mu.RLock()
	defer db.hooks.mu.RUnlock()
	return &effects{subs: db.hooks.subs}
}

// committed tells the observers what a committed write did.
func (db *DB) committed(e *effects) {
	if e == nil || e.c.empty() {
		return
	}
	db.hooks.mu.RLock()
	obs := db.hooks.observers
	db.hooks.mu.RUnlock()
	for _, fn := range obs {
		fn(e.c)
	}
}

// listing records a change to a listing.
func (e *effects) listing(kind ChangeKind, l Listing) {
	e.c.Listings = append(e.c.Listings, Change{Kind: kind, Listing: l})
}

// reported records a change a report made to a listing.
func (e *effects) reported(kind ChangeKind, l Listing, r Report) {
	e.c.Listings = append(e.c.Listings, Change{Kind: kind, Listing: l, Origin: r.Origin, Date: r.Date})
}

// publish enqueues ev on every queue whose subscriber wants it, inside the
// caller's transaction.
func (e *effects) publish(b buckets, ev Event) error {
	var queues []string
	for _, s := range e.subs {
		if s.wants == nil || s.wants(ev) {
			queues = append(queues, s.queue)
		}
	}
	return e.enqueue(b, queues, ev)
}

// enqueue appends ev to each queue inside the caller's transaction.
func (e *effects) enqueue(b buckets, queues []string, ev Event) error {
	if len(queues) == 0 {
		return nil
	}
	v := encodeItem(QueueItem{Event: ev})
	for _, name := range queues {
		q, err := b.queues.CreateBucketIfNotExists([]byte(name))
		if err != nil {
			return fmt.Errorf("create queue %s: %w", name, err)
		}
		// Keys only ever grow, so pages are filled before they split.
		q.FillPercent = 0.9
		seq, err := q.NextSequence()
		if err != nil {
			return fmt.Errorf("queue %s: %w", name, err)
		}
		if err := q.Put(seqKey(seq), v); err != nil {
			return fmt.Errorf("append to queue %s: %w", name, err)
		}
		if err := addCounter(b.meta, depthPrefix+name, 1); err != nil {
			return err
		}
		if e.c.Queued == nil {
			e.c.Queued = make(map[string]int)
		}
		e.c.Queued[name]++
	}
	return nil
}

// validEvent checks an event given to Enqueue.
func validEvent(ev Event) error {
	if ev.Kind < EventReport || ev.Kind > EventDelisted {
		return fmt.Errorf("unknown event kind %d", uint8(ev.Kind))
	}
	if !ev.IP.IsValid() {
		return errors.New("no valid IP address")
	}
	return nil
}

// unmapped is ip as the store keeps it.
func unmapped(ip netip.Addr) netip.Addr { return ip.Unmap().WithZone("") }
