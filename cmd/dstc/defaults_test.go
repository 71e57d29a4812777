package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSocketDefault: with no -s, dstc submits to the socket nntp.sock in
// its -spool directory (where dstd puts it by default), not over TCP, and a
// relative -spool is still a socket path.
func TestSocketDefault(t *testing.T) {
	msg := readFile(t, "../../examples/trap-hit.eml")
	dir := t.TempDir()
	f := startFakeDstd(t, "unix", filepath.Join(dir, "nntp.sock"), "200 dstd ready", "240 article received")
	code, _, errs := runDstc(t, msg, "-m", "mx[12].example.net", "-spool", dir)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	select {
	case wire := <-f.got:
		if got := sourceIP(t, wire); got != "203.0.113.7" {
			t.Errorf("posted Source-IP = %s", got)
		}
	default:
		t.Fatalf("nothing was posted to %s/nntp.sock; log: %s", dir, errs)
	}

	t.Chdir(filepath.Dir(dir))
	code, _, errs = runDstc(t, msg, "-m", "mx[12].example.net", "-spool", filepath.Base(dir))
	if code != exitOK {
		t.Fatalf("relative -spool: exit %d: %s", code, errs)
	}
	select {
	case <-f.got:
	default:
		t.Fatalf("relative -spool: nothing was posted to the socket; log: %s", errs)
	}
}

// TestSpoolDefault: root and any user on a host with the system spool use
// it; others use the spool of the dstd they would run themselves.
func TestSpoolDefault(t *testing.T) {
	got := defaultSpool()
	_, err := os.Stat(systemSpool)
	switch {
	case os.Geteuid() == 0 || err == nil:
		if got != systemSpool {
			t.Errorf("default spool %q, want %q", got, systemSpool)
		}
	default:
		t.Setenv("XDG_STATE_HOME", "/x/state")
		if got := defaultSpool(); got != "/x/state/dst/spool" {
			t.Errorf("default spool %q, want /x/state/dst/spool (as a dstd run by this user)", got)
		}
	}
}
