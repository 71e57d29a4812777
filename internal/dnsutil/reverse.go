package dnsutil

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

const hexDigits = "0123456789abcdef"

// ReverseName returns the RFC 5782 §2.1 / §2.4 DNSBL name of ip in zone:
// the IPv4 octets in reverse order ("7.113.0.203.zone." for 203.0.113.7),
// or the 32 nibbles of an IPv6 address in reverse order, as in ip6.arpa.
// zone may or may not end with a dot and is written in lower case; the
// result is fully qualified. An IPv4-mapped IPv6 address is an IPv6
// address here, named by its nibbles, as the RFC 5782 §5 IPv6 test point
// ::ffff:7f00:2 is; listings never are, since the store unmaps addresses.
func ReverseName(ip netip.Addr, zone string) string {
	zone = dns.Fqdn(strings.ToLower(zone))
	var b strings.Builder
	if ip.Is4() {
		b.Grow(16 + len(zone))
		a := ip.As4()
		for i := 3; i >= 0; i-- {
			b.WriteString(strconv.Itoa(int(a[i])))
			b.WriteByte('.')
		}
	} else {
		b.Grow(64 + len(zone))
		a := ip.As16()
		for i := 15; i >= 0; i-- {
			b.WriteByte(hexDigits[a[i]&0xf])
			b.WriteByte('.')
			b.WriteByte(hexDigits[a[i]>>4])
			b.WriteByte('.')
		}
	}
	if zone != "." {
		b.WriteString(zone)
	}
	return b.String()
}

// ParseReverseName is the inverse of ReverseName: it returns the address
// that name stands for in zone, and false for any name that is not in the
// RFC 5782 form of a listing (the apex, ns.zone, octets written with
// leading zeros, names of other zones). The nibbles of an IPv4-mapped
// address are refused too: no listing has that form (the store unmaps
// addresses), only the RFC 5782 §5 IPv6 test point, which is not one to
// manage. Comparison is case-insensitive (RFC 4343).
func ParseReverseName(name, zone string) (netip.Addr, bool) {
	name = dns.Fqdn(strings.ToLower(name))
	zone = dns.Fqdn(strings.ToLower(zone))
	var rel string
	if zone == "." {
		rel = strings.TrimSuffix(name, ".")
	} else {
		var ok bool
		rel, ok = strings.CutSuffix(name, "."+zone)
		if !ok {
			return netip.Addr{}, false
		}
	}
	labels := strings.Split(rel, ".")
	switch len(labels) {
	case 4:
		var a [4]byte
		for i, l := range labels {
			// One canonical spelling per address: "007" or "+7" would be
			// a second name for the same listing.
			if l == "" || len(l) > 3 || (len(l) > 1 && l[0] == '0') {
				return netip.Addr{}, false
			}
			n, err := strconv.Atoi(l)
			if err != nil || n < 0 || n > 255 || strconv.Itoa(n) != l {
				return netip.Addr{}, false
			}
			a[3-i] = byte(n)
		}
		return netip.AddrFrom4(a), true
	case 32:
		var a [16]byte
		for i, l := range labels {
			if len(l) != 1 {
				return netip.Addr{}, false
			}
			v := strings.IndexByte(hexDigits, l[0])
			if v < 0 {
				return netip.Addr{}, false
			}
			// labels[0] is the lowest nibble of the last byte.
			pos := 31 - i
			if pos%2 == 0 {
				a[pos/2] |= byte(v) << 4
			} else {
				a[pos/2] |= byte(v)
			}
		}
		ip := netip.AddrFrom16(a)
		if ip.Is4In6() {
			return netip.Addr{}, false
		}
		return ip, true
	}
	return netip.Addr{}, false
}
