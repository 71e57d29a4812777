// Package admin is dstd's local administration endpoint: a small HTTP API
// on a Unix socket in the data directory (and optionally a TCP port),
// used by dstctl and scraped by Prometheus.
//
// Only dstd may open the store (bbolt locks the file), so every
// administrative read or change of a running site goes through here. The
// socket's file mode (0660) is its access control. The TCP listener
// (admin.listen) is on loopback, or needs a bearer token (admin.token_file)
// on every route but /healthz and /metrics (a browser gives it for the
// status page, GET / alone, as its basic-auth password); see ForTCP. On both, the API
// refuses what a web page could send (guard.go): any request with an
// Origin header (403), and a POST whose body is not application/json (415).
//
// Routes (JSON bodies; errors are {"error": "..."}; docs/API.md describes
// each, its fields and examples, and TestAPIDocumented keeps it complete):
//
//	GET  /healthz           200 "ok"
//	GET  /metrics           Prometheus text format
//	GET  /v1/status         Status
//	GET  /v1/lookup?ip=IP   Listing; 404 when not listed
//	GET  /v1/listings       one Listing per line (JSON lines), streamed
//	POST /v1/delist         DelistRequest {"ip": IP, "allow": true}; DelistResult
//	POST /v1/cancel         CancelRequest {"id": MESSAGE-ID}; CancelResult (400: not a report this site can cancel)
//	POST /v1/resync         {} or no body; ResyncResult, once done (400: no DNS UPDATE server)
//	GET  /v1/queues         []QueueStatus
//	GET  /v1/peers          []PeerStatus: outgoing feeds and incoming peers
//	POST /v1/peers/refeed   PeerRequest; RefeedResult (see PeerControl)
//	POST /v1/peers/flush    PeerRequest; FlushResult
//	POST /v1/peers/test     PeerRequest; TestResult
//	GET  /v1/keys           []KeyStatus
//	GET  /v1/origins        []OriginStatus
//	GET  /v1/why?ip=IP      WhyResult: the listing and every report of the address
//	GET  /v1/refusals       []Refusal: the last articles refused, the most recent first
//	GET  /                  the status page (HTML; see page.go)
//
// A bad IP address or JSON body is 400, a missing or wrong token 401, a
// wrong method 405. When /v1/listings fails part way, its last line is
// {"error": "..."}, so a client can tell a cut listing from a complete one.
package admin

import (
	"context"
	"net/netip"
	"time"

	"github.com/dst-traps/dst/internal/store"
)

// Backend is what the endpoint needs from dstd.
type Backend interface {
	Status(ctx context.Context) (Status, error)
	// Lookup returns the listing of ip, and whether there is one.
	Lookup(ctx context.Context, ip netip.Addr) (store.Listing, bool, error)
	// List calls fn for each listing and stops at fn's first error.
	List(ctx context.Context, fn func(store.Listing) error) error
	// Delist removes the listing of ip and says whether there was one;
	// allow also puts ip on the allow list, so it is never listed again.
	Delist(ctx context.Context, ip netip.Addr, allow bool) (bool, error)
	// Cancel withdraws a report this site originated: builds, signs and
	// injects the cancel control article. A request it cannot satisfy
	// (unknown report, another site's) is a *RequestError.
	Cancel(ctx context.Context, messageID string) (CancelResult, error)
	// Resync compares the DNS UPDATE server's zone with the listings and
	// repairs it, and says what it did. Without a DNS UPDATE server it
	// returns a *RequestError.
	Resync(ctx context.Context) (ResyncResult, error)
	Queues(ctx context.Context) ([]QueueStatus, error)
	// Peers describes the configured peers: the outgoing feeds, and
	// what each peer feeds this site.
	Peers(ctx context.Context) ([]PeerStatus, error)
	// Keys lists the DKIM keys reports are verified with.
	Keys(ctx context.Context) ([]KeyStatus, error)
	// Origins describes every origin that reported here: its record and
	// its state now.
	Origins(ctx context.Context) ([]OriginStatus, error)
	// Why lists the reports of ip this site holds, with its listing.
	Why(ctx context.Context, ip netip.Addr) (WhyResult, error)
}

// KeyStatus is one trusted DKIM key: the keyring's, and the site's own.
type KeyStatus struct {
	Site      string `json:"site"`       // the d= of the signatures it verifies
	Selector  string `json:"selector"`   // s=
	PublicKey string `json:"public_key"` // base64, as in the keyring file
	Own       bool   `json:"own"`        // this site's own key
	Operator  string `json:"operator,omitempty"`
	Probation bool   `json:"probation,omitempty"`
}

// PeerStatus describes one peer since dstd started: the outgoing feed to
// it (the fields up to LastErrorTime, and TLSMode to RetryAt; Outgoing false and
// zero when it has none), and what it feeds this site (Incoming).
type PeerStatus struct {
	Name          string    `json:"name"`
	Addr          string    `json:"addr"`
	Connected     bool      `json:"connected"`
	Streaming     bool      `json:"streaming"` // MODE STREAM accepted (else IHAVE)
	Depth         int       `json:"depth"`     // reports waiting for the peer
	Sent          int64     `json:"sent"`      // accepted by the peer
	Refused       int64     `json:"refused"`   // refused by it, or it had them already
	Deferred      int64     `json:"deferred"`  // to be offered again
	Skipped       int64     `json:"skipped"`   // not offered: the peer had offered it to this site
	LastSuccess   time.Time `json:"last_success,omitzero"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`

	Outgoing bool   `json:"outgoing"`           // this site feeds the peer
	TLSMode  string `json:"tls_mode,omitempty"` // configured: none, starttls, implicit
	// TLS is the last outgoing connection's state (none before the first).
	TLS *TLSState `json:"tls,omitempty"`
	// Refusals are the peer's refusals by reason.
	Refusals []RefusalCount `json:"refusals,omitempty"`
	// Kept is how many reports it refused for a keyring or clock reason
	// wait to be offered again (dstctl peers refeed).
	Kept int `json:"kept"`
	// RetryAt: after a failure, when the feed reconnects (dstctl peers
	// flush: now).
	RetryAt time.Time `json:"retry_at,omitzero"`
	// Incoming is what the peer feeds this site; nil when it may not
	// (no address in its [[peer]] table).
	Incoming *IncomingStatus `json:"incoming,omitempty"`
}

// Status describes the running dstd.
type Status struct {
	Version       string        `json:"version"`
	Site          string        `json:"site"`
	DataDir       string        `json:"data_dir"`
	Listen        []string      `json:"listen"` // NNTP listeners: addresses and socket paths
	Admin         []string      `json:"admin"`  // admin endpoints
	Started       time.Time     `json:"started"`
	UptimeSeconds int64         `json:"uptime_seconds"`
	Listings      int           `json:"listings"` // listed addresses
	Pending       int           `json:"pending"`  // reported, below the listing threshold
	History       int           `json:"history"`  // Message-IDs remembered
	Articles      int           `json:"articles"` // report articles stored
	DBBytes       int64         `json:"db_bytes"`
	Queues        []QueueStatus `json:"queues"`
}

// QueueStatus describes one action queue and its runner since dstd started.
type QueueStatus struct {
	Name          string    `json:"name"`
	Depth         int       `json:"depth"`    // events waiting
	Done          int64     `json:"done"`     // handled since start
	Failures      int64     `json:"failures"` // failed attempts since start
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
	LastSuccess   time.Time `json:"last_success,omitzero"`
}

// Listing is a listed address as the API shows it.
type Listing struct {
	IP            netip.Addr `json:"ip"`
	FirstSeen     time.Time  `json:"first_seen"`
	LastSeen      time.Time  `json:"last_seen"`
	Expires       time.Time  `json:"expires"`
	Hits          int        `json:"hits"`
	Origins       []string   `json:"origins"`
	LastMessageID string     `json:"last_message_id"`
	// Simulated: the site runs with policy.simulate, so this listing is
	// computed but not published ("would list").
	Simulated bool `json:"simulated,omitempty"`
}

// Simulating is implemented by a Backend that may run in simulation
// (policy.simulate); its listings are then shown as simulated.
type Simulating interface{ Simulating() bool }

// FromStore converts a store listing for the API.
func FromStore(l store.Listing) Listing {
	origins := l.Origins
	if origins == nil {
		origins = []string{} // [] rather than null for JSON readers
	}
	return Listing{IP: l.IP, FirstSeen: l.FirstSeen, LastSeen: l.LastSeen, Expires: l.Expires,
		Hits: l.Hits, Origins: origins, LastMessageID: l.LastMessageID}
}

// CancelResult is the answer to POST /v1/cancel.
type CancelResult struct {
	MessageID string     `json:"message_id"` // the cancelled report
	Cancel    string     `json:"cancel"`     // the control article's Message-ID
	IP        netip.Addr `json:"ip"`         // the report's Source-IP
	Delisted  bool       `json:"delisted"`   // the cancel removed the listing here
	Listed    bool       `json:"listed"`     // still listed here, by Origins
	Origins   []string   `json:"origins,omitempty"`
}

// ResyncResult is the answer to POST /v1/resync.
type ResyncResult struct {
	Wanted  int `json:"wanted"`  // listings to publish
	Present int `json:"present"` // address names the zone held
	Added   int `json:"added"`
	Fixed   int `json:"fixed"` // present with wrong records
	Removed int `json:"removed"`
}

// RequestError is a Backend error caused by the request rather than by the
// site: answered with 400 and its text.
type RequestError struct{ Err error }

func (e *RequestError) Error() string { return e.Err.Error() }
func (e *RequestError) Unwrap() error { return e.Err }

// DelistResult is the answer to POST /v1/delist.
type DelistResult struct {
	IP       netip.Addr `json:"ip"`
	Delisted bool       `json:"delisted"` // it was listed and no longer is
	Allowed  bool       `json:"allowed"`  // it is now on the allow list
}
