package dnsbl

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// BenchmarkUDPAnswer measures answering one UDP query, from the packet
// read to the packet to send, over benchN listings, for names drawn at
// random (half listed, half not, as test/dnsbench's query file):
// BenchmarkServeDNS repeats one name, whose map slots then stay in the
// CPU cache, and so hides the cache misses that cost most of a lookup
// in a real index. "fast" is the fast path, which must show 0 allocs/op;
// "slow" the slow path (Unpack, ServeDNS, Pack), which every query took
// before; both per query on one CPU.
func BenchmarkUDPAnswer(b *testing.B) {
	x, _ := benchIndex(b)
	s, err := New(Config{Zone: zone}, x)
	if err != nil {
		b.Fatal(err)
	}
	const nq = 1 << 16
	rng := rand.New(rand.NewPCG(1, 2))
	pkts := make([][]byte, nq)
	for i := range pkts {
		// benchIndex lists 10.0.0.0 + [0, benchN); the misses are next.
		n := rng.IntN(2 * benchN)
		ip := netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})
		m := new(dns.Msg)
		m.SetQuestion(s.reverseName(ip), []uint16{dns.TypeA, dns.TypeTXT}[rng.IntN(2)])
		m.SetEdns0(1232, false)
		if pkts[i], err = m.Pack(); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("fast", func(b *testing.B) {
		var sc fastScratch
		out := make([]byte, fastOutSize)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, ok := s.answerFast(pkts[i%nq], out, &sc); !ok {
				b.Fatal("declined")
			}
			i++
		}
	})
	b.Run("slow", func(b *testing.B) {
		accept := s.acceptFunc(&net.UDPConn{})
		local, remote := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			w := &slowWriter{local: local, remote: remote}
			s.serveSlow(pkts[i%nq], accept, w)
			if len(w.out) != 1 {
				b.Fatal("no answer")
			}
			i++
		}
	})
}
