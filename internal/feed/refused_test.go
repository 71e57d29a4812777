package feed_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"net"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/feed"
)

func TestRefusalReason(t *testing.T) {
	for _, tc := range []struct {
		code int
		text string
		want string
	}{
		{439, "signature: no key in the keyring for the signer (d=a.test s=dst)", feed.ReasonKeyring},
		{439, "signature: DKIM signature does not verify", feed.ReasonKeyring},
		{439, "Date 2031-01-01T00:00:00Z is in the future", feed.ReasonClock},
		{439, "Date 2020-01-01T00:00:00Z is older than the history (720h0m0s)", feed.ReasonClock},
		{438, "already seen", feed.ReasonDuplicate},
		{439, "duplicate: already seen", feed.ReasonDuplicate},
		{435, "", feed.ReasonDuplicate},
		{439, "malformed Message-ID", feed.ReasonOther},
		{437, "policy: 192.0.2.1 is on the allow list", feed.ReasonOther},
	} {
		if got := feed.RefusalReason(tc.code, tc.text); got != tc.want {
			t.Errorf("RefusalReason(%d, %q) = %s, want %s", tc.code, tc.text, got, tc.want)
		}
	}
	if !feed.Fixable(feed.ReasonKeyring) || !feed.Fixable(feed.ReasonClock) || feed.Fixable(feed.ReasonDuplicate) || feed.Fixable(feed.ReasonOther) {
		t.Error("Fixable: only keyring and clock refusals are kept")
	}
}

// TestRefusedKeptAndRefed: reports refused for a keyring or a clock
// reason are kept (across a restart), others are not; Refeed offers the
// kept ones of a reason again.
func TestRefusedKeptAndRefed(t *testing.T) {
	db := openStore(t)
	ids, arts := queue(t, db, 0, 8, "site-a.test!not-for-mail")
	const noKey = "signature: no key in the keyring for the signer"
	p := &peer{refuseText: map[string]string{
		ids[0]: noKey, ids[1]: noKey, ids[2]: noKey,
		ids[3]: "Date 2031-01-01T00:00:00Z is in the future",
		ids[4]: "not a DST report: Newsgroups must be dst.reports",
	}}
	addr := p.start(t)
	f := feed.New(feed.Peer{Name: peerName, Addr: addr}, db, options(t, nil))
	stop := run(t, f)
	waitFor(t, "every report answered", func() bool { s := f.Status(); return s.Depth == 0 && s.Sent == 3 && s.Kept == 4 })
	s := f.Status()
	got := map[string]int64{}
	for _, r := range s.Refusals {
		got[r.Reason] = r.Count
		if r.Reason == feed.ReasonKeyring && (r.LastCode != 439 || r.LastText != noKey || r.LastTime.IsZero()) {
			t.Errorf("keyring refusal %+v: want the peer's last answer", r)
		}
	}
	if got[feed.ReasonKeyring] != 3 || got[feed.ReasonClock] != 1 || got[feed.ReasonOther] != 1 {
		t.Errorf("refusals %+v: want 3 keyring, 1 clock, 1 other", s.Refusals)
	}
	stop()

	// A restart keeps them; the peer's administrator fixes the cause.
	p.mu.Lock()
	p.refuseText = nil
	p.mu.Unlock()
	f = feed.New(feed.Peer{Name: peerName, Addr: addr}, db, options(t, nil))
	run(t, f)
	if k := f.Status().Kept; k != 4 {
		t.Fatalf("after a restart %d reports kept, want 4", k)
	}
	if _, err := f.Refeed("duplicate"); err == nil {
		t.Error("Refeed of duplicates: no error")
	}
	n, err := f.Refeed(feed.ReasonClock)
	if err != nil || n != 1 {
		t.Fatalf("Refeed(clock) = %d, %v; want 1", n, err)
	}
	waitFor(t, "the clock refusal delivered", func() bool { _, m := p.snapshot(); return m[ids[3]] != nil })
	if k := f.Status().Kept; k != 3 {
		t.Errorf("%d kept after refeeding the clock refusal, want the 3 keyring ones", k)
	}
	n, err = f.Refeed("all")
	if err != nil || n != 3 {
		t.Fatalf("Refeed(all) = %d, %v; want 3", n, err)
	}
	delivered := append(append([]string(nil), ids[:4]...), ids[5:]...)
	checkDelivered(t, p, db, delivered, arts)
	if _, m := p.snapshot(); m[ids[4]] != nil {
		t.Error("the report refused for another reason was offered again")
	}
	if k := f.Status().Kept; k != 0 {
		t.Errorf("%d kept after refeeding all", k)
	}
}

// TestFlush: a flush cuts the reconnection backoff short and makes
// deferred reports due at once.
func TestFlush(t *testing.T) {
	t.Run("backoff", func(t *testing.T) {
		db := openStore(t)
		ids, arts := queue(t, db, 0, 2, "site-a.test!not-for-mail")
		p := &peer{deny: 1}
		o := options(t, nil)
		o.MinBackoff, o.MaxBackoff = time.Hour, time.Hour
		f := feed.New(feed.Peer{Name: peerName, Addr: p.start(t)}, db, o)
		run(t, f)
		waitFor(t, "the first failure", func() bool { s := f.Status(); return s.LastError != "" && !s.RetryAt.IsZero() })
		if _, err := f.Flush(); err != nil {
			t.Fatal(err)
		}
		checkDelivered(t, p, db, ids, arts)
	})
	t.Run("deferred", func(t *testing.T) {
		db := openStore(t)
		ids, arts := queue(t, db, 0, 3, "site-a.test!not-for-mail")
		p := &peer{checkLater: map[string]int{ids[1]: 1}}
		o := options(t, nil)
		o.MinBackoff, o.MaxBackoff = time.Hour, time.Hour
		// CHECK for all: a 431 to a CHECK is how a peer defers one
		// report (to a TAKETHIS it can only close the session).
		f := feed.New(feed.Peer{Name: peerName, Addr: p.start(t), CheckSize: -1}, db, o)
		run(t, f)
		waitFor(t, "the deferral", func() bool { s := f.Status(); return s.Deferred == 1 && s.Sent == 2 })
		n, err := f.Flush()
		if err != nil || n != 1 {
			t.Fatalf("Flush = %d, %v; want 1 deferred report made due", n, err)
		}
		checkDelivered(t, p, db, ids, arts)
	})
}

// TestPeerTest: a round trip without a report, to a live peer (plain and
// TLS) and to a dead one.
func TestPeerTest(t *testing.T) {
	db := openStore(t)
	p := &peer{}
	f := feed.New(feed.Peer{Name: peerName, Addr: p.start(t)}, db, options(t, nil))
	r := f.Test(context.Background())
	if !r.OK || !r.Streaming || r.TLS.State != "loopback plain" || len(r.Steps) != 4 || r.Steps[2].Step != "CHECK" {
		t.Errorf("test of a live peer: %+v", r)
	}
	if p.count() != 0 {
		t.Error("the test sent an article")
	}

	cert, roots := selfSigned(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	(&peer{}).serve(t, tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}}))
	f = feed.New(feed.Peer{Name: peerName, Addr: ln.Addr().String(), TLS: feed.TLSImplicit,
		TLSConfig: &tls.Config{RootCAs: roots, ServerName: peerName}}, db, options(t, nil))
	r = f.Test(context.Background())
	sum := sha256.Sum256(cert.Certificate[0])
	if !r.OK || r.TLS.State != "tls" || r.TLS.CertSHA256 != hex.EncodeToString(sum[:]) || r.TLS.Version == "" {
		t.Errorf("test of a TLS peer: %+v", r)
	}

	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := dead.Addr().String()
	dead.Close()
	f = feed.New(feed.Peer{Name: peerName, Addr: addr}, db, options(t, nil))
	r = f.Test(context.Background())
	if r.OK || len(r.Steps) != 1 || r.Steps[0].Step != "connect" || r.Steps[0].Err == "" {
		t.Errorf("test of a dead peer: %+v", r)
	}
}
