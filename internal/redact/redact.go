package redact

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/quotedprintable"
	"regexp"
	"strings"
	"unicode/utf8"
)

// recipientFields are replaced whole, whatever they hold: besides the trap
// they may name the site's other traps (one spam to several of them), and
// they are no evidence of who sent the message. Lower case.
var recipientFields = map[string]bool{
	"to": true, "cc": true, "bcc": true,
	"delivered-to": true, "x-original-to": true, "envelope-to": true, "x-envelope-to": true,
	"resent-to": true, "resent-cc": true, "resent-bcc": true,
	"apparently-to": true, "x-apparently-to": true, "x-rcpt-to": true,
	"x-delivered-to": true, "x-forwarded-to": true, "x-original-recipient": true,
	"original-recipient": true, "final-recipient": true, "x-failed-recipients": true,
}

// receivedFor matches the "for" clause of a Received field (RFC 5321
// §4.4: "for" followed by a path or mailbox): "for <a@b>" (Postfix,
// Sendmail, most MTAs) or "for a@b" (Exim). The clause is kept and its
// address replaced, so that the field still reads as a Received field.
var receivedFor = regexp.MustCompile(`(?i)\bfor(\s+)(<[^>]*>|[^\s;<>()]*@[^\s;<>()]*)`)

// maxDepth bounds the MIME nesting Message walks; deeper parts are only
// searched for the address in its plain forms.
const maxDepth = 16

// Redactor removes trap addresses from messages.
type Redactor struct {
	// addr matches every known trap address in any case, in the forms it
	// takes in text: plain, with folding white space around the "@", and
	// with the "@" percent-encoded (URLs) or as an HTML character
	// reference. None of those forms can occur in a MIME boundary or in
	// base64, so replacing them never breaks the message's structure.
	addr *regexp.Regexp
}

// New returns a Redactor for the trap addresses addrs (invalid ones, see
// Normalize, are skipped). With none, Message still replaces the recipient
// fields and the Received "for" clauses.
func New(addrs ...string) *Redactor {
	var alts []string
	seen := map[string]bool{}
	for _, a := range addrs {
		n, err := Normalize(a)
		if err != nil || seen[n] {
			continue
		}
		seen[n] = true
		at := strings.LastIndexByte(n, '@')
		const fws = `(?:[ \t]|\r?\n[ \t])*`
		alts = append(alts, regexp.QuoteMeta(n[:at])+fws+`(?:@|%40|&#0*64;|&#[xX]0*40;)`+fws+regexp.QuoteMeta(n[at+1:]))
	}
	r := &Redactor{}
	if len(alts) > 0 {
		r.addr = regexp.MustCompile(`(?i)(?:` + strings.Join(alts, "|") + `)`)
	}
	return r
}

// Message returns msg (a whole message, or its header section only) with
// the trap addresses and recipient fields replaced by Placeholder:
//
//   - the recipient fields (To, Cc, Bcc, Delivered-To, X-Original-To,
//     Envelope-To, Resent-*, Apparently-To and the like; recipientFields)
//     are replaced whole, in the message and in every enclosed one;
//   - in Received fields, the address of the "for" clause;
//   - everywhere else, header fields (also inside RFC 2047 encoded words),
//     text and HTML bodies, and the parts of a MIME message (also when
//     they are base64 or quoted-printable encoded, which are decoded,
//     redacted and encoded again), every occurrence of a trap address in
//     any case, with its "@" as such, as %40 or as &#64; / &#x40;.
//
// The rest of the message is kept byte for byte, MIME boundaries
// included. What is not caught: the local part on its own ("Dear trap,"),
// an address spelled otherwise ("trap at example dot net"), in a charset
// that is not ASCII-compatible (UTF-16), inside attachments' own formats
// (archives, documents, images) and in non-MIME encodings (uuencode).
func (r *Redactor) Message(msg []byte) []byte {
	out := r.entity(msg, 0, true)
	// Whatever the walk missed, the plain forms never survive. Replacing
	// can in theory make a new occurrence out of the placeholder and its
	// neighbours, hence the loop; it ends at once in practice.
	for i := 0; r.addr != nil && i < 4 && r.addr.Match(out); i++ {
		out = r.addr.ReplaceAllLiteral(out, []byte(Placeholder))
	}
	return out
}

// entity redacts a message or a MIME part: its header section, then its
// body according to its Content-Type. A part without header fields is a
// body only (RFC 2046 §5.1.1: the default type, text/plain).
func (r *Redactor) entity(b []byte, depth int, isMessage bool) []byte {
	head, sep, body := splitHeader(b)
	if head == nil && !isMessage {
		return r.leaf(b, "")
	}
	fields := splitFields(head)
	var out bytes.Buffer
	out.Grow(len(b) + 64)
	ctype, cte := "", ""
	for _, f := range fields {
		name := fieldName(f)
		switch strings.ToLower(name) {
		case "content-type":
			ctype = unfold(f[len(name)+1:])
		case "content-transfer-encoding":
			cte = strings.ToLower(strings.TrimSpace(unfold(f[len(name)+1:])))
		}
		out.Write(r.field(f, name))
	}
	out.Write(sep)
	if len(body) == 0 {
		return out.Bytes()
	}
	if depth >= maxDepth {
		out.Write(r.plain(body))
		return out.Bytes()
	}
	mt, params, err := mime.ParseMediaType(ctype)
	switch {
	case err == nil && strings.HasPrefix(mt, "multipart/") && params["boundary"] != "":
		out.Write(r.multipart(body, params["boundary"], depth))
	case err == nil && (mt == "message/rfc822" || mt == "message/global") && isIdentity(cte):
		out.Write(r.entity(body, depth+1, true))
	case err == nil && (mt == "text/rfc822-headers" || mt == "message/global-headers") && isIdentity(cte):
		out.Write(r.entity(body, depth+1, true))
	default:
		out.Write(r.leaf(body, cte))
	}
	return out.Bytes()
}

// field redacts one header field, f, with its line ends.
func (r *Redactor) field(f []byte, name string) []byte {
	lname := strings.ToLower(name)
	if recipientFields[lname] {
		return []byte(name + ": <" + Placeholder + ">" + lineEnd(f))
	}
	if lname == "received" {
		f = receivedFor.ReplaceAll(f, []byte("for${1}<"+Placeholder+">"))
	}
	f = r.plain(f)
	if r.addr == nil || name == "" || !bytes.Contains(f, []byte("=?")) {
		return f
	}
	// RFC 2047 encoded words: decoded, the address may appear. Such a
	// field is written again decoded and redacted, encoded as a whole if
	// it is not ASCII.
	val := unfold(f[len(name)+1:])
	dec, err := new(mime.WordDecoder).DecodeHeader(val)
	if err != nil || !r.addr.MatchString(dec) {
		return f
	}
	dec = r.addr.ReplaceAllLiteralString(dec, Placeholder)
	if !isASCII(dec) {
		dec = mime.QEncoding.Encode("utf-8", strings.ToValidUTF8(dec, "\uFFFD"))
	}
	return []byte(name + ": " + strings.TrimSpace(dec) + lineEnd(f))
}

// plain replaces the trap addresses in their textual forms.
func (r *Redactor) plain(b []byte) []byte {
	if r.addr == nil {
		return b
	}
	return r.addr.ReplaceAllLiteral(b, []byte(Placeholder))
}

// leaf redacts a body that is not a container, decoding base64 and
// quoted-printable to look inside. It is encoded again only when the
// address was found, so an untouched part keeps its bytes.
func (r *Redactor) leaf(body []byte, cte string) []byte {
	if r.addr == nil {
		return body
	}
	switch cte {
	case "base64", "quoted-printable":
	default:
		return r.plain(body)
	}
	dec, err := decode(body, cte)
	if err != nil || !r.addr.Match(dec) {
		return r.plain(body)
	}
	dec = r.addr.ReplaceAllLiteral(dec, []byte(Placeholder))
	eol := "\n"
	if bytes.Contains(body, []byte("\r\n")) {
		eol = "\r\n"
	}
	var enc []byte
	if cte == "base64" {
		s := base64.StdEncoding.EncodeToString(dec)
		var w bytes.Buffer
		for len(s) > 76 {
			w.WriteString(s[:76] + eol)
			s = s[76:]
		}
		w.WriteString(s)
		enc = w.Bytes()
	} else {
		var w bytes.Buffer
		qw := quotedprintable.NewWriter(&w)
		// The decoded text's own line ends become the writer's CRLF;
		// a binary part keeps its bytes.
		qw.Binary = !utf8.Valid(dec)
		qw.Write(dec)
		qw.Close()
		enc = bytes.TrimSuffix(w.Bytes(), []byte("\r\n"))
		if eol == "\n" {
			enc = bytes.ReplaceAll(enc, []byte("\r\n"), []byte("\n"))
		}
	}
	// The body's last line end belongs to the next boundary delimiter
	// (RFC 2046 §5.1.1) or ends the message: keep it as it was.
	// In quoted-printable, a line end that the text does not end with
	// must be a soft one ("=").
	if bytes.HasSuffix(body, []byte("\n")) {
		if cte == "quoted-printable" && !bytes.HasSuffix(dec, []byte("\n")) {
			enc = append(enc, '=')
		}
		enc = append(enc, eol...)
	}
	return enc
}

// multipart redacts each part of a multipart body between its boundary
// delimiter lines, which are kept as they are, as are the preamble and
// epilogue apart from the plain forms of the address.
func (r *Redactor) multipart(body []byte, boundary string, depth int) []byte {
	delim := []byte("--" + boundary)
	var out bytes.Buffer
	out.Grow(len(body) + 64)
	inPart, closed := false, false
	partStart := 0
	flush := func(end int) {
		if inPart {
			out.Write(r.entity(body[partStart:end], depth+1, false))
		} else {
			out.Write(r.plain(body[partStart:end]))
		}
	}
	for i := 0; i < len(body); {
		j := bytes.IndexByte(body[i:], '\n')
		next := len(body)
		if j >= 0 {
			next = i + j + 1
		}
		line := body[i:next]
		if !closed && bytes.HasPrefix(line, delim) {
			rest := bytes.TrimRight(line[len(delim):], " \t\r\n")
			isClose := bytes.Equal(rest, []byte("--"))
			if len(rest) == 0 || isClose {
				// A delimiter line: what came before it is a part (or
				// the preamble), without the line end that precedes the
				// delimiter, which belongs to it (RFC 2046 §5.1.1).
				end := i
				if end > partStart && body[end-1] == '\n' {
					end--
					if end > partStart && body[end-1] == '\r' {
						end--
					}
				}
				flush(end)
				out.Write(body[end:next])
				partStart, inPart, closed = next, !isClose, isClose
			}
		}
		i = next
	}
	if closed {
		out.Write(r.plain(body[partStart:]))
	} else {
		flush(len(body))
	}
	return out.Bytes()
}

// splitHeader cuts an entity at the empty line that ends its header
// section: head (each field with its line end), the empty line, the body.
// A message that is only a header section has no empty line. An entity
// that starts with an empty line has no header fields: head is nil.
func splitHeader(b []byte) (head, sep, body []byte) {
	if bytes.HasPrefix(b, []byte("\r\n")) {
		return nil, b[:2], b[2:]
	}
	if bytes.HasPrefix(b, []byte("\n")) {
		return nil, b[:1], b[1:]
	}
	for i := 0; i < len(b); {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			break
		}
		next := i + j + 1
		if next < len(b) && b[next] == '\n' {
			return b[:next], b[next : next+1], b[next+1:]
		}
		if next+1 < len(b) && b[next] == '\r' && b[next+1] == '\n' {
			return b[:next], b[next : next+2], b[next+2:]
		}
		i = next
	}
	return b, nil, nil
}

// splitFields cuts a header section into fields, each with its
// continuation lines and line ends.
func splitFields(head []byte) [][]byte {
	var fields [][]byte
	start := 0
	for i := 0; i < len(head); {
		j := bytes.IndexByte(head[i:], '\n')
		next := len(head)
		if j >= 0 {
			next = i + j + 1
		}
		if i > start && head[i] != ' ' && head[i] != '\t' {
			fields = append(fields, head[start:i])
			start = i
		}
		i = next
	}
	if start < len(head) {
		fields = append(fields, head[start:])
	}
	return fields
}

// fieldName is the name of field f, or "" when f is not "name: value".
func fieldName(f []byte) string {
	i := bytes.IndexByte(f, ':')
	if i <= 0 {
		return ""
	}
	for _, c := range f[:i] {
		if c <= ' ' || c >= 0x7f {
			return ""
		}
	}
	return string(f[:i])
}

// unfold joins a field's continuation lines (RFC 5322 §2.2.3).
func unfold(v []byte) string {
	s := strings.ReplaceAll(string(v), "\r\n", "")
	return strings.TrimSpace(strings.ReplaceAll(s, "\n", ""))
}

// lineEnd is the line end f ends with, or "".
func lineEnd(f []byte) string {
	switch {
	case bytes.HasSuffix(f, []byte("\r\n")):
		return "\r\n"
	case bytes.HasSuffix(f, []byte("\n")):
		return "\n"
	}
	return ""
}

func isIdentity(cte string) bool {
	switch cte {
	case "", "7bit", "8bit", "binary":
		return true
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// decode undoes base64 or quoted-printable, strictly enough that a part
// that is not really encoded that way is left alone.
func decode(b []byte, cte string) ([]byte, error) {
	if cte == "quoted-printable" {
		return io.ReadAll(quotedprintable.NewReader(bytes.NewReader(b)))
	}
	clean := bytes.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, b)
	out := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
	n, err := base64.StdEncoding.Decode(out, clean)
	return out[:n], err
}
