// Command dnsbench compares the query rate of dstd's embedded DNS blocklist
// server (internal/dnsbl) with rbldnsd serving the same listings, as
// exported by internal/rbldnsd:
//
//	go run ./test/dnsbench -n 100000 -d 10s
//
// It generates n distinct listed IPv4 addresses (deterministic PRNG, no
// special-purpose ranges), a dnsperf query file of half hits and half misses,
// starts rbldnsd and an in-process dnsbl server on two loopback ports, checks
// that both give the same answers, runs dnsperf against each in turn for the
// same duration, and prints both rates, their ratio, and the memory each
// needs for the listings. Needs root (rbldnsd drops to its own user) and the
// Debian packages rbldnsd and dnsperf. See README.md for figures.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/dst-traps/dst/internal/rbldnsd"
)

type options struct {
	n        int
	duration time.Duration
	clients  int
	threads  int
	outstand int
	maxQPS   int
	queries  int
	zone     string
	seed     uint64
	procs    int
	dir      string
	only     string
}

func main() {
	var o options
	flag.IntVar(&o.n, "n", 100000, "listed IPv4 addresses")
	flag.DurationVar(&o.duration, "d", 10*time.Second, "dnsperf run time against each server (whole seconds)")
	flag.IntVar(&o.clients, "c", 4, "dnsperf clients (-c)")
	flag.IntVar(&o.threads, "T", 4, "dnsperf threads (-T)")
	flag.IntVar(&o.outstand, "q", 100, "dnsperf maximum outstanding queries (-q)")
	flag.IntVar(&o.maxQPS, "Q", 0, "dnsperf query rate limit (-Q); 0: as fast as the server answers")
	flag.IntVar(&o.queries, "queries", 200000, "lines in the query file (dnsperf loops over it)")
	flag.StringVar(&o.zone, "zone", "bl.dnsbench.test", "blocklist zone")
	flag.Uint64Var(&o.seed, "seed", 1, "PRNG seed of the addresses and queries")
	flag.IntVar(&o.procs, "procs", 0, "GOMAXPROCS of the in-process dnsbl server (0: Go's default)")
	flag.StringVar(&o.dir, "dir", "", "work directory kept after the run (default: a temporary one, removed)")
	flag.StringVar(&o.only, "only", "", `benchmark only "dstd" or "rbldnsd"`)
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "dnsbench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.duration < time.Second {
		return errors.New("-d must be at least 1s")
	}
	if o.procs > 0 {
		runtime.GOMAXPROCS(o.procs)
	}
	for _, bin := range []string{"dnsperf", "rbldnsd"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s not installed (Debian package %s)", bin, bin)
		}
	}
	dir := o.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "dnsbench")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// rbldnsd, started as root, reads its data as user rbldns.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}

	rng := rand.New(rand.NewPCG(o.seed, o.seed^0x9e3779b97f4a7c15))
	t0 := time.Now()
	listed, set := genListed(rng, o.n)
	qfile := filepath.Join(dir, "queries")
	if err := writeQueries(qfile, rng, listed, set, o.queries, o.zone); err != nil {
		return err
	}
	fmt.Printf("generated %d listed addresses and %d queries (half hits) in %v\n", len(listed), o.queries, time.Since(t0).Round(time.Millisecond))

	// Each listing gets its own expiry, so its own TXT, as in a real store:
	// with one shared text, rbldnsd's memory pool would keep it only once
	// and its memory figure would be meaninglessly low.
	base := time.Now().Add(7 * 24 * time.Hour).Truncate(time.Second)
	expires := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	each := func(fn func(rbldnsd.Listing) error) error {
		for i, ip := range listed {
			if err := fn(rbldnsd.Listing{IP: ip, Expires: expires(i), Hits: 1, Origins: []string{"site-a.example"}}); err != nil {
				return err
			}
		}
		return nil
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	type target struct {
		name string
		addr string
		mem  string
	}
	var targets []target

	if o.only != "dstd" {
		t0 = time.Now()
		ex := rbldnsd.New(filepath.Join(dir, "dst-ip4"), filepath.Join(dir, "dst-ip6"), rbldnsd.DefaultA, nil)
		if err := ex.Write(each); err != nil {
			return err
		}
		addr, pid, stop, err := startRbldnsd(dir, o.zone)
		if err != nil {
			return err
		}
		defer stop()
		rss := vmRSS(pid)
		fmt.Printf("rbldnsd: exported and loaded in %v, VmRSS %s\n", time.Since(t0).Round(time.Millisecond), mib(rss))
		targets = append(targets, target{"rbldnsd", addr, fmt.Sprintf("VmRSS %s (%s per million listings, process total)", mib(rss), mib(rss*1_000_000/int64(len(listed))))})
	}
	if o.only != "rbldnsd" {
		t0 = time.Now()
		addr, heap, err := startDstd(ctx, o.zone, listed, expires)
		if err != nil {
			return err
		}
		fmt.Printf("dstd (internal/dnsbl): indexed and listening in %v, index heap %s\n", time.Since(t0).Round(time.Millisecond), mib(heap))
		targets = append(targets, target{"dstd", addr, fmt.Sprintf("index heap %s (%s per million listings)", mib(heap), mib(heap*1_000_000/int64(len(listed))))})
	}

	// Both must give the same answers before their speed means anything.
	miss := missAddr(rng, set)
	for _, tg := range targets {
		if err := check(tg.addr, o.zone, listed[0], miss); err != nil {
			return fmt.Errorf("%s: %w", tg.name, err)
		}
	}

	qps := map[string]float64{}
	for _, tg := range targets {
		r, err := dnsperf(o, tg.addr, qfile)
		if err != nil {
			return fmt.Errorf("dnsperf against %s: %w", tg.name, err)
		}
		qps[tg.name] = r.qps
		fmt.Printf("%-8s %12.0f queries/s  (%d sent, %d lost, avg latency %s)\n", tg.name, r.qps, r.sent, r.lost, r.latency)
	}
	fmt.Printf("\nlistings %d, duration %v, dnsperf -c %d -T %d -q %d", len(listed), o.duration, o.clients, o.threads, o.outstand)
	if o.maxQPS > 0 {
		fmt.Printf(" -Q %d", o.maxQPS)
	}
	fmt.Printf(", GOMAXPROCS %d, %d CPUs\n", runtime.GOMAXPROCS(0), runtime.NumCPU())
	for _, tg := range targets {
		fmt.Printf("%-8s %12.0f queries/s  %s\n", tg.name, qps[tg.name], tg.mem)
	}
	if qps["rbldnsd"] > 0 && qps["dstd"] > 0 {
		fmt.Printf("ratio dstd/rbldnsd: %.2f\n", qps["dstd"]/qps["rbldnsd"])
	}
	return nil
}

// Special-purpose IPv4 ranges (RFC 6890 and its registry) that a blocklist
// never lists; the benchmark avoids them so the listings look like real ones
// and dstd's policy would accept them.
var special = func() []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
		"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.31.196.0/24", "192.52.193.0/24",
		"192.88.99.0/24", "192.168.0.0/16", "192.175.48.0/24", "198.18.0.0/15",
		"198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
	} {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}()

func randAddr(rng *rand.Rand) netip.Addr {
	for {
		var b [4]byte
		v := rng.Uint32()
		b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
		a := netip.AddrFrom4(b)
		ok := true
		for _, p := range special {
			if p.Contains(a) {
				ok = false
				break
			}
		}
		if ok {
			return a
		}
	}
}

func genListed(rng *rand.Rand, n int) ([]netip.Addr, map[netip.Addr]struct{}) {
	set := make(map[netip.Addr]struct{}, n)
	ips := make([]netip.Addr, 0, n)
	for len(ips) < n {
		a := randAddr(rng)
		if _, dup := set[a]; dup {
			continue
		}
		set[a] = struct{}{}
		ips = append(ips, a)
	}
	return ips, set
}

func missAddr(rng *rand.Rand, set map[netip.Addr]struct{}) netip.Addr {
	for {
		if a := randAddr(rng); !hasKey(set, a) {
			return a
		}
	}
}

func hasKey(set map[netip.Addr]struct{}, a netip.Addr) bool { _, ok := set[a]; return ok }

func qname(a netip.Addr, zone string) string {
	b := a.As4()
	return fmt.Sprintf("%d.%d.%d.%d.%s", b[3], b[2], b[1], b[0], zone)
}

// writeQueries writes dnsperf's input: even lines ask for a random listed
// address, odd lines for a random unlisted one. Both servers get the same
// file, so the same mix of positive answers and NXDOMAIN.
func writeQueries(path string, rng *rand.Rand, listed []netip.Addr, set map[netip.Addr]struct{}, n int, zone string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for i := range n {
		a := listed[rng.IntN(len(listed))]
		if i%2 == 1 {
			a = missAddr(rng, set)
		}
		fmt.Fprintf(w, "%s A\n", qname(a, zone))
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func freeUDPPort() (int, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port, nil
}

// startRbldnsd runs rbldnsd in the foreground, chrooted to dir, and waits
// until it has loaded the data and answers.
func startRbldnsd(dir, zone string) (addr string, pid int, stop func(), err error) {
	port, err := freeUDPPort()
	if err != nil {
		return "", 0, nil, err
	}
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := []string{"-n", "-q", "-b", "127.0.0.1/" + strconv.Itoa(port), "-c", "0", "-t", "60"}
	if os.Geteuid() == 0 {
		args = append(args, "-r", dir, "-w", "/")
	} else {
		args = append(args, "-w", dir)
	}
	args = append(args, zone+":ip4set:dst-ip4", zone+":ip6trie:dst-ip6")
	cmd := exec.Command("rbldnsd", args...)
	logf, err := os.Create(filepath.Join(dir, "rbldnsd.log"))
	if err != nil {
		return "", 0, nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return "", 0, nil, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop = func() { cmd.Process.Kill(); <-exited }
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion("2.0.0.127."+zone+".", dns.TypeA)
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); {
		select {
		case <-exited:
			out, _ := os.ReadFile(logf.Name())
			return "", 0, nil, fmt.Errorf("rbldnsd exited: %s", out)
		default:
		}
		// -q loads in the background and answers SERVFAIL until loaded.
		if r, _, err := c.Exchange(m, addr); err == nil && r.Rcode == dns.RcodeSuccess {
			return addr, cmd.Process.Pid, stop, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	return "", 0, nil, errors.New("rbldnsd did not answer within 2 minutes")
}

func vmRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// check asks addr for a listed and an unlisted address, A and TXT.
func check(addr, zone string, hit, miss netip.Addr) error {
	c := &dns.Client{Timeout: 2 * time.Second}
	for _, q := range []struct {
		a     netip.Addr
		qt    uint16
		rcode int
	}{{hit, dns.TypeA, dns.RcodeSuccess}, {hit, dns.TypeTXT, dns.RcodeSuccess}, {miss, dns.TypeA, dns.RcodeNameError}} {
		m := new(dns.Msg)
		m.SetQuestion(qname(q.a, zone)+".", q.qt)
		r, _, err := c.Exchange(m, addr)
		if err != nil {
			return err
		}
		if r.Rcode != q.rcode || (q.rcode == dns.RcodeSuccess && len(r.Answer) == 0) {
			return fmt.Errorf("%s %s: rcode %s, %d answers", q.a, dns.TypeToString[q.qt], dns.RcodeToString[r.Rcode], len(r.Answer))
		}
	}
	return nil
}

type perfResult struct {
	qps        float64
	sent, lost int64
	latency    string
}

var (
	reQPS  = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)
	reSent = regexp.MustCompile(`Queries sent:\s+(\d+)`)
	reLost = regexp.MustCompile(`Queries lost:\s+(\d+)`)
	reLat  = regexp.MustCompile(`Average Latency \(s\):\s+([0-9.]+)`)
)

func dnsperf(o options, addr, qfile string) (perfResult, error) {
	host, port, _ := net.SplitHostPort(addr)
	args := []string{"-s", host, "-p", port, "-d", qfile,
		"-l", strconv.Itoa(int(o.duration / time.Second)),
		"-c", strconv.Itoa(o.clients), "-T", strconv.Itoa(o.threads), "-q", strconv.Itoa(o.outstand)}
	if o.maxQPS > 0 {
		args = append(args, "-Q", strconv.Itoa(o.maxQPS))
	}
	out, err := exec.Command("dnsperf", args...).CombinedOutput()
	if err != nil {
		return perfResult{}, fmt.Errorf("%v: %s", err, out)
	}
	m := reQPS.FindSubmatch(out)
	if m == nil {
		return perfResult{}, fmt.Errorf("no \"Queries per second\" in output:\n%s", out)
	}
	var r perfResult
	r.qps, _ = strconv.ParseFloat(string(m[1]), 64)
	if m := reSent.FindSubmatch(out); m != nil {
		r.sent, _ = strconv.ParseInt(string(m[1]), 10, 64)
	}
	if m := reLost.FindSubmatch(out); m != nil {
		r.lost, _ = strconv.ParseInt(string(m[1]), 10, 64)
	}
	if m := reLat.FindSubmatch(out); m != nil {
		r.latency = string(m[1]) + "s"
	}
	return r, nil
}
