// Package article reads and writes netnews articles (RFC 5536), the envelope
// in which DST reports travel between sites.
//
// An Article keeps every header field exactly as it appeared on the wire,
// folding included, because DKIM "simple" header canonicalisation
// (RFC 6376 §3.4.1) signs those bytes. Accessors such as Get unfold and trim
// for callers that only want the value.
//
// The wire form handled here is the article itself with CRLF line ends; it
// is not dot-stuffed. Dot-stuffing belongs to the NNTP transport (package
// nntp).
package article

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Errors returned by Parse. They are wrapped with the line or size that
// caused them, so test with errors.Is.
var (
	// ErrTooLarge means a limit in Limits was exceeded.
	ErrTooLarge = errors.New("article too large")
	// ErrMalformed means the article does not have the syntax of RFC 5536
	// §2 (which builds on RFC 5322 §2).
	ErrMalformed = errors.New("malformed article")
)

// Field is one header field.
type Field struct {
	// Name is the field name without the colon, as it appeared.
	Name string
	// Value is everything after the colon up to (not including) the CRLF
	// that ends the field: the leading space and any folding (CRLF
	// followed by a space or tab) are kept, so that Name + ":" + Value +
	// CRLF reproduces the original bytes.
	Value string
}

// Unfolded returns the value with folding removed (RFC 5322 §2.2.3: a CRLF
// that is followed by white space is deleted) and with leading and trailing
// white space trimmed.
func (f Field) Unfolded() string {
	v := f.Value
	if strings.Contains(v, "\r\n") {
		v = strings.ReplaceAll(v, "\r\n", "")
	}
	return strings.Trim(v, " \t")
}

// Article is a parsed netnews article.
//
// The zero value is an empty article ready for Set and Prepend. An Article
// is not safe for concurrent modification.
type Article struct {
	// Header holds the header fields in order, top first.
	Header []Field
	// Body is the body in CRLF form; every line, including the last, ends
	// in CRLF. It is empty when the article has no body.
	Body []byte
}

// Get returns the unfolded, trimmed value of the first field called name
// (compared case-insensitively, RFC 5322 §1.2.2), or "" if there is none.
func (a *Article) Get(name string) string {
	for _, f := range a.Header {
		if strings.EqualFold(f.Name, name) {
			return f.Unfolded()
		}
	}
	return ""
}

// Values returns the unfolded, trimmed values of all fields called name, in
// order (for fields that may repeat, such as Received).
func (a *Article) Values(name string) []string {
	var vs []string
	for _, f := range a.Header {
		if strings.EqualFold(f.Name, name) {
			vs = append(vs, f.Unfolded())
		}
	}
	return vs
}

// Set replaces the first field called name with a field holding value and
// deletes any further fields of that name; if there is none it appends the
// field at the end of the header.
//
// name must be a valid field name (a constant in practice). value is written
// after a single space and is not folded; folding already present in it
// (CRLF followed by a space or tab) is kept, and any other CR or LF is turned
// into a space so that a value taken from untrusted input cannot start a new
// header field.
func (a *Article) Set(name, value string) {
	nf := newField(name, value)
	out := a.Header[:0]
	done := false
	for _, f := range a.Header {
		if strings.EqualFold(f.Name, name) {
			if !done {
				out = append(out, nf)
				done = true
			}
			continue
		}
		out = append(out, f)
	}
	// Clear the tail so dropped fields do not linger in the backing array.
	clear(a.Header[len(out):])
	if !done {
		out = append(out, nf)
	}
	a.Header = out
}

// Prepend adds a field at the top of the header. Relaying and injecting
// agents add trace fields there (RFC 5537 §3.2.1, RFC 5322 §3.6.7). The value
// is treated as in Set.
func (a *Article) Prepend(name, value string) {
	a.Header = append([]Field{newField(name, value)}, a.Header...)
}

// Del deletes all fields called name.
func (a *Article) Del(name string) {
	out := a.Header[:0]
	for _, f := range a.Header {
		if !strings.EqualFold(f.Name, name) {
			out = append(out, f)
		}
	}
	clear(a.Header[len(out):])
	a.Header = out
}

func newField(name, value string) Field {
	return Field{Name: name, Value: " " + sanitizeValue(value)}
}

// sanitizeValue keeps valid folding (see isFold) and replaces every other
// line end (CRLF, CR or LF) by a space, so that Parse accepts the result.
func sanitizeValue(v string) string {
	if !strings.ContainsAny(v, "\r\n") {
		return v
	}
	var b strings.Builder
	b.Grow(len(v))
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' && i+1 < len(v) && v[i+1] == '\n' {
			if isFold(v[i+2:]) {
				b.WriteString("\r\n")
			} else {
				b.WriteByte(' ')
			}
			i++
			continue
		}
		if c == '\r' || c == '\n' {
			c = ' '
		}
		b.WriteByte(c)
	}
	return b.String()
}

// isFold reports whether s, the text after a CRLF, makes that CRLF valid
// folding: a continuation line that starts with white space and has
// something other than white space on it (see Parse).
func isFold(s string) bool {
	if s == "" || (s[0] != ' ' && s[0] != '\t') {
		return false
	}
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t':
		case '\r', '\n':
			return false
		default:
			return true
		}
	}
	return false
}

// Bytes returns the article in wire form: each header field followed by
// CRLF, an empty line, then the body. It is not dot-stuffed.
func (a *Article) Bytes() []byte {
	var b bytes.Buffer
	b.Grow(a.size())
	for _, f := range a.Header {
		b.WriteString(f.Name)
		b.WriteByte(':')
		b.WriteString(f.Value)
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	b.Write(a.Body)
	return b.Bytes()
}

// size is len(a.Bytes()) without building it.
func (a *Article) size() int {
	n := 2 + len(a.Body)
	for _, f := range a.Header {
		n += len(f.Name) + 1 + len(f.Value) + 2
	}
	return n
}

// Limits bounds what Parse accepts. A zero field takes its value from
// DefaultLimits, so a partly filled Limits is never unlimited by accident.
type Limits struct {
	// MaxBytes is the largest article, counted in wire form (CRLF line
	// ends).
	MaxBytes int64
	// MaxHeaderFields is the largest number of header fields.
	MaxHeaderFields int
	// MaxLineBytes is the longest header line, not counting its CRLF. It
	// applies to each physical line of a folded field. Body lines are not
	// limited (see DefaultLimits).
	MaxLineBytes int
}

// DefaultLimits returns the limits DST uses unless configured otherwise:
//
//   - MaxBytes 1,000,000: the default maxartsize of INN, so every article we
//     accept can also cross an INN relay, which DST requires. A report carries
//     the trapped message, and dstc truncates it to headers only when it is
//     too big, so this is ample.
//   - MaxHeaderFields 200: a report has about a dozen fields and relays add a
//     few; 200 leaves room while keeping the cost of a hostile header small.
//   - MaxLineBytes 998: the hard line limit of RFC 5322 §2.1.1, applied to
//     header lines only. Body lines are left alone because the body carries
//     the trapped spam verbatim, spam often has longer lines, and refusing
//     the report would lose the listing; MaxBytes still bounds the whole.
func DefaultLimits() Limits {
	return Limits{
		MaxBytes:        1000000,
		MaxHeaderFields: 200,
		MaxLineBytes:    998,
	}
}

func (lim Limits) withDefaults() Limits {
	d := DefaultLimits()
	if lim.MaxBytes <= 0 {
		lim.MaxBytes = d.MaxBytes
	}
	if lim.MaxHeaderFields <= 0 {
		lim.MaxHeaderFields = d.MaxHeaderFields
	}
	if lim.MaxLineBytes <= 0 {
		lim.MaxLineBytes = d.MaxLineBytes
	}
	return lim
}

// Parse parses an article in wire form. Lines may end in CRLF or in a bare
// LF; both become CRLF. The header must be followed by an empty line (the
// body after it may be empty).
//
// Parse is strict about the header, since DKIM signs it and relays route on
// it: it refuses a lone CR, a NUL byte, a header line without a colon, a
// field name that is empty or holds characters outside RFC 5322 §3.6.8
// ftext, a continuation line before the first field or made only of white
// space, and an article without header fields. The body is kept as it is,
// apart from line ends, and a last line without a line end gets one.
//
// Errors wrap ErrTooLarge or ErrMalformed and name the offending line.
func Parse(data []byte, lim Limits) (*Article, error) {
	lim = lim.withDefaults()
	// Normalising only ever adds bytes (CR before LF, a final CRLF), so an
	// input that is already too big cannot shrink under the limit.
	if int64(len(data)) > lim.MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(data), lim.MaxBytes)
	}

	a := &Article{}
	rest := data
	lineNo := 0
	for {
		if len(rest) == 0 {
			return nil, fmt.Errorf("%w: the header is not followed by an empty line (after line %d)", ErrMalformed, lineNo)
		}
		lineNo++
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return nil, fmt.Errorf("%w: line %d: the header is not followed by an empty line", ErrMalformed, lineNo)
		}
		line := rest[:i]
		rest = rest[i+1:]
		line = bytes.TrimSuffix(line, []byte("\r"))

		if len(line) == 0 {
			break // end of header (RFC 5322 §2.1)
		}
		if len(line) > lim.MaxLineBytes {
			return nil, fmt.Errorf("%w: line %d: header line is %d bytes, the limit is %d (RFC 5322 §2.1.1)", ErrTooLarge, lineNo, len(line), lim.MaxLineBytes)
		}
		if j := bytes.IndexByte(line, '\r'); j >= 0 {
			return nil, fmt.Errorf("%w: line %d: carriage return in the middle of a header line", ErrMalformed, lineNo)
		}
		if j := bytes.IndexByte(line, 0); j >= 0 {
			return nil, fmt.Errorf("%w: line %d: NUL byte in the header", ErrMalformed, lineNo)
		}

		if line[0] == ' ' || line[0] == '\t' {
			// Continuation of a folded field (RFC 5322 §2.2.3).
			if len(a.Header) == 0 {
				return nil, fmt.Errorf("%w: line %d: the first header line starts with white space", ErrMalformed, lineNo)
			}
			// A line of only white space is obsolete syntax (RFC 5322
			// §3.2.2, §4.2) and some software takes it for the end of
			// the header: refusing it avoids two readings of one article.
			if len(bytes.Trim(line, " \t")) == 0 {
				return nil, fmt.Errorf("%w: line %d: header continuation line contains only white space", ErrMalformed, lineNo)
			}
			f := &a.Header[len(a.Header)-1]
			f.Value += "\r\n" + string(line)
			continue
		}

		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			return nil, fmt.Errorf("%w: line %d: header line has no colon", ErrMalformed, lineNo)
		}
		name := line[:colon]
		if len(name) == 0 {
			return nil, fmt.Errorf("%w: line %d: header field name is empty", ErrMalformed, lineNo)
		}
		for _, c := range name {
			// RFC 5322 §3.6.8: ftext = %d33-57 / %d59-126.
			if c < 33 || c > 126 {
				return nil, fmt.Errorf("%w: line %d: header field name %q contains the character %q", ErrMalformed, lineNo, name, c)
			}
		}
		if len(a.Header) >= lim.MaxHeaderFields {
			return nil, fmt.Errorf("%w: line %d: more than %d header fields", ErrTooLarge, lineNo, lim.MaxHeaderFields)
		}
		a.Header = append(a.Header, Field{Name: string(name), Value: string(line[colon+1:])})
	}
	if len(a.Header) == 0 {
		return nil, fmt.Errorf("%w: line 1: the article has no header fields", ErrMalformed)
	}

	a.Body = normalizeBody(rest)
	if n := int64(a.size()); n > lim.MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes with CRLF line ends, the limit is %d", ErrTooLarge, n, lim.MaxBytes)
	}
	return a, nil
}

// normalizeBody turns bare LF line ends into CRLF and terminates an
// unterminated last line. A lone CR is kept: inside the body it is data,
// not a line end, and changing it would break DKIM body hashes made by
// others.
func normalizeBody(b []byte) []byte {
	if len(b) == 0 {
		return []byte{}
	}
	out := make([]byte, 0, len(b)+bytes.Count(b, []byte("\n"))+2)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			out = append(out, b...)
			out = append(out, '\r', '\n')
			break
		}
		line := bytes.TrimSuffix(b[:i], []byte("\r"))
		out = append(out, line...)
		out = append(out, '\r', '\n')
		b = b[i+1:]
	}
	return out
}
