package dnsbl

import (
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/dst-traps/dst/internal/metrics"
)

// countedServer is newTestServer counting into a registry of its own.
func countedServer(t testing.TB) (*Server, *prometheus.CounterVec) {
	t.Helper()
	m := metrics.New(prometheus.NewRegistry())
	s, x := newTestServer(t)
	c := s.c
	c.Queries = m.DNSQueries
	s2, err := New(c, x)
	if err != nil {
		t.Fatal(err)
	}
	return s2, m.DNSQueries
}

// Every answer is counted once, under its query type and response code;
// a type or code outside the fixed lists is "other", so a stranger's
// queries cannot add series.
func TestQueryCounters(t *testing.T) {
	s, vec := countedServer(t)
	two := new(dns.Msg)
	two.SetQuestion("1.0.0.127."+zone, dns.TypeA)
	two.Question = append(two.Question, two.Question[0])
	axfr := new(dns.Msg)
	axfr.SetAxfr(zone)
	for _, q := range []struct {
		tcp  bool
		name string
		qt   uint16
	}{
		{false, "4.3.2.1." + zone, dns.TypeA},   // listed: NOERROR
		{false, "4.3.2.1." + zone, dns.TypeA},   // twice
		{true, "4.3.2.1." + zone, dns.TypeTXT},  // over TCP
		{false, "5.3.2.1." + zone, dns.TypeA},   // NXDOMAIN
		{false, "4.3.2.1." + zone, dns.TypeMX},  // NODATA, an uncounted type
		{false, "4.3.2.1." + zone, dns.TypeCAA}, // a type above 255
		{false, "example.com.", dns.TypeA},      // not ours: REFUSED
	} {
		if query(s, q.tcp, q.name, q.qt, false) == nil {
			t.Fatalf("no answer to %s %s", q.name, dns.TypeToString[q.qt])
		}
	}
	s.ServeDNS(newRecorder(false), two) // FORMERR, qtype other
	s.ServeDNS(newRecorder(true), axfr) // streamed transfer
	s.acceptFunc(nil)(dns.Header{Bits: uint16(dns.OpcodeUpdate) << 11, Qdcount: 1})

	for _, w := range []struct {
		qtype, rcode, proto string
		n                   float64
	}{
		{"A", "NOERROR", "udp", 2},
		{"TXT", "NOERROR", "tcp", 1},
		{"A", "NXDOMAIN", "udp", 1},
		{"other", "NOERROR", "udp", 2},
		{"A", "REFUSED", "udp", 1},
		{"other", "FORMERR", "udp", 1},
		{"AXFR", "NOERROR", "tcp", 1},
		{"other", "NOTIMP", "tcp", 1},
		{"A", "NOERROR", "tcp", 0},
		{"SOA", "SERVFAIL", "udp", 0},
	} {
		if got := counterValue(t, vec.WithLabelValues(w.qtype, w.rcode, w.proto)); got != w.n {
			t.Errorf("dst_dns_queries_total{qtype=%q,rcode=%q,proto=%q} = %v, want %v", w.qtype, w.rcode, w.proto, got, w.n)
		}
	}
	want := len(metrics.DNSQtypes) * len(metrics.DNSRcodes) * len(metrics.DNSProtos)
	ch := make(chan prometheus.Metric, 2*want)
	vec.Collect(ch)
	if n := len(ch); n != want {
		t.Errorf("%d series, want every (qtype, rcode, proto) at start and no more: %d", n, want)
	}
}

// Counting costs no allocation: a query answers with as many
// allocations counted as not.
func TestQueryCountersAllocs(t *testing.T) {
	plain, _ := newTestServer(t)
	counted, _ := countedServer(t)
	for _, name := range []string{"4.3.2.1." + zone, "5.3.2.1." + zone} {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		w := nullWriter{newRecorder(false)}
		a := testing.AllocsPerRun(200, func() { plain.ServeDNS(w, m) })
		b := testing.AllocsPerRun(200, func() { counted.ServeDNS(w, m) })
		if b > a {
			t.Errorf("%s: %v allocations per query counted, %v not counted", name, b, a)
		}
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
