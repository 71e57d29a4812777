package site

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/dst-traps/dst/internal/config"
	"github.com/dst-traps/dst/internal/dnsbl"
	"github.com/dst-traps/dst/internal/dnsupdate"
	"github.com/dst-traps/dst/internal/dnsutil"
	"github.com/dst-traps/dst/internal/rbldnsd"
	"github.com/dst-traps/dst/internal/store"
)

// dnsParts is the DNS side of a site: the in-memory index behind the
// embedded server, the UPDATE pusher and the rbldnsd export.
type dnsParts struct {
	// refreshMu makes each index update read the store and apply what it
	// read without another update in between (see dnsRefresh).
	refreshMu sync.Mutex
	index     *dnsbl.Index
	server    *dnsbl.Server
	updater   *dnsupdate.Updater // also in Site.actions
	exporter  *rbldnsd.Exporter
	changed   chan struct{}
}

// txtFor fills the TXT template for a listing.
func txtFor(tmpl dnsbl.TXTTemplate, ip netip.Addr, origins []string, hits int, expires, first time.Time) string {
	return tmpl.Render(ip, dnsbl.Entry{Expires: expires, FirstSeen: first, Hits: hits, Origins: origins})
}

// corroboration is how many independent reporters stand behind l, which
// graded answers (dns.graded) publish: distinct operators, as the keyring
// names them (a site without operator= is its own), so that one operator's
// several sites count once, as they do for policy.threshold.
func (s *Site) corroboration(l store.Listing) int {
	snap := s.snap.Load()
	if snap == nil || snap.kr == nil {
		return len(l.Origins)
	}
	ops := make(map[string]struct{}, len(l.Origins))
	for _, o := range l.Origins {
		ops[snap.kr.Operator(o)] = struct{}{}
	}
	return len(ops)
}

// simulating says whether listings are computed but not published
// (policy.simulate): no DNS answer, no DNS UPDATE, no rbldnsd entry.
// Reports are still stored and relayed (relaying passes evidence on; it
// publishes nothing), and the report log and dstctl say "would list".
func (s *Site) simulating() bool { return s.cfg.Policy.Simulate }

// Simulating tells the admin API to show listings as simulated.
func (s *Site) Simulating() bool { return s.simulating() }

// entryFor is l as the embedded server's index keeps it.
func (s *Site) entryFor(l store.Listing) dnsbl.Entry {
	return dnsbl.Entry{Expires: l.Expires, FirstSeen: l.FirstSeen, Hits: l.Hits, Origins: l.Origins, Corroboration: s.corroboration(l)}
}

// answerFor is the A record DNS UPDATE and the rbldnsd export publish for
// l: graded by its corroboration with dns.graded, else dns.a.
func (s *Site) answerFor(l store.Listing) netip.Addr {
	if s.cfg.DNS.Graded {
		return dnsutil.GradedA(s.corroboration(l))
	}
	return s.cfg.DNS.A.Addr
}

// buildDNS loads every listing into the index and sets up the server,
// the updater and the exporter the configuration asks for.
func (s *Site) buildDNS() error {
	c := s.cfg.DNS
	p := &dnsParts{index: dnsbl.NewIndex(), changed: make(chan struct{}, 1)}
	if s.simulating() {
		s.log.Warn("policy.simulate is on: listings are computed and logged as \"would list\" but not published (DNS answers NXDOMAIN, no DNS UPDATE, no rbldnsd entries); set policy.simulate = false and restart to publish them")
	} else if err := s.db.ScanListings(func(l store.Listing) error {
		p.index.Set(l.IP, s.entryFor(l))
		return nil
	}); err != nil {
		return fmt.Errorf("loading the listings into the DNS index: %w", err)
	}
	a := c.A.Addr
	txt := dnsbl.ParseTXTTemplate(c.TXT)
	if len(c.Listen) > 0 && len(c.NS) == 0 && (len(c.AllowTransfer) > 0 || len(c.Notify) > 0 || c.TransferKeyName != "") {
		// Secondaries and delegations need NS names with addresses; the
		// default ns.<zone> has none (the embedded server answers only
		// the blocklist).
		s.log.Warn("dns.ns is not set: the zone's NS record is ns."+c.Zone+", which has no address; set dns.ns to the names of the servers that carry the zone",
			"zone", c.Zone)
	}
	if len(c.Listen) > 0 {
		srv, err := dnsbl.New(dnsbl.Config{
			Zone: c.Zone, A: a, Graded: c.Graded, TXT: c.TXT, TTL: c.TTL.Duration, NegativeTTL: c.NegativeTTL.Duration,
			NS: c.NS, Mbox: c.Mbox, AllowTransfer: c.AllowTransfer.Netip(), Notify: c.Notify.Strings(), Log: s.log.With("component", "dns"),
			TransferKey: transferKey(c), Queries: s.met.DNSQueries,
		}, p.index)
		if err != nil {
			return fmt.Errorf("dns: %w", err)
		}
		p.server = srv
	}
	if !c.Update.Server.IsZero() {
		zone := c.Update.Zone
		if zone == "" {
			zone = c.Zone
		}
		u, err := dnsupdate.New(dnsupdate.Config{
			Server: c.Update.Server.String(), Zone: zone, KeyName: c.Update.KeyName, Secret: c.Update.Secret,
			Algorithm: c.Update.Algorithm, A: a, TTL: c.TTL.Duration, Log: s.log.With("component", "dnsupdate"),
			Simulate: s.simulating(),
			// The store's listing at the time of the UPDATE: an event
			// that changed the corroboration rewrites the A record.
			Answer: func(ip netip.Addr, ev store.Event) netip.Addr {
				l, ok, _ := s.db.Lookup(ip)
				if !ok {
					l = store.Listing{IP: ip, Origins: []string{ev.Origin}}
				}
				return s.answerFor(l)
			},
			TXT: func(ip netip.Addr, ev store.Event) string {
				l, ok, _ := s.db.Lookup(ip)
				if !ok {
					return txtFor(txt, ip, []string{ev.Origin}, 1, ev.Expires, ev.Time)
				}
				return txtFor(txt, ip, l.Origins, l.Hits, l.Expires, l.FirstSeen)
			},
		})
		if err != nil {
			return fmt.Errorf("dns.update: %w", err)
		}
		p.updater = u
		// An ordinary batched action: the runner consumes its queue.
		s.actions = append(s.actions, u)
	}
	if c.RbldnsdIP4 != "" || c.RbldnsdIP6 != "" {
		p.exporter = rbldnsd.New(c.RbldnsdIP4, c.RbldnsdIP6, a, func(l rbldnsd.Listing) string {
			return txtFor(txt, l.IP, l.Origins, l.Hits, l.Expires, l.FirstSeen)
		})
	}
	s.dns = p
	return nil
}

// transferKey is the TSIG key of zone transfers, if configured.
func transferKey(c config.DNS) *dnsbl.TSIGKey {
	if c.TransferKeyName == "" {
		return nil
	}
	return &dnsbl.TSIGKey{Name: c.TransferKeyName, Secret: c.TransferKeySecret, Algorithm: c.TransferKeyAlgorithm}
}

// dnsRefresh brings ip's entry in the index to what the store holds now.
// The commit observer calls it after each commit, but in no set order:
// the reports of one group commit (pipelined TAKETHIS, concurrent POSTs)
// call back concurrently, and a sweep's or delisting's removal may call
// back after a newer report listed the address again. Applying the event
// itself could leave an older state in the index; reading the store under
// refreshMu means the last refresh applies the latest commit. seen is the
// event's listing, used only if the store cannot be read.
func (s *Site) dnsRefresh(ip netip.Addr, seen *store.Listing) {
	s.dns.refreshMu.Lock()
	defer s.dns.refreshMu.Unlock()
	l, listed, err := s.db.Lookup(ip)
	if err != nil {
		s.log.Warn("dns: cannot read the listing, using the event", "ip", ip, "err", err)
		l, listed = store.Listing{}, seen != nil
		if seen != nil {
			l = *seen
		}
	}
	if listed && !s.simulating() {
		s.dns.index.Set(ip, s.entryFor(l))
	} else {
		s.dns.index.Remove(ip)
	}
	s.dnsChanged()
}

func (s *Site) dnsChanged() {
	select {
	case s.dns.changed <- struct{}{}:
	default:
	}
}

// eachExport walks the store for the rbldnsd exporter: nothing in
// simulation, so the files hold the test points only.
func (s *Site) eachExport(fn func(rbldnsd.Listing) error) error {
	if s.simulating() {
		return nil
	}
	return s.db.ScanListings(func(l store.Listing) error {
		return fn(rbldnsd.Listing{IP: l.IP, Expires: l.Expires, FirstSeen: l.FirstSeen, Hits: l.Hits, Origins: l.Origins, A: s.answerFor(l)})
	})
}

// runDNS starts the DNS loops: NOTIFY, SIGUSR1's UPDATE resynchronisations
// and the rbldnsd export. The embedded server's sockets are Run's, with
// the listeners; the UPDATE queue is an action's, with the actions.
func (s *Site) runDNS(ctx context.Context, g *errgroup.Group) {
	p := s.dns
	if p.server != nil {
		g.Go(func() error { p.server.RunNotify(ctx); return nil })
	}
	if p.updater != nil {
		// SIGUSR1's resynchronisations, one at a time.
		g.Go(func() error {
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-s.resync:
					s.resyncDNS(ctx)
				}
			}
		})
	}
	if p.exporter != nil {
		// Run retries a failed rewrite by itself; each failure is
		// logged, for the administrator to fix the directory.
		p.exporter.ErrorLog = func(err error) {
			s.log.Error("rbldnsd export failed; rbldnsd serves the old files until it succeeds (check dns.rbldnsd_ip4/ip6: the directory must exist and be writable by dstd's user)", "err", err)
		}
		g.Go(func() error {
			if err := p.exporter.Run(ctx, p.changed, s.eachExport); err != nil && ctx.Err() == nil {
				s.log.Error("rbldnsd export stopped; the files are no longer updated", "err", err)
			}
			return nil
		})
		s.dnsChanged()
	}
}

func (s *Site) resyncSource(fn func(ip netip.Addr, ev store.Event) error) error {
	return s.db.ScanListings(func(l store.Listing) error {
		var origin string
		if len(l.Origins) > 0 {
			origin = l.Origins[len(l.Origins)-1]
		}
		return fn(l.IP, store.Event{Kind: store.EventReport, IP: l.IP, Listed: true, Expires: l.Expires, Origin: origin, Time: l.LastSeen})
	})
}

// RequestResync asks for the zone of the DNS UPDATE server to be compared
// with the listings and repaired (SIGUSR1), in the background.
func (s *Site) RequestResync() {
	if s.dns == nil || s.dns.updater == nil {
		s.log.Warn("SIGUSR1: no dns.update server configured, nothing to resynchronise")
		return
	}
	select {
	case s.resync <- struct{}{}:
	default: // one is pending already
	}
}

func (s *Site) resyncDNS(ctx context.Context) {
	s.log.Info("DNS UPDATE resynchronisation requested")
	if err := s.dns.updater.Resync(ctx, s.resyncSource); err != nil {
		s.log.Error("DNS UPDATE resynchronisation failed", "err", err)
		return
	}
	r := s.dns.updater.LastResync()
	s.log.Info("DNS UPDATE resynchronised", "wanted", r.Wanted, "present", r.Present, "added", r.Added, "fixed", r.Fixed, "removed", r.Removed)
}
