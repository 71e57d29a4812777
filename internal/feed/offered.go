package feed

import "sync"

// OfferedPerPeer is how many Message-IDs Offered remembers for each peer:
// the latest ones. A report is queued for the peers a moment after it
// arrives, and the offers that make the repeat useless arrive in that
// moment too; a few thousand cover a burst.
const OfferedPerPeer = 4096

// Offered remembers the articles each peer has offered this site lately
// (CHECK, IHAVE, TAKETHIS), whatever the answer: a peer offers only what
// it has, so there is no point in offering them back. In a mesh, two
// sites joined by a link each receive a report over another path, and each
// offered it to the other: the Path of the copy each received does not
// name the other, so only the other's offer tells. Path-based suppression
// (Wants) leaves those repeats, two per redundant link and report; this
// removes the second whenever the first offer arrived before the second
// was sent. It is safe for concurrent use; the zero value is not, use
// NewOffered.
type Offered struct {
	mu    sync.Mutex
	peers map[string]*recentIDs
}

// recentIDs is a set of at most OfferedPerPeer IDs, the oldest evicted.
type recentIDs struct {
	ids  map[string]struct{}
	ring []string
	next int
}

// NewOffered returns an empty Offered.
func NewOffered() *Offered { return &Offered{peers: make(map[string]*recentIDs)} }

// Add records that peer offered messageID.
func (o *Offered) Add(peer, messageID string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := o.peers[peer]
	if r == nil {
		r = &recentIDs{ids: make(map[string]struct{}), ring: make([]string, OfferedPerPeer)}
		o.peers[peer] = r
	}
	if _, ok := r.ids[messageID]; ok {
		return
	}
	if old := r.ring[r.next]; old != "" {
		delete(r.ids, old)
	}
	r.ring[r.next] = messageID
	r.ids[messageID] = struct{}{}
	r.next = (r.next + 1) % len(r.ring)
}

// Has reports whether peer offered messageID lately.
func (o *Offered) Has(peer, messageID string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := o.peers[peer]
	if r == nil {
		return false
	}
	_, ok := r.ids[messageID]
	return ok
}

// For returns the Options.PeerHas of peer's feed.
func (o *Offered) For(peer string) func(messageID string) bool {
	return func(id string) bool { return o.Has(peer, id) }
}
