// Package feeds_test floods reports between real dstd processes on
// loopback over several topologies: every report reaches every site, and is
// listed once per site however many paths lead there.
package feeds_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/textproto"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/admin"
	"github.com/dst-traps/dst/internal/dkim"
	"github.com/dst-traps/dst/internal/dsttest"
	"github.com/dst-traps/dst/internal/report"
)

// network is a set of sites and the links between them.
type network struct {
	t     *testing.T
	sites []*dsttest.Dstd
}

// newNetwork makes n sites linked by edges (each edge feeds both ways):
// every site trusts every site's key, as sites of one network do.
func newNetwork(t *testing.T, n int, edges [][2]int, extra string) *network {
	t.Helper()
	nw := &network{t: t}
	for i := range n {
		nw.sites = append(nw.sites, dsttest.NewDstd(t, fmt.Sprintf("site-%d.test", i), ""))
	}
	var keyring strings.Builder
	for _, s := range nw.sites {
		keyring.WriteString(s.KeyringLine() + "\n")
	}
	peers := make([]strings.Builder, n)
	for _, e := range edges {
		for _, dir := range [][2]int{{e[0], e[1]}, {e[1], e[0]}} {
			from, to := nw.sites[dir[0]], nw.sites[dir[1]]
			fmt.Fprintf(&peers[dir[0]], "\n[[peer]]\nname = %q\naddresses = [\"127.0.0.1\"]\nfeed = %q\n", to.Site, to.NNTP)
			_ = from
		}
	}
	for i, s := range nw.sites {
		s.Reconfigure("[policy]\nallow_documentation = true\n" + extra + peers[i].String())
		if err := os.WriteFile(filepath.Join(s.Dir, "keyring"), []byte(keyring.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return nw
}

func (nw *network) start() {
	for _, s := range nw.sites {
		s.Start()
	}
}

func chain(n int) [][2]int {
	var e [][2]int
	for i := 0; i+1 < n; i++ {
		e = append(e, [2]int{i, i + 1})
	}
	return e
}

func ring(n int) [][2]int { return append(chain(n), [2]int{n - 1, 0}) }

func mesh(n int) [][2]int {
	var e [][2]int
	for i := range n {
		for j := i + 1; j < n; j++ {
			e = append(e, [2]int{i, j})
		}
	}
	return e
}

// inject posts a report for ip at site i, as dstc there would, and
// returns its Message-ID (which the injecting dstd keeps).
func (nw *network) inject(i int, ip string) string {
	nw.t.Helper()
	return nw.sites[i].Inject(ip)
}

func listed(s *dsttest.Dstd, ip string) bool {
	_, code := s.Ctl("lookup", ip)
	return code == 0
}

// waitEverywhere waits until every site lists ip.
func (nw *network) waitEverywhere(ip string, sites ...int) {
	nw.t.Helper()
	if sites == nil {
		for i := range nw.sites {
			sites = append(sites, i)
		}
	}
	dsttest.WaitFor(nw.t, 60*time.Second, ip+" listed at every site", func() bool {
		for _, i := range sites {
			if !listed(nw.sites[i], ip) {
				return false
			}
		}
		return true
	})
}

// accepted reads dst_reports_accepted_total of a site.
func accepted(t *testing.T, s *dsttest.Dstd) int {
	t.Helper()
	m := metricsOf(t, s)
	re := regexp.MustCompile(`(?m)^dst_reports_accepted_total (\d+)`)
	sm := re.FindStringSubmatch(m)
	if sm == nil {
		t.Fatalf("no dst_reports_accepted_total at %s", s.Site)
	}
	n, _ := strconv.Atoi(sm[1])
	return n
}

func metricsOf(t *testing.T, s *dsttest.Dstd) string {
	t.Helper()
	return s.Metrics()
}

// flood injects one report at each of the given sites and checks that each
// is listed everywhere and accepted exactly once per site.
func (nw *network) flood(at []int, base int) {
	nw.t.Helper()
	var ips []string
	for k, i := range at {
		ip := fmt.Sprintf("203.0.113.%d", base+k)
		nw.inject(i, ip)
		ips = append(ips, ip)
	}
	for _, ip := range ips {
		nw.waitEverywhere(ip)
	}
	// Late duplicates must be refused, not listed again: wait until none
	// can still be on its way, then count.
	dsttest.WaitFeedsQuiet(nw.t, nw.sites)
	for _, s := range nw.sites {
		if got := accepted(nw.t, s); got != len(at) {
			nw.t.Errorf("%s accepted %d reports, want %d (each exactly once)", s.Site, got, len(at))
		}
		out, _ := s.Ctl("lookup", ips[0])
		if !strings.Contains(out, "hits             1") {
			nw.t.Errorf("%s: %s listed with more than one hit:\n%s", s.Site, ips[0], out)
		}
	}
}

// peers is what "dstctl peers" shows of s: its outgoing feeds.
func peers(t *testing.T, s *dsttest.Dstd) []admin.PeerStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ps, err := admin.NewClient(s.Admin).Peers(ctx)
	if err != nil {
		t.Fatalf("peers of %s: %v", s.Site, err)
	}
	return ps
}

func TestChain5(t *testing.T) {
	nw := newNetwork(t, 5, chain(5), "")
	nw.start()
	nw.flood([]int{0, 4, 2}, 10)
}

func TestRing5(t *testing.T) {
	nw := newNetwork(t, 5, ring(5), "")
	nw.start()
	nw.flood([]int{0, 3}, 20)
}

func TestMesh6(t *testing.T) {
	nw := newNetwork(t, 6, mesh(6), "")
	nw.start()
	nw.flood([]int{0, 5, 2}, 30)
}

// TestBacklog stops the middle of a chain; reports injected meanwhile wait
// in its neighbours' queues and reach the far end once it is back.
func TestBacklog(t *testing.T) {
	nw := newNetwork(t, 3, chain(3), "")
	nw.start()
	nw.sites[1].Stop()
	var injected [3]time.Time
	injected[0] = time.Now()
	nw.inject(0, "203.0.113.40")
	injected[2] = time.Now()
	nw.inject(2, "203.0.113.41")
	// Rather than wait a while for a report to cross wrongly: wait until
	// each end has tried to pass its report to site 1 and failed (an
	// error since it was injected), and
	// still holds it for site 1 alone. A report that went round site 1
	// would have been offered by then.
	for _, i := range []int{0, 2} {
		dsttest.WaitFor(t, 30*time.Second, nw.sites[i].Site+" to fail to reach the stopped site 1", func() bool {
			ps := peers(t, nw.sites[i])
			return len(ps) == 1 && ps[0].Name == "site-1.test" && ps[0].Depth == 1 && ps[0].LastErrorTime.After(injected[i])
		})
	}
	if listed(nw.sites[2], "203.0.113.40") || listed(nw.sites[0], "203.0.113.41") {
		t.Fatal("a report crossed a stopped site")
	}
	out, _ := nw.sites[0].Ctl("peers")
	if !strings.Contains(out, "site-1.test") || strings.Contains(out, "connected (") {
		t.Errorf("dstctl peers at site 0 while site 1 is down:\n%s", out)
	}
	nw.sites[1].Start()
	nw.waitEverywhere("203.0.113.40")
	nw.waitEverywhere("203.0.113.41")
	// Killed (not stopped) with a backlog of its own.
	nw.sites[2].Kill()
	nw.inject(0, "203.0.113.42")
	nw.waitEverywhere("203.0.113.42", 0, 1)
	nw.sites[2].Start()
	nw.waitEverywhere("203.0.113.42")
}

// TestUnconfiguredPeerRefused: a host that is not a peer cannot feed.
func TestUnconfiguredPeerRefused(t *testing.T) {
	nw := newNetwork(t, 2, chain(2), "")
	nw.start()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.9")}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", nw.sites[0].NNTP)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := textproto.NewConn(conn)
	// Neither a peer nor in nntp.post_allow (empty by default): refused
	// at once, and told what a local program should do instead.
	if code, msg, _ := c.ReadCodeLine(0); code != 502 || !strings.Contains(msg, "nntp.post_allow") {
		t.Errorf("greeting to a host that is not a peer: %d %s, want 502 naming nntp.post_allow", code, msg)
	}
	// Even where it may post (a loopback address in post_allow), it may
	// not feed.
	nw2 := newNetwork(t, 2, chain(2), "[nntp]\npost_allow = [\"127.0.0.9\"]\n")
	nw2.start()
	conn, err = d.Dial("tcp", nw2.sites[0].NNTP)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c = textproto.NewConn(conn)
	if code, msg, _ := c.ReadCodeLine(0); code != 200 {
		t.Fatalf("greeting to a host in post_allow: %d %s, want 200", code, msg)
	}
	for _, cmd := range []string{"IHAVE <x@site-9.test>", "CHECK <x@site-9.test>", "MODE STREAM"} {
		c.PrintfLine("%s", cmd)
		code, msg, _ := c.ReadCodeLine(0)
		if code != 502 && code != 480 {
			t.Errorf("%s from a host that is not a peer: %d %s, want 502 or 480", cmd, code, msg)
		}
	}
}

// TestAlteredHeaderRefused: a relay that alters a signed header (here the
// test, acting as site-1 towards site-0) makes the report fail verification.
func TestAlteredHeaderRefused(t *testing.T) {
	nw := newNetwork(t, 2, chain(2), "")
	nw.start()
	key, err := dkim.LoadPrivateKey(filepath.Join(nw.sites[1].Dir, "dkim.key"))
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := dkim.NewSigner("site-1.test", "dst", key)
	for i, tc := range []struct{ name, from, to string }{
		{"Subject", "Subject: trap hit ", "Subject: trap hit 1"},
		{"Date", "Date: ", "Date: Mon, 30 Nov 2026 00:00:00 +0000\r\nX-Old-Date: "},
		{"Newsgroups", "Newsgroups: dst.reports", "Newsgroups: dst.reports,dst.other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ip := fmt.Sprintf("203.0.113.%d", 60+i)
			a, _ := report.New(report.Hit{SourceIP: netip.MustParseAddr(ip), Arrival: time.Now(), Host: "trap.test", UserAgent: "test",
				Message: []byte("Subject: spam\r\n\r\nbuy\r\n")})
			a.Set("From", "DST <dst@site-1.test>")
			signed, err := signer.Sign(a.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			altered := bytes.Replace(signed, []byte(tc.from), []byte(tc.to), 1)
			if bytes.Equal(altered, signed) {
				t.Fatal("nothing altered")
			}
			altered = append([]byte("Path: site-1.test!not-for-mail\r\n"), altered...)
			if code := dsttest.IHave(t, nw.sites[0].NNTP, altered); code != 437 {
				t.Errorf("IHAVE of an article whose %s was altered: %d, want 437", tc.name, code)
			}
			if listed(nw.sites[0], ip) {
				t.Error("an altered report was listed")
			}
		})
	}
	if m := metricsOf(t, nw.sites[0]); !strings.Contains(m, `dst_reports_refused_total{reason="signature"}`) {
		t.Errorf("signature refusals not counted")
	}
}

// TestAllowListDoesNotCutTheChain: the middle site of a chain has the
// address on its allow-list. It does not list it, but relays the report, so
// the site behind it does.
func TestAllowListDoesNotCutTheChain(t *testing.T) {
	nw := newNetwork(t, 3, chain(3), "")
	mid := nw.sites[1]
	if err := os.MkdirAll(mid.Dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mid.Dir, "allow"), []byte("203.0.113.50 # a partner's relay\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	nw.start()
	nw.inject(0, "203.0.113.50")
	nw.waitEverywhere("203.0.113.50", 0, 2)
	if listed(mid, "203.0.113.50") {
		t.Errorf("%s listed an address on its allow-list", mid.Site)
	}
	if !strings.Contains(mid.Log(), "report relayed, not listed here") {
		t.Errorf("%s does not log why it relayed without listing", mid.Site)
	}
}
