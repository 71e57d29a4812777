package store

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// TestListingCounts lists, expires, delists and cancels, and reads the
// count of listings back at times between the changes.
func TestListingCounts(t *testing.T) {
	db := openTest(t)
	// Listed: .1 at +0 (expires +1h), .2 at +10m (expires +1h10m), .3 at +20m.
	listAt(t, db, "<1>", "203.0.113.1", 0)
	listAt(t, db, "<2>", "203.0.113.2", 10*time.Minute)
	listAt(t, db, "<3>", "203.0.113.3", 20*time.Minute)
	// .3 delisted at +30m; the sweeper runs late, at +2h, and finds .1
	// and .2 expired: logged at their expiry, not at +2h.
	if ok, err := db.Delist(netip.MustParseAddr("203.0.113.3"), t0.Add(30*time.Minute), "test"); err != nil || !ok {
		t.Fatalf("Delist = %v, %v", ok, err)
	}
	listAt(t, db, "<4>", "203.0.113.4", 40*time.Minute) // expires +1h40m
	if got, err := db.Expire(t0.Add(2*time.Hour), 10); err != nil || len(got) != 3 {
		t.Fatalf("Expire = %v, %v; want 3 listings", got, err)
	}
	listAt(t, db, "<5>", "203.0.113.5", 3*time.Hour)

	at := func(d time.Duration) time.Time { return t0.Add(d) }
	times := []time.Time{at(4 * time.Hour), at(-time.Minute), at(5 * time.Minute), at(15 * time.Minute),
		at(25 * time.Minute), at(35 * time.Minute), at(45 * time.Minute), at(65 * time.Minute),
		at(75 * time.Minute), at(105 * time.Minute), at(3 * time.Hour)}
	want := []int{1, 0, 1, 2, 3, 2, 3, 2, 1, 0, 1}
	got, err := db.ListingCounts(times)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ListingCounts = %v, want %v", got, want)
	}

	// Pruning forgets the changes before +1h: the counts from then on
	// are the same, earlier ones read as the count at the log's start.
	if n, err := db.PruneListingLog(at(time.Hour), 100); err != nil || n != 5 {
		t.Fatalf("PruneListingLog = %d, %v; want 5 entries", n, err)
	}
	got, err = db.ListingCounts([]time.Time{at(75 * time.Minute), at(105 * time.Minute), at(4 * time.Hour)})
	if err != nil || !reflect.DeepEqual(got, []int{1, 0, 1}) {
		t.Errorf("after pruning: ListingCounts = %v, %v; want [1 0 1]", got, err)
	}
}

// TestReportsSince reads back reports that listed, extended, waited for a
// threshold, came on probation or were only relayed, with their Dates.
func TestReportsSince(t *testing.T) {
	db := openTest(t)
	date := t0.Add(-3 * time.Minute)
	add := func(id, ip, origin string, now time.Duration, p IngestParams, want Outcome) {
		t.Helper()
		r := report(id, ip, origin)
		r.Date = date
		p.Now = t0.Add(now)
		if out, _, err := db.AddReport(r, p); err != nil || out != want {
			t.Fatalf("AddReport(%s) = %v, %v; want %v", id, out, err, want)
		}
	}
	add("<old>", "192.0.2.9", "a", -time.Hour, params(t0, 1), Listed)
	add("<l>", "192.0.2.1", "a", 0, params(t0, 1), Listed)
	add("<e>", "192.0.2.1", "b", time.Minute, params(t0, 1), Extended)
	add("<p>", "192.0.2.2", "a", 2*time.Minute, params(t0, 2), Pending)
	relay := params(t0, 1)
	relay.RelayOnly = true
	add("<r>", "192.0.2.3", "c", 3*time.Minute, relay, Relayed)
	if err := db.RecordRefused("<refused>", t0.Add(4*time.Minute)); err != nil {
		t.Fatal(err)
	}
	prob := report("<prob>", "192.0.2.4", "d")
	prob.Probation, prob.Date = true, date
	p := params(t0.Add(5*time.Minute), 1)
	p.ProbationCorroborations = 1
	if out, _, err := db.AddReport(prob, p); err != nil || out != Probation {
		t.Fatalf("AddReport(<prob>) = %v, %v", out, err)
	}

	var got []ReportActivity
	if err := db.ReportsSince(t0, func(a ReportActivity) error { got = append(got, a); return nil }); err != nil {
		t.Fatal(err)
	}
	want := []ReportActivity{
		{Origin: "a", Arrived: t0, Date: date, Listed: true},
		{Origin: "b", Arrived: t0.Add(time.Minute), Date: date, Listed: true},
		{Origin: "a", Arrived: t0.Add(2 * time.Minute), Date: date},
		{Origin: "c", Arrived: t0.Add(3 * time.Minute), Relayed: true},
		{Origin: "d", Arrived: t0.Add(5 * time.Minute), Date: date, Probation: true},
	}
	if len(got) != len(want) {
		t.Fatalf("ReportsSince = %+v\nwant %+v", got, want)
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("report %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}
