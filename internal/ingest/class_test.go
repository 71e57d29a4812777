package ingest

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/dst-traps/dst/internal/metrics"
	"github.com/dst-traps/dst/internal/policy"
	"github.com/dst-traps/dst/internal/report"
	"github.com/dst-traps/dst/internal/store"
)

// classed is a report of the given class ("" writes no DST-Class field, as
// an older dstc), injected here (peer false) or signed by site-b.test.
func (f *fixture) classed(t *testing.T, ip, class string, peer bool) (string, []byte) {
	t.Helper()
	a, err := report.New(report.Hit{SourceIP: netip.MustParseAddr(ip), Arrival: f.now, Host: "trap.test", UserAgent: "test",
		Message: []byte("Subject: Undelivered Mail Returned to Sender\r\n\r\nbounce\r\n"), Class: class})
	if err != nil {
		t.Fatal(err)
	}
	if !peer {
		return a.Get("Message-ID"), a.Bytes()
	}
	a.Set("From", "DST <dst@site-b.test>")
	signed, err := f.peer.Sign(a.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return a.Get("Message-ID"), append([]byte("Path: site-b.test!not-for-mail\r\n"), signed...)
}

func counter(t *testing.T, c *prometheus.CounterVec, label string) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.WithLabelValues(label).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// With the default policy.list_classes (spam), a bounce reported by this
// site's trap or by a peer is stored, counted and relayed to the other
// peers, which apply their own policy, but lists nothing here; its event
// carries the class (the report log shows it). Spam, and a report without
// a class, list as before.
func TestClassesNotListed(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.in.o.Metrics = metrics.New(prometheus.NewRegistry())
	f.subscribeFeed(t, "feed/site-c.test", "site-c.test")
	all := func(store.Event) bool { return true }
	if err := f.db.Subscribe("all", all); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, ip, class string
		peer, listed    bool
		label           string // metrics
	}{
		{"own spam", "203.0.113.1", "spam", false, true, "spam"},
		{"own report from an older dstc", "203.0.113.2", "", false, true, "spam"},
		{"own backscatter", "203.0.113.3", "backscatter", false, false, "backscatter"},
		{"own auto-reply", "203.0.113.4", "auto-reply", false, false, "auto-reply"},
		{"peer's spam", "203.0.113.5", "spam", true, true, "spam"},
		{"peer's backscatter", "203.0.113.6", "backscatter", true, false, "backscatter"},
		{"peer's class unknown here", "203.0.113.7", "phish", true, false, "other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := counter(t, f.in.o.Metrics.ReportsUnlisted, tc.label)
			id, raw := f.classed(t, tc.ip, tc.class, tc.peer)
			var v Verdict
			if tc.peer {
				v = f.in.Receive(ctx, id, raw, "site-b.test")
			} else {
				id, v = f.in.Inject(ctx, raw, "test")
			}
			if v.Kind != Accepted {
				t.Fatalf("verdict %+v, want accepted", v)
			}
			if _, listed, _ := f.db.Lookup(netip.MustParseAddr(tc.ip)); listed != tc.listed {
				t.Errorf("listed = %v, want %v", listed, tc.listed)
			}
			if seen, _ := f.db.Seen(id); !seen {
				t.Error("not in the history")
			}
			items, err := f.db.QueueNext("feed/site-c.test", f.now.Add(time.Hour), 100, nil)
			if err != nil || len(items) == 0 || items[len(items)-1].Event.MessageID != id {
				t.Fatalf("not queued for the peers: %+v %v", items, err)
			}
			wantClass := tc.class
			if wantClass == "spam" {
				wantClass = "" // spam is the zero class, as in older queues
			}
			if got := items[len(items)-1].Event.Class; got != wantClass {
				t.Errorf("queued event's class = %q, want %q", got, wantClass)
			}
			after := counter(t, f.in.o.Metrics.ReportsUnlisted, tc.label)
			if want := before + map[bool]float64{true: 0, false: 1}[tc.listed]; after != want {
				t.Errorf("dst_reports_unlisted_total{class=%q} = %v, want %v", tc.label, after, want)
			}
		})
	}
	if got := counter(t, f.in.o.Metrics.ReportsByClass, "spam"); got != 3 {
		t.Errorf("dst_reports_class_total{class=spam} = %v, want 3", got)
	}
	if got := counter(t, f.in.o.Metrics.ReportsByClass, "other"); got != 1 {
		t.Errorf("dst_reports_class_total{class=other} = %v, want 1", got)
	}
}

// policy.list_classes = ["spam", "backscatter"] lists both; auto-replies
// still do not list.
func TestListClassesPolicy(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.in.SetPolicy(policy.New(policy.Config{AllowDocumentation: true, ListClasses: []string{"spam", "backscatter"}}))
	for ip, c := range map[string]struct {
		class  string
		listed bool
	}{
		"203.0.113.1": {"spam", true},
		"203.0.113.2": {"backscatter", true},
		"203.0.113.3": {"auto-reply", false},
	} {
		_, raw := f.classed(t, ip, c.class, false)
		if _, v := f.in.Inject(ctx, raw, "test"); v.Kind != Accepted {
			t.Fatalf("%s: %+v", c.class, v)
		}
		if _, listed, _ := f.db.Lookup(netip.MustParseAddr(ip)); listed != c.listed {
			t.Errorf("%s: listed = %v, want %v", c.class, listed, c.listed)
		}
	}
}
