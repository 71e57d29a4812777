//go:build unix

package action

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/arf"
	"github.com/dst-traps/dst/internal/article"
	"github.com/dst-traps/dst/internal/dsttest"
	"github.com/dst-traps/dst/internal/store"
)

var _ ArticleSource = (*store.DB)(nil)

const trapped = "From: spammer@example.net\r\nTo: trap@site-a.example\r\nSubject: cheap pills\r\n\r\nBuy now.\r\n"

// mapArticles is an ArticleSource in memory.
type mapArticles map[string][]byte

func (m mapArticles) Article(id string) ([]byte, error) { return m[id], nil }

// reportArticle builds a stored report article enclosing the trapped message.
func reportArticle(t *testing.T, id string) []byte {
	t.Helper()
	r := &arf.Report{SourceIP: netip.MustParseAddr("203.0.113.7"), ArrivalDate: t0, ReportingMTA: "mx1.site-a.example",
		UserAgent: "dstc/0.1", Message: []byte(trapped)}
	ct, body, err := r.Build()
	if err != nil {
		t.Fatal(err)
	}
	a := &article.Article{Body: body}
	a.Set("Path", "site-a.example!not-for-mail")
	a.Set("From", "DST <dst@site-a.example>")
	a.Set("Newsgroups", "dst.reports")
	a.Set("Subject", "trap hit 203.0.113.7")
	a.Set("Message-ID", id)
	a.Set("Date", t0.Format(time.RFC1123Z))
	a.Set("MIME-Version", "1.0")
	a.Set("Content-Type", ct)
	return a.Bytes()
}

// script writes a shell script and returns the argv that runs it. It goes
// through /bin/sh rather than exec'ing the new file, which can fail with
// ETXTBSY while another test goroutine forks.
func script(t *testing.T, body string) []string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hook.sh")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"/bin/sh", p}
}

func reportEvent() store.Event {
	return store.Event{Kind: store.EventReport, Time: t0, IP: netip.MustParseAddr("203.0.113.7"),
		MessageID: "<x@site-a.example>", Origin: "site-a.example", Listed: true, Expires: t0.Add(24 * time.Hour)}
}

func TestProgramGetsMessageAndEnvironment(t *testing.T) {
	out := t.TempDir()
	t.Setenv("DST_TEST_SECRET", "must not leak")
	cmd := script(t, `cat > "$1/stdin"; env > "$1/env"`+"\n")
	p := NewProgram(ProgramConfig{
		Command: append(cmd, out),
		Env:     []string{"HOOK_MODE=test", "DST_IP=overridden?"},
		Store:   mapArticles{"<x@site-a.example>": reportArticle(t, "<x@site-a.example>")},
	})
	if err := p.Do(context.Background(), reportEvent()); err != nil {
		t.Fatal(err)
	}
	stdin, _ := os.ReadFile(filepath.Join(out, "stdin"))
	if string(stdin) != trapped {
		t.Errorf("stdin = %q, want the trapped message %q", stdin, trapped)
	}
	env, _ := os.ReadFile(filepath.Join(out, "env"))
	vars := map[string]string{}
	for _, line := range strings.Split(string(env), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			vars[k] = v
		}
	}
	want := map[string]string{
		"DST_EVENT": "report", "DST_IP": "203.0.113.7", "DST_ORIGIN": "site-a.example",
		"DST_MESSAGE_ID": "<x@site-a.example>", "DST_LISTED": "yes", "DST_EXPIRES": "2026-11-30T10:10:10Z",
		"HOOK_MODE": "test", "PATH": os.Getenv("PATH"),
	}
	for k, v := range want {
		if vars[k] != v {
			t.Errorf("%s = %q, want %q", k, vars[k], v)
		}
	}
	if _, ok := vars["DST_TEST_SECRET"]; ok {
		t.Errorf("dstd's own environment leaked to the program")
	}
}

func TestProgramNotListedHasEmptyExpires(t *testing.T) {
	out := t.TempDir()
	cmd := script(t, `printf '%s|%s' "$DST_LISTED" "$DST_EXPIRES" > "$1/env"`+"\n")
	ev := reportEvent()
	ev.Listed, ev.Expires = false, time.Time{}
	p := NewProgram(ProgramConfig{Command: append(cmd, out), Store: mapArticles{}})
	if err := p.Do(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(out, "env")); string(got) != "no|" {
		t.Errorf("DST_LISTED|DST_EXPIRES = %q, want \"no|\"", got)
	}
}

func TestProgramArticleGoneRunsWithEmptyStdin(t *testing.T) {
	out := t.TempDir()
	cmd := script(t, `cat > "$1/stdin"`+"\n")
	var logBuf dsttest.SyncBuffer
	p := NewProgram(ProgramConfig{Command: append(cmd, out), Store: mapArticles{},
		Log: slog.New(slog.NewTextHandler(&logBuf, nil))})
	if err := p.Do(context.Background(), reportEvent()); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(out, "stdin")); err != nil || len(got) != 0 {
		t.Errorf("stdin = %q (%v), want empty", got, err)
	}
	if !strings.Contains(logBuf.String(), "level=WARN") || !strings.Contains(logBuf.String(), "no longer stored") {
		t.Errorf("no warning logged; log:\n%s", logBuf.String())
	}
}

func TestProgramTempFailIsRetried(t *testing.T) {
	cmd := script(t, "cat >/dev/null; echo 'queue full, later' >&2; exit 75\n")
	p := NewProgram(ProgramConfig{Command: cmd, Store: mapArticles{}})
	err := p.Do(context.Background(), reportEvent())
	var pe *ProgramError
	if !errors.As(err, &pe) || pe.ExitCode != ExitTempFail || errors.Is(err, ErrPermanent) {
		t.Fatalf("Do = %v, want a ProgramError with exit status 75, not permanent", err)
	}
	if !strings.Contains(err.Error(), "queue full, later") {
		t.Errorf("error %q does not carry the program's stderr", err)
	}

	// Through the runner: the event stays queued with a retry time.
	q := newFakeQueue()
	q.add(ProgramName, reportEvent())
	startRun(t, q, p, RunnerOptions{})
	dsttest.WaitFor(t, 5*time.Second, "a retry", func() bool { return len(q.retryLog()) == 1 })
	if items := q.get(ProgramName); len(items) != 1 || items[0].Attempts != 1 {
		t.Errorf("queue after exit 75: %+v, want the event with 1 attempt", items)
	}
}

func TestProgramStderrIsCut(t *testing.T) {
	cmd := script(t, `i=0; while [ $i -lt 200 ]; do echo "0123456789012345678901234567890123456789" >&2; i=$((i+1)); done; exit 3`+"\n")
	p := NewProgram(ProgramConfig{Command: cmd, Store: mapArticles{}})
	err := p.Do(context.Background(), reportEvent())
	var pe *ProgramError
	if !errors.As(err, &pe) || pe.ExitCode != 3 {
		t.Fatalf("Do = %v, want exit status 3", err)
	}
	if len(pe.Stderr) != stderrKeep {
		t.Errorf("kept %d bytes of stderr, want %d", len(pe.Stderr), stderrKeep)
	}
}

func TestProgramTimeoutKillsProcessGroup(t *testing.T) {
	out := t.TempDir()
	// The shell starts a child and waits: killing only the shell would
	// leave the sleep behind.
	cmd := script(t, `sleep 30 & echo $! > "$1/pid"; wait`+"\n")
	p := NewProgram(ProgramConfig{Command: append(cmd, out), Timeout: 200 * time.Millisecond, Store: mapArticles{}})
	start := time.Now()
	err := p.Do(context.Background(), reportEvent())
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Do took %v with a 200ms timeout", d)
	}
	var pe *ProgramError
	if !errors.As(err, &pe) || !pe.TimedOut {
		t.Fatalf("Do = %v, want a timeout", err)
	}
	if !strings.Contains(err.Error(), "ran longer than 200ms") {
		t.Errorf("error %q does not mention the timeout", err)
	}
	b, err := os.ReadFile(filepath.Join(out, "pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	dsttest.WaitFor(t, 5*time.Second, fmt.Sprintf("the child sleep (pid %d) to die", pid), func() bool { return processGone(pid) })
}

// processGone reports whether pid has exited: no such process, or a
// zombie that the container's init has not reaped yet.
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return os.IsNotExist(err)
	}
	// The state follows the command name in parentheses.
	i := bytes.LastIndexByte(stat, ')')
	return i > 0 && len(stat) > i+2 && (stat[i+2] == 'Z' || stat[i+2] == 'X')
}

func TestProgramWithoutCommandIsPermanent(t *testing.T) {
	err := NewProgram(ProgramConfig{}).Do(context.Background(), reportEvent())
	if !errors.Is(err, ErrPermanent) {
		t.Errorf("Do with no command = %v, want ErrPermanent", err)
	}
}

func TestProgramWantsReportsOnly(t *testing.T) {
	p := NewProgram(ProgramConfig{Command: []string{"/bin/true"}})
	for _, k := range []store.EventKind{store.EventReport, store.EventExpired, store.EventDelisted} {
		if got, want := p.Wants(store.Event{Kind: k}), k == store.EventReport; got != want {
			t.Errorf("Wants(%v) = %v, want %v", k, got, want)
		}
	}
}
