package bench_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dst-traps/dst/internal/admin"
	"github.com/dst-traps/dst/internal/dsttest"
	"github.com/dst-traps/dst/internal/store"
)

const million = 1_000_000

// cacheVersion names what the cached database holds. Change it whenever
// buildMillion changes what it writes, and with each store layout: the
// store would upgrade an older file on open (compacting it), and the
// benchmark is about a store built by ingest.
const cacheVersion = "dst-bench-1m v5 (store layout 4): AddReport, 1e6 distinct IPv4 arriving 1µs apart, 24h/14d, threshold 1, 96-byte article"

// cacheMaxAge keeps the cached listings well inside their 24-hour lifetime:
// an older file would have dstd expire listings at start and measure less.
const cacheMaxAge = 12 * time.Hour

// memArticle stands for a stored report. Real reports are a few KiB, but
// this benchmark is about the listings; the articles only make the file
// (not dstd's memory) bigger.
var memArticle = []byte("Newsgroups: dst.reports\r\nMessage-ID: <x@bench.example>\r\nSubject: trap hit\r\n\r\nbench report\r\n")

// millionAddr is the i-th of a million distinct IPv4 addresses, spread
// over the whole space (a multiplication by an odd constant is a bijection
// modulo 2^32), so that inserts land all over the B+tree as real spammers'
// addresses do, rather than appending in order.
func millionAddr(i int) netip.Addr {
	v := uint32(i+1) * 2654435761
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// cachedMillion returns the path of a store with a million listings, built
// once and kept in os.TempDir() between runs with a sidecar file that
// records cacheVersion and when it was built.
func cachedMillion(b *testing.B) string {
	path := filepath.Join(os.TempDir(), "dst-bench-1m.db")
	stamp := path + ".version"
	if v, err := os.ReadFile(stamp); err == nil {
		ver, built, _ := strings.Cut(string(v), "\n")
		t, err := time.Parse(time.RFC3339, strings.TrimSpace(built))
		if ver == cacheVersion && err == nil && time.Since(t) < cacheMaxAge {
			if db, err := store.Open(path, store.Options{}); err == nil {
				st, err := db.Stats()
				db.Close()
				if err == nil && st.Listings == million {
					b.Logf("using the cached database %s (built %s)", path, t.Format(time.RFC3339))
					return path
				}
			}
		}
	}
	os.Remove(stamp) // a half-built file must never look valid
	tmp := path + ".building"
	os.Remove(tmp)
	start := time.Now()
	buildMillion(b, tmp)
	b.Logf("built %d listings in %v", million, time.Since(start).Round(time.Second))
	if err := os.Rename(tmp, path); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(stamp, []byte(cacheVersion+"\n"+start.UTC().Format(time.RFC3339)+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

// buildMillion fills a new store through the public AddReport, as dstd's
// ingest does, minus the fsyncs (NoSync): a bulk load that a crash may
// lose is fine here. Many goroutines keep bbolt's Batch full (up to 1000
// reports per commit), which is what makes the load take seconds to
// minutes rather than the hour one commit per report would.
func buildMillion(b *testing.B, path string) {
	db, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	base := store.IngestParams{ExpireBase: 24 * time.Hour, ExpireMax: 14 * 24 * time.Hour, Threshold: 1}
	var next atomic.Int64
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= million {
					return
				}
				// Reports arrive over time, not all in one nanosecond:
				// the store's time-keyed buckets (arrivals, expiry,
				// listing log) are then appended to, as at a real site.
				p := base
				p.Now = now.Add(time.Duration(i) * time.Microsecond)
				r := store.Report{
					MessageID: fmt.Sprintf("<%08x%08x.%d@site-%d.example>", uint32(i)*2246822519, uint32(i)*3266489917, i, i%5),
					IP:        millionAddr(i),
					Origin:    fmt.Sprintf("site-%d.example", i%5),
					Date:      p.Now,
					Article:   memArticle,
				}
				out, _, err := db.AddReport(r, p)
				if err == nil && out != store.Listed {
					err = fmt.Errorf("report %d: outcome %v, want listed", i, out)
				}
				if err != nil {
					failed.Store(true)
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	st, err := db.Stats()
	if err != nil || st.Listings != million {
		b.Fatalf("after the bulk load: %+v, %v; want %d listings", st, err, million)
	}
}

// logSpace logs where the bytes of the store file go, per bucket and per
// listing (test/bench/README.md has the tables of layouts 1 to 4).
func logSpace(b *testing.B, path string) {
	db, err := store.Open(path, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	sp, size, err := db.Space()
	if err != nil {
		b.Fatal(err)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "store file %d bytes, %.1f per listing; per listing:\n", size, float64(size)/million)
	fmt.Fprintf(&sb, "%-16s %9s %8s %8s %8s %8s\n", "bucket", "keys", "key", "value", "in use", "pages")
	var tk, tv, tu, ta int64
	for _, s := range sp {
		fmt.Fprintf(&sb, "%-16s %9d %8.1f %8.1f %8.1f %8.1f\n", s.Name, s.Keys, float64(s.KeyBytes)/million,
			float64(s.ValueBytes)/million, float64(s.InUse)/million, float64(s.Alloc)/million)
		tk, tv, tu, ta = tk+s.KeyBytes, tv+s.ValueBytes, tu+s.InUse, ta+s.Alloc
	}
	fmt.Fprintf(&sb, "%-16s %9s %8.1f %8.1f %8.1f %8.1f", "all", "", float64(tk)/million, float64(tv)/million, float64(tu)/million, float64(ta)/million)
	b.Log(sb.String())
}

// procMem reads a process's memory figures (kB in /proc, returned in
// bytes): VmHWM (peak RSS), VmRSS, RssAnon (its heap and stacks) and
// RssFile (its binary and the pages of the mmapped database it touched,
// which the kernel can reclaim under pressure).
func procMem(b *testing.B, pid int) map[string]int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	m := make(map[string]int64)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || !strings.HasPrefix(k, "Vm") && !strings.HasPrefix(k, "Rss") {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64); err == nil {
			m[k] = n << 10
		}
	}
	return m
}

// copyCold copies src to dst and drops dst's pages from the page cache, so
// that dstd starts as after a reboot. It matters for the figures: bbolt
// maps the file, and when the file is cached the kernel maps neighbouring
// cached pages on each fault (fault-around), so RSS would count most of
// the file whatever dstd actually reads. Cold, with bbolt's MADV_RANDOM,
// the file part of RSS is the pages dstd touched.
func copyCold(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	if _, err := io.Copy(out, in); err != nil {
		return err
	}
	// Dirty pages cannot be dropped: write them out first.
	if err := out.Sync(); err != nil {
		return err
	}
	if err := unix.Fadvise(int(out.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("dropping %s from the page cache: %w", dst, err)
	}
	return out.Close()
}

// BenchmarkMemory1MListings measures dstd's memory with a million
// listings: dstd starts on a copy of the cached store, `dstctl list` walks
// every listing through the admin endpoint, `dstctl status` reads the
// counters, and then dstd's peak and current RSS are read from /proc. One
// op is that whole cycle; use -benchtime 1x.
func BenchmarkMemory1MListings(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("reads /proc/<pid>/status")
	}
	src := cachedMillion(b)
	logSpace(b, src)
	ctl := dsttest.Bin(b, "dstctl")
	fi, err := os.Stat(src)
	if err != nil {
		b.Fatal(err)
	}
	var startMem, mem map[string]int64
	var listTime time.Duration
	for b.Loop() {
		b.StopTimer() // the copy is setup, not dstd's work
		d := dsttest.NewDstd(b, "site-a.test", lab)
		if err := os.MkdirAll(d.Dir, 0o750); err != nil {
			b.Fatal(err)
		}
		if err := copyCold(filepath.Join(d.Dir, "dst.db"), src); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		d.Start()
		startMem = procMem(b, d.Pid())

		t0 := time.Now()
		list := exec.Command(ctl, "-admin", d.Admin, "list") // stdout to /dev/null
		var stderr strings.Builder
		list.Stderr = &stderr
		if err := list.Run(); err != nil {
			b.Fatalf("dstctl list: %v: %s", err, stderr.String())
		}
		listTime = time.Since(t0)
		if out, code := d.Ctl("status"); code != 0 {
			b.Fatalf("dstctl status: exit %d: %s", code, out)
		}
		// The counters must say a million, or the figures describe a
		// smaller site (listings expired at start, a damaged cache).
		ac := admin.NewClient(d.Admin)
		st, err := ac.Status(context.Background())
		ac.Close()
		if err != nil || st.Listings != million {
			b.Fatalf("status: %+v, %v; want %d listings", st, err, million)
		}
		mem = procMem(b, d.Pid())
		d.Stop()
	}
	b.ReportMetric(float64(startMem["VmRSS"])/(1<<20), "start-RSS-MiB")
	b.ReportMetric(float64(mem["VmHWM"])/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(float64(mem["VmRSS"])/(1<<20), "RSS-MiB")
	b.ReportMetric(float64(mem["RssAnon"])/(1<<20), "anon-RSS-MiB")
	b.ReportMetric(float64(mem["RssFile"])/(1<<20), "file-RSS-MiB")
	b.ReportMetric(float64(mem["VmHWM"])/million, "peak-bytes/listing")
	b.ReportMetric(float64(fi.Size())/(1<<20), "db-file-MiB")
	b.ReportMetric(float64(fi.Size())/million, "db-bytes/listing")
	b.ReportMetric(float64(mem["RssAnon"])/million, "anon-bytes/listing")
	b.ReportMetric(listTime.Seconds(), "list-s")
}
