package store

import (
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"testing/synctest"
	"time"
)

// seqs returns the sequence numbers of items.
func seqs(items []QueueItem) []uint64 {
	var s []uint64
	for _, it := range items {
		s = append(s, it.Seq)
	}
	return s
}

func TestQueue(t *testing.T) {
	db := openTest(t)
	for i := range 5 {
		ev := Event{Kind: EventDelisted, Time: t0, IP: netip.MustParseAddr(fmt.Sprintf("192.0.2.%d", i+1)), By: "test"}
		if err := db.Enqueue([]string{"pipe"}, ev); err != nil {
			t.Fatal(err)
		}
	}
	first, err := db.QueueNext("pipe", t0, 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := seqs(first), []uint64{1, 2, 3, 4, 5}; !reflect.DeepEqual(got, want) {
		t.Fatalf("seqs %v, want %v", got, want)
	}
	for i, it := range first {
		if want := fmt.Sprintf("192.0.2.%d", i+1); it.Event.IP.String() != want || it.Attempts != 0 || !it.NextAttempt.IsZero() {
			t.Errorf("item %d = %+v, want a fresh event for %s", it.Seq, it, want)
		}
	}

	// Item 2 fails and waits a minute.
	if err := db.QueueRetry("pipe", 2, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := db.QueueAck("pipe", 1); err != nil {
		t.Fatal(err)
	}
	if err := db.QueueAck("pipe", 1); err != nil {
		t.Errorf("second ack of the same item: %v", err)
	}
	inFlight := map[uint64]bool{3: true}
	skip := func(seq uint64) bool { return inFlight[seq] }

	for _, tc := range []struct {
		name string
		now  time.Time
		n    int
		skip func(uint64) bool
		want []uint64
	}{
		{"retry not yet due", t0, 10, nil, []uint64{3, 4, 5}},
		{"retry due", t0.Add(time.Minute), 10, nil, []uint64{2, 3, 4, 5}},
		{"limit", t0.Add(time.Minute), 2, nil, []uint64{2, 3}},
		{"skip in flight", t0.Add(time.Minute), 2, skip, []uint64{2, 4}},
		{"unknown queue", t0, 10, nil, nil},
	} {
		q := "pipe"
		if tc.name == "unknown queue" {
			q = "nothing-here"
		}
		items, err := db.QueueNext(q, tc.now, tc.n, tc.skip)
		if err != nil || !reflect.DeepEqual(seqs(items), tc.want) {
			t.Errorf("%s: QueueNext = %v, %v; want %v", tc.name, seqs(items), err, tc.want)
		}
	}
	items, _ := db.QueueNext("pipe", t0.Add(time.Minute), 1, nil)
	if len(items) != 1 || items[0].Attempts != 1 || !items[0].NextAttempt.Equal(t0.Add(time.Minute)) {
		t.Errorf("retried item = %+v, want 1 attempt and the new time", items)
	}

	if d, err := db.QueueDepth("pipe"); err != nil || d != 4 {
		t.Errorf("QueueDepth = %d, %v; want 4", d, err)
	}
	if err := db.QueueRetry("pipe", 1, t0); err == nil {
		t.Error("QueueRetry of an acknowledged item succeeded")
	}
	if err := db.QueueRetry("nothing-here", 1, t0); err == nil {
		t.Error("QueueRetry on an unknown queue succeeded")
	}
	for _, seq := range []uint64{2, 3, 4, 5} {
		if err := db.QueueAck("pipe", seq); err != nil {
			t.Fatal(err)
		}
	}
	if d, _ := db.QueueDepth("pipe"); d != 0 {
		t.Errorf("QueueDepth after acking all = %d", d)
	}
	// Sequence numbers are never reused, so a runner's in-flight set cannot
	// confuse an old item with a new one.
	if err := db.Enqueue([]string{"pipe"}, first[0].Event); err != nil {
		t.Fatal(err)
	}
	if items, _ := db.QueueNext("pipe", t0, 10, nil); !reflect.DeepEqual(seqs(items), []uint64{6}) {
		t.Errorf("after emptying, new item has seqs %v, want [6]", seqs(items))
	}
}

func TestEnqueueRejectsBadInput(t *testing.T) {
	db := openTest(t)
	ok := Event{Kind: EventExpired, Time: t0, IP: netip.MustParseAddr("192.0.2.1")}
	for _, tc := range []struct {
		name   string
		queues []string
		ev     Event
	}{
		{"no kind", []string{"q"}, Event{Time: t0, IP: ok.IP}},
		{"unknown kind", []string{"q"}, Event{Kind: 9, Time: t0, IP: ok.IP}},
		{"no address", []string{"q"}, Event{Kind: EventExpired, Time: t0}},
		{"empty queue name", []string{""}, ok},
	} {
		if err := db.Enqueue(tc.queues, tc.ev); err == nil {
			t.Errorf("%s: Enqueue accepted it", tc.name)
		}
	}
	if _, err := db.QueueNext("q", t0, 0, nil); err == nil {
		t.Error("QueueNext accepted n = 0")
	}
	if _, err := db.QueueDepth(""); err == nil {
		t.Error("QueueDepth accepted an empty name")
	}
}

func TestEventKindString(t *testing.T) {
	for k, want := range map[EventKind]string{EventReport: "report", EventExpired: "expired", EventDelisted: "delisted", 0: "EventKind(0)"} {
		if got := k.String(); got != want {
			t.Errorf("EventKind(%d).String() = %q, want %q", uint8(k), got, want)
		}
	}
}

// TestQueueAckAll: many items leave in one call, the depth follows, and
// items already gone (acknowledged twice, never there) are skipped.
func TestQueueAckAll(t *testing.T) {
	db := openTest(t)
	for i := range 5 {
		ev := Event{Kind: EventDelisted, Time: t0, IP: netip.MustParseAddr(fmt.Sprintf("192.0.2.%d", i+1)), By: "test"}
		if err := db.Enqueue([]string{"pipe"}, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.QueueAck("pipe", 2); err != nil {
		t.Fatal(err)
	}
	if err := db.QueueAckAll("pipe", []uint64{1, 2, 4, 99}); err != nil {
		t.Fatal(err)
	}
	items, err := db.QueueNext("pipe", t0, 10, nil)
	if err != nil || !reflect.DeepEqual(seqs(items), []uint64{3, 5}) {
		t.Errorf("after QueueAckAll: QueueNext = %v, %v; want [3 5]", seqs(items), err)
	}
	if d, err := db.QueueDepth("pipe"); err != nil || d != 2 {
		t.Errorf("QueueDepth = %d, %v; want 2", d, err)
	}
	if err := db.QueueAckAll("pipe", []uint64{3, 5}); err != nil {
		t.Fatal(err)
	}
	if d, _ := db.QueueDepth("pipe"); d != 0 {
		t.Errorf("QueueDepth after acking all = %d", d)
	}
	if err := db.QueueAckAll("nothing-here", []uint64{1}); err != nil {
		t.Errorf("QueueAckAll on an unknown queue: %v", err)
	}
}

// TestQueueAckAllNow: QueueAckAll alone waits LazyWait for another commit
// to join; QueueAckAllNow, for a consumer with a backlog, commits at once.
func TestQueueAckAllNow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := openTest(t)
		for i := range 4 {
			ev := Event{Kind: EventDelisted, Time: t0, IP: netip.MustParseAddr(fmt.Sprintf("192.0.2.%d", i+1)), By: "test"}
			if err := db.Enqueue([]string{"feed/b"}, ev); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			name string
			ack  func(string, []uint64) error
			seqs []uint64
			wait time.Duration
		}{
			{"QueueAckAll", db.QueueAckAll, []uint64{1, 2}, LazyWait},
			{"QueueAckAllNow", db.QueueAckAllNow, []uint64{3, 4}, 0},
		} {
			start := time.Now()
			if err := tc.ack("feed/b", tc.seqs); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d != tc.wait {
				t.Errorf("%s alone returned after %v, want %v", tc.name, d, tc.wait)
			}
		}
		if d, err := db.QueueDepth("feed/b"); err != nil || d != 0 {
			t.Errorf("QueueDepth = %d, %v; want 0", d, err)
		}
	})
}
