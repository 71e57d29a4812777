package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestGroupCommitFailureIsolated: many concurrent writes share commits; one
// that fails (or panics) gets its own error and the others are committed.
func TestGroupCommitFailureIsolated(t *testing.T) {
	db := openTest(t)
	errBad := errors.New("bad write")
	const n = 200
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = db.batch(func(tx *bolt.Tx) error {
				switch i {
				case 50:
					return errBad
				case 120:
					panic("boom")
				}
				return tx.Bucket([]byte(bucketMeta)).Put([]byte(fmt.Sprintf("test-%d", i)), []byte{1})
			})
		})
	}
	wg.Wait()
	err := db.bdb.View(func(tx *bolt.Tx) error {
		for i := range n {
			got := tx.Bucket([]byte(bucketMeta)).Get([]byte(fmt.Sprintf("test-%d", i))) != nil
			switch i {
			case 50:
				if !errors.Is(errs[i], errBad) || got {
					t.Errorf("failing write: err %v, stored %v", errs[i], got)
				}
			case 120:
				if !errors.Is(errs[i], errPanicked) || got {
					t.Errorf("panicking write: err %v, stored %v", errs[i], got)
				}
			default:
				if errs[i] != nil || !got {
					t.Errorf("write %d: err %v, stored %v", i, errs[i], got)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
