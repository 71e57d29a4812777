package redact

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const trap = "Trap-7Q@Example.NET"

// leaks finds the trap address in b in any case and in the forms Message
// promises to catch.
var leaks = regexp.MustCompile(`(?i)trap-7q(?:[ \t]|\r?\n[ \t])*(?:@|%40|&#0*64;|&#x0*40;)(?:[ \t]|\r?\n[ \t])*example\.net`)

// TestTrapHMACVector checks the hash against one computed independently,
// with the command docs/ADMIN.md gives:
//
//	printf '%s' 'trap-7q@example.net' | openssl dgst -sha256 -hmac '0123456789abcdef0123456789abcdef'
func TestTrapHMACVector(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	const want = "hmac-sha256:75b8ce8ee971c9d757d3f7fc5e81ca5f7b33052b084b7fc1988e2b850c0196dd"
	for _, a := range []string{"trap-7q@example.net", trap, " <TRAP-7Q@EXAMPLE.NET> "} {
		got, err := TrapHMAC(secret, a)
		if err != nil || got != want {
			t.Errorf("TrapHMAC(%q) = %q, %v; want %s", a, got, err, want)
		}
	}
	other, _ := TrapHMAC([]byte("another secret, another site...."), trap)
	if other == want {
		t.Error("another secret gives the same hash")
	}
}

func TestNormalizeRefuses(t *testing.T) {
	for _, a := range []string{"", "trap", "@example.net", "trap@", "a\tb@example.net", "a@b@c", "x@redacted.invalid", "t\n@x.y"} {
		if n, err := Normalize(a); err == nil {
			t.Errorf("Normalize(%q) = %q, want an error", a, n)
		}
	}
}

func writeSecret(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "trap-secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadSecret(t *testing.T) {
	p := writeSecret(t, "0123456789abcdef0123456789abcdef\n", 0o400)
	s, err := LoadSecret(p)
	if err != nil || string(s) != "0123456789abcdef0123456789abcdef" {
		t.Fatalf("LoadSecret = %q, %v", s, err)
	}
	if _, err := LoadSecret(writeSecret(t, "0123456789abcdef0123456789abcdef\n", 0o640)); err != nil {
		t.Errorf("a group-readable secret is refused: %v", err)
	}
	for _, mode := range []os.FileMode{0o644, 0o604, 0o602, 0o666} {
		_, err := LoadSecret(writeSecret(t, "0123456789abcdef0123456789abcdef\n", mode))
		if err == nil || !strings.Contains(err.Error(), "chmod o-rwx") {
			t.Errorf("mode %o: %v, want a refusal saying chmod o-rwx", mode, err)
		}
	}
	if _, err := LoadSecret(writeSecret(t, "short\n", 0o400)); err == nil || !strings.Contains(err.Error(), "openssl rand") {
		t.Errorf("a short secret: %v, want a refusal", err)
	}
	_, err = LoadSecret(filepath.Join(t.TempDir(), "none"))
	if !errors.Is(err, ErrNoSecret) {
		t.Errorf("a missing file: %v, want ErrNoSecret", err)
	}
	if _, err := LoadSecret(t.TempDir()); err == nil {
		t.Error("a directory is accepted as the secret")
	}
}

// TestHeaderFields redacts each kind of field: recipient fields whole,
// the Received "for" clause, any other field where the address appears,
// also in RFC 2047 encoded words and folded at the "@".
func TestHeaderFields(t *testing.T) {
	subj := mime.BEncoding.Encode("utf-8", "für TRAP-7q@example.net")
	msg := "Return-Path: <Trap-7Q@example.net>\r\n" +
		"Delivered-To: trap-7q@example.net\r\n" +
		"X-Original-To: TRAP-7Q@EXAMPLE.NET\r\n" +
		"Envelope-To: trap-7q@example.net\r\n" +
		"Received: from spam.example (unknown [203.0.113.7])\r\n\tby mx1.example.net (Postfix) with ESMTP id 1\r\n\tfor <Trap-7Q@Example.Net>; Sun, 29 Nov 2026 02:00:21 +0000\r\n" +
		"Received: from [203.0.113.7] (helo=spam.example)\r\n\tby mx2.example.net with esmtp (Exim 4.96)\r\n\tfor trap-7q@example.net; Sun, 29 Nov 2026 02:00:20 +0000\r\n" +
		"Received: by relay.example.org for <someone@else.example>; Sun, 29 Nov 2026 02:00:19 +0000\r\n" +
		"To: \"Dear Trap\" <trap-7q@example.net>, other@example.org\r\n" +
		"Cc: trap-7q\r\n @example.net\r\n" +
		"From: Spammer <spam@spam.example>\r\n" +
		"Subject: " + subj + "\r\n" +
		"X-Mailer-Recipient: trap-7q\r\n\t@ example.net\r\n" +
		"List-Unsubscribe: <https://spam.example/u?e=trap-7q%40example.net>\r\n"
	got := string(New(trap).Message([]byte(msg)))
	if m := leaks.FindString(got); m != "" {
		t.Errorf("the trap address is still there (%q):\n%s", m, got)
	}
	for _, want := range []string{
		"Delivered-To: <trap@redacted.invalid>\r\n",
		"X-Original-To: <trap@redacted.invalid>\r\n",
		"Envelope-To: <trap@redacted.invalid>\r\n",
		"To: <trap@redacted.invalid>\r\n",
		"Cc: <trap@redacted.invalid>\r\nFrom: Spammer <spam@spam.example>\r\n",
		"\tfor <trap@redacted.invalid>; Sun, 29 Nov 2026 02:00:21 +0000\r\n",
		"\tfor <trap@redacted.invalid>; Sun, 29 Nov 2026 02:00:20 +0000\r\n",
		"by relay.example.org for <trap@redacted.invalid>;",
		"Return-Path: <trap@redacted.invalid>\r\n",
		"e=trap@redacted.invalid>",
		"Received: from spam.example (unknown [203.0.113.7])\r\n\tby mx1.example.net (Postfix) with ESMTP id 1\r\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "other@example.org") {
		t.Errorf("another recipient is still there:\n%s", got)
	}
	// The encoded Subject is redacted once decoded, and still decodes.
	m, err := mail.ReadMessage(strings.NewReader(got + "\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	dec, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil || dec != "für trap@redacted.invalid" {
		t.Errorf("Subject decodes to %q, %v", dec, err)
	}
}

// TestNoAddressKnown: without a trap address, the recipient fields and the
// Received "for" clauses still go; nothing else changes.
func TestNoAddressKnown(t *testing.T) {
	msg := "Received: from a (b [203.0.113.7]) by mx1.example.net for <t@example.net>; date\nTo: t@example.net\nSubject: hi t@example.net\n\nbody t@example.net\n"
	got := string(New().Message([]byte(msg)))
	want := "Received: from a (b [203.0.113.7]) by mx1.example.net for <trap@redacted.invalid>; date\nTo: <trap@redacted.invalid>\nSubject: hi t@example.net\n\nbody t@example.net\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestBody: plain text, HTML, base64 and quoted-printable parts, and a
// message enclosed in another (a bounce), in a MIME tree whose structure
// survives: same parts, same boundaries, untouched parts byte for byte.
func TestBody(t *testing.T) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	mw.SetBoundary("outer-=_boundary")
	untouched := "Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64.StdEncoding.EncodeToString([]byte("\x89PNG no address here")) + "\r\n"
	parts := []struct{ hdr, body string }{
		{"Content-Type: text/plain; charset=us-ascii", "Hello Trap-7Q@Example.Net, and trap-7q @ example.net.\r\n"},
		{"Content-Type: text/html", `<a href="mailto:trap-7q&#64;example.net">x</a> <a href="https://s.example/?u=TRAP-7Q%40EXAMPLE.NET">y</a> trap-7q&#x40;example.net` + "\r\n"},
		{"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64", wrap(base64.StdEncoding.EncodeToString([]byte("Grüße an trap-7q@example.net, viel Glück\r\n")))},
		{"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable", "Bitte an TRAP-7q@exa=\r\nmple.net schreiben, gr=C3=BC=C3=9Fe.\r\n"},
		{"Content-Type: message/rfc822", "To: trap-7q@example.net\r\nSubject: original\r\n\r\nsent to trap-7q@example.net\r\n"},
	}
	for _, p := range parts {
		w, err := mw.CreatePart(header(p.hdr))
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, p.body)
	}
	mw.Close()
	msg := "To: trap-7q@example.net\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"outer-=_boundary\"\r\n\r\npreamble trap-7q@example.net\r\n" +
		strings.Replace(b.String(), "--outer-=_boundary--", "--outer-=_boundary\r\n"+untouched+"--outer-=_boundary--", 1) + "epilogue\r\n"

	got := New(trap).Message([]byte(msg))
	if m := leaks.Find(got); m != nil {
		t.Errorf("the trap address is still there (%q):\n%s", m, got)
	}
	if !bytes.Contains(got, []byte(untouched)) {
		t.Errorf("a part without the address changed:\n%s", got)
	}
	// The structure: the same parts, each decoding to its text with the
	// placeholder.
	m, err := mail.ReadMessage(bytes.NewReader(got))
	if err != nil {
		t.Fatal(err)
	}
	_, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
	mr := multipart.NewReader(m.Body, params["boundary"])
	var texts []string
	for {
		p, err := mr.NextPart() // decodes quoted-printable itself
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the redacted message is no longer valid MIME: %v\n%s", err, got)
		}
		c, _ := io.ReadAll(p)
		if p.Header.Get("Content-Transfer-Encoding") == "base64" {
			c, _ = base64.StdEncoding.DecodeString(strings.ReplaceAll(string(c), "\r\n", ""))
		}
		texts = append(texts, string(c))
	}
	if len(texts) != 6 {
		t.Fatalf("%d parts after redaction, want 6", len(texts))
	}
	for i, want := range []string{
		"Hello trap@redacted.invalid, and trap@redacted.invalid.\r\n",
		`<a href="mailto:trap@redacted.invalid">x</a> <a href="https://s.example/?u=trap@redacted.invalid">y</a> trap@redacted.invalid` + "\r\n",
		"Grüße an trap@redacted.invalid, viel Glück\r\n",
		"Bitte an trap@redacted.invalid schreiben, grüße.\r\n",
		"To: <trap@redacted.invalid>\r\nSubject: original\r\n\r\nsent to trap@redacted.invalid\r\n",
	} {
		if texts[i] != want {
			t.Errorf("part %d: %q, want %q", i+1, texts[i], want)
		}
	}
	if !bytes.HasSuffix(got, []byte("--outer-=_boundary--\r\nepilogue\r\n")) || !bytes.Contains(got, []byte("preamble trap@redacted.invalid\r\n--outer-=_boundary\r\n")) {
		t.Errorf("preamble or epilogue mangled:\n%s", got)
	}
}

// TestQuotedPrintableSoftBreak: an address cut by a soft line break is
// found once the part is decoded.
func TestQuotedPrintableSoftBreak(t *testing.T) {
	msg := "Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\nwrite to trap-7q@exam=\nple.net now=\n"
	got := string(New(trap).Message([]byte(msg)))
	dec, _ := io.ReadAll(quotedprintable.NewReader(strings.NewReader(got[strings.Index(got, "\n\n")+2:])))
	if string(dec) != "write to trap@redacted.invalid now" || strings.Contains(strings.ToLower(got), "exam=") {
		t.Errorf("got %q, decoding to %q", got, dec)
	}
}

// TestHeadersOnly: a header section without a body, as in a
// text/rfc822-headers report.
func TestHeadersOnly(t *testing.T) {
	got := string(New(trap, "dst-trap@mx1.example.net").Message([]byte("Delivered-To: dst-trap@mx1.example.net\nX-Original-To: trap-7q@example.net\nSubject: to DST-TRAP@mx1.example.net")))
	want := "Delivered-To: <trap@redacted.invalid>\nX-Original-To: <trap@redacted.invalid>\nSubject: to trap@redacted.invalid"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestIdempotent(t *testing.T) {
	r := New(trap)
	msg := []byte("Subject: =?utf-8?q?f=C3=BCr_trap-7q=40example.net?=\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString([]byte("to trap-7q@example.net")) + "\r\n")
	once := r.Message(msg)
	if twice := r.Message(once); !bytes.Equal(once, twice) {
		t.Errorf("redacting again changes the message:\n%s\n%s", once, twice)
	}
	if bytes.Equal(once, msg) {
		t.Error("nothing was redacted")
	}
}

func header(s string) map[string][]string {
	h := map[string][]string{}
	for _, l := range strings.Split(s, "\r\n") {
		k, v, _ := strings.Cut(l, ": ")
		h[k] = []string{v}
	}
	return h
}

func wrap(s string) string {
	var b strings.Builder
	for len(s) > 20 {
		b.WriteString(s[:20] + "\r\n")
		s = s[20:]
	}
	return b.String() + s + "\r\n"
}

// FuzzRedact: whatever the message and the trap address, no panic, the
// address does not survive in its plain form (in any ASCII case), and
// redacting again changes nothing.
func FuzzRedact(f *testing.F) {
	f.Add([]byte("To: a@b.example\r\n\r\nhi A@B.example\r\n"), "a@b.example")
	f.Add([]byte("Received: from x (x [203.0.113.7]) by mx1 for <t@x.y>; d\nSubject: =?utf-8?b?dEB4Lnk=?=\n\nt%40x.y t&#64;x.y\n"), "t@x.y")
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Transfer-Encoding: base64\n\ndEB4Lnk=\n--b\nContent-Transfer-Encoding: quoted-printable\n\nt@=\nx.y\n--b--\n"), "t@x.y")
	f.Add([]byte("Content-Type: message/rfc822\n\nTo: t@x.y\n\nt@x.y"), "T@X.Y")
	f.Fuzz(func(t *testing.T, msg []byte, addr string) {
		r := New(addr)
		once := r.Message(msg)
		if n, err := Normalize(addr); err == nil && bytes.Contains(asciiLower(once), asciiLower([]byte(n))) {
			t.Fatalf("%q survives in %q", n, once)
		}
		if twice := r.Message(once); !bytes.Equal(once, twice) {
			t.Fatalf("not idempotent:\n%q\n%q", once, twice)
		}
	})
}

func asciiLower(b []byte) []byte {
	return bytes.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, b)
}

// TestQuotedLocalPart: a catch-all trap domain gets quoted local parts
// with spaces; Postfix pipe(8) passes them as they are (without flags=q).
func TestQuotedLocalPart(t *testing.T) {
	got := string(New(`"Foo Bar"@example.net`).Message([]byte("Subject: hi \"foo bar\"@Example.net\n\nto <\"FOO BAR\"@example.net>\n")))
	if want := "Subject: hi trap@redacted.invalid\n\nto <trap@redacted.invalid>\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
