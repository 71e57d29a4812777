// Package policy decides which addresses a site may never list, whatever
// the reports say.
//
// A report only claims that some address sent spam; a buggy or hostile peer
// could claim it of 127.0.0.1, of a private network, or of the receiving
// site's own mail servers, and a blocklist that listed those would break
// mail for everyone who uses it. So three kinds of address are refused:
// the special-purpose ranges of the IANA IPv4 and IPv6 Special-Purpose
// Address Registries (RFC 6890) plus multicast, the site's own networks,
// and its allow-list.
package policy

import (
	"errors"
	"fmt"
	"net/netip"
)

// Reasons for refusing an address. Check wraps them; test with errors.Is.
var (
	// ErrSpecial: the address is in a special-purpose range (or is not an
	// IP address at all).
	ErrSpecial = errors.New("special-purpose address")
	// ErrOwnNetwork: the address is in one of the site's own networks.
	ErrOwnNetwork = errors.New("address in the site's own networks")
	// ErrAllowed: the address is on the site's allow-list.
	ErrAllowed = errors.New("address on the allow-list")
)

// Config is what a site configures.
type Config struct {
	OwnNetworks []netip.Prefix // the site's own networks
	Allow       []netip.Prefix // allow-list (addresses as /32 or /128)
	// AllowDocumentation is for labs and tests only: it permits the
	// documentation ranges (RFC 5737, RFC 3849, RFC 9637), which test
	// setups use as spammers, and nothing else special.
	AllowDocumentation bool
}

// Policy answers Check. It is immutable, hence safe for concurrent use;
// build a new one to reload.
type Policy struct {
	own, allow []netip.Prefix
	allowDoc   bool
}

// New returns the policy for c. Invalid prefixes are skipped; prefixes
// written as IPv4-mapped IPv6 (::ffff:10.0.0.0/104) are turned into their
// IPv4 form, since Check looks at IPv4-mapped addresses as IPv4.
func New(c Config) *Policy {
	return &Policy{own: normalize(c.OwnNetworks), allow: normalize(c.Allow), allowDoc: c.AllowDocumentation}
}

func normalize(in []netip.Prefix) []netip.Prefix {
	mapped := netip.MustParsePrefix("::ffff:0:0/96")
	out := make([]netip.Prefix, 0, len(in))
	for _, p := range in {
		if !p.IsValid() {
			continue
		}
		p = netip.PrefixFrom(p.Addr().WithZone(""), p.Bits()).Masked()
		switch {
		case p.Addr().Is4In6() && p.Bits() >= 96:
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		case p.Addr().Is6() && p.Bits() <= 96 && p.Contains(mapped.Addr()):
			// The range also holds every IPv4-mapped address, which
			// Check sees as IPv4: these lists only ever refuse, so
			// cover IPv4 too rather than silently less.
			out = append(out, netip.MustParsePrefix("0.0.0.0/0"))
		}
		out = append(out, p)
	}
	return out
}

// Error is the error Check returns: which rule refused which address.
type Error struct {
	Addr   netip.Addr
	Prefix netip.Prefix // the matching range
	Name   string       // registry name and RFC, for special-purpose ranges
	Reason error        // ErrSpecial, ErrOwnNetwork or ErrAllowed
}

func (e *Error) Error() string {
	switch e.Reason {
	case ErrOwnNetwork:
		return fmt.Sprintf("%s is in %s, one of this site's own networks", e.Addr, e.Prefix)
	case ErrAllowed:
		return fmt.Sprintf("%s is on the allow-list (%s)", e.Addr, e.Prefix)
	}
	if !e.Addr.IsValid() {
		return "not an IP address"
	}
	return fmt.Sprintf("%s is in %s (%s)", e.Addr, e.Prefix, e.Name)
}

func (e *Error) Unwrap() error { return e.Reason }

// Check returns nil if ip may be listed. Otherwise it returns an *Error
// wrapping ErrSpecial, ErrOwnNetwork or ErrAllowed, whose text names the
// range, e.g. "10.1.2.3 is in 10.0.0.0/8 (Private-Use, RFC 1918)".
//
// IPv4-mapped IPv6 addresses are checked as the IPv4 address they carry
// (RFC 4291 §2.5.5.2): ::ffff:127.0.0.1 is loopback, whatever the
// transport it was seen on. A zone (fe80::1%eth0) is ignored.
func (p *Policy) Check(ip netip.Addr) error {
	ip = ip.Unmap().WithZone("")
	if !ip.IsValid() {
		return &Error{Reason: ErrSpecial}
	}
	if prefix, name, ok := Special(ip); ok && !(p.allowDoc && isDocumentation(prefix)) {
		return &Error{Addr: ip, Prefix: prefix, Name: name, Reason: ErrSpecial}
	}
	for _, n := range p.own {
		if n.Contains(ip) {
			return &Error{Addr: ip, Prefix: n, Reason: ErrOwnNetwork}
		}
	}
	for _, n := range p.allow {
		if n.Contains(ip) {
			return &Error{Addr: ip, Prefix: n, Reason: ErrAllowed}
		}
	}
	return nil
}

// Special reports whether ip is in a range that may never be listed, and
// if so the most specific such range and its name with the RFC that
// defines it (e.g. "Private-Use, RFC 1918"). IPv4-mapped addresses are
// looked up as IPv4.
func Special(ip netip.Addr) (prefix netip.Prefix, name string, ok bool) {
	ip = ip.Unmap().WithZone("")
	if !ip.IsValid() {
		return netip.Prefix{}, "", false
	}
	for _, e := range specialTable {
		// More specific entries are nested in broader ones
		// (192.0.0.8/32 in 192.0.0.0/24); report the most specific.
		if e.prefix.Contains(ip) && (!ok || e.prefix.Bits() > prefix.Bits()) {
			prefix, name, ok = e.prefix, e.name, true
		}
	}
	return prefix, name, ok
}

func isDocumentation(p netip.Prefix) bool {
	for _, d := range documentation {
		if d == p {
			return true
		}
	}
	return false
}
