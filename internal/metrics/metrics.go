// Package metrics defines dstd's Prometheus metrics in one place, so their
// names stay consistent (namespace "dst", one subsystem per component) and
// components get them injected instead of registering globals.
package metrics

import "github.com/prometheus/client_golang/prometheus"

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
	NNTPRefused     *prometheus.CounterVec // label reason: "address", "<class>-limit", "<class>-client-limit", "tls-not-peer", "tls-handshake", "draining"

	// Outgoing feeds: label peer = the peer's name.
	FeedConnected *prometheus.GaugeVec   // 1 while connected
	FeedQueue     *prometheus.GaugeVec   // articles waiting for the peer
	FeedSent      *prometheus.CounterVec // accepted by the peer (239, 235)
	FeedRefused   *prometheus.CounterVec // refused or already there (438, 439, 435, 437)
	FeedDeferred  *prometheus.CounterVec // to be offered again (431, 436, connection lost)
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
	}
	reg.MustRegister(m.ReportsReceived, m.ReportsAccepted, m.ReportsRefused, m.ListingsRemoved,
		m.QueueDepth, m.ActionDone, m.ActionFailures, m.NNTPConnections, m.NNTPRefused,
		m.FeedConnected, m.FeedQueue, m.FeedSent, m.FeedRefused, m.FeedDeferred, m.FeedErrors, m.SpoolPicked, m.SpoolErrors,
		m.SpoolQuarantined, m.ReportsNotListed, m.OriginsDemoted, m.ReportsByClass, m.ReportsUnlisted)
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
