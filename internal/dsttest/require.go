package dsttest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The one skip rule of the tests: a test that needs what this machine
// lacks (a program, root) is skipped, except with CI=true, where it fails.
// CI installs every component (test.sh) and runs as root, so a skip there
// would hide a broken setup. Tests say what they need with Require and
// RequireRoot, never with a t.Skip of their own.

// missing skips the test because of what (a sentence saying what is
// missing and how to get it), or fails it with CI=true.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	what := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true, and %s", what)
	}
	t.Skipf("skipped: %s", what)
}

// sbinDirs are searched after PATH: a user's PATH often lacks them, and
// the servers the tests start live there.
var sbinDirs = []string{"/usr/sbin", "/sbin", "/usr/local/sbin"}

// Require returns the path of the program prog of Debian package pkg.
// When it is missing, the test is skipped, or fails with CI=true. A test
// that also needs root (to start a server as its own user) calls
// RequireRoot too.
func Require(t testing.TB, prog, pkg string) string {
	t.Helper()
	if bin, err := exec.LookPath(prog); err == nil {
		return bin
	}
	for _, dir := range sbinDirs {
		if st, err := os.Stat(filepath.Join(dir, prog)); err == nil && !st.IsDir() {
			return filepath.Join(dir, prog)
		}
	}
	missing(t, "%s is not installed (Debian: apt-get install %s; test.sh does it)", prog, pkg)
	return ""
}

// RequireRoot skips the test unless it runs as root, or fails it with
// CI=true; what names what needs root.
func RequireRoot(t testing.TB, what string) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "this test must run as root (it starts %s)", what)
	}
}
