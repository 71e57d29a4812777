package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/admin"
	"github.com/dst-traps/dst/internal/buildinfo"
	"github.com/dst-traps/dst/internal/config"
	"github.com/dst-traps/dst/internal/store"
)

var t0 = time.Date(2026, 11, 29, 10, 10, 10, 0, time.UTC)

// backend is a fake dstd with one listing.
type backend struct {
	mu       sync.Mutex
	listings map[netip.Addr]store.Listing
	allowed  []netip.Addr
}

func newBackend() *backend {
	ip := netip.MustParseAddr("203.0.113.7")
	return &backend{listings: map[netip.Addr]store.Listing{ip: {IP: ip, FirstSeen: t0, LastSeen: t0.Add(time.Hour),
		Expires: t0.Add(25 * time.Hour), Hits: 3, Origins: []string{"site-a.example", "site-b.example"},
		LastMessageID: "<x@site-b.example>"}}}
}

func (b *backend) Status(context.Context) (admin.Status, error) {
	return admin.Status{Version: "0.1.0", Site: "site-a.example", DataDir: "/var/lib/dst", Listen: []string{"[::]:119"},
		Admin: []string{"/var/lib/dst/admin.sock"}, Started: t0, UptimeSeconds: 3723, Listings: 1, Pending: 2,
		History: 10, Articles: 9, DBBytes: 3 << 20, Queues: []admin.QueueStatus{{Name: "log", Depth: 4}}}, nil
}

func (b *backend) Lookup(_ context.Context, ip netip.Addr) (store.Listing, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	l, ok := b.listings[ip]
	return l, ok, nil
}

func (b *backend) List(_ context.Context, fn func(store.Listing) error) error {
	b.mu.Lock()
	var ls []store.Listing
	for _, l := range b.listings {
		ls = append(ls, l)
	}
	b.mu.Unlock()
	for _, l := range ls {
		if err := fn(l); err != nil {
			return err
		}
	}
	return nil
}

func (b *backend) Cancel(_ context.Context, id string) (admin.CancelResult, error) {
	switch id {
	case "<r1@site-a.example>":
		return admin.CancelResult{MessageID: id, Cancel: "<c1@site-a.example>", IP: netip.MustParseAddr("203.0.113.7"), Delisted: true}, nil
	case "<r2@site-a.example>":
		return admin.CancelResult{MessageID: id, Cancel: "<c2@site-a.example>", IP: netip.MustParseAddr("203.0.113.8"),
			Listed: true, Origins: []string{"site-b.example"}}, nil
	}
	return admin.CancelResult{}, &admin.RequestError{Err: fmt.Errorf("cannot cancel: no accepted report %s in the history of this site", id)}
}

func (b *backend) Delist(_ context.Context, ip netip.Addr, allow bool) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.listings[ip]
	delete(b.listings, ip)
	if allow {
		b.allowed = append(b.allowed, ip)
	}
	return ok, nil
}

func (b *backend) Queues(context.Context) ([]admin.QueueStatus, error) {
	return []admin.QueueStatus{
		{Name: "log", Depth: 0, Done: 5, LastSuccess: t0},
		{Name: "program", Depth: 3, Failures: 7, LastError: "program /usr/local/bin/hook failed with exit status 1;\nits stderr: \"boom\"", LastErrorTime: t0},
	}, nil
}

// serve runs an admin endpoint on a socket in a temporary directory and
// returns the socket's path.
func serve(t *testing.T, b admin.Backend) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "admin.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- admin.Serve(ctx, l, admin.Handler(b, nil, nil)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("admin.Serve: %v", err)
		}
	})
	return sock
}

func dstctl(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestStatus(t *testing.T) {
	sock := serve(t, newBackend())
	code, out, errOut := dstctl(t, "-admin", sock, "status")
	if code != 0 {
		t.Fatalf("status: exit %d, stderr %s", code, errOut)
	}
	for _, want := range []string{
		"dstd            0.1.0\n",
		"site            site-a.example\n",
		"up since        2026-11-29T10:10:10Z (1h2m3s)\n",
		"database        3.0 MiB\n",
		"queue log       4 waiting\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
}

func TestLookup(t *testing.T) {
	sock := serve(t, newBackend())
	code, out, _ := dstctl(t, "-admin", sock, "lookup", "203.0.113.7")
	want := `203.0.113.7 is listed
  since            2026-11-29T10:10:10Z
  until            2026-11-30T11:10:10Z
  last report      2026-11-29T11:10:10Z
  hits             3
  origins          site-a.example, site-b.example
  last Message-ID  <x@site-b.example>
`
	if code != 0 || out != want {
		t.Errorf("lookup: exit %d, output:\n%s\nwant exit 0 and:\n%s", code, out, want)
	}

	code, out, _ = dstctl(t, "-admin", sock, "lookup", "198.51.100.1")
	if code != 1 || out != "198.51.100.1 is not listed\n" {
		t.Errorf("lookup of unlisted: exit %d, output %q; want exit 1", code, out)
	}
	code, _, errOut := dstctl(t, "-admin", sock, "lookup", "not-an-ip")
	if code != 2 || !strings.Contains(errOut, `"not-an-ip" is not an IPv4 or IPv6 address`) {
		t.Errorf("lookup of a bad address: exit %d, stderr %q; want exit 2", code, errOut)
	}
}

func TestList(t *testing.T) {
	sock := serve(t, newBackend())
	code, out, _ := dstctl(t, "-admin", sock, "list")
	want := "203.0.113.7      until 2026-11-30T11:10:10Z  hits 3     site-a.example,site-b.example  <x@site-b.example>\n"
	if code != 0 || out != want {
		t.Errorf("list: exit %d:\n%q\nwant:\n%q", code, out, want)
	}
	code, out, _ = dstctl(t, "-admin", sock, "list", "-json")
	var l admin.Listing
	if err := json.Unmarshal([]byte(out), &l); code != 0 || err != nil || l.Hits != 3 {
		t.Errorf("list -json: exit %d, %v:\n%s", code, err, out)
	}
}

func TestDelist(t *testing.T) {
	b := newBackend()
	sock := serve(t, b)
	code, out, _ := dstctl(t, "-admin", sock, "delist", "-allow", "203.0.113.7")
	if code != 0 || out != "203.0.113.7 delisted and added to the allow list\n" {
		t.Errorf("delist -allow: exit %d, %q", code, out)
	}
	if len(b.allowed) != 1 {
		t.Errorf("backend allowed %v", b.allowed)
	}
	code, out, _ = dstctl(t, "-admin", sock, "delist", "203.0.113.7")
	if code != 0 || out != "203.0.113.7 was not listed; nothing to do\n" {
		t.Errorf("second delist: exit %d, %q", code, out)
	}
	code, out, _ = dstctl(t, "-admin", sock, "lookup", "203.0.113.7")
	if code != 1 {
		t.Errorf("lookup after delist: exit %d, %q", code, out)
	}
	if code, _, _ := dstctl(t, "-admin", sock, "delist"); code != 2 {
		t.Errorf("delist without an address: exit %d, want 2", code)
	}
}

func TestCancel(t *testing.T) {
	sock := serve(t, newBackend())
	code, out, _ := dstctl(t, "-admin", sock, "cancel", "<r1@site-a.example>")
	if want := "cancelled <r1@site-a.example> (report about 203.0.113.7): delisted here; cancel <c1@site-a.example> sent to the peers\n"; code != 0 || out != want {
		t.Errorf("cancel: exit %d, %q, want %q", code, out, want)
	}
	code, out, _ = dstctl(t, "-admin", sock, "cancel", "r2@site-a.example")
	if code != 0 || !strings.Contains(out, "still listed by site-b.example") {
		t.Errorf("cancel without brackets: exit %d, %q", code, out)
	}
	code, _, errOut := dstctl(t, "-admin", sock, "cancel", "<nope@site-a.example>")
	if code != exitRefused || !strings.Contains(errOut, "no accepted report") {
		t.Errorf("cancel of an unknown report: exit %d, %q", code, errOut)
	}
}

func TestQueues(t *testing.T) {
	sock := serve(t, newBackend())
	code, out, _ := dstctl(t, "-admin", sock, "queues")
	want := `QUEUE    WAITING  DONE  FAILURES  LAST SUCCESS          LAST ERROR
log      0        5     0         2026-11-29T10:10:10Z  -
program  3        0     7         -                     2026-11-29T10:10:10Z program /usr/local/bin/hook failed with exit status 1; its stderr: "boom"
`
	if code != 0 || out != want {
		t.Errorf("queues: exit %d:\n%s\nwant:\n%s", code, out, want)
	}
}

func TestCannotReach(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "admin.sock")
	code, out, errOut := dstctl(t, "-admin", sock, "status")
	want := "dstctl: cannot reach dstd at " + sock + ": no such file or directory — is dstd running?\n"
	if code != 3 || errOut != want || out != "" {
		t.Errorf("status with no dstd: exit %d, stderr %q; want exit 3 and %q", code, errOut, want)
	}

	// A stale socket file, left by a crashed dstd.
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	code, _, errOut = dstctl(t, "-admin", sock, "lookup", "203.0.113.7")
	want = "dstctl: cannot reach dstd at " + sock + ": connection refused — is dstd running?\n"
	if code != 3 || errOut != want {
		t.Errorf("lookup on a stale socket: exit %d, stderr %q; want exit 3 and %q", code, errOut, want)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"-bogus", "status"}, {"status", "extra"}, {"list", "-x"}} {
		if code, _, errOut := dstctl(t, args...); code != 2 || errOut == "" {
			t.Errorf("dstctl %q: exit %d, stderr %q; want exit 2 and a message", args, code, errOut)
		}
	}
	if code, out, _ := dstctl(t, "version"); code != 0 || out != buildinfo.Line("dstctl")+"\n" {
		t.Errorf("version: exit %d, %q", code, out)
	}
	if code, out, _ := dstctl(t, "help"); code != 0 || !strings.Contains(out, "usage: dstctl") {
		t.Errorf("help: exit %d, %q", code, out)
	}
}

func TestDefaultAddressIsTheDataDirSocket(t *testing.T) {
	// Non-root users get a data directory under XDG_STATE_HOME; root
	// always gets /var/lib/dst, where a real dstd may be running.
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	sock := config.FirstAdminSocket(nil) // the cli of the tests has no system sockets
	if _, err := os.Stat(sock); err == nil {
		t.Skipf("%s exists: a dstd runs here", sock)
	}
	var out, errBuf bytes.Buffer
	c := &cli{stdout: &out, stderr: &errBuf, systemConfig: filepath.Join(t.TempDir(), "none.toml")}
	t.Setenv(adminEnv, "")
	code, errOut := c.run(context.Background(), []string{"status"}), errBuf.String()
	if code != 3 || !strings.Contains(errOut, "cannot reach dstd at "+sock+" (the default: give -admin, $DSTCTL_ADMIN or -c):") {
		t.Errorf("status with the default address: exit %d, %q; want exit 3 naming %s", code, errOut, sock)
	}
}

func (b *backend) Keys(context.Context) ([]admin.KeyStatus, error) {
	return []admin.KeyStatus{
		{Site: "site-a.test", Selector: "dst", PublicKey: "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", Own: true},
		{Site: "site-b.test", Selector: "dst2", PublicKey: "GDHoA48ZYDxGgiDmO7Oj0DAEJLbE+7TTvRKhbhqOkUo="},
	}, nil
}

func TestKeys(t *testing.T) {
	sock := serve(t, newBackend())
	code, out, _ := dstctl(t, "-admin", sock, "keys")
	want := `SITE         SELECTOR  PUBLIC KEY
site-a.test  dst       11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=  (this site)
site-b.test  dst2      GDHoA48ZYDxGgiDmO7Oj0DAEJLbE+7TTvRKhbhqOkUo=
`
	if code != 0 || out != want {
		t.Errorf("keys: exit %d:\n%q\nwant:\n%q", code, out, want)
	}
}

func (b *backend) Resync(context.Context) (admin.ResyncResult, error) {
	return admin.ResyncResult{Wanted: 5, Present: 6, Added: 1, Fixed: 1, Removed: 2}, nil
}

func TestResync(t *testing.T) {
	sock := serve(t, newBackend())
	code, out, _ := dstctl(t, "-admin", sock, "resync")
	want := "DNS UPDATE zone resynchronised: 5 listings, 6 names were in the zone; 1 added, 1 fixed, 2 removed\n"
	if code != 0 || out != want {
		t.Errorf("resync: exit %d: %q, want %q", code, out, want)
	}
}

// serveTCP runs an admin endpoint on a loopback port that wants token, as
// dstd's admin.listen with admin.token_file, and returns its host:port.
func serveTCP(t *testing.T, b admin.Backend, token string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- admin.Serve(ctx, l, admin.ForTCP(admin.Handler(b, nil, nil), token)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("admin.Serve: %v", err)
		}
	})
	return l.Addr().String()
}

func TestTokenFile(t *testing.T) {
	const token = "c0ffee0123456789c0ffee0123456789"
	b := newBackend()
	addr := serveTCP(t, b, token)
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "admin.token")
	if err := os.WriteFile(tokFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(tokenFileEnv, "")

	code, _, errOut := dstctl(t, "-admin", addr, "delist", "203.0.113.7")
	if code != exitRefused || !strings.Contains(errOut, "-token-file") {
		t.Errorf("delist without the token: exit %d, %q; want exit %d saying to give -token-file", code, errOut, exitRefused)
	}
	if _, ok, _ := b.Lookup(context.Background(), netip.MustParseAddr("203.0.113.7")); !ok {
		t.Fatal("delisted without the token")
	}
	code, out, errOut := dstctl(t, "-admin", "http://"+addr, "-token-file", tokFile, "delist", "203.0.113.7")
	if code != 0 || !strings.Contains(out, "203.0.113.7 delisted") {
		t.Errorf("delist with -token-file: exit %d, %q %q", code, out, errOut)
	}
	t.Setenv(tokenFileEnv, tokFile)
	if code, out, errOut := dstctl(t, "-admin", addr, "status"); code != 0 || !strings.Contains(out, "site-a.example") {
		t.Errorf("status with $%s: exit %d, %q %q", tokenFileEnv, code, out, errOut)
	}

	wrong := filepath.Join(dir, "wrong.token")
	os.WriteFile(wrong, []byte("not-the-token-0123456789\n"), 0o600)
	if code, _, errOut := dstctl(t, "-admin", addr, "-token-file", wrong, "status"); code != exitRefused || !strings.Contains(errOut, "wrong admin token") {
		t.Errorf("status with a wrong token: exit %d, %q", code, errOut)
	}
	if err := os.Chmod(tokFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := dstctl(t, "-admin", addr, "status"); code != exitLocal || !strings.Contains(errOut, "chmod 600 "+tokFile) {
		t.Errorf("a world-readable token file: exit %d, %q; want exit %d saying chmod 600", code, errOut, exitLocal)
	}
}
