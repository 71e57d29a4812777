package main

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/dst-traps/dst/internal/config"
	"github.com/dst-traps/dst/internal/dnsbl"
	"github.com/dst-traps/dst/internal/dnsupdate"
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
	updater   *dnsupdate.Updater
	updKick   chan struct{}
	exporter  *rbldnsd.Exporter
	changed   chan struct{}
}

// txtFor fills the TXT template for a listing.
func txtFor(tmpl dnsbl.TXTTemplate, ip netip.Addr, origins []string, hits int, expires, first time.Time) string {
	return tmpl.Render(ip, dnsbl.Entry{Expires: expires, FirstSeen: first, Hits: hits, Origins: origins})
}

// buildDNS loads every listing into the index and sets up the server,
// the updater and the exporter the configuration asks for.
func (d *daemon) buildDNS() error {
	c := d.cfg.DNS
	p := &dnsParts{index: dnsbl.NewIndex(), changed: make(chan struct{}, 1)}
	if err := d.db.ForEachListing(func(l store.Listing) error {
		p.index.Set(l.IP, dnsbl.Entry{Expires: l.Expires, FirstSeen: l.FirstSeen, Hits: l.Hits, Origins: l.Origins})
		return nil
	}); err != nil {
		return fmt.Errorf("loading the listings into the DNS index: %w", err)
	}
	a, _ := netip.ParseAddr(c.A)
	txt := dnsbl.ParseTXTTemplate(c.TXT)
	allow, _ := config.ParsePrefixes(c.AllowTransfer)
	if len(c.Listen) > 0 && len(c.NS) == 0 && (len(c.AllowTransfer) > 0 || len(c.Notify) > 0 || c.TransferKeyName != "") {
		// Secondaries and delegations need NS names with addresses; the
		// default ns.<zone> has none (the embedded server answers only
		// the blocklist).
		d.log.Warn("dns.ns is not set: the zone's NS record is ns."+c.Zone+", which has no address; set dns.ns to the names of the servers that carry the zone",
			"zone", c.Zone)
	}
	if len(c.Listen) > 0 {
		srv, err := dnsbl.New(dnsbl.Config{
			Zone: c.Zone, A: a, TXT: c.TXT, TTL: c.TTL.Duration, NegativeTTL: c.NegativeTTL.Duration,
			NS: c.NS, Mbox: c.Mbox, AllowTransfer: allow, Notify: c.Notify, Log: d.log.With("component", "dns"),
			TransferKey: transferKey(c),
		}, p.index)
		if err != nil {
			return fmt.Errorf("dns: %w", err)
		}
		p.server = srv
	}
	if c.Update.Server != "" {
		zone := c.Update.Zone
		if zone == "" {
			zone = c.Zone
		}
		u, err := dnsupdate.New(dnsupdate.Config{
			Server: c.Update.Server, Zone: zone, KeyName: c.Update.KeyName, Secret: c.Update.Secret,
			Algorithm: c.Update.Algorithm, A: a, TTL: c.TTL.Duration, Log: d.log.With("component", "dnsupdate"), Metrics: d.met,
			TXT: func(ip netip.Addr, ev store.Event) string {
				l, ok, _ := d.db.Lookup(ip)
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
		p.updKick = make(chan struct{}, 1)
		d.feedKicks = append(d.feedKicks, p.updKick)
	}
	if c.RbldnsdIP4 != "" || c.RbldnsdIP6 != "" {
		p.exporter = rbldnsd.New(c.RbldnsdIP4, c.RbldnsdIP6, a, func(l rbldnsd.Listing) string {
			return txtFor(txt, l.IP, l.Origins, l.Hits, l.Expires, l.FirstSeen)
		})
	}
	d.dns = p
	return nil
}

// transferKey is the TSIG key of zone transfers, if configured.
func transferKey(c config.DNS) *dnsbl.TSIGKey {
	if c.TransferKeyName == "" {
		return nil
	}
	return &dnsbl.TSIGKey{Name: c.TransferKeyName, Secret: c.TransferKeySecret, Algorithm: c.TransferKeyAlgorithm}
}

// dnsQueues are the durable queues of the DNS side (UPDATE pusher).
func (d *daemon) dnsQueues() []string {
	if d.dns != nil && d.dns.updater != nil {
		return []string{dnsupdate.QueueName}
	}
	return nil
}

func (d *daemon) dnsListed(l store.Listing) { d.dnsRefresh(l.IP, &l) }

func (d *daemon) dnsRemoved(ip netip.Addr) { d.dnsRefresh(ip, nil) }

// dnsRefresh brings ip's entry in the index to what the store holds now.
// The callbacks that call it run after their commits but in no set order:
// the reports of one group commit (pipelined TAKETHIS, concurrent POSTs)
// call back concurrently, and a sweep's or delisting's removal may call
// back after a newer report listed the address again. Applying the event
// itself could leave an older state in the index; reading the store under
// refreshMu means the last refresh applies the latest commit. seen is the
// event's listing, used only if the store cannot be read.
func (d *daemon) dnsRefresh(ip netip.Addr, seen *store.Listing) {
	d.dns.refreshMu.Lock()
	defer d.dns.refreshMu.Unlock()
	l, listed, err := d.db.Lookup(ip)
	if err != nil {
		d.log.Warn("dns: cannot read the listing, using the event", "ip", ip, "err", err)
		l, listed = store.Listing{}, seen != nil
		if seen != nil {
			l = *seen
		}
	}
	if listed {
		d.dns.index.Set(ip, dnsbl.Entry{Expires: l.Expires, FirstSeen: l.FirstSeen, Hits: l.Hits, Origins: l.Origins})
	} else {
		d.dns.index.Remove(ip)
	}
	d.dnsChanged()
}

func (d *daemon) dnsChanged() {
	select {
	case d.dns.changed <- struct{}{}:
	default:
	}
}

// eachListing walks the store for the exporter and the resync.
func (d *daemon) eachExport(fn func(rbldnsd.Listing) error) error {
	return d.db.ForEachListing(func(l store.Listing) error {
		return fn(rbldnsd.Listing{IP: l.IP, Expires: l.Expires, FirstSeen: l.FirstSeen, Hits: l.Hits, Origins: l.Origins})
	})
}

// runDNS starts the DNS goroutines; listen errors are returned at once.
func (d *daemon) runDNS(ctx context.Context, goRun func(func())) error {
	p := d.dns
	if p.server != nil {
		errc := make(chan error, 1)
		goRun(func() { errc <- p.server.ListenAndServe(ctx, d.cfg.DNS.Listen) })
		select {
		case err := <-errc:
			if err != nil {
				return fmt.Errorf("DNS listener: %w", err)
			}
		case <-time.After(200 * time.Millisecond):
		}
		goRun(func() { p.server.RunNotify(ctx) })
	}
	if p.updater != nil {
		goRun(func() {
			if err := p.updater.Resync(ctx, d.resyncSource); err != nil {
				d.log.Error("DNS UPDATE resynchronisation failed; the queue goes on", "err", err)
			}
			if err := p.updater.Run(ctx, d.db, p.updKick); err != nil {
				d.log.Error("DNS UPDATE stopped", "err", err)
			}
		})
	}
	if p.exporter != nil {
		goRun(func() { p.exporter.Run(ctx, p.changed, d.eachExport) })
		d.dnsChanged()
	}
	return nil
}

func (d *daemon) resyncSource(fn func(ip netip.Addr, ev store.Event) error) error {
	return d.db.ForEachListing(func(l store.Listing) error {
		var origin string
		if len(l.Origins) > 0 {
			origin = l.Origins[len(l.Origins)-1]
		}
		return fn(l.IP, store.Event{Kind: store.EventReport, IP: l.IP, Listed: true, Expires: l.Expires, Origin: origin, Time: l.LastSeen})
	})
}

// resyncDNS compares the zone of the DNS UPDATE server with the listings
// and repairs it (SIGUSR1), in the background.
func (d *daemon) resyncDNS(ctx context.Context, goRun func(func())) {
	if d.dns == nil || d.dns.updater == nil {
		d.log.Warn("SIGUSR1: no dns.update server configured, nothing to resynchronise")
		return
	}
	goRun(func() {
		d.log.Info("DNS UPDATE resynchronisation requested")
		if err := d.dns.updater.Resync(ctx, d.resyncSource); err != nil {
			d.log.Error("DNS UPDATE resynchronisation failed", "err", err)
			return
		}
		r := d.dns.updater.LastResync()
		d.log.Info("DNS UPDATE resynchronised", "wanted", r.Wanted, "present", r.Present, "added", r.Added, "fixed", r.Fixed, "removed", r.Removed)
	})
}
