package policy

import "net/netip"

type special struct {
	prefix netip.Prefix
	name   string // registry name, RFC
}

func sp(prefix, name string) special {
	return special{netip.MustParsePrefix(prefix), name}
}

// specialTable holds every entry of the IANA IPv4 and IPv6 Special-Purpose
// Address Registries (RFC 6890 §2.2; registry contents as of 2025), plus
// the multicast blocks, which are not in those registries but are never
// the source of an SMTP connection.
//
// Every entry is refused, including the ones the registry marks "globally
// reachable" (for example 2001:4:112::/48 AS112-v6, 2001:20::/28
// ORCHIDv2, 192.31.196.0/24 AS112-v4, the PCP/TURN anycast addresses):
// none of them is an address a mail client connects from, and a report
// naming one is a mistake or an attack. Refusing too much here costs
// nothing; listing one of them could blackhole infrastructure.
//
// Nested entries (0.0.0.0/32 in 0.0.0.0/8, the 192.0.0.0/24 and 2001::/23
// sub-entries) are kept so that errors name the precise registration.
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
	// Never matched: Special and Check unmap first and look at the IPv4
	// address, which is what the mapped address designates.
	sp("::ffff:0:0/96", "IPv4-mapped Address, RFC 4291"),
	sp("64:ff9b::/96", "IPv4-IPv6 Translation, RFC 6052"),
	sp("64:ff9b:1::/48", "IPv4-IPv6 Translation, RFC 8215"),
	sp("100::/64", "Discard-Only Address Block, RFC 6666"),
	sp("100:0:0:1::/64", "Dummy IPv6 Prefix, RFC 9780"),
	sp("2001::/23", "IETF Protocol Assignments, RFC 2928"),
	sp("2001::/32", "TEREDO, RFC 4380"),
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
	sp("2002::/16", "6to4, RFC 3056"),
	sp("2620:4f:8000::/48", "Direct Delegation AS112 Service, RFC 7534"),
	sp("3fff::/20", "Documentation, RFC 9637"),
	sp("5f00::/16", "Segment Routing (SRv6) SIDs, RFC 9602"),
	sp("fc00::/7", "Unique-Local, RFC 4193"),
	sp("fe80::/10", "Link-Local Unicast, RFC 4291"),
	sp("ff00::/8", "Multicast, RFC 4291 §2.7"),
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
