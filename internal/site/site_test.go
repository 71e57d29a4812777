package site

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dst-traps/dst/internal/config"
	"github.com/dst-traps/dst/internal/dkim"
	"github.com/dst-traps/dst/internal/dsttest"
	"github.com/dst-traps/dst/internal/nntp"
	"github.com/dst-traps/dst/internal/report"
	"github.com/dst-traps/dst/internal/store"
)

// These tests run whole sites in this process, on 127.0.0.1:0 and in
// t.TempDir(): under -race, and counted in coverage, which the integration
// tests (test/...) that run the dstd binary are not.

// logBuffer collects a site's log for the assertions; the site logs from
// many goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testConfig is a site named name with everything in a temporary directory
// and every listener on a port of the kernel's choosing; edit may change it
// before it is validated.
func testConfig(t *testing.T, name string, edit func(*config.Config)) *config.Config {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "dstd.toml")
	toml := fmt.Sprintf("site = %q\ndata_dir = %q\n[nntp]\nlisten = [\"127.0.0.1:0\"]\n[dns]\nzone = \"bl.test\"\nlisten = [\"127.0.0.1:0\"]\n",
		name, filepath.Join(dir, "data"))
	if err := os.WriteFile(path, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(cfg)
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	return cfg
}

// running is a site being served by Run.
type running struct {
	*Site
	log    *logBuffer
	cancel context.CancelFunc
	done   chan struct{} // closed when Run has returned err
	err    error
	// failureExpected: the test checks Run's error itself.
	failureExpected bool
}

// wait waits for Run to return, and returns its result.
func (r *running) wait() error {
	select {
	case <-r.done:
		return r.err
	case <-time.After(2 * shutdownGrace):
		return errors.New("Run did not return")
	}
}

// stop ends Run's context and returns Run's result.
func (r *running) stop() error {
	r.cancel()
	return r.wait()
}

// start builds and runs the site of cfg; the test's cleanup stops it and
// fails the test if it did not stop cleanly.
func start(t *testing.T, cfg *config.Config) *running {
	t.Helper()
	lb := new(logBuffer)
	s, err := New(cfg, WithLogger(slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))), WithVersion("test"))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Site: s, log: lb, cancel: cancel, done: make(chan struct{})}
	go func() { r.err = s.Run(ctx); close(r.done) }()
	t.Cleanup(func() {
		if err := r.stop(); err != nil && !r.failureExpected {
			t.Errorf("site %s: Run: %v", cfg.Site, err)
		}
		if t.Failed() {
			t.Logf("log of %s:\n%s", cfg.Site, lb.String())
		}
	})
	return r
}

// post submits a report of ip through the site's Unix socket, as dstc
// does, and returns once the site has stored it (POST is answered after
// the commit).
func post(t *testing.T, s *Site, ip string) {
	t.Helper()
	if err := tryPost(t, s, ip); err != nil {
		t.Fatal(err)
	}
}

// tryPost is post, returning the server's refusal.
func tryPost(t *testing.T, s *Site, ip string) error {
	t.Helper()
	a, err := report.New(report.Hit{SourceIP: netip.MustParseAddr(ip), Arrival: time.Now(), Host: "trap.test",
		UserAgent: "site_test", Message: []byte("From: spammer@example.com\r\nSubject: offer\r\n\r\nbuy\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := nntp.Dial(ctx, "unix:"+s.Addrs().Socket, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Post(ctx, a.Bytes()); err != nil {
		return fmt.Errorf("POST of a report of %s: %w", ip, err)
	}
	return nil
}

func listed(t *testing.T, s *Site, ip string) bool {
	t.Helper()
	_, ok, err := s.db.Lookup(netip.MustParseAddr(ip))
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// queryA asks the site's DNS server for the A record of ip's name.
func queryA(t *testing.T, s *Site, ip string) []dns.RR {
	t.Helper()
	rev, err := dns.ReverseAddr(ip)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimSuffix(rev, "in-addr.arpa.") + "bl.test."
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	c := &dns.Client{Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, s.Addrs().DNS[0].String())
	if err != nil {
		t.Fatalf("DNS query %s: %v", name, err)
	}
	return r.Answer
}

func documentation(c *config.Config) { c.Policy.AllowDocumentation = true }

// A report posted to site A over its Unix socket reaches site B over the
// feed, is listed there, and B's DNS server answers for it.
func TestFeed(t *testing.T) {
	cfgA := testConfig(t, "a.test", documentation)
	var kg bytes.Buffer
	if err := Keygen(cfgA, &kg); err != nil {
		t.Fatal(err)
	}
	key, err := dkim.LoadPrivateKey(cfgA.DKIM.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	cfgB := testConfig(t, "b.test", func(c *config.Config) {
		documentation(c)
		c.Peers = []config.Peer{{Name: "a.test", Addresses: config.Prefixes{{Prefix: netip.MustParsePrefix("127.0.0.1/32")}}}}
	})
	line := dkim.KeyringLine("a.test", cfgA.DKIM.Selector, key.Public().(ed25519.PublicKey))
	if err := os.MkdirAll(filepath.Dir(cfgB.DKIM.Keyring), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgB.DKIM.Keyring, []byte(line+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	b := start(t, cfgB)
	cfgA.Peers = []config.Peer{{Name: "b.test", Feed: config.MustParseHostPort(b.Addrs().NNTP[0].String())}}
	a := start(t, cfgA)

	post(t, a.Site, "192.0.2.7")
	if !listed(t, a.Site, "192.0.2.7") {
		t.Fatal("the report posted to A is not listed at A")
	}
	dsttest.WaitFor(t, 20*time.Second, "the report to reach B over the feed", func() bool { return listed(t, b.Site, "192.0.2.7") })
	dsttest.WaitFor(t, 10*time.Second, "B's DNS to answer for 192.0.2.7", func() bool {
		for _, rr := range queryA(t, b.Site, "192.0.2.7") {
			if a, ok := rr.(*dns.A); ok && a.A.String() == "127.0.0.2" {
				return true
			}
		}
		return false
	})
	if rrs := queryA(t, b.Site, "192.0.2.8"); len(rrs) != 0 {
		t.Errorf("B answers for 192.0.2.8, never reported: %v", rrs)
	}
}

// A site stops when its context ends: Run returns nil, and the ports, the
// sockets and the store are free for the next start.
func TestShutdown(t *testing.T) {
	cfg := testConfig(t, "a.test", nil)
	r := start(t, cfg)
	addrs := r.Addrs()
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, want := range []string{"dstd started", "dstd stopping", "dstd stopped"} {
		if !strings.Contains(r.log.String(), want) {
			t.Errorf("the log lacks %q", want)
		}
	}
	l, err := net.Listen("tcp", addrs.NNTP[0].String())
	if err != nil {
		t.Errorf("the NNTP port is still taken after Run: %v", err)
	} else {
		l.Close()
	}
	pc, err := net.ListenPacket("udp", addrs.DNS[0].String())
	if err != nil {
		t.Errorf("the DNS port is still taken after Run: %v", err)
	} else {
		pc.Close()
	}
	assertNothingLeft(t, cfg)
}

// assertNothingLeft checks that no site of cfg holds its sockets or store.
func assertNothingLeft(t *testing.T, cfg *config.Config) {
	t.Helper()
	for _, sock := range []string{cfg.NNTP.Socket, cfg.Admin.Socket} {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			t.Errorf("%s still answers", sock)
		}
	}
	db, err := store.Open(cfg.DBPath(), store.Options{Timeout: time.Second})
	if err != nil {
		t.Errorf("the store is still held: %v", err)
		return
	}
	db.Close()
}

// A port in use fails New with an error that names the key, and leaves
// nothing bound or open: not the listeners bound before it, not the store.
func TestPortInUse(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	for _, tc := range []struct {
		name, want string
		edit       func(*config.Config)
	}{
		{"nntp", "nntp.listen", func(c *config.Config) {
			c.NNTP.Listen = config.HostPorts{config.MustParseHostPort(tcp.Addr().String())}
		}},
		{"admin", "admin.listen", func(c *config.Config) { c.Admin.Listen = config.MustParseHostPort(tcp.Addr().String()) }},
		// The DNS sockets are bound last: the NNTP and admin listeners
		// bound before must be given back.
		{"dns", "dns.listen", func(c *config.Config) {
			c.DNS.Listen = config.HostPorts{config.MustParseHostPort(udp.LocalAddr().String())}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, "a.test", tc.edit)
			s, err := New(cfg)
			if err == nil {
				s.Close()
				t.Fatal("New succeeded on a port in use")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "address already in use") {
				t.Errorf("New: %v; want an error naming %s and the port in use", err, tc.want)
			}
			assertNothingLeft(t, cfg)
		})
	}
}

// When New returns, every listener is bound, the DNS server's included:
// "dstd started" is true when it is logged. A listener that fails while
// the site runs stops it, and Run says why (its error used to be lost).
func TestListenerFailureReported(t *testing.T) {
	r := start(t, testConfig(t, "a.test", nil))
	if _, err := net.ListenPacket("udp", r.Addrs().DNS[0].String()); err == nil {
		t.Fatal("the DNS port is free after New")
	}
	dsttest.WaitFor(t, 10*time.Second, "the DNS server to answer", func() bool {
		m := new(dns.Msg)
		m.SetQuestion("bl.test.", dns.TypeSOA)
		_, _, err := (&dns.Client{Timeout: time.Second}).Exchange(m, r.Addrs().DNS[0].String())
		return err == nil
	})
	r.failureExpected = true
	r.dnsLs[0].Close() // as if the socket failed under the server
	if err := r.wait(); err == nil || !strings.Contains(err.Error(), "DNS listener") {
		t.Errorf("Run = %v; want the DNS listener's error", err)
	}
	if !strings.Contains(r.log.String(), "a listener failed") {
		t.Errorf("the failure is not logged:\n%s", r.log.String())
	}
}

// dialOnStart is a log handler that, when "dstd started" is logged,
// connects to every address the site listens on: the line must be true
// when it is written.
type dialOnStart struct {
	slog.Handler
	addrs  func() Addrs
	mu     sync.Mutex
	tried  bool
	failed []string
}

func (h *dialOnStart) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "dstd started" {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.tried = true
		a := h.addrs()
		if len(a.NNTP) != 1 || len(a.NNTPS) != 1 || len(a.DNS) != 1 {
			h.failed = append(h.failed, fmt.Sprintf("bound: nntp %v, tls %v, dns %v; want one of each", a.NNTP, a.NNTPS, a.DNS))
		}
		try := func(network, addr string) {
			c, err := net.DialTimeout(network, addr, 5*time.Second)
			if err != nil {
				h.failed = append(h.failed, err.Error())
				return
			}
			c.Close()
		}
		for _, l := range append(append([]net.Addr(nil), a.NNTP...), a.NNTPS...) {
			try("tcp", l.String())
		}
		for _, l := range a.DNS {
			try("tcp", l.String()) // TCP is on the UDP port
		}
		try("unix", a.Socket)
		try("unix", a.Admin)
		if a.AdminTCP == nil {
			h.failed = append(h.failed, "no admin.listen")
		} else {
			try("tcp", a.AdminTCP.String())
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h *dialOnStart) Enabled(context.Context, slog.Level) bool { return true }

func (h *dialOnStart) WithAttrs(as []slog.Attr) slog.Handler {
	return &dialOnStart{Handler: h.Handler.WithAttrs(as), addrs: h.addrs}
}

// "dstd started" is logged once every listener is bound: each of them
// takes a connection at that moment.
func TestStartedAfterEveryListener(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeCert(t, cert, key)
	cfg := testConfig(t, "a.test", func(c *config.Config) {
		c.TLS = config.TLS{Cert: cert, Key: key, Listen: config.HostPorts{config.MustParseHostPort("127.0.0.1:0")}}
		c.Admin.Listen = config.MustParseHostPort("127.0.0.1:0")
	})
	var s *Site
	h := &dialOnStart{Handler: slog.DiscardHandler, addrs: func() Addrs { return s.Addrs() }}
	s, err := New(cfg, WithLogger(slog.New(h)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	dsttest.WaitFor(t, 10*time.Second, "dstd started to be logged", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.tried
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.failed) > 0 {
		t.Errorf("when dstd started was logged, listeners did not answer: %v", h.failed)
	}
}
