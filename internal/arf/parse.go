package arf

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/netip"
	"net/textproto"
	"strings"
	"time"

	"github.com/dst-traps/dst/internal/classify"
)

// ErrMalformed is wrapped by every error Parse returns, so that a caller can
// count refused reports without matching on text.
var ErrMalformed = errors.New("malformed abuse report")

// Parse reads a feedback report from the article's Content-Type value and
// body. It is meant for dstd, which gets reports from other sites: the body
// must already be size-limited by the caller.
//
// Parse requires the structure of RFC 5965 §2 (exactly three parts: a
// human-readable part, message/feedback-report, and message/rfc822 or
// text/rfc822-headers) and, in the feedback-report part, Feedback-Type:
// abuse, Version: 1, a User-Agent and a valid Source-IP. Arrival-Date and
// Reporting-MTA are optional here but must be valid when present. Text is
// the first part if it is text/plain, with LF line ends; Message keeps CRLF.
//
// Every error wraps ErrMalformed and says which part or field is at fault.
func Parse(contentType string, body []byte) (*Report, error) {
	r, err := parse(contentType, body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return r, nil
}

func parse(contentType string, body []byte) (*Report, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, fmt.Errorf("Content-Type %q: %w", contentType, err)
	}
	if mt != "multipart/report" {
		return nil, fmt.Errorf("Content-Type is %s, not multipart/report (RFC 6522)", mt)
	}
	if rt := params["report-type"]; !strings.EqualFold(rt, "feedback-report") {
		return nil, fmt.Errorf("report-type is %q, not feedback-report (RFC 5965 §2)", rt)
	}
	boundary := params["boundary"]
	if boundary == "" {
		return nil, errors.New("Content-Type has no boundary parameter (RFC 2046 §5.1.1)")
	}

	r := &Report{}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	n := 0
	for ; ; n++ {
		// NextRawPart, not NextPart: NextPart would silently decode
		// quoted-printable, and the rules for encodings differ by part.
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			// multipart wraps io.EOF when the body ends without the
			// close delimiter; say that in words a reader can act on.
			if errors.Is(err, io.EOF) {
				if n == 0 {
					return nil, fmt.Errorf("no MIME parts delimited by boundary %q", boundary)
				}
				return nil, fmt.Errorf("the body ends in MIME part %d, before the closing delimiter --%s--", n, boundary)
			}
			return nil, fmt.Errorf("MIME part %d: %w", n+1, err)
		}
		if n >= 3 {
			return nil, errors.New("more than three MIME parts (RFC 5965 §2)")
		}
		raw, err := io.ReadAll(p)
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("the body ends in MIME part %d, before the closing delimiter --%s--", n+1, boundary)
			}
			return nil, fmt.Errorf("MIME part %d: %w", n+1, err)
		}
		ptype := "text/plain" // the default, RFC 2045 §5.2
		if ct := p.Header.Get("Content-Type"); ct != "" {
			ptype, _, err = mime.ParseMediaType(ct)
			if err != nil {
				return nil, fmt.Errorf("MIME part %d: Content-Type %q: %w", n+1, ct, err)
			}
		}
		cte := strings.ToLower(strings.TrimSpace(p.Header.Get("Content-Transfer-Encoding")))

		switch n {
		case 0:
			// Human-readable part (RFC 5965 §2 c). Another type than
			// text/plain is allowed; DST just has no use for it.
			if ptype == "text/plain" {
				text, err := decodeTransfer(raw, cte)
				if err != nil {
					return nil, fmt.Errorf("MIME part 1 (text): %w", err)
				}
				r.Text = strings.ReplaceAll(string(text), "\r\n", "\n")
			}
		case 1:
			if ptype != "message/feedback-report" {
				return nil, fmt.Errorf("MIME part 2 is %s, not message/feedback-report (RFC 5965 §2 d)", ptype)
			}
			if !isIdentity(cte) {
				return nil, fmt.Errorf("MIME part 2 (feedback-report) has Content-Transfer-Encoding %s; only 7bit, 8bit or binary are allowed on message types (RFC 2046 §5.2)", cte)
			}
			if err := r.parseFields(raw); err != nil {
				return nil, fmt.Errorf("MIME part 2 (feedback-report): %w", err)
			}
		case 2:
			switch ptype {
			case "message/rfc822":
				if !isIdentity(cte) {
					return nil, fmt.Errorf("MIME part 3 (message/rfc822) has Content-Transfer-Encoding %s; only 7bit, 8bit or binary are allowed (RFC 2046 §5.2.1)", cte)
				}
				r.Message = toCRLF(raw)
			case "text/rfc822-headers":
				msg, err := decodeTransfer(raw, cte)
				if err != nil {
					return nil, fmt.Errorf("MIME part 3 (text/rfc822-headers): %w", err)
				}
				r.Message = toCRLF(msg)
				r.HeadersOnly = true
			default:
				return nil, fmt.Errorf("MIME part 3 is %s, not message/rfc822 or text/rfc822-headers (RFC 5965 §2 e)", ptype)
			}
		}
	}
	switch n {
	case 0:
		return nil, fmt.Errorf("no MIME parts delimited by boundary %q", boundary)
	case 1:
		return nil, errors.New("no message/feedback-report part (RFC 5965 §2 d)")
	case 2:
		return nil, errors.New("no enclosed message: the third MIME part is missing (RFC 5965 §2 e)")
	}
	if len(r.Message) == 0 {
		return nil, errors.New("the enclosed message in MIME part 3 is empty")
	}
	return r, nil
}

// parseFields reads the message/feedback-report fields (RFC 5965 §3).
func (r *Report) parseFields(data []byte) error {
	// The fields are a header section that may lack its final empty
	// line; supply one so that textproto sees a complete header.
	br := bufio.NewReader(io.MultiReader(bytes.NewReader(data), strings.NewReader("\r\n\r\n")))
	h, err := textproto.NewReader(br).ReadMIMEHeader()
	if err != nil {
		return err
	}
	if rest, _ := io.ReadAll(br); len(bytes.TrimSpace(rest)) > 0 {
		return errors.New("text after the empty line that ends the fields")
	}
	// Fields that may appear at most once (RFC 5965 §3.1, §3.2). A
	// duplicate is refused rather than resolved, because two Source-IP
	// fields would let a sender hide a second address behind the one a
	// human reads.
	for _, name := range []string{
		"Feedback-Type", "User-Agent", "Version",
		"Arrival-Date", "Incidents", "Original-Envelope-Id", "Original-Mail-From",
		"Reporting-MTA", "Source-IP", TrapHMACField, ClassField,
	} {
		if n := len(h.Values(name)); n > 1 {
			return fmt.Errorf("%s appears %d times; RFC 5965 §3 allows it once", name, n)
		}
	}

	// Required fields, RFC 5965 §3.1.
	switch ft := h.Get("Feedback-Type"); {
	case ft == "":
		return errors.New("no Feedback-Type field (RFC 5965 §3.1)")
	case !strings.EqualFold(ft, "abuse"):
		// DST only exchanges spam-trap hits; other feedback types
		// (fraud, not-spam, ...) must not list an address.
		return fmt.Errorf("Feedback-Type is %q, and DST accepts only \"abuse\"", ft)
	}
	switch v := h.Get("Version"); v {
	case "":
		return errors.New("no Version field (RFC 5965 §3.1)")
	case "1":
	default:
		return fmt.Errorf("field Version is %q; only version 1 of the format exists (RFC 5965 §3.1)", v)
	}
	r.UserAgent = h.Get("User-Agent")
	if r.UserAgent == "" {
		return errors.New("no User-Agent field (RFC 5965 §3.1)")
	}

	// Source-IP is optional in RFC 5965 §3.2 but it is the point of a
	// DST report.
	sip := h.Get("Source-IP")
	if sip == "" {
		return errors.New("no Source-IP field: DST reports must say which address sent the message")
	}
	ip, err := parseSourceIP(sip)
	if err != nil {
		return err
	}
	r.SourceIP = ip

	ad := h.Get("Arrival-Date")
	if ad == "" {
		// Early ARF generators wrote Received-Date for the same thing.
		ad = h.Get("Received-Date")
	}
	if ad != "" {
		t, err := parseDate(ad)
		if err != nil {
			return fmt.Errorf("Arrival-Date %q is not an RFC 5322 date: %w", ad, err)
		}
		r.ArrivalDate = t
	}

	if mta := h.Get("Reporting-MTA"); mta != "" {
		// RFC 3464 §2.2.2: mta-name-type ";" mta-name.
		typ, name, ok := strings.Cut(mta, ";")
		typ, name = strings.TrimSpace(typ), strings.TrimSpace(name)
		if !ok || name == "" {
			return fmt.Errorf("Reporting-MTA %q is not of the form \"dns; host.name\" (RFC 3464 §2.2.2)", mta)
		}
		if !strings.EqualFold(typ, "dns") {
			return fmt.Errorf("Reporting-MTA %q has name type %q; DST uses only \"dns\"", mta, typ)
		}
		r.ReportingMTA = name
	}
	r.OriginalMailFrom = h.Get("Original-Mail-From")
	r.OriginalRcptTo = h.Get("Original-Rcpt-To")
	r.ReportedDomain = h.Get("Reported-Domain")
	// Another site's hash means nothing here: it is kept as it is, for
	// the reporting site to read, and not checked beyond appearing once.
	r.TrapHMAC = h.Get(TrapHMACField)
	if c := h.Get(ClassField); c != "" {
		// Class names are compared exactly; a sender that wrote one in
		// capitals still meant it.
		c = strings.ToLower(strings.TrimSpace(c))
		if err := classify.CheckName(c); err != nil {
			return fmt.Errorf("%s: %w", ClassField, err)
		}
		r.Class = c
	}
	return nil
}

// parseSourceIP parses the Source-IP value: an IPv4 or IPv6 address with
// optional comments around it (RFC 5965 §3.5, source-ip ABNF).
// IPv4-mapped IPv6 addresses are returned as IPv4, so that policy and the
// blocklist see one form of each address.
func parseSourceIP(v string) (netip.Addr, error) {
	s := v
	if i := strings.IndexByte(s, '('); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimSpace(s)
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("Source-IP %q is not an IP address", v)
	}
	if ip.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("Source-IP %q has an IPv6 zone, which RFC 5965 §3.5 does not allow", v)
	}
	return ip.Unmap(), nil
}

// obsZoneOffset returns the offset of an obsolete time zone name
// (RFC 5322 §4.3). net/mail accepts the names but, like time.Parse, gives
// them a zero offset unless they match the local zone, which would shift an
// Arrival-Date such as the "EDT" in RFC 5965's own examples by hours.
func obsZoneOffset(name string) (string, bool) {
	switch strings.ToUpper(name) {
	case "UT", "GMT":
		return "+0000", true
	case "EST":
		return "-0500", true
	case "EDT":
		return "-0400", true
	case "CST":
		return "-0600", true
	case "CDT":
		return "-0500", true
	case "MST":
		return "-0700", true
	case "MDT":
		return "-0600", true
	case "PST":
		return "-0800", true
	case "PDT":
		return "-0700", true
	}
	return "", false
}

func parseDate(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, ' '); i >= 0 {
		if off, ok := obsZoneOffset(s[i+1:]); ok {
			s = s[:i+1] + off
		}
	}
	return mail.ParseDate(s)
}

// isIdentity reports whether cte is one of the encodings that leave the
// content as it is (RFC 2045 §6.1); an absent header means 7bit.
func isIdentity(cte string) bool {
	switch cte {
	case "", "7bit", "8bit", "binary":
		return true
	}
	return false
}

// decodeTransfer undoes a Content-Transfer-Encoding (RFC 2045 §6).
func decodeTransfer(b []byte, cte string) ([]byte, error) {
	switch {
	case isIdentity(cte):
		return b, nil
	case cte == "quoted-printable":
		out, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(b)))
		if err != nil {
			return nil, fmt.Errorf("bad quoted-printable: %w", err)
		}
		return out, nil
	case cte == "base64":
		// The MIME form has line breaks, which StdEncoding refuses.
		clean := bytes.Map(func(r rune) rune {
			if r == '\r' || r == '\n' || r == ' ' || r == '\t' {
				return -1
			}
			return r
		}, b)
		out := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
		n, err := base64.StdEncoding.Decode(out, clean)
		if err != nil {
			return nil, fmt.Errorf("bad base64: %w", err)
		}
		return out[:n], nil
	}
	return nil, fmt.Errorf("unknown Content-Transfer-Encoding %q", cte)
}
