// Package dnsbl serves DST's listings as an RFC 5782 DNS blocklist: an
// authoritative server for one zone with AXFR (RFC 5936), IXFR (RFC 1995) and
// NOTIFY (RFC 1996) so standard secondaries can carry the zone at scale.
package dnsbl

import (
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Entry is what the blocklist knows about one listed address.
type Entry struct {
	Expires, FirstSeen time.Time
	Hits               int
	Origins            []string
}

// defaultJournalSize bounds the IXFR journal: enough for a secondary that
// missed a few minutes of a busy feed, small enough (~100 B a change) to
// keep in memory. Older serials fall back to a full transfer.
const defaultJournalSize = 10000

// change is one journal record: the zone went from serial-1 to serial by
// replacing old with new (either may be nil for an add or a remove).
type change struct {
	serial   uint32
	ip       netip.Addr
	old, new *Entry
}

// listing is one (address, entry) pair in a snapshot.
type listing struct {
	ip netip.Addr
	e  Entry
}

// Index holds the listings in memory. It is safe for concurrent use.
//
// Lookups take mu.RLock only. Writers first take wmu and then hold mu.Lock
// for a single map update, so a lookup waits at most for one map write.
// Snapshots for AXFR take wmu (keeping writers out) and then mu.RLock: since
// no writer can be queued on mu meanwhile, sync.RWMutex never makes new
// readers wait behind the long copy.
type Index struct {
	wmu sync.Mutex
	mu  sync.RWMutex
	m   map[netip.Addr]Entry
	// ent4 and ent6 count listings below each partial reverse name so the
	// server can tell an empty non-terminal (NODATA) from a name with
	// nothing below (NXDOMAIN), RFC 8020. ent4 is keyed by
	// level<<24 | the top level*8 bits; ent6 by nibble prefix.
	ent4    map[uint32]uint32
	ent6    map[netip.Prefix]uint32
	serial  uint32
	journal []change // ring buffer, journal[jstart] is the oldest
	jstart  int
	jmax    int
}

// NewIndex returns an empty index whose serial is the current Unix time, so
// a restarted server never goes backwards in RFC 1982 serial order and
// secondaries keep pulling from it.
func NewIndex() *Index {
	return &Index{
		m:      make(map[netip.Addr]Entry),
		ent4:   make(map[uint32]uint32),
		ent6:   make(map[netip.Prefix]uint32),
		serial: uint32(time.Now().Unix()),
		jmax:   defaultJournalSize,
	}
}

// Set adds or updates the listing for ip and bumps the serial.
func (x *Index) Set(ip netip.Addr, e Entry) {
	ip = ip.WithZone("")
	if !ip.IsValid() {
		return
	}
	// Entries are shared with snapshots and the journal, so own the slice.
	e.Origins = slices.Clone(e.Origins)
	x.wmu.Lock()
	defer x.wmu.Unlock()
	// Reading m without mu is safe here: wmu excludes every other writer.
	var oldp *Entry
	if old, ok := x.m[ip]; ok {
		oldp = &old
	}
	ne := e
	x.mu.Lock()
	x.m[ip] = e
	if oldp == nil {
		x.countENT(ip, 1)
	}
	x.bump(change{ip: ip, old: oldp, new: &ne})
	x.mu.Unlock()
}

// Remove deletes the listing for ip; the serial changes only if it was there.
func (x *Index) Remove(ip netip.Addr) {
	ip = ip.WithZone("")
	x.wmu.Lock()
	defer x.wmu.Unlock()
	old, ok := x.m[ip]
	if !ok {
		return
	}
	x.mu.Lock()
	delete(x.m, ip)
	x.countENT(ip, -1)
	x.bump(change{ip: ip, old: &old})
	x.mu.Unlock()
}

// bump advances the serial by one (RFC 1982: adding 1 modulo 2^32 always
// moves forward) and journals c. Caller holds mu.Lock.
func (x *Index) bump(c change) {
	x.serial++
	c.serial = x.serial
	if len(x.journal) < x.jmax {
		x.journal = append(x.journal, c)
		return
	}
	x.journal[x.jstart] = c
	x.jstart = (x.jstart + 1) % len(x.journal)
}

// countENT adjusts the empty-non-terminal counters for ip by d.
func (x *Index) countENT(ip netip.Addr, d int) {
	if ip.Is4() {
		b := ip.As4()
		u := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		for lvl := uint32(1); lvl <= 3; lvl++ {
			k := lvl<<24 | u>>(32-8*lvl)
			x.ent4[k] = uint32(int(x.ent4[k]) + d)
			if x.ent4[k] == 0 {
				delete(x.ent4, k)
			}
		}
		return
	}
	for n := 1; n <= 31; n++ {
		p, _ := ip.Prefix(4 * n)
		x.ent6[p] = uint32(int(x.ent6[p]) + d)
		if x.ent6[p] == 0 {
			delete(x.ent6, p)
		}
	}
}

// Len returns the number of listings (the RFC 5782 test points excluded).
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.m)
}

// Serial returns the current zone serial.
func (x *Index) Serial() uint32 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.serial
}

// Get returns the listing for ip.
func (x *Index) Get(ip netip.Addr) (Entry, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.m[ip]
	return e, ok
}

// hasBelow4 reports whether a listing exists under the first n (1..3) octets
// of the big-endian prefix u (u holds exactly n octets).
func (x *Index) hasBelow4(u uint32, n int) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.ent4[uint32(n)<<24|u] > 0
}

// hasBelow6 reports whether a listing lies strictly inside prefix p.
func (x *Index) hasBelow6(p netip.Prefix) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.ent6[p] > 0
}

// snapshot returns a consistent copy of all listings and their serial.
func (x *Index) snapshot() (uint32, []listing) {
	x.wmu.Lock()
	defer x.wmu.Unlock()
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]listing, 0, len(x.m))
	for ip, e := range x.m {
		out = append(out, listing{ip, e})
	}
	return x.serial, out
}

// changesSince returns the journal records that take a zone at serial from
// to the current serial, oldest first. ok is false when the journal no
// longer reaches back to from (or from is not behind us at all), in which
// case the caller must fall back to a full transfer (RFC 1995 §4).
func (x *Index) changesSince(from uint32) (cur uint32, cs []change, ok bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	cur = x.serial
	n := cur - from // RFC 1982 distance; huge if from is "ahead" of us
	if n == 0 {
		return cur, nil, true
	}
	if int64(n) > int64(len(x.journal)) {
		return cur, nil, false
	}
	cs = make([]change, 0, n)
	for i := len(x.journal) - int(n); i < len(x.journal); i++ {
		cs = append(cs, x.journal[(x.jstart+i)%len(x.journal)])
	}
	return cur, cs, true
}
