// Package dsttest runs the real DST programs for integration tests and
// benchmarks: it builds dstc, dstd and dstctl once per test binary, and
// starts dstd processes on loopback with a configuration of the test's.
package dsttest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/dst-traps/dst/internal/nntp"
	"github.com/dst-traps/dst/internal/report"
)

// handedOut are the ports FreePort and FreeUDPTCPPort gave this process:
// the kernel may offer a closed port again at once, and two servers of one
// test must not both be told to take it.
var (
	handedOutMu sync.Mutex
	handedOut   = map[int]bool{}
)

// Ports handed out come from below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range, 32768 and up by default): a port the
// kernel picked for some connection's local end, or for another test's
// ":0", can then never be the one a dstd is about to bind. Only tests that
// pick the same way can collide, and each checks the port is free first.
const (
	portLow  = 20000
	portHigh = 32767
)

// freePort returns a loopback port that was free for TCP, and for UDP too
// when udp is set, a moment ago, and that this process never handed out.
func freePort(t testing.TB, udp bool) int {
	t.Helper()
	handedOutMu.Lock()
	defer handedOutMu.Unlock()
	for range 1000 {
		port := portLow + rand.IntN(portHigh-portLow+1)
		if handedOut[port] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ok := true
		if udp {
			u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
			if ok = err == nil; ok {
				u.Close()
			}
		}
		l.Close()
		if ok {
			handedOut[port] = true
			return port
		}
	}
	t.Fatal("no free loopback port found")
	return 0
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	return freePort(t, false)
}

// FreeUDPTCPPort returns a loopback port that was free for both TCP and
// UDP a moment ago: DNS servers listen on both.
func FreeUDPTCPPort(t testing.TB) int {
	t.Helper()
	return freePort(t, true)
}

// Dstd is one dstd process of a test.
type Dstd struct {
	t     testing.TB
	Dir   string // its data directory
	Conf  string // its configuration file
	NNTP  string // its NNTP address, 127.0.0.1:port
	DNS   string // its DNSBL address (UDP and TCP), 127.0.0.1:port
	Admin string // its admin socket
	// Spool is its spool directory (spool_dir, default <Dir>/spool), where
	// its NNTP submission socket, nntp.sock, is too.
	Spool string
	Site  string
	// Prefix, when set before Start, is a command that runs dstd, such as
	// a Netns's Prefix: "ip netns exec NAME".
	Prefix []string
	// LogLevel is the [log] level the harness writes into the
	// configuration (default "debug", what a failing test wants to
	// read); it takes effect at the next Reconfigure. A benchmark sets
	// "info", production's default, so that it does not measure the
	// cost of debug lines no site writes.
	LogLevel string
	logPath  string
	cmd      *exec.Cmd
	exited   chan struct{} // closed when cmd has exited; cmd.ProcessState is then set
}

// NewDstd prepares a dstd for site whose configuration is extra (TOML)
// plus what the harness sets: site, data_dir, logging to stderr at debug
// level (LogLevel), and an NNTP listener on a free loopback port. extra may have its
// own [log] and [nntp] tables; the harness adds its keys to them.
func NewDstd(t testing.TB, site, extra string) *Dstd {
	t.Helper()
	dir := t.TempDir()
	d := &Dstd{t: t, Dir: filepath.Join(dir, "data"), Site: site,
		NNTP: fmt.Sprintf("127.0.0.1:%d", FreePort(t)), DNS: fmt.Sprintf("127.0.0.1:%d", FreeUDPTCPPort(t)),
		logPath: filepath.Join(dir, "dstd.log")}
	d.Admin = filepath.Join(d.Dir, "admin.sock")
	d.Conf = filepath.Join(dir, "dstd.toml")
	d.Reconfigure(extra)
	t.Cleanup(func() {
		d.Stop()
		if t.Failed() {
			t.Logf("dstd %s log:\n%s", site, d.Log())
		}
	})
	return d
}

// Reconfigure rewrites the configuration file with extra in place of the
// previous extra (for sites that must know each other's addresses before
// they start); a running dstd sees it at its next start or SIGHUP.
func (d *Dstd) Reconfigure(extra string) {
	d.t.Helper()
	conf := fmt.Sprintf("site = %q\ndata_dir = %q\n", d.Site, d.Dir) + extra + "\n"
	var top struct {
		SpoolDir string `toml:"spool_dir"`
	}
	toml.Decode(conf, &top) // a broken file is the test's point: dstd will say
	d.Spool = top.SpoolDir
	if d.Spool == "" {
		d.Spool = filepath.Join(d.Dir, "spool")
	}
	level := d.LogLevel
	if level == "" {
		level = "debug"
	}
	conf = addToTable(conf, "log", fmt.Sprintf("destination = \"stderr\"\nlevel = %q", level))
	conf = addToTable(conf, "nntp", fmt.Sprintf("listen = [%q]", d.NNTP))
	conf = addToTable(conf, "dns", fmt.Sprintf("listen = [%q]", d.DNS))
	if err := os.WriteFile(d.Conf, []byte(conf), 0o600); err != nil {
		d.t.Fatal(err)
	}
}

// addToTable puts lines at the top of [table], creating it at the end.
func addToTable(conf, table, lines string) string {
	hdr := "\n[" + table + "]\n"
	if i := strings.Index(conf, hdr); i >= 0 {
		j := i + len(hdr)
		return conf[:j] + lines + "\n" + conf[j:]
	}
	return conf + hdr + lines + "\n"
}

// Start runs dstd and waits until its admin endpoint answers.
func (d *Dstd) Start() {
	d.t.Helper()
	if d.cmd != nil {
		d.t.Fatalf("dstd %s is already running (pid %d)", d.Site, d.cmd.Process.Pid)
	}
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		d.t.Fatal(err)
	}
	argv := append(append([]string(nil), d.Prefix...), Bin(d.t, "dstd"), "-c", d.Conf)
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	logf.Close()
	cmd, exited := d.cmd, make(chan struct{})
	d.exited = exited
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if out, err := exec.Command(Bin(d.t, "dstctl"), "-admin", d.Admin, "status").CombinedOutput(); err == nil {
			return
		} else if time.Now().After(deadline) {
			d.t.Fatalf("dstd %s did not start: %v %s\n%s", d.Site, err, out, d.Log())
		}
		select {
		case <-d.exited:
			cmd := d.cmd
			d.cmd = nil
			d.t.Fatalf("dstd %s exited at start (%v):\n%s", d.Site, cmd.ProcessState, d.Log())
		default:
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop sends SIGTERM and waits for a clean exit.
func (d *Dstd) Stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		switch st := d.cmd.ProcessState; {
		case raceEnabled && st.ExitCode() == raceExitCode:
			d.t.Errorf("dstd %s has a data race: the race detector's report is in its log", d.Site)
		case !st.Success():
			d.t.Errorf("dstd %s exited with %v after SIGTERM", d.Site, st)
		}
	case <-time.After(20 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
		d.t.Errorf("dstd %s did not stop within 20s of SIGTERM", d.Site)
	}
	d.cmd = nil
}

// Kill sends SIGKILL: a crash.
func (d *Dstd) Kill() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	d.cmd.Process.Kill()
	<-d.exited
	d.cmd = nil
}

// Signal sends sig to the running dstd.
func (d *Dstd) Signal(sig os.Signal) { d.cmd.Process.Signal(sig) }

// Pid is the running dstd's process id.
func (d *Dstd) Pid() int { return d.cmd.Process.Pid }

// Log returns what dstd wrote to stderr.
func (d *Dstd) Log() string {
	b, _ := os.ReadFile(d.logPath)
	return string(b)
}

// Ctl runs dstctl against this dstd and returns its output and exit code.
func (d *Dstd) Ctl(args ...string) (string, int) {
	d.t.Helper()
	cmd := exec.Command(Bin(d.t, "dstctl"), append([]string{"-admin", d.Admin}, args...)...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		d.t.Fatal(err)
	}
	return string(out), code
}

// NewSubmitter creates a trap user as docs/ADMIN.md says: its primary group
// is the submission group (group, of id gid; NewGroup), because MTAs run
// pipes with the user's primary group only (Postfix's default_privs and
// pipe(8), Exim's routers without initgroups). It needs root.
func NewSubmitter(t testing.TB, prefix, group string, gid uint32) *User {
	t.Helper()
	u := NewUser(t, prefix)
	accounts(t, "usermod", "--gid", group, u.Name)
	u.GID = gid
	return u
}

// Socket is the address of this dstd's NNTP submission socket, for
// nntp.Dial: dstd's default, nntp.sock in its spool directory. Local
// programs post there; over TCP only nntp.post_allow's addresses may.
func (d *Dstd) Socket() string { return "unix:" + filepath.Join(d.Spool, "nntp.sock") }

// Dstc runs dstc on msg, submitting to this dstd as an MTA's pipe does: to
// the socket in its spool directory (dstc's default for -spool), or into
// the spool when dstd is down.
func (d *Dstd) Dstc(msg []byte, args ...string) (string, int) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, Bin(d.t, "dstc"), append([]string{"-log", "stderr", "-spool", d.Spool}, args...)...)
	cmd.Stdin = bytes.NewReader(msg)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		d.t.Fatal(err)
	}
	return string(out), code
}

// Keyring returns the keyring line of this dstd's key (dstd keygen).
func (d *Dstd) KeyringLine() string {
	d.t.Helper()
	out, err := exec.Command(Bin(d.t, "dstd"), "keygen", "-c", d.Conf).CombinedOutput()
	if err != nil {
		d.t.Fatalf("dstd keygen: %v\n%s", err, out)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == d.Site {
			return sc.Text()
		}
	}
	d.t.Fatalf("no keyring line in:\n%s", out)
	return ""
}

// WaitFor polls cond every 50ms until it is true or timeout passes.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Metrics returns what dstd's /metrics serves on its admin socket.
func (d *Dstd) Metrics() string {
	d.t.Helper()
	hc := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", d.Admin)
	}}}
	resp, err := hc.Get("http://dstd/metrics")
	if err != nil {
		d.t.Fatalf("metrics of %s: %v", d.Site, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		d.t.Fatalf("metrics of %s: %v", d.Site, err)
	}
	return string(b)
}

// Figure logs a figure an integration test measured (a time, a rate) and,
// when DST_TEST_FIGURES names a file, appends it there too: go test shows
// no output of passing packages, and test.sh prints that file at the end.
func Figure(t testing.TB, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf(format, args...)
	t.Log(line)
	name := os.Getenv("DST_TEST_FIGURES")
	if name == "" {
		return
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Errorf("DST_TEST_FIGURES: %v", err)
		return
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "%s: %s\n", t.Name(), line); err != nil {
		t.Errorf("DST_TEST_FIGURES: %v", err)
	}
}

// Go runs fn in a goroutine with a context that stop cancels. stop, which
// t.Cleanup also calls, waits for fn and fails the test if it returns an
// error or does not return within 5 s of the cancel.
func Go(t testing.TB, fn func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("returned %v after its context was cancelled, want nil", err)
				}
			case <-time.After(5 * time.Second):
				t.Error("did not return within 5s of its context being cancelled")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// ServeNNTP runs srv on ln until the test ends, as a peer or a fake site
// in process, and returns ln's address. At the end it shuts srv down, and
// fails the test if that takes more than 5 s, and waits for Serve.
func ServeNNTP(t testing.TB, srv *nntp.Server, ln net.Listener) string {
	t.Helper()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("NNTP server %s: Shutdown: %v", ln.Addr(), err)
		}
		<-served
	})
	return ln.Addr().String()
}

// IHave offers art to the NNTP server at addr with IHAVE, as a peer would,
// and returns the final answer's code: 435 or 436 to the offer, 235, 436 or
// 437 after the article. The Message-ID is the article's own.
func IHave(t testing.TB, addr string, art []byte) int {
	t.Helper()
	id := ""
	for _, line := range strings.Split(string(art), "\r\n") {
		if line == "" {
			break
		}
		if name, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(name, "Message-ID") {
			id = strings.TrimSpace(v)
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := nntp.Dial(ctx, addr, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := c.IHave(ctx, id, art)
	if r.Code == 0 {
		t.Fatalf("IHAVE %s: %v", id, err)
	}
	t.Logf("IHAVE %s: %d %s", id, r.Code, r.Text)
	return r.Code
}

// Inject posts a report of ip at this dstd's submission socket, as dstc
// does, and returns its Message-ID.
func (d *Dstd) Inject(ip string) string {
	d.t.Helper()
	a, err := report.New(report.Hit{SourceIP: netip.MustParseAddr(ip), Arrival: time.Now(), Host: "trap.test", UserAgent: "test",
		Message: []byte("Subject: spam\r\n\r\nbuy\r\n")})
	if err != nil {
		d.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := nntp.Dial(ctx, d.Socket(), 10*time.Second)
	if err != nil {
		d.t.Fatal(err)
	}
	defer c.Close()
	if err := c.Post(ctx, a.Bytes()); err != nil {
		d.t.Fatalf("POST at %s: %v", d.Site, err)
	}
	return a.Get("Message-ID")
}
