package admin

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"time"
)

// OriginStatus is what this site holds of one origin (GET /v1/origins).
type OriginStatus struct {
	Origin   string `json:"origin"`
	Operator string `json:"operator"` // from the keyring; the origin itself when it names none
	// State is "trusted", "probation" (keyring, policy.new_origin) or
	// "demoted" (back on probation: too many of its addresses delisted).
	State string `json:"state"`
	// Weight is what one of its reports counts for towards listing here:
	// 1, or 0 on probation (stored and relayed only).
	Weight            float64   `json:"weight"`
	InKeyring         bool      `json:"in_keyring"` // its key is in the keyring file (else learnt from DNS)
	Reports           int       `json:"reports"`
	Addresses         int       `json:"addresses"`
	Corroborated      int       `json:"corroborated"`
	CorroboratedShare float64   `json:"corroborated_share"`
	Disputed          int       `json:"disputed"` // addresses the administrator delisted or allowed
	DisputedShare     float64   `json:"disputed_share"`
	Held              int       `json:"held"` // new listings held by policy.max_new_listings_per_hour
	Earned            int       `json:"earned"`
	Needed            int       `json:"needed"` // policy.probation_corroborations
	First             time.Time `json:"first,omitzero"`
	Last              time.Time `json:"last,omitzero"`
}

// WhyResult is the answer to GET /v1/why?ip=IP: the listing, if any, and
// every report of the address that this site counts or holds.
type WhyResult struct {
	IP      netip.Addr  `json:"ip"`
	Listed  bool        `json:"listed"`
	Listing *Listing    `json:"listing,omitempty"`
	Reports []WhyReport `json:"reports"`
}

// WhyReport is one report behind (or held back from) a listing.
type WhyReport struct {
	MessageID string    `json:"message_id"`
	Origin    string    `json:"origin"`
	Operator  string    `json:"operator"`
	Time      time.Time `json:"time"` // when it arrived here
	Class     string    `json:"class"`
	// Signature is "valid" when the stored article still verifies with
	// the keyring in force, else why not.
	Signature    string `json:"signature"`
	Probation    bool   `json:"probation"`    // counted for nothing: its origin was on probation
	Corroborated bool   `json:"corroborated"` // another operator reported the address within the window
	Held         bool   `json:"held"`         // held pending by the rate cap
	// RelayOnly: stored only to relay, counting for nothing here, for
	// RelayReason (a class policy.list_classes leaves out, the site's own
	// networks or allow list).
	RelayOnly   bool   `json:"relay_only,omitempty"`
	RelayReason string `json:"relay_reason,omitempty"`
	// Received is the evidence: the Received field of the site's MX that
	// names the address, as the report carries it (trap redacted by dstc).
	Received string `json:"received,omitempty"`
}

func (h *handler) origins(w http.ResponseWriter, r *http.Request) {
	os, err := h.b.Origins(r.Context())
	if err != nil {
		h.internalError(w, r, err)
		return
	}
	if os == nil {
		os = []OriginStatus{}
	}
	writeJSON(w, http.StatusOK, os)
}

func (h *handler) why(w http.ResponseWriter, r *http.Request) {
	ip, ok := parseIP(w, r.URL.Query().Get("ip"))
	if !ok {
		return
	}
	res, err := h.b.Why(r.Context(), ip)
	if err != nil {
		h.internalError(w, r, err)
		return
	}
	if res.Reports == nil {
		res.Reports = []WhyReport{}
	}
	writeJSON(w, http.StatusOK, res)
}

// Origins returns the record of every origin that reported here.
func (c *Client) Origins(ctx context.Context) ([]OriginStatus, error) {
	var os []OriginStatus
	err := c.getJSON(ctx, "/v1/origins", &os)
	return os, err
}

// Why returns every report of ip this site holds, and its listing.
func (c *Client) Why(ctx context.Context, ip netip.Addr) (WhyResult, error) {
	var res WhyResult
	err := c.getJSON(ctx, "/v1/why?ip="+url.QueryEscape(ip.String()), &res)
	return res, err
}
