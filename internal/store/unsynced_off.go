//go:build !dstexp_unsynced

package store

// Unsynced is false: commits are synced to disk unless Options.NoSync.
// See unsynced_on.go.
const Unsynced = false
