package action

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/dsttest"
	"github.com/dst-traps/dst/internal/store"
)

// goldenEvents produce testdata/reportlog.golden, line by line.
func goldenEvents() []store.Event {
	ip := netip.MustParseAddr("203.0.113.7")
	other := netip.MustParseAddr("198.51.100.9")
	// A non-UTC zone: the log must still say UTC.
	paris := time.FixedZone("CET", 3600)
	return []store.Event{
		{Kind: store.EventReport, Time: t0.In(paris), IP: ip, Origin: "site-a.example", MessageID: "<x@site-a.example>",
			Listed: true, Expires: t0.Add(24 * time.Hour).In(paris)},
		{Kind: store.EventReport, Time: time.Date(2026, 11, 29, 10, 12, 0, 0, time.UTC), IP: netip.MustParseAddr("2001:db8::1"),
			Origin: "site-b.example", MessageID: "<y@site-b.example>"},
		{Kind: store.EventExpired, Time: t0.Add(24 * time.Hour), IP: ip},
		{Kind: store.EventDelisted, Time: time.Date(2026, 11, 30, 11, 0, 0, 0, time.UTC), IP: ip, By: "dstctl"},
		{Kind: store.EventDelisted, Time: time.Date(2026, 11, 30, 11, 0, 1, 0, time.UTC), IP: other},
		{Kind: store.EventDelisted, Time: time.Date(2026, 11, 30, 11, 0, 2, 0, time.UTC), IP: other, By: "Jane Doe"},
		{Kind: store.EventReport, Time: time.Date(2026, 11, 30, 11, 0, 3, 0, time.UTC), IP: other, Origin: "evil\norigin",
			MessageID: "<a b@c>", Listed: true, Expires: time.Date(2026, 12, 1, 11, 0, 3, 0, time.UTC)},
		{Kind: store.EventReport, Time: time.Date(2026, 11, 30, 11, 0, 4, 0, time.UTC), IP: other, Origin: "site-a.example",
			MessageID: "<z@site-a.example>", Class: "backscatter"},
	}
}

// The log takes what concerns this site's list, and a report of a class
// it does not list, which is stored only to relay it: the log shows every
// trap hit. Another relayed-only report (an allow-listed address) and
// cancels do not get a line.
func TestReportLogWants(t *testing.T) {
	l := &ReportLog{}
	for _, tc := range []struct {
		ev   store.Event
		want bool
	}{
		{store.Event{Kind: store.EventReport}, true},
		{store.Event{Kind: store.EventReport, Class: "backscatter"}, true},
		{store.Event{Kind: store.EventReport, Cause: store.CauseRelay, Class: "backscatter"}, true},
		{store.Event{Kind: store.EventReport, Cause: store.CauseRelay}, false},
		{store.Event{Kind: store.EventReport, Cause: store.CauseCancel}, false},
		{store.Event{Kind: store.EventDelisted}, true},
	} {
		if got := l.Wants(tc.ev); got != tc.want {
			t.Errorf("Wants(%+v) = %v, want %v", tc.ev, got, tc.want)
		}
	}
}

func TestReportLogGolden(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reports.log")
	l, err := NewReportLog(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, ev := range goldenEvents() {
		if err := l.Do(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join("testdata", "reportlog.golden"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("report log:\n%s\nwant (testdata/reportlog.golden):\n%s", got, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// 0640 less whatever the umask removes; never more.
	if fi.Mode().Perm()&^0o640 != 0 {
		t.Errorf("log file mode %v, want at most 0640", fi.Mode().Perm())
	}
}

// splitLogLine splits a report log line into its time, kind and fields,
// unquoting quoted values as a reader of the log would.
func splitLogLine(t *testing.T, line string) (when, kind string, fields map[string]string) {
	t.Helper()
	rest, ok := strings.CutSuffix(line, "\n")
	if !ok || strings.Contains(rest, "\n") {
		t.Fatalf("line %q is not exactly one line", line)
	}
	when, rest, _ = strings.Cut(rest, " ")
	kind, rest, _ = strings.Cut(rest, " ")
	fields = map[string]string{}
	for rest != "" {
		k, v, ok := strings.Cut(rest, "=")
		if !ok {
			t.Fatalf("line %q: %q is not key=value", line, rest)
		}
		if strings.HasPrefix(v, `"`) {
			q, err := strconv.QuotedPrefix(v)
			if err != nil {
				t.Fatalf("line %q: bad quoting in %q: %v", line, v, err)
			}
			rest = v[len(q):]
			v, _ = strconv.Unquote(q)
		} else {
			v, rest, _ = strings.Cut(v, " ")
		}
		rest = strings.TrimPrefix(rest, " ")
		fields[k] = v
	}
	return when, kind, fields
}

func TestReportLogLinesParseBack(t *testing.T) {
	for _, ev := range goldenEvents() {
		when, kind, f := splitLogLine(t, FormatLine(ev))
		if tm, err := time.Parse(time.RFC3339, when); err != nil || !tm.Equal(ev.Time) {
			t.Errorf("time %q, want %v", when, ev.Time)
		}
		if kind != ev.Kind.String() || f["ip"] != ev.IP.String() {
			t.Errorf("kind %q ip %q, want %v %v", kind, f["ip"], ev.Kind, ev.IP)
		}
		if ev.Kind == store.EventReport && (f["origin"] != ev.Origin || f["id"] != ev.MessageID) {
			t.Errorf("origin %q id %q, want %q %q", f["origin"], f["id"], ev.Origin, ev.MessageID)
		}
		if ev.Kind == store.EventDelisted && ev.By != "" && f["by"] != ev.By {
			t.Errorf("by %q, want %q", f["by"], ev.By)
		}
	}
}

func TestReportLogReopenAfterRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "reports.log")
	l, err := NewReportLog(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	evs := goldenEvents()
	if err := l.Do(context.Background(), evs[0]); err != nil {
		t.Fatal(err)
	}
	// What logrotate does: move the file, then signal dstd.
	rotated := path + ".1"
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	if err := l.Do(context.Background(), evs[2]); err != nil { // still goes to the moved file
		t.Fatal(err)
	}
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	if err := l.Do(context.Background(), evs[3]); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(rotated)
	cur, _ := os.ReadFile(path)
	if want := FormatLine(evs[0]) + FormatLine(evs[2]); string(old) != want {
		t.Errorf("rotated file:\n%s\nwant:\n%s", old, want)
	}
	if want := FormatLine(evs[3]); string(cur) != want {
		t.Errorf("new file:\n%s\nwant:\n%s", cur, want)
	}
}

func TestReportLogReopenFailureKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o750); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(sub, "reports.log")
	l, err := NewReportLog(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := os.Rename(sub, filepath.Join(dir, "moved")); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); err == nil {
		t.Fatal("Reopen into a missing directory succeeded")
	}
	if err := l.Do(context.Background(), goldenEvents()[2]); err != nil {
		t.Errorf("Do after a failed Reopen: %v", err)
	}
}

func TestReportLogOpenError(t *testing.T) {
	_, err := NewReportLog(filepath.Join(t.TempDir(), "missing", "reports.log"))
	if err == nil || !strings.Contains(err.Error(), "cannot open the report log") {
		t.Errorf("NewReportLog in a missing directory: %v", err)
	}
}

// TestReportLogWithStore runs the log action against a real store queue:
// events in, lines out, queue empty.
func TestReportLogWithStore(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "dst.db"), store.Options{Strict: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	evs := goldenEvents()[2:4]
	for _, ev := range evs {
		if err := db.Enqueue([]string{ReportLogName}, ev); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "reports.log")
	l, err := NewReportLog(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	startRun(t, db, l, RunnerOptions{})
	dsttest.WaitFor(t, 5*time.Second, "the queue to empty", func() bool { n, _ := db.QueueDepth(ReportLogName); return n == 0 })
	got, _ := os.ReadFile(path)
	if want := FormatLine(evs[0]) + FormatLine(evs[1]); string(got) != want {
		t.Errorf("log:\n%s\nwant:\n%s", got, want)
	}
}
