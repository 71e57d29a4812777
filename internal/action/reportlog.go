package action

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/dst-traps/dst/internal/store"
)

// ReportLogName is the queue name of the report log action.
const ReportLogName = "log"

// ReportLog is the "log" action: one line per event in a text file (the
// format is in the package documentation). It is safe for concurrent use.
type ReportLog struct {
	path string
	// Simulate (policy.simulate) writes listed=simulated instead of
	// listed=yes. Set it before the action runs.
	Simulate bool

	mu sync.Mutex
	f  *os.File
	// broken is set after a short write left part of a line in the file;
	// the next write starts with a newline so that fragment stays on a
	// line of its own instead of corrupting the retried line.
	broken bool
}

// NewReportLog opens (creating it if needed, mode 0640) the log file for
// appending.
func NewReportLog(path string) (*ReportLog, error) {
	f, err := openLog(path)
	if err != nil {
		return nil, err
	}
	return &ReportLog{path: path, f: f}, nil
}

func openLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("cannot open the report log: %w", err)
	}
	return f, nil
}

// Name returns "log".
func (l *ReportLog) Name() string { return ReportLogName }

// Wants takes every event about this site's list: each gets a line. So
// does a report of a class that this site does not list (a bounce, an
// auto-reply: Event.Class), with listed=no, so that the log shows every
// hit of the traps. Another report stored only to relay it, a cancel
// article and a cancel's update of a listing do not (the cancel's
// delisting does).
func (l *ReportLog) Wants(ev store.Event) bool {
	return ev.Cause == store.CauseListing || (ev.Kind == store.EventReport && ev.Class != "")
}

// Do appends the event's line. It does not sync it: the runner calls
// Sync, once for many lines, before it removes their events from the
// queue (after which nothing else would remember them).
func (l *ReportLog) Do(_ context.Context, ev store.Event) error {
	line := formatLine(ev, l.Simulate)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return fmt.Errorf("report log %s is closed: %w", l.path, ErrPermanent)
	}
	if l.broken {
		line = "\n" + line
	}
	// One write(2) with O_APPEND: a line never interleaves with another
	// writer's, and a reader (tail -f) never sees half of one.
	n, err := l.f.WriteString(line)
	if err != nil {
		l.broken = n > 0
		return fmt.Errorf("cannot write to the report log %s: %w", l.path, err)
	}
	l.broken = false
	return nil
}

// Sync writes the lines Do appended to disk (fsync). One sync for many
// lines: one each was a report's most expensive step after its commit.
func (l *ReportLog) Sync() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return fmt.Errorf("report log %s is closed: %w", l.path, ErrPermanent)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("cannot sync the report log %s: %w", l.path, err)
	}
	return nil
}

// Reopen opens the log path again and switches to the new file, for
// SIGHUP after logrotate moved the old one away. If the path cannot be
// opened the old file stays in use, so no line is lost.
func (l *ReportLog) Reopen() error {
	f, err := openLog(l.path)
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.f
	l.f, l.broken = f, false
	l.mu.Unlock()
	if old != nil {
		// Its last lines may not be synced yet (Sync syncs the new
		// file), and their events may be acknowledged after it.
		if err := old.Sync(); err != nil {
			old.Close()
			return fmt.Errorf("syncing the previous report log: %w", err)
		}
		if err := old.Close(); err != nil {
			return fmt.Errorf("closing the previous report log: %w", err)
		}
	}
	return nil
}

// Close closes the file; later calls of Do fail.
func (l *ReportLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	if err != nil {
		return fmt.Errorf("closing the report log: %w", err)
	}
	return nil
}

// FormatLine returns the report log line for ev, newline included.
func FormatLine(ev store.Event) string { return formatLine(ev, false) }

// listedYes is the listed= (DST_LISTED) value of a report that lists:
// "simulated" when the site publishes nothing (policy.simulate), so that
// whatever reads it tells a listing that would be from one that is.
func listedYes(simulate bool) string {
	if simulate {
		return "simulated"
	}
	return "yes"
}

// formatLine is FormatLine, in simulation if simulate.
func formatLine(ev store.Event, simulate bool) string {
	var b strings.Builder
	b.WriteString(ev.Time.UTC().Format(time.RFC3339))
	b.WriteByte(' ')
	b.WriteString(ev.Kind.String())
	field := func(k, v string) {
		b.WriteByte(' ')
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(logValue(v))
	}
	ip := ""
	if ev.IP.IsValid() {
		ip = ev.IP.String()
	}
	field("ip", ip)
	switch ev.Kind {
	case store.EventReport:
		field("origin", ev.Origin)
		field("id", ev.MessageID)
		if ev.Listed {
			field("listed", listedYes(simulate))
			field("expires", ev.Expires.UTC().Format(time.RFC3339))
		} else {
			field("listed", "no")
			field("expires", "")
		}
		class := ev.Class
		if class == "" {
			class = "spam"
		}
		field("class", class)
	case store.EventDelisted:
		field("by", ev.By)
	}
	b.WriteByte('\n')
	return b.String()
}

// logValue writes v so that it cannot break the line or run into the next
// field: "-" for empty, quoted when it holds anything but printable ASCII
// without spaces or quotes (or is "-" itself, which would read as empty).
func logValue(v string) string {
	if v == "" {
		return "-"
	}
	if v == "-" {
		return `"-"`
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c == '"' || c == '\\' || c >= utf8.RuneSelf || c == 0x7f {
			return strconv.Quote(v)
		}
	}
	return v
}
