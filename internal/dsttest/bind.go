package dsttest

// A private BIND (ISC named, Debian's bind9) for integration tests: dstd
// pushes listings into an existing server with DNS UPDATE (RFC 2136)
// signed with TSIG (RFC 8945), and standard secondaries such as BIND can
// transfer dstd's own zone (RFC 5936 AXFR, RFC 1996 NOTIFY). Tests run the
// real named for both.
//
// Each StartBIND writes a named.conf of its own, with its zone files and
// working directory, into a temporary directory and runs named in the
// foreground (-g, which also logs to stderr) on 127.0.0.1 and a free port,
// UDP and TCP. The system's /etc/bind is never read (not even bind.keys:
// validation is off) and nothing is written outside the directory, so
// several named can run at once. There is no rndc: the controls statement
// is empty, so named opens no control channel that could collide with the
// system's on port 953.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// BINDOptions describe a private named. At least one of Primary and
// Secondary must be set.
type BINDOptions struct {
	// Primary is a zone named serves from a file of its own, which clients
	// holding Key may change with DNS UPDATE and transfer with AXFR.
	Primary *BINDPrimary
	// Secondary is a zone named transfers from another server (dstd).
	Secondary *BINDSecondary
	// Port is the UDP and TCP port on 127.0.0.1; 0 picks a free one. A
	// test sets it when another server must know it in advance (the
	// primary's also-notify).
	Port int
}

// TSIGKey is a TSIG key as named.conf's key statement has it.
type TSIGKey struct {
	Name      string // e.g. "dst-key"
	Algorithm string // default hmac-sha256
	Secret    string // base64
}

// BINDPrimary is a primary zone of the private named.
type BINDPrimary struct {
	Zone string // e.g. "bl.test"
	// Key may update (allow-update) and transfer (allow-transfer) the
	// zone; without a key nobody may do either.
	Key *TSIGKey
	// Records are zone-file lines added after the SOA, NS and the NS's
	// address (ns.<zone> A 127.0.0.1), relative to the zone's origin.
	Records []string
	// AlsoNotify are servers ("127.0.0.1 port 5301") told of each change
	// with NOTIFY.
	AlsoNotify []string
}

// BINDSecondary is a secondary zone of the private named.
type BINDSecondary struct {
	Zone    string
	Primary string   // host:port of the primary (dstd's DNS listener)
	Key     *TSIGKey // if set, transfers are signed with it
}

// BIND is a running private named.
type BIND struct {
	t    testing.TB
	Dir  string // named.conf, zone files, working directory
	addr string
	cmd  *exec.Cmd
	out  *SyncBuffer
	done chan struct{}
	werr error
}

// BINDBin returns the path of named. When BIND is not installed or the
// test does not run as root, the test is skipped, except with CI=true,
// where it fails: CI installs bind9 (test.sh) and runs as root, so a skip
// there would hide a broken setup.
func BINDBin(t testing.TB) string {
	t.Helper()
	bin := Require(t, "named", "bind9")
	RequireRoot(t, "named, which runs as user bind")
	return bin
}

// StartBIND writes the configuration, starts named and waits until it
// answers an SOA query for each of its zones (a secondary answers once it
// has transferred the zone). t.Cleanup stops it and removes its directory;
// when the test has failed, named's output is written to the test log
// first.
func StartBIND(t testing.TB, o BINDOptions) *BIND {
	t.Helper()
	named := BINDBin(t)
	if o.Primary == nil && o.Secondary == nil {
		t.Fatal("StartBIND: no zone: set Primary or Secondary")
	}
	u, err := user.Lookup("bind")
	if err != nil {
		t.Fatalf("BIND is installed but there is no user bind: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)

	// Not t.TempDir: its parent is 0700 root and named runs as bind, which
	// must also write there (UPDATE journals, secondary zone files).
	dir, err := os.MkdirTemp("", "dst-bind-")
	if err != nil {
		t.Fatal(err)
	}
	if o.Port == 0 {
		o.Port = FreeUDPTCPPort(t)
	}
	b := &BIND{t: t, Dir: dir, addr: fmt.Sprintf("127.0.0.1:%d", o.Port), out: &SyncBuffer{}}
	t.Cleanup(func() {
		b.Stop()
		if t.Failed() {
			t.Logf("named (%s) output:\n%s", b.addr, b.Output())
		}
		os.RemoveAll(dir)
	})
	conf, err := b.writeFiles(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, uid, gid)
	}); err != nil {
		t.Fatal(err)
	}

	// named-checkconf first: its message is clearer than named's when the
	// configuration a test asked for is wrong.
	if cc, err := exec.LookPath("named-checkconf"); err == nil {
		if out, err := exec.Command(cc, conf).CombinedOutput(); err != nil {
			t.Fatalf("named-checkconf %s: %v\n%s", conf, err, out)
		}
	}
	b.cmd = exec.Command(named, "-g", "-c", conf, "-u", "bind", "-n", "1")
	b.cmd.Dir = dir
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
	// Its own process group, so that Stop can make sure nothing is left.
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start named: %v", err)
	}
	b.done = make(chan struct{})
	go func() {
		b.werr = b.cmd.Wait()
		close(b.done)
	}()

	var zones []string
	if o.Primary != nil {
		zones = append(zones, o.Primary.Zone)
	}
	if o.Secondary != nil {
		zones = append(zones, o.Secondary.Zone)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, z := range zones {
		for {
			r, err := b.Query(z, dns.TypeSOA)
			if err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0 {
				break
			}
			select {
			case <-b.done:
				t.Fatalf("named exited before serving %s (%v)\n%s", z, b.werr, b.Output())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("named on %s did not answer the SOA of %s within 30s (last: %v %v)\n%s", b.addr, z, r, err, b.Output())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return b
}

func keyStmt(k *TSIGKey) string {
	alg := k.Algorithm
	if alg == "" {
		alg = "hmac-sha256"
	}
	return fmt.Sprintf("key %q {\n\talgorithm %s;\n\tsecret %q;\n};\n", strings.TrimSuffix(k.Name, "."), strings.TrimSuffix(alg, "."), k.Secret)
}

// writeFiles writes named.conf and the primary's zone file; it returns
// named.conf's path.
func (b *BIND) writeFiles(o BINDOptions) (string, error) {
	_, port, _ := net.SplitHostPort(b.addr)
	var c strings.Builder
	fmt.Fprintf(&c, `// Written by dsttest.StartBIND for one test.
options {
	directory %[1]q;
	pid-file %[2]q;
	session-keyfile %[3]q;
	managed-keys-directory %[1]q;
	listen-on port %[4]s { 127.0.0.1; };
	listen-on-v6 { none; };
	// An authoritative server only: never an open resolver.
	recursion no;
	allow-query { any; };
	dnssec-validation no;
	// The transfer and NOTIFY sources are loopback like everything else.
	transfer-source 127.0.0.1;
	notify-source 127.0.0.1;
	// Answer NOTIFY and transfer at once instead of spreading them out.
	notify-delay 0;
	min-refresh-time 1;
	min-retry-time 1;
};
// No control channel (rndc): the system's named may have port 953.
controls { };
logging {
	category lame-servers { null; };
};
`, b.Dir, filepath.Join(b.Dir, "named.pid"), filepath.Join(b.Dir, "session.key"), port)

	keys := map[string]bool{}
	addKey := func(k *TSIGKey) {
		if k != nil && !keys[k.Name] {
			keys[k.Name] = true
			c.WriteString(keyStmt(k))
		}
	}
	if p := o.Primary; p != nil {
		addKey(p.Key)
		zone := strings.TrimSuffix(p.Zone, ".")
		file := "primary-" + zone + ".db"
		acl := "none;"
		if p.Key != nil {
			acl = fmt.Sprintf("key %q;", strings.TrimSuffix(p.Key.Name, "."))
		}
		notify := "no"
		also := ""
		if len(p.AlsoNotify) > 0 {
			notify = "explicit"
			also = "\talso-notify { " + strings.Join(p.AlsoNotify, "; ") + "; };\n"
		}
		fmt.Fprintf(&c, "zone %q {\n\ttype primary;\n\tfile %q;\n\tallow-update { %s };\n\tallow-transfer { %s };\n\tnotify %s;\n%s};\n",
			zone, file, acl, acl, notify, also)
		zf := fmt.Sprintf(`$ORIGIN %[1]s.
$TTL 300
@	IN SOA ns.%[1]s. hostmaster.%[1]s. 1 3600 600 86400 60
@	IN NS ns.%[1]s.
ns	IN A 127.0.0.1
`, zone) + strings.Join(p.Records, "\n") + "\n"
		if err := os.WriteFile(filepath.Join(b.Dir, file), []byte(zf), 0o644); err != nil {
			return "", err
		}
	}
	if s := o.Secondary; s != nil {
		addKey(s.Key)
		host, pport, err := net.SplitHostPort(s.Primary)
		if err != nil {
			return "", fmt.Errorf("secondary zone %s: primary %q is not host:port: %w", s.Zone, s.Primary, err)
		}
		key := ""
		if s.Key != nil {
			key = fmt.Sprintf(" key %q", strings.TrimSuffix(s.Key.Name, "."))
		}
		zone := strings.TrimSuffix(s.Zone, ".")
		fmt.Fprintf(&c, "zone %q {\n\ttype secondary;\n\tfile %q;\n\tprimaries { %s port %s%s; };\n\tallow-notify { 127.0.0.1; };\n\tnotify no;\n};\n",
			zone, "secondary-"+zone+".db", host, pport, key)
	}
	conf := filepath.Join(b.Dir, "named.conf")
	if err := os.WriteFile(conf, []byte(c.String()), 0o644); err != nil {
		return "", err
	}
	// Readable and searchable by bind (and writable, after the chown).
	if err := os.Chmod(b.Dir, 0o755); err != nil {
		return "", err
	}
	return conf, nil
}

// Addr is named's address, 127.0.0.1:port, for UDP and TCP.
func (b *BIND) Addr() string { return b.addr }

// Query asks named for name and qtype over UDP, retrying over TCP when the
// answer is truncated.
func (b *BIND) Query(name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = false
	c := &dns.Client{Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, b.addr)
	if err == nil && r.Truncated {
		c.Net = "tcp"
		r, _, err = c.Exchange(m, b.addr)
	}
	if err != nil {
		return nil, fmt.Errorf("query %s %s at %s: %w", name, dns.TypeToString[qtype], b.addr, err)
	}
	return r, nil
}

// Output returns what named wrote to stdout and stderr (-g logs there).
func (b *BIND) Output() string { return b.out.String() }

// Stop sends SIGTERM and waits for named to exit (SIGKILL after 20s).
func (b *BIND) Stop() {
	if b.cmd == nil {
		return
	}
	select {
	case <-b.done:
	default:
		syscall.Kill(b.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-b.done:
		case <-time.After(20 * time.Second):
			b.t.Errorf("named did not stop within 20s of SIGTERM; killing it")
			syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
			<-b.done
		}
	}
	b.cmd = nil
}

// WaitSerial waits until named serves zone with an SOA serial of at least
// serial, e.g. a secondary after a NOTIFY.
func (b *BIND) WaitSerial(ctx context.Context, zone string, serial uint32) error {
	for {
		r, err := b.Query(zone, dns.TypeSOA)
		if err == nil && len(r.Answer) > 0 {
			if soa, ok := r.Answer[0].(*dns.SOA); ok && soa.Serial >= serial {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("zone %s at %s did not reach serial %d", zone, b.addr, serial), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// SyncBuffer is a bytes.Buffer that a process, or a logger, may write
// while a test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *SyncBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *SyncBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
