package store

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// BenchmarkAddReport measures durable ingest: fsync on, many concurrent
// submitters, as when dstd takes a burst of reports from peers. Each op is
// one report; reports/s is the figure that matters.
func BenchmarkAddReport(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "dst.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	subscribe(b, db, "log", nil)
	subscribe(b, db, "pipe", nil)
	article := make([]byte, 4096) // a report with the trapped message's headers
	for i := range article {
		article[i] = 'a' + byte(i%26)
	}
	var next atomic.Uint64
	b.SetParallelism(32) // goroutines per CPU: submitters mostly wait on fsync
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := next.Add(1)
			r := Report{
				MessageID: fmt.Sprintf("<%d@bench.example>", n),
				// 65536 addresses: a mix of new listings and extensions.
				IP:      netip.AddrFrom4([4]byte{198, 51, byte(n >> 8), byte(n)}),
				Origin:  fmt.Sprintf("site-%d.example", n%7),
				Date:    t0,
				Article: article,
			}
			p := params(t0.Add(time.Duration(n)*time.Millisecond), 1)
			if _, _, err := db.AddReport(r, p); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reports/s")
}

// BenchmarkAddReportAlone measures one report per commit, as each site of
// a network commits a relayed report that arrives on its own: one
// submitter, the next report once the previous one is committed, with
// fsync ("synced", as dstd runs) and without ("unsynced", Options.NoSync).
// cpu-µs/report is this process's user and system time per report, the
// kernel's work for fdatasync included: what durability costs in CPU on
// the machine, beside what it costs in time (ns/op).
func BenchmarkAddReportAlone(b *testing.B) {
	for _, bc := range []struct {
		name   string
		noSync bool
	}{{"synced", false}, {"unsynced", true}} {
		b.Run(bc.name, func(b *testing.B) {
			if !bc.noSync && Unsynced {
				b.Skip("built with dstexp_unsynced: no commit is synced")
			}
			db, err := Open(filepath.Join(b.TempDir(), "dst.db"), Options{NoSync: bc.noSync})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			// A site's queues: the report log and three feeds.
			for _, q := range []string{"log", "feed/a", "feed/b", "feed/c"} {
				subscribe(b, db, q, nil)
			}
			article := make([]byte, 2048)
			for i := range article {
				article[i] = 'a' + byte(i%26)
			}
			cpu0 := processCPU(b)
			b.ResetTimer()
			for i := range b.N {
				r := Report{
					MessageID: fmt.Sprintf("<%d@alone.example>", i),
					IP:        netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}),
					Origin:    "site-1.example",
					Date:      t0,
					Article:   article,
				}
				if _, _, err := db.AddReport(r, params(t0.Add(time.Duration(i)*time.Millisecond), 1)); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/report")
		})
	}
}

// processCPU is the user and system time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLookup1M measures Lookup in a store of a million listings, the
// size a busy site could reach, and reports how big that file is.
func BenchmarkLookup1M(b *testing.B) {
	const n = 1_000_000
	db, err := Open(filepath.Join(b.TempDir(), "dst.db"), Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()

	// Spread addresses over the IPv4 space (a multiplicative hash is a
	// bijection on uint32) and insert them sorted, in big transactions: the
	// setup should take seconds, not the hours AddReport's fsyncs would.
	addrs := make([]netip.Addr, n)
	for i := range addrs {
		v := uint32(i+1) * 2654435761
		addrs[i] = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	rng := rand.New(rand.NewPCG(3, 4))
	const perTx = 100_000
	for start := 0; start < n; start += perTx {
		err := db.bdb.Update(func(tx *bolt.Tx) error {
			bk := bucketsOf(tx)
			for _, ip := range addrs[start:min(start+perTx, n)] {
				first := t0.Add(-time.Duration(rng.IntN(30*24)) * time.Hour)
				l := Listing{
					IP: ip, FirstSeen: first, LastSeen: first.Add(time.Hour),
					Expires:       first.Add(time.Duration(1+rng.IntN(7*24)) * time.Hour),
					Hits:          1 + rng.IntN(5),
					Origins:       []string{"site-a.example", "site-b.example"}[:1+rng.IntN(2)],
					LastMessageID: fmt.Sprintf("<%x.%d@site-a.example>", rng.Uint64(), ip.As4()[3]),
				}
				if err := putListing(bk, l, time.Time{}); err != nil {
					return err
				}
			}
			return addCounter(bk.meta, countListings, int64(min(perTx, n-start)))
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	st, err := db.Stats()
	if err != nil || st.Listings != n {
		b.Fatalf("Stats = %+v, %v; want %d listings", st, err, n)
	}

	for b.Loop() {
		ip := addrs[rng.IntN(n)]
		if rng.IntN(10) == 0 { // one query in ten is for an address not listed
			ip = netip.AddrFrom4([4]byte{10, byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
		}
		if _, _, err := db.Lookup(ip); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(st.FileBytes)/(1<<20), "file-MiB")
	b.ReportMetric(float64(st.FileBytes)/n, "file-bytes/listing")
}
