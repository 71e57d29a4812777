// Package dkim authenticates the origin of DST reports.
//
// A report is a netnews article (RFC 5536) that the injecting site signs
// with DKIM (RFC 6376) using an Ed25519 key (RFC 8463). Relays prepend Path
// and may add Xref, Lines or Injection-* fields, so only the fields that a
// relay never touches are signed (SignedHeaders), with relaxed/relaxed
// canonicalization so that re-folding by a relay does not break the
// signature either.
//
// A receiving site trusts keys from its own keyring file (domain + selector
// -> public key), not from DNS: a report decides whether an address gets
// listed, so the set of sites allowed to do that is an explicit local
// decision. The cryptography is done by github.com/emersion/go-msgauth/dkim;
// this package adds the stricter rules DST needs around it (see
// Keyring.Verify).
package dkim

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/textproto"
	"strings"
	"unicode"
)

// SignedHeaders are the header fields the injecting site signs, in the order
// they appear in the h= tag. Fields added by relays (Path, Xref, Lines,
// Injection-Info, ...) are deliberately absent.
var SignedHeaders = []string{"From", "Date", "Message-ID", "Subject", "Newsgroups", "MIME-Version", "Content-Type"}

// requiredHeaders must be covered by h= for a signature to be trusted: a
// relay could otherwise replace any of them (for example point Subject or
// Content-Type elsewhere) without breaking the signature. MIME-Version is
// signed when present but not required, since its absence changes nothing
// that the rest of DST reads.
var requiredHeaders = []string{"From", "Date", "Message-ID", "Newsgroups", "Content-Type", "Subject"}

// guardedHeaders turn an ordinary article into a control message (RFC 5536
// §3.2.3 Control, §3.2.12 Supersedes). If one is present it must be signed:
// otherwise anyone could staple "Control: cancel <id>" to a genuine report
// of a site and retract that site's other reports in its name.
var guardedHeaders = []string{"Control", "Supersedes"}

// maxSignatures bounds the work an article can cause: the library hashes the
// whole body once per DKIM-Signature field, and a report carries one.
const maxSignatures = 4

const signatureField = "DKIM-Signature"

// Errors returned by Keyring.Verify, so that callers can count refusals by
// reason. They are wrapped with details; test with errors.Is.
var (
	// ErrNoSignature: the article carries no DKIM-Signature field.
	ErrNoSignature = errors.New("article has no DKIM-Signature")
	// ErrUnknownKey: no signature names a (domain, selector) in the keyring.
	ErrUnknownKey = errors.New("no key in the keyring for the signer")
	// ErrBadSignature: a signature made with a known key does not verify;
	// the article was altered after signing, or forged.
	ErrBadSignature = errors.New("DKIM signature does not verify")
	// ErrWeakSignature: the signature is well formed but does not protect
	// enough of the article to be trusted (l=, h= missing required fields,
	// an algorithm other than ed25519-sha256).
	ErrWeakSignature = errors.New("DKIM signature too weak to trust")
	// ErrDuplicateField: a field covered by the signature appears more than
	// once, so a relay could have prepended a second instance (RFC 6376
	// §8.15).
	ErrDuplicateField = errors.New("signed header field appears more than once")
	// ErrMalformed: the header cannot be read unambiguously, or a
	// DKIM-Signature field cannot be parsed.
	ErrMalformed = errors.New("malformed article header")
)

// field is one header field as the DKIM library sees it.
type field struct {
	name string // as written, without the colon
	raw  string // whole field including continuation lines
}

// parseHeader splits the header the same way the library does
// (net/textproto lines; a line starting with space or tab continues the
// previous field), so that the fields counted here are the fields the
// library hashes. It is stricter than the library wherever two readers
// could disagree about what the header says.
func parseHeader(article []byte) ([]field, error) {
	// A lone CR is a line break for some parsers and not for others
	// (RFC 5322 §2.3 forbids it); refuse rather than guess. This also
	// covers the body, where the library's relaxed canonicalization
	// treats a lone CR differently from RFC 6376 §3.4.4.
	for i, c := range article {
		if c == '\r' && (i+1 == len(article) || article[i+1] != '\n') {
			return nil, fmt.Errorf("%w: lone CR at byte %d (lines must end in CRLF)", ErrMalformed, i)
		}
	}
	tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(article)))
	var fields []field
	for n := 1; ; n++ {
		line, err := tr.ReadLine()
		if err != nil {
			return nil, fmt.Errorf("%w: the header does not end with an empty line", ErrMalformed)
		}
		if line == "" {
			return fields, nil
		}
		for _, c := range []byte(line) {
			// RFC 5322 §2.2: no control characters other than HTAB.
			if (c < ' ' && c != '\t') || c == 0x7f {
				return nil, fmt.Errorf("%w: header line %d contains control character 0x%02x", ErrMalformed, n, c)
			}
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(fields) == 0 {
				return nil, fmt.Errorf("%w: the first header line starts with white space", ErrMalformed)
			}
			fields[len(fields)-1].raw += line + "\r\n"
			continue
		}
		name, _, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%w: header line %d has no colon", ErrMalformed, n)
		}
		// RFC 5322 §3.6.8: field-name = 1*ftext, printable ASCII without
		// space. The library trims spaces around names, so "From :"
		// would count as From there; refusing it keeps one meaning.
		if name == "" || strings.IndexFunc(name, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
			return nil, fmt.Errorf("%w: header line %d has an invalid field name %q", ErrMalformed, n, name)
		}
		fields = append(fields, field{name: name, raw: line + "\r\n"})
	}
}

// countFields returns how many times each field name occurs, keyed in lower
// case (field names are case-insensitive, RFC 5322 §1.2.2).
func countFields(fields []field) map[string]int {
	n := make(map[string]int, len(fields))
	for _, f := range fields {
		n[strings.ToLower(f.name)]++
	}
	return n
}

// parseTags parses a tag-list (RFC 6376 §3.2) the way the library does:
// tags separated by ";", name "=" value, surrounding white space ignored,
// a repeated tag is an error.
func parseTags(s string) (map[string]string, error) {
	tags := make(map[string]string)
	for _, part := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			if strings.TrimSpace(part) == "" {
				continue
			}
			return nil, fmt.Errorf("tag %q has no '='", strings.TrimSpace(part))
		}
		k = strings.TrimSpace(k)
		if _, dup := tags[k]; dup {
			return nil, fmt.Errorf("tag %s= appears twice", k)
		}
		tags[k] = strings.TrimSpace(v)
	}
	return tags, nil
}

// stripSpace removes folding white space, which RFC 6376 §3.2 allows inside
// tag values (and which the library removes the same way).
func stripSpace(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
}

// normName normalizes a domain or selector for keyring lookups: DNS names
// are case-insensitive and a trailing dot only marks them as absolute.
func normName(s string) string {
	return strings.TrimSuffix(strings.ToLower(s), ".")
}

// checkName validates a domain or selector as a DNS name: labels of letters,
// digits, '-' and '_', 1-63 bytes, 253 in all. A "_domainkey" label is
// refused so that "selector._domainkey.domain" always splits one way.
func checkName(what, s string) error {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return fmt.Errorf("%s %q: want a DNS name such as site-a.example", what, s)
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 {
			return fmt.Errorf("%s %q: empty or over-long label", what, s)
		}
		if strings.EqualFold(l, "_domainkey") {
			return fmt.Errorf("%s %q must not contain a _domainkey label", what, s)
		}
		for _, r := range l {
			if !(r == '-' || r == '_' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9')) {
				return fmt.Errorf("%s %q: %q is not allowed in a DNS name", what, s, r)
			}
		}
	}
	return nil
}
