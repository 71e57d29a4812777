//go:build !linux

package store

// readAhead does nothing where posix_fadvise is not at hand.
func (db *DB) readAhead() {}
