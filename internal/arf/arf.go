// Package arf builds and parses the Abuse Reporting Format (RFC 5965)
// feedback reports that form the body of every DST report article.
//
// A report is a multipart/report (RFC 6522) with three parts, in this
// order (RFC 5965 §2):
//
//  1. a human-readable text/plain explanation;
//  2. a message/feedback-report part: header-like fields saying what was
//     seen (Feedback-Type: abuse, Source-IP, Arrival-Date, ...);
//  3. the trapped message as message/rfc822, or only its header section as
//     text/rfc822-headers.
//
// The enclosed message is carried verbatim apart from line ends, which are
// CRLF as everywhere on the wire. Build writes the fields DST requires;
// Parse checks them strictly, because a receiving site lists Source-IP on
// the strength of this part.
package arf

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/dst-traps/dst/internal/classify"
)

// Report is one feedback report about one trapped message.
type Report struct {
	// SourceIP is the address that handed the message to the site's MX
	// (RFC 5965 §3.2 Source-IP). Build writes IPv4-mapped IPv6 addresses
	// in their IPv4 form, as Parse returns them.
	SourceIP netip.Addr
	// ArrivalDate is when the message arrived (RFC 5965 §3.2
	// Arrival-Date). It is written to the second, in its own time zone.
	ArrivalDate time.Time
	// ReportingMTA is the host name of the MTA that received the message,
	// written as "Reporting-MTA: dns; <ReportingMTA>" (RFC 5965 §3.2,
	// RFC 3464 §2.2.2).
	ReportingMTA string
	// UserAgent names the program and version that made the report, such
	// as "dstc/0.1" (RFC 5965 §3.1).
	UserAgent string
	// OriginalMailFrom is the SMTP MAIL FROM, such as
	// "<sender@example.net>" (optional; RFC 5965 §3.2).
	OriginalMailFrom string
	// OriginalRcptTo is the SMTP RCPT TO, that is the trap address
	// (optional; RFC 5965 §3.2). A site that keeps its traps private
	// leaves it empty or puts a hash here.
	OriginalRcptTo string
	// TrapHMAC names the trap that was hit without revealing it: the
	// value of the DST-Trap-HMAC field, "hmac-sha256:" and the hex
	// HMAC-SHA256 of the trap address under the reporting site's secret
	// (internal/redact.TrapHMAC; optional, a DST extension field, RFC
	// 5965 §3). DST never sends the trap in clear: OriginalRcptTo stays
	// empty.
	TrapHMAC string
	// Class is what kind of hit the report is about, the value of the
	// DST-Class field: "spam", "backscatter", "auto-reply"
	// (internal/classify), or a name a newer version knows. Empty means
	// spam: Build then writes no field, and Parse returns "" for a report
	// without one (written by an older dstc), which every site reads as
	// spam. Build and Parse require a well-formed name
	// (classify.CheckName).
	Class string
	// ReportedDomain is a domain the report is about (optional; RFC 5965
	// §3.2). Parse returns the first if there are several.
	ReportedDomain string
	// Message is the trapped message, or only its header section when
	// HeadersOnly is set. Line ends may be CRLF or LF; Build writes CRLF.
	Message []byte
	// HeadersOnly sends Message as text/rfc822-headers instead of
	// message/rfc822 (RFC 5965 §2, RFC 6522 §4). Build then cuts Message
	// at its first empty line, in case the caller passed a whole message.
	HeadersOnly bool
	// Text is the human-readable first part. Build writes a default
	// sentence when it is empty.
	Text string
}

// TrapHMACField is DST's extension field (RFC 5965 §3 allows them; no
// "X-" prefix, RFC 6648) naming the trap by a keyed hash: Report.TrapHMAC.
const TrapHMACField = "DST-Trap-HMAC"

// ClassField is DST's extension field saying what kind of hit the report
// is about: Report.Class. It is in the message/feedback-report part, which
// the origin's DKIM signature covers (its body hash), so no relay can
// change a backscatter report into a spam one.
const ClassField = "DST-Class"

// maxBoundaryTries bounds the search for a boundary that does not occur in
// the report. With 128 random bits a single collision is already beyond
// belief; the bound only keeps a broken random source from looping forever.
const maxBoundaryTries = 10

// Build renders the report. It returns the value for the article's
// Content-Type header field and the body, with CRLF line ends.
//
// Build refuses a report that lacks what every DST site needs to act on it
// (a valid SourceIP, a UserAgent, a ReportingMTA, an ArrivalDate, a
// Message), and field values with line breaks, which would smuggle extra
// fields into the feedback-report part.
func (r *Report) Build() (contentType string, body []byte, err error) {
	return r.build(newBoundary)
}

func (r *Report) build(boundaryFn func() string) (string, []byte, error) {
	if err := r.check(); err != nil {
		return "", nil, err
	}

	text := r.Text
	if text == "" {
		text = r.defaultText()
	}
	textPart := toCRLF([]byte(strings.ToValidUTF8(text, "\uFFFD")))
	fields := r.feedbackFields()
	msg := toCRLF(r.Message)
	msgType := "message/rfc822"
	if r.HeadersOnly {
		msg = headerSection(msg)
		msgType = "text/rfc822-headers"
		if len(msg) == 0 {
			return "", nil, errors.New("arf: cannot build report: the message has no header section to enclose")
		}
	}

	// RFC 2046 §5.1.1: the boundary must not appear in any part. Checking
	// the bare boundary string is stricter than checking "--" + boundary
	// at a line start, and just as cheap.
	var boundary string
	for range maxBoundaryTries {
		b := boundaryFn()
		if !bytes.Contains(textPart, []byte(b)) && !bytes.Contains(fields, []byte(b)) && !bytes.Contains(msg, []byte(b)) {
			boundary = b
			break
		}
	}
	if boundary == "" {
		return "", nil, errors.New("arf: could not find a MIME boundary that does not occur in the report")
	}

	var w bytes.Buffer
	w.Grow(len(textPart) + len(fields) + len(msg) + 512)
	// Each part ends with CRLF before the delimiter: the CRLF that
	// precedes "--boundary" belongs to the delimiter (RFC 2046 §5.1.1),
	// so the part content keeps its own final line end.
	w.WriteString("--" + boundary + "\r\n")
	w.WriteString("Content-Type: text/plain; charset=utf-8\r\n")
	w.WriteString("Content-Transfer-Encoding: " + transferEncoding(textPart) + "\r\n\r\n")
	w.Write(textPart)
	w.WriteString("\r\n--" + boundary + "\r\n")
	w.WriteString("Content-Type: message/feedback-report\r\n\r\n")
	w.Write(fields)
	w.WriteString("\r\n--" + boundary + "\r\n")
	w.WriteString("Content-Type: " + msgType + "\r\n")
	w.WriteString("Content-Disposition: inline\r\n")
	// RFC 2046 §5.2.1 allows only 7bit, 8bit or binary on message/rfc822;
	// the label must still be true for the enclosed bytes.
	w.WriteString("Content-Transfer-Encoding: " + transferEncoding(msg) + "\r\n\r\n")
	w.Write(msg)
	w.WriteString("\r\n--" + boundary + "--\r\n")

	ct := `multipart/report; report-type=feedback-report; boundary="` + boundary + `"`
	return ct, w.Bytes(), nil
}

func (r *Report) check() error {
	var errs []error
	if !r.SourceIP.IsValid() {
		errs = append(errs, errors.New("no Source-IP"))
	} else if r.SourceIP.Zone() != "" {
		errs = append(errs, fmt.Errorf("Source-IP %s has an IPv6 zone, which is meaningless to other sites", r.SourceIP))
	}
	if r.ArrivalDate.IsZero() {
		errs = append(errs, errors.New("no Arrival-Date"))
	}
	if strings.TrimSpace(r.ReportingMTA) == "" {
		errs = append(errs, errors.New("no Reporting-MTA"))
	}
	if strings.TrimSpace(r.UserAgent) == "" {
		errs = append(errs, errors.New("no User-Agent"))
	}
	if len(r.Message) == 0 {
		errs = append(errs, errors.New("no message to enclose"))
	}
	if r.Class != "" {
		if err := classify.CheckName(r.Class); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ClassField, err))
		}
	}
	for _, f := range []struct{ name, value string }{
		{"Reporting-MTA", r.ReportingMTA},
		{"User-Agent", r.UserAgent},
		{"Original-Mail-From", r.OriginalMailFrom},
		{"Original-Rcpt-To", r.OriginalRcptTo},
		{"Reported-Domain", r.ReportedDomain},
		{TrapHMACField, r.TrapHMAC},
	} {
		if strings.ContainsAny(f.value, "\r\n\x00") {
			errs = append(errs, fmt.Errorf("%s %q contains a line break or NUL", f.name, f.value))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("arf: cannot build report: %w", err)
	}
	return nil
}

func (r *Report) defaultText() string {
	return fmt.Sprintf("This is a DST spam-trap report from %s: %s sent mail to a spam trap at %s.\r\n"+
		"The message is attached. The report format is RFC 5965.\r\n",
		r.ReportingMTA, r.SourceIP.Unmap(), r.ArrivalDate.Format(time.RFC1123Z))
}

// feedbackFields renders the message/feedback-report part (RFC 5965 §3).
func (r *Report) feedbackFields() []byte {
	var b bytes.Buffer
	field := func(name, value string) {
		b.WriteString(name + ": " + strings.TrimSpace(value) + "\r\n")
	}
	// Required fields, RFC 5965 §3.1.
	field("Feedback-Type", "abuse")
	field("User-Agent", r.UserAgent)
	field("Version", "1")
	// Optional fields, RFC 5965 §3.2; DST always sends the first three.
	field("Source-IP", r.SourceIP.Unmap().String())
	// RFC 5965 §3.2: Arrival-Date uses the RFC 5322 §3.3 date-time,
	// which time.RFC1123Z spells.
	field("Arrival-Date", r.ArrivalDate.Format(time.RFC1123Z))
	field("Reporting-MTA", "dns; "+r.ReportingMTA)
	if r.OriginalMailFrom != "" {
		field("Original-Mail-From", r.OriginalMailFrom)
	}
	if r.OriginalRcptTo != "" {
		field("Original-Rcpt-To", r.OriginalRcptTo)
	}
	if r.ReportedDomain != "" {
		field("Reported-Domain", r.ReportedDomain)
	}
	if r.TrapHMAC != "" {
		field(TrapHMACField, r.TrapHMAC)
	}
	if r.Class != "" {
		field(ClassField, r.Class)
	}
	return b.Bytes()
}

// newBoundary returns a random MIME boundary (RFC 2046 §5.1.1: at most 70
// characters from bchars; these are letters, digits, '=' and '_').
func newBoundary() string {
	var b [16]byte
	// crypto/rand.Read cannot fail since Go 1.24.
	_, _ = rand.Read(b[:])
	return "=_dst_" + hex.EncodeToString(b[:])
}

// transferEncoding returns the Content-Transfer-Encoding that truthfully
// labels b (RFC 2045 §2.7, §2.8, §2.9): 7bit for short lines of US-ASCII
// without NUL, 8bit when octets above 127 occur, binary when NUL or lines
// over 998 octets do.
func transferEncoding(b []byte) string {
	enc := "7bit"
	lineLen := 0
	for _, c := range b {
		switch {
		case c == 0:
			return "binary"
		case c == '\n':
			lineLen = 0
			continue
		case c >= 0x80:
			enc = "8bit"
		}
		if c != '\r' {
			lineLen++
		}
		if lineLen > 998 {
			return "binary"
		}
	}
	return enc
}

// toCRLF returns b with bare LF line ends turned into CRLF and a CRLF added
// after an unterminated last line. Existing CRLF is kept.
func toCRLF(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	out := make([]byte, 0, len(b)+bytes.Count(b, []byte("\n"))+2)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			out = append(out, b...)
			out = append(out, '\r', '\n')
			break
		}
		out = append(out, bytes.TrimSuffix(b[:i], []byte("\r"))...)
		out = append(out, '\r', '\n')
		b = b[i+1:]
	}
	return out
}

// headerSection returns msg (in CRLF form) up to and including the CRLF
// that ends the last header field, dropping the empty line and the body.
func headerSection(msg []byte) []byte {
	if bytes.HasPrefix(msg, []byte("\r\n")) {
		return nil
	}
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		return msg[:i+2]
	}
	return msg
}
