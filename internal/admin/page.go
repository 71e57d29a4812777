package admin

import (
	"bytes"
	"context"
	"net/http"
	"time"

	"github.com/dst-traps/dst/internal/statuspage"
)

// StatusPager is implemented by a Backend that serves the status page at
// / and the last refusals at /v1/refusals: dstd's site.
type StatusPager interface {
	// StatusPage gathers what the page shows, now.
	StatusPage(ctx context.Context) (statuspage.Data, error)
	// Refusals are the last articles refused, the most recent first.
	Refusals(ctx context.Context) ([]Refusal, error)
}

// Refusal is one refused article or report, as GET /v1/refusals shows it.
type Refusal struct {
	Time      time.Time `json:"time"`
	From      string    `json:"from"`                 // the peer's name, or the local poster
	MessageID string    `json:"message_id,omitempty"` // none when it could not be read
	Kind      string    `json:"kind"`                 // signature, date, policy, malformed, ...
	Reason    string    `json:"reason"`               // as given to the sender
}

// page serves the status page. It is rendered whole before anything is
// sent, so that a failure is a 500 rather than half a page. The headers
// forbid everything the page does not need: it loads nothing, runs no
// script, and may not be framed by another page.
func (h *handler) page(w http.ResponseWriter, r *http.Request, sp StatusPager) {
	d, err := sp.StatusPage(r.Context())
	if err != nil {
		h.internalError(w, r, err)
		return
	}
	var b bytes.Buffer
	if err := statuspage.Render(&b, d); err != nil {
		h.internalError(w, r, err)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Content-Security-Policy", statuspage.CSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b.Bytes()) // a failed write means the client left
}

func (h *handler) refusals(w http.ResponseWriter, r *http.Request, sp StatusPager) {
	rs, err := sp.Refusals(r.Context())
	if err != nil {
		h.internalError(w, r, err)
		return
	}
	if rs == nil {
		rs = []Refusal{}
	}
	writeJSON(w, http.StatusOK, rs)
}
