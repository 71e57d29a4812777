package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Upgrading a file of layout 1, 2 or 3. Open writes the file of the
// current layout next to the old one (path + migrateSuffix), syncs it, and renames it over the old one:
// until the rename the old file is untouched, so a crash at any point
// leaves either the old store or the new one, never a mix, and the next
// Open starts again from the old one. Every bucket is written in key
// order, filled to migrateFill, so the new file is also compacted.

const (
	migrateSuffix = ".upgrade"
	// migrateChunk is how many keys one transaction of the migration
	// writes: bbolt keeps a transaction's changes in memory until it
	// commits.
	migrateChunk = 50000
	// migrateFill is the FillPercent of the buckets the migration fills
	// in key order.
	migrateFill = 0.9
)

// layoutOf returns the layout version of an open file, 0 for a new one.
func layoutOf(bdb *bolt.DB) (int64, error) {
	var v int64
	err := bdb.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket([]byte(bucketMeta))
		if meta == nil {
			return nil
		}
		raw := meta.Get([]byte(metaLayout))
		if len(raw) != 8 {
			return nil // initLayout says what is wrong
		}
		v = getCounter(meta, metaLayout)
		return nil
	})
	return v, err
}

// migrate writes the current form of the store bdb (at path) of layout
// from and puts it in its place. It returns the new file, opened with
// opt; bdb is closed either way.
func migrate(bdb *bolt.DB, path string, opt *bolt.Options, from int64) (*bolt.DB, error) {
	tmp := path + migrateSuffix
	fail := func(err error) (*bolt.DB, error) {
		_ = bdb.Close()
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("upgrade the store from layout %d to layout %d (the old file is unchanged): %w", from, layoutVersion, err)
	}
	convert := convertV1
	if from > 1 {
		convert = func(old *bolt.Tx, w *copier) error { return convertV23(old, w, from) }
	}
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fail(err) // left by an upgrade a crash interrupted
	}
	ndb, err := bolt.Open(tmp, 0o600, &bolt.Options{NoSync: true, Timeout: opt.Timeout})
	if err != nil {
		return fail(err)
	}
	w := &copier{db: ndb}
	err = bdb.View(func(old *bolt.Tx) error {
		if err := w.begin(); err != nil {
			return err
		}
		if err := convert(old, w); err != nil {
			_ = w.tx.Rollback()
			return err
		}
		return w.tx.Commit()
	})
	if err == nil {
		err = ndb.Sync()
	}
	if cerr := ndb.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(err)
	}
	// The rename is the switch. The old file's lock is held until it.
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	_ = bdb.Close()
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync() // make the rename durable
		_ = d.Close()
	}
	return bolt.Open(path, 0o600, opt)
}

// copier writes the new file in transactions of migrateChunk keys.
type copier struct {
	db *bolt.DB
	tx *bolt.Tx
	n  int
	// on is the origin numbering of tx.
	on *originTable
}

func (w *copier) begin() error {
	tx, err := w.db.Begin(true)
	w.tx, w.n, w.on = tx, 0, nil
	return err
}

// origins returns the origin numbering of the current transaction.
func (w *copier) origins() *originTable {
	if w.on == nil {
		w.on = newOriginTable(w.tx.Bucket([]byte(bucketOriginNum)), w.tx.Bucket([]byte(bucketOriginName)))
	}
	return w.on
}

// step counts n keys written and commits every migrateChunk.
func (w *copier) step(n int) error {
	if w.n += n; w.n < migrateChunk {
		return nil
	}
	if err := w.tx.Commit(); err != nil {
		return err
	}
	return w.begin()
}

// bucket returns the bucket at path in the current transaction, creating
// it (and its parents) if needed.
func (w *copier) bucket(path [][]byte) (*bolt.Bucket, error) {
	b, err := w.tx.CreateBucketIfNotExists(path[0])
	for _, name := range path[1:] {
		if err != nil {
			break
		}
		b, err = b.CreateBucketIfNotExists(name)
	}
	if err != nil {
		return nil, fmt.Errorf("create bucket %q: %w", path, err)
	}
	b.FillPercent = migrateFill
	return b, nil
}

// buckets returns the buckets of the current transaction. The
// arrivals log and the listings are written in key order, and filled to
// migrateFill; the history and the address indexes are written in the
// order of arrival, which is random for them, so they keep bbolt's
// default (a page split in the middle, two thirds full on average: a
// fuller split would leave a page for each key that lands in a full one).
func (w *copier) buckets() buckets {
	b := bucketsOf(w.tx)
	b.on = w.origins()
	for _, x := range []*bolt.Bucket{b.arrivals, b.listings} {
		x.FillPercent = migrateFill
	}
	for _, x := range []*bolt.Bucket{b.history, b.reportIP, b.relayedIP} {
		x.FillPercent = bolt.DefaultFillPercent
	}
	return b
}

// copyBucket copies src, nested buckets and sequences included, to path.
func (w *copier) copyBucket(src *bolt.Bucket, path [][]byte) error {
	return w.copyKeys(src, path, nil)
}

// addrKeys returns how the keys of a bucket of layout 1 or 2 that hold a
// 16-byte address (at the start, or after a time key) become keys of the
// current layout, or nil if the bucket's keys hold none.
func addrKeys(name string) func(k []byte) ([]byte, error) {
	at := -1
	switch name {
	case bucketListings, bucketSightings, bucketReportIP, bucketRelayedIP:
		at = 0
	case bucketExpiry, bucketSightingsTime:
		at = timeKeyLen
	}
	if at < 0 {
		return nil
	}
	return func(k []byte) ([]byte, error) {
		if len(k) < at+v1IPKeyLen {
			return nil, fmt.Errorf("%s key of %d bytes: the file is damaged", name, len(k))
		}
		nk := append(bytes.Clone(k[:at]), ipKeyFromV1(k[at:])...)
		return append(nk, k[at+v1IPKeyLen:]...), nil
	}
}

// copyKeys is copyBucket with the keys of src, not of nested buckets,
// converted by conv (if not nil).
func (w *copier) copyKeys(src *bolt.Bucket, path [][]byte, conv func([]byte) ([]byte, error)) error {
	dst, err := w.bucket(path)
	if err != nil {
		return err
	}
	if err := dst.SetSequence(src.Sequence()); err != nil {
		return err
	}
	c := src.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v == nil {
			if sub := src.Bucket(k); sub != nil {
				if err := w.copyBucket(sub, append(path[:len(path):len(path)], k)); err != nil {
					return err
				}
				continue
			}
		}
		if dst, err = w.bucket(path); err != nil {
			return err
		}
		if conv != nil {
			if k, err = conv(k); err != nil {
				return err
			}
		}
		if err := dst.Put(k, v); err != nil {
			return err
		}
		if err := w.step(1); err != nil {
			return err
		}
	}
	return nil
}

// logListedV1 is the last byte of a layout-1 listing log key that records
// a listing (0: a removal).
const logListedV1 = 1

// v1Buckets are the layout-1 buckets the conversion reads.
type v1Buckets struct {
	history, historyTime, articles, reports, relayed *bolt.Bucket
}

// convertV1 writes the layout-2 form of the layout-1 transaction old.
func convertV1(old *bolt.Tx, w *copier) error {
	o := v1Buckets{
		history:     old.Bucket([]byte(bucketHistory)),
		historyTime: old.Bucket([]byte(bucketV1HistoryTime)),
		articles:    old.Bucket([]byte(bucketV1Articles)),
		reports:     old.Bucket([]byte(bucketV1Reports)),
		relayed:     old.Bucket([]byte(bucketV1Relayed)),
	}
	if o.history == nil || o.historyTime == nil || o.articles == nil || o.reports == nil {
		return errors.New("a layout-1 bucket is missing: the file is damaged")
	}
	for _, name := range allBuckets() {
		if _, err := w.bucket([][]byte{[]byte(name)}); err != nil {
			return err
		}
	}
	var nHistory, nArticles int64
	// The arrivals log and the history, in order of arrival.
	c := o.historyTime.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if len(k) <= timeKeyLen {
			return fmt.Errorf("history time index key of %d bytes: the file is damaged", len(k))
		}
		added, article, err := w.arrival(o, k[timeKeyLen:], parseTimeKey(k))
		if err != nil {
			return err
		}
		if added {
			nHistory++
		}
		if article {
			nArticles++
		}
	}
	// A Message-ID the time index lost (a damaged file) keeps its time.
	hc := o.history.Cursor()
	for id, v := hc.First(); id != nil; id, v = hc.Next() {
		if len(v) != historyValueLen {
			continue
		}
		seen := time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC()
		added, article, err := w.arrival(o, id, seen)
		if err != nil {
			return err
		}
		if added {
			nHistory++
		}
		if article {
			nArticles++
		}
	}
	// Everything else: listings re-encoded, the rest as it is.
	err := old.ForEach(func(name []byte, src *bolt.Bucket) error {
		switch string(name) {
		case bucketHistory, bucketV1HistoryTime, bucketV1Articles, bucketV1Reports, bucketV1Relayed,
			bucketReportIP, bucketRelayedIP:
			return nil // rebuilt above
		case bucketListings:
			return w.listings(src, addrKeys(bucketListings))
		case bucketListingLog:
			return w.listingLog(src)
		case bucketMeta:
			return w.meta(src, nHistory, nArticles)
		}
		return w.copyKeys(src, [][]byte{bytes.Clone(name)}, addrKeys(string(name)))
	})
	return err
}

// layout3Buckets are the top-level buckets of layouts 2 and 3.
func layout3Buckets() []string {
	return []string{bucketHistory, bucketArrivals, bucketListings, bucketExpiry,
		bucketSightings, bucketSightingsTime, bucketQueues, bucketMeta, bucketReportIP,
		bucketCancelMarks, bucketOrigins, bucketOriginRate, bucketRelayedIP, bucketListingLog}
}

// convertV23 writes the current form of the transaction old of layout 2
// or 3: the origins numbered in the order the arrivals log names them,
// the arrivals log and the listings re-encoded (a listing of layout 2
// finds its last report's arrival key in the new history), the report
// indexes keyed by number, and (from layout 2) every address key in its
// short form. The rest is copied as it is; everything in key order, so
// compacted. Bucket names sort arrivals and history before listings,
// which need them.
func convertV23(old *bolt.Tx, w *copier, from int64) error {
	for _, name := range layout3Buckets() {
		if old.Bucket([]byte(name)) == nil {
			return fmt.Errorf("the layout-%d bucket %s is missing: the file is damaged", from, name)
		}
	}
	for _, name := range allBuckets() {
		if _, err := w.bucket([][]byte{[]byte(name)}); err != nil {
			return err
		}
	}
	var conv func(string) func([]byte) ([]byte, error)
	if from == 2 {
		conv = addrKeys
	} else {
		conv = func(string) func([]byte) ([]byte, error) { return nil }
	}
	return old.ForEach(func(name []byte, src *bolt.Bucket) error {
		switch string(name) {
		case bucketArrivals:
			return w.arrivals(src)
		case bucketListings:
			return w.listings(src, conv(bucketListings))
		case bucketReportIP, bucketRelayedIP:
			return w.reportIndex(src, string(name), from)
		case bucketMeta:
			if err := w.copyBucket(src, [][]byte{[]byte(bucketMeta)}); err != nil {
				return err
			}
			return putCounter(w.buckets().meta, metaLayout, layoutVersion)
		}
		return w.copyKeys(src, [][]byte{bytes.Clone(name)}, conv(string(name)))
	})
}

// arrivals re-encodes the arrivals log, its origins by number.
func (w *copier) arrivals(src *bolt.Bucket) error {
	c := src.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		b := w.buckets()
		a, err := decodeArrival(k, v, b.on)
		if err != nil {
			return err
		}
		s := &stored{key: k, arrival: a}
		if err := s.save(b); err != nil {
			return err
		}
		if err := w.step(1); err != nil {
			return err
		}
	}
	return nil
}

// reportIndex converts the keys of report_ip or relayed_ip of layout 2
// or 3 (address key, origin, 0, arrival key; the 16-byte address key in
// layout 2) to the current form. They come in address order, as they
// go, so the bucket is filled to migrateFill.
func (w *copier) reportIndex(src *bolt.Bucket, name string, from int64) error {
	c := src.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n := v1IPKeyLen
		if from > 2 {
			n = ipKeyLenOf(k)
		}
		i := bytes.IndexByte(k[min(n, len(k)):], 0)
		if n == 0 || len(k) <= n || i < 0 || len(k)-n-i-1 != arrivalKeyLen {
			return fmt.Errorf("%s key of %d bytes: the file is damaged", name, len(k))
		}
		var ip []byte
		if from == 2 {
			ip = ipKeyFromV1(k)
		} else {
			ip = k[:n]
		}
		num, err := w.origins().originNum(string(k[n : n+i]))
		if err != nil {
			return err
		}
		dst, err := w.bucket([][]byte{[]byte(name)})
		if err != nil {
			return err
		}
		nk := append(binary.AppendUvarint(bytes.Clone(ip), num), k[n+i+1:]...)
		if err := dst.Put(nk, nil); err != nil {
			return err
		}
		if err := w.step(1); err != nil {
			return err
		}
	}
	return nil
}

// arrival writes the arrival of Message-ID id, seen at seen, with what
// layout 1 kept of it, unless it is written already or the history forgot
// it (a stale index entry).
func (w *copier) arrival(o v1Buckets, id []byte, seen time.Time) (added, article bool, err error) {
	hv := o.history.Get(id)
	if len(hv) != historyValueLen {
		return false, false, nil
	}
	b := w.buckets()
	if done, err := seenID(b, id); err != nil || done {
		return false, false, err
	}
	s := &stored{key: nextArrivalKey(b.arrivals, seen), arrival: arrival{Status: hv[8], MessageID: string(id)}}
	if v := o.reports.Get(id); v != nil {
		r, err := decodeReportRecord(v)
		if err != nil {
			return false, false, fmt.Errorf("%s: %w", id, err)
		}
		s.Report = &r
	}
	if o.relayed != nil {
		if v := o.relayed.Get(id); v != nil {
			r, err := decodeRelayed(v)
			if err != nil {
				return false, false, fmt.Errorf("%s: %w", id, err)
			}
			s.Relayed = &r
		}
	}
	if v := o.articles.Get(id); v != nil {
		s.Article = v
	}
	if err := s.save(b); err != nil {
		return false, false, err
	}
	hk := historyKey(id)
	if err := b.history.Put(hk, append(bytes.Clone(b.history.Get(hk)), s.key...)); err != nil {
		return false, false, err
	}
	if r := s.Report; r != nil && !r.Cancelled {
		if err := indexReport(b, b.reportIP, r.IP, r.Origin, s.key); err != nil {
			return false, false, err
		}
	}
	if r := s.Relayed; r != nil {
		if err := indexReport(b, b.relayedIP, r.IP, r.Origin, s.key); err != nil {
			return false, false, err
		}
	}
	return true, s.Article != nil, w.step(4)
}

// listings re-encodes the listings in the current format, the last
// report by its arrival key (the arrivals log and the history are
// written first), their keys converted by conv (if not nil).
func (w *copier) listings(src *bolt.Bucket, conv func([]byte) ([]byte, error)) error {
	c := src.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if conv != nil {
			var err error
			if k, err = conv(k); err != nil {
				return err
			}
		}
		b := w.buckets()
		l, last, err := decodeListing(k, v, b.on)
		if err != nil {
			return err
		}
		if last == nil {
			if last, err = lastArrivalOf(b, l); err != nil {
				return err
			}
		}
		nv, err := encodeListing(l, last, b.on)
		if err != nil {
			return err
		}
		if err := b.listings.Put(k, nv); err != nil {
			return err
		}
		if err := w.step(1); err != nil {
			return err
		}
	}
	return nil
}

// listingLog turns layout 1's entry per change into counts per second.
func (w *copier) listingLog(src *bolt.Bucket) error {
	var (
		cur            []byte
		added, removed uint64
	)
	flush := func() error {
		if cur == nil {
			return nil
		}
		b := w.buckets()
		b.listingLog.FillPercent = migrateFill
		if err := b.listingLog.Put(cur, encodeLogCounts(added, removed)); err != nil {
			return err
		}
		return w.step(1)
	}
	c := src.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if len(k) != timeKeyLen+v1IPKeyLen+1 {
			return fmt.Errorf("listing log key of %d bytes: the file is damaged", len(k))
		}
		sec := timeKey(parseTimeKey(k).Truncate(time.Second))
		if !bytes.Equal(sec, cur) {
			if err := flush(); err != nil {
				return err
			}
			cur, added, removed = sec, 0, 0
		}
		if k[len(k)-1] == logListedV1 {
			added++
		} else {
			removed++
		}
	}
	return flush()
}

// meta copies the counters, with the layout version and the counts of
// what the conversion rebuilt.
func (w *copier) meta(src *bolt.Bucket, nHistory, nArticles int64) error {
	if err := w.copyBucket(src, [][]byte{[]byte(bucketMeta)}); err != nil {
		return err
	}
	meta := w.buckets().meta
	for _, c := range []struct {
		key string
		n   int64
	}{{metaLayout, layoutVersion}, {countHistory, nHistory}, {countArticles, nArticles}} {
		if err := putCounter(meta, c.key, c.n); err != nil {
			return err
		}
	}
	return nil
}
