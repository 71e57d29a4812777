package site

import (
	"context"
	"crypto/ed25519"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/dst-traps/dst/internal/config"
	"github.com/dst-traps/dst/internal/dkim"
	"github.com/dst-traps/dst/internal/metrics"
	"github.com/dst-traps/dst/internal/nntp"
	"github.com/dst-traps/dst/internal/report"
	"github.com/dst-traps/dst/internal/store"
)

// withPeer is a site a.test with a keyring that has peer.test, which it
// also feeds.
func withPeer(t *testing.T) *config.Config {
	t.Helper()
	return testConfig(t, "a.test", func(c *config.Config) {
		documentation(c)
		c.Peers = []config.Peer{{Name: "peer.test", Feed: config.MustParseHostPort("127.0.0.1:9")}}
		pub, _, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(c.DKIM.Keyring), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(c.DKIM.Keyring, []byte(dkim.KeyringLine("peer.test", "dst", pub)+"\n"), 0o640); err != nil {
			t.Fatal(err)
		}
	})
}

// series gathers s's registry: every series, as name{label="value",...}.
func series(t *testing.T, s *Site) map[string]*dto.Metric {
	t.Helper()
	fams, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]*dto.Metric)
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			out[f.GetName()+"{"+strings.Join(ls, ",")+"}"] = m
		}
	}
	return out
}

// Right after New, before any event, every labelled metric has its
// series at zero: Prometheus's rate() and absent() alerts work from the
// first scrape.
func TestMetricsInitialised(t *testing.T) {
	s, err := New(withPeer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// Every vector of metrics.Metrics, found by reflection so that a new
	// one cannot be forgotten here.
	v := reflect.ValueOf(s.met).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Interface().(type) {
		case *prometheus.CounterVec, *prometheus.GaugeVec, *prometheus.HistogramVec:
		default:
			continue
		}
		ch := make(chan prometheus.Metric, 1000)
		f.Interface().(prometheus.Collector).Collect(ch)
		if len(ch) == 0 {
			t.Errorf("metrics.Metrics.%s has no series after site.New: give its known label values to metrics.Init", v.Type().Field(i).Name)
		}
	}

	got := series(t, s)
	want := []string{
		"dst_reports_refused_total{reason=signature}",
		"dst_reports_refused_total{reason=duplicate}",
		"dst_store_listings_removed_total{reason=expired}",
		"dst_reports_not_listed_total{reason=rate-cap}",
		"dst_actions_failures_total{queue=log}",
		"dst_actions_queue_depth{queue=log}",
		"dst_feed_errors_total{peer=peer.test}",
		"dst_feed_connected{peer=peer.test}",
		"dst_feed_queue_depth{peer=peer.test}",
		"dst_nntp_refused_connections_total{reason=other-client-limit}",
		"dst_nntp_refused_connections_total{reason=" + nntp.RefusedHandshake + "}",
		"dst_nntp_connections{listener=all}",
		"dst_reports_class_total{class=backscatter}",
		"dst_reports_class_total{class=other}",
		"dst_trap_to_listed_seconds{origin=a.test}",
		"dst_trap_to_listed_seconds{origin=peer.test}",
		"dst_trap_to_listed_seconds{origin=other}",
		"dst_trap_to_listed_future_dates_total{origin=peer.test}",
		"dst_dns_queries_total{proto=udp,qtype=A,rcode=NXDOMAIN}",
		"dst_dns_queries_total{proto=tcp,qtype=other,rcode=SERVFAIL}",
	}
	for _, w := range want {
		if got[w] == nil {
			t.Errorf("no series %s after site.New", w)
		}
	}
	n := 0
	for k := range got {
		if strings.HasPrefix(k, "dst_dns_queries_total{") {
			n++
		}
	}
	if want := len(metrics.DNSQtypes) * len(metrics.DNSRcodes) * len(metrics.DNSProtos); n != want {
		t.Errorf("%d series of dst_dns_queries_total, want %d", n, want)
	}
	if t.Failed() {
		for k := range got {
			t.Log(k)
		}
	}
}

func histogram(t *testing.T, s *Site, origin string) *dto.Histogram {
	t.Helper()
	m := series(t, s)["dst_trap_to_listed_seconds{origin="+origin+"}"]
	if m == nil {
		t.Fatalf("no dst_trap_to_listed_seconds{origin=%q}", origin)
	}
	return m.GetHistogram()
}

// A report that lists an address is observed in the trap-to-listed
// histogram of its origin, once; one that only extends the listing is not.
func TestTrapToListed(t *testing.T) {
	r := start(t, testConfig(t, "a.test", documentation))
	hit := time.Now().Add(-90 * time.Second)
	postHit(t, r.Site, "192.0.2.7", hit)
	h := histogram(t, r.Site, "a.test")
	if h.GetSampleCount() != 1 {
		t.Fatalf("%d observations after one listing, want 1", h.GetSampleCount())
	}
	// The Date has whole seconds: the latency is 90 s to 91 s and then
	// some, well under the 120 s bucket.
	if sum := h.GetSampleSum(); sum < 89 || sum > 119 {
		t.Errorf("latency %v s, want about 90 s (the report's Date was 90 s ago)", sum)
	}
	postHit(t, r.Site, "192.0.2.7", time.Now())
	if n := histogram(t, r.Site, "a.test").GetSampleCount(); n != 1 {
		t.Errorf("%d observations after a listing and an extension, want 1", n)
	}
	if n := histogram(t, r.Site, metrics.OtherOrigin).GetSampleCount(); n != 0 {
		t.Errorf("%d observations for other origins, want 0", n)
	}

	// A Date ahead of the clock (within history.max_future) counts 0 s,
	// and as a future date.
	sum := h.GetSampleSum()
	postHit(t, r.Site, "192.0.2.8", time.Now().Add(10*time.Minute))
	h = histogram(t, r.Site, "a.test")
	if h.GetSampleCount() != 2 || h.GetSampleSum() != sum || h.GetBucket()[0].GetCumulativeCount() != 1 {
		t.Errorf("a report dated in the future: %d observations summing %v s, %d of them under %v s; want 2 summing %v s, the second 0 s",
			h.GetSampleCount(), h.GetSampleSum(), h.GetBucket()[0].GetCumulativeCount(), h.GetBucket()[0].GetUpperBound(), sum)
	}
	if v := series(t, r.Site)["dst_trap_to_listed_future_dates_total{origin=a.test}"].GetCounter().GetValue(); v != 1 {
		t.Errorf("dst_trap_to_listed_future_dates_total{origin=a.test} = %v, want 1", v)
	}
}

// An origin outside the keyring file (a key from DNS: anyone may publish
// one) is labelled "other", so that made-up names cannot grow the series.
func TestTrapToListedOrigins(t *testing.T) {
	s, err := New(withPeer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	for _, o := range []string{"PEER.test", "a.test", "made-up.example", "x.invalid"} {
		s.observeListed(store.Change{Kind: store.ChangeListed, Origin: o, Date: now.Add(-time.Minute)}, now)
	}
	s.observeListed(store.Change{Kind: store.ChangeExtended, Origin: "a.test", Date: now.Add(-time.Minute)}, now)
	for o, n := range map[string]uint64{"peer.test": 1, "a.test": 1, metrics.OtherOrigin: 2} {
		h := histogram(t, s, o)
		if h.GetSampleCount() != n || math.Abs(h.GetSampleSum()-60*float64(n)) > 1e-9 {
			t.Errorf("origin %s: %d observations summing %v s, want %d of 60 s", o, h.GetSampleCount(), h.GetSampleSum(), n)
		}
	}
	for k := range series(t, s) {
		if strings.Contains(k, "made-up") || strings.Contains(k, "invalid") {
			t.Errorf("series %s names an origin outside the keyring", k)
		}
	}
}

// postHit posts a report of ip whose trap was hit at arrival.
func postHit(t *testing.T, s *Site, ip string, arrival time.Time) {
	t.Helper()
	a, err := report.New(report.Hit{SourceIP: netip.MustParseAddr(ip), Arrival: arrival, Host: "trap.test",
		UserAgent: "site_test", Message: []byte("From: spammer@example.com\r\nSubject: offer\r\n\r\nbuy\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := nntp.Dial(ctx, "unix:"+s.Addrs().Socket, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Post(ctx, a.Bytes()); err != nil {
		t.Fatalf("POST of a report of %s: %v", ip, err)
	}
}
