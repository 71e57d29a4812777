package store

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A report record remembers, per accepted report, what a cancel needs: the
// address it counted for and its origin, who alone may cancel it. The
// report_ip index tells whether an origin still has a live report of an
// address, which decides whether the origin stays among the listing's.

// reportRecord is the value in the reports bucket.
type reportRecord struct {
	IP        netip.Addr
	Origin    string
	Cancelled bool
	// Added with origin trust; a record without them reads as a report
	// of unknown time, not on probation, not corroborated.
	Hit          time.Time // the report's Date (arrival if it had none)
	Probation    bool      // its origin was on probation here when it came
	Corroborated bool      // another operator reported the address within the window
	Held         bool      // it would have listed, but its origin was over its rate cap
	// Added with the status page; a record without them reads as a
	// report that listed nothing, of unknown Date.
	Listed bool      // it listed or extended its address's listing here when it came
	Date   time.Time // the article's Date, for the trap-to-listed latency
}

// Flags of the report record.
const (
	recProbation byte = 1 << iota
	recCorroborated
	recHeld
	recListed
)

func encodeReportRecord(r reportRecord) []byte {
	e := encoder{b: make([]byte, 0, 24+len(r.Origin))}
	e.byte(formatV1)
	e.addr(r.IP)
	e.string(r.Origin)
	if r.Cancelled {
		e.byte(1)
	} else {
		e.byte(0)
	}
	e.time(r.Hit)
	var f byte
	if r.Probation {
		f |= recProbation
	}
	if r.Corroborated {
		f |= recCorroborated
	}
	if r.Held {
		f |= recHeld
	}
	if r.Listed {
		f |= recListed
	}
	e.byte(f)
	e.time(r.Date)
	return e.b
}

func decodeReportRecord(v []byte) (reportRecord, error) {
	d := decoder{b: v}
	d.version()
	var r reportRecord
	r.IP = d.addr()
	r.Origin = d.string()
	r.Cancelled = d.byte() != 0
	if d.err == nil && len(d.b) > 0 {
		r.Hit = d.time()
		f := d.byte()
		r.Probation, r.Corroborated, r.Held = f&recProbation != 0, f&recCorroborated != 0, f&recHeld != 0
		r.Listed = f&recListed != 0
	}
	if d.err == nil && len(d.b) > 0 {
		r.Date = d.time()
	}
	if err := d.done(); err != nil {
		return reportRecord{}, fmt.Errorf("report record: %w", err)
	}
	return r, nil
}

// markKey is the cancel_marks key of a cancel of target signed by signer.
func markKey(target, signer string) []byte {
	k := append([]byte(target), 0)
	return append(k, signer...)
}

// putReportRecord sets the report record of an arrival and indexes it by
// address (live reports only: a cancelled one leaves the index).
func putReportRecord(b buckets, s *stored, rec reportRecord) error {
	s.Report = &rec
	if err := s.save(b); err != nil {
		return err
	}
	if rec.Cancelled {
		return nil
	}
	if err := indexReport(b, b.reportIP, rec.IP, rec.Origin, s.key); err != nil {
		return fmt.Errorf("index report by address: %w", err)
	}
	return nil
}

// pruneCancelMarks forgets markers older than before. Once the history has
// forgotten that far back, the cancelled report would be refused for its
// Date anyway. Markers are rare (a cancel overtaking its report), so a
// full scan costs little.
func pruneCancelMarks(b buckets, before time.Time) error {
	var old [][]byte
	c := b.cancelMarks.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(v) != timeKeyLen || parseTimeKey(v).Before(before) {
			old = append(old, bytes.Clone(k))
		}
	}
	for _, k := range old {
		if err := b.cancelMarks.Delete(k); err != nil {
			return fmt.Errorf("prune cancel markers: %w", err)
		}
	}
	return nil
}

// ReportInfo is what the store knows of an accepted report.
type ReportInfo struct {
	IP           netip.Addr
	Origin       string
	Cancelled    bool
	Hit          time.Time
	Probation    bool
	Corroborated bool
	Held         bool
	Listed       bool
	Date         time.Time
}

// ReportOf returns the record of an accepted report, and false if there is
// none: never seen, refused, pruned, or stored by a dstd older than cancels.
func (db *DB) ReportOf(messageID string) (ReportInfo, bool, error) {
	var (
		r  reportRecord
		ok bool
	)
	err := db.bdb.View(func(tx *bolt.Tx) error {
		s, err := lookupHistory(bucketsOf(tx), []byte(messageID))
		if s != nil && s.Report != nil {
			r, ok = *s.Report, true
		}
		return err
	})
	if err != nil {
		return ReportInfo{}, false, fmt.Errorf("look up report %s: %w", messageID, err)
	}
	return ReportInfo(r), ok, nil
}

// Cancel is a checked cancel control article.
type Cancel struct {
	MessageID string // the control article's own
	Target    string // the Message-ID of the report it cancels
	Signer    string // the verified DKIM d= of the control article
	Article   []byte
	// Path is the control article's Path header (Event.Path, for the
	// feeds).
	Path string
}

// CancelParams are the site's settings for one Cancel call.
type CancelParams struct {
	Now time.Time
	// Threshold is policy.threshold: a listing left with fewer distinct
	// operators is removed.
	Threshold int
	// OperatorOf maps an origin to its operator, as IngestParams.OperatorOf.
	OperatorOf func(origin string) string
}

// CancelOutcome says what Cancel did.
type CancelOutcome uint8

const (
	CancelDuplicate CancelOutcome = iota + 1 // control article already in history; nothing written
	CancelApplied                            // the report no longer counts
	CancelMarked                             // the report is not here yet; it will be refused if it comes from the signer
	CancelNoEffect                           // stored and flooded, but nothing to undo here (report refused here, cancelled already, or stored before cancels were tracked)
	CancelRefused                            // the signer is not the report's origin: recorded as refused, nothing else
)

func (o CancelOutcome) String() string {
	switch o {
	case CancelDuplicate:
		return "duplicate"
	case CancelApplied:
		return "applied"
	case CancelMarked:
		return "marked"
	case CancelNoEffect:
		return "no effect"
	case CancelRefused:
		return "refused"
	}
	return fmt.Sprintf("CancelOutcome(%d)", uint8(o))
}

// CancelResult is the outcome with what it did to the address.
type CancelResult struct {
	Outcome CancelOutcome
	// IP and Origin are the cancelled report's, when it is known here.
	IP     netip.Addr
	Origin string
	// Delisted: the cancel removed the listing. Listed: the address is
	// still listed after it, as Listing.
	Delisted, Listed bool
	Listing          Listing
}

// Cancel applies a cancel in one transaction (docs/PROTOCOL.md §5): if the
// cancelled report was accepted here and c.Signer is
// its origin, the report stops counting: one hit less, its origin leaves
// the listing unless another live report of that origin supports it, and
// the listing is removed (EventDelisted by "cancel from <origin>") when it
// is left with no origin or fewer than the threshold, and republished
// (a Listed EventReport with CauseUpdate) when it stays. A report not seen
// yet gets a marker so that it is refused if it comes from c.Signer.
// Unless refused, the control article is stored and published as an
// EventReport with CauseCancel, which the feeds flood like a report.
//
// When Cancel returns nil the result is on disk, and may be acknowledged.
func (db *DB) Cancel(c Cancel, p CancelParams) (CancelResult, error) {
	if err := validMessageID(c.MessageID); err != nil {
		return CancelResult{}, fmt.Errorf("store cancel: %w", err)
	}
	if err := validMessageID(c.Target); err != nil {
		return CancelResult{}, fmt.Errorf("store cancel %s: target: %w", c.MessageID, err)
	}
	if c.Signer == "" || len(c.Signer) > maxOriginLen {
		return CancelResult{}, fmt.Errorf("store cancel %s: signer %q must be a domain name of 1 to %d bytes", c.MessageID, c.Signer, maxOriginLen)
	}
	if p.Now.IsZero() {
		return CancelResult{}, fmt.Errorf("store cancel %s: time (Now) is not set", c.MessageID)
	}
	var (
		res CancelResult
		e   *effects
	)
	err := db.batch(func(tx *bolt.Tx) error {
		var err error
		e = db.newEffects()
		res, err = cancel(bucketsOf(tx), e, c, p)
		return err
	})
	if err != nil {
		return CancelResult{}, fmt.Errorf("store cancel %s of %s by %s: %w", c.MessageID, c.Target, c.Signer, err)
	}
	db.committed(e)
	return res, nil
}

// cancel is the body of Cancel's transaction; it may run twice (DB.batch).
func cancel(b buckets, e *effects, c Cancel, p CancelParams) (CancelResult, error) {
	id := []byte(c.MessageID)
	if seen, err := seenID(b, id); err != nil || seen {
		return CancelResult{Outcome: CancelDuplicate}, err
	}
	var res CancelResult
	target, err := lookupHistory(b, []byte(c.Target))
	if err != nil {
		return CancelResult{}, err
	}
	switch {
	case target != nil && target.Report != nil:
		r := *target.Report
		res.IP, res.Origin = r.IP, r.Origin
		if r.Origin != c.Signer {
			res.Outcome = CancelRefused
			_, err := putHistory(b, id, p.Now, historyRefused, nil)
			return res, err
		}
		if r.Cancelled {
			res.Outcome = CancelNoEffect
			break
		}
		if err := withdraw(b, e, target, p, &res); err != nil {
			return CancelResult{}, err
		}
		res.Outcome = CancelApplied
	case target != nil:
		// Refused here, or accepted before reports were recorded: there
		// is no listing to undo and no origin to check against.
		res.Outcome = CancelNoEffect
	default:
		if err := b.cancelMarks.Put(markKey(c.Target, c.Signer), timeKey(p.Now)); err != nil {
			return CancelResult{}, fmt.Errorf("record cancel marker: %w", err)
		}
		res.Outcome = CancelMarked
	}

	if _, err := putHistory(b, id, p.Now, historyAccepted, c.Article); err != nil {
		return CancelResult{}, err
	}
	// The feeders send whatever article an EventReport names.
	ev := Event{Kind: EventReport, Time: p.Now, IP: res.IP, MessageID: c.MessageID, Origin: c.Signer,
		Cause: CauseCancel, Path: c.Path}
	return res, e.publish(b, ev)
}

// withdraw makes an accepted report stop counting for its address.
func withdraw(b buckets, e *effects, s *stored, p CancelParams, res *CancelResult) error {
	target := s.MessageID
	r := *s.Report
	r.Cancelled = true
	if err := putReportRecord(b, s, r); err != nil {
		return fmt.Errorf("mark report cancelled: %w", err)
	}
	if err := unindexReport(b, b.reportIP, r.IP, r.Origin, s.key); err != nil {
		return fmt.Errorf("remove report index entry: %w", err)
	}
	supported, err := hasReportOf(b, r.IP, r.Origin)
	if err != nil {
		return err
	}

	key := ipKey(r.IP)
	if v := b.listings.Get(key); v != nil {
		l, err := readListing(b, key, v)
		if err != nil {
			return err
		}
		if !supported {
			l.Origins = slices.DeleteFunc(l.Origins, func(o string) bool { return o == r.Origin })
		}
		if len(l.Origins) == 0 || countOperators(l.Origins, p.OperatorOf) < p.Threshold {
			if err := deleteListing(b, l, p.Now); err != nil {
				return err
			}
			res.Delisted = true
			e.listing(ChangeCancelled, l)
			return e.publish(b, Event{Kind: EventDelisted, Time: p.Now, IP: r.IP, By: "cancel from " + r.Origin})
		}
		// The remaining origins each reported at least once.
		l.Hits = max(l.Hits-1, len(l.Origins))
		if err := putListing(b, l, l.Expires); err != nil {
			return err
		}
		res.Listed, res.Listing = true, l
		e.listing(ChangeUpdated, l)
		return e.publish(b, Event{Kind: EventReport, Time: p.Now, IP: r.IP, MessageID: target,
			Origin: r.Origin, Listed: true, Expires: l.Expires, Cause: CauseUpdate})
	}
	return unsight(b, key, r, supported)
}

// unsight takes a cancelled report out of the sightings of an address that
// is not listed yet.
func unsight(b buckets, key []byte, r reportRecord, supported bool) error {
	v := b.sightings.Get(key)
	if v == nil {
		return nil
	}
	s, err := decodeSightings(v)
	if err != nil {
		return fmt.Errorf("sightings of %s: %w", r.IP, err)
	}
	oldIndex := joinKey(timeKey(latestSighting(s.List)), key)
	s.Hits = max(s.Hits-1, 0)
	if !supported {
		s.List = slices.DeleteFunc(s.List, func(x sighting) bool { return x.Origin == r.Origin })
	}
	if len(s.List) == 0 {
		return deleteSightings(b, key)
	}
	if err := b.sightings.Put(key, encodeSightings(s)); err != nil {
		return fmt.Errorf("store sightings of %s: %w", r.IP, err)
	}
	newIndex := joinKey(timeKey(latestSighting(s.List)), key)
	if !bytes.Equal(oldIndex, newIndex) {
		if err := b.sightingsTime.Delete(oldIndex); err != nil {
			return fmt.Errorf("update sightings index of %s: %w", r.IP, err)
		}
		if err := b.sightingsTime.Put(newIndex, nil); err != nil {
			return fmt.Errorf("update sightings index of %s: %w", r.IP, err)
		}
	}
	return nil
}
