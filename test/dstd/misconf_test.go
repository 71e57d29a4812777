package dstd_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/dsttest"
)

// These tests are the misconfigurations an administrator used to find
// only by their effects (issue 13): each must be said, at the site that can
// see it, in the log.

// fingerprint is a PEM certificate file's SHA-256 fingerprint as
// `openssl x509 -noout -fingerprint -sha256` prints it.
func fingerprint(t *testing.T, file string) string {
	sum := dsttest.CertSHA256(t, file)
	parts := make([]string, len(sum))
	for i, c := range sum {
		parts[i] = fmt.Sprintf("%02X", c)
	}
	return strings.Join(parts, ":")
}

func lines(log, sub string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}

// A feeds B over STARTTLS with its certificate, but B pins another one
// (A renewed its certificate, B kept the old file): B, the receiver, logs
// it with the peer's name and both fingerprints, and counts it.
func TestPinMismatchLoggedAtReceiver(t *testing.T) {
	dir := t.TempDir()
	aCert, aKey, _ := dsttest.SelfSigned(t, dir, "site-a.test")
	bCert, bKey, _ := dsttest.SelfSigned(t, dir, "site-b.test")
	oldDir := filepath.Join(dir, "old")
	os.Mkdir(oldDir, 0o755)
	stale, _, _ := dsttest.SelfSigned(t, oldDir, "site-a.test") // A's certificate before it renewed it
	a := dsttest.NewDstd(t, "site-a.test", "")
	b := dsttest.NewDstd(t, "site-b.test", "")
	keyring := a.KeyringLine() + "\n" + b.KeyringLine() + "\n"
	a.Reconfigure(fmt.Sprintf("%s[tls]\ncert = %q\nkey = %q\n[[peer]]\nname = \"site-b.test\"\nfeed = %q\ntls = \"starttls\"\nca = %q\nserver_name = \"site-b.test\"\n",
		lab, aCert, aKey, b.NNTP, bCert))
	b.Reconfigure(fmt.Sprintf("%s[tls]\ncert = %q\nkey = %q\n[[peer]]\nname = \"site-a.test\"\naddresses = [\"127.0.0.1\"]\nclient_cert = %q\n",
		lab, bCert, bKey, stale))
	for _, s := range []*dsttest.Dstd{a, b} {
		if err := os.WriteFile(filepath.Join(s.Dir, "keyring"), []byte(keyring), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a.Start()
	b.Start()
	a.Inject("203.0.113.80")
	var warn string
	dsttest.WaitFor(t, 30*time.Second, "B to log the pin mismatch", func() bool {
		if l := lines(b.Log(), "does not match its pin"); len(l) > 0 {
			warn = l[0]
		}
		return warn != ""
	})
	for _, want := range []string{"level=WARN", "peer=site-a.test", "expected_sha256=" + fingerprint(t, stale), "presented_sha256=" + fingerprint(t, aCert)} {
		if !strings.Contains(warn, want) {
			t.Errorf("B's warning lacks %s:\n%s", want, warn)
		}
	}
	if m := grep(b.Metrics(), `dst_nntp_refused_connections_total{reason="peer-cert-mismatch"}`); m == "" || strings.HasSuffix(m, " 0") {
		t.Errorf("the mismatch is not counted: %q", m)
	}
	if _, code := b.Ctl("lookup", "203.0.113.80"); code == 0 {
		t.Error("a peer whose certificate does not match its pin fed B")
	}
}

// B knows A as "site-a.tset": A's reports come in (its address is what
// B checks), but the name is wrong, and B says so once, naming both.
func TestPeerNameMismatchWarned(t *testing.T) {
	a := dsttest.NewDstd(t, "site-a.test", "")
	b := dsttest.NewDstd(t, "site-b.test", "")
	keyring := a.KeyringLine() + "\n" + b.KeyringLine() + "\n"
	a.Reconfigure(fmt.Sprintf("%s[[peer]]\nname = \"site-b.test\"\nfeed = %q\n", lab, b.NNTP))
	b.Reconfigure(lab + "[[peer]]\nname = \"site-a.tset\"\naddresses = [\"127.0.0.1\"]\n")
	for _, s := range []*dsttest.Dstd{a, b} {
		if err := os.WriteFile(filepath.Join(s.Dir, "keyring"), []byte(keyring), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a.Start()
	b.Start()
	for _, ip := range []string{"203.0.113.81", "203.0.113.82"} {
		a.Inject(ip)
		dsttest.WaitFor(t, 30*time.Second, "B to list "+ip, func() bool {
			_, code := b.Ctl("lookup", ip)
			return code == 0
		})
	}
	warns := lines(b.Log(), "matches neither the Path nor the DKIM d=")
	if len(warns) != 1 {
		t.Fatalf("%d warnings about the peer's name, want 1 (once per peer):\n%s", len(warns), strings.Join(warns, "\n"))
	}
	for _, want := range []string{"level=WARN", "peer=site-a.tset", "path_first=site-a.test", "dkim_domain=site-a.test"} {
		if !strings.Contains(warns[0], want) {
			t.Errorf("the warning lacks %s:\n%s", want, warns[0])
		}
	}
	if l := lines(a.Log(), "matches neither the Path"); len(l) > 0 {
		t.Errorf("A, whose peer is named right, warns: %s", l)
	}
}

// A keyring file the configuration names must exist: dstd does not start
// without it, and dstd check says so, both naming the file and the key.
// At SIGHUP a keyring that is gone keeps the running one, with an error;
// keys a reload loses are named; changed keys that need a restart too.
func TestKeyringAndReloadWarnings(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "keyring")
	d := dsttest.NewDstd(t, "site-a.test", fmt.Sprintf("%s[dkim]\nkeyring = %q\n", lab, missing))
	// A dstd that starts anyway is stopped by the timeout, and fails.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, dsttest.Bin(t, "dstd"), "-c", d.Conf).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("dstd with its keyring missing: %v, want exit status 1\n%s", err, out)
	}
	if !strings.Contains(string(out), missing) || !strings.Contains(string(out), "dkim.keyring") {
		t.Errorf("dstd's error does not name the file and the key:\n%s", out)
	}
	out, err = exec.Command(dsttest.Bin(t, "dstd"), "check", "-c", d.Conf).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "error: dkim.keyring: ") || !strings.Contains(string(out), missing) {
		t.Errorf("dstd check with the keyring missing: %v\n%s", err, out)
	}

	peer := dsttest.NewDstd(t, "site-b.test", "") // never started: only its key is used
	if err := os.WriteFile(missing, []byte(peer.KeyringLine()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.Start()
	hup := func(what string, want ...string) string {
		t.Helper()
		before := len(d.Log())
		d.Signal(syscall.SIGHUP)
		var got string
		dsttest.WaitFor(t, 20*time.Second, what, func() bool {
			got = d.Log()[before:]
			for _, w := range want {
				if !strings.Contains(got, w) {
					return false
				}
			}
			return true
		})
		return got
	}
	if err := os.Remove(missing); err != nil {
		t.Fatal(err)
	}
	hup("the reload with the keyring gone to fail", "level=ERROR", "reload failed, keeping the running configuration", missing)
	if out, _ := d.Ctl("keys"); !strings.Contains(out, "site-b.test") {
		t.Errorf("a keyring gone at SIGHUP dropped the running keys:\n%s", out)
	}

	if err := os.WriteFile(missing, []byte("# site-b.test left the network\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := hup("the lost key to be named", "configuration reloaded")
	if l := lines(got, "removed keys from the keyring"); len(l) != 1 || !strings.Contains(l[0], "level=WARN") || !strings.Contains(l[0], "lost=site-b.test/dst") {
		t.Errorf("want one warning naming site-b.test/dst:\n%s", got)
	}

	d.Reconfigure(fmt.Sprintf("%s[dkim]\nkeyring = %q\n[history]\nkeep = \"40d\"\n[nntp]\nmax_connections = 7\n", lab, missing))
	got = hup("the keys needing a restart to be named", "configuration reloaded")
	if l := lines(got, "restart dstd to apply"); len(l) != 1 || !strings.Contains(l[0], "keys=nntp.max_connections,history.keep") {
		t.Errorf("want one warning naming nntp.max_connections and history.keep:\n%s", got)
	}
}
