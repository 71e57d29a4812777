package heapfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercentFor(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		floor, live uint64
		base, want  int
	}{
		{16 * mib, 4 * mib, 100, 300},   // the floor is 4 times the live heap
		{16 * mib, 8 * mib, 100, 100},   // GOGC=100 reaches the floor already
		{16 * mib, 100 * mib, 100, 100}, // a large heap is left alone
		{16 * mib, 2 * mib, 50, 700},    // a lower base is raised just as well
		{16 * mib, 12 * mib, 50, 50},    // 12 MiB at 50% is 18 MiB, past the floor
		{1 << 40, 0, 100, 1<<31 - 1},    // nothing live: capped
	} {
		if got := percentFor(tc.floor, tc.live, tc.base); got != tc.want {
			t.Errorf("percentFor(%d, %d, %d) = %d, want %d", tc.floor, tc.live, tc.base, got, tc.want)
		}
	}
}

func gogc(t *testing.T) int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		t.Fatal("the runtime has no /gc/gogc:percent metric")
	}
	return int(s[0].Value.Uint64())
}

// collectUntil runs collections until ok holds: the Keeper adjusts GOGC
// from a cleanup that runs after a collection, on a goroutine of its own.
func collectUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s of collections: %s", what)
		}
		runtime.GC()
		time.Sleep(time.Millisecond) // let the cleanup goroutine run
	}
}

func TestKeepRaisesGOGCForASmallHeap(t *testing.T) {
	t.Setenv("GOGC", "")
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	k := Keep(1 << 40) // far above this test's heap
	if k == nil {
		t.Fatal("Keep did nothing with GOGC unset")
	}
	// The first adjustment after a collection computes from the live heap,
	// which at 1 TiB floor gives a percent far above the starting guess.
	start := percentFor(1<<40, minHeap, 100)
	collectUntil(t, "GOGC was not raised past the starting guess", func() bool { return gogc(t) > start })
	k.Stop()
	if got := gogc(t); got != 100 {
		t.Errorf("GOGC after Stop = %d, want 100", got)
	}
	// Once stopped, a collection no longer changes it.
	runtime.GC()
	runtime.GC()
	if got := gogc(t); got != 100 {
		t.Errorf("GOGC after Stop and two collections = %d, want 100", got)
	}
}

func TestKeepLeavesALargeHeapAlone(t *testing.T) {
	t.Setenv("GOGC", "")
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	k := Keep(1) // below any heap
	if k == nil {
		t.Fatal("Keep did nothing with GOGC unset")
	}
	defer k.Stop()
	collectUntil(t, "GOGC did not come back to 100 for a heap above the floor", func() bool { return gogc(t) == 100 })
}

func TestKeepRespectsGOGC(t *testing.T) {
	t.Setenv("GOGC", "50")
	defer debug.SetGCPercent(debug.SetGCPercent(50))
	if k := Keep(1 << 40); k != nil {
		k.Stop()
		t.Fatal("Keep took over although GOGC is set")
	}
	if got := gogc(t); got != 50 {
		t.Errorf("GOGC = %d, want the 50 set", got)
	}
}

func TestKeepWithCollectionOff(t *testing.T) {
	t.Setenv("GOGC", "")
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	if k := Keep(1 << 40); k != nil {
		k.Stop()
		t.Fatal("Keep took over although collection is off")
	}
	if got := debug.SetGCPercent(-1); got != -1 {
		t.Errorf("GOGC = %d, want off (-1)", got)
	}
}
