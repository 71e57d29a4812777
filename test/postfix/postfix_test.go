// Package postfix_test runs dstc behind a real Postfix: a private Postfix
// instance on 127.0.0.1 delivers trap mail to an alias pipe running dstc, and
// the test checks the reports dstc spools (dstd is deliberately unreachable).
//
// Needs root and an installed postfix (Debian: apt-get install postfix). It is
// skipped otherwise, except that with CI=true a missing postfix is a failure.
package postfix_test

import (
	"bufio"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	trapDomain = "dst.test"
	mxName     = "mx1.example.net"
)

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func findPostfix(t *testing.T) string {
	t.Helper()
	ci := os.Getenv("CI") == "true"
	p, err := exec.LookPath("postfix")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/postfix"); err2 == nil {
			p, err = "/usr/sbin/postfix", nil
		}
	}
	if err != nil {
		if ci {
			t.Fatal("CI=true but postfix is not installed (apt-get install postfix)")
		}
		t.Skip("postfix is not installed; skipping the Postfix integration test")
	}
	if os.Geteuid() != 0 {
		if ci {
			t.Fatal("CI=true but the Postfix integration test must run as root")
		}
		t.Skip("the Postfix integration test needs root")
	}
	return p
}

// masterCF is a chroot-free master.cf with smtpd on 127.0.0.1:PORT.
const masterCF = `127.0.0.1:%d inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`

type instance struct {
	confDir, maillog, spool string
	port                    int
}

func (in *instance) log() string {
	b, err := os.ReadFile(in.maillog)
	if err != nil {
		return fmt.Sprintf("(no maillog: %v)", err)
	}
	return string(b)
}

func setup(t *testing.T) *instance {
	t.Helper()
	postfix := findPostfix(t)

	tmp := t.TempDir()
	// The alias pipe runs as default_privs (nobody): it must reach dstc and
	// the spool directory.
	for _, d := range []string{filepath.Dir(tmp), tmp} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	dstc := filepath.Join(tmp, "dstc")
	build := exec.Command("go", "build", "-o", dstc, "github.com/dst-traps/dst/cmd/dstc")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build dstc: %v\n%s", err, out)
	}

	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)

	in := &instance{
		confDir: filepath.Join(tmp, "etc"),
		maillog: filepath.Join(tmp, "maillog"),
		spool:   filepath.Join(tmp, "spool"),
		port:    freePort(t),
	}
	queue := filepath.Join(tmp, "queue")
	data := filepath.Join(tmp, "data")
	for _, d := range []string{in.confDir, queue, data, in.spool, filepath.Join(in.spool, "new"), filepath.Join(in.spool, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{in.spool, filepath.Join(in.spool, "new"), filepath.Join(in.spool, "tmp")} {
		if err := os.Chown(d, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if pf, err := user.Lookup("postfix"); err == nil {
		puid, _ := strconv.Atoi(pf.Uid)
		pgid, _ := strconv.Atoi(pf.Gid)
		if err := os.Chown(data, puid, pgid); err != nil {
			t.Fatal(err)
		}
	}

	closed := freePort(t) // nothing listens: dstd is "down", dstc spools
	aliases := filepath.Join(in.confDir, "aliases")
	pipe := fmt.Sprintf("|%s -m %s -s 127.0.0.1:%d -spool %s -log stderr", dstc, mxName, closed, in.spool)
	writeFile(t, aliases, fmt.Sprintf("postmaster: root\ntrap: %q\n", pipe))
	writeFile(t, filepath.Join(in.confDir, "main.cf"), strings.Join([]string{
		"compatibility_level = 3.6",
		"queue_directory = " + queue,
		"data_directory = " + data,
		"command_directory = /usr/sbin",
		"daemon_directory = /usr/lib/postfix/sbin",
		"meta_directory = /etc/postfix",
		"shlib_directory = /usr/lib/postfix",
		"mail_owner = postfix",
		"setgid_group = postdrop",
		"default_privs = nobody",
		"myhostname = " + mxName,
		"mydomain = example.net",
		"myorigin = $mydomain",
		"mydestination = " + trapDomain + ", " + mxName,
		"inet_interfaces = 127.0.0.1",
		"inet_protocols = all", // XCLIENT ADDR=IPV6:... needs IPv6 support
		"mynetworks = 127.0.0.0/8",
		"smtpd_authorized_xclient_hosts = 127.0.0.0/8",
		"alias_maps = hash:" + aliases,
		"alias_database = hash:" + aliases,
		"maillog_file_prefixes = " + tmp,
		"maillog_file = " + in.maillog,
		"smtputf8_enable = no",
		"biff = no",
		"",
	}, "\n"))
	writeFile(t, filepath.Join(in.confDir, "master.cf"), fmt.Sprintf(masterCF, in.port))

	run(t, "postalias", "-c", in.confDir, aliases)
	run(t, postfix, "-c", in.confDir, "start")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Postfix log (%s):\n%s", in.maillog, in.log())
		}
		exec.Command(postfix, "-c", in.confDir, "stop").Run()
	})

	// wait for smtpd to listen
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", in.port), time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("postfix does not listen on port %d: %v", in.port, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return in
}

func writeFile(t *testing.T, name, s string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// send delivers one message to trap@dst.test over SMTP; xclient, when not
// empty, is the argument list of an XCLIENT command sent first.
func send(t *testing.T, port int, xclient, subject string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	c := textproto.NewConn(conn)
	step := func(code int, format string, args ...any) {
		t.Helper()
		if format != "" {
			if err := c.PrintfLine(format, args...); err != nil {
				t.Fatal(err)
			}
		}
		if _, msg, err := c.ReadResponse(code); err != nil {
			t.Fatalf("SMTP %q: %v %s", fmt.Sprintf(format, args...), err, msg)
		}
	}
	step(220, "")
	step(250, "EHLO client.example.org")
	if xclient != "" {
		step(220, "XCLIENT %s", xclient)
		step(250, "EHLO spammer.example.org")
	}
	step(250, "MAIL FROM:<spammer@spam.example.com>")
	step(250, "RCPT TO:<trap@%s>", trapDomain)
	step(354, "DATA")
	w := c.DotWriter()
	fmt.Fprintf(w, "From: <spammer@spam.example.com>\r\nTo: <trap@%s>\r\nSubject: %s\r\n"+
		"Message-ID: <%d.%s@spam.example.com>\r\n\r\nBuy now.\r\n",
		trapDomain, subject, time.Now().UnixNano(), strings.ReplaceAll(subject, " ", "."))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	step(250, "")
	step(221, "QUIT")
}

func spooled(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "new"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, "new", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

var sentToCommand = regexp.MustCompile(`(?m)to=<trap@` + regexp.QuoteMeta(trapDomain) + `>.*status=sent`)

func TestPostfixDstcSpool(t *testing.T) {
	in := setup(t)

	send(t, in.port, "", "loopback")
	send(t, in.port, "ADDR=203.0.113.7 NAME=[UNAVAILABLE]", "spam v4")
	send(t, in.port, "ADDR=IPV6:2001:db8::7 NAME=[UNAVAILABLE]", "spam v6")

	// Bounded wait: the two spam reports are spooled and all three messages
	// have been delivered to the dstc pipe.
	deadline := time.Now().Add(60 * time.Second)
	var files []string
	for {
		files = spooled(t, in.spool)
		if len(files) >= 2 && len(sentToCommand.FindAllString(in.log(), -1)) >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60s: %d spool files in %s/new, %d deliveries to the pipe; want 2 and 3",
				len(files), in.spool, len(sentToCommand.FindAllString(in.log(), -1)))
		}
		time.Sleep(250 * time.Millisecond)
	}

	for _, ip := range []string{"203.0.113.7", "2001:db8::7"} {
		n := 0
		for _, f := range files {
			if hasLine(f, "Source-IP: "+ip) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d spooled reports with Source-IP: %s, want 1", n, ip)
		}
	}
	if len(files) != 2 {
		t.Errorf("%d spooled reports, want 2 (the loopback message must not be reported)", len(files))
		for i, f := range files {
			t.Logf("spool file %d:\n%s", i, f)
		}
	}
	if t.Failed() {
		for i, f := range files {
			t.Logf("spool file %d:\n%s", i, f)
		}
	}
}

func hasLine(s, line string) bool {
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		if strings.TrimRight(sc.Text(), "\r") == line {
			return true
		}
	}
	return false
}
