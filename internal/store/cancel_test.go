package store

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func cancelOf(id, target, signer string) Cancel {
	return Cancel{MessageID: id, Target: target, Signer: signer, Article: []byte("Message-ID: " + id + "\r\n\r\ncancel\r\n")}
}

func cparams(now time.Time, threshold int) CancelParams {
	return CancelParams{Now: now, Threshold: threshold}
}

// cancelQueues subscribes the queues of a site from now on: "peer" as a
// feed, "log" as an action, "dnsupdate" as DNS UPDATE.
func cancelQueues(t *testing.T, db *DB) {
	t.Helper()
	subscribe(t, db, "peer", feedWants("peer.example"))
	subscribe(t, db, "log", actionWants)
	subscribe(t, db, "dnsupdate", dnsWants)
}

// queued returns the events waiting in a queue.
func queued(t *testing.T, db *DB, q string) []Event {
	t.Helper()
	items, err := db.QueueNext(q, t0.Add(24*time.Hour), 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	var evs []Event
	for _, it := range items {
		evs = append(evs, it.Event)
	}
	return evs
}

func TestCancelApplied(t *testing.T) {
	db := openTest(t)
	ip := netip.MustParseAddr("203.0.113.7")
	if _, _, err := db.AddReport(report("<r1@a>", "203.0.113.7", "a.example"), params(t0, 1)); err != nil {
		t.Fatal(err)
	}
	cancelQueues(t, db)
	res, err := db.Cancel(cancelOf("<c1@a>", "<r1@a>", "a.example"), cparams(t0.Add(time.Minute), 1))
	if err != nil || res.Outcome != CancelApplied || !res.Delisted || res.IP != ip || res.Origin != "a.example" {
		t.Fatalf("Cancel = %+v, %v; want applied and delisted", res, err)
	}
	if _, ok, _ := db.Lookup(ip); ok {
		t.Error("still listed after its only report was cancelled")
	}
	want := []Event{{Kind: EventDelisted, Time: t0.Add(time.Minute), IP: ip, By: "cancel from a.example"}}
	if got := queued(t, db, "log"); !reflect.DeepEqual(got, want) {
		t.Errorf("removal queue = %+v, want %+v", got, want)
	}
	// The control article is flooded like a report.
	if got := queued(t, db, "peer"); len(got) != 1 || got[0].Kind != EventReport || got[0].MessageID != "<c1@a>" {
		t.Errorf("feed queue = %+v, want the cancel", got)
	}
	// DNS UPDATE deletes the name.
	if got := queued(t, db, "dnsupdate"); !reflect.DeepEqual(got, want) {
		t.Errorf("DNS UPDATE queue = %+v, want %+v", got, want)
	}
	if a, _ := db.Article("<c1@a>"); a == nil {
		t.Error("the cancel's article is not stored for the feeds")
	}
	if info, ok, _ := db.ReportOf("<r1@a>"); !ok || !info.Cancelled {
		t.Errorf("ReportOf = %+v, %v; want cancelled", info, ok)
	}
	// The same cancel again is a duplicate; another one has nothing to undo.
	if res, _ := db.Cancel(cancelOf("<c1@a>", "<r1@a>", "a.example"), cparams(t0, 1)); res.Outcome != CancelDuplicate {
		t.Errorf("repeat Cancel = %v, want duplicate", res.Outcome)
	}
	if res, _ := db.Cancel(cancelOf("<c2@a>", "<r1@a>", "a.example"), cparams(t0, 1)); res.Outcome != CancelNoEffect {
		t.Errorf("second cancel = %v, want no effect", res.Outcome)
	}
}

func TestCancelKeepsOtherSupport(t *testing.T) {
	db := openTest(t)
	ip := netip.MustParseAddr("203.0.113.7")
	for i, r := range []Report{
		report("<r1@a>", "203.0.113.7", "a.example"),
		report("<r2@a>", "203.0.113.7", "a.example"),
		report("<r3@b>", "203.0.113.7", "b.example"),
	} {
		if _, _, err := db.AddReport(r, params(t0.Add(time.Duration(i)*time.Minute), 1)); err != nil {
			t.Fatal(err)
		}
	}
	before, _, _ := db.Lookup(ip)
	cancelQueues(t, db)
	// a.example still has <r2@a>: it stays an origin.
	res, err := db.Cancel(cancelOf("<c1@a>", "<r1@a>", "a.example"), cparams(t0.Add(time.Hour), 1))
	if err != nil || res.Outcome != CancelApplied || res.Delisted || !res.Listed {
		t.Fatalf("Cancel = %+v, %v", res, err)
	}
	l, _, _ := db.Lookup(ip)
	if l.Hits != 2 || !reflect.DeepEqual(l.Origins, []string{"a.example", "b.example"}) || !l.Expires.Equal(before.Expires) {
		t.Errorf("listing after the first cancel = %+v (before %+v)", l, before)
	}
	// Now a.example has nothing left; b.example keeps the address listed.
	res, err = db.Cancel(cancelOf("<c2@a>", "<r2@a>", "a.example"), cparams(t0.Add(time.Hour), 1))
	if err != nil || res.Delisted || !reflect.DeepEqual(res.Listing.Origins, []string{"b.example"}) {
		t.Fatalf("second Cancel = %+v, %v", res, err)
	}
	if got := queued(t, db, "log"); len(got) != 0 {
		t.Errorf("removal queue = %+v, want nothing while listed", got)
	}
	// Each change of a listing that stays is republished (DNS UPDATE).
	got := queued(t, db, "dnsupdate")
	if len(got) != 2 {
		t.Fatalf("update queue = %+v, want one event per cancel", got)
	}
	for _, ev := range got {
		if ev.Kind != EventReport || !ev.Listed || ev.IP != ip || !ev.Expires.Equal(before.Expires) {
			t.Errorf("update event %+v, want a listed EventReport for %s until %v", ev, ip, before.Expires)
		}
	}
}

func TestCancelBelowThreshold(t *testing.T) {
	db := openTest(t)
	ip := netip.MustParseAddr("203.0.113.7")
	db.AddReport(report("<r1@a>", "203.0.113.7", "a.example"), params(t0, 2))
	db.AddReport(report("<r2@b>", "203.0.113.7", "b.example"), params(t0.Add(time.Minute), 2))
	if _, ok, _ := db.Lookup(ip); !ok {
		t.Fatal("two origins did not list the address with threshold 2")
	}
	res, err := db.Cancel(cancelOf("<c1@b>", "<r2@b>", "b.example"), cparams(t0.Add(2*time.Minute), 2))
	if err != nil || !res.Delisted {
		t.Fatalf("Cancel = %+v, %v; want delisted: one origin is below the threshold", res, err)
	}
	// A pending address loses the cancelled origin's sighting.
	db.AddReport(report("<r3@a>", "198.51.100.1", "a.example"), params(t0, 2))
	if res, err := db.Cancel(cancelOf("<c2@a>", "<r3@a>", "a.example"), cparams(t0.Add(time.Minute), 2)); err != nil || res.Outcome != CancelApplied {
		t.Fatalf("Cancel of a pending report = %+v, %v", res, err)
	}
	if s, _ := db.Stats(); s.Pending != 0 {
		t.Errorf("pending = %d after its only sighting was cancelled", s.Pending)
	}
	// So a.example reporting it again does not reach the threshold with the
	// cancelled sighting.
	if out, _, _ := db.AddReport(report("<r4@b>", "198.51.100.1", "b.example"), params(t0.Add(2*time.Minute), 2)); out != Pending {
		t.Errorf("AddReport after the cancel = %v, want pending", out)
	}
}

func TestCancelWrongOrigin(t *testing.T) {
	db := openTest(t)
	ip := netip.MustParseAddr("203.0.113.7")
	db.AddReport(report("<r1@a>", "203.0.113.7", "a.example"), params(t0, 1))
	cancelQueues(t, db)
	res, err := db.Cancel(cancelOf("<c1@b>", "<r1@a>", "b.example"), cparams(t0, 1))
	if err != nil || res.Outcome != CancelRefused || res.Origin != "a.example" {
		t.Fatalf("Cancel by another site = %+v, %v; want refused", res, err)
	}
	if _, ok, _ := db.Lookup(ip); !ok {
		t.Error("another site's cancel delisted the address")
	}
	if seen, _ := db.Seen("<c1@b>"); !seen {
		t.Error("a refused cancel is not in the history")
	}
	if a, _ := db.Article("<c1@b>"); a != nil {
		t.Error("a refused cancel's article is stored")
	}
	if got := queued(t, db, "peer"); len(got) != 0 {
		t.Errorf("a refused cancel is queued for the feeds: %+v", got)
	}
}

func TestCancelBeforeReport(t *testing.T) {
	db := openTest(t)
	cancelQueues(t, db)
	res, err := db.Cancel(cancelOf("<c1@a>", "<r1@a>", "a.example"), cparams(t0, 1))
	if err != nil || res.Outcome != CancelMarked {
		t.Fatalf("Cancel of an unknown report = %+v, %v; want marked", res, err)
	}
	if got := queued(t, db, "peer"); len(got) != 1 {
		t.Errorf("a marked cancel is not flooded: %+v", got)
	}
	// A marker by b.example does not block a.example's report...
	db.Cancel(cancelOf("<c2@b>", "<r2@a>", "b.example"), cparams(t0, 1))
	if out, _, err := db.AddReport(report("<r2@a>", "203.0.113.8", "a.example"), params(t0, 1)); err != nil || out != Listed {
		t.Errorf("report with another site's marker = %v, %v; want listed", out, err)
	}
	// ...but a.example's own marker does.
	out, _, err := db.AddReport(report("<r1@a>", "203.0.113.7", "a.example"), params(t0.Add(time.Minute), 1))
	if err != nil || out != Cancelled {
		t.Fatalf("cancelled report = %v, %v; want cancelled", out, err)
	}
	if _, ok, _ := db.Lookup(netip.MustParseAddr("203.0.113.7")); ok {
		t.Error("a cancelled report listed its address")
	}
	if seen, _ := db.Seen("<r1@a>"); !seen {
		t.Error("a cancelled report is not in the history")
	}
	// Markers go with the history.
	if _, err := db.PruneHistory(t0.Add(time.Hour), 100); err != nil {
		t.Fatal(err)
	}
	db.bdb.View(func(tx *bolt.Tx) error {
		if n := bucketsOf(tx).cancelMarks.Stats().KeyN; n != 0 {
			t.Errorf("%d cancel markers left after pruning the history", n)
		}
		return nil
	})
}
