package dnsbl

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dst-traps/dst/internal/dnsutil"
)

const zone = "bl.example."

var (
	t0    = time.Date(2026, 11, 28, 10, 10, 10, 0, time.UTC)
	entry = Entry{Expires: t0.Add(48 * time.Hour), FirstSeen: t0, Hits: 3, Origins: []string{"site-a.example", "site-b.example"}}
)

func newTestServer(t testing.TB) (*Server, *Index) {
	t.Helper()
	x := NewIndex()
	s, err := New(Config{
		Zone: "BL.example", TTL: 10 * time.Minute, NegativeTTL: 90 * time.Second,
		AllowTransfer: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	}, x)
	if err != nil {
		t.Fatal(err)
	}
	x.Set(netip.MustParseAddr("1.2.3.4"), entry)
	x.Set(netip.MustParseAddr("2001:db8::1"), entry)
	return s, x
}

func query(s *Server, tcp bool, name string, qt uint16, edns bool) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qt)
	if edns {
		m.SetEdns0(4096, false)
	}
	w := newRecorder(tcp)
	s.ServeDNS(w, m)
	if len(w.msgs) != 1 {
		return nil
	}
	return w.msgs[0]
}

func TestAnswers(t *testing.T) {
	s, _ := newTestServer(t)
	v6 := s.reverseName(netip.MustParseAddr("2001:db8::1"))
	tests := []struct {
		name   string
		qt     uint16
		rcode  int
		answer []uint16 // types in the answer section
		soaNS  bool     // SOA in authority
	}{
		{"4.3.2.1." + zone, dns.TypeA, dns.RcodeSuccess, []uint16{dns.TypeA}, false},
		{"4.3.2.1.BL.Example.", dns.TypeTXT, dns.RcodeSuccess, []uint16{dns.TypeTXT}, false},
		{"4.3.2.1." + zone, dns.TypeANY, dns.RcodeSuccess, []uint16{dns.TypeA, dns.TypeTXT}, false},
		{"4.3.2.1." + zone, dns.TypeMX, dns.RcodeSuccess, nil, true},
		{"5.3.2.1." + zone, dns.TypeA, dns.RcodeNameError, nil, true},
		{"2.0.0.127." + zone, dns.TypeA, dns.RcodeSuccess, []uint16{dns.TypeA}, false},
		{"2.0.0.127." + zone, dns.TypeTXT, dns.RcodeSuccess, []uint16{dns.TypeTXT}, false},
		{"1.0.0.127." + zone, dns.TypeA, dns.RcodeNameError, nil, true},
		{s.reverseName(test6Yes), dns.TypeA, dns.RcodeSuccess, []uint16{dns.TypeA}, false},
		{s.reverseName(test6No), dns.TypeA, dns.RcodeNameError, nil, true},
		{v6, dns.TypeA, dns.RcodeSuccess, []uint16{dns.TypeA}, false},
		{strings.ToUpper(v6), dns.TypeTXT, dns.RcodeSuccess, []uint16{dns.TypeTXT}, false},
		{"3.2.1." + zone, dns.TypeA, dns.RcodeSuccess, nil, true},   // ENT, RFC 8020
		{"2.1." + zone, dns.TypeA, dns.RcodeSuccess, nil, true},     // ENT
		{"127." + zone, dns.TypeA, dns.RcodeSuccess, nil, true},     // ENT of the test point
		{"3.2.9." + zone, dns.TypeA, dns.RcodeNameError, nil, true}, // nothing below
		{"8.b.d.0.1.0.0.2." + zone, dns.TypeA, dns.RcodeSuccess, nil, true},
		{"9.b.d.0.1.0.0.2." + zone, dns.TypeA, dns.RcodeNameError, nil, true},
		{"x.3.2.1." + zone, dns.TypeA, dns.RcodeNameError, nil, true},
		{"256.3.2.1." + zone, dns.TypeA, dns.RcodeNameError, nil, true},
		{"04.3.2.1." + zone, dns.TypeA, dns.RcodeNameError, nil, true},
		{"5.4.3.2.1." + zone, dns.TypeA, dns.RcodeNameError, nil, true},
		{"g" + v6[1:], dns.TypeA, dns.RcodeNameError, nil, true},
		{"ns." + zone, dns.TypeA, dns.RcodeNameError, nil, true},
		{zone, dns.TypeSOA, dns.RcodeSuccess, []uint16{dns.TypeSOA}, false},
		{zone, dns.TypeNS, dns.RcodeSuccess, []uint16{dns.TypeNS}, false},
		{zone, dns.TypeANY, dns.RcodeSuccess, []uint16{dns.TypeSOA, dns.TypeNS}, false},
		{zone, dns.TypeA, dns.RcodeSuccess, nil, true},
		{"example.", dns.TypeA, dns.RcodeRefused, nil, false},
		{"4.3.2.1.other.example.", dns.TypeA, dns.RcodeRefused, nil, false},
		{"xbl.example.", dns.TypeA, dns.RcodeRefused, nil, false},
		{zone, dns.TypeAXFR, dns.RcodeRefused, nil, false}, // UDP
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%s", tc.name, dns.TypeToString[tc.qt]), func(t *testing.T) {
			r := query(s, false, tc.name, tc.qt, true)
			if r == nil {
				t.Fatal("no single reply")
			}
			if r.Rcode != tc.rcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
			}
			if r.RecursionAvailable {
				t.Error("RA set")
			}
			if auth := tc.rcode != dns.RcodeRefused; r.Authoritative != auth {
				t.Errorf("AA=%v want %v", r.Authoritative, auth)
			}
			if r.IsEdns0() == nil {
				t.Error("EDNS0 not echoed")
			}
			var got []uint16
			for _, rr := range r.Answer {
				got = append(got, rr.Header().Rrtype)
				if rr.Header().Name != tc.name {
					t.Errorf("owner %q, want question case %q", rr.Header().Name, tc.name)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.answer) {
				t.Errorf("answer types %v, want %v", got, tc.answer)
			}
			hasSOA := len(r.Ns) == 1 && r.Ns[0].Header().Rrtype == dns.TypeSOA
			if hasSOA != tc.soaNS {
				t.Errorf("authority %v, want SOA=%v", r.Ns, tc.soaNS)
			}
			if hasSOA && r.Ns[0].Header().Ttl != 90 {
				t.Errorf("negative TTL %d, want 90 (RFC 2308)", r.Ns[0].Header().Ttl)
			}
		})
	}
}

func TestRecordContents(t *testing.T) {
	s, x := newTestServer(t)
	r := query(s, false, "4.3.2.1."+zone, dns.TypeANY, false)
	a := r.Answer[0].(*dns.A)
	if a.A.String() != "127.0.0.2" || a.Hdr.Ttl != 600 {
		t.Errorf("A = %v", a)
	}
	txt := strings.Join(r.Answer[1].(*dns.TXT).Txt, "")
	for _, want := range []string{"3 trap hit", "site-a.example,site-b.example", "2026-11-30T10:10:10Z", "2026-11-28T10:10:10Z"} {
		if !strings.Contains(txt, want) {
			t.Errorf("TXT %q lacks %q", txt, want)
		}
	}
	if r := query(s, false, "2.0.0.127."+zone, dns.TypeTXT, false); r.Answer[0].(*dns.TXT).Txt[0] != "test point" {
		t.Errorf("test point TXT %v", r.Answer)
	}
	// Long TXT is split into 255-octet strings; odd bytes survive.
	long := Entry{Origins: []string{strings.Repeat("o", 600), `back\slash"quote`}}
	x.Set(netip.MustParseAddr("10.0.0.1"), long)
	r = query(s, true, "1.0.0.10."+zone, dns.TypeTXT, false)
	tx := r.Answer[0].(*dns.TXT).Txt
	if len(tx) < 3 {
		t.Fatalf("TXT not split: %d strings", len(tx))
	}
	b, _ := r.Pack()
	if !strings.Contains(string(b), `back\slash"quote`) {
		t.Error("escaping lost bytes")
	}
	soa := query(s, false, zone, dns.TypeSOA, false).Answer[0].(*dns.SOA)
	if soa.Serial != x.Serial() || soa.Minttl != 90 || soa.Ns != "ns."+zone || soa.Mbox != "hostmaster."+zone {
		t.Errorf("SOA %v", soa)
	}
}

func TestHeaderCases(t *testing.T) {
	s, _ := newTestServer(t)
	send := func(m *dns.Msg) *dns.Msg {
		w := newRecorder(false)
		s.ServeDNS(w, m)
		if len(w.msgs) > 1 {
			t.Fatal("more than one reply")
		}
		if len(w.msgs) == 0 {
			return nil
		}
		return w.msgs[0]
	}
	m := new(dns.Msg)
	m.SetQuestion("4.3.2.1."+zone, dns.TypeA)
	m.Opcode = dns.OpcodeStatus
	if r := send(m); r.Rcode != dns.RcodeNotImplemented {
		t.Errorf("STATUS: %s", dns.RcodeToString[r.Rcode])
	}
	m = new(dns.Msg)
	m.SetQuestion("4.3.2.1."+zone, dns.TypeA)
	m.Question = append(m.Question, m.Question[0])
	if r := send(m); r.Rcode != dns.RcodeFormatError {
		t.Errorf("2 questions: %s", dns.RcodeToString[r.Rcode])
	}
	m = new(dns.Msg)
	m.Id = 7
	if r := send(m); r.Rcode != dns.RcodeFormatError || r.Id != 7 {
		t.Errorf("0 questions: %v", r)
	}
	m = new(dns.Msg)
	m.SetQuestion("4.3.2.1."+zone, dns.TypeA)
	m.Response = true
	if r := send(m); r != nil {
		t.Error("answered a response")
	}
	m = new(dns.Msg)
	m.SetQuestion("4.3.2.1."+zone, dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().SetVersion(1)
	if r := send(m); r.Rcode != dns.RcodeBadVers {
		t.Errorf("EDNS version 1: %s", dns.RcodeToString[r.Rcode])
	}
	m = new(dns.Msg)
	m.SetNotify(zone)
	if r := send(m); r.Rcode != dns.RcodeSuccess || !r.Authoritative || r.Opcode != dns.OpcodeNotify {
		t.Errorf("NOTIFY ack: %v", r)
	}
	m = new(dns.Msg)
	m.SetQuestion("4.3.2.1."+zone, dns.TypeA)
	m.Question[0].Qclass = dns.ClassCHAOS
	if r := send(m); r.Rcode != dns.RcodeRefused {
		t.Errorf("CH: %s", dns.RcodeToString[r.Rcode])
	}
}

func TestTruncation(t *testing.T) {
	s, x := newTestServer(t)
	x.Set(netip.MustParseAddr("10.0.0.1"), Entry{Origins: []string{strings.Repeat("o", 900)}})
	if r := query(s, false, "1.0.0.10."+zone, dns.TypeANY, false); !r.Truncated || len(r.Answer) == 2 {
		t.Errorf("512-byte UDP: TC=%v answers=%d", r.Truncated, len(r.Answer))
	}
	if r := query(s, false, "1.0.0.10."+zone, dns.TypeANY, true); r.Truncated || len(r.Answer) != 2 {
		t.Errorf("EDNS UDP: TC=%v answers=%d", r.Truncated, len(r.Answer))
	}
	if r := query(s, true, "1.0.0.10."+zone, dns.TypeANY, false); r.Truncated || len(r.Answer) != 2 {
		t.Errorf("TCP: TC=%v answers=%d", r.Truncated, len(r.Answer))
	}
}

// TestTruncationEscapedTXT: a TXT of about 1,000 bytes of quotes and
// non-ASCII fits a 1232-byte EDNS buffer on the wire, though its
// presentation form (\" and \DDD, as miekg/dns holds it) is three times
// as long; sizing the answer by that form truncated it to nothing.
func TestTruncationEscapedTXT(t *testing.T) {
	s, x := newTestServer(t)
	ip := netip.MustParseAddr("10.0.0.1")
	e := Entry{Expires: t0, FirstSeen: t0, Hits: 1, Origins: []string{strings.Repeat(`"é"`, 250)}}
	x.Set(ip, e)
	want := dnsutil.CutText(s.txt.render(ip, &e), maxTXT)
	if len(want) < 990 {
		t.Fatalf("test text only %d bytes", len(want))
	}
	ask := func(tcp bool, qt uint16, edns uint16) (*dns.Msg, int) {
		m := new(dns.Msg)
		m.SetQuestion("1.0.0.10."+zone, qt)
		if edns > 0 {
			m.SetEdns0(edns, false)
		}
		w := newRecorder(tcp)
		s.ServeDNS(w, m)
		if len(w.msgs) != 1 {
			t.Fatalf("%d replies", len(w.msgs))
		}
		return w.msgs[0], w.sizes[0]
	}
	for _, qt := range []uint16{dns.TypeTXT, dns.TypeANY} {
		name := dns.TypeToString[qt]
		r, size := ask(false, qt, 1232)
		if r.Truncated || size > 1232 {
			t.Errorf("%s, EDNS 1232: TC=%v, %d bytes", name, r.Truncated, size)
		}
		var got string
		for _, rr := range r.Answer {
			if txt, ok := rr.(*dns.TXT); ok {
				got = dnsutil.TXTText(txt.Txt)
			}
		}
		if got != want {
			t.Errorf("%s, EDNS 1232: TXT %q (%d answers), want the %d bytes", name, got, len(r.Answer), len(want))
		}
		// Without EDNS the answer does not fit 512 bytes: TC, so the
		// client asks again over TCP, and nothing over the limit.
		r, size = ask(false, qt, 0)
		if !r.Truncated || size > dns.MinMsgSize {
			t.Errorf("%s, no EDNS: TC=%v, %d bytes", name, r.Truncated, size)
		}
		r, _ = ask(true, qt, 0)
		if r.Truncated || len(r.Answer) == 0 || dnsutil.TXTText(r.Answer[len(r.Answer)-1].(*dns.TXT).Txt) != want {
			t.Errorf("%s over TCP: TC=%v answers %v", name, r.Truncated, r.Answer)
		}
	}
}

func TestNew(t *testing.T) {
	x := NewIndex()
	for _, c := range []Config{
		{},
		{Zone: "bl.example", A: netip.MustParseAddr("10.0.0.1")},
		{Zone: "bl.example", Notify: []string{"no-port"}},
		{Zone: "bl.example", TTL: time.Millisecond},
		{Zone: "bad..zone"},
	} {
		if _, err := New(c, x); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
	if _, err := New(Config{Zone: "bl.example"}, nil); err == nil {
		t.Error("nil index accepted")
	}
}

func TestSerial(t *testing.T) {
	before := uint32(time.Now().Unix())
	x := NewIndex()
	s := x.Serial()
	if s < before {
		t.Fatalf("serial %d before creation time %d", s, before)
	}
	ip := netip.MustParseAddr("192.0.2.1")
	x.Set(ip, entry)
	x.Set(ip, entry)
	x.Remove(ip)
	x.Remove(ip) // absent: no change
	if got := x.Serial(); got != s+3 {
		t.Errorf("serial %d, want %d", got, s+3)
	}
	if x.Len() != 0 {
		t.Errorf("Len %d", x.Len())
	}
	// RFC 1982 wrap: the journal still answers across 2^32.
	x.mu.Lock()
	x.serial = 1<<32 - 1
	x.journal = nil
	x.jstart = 0
	x.mu.Unlock()
	from := x.Serial()
	x.Set(ip, entry)
	x.Set(ip, entry)
	cur, cs, ok := x.changesSince(from)
	if !ok || cur != 1 || len(cs) != 2 {
		t.Errorf("wrap: cur=%d changes=%d ok=%v", cur, len(cs), ok)
	}
}

func TestConcurrent(t *testing.T) {
	s, x := newTestServer(t)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("%d.%d.0.10.%s", i%50, g, zone)
				if r := query(s, false, name, dns.TypeANY, false); r == nil {
					t.Error("no reply")
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // transfers during updates
		defer wg.Done()
		for range 5 {
			m := new(dns.Msg)
			m.SetAxfr(zone)
			s.ServeDNS(newRecorder(true), m)
		}
	}()
	for i := range 2000 {
		ip := netip.AddrFrom4([4]byte{10, 0, byte(i % 8), byte(i % 50)})
		if i%3 == 0 {
			x.Remove(ip)
		} else {
			x.Set(ip, entry)
		}
	}
	close(stop)
	wg.Wait()
}
