package store

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// The layout-1 fixture: a store written by the last dstd with layout 1
// (before the arrivals log), holding one of everything a site keeps:
// listed, extended, pending, held, relayed and probation reports, a
// refused Message-ID, an applied cancel and a cancel marker, a delisting
// and an expiry in the listing log, origin records and queued items. Its
// dump, taken with that dstd's code, is the golden file; the migration
// test opens a copy with this code and must dump the same.
const (
	fixtureV1     = "testdata/layout1.db.gz"
	fixtureV1Dump = "testdata/layout1.dump"
)

// The layout-2 fixture: the same history written by the last dstd with
// layout 2 (the arrivals log, the hashed history), and its dump taken
// with that code.
const (
	fixtureV2     = "testdata/layout2.db.gz"
	fixtureV2Dump = "testdata/layout2.dump"
)

// The layout-3 fixture: the same history written by the last dstd with
// layout 3 (listings referring to their last report by arrival key,
// 5-byte IPv4 keys), and its dump taken with that code.
const (
	fixtureV3     = "testdata/layout3.db.gz"
	fixtureV3Dump = "testdata/layout3.dump"
)

// writeV1Fixture builds the fixture. It ran once, with the layout-1 code
// (DST_WRITE_LAYOUT1_FIXTURE=1 go test -run TestMigrateLayout1 ./internal/store/);
// with this code it would write a layout-2 file, so the test refuses.
func writeV1Fixture(t *testing.T, path string) {
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	subscribe(t, db, "feed/peer.example", feedWants("peer.example"))
	subscribe(t, db, "log", actionWants)
	add := func(id, ip, origin string, at time.Duration, p IngestParams, want Outcome) {
		t.Helper()
		r := report(id, ip, origin)
		r.Date = t0.Add(at - time.Minute)
		p.Now = t0.Add(at)
		if out, _, err := db.AddReport(r, p); err != nil || out != want {
			t.Fatalf("AddReport(%s) = %v, %v; want %v", id, out, err, want)
		}
	}
	for i := range 40 {
		add(fmt.Sprintf("<l%d@a.example>", i), fmt.Sprintf("192.0.2.%d", i+1), "a.example", time.Duration(i)*time.Second, params(t0, 1), Listed)
	}
	add("<v6@a.example>", "2001:db8::1", "a.example", 41*time.Second, params(t0, 1), Listed)
	add("<e1@b.example>", "192.0.2.1", "b.example", time.Minute, params(t0, 1), Extended)
	add("<e2@a.example>", "192.0.2.2", "a.example", 25*time.Hour, params(t0, 1), Extended)
	add("<p1@a.example>", "198.51.100.1", "a.example", 2*time.Minute, params(t0, 2), Pending)
	relay := params(t0, 1)
	relay.RelayOnly, relay.RelayReason = true, "own network"
	add("<r1@c.example>", "198.51.100.2", "c.example", 3*time.Minute, relay, Relayed)
	prob := params(t0, 1)
	prob.ProbationCorroborations = 1
	r := report("<prob@d.example>", "198.51.100.3", "d.example")
	r.Probation = true
	prob.Now = t0.Add(4 * time.Minute)
	if out, _, err := db.AddReport(r, prob); err != nil || out != Probation {
		t.Fatalf("probation report: %v, %v", out, err)
	}
	capped := params(t0, 1)
	capped.MaxNewListingsPerHour = 1
	add("<h1@e.example>", "198.51.100.4", "e.example", 5*time.Minute, capped, Listed)
	add("<h2@e.example>", "198.51.100.5", "e.example", 6*time.Minute, capped, Held)
	if err := db.RecordRefused("<refused@x.example>", t0.Add(7*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if res, err := db.Cancel(cancelOf("<c1@a.example>", "<l3@a.example>", "a.example"), cparams(t0.Add(8*time.Minute), 1)); err != nil || res.Outcome != CancelApplied {
		t.Fatalf("cancel: %+v, %v", res, err)
	}
	if res, err := db.Cancel(cancelOf("<c2@a.example>", "<later@a.example>", "a.example"), cparams(t0.Add(9*time.Minute), 1)); err != nil || res.Outcome != CancelMarked {
		t.Fatalf("cancel marker: %+v, %v", res, err)
	}
	if ok, err := db.Delist(netip.MustParseAddr("192.0.2.5"), t0.Add(10*time.Minute), "test"); err != nil || !ok {
		t.Fatalf("delist: %v, %v", ok, err)
	}
	if got, err := db.Expire(t0.Add(61*time.Minute), 2); err != nil || len(got) != 2 {
		t.Fatalf("expire: %v, %v", got, err)
	}
	if err := db.QueueRetry("log", 3, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := db.QueueAck("log", 1); err != nil {
		t.Fatal(err)
	}
}

// dumpStore writes what the public API says of db, for the addresses and
// Message-IDs of the fixture, as text that diffs well.
func dumpStore(t *testing.T, db *DB) string {
	var b strings.Builder
	st, err := db.Stats()
	if err != nil {
		t.Fatal(err)
	}
	st.FileBytes = 0
	fmt.Fprintf(&b, "stats %+v\n", st)
	var ids []string
	for i := range 40 {
		ids = append(ids, fmt.Sprintf("<l%d@a.example>", i))
	}
	ids = append(ids, "<v6@a.example>", "<e1@b.example>", "<e2@a.example>", "<p1@a.example>", "<r1@c.example>",
		"<prob@d.example>", "<h1@e.example>", "<h2@e.example>", "<refused@x.example>", "<c1@a.example>",
		"<c2@a.example>", "<later@a.example>", "<never@x.example>")
	for _, id := range ids {
		seen, err := db.Seen(id)
		if err != nil {
			t.Fatal(err)
		}
		art, err := db.Article(id)
		if err != nil {
			t.Fatal(err)
		}
		ri, ok, err := db.ReportOf(id)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "id %s seen=%v article=%q report=%v %+v\n", id, seen, art, ok, ri)
	}
	if err := db.ForEachListing(func(l Listing) error {
		fmt.Fprintf(&b, "listing %+v\n", l)
		reps, err := db.ReportsOf(l.IP)
		fmt.Fprintf(&b, "  reports %+v %v\n", reps, err)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, ip := range []string{"198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.5", "192.0.2.4", "192.0.2.5"} {
		l, ok, err := db.Lookup(netip.MustParseAddr(ip))
		reps, rerr := db.ReportsOf(netip.MustParseAddr(ip))
		fmt.Fprintf(&b, "lookup %s %v %+v %v\n  reports %+v %v\n", ip, ok, l, err, reps, rerr)
	}
	var at []time.Time
	for d := -time.Minute; d <= 26*time.Hour; d += 10 * time.Minute {
		at = append(at, t0.Add(d))
	}
	counts, err := db.ListingCounts(at)
	fmt.Fprintf(&b, "counts %v %v\n", counts, err)
	err = db.ReportsSince(t0.Add(-time.Hour), func(a ReportActivity) error {
		fmt.Fprintf(&b, "since %+v\n", a)
		return nil
	})
	fmt.Fprintf(&b, "since err %v\n", err)
	origins, err := db.Origins()
	sort.Slice(origins, func(i, j int) bool { return origins[i].Origin < origins[j].Origin })
	fmt.Fprintf(&b, "origins %+v %v\n", origins, err)
	for _, q := range []string{"feed/peer.example", "log"} {
		items, err := db.QueueNext(q, t0.Add(48*time.Hour), 1000, nil)
		n, derr := db.QueueDepth(q)
		fmt.Fprintf(&b, "queue %s depth %d %v: %+v %v\n", q, n, derr, items, err)
	}
	next, ok, err := db.NextExpiry()
	fmt.Fprintf(&b, "next expiry %v %v %v\n", next, ok, err)
	return b.String()
}

// gunzipTo writes the gzipped file src to dst.
func gunzipTo(t *testing.T, dst, src string) {
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, zr); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func gzipTo(t *testing.T, dst, src string) {
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	zw, _ := gzip.NewWriterLevel(out, gzip.BestCompression)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestMigrateLayout1, 2 and 3 open a store written by the layout-1,
// layout-2 and layout-3 code: it must be upgraded on open and answer
// exactly as the old code did, and the upgraded store must keep working
// (a duplicate of a migrated report, a cancel, pruning).
func TestMigrateLayout1(t *testing.T) {
	testMigrate(t, 1, "DST_WRITE_LAYOUT1_FIXTURE", fixtureV1, fixtureV1Dump)
}

func TestMigrateLayout2(t *testing.T) {
	testMigrate(t, 2, "DST_WRITE_LAYOUT2_FIXTURE", fixtureV2, fixtureV2Dump)
}

func TestMigrateLayout3(t *testing.T) {
	testMigrate(t, 3, "DST_WRITE_LAYOUT3_FIXTURE", fixtureV3, fixtureV3Dump)
}

// testMigrate checks the upgrade from layout's fixture and dump; with env
// set, run by the code of that layout, it writes them instead.
func testMigrate(t *testing.T, layout int, env, fixture, fixtureDump string) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dst.db")
	if os.Getenv(env) != "" {
		if layoutVersion != layout {
			t.Fatalf("the fixture must be written by the layout-%d code", layout)
		}
		writeV1Fixture(t, path)
		db, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		dump := dumpStore(t, db)
		db.Close()
		gzipTo(t, fixture, path)
		if err := os.WriteFile(fixtureDump, []byte(dump), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	gunzipTo(t, path, fixture)
	// What an upgrade that a crash interrupted leaves: Open starts again.
	if err := os.WriteFile(path+migrateSuffix, []byte("half a file"), 0o600); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(fixtureDump)
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(path, Options{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + migrateSuffix); !os.IsNotExist(err) {
		t.Errorf("the upgrade left %s%s behind: %v", path, migrateSuffix, err)
	}
	if got := dumpStore(t, db); got != string(want) {
		t.Errorf("the migrated store answers differently:\n%s", lineDiff(string(want), got))
	}
	checkConsistency(t, db)
	migratedStillWorks(t, db)
	checkConsistency(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Opening it again finds the new layout: nothing to do.
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
}

// migratedStillWorks uses the migrated data through the write paths.
func migratedStillWorks(t *testing.T, db *DB) {
	if out, _, err := db.AddReport(report("<l7@a.example>", "192.0.2.8", "a.example"), params(t0.Add(time.Hour), 1)); err != nil || out != Duplicate {
		t.Errorf("a migrated Message-ID again: %v, %v; want duplicate", out, err)
	}
	res, err := db.Cancel(cancelOf("<c3@a.example>", "<e2@a.example>", "a.example"), cparams(t0.Add(26*time.Hour), 1))
	if err != nil || res.Outcome != CancelApplied || !res.Listed {
		t.Errorf("cancel of a migrated report: %+v, %v; want applied, still listed", res, err)
	}
	out, l, err := db.AddReport(report("<new@b.example>", "192.0.2.9", "b.example"), params(t0.Add(3*time.Hour), 1))
	if err != nil || out != Extended || l.Hits != 2 {
		t.Errorf("a new report of a migrated listing: %v %+v, %v", out, l, err)
	}
	if n, err := db.PruneHistory(t0.Add(30*time.Second), 1000); err != nil || n != 30 {
		t.Errorf("PruneHistory = %d, %v; want the 30 reports of the first 30 seconds", n, err)
	}
}

// lineDiff shows the lines of want and got that differ, for a readable
// failure.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := range max(len(w), len(g)) {
		var a, c string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			c = g[i]
		}
		if a != c {
			fmt.Fprintf(&b, "line %d:\n  want %s\n  got  %s\n", i+1, a, c)
		}
	}
	return b.String()
}
