package arf

import (
	"bytes"
	"errors"
	"net/mail"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const trapped = "Received: from bot.example (bot.example [203.0.113.7])\n" +
	"\tby mx1.site-a.example with ESMTP; Sat, 28 Nov 2026 10:10:09 +0000\n" +
	"From: <spammer@example.net>\n" +
	"To: <trap@site-a.example>\n" +
	"Subject: Earn money\n" +
	"\n" +
	"Spam spam spam.\n" +
	"--not-a-boundary\n" +
	".leading dot\n"

func testReport() *Report {
	return &Report{
		SourceIP:         netip.MustParseAddr("203.0.113.7"),
		ArrivalDate:      time.Date(2026, 11, 28, 10, 10, 10, 0, time.FixedZone("", -4*3600)),
		ReportingMTA:     "mx1.site-a.example",
		UserAgent:        "dstc/0.1",
		OriginalMailFrom: "<spammer@example.net>",
		OriginalRcptTo:   "<trap@site-a.example>",
		ReportedDomain:   "example.net",
		TrapHMAC:         "hmac-sha256:75b8ce8ee971c9d757d3f7fc5e81ca5f7b33052b084b7fc1988e2b850c0196dd",
		Class:            "backscatter",
		Message:          []byte(trapped),
	}
}

func crlf(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

func TestBuildParseRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(*Report)
	}{
		{"full message", func(*Report) {}},
		{"headers only", func(r *Report) { r.HeadersOnly = true }},
		{"custom text", func(r *Report) { r.Text = "Ünïcode text\nsecond line" }},
		{"minimal", func(r *Report) {
			r.OriginalMailFrom, r.OriginalRcptTo, r.ReportedDomain, r.TrapHMAC, r.Class = "", "", "", "", ""
		}},
		{"auto-reply", func(r *Report) { r.Class = "auto-reply" }},
		{"a class this version does not know", func(r *Report) { r.Class = "phish-2" }},
		{"IPv6", func(r *Report) { r.SourceIP = netip.MustParseAddr("2001:db8::7") }},
		{"IPv4-mapped", func(r *Report) { r.SourceIP = netip.MustParseAddr("::ffff:203.0.113.7") }},
		{"8-bit and long lines", func(r *Report) {
			r.Message = []byte("Subject: caf\xc3\xa9\n\n" + strings.Repeat("x", 2000) + "\n")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := testReport()
			tc.modify(r)
			ct, body, err := r.Build()
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(bytes.ReplaceAll(body, []byte("\r\n"), nil), []byte("\n")) {
				t.Error("body has bare LF line ends")
			}
			got, err := Parse(ct, body)
			if err != nil {
				t.Fatalf("Parse(Build()): %v\n%s\n%s", err, ct, body)
			}
			if got.SourceIP != r.SourceIP.Unmap() {
				t.Errorf("SourceIP = %v, want %v", got.SourceIP, r.SourceIP.Unmap())
			}
			if !got.ArrivalDate.Equal(r.ArrivalDate) {
				t.Errorf("ArrivalDate = %v, want %v", got.ArrivalDate, r.ArrivalDate)
			}
			for _, f := range []struct{ name, got, want string }{
				{"ReportingMTA", got.ReportingMTA, r.ReportingMTA},
				{"UserAgent", got.UserAgent, r.UserAgent},
				{"OriginalMailFrom", got.OriginalMailFrom, r.OriginalMailFrom},
				{"OriginalRcptTo", got.OriginalRcptTo, r.OriginalRcptTo},
				{"ReportedDomain", got.ReportedDomain, r.ReportedDomain},
				{"TrapHMAC", got.TrapHMAC, r.TrapHMAC},
				{"Class", got.Class, r.Class},
			} {
				if f.got != f.want {
					t.Errorf("%s = %q, want %q", f.name, f.got, f.want)
				}
			}
			if got.HeadersOnly != r.HeadersOnly {
				t.Errorf("HeadersOnly = %v, want %v", got.HeadersOnly, r.HeadersOnly)
			}
			wantMsg := crlf(string(r.Message))
			if r.HeadersOnly {
				wantMsg = wantMsg[:strings.Index(wantMsg, "\r\n\r\n")+2]
			}
			if string(got.Message) != wantMsg {
				t.Errorf("Message = %q, want %q", got.Message, wantMsg)
			}
			if r.Text != "" {
				if want := r.Text + "\n"; got.Text != want {
					t.Errorf("Text = %q, want %q", got.Text, want)
				}
			} else if !strings.Contains(got.Text, "203.0.113.7 sent mail to a spam trap") &&
				!strings.Contains(got.Text, "2001:db8::7 sent mail to a spam trap") {
				t.Errorf("default Text = %q", got.Text)
			}
		})
	}
}

func TestBuildShape(t *testing.T) {
	r := testReport()
	ct, body, err := r.Build()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ct, `multipart/report; report-type=feedback-report; boundary="`) {
		t.Errorf("Content-Type = %q", ct)
	}
	for _, want := range []string{
		"Content-Type: text/plain; charset=utf-8\r\n",
		"Content-Type: message/feedback-report\r\n\r\n" +
			"Feedback-Type: abuse\r\n" +
			"User-Agent: dstc/0.1\r\n" +
			"Version: 1\r\n" +
			"Source-IP: 203.0.113.7\r\n" +
			"Arrival-Date: Sat, 28 Nov 2026 10:10:10 -0400\r\n" +
			"Reporting-MTA: dns; mx1.site-a.example\r\n" +
			"Original-Mail-From: <spammer@example.net>\r\n" +
			"Original-Rcpt-To: <trap@site-a.example>\r\n" +
			"Reported-Domain: example.net\r\n" +
			"DST-Trap-HMAC: hmac-sha256:75b8ce8ee971c9d757d3f7fc5e81ca5f7b33052b084b7fc1988e2b850c0196dd\r\n",
		"Content-Type: message/rfc822\r\nContent-Disposition: inline\r\nContent-Transfer-Encoding: 7bit\r\n\r\nReceived: from bot.example",
		".leading dot\r\n\r\n--",
	} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
	if !bytes.HasSuffix(body, []byte("--\r\n")) {
		t.Errorf("body does not end with the close delimiter: %q", body[len(body)-20:])
	}
}

func TestBuildAvoidsBoundaryInContent(t *testing.T) {
	r := testReport()
	r.Message = []byte("Subject: x\n\n--taken\n")
	tries := []string{"taken", "taken", "free"}
	ct, _, err := r.build(func() string { b := tries[0]; tries = tries[1:]; return b })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ct, `boundary="free"`) {
		t.Errorf("Content-Type = %q, want boundary \"free\"", ct)
	}

	_, _, err = r.build(func() string { return "taken" })
	if err == nil || !strings.Contains(err.Error(), "MIME boundary") {
		t.Errorf("with only colliding boundaries, err = %v", err)
	}
}

func TestBuildErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(*Report)
		want   string
	}{
		{"no IP", func(r *Report) { r.SourceIP = netip.Addr{} }, "no Source-IP"},
		{"zone", func(r *Report) { r.SourceIP = netip.MustParseAddr("fe80::1%eth0") }, "zone"},
		{"no date", func(r *Report) { r.ArrivalDate = time.Time{} }, "no Arrival-Date"},
		{"no MTA", func(r *Report) { r.ReportingMTA = " " }, "no Reporting-MTA"},
		{"no UA", func(r *Report) { r.UserAgent = "" }, "no User-Agent"},
		{"no message", func(r *Report) { r.Message = nil }, "no message"},
		{"headers-only without headers", func(r *Report) { r.HeadersOnly = true; r.Message = []byte("\nbody\n") }, "no header section"},
		{"injection", func(r *Report) { r.OriginalRcptTo = "<a@b>\r\nSource-IP: 192.0.2.9" }, "Original-Rcpt-To"},
		{"injection in the hash", func(r *Report) { r.TrapHMAC = "hmac-sha256:00\nSource-IP: 192.0.2.9" }, "DST-Trap-HMAC"},
		{"injection in the class", func(r *Report) { r.Class = "spam\nSource-IP: 192.0.2.9" }, "DST-Class"},
		{"bad class", func(r *Report) { r.Class = "Back Scatter" }, "DST-Class"},
		{"two problems", func(r *Report) { r.UserAgent = ""; r.SourceIP = netip.Addr{} }, "no Source-IP\nno User-Agent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := testReport()
			tc.modify(r)
			_, _, err := r.Build()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// readExample splits a stored report into Content-Type and body.
func readExample(t *testing.T, name string) (string, []byte) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	if _, err := body.ReadFrom(m.Body); err != nil {
		t.Fatal(err)
	}
	return m.Header.Get("Content-Type"), body.Bytes()
}

func TestParseRFC5965Example(t *testing.T) {
	ct, body := readExample(t, "rfc5965-b2.eml")
	r, err := Parse(ct, body)
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParseAddr("192.0.2.1"); r.SourceIP != want {
		t.Errorf("SourceIP = %v, want %v", r.SourceIP, want)
	}
	// EDT is -0400 (RFC 5322 §4.3); 14:00 EDT is 18:00 UTC.
	if want := time.Date(2005, 3, 8, 18, 0, 0, 0, time.UTC); !r.ArrivalDate.Equal(want) {
		t.Errorf("ArrivalDate = %v, want %v", r.ArrivalDate, want)
	}
	for _, f := range []struct{ name, got, want string }{
		{"UserAgent", r.UserAgent, "SomeGenerator/1.0"},
		{"ReportingMTA", r.ReportingMTA, "mail.example.com"},
		{"OriginalMailFrom", r.OriginalMailFrom, "<somespammer@example.net>"},
		{"OriginalRcptTo", r.OriginalRcptTo, "<user@example.com>"},
		{"ReportedDomain", r.ReportedDomain, "example.net"},
	} {
		if f.got != f.want {
			t.Errorf("%s = %q, want %q", f.name, f.got, f.want)
		}
	}
	if !strings.HasPrefix(r.Text, "This is an email abuse report") || strings.Contains(r.Text, "\r") {
		t.Errorf("Text = %q", r.Text)
	}
	if r.HeadersOnly {
		t.Error("HeadersOnly set for message/rfc822")
	}
	if !bytes.HasPrefix(r.Message, []byte("From: <somespammer@example.net>\r\n")) ||
		!bytes.HasSuffix(r.Message, []byte("Spam Spam Spam\r\n")) {
		t.Errorf("Message = %q", r.Message)
	}
}

func TestParseRFC5965SimpleExampleLacksSourceIP(t *testing.T) {
	ct, body := readExample(t, "rfc5965-b1.eml")
	_, err := Parse(ct, body)
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "no Source-IP") {
		t.Errorf("err = %v, want a malformed-report error about Source-IP", err)
	}
}

// report assembles a body with the given feedback-report fields and
// optional replacement parts.
func report(fields string, parts ...string) (string, []byte) {
	p := []string{
		"Content-Type: text/plain\n\nhello\n",
		"Content-Type: message/feedback-report\n\n" + fields,
		"Content-Type: message/rfc822\n\nSubject: x\n\nbody\n",
	}
	if len(parts) > 0 {
		p = parts
	}
	var b strings.Builder
	for _, s := range p {
		b.WriteString("--B\n" + s + "\n")
	}
	b.WriteString("--B--\n")
	return `multipart/report; report-type=feedback-report; boundary="B"`, []byte(b.String())
}

const goodFields = "Feedback-Type: abuse\nUser-Agent: x/1\nVersion: 1\nSource-IP: 192.0.2.1\n"

func TestParseErrors(t *testing.T) {
	ct, _ := report("")
	for _, tc := range []struct {
		name string
		ct   string
		body []byte
		want string
	}{
		{"bad content type", "text/plain", nil, "not multipart/report"},
		{"unparsable content type", "multipart/report; =", nil, "Content-Type"},
		{"wrong report type", `multipart/report; report-type=delivery-status; boundary="B"`, nil, "report-type"},
		{"no boundary", "multipart/report; report-type=feedback-report", nil, "no boundary"},
		{"empty body", ct, nil, "no MIME parts"},
		{"missing Source-IP", ct, b(report("Feedback-Type: abuse\nUser-Agent: x/1\nVersion: 1\n")), "no Source-IP"},
		{"bad Source-IP", ct, b(report(strings.Replace(goodFields, "192.0.2.1", "192.0.2.256", 1))), `Source-IP "192.0.2.256" is not an IP address`},
		{"bracketed Source-IP", ct, b(report(strings.Replace(goodFields, "192.0.2.1", "[192.0.2.1]", 1))), "not an IP address"},
		{"zoned Source-IP", ct, b(report(strings.Replace(goodFields, "192.0.2.1", "fe80::1%eth0", 1))), "zone"},
		{"two DST-Trap-HMAC", ct, b(report(goodFields + "DST-Trap-HMAC: hmac-sha256:00\nDST-Trap-HMAC: hmac-sha256:01\n")), "DST-Trap-HMAC appears 2 times"},
		{"two DST-Class", ct, b(report(goodFields + "DST-Class: backscatter\nDST-Class: spam\n")), "DST-Class appears 2 times"},
		{"bad DST-Class", ct, b(report(goodFields + "DST-Class: back scatter\n")), "DST-Class"},
		{"two Source-IPs", ct, b(report(goodFields + "Source-IP: 198.51.100.1\n")), "Source-IP appears 2 times"},
		{"missing Feedback-Type", ct, b(report("User-Agent: x/1\nVersion: 1\nSource-IP: 192.0.2.1\n")), "no Feedback-Type"},
		{"other Feedback-Type", ct, b(report(strings.Replace(goodFields, "abuse", "not-spam", 1))), `Feedback-Type is "not-spam"`},
		{"missing Version", ct, b(report("Feedback-Type: abuse\nUser-Agent: x/1\nSource-IP: 192.0.2.1\n")), "no Version"},
		{"wrong Version", ct, b(report(strings.Replace(goodFields, "Version: 1", "Version: 2", 1))), `Version is "2"`},
		{"missing User-Agent", ct, b(report("Feedback-Type: abuse\nVersion: 1\nSource-IP: 192.0.2.1\n")), "no User-Agent"},
		{"bad Arrival-Date", ct, b(report(goodFields + "Arrival-Date: yesterday\n")), "Arrival-Date"},
		{"bad Reporting-MTA", ct, b(report(goodFields + "Reporting-MTA: mx.example\n")), "Reporting-MTA"},
		{"x400 Reporting-MTA", ct, b(report(goodFields + "Reporting-MTA: x400; foo\n")), `name type "x400"`},
		{"junk after fields", ct, b(report(goodFields + "\nmore text\n")), "text after"},
		{"bad field syntax", ct, b(report(" continuation first\n" + goodFields)), "feedback-report"},
		{"feedback part missing", ct, b(report("", "Content-Type: text/plain\n\nhi\n")), "no message/feedback-report part"},
		{"message part missing", ct, b(report("", "Content-Type: text/plain\n\nhi\n", "Content-Type: message/feedback-report\n\n"+goodFields)), "no enclosed message"},
		{"parts swapped", ct, b(report("", "Content-Type: text/plain\n\nhi\n", "Content-Type: message/rfc822\n\nSubject: x\n", "Content-Type: message/feedback-report\n\n"+goodFields)), "MIME part 2 is message/rfc822"},
		{"fourth part", ct, b(report("", "Content-Type: text/plain\n\nhi\n", "Content-Type: message/feedback-report\n\n"+goodFields, "Content-Type: message/rfc822\n\nSubject: x\n", "Content-Type: text/plain\n\nextra\n")), "more than three"},
		{"wrong third part", ct, b(report("", "Content-Type: text/plain\n\nhi\n", "Content-Type: message/feedback-report\n\n"+goodFields, "Content-Type: application/pdf\n\nx\n")), "MIME part 3 is application/pdf"},
		{"base64 message/rfc822", ct, b(report("", "Content-Type: text/plain\n\nhi\n", "Content-Type: message/feedback-report\n\n"+goodFields, "Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\nU3ViamVjdDogeAo=\n")), "Content-Transfer-Encoding base64"},
		{"unterminated", ct, []byte("--B\nContent-Type: text/plain\n\nhi\n"), "before the closing delimiter --B--"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Parse(tc.ct, tc.body)
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", r)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error %q does not wrap ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func b(_ string, body []byte) []byte { return body }

func TestParseLenient(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fields string
		parts  []string
		check  func(*testing.T, *Report)
	}{
		{"comment after Source-IP", strings.Replace(goodFields, "192.0.2.1", "192.0.2.1 (the bot)", 1), nil, func(t *testing.T, r *Report) {
			if r.SourceIP != netip.MustParseAddr("192.0.2.1") {
				t.Errorf("SourceIP = %v", r.SourceIP)
			}
		}},
		{"IPv4-mapped Source-IP", strings.Replace(goodFields, "192.0.2.1", "::ffff:192.0.2.1", 1), nil, func(t *testing.T, r *Report) {
			if r.SourceIP != netip.MustParseAddr("192.0.2.1") {
				t.Errorf("SourceIP = %v, want the IPv4 form", r.SourceIP)
			}
		}},
		{"Received-Date synonym", goodFields + "Received-Date: Sat, 28 Nov 2026 10:10:10 +0000\n", nil, func(t *testing.T, r *Report) {
			if !r.ArrivalDate.Equal(time.Date(2026, 11, 28, 10, 10, 10, 0, time.UTC)) {
				t.Errorf("ArrivalDate = %v", r.ArrivalDate)
			}
		}},
		{"case-insensitive abuse", strings.Replace(goodFields, "abuse", "Abuse", 1), nil, func(*testing.T, *Report) {}},
		{"quoted-printable text, headers-only", "", []string{
			"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\ncaf=C3=A9\n",
			"Content-Type: message/feedback-report\n\n" + goodFields,
			"Content-Type: text/rfc822-headers\n\nSubject: x\n",
		}, func(t *testing.T, r *Report) {
			if r.Text != "café\n" {
				t.Errorf("Text = %q", r.Text)
			}
			if !r.HeadersOnly || string(r.Message) != "Subject: x\r\n" {
				t.Errorf("HeadersOnly = %v, Message = %q", r.HeadersOnly, r.Message)
			}
		}},
		{"HTML first part", "", []string{
			"Content-Type: text/html\n\n<p>hi</p>\n",
			"Content-Type: message/feedback-report\n\n" + goodFields,
			"Content-Type: message/rfc822\n\nSubject: x\n\nbody\n",
		}, func(t *testing.T, r *Report) {
			if r.Text != "" {
				t.Errorf("Text = %q, want empty for text/html", r.Text)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ct, body := report(tc.fields, tc.parts...)
			r, err := Parse(ct, body)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, r)
		})
	}
}

func FuzzParse(f *testing.F) {
	ct, body, err := testReport().Build()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ct, body)
	hr := testReport()
	hr.HeadersOnly = true
	ct2, body2, _ := hr.Build()
	f.Add(ct2, body2)
	for _, fields := range []string{goodFields, goodFields + "Arrival-Date: Thu, 8 Mar 2005 14:00:00 EDT\nReporting-MTA: dns; mx\n", "Source-IP: ::1\n"} {
		c, b := report(fields)
		f.Add(c, b)
	}
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		r, err := Parse(ct, body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %q does not wrap ErrMalformed", err)
			}
			return
		}
		if !r.SourceIP.IsValid() || r.SourceIP.Zone() != "" || r.SourceIP.Is4In6() {
			t.Fatalf("Parse succeeded with Source-IP %v", r.SourceIP)
		}
		if r.UserAgent == "" || len(r.Message) == 0 {
			t.Fatalf("Parse succeeded without User-Agent or message: %+v", r)
		}
		// Whatever Parse accepts, Build can send on again and Parse
		// reads back the same address (what dstd relies on when it
		// re-reads a report it stored).
		if r.ReportingMTA == "" || r.ArrivalDate.IsZero() {
			return
		}
		ct2, body2, err := r.Build()
		if err != nil {
			return // e.g. headers-only part without a header section
		}
		r2, err := Parse(ct2, body2)
		if err != nil {
			t.Fatalf("Parse(Build(Parse(x))) failed: %v", err)
		}
		if r2.SourceIP != r.SourceIP || r2.UserAgent != r.UserAgent || !bytes.Equal(r2.Message, r.Message) && !r.HeadersOnly {
			t.Fatalf("second round differs:\n%+v\n%+v", r, r2)
		}
	})
}

// A report without DST-Class (an older dstc, another implementation) has
// no class, which every site reads as spam; one in capitals is read in
// lower case. The field is in the feedback-report part, under the DKIM
// body hash.
func TestParseClass(t *testing.T) {
	for _, tc := range []struct{ fields, want string }{
		{goodFields, ""},
		{goodFields + "DST-Class: backscatter\n", "backscatter"},
		{goodFields + "dst-class:  Auto-Reply \n", "auto-reply"},
	} {
		r, err := Parse(report(tc.fields))
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.fields, err)
		}
		if r.Class != tc.want {
			t.Errorf("Parse(%q).Class = %q, want %q", tc.fields, r.Class, tc.want)
		}
	}
	r := testReport()
	_, body, err := r.Build()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(body, []byte("Content-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n")) ||
		!bytes.Contains(body, []byte("\r\nDST-Class: backscatter\r\n")) {
		t.Errorf("DST-Class is not a field of the feedback-report part:\n%s", body)
	}
}
