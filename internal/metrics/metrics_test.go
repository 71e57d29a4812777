package metrics

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The refusal reasons internal/ingest counts are all in RefusalReasons,
// which Init creates at zero: a reason missing there would have no series
// until its first refusal, and an alert on it none to work with.
func TestRefusalReasons(t *testing.T) {
	files, err := filepath.Glob("../ingest/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no sources of internal/ingest: %v", err)
	}
	re := regexp.MustCompile(`(?:refused\(|ReportsRefused\.WithLabelValues\()"([^"]*)"`)
	seen := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllSubmatch(b, -1) {
			seen++
			if r := string(m[1]); !slices.Contains(RefusalReasons, r) {
				t.Errorf("%s counts refusals as %q, which metrics.RefusalReasons lacks", filepath.Base(f), r)
			}
		}
	}
	if seen < len(RefusalReasons) {
		t.Errorf("found %d refusal reasons in internal/ingest, fewer than the %d of RefusalReasons: has the code changed shape?", seen, len(RefusalReasons))
	}
}

// Init may run again (a reload) without resetting a counted value.
func TestInitKeepsValues(t *testing.T) {
	m := New(prometheus.NewRegistry())
	k := Known{Peers: []string{"p.example"}, Origins: []string{"a.example"}}
	m.Init(k)
	m.FeedErrors.WithLabelValues("p.example").Add(3)
	k.Origins = append(k.Origins, "b.example")
	m.Init(k)
	ch := make(chan prometheus.Metric, 10)
	m.TrapToListed.Collect(ch)
	if len(ch) != 3 { // a.example, b.example, other
		t.Errorf("%d trap-to-listed series after a second Init, want 3", len(ch))
	}
	ch = make(chan prometheus.Metric, 10)
	m.FeedErrors.Collect(ch)
	if len(ch) != 1 {
		t.Fatalf("%d feed error series, want 1", len(ch))
	}
	if counter(t, m.FeedErrors.WithLabelValues("p.example")) != 3 {
		t.Error("a second Init reset the feed's error count")
	}
}

func counter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
