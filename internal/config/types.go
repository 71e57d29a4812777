package config

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/dst-traps/dst/internal/classify"
)

// The types of this file are the values of the keys that are not plain
// strings or numbers. Each parses itself when the file is decoded, so a bad
// value is reported with its key and line, and the daemon uses the parsed
// value without parsing it again. Each prints itself back (MarshalText) as
// a value that loads the same.

// Duration is a time.Duration written as in Go ("90s", "36h") or in days
// ("30d"), which is how retention is usually thought of.
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseFloat(n, 64)
		if err != nil {
			return fmt.Errorf("duration %q: want e.g. 90s, 36h or 30d", s)
		}
		d.Duration = time.Duration(days * float64(24*time.Hour))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: want e.g. 90s, 36h or 30d", s)
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Prefix is an address range, written as a CIDR ("192.0.2.0/24",
// "2001:db8::/32") or as a bare address, which means that address alone.
type Prefix struct{ netip.Prefix }

// ParsePrefix reads a CIDR or a bare address, as the configuration and the
// allow file write them. The CIDR is masked ("192.0.2.7/24" is
// 192.0.2.0/24); a bare IPv4-mapped address is its IPv4 address.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither an address nor a CIDR: want e.g. 192.0.2.0/24, 2001:db8::/32 or 192.0.2.1", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ParsePrefixes reads a list of CIDRs and bare addresses (ParsePrefix).
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		p, err := ParsePrefix(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *Prefix) UnmarshalText(b []byte) error {
	v, err := ParsePrefix(string(b))
	if err != nil {
		return err
	}
	p.Prefix = v
	return nil
}

// MarshalText implements encoding.TextMarshaler: a single address is
// written bare, as it usually is in the file.
func (p Prefix) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// String is the prefix as MarshalText writes it.
func (p Prefix) String() string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.Prefix.String()
}

// Prefixes is a list of address ranges.
type Prefixes []Prefix

// Netip is the list as the packages that match addresses take it.
func (ps Prefixes) Netip() []netip.Prefix {
	if ps == nil {
		return nil
	}
	out := make([]netip.Prefix, len(ps))
	for i, p := range ps {
		out[i] = p.Prefix
	}
	return out
}

// Addr is an IP address ("127.0.0.2", "2001:db8::1").
type Addr struct{ netip.Addr }

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *Addr) UnmarshalText(b []byte) error {
	v, err := netip.ParseAddr(string(b))
	if err != nil {
		return fmt.Errorf("%q is not an IP address: want e.g. 127.0.0.2", b)
	}
	a.Addr = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (a Addr) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// HostPort is a TCP or UDP address as net.Listen and net.Dial take it:
// "127.0.0.1:1119", "[::1]:53", "dst.example.net:1119", ":1119" (every
// interface). The zero HostPort is "" in the file: not set.
type HostPort struct {
	Host string // a name or an address, without brackets; "" is every interface
	Port string // a number or a service name
}

// ParseHostPort reads "host:port"; "" is the zero HostPort.
func ParseHostPort(s string) (HostPort, error) {
	if s == "" {
		return HostPort{}, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || port == "" {
		return HostPort{}, fmt.Errorf("%q is not host:port: want e.g. 127.0.0.1:1119 or [::1]:1119", s)
	}
	return HostPort{Host: host, Port: port}, nil
}

// MustParseHostPort is ParseHostPort for values known to be good, such as
// a listener's address; it panics on a bad one.
func MustParseHostPort(s string) HostPort {
	h, err := ParseHostPort(s)
	if err != nil {
		panic(err)
	}
	return h
}

// IsZero reports whether h is not set.
func (h HostPort) IsZero() bool { return h == HostPort{} }

// String is "host:port" (brackets around an IPv6 host), "" when not set.
func (h HostPort) String() string {
	if h.IsZero() {
		return ""
	}
	return net.JoinHostPort(h.Host, h.Port)
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *HostPort) UnmarshalText(b []byte) error {
	v, err := ParseHostPort(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (h HostPort) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// HostPorts is a list of addresses, each a HostPort that must be set: an
// empty entry in a list of listeners is a mistake, not "every interface on
// a random port".
type HostPorts []HostPort

// UnmarshalTOML implements toml.Unmarshaler: it gets the whole list, so
// that it can refuse an empty entry, which a lone HostPort takes for "not
// set".
func (hs *HostPorts) UnmarshalTOML(v any) error {
	list, ok := v.([]any)
	if !ok {
		return fmt.Errorf("want a list of host:port, e.g. [\"127.0.0.1:1119\"]")
	}
	out := make(HostPorts, 0, len(list))
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			return fmt.Errorf("%v is not a quoted host:port: want e.g. [\"127.0.0.1:1119\"]", e)
		}
		if s == "" {
			return fmt.Errorf("an entry is empty: want host:port, e.g. \"127.0.0.1:1119\"")
		}
		h, err := ParseHostPort(s)
		if err != nil {
			return err
		}
		out = append(out, h)
	}
	*hs = out
	return nil
}

// Strings is the list as net.Listen and the dialers take it.
func (hs HostPorts) Strings() []string {
	if hs == nil {
		return nil
	}
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.String()
	}
	return out
}

// LogLevel is the least severity dstd logs: debug, info, warn or error.
type LogLevel struct{ slog.Level }

var logLevels = map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *LogLevel) UnmarshalText(b []byte) error {
	v, ok := logLevels[string(b)]
	if !ok {
		return fmt.Errorf("%q is not a log level: want debug, info, warn or error", b)
	}
	l.Level = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (l LogLevel) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// String is the level as the file writes it.
func (l LogLevel) String() string {
	for name, v := range logLevels {
		if v == l.Level {
			return name
		}
	}
	return strings.ToLower(l.Level.String())
}

// PeerTLS is how an outgoing feed uses TLS: "" (not at all), "starttls"
// or "implicit".
type PeerTLS string

// The values of PeerTLS, spelt as the NNTP client's TLS modes.
const (
	PeerTLSNone     PeerTLS = ""
	PeerTLSStartTLS PeerTLS = "starttls"
	PeerTLSImplicit PeerTLS = "implicit"
)

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *PeerTLS) UnmarshalText(b []byte) error {
	switch v := PeerTLS(b); v {
	case PeerTLSNone, PeerTLSStartTLS, PeerTLSImplicit:
		*t = v
		return nil
	}
	return fmt.Errorf("%q is not a TLS mode: want \"starttls\", \"implicit\" or \"\" (no TLS)", b)
}

// MarshalText implements encoding.TextMarshaler.
func (t PeerTLS) MarshalText() ([]byte, error) { return []byte(t), nil }

// ReportClass is a class of trap hit that policy.list_classes names:
// "spam", "backscatter" or "auto-reply" (internal/classify). A name this
// version does not know is refused: it would list nothing, silently.
type ReportClass string

// UnmarshalText implements encoding.TextUnmarshaler.
func (c *ReportClass) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if classify.IsKnown(classify.Class(s)) {
		*c = ReportClass(s)
		return nil
	}
	names := make([]string, len(classify.Known))
	for i, k := range classify.Known {
		names[i] = strconv.Quote(string(k))
	}
	if s == string(classify.Authenticated) {
		return fmt.Errorf("class %q: dstc never reports mail from clients that authenticated at the MX; use %s", s, strings.Join(names, ", "))
	}
	return fmt.Errorf("class %q is not one of %s", s, strings.Join(names, ", "))
}

// MarshalText implements encoding.TextMarshaler.
func (c ReportClass) MarshalText() ([]byte, error) { return []byte(c), nil }
