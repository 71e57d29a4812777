package rbldnsd

import (
	"context"
	"errors"
	"flag"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/miekg/dns"

	"github.com/dst-traps/dst/internal/dsttest"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var (
	genTime = time.Date(2026, 11, 28, 10, 10, 10, 0, time.UTC)
	expires = time.Date(2026, 12, 5, 10, 10, 10, 0, time.UTC)
)

// sample covers plain entries of both families, IPv4-mapped IPv6 (which
// belongs in the ip4 file), the RFC 5782 test points arriving from the store
// (dropped: the exporter writes the positive ones itself and never the
// negative ones), an invalid address, and TXT texts that rbldnsd would
// misread without escaping.
func sample() []Listing {
	return []Listing{
		{IP: netip.MustParseAddr("203.0.113.7"), Expires: expires, Hits: 3, Origins: []string{"site-a.example", "site-b.example"}},
		{IP: netip.MustParseAddr("2001:db8::7"), Expires: expires, Hits: 1, Origins: []string{"site-a.example"}},
		{IP: netip.MustParseAddr("::ffff:198.51.100.9"), Expires: expires, Hits: 2, Origins: []string{"site-c.example"}},
		{IP: netip.MustParseAddr("127.0.0.1"), Expires: expires},
		{IP: netip.MustParseAddr("127.0.0.2"), Expires: expires},
		{IP: netip.MustParseAddr("::ffff:7f00:1"), Expires: expires},
		{IP: netip.MustParseAddr("::ffff:7f00:2"), Expires: expires},
		{},
		{IP: netip.MustParseAddr("192.0.2.1"), Expires: expires, Origins: []string{"=costs $5, see $1\n# not a comment\t"}},
		{IP: netip.MustParseAddr("2001:db8::1:0"), Expires: expires, Origins: []string{strings.Repeat("x$", 200)}},
	}
}

func sampleTXT(l Listing) string {
	if len(l.Origins) == 1 && strings.ContainsAny(l.Origins[0], "$=") {
		return l.Origins[0]
	}
	return DefaultTXT(l)
}

func each(ls []Listing) func(func(Listing) error) error {
	return func(fn func(Listing) error) error {
		for _, l := range ls {
			if err := fn(l); err != nil {
				return err
			}
		}
		return nil
	}
}

func export(t *testing.T, dir string, ls []Listing) *Exporter {
	t.Helper()
	e := New(filepath.Join(dir, "dst-ip4"), filepath.Join(dir, "dst-ip6"), DefaultA, sampleTXT)
	e.now = func() time.Time { return genTime }
	if err := e.Write(each(ls)); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestGolden(t *testing.T) {
	dir := t.TempDir()
	export(t, dir, sample())
	for _, name := range []string{"dst-ip4", "dst-ip6"} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		golden := filepath.Join("testdata", name+".golden")
		if *update {
			if err := os.WriteFile(golden, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s:\n%s\nwant:\n%s", name, got, want)
		}
	}
	// No temporary file is left behind.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("dir holds %d entries, want 2", len(ents))
	}
}

func TestEscapeTXT(t *testing.T) {
	for in, want := range map[string]string{
		"plain":          "plain",
		"a$b":            "a$$b",
		"=x":             "==x",
		"  =x ":          "==x",
		"a\nb\x00c\x7f":  "a b c",
		"bad\xffutf8":    "bad\uFFFDutf8",
		"":               "",
		"# not comment":  "# not comment",
		"x:y;z \"q\" \\": "x:y;z \"q\" \\",
	} {
		if got := escapeTXT(in); got != want {
			t.Errorf("escapeTXT(%q) = %q, want %q", in, got, want)
		}
	}
	if got := escapeTXT(strings.Repeat("é", 200)); len(got) > maxTXT || !strings.HasSuffix(got, "é") {
		t.Errorf("long text: %d bytes, ends %q", len(got), got[len(got)-2:])
	}
	// The template limit (255) binds before the expanded one (253), and
	// the cut never leaves half a "$$".
	if got, want := escapeTXT(strings.Repeat("x$", 200)), strings.Repeat("x$$", 85); got != want {
		t.Errorf("long text with $: %q, want %q", got, want)
	}
}

func TestWriteErrorKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	export(t, dir, sample())
	before, _ := os.ReadFile(filepath.Join(dir, "dst-ip4"))
	e := New(filepath.Join(dir, "dst-ip4"), filepath.Join(dir, "dst-ip6"), DefaultA, nil)
	boom := errors.New("store failed")
	err := e.Write(func(fn func(Listing) error) error {
		fn(Listing{IP: netip.MustParseAddr("203.0.113.99")})
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Write = %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "dst-ip4"))
	if string(before) != string(after) {
		t.Error("failed Write replaced the file")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("dir holds %d entries after failure, want 2", len(ents))
	}
}

// TestRunCoalesces runs in a synctest bubble: its clock moves only when
// every goroutine waits, so "no third write" is checked after Run has
// seen every timer it set, not after a sleep that may be too short.
func TestRunCoalesces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		e := New(filepath.Join(dir, "4"), "", DefaultA, nil)
		const interval = 200 * time.Millisecond
		e.MinInterval = interval
		var writes atomic.Int32
		var lastWrite atomic.Int64 // UnixNano, bubble time
		changed := make(chan struct{}, 1)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		start := time.Now()
		go func() {
			done <- e.Run(ctx, changed, func(fn func(Listing) error) error {
				writes.Add(1)
				lastWrite.Store(time.Now().UnixNano())
				return nil
			})
		}()
		synctest.Wait()
		if n := writes.Load(); n != 1 {
			t.Fatalf("writes at start = %d, want 1", n)
		}
		// A burst of changes right after a write makes exactly one more
		// write, MinInterval after the first.
		for range 20 {
			select {
			case changed <- struct{}{}:
			default:
			}
			time.Sleep(2 * time.Millisecond)
		}
		time.Sleep(interval - time.Since(start) - time.Nanosecond)
		synctest.Wait()
		if n := writes.Load(); n != 1 {
			t.Errorf("writes before MinInterval = %d, want 1", n)
		}
		time.Sleep(10 * interval)
		synctest.Wait()
		if n := writes.Load(); n != 2 {
			t.Errorf("writes after a burst = %d, want 2", n)
		}
		if at := time.Unix(0, lastWrite.Load()).Sub(start); at != interval {
			t.Errorf("second write %v after the first, want MinInterval (%v)", at, interval)
		}
		// Quiet: no more writes, however long.
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := writes.Load(); n != 2 {
			t.Errorf("writes with no change = %d, want 2", n)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v", err)
		}
	})
}

// TestRunRetriesFailedWrite: a failed rewrite goes to ErrorLog and is
// tried again MinInterval later without a new change, until it works.
func TestRunRetriesFailedWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		e := New(filepath.Join(dir, "4"), "", DefaultA, nil)
		const interval = time.Second
		e.MinInterval = interval
		boom := errors.New("disk full")
		var mu sync.Mutex // ErrorLog runs in Run's goroutine
		var errs []error
		e.ErrorLog = func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() }
		logged := func() []error { mu.Lock(); defer mu.Unlock(); return slices.Clone(errs) }
		var tries atomic.Int32
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		start := time.Now()
		go func() {
			done <- e.Run(ctx, make(chan struct{}), func(fn func(Listing) error) error {
				if tries.Add(1) <= 2 {
					return boom
				}
				return nil
			})
		}()
		synctest.Wait()
		if n, errs := tries.Load(), logged(); n != 1 || len(errs) != 1 || !errors.Is(errs[0], boom) {
			t.Fatalf("at start: %d tries, errors %v; want 1 try and its error logged", n, errs)
		}
		time.Sleep(interval - time.Nanosecond)
		synctest.Wait()
		if n := tries.Load(); n != 1 {
			t.Errorf("%d tries before MinInterval, want 1", n)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if n, errs := tries.Load(), logged(); n != 2 || len(errs) != 2 {
			t.Errorf("after MinInterval: %d tries, %d errors; want the retry and its error", n, len(errs))
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if n, errs := tries.Load(), logged(); n != 3 || len(errs) != 2 {
			t.Errorf("after an hour: %d tries, %d errors; want one more try that worked, then none (since %v)", n, len(errs), time.Since(start))
		}
		if _, err := os.Stat(filepath.Join(dir, "4")); err != nil {
			t.Errorf("no file after the retry worked: %v", err)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v", err)
		}
	})
}

// TestRbldnsd serves the exported files with the real rbldnsd and checks
// the answers resolvers get.
func TestRbldnsd(t *testing.T) {
	bin := dsttest.Require(t, "rbldnsd", "rbldnsd")
	dir := t.TempDir()
	// rbldnsd reads its data as its own user (rbldns) after dropping root.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	export(t, dir, sample())
	addr := Start(t, bin, dir, "bl.test", "dst-ip4", "dst-ip6")

	c := &dns.Client{Timeout: 2 * time.Second}
	ask := func(name string, qt uint16) *dns.Msg {
		t.Helper()
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), qt)
		r, _, err := c.Exchange(m, addr)
		if err != nil {
			t.Fatalf("%s %s: %v", name, dns.TypeToString[qt], err)
		}
		return r
	}
	rev := func(ip string) string {
		n, err := dns.ReverseAddr(ip)
		if err != nil {
			t.Fatal(err)
		}
		n = strings.TrimSuffix(n, "in-addr.arpa.")
		n = strings.TrimSuffix(n, "ip6.arpa.")
		return n + "bl.test"
	}
	for _, tc := range []struct {
		ip, txt string
	}{
		{"203.0.113.7", "Listed by DST: 3 trap hits from 2 sites, until 2026-12-05T10:10:10Z"},
		{"198.51.100.9", "Listed by DST: 2 trap hits from 1 sites, until 2026-12-05T10:10:10Z"},
		{"192.0.2.1", "=costs $5, see $1 # not a comment"},
		{"2001:db8::7", "Listed by DST: 1 trap hits from 1 sites, until 2026-12-05T10:10:10Z"},
		{"2001:db8::1:0", strings.Repeat("x$", 85)},
		{"127.0.0.2", "Listed by DST"},
		{"::ffff:7f00:2", "Listed by DST"},
	} {
		r := ask(rev(tc.ip), dns.TypeA)
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "127.0.0.2" {
			t.Errorf("%s A: %v", tc.ip, r)
		}
		r = ask(rev(tc.ip), dns.TypeTXT)
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
			t.Errorf("%s TXT: %v", tc.ip, r)
			continue
		}
		if got := strings.Join(r.Answer[0].(*dns.TXT).Txt, ""); got != tc.txt {
			t.Errorf("%s TXT = %q, want %q", tc.ip, got, tc.txt)
		}
	}
	for _, ip := range []string{"127.0.0.1", "::ffff:7f00:1", "203.0.113.8", "2001:db8::8", "2001:db8::"} {
		for _, qt := range []uint16{dns.TypeA, dns.TypeTXT} {
			if r := ask(rev(ip), qt); r.Rcode != dns.RcodeNameError || len(r.Answer) != 0 {
				t.Errorf("%s %s: want NXDOMAIN, got %v", ip, dns.TypeToString[qt], r)
			}
		}
	}
}

// Start runs rbldnsd in the foreground on a free loopback port, serving
// zone from the ip4set and ip6trie files in dir, and returns its address
// once it answers. It is exported to the package's tests only.
func Start(t testing.TB, bin, dir, zone, ip4, ip6 string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := []string{"-n", "-b", "127.0.0.1/" + strconv.Itoa(port), "-c", "0", "-t", "60"}
	if os.Geteuid() == 0 {
		// As root rbldnsd switches to its own user; the chroot keeps it
		// inside the test's directory.
		args = append(args, "-r", dir, "-w", "/")
	} else {
		args = append(args, "-w", dir)
	}
	args = append(args, zone+":ip4set:"+ip4, zone+":ip6trie:"+ip6)
	cmd := exec.Command(bin, args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("rbldnsd output:\n%s", out.String())
		}
	})
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion("2.0.0.127."+zone+".", dns.TypeA)
	dsttest.WaitFor(t, 10*time.Second, "rbldnsd to answer on "+addr, func() bool {
		select {
		case <-exited:
			t.Fatalf("rbldnsd exited: %s", out.String())
		default:
		}
		r, _, err := c.Exchange(m, addr)
		return err == nil && r.Rcode == dns.RcodeSuccess
	})
	return addr
}
