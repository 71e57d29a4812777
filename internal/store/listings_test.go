package store

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// listAt lists ip with a report at t0+at, so it expires at t0+at+1h.
func listAt(t *testing.T, db *DB, id, ip string, at time.Duration) {
	t.Helper()
	if out, _, err := db.AddReport(report(id, ip, "a"), params(t0.Add(at), 1)); err != nil || out != Listed {
		t.Fatalf("AddReport(%s) = %v, %v", ip, out, err)
	}
}

func TestExpire(t *testing.T) {
	db := openTest(t)
	if _, ok, err := db.NextExpiry(); err != nil || ok {
		t.Errorf("NextExpiry of an empty store = %v, %v", ok, err)
	}
	// Expiries: .3 at +1h, .1 at +2h, 2001:db8::2 at +2h, .4 at +3h.
	listAt(t, db, "<1>", "203.0.113.1", time.Hour)
	listAt(t, db, "<2>", "2001:db8::2", time.Hour)
	listAt(t, db, "<3>", "203.0.113.3", 0)
	listAt(t, db, "<4>", "203.0.113.4", 2*time.Hour)
	subscribe(t, db, "log", nil)
	subscribe(t, db, "dns", nil)
	if err := db.Subscribe("log", nil); err == nil {
		t.Error("a second subscriber of queue log was accepted")
	}

	for _, tc := range []struct {
		now   time.Duration
		limit int
		want  []string
		next  time.Duration // -1: none left
	}{
		{59 * time.Minute, 10, nil, time.Hour},
		{time.Hour, 10, []string{"203.0.113.3"}, 2 * time.Hour}, // expiry == now is due
		{150 * time.Minute, 1, []string{"203.0.113.1"}, 2 * time.Hour},
		{150 * time.Minute, 10, []string{"2001:db8::2"}, 3 * time.Hour},
		{10 * time.Hour, 10, []string{"203.0.113.4"}, -1},
		{10 * time.Hour, 10, nil, -1},
	} {
		got, err := db.Expire(t0.Add(tc.now), tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		var ips []string
		for _, l := range got {
			ips = append(ips, l.IP.String())
			if _, ok, _ := db.Lookup(l.IP); ok {
				t.Errorf("%s still listed after Expire", l.IP)
			}
		}
		if !reflect.DeepEqual(ips, tc.want) {
			t.Errorf("Expire(+%v, %d) = %v, want %v", tc.now, tc.limit, ips, tc.want)
		}
		next, ok, err := db.NextExpiry()
		if err != nil || ok != (tc.next >= 0) || (ok && !next.Equal(t0.Add(tc.next))) {
			t.Errorf("after Expire(+%v): NextExpiry = %v, %v, %v; want +%v", tc.now, next.Sub(t0), ok, err, tc.next)
		}
	}
	// Both queues got one event per expired listing, in order.
	for _, q := range []string{"log", "dns"} {
		items, err := db.QueueNext(q, t0.Add(24*time.Hour), 100, nil)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, it := range items {
			if it.Event.Kind != EventExpired {
				t.Errorf("queue %s: event %v", q, it.Event.Kind)
			}
			got = append(got, it.Event.IP.String())
		}
		want := []string{"203.0.113.3", "203.0.113.1", "2001:db8::2", "203.0.113.4"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("queue %s: expired events for %v, want %v", q, got, want)
		}
	}
	if s, _ := db.Stats(); s.Listings != 0 {
		t.Errorf("Listings = %d after everything expired", s.Listings)
	}
	if _, err := db.Expire(t0, 0); err == nil {
		t.Error("Expire accepted limit 0")
	}
}

// TestExpireAfterExtension checks that an extended listing is expired by
// its new expiry, not the old index entry. Only a new episode (a hit more
// than EpisodeGap after the last) extends, so the lifetime here is longer
// than the gap.
func TestExpireAfterExtension(t *testing.T) {
	db := openTest(t)
	long := func(at time.Duration) IngestParams {
		p := params(t0.Add(at), 1)
		p.ExpireBase, p.ExpireMax = 48*time.Hour, 400*time.Hour
		return p
	}
	if out, _, err := db.AddReport(report("<1>", "203.0.113.1", "a"), long(0)); err != nil || out != Listed {
		t.Fatalf("first report = %v, %v", out, err)
	}
	if out, _, err := db.AddReport(report("<2>", "203.0.113.1", "b"), long(25*time.Hour)); err != nil || out != Extended {
		t.Fatalf("second report = %v, %v", out, err)
	}
	if got, err := db.Expire(t0.Add(48*time.Hour), 10); err != nil || len(got) != 0 {
		t.Errorf("Expire at the old expiry removed %v, %v", got, err)
	}
	if got, err := db.Expire(t0.Add(121*time.Hour), 10); err != nil || len(got) != 1 {
		t.Errorf("Expire at the new expiry removed %v, %v", got, err)
	}
}

func TestDelist(t *testing.T) {
	db := openTest(t)
	listAt(t, db, "<1>", "203.0.113.1", 0)
	// A pending address: one origin of the two needed.
	if out, _, err := db.AddReport(report("<2>", "2001:db8::5", "a"), params(t0, 2)); err != nil || out != Pending {
		t.Fatalf("pending report = %v, %v", out, err)
	}

	for _, tc := range []struct {
		ip        string
		wantFound bool
	}{
		{"203.0.113.1", true},
		{"203.0.113.1", false}, // already gone
		{"2001:db8::5", false}, // pending only: cleared, but nothing was listed
		{"198.51.100.9", false},
	} {
		if tc.ip == "203.0.113.1" && tc.wantFound {
			subscribe(t, db, "dns", nil)
		}
		found, err := db.Delist(netip.MustParseAddr(tc.ip), t0.Add(time.Minute), "dstctl")
		if err != nil || found != tc.wantFound {
			t.Errorf("Delist(%s) = %v, %v; want %v", tc.ip, found, err, tc.wantFound)
		}
	}
	s, _ := db.Stats()
	if s.Listings != 0 || s.Pending != 0 {
		t.Errorf("Stats after Delist = %+v", s)
	}
	if _, ok, _ := db.NextExpiry(); ok {
		t.Error("expiry index entry left behind")
	}
	items, err := db.QueueNext("dns", t0.Add(time.Hour), 10, nil)
	if err != nil || len(items) != 1 {
		t.Fatalf("queue dns = %+v, %v; want one event", items, err)
	}
	want := Event{Kind: EventDelisted, Time: t0.Add(time.Minute), IP: netip.MustParseAddr("203.0.113.1"), By: "dstctl"}
	if !reflect.DeepEqual(items[0].Event, want) {
		t.Errorf("event = %+v, want %+v", items[0].Event, want)
	}
	// The cleared pending address starts again from nothing.
	if out, _, _ := db.AddReport(report("<3>", "2001:db8::5", "b"), params(t0.Add(2*time.Minute), 2)); out != Pending {
		t.Errorf("report after delisting a pending address = %v, want pending", out)
	}
	if _, err := db.Delist(netip.Addr{}, t0, "x"); err == nil {
		t.Error("Delist accepted an invalid address")
	}
}

func TestPruneSightings(t *testing.T) {
	db := openTest(t)
	for i, at := range []time.Duration{0, 10 * time.Minute, 70 * time.Minute} {
		ip := fmt.Sprintf("203.0.113.%d", i+1)
		if out, _, err := db.AddReport(report(fmt.Sprintf("<%d>", i), ip, "a"), params(t0.Add(at), 2)); err != nil || out != Pending {
			t.Fatalf("AddReport = %v, %v", out, err)
		}
	}
	// .1 is seen again later, which moves it in the index.
	if _, _, err := db.AddReport(report("<again>", "203.0.113.1", "a"), params(t0.Add(65*time.Minute), 2)); err != nil {
		t.Fatal(err)
	}
	n, err := db.PruneSightings(t0.Add(time.Hour), 10)
	if err != nil || n != 1 {
		t.Errorf("PruneSightings = %d, %v; want 1 (203.0.113.2)", n, err)
	}
	if s, _ := db.Stats(); s.Pending != 2 {
		t.Errorf("Pending = %d, want 2", s.Pending)
	}
	// .1 still counts: a second origin lists it.
	if out, _, _ := db.AddReport(report("<b>", "203.0.113.1", "b"), params(t0.Add(80*time.Minute), 2)); out != Listed {
		t.Errorf("second origin for 203.0.113.1 = %v, want listed", out)
	}
}

func TestForEachListing(t *testing.T) {
	db := openTest(t)
	ips := []string{"2001:db8::1", "203.0.113.2", "192.0.2.1", "203.0.113.10"}
	for i, ip := range ips {
		listAt(t, db, fmt.Sprintf("<%d>", i), ip, 0)
	}
	var got []string
	if err := db.ForEachListing(func(l Listing) error {
		got = append(got, l.IP.String())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// 16-byte order puts ::ffff:0:0/96 (IPv4) before 2001:db8::/32.
	want := []string{"192.0.2.1", "203.0.113.2", "203.0.113.10", "2001:db8::1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ForEachListing order %v, want %v", got, want)
	}

	stop := errors.New("stop")
	n := 0
	err := db.ForEachListing(func(Listing) error { n++; return stop })
	if err != stop || n != 1 {
		t.Errorf("ForEachListing with failing fn = %v after %d calls; want fn's own error after 1", err, n)
	}
}

// TestForEachListingLastMessageID lists addresses whose last reports
// arrived in an order unrelated to theirs: every listing comes once, in
// address order, with its own last Message-ID (read from the arrivals
// log), as Lookup says, also once the history has forgotten some of them.
func TestForEachListingLastMessageID(t *testing.T) {
	db := openTest(t)
	const n = 50
	var want []Listing
	for i := range n {
		// Addresses in an order unrelated to arrival: a bijection of 0..255.
		ip := fmt.Sprintf("192.0.2.%d", (i*37+11)%256)
		listAt(t, db, fmt.Sprintf("<%d@a>", i), ip, time.Duration(i)*time.Second)
		if i%3 == 0 { // a second report: the last one changes
			if out, _, err := db.AddReport(report(fmt.Sprintf("<%d-again@b>", i), ip, "b"), params(t0.Add(time.Duration(n+i)*time.Second), 1)); err != nil || out != Extended {
				t.Fatalf("second report of %s: %v, %v", ip, out, err)
			}
		}
	}
	if _, err := db.PruneHistory(t0.Add(5*time.Second), 1000); err != nil {
		t.Fatal(err)
	}
	if err := db.ForEachListing(func(l Listing) error {
		want = append(want, l)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(want) != n {
		t.Fatalf("%d listings, want %d", len(want), n)
	}
	emptied := 0
	for _, l := range want {
		got, ok, err := db.Lookup(l.IP)
		if err != nil || !ok || !reflect.DeepEqual(got, l) {
			t.Fatalf("Lookup(%s) = %+v, %v, %v; the walk gave %+v", l.IP, got, ok, err, l)
		}
		if l.LastMessageID == "" {
			emptied++
		}
	}
	if emptied == 0 {
		t.Error("no listing lost its last Message-ID to pruning; the test does not cover it")
	}
	for i := 1; i < len(want); i++ {
		if want[i-1].IP.Compare(want[i].IP) >= 0 {
			t.Errorf("%s listed before %s: not in address order", want[i-1].IP, want[i].IP)
		}
	}
}
