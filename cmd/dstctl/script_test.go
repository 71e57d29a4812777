package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dst-traps/dst/internal/admin"
	"github.com/dst-traps/dst/internal/config"
)

// named is a fake dstd that says which one it is in its status, to tell
// which endpoint dstctl reached.
type named struct {
	*backend
	site string
}

func (n named) Status(ctx context.Context) (admin.Status, error) {
	s, err := n.backend.Status(ctx)
	s.Site = n.site
	return s, err
}

// ctlIn runs dstctl with systemConfig in place of /etc/dst/dstd.toml.
func ctlIn(t *testing.T, systemConfig string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	c := &cli{stdout: &out, stderr: &errOut, systemConfig: systemConfig}
	code = c.run(context.Background(), args)
	return code, out.String(), errOut.String()
}

// writeConf writes a dstd configuration whose admin table is admin.
func writeConf(t *testing.T, admin string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "dstd.toml")
	conf := fmt.Sprintf("site = \"site-a.test\"\ndata_dir = %q\n[admin]\n%s\n", filepath.Join(dir, "data"), admin)
	if err := os.WriteFile(p, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEndpointPrecedence: -admin, else $DSTCTL_ADMIN, else -c's
// admin.socket, else the system configuration's, else the default.
func TestEndpointPrecedence(t *testing.T) {
	flagSock := serve(t, named{newBackend(), "by-flag.test"})
	envSock := serve(t, named{newBackend(), "by-env.test"})
	confSock := serve(t, named{newBackend(), "by-conf.test"})
	sysSock := serve(t, named{newBackend(), "by-system-conf.test"})
	conf := writeConf(t, fmt.Sprintf("socket = %q", confSock))
	sysConf := writeConf(t, fmt.Sprintf("socket = %q", sysSock))

	for _, tc := range []struct {
		name, env string
		args      []string
		want      string
	}{
		{"-admin over everything", envSock, []string{"-admin", flagSock, "-c", conf}, "by-flag.test"},
		{"$DSTCTL_ADMIN over -c", envSock, []string{"-c", conf}, "by-env.test"},
		{"-c", "", []string{"-c", conf}, "by-conf.test"},
		{"the system configuration", "", nil, "by-system-conf.test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(adminEnv, tc.env)
			code, out, errOut := ctlIn(t, sysConf, append(tc.args, "-json", "status")...)
			var s admin.Status
			if err := json.Unmarshal([]byte(out), &s); code != exitOK || err != nil || s.Site != tc.want {
				t.Errorf("exit %d, site %q (%v), stderr %q; want dstd %s", code, s.Site, err, errOut, tc.want)
			}
		})
	}

	// Errors name where the address came from.
	t.Setenv(adminEnv, "")
	gone := writeConf(t, fmt.Sprintf("socket = %q", filepath.Join(t.TempDir(), "gone.sock")))
	code, _, errOut := ctlIn(t, sysConf, "-c", gone, "status")
	if code != exitUnreachable || !strings.Contains(errOut, "(admin.socket of "+gone+")") {
		t.Errorf("-c naming a socket nobody serves: exit %d, %q; want exit %d naming -c's file", code, errOut, exitUnreachable)
	}
	t.Setenv(adminEnv, filepath.Join(t.TempDir(), "gone.sock"))
	code, _, errOut = ctlIn(t, sysConf, "status")
	if code != exitUnreachable || !strings.Contains(errOut, "($DSTCTL_ADMIN)") {
		t.Errorf("$DSTCTL_ADMIN naming a socket nobody serves: exit %d, %q", code, errOut)
	}
}

// TestSystemConfigInvalid: an invalid /etc/dst/dstd.toml does not stop
// dstctl; it tries the default and says why.
func TestSystemConfigInvalid(t *testing.T) {
	t.Setenv(adminEnv, "")
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	sock := config.FirstAdminSocket(nil) // the cli of the tests has no system sockets
	if _, err := os.Stat(sock); err == nil {
		t.Skipf("%s exists: a dstd runs here", sock)
	}
	bad := filepath.Join(t.TempDir(), "dstd.toml")
	os.WriteFile(bad, []byte("site = \n"), 0o600)
	code, _, errOut := ctlIn(t, bad, "status")
	if code != exitUnreachable || !strings.Contains(errOut, sock+" (the default; "+bad+" exists but it is not valid") {
		t.Errorf("exit %d, %q", code, errOut)
	}
	// Given with -c, the same file is an error of its own.
	code, _, errOut = ctlIn(t, bad, "-c", bad, "status")
	if code != exitLocal || !strings.Contains(errOut, "-c: config "+bad) {
		t.Errorf("-c with an invalid file: exit %d, %q; want exit %d", code, errOut, exitLocal)
	}
	code, _, errOut = ctlIn(t, bad, "-c", filepath.Join(t.TempDir(), "missing.toml"), "status")
	if code != exitLocal || !strings.Contains(errOut, "no such file") {
		t.Errorf("-c with a missing file: exit %d, %q; want exit %d", code, errOut, exitLocal)
	}
}

// TestTokenFromConfig: over TCP, the token is read from the admin.token_file
// of the configuration -c names, when no -token-file is given.
func TestTokenFromConfig(t *testing.T) {
	const token = "c0ffee0123456789c0ffee0123456789"
	addr := serveTCP(t, newBackend(), token)
	tokFile := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(tokFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := writeConf(t, fmt.Sprintf("listen = %q\ntoken_file = %q", addr, tokFile))
	t.Setenv(tokenFileEnv, "")
	t.Setenv(adminEnv, addr)
	if code, out, errOut := ctlIn(t, "", "-c", conf, "status"); code != exitOK || !strings.Contains(out, "site-a.example") {
		t.Errorf("$DSTCTL_ADMIN on TCP with -c's token: exit %d, %q %q", code, out, errOut)
	}
	if code, _, errOut := ctlIn(t, "", "status"); code != exitRefused || !strings.Contains(errOut, "missing admin token") {
		t.Errorf("without -c, no token: exit %d, %q; want exit %d", code, errOut, exitRefused)
	}
	os.Chmod(tokFile, 0o644)
	if code, _, errOut := ctlIn(t, "", "-c", conf, "status"); code != exitLocal || !strings.Contains(errOut, "admin.token_file of "+conf) {
		t.Errorf("an unsafe token file from -c: exit %d, %q; want exit %d naming its source", code, errOut, exitLocal)
	}
}

// TestExitCodes: every exit status, each from a real case, and each the
// same with -json, whose errors are JSON on stderr.
func TestExitCodes(t *testing.T) {
	t.Setenv(adminEnv, "")
	t.Setenv(tokenFileEnv, "")
	sock := serve(t, newBackend())
	const token = "c0ffee0123456789c0ffee0123456789"
	tcp := serveTCP(t, newBackend(), token)
	badTok := filepath.Join(t.TempDir(), "admin.token")
	os.WriteFile(badTok, []byte(token+"\n"), 0o666)
	os.Chmod(badTok, 0o666)
	for _, tc := range []struct {
		name   string
		args   []string
		want   int
		status int // dstd's HTTP status in the JSON error
	}{
		{"listed", []string{"-admin", sock, "lookup", "203.0.113.7"}, exitOK, 0},
		{"not listed", []string{"-admin", sock, "lookup", "198.51.100.1"}, exitNo, 0},
		{"no report held", []string{"-admin", sock, "why", "198.51.100.1"}, exitNo, 0},
		{"unknown command", []string{"-admin", sock, "frobnicate"}, exitUsage, 0},
		{"bad address", []string{"-admin", sock, "lookup", "nonsense"}, exitUsage, 0},
		{"unknown flag", []string{"-admin", sock, "list", "-x"}, exitUsage, 0},
		{"unreachable", []string{"-admin", filepath.Join(t.TempDir(), "none.sock"), "status"}, exitUnreachable, 0},
		{"refused: unknown report", []string{"-admin", sock, "cancel", "<nope@site-a.example>"}, exitRefused, 400},
		{"refused: no token", []string{"-admin", tcp, "status"}, exitRefused, 401},
		{"local: unsafe token file", []string{"-admin", tcp, "-token-file", badTok, "status"}, exitLocal, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := ctlIn(t, "", tc.args...)
			if code != tc.want {
				t.Errorf("dstctl %q: exit %d, want %d; stderr %q", tc.args, code, tc.want, errOut)
			}
			code, _, errOut = ctlIn(t, "", append([]string{"-json"}, tc.args...)...)
			if code != tc.want {
				t.Errorf("dstctl -json %q: exit %d, want %d; stderr %q", tc.args, code, tc.want, errOut)
			}
			if tc.want < exitUsage {
				if errOut != "" {
					t.Errorf("dstctl -json %q: stderr %q, want nothing", tc.args, errOut)
				}
				return
			}
			var e jsonError
			lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
			if err := json.Unmarshal([]byte(errOut), &e); err != nil || len(lines) != 1 || e.Exit != tc.want || e.Error == "" || e.HTTPStatus != tc.status {
				t.Errorf("dstctl -json %q: stderr %q (%v); want one JSON error with exit %d and http_status %d", tc.args, errOut, err, tc.want, tc.status)
			}
		})
	}
}

// TestJSON: -json, before or after the command, prints the admin API's
// answer: what the client decodes equals what the fake dstd gave.
func TestJSON(t *testing.T) {
	b := newBackend()
	sock := serve(t, b)
	ctx := context.Background()
	want := func(v any, err error) any {
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	cl := admin.NewClient(sock)
	defer cl.Close()
	st, _ := b.Status(ctx)
	l, _, _ := cl.Lookup(ctx, netip.MustParseAddr("203.0.113.7"))
	for _, tc := range []struct {
		args []string
		want any
	}{
		{[]string{"status"}, st},
		{[]string{"lookup", "203.0.113.7"}, l},
		{[]string{"queues"}, want(b.Queues(ctx))},
		{[]string{"peers"}, want(b.Peers(ctx))},
		{[]string{"keys"}, want(b.Keys(ctx))},
		{[]string{"origins"}, want(b.Origins(ctx))},
		{[]string{"why", "203.0.113.7"}, want(b.Why(ctx, netip.MustParseAddr("203.0.113.7")))},
		{[]string{"why", "198.51.100.1"}, admin.WhyResult{IP: netip.MustParseAddr("198.51.100.1"), Reports: []admin.WhyReport{}}},
		{[]string{"resync"}, want(b.Resync(ctx))},
		{[]string{"cancel", "<r1@site-a.example>"}, want(b.Cancel(ctx, "<r1@site-a.example>"))},
		{[]string{"delist", "-allow", "198.51.100.9"}, admin.DelistResult{IP: netip.MustParseAddr("198.51.100.9"), Allowed: true}},
	} {
		for _, args := range [][]string{append([]string{"-json"}, tc.args...), append(append([]string(nil), tc.args...), "-json")} {
			code, out, errOut := ctlIn(t, "", append([]string{"-admin", sock}, args...)...)
			if code > exitNo || strings.Count(out, "\n") != 1 {
				t.Errorf("dstctl %q: exit %d, %q, stdout:\n%s\nwant one line of JSON", args, code, errOut, out)
				continue
			}
			got := reflect.New(reflect.TypeOf(tc.want))
			if err := json.Unmarshal([]byte(out), got.Interface()); err != nil {
				t.Errorf("dstctl %q: %v:\n%s", args, err, out)
				continue
			}
			// Compare through JSON: times and empty lists as the API gives them.
			g, _ := json.Marshal(got.Elem().Interface())
			w, _ := json.Marshal(tc.want)
			if !bytes.Equal(g, w) {
				t.Errorf("dstctl %q:\n got %s\nwant %s", args, g, w)
			}
		}
	}
	code, out, _ := ctlIn(t, "", "-admin", sock, "-json", "lookup", "198.51.100.1")
	if code != exitNo || out != "" {
		t.Errorf("lookup -json of an unlisted address: exit %d, stdout %q; want exit 1 and nothing", code, out)
	}
	code, out, _ = ctlIn(t, "", "-json", "version")
	var v versionInfo
	if err := json.Unmarshal([]byte(out), &v); code != exitOK || err != nil || v.Program != "dstctl" || v.Version == "" {
		t.Errorf("-json version: exit %d, %v, %q", code, err, out)
	}
	// list: JSON lines, one listing each, with -json on either side.
	for _, args := range [][]string{{"-json", "list"}, {"list", "-json"}} {
		code, out, _ := ctlIn(t, "", append([]string{"-admin", sock}, args...)...)
		var l admin.Listing
		if err := json.Unmarshal([]byte(out), &l); code != exitOK || err != nil || l.IP.String() != "203.0.113.7" {
			t.Errorf("dstctl %q: exit %d, %v:\n%s", args, code, err, out)
		}
	}
}

// TestUsageListsExitCodes: help names every exit status a script may see.
func TestUsageListsExitCodes(t *testing.T) {
	code, out, _ := ctlIn(t, "", "help")
	for _, s := range []string{"0  done; yes", "1  no: not listed", "2  usage", "3  dstd unreachable", "4  dstd refused or failed", "5  local error", "$DSTCTL_ADMIN", "-json"} {
		if code != exitOK || !strings.Contains(out, s) {
			t.Errorf("dstctl help (exit %d) does not say %q:\n%s", code, s, out)
		}
	}
}
