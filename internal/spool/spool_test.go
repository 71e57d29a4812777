package spool

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestPutList runs in a synctest bubble, whose clock moves only when told:
// the reports get known, distinct times without waiting.
func TestPutList(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		start := time.Now()
		es, err := List(dir)
		if err != nil || len(es) != 0 {
			t.Fatalf("List of an unused spool = %v, %v; want empty", es, err)
		}

		articles := [][]byte{
			[]byte("Subject: one\r\n\r\nbody\r\n"),
			[]byte("Subject: two\r\n\r\n.dot\r\n\x00binary\xff\r\n"),
			{},
		}
		var paths []string
		for _, a := range articles {
			p, err := Put(dir, a)
			if err != nil {
				t.Fatal(err)
			}
			paths = append(paths, p)
			time.Sleep(time.Millisecond) // the bubble's clock: distinct, ordered times
		}
		for _, d := range []string{"tmp", "new"} {
			fi, err := os.Stat(filepath.Join(dir, d))
			if err != nil || !fi.IsDir() {
				t.Fatalf("%s/ not created: %v", d, err)
			}
		}
		// Junk that List must skip.
		for _, junk := range []string{".hidden.art", "notes.txt", "1.2.art", "x.1.aa.art", "-5.1.aa.art"} {
			os.WriteFile(filepath.Join(dir, "new", junk), []byte("junk"), 0o600)
		}
		os.Mkdir(filepath.Join(dir, "new", "1.1.00.art"), 0o700)

		es, err = List(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != len(articles) {
			t.Fatalf("List returned %d entries, want %d: %v", len(es), len(articles), es)
		}
		for i, e := range es {
			if e.Path != paths[i] {
				t.Errorf("entry %d is %s, want %s (oldest first)", i, e.Path, paths[i])
			}
			if filepath.Base(e.Path) != e.Name || filepath.Dir(e.Path) != filepath.Join(dir, "new") {
				t.Errorf("entry %d: Name %q and Path %q disagree", i, e.Name, e.Path)
			}
			if want := start.Add(time.Duration(i) * time.Millisecond); !e.Time.Equal(want) {
				t.Errorf("entry %d: Time %v, want %v (when it was put)", i, e.Time, want)
			}
			got, err := os.ReadFile(e.Path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, articles[i]) {
				t.Errorf("entry %d holds %q, want %q", i, got, articles[i])
			}
		}
		if tmp, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmp) != 0 {
			t.Errorf("tmp/ not empty after Put: %v", tmp)
		}

		if err := Remove(es[0]); err != nil {
			t.Fatal(err)
		}
		if err := Remove(es[0]); err != nil {
			t.Errorf("removing a removed entry: %v", err)
		}
		if es2, _ := List(dir); len(es2) != len(articles)-1 || es2[0] != es[1] {
			t.Errorf("after Remove, List = %v", es2)
		}
	})
}

func TestNameFormat(t *testing.T) {
	p, err := Put(t.TempDir(), []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(filepath.Base(p), ".")
	if len(parts) != 4 || parts[1] != fmt.Sprint(os.Getpid()) || len(parts[2]) != 16 || parts[3] != "art" {
		t.Errorf("name %q is not <ns>.<pid>.<16 hex>.art", filepath.Base(p))
	}
	if len(parts[0]) != 19 {
		t.Errorf("time part %q is not 19 digits: names would not sort by time", parts[0])
	}
}

func TestPutConcurrent(t *testing.T) {
	dir := t.TempDir()
	const n = 200
	var wg sync.WaitGroup
	paths := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			paths[i], errs[i] = Put(dir, []byte(fmt.Sprintf("Subject: %d\r\n\r\n", i)))
		})
	}
	wg.Wait()
	seen := make(map[string]bool)
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Put %d: %v", i, errs[i])
		}
		if seen[paths[i]] {
			t.Fatalf("two Puts got the same path %s", paths[i])
		}
		seen[paths[i]] = true
		got, err := os.ReadFile(paths[i])
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("Subject: %d\r\n\r\n", i); string(got) != want {
			t.Errorf("file %s holds %q, want %q", paths[i], got, want)
		}
	}
	es, err := List(dir)
	if err != nil || len(es) != n {
		t.Fatalf("List: %d entries, %v; want %d", len(es), err, n)
	}
}

// TestNoPartialFileVisible has a reader poll new/ while writers put large
// reports: every file the reader sees must already be complete.
func TestNoPartialFileVisible(t *testing.T) {
	dir := t.TempDir()
	const writers, each = 4, 10
	article := func(w, i int) []byte {
		return bytes.Repeat([]byte(fmt.Sprintf("w%d i%d padding padding\r\n", w, i)), 20000) // ~500 KB
	}
	valid := make(map[string]bool)
	for w := range writers {
		for i := range each {
			valid[string(article(w, i))] = true
		}
	}

	stop := make(chan struct{})
	var readerErr error
	var checked int
	var rwg sync.WaitGroup
	rwg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			es, err := List(dir)
			if err != nil {
				readerErr = err
				return
			}
			for _, e := range es {
				data, err := os.ReadFile(e.Path)
				if err != nil {
					readerErr = err
					return
				}
				if !valid[string(data)] {
					readerErr = fmt.Errorf("saw partial file %s (%d bytes)", e.Name, len(data))
					return
				}
				checked++
			}
		}
	})

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := Put(dir, article(w, i)); err != nil {
					t.Errorf("Put: %v", err)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	rwg.Wait()
	if readerErr != nil {
		t.Fatal(readerErr)
	}
	if checked == 0 {
		t.Log("the reader never saw a file while writers were busy; the check was vacuous this time")
	}
	if es, _ := List(dir); len(es) != writers*each {
		t.Errorf("List found %d, want %d", len(es), writers*each)
	}
}

func TestBadDirectory(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dir  string
		want string
		is   error
	}{
		// Tests run as root, where permission bits do not stop writes, so
		// a path through a regular file stands in for an unusable spool.
		{filepath.Join(file, "spool"), "spool directory " + filepath.Join(file, "spool") + ": not a directory", nil},
		{file, "spool directory " + file + ": not a directory", nil},
		{filepath.Join(base, "missing"), "spool directory " + filepath.Join(base, "missing") + ": no such file or directory", fs.ErrNotExist},
	} {
		_, err := Put(tc.dir, []byte("x"))
		if err == nil || err.Error() != tc.want {
			t.Errorf("Put(%s) error = %v, want %q", tc.dir, err, tc.want)
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("Put(%s) error %v is not %v", tc.dir, err, tc.is)
		}
		if _, err := List(tc.dir); err == nil || err.Error() != tc.want {
			t.Errorf("List(%s) error = %v, want %q", tc.dir, err, tc.want)
		}
		if _, err := CleanTmp(tc.dir, time.Hour); err == nil || err.Error() != tc.want {
			t.Errorf("CleanTmp(%s) error = %v, want %q", tc.dir, err, tc.want)
		}
	}

	// tmp/ exists but is a file: Put must fail cleanly, naming the spool.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tmp"), nil, 0o600)
	if _, err := Put(dir, []byte("x")); err == nil || !strings.HasPrefix(err.Error(), "spool directory "+dir+": creating") {
		t.Errorf("Put with tmp as a file: %v", err)
	}
}

func TestCleanTmp(t *testing.T) {
	dir := t.TempDir()
	if n, err := CleanTmp(dir, time.Hour); n != 0 || err != nil {
		t.Fatalf("CleanTmp of an unused spool = %d, %v", n, err)
	}
	if _, err := Put(dir, []byte("keep")); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "tmp")
	old := time.Now().Add(-25 * time.Hour)
	for _, name := range []string{"crashed1.art", "crashed2"} {
		p := filepath.Join(tmp, name)
		os.WriteFile(p, []byte("partial"), 0o600)
		os.Chtimes(p, old, old)
	}
	fresh := filepath.Join(tmp, "being-written.art")
	os.WriteFile(fresh, []byte("partial"), 0o600)

	n, err := CleanTmp(dir, 24*time.Hour)
	if err != nil || n != 2 {
		t.Errorf("CleanTmp = %d, %v; want 2, nil", n, err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("CleanTmp removed a fresh file: %v", err)
	}
	if es, _ := List(dir); len(es) != 1 {
		t.Errorf("CleanTmp touched new/: %v", es)
	}
}
