// Package dstc_test runs the built dstc as an unprivileged user, as an MTA
// does, and stops it the ways an MTA or an administrator does: SIGTERM,
// SIGINT, its own -timeout, while it reads an endless message (/dev/zero).
// It must exit 75 at once (the MTA keeps the message and retries) and leave
// nothing in the spool; a message it can read is still spooled whole.
//
// Needs root (to create the user); skipped otherwise, except with CI=true.
package dstc_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/arf"
	"github.com/dst-traps/dst/internal/article"
	"github.com/dst-traps/dst/internal/dsttest"
)

// liveness bounds the wait for dstc to exit: far more than "at once" needs,
// so only a dstc that does not stop trips it.
const liveness = 10 * time.Second

type trap struct {
	user  *dsttest.User
	bin   string
	spool string
	dstd  string // where no dstd listens
}

func setup(t *testing.T) *trap {
	t.Helper()
	dsttest.RequireRoot(t, "dstc as another user")
	u := dsttest.NewUser(t, "dstct")
	// Not under t.TempDir(): its parents are root's, mode 0700, and the
	// trap user must reach the spool.
	spool, err := os.MkdirTemp("", "dstc-spool-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(spool) })
	for _, d := range []string{spool, filepath.Join(spool, "tmp"), filepath.Join(spool, "new")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, int(u.UID), int(u.GID)); err != nil {
			t.Fatal(err)
		}
	}
	return &trap{
		user:  u,
		bin:   dsttest.Bin(t, "dstc"),
		spool: spool,
		dstd:  "unix:" + filepath.Join(spool, "no-dstd.sock"),
	}
}

// start runs dstc as the trap user with stdin as its input.
func (tr *trap) start(t *testing.T, stdin *os.File, extra ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	args := append([]string{"-m", "mx[12].example.net", "-s", tr.dstd, "-spool", tr.spool, "-log", "stderr"}, extra...)
	cmd := tr.user.Command(tr.bin, args...)
	cmd.Stdin = stdin
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &stderr
}

// wait returns dstc's exit code and how long it took from since, or fails
// the test if dstc has not exited within liveness.
func wait(t *testing.T, cmd *exec.Cmd, since time.Time) (int, time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), time.Since(since)
	case <-time.After(liveness):
		cmd.Process.Kill()
		<-done
		t.Fatalf("dstc still running %s after it was told to stop", liveness)
		return 0, 0
	}
}

// readBytes is how many bytes pid has read so far (rchar in /proc/PID/io).
func readBytes(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

func devZero(t *testing.T) *os.File {
	f, err := os.Open("/dev/zero")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// requireEmptySpool fails unless the spool's tmp/ and new/ hold nothing.
func (tr *trap) requireEmptySpool(t *testing.T) {
	t.Helper()
	for _, d := range []string{"tmp", "new"} {
		des, err := os.ReadDir(filepath.Join(tr.spool, d))
		if err != nil {
			t.Fatal(err)
		}
		if len(des) != 0 {
			t.Errorf("spool %s/ holds %d files after dstc was stopped, want none", d, len(des))
		}
	}
}

// TestSignalWhileReadingDevZero: an endless message, and the MTA (or an
// administrator) stops dstc.
func TestSignalWhileReadingDevZero(t *testing.T) {
	tr := setup(t)
	for _, tc := range []struct {
		sig  syscall.Signal
		name string
	}{{syscall.SIGTERM, "SIGTERM"}, {syscall.SIGINT, "SIGINT"}} {
		t.Run(tc.name, func(t *testing.T) {
			cmd, stderr := tr.start(t, devZero(t))
			// More than 1 MiB read: that is /dev/zero, not the
			// runtime starting, so dstc is reading its message.
			dsttest.WaitFor(t, liveness, "dstc reading /dev/zero", func() bool { return readBytes(cmd.Process.Pid) > 1<<20 })
			sent := time.Now()
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			code, took := wait(t, cmd, sent)
			if code != 75 {
				t.Fatalf("exit %d, want 75 (EX_TEMPFAIL); log:\n%s", code, stderr)
			}
			t.Logf("exited %s after %s", took, tc.name)
			if !strings.Contains(stderr.String(), tc.name+" received") || !strings.Contains(stderr.String(), "stopped while reading the message") {
				t.Errorf("the log does not say why dstc stopped:\n%s", stderr)
			}
			tr.requireEmptySpool(t)
		})
	}
}

// TestTimeoutWhileReadingDevZero: nobody stops dstc, its -timeout does.
func TestTimeoutWhileReadingDevZero(t *testing.T) {
	tr := setup(t)
	start := time.Now()
	cmd, stderr := tr.start(t, devZero(t), "-timeout", "1s")
	code, took := wait(t, cmd, start)
	if code != 75 {
		t.Fatalf("exit %d, want 75 (EX_TEMPFAIL); log:\n%s", code, stderr)
	}
	if took < time.Second {
		t.Errorf("exited after %s, before its -timeout of 1s", took)
	}
	if !strings.Contains(stderr.String(), "-timeout 1s reached") {
		t.Errorf("the log does not say -timeout was reached:\n%s", stderr)
	}
	tr.requireEmptySpool(t)
}

// TestSpoolWhenDstdIsDown: the normal path still works as that user: a
// message it can read, dstd unreachable, one complete report spooled.
func TestSpoolWhenDstdIsDown(t *testing.T) {
	tr := setup(t)
	msg, err := os.Open("../../examples/trap-hit.eml")
	if err != nil {
		t.Fatal(err)
	}
	defer msg.Close()
	start := time.Now()
	cmd, stderr := tr.start(t, msg)
	if code, _ := wait(t, cmd, start); code != 0 {
		t.Fatalf("exit %d, want 0; log:\n%s", code, stderr)
	}
	if !strings.Contains(stderr.String(), "report spooled") {
		t.Errorf("the log does not say the report was spooled:\n%s", stderr)
	}
	if des, _ := os.ReadDir(filepath.Join(tr.spool, "tmp")); len(des) != 0 {
		t.Errorf("tmp/ holds %d files, want none", len(des))
	}
	des, err := os.ReadDir(filepath.Join(tr.spool, "new"))
	if err != nil || len(des) != 1 {
		t.Fatalf("new/ holds %d files (%v), want 1", len(des), err)
	}
	path := filepath.Join(tr.spool, "new", des[0].Name())
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != tr.user.UID {
		t.Errorf("the report is owned by uid %d, want the trap user's %d", st.Uid, tr.user.UID)
	}
	wire, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := article.Parse(wire, article.DefaultLimits())
	if err != nil {
		t.Fatalf("the spooled report is not a valid article: %v", err)
	}
	r, err := arf.Parse(a.Get("Content-Type"), a.Body)
	if err != nil {
		t.Fatalf("the spooled report's body is not a feedback report: %v", err)
	}
	if got := r.SourceIP.String(); got != "203.0.113.7" {
		t.Errorf("Source-IP = %s, want 203.0.113.7", got)
	}
	// Complete: it carries the trapped message to its last line.
	if !bytes.Contains(wire, []byte("Subject: You have won")) || !bytes.Contains(wire, lastLine(t)) {
		t.Errorf("the spooled report does not carry the whole trapped message:\n%s", wire)
	}
}

// lastLine is the last non-empty line of the sample trap message.
func lastLine(t *testing.T) []byte {
	b, err := os.ReadFile("../../examples/trap-hit.eml")
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\r\n"), []byte("\n"))
	return bytes.TrimRight(lines[len(lines)-1], "\r")
}
