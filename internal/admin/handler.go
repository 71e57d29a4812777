package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dst-traps/dst/internal/store"
)

// ListingsContentType is the media type of GET /v1/listings.
const ListingsContentType = "application/x-ndjson"

// Handler returns the endpoint's routes. gatherer may be nil: /metrics is
// then 404. log receives backend errors (answered with 500).
func Handler(b Backend, gatherer prometheus.Gatherer, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &handler{b: b, log: log}
	mux := http.NewServeMux()
	// Methods are checked in route rather than in the patterns, so that
	// a wrong method gets a JSON error like every other failure.
	mux.Handle("/healthz", route(http.MethodGet, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})))
	if gatherer != nil {
		mux.Handle("/metrics", route(http.MethodGet, promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelError),
		})))
	}
	mux.Handle("/v1/status", route(http.MethodGet, http.HandlerFunc(h.status)))
	mux.Handle("/v1/lookup", route(http.MethodGet, http.HandlerFunc(h.lookup)))
	mux.Handle("/v1/listings", route(http.MethodGet, http.HandlerFunc(h.listings)))
	mux.Handle("/v1/delist", route(http.MethodPost, http.HandlerFunc(h.delist)))
	mux.Handle("/v1/cancel", route(http.MethodPost, http.HandlerFunc(h.cancel)))
	mux.Handle("/v1/resync", route(http.MethodPost, http.HandlerFunc(h.resync)))
	mux.Handle("/v1/queues", route(http.MethodGet, http.HandlerFunc(h.queues)))
	mux.Handle("/v1/peers", route(http.MethodGet, http.HandlerFunc(h.peers)))
	mux.Handle("/v1/peers/refeed", route(http.MethodPost, http.HandlerFunc(h.peerControl)))
	mux.Handle("/v1/peers/flush", route(http.MethodPost, http.HandlerFunc(h.peerControl)))
	mux.Handle("/v1/peers/test", route(http.MethodPost, http.HandlerFunc(h.peerControl)))
	mux.Handle("/v1/keys", route(http.MethodGet, http.HandlerFunc(h.keys)))
	mux.Handle("/v1/origins", route(http.MethodGet, http.HandlerFunc(h.origins)))
	mux.Handle("/v1/why", route(http.MethodGet, http.HandlerFunc(h.why)))
	if sp, ok := b.(StatusPager); ok {
		// "/{$}" is / alone: any other unknown path stays a 404.
		mux.Handle("/{$}", route(http.MethodGet, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.page(w, r, sp) })))
		mux.Handle("/v1/refusals", route(http.MethodGet, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.refusals(w, r, sp) })))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s", r.URL.Path))
	})
	return refuseOrigin(mux)
}

type handler struct {
	b   Backend
	log *slog.Logger
}

// route answers 405 to any method but method (GET also allows HEAD), and
// 415 to a request of another method whose body is not JSON (guard.go).
func route(method string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
			w.Header().Set("Allow", method)
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s needs %s, not %s", r.URL.Path, method, r.Method))
			return
		}
		if method != http.MethodGet && !jsonBody(w, r) {
			return
		}
		h.ServeHTTP(w, r)
	})
}

// maxRequestBody bounds a request's JSON body; the largest holds one
// Message-ID.
const maxRequestBody = 64 << 10

// decodeBody reads r's JSON body into v; an empty body leaves v as it is.
// It answers 400 itself when the body is bad.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("bad JSON body: %v", err))
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "bad JSON body: more than one JSON value")
		return false
	}
	return true
}

// DelistRequest is the body of POST /v1/delist.
type DelistRequest struct {
	IP    string `json:"ip"`
	Allow bool   `json:"allow,omitempty"`
}

// CancelRequest is the body of POST /v1/cancel.
type CancelRequest struct {
	ID string `json:"id"` // the report's Message-ID, with its angle brackets
}

type errorBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	// The status line is gone already; a failed write means the client
	// left, and there is no one to tell.
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Error: msg})
}

// internalError logs err and answers 500 with its text: the caller is the
// site's administrator, who needs the reason more than secrecy.
func (h *handler) internalError(w http.ResponseWriter, r *http.Request, err error) {
	h.log.Error("admin request failed", "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, err.Error())
}

// parseIP reads an address parameter; it answers 400 itself when bad.
func parseIP(w http.ResponseWriter, v string) (netip.Addr, bool) {
	if v == "" {
		writeError(w, http.StatusBadRequest, "missing parameter ip (an IPv4 or IPv6 address)")
		return netip.Addr{}, false
	}
	ip, err := netip.ParseAddr(v)
	if err != nil || ip.Zone() != "" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%q is not an IPv4 or IPv6 address", v))
		return netip.Addr{}, false
	}
	// The store keeps IPv4 addresses in their 4-byte form.
	return ip.Unmap(), true
}

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	s, err := h.b.Status(r.Context())
	if err != nil {
		h.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s)
}

func (h *handler) lookup(w http.ResponseWriter, r *http.Request) {
	ip, ok := parseIP(w, r.URL.Query().Get("ip"))
	if !ok {
		return
	}
	l, found, err := h.b.Lookup(r.Context(), ip)
	if err != nil {
		h.internalError(w, r, err)
		return
	}
	if !found {
		writeError(w, http.StatusNotFound, fmt.Sprintf("%s is not listed", ip))
		return
	}
	writeJSON(w, http.StatusOK, h.fromStore(l))
}

// fromStore is FromStore, marked simulated when the backend simulates.
func (h *handler) fromStore(l store.Listing) Listing {
	out := FromStore(l)
	if s, ok := h.b.(Simulating); ok && s.Simulating() {
		out.Simulated = true
	}
	return out
}

// listings streams one JSON object per line straight from the store, so
// memory stays flat however many addresses are listed.
func (h *handler) listings(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", ListingsContentType)
	// Send the status line at once, so the client knows the request was
	// taken even if the store is slow to yield the first listing. After
	// that the server's buffer flushes itself as it fills.
	w.WriteHeader(http.StatusOK)
	_ = http.NewResponseController(w).Flush()
	enc := json.NewEncoder(w)
	var writeErr error
	err := h.b.List(r.Context(), func(l store.Listing) error {
		if err := enc.Encode(h.fromStore(l)); err != nil {
			writeErr = err
			return fmt.Errorf("sending listings: %w", err)
		}
		return nil
	})
	if err == nil {
		return
	}
	if writeErr != nil {
		h.log.Debug("listing client went away", "err", writeErr)
		return
	}
	// The status line may already be out: say so in the stream.
	h.log.Error("admin request failed", "path", r.URL.Path, "err", err)
	_ = enc.Encode(errorBody{Error: err.Error()})
}

func (h *handler) delist(w http.ResponseWriter, r *http.Request) {
	var req DelistRequest
	if !decodeBody(w, r, &req) {
		return
	}
	ip, ok := parseIP(w, req.IP)
	if !ok {
		return
	}
	allow := req.Allow
	removed, err := h.b.Delist(r.Context(), ip, allow)
	if err != nil {
		h.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, DelistResult{IP: ip, Delisted: removed, Allowed: allow})
}

func (h *handler) cancel(w http.ResponseWriter, r *http.Request) {
	var req CancelRequest
	if !decodeBody(w, r, &req) {
		return
	}
	id := req.ID
	if id == "" {
		writeError(w, http.StatusBadRequest, "missing parameter id (the Message-ID of the report to cancel)")
		return
	}
	res, err := h.b.Cancel(r.Context(), id)
	h.answer(w, r, res, err)
}

func (h *handler) resync(w http.ResponseWriter, r *http.Request) {
	var req struct{} // no parameters; an empty body or {} will do
	if !decodeBody(w, r, &req) {
		return
	}
	res, err := h.b.Resync(r.Context())
	h.answer(w, r, res, err)
}

// answer writes res, or err: 400 for a *RequestError (the request's
// fault, its text for the administrator), 500 for anything else.
func (h *handler) answer(w http.ResponseWriter, r *http.Request, res any, err error) {
	var rerr *RequestError
	switch {
	case errors.As(err, &rerr):
		writeError(w, http.StatusBadRequest, rerr.Error())
	case err != nil:
		h.internalError(w, r, err)
	default:
		writeJSON(w, http.StatusOK, res)
	}
}

func (h *handler) queues(w http.ResponseWriter, r *http.Request) {
	qs, err := h.b.Queues(r.Context())
	if err != nil {
		h.internalError(w, r, err)
		return
	}
	if qs == nil {
		qs = []QueueStatus{}
	}
	writeJSON(w, http.StatusOK, qs)
}

func (h *handler) keys(w http.ResponseWriter, r *http.Request) {
	ks, err := h.b.Keys(r.Context())
	if err != nil {
		h.internalError(w, r, err)
		return
	}
	if ks == nil {
		ks = []KeyStatus{}
	}
	writeJSON(w, http.StatusOK, ks)
}

func (h *handler) peers(w http.ResponseWriter, r *http.Request) {
	ps, err := h.b.Peers(r.Context())
	if err != nil {
		h.internalError(w, r, err)
		return
	}
	if ps == nil {
		ps = []PeerStatus{}
	}
	writeJSON(w, http.StatusOK, ps)
}
