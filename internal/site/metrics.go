package site

import (
	"slices"
	"strings"
	"time"

	"github.com/dst-traps/dst/internal/classify"
	"github.com/dst-traps/dst/internal/metrics"
	"github.com/dst-traps/dst/internal/nntp"
	"github.com/dst-traps/dst/internal/store"
)

// initMetrics creates every labelled series the site knows of, at zero,
// so that the first scrape has them all (metrics.Known). Reload calls it
// again: a keyring that gained an origin gains its series.
func (s *Site) initMetrics() {
	k := metrics.Known{
		Peers:         s.feedPeers,
		NNTPListeners: []string{"all"},
		// refusedLabel's values: "address" is Authorize's.
		NNTPRefusals:   []string{"address", "tls-not-peer", refusedPinMismatch, nntp.RefusedHandshake, nntp.RefusedDraining},
		Origins:        s.knownOrigins(),
		DNSQueryLabels: s.dns != nil && s.dns.server != nil,
	}
	for _, a := range s.actions {
		k.Actions = append(k.Actions, a.Name())
	}
	// The peers' pool has no total limit (nntp.Pools), so no peer-limit.
	k.NNTPRefusals = append(k.NNTPRefusals, "local-limit", "local-client-limit", "peer-client-limit", "other-limit", "other-client-limit")
	for _, c := range classify.Known {
		k.Classes = append(k.Classes, string(c))
	}
	k.Classes = append(k.Classes, "other")
	s.met.Init(k)
}

// knownOrigins are the origins that have a label of their own in the
// per-origin metrics: this site and the keyring file's domains. Anyone
// who can publish a key in DNS (dkim.dns_key_domains) could make up
// others, so those are counted together as metrics.OtherOrigin.
func (s *Site) knownOrigins() []string {
	origins := []string{strings.ToLower(s.cfg.Site)}
	if snap := s.snap.Load(); snap != nil && snap.kr != nil {
		for _, k := range snap.kr.Keys() {
			if !slices.Contains(origins, k.Domain) {
				origins = append(origins, k.Domain)
			}
		}
	}
	return origins
}

// originLabel is origin's label in the per-origin metrics.
func (s *Site) originLabel(origin string) string {
	o := strings.ToLower(origin)
	if o == strings.ToLower(s.cfg.Site) {
		return o
	}
	if snap := s.snap.Load(); snap != nil && snap.kr != nil && snap.kr.InFile(o) {
		return o
	}
	return metrics.OtherOrigin
}

// observeListed records the trap-to-listed latency of a report that made
// an address listed: from the report's Date (when the trap was hit, by
// its origin's clock) to now, when the listing is committed and in the
// DNS index. A Date ahead of this clock counts 0 s, and is counted apart:
// a rising dst_trap_to_listed_future_dates_total names an origin whose
// clock is fast.
func (s *Site) observeListed(ch store.Change, now time.Time) {
	if ch.Kind != store.ChangeListed || ch.Date.IsZero() {
		return
	}
	o := s.originLabel(ch.Origin)
	d := now.Sub(ch.Date)
	if d < 0 {
		s.met.TrapToListedFuture.WithLabelValues(o).Inc()
		d = 0
	}
	s.met.TrapToListed.WithLabelValues(o).Observe(d.Seconds())
}
