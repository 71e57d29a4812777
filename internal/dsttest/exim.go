package dsttest

// A private Exim (Debian's exim4-daemon-light) for integration tests. Exim
// and Postfix conflict as Debian packages, so test.sh does not install Exim:
// it unpacks the real exim4-daemon-light and exim4-base packages with
// dpkg-deb -x into a directory of its own and names the binary in
// DST_EXIM. An Exim installed the usual way is used when there is one.
//
// Each instance has its own configuration (-C), spool, log directory and
// pid file in a temporary directory and runs as a daemon (-bd). It runs as
// root throughout (exim_user = root): an Exim that drops to its own user
// re-reads a -C configuration only if /etc/exim4/trusted_configs lists it,
// and an unpacked Exim has no such file. The pipe deliveries themselves run
// as PipeUser (default nobody), as on a real site.

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// EximBin returns the path of the Exim binary: DST_EXIM, or an installed
// exim4. Missing, it skips the test, except with CI=true, where it fails.
func EximBin(t testing.TB) string {
	t.Helper()
	p := os.Getenv("DST_EXIM")
	if p == "" {
		p = Require(t, "exim4", "exim4-daemon-light, or set DST_EXIM to an exim4 unpacked as test.sh does")
	} else if _, err := os.Stat(p); err != nil {
		t.Fatalf("DST_EXIM: %v", err)
	}
	RequireRoot(t, "Exim")
	return p
}

// EximOptions describe a private Exim.
type EximOptions struct {
	Listen   string   // address:port of the SMTP daemon
	Hostname string   // primary_hostname: the by-clause of its Received fields
	Domains  []string // local_domains
	// Aliases is an lsearch aliases file for the local domains
	// ("trap: |/path/dstc ...", "alice: /dev/null").
	Aliases string
	// RcptACL are ACL statements checked first at RCPT TO, such as a
	// "deny dnslists = ..." statement.
	RcptACL string
	// PipeUser and PipeGroup are who alias pipes run as (the aliases
	// router's user and group; no initgroups); default nobody, nogroup.
	PipeUser, PipeGroup string
	Netns               *Netns // the network namespace it runs in, if any
}

// Exim is a running private Exim.
type Exim struct {
	t      testing.TB
	Dir    string
	Listen string
	netns  *Netns
	bin    string
	pid    string
}

// StartExim writes the instance, starts the daemon and waits until it
// accepts connections.
func StartExim(t testing.TB, o EximOptions) *Exim {
	t.Helper()
	bin := EximBin(t)
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	host, port, err := net.SplitHostPort(o.Listen)
	if err != nil {
		t.Fatalf("Exim listen address %q: %v", o.Listen, err)
	}
	e := &Exim{t: t, Dir: dir, Listen: o.Listen, netns: o.Netns, bin: bin, pid: filepath.Join(dir, "exim.pid")}
	for _, d := range []string{"spool", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	aliases := filepath.Join(dir, "aliases")
	writeFile(t, aliases, o.Aliases)
	conf := filepath.Join(dir, "exim.conf")
	writeFile(t, conf, fmt.Sprintf(`exim_path = %[1]s
exim_user = root
exim_group = root
keep_environment =
primary_hostname = %[2]s
domainlist local_domains = %[3]s
daemon_smtp_ports = %[4]s
local_interfaces = <; %[5]s
spool_directory = %[6]s/spool
log_file_path = %[6]s/log/%%slog
pid_file_path = %[7]s
tls_advertise_hosts =
rfc1413_hosts =
host_lookup =
acl_smtp_rcpt = acl_check_rcpt

begin acl
acl_check_rcpt:
%[8]s
  accept domains = +local_domains
  deny message = relay not permitted

begin routers
aliases:
  driver = redirect
  domains = +local_domains
  data = ${lookup{$local_part}lsearch{%[9]s}}
  user = %[10]s
  group = %[11]s
  pipe_transport = address_pipe
  file_transport = address_file

begin transports
address_pipe:
  driver = pipe
  return_fail_output
address_file:
  driver = appendfile

begin retry
*	*	F,1m,10s
`, bin, o.Hostname, strings.Join(o.Domains, " : "), port, host, dir, e.pid, o.RcptACL, aliases,
		cmp.Or(o.PipeUser, "nobody"), cmp.Or(o.PipeGroup, "nogroup")))

	// The daemon forks into the background; its output goes to a file,
	// not to a pipe that would stay open as long as the daemon runs.
	out, err := os.Create(filepath.Join(dir, "exim.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := e.command("-C", conf, "-bd", "-q10s")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(out.Name())
		t.Fatalf("exim -bd: %v\n%s\n%s", err, b, e.Log())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Exim %s log:\n%s", o.Hostname, e.Log())
		}
		e.Stop()
	})
	WaitFor(t, 30*time.Second, "Exim to listen on "+o.Listen, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		var c net.Conn
		var err error
		if e.netns != nil {
			c, err = e.netns.Dial(ctx, "", e.Listen)
		} else {
			c, err = (&net.Dialer{}).DialContext(ctx, "tcp", e.Listen)
		}
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return e
}

func (e *Exim) command(args ...string) *exec.Cmd {
	if e.netns != nil {
		return e.netns.Command(e.bin, args...)
	}
	return exec.Command(e.bin, args...)
}

// Log returns Exim's main and panic logs.
func (e *Exim) Log() string {
	var b strings.Builder
	for _, f := range []string{"mainlog", "rejectlog", "paniclog"} {
		if s, err := os.ReadFile(filepath.Join(e.Dir, "log", f)); err == nil {
			fmt.Fprintf(&b, "--- %s\n%s", f, s)
		}
	}
	return b.String()
}

// Stop stops the daemon.
func (e *Exim) Stop() {
	b, err := os.ReadFile(e.pid)
	if err != nil {
		return
	}
	exec.Command("kill", strings.TrimSpace(string(b))).Run()
	os.Remove(e.pid)
}
