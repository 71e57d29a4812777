package dnsutil

import (
	"strings"
	"unicode/utf8"
)

// MaxCharString is the longest <character-string> a TXT record can hold
// (RFC 1035 §3.3): one length byte, then the text.
const MaxCharString = 255

// TXT returns the Txt field of a dns.TXT record that carries text byte
// for byte: the text split into character-strings (SplitTXT), each
// escaped (EscapeTXT). miekg/dns holds TXT data in presentation form, so
// text put there unescaped loses its backslashes ("back\slash" is packed
// as "backslash", "\065" as "A") and a quote can end the string early.
func TXT(text string) []string {
	parts := SplitTXT(text)
	for i, p := range parts {
		parts[i] = EscapeTXT(p)
	}
	return parts
}

// TXTText returns the text a dns.TXT record's Txt field carries: its
// character-strings unescaped and joined, as DNSBL clients show them
// (RFC 7208 §3.3 joins them the same way for SPF). It is the inverse of
// TXT, and reads what miekg/dns unpacks from the wire, so two records
// carry the same text exactly when their TXTText are equal, however each
// was split or escaped.
func TXTText(txt []string) string {
	var b strings.Builder
	for _, s := range txt {
		b.WriteString(UnescapeTXT(s))
	}
	return b.String()
}

// SplitTXT cuts text into character-strings of at most MaxCharString
// bytes. It does not cut inside a UTF-8 sequence, so that a client that
// shows each string by itself shows whole characters; bytes that are not
// UTF-8 are cut anywhere. An empty text gives one empty string, since a
// TXT record holds at least one.
func SplitTXT(text string) []string {
	if text == "" {
		return []string{""}
	}
	out := make([]string, 0, len(text)/MaxCharString+1)
	for len(text) > MaxCharString {
		part := CutText(text, MaxCharString)
		out = append(out, part)
		text = text[len(part):]
	}
	return append(out, text)
}

// CutText returns the longest prefix of s of at most n bytes that does
// not end inside a UTF-8 sequence (any prefix of n bytes if s is not
// UTF-8 there). n must be at least utf8.UTFMax.
func CutText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for k := n; k > n-utf8.UTFMax && k > 0; k-- {
		if utf8.RuneStart(s[k]) {
			return s[:k]
		}
	}
	return s[:n]
}

// EscapeTXT writes one character-string in the presentation form that
// dns.TXT's Txt holds: a backslash or a double quote gets a backslash,
// a byte outside printable ASCII becomes \DDD (RFC 1035 §5.1). This is
// exactly the form miekg/dns unpacks a record into, so an escaped string
// equals the one read back from a server.
func EscapeTXT(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' || c == '"':
			n++
		case c < ' ' || c > '~':
			n += 3
		}
	}
	if n == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + n)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' || c == '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < ' ' || c > '~':
			b.WriteByte('\\')
			b.WriteByte('0' + c/100)
			b.WriteByte('0' + c/10%10)
			b.WriteByte('0' + c%10)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// UnescapeTXT reads one character-string in presentation form back into
// its bytes, as miekg/dns does when it packs a record: \DDD is the byte
// DDD, a backslash before any other byte stands for that byte, and a
// lone final backslash is dropped.
func UnescapeTXT(s string) string {
	i := strings.IndexByte(s, '\\')
	if i < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b = append(b, c)
			continue
		}
		i++
		switch {
		case i == len(s):
		case i+2 < len(s) && isDigit(s[i]) && isDigit(s[i+1]) && isDigit(s[i+2]):
			// Byte arithmetic, like miekg/dns: \256 and above wrap
			// rather than fail, so both read such text the same.
			b = append(b, (s[i]-'0')*100+(s[i+1]-'0')*10+(s[i+2]-'0'))
			i += 2
		default:
			b = append(b, s[i])
		}
	}
	return string(b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
