package dnsutil

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestReverseName(t *testing.T) {
	for _, tc := range []struct{ ip, zone, want string }{
		// RFC 5782 §2.1 and §2.4 examples.
		{"192.0.2.99", "bad.example.com", "99.2.0.192.bad.example.com."},
		{"2001:db8:1:2:3:4:567:89ab", "ugly.example.com.",
			"b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example.com."},
		{"127.0.0.2", "BL.Test", "2.0.0.127.bl.test."},
		{"10.1.2.3", "bl.test", "3.2.1.10.bl.test."},
		{"10.0.0.1", ".", "1.0.0.10."},
	} {
		got := ReverseName(netip.MustParseAddr(tc.ip), tc.zone)
		if got != tc.want {
			t.Errorf("ReverseName(%s, %s) = %s, want %s", tc.ip, tc.zone, got, tc.want)
		}
		back, ok := ParseReverseName(got, tc.zone)
		if !ok || back != netip.MustParseAddr(tc.ip) {
			t.Errorf("ParseReverseName(%s) = %v %v, want %s", got, back, ok, tc.ip)
		}
	}
}

func TestParseReverseNameRejects(t *testing.T) {
	for _, name := range []string{
		"bl.test.", "ns.bl.test.", "4.3.2.bl.test.", "5.4.3.2.1.bl.test.", "007.0.0.10.bl.test.",
		"256.0.0.10.bl.test.", "-1.0.0.10.bl.test.", "+1.0.0.10.bl.test.", "a.b.c.d.bl.test.",
		"4.3.2.1.other.test.", "4.3.2.1.xbl.test.",
		strings.Repeat("0.", 31) + "g.bl.test.", strings.Repeat("0.", 31) + "10.bl.test.",
		// ::ffff:1.2.3.4 in nibbles: the store holds it as 1.2.3.4.
		"4.0.3.0.2.0.1.0.f.f.f.f." + strings.Repeat("0.", 20) + "bl.test.",
	} {
		if ip, ok := ParseReverseName(name, "bl.test"); ok {
			t.Errorf("ParseReverseName(%q) = %s, want not an address name", name, ip)
		}
	}
	if ip, ok := ParseReverseName("4.3.2.1.BL.TEST", "bl.test."); !ok || ip != netip.MustParseAddr("1.2.3.4") {
		t.Errorf("case-insensitive match failed: %v %v", ip, ok)
	}
	// The IPv6 test point is named by nibbles, and is not a listing.
	tp := ReverseName(netip.MustParseAddr("::ffff:7f00:2"), "bl.test")
	if tp != "2.0.0.0.0.0.f.7.f.f.f.f."+strings.Repeat("0.", 20)+"bl.test." {
		t.Errorf("ReverseName(::ffff:7f00:2) = %s", tp)
	}
	if ip, ok := ParseReverseName(tp, "bl.test"); ok {
		t.Errorf("ParseReverseName(%s) = %s, want not a listing", tp, ip)
	}
}

// FuzzReverseName checks that every address's name reads back as the
// address, whatever the zone's case, except the mapped ones, which are
// not listings.
func FuzzReverseName(f *testing.F) {
	f.Add([]byte{192, 0, 2, 1}, "bl.example")
	f.Add(netip.MustParseAddr("2001:db8::1").AsSlice(), "BL.Example.")
	f.Fuzz(func(t *testing.T, raw []byte, zone string) {
		ip, ok := netip.AddrFromSlice(raw)
		if _, isName := dns.IsDomainName(zone); !ok || !isName || strings.ContainsAny(zone, "\\ ") {
			return
		}
		name := ReverseName(ip, zone)
		back, ok := ParseReverseName(name, zone)
		if ip.Is4In6() {
			if ok {
				t.Fatalf("ParseReverseName(%q, %q) = %v, want not a listing", name, zone, back)
			}
			return
		}
		if !ok || back != ip {
			t.Fatalf("ParseReverseName(%q, %q) = %v %v, want %v", name, zone, back, ok, ip)
		}
	})
}

func TestGradedA(t *testing.T) {
	for n, want := range map[int]string{-3: "127.0.0.2", 0: "127.0.0.2", 1: "127.0.0.2", 2: "127.0.0.3",
		5: "127.0.0.6", 8: "127.0.0.9", 9: "127.0.0.9", 32: "127.0.0.9", 1 << 40: "127.0.0.9"} {
		if got := GradedA(n); got.String() != want {
			t.Errorf("GradedA(%d) = %s, want %s", n, got, want)
		}
	}
}
