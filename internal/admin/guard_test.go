package admin

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// do sends one request with the given headers and returns its status and
// body.
func do(t *testing.T, method, url, body string, header map[string]string) (int, http.Header, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// v1Routes are every /v1/ route with a request that would succeed.
var v1Routes = []struct{ method, path, body string }{
	{"GET", "/v1/status", ""},
	{"GET", "/v1/lookup?ip=203.0.113.7", ""},
	{"GET", "/v1/listings", ""},
	{"GET", "/v1/queues", ""},
	{"GET", "/v1/peers", ""},
	{"GET", "/v1/keys", ""},
	{"POST", "/v1/delist", `{"ip": "203.0.113.7"}`},
	{"POST", "/v1/cancel", `{"id": "<r1@site-a.example>"}`},
	{"POST", "/v1/resync", `{}`},
	{"POST", "/v1/peers/refeed", `{"peer": "site-b.test", "reason": "keyring"}`},
	{"POST", "/v1/peers/flush", `{"peer": "site-b.test"}`},
	{"POST", "/v1/peers/test", `{"peer": "site-b.test"}`},
}

// TestOriginRefused: whatever a web page sends, cross-site or not, carries
// Origin on a POST; no /v1/ route answers it, GET ones included (a page
// must not learn the listings either).
func TestOriginRefused(t *testing.T) {
	b := newFakeBackend()
	srv := newTestServer(t, b)
	for _, origin := range []string{"https://evil.example", "null", srv.URL} {
		for _, rt := range v1Routes {
			code, _, body := do(t, rt.method, srv.URL+rt.path, rt.body,
				map[string]string{"Origin": origin, "Content-Type": "application/json"})
			if code != http.StatusForbidden {
				t.Errorf("%s %s with Origin %s = %d %s, want 403", rt.method, rt.path, origin, code, body)
				continue
			}
			if msg := errorOf(t, body); !strings.Contains(msg, "web page") {
				t.Errorf("%s %s: error %q does not say why", rt.method, rt.path, msg)
			}
		}
	}
	if len(b.delisted) != 0 || len(b.peerCalls) != 0 {
		t.Errorf("a request with Origin delisted %v or controlled peers %v", b.delisted, b.peerCalls)
	}
	// Read-only and answered to anyone: a page cannot read them across
	// origins anyway, and a scraper must not need anything.
	for _, path := range []string{"/healthz", "/metrics"} {
		if code, _, body := do(t, "GET", srv.URL+path, "", map[string]string{"Origin": "https://evil.example"}); code != 200 {
			t.Errorf("GET %s with Origin = %d %s, want 200", path, code, body)
		}
	}
	// Without Origin, each route works: the refusals above were Origin's.
	for _, rt := range v1Routes {
		if code, _, body := do(t, rt.method, srv.URL+rt.path, rt.body, map[string]string{"Content-Type": "application/json"}); code != 200 {
			t.Errorf("%s %s = %d %s, want 200", rt.method, rt.path, code, body)
		}
	}
}

// TestNonJSONPostRefused: an HTML form can send only form-encoded,
// multipart or text/plain bodies; none reaches the backend.
func TestNonJSONPostRefused(t *testing.T) {
	b := newFakeBackend()
	srv := newTestServer(t, b)
	forms := map[string]string{
		"application/x-www-form-urlencoded": "ip=203.0.113.7&allow=1",
		"multipart/form-data; boundary=x":   "--x\r\nContent-Disposition: form-data; name=\"ip\"\r\n\r\n203.0.113.7\r\n--x--\r\n",
		"text/plain":                        `{"ip": "203.0.113.7", "allow": true}`, // enctype=text/plain can forge JSON
		"":                                  `{"ip": "203.0.113.7"}`,
		"application/jsonx":                 `{"ip": "203.0.113.7"}`,
	}
	for _, path := range []string{"/v1/delist", "/v1/cancel", "/v1/resync", "/v1/peers/refeed", "/v1/peers/flush", "/v1/peers/test"} {
		for ct, body := range forms {
			h := map[string]string{}
			if ct != "" {
				h["Content-Type"] = ct
			}
			code, _, answer := do(t, "POST", srv.URL+path, body, h)
			if code != http.StatusUnsupportedMediaType || !strings.Contains(errorOf(t, answer), "application/json") {
				t.Errorf("POST %s as %q = %d %s, want 415 naming application/json", path, ct, code, answer)
			}
		}
	}
	if len(b.delisted) != 0 || len(b.peerCalls) != 0 {
		t.Errorf("a form delisted %v or controlled peers %v", b.delisted, b.peerCalls)
	}
	code, _, body := do(t, "POST", srv.URL+"/v1/delist", `{"ip": "203.0.113.7", "allow": true}`,
		map[string]string{"Content-Type": "application/json; charset=utf-8"})
	if code != 200 || len(b.delisted) != 1 {
		t.Errorf("JSON delist = %d %s (backend saw %v), want 200", code, body, b.delisted)
	}
}

func newTCPServer(t *testing.T, b Backend, token string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(ForTCP(Handler(b, prometheus.NewRegistry(), nil), token))
	t.Cleanup(srv.Close)
	return srv
}

func TestForTCPToken(t *testing.T) {
	const token = "0123456789abcdef0123"
	b := newFakeBackend()
	srv := newTCPServer(t, b, token)
	for _, rt := range v1Routes {
		for _, auth := range []string{"", "Bearer wrong-token-0123456789", "Bearer " + token + "x", token, "Basic " + token} {
			h := map[string]string{"Content-Type": "application/json"}
			if auth != "" {
				h["Authorization"] = auth
			}
			code, hdr, body := do(t, rt.method, srv.URL+rt.path, rt.body, h)
			if code != http.StatusUnauthorized || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s %s with Authorization %q = %d %s, want 401", rt.method, rt.path, auth, code, body)
				continue
			}
			if msg := errorOf(t, body); !strings.Contains(msg, "token") {
				t.Errorf("401 error %q does not mention the token", msg)
			}
		}
		h := map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + token}
		if code, _, body := do(t, rt.method, srv.URL+rt.path, rt.body, h); code != 200 {
			t.Errorf("%s %s with the token = %d %s, want 200", rt.method, rt.path, code, body)
		}
		// The token does not let a web page in.
		h["Origin"] = "https://evil.example"
		if code, _, body := do(t, rt.method, srv.URL+rt.path, rt.body, h); code != http.StatusForbidden {
			t.Errorf("%s %s with the token and Origin = %d %s, want 403", rt.method, rt.path, code, body)
		}
	}
	if want := []string{"203.0.113.7 allow=false"}; strings.Join(b.delisted, ",") != want[0] {
		t.Errorf("backend saw delists %v, want only the one with the token", b.delisted)
	}
	if len(b.peerCalls) != 3 {
		t.Errorf("backend saw peer controls %v, want only the three with the token", b.peerCalls)
	}
	for _, path := range []string{"/healthz", "/metrics"} {
		if code, _, body := do(t, "GET", srv.URL+path, "", map[string]string{"Host": "prometheus.example:9100"}); code != 200 {
			t.Errorf("GET %s without a token = %d %s, want 200", path, code, body)
		}
	}

	// The client, given an http:// address as dstctl's -admin may be.
	c := NewClient(srv.URL, WithToken(token))
	defer c.Close()
	if r, err := c.Delist(t.Context(), netip.MustParseAddr("2001:db8::1"), true); err != nil || !r.Delisted {
		t.Errorf("Delist with the token = %+v, %v", r, err)
	}
	if _, err := c.Resync(t.Context()); err != nil {
		t.Errorf("Resync with the token: %v", err)
	}
	nc := NewClient(srv.URL)
	defer nc.Close()
	_, err := nc.Status(t.Context())
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 401 || !strings.Contains(err.Error(), "-token-file") {
		t.Errorf("Status without a token = %v, want a 401 that says to give -token-file", err)
	}
}

// TestForTCPNoTokenHost: without a token the listener is on loopback, and
// a page whose name now resolves to 127.0.0.1 (DNS rebinding) is the one
// sender left; its Host gives it away.
func TestForTCPNoTokenHost(t *testing.T) {
	srv := newTCPServer(t, newFakeBackend(), "")
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	for host, want := range map[string]int{
		"127.0.0.1:" + port:           200,
		"localhost:" + port:           200,
		"LOCALHOST":                   200,
		"[::1]:" + port:               200,
		"rebind.evil.example:" + port: 403,
		"evil.example":                403,
	} {
		if code, _, body := do(t, "GET", srv.URL+"/v1/status", "", map[string]string{"Host": host}); code != want {
			t.Errorf("Host %s: /v1/status = %d %s, want %d", host, code, body, want)
		}
	}
	if code, _, _ := do(t, "GET", srv.URL+"/metrics", "", map[string]string{"Host": "evil.example"}); code != 200 {
		t.Errorf("/metrics by name = %d, want 200", code)
	}
}

func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, content string
		mode          os.FileMode
		want          string // token, or a piece of the error
		ok            bool
	}{
		{"good", "0123456789abcdef0123\n", 0o600, "0123456789abcdef0123", true},
		{"group-readable", "  0123456789abcdef0123  \r\nignored\n", 0o640, "0123456789abcdef0123", true},
		{"world-readable", "0123456789abcdef0123\n", 0o644, "chmod 600", false},
		{"group-writable", "0123456789abcdef0123\n", 0o620, "chmod 600", false},
		{"short", "secret\n", 0o600, "shorter than 16", false},
		{"empty", "", 0o600, "shorter than 16", false},
		{"two-words", "0123456789abcdef 0123456789abcdef\n", 0o600, "one word", false},
	} {
		got, err := ReadTokenFile(write(tc.name, tc.content, tc.mode))
		switch {
		case tc.ok && (err != nil || got != tc.want):
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		case !tc.ok && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %q, %v; want an error that says %q", tc.name, got, err, tc.want)
		}
	}
	if _, err := ReadTokenFile(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: %v", err)
	}
	if _, err := ReadTokenFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %v, want ErrNotExist", err)
	}
}
