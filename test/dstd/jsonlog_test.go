package dstd_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/dsttest"
)

// With log.format = "json", every line dstd logs is a JSON object with
// time, level and msg, from the start-up line to the last at shutdown.
func TestJSONLog(t *testing.T) {
	d := dsttest.NewDstd(t, "json.test", "[log]\nformat = \"json\"\n")
	d.Start()
	d.Stop()
	log := strings.TrimSpace(d.Log())
	lines := strings.Split(log, "\n")
	msgs := map[string]bool{}
	for i, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Errorf("line %d is not a JSON object: %v\n%s", i+1, err, l)
			continue
		}
		ts, _ := rec["time"].(string)
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Errorf("line %d: time %v is not RFC 3339: %s", i+1, rec["time"], l)
		}
		if lv, _ := rec["level"].(string); lv == "" {
			t.Errorf("line %d has no level: %s", i+1, l)
		}
		msg, _ := rec["msg"].(string)
		if msg == "" {
			t.Errorf("line %d has no msg: %s", i+1, l)
		}
		msgs[msg] = true
	}
	for _, want := range []string{"dstd started", "dstd stopped"} {
		if !msgs[want] {
			t.Errorf("no JSON line with msg %q in the log:\n%s", want, log)
		}
	}
}
