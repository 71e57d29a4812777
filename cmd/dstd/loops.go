package main

import (
	"context"
	"errors"
	"io/fs"
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

// spoolBatch is how many spool entries are listed at a time: a spool of a
// million files costs a batch's worth of names in memory, not a million.
const spoolBatch = 1000

// pickUpSpool injects the reports dstc spooled while dstd was down: at start,
// then every spoolInterval. A file is removed only once its report is
// stored, judged a duplicate or refused on its merits (policy, a cancel); a
// file that cannot be a report (over nntp.max_article_bytes, malformed, not
// a regular file) is moved to the spool's bad/ directory for the
// administrator. One file is read at a time, and never more than the
// article size limit of it, so the spool raises dstd's memory by one
// report's size at most, as a connection does.
func (d *daemon) pickUpSpool(ctx context.Context) {
	dir := d.cfg.SpoolDir
	if n, err := spool.CleanTmp(dir, 24*time.Hour); err == nil && n > 0 {
		d.log.Warn("removed incomplete spool files left by a crash of dstc", "count", n, "dir", dir)
	}
	t := time.NewTicker(spoolInterval)
	defer t.Stop()
	for {
		// One pass walks the spool in batches, oldest first; a file left
		// in new/ (kept for later, unreadable) does not stop the pass.
		var after spool.Entry
		for {
			entries, err := spool.Oldest(dir, after, spoolBatch)
			if err != nil {
				d.log.Error("cannot read the spool", "dir", dir, "err", err)
				break
			}
			for _, e := range entries {
				if ctx.Err() != nil {
					return
				}
				d.pickUp(ctx, e)
				after = e
			}
			if len(entries) < spoolBatch {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pickUp injects one spooled report and removes its file, or moves the
// file to quarantine, or leaves it for the next pass.
func (d *daemon) pickUp(ctx context.Context, e spool.Entry) {
	limit := d.cfg.NNTP.MaxArticleBytes
	data, err := spool.Read(e, limit)
	var tooLarge *spool.TooLargeError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return // taken by another reader, or by the administrator
	case errors.As(err, &tooLarge):
		d.quarantine(e, "spooled report larger than nntp.max_article_bytes; moved to the spool's bad/ directory, not read",
			"size", tooLarge.Size, "limit", tooLarge.Max,
			"action", "raise nntp.max_article_bytes and move the file back into new/, or delete it")
		return
	case errors.Is(err, spool.ErrNotRegular):
		d.quarantine(e, "spool entry is not a regular file; moved to the spool's bad/ directory, not read",
			"reason", err.Error(),
			"action", "only dstc writes into new/: find out who put it there, then delete it")
		return
	case err != nil:
		d.log.Error("cannot read a spooled report; left in the spool", "file", e.Path, "err", err,
			"action", "check the file's owner and mode: dstd's user must be able to read it")
		d.met.SpoolErrors.Inc()
		return
	}
	id, v := d.in.Inject(ctx, data, "spool")
	switch {
	case v.Kind == ingest.Later:
		d.log.Warn("spooled report kept for the next pass", "file", e.Path, "reason", v.Reason)
		d.met.SpoolErrors.Inc()
		return
	case v.Kind == ingest.Refused && (v.Refusal == "malformed" || v.Refusal == "too-large"):
		// Not a report dstd can read. Until today such a file was
		// deleted; but it is what dstc (or someone) meant to report,
		// and only the administrator can tell which: keep it.
		d.quarantine(e, "spooled report refused: not a report dstd can read; moved to the spool's bad/ directory",
			"reason", v.Reason,
			"action", "inspect it; delete it, or fix it and move it back into new/")
		return
	}
	if err := spool.Remove(e); err != nil {
		d.log.Error("cannot remove a spooled report", "file", e.Path, "err", err)
	}
	d.met.SpoolPicked.Inc()
	d.log.Info("spooled report picked up", "file", e.Name, "message_id", id, "result", v.Reason)
}

// quarantine moves e to the spool's bad/ directory and logs msg with args
// at warning level, or logs why it could not and leaves e where it is, to
// be tried again at the next pass (and logged again: bad/ needs the
// administrator, see the error).
func (d *daemon) quarantine(e spool.Entry, msg string, args ...any) {
	bad, err := spool.Quarantine(e)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		d.log.Error("cannot move a refused spool file to the spool's bad/ directory; left in new/", "file", e.Path, "refused", msg, "err", err)
		d.met.SpoolErrors.Inc()
		return
	}
	d.met.SpoolQuarantined.Inc()
	d.log.Warn(msg, append([]any{"file", e.Path, "moved_to", bad}, args...)...)
}
