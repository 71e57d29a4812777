// Command dnsbench compares dstd's embedded DNS blocklist server
// (internal/dnsbl) with rbldnsd serving the same listings, as exported by
// internal/rbldnsd:
//
//	go run ./test/dnsbench -n 100000,1000000 -d 10s -repeat 3
//
// For each listing count it generates that many distinct listed IPv4
// addresses (deterministic PRNG, no special-purpose ranges) and a dnsperf
// query file of half hits and half misses, starts rbldnsd and a process
// serving the listings with internal/dnsbl (this program re-executed with
// -serve), checks that both give the same answers, then measures them in
// rounds, each round running dnsperf against both servers back to back
// (alternating which goes first) after a short warm-up. Each measurement
// reads the server's CPU time (utime+stime of the whole process in
// /proc/PID/stat) before and after dnsperf, so it reports the CPU cost of a
// query beside the query rate, and dnsperf's own CPU and the rest of the
// machine's, which show how far the figures are disturbed. It ends with a
// Markdown report of the medians and ratios (scripts/bench-all.sh embeds
// it) and machine-readable "result" lines. Needs root (rbldnsd drops to its
// own user) and the Debian packages rbldnsd and dnsperf. Loopback only. See
// README.md.
package main

import (
	"bufio"
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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/dst-traps/dst/internal/rbldnsd"
)

type options struct {
	sizes      []int
	duration   time.Duration
	warmup     time.Duration
	repeat     int
	clients    int
	threads    int
	outstand   int
	maxQPS     int
	queries    int
	zone       string
	seed       uint64
	procs      int
	dir        string
	only       string
	serverCPUs string
	perfCPUs   string
	maxLost    float64
}

func main() {
	var (
		o     options
		sizes string
		serve bool
		base  int64
		port  int
	)
	flag.StringVar(&sizes, "n", "100000,1000000", "listed IPv4 addresses; a comma-separated list measures each count in turn")
	flag.DurationVar(&o.duration, "d", 10*time.Second, "dnsperf run time of each measurement (whole seconds)")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "dnsperf run before each measurement, not counted (whole seconds; 0: none)")
	flag.IntVar(&o.repeat, "repeat", 3, "rounds per listing count; each round measures both servers, alternating which goes first")
	flag.IntVar(&o.clients, "c", 4, "dnsperf clients (-c)")
	flag.IntVar(&o.threads, "T", 4, "dnsperf threads (-T)")
	flag.IntVar(&o.outstand, "q", 100, "dnsperf maximum outstanding queries (-q)")
	flag.IntVar(&o.maxQPS, "Q", 0, "dnsperf query rate limit (-Q); 0: as fast as the server answers")
	flag.IntVar(&o.queries, "queries", 0, "lines in the query file (dnsperf loops over it); 0: the listing count, at least 200,000")
	flag.StringVar(&o.zone, "zone", "bl.dnsbench.test", "blocklist zone")
	flag.Uint64Var(&o.seed, "seed", 1, "PRNG seed of the addresses and queries")
	flag.IntVar(&o.procs, "procs", 0, "GOMAXPROCS of dstd's DNS server process (0: Go's default, the CPUs it may run on, plus the spare P dstd adds)")
	flag.StringVar(&o.dir, "dir", "", "work directory kept after the run (default: a temporary one, removed)")
	flag.StringVar(&o.only, "only", "", `benchmark only "dstd" or "rbldnsd"`)
	flag.StringVar(&o.serverCPUs, "server-cpus", "", "pin both servers to these CPUs (taskset -c list, e.g. 1); empty: not pinned")
	flag.StringVar(&o.perfCPUs, "dnsperf-cpus", "", "pin dnsperf to these CPUs (taskset -c list, e.g. 0); empty: not pinned")
	flag.Float64Var(&o.maxLost, "maxlost", 0.001, "fail when a measurement loses more than this fraction of the queries sent")
	// -serve is the dstd side of the benchmark, started by this program.
	flag.BoolVar(&serve, "serve", false, "internal: serve the listings of -n and -seed with internal/dnsbl and print the address")
	flag.Int64Var(&base, "expires", 0, "internal (-serve): Unix time of the first listing's expiry")
	flag.IntVar(&port, "port", 0, "internal (-serve): UDP and TCP port on 127.0.0.1")
	flag.Parse()
	var err error
	if o.sizes, err = parseSizes(sizes); err != nil {
		fmt.Fprintln(os.Stderr, "dnsbench:", err)
		os.Exit(2)
	}
	if serve {
		err = serveDstd(o.zone, o.seed, o.sizes[0], time.Unix(base, 0), port)
	} else {
		err = run(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dnsbench:", err)
		os.Exit(1)
	}
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-n: %q is not a positive listing count", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// server is one side of the comparison while it runs.
type server struct {
	name string
	addr string
	pid  int
	// exited is closed when the process has ended (it never should
	// before the end of the benchmark).
	exited <-chan struct{}
	// heap is the live heap the dnsbl index added (dstd only).
	heap int64
}

// alive fails if s's process has ended: a measurement against a dead server
// means nothing, and the loss count would be the only sign of it.
func (s *server) alive() error {
	select {
	case <-s.exited:
		return fmt.Errorf("%s (pid %d) exited during the benchmark; see its log above", s.name, s.pid)
	default:
		return nil
	}
}

// measurement is one dnsperf run against one server.
type measurement struct {
	perf perfResult
	// serverCPU is the server process's utime+stime during the run (all
	// threads), perfCPU dnsperf's (its rusage), othersCPU what the rest
	// of the machine did: busy time in /proc/stat minus both.
	serverCPU, perfCPU, othersCPU time.Duration
	wall                          time.Duration
}

func (m measurement) cpuPerQuery(d time.Duration) float64 {
	if m.perf.completed == 0 {
		return 0
	}
	return float64(d.Nanoseconds()) / 1e3 / float64(m.perf.completed)
}

func (m measurement) cores(d time.Duration) float64 { return d.Seconds() / m.wall.Seconds() }

// sizeResult is everything measured at one listing count.
type sizeResult struct {
	n       int
	queries int
	runs    map[string][]measurement // by server name, in round order
	vmRSS   map[string]int64
	rssAnon map[string]int64
	heap    int64
}

func run(o options) error {
	if o.duration < time.Second || o.duration%time.Second != 0 {
		return errors.New("-d must be whole seconds, at least 1s (dnsperf -l)")
	}
	if o.warmup < 0 || o.warmup%time.Second != 0 {
		return errors.New("-warmup must be whole seconds (dnsperf -l)")
	}
	if o.repeat < 1 {
		return errors.New("-repeat must be at least 1")
	}
	if o.only != "" && o.only != "dstd" && o.only != "rbldnsd" {
		return fmt.Errorf(`-only must be "dstd" or "rbldnsd", not %q`, o.only)
	}
	need := []string{"dnsperf", "rbldnsd"}
	if o.serverCPUs != "" || o.perfCPUs != "" {
		need = append(need, "taskset")
	}
	for _, bin := range need {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s is not installed (Debian package %s): %w", bin, map[string]string{"taskset": "util-linux"}[bin]+bin, err)
		}
	}
	tck, err := clockTicks()
	if err != nil {
		return err
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

	var results []sizeResult
	for _, n := range o.sizes {
		fmt.Printf("=== %d listings: %d rounds of %v per server (after a %v warm-up each)\n", n, o.repeat, o.duration, o.warmup)
		r, err := runSize(o, n, filepath.Join(dir, strconv.Itoa(n)), tck)
		if err != nil {
			return fmt.Errorf("%d listings: %w", n, err)
		}
		results = append(results, r)
		fmt.Println()
	}
	report(os.Stdout, o, results)
	return nil
}

func newRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }

func runSize(o options, n int, dir string, tck int64) (sizeResult, error) {
	res := sizeResult{n: n, runs: map[string][]measurement{}, vmRSS: map[string]int64{}, rssAnon: map[string]int64{}}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	if o.dir == "" {
		defer os.RemoveAll(dir) // the query file and rbldnsd's data are large at 1M
	}
	rng := newRNG(o.seed)
	t0 := time.Now()
	listed, set := genListed(rng, n)
	res.queries = o.queries
	if res.queries == 0 {
		// Enough distinct hits that a large index is not served from a
		// small, cache-resident part of it.
		res.queries = max(200_000, n)
	}
	qfile := filepath.Join(dir, "queries")
	if err := writeQueries(qfile, rng, listed, set, res.queries, o.zone); err != nil {
		return res, err
	}
	fmt.Printf("generated %d listed addresses and %d queries (half hits) in %v\n", len(listed), res.queries, time.Since(t0).Round(time.Millisecond))

	// Each listing gets its own expiry, so its own TXT, as in a real store:
	// with one shared text, rbldnsd's memory pool would keep it only once
	// and its memory figure would be meaninglessly low.
	base := time.Now().Add(7 * 24 * time.Hour).Truncate(time.Second)

	var servers []*server
	if o.only != "dstd" {
		t0 = time.Now()
		ex := rbldnsd.New(filepath.Join(dir, "dst-ip4"), filepath.Join(dir, "dst-ip6"), rbldnsd.DefaultA, nil)
		err := ex.Write(func(fn func(rbldnsd.Listing) error) error {
			for i, ip := range listed {
				if err := fn(listing(ip, base, i)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return res, err
		}
		s, stop, err := startRbldnsd(dir, o.zone, o.serverCPUs)
		if err != nil {
			return res, err
		}
		defer stop()
		fmt.Printf("rbldnsd: exported and loaded in %v (pid %d, %s)\n", time.Since(t0).Round(time.Millisecond), s.pid, pinned(o.serverCPUs))
		servers = append(servers, s)
	}
	if o.only != "rbldnsd" {
		t0 = time.Now()
		s, stop, err := startDstd(o, n, base)
		if err != nil {
			return res, err
		}
		defer stop()
		res.heap = s.heap
		fmt.Printf("dstd (internal/dnsbl, own process): indexed and listening in %v (pid %d, %s), index heap %s\n", time.Since(t0).Round(time.Millisecond), s.pid, pinned(o.serverCPUs), mib(s.heap))
		servers = append(servers, s)
	}

	// Both must give the same answers before their speed means anything.
	miss := missAddr(rng, set)
	for _, s := range servers {
		if err := check(s.addr, o.zone, listed[0], miss); err != nil {
			return res, fmt.Errorf("%s does not answer as expected: %w", s.name, err)
		}
	}

	for round := range o.repeat {
		order := slices.Clone(servers)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, s := range order {
			if o.warmup > 0 {
				if _, err := dnsperf(o, s.addr, qfile, o.warmup); err != nil {
					return res, fmt.Errorf("warm-up dnsperf against %s: %w", s.name, err)
				}
			}
			m, err := measure(o, s, qfile, tck)
			if err != nil {
				return res, err
			}
			res.runs[s.name] = append(res.runs[s.name], m)
			fmt.Printf("round %d/%d %-8s %9.0f q/s  server %5.2f µs CPU/query (%.2f cores)  dnsperf %5.2f µs/query (%.2f cores)  rest of machine %.2f cores  lost %d of %d  latency %s  %s\n",
				round+1, o.repeat, s.name, m.perf.qps,
				m.cpuPerQuery(m.serverCPU), m.cores(m.serverCPU),
				m.cpuPerQuery(m.perfCPU), m.cores(m.perfCPU),
				m.cores(m.othersCPU), m.perf.lost, m.perf.sent, m.perf.latency, m.perf.rcodes)
		}
	}
	// Memory after serving: what each server holds while it works.
	for _, s := range servers {
		st, err := procStatus(s.pid)
		if err != nil {
			return res, fmt.Errorf("%s: %w", s.name, err)
		}
		res.vmRSS[s.name], res.rssAnon[s.name] = st["VmRSS"], st["RssAnon"]
		fmt.Printf("%-8s VmRSS %s, RssAnon %s after the runs\n", s.name, mib(st["VmRSS"]), mib(st["RssAnon"]))
	}
	return res, nil
}

// measure runs dnsperf once against s and reads the CPU time of s, of
// dnsperf and of the whole machine around it.
func measure(o options, s *server, qfile string, tck int64) (measurement, error) {
	var m measurement
	if err := s.alive(); err != nil {
		return m, err
	}
	cpu0, err := procCPU(s.pid, tck)
	if err != nil {
		return m, fmt.Errorf("%s: %w", s.name, err)
	}
	busy0, err := machineBusy(tck)
	if err != nil {
		return m, err
	}
	t0 := time.Now()
	p, err := dnsperf(o, s.addr, qfile, o.duration)
	if err != nil {
		return m, fmt.Errorf("dnsperf against %s: %w", s.name, err)
	}
	m.wall = time.Since(t0)
	cpu1, err := procCPU(s.pid, tck)
	if err != nil {
		return m, fmt.Errorf("%s: %w", s.name, err)
	}
	busy1, err := machineBusy(tck)
	if err != nil {
		return m, err
	}
	if err := s.alive(); err != nil {
		return m, err
	}
	m.perf = p
	m.serverCPU = cpu1 - cpu0
	m.perfCPU = p.cpu
	m.othersCPU = max(0, busy1-busy0-m.serverCPU-m.perfCPU)
	if p.completed == 0 {
		return m, fmt.Errorf("dnsperf against %s: no query completed", s.name)
	}
	if float64(p.lost) > o.maxLost*float64(p.sent) {
		return m, fmt.Errorf("dnsperf against %s lost %d of %d queries (more than -maxlost %g): its rate is not comparable", s.name, p.lost, p.sent, o.maxLost)
	}
	return m, nil
}

func listing(ip netip.Addr, base time.Time, i int) rbldnsd.Listing {
	return rbldnsd.Listing{IP: ip, Expires: base.Add(time.Duration(i) * time.Second), Hits: 1, Origins: []string{"site-a.example"}}
}

func pinned(cpus string) string {
	if cpus == "" {
		return "not pinned"
	}
	return "pinned to CPU " + cpus
}

// withCPUs prefixes argv with taskset when cpus is set. taskset sets the
// affinity and execs, so the process keeps taskset's PID, and Go's
// GOMAXPROCS follows the affinity.
func withCPUs(cpus string, argv ...string) []string {
	if cpus == "" {
		return argv
	}
	return append([]string{"taskset", "-c", cpus}, argv...)
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

// genListed draws n distinct addresses. The -serve process calls it with
// the same seed to get the same listings.
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

// waitAnswer asks addr for the RFC 5782 test point until it answers,
// giving up when exited is closed or after limit.
func waitAnswer(addr, zone string, exited <-chan struct{}, limit time.Duration) error {
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion("2.0.0.127."+zone+".", dns.TypeA)
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); {
		select {
		case <-exited:
			return errors.New("exited before answering")
		default:
		}
		if r, _, err := c.Exchange(m, addr); err == nil && r.Rcode == dns.RcodeSuccess {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("did not answer within %v", limit)
}

// startRbldnsd runs rbldnsd in the foreground, chrooted to dir, and waits
// until it has loaded the data and answers.
func startRbldnsd(dir, zone, cpus string) (*server, func(), error) {
	port, err := freeUDPPort()
	if err != nil {
		return nil, nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := []string{"rbldnsd", "-n", "-q", "-b", "127.0.0.1/" + strconv.Itoa(port), "-c", "0", "-t", "60"}
	if os.Geteuid() == 0 {
		args = append(args, "-r", dir, "-w", "/")
	} else {
		args = append(args, "-w", dir)
	}
	args = append(args, zone+":ip4set:dst-ip4", zone+":ip6trie:dst-ip6")
	argv := withCPUs(cpus, args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	logName := filepath.Join(dir, "rbldnsd.log")
	logf, err := os.Create(logName)
	if err != nil {
		return nil, nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	// Killed with this program, whatever ends it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("starting rbldnsd: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() { cmd.Process.Kill(); <-exited }
	s := &server{name: "rbldnsd", addr: addr, pid: cmd.Process.Pid, exited: exited}
	// -q loads in the background and answers SERVFAIL until loaded.
	if err := waitAnswer(addr, zone, exited, 2*time.Minute); err != nil {
		stop()
		out, _ := os.ReadFile(logName)
		return nil, nil, fmt.Errorf("rbldnsd %s: %w; its output:\n%s", strings.Join(args[1:], " "), err, out)
	}
	return s, stop, nil
}

// procStatus reads the sizes (in bytes) of /proc/PID/status.
func procStatus(pid int) (map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	st := map[string]int64{}
	for l := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err == nil {
				st[strings.TrimSuffix(f[0], ":")] = kb * 1024
			}
		}
	}
	if st["VmRSS"] == 0 {
		return nil, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return st, nil
}

// clockTicks is USER_HZ, the unit of the times in /proc/PID/stat and
// /proc/stat.
func clockTicks() (int64, error) {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 0, fmt.Errorf("getconf CLK_TCK (the unit of /proc/PID/stat's CPU times): %w", err)
	}
	t, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil || t <= 0 {
		return 0, fmt.Errorf("getconf CLK_TCK printed %q", out)
	}
	return t, nil
}

func ticks(t, tck int64) time.Duration { return time.Duration(t * int64(time.Second) / tck) }

// procCPU is utime+stime of the whole process pid (every thread, including
// those that ended), fields 14 and 15 of /proc/PID/stat.
func procCPU(pid int, tck int64) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	t, err := statCPU(string(b))
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return ticks(t, tck), nil
}

// statCPU is utime+stime, in clock ticks, of a /proc/PID/stat line.
func statCPU(s string) (int64, error) {
	// The command name, field 2, is in parentheses and may hold spaces
	// and parentheses.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("no command name")
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields", len(f)+2)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return u + st, nil
}

// machineBusy is the CPU time all CPUs spent running something (user,
// nice, system, irq, softirq; not idle, iowait or steal), from /proc/stat.
func machineBusy(tck int64) (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var sum int64
	for _, i := range []int{1, 2, 3, 6, 7} {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		sum += v
	}
	return ticks(sum, tck), nil
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
	qps                   float64
	sent, completed, lost int64
	latency               string
	rcodes                string
	cpu                   time.Duration // dnsperf's own user+system time
}

var (
	reQPS    = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)
	reSent   = regexp.MustCompile(`Queries sent:\s+(\d+)`)
	reDone   = regexp.MustCompile(`Queries completed:\s+(\d+)`)
	reLost   = regexp.MustCompile(`Queries lost:\s+(\d+)`)
	reLat    = regexp.MustCompile(`Average Latency \(s\):\s+([0-9.]+)`)
	reRcodes = regexp.MustCompile(`Response codes:\s+(.*)`)
	reRcode  = regexp.MustCompile(`([A-Z]+) (\d+) \(`)
)

// dnsperf runs dnsperf against addr for d and parses its statistics. The
// answers must be the query file's mix, NOERROR and NXDOMAIN about half
// each: a server that answers fast with errors must not win.
func dnsperf(o options, addr, qfile string, d time.Duration) (perfResult, error) {
	host, port, _ := net.SplitHostPort(addr)
	args := []string{"dnsperf", "-s", host, "-p", port, "-d", qfile,
		"-l", strconv.Itoa(int(d / time.Second)),
		"-c", strconv.Itoa(o.clients), "-T", strconv.Itoa(o.threads), "-q", strconv.Itoa(o.outstand)}
	if o.maxQPS > 0 {
		args = append(args, "-Q", strconv.Itoa(o.maxQPS))
	}
	argv := withCPUs(o.perfCPUs, args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return perfResult{}, fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, out)
	}
	r, err := parsePerf(out)
	r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return r, err
}

// parsePerf reads dnsperf's statistics and checks the answers are the query
// file's mix.
func parsePerf(out []byte) (perfResult, error) {
	var r perfResult
	m := reQPS.FindSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no \"Queries per second\" in dnsperf's output:\n%s", out)
	}
	r.qps, _ = strconv.ParseFloat(string(m[1]), 64)
	for _, x := range []struct {
		re *regexp.Regexp
		v  *int64
	}{{reSent, &r.sent}, {reDone, &r.completed}, {reLost, &r.lost}} {
		m := x.re.FindSubmatch(out)
		if m == nil {
			return r, fmt.Errorf("no %q in dnsperf's output:\n%s", x.re, out)
		}
		*x.v, _ = strconv.ParseInt(string(m[1]), 10, 64)
	}
	if m := reLat.FindSubmatch(out); m != nil {
		r.latency = string(m[1]) + " s"
	}
	if r.completed == 0 {
		return r, nil
	}
	m = reRcodes.FindSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no response codes in dnsperf's output:\n%s", out)
	}
	r.rcodes = strings.TrimSpace(string(m[1]))
	codes := map[string]int64{}
	for _, c := range reRcode.FindAllSubmatch(m[1], -1) {
		codes[string(c[1])], _ = strconv.ParseInt(string(c[2]), 10, 64)
	}
	hits := float64(codes["NOERROR"]) / float64(r.completed)
	if codes["NOERROR"]+codes["NXDOMAIN"] != r.completed || hits < 0.45 || hits > 0.55 {
		return r, fmt.Errorf("answers are not the query file's half NOERROR, half NXDOMAIN: %s", r.rcodes)
	}
	return r, nil
}
