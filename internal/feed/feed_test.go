package feed_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/dst-traps/dst/internal/dsttest"
	"github.com/dst-traps/dst/internal/feed"
	"github.com/dst-traps/dst/internal/metrics"
	"github.com/dst-traps/dst/internal/nntp"
	"github.com/dst-traps/dst/internal/store"
)

const (
	site     = "site-b.test" // the feeding site
	peerName = "peer.test"   // the site fed
)

// peer is the receiving side: the package nntp Server with a Handler that
// keeps what it is sent, like a peer's history.
type peer struct {
	mu    sync.Mutex
	order []string // IDs in the order Receive stored them
	// offered are IDs in the order of their first CHECK: the server runs
	// pipelined TAKETHIS concurrently, so order is not the feed's order,
	// but CHECKs are handled one at a time as they arrive. Only articles
	// of at least Peer.CheckSize bytes are offered with CHECK.
	offered  []string
	seen     map[string]bool
	received map[string][]byte
	checks   int
	conns    []net.Conn

	// Misbehaviour, set before the feed starts.
	closeAt    int               // after this many articles, hang up once
	checkLater map[string]int    // answer 431 this many times for the ID
	takeLater  map[string]int    // answer TAKETHIS with 400 (and close) this many times
	refuse     map[string]bool   // answer TAKETHIS with 439
	refuseText map[string]string // answer TAKETHIS with 439 and this text
	deny       int               // refuse this many connections with 502
	// With tlsCert, the server offers STARTTLS and AUTHINFO, and lets
	// only user "feeder" with password "s3cret" feed.
	tlsCert *tls.Certificate
}

func (p *peer) Post(context.Context, *nntp.Session, []byte) nntp.Verdict {
	return nntp.Refused("no posting")
}

func (p *peer) Check(_ context.Context, _ *nntp.Session, id string) nntp.Verdict {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.checks++
	if !p.seen[id] {
		if p.seen == nil {
			p.seen = make(map[string]bool)
		}
		p.seen[id] = true
		p.offered = append(p.offered, id)
	}
	if _, ok := p.received[id]; ok {
		return nntp.Refused("already have it")
	}
	if p.checkLater[id] > 0 {
		p.checkLater[id]--
		return nntp.Deferred("busy")
	}
	return nntp.Accepted()
}

func (p *peer) Receive(_ context.Context, _ *nntp.Session, id string, art []byte) nntp.Verdict {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.takeLater[id] > 0 {
		p.takeLater[id]--
		return nntp.Deferred("paused")
	}
	if p.refuse[id] {
		return nntp.Refused("bad signature")
	}
	if text, ok := p.refuseText[id]; ok {
		return nntp.Refused(text)
	}
	if _, ok := p.received[id]; ok {
		return nntp.Refused("duplicate")
	}
	if p.received == nil {
		p.received = make(map[string][]byte)
	}
	p.received[id] = art
	p.order = append(p.order, id)
	if len(p.order) == p.closeAt {
		// The article is stored but its 239 will not arrive: the feed
		// offers it again, and gets 438.
		for _, c := range p.conns {
			c.Close()
		}
	}
	return nntp.Accepted()
}

func (p *peer) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.order)
}

func (p *peer) snapshot() ([]string, map[string][]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[string][]byte, len(p.received))
	for k, v := range p.received {
		m[k] = v
	}
	return append([]string(nil), p.order...), m
}

// serve runs the peer's Server on ln until the test ends.
func (p *peer) serve(t testing.TB, ln net.Listener) {
	t.Helper()
	srv := &nntp.Server{
		Handler:  p,
		Hostname: peerName,
		Log:      testLog(t),
		Authorize: func(c net.Conn, s nntp.Session) (nntp.Session, bool) {
			p.mu.Lock()
			defer p.mu.Unlock()
			if s.TLS == nil && s.User == "" { // the connection arrives
				if p.deny > 0 {
					p.deny--
					return s, false
				}
				p.conns = append(p.conns, c)
			}
			return nntp.Session{CanFeed: p.tlsCert == nil || s.User == "feeder", Peer: site}, true
		},
	}
	if p.tlsCert != nil {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*p.tlsCert}}
		srv.Authenticate = func(_ *nntp.Session, user, pass string) bool { return user == "feeder" && pass == "s3cret" }
	}
	dsttest.ServeNNTP(t, srv, ln)
}

func (p *peer) start(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.serve(t, ln)
	return ln.Addr().String()
}

// testLog shows the log of failing tests only.
func testLog(t testing.TB) *slog.Logger {
	if _, ok := t.(*testing.B); ok { // a benchmark measures no debug lines
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

func openStore(t testing.TB) *store.DB {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "dst.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	// Every event, whatever its Path (not feed.Wants): the Feeder's own
	// check of Path is under test too, for queues filled under an older
	// configuration.
	if err := db.Subscribe(feed.QueueName(peerName), nil); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestWants: a feed takes every article an event names unless the peer
// is in its Path already, and no update of a listing.
func TestWants(t *testing.T) {
	wants := feed.Wants("peer.test")
	for _, tc := range []struct {
		name string
		ev   store.Event
		want bool
	}{
		{"report", store.Event{Kind: store.EventReport, Path: "site-a.test!not-for-mail"}, true},
		{"report pending", store.Event{Kind: store.EventReport, Path: "site-a.test!not-for-mail", Listed: false}, true},
		{"relayed only", store.Event{Kind: store.EventReport, Cause: store.CauseRelay, Path: "site-b.test!not-for-mail"}, true},
		{"cancel", store.Event{Kind: store.EventReport, Cause: store.CauseCancel, Path: "site-a.test!not-for-mail"}, true},
		{"peer in Path", store.Event{Kind: store.EventReport, Path: "x.test!PEER.test!site-a.test!not-for-mail"}, false},
		{"cancel with peer in Path", store.Event{Kind: store.EventReport, Cause: store.CauseCancel, Path: "peer.test!not-for-mail"}, false},
		{"update of a listing", store.Event{Kind: store.EventReport, Cause: store.CauseUpdate, Listed: true}, false},
		{"expired", store.Event{Kind: store.EventExpired}, false},
		{"delisted", store.Event{Kind: store.EventDelisted}, false},
	} {
		if got := wants(tc.ev); got != tc.want {
			t.Errorf("%s: Wants = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// report is an article as the store keeps it. Its body starts with a dot
// and it has a folded signed field, so byte identity is tested on the
// awkward cases.
func report(i int, path string) (string, []byte) {
	id := fmt.Sprintf("<%d.r@site-a.test>", i)
	return id, []byte("Path: " + path + "\r\n" +
		"From: DST <dst@site-a.test>\r\n" +
		"Newsgroups: dst.reports\r\n" +
		"Message-ID: " + id + "\r\n" +
		"DKIM-Signature: v=1; a=ed25519-sha256; d=site-a.test; s=dst;\r\n\th=from:message-id; b=abc\r\n" +
		"\r\n" +
		fmt.Sprintf(".line %d starts with a dot\r\n.\r\nlast line\r\n", i))
}

// queue stores n reports and queues them for the peer, in order.
func queue(t testing.TB, db *store.DB, from, n int, path string) (ids []string, arts map[string][]byte) {
	t.Helper()
	arts = make(map[string][]byte)
	for i := from; i < from+n; i++ {
		id, art := report(i, path)
		store1(t, db, i, id, art)
		ids = append(ids, id)
		arts[id] = art
	}
	return ids, arts
}

// store1 stores report i and queues it for the peer.
func store1(t testing.TB, db *store.DB, i int, id string, art []byte) {
	t.Helper()
	_, _, err := db.AddReport(store.Report{
		MessageID: id,
		IP:        netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}),
		Origin:    "site-a.test",
		Date:      time.Now(),
		Article:   art,
	}, store.IngestParams{Now: time.Now(), ExpireBase: time.Hour, ExpireMax: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
}

// sent is what the peer must receive for art: our name first in Path,
// every other byte the same.
func sent(art []byte) []byte {
	return append([]byte("Path: "+site+"!"), bytes.TrimPrefix(art, []byte("Path: "))...)
}

func options(t testing.TB, kick chan struct{}) feed.Options {
	return feed.Options{
		Site:        site,
		Log:         testLog(t),
		MinBackoff:  10 * time.Millisecond,
		MaxBackoff:  100 * time.Millisecond,
		Poll:        100 * time.Millisecond,
		IdleTimeout: 500 * time.Millisecond,
		Timeout:     5 * time.Second,
		Kick:        kick,
	}
}

// run starts the feeder and stops it when the test ends, checking that Run
// returns promptly.
func run(t testing.TB, f *feed.Feeder) (stop func()) {
	t.Helper()
	return dsttest.Go(t, f.Run)
}

// waitFor waits for what the feeder does in its own goroutines, on real
// connections (which a synctest bubble cannot hold).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	dsttest.WaitFor(t, 20*time.Second, what, cond)
}

func depth(t testing.TB, db *store.DB) int {
	n, err := db.QueueDepth(feed.QueueName(peerName))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// checkDelivered checks that the peer has every article, exactly as it
// should look, and that the queue is empty.
func checkDelivered(t *testing.T, p *peer, db *store.DB, ids []string, arts map[string][]byte) {
	t.Helper()
	waitFor(t, "every article at the peer", func() bool { return p.count() >= len(ids) })
	waitFor(t, "an empty queue", func() bool { return depth(t, db) == 0 })
	_, got := p.snapshot()
	for _, id := range ids {
		if want := sent(arts[id]); !bytes.Equal(got[id], want) {
			t.Fatalf("%s arrived as\n%q\nwant\n%q", id, got[id], want)
		}
	}
}

func TestOrderAndCompleteness(t *testing.T) {
	db := openStore(t)
	ids, arts := queue(t, db, 0, 1000, "site-a.test!not-for-mail")
	p := &peer{}
	o := options(t, nil)
	m := metrics.New(prometheus.NewRegistry())
	o.Metrics = m
	// CHECK for all: the server decides CHECKs one at a time as they
	// arrive, so p.offered is the order of the feed (TAKETHIS articles
	// are received concurrently).
	f := feed.New(feed.Peer{Name: peerName, Addr: p.start(t), Window: 64, CheckSize: -1}, db, o)
	run(t, f)
	// Connected until IdleTimeout after the last answer; the
	// acknowledgements take a while longer (AckDelay, then the store's
	// LazyWait), so the connection is checked first.
	waitFor(t, "every article at the peer", func() bool { return p.count() >= len(ids) })
	if s := f.Status(); !s.Connected || !s.Streaming {
		t.Errorf("status right after the delivery %+v, want connected, streaming", s)
	}
	checkDelivered(t, p, db, ids, arts)
	p.mu.Lock()
	offered := append([]string(nil), p.offered...)
	p.mu.Unlock()
	if len(offered) != len(ids) {
		t.Fatalf("%d articles offered, want %d", len(offered), len(ids))
	}
	for i := range ids {
		if offered[i] != ids[i] {
			t.Fatalf("article %d offered is %s, want %s (queue order)", i, offered[i], ids[i])
		}
	}
	waitFor(t, "the status", func() bool { s := f.Status(); return s.Sent == 1000 && s.Depth == 0 })
	s := f.Status()
	if s.Refused != 0 || s.Deferred != 0 || s.LastSuccess.IsZero() || s.Name != peerName {
		t.Errorf("status %+v", s)
	}
	// Idle, the feed hangs up.
	waitFor(t, "the idle disconnection", func() bool { return !f.Status().Connected })
	for name, c := range map[string]prometheus.Metric{
		"sent": m.FeedSent.WithLabelValues(peerName), "queue": m.FeedQueue.WithLabelValues(peerName),
		"connected": m.FeedConnected.WithLabelValues(peerName), "refused": m.FeedRefused.WithLabelValues(peerName),
		"errors": m.FeedErrors.WithLabelValues(peerName),
	} {
		want := map[string]float64{"sent": 1000}[name]
		if got := value(t, c); got != want {
			t.Errorf("metric %s = %v, want %v", name, got, want)
		}
	}
}

// value reads a counter or a gauge.
func value(t *testing.T, m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// selfSigned returns a certificate for peerName and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: peerName},
		DNSNames:     []string{peerName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, roots
}

// TestTLSAndSourceAddress feeds over implicit TLS from 127.0.0.2.
func TestTLSAndSourceAddress(t *testing.T) {
	cert, roots := selfSigned(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{}
	p.serve(t, tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}}))

	db := openStore(t)
	ids, arts := queue(t, db, 0, 20, "site-a.test!not-for-mail")
	f := feed.New(feed.Peer{Name: peerName, Addr: ln.Addr().String(), LocalAddr: "127.0.0.2",
		TLS: feed.TLSImplicit, TLSConfig: &tls.Config{RootCAs: roots, ServerName: peerName}}, db, options(t, nil))
	run(t, f)
	checkDelivered(t, p, db, ids, arts)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		if host, _, _ := net.SplitHostPort(c.RemoteAddr().String()); host != "127.0.0.2" {
			t.Errorf("connection from %s, want 127.0.0.2", c.RemoteAddr())
		}
	}
}

// emptySeen is the store as a feed.Source that closes empty when a
// QueueNext has found nothing to send.
type emptySeen struct {
	*store.DB
	once  sync.Once
	empty chan struct{}
}

func (s *emptySeen) QueueNext(queue string, now time.Time, n int, skip func(uint64) bool) ([]store.QueueItem, error) {
	items, err := s.DB.QueueNext(queue, now, n, skip)
	if err == nil && len(items) == 0 {
		s.once.Do(func() { close(s.empty) })
	}
	return items, err
}

func TestKickAfterIdle(t *testing.T) {
	db := openStore(t)
	src := &emptySeen{DB: db, empty: make(chan struct{})}
	p := &peer{}
	kick := make(chan struct{}, 1)
	o := options(t, kick)
	o.Poll = time.Hour // only the kick can wake it
	f := feed.New(feed.Peer{Name: peerName, Addr: p.start(t)}, src, o)
	run(t, f)
	// Once Run has found the queue empty, it sleeps until kicked: the
	// reports queued now reach the peer only through the kick.
	select {
	case <-src.empty:
	case <-time.After(20 * time.Second):
		t.Fatal("the feeder did not look at its queue within 20s")
	}
	ids, arts := queue(t, db, 0, 5, "site-a.test!not-for-mail")
	kick <- struct{}{}
	checkDelivered(t, p, db, ids, arts)
}

func TestPeerInPathNotSent(t *testing.T) {
	db := openStore(t)
	skip, _ := queue(t, db, 0, 3, "x.test!PEER.test!site-a.test!not-for-mail")
	ids, arts := queue(t, db, 3, 2, "site-a.test!not-for-mail")
	// Our own name first: sent as it is, not named twice.
	own, ownArt := report(9, site+"!site-a.test!not-for-mail")
	_, _, err := db.AddReport(store.Report{MessageID: own, IP: netip.MustParseAddr("198.51.100.9"), Origin: "site-a.test",
		Date: time.Now(), Article: ownArt}, store.IngestParams{Now: time.Now(), ExpireBase: time.Hour, ExpireMax: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// A report whose article was pruned: acknowledged, nothing sent.
	if err := db.Enqueue([]string{feed.QueueName(peerName)}, store.Event{Kind: store.EventReport,
		IP: netip.MustParseAddr("198.51.100.10"), MessageID: "<gone@site-a.test>"}); err != nil {
		t.Fatal(err)
	}

	p := &peer{}
	f := feed.New(feed.Peer{Name: peerName, Addr: p.start(t)}, db, options(t, nil))
	run(t, f)
	waitFor(t, "an empty queue", func() bool { return depth(t, db) == 0 })
	_, got := p.snapshot()
	for _, id := range skip {
		if got[id] != nil {
			t.Errorf("%s was sent to a peer named in its Path", id)
		}
	}
	for _, id := range ids {
		if !bytes.Equal(got[id], sent(arts[id])) {
			t.Errorf("%s arrived as %q", id, got[id])
		}
	}
	if !bytes.Equal(got[own], ownArt) {
		t.Errorf("%s arrived as %q, want it unchanged", own, got[own])
	}
	if len(got) != 3 {
		t.Errorf("peer got %d articles, want 3", len(got))
	}
	if s := f.Status(); s.Refused != 3 || s.Sent != 3 {
		t.Errorf("status %+v, want 3 refused locally and 3 sent", s)
	}
}

func TestPeerDownAtStart(t *testing.T) {
	db := openStore(t)
	ids, arts := queue(t, db, 0, 200, "site-a.test!not-for-mail")
	// An address nobody listens on yet.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	f := feed.New(feed.Peer{Name: peerName, Addr: addr}, db, options(t, nil))
	run(t, f)
	waitFor(t, "a connection error in the status", func() bool { return f.Status().LastError != "" })
	if s := f.Status(); s.Connected || s.Depth != 200 || !strings.Contains(s.LastError, addr) {
		t.Errorf("status while the peer is down: %+v", s)
	}

	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	p := &peer{}
	p.serve(t, ln)
	checkDelivered(t, p, db, ids, arts)
}

func TestPeerHangsUpMidStream(t *testing.T) {
	db := openStore(t)
	ids, arts := queue(t, db, 0, 500, "site-a.test!not-for-mail")
	p := &peer{closeAt: 100}
	f := feed.New(feed.Peer{Name: peerName, Addr: p.start(t), Window: 32}, db, options(t, nil))
	run(t, f)
	checkDelivered(t, p, db, ids, arts)
	p.mu.Lock()
	conns := len(p.conns)
	p.mu.Unlock()
	if conns < 2 {
		t.Errorf("%d connections: the feed did not reconnect", conns)
	}
	if s := f.Status(); s.LastError == "" || s.Sent+s.Refused < 500 {
		t.Errorf("status %+v", s)
	}
}

func TestDeferredAreRetried(t *testing.T) {
	db := openStore(t)
	ids, arts := queue(t, db, 0, 50, "site-a.test!not-for-mail")
	p := &peer{
		checkLater: map[string]int{ids[3]: 2, ids[40]: 1}, // 431
		takeLater:  map[string]int{ids[10]: 1},            // 400 and close
		refuse:     map[string]bool{ids[20]: true},        // 439
	}
	f := feed.New(feed.Peer{Name: peerName, Addr: p.start(t)}, db, options(t, nil))
	run(t, f)
	delivered := append(append([]string(nil), ids[:20]...), ids[21:]...)
	checkDelivered(t, p, db, delivered, arts)
	_, got := p.snapshot()
	if got[ids[20]] != nil {
		t.Error("the refused article is stored")
	}
	// Each item ends acknowledged once, as sent or refused. How many of
	// each depends on which 239s were lost when the peer hung up (an
	// article it stored is offered again and refused with 438).
	s := f.Status()
	if s.Deferred < 4 || s.Refused < 1 || s.Sent+s.Refused != 50 {
		t.Errorf("status %+v: want at least 4 deferred and 1 refused, and 50 sent or refused", s)
	}
}

func TestRestartResumes(t *testing.T) {
	db := openStore(t)
	ids, arts := queue(t, db, 0, 300, "site-a.test!not-for-mail")
	p := &peer{}
	addr := p.start(t)
	f := feed.New(feed.Peer{Name: peerName, Addr: addr, Window: 8}, db, options(t, nil))
	stop := run(t, f)
	waitFor(t, "some articles at the peer", func() bool { return p.count() >= 50 })
	stop()
	// A new dstd on the same store picks up where the last one stopped.
	f = feed.New(feed.Peer{Name: peerName, Addr: addr, Window: 8}, db, options(t, nil))
	run(t, f)
	checkDelivered(t, p, db, ids, arts)
}

func TestCancelPromptly(t *testing.T) {
	t.Run("in backoff", func(t *testing.T) {
		db := openStore(t)
		queue(t, db, 0, 1, "a!x")
		o := options(t, nil)
		o.MinBackoff, o.MaxBackoff = time.Hour, time.Hour
		f := feed.New(feed.Peer{Name: peerName, Addr: "127.0.0.1:1"}, db, o)
		stop := run(t, f)
		waitFor(t, "the first failure", func() bool { return f.Status().LastError != "" })
		stop() // fails the test if Run does not return
	})
	t.Run("connected and waiting for answers", func(t *testing.T) {
		db := openStore(t)
		queue(t, db, 0, 3, "a!x")
		// A peer that takes the commands and never answers them.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		got := make(chan string, 10)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			io.WriteString(c, "200 hello\r\n")
			br := bufio.NewReader(c)
			br.ReadString('\n') // MODE STREAM
			io.WriteString(c, "203 ok\r\n")
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					return
				}
				got <- line
			}
		}()
		f := feed.New(feed.Peer{Name: peerName, Addr: ln.Addr().String()}, db, options(t, nil))
		stop := run(t, f)
		<-got
		stop()
	})
}

// ihavePeer is a peer that does not stream, like an INN without
// streaming: 500 to MODE STREAM, IHAVE only.
type ihavePeer struct {
	mu       sync.Mutex
	order    []string // IDs in the order they were stored
	received map[string][]byte
	later    map[string]int // answer 436 to the offer this many times
}

func (p *ihavePeer) start(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.session(c)
		}
	}()
	return ln.Addr().String()
}

func (p *ihavePeer) session(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	say := func(s string) { io.WriteString(c, s+"\r\n") }
	say("200 old server")
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		cmd, arg, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		switch strings.ToUpper(cmd) {
		case "MODE":
			say("500 what is MODE?")
		case "QUIT":
			say("205 bye")
			return
		case "IHAVE":
			p.mu.Lock()
			_, have := p.received[arg]
			later := p.later[arg] > 0
			if later {
				p.later[arg]--
			}
			p.mu.Unlock()
			switch {
			case have:
				say("435 have it")
				continue
			case later:
				say("436 try later")
				continue
			}
			say("335 send it")
			var art bytes.Buffer
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				art.WriteString(strings.TrimPrefix(l, ".")) // undo dot-stuffing
			}
			p.mu.Lock()
			if p.received == nil {
				p.received = make(map[string][]byte)
			}
			p.received[arg] = art.Bytes()
			p.order = append(p.order, arg)
			p.mu.Unlock()
			say("235 thanks")
		default:
			say("500 unknown")
		}
	}
}

func TestIHaveFallback(t *testing.T) {
	db := openStore(t)
	ids, arts := queue(t, db, 0, 30, "site-a.test!not-for-mail")
	p := &ihavePeer{later: map[string]int{ids[5]: 2}}
	f := feed.New(feed.Peer{Name: peerName, Addr: p.start(t)}, db, options(t, nil))
	run(t, f)
	waitFor(t, "an empty queue", func() bool { return depth(t, db) == 0 })
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.order) != 30 {
		t.Fatalf("peer got %d articles", len(p.order))
	}
	for i, id := range p.order {
		if !bytes.Equal(p.received[id], sent(arts[id])) {
			t.Errorf("%s arrived as %q", id, p.received[id])
		}
		// The deferred one comes later; the others keep queue order.
		if i < 5 && id != ids[i] {
			t.Errorf("article %d is %s, want %s", i, id, ids[i])
		}
	}
	s := f.Status()
	if s.Streaming || s.Sent != 30 || s.Deferred != 2 {
		t.Errorf("status %+v", s)
	}
}

// TestStartTLSAndPassword feeds over STARTTLS with AUTHINFO; with a wrong
// password nothing is sent, and the error says why.
func TestStartTLSAndPassword(t *testing.T) {
	cert, roots := selfSigned(t)
	p := &peer{tlsCert: &cert}
	addr := p.start(t)
	db := openStore(t)
	ids, arts := queue(t, db, 0, 20, "site-a.test!not-for-mail")

	bad := feed.Peer{Name: peerName, Addr: addr, TLS: feed.TLSStartTLS,
		TLSConfig: &tls.Config{RootCAs: roots, ServerName: peerName}, Username: "feeder", Password: "wrong"}
	f := feed.New(bad, db, options(t, nil))
	stop := run(t, f)
	waitFor(t, "the refusal in the status", func() bool { return strings.Contains(f.Status().LastError, "481") })
	stop()
	if p.count() != 0 || depth(t, db) != 20 {
		t.Fatalf("with a wrong password: %d sent, %d queued", p.count(), depth(t, db))
	}

	good := bad
	good.Password = "s3cret"
	f = feed.New(good, db, options(t, nil))
	run(t, f)
	checkDelivered(t, p, db, ids, arts)
}

// ackCounter is the store as a feed.Source that counts the commits of
// acknowledgements.
type ackCounter struct {
	*store.DB
	mu    sync.Mutex
	calls [][]uint64
	now   [][]uint64 // the calls of QueueAckAllNow
}

func (s *ackCounter) QueueAck(queue string, seq uint64) error {
	s.mu.Lock()
	s.calls = append(s.calls, []uint64{seq})
	s.mu.Unlock()
	return s.DB.QueueAck(queue, seq)
}

func (s *ackCounter) QueueAckAll(queue string, seqs []uint64) error {
	s.mu.Lock()
	s.calls = append(s.calls, append([]uint64(nil), seqs...))
	s.mu.Unlock()
	return s.DB.QueueAckAll(queue, seqs)
}

func (s *ackCounter) QueueAckAllNow(queue string, seqs []uint64) error {
	s.mu.Lock()
	s.calls = append(s.calls, append([]uint64(nil), seqs...))
	s.now = append(s.now, append([]uint64(nil), seqs...))
	s.mu.Unlock()
	return s.DB.QueueAckAllNow(queue, seqs)
}

func (s *ackCounter) commitsNow() [][]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]uint64(nil), s.now...)
}

func (s *ackCounter) commits() [][]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]uint64(nil), s.calls...)
}

// TestAcksGathered: the acknowledgements of the reports the peer answered
// for (taken, refused, or skipped because the peer is in Path) wait for
// AckDelay and go to the store in one commit; stopping the feed commits
// what waits; a full batch does not wait.
func TestAcksGathered(t *testing.T) {
	db := openStore(t)
	src := &ackCounter{DB: db}
	ids, _ := queue(t, db, 0, 4, "site-a.test!not-for-mail")
	queue(t, db, 4, 1, "peer.test!site-a.test!not-for-mail") // not offered: the peer is in Path
	p := &peer{refuse: map[string]bool{ids[3]: true}}
	o := options(t, nil)
	o.AckDelay = time.Hour // only Run's end (or a full batch) commits
	f := feed.New(feed.Peer{Name: peerName, Addr: p.start(t)}, src, o)
	stop := run(t, f)
	waitFor(t, "answers for every report", func() bool {
		s := f.Status()
		return s.Sent == 3 && s.Refused == 2
	})
	if c := src.commits(); len(c) != 0 || depth(t, db) != 5 {
		t.Errorf("before AckDelay: acknowledgement commits %v and depth %d, want none and 5", c, depth(t, db))
	}
	stop()
	if c := src.commits(); len(c) != 1 || len(c[0]) != 5 {
		t.Errorf("after Run returned: acknowledgement commits %v, want one of 5", c)
	}
	if d := depth(t, db); d != 0 {
		t.Errorf("after Run returned: depth %d, want 0", d)
	}

	if c := src.commitsNow(); len(c) != 0 {
		t.Errorf("acknowledgements committed at once %v, want none: 5 are no backlog", c)
	}

	// More than a batch: a backlog, committed without waiting for
	// AckDelay, or for another commit to join (store.LazyWait).
	const n = 300
	queue(t, db, 100, n, "site-a.test!not-for-mail")
	f = feed.New(feed.Peer{Name: peerName, Addr: p.start(t)}, src, o)
	run(t, f)
	waitFor(t, "the peer to have every report", func() bool { return p.count() >= 3+n })
	waitFor(t, "commits of full batches", func() bool { return depth(t, db) < n })
	if c := src.commitsNow(); len(c) == 0 || len(c[0]) < n/3 {
		t.Errorf("acknowledgements committed at once: %d calls, want full batches of a backlog of %d", len(c), n)
	}
}

// TestNotOfferedBack: a report the peer offered to this site (Offered) is
// not offered to it: it has it. The others are, in order, and the skipped
// one leaves the queue too.
func TestNotOfferedBack(t *testing.T) {
	db := openStore(t)
	ids, arts := queue(t, db, 0, 5, "site-a.test!not-for-mail")
	off := feed.NewOffered()
	off.Add(peerName, ids[2])
	off.Add("another.test", ids[3]) // offered by someone else: no matter
	p := &peer{}
	o := options(t, nil)
	o.PeerHas = off.For(peerName)
	m := metrics.New(prometheus.NewRegistry())
	o.Metrics = m
	f := feed.New(feed.Peer{Name: peerName, Addr: p.start(t), CheckSize: -1}, db, o) // CHECK for all: see TestOrderAndCompleteness
	run(t, f)
	want := slices.Delete(slices.Clone(ids), 2, 3)
	waitFor(t, "the others at the peer", func() bool { return p.count() >= len(want) })
	waitFor(t, "an empty queue", func() bool { return depth(t, db) == 0 })
	p.mu.Lock()
	offered := slices.Clone(p.offered)
	p.mu.Unlock()
	if !slices.Equal(offered, want) {
		t.Errorf("offered %v, want %v (all but the one the peer offered us)", offered, want)
	}
	_, got := p.snapshot()
	for _, id := range want {
		if !bytes.Equal(got[id], sent(arts[id])) {
			t.Errorf("%s did not arrive intact", id)
		}
	}
	if s := f.Status(); s.Skipped != 1 || s.Sent != 4 || s.Refused != 0 {
		t.Errorf("status %+v, want 1 skipped, 4 sent", s)
	}
	if got := value(t, m.FeedSkipped.WithLabelValues(peerName)); got != 1 {
		t.Errorf("dst_feed_skipped_total = %v, want 1", got)
	}
}

func TestOfferedForgetsOldest(t *testing.T) {
	off := feed.NewOffered()
	for i := range feed.OfferedPerPeer + 1 {
		off.Add(peerName, fmt.Sprintf("<%d@x>", i))
	}
	off.Add(peerName, "<5@x>") // already there: changes nothing
	if off.Has(peerName, "<0@x>") || !off.Has(peerName, "<1@x>") || !off.Has(peerName, fmt.Sprintf("<%d@x>", feed.OfferedPerPeer)) {
		t.Error("Offered does not keep exactly the latest OfferedPerPeer IDs")
	}
	if off.Has("another.test", "<1@x>") {
		t.Error("an ID offered by one peer counts for another")
	}
}

// TestTakeThisWithoutCheck: a report smaller than Peer.CheckSize goes
// with TAKETHIS alone, a larger article is offered with CHECK first; a
// small one the peer has already is refused (439) and leaves the queue,
// as a 438 to a CHECK would.
func TestTakeThisWithoutCheck(t *testing.T) {
	db := openStore(t)
	ids, arts := queue(t, db, 0, 3, "site-a.test!not-for-mail")
	bigID, big := report(3, "site-a.test!not-for-mail")
	big = append(big, bytes.Repeat([]byte("x"), feed.DefaultCheckSize)...)
	big = append(big, "\r\n"...)
	store1(t, db, 3, bigID, big)
	ids, arts[bigID] = append(ids, bigID), big
	p := &peer{received: map[string][]byte{ids[1]: sent(arts[ids[1]])}, order: []string{ids[1]}} // has the second already
	f := feed.New(feed.Peer{Name: peerName, Addr: p.start(t)}, db, options(t, nil))
	run(t, f)
	waitFor(t, "the answers", func() bool { s := f.Status(); return s.Sent+s.Refused == int64(len(ids)) })
	waitFor(t, "an empty queue", func() bool { return depth(t, db) == 0 })
	checkDelivered(t, p, db, ids, arts)
	p.mu.Lock()
	checked, checks := slices.Clone(p.offered), p.checks
	p.mu.Unlock()
	if !slices.Equal(checked, []string{bigID}) || checks != 1 {
		t.Errorf("CHECK sent for %v (%d in all), want only for the %d-byte article %s", checked, checks, len(big), bigID)
	}
	if s := f.Status(); s.Sent != 3 || s.Refused != 1 {
		t.Errorf("status %+v, want 3 sent and 1 refused (the duplicate)", s)
	}
}

// TestMixedRefill: in one refill, reports under Peer.CheckSize and over
// it alternate; each run of TAKETHIS goes in one flush and each run of
// CHECK in one, and the answers still match the commands in order: every
// report arrives whole, only the large ones are offered with CHECK, and
// no session fails.
func TestMixedRefill(t *testing.T) {
	db := openStore(t)
	const checkSize = 600
	var ids, big []string
	arts := map[string][]byte{}
	for i := range 9 {
		id, art := report(i, "site-a.test!not-for-mail")
		if i%3 == 1 { // small, large, small, small, large, ...: runs of both lengths
			art = append(art, bytes.Repeat([]byte("x"), checkSize)...)
			art = append(art, "\r\n"...)
			big = append(big, id)
		}
		store1(t, db, i, id, art)
		ids, arts[id] = append(ids, id), art
	}
	p := &peer{}
	f := feed.New(feed.Peer{Name: peerName, Addr: p.start(t), CheckSize: checkSize}, db, options(t, nil))
	run(t, f)
	checkDelivered(t, p, db, ids, arts)
	p.mu.Lock()
	offered := slices.Clone(p.offered)
	p.mu.Unlock()
	if !slices.Equal(offered, big) {
		t.Errorf("CHECK sent for %v, want for the large ones only, in order: %v", offered, big)
	}
	if s := f.Status(); s.Sent != int64(len(ids)) || s.LastError != "" {
		t.Errorf("status %+v, want %d sent and no error", s, len(ids))
	}
}

// BenchmarkCatchUp measures a feed working through a backlog, as after a
// peer's outage: b.N reports are queued before the timer starts, then the
// feed streams them (TAKETHIS, default window) to a peer in this process
// until the queue is empty. The store does not sync (the commit's fsync is
// BenchmarkAddReportAlone's subject in the store package).
func BenchmarkCatchUp(b *testing.B) {
	db := openStore(b)
	for i := range b.N {
		id, art := report(i, "site-a.test!not-for-mail")
		store1(b, db, i, id, art)
	}
	p := &peer{}
	addr := p.start(b)
	b.ResetTimer()
	f := feed.New(feed.Peer{Name: peerName, Addr: addr}, db, options(b, nil))
	run(b, f)
	waitFor(b, "an empty queue", func() bool { return p.count() >= b.N && depth(b, db) == 0 })
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reports/s")
}
