package store

import (
	"fmt"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// observed collects the commits an observer sees.
type observed struct {
	mu      sync.Mutex
	commits []Commit
}

func observe(db *DB) *observed {
	o := &observed{}
	db.OnCommit(func(c Commit) {
		o.mu.Lock()
		o.commits = append(o.commits, c)
		o.mu.Unlock()
	})
	return o
}

// take returns the commits seen since the last call.
func (o *observed) take() []Commit {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := o.commits
	o.commits = nil
	return c
}

// kinds lists the Kind and address of each listing change.
func kinds(c Commit) []string {
	var out []string
	for _, ch := range c.Listings {
		out = append(out, ch.Kind.String()+" "+ch.Listing.IP.String())
	}
	return out
}

// TestSubscribeRouting: each write puts each event on the queues whose
// subscriber wants it, and the wants see the Cause and Path that route
// it; the queue keeps neither.
func TestSubscribeRouting(t *testing.T) {
	db := openTest(t)
	subscribe(t, db, "feed/b", feedWants("b.example"))
	subscribe(t, db, "feed/c", feedWants("c.example"))
	subscribe(t, db, "log", actionWants)
	subscribe(t, db, "dnsupdate", dnsWants)
	var seen []Event
	subscribe(t, db, "all", func(ev Event) bool { seen = append(seen, ev); return true })

	listed := report("<r1@a>", "203.0.113.7", "a.example")
	listed.Path = "c.example!a.example!not-for-mail"
	if out, _, err := db.AddReport(listed, params(t0, 1)); err != nil || out != Listed {
		t.Fatalf("AddReport = %v, %v", out, err)
	}
	pending := report("<r2@a>", "198.51.100.1", "a.example")
	if out, _, err := db.AddReport(pending, params(t0, 2)); err != nil || out != Pending {
		t.Fatalf("AddReport = %v, %v", out, err)
	}
	relayed := report("<r3@a>", "192.0.2.9", "a.example")
	p := params(t0, 1)
	p.RelayOnly = true
	if out, _, err := db.AddReport(relayed, p); err != nil || out != Relayed {
		t.Fatalf("AddReport = %v, %v", out, err)
	}
	c := cancelOf("<c1@a>", "<r1@a>", "a.example")
	c.Path = "b.example!a.example!not-for-mail"
	if res, err := db.Cancel(c, cparams(t0.Add(time.Minute), 1)); err != nil || !res.Delisted {
		t.Fatalf("Cancel = %+v, %v", res, err)
	}
	listAt(t, db, "<r4@a>", "203.0.113.8", 0)
	if ok, err := db.Delist(netip.MustParseAddr("203.0.113.8"), t0.Add(time.Minute), "dstctl"); err != nil || !ok {
		t.Fatalf("Delist = %v, %v", ok, err)
	}
	listAt(t, db, "<r5@a>", "203.0.113.9", 0)
	if gone, err := db.Expire(t0.Add(2*time.Hour), 10); err != nil || len(gone) != 1 {
		t.Fatalf("Expire = %v, %v", gone, err)
	}

	ids := func(q string) []string {
		var out []string
		for _, ev := range queued(t, db, q) {
			if ev.Cause != 0 || ev.Path != "" {
				t.Errorf("queue %s keeps the routing of %+v", q, ev)
			}
			out = append(out, ev.Kind.String()+" "+ev.MessageID+ev.IP.String())
		}
		return out
	}
	for _, tc := range []struct {
		queue string
		want  []string
	}{
		// b.example gets everything but the cancel, whose Path names it.
		{"feed/b", []string{"report <r1@a>203.0.113.7", "report <r2@a>198.51.100.1", "report <r3@a>192.0.2.9",
			"report <r4@a>203.0.113.8", "report <r5@a>203.0.113.9"}},
		// c.example is in the first report's Path.
		{"feed/c", []string{"report <r2@a>198.51.100.1", "report <r3@a>192.0.2.9", "report <c1@a>203.0.113.7",
			"report <r4@a>203.0.113.8", "report <r5@a>203.0.113.9"}},
		// The actions: this site's list only, no relayed report, no cancel article.
		{"log", []string{"report <r1@a>203.0.113.7", "report <r2@a>198.51.100.1", "delisted 203.0.113.7",
			"report <r4@a>203.0.113.8", "delisted 203.0.113.8", "report <r5@a>203.0.113.9", "expired 203.0.113.9"}},
		// DNS: what is published changes.
		{"dnsupdate", []string{"report <r1@a>203.0.113.7", "delisted 203.0.113.7",
			"report <r4@a>203.0.113.8", "delisted 203.0.113.8", "report <r5@a>203.0.113.9", "expired 203.0.113.9"}},
	} {
		if got := ids(tc.queue); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("queue %s:\n got %q\nwant %q", tc.queue, got, tc.want)
		}
	}
	var causes []string
	for _, ev := range seen {
		causes = append(causes, ev.Cause.String())
	}
	if want := []string{"listing", "listing", "relay", "listing", "cancel", "listing", "listing", "listing", "listing"}; !reflect.DeepEqual(causes, want) {
		t.Errorf("causes offered %q, want %q", causes, want)
	}
	if seen[0].Path != listed.Path || seen[4].Path != c.Path {
		t.Errorf("Path offered %q and %q, want the articles'", seen[0].Path, seen[4].Path)
	}
}

func TestSubscribeChecks(t *testing.T) {
	db := openTest(t)
	subscribe(t, db, "log", nil)
	for _, q := range []string{"log", "", string(make([]byte, maxQueueNameLen+1))} {
		if err := db.Subscribe(q, nil); err == nil {
			t.Errorf("Subscribe(%.20q) accepted", q)
		}
	}
}

// TestOnCommit: the observers hear once of each write that changed a
// listing or queued an event, with what that write did, and of nothing
// else.
func TestOnCommit(t *testing.T) {
	db := openTest(t)
	subscribe(t, db, "log", actionWants)
	o := observe(db)
	o2 := observe(db)
	ip := netip.MustParseAddr("203.0.113.7")

	out, l, err := db.AddReport(report("<r1@a>", "203.0.113.7", "a.example"), params(t0, 1))
	if err != nil || out != Listed {
		t.Fatal(out, err)
	}
	// The change names the report that made it (trap-to-listed latency).
	want := []Commit{{Listings: []Change{{Kind: ChangeListed, Listing: l, Origin: "a.example", Date: t0}}, Queued: map[string]int{"log": 1}}}
	if got := o.take(); !reflect.DeepEqual(got, want) {
		t.Errorf("listed: commits %+v, want %+v", got, want)
	}
	if got := o2.take(); len(got) != 1 {
		t.Errorf("second observer saw %d commits, want 1", len(got))
	}
	// A duplicate writes nothing; a refused Message-ID and queue
	// acknowledgements change no listing and queue nothing.
	db.AddReport(report("<r1@a>", "203.0.113.7", "a.example"), params(t0, 1))
	db.RecordRefused("<bad@x>", t0)
	db.QueueAck("log", 1)
	if got := o.take(); len(got) != 0 {
		t.Errorf("commits %+v for writes that changed nothing observed", got)
	}
	_, l2, _ := db.AddReport(report("<r2@b>", "203.0.113.7", "b.example"), params(t0.Add(time.Minute), 1))
	if got := o.take(); len(got) != 1 || !reflect.DeepEqual(kinds(got[0]), []string{"extended 203.0.113.7"}) || !reflect.DeepEqual(got[0].Listings[0].Listing, l2) {
		t.Errorf("extended: commits %+v", got)
	}
	// Pending: an event, no listing.
	db.AddReport(report("<r3@a>", "198.51.100.1", "a.example"), params(t0, 2))
	if got := o.take(); len(got) != 1 || len(got[0].Listings) != 0 || got[0].Queued["log"] != 1 {
		t.Errorf("pending: commits %+v", got)
	}
	// A cancel that leaves the listing: updated; one that removes it: cancelled.
	db.Cancel(cancelOf("<c1@a>", "<r1@a>", "a.example"), cparams(t0.Add(time.Minute), 1))
	if got := o.take(); len(got) != 1 || !reflect.DeepEqual(kinds(got[0]), []string{"updated 203.0.113.7"}) || len(got[0].Queued) != 0 {
		t.Errorf("cancel, still listed: commits %+v", got)
	}
	db.Cancel(cancelOf("<c2@b>", "<r2@b>", "b.example"), cparams(t0.Add(time.Minute), 1))
	if got := o.take(); len(got) != 1 || !reflect.DeepEqual(kinds(got[0]), []string{"cancelled 203.0.113.7"}) || got[0].Queued["log"] != 1 {
		t.Errorf("cancel, delisted: commits %+v", got)
	}
	// Delist: one commit; of an address not listed, none.
	listAt(t, db, "<r4@a>", "203.0.113.8", 0)
	o.take()
	db.Delist(netip.MustParseAddr("203.0.113.8"), t0, "dstctl")
	db.Delist(ip, t0, "dstctl")
	if got := o.take(); len(got) != 1 || !reflect.DeepEqual(kinds(got[0]), []string{"delisted 203.0.113.8"}) || got[0].Queued["log"] != 1 {
		t.Errorf("delist: commits %+v", got)
	}
	// Expire: one commit for all it removed.
	listAt(t, db, "<r5@a>", "192.0.2.1", 0)
	listAt(t, db, "<r6@a>", "192.0.2.2", 0)
	o.take()
	db.Expire(t0.Add(2*time.Hour), 10)
	if got := o.take(); len(got) != 1 || !reflect.DeepEqual(kinds(got[0]), []string{"expired 192.0.2.1", "expired 192.0.2.2"}) || got[0].Queued["log"] != 2 {
		t.Errorf("expire: commits %+v", got)
	}
	// Enqueue to a named queue.
	db.Enqueue([]string{"x", "y"}, Event{Kind: EventDelisted, Time: t0, IP: ip})
	if got := o.take(); len(got) != 1 || !reflect.DeepEqual(got[0].Queued, map[string]int{"x": 1, "y": 1}) {
		t.Errorf("enqueue: commits %+v", got)
	}
}

// TestOnCommitGroupCommit: writers that share one commit are each told
// of their own part, once.
func TestOnCommitGroupCommit(t *testing.T) {
	db := openTest(t)
	subscribe(t, db, "log", nil)
	o := observe(db)
	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			db.AddReport(report(fmt.Sprintf("<%d@x>", i), fmt.Sprintf("192.0.2.%d", i), "a"), params(t0, 1))
		})
	}
	wg.Wait()
	got := o.take()
	if len(got) != n {
		t.Fatalf("%d commits observed for %d reports", len(got), n)
	}
	ips := map[netip.Addr]bool{}
	for _, c := range got {
		if len(c.Listings) != 1 || c.Listings[0].Kind != ChangeListed || c.Queued["log"] != 1 {
			t.Errorf("commit %+v, want one listing and one event", c)
			continue
		}
		ips[c.Listings[0].Listing.IP] = true
	}
	if len(ips) != n {
		t.Errorf("%d distinct addresses observed, want %d", len(ips), n)
	}
}

// TestEventsAtomic: when a write fails, none of its events is queued and
// no observer hears of it; the change and its events commit together.
func TestEventsAtomic(t *testing.T) {
	db := openTest(t)
	subscribe(t, db, "log", nil)
	subscribe(t, db, "broken", nil)
	o := observe(db)
	// A plain key where the queue's bucket should be: appending to it fails.
	if err := db.bdb.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketQueues)).Put([]byte("broken"), []byte("x"))
	}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.AddReport(report("<r1@a>", "203.0.113.7", "a.example"), params(t0, 1)); err == nil {
		t.Fatal("AddReport succeeded with a broken queue")
	}
	if seen, _ := db.Seen("<r1@a>"); seen {
		t.Error("the report is in the history although its events were not queued")
	}
	if _, ok, _ := db.Lookup(netip.MustParseAddr("203.0.113.7")); ok {
		t.Error("listed although the events were not queued")
	}
	if d, _ := db.QueueDepth("log"); d != 0 {
		t.Errorf("queue log has %d events from a write that failed", d)
	}
	if got := o.take(); len(got) != 0 {
		t.Errorf("observers told of a write that failed: %+v", got)
	}
	if err := db.bdb.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketQueues)).Delete([]byte("broken"))
	}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.AddReport(report("<r1@a>", "203.0.113.7", "a.example"), params(t0, 1)); err != nil {
		t.Fatal(err)
	}
	if got := o.take(); len(got) != 1 || !reflect.DeepEqual(got[0].Queued, map[string]int{"log": 1, "broken": 1}) {
		t.Errorf("commits %+v after the repair", got)
	}
}
