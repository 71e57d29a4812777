package dsttest

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// HostDirs is the LockHost name of the system directories of an installed
// dst package (/var/lib/dst, /var/spool/dst, /etc/dst): test/pkg installs
// the package, and a test whose programs would act differently while they
// exist (dstc's default spool) waits for it.
const HostDirs = "system-dirs"

// LockHost holds the host-wide lock name, an flock shared by every test
// binary, until the test ends: go test runs the packages in parallel, and
// tests that change what is installed on the host must not overlap with
// those that depend on it.
func LockHost(t testing.TB, name string) {
	t.Helper()
	dir := "/run/lock"
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		dir = os.TempDir()
	}
	f, err := os.OpenFile(filepath.Join(dir, "dst-test-"+name+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("host lock %s: %v", name, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("host lock %s: %v", name, err)
	}
	t.Cleanup(func() { f.Close() }) // closing releases the lock
}
