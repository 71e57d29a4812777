package policy

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// lastAddr returns the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// TestSpecialTableEntries checks each entry at both ends and just outside.
// An address just outside may still fall in another entry (10.0.0.0/8 and
// 0.0.0.0/8 are both special, 192.0.0.0/29 sits in 192.0.0.0/24); then
// the test only requires that it is not attributed to this entry.
func TestSpecialTableEntries(t *testing.T) {
	p := New(Config{})
	for _, e := range specialTable {
		t.Run(e.prefix.String(), func(t *testing.T) {
			first, last := e.prefix.Addr(), lastAddr(e.prefix)
			if e.prefix.Addr().Is4In6() {
				// Checked as IPv4 after unmapping (TestMappedAddresses);
				// the entry is listed for completeness only.
				return
			}
			for _, in := range []netip.Addr{first, last} {
				got, name, ok := Special(in)
				if !ok || !got.Overlaps(e.prefix) || got.Bits() < e.prefix.Bits() {
					t.Errorf("Special(%s) = %s %q %v, want %s or narrower", in, got, name, ok, e.prefix)
				}
				err := p.Check(in)
				if !errors.Is(err, ErrSpecial) {
					t.Errorf("Check(%s) = %v, want ErrSpecial", in, err)
				}
			}
			if got, name, _ := Special(first); got == e.prefix {
				err := p.Check(first)
				want := first.String() + " is in " + e.prefix.String() + " (" + name + ")"
				if e.carries != nil {
					// 2002:: and 2001:: carry 0.0.0.0, which the text goes on to name.
					want += ", and its "
				}
				if err == nil || !strings.HasPrefix(err.Error(), want) || e.carries == nil && err.Error() != want {
					t.Errorf("Check(%s) = %q, want %q", first, err, want)
				}
				if !strings.Contains(name, "RFC ") {
					t.Errorf("name %q does not cite an RFC", name)
				}
			}
			for _, out := range []netip.Addr{first.Prev(), last.Next()} {
				if !out.IsValid() {
					continue // the ends of the address space
				}
				if got, _, ok := Special(out); ok && got == e.prefix {
					t.Errorf("Special(%s) = %s: outside the range", out, got)
				}
			}
		})
	}
}

func TestPublicAddressesPass(t *testing.T) {
	p := New(Config{})
	for _, s := range []string{
		"1.1.1.1", "8.8.8.8", "9.255.255.255", "11.0.0.0", "100.63.255.255", "100.128.0.0",
		"126.255.255.255", "128.0.0.0", "169.253.255.255", "172.15.255.255", "172.32.0.0",
		"192.0.1.255", "192.0.3.0", "192.88.98.255", "192.167.255.255", "198.17.255.255",
		"198.20.0.0", "223.255.255.255",
		"2001:200::1", "2001:4860:4860::8888", "2a00:1450::1", "2003::1", "2620:4f:7fff::1",
		"3ffe:ffff::1", "::ffff:8.8.8.8",
		// The ends of 2000::/3, and next to 3fff::/20.
		"2000::", "3fff:1000::", "3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
		// 6to4 of 8.8.8.8, Teredo with server 65.54.227.120 and client 8.8.8.8.
		"2002:808:808::1", "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
	} {
		if err := p.Check(netip.MustParseAddr(s)); err != nil {
			t.Errorf("Check(%s) = %v, want nil", s, err)
		}
	}
}

func TestErrorText(t *testing.T) {
	err := New(Config{}).Check(netip.MustParseAddr("10.1.2.3"))
	if err == nil || err.Error() != "10.1.2.3 is in 10.0.0.0/8 (Private-Use, RFC 1918)" {
		t.Fatalf("Check = %q", err)
	}
	var pe *Error
	if !errors.As(err, &pe) || pe.Prefix != netip.MustParsePrefix("10.0.0.0/8") {
		t.Fatalf("not an *Error with the prefix: %#v", err)
	}
	// The most specific registration is named.
	err = New(Config{}).Check(netip.MustParseAddr("192.0.0.9"))
	if err == nil || !strings.Contains(err.Error(), "192.0.0.9/32 (Port Control Protocol Anycast, RFC 7723)") {
		t.Fatalf("Check(192.0.0.9) = %q", err)
	}
	if err := New(Config{}).Check(netip.Addr{}); !errors.Is(err, ErrSpecial) {
		t.Fatalf("Check(zero Addr) = %v, want ErrSpecial", err)
	}
}

func TestDocumentationSwitch(t *testing.T) {
	doc := []string{"192.0.2.1", "198.51.100.255", "203.0.113.7", "2001:db8::1", "2001:db8:ffff::1", "3fff::1", "3fff:fff::1", "::ffff:203.0.113.7"}
	off, on := New(Config{}), New(Config{AllowDocumentation: true})
	for _, s := range doc {
		a := netip.MustParseAddr(s)
		if err := off.Check(a); !errors.Is(err, ErrSpecial) || !strings.Contains(err.Error(), "Documentation") {
			t.Errorf("switch off: Check(%s) = %v, want a Documentation refusal", s, err)
		}
		if err := on.Check(a); err != nil {
			t.Errorf("switch on: Check(%s) = %v, want nil", s, err)
		}
	}
	// The switch opens exactly those ranges, nothing next to them.
	for _, s := range []string{"127.0.0.1", "10.0.0.1", "192.0.0.8", "192.0.0.1", "198.18.0.1", "2001:2::1", "fe80::1", "100::1", "2001::1"} {
		if err := on.Check(netip.MustParseAddr(s)); !errors.Is(err, ErrSpecial) {
			t.Errorf("switch on: Check(%s) = %v, want ErrSpecial", s, err)
		}
	}
	// Own networks and allow-list still win over the switch.
	p := New(Config{AllowDocumentation: true, OwnNetworks: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/25")}})
	if err := p.Check(netip.MustParseAddr("192.0.2.1")); !errors.Is(err, ErrOwnNetwork) {
		t.Errorf("own documentation network: %v", err)
	}
}

func TestOwnNetworksAndAllowList(t *testing.T) {
	p := New(Config{
		OwnNetworks: []netip.Prefix{
			netip.MustParsePrefix("81.2.69.0/24"),
			netip.MustParsePrefix("2a02:c0::5/48"), // not masked: New masks it
			netip.MustParsePrefix("::ffff:93.184.216.0/120"),
		},
		Allow: []netip.Prefix{
			netip.MustParsePrefix("8.8.8.8/32"),
			netip.MustParsePrefix("2001:4860:4860::8888/128"),
			{}, // invalid entries are skipped
		},
	})
	for _, tc := range []struct {
		ip   string
		want error
		text string
	}{
		{"81.2.69.7", ErrOwnNetwork, "81.2.69.7 is in 81.2.69.0/24, one of this site's own networks"},
		{"::ffff:81.2.69.7", ErrOwnNetwork, "81.2.69.7 is in 81.2.69.0/24"},
		{"2a02:c0::1", ErrOwnNetwork, "2a02:c0::1 is in 2a02:c0::/48"},
		{"93.184.216.34", ErrOwnNetwork, "93.184.216.0/24"},
		{"8.8.8.8", ErrAllowed, "8.8.8.8 is on the allow-list (8.8.8.8/32)"},
		{"::ffff:8.8.8.8", ErrAllowed, "8.8.8.8 is on the allow-list"},
		{"2001:4860:4860::8888", ErrAllowed, "allow-list"},
		{"8.8.4.4", nil, ""},
		{"81.2.70.1", nil, ""},
		{"2a02:c1::1", nil, ""},
	} {
		err := p.Check(netip.MustParseAddr(tc.ip))
		if tc.want == nil {
			if err != nil {
				t.Errorf("Check(%s) = %v, want nil", tc.ip, err)
			}
			continue
		}
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("Check(%s) = %v, want %v containing %q", tc.ip, err, tc.want, tc.text)
		}
	}
	// A v6 range that holds all of ::ffff:0:0/96 covers IPv4 too.
	all := New(Config{Allow: []netip.Prefix{netip.MustParsePrefix("::/0")}})
	if err := all.Check(netip.MustParseAddr("8.8.8.8")); !errors.Is(err, ErrAllowed) {
		t.Errorf("::/0 allow-list: Check(8.8.8.8) = %v", err)
	}
}

func TestMappedAddresses(t *testing.T) {
	p := New(Config{})
	for _, s := range []string{"::ffff:127.0.0.1", "::ffff:10.1.2.3", "::ffff:169.254.1.1", "::ffff:255.255.255.255", "::ffff:0.0.0.0"} {
		a := netip.MustParseAddr(s)
		err := p.Check(a)
		if !errors.Is(err, ErrSpecial) || strings.Contains(err.Error(), "IPv4-mapped") || strings.Contains(err.Error(), "::ffff") {
			t.Errorf("Check(%s) = %v, want the IPv4 range named", s, err)
		}
	}
	if err := p.Check(netip.MustParseAddr("fe80::1%eth0")); !errors.Is(err, ErrSpecial) {
		t.Errorf("zoned link-local: %v", err)
	}
}

// policy.list_classes: spam only by default, and a report without a class
// is spam.
func TestLists(t *testing.T) {
	def := New(Config{})
	for class, want := range map[string]bool{"": true, "spam": true, "backscatter": false, "auto-reply": false, "phish": false} {
		if got := def.Lists(class); got != want {
			t.Errorf("default Lists(%q) = %v, want %v", class, got, want)
		}
	}
	p := New(Config{ListClasses: []string{"spam", "backscatter"}})
	for class, want := range map[string]bool{"": true, "spam": true, "backscatter": true, "auto-reply": false} {
		if got := p.Lists(class); got != want {
			t.Errorf("Lists(%q) with [spam backscatter] = %v, want %v", class, got, want)
		}
	}
	if New(Config{ListClasses: []string{"backscatter"}}).Lists("") {
		t.Error(`a report without a class lists although list_classes lacks "spam"`)
	}
}
