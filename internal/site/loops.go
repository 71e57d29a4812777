package site

import (
	"context"
	"errors"
	"io/fs"
	"time"

	"github.com/dst-traps/dst/internal/ingest"
	"github.com/dst-traps/dst/internal/spool"
)

// pruneInterval is how often the history and the sightings are pruned.
const pruneInterval = time.Hour

// sweep removes expired listings when they fall due (or at the configured
// interval at the latest) and prunes the history and the sightings hourly.
func (s *Site) sweep(ctx context.Context) {
	interval := s.cfg.Listing.SweepInterval.Duration
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
		prune := now.Sub(lastPrune) >= pruneInterval
		s.sweepOnce(now, prune)
		if prune {
			lastPrune = now
		}
		next := interval
		if at, ok, err := s.db.NextExpiry(); err == nil && ok {
			next = min(next, max(time.Until(at), 10*time.Millisecond))
		}
		timer.Reset(next)
	}
}

// sweepOnce removes the listings expired at now and, with prune, forgets
// the Message-IDs older than history.keep and the sightings of addresses
// not reported again within policy.window: with policy.threshold above 1,
// an address reported once would otherwise be remembered for ever.
func (s *Site) sweepOnce(now time.Time, prune bool) {
	for {
		// The commit observer (committed) takes each removal to the DNS
		// index, the metrics and the log.
		gone, err := s.db.Expire(now, 1000)
		if err != nil {
			s.log.Error("cannot remove expired listings", "err", err)
			break
		}
		if len(gone) < 1000 {
			break
		}
	}
	if !prune {
		return
	}
	n, err := s.db.PruneHistory(now.Add(-s.cfg.History.Keep.Duration), 100000)
	if err != nil {
		s.log.Error("cannot prune the history", "err", err)
	} else if n > 0 {
		s.log.Info("history pruned", "message_ids", n)
	}
	// The status page plots the listings of the last 14 days; the log
	// behind that plot keeps a day more.
	for {
		n, err := s.db.PruneListingLog(now.Add(-statusListingLogKeep), 10000)
		if err != nil {
			s.log.Error("cannot prune the listing log", "err", err)
			break
		}
		if n < 10000 {
			break
		}
	}
	for {
		n, err := s.db.PruneSightings(now.Add(-s.cfg.Policy.Window.Duration), 10000)
		if err != nil {
			s.log.Error("cannot prune the sightings of unlisted addresses", "err", err)
			break
		}
		if n > 0 {
			s.log.Info("sightings pruned", "addresses", n)
		}
		if n < 10000 {
			break
		}
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
func (s *Site) pickUpSpool(ctx context.Context) {
	dir := s.cfg.SpoolDir
	if n, err := spool.CleanTmp(dir, 24*time.Hour); err == nil && n > 0 {
		s.log.Warn("removed incomplete spool files left by a crash of dstc", "count", n, "dir", dir)
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
				s.log.Error("cannot read the spool", "dir", dir, "err", err)
				break
			}
			for _, e := range entries {
				if ctx.Err() != nil {
					return
				}
				s.pickUp(ctx, e)
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
func (s *Site) pickUp(ctx context.Context, e spool.Entry) {
	limit := s.cfg.NNTP.MaxArticleBytes
	data, err := spool.Read(e, limit)
	var tooLarge *spool.TooLargeError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return // taken by another reader, or by the administrator
	case errors.As(err, &tooLarge):
		s.quarantine(e, "spooled report larger than nntp.max_article_bytes; moved to the spool's bad/ directory, not read",
			"size", tooLarge.Size, "limit", tooLarge.Max,
			"action", "raise nntp.max_article_bytes and move the file back into new/, or delete it")
		return
	case errors.Is(err, spool.ErrNotRegular):
		s.quarantine(e, "spool entry is not a regular file; moved to the spool's bad/ directory, not read",
			"reason", err.Error(),
			"action", "only dstc writes into new/: find out who put it there, then delete it")
		return
	case err != nil:
		s.log.Error("cannot read a spooled report; left in the spool", "file", e.Path, "err", err,
			"action", "check the file's owner and mode: dstd's user must be able to read it")
		s.met.SpoolErrors.Inc()
		return
	}
	id, v := s.in.Inject(ctx, data, "spool")
	switch {
	case v.Kind == ingest.Later:
		s.log.Warn("spooled report kept for the next pass", "file", e.Path, "reason", v.Reason)
		s.met.SpoolErrors.Inc()
		return
	case v.Kind == ingest.Refused && (v.Refusal == "malformed" || v.Refusal == "too-large"):
		// Not a report dstd can read. Until today such a file was
		// deleted; but it is what dstc (or someone) meant to report,
		// and only the administrator can tell which: keep it.
		s.quarantine(e, "spooled report refused: not a report dstd can read; moved to the spool's bad/ directory",
			"reason", v.Reason,
			"action", "inspect it; delete it, or fix it and move it back into new/")
		return
	}
	if err := spool.Remove(e); err != nil {
		s.log.Error("cannot remove a spooled report", "file", e.Path, "err", err)
	}
	s.met.SpoolPicked.Inc()
	s.log.Info("spooled report picked up", "file", e.Name, "message_id", id, "result", v.Reason)
}

// quarantine moves e to the spool's bad/ directory and logs msg with args
// at warning level, or logs why it could not and leaves e where it is, to
// be tried again at the next pass (and logged again: bad/ needs the
// administrator, see the error).
func (s *Site) quarantine(e spool.Entry, msg string, args ...any) {
	bad, err := spool.Quarantine(e)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		s.log.Error("cannot move a refused spool file to the spool's bad/ directory; left in new/", "file", e.Path, "refused", msg, "err", err)
		s.met.SpoolErrors.Inc()
		return
	}
	s.met.SpoolQuarantined.Inc()
	s.log.Warn(msg, append([]any{"file", e.Path, "moved_to", bad}, args...)...)
}
