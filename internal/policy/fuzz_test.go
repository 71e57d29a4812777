package policy

import (
	"errors"
	"net/netip"
	"testing"
)

// FuzzCheck: Check never panics, and no configuration makes loopback,
// RFC 1918 10/8 or link-local listable.
func FuzzCheck(f *testing.F) {
	f.Add([]byte{127, 0, 0, 1}, []byte{127, 0, 0, 0, 8}, []byte{0, 0, 0, 0, 0}, true)
	f.Add([]byte{10, 1, 2, 3}, []byte{}, []byte{10, 1, 2, 3, 32}, false)
	f.Add([]byte{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, []byte{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10}, []byte{}, true)
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1}, []byte{}, []byte{}, true)
	f.Add([]byte{203, 0, 113, 7}, []byte{}, []byte{}, true)
	f.Fuzz(func(t *testing.T, addr, own, allow []byte, doc bool) {
		ip, ok := netip.AddrFromSlice(addr)
		if !ok {
			ip = netip.Addr{}
		}
		p := New(Config{OwnNetworks: prefixes(own), Allow: prefixes(allow), AllowDocumentation: doc})
		err := p.Check(ip)
		u := ip.Unmap()
		for _, never := range []string{"127.0.0.0/8", "10.0.0.0/8", "fe80::/10"} {
			if netip.MustParsePrefix(never).Contains(u) && !errors.Is(err, ErrSpecial) {
				t.Fatalf("Check(%s) = %v with %+v: %s must always be refused as special", ip, err, p, never)
			}
		}
		if err != nil && err.Error() == "" {
			t.Fatal("empty error text")
		}
	})
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
