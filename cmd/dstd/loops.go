package main

import (
	"context"
	"os"
	"time"

	"github.com/dst-traps/dst/internal/ingest"
	"github.com/dst-traps/dst/internal/spool"
)

// sweep removes expired listings when they fall due (or at the configured
// interval at the latest) and prunes the history hourly.
func (d *daemon) sweep(ctx context.Context) {
	interval := d.cfg.Listing.SweepInterval.Duration
	lastPrune := time.Time{}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		now := time.Now()
		for {
			gone, err := d.db.Expire(now, 1000, d.removalQs)
			if err != nil {
				d.log.Error("cannot remove expired listings", "err", err)
				break
			}
			for _, l := range gone {
				d.dnsRemoved(l.IP)
				d.log.Info("listing expired", "ip", l.IP, "hits", l.Hits, "first_seen", l.FirstSeen.UTC().Format(time.RFC3339))
			}
			d.met.ListingsRemoved.WithLabelValues("expired").Add(float64(len(gone)))
			if len(gone) > 0 {
				d.kick()
			}
			if len(gone) < 1000 {
				break
			}
		}
		if now.Sub(lastPrune) >= time.Hour {
			n, err := d.db.PruneHistory(now.Add(-d.cfg.History.Keep.Duration), 100000)
			if err != nil {
				d.log.Error("cannot prune the history", "err", err)
			} else if n > 0 {
				d.log.Info("history pruned", "message_ids", n)
			}
			lastPrune = now
		}
		next := interval
		if at, ok, err := d.db.NextExpiry(); err == nil && ok {
			next = min(next, max(time.Until(at), 10*time.Millisecond))
		}
		timer.Reset(next)
	}
}

// spoolInterval is how often the spool directory is looked at; dstc spools
// only while dstd is down, so this is a safety net, not a hot path.
const spoolInterval = 2 * time.Second

// pickUpSpool injects the reports dstc spooled while dstd was down: at start,
// then every spoolInterval. A file is removed only once its report is
// stored, judged a duplicate or refused.
func (d *daemon) pickUpSpool(ctx context.Context) {
	dir := d.cfg.SpoolDir
	if n, err := spool.CleanTmp(dir, 24*time.Hour); err == nil && n > 0 {
		d.log.Warn("removed incomplete spool files left by a crash of dstc", "count", n, "dir", dir)
	}
	t := time.NewTicker(spoolInterval)
	defer t.Stop()
	for {
		entries, err := spool.List(dir)
		if err != nil {
			d.log.Error("cannot read the spool", "dir", dir, "err", err)
		}
		for _, e := range entries {
			if ctx.Err() != nil {
				return
			}
			data, err := os.ReadFile(e.Path)
			if err != nil {
				d.log.Error("cannot read a spooled report", "file", e.Path, "err", err)
				d.met.SpoolErrors.Inc()
				continue
			}
			id, v := d.in.Inject(ctx, data, "spool")
			if v.Kind == ingest.Later {
				d.log.Warn("spooled report kept for the next pass", "file", e.Path, "reason", v.Reason)
				d.met.SpoolErrors.Inc()
				continue
			}
			if err := spool.Remove(e); err != nil {
				d.log.Error("cannot remove a spooled report", "file", e.Path, "err", err)
			}
			d.met.SpoolPicked.Inc()
			d.log.Info("spooled report picked up", "file", e.Name, "message_id", id, "result", v.Reason)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
