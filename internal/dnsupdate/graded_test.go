package dnsupdate

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dst-traps/dst/internal/dnsutil"
	"github.com/dst-traps/dst/internal/store"
)

// TestAnswerAndSimulate: Answer gives each listing its own A record, and
// Simulate takes no event at all.
func TestAnswerAndSimulate(t *testing.T) {
	exp := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	grade := map[string]int{"192.0.2.1": 1, "192.0.2.2": 2, "192.0.2.9": 9}
	c := Config{Server: "127.0.0.1:53", Zone: "bl.test", KeyName: "k", Secret: "c2VjcmV0",
		Answer: func(ip netip.Addr, _ store.Event) netip.Addr { return dnsutil.GradedA(grade[ip.String()]) }}
	u, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]string{"192.0.2.1": "127.0.0.2", "192.0.2.2": "127.0.0.3", "192.0.2.9": "127.0.0.9"} {
		a, _ := u.records(netip.MustParseAddr(ip), listed(ip, exp))
		if a.A.String() != want {
			t.Errorf("%s: A %s, want %s", ip, a.A, want)
		}
	}
	evs := []store.Event{listed("192.0.2.1", exp), {Kind: store.EventExpired, IP: netip.MustParseAddr("192.0.2.1")},
		{Kind: store.EventDelisted, IP: netip.MustParseAddr("192.0.2.1")}}
	for _, ev := range evs {
		if !u.Wants(ev) {
			t.Errorf("publishing: %v not wanted", ev.Kind)
		}
	}
	c.Simulate = true
	sim, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if sim.Wants(ev) {
			t.Errorf("simulating: %v wanted", ev.Kind)
		}
	}
}

// TestBINDGraded: graded A records reach BIND through UPDATE and resync; a
// change of grade alone is rewritten by the listing's next event and found
// by a resync; in simulation a resync takes every listing record away.
func TestBINDGraded(t *testing.T) {
	exp := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	e := startEnv(t, "1.2.0.192 300 IN A 127.0.0.2", "1.2.0.192 300 IN TXT \"old\"")
	var mu sync.Mutex
	grade := map[string]int{"192.0.2.1": 3, "192.0.2.2": 1, "2001:db8::7": 12}
	answer := func(ip netip.Addr, _ store.Event) netip.Addr {
		mu.Lock()
		defer mu.Unlock()
		return dnsutil.GradedA(grade[ip.String()])
	}
	newU := func(simulate bool) *Updater {
		u, err := New(Config{Server: e.bind.Addr(), Zone: testZone, KeyName: e.key.Name, Secret: e.key.Secret,
			Log: e.log(), Timeout: 5 * time.Second, Answer: answer, Simulate: simulate})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	want := func(fn func(netip.Addr, store.Event) error) error {
		for _, ip := range []string{"192.0.2.1", "192.0.2.2", "2001:db8::7"} {
			if err := fn(netip.MustParseAddr(ip), listed(ip, exp)); err != nil {
				return err
			}
		}
		return nil
	}
	check := func(when string, wantA map[string]string) {
		t.Helper()
		for ip, w := range wantA {
			if a, _, rc := e.lookup(t, ip); a != w {
				t.Errorf("%s: %s answers A %q (%s), want %q", when, ip, a, dns.RcodeToString[rc], w)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u := newU(false)
	if err := u.Resync(ctx, want); err != nil {
		t.Fatal(err)
	}
	if r := u.LastResync(); r.Added != 2 || r.Fixed != 1 {
		t.Errorf("first resync %+v, want 2 added and 1 fixed (the TXT)", r)
	}
	check("after resync", map[string]string{"192.0.2.1": "127.0.0.4", "192.0.2.2": "127.0.0.2", "2001:db8::7": "127.0.0.9"})

	// A second operator corroborates 192.0.2.2: its next event rewrites A.
	mu.Lock()
	grade["192.0.2.2"] = 2
	mu.Unlock()
	if err := u.DoBatch(ctx, []store.Event{listed("192.0.2.2", exp)}); err != nil {
		t.Fatal(err)
	}
	check("after the event", map[string]string{"192.0.2.2": "127.0.0.3"})
	// A grade changed behind the UPDATEs' back is a difference for resync.
	mu.Lock()
	grade["192.0.2.1"] = 1
	mu.Unlock()
	if err := u.Resync(ctx, want); err != nil {
		t.Fatal(err)
	}
	if r := u.LastResync(); r != (ResyncResult{Wanted: 3, Present: 3, Fixed: 1, Updates: 1}) {
		t.Errorf("resync after a grade change %+v, want one fixed", r)
	}
	check("after the second resync", map[string]string{"192.0.2.1": "127.0.0.2"})

	// Simulation: the resync removes what was published, and an event
	// sent by hand publishes nothing.
	sim := newU(true)
	if err := sim.Resync(ctx, want); err != nil {
		t.Fatal(err)
	}
	if r := sim.LastResync(); r != (ResyncResult{Present: 3, Removed: 3, Updates: 1}) {
		t.Errorf("simulating resync %+v, want 3 removed", r)
	}
	if err := sim.DoBatch(ctx, []store.Event{listed("192.0.2.2", exp)}); err != nil {
		t.Fatal(err)
	}
	for _, ip := range []string{"192.0.2.1", "192.0.2.2", "2001:db8::7"} {
		if _, _, rc := e.lookup(t, ip); rc != dns.RcodeNameError {
			t.Errorf("simulating: %s answers %s, want NXDOMAIN", ip, dns.RcodeToString[rc])
		}
	}
	// And leaving simulation publishes them all again.
	if err := u.Resync(ctx, want); err != nil {
		t.Fatal(err)
	}
	check("after simulation", map[string]string{"192.0.2.1": "127.0.0.2", "192.0.2.2": "127.0.0.3", "2001:db8::7": "127.0.0.9"})
}
