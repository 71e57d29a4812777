package feed

import (
	"bytes"
	"strings"

	"github.com/dst-traps/dst/internal/article"
)

// withSiteInPath returns art with site as the leftmost path-identity of its
// Path field, as a relaying agent adds itself before passing an article on
// (RFC 5537 §3.2.1), and the Path field body as it was (for
// article.PathContains; "" when there was none).
//
// The edit is made on the bytes of the Path field alone: the article is
// DKIM-signed, and Path is one of the fields the signature leaves out
// (docs/PROTOCOL.md §3.1) because every relay changes it, so every other
// byte must stay as the origin signed it. Re-serialising the header through
// a parser would risk changing folding or spacing elsewhere.
//
//   - A Path whose first path-identity is already site (the article was
//     injected here, or relayed here and stored with our name added) is left
//     alone: a site names itself once.
//   - A missing Path gets "Path: site!not-for-mail" at the top, as an
//     injecting agent would write it (RFC 5537 §3.5).
//   - An empty Path body is replaced by " site!not-for-mail".
//   - A folded Path keeps its folding: site+"!" goes right before the first
//     path-identity, wherever that is.
//   - With several Path fields (RFC 5536 §3.1.6 allows one), the first is
//     edited, as it is the one the receiver reads.
func withSiteInPath(art []byte, site string) (out []byte, path string) {
	colon, end, ok := findField(art, "Path")
	if !ok {
		head := "Path: " + site + "!" + article.DefaultPathTail + "\r\n"
		out = make([]byte, 0, len(head)+len(art))
		return append(append(out, head...), art...), ""
	}
	body := art[colon+1 : end]
	path = string(body)
	first := bytes.IndexFunc(body, func(r rune) bool { return !isFWS(r) })
	if first < 0 {
		eol := "\r\n"
		if !bytes.HasSuffix(body, []byte("\r\n")) {
			eol = string(body[len(bytes.TrimRight(body, "\r\n")):]) // "\n", or nothing at the end of the article
		}
		repl := " " + site + "!" + article.DefaultPathTail + eol
		return splice(art, colon+1, end, repl), path
	}
	ident := body[first:]
	if i := bytes.IndexByte(ident, '!'); i >= 0 {
		ident = ident[:i]
	}
	if strings.EqualFold(strings.TrimRight(string(ident), " \t\r\n"), site) {
		return art, path
	}
	at := colon + 1 + first
	return splice(art, at, at, site+"!"), path
}

// splice returns a new slice: art with art[from:to] replaced by s.
func splice(art []byte, from, to int, s string) []byte {
	out := make([]byte, 0, len(art)-(to-from)+len(s))
	out = append(out, art[:from]...)
	out = append(out, s...)
	return append(out, art[to:]...)
}

func isFWS(r rune) bool { return r == ' ' || r == '\t' || r == '\r' || r == '\n' }

// findField finds the first header field called name (case-insensitive, RFC
// 5322 §1.2.2) in the header section of art and returns the index of its
// colon and the end of the field: the index after the line end of its last
// line, continuation lines (starting with space or tab, RFC 5322 §2.2.3)
// included. The header section ends at the first empty line.
func findField(art []byte, name string) (colon, end int, ok bool) {
	pos := 0
	for pos < len(art) {
		line := art[pos:]
		next := len(art)
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i+1]
			next = pos + i + 1
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return 0, 0, false // the empty line: end of the header section
		}
		if line[0] != ' ' && line[0] != '\t' {
			if c := bytes.IndexByte(line, ':'); c >= 0 &&
				strings.EqualFold(strings.TrimRight(string(line[:c]), " \t"), name) {
				end = next
				for end < len(art) && (art[end] == ' ' || art[end] == '\t') {
					if i := bytes.IndexByte(art[end:], '\n'); i >= 0 {
						end += i + 1
					} else {
						end = len(art)
					}
				}
				return pos + c, end, true
			}
		}
		pos = next
	}
	return 0, 0, false
}
