package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// The values are a small hand-written binary format rather than JSON: a
// listing is read on every DNS query that misses the in-memory index and on
// every report, and a million of them should stay a few tens of megabytes.
// Each value starts with a format byte so that a later dstd can tell old
// records from new ones without a migration pass.

// formatV1 is the first byte of the values of the first layout; formatV2
// that of the compact listing and of arrival entries (arrivals.go).
// Records of other kinds are still written as formatV1.
const (
	formatV1 = 1
	formatV2 = 2
	// formatV3 is that of the listing of layout 3, which refers to its
	// last report by arrival key instead of holding its Message-ID.
	formatV3 = 3
	// formatV4 is that of the listing of layout 4, which names its
	// origins by number (originnum.go).
	formatV4 = 4
)

// Status bytes stored after the time in a history value.
const (
	historyAccepted byte = 1
	historyRefused  byte = 2
)

// historyValueLen is the length of a layout-1 history value: 8-byte time
// and status.
const historyValueLen = 9

// Address families in an encoded address, so an invalid (zero) address in an
// event survives a round trip and a v4 address is not mistaken for v6.
const (
	famNone byte = 0
	famV4   byte = 4
	famV6   byte = 6
)

// An address key is a byte that keeps the order of the addresses'
// 16-byte form (IPv4 sorts among ::ffff:0:0/96), then the address: 4
// bytes for IPv4, 16 for IPv6. Layouts 1 and 2 keyed every address by its
// 16-byte form (v1IPKeyLen); 5 bytes instead of 16 in the listings, the
// expiry index and the report index, all but the expiry filled in random
// order, save about 45 bytes a listing.
const (
	ipKeyV6Low  byte = 0 // an IPv6 address below ::ffff:0:0
	ipKeyV4     byte = 1
	ipKeyV6High byte = 2 // an IPv6 address above ::ffff:255.255.255.255
	v1IPKeyLen       = 16
)

// timeKeyLen is the length of a time key prefix.
const timeKeyLen = 8

// timeKey returns t as 8 bytes that sort like t: the Unix nanoseconds with the
// sign bit flipped, so that (unlikely) times before 1970 still sort first.
func timeKey(t time.Time) []byte {
	var k [timeKeyLen]byte
	binary.BigEndian.PutUint64(k[:], uint64(t.UnixNano())^(1<<63))
	return k[:]
}

// parseTimeKey is the inverse of timeKey for the first 8 bytes of k.
func parseTimeKey(k []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(k[:timeKeyLen])^(1<<63))).UTC()
}

// ipKey returns the key of an address. The caller has unmapped it, so
// that 192.0.2.1 and ::ffff:192.0.2.1 are the same key and decode as IPv4.
func ipKey(ip netip.Addr) []byte {
	ip = ip.Unmap()
	if ip.Is4() {
		a := ip.As4()
		return []byte{ipKeyV4, a[0], a[1], a[2], a[3]}
	}
	a := ip.As16()
	// An unmapped address is never in ::ffff:0:0/96: below it or above.
	fam := ipKeyV6High
	if bytes.Compare(a[:], []byte{10: 0xff, 11: 0xff, 15: 0}) < 0 {
		fam = ipKeyV6Low
	}
	return append([]byte{fam}, a[:]...)
}

// ipKeyLenOf returns the length of the address key that k starts with, or
// 0 if k does not start with one.
func ipKeyLenOf(k []byte) int {
	n := 0
	if len(k) > 0 {
		switch k[0] {
		case ipKeyV4:
			n = 1 + 4
		case ipKeyV6Low, ipKeyV6High:
			n = 1 + 16
		}
	}
	if n > len(k) {
		return 0
	}
	return n
}

// parseIPKey is the inverse of ipKey; k is exactly one address key
// (ipKeyLenOf(k) == len(k)).
func parseIPKey(k []byte) netip.Addr {
	if k[0] == ipKeyV4 {
		return netip.AddrFrom4([4]byte(k[1:5]))
	}
	return netip.AddrFrom16([16]byte(k[1:17]))
}

// ipKeyFromV1 converts the 16-byte address key of layouts 1 and 2.
func ipKeyFromV1(k []byte) []byte {
	return ipKey(netip.AddrFrom16([v1IPKeyLen]byte(k[:v1IPKeyLen])))
}

// joinKey returns a new slice holding a then b, for composite index keys.
func joinKey(a, b []byte) []byte {
	k := make([]byte, 0, len(a)+len(b))
	return append(append(k, a...), b...)
}

// encoder appends the primitive fields of a value.
type encoder struct{ b []byte }

func (e *encoder) byte(v byte)      { e.b = append(e.b, v) }
func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }

func (e *encoder) string(s string) {
	e.uvarint(uint64(len(s)))
	e.b = append(e.b, s...)
}

// time stores the zero time as 0, so "no time" survives a round trip. The
// price is that exactly 1970-01-01T00:00:00Z reads back as zero.
func (e *encoder) time(t time.Time) {
	if t.IsZero() {
		e.b = binary.AppendVarint(e.b, 0)
		return
	}
	e.b = binary.AppendVarint(e.b, t.UnixNano())
}

// relTime stores t as its distance from base (Unix ns; 0 for a zero base),
// which takes a byte or two where an absolute time takes nine: 0 is the
// zero time, else the zigzag distance plus one. The arithmetic wraps, so
// every t decodes exactly.
func (e *encoder) relTime(t time.Time, base int64) {
	if t.IsZero() {
		e.uvarint(0)
		return
	}
	d := int64(uint64(t.UnixNano()) - uint64(base))
	e.uvarint(uint64(d<<1^d>>63) + 1)
}

// relTimeS is relTime that stores a whole number of seconds as seconds:
// 0 is the zero time, 1 a distance in nanoseconds that follows (zigzag),
// else the zigzag distance in seconds plus 2. A listing's lifetime (a
// day: 7 bytes in nanoseconds) then takes 3 bytes, a distance of 0 one.
func (e *encoder) relTimeS(t time.Time, base int64) {
	if t.IsZero() {
		e.uvarint(0)
		return
	}
	d := int64(uint64(t.UnixNano()) - uint64(base))
	if d%int64(time.Second) != 0 {
		e.uvarint(1)
		e.uvarint(uint64(d<<1 ^ d>>63))
		return
	}
	s := d / int64(time.Second)
	e.uvarint(uint64(s<<1^s>>63) + 2)
}

func (e *encoder) addr(a netip.Addr) {
	switch {
	case !a.IsValid():
		e.byte(famNone)
	case a.Is4():
		e.byte(famV4)
		b := a.As4()
		e.b = append(e.b, b[:]...)
	default:
		e.byte(famV6)
		b := a.As16()
		e.b = append(e.b, b[:]...)
	}
}

// constError is an error that can be a constant, so the package needs no
// mutable globals for its fixed messages.
type constError string

func (e constError) Error() string { return string(e) }

// errShort is the cause of every truncated-record error; the caller adds
// which record it was.
const errShort = constError("record is truncated")

// decoder reads what encoder wrote. The first error sticks, so a caller
// decodes all fields and checks err once at the end. Strings are copied out
// of b, which may be memory owned by a bbolt transaction.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail(errShort)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length or element count and checks it against what is left,
// so a corrupt count cannot make a caller allocate gigabytes.
func (d *decoder) count(minSize int) int {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)/max(minSize, 1)) {
		d.fail(errShort)
		return 0
	}
	return int(n)
}

func (d *decoder) string() string {
	n := d.count(1)
	if d.err != nil {
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) time() time.Time {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return time.Time{}
	}
	d.b = d.b[n:]
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, v).UTC()
}

func (d *decoder) relTime(base int64) time.Time {
	u := d.uvarint()
	if d.err != nil || u == 0 {
		return time.Time{}
	}
	u--
	z := int64(u>>1) ^ -int64(u&1)
	return time.Unix(0, int64(uint64(base)+uint64(z))).UTC()
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// relTimeS is the inverse of encoder.relTimeS.
func (d *decoder) relTimeS(base int64) time.Time {
	u := d.uvarint()
	if d.err != nil || u == 0 {
		return time.Time{}
	}
	var z int64
	if u == 1 {
		v := d.uvarint()
		z = int64(v>>1) ^ -int64(v&1)
	} else {
		u -= 2
		z = (int64(u>>1) ^ -int64(u&1)) * int64(time.Second)
	}
	return time.Unix(0, int64(uint64(base)+uint64(z))).UTC()
}

// unixNano is t's Unix nanoseconds, 0 for the zero time (the base of
// relTime).
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func (d *decoder) addr() netip.Addr {
	var n int
	switch fam := d.byte(); fam {
	case famNone:
		return netip.Addr{}
	case famV4:
		n = 4
	case famV6:
		n = 16
	default:
		d.fail(fmt.Errorf("unknown address family %d", fam))
		return netip.Addr{}
	}
	if len(d.b) < n {
		d.fail(errShort)
		return netip.Addr{}
	}
	a, _ := netip.AddrFromSlice(d.b[:n])
	d.b = d.b[n:]
	return a
}

// version checks the leading format byte.
func (d *decoder) version() {
	if v := d.byte(); d.err == nil && v != formatV1 {
		d.fail(fmt.Errorf("record format %d is not known to this version of dstd", v))
	}
}

// versionOf reads the leading format byte of a kind of record that has
// several formats.
func (d *decoder) versionOf() byte {
	v := d.byte()
	if d.err == nil && (v < formatV1 || v > formatV4) {
		d.fail(fmt.Errorf("record format %d is not known to this version of dstd", v))
	}
	return v
}

// done reports the sticky error, and treats bytes left over as corruption.
func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		return fmt.Errorf("record has %d unexpected trailing bytes", len(d.b))
	}
	return d.err
}

// encodeListing encodes everything but the address, which is the key, in
// format 4. The listing refers to its last report by its arrival key
// (last, or none) rather than its Message-ID (40 to 60 bytes in a bucket
// filled in random order); readListing reads the Message-ID back from the
// arrivals log. The arrival time is the one absolute time; the others are
// distances (FirstSeen from the arrival, LastSeen from FirstSeen, Expires
// and LastHit from LastSeen), in seconds when they are whole seconds
// (relTimeS). The origins are numbers (on: originnum.go). Format 2 took
// 77 bytes for a listing of one report, format 3 (origins by name) 36,
// format 4 about 22.
func encodeListing(l Listing, last []byte, on originNames) ([]byte, error) {
	e := encoder{b: make([]byte, 0, 24+2*len(l.Origins))}
	e.byte(formatV4)
	var base int64
	if len(last) == arrivalKeyLen {
		base = parseTimeKey(last).UnixNano()
		e.byte(1)
		e.b = binary.AppendVarint(e.b, base)
		e.uvarint(uint64(binary.BigEndian.Uint16(last[timeKeyLen:])))
	} else {
		e.byte(0)
	}
	e.relTimeS(l.FirstSeen, base)
	first := unixNano(l.FirstSeen)
	e.relTimeS(l.LastSeen, first)
	lastSeen := unixNano(l.LastSeen)
	e.relTimeS(l.Expires, lastSeen)
	e.uvarint(uint64(l.Hits))
	e.uvarint(uint64(len(l.Origins)))
	for _, o := range l.Origins {
		n, err := on.originNum(o)
		if err != nil {
			return nil, err
		}
		e.uvarint(n)
	}
	e.uvarint(uint64(l.Episodes))
	e.relTimeS(l.LastHit, lastSeen)
	return e.b, nil
}

// decodeListing is the inverse of encodeListing, and reads format 1 too
// (absolute times; Episodes and LastHit added after the first release, a
// record without them read as one episode whose last hit is LastSeen);
// key is the address key, on names the origins of format 4. A listing of
// format 3 or 4 comes back with the arrival key of its last report and no
// LastMessageID (readListing fills it in); older ones with their
// LastMessageID and no arrival key.
func decodeListing(key, v []byte, on originNames) (Listing, []byte, error) {
	if n := ipKeyLenOf(key); n == 0 || n != len(key) {
		return Listing{}, nil, fmt.Errorf("listing key %x is not an address", key)
	}
	var last []byte
	d := decoder{b: v}
	format := d.versionOf()
	l := Listing{IP: parseIPKey(key)}
	if format == formatV3 || format == formatV4 {
		var base int64
		switch d.byte() {
		case 0:
		case 1:
			base = d.varint()
			n := d.uvarint()
			if n > 0xffff {
				d.fail(errors.New("arrival number out of range"))
			}
			last = arrivalKey(time.Unix(0, base), uint16(n))
		default:
			d.fail(errors.New("unknown reference to the last report"))
		}
		l.FirstSeen = d.relTimeS(base)
		l.LastSeen = d.relTimeS(unixNano(l.FirstSeen))
		l.Expires = d.relTimeS(unixNano(l.LastSeen))
		l.Hits = int(d.uvarint())
		if format == formatV4 {
			l.Origins = d.originNums(on)
		} else {
			l.Origins = d.origins()
		}
		l.Episodes = int(d.uvarint())
		l.LastHit = d.relTimeS(unixNano(l.LastSeen))
		if d.err != nil {
			last = nil
		}
	} else {
		l.FirstSeen = d.time()
		if format == formatV2 {
			l.LastSeen = d.relTime(unixNano(l.FirstSeen))
			l.Expires = d.relTime(unixNano(l.LastSeen))
		} else {
			l.LastSeen = d.time()
			l.Expires = d.time()
		}
		l.Hits = int(d.uvarint())
		l.Origins = d.origins()
		l.LastMessageID = d.string()
		switch {
		case format == formatV2:
			l.Episodes = int(d.uvarint())
			l.LastHit = d.relTime(unixNano(l.LastSeen))
		case d.err == nil && len(d.b) > 0:
			l.Episodes = int(d.uvarint())
			l.LastHit = d.time()
		default:
			l.Episodes, l.LastHit = 1, l.LastSeen
		}
	}
	if err := d.done(); err != nil {
		return Listing{}, nil, fmt.Errorf("listing for %s: %w", l.IP, err)
	}
	return l, last, nil
}

// origins reads a listing's list of origins.
func (d *decoder) origins() []string {
	n := d.count(1)
	if n == 0 {
		return nil
	}
	o := make([]string, n)
	for i := range o {
		o[i] = d.string()
	}
	return o
}

// originNums reads a list of origin numbers and names them.
func (d *decoder) originNums(on originNames) []string {
	n := d.count(1)
	if n == 0 {
		return nil
	}
	o := make([]string, n)
	for i := range o {
		o[i] = d.originName(on)
	}
	return o
}

// originName reads an origin number and names it.
func (d *decoder) originName(on originNames) string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	name, err := on.originName(n)
	if err != nil {
		d.fail(err)
	}
	return name
}

// sighting is one origin's most recent report of a not yet listed address.
type sighting struct {
	Origin string
	Time   time.Time
}

// sightings is what is known about an address that is reported but not yet
// listed, because fewer than the threshold of distinct origins reported it.
type sightings struct {
	FirstSeen time.Time
	Hits      int
	LastMsgID string
	List      []sighting // one per origin, oldest first
}

func encodeSightings(s sightings) []byte {
	e := encoder{b: make([]byte, 0, 32+len(s.LastMsgID)+24*len(s.List))}
	e.byte(formatV1)
	e.time(s.FirstSeen)
	e.uvarint(uint64(s.Hits))
	e.string(s.LastMsgID)
	e.uvarint(uint64(len(s.List)))
	for _, x := range s.List {
		e.string(x.Origin)
		e.time(x.Time)
	}
	return e.b
}

func decodeSightings(v []byte) (sightings, error) {
	d := decoder{b: v}
	d.version()
	var s sightings
	s.FirstSeen = d.time()
	s.Hits = int(d.uvarint())
	s.LastMsgID = d.string()
	if n := d.count(2); n > 0 {
		s.List = make([]sighting, n)
		for i := range s.List {
			s.List[i].Origin = d.string()
			s.List[i].Time = d.time()
		}
	}
	if err := d.done(); err != nil {
		return sightings{}, fmt.Errorf("sightings record: %w", err)
	}
	return s, nil
}

// encodeItem encodes a queue item; Seq is the key.
func encodeItem(it QueueItem) []byte {
	ev := it.Event
	e := encoder{b: make([]byte, 0, 64+len(ev.MessageID)+len(ev.Origin)+len(ev.By))}
	e.byte(formatV1)
	e.uvarint(uint64(it.Attempts))
	e.time(it.NextAttempt)
	e.byte(byte(ev.Kind))
	e.time(ev.Time)
	e.addr(ev.IP)
	e.string(ev.MessageID)
	e.string(ev.Origin)
	if ev.Listed {
		e.byte(1)
	} else {
		e.byte(0)
	}
	e.time(ev.Expires)
	e.string(ev.By)
	if ev.Class != "" {
		// Last and only when set: a spam event, and one queued by an
		// older dstd, is encoded as before.
		e.string(ev.Class)
	}
	return e.b
}

// decodeItem is the inverse of encodeItem; key is the 8-byte sequence key.
func decodeItem(key, v []byte) (QueueItem, error) {
	if len(key) != 8 {
		return QueueItem{}, fmt.Errorf("queue key is %d bytes, want 8", len(key))
	}
	it := QueueItem{Seq: binary.BigEndian.Uint64(key)}
	d := decoder{b: v}
	d.version()
	it.Attempts = int(d.uvarint())
	it.NextAttempt = d.time()
	it.Event.Kind = EventKind(d.byte())
	it.Event.Time = d.time()
	it.Event.IP = d.addr()
	it.Event.MessageID = d.string()
	it.Event.Origin = d.string()
	it.Event.Listed = d.byte() != 0
	it.Event.Expires = d.time()
	it.Event.By = d.string()
	if d.err == nil && len(d.b) > 0 {
		it.Event.Class = d.string()
	}
	if err := d.done(); err != nil {
		return QueueItem{}, fmt.Errorf("queue item %d: %w", it.Seq, err)
	}
	return it, nil
}

// seqKey returns the key of queue item seq.
func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}
