// Package policy decides which addresses a site may never list, whatever
// the reports say.
//
// A report only claims that some address sent spam; a buggy or hostile peer
// could claim it of 127.0.0.1, of a private network, or of the receiving
// site's own mail servers, and a blocklist that listed those would break
// mail for everyone who uses it. So only global unicast addresses are ever
// listed: IPv4 outside the IANA IPv4 Special-Purpose Address Registry (RFC
// 6890) and multicast, IPv6 inside 2000::/3 and outside the IPv6 registry.
// Anything else is refused in every spelling: ::ffff:10.1.2.3 is 10.1.2.3,
// ::7f00:1 (IPv4-compatible) and 4000::1 (outside 2000::/3) are never
// sources, and the IPv6 forms that carry an IPv4 address and can be real
// sources (6to4, Teredo) are listed only when that IPv4 address could be.
// Of the global addresses, the site's own networks and its allow-list are
// refused too.
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
	// OwnNetworks and Allow are matched against the address and against
	// the IPv4 address of the host that a 6to4 or Teredo address carries
	// (2002:5102:4507::1 is the 6to4 site of 81.2.69.7).
	OwnNetworks []netip.Prefix // the site's own networks
	Allow       []netip.Prefix // allow-list (addresses as /32 or /128)
	// AllowDocumentation is for labs and tests only: it permits the
	// documentation ranges (RFC 5737, RFC 3849, RFC 9637), which test
	// setups use as spammers, also inside 6to4 and Teredo addresses, and
	// nothing else special.
	AllowDocumentation bool
	// ListClasses are the report classes (the DST-Class field) whose
	// reports list an address here; empty means spam only. A report
	// without the field is spam.
	ListClasses []string
}

// Policy answers Check. It is immutable, hence safe for concurrent use;
// build a new one to reload.
type Policy struct {
	own, allow []netip.Prefix
	allowDoc   bool
	classes    []string
}

// New returns the policy for c. Invalid prefixes are skipped; prefixes
// written as IPv4-mapped IPv6 (::ffff:10.0.0.0/104) are turned into their
// IPv4 form, since Check looks at IPv4-mapped addresses as IPv4.
func New(c Config) *Policy {
	classes := c.ListClasses
	if len(classes) == 0 {
		classes = []string{"spam"}
	}
	return &Policy{own: normalize(c.OwnNetworks), allow: normalize(c.Allow), allowDoc: c.AllowDocumentation,
		classes: append([]string(nil), classes...)}
}

// Lists reports whether a report of this class lists its address here
// (policy.list_classes). The others are stored and relayed, not listed:
// a bounce's sender is usually an innocent MTA. "" is spam, the class of
// a report without a DST-Class field.
func (p *Policy) Lists(class string) bool {
	if class == "" {
		class = "spam"
	}
	for _, c := range p.classes {
		if c == class {
			return true
		}
	}
	return false
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
	// Carried is set when Addr is refused for the IPv4 address it carries
	// (6to4, Teredo; Prefix and Name are then the embedding's): the
	// refusal of that IPv4 address, which CarriedAs names, e.g.
	// "Teredo client IPv4 address".
	Carried   *Error
	CarriedAs string
}

func (e *Error) Error() string {
	if e.Carried != nil {
		return fmt.Sprintf("%s is in %s (%s), and its %s %s", e.Addr, e.Prefix, e.Name, e.CarriedAs, e.Carried)
	}
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
// range, e.g. "10.1.2.3 is in 10.0.0.0/8 (Private-Use, RFC 1918)" or
// "2002:a01:203::1 is in 2002::/16 (6to4, RFC 3056), and its IPv4 address
// 10.1.2.3 is in 10.0.0.0/8 (Private-Use, RFC 1918)".
//
// IPv4-mapped IPv6 addresses are checked as the IPv4 address they carry
// (RFC 4291 §2.5.5.2): ::ffff:127.0.0.1 is loopback and ::ffff:8.8.8.8 is
// 8.8.8.8, which is also how DST stores them. A zone (fe80::1%eth0) is
// ignored.
func (p *Policy) Check(ip netip.Addr) error {
	ip = ip.Unmap().WithZone("")
	if !ip.IsValid() {
		return &Error{Reason: ErrSpecial}
	}
	e, hosts, err := p.special(ip)
	if err != nil {
		return err
	}
	if err := match(ip, e, hosts, p.own, ErrOwnNetwork); err != nil {
		return err
	}
	return match(ip, e, hosts, p.allow, ErrAllowed)
}

// match refuses ip with reason if one of nets holds it or one of the host
// addresses it carries (e is the embedding entry, when hosts are set).
func match(ip netip.Addr, e *special, hosts []carried, nets []netip.Prefix, reason error) error {
	for _, n := range nets {
		if n.Contains(ip) {
			return &Error{Addr: ip, Prefix: n, Reason: reason}
		}
	}
	for _, c := range hosts {
		for _, n := range nets {
			if n.Contains(c.ip) {
				inner := &Error{Addr: c.ip, Prefix: n, Reason: reason}
				return &Error{Addr: ip, Prefix: e.prefix, Name: e.name, Reason: reason, Carried: inner, CarriedAs: c.as}
			}
		}
	}
	return nil
}

// special refuses ip (unmapped, valid) unless it is global unicast, or in
// a documentation range and p allows those. For a 6to4 or Teredo address
// that passes, it returns the embedding entry and the IPv4 addresses of
// the host it carries, for the own-network and allow-list checks.
func (p *Policy) special(ip netip.Addr) (*special, []carried, *Error) {
	e := lookup(ip)
	if e == nil {
		if ip.Is6() && !globalUnicast.Contains(ip) {
			// Unreachable while specialTable covers all of IPv6 outside
			// 2000::/3 (TestOutsideGlobalUnicastNamed); kept so that a
			// gap in the table never becomes a listing.
			return nil, nil, &Error{Addr: ip, Prefix: netip.PrefixFrom(ip, 128), Name: "not global unicast (outside 2000::/3), RFC 4291 §2.4", Reason: ErrSpecial}
		}
		return nil, nil, nil
	}
	if e.carries != nil {
		var hosts []carried
		for _, c := range e.carries(ip) {
			if _, _, err := p.special(c.ip); err != nil {
				return nil, nil, &Error{Addr: ip, Prefix: e.prefix, Name: e.name, Reason: ErrSpecial, Carried: err, CarriedAs: c.as}
			}
			if c.host {
				hosts = append(hosts, c)
			}
		}
		return e, hosts, nil
	}
	if p.allowDoc && isDocumentation(e.prefix) {
		return nil, nil, nil
	}
	return nil, nil, &Error{Addr: ip, Prefix: e.prefix, Name: e.name, Reason: ErrSpecial}
}

// lookup returns the most specific entry of specialTable holding ip, or
// nil. More specific entries are nested in broader ones (192.0.0.8/32 in
// 192.0.0.0/24, 2001::/32 in 2001::/23); the most specific decides.
func lookup(ip netip.Addr) *special {
	var best *special
	for i := range specialTable {
		e := &specialTable[i]
		if e.prefix.Contains(ip) && (best == nil || e.prefix.Bits() > best.prefix.Bits()) {
			best = e
		}
	}
	return best
}

// Special reports whether a site with no own networks, allow-list or
// documentation switch refuses ip as not global unicast, and if so the
// most specific range responsible and its name with the RFC that defines
// it (e.g. "Private-Use, RFC 1918"). A 6to4 or Teredo address whose IPv4
// addresses are global is not special; one whose are not is reported as
// its 6to4 or Teredo range. IPv4-mapped addresses are looked up as IPv4.
func Special(ip netip.Addr) (prefix netip.Prefix, name string, ok bool) {
	ip = ip.Unmap().WithZone("")
	if !ip.IsValid() {
		return netip.Prefix{}, "", false
	}
	if _, _, err := (&Policy{}).special(ip); err != nil {
		return err.Prefix, err.Name, true
	}
	return netip.Prefix{}, "", false
}

func isDocumentation(p netip.Prefix) bool {
	for _, d := range documentation {
		if d == p {
			return true
		}
	}
	return false
}
