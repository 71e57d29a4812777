package store

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The status page's figures come from the store, so that they are right
// after a restart: the listing log gives the count of listings at any
// past time it still covers, and the history's time index leads to the
// reports of a recent period.

// The listing log counts, per second, the addresses listed and unlisted
// in it: key timeKey(the second), value two uvarints (listed, removed).
// The counts are all ListingCounts needs, and a busy second is one key
// rather than one per address (layout 1 kept timeKey || address || kind).

// logListing records, in the caller's transaction, that ip was listed
// (or unlisted) at t.
func logListing(b buckets, t time.Time, ip netip.Addr, listed bool) error {
	k := timeKey(t.Truncate(time.Second))
	added, removed, err := decodeLogCounts(b.listingLog.Get(k))
	if err != nil {
		return err
	}
	if listed {
		added++
	} else {
		removed++
	}
	if err := b.listingLog.Put(k, encodeLogCounts(added, removed)); err != nil {
		return fmt.Errorf("log listing change of %s: %w", ip, err)
	}
	return nil
}

func encodeLogCounts(added, removed uint64) []byte {
	e := encoder{b: make([]byte, 0, 4)}
	e.uvarint(added)
	e.uvarint(removed)
	return e.b
}

// decodeLogCounts reads a listing log value; nil is no change yet.
func decodeLogCounts(v []byte) (added, removed uint64, err error) {
	if v == nil {
		return 0, 0, nil
	}
	d := decoder{b: v}
	added, removed = d.uvarint(), d.uvarint()
	if err := d.done(); err != nil {
		return 0, 0, fmt.Errorf("listing log record: %w", err)
	}
	return added, removed, nil
}

// ListingCounts returns the number of listed addresses at each of the
// times at (in any order), to the second: the count now, less the
// listings made after each time, plus those removed after it. A time before what the log
// still holds (PruneListingLog) gets the count at the log's start. An
// address listed before the log existed counts as listed all along.
func (db *DB) ListingCounts(at []time.Time) ([]int, error) {
	out := make([]int, len(at))
	if len(at) == 0 {
		return out, nil
	}
	// Walk the times from the latest back, and the log from its end
	// back, undoing each change as the walk passes it.
	order := make([]int, len(at))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return at[b].Compare(at[a]) })
	err := db.bdb.View(func(tx *bolt.Tx) error {
		n := getCounter(tx.Bucket([]byte(bucketMeta)), countListings)
		c := tx.Bucket([]byte(bucketListingLog)).Cursor()
		k, v := c.Last()
		for _, i := range order {
			bound := timeKey(at[i])
			for ; k != nil && bytes.Compare(k, bound) > 0; k, v = c.Prev() {
				if len(k) != timeKeyLen {
					return fmt.Errorf("listing log key of %d bytes: the file is damaged", len(k))
				}
				added, removed, err := decodeLogCounts(v)
				if err != nil {
					return err
				}
				n += int64(removed) - int64(added)
			}
			out[i] = int(max(n, 0))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the listing log: %w", err)
	}
	return out, nil
}

// PruneListingLog forgets up to limit listing log entries (seconds with
// changes) from before the given time and returns how many it forgot;
// call it again while that is limit.
func (db *DB) PruneListingLog(before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("prune the listing log: limit %d must be positive", limit)
	}
	var n int
	err := db.bdb.Update(func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		keys, err := dueKeys(b.listingLog, before, limit, false)
		if err != nil {
			return fmt.Errorf("listing log: %w", err)
		}
		for _, k := range keys {
			if err := b.listingLog.Delete(k); err != nil {
				return err
			}
		}
		n = len(keys)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune the listing log before %s: %w", before.Format(time.RFC3339), err)
	}
	return n, nil
}

// ReportActivity is one report that arrived here, as the status page
// counts it.
type ReportActivity struct {
	Origin  string
	Arrived time.Time // when it came here
	// Date is the article's Date; zero for a report stored only to
	// relay, or stored by a dstd older than the status page.
	Date time.Time
	// Listed: it listed or extended its address's listing here when it
	// came; Arrived - Date is then its trap-to-listed latency.
	Listed bool
	// Relayed: stored only to relay (IngestParams.RelayOnly); Probation:
	// its origin was on probation here. Neither lists anything.
	Relayed, Probation bool
}

// ReportsSince calls fn, in order of arrival, for every accepted report
// that arrived at or after since and that the history still holds, and
// stops at fn's first error, which it returns as is. Refused and
// duplicate Message-IDs are not reports. fn runs inside a read
// transaction: it must be quick and must not call methods of db.
func (db *DB) ReportsSince(since time.Time, fn func(ReportActivity) error) error {
	var fnErr error
	err := db.bdb.View(func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		c := b.arrivals.Cursor()
		for k, v := c.Seek(timeKey(since)); k != nil; k, v = c.Next() {
			s, err := decodeArrival(k, v, b.on)
			if err != nil {
				return err
			}
			var a ReportActivity
			switch r := s.Report; {
			case r != nil:
				a = ReportActivity{Origin: r.Origin, Arrived: parseTimeKey(k), Date: r.Date, Listed: r.Listed, Probation: r.Probation}
			case s.Relayed != nil:
				a = ReportActivity{Origin: s.Relayed.Origin, Arrived: parseTimeKey(k), Relayed: true}
			default:
				continue // refused, or a cancel
			}
			if err := fn(a); err != nil {
				fnErr = err
				return err
			}
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("read the reports since %s: %w", since.Format(time.RFC3339), err)
	}
	return nil
}
