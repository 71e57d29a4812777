package dnsbl

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The parsed template gives what strings.Replacer, which it replaces, gave.
func TestTXTTemplateAgreesWithReplacer(t *testing.T) {
	e := &Entry{Expires: time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC), FirstSeen: time.Date(2026, 11, 29, 9, 8, 7, 0, time.FixedZone("x", 3600)),
		Hits: 42, Origins: []string{"site-a.example", "site-b.example"}}
	for _, tmpl := range []string{
		defaultTXT,
		"",
		"{ip}",
		"{ip}{ip}{hits}",
		"listed {ip} by {origins} ({hits}) from {first_seen} until {expires}.",
		"{ {ip {ip}} {unknown} {{hits}} }{",
		"no fields at all",
		"{origins",
	} {
		for _, ip := range []netip.Addr{netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("2001:db8::7")} {
			want := strings.NewReplacer(
				"{ip}", ip.String(),
				"{origins}", strings.Join(e.Origins, ","),
				"{hits}", strconv.Itoa(e.Hits),
				"{expires}", e.Expires.UTC().Format(time.RFC3339),
				"{first_seen}", e.FirstSeen.UTC().Format(time.RFC3339),
			).Replace(tmpl)
			if got := parseTXT(tmpl).render(ip, e); got != want {
				t.Errorf("template %q for %s: %q, want %q", tmpl, ip, got, want)
			}
		}
	}
}

func FuzzTXTTemplate(f *testing.F) {
	f.Add("{ip} {origins} {hits} {expires} {first_seen}")
	f.Add("{{ip}}{")
	e := &Entry{Expires: time.Unix(1795000000, 0), FirstSeen: time.Unix(1794900000, 0), Hits: 3, Origins: []string{"a", "b"}}
	ip := netip.MustParseAddr("192.0.2.1")
	f.Fuzz(func(t *testing.T, tmpl string) {
		want := strings.NewReplacer("{ip}", ip.String(), "{origins}", "a,b", "{hits}", "3",
			"{expires}", e.Expires.UTC().Format(time.RFC3339), "{first_seen}", e.FirstSeen.UTC().Format(time.RFC3339)).Replace(tmpl)
		if got := parseTXT(tmpl).render(ip, e); got != want {
			t.Errorf("template %q: %q, want %q", tmpl, got, want)
		}
	})
}
