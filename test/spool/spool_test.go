// Package spool_test runs the built dstd on a spool that holds more than
// reports: a file far over nntp.max_article_bytes, a FIFO and a file that
// is no report. dstd must take none of them into memory, move them to the
// spool's bad/ directory, say so in its log, and still take the report
// dstc spools after them.
package spool_test

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/dsttest"
	"github.com/dst-traps/dst/internal/spool"
)

const lab = "[policy]\nallow_documentation = true\n"

// maxGrowth is how much dstd's peak RSS may grow while it deals with the
// spool: "a few MB per file", and far below the gigabyte of the file.
const maxGrowth = 16 << 20

// spoolName is a name in the spool's format (package spool), as dstc's
// would be.
func spoolName(t *testing.T) string {
	t.Helper()
	var b [8]byte
	rand.Read(b[:])
	return fmt.Sprintf("%d.%d.%s%s", time.Now().UnixNano(), os.Getpid(), hex.EncodeToString(b[:]), spool.Suffix)
}

// peakRSS returns the VmHWM of process pid, in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM line %q: %v", sc.Text(), err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// drop puts a file into the spool the way Put does (tmp/, then a rename
// into new/), made by fill, and returns its name.
func drop(t *testing.T, dir string, fill func(path string) error) string {
	t.Helper()
	name := spoolName(t)
	tmp := filepath.Join(dir, "tmp", name)
	if err := fill(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "new", name)); err != nil {
		t.Fatal(err)
	}
	return name
}

func trapMessage(client string) []byte {
	return []byte(fmt.Sprintf("Received: from spam.example (unknown [%s])\r\n\tby mx1.example.net (Postfix) with ESMTP id 1\r\n\tfor <trap@example.net>; %s\r\n"+
		"From: <a@spam.example>\r\nTo: <trap@example.net>\r\nSubject: offer for %s\r\n\r\nbuy\r\n", client, time.Now().Format(time.RFC1123Z), client))
}

// logLine returns the first line of dstd's log with all of want, or "".
func logLine(d *dsttest.Dstd, want ...string) string {
	for line := range strings.Lines(d.Log()) {
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(line, w)
		}
		if ok {
			return line
		}
	}
	return ""
}

func TestSpoolBoundedMemory(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/<pid>/status")
	}
	d := dsttest.NewDstd(t, "site-a.test", lab)
	dir := filepath.Join(d.Dir, "spool") // spool_dir's default with this data_dir; dstc's -spool in d.Dstc
	d.Start()
	for _, sub := range []string{"tmp", "new"} {
		if fi, err := os.Stat(filepath.Join(dir, sub)); err != nil || !fi.IsDir() {
			t.Fatalf("dstd did not make the spool's %s/: %v", sub, err)
		}
	}
	before := peakRSS(t, d.Pid())

	// A gigabyte, sparse: it costs no disk, but reading it whole costs
	// dstd a gigabyte of memory.
	const size = 1 << 30
	big := drop(t, dir, func(p string) error {
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		f.Close()
		return os.Truncate(p, size)
	})
	// Whatever dstd does with it, it must not take it into memory: the
	// peak is read once the file has left new/.
	dsttest.WaitFor(t, 30*time.Second, "dstd to take the big file out of new/", func() bool {
		_, err := os.Lstat(filepath.Join(dir, "new", big))
		return os.IsNotExist(err)
	})
	after := peakRSS(t, d.Pid())
	t.Logf("dstd's peak RSS: %d KiB at start, %d KiB after the spool's 1 GiB file", before>>10, after>>10)
	if after-before >= maxGrowth {
		t.Errorf("dstd's peak RSS grew by %d MiB for a file in the spool, want less than %d MiB", (after-before)>>20, maxGrowth>>20)
	}

	// A FIFO a local user could put into new/: opening it for reading
	// would wait for a writer forever, and the pickup with it.
	fifo := drop(t, dir, func(p string) error { return syscall.Mkfifo(p, 0o660) })
	// A small file that is no report.
	junk := drop(t, dir, func(p string) error { return os.WriteFile(p, []byte("no header here\x00\r\n"), 0o640) })

	bad := filepath.Join(dir, spool.BadDir)
	dsttest.WaitFor(t, 30*time.Second, "the three files to be in the spool's bad/", func() bool {
		for _, n := range []string{big, fifo, junk} {
			if _, err := os.Lstat(filepath.Join(bad, n)); err != nil {
				return false
			}
		}
		return true
	})
	if fi, err := os.Lstat(filepath.Join(bad, big)); err != nil || fi.Size() != size {
		t.Errorf("quarantined big file: %v, %v; want %d bytes", fi, err, size)
	}
	if fi, err := os.Lstat(filepath.Join(bad, fifo)); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("quarantined FIFO: %v, %v", fi, err)
	}
	for _, n := range []string{big, fifo, junk} {
		if _, err := os.Lstat(filepath.Join(dir, "new", n)); !os.IsNotExist(err) {
			t.Errorf("%s still in new/: %v", n, err)
		}
	}
	if fi, err := os.Lstat(bad); err != nil || !fi.IsDir() || fi.Mode().Perm()&0o022 != 0 {
		t.Errorf("bad/ is %v, %v; want a directory only dstd writes", fi, err)
	}

	// The move into bad/ comes before its count and its log line: wait for
	// those too, or the checks below race dstd.
	cases := []struct{ what, name, msg, more string }{
		{"the big file", big, "larger than nntp.max_article_bytes", fmt.Sprintf("size=%d limit=1000000", size)},
		{"the big file", big, "larger than nntp.max_article_bytes", "raise nntp.max_article_bytes"},
		{"the FIFO", fifo, "not a regular file", "a FIFO"},
		{"the junk", junk, "not a report dstd can read", "moved_to="},
	}
	dsttest.WaitFor(t, 30*time.Second, "three quarantines counted and logged", func() bool {
		for _, c := range cases {
			if logLine(d, c.name, c.msg, c.more) == "" {
				return false
			}
		}
		return strings.Contains(d.Metrics(), "dst_spool_quarantined_total 3\n")
	})
	for _, c := range cases {
		if line := logLine(d, c.name, c.msg, c.more); line == "" {
			t.Errorf("no log line about %s with %q and %q", c.what, c.msg, c.more)
		} else if !strings.Contains(line, "level=WARN") {
			t.Errorf("%s logged not at warning level: %s", c.what, line)
		}
	}

	if m := d.Metrics(); !strings.Contains(m, "dst_spool_quarantined_total 3\n") {
		t.Errorf("metrics do not count 3 quarantined files:\n%s", grepLines(m, "dst_spool_"))
	}

	// A report dstc spools after them is still taken.
	out, code := d.Dstc(trapMessage("203.0.113.60"), "-m", "mx1.example.net", "-s", "127.0.0.1:1")
	if code != 0 || !strings.Contains(out, "report spooled") {
		t.Fatalf("dstc exit %d, want a spooled report: %s", code, out)
	}
	dsttest.WaitFor(t, 15*time.Second, "the spooled report to be listed", func() bool {
		_, code := d.Ctl("lookup", "203.0.113.60")
		return code == 0
	})
	dsttest.WaitFor(t, 15*time.Second, "new/ to be empty", func() bool {
		es, _ := os.ReadDir(filepath.Join(dir, "new"))
		return len(es) == 0
	})
}

func grepLines(s, sub string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			b.WriteString(line)
		}
	}
	return b.String()
}
