package dkim

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"strings"
	"testing"
)

// FuzzVerify checks that Verify never panics and that whatever it accepts
// says the same as the signed original: same signed header values and same
// body, up to the relaxed canonicalization the signature allows
// (RFC 6376 §3.4.2, §3.4.4).
func FuzzVerify(f *testing.F) {
	orig := reportArticle()
	signed := mustSign(f, orig)
	f.Add(signed)
	f.Add(append([]byte("Path: site-b.example!site-a.example!not-for-mail\r\n"), signed...))
	f.Add(append([]byte("From: evil@site-b.example\r\n"), signed...))
	f.Add(bytes.ReplaceAll(signed, []byte("\r\n"), []byte("\n")))
	f.Add(bytes.Replace(signed, []byte("Source-IP: 203.0.113.7"), []byte("Source-IP: 198.51.100.1"), 1))
	f.Add(mustSign(f, bytes.Replace(orig, []byte("MIME"), []byte("Control: cancel <x@y>\r\nMIME"), 1)))

	kr := testKeyring()
	origHeader, origBody, _ := splitArticle(orig)
	want := make(map[string]string)
	for _, fld := range origHeader {
		n, v := relaxedHeader(fld)
		want[n] = v
	}
	wantBody := relaxedBody(origBody)

	f.Fuzz(func(t *testing.T, article []byte) {
		d, err := kr.Verify(article)
		if err != nil {
			return
		}
		if d != testDomain {
			t.Fatalf("verified as %q, only %q has a key", d, testDomain)
		}
		header, body, ok := splitArticle(article)
		if !ok {
			t.Fatal("verified an article without a header end")
		}
		got := make(map[string][]string)
		for _, fld := range header {
			n, v := relaxedHeader(fld)
			got[n] = append(got[n], v)
		}
		for _, name := range SignedHeaders {
			n := strings.ToLower(name)
			if w, ok := want[n]; ok && (len(got[n]) != 1 || got[n][0] != w) {
				t.Fatalf("verified, but %s is %q, signed %q", name, got[n], w)
			}
		}
		// The seeds include a signed cancel; whatever Control the article
		// shows must be the one signed, if any.
		if c := got["control"]; len(c) > 1 || len(c) == 1 && c[0] != "cancel <x@y>" {
			t.Fatalf("verified with Control %q", c)
		}
		if b := relaxedBody(body); b != wantBody {
			t.Fatalf("verified, but the body differs from the signed one:\n%q\nwant\n%q", b, wantBody)
		}
	})
}

// FuzzParseKeyring: the keyring file and, through parsePublicKey, the key
// records fetched from DNS (network input) never panic, and every key
// accepted is a raw Ed25519 key.
func FuzzParseKeyring(f *testing.F) {
	f.Add("site-b.example dst 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n")
	f.Add(`site-b.example dst "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="` + "\n")
	f.Add("v=DKIM1; k=ed25519; h=sha256; p=")
	f.Add("# comment only\n\n")
	f.Fuzz(func(t *testing.T, s string) {
		if kr, err := ParseKeyring(strings.NewReader(s)); err == nil {
			for _, k := range kr.Keys() {
				if len(k.Public) != ed25519.PublicKeySize {
					t.Fatalf("accepted a %d-byte key from %q", len(k.Public), s)
				}
			}
		}
		src := &dnsKeySource{query: func(context.Context, string) ([]string, error) { return []string{s}, nil }}
		if pub, err := src.fetch(context.Background(), "dst._domainkey.site-b.example"); err == nil && len(pub) != ed25519.PublicKeySize {
			t.Fatalf("DNS record %q gave a %d-byte key", s, len(pub))
		}
	})
}
