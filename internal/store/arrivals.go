package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The arrivals log holds everything the store keeps of one Message-ID it
// has seen: its status, the report record (what a cancel and origin trust
// need) or the relayed record, and the article. It is keyed by arrival
// time, so it is written at its end and its pages are packed full, and it
// is pruned from its start. The history maps a hash of the Message-ID to
// its arrival key; the address indexes (report_ip, relayed_ip) end in it.
//
// Layout 1 kept the same things in four buckets keyed by Message-ID
// (history, articles, reports, relayed) and one time index (history_time):
// five copies of the Message-ID, four of them in B+trees filled in random
// order and so about a third empty. Layout 2 keeps one.

// arrivalKeyLen is the length of an arrival key: the timeKey of the
// arrival, then a 2-byte big-endian number that tells apart the
// Message-IDs that arrived in the same nanosecond.
const arrivalKeyLen = timeKeyLen + 2

// fillAppend is the FillPercent of the buckets keyed by time, which are
// mostly appended to: full pages, with room for the few keys that commit
// slightly out of order (concurrent writers took their time before the
// commit). bbolt's default, 0.5, leaves every page but the last half empty
// when keys come in order.
const fillAppend = 0.9

// fillArrivals is the FillPercent of the arrivals log. Its keys are
// assigned in the commit's transaction from the reports' arrival times,
// so they come nearly in order; its pages are filled whole, and a late
// key that lands in a full page splits it (into a full page and a small
// one), a rare event. Its values are 150 bytes and more, so a page holds
// some twenty: a page filled to 90% would waste a tenth of the log, the
// largest bucket.
const fillArrivals = 1.0

// arrival is an arrivals log entry. The arrival time is in the key.
type arrival struct {
	Status    byte // historyAccepted or historyRefused
	MessageID string
	Report    *reportRecord  // a report stored to count here
	Relayed   *relayedRecord // a report stored only to relay
	Article   []byte         // nil: none stored
}

// Flags of an encoded arrival.
const (
	arrReport byte = 1 << iota
	arrRelayed
	arrArticle
)

// Bits of the report record's flags byte in an arrival (recProbation and
// the others are the low four).
const recCancelled byte = 1 << 4

// encodeArrival encodes a in format 3; seen is the arrival time, the
// base of the record's times. The origins of the report and relayed
// records are numbers (on: originnum.go; format 2 held their names).
// The article, when there is one, is the rest of the value.
func encodeArrival(a arrival, seen int64, on originNames) ([]byte, error) {
	e := encoder{b: make([]byte, 0, 48+len(a.MessageID)+len(a.Article))}
	e.byte(formatV3)
	e.byte(a.Status)
	var f byte
	if a.Report != nil {
		f |= arrReport
	}
	if a.Relayed != nil {
		f |= arrRelayed
	}
	if a.Article != nil {
		f |= arrArticle
	}
	e.byte(f)
	e.string(a.MessageID)
	if r := a.Report; r != nil {
		n, err := on.originNum(r.Origin)
		if err != nil {
			return nil, err
		}
		e.addr(r.IP)
		e.uvarint(n)
		e.byte(r.flags())
		e.relTime(r.Hit, seen)
		e.relTime(r.Date, seen)
	}
	if r := a.Relayed; r != nil {
		n, err := on.originNum(r.Origin)
		if err != nil {
			return nil, err
		}
		e.addr(r.IP)
		e.uvarint(n)
		e.relTime(r.Hit, seen)
		e.string(r.Class)
		e.string(r.Reason)
	}
	e.b = append(e.b, a.Article...)
	return e.b, nil
}

// flags packs the report record's booleans.
func (r reportRecord) flags() byte {
	var f byte
	for _, x := range []struct {
		set bool
		bit byte
	}{{r.Probation, recProbation}, {r.Corroborated, recCorroborated}, {r.Held, recHeld}, {r.Listed, recListed}, {r.Cancelled, recCancelled}} {
		if x.set {
			f |= x.bit
		}
	}
	return f
}

// decodeArrival is the inverse of encodeArrival, and reads format 2
// (origins by name) too; key is the arrival key.
func decodeArrival(key, v []byte, on originNames) (arrival, error) {
	if len(key) != arrivalKeyLen {
		return arrival{}, fmt.Errorf("arrival key is %d bytes, want %d: the file is damaged", len(key), arrivalKeyLen)
	}
	seen := unixNano(parseTimeKey(key))
	d := decoder{b: v}
	format := d.byte()
	if d.err == nil && format != formatV2 && format != formatV3 {
		d.fail(fmt.Errorf("arrival record format %d is not known to this version of dstd", format))
	}
	origin := func() string {
		if format == formatV2 {
			return d.string()
		}
		return d.originName(on)
	}
	var a arrival
	a.Status = d.byte()
	f := d.byte()
	a.MessageID = d.string()
	if f&arrReport != 0 {
		r := reportRecord{IP: d.addr()}
		r.Origin = origin()
		fl := d.byte()
		r.Probation, r.Corroborated, r.Held = fl&recProbation != 0, fl&recCorroborated != 0, fl&recHeld != 0
		r.Listed, r.Cancelled = fl&recListed != 0, fl&recCancelled != 0
		if fl&^(recProbation|recCorroborated|recHeld|recListed|recCancelled) != 0 {
			d.fail(fmt.Errorf("unknown report flags %#x", fl))
		}
		r.Hit = d.relTime(seen)
		r.Date = d.relTime(seen)
		a.Report = &r
	}
	if f&arrRelayed != 0 {
		r := relayedRecord{IP: d.addr()}
		r.Origin = origin()
		r.Hit, r.Class, r.Reason = d.relTime(seen), d.string(), d.string()
		a.Relayed = &r
	}
	if f&^(arrReport|arrRelayed|arrArticle) != 0 {
		d.fail(fmt.Errorf("unknown arrival flags %#x", f))
	}
	if d.err == nil && f&arrArticle != 0 {
		// Not copied: it lives in the transaction's memory, like v. The
		// callers that keep it past the transaction copy it (Article).
		a.Article = d.b[:len(d.b):len(d.b)]
		d.b = d.b[len(d.b):]
	}
	if err := d.done(); err != nil {
		return arrival{}, fmt.Errorf("arrival record at %s: %w", parseTimeKey(key).Format(time.RFC3339Nano), err)
	}
	return a, nil
}

// arrivalMessageID returns the Message-ID of the arrival entry v at key,
// "" if there is none, without decoding the rest (ForEachListing).
func arrivalMessageID(key, v []byte) (string, error) {
	if v == nil {
		return "", nil
	}
	d := decoder{b: v}
	if f := d.byte(); d.err == nil && f != formatV2 && f != formatV3 {
		d.fail(fmt.Errorf("arrival record format %d is not known to this version of dstd", f))
	}
	d.byte() // status
	d.byte() // flags
	id := d.string()
	if d.err != nil {
		return "", fmt.Errorf("arrival record at %s: %w", parseTimeKey(key).Format(time.RFC3339Nano), d.err)
	}
	return id, nil
}

// arrivalKey is the key of the n-th Message-ID that arrived at t.
func arrivalKey(t time.Time, n uint16) []byte {
	return binary.BigEndian.AppendUint16(timeKey(t), n)
}

// nextArrivalKey returns a free arrival key for an arrival at t: the next
// number after the last one used at t. The 65537th Message-ID of one
// nanosecond is taken as arriving a nanosecond later.
func nextArrivalKey(arrivals *bolt.Bucket, t time.Time) []byte {
	for {
		last := arrivalKey(t, 0xffff)
		c := arrivals.Cursor()
		k, _ := c.Seek(last)
		if bytes.Equal(k, last) {
			t = t.Add(time.Nanosecond)
			continue
		}
		if k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
		if len(k) == arrivalKeyLen && bytes.Equal(k[:timeKeyLen], last[:timeKeyLen]) {
			return arrivalKey(t, binary.BigEndian.Uint16(k[timeKeyLen:])+1)
		}
		return arrivalKey(t, 0)
	}
}

// stored is an arrival with its key, for a transaction that changes it.
type stored struct {
	key []byte
	arrival
}

// seen is the arrival time (Unix ns), the base of the record's times.
func (s *stored) seen() int64 { return unixNano(parseTimeKey(s.key)) }

// save writes the entry back.
func (s *stored) save(b buckets) error {
	v, err := encodeArrival(s.arrival, s.seen(), b.on)
	if err != nil {
		return fmt.Errorf("store the record of %s: %w", s.MessageID, err)
	}
	if err := b.arrivals.Put(s.key, v); err != nil {
		return fmt.Errorf("store the record of %s: %w", s.MessageID, err)
	}
	return nil
}

// The history is keyed by historyKeyLen bytes of the SHA-256 of the
// Message-ID, not by the Message-ID, which the arrival entry holds: a
// Message-ID is 40 to 60 bytes, and this bucket is filled in random order,
// so a third of its pages is empty. Its value is the arrival keys of the
// Message-IDs with that hash: one, unless two collide (one chance in 2^64
// per pair; finding a pair takes 2^32 tries), and a lookup compares the
// Message-ID in each entry, so a collision costs a read, never a wrong
// answer.
const historyKeyLen = 8

// historyKey returns the history key of a Message-ID.
func historyKey(id []byte) []byte {
	h := sha256.Sum256(id)
	return h[:historyKeyLen]
}

// putHistory records a Message-ID that arrived at seen with its entry in
// the arrivals log, and returns the entry for the caller to complete.
func putHistory(b buckets, id []byte, seen time.Time, status byte, article []byte) (*stored, error) {
	s := &stored{key: nextArrivalKey(b.arrivals, seen), arrival: arrival{Status: status, MessageID: string(id)}}
	if len(article) > 0 {
		s.Article = article
		if err := addCounter(b.meta, countArticles, 1); err != nil {
			return nil, err
		}
	}
	if err := s.save(b); err != nil {
		return nil, err
	}
	hk := historyKey(id)
	v := append(bytes.Clone(b.history.Get(hk)), s.key...)
	if err := b.history.Put(hk, v); err != nil {
		return nil, fmt.Errorf("record Message-ID in history: %w", err)
	}
	return s, addCounter(b.meta, countHistory, 1)
}

// historyKeys returns the arrival keys a history value holds.
func historyKeys(v []byte) ([][]byte, error) {
	if len(v)%arrivalKeyLen != 0 {
		return nil, fmt.Errorf("history record of %d bytes: the file is damaged", len(v))
	}
	keys := make([][]byte, 0, len(v)/arrivalKeyLen)
	for len(v) > 0 {
		keys = append(keys, v[:arrivalKeyLen:arrivalKeyLen])
		v = v[arrivalKeyLen:]
	}
	return keys, nil
}

// lookupHistory returns the arrivals entry of a Message-ID, or nil.
func lookupHistory(b buckets, id []byte) (*stored, error) {
	keys, err := historyKeys(b.history.Get(historyKey(id)))
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		s, err := loadArrival(b, bytes.Clone(k))
		if err != nil {
			return nil, err
		}
		if s != nil && s.MessageID == string(id) {
			return s, nil
		}
	}
	return nil, nil
}

// seenID tells whether the history holds a Message-ID.
func seenID(b buckets, id []byte) (bool, error) {
	s, err := lookupHistory(b, id)
	return s != nil, err
}

// loadArrival reads the entry at key, or nil if there is none.
func loadArrival(b buckets, key []byte) (*stored, error) {
	v := b.arrivals.Get(key)
	if v == nil {
		return nil, nil
	}
	a, err := decodeArrival(key, v, b.on)
	if err != nil {
		return nil, err
	}
	return &stored{key: key, arrival: a}, nil
}

// forget removes an arrival entry (history pruning) with its history
// entry and its address index entries.
func forget(b buckets, s *stored) error {
	if r := s.Report; r != nil {
		if err := unindexReport(b, b.reportIP, r.IP, r.Origin, s.key); err != nil {
			return fmt.Errorf("remove report index entry: %w", err)
		}
	}
	if r := s.Relayed; r != nil {
		if err := unindexReport(b, b.relayedIP, r.IP, r.Origin, s.key); err != nil {
			return fmt.Errorf("remove relayed report index entry: %w", err)
		}
	}
	// The history names this entry, unless the file is damaged.
	hk := historyKey([]byte(s.MessageID))
	keys, err := historyKeys(b.history.Get(hk))
	if err != nil {
		return err
	}
	var rest []byte
	for _, k := range keys {
		if !bytes.Equal(k, s.key) {
			rest = append(rest, k...)
		}
	}
	if len(rest) != len(keys)*arrivalKeyLen {
		if len(rest) == 0 {
			err = b.history.Delete(hk)
		} else {
			err = b.history.Put(hk, rest)
		}
		if err != nil {
			return err
		}
		if err := addCounter(b.meta, countHistory, -1); err != nil {
			return err
		}
	}
	if s.Article != nil {
		if err := addCounter(b.meta, countArticles, -1); err != nil {
			return err
		}
	}
	return b.arrivals.Delete(s.key)
}
