package dnsbl

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/miekg/dns"

	"github.com/dst-traps/dst/internal/dnsutil"
)

// The fast path answers the queries a blocklist lives on (an A or TXT
// lookup of one name under the zone) at the wire level: it reads the
// query in place and writes the answer into a buffer the UDP reader
// reuses, with no allocation, no dns.Msg and no goroutine. It takes only
// what ServeDNS would answer in one obvious way and declines everything
// else (answerFast returns false), which the slow path then hands to
// miekg/dns and ServeDNS as before. Its answers are byte for byte those
// of the slow path: the names are compressed the way miekg/dns's Pack
// compresses them, and records are dropped for TC as truncate drops them.
// TestFastEqualsSlow and FuzzFastPath hold it to that.

const (
	// udpReadSize is how much of a UDP query is read. miekg/dns's server
	// reads 512 bytes (its default UDPSize), so a longer query is cut
	// there, and the slow path must see it cut the same way.
	udpReadSize = dns.MinMsgSize
	// fastOutSize bounds a fast answer before truncation: header, a
	// 255-byte question, A and a TXT of maxTXT bytes in 4 strings, or an
	// SOA with three uncompressed names, and the OPT record.
	fastOutSize = 2048
	// maxCompress bounds the compression table: every label of the
	// question (at most 127) and of the SOA's three names.
	maxCompress = 4 * 128
)

// compEntry is one name miekg/dns's Pack would remember for compression:
// the wire form of a name suffix and where it was written.
type compEntry struct {
	key []byte
	off int
}

// fastScratch is what one UDP reader reuses from query to query.
type fastScratch struct {
	comp  [maxCompress]compEntry
	ncomp int
	txt   []byte // rendered TXT text
}

// fastZone is the zone's part of the fast path, worked out by New. It is
// nil when a name the answers carry (the zone, the SOA's NS and mailbox)
// has a character that miekg/dns would escape in presentation form: its
// compression compares those forms, which the fast path does not model,
// so every query then takes the slow path.
type fastZone struct {
	zone, ns, mbox []byte // wire form; zone in lower case
	zoneLabels     int
}

// safeLabelByte reports bytes that read the same in a label's wire and
// presentation forms, and that no name of a listing lacks. Anything
// else (escapes, a dot inside a label, '*') goes to the slow path.
func safeLabelByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// wireName packs a presentation name of safe labels, or returns nil.
func wireName(name string) []byte {
	if name == "" || name == "." || name[len(name)-1] != '.' {
		return nil
	}
	var b []byte
	start := 0
	for i := 0; i < len(name); i++ {
		if name[i] != '.' {
			if !safeLabelByte(name[i]) {
				return nil
			}
			continue
		}
		l := i - start
		if l == 0 || l > 63 {
			return nil
		}
		b = append(b, byte(l))
		b = append(b, name[start:i]...)
		start = i + 1
	}
	if len(b)+1 > 255 {
		return nil
	}
	return append(b, 0)
}

func newFastZone(zone, ns, mbox string) *fastZone {
	z := &fastZone{zone: wireName(zone), ns: wireName(ns), mbox: wireName(mbox)}
	if z.zone == nil || z.ns == nil || z.mbox == nil {
		return nil
	}
	for i := 0; z.zone[i] != 0; i += 1 + int(z.zone[i]) {
		z.zoneLabels++
	}
	return z
}

// answerFast answers the query q into out (at least fastOutSize bytes)
// and returns the answer's length. ok is false when the query is not one
// the fast path takes; out is then garbage and the slow path must answer.
func (s *Server) answerFast(q, out []byte, sc *fastScratch) (n int, ok bool) {
	fz := s.fast
	if fz == nil || len(q) < 12+5 || len(out) < fastOutSize {
		return 0, false
	}
	// Header: a query (QR=0), opcode QUERY, one question, nothing in
	// answer and authority, at most an OPT in additional. The other
	// flag bits do not change the answer but for RD and CD, copied.
	flags := binary.BigEndian.Uint16(q[2:])
	if flags&0x8000 != 0 || flags&0x7800 != 0 ||
		binary.BigEndian.Uint16(q[4:]) != 1 || binary.BigEndian.Uint16(q[6:]) != 0 ||
		binary.BigEndian.Uint16(q[8:]) != 0 || binary.BigEndian.Uint16(q[10:]) > 1 {
		return 0, false
	}
	// The question name: uncompressed labels of safe bytes.
	var starts [128]uint8 // label offsets from 12
	nl := 0
	off := 12
	for {
		if off >= len(q) {
			return 0, false
		}
		l := int(q[off])
		if l == 0 {
			break
		}
		if l > 63 || nl == len(starts) || off+1+l >= len(q) {
			return 0, false
		}
		for _, c := range q[off+1 : off+1+l] {
			if !safeLabelByte(c) {
				return 0, false
			}
		}
		starts[nl] = uint8(off - 12)
		nl++
		off += 1 + l
	}
	off++ // the root label
	qend := off
	if qend-12 > 255 || off+4 > len(q) {
		return 0, false
	}
	qname := q[12:qend]
	qtype := binary.BigEndian.Uint16(q[off:])
	qclass := binary.BigEndian.Uint16(q[off+2:])
	off += 4
	if qtype == dns.TypeAXFR || qtype == dns.TypeIXFR || (qclass != dns.ClassINET && qclass != dns.ClassANY) {
		return 0, false
	}
	// EDNS: one OPT, owner root, version 0, no options.
	edns := false
	size := dns.MinMsgSize
	if binary.BigEndian.Uint16(q[10:]) == 1 {
		if off+11 != len(q) || q[off] != 0 || binary.BigEndian.Uint16(q[off+1:]) != dns.TypeOPT ||
			q[off+6] != 0 || binary.BigEndian.Uint16(q[off+9:]) != 0 {
			return 0, false
		}
		edns = true
		size = min(max(int(binary.BigEndian.Uint16(q[off+3:])), dns.MinMsgSize), udpSizeOurs)
	} else if off != len(q) {
		return 0, false
	}
	// Under the zone, and not its apex.
	rel := nl - fz.zoneLabels
	if rel <= 0 || !equalFoldWire(qname[starts[rel]:], fz.zone) {
		return 0, false
	}

	st, ip, e, listed := s.classifyWire(qname, starts[:rel])

	// The header and question, then the records.
	copy(out, q[:qend+4])
	bits := uint16(0x8000|0x0400) | flags&(0x0100|0x0010) // QR AA, RD and CD copied
	sc.ncomp = 0
	// Pack remembers every suffix of the question name.
	for i := 0; i < nl; i++ {
		sc.comp[sc.ncomp] = compEntry{key: qname[starts[i]:], off: 12 + int(starts[i])}
		sc.ncomp++
	}
	var ends [3]int // end of each record written
	nrec, nans := 0, 0
	w := qend + 4
	rcode := dns.RcodeSuccess
	if st == nameListed {
		if qtype == dns.TypeA || qtype == dns.TypeANY {
			w = s.putA(out, w, e, listed)
			ends[nrec] = w
			nrec++
		}
		if qtype == dns.TypeTXT || qtype == dns.TypeANY {
			if w, ok = s.putTXT(out, w, ip, e, listed, sc); !ok {
				return 0, false
			}
			ends[nrec] = w
			nrec++
		}
		nans = nrec
	} else if st == nameNX {
		rcode = dns.RcodeNameError
	}
	if nans == 0 {
		// NXDOMAIN or NODATA: SOA in authority, as ServeDNS puts it.
		if w, ok = s.putSOA(out, w, sc); !ok {
			return 0, false
		}
		ends[nrec] = w
		nrec++
	}
	// truncate: records go from the end until the rest, OPT included,
	// fits; then TC.
	optLen := 0
	if edns {
		optLen = 11
	}
	keep := nrec
	for keep > 0 && ends[keep-1]+optLen > size {
		keep--
	}
	if keep < nrec {
		bits |= 0x0200
		w = qend + 4
		if keep > 0 {
			w = ends[keep-1]
		}
	}
	if w+optLen > len(out) {
		return 0, false
	}
	if edns {
		// SetEdns0(udpSizeOurs, false): no DO, extended rcode 0.
		out[w] = 0
		binary.BigEndian.PutUint16(out[w+1:], dns.TypeOPT)
		binary.BigEndian.PutUint16(out[w+3:], udpSizeOurs)
		clear(out[w+5 : w+11])
		w += 11
	}
	an, ns := min(keep, nans), max(keep-nans, 0)
	binary.BigEndian.PutUint16(out[2:], bits|uint16(rcode))
	binary.BigEndian.PutUint16(out[6:], uint16(an))
	binary.BigEndian.PutUint16(out[8:], uint16(ns))
	binary.BigEndian.PutUint16(out[10:], uint16(optLen/11))
	s.queries.count(qtype, rcode, true)
	return w, true
}

// equalFoldWire compares two wire names of safe labels, ignoring case.
func equalFoldWire(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// classifyWire is classify for a wire name whose labels below the zone
// start at starts (offsets into name). listed is the entry of a listing
// (e is then valid); a test point is nameListed with listed false.
func (s *Server) classifyWire(name []byte, starts []uint8) (st nameState, ip netip.Addr, e Entry, listed bool) {
	n := len(starts)
	label := func(i int) []byte { // the i-th label, i=0 leftmost
		o := int(starts[i])
		return name[o+1 : o+1+int(name[o])]
	}
	// IPv4: 1..4 decimal octets without leading zeros.
	if n <= 4 {
		var u uint32
		ok4 := true
		for i := n - 1; i >= 0 && ok4; i-- {
			l := label(i)
			if len(l) > 3 || (len(l) > 1 && l[0] == '0') {
				ok4 = false
				break
			}
			v := 0
			for _, c := range l {
				if c < '0' || c > '9' {
					ok4 = false
					break
				}
				v = v*10 + int(c-'0')
			}
			if v > 255 {
				ok4 = false
			}
			u = u<<8 | uint32(v)
		}
		if ok4 {
			switch {
			case n == 4:
				ip = netip.AddrFrom4([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)})
				if st, e, listed = s.lookupFast(ip); st == nameListed {
					return st, ip, e, listed
				}
			case s.x.hasBelow4(u, n) || below4(u, n, test4Yes):
				return nameENT, netip.Addr{}, Entry{}, false
			}
		}
	}
	// IPv6: 1..32 nibbles.
	if n > 32 {
		return nameNX, netip.Addr{}, Entry{}, false
	}
	var a [16]byte
	for i := 0; i < n; i++ {
		l := label(n - 1 - i)
		if len(l) != 1 {
			return nameNX, netip.Addr{}, Entry{}, false
		}
		var v byte
		switch c := lower(l[0]); {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		default:
			return nameNX, netip.Addr{}, Entry{}, false
		}
		if i%2 == 0 {
			a[i/2] = v << 4
		} else {
			a[i/2] |= v
		}
	}
	ip = netip.AddrFrom16(a)
	if n == 32 {
		if st, e, listed = s.lookupFast(ip); st == nameListed {
			return st, ip, e, listed
		}
		return nameNX, netip.Addr{}, Entry{}, false
	}
	p := netip.PrefixFrom(ip, 4*n)
	if s.x.hasBelow6(p) || p.Contains(test6Yes) {
		return nameENT, netip.Addr{}, Entry{}, false
	}
	return nameNX, netip.Addr{}, Entry{}, false
}

// lookupFast is lookup without the allocation of its *Entry.
func (s *Server) lookupFast(ip netip.Addr) (nameState, Entry, bool) {
	switch ip {
	case test4Yes, test6Yes:
		return nameListed, Entry{}, false
	case test4No, test6No:
		return nameNX, Entry{}, false
	}
	if e, ok := s.x.Get(ip); ok {
		return nameListed, e, true
	}
	return nameNX, Entry{}, false
}

// putRRHeader writes an answer's owner (a pointer to the question, as
// Pack compresses it), type, class IN and TTL, and returns where RDLENGTH
// goes.
func putRRHeader(out []byte, w int, rrtype uint16, ttl uint32) int {
	binary.BigEndian.PutUint16(out[w:], 0xC00C)
	binary.BigEndian.PutUint16(out[w+2:], rrtype)
	binary.BigEndian.PutUint16(out[w+4:], dns.ClassINET)
	binary.BigEndian.PutUint32(out[w+6:], ttl)
	return w + 10
}

// putA is aRR on the wire.
func (s *Server) putA(out []byte, w int, e Entry, listed bool) int {
	a := s.c.A
	if s.c.Graded && listed {
		a = dnsutil.GradedA(e.Corroboration)
	}
	w = putRRHeader(out, w, dns.TypeA, s.ttl)
	binary.BigEndian.PutUint16(out[w:], 4)
	b := a.As4()
	copy(out[w+2:], b[:])
	return w + 6
}

// putTXT is txtRR on the wire: the text cut to maxTXT, in strings of at
// most 255 bytes cut where dnsutil.SplitTXT cuts.
func (s *Server) putTXT(out []byte, w int, ip netip.Addr, e Entry, listed bool, sc *fastScratch) (int, bool) {
	text := sc.txt[:0]
	if listed {
		text = s.txt.appendRender(text, ip, &e)
	} else {
		text = append(text, testTXT...)
	}
	sc.txt = text
	text = text[:cutLen(text, maxTXT)]
	if w+12+len(text)+len(text)/dnsutil.MaxCharString+1 > len(out) {
		return 0, false
	}
	w = putRRHeader(out, w, dns.TypeTXT, s.ttl)
	rdlen := w
	w += 2
	for first := true; first || len(text) > 0; first = false {
		part := text
		if len(part) > dnsutil.MaxCharString {
			part = part[:cutLen(part, dnsutil.MaxCharString)]
		}
		out[w] = byte(len(part))
		w += 1 + copy(out[w+1:], part)
		text = text[len(part):]
	}
	binary.BigEndian.PutUint16(out[rdlen:], uint16(w-rdlen-2))
	return w, true
}

// cutLen is the length of dnsutil.CutText(s, n).
func cutLen(s []byte, n int) int {
	if len(s) <= n {
		return len(s)
	}
	for k := n; k > n-utf8.UTFMax && k > 0; k-- {
		if utf8.RuneStart(s[k]) {
			return k
		}
	}
	return n
}

// putSOA writes the SOA ServeDNS puts in authority for NXDOMAIN and NODATA.
func (s *Server) putSOA(out []byte, w int, sc *fastScratch) (int, bool) {
	fz := s.fast
	if w+len(fz.zone)+len(fz.ns)+len(fz.mbox)+10+20 > len(out) {
		return 0, false
	}
	w = putName(out, w, fz.zone, sc)
	binary.BigEndian.PutUint16(out[w:], dns.TypeSOA)
	binary.BigEndian.PutUint16(out[w+2:], dns.ClassINET)
	binary.BigEndian.PutUint32(out[w+4:], min(s.soaTTL, s.negTTL))
	rdlen := w + 8
	w += 10
	w = putName(out, w, fz.ns, sc)
	w = putName(out, w, fz.mbox, sc)
	for _, v := range [5]uint32{s.x.Serial(), soaRefresh, soaRetry, soaExpire, s.negTTL} {
		binary.BigEndian.PutUint32(out[w:], v)
		w += 4
	}
	binary.BigEndian.PutUint16(out[rdlen:], uint16(w-rdlen-2))
	return w, true
}

// putName writes a name as miekg/dns's packDomainName does with a
// compression map: label by label, a pointer to the first (longest)
// suffix written before, remembering each suffix it writes itself. Its
// map compares presentation forms, case included, which for safe labels
// is comparing wire forms.
func putName(out []byte, w int, name []byte, sc *fastScratch) int {
	for i := 0; name[i] != 0; i += 1 + int(name[i]) {
		suffix := name[i:]
		for _, c := range sc.comp[:sc.ncomp] {
			if string(c.key) == string(suffix) {
				binary.BigEndian.PutUint16(out[w:], 0xC000|uint16(c.off))
				return w + 2
			}
		}
		if w < 1<<14 && sc.ncomp < len(sc.comp) {
			sc.comp[sc.ncomp] = compEntry{key: suffix, off: w}
			sc.ncomp++
		}
		w += copy(out[w:], name[i:i+1+int(name[i])])
	}
	out[w] = 0
	return w + 1
}

// appendRender is render appending to dst, so the fast path can reuse
// its buffer.
func (t txtTemplate) appendRender(dst []byte, ip netip.Addr, e *Entry) []byte {
	for _, p := range t {
		switch p.field {
		case 0:
			dst = append(dst, p.lit...)
		case fieldIP:
			dst = ip.AppendTo(dst)
		case fieldOrigins:
			for i, o := range e.Origins {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = append(dst, o...)
			}
		case fieldHits:
			dst = strconv.AppendInt(dst, int64(e.Hits), 10)
		case fieldExpires:
			dst = e.Expires.UTC().AppendFormat(dst, time.RFC3339)
		case fieldFirstSeen:
			dst = e.FirstSeen.UTC().AppendFormat(dst, time.RFC3339)
		}
	}
	return dst
}
