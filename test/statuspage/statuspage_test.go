// Package statuspage_test loads dstd's status page in a real browser,
// Debian's chromium headless, from a site that three origins have sent
// reports to, and checks what it shows: the points of each plot, the
// latency, peers and refusals tables, no console error, no request but
// the page's own, and no trap address. It keeps a screenshot.
package statuspage_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/dst-traps/dst/internal/dsttest"
	"github.com/dst-traps/dst/internal/statuspage"
)

const (
	trap  = "page-trap@example.net" // dstc redacts it: the page must never show it
	token = "0123456789abcdef0123456789abcdef"
)

// trapMessage is a message as Postfix on mx1.example.net delivers it to the
// trap, sent by client.
func trapMessage(client string) []byte {
	return []byte(fmt.Sprintf("Received: from spam.example (unknown [%s])\r\n\tby mx1.example.net (Postfix) with ESMTP id 4F1A2\r\n\tfor <%s>; %s\r\n"+
		"From: <a@spam.example>\r\nTo: <%s>\r\nSubject: offer for %s\r\n\r\nbuy\r\n", client, trap, time.Now().Format(time.RFC1123Z), trap, client))
}

// plot is a plot of the page as the browser has it.
type plot struct {
	ID     string `json:"id"`
	Points int    `json:"points"`
	Lines  []struct {
		Name     string `json:"name"`
		Vertices int    `json:"vertices"` // of the polyline, as the browser parsed it
		Values   string `json:"values"`
	} `json:"lines"`
}

func TestStatusPageInChromium(t *testing.T) {
	chromium := dsttest.Require(t, "chromium", "chromium")
	dir := t.TempDir()

	// c.test is the site whose page is read; a.test and b.test feed it
	// and it feeds them.
	a := dsttest.NewDstd(t, "a.test", "")
	b := dsttest.NewDstd(t, "b.test", "")
	c := dsttest.NewDstd(t, "c.test", "")
	sites := []*dsttest.Dstd{a, b, c}
	var keyring strings.Builder
	for _, s := range sites {
		keyring.WriteString(s.KeyringLine() + "\n")
	}
	tokenFile := filepath.Join(dir, "admin.token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	adminAddr := fmt.Sprintf("127.0.0.1:%d", dsttest.FreePort(t))
	const policy = "[policy]\nallow_documentation = true\nthreshold = 1\n"
	peer := func(p *dsttest.Dstd) string {
		return fmt.Sprintf("\n[[peer]]\nname = %q\naddresses = [\"127.0.0.1\"]\nfeed = %q\n", p.Site, p.NNTP)
	}
	a.Reconfigure(policy + peer(c))
	b.Reconfigure(policy + peer(c))
	c.Reconfigure(fmt.Sprintf("[admin]\nlisten = %q\ntoken_file = %q\n\n", adminAddr, tokenFile) + policy + peer(a) + peer(b))
	for _, s := range sites {
		if err := os.WriteFile(filepath.Join(s.Dir, "keyring"), []byte(keyring.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	secret := filepath.Join(dir, "trap-secret")
	if err := os.WriteFile(secret, []byte("5b1f0c2a9e7d4f3c8a6b2d1e0f9c8b7a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, s := range sites {
		s.Start()
	}

	// Reports: two from a.test, three from b.test, one from c.test, each
	// of its own address, so each lists an address at c.test.
	sent := map[*dsttest.Dstd][]string{
		a: {"192.0.2.1", "192.0.2.2"},
		b: {"198.51.100.1", "198.51.100.2", "198.51.100.3"},
		c: {"203.0.113.1"},
	}
	want := map[string]int{}
	var all []string
	for s, ips := range sent {
		for _, ip := range ips {
			if out, code := s.Dstc(trapMessage(ip), "-m", "mx1.example.net", "-r", trap, "-secret", secret); code != 0 {
				t.Fatalf("dstc at %s for %s: exit %d:\n%s", s.Site, ip, code, out)
			}
			want[s.Site]++
			all = append(all, ip)
		}
	}
	for _, ip := range all {
		dsttest.WaitFor(t, 30*time.Second, ip+" listed at c.test", func() bool {
			_, code := c.Ctl("lookup", ip)
			return code == 0
		})
	}
	// Two articles a peer sends and c.test refuses: unsigned, and not in
	// DST's newsgroup.
	unsigned := "Path: a.test!not-for-mail\r\nFrom: DST <dst@a.test>\r\nNewsgroups: dst.reports\r\nSubject: report\r\n" +
		"Message-ID: <unsigned@a.test>\r\nDate: " + time.Now().UTC().Format(time.RFC1123Z) + "\r\n\r\nbody\r\n"
	if code := dsttest.IHave(t, c.NNTP, []byte(unsigned)); code != 437 {
		t.Fatalf("IHAVE of an unsigned article = %d, want 437", code)
	}
	if code := dsttest.IHave(t, c.NNTP, []byte(strings.Replace(strings.Replace(unsigned, "dst.reports", "misc.test", 1), "<unsigned@", "<elsewhere@", 1))); code != 437 {
		t.Fatalf("IHAVE of an article of another group = %d, want 437", code)
	}

	base := "http://" + adminAddr
	checkRefused(t, base)

	// The browser: a fresh profile, and nothing that would connect out.
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox, // root has no user namespace sandbox
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("no-pings", true),
		chromedp.WindowSize(1200, 900),
	)
	defer cancelAlloc()

	var (
		mu       sync.Mutex
		problems []string // console errors, exceptions, error log entries
		requests []string // every URL the page loaded
		auths    int      // password prompts answered
	)
	var ctx context.Context
	// The listener runs in the loop that reads the tab's messages: it
	// notes, and leaves the commands that answer a paused request to a
	// goroutine.
	listener := func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				problems = append(problems, fmt.Sprintf("console %s: %v", ev.Type, ev.Args))
			}
		case *runtime.EventExceptionThrown:
			problems = append(problems, fmt.Sprintf("exception: %s", ev.ExceptionDetails.Text))
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError || ev.Entry.Level == log.EntryLevelWarning {
				problems = append(problems, fmt.Sprintf("log %s (%s): %s %s", ev.Entry.Level, ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		case *network.EventRequestWillBeSent:
			requests = append(requests, ev.Request.URL)
		case *fetch.EventRequestPaused:
			go answer(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
		case *fetch.EventAuthRequired:
			// The password prompt an administrator answers: any user
			// name, the admin token.
			auths++
			go answer(ctx, fetch.ContinueWithAuth, fetch.ContinueWithAuthParams{RequestID: ev.RequestID,
				AuthChallengeResponse: &fetch.AuthChallengeResponse{
					Response: fetch.AuthChallengeResponseResponseProvideCredentials, Username: "admin", Password: token}})
		}
	}
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithListener(listener))
	defer cancelCtx()
	// The first command starts the browser; its context must not have a
	// deadline (it would end the browser), the later ones do.
	if _, err := chromedp.Call(ctx, runtime.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	tctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelTimeout()
	handleAuth := true
	for _, step := range []func() error{
		func() error { _, err := chromedp.Call(tctx, log.Enable, cdp.Empty{}); return err },
		func() error { _, err := chromedp.Call(tctx, network.Enable, network.EnableParams{}); return err },
		func() error {
			_, err := chromedp.Call(tctx, fetch.Enable, fetch.EnableParams{HandleAuthRequests: &handleAuth})
			return err
		},
		func() error {
			return chromedp.Do(tctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible("#listings-day"))
		},
	} {
		if err := step(); err != nil {
			t.Fatalf("chromium: %v", err)
		}
	}
	html, err := chromedp.Run(tctx, chromedp.OuterHTML("html"))
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	plots, err := chromedp.Run(tctx, chromedp.Evaluate[[]plot](`Array.from(document.querySelectorAll("svg.plot")).map(s => ({
		id: s.id, points: +s.dataset.points,
		lines: Array.from(s.querySelectorAll("polyline")).map(p => ({name: p.dataset.name, vertices: p.points.numberOfItems, values: p.dataset.values}))}))`))
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	latent, err := chromedp.Run(tctx, chromedp.Evaluate[map[string]int](
		`Object.fromEntries(Array.from(document.querySelectorAll("#latency tbody tr")).map(r => [r.dataset.origin, +r.dataset.n]))`))
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	peers, err := chromedp.Run(tctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#peers tbody tr")).map(r => r.dataset.peer)`))
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	// What the peers fed c.test: a.test its 2 reports, b.test its 3. On
	// one address (127.0.0.1, both), a session is known by the first
	// peer's name until it authenticates: only the sum is a's and b's.
	fedUs, err := chromedp.Run(tctx, chromedp.Evaluate[map[string]int](
		`Object.fromEntries(Array.from(document.querySelectorAll("#peers tbody tr")).map(r => [r.dataset.peer, +r.dataset.accepted]))`))
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	refuse, err := chromedp.Run(tctx, chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("#refusals tbody tr")).map(r => r.dataset.label + " " + r.textContent)`))
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	shot := screenshotPath(t)
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the status page: %s", shot)

	mu.Lock()
	defer mu.Unlock()
	if auths == 0 {
		t.Error("the browser was never asked for the token")
	}
	if len(problems) > 0 {
		t.Errorf("the page made console errors or warnings:\n%s", strings.Join(problems, "\n"))
	}
	for _, u := range requests {
		if u != base+"/" && !strings.HasPrefix(u, "data:") {
			t.Errorf("the page loaded %s: it must load nothing but itself", u)
		}
	}
	if strings.Contains(strings.ToLower(html), trap) {
		t.Errorf("the page shows the trap address %s", trap)
	}

	byID := map[string]plot{}
	for _, p := range plots {
		byID[p.ID] = p
	}
	listed := float64(len(all))
	for id, n := range map[string]int{
		"listings-day":       int(statuspage.ListingsDay/statuspage.ListingsDayStep) + 1,
		"listings-fortnight": int(statuspage.ListingsFortnight/statuspage.ListingsFortnightStep) + 1,
	} {
		p, ok := byID[id]
		if !ok || len(p.Lines) != 1 {
			t.Errorf("plot %s: %+v, want one line", id, p)
			continue
		}
		vs := values(t, p.Lines[0].Values)
		if p.Points != n || p.Lines[0].Vertices != n || len(vs) != n {
			t.Errorf("plot %s: data-points %d, %d vertices, %d values; want %d", id, p.Points, p.Lines[0].Vertices, len(vs), n)
			continue
		}
		// The site started empty a moment ago: nothing listed at the
		// start of either period, every address at its end.
		if vs[0] != 0 || vs[n-1] != listed {
			t.Errorf("plot %s: first value %v, last %v; want 0 and %v", id, vs[0], vs[n-1], listed)
		}
	}
	rp := byID["reports"]
	if rp.Points != len(want)*statuspage.ReportHours || len(rp.Lines) != len(want) {
		t.Errorf("reports plot: data-points %d, %d lines; want %d lines of %d points", rp.Points, len(rp.Lines), len(want), statuspage.ReportHours)
	}
	for _, l := range rp.Lines {
		sum := 0.0
		for _, v := range values(t, l.Values) {
			sum += v
		}
		if l.Vertices != statuspage.ReportHours || int(sum) != want[l.Name] {
			t.Errorf("reports of %s: %d points adding up to %v; want %d points adding up to %d", l.Name, l.Vertices, sum, statuspage.ReportHours, want[l.Name])
		}
	}
	if fmt.Sprint(latent) != fmt.Sprint(want) {
		t.Errorf("latency table: reports per origin %v, want %v", latent, want)
	}
	if strings.Join(peers, ",") != "a.test,b.test" {
		t.Errorf("peers table: %v, want a.test and b.test", peers)
	}
	if fedUs["a.test"]+fedUs["b.test"] != 5 {
		t.Errorf("peers table, reports accepted from the peers: %v, want 5 in all (a.test's 2 and b.test's 3)", fedUs)
	}
	if len(refuse) != 2 || !strings.HasPrefix(refuse[0], "malformed ") || !strings.Contains(refuse[0], "<elsewhere@a.test>") ||
		!strings.HasPrefix(refuse[1], "signature ") || !strings.Contains(refuse[1], "<unsigned@a.test>") {
		t.Errorf("refusals table: %q, want the malformed article then the unsigned one", refuse)
	}
}

// answer sends the command that lets a paused request go on; it fails
// only as the browser closes.
func answer[P any](ctx context.Context, cmd cdp.Command[P, cdp.Empty], params P) {
	_, _ = chromedp.Call(ctx, cmd, params)
}

// checkRefused: without the token, with a wrong one, or with the token
// as password anywhere but GET /, the admin listener refuses; the page
// asks a browser for a password.
func checkRefused(t *testing.T, base string) {
	t.Helper()
	do := func(method, path, auth string) (int, http.Header) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	basic := func(pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+pass))
	}
	code, h := do("GET", "/", "")
	if code != http.StatusUnauthorized || !strings.Contains(strings.Join(h.Values("WWW-Authenticate"), "\n"), "Basic ") {
		t.Errorf("GET / without the token = %d, WWW-Authenticate %q; want 401 asking for a password", code, h.Values("WWW-Authenticate"))
	}
	for _, tc := range []struct{ method, path, auth string }{
		{"GET", "/", basic("wrong-token-0123456789abcdef")},
		{"GET", "/v1/refusals", ""},
		{"GET", "/v1/refusals", basic(token)},
		{"GET", "/v1/listings", basic(token)},
		{"POST", "/v1/resync", basic(token)},
	} {
		if code, _ := do(tc.method, tc.path, tc.auth); code != http.StatusUnauthorized {
			t.Errorf("%s %s with Authorization %q = %d, want 401", tc.method, tc.path, tc.auth, code)
		}
	}
	if code, h := do("GET", "/", basic(token)); code != 200 || !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("GET / with the token as password = %d, CSP %q; want 200 with default-src 'none'", code, h.Get("Content-Security-Policy"))
	}
	if code, _ := do("GET", "/v1/refusals", "Bearer "+token); code != 200 {
		t.Errorf("GET /v1/refusals with the token = %d, want 200", code)
	}
	if code, _ := do("GET", "/nothing-here", "Bearer "+token); code != http.StatusNotFound {
		t.Errorf("GET /nothing-here = %d, want 404", code)
	}
}

// values reads a data-values attribute.
func values(t *testing.T, s string) []float64 {
	t.Helper()
	var out []float64
	for _, f := range strings.Fields(s) {
		var v float64
		if _, err := fmt.Sscan(f, &v); err != nil {
			t.Fatalf("value %q: %v", f, err)
		}
		out = append(out, v)
	}
	return out
}

// screenshotPath is where the screenshot goes: $DST_TEST_ARTIFACTS, which
// CI keeps, or the temporary directory, which outlives the test.
func screenshotPath(t *testing.T) string {
	dir := os.Getenv("DST_TEST_ARTIFACTS")
	if dir == "" {
		dir = os.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "dst-statuspage-"+time.Now().UTC().Format("20060102T150405")+".png")
}
