package bench_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/admin"
	"github.com/dst-traps/dst/internal/dsttest"
	"github.com/dst-traps/dst/internal/nntp"
	"github.com/dst-traps/dst/internal/report"
)

// Propagation settings. minReports is the least number of reports a run
// injects whatever b.N is; injectEvery paces them (they are pipelined:
// the next is posted before the previous has arrived).
const (
	minReports  = 50
	injectEvery = 20 * time.Millisecond
	// idleReports are posted one at a time before the measured ones.
	idleReports = 9
	// lostAfter gives up on reports when none arrived for this long.
	lostAfter = 30 * time.Second
	// meshSeed fixes the random graph of mesh20.
	meshSeed = 1
)

// propNet is a network of dstd sites for BenchmarkPropagation. It is made
// and stopped by the parent benchmark and started by the first run of its
// sub-benchmark, so that the runs the testing package makes with growing
// b.N share one network instead of starting twenty dstd each time.
type propNet struct {
	name    string
	sites   []*dsttest.Dstd
	edges   [][2]int
	dist    []int // hops from site 0
	far     int   // the farthest site from site 0 (lowest index among ties)
	started bool

	injected int // reports injected at site 0 so far, all runs together
	seq      int // source addresses used so far
	cold     time.Duration
}

// newPropNet prepares n sites linked by edges, each edge a feed both ways,
// every site trusting every site's key (one keyring), documentation ranges
// allowed, each site feeding from an address of its own (feedSource).
// Nothing runs yet.
func newPropNet(b *testing.B, name string, n int, edges [][2]int) *propNet {
	b.Helper()
	nw := &propNet{name: name, edges: edges}
	for i := range n {
		nw.sites = append(nw.sites, dsttest.NewDstd(b, fmt.Sprintf("site-%d.test", i), ""))
	}
	var keyring strings.Builder
	for _, s := range nw.sites {
		keyring.WriteString(s.KeyringLine() + "\n")
	}
	peers := make([]strings.Builder, n)
	adj := make([][]int, n)
	for _, e := range edges {
		for _, d := range [][2]int{{e[0], e[1]}, {e[1], e[0]}} {
			to := nw.sites[d[1]]
			fmt.Fprintf(&peers[d[0]], "\n[[peer]]\nname = %q\naddresses = [%q]\nfeed = %q\nsource = %q\n",
				to.Site, feedSource(d[1]), to.NNTP, feedSource(d[0]))
			adj[d[0]] = append(adj[d[0]], d[1])
		}
	}
	for i, s := range nw.sites {
		s.LogLevel = "info" // production's default: debug lines cost CPU no site spends
		s.Reconfigure("[policy]\nallow_documentation = true\n" + peers[i].String())
		if err := os.WriteFile(filepath.Join(s.Dir, "keyring"), []byte(keyring.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	nw.dist = bfs(adj, 0)
	for i, d := range nw.dist {
		if d < 0 {
			b.Fatalf("%s: site %d cannot be reached from site 0", name, i)
		}
		if d > nw.dist[nw.far] {
			nw.far = i
		}
	}
	return nw
}

// feedSource is the loopback address site i feeds its peers from, its
// own, as each site of a real network has one: a site can then tell its
// peers' connections apart, which those sharing 127.0.0.1 would not let
// it (see feed.Offered).
func feedSource(i int) string { return fmt.Sprintf("127.0.1.%d", i+1) }

// bfs returns the distance in hops from src to every node, -1 if none.
func bfs(adj [][]int, src int) []int {
	dist := make([]int, len(adj))
	for i := range dist {
		dist[i] = -1
	}
	dist[src] = 0
	q := []int{src}
	for len(q) > 0 {
		u := q[0]
		q = q[1:]
		for _, v := range adj[u] {
			if dist[v] < 0 {
				dist[v] = dist[u] + 1
				q = append(q, v)
			}
		}
	}
	return dist
}

// chainEdges links 0-1-2-...-(n-1).
func chainEdges(n int) [][2]int {
	var e [][2]int
	for i := 0; i+1 < n; i++ {
		e = append(e, [2]int{i, i + 1})
	}
	return e
}

// meshEdges is a random connected graph of n nodes (n even) where every
// node has 3 or 4 neighbours, the same for a given seed: a ring through the
// nodes in random order (connected, degree 2), a random perfect matching
// that repeats no ring edge (degree 3), and n/5 random chords between
// nodes of degree 3 (degree 4 for 2n/5 of them).
func meshEdges(n int, seed uint64) [][2]int {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	for {
		adj := make([]map[int]bool, n)
		for i := range adj {
			adj[i] = make(map[int]bool)
		}
		var edges [][2]int
		add := func(u, v int) bool {
			if u == v || adj[u][v] {
				return false
			}
			adj[u][v], adj[v][u] = true, true
			edges = append(edges, [2]int{min(u, v), max(u, v)})
			return true
		}
		ring := r.Perm(n)
		for i := range n {
			add(ring[i], ring[(i+1)%n])
		}
		match := r.Perm(n)
		ok := true
		for i := 0; i+1 < n && ok; i += 2 {
			ok = add(match[i], match[i+1])
		}
		if !ok {
			continue // the matching repeated a ring edge: draw again
		}
		for chords, tries := 0, 0; chords < n/5 && tries < 1000; tries++ {
			u, v := r.IntN(n), r.IntN(n)
			if len(adj[u]) == 3 && len(adj[v]) == 3 && add(u, v) {
				chords++
			}
		}
		slices.SortFunc(edges, func(a, b [2]int) int {
			if a[0] != b[0] {
				return a[0] - b[0]
			}
			return a[1] - b[1]
		})
		return edges
	}
}

func (nw *propNet) start(b *testing.B) {
	b.Helper()
	if nw.started {
		return
	}
	t0 := time.Now()
	for _, s := range nw.sites {
		s.Start()
	}
	nw.started = true
	b.Logf("%s: %d sites started in %v; farthest from site 0: %s, %d hops; edges %v",
		nw.name, len(nw.sites), time.Since(t0).Round(time.Millisecond), nw.sites[nw.far].Site, nw.dist[nw.far], nw.edges)
}

func (nw *propNet) stop() {
	for _, s := range nw.sites {
		s.Stop()
	}
}

// nextAddr is a fresh source address for this network: every report is a
// new listing everywhere.
func (nw *propNet) nextAddr() netip.Addr {
	nw.seq++
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x5e, 0xed, 14: byte(nw.seq >> 8), 15: byte(nw.seq)})
}

// BenchmarkPropagation measures how long a report takes from the 240 that
// answers its POST at site 0 to its listing at the site farthest from
// site 0, over real dstd processes feeding each other (MODE STREAM,
// CHECK/TAKETHIS) on loopback. A run injects max(b.N, 50) reports, one
// every 20 ms with distinct addresses, without waiting for the previous one
// to arrive. Before that, one report opens the feed
// connections along the way (cold-ms) and one goes through the real dstc
// binary (dstc-ms, from dstc's exit). A report counts as arrived when the
// farthest site's report log has its line (logWatch), which it writes
// after the commit that lists it.
func BenchmarkPropagation(b *testing.B) {
	for _, tp := range []struct {
		name  string
		n     int
		edges [][2]int
	}{
		{"chain10", 10, chainEdges(10)},
		{"mesh20", 20, meshEdges(20, meshSeed)},
	} {
		nw := newPropNet(b, tp.name, tp.n, tp.edges)
		b.Run(tp.name, func(b *testing.B) { benchPropagation(b, nw) })
		nw.stop()
	}
}

func benchPropagation(b *testing.B, nw *propNet) {
	nw.start(b)
	far := nw.sites[nw.far]
	hops := nw.dist[nw.far]
	lw, err := watchReportLog(far.Dir)
	if err != nil {
		b.Fatal(err)
	}
	defer lw.Close()
	ctx := context.Background()

	// The first report of the network dials every feed on its way.
	if nw.cold == 0 {
		ip := nw.nextAddr()
		t0 := postAt(b, nw.sites[0].Socket(), buildReport(b, ip))
		nw.injected++
		nw.cold = waitListed(b, lw, ip, t0)
	}

	// One report through the real trap client, the way an MTA runs it.
	ip := netip.AddrFrom4([4]byte{198, 51, 100, byte(nw.seq % 250)})
	nw.seq++
	msg := trapMessage(ip)
	out, code := nw.sites[0].Dstc(msg, "-m", "mx1.example.net")
	t0 := time.Now()
	if code != 0 || !strings.Contains(out, "reported") {
		b.Fatalf("dstc: exit %d: %s", code, out)
	}
	nw.injected++
	dstcLat := waitListed(b, lw, ip, t0)

	// A few reports alone in the network, each posted once the previous
	// one has arrived: the latency without load.
	var idle []time.Duration
	for range idleReports {
		ip := nw.nextAddr()
		t0 := postAt(b, nw.sites[0].Socket(), buildReport(b, ip))
		nw.injected++
		idle = append(idle, waitListed(b, lw, ip, t0))
	}
	slices.Sort(idle)

	// The measured reports, built before the timer starts.
	r := max(b.N, minReports)
	ips := make([]netip.Addr, r)
	arts := make([][]byte, r)
	for i := range arts {
		ips[i] = nw.nextAddr()
		arts[i] = buildReport(b, ips[i])
	}

	type posted struct {
		i  int
		at time.Time // when the 240 came
	}
	postedc := make(chan posted, r)
	cpu0, self0 := nw.sitesCPU(b), selfCPU(b)
	b.ResetTimer()
	go func() {
		defer close(postedc)
		c, err := nntp.Dial(ctx, nw.sites[0].Socket(), 30*time.Second)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		every := injectEvery
		if v, err := time.ParseDuration(os.Getenv("DST_BENCH_INJECT_EVERY")); err == nil && v > 0 {
			every = v
		}
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i, a := range arts {
			if i > 0 {
				<-tick.C
			}
			if err := c.Post(ctx, a); err != nil {
				b.Errorf("POST of report %d at site 0: %v", i, err)
				return
			}
			postedc <- posted{i, time.Now()}
		}
	}()

	lat := make([]time.Duration, r)
	arrived, sent := 0, 0
	var outstanding []posted
	lastProgress := time.Now()
	check := time.NewTicker(time.Second) // for lostAfter, when nothing comes
	defer check.Stop()
	for open := true; open || len(outstanding) > 0; {
		select {
		case p, ok := <-postedc:
			if !ok {
				open = false
				postedc = nil
				break
			}
			outstanding = append(outstanding, p)
			sent++
		case <-lw.notify:
		case <-check.C:
		}
		keep := outstanding[:0]
		for _, p := range outstanding {
			at, ok, err := lw.when(ips[p.i])
			if err != nil {
				b.Fatalf("following the report log of %s: %v", far.Site, err)
			}
			if ok {
				lat[p.i] = max(at.Sub(p.at), time.Microsecond) // listed even before the 240 was read: count it as arrived
				arrived++
				lastProgress = time.Now()
			} else {
				keep = append(keep, p)
			}
		}
		outstanding = keep
		if len(outstanding) > 0 && time.Since(lastProgress) > lostAfter {
			b.Errorf("%s: %d reports did not reach %s within %v of the last arrival (first: %v)",
				nw.name, len(outstanding), far.Site, lostAfter, ips[outstanding[0].i])
			nw.logPeers(b)
			break
		}
	}
	b.StopTimer()
	cpu, self := nw.sitesCPU(b)-cpu0, selfCPU(b)-self0
	nw.injected += sent

	if os.Getenv("DST_BENCH_DEBUG") != "" {
		b.Logf("latencies in injection order: %v", lat)
	}
	got := make([]time.Duration, 0, arrived)
	for _, d := range lat {
		if d > 0 {
			got = append(got, d)
		}
	}
	slices.Sort(got)
	if len(got) == 0 {
		b.Fatal("no report arrived")
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	p50, p99 := pct(got, 50), pct(got, 99)
	b.ReportMetric(float64(hops), "hops")
	b.ReportMetric(float64(len(got)), "reports")
	b.ReportMetric(ms(p50), "p50-ms")
	b.ReportMetric(ms(p99), "p99-ms")
	b.ReportMetric(ms(got[len(got)-1]), "max-ms")
	b.ReportMetric(ms(p50)/float64(hops), "p50-ms/hop")
	b.ReportMetric(ms(nw.cold), "cold-ms")
	b.ReportMetric(ms(dstcLat), "dstc-ms")
	b.ReportMetric(ms(pct(idle, 50)), "idle-p50-ms")
	b.ReportMetric(ms(cpu)/float64(sent), "site-cpu-ms/report")
	b.ReportMetric(ms(self)/float64(sent), "bench-cpu-ms/report")

	// Every site lists every report once: none lost on a side path,
	// none accepted twice over two paths.
	nw.checkCounts(b)
}

// sitesCPU is the CPU time (user and system) all the sites' dstd
// processes have used so far, from /proc/PID/stat.
func (nw *propNet) sitesCPU(b *testing.B) time.Duration {
	b.Helper()
	var total time.Duration
	for _, s := range nw.sites {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.Pid()))
		if err != nil {
			b.Fatalf("CPU time of %s: %v", s.Site, err)
		}
		// Fields after the command name, which is in parentheses and
		// may hold spaces: state is field 3, utime 14, stime 15.
		f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:]))
		for _, v := range f[11:13] {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatalf("CPU time of %s: %v", s.Site, err)
			}
			total += time.Duration(n) * time.Second / clockTicks
		}
	}
	return total
}

// clockTicks is the unit of the times in /proc/PID/stat (USER_HZ), 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// selfCPU is the CPU time this test process has used so far: what
// injecting and watching cost, beside the sites.
func selfCPU(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pct is the p-th percentile of sorted (nearest rank).
func pct(sorted []time.Duration, p int) time.Duration {
	i := (p*len(sorted) + 99) / 100 // ceil(p/100·n)
	return sorted[max(i, 1)-1]
}

// checkCounts waits until every site has accepted every report injected so
// far, lets late duplicates come in, and then checks that each site
// accepted each report exactly once and lists each address once. It
// reports the offers refused as duplicates per report (the cost of
// flooding over redundant paths).
func (nw *propNet) checkCounts(b *testing.B) {
	b.Helper()
	deadline := time.Now().Add(lostAfter)
	for i := 0; i < len(nw.sites); {
		if n := acceptedTotal(b, nw.sites[i]); n >= nw.injected {
			i++
			continue
		}
		if time.Now().After(deadline) {
			b.Errorf("%s: %s accepted %d reports, want %d", nw.name, nw.sites[i].Site, acceptedTotal(b, nw.sites[i]), nw.injected)
			nw.logPeers(b)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Duplicates still on their way would make the counts below pass
	// too early: wait until no report is in any feed queue.
	dsttest.WaitFeedsQuiet(b, nw.sites)
	var refused, deferred, sent int64
	for _, s := range nw.sites {
		if n := acceptedTotal(b, s); n != nw.injected {
			b.Errorf("%s: %s accepted %d reports, want %d (each exactly once)", nw.name, s.Site, n, nw.injected)
		}
		c := admin.NewClient(s.Admin)
		st, err := c.Status(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if st.Listings != nw.injected {
			b.Errorf("%s: %s has %d listings, want %d", nw.name, s.Site, st.Listings, nw.injected)
		}
		ps, err := c.Peers(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range ps {
			sent += p.Sent
			refused += p.Refused
			deferred += p.Deferred
		}
		c.Close()
	}
	if want := int64(nw.injected * (len(nw.sites) - 1)); sent != want {
		b.Errorf("%s: feeds delivered %d reports in all, want %d (each site receives each report once)", nw.name, sent, want)
	}
	if deferred > 0 {
		b.Logf("%s: %d offers deferred (431/436/lost connection)", nw.name, deferred)
	}
	b.ReportMetric(float64(refused)/float64(nw.injected), "dup-offers/report")
}

func (nw *propNet) logPeers(b *testing.B) {
	for _, s := range nw.sites {
		out, _ := s.Ctl("peers")
		b.Logf("%s peers:\n%s", s.Site, out)
	}
}

// acceptedTotal reads dst_reports_accepted_total from a site's /metrics.
func acceptedTotal(b *testing.B, s *dsttest.Dstd) int {
	b.Helper()
	v, ok := metricValue(b, s.Admin, "dst_reports_accepted_total")
	if !ok {
		b.Fatalf("no dst_reports_accepted_total at %s", s.Site)
	}
	return int(v)
}

// metricValue reads one unlabelled metric from dstd's /metrics.
func metricValue(b *testing.B, adminSocket, name string) (float64, bool) {
	b.Helper()
	hc := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", adminSocket)
	}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://dstd/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	return v, err == nil
}

// buildReport is the article dstc would post for a hit from ip.
func buildReport(b *testing.B, ip netip.Addr) []byte {
	b.Helper()
	a, err := report.New(report.Hit{SourceIP: ip, Arrival: time.Now(), Host: "trap.site-0.test", UserAgent: "bench/1",
		Message: []byte("From: <a@spam.example>\r\nTo: <trap@example.net>\r\nSubject: buy\r\n\r\nbuy now\r\n")})
	if err != nil {
		b.Fatal(err)
	}
	return a.Bytes()
}

// postAt posts art to the NNTP server at addr and returns when the 240 came.
func postAt(b *testing.B, addr string, art []byte) time.Time {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := nntp.Dial(ctx, addr, 30*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.Post(ctx, art); err != nil {
		b.Fatal(err)
	}
	return time.Now()
}

// waitListed returns the time from t0 to the line that lists ip in the
// report log lw follows.
func waitListed(b *testing.B, lw *logWatch, ip netip.Addr, t0 time.Time) time.Duration {
	b.Helper()
	at, err := lw.wait(ip, lostAfter)
	if err != nil {
		b.Fatal(err)
	}
	return at.Sub(t0)
}

// trapMessage is a spam that reached a trap through mx1.example.net,
// handed over by ip (a Postfix Received field).
func trapMessage(ip netip.Addr) []byte {
	var m bytes.Buffer
	now := time.Now().UTC().Format(time.RFC1123Z)
	fmt.Fprintf(&m, "Received: from spam.example (unknown [%s])\r\n\tby mx1.example.net (Postfix) with ESMTP id 4Bq7Yx0sXbz\r\n\tfor <trap@example.net>; %s\r\n", ip, now)
	fmt.Fprintf(&m, "From: <offers@spam.example>\r\nTo: <trap@example.net>\r\nSubject: You have won\r\nDate: %s\r\nMessage-ID: <%d@spam.example>\r\n\r\nClaim your prize.\r\n", now, time.Now().UnixNano())
	return m.Bytes()
}
