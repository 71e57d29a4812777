package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Earned origin trust. The store keeps, per origin, a record of what its
// reports did here (origins bucket), counts the new listings each origin
// caused per hour (origin_rate bucket), and marks each report record with
// whether its origin was on probation, whether another operator
// corroborated it, and whether the rate cap held it. What an origin is
// configured to be (its operator, probation in the keyring, the
// policy.new_origin default) is the caller's: it comes in with each call,
// from the keyring in force, so a keyring change applies at once to the
// reports already stored.

// Buckets of this file, created by Open like the others.
const (
	bucketOrigins    = "origins"     // origin -> origin record
	bucketOriginRate = "origin_rate" // origin || 0 || 8-byte hour number -> 8-byte count of new listings
)

// EpisodeGap is what separates two episodes of one address: hits more
// than this apart. Each episode doubles the lifetime of the listing; hits
// within an episode do not extend it.
const EpisodeGap = 24 * time.Hour

// OriginRecord is what this site has seen of one origin's reports.
type OriginRecord struct {
	Origin string
	// Reports counts the reports stored here that were not only relayed;
	// Addresses the distinct addresses among them (an address counts
	// again after all its reports were pruned or cancelled).
	Reports, Addresses int
	// Corroborated counts its reports of an address that another
	// operator, not on probation, reported within the window.
	Corroborated int
	// Disputed counts the addresses the local administrator delisted or
	// allow-listed while this origin had reports of them.
	Disputed int
	// Held counts the new listings its reports would have caused beyond
	// policy.max_new_listings_per_hour.
	Held int
	// Demoted: its disputed share went past policy.dispute_share, which put
	// it (back) on probation until it earns ProbationCorroborations again.
	Demoted bool
	// Earned counts corroborations since it was last demoted (or ever).
	Earned      int
	First, Last time.Time // its first and latest report here
	DemotedAt   time.Time
}

// OnProbation tells whether the origin's reports are on probation: it is
// configured so (keyring, policy.new_origin) or was demoted, and has not yet
// had k reports corroborated since.
func (o OriginRecord) OnProbation(configured bool, k int) bool {
	return (configured || o.Demoted) && o.Earned < k
}

// CorroboratedShare is Corroborated/Reports, 0 without reports.
func (o OriginRecord) CorroboratedShare() float64 {
	if o.Reports == 0 {
		return 0
	}
	return float64(o.Corroborated) / float64(o.Reports)
}

// DisputedShare is Disputed/Addresses, 0 without addresses.
func (o OriginRecord) DisputedShare() float64 {
	if o.Addresses == 0 {
		return 0
	}
	return float64(o.Disputed) / float64(o.Addresses)
}

func encodeOrigin(o OriginRecord) []byte {
	e := encoder{b: make([]byte, 0, 64)}
	e.byte(formatV1)
	for _, n := range []int{o.Reports, o.Addresses, o.Corroborated, o.Disputed, o.Held, o.Earned} {
		e.uvarint(uint64(n))
	}
	if o.Demoted {
		e.byte(1)
	} else {
		e.byte(0)
	}
	e.time(o.First)
	e.time(o.Last)
	e.time(o.DemotedAt)
	return e.b
}

func decodeOrigin(origin string, v []byte) (OriginRecord, error) {
	d := decoder{b: v}
	d.version()
	o := OriginRecord{Origin: origin}
	for _, p := range []*int{&o.Reports, &o.Addresses, &o.Corroborated, &o.Disputed, &o.Held, &o.Earned} {
		*p = int(d.uvarint())
	}
	o.Demoted = d.byte() != 0
	o.First = d.time()
	o.Last = d.time()
	o.DemotedAt = d.time()
	if err := d.done(); err != nil {
		return OriginRecord{}, fmt.Errorf("record of origin %s: %w", origin, err)
	}
	return o, nil
}

func getOrigin(b buckets, origin string) (OriginRecord, error) {
	v := b.origins.Get([]byte(origin))
	if v == nil {
		return OriginRecord{Origin: origin}, nil
	}
	return decodeOrigin(origin, v)
}

func putOrigin(b buckets, o OriginRecord) error {
	if err := b.origins.Put([]byte(o.Origin), encodeOrigin(o)); err != nil {
		return fmt.Errorf("store record of origin %s: %w", o.Origin, err)
	}
	return nil
}

// credit counts one corroborated report of o; a demoted origin that has
// earned k of them since is trusted again.
func credit(o *OriginRecord, k int) {
	o.Corroborated++
	o.Earned++
	if o.Demoted && o.Earned >= k {
		o.Demoted = false
	}
}

// operatorOf maps an origin with fn, nil meaning every origin is its own
// operator; an empty answer is the origin itself.
func operatorOf(fn func(string) string, origin string) string {
	if fn == nil {
		return origin
	}
	if op := fn(origin); op != "" {
		return op
	}
	return origin
}

// countOperators counts the distinct operators of origins.
func countOperators(origins []string, fn func(string) string) int {
	seen := make(map[string]bool, len(origins))
	for _, o := range origins {
		seen[operatorOf(fn, o)] = true
	}
	return len(seen)
}

// hasReportOf tells whether origin has a live report of ip.
func hasReportOf(b buckets, ip netip.Addr, origin string) (bool, error) {
	prefix, ok, err := reportIPPrefix(b, ip, origin)
	if !ok || err != nil {
		return false, err
	}
	k, _ := b.reportIP.Cursor().Seek(prefix)
	return k != nil && bytes.HasPrefix(k, prefix), nil
}

// corroborationWindow is how close in time two operators' reports of an
// address must be to corroborate each other.
func corroborationWindow(p IngestParams) time.Duration {
	if p.Window > 0 {
		return p.Window
	}
	return EpisodeGap
}

// corroborate compares a new report of r.IP with the live reports of the
// same address by other operators within the window. If the new report is
// not on probation, each of theirs not yet corroborated becomes so, and
// its origin is credited. It returns whether the new report is itself
// corroborated: another operator not on probation reported the address.
// An origin of r's operator is skipped with one Seek, so a flood of one
// site's reports of one address costs no scan of them.
func corroborate(b buckets, r Report, hit time.Time, probation bool, p IngestParams) (bool, error) {
	me := operatorOf(p.OperatorOf, r.Origin)
	window := corroborationWindow(p)
	ipPrefix := ipKey(r.IP)
	var (
		updates []*stored
		self    bool
	)
	c := b.reportIP.Cursor()
	for k, _ := c.Seek(ipPrefix); k != nil && bytes.HasPrefix(k, ipPrefix); {
		num, key, n, ok := splitReportIPKey(k)
		if !ok {
			return false, fmt.Errorf("report address index key of %d bytes: the file is damaged", len(k))
		}
		origin, err := b.on.originName(num)
		if err != nil {
			return false, err
		}
		if operatorOf(p.OperatorOf, origin) == me {
			// Past every key of this origin.
			k, _ = c.Seek(afterPrefix(k[:n]))
			continue
		}
		s, err := loadArrival(b, bytes.Clone(key))
		if err != nil {
			return false, err
		}
		if s != nil && s.Report != nil {
			rec := s.Report
			d := hit.Sub(rec.Hit)
			if !rec.Hit.IsZero() && d <= window && -d <= window {
				if !rec.Probation {
					self = true
				}
				if !probation && !rec.Corroborated {
					rec.Corroborated = true
					updates = append(updates, s)
				}
			}
		}
		k, _ = c.Next()
	}
	// Written after the scan: a Put under a cursor can make it skip keys.
	for _, u := range updates {
		if err := u.save(b); err != nil {
			return false, fmt.Errorf("mark report corroborated: %w", err)
		}
		o, err := getOrigin(b, u.Report.Origin)
		if err != nil {
			return false, err
		}
		credit(&o, p.ProbationCorroborations)
		if err := putOrigin(b, o); err != nil {
			return false, err
		}
	}
	return self, nil
}

// episodesOf counts the episodes in the live, counted (not probation)
// reports of ip: their times sorted, a gap of more than EpisodeGap starts
// a new one. Every site that holds the same reports counts the same.
func episodesOf(b buckets, ip netip.Addr) (int, error) {
	var hits []time.Time
	err := eachReportOf(b, ip, func(_ string, rec reportRecord) error {
		if !rec.Probation && !rec.Hit.IsZero() {
			hits = append(hits, rec.Hit)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return countEpisodes(hits), nil
}

// eachReportOf calls fn with the Message-ID and record of every live
// report of ip, through the report address index.
func eachReportOf(b buckets, ip netip.Addr, fn func(id string, rec reportRecord) error) error {
	prefix := ipKey(ip)
	c := b.reportIP.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		_, key, _, ok := splitReportIPKey(k)
		if !ok {
			continue
		}
		s, err := loadArrival(b, key)
		if err != nil {
			return err
		}
		if s == nil || s.Report == nil {
			continue
		}
		if err := fn(s.MessageID, *s.Report); err != nil {
			return err
		}
	}
	return nil
}

// countEpisodes counts the clusters of hits separated by more than
// EpisodeGap; at least one.
func countEpisodes(hits []time.Time) int {
	if len(hits) == 0 {
		return 1
	}
	slices.SortFunc(hits, func(a, b time.Time) int { return a.Compare(b) })
	n := 1
	for i := 1; i < len(hits); i++ {
		if hits[i].Sub(hits[i-1]) > EpisodeGap {
			n++
		}
	}
	return n
}

// rateKey is origin_rate's key of origin for the hour of t.
func rateKey(origin string, t time.Time) []byte {
	k := append([]byte(origin), 0)
	return binary.BigEndian.AppendUint64(k, uint64(t.Unix()/3600))
}

// newListingsThisHour is how many new listings origin caused in the hour
// of now.
func newListingsThisHour(b buckets, origin string, now time.Time) int64 {
	v := b.originRate.Get(rateKey(origin, now))
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

// countNewListing adds one to origin's count for the hour of now and drops
// its counts of earlier hours, so the bucket holds one key per active
// origin.
func countNewListing(b buckets, origin string, now time.Time) error {
	key := rateKey(origin, now)
	prefix := key[:len(origin)+1]
	var old [][]byte
	c := b.originRate.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if !bytes.Equal(k, key) {
			old = append(old, bytes.Clone(k))
		}
	}
	for _, k := range old {
		if err := b.originRate.Delete(k); err != nil {
			return fmt.Errorf("prune rate counts of %s: %w", origin, err)
		}
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(newListingsThisHour(b, origin, now)+1))
	if err := b.originRate.Put(key, v[:]); err != nil {
		return fmt.Errorf("count new listing of %s: %w", origin, err)
	}
	return nil
}

// Origins returns the record of every origin that has reported here,
// sorted by name.
func (db *DB) Origins() ([]OriginRecord, error) {
	var out []OriginRecord
	err := db.bdb.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketOrigins)).ForEach(func(k, v []byte) error {
			o, err := decodeOrigin(string(k), v)
			if err != nil {
				return err
			}
			out = append(out, o)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read origin records: %w", err)
	}
	return out, nil
}

// ReportDetail is one live report of an address, for dstctl why.
type ReportDetail struct {
	MessageID string
	ReportInfo
	// RelayOnly: stored only to relay, counting for nothing here, for
	// RelayReason (a class policy.list_classes leaves out, the site's own
	// networks or allow list). Class is its class when it is not spam.
	RelayOnly   bool
	RelayReason string
	Class       string
}

// ReportsOf returns the live (not cancelled, not pruned) reports of ip,
// oldest first: those stored to count here, and those stored only to relay
// (RelayOnly).
func (db *DB) ReportsOf(ip netip.Addr) ([]ReportDetail, error) {
	ip, err := normalizeIP(ip)
	if err != nil {
		return nil, fmt.Errorf("reports of an address: %w", err)
	}
	var out []ReportDetail
	err = db.bdb.View(func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		err := eachReportOf(b, ip, func(id string, rec reportRecord) error {
			out = append(out, ReportDetail{MessageID: id, ReportInfo: ReportInfo(rec)})
			return nil
		})
		if err != nil {
			return err
		}
		relayed, err := relayedOf(b, ip)
		out = append(out, relayed...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reports of %s: %w", ip, err)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Hit.Before(out[j].Hit) })
	return out, nil
}

// DisputeParams say how an administrator's delisting counts against the
// origins that reported the address.
type DisputeParams struct {
	// Self is this site: its own reports are never disputed (its
	// administrator answers for its traps).
	Self string
	// Share is policy.dispute_share: past it, an origin is demoted to
	// probation; 0 never demotes. MinAddresses is how many addresses an
	// origin must have reported before its share is judged.
	Share        float64
	MinAddresses int
}

// DelistResult says what AdminDelist did.
type DelistResult struct {
	Found bool // the address was listed
	// Disputed are the origins with live reports of the address, whose
	// records now count it against them; Demoted those of them this put
	// back on probation.
	Disputed, Demoted []string
}

// AdminDelist is Delist by an administrator: the address is also counted
// against every origin with a live report of it (not this site), and an
// origin whose disputed share passes p.Share is demoted to probation, in the
// same transaction.
func (db *DB) AdminDelist(ip netip.Addr, now time.Time, by string, p DisputeParams) (DelistResult, error) {
	ip, err := normalizeIP(ip)
	if err != nil {
		return DelistResult{}, fmt.Errorf("delist: %w", err)
	}
	var (
		res DelistResult
		e   *effects
	)
	err = db.bdb.Update(func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		res = DelistResult{}
		e = db.newEffects()
		var err error
		if res.Found, err = delist(b, e, ip, now, by); err != nil {
			return err
		}
		res.Disputed, res.Demoted, err = dispute(b, ip, now, p)
		return err
	})
	if err != nil {
		return DelistResult{}, fmt.Errorf("delist %s: %w", ip, err)
	}
	db.committed(e)
	return res, nil
}

// dispute counts ip against each origin with live reports of it.
func dispute(b buckets, ip netip.Addr, now time.Time, p DisputeParams) (disputed, demoted []string, err error) {
	prefix := ipKey(ip)
	c := b.reportIP.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); {
		num, _, n, ok := splitReportIPKey(k)
		if !ok {
			return nil, nil, fmt.Errorf("report address index key of %d bytes: the file is damaged", len(k))
		}
		origin, err := b.on.originName(num)
		if err != nil {
			return nil, nil, err
		}
		if origin != p.Self {
			disputed = append(disputed, origin)
		}
		k, _ = c.Seek(afterPrefix(k[:n]))
	}
	for _, name := range disputed {
		o, err := getOrigin(b, name)
		if err != nil {
			return nil, nil, err
		}
		o.Disputed++
		if !o.Demoted && p.Share > 0 && o.Addresses >= max(p.MinAddresses, 1) && o.DisputedShare() > p.Share {
			o.Demoted, o.Earned, o.DemotedAt = true, 0, now
			demoted = append(demoted, name)
		}
		if err := putOrigin(b, o); err != nil {
			return nil, nil, err
		}
	}
	return disputed, demoted, nil
}
