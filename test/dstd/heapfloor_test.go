package dstd_test

import (
	"regexp"
	"strconv"
	"testing"

	"github.com/dst-traps/dst/internal/dsttest"
)

// TestHeapFloor: dstd lets a small heap grow to a floor before collecting
// (internal/heapfloor), which shows as a GOGC percent above 100 in its
// Go runtime metrics; a GOGC in its environment is kept as it is.
func TestHeapFloor(t *testing.T) {
	re := regexp.MustCompile(`(?m)^go_gc_gogc_percent (\d+)$`)
	for _, env := range []string{"", "100", "250"} {
		t.Run("GOGC="+env, func(t *testing.T) {
			t.Setenv("GOGC", env)
			d := dsttest.NewDstd(t, "site-a.test", lab)
			d.Start()
			m := re.FindStringSubmatch(d.Metrics())
			if m == nil {
				t.Fatal("no go_gc_gogc_percent in dstd's /metrics")
			}
			got, _ := strconv.Atoi(m[1])
			switch {
			case env == "" && got <= 100:
				t.Errorf("GOGC unset: dstd's percent is %d, want above 100 for its small heap", got)
			case env != "" && strconv.Itoa(got) != env:
				t.Errorf("GOGC=%s: dstd's percent is %d", env, got)
			}
		})
	}
}
