package article

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

// maxMessageID is the longest msg-id, angle brackets included
// (RFC 5536 §3.1.3).
const maxMessageID = 250

// NewMessageID returns a new Message-ID of the form <random@domain>, with
// 128 random bits in the left part. That much randomness makes a collision
// between sites as unlikely as a collision of UUIDs, without any
// coordination; history deduplication (RFC 5537 §3.2) depends on it.
//
// domain should be the site's domain name; it is not checked, so an invalid
// domain gives an invalid Message-ID (see ValidMessageID).
func NewMessageID(domain string) string {
	var b [16]byte
	// crypto/rand.Read never returns an error (and never returns short)
	// since Go 1.24; it aborts the program if the system cannot supply
	// randomness.
	_, _ = rand.Read(b[:])
	// Lower-case base32hex without padding: letters and digits only, so
	// the left part is a dot-atom-text whatever the letter-case habits
	// of the software that stores it.
	left := strings.ToLower(base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
	return "<" + left + "@" + domain + ">"
}

// ValidMessageID reports whether id is a msg-id-core as defined by RFC 5536
// §3.1.3: "<" id-left "@" id-right ">", at most 250 octets, printable
// US-ASCII only, without white space or comments, where id-left is a
// dot-atom-text or a no-fold-quote and id-right is a dot-atom-text or a
// no-fold-literal. This is stricter than RFC 5322 §3.6.4 on purpose: netnews
// compares Message-IDs as strings, so there must be one spelling of each.
func ValidMessageID(id string) bool {
	if len(id) < len("<a@b>") || len(id) > maxMessageID {
		return false
	}
	if id[0] != '<' || id[len(id)-1] != '>' {
		return false
	}
	core := id[1 : len(id)-1]

	var n int
	if core[0] == '"' {
		n = noFoldQuote(core)
	} else {
		n = dotAtomText(core)
	}
	if n <= 0 || n >= len(core) || core[n] != '@' {
		return false
	}
	right := core[n+1:]
	if right == "" {
		return false
	}
	if right[0] == '[' {
		return noFoldLiteral(right) == len(right)
	}
	return dotAtomText(right) == len(right)
}

// isAtext reports whether c is RFC 5322 §3.2.3 atext.
func isAtext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// dotAtomText returns the length of the dot-atom-text (RFC 5322 §3.2.3:
// 1*atext *("." 1*atext)) at the start of s, or 0 if there is none.
func dotAtomText(s string) int {
	i := 0
	for {
		start := i
		for i < len(s) && isAtext(s[i]) {
			i++
		}
		if i == start {
			// Empty atom: at the start, or after a dot (which then
			// does not belong to the dot-atom-text).
			if start == 0 {
				return 0
			}
			return start - 1
		}
		if i < len(s) && s[i] == '.' {
			i++
			continue
		}
		return i
	}
}

// noFoldQuote returns the length of the no-fold-quote at the start of s, or
// 0. RFC 5536 §3.1.3:
//
//	no-fold-quote = DQUOTE *( mqtext / "\\" / "\" DQUOTE ) mqtext
//	                       *( mqtext / "\\" / "\" DQUOTE ) DQUOTE
//	mqtext        = %d33 / %d35-61 / %d63-91 / %d93-126
//
// That is, at least one mqtext, and no '>' anywhere.
func noFoldQuote(s string) int {
	if len(s) < 3 || s[0] != '"' {
		return 0
	}
	sawText := false
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			if !sawText {
				return 0
			}
			return i + 1
		case c == '\\':
			if i+1 >= len(s) || (s[i+1] != '\\' && s[i+1] != '"') {
				return 0
			}
			i++
		case c == 33 || (35 <= c && c <= 61) || (63 <= c && c <= 91) || (93 <= c && c <= 126):
			sawText = true
		default:
			return 0
		}
	}
	return 0
}

// noFoldLiteral returns the length of the no-fold-literal at the start of
// s, or 0. RFC 5536 §3.1.3:
//
//	no-fold-literal = "[" *( mdtext / "\[" / "\]" / "\\" ) mdtext
//	                      *( mdtext / "\[" / "\]" / "\\" ) "]"
//	mdtext          = %d33-61 / %d63-90 / %d94-126
func noFoldLiteral(s string) int {
	if len(s) < 3 || s[0] != '[' {
		return 0
	}
	sawText := false
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ']':
			if !sawText {
				return 0
			}
			return i + 1
		case c == '\\':
			if i+1 >= len(s) || (s[i+1] != '[' && s[i+1] != ']' && s[i+1] != '\\') {
				return 0
			}
			i++
		case (33 <= c && c <= 61) || (63 <= c && c <= 90) || (94 <= c && c <= 126):
			sawText = true
		default:
			return 0
		}
	}
	return 0
}
