package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// t0 is the tests' fixed "now"; tests move it by hand, so no test depends on
// the wall clock.
var t0 = time.Date(2026, 11, 28, 10, 10, 10, 0, time.UTC)

// openTest opens a fresh store in strict mode, closed when the test ends.
func openTest(t testing.TB) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "dst.db"), Options{Strict: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		checkConsistency(t, db)
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

// params returns typical ingest parameters at now.
func params(now time.Time, threshold int) IngestParams {
	return IngestParams{
		Now:        now,
		ExpireBase: time.Hour,
		ExpireMax:  8 * time.Hour,
		Threshold:  threshold,
		Window:     time.Hour,
	}
}

func report(id, ip, origin string) Report {
	return Report{
		MessageID: id,
		IP:        netip.MustParseAddr(ip),
		Origin:    origin,
		Date:      t0,
		Article:   []byte("Message-ID: " + id + "\r\n\r\nbody\r\n"),
	}
}

// checkConsistency compares every counter and index with a full scan of the
// data it summarises.
func checkConsistency(t testing.TB, db *DB) {
	t.Helper()
	err := db.bdb.View(func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		count := func(bk *bolt.Bucket) int { return bk.Stats().KeyN }

		var listed []string
		if err := b.listings.ForEach(func(k, v []byte) error {
			l, err := readListing(b, k, v)
			if err != nil {
				return err
			}
			if b.expiry.Get(joinKey(timeKey(l.Expires), k)) == nil {
				return fmt.Errorf("listing %s has no expiry index entry for %v", l.IP, l.Expires)
			}
			if b.sightings.Get(k) != nil {
				return fmt.Errorf("listed %s also has sightings", l.IP)
			}
			if len(l.Origins) == 0 || len(l.Origins) > maxListingOrigins {
				return fmt.Errorf("listing %s has %d origins", l.IP, len(l.Origins))
			}
			listed = append(listed, l.IP.String())
			return nil
		}); err != nil {
			return err
		}
		if err := b.sightings.ForEach(func(k, v []byte) error {
			s, err := decodeSightings(v)
			if err != nil {
				return err
			}
			if b.sightingsTime.Get(joinKey(timeKey(latestSighting(s.List)), k)) == nil {
				return fmt.Errorf("sightings of %s have no index entry", parseIPKey(k))
			}
			return nil
		}); err != nil {
			return err
		}
		live, relayed, articles := 0, 0, 0
		if err := b.arrivals.ForEach(func(k, v []byte) error {
			a, err := decodeArrival(k, v, b.on)
			if err != nil {
				return err
			}
			if s, err := lookupHistory(b, []byte(a.MessageID)); err != nil || s == nil || !bytes.Equal(s.key, k) {
				return fmt.Errorf("arrival %s of %x: the history does not lead to it (%v)", a.MessageID, k, err)
			}
			if a.Article != nil {
				articles++
			}
			if r := a.Relayed; r != nil {
				relayed++
				if p, _, err := reportIPPrefix(b, r.IP, r.Origin); err != nil || b.relayedIP.Get(joinKey(p, k)) == nil {
					return fmt.Errorf("relayed report %s not indexed by address", a.MessageID)
				}
			}
			r := a.Report
			if r == nil {
				return nil
			}
			p, _, err := reportIPPrefix(b, r.IP, r.Origin)
			if err != nil {
				return err
			}
			indexed := p != nil && b.reportIP.Get(joinKey(p, k)) != nil
			if indexed == r.Cancelled {
				return fmt.Errorf("report %s (cancelled %v) indexed by address: %v", a.MessageID, r.Cancelled, indexed)
			}
			if !r.Cancelled {
				live++
			}
			return nil
		}); err != nil {
			return err
		}
		if n := count(b.relayedIP); n != relayed {
			return fmt.Errorf("relayed address index has %d entries for %d relayed reports", n, relayed)
		}
		if n := count(b.reportIP); n != live {
			return fmt.Errorf("report address index has %d entries for %d live reports", n, live)
		}
		for _, c := range []struct {
			what      string
			counter   string
			got, want int
		}{
			{"listings", countListings, int(getCounter(b.meta, countListings)), len(listed)},
			{"expiry index", countListings, count(b.expiry), len(listed)},
			{"pending", countPending, int(getCounter(b.meta, countPending)), count(b.sightings)},
			{"sightings index", countPending, count(b.sightingsTime), count(b.sightings)},
			{"history", countHistory, int(getCounter(b.meta, countHistory)), count(b.arrivals)},
			{"history keys", countHistory, historyRefs(b), count(b.arrivals)},
			{"articles", countArticles, int(getCounter(b.meta, countArticles)), articles},
		} {
			if c.got != c.want {
				return fmt.Errorf("%s: counter or index says %d, scan says %d", c.what, c.got, c.want)
			}
		}
		return b.queues.ForEachBucket(func(name []byte) error {
			q := b.queues.Bucket(name)
			if got, want := int(getCounter(b.meta, depthPrefix+string(name))), count(q); got != want {
				return fmt.Errorf("queue %s: depth counter %d, items %d", name, got, want)
			}
			return nil
		})
	})
	if err != nil {
		t.Errorf("store is inconsistent: %v", err)
	}
}

// historyRefs counts the arrival keys the history holds.
func historyRefs(b buckets) int {
	n := 0
	_ = b.history.ForEach(func(_, v []byte) error {
		n += len(v) / arrivalKeyLen
		return nil
	})
	return n
}

// TestHistoryCollision puts two Message-IDs under one history key, as a
// hash collision would: each is found as itself, and pruning one keeps
// the other.
func TestHistoryCollision(t *testing.T) {
	db := openTest(t)
	for i, id := range []string{"<a@x>", "<b@x>"} {
		if err := db.RecordRefused(id, t0.Add(time.Duration(i)*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	err := db.bdb.Update(func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		ka, kb := historyKey([]byte("<a@x>")), historyKey([]byte("<b@x>"))
		both := append(bytes.Clone(b.history.Get(kb)), b.history.Get(ka)...)
		if err := b.history.Delete(kb); err != nil {
			return err
		}
		return b.history.Put(ka, both)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"<a@x>", "<c@x>"} {
		if seen, err := db.Seen(id); err != nil || seen != (id == "<a@x>") {
			t.Errorf("Seen(%s) = %v, %v", id, seen, err)
		}
	}
	err = db.bdb.View(func(tx *bolt.Tx) error {
		s, err := lookupHistory(bucketsOf(tx), []byte("<a@x>"))
		if err != nil || s == nil || s.MessageID != "<a@x>" {
			t.Errorf("lookup of <a@x> under a shared key: %+v, %v", s, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Pruning <a@x> (the older) leaves <b@x>'s arrival key under the
	// shared key.
	if n, err := db.PruneHistory(t0.Add(30*time.Minute), 10); err != nil || n != 1 {
		t.Fatalf("PruneHistory = %d, %v", n, err)
	}
	err = db.bdb.Update(func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		ka, kb := historyKey([]byte("<a@x>")), historyKey([]byte("<b@x>"))
		keys, err := historyKeys(b.history.Get(ka))
		if err != nil || len(keys) != 1 {
			t.Fatalf("after pruning <a@x>: keys %x, %v; want <b@x>'s alone", keys, err)
		}
		if s, err := loadArrival(b, keys[0]); err != nil || s == nil || s.MessageID != "<b@x>" {
			t.Errorf("the key left is not <b@x>'s: %+v, %v", s, err)
		}
		// Back where a real hash would have it, for the consistency check.
		if err := b.history.Put(kb, keys[0]); err != nil {
			return err
		}
		return b.history.Delete(ka)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenCreatesPrivateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dst.db")
	db, err := Open(path, Options{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("database file mode %v is readable by others", perm)
	}
}

func TestOpenInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dst.db")
	db, err := Open(path, Options{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	start := time.Now()
	db2, err := Open(path, Options{Timeout: 100 * time.Millisecond})
	if err == nil {
		db2.Close()
		t.Fatal("second Open of the same file succeeded")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("second Open took %v to fail", d)
	}
	want := fmt.Sprintf("database %s is in use by another process (is dstd already running?)", path)
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	var inUse *InUseError
	if !errors.As(err, &inUse) || inUse.Path != path {
		t.Errorf("error %#v is not an *InUseError for %s", err, path)
	}
}

func TestOpenRejectsOtherLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dst.db")
	db, err := Open(path, Options{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.bdb.Update(func(tx *bolt.Tx) error {
		return putCounter(tx.Bucket([]byte(bucketMeta)), metaLayout, layoutVersion+1)
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(path, Options{Strict: true}); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("layout version %d", layoutVersion+1)) {
		t.Errorf("Open of a newer layout: err = %v, want one naming layout version %d", err, layoutVersion+1)
	}
}

// TestReopen checks that everything written is still there after Close, and
// with sync on, as dstd runs.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dst.db")
	db, err := Open(path, Options{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	subscribe(t, db, "log", func(ev Event) bool { return ev.Listed })
	r := report("<a@x>", "203.0.113.7", "site-a.example")
	if _, _, err := db.AddReport(r, params(t0, 1)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.AddReport(report("<b@x>", "2001:db8::1", "site-b.example"), params(t0, 2)); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordRefused("<bad@x>", t0); err != nil {
		t.Fatal(err)
	}
	want, _, err := db.Lookup(r.IP)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = Open(path, Options{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, ok, err := db.Lookup(r.IP)
	if err != nil || !ok || !reflect.DeepEqual(got, want) {
		t.Errorf("after reopen Lookup = %+v, %v, %v; want %+v", got, ok, err, want)
	}
	for _, id := range []string{"<a@x>", "<b@x>", "<bad@x>"} {
		if seen, err := db.Seen(id); err != nil || !seen {
			t.Errorf("after reopen Seen(%s) = %v, %v", id, seen, err)
		}
	}
	if a, err := db.Article("<a@x>"); err != nil || string(a) != string(r.Article) {
		t.Errorf("after reopen Article = %q, %v", a, err)
	}
	if items, err := db.QueueNext("log", t0, 10, nil); err != nil || len(items) != 1 || items[0].Event.MessageID != "<a@x>" {
		t.Errorf("after reopen queue log = %+v, %v", items, err)
	}
	s, err := db.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.Listings != 1 || s.Pending != 1 || s.History != 3 || s.Articles != 2 || s.FileBytes <= 0 {
		t.Errorf("after reopen Stats = %+v", s)
	}
	checkConsistency(t, db)
}

// TestCountersProperty runs a random mix of every writing operation and
// checks after each step that counters and indexes agree with the data, and
// that Stats.Listings matches ForEachListing.
func TestCountersProperty(t *testing.T) {
	db := openTest(t)
	subscribe(t, db, "log", nil)
	rng := rand.New(rand.NewPCG(1, 2))
	now := t0
	ips := make([]netip.Addr, 20)
	for i := range ips {
		if i%2 == 0 {
			ips[i] = netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})
		} else {
			ips[i] = netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", i))
		}
	}
	origins := []string{"a.example", "b.example", "c.example"}
	// What the run did, so the test can show it reached every path.
	did := map[string]int{}

	for step := range 600 {
		now = now.Add(time.Duration(rng.IntN(20)) * time.Minute)
		var err error
		switch op := rng.IntN(10); {
		case op < 6:
			id := fmt.Sprintf("<%d@x>", rng.IntN(400)) // some repeat: duplicates
			r := Report{MessageID: id, IP: ips[rng.IntN(len(ips))], Origin: origins[rng.IntN(len(origins))]}
			if rng.IntN(2) == 0 {
				r.Article = []byte("article " + id)
			}
			var out Outcome
			out, _, err = db.AddReport(r, params(now, 1+rng.IntN(3)))
			did[out.String()]++
		case op == 6:
			err = db.RecordRefused(fmt.Sprintf("<%d@x>", rng.IntN(400)), now)
		case op == 7:
			var found bool
			found, err = db.Delist(ips[rng.IntN(len(ips))], now, "test")
			if found {
				did["delisted"]++
			}
		case op == 8:
			var gone []Listing
			gone, err = db.Expire(now, 1+rng.IntN(3))
			did["expired"] += len(gone)
		default:
			var n int
			switch rng.IntN(3) {
			case 0:
				n, err = db.PruneHistory(now.Add(-3*time.Hour), 1+rng.IntN(5))
				did["history pruned"] += n
			case 1:
				n, err = db.PruneSightings(now.Add(-time.Hour), 1+rng.IntN(5))
				did["sightings pruned"] += n
			default:
				var items []QueueItem
				items, err = db.QueueNext("log", now, 3, nil)
				for _, it := range items {
					if err == nil {
						err = db.QueueAck("log", it.Seq)
					}
				}
			}
		}
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}

		s, err := db.Stats()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		if err := db.ForEachListing(func(Listing) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		if s.Listings != n {
			t.Fatalf("step %d: Stats.Listings = %d, ForEachListing saw %d", step, s.Listings, n)
		}
		checkConsistency(t, db)
		if t.Failed() {
			t.Fatalf("step %d", step)
		}
	}
	t.Logf("operations: %v", did)
	for _, what := range []string{"duplicate", "pending", "listed", "extended", "delisted", "expired", "history pruned", "sightings pruned"} {
		if did[what] == 0 {
			t.Errorf("the random run never had %s; change the seed or the mix", what)
		}
	}
}

// TestCodecRoundTrip checks that every record type decodes to what was
// encoded, including the awkward values: zero times, no origins, an invalid
// address in an event.
func TestCodecRoundTrip(t *testing.T) {
	for _, l := range []Listing{
		{IP: netip.MustParseAddr("192.0.2.1"), FirstSeen: t0, LastSeen: t0, Expires: t0.Add(time.Hour), Hits: 1, Origins: []string{"a"}, LastMessageID: "<x@y>"},
		{IP: netip.MustParseAddr("2001:db8::1"), Hits: 1 << 40},
	} {
		last := arrivalKey(t0, 7)
		if l.LastMessageID == "" {
			last = nil
		}
		on := newTestOrigins()
		v, err := encodeListing(l, last, on)
		if err != nil {
			t.Fatal(err)
		}
		got, gotLast, err := decodeListing(ipKey(l.IP), v, on)
		l.LastMessageID = "" // the arrival key stands for it
		if err != nil || !reflect.DeepEqual(got, l) || !bytes.Equal(gotLast, last) {
			t.Errorf("listing round trip: got %+v %x, %v; want %+v %x", got, gotLast, err, l, last)
		}
	}
	// Format 1, as layout 1 wrote it, still reads.
	v1 := []byte{formatV1, 0, 0, 0, 2, 1, 1, 'a', 0}
	if got, _, err := decodeListing(ipKey(netip.MustParseAddr("192.0.2.1")), v1, nil); err != nil || got.Hits != 2 || got.Episodes != 1 || len(got.Origins) != 1 {
		t.Errorf("format-1 listing: got %+v, %v", got, err)
	}
	for _, a := range []arrival{
		{Status: historyRefused, MessageID: "<x>"},
		{Status: historyAccepted, MessageID: "<y>", Article: []byte("art"), Report: &reportRecord{IP: netip.MustParseAddr("192.0.2.1"), Origin: "o", Hit: t0.Add(-time.Hour), Date: time.Unix(0, 1).UTC(), Probation: true, Corroborated: true, Held: true, Listed: true, Cancelled: true}},
		{Status: historyAccepted, MessageID: "<z>", Relayed: &relayedRecord{IP: netip.MustParseAddr("2001:db8::2"), Origin: "o", Hit: t0, Class: "backscatter", Reason: "own network"}},
	} {
		k := arrivalKey(t0, 3)
		on := newTestOrigins()
		v, err := encodeArrival(a, t0.UnixNano(), on)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := decodeArrival(k, v, on); err != nil || !reflect.DeepEqual(got, a) {
			t.Errorf("arrival round trip: got %+v, %v; want %+v", got, err, a)
		}
	}
	for _, it := range []QueueItem{
		{Seq: 7, Attempts: 3, NextAttempt: t0, Event: Event{Kind: EventReport, Time: t0, IP: netip.MustParseAddr("192.0.2.1"), MessageID: "<m>", Origin: "o", Listed: true, Expires: t0.Add(time.Hour)}},
		{Seq: 1, Event: Event{Kind: EventDelisted, IP: netip.MustParseAddr("2001:db8::2"), By: "dstctl"}},
		{Seq: 1 << 63, Event: Event{Kind: EventExpired}},
		{Seq: 8, Event: Event{Kind: EventReport, Time: t0, IP: netip.MustParseAddr("192.0.2.1"), MessageID: "<b>", Origin: "o", Class: "backscatter"}},
	} {
		got, err := decodeItem(seqKey(it.Seq), encodeItem(it))
		if err != nil || !reflect.DeepEqual(got, it) {
			t.Errorf("item round trip: got %+v, %v; want %+v", got, err, it)
		}
	}
	s := sightings{FirstSeen: t0, Hits: 2, LastMsgID: "<m>", List: []sighting{{"a", t0}, {"b", t0.Add(time.Second)}}}
	if got, err := decodeSightings(encodeSightings(s)); err != nil || !reflect.DeepEqual(got, s) {
		t.Errorf("sightings round trip: got %+v, %v; want %+v", got, err, s)
	}
	for _, tm := range []time.Time{t0, time.Unix(-5, 0).UTC(), time.Unix(0, 1).UTC()} {
		if got := parseTimeKey(timeKey(tm)); !got.Equal(tm) {
			t.Errorf("time key round trip of %v gave %v", tm, got)
		}
	}
	if string(timeKey(time.Unix(-1, 0))) >= string(timeKey(time.Unix(1, 0))) {
		t.Error("time keys before 1970 do not sort first")
	}
}

// FuzzDecode feeds damaged records to the decoders: they must fail cleanly,
// and whatever they accept must survive encode and decode unchanged.
// (Comparing bytes would be too strict: varints have overlong forms.)
func FuzzDecode(f *testing.F) {
	on := newTestOrigins()
	must := func(b []byte, err error) []byte {
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	f.Add(must(encodeListing(Listing{FirstSeen: t0, Expires: t0, Hits: 3, Origins: []string{"a", "b"}}, arrivalKey(t0, 1), on)))
	f.Add(encodeItem(QueueItem{Event: Event{Kind: EventReport, Time: t0, IP: netip.MustParseAddr("2001:db8::1"), MessageID: "<m>"}}))
	f.Add(encodeSightings(sightings{FirstSeen: t0, Hits: 1, List: []sighting{{"a", t0}}}))
	f.Add([]byte{formatV1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add(encodeReportRecord(reportRecord{IP: netip.MustParseAddr("192.0.2.1"), Origin: "a", Hit: t0, Probation: true, Held: true}))
	f.Add(encodeRelayed(relayedRecord{IP: netip.MustParseAddr("2001:db8::1"), Origin: "a", Hit: t0, Class: "backscatter", Reason: "r"}))
	f.Add(encodeOrigin(OriginRecord{Origin: "a", Reports: 3, Addresses: 2, First: t0, Last: t0}))
	f.Add(must(encodeArrival(arrival{Status: historyAccepted, MessageID: "<m>", Article: []byte("a"),
		Report: &reportRecord{IP: netip.MustParseAddr("192.0.2.1"), Origin: "a", Hit: t0, Date: t0.Add(-time.Minute), Cancelled: true, Listed: true}}, t0.UnixNano(), on)))
	f.Add(must(encodeArrival(arrival{Status: historyAccepted, MessageID: "<r>", Relayed: &relayedRecord{IP: netip.MustParseAddr("2001:db8::1"), Origin: "a", Hit: t0, Reason: "r"}}, t0.UnixNano(), on)))
	key16 := ipKey(netip.MustParseAddr("192.0.2.1"))
	akey := arrivalKey(t0, 1)
	f.Fuzz(func(t *testing.T, b []byte) {
		on := newTestOrigins()
		if l, last, err := decodeListing(key16, b, on); err == nil {
			// An older format's Message-ID is written as an arrival key
			// by the caller (putListing), not by encodeListing.
			l.LastMessageID = ""
			v, err := encodeListing(l, last, on)
			if err != nil {
				t.Fatalf("listing %+v does not encode: %v", l, err)
			}
			if again, againLast, err := decodeListing(key16, v, on); err != nil || !reflect.DeepEqual(again, l) || !bytes.Equal(againLast, last) {
				t.Errorf("listing %+v %x comes back as %+v %x, %v", l, last, again, againLast, err)
			}
		}
		if it, err := decodeItem(seqKey(1), b); err == nil {
			if again, err := decodeItem(seqKey(1), encodeItem(it)); err != nil || !reflect.DeepEqual(again, it) {
				t.Errorf("item %+v comes back as %+v, %v", it, again, err)
			}
		}
		if s, err := decodeSightings(b); err == nil {
			if again, err := decodeSightings(encodeSightings(s)); err != nil || !reflect.DeepEqual(again, s) {
				t.Errorf("sightings %+v come back as %+v, %v", s, again, err)
			}
		}
		if r, err := decodeReportRecord(b); err == nil {
			if again, err := decodeReportRecord(encodeReportRecord(r)); err != nil || !reflect.DeepEqual(again, r) {
				t.Errorf("report record %+v comes back as %+v, %v", r, again, err)
			}
		}
		if r, err := decodeRelayed(b); err == nil {
			if again, err := decodeRelayed(encodeRelayed(r)); err != nil || !reflect.DeepEqual(again, r) {
				t.Errorf("relayed record %+v comes back as %+v, %v", r, again, err)
			}
		}
		if a, err := decodeArrival(akey, b, on); err == nil {
			v, err := encodeArrival(a, t0.UnixNano(), on)
			if err != nil {
				t.Fatalf("arrival %+v does not encode: %v", a, err)
			}
			if again, err := decodeArrival(akey, v, on); err != nil || !reflect.DeepEqual(again, a) {
				t.Errorf("arrival %+v comes back as %+v, %v", a, again, err)
			}
		}
		if o, err := decodeOrigin("a", b); err == nil {
			if again, err := decodeOrigin("a", encodeOrigin(o)); err != nil || !reflect.DeepEqual(again, o) {
				t.Errorf("origin record %+v comes back as %+v, %v", o, again, err)
			}
		}
	})
}

// testOrigins numbers origins in memory, for the codec tests: a number
// it has not given is named "#n", so whatever a fuzzed record holds
// decodes and encodes back the same.
type testOrigins struct {
	byName map[string]uint64
	byNum  map[uint64]string
}

func newTestOrigins() *testOrigins {
	return &testOrigins{byName: make(map[string]uint64), byNum: make(map[uint64]string)}
}

func (o *testOrigins) originNum(name string) (uint64, error) {
	if n, ok := o.byName[name]; ok {
		return n, nil
	}
	n := uint64(len(o.byNum) + 1)
	for o.byNum[n] != "" {
		n++
	}
	o.byName[name], o.byNum[n] = n, name
	return n, nil
}

func (o *testOrigins) originName(n uint64) (string, error) {
	if name, ok := o.byNum[n]; ok {
		return name, nil
	}
	name := fmt.Sprintf("#%d", n)
	if _, ok := o.byName[name]; ok {
		return "", fmt.Errorf("origin %s has another number", name)
	}
	o.byName[name], o.byNum[n] = n, name
	return name, nil
}

// subscribe is Subscribe that fails the test on error.
func subscribe(t testing.TB, db *DB, queue string, wants func(Event) bool) {
	t.Helper()
	if err := db.Subscribe(queue, wants); err != nil {
		t.Fatal(err)
	}
}

// The wants of dstd's subscribers, as the tests need them.

// feedWants takes what a feed to peer floods: every article an event
// names, unless its Path names peer already.
func feedWants(peer string) func(Event) bool {
	return func(ev Event) bool {
		return ev.Kind == EventReport && ev.Cause != CauseUpdate && !strings.Contains(ev.Path, peer)
	}
}

// actionWants takes what the report log logs: the events about this
// site's list.
func actionWants(ev Event) bool { return ev.Cause == CauseListing }

// dnsWants takes what changes a published listing.
func dnsWants(ev Event) bool { return ev.Kind != EventReport || ev.Listed }

// A spam event (no class) is encoded exactly as before classes existed, so
// that queues written by an older dstd read the same and the reverse.
func TestItemWithoutClassUnchanged(t *testing.T) {
	ev := Event{Kind: EventReport, Time: t0, IP: netip.MustParseAddr("192.0.2.1"), MessageID: "<m>", Origin: "o"}
	plain := encodeItem(QueueItem{Event: ev})
	ev.Class = "backscatter"
	classed := encodeItem(QueueItem{Event: ev})
	if want := append(append([]byte{}, plain...), append([]byte{byte(len("backscatter"))}, "backscatter"...)...); string(classed) != string(want) {
		t.Errorf("a class is not appended at the end: %x, want %x", classed, want)
	}
}

// TestIPKeyOrder checks that address keys sort like the 16-byte form of
// the addresses (the order ForEachListing promises), round-trip, and that
// none is a prefix of another (the address indexes scan by prefix).
func TestIPKeyOrder(t *testing.T) {
	addrs := []string{"::", "::1", "::fffe:ffff:ffff", "::1:0:0:0", "0.0.0.0", "0.0.0.1", "10.1.2.3",
		"192.0.2.1", "255.255.255.255", "::1:0:0:0:0", "64:ff9b::1", "2001:db8::1", "fe80::1", "ffff::"}
	for i := range 200 {
		addrs = append(addrs, netip.AddrFrom4([4]byte{byte(i * 37), byte(i * 11), byte(i), 7}).String(),
			netip.AddrFrom16([16]byte{0: byte(i * 13), 1: byte(i), 15: byte(i * 7)}).String())
	}
	for _, a := range addrs {
		ip := netip.MustParseAddr(a)
		k := ipKey(ip)
		if ipKeyLenOf(k) != len(k) || parseIPKey(k) != ip {
			t.Errorf("%s: key %x reads back as %v (length %d)", ip, k, parseIPKey(k), ipKeyLenOf(k))
		}
		for _, b := range addrs {
			jp := netip.MustParseAddr(b)
			a16, b16 := ip.As16(), jp.As16()
			kb := ipKey(jp)
			if got, want := bytes.Compare(k, kb), bytes.Compare(a16[:], b16[:]); got != want {
				t.Errorf("keys of %s and %s compare %d, the addresses %d", ip, jp, got, want)
			}
			if ip != jp && bytes.HasPrefix(kb, k) {
				t.Errorf("the key of %s is a prefix of that of %s", ip, jp)
			}
		}
	}
	if mapped := ipKey(netip.MustParseAddr("::ffff:192.0.2.1")); !bytes.Equal(mapped, ipKey(netip.MustParseAddr("192.0.2.1"))) {
		t.Errorf("a mapped IPv4 address has the key %x", mapped)
	}
}

// TestSyncedByDefault: a store opened without NoSync syncs its commits,
// unless the build is the dstexp_unsynced measurement one (Unsynced).
func TestSyncedByDefault(t *testing.T) {
	for _, noSync := range []bool{false, true} {
		db, err := Open(filepath.Join(t.TempDir(), "dst.db"), Options{NoSync: noSync})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := db.bdb.NoSync, noSync || Unsynced; got != want {
			t.Errorf("Options{NoSync: %t}: bbolt NoSync is %t, want %t", noSync, got, want)
		}
		db.Close()
	}
	if Unsynced {
		t.Log("built with dstexp_unsynced: no commit is synced")
	}
}
