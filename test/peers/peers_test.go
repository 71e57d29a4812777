// Package peers_test runs dstctl peers against real dstd sites: a peer
// refuses reports for a keyring reason, its administrator fixes the
// keyring, and dstctl peers refeed gets them listed there; flush and test
// against a live and a dead peer; the incoming side with its TLS state;
// and who may use the commands that change something.
package peers_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/admin"
	"github.com/dst-traps/dst/internal/dsttest"
)

func listed(s *dsttest.Dstd, ip string) bool {
	_, code := s.Ctl("lookup", ip)
	return code == 0
}

// peersOf is dstctl peers -json at s, by peer name.
func peersOf(t *testing.T, s *dsttest.Dstd) map[string]admin.PeerStatus {
	t.Helper()
	out, code := s.Ctl("peers", "-json")
	if code != 0 {
		t.Fatalf("dstctl peers -json at %s: exit %d: %s", s.Site, code, out)
	}
	var ps []admin.PeerStatus
	if err := json.Unmarshal([]byte(out), &ps); err != nil {
		t.Fatalf("dstctl peers -json at %s: %v:\n%s", s.Site, err, out)
	}
	m := map[string]admin.PeerStatus{}
	for _, p := range ps {
		m[p.Name] = p
	}
	return m
}

func refusals(rs []admin.RefusalCount, reason string) int64 {
	for _, r := range rs {
		if r.Reason == reason {
			return r.Count
		}
	}
	return 0
}

// ctlAs runs dstctl against s's admin socket as u.
func ctlAs(t *testing.T, u *dsttest.User, s *dsttest.Dstd, args ...string) (string, int) {
	t.Helper()
	cmd := u.Command(dsttest.Bin(t, "dstctl"), append([]string{"-admin", s.Admin}, args...)...)
	cmd.Dir = "/"
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("dstctl as %s: %v", u.Name, err)
	}
	return out.String(), 0
}

// TestRefeedAfterKeyringFix: A feeds B over STARTTLS with its client
// certificate; B's keyring lacks A's key, so B refuses A's report (439)
// and A keeps it. B's administrator adds the key and reloads (SIGHUP);
// A's administrator runs dstctl peers refeed, and B lists the report.
// Meanwhile: B shows A as an incoming peer with its TLS state, A's
// dstctl peers test and flush work against B and fail against a dead
// peer, and only who may use the admin socket may refeed.
func TestRefeedAfterKeyringFix(t *testing.T) {
	dsttest.RequireRoot(t, "users with and without the admin group, to check who may refeed")
	adminG, adminGID := dsttest.NewGroup(t, "padm")
	operator := dsttest.NewUser(t, "popr", adminG)
	stranger := dsttest.NewUser(t, "pstr")

	dir := t.TempDir()
	aCert, aKey, _ := dsttest.SelfSigned(t, dir, "site-a.test")
	bCert, bKey, _ := dsttest.SelfSigned(t, dir, "site-b.test")
	a := dsttest.NewDstd(t, "site-a.test", "")
	b := dsttest.NewDstd(t, "site-b.test", "")
	dead := fmt.Sprintf("127.0.0.1:%d", dsttest.FreePort(t)) // nothing listens there
	a.Reconfigure(fmt.Sprintf(`[policy]
allow_documentation = true
[admin]
group = %q
[tls]
cert = %q
key = %q
[[peer]]
name = "site-b.test"
feed = %q
tls = "starttls"
ca = %q
server_name = "site-b.test"
[[peer]]
name = "site-dead.test"
feed = %q
`, adminG, aCert, aKey, b.NNTP, bCert, dead))
	b.Reconfigure(fmt.Sprintf(`[policy]
allow_documentation = true
[tls]
cert = %q
key = %q
[[peer]]
name = "site-a.test"
addresses = ["127.0.0.1"]
client_cert = %q
`, bCert, bKey, aCert))
	aLine, bLine := a.KeyringLine(), b.KeyringLine()
	if err := os.WriteFile(filepath.Join(a.Dir, "keyring"), []byte(aLine+"\n"+bLine+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// B's administrator forgot A's key.
	if err := os.WriteFile(filepath.Join(b.Dir, "keyring"), []byte(bLine+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The test's temporary directories stand for /var/lib: anyone may
	// pass through them to A's data directory, which dstd gives to the
	// admin group.
	for _, d := range []string{filepath.Dir(filepath.Dir(a.Dir)), filepath.Dir(a.Dir)} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	// install -d -m 0710 -g ADMIN-GROUP /var/lib/dst, as docs/ADMIN.md
	// says (dstd keygen made it already).
	if err := os.Chown(a.Dir, 0, int(adminGID)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(a.Dir, 0o710); err != nil {
		t.Fatal(err)
	}
	a.Start()
	b.Start()

	const ip = "203.0.113.90"
	a.Inject(ip)
	dsttest.WaitFor(t, 30*time.Second, "A to keep the report B refused for a keyring reason", func() bool {
		p := peersOf(t, a)["site-b.test"]
		return p.Kept == 1 && refusals(p.Refusals, "keyring") == 1
	})
	out, _ := a.Ctl("peers")
	for _, want := range []string{"site-b.test refused: keyring 1 (last: 439 signature: no key in the keyring",
		"1 refused reports kept", "dstctl peers refeed site-b.test"} {
		if !strings.Contains(out, want) {
			t.Errorf("dstctl peers at A lacks %q:\n%s", want, out)
		}
	}

	// B sees A feeding it, under TLS with A's certificate, and what it
	// refused.
	aSum := dsttest.CertSHA256(t, aCert)
	aFP := hex.EncodeToString(aSum[:])
	dsttest.WaitFor(t, 20*time.Second, "B to show A's session", func() bool {
		in := peersOf(t, b)["site-a.test"].Incoming
		return in != nil && len(in.Connections) > 0
	})
	in := peersOf(t, b)["site-a.test"].Incoming
	c := in.Connections[0]
	if c.TLS.State != "tls" || c.TLS.Version == "" || c.TLS.CertSHA256 != aFP || !strings.HasPrefix(c.Addr, "127.0.0.1:") {
		t.Errorf("A's session at B: %+v; want TLS with A's certificate %s", c, aFP)
	}
	if refusals(in.Refusals, "keyring") != 1 || in.Accepted != 0 || in.LastSeen.IsZero() {
		t.Errorf("A's incoming record at B: %+v; want one keyring refusal", in)
	}
	if out, _ := b.Ctl("peers"); !strings.Contains(out, "site-a.test from 127.0.0.1:") || !strings.Contains(out, "certificate sha256:"+aFP) {
		t.Errorf("dstctl peers at B does not show A's TLS session:\n%s", out)
	}

	// test: a round trip to the live peer, and to the dead one.
	out, code := a.Ctl("peers", "test", "site-b.test")
	if code != 0 || !strings.Contains(out, "CHECK") || !strings.Contains(out, "site-b.test at "+b.NNTP+": ok") || !strings.Contains(out, "TLS") {
		t.Errorf("dstctl peers test site-b.test: exit %d:\n%s", code, out)
	}
	out, code = a.Ctl("peers", "test", "site-dead.test")
	if code != 1 || !strings.Contains(out, "connect") || !strings.Contains(out, "FAILED") || !strings.Contains(out, "connection refused") {
		t.Errorf("dstctl peers test site-dead.test: exit %d, want 1:\n%s", code, out)
	}
	if _, code := a.Ctl("peers", "test", "site-nope.test"); code != 4 {
		t.Errorf("dstctl peers test of an unknown peer: exit %d, want 4 (dstd refused the request)", code)
	}

	// flush: the dead peer's feed waits to reconnect; flush cuts it
	// short (its log says so). The live one has nothing to wait for.
	dsttest.WaitFor(t, 20*time.Second, "the dead peer's feed to back off", func() bool {
		return !peersOf(t, a)["site-dead.test"].RetryAt.IsZero()
	})
	if out, code := a.Ctl("peers", "flush", "site-dead.test"); code != 0 || !strings.Contains(out, "flushed") {
		t.Errorf("dstctl peers flush site-dead.test: exit %d:\n%s", code, out)
	}
	dsttest.WaitFor(t, 20*time.Second, "A to reconnect at once", func() bool {
		return strings.Contains(a.Log(), "reconnecting now: the administrator flushed the feed")
	})
	if out, code := a.Ctl("peers", "flush", "site-b.test"); code != 0 || !strings.Contains(out, "0 deferred reports due") {
		t.Errorf("dstctl peers flush site-b.test: exit %d:\n%s", code, out)
	}

	// Who may: a local user without the admin group cannot reach the
	// socket; a member of the group may.
	for _, args := range [][]string{{"peers", "refeed", "site-b.test"}, {"peers", "flush", "site-b.test"}, {"peers", "test", "site-b.test"}} {
		if out, code := ctlAs(t, stranger, a, args...); code != 3 || !strings.Contains(out, "permission denied") {
			t.Errorf("dstctl %s as a user without %s: exit %d, want 3 (permission denied):\n%s", strings.Join(args, " "), adminG, code, out)
		}
	}
	if p := peersOf(t, a)["site-b.test"]; p.Kept != 1 {
		t.Fatalf("after the refused attempts, %d reports kept, want 1", p.Kept)
	}

	// Refeeding before the fix only gets the same refusal, and the report
	// is kept again: B did not remember it as refused for good.
	if out, code := a.Ctl("peers", "refeed", "site-b.test"); code != 0 || !strings.Contains(out, "1 refused reports offered again") {
		t.Errorf("dstctl peers refeed before the fix: exit %d:\n%s", code, out)
	}
	dsttest.WaitFor(t, 30*time.Second, "B to refuse the refed report again, and A to keep it", func() bool {
		p := peersOf(t, a)["site-b.test"]
		return p.Kept == 1 && refusals(p.Refusals, "keyring") == 2
	})
	if listed(b, ip) {
		t.Fatal("B lists the report before it has A's key")
	}

	// B's administrator adds A's key and reloads.
	if err := os.WriteFile(filepath.Join(b.Dir, "keyring"), []byte(bLine+"\n"+aLine+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b.Signal(syscall.SIGHUP)
	dsttest.WaitFor(t, 20*time.Second, "B to load A's key", func() bool {
		out, _ := b.Ctl("keys")
		return strings.Contains(out, "site-a.test")
	})
	out, code = ctlAs(t, operator, a, "peers", "refeed", "-reason", "keyring", "site-b.test")
	if code != 0 || !strings.Contains(out, "1 reports refused for a keyring reason offered again to site-b.test") {
		t.Fatalf("dstctl peers refeed as a member of %s: exit %d:\n%s", adminG, code, out)
	}
	dsttest.WaitFor(t, 30*time.Second, "B to list the refed report", func() bool { return listed(b, ip) })
	p := peersOf(t, a)["site-b.test"]
	if p.Kept != 0 || p.Sent != 1 {
		t.Errorf("A's feed to B after the refeed: %+v; want nothing kept, one sent", p)
	}
	if in := peersOf(t, b)["site-a.test"].Incoming; in.Accepted != 1 {
		t.Errorf("B's record of A after the refeed: %+v; want one accepted", in)
	}
}
