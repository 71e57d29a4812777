// Package pkg tests the Debian package as an administrator meets it: it
// builds it with scripts/package.sh, installs it with dpkg -i, checks the
// accounts, files, owners and modes, the unit (systemd-analyze verify and
// security), then follows the install path of docs/ADMIN.md: edit
// /etc/dst/dstd.toml, dstd check, start dstd as its unit does, use dstctl
// as root and as a member of dst-admin, submit with dstc as a trap user,
// see a peer receive the report, rotate the report log, and purge.
//
// It changes the host (packages, accounts, /etc, /var): it needs root, and
// puts everything back at the end, failed or not.
package pkg

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/dst-traps/dst/internal/buildinfo"
	"github.com/dst-traps/dst/internal/config"
	"github.com/dst-traps/dst/internal/dsttest"
)

const (
	conf    = "/etc/dst/dstd.toml"
	unit    = "/lib/systemd/system/dstd.service"
	dataDir = "/var/lib/dst"
	// runDir holds admin.sock: dstd.service's RuntimeDirectory, and the
	// package's tmpfiles.d entry's.
	runDir   = "/run/dst"
	tmpfiles = "/usr/lib/tmpfiles.d/dst.conf"
	spool    = "/var/spool/dst"
	logDir   = "/var/log/dst"
	// maxExposure is the highest "systemd-analyze security" figure the
	// unit may have (issue 13: 2.5 or lower).
	maxExposure = 2.5
)

// accounts are what the package's postinst creates.
var (
	pkgUsers  = []string{"dst"}
	pkgGroups = []string{"dst", "dst-submit", "dst-admin"}
)

func TestPackage(t *testing.T) {
	dsttest.RequireRoot(t, "dpkg -i of the dst package")
	for _, p := range [][2]string{{"dpkg", "dpkg"}, {"go-md2man", "go-md2man"}, {"systemd-analyze", "systemd"},
		{"logrotate", "logrotate"}, {"man", "man-db"}, {"setpriv", "util-linux"}, {"runuser", "util-linux"}, {"useradd", "passwd"}} {
		dsttest.Require(t, p[0], p[1])
	}
	dsttest.LockHost(t, dsttest.HostDirs)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "scripts", "package.sh")); err != nil {
		t.Fatal(err)
	}
	restore(t)

	deb := build(t, root)
	install(t, deb)
	checkAccounts(t)
	checkFiles(t)
	checkCompletion(t)
	checkUnit(t)
	if out, err := runuserDst(conf); err != nil || !strings.Contains(out, "0 errors") {
		t.Fatalf("dstd check on the installed configuration, as dst: %v\n%s", err, out)
	}
	if t.Failed() {
		return
	}
	adminPath(t, root)
	purge(t)
	for _, p := range []string{dataDir, spool, logDir, runDir, tmpfiles, "/etc/dst", "/usr/sbin/dstd", "/usr/bin/dstc", "/usr/bin/dstctl",
		unit, "/etc/logrotate.d/dst", "/usr/share/man/man8/dstd.8.gz", "/usr/share/bash-completion/completions/dstctl"} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s is still there after dpkg --purge", p)
		}
	}
	// Debian keeps system users at purge: files elsewhere may be theirs.
	if _, err := user.Lookup("dst"); err != nil {
		t.Errorf("the user dst is gone after the purge (Debian keeps system users): %v", err)
	}
	// What the purge left (the accounts) does not stand in the way of a
	// new install, which finds everything as the first one did. The data
	// directory of the earlier layout, 0710 dst:dst-admin for admin.sock,
	// becomes dst's alone.
	if out, err := exec.Command("install", "-d", "-m", "0710", "-o", "dst", "-g", "dst-admin", dataDir).CombinedOutput(); err != nil {
		t.Fatalf("making the earlier layout's %s: %v\n%s", dataDir, err, out)
	}
	install(t, deb)
	checkAccounts(t)
	checkFiles(t)
	if out, err := runuserDst(conf); err != nil {
		t.Errorf("dstd check after a reinstall: %v\n%s", err, out)
	}
	purge(t)
}

// restore makes the host as it was when the test ends: the package
// purged, and the accounts it created removed unless they were there
// before. It purges a package left by an earlier run first.
func restore(t *testing.T) {
	if installed() {
		t.Log("the dst package is installed (an earlier run?): purging it first")
		purge(t)
	}
	var users, groups []string
	for _, u := range pkgUsers {
		if _, err := user.Lookup(u); err != nil {
			users = append(users, u)
		}
	}
	for _, g := range pkgGroups {
		if _, err := user.LookupGroup(g); err != nil {
			groups = append(groups, g)
		}
	}
	t.Cleanup(func() {
		if installed() {
			if out, err := exec.Command("dpkg", "--purge", "dst").CombinedOutput(); err != nil {
				t.Errorf("cleanup: dpkg --purge dst: %v\n%s", err, out)
			}
		}
		for _, u := range users {
			exec.Command("userdel", u).Run()
		}
		for _, g := range groups {
			exec.Command("groupdel", g).Run()
		}
	})
}

func installed() bool {
	out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Status}", "dst").Output()
	return err == nil && strings.TrimSpace(string(out)) != "not-installed" && len(out) > 0
}

func build(t *testing.T, root string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// package.sh takes the programs' release, with a Debian revision.
	version := buildinfo.Release + "-1"
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "package.sh"), version)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/package.sh: %v\n%s", err, stderr.String())
	}
	deb := filepath.Join(root, strings.TrimSpace(string(out)))
	if want := "dst_" + version + "_amd64.deb"; filepath.Base(deb) != want {
		t.Fatalf("scripts/package.sh printed %q, want the path of %s", out, want)
	}
	return deb
}

func install(t *testing.T, deb string) {
	t.Helper()
	cmd := exec.Command("dpkg", "-i", deb)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dpkg -i %s: %v\n%s", deb, err, out)
	}
}

func purge(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("dpkg", "--purge", "dst").CombinedOutput(); err != nil {
		t.Fatalf("dpkg --purge dst: %v\n%s", err, out)
	}
}

func checkAccounts(t *testing.T) {
	t.Helper()
	for _, g := range pkgGroups {
		if _, err := user.LookupGroup(g); err != nil {
			t.Errorf("group %s: %v", g, err)
		}
	}
	u, err := user.Lookup("dst")
	if err != nil {
		t.Fatalf("user dst: %v", err)
	}
	if uid, _ := strconv.Atoi(u.Uid); uid >= 1000 || uid == 0 {
		t.Errorf("user dst has uid %d: want a system user", uid)
	}
	if pw, err := exec.Command("getent", "passwd", "dst").Output(); err != nil || !strings.HasSuffix(strings.TrimSpace(string(pw)), ":/var/lib/dst:/usr/sbin/nologin") {
		t.Errorf("passwd entry of dst: %q, %v; want home /var/lib/dst and shell /usr/sbin/nologin", pw, err)
	}
	// dstd gives its sockets to these groups: only a member may.
	out, err := exec.Command("id", "-nG", "dst").Output()
	if err != nil {
		t.Fatal(err)
	}
	groups := strings.Fields(string(out))
	for _, g := range []string{"dst", "dst-submit", "dst-admin"} {
		if !slices.Contains(groups, g) {
			t.Errorf("dst is not in group %s (its groups: %s)", g, out)
		}
	}
}

// checkFiles checks owners and modes as docs/ADMIN.md ("Users, groups and
// directories") gives them.
func checkFiles(t *testing.T) {
	t.Helper()
	dir := os.ModeDir
	for _, f := range []struct {
		path         string
		mode         os.FileMode
		owner, group string
	}{
		{"/usr/sbin/dstd", 0o755, "root", "root"},
		{"/usr/bin/dstc", 0o755, "root", "root"},
		{"/usr/bin/dstctl", 0o755, "root", "root"},
		{conf, 0o640, "root", "dst"},
		{"/etc/dst/peers", dir | 0o750, "root", "dst"},
		{dataDir, dir | 0o700, "dst", "dst"},
		// Others traverse it, to admin.sock (0660 dst:dst-admin); nobody
		// but dst lists it.
		{runDir, dir | 0o711, "dst", "dst"},
		{tmpfiles, 0o644, "root", "root"},
		{spool, dir | os.ModeSetgid | os.ModeSticky | 0o770, "dst", "dst-submit"},
		{spool + "/tmp", dir | os.ModeSetgid | os.ModeSticky | 0o770, "dst", "dst-submit"},
		{spool + "/new", dir | os.ModeSetgid | os.ModeSticky | 0o770, "dst", "dst-submit"},
		{logDir, dir | 0o750, "dst", "dst"},
		{unit, 0o644, "root", "root"},
		{"/etc/logrotate.d/dst", 0o644, "root", "root"},
		{"/usr/share/bash-completion/completions/dstctl", 0o644, "root", "root"},
		{"/usr/share/doc/dst/copyright", 0o644, "root", "root"},
		{"/usr/share/doc/dst/examples/dstd.toml", 0o644, "root", "root"},
		{"/usr/share/man/man8/dstd.8.gz", 0o644, "root", "root"},
		{"/usr/share/man/man8/dstc.8.gz", 0o644, "root", "root"},
		{"/usr/share/man/man8/dstctl.8.gz", 0o644, "root", "root"},
		{"/usr/share/man/man5/dstd.toml.5.gz", 0o644, "root", "root"},
	} {
		checkMode(t, f.path, f.mode, f.owner, f.group)
	}
	// /run is emptied at boot: the tmpfiles.d entry makes /run/dst again,
	// as systemd-tmpfiles-setup.service does at boot.
	if err := os.Remove(runDir); err != nil {
		t.Errorf("removing %s as a reboot would: %v", runDir, err)
	}
	if out, err := exec.Command("systemd-tmpfiles", "--create", filepath.Base(tmpfiles)).CombinedOutput(); err != nil {
		t.Errorf("systemd-tmpfiles --create %s: %v\n%s", filepath.Base(tmpfiles), err, out)
	}
	checkMode(t, runDir, dir|0o711, "dst", "dst")

	// The man pages are man pages: man renders each with its name.
	for _, page := range []struct{ file, title string }{
		{"/usr/share/man/man8/dstd.8.gz", "DSTD(8)"}, {"/usr/share/man/man8/dstc.8.gz", "DSTC(8)"},
		{"/usr/share/man/man8/dstctl.8.gz", "DSTCTL(8)"}, {"/usr/share/man/man5/dstd.toml.5.gz", "DSTD.TOML(5)"},
	} {
		cmd := exec.Command("man", "-l", page.file)
		cmd.Env = append(os.Environ(), "MANPAGER=cat", "MANWIDTH=80")
		out, err := cmd.Output()
		if err != nil || !strings.HasPrefix(strings.TrimSpace(string(out)), page.title) || !strings.Contains(string(out), "SEE ALSO") {
			t.Errorf("man -l %s: %v; want a page titled %s:\n%.400s", page.file, err, page.title, out)
		}
	}
	if b, err := os.ReadFile("/usr/share/doc/dst/copyright"); err != nil || !strings.Contains(string(b), "License: BSD-2-Clause") ||
		!strings.Contains(string(b), "THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS") {
		t.Errorf("/usr/share/doc/dst/copyright: %v, want the BSD-2-Clause licence:\n%s", err, b)
	}
}

// checkMode checks the mode, owner and group of path.
func checkMode(t *testing.T, path string, mode os.FileMode, owner, group string) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	if o, g := uidName(st.Uid), gidName(st.Gid); fi.Mode() != mode || o != owner || g != group {
		t.Errorf("%s: %v %s:%s, want %v %s:%s", path, fi.Mode(), o, g, mode, owner, group)
	}
}

// checkCompletion completes dstctl command lines with the installed
// completion, as bash-completion would call it.
func checkCompletion(t *testing.T) {
	t.Helper()
	for _, c := range []struct {
		line string // what is typed; the last word is completed
		want string
	}{
		{"dstctl pe", "peers"},
		{"dstctl ", "status lookup list delist cancel queues peers keys resync origins why version help"},
		{"dstctl -admin /x peers ", "refeed flush test"},
		{"dstctl delist -", "-allow"},
		{"dstctl st", "status"},
	} {
		words := strings.Split(c.line, " ")
		// _init_completion is bash-completion's; this stand-in sets what
		// it would for the line.
		script := fmt.Sprintf(`_init_completion() { words=(%s); cword=%d; cur=${words[cword]}; prev=${words[cword-1]}; }
_filedir() { :; }
source /usr/share/bash-completion/completions/dstctl
COMP_WORDS=(%[1]s); COMP_CWORD=%[2]d
_dstctl
echo "${COMPREPLY[*]}"`, quoteWords(words), len(words)-1)
		out, err := exec.Command("bash", "-c", script).CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != c.want {
			t.Errorf("completing %q: %q, %v; want %q", c.line, got, err, c.want)
		}
	}
}

func quoteWords(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = "'" + w + "'"
	}
	return strings.Join(q, " ")
}

// checkUnit runs systemd-analyze verify and security on the installed unit.
func checkUnit(t *testing.T) {
	t.Helper()
	out, err := exec.Command("systemd-analyze", "verify", unit).CombinedOutput()
	if err != nil || strings.Contains(string(out), "dstd.service") {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
	}
	out, err = exec.Command("systemd-analyze", "security", "--offline=true", "--no-pager", unit).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for dstd\.service: ([0-9.]+)`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("systemd-analyze security --offline=true %s: %v\n%s", unit, err, out)
	}
	exposure, _ := strconv.ParseFloat(string(m[1]), 64)
	dsttest.Figure(t, "systemd-analyze security exposure of dstd.service: %.1f (at most %.1f)", exposure, maxExposure)
	if exposure > maxExposure {
		t.Errorf("systemd-analyze security rates dstd.service %.1f, want at most %.1f:\n%s", exposure, maxExposure, out)
	}
	// The unit is the one dstd needs: notify, reload by SIGHUP, user dst.
	b, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "User=dst", "ExecStart=/usr/sbin/dstd -c /etc/dst/dstd.toml",
		"ProtectSystem=strict", "SystemCallFilter=@system-service", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "NoNewPrivileges=yes",
		"StateDirectory=dst", "StateDirectoryMode=0700", "RuntimeDirectory=dst", "RuntimeDirectoryMode=0711", "ReadWritePaths=/var/spool/dst"} {
		if !bytes.Contains(b, []byte("\n"+line+"\n")) {
			t.Errorf("%s lacks %s", unit, line)
		}
	}
}

// runuserDst runs "dstd check -c file" as dst, as docs/ADMIN.md says.
func runuserDst(file string) (string, error) {
	out, err := exec.Command("runuser", "-u", "dst", "--", "/usr/sbin/dstd", "check", "-c", file).CombinedOutput()
	return string(out), err
}

// adminPath is the path of issue 13's "Done when" after the install: edit
// the one file, dstd check, start dstd, dstctl, a trap hit, a peer.
// adminPath walks docs/ADMIN.md 1.1, step by step, on the installed
// package: edit /etc/dst/dstd.toml, create the key, dstd check, start
// the service, dstctl, a trap hit, the status page, join a peer.
func adminPath(t *testing.T, root string) {
	dnsAddr := fmt.Sprintf("127.0.0.1:%d", dsttest.FreeUDPTCPPort(t))
	nntpAddr := fmt.Sprintf("127.0.0.1:%d", dsttest.FreePort(t))

	// Step 3: edit /etc/dst/dstd.toml: the site's name, loopback ports of
	// the test's, a zone, and the lab switch for the documentation
	// address of the sample message.
	edit(t, map[string]string{
		`#site = "site-a.example"`:    `site = "pkg-a.test"`,
		`listen = ["127.0.0.1:1119"]`: fmt.Sprintf("listen = [%q]", nntpAddr),
		`listen = ["127.0.0.1:5353"]`: fmt.Sprintf("listen = [%q]", dnsAddr),
		`zone = "dnsbl.invalid"`:      `zone = "bl.pkg-a.test"`,
		"\n[actions.log]\n":           "\n[policy]\nallow_documentation = true\n\n[actions.log]\n",
	})
	// The site's key, and the keyring line it prints for peers.
	out, err := exec.Command("runuser", "-u", "dst", "--", "/usr/sbin/dstd", "keygen", "-c", conf).CombinedOutput()
	if err != nil {
		t.Fatalf("dstd keygen as dst: %v\n%s", err, out)
	}
	ownLine := keyringLine(t, string(out), "pkg-a.test")

	// Step 4: dstd check, as dst.
	if out, err := runuserDst(conf); err != nil || !strings.Contains(out, "0 errors") {
		t.Fatalf("dstd check on the edited configuration, as dst: %v\n%s", err, out)
	}

	// Step 5: start the service.
	d := startAsUnit(t)
	if got := d.next(t, "READY=1"); got != "READY=1" {
		t.Fatalf("dstd's first notification: %q, want READY=1", got)
	}

	// dstctl: root and a member of dst-admin with no flags; nobody else.
	admin := dsttest.NewUser(t, "dstadm", "dst-admin")
	trap := dsttest.NewSubmitter(t, "dsttrap", "dst-submit", gidOf(t, "dst-submit"))
	stranger := dsttest.NewUser(t, "dststr")
	adminSock := filepath.Join(runDir, "admin.sock")
	checkMode(t, dataDir, os.ModeDir|0o700, "dst", "dst")
	checkMode(t, runDir, os.ModeDir|0o711, "dst", "dst")
	checkMode(t, adminSock, os.ModeSocket|0o660, "dst", "dst-admin")
	if out, err := exec.Command("/usr/bin/dstctl", "status").CombinedOutput(); err != nil || !strings.Contains(string(out), "pkg-a.test") {
		t.Errorf("dstctl status as root: %v\n%s", err, out)
	}
	// The member may not read /etc/dst/dstd.toml (root:dst 0640): plain
	// dstctl finds /run/dst/admin.sock all the same.
	if out, err := admin.Command("/usr/bin/dstctl", "status").CombinedOutput(); err != nil || !strings.Contains(string(out), "pkg-a.test") {
		t.Errorf("dstctl status as %s, a member of dst-admin: %v\n%s", admin.Name, err, out)
	}
	for _, u := range []*dsttest.User{trap, stranger} {
		for _, args := range [][]string{{"status"}, {"-admin", adminSock, "status"}} {
			out, err := u.Command("/usr/bin/dstctl", args...).CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 || !strings.Contains(string(out), "permission denied") {
				t.Errorf("dstctl %s as %s (not in dst-admin): %v, want exit 3, permission denied:\n%s", strings.Join(args, " "), u.Name, err, out)
			}
		}
	}
	// dst-admin passes /run/dst (0711) by its others x bit: nothing to
	// warn about.
	if log := d.log.String(); strings.Contains(log, "cannot reach the socket") {
		t.Errorf("dstd warns that a group cannot reach its socket:\n%s", log)
	}

	// A trap hit: the trap user, in dst-submit, runs dstc as the MTA would.
	msg, err := os.ReadFile(filepath.Join(root, "examples", "trap-hit.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if out, code := dstc(trap, msg); code != 0 || !strings.Contains(out, "reported") {
		t.Fatalf("dstc as the trap user: exit %d\n%s", code, out)
	}
	// Nobody else may submit: not through the socket, not into the spool.
	if out, code := dstc(stranger, bytes.ReplaceAll(msg, []byte("203.0.113.7"), []byte("203.0.113.9"))); code != 75 {
		t.Errorf("dstc as %s (not in dst-submit): exit %d, want 75 (neither submitted nor spooled)\n%s", stranger.Name, code, out)
	}
	if out, err := exec.Command("/usr/bin/dstctl", "lookup", "203.0.113.7").CombinedOutput(); err != nil {
		t.Errorf("dstctl lookup 203.0.113.7 after the trap hit: %v\n%s", err, out)
	}

	// Step 6: the status page, as the guide fetches it: through the
	// socket, by a member of dst-admin; nobody else.
	page, err := admin.Command("curl", "-sS", "--fail", "--unix-socket", adminSock, "http://localhost/").CombinedOutput()
	if err != nil || !strings.Contains(string(page), "<svg") || !strings.Contains(string(page), "pkg-a.test") {
		t.Errorf("the status page through %s, as %s: %v\n%.2000s", adminSock, admin.Name, err, page)
	}
	if out, err := stranger.Command("curl", "-sS", "--fail", "--unix-socket", adminSock, "http://localhost/").CombinedOutput(); err == nil || strings.Contains(string(out), "<svg") {
		t.Errorf("the status page as %s (not in dst-admin): %v, want refused\n%.500s", stranger.Name, err, out)
	}

	// Step 7: join a peer, a site of the test harness. The two exchange
	// keyring lines; this one adds a [[peer]] block and restarts (a new
	// peer needs a restart: a reload says so).
	peer := dsttest.NewDstd(t, "pkg-b.test", "[policy]\nallow_documentation = true\n[[peer]]\nname = \"pkg-a.test\"\naddresses = [\"127.0.0.1\"]\n")
	if err := os.MkdirAll(peer.Dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(peer.Dir, "keyring"), []byte(ownLine+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	peer.Start()
	if err := os.WriteFile(filepath.Join(dataDir, "keyring"), []byte(peer.KeyringLine()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	edit(t, map[string]string{
		`#feed = "dst.site-b.example:1119"`: "#\n[[peer]]\nname = \"pkg-b.test\"\nfeed = \"" + peer.NNTP + "\"",
	})
	if out, err := runuserDst(conf); err != nil || !strings.Contains(out, "0 errors") {
		t.Fatalf("dstd check with the peer, as dst: %v\n%s", err, out)
	}
	d.stop(t)
	d = startAsUnit(t)
	if got := d.next(t, "READY=1"); got != "READY=1" {
		t.Fatalf("dstd's first notification after the restart: %q, want READY=1", got)
	}
	if out, err := admin.Command("/usr/bin/dstctl", "peers", "test", "pkg-b.test").CombinedOutput(); err != nil || !strings.Contains(string(out), "ok, round trip") {
		t.Errorf("dstctl peers test pkg-b.test as %s: %v\n%s", admin.Name, err, out)
	}
	// The next trap hit reaches the peer, which lists the address.
	if out, code := dstc(trap, bytes.ReplaceAll(msg, []byte("203.0.113.7"), []byte("203.0.113.11"))); code != 0 {
		t.Fatalf("dstc as the trap user after joining: exit %d\n%s", code, out)
	}
	dsttest.WaitFor(t, time.Minute, "the peer to list 203.0.113.11", func() bool {
		_, code := peer.Ctl("lookup", "203.0.113.11")
		return code == 0
	})
	if out, err := admin.Command("/usr/bin/dstctl", "peers").CombinedOutput(); err != nil || !strings.Contains(string(out), "pkg-b.test") || !strings.Contains(string(out), "connected") {
		t.Errorf("dstctl peers after joining: %v\n%s", err, out)
	}

	rotate(t, d, trap, msg)

	d.stop(t)

	// dstd stopped: systemd removes /run/dst. Plain dstctl still names
	// the package's socket, not a path of the user's own.
	os.RemoveAll(runDir)
	out, err = admin.Command("/usr/bin/dstctl", "status").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 || !strings.Contains(string(out), adminSock) {
		t.Errorf("dstctl status as %s with dstd stopped: %v, want exit 3 naming %s:\n%s", admin.Name, err, adminSock, out)
	}
}

// edit replaces, in /etc/dst/dstd.toml, each key of repl by its value,
// as an administrator edits the file.
func edit(t *testing.T, repl map[string]string) {
	t.Helper()
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	edited := string(b)
	for old, new := range repl {
		if !strings.Contains(edited, old) {
			t.Fatalf("the installed %s has no line %q to edit:\n%s", conf, old, b)
		}
		edited = strings.Replace(edited, old, new, 1)
	}
	if err := os.WriteFile(conf, []byte(edited), 0o640); err != nil {
		t.Fatal(err)
	}
}

// rotate rotates the report log with the installed logrotate file, does
// what its postrotate does under systemd (systemctl reload: SIGHUP), and
// checks that the next report goes to the new file.
func rotate(t *testing.T, d *unitDstd, trap *dsttest.User, msg []byte) {
	t.Helper()
	reportLog := filepath.Join(logDir, "reports.log")
	dsttest.WaitFor(t, 30*time.Second, "the report log to name 203.0.113.7", func() bool {
		b, _ := os.ReadFile(reportLog)
		return bytes.Contains(b, []byte("203.0.113.7"))
	})
	state := filepath.Join(t.TempDir(), "logrotate.state")
	if out, err := exec.Command("logrotate", "-f", "-s", state, "/etc/logrotate.d/dst").CombinedOutput(); err != nil {
		t.Fatalf("logrotate -f /etc/logrotate.d/dst: %v\n%s", err, out)
	}
	fi, err := os.Stat(reportLog)
	if err != nil {
		t.Fatalf("after logrotate: %v", err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode() != 0o640 || uidName(st.Uid) != "dst" || gidName(st.Gid) != "dst" {
		t.Errorf("the new report log: %v %s:%s, want -rw-r----- dst:dst", fi.Mode(), uidName(st.Uid), gidName(st.Gid))
	}
	d.cmd.Process.Signal(syscall.SIGHUP)
	if got := d.next(t, "RELOADING=1"); !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Errorf("at SIGHUP dstd said %q, want RELOADING=1 and MONOTONIC_USEC", got)
	}
	if got := d.next(t, "READY=1"); got != "READY=1" {
		t.Errorf("after the reload dstd said %q, want READY=1", got)
	}
	if out, code := dstc(trap, bytes.ReplaceAll(msg, []byte("203.0.113.7"), []byte("203.0.113.8"))); code != 0 {
		t.Fatalf("dstc after the rotation: exit %d\n%s", code, out)
	}
	dsttest.WaitFor(t, 30*time.Second, "the new report log to name 203.0.113.8", func() bool {
		b, _ := os.ReadFile(reportLog)
		return bytes.Contains(b, []byte("203.0.113.8"))
	})
	if old, err := os.ReadFile(reportLog + ".1"); err != nil || !bytes.Contains(old, []byte("203.0.113.7")) || bytes.Contains(old, []byte("203.0.113.8")) {
		t.Errorf("the rotated report log: %v, want the first report and not the second:\n%s", err, old)
	}
}

func dstc(u *dsttest.User, msg []byte) (string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/dstc", "-log", "stderr", "-m", "mx[12].example.net")
	u.Apply(cmd)
	cmd.Stdin = bytes.NewReader(msg)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		return err.Error(), -1
	}
	return string(out), 0
}

// unitDstd is the installed dstd, started as its unit starts it.
type unitDstd struct {
	cmd    *exec.Cmd
	notify *net.UnixConn
	log    *dsttest.SyncBuffer
	exited chan struct{}
}

// startAsUnit starts dstd as dstd.service would, without systemd (it is
// not PID 1 here): the unit's ExecStartPre and ExecStart, as its User=,
// with its UMask=, and a notification socket of the test's.
func startAsUnit(t *testing.T) *unitDstd {
	t.Helper()
	keys := unitKeys(t)
	if keys["User"] != "dst" || keys["UMask"] == "" {
		t.Fatalf("%s: User=%q UMask=%q, want dst and a umask", unit, keys["User"], keys["UMask"])
	}
	// What systemd does before ExecStartPre: make the unit's
	// StateDirectory= and RuntimeDirectory= (a fresh one: stopping the
	// unit removes it), give them to User= and Group=, with their modes.
	os.RemoveAll(filepath.Join("/run", keys["RuntimeDirectory"]))
	for _, d := range []struct{ base, key string }{{"/var/lib", "StateDirectory"}, {"/run", "RuntimeDirectory"}} {
		if _, err := strconv.ParseUint(keys[d.key+"Mode"], 8, 32); keys[d.key] == "" || err != nil {
			t.Fatalf("%s: %s=%q %sMode=%q", unit, d.key, keys[d.key], d.key, keys[d.key+"Mode"])
		}
		path := filepath.Join(d.base, keys[d.key])
		for _, cmd := range [][]string{{"mkdir", "-p", path}, {"chown", keys["User"] + ":" + keys["Group"], path}, {"chmod", keys[d.key+"Mode"], path}} {
			if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
				t.Fatalf("%s for %s=: %v\n%s", strings.Join(cmd, " "), d.key, err, out)
			}
		}
	}
	// A directory dst can reach, for the socket dstd writes to.
	dir, err := os.MkdirTemp("", "dst-pkg-notify")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o711)
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	os.Chmod(sock, 0o666)

	asUnit := func(cmdline string) *exec.Cmd {
		cmd := exec.Command("setpriv", "--reuid=dst", "--regid=dst", "--init-groups", "--no-new-privs", "--",
			"sh", "-c", "umask "+keys["UMask"]+"; exec "+cmdline)
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "NOTIFY_SOCKET=" + sock}
		return cmd
	}
	if out, err := asUnit(keys["ExecStartPre"]).CombinedOutput(); err != nil {
		t.Fatalf("the unit's ExecStartPre (%s): %v\n%s", keys["ExecStartPre"], err, out)
	}
	d := &unitDstd{cmd: asUnit(keys["ExecStart"]), notify: conn, log: &dsttest.SyncBuffer{}, exited: make(chan struct{})}
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		select {
		case <-d.exited:
		default:
			d.cmd.Process.Kill()
			<-d.exited
		}
		if t.Failed() {
			t.Logf("the installed dstd's log:\n%s", d.log.String())
		}
	})
	return d
}

// next returns the next notification dstd sends.
func (d *unitDstd) next(t *testing.T, what string) string {
	t.Helper()
	d.notify.SetReadDeadline(time.Now().Add(time.Minute))
	buf := make([]byte, 4096)
	n, err := d.notify.Read(buf)
	if err != nil {
		t.Fatalf("waiting for %s from dstd: %v\n%s", what, err, d.log.String())
	}
	return string(buf[:n])
}

// stop does what systemctl stop does: SIGTERM, and dstd says STOPPING=1
// and exits 0.
func (d *unitDstd) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	if got := d.next(t, "STOPPING=1"); got != "STOPPING=1" {
		t.Errorf("at SIGTERM dstd said %q, want STOPPING=1", got)
	}
	select {
	case <-d.exited:
		if !d.cmd.ProcessState.Success() {
			t.Errorf("dstd exited with %v after SIGTERM", d.cmd.ProcessState)
		}
	case <-time.After(30 * time.Second):
		t.Error("dstd did not stop within 30 s of SIGTERM")
	}
}

// unitKeys reads the [Service] keys of the installed unit (the last of
// each key).
func unitKeys(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(unit)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			section = line
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok && section == "[Service]" && !strings.HasPrefix(line, "#") {
			keys[k] = v
		}
	}
	return keys
}

func keyringLine(t *testing.T, out, site string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == site {
			return line
		}
	}
	t.Fatalf("no keyring line for %s in:\n%s", site, out)
	return ""
}

func gidOf(t *testing.T, group string) uint32 {
	t.Helper()
	g, err := user.LookupGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := strconv.ParseUint(g.Gid, 10, 32)
	return uint32(id)
}

func uidName(uid uint32) string {
	if u, err := user.LookupId(strconv.Itoa(int(uid))); err == nil {
		return u.Username
	}
	return strconv.Itoa(int(uid))
}

func gidName(gid uint32) string {
	if g, err := user.LookupGroupId(strconv.Itoa(int(gid))); err == nil {
		return g.Name
	}
	return strconv.Itoa(int(gid))
}

// TestGuideShowsTheUnit: the key lines docs/ADMIN.md (1.4) shows of
// dstd.service are the unit's.
func TestGuideShowsTheUnit(t *testing.T) {
	guide, err := os.ReadFile("../../docs/ADMIN.md")
	if err != nil {
		t.Fatal(err)
	}
	unitText, err := os.ReadFile("../../packaging/dstd.service")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(guide), "### 1.4 Running dstd with systemd\n")
	_, block, ok2 := strings.Cut(sec, "```ini\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("docs/ADMIN.md has no ini block in 1.4")
	}
	lines := 0
	for _, line := range strings.Split(block, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		lines++
		if !strings.Contains("\n"+string(unitText), "\n"+line+"\n") {
			t.Errorf("docs/ADMIN.md 1.4 shows %q, which packaging/dstd.service does not have", line)
		}
	}
	if lines < 10 {
		t.Errorf("docs/ADMIN.md 1.4 shows %d lines of the unit", lines)
	}
}

// TestGuidePath keeps docs/ADMIN.md 1.1 and TestPackage's adminPath
// together: the configuration the guide has the administrator write is
// valid (each TOML block, added to the installed default configuration,
// loads), and the commands TestPackage runs are the ones the guide shows.
func TestGuidePath(t *testing.T) {
	guide, err := os.ReadFile("../../docs/ADMIN.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(guide), "### 1.1 From the package to a joined site\n")
	sec, _, ok2 := strings.Cut(sec, "\n### 1.2 ")
	if !ok || !ok2 {
		t.Fatal("docs/ADMIN.md has no section 1.1 From the package to a joined site")
	}
	for _, cmd := range []string{
		"apt install ./dst_",
		"runuser -u dst -- dstd keygen -c /etc/dst/dstd.toml",
		"runuser -u dst -- dstd check -c /etc/dst/dstd.toml",
		"dstctl status",
		"curl -s --unix-socket /run/dst/admin.sock http://localhost/",
		"dstctl peers test site-b.example",
		"systemctl restart dstd",
	} {
		if !strings.Contains(sec, cmd) {
			t.Errorf("docs/ADMIN.md 1.1 does not show %q, a step TestPackage runs", cmd)
		}
	}

	def, err := os.ReadFile("../../packaging/dstd.toml")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```toml\n(.*?)```").FindAllStringSubmatch(sec, -1)
	if len(blocks) < 2 {
		t.Fatalf("docs/ADMIN.md 1.1 shows %d TOML blocks, want the edit (step 3) and the peer (step 7)", len(blocks))
	}
	// The guide's edits, applied to the installed default as an
	// administrator would: the guide's keys win.
	var merged map[string]any
	if err := toml.Unmarshal(def, &merged); err != nil {
		t.Fatalf("packaging/dstd.toml: %v", err)
	}
	for i, b := range blocks {
		var m map[string]any
		if err := toml.Unmarshal([]byte(b[1]), &m); err != nil {
			t.Fatalf("docs/ADMIN.md 1.1, TOML block %d: %v\n%s", i+1, err, b[1])
		}
		mergeTOML(merged, m)
	}
	dir := t.TempDir()
	merged["data_dir"], merged["spool_dir"] = dir, filepath.Join(dir, "spool")
	// The package's groups exist only while it is installed: what is
	// checked here is the guide's keys.
	delete(merged["nntp"].(map[string]any), "submit_group")
	delete(merged["admin"].(map[string]any), "group")
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(merged); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "dstd.toml")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if _, err := config.Load(path); err != nil {
		t.Errorf("the configuration docs/ADMIN.md 1.1 has the administrator write does not load: %v\n%s", err, b)
	}
}

// mergeTOML sets into dst every key of src, table by table; arrays of
// tables ([[peer]]) are appended.
func mergeTOML(dst, src map[string]any) {
	for k, v := range src {
		switch v := v.(type) {
		case map[string]any:
			if d, ok := dst[k].(map[string]any); ok {
				mergeTOML(d, v)
				continue
			}
		case []map[string]any:
			if d, ok := dst[k].([]map[string]any); ok {
				dst[k] = append(d, v...)
				continue
			}
		}
		dst[k] = v
	}
}
