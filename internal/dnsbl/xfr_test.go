package dnsbl

import (
	"net"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// records flattens the answer sections of a transfer.
func records(msgs []*dns.Msg) []dns.RR {
	var rrs []dns.RR
	for _, m := range msgs {
		rrs = append(rrs, m.Answer...)
	}
	return rrs
}

func TestAXFR(t *testing.T) {
	s, x := newTestServer(t)
	for i := range 3000 {
		x.Set(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), entry)
	}
	x.Set(test4Yes, entry) // must not duplicate the fixed test point
	x.Set(test4No, entry)  // must never be published
	m := new(dns.Msg)
	m.SetAxfr(zone)
	w := newRecorder(true)
	s.ServeDNS(w, m)
	if len(w.msgs) < 2 {
		t.Fatalf("%d envelopes, want several", len(w.msgs))
	}
	rrs := records(w.msgs)
	first, last := rrs[0].(*dns.SOA), rrs[len(rrs)-1].(*dns.SOA)
	if first.Serial != x.Serial() || last.Serial != first.Serial {
		t.Errorf("SOA serials %d %d", first.Serial, last.Serial)
	}
	counts := map[uint16]int{}
	names := map[string]int{}
	for _, rr := range rrs {
		counts[rr.Header().Rrtype]++
		if rr.Header().Rrtype == dns.TypeA {
			names[rr.Header().Name]++
		}
		if !dns.IsSubDomain(zone, rr.Header().Name) {
			t.Errorf("record outside zone: %v", rr)
		}
	}
	// 3000 + 1.2.3.4 + 2001:db8::1 + 2 test points.
	if counts[dns.TypeA] != 3004 || counts[dns.TypeTXT] != 3004 || counts[dns.TypeSOA] != 2 || counts[dns.TypeNS] != 1 {
		t.Errorf("counts %v", counts)
	}
	if names["2.0.0.127."+zone] != 1 || names["1.0.0.127."+zone] != 0 {
		t.Errorf("test points: %v %v", names["2.0.0.127."+zone], names["1.0.0.127."+zone])
	}
	for _, msg := range w.msgs {
		if msg.Id != m.Id || !msg.Authoritative {
			t.Error("envelope header")
		}
	}
}

func TestTransferRefused(t *testing.T) {
	s, _ := newTestServer(t)
	for _, qt := range []uint16{dns.TypeAXFR, dns.TypeIXFR} {
		m := new(dns.Msg)
		m.SetQuestion(zone, qt)
		if qt == dns.TypeIXFR {
			m.SetIxfr(zone, 1, "", "")
		}
		w := &recorder{remote: &net.TCPAddr{IP: net.ParseIP("192.0.2.9"), Port: 5000}}
		s.ServeDNS(w, m)
		if len(w.msgs) != 1 || w.msgs[0].Rcode != dns.RcodeRefused {
			t.Errorf("%s from outsider: %v", dns.TypeToString[qt], w.msgs)
		}
		// Non-apex transfer from an allowed address.
		m.Question[0].Name = "4.3.2.1." + zone
		w = newRecorder(true)
		s.ServeDNS(w, m)
		if len(w.msgs) != 1 || w.msgs[0].Rcode != dns.RcodeRefused {
			t.Errorf("%s below apex: %v", dns.TypeToString[qt], w.msgs)
		}
	}
}

func ixfr(s *Server, tcp bool, serial uint32) []*dns.Msg {
	m := new(dns.Msg)
	m.SetIxfr(zone, serial, "", "")
	w := newRecorder(tcp)
	s.ServeDNS(w, m)
	return w.msgs
}

func TestIXFR(t *testing.T) {
	s, x := newTestServer(t)
	from := x.Serial()
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	x.Set(a, entry)
	x.Set(b, entry)
	x.Remove(netip.MustParseAddr("1.2.3.4"))
	cur := x.Serial()

	rrs := records(ixfr(s, true, from))
	// SOA(cur) + 3 × [SOA old, dels, SOA new, adds] + SOA(cur).
	if rrs[0].(*dns.SOA).Serial != cur || rrs[len(rrs)-1].(*dns.SOA).Serial != cur {
		t.Fatal("IXFR not framed by current SOA")
	}
	var soas []uint32
	var adds, dels int
	deleting := false
	for _, rr := range rrs[1 : len(rrs)-1] {
		if soa, ok := rr.(*dns.SOA); ok {
			soas = append(soas, soa.Serial)
			deleting = len(soas)%2 == 1
			continue
		}
		if rr.Header().Rrtype != dns.TypeA {
			continue
		}
		if deleting {
			dels++
		} else {
			adds++
		}
	}
	want := []uint32{from, from + 1, from + 1, from + 2, from + 2, from + 3}
	if len(soas) != len(want) {
		t.Fatalf("SOAs %v, want %v", soas, want)
	}
	for i := range want {
		if soas[i] != want[i] {
			t.Fatalf("SOAs %v, want %v", soas, want)
		}
	}
	if adds != 2 || dels != 1 {
		t.Errorf("adds %d dels %d", adds, dels)
	}

	// Up to date: SOA only.
	if rrs := records(ixfr(s, true, cur)); len(rrs) != 1 {
		t.Errorf("up to date: %d records", len(rrs))
	}
	// UDP: SOA only (RFC 1995 §2).
	if rrs := records(ixfr(s, false, from)); len(rrs) != 1 || rrs[0].(*dns.SOA).Serial != cur {
		t.Errorf("UDP IXFR: %v", rrs)
	}
	// Out of journal: full zone, AXFR-style.
	x.jmax = 2
	x.journal, x.jstart = nil, 0
	for i := range 5 {
		x.Set(netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i)}), entry)
	}
	rrs = records(ixfr(s, true, from))
	if len(rrs) < 3 || rrs[1].Header().Rrtype != dns.TypeNS {
		t.Errorf("fallback is not AXFR-style: %v", rrs[:min(3, len(rrs))])
	}
	var nA int
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeA {
			nA++
		}
	}
	if nA != x.Len()+2 {
		t.Errorf("fallback has %d A, want %d", nA, x.Len()+2)
	}
	// Missing SOA in authority.
	m := new(dns.Msg)
	m.SetQuestion(zone, dns.TypeIXFR)
	w := newRecorder(true)
	s.ServeDNS(w, m)
	if w.msgs[0].Rcode != dns.RcodeFormatError {
		t.Errorf("IXFR without SOA: %s", dns.RcodeToString[w.msgs[0].Rcode])
	}
}
