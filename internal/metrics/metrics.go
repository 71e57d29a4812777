// Package metrics defines dstd's Prometheus metrics in one place, so their
// names stay consistent (namespace "dst", one subsystem per component) and
// components get them injected instead of registering globals.
package metrics

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds every collector dstd exports on /metrics.
type Metrics struct {
	// Reports by result: received counts every article offered; accepted
	// and refused split them, refused by reason ("duplicate", "signature",
	// "date", "malformed", "policy", "too-large", "internal").
	ReportsReceived prometheus.Counter
	ReportsAccepted prometheus.Counter
	ReportsRefused  *prometheus.CounterVec // label: reason

	// Listings removed: label reason = "expired" | "delisted".
	ListingsRemoved *prometheus.CounterVec

	// Action queues: label queue = action name.
	QueueDepth     *prometheus.GaugeVec
	ActionDone     *prometheus.CounterVec
	ActionFailures *prometheus.CounterVec

	// NNTP connections: label listener kind ("tcp", "unix").
	NNTPConnections *prometheus.GaugeVec
	NNTPRefused     *prometheus.CounterVec // label reason: "address", "<class>-limit", "<class>-client-limit", "tls-not-peer", "peer-cert-mismatch", "tls-handshake", "draining"

	// Outgoing feeds: label peer = the peer's name.
	FeedConnected *prometheus.GaugeVec   // 1 while connected
	FeedQueue     *prometheus.GaugeVec   // articles waiting for the peer
	FeedSent      *prometheus.CounterVec // accepted by the peer (239, 235)
	FeedRefused   *prometheus.CounterVec // refused or already there (438, 439, 435, 437)
	FeedDeferred  *prometheus.CounterVec // to be offered again (431, 436, connection lost)
	FeedSkipped   *prometheus.CounterVec // not offered: the peer had offered it to this site
	FeedErrors    *prometheus.CounterVec // connection or protocol failures

	// Spool pickup.
	SpoolPicked      prometheus.Counter
	SpoolErrors      prometheus.Counter
	SpoolQuarantined prometheus.Counter

	// Earned origin trust.
	ReportsNotListed *prometheus.CounterVec // label reason: "probation", "rate-cap"
	OriginsDemoted   prometheus.Counter
	// Reports by class (DST-Class: spam, backscatter, auto-reply; other
	// for a name this version does not know): every accepted report, and
	// those not listed here because policy.list_classes leaves out their
	// class.
	ReportsByClass  *prometheus.CounterVec // label: class
	ReportsUnlisted *prometheus.CounterVec // label: class

	// DNSQueries counts the queries the embedded DNSBL server answered,
	// by qtype, rcode and proto (dnsbl.Config.Queries resolves its
	// children once; DNSQtypes and DNSRcodes are the values).
	DNSQueries *prometheus.CounterVec
	// TrapToListed is the time from a report's Date (the trap hit, as
	// its origin dated it) to its listing here, observed when a report
	// makes an address listed, by the report's origin. A Date in the
	// future (clock skew) counts 0 s, and in TrapToListedFuture too.
	TrapToListed       *prometheus.HistogramVec
	TrapToListedFuture *prometheus.CounterVec
}

// Label values of dst_dns_queries_total. A query type or response code
// not named here counts as "other", so that queries (anyone may send
// them) cannot grow the number of series.
var (
	DNSQtypes = []string{"A", "AAAA", "TXT", "ANY", "SOA", "NS", "AXFR", "IXFR", "other"}
	DNSRcodes = []string{"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "other"}
	DNSProtos = []string{"udp", "tcp"}
)

// Reason label values that every site can have, created at zero by Init.
var (
	// RefusalReasons are the reasons of dst_reports_refused_total
	// (internal/ingest; its test checks that it uses no other).
	RefusalReasons = []string{"duplicate", "internal", "malformed", "signature", "date", "policy",
		"too-large", "cancelled", "cancel-origin", "control"}
	// RemovalReasons are dst_store_listings_removed_total's (the removed
	// kinds of store.ChangeKind).
	RemovalReasons = []string{"expired", "delisted", "cancelled"}
	// NotListedReasons are dst_reports_not_listed_total's.
	NotListedReasons = []string{"probation", "rate-cap"}
)

// OtherOrigin is the origin label of a report whose origin is neither
// this site nor in the keyring file (a key learnt from DNS): a label per
// such name would let anyone who can publish a key grow the series.
const OtherOrigin = "other"

// TrapToListedBuckets go from a second (a local trap, listed at once) to
// a day (a report relayed late, or a threshold met by a later report).
var TrapToListedBuckets = []float64{1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400}

// Known are the label values a site knows when it starts. Init creates
// every labelled series with them, at zero, so that the first scrape has
// them all: rate() has a start to compare with, and an alert on
// absent() or on a peer's failures works before the first event.
type Known struct {
	Actions        []string // action (queue) names
	Peers          []string // outgoing feeds' peer names
	NNTPRefusals   []string // dst_nntp_refused_connections_total reasons
	NNTPListeners  []string // dst_nntp_connections listeners
	Classes        []string // report classes, "other" included
	Origins        []string // this site and the keyring file's domains
	DNSQueryLabels bool     // the DNS server runs: dst_dns_queries_total
}

// Init creates the series of k at zero. It may be called again (after a
// reload adds a peer to the keyring): existing series keep their values.
func (m *Metrics) Init(k Known) {
	for _, r := range RefusalReasons {
		m.ReportsRefused.WithLabelValues(r)
	}
	for _, r := range RemovalReasons {
		m.ListingsRemoved.WithLabelValues(r)
	}
	for _, r := range NotListedReasons {
		m.ReportsNotListed.WithLabelValues(r)
	}
	for _, a := range k.Actions {
		m.QueueDepth.WithLabelValues(a)
		m.ActionDone.WithLabelValues(a)
		m.ActionFailures.WithLabelValues(a)
	}
	for _, p := range k.Peers {
		for _, v := range []*prometheus.GaugeVec{m.FeedConnected, m.FeedQueue} {
			v.WithLabelValues(p)
		}
		for _, v := range []*prometheus.CounterVec{m.FeedSent, m.FeedRefused, m.FeedDeferred, m.FeedSkipped, m.FeedErrors} {
			v.WithLabelValues(p)
		}
	}
	for _, r := range k.NNTPRefusals {
		m.NNTPRefused.WithLabelValues(r)
	}
	for _, l := range k.NNTPListeners {
		m.NNTPConnections.WithLabelValues(l)
	}
	for _, c := range k.Classes {
		m.ReportsByClass.WithLabelValues(c)
		m.ReportsUnlisted.WithLabelValues(c)
	}
	for _, o := range append(slices.Clone(k.Origins), OtherOrigin) {
		m.TrapToListed.WithLabelValues(o)
		m.TrapToListedFuture.WithLabelValues(o)
	}
	if k.DNSQueryLabels {
		for _, q := range DNSQtypes {
			for _, r := range DNSRcodes {
				for _, p := range DNSProtos {
					m.DNSQueries.WithLabelValues(q, r, p)
				}
			}
		}
	}
}

// New creates the collectors and registers them with reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ReportsReceived: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "dst", Subsystem: "reports", Name: "received_total",
			Help: "Report articles offered to this site (POST, IHAVE, TAKETHIS, spool)."}),
		ReportsAccepted: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "dst", Subsystem: "reports", Name: "accepted_total",
			Help: "Report articles accepted and durably stored."}),
		ReportsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "dst", Subsystem: "reports", Name: "refused_total",
			Help: "Report articles refused, by reason."}, []string{"reason"}),
		ListingsRemoved: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "dst", Subsystem: "store", Name: "listings_removed_total",
			Help: "Listings removed, by reason (expired, delisted)."}, []string{"reason"}),
		QueueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "dst", Subsystem: "actions", Name: "queue_depth",
			Help: "Events waiting in each action's durable queue."}, []string{"queue"}),
		ActionDone: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "dst", Subsystem: "actions", Name: "done_total",
			Help: "Events an action completed."}, []string{"queue"}),
		ActionFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "dst", Subsystem: "actions", Name: "failures_total",
			Help: "Failed action attempts (each retry counts)."}, []string{"queue"}),
		NNTPConnections: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "dst", Subsystem: "nntp", Name: "connections",
			Help: "Open NNTP connections."}, []string{"listener"}),
		NNTPRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "dst", Subsystem: "nntp", Name: "refused_connections_total",
			Help: "NNTP connections refused, by reason."}, []string{"reason"}),
		FeedConnected: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "dst", Subsystem: "feed", Name: "connected",
			Help: "1 while the outgoing feed to the peer is connected."}, []string{"peer"}),
		FeedQueue: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "dst", Subsystem: "feed", Name: "queue_depth",
			Help: "Articles waiting to be offered to the peer."}, []string{"peer"}),
		FeedSent: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "dst", Subsystem: "feed", Name: "sent_total",
			Help: "Articles the peer accepted."}, []string{"peer"}),
		FeedRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "dst", Subsystem: "feed", Name: "refused_total",
			Help: "Articles the peer refused or already had."}, []string{"peer"}),
		FeedDeferred: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "dst", Subsystem: "feed", Name: "deferred_total",
			Help: "Articles the peer asked to offer again later."}, []string{"peer"}),
		FeedSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "dst", Subsystem: "feed", Name: "skipped_total",
			Help: "Articles not offered to the peer because it had offered them to this site."}, []string{"peer"}),
		FeedErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "dst", Subsystem: "feed", Name: "errors_total",
			Help: "Connection and protocol failures of the feed."}, []string{"peer"}),
		SpoolPicked: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "dst", Subsystem: "spool", Name: "picked_total",
			Help: "Reports taken from dstc's spool directory."}),
		SpoolErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "dst", Subsystem: "spool", Name: "errors_total",
			Help: "Spool files that could not be read or submitted (left for the next pass)."}),
		SpoolQuarantined: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "dst", Subsystem: "spool", Name: "quarantined_total",
			Help: "Spool files refused (too large, malformed, not a regular file) and moved to the spool's bad/ directory."}),
		ReportsNotListed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "dst", Subsystem: "reports", Name: "not_listed_total",
			Help: "Reports stored and relayed that listed nothing here for their origin's sake: on probation, or over policy.max_new_listings_per_hour (held pending)."}, []string{"reason"}),
		OriginsDemoted: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "dst", Subsystem: "origins", Name: "demoted_total",
			Help: "Origins put back on probation because the administrator delisted too many of their addresses (policy.dispute_share)."}),
		ReportsByClass: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "dst", Subsystem: "reports", Name: "class_total",
			Help: "Report articles accepted, by class (DST-Class; spam when absent, other for a class this version does not know)."}, []string{"class"}),
		ReportsUnlisted: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "dst", Subsystem: "reports", Name: "unlisted_total",
			Help: "Reports stored and relayed but not listed here because policy.list_classes leaves out their class, by class."}, []string{"class"}),
		DNSQueries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "dst", Subsystem: "dns", Name: "queries_total",
			Help: "DNS queries the embedded DNSBL server answered, by query type, response code and protocol (other: a type or code not listed)."},
			[]string{"qtype", "rcode", "proto"}),
		TrapToListed: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "dst", Name: "trap_to_listed_seconds",
			Help:    "Time from a report's Date (its trap hit) to the listing it made here, by the report's origin (other: not in the keyring file).",
			Buckets: TrapToListedBuckets}, []string{"origin"}),
		TrapToListedFuture: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "dst", Name: "trap_to_listed_future_dates_total",
			Help: "Listings made by a report dated in the future (the origin's clock is ahead); dst_trap_to_listed_seconds counts them as 0 s."},
			[]string{"origin"}),
	}
	reg.MustRegister(m.ReportsReceived, m.ReportsAccepted, m.ReportsRefused, m.ListingsRemoved,
		m.QueueDepth, m.ActionDone, m.ActionFailures, m.NNTPConnections, m.NNTPRefused,
		m.FeedConnected, m.FeedQueue, m.FeedSent, m.FeedRefused, m.FeedDeferred, m.FeedSkipped, m.FeedErrors, m.SpoolPicked, m.SpoolErrors,
		m.SpoolQuarantined, m.ReportsNotListed, m.OriginsDemoted, m.ReportsByClass, m.ReportsUnlisted,
		m.DNSQueries, m.TrapToListed, m.TrapToListedFuture)
	return m
}

// RegisterStore exports the store's counts, read when Prometheus scrapes.
func RegisterStore(reg prometheus.Registerer, listings, pending func() float64) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "dst", Subsystem: "store", Name: "listings",
			Help: "IP addresses currently listed."}, listings),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "dst", Subsystem: "store", Name: "pending",
			Help: "IP addresses reported but below the listing threshold."}, pending),
	)
}

// RegisterBuildInfo exports dst_build_info, always 1, whose labels say which
// DST runs (as `dstd version` prints it), so a dashboard can show the
// version of every site and notice one that was not upgraded.
func RegisterBuildInfo(reg prometheus.Registerer, version, revision, goVersion string) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "dst", Name: "build_info",
		Help:        "Always 1; the labels say which DST runs (dstd version).",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": goVersion}})
	g.Set(1)
	reg.MustRegister(g)
}
