package spool

import (
	"bytes"
	"container/heap"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// BadDir is the subdirectory of the spool where a reader moves what it
// refuses to take: files too large, malformed reports, entries that are not
// regular files. Nothing reads it; it is there for the administrator.
const BadDir = "bad"

// badMode: dstc's group may read what was refused (it wrote it), but only
// dstd writes there, so that what an administrator finds in bad/ is what
// dstd put there.
const badMode = 0o750

// readDirChunk is how many directory entries are read at a time, so that
// a spool holding millions of files costs no more memory than a few.
const readDirChunk = 256

var (
	// ErrTooLarge means that a spool file is larger than the limit given
	// to Read. Errors that wrap it are a *TooLargeError.
	ErrTooLarge = errors.New("spool file larger than the limit")
	// ErrNotRegular means that a spool entry is not a regular file: a
	// FIFO, a device, a socket, a directory or a symbolic link. Put never
	// writes one, so someone else put it there.
	ErrNotRegular = errors.New("not a regular file")
)

// TooLargeError is what Read returns for a file over its limit.
type TooLargeError struct {
	Path string
	// Size is the file's size when Read looked, or, for a file that grew
	// while it was read, what had been read: more than Max.
	Size, Max int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("spool file %s is %d bytes, more than the limit of %d", e.Path, e.Size, e.Max)
}

// Is makes errors.Is(err, ErrTooLarge) true.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// Oldest returns at most n entries of dir/new, oldest first, among those
// that come after the entry after in that order (the zero Entry: from the
// first). Calling it again with the last entry it returned walks the whole
// spool in batches, at a cost in memory of n entries however many files
// there are. n <= 0 means no bound.
//
// Unlike List, Oldest also returns entries that are not regular files, as
// long as their names follow the format: Read refuses them and Quarantine
// takes them out of the way, where List's callers would skip them on every
// pass without a word.
func Oldest(dir string, after Entry, n int) ([]Entry, error) {
	return scan(dir, after, n, false)
}

// scan lists dir/new as Oldest does; regularOnly skips what is not a
// regular file (List).
func scan(dir string, after Entry, n int, regularOnly bool) ([]Entry, error) {
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	newDir := filepath.Join(dir, "new")
	f, err := os.Open(newDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("spool directory %s: reading new/: %w", dir, unwrapPath(err))
	}
	defer f.Close()
	var h entryHeap // the newest kept on top, to be dropped first
	for {
		des, err := f.ReadDir(readDirChunk)
		for _, de := range des {
			if regularOnly && !de.Type().IsRegular() {
				continue
			}
			t, ok := parseName(de.Name())
			if !ok {
				continue
			}
			e := Entry{Name: de.Name(), Path: filepath.Join(newDir, de.Name()), Time: t}
			if after.Name != "" && compareEntries(e, after) <= 0 {
				continue
			}
			if n > 0 && len(h) == n {
				if compareEntries(e, h[0]) >= 0 {
					continue
				}
				h[0] = e
				heap.Fix(&h, 0)
				continue
			}
			heap.Push(&h, e)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("spool directory %s: reading new/: %w", dir, unwrapPath(err))
		}
	}
	es := make([]Entry, len(h))
	for i := len(h) - 1; i >= 0; i-- {
		es[i] = heap.Pop(&h).(Entry)
	}
	return es, nil
}

func compareEntries(a, b Entry) int {
	if c := a.Time.Compare(b.Time); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

// entryHeap is a max-heap: the newest entry at index 0.
type entryHeap []Entry

func (h entryHeap) Len() int           { return len(h) }
func (h entryHeap) Less(i, j int) bool { return compareEntries(h[i], h[j]) > 0 }
func (h entryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *entryHeap) Push(x any)        { *h = append(*h, x.(Entry)) }
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// Read returns the content of the report e if it is a regular file of at
// most max bytes. It never reads more than max+1 bytes: a larger file is
// refused from its size (*TooLargeError), without being read, as is one
// that grows past max while it is read. An entry that is not a regular
// file is refused with ErrNotRegular, without being opened if it already
// was not one when listed, and without following a symbolic link or
// waiting for a FIFO's writer if it was swapped in since. A file gone
// since it was listed gives an error that matches fs.ErrNotExist.
func Read(e Entry, max int64) ([]byte, error) {
	fi, err := os.Lstat(e.Path)
	if err != nil {
		return nil, fmt.Errorf("spool file %s: %w", e.Path, unwrapPath(err))
	}
	if !fi.Mode().IsRegular() {
		return nil, notRegular(e.Path, fi.Mode())
	}
	return readOpened(e, max)
}

// readOpened is Read after the Lstat: the entry may have been replaced
// since, by anything.
func readOpened(e Entry, max int64) ([]byte, error) {
	// O_NONBLOCK: opening a FIFO put there since the Lstat must not wait
	// for a writer that may never come; O_NOFOLLOW: nor may a symbolic
	// link lead dstd to a file of someone else's choosing.
	fd, err := unix.Open(e.Path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err == unix.ELOOP {
		return nil, notRegular(e.Path, fs.ModeSymlink)
	}
	if err != nil {
		return nil, fmt.Errorf("spool file %s: opening: %w", e.Path, err)
	}
	f := os.NewFile(uintptr(fd), e.Path)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("spool file %s: %w", e.Path, unwrapPath(err))
	}
	if !fi.Mode().IsRegular() {
		return nil, notRegular(e.Path, fi.Mode())
	}
	if fi.Size() > max {
		return nil, &TooLargeError{Path: e.Path, Size: fi.Size(), Max: max}
	}
	var buf bytes.Buffer
	buf.Grow(int(fi.Size()) + bytes.MinRead) // one allocation unless it grows
	n, err := buf.ReadFrom(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("spool file %s: reading: %w", e.Path, unwrapPath(err))
	}
	if n > max {
		return nil, &TooLargeError{Path: e.Path, Size: n, Max: max}
	}
	return buf.Bytes(), nil
}

func notRegular(path string, m fs.FileMode) error {
	return fmt.Errorf("spool file %s: %w but %s", path, ErrNotRegular, kindOf(m))
}

// kindOf names the type of a file that is not a regular one.
func kindOf(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeDir != 0:
		return "a directory"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "of type " + m.Type().String()
}

// Quarantine moves the entry e from new/ into the spool's bad/ directory
// and returns its new path. It creates bad/ (mode 0750 less the umask) if
// it is missing. It refuses a bad/ that is a symbolic link, not a
// directory, not owned by this process's user or root, or writable by
// others than its owner: new/ and the spool are writable by dstc's group,
// and none of them should choose where a refused file goes. A name
// already taken in bad/ gets a suffix, so nothing is overwritten.
func Quarantine(e Entry) (string, error) {
	newDir := filepath.Dir(e.Path)
	dir := filepath.Dir(newDir)
	badDir := filepath.Join(dir, BadDir)
	if err := os.Mkdir(badDir, badMode); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("spool directory %s: creating %s/: %w", dir, BadDir, unwrapPath(err))
	}
	bfd, err := unix.Open(badDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("spool directory %s: opening %s/ (it must be a directory, not a symbolic link; remove it and dstd makes it again): %w", dir, BadDir, err)
	}
	bad := os.NewFile(uintptr(bfd), badDir)
	defer bad.Close()
	var st unix.Stat_t
	if err := unix.Fstat(bfd, &st); err != nil {
		return "", fmt.Errorf("spool directory %s: %w", badDir, err)
	}
	if uid := uint32(os.Geteuid()); st.Uid != uid && st.Uid != 0 {
		return "", fmt.Errorf("spool directory %s belongs to user id %d, not to dstd's (%d) or root: remove it and dstd makes it again", badDir, st.Uid, uid)
	}
	if st.Mode&0o022 != 0 {
		return "", fmt.Errorf("spool directory %s is writable by its group or others (mode %#o): make it mode 0750 (chmod 0750 %s)", badDir, st.Mode&0o7777, badDir)
	}
	// Only this process and root write bad/, so a name found free is
	// still free at the rename.
	name := e.Name
	for i := 1; ; i++ {
		var tmp unix.Stat_t
		err := unix.Fstatat(bfd, name, &tmp, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.ENOENT {
			break
		}
		if err != nil {
			return "", fmt.Errorf("spool directory %s: %w", badDir, err)
		}
		name = fmt.Sprintf("%s.%d", e.Name, i)
	}
	if err := unix.Renameat(unix.AT_FDCWD, e.Path, bfd, name); err != nil {
		if err == unix.ENOENT {
			return "", fmt.Errorf("spool file %s: moving to %s: %w", e.Path, badDir, fs.ErrNotExist)
		}
		return "", fmt.Errorf("spool file %s: moving to %s: %w", e.Path, badDir, err)
	}
	// Durable both ways: a crash must neither bring the file back into
	// new/ nor lose it from both.
	if err := bad.Sync(); err != nil {
		return "", fmt.Errorf("spool directory %s: fsync: %w", badDir, unwrapPath(err))
	}
	if err := syncDir(newDir); err != nil {
		return "", fmt.Errorf("spool directory %s: %w", newDir, err)
	}
	return filepath.Join(badDir, name), nil
}
