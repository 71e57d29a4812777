package store

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Listing is a listed address.
type Listing struct {
	IP                  netip.Addr
	FirstSeen, LastSeen time.Time
	Expires             time.Time
	Hits                int      // reports counted for this listing
	Origins             []string // distinct origins, at most 32, most recent last
	LastMessageID       string
	// Episodes counts the independent episodes of hits behind the
	// listing (hits more than EpisodeGap apart); each doubles the
	// lifetime. LastHit is the time of the latest hit (its report's
	// Date), which decides whether the next one starts an episode.
	Episodes int
	LastHit  time.Time
}

// readListing decodes the listing at key and reads the Message-ID of its
// last report from the arrivals log. A report pruned from the log leaves
// LastMessageID empty.
func readListing(b buckets, key, v []byte) (Listing, error) {
	l, last, err := decodeListing(key, v, b.on)
	if err != nil || last == nil {
		return l, err
	}
	s, err := loadArrival(b, last)
	if err != nil {
		return Listing{}, fmt.Errorf("read the last report of %s: %w", l.IP, err)
	}
	if s != nil {
		l.LastMessageID = s.MessageID
	}
	return l, nil
}

// lastArrivalOf returns the arrival key of l's last report, or nil if the
// history does not hold it (any more).
func lastArrivalOf(b buckets, l Listing) ([]byte, error) {
	if l.LastMessageID == "" {
		return nil, nil
	}
	s, err := lookupHistory(b, []byte(l.LastMessageID))
	if err != nil || s == nil {
		return nil, err
	}
	return s.key, nil
}

// putListing writes l and its expiry index entry. oldExpires is the expiry
// of the listing it replaces (zero for a new one), whose index entry goes.
// The listing refers to its last report by arrival key (encodeListing).
func putListing(b buckets, l Listing, oldExpires time.Time) error {
	key := ipKey(l.IP)
	last, err := lastArrivalOf(b, l)
	if err != nil {
		return fmt.Errorf("store listing of %s: %w", l.IP, err)
	}
	v, err := encodeListing(l, last, b.on)
	if err != nil {
		return fmt.Errorf("store listing of %s: %w", l.IP, err)
	}
	if err := b.listings.Put(key, v); err != nil {
		return fmt.Errorf("store listing of %s: %w", l.IP, err)
	}
	if !oldExpires.IsZero() {
		if oldExpires.Equal(l.Expires) {
			return nil
		}
		if err := b.expiry.Delete(joinKey(timeKey(oldExpires), key)); err != nil {
			return fmt.Errorf("update expiry index of %s: %w", l.IP, err)
		}
	}
	if err := b.expiry.Put(joinKey(timeKey(l.Expires), key), nil); err != nil {
		return fmt.Errorf("update expiry index of %s: %w", l.IP, err)
	}
	return nil
}

// deleteListing removes a listing and its expiry index entry, and logs
// the removal at time at (listing_log).
func deleteListing(b buckets, l Listing, at time.Time) error {
	key := ipKey(l.IP)
	if err := b.listings.Delete(key); err != nil {
		return fmt.Errorf("remove listing of %s: %w", l.IP, err)
	}
	if err := b.expiry.Delete(joinKey(timeKey(l.Expires), key)); err != nil {
		return fmt.Errorf("remove expiry index entry of %s: %w", l.IP, err)
	}
	if err := logListing(b, at, l.IP, false); err != nil {
		return err
	}
	return addCounter(b.meta, countListings, -1)
}

// normalizeIP checks an address given to a lookup or admin method.
func normalizeIP(ip netip.Addr) (netip.Addr, error) {
	if !ip.IsValid() {
		return netip.Addr{}, errors.New("invalid IP address")
	}
	return ip.Unmap().WithZone(""), nil
}

// Lookup returns the listing of ip, and false if it is not listed.
func (db *DB) Lookup(ip netip.Addr) (Listing, bool, error) {
	ip, err := normalizeIP(ip)
	if err != nil {
		return Listing{}, false, fmt.Errorf("look up listing: %w", err)
	}
	key := ipKey(ip)
	var (
		l  Listing
		ok bool
	)
	err = db.bdb.View(func(tx *bolt.Tx) error {
		v := tx.Bucket([]byte(bucketListings)).Get(key)
		if v == nil {
			return nil
		}
		var err error
		l, err = readListing(readBucketsOf(tx), key, v)
		ok = err == nil
		return err
	})
	if err != nil {
		return Listing{}, false, fmt.Errorf("look up listing of %s: %w", ip, err)
	}
	return l, ok, nil
}

// ForEachListing calls fn for every listing in address order (by 16-byte
// form, so IPv4 sorts among ::ffff:0:0/96) and stops at the first error,
// which it returns as is. fn runs inside a read transaction: it must not
// call methods of db, and should be quick, because a long read transaction
// keeps freed pages from being reused and makes the file grow.
func (db *DB) ForEachListing(fn func(Listing) error) error {
	return db.forEachListing(true, fn)
}

// ScanListings is ForEachListing without the LastMessageID, which costs a
// read of the arrivals log per listing: for loading the DNS index.
func (db *DB) ScanListings(fn func(Listing) error) error {
	return db.forEachListing(false, fn)
}

// forEachListing is ForEachListing (ids) or ScanListings. Each listing's
// last report is anywhere in the arrivals log, so on a cold cache every
// read of a Message-ID was a page fault and a 4 KiB read (the order of
// the reads makes no difference: bbolt maps the file with MADV_RANDOM);
// readAhead first has the kernel read the file in large requests.
func (db *DB) forEachListing(ids bool, fn func(Listing) error) error {
	if ids {
		db.readAhead()
	}
	var fnErr error
	err := db.bdb.View(func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		c := b.listings.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			l, last, err := decodeListing(k, v, b.on)
			if err != nil {
				return err
			}
			if ids && last != nil {
				if l.LastMessageID, err = arrivalMessageID(last, b.arrivals.Get(last)); err != nil {
					return fmt.Errorf("read the last report of %s: %w", l.IP, err)
				}
			}
			if err := fn(l); err != nil {
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
		return fmt.Errorf("read listings: %w", err)
	}
	return nil
}

// Delist removes ip's listing with its index entry and any sightings, and
// publishes an EventDelisted by by. It returns false, and enqueues
// nothing, if ip was not listed; sightings of a pending address are cleared
// all the same, since the administrator has said the address is clean.
func (db *DB) Delist(ip netip.Addr, now time.Time, by string) (bool, error) {
	ip, err := normalizeIP(ip)
	if err != nil {
		return false, fmt.Errorf("delist: %w", err)
	}
	var (
		found bool
		e     *effects
	)
	err = db.bdb.Update(func(tx *bolt.Tx) error {
		e = db.newEffects()
		var err error
		found, err = delist(bucketsOf(tx), e, ip, now, by)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("delist %s: %w", ip, err)
	}
	db.committed(e)
	return found, nil
}

// delist is the body of Delist's transaction.
func delist(b buckets, e *effects, ip netip.Addr, now time.Time, by string) (bool, error) {
	key := ipKey(ip)
	if err := deleteSightings(b, key); err != nil {
		return false, err
	}
	v := b.listings.Get(key)
	if v == nil {
		return false, nil
	}
	l, err := readListing(b, key, v)
	if err != nil {
		return false, err
	}
	if err := deleteListing(b, l, now); err != nil {
		return false, err
	}
	e.listing(ChangeDelisted, l)
	return true, e.publish(b, Event{Kind: EventDelisted, Time: now, IP: ip, By: by})
}

// deleteSightings removes the sightings of an address, if any.
func deleteSightings(b buckets, key []byte) error {
	v := b.sightings.Get(key)
	if v == nil {
		return nil
	}
	s, err := decodeSightings(v)
	if err != nil {
		return err
	}
	if err := b.sightingsTime.Delete(joinKey(timeKey(latestSighting(s.List)), key)); err != nil {
		return fmt.Errorf("remove sightings index entry: %w", err)
	}
	if err := b.sightings.Delete(key); err != nil {
		return fmt.Errorf("remove sightings: %w", err)
	}
	return addCounter(b.meta, countPending, -1)
}

// Expire removes up to limit listings whose expiry is at or before now,
// earliest first, publishes an EventExpired for each, and returns them.
// Call it again while it returns limit listings.
func (db *DB) Expire(now time.Time, limit int) ([]Listing, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("expire listings: limit %d must be positive", limit)
	}
	var (
		expired []Listing
		e       *effects
	)
	err := db.bdb.Update(func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		expired = nil
		e = db.newEffects()
		// Collect the due keys before deleting: a delete under a cursor
		// can make it skip the next key.
		keys, err := dueKeys(b.expiry, now, limit, true)
		if err != nil {
			return fmt.Errorf("expiry index: %w", err)
		}
		for _, k := range keys {
			ipk := k[timeKeyLen:]
			if n := ipKeyLenOf(ipk); n == 0 || n != len(ipk) {
				return fmt.Errorf("expiry index key of %d bytes: the file is damaged", len(k))
			}
			v := b.listings.Get(ipk)
			var l Listing
			if v != nil {
				if l, err = readListing(b, ipk, v); err != nil {
					return err
				}
			}
			if v == nil || !l.Expires.Equal(parseTimeKey(k)) {
				// An index entry without its listing would be a bug; drop
				// it so the sweeper does not trip over it for ever.
				if err := b.expiry.Delete(k); err != nil {
					return fmt.Errorf("remove stale expiry index entry: %w", err)
				}
				continue
			}
			// Logged at its expiry rather than now: the sweeper may run
			// late (dstd was down), and the address was unlisted then.
			if err := deleteListing(b, l, l.Expires); err != nil {
				return err
			}
			e.listing(ChangeExpired, l)
			if err := e.publish(b, Event{Kind: EventExpired, Time: now, IP: l.IP}); err != nil {
				return err
			}
			expired = append(expired, l)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("expire listings due by %s: %w", now.Format(time.RFC3339), err)
	}
	db.committed(e)
	return expired, nil
}

// NextExpiry returns the earliest expiry of any listing, and false if there
// are no listings, so the sweeper can sleep until then.
func (db *DB) NextExpiry() (time.Time, bool, error) {
	var (
		t  time.Time
		ok bool
	)
	err := db.bdb.View(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket([]byte(bucketExpiry)).Cursor().First()
		if k == nil {
			return nil
		}
		if len(k) < timeKeyLen {
			return fmt.Errorf("expiry index key of %d bytes: the file is damaged", len(k))
		}
		t, ok = parseTimeKey(k), true
		return nil
	})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("find next expiry: %w", err)
	}
	return t, ok, nil
}

// PruneSightings forgets up to limit pending addresses whose most recent
// sighting is before the given time (normally now minus the threshold
// window), since those sightings can no longer count towards a listing.
// It returns how many it forgot; call it again while that is limit.
func (db *DB) PruneSightings(before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("prune sightings: limit %d must be positive", limit)
	}
	var n int
	err := db.bdb.Update(func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		keys, err := dueKeys(b.sightingsTime, before, limit, false)
		if err != nil {
			return fmt.Errorf("sightings time index: %w", err)
		}
		for _, k := range keys {
			if err := b.sightingsTime.Delete(k); err != nil {
				return err
			}
			ipk := k[timeKeyLen:]
			v := b.sightings.Get(ipk)
			if v == nil {
				continue
			}
			s, err := decodeSightings(v)
			if err != nil {
				return err
			}
			if !latestSighting(s.List).Equal(parseTimeKey(k)) {
				continue // a stale index entry; the sightings are newer
			}
			if err := b.sightings.Delete(ipk); err != nil {
				return err
			}
			if err := addCounter(b.meta, countPending, -1); err != nil {
				return err
			}
		}
		n = len(keys)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune sightings before %s: %w", before.Format(time.RFC3339), err)
	}
	return n, nil
}
