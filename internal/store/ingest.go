package store

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Report is one checked report, as ingest hands it to the store.
type Report struct {
	MessageID string
	IP        netip.Addr // Source-IP of the trapped message
	Origin    string     // the injecting site (DKIM d=)
	// Date is the article's Date. The store does not keep it apart from the
	// article: ingest has already checked it, and history ages by arrival.
	Date    time.Time
	Article []byte // the article as accepted, kept for actions and feeds
	// Path is the article's Path header, for the subscribers' wants
	// (Event.Path): a feed does not send a report back to a site named
	// in it.
	Path string
	// Probation: the origin is configured to be on probation here (its
	// keyring entry, or policy.new_origin for an origin learnt from
	// DNS). Whether this report is on probation also depends on what the
	// origin has earned (OriginRecord.OnProbation).
	Probation bool
	// Class is the report's class (DST-Class) when it is not spam, for
	// its event (Event.Class); "" is spam.
	Class string
}

// IngestParams are the site's policy for one AddReport call.
type IngestParams struct {
	Now time.Time
	// ExpireBase is the lifetime of a new listing.
	ExpireBase time.Duration
	// ExpireMax caps the lifetime repeated episodes give: the first hit of
	// the n-th episode (hits more than EpisodeGap apart) sets expiry to
	// Now+min(ExpireBase<<(n-1), ExpireMax), never earlier than it already
	// was; further hits of an episode do not extend it. It must be at
	// least ExpireBase.
	ExpireMax time.Duration
	// Threshold is how many distinct operators must report an address
	// within Window before it is listed; 0 or 1 lists at the first report.
	Threshold int
	Window    time.Duration
	// OperatorOf maps an origin to its operator (the keyring's operator=),
	// so that sites run by one operator count once; nil or "" is the
	// origin itself. It runs inside the transaction: quick, no db calls.
	OperatorOf func(origin string) string
	// Self is this site's origin: never on probation.
	Self string
	// ProbationCorroborations is how many of an origin's reports on
	// probation must be corroborated by another operator before its
	// reports count (policy.probation_corroborations).
	ProbationCorroborations int
	// MaxNewListingsPerHour caps the new listings one origin may cause
	// per hour; beyond it a report that would list is held as pending
	// (Held). 0: no cap.
	MaxNewListingsPerHour int
	// RelayOnly stores the report to relay it and lists nothing: this
	// site's policy keeps the address off its own list for a local reason
	// (its own networks, its allow-list), which must not stop the report
	// from reaching the other sites. Its event has CauseRelay, which only
	// the feeds take.
	RelayOnly bool
	// RelayReason says why, for dstctl why ("policy.list_classes leaves
	// out backscatter", "own network", ...).
	RelayReason string
}

// Outcome says what AddReport did.
type Outcome uint8

const (
	Duplicate Outcome = iota + 1 // Message-ID already in history; nothing written
	Pending                      // stored, but too few origins to list the address yet
	Listed                       // the address is newly listed
	Extended                     // the address was listed already; its listing was extended
	// Cancelled: its origin cancelled the report before it arrived (see
	// Cancel). Its Message-ID is recorded as refused; nothing else.
	Cancelled
	// Relayed: stored for the feeds only (IngestParams.RelayOnly).
	Relayed
	// Probation: stored, recorded and relayed, but its origin is on
	// probation here, so it counts for no listing.
	Probation
	// Held: it would have listed the address, but its origin has caused
	// MaxNewListingsPerHour new listings this hour; the address is pending.
	Held
)

func (o Outcome) String() string {
	switch o {
	case Duplicate:
		return "duplicate"
	case Pending:
		return "pending"
	case Listed:
		return "listed"
	case Extended:
		return "extended"
	case Cancelled:
		return "cancelled"
	case Relayed:
		return "relayed"
	case Probation:
		return "probation"
	case Held:
		return "held"
	}
	return fmt.Sprintf("Outcome(%d)", uint8(o))
}

// AddReport stores a report in one transaction: if its Message-ID is in the
// history it returns Duplicate and writes nothing; otherwise it records the
// Message-ID and the article, counts the origin towards the threshold, lists
// or extends the address, and puts an EventReport on each queue whose
// subscriber wants it (see Subscribe). The
// Listing is the address's listing after the report when the outcome is
// Listed or Extended, and zero otherwise.
//
// When AddReport returns nil the report is on disk, and may be acknowledged.
func (db *DB) AddReport(r Report, p IngestParams) (Outcome, Listing, error) {
	if err := validMessageID(r.MessageID); err != nil {
		return 0, Listing{}, fmt.Errorf("store report: %w", err)
	}
	if err := r.validate(); err != nil {
		return 0, Listing{}, fmt.Errorf("store report %s: %w", r.MessageID, err)
	}
	if err := p.validate(); err != nil {
		return 0, Listing{}, fmt.Errorf("store report %s: %w", r.MessageID, err)
	}
	r.IP = r.IP.Unmap()

	var (
		out Outcome
		lst Listing
		e   *effects
	)
	err := db.batch(func(tx *bolt.Tx) error {
		// DB.batch may run this more than once (again alone, after another
		// caller in the batch failed). Each run overwrites out, lst and e,
		// so only the run that committed counts.
		var err error
		e = db.newEffects()
		out, lst, err = addReport(bucketsOf(tx), e, r, p)
		return err
	})
	if err != nil {
		return 0, Listing{}, fmt.Errorf("store report %s from %s about %s: %w", r.MessageID, r.Origin, r.IP, err)
	}
	db.committed(e)
	return out, lst, nil
}

// validate checks the fields other than the Message-ID.
func (r Report) validate() error {
	if !r.IP.IsValid() {
		return errors.New("no valid source IP address")
	}
	if r.IP.Zone() != "" {
		return fmt.Errorf("source IP address %s has a zone, which a trapped message's sender cannot have", r.IP)
	}
	if r.Origin == "" || len(r.Origin) > maxOriginLen {
		return fmt.Errorf("origin %q must be a domain name of 1 to %d bytes", r.Origin, maxOriginLen)
	}
	return nil
}

func validMessageID(id string) error {
	if id == "" {
		return errors.New("empty Message-ID")
	}
	if len(id) > maxMessageIDLen {
		return fmt.Errorf("Message-ID of %d bytes is longer than the %d this store accepts", len(id), maxMessageIDLen)
	}
	return nil
}

// validate checks the parameters.
func (p IngestParams) validate() error {
	switch {
	case p.Now.IsZero():
		return errors.New("ingest time (Now) is not set")
	case p.ExpireBase <= 0:
		return fmt.Errorf("listing lifetime %v must be positive", p.ExpireBase)
	case p.ExpireMax > maxLifetime:
		return fmt.Errorf("maximum listing lifetime %v is longer than this store can record (%v)", p.ExpireMax, maxLifetime)
	case p.ExpireMax < p.ExpireBase:
		return fmt.Errorf("maximum listing lifetime %v is shorter than the base lifetime %v", p.ExpireMax, p.ExpireBase)
	case p.Threshold > 1 && p.Window <= 0:
		return fmt.Errorf("a threshold of %d origins needs a positive window, not %v", p.Threshold, p.Window)
	case p.MaxNewListingsPerHour < 0:
		return fmt.Errorf("maximum of new listings per hour %d is negative", p.MaxNewListingsPerHour)
	}
	return nil
}

// addReport is the body of AddReport's transaction. It has no effects
// outside tx and e, as DB.batch requires.
func addReport(b buckets, e *effects, r Report, p IngestParams) (Outcome, Listing, error) {
	id := []byte(r.MessageID)
	if seen, err := seenID(b, id); err != nil || seen {
		return Duplicate, Listing{}, err
	}
	// Only a marker left by the report's own origin counts: anyone else's
	// cancel must not suppress it.
	if mark := markKey(r.MessageID, r.Origin); b.cancelMarks.Get(mark) != nil {
		if err := b.cancelMarks.Delete(mark); err != nil {
			return 0, Listing{}, fmt.Errorf("remove cancel marker: %w", err)
		}
		_, err := putHistory(b, id, p.Now, historyRefused, nil)
		return Cancelled, Listing{}, err
	}
	entry, err := putHistory(b, id, p.Now, historyAccepted, r.Article)
	if err != nil {
		return 0, Listing{}, err
	}
	if p.RelayOnly {
		// No report record either: it counts for no listing here, so a
		// cancel of it has nothing to undo (it is only relayed too). It
		// is only remembered apart, to be shown.
		if err := putRelayed(b, r, entry, relayedRecord{IP: r.IP, Origin: r.Origin, Hit: p.Now, Class: r.Class, Reason: p.RelayReason}); err != nil {
			return 0, Listing{}, err
		}
		ev := Event{Kind: EventReport, Time: p.Now, IP: r.IP, MessageID: r.MessageID, Origin: r.Origin,
			Cause: CauseRelay, Path: r.Path, Class: r.Class}
		return Relayed, Listing{}, e.publish(b, ev)
	}
	hit := p.Now
	o, err := getOrigin(b, r.Origin)
	if err != nil {
		return 0, Listing{}, err
	}
	probation := r.Origin != p.Self && o.OnProbation(r.Probation, p.ProbationCorroborations)
	o.Reports++
	if has, err := hasReportOf(b, r.IP, r.Origin); err != nil {
		return 0, Listing{}, err
	} else if !has {
		o.Addresses++
	}
	if o.First.IsZero() {
		o.First = p.Now
	}
	o.Last = p.Now
	corroborated, err := corroborate(b, r, hit, probation, p)
	if err != nil {
		return 0, Listing{}, err
	}
	if corroborated {
		credit(&o, p.ProbationCorroborations)
	}
	rec := reportRecord{IP: r.IP, Origin: r.Origin, Hit: hit, Probation: probation, Corroborated: corroborated, Date: r.Date}
	if err := putReportRecord(b, entry, rec); err != nil {
		return 0, Listing{}, err
	}
	if probation {
		// Relayed like a report stored only to relay: the other sites
		// judge the origin by their own keyrings.
		if err := putOrigin(b, o); err != nil {
			return 0, Listing{}, err
		}
		ev := Event{Kind: EventReport, Time: p.Now, IP: r.IP, MessageID: r.MessageID, Origin: r.Origin,
			Cause: CauseRelay, Path: r.Path}
		return Probation, Listing{}, e.publish(b, ev)
	}

	key := ipKey(r.IP)
	var (
		out Outcome
		lst Listing
	)
	if v := b.listings.Get(key); v != nil {
		old, err := readListing(b, key, v)
		if err != nil {
			return 0, Listing{}, err
		}
		lst = extendListing(old, r, p)
		if err := putListing(b, lst, old.Expires); err != nil {
			return 0, Listing{}, err
		}
		out = Extended
		rec.Listed = true
		if err := putReportRecord(b, entry, rec); err != nil {
			return 0, Listing{}, err
		}
	} else {
		capped := p.MaxNewListingsPerHour > 0 && newListingsThisHour(b, r.Origin, p.Now) >= int64(p.MaxNewListingsPerHour)
		var st sightOutcome
		lst, st, err = sight(b, key, r, p, capped)
		if err != nil {
			return 0, Listing{}, err
		}
		out = Pending
		switch st {
		case sightListed:
			if lst.Episodes, err = episodesOf(b, r.IP); err != nil {
				return 0, Listing{}, err
			}
			lst.Expires = p.Now.Add(expiryStep(p.ExpireBase, p.ExpireMax, lst.Episodes))
			if err := putListing(b, lst, time.Time{}); err != nil {
				return 0, Listing{}, err
			}
			if err := addCounter(b.meta, countListings, 1); err != nil {
				return 0, Listing{}, err
			}
			if err := logListing(b, p.Now, r.IP, true); err != nil {
				return 0, Listing{}, err
			}
			rec.Listed = true
			if err := putReportRecord(b, entry, rec); err != nil {
				return 0, Listing{}, err
			}
			if p.MaxNewListingsPerHour > 0 {
				if err := countNewListing(b, r.Origin, p.Now); err != nil {
					return 0, Listing{}, err
				}
			}
			out = Listed
		case sightHeld:
			o.Held++
			rec.Held = true
			if err := putReportRecord(b, entry, rec); err != nil {
				return 0, Listing{}, err
			}
			out = Held
		}
	}
	if err := putOrigin(b, o); err != nil {
		return 0, Listing{}, err
	}

	ev := Event{Kind: EventReport, Time: p.Now, IP: r.IP, MessageID: r.MessageID, Origin: r.Origin, Path: r.Path, Class: r.Class}
	switch out {
	case Listed:
		e.reported(ChangeListed, lst, r)
	case Extended:
		e.reported(ChangeExtended, lst, r)
	}
	if out == Listed || out == Extended {
		ev.Listed, ev.Expires = true, lst.Expires
	}
	if err := e.publish(b, ev); err != nil {
		return 0, Listing{}, err
	}
	return out, lst, nil
}

// extendListing applies a repeated hit to a listing. A hit more than
// EpisodeGap after the previous one starts a new episode, which doubles the
// lifetime from now (never shortening the listing); a hit of the same
// episode is counted but moves no expiry, so a flood cannot extend a
// listing.
func extendListing(old Listing, r Report, p IngestParams) Listing {
	l := old
	l.Hits++
	if p.Now.After(l.LastSeen) {
		l.LastSeen = p.Now
	}
	l.Origins = appendOrigin(old.Origins, r.Origin)
	l.LastMessageID = r.MessageID
	if l.Episodes < 1 {
		l.Episodes = 1
	}
	if p.Now.Sub(l.LastHit) > EpisodeGap {
		l.Episodes++
		if e := p.Now.Add(expiryStep(p.ExpireBase, p.ExpireMax, l.Episodes)); e.After(l.Expires) {
			l.Expires = e
		}
	}
	if p.Now.After(l.LastHit) {
		l.LastHit = p.Now
	}
	return l
}

// expiryStep is the lifetime the hits-th episode gives: base doubled for
// each episode after the first, capped at maxD. The shift is checked before it is
// done, because a long-lived spammer's hit count would overflow it.
func expiryStep(base, maxD time.Duration, hits int) time.Duration {
	shift := max(hits-1, 0)
	if shift >= 62 || base > maxD>>shift {
		return maxD
	}
	return base << shift
}

// appendOrigin returns a new slice: origins without o, then o, keeping the
// most recent maxListingOrigins.
func appendOrigin(origins []string, o string) []string {
	out := make([]string, 0, len(origins)+1)
	for _, x := range origins {
		if x != o {
			out = append(out, x)
		}
	}
	out = append(out, o)
	if n := len(out) - maxListingOrigins; n > 0 {
		out = out[n:]
	}
	return out
}

// sightOutcome is what sight decided.
type sightOutcome uint8

const (
	sightPending sightOutcome = iota // too few operators yet
	sightListed                      // list the address now
	sightHeld                        // enough operators, but the origin is over its rate cap
)

// sight counts a report of an address that is not listed. It returns the
// new listing and sightListed when the report brings the number of
// distinct operators within the window up to the threshold, unless capped
// (the origin is over its rate cap), which keeps the address pending
// (sightHeld); otherwise it records the sighting.
func sight(b buckets, key []byte, r Report, p IngestParams, capped bool) (Listing, sightOutcome, error) {
	var s sightings
	var oldIndex []byte
	v := b.sightings.Get(key)
	if v != nil {
		var err error
		if s, err = decodeSightings(v); err != nil {
			return Listing{}, 0, fmt.Errorf("sightings of %s: %w", r.IP, err)
		}
		oldIndex = joinKey(timeKey(latestSighting(s.List)), key)
	}

	// Keep the other origins' sightings that are still inside the window,
	// then add this one as the most recent.
	cutoff := p.Now.Add(-p.Window)
	kept := make([]sighting, 0, len(s.List)+1)
	inWindow := false
	for _, x := range s.List {
		if x.Time.After(cutoff) {
			inWindow = true
			if x.Origin != r.Origin {
				kept = append(kept, x)
			}
		}
	}
	if !inWindow {
		// Whatever was seen before has left the window: a new episode, so
		// FirstSeen and Hits describe only reports that led to a listing.
		s.FirstSeen, s.Hits = p.Now, 0
	}
	s.List = append(kept, sighting{Origin: r.Origin, Time: p.Now})
	s.Hits++
	s.LastMsgID = r.MessageID

	origins := make([]string, 0, len(s.List))
	for _, x := range s.List {
		origins = appendOrigin(origins, x.Origin)
	}
	// Sightings keep origins; operators are counted now, with the keyring
	// in force, so a keyring change applies to what is pending.
	enough := countOperators(origins, p.OperatorOf) >= max(p.Threshold, 1)
	if enough && !capped {
		if v != nil {
			if err := b.sightings.Delete(key); err != nil {
				return Listing{}, 0, fmt.Errorf("remove sightings of %s: %w", r.IP, err)
			}
			if err := b.sightingsTime.Delete(oldIndex); err != nil {
				return Listing{}, 0, fmt.Errorf("remove sightings index entry of %s: %w", r.IP, err)
			}
			if err := addCounter(b.meta, countPending, -1); err != nil {
				return Listing{}, 0, err
			}
		}
		return Listing{
			IP:            r.IP,
			FirstSeen:     s.FirstSeen,
			LastSeen:      p.Now,
			Expires:       p.Now.Add(p.ExpireBase),
			Hits:          s.Hits,
			Origins:       origins,
			LastMessageID: r.MessageID,
			Episodes:      1,
			LastHit:       p.Now,
		}, sightListed, nil
	}

	if err := b.sightings.Put(key, encodeSightings(s)); err != nil {
		return Listing{}, 0, fmt.Errorf("store sightings of %s: %w", r.IP, err)
	}
	newIndex := joinKey(timeKey(latestSighting(s.List)), key)
	if oldIndex != nil && !bytes.Equal(oldIndex, newIndex) {
		if err := b.sightingsTime.Delete(oldIndex); err != nil {
			return Listing{}, 0, fmt.Errorf("update sightings index of %s: %w", r.IP, err)
		}
	}
	if err := b.sightingsTime.Put(newIndex, nil); err != nil {
		return Listing{}, 0, fmt.Errorf("update sightings index of %s: %w", r.IP, err)
	}
	if v == nil {
		if err := addCounter(b.meta, countPending, 1); err != nil {
			return Listing{}, 0, err
		}
	}
	if enough {
		return Listing{}, sightHeld, nil
	}
	return Listing{}, sightPending, nil
}

// latestSighting is the time of the most recent sighting. The list is in
// arrival order, but a clock stepped backwards can break that.
func latestSighting(list []sighting) time.Time {
	var t time.Time
	for _, x := range list {
		if x.Time.After(t) {
			t = x.Time
		}
	}
	return t
}

// RecordRefused remembers a Message-ID that was refused, so that peers
// offering it again are told it is not wanted. A Message-ID already in the
// history is left as it is.
func (db *DB) RecordRefused(messageID string, now time.Time) error {
	if err := validMessageID(messageID); err != nil {
		return fmt.Errorf("record refused article: %w", err)
	}
	if now.IsZero() {
		return fmt.Errorf("record refused %s: time is not set", messageID)
	}
	id := []byte(messageID)
	err := db.batch(func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		if seen, err := seenID(b, id); err != nil || seen {
			return err
		}
		_, err := putHistory(b, id, now, historyRefused, nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("record refused %s in history: %w", messageID, err)
	}
	return nil
}

// Seen reports whether the Message-ID is in the history.
func (db *DB) Seen(messageID string) (bool, error) {
	var seen bool
	err := db.bdb.View(func(tx *bolt.Tx) error {
		var err error
		seen, err = seenID(readBucketsOf(tx), []byte(messageID))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("look up %s in history: %w", messageID, err)
	}
	return seen, nil
}

// Article returns the stored article, or nil if it was never stored or has
// been pruned. A feed that finds nil has nothing left to send.
func (db *DB) Article(messageID string) ([]byte, error) {
	var a []byte
	err := db.bdb.View(func(tx *bolt.Tx) error {
		s, err := lookupHistory(readBucketsOf(tx), []byte(messageID))
		if s != nil && s.Article != nil {
			a = bytes.Clone(s.Article) // it lives in the mmap only until the transaction ends
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read article %s: %w", messageID, err)
	}
	return a, nil
}

// PruneHistory forgets up to limit Message-IDs first seen before the given
// time, with their articles, and returns how many it forgot. Call it again
// while it returns limit; small batches keep each transaction short.
func (db *DB) PruneHistory(before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("prune history: limit %d must be positive", limit)
	}
	var n int
	err := db.bdb.Update(func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		// Collect first: deleting under a cursor can skip keys.
		keys, err := dueKeys(b.arrivals, before, limit, false)
		if err != nil {
			return fmt.Errorf("arrivals log: %w", err)
		}
		for _, k := range keys {
			s, err := loadArrival(b, k)
			if err != nil {
				return err
			}
			if err := forget(b, s); err != nil {
				return err
			}
		}
		n = len(keys)
		return pruneCancelMarks(b, before)
	})
	if err != nil {
		return 0, fmt.Errorf("prune history before %s: %w", before.Format(time.RFC3339), err)
	}
	return n, nil
}

// dueKeys returns copies of up to limit keys of a time index whose time is
// before t (or at t, if inclusive).
func dueKeys(index *bolt.Bucket, t time.Time, limit int, inclusive bool) ([][]byte, error) {
	bound := timeKey(t)
	var keys [][]byte
	c := index.Cursor()
	for k, _ := c.First(); k != nil && len(keys) < limit; k, _ = c.Next() {
		if len(k) < timeKeyLen {
			return nil, fmt.Errorf("index key of %d bytes is too short: the file is damaged", len(k))
		}
		cmp := bytes.Compare(k[:timeKeyLen], bound)
		if cmp > 0 || (cmp == 0 && !inclusive) {
			break
		}
		keys = append(keys, bytes.Clone(k))
	}
	return keys, nil
}
