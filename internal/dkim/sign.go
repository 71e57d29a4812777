package dkim

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"fmt"
	"strings"

	msgdkim "github.com/emersion/go-msgauth/dkim"
)

// Signer signs the articles a site injects. It is safe for concurrent use:
// it holds only immutable settings.
type Signer struct {
	domain   string
	selector string
	key      ed25519.PrivateKey
}

// NewSigner returns a Signer that signs as d=domain, s=selector with key.
func NewSigner(domain, selector string, key ed25519.PrivateKey) (*Signer, error) {
	if err := checkName("DKIM domain", domain); err != nil {
		return nil, err
	}
	if err := checkName("DKIM selector", selector); err != nil {
		return nil, err
	}
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("DKIM private key has %d bytes, want an Ed25519 key of %d", len(key), ed25519.PrivateKeySize)
	}
	return &Signer{domain: normName(domain), selector: normName(selector), key: key}, nil
}

// Sign returns article with a DKIM-Signature field prepended
// (a=ed25519-sha256, c=relaxed/relaxed, no l=, t= now).
//
// The article must carry exactly one of each field that Verify requires to
// be signed: signing an article that Verify would refuse only moves the
// failure to every peer. h= lists every name in SignedHeaders even when
// MIME-Version is absent: a name listed in h= but absent from the article
// cannot be added later without breaking the signature (RFC 6376 §5.4.2).
// Control and Supersedes are added to h= when present, because Verify
// refuses them unsigned.
func (s *Signer) Sign(article []byte) ([]byte, error) {
	fields, err := parseHeader(article)
	if err != nil {
		return nil, fmt.Errorf("cannot sign the article: %w", err)
	}
	count := countFields(fields)
	for _, name := range requiredHeaders {
		if count[strings.ToLower(name)] == 0 {
			return nil, fmt.Errorf("cannot sign the article: %w: it has no %s field, which the injecting agent must add first", ErrMalformed, name)
		}
	}
	keys := append([]string(nil), SignedHeaders...)
	for _, name := range guardedHeaders {
		if count[strings.ToLower(name)] > 0 {
			keys = append(keys, name)
		}
	}
	for _, name := range keys {
		if n := count[strings.ToLower(name)]; n > 1 {
			return nil, fmt.Errorf("cannot sign the article: %w: it has %d %s fields, and receivers refuse a signed field that appears more than once", ErrMalformed, n, name)
		}
	}

	var out bytes.Buffer
	out.Grow(len(article) + 512)
	err = msgdkim.Sign(&out, bytes.NewReader(article), &msgdkim.SignOptions{
		Domain:                 s.domain,
		Selector:               s.selector,
		Signer:                 s.key,
		Hash:                   crypto.SHA256,
		HeaderCanonicalization: msgdkim.CanonicalizationRelaxed,
		BodyCanonicalization:   msgdkim.CanonicalizationRelaxed,
		HeaderKeys:             keys,
	})
	if err != nil {
		return nil, fmt.Errorf("signing the article as %s (selector %s): %w", s.domain, s.selector, err)
	}
	return out.Bytes(), nil
}
