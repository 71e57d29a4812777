package dnsbl

import (
	"runtime"
	"testing"
)

// TestSpareP: one P more, unless GOMAXPROCS is in the environment.
func TestSpareP(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(before) })

	t.Setenv("GOMAXPROCS", "1")
	if n := SpareP(); n != 0 || runtime.GOMAXPROCS(0) != before {
		t.Errorf("with GOMAXPROCS set: SpareP() = %d, GOMAXPROCS %d; want 0 and %d unchanged", n, runtime.GOMAXPROCS(0), before)
	}

	t.Setenv("GOMAXPROCS", "")
	n := SpareP()
	if !batchedUDP {
		if n != 0 || runtime.GOMAXPROCS(0) != before {
			t.Errorf("without batched UDP readers: SpareP() = %d, GOMAXPROCS %d; want 0 and %d", n, runtime.GOMAXPROCS(0), before)
		}
		return
	}
	if n != before+1 || runtime.GOMAXPROCS(0) != before+1 {
		t.Errorf("SpareP() = %d, GOMAXPROCS %d; want %d", n, runtime.GOMAXPROCS(0), before+1)
	}
}
