package store

import (
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// TestQueueMove: moved items leave the source and join the end of the
// destination fresh (no attempts, due at once) with By set; the depth
// counters follow; the observers hear of the destination; unknown seqs
// are passed over.
func TestQueueMove(t *testing.T) {
	db := openTest(t)
	var heard []map[string]int
	db.OnCommit(func(c Commit) { heard = append(heard, c.Queued) })
	for i := range 4 {
		ev := Event{Kind: EventReport, Time: t0, IP: netip.MustParseAddr(fmt.Sprintf("192.0.2.%d", i+1)), MessageID: fmt.Sprintf("<%d@x>", i+1)}
		if err := db.Enqueue([]string{"feed/p"}, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.QueueRetry("feed/p", 2, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	heard = nil
	n, err := db.QueueMove("feed/p", "refused/p", []uint64{2, 3, 99}, "keyring 439 no key")
	if err != nil || n != 2 {
		t.Fatalf("QueueMove = %d, %v; want 2 moved", n, err)
	}
	if want := []map[string]int{{"refused/p": 2}}; !reflect.DeepEqual(heard, want) {
		t.Errorf("observers heard %v, want %v", heard, want)
	}
	left, _ := db.QueueNext("feed/p", t0.Add(2*time.Hour), 10, nil)
	if got := seqs(left); !reflect.DeepEqual(got, []uint64{1, 4}) {
		t.Errorf("left in feed/p: %v, want [1 4]", got)
	}
	kept, _ := db.QueueNext("refused/p", t0, 10, nil)
	if len(kept) != 2 || kept[0].Event.MessageID != "<2@x>" || kept[1].Event.MessageID != "<3@x>" {
		t.Fatalf("refused/p holds %+v, want <2@x> and <3@x>", kept)
	}
	for _, it := range kept {
		if it.Event.By != "keyring 439 no key" || it.Attempts != 0 || !it.NextAttempt.IsZero() {
			t.Errorf("moved item %+v: want By set, no attempts, due at once", it)
		}
	}
	for q, want := range map[string]int{"feed/p": 2, "refused/p": 2} {
		if d, _ := db.QueueDepth(q); d != want {
			t.Errorf("depth of %s = %d, want %d", q, d, want)
		}
	}
	// And back, with By cleared.
	if n, err := db.QueueMove("refused/p", "feed/p", seqs(kept), ""); err != nil || n != 2 {
		t.Fatalf("move back = %d, %v", n, err)
	}
	back, _ := db.QueueNext("feed/p", t0, 10, nil)
	if len(back) != 4 || back[2].Event.MessageID != "<2@x>" || back[2].Event.By != "" || back[2].Seq <= 4 {
		t.Errorf("feed/p after the move back: %+v", back)
	}
	if d, _ := db.QueueDepth("refused/p"); d != 0 {
		t.Errorf("refused/p depth %d after moving all back", d)
	}
	if _, err := db.QueueMove("a", "a", []uint64{1}, ""); err == nil {
		t.Error("moving a queue onto itself: no error")
	}
}

func TestQueueTrimAndReschedule(t *testing.T) {
	db := openTest(t)
	for i := range 5 {
		ev := Event{Kind: EventReport, Time: t0, IP: netip.MustParseAddr(fmt.Sprintf("192.0.2.%d", i+1))}
		if err := db.Enqueue([]string{"q"}, ev); err != nil {
			t.Fatal(err)
		}
	}
	n, err := db.QueueTrim("q", 3)
	if err != nil || n != 2 {
		t.Fatalf("QueueTrim = %d, %v; want 2", n, err)
	}
	items, _ := db.QueueNext("q", t0, 10, nil)
	if got := seqs(items); !reflect.DeepEqual(got, []uint64{3, 4, 5}) {
		t.Errorf("after trim: %v, want the newest [3 4 5]", got)
	}
	if d, _ := db.QueueDepth("q"); d != 3 {
		t.Errorf("depth %d, want 3", d)
	}
	if n, _ := db.QueueTrim("q", 3); n != 0 {
		t.Errorf("trim of a queue within bounds dropped %d", n)
	}

	if err := db.QueueRetry("q", 4, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := db.QueueRetry("q", 5, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	n, err = db.QueueReschedule("q", t0.Add(2*time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("QueueReschedule = %d, %v; want 1 (only the item due later)", n, err)
	}
	due, _ := db.QueueNext("q", t0.Add(2*time.Minute), 10, nil)
	if got := seqs(due); !reflect.DeepEqual(got, []uint64{3, 4, 5}) {
		t.Errorf("due after reschedule: %v, want [3 4 5]", got)
	}
	for _, it := range due {
		if it.Seq == 4 && it.Attempts != 1 {
			t.Errorf("reschedule changed the attempts: %+v", it)
		}
	}
}
