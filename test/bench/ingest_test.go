// Package bench_test measures the built dstd from the outside, as a site
// sees it: how many reports per second it acknowledges over NNTP, and how
// much memory it needs with a million listings. The figures are printed
// (b.ReportMetric), never asserted: they depend on the machine. See
// README.md for the commands and the figures of reference.
package bench_test

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/dsttest"
	"github.com/dst-traps/dst/internal/nntp"
	"github.com/dst-traps/dst/internal/report"
)

// lab lets the documentation ranges be listed, and leaves room above the
// largest client count so that no benchmark connection is turned away with
// 400 while an earlier one is still being torn down.
const lab = "[policy]\nallow_documentation = true\n[nntp]\nmax_connections = 128\nmax_connections_per_ip = 128\n"

// benchSeq numbers reports across all sub-benchmarks, which share one dstd:
// every report has its own source address, so each is a new listing (the
// costlier case: an insert in listings and expiry, not an update).
var benchSeq atomic.Uint64

func benchAddr(n uint64) netip.Addr {
	var b [16]byte
	copy(b[:], []byte{0x20, 0x01, 0x0d, 0xb8})
	for i := range 8 {
		b[15-i] = byte(n >> (8 * i))
	}
	return netip.AddrFrom16(b)
}

// BenchmarkIngestNNTP posts distinct reports to a real dstd with default
// (durable) store options: each POST is an injection (DKIM signing), a
// bbolt commit with fsync shared by concurrent posters (group commit), and
// a 240 only after that. One op is one acknowledged report.
func BenchmarkIngestNNTP(b *testing.B) {
	// Over loopback TCP, as the recorded figures were measured: POST over
	// TCP needs the address in nntp.post_allow (empty by default).
	d := dsttest.NewDstd(b, "site-a.test", strings.Replace(lab, "[nntp]\n", "[nntp]\npost_allow = [\"127.0.0.1\"]\n", 1))
	d.Start()
	for _, clients := range []int{1, 8, 64} {
		b.Run("clients="+strconv.Itoa(clients), func(b *testing.B) {
			benchPost(b, d.NNTP, clients)
		})
	}
}

func benchPost(b *testing.B, addr string, clients int) {
	// Build the articles first: report.New is the trap client's work, and
	// on a small machine it would compete with dstd for the CPU.
	arts := make([][]byte, b.N)
	for i := range arts {
		a, err := report.New(report.Hit{
			SourceIP:  benchAddr(benchSeq.Add(1)),
			Arrival:   time.Now(),
			Host:      "trap.site-a.test",
			UserAgent: "bench/1",
			Message:   []byte("From: <a@spam.example>\r\nTo: <trap@example.net>\r\nSubject: buy\r\n\r\nbuy now\r\n"),
		})
		if err != nil {
			b.Fatal(err)
		}
		arts[i] = a.Bytes()
	}
	conns := make([]*nntp.Client, clients)
	for i := range conns {
		c, err := nntp.Dial(context.Background(), addr, 30*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}

	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(len(arts)) {
					return
				}
				if err := c.Post(context.Background(), arts[i]); err != nil {
					b.Error(fmt.Errorf("POST %d: %w", i, err))
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reports/s")
}
