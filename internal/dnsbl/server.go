package dnsbl

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dst-traps/dst/internal/dnsutil"
)

// Config describes the served zone.
type Config struct {
	Zone string
	// A is the address returned for listed names, RFC 5782 §2.1 (127.0.0.2
	// when zero).
	A netip.Addr
	// Graded makes the A record say how many independent reporters stand
	// behind a listing (Entry.Corroboration): 127.0.0.2 for one, up to
	// 127.0.0.9 for eight or more (dnsutil.GradedA), so that MTAs can
	// weight the answers. A must then be 127.0.0.2 (or zero). The test
	// points do not change: 127.0.0.2 answers 127.0.0.2.
	Graded bool
	// TXT is a template with {ip} {origins} {hits} {expires} {first_seen}.
	TXT              string
	TTL, NegativeTTL time.Duration
	NS               []string // default ns.<zone>
	Mbox             string   // default hostmaster.<zone>
	AllowTransfer    []netip.Prefix
	// TransferKey, when set, is the TSIG key (RFC 8945) a transfer must be
	// signed with; AllowTransfer, if not empty, then also restricts the
	// addresses. Transfers and NOTIFY are signed with it.
	TransferKey *TSIGKey
	Notify      []string // host:port of secondaries
	Log         *slog.Logger
	// Queries, if set, counts the answers by qtype, rcode and proto
	// (dst_dns_queries_total); New resolves every child once.
	Queries *prometheus.CounterVec
}

// TSIGKey is a TSIG key as BIND's key statement has it.
type TSIGKey struct {
	Name      string // e.g. "dst-xfr"
	Algorithm string // hmac-sha256 (default), hmac-sha1, -sha224, -sha384, -sha512
	Secret    string // base64
}

// canonical returns the key's name and algorithm as TSIG records carry
// them, or an error a sysadmin can act on.
func (k *TSIGKey) canonical() (name, alg string, err error) {
	if _, ok := dns.IsDomainName(k.Name); !ok || k.Name == "" {
		return "", "", fmt.Errorf("TSIG key name %q is not a domain name", k.Name)
	}
	alg, err = dnsutil.TSIGAlgorithm(k.Algorithm)
	if err != nil {
		return "", "", err
	}
	if _, err := base64.StdEncoding.DecodeString(k.Secret); err != nil || k.Secret == "" {
		return "", "", fmt.Errorf("TSIG secret of key %s is not base64 (as tsig-keygen prints it)", k.Name)
	}
	return dns.CanonicalName(k.Name), alg, nil
}

const (
	defaultTXT = "Listed by DST: {hits} trap hit(s) reported by {origins} since {first_seen}, until {expires}"
	defaultTTL = 5 * time.Minute
	// maxTXT caps the filled template so that A+TXT fit a 1232-byte EDNS
	// buffer (the DNS flag day 2020 size) without truncation.
	maxTXT = 1000
	// udpSizeOurs is the EDNS buffer size we advertise (DNS flag day 2020).
	udpSizeOurs = 1232
	// SOA timers. Refresh/retry are short because NOTIFY is best-effort;
	// expire is short for a zone (2 days) because stale blocklist data
	// keeps listing addresses whose listing has expired.
	soaRefresh = 900
	soaRetry   = 300
	soaExpire  = 172800
)

// RFC 5782 §5 test points.
var (
	test4Yes = netip.AddrFrom4([4]byte{127, 0, 0, 2})
	test4No  = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	test6Yes = netip.MustParseAddr("::ffff:7f00:2")
	test6No  = netip.MustParseAddr("::ffff:7f00:1")
)

const testTXT = "test point"

// Server is an authoritative server for the blocklist zone.
type Server struct {
	c      Config
	x      *Index
	zone   string // lower-case FQDN
	log    *slog.Logger
	ttl    uint32
	negTTL uint32
	soaTTL uint32
	txt    txtTemplate // c.TXT, parsed
	// tsigName and tsigAlg are c.TransferKey's, canonical; "" without.
	tsigName, tsigAlg string
	// onListen, if set (tests), receives the bound addresses.
	onListen func([]net.Addr)
	queries  *queryCounters // nil: not counted
	// fast is the fast path's view of the zone (fast.go); nil: every UDP
	// query takes the slow path.
	fast *fastZone
	// udpSockets is how many sockets serve each UDP address (udp_linux.go);
	// 0: GOMAXPROCS-1, at least one.
	udpSockets int
}

// New validates c and returns a server for the listings in x.
func New(c Config, x *Index) (*Server, error) {
	if x == nil {
		return nil, errors.New("dnsbl: nil index")
	}
	if c.Zone == "" {
		return nil, errors.New("dnsbl: empty zone")
	}
	zone := strings.ToLower(dns.Fqdn(c.Zone))
	if _, ok := dns.IsDomainName(zone); !ok || zone == "." {
		return nil, fmt.Errorf("dnsbl: invalid zone %q", c.Zone)
	}
	c.Zone = zone
	if !c.A.IsValid() {
		c.A = test4Yes
	}
	// RFC 5782 §2.1: values are in 127.0.0.0/8 so they can never be
	// mistaken for a real address by a client.
	if !c.A.Is4() || c.A.As4()[0] != 127 {
		return nil, fmt.Errorf("dnsbl: A %v must be in 127.0.0.0/8 (RFC 5782 §2.1)", c.A)
	}
	if c.Graded && c.A != test4Yes {
		return nil, fmt.Errorf("dnsbl: graded answers are 127.0.0.2 to 127.0.0.9; A %v cannot be used with them (leave dns.a at 127.0.0.2)", c.A)
	}
	if c.TXT == "" {
		c.TXT = defaultTXT
	}
	if c.TTL == 0 {
		c.TTL = defaultTTL
	}
	if c.NegativeTTL == 0 {
		c.NegativeTTL = defaultTTL
	}
	for _, d := range []time.Duration{c.TTL, c.NegativeTTL} {
		// RFC 2181 §8: TTLs are 31-bit.
		if d < time.Second || d > (1<<31-1)*time.Second {
			return nil, fmt.Errorf("dnsbl: TTL %v out of range", d)
		}
	}
	// Own the slice: canonicalising in place would edit the caller's.
	c.NS = slices.Clone(c.NS)
	if len(c.NS) == 0 {
		c.NS = []string{"ns." + zone}
	}
	for i, n := range c.NS {
		n = strings.ToLower(dns.Fqdn(n))
		if _, ok := dns.IsDomainName(n); !ok {
			return nil, fmt.Errorf("dnsbl: invalid NS %q", c.NS[i])
		}
		c.NS[i] = n
	}
	if c.Mbox == "" {
		c.Mbox = "hostmaster." + zone
	}
	c.Mbox = dns.Fqdn(c.Mbox)
	if _, ok := dns.IsDomainName(c.Mbox); !ok {
		return nil, fmt.Errorf("dnsbl: invalid Mbox %q", c.Mbox)
	}
	for _, a := range c.Notify {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("dnsbl: notify target %q: %w", a, err)
		}
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{c: c, x: x, zone: zone, log: c.Log, txt: parseTXT(c.TXT),
		ttl: uint32(c.TTL / time.Second), negTTL: uint32(c.NegativeTTL / time.Second), queries: newQueryCounters(c.Queries)}
	if c.TransferKey != nil {
		var err error
		if s.tsigName, s.tsigAlg, err = c.TransferKey.canonical(); err != nil {
			return nil, fmt.Errorf("dnsbl: transfer key: %w", err)
		}
	}
	// RFC 2308 §5: a negative answer is cached for min(SOA TTL, MINIMUM).
	// MINIMUM is NegativeTTL and the SOA's own TTL is never below it.
	s.soaTTL = max(s.ttl, s.negTTL)
	s.fast = newFastZone(zone, c.NS[0], c.Mbox)
	return s, nil
}

func (s *Server) soa(name string, serial, ttl uint32) *dns.SOA {
	return &dns.SOA{
		Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
		Ns:  s.c.NS[0], Mbox: s.c.Mbox, Serial: serial,
		Refresh: soaRefresh, Retry: soaRetry, Expire: soaExpire, Minttl: s.negTTL,
	}
}

func (s *Server) nsRRs(name string) []dns.RR {
	var rrs []dns.RR
	for _, n := range s.c.NS {
		rrs = append(rrs, &dns.NS{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: s.soaTTL}, Ns: n})
	}
	return rrs
}

// listingRRs returns the A and TXT records for one listed name.
func (s *Server) listingRRs(name string, ip netip.Addr, e *Entry) (a, txt dns.RR) {
	return s.aRR(name, e), s.txtRR(name, ip, e)
}

// aRR is the A record of a listed name; e is its entry (nil: a test point,
// which always answers A).
func (s *Server) aRR(name string, e *Entry) dns.RR {
	a := s.c.A
	if s.c.Graded && e != nil {
		a = dnsutil.GradedA(e.Corroboration)
	}
	return &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: s.ttl}, A: a.AsSlice()}
}

// txtRR fills the template for e (nil: a test point).
func (s *Server) txtRR(name string, ip netip.Addr, e *Entry) dns.RR {
	text := testTXT
	if e != nil {
		text = s.txt.render(ip, e)
	}
	text = dnsutil.CutText(text, maxTXT)
	return &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: s.ttl}, Txt: dnsutil.TXT(text)}
}

// reverseName returns the RFC 5782 §2.1/§2.4 query name of ip in the zone.
func (s *Server) reverseName(ip netip.Addr) string { return dnsutil.ReverseName(ip, s.zone) }

// nameState is what a name under the zone is.
type nameState int

const (
	nameNX     nameState = iota // nothing at or below: NXDOMAIN
	nameENT                     // empty non-terminal: NODATA, RFC 8020
	nameListed                  // A+TXT
	nameApex                    // SOA+NS
)

// classify decides what lname (lower-case, inside the zone) is. For a listed
// name it returns the address and the entry (nil for a test point).
func (s *Server) classify(lname string) (nameState, netip.Addr, *Entry) {
	if lname == s.zone {
		return nameApex, netip.Addr{}, nil
	}
	labels := dns.SplitDomainName(lname[:len(lname)-len(s.zone)])
	n := len(labels)
	// A name can be an IPv4 address and an IPv6 nibble prefix at once
	// (e.g. 4.3.2.1), so both readings are tried.
	if v4, ok := parse4(labels); ok {
		switch {
		case n == 4:
			ip := netip.AddrFrom4([4]byte{byte(v4 >> 24), byte(v4 >> 16), byte(v4 >> 8), byte(v4)})
			if st, e := s.lookup(ip); st == nameListed {
				return st, ip, e
			}
		case n < 4:
			if s.x.hasBelow4(v4, n) || below4(v4, n, test4Yes) {
				return nameENT, netip.Addr{}, nil
			}
		}
	}
	if ip, bits, ok := parse6(labels); ok {
		if n == 32 {
			if st, e := s.lookup(ip); st == nameListed {
				return st, ip, e
			}
			return nameNX, netip.Addr{}, nil
		}
		p := netip.PrefixFrom(ip, bits)
		if s.x.hasBelow6(p) || p.Contains(test6Yes) {
			return nameENT, netip.Addr{}, nil
		}
	}
	return nameNX, netip.Addr{}, nil
}

// below4 reports whether ip is under the n-octet prefix u.
func below4(u uint32, n int, ip netip.Addr) bool {
	a := ip.As4()
	ipu := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	return ipu>>(32-8*n) == u
}

// lookup applies the RFC 5782 §5 test points before the index: 127.0.0.2
// and ::FFFF:7F00:2 are always listed, 127.0.0.1 and ::FFFF:7F00:1 never.
func (s *Server) lookup(ip netip.Addr) (nameState, *Entry) {
	switch ip {
	case test4Yes, test6Yes:
		return nameListed, nil
	case test4No, test6No:
		return nameNX, nil
	}
	if e, ok := s.x.Get(ip); ok {
		return nameListed, &e
	}
	return nameNX, nil
}

// parse4 reads 1..4 reversed decimal octets into a big-endian integer of
// len(labels) octets. Leading zeros are refused so each address has exactly
// one name (the one AXFR publishes).
func parse4(labels []string) (uint32, bool) {
	if len(labels) == 0 || len(labels) > 4 {
		return 0, false
	}
	var u uint32
	for i := len(labels) - 1; i >= 0; i-- {
		l := labels[i]
		if l == "" || len(l) > 3 || (len(l) > 1 && l[0] == '0') {
			return 0, false
		}
		v, err := strconv.Atoi(l)
		if err != nil || v > 255 || l[0] == '+' || l[0] == '-' {
			return 0, false
		}
		u = u<<8 | uint32(v)
	}
	return u, true
}

// parse6 reads 1..32 reversed nibbles (RFC 5782 §2.4, RFC 3596 §2.5 order)
// and returns the address they start and the prefix length in bits.
func parse6(labels []string) (netip.Addr, int, bool) {
	if len(labels) == 0 || len(labels) > 32 {
		return netip.Addr{}, 0, false
	}
	var a [16]byte
	for i := 0; i < len(labels); i++ {
		l := labels[len(labels)-1-i]
		if len(l) != 1 {
			return netip.Addr{}, 0, false
		}
		var v byte
		switch c := l[0]; {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		default:
			return netip.Addr{}, 0, false
		}
		if i%2 == 0 {
			a[i/2] = v << 4
		} else {
			a[i/2] |= v
		}
	}
	return netip.AddrFrom16(a), 4 * len(labels), true
}

// ServeDNS answers one query; it implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	// Never answer a response: two servers would bounce packets forever.
	if r == nil || r.Response {
		return
	}
	m := new(dns.Msg)
	m.Id = r.Id
	m.Response = true
	m.Opcode = r.Opcode
	m.RecursionDesired = r.RecursionDesired // RFC 1035 §4.1.1: copied; RA stays 0
	m.CheckingDisabled = r.CheckingDisabled
	if r.Opcode != dns.OpcodeQuery && r.Opcode != dns.OpcodeNotify {
		m.Rcode = dns.RcodeNotImplemented // RFC 1035 §4.1.1
		s.reply(w, r, m)
		return
	}
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError // RFC 9619: QDCOUNT must be 1
		s.reply(w, r, m)
		return
	}
	m.Question = []dns.Question{r.Question[0]}
	q := r.Question[0]
	nopt := 0
	for _, rr := range r.Extra {
		if _, ok := rr.(*dns.OPT); ok {
			nopt++
		}
	}
	if nopt > 1 {
		m.Rcode = dns.RcodeFormatError // RFC 6891 §6.1.1
		s.reply(w, r, m)
		return
	}
	if opt := r.IsEdns0(); opt != nil && opt.Version() != 0 {
		m.Rcode = dns.RcodeBadVers // RFC 6891 §6.1.3
		s.reply(w, r, m)
		return
	}
	lname := strings.ToLower(q.Name)
	if _, ok := dns.IsDomainName(lname); !ok || !dns.IsSubDomain(s.zone, lname) ||
		(q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY) {
		// Not ours: refuse rather than recurse (never an open resolver).
		m.Rcode = dns.RcodeRefused
		s.reply(w, r, m)
		return
	}
	if r.Opcode == dns.OpcodeNotify {
		// We are the primary; a NOTIFY for our zone needs no action, but
		// RFC 1996 §4.7 wants it acknowledged.
		m.Authoritative = true
		s.reply(w, r, m)
		return
	}
	switch q.Qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		s.transfer(w, r, m, lname)
		return
	}
	m.Authoritative = true
	m.Compress = true
	st, ip, e := s.classify(lname)
	switch st {
	case nameApex:
		switch q.Qtype {
		case dns.TypeSOA:
			m.Answer = append(m.Answer, s.soa(q.Name, s.x.Serial(), s.soaTTL))
		case dns.TypeNS:
			m.Answer = s.nsRRs(q.Name)
		case dns.TypeANY:
			m.Answer = append([]dns.RR{s.soa(q.Name, s.x.Serial(), s.soaTTL)}, s.nsRRs(q.Name)...)
		}
	case nameListed:
		switch q.Qtype {
		case dns.TypeA:
			m.Answer = []dns.RR{s.aRR(q.Name, e)}
		case dns.TypeTXT:
			m.Answer = []dns.RR{s.txtRR(q.Name, ip, e)}
		case dns.TypeANY:
			m.Answer = []dns.RR{s.aRR(q.Name, e), s.txtRR(q.Name, ip, e)}
		}
	case nameNX:
		m.Rcode = dns.RcodeNameError
	}
	if len(m.Answer) == 0 {
		// NXDOMAIN or NODATA: SOA in authority, RFC 2308 §3 and §5, with
		// TTL min(SOA TTL, MINIMUM).
		m.Ns = []dns.RR{s.soa(s.zone, s.x.Serial(), min(s.soaTTL, s.negTTL))}
	}
	s.reply(w, r, m)
}

// isUDP tells whether the reply goes over UDP (and so may need TC).
func isUDP(w dns.ResponseWriter) bool {
	_, ok := w.RemoteAddr().(*net.UDPAddr)
	return ok
}

// reply adds EDNS, truncates for UDP and writes m.
func (s *Server) reply(w dns.ResponseWriter, r *dns.Msg, m *dns.Msg) {
	size := dns.MinMsgSize
	if opt := r.IsEdns0(); opt != nil {
		// RFC 6891 §7: answer EDNS with EDNS.
		m.SetEdns0(udpSizeOurs, false)
		size = max(int(opt.UDPSize()), dns.MinMsgSize)
		size = min(size, udpSizeOurs)
	}
	if isUDP(w) {
		truncate(m, size)
	}
	s.signReply(w, r, m)
	s.countReply(w, r, m)
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("dnsbl: write reply", "remote", w.RemoteAddr(), "err", err)
	}
}

// truncate drops records from the end of m until it packs into size
// bytes, and then sets TC (RFC 1035 §4.2.1, RFC 6891 §7) so that the
// client asks again over TCP. miekg/dns's Msg.Truncate sizes a TXT record
// by its presentation form, in which a quote takes two bytes and a
// non-ASCII byte four (\DDD): a 1,000-byte TXT of such text came out
// empty with TC even in a 1232-byte EDNS buffer it fits. Msg.Len has the
// same flaw, but it only ever overestimates, so a message it finds small
// enough is, and only larger ones are packed to measure.
func truncate(m *dns.Msg, size int) {
	fits := func() bool {
		if m.Len() <= size {
			return true
		}
		b, err := m.Pack()
		return err == nil && len(b) <= size
	}
	if fits() {
		return
	}
	m.Truncated = true
	// The OPT record stays: RFC 6891 §7 wants EDNS answered with EDNS,
	// truncated or not. (TSIG is added after this.)
	m.Extra = slices.DeleteFunc(m.Extra, func(rr dns.RR) bool { return rr.Header().Rrtype != dns.TypeOPT })
	for _, sec := range []*[]dns.RR{&m.Ns, &m.Answer} {
		for len(*sec) > 0 && !fits() {
			*sec = (*sec)[:len(*sec)-1]
		}
	}
}

// ListenAndServe serves UDP and TCP on each address until ctx ends. Binding
// happens before serving starts, so a bind error returns at once.
func (s *Server) ListenAndServe(ctx context.Context, addrs []string) error {
	var (
		pcs []net.PacketConn
		ls  []net.Listener
	)
	closeAll := func() {
		for _, pc := range pcs {
			pc.Close()
		}
		for _, l := range ls {
			l.Close()
		}
	}
	var lc net.ListenConfig
	for _, a := range addrs {
		pc, err := lc.ListenPacket(ctx, "udp", a)
		if err != nil {
			closeAll()
			return fmt.Errorf("dnsbl: listen udp %s: %w", a, err)
		}
		pcs = append(pcs, pc)
		// Use the UDP port for TCP so ":0" yields one port for both.
		ln, err := lc.Listen(ctx, "tcp", pc.LocalAddr().String())
		if err != nil {
			closeAll()
			return fmt.Errorf("dnsbl: listen tcp %s: %w", a, err)
		}
		ls = append(ls, ln)
	}
	if s.onListen != nil {
		var bound []net.Addr
		for _, pc := range pcs {
			bound = append(bound, pc.LocalAddr())
		}
		s.onListen(bound)
	}
	return s.Serve(ctx, pcs, ls)
}
