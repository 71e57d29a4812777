package site

import (
	"time"

	"github.com/dst-traps/dst/internal/action"
	"github.com/dst-traps/dst/internal/feed"
	"github.com/dst-traps/dst/internal/store"
)

// subscribe gives every consumer its queue in the store: each action
// (the report log, the program, DNS UPDATE) with its Wants, each outgoing
// feed with feed.Wants, and registers the one commit observer. From then
// on the store routes every event itself, in the transaction that makes
// it, so adding an action or an export is one package and one line in
// New, with no list of queue names to keep.
func (s *Site) subscribe() error {
	s.kickOf = make(map[string]chan struct{})
	for _, a := range s.actions {
		if err := s.db.Subscribe(a.Name(), a.Wants); err != nil {
			return err
		}
		k := make(chan struct{}, 1)
		s.kicks = append(s.kicks, k)
		s.kickOf[a.Name()] = k
		s.stats = append(s.stats, new(action.Stats))
	}
	for i, peer := range s.feedPeers {
		if err := s.db.Subscribe(feed.QueueName(peer), feed.Wants(peer)); err != nil {
			return err
		}
		s.kickOf[feed.QueueName(peer)] = s.feedKicks[i]
	}
	s.db.OnCommit(s.committed)
	return nil
}

// committed is the store's one commit observer: whatever wrote the
// change (a report, a cancel, dstctl delist, the expiry sweep), a listing
// added, changed or removed reaches the DNS index and the metrics the
// same way, and the consumers of the queues it wrote to wake up.
func (s *Site) committed(c store.Commit) {
	for _, ch := range c.Listings {
		l := ch.Listing
		if !ch.Kind.Removed() {
			if s.simulating() && ch.Kind != store.ChangeUpdated {
				s.log.Info("would list (policy.simulate: not published)", "ip", l.IP, "change", ch.Kind.String(),
					"origins", l.Origins, "corroboration", s.corroboration(l), "hits", l.Hits,
					"expires", l.Expires.UTC().Format(time.RFC3339))
			}
			s.dnsRefresh(l.IP, &l)
			if !s.simulating() {
				s.observeListed(ch, time.Now())
			}
			continue
		}
		s.dnsRefresh(l.IP, nil)
		s.met.ListingsRemoved.WithLabelValues(ch.Kind.String()).Inc()
		if ch.Kind == store.ChangeExpired {
			s.log.Info("listing expired", "ip", l.IP, "hits", l.Hits, "first_seen", l.FirstSeen.UTC().Format(time.RFC3339))
		}
	}
	for q := range c.Queued {
		if k := s.kickOf[q]; k != nil {
			select {
			case k <- struct{}{}:
			default: // a wake-up is pending already
			}
		}
	}
}
