package policy

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

// FuzzCheck: Check never panics; it refuses as special exactly the
// addresses that listable (below, written from the RFCs independently of
// specialTable) refuses, whatever the own networks and allow-list; with
// neither, it lists every other address; and every spelling of an address
// (16-byte IPv4-mapped, text) gets the same answer.
func FuzzCheck(f *testing.F) {
	f.Add([]byte{127, 0, 0, 1}, []byte{127, 0, 0, 0, 8}, []byte{0, 0, 0, 0, 0}, true)
	f.Add([]byte{10, 1, 2, 3}, []byte{}, []byte{10, 1, 2, 3, 32}, false)
	f.Add([]byte{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, []byte{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10}, []byte{}, true)
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1}, []byte{}, []byte{}, true)
	f.Add([]byte{203, 0, 113, 7}, []byte{}, []byte{}, true)
	for _, s := range []string{
		"::7f00:1", "::a01:203", "::2", "::ffff:0:a01:203", "4000::1", "e000::1",
		"64:ff9b::a01:203", "64:ff9b::808:808", "64:ff9b:1::808:808",
		"2002:a01:203::1", "2002:808:808::1", "2002:c000:201::1",
		"2001:0:4136:e378:8000:63bf:f5fe:fdfc", "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
		"2001:0:a00:1:8000:63bf:f7f7:f7f7", "2001:0:4136:e378:8000:63bf:3fff:fdfe",
		"2001:1::1", "2001:db8::1", "3fff::1", "2620:4f:8000::1", "2a00:1450::1",
	} {
		a := netip.MustParseAddr(s).As16()
		f.Add(a[:], []byte{}, []byte{}, false)
		f.Add(a[:], []byte{}, []byte{}, true)
	}
	// 6to4 of 81.2.69.7, with 81.2.69.0/24 as an own network.
	f.Add(netip.MustParseAddr("2002:5102:4507::1").AsSlice(), []byte{81, 2, 69, 0, 24}, []byte{}, false)
	f.Fuzz(func(t *testing.T, addr, own, allow []byte, doc bool) {
		ip, ok := netip.AddrFromSlice(addr)
		if !ok {
			ip = netip.Addr{}
		}
		own4, allow4 := prefixes(own), prefixes(allow)
		p := New(Config{OwnNetworks: own4, Allow: allow4, AllowDocumentation: doc})
		err := p.Check(ip)
		if err != nil && err.Error() == "" {
			t.Fatal("empty error text")
		}
		want := listable(ip, doc)
		if !want && !errors.Is(err, ErrSpecial) {
			t.Fatalf("Check(%s) = %v with %+v: not global unicast, must be refused as special", ip, err, p)
		}
		if want && errors.Is(err, ErrSpecial) {
			t.Fatalf("Check(%s) = %v with %+v: global unicast, must not be refused as special", ip, err, p)
		}
		if want && err != nil && len(p.own) == 0 && len(p.allow) == 0 {
			t.Fatalf("Check(%s) = %v with no own networks or allow-list: must be listable", ip, err)
		}
		if _, _, special := Special(ip); ip.IsValid() && special == listable(ip, false) {
			t.Fatalf("Special(%s) = %v, want %v", ip, special, !listable(ip, false))
		}
		if !ip.IsValid() {
			return
		}
		spellings := []netip.Addr{netip.AddrFrom16(ip.As16()), netip.MustParseAddr(ip.String())}
		for _, s := range spellings {
			if err2 := p.Check(s); !sameVerdict(err, err2) {
				t.Fatalf("Check(%s) = %v but Check(%s) = %v", ip, err, s, err2)
			}
		}
	})
}

func sameVerdict(a, b error) bool {
	for _, r := range []error{ErrSpecial, ErrOwnNetwork, ErrAllowed} {
		if errors.Is(a, r) != errors.Is(b, r) {
			return false
		}
	}
	return (a == nil) == (b == nil)
}

// listable is the reference: global unicast by the RFCs, spelled out
// separately from specialTable so that an error in one is caught by the
// other.
func listable(ip netip.Addr, doc bool) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return listable4(binary.BigEndian.Uint32(ip.AsSlice()), doc)
	}
	b := ip.As16()
	hi := binary.BigEndian.Uint64(b[:8])
	w0 := binary.BigEndian.Uint32(b[0:4])
	switch {
	case hi>>61 != 1: // not 2000::/3 (RFC 4291 §2.4)
		return false
	case w0 == 0x2001_0000: // Teredo: server, then the inverted client
		return listable4(binary.BigEndian.Uint32(b[4:8]), doc) && listable4(^binary.BigEndian.Uint32(b[12:16]), doc)
	case w0>>16 == 0x2002: // 6to4
		return listable4(binary.BigEndian.Uint32(b[2:6]), doc)
	case w0>>9 == 0x2001_0000>>9: // 2001::/23, IETF Protocol Assignments
		return false
	case hi>>16 == 0x2620_004f_8000: // 2620:4f:8000::/48, AS112
		return false
	case w0 == 0x2001_0db8, w0>>12 == 0x3fff0: // documentation
		return doc
	}
	return true
}

func listable4(a uint32, doc bool) bool {
	in := func(base uint32, bits int) bool { return a>>(32-bits) == base>>(32-bits) }
	v4 := func(x, y, z, w uint32) uint32 { return x<<24 | y<<16 | z<<8 | w }
	switch {
	case in(v4(0, 0, 0, 0), 8), in(v4(10, 0, 0, 0), 8), in(v4(100, 64, 0, 0), 10),
		in(v4(127, 0, 0, 0), 8), in(v4(169, 254, 0, 0), 16), in(v4(172, 16, 0, 0), 12),
		in(v4(192, 0, 0, 0), 24), in(v4(192, 31, 196, 0), 24), in(v4(192, 52, 193, 0), 24),
		in(v4(192, 88, 99, 0), 24), in(v4(192, 168, 0, 0), 16), in(v4(192, 175, 48, 0), 24),
		in(v4(198, 18, 0, 0), 15),
		in(v4(224, 0, 0, 0), 3): // multicast 224/4, reserved 240/4, broadcast
		return false
	case in(v4(192, 0, 2, 0), 24), in(v4(198, 51, 100, 0), 24), in(v4(203, 0, 113, 0), 24):
		return doc
	}
	return true
}

// prefixes decodes fuzz bytes as a list of (address, bits) records: 5 bytes
// for IPv4, 17 for IPv6, chosen by the length left.
func prefixes(b []byte) []netip.Prefix {
	var out []netip.Prefix
	for len(b) >= 5 {
		n := 4
		if len(b) >= 17 && b[0]&1 == 1 {
			n = 16
		}
		a, _ := netip.AddrFromSlice(b[:n])
		out = append(out, netip.PrefixFrom(a, int(b[n])%(a.BitLen()+2)-1)) // bits may be -1 or out of range: invalid
		b = b[n+1:]
	}
	return out
}
