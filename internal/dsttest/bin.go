package dsttest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Programs are built once per version of the sources, into
// <TMPDIR>/dst-test-bin-<uid>/<key>, where key hashes the sources and the
// build settings (-race among them). Every test binary of a run, and every
// later run on the same sources, uses that one build: nothing piles up per
// run, and each package's tests need not link their own copies. A build not
// used for binStaleAfter is removed by the next test binary that starts;
// that is longer than any test binary runs (test.sh gives go test 20m), so
// a build still in use is never removed.
const binStaleAfter = time.Hour

// raceExitCode is the exit status of a program built with -race that
// found a data race (the race detector's default, GORACE exitcode).
const raceExitCode = 66

// programs are what Bin builds.
var programs = []string{"dstc", "dstd", "dstctl"}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// Bin returns the path of a built program ("dstc", "dstd", "dstctl"),
// building all three on first use. When the test binary has the race
// detector (go test -race), so do the programs: a data race in dstd then
// makes it exit with status 66 and fails the test that stops it.
func Bin(t testing.TB, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = build()
		if raceEnabled {
			quickRaceExit()
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	// Mark the build as in use, so that no other test binary takes it for
	// stale while this one runs.
	now := time.Now()
	os.Chtimes(binDir, now, now)
	return filepath.Join(binDir, name)
}

// build returns the directory of the programs built from the current
// sources, building them if no test binary has yet.
func build() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	key, err := sourceKey(root)
	if err != nil {
		return "", err
	}
	cache, err := binCache()
	if err != nil {
		return "", err
	}
	removeStale(cache, key)

	// Test binaries start together (go test runs packages in parallel):
	// the first builds, the others wait for it here, then find the build.
	lock, err := os.OpenFile(filepath.Join(cache, key+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", fmt.Errorf("test programs: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("test programs: locking %s: %w", lock.Name(), err)
	}
	now := time.Now()
	os.Chtimes(lock.Name(), now, now)

	dir := filepath.Join(cache, key)
	if complete(dir) {
		return dir, nil
	}
	os.RemoveAll(dir) // an incomplete build (its files removed by hand)
	tmp, err := os.MkdirTemp(cache, key+".tmp-")
	if err != nil {
		return "", fmt.Errorf("test programs: %w", err)
	}
	defer os.RemoveAll(tmp) // gone once renamed
	// Tests run the programs as other users too (an MTA's nobody).
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", fmt.Errorf("test programs: %w", err)
	}
	args := []string{"build", "-o", tmp + "/"}
	if raceEnabled {
		args = append(args, "-race")
	}
	for _, p := range programs {
		args = append(args, "github.com/dst-traps/dst/cmd/"+p)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another test binary, not waiting on the same lock file (one
		// removed as stale meanwhile), finished the same build first.
		if complete(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("test programs: %w", err)
	}
	return dir, nil
}

// quickRaceExit sets GORACE for the programs the tests start, unless it
// already says otherwise: by default a program built with -race sleeps 1s
// as it exits, in case another thread is still writing a race report, and
// the tests run dstctl and dstc thousands of times (the suite took 7m15s
// instead of 2m04s). A report is written when the race is found; only one
// found in the last moment before exit could be cut short. The exit status
// (66) is set by every report all the same.
func quickRaceExit() {
	v := os.Getenv("GORACE")
	if strings.Contains(v, "atexit_sleep_ms") {
		return
	}
	os.Setenv("GORACE", strings.TrimSpace(v+" atexit_sleep_ms=0"))
}

// complete reports whether dir holds every program.
func complete(dir string) bool {
	for _, p := range programs {
		if st, err := os.Stat(filepath.Join(dir, p)); err != nil || !st.Mode().IsRegular() {
			return false
		}
	}
	return true
}

// moduleRoot is the directory of go.mod above the working directory (go
// test runs a test binary in its package's directory).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("test programs: %w", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("test programs: no go.mod above %s: run the tests with go test inside the DST source tree", dir)
		}
	}
}

// sourceKey hashes what the programs are built from: the Go version, the
// build settings, go.mod, go.sum, every non-test Go file of the module,
// and every other file under cmd/ and internal/, which a //go:embed may
// put into a program (the status page's template and style sheet) (the
// go command ignores directories named testdata or starting with . or
// _). A change to any of them makes a new build.
func sourceKey(root string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s race=%t %s/%s", runtime.Version(), raceEnabled, runtime.GOOS, runtime.GOARCH)
	for _, v := range []string{"GOFLAGS", "GOEXPERIMENT", "CGO_ENABLED", "GOAMD64", "GOTOOLCHAIN"} {
		fmt.Fprintf(h, " %s=%s", v, os.Getenv(v))
	}
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := e.Name()
		if e.IsDir() {
			if p != root && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		embeddable := !strings.HasSuffix(name, ".go") &&
			(strings.HasPrefix(rel, "cmd"+string(filepath.Separator)) || strings.HasPrefix(rel, "internal"+string(filepath.Separator)))
		if name != "go.mod" && name != "go.sum" && !embeddable && (!strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go")) {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		fmt.Fprintf(h, "\x00%s\x00", rel)
		_, err = io.Copy(h, f)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("test programs: reading the sources: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)[:8]), nil
}

// binCache is the directory of the builds: in the temporary directory, so
// that the users tests run programs as can reach them, and of this user
// alone, since tests run them as root.
func binCache() (string, error) {
	uid := os.Geteuid()
	cache := filepath.Join(os.TempDir(), fmt.Sprintf("dst-test-bin-%d", uid))
	if err := os.Mkdir(cache, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("test programs: %w", err)
	}
	st, err := os.Lstat(cache)
	if err != nil {
		return "", fmt.Errorf("test programs: %w", err)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !st.IsDir() || !ok || int(sys.Uid) != uid || st.Mode().Perm()&0o022 != 0 {
		return "", fmt.Errorf("test programs: %s is not a directory of this user's alone (%v, owner uid %d): "+
			"remove it, and the tests will make it again", cache, st.Mode(), sys.Uid)
	}
	return cache, nil
}

// removeStale removes the builds, locks and unfinished builds of cache not
// touched for binStaleAfter, except key's, and the per-run directories
// (dst-bin-*) that earlier versions of this harness left in the temporary
// directory. Errors are ignored: what is left is tried again next time.
func removeStale(cache, key string) {
	old := time.Now().Add(-binStaleAfter)
	ents, _ := os.ReadDir(cache)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), key) {
			continue
		}
		if st, err := e.Info(); err == nil && st.ModTime().Before(old) {
			os.RemoveAll(filepath.Join(cache, e.Name()))
		}
	}
	legacy, _ := filepath.Glob(filepath.Join(os.TempDir(), "dst-bin-*"))
	for _, p := range legacy {
		st, err := os.Lstat(p)
		if err != nil || !st.IsDir() || !st.ModTime().Before(old) {
			continue
		}
		if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) == os.Geteuid() {
			os.RemoveAll(p)
		}
	}
}
