package dnsupdate

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/dst-traps/dst/internal/dnsutil"
	"github.com/dst-traps/dst/internal/store"
)

// ResyncResult says what Resync found and fixed.
type ResyncResult struct {
	Wanted  int // listings the caller wants published
	Present int // address names with A or TXT records in the zone
	Added   int // wanted and missing
	Fixed   int // present with wrong records (A address, TXT text, TTL, extra records)
	Removed int // present and not wanted
	Updates int // UPDATE messages sent
}

// have is what the zone holds at one address name.
type have struct {
	a, txt []dns.RR
}

// Resync makes the zone match want: it transfers the zone from the
// server (AXFR, RFC 5936, signed with the same TSIG key, so the server's
// allow-transfer must admit the key), compares each RFC 5782 address name
// with the listings want yields, and sends UPDATEs for the differences
// only: missing listings are added, wrong ones rewritten, and names that
// are not listed lose their A and TXT records. The apex (SOA, NS) and
// every name not in the address form (ns.zone, hand-made test entries)
// are left alone, as are other record types at address names.
//
// want calls fn for each listing; ev gives the TXT its details (Kind
// EventReport, Expires, ...). dstd calls Resync at start and on demand.
// DoBatch sends no UPDATE while a Resync is in progress; events queued
// meanwhile are newer than want's snapshot and are applied after it.
// A failed Resync changes nothing it did not already send and may simply
// be called again.
func (u *Updater) Resync(ctx context.Context, want func(fn func(ip netip.Addr, ev store.Event) error) error) error {
	res, err := u.resync(ctx, want)
	u.resyncMu.Lock()
	u.lastResync = res
	u.resyncMu.Unlock()
	return err
}

// LastResync returns what the last Resync found and did (up to its
// failure, if it failed).
func (u *Updater) LastResync() ResyncResult {
	u.resyncMu.Lock()
	defer u.resyncMu.Unlock()
	return u.lastResync
}

func (u *Updater) resync(ctx context.Context, want func(fn func(ip netip.Addr, ev store.Event) error) error) (ResyncResult, error) {
	var res ResyncResult
	u.mu.Lock()
	defer u.mu.Unlock()
	present, err := u.transfer(ctx)
	if err != nil {
		return res, err
	}
	res.Present = len(present)

	var chs []change
	seen := make(map[netip.Addr]bool)
	if u.c.Simulate {
		// Nothing is published: every listing record goes.
		want = func(func(netip.Addr, store.Event) error) error { return nil }
	}
	err = want(func(ip netip.Addr, ev store.Event) error {
		ip = ip.Unmap().WithZone("")
		if !ip.IsValid() || seen[ip] {
			return nil
		}
		seen[ip] = true
		res.Wanted++
		h, ok := present[ip]
		switch {
		case !ok:
			res.Added++
		case u.matches(ip, ev, h):
			return nil
		default:
			res.Fixed++
		}
		chs = append(chs, change{ip: ip, ev: ev})
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("DNS UPDATE resync of zone %s: reading the listings: %w", strings.TrimSuffix(u.zone, "."), err)
	}
	// Deletions in address order, so that runs are reproducible.
	var gone []netip.Addr
	for ip := range present {
		if !seen[ip] {
			gone = append(gone, ip)
		}
	}
	slices.SortFunc(gone, netip.Addr.Compare)
	for _, ip := range gone {
		chs = append(chs, change{ip: ip, del: true})
		res.Removed++
	}
	for _, m := range u.buildBatches(chs) {
		if err := u.send(ctx, m); err != nil {
			return res, fmt.Errorf("DNS UPDATE resync of zone %s: %w", strings.TrimSuffix(u.zone, "."), err)
		}
		res.Updates++
	}
	u.log.Info("DNS UPDATE resync done", "wanted", res.Wanted, "present", res.Present,
		"added", res.Added, "fixed", res.Fixed, "removed", res.Removed, "updates", res.Updates)
	return res, nil
}

// matches says whether the zone's records at ip are exactly what a
// listing publishes.
func (u *Updater) matches(ip netip.Addr, ev store.Event, h have) bool {
	a, t := u.records(ip, ev)
	if len(h.a) != 1 || len(h.txt) != 1 {
		return false
	}
	ha, ok1 := h.a[0].(*dns.A)
	ht, ok2 := h.txt[0].(*dns.TXT)
	return ok1 && ok2 && ha.Hdr.Ttl == a.Hdr.Ttl && ht.Hdr.Ttl == t.Hdr.Ttl &&
		ha.A.Equal(a.A) &&
		// The text, not its spelling: a record split into other
		// character-strings, or escaped otherwise by hand, reads the same.
		dnsutil.TXTText(ht.Txt) == dnsutil.TXTText(t.Txt)
}

// transfer fetches the zone and returns the A and TXT records of its
// address names.
func (u *Updater) transfer(ctx context.Context) (map[netip.Addr]have, error) {
	zone := strings.TrimSuffix(u.zone, ".")
	m := new(dns.Msg)
	m.SetAxfr(u.zone)
	m.SetTsig(u.keyName, u.alg, 300, u.c.Now().Unix())
	tr := &dns.Transfer{DialTimeout: u.c.Timeout, ReadTimeout: u.c.Timeout, WriteTimeout: u.c.Timeout,
		TsigSecret: map[string]string{u.keyName: u.c.Secret}}
	env, err := tr.In(m, u.c.Server)
	if err != nil {
		return nil, fmt.Errorf("DNS UPDATE resync: cannot start a zone transfer (AXFR) of %s from %s: %w", zone, u.c.Server, err)
	}
	// Transfer.In has no context; closing its connection when ctx ends
	// makes the reading goroutine finish and close env.
	stop := context.AfterFunc(ctx, func() { tr.Close() })
	defer stop()

	present := make(map[netip.Addr]have)
	soas := 0
	var terr error
	for e := range env {
		if e.Error != nil {
			if terr == nil {
				terr = e.Error
			}
			continue // drain, so the reader goroutine can exit
		}
		for _, rr := range e.RR {
			hdr := rr.Header()
			if hdr.Rrtype == dns.TypeSOA {
				soas++
			}
			if hdr.Rrtype != dns.TypeA && hdr.Rrtype != dns.TypeTXT {
				continue
			}
			ip, ok := dnsutil.ParseReverseName(hdr.Name, u.zone)
			if !ok {
				continue
			}
			h := present[ip]
			if hdr.Rrtype == dns.TypeA {
				h.a = append(h.a, rr)
			} else {
				h.txt = append(h.txt, rr)
			}
			present[ip] = h
		}
	}
	if terr != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("DNS UPDATE resync: zone transfer of %s from %s interrupted: %w", zone, u.c.Server, ctx.Err())
		}
		return nil, fmt.Errorf("DNS UPDATE resync: zone transfer (AXFR) of %s from %s failed — the server's allow-transfer must admit TSIG key %s: %w",
			zone, u.c.Server, strings.TrimSuffix(u.keyName, "."), terr)
	}
	// A complete AXFR starts and ends with the SOA (RFC 5936 §2.2).
	if soas < 2 {
		return nil, fmt.Errorf("DNS UPDATE resync: zone transfer of %s from %s ended early (no closing SOA); not repairing from a partial copy", zone, u.c.Server)
	}
	return present, nil
}
