package spool

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// entryIn returns an Entry for a file to be made at dir/new/<valid name>.
func entryIn(t *testing.T, dir string) Entry {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "new"), 0o770); err != nil {
		t.Fatal(err)
	}
	name := newName(time.Now())
	return Entry{Name: name, Path: filepath.Join(dir, "new", name)}
}

func TestReadLimit(t *testing.T) {
	dir := t.TempDir()
	const max = 4096
	for _, size := range []int64{0, 1, max - 1, max} {
		art := bytes.Repeat([]byte("x"), int(size))
		p, err := Put(dir, art)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Read(Entry{Name: filepath.Base(p), Path: p}, max)
		if err != nil {
			t.Fatalf("Read of %d bytes with limit %d: %v", size, max, err)
		}
		if !bytes.Equal(got, art) {
			t.Errorf("Read of %d bytes returned %d bytes", size, len(got))
		}
	}

	// One byte over, and far over: refused from the size alone. The big
	// file is sparse; reading it would take a gigabyte of memory.
	for _, size := range []int64{max + 1, 1 << 30} {
		e := entryIn(t, dir)
		f, err := os.Create(e.Path)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		if err := os.Truncate(e.Path, size); err != nil {
			t.Fatal(err)
		}
		got, err := Read(e, max)
		var tl *TooLargeError
		if !errors.As(err, &tl) || !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Read of %d bytes with limit %d = %d bytes, %v; want a TooLargeError", size, max, len(got), err)
		}
		if tl.Size != size || tl.Max != max || tl.Path != e.Path {
			t.Errorf("TooLargeError = %+v; want size %d, max %d, path %s", tl, size, max, e.Path)
		}
		if !strings.Contains(err.Error(), fmt.Sprint(size)) || !strings.Contains(err.Error(), fmt.Sprint(max)) {
			t.Errorf("error %q does not give the size and the limit", err)
		}
	}

	if _, err := Read(entryIn(t, dir), max); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Read of a missing file: %v; want fs.ErrNotExist", err)
	}
}

// TestReadNotRegular: a FIFO must not block the reader, a symbolic link
// must not be followed, a directory or a device must not be read.
func TestReadNotRegular(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(target, []byte("Newsgroups: dst.reports\r\n\r\nnot yours\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := entryIn(t, dir)
	if err := syscall.Mkfifo(fifo.Path, 0o600); err != nil {
		t.Fatal(err)
	}
	link := entryIn(t, dir)
	if err := os.Symlink(target, link.Path); err != nil {
		t.Fatal(err)
	}
	fifoLink := entryIn(t, dir)
	if err := os.Symlink(fifo.Path, fifoLink.Path); err != nil {
		t.Fatal(err)
	}
	sub := entryIn(t, dir)
	if err := os.Mkdir(sub.Path, 0o700); err != nil {
		t.Fatal(err)
	}
	null := entryIn(t, dir)
	if err := os.Symlink("/dev/zero", null.Path); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what string
		e    Entry
		kind string
	}{
		{"FIFO", fifo, "a FIFO"},
		{"symbolic link", link, "a symbolic link"},
		{"link to a FIFO", fifoLink, "a symbolic link"},
		{"directory", sub, "a directory"},
		{"link to /dev/zero", null, "a symbolic link"},
	} {
		done := make(chan error, 1)
		go func() {
			_, err := Read(c.e, 1<<20)
			done <- err
		}()
		var err error
		select {
		case err = <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("Read of a %s still blocked after 10s", c.what)
		}
		if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), c.kind) {
			t.Errorf("Read of a %s: %v; want ErrNotRegular naming %q", c.what, err, c.kind)
		}
	}
}

// TestReadFIFOOpenDoesNotBlock covers an entry replaced by a FIFO after
// Read's Lstat: the open must not wait for a writer. It calls what Read
// does after the Lstat directly, as the race cannot be timed.
func TestReadFIFOOpenDoesNotBlock(t *testing.T) {
	dir := t.TempDir()
	e := entryIn(t, dir)
	if err := syscall.Mkfifo(e.Path, 0o600); err != nil {
		t.Fatal(err)
	}
	// os.Open (O_RDONLY alone) would block here until a writer came.
	done := make(chan error, 1)
	go func() {
		_, err := readOpened(e, 1<<20)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "a FIFO") {
			t.Errorf("reading an opened FIFO: %v; want ErrNotRegular naming a FIFO", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("opening a FIFO blocked")
	}
}

func TestOldestBatches(t *testing.T) {
	dir := t.TempDir()
	if es, err := Oldest(dir, Entry{}, 10); err != nil || len(es) != 0 {
		t.Fatalf("Oldest of an unused spool = %v, %v; want nothing", es, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "new"), 0o770); err != nil {
		t.Fatal(err)
	}
	// More files than readDirChunk, in an order unlike the time order.
	const n = 2*readDirChunk + 7
	var want []string
	for i := range n {
		name := fmt.Sprintf("%d.1.%016x%s", 1_000_000_000+((i*7919)%n), i, Suffix)
		if err := os.WriteFile(filepath.Join(dir, "new", name), nil, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		for j := range n {
			if (j*7919)%n == i {
				want = append(want, fmt.Sprintf("%d.1.%016x%s", 1_000_000_000+i, j, Suffix))
			}
		}
	}
	os.WriteFile(filepath.Join(dir, "new", "junk.txt"), nil, 0o640)
	// Not a regular file: Oldest lists it (List does not), so that the
	// reader refuses it rather than skips it forever.
	fifo := fmt.Sprintf("%d.1.ffffffffffffffff%s", 2_000_000_000, Suffix)
	if err := syscall.Mkfifo(filepath.Join(dir, "new", fifo), 0o600); err != nil {
		t.Fatal(err)
	}
	want = append(want, fifo)

	for _, batch := range []int{1, 10, readDirChunk, n + 1, 0} {
		var got []string
		var after Entry
		for {
			es, err := Oldest(dir, after, batch)
			if err != nil {
				t.Fatal(err)
			}
			if batch > 0 && len(es) > batch {
				t.Fatalf("batch %d: Oldest returned %d entries", batch, len(es))
			}
			for _, e := range es {
				got = append(got, e.Name)
				after = e
			}
			if batch <= 0 || len(es) < batch {
				break
			}
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("batch %d: walked %d entries, want the %d in time order:\ngot  %.200v\nwant %.200v", batch, len(got), len(want), got, want)
		}
	}
	if es, _ := List(dir); len(es) != n {
		t.Errorf("List returned %d entries, want the %d regular files", len(es), n)
	}
}

func TestQuarantine(t *testing.T) {
	dir := t.TempDir()
	p, err := Put(dir, []byte("not a report"))
	if err != nil {
		t.Fatal(err)
	}
	e := Entry{Name: filepath.Base(p), Path: p}
	bad, err := Quarantine(e)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, BadDir, e.Name); bad != want {
		t.Errorf("Quarantine returned %s, want %s", bad, want)
	}
	if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the file is still in new/: %v", err)
	}
	if b, err := os.ReadFile(bad); err != nil || string(b) != "not a report" {
		t.Errorf("quarantined file holds %q, %v", b, err)
	}
	fi, err := os.Stat(filepath.Join(dir, BadDir))
	if err != nil || !fi.IsDir() || fi.Mode().Perm()&0o027 != 0 {
		t.Errorf("bad/ is %v, %v; want a directory of mode 0750 or less", fi.Mode(), err)
	}

	// The same name again is kept beside the first, not over it.
	if err := os.WriteFile(p, []byte("second"), 0o640); err != nil {
		t.Fatal(err)
	}
	bad2, err := Quarantine(e)
	if err != nil {
		t.Fatal(err)
	}
	if bad2 == bad {
		t.Fatalf("second quarantine of %s went over the first", e.Name)
	}
	if b, _ := os.ReadFile(bad); string(b) != "not a report" {
		t.Errorf("first quarantined file overwritten: %q", b)
	}

	// A FIFO and a symbolic link are moved themselves, not what they
	// lead to.
	target := filepath.Join(t.TempDir(), "target")
	os.WriteFile(target, []byte("keep"), 0o600)
	link := entryIn(t, dir)
	if err := os.Symlink(target, link.Path); err != nil {
		t.Fatal(err)
	}
	if bad, err := Quarantine(link); err != nil {
		t.Fatal(err)
	} else if fi, err := os.Lstat(bad); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("quarantined link is %v, %v", fi, err)
	}
	if b, err := os.ReadFile(target); err != nil || string(b) != "keep" {
		t.Errorf("the link's target changed: %q, %v", b, err)
	}

	if _, err := Quarantine(entryIn(t, dir)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Quarantine of a missing file: %v; want fs.ErrNotExist", err)
	}
}

// TestQuarantineBadDirRefused: bad/ is in a directory dstc's group can
// write; a bad/ that one of them made or replaced is not used.
func TestQuarantineBadDirRefused(t *testing.T) {
	for _, c := range []struct {
		what, want string
		make       func(bad string) error
	}{
		{"symbolic link", "symbolic link", func(bad string) error { return os.Symlink(t.TempDir(), bad) }},
		{"group-writable directory", "writable by its group", func(bad string) error {
			if err := os.Mkdir(bad, 0o770); err != nil {
				return err
			}
			return os.Chmod(bad, 0o770)
		}},
		{"file", "must be a directory", func(bad string) error { return os.WriteFile(bad, nil, 0o600) }},
	} {
		dir := t.TempDir()
		if err := c.make(filepath.Join(dir, BadDir)); err != nil {
			t.Fatal(err)
		}
		p, err := Put(dir, []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Quarantine(Entry{Name: filepath.Base(p), Path: p})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("bad/ a %s: Quarantine = %v; want an error saying %q", c.what, err, c.want)
		}
		if _, err := os.Stat(p); err != nil {
			t.Errorf("bad/ a %s: the file left new/: %v", c.what, err)
		}
	}
}

// TestReadOpenedSymlink covers an entry replaced by a symbolic link after
// Read's Lstat: it is not followed.
func TestReadOpenedSymlink(t *testing.T) {
	target := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(target, []byte("secret"), 0o600)
	e := entryIn(t, t.TempDir())
	if err := os.Symlink(target, e.Path); err != nil {
		t.Fatal(err)
	}
	if b, err := readOpened(e, 1<<20); !errors.Is(err, ErrNotRegular) {
		t.Errorf("reading an opened symbolic link = %q, %v; want ErrNotRegular", b, err)
	}
}

// TestReadGrowing: a file that stats smaller than the limit but holds
// more (one growing while it is read) is cut at the limit and refused.
// Linux's /proc files stat as empty and are not, which makes the case
// repeatable.
func TestReadGrowing(t *testing.T) {
	const p = "/proc/self/maps"
	if fi, err := os.Stat(p); err != nil || fi.Size() != 0 {
		t.Skipf("needs %s of size 0 (Linux): %v", p, err)
	}
	_, err := readOpened(Entry{Name: "maps", Path: p}, 16)
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.Size != 17 {
		t.Fatalf("reading %s with a limit of 16 bytes: %v; want a TooLargeError of 17 bytes read", p, err)
	}
}
