package received

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"strings"
)

// Site describes the site's own mail hosts: where trust ends.
type Site struct {
	// MX holds glob patterns (path.Match syntax, matched case-insensitively)
	// for the names of the site's MX hosts. A host is the site's own when
	// its reverse name, as recorded and verified by the MTA, matches one;
	// a Received field counts as the MX's when its "by" host matches one.
	MX []string
	// Trusted holds the site's own networks: a client in one of them is a
	// site host, whatever its name.
	Trusted []netip.Prefix
}

// NewSite checks the MX patterns and returns a Site.
func NewSite(mx []string, trusted []netip.Prefix) (*Site, error) {
	s := &Site{Trusted: trusted}
	for _, m := range mx {
		p := normName(m)
		if p == "" {
			return nil, errors.New("empty MX pattern")
		}
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("MX pattern %q: %w", m, err)
		}
		s.MX = append(s.MX, p)
	}
	return s, nil
}

// MaxHops bounds the number of Received fields looked at; the MX's field is
// near the top of any real message.
const MaxHops = 100

// ErrNoSource is wrapped by every error of Source that means "there is no
// trustworthy answer": the caller reports nothing.
var ErrNoSource = errors.New("no trustworthy source address")

// Answer is the address that handed the message to the site's MX.
type Answer struct {
	IP netip.Addr
	// Index is the position of the MX's Received field, 0 being the top.
	Index int
	// Hop is that field, parsed.
	Hop Hop
}

// Source walks Received field values from the top (the most recent first,
// as they appear in the message) through the site's own hosts, and returns
// the first client outside them, provided the field that records it was
// written by one of the site's MX hosts. Fields below the answer are never
// read: anyone can forge them.
func (s *Site) Source(fields []string) (Answer, error) {
	if len(fields) == 0 {
		return Answer{}, fmt.Errorf("%w: the message has no Received field", ErrNoSource)
	}
	prevMX := false // the previous client was a site host whose verified name matches MX
	for i, f := range fields {
		if i >= MaxHops {
			return Answer{}, fmt.Errorf("%w: no client outside the site in the first %d Received fields", ErrNoSource, MaxHops)
		}
		h, err := Parse(f)
		if err != nil {
			return Answer{}, fmt.Errorf("%w: Received field %d: %w; nothing below it can be trusted", ErrNoSource, i+1, err)
		}
		if !h.HasClient() {
			continue
		}
		if own, _ := s.Own(h); own {
			prevMX = h.NameVerified && s.matchMX(h.ReverseName)
			continue
		}
		if !(s.matchMX(h.By) || prevMX) {
			by := h.By
			if by == "" {
				by = "a host that does not name itself"
			}
			return Answer{}, fmt.Errorf("%w: the first client outside the site, %s (Received field %d), was received by %s, which matches no MX pattern (-m %s)",
				ErrNoSource, h.IP, i+1, by, strings.Join(s.MX, " -m "))
		}
		if !h.IP.IsGlobalUnicast() {
			// Unspecified, multicast, link-local: not a sender address;
			// the field is broken and so is everything below it.
			return Answer{}, fmt.Errorf("%w: Received field %d records client address %s, which cannot have sent mail", ErrNoSource, i+1, h.IP)
		}
		return Answer{IP: h.IP, Index: i, Hop: h}, nil
	}
	return Answer{}, fmt.Errorf("%w: every Received field records a site host or no client (no MX received it from outside)", ErrNoSource)
}

// Own reports whether the hop's client is one of the site's hosts, and why.
func (s *Site) Own(h Hop) (bool, string) {
	ip := h.IP.Unmap()
	if ip.IsLoopback() {
		return true, "loopback"
	}
	for _, p := range s.Trusted {
		if p.Contains(ip) {
			return true, "trusted network " + p.String()
		}
	}
	if h.NameVerified && s.matchMX(h.ReverseName) {
		return true, "verified name " + h.ReverseName
	}
	return false, ""
}

func (s *Site) matchMX(name string) bool {
	n := normName(name)
	if n == "" {
		return false
	}
	for _, p := range s.MX {
		if ok, _ := path.Match(p, n); ok {
			return true
		}
	}
	return false
}
