package store

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ops maps origins to operators as a keyring with operator= would.
func ops(m map[string]string) func(string) string {
	return func(o string) string { return m[o] }
}

// TestThresholdCountsOperators: two sites of one operator are one
// reporter; a second operator lists.
func TestThresholdCountsOperators(t *testing.T) {
	db := openTest(t)
	p := params(t0, 2)
	p.OperatorOf = ops(map[string]string{"a1": "acme", "a2": "acme"})
	ip := "203.0.113.5"
	for i, tc := range []struct {
		origin string
		want   Outcome
	}{{"a1", Pending}, {"a2", Pending}, {"b", Listed}} {
		p.Now = t0.Add(time.Duration(i) * time.Minute)
		out, l, err := db.AddReport(report(fmt.Sprintf("<%d>", i), ip, tc.origin), p)
		if err != nil || out != tc.want {
			t.Fatalf("report from %s = %v, %v; want %v", tc.origin, out, err, tc.want)
		}
		if out == Listed && len(l.Origins) != 3 {
			t.Errorf("listing origins = %v, want all three sites", l.Origins)
		}
	}
	// Without operators, the same reports list at the second site.
	db2 := openTest(t)
	p.OperatorOf = nil
	for i, o := range []string{"a1", "a2"} {
		p.Now = t0.Add(time.Duration(i) * time.Minute)
		out, _, _ := db2.AddReport(report(fmt.Sprintf("<%d>", i), ip, o), p)
		if want := []Outcome{Pending, Listed}[i]; out != want {
			t.Errorf("without operators, report %d = %v, want %v", i, out, want)
		}
	}
}

// TestCancelCountsOperators: a cancel leaving one operator under a
// threshold of two removes the listing even if two of its sites remain.
func TestCancelCountsOperators(t *testing.T) {
	db := openTest(t)
	opf := ops(map[string]string{"a1": "acme", "a2": "acme"})
	p := params(t0, 2)
	p.OperatorOf = opf
	for i, o := range []string{"a1", "a2", "b"} {
		if _, _, err := db.AddReport(report(fmt.Sprintf("<%d>", i), "203.0.113.6", o), p); err != nil {
			t.Fatal(err)
		}
	}
	res, err := db.Cancel(Cancel{MessageID: "<c>", Target: "<2>", Signer: "b"}, CancelParams{Now: t0, Threshold: 2, OperatorOf: opf})
	if err != nil || !res.Delisted {
		t.Errorf("cancel of the second operator's report = %+v, %v; want delisted", res, err)
	}
}

// TestRateCap: beyond MaxNewListingsPerHour new listings of one origin are
// held pending; another origin still lists; the next hour the origin
// lists again; extensions are not capped.
func TestRateCap(t *testing.T) {
	db := openTest(t)
	p := params(t0, 1)
	p.MaxNewListingsPerHour = 2
	add := func(id, ip, origin string, at time.Duration) Outcome {
		t.Helper()
		p.Now = t0.Add(at)
		out, _, err := db.AddReport(report(id, ip, origin), p)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for i, tc := range []struct {
		ip, origin string
		at         time.Duration
		want       Outcome
	}{
		{"203.0.113.1", "a", 0, Listed},
		{"203.0.113.2", "a", time.Minute, Listed},
		{"203.0.113.3", "a", 2 * time.Minute, Held},
		{"203.0.113.1", "a", 3 * time.Minute, Extended},
		{"203.0.113.4", "b", 4 * time.Minute, Listed},
		{"203.0.113.3", "a", 70 * time.Minute, Listed}, // next hour
	} {
		if got := add(fmt.Sprintf("<%d>", i), tc.ip, tc.origin, tc.at); got != tc.want {
			t.Errorf("step %d (%s from %s) = %v, want %v", i, tc.ip, tc.origin, got, tc.want)
		}
	}
	recs, err := db.Origins()
	if err != nil || len(recs) != 2 || recs[0].Origin != "a" || recs[0].Held != 1 || recs[0].Reports != 5 || recs[0].Addresses != 3 {
		t.Errorf("Origins = %+v, %v; want a with 1 held, 5 reports, 3 addresses", recs, err)
	}
	// One key per origin: the earlier hour was dropped.
	if keys := countKeys(t, db, bucketOriginRate); keys != 2 {
		t.Errorf("origin_rate holds %d keys, want 2", keys)
	}
}

// TestProbation: an origin on probation has its reports stored and relayed
// but not listed, until another operator has corroborated k of them.
func TestProbation(t *testing.T) {
	db := openTest(t)
	var relayed []string
	if err := db.Subscribe("feed", func(ev Event) bool {
		if ev.Cause == CauseRelay {
			relayed = append(relayed, ev.MessageID)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	p := params(t0, 1)
	p.ProbationCorroborations = 2
	p.OperatorOf = ops(map[string]string{"n2": "newco"})
	add := func(id, ip, origin string, probation bool) Outcome {
		t.Helper()
		r := report(id, ip, origin)
		r.Probation = probation
		p.Now = p.Now.Add(time.Minute)
		out, _, err := db.AddReport(r, p)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	steps := []struct {
		id, ip, origin string
		probation      bool
		want           Outcome
	}{
		{"<1>", "203.0.113.1", "new", true, Probation},
		{"<2>", "203.0.113.1", "old", false, Listed},     // corroborates <1>
		{"<3>", "203.0.113.2", "n2", false, Listed},      // not on probation (other keyring entry)
		{"<4>", "203.0.113.2", "new", true, Probation},   // corroborated by n2 (another operator)
		{"<5>", "203.0.113.3", "new", true, Listed},      // earned: 2 corroborated
		{"<6>", "203.0.113.4", "other", true, Probation}, // another probationer
		{"<7>", "203.0.113.4", "third", true, Probation}, // probationers do not corroborate each other
	}
	for _, s := range steps {
		if got := add(s.id, s.ip, s.origin, s.probation); got != s.want {
			t.Errorf("%s from %s = %v, want %v", s.id, s.origin, got, s.want)
		}
	}
	if want := []string{"<1>", "<4>", "<6>", "<7>"}; fmt.Sprint(relayed) != fmt.Sprint(want) {
		t.Errorf("relayed on probation: %v, want %v", relayed, want)
	}
	recs := originMap(t, db)
	if n := recs["new"]; n.Corroborated != 2 || n.Reports != 3 || n.OnProbation(true, 2) {
		t.Errorf("record of new = %+v; want 2 corroborated of 3, probation over", n)
	}
	if o := recs["other"]; o.Corroborated != 0 || !o.OnProbation(true, 2) {
		t.Errorf("record of other = %+v; want nothing corroborated, still on probation", o)
	}
	// A report on probation corroborates nobody: <2> is not corroborated.
	// The own site is never on probation.
	p.Self = "self"
	if got := add("<8>", "203.0.113.8", "self", true); got != Listed {
		t.Errorf("own report on probation = %v, want listed", got)
	}
	d, err := db.ReportsOf(netip.MustParseAddr("203.0.113.1"))
	if err != nil || len(d) != 2 || !d[0].Probation || !d[0].Corroborated || d[1].Probation || d[1].Corroborated {
		t.Errorf("ReportsOf = %+v, %v", d, err)
	}
}

// TestRelistEpisodes: a listing made again after it expired gets the
// lifetime of the episodes in the stored reports, not of its last report.
func TestRelistEpisodes(t *testing.T) {
	db := openTest(t)
	ip := "203.0.113.9"
	for i, tc := range []struct {
		at   time.Duration
		want time.Duration // lifetime from the report
		ep   int
	}{
		{0, time.Hour, 1},
		{25*time.Hour + time.Minute, 2 * time.Hour, 2},
		{28 * time.Hour, 2 * time.Hour, 2}, // after expiry, same episode
		{60 * time.Hour, 4 * time.Hour, 3},
	} {
		now := t0.Add(tc.at)
		if _, err := db.Expire(now, 100); err != nil {
			t.Fatal(err)
		}
		out, l, err := db.AddReport(report(fmt.Sprintf("<%d>", i), ip, "a"), params(now, 1))
		if err != nil || out != Listed || l.Episodes != tc.ep || !l.Expires.Equal(now.Add(tc.want)) {
			t.Errorf("report %d: %v, episodes %d, lifetime %v, %v; want listed, %d, %v", i, out, l.Episodes, l.Expires.Sub(now), err, tc.ep, tc.want)
		}
	}
}

// TestDispute: an administrator's delisting counts against the origins
// that reported the address (not this site); past the share, the origin is
// demoted to probation, and earns its way back.
func TestDispute(t *testing.T) {
	db := openTest(t)
	p := params(t0, 1)
	p.Self = "self"
	p.ProbationCorroborations = 1
	for i := range 4 {
		ip := fmt.Sprintf("203.0.113.%d", i+1)
		if _, _, err := db.AddReport(report(fmt.Sprintf("<p%d>", i), ip, "peer"), p); err != nil {
			t.Fatal(err)
		}
		if _, _, err := db.AddReport(report(fmt.Sprintf("<s%d>", i), ip, "self"), p); err != nil {
			t.Fatal(err)
		}
	}
	dp := DisputeParams{Self: "self", Share: 0.3, MinAddresses: 4}
	res, err := db.AdminDelist(netip.MustParseAddr("203.0.113.1"), t0, "dstctl", dp)
	if err != nil || !res.Found || fmt.Sprint(res.Disputed) != "[peer]" || len(res.Demoted) != 0 {
		t.Fatalf("first delisting = %+v, %v; want peer disputed, not demoted (1/4)", res, err)
	}
	res, err = db.AdminDelist(netip.MustParseAddr("203.0.113.2"), t0, "dstctl", dp)
	if err != nil || fmt.Sprint(res.Demoted) != "[peer]" {
		t.Fatalf("second delisting = %+v, %v; want peer demoted (2/4 > 0.3)", res, err)
	}
	r := originMap(t, db)["peer"]
	if !r.Demoted || r.Disputed != 2 || !r.OnProbation(false, 1) {
		t.Errorf("peer after demotion = %+v", r)
	}
	if _, ok := originMap(t, db)["self"]; !ok {
		t.Error("no record of the own site")
	} else if s := originMap(t, db)["self"]; s.Disputed != 0 {
		t.Errorf("own site disputed: %+v", s)
	}
	// Demoted: its next report is on probation; corroborated by self, it
	// earns its trust back.
	out, _, err := db.AddReport(report("<p9>", "203.0.113.9", "peer"), p)
	if err != nil || out != Probation {
		t.Errorf("demoted peer's report = %v, %v; want probation", out, err)
	}
	if out, _, _ := db.AddReport(report("<s9>", "203.0.113.9", "self"), p); out != Listed {
		t.Errorf("own corroborating report = %v", out)
	}
	if r := originMap(t, db)["peer"]; r.Demoted || r.OnProbation(false, 1) {
		t.Errorf("peer after a corroboration = %+v; want trusted again", r)
	}
}

func TestCountEpisodes(t *testing.T) {
	h := func(hours ...float64) []time.Time {
		var out []time.Time
		for _, x := range hours {
			out = append(out, t0.Add(time.Duration(x*float64(time.Hour))))
		}
		return out
	}
	for _, tc := range []struct {
		hits []time.Time
		want int
	}{
		{nil, 1}, {h(0), 1}, {h(0, 24), 1}, {h(0, 24.1), 2}, {h(50, 0, 24.5, 1), 2}, {h(0, 1, 2, 30, 31, 60), 3},
	} {
		if got := countEpisodes(tc.hits); got != tc.want {
			t.Errorf("countEpisodes(%v) = %d, want %d", tc.hits, got, tc.want)
		}
	}
}

func countKeys(t *testing.T, db *DB, bucket string) int {
	t.Helper()
	var n int
	if err := db.bdb.View(func(tx *bolt.Tx) error {
		n = tx.Bucket([]byte(bucket)).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func originMap(t *testing.T, db *DB) map[string]OriginRecord {
	t.Helper()
	recs, err := db.Origins()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]OriginRecord{}
	for _, r := range recs {
		m[r.Origin] = r
	}
	return m
}
