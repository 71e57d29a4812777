// Package authz checks who may do what on a DST site with real Unix users:
// the programs are run as those users and the kernel decides, as it will on
// a real site. docs/ADMIN.md ("Who can do what") is the table these tests
// hold dstd to.
package authz

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/dsttest"
)

// psSite is a dstd laid out as docs/ADMIN.md 1.2 says, run as its own user.
type psSite struct {
	d                 *dsttest.Dstd
	dst               *dsttest.User // runs dstd
	trap, admin       *dsttest.User // in the submission group; in the admin group
	stranger          *dsttest.User // any other local user
	submitG, adminG   string
	spool, dataDir    string
	submitGID, admGID uint32
}

// newPsSite creates the groups and users, the directories as the
// installation commands of docs/ADMIN.md and the package do (data
// directory 0700, dstd's alone; the admin socket in a directory 0711 of
// dstd's user, as /run/dst; spool 3770 to the submission group), and
// starts dstd as the dst user with nntp.submit_group, admin.group and
// admin.socket set. dstd creates the spool's tmp/ and new/ itself.
func newPsSite(t *testing.T) *psSite {
	t.Helper()
	dsttest.RequireRoot(t, "dstd as a user of its own, and users to run dstc and dstctl as")
	s := &psSite{}
	s.submitG, s.submitGID = dsttest.NewGroup(t, "dsub")
	s.adminG, s.admGID = dsttest.NewGroup(t, "dadm")
	// dstd's user is in both groups: it gives them its sockets (only a
	// member may), and reads the reports dstc spools.
	s.dst = dsttest.NewUser(t, "dstd", s.submitG, s.adminG)
	s.trap = dsttest.NewUser(t, "trap", s.submitG)
	s.admin = dsttest.NewUser(t, "dadmin", s.adminG)
	s.stranger = dsttest.NewUser(t, "strgr")

	spoolParent, runParent := t.TempDir(), t.TempDir()
	s.spool = filepath.Join(spoolParent, "spool")
	runDir := filepath.Join(runParent, "dst")
	s.d = dsttest.NewDstd(t, "site-a.test", fmt.Sprintf("spool_dir = %q\n[policy]\nallow_documentation = true\n"+
		"[nntp]\nsubmit_group = %q\n[admin]\nsocket = %q\ngroup = %q\n", s.spool, s.submitG, filepath.Join(runDir, "admin.sock"), s.adminG))
	s.d.Admin = filepath.Join(runDir, "admin.sock")
	s.dataDir = s.d.Dir
	// The test's temporary directories stand for /var/lib, /run and
	// /var/spool: anyone may pass through them.
	for _, dir := range []string{filepath.Dir(spoolParent), spoolParent, filepath.Dir(s.d.Dir), filepath.Dir(runParent), runParent} {
		if err := os.Chmod(dir, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	// install -d -m 0700 -o dst -g dst /var/lib/dst
	mkdirOwned(t, s.dataDir, s.dst.UID, s.dst.GID, 0o700)
	// install -d -m 0711 -o dst -g dst /run/dst: the admin group passes
	// by the others x bit, to a socket that is its group's.
	mkdirOwned(t, runDir, s.dst.UID, s.dst.GID, 0o711)
	// install -d -m 3770 -o dst -g dst-submit /var/spool/dst
	mkdirOwned(t, s.spool, s.dst.UID, s.submitGID, 0o770|os.ModeSetgid|os.ModeSticky)
	if err := os.Chown(s.d.Conf, int(s.dst.UID), -1); err != nil {
		t.Fatal(err)
	}
	s.d.Prefix = []string{"setpriv", "--reuid=" + strconv.Itoa(int(s.dst.UID)), "--regid=" + strconv.Itoa(int(s.dst.GID)), "--init-groups", "--"}
	s.d.Start()
	if strings.Contains(s.d.Log(), "cannot reach") || strings.Contains(s.d.Log(), "not writable by nntp.submit_group") {
		t.Errorf("dstd warns about a layout made as docs/ADMIN.md says:\n%s", s.d.Log())
	}
	return s
}

func mkdirOwned(t *testing.T, dir string, uid, gid uint32, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, int(uid), int(gid)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
}

// psRun runs a built program as u and returns its combined output and exit
// code.
func psRun(t *testing.T, u *dsttest.User, stdin []byte, prog string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, dsttest.Bin(t, prog), args...)
	u.Apply(cmd)
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("%s as %s: %v", prog, u.Name, err)
	}
	return string(out), 0
}

// psMessage is a message as Postfix on mx1.example.net delivers it to a
// trap, sent by client.
func psMessage(client string) []byte {
	return []byte(fmt.Sprintf("Received: from spam.example (unknown [%s])\r\n\tby mx1.example.net (Postfix) with ESMTP id 1\r\n\tfor <trap@example.net>; %s\r\n"+
		"From: <a@spam.example>\r\nTo: <trap@example.net>\r\nSubject: offer for %s\r\n\r\nbuy\r\n", client, time.Now().Format(time.RFC1123Z), client))
}

func (s *psSite) listed(t *testing.T, ip string) bool {
	t.Helper()
	out, code := s.d.Ctl("lookup", ip)
	if code > 1 {
		t.Fatalf("dstctl lookup %s as root: exit %d: %s", ip, code, out)
	}
	return code == 0
}

// TestWhoCanDoWhat runs dstc and dstctl as each kind of local user against
// a dstd run as its own user with nntp.submit_group and admin.group set.
func TestWhoCanDoWhat(t *testing.T) {
	s := newPsSite(t)
	dstc := func(u *dsttest.User, ip string, args ...string) (string, int) {
		return psRun(t, u, psMessage(ip), "dstc", append([]string{"-log", "stderr", "-m", "mx1.example.net", "-timeout", "10s"}, args...)...)
	}
	ctl := func(u *dsttest.User, args ...string) (string, int) {
		return psRun(t, u, nil, "dstctl", append([]string{"-admin", s.d.Admin}, args...)...)
	}

	// The trap user submits through the socket: no -s, the default is
	// the socket in -spool.
	out, code := dstc(s.trap, "203.0.113.60", "-spool", s.spool)
	if code != 0 || !strings.Contains(out, "msg=reported") || !strings.Contains(out, "nntp.sock") {
		t.Fatalf("dstc as the trap user (in %s): exit %d, want 0 and reported through the socket:\n%s", s.submitG, code, out)
	}
	if !s.listed(t, "203.0.113.60") {
		t.Fatal("the trap user's report is not listed")
	}

	// It writes the spool when dstd cannot be reached, and dstd (its own
	// user, in the submission group) reads and removes what it wrote.
	out, code = dstc(s.trap, "203.0.113.61", "-spool", s.spool, "-s", "unix:"+filepath.Join(s.spool, "no-dstd-here.sock"))
	if code != 0 || !strings.Contains(out, "report spooled") {
		t.Fatalf("dstc as the trap user, dstd unreachable: exit %d, want 0 and spooled:\n%s", code, out)
	}
	dsttest.WaitFor(t, 15*time.Second, "the trap user's spooled report to be listed", func() bool { return s.listed(t, "203.0.113.61") })

	// The spool is sticky: a submitter cannot swap new/ or the socket for
	// a link of its own (dstd would then read and delete files elsewhere).
	for _, victim := range []string{"new", "tmp", "nntp.sock"} {
		path := filepath.Join(s.spool, victim)
		if out, err := s.trap.Command("mv", path, path+".evil").CombinedOutput(); err == nil {
			t.Errorf("the trap user renamed %s: the spool is not sticky\n%s", path, out)
		}
		if _, err := os.Lstat(path); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}

	// Over TCP, no local user may post: nntp.post_allow is empty. The
	// refusal says what to do. With a spool it cannot write, dstc exits
	// 75, so the refusal is all that happened.
	out, code = dstc(s.trap, "203.0.113.62", "-s", s.d.NNTP, "-spool", filepath.Join(s.dataDir, "no-spool"))
	if code != 75 || !strings.Contains(out, "502") || !strings.Contains(out, "nntp.post_allow") || !strings.Contains(out, filepath.Join(s.spool, "nntp.sock")) {
		t.Errorf("dstc as the trap user over TCP: exit %d, want 75 after a 502 naming nntp.post_allow and the socket:\n%s", code, out)
	}
	if s.listed(t, "203.0.113.62") {
		t.Error("a report POSTed over TCP from loopback was listed with post_allow empty")
	}

	// The trap user cannot administer: admin.sock is not its group's.
	id := regexp.MustCompile(`<[^>\s]+@[^>\s]+>`).FindString(func() string { o, _ := s.d.Ctl("lookup", "203.0.113.60"); return o }())
	if id == "" {
		t.Fatal("no Message-ID in dstctl lookup's output")
	}
	for _, args := range [][]string{{"status"}, {"lookup", "203.0.113.60"}, {"delist", "203.0.113.60"}, {"delist", "-allow", "203.0.113.61"}, {"cancel", id}} {
		out, code := ctl(s.trap, args...)
		if code != 3 || !strings.Contains(out, "permission denied") {
			t.Errorf("dstctl %s as the trap user: exit %d, want 3 (permission denied):\n%s", strings.Join(args, " "), code, out)
		}
	}
	if !s.listed(t, "203.0.113.60") || !s.listed(t, "203.0.113.61") {
		t.Fatal("a listing went away after the trap user's dstctl delist/cancel")
	}
	// Nor read the site's key or database.
	for _, f := range []string{"dkim.key", "dst.db"} {
		if _, err := readAs(s.trap, filepath.Join(s.dataDir, f)); err == nil {
			t.Errorf("the trap user can read %s", f)
		}
	}

	// A stranger can neither submit through the socket nor spool: dstc
	// exits 75 (the MTA keeps the message) and nothing is listed.
	out, code = dstc(s.stranger, "203.0.113.63", "-spool", s.spool)
	if code != 75 || !strings.Contains(out, "permission denied") {
		t.Errorf("dstc as a stranger: exit %d, want 75 (permission denied):\n%s", code, out)
	}
	if s.listed(t, "203.0.113.63") {
		t.Error("a stranger's report was listed")
	}
	ents, err := os.ReadDir(filepath.Join(s.spool, "new"))
	if err != nil || len(ents) != 0 {
		t.Errorf("spool/new after the stranger's dstc: %d files (%v), want none", len(ents), err)
	}
	for _, args := range [][]string{{"status"}, {"delist", "203.0.113.60"}} {
		if out, code := ctl(s.stranger, args...); code != 3 || !strings.Contains(out, "permission denied") {
			t.Errorf("dstctl %s as a stranger: exit %d, want 3 (permission denied):\n%s", strings.Join(args, " "), code, out)
		}
	}

	// A member of the admin group administers, but cannot submit nor
	// read the key.
	if out, code := ctl(s.admin, "status"); code != 0 || !strings.Contains(out, "site-a.test") {
		t.Errorf("dstctl status as a member of %s: exit %d:\n%s", s.adminG, code, out)
	}
	if out, code := ctl(s.admin, "delist", "203.0.113.60"); code != 0 {
		t.Errorf("dstctl delist as a member of %s: exit %d:\n%s", s.adminG, code, out)
	}
	if s.listed(t, "203.0.113.60") {
		t.Error("still listed after the admin group member's delist")
	}
	if _, err := readAs(s.admin, filepath.Join(s.dataDir, "dkim.key")); err == nil {
		t.Error("a member of the admin group can read dkim.key")
	}
	if out, code := dstc(s.admin, "203.0.113.64", "-spool", s.spool); code != 75 {
		t.Errorf("dstc as a member of the admin group only: exit %d, want 75:\n%s", code, out)
	}

	// dstd's own user administers too (root does: the harness's dstctl).
	if out, code := ctl(s.dst, "status"); code != 0 {
		t.Errorf("dstctl status as dstd's user: exit %d:\n%s", code, out)
	}
}

// readAs reads path as u (with cat), which fails where u may not read.
func readAs(u *dsttest.User, path string) ([]byte, error) {
	cmd := u.Command("cat", path)
	cmd.Dir = "/"
	return cmd.Output()
}

// TestNoGroups: with neither nntp.submit_group nor admin.group, only
// dstd's user and root may submit or administer; a user in dstd's own
// group may do neither.
func TestNoGroups(t *testing.T) {
	dsttest.RequireRoot(t, "users to run dstc and dstctl as")
	g, gid := dsttest.NewGroup(t, "dgrp")
	member := dsttest.NewUser(t, "dmemb", g)
	d := dsttest.NewDstd(t, "site-a.test", "[policy]\nallow_documentation = true\n")
	// dstd runs as root here; its directories are given to group g as an
	// older installation gave them to dstd's group, and open to all.
	for _, dir := range []string{filepath.Dir(filepath.Dir(d.Dir)), filepath.Dir(d.Dir)} {
		os.Chmod(dir, 0o711)
	}
	mkdirOwned(t, d.Dir, 0, gid, 0o750)
	d.Start()
	out, code := psRun(t, member, psMessage("203.0.113.70"), "dstc", "-log", "stderr", "-m", "mx1.example.net", "-spool", d.Spool)
	if code != 75 || !strings.Contains(out, "permission denied") {
		t.Errorf("dstc as a member of the data directory's group, no submit_group: exit %d, want 75:\n%s", code, out)
	}
	if out, code := psRun(t, member, nil, "dstctl", "-admin", d.Admin, "status"); code != 3 || !strings.Contains(out, "permission denied") {
		t.Errorf("dstctl as a member of the data directory's group, no admin.group: exit %d, want 3 (permission denied):\n%s", code, out)
	}
	// Root still may.
	if out, code := d.Dstc(psMessage("203.0.113.71"), "-m", "mx1.example.net"); code != 0 || !strings.Contains(out, "msg=reported") {
		t.Errorf("dstc as root: exit %d:\n%s", code, out)
	}
}

// TestGroupMistakesExplained: dstd refuses to start on a group that does
// not exist, and warns, saying what to run, when the directories of a
// layout keep a group's members from what the group is meant to give them.
func TestGroupMistakesExplained(t *testing.T) {
	dsttest.RequireRoot(t, "groups of its own")
	d := dsttest.NewDstd(t, "site-a.test", "[nntp]\nsubmit_group = \"dst-no-such-group\"\n")
	out, err := exec.Command(dsttest.Bin(t, "dstd"), "-c", d.Conf).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "groupadd --system dst-no-such-group") {
		t.Errorf("dstd with an unknown nntp.submit_group: %v, want a start failure saying groupadd --system:\n%s", err, out)
	}

	g, _ := dsttest.NewGroup(t, "dwrn")
	spool := filepath.Join(t.TempDir(), "spool")
	d = dsttest.NewDstd(t, "site-a.test", fmt.Sprintf("spool_dir = %q\n[nntp]\nsubmit_group = %q\n[admin]\ngroup = %q\n", spool, g, g))
	// An older installation: the spool is root's group's, and the
	// data directory lets only its owner through.
	if err := os.MkdirAll(spool, 0o770); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(d.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	d.Start()
	log := d.Log()
	for _, want := range []string{
		"the spool directory is not writable by nntp.submit_group",
		fmt.Sprintf("chgrp %s %s && chmod 3770 %s", g, spool, spool),
		"members of admin.group cannot reach the socket",
		fmt.Sprintf("chgrp %s %s && chmod g+x %s", g, d.Dir, d.Dir),
	} {
		if !strings.Contains(log, want) {
			t.Errorf("dstd's log does not say %q", want)
		}
	}

	// admin.socket in a directory of /run that is missing, and that dstd,
	// not root, may not create: the start fails naming the directory and
	// the command that makes it.
	u := dsttest.NewUser(t, "dnorun")
	runDir := filepath.Join("/run", "dst-authz-"+u.Name)
	d = dsttest.NewDstd(t, "site-a.test", fmt.Sprintf("[admin]\nsocket = %q\n", filepath.Join(runDir, "admin.sock")))
	top := filepath.Dir(d.Conf)
	if err := os.Chmod(filepath.Dir(top), 0o711); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{top, d.Conf} {
		if err := os.Chown(f, int(u.UID), int(u.GID)); err != nil {
			t.Fatal(err)
		}
	}
	out, err = exec.Command("setpriv", "--reuid="+strconv.Itoa(int(u.UID)), "--regid="+strconv.Itoa(int(u.GID)), "--init-groups", "--",
		dsttest.Bin(t, "dstd"), "-c", d.Conf).CombinedOutput()
	for _, want := range []string{
		"its directory " + runDir + " is missing and dstd cannot create it",
		fmt.Sprintf("install -d -m 0711 -o %s -g %s %s", u.Name, u.Name, runDir),
		"RuntimeDirectory=" + filepath.Base(runDir),
	} {
		if err == nil || !strings.Contains(string(out), want) {
			t.Errorf("dstd as a user, admin.socket in a missing directory of /run: %v, want a start failure saying %q:\n%s", err, want, out)
		}
	}
	if _, err := os.Stat(runDir); err == nil {
		t.Errorf("%s exists: dstd made it as a user", runDir)
	}
}
