package dnsbl

import (
	"math/rand/v2"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the user and system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// spreadAddr is the i-th of benchN IPv4 addresses spread over the whole
// space (a multiplication by an odd constant is a bijection modulo 2^32),
// as real listings are, rather than packed in one /8.
func spreadAddr(i int) netip.Addr {
	v := uint32(i+1) * 2654435761
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// BenchmarkIndexGet looks up random listed (hit) and unlisted (miss)
// addresses among benchN listings spread over the IPv4 space, inserted in
// random order, so that every lookup misses the CPU caches as real
// traffic does. It reports the heap the index takes per listing.
func BenchmarkIndexGet(b *testing.B) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	x := NewIndex()
	perm := rand.New(rand.NewPCG(1, 2)).Perm(benchN)
	for _, i := range perm {
		x.Set(spreadAddr(i), entry)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perListing := float64(after.HeapAlloc-before.HeapAlloc) / benchN
	const n = 1 << 16
	hits, misses := make([]netip.Addr, n), make([]netip.Addr, n)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range n {
		hits[i] = spreadAddr(r.IntN(benchN))
		misses[i] = spreadAddr(benchN + r.IntN(benchN))
	}
	for _, bc := range []struct {
		name  string
		addrs []netip.Addr
		want  bool
	}{{"hit", hits, true}, {"miss", misses, false}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := cpuTime()
			i := 0
			for b.Loop() {
				if _, ok := x.Get(bc.addrs[i&(n-1)]); ok != bc.want {
					b.Fatalf("Get(%v) = %v", bc.addrs[i&(n-1)], ok)
				}
				i++
			}
			// CPU time moves less than ns/op when other work shares the
			// machine.
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(i), "cpu-ns/op")
			b.ReportMetric(perListing, "heap-B/listing")
		})
	}
}
