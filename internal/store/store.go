// Package store is dstd's database: the Message-ID history, the accepted
// articles, the listed addresses with their expiry index, the sightings that
// count distinct origins before an address is listed, and one durable FIFO
// queue per action or peer. It is the only package that imports bbolt.
//
// Every method that changes data returns only after its transaction has been
// committed and synced to disk (unless Options.NoSync), so dstd may
// acknowledge a report as soon as AddReport returns. AddReport,
// RecordRefused, Enqueue and the queue acknowledgements share commits among
// concurrent writers (group commit, see DB.batch), so many submitters pay
// one fsync; a writer alone commits at once.
//
// # Layout
//
// One bbolt file with these top-level buckets:
//
//	history       8 bytes of the SHA-256 of a Message-ID -> the arrival keys (10 bytes, below) of the Message-IDs with that hash (arrivals.go)
//	arrivals      arrival key -> status (accepted, refused), Message-ID, report or relayed record, article (arrivals.go); drives PruneHistory
//	listings      address key -> listing record (its last report by arrival key)
//	expiry        timeKey(expires) || address key -> empty; drives Expire
//	sightings     address key -> sightings record (reported, not yet listed)
//	sightings_time timeKey(latest sighting) || address key -> empty; drives PruneSightings
//	report_ip     address key || origin number (uvarint) || arrival key -> empty; an origin's live reports of an address
//	relayed_ip    the same for the reports stored only to relay (IngestParams.RelayOnly)
//	origin_num    origin -> its number (uvarint), which listings, report records and the report indexes hold (originnum.go)
//	origin_name   origin number (uvarint) -> origin
//	cancel_marks  cancelled Message-ID || 0 || signer -> time; a cancel that came before its report
//	origins       origin -> origin record: reports, corroborated, disputed, held, demoted (trust.go)
//	origin_rate   origin || 0 || 8-byte hour number -> new listings the origin caused in that hour
//	listing_log   timeKey(second) -> addresses listed and unlisted in that second; the listing count's past (activity.go)
//	queues        one nested bucket per queue name: 8-byte big-endian sequence -> queue item
//	meta          "layout" -> format version; "count/..." and "depth/<queue>" -> 8-byte counters
//
// An arrival key is the timeKey of the arrival and a 2-byte number for the
// Message-IDs of one nanosecond, so the arrivals log, the listing log and
// the time indexes are appended to; they are filled to fillAppend, the
// rest (keyed by Message-ID or address, in random order) to bbolt's
// default. The history is pruned by arrival time (history.keep).
//
// Addresses are unmapped before use (::ffff:192.0.2.1 is 192.0.2.1) and keyed
// by an address key (ipKey): a byte, then 4 bytes for IPv4 or 16 for IPv6,
// which sorts like the 16-byte form, so IPv4 and IPv6 share one ordering
// (layouts 1 and 2 used the 16-byte form itself). A timeKey is the
// Unix nanoseconds as big-endian uint64 with the sign bit flipped, so keys sort
// by time. Records start with a format byte and then use varints and
// length-prefixed strings (see codec.go).
package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Bucket names. They are part of the file format.
const (
	bucketHistory       = "history"
	bucketArrivals      = "arrivals"
	bucketListings      = "listings"
	bucketExpiry        = "expiry"
	bucketSightings     = "sightings"
	bucketSightingsTime = "sightings_time"
	bucketQueues        = "queues"
	bucketReportIP      = "report_ip"
	bucketCancelMarks   = "cancel_marks"
	// Reports stored only to relay (IngestParams.RelayOnly) are indexed
	// apart from report_ip, so that nothing that counts reports sees
	// them: relayed_ip indexes them by address for dstctl why.
	bucketRelayedIP = "relayed_ip"
	bucketMeta      = "meta"
	// bucketListingLog records when each address was listed and
	// unlisted, so the count of listings at a past time can be
	// computed (DB.ListingCounts).
	bucketListingLog = "listing_log"
)

// Buckets of layout 1 that layout 2 replaced with the arrivals log; only
// the migration reads them (migrate.go).
const (
	bucketV1HistoryTime = "history_time"
	bucketV1Articles    = "articles"
	bucketV1Reports     = "reports"
	bucketV1Relayed     = "relayed"
)

// allBuckets returns the top-level buckets of the current layout.
func allBuckets() []string {
	return []string{bucketHistory, bucketArrivals, bucketListings, bucketExpiry,
		bucketSightings, bucketSightingsTime, bucketQueues, bucketMeta, bucketReportIP,
		bucketCancelMarks, bucketOrigins, bucketOriginRate, bucketRelayedIP, bucketListingLog,
		bucketOriginNum, bucketOriginName}
}

// Keys in the meta bucket. Each holds an 8-byte big-endian integer.
const (
	metaLayout    = "layout" // file layout version, checked by Open
	countListings = "count/listings"
	countPending  = "count/pending"
	countHistory  = "count/history"
	countArticles = "count/articles"
	depthPrefix   = "depth/" // + queue name: items in that queue
)

// layoutVersion is the version of the layout described in the package
// comment. Change it, with a migration, whenever an existing file would be
// misread. Within layout 1 the cancel buckets were added without a
// change: an older file simply got them (its reports cannot be cancelled,
// see Cancel), and an older dstd ignored them. So were the origin
// buckets, the listing log (an older file's listings are taken as listed
// all along), and the fields appended to listing and report records (read
// as absent from older ones). Layout 2 replaced history_time, articles,
// reports and relayed with the arrivals log. Layout 3 refers to a
// listing's last report by arrival key instead of its Message-ID
// (encodeListing), and keys addresses by ipKey (5 bytes for IPv4) instead
// of their 16-byte form. Layout 4 numbers the origins (originnum.go) and
// names them by number in listings, report records and the report
// indexes. Open migrates a file of layout 1, 2 or 3 (migrate.go).
const layoutVersion = 4

// Limits on what callers store, so that bad input gets a clear error rather
// than bbolt's "key too large" in the middle of a transaction.
const (
	maxMessageIDLen   = 1000 // RFC 5536 allows 250; leave room, but stay far below bbolt's key limit
	maxQueueNameLen   = 200
	maxOriginLen      = 255 // a domain name
	maxListingOrigins = 32
	// maxLifetime bounds ExpireMax: expiry times are stored as int64 Unix
	// nanoseconds, which run out in 2262.
	maxLifetime = 100 * 365 * 24 * time.Hour
)

// DefaultLockTimeout is how long Open waits for another process to release
// the database when Options.Timeout is zero. bbolt's own default is to wait
// for ever, which would make a second dstd hang silently at start.
const DefaultLockTimeout = time.Second

// Options tune Open.
type Options struct {
	// Timeout is how long Open waits for the file lock held by another
	// process (another dstd running) before failing with a clear error.
	// Zero means DefaultLockTimeout.
	Timeout time.Duration
	// NoSync skips fsync after each commit. For tests and benchmarks only:
	// a crash can then lose reports that were already acknowledged.
	NoSync bool
	// Strict makes bbolt check the whole file after every commit (its
	// StrictMode). Slow; for tests.
	Strict bool
}

// DB is an open store. Its methods are safe for concurrent use.
type DB struct {
	bdb  *bolt.DB
	path string
	// group gathers concurrent writes into one commit (DB.batch).
	group groupCommit
	// hooks are the queues' subscribers and the commit observers.
	hooks hooks
}

// InUseError is returned by Open when another process holds the database.
type InUseError struct {
	Path string
	Err  error // bbolt's timeout error
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("database %s is in use by another process (is dstd already running?)", e.Path)
}

func (e *InUseError) Unwrap() error { return e.Err }

// Open opens the database at path, creating the file (mode 0600) and its
// buckets if needed, and upgrading a file of an older layout (migrate.go:
// a minute or two for a million listings on a 2-vCPU machine). Only one
// process may have it open at a time.
func Open(path string, opt Options) (*DB, error) {
	timeout := opt.Timeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	bopt := &bolt.Options{Timeout: timeout, NoSync: opt.NoSync || Unsynced}
	bdb, err := bolt.Open(path, 0o600, bopt)
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, &InUseError{Path: path, Err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if v, err := layoutOf(bdb); err != nil {
		_ = bdb.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	} else if v >= 1 && v < layoutVersion {
		if bdb, err = migrate(bdb, path, bopt, v); err != nil {
			return nil, fmt.Errorf("open database %s: %w", path, err)
		}
	}
	bdb.StrictMode = opt.Strict
	db := &DB{bdb: bdb, path: path}
	if err := bdb.Update(db.initLayout); err != nil {
		_ = bdb.Close() // the init error is the one worth reporting
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	return db, nil
}

// initLayout creates the buckets of a new file and checks the layout version
// of an existing one, so an older dstd refuses a file a newer one upgraded.
func (db *DB) initLayout(tx *bolt.Tx) error {
	for _, name := range allBuckets() {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	meta := tx.Bucket([]byte(bucketMeta))
	v := meta.Get([]byte(metaLayout))
	if v == nil {
		return putCounter(meta, metaLayout, layoutVersion)
	}
	if len(v) != 8 {
		return fmt.Errorf("layout version record is %d bytes, want 8: the file is not a DST store or is damaged", len(v))
	}
	if got := int64(binary.BigEndian.Uint64(v)); got != layoutVersion {
		return fmt.Errorf("file has layout version %d but this dstd understands only version %d", got, layoutVersion)
	}
	return nil
}

// Close releases the database and its lock. It waits for a write in
// progress; callers should stop using db first, because a call that has not
// started by then fails.
func (db *DB) Close() error {
	// Lazy writes (acknowledgements) waiting for a commit to join get
	// one now: left to their timer they would fail on the closed file,
	// and the next start would handle their items again.
	db.group.mu.Lock()
	lazy := len(db.group.lazy) > 0
	db.group.mu.Unlock()
	if lazy {
		if err := db.batch(func(*bolt.Tx) error { return nil }); err != nil {
			return fmt.Errorf("close database %s: commit the last acknowledgements: %w", db.path, err)
		}
	}
	if err := db.bdb.Close(); err != nil {
		return fmt.Errorf("close database %s: %w", db.path, err)
	}
	return nil
}

// Stats are counts for status displays and metrics.
type Stats struct {
	Listings  int   // listed addresses
	Pending   int   // addresses reported but below the origin threshold
	History   int   // Message-IDs remembered, accepted or refused
	Articles  int   // stored articles
	FileBytes int64 // size of the database file
}

// Stats returns the counters. It costs O(1): the counts are kept in the meta
// bucket and changed in the same transactions as the data they count.
func (db *DB) Stats() (Stats, error) {
	var s Stats
	err := db.bdb.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket([]byte(bucketMeta))
		s.Listings = int(getCounter(meta, countListings))
		s.Pending = int(getCounter(meta, countPending))
		s.History = int(getCounter(meta, countHistory))
		s.Articles = int(getCounter(meta, countArticles))
		s.FileBytes = tx.Size()
		return nil
	})
	if err != nil {
		return Stats{}, fmt.Errorf("read statistics from %s: %w", db.path, err)
	}
	return s, nil
}

// getCounter reads an 8-byte counter from meta; absent is zero.
func getCounter(meta *bolt.Bucket, key string) int64 {
	v := meta.Get([]byte(key))
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

func putCounter(meta *bolt.Bucket, key string, n int64) error {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(n))
	if err := meta.Put([]byte(key), v[:]); err != nil {
		return fmt.Errorf("update counter %s: %w", key, err)
	}
	return nil
}

// addCounter changes a counter by delta inside the caller's transaction.
// A counter that would go negative means the file was damaged or a bug
// double-counted; clamping keeps Stats sensible, and the property test is
// what catches the bug.
func addCounter(meta *bolt.Bucket, key string, delta int64) error {
	if delta == 0 {
		return nil
	}
	n := max(getCounter(meta, key)+delta, 0)
	if n == 0 && strings.HasPrefix(key, depthPrefix) {
		// An empty queue's counter is deleted rather than kept at zero, so
		// short-lived queue names leave nothing behind in meta.
		if err := meta.Delete([]byte(key)); err != nil {
			return fmt.Errorf("update counter %s: %w", key, err)
		}
		return nil
	}
	return putCounter(meta, key, n)
}

// buckets are the top-level buckets of one transaction, looked up once.
type buckets struct {
	history, arrivals, listings, expiry,
	sightings, sightingsTime, queues, meta *bolt.Bucket
	reportIP, cancelMarks *bolt.Bucket
	origins, originRate   *bolt.Bucket
	relayedIP             *bolt.Bucket
	listingLog            *bolt.Bucket
	// on numbers the origins (originnum.go).
	on *originTable
}

// readBucketsOf looks up only the buckets that a read of the history, an
// arrival or a listing uses (lookupHistory, loadArrival, readListing):
// the hot read paths (Seen, Article, Lookup) run once or more per article
// a peer offers, and opening all sixteen was about half of their CPU in
// a profile of the benchmark mesh. The other fields are nil: a function
// that needs more takes bucketsOf.
func readBucketsOf(tx *bolt.Tx) buckets {
	return buckets{
		history:  tx.Bucket([]byte(bucketHistory)),
		arrivals: tx.Bucket([]byte(bucketArrivals)),
		listings: tx.Bucket([]byte(bucketListings)),
		on:       newOriginTable(tx.Bucket([]byte(bucketOriginNum)), tx.Bucket([]byte(bucketOriginName))),
	}
}

// bucketsOf looks up the top-level buckets; Open made sure they exist.
// The buckets keyed by time are filled to fillAppend.
func bucketsOf(tx *bolt.Tx) buckets {
	b := buckets{
		history:       tx.Bucket([]byte(bucketHistory)),
		arrivals:      tx.Bucket([]byte(bucketArrivals)),
		listings:      tx.Bucket([]byte(bucketListings)),
		expiry:        tx.Bucket([]byte(bucketExpiry)),
		sightings:     tx.Bucket([]byte(bucketSightings)),
		sightingsTime: tx.Bucket([]byte(bucketSightingsTime)),
		queues:        tx.Bucket([]byte(bucketQueues)),
		meta:          tx.Bucket([]byte(bucketMeta)),
		reportIP:      tx.Bucket([]byte(bucketReportIP)),
		cancelMarks:   tx.Bucket([]byte(bucketCancelMarks)),
		origins:       tx.Bucket([]byte(bucketOrigins)),
		originRate:    tx.Bucket([]byte(bucketOriginRate)),
		relayedIP:     tx.Bucket([]byte(bucketRelayedIP)),
		listingLog:    tx.Bucket([]byte(bucketListingLog)),
		on:            newOriginTable(tx.Bucket([]byte(bucketOriginNum)), tx.Bucket([]byte(bucketOriginName))),
	}
	for _, t := range []*bolt.Bucket{b.expiry, b.listingLog} {
		t.FillPercent = fillAppend
	}
	b.arrivals.FillPercent = fillArrivals
	return b
}
