package dstd_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/dsttest"
)

// adminRequest sends one request to a dstd's TCP admin endpoint, with the
// given headers ("Host" sets the Host line), and returns status and body.
func adminRequest(t *testing.T, method, url, body string, header map[string]string) (int, string) {
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
		} else {
			req.Header.Set(k, v)
		}
	}
	hc := http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// browserForm is what a web page's <form method=post
// action=http://127.0.0.1:PORT/v1/delist> makes a browser send.
func browserForm() map[string]string {
	return map[string]string{
		"Content-Type": "application/x-www-form-urlencoded",
		"Origin":       "https://evil.example",
		"Referer":      "https://evil.example/page.html",
	}
}

// TestAdminHTTPNotACrossSiteTarget runs dstd with admin.listen on a
// loopback port, with and without admin.token_file, and sends what a web
// page could make a browser send: none of it reaches the listings, while
// dstctl and a Prometheus scraper still get through.
func TestAdminHTTPNotACrossSiteTarget(t *testing.T) {
	dir := t.TempDir()
	const token = "7f3a9c1e5b2d4f6081a3c5e7092b4d6f"
	tokFile := filepath.Join(dir, "admin.token")
	if err := os.WriteFile(tokFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", dsttest.FreePort(t))
	base := "http://" + addr
	withToken := lab + fmt.Sprintf("[admin]\nlisten = %q\ntoken_file = %q\n", addr, tokFile)
	d := dsttest.NewDstd(t, "site-a.test", withToken)
	d.Start()

	listed := func(ip string) bool {
		t.Helper()
		out, code := d.Ctl("lookup", ip) // over the socket, which needs no token
		if code > 1 {
			t.Fatalf("dstctl lookup %s: exit %d: %s", ip, code, out)
		}
		return code == 0
	}
	list := func(ip string) {
		t.Helper()
		if out, code := d.Dstc(trapMessage(ip), "-m", "mx1.example.net"); code != 0 {
			t.Fatalf("dstc for %s: exit %d: %s", ip, code, out)
		}
		if !listed(ip) {
			t.Fatalf("%s is not listed after its report", ip)
		}
	}
	ctl := func(args ...string) (string, int) {
		t.Helper()
		out, err := exec.Command(dsttest.Bin(t, "dstctl"), args...).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	bearer := "Bearer " + token

	// With a token.
	list("203.0.113.7")
	for _, tc := range []struct {
		what, body string
		header     map[string]string
		want       int
	}{
		{"a browser's form", "ip=203.0.113.7&allow=1", browserForm(), http.StatusUnauthorized},
		{"a form with the token", "ip=203.0.113.7&allow=1",
			map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Authorization": bearer}, http.StatusUnsupportedMediaType},
		{"text/plain JSON with the token", `{"ip": "203.0.113.7", "allow": true}`,
			map[string]string{"Content-Type": "text/plain", "Authorization": bearer}, http.StatusUnsupportedMediaType},
		{"JSON with Origin and the token", `{"ip": "203.0.113.7", "allow": true}`,
			map[string]string{"Content-Type": "application/json", "Origin": "https://evil.example", "Authorization": bearer}, http.StatusForbidden},
		{"JSON without the token", `{"ip": "203.0.113.7", "allow": true}`,
			map[string]string{"Content-Type": "application/json"}, http.StatusUnauthorized},
		{"JSON with a wrong token", `{"ip": "203.0.113.7", "allow": true}`,
			map[string]string{"Content-Type": "application/json", "Authorization": bearer + "0"}, http.StatusUnauthorized},
	} {
		if code, body := adminRequest(t, "POST", base+"/v1/delist", tc.body, tc.header); code != tc.want {
			t.Errorf("POST /v1/delist, %s: %d %s, want %d", tc.what, code, body, tc.want)
		}
	}
	if !listed("203.0.113.7") {
		t.Fatal("a refused request delisted 203.0.113.7")
	}
	if b, _ := os.ReadFile(filepath.Join(d.Dir, "allow")); strings.Contains(string(b), "203.0.113.7") {
		t.Errorf("a refused request added 203.0.113.7 to the allow file:\n%s", b)
	}
	if code, body := adminRequest(t, "GET", base+"/v1/listings", "", nil); code != http.StatusUnauthorized {
		t.Errorf("GET /v1/listings without the token: %d %s, want 401", code, body)
	}
	if code, body := adminRequest(t, "GET", base+"/v1/listings", "", map[string]string{"Authorization": bearer, "Origin": "https://evil.example"}); code != http.StatusForbidden {
		t.Errorf("GET /v1/listings with Origin: %d %s, want 403", code, body)
	}
	// A scraper needs nothing.
	if code, body := adminRequest(t, "GET", base+"/metrics", "", nil); code != 200 || !strings.Contains(body, "dst_store_listings 1") {
		t.Errorf("GET /metrics without a token: %d, want 200 with dst_store_listings 1:\n%.2000s", code, body)
	}
	if code, body := adminRequest(t, "GET", base+"/healthz", "", nil); code != 200 || body != "ok\n" {
		t.Errorf("GET /healthz without a token: %d %q", code, body)
	}

	if out, code := ctl("-admin", addr, "lookup", "203.0.113.7"); code != 4 || !strings.Contains(out, "-token-file") {
		t.Errorf("dstctl over TCP without the token: exit %d: %s; want exit 4 (dstd refused) saying to give -token-file", code, out)
	}
	if out, code := ctl("-admin", addr, "-token-file", tokFile, "delist", "203.0.113.7"); code != 0 || !strings.Contains(out, "203.0.113.7 delisted") {
		t.Errorf("dstctl -token-file delist: exit %d: %s", code, out)
	}
	if listed("203.0.113.7") {
		t.Error("dstctl -token-file delist left the listing")
	}

	// On loopback without a token.
	d.Stop()
	d.Reconfigure(lab + fmt.Sprintf("[admin]\nlisten = %q\n", addr))
	d.Start()
	list("203.0.113.8")
	for _, tc := range []struct {
		what, body string
		header     map[string]string
		want       int
	}{
		{"a browser's form", "ip=203.0.113.8&allow=1", browserForm(), http.StatusForbidden},
		{"a form without Origin", "ip=203.0.113.8&allow=1", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType},
		{"text/plain JSON", `{"ip": "203.0.113.8", "allow": true}`, map[string]string{"Content-Type": "text/plain"}, http.StatusUnsupportedMediaType},
		{"JSON with Origin", `{"ip": "203.0.113.8", "allow": true}`,
			map[string]string{"Content-Type": "application/json", "Origin": "http://" + addr}, http.StatusForbidden},
		{"JSON from a rebound name", `{"ip": "203.0.113.8", "allow": true}`,
			map[string]string{"Content-Type": "application/json", "Host": "rebind.evil.example:" + strings.Split(addr, ":")[1]}, http.StatusForbidden},
	} {
		if code, body := adminRequest(t, "POST", base+"/v1/delist", tc.body, tc.header); code != tc.want {
			t.Errorf("loopback without a token: POST /v1/delist, %s: %d %s, want %d", tc.what, code, body, tc.want)
		}
	}
	if !listed("203.0.113.8") {
		t.Fatal("a refused request delisted 203.0.113.8")
	}
	if b, _ := os.ReadFile(filepath.Join(d.Dir, "allow")); strings.Contains(string(b), "203.0.113.8") {
		t.Errorf("a refused request added 203.0.113.8 to the allow file:\n%s", b)
	}
	if out, code := ctl("-admin", "http://"+addr, "delist", "203.0.113.8"); code != 0 || !strings.Contains(out, "203.0.113.8 delisted") {
		t.Errorf("dstctl over loopback TCP: exit %d: %s", code, out)
	}
	if listed("203.0.113.8") {
		t.Error("dstctl delist over TCP left the listing")
	}
	d.Stop()

	// What dstd refuses to start with. The configuration is checked
	// before anything listens, so 0.0.0.0 is never bound.
	run := func(extra string) (string, int) {
		t.Helper()
		d.Reconfigure(lab + extra)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, dsttest.Bin(t, "dstd"), "-c", d.Conf).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	if out, code := run("[admin]\nlisten = \"0.0.0.0:9\"\n"); code != 1 ||
		!strings.Contains(out, "admin.listen 0.0.0.0:9 is not loopback: set admin.token_file, or listen on 127.0.0.1") {
		t.Errorf("dstd with admin.listen 0.0.0.0 and no token: exit %d: %s", code, out)
	}
	os.Chmod(tokFile, 0o644)
	if out, code := run(fmt.Sprintf("[admin]\nlisten = %q\ntoken_file = %q\n", addr, tokFile)); code != 1 || !strings.Contains(out, "chmod 600 "+tokFile) {
		t.Errorf("dstd with a world-readable token file: exit %d: %s; want exit 1 saying chmod 600", code, out)
	}
}
