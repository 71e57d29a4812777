package site

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/dst-traps/dst/internal/admin"
	"github.com/dst-traps/dst/internal/ingest"
	"github.com/dst-traps/dst/internal/statuspage"
	"github.com/dst-traps/dst/internal/store"
)

// The site serves the status page.
var _ admin.StatusPager = (*Site)(nil)

// statusListingLogKeep is how long the listing log is kept: the status
// page's longest plot, and a day more.
const statusListingLogKeep = statuspage.ListingsFortnight + 24*time.Hour

// maxRefusals is how many refusals the status page remembers. They live
// in memory only: the log has them all, the page shows what is recent.
const maxRefusals = 100

// refusalRing keeps the last maxRefusals refusals. Its zero value is
// ready.
type refusalRing struct {
	mu   sync.Mutex
	buf  []ingest.Refusal
	next int // where the next one goes, once buf is full
}

func (r *refusalRing) add(x ingest.Refusal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.buf) < maxRefusals {
		r.buf = append(r.buf, x)
		return
	}
	r.buf[r.next] = x
	r.next = (r.next + 1) % maxRefusals
}

// last returns the refusals, the most recent first.
func (r *refusalRing) last() []ingest.Refusal {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]ingest.Refusal, 0, len(r.buf))
	for i := range r.buf {
		out = append(out, r.buf[(r.next+len(r.buf)-1-i)%len(r.buf)])
	}
	return out
}

// Refusals are the last refused articles, the most recent first.
func (s *Site) Refusals(_ context.Context) ([]admin.Refusal, error) {
	var out []admin.Refusal
	for _, x := range s.refused.last() {
		out = append(out, admin.Refusal{Time: x.Time, From: x.From, MessageID: x.MessageID, Kind: x.Label, Reason: x.Reason})
	}
	return out, nil
}

// StatusPage gathers the status page's figures: the plots from the store,
// so that they hold across restarts, the rest from the running site.
func (s *Site) StatusPage(ctx context.Context) (statuspage.Data, error) {
	now := time.Now().UTC()
	st, err := s.db.Stats()
	if err != nil {
		return statuspage.Data{}, err
	}
	d := statuspage.Data{Site: s.cfg.Site, Version: s.version, Now: now, Started: s.started,
		Simulated: s.Simulating(), Listings: st.Listings, Pending: st.Pending}
	if d.ListingsDay, err = s.listingSeries(now, statuspage.ListingsDay, statuspage.ListingsDayStep); err != nil {
		return statuspage.Data{}, err
	}
	if d.ListingsFortnight, err = s.listingSeries(now, statuspage.ListingsFortnight, statuspage.ListingsFortnightStep); err != nil {
		return statuspage.Data{}, err
	}
	if err := s.reportFigures(now, &d); err != nil {
		return statuspage.Data{}, err
	}
	qs, err := s.Queues(ctx)
	if err != nil {
		return statuspage.Data{}, err
	}
	for _, q := range qs {
		d.Queues = append(d.Queues, statuspage.Queue{Name: q.Name, Depth: q.Depth, Done: q.Done, Failures: q.Failures,
			LastError: q.LastError, LastErrorTime: q.LastErrorTime})
	}
	ps, err := s.Peers(ctx)
	if err != nil {
		return statuspage.Data{}, err
	}
	for _, p := range ps {
		sp := statuspage.Peer{Name: p.Name, Addr: p.Addr, Outgoing: p.Outgoing, TLS: tlsText(p.TLS),
			Connected: p.Connected, Streaming: p.Streaming,
			Depth: p.Depth, Sent: p.Sent, Refused: p.Refused, Deferred: p.Deferred, Skipped: p.Skipped,
			LastSuccess: p.LastSuccess, LastError: p.LastError, LastErrorTime: p.LastErrorTime}
		if in := p.Incoming; in != nil {
			sp.Incoming, sp.InSessions, sp.InAccepted, sp.InRefused, sp.InLastSeen = true, len(in.Connections), in.Accepted, in.Refused, in.LastSeen
			if len(in.Connections) > 0 {
				sp.InTLS = tlsText(&in.Connections[0].TLS)
			} else {
				sp.InTLS = tlsText(in.LastTLS)
			}
		}
		d.Peers = append(d.Peers, sp)
	}
	for _, x := range s.refused.last() {
		d.Refusals = append(d.Refusals, statuspage.Refusal{Time: x.Time, From: x.From, MessageID: x.MessageID, Label: x.Label, Reason: x.Reason})
	}
	return d, nil
}

// listingSeries is the count of listings over the period before now, at
// every step: period/step+1 points, now the last.
func (s *Site) listingSeries(now time.Time, period, step time.Duration) (statuspage.Series, error) {
	n := int(period / step)
	at := make([]time.Time, n+1)
	for i := range at {
		at[i] = now.Add(-time.Duration(n-i) * step)
	}
	counts, err := s.db.ListingCounts(at)
	if err != nil {
		return nil, err
	}
	out := make(statuspage.Series, len(at))
	for i := range at {
		out[i] = statuspage.Point{T: at[i], V: float64(counts[i])}
	}
	return out, nil
}

// reportFigures fills the reports per origin per hour, and the latency
// percentiles per origin, from the reports of the last ReportHours hours.
func (s *Site) reportFigures(now time.Time, d *statuspage.Data) error {
	first := now.Truncate(time.Hour).Add(-(statuspage.ReportHours - 1) * time.Hour)
	for i := range statuspage.ReportHours {
		d.Hours = append(d.Hours, first.Add(time.Duration(i)*time.Hour))
	}
	counts := map[string][]int{}
	latency := map[string][]time.Duration{}
	err := s.db.ReportsSince(first, func(a store.ReportActivity) error {
		h := int(a.Arrived.Sub(first) / time.Hour)
		if h < 0 || h >= statuspage.ReportHours {
			return nil // a clock stepped back
		}
		c := counts[a.Origin]
		if c == nil {
			c = make([]int, statuspage.ReportHours)
			counts[a.Origin] = c
		}
		c[h]++
		if a.Listed && !a.Date.IsZero() {
			latency[a.Origin] = append(latency[a.Origin], a.Arrived.Sub(a.Date))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for o, c := range counts {
		d.ReportsPerOrigin = append(d.ReportsPerOrigin, statuspage.OriginSeries{Origin: o, Counts: c})
	}
	slices.SortFunc(d.ReportsPerOrigin, func(a, b statuspage.OriginSeries) int { return cmp.Compare(a.Origin, b.Origin) })
	for o, ds := range latency {
		p50, p90, p99 := statuspage.Percentiles(ds)
		d.Latency = append(d.Latency, statuspage.Latency{Origin: o, N: len(ds), P50: p50, P90: p90, P99: p99})
	}
	slices.SortFunc(d.Latency, func(a, b statuspage.Latency) int { return cmp.Compare(a.Origin, b.Origin) })
	return nil
}

// tlsText is a connection's protection in a word or two: "TLS 1.3",
// "plain", "loopback plain"; "" when unknown.
func tlsText(t *admin.TLSState) string {
	switch {
	case t == nil:
		return ""
	case t.State == "tls" && t.Version != "":
		return t.Version
	default:
		return t.State
	}
}
