package dsttest

// A private Postfix (Debian's postfix) for integration tests: its own
// main.cf, master.cf, queue and data directories and log file in a
// temporary directory, started with "postfix -c DIR start" and stopped at
// cleanup. Nothing runs chrooted, so the daemons see the /etc/resolv.conf
// of the namespace they run in. Several instances can run at once as long
// as they listen on different addresses.

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// PostfixOptions describe a private Postfix.
type PostfixOptions struct {
	// Listen is the address of smtpd, or of postscreen in front of it:
	// "127.0.0.1:PORT", or an address of Netns.
	Listen string
	// Hostname is myhostname: the name in the by-clause of the Received
	// fields this Postfix writes, which dstc -m must be given.
	Hostname string
	// Domains are mydestination: mail to them is delivered locally.
	Domains []string
	// Aliases is the aliases file ("trap: |/path/dstc ..."); postmaster
	// is aliased to root unless it has a line of its own.
	Aliases string
	// DefaultPrivs is the user alias pipes run as (with its primary group
	// only); default nobody.
	DefaultPrivs string
	// Main are more main.cf lines ("key = value"), after the harness's.
	Main []string
	// Postscreen puts postscreen(8) on Listen, in front of smtpd.
	Postscreen bool
	// Netns, when set, is the network namespace Postfix runs in.
	Netns *Netns
}

// Postfix is a running private Postfix.
type Postfix struct {
	t       testing.TB
	Dir     string // temporary directory holding everything
	ConfDir string // its -c directory
	Maillog string // its log file
	Listen  string
	netns   *Netns
	bin     string
}

// masterCF runs every daemon unchrooted; %s is the smtp service line(s).
const masterCF = `%s
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

// StartPostfix writes the instance, starts it and waits until it accepts
// connections on Listen. Needs root and postfix installed (see Require
// and RequireRoot).
func StartPostfix(t testing.TB, o PostfixOptions) *Postfix {
	t.Helper()
	bin := Require(t, "postfix", "postfix")
	RequireRoot(t, "Postfix")
	dir := t.TempDir()
	// Alias pipes run as default_privs: they must be able to reach what
	// the test puts in its temporary directories.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p := &Postfix{t: t, Dir: dir, ConfDir: filepath.Join(dir, "etc"), Maillog: filepath.Join(dir, "maillog"),
		Listen: o.Listen, netns: o.Netns, bin: bin}
	queue, data := filepath.Join(dir, "queue"), filepath.Join(dir, "data")
	for _, d := range []string{p.ConfDir, queue, data} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pf, err := user.Lookup("postfix")
	if err != nil {
		t.Fatalf("Postfix's user: %v", err)
	}
	uid, _ := strconv.Atoi(pf.Uid)
	gid, _ := strconv.Atoi(pf.Gid)
	if err := os.Chown(data, uid, gid); err != nil {
		t.Fatal(err)
	}

	host, _, err := net.SplitHostPort(o.Listen)
	if err != nil {
		t.Fatalf("Postfix listen address %q: %v", o.Listen, err)
	}
	aliases := filepath.Join(p.ConfDir, "aliases")
	al := o.Aliases
	if !strings.Contains("\n"+al, "\npostmaster:") {
		al = "postmaster: root\n" + al
	}
	writeFile(t, aliases, al)
	mydomain := o.Hostname
	if i := strings.IndexByte(mydomain, '.'); i >= 0 {
		mydomain = mydomain[i+1:]
	}
	main := []string{
		"compatibility_level = 3.6",
		"queue_directory = " + queue,
		"data_directory = " + data,
		"command_directory = /usr/sbin",
		"daemon_directory = /usr/lib/postfix/sbin",
		"meta_directory = /etc/postfix",
		"shlib_directory = /usr/lib/postfix",
		"mail_owner = postfix",
		"setgid_group = postdrop",
		"default_privs = " + cmp.Or(o.DefaultPrivs, "nobody"),
		"myhostname = " + o.Hostname,
		"mydomain = " + mydomain,
		"myorigin = $mydomain",
		"mydestination = " + strings.Join(o.Domains, ", "),
		"inet_interfaces = " + host,
		"inet_protocols = all",
		"mynetworks = 127.0.0.0/8",
		"alias_maps = hash:" + aliases,
		"alias_database = hash:" + aliases,
		"maillog_file_prefixes = " + dir,
		"maillog_file = " + p.Maillog,
		"smtputf8_enable = no",
		"biff = no",
	}
	main = append(main, o.Main...)
	writeFile(t, filepath.Join(p.ConfDir, "main.cf"), strings.Join(main, "\n")+"\n")
	service := o.Listen + " inet n - n - - smtpd"
	if o.Postscreen {
		service = o.Listen + " inet n - n - 1 postscreen\n" +
			"smtpd     pass  -       -       n       -       -       smtpd\n" +
			"dnsblog   unix  -       -       n       -       0       dnsblog\n" +
			"tlsproxy  unix  -       -       n       -       0       tlsproxy"
	}
	writeFile(t, filepath.Join(p.ConfDir, "master.cf"), fmt.Sprintf(masterCF, service))

	if out, err := p.command("postalias", "-c", p.ConfDir, aliases).CombinedOutput(); err != nil {
		t.Fatalf("postalias: %v\n%s", err, out)
	}
	if out, err := p.command(p.bin, "-c", p.ConfDir, "start").CombinedOutput(); err != nil {
		t.Fatalf("postfix start: %v\n%s\n%s", err, out, p.Log())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Postfix %s log (%s):\n%s", o.Hostname, p.Maillog, p.Log())
		}
		p.Stop()
	})

	WaitFor(t, 30*time.Second, "Postfix to listen on "+o.Listen, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c, err := p.dial(ctx)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return p
}

// command runs a Postfix command in Postfix's namespace: they all check
// main.cf's inet_interfaces against the local addresses.
func (p *Postfix) command(name string, args ...string) *exec.Cmd {
	if p.netns != nil {
		return p.netns.Command(name, args...)
	}
	return exec.Command(name, args...)
}

// dial connects to Listen from inside its namespace.
func (p *Postfix) dial(ctx context.Context) (net.Conn, error) {
	if p.netns != nil {
		return p.netns.Dial(ctx, "", p.Listen)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", p.Listen)
}

// Log returns Postfix's log.
func (p *Postfix) Log() string {
	b, err := os.ReadFile(p.Maillog)
	if err != nil {
		return fmt.Sprintf("(no maillog: %v)", err)
	}
	return string(b)
}

// Stop stops Postfix ("postfix stop").
func (p *Postfix) Stop() {
	p.command(p.bin, "-c", p.ConfDir, "stop").Run()
}

func writeFile(t testing.TB, name, s string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// SMTPMessage is one SMTP transaction of a test client.
type SMTPMessage struct {
	Helo    string // default client.example.org
	XClient string // arguments of an XCLIENT command sent first, if any
	From    string // envelope sender
	To      string // one recipient
	// Data is the message; empty: the client stops after RCPT TO, as a
	// probe does.
	Data string
}

// SMTPError is a reply a test client did not expect.
type SMTPError struct {
	Command string
	Code    int
	Msg     string
}

func (e *SMTPError) Error() string {
	return fmt.Sprintf("SMTP %s: %d %s", e.Command, e.Code, e.Msg)
}

type smtpStep struct {
	want int
	cmd  string
}

// SendSMTP runs m over conn and closes conn. Any reply other than the
// expected one is returned as an *SMTPError (a refused RCPT TO among them).
func SendSMTP(conn net.Conn, m SMTPMessage) error {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	c := textproto.NewConn(conn)
	step := func(want int, cmd string) error {
		if cmd != "" {
			if err := c.PrintfLine("%s", cmd); err != nil {
				return err
			}
		}
		code, msg, err := c.ReadResponse(want)
		if _, ok := err.(*textproto.Error); ok {
			return &SMTPError{Command: cmd, Code: code, Msg: msg}
		}
		return err
	}
	helo := m.Helo
	if helo == "" {
		helo = "client.example.org"
	}
	steps := []smtpStep{{220, ""}, {250, "EHLO " + helo}}
	if m.XClient != "" {
		steps = append(steps, smtpStep{220, "XCLIENT " + m.XClient}, smtpStep{250, "EHLO " + helo})
	}
	steps = append(steps, smtpStep{250, "MAIL FROM:<" + m.From + ">"}, smtpStep{250, "RCPT TO:<" + m.To + ">"})
	for _, s := range steps {
		if err := step(s.want, s.cmd); err != nil {
			return err
		}
	}
	if m.Data != "" {
		if err := step(354, "DATA"); err != nil {
			return err
		}
		w := c.DotWriter()
		if _, err := w.Write([]byte(m.Data)); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		if err := step(250, ""); err != nil {
			return err
		}
	}
	return step(221, "QUIT")
}
