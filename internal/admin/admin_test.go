package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dst-traps/dst/internal/store"
)

var t0 = time.Date(2026, 11, 29, 10, 10, 10, 0, time.UTC)

// fakeBackend serves fixed data and records delists.
type fakeBackend struct {
	mu       sync.Mutex
	listings map[netip.Addr]store.Listing
	order    []netip.Addr
	delisted []string
	// peerCalls records the PeerControl calls: "refeed site-b.test keyring".
	peerCalls []string
	failList  error // returned by List after the first listing
	fail      error // returned by every other method
	// extra generated listings follow the fixed ones; List then waits
	// for hold to close (if not nil) before it returns.
	extra int
	hold  chan struct{}
}

func newFakeBackend() *fakeBackend {
	b := &fakeBackend{listings: map[netip.Addr]store.Listing{}}
	b.add(store.Listing{IP: netip.MustParseAddr("203.0.113.7"), FirstSeen: t0, LastSeen: t0.Add(time.Hour),
		Expires: t0.Add(25 * time.Hour), Hits: 3, Origins: []string{"site-a.example", "site-b.example"},
		LastMessageID: "<x@site-b.example>"})
	b.add(store.Listing{IP: netip.MustParseAddr("2001:db8::1"), FirstSeen: t0, LastSeen: t0,
		Expires: t0.Add(24 * time.Hour), Hits: 1, Origins: []string{"site-a.example"}, LastMessageID: "<y@site-a.example>"})
	return b
}

func (b *fakeBackend) add(l store.Listing) {
	b.listings[l.IP] = l
	b.order = append(b.order, l.IP)
}

func (b *fakeBackend) Status(context.Context) (Status, error) {
	if b.fail != nil {
		return Status{}, b.fail
	}
	return Status{Version: "0.1.0", Site: "site-a.example", DataDir: "/var/lib/dst", Listen: []string{"[::]:119"},
		Admin: []string{"/var/lib/dst/admin.sock"}, Started: t0, UptimeSeconds: 3723, Listings: 2, Pending: 1,
		History: 10, Articles: 9, DBBytes: 1 << 20, Queues: []QueueStatus{{Name: "log", Depth: 0, Done: 5}}}, nil
}

func (b *fakeBackend) Lookup(_ context.Context, ip netip.Addr) (store.Listing, bool, error) {
	if b.fail != nil {
		return store.Listing{}, false, b.fail
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	l, ok := b.listings[ip]
	return l, ok, nil
}

func (b *fakeBackend) List(ctx context.Context, fn func(store.Listing) error) error {
	b.mu.Lock()
	order := append([]netip.Addr(nil), b.order...)
	b.mu.Unlock()
	for i, ip := range order {
		if i == 1 && b.failList != nil {
			return b.failList
		}
		b.mu.Lock()
		l, ok := b.listings[ip]
		b.mu.Unlock()
		if !ok {
			continue
		}
		if err := fn(l); err != nil {
			return err
		}
	}
	for i := range b.extra {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if err := fn(store.Listing{IP: ip, FirstSeen: t0, LastSeen: t0, Expires: t0.Add(time.Hour), Hits: 1,
			Origins: []string{"site-a.example"}, LastMessageID: fmt.Sprintf("<%d@site-a.example>", i)}); err != nil {
			return err
		}
	}
	if b.hold != nil {
		select {
		case <-b.hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (b *fakeBackend) Cancel(_ context.Context, id string) (CancelResult, error) {
	if b.fail != nil {
		return CancelResult{}, b.fail
	}
	if id != "<r1@site-a.example>" {
		return CancelResult{}, &RequestError{Err: fmt.Errorf("cannot cancel: no accepted report %s", id)}
	}
	return CancelResult{MessageID: id, Cancel: "<c1@site-a.example>", IP: netip.MustParseAddr("203.0.113.7"), Delisted: true}, nil
}

func (b *fakeBackend) Delist(_ context.Context, ip netip.Addr, allow bool) (bool, error) {
	if b.fail != nil {
		return false, b.fail
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.listings[ip]
	delete(b.listings, ip)
	b.delisted = append(b.delisted, fmt.Sprintf("%s allow=%v", ip, allow))
	return ok, nil
}

func (b *fakeBackend) Queues(context.Context) ([]QueueStatus, error) {
	if b.fail != nil {
		return nil, b.fail
	}
	return []QueueStatus{
		{Name: "log", Depth: 0, Done: 5, LastSuccess: t0},
		{Name: "program", Depth: 3, Done: 1, Failures: 7, LastError: "program /x failed with exit status 1", LastErrorTime: t0},
	}, nil
}

func newTestServer(t *testing.T, b Backend) *httptest.Server {
	t.Helper()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: "dst", Subsystem: "test", Name: "things_total", Help: "Things."})
	c.Add(2)
	reg.MustRegister(c)
	srv := httptest.NewServer(Handler(b, reg, nil))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

func errorOf(t *testing.T, body string) string {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
		t.Fatalf("body %q is not {\"error\": ...}", body)
	}
	return e.Error
}

func TestHandlerHealthAndMetrics(t *testing.T) {
	srv := newTestServer(t, newFakeBackend())
	if code, _, body := get(t, srv.URL+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	code, _, body := get(t, srv.URL+"/metrics")
	if code != 200 || !strings.Contains(body, "dst_test_things_total 2") {
		t.Errorf("/metrics = %d:\n%s", code, body)
	}
}

func TestHandlerStatus(t *testing.T) {
	srv := newTestServer(t, newFakeBackend())
	code, h, body := get(t, srv.URL+"/v1/status")
	if code != 200 || h.Get("Content-Type") != "application/json" {
		t.Fatalf("/v1/status = %d %s", code, h.Get("Content-Type"))
	}
	var s Status
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatal(err)
	}
	if s.Site != "site-a.example" || s.Listings != 2 || len(s.Queues) != 1 || !s.Started.Equal(t0) {
		t.Errorf("status = %+v", s)
	}
	if !strings.Contains(body, `"data_dir":"/var/lib/dst"`) {
		t.Errorf("status JSON lacks snake_case data_dir: %s", body)
	}
}

func TestHandlerLookup(t *testing.T) {
	srv := newTestServer(t, newFakeBackend())
	code, _, body := get(t, srv.URL+"/v1/lookup?ip=203.0.113.7")
	if code != 200 {
		t.Fatalf("lookup = %d %s", code, body)
	}
	var l Listing
	if err := json.Unmarshal([]byte(body), &l); err != nil {
		t.Fatal(err)
	}
	if l.IP != netip.MustParseAddr("203.0.113.7") || l.Hits != 3 || len(l.Origins) != 2 || l.LastMessageID != "<x@site-b.example>" {
		t.Errorf("listing = %+v", l)
	}
	// An IPv4-mapped address is the same address.
	if code, _, _ := get(t, srv.URL+"/v1/lookup?ip=::ffff:203.0.113.7"); code != 200 {
		t.Errorf("lookup of the IPv4-mapped form = %d, want 200", code)
	}

	code, _, body = get(t, srv.URL+"/v1/lookup?ip=198.51.100.1")
	if code != 404 || errorOf(t, body) != "198.51.100.1 is not listed" {
		t.Errorf("lookup of unlisted = %d %s", code, body)
	}
	for _, q := range []string{"ip=banana", "ip=", "", "ip=fe80::1%25eth0", "ip=203.0.113.0/24"} {
		code, _, body = get(t, srv.URL+"/v1/lookup?"+q)
		if code != 400 {
			t.Errorf("lookup?%s = %d, want 400", q, code)
		}
		errorOf(t, body)
	}
}

func TestHandlerListingsStreamed(t *testing.T) {
	b := newFakeBackend()
	// Enough listings to pass any buffer; then the backend holds until
	// the test has read them. A handler that gathered the whole list
	// before answering would never let the test read a line.
	b.extra = 5000
	b.hold = make(chan struct{})
	srv := newTestServer(t, b)

	type answer struct {
		resp *http.Response
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := http.Get(srv.URL + "/v1/listings")
		got <- answer{resp, err}
	}()
	var a answer
	select {
	case a = <-got:
	case <-time.After(5 * time.Second):
		close(b.hold)
		t.Fatal("no answer while the backend was still listing: the handler does not stream")
	}
	if a.err != nil {
		t.Fatal(a.err)
	}
	defer a.resp.Body.Close()
	if ct := a.resp.Header.Get("Content-Type"); ct != ListingsContentType {
		t.Errorf("Content-Type %q", ct)
	}
	sc := bufio.NewScanner(a.resp.Body)
	var ls []Listing
	read := func(n int) {
		for len(ls) < n && sc.Scan() {
			var l Listing
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Fatalf("line %q: %v", sc.Text(), err)
			}
			ls = append(ls, l)
		}
	}
	// The tail of the list may wait in the server's buffer until the
	// handler returns, but the head must arrive while the backend holds.
	stalled := time.AfterFunc(5*time.Second, func() { close(b.hold) })
	read(1000)
	if !stalled.Stop() {
		t.Error("the first listings did not arrive while the backend was still listing: the handler does not stream")
	} else {
		close(b.hold)
	}
	read(1 << 30)
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(ls) != 2+b.extra || ls[0].IP != b.order[0] || ls[1].IP != b.order[1] || ls[2].LastMessageID != "<0@site-a.example>" {
		t.Errorf("got %d listings, first %+v", len(ls), ls[:min(3, len(ls))])
	}
}

func TestHandlerListingsErrorMidStream(t *testing.T) {
	b := newFakeBackend()
	b.failList = errors.New("read listings from /var/lib/dst/dst.db: disk I/O error")
	srv := newTestServer(t, b)
	code, _, body := get(t, srv.URL+"/v1/listings")
	lines := strings.Split(strings.TrimSpace(body), "\n")
	if code != 200 || len(lines) != 2 || errorOf(t, lines[1]) != b.failList.Error() {
		t.Errorf("listings = %d:\n%s\nwant one listing, then the error", code, body)
	}
}

func TestHandlerCancel(t *testing.T) {
	c := NewClient(strings.TrimPrefix(newTestServer(t, newFakeBackend()).URL, "http://"))
	defer c.Close()
	r, err := c.Cancel(t.Context(), "<r1@site-a.example>")
	if err != nil || !r.Delisted || r.Cancel != "<c1@site-a.example>" || r.IP != netip.MustParseAddr("203.0.113.7") {
		t.Errorf("Cancel = %+v, %v", r, err)
	}
	_, err = c.Cancel(t.Context(), "<other@site-b.example>")
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 400 || !strings.Contains(ae.Message, "no accepted report") {
		t.Errorf("Cancel of an unknown report: %v, want a 400 that says why", err)
	}
}

func TestHandlerDelist(t *testing.T) {
	b := newFakeBackend()
	srv := newTestServer(t, b)
	post := func(body string) (int, string) {
		resp, err := http.Post(srv.URL+"/v1/delist", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := post(`{"ip": "203.0.113.7", "allow": true}`)
	var r DelistResult
	if err := json.Unmarshal([]byte(body), &r); code != 200 || err != nil {
		t.Fatalf("delist = %d %s", code, body)
	}
	if !r.Delisted || !r.Allowed || r.IP != netip.MustParseAddr("203.0.113.7") {
		t.Errorf("delist result %+v", r)
	}
	code, body = post(`{"ip": "203.0.113.7"}`)
	if err := json.Unmarshal([]byte(body), &r); code != 200 || err != nil || r.Delisted || r.Allowed {
		t.Errorf("second delist = %d %s, want not delisted", code, body)
	}
	if want := "203.0.113.7 allow=true,203.0.113.7 allow=false"; strings.Join(b.delisted, ",") != want {
		t.Errorf("backend saw %v, want %s", b.delisted, want)
	}
	for _, bad := range []string{`{"ip": "nope"}`, `{}`, ``, `{"ip": "203.0.113.7", "allow": "maybe"}`,
		`{"ip": "203.0.113.7", "alow": true}`, `{"ip": "203.0.113.7"} {}`, `ip=203.0.113.7`} {
		code, body = post(bad)
		if code != 400 {
			t.Errorf("delist %s = %d, want 400", bad, code)
		}
		errorOf(t, body)
	}
	if len(b.delisted) != 2 {
		t.Errorf("a bad request reached the backend: %v", b.delisted)
	}
	// The address must be in the POST body, not the URL.
	if code, _, body := get(t, srv.URL+"/v1/delist?ip=203.0.113.7"); code != 405 {
		t.Errorf("GET /v1/delist = %d %s, want 405", code, body)
	}
}

func TestHandlerQueues(t *testing.T) {
	srv := newTestServer(t, newFakeBackend())
	code, _, body := get(t, srv.URL+"/v1/queues")
	var qs []QueueStatus
	if err := json.Unmarshal([]byte(body), &qs); code != 200 || err != nil {
		t.Fatalf("queues = %d %s", code, body)
	}
	if len(qs) != 2 || qs[1].Name != "program" || qs[1].Failures != 7 {
		t.Errorf("queues = %+v", qs)
	}
	if strings.Contains(body, `"last_error_time":"0001`) {
		t.Errorf("zero times should be left out: %s", body)
	}
}

func TestHandlerMethodsAndUnknownPaths(t *testing.T) {
	srv := newTestServer(t, newFakeBackend())
	for _, path := range []string{"/healthz", "/metrics", "/v1/status", "/v1/lookup", "/v1/listings", "/v1/queues"} {
		resp, err := http.Post(srv.URL+path, "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET" {
			t.Errorf("POST %s = %d (Allow %q), want 405 with Allow: GET", path, resp.StatusCode, resp.Header.Get("Allow"))
		}
		errorOf(t, string(body))
	}
	code, _, body := get(t, srv.URL+"/v2/nothing")
	if code != 404 {
		t.Errorf("unknown path = %d", code)
	}
	errorOf(t, body)
}

func TestHandlerBackendErrors(t *testing.T) {
	b := newFakeBackend()
	b.fail = errors.New("read statistics from /var/lib/dst/dst.db: input/output error")
	srv := newTestServer(t, b)
	for _, path := range []string{"/v1/status", "/v1/lookup?ip=203.0.113.7", "/v1/queues"} {
		code, _, body := get(t, srv.URL+path)
		if code != 500 || errorOf(t, body) != b.fail.Error() {
			t.Errorf("%s = %d %s, want 500 with the error", path, code, body)
		}
	}
}

// TestClientOverUnixSocket runs Serve on a socket and every client method
// against it, then checks the graceful stop.
func TestClientOverUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "admin.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	b := newFakeBackend()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, l, Handler(b, prometheus.NewRegistry(), nil)) }()

	c := NewClient(sock)
	defer c.Close()
	if err := c.Health(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := c.Status(ctx)
	if err != nil || s.Version != "0.1.0" {
		t.Errorf("Status = %+v, %v", s, err)
	}
	lst, found, err := c.Lookup(ctx, netip.MustParseAddr("203.0.113.7"))
	if err != nil || !found || lst.Hits != 3 {
		t.Errorf("Lookup = %+v %v %v", lst, found, err)
	}
	if _, found, err := c.Lookup(ctx, netip.MustParseAddr("198.51.100.1")); err != nil || found {
		t.Errorf("Lookup of unlisted = %v %v, want not found and no error", found, err)
	}
	var n int
	if err := c.List(ctx, func(Listing) error { n++; return nil }); err != nil || n != 2 {
		t.Errorf("List: %d listings, %v", n, err)
	}
	stop := errors.New("enough")
	if err := c.List(ctx, func(Listing) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("List with a failing callback = %v, want its error", err)
	}
	r, err := c.Delist(ctx, netip.MustParseAddr("203.0.113.7"), true)
	if err != nil || !r.Delisted || !r.Allowed {
		t.Errorf("Delist = %+v %v", r, err)
	}
	qs, err := c.Queues(ctx)
	if err != nil || len(qs) != 2 {
		t.Errorf("Queues = %+v %v", qs, err)
	}

	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve = %v, want nil after ctx done", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	err = c.Health(context.Background())
	var ue *UnreachableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "is dstd running?") {
		t.Errorf("Health after stop = %v, want UnreachableError", err)
	}
}

func TestClientErrors(t *testing.T) {
	b := newFakeBackend()
	b.failList = errors.New("disk I/O error")
	srv := newTestServer(t, b)
	c := NewClient(strings.TrimPrefix(srv.URL, "http://"))
	defer c.Close()
	err := c.List(context.Background(), func(Listing) error { return nil })
	var apiErr *APIError
	if !errors.As(err, &apiErr) || !strings.Contains(err.Error(), "listing cut short: disk I/O error") {
		t.Errorf("List with a failing backend = %v", err)
	}

	missing := filepath.Join(t.TempDir(), "admin.sock")
	err = NewClient(missing).Health(context.Background())
	want := "cannot reach dstd at " + missing + ": no such file or directory — is dstd running?"
	if err == nil || err.Error() != want {
		t.Errorf("Health on a missing socket = %v\nwant %s", err, want)
	}
}

func (b *fakeBackend) Peers(context.Context) ([]PeerStatus, error) {
	return []PeerStatus{{Name: "site-b.test", Addr: "192.0.2.20:1119", Connected: true, Streaming: true, Depth: 3, Sent: 10}}, nil
}

func TestHandlerPeers(t *testing.T) {
	srv := newTestServer(t, newFakeBackend())
	code, _, body := get(t, srv.URL+"/v1/peers")
	var ps []PeerStatus
	if err := json.Unmarshal([]byte(body), &ps); code != 200 || err != nil {
		t.Fatalf("peers = %d %s", code, body)
	}
	if len(ps) != 1 || ps[0].Name != "site-b.test" || !ps[0].Connected || ps[0].Depth != 3 {
		t.Errorf("peers = %+v", ps)
	}
}

func (b *fakeBackend) Keys(context.Context) ([]KeyStatus, error) {
	return []KeyStatus{{Site: "site-a.test", Selector: "dst", PublicKey: "MCowBQYDK2VwAyEA", Own: true}}, nil
}

func TestHandlerKeys(t *testing.T) {
	srv := newTestServer(t, newFakeBackend())
	code, _, body := get(t, srv.URL+"/v1/keys")
	var ks []KeyStatus
	if err := json.Unmarshal([]byte(body), &ks); code != 200 || err != nil {
		t.Fatalf("keys = %d %s", code, body)
	}
	if len(ks) != 1 || ks[0].Site != "site-a.test" || !ks[0].Own || ks[0].PublicKey != "MCowBQYDK2VwAyEA" {
		t.Errorf("keys = %+v", ks)
	}
}

func (b *fakeBackend) Resync(context.Context) (ResyncResult, error) {
	if b.fail != nil {
		return ResyncResult{}, &RequestError{Err: b.fail}
	}
	return ResyncResult{Wanted: 3, Present: 2, Added: 1}, nil
}

func TestHandlerResync(t *testing.T) {
	b := newFakeBackend()
	srv := newTestServer(t, b)
	resp, err := http.Post(srv.URL+"/v1/resync", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	var r ResyncResult
	err = json.NewDecoder(resp.Body).Decode(&r)
	resp.Body.Close()
	if resp.StatusCode != 200 || err != nil || r.Wanted != 3 || r.Added != 1 {
		t.Errorf("resync = %d %+v %v", resp.StatusCode, r, err)
	}
	b.fail = errors.New("no DNS UPDATE server is configured")
	resp, err = http.Post(srv.URL+"/v1/resync", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("resync without an UPDATE server = %d, want 400", resp.StatusCode)
	}
	if code, _, _ := get(t, srv.URL+"/v1/resync"); code != 405 {
		t.Errorf("GET /v1/resync = %d, want 405", code)
	}
}
