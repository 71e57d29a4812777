package dnsbl

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
)

// TestTable4Model drives the IPv4 table through enough random sets,
// removals and in-order appends to merge and rebuild its directory many
// times, and compares it with a map after every step: lookups, length,
// and the listings a snapshot walks.
func TestTable4Model(t *testing.T) {
	x := NewIndex()
	model := map[uint32]int{}
	r := rand.New(rand.NewPCG(7, 8))
	addr := func(u uint32) netip.Addr {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], u)
		return netip.AddrFrom4(b)
	}
	next := uint32(1 << 31) // in-order appends start here
	check := func(step int, u uint32) {
		e, ok := x.Get(addr(u))
		want, listed := model[u]
		if ok != listed || (ok && e.Hits != want) {
			t.Fatalf("step %d: Get(%v) = %v, %v; want %v, %v", step, addr(u), e.Hits, ok, want, listed)
		}
	}
	for step := range 300_000 {
		var u uint32
		switch op := r.IntN(10); {
		case op < 4: // a random address in a space small enough to hit again
			u = r.Uint32N(40_000) * 65_537
			model[u] = step
			x.Set(addr(u), Entry{Hits: step})
		case op < 6: // the next address in order, as the store load does
			next += 1 + r.Uint32N(3)
			u = next
			model[u] = step
			x.Set(addr(u), Entry{Hits: step})
		default:
			u = r.Uint32N(40_000) * 65_537
			if r.IntN(2) == 0 && next > 1<<31 {
				u = (1 << 31) + r.Uint32N(next-(1<<31))
			}
			delete(model, u)
			x.Remove(addr(u))
		}
		check(step, u)
		check(step, r.Uint32N(40_000)*65_537)
		if step%50_000 == 0 || step == 299_999 {
			if x.Len() != len(model) {
				t.Fatalf("step %d: Len %d, want %d", step, x.Len(), len(model))
			}
			_, ls, _ := x.snapshot()
			seen := map[uint32]bool{}
			for _, l := range ls {
				u := addr4(l.ip)
				if _, ok := model[u]; !ok || seen[u] {
					t.Fatalf("step %d: snapshot has %v (listed %v, twice %v)", step, l.ip, ok, seen[u])
				}
				seen[u] = true
			}
			if len(seen) != len(model) {
				t.Fatalf("step %d: snapshot has %d listings, want %d", step, len(seen), len(model))
			}
		}
	}
	if x.t4.dir == nil {
		t.Error("the table never built its directory: the test is too small to cover it")
	}
}

// TestTable4ConcurrentLookups looks up while a writer forces merges, for
// the race detector: lookups must only ever see a whole table.
func TestTable4ConcurrentLookups(t *testing.T) {
	x := NewIndex()
	for i := range 20_000 {
		x.Set(spreadAddr(i), Entry{Hits: 1})
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, ok := x.Get(spreadAddr(i % 20_000)); !ok {
					t.Errorf("listed %v not found during writes", spreadAddr(i%20_000))
					return
				}
			}
		}()
	}
	for i := 20_000; i < 60_000; i++ {
		x.Set(spreadAddr(i), Entry{Hits: 2})
		if i%3 == 0 {
			x.Remove(spreadAddr(i))
		}
	}
	close(stop)
	wg.Wait()
}
