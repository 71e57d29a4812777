package dsttest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBinRace: under go test -race, the programs have the race detector
// too, so that dstd's races fail the integration tests.
func TestBinRace(t *testing.T) {
	out, err := exec.Command("go", "version", "-m", Bin(t, "dstd")).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m: %v\n%s", err, out)
	}
	if got := strings.Contains(string(out), "-race=true"); got != raceEnabled {
		t.Errorf("dstd built with -race: %v; the test binary: %v\n%s", got, raceEnabled, out)
	}
}

// TestSourceKey: a change to a program's source, embedded files included,
// makes a new build; a change to a test does not.
func TestSourceKey(t *testing.T) {
	root := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	key := func() string {
		t.Helper()
		k, err := sourceKey(root)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write("go.mod", "module x\n")
	write("cmd/a/main.go", "package main\n")
	k0 := key()
	write("cmd/a/main_test.go", "package main\n")
	write("cmd/a/testdata/x.go", "package x\n")
	write("README.md", "text\n")
	if k := key(); k != k0 {
		t.Errorf("a test, testdata and a README changed the key")
	}
	write("cmd/a/main.go", "package main\n\nfunc main() {}\n")
	k1 := key()
	if k1 == k0 {
		t.Errorf("a changed source file kept the key")
	}
	// A file a //go:embed may put into a program (a page's template).
	write("internal/p/page.tmpl", "<p>one</p>\n")
	if k := key(); k == k1 {
		t.Errorf("a new template under internal/ kept the key")
	}
}

// TestRemoveStale: builds unused for binStaleAfter go, and so do the
// per-run directories of the earlier harness; the current build and
// recent ones (another source tree's tests running now) stay.
func TestRemoveStale(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	cache := filepath.Join(tmp, "cache")
	old := time.Now().Add(-binStaleAfter - time.Minute)
	mk := func(p string, mtime time.Time) string {
		t.Helper()
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cur := mk(filepath.Join(cache, "0123456789abcdef"), old) // ours, even if old
	stale := mk(filepath.Join(cache, "fedcba9876543210"), old)
	staleTmp := mk(filepath.Join(cache, "fedcba9876543210.tmp-1"), old)
	recent := mk(filepath.Join(cache, "1111111111111111"), time.Now())
	legacy := mk(filepath.Join(tmp, "dst-bin-123"), old)
	legacyRecent := mk(filepath.Join(tmp, "dst-bin-456"), time.Now())
	removeStale(cache, "0123456789abcdef")
	for p, want := range map[string]bool{cur: true, stale: false, staleTmp: false, recent: true, legacy: false, legacyRecent: true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s: kept %v, want %v", p, err == nil, want)
		}
	}
}
