// Package heapfloor keeps a small Go heap from being collected every few
// megabytes.
//
// The collector's default (GOGC=100) starts a cycle when the heap has
// grown by as much as survived the last one, with a 4 MiB minimum. A
// daemon whose live heap is a few megabytes but which allocates steadily
// (each store transaction, article and NNTP exchange allocates) then
// collects many times a second, and every cycle wakes each P's thread:
// in the 20-site benchmark mesh (test/bench) garbage collection was about
// a sixth of all the CPU the sites spent per report. Letting the heap
// reach a floor first makes those cycles rare for a small daemon and
// changes nothing for a large one, whose own growth already passes the
// floor.
package heapfloor

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// Default is the floor dstd keeps: the heap of a small site may reach it
// before a collection, which a machine running a mail server can spare.
// In the benchmark mesh 16 and 32 MiB did equally well (about 30% less
// CPU per report than none), 64 MiB worse (fresh pages to fault in).
const Default = 16 << 20

// minHeap is the runtime's least heap goal at GOGC=100 (heapMinimum).
const minHeap = 4 << 20

// A Keeper adjusts GOGC after every collection so that the next one starts
// when the heap reaches the larger of the floor and what GOGC would give.
type Keeper struct {
	floor   uint64
	base    int // the GOGC percent before Keep, restored by Stop
	mu      sync.Mutex
	stopped bool
	percent int
	sample  [1]metrics.Sample
}

// Keep starts keeping floor bytes as the least heap goal and returns the
// Keeper. It returns nil, and changes nothing, when the GOGC environment
// variable is set (an operator who tuned the collector keeps their
// setting), when collection is off, or when floor is 0. It changes the
// process's collector settings, so only a main calls it, once.
func Keep(floor uint64) *Keeper {
	if os.Getenv("GOGC") != "" || floor == 0 {
		return nil
	}
	k := &Keeper{floor: floor}
	k.sample[0].Name = "/gc/heap/live:bytes"
	// Until a first collection says how much is live, assume the
	// runtime's minimum heap is.
	k.base = debug.SetGCPercent(percentFor(floor, minHeap, 100))
	k.percent = -2 // unknown: the first adjustment always sets it
	if k.base < 0 {
		// Collection is off: there is nothing to keep.
		debug.SetGCPercent(k.base)
		return nil
	}
	k.arm()
	return k
}

// percentFor returns the GOGC percent that puts the next collection at
// the larger of floor and what base gives for live bytes.
func percentFor(floor, live uint64, base int) int {
	if live == 0 {
		live = 1
	}
	if live+live*uint64(base)/100 >= floor {
		return base
	}
	p := (floor - live) * 100 / live
	if p > math.MaxInt32 {
		p = math.MaxInt32
	}
	return int(p)
}

// arm leaves an unreachable object whose cleanup runs after the next
// collection; the cleanup adjusts GOGC and arms again.
func (k *Keeper) arm() {
	s := new(sentinel)
	runtime.AddCleanup(s, (*Keeper).collected, k)
}

// sentinel is large enough not to share a block with other small objects
// (the tiny allocator), which would keep it alive for as long as they are.
type sentinel struct{ _ [64]byte }

func (k *Keeper) collected() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped {
		return
	}
	metrics.Read(k.sample[:])
	if k.sample[0].Value.Kind() == metrics.KindUint64 {
		if p := percentFor(k.floor, k.sample[0].Value.Uint64(), k.base); p != k.percent {
			debug.SetGCPercent(p)
			k.percent = p
		}
	}
	k.arm()
}

// Stop puts back the GOGC percent from before Keep.
func (k *Keeper) Stop() {
	if k == nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.stopped {
		k.stopped = true
		debug.SetGCPercent(k.base)
	}
}
