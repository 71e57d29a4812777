package dkim

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"

	msgdkim "github.com/emersion/go-msgauth/dkim"
)

// keyID names a key the way DKIM does: d= and s= (RFC 6376 §3.1).
type keyID struct{ domain, selector string }

// Keyring maps (domain, selector) to the Ed25519 public keys this site
// trusts. The zero value is an empty keyring. It is safe for concurrent
// use; Replace swaps the contents atomically for SIGHUP reloads.
type Keyring struct {
	mu   sync.RWMutex
	keys map[keyID]ed25519.PublicKey
	// attrs are the origin attributes of the keyring file's lines, by
	// domain: who operates the site, and whether it is on probation.
	attrs map[string]Attrs
	dns   *dnsKeySource // keys from DNS for some domains (SetDNSKeys), or nil
}

// Attrs are what a keyring line may say about its site besides the key.
type Attrs struct {
	// Operator runs the site; several sites of one operator count as one
	// reporter towards policy.threshold. Empty: the site is its own
	// operator.
	Operator string
	// Probation: the site's reports do not list here until other
	// operators have corroborated enough of them.
	Probation bool
}

// Operator returns the operator of an origin: its keyring line's
// operator=, else the origin itself.
func (k *Keyring) Operator(domain string) string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if a := k.attrs[normName(domain)]; a.Operator != "" {
		return a.Operator
	}
	return normName(domain)
}

// Probation tells whether the keyring file puts the origin on probation.
func (k *Keyring) Probation(domain string) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.attrs[normName(domain)].Probation
}

// InFile tells whether the keyring file has a key of the domain; an origin
// that is not was learnt from DNS (dkim.dns_key_domains).
func (k *Keyring) InFile(domain string) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	_, ok := k.attrs[normName(domain)]
	return ok
}

// LoadKeyring reads a keyring file (see ParseKeyring). A missing file gives
// an error that wraps fs.ErrNotExist.
func LoadKeyring(path string) (*Keyring, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the DKIM keyring: %w", err)
	}
	defer f.Close()
	k, err := ParseKeyring(f)
	if err != nil {
		return nil, fmt.Errorf("DKIM keyring %s: %w", path, err)
	}
	return k, nil
}

// ParseKeyring reads a keyring: one key per line, "domain selector key
// [operator=NAME] [probation]", where key is either the base64 of the
// 32-byte raw Ed25519 public key (the p= value of RFC 8463 §4) or a whole
// DKIM key record as published in DNS ("v=DKIM1; k=ed25519; p=...", quotes
// allowed). The optional attributes after the key say which operator runs
// the site (several sites, one operator) and that it is on probation; they
// apply to the domain, so its lines must not contradict each other.
// Everything after '#' is a comment; blank lines are ignored. Errors name
// the line.
func ParseKeyring(r io.Reader) (*Keyring, error) {
	k := &Keyring{keys: make(map[keyID]ed25519.PublicKey), attrs: make(map[string]Attrs)}
	seen := make(map[keyID]int)
	opLine := make(map[string]int)
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		f, at, err := cutAttrs(f)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if len(f) < 3 {
			return nil, fmt.Errorf("line %d: want \"domain selector key\", found %d field(s)", n, len(f))
		}
		if strings.EqualFold(f[1], "IN") || strings.EqualFold(f[1], "TXT") {
			return nil, fmt.Errorf("line %d: this looks like a DNS zone line; write \"domain selector key\" instead", n)
		}
		if err := checkName("domain", f[0]); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if err := checkName("selector", f[1]); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		keyText := strings.Join(f[2:], " ")
		if len(f) > 3 && !isRecord(keyText) {
			return nil, fmt.Errorf("line %d: want \"domain selector key\", found %d fields", n, len(f))
		}
		pub, err := parsePublicKey(keyText)
		if err != nil {
			return nil, fmt.Errorf("line %d (%s, selector %s): %w", n, f[0], f[1], err)
		}
		id := keyID{normName(f[0]), normName(f[1])}
		if prev, dup := seen[id]; dup {
			return nil, fmt.Errorf("line %d: domain %s selector %s already has a key on line %d", n, f[0], f[1], prev)
		}
		seen[id] = n
		k.keys[id] = pub
		prev := k.attrs[id.domain]
		if at.Operator != "" {
			if prev.Operator != "" && prev.Operator != at.Operator {
				return nil, fmt.Errorf("line %d: %s has operator=%s, but line %d says operator=%s: one site has one operator", n, f[0], at.Operator, opLine[id.domain], prev.Operator)
			}
			prev.Operator = at.Operator
			opLine[id.domain] = n
		}
		prev.Probation = prev.Probation || at.Probation
		k.attrs[id.domain] = prev
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the keyring: %w", err)
	}
	return k, nil
}

// cutAttrs takes the optional attributes off the end of a line's fields.
// A DKIM key record never has a field "probation" or one starting with
// "operator=", so they cannot be mistaken for part of the key.
func cutAttrs(f []string) ([]string, Attrs, error) {
	var a Attrs
	for len(f) > 3 {
		last := f[len(f)-1]
		switch {
		case strings.EqualFold(last, "probation"):
			a.Probation = true
		case len(last) > len("operator=") && strings.EqualFold(last[:len("operator=")], "operator="):
			op := normName(last[len("operator="):])
			if checkName("operator", op) != nil {
				return nil, a, fmt.Errorf("operator %q: want a name such as example-isp (letters, digits, '-', '.')", op)
			}
			a.Operator = op
		case strings.EqualFold(last, "operator="):
			return nil, a, errors.New("operator= has no name: write operator=NAME, or leave it out")
		default:
			return f, a, nil
		}
		f = f[:len(f)-1]
	}
	return f, a, nil
}

// parsePublicKey reads a raw base64 key or a DKIM key record.
func parsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.ReplaceAll(s, `"`, "") // zone-file quoting of TXT strings
	p := s
	if isRecord(s) {
		tags, err := parseTags(s)
		if err != nil {
			return nil, fmt.Errorf("not a DKIM key record: %w", err)
		}
		// RFC 6376 §3.6.1: v= is optional but, when present, DKIM1.
		if v, ok := tags["v"]; ok && v != "DKIM1" {
			return nil, fmt.Errorf("key record version v=%s, want DKIM1", v)
		}
		// k= defaults to rsa (RFC 6376 §3.6.1); only Ed25519 is accepted
		// (RFC 8463), so the tag must be present.
		if kt := tags["k"]; kt != "ed25519" {
			if kt == "" {
				kt = "rsa (the default when k= is absent)"
			}
			return nil, fmt.Errorf("key type is %s; DST accepts only Ed25519 keys (k=ed25519, RFC 8463)", kt)
		}
		if h, ok := tags["h"]; ok && !containsFold(strings.Split(stripSpace(h), ":"), "sha256") {
			return nil, fmt.Errorf("key record allows hashes h=%s, but ed25519-sha256 needs sha256", h)
		}
		var ok bool
		if p, ok = tags["p"]; !ok {
			return nil, errors.New("key record has no p= tag")
		}
		if stripSpace(p) == "" {
			// RFC 6376 §3.6.1: an empty p= means the key was revoked.
			return nil, errors.New("key record has an empty p=: the key is revoked")
		}
	}
	raw, err := base64.StdEncoding.DecodeString(stripSpace(p))
	if err != nil {
		return nil, fmt.Errorf("public key is not valid base64: %w", err)
	}
	if len(raw) != ed25519.PublicKeySize {
		// An RSA key in SubjectPublicKeyInfo form is the usual culprit.
		return nil, fmt.Errorf("public key has %d bytes, want the %d bytes of a raw Ed25519 key (RFC 8463 §4)", len(raw), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}

// isRecord tells a DKIM key record from a raw key: a record has ';'
// separators or starts with a one-letter tag, while a raw base64 key of 44
// characters can have '=' only at its end.
func isRecord(s string) bool {
	if strings.Contains(s, ";") {
		return true
	}
	s = strings.TrimSpace(strings.ReplaceAll(s, `"`, ""))
	if len(s) < 2 || !('a' <= s[0] && s[0] <= 'z') {
		return false
	}
	return strings.HasPrefix(strings.TrimLeft(s[1:], " \t"), "=")
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// Add adds or replaces the key for (domain, selector). Names are compared
// case-insensitively. pub must be a 32-byte Ed25519 key; anything else is a
// programming error and panics, as ed25519.Verify would later.
func (k *Keyring) Add(domain, selector string, pub ed25519.PublicKey) {
	if len(pub) != ed25519.PublicKeySize {
		panic(fmt.Sprintf("dkim: Keyring.Add: public key has %d bytes, want %d", len(pub), ed25519.PublicKeySize))
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys == nil {
		k.keys = make(map[keyID]ed25519.PublicKey)
	}
	k.keys[keyID{normName(domain), normName(selector)}] = append(ed25519.PublicKey(nil), pub...)
	if k.attrs == nil {
		k.attrs = make(map[string]Attrs)
	}
	if _, ok := k.attrs[normName(domain)]; !ok {
		k.attrs[normName(domain)] = Attrs{}
	}
}

// Len returns the number of keys.
func (k *Keyring) Len() int {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return len(k.keys)
}

// Key is one trusted key, as Keys lists it, with its domain's attributes.
type Key struct {
	Domain, Selector string // lower case
	Public           ed25519.PublicKey
	Attrs
}

// Keys returns the keys, sorted by domain and selector.
func (k *Keyring) Keys() []Key {
	k.mu.RLock()
	out := make([]Key, 0, len(k.keys))
	for id, pub := range k.keys {
		out = append(out, Key{Domain: id.domain, Selector: id.selector, Public: pub, Attrs: k.attrs[id.domain]})
	}
	k.mu.RUnlock()
	slices.SortFunc(out, func(a, b Key) int {
		return cmp.Or(strings.Compare(a.Domain, b.Domain), strings.Compare(a.Selector, b.Selector))
	})
	return out
}

// Replace makes k hold exactly the keys of from; Verify calls running
// concurrently see either the old or the new set, never a mix.
func (k *Keyring) Replace(from *Keyring) {
	from.mu.RLock()
	keys := make(map[keyID]ed25519.PublicKey, len(from.keys))
	for id, pub := range from.keys {
		keys[id] = pub
	}
	attrs := make(map[string]Attrs, len(from.attrs))
	for d, a := range from.attrs {
		attrs[d] = a
	}
	from.mu.RUnlock()
	k.mu.Lock()
	k.keys, k.attrs = keys, attrs
	k.mu.Unlock()
}

// lookup returns the key for (domain, selector): the keyring file's, or
// one from DNS for the domains SetDNSKeys names; dnsErr says why DNS had
// none, when it was asked.
func (k *Keyring) lookup(domain, selector string) (pub ed25519.PublicKey, ok bool, dnsErr error) {
	k.mu.RLock()
	pub, ok = k.keys[keyID{normName(domain), normName(selector)}]
	src := k.dns
	k.mu.RUnlock()
	if ok || src == nil {
		return pub, ok, nil
	}
	pub, err := src.key(domain, selector)
	if errors.Is(err, errNotDNSDomain) {
		return nil, false, nil
	}
	return pub, err == nil, err
}

// candidate is a DKIM-Signature that passed the checks made before any
// cryptography.
type candidate struct {
	domain, selector string
	pub              ed25519.PublicKey
}

// Verify checks that article carries a valid DKIM signature by a key in the
// keyring and returns the signer's domain (d=), which is the report's
// origin. Besides the cryptography (RFC 6376 §6), a signature counts only
// if:
//
//   - a= is ed25519-sha256 (RFC 8463); rsa is refused even with a known
//     domain, as the keyring only holds Ed25519 keys;
//   - it has no l= tag, so the body hash covers the whole body (RFC 6376
//     §8.2: content appended after l= bytes is unsigned);
//   - h= covers From, Date, Message-ID, Newsgroups, Content-Type and
//     Subject, and Control and Supersedes when present (an unsigned field
//     can be swapped by any relay);
//   - every field named in h= occurs at most once in the article (exactly
//     once for the required ones). DKIM signs the bottom-most instance
//     (RFC 6376 §5.4.2) while readers use the top-most, so a second
//     instance prepended by a relay would be shown but not signed
//     (RFC 6376 §8.15).
//
// The first signature that passes wins. Otherwise the error of the most
// telling failure is returned, wrapping one of ErrNoSignature,
// ErrUnknownKey, ErrBadSignature, ErrWeakSignature, ErrDuplicateField or
// ErrMalformed.
func (k *Keyring) Verify(article []byte) (domain string, err error) {
	fields, err := parseHeader(article)
	if err != nil {
		return "", err
	}
	count := countFields(fields)
	var sigs []field
	for _, f := range fields {
		if strings.EqualFold(f.name, signatureField) {
			sigs = append(sigs, f)
		}
	}
	if len(sigs) == 0 {
		return "", ErrNoSignature
	}
	if len(sigs) > maxSignatures {
		return "", fmt.Errorf("%w: %d DKIM-Signature fields (at most %d are checked)", ErrMalformed, len(sigs), maxSignatures)
	}

	var best rankedError
	cands := make([]*candidate, len(sigs))
	for i, f := range sigs {
		c, err := k.precheck(f, count)
		if err != nil {
			best.offer(err)
			continue
		}
		cands[i] = c
	}
	txt := make(map[string]string)
	for _, c := range cands {
		if c != nil {
			txt[c.selector+"._domainkey."+c.domain] = "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(c.pub)
		}
	}
	if len(txt) == 0 {
		return "", best.err
	}

	verifs, err := msgdkim.VerifyWithOptions(bytes.NewReader(article), &msgdkim.VerifyOptions{
		// Only keys from the keyring, never DNS: the answer must be the
		// exact key the precheck looked at.
		LookupTXT: func(name string) ([]string, error) {
			if v, ok := txt[normName(name)]; ok {
				return []string{v}, nil
			}
			return nil, fmt.Errorf("%s is not in the keyring", name)
		},
		MaxVerifications: maxSignatures,
	})
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(verifs) != len(sigs) {
		// Both sides read the header the same way; a mismatch means they
		// do not, and nothing can be trusted.
		return "", fmt.Errorf("%w: found %d DKIM-Signature fields but the DKIM library found %d", ErrMalformed, len(sigs), len(verifs))
	}
	for i, v := range verifs {
		c := cands[i]
		if c == nil {
			continue
		}
		if v.Err != nil {
			best.offer(fmt.Errorf("%w (d=%s s=%s): %w", ErrBadSignature, c.domain, c.selector, v.Err))
			continue
		}
		if normName(v.Domain) != c.domain {
			best.offer(fmt.Errorf("%w: the DKIM library verified d=%s where d=%s was expected", ErrMalformed, v.Domain, c.domain))
			continue
		}
		return c.domain, nil
	}
	return "", best.err
}

// precheck applies DST's rules to one DKIM-Signature field and finds its key.
func (k *Keyring) precheck(f field, count map[string]int) (*candidate, error) {
	_, value, _ := strings.Cut(f.raw, ":")
	tags, err := parseTags(value)
	if err != nil {
		return nil, fmt.Errorf("%w: DKIM-Signature: %w", ErrMalformed, err)
	}
	for _, t := range []string{"v", "a", "b", "bh", "d", "h", "s"} { // RFC 6376 §3.5 required tags
		if _, ok := tags[t]; !ok {
			return nil, fmt.Errorf("%w: DKIM-Signature has no %s= tag", ErrMalformed, t)
		}
	}
	if a := stripSpace(tags["a"]); a != "ed25519-sha256" {
		return nil, fmt.Errorf("%w: algorithm a=%s, only ed25519-sha256 (RFC 8463) is accepted", ErrWeakSignature, a)
	}
	if _, ok := tags["l"]; ok {
		return nil, fmt.Errorf("%w: body length limit l=%s leaves the rest of the body unsigned (RFC 6376 §8.2)", ErrWeakSignature, tags["l"])
	}
	signed := make(map[string]bool)
	for _, h := range strings.Split(tags["h"], ":") {
		signed[strings.ToLower(stripSpace(h))] = true
	}
	for _, name := range requiredHeaders {
		if !signed[strings.ToLower(name)] {
			return nil, fmt.Errorf("%w: h= does not cover %s, so a relay could change it", ErrWeakSignature, name)
		}
	}
	for _, name := range guardedHeaders {
		if count[strings.ToLower(name)] > 0 && !signed[strings.ToLower(name)] {
			return nil, fmt.Errorf("%w: the article has a %s field that the signature does not cover", ErrWeakSignature, name)
		}
	}
	// Checked before any cryptography so that a duplicate is refused even
	// when the signature itself would verify.
	for name := range signed {
		if count[name] > 1 {
			return nil, fmt.Errorf("%w: %d %s fields in an article whose signature covers %s", ErrDuplicateField, count[name], name, name)
		}
	}
	for _, name := range requiredHeaders {
		if count[strings.ToLower(name)] == 0 {
			return nil, fmt.Errorf("%w: the article has no %s field", ErrMalformed, name)
		}
	}
	d, s := normName(stripSpace(tags["d"])), normName(stripSpace(tags["s"]))
	if checkName("domain", d) != nil || checkName("selector", s) != nil {
		return nil, fmt.Errorf("%w: DKIM-Signature names domain %q selector %q, not DNS names", ErrMalformed, d, s)
	}
	pub, ok, dnsErr := k.lookup(d, s)
	if !ok && dnsErr != nil {
		return nil, fmt.Errorf("%w: domain %s selector %s: not in the keyring file, and %v", ErrUnknownKey, d, s, dnsErr)
	}
	if !ok {
		return nil, fmt.Errorf("%w: domain %s selector %s (add the site's key line to the keyring file)", ErrUnknownKey, d, s)
	}
	return &candidate{domain: d, selector: s, pub: pub}, nil
}

// rankedError keeps the most telling of several signature failures: a
// known key that fails to verify says more about the article than a
// signature from a site we do not know.
type rankedError struct {
	err  error
	rank int
}

func (r *rankedError) offer(err error) {
	rank := 0
	for i, e := range []error{ErrMalformed, ErrUnknownKey, ErrWeakSignature, ErrDuplicateField, ErrBadSignature} {
		if errors.Is(err, e) {
			rank = i + 1
		}
	}
	if r.err == nil || rank > r.rank {
		r.err, r.rank = err, rank
	}
}
