package dnsupdate

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dst-traps/dst/internal/action"
	"github.com/dst-traps/dst/internal/dnsutil"
	"github.com/dst-traps/dst/internal/dsttest"
	"github.com/dst-traps/dst/internal/metrics"
	"github.com/dst-traps/dst/internal/store"
)

// Integration tests against the real BIND (dsttest.StartBIND); they skip
// when named is missing or not root, unless CI=true.

const testZone = "bl.test"

func newSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

type bindEnv struct {
	bind   *dsttest.BIND
	key    dsttest.TSIGKey
	db     *store.DB
	logBuf *dsttest.SyncBuffer
}

func startEnv(t *testing.T, records ...string) *bindEnv {
	t.Helper()
	key := dsttest.TSIGKey{Name: "dst-key", Secret: newSecret(t)}
	b := dsttest.StartBIND(t, dsttest.BINDOptions{Primary: &dsttest.BINDPrimary{Zone: testZone, Key: &key, Records: records}})
	db, err := store.Open(filepath.Join(t.TempDir(), "dst.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &bindEnv{bind: b, key: key, db: db, logBuf: &dsttest.SyncBuffer{}}
}

func (e *bindEnv) updater(t *testing.T, keyName, secret string) *Updater {
	t.Helper()
	u, err := New(Config{Server: e.bind.Addr(), Zone: testZone, KeyName: keyName, Secret: secret,
		Log: e.log(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (e *bindEnv) log() *slog.Logger {
	return slog.New(slog.NewTextHandler(e.logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// run runs u on the action runner, as dstd does, and returns its kick
// channel and a stop function that waits for the runner to return.
func run(t *testing.T, u *Updater, q store.Queue) (chan struct{}, func()) {
	t.Helper()
	return runWith(t, u, q, action.RunnerOptions{Log: u.c.Log})
}

func runWith(t *testing.T, u *Updater, q store.Queue, opt action.RunnerOptions) (chan struct{}, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	kick := make(chan struct{}, 1)
	opt.Kick = kick
	opt.MinBackoff, opt.MaxBackoff = 100*time.Millisecond, 200*time.Millisecond
	done := make(chan error, 1)
	go func() { done <- action.Run(ctx, q, u, opt) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return kick, stop
}

func kickIt(k chan struct{}) {
	select {
	case k <- struct{}{}:
	default:
	}
}

func listed(ip string, exp time.Time) store.Event {
	return store.Event{Kind: store.EventReport, Time: time.Now(), IP: netip.MustParseAddr(ip),
		MessageID: "<" + ip + "@test>", Origin: "site-a.test", Listed: true, Expires: exp}
}

// lookup returns the A and TXT answers for ip's name, and the rcode.
func (e *bindEnv) lookup(t *testing.T, ip string) (a string, txt string, rcode int) {
	t.Helper()
	name := dnsutil.ReverseName(netip.MustParseAddr(ip), testZone)
	r, err := e.bind.Query(name, dns.TypeA)
	if err != nil {
		t.Fatal(err)
	}
	for _, rr := range r.Answer {
		if x, ok := rr.(*dns.A); ok {
			a = x.A.String()
		}
	}
	rcode = r.Rcode
	r, err = e.bind.Query(name, dns.TypeTXT)
	if err != nil {
		t.Fatal(err)
	}
	for _, rr := range r.Answer {
		if x, ok := rr.(*dns.TXT); ok {
			txt = dnsutil.TXTText(x.Txt)
		}
	}
	return a, txt, rcode
}

func depth(t *testing.T, db *store.DB) int {
	t.Helper()
	n, err := db.QueueDepth(QueueName)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestBINDListAndExpire(t *testing.T) {
	e := startEnv(t)
	u := e.updater(t, e.key.Name, e.key.Secret)
	exp := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, ip := range []string{"203.0.113.7", "2001:db8::42"} {
		if err := e.db.Enqueue([]string{QueueName}, listed(ip, exp)); err != nil {
			t.Fatal(err)
		}
	}
	// Below the threshold: nothing to publish, but it must be consumed.
	below := listed("198.51.100.1", time.Time{})
	below.Listed = false
	if err := e.db.Enqueue([]string{QueueName}, below); err != nil {
		t.Fatal(err)
	}
	kick, _ := run(t, u, e.db)
	dsttest.WaitFor(t, 10*time.Second, "the listings in BIND", func() bool {
		a, _, _ := e.lookup(t, "2001:db8::42")
		return a == "127.0.0.2" && depth(t, e.db) == 0
	})
	for _, ip := range []string{"203.0.113.7", "2001:db8::42"} {
		a, txt, _ := e.lookup(t, ip)
		if a != "127.0.0.2" || !strings.Contains(txt, "2026-12-01T10:00:00Z") || !strings.Contains(txt, ip) {
			t.Errorf("%s: A %q TXT %q", ip, a, txt)
		}
	}
	if _, _, rc := e.lookup(t, "198.51.100.1"); rc != dns.RcodeNameError {
		t.Errorf("below-threshold address published (rcode %s)", dns.RcodeToString[rc])
	}

	// A new report replaces the TXT rather than adding a second one.
	exp2 := exp.Add(24 * time.Hour)
	if err := e.db.Enqueue([]string{QueueName}, listed("203.0.113.7", exp2)); err != nil {
		t.Fatal(err)
	}
	kickIt(kick)
	dsttest.WaitFor(t, 10*time.Second, "the extended listing", func() bool {
		_, txt, _ := e.lookup(t, "203.0.113.7")
		return strings.Contains(txt, "2026-12-02T10:00:00Z")
	})
	r, err := e.bind.Query(dnsutil.ReverseName(netip.MustParseAddr("203.0.113.7"), testZone), dns.TypeTXT)
	if err != nil || len(r.Answer) != 1 {
		t.Errorf("TXT after a second report: %v %v, want one record", r, err)
	}

	// Expiry and delisting delete the names.
	if err := e.db.Enqueue([]string{QueueName}, store.Event{Kind: store.EventExpired, Time: time.Now(), IP: netip.MustParseAddr("203.0.113.7")}); err != nil {
		t.Fatal(err)
	}
	if err := e.db.Enqueue([]string{QueueName}, store.Event{Kind: store.EventDelisted, Time: time.Now(), IP: netip.MustParseAddr("2001:db8::42"), By: "dstctl"}); err != nil {
		t.Fatal(err)
	}
	kickIt(kick)
	dsttest.WaitFor(t, 10*time.Second, "the names to go", func() bool {
		_, _, rc1 := e.lookup(t, "203.0.113.7")
		_, _, rc2 := e.lookup(t, "2001:db8::42")
		// The acks follow the server's answer: wait for them too. The
		// below-threshold event is acknowledged by the runner without
		// reaching the updater: 5 events applied.
		return rc1 == dns.RcodeNameError && rc2 == dns.RcodeNameError && u.Stats().Events == 5 && depth(t, e.db) == 0
	})
	if d := depth(t, e.db); d != 0 {
		t.Errorf("queue depth %d after everything was applied", d)
	}
	if s := u.Stats(); s.Events != 5 || s.UpdateFailures != 0 {
		t.Errorf("stats %+v, want 5 events and no failures", s)
	}
}

func TestBINDBatches(t *testing.T) {
	e := startEnv(t)
	u := e.updater(t, e.key.Name, e.key.Secret)
	reg := prometheus.NewRegistry()
	exp := time.Now().Add(time.Hour)
	// Enqueued before Run starts, so that it finds them all due: 100,
	// 100 and 50.
	for i := range 250 {
		ev := listed("10.0.0.1", exp)
		ev.IP = netip.AddrFrom4([4]byte{10, 1, byte(i / 256), byte(i)})
		if err := e.db.Enqueue([]string{QueueName}, ev); err != nil {
			t.Fatal(err)
		}
	}
	runWith(t, u, e.db, action.RunnerOptions{Log: u.c.Log, Metrics: metrics.New(reg)})
	// The runner counts a batch done once its acknowledgement is
	// committed, just after the queue shows it gone: wait for both.
	dsttest.WaitFor(t, 20*time.Second, "the queue to drain and 250 actions counted", func() bool {
		return depth(t, e.db) == 0 && metricValue(t, reg, "dst_actions_done_total") == 250
	})
	if s := u.Stats(); s.Updates != 3 || s.Events != 250 {
		t.Errorf("stats %+v, want 250 events in 3 UPDATE messages", s)
	}
	if v := metricValue(t, reg, "dst_actions_done_total"); v != 250 {
		t.Errorf("dst_actions_done_total{queue=dnsupdate} = %v, want 250", v)
	}
	for _, ip := range []string{"10.1.0.0", "10.1.0.99", "10.1.0.100", "10.1.0.249"} {
		if a, _, _ := e.lookup(t, ip); a != "127.0.0.2" {
			t.Errorf("%s not listed (A %q)", ip, a)
		}
	}
}

func TestBINDBadKey(t *testing.T) {
	for _, tc := range []struct {
		name, keyName, wantLog string
		wrongSecret            bool
	}{
		{"unknown key", "no-such-key", "TSIG key no-such-key not accepted (BADKEY) — check dns.update.key_name/secret against the server's key", false},
		{"wrong secret", "dst-key", "(BADSIG)", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEnv(t)
			secret := e.key.Secret
			if tc.wrongSecret {
				secret = newSecret(t)
			}
			bad := e.updater(t, tc.keyName, secret)
			for _, ip := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
				if err := e.db.Enqueue([]string{QueueName}, listed(ip, time.Now().Add(time.Hour))); err != nil {
					t.Fatal(err)
				}
			}
			_, stop := run(t, bad, e.db)
			dsttest.WaitFor(t, 10*time.Second, "the refusal in the log", func() bool {
				return strings.Contains(e.logBuf.String(), tc.wantLog) && bad.Stats().UpdateFailures >= 2
			})
			stop()
			if d := depth(t, e.db); d != 3 {
				t.Errorf("queue depth %d after refusals, want the 3 events kept", d)
			}
			if a, _, _ := e.lookup(t, "192.0.2.1"); a != "" {
				t.Errorf("listed despite the bad key: %s", a)
			}
			// The refusal is one ERROR line with the cause, not a warning.
			var line string
			for l := range strings.Lines(e.logBuf.String()) {
				if strings.Contains(l, tc.wantLog) {
					line = l
					break
				}
			}
			if !strings.Contains(line, "level=ERROR") || !strings.Contains(line, "events_kept=3") {
				t.Errorf("log line %q, want an ERROR keeping 3 events", line)
			}
			t.Logf("log: %s", strings.TrimSpace(line))

			good := e.updater(t, e.key.Name, e.key.Secret)
			run(t, good, e.db)
			dsttest.WaitFor(t, 10*time.Second, "the events applied with the right key", func() bool {
				return depth(t, e.db) == 0
			})
			for _, ip := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
				if a, _, _ := e.lookup(t, ip); a != "127.0.0.2" {
					t.Errorf("%s not listed after fixing the key", ip)
				}
			}
		})
	}
}

func TestBINDResync(t *testing.T) {
	exp := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	ev := func(ip string) store.Event { return listed(ip, exp) }
	okTXT := defaultTXT(netip.MustParseAddr("10.0.0.3"), ev("10.0.0.3"))
	e := startEnv(t,
		// Not wanted: must go (A and TXT).
		"9.9.9.10 300 IN A 127.0.0.2", "9.9.9.10 300 IN TXT \"stale\"",
		"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2 300 IN A 127.0.0.2",
		// Wanted with a wrong TXT and a second A.
		"1.0.0.10 300 IN A 127.0.0.2", "1.0.0.10 300 IN A 127.0.0.3", "1.0.0.10 300 IN TXT \"wrong\"",
		// Wanted and right: untouched.
		"3.0.0.10 300 IN A 127.0.0.2", "3.0.0.10 300 IN TXT \""+okTXT+"\"",
		// Not address names: left alone.
		"foo 300 IN A 127.0.0.5", "007.0.0.10 300 IN A 127.0.0.6", "_dmarc 300 IN TXT \"v=DMARC1; p=none\"",
		// 10.0.0.2 and 2001:db8::2 are missing.
	)
	u := e.updater(t, e.key.Name, e.key.Secret)
	wanted := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "2001:db8::2"}
	want := func(fn func(netip.Addr, store.Event) error) error {
		for _, ip := range wanted {
			if err := fn(netip.MustParseAddr(ip), ev(ip)); err != nil {
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := u.Resync(ctx, want); err != nil {
		t.Fatal(err)
	}
	res := u.LastResync()
	if res != (ResyncResult{Wanted: 4, Present: 4, Added: 2, Fixed: 1, Removed: 2, Updates: 1}) {
		t.Errorf("resync %+v", res)
	}
	for _, ip := range wanted {
		a, txt, _ := e.lookup(t, ip)
		if a != "127.0.0.2" || txt != defaultTXT(netip.MustParseAddr(ip), ev(ip)) {
			t.Errorf("%s after resync: A %q TXT %q", ip, a, txt)
		}
	}
	r, _ := e.bind.Query("1.0.0.10."+testZone, dns.TypeA)
	if r == nil || len(r.Answer) != 1 {
		t.Errorf("1.0.0.10 has %v, want one A", r)
	}
	for _, ip := range []string{"10.9.9.9", "2001:db8::1"} {
		if _, _, rc := e.lookup(t, ip); rc != dns.RcodeNameError {
			t.Errorf("%s still in the zone (rcode %s)", ip, dns.RcodeToString[rc])
		}
	}
	for _, name := range []string{"foo", "007.0.0.10", "_dmarc", "ns", "@"} {
		qt := dns.TypeA
		fq := name + "." + testZone
		switch name {
		case "_dmarc":
			qt = dns.TypeTXT
		case "@":
			qt, fq = dns.TypeSOA, testZone
		}
		r, err := e.bind.Query(fq, qt)
		if err != nil || len(r.Answer) == 0 {
			t.Errorf("%s was touched: %v %v", fq, r, err)
		}
	}

	// A second pass finds nothing to do.
	if err := u.Resync(ctx, want); err != nil {
		t.Fatal(err)
	}
	if res := u.LastResync(); res != (ResyncResult{Wanted: 4, Present: 4}) {
		t.Errorf("second resync %+v, want no changes", res)
	}

	// Without the right key the transfer is refused, with a clear error.
	bad := e.updater(t, e.key.Name, newSecret(t))
	err := bad.Resync(ctx, want)
	if err == nil || !strings.Contains(err.Error(), "allow-transfer") {
		t.Errorf("resync with a wrong secret: %v", err)
	}
	t.Logf("resync with a wrong secret: %v", err)
}

// oddTXT is a TXT text that miekg/dns would misread if it were put into
// a record unescaped: a backslash, an escape-like sequence, quotes,
// non-ASCII and a control byte, long enough to need three
// character-strings, with a multi-byte character across the first cut.
const oddTXT = `back\slash \065BC "quoted" ` + "caf\u00e9 \u2014 tab\t." + "\u00e9\u00e9\u00e9"

func longOddTXT(ip netip.Addr) string {
	return strings.Repeat("x", 254) + "\u00e9" + oddTXT + " " + ip.String() + " " + strings.Repeat("\u00fc", 150)
}

// TestBINDExactTXT publishes a TXT with bytes that are special in
// miekg/dns's presentation form, and checks that BIND serves them byte for
// byte, and that Resync then finds nothing to fix, twice.
func TestBINDExactTXT(t *testing.T) {
	e := startEnv(t)
	u := e.updater(t, e.key.Name, e.key.Secret)
	u.c.TXT = func(ip netip.Addr, _ store.Event) string { return longOddTXT(ip) }
	exp := time.Now().Add(time.Hour)
	ips := []string{"203.0.113.9", "2001:db8::9"}
	for _, ip := range ips {
		if err := e.db.Enqueue([]string{QueueName}, listed(ip, exp)); err != nil {
			t.Fatal(err)
		}
	}
	run(t, u, e.db)
	dsttest.WaitFor(t, 10*time.Second, "the listings in BIND", func() bool {
		return depth(t, e.db) == 0 && u.Stats().Events == 2
	})
	for _, ip := range ips {
		want := longOddTXT(netip.MustParseAddr(ip))
		if a, txt, _ := e.lookup(t, ip); a != "127.0.0.2" || txt != want {
			t.Errorf("%s: A %q TXT\n%q\nwant\n%q", ip, a, txt, want)
		}
	}

	want := func(fn func(netip.Addr, store.Event) error) error {
		for _, ip := range ips {
			if err := fn(netip.MustParseAddr(ip), listed(ip, exp)); err != nil {
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for pass := 1; pass <= 2; pass++ {
		if err := u.Resync(ctx, want); err != nil {
			t.Fatal(err)
		}
		if res := u.LastResync(); res != (ResyncResult{Wanted: 2, Present: 2}) {
			t.Errorf("resync pass %d: %+v, want nothing to fix", pass, res)
		}
	}
}

// metricValue returns the value of the metric name with label
// queue=QueueName.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "queue" && l.GetValue() == QueueName {
					if c := m.GetCounter(); c != nil {
						return c.GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

// TestBINDSecondary checks the harness's secondary zone the way a dstd
// test uses it, with a second named as the primary: an UPDATE on the
// primary reaches the secondary by NOTIFY (RFC 1996) and a TSIG-signed
// transfer.
func TestBINDSecondary(t *testing.T) {
	port := dsttest.FreeUDPTCPPort(t)
	key := dsttest.TSIGKey{Name: "xfr-key", Secret: newSecret(t)}
	prim := dsttest.StartBIND(t, dsttest.BINDOptions{Primary: &dsttest.BINDPrimary{Zone: "sec.test", Key: &key,
		AlsoNotify: []string{fmt.Sprintf("127.0.0.1 port %d", port)}}})
	sec := dsttest.StartBIND(t, dsttest.BINDOptions{Port: port,
		Secondary: &dsttest.BINDSecondary{Zone: "sec.test", Primary: prim.Addr(), Key: &key}})
	u, err := New(Config{Server: prim.Addr(), Zone: "sec.test", KeyName: key.Name, Secret: key.Secret})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ip := netip.MustParseAddr("192.0.2.77")
	if err := u.Resync(ctx, func(fn func(netip.Addr, store.Event) error) error {
		return fn(ip, listed(ip.String(), time.Now().Add(time.Hour)))
	}); err != nil {
		t.Fatal(err)
	}
	if err := sec.WaitSerial(ctx, "sec.test", 2); err != nil {
		t.Fatal(err)
	}
	r, err := sec.Query(dnsutil.ReverseName(ip, "sec.test"), dns.TypeA)
	if err != nil || len(r.Answer) != 1 {
		t.Errorf("secondary answer %v %v, want the listing", r, err)
	}
}
