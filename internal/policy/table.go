package policy

import "net/netip"

type special struct {
	prefix netip.Prefix
	name   string // registry name, RFC
	// carries, for the two forms that are ordinary global IPv6 sources
	// when the IPv4 addresses inside them are global (6to4, Teredo),
	// extracts those IPv4 addresses. The form is then judged by them
	// instead of refused outright.
	carries func(netip.Addr) []carried
}

// carried is an IPv4 address inside an IPv6 address.
type carried struct {
	as   string // what it is, for the error text: "IPv4 address", "Teredo client IPv4 address"
	ip   netip.Addr
	host bool // it designates the sending host's own network (own networks and allow-list apply)
}

func sp(prefix, name string) special {
	return special{prefix: netip.MustParsePrefix(prefix), name: name}
}

// globalUnicast is the only IPv6 space that is ever listed (RFC 4291
// §2.4, IANA IPv6 Address Space registry). Everything else is refused,
// named by the entry of specialTable that holds it.
var globalUnicast = netip.MustParsePrefix("2000::/3")

// specialTable holds every entry of the IANA IPv4 and IPv6 Special-Purpose
// Address Registries (RFC 6890 §2.2; registry contents as of 2025), plus
// multicast, the embedding forms of RFC 4291 and RFC 2765, and the blocks
// of the IANA IPv6 Address Space registry outside 2000::/3, so that every
// refused address has a name.
//
// IPv4 is listed when no entry holds it; IPv6 when it is in 2000::/3 and
// no entry holds it. Every entry is refused, with three exceptions: the
// documentation ranges when Config.AllowDocumentation is set, and 6to4
// and Teredo (below), which are judged by the IPv4 addresses they carry.
//
// Refused although the registry marks them "globally reachable": 2001:1::1,
// 2001:1::2, 2001:1::3 (service anycast), 2001:3::/32 AMT, 2001:4:112::/48
// AS112-v6, 2001:20::/28 ORCHIDv2 (identifiers, not locators),
// 2001:30::/28 DETs, 2620:4f:8000::/48 AS112, 64:ff9b::/96 (see there),
// and on the IPv4 side 192.0.0.9, 192.0.0.10, 192.31.196.0/24,
// 192.175.48.0/24 and 192.52.193.0/24: none of them is an address a mail
// client connects from, and a report naming one is a mistake or an attack.
// Refusing too much here costs nothing; listing one could blackhole
// infrastructure.
//
// Nested entries (0.0.0.0/32 in 0.0.0.0/8, the 192.0.0.0/24 and 2001::/23
// sub-entries, all of ::/8) are kept so that errors name the precise
// registration: the most specific entry wins.
var specialTable = []special{
	// IPv4 (https://www.iana.org/assignments/iana-ipv4-special-registry)
	sp("0.0.0.0/8", `"This network", RFC 791 §3.2`),
	sp("0.0.0.0/32", `"This host on this network", RFC 1122 §3.2.1.3`),
	sp("10.0.0.0/8", "Private-Use, RFC 1918"),
	sp("100.64.0.0/10", "Shared Address Space, RFC 6598"),
	sp("127.0.0.0/8", "Loopback, RFC 1122 §3.2.1.3"),
	sp("169.254.0.0/16", "Link Local, RFC 3927"),
	sp("172.16.0.0/12", "Private-Use, RFC 1918"),
	sp("192.0.0.0/24", "IETF Protocol Assignments, RFC 6890 §2.1"),
	sp("192.0.0.0/29", "IPv4 Service Continuity Prefix, RFC 7335"),
	sp("192.0.0.8/32", "IPv4 dummy address, RFC 7600"),
	sp("192.0.0.9/32", "Port Control Protocol Anycast, RFC 7723"),
	sp("192.0.0.10/32", "Traversal Using Relays around NAT Anycast, RFC 8155"),
	sp("192.0.0.170/32", "NAT64/DNS64 Discovery, RFC 8880"),
	sp("192.0.0.171/32", "NAT64/DNS64 Discovery, RFC 8880"),
	sp("192.0.2.0/24", "Documentation (TEST-NET-1), RFC 5737"),
	sp("192.31.196.0/24", "AS112-v4, RFC 7535"),
	sp("192.52.193.0/24", "AMT, RFC 7450"),
	sp("192.88.99.0/24", "Deprecated (6to4 Relay Anycast), RFC 7526"),
	sp("192.168.0.0/16", "Private-Use, RFC 1918"),
	sp("192.175.48.0/24", "Direct Delegation AS112 Service, RFC 7534"),
	sp("198.18.0.0/15", "Benchmarking, RFC 2544"),
	sp("198.51.100.0/24", "Documentation (TEST-NET-2), RFC 5737"),
	sp("203.0.113.0/24", "Documentation (TEST-NET-3), RFC 5737"),
	sp("240.0.0.0/4", "Reserved, RFC 1112 §4"),
	sp("255.255.255.255/32", "Limited Broadcast, RFC 919 §7"),
	sp("224.0.0.0/4", "Multicast, RFC 5771"),

	// IPv6 (https://www.iana.org/assignments/iana-ipv6-special-registry)
	sp("::1/128", "Loopback Address, RFC 4291"),
	sp("::/128", "Unspecified Address, RFC 4291"),
	// Never matched: Check unmaps first and judges the IPv4 address,
	// which is what a mapped address designates (and what the rest of
	// DST stores: Source-IP ::ffff:192.0.2.1 is 192.0.2.1 everywhere).
	sp("::ffff:0:0/96", "IPv4-mapped Address, RFC 4291"),
	// Not in the registry, but inside ::/8 and no address a packet on the
	// Internet comes from; named so that a report of ::7f00:1 says why.
	sp("::/96", "IPv4-compatible IPv6 address, deprecated and never a real source, RFC 4291 §2.5.5.1"),
	sp("::ffff:0:0:0/96", "IPv4-translated address (SIIT), never a real source, RFC 2765 §2.1"),
	// Refused whatever IPv4 it carries. The registry marks it globally
	// reachable, but an address in it is a translator's local rendering
	// of an IPv4 sender: the sender's real address, the one other sites
	// look up, is the IPv4 one, and that is what a report must name.
	sp("64:ff9b::/96", "IPv4-IPv6 Translation (NAT64 well-known prefix; report the IPv4 address instead), RFC 6052"),
	sp("64:ff9b:1::/48", "IPv4-IPv6 Translation (local-use NAT64), RFC 8215"),
	sp("100::/64", "Discard-Only Address Block, RFC 6666"),
	sp("100:0:0:1::/64", "Dummy IPv6 Prefix, RFC 9780"),
	sp("2001::/23", "IETF Protocol Assignments, RFC 2928"),
	{prefix: netip.MustParsePrefix("2001::/32"), name: "TEREDO, RFC 4380", carries: teredo},
	sp("2001:1::1/128", "Port Control Protocol Anycast, RFC 7723"),
	sp("2001:1::2/128", "Traversal Using Relays around NAT Anycast, RFC 8155"),
	sp("2001:1::3/128", "DNS-SD Service Registration Protocol Anycast, RFC 9665"),
	sp("2001:2::/48", "Benchmarking, RFC 5180"),
	sp("2001:3::/32", "AMT, RFC 7450"),
	sp("2001:4:112::/48", "AS112-v6, RFC 7535"),
	sp("2001:10::/28", "Deprecated (previously ORCHID), RFC 4843"),
	sp("2001:20::/28", "ORCHIDv2, RFC 7343"),
	sp("2001:30::/28", "Drone Remote ID Protocol Entity Tags (DETs) Prefix, RFC 9374"),
	sp("2001:db8::/32", "Documentation, RFC 3849"),
	{prefix: netip.MustParsePrefix("2002::/16"), name: "6to4, RFC 3056", carries: sixToFour},
	sp("2620:4f:8000::/48", "Direct Delegation AS112 Service, RFC 7534"),
	sp("3fff::/20", "Documentation, RFC 9637"),
	sp("5f00::/16", "Segment Routing (SRv6) SIDs, RFC 9602"),
	sp("fc00::/7", "Unique-Local, RFC 4193"),
	sp("fe80::/10", "Link-Local Unicast, RFC 4291"),

	// The rest of the IPv6 address space outside 2000::/3
	// (https://www.iana.org/assignments/ipv6-address-space).
	sp("::/8", "Reserved by IETF, not global unicast, RFC 4291 §2.4"),
	sp("100::/8", "Reserved by IETF, not global unicast, RFC 4291 §2.4"),
	sp("200::/7", "Reserved by IETF, not global unicast, RFC 4048"),
	sp("400::/6", "Reserved by IETF, not global unicast, RFC 4291 §2.4"),
	sp("800::/5", "Reserved by IETF, not global unicast, RFC 4291 §2.4"),
	sp("1000::/4", "Reserved by IETF, not global unicast, RFC 4291 §2.4"),
	sp("4000::/3", "Reserved by IETF, not global unicast, RFC 4291 §2.4"),
	sp("6000::/3", "Reserved by IETF, not global unicast, RFC 4291 §2.4"),
	sp("8000::/3", "Reserved by IETF, not global unicast, RFC 4291 §2.4"),
	sp("a000::/3", "Reserved by IETF, not global unicast, RFC 4291 §2.4"),
	sp("c000::/3", "Reserved by IETF, not global unicast, RFC 4291 §2.4"),
	sp("e000::/4", "Reserved by IETF, not global unicast, RFC 4291 §2.4"),
	sp("f000::/5", "Reserved by IETF, not global unicast, RFC 4291 §2.4"),
	sp("f800::/6", "Reserved by IETF, not global unicast, RFC 4291 §2.4"),
	sp("fe00::/9", "Reserved by IETF, not global unicast, RFC 4291 §2.4"),
	sp("fec0::/10", "Site-Local (deprecated), RFC 3879"),
	sp("ff00::/8", "Multicast, RFC 4291 §2.7"),
}

// sixToFour: a 6to4 address 2002:AABB:CCDD::/48 is the site of the IPv4
// host A.B.C.D (RFC 3056 §2). It is reachable, and its sender is who it
// claims, exactly when A.B.C.D is a global address.
func sixToFour(ip netip.Addr) []carried {
	b := ip.As16()
	return []carried{{as: "IPv4 address", ip: netip.AddrFrom4([4]byte(b[2:6])), host: true}}
}

// teredo: 2001:0:SSSS:SSSS:flags:port:CCCC:CCCC carries the Teredo server
// S and, inverted, the client's public (NAT) address C (RFC 4380 §4).
// Both must be global: a private client address is a forgery, and a
// private server could not have served a client on the Internet.
func teredo(ip netip.Addr) []carried {
	b := ip.As16()
	client := [4]byte(b[12:16])
	for i := range client {
		client[i] ^= 0xff
	}
	return []carried{
		{as: "Teredo server IPv4 address", ip: netip.AddrFrom4([4]byte(b[4:8]))},
		{as: "Teredo client IPv4 address", ip: netip.AddrFrom4(client), host: true},
	}
}

// documentation are the ranges that Config.AllowDocumentation permits, and
// only those: RFC 5737 (IPv4), RFC 3849 and RFC 9637 (IPv6).
var documentation = []netip.Prefix{
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("3fff::/20"),
}
