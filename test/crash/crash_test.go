// Package crash_test kills dstd with SIGKILL while it ingests a stream of
// reports, and checks the promise of docs/PROTOCOL.md §4.4: a report is
// acknowledged only once it is durably stored. Every report answered 240
// before the kill must be in the store afterwards, and dstd must start again
// on the same data directory as if nothing had happened.
package crash_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/admin"
	"github.com/dst-traps/dst/internal/dsttest"
	"github.com/dst-traps/dst/internal/nntp"
	"github.com/dst-traps/dst/internal/report"
	"github.com/dst-traps/dst/internal/store"
)

// lab lets the documentation ranges be listed: the test's spammers live there.
const lab = "[policy]\nallow_documentation = true\n"

const (
	clients = 8 // concurrent submitters, enough for bbolt's Batch to group commits
	rounds  = 5 // kill/restart cycles on one data directory
)

// killAfter is a random moment in [300ms, 1500ms): early kills catch dstd
// before its first group commits, late ones in the middle of a long stream.
func killAfter() time.Duration {
	return 300*time.Millisecond + rand.N(1200*time.Millisecond)
}

// addrs hands out distinct spammer addresses: one in four from
// 203.0.113.0/24 while that lasts, the rest from 2001:db8::/32, so both
// address families go through the store's keying.
type addrs struct{ n atomic.Uint64 }

func (a *addrs) next() netip.Addr {
	n := a.n.Add(1)
	if n%4 == 0 && n/4 < 256 {
		return netip.AddrFrom4([4]byte{203, 0, 113, byte(n / 4)})
	}
	var b [16]byte
	copy(b[:], []byte{0x20, 0x01, 0x0d, 0xb8})
	for i := range 8 {
		b[15-i] = byte(n >> (8 * i))
	}
	return netip.AddrFrom16(b)
}

// acked is the set of reports dstd (or dstc) acknowledged, Message-ID ->
// the address reported, accumulated over all rounds.
type acked struct {
	mu  sync.Mutex
	ids map[string]netip.Addr
}

func (a *acked) add(id string, ip netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ids == nil {
		a.ids = make(map[string]netip.Addr)
	}
	a.ids[id] = ip
}

func (a *acked) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.ids)
}

func (a *acked) snapshot() map[string]netip.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := make(map[string]netip.Addr, len(a.ids))
	for k, v := range a.ids {
		m[k] = v
	}
	return m
}

// newReport builds a report as a trap client would post it.
func newReport(t testing.TB, ip netip.Addr) (id string, wire []byte) {
	a, err := report.New(report.Hit{
		SourceIP:  ip,
		Arrival:   time.Now(),
		Host:      "trap.site-a.test",
		UserAgent: "crash-test/1",
		Message:   []byte("From: <a@spam.example>\r\nSubject: buy\r\n\r\nbuy now\r\n"),
	})
	if err != nil {
		t.Error(err) // Error, not Fatal: called from client goroutines too
		return "", nil
	}
	return a.Get("Message-ID"), a.Bytes()
}

// postOne submits one report on a fresh connection and requires 240.
func postOne(t *testing.T, addr string, ip netip.Addr) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, wire := newReport(t, ip)
	c, err := nntp.Dial(ctx, addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Post(ctx, wire); err != nil {
		t.Fatalf("POST of %s to the restarted dstd: %v", id, err)
	}
	return id
}

// stream is one round's submitters: clients goroutines posting reports
// back to back until stopped.
type stream struct {
	sent, ok, lost atomic.Int64
	// killing is set just before the SIGKILL: a failed POST before then
	// is dstd's fault, not the crash's.
	killing atomic.Bool
	wg      sync.WaitGroup
}

// postLoop posts reports on one connection until ctx ends, reconnecting
// after an error. Only a nil error from Post (a 240) makes a report
// acknowledged; a POST whose answer was lost in the crash may or may not
// have been stored, and the test does not care which.
func (s *stream) postLoop(ctx context.Context, t *testing.T, addr string, ips *addrs, ack *acked) {
	defer s.wg.Done()
	var c *nntp.Client
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for ctx.Err() == nil {
		if c == nil {
			var err error
			if c, err = nntp.Dial(ctx, addr, 2*time.Second); err != nil {
				c = nil
				// dstd is dead: wait for the stop.
				select {
				case <-ctx.Done():
				case <-time.After(10 * time.Millisecond):
				}
				continue
			}
		}
		ip := ips.next()
		id, wire := newReport(t, ip)
		if wire == nil {
			return
		}
		s.sent.Add(1)
		err := c.Post(context.Background(), wire)
		var ne *nntp.Error
		switch {
		case err == nil:
			s.ok.Add(1)
			ack.add(id, ip)
		case errors.As(err, &ne) && ne.Permanent():
			t.Errorf("dstd refused a valid report %s about %s: %v", id, ip, err)
		default:
			if !s.killing.Load() {
				t.Errorf("POST of %s failed while dstd was running: %v", id, err)
			}
			s.lost.Add(1)
			c.Close()
			c = nil
		}
	}
}

// checkStore opens dstd's database (dstd must be dead) and checks that
// every acknowledged report is in the history and its address listed. It
// opens in strict mode, which makes bbolt check the whole file's page
// structure on the commit that Open does, and returns how many Message-IDs
// the history holds.
func checkStore(t *testing.T, dir string, want map[string]netip.Addr) int {
	t.Helper()
	db := openStrict(t, filepath.Join(dir, "dst.db"))
	defer db.Close()
	missing := 0
	for id, ip := range want {
		seen, err := db.Seen(id)
		if err != nil {
			t.Fatal(err)
		}
		_, listed, err := db.Lookup(ip)
		if err != nil {
			t.Fatal(err)
		}
		if !seen || !listed {
			missing++
			if missing <= 20 {
				t.Errorf("acknowledged report lost: %s about %s (in history: %v, listed: %v)", id, ip, seen, listed)
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged reports are missing from the store", missing, len(want))
	}
	st, err := db.Stats()
	if err != nil {
		t.Fatal(err)
	}
	// The counters live in the same transactions as the data they count,
	// so a torn commit would show up as a mismatch here.
	n := 0
	if err := db.ForEachListing(func(store.Listing) error { n++; return nil }); err != nil {
		t.Fatalf("walking the listings: %v", err)
	}
	if n != st.Listings {
		t.Errorf("listing counter says %d, the listings bucket holds %d", st.Listings, n)
	}
	return st.History
}

// openStrict opens the store with bbolt's consistency check, turning the
// panic that check raises on a damaged file into a test failure.
func openStrict(t *testing.T, path string) (db *store.DB) {
	t.Helper()
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("database %s is damaged: %v", path, r)
			}
		}()
		var err error
		if db, err = store.Open(path, store.Options{Strict: true}); err != nil {
			t.Fatalf("reopening the database after the crash: %v", err)
		}
	}()
	return db
}

// checkRestart starts dstd again on the crashed data directory and checks
// that it serves: status answers with at least the acknowledged history,
// and a new report is accepted (which is then acknowledged too).
func checkRestart(t *testing.T, d *dsttest.Dstd, ips *addrs, ack *acked) {
	t.Helper()
	d.Start() // fails the test if the admin endpoint never answers
	ac := admin.NewClient(d.Admin)
	defer ac.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := ac.Status(ctx)
	if err != nil {
		t.Fatalf("status after restart: %v", err)
	}
	if st.History < ack.len() {
		t.Errorf("status after restart: history %d, but %d reports were acknowledged", st.History, ack.len())
	}
	ip := ips.next()
	ack.add(postOne(t, d.Socket(), ip), ip)
}

// TestKillDuringIngest: K clients post reports over NNTP as fast as dstd
// takes them; dstd is SIGKILLed at a random moment; every report answered
// 240 must be in the store, and dstd must restart cleanly. Five rounds on
// one data directory, so later rounds crash a file that has already been
// crashed and recovered.
func TestKillDuringIngest(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts dstd several times")
	}
	d := dsttest.NewDstd(t, "site-a.test", lab)
	d.Start()
	var ips addrs
	var ack acked
	for round := 1; round <= rounds; round++ {
		ctx, stop := context.WithCancel(context.Background())
		s := new(stream)
		for range clients {
			s.wg.Add(1)
			go s.postLoop(ctx, t, d.Socket(), &ips, &ack)
		}
		wait := killAfter()
		time.Sleep(wait) // the crash comes at a random moment
		dsttest.WaitFor(t, 30*time.Second, "dstd to acknowledge a report", func() bool { return s.ok.Load() > 0 })
		s.killing.Store(true)
		d.Kill()
		stop()
		s.wg.Wait()

		stored := checkStore(t, d.Dir, ack.snapshot())
		t.Logf("round %d: killed after %v: %d posted, %d acknowledged, %d answers lost; store: %d Message-IDs for %d acknowledged in all rounds (%d stored without an acknowledgement)",
			round, wait.Round(time.Millisecond), s.sent.Load(), s.ok.Load(), s.lost.Load(), stored, ack.len(), stored-ack.len())
		if t.Failed() {
			t.FailNow()
		}
		checkRestart(t, d, &ips, &ack)
	}
	d.Stop()
	checkStore(t, d.Dir, ack.snapshot())
}

// messageID finds the Message-ID in a dstc log line; slog quotes the value
// only when it has to.
func messageID(line string) string {
	_, v, ok := strings.Cut(line, " message_id=")
	if !ok {
		return ""
	}
	if strings.HasPrefix(v, `"`) {
		if q, err := strconv.QuotedPrefix(v); err == nil {
			s, _ := strconv.Unquote(q)
			return s
		}
		return ""
	}
	v, _, _ = strings.Cut(v, " ")
	return v
}

// trapMessage is a message as Postfix on mx1.example.net delivers it after
// client handed it over.
func trapMessage(client netip.Addr) []byte {
	lit := client.String()
	if client.Is6() {
		lit = "IPv6:" + lit
	}
	return fmt.Appendf(nil, "Received: from spam.example (unknown [%s])\r\n\tby mx1.example.net (Postfix) with ESMTP id 1\r\n\tfor <trap@example.net>; %s\r\n"+
		"From: <a@spam.example>\r\nTo: <trap@example.net>\r\nSubject: offer\r\n\r\nbuy\r\n", lit, time.Now().Format(time.RFC1123Z))
}

// dstcResult is what one dstc run said about its report.
type dstcResult struct {
	id      string
	ip      netip.Addr
	spooled bool // exit 0 with "report spooled": dstd must pick it up
}

// runDstc runs dstc as an MTA would, and says whether it acknowledged the
// report: "reported" (dstd answered 240) or "spooled", each with exit 0.
// Any other outcome is returned as an error; exit 75 would make the MTA
// retry, which is allowed but must not happen with a writable spool.
func runDstc(bin string, d *dsttest.Dstd, ip netip.Addr) (dstcResult, error) {
	cmd := exec.Command(bin, "-log", "stderr", "-m", "mx1.example.net", "-timeout", "5s", "-spool", d.Spool)
	cmd.Stdin = bytes.NewReader(trapMessage(ip))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return dstcResult{}, fmt.Errorf("dstc for %s: %v: %s", ip, err, out)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		r := dstcResult{id: messageID(line), ip: ip}
		switch {
		case strings.Contains(line, `msg=reported `):
		case strings.Contains(line, "report spooled"):
			r.spooled = true
		default:
			continue
		}
		if r.id == "" {
			return r, fmt.Errorf("dstc for %s logged no Message-ID: %s", ip, line)
		}
		return r, nil
	}
	return dstcResult{}, fmt.Errorf("dstc for %s neither reported nor spooled: %s", ip, out)
}

// TestKillDuringIngestDstc is the same crash with dstc as the client, as
// when an MTA delivers a burst of trap hits. dstc keeps running for a while
// after the kill, so some reports are spooled while dstd is down; a report
// acknowledged with "reported" must be in the store right after the kill,
// and a spooled one must be there once the restarted dstd has picked up
// the spool.
func TestKillDuringIngestDstc(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts dstd several times")
	}
	const dstcRounds = 3
	bin := dsttest.Bin(t, "dstc")
	d := dsttest.NewDstd(t, "site-a.test", lab)
	d.Start()
	var ips addrs
	// reported holds every report known to be durably stored: dstc's
	// "reported" ones, and spooled ones once dstd has picked them up.
	var reported acked
	for round := 1; round <= dstcRounds; round++ {
		var spooled acked // this round's, until dstd picks them up
		var (
			mu     sync.Mutex
			nRep   int
			nSpool int
			wg     sync.WaitGroup
			stop   atomic.Bool
			// killing is set just before the SIGKILL: a dstc run that
			// ended in the spool before then found dstd failing.
			killing atomic.Bool
		)
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					ip := ips.next()
					r, err := runDstc(bin, d, ip)
					if err != nil {
						t.Error(err)
						return
					}
					if r.spooled && !killing.Load() {
						t.Errorf("dstc spooled %s about %s while dstd was running", r.id, ip)
					}
					mu.Lock()
					if r.spooled {
						spooled.add(r.id, r.ip)
						nSpool++
					} else {
						reported.add(r.id, r.ip)
						nRep++
					}
					mu.Unlock()
				}
			}()
		}
		counts := func() (rep, spool int) { mu.Lock(); defer mu.Unlock(); return nRep, nSpool }
		wait := killAfter()
		time.Sleep(wait) // the crash comes at a random moment
		// Under -race the programs start slowly: the round must have
		// something stored to check before the kill.
		dsttest.WaitFor(t, 30*time.Second, "dstc to report to dstd", func() bool { rep, _ := counts(); return rep > 0 })
		killing.Store(true)
		d.Kill()
		// dstc goes on while dstd is down, until some reports are spooled.
		dsttest.WaitFor(t, 30*time.Second, "dstc to spool a report while dstd is down", func() bool { _, sp := counts(); return sp > 0 })
		stop.Store(true)
		wg.Wait()

		stored := checkStore(t, d.Dir, reported.snapshot())
		t.Logf("round %d: killed after %v; dstc reported %d, spooled %d; store: %d Message-IDs", round, wait.Round(time.Millisecond), nRep, nSpool, stored)
		if nRep == 0 || nSpool == 0 {
			t.Errorf("round %d: want both reported and spooled reports, got %d and %d", round, nRep, nSpool)
		}
		if t.Failed() {
			t.FailNow()
		}

		d.Start()
		waitSpoolEmpty(t, d)
		ac := admin.NewClient(d.Admin)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for id, ip := range spooled.snapshot() {
			if _, ok, err := ac.Lookup(ctx, ip); err != nil || !ok {
				t.Errorf("spooled report %s about %s not listed after the restart (err %v)", id, ip, err)
			}
			reported.add(id, ip) // stored by dstd: durable from now on
		}
		cancel()
		ac.Close()
		if t.Failed() {
			t.FailNow()
		}
	}
	d.Stop()
	checkStore(t, d.Dir, reported.snapshot())
}

// waitSpoolEmpty waits until dstd has taken every complete file out of the
// spool (it looks at start and then every two seconds).
func waitSpoolEmpty(t *testing.T, d *dsttest.Dstd) {
	t.Helper()
	dir := filepath.Join(d.Dir, "spool", "new")
	dsttest.WaitFor(t, 20*time.Second, "dstd to empty the spool", func() bool {
		ents, err := os.ReadDir(dir)
		return err == nil && len(ents) == 0
	})
}
