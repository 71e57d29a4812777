package dnsupdate

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/miekg/dns"

	"github.com/dst-traps/dst/internal/action"
	"github.com/dst-traps/dst/internal/dsttest"
	"github.com/dst-traps/dst/internal/store"
)

func newTestUpdater(t *testing.T) *Updater {
	t.Helper()
	u, err := New(Config{Server: "127.0.0.1:53", Zone: "bl.test", KeyName: "k", Secret: "c2VjcmV0"})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestBuildBatches(t *testing.T) {
	u := newTestUpdater(t)
	exp := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	var chs []change
	for i := range 250 {
		ip := netip.AddrFrom4([4]byte{10, 0, byte(i / 256), byte(i)})
		chs = append(chs, change{ip: ip, del: i%5 == 0, ev: store.Event{Kind: store.EventReport, Listed: true, Expires: exp}})
	}
	ms := u.buildBatches(chs)
	if len(ms) != 3 {
		t.Fatalf("%d messages for 250 changes, want 3", len(ms))
	}
	// Each change: delete A, delete TXT, and for a listing add A and TXT.
	wantNs := []int{0, 0, 0}
	for i, ch := range chs {
		wantNs[i/100] += 2
		if !ch.del {
			wantNs[i/100] += 2
		}
	}
	for i, m := range ms {
		if m.Opcode != dns.OpcodeUpdate || len(m.Question) != 1 || m.Question[0].Name != "bl.test." || m.Question[0].Qtype != dns.TypeSOA {
			t.Errorf("message %d: not an UPDATE of bl.test: %v", i, m.MsgHdr)
		}
		if len(m.Ns) != wantNs[i] {
			t.Errorf("message %d: %d update RRs, want %d", i, len(m.Ns), wantNs[i])
		}
		if _, err := m.Pack(); err != nil {
			t.Errorf("message %d does not pack: %v", i, err)
		}
	}
	// The first change (a deletion) and the second (a listing).
	ns := ms[0].Ns
	if ns[0].Header().Class != dns.ClassANY || ns[0].Header().Rrtype != dns.TypeA || ns[0].Header().Name != "0.0.0.10.bl.test." {
		t.Errorf("first op %v, want delete RRset A of 0.0.0.10.bl.test.", ns[0])
	}
	a, ok := ns[4].(*dns.A)
	if !ok || a.Hdr.Class != dns.ClassINET || a.A.String() != "127.0.0.2" || a.Hdr.Name != "1.0.0.10.bl.test." || a.Hdr.Ttl != 300 {
		t.Errorf("fifth op %v, want add A 127.0.0.2 to 1.0.0.10.bl.test.", ns[4])
	}
	txt, ok := ns[5].(*dns.TXT)
	if !ok || !strings.Contains(txt.Txt[0], "2026-11-29T00:00:00Z") {
		t.Errorf("sixth op %v, want the TXT with the expiry", ns[5])
	}

	// Long texts split on size as well as count.
	u.c.TXT = func(netip.Addr, store.Event) string { return strings.Repeat("x", 1000) }
	ms = u.buildBatches(chs[:100])
	if len(ms) < 2 {
		t.Errorf("100 changes with 1000-byte texts fit in %d message(s); want a split below %d bytes", len(ms), maxMsgBytes)
	}
	for i, m := range ms {
		if m.Len() > maxMsgBytes+4000 {
			t.Errorf("message %d has %d bytes", i, m.Len())
		}
	}
}

func TestNewChecks(t *testing.T) {
	ok := Config{Server: "127.0.0.1:53", Zone: "bl.test", KeyName: "k", Secret: "c2VjcmV0"}
	for name, mod := range map[string]func(*Config){
		"no server":   func(c *Config) { c.Server = "" },
		"no port":     func(c *Config) { c.Server = "127.0.0.1" },
		"no zone":     func(c *Config) { c.Zone = "" },
		"no key":      func(c *Config) { c.KeyName = "" },
		"bad secret":  func(c *Config) { c.Secret = "not base64!" },
		"bad alg":     func(c *Config) { c.Algorithm = "hmac-md4" },
		"v6 answer":   func(c *Config) { c.A = netip.MustParseAddr("::1") },
		"bad zone":    func(c *Config) { c.Zone = "a..b" },
		"bad keyname": func(c *Config) { c.KeyName = "a..b" },
	} {
		c := ok
		mod(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%s: New accepted %+v", name, c)
		}
	}
	if _, err := New(ok); err != nil {
		t.Errorf("New(%+v): %v", ok, err)
	}
}

func TestUpdateErrorText(t *testing.T) {
	e := &UpdateError{Server: "127.0.0.1:5300", Zone: "bl.test.", Key: "dst-key.", Rcode: dns.RcodeNotAuth, TSIGError: dns.RcodeBadKey}
	want := "DNS UPDATE to 127.0.0.1:5300 refused: TSIG key dst-key not accepted (BADKEY) — check dns.update.key_name/secret against the server's key"
	if e.Error() != want {
		t.Errorf("got  %s\nwant %s", e.Error(), want)
	}
	for _, rc := range []int{dns.RcodeRefused, dns.RcodeNotAuth, dns.RcodeServerFailure, dns.RcodeFormatError} {
		e := &UpdateError{Server: "s:53", Zone: "z.", Key: "k.", Rcode: rc}
		if !strings.Contains(e.Error(), dns.RcodeToString[rc]) {
			t.Errorf("rcode %d: %s does not name the code", rc, e.Error())
		}
	}
}

// TestRunServerDown needs no BIND: with nothing listening, each attempt
// fails, the events stay queued with their attempts counted, and the
// failure is logged as a warning to retry rather than an error.
func TestRunServerDown(t *testing.T) {
	// In a synctest bubble the clock moves only when every goroutine
	// waits, so the retry schedule is checked exactly: no attempt before
	// the backoff is due (a sleep could not show that), one when it is.
	synctest.Test(t, func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close() // nothing listens there now
		db, err := store.Open(filepath.Join(t.TempDir(), "dst.db"), store.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for i := range 3 {
			ev := store.Event{Kind: store.EventReport, Time: time.Now(), IP: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), Listed: true, Expires: time.Now().Add(time.Hour)}
			if err := db.Enqueue([]string{QueueName}, ev); err != nil {
				t.Fatal(err)
			}
		}
		var logBuf dsttest.SyncBuffer
		const minB, maxB = time.Second, 4 * time.Second
		log := slog.New(slog.NewTextHandler(&logBuf, nil))
		u, err := New(Config{Server: addr, Zone: "bl.test", KeyName: "k", Secret: "c2VjcmV0", Timeout: time.Second, Log: log})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() {
			done <- action.Run(ctx, db, u, action.RunnerOptions{MinBackoff: minB, MaxBackoff: maxB, Log: log})
		}()
		synctest.Wait()
		if n := u.Stats().UpdateFailures; n != 1 {
			t.Fatalf("%d failures at start, want 1: %s", n, logBuf.String())
		}
		// retry.Backoff waits between half and all of min·2^(n-1) after
		// the n-th failed attempt.
		for n, d := range []time.Duration{minB, 2 * minB, 4 * minB} {
			failed := u.Stats().LastErrorTime
			time.Sleep(time.Until(failed.Add(d/2)) - time.Nanosecond)
			synctest.Wait()
			if got := u.Stats().UpdateFailures; got != int64(n+1) {
				t.Errorf("after failure %d: tried again before half the backoff (%v): %d failures", n+1, d/2, got)
			}
			time.Sleep(time.Until(failed.Add(d)))
			synctest.Wait()
			if got := u.Stats().UpdateFailures; got != int64(n+2) {
				t.Errorf("after failure %d: not tried again within the backoff (%v): %d failures", n+1, d, got)
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if n, _ := db.QueueDepth(QueueName); n != 3 {
			t.Errorf("queue depth %d, want the 3 events kept", n)
		}
		items, err := db.QueueNext(QueueName, time.Now().Add(time.Hour), 10, nil)
		if err != nil || len(items) != 3 || items[0].Attempts != 4 {
			t.Errorf("queued items %+v %v, want 3 with 4 attempts counted", items, err)
		}
		if out := logBuf.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "cannot reach the server") {
			t.Errorf("log does not say the server is unreachable:\n%s", out)
		}
	})
}
