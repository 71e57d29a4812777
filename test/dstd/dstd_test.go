// Package dstd_test runs the built dstc, dstd and dstctl together on
// loopback: a trap hit becomes a listing, and every way a report can be
// refused is refused.
package dstd_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/dkim"
	"github.com/dst-traps/dst/internal/dsttest"
	"github.com/dst-traps/dst/internal/nntp"
	"github.com/dst-traps/dst/internal/report"
)

const lab = "[policy]\nallow_documentation = true\n"

func corpus(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../../internal/received/testdata/mta", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// trapMessage is a message as Postfix on mx1.example.net delivers it, sent
// by client.
func trapMessage(client string) []byte {
	return []byte(fmt.Sprintf("Received: from spam.example (unknown [%s])\r\n\tby mx1.example.net (Postfix) with ESMTP id 1\r\n\tfor <trap@example.net>; %s\r\n"+
		"From: <a@spam.example>\r\nTo: <trap@example.net>\r\nSubject: offer for %s\r\n\r\nbuy\r\n", client, time.Now().Format(time.RFC1123Z), client))
}

func TestTrapHitToListing(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "hook.sh")
	os.WriteFile(script, []byte("#!/bin/sh\ncat > \"$0.stdin\"\nenv | grep '^DST_' | sort > \"$0.env\"\n"), 0o755)
	d := dsttest.NewDstd(t, "site-a.test", lab+"[actions.program]\ncommand = [\""+script+"\"]\n")
	d.Start()

	out, code := d.Dstc(corpus(t, "postfix-direct4.eml"), "-m", "mx1.example.net")
	if code != 0 || !strings.Contains(out, "msg=reported") {
		t.Fatalf("dstc exit %d: %s", code, out)
	}
	out, code = d.Ctl("lookup", "203.0.113.7")
	if code != 0 || !strings.Contains(out, "203.0.113.7") || !strings.Contains(out, "site-a.test") {
		t.Fatalf("dstctl lookup exit %d: %s", code, out)
	}
	if out, code := d.Ctl("lookup", "203.0.113.8"); code != 1 {
		t.Errorf("lookup of an address never reported: exit %d, want 1: %s", code, out)
	}

	dsttest.WaitFor(t, 10*time.Second, "the report log line", func() bool {
		b, _ := os.ReadFile(filepath.Join(d.Dir, "reports.log"))
		return bytes.Contains(b, []byte(" report ip=203.0.113.7 origin=site-a.test"))
	})
	dsttest.WaitFor(t, 10*time.Second, "the program action", func() bool {
		b, _ := os.ReadFile(script + ".env")
		return bytes.Contains(b, []byte("DST_IP=203.0.113.7"))
	})
	stdin, _ := os.ReadFile(script + ".stdin")
	if !bytes.Contains(stdin, []byte("Subject: dst corpus postfix direct4")) {
		t.Errorf("the program did not get the trapped message on stdin: %q", stdin)
	}
	env, _ := os.ReadFile(script + ".env")
	for _, want := range []string{"DST_ORIGIN=site-a.test", "DST_LISTED=yes", "DST_MESSAGE_ID=<"} {
		if !bytes.Contains(env, []byte(want)) {
			t.Errorf("program environment lacks %s:\n%s", want, env)
		}
	}
	if out, code := d.Ctl("status"); code != 0 || !strings.Contains(out, "site-a.test") {
		t.Errorf("dstctl status exit %d: %s", code, out)
	}
}

func TestDuplicateRefused(t *testing.T) {
	d := dsttest.NewDstd(t, "site-a.test", lab)
	d.Start()
	art := newReport(t, "203.0.113.9")
	if err := post(d.Socket(), art); err != nil {
		t.Fatalf("first POST: %v", err)
	}
	err := post(d.Socket(), art)
	var ne *nntp.Error
	if !errors.As(err, &ne) || ne.Code != 441 || !strings.Contains(ne.Text, "duplicate") {
		t.Fatalf("second POST of the same article: %v, want 441 duplicate", err)
	}
	out, _ := d.Ctl("lookup", "203.0.113.9")
	if !strings.Contains(out, "1") {
		t.Errorf("lookup: %s", out)
	}
	if m := metrics(t, d); !strings.Contains(m, `dst_reports_refused_total{reason="duplicate"} 1`) {
		t.Errorf("duplicate not counted:\n%s", grep(m, "dst_reports"))
	}
}

func TestSpecialPurposeNeverListed(t *testing.T) {
	// Default policy: documentation ranges are special-purpose too.
	d := dsttest.NewDstd(t, "site-a.test", "")
	d.Start()
	for _, ip := range []string{"10.1.2.3", "100.64.0.1", "203.0.113.7", "2001:db8::7", "198.18.0.1", "192.168.1.1"} {
		out, code := d.Dstc(trapMessage(ip), "-m", "mx1.example.net")
		if code != 0 || !strings.Contains(out, "dstd refused the report") {
			t.Errorf("%s: dstc exit %d: %s", ip, code, out)
		}
		if out, code := d.Ctl("lookup", ip); code != 1 {
			t.Errorf("%s is listed: %s", ip, out)
		}
	}
	if m := metrics(t, d); !strings.Contains(m, `dst_reports_refused_total{reason="policy"} 6`) {
		t.Errorf("policy refusals not counted:\n%s", grep(m, "dst_reports"))
	}
	if !strings.Contains(d.Log(), "is in 10.0.0.0/8 (Private-Use") {
		t.Error("the log does not say why 10.1.2.3 was refused")
	}
}

// TestPeerSignatures feeds site A with IHAVE from a configured peer, B:
// only articles that B's key signed, unaltered, are listed.
func TestPeerSignatures(t *testing.T) {
	b := dsttest.NewDstd(t, "site-b.test", lab) // never started: only its key is used
	c := dsttest.NewDstd(t, "site-c.test", lab) // a site A does not trust
	bLine, cKey := b.KeyringLine(), c.KeyringLine()
	a := dsttest.NewDstd(t, "site-a.test", lab+"\n[[peer]]\nname = \"site-b.test\"\naddresses = [\"127.0.0.1\"]\n")
	os.MkdirAll(a.Dir, 0o750)
	if err := os.WriteFile(filepath.Join(a.Dir, "keyring"), []byte("# peers\n"+bLine+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a.Start()
	// dstctl keys lists the keyring's keys and the site's own, as keyring
	// lines are written.
	keys := func() string {
		t.Helper()
		out, code := a.Ctl("keys")
		if code != 0 {
			t.Fatalf("dstctl keys: exit %d: %s", code, out)
		}
		return out
	}
	aLine := a.KeyringLine()
	if out := keys(); !containsFields(out, bLine) || !containsFields(out, aLine+" (this site)") || containsFields(out, cKey) {
		t.Errorf("dstctl keys, want B's key and A's own, not C's:\n%s", out)
	}

	bSigner := signer(t, b)
	cSigner := signer(t, c)
	good := sign(t, bSigner, newReport(t, "203.0.113.20"))
	tampered := bytes.Replace(sign(t, bSigner, newReport(t, "203.0.113.21")), []byte("Source-IP: 203.0.113.21"), []byte("Source-IP: 203.0.113.66"), 1)
	unsigned := newReport(t, "203.0.113.22")
	stranger := sign(t, cSigner, newReport(t, "203.0.113.23"))

	for _, tc := range []struct {
		name, ip string
		art      []byte
		code     int
	}{
		{"valid", "203.0.113.20", good, 235},
		{"duplicate offer", "203.0.113.20", good, 435},
		{"tampered Source-IP", "203.0.113.66", tampered, 437},
		{"unsigned", "203.0.113.22", unsigned, 437},
		{"unknown key", "203.0.113.23", stranger, 437},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := dsttest.IHave(t, a.NNTP, tc.art); got != tc.code {
				t.Fatalf("IHAVE answered %d, want %d", got, tc.code)
			}
			out, code := a.Ctl("lookup", tc.ip)
			if listed := code == 0; listed != (tc.code == 235 || tc.code == 435) {
				t.Errorf("lookup %s: exit %d %s", tc.ip, code, out)
			}
			if tc.code == 235 && !strings.Contains(out, "site-b.test") {
				t.Errorf("origin is not site-b.test: %s", out)
			}
		})
	}
	if m := metrics(t, a); !strings.Contains(m, `dst_reports_refused_total{reason="signature"} 3`) {
		t.Errorf("signature refusals not counted:\n%s", grep(m, "dst_reports"))
	}

	// C becomes trusted with a keyring change and SIGHUP.
	kr, _ := os.ReadFile(filepath.Join(a.Dir, "keyring"))
	os.WriteFile(filepath.Join(a.Dir, "keyring"), append(kr, []byte(cKey+"\n")...), 0o644)
	a.Signal(syscall.SIGHUP)
	dsttest.WaitFor(t, 10*time.Second, "the reload", func() bool { return strings.Contains(a.Log(), "configuration reloaded") })
	if got := dsttest.IHave(t, a.NNTP, sign(t, cSigner, newReport(t, "203.0.113.24"))); got != 235 {
		t.Errorf("after SIGHUP, IHAVE of C's report answered %d, want 235", got)
	}
	if out := keys(); !containsFields(out, cKey) {
		t.Errorf("after SIGHUP, dstctl keys does not list C's key:\n%s", out)
	}
}

// containsFields reports whether a line of out has the fields of line,
// whatever the spacing between them.
func containsFields(out, line string) bool {
	want := strings.Join(strings.Fields(line), " ")
	for _, l := range strings.Split(out, "\n") {
		if strings.Join(strings.Fields(l), " ") == want {
			return true
		}
	}
	return false
}

func TestExpiry(t *testing.T) {
	d := dsttest.NewDstd(t, "site-a.test", lab+"[listing]\nexpire = \"2s\"\nmax_expire = \"4s\"\nsweep_interval = \"200ms\"\n")
	d.Start()
	if err := post(d.Socket(), newReport(t, "198.51.100.77")); err != nil {
		t.Fatal(err)
	}
	if _, code := d.Ctl("lookup", "198.51.100.77"); code != 0 {
		t.Fatal("not listed")
	}
	dsttest.WaitFor(t, 15*time.Second, "the listing to expire", func() bool {
		_, code := d.Ctl("lookup", "198.51.100.77")
		return code == 1
	})
	dsttest.WaitFor(t, 10*time.Second, "the expiry line", func() bool {
		b, _ := os.ReadFile(filepath.Join(d.Dir, "reports.log"))
		return bytes.Contains(b, []byte(" expired ip=198.51.100.77"))
	})
}

func TestSpoolPickup(t *testing.T) {
	d := dsttest.NewDstd(t, "site-a.test", lab)
	// dstd is down: dstc spools into dstd's spool directory, which the
	// administrator created at installation.
	if err := os.MkdirAll(filepath.Join(d.Dir, "spool"), 0o770); err != nil {
		t.Fatal(err)
	}
	out, code := d.Dstc(trapMessage("203.0.113.40"), "-m", "mx1.example.net")
	if code != 0 || !strings.Contains(out, "report spooled") {
		t.Fatalf("dstc exit %d: %s", code, out)
	}
	d.Start()
	dsttest.WaitFor(t, 15*time.Second, "the spooled report to be listed", func() bool {
		_, code := d.Ctl("lookup", "203.0.113.40")
		return code == 0
	})
	ents, _ := os.ReadDir(filepath.Join(d.Dir, "spool", "new"))
	if len(ents) != 0 {
		t.Errorf("%d files left in the spool", len(ents))
	}
	// And while it runs.
	os.MkdirAll(filepath.Join(d.Dir, "spool", "tmp"), 0o770)
	cmdOut, code := d.Dstc(trapMessage("203.0.113.41"), "-m", "mx1.example.net", "-s", "127.0.0.1:1")
	if code != 0 {
		t.Fatalf("dstc: %s", cmdOut)
	}
	dsttest.WaitFor(t, 15*time.Second, "a report spooled while dstd runs", func() bool {
		_, code := d.Ctl("lookup", "203.0.113.41")
		return code == 0
	})
}

func TestDelistAndAllow(t *testing.T) {
	d := dsttest.NewDstd(t, "site-a.test", lab)
	d.Start()
	if err := post(d.Socket(), newReport(t, "203.0.113.50")); err != nil {
		t.Fatal(err)
	}
	if out, code := d.Ctl("delist", "-allow", "203.0.113.50"); code != 0 {
		t.Fatalf("delist: %d %s", code, out)
	}
	if _, code := d.Ctl("lookup", "203.0.113.50"); code != 1 {
		t.Fatal("still listed after delist")
	}
	err := post(d.Socket(), newReport(t, "203.0.113.50"))
	var ne *nntp.Error
	if !errors.As(err, &ne) || ne.Code != 441 {
		t.Fatalf("report of an allowed address: %v, want 441", err)
	}
	allow, _ := os.ReadFile(filepath.Join(d.Dir, "allow"))
	if !bytes.Contains(allow, []byte("203.0.113.50")) {
		t.Errorf("allow file: %q", allow)
	}
	// The allow-list survives a restart.
	d.Stop()
	d.Start()
	if err := post(d.Socket(), newReport(t, "203.0.113.50")); err == nil {
		t.Error("an allowed address was listed after a restart")
	}
}

// TestNoConfigFile runs "dstd" with no argument at all, as a user other than
// root so that its default data directory is under XDG_STATE_HOME: it
// creates its directory, key and database, listens on the default port,
// judges a report, and stops cleanly on SIGTERM.
func TestNoConfigFile(t *testing.T) {
	dsttest.RequireRoot(t, "dstd as user nobody")
	// dstc's default spool is /var/spool/dst when it exists: not while
	// test/pkg has the package installed.
	dsttest.LockHost(t, dsttest.HostDirs)
	state := t.TempDir()
	os.Chmod(state, 0o777)
	os.Chmod(filepath.Dir(state), 0o755)
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	var log bytes.Buffer
	cmd := exec.Command(dsttest.Bin(t, "dstd"))
	cmd.Env = []string{"XDG_STATE_HOME=" + state, "PATH=/usr/bin:/bin"}
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("dstd exited with %v after SIGTERM", err)
			}
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Error("dstd did not stop on SIGTERM")
		}
		if t.Failed() {
			t.Logf("dstd log:\n%s", log.String())
		}
	}()
	dir := filepath.Join(state, "dst")
	admin := filepath.Join(dir, "admin.sock")
	dsttest.WaitFor(t, 20*time.Second, "dstd on defaults to answer", func() bool {
		return exec.Command(dsttest.Bin(t, "dstctl"), "-admin", admin, "status").Run() == nil
	})
	for _, f := range []string{"dkim.key", "dst.db", "spool/nntp.sock", "spool/new"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("default data directory: %v", err)
		}
	}
	// With no nntp.submit_group, only dstd's user (and root) may submit:
	// the spool and its socket are its own, whatever dstd's umask.
	for _, d := range []string{"spool", "spool/tmp", "spool/new"} {
		if st, err := os.Stat(filepath.Join(dir, d)); err == nil && st.Mode()&(os.ModePerm|os.ModeSetgid) != 0o700 {
			t.Errorf("%s: mode %v, want drwx------", d, st.Mode())
		}
	}
	if st, err := os.Stat(filepath.Join(dir, "spool", "nntp.sock")); err == nil && st.Mode().Perm() != 0o600 {
		t.Errorf("spool/nntp.sock: mode %v, want srw-------", st.Mode())
	}
	if st, err := os.Stat(admin); err == nil && st.Mode().Perm() != 0o600 {
		t.Errorf("admin.sock: mode %v, want srw-------", st.Mode())
	}
	// Nobody may POST over TCP by default, and the refusal says what to do.
	err = post("127.0.0.1:1119", newReport(t, "10.9.8.7"))
	var ne *nntp.Error
	if !errors.As(err, &ne) || ne.Code != 502 || !strings.Contains(ne.Text, "nntp.post_allow") ||
		!strings.Contains(ne.Text, filepath.Join(dir, "spool", "nntp.sock")) {
		t.Errorf("POST to the default port: %v, want 502 naming nntp.post_allow and the socket", err)
	}
	// dstc run by the same user with no -s nor -spool finds dstd: the
	// socket in the spool of a dstd run by that user on its defaults.
	// Only true when no system spool makes dstc look there instead.
	if _, err := os.Stat("/var/spool/dst"); err == nil {
		t.Log("/var/spool/dst exists: dstc's default as a user without flags is not tested")
		return
	}
	dstc := exec.Command(dsttest.Bin(t, "dstc"), "-log", "stderr", "-m", "mx1.example.net")
	dstc.Env = cmd.Env
	dstc.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	dstc.Stdin = bytes.NewReader(trapMessage("10.9.8.7"))
	out, err := dstc.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "dstd refused the report") || !strings.Contains(string(out), "Private-Use") {
		t.Errorf("dstc with no -s nor -spool as dstd's user: %v, want dstd's 441 Private-Use:\n%s", err, out)
	}
}

// --- helpers

func newReport(t *testing.T, ip string) []byte {
	t.Helper()
	a, err := report.New(report.Hit{SourceIP: netip.MustParseAddr(ip), Arrival: time.Now(), Host: "trap.test",
		UserAgent: "dst-test", Message: trapMessage(ip)})
	if err != nil {
		t.Fatal(err)
	}
	return a.Bytes()
}

func post(addr string, art []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := nntp.Dial(ctx, addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Post(ctx, art)
}

func signer(t *testing.T, d *dsttest.Dstd) *dkim.Signer {
	t.Helper()
	key, err := dkim.LoadPrivateKey(filepath.Join(d.Dir, "dkim.key"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := dkim.NewSigner(d.Site, "dst", key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sign makes art look injected at the signer's site.
func sign(t *testing.T, s *dkim.Signer, art []byte) []byte {
	t.Helper()
	out, err := s.Sign(append([]byte("Path: peer.test!not-for-mail\r\n"), art...))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func metrics(t *testing.T, d *dsttest.Dstd) string {
	t.Helper()
	return d.Metrics()
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
