package policy

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// TestEverySpelling: no spelling of a non-global address is listable. The
// first group are Source-IPs that were once listed (issue 10); then each
// form that embeds an IPv4 address, with a non-global and a global one.
func TestEverySpelling(t *testing.T) {
	for _, tc := range []struct {
		ip   string
		doc  bool   // AllowDocumentation
		want string // "" listable, else a fragment of the refusal
	}{
		// Listed once: IPv4-compatible, SIIT and outside 2000::/3.
		{ip: "::7f00:1", want: "::7f00:1 is in ::/96 (IPv4-compatible IPv6 address, deprecated and never a real source"},
		{ip: "::127.0.0.1", want: "IPv4-compatible"},
		{ip: "0:0:0:0:0:0:7f00:1", want: "IPv4-compatible"},
		{ip: "::a01:203", want: "IPv4-compatible"},
		{ip: "::2", want: "::2 is in ::/96 (IPv4-compatible"},
		{ip: "::ffff:0:a01:203", want: "::ffff:0:a01:203 is in ::ffff:0:0:0/96 (IPv4-translated address (SIIT), never a real source"},
		{ip: "::ffff:0:10.1.2.3", want: "IPv4-translated"},
		{ip: "4000::1", want: "4000::1 is in 4000::/3 (Reserved by IETF, not global unicast"},
		{ip: "e000::1", want: "e000::1 is in e000::/4 (Reserved by IETF, not global unicast"},
		{ip: "8000::", want: "Reserved by IETF"},
		{ip: "1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", want: "1000::/4 (Reserved by IETF"},
		{ip: "fec0::1", want: "Site-Local"},
		{ip: "fe00::1", want: "fe00::/9 (Reserved by IETF"},
		{ip: "ff02::1", want: "Multicast"},
		{ip: "fd12:3456::1", want: "Unique-Local"},
		{ip: "fe80::1%eth0", want: "Link-Local"},
		{ip: "::", want: "Unspecified"},
		{ip: "::1", want: "::1 is in ::1/128 (Loopback Address"},
		{ip: "::0.0.0.1", want: "Loopback Address"},
		{ip: "100::1", want: "Discard-Only"},
		{ip: "5f00::1", want: "SRv6"},

		// IPv4-mapped: the IPv4 address it designates, judged as such.
		{ip: "::ffff:10.1.2.3", want: "10.1.2.3 is in 10.0.0.0/8 (Private-Use, RFC 1918)"},
		{ip: "::ffff:7f00:1", want: "127.0.0.1 is in 127.0.0.0/8 (Loopback"},
		{ip: "::ffff:192.0.2.1", want: "Documentation"},
		{ip: "::ffff:192.0.2.1", doc: true},
		{ip: "::ffff:8.8.8.8"},

		// IPv4-compatible and SIIT: refused whatever they carry.
		{ip: "::8.8.8.8", want: "IPv4-compatible"},
		{ip: "::192.0.2.1", doc: true, want: "IPv4-compatible"},
		{ip: "::ffff:0:8.8.8.8", want: "IPv4-translated"},
		{ip: "::ffff:0:192.0.2.1", doc: true, want: "IPv4-translated"},

		// NAT64: refused whatever they carry; the IPv4 address is the sender.
		{ip: "64:ff9b::10.1.2.3", want: "NAT64"},
		{ip: "64:ff9b::127.0.0.1", want: "NAT64"},
		{ip: "64:ff9b::8.8.8.8", want: "64:ff9b::808:808 is in 64:ff9b::/96 (IPv4-IPv6 Translation (NAT64 well-known prefix; report the IPv4 address instead), RFC 6052)"},
		{ip: "64:ff9b::192.0.2.1", doc: true, want: "NAT64"},
		{ip: "64:ff9b:1::8.8.8.8", want: "local-use NAT64"},
		{ip: "64:ff9b:1:ffff::10.1.2.3", want: "local-use NAT64"},

		// 6to4: judged by the IPv4 address in bits 16..48.
		{ip: "2002:a01:203::1", want: "2002:a01:203::1 is in 2002::/16 (6to4, RFC 3056), and its IPv4 address 10.1.2.3 is in 10.0.0.0/8 (Private-Use, RFC 1918)"},
		{ip: "2002:7f00:1:ffff::1", want: "IPv4 address 127.0.0.1 is in 127.0.0.0/8 (Loopback"},
		{ip: "2002:c0a8:101::1", want: "IPv4 address 192.168.1.1 is in 192.168.0.0/16"},
		{ip: "2002:c058:6301::", want: "192.88.99.1 is in 192.88.99.0/24 (Deprecated (6to4 Relay Anycast)"},
		{ip: "2002:e000:1::1", want: "224.0.0.1 is in 224.0.0.0/4 (Multicast"},
		{ip: "2002:c000:201::1", want: "IPv4 address 192.0.2.1 is in 192.0.2.0/24 (Documentation (TEST-NET-1)"},
		{ip: "2002:c000:201::1", doc: true},
		{ip: "2002:808:808::1"},
		{ip: "2002:808:808:ffff:ffff:ffff:ffff:ffff"},

		// Teredo: server in bits 32..64, client inverted in the last 32.
		// Server 65.54.227.120 (4136:e378) with clients 10.1.2.3, 127.0.0.1,
		// 192.0.2.1 and 8.8.8.8 (inverted: f5fe:fdfc, 80ff:fffe, 3fff:fdfe,
		// f7f7:f7f7); then server 10.0.0.1 with client 8.8.8.8.
		{ip: "2001:0:4136:e378:8000:63bf:f5fe:fdfc", want: "2001:0:4136:e378:8000:63bf:f5fe:fdfc is in 2001::/32 (TEREDO, RFC 4380), and its Teredo client IPv4 address 10.1.2.3 is in 10.0.0.0/8 (Private-Use, RFC 1918)"},
		{ip: "2001:0:4136:e378:8000:63bf:80ff:fffe", want: "Teredo client IPv4 address 127.0.0.1 is in 127.0.0.0/8"},
		{ip: "2001:0:4136:e378:8000:63bf:3fff:fdfe", want: "Teredo client IPv4 address 192.0.2.1 is in 192.0.2.0/24 (Documentation"},
		{ip: "2001:0:4136:e378:8000:63bf:3fff:fdfe", doc: true},
		{ip: "2001:0:a00:1:8000:63bf:f7f7:f7f7", want: "Teredo server IPv4 address 10.0.0.1 is in 10.0.0.0/8"},
		{ip: "2001:0:4136:e378:8000:63bf:f7f7:f7f7"},
		// The rest of 2001::/23 is refused, even where the registry says
		// globally reachable.
		{ip: "2001:1::1", want: "Port Control Protocol Anycast"},
		{ip: "2001:3::1", want: "AMT"},
		{ip: "2001:4:112::1", want: "AS112-v6"},
		{ip: "2001:20::1", want: "ORCHIDv2"},
		{ip: "2001:1ff::1", want: "2001::/23 (IETF Protocol Assignments"},
		{ip: "2001:db8::1", want: "Documentation, RFC 3849"},
		{ip: "3fff::1", want: "Documentation, RFC 9637"},
	} {
		p := New(Config{AllowDocumentation: tc.doc})
		err := p.Check(netip.MustParseAddr(tc.ip))
		if tc.want == "" {
			if err != nil {
				t.Errorf("doc=%v: Check(%s) = %v, want listable", tc.doc, tc.ip, err)
			}
			continue
		}
		if !errors.Is(err, ErrSpecial) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("doc=%v: Check(%s) = %v, want ErrSpecial containing %q", tc.doc, tc.ip, err, tc.want)
		}
		if _, _, ok := Special(netip.MustParseAddr(tc.ip)); !ok && !tc.doc {
			t.Errorf("Special(%s) = false, want true", tc.ip)
		}
	}
}

// TestOutsideGlobalUnicastNamed: every IPv6 address outside 2000::/3 is in
// some entry of specialTable, so a refusal always names its range.
func TestOutsideGlobalUnicastNamed(t *testing.T) {
	var covered func(netip.Prefix) bool
	covered = func(p netip.Prefix) bool {
		overlaps := false
		for _, e := range specialTable {
			if e.prefix.Addr().Is4() || !e.prefix.Overlaps(p) {
				continue
			}
			if e.prefix.Bits() <= p.Bits() {
				return true
			}
			overlaps = true
		}
		if !overlaps {
			return false
		}
		lo := netip.PrefixFrom(p.Addr(), p.Bits()+1)
		hi := netip.PrefixFrom(lastAddr(p), p.Bits()+1).Masked()
		return covered(lo) && covered(hi)
	}
	for _, s := range []string{"::/3", "4000::/2", "8000::/1"} {
		if !covered(netip.MustParsePrefix(s)) {
			t.Errorf("%s is not covered by specialTable", s)
		}
	}
	// And the table never makes a 2000::/3 address a reserved one.
	for _, e := range specialTable {
		if strings.Contains(e.name, "not global unicast") && e.prefix.Overlaps(globalUnicast) {
			t.Errorf("%s (%s) overlaps 2000::/3", e.prefix, e.name)
		}
	}
}

// TestCarriedHost: the site's own networks and allow-list also cover the
// 6to4 and Teredo addresses of their hosts, but not the clients of a
// Teredo server that happens to be in them.
func TestCarriedHost(t *testing.T) {
	p := New(Config{
		OwnNetworks: []netip.Prefix{netip.MustParsePrefix("81.2.69.0/24"), netip.MustParsePrefix("65.54.227.0/24")},
		Allow:       []netip.Prefix{netip.MustParsePrefix("8.8.4.4/32")},
	})
	for _, tc := range []struct {
		ip   string
		want error
		text string
	}{
		{"2002:5102:4507::1", ErrOwnNetwork, "2002:5102:4507::1 is in 2002::/16 (6to4, RFC 3056), and its IPv4 address 81.2.69.7 is in 81.2.69.0/24, one of this site's own networks"},
		// Client 81.2.69.7 (inverted aefd:baf8) behind server 8.8.8.8.
		{"2001:0:808:808:0:0:aefd:baf8", ErrOwnNetwork, "its Teredo client IPv4 address 81.2.69.7 is in 81.2.69.0/24"},
		{"2002:808:404::1", ErrAllowed, "its IPv4 address 8.8.4.4 is on the allow-list (8.8.4.4/32)"},
		{"2001:0:808:808:0:0:f7f7:fbfb", ErrAllowed, "Teredo client IPv4 address 8.8.4.4 is on the allow-list"},
		// Server 65.54.227.120 is "ours", client 8.8.8.8 is not.
		{"2001:0:4136:e378:8000:63bf:f7f7:f7f7", nil, ""},
		{"2002:808:808::1", nil, ""},
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
}
