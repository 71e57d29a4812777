package dkim

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDNSKeys(t *testing.T) {
	pub, priv, _ := GenerateKey()
	other, _, _ := GenerateKey()
	signer, _ := NewSigner("site-b.example", "s2", priv)
	record := "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
	queries := map[string]int{}
	answers := map[string][]string{"s2._domainkey.site-b.example": {record, "unrelated TXT"}}
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	kr, _ := ParseKeyring(strings.NewReader(""))
	kr.SetDNSKeys(DNSKeys{Domains: []string{"Site-B.example"}})
	kr.dns.now = func() time.Time { return now }
	kr.dns.query = func(_ context.Context, name string) ([]string, error) {
		queries[name]++
		if a, ok := answers[name]; ok {
			return a, nil
		}
		return nil, errors.New("no such name")
	}
	art := signedArticle(t, signer)
	if d, err := kr.Verify(art); err != nil || d != "site-b.example" {
		t.Fatalf("Verify with the key from DNS = %q, %v", d, err)
	}
	if _, err := kr.Verify(art); err != nil || queries["s2._domainkey.site-b.example"] != 1 {
		t.Errorf("second Verify: %v; %d queries, want 1 (cached)", err, queries["s2._domainkey.site-b.example"])
	}
	// After the cache time, asked again; a changed key is used.
	answers["s2._domainkey.site-b.example"] = []string{"v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(other)}
	now = now.Add(2 * time.Hour)
	if _, err := kr.Verify(art); err == nil {
		t.Error("Verify after the DNS key changed succeeded with the old key's signature")
	}
	// A domain not named: DNS is never asked.
	c, _ := NewSigner("site-c.example", "s2", priv)
	answers["s2._domainkey.site-c.example"] = []string{record}
	if _, err := kr.Verify(signedArticle(t, c)); !errors.Is(err, ErrUnknownKey) || queries["s2._domainkey.site-c.example"] != 0 {
		t.Errorf("Verify for a domain not allowed from DNS: %v (%d queries)", err, queries["s2._domainkey.site-c.example"])
	}
	// Missing, ambiguous or non-Ed25519 records: an unknown key, with why.
	for name, recs := range map[string][]string{
		"s3._domainkey.site-b.example": nil,
		"s4._domainkey.site-b.example": {record, record},
		"s5._domainkey.site-b.example": {"v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(pub)},
	} {
		if recs != nil {
			answers[name] = recs
		}
		sel := strings.SplitN(name, ".", 2)[0]
		s, _ := NewSigner("site-b.example", sel, priv)
		_, err := kr.Verify(signedArticle(t, s))
		if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), "from DNS") {
			t.Errorf("%s: %v, want an unknown key saying why DNS had none", name, err)
		}
	}
}

// signedArticle is the test report signed by s.
func signedArticle(t *testing.T, s *Signer) []byte {
	t.Helper()
	out, err := s.Sign(reportArticle())
	if err != nil {
		t.Fatal(err)
	}
	return out
}
