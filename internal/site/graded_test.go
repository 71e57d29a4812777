package site

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dst-traps/dst/internal/admin"
	"github.com/dst-traps/dst/internal/config"
	"github.com/dst-traps/dst/internal/dkim"
	"github.com/dst-traps/dst/internal/dsttest"
)

// answerA is the address of ip's A record at the site's DNS server, or
// the rcode's name when there is none.
func answerA(t *testing.T, s *Site, ip string) string {
	t.Helper()
	rev, err := dns.ReverseAddr(ip)
	if err != nil {
		t.Fatal(err)
	}
	m := new(dns.Msg)
	m.SetQuestion(strings.TrimSuffix(rev, "in-addr.arpa.")+"bl.test.", dns.TypeA)
	c := &dns.Client{Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, s.Addrs().DNS[0].String())
	if err != nil {
		t.Fatal(err)
	}
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			return a.A.String()
		}
	}
	return dns.RcodeToString[r.Rcode]
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// TestSimulate: with policy.simulate a report is stored, logged "would
// list" (dstd's log, the report log, the admin API), and published
// nowhere: DNS answers NXDOMAIN and the rbldnsd file has only the test
// point. Restarted without simulate, the same store is published.
func TestSimulate(t *testing.T) {
	dir := t.TempDir()
	ip4 := filepath.Join(dir, "dst-ip4")
	reportLog := filepath.Join(dir, "reports.log")
	cfg := testConfig(t, "a.test", func(c *config.Config) {
		documentation(c)
		c.Policy.Simulate = true
		c.DNS.RbldnsdIP4 = ip4
		c.Actions.Log.File = reportLog
	})
	r := start(t, cfg)
	if !strings.Contains(r.log.String(), "policy.simulate is on") {
		t.Error("no warning at start that the site publishes nothing")
	}
	post(t, r.Site, "192.0.2.7")
	if !listed(t, r.Site, "192.0.2.7") {
		t.Fatal("the report is not stored as a listing")
	}
	// The commit's observer ran before POST was answered.
	if !strings.Contains(r.log.String(), `msg="would list (policy.simulate: not published)" ip=192.0.2.7`) ||
		!strings.Contains(r.log.String(), "origins=[a.test]") {
		t.Errorf("no \"would list\" log line with the IP and origins:\n%s", r.log.String())
	}
	if got := answerA(t, r.Site, "192.0.2.7"); got != "NXDOMAIN" {
		t.Errorf("simulating, DNS answers %s for 192.0.2.7; want NXDOMAIN", got)
	}
	if got := answerA(t, r.Site, "127.0.0.2"); got != "127.0.0.2" {
		t.Errorf("test point 127.0.0.2: %s", got)
	}
	dsttest.WaitFor(t, 10*time.Second, "the report log to say listed=simulated", func() bool {
		return strings.Contains(readFile(t, reportLog), "ip=192.0.2.7 origin=a.test") && strings.Contains(readFile(t, reportLog), "listed=simulated")
	})
	c := admin.NewClient(cfg.Admin.Socket)
	l, found, err := c.Lookup(context.Background(), netip.MustParseAddr("192.0.2.7"))
	if err != nil || !found || !l.Simulated {
		t.Errorf("admin lookup: %+v %v %v; want a listing marked simulated", l, found, err)
	}
	// The export is rewritten after the change (the observer woke it):
	// wait for a file newer than the report, then it must hold no entry.
	posted := time.Now()
	dsttest.WaitFor(t, 10*time.Second, "the rbldnsd export after the report", func() bool {
		st, err := os.Stat(ip4)
		return err == nil && st.ModTime().After(posted)
	})
	if f := readFile(t, ip4); strings.Contains(f, "192.0.2.7") || !strings.Contains(f, "\n127.0.0.2\n") {
		t.Errorf("simulating, the rbldnsd file is:\n%s", f)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	// Enforcing: the listing in the store is published at start.
	cfg.Policy.Simulate = false
	r2 := start(t, cfg)
	if got := answerA(t, r2.Site, "192.0.2.7"); got != "127.0.0.2" {
		t.Errorf("after the restart without simulate, DNS answers %s; want 127.0.0.2", got)
	}
	dsttest.WaitFor(t, 10*time.Second, "the rbldnsd export to list 192.0.2.7", func() bool {
		return strings.Contains(readFile(t, ip4), "\n192.0.2.7 :127.0.0.2:")
	})
	l, found, err = admin.NewClient(cfg.Admin.Socket).Lookup(context.Background(), netip.MustParseAddr("192.0.2.7"))
	if err != nil || !found || l.Simulated {
		t.Errorf("admin lookup after the restart: %+v %v %v; want a published listing", l, found, err)
	}
	post(t, r2.Site, "192.0.2.8")
	if got := answerA(t, r2.Site, "192.0.2.8"); got != "127.0.0.2" {
		t.Errorf("a new report without simulate: DNS answers %s; want 127.0.0.2", got)
	}
	if strings.Contains(r2.log.String(), "would list") {
		t.Errorf("enforcing, the log says \"would list\":\n%s", r2.log.String())
	}
}

// TestGraded: with dns.graded, B answers 127.0.0.2 for an address one
// origin (A) reported, and 127.0.0.3 once a second origin (B itself)
// reports it too, in the embedded server and the rbldnsd export.
func TestGraded(t *testing.T) {
	cfgA := testConfig(t, "a.test", documentation)
	var kg bytes.Buffer
	if err := Keygen(cfgA, &kg); err != nil {
		t.Fatal(err)
	}
	key, err := dkim.LoadPrivateKey(cfgA.DKIM.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	ip4 := filepath.Join(t.TempDir(), "dst-ip4")
	cfgB := testConfig(t, "b.test", func(c *config.Config) {
		documentation(c)
		c.DNS.Graded = true
		c.DNS.RbldnsdIP4 = ip4
		c.Peers = []config.Peer{{Name: "a.test", Addresses: config.Prefixes{{Prefix: netip.MustParsePrefix("127.0.0.1/32")}}}}
	})
	line := dkim.KeyringLine("a.test", cfgA.DKIM.Selector, key.Public().(ed25519.PublicKey))
	if err := os.MkdirAll(filepath.Dir(cfgB.DKIM.Keyring), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgB.DKIM.Keyring, []byte(line+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	b := start(t, cfgB)
	cfgA.Peers = []config.Peer{{Name: "b.test", Feed: config.MustParseHostPort(b.Addrs().NNTP[0].String())}}
	a := start(t, cfgA)

	post(t, a.Site, "192.0.2.7")
	dsttest.WaitFor(t, 20*time.Second, "A's report to be listed at B", func() bool { return listed(t, b.Site, "192.0.2.7") })
	if got := answerA(t, b.Site, "192.0.2.7"); got != "127.0.0.2" {
		t.Errorf("one origin: B answers %s, want 127.0.0.2", got)
	}
	dsttest.WaitFor(t, 10*time.Second, "B's rbldnsd export to grade 192.0.2.7 at 127.0.0.2", func() bool {
		return strings.Contains(readFile(t, ip4), "\n192.0.2.7 :127.0.0.2:")
	})
	post(t, b.Site, "192.0.2.7")
	if got := answerA(t, b.Site, "192.0.2.7"); got != "127.0.0.3" {
		t.Errorf("two origins: B answers %s, want 127.0.0.3", got)
	}
	dsttest.WaitFor(t, 10*time.Second, "B's rbldnsd export to grade 192.0.2.7 at 127.0.0.3", func() bool {
		return strings.Contains(readFile(t, ip4), "\n192.0.2.7 :127.0.0.3:")
	})
	// The test points do not move.
	if got := answerA(t, b.Site, "127.0.0.2"); got != "127.0.0.2" {
		t.Errorf("test point 127.0.0.2: %s", got)
	}
	if got := answerA(t, b.Site, "127.0.0.1"); got != "NXDOMAIN" {
		t.Errorf("test point 127.0.0.1: %s", got)
	}
}
