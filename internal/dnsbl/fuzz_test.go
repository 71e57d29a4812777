package dnsbl

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

func FuzzServeDNS(f *testing.F) {
	seed := func(name string, qt uint16, edns bool) {
		m := new(dns.Msg)
		m.SetQuestion(name, qt)
		if edns {
			m.SetEdns0(1232, false)
		}
		if qt == dns.TypeIXFR {
			m.SetIxfr(name, 1, "", "")
		}
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}
	seed("4.3.2.1."+zone, dns.TypeA, false)
	seed("4.3.2.1."+zone, dns.TypeANY, true)
	seed("2.0.0.127."+zone, dns.TypeTXT, true)
	seed("3.2.1."+zone, dns.TypeA, false)
	seed("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2."+zone, dns.TypeA, true)
	seed(zone, dns.TypeSOA, false)
	seed(zone, dns.TypeAXFR, false)
	seed(zone, dns.TypeIXFR, false)
	seed("example.com.", dns.TypeA, false)

	x := NewIndex()
	s, err := New(Config{Zone: zone, AllowTransfer: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, x)
	if err != nil {
		f.Fatal(err)
	}
	x.Set(netip.MustParseAddr("1.2.3.4"), entry)
	x.Set(netip.MustParseAddr("2001:db8::1"), entry)

	f.Fuzz(func(t *testing.T, pkt []byte, tcp bool) {
		r := new(dns.Msg)
		if err := r.Unpack(pkt); err != nil {
			return
		}
		w := newRecorder(tcp)
		s.ServeDNS(w, r)
		xfr := len(r.Question) == 1 && (r.Question[0].Qtype == dns.TypeAXFR || r.Question[0].Qtype == dns.TypeIXFR)
		if len(w.msgs) > 1 && !(xfr && tcp) {
			t.Fatalf("%d replies", len(w.msgs))
		}
		if r.Response && len(w.msgs) > 0 {
			t.Fatal("answered a response")
		}
		// recorder.WriteMsg packs and unpacks: a reply that does not pack
		// never reaches w.msgs, so check that one was expected.
		if !r.Response && len(w.msgs) == 0 {
			t.Fatal("no reply (or the reply did not pack)")
		}
		for _, m := range w.msgs {
			if m.Id != r.Id {
				t.Fatalf("reply ID %d, query %d", m.Id, r.Id)
			}
			for _, rr := range m.Answer {
				if !dns.IsSubDomain(zone, dns.CanonicalName(rr.Header().Name)) {
					t.Fatalf("answer outside the zone: %v", rr)
				}
			}
		}
	})
}
