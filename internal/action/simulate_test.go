//go:build unix

package action

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSimulateSaysSimulated: in simulation a report that would list says
// so (listed=simulated, DST_LISTED=simulated) with its expiry; one below
// the threshold still says no.
func TestSimulateSaysSimulated(t *testing.T) {
	dir := t.TempDir()
	l, err := NewReportLog(filepath.Join(dir, "reports.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Simulate = true
	ev := reportEvent()
	below := reportEvent()
	below.Listed = false
	if err := l.Do(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if err := l.Do(context.Background(), below); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "reports.log"))
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], " listed=simulated expires=2026-11-30T10:10:10Z") ||
		!strings.Contains(lines[1], " listed=no expires=-") {
		t.Errorf("report log in simulation:\n%s", b)
	}
	if strings.Contains(FormatLine(ev), "simulated") {
		t.Errorf("FormatLine outside simulation: %q", FormatLine(ev))
	}

	out := t.TempDir()
	cmd := script(t, `printf '%s|%s' "$DST_LISTED" "$DST_EXPIRES" > "$1/env"`+"\n")
	p := NewProgram(ProgramConfig{Command: append(cmd, out), Store: mapArticles{}, Simulate: true})
	if err := p.Do(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(out, "env")); string(got) != "simulated|2026-11-30T10:10:10Z" {
		t.Errorf("DST_LISTED|DST_EXPIRES = %q in simulation", got)
	}
}
