package dnsbl

import (
	"math"
	"slices"
)

// table4 holds the IPv4 listings: sorted addresses with their packed
// entries in a parallel array, 20 bytes a listing with no per-entry
// overhead, where a Go map of the same pairs takes 35 to 45 bytes (its
// groups are at most 7/8 full, half that after a table grows). dir finds
// the part of the array with a given first 16 bits, so a lookup reads the
// directory, one or two cache lines of keys and one of values, as a map
// lookup reads a group.
//
// Inserting into the sorted array would move half of it, so addresses that
// come in order are appended (loading the store, which walks the
// listings in address order) and the others wait in add, a map, until it
// holds an eighth of the array: then merge builds a new array. A removed
// address is marked dead in place (its origins set to deadSet) and reused
// if it is listed again; merge drops the dead once they are a quarter.
// The invariant: an address is in keys or in add, never both.
//
// The table is not safe for concurrent use: Index's locks guard it. merge
// builds a new table, which the Index swaps in under its write lock, so
// lookups never wait for a merge.
type table4 struct {
	keys []uint32 // sorted, no repeats
	vals []packed // vals[i] is the entry of keys[i]
	// dir[h] is the index of the first of keys[:dirN] whose high 16 bits
	// are at least h (1<<16+1 entries; nil while keys is small). Keys
	// appended since the directory was built, keys[dirN:], are searched
	// apart.
	dir  []uint32
	dirN int
	dead int               // entries of keys marked dead
	add  map[uint32]packed // listed addresses not in keys
}

// deadSet marks a removed entry in table4.vals; it is never a set ID
// (Index.sets would need 2^32 slots).
const deadSet = math.MaxUint32

// dirMin is the size below which a table has no directory: a binary
// search of a few thousand keys stays in the cache.
const dirMin = 4096

// searchRange returns the index of u in keys[lo:hi] (sorted), or -1.
func searchRange(keys []uint32, lo, hi int, u uint32) int {
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if keys[m] < u {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(keys) && keys[lo] == u {
		return lo
	}
	return -1
}

// find returns the index of u in keys, dead or alive, or -1.
func (t *table4) find(u uint32) int {
	if t.dir != nil {
		h := u >> 16
		if i := searchRange(t.keys, int(t.dir[h]), int(t.dir[h+1]), u); i >= 0 {
			return i
		}
	} else if i := searchRange(t.keys, 0, t.dirN, u); i >= 0 {
		return i
	}
	if t.dirN < len(t.keys) {
		return searchRange(t.keys, t.dirN, len(t.keys), u)
	}
	return -1
}

// get returns the entry of u.
func (t *table4) get(u uint32) (packed, bool) {
	if i := t.find(u); i >= 0 {
		p := t.vals[i]
		return p, p.origins != deadSet
	}
	if len(t.add) == 0 {
		return packed{}, false
	}
	p, ok := t.add[u]
	return p, ok
}

// len is the number of listings.
func (t *table4) len() int { return len(t.keys) - t.dead + len(t.add) }

// put stores p for u in place. It returns false when u is new and must
// go through add, which the caller does under the write lock with
// putNew.
func (t *table4) put(u uint32, p packed) bool {
	i := t.find(u)
	if i < 0 {
		if _, ok := t.add[u]; !ok {
			return false
		}
		t.add[u] = p
		return true
	}
	if t.vals[i].origins == deadSet {
		t.dead--
	}
	t.vals[i] = p
	return true
}

// putNew stores a new address: appended when it sorts after every key,
// else in add. The caller then asks work what the table needs.
func (t *table4) putNew(u uint32, p packed) {
	if n := len(t.keys); n == 0 || u > t.keys[n-1] {
		t.keys = append(t.keys, u)
		t.vals = append(t.vals, p)
		return
	}
	if t.add == nil {
		t.add = make(map[uint32]packed)
	}
	t.add[u] = p
}

// remove deletes u and reports whether it was there.
func (t *table4) remove(u uint32) bool {
	if i := t.find(u); i >= 0 {
		if t.vals[i].origins == deadSet {
			return false
		}
		t.vals[i].origins = deadSet
		t.dead++
		return true
	}
	if _, ok := t.add[u]; ok {
		delete(t.add, u)
		return true
	}
	return false
}

// tableWork is what a table needs after a change.
type tableWork uint8

const (
	workNone  tableWork = iota
	workDir             // many keys were appended: a new directory (buildDir)
	workMerge           // add or the dead have grown: a new table (rebuilt)
)

// work tells whether add or the dead have grown enough to rebuild the
// table, or the keys appended since the directory was built enough to
// rebuild the directory. The thresholds, an eighth and a quarter of the
// table, make the copies cost a few entries' worth per insert.
func (t *table4) work() tableWork {
	n := len(t.keys)
	switch {
	case len(t.add) > max(1024, n/8) || t.dead > max(1024, n/4):
		return workMerge
	case n-t.dirN > max(dirMin, t.dirN/8):
		return workDir
	}
	return workNone
}

// rebuilt returns a new table with add merged in, without the dead, with
// a directory over all its keys. t is only read, so lookups may go on in
// it meanwhile.
func (t *table4) rebuilt() *table4 {
	extra := make([]uint32, 0, len(t.add))
	for u := range t.add {
		extra = append(extra, u)
	}
	slices.Sort(extra)
	n := t.len()
	nt := &table4{keys: make([]uint32, 0, n), vals: make([]packed, 0, n)}
	i, j := 0, 0
	for i < len(t.keys) || j < len(extra) {
		if j == len(extra) || (i < len(t.keys) && t.keys[i] < extra[j]) {
			if t.vals[i].origins != deadSet {
				nt.keys = append(nt.keys, t.keys[i])
				nt.vals = append(nt.vals, t.vals[i])
			}
			i++
			continue
		}
		nt.keys = append(nt.keys, extra[j])
		nt.vals = append(nt.vals, t.add[extra[j]])
		j++
	}
	nt.buildDir()
	return nt
}

// buildDir makes the directory over all the keys.
func (t *table4) buildDir() {
	t.dirN = len(t.keys)
	if t.dirN < dirMin {
		t.dir = nil
		return
	}
	if t.dir == nil {
		t.dir = make([]uint32, 1<<16+1)
	}
	i := 0
	for h := range 1 << 16 {
		for i < len(t.keys) && t.keys[i]>>16 < uint32(h) {
			i++
		}
		t.dir[h] = uint32(i)
	}
	t.dir[1<<16] = uint32(len(t.keys))
}

// each calls fn for every listing, in no set order.
func (t *table4) each(fn func(u uint32, p packed)) {
	for i, u := range t.keys {
		if t.vals[i].origins != deadSet {
			fn(u, t.vals[i])
		}
	}
	for u, p := range t.add {
		fn(u, p)
	}
}
