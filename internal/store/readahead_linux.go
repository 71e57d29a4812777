package store

import (
	"os"

	"golang.org/x/sys/unix"
)

// readAhead asks the kernel to read the whole file into the page cache,
// without waiting for it, before a walk that reads every listing's last
// report. Those reads land anywhere in the arrivals log, and bbolt's
// mapping faults in one 4 KiB page at a time, so on a cold cache a
// million listings cost about 42,000 page faults, each a disk read:
// reading the file ahead, in large requests, makes them page-cache hits.
// The pages are cache the kernel reclaims as it needs; a failure only
// loses the speed-up.
//
// The kernel caps one POSIX_FADV_WILLNEED at its readahead window (a few
// MiB), so the file is asked for in steps of that size; each call only
// queues the reads.
func (db *DB) readAhead() {
	f, err := os.Open(db.bdb.Path())
	if err != nil {
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return
	}
	const step = 2 << 20
	for off := int64(0); off < fi.Size(); off += step {
		if unix.Fadvise(int(f.Fd()), off, step, unix.FADV_WILLNEED) != nil {
			return
		}
	}
}
