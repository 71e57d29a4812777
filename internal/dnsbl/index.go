// Package dnsbl serves DST's listings as an RFC 5782 DNS blocklist: an
// authoritative server for one zone with AXFR (RFC 5936), IXFR (RFC 1995) and
// NOTIFY (RFC 1996) so standard secondaries can carry the zone at scale.
package dnsbl

import (
	"encoding/binary"
	"math"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Entry is what the blocklist knows about one listed address.
//
// The index keeps times at one-second precision (the TXT template prints
// RFC 3339 seconds) between 1970 and 2106, and Hits between 0 and 2^32-1:
// Get returns the values clamped and truncated that way, and a zero time
// stays zero. The Origins slice Get returns is shared: do not modify it.
//
// Corroboration is how many independent reporters stand behind the
// listing; a server with Config.Graded answers it in the A record
// (dnsutil.GradedA). The index keeps it between 0 and 255.
type Entry struct {
	Expires, FirstSeen time.Time
	Hits               int
	Origins            []string
	Corroboration      int
}

// packed is the form the index stores an Entry in: 16 bytes without
// pointers, instead of ~80 bytes plus a slice per listing. Pointer-free map
// values also mean the garbage collector never scans the million-entry maps.
type packed struct {
	expires, first uint32 // Unix seconds; 0 is the zero time.Time
	hits           uint32
	origins        uint32 // index into Index.sets: the origins and the corroboration
}

// packTime stores t as Unix seconds. 0 is kept for the zero time; other times
// before 1970 or after 2106 are clamped (listing times are always recent).
func packTime(t time.Time) uint32 {
	if t.IsZero() {
		return 0
	}
	return uint32(min(max(t.Unix(), 1), math.MaxUint32))
}

func unpackTime(s uint32) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(int64(s), 0).UTC()
}

// unpack rebuilds the Entry; set is the interned set p.origins names.
func (p packed) unpack(set originSet) Entry {
	return Entry{Expires: unpackTime(p.expires), FirstSeen: unpackTime(p.first), Hits: int(p.hits),
		Origins: set.origins, Corroboration: int(set.corr)}
}

// originSet is one distinct Origins list with its corroboration, shared by
// every listing that has it (in practice a handful of sets cover almost
// all listings). The corroboration lives here rather than in packed: it
// follows from the origins (and the keyring), so it costs no memory per
// listing.
type originSet struct {
	origins []string // never modified once interned: Get hands it out
	corr    uint8    // Entry.Corroboration
	refs    int      // listings in the maps that use it
}

// defaultJournalSize bounds the IXFR journal: enough for a secondary that
// missed a few minutes of a busy feed, small enough (~100 B a change) to
// keep in memory. Older serials fall back to a full transfer.
const defaultJournalSize = 10000

// jentry is one side of a journal record; ok is false for "absent".
type jentry struct {
	ok  bool
	e   packed
	set originSet // the set e.origins named at the time (sets are reused)
}

// entry returns the Entry, or nil when absent.
func (j *jentry) entry() *Entry {
	if !j.ok {
		return nil
	}
	e := j.e.unpack(j.set)
	return &e
}

// change is one journal record: the zone went from serial-1 to serial by
// replacing old with new (either may be absent for an add or a remove).
// Records are values, so Set allocates nothing for the journal.
type change struct {
	serial   uint32
	ip       netip.Addr
	old, new jentry
}

// listing is one (address, entry) pair in a snapshot; e.origins indexes the
// origin table returned with the snapshot.
type listing struct {
	ip netip.Addr
	e  packed
}

// Index holds the listings in memory. It is safe for concurrent use.
//
// Lookups take mu.RLock only. Writers first take wmu and then hold mu.Lock
// for a single map update, so a lookup waits at most for one map write.
// Snapshots for AXFR take wmu (keeping writers out) and then mu.RLock: since
// no writer can be queued on mu meanwhile, sync.RWMutex never makes new
// readers wait behind the long copy.
//
// Memory: IPv4 listings are in a sorted table (table4: 20 bytes a
// listing), IPv6 ones in a map keyed by [16]byte (netip.Addr is 24 bytes),
// entries are packed, and Origins lists are interned. Interned sets are reference counted and freed with their last
// listing, so hostile peers inventing a new origin set per report cost at
// most one set per listing (as an unshared slice did before), never more.
type Index struct {
	wmu sync.Mutex
	mu  sync.RWMutex
	t4  *table4
	m6  map[[16]byte]packed
	// sets is indexed by packed.origins; sets[0] is the empty list and is
	// never freed. setIDs (key: setKey) and freeSets are only used by
	// writers, under wmu.
	sets     []originSet
	setIDs   map[string]uint32
	freeSets []uint32
	keyBuf   []byte // setKey scratch, under wmu
	// The empty-non-terminal counters let the server tell an empty
	// non-terminal (NODATA) from a name with nothing below (NXDOMAIN),
	// RFC 8020. See ent4; ent6a counts listings below IPv6 nibble prefixes
	// of 1..15 nibbles, ent6b of 16..31 (keys from ent6Key).
	ent4   ent4
	ent6a  map[uint64]uint32
	ent6b  map[[2]uint64]uint32
	serial uint32
	// journal is a ring buffer, journal[jstart] is the oldest.
	journal []change
	jstart  int
	jmax    int
}

// ent4 records which IPv4 /8, /16 and /24 have a listing below them. /8 and
// /16 are counted; a /24 only has a bit (a map of /24 counters cost as much
// as the listings themselves), which Remove clears after checking the 255
// neighbours. The per-/8 part is allocated on first use: 9 KiB each, 2.3 MiB
// when listings cover the whole address space.
type ent4 struct {
	n8  [256]uint32
	sub [256]*ent4sub
}

type ent4sub struct {
	n16   [256]uint32
	has24 [65536 / 64]uint64
}

// NewIndex returns an empty index whose serial is the current Unix time, so
// a restarted server never goes backwards in RFC 1982 serial order and
// secondaries keep pulling from it.
func NewIndex() *Index {
	return &Index{
		t4:     new(table4),
		m6:     make(map[[16]byte]packed),
		sets:   []originSet{{}},
		setIDs: make(map[string]uint32),
		ent6a:  make(map[uint64]uint32),
		ent6b:  make(map[[2]uint64]uint32),
		serial: uint32(time.Now().Unix()),
		jmax:   defaultJournalSize,
	}
}

func addr4(ip netip.Addr) uint32 {
	b := ip.As4()
	return binary.BigEndian.Uint32(b[:])
}

// get returns the packed entry for ip. Caller holds mu or wmu.
func (x *Index) get(ip netip.Addr) (packed, bool) {
	var p packed
	var ok bool
	switch {
	case ip.Is4():
		p, ok = x.t4.get(addr4(ip))
	case ip.Is6():
		p, ok = x.m6[ip.As16()]
	}
	return p, ok
}

// put stores p for ip (valid, zone-free). Caller holds wmu and mu.Lock,
// and calls tidy4 after releasing mu.
func (x *Index) put(ip netip.Addr, p packed) {
	if ip.Is4() {
		if u := addr4(ip); !x.t4.put(u, p) {
			x.t4.putNew(u, p)
		}
	} else {
		x.m6[ip.As16()] = p
	}
}

// tidy4 does what the IPv4 table needs after a change: a new directory
// (quick, under mu.Lock), or a new table, built while lookups go on in the
// old one and swapped in under mu.Lock. Caller holds wmu, not mu.
func (x *Index) tidy4() {
	switch x.t4.work() {
	case workDir:
		x.mu.Lock()
		x.t4.buildDir()
		x.mu.Unlock()
	case workMerge:
		nt := x.t4.rebuilt()
		x.mu.Lock()
		x.t4 = nt
		x.mu.Unlock()
	}
}

// setKey encodes corr and origins unambiguously (length-prefixed) into
// x.keyBuf.
func (x *Index) setKey(corr uint8, origins []string) []byte {
	b := append(x.keyBuf[:0], corr)
	for _, o := range origins {
		b = binary.AppendUvarint(b, uint64(len(o)))
		b = append(b, o...)
	}
	x.keyBuf = b
	return b
}

// intern returns the ID of the set equal to (corr, origins), creating it
// (with its own copy of the strings) if needed, and takes a reference.
// Caller holds wmu and mu.Lock.
func (x *Index) intern(corr uint8, origins []string) uint32 {
	if len(origins) == 0 && corr == 0 {
		return 0
	}
	k := x.setKey(corr, origins)
	if id, ok := x.setIDs[string(k)]; ok { // no allocation for the lookup
		x.sets[id].refs++
		return id
	}
	s := originSet{origins: slices.Clone(origins), corr: corr, refs: 1}
	var id uint32
	if n := len(x.freeSets); n > 0 {
		id = x.freeSets[n-1]
		x.freeSets = x.freeSets[:n-1]
		x.sets[id] = s
	} else {
		id = uint32(len(x.sets))
		x.sets = append(x.sets, s)
	}
	x.setIDs[string(k)] = id
	return id
}

// release drops a reference to set id and frees the set with its last one.
// Caller holds wmu and mu.Lock.
func (x *Index) release(id uint32) {
	if id == 0 {
		return
	}
	s := &x.sets[id]
	if s.refs--; s.refs > 0 {
		return
	}
	delete(x.setIDs, string(x.setKey(s.corr, s.origins)))
	*s = originSet{}
	x.freeSets = append(x.freeSets, id)
}

// Set adds or updates the listing for ip and bumps the serial.
func (x *Index) Set(ip netip.Addr, e Entry) {
	ip = ip.WithZone("")
	if !ip.IsValid() {
		return
	}
	p := packed{expires: packTime(e.Expires), first: packTime(e.FirstSeen), hits: uint32(min(max(int64(e.Hits), 0), math.MaxUint32))}
	x.wmu.Lock()
	defer x.wmu.Unlock()
	// Reading the maps without mu is safe here: wmu excludes every other
	// writer.
	old, had := x.get(ip)
	x.mu.Lock()
	// Intern before releasing the old set so an unchanged set is kept.
	p.origins = x.intern(uint8(min(max(e.Corroboration, 0), math.MaxUint8)), e.Origins)
	c := change{ip: ip, new: jentry{ok: true, e: p, set: x.sets[p.origins]}}
	if had {
		c.old = jentry{ok: true, e: old, set: x.sets[old.origins]}
		x.release(old.origins)
	}
	x.put(ip, p)
	if !had {
		x.countENT(ip, 1, false)
	}
	x.bump(c)
	x.mu.Unlock()
	x.tidy4()
}

// Remove deletes the listing for ip; the serial changes only if it was there.
func (x *Index) Remove(ip netip.Addr) {
	ip = ip.WithZone("")
	x.wmu.Lock()
	defer x.wmu.Unlock()
	old, ok := x.get(ip)
	if !ok {
		return
	}
	// Whether ip is the last listing of its /24, worked out before mu.Lock
	// so lookups do not wait for the 255 probes.
	last24 := false
	if ip.Is4() {
		u := addr4(ip)
		last24 = true
		for i := range uint32(256) {
			if v := u&^0xff | i; v != u {
				if _, ok := x.t4.get(v); ok {
					last24 = false
					break
				}
			}
		}
	}
	x.mu.Lock()
	if ip.Is4() {
		x.t4.remove(addr4(ip))
	} else {
		delete(x.m6, ip.As16())
	}
	x.countENT(ip, -1, last24)
	x.bump(change{ip: ip, old: jentry{ok: true, e: old, set: x.sets[old.origins]}})
	x.release(old.origins)
	x.mu.Unlock()
	x.tidy4()
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

// countENT adjusts the empty-non-terminal counters for ip by d (+1 or -1).
// last24 (removals of IPv4 only) says no other listing is left in ip's /24.
// Caller holds wmu and mu.Lock.
func (x *Index) countENT(ip netip.Addr, d int, last24 bool) {
	if ip.Is4() {
		u := addr4(ip)
		a, b := u>>24, u>>16&0xff
		bit24 := u >> 8 & 0xffff // the /24 within the /8
		x.ent4.n8[a] = uint32(int(x.ent4.n8[a]) + d)
		sub := x.ent4.sub[a]
		if sub == nil {
			sub = new(ent4sub)
			x.ent4.sub[a] = sub
		}
		sub.n16[b] = uint32(int(sub.n16[b]) + d)
		switch {
		case x.ent4.n8[a] == 0:
			x.ent4.sub[a] = nil
		case d > 0:
			sub.has24[bit24/64] |= 1 << (bit24 % 64)
		case last24:
			sub.has24[bit24/64] &^= 1 << (bit24 % 64)
		}
		return
	}
	a := ip.As16()
	for n := 1; n <= 31; n++ {
		if n < 16 {
			k := ent6Key(a, n)[0]
			x.ent6a[k] = uint32(int(x.ent6a[k]) + d)
			if x.ent6a[k] == 0 {
				delete(x.ent6a, k)
			}
		} else {
			k := ent6Key(a, n)
			x.ent6b[k] = uint32(int(x.ent6b[k]) + d)
			if x.ent6b[k] == 0 {
				delete(x.ent6b, k)
			}
		}
	}
}

// ent6Key is the counter key of the first n (1..31) nibbles of a: the
// nibbles, zero-padded, with n folded into the low 4 bits, which a prefix
// of up to 15 nibbles of each half never uses. For n < 16 only [0] is
// the key (of ent6a); otherwise [0] holds the first 16 nibbles and [1] the
// rest with n-16.
func ent6Key(a [16]byte, n int) [2]uint64 {
	hi, lo := binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])
	if n < 16 {
		return [2]uint64{hi&^(math.MaxUint64>>(4*n)) | uint64(n), 0}
	}
	return [2]uint64{hi, lo&^(math.MaxUint64>>(4*(n-16))) | uint64(n-16)}
}

// Len returns the number of listings (the RFC 5782 test points excluded).
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.t4.len() + len(x.m6)
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
	p, ok := x.get(ip)
	if !ok {
		return Entry{}, false
	}
	return p.unpack(x.sets[p.origins]), true
}

// hasBelow4 reports whether a listing exists under the first n (1..3) octets
// of the big-endian prefix u (u holds exactly n octets).
func (x *Index) hasBelow4(u uint32, n int) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	switch n {
	case 1:
		return x.ent4.n8[u&0xff] > 0
	case 2:
		sub := x.ent4.sub[u>>8&0xff]
		return sub != nil && sub.n16[u&0xff] > 0
	case 3:
		sub := x.ent4.sub[u>>16&0xff]
		bit24 := u & 0xffff
		return sub != nil && sub.has24[bit24/64]&(1<<(bit24%64)) != 0
	}
	return false
}

// hasBelow6 reports whether a listing lies strictly inside prefix p (whole
// nibbles, 1..31 of them, as query names give).
func (x *Index) hasBelow6(p netip.Prefix) bool {
	bits := p.Bits()
	if !p.Addr().Is6() || bits%4 != 0 || bits < 4 || bits > 124 {
		return false
	}
	n := bits / 4
	k := ent6Key(p.Addr().As16(), n)
	x.mu.RLock()
	defer x.mu.RUnlock()
	if n < 16 {
		return x.ent6a[k[0]] > 0
	}
	return x.ent6b[k] > 0
}

// snapshot returns a consistent copy of all listings, the origin sets
// their e.origins index (a copy, as set IDs are reused later) and the
// serial.
func (x *Index) snapshot() (uint32, []listing, []originSet) {
	x.wmu.Lock()
	defer x.wmu.Unlock()
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]listing, 0, x.t4.len()+len(x.m6))
	x.t4.each(func(u uint32, p packed) {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], u)
		out = append(out, listing{netip.AddrFrom4(b), p})
	})
	for a, p := range x.m6 {
		out = append(out, listing{netip.AddrFrom16(a), p})
	}
	sets := slices.Clone(x.sets)
	return x.serial, out, sets
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
