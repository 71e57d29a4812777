package dkim

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Keys from DNS (RFC 6376 §3.6.2.2): a site may publish its key at
// selector._domainkey.domain. A keyring trusts such keys only for the
// domains it is told to (DNSKeys): trusting any domain's DNS would let a
// peer relay reports "from" any domain it controls. The keyring file still
// wins; DNS only fills in selectors it lacks, which spares a rotation the
// edit of every peer's keyring.

const (
	dnsKeyTTL      = time.Hour       // how long a fetched key is used before asking again
	dnsKeyNegTTL   = 5 * time.Minute // how long a missing or bad record is remembered
	dnsKeyTimeout  = 5 * time.Second
	dnsKeyMaxCache = 1024 // entries; a full cache is emptied (rare: few domains)
)

// DNSKeys configures keys from DNS: the domains whose keys may come from
// DNS, and the server to ask ("" is the system's resolver, from
// /etc/resolv.conf).
type DNSKeys struct {
	Domains []string
	Server  string // host:port
}

type dnsKeyEntry struct {
	pub     ed25519.PublicKey // nil: no usable key
	err     error
	expires time.Time
}

// dnsKeySource fetches and caches keys from DNS.
type dnsKeySource struct {
	domains map[string]bool
	server  string
	now     func() time.Time
	query   func(ctx context.Context, name string) ([]string, error) // TXT strings of one record each

	mu    sync.Mutex
	cache map[keyID]dnsKeyEntry
}

// SetDNSKeys makes k look up keys it does not hold in DNS, for d.Domains
// only. Call it before k is used.
func (k *Keyring) SetDNSKeys(d DNSKeys) {
	if len(d.Domains) == 0 {
		k.dns = nil
		return
	}
	src := &dnsKeySource{domains: map[string]bool{}, server: d.Server, now: time.Now, cache: map[keyID]dnsKeyEntry{}}
	for _, dom := range d.Domains {
		src.domains[normName(dom)] = true
	}
	src.query = src.queryTXT
	k.dns = src
}

// key returns the key published for (domain, selector), from the cache or
// DNS, or why there is none.
func (s *dnsKeySource) key(domain, selector string) (ed25519.PublicKey, error) {
	id := keyID{normName(domain), normName(selector)}
	if !s.domains[id.domain] {
		return nil, errNotDNSDomain
	}
	now := s.now()
	s.mu.Lock()
	e, ok := s.cache[id]
	s.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.pub, e.err
	}
	ctx, cancel := context.WithTimeout(context.Background(), dnsKeyTimeout)
	defer cancel()
	name := id.selector + "._domainkey." + id.domain
	pub, err := s.fetch(ctx, name)
	ttl := dnsKeyTTL
	if err != nil {
		ttl = dnsKeyNegTTL
		err = fmt.Errorf("key %s from DNS: %w", name, err)
	}
	s.mu.Lock()
	if len(s.cache) >= dnsKeyMaxCache {
		clear(s.cache)
	}
	s.cache[id] = dnsKeyEntry{pub: pub, err: err, expires: now.Add(ttl)}
	s.mu.Unlock()
	return pub, err
}

var errNotDNSDomain = errors.New("not a domain whose keys may come from DNS")

// fetch reads the one DKIM key record at name.
func (s *dnsKeySource) fetch(ctx context.Context, name string) (ed25519.PublicKey, error) {
	records, err := s.query(ctx, name)
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, r := range records {
		if strings.Contains(r, "p=") {
			keys = append(keys, r)
		}
	}
	switch len(keys) {
	case 0:
		return nil, errors.New("no DKIM key record")
	case 1:
		return parsePublicKey(keys[0])
	}
	// RFC 6376 §3.6.2.2: several records make the result undefined.
	return nil, fmt.Errorf("%d DKIM key records, want one", len(keys))
}

// queryTXT asks the configured server, or the system's first resolver,
// for the TXT records at name; each record's strings are joined.
func (s *dnsKeySource) queryTXT(ctx context.Context, name string) ([]string, error) {
	server := s.server
	if server == "" {
		cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil || len(cc.Servers) == 0 {
			return nil, fmt.Errorf("no resolver in /etc/resolv.conf: %v", err)
		}
		server = cc.Servers[0] + ":" + cc.Port
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	m.RecursionDesired = true
	c := &dns.Client{Timeout: dnsKeyTimeout}
	r, _, err := c.ExchangeContext(ctx, m, server)
	if err == nil && r.Truncated {
		c.Net = "tcp"
		r, _, err = c.ExchangeContext(ctx, m, server)
	}
	if err != nil {
		return nil, fmt.Errorf("asking %s: %w", server, err)
	}
	switch r.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return nil, errors.New("no such name")
	default:
		return nil, fmt.Errorf("%s answered %s", server, dns.RcodeToString[r.Rcode])
	}
	var out []string
	for _, rr := range r.Answer {
		if t, ok := rr.(*dns.TXT); ok && strings.EqualFold(t.Hdr.Name, dns.Fqdn(name)) {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	return out, nil
}
