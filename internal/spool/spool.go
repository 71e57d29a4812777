// Package spool is the drop directory where dstc leaves reports it could not
// hand to dstd, and where dstd picks them up later.
//
// # Format
//
// This layout is a contract between dstc and dstd, which may be different
// versions of DST; change it only compatibly.
//
// The spool is a directory DIR, made by the administrator and writable by
// both programs (for example owned by the submission group, mode 3770: setgid, and
// sticky so that writers cannot remove each other's files), with two
// subdirectories in the manner of maildir:
//
//	DIR/tmp/   files being written; never read
//	DIR/new/   complete reports, ready to be taken
//
// Each file holds one report article in wire form: CRLF line ends, not
// dot-stuffed, exactly the bytes dstc would have sent with POST. Its name is
//
//	<unix-nanoseconds>.<pid>.<16 hex digits>.art
//
// where the time is when the report was written (decimal, so names sort by
// time until the year 2286), pid is the writer's process id and the hex
// digits are random. Time, process and 64 random bits together make names
// unique without locking.
//
// A writer creates DIR/tmp/<name>, writes it, fsyncs and closes it, renames
// it to DIR/new/<name> and fsyncs DIR/new, so a file in new/ is always
// complete and survives a crash once Put has returned. A reader looks only
// in new/, at names ending in ".art", and removes a file once the report is
// durably stored elsewhere. A file left in tmp/ is the remains of a crash;
// after a day it can only be junk, and readers may delete it.
//
// A reader takes no more than a report's size limit from a file, and
// moves what it will not take (a file over the limit, one it cannot parse,
// an entry in new/ that is not a regular file) into a third subdirectory,
// made and written by the reader only:
//
//	DIR/bad/   refused files, kept for the administrator; never read
//
// A file moved back from bad/ into new/ is taken again.
package spool

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Suffix ends the name of every report file.
const Suffix = ".art"

// dirMode is for tmp/ and new/: the writer (dstc, run as the MTA's user) and
// the reader (dstd) share the spool through a group.
const dirMode = 0o770

// fileMode lets the group read a report; nobody needs to change one.
const fileMode = 0o640

// Put stores article in the spool directory dir and returns the path of
// the new file in dir/new. It creates dir/tmp and dir/new (mode 0770, less
// the umask) if they are missing, but not dir itself: a missing spool
// directory is a configuration error worth reporting. It is PutContext
// without a way to give up.
func Put(dir string, article []byte) (path string, err error) {
	return PutContext(context.Background(), dir, article)
}

// putChunk is how much PutContext writes between two looks at its context,
// so that a large report does not delay giving up.
const putChunk = 256 << 10

// PutContext is Put for a writer that may be told to stop (dstc on SIGTERM
// or at its -timeout). Either it returns the path of a complete report in
// dir/new, or an error and nothing of the report is left in dir/tmp or
// dir/new: a report is never half-written.
//
// It gives up, with an error wrapping ctx.Err(), while writing and up to
// the fsync. Once the fsync has begun it finishes: the report is then
// complete on disk and one rename from new/, and throwing it away would
// only make the MTA deliver the message again.
func PutContext(ctx context.Context, dir string, article []byte) (path string, err error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("spool directory %s: stopped before writing the report: %w", dir, err)
	}
	if err := checkDir(dir); err != nil {
		return "", err
	}
	tmpDir, newDir := filepath.Join(dir, "tmp"), filepath.Join(dir, "new")
	for _, d := range []string{tmpDir, newDir} {
		if err := os.Mkdir(d, dirMode); err != nil && !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("spool directory %s: %w", dir, unwrapPath(err))
		}
	}

	name := newName(time.Now())
	tmpPath := filepath.Join(tmpDir, name)
	// O_EXCL: the name is meant to be unique, so an existing file means
	// something is wrong and must not be overwritten.
	f, err := os.OpenFile(tmpPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		return "", fmt.Errorf("spool directory %s: creating %s: %w", dir, tmpPath, unwrapPath(err))
	}
	defer func() {
		if err != nil {
			f.Close() // may already be closed; the error is the one above
			os.Remove(tmpPath)
		}
	}()
	for rest := article; ; {
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("spool file %s: stopped while writing the report, file removed: %w", tmpPath, err)
		}
		if len(rest) == 0 {
			break
		}
		n := min(len(rest), putChunk)
		if _, err := f.Write(rest[:n]); err != nil {
			return "", fmt.Errorf("spool file %s: writing: %w", tmpPath, unwrapPath(err))
		}
		rest = rest[n:]
	}
	// Sync before rename: otherwise a crash can leave a complete-looking
	// name in new/ pointing at an empty or partial file.
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("spool file %s: fsync: %w", tmpPath, unwrapPath(err))
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("spool file %s: closing: %w", tmpPath, unwrapPath(err))
	}
	newPath := filepath.Join(newDir, name)
	if err := os.Rename(tmpPath, newPath); err != nil {
		return "", fmt.Errorf("spool file %s: moving to %s: %w", tmpPath, newDir, unwrapPath(err))
	}
	// The rename is durable only once the directory is synced; until then
	// a crash could lose the report that dstc already reported as spooled.
	if err := syncDir(newDir); err != nil {
		return "", fmt.Errorf("spool directory %s: %w", newDir, err)
	}
	return newPath, nil
}

// checkDir reports a clear error if dir does not exist or is not a
// directory.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("spool directory %s: %w", dir, unwrapPath(err))
	}
	if !fi.IsDir() {
		return fmt.Errorf("spool directory %s: not a directory", dir)
	}
	return nil
}

// unwrapPath drops the *fs.PathError wrapper, whose "op path:" prefix would
// repeat what the message already says. The errno stays, so errors.Is with
// fs.ErrPermission or fs.ErrNotExist still works.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return unwrapPath(err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync: %w", unwrapPath(err))
	}
	return nil
}

func newName(t time.Time) string {
	var b [8]byte
	// crypto/rand.Read cannot fail since Go 1.24.
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%d.%d.%016x%s", t.UnixNano(), os.Getpid(), binary.BigEndian.Uint64(b[:]), Suffix)
}

// Entry is one report waiting in the spool.
type Entry struct {
	Name string    // file name, as described in the package comment
	Path string    // full path of the file in new/
	Time time.Time // when it was written, from the name
}

// List returns the reports in dir/new, oldest first. Files whose names do
// not follow the format (other suffixes, dot files, editor backups) are
// ignored, as are subdirectories. A spool in which nothing was ever put
// (no new/ yet) is empty, not an error.
func List(dir string) ([]Entry, error) {
	return scan(dir, Entry{}, 0, true)
}

// parseName returns the time in a report file name.
func parseName(name string) (time.Time, bool) {
	if !strings.HasSuffix(name, Suffix) {
		return time.Time{}, false
	}
	parts := strings.Split(strings.TrimSuffix(name, Suffix), ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	ns, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil || ns < 0 {
		return time.Time{}, false
	}
	return time.Unix(0, ns), true
}

// Remove deletes a report once it has been durably stored elsewhere. A
// report already gone (another reader took it) is not an error.
func Remove(e Entry) error {
	if err := os.Remove(e.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("spool file %s: removing: %w", e.Path, unwrapPath(err))
	}
	// A removal lost in a crash makes dstd take the report again, and a
	// spooled report has no Message-ID yet, so history would not catch
	// the duplicate: make the removal durable too.
	if err := syncDir(filepath.Dir(e.Path)); err != nil {
		return fmt.Errorf("spool directory %s: %w", filepath.Dir(e.Path), err)
	}
	return nil
}

// CleanTmp deletes files in dir/tmp last modified more than olderThan ago
// and returns how many it deleted. Put never leaves a file in tmp/ unless
// the writer crashed, so anything older than a Put can take is junk; a day
// is a safe choice.
func CleanTmp(dir string, olderThan time.Duration) (int, error) {
	if err := checkDir(dir); err != nil {
		return 0, err
	}
	tmpDir := filepath.Join(dir, "tmp")
	f, err := os.Open(tmpDir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("spool directory %s: reading tmp/: %w", dir, unwrapPath(err))
	}
	defer f.Close()
	cutoff := time.Now().Add(-olderThan)
	n := 0
	var errs []error
	for {
		// In chunks: a tmp/ filled with millions of files must not cost
		// their names' worth of memory.
		des, err := f.ReadDir(readDirChunk)
		for _, de := range des {
			if !de.Type().IsRegular() {
				continue
			}
			fi, err := de.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // finished and renamed meanwhile
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if !fi.ModTime().Before(cutoff) {
				continue
			}
			p := filepath.Join(tmpDir, de.Name())
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("spool file %s: removing: %w", p, unwrapPath(err)))
				continue
			}
			n++
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("spool directory %s: reading tmp/: %w", dir, unwrapPath(err)))
			break
		}
	}
	return n, errors.Join(errs...)
}
