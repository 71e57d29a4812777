package dnsbl

import (
	"net/netip"
	"runtime"
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dst-traps/dst/internal/metrics"
)

const benchN = 1_000_000

// benchIndex fills an index with benchN IPv4 listings in 10.0.0.0/8 and
// returns the heap it took in MiB, per million listings.
func benchIndex(b *testing.B) (*Index, float64) {
	b.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	x := NewIndex()
	for i := range benchN {
		x.Set(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), entry)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	return x, float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20) * (1e6 / benchN)
}

// nullWriter drops replies so the benchmark measures ServeDNS itself.
type nullWriter struct{ *recorder }

func (nullWriter) WriteMsg(*dns.Msg) error { return nil }

// BenchmarkServeDNS measures one query, answered from benchN listings,
// with and without counting it (dst_dns_queries_total): the counted
// sub-benchmarks must show the same allocs/op.
func BenchmarkServeDNS(b *testing.B) {
	x, mib := benchIndex(b)
	for _, counted := range []bool{false, true} {
		c := Config{Zone: zone}
		suffix := ""
		if counted {
			c.Queries = metrics.New(prometheus.NewRegistry()).DNSQueries
			suffix = "-counted"
		}
		s, err := New(c, x)
		if err != nil {
			b.Fatal(err)
		}
		for _, bc := range []struct{ name, q string }{
			{"hit", "57.48.0.10." + zone},
			{"miss", "57.48.0.11." + zone},
		} {
			b.Run(bc.name+suffix, func(b *testing.B) {
				m := new(dns.Msg)
				m.SetQuestion(bc.q, dns.TypeA)
				w := nullWriter{newRecorder(false)}
				b.ReportAllocs()
				// Reported per sub-benchmark: a parent's metrics are not printed.
				b.ReportMetric(mib, "MiB/Mlistings")
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						s.ServeDNS(w, m)
					}
				})
			})
		}
	}
}

// BenchmarkAXFR measures one full transfer of benchN listings, streamed in
// envelopes to a writer that drops them.
func BenchmarkAXFR(b *testing.B) {
	x, _ := benchIndex(b)
	s, err := New(Config{Zone: zone, AllowTransfer: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, x)
	if err != nil {
		b.Fatal(err)
	}
	m := new(dns.Msg)
	m.SetAxfr(zone)
	w := nullWriter{newRecorder(true)}
	b.ResetTimer()
	for b.Loop() {
		s.ServeDNS(w, m)
	}
}
