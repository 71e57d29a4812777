package admin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dst-traps/dst/internal/statuspage"
)

// pagerBackend is the fake backend with a status page.
type pagerBackend struct{ *fakeBackend }

func (pagerBackend) StatusPage(context.Context) (statuspage.Data, error) {
	return statuspage.Data{Site: "site-a.example", Now: t0, Started: t0.Add(-time.Hour), Listings: 1,
		ListingsDay: statuspage.Series{{T: t0.Add(-time.Hour), V: 0}, {T: t0, V: 1}}}, nil
}

func (pagerBackend) Refusals(context.Context) ([]Refusal, error) {
	return []Refusal{{Time: t0, From: "site-b.example", MessageID: "<x@b>", Kind: "signature", Reason: "signature: bad"}}, nil
}

// TestStatusPageRoute: / is the page with its strict headers, /v1/refusals
// its JSON, any other unknown path still 404; a backend without a page
// has neither.
func TestStatusPageRoute(t *testing.T) {
	srv := httptest.NewServer(Handler(pagerBackend{newFakeBackend()}, prometheus.NewRegistry(), nil))
	defer srv.Close()
	code, hdr, body := do(t, "GET", srv.URL+"/", "", nil)
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") || !strings.Contains(body, "site-a.example") {
		t.Fatalf("GET / = %d %s:\n%.300s", code, hdr.Get("Content-Type"), body)
	}
	for k, want := range map[string]string{"Content-Security-Policy": statuspage.CSP, "X-Frame-Options": "DENY",
		"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"} {
		if hdr.Get(k) != want {
			t.Errorf("GET /: %s %q, want %q", k, hdr.Get(k), want)
		}
	}
	if code, _, _ := do(t, "POST", srv.URL+"/", "{}", map[string]string{"Content-Type": "application/json"}); code != http.StatusMethodNotAllowed {
		t.Errorf("POST / = %d, want 405", code)
	}
	if code, _, _ := do(t, "GET", srv.URL+"/", "", map[string]string{"Origin": "https://evil.example"}); code != http.StatusForbidden {
		t.Errorf("GET / with Origin = %d, want 403", code)
	}
	code, _, body = do(t, "GET", srv.URL+"/v1/refusals", "", nil)
	var rs []Refusal
	if code != 200 || json.Unmarshal([]byte(body), &rs) != nil || len(rs) != 1 || rs[0].Kind != "signature" {
		t.Errorf("GET /v1/refusals = %d %s", code, body)
	}
	for _, p := range []string{"/index.html", "/status", "/v1/nothing"} {
		if code, _, _ := do(t, "GET", srv.URL+p, "", nil); code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, code)
		}
	}

	plain := httptest.NewServer(Handler(newFakeBackend(), prometheus.NewRegistry(), nil))
	defer plain.Close()
	for _, p := range []string{"/", "/v1/refusals"} {
		if code, _, _ := do(t, "GET", plain.URL+p, "", nil); code != http.StatusNotFound {
			t.Errorf("without a page: GET %s = %d, want 404", p, code)
		}
	}
}

// TestForTCPStatusPagePassword: over TCP with a token, a browser gives the
// token as basic-auth password, which opens GET / and nothing else.
func TestForTCPStatusPagePassword(t *testing.T) {
	const token = "0123456789abcdef0123"
	srv := httptest.NewServer(ForTCP(Handler(pagerBackend{newFakeBackend()}, prometheus.NewRegistry(), nil), token))
	defer srv.Close()
	basic := func(user, pass string) map[string]string {
		return map[string]string{"Content-Type": "application/json",
			"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}
	}
	code, hdr, _ := do(t, "GET", srv.URL+"/", "", nil)
	if code != http.StatusUnauthorized || !strings.Contains(strings.Join(hdr.Values("WWW-Authenticate"), ","), "Basic ") {
		t.Errorf("GET / without the token = %d %q, want 401 asking for a password", code, hdr.Values("WWW-Authenticate"))
	}
	for _, tc := range []struct {
		method, path string
		h            map[string]string
		want         int
	}{
		{"GET", "/", basic("admin", token), 200},
		{"HEAD", "/", basic("", token), 200},
		{"GET", "/", map[string]string{"Authorization": "Bearer " + token}, 200},
		{"GET", "/", basic("admin", token+"x"), 401},
		{"GET", "/", basic(token, ""), 401},
		{"GET", "/v1/refusals", basic("admin", token), 401},
		{"GET", "/v1/status", basic("admin", token), 401},
		{"POST", "/v1/delist", basic("admin", token), 401},
		{"POST", "/", basic("admin", token), 401},
	} {
		body := ""
		if tc.method == "POST" {
			body = `{"ip": "203.0.113.7"}`
		}
		if code, _, got := do(t, tc.method, srv.URL+tc.path, body, tc.h); code != tc.want {
			t.Errorf("%s %s with %q = %d %s, want %d", tc.method, tc.path, tc.h["Authorization"], code, got, tc.want)
		}
	}
}
