package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/dst-traps/dst/internal/action"
	"github.com/dst-traps/dst/internal/admin"
	"github.com/dst-traps/dst/internal/dnsupdate"
	"github.com/dst-traps/dst/internal/ingest"
	"github.com/dst-traps/dst/internal/store"
)

// The daemon is the admin endpoint's Backend.
var _ admin.Backend = (*daemon)(nil)

// adminHandler is the admin API for listener l. The TCP listener also
// wants admin.token_file's token, or a loopback Host when there is none;
// the Unix socket's file mode already says who may connect.
func (d *daemon) adminHandler(l net.Listener, log *slog.Logger) http.Handler {
	h := admin.Handler(d, d.reg, log)
	if l.Addr().Network() == "tcp" {
		return admin.ForTCP(h, d.adminToken)
	}
	return h
}

func (d *daemon) Status(ctx context.Context) (admin.Status, error) {
	s, err := d.db.Stats()
	if err != nil {
		return admin.Status{}, err
	}
	qs, err := d.Queues(ctx)
	if err != nil {
		return admin.Status{}, err
	}
	adm := []string{d.cfg.Admin.Socket}
	if d.cfg.Admin.Listen != "" {
		adm = append(adm, d.cfg.Admin.Listen)
	}
	return admin.Status{
		Version: version, Site: d.cfg.Site, DataDir: d.cfg.DataDir, Listen: d.listenAddrs, Admin: adm,
		Started: d.started, UptimeSeconds: int64(time.Since(d.started).Seconds()),
		Listings: s.Listings, Pending: s.Pending, History: s.History, Articles: s.Articles, DBBytes: s.FileBytes,
		Queues: qs,
	}, nil
}

func (d *daemon) Lookup(_ context.Context, ip netip.Addr) (store.Listing, bool, error) {
	return d.db.Lookup(ip)
}

func (d *daemon) List(_ context.Context, fn func(store.Listing) error) error {
	return d.db.ForEachListing(fn)
}

// Delist removes a listing now; with allow, the address also goes into the
// allow file (and the running policy), so it is never listed again.
func (d *daemon) Delist(_ context.Context, ip netip.Addr, allow bool) (bool, error) {
	ip = ip.Unmap()
	if allow {
		if err := d.addToAllowFile(ip); err != nil {
			return false, err
		}
	}
	ok, err := d.db.Delist(ip, time.Now(), "dstctl", d.removalQs)
	if err != nil {
		return false, err
	}
	if ok {
		d.dnsRemoved(ip)
		d.met.ListingsRemoved.WithLabelValues("delisted").Inc()
		d.kick()
	}
	d.log.Info("delisted by the administrator", "ip", ip, "was_listed", ok, "allowed", allow)
	return ok, nil
}

// Cancel withdraws a report of this site across the network.
func (d *daemon) Cancel(ctx context.Context, messageID string) (admin.CancelResult, error) {
	r, err := d.in.InjectCancel(ctx, messageID)
	if errors.Is(err, ingest.ErrCannotCancel) {
		return admin.CancelResult{}, &admin.RequestError{Err: err}
	}
	if err != nil {
		return admin.CancelResult{}, err
	}
	return admin.CancelResult{MessageID: messageID, Cancel: r.MessageID, IP: r.IP,
		Delisted: r.Delisted, Listed: r.Listed, Origins: r.Origins}, nil
}

func (d *daemon) addToAllowFile(ip netip.Addr) error {
	d.allowMu.Lock()
	defer d.allowMu.Unlock()
	f, err := os.OpenFile(d.cfg.Policy.AllowFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("allow file: %w", err)
	}
	_, err = fmt.Fprintf(f, "%s # dstctl delist -allow, %s\n", ip, time.Now().UTC().Format(time.RFC3339))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("allow file: %w", err)
	}
	pol, err := d.buildPolicy(d.cfg)
	if err != nil {
		return err
	}
	d.in.SetPolicy(pol)
	return nil
}

func (d *daemon) Queues(_ context.Context) ([]admin.QueueStatus, error) {
	var out []admin.QueueStatus
	for i, a := range d.actions {
		n, err := d.db.QueueDepth(a.Name())
		if err != nil {
			return nil, err
		}
		s := d.stats[i].Snapshot()
		out = append(out, admin.QueueStatus{Name: a.Name(), Depth: n, Done: s.Done, Failures: s.Failures,
			LastError: s.LastError, LastErrorTime: s.LastErrorTime, LastSuccess: s.LastSuccess})
	}
	if d.dns != nil && d.dns.updater != nil {
		n, err := d.db.QueueDepth(dnsupdate.QueueName)
		if err != nil {
			return nil, err
		}
		s := d.dns.updater.Stats()
		out = append(out, admin.QueueStatus{Name: dnsupdate.QueueName, Depth: n, Done: s.Events, Failures: s.UpdateFailures,
			LastError: s.LastError, LastErrorTime: s.LastErrorTime, LastSuccess: s.LastSuccess})
	}
	return out, nil
}

var _ action.Queue = (*store.DB)(nil)

func (d *daemon) Keys(_ context.Context) ([]admin.KeyStatus, error) {
	var out []admin.KeyStatus
	for _, k := range d.in.Keyring().Keys() {
		out = append(out, admin.KeyStatus{Site: k.Domain, Selector: k.Selector,
			PublicKey: base64.StdEncoding.EncodeToString(k.Public),
			Own:       k.Domain == strings.ToLower(d.cfg.Site) && k.Selector == strings.ToLower(d.cfg.DKIM.Selector) && k.Public.Equal(d.own)})
	}
	return out, nil
}

func (d *daemon) Resync(ctx context.Context) (admin.ResyncResult, error) {
	if d.dns == nil || d.dns.updater == nil {
		return admin.ResyncResult{}, &admin.RequestError{Err: errors.New("no DNS UPDATE server is configured ([dns.update] server): nothing to resynchronise")}
	}
	d.log.Info("DNS UPDATE resynchronisation requested", "by", "dstctl")
	if err := d.dns.updater.Resync(ctx, d.resyncSource); err != nil {
		return admin.ResyncResult{}, fmt.Errorf("DNS UPDATE resynchronisation: %w", err)
	}
	r := d.dns.updater.LastResync()
	d.log.Info("DNS UPDATE resynchronised", "wanted", r.Wanted, "present", r.Present, "added", r.Added, "fixed", r.Fixed, "removed", r.Removed)
	return admin.ResyncResult{Wanted: r.Wanted, Present: r.Present, Added: r.Added, Fixed: r.Fixed, Removed: r.Removed}, nil
}
