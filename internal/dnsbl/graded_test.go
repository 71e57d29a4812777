package dnsbl

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// aOf returns the address of the one A record in m's answer, or "" (with
// the rcode) when there is none.
func aOf(m *dns.Msg) string {
	if m == nil {
		return "no reply"
	}
	for _, rr := range m.Answer {
		if a, ok := rr.(*dns.A); ok {
			return a.A.String()
		}
	}
	return dns.RcodeToString[m.Rcode]
}

func gradedServer(t *testing.T, graded bool) (*Server, *Index) {
	t.Helper()
	x := NewIndex()
	s, err := New(Config{Zone: zone, Graded: graded, AllowTransfer: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, x)
	if err != nil {
		t.Fatal(err)
	}
	return s, x
}

// TestGradedAnswers: with Graded, a listing with n corroborating reporters
// answers 127.0.0.(1+min(n,8)) over A, ANY, AXFR and IXFR; the test points
// stay 127.0.0.2 listed and 127.0.0.1 not; without Graded every listing
// answers the one A.
func TestGradedAnswers(t *testing.T) {
	want := map[int]string{0: "127.0.0.2", 1: "127.0.0.2", 2: "127.0.0.3", 3: "127.0.0.4", 4: "127.0.0.5",
		5: "127.0.0.6", 6: "127.0.0.7", 7: "127.0.0.8", 8: "127.0.0.9", 9: "127.0.0.9", 12: "127.0.0.9", 300: "127.0.0.9"}
	ip := func(n int) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, byte(n % 256)}) }
	for _, graded := range []bool{true, false} {
		t.Run(fmt.Sprintf("graded=%v", graded), func(t *testing.T) {
			s, x := gradedServer(t, graded)
			serial := x.Serial()
			for n := range want {
				origins := make([]string, min(n, 32))
				for i := range origins {
					origins[i] = fmt.Sprintf("site-%d.example", i)
				}
				x.Set(ip(n), Entry{Expires: t0.Add(time.Hour), FirstSeen: t0, Hits: n, Origins: origins, Corroboration: n})
			}
			axfr := map[string]string{}
			for _, rr := range records(transfer(t, s, dns.TypeAXFR, 0)) {
				if a, ok := rr.(*dns.A); ok {
					axfr[a.Hdr.Name] = a.A.String()
				}
			}
			ixfrAdded := map[string]string{}
			for _, rr := range records(transfer(t, s, dns.TypeIXFR, serial)) {
				if a, ok := rr.(*dns.A); ok {
					ixfrAdded[a.Hdr.Name] = a.A.String()
				}
			}
			for n, w := range want {
				if !graded {
					w = "127.0.0.2"
				}
				name := s.reverseName(ip(n))
				if got := aOf(query(s, false, name, dns.TypeA, false)); got != w {
					t.Errorf("%d reporters: A %s, want %s", n, got, w)
				}
				if got := aOf(query(s, true, name, dns.TypeANY, true)); got != w {
					t.Errorf("%d reporters: ANY gives A %s, want %s", n, got, w)
				}
				if got := axfr[name]; got != w {
					t.Errorf("%d reporters: AXFR has A %s, want %s", n, got, w)
				}
				if got := ixfrAdded[name]; got != w {
					t.Errorf("%d reporters: IXFR adds A %s, want %s", n, got, w)
				}
			}
			// RFC 5782 §5: the test points are fixed, graded or not.
			if got := aOf(query(s, false, "2.0.0.127."+zone, dns.TypeA, false)); got != "127.0.0.2" {
				t.Errorf("test point 127.0.0.2: %s, want 127.0.0.2", got)
			}
			if got := aOf(query(s, false, "1.0.0.127."+zone, dns.TypeA, false)); got != "NXDOMAIN" {
				t.Errorf("test point 127.0.0.1: %s, want NXDOMAIN", got)
			}
			if got := aOf(query(s, false, s.reverseName(test6Yes), dns.TypeA, false)); got != "127.0.0.2" {
				t.Errorf("test point ::ffff:7f00:2: %s, want 127.0.0.2", got)
			}
		})
	}
}

// TestGradedChange: a change of corroboration alone (same origins list
// spelled by the caller, another count) changes the answer and is
// journalled, so secondaries see it by IXFR.
func TestGradedChange(t *testing.T) {
	s, x := gradedServer(t, true)
	ip := netip.MustParseAddr("198.51.100.7")
	name := s.reverseName(ip)
	e := Entry{Expires: t0.Add(time.Hour), FirstSeen: t0, Hits: 2, Origins: []string{"a.example", "b.example"}, Corroboration: 1}
	x.Set(ip, e)
	if got := aOf(query(s, false, name, dns.TypeA, false)); got != "127.0.0.2" {
		t.Fatalf("one operator: %s, want 127.0.0.2", got)
	}
	before := x.Serial()
	e.Corroboration = 2
	x.Set(ip, e)
	if got := aOf(query(s, false, name, dns.TypeA, false)); got != "127.0.0.3" {
		t.Errorf("two operators: %s, want 127.0.0.3", got)
	}
	if g, ok := x.Get(ip); !ok || g.Corroboration != 2 || len(g.Origins) != 2 {
		t.Errorf("Get = %+v, %v; want corroboration 2 and both origins", g, ok)
	}
	var old, cur []string
	inNew := false
	for _, rr := range records(transfer(t, s, dns.TypeIXFR, before)) {
		switch rr := rr.(type) {
		case *dns.SOA:
			inNew = rr.Serial == x.Serial()
		case *dns.A:
			if inNew {
				cur = append(cur, rr.A.String())
			} else {
				old = append(old, rr.A.String())
			}
		}
	}
	if fmt.Sprint(old, cur) != "[127.0.0.2] [127.0.0.3]" {
		t.Errorf("IXFR deletes %v and adds %v; want [127.0.0.2] [127.0.0.3]", old, cur)
	}
	// Two sets with equal origins and other counts do not share a slot.
	if len(x.setIDs) != 1 {
		t.Errorf("%d live sets after the change, want 1", len(x.setIDs))
	}
}

func TestGradedNeedsDefaultA(t *testing.T) {
	if _, err := New(Config{Zone: zone, Graded: true, A: netip.MustParseAddr("127.0.0.4")}, NewIndex()); err == nil {
		t.Error("Graded with A 127.0.0.4 accepted")
	}
	for _, a := range []netip.Addr{{}, test4Yes} {
		if _, err := New(Config{Zone: zone, Graded: true, A: a}, NewIndex()); err != nil {
			t.Errorf("Graded with A %v: %v", a, err)
		}
	}
}

// transfer runs an AXFR, or an IXFR from serial, over TCP.
func transfer(t *testing.T, s *Server, qt uint16, serial uint32) []*dns.Msg {
	t.Helper()
	if qt == dns.TypeIXFR {
		return ixfr(s, true, serial)
	}
	m := new(dns.Msg)
	m.SetAxfr(zone)
	w := newRecorder(true)
	s.ServeDNS(w, m)
	return w.msgs
}
