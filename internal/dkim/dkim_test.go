package dkim

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	msgdkim "github.com/emersion/go-msgauth/dkim"
)

func TestSignVerifyRoundTrip(t *testing.T) {
	orig := reportArticle()
	signed := mustSign(t, orig)
	if !bytes.HasSuffix(signed, orig) {
		t.Fatal("Sign changed the article instead of only prepending a field")
	}
	header, _, _ := splitArticle(signed)
	name, sig := relaxedHeader(header[0])
	if name != "dkim-signature" {
		t.Fatalf("first field is %q, want the DKIM-Signature", name)
	}
	tags, err := parseTags(sig)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "ed25519-sha256", "c": "relaxed/relaxed", "d": testDomain, "s": testSelector,
		"h": "From:Date:Message-ID:Subject:Newsgroups:MIME-Version:Content-Type"}
	for k, v := range want {
		if got := stripSpace(tags[k]); got != v {
			t.Errorf("%s= is %q, want %q", k, got, v)
		}
	}
	if _, ok := tags["l"]; ok {
		t.Error("signature has an l= tag")
	}
	if _, ok := tags["t"]; !ok {
		t.Error("signature has no t= timestamp")
	}
	for _, line := range strings.SplitAfter(string(signed), "\n") {
		if !strings.HasSuffix(line, "\r\n") && line != "" {
			t.Fatalf("line %q does not end in CRLF", line)
		}
	}

	d, err := testKeyring().Verify(signed)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if d != testDomain {
		t.Errorf("Verify returned domain %q, want %q", d, testDomain)
	}
}

// The hand-written signer shares no code with the library; agreement
// checks both.
func TestHandSignAgreesWithLibrary(t *testing.T) {
	signed := handSign(t, reportArticle(), testKey(), "", SignedHeaders)
	if _, err := testKeyring().Verify(signed); err != nil {
		t.Fatalf("hand-made signature does not verify: %v", err)
	}
}

func TestRelayedArticleVerifies(t *testing.T) {
	signed := mustSign(t, reportArticle())
	// What INN and dstd relays do: Path on top, Xref, Lines and
	// Injection-Info at the bottom of the header.
	relayed := append([]byte("Path: site-c.example!site-b.example!site-a.example!not-for-mail\r\n"), signed...)
	relayed = bytes.Replace(relayed, []byte("User-Agent: dstc/1.0\r\n\r\n"), []byte(crlf(`User-Agent: dstc/1.0
Injection-Info: site-a.example; posting-host="localhost"
Xref: site-c.example dst.reports:42
Lines: 37

`)), 1)
	// A relay may also re-fold a signed field; relaxed canonicalization
	// (RFC 6376 §3.4.2) makes that harmless.
	relayed = bytes.Replace(relayed, []byte("Subject: trap hit 203.0.113.7"), []byte("Subject: trap hit\r\n  203.0.113.7"), 1)
	d, err := testKeyring().Verify(relayed)
	if err != nil || d != testDomain {
		t.Fatalf("Verify(relayed) = %q, %v; want %q, nil", d, err, testDomain)
	}
}

func TestAlteredArticle(t *testing.T) {
	signed := mustSign(t, reportArticle())
	for _, tc := range []struct{ name, old, new string }{
		{"Subject", "Subject: trap hit 203.0.113.7", "Subject: trap hit 198.51.100.9"},
		{"From", "From: DST <dst@site-a.example>", "From: DST <dst@site-b.example>"},
		{"Date", "Date: Sat, 28 Nov 2026", "Date: Sun, 29 Nov 2026"},
		{"Message-ID", "<20261128101010.4711@", "<20261128101010.4712@"},
		{"Newsgroups", "Newsgroups: dst.reports", "Newsgroups: dst.reports.test"},
		{"Content-Type", `boundary="dst-boundary-1"`, `boundary="dst-boundary-2"`},
		{"body Source-IP", "Source-IP: 203.0.113.7", "Source-IP: 198.51.100.9"},
		{"body appended", "--dst-boundary-1--\r\n", "--dst-boundary-1--\r\nmore\r\n"},
		{"body truncated", "--dst-boundary-1--\r\n", ""},
		{"signature tags", "\r\n s=dst;", "\r\n s=dst; n=note;"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			altered := bytes.Replace(signed, []byte(tc.old), []byte(tc.new), 1)
			if bytes.Equal(altered, signed) {
				t.Fatalf("test does not change the article (%q not found)", tc.old)
			}
			_, err := testKeyring().Verify(altered)
			if !errors.Is(err, ErrBadSignature) {
				t.Fatalf("Verify = %v, want ErrBadSignature", err)
			}
		})
	}
}

func TestDuplicateSignedField(t *testing.T) {
	signed := mustSign(t, reportArticle())
	for _, tc := range []struct{ name, field string }{
		{"second From on top", "From: DST <dst@site-b.example>\r\n"},
		{"second Subject", "Subject: trap hit 198.51.100.9\r\n"},
		{"second Content-Type", "Content-Type: text/plain\r\n"},
		{"second MIME-Version", "MIME-Version: 1.0\r\n"},
		{"case-insensitive name", "FROM: x@site-b.example\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, where := range []string{"top", "bottom"} {
				var a []byte
				if where == "top" {
					a = append([]byte(tc.field), signed...)
				} else {
					a = bytes.Replace(signed, []byte("\r\n\r\n"), []byte("\r\n"+strings.TrimSuffix(tc.field, "\r\n")+"\r\n\r\n"), 1)
				}
				_, err := testKeyring().Verify(a)
				if !errors.Is(err, ErrDuplicateField) {
					t.Errorf("%s: Verify = %v, want ErrDuplicateField", where, err)
				}
			}
		})
	}
	// Unsigned fields may repeat; relays add them.
	a := append([]byte("Path: x!not-for-mail\r\nPath: y!not-for-mail\r\n"), signed...)
	if _, err := testKeyring().Verify(a); err != nil {
		t.Errorf("repeated unsigned field: %v", err)
	}
}

func TestUnknownKey(t *testing.T) {
	for _, tc := range []struct{ domain, selector string }{
		{testDomain, "other"},
		{"site-z.example", testSelector},
	} {
		s, err := NewSigner(tc.domain, tc.selector, testKey())
		if err != nil {
			t.Fatal(err)
		}
		signed, err := s.Sign(reportArticle())
		if err != nil {
			t.Fatal(err)
		}
		_, err = testKeyring().Verify(signed)
		if !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("Verify = %v, want ErrUnknownKey", err)
		}
		if !strings.Contains(err.Error(), tc.domain) || !strings.Contains(err.Error(), tc.selector) {
			t.Errorf("error %q does not name domain %s selector %s", err, tc.domain, tc.selector)
		}
	}
}

func TestSignerNameCase(t *testing.T) {
	// DNS names are case-insensitive and may end in a dot.
	signed := handSignAs(t, reportArticle(), testKey(), "Site-A.Example.", "", SignedHeaders)
	if d, err := testKeyring().Verify(signed); err != nil || d != testDomain {
		t.Fatalf("d=Site-A.Example.: Verify = %q, %v", d, err)
	}
}

func TestWrongKeyForKnownSelector(t *testing.T) {
	s, _ := NewSigner(testDomain, testSelector, otherKey())
	signed, err := s.Sign(reportArticle())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testKeyring().Verify(signed); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Verify = %v, want ErrBadSignature", err)
	}
}

func libSign(t *testing.T, article []byte, signer crypto.Signer, keys []string) []byte {
	t.Helper()
	var out bytes.Buffer
	err := msgdkim.Sign(&out, bytes.NewReader(article), &msgdkim.SignOptions{
		Domain: testDomain, Selector: testSelector, Signer: signer,
		HeaderCanonicalization: msgdkim.CanonicalizationRelaxed,
		BodyCanonicalization:   msgdkim.CanonicalizationRelaxed,
		HeaderKeys:             keys,
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestWeakSignature(t *testing.T) {
	orig := reportArticle()
	_, body, _ := splitArticle(orig)

	t.Run("l= over the whole body", func(t *testing.T) {
		// Even when l= happens to cover everything, a relay could append
		// to it, so the tag alone disqualifies the signature.
		signed := handSign(t, orig, testKey(), fmt.Sprintf(" l=%d;", len(relaxedBody(body))), SignedHeaders)
		_, err := testKeyring().Verify(signed)
		if !errors.Is(err, ErrWeakSignature) || !strings.Contains(err.Error(), "l=") {
			t.Fatalf("Verify = %v, want ErrWeakSignature about l=", err)
		}
	})
	for _, missing := range requiredHeaders {
		t.Run("h= without "+missing, func(t *testing.T) {
			var keys []string
			for _, k := range SignedHeaders {
				if k != missing {
					keys = append(keys, k)
				}
			}
			if missing == "From" {
				// The library insists on From, so sign by hand.
				_, err := testKeyring().Verify(handSign(t, orig, testKey(), "", keys))
				if !errors.Is(err, ErrWeakSignature) {
					t.Fatalf("Verify = %v, want ErrWeakSignature", err)
				}
				return
			}
			_, err := testKeyring().Verify(libSign(t, orig, testKey(), keys))
			if !errors.Is(err, ErrWeakSignature) || !strings.Contains(err.Error(), missing) {
				t.Fatalf("Verify = %v, want ErrWeakSignature naming %s", err, missing)
			}
		})
	}
	t.Run("rsa-sha256", func(t *testing.T) {
		rk, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		_, err = testKeyring().Verify(libSign(t, orig, rk, SignedHeaders))
		if !errors.Is(err, ErrWeakSignature) || !strings.Contains(err.Error(), "rsa-sha256") {
			t.Fatalf("Verify = %v, want ErrWeakSignature about rsa-sha256", err)
		}
	})
}

func TestControlMustBeSigned(t *testing.T) {
	signed := mustSign(t, reportArticle())
	cancel := append([]byte("Control: cancel <other@site-a.example>\r\n"), signed...)
	if _, err := testKeyring().Verify(cancel); !errors.Is(err, ErrWeakSignature) {
		t.Fatalf("report with an unsigned Control added: Verify = %v, want ErrWeakSignature", err)
	}
	// A genuine cancel signed by its origin verifies.
	ctl := bytes.Replace(reportArticle(), []byte("MIME-Version"), []byte("Control: cancel <other@site-a.example>\r\nMIME-Version"), 1)
	signedCtl := mustSign(t, ctl)
	if _, err := testKeyring().Verify(signedCtl); err != nil {
		t.Fatalf("signed cancel: %v", err)
	}
	altered := bytes.Replace(signedCtl, []byte("<other@"), []byte("<else@"), 1)
	if _, err := testKeyring().Verify(altered); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("altered cancel: Verify = %v, want ErrBadSignature", err)
	}
}

func TestNoSignatureAndMalformed(t *testing.T) {
	kr := testKeyring()
	if _, err := kr.Verify(reportArticle()); !errors.Is(err, ErrNoSignature) {
		t.Errorf("unsigned: Verify = %v, want ErrNoSignature", err)
	}
	signed := mustSign(t, reportArticle())
	for name, a := range map[string][]byte{
		"no end of header":    []byte("From: a@b.example\r\nSubject: x\r\n"),
		"lone CR in body":     bytes.Replace(signed, []byte("Version: 1\r\n"), []byte("Version: 1\r\r\n"), 1),
		"space before colon":  bytes.Replace(signed, []byte("\r\nNewsgroups:"), []byte("\r\nNewsgroups :"), 1),
		"line without colon":  append([]byte("Garbage\r\n"), signed...),
		"NUL in header":       bytes.Replace(signed, []byte("Subject: trap"), []byte("Subject: \x00trap"), 1),
		"continuation first":  append([]byte(" folded\r\n"), signed...),
		"bad tag list":        bytes.Replace(signed, []byte("v=1;"), []byte("v=1; garbage;"), 1),
		"too many signatures": append(bytes.Repeat(signed[:bytes.Index(signed, []byte("From:"))], maxSignatures), signed...),
	} {
		if _, err := kr.Verify(a); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Verify = %v, want ErrMalformed", name, err)
		}
	}
}

func TestSeveralSignatures(t *testing.T) {
	s, _ := NewSigner("site-z.example", "dst", otherKey())
	once := mustSign(t, reportArticle())
	twice, err := s.Sign(once)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := testKeyring().Verify(twice); err != nil || d != testDomain {
		t.Fatalf("unknown signature on top of a good one: Verify = %q, %v", d, err)
	}
	// Known key that fails beats an unknown one in the reported reason.
	broken := bytes.Replace(twice, []byte("Source-IP: 203.0.113.7"), []byte("Source-IP: 203.0.113.8"), 1)
	if _, err := testKeyring().Verify(broken); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Verify = %v, want ErrBadSignature", err)
	}
}

func TestSignRefuses(t *testing.T) {
	s, _ := NewSigner(testDomain, testSelector, testKey())
	noID := bytes.Replace(reportArticle(), []byte("Message-ID: <20261128101010.4711@site-a.example>\r\n"), nil, 1)
	if _, err := s.Sign(noID); err == nil || !strings.Contains(err.Error(), "Message-ID") {
		t.Errorf("Sign without Message-ID: %v", err)
	}
	two := append([]byte("From: x@site-a.example\r\n"), reportArticle()...)
	if _, err := s.Sign(two); err == nil || !strings.Contains(err.Error(), "2 From") {
		t.Errorf("Sign with two From: %v", err)
	}
	for _, tc := range []struct {
		d, s string
		k    ed25519.PrivateKey
	}{{"", "dst", testKey()}, {testDomain, "", testKey()}, {"bad domain", "dst", testKey()}, {testDomain, "a;b", testKey()},
		{testDomain, "x._domainkey", testKey()}, {testDomain, "dst", testKey()[:10]}} {
		if _, err := NewSigner(tc.d, tc.s, tc.k); err == nil {
			t.Errorf("NewSigner(%q, %q) succeeded", tc.d, tc.s)
		}
	}
}

func TestKeyringConcurrentReplace(t *testing.T) {
	kr := testKeyring()
	signed := mustSign(t, reportArticle())
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				if _, err := kr.Verify(signed); err != nil && !errors.Is(err, ErrUnknownKey) {
					t.Error(err)
					return
				}
				kr.Len()
			}
		}()
	}
	for j := 0; j < 50; j++ {
		if j%2 == 0 {
			kr.Replace(&Keyring{})
		} else {
			kr.Replace(testKeyring())
		}
	}
	wg.Wait()
	kr.Replace(testKeyring())
	if _, err := kr.Verify(signed); err != nil || kr.Len() != 1 {
		t.Fatalf("after Replace: %v, Len %d", err, kr.Len())
	}
}

func TestKeyringKeys(t *testing.T) {
	kr, err := ParseKeyring(strings.NewReader("Site-B.test dst 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n" +
		"site-a.test s2 GDHoA48ZYDxGgiDmO7Oj0DAEJLbE+7TTvRKhbhqOkUo=\nsite-a.test s1 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range kr.Keys() {
		got = append(got, k.Domain+" "+k.Selector+" "+base64.StdEncoding.EncodeToString(k.Public))
	}
	want := []string{
		"site-a.test s1 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
		"site-a.test s2 GDHoA48ZYDxGgiDmO7Oj0DAEJLbE+7TTvRKhbhqOkUo=",
		"site-b.test dst 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Keys() = %q, want %q", got, want)
	}
}
