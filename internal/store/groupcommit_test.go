package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

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

// TestLazyWrite: a lazy write (an acknowledgement) waits for the next
// commit another writer starts and joins it, so the two cost one commit;
// alone, it is committed after LazyWait. Without lazy writes each
// acknowledgement was a commit of its own.
func TestLazyWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := openTest(t)
		put := func(k string) func(*bolt.Tx) error {
			return func(tx *bolt.Tx) error { return tx.Bucket([]byte(bucketMeta)).Put([]byte(k), []byte{1}) }
		}
		commits := func() int {
			db.group.mu.Lock()
			defer db.group.mu.Unlock()
			return db.group.commits
		}
		stored := func(k string) bool {
			var ok bool
			db.bdb.View(func(tx *bolt.Tx) error {
				ok = tx.Bucket([]byte(bucketMeta)).Get([]byte(k)) != nil
				return nil
			})
			return ok
		}

		start := time.Now()
		c0 := commits()
		done := make(chan error, 1)
		go func() { done <- db.batchLazy(put("test-lazy-1")) }()
		synctest.Wait()
		if n := commits() - c0; n != 0 || stored("test-lazy-1") {
			t.Fatalf("a lazy write alone was committed at once (%d commits)", n)
		}
		if err := db.batch(put("test-eager")); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if n := commits() - c0; n != 1 || !stored("test-lazy-1") || !stored("test-eager") {
			t.Errorf("lazy and eager write: %d commits, want 1 holding both", n)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("the lazy write waited %v after the commit it joined", d)
		}

		start, c0 = time.Now(), commits()
		if err := db.batchLazy(put("test-lazy-2")); err != nil {
			t.Fatal(err)
		}
		if d, n := time.Since(start), commits()-c0; d != LazyWait || n != 1 || !stored("test-lazy-2") {
			t.Errorf("a lazy write alone: committed after %v in %d commits, want %v and 1", d, n, LazyWait)
		}
	})
}

// TestLazyBacklog: the lazy write that makes maxLazy waiting starts their
// commit at once, without LazyWait: a backlog of acknowledgements is not
// held to maxLazy per LazyWait.
func TestLazyBacklog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := openTest(t)
		put := func(k string) func(*bolt.Tx) error {
			return func(tx *bolt.Tx) error { return tx.Bucket([]byte(bucketMeta)).Put([]byte(k), []byte{1}) }
		}
		start := time.Now()
		db.group.mu.Lock()
		c0 := db.group.commits
		db.group.mu.Unlock()
		errs := make(chan error, maxLazy)
		for i := range maxLazy - 1 {
			go func() { errs <- db.batchLazy(put(fmt.Sprintf("test-lazy-%d", i))) }()
		}
		synctest.Wait() // maxLazy-1 wait for company
		select {
		case err := <-errs:
			t.Fatalf("with %d lazy writes waiting, one returned (%v) before LazyWait", maxLazy-1, err)
		default:
		}
		if err := db.batchLazy(put("test-lazy-last")); err != nil {
			t.Fatal(err)
		}
		for range maxLazy - 1 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		db.group.mu.Lock()
		n := db.group.commits - c0
		db.group.mu.Unlock()
		if d := time.Since(start); d != 0 || n != 1 {
			t.Errorf("%d lazy writes: committed after %v in %d commits, want at once in 1", maxLazy, d, n)
		}
	})
}

// TestCloseCommitsLazyWrites: a lazy write still waiting for company when
// the store is closed is committed by Close, not lost to its timer.
func TestCloseCommitsLazyWrites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "dst.db")
		db, err := Open(path, Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			done <- db.batchLazy(func(tx *bolt.Tx) error {
				return tx.Bucket([]byte(bucketMeta)).Put([]byte("test-lazy"), []byte{1})
			})
		}()
		synctest.Wait() // the write waits for company
		start := time.Now()
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("the lazy write failed: %v", err)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("Close waited %v for the lazy write's timer", d)
		}
		db, err = Open(path, Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		db.bdb.View(func(tx *bolt.Tx) error {
			if tx.Bucket([]byte(bucketMeta)).Get([]byte("test-lazy")) == nil {
				t.Error("the lazy write pending at Close is not in the file")
			}
			return nil
		})
	})
}
