package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// BucketSpace is what one top-level bucket takes in the file, for the
// benchmarks and for an administrator asking where the bytes go.
type BucketSpace struct {
	Name string
	Keys int // key/value pairs, nested buckets' included
	// KeyBytes and ValueBytes sum the keys and values as stored; the
	// rest of InUse is bbolt's 16-byte element and page headers.
	KeyBytes, ValueBytes int64
	// InUse is the bytes of its pages that hold data; Alloc the bytes
	// of the pages it occupies (a page split on insert leaves pages
	// half empty: Alloc - InUse).
	InUse, Alloc int64
}

// Space returns the space each top-level bucket takes, in name order, and
// the size of the file, with the pages on the freelist. It reads every key:
// seconds for a million listings.
func (db *DB) Space() ([]BucketSpace, int64, error) {
	var (
		out  []BucketSpace
		size int64
	)
	err := db.bdb.View(func(tx *bolt.Tx) error {
		size = tx.Size()
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			s := b.Stats()
			bs := BucketSpace{Name: string(name), Keys: s.KeyN,
				InUse: int64(s.BranchInuse + s.LeafInuse), Alloc: int64(s.BranchAlloc + s.LeafAlloc)}
			var walk func(b *bolt.Bucket) error
			walk = func(b *bolt.Bucket) error {
				return b.ForEach(func(k, v []byte) error {
					bs.KeyBytes += int64(len(k))
					if v == nil {
						if nb := b.Bucket(k); nb != nil {
							return walk(nb)
						}
					}
					bs.ValueBytes += int64(len(v))
					return nil
				})
			}
			if err := walk(b); err != nil {
				return err
			}
			out = append(out, bs)
			return nil
		})
	})
	if err != nil {
		return nil, 0, fmt.Errorf("measure the space of %s: %w", db.path, err)
	}
	return out, size, nil
}
