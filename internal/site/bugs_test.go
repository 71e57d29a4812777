package site

import (
	"context"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/config"
	"github.com/dst-traps/dst/internal/dsttest"
)

// A setting turned on by a reload stays on after dstctl delist -allow,
// which rebuilds the policy: it used to rebuild it from the configuration
// of the start, and so undid the reload.
func TestReloadSurvivesDelistAllow(t *testing.T) {
	cfg := testConfig(t, "a.test", nil)
	r := start(t, cfg)
	next := *cfg
	next.Policy.AllowDocumentation = true
	if err := r.Reload(&next); err != nil {
		t.Fatal(err)
	}
	post(t, r.Site, "192.0.2.10")
	if !listed(t, r.Site, "192.0.2.10") {
		t.Fatal("a documentation address is not listed after the reload turned allow_documentation on")
	}
	if _, err := r.Delist(context.Background(), netip.MustParseAddr("192.0.2.10"), true); err != nil {
		t.Fatal(err)
	}
	post(t, r.Site, "192.0.2.11")
	if !listed(t, r.Site, "192.0.2.11") {
		t.Error("after delist -allow, a documentation address is no longer listed: the delisting undid the reload")
	}
	if err := tryPost(t, r.Site, "192.0.2.10"); err == nil || !strings.Contains(err.Error(), "allow-list") {
		t.Errorf("a report of 192.0.2.10, delisted with -allow: %v; want it refused, on the allow-list", err)
	}
}

// Reloads and delistings at once: each keeps what the other did.
func TestReloadDelistRace(t *testing.T) {
	cfg := testConfig(t, "a.test", nil)
	r := start(t, cfg)
	next := *cfg
	next.Policy.AllowDocumentation = true
	done := make(chan error, 20)
	for i := range 10 {
		go func() { done <- r.Reload(&next) }()
		go func() {
			_, err := r.Delist(context.Background(), netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), true)
			done <- err
		}()
	}
	for range 20 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	pol := r.in.Policy()
	for i := range 10 {
		ip := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		if err := pol.Check(ip); err == nil {
			t.Errorf("%s, delisted with -allow, may be listed", ip)
		}
	}
	if err := pol.Check(netip.MustParseAddr("192.0.2.1")); err != nil {
		t.Errorf("allow_documentation, turned on by the reloads, is off: %v", err)
	}
}

// An rbldnsd export that cannot be written is logged (it used to fail in
// silence), and retried.
func TestRbldnsdExportErrorLogged(t *testing.T) {
	cfg := testConfig(t, "a.test", func(c *config.Config) {
		c.DNS.RbldnsdIP4 = filepath.Join(t.TempDir(), "missing", "dst.ip4")
	})
	r := start(t, cfg)
	dsttest.WaitFor(t, 10*time.Second, "the failed rbldnsd export to be logged", func() bool {
		return strings.Contains(r.log.String(), "rbldnsd export failed") && strings.Contains(r.log.String(), "missing")
	})
}

// With threshold 2, an address reported once is remembered for
// policy.window, then forgotten by the sweep: its sightings used to be
// kept for ever, and dst_store_pending to grow.
func TestSweepPrunesSightings(t *testing.T) {
	cfg := testConfig(t, "a.test", func(c *config.Config) {
		documentation(c)
		c.Policy.Threshold = 2
	})
	r := start(t, cfg)
	post(t, r.Site, "192.0.2.20")
	pending := func() int {
		st, err := r.db.Stats()
		if err != nil {
			t.Fatal(err)
		}
		return int(st.Pending)
	}
	if listed(t, r.Site, "192.0.2.20") || pending() != 1 {
		t.Fatalf("after one report with threshold 2: listed %v, pending %d; want not listed, 1 pending", listed(t, r.Site, "192.0.2.20"), pending())
	}
	r.sweepOnce(time.Now().Add(cfg.Policy.Window.Duration/2), true)
	if pending() != 1 {
		t.Fatalf("the sighting was pruned within policy.window: pending %d", pending())
	}
	r.sweepOnce(time.Now().Add(cfg.Policy.Window.Duration+time.Minute), true)
	if n := pending(); n != 0 {
		t.Errorf("pending = %d after policy.window; want 0: the sighting of an address reported once is never forgotten", n)
	}
}
