package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// PeerControl is implemented by a Backend with peers (dstd's site): the
// state-changing peer routes answer 404 without it.
//
//	POST /v1/peers/refeed  PeerRequest {"peer": NAME, "reason": "keyring"|"clock"|"all"}; RefeedResult
//	POST /v1/peers/flush   PeerRequest {"peer": NAME}; FlushResult
//	POST /v1/peers/test    PeerRequest {"peer": NAME}; TestResult (200 even when the test failed: see OK)
//
// An unknown peer, or a peer without an outgoing feed, is 400.
type PeerControl interface {
	// Refeed puts the reports peer refused for reason, kept since, back
	// in its feed.
	Refeed(ctx context.Context, peer, reason string) (RefeedResult, error)
	// Flush makes the feed to peer try now: deferred reports due, the
	// reconnection backoff cut short.
	Flush(ctx context.Context, peer string) (FlushResult, error)
	// TestPeer makes a round trip to peer without a report.
	TestPeer(ctx context.Context, peer string) (TestResult, error)
}

// TLSState describes a connection's protection.
type TLSState struct {
	// State is "tls", "plain" or "loopback plain" (plain, but on a
	// loopback address or a Unix socket).
	State       string `json:"state"`
	Version     string `json:"version,omitempty"` // "TLS 1.3"
	Cipher      string `json:"cipher,omitempty"`
	CertSHA256  string `json:"cert_sha256,omitempty"` // the other side's certificate, hex SHA-256 of its DER
	CertSubject string `json:"cert_subject,omitempty"`
}

// RefusalCount counts refusals of one reason: "keyring", "clock",
// "duplicate", "in-path" (not offered: the peer is in the Path), "other".
type RefusalCount struct {
	Reason   string    `json:"reason"`
	Count    int64     `json:"count"`
	LastCode int       `json:"last_code,omitempty"` // the last refusal's NNTP code and text
	LastText string    `json:"last_text,omitempty"`
	LastTime time.Time `json:"last_time,omitzero"`
}

// IncomingStatus describes what a peer feeds this site, since dstd
// started.
type IncomingStatus struct {
	// Connections are the peer's sessions open now.
	Connections []IncomingConn `json:"connections"`
	Accepted    int64          `json:"accepted"` // reports taken from it
	Refused     int64          `json:"refused"`  // refused, duplicates included
	Refusals    []RefusalCount `json:"refusals,omitempty"`
	LastSeen    time.Time      `json:"last_seen,omitzero"` // its last session or command
	LastAddr    string         `json:"last_addr,omitempty"`
	LastTLS     *TLSState      `json:"last_tls,omitempty"`
}

// IncomingConn is one session of a peer feeding this site.
type IncomingConn struct {
	Addr  string    `json:"addr"`
	TLS   TLSState  `json:"tls"`
	Since time.Time `json:"since"`
}

// PeerRequest is the body of the POST /v1/peers/... routes.
type PeerRequest struct {
	Peer   string `json:"peer"`
	Reason string `json:"reason,omitempty"` // refeed: keyring, clock or all (default all)
}

// RefeedResult is the answer to POST /v1/peers/refeed.
type RefeedResult struct {
	Peer   string `json:"peer"`
	Reason string `json:"reason"`
	Refed  int    `json:"refed"` // reports put back in the feed
	Kept   int    `json:"kept"`  // refused reports still kept (another reason)
}

// FlushResult is the answer to POST /v1/peers/flush.
type FlushResult struct {
	Peer string `json:"peer"`
	Due  int    `json:"due"` // deferred reports made due at once
}

// TestResult is the answer to POST /v1/peers/test.
type TestResult struct {
	Peer       string     `json:"peer"`
	Addr       string     `json:"addr"`
	OK         bool       `json:"ok"`
	DurationMS float64    `json:"duration_ms"`
	TLS        *TLSState  `json:"tls,omitempty"` // once connected
	Streaming  bool       `json:"streaming"`
	Steps      []TestStep `json:"steps"`
}

// TestStep is one step of a peer test: "connect" (TCP, TLS, AUTHINFO),
// "MODE STREAM", "CHECK" or "DATE", "QUIT".
type TestStep struct {
	Step       string  `json:"step"`
	Detail     string  `json:"detail,omitempty"`
	DurationMS float64 `json:"duration_ms"`
	Error      string  `json:"error,omitempty"`
}

// peerControl is the handler of the state-changing peer routes.
func (h *handler) peerControl(w http.ResponseWriter, r *http.Request) {
	pc, ok := h.b.(PeerControl)
	if !ok {
		writeError(w, http.StatusNotFound, "this dstd has no peers to control")
		return
	}
	var req PeerRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Peer == "" {
		writeError(w, http.StatusBadRequest, "missing parameter peer (a peer's name, as in dstctl peers)")
		return
	}
	var (
		res any
		err error
	)
	switch r.URL.Path {
	case "/v1/peers/refeed":
		if req.Reason == "" {
			req.Reason = "all"
		}
		res, err = pc.Refeed(r.Context(), req.Peer, req.Reason)
	case "/v1/peers/flush":
		res, err = pc.Flush(r.Context(), req.Peer)
	case "/v1/peers/test":
		res, err = pc.TestPeer(r.Context(), req.Peer)
	}
	h.answer(w, r, res, err)
}

// postJSON sends in to path and decodes the answer into out.
func (c *Client) postJSON(ctx context.Context, path string, in, out any) error {
	resp, err := c.do(ctx, http.MethodPost, path, in, http.StatusOK)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("reading dstd's answer to %s: %w", path, err)
	}
	return nil
}

// Refeed makes dstd offer peer again the reports it refused for reason
// (keyring, clock or all).
func (c *Client) Refeed(ctx context.Context, peer, reason string) (RefeedResult, error) {
	var r RefeedResult
	err := c.postJSON(ctx, "/v1/peers/refeed", PeerRequest{Peer: peer, Reason: reason}, &r)
	return r, err
}

// Flush makes dstd's feed to peer try now.
func (c *Client) Flush(ctx context.Context, peer string) (FlushResult, error) {
	var r FlushResult
	err := c.postJSON(ctx, "/v1/peers/flush", PeerRequest{Peer: peer}, &r)
	return r, err
}

// TestPeer makes dstd test the connection to peer.
func (c *Client) TestPeer(ctx context.Context, peer string) (TestResult, error) {
	var r TestResult
	err := c.postJSON(ctx, "/v1/peers/test", PeerRequest{Peer: peer}, &r)
	return r, err
}
