// Package postfix_test runs dstc behind a real Postfix: a private Postfix
// instance on 127.0.0.1 delivers trap mail to an alias pipe running dstc, and
// the test checks the reports dstc spools (dstd is deliberately unreachable).
//
// Needs root and an installed postfix (Debian: apt-get install postfix). It is
// skipped otherwise, except that with CI=true a missing postfix is a failure.
// The whole path, from a trap at one site to a refusal at another, is
// test/e2e.
package postfix_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/dsttest"
)

const (
	trapDomain = "dst.test"
	mxName     = "mx1.example.net"
)

type instance struct {
	*dsttest.Postfix
	spool string
	port  int
}

func (in *instance) log() string { return in.Log() }

func setup(t *testing.T) *instance {
	t.Helper()
	dsttest.Require(t, "postfix", "postfix")
	// The alias pipe runs as default_privs, the trap user, whose primary
	// group is the submission group. The spool is made as docs/ADMIN.md
	// says (install -d -m 3770 -o dst -g dst-submit; here root owns it).
	group, gid := dsttest.NewGroup(t, "pfsub")
	trap := dsttest.NewSubmitter(t, "pftrap", group, gid)
	tmp := t.TempDir()
	for _, d := range []string{filepath.Dir(tmp), tmp} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	in := &instance{spool: filepath.Join(tmp, "spool"), port: dsttest.FreePort(t)}
	for _, d := range []string{in.spool, filepath.Join(in.spool, "new"), filepath.Join(in.spool, "tmp")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, 0, int(gid)); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o770|os.ModeSetgid|os.ModeSticky); err != nil {
			t.Fatal(err)
		}
	}
	// No dstd: nothing listens on the spool's nntp.sock, where dstc
	// submits by default, so dstc spools.
	in.Postfix = dsttest.StartPostfix(t, dsttest.PostfixOptions{
		Listen:   fmt.Sprintf("127.0.0.1:%d", in.port),
		Hostname: mxName,
		Domains:  []string{trapDomain, mxName},
		Aliases: fmt.Sprintf("trap: \"|%s -m %s -spool %s -log stderr\"\n",
			dsttest.Bin(t, "dstc"), mxName, in.spool),
		DefaultPrivs: trap.Name,
		Main:         []string{"smtpd_authorized_xclient_hosts = 127.0.0.0/8"},
	})
	return in
}

// send delivers one message to trap@dst.test over SMTP; xclient, when not
// empty, is the argument list of an XCLIENT command sent first.
func send(t *testing.T, port int, xclient, subject string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	err = dsttest.SendSMTP(conn, dsttest.SMTPMessage{
		XClient: xclient,
		Helo:    "spammer.example.org",
		From:    "spammer@spam.example.com",
		To:      "trap@" + trapDomain,
		Data: fmt.Sprintf("From: <spammer@spam.example.com>\r\nTo: <trap@%s>\r\nSubject: %s\r\n"+
			"Message-ID: <%d.%s@spam.example.com>\r\n\r\nBuy now.\r\n",
			trapDomain, subject, time.Now().UnixNano(), strings.ReplaceAll(subject, " ", ".")),
	})
	if err != nil {
		t.Fatal(err)
	}
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

	// Wait until the two spam reports are spooled and all three messages
	// have been delivered to the dstc pipe. Postfix logs status=sent for
	// a pipe delivery only once dstc has exited, after it wrote its spool
	// file if it wrote one: so the count below, and that the loopback
	// message made no file, are final, not a matter of waiting long
	// enough.
	var files []string
	dsttest.WaitFor(t, 60*time.Second, "2 spool files in "+in.spool+"/new and 3 deliveries to the dstc pipe", func() bool {
		files = spooled(t, in.spool)
		return len(files) >= 2 && len(sentToCommand.FindAllString(in.log(), -1)) >= 3
	})

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
