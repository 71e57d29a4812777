package store

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"
)

func TestAddReportDuplicate(t *testing.T) {
	db := openTest(t)
	subscribe(t, db, "log", nil)
	first := report("<1@a>", "203.0.113.7", "a.example")
	if out, _, err := db.AddReport(first, params(t0, 1)); err != nil || out != Listed {
		t.Fatalf("first AddReport = %v, %v; want listed", out, err)
	}
	before, _ := db.Stats()

	// The same Message-ID again, even about another address, changes nothing.
	for _, r := range []Report{first, report("<1@a>", "198.51.100.1", "b.example")} {
		out, l, err := db.AddReport(r, params(t0.Add(time.Minute), 1))
		if err != nil || out != Duplicate || !reflect.DeepEqual(l, Listing{}) {
			t.Errorf("repeat AddReport(%s) = %v, %+v, %v; want duplicate", r.IP, out, l, err)
		}
	}
	after, _ := db.Stats()
	if after != before {
		t.Errorf("Stats changed by duplicates: %+v -> %+v", before, after)
	}
	if d, _ := db.QueueDepth("log"); d != 1 {
		t.Errorf("queue depth after duplicates = %d, want 1", d)
	}
	if _, ok, _ := db.Lookup(netip.MustParseAddr("198.51.100.1")); ok {
		t.Error("a duplicate listed its address")
	}
}

func TestRecordRefused(t *testing.T) {
	db := openTest(t)
	if err := db.RecordRefused("<bad@a>", t0); err != nil {
		t.Fatal(err)
	}
	if seen, err := db.Seen("<bad@a>"); err != nil || !seen {
		t.Errorf("Seen(refused) = %v, %v", seen, err)
	}
	if a, err := db.Article("<bad@a>"); err != nil || a != nil {
		t.Errorf("Article(refused) = %q, %v; want nil", a, err)
	}
	if out, _, err := db.AddReport(report("<bad@a>", "203.0.113.7", "a.example"), params(t0, 1)); err != nil || out != Duplicate {
		t.Errorf("AddReport after refusal = %v, %v; want duplicate", out, err)
	}
	// Refusing an accepted Message-ID later keeps it accepted, article and all.
	if _, _, err := db.AddReport(report("<ok@a>", "203.0.113.8", "a.example"), params(t0, 1)); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordRefused("<ok@a>", t0); err != nil {
		t.Fatal(err)
	}
	if a, _ := db.Article("<ok@a>"); a == nil {
		t.Error("RecordRefused of an accepted Message-ID dropped its article")
	}
	if s, _ := db.Stats(); s.History != 2 {
		t.Errorf("History = %d, want 2", s.History)
	}
	if seen, err := db.Seen("<never@a>"); err != nil || seen {
		t.Errorf("Seen(unknown) = %v, %v", seen, err)
	}
}

func TestThreshold(t *testing.T) {
	type step struct {
		at     time.Duration // after t0
		origin string
		want   Outcome
	}
	for _, tc := range []struct {
		name      string
		threshold int
		steps     []step
		// the listing at the end, if any
		wantFirst   time.Duration
		wantHits    int
		wantOrigins []string
	}{
		{
			name: "one origin lists at once", threshold: 1,
			steps:     []step{{0, "a", Listed}},
			wantFirst: 0, wantHits: 1, wantOrigins: []string{"a"},
		},
		{
			name: "zero threshold lists at once", threshold: 0,
			steps:     []step{{0, "a", Listed}},
			wantFirst: 0, wantHits: 1, wantOrigins: []string{"a"},
		},
		{
			name: "two distinct origins", threshold: 2,
			steps:     []step{{0, "a", Pending}, {10 * time.Minute, "b", Listed}},
			wantFirst: 0, wantHits: 2, wantOrigins: []string{"a", "b"},
		},
		{
			name: "same origin twice stays pending", threshold: 2,
			steps: []step{
				{0, "a", Pending}, {10 * time.Minute, "a", Pending}, {20 * time.Minute, "a", Pending},
				{30 * time.Minute, "b", Listed},
			},
			wantFirst: 0, wantHits: 4, wantOrigins: []string{"a", "b"},
		},
		{
			name: "sighting leaves the window", threshold: 2,
			steps: []step{
				{0, "a", Pending},
				{61 * time.Minute, "b", Pending}, // a's report is older than the 1h window
				{70 * time.Minute, "c", Listed},
			},
			wantFirst: 61 * time.Minute, wantHits: 2, wantOrigins: []string{"b", "c"},
		},
		{
			name: "refreshed sighting stays in the window", threshold: 2,
			steps: []step{
				{0, "a", Pending}, {50 * time.Minute, "a", Pending},
				{100 * time.Minute, "b", Listed}, // a's second report is 50m old
			},
			wantFirst: 0, wantHits: 3, wantOrigins: []string{"a", "b"},
		},
		{
			name: "listed address is extended by any origin", threshold: 3,
			steps: []step{
				{0, "a", Pending}, {1 * time.Minute, "b", Pending}, {2 * time.Minute, "c", Listed},
				{3 * time.Minute, "a", Extended},
			},
			wantFirst: 0, wantHits: 4, wantOrigins: []string{"b", "c", "a"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openTest(t)
			subscribe(t, db, "log", nil)
			ip := "2001:db8::7"
			var last Listing
			for i, s := range tc.steps {
				r := report(fmt.Sprintf("<%d@x>", i), ip, s.origin)
				out, l, err := db.AddReport(r, params(t0.Add(s.at), tc.threshold))
				if err != nil || out != s.want {
					t.Fatalf("step %d (%s at %v): %v, %v; want %v", i, s.origin, s.at, out, err, s.want)
				}
				if out == Pending {
					if st, _ := db.Stats(); st.Pending != 1 || st.Listings != 0 {
						t.Errorf("step %d: Stats = %+v, want 1 pending and no listing", i, st)
					}
				}
				last = l
			}
			got, ok, err := db.Lookup(netip.MustParseAddr(ip))
			if err != nil || !ok {
				t.Fatalf("Lookup = %v, %v", ok, err)
			}
			if !reflect.DeepEqual(got, last) {
				t.Errorf("Lookup = %+v, AddReport returned %+v", got, last)
			}
			if !got.FirstSeen.Equal(t0.Add(tc.wantFirst)) || got.Hits != tc.wantHits || !reflect.DeepEqual(got.Origins, tc.wantOrigins) {
				t.Errorf("listing first %v hits %d origins %q; want %v, %d, %q",
					got.FirstSeen.Sub(t0), got.Hits, got.Origins, tc.wantFirst, tc.wantHits, tc.wantOrigins)
			}
			if st, _ := db.Stats(); st.Pending != 0 || st.Listings != 1 {
				t.Errorf("Stats = %+v, want no pending and 1 listing", st)
			}

			// Every report was queued, with Listed saying whether the
			// address was listed after it.
			items, err := db.QueueNext("log", t0.Add(time.Hour), 100, nil)
			if err != nil || len(items) != len(tc.steps) {
				t.Fatalf("queue log has %d items, %v; want %d", len(items), err, len(tc.steps))
			}
			for i, it := range items {
				ev := it.Event
				wantListed := tc.steps[i].want != Pending
				if ev.Kind != EventReport || ev.MessageID != fmt.Sprintf("<%d@x>", i) || ev.Origin != tc.steps[i].origin ||
					ev.Listed != wantListed || ev.Expires.IsZero() == wantListed || !ev.Time.Equal(t0.Add(tc.steps[i].at)) {
					t.Errorf("event %d = %+v", i, ev)
				}
			}
		})
	}
}

func TestExpiryStep(t *testing.T) {
	const base, maxD = time.Hour, 8 * time.Hour
	for _, tc := range []struct {
		hits int
		want time.Duration
	}{
		{0, base}, {1, base}, {2, 2 * base}, {3, 4 * base}, {4, 8 * base}, {5, maxD},
		{62, maxD}, {63, maxD}, {64, maxD}, {1 << 40, maxD},
	} {
		if got := expiryStep(base, maxD, tc.hits); got != tc.want {
			t.Errorf("expiryStep(hit %d) = %v, want %v", tc.hits, got, tc.want)
		}
	}
	// A huge cap must not let the shift overflow into a negative duration.
	if got := expiryStep(time.Hour, 1<<62, 40); got <= 0 {
		t.Errorf("expiryStep with huge cap = %v", got)
	}
}

// TestExpiryExtension: the lifetime doubles per episode (hits more than
// EpisodeGap apart), never per report; hits of one episode (a flood) do not
// move the expiry.
func TestExpiryExtension(t *testing.T) {
	db := openTest(t)
	ip := "203.0.113.9"
	const base = 48 * time.Hour
	for i, tc := range []struct {
		at         time.Duration
		maxD       time.Duration
		wantExpiry time.Duration // after t0
		wantEp     int
		want       Outcome
	}{
		{0, 8 * base, base, 1, Listed},
		{time.Hour, 8 * base, base, 1, Extended},     // same episode: no extension
		{2 * time.Hour, 8 * base, base, 1, Extended}, // a flood neither
		{27 * time.Hour, 8 * base, 27*time.Hour + 2*base, 2, Extended},
		{28 * time.Hour, 8 * base, 27*time.Hour + 2*base, 2, Extended},
		{52 * time.Hour, 8 * base, 27*time.Hour + 2*base, 2, Extended}, // exactly the gap after the last hit: same episode
		{77 * time.Hour, 8 * base, 77*time.Hour + 4*base, 3, Extended},
		{102 * time.Hour, 8 * base, 102*time.Hour + 8*base, 4, Extended},
		{127 * time.Hour, 8 * base, 127*time.Hour + 8*base, 5, Extended}, // capped
		// A lower cap never shortens a listing.
		{152 * time.Hour, base, 127*time.Hour + 8*base, 6, Extended},
	} {
		p := params(t0.Add(tc.at), 1)
		p.ExpireBase, p.ExpireMax = base, tc.maxD
		out, l, err := db.AddReport(report(fmt.Sprintf("<%d@x>", i), ip, "a"), p)
		if err != nil || out != tc.want || !l.Expires.Equal(t0.Add(tc.wantExpiry)) || l.Hits != i+1 || l.Episodes != tc.wantEp {
			t.Errorf("hit %d: %v, expires %v, hits %d, episodes %d, %v; want %v, %v, episode %d", i+1, out, l.Expires.Sub(t0), l.Hits, l.Episodes, err, tc.want, tc.wantExpiry, tc.wantEp)
		}
		if next, ok, err := db.NextExpiry(); err != nil || !ok || !next.Equal(l.Expires) {
			t.Errorf("hit %d: NextExpiry = %v, %v, %v; want the listing's %v", i+1, next, ok, err, l.Expires)
		}
	}
}

func TestAddReportMappedAddress(t *testing.T) {
	db := openTest(t)
	if _, _, err := db.AddReport(report("<1@x>", "::ffff:203.0.113.7", "a"), params(t0, 1)); err != nil {
		t.Fatal(err)
	}
	l, ok, err := db.Lookup(netip.MustParseAddr("203.0.113.7"))
	if err != nil || !ok || !l.IP.Is4() || l.IP.String() != "203.0.113.7" {
		t.Errorf("Lookup(203.0.113.7) = %+v, %v, %v; want the IPv4 listing", l, ok, err)
	}
	if _, ok, _ := db.Lookup(netip.MustParseAddr("::ffff:203.0.113.7")); !ok {
		t.Error("Lookup of the mapped form does not find the listing")
	}
}

func TestAddReportRejectsBadInput(t *testing.T) {
	good := report("<1@x>", "203.0.113.7", "a")
	for _, tc := range []struct {
		name string
		edit func(*Report, *IngestParams)
	}{
		{"empty Message-ID", func(r *Report, _ *IngestParams) { r.MessageID = "" }},
		{"huge Message-ID", func(r *Report, _ *IngestParams) { r.MessageID = string(make([]byte, 5000)) }},
		{"no IP", func(r *Report, _ *IngestParams) { r.IP = netip.Addr{} }},
		{"zoned IP", func(r *Report, _ *IngestParams) { r.IP = netip.MustParseAddr("fe80::1%eth0") }},
		{"no origin", func(r *Report, _ *IngestParams) { r.Origin = "" }},
		{"no time", func(_ *Report, p *IngestParams) { p.Now = time.Time{} }},
		{"no lifetime", func(_ *Report, p *IngestParams) { p.ExpireBase = 0 }},
		{"cap below base", func(_ *Report, p *IngestParams) { p.ExpireMax = time.Minute }},
		{"cap beyond 2262", func(_ *Report, p *IngestParams) { p.ExpireMax = 1 << 62 }},
		{"threshold without window", func(_ *Report, p *IngestParams) { p.Threshold, p.Window = 2, 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openTest(t)
			r, p := good, params(t0, 1)
			tc.edit(&r, &p)
			if out, _, err := db.AddReport(r, p); err == nil {
				t.Errorf("AddReport accepted it: %v", out)
			} else {
				t.Logf("error: %v", err)
			}
			if s, _ := db.Stats(); s.History != 0 || s.Listings != 0 {
				t.Errorf("rejected report was stored: %+v", s)
			}
		})
	}
}

func TestPruneHistory(t *testing.T) {
	db := openTest(t)
	for i := range 5 {
		now := t0.Add(time.Duration(i) * time.Hour)
		if _, _, err := db.AddReport(report(fmt.Sprintf("<%d@x>", i), "203.0.113.1", "a"), params(now, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.RecordRefused("<r@x>", t0.Add(30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	// History before t0+2h: <0>, <r>, <1>, oldest first, two at a time.
	for _, want := range []int{2, 1, 0} {
		n, err := db.PruneHistory(t0.Add(2*time.Hour), 2)
		if err != nil || n != want {
			t.Fatalf("PruneHistory = %d, %v; want %d", n, err, want)
		}
	}
	for id, want := range map[string]bool{"<0@x>": false, "<r@x>": false, "<1@x>": false, "<2@x>": true, "<4@x>": true} {
		if seen, _ := db.Seen(id); seen != want {
			t.Errorf("Seen(%s) = %v, want %v", id, seen, want)
		}
		if a, _ := db.Article(id); (a != nil) != want {
			t.Errorf("Article(%s) = %q, want present %v", id, a, want)
		}
	}
	if s, _ := db.Stats(); s.History != 3 || s.Articles != 3 {
		t.Errorf("Stats = %+v, want 3 history and 3 articles", s)
	}
	if _, err := db.PruneHistory(t0, 0); err == nil {
		t.Error("PruneHistory accepted limit 0")
	}
	// The listing itself is not history: it stays.
	if _, ok, _ := db.Lookup(netip.MustParseAddr("203.0.113.1")); !ok {
		t.Error("PruneHistory removed a listing")
	}
}

// TestConcurrentAddReport runs many submitters at once, as dstd does, with
// fsync on so that Batch really groups commits.
func TestConcurrentAddReport(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "dst.db"), Options{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	subscribe(t, db, "log", nil)
	const n = 50

	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	outcomes := make(chan Outcome, n)
	for i := range n {
		wg.Go(func() {
			r := report(fmt.Sprintf("<distinct-%d@x>", i), fmt.Sprintf("2001:db8::%x", i%7), fmt.Sprintf("o%d", i%3))
			if _, _, err := db.AddReport(r, params(t0, 2)); err != nil {
				errs <- err
			}
		})
		wg.Go(func() {
			r := report("<same@x>", "203.0.113.50", "a")
			out, _, err := db.AddReport(r, params(t0, 1))
			if err != nil {
				errs <- err
				return
			}
			outcomes <- out
		})
	}
	wg.Wait()
	close(errs)
	close(outcomes)
	for err := range errs {
		t.Error(err)
	}
	counts := map[Outcome]int{}
	for o := range outcomes {
		counts[o]++
	}
	if counts[Duplicate] != n-1 || counts[Listed] != 1 {
		t.Errorf("outcomes for one Message-ID from %d submitters: %v; want 1 listed, the rest duplicate", n, counts)
	}
	for i := range n {
		if seen, err := db.Seen(fmt.Sprintf("<distinct-%d@x>", i)); err != nil || !seen {
			t.Errorf("report %d not stored: %v", i, err)
		}
	}
	if s, _ := db.Stats(); s.History != n+1 || s.Articles != n+1 {
		t.Errorf("Stats = %+v, want %d history and articles", s, n+1)
	}
	if d, _ := db.QueueDepth("log"); d != n+1 {
		t.Errorf("queue depth = %d, want %d", d, n+1)
	}
	checkConsistency(t, db)
}

// RelayOnly stores the report for the feeds and lists nothing: no listing,
// no sighting towards the threshold, no report record for cancels.
func TestAddReportRelayOnly(t *testing.T) {
	db := openTest(t)
	subscribe(t, db, "feed/b", feedWants("b.example"))
	subscribe(t, db, "log", actionWants)
	p := params(t0, 2)
	p.RelayOnly = true
	out, l, err := db.AddReport(report("<r1@a>", "203.0.113.7", "a.example"), p)
	if err != nil || out != Relayed || l.IP.IsValid() {
		t.Fatalf("AddReport = %v %+v %v, want Relayed and no listing", out, l, err)
	}
	ip := netip.MustParseAddr("203.0.113.7")
	if _, ok, _ := db.Lookup(ip); ok {
		t.Error("listed")
	}
	if seen, _ := db.Seen("<r1@a>"); !seen {
		t.Error("not in the history")
	}
	if a, _ := db.Article("<r1@a>"); a == nil {
		t.Error("article not stored for the feeds")
	}
	items, err := db.QueueNext("feed/b", t0, 10, nil)
	if err != nil || len(items) != 1 || items[0].Event.MessageID != "<r1@a>" || items[0].Event.Listed {
		t.Errorf("feed queue = %+v %v", items, err)
	}
	if d, _ := db.QueueDepth("log"); d != 0 {
		t.Errorf("a relayed report reached the actions (%d events): it counts for nothing here", d)
	}
	if _, ok, _ := db.ReportOf("<r1@a>"); ok {
		t.Error("a relayed report has a report record: a cancel would undo what it never did")
	}
	// It did not count towards the threshold: one more origin does not list.
	if out, _, _ := db.AddReport(report("<r2@b>", "203.0.113.7", "b.example"), params(t0, 2)); out != Pending {
		t.Errorf("next report = %v, want Pending (the relayed one does not count)", out)
	}
	if out, _, _ := db.AddReport(report("<r1@a>", "203.0.113.7", "a.example"), params(t0, 2)); out != Duplicate {
		t.Errorf("the relayed report again = %v, want Duplicate", out)
	}
}

// A report stored only to relay is shown by ReportsOf (dstctl why), with
// its reason and class, and counts for nothing; pruning the history
// forgets it.
func TestRelayOnlyShown(t *testing.T) {
	db := openTest(t)
	p := params(t0, 1)
	p.RelayOnly, p.RelayReason = true, "policy.list_classes leaves out backscatter"
	r := report("<b1@a>", "203.0.113.7", "a.example")
	r.Class = "backscatter"
	if out, _, err := db.AddReport(r, p); err != nil || out != Relayed {
		t.Fatalf("AddReport = %v %v, want Relayed", out, err)
	}
	// A counted report of the same address, from another origin.
	if out, _, err := db.AddReport(report("<s1@b>", "203.0.113.7", "b.example"), params(t0.Add(time.Minute), 1)); err != nil || out != Listed {
		t.Fatalf("spam report = %v %v, want Listed", out, err)
	}
	ip := netip.MustParseAddr("203.0.113.7")
	reps, err := db.ReportsOf(ip)
	if err != nil || len(reps) != 2 {
		t.Fatalf("ReportsOf = %+v %v, want the relayed and the counted report", reps, err)
	}
	var relayed, counted ReportDetail
	for _, d := range reps {
		if d.RelayOnly {
			relayed = d
		} else {
			counted = d
		}
	}
	if relayed.MessageID != "<b1@a>" || relayed.Class != "backscatter" || relayed.RelayReason != p.RelayReason || relayed.Origin != "a.example" || !relayed.Hit.Equal(t0) {
		t.Errorf("relayed report = %+v", relayed)
	}
	if counted.MessageID != "<s1@b>" || counted.RelayOnly {
		t.Errorf("counted report = %+v", counted)
	}
	// The relayed one corroborated nothing and counts in no episode.
	if counted.Corroborated {
		t.Error("a relayed report corroborated a counted one")
	}
	if n, err := db.PruneHistory(t0.Add(time.Hour), 100); err != nil || n != 2 {
		t.Fatalf("PruneHistory = %d %v, want 2", n, err)
	}
	if reps, err := db.ReportsOf(ip); err != nil || len(reps) != 0 {
		t.Errorf("after pruning, ReportsOf = %+v %v, want none", reps, err)
	}
	checkConsistency(t, db)
}
