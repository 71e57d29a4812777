package dnsbl

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// TXTTemplate is a TXT template ({ip}, {origins}, {hits}, {expires},
// {first_seen}) parsed once, for the other places that publish listings
// (DNS UPDATE, the rbldnsd export) to write the same text as the server.
type TXTTemplate struct{ t txtTemplate }

// ParseTXTTemplate parses tmpl; text that is not a field is kept as is.
func ParseTXTTemplate(tmpl string) TXTTemplate { return TXTTemplate{parseTXT(tmpl)} }

// Render fills the template for ip's listing e.
func (t TXTTemplate) Render(ip netip.Addr, e Entry) string { return t.t.render(ip, &e) }

// txtTemplate is Config.TXT parsed once: literal text and fields. Building
// a strings.Replacer for every answer cost a dozen allocations per TXT
// record, which a million-listing AXFR paid a million times.
type txtTemplate []txtPart

type txtPart struct {
	lit   string
	field txtField // 0: lit
}

type txtField uint8

const (
	fieldIP txtField = iota + 1
	fieldOrigins
	fieldHits
	fieldExpires
	fieldFirstSeen
)

var txtFields = []struct {
	name  string
	field txtField
}{
	{"{ip}", fieldIP}, {"{origins}", fieldOrigins}, {"{hits}", fieldHits},
	{"{expires}", fieldExpires}, {"{first_seen}", fieldFirstSeen},
}

// parseTXT splits tmpl at its fields; anything else, braces included, is
// literal text, as strings.Replacer would leave it.
func parseTXT(tmpl string) txtTemplate {
	var t txtTemplate
	lit := 0
	for i := 0; i < len(tmpl); {
		f, n := fieldAt(tmpl[i:])
		if f == 0 {
			i++
			continue
		}
		if lit < i {
			t = append(t, txtPart{lit: tmpl[lit:i]})
		}
		t = append(t, txtPart{field: f})
		i += n
		lit = i
	}
	if lit < len(tmpl) {
		t = append(t, txtPart{lit: tmpl[lit:]})
	}
	return t
}

// fieldAt returns the field s starts with and its length, or 0.
func fieldAt(s string) (txtField, int) {
	if s == "" || s[0] != '{' {
		return 0, 0
	}
	for _, f := range txtFields {
		if strings.HasPrefix(s, f.name) {
			return f.field, len(f.name)
		}
	}
	return 0, 0
}

// render fills the template for ip's listing e.
func (t txtTemplate) render(ip netip.Addr, e *Entry) string {
	var b strings.Builder
	b.Grow(128)
	var buf [64]byte
	for _, p := range t {
		switch p.field {
		case 0:
			b.WriteString(p.lit)
		case fieldIP:
			b.Write(ip.AppendTo(buf[:0]))
		case fieldOrigins:
			for i, o := range e.Origins {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(o)
			}
		case fieldHits:
			b.Write(strconv.AppendInt(buf[:0], int64(e.Hits), 10))
		case fieldExpires:
			b.Write(e.Expires.UTC().AppendFormat(buf[:0], time.RFC3339))
		case fieldFirstSeen:
			b.Write(e.FirstSeen.UTC().AppendFormat(buf[:0], time.RFC3339))
		}
	}
	return b.String()
}
