package ingest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dst-traps/dst/internal/article"
	"github.com/dst-traps/dst/internal/dkim"
	"github.com/dst-traps/dst/internal/policy"
	"github.com/dst-traps/dst/internal/report"
	"github.com/dst-traps/dst/internal/store"
)

type fixture struct {
	in   *Ingester
	db   *store.DB
	peer *dkim.Signer // site-b.test, in the keyring
	now  time.Time

	mu      sync.Mutex
	commits []store.Commit // what the store's observer heard
}

// removed returns the addresses whose listings the commits so far removed.
func (f *fixture) removed() []netip.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []netip.Addr
	for _, c := range f.commits {
		for _, ch := range c.Listings {
			if ch.Kind.Removed() {
				out = append(out, ch.Listing.IP)
			}
		}
	}
	return out
}

// queuedCommits counts the commits that queued events.
func (f *fixture) queuedCommits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.commits {
		if len(c.Queued) > 0 {
			n++
		}
	}
	return n
}

// subscribeFeed subscribes the queue of a feed to peer, as dstd does.
func (f *fixture) subscribeFeed(t *testing.T, queue, peer string) {
	t.Helper()
	if err := f.db.Subscribe(queue, func(ev store.Event) bool {
		return ev.Kind == store.EventReport && ev.Cause != store.CauseUpdate && !article.PathContains(ev.Path, peer)
	}); err != nil {
		t.Fatal(err)
	}
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "dst.db"), store.Options{NoSync: true, Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	// The report log's subscription: this site's list only.
	if err := db.Subscribe("log", func(ev store.Event) bool { return ev.Cause == store.CauseListing }); err != nil {
		t.Fatal(err)
	}
	ownPub, ownKey, _ := dkim.GenerateKey()
	peerPub, peerKey, _ := dkim.GenerateKey()
	own, _ := dkim.NewSigner("site-a.test", "dst", ownKey)
	peer, _ := dkim.NewSigner("site-b.test", "dst", peerKey)
	kr, _ := dkim.ParseKeyring(strings.NewReader(""))
	kr.Add("site-a.test", "dst", ownPub)
	kr.Add("site-b.test", "dst", peerPub)
	f := &fixture{db: db, peer: peer, now: time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)}
	f.in = New(Options{
		Site: "site-a.test", Store: db, Signer: own, Limits: article.DefaultLimits(),
		HistoryKeep: 30 * 24 * time.Hour, MaxFuture: time.Hour,
		Listing: store.IngestParams{ExpireBase: 24 * time.Hour, ExpireMax: 14 * 24 * time.Hour, Threshold: 1, Window: 24 * time.Hour},
		Log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:     func() time.Time { return f.now },
	}, kr, policy.New(policy.Config{AllowDocumentation: true}))
	db.OnCommit(func(c store.Commit) {
		f.mu.Lock()
		f.commits = append(f.commits, c)
		f.mu.Unlock()
	})
	return f
}

func (f *fixture) report(t *testing.T, ip string, date time.Time) *article.Article {
	t.Helper()
	a, err := report.New(report.Hit{SourceIP: netip.MustParseAddr(ip), Arrival: date, Host: "trap.test", UserAgent: "test",
		Message: []byte("Subject: spam\r\n\r\nbuy\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// relayed is an article injected at site-b.test.
func (f *fixture) relayed(t *testing.T, ip string, date time.Time, edit func(*article.Article)) (string, []byte) {
	t.Helper()
	a := f.report(t, ip, date)
	a.Set("From", "DST <dst@site-b.test>")
	if edit != nil {
		edit(a)
	}
	signed, err := f.peer.Sign(a.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return a.Get("Message-ID"), append([]byte("Path: site-b.test!not-for-mail\r\n"), signed...)
}

func TestInject(t *testing.T) {
	f := newFixture(t)
	a := f.report(t, "203.0.113.7", f.now)
	a.Set("From", "someone <x@elsewhere.example>")
	a.Set("DKIM-Signature", "v=1; forged")
	id, v := f.in.Inject(context.Background(), a.Bytes(), "test")
	if v.Kind != Accepted || id != a.Get("Message-ID") {
		t.Fatalf("Inject = %q %+v", id, v)
	}
	l, ok, _ := f.db.Lookup(netip.MustParseAddr("203.0.113.7"))
	if !ok || l.Origins[0] != "site-a.test" || !l.Expires.Equal(f.now.Add(24*time.Hour)) {
		t.Errorf("listing = %+v, %v", l, ok)
	}
	stored, _ := f.db.Article(id)
	st, err := article.Parse(stored, article.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if st.Get("Path") != "site-a.test!not-for-mail" || st.Get("From") != "DST <dst@site-a.test>" || len(st.Values("DKIM-Signature")) != 1 {
		t.Errorf("injected article headers: %q", st.Header)
	}
	if n := f.queuedCommits(); n != 1 {
		t.Errorf("%d commits queued events, want 1", n)
	}
	if _, v := f.in.Inject(context.Background(), a.Bytes(), "test"); v.Kind != Duplicate {
		t.Errorf("second Inject = %+v, want Duplicate", v)
	}
}

func TestInjectWithoutMessageIDOrDate(t *testing.T) {
	f := newFixture(t)
	a := f.report(t, "203.0.113.8", f.now)
	a.Del("Message-ID")
	a.Del("Date")
	id, v := f.in.Inject(context.Background(), a.Bytes(), "test")
	if v.Kind != Accepted || !strings.HasSuffix(id, "@site-a.test>") {
		t.Fatalf("Inject = %q %+v", id, v)
	}
}

func TestReceive(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	for _, tc := range []struct {
		name    string
		ip      string
		date    time.Time
		edit    func(*article.Article)
		mangle  func([]byte) []byte
		id      string // announced Message-ID; "" = the article's
		want    Kind
		refusal string
		// fixable: refused for a reason the administrator can fix
		// (keyring, clock), so not remembered: it may come again.
		fixable bool
		// unrecordable: the announced Message-ID is not one, so the
		// history cannot hold it.
		unrecordable bool
	}{
		{name: "valid", ip: "203.0.113.20", date: f.now, want: Accepted},
		{name: "old", ip: "203.0.113.21", date: f.now.Add(-31 * 24 * time.Hour), want: Refused, refusal: "date", fixable: true},
		{name: "future", ip: "203.0.113.22", date: f.now.Add(2 * time.Hour), want: Refused, refusal: "date", fixable: true},
		{name: "special-purpose", ip: "10.0.0.1", date: f.now, want: Refused, refusal: "policy"},
		{name: "wrong group", ip: "203.0.113.23", date: f.now, edit: func(a *article.Article) { a.Set("Newsgroups", "alt.test") }, want: Refused, refusal: "malformed"},
		{name: "announced id differs", ip: "203.0.113.24", date: f.now, id: "<other@site-b.test>", want: Refused, refusal: "malformed"},
		// Refused before the history is read: it cannot be recorded, and
		// an offer of it is refused as malformed again.
		{name: "announced id malformed", ip: "203.0.113.27", date: f.now, id: "no-angle-brackets", want: Refused, refusal: "malformed", unrecordable: true},
		{name: "body altered", ip: "203.0.113.25", date: f.now, mangle: func(b []byte) []byte { return bytes.Replace(b, []byte("203.0.113.25"), []byte("203.0.113.99"), -1) }, want: Refused, refusal: "signature", fixable: true},
		{name: "garbage", ip: "203.0.113.26", date: f.now, mangle: func([]byte) []byte { return []byte("no header\r\n") }, want: Refused, refusal: "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, raw := f.relayed(t, tc.ip, tc.date, tc.edit)
			if tc.mangle != nil {
				raw = tc.mangle(raw)
			}
			if tc.id != "" {
				id = tc.id
			}
			v := f.in.Receive(ctx, id, raw, "site-b.test")
			if v.Kind != tc.want || v.Refusal != tc.refusal {
				t.Fatalf("Receive = %+v, want kind %d refusal %q", v, tc.want, tc.refusal)
			}
			_, listed, _ := f.db.Lookup(netip.MustParseAddr(tc.ip))
			if listed != (tc.want == Accepted) {
				t.Errorf("listed = %v", listed)
			}
			if v.Fixable != tc.fixable {
				t.Errorf("Fixable = %v, want %v", v.Fixable, tc.fixable)
			}
			if tc.unrecordable {
				if seen, _ := f.db.Seen(id); seen {
					t.Error("a malformed Message-ID is in the history")
				}
				if v := f.in.Offer(id); v.Kind != Refused || v.Refusal != "malformed" {
					t.Errorf("Offer after Receive = %+v, want refused as malformed", v)
				}
				return
			}
			if tc.fixable {
				if v := f.in.Offer(id); v.Kind != Accepted {
					t.Errorf("Offer after a refusal the administrator can fix = %+v, want Accepted (refeed)", v)
				}
				return
			}
			if seen, _ := f.db.Seen(id); !seen {
				t.Error("Message-ID not in the history: it would be offered again")
			}
			if v := f.in.Offer(id); v.Kind != Duplicate {
				t.Errorf("Offer after Receive = %+v, want Duplicate", v)
			}
		})
	}
	if v := f.in.Offer("not an id"); v.Kind != Refused {
		t.Errorf("Offer of a malformed id = %+v", v)
	}
}

// A peer's report about an address this site's policy keeps off its list
// for a local reason (allow-list, own networks) is stored and relayed, not
// listed; the same from this site's own trap, or about a special-purpose
// address, is refused.
func TestLocalPolicyRelaysPeersReports(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.subscribeFeed(t, "feed/site-c.test", "site-c.test")
	f.in.SetPolicy(policy.New(policy.Config{AllowDocumentation: true,
		Allow:       []netip.Prefix{netip.MustParsePrefix("203.0.113.0/28")},
		OwnNetworks: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/28")}}))
	for _, ip := range []string{"203.0.113.5", "198.51.100.5"} {
		id, raw := f.relayed(t, ip, f.now, nil)
		if v := f.in.Receive(ctx, id, raw, "site-b.test"); v.Kind != Accepted {
			t.Fatalf("peer's report about %s: %+v, want accepted to relay", ip, v)
		}
		if _, listed, _ := f.db.Lookup(netip.MustParseAddr(ip)); listed {
			t.Errorf("%s listed despite the local policy", ip)
		}
		items, err := f.db.QueueNext("feed/site-c.test", f.now.Add(time.Hour), 10, nil)
		if err != nil || len(items) == 0 || items[len(items)-1].Event.MessageID != id {
			t.Errorf("report about %s not queued for the peers: %+v %v", ip, items, err)
		}
		if log, _ := f.db.QueueNext("log", f.now.Add(time.Hour), 10, nil); len(log) != 0 {
			t.Errorf("the report log got %+v for a report not listed here", log)
		}
		if v := f.in.Offer(id); v.Kind != Duplicate {
			t.Errorf("Offer after relay = %+v, want Duplicate", v)
		}
		// This site's own trap: refused, as before.
		a := f.report(t, ip, f.now)
		if _, v := f.in.Inject(ctx, a.Bytes(), "test"); v.Kind != Refused || v.Refusal != "policy" {
			t.Errorf("own report about %s: %+v, want refused by policy", ip, v)
		}
	}
}

// A peer whose configured name is neither the first name in the Path nor
// the signer of what it sends is warned about, with both names, once per
// peer; a Path that starts with another configured peer is that peer's.
func TestPeerNameMismatchWarned(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	var buf syncBuffer
	f.in.o.Log = slog.New(slog.NewTextHandler(&buf, nil))
	f.in.o.PeerNames = []string{"site-b.tset", "site-c.test", "site-x.test", "site-d.test"} // as configured: site-b.test mistyped
	withPath := func(raw []byte, path string) []byte {
		return bytes.Replace(raw, []byte("Path: site-b.test!not-for-mail"), []byte("Path: "+path), 1)
	}
	for i, tc := range []struct {
		name, from, path string
		warn             bool
	}{
		{"named right", "site-b.test", "site-b.test!not-for-mail", false},
		{"signer's name, another Path", "site-b.test", "relay.test!site-b.test!not-for-mail", false},
		{"Path starts with another configured peer", "site-c.test", "site-x.test!site-b.test!not-for-mail", false},
		{"mistyped", "site-b.tset", "site-b.test!not-for-mail", true},
		{"mistyped, again", "site-b.tset", "site-b.test!not-for-mail", false},
		{"mistyped, in other letter case", "SITE-B.TSET", "site-b.test!not-for-mail", false},
		{"another mistyped peer", "site-d.test", "relay.test!site-b.test!not-for-mail", true},
	} {
		before := strings.Count(buf.String(), "matches neither the Path nor the DKIM d=")
		id, raw := f.relayed(t, fmt.Sprintf("203.0.113.%d", 100+i), f.now, nil)
		if v := f.in.Receive(ctx, id, withPath(raw, tc.path), tc.from); v.Kind != Accepted {
			t.Fatalf("%s: Receive = %+v", tc.name, v)
		}
		if got := strings.Count(buf.String(), "matches neither the Path nor the DKIM d=") - before; got != map[bool]int{true: 1}[tc.warn] {
			t.Errorf("%s: %d warnings, want warned %v:\n%s", tc.name, got, tc.warn, buf.String())
		}
	}
	want := `level=WARN msg="a peer's configured name matches neither the Path nor the DKIM d= of what it sends`
	if !strings.Contains(buf.String(), want) || !strings.Contains(buf.String(), "peer=site-b.tset path_first=site-b.test dkim_domain=site-b.test") ||
		!strings.Contains(buf.String(), "peer=site-d.test path_first=relay.test dkim_domain=site-b.test") {
		t.Errorf("the warnings do not name both names:\n%s", buf.String())
	}
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestConcurrentCopies: copies of one article arriving at once over
// several links (a mesh) are accepted once; the later ones wait for the
// first and are refused as duplicates without being verified or written.
// If the first is not stored, the next one is accepted in its place.
func TestConcurrentCopies(t *testing.T) {
	for _, firstFails := range []bool{false, true} {
		t.Run(fmt.Sprintf("firstFails=%v", firstFails), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFixture(t)
				id, raw := f.relayed(t, "203.0.113.40", f.now, nil)
				// Now is read once per copy after the signature is
				// verified: the first copy stops there until released.
				var mu sync.Mutex
				entered := 0
				gate := make(chan struct{})
				f.in.o.Now = func() time.Time {
					mu.Lock()
					entered++
					first := entered == 1
					mu.Unlock()
					if first {
						<-gate
						if firstFails {
							return f.now.Add(-365 * 24 * time.Hour) // too old: refused, not stored
						}
					}
					return f.now
				}
				const copies = 3
				verdicts := make(chan Verdict, copies)
				for i := range copies {
					go func() { verdicts <- f.in.Receive(context.Background(), id, raw, fmt.Sprintf("peer-%d.test", i)) }()
					synctest.Wait()
				}
				mu.Lock()
				if entered != 1 {
					t.Errorf("%d copies got past the signature check while the first was being stored, want 1", entered)
				}
				mu.Unlock()
				close(gate)
				count := map[Kind]int{}
				for range copies {
					count[(<-verdicts).Kind]++
				}
				want := map[Kind]int{Accepted: 1, Duplicate: copies - 1}
				if firstFails {
					want = map[Kind]int{Refused: 1, Accepted: 1, Duplicate: copies - 2}
				}
				for k, n := range want {
					if count[k] != n {
						t.Errorf("verdicts %v, want %v", count, want)
						break
					}
				}
				if n := f.queuedCommits() + len(f.removed()); n != 1 {
					t.Errorf("%d commits, want 1", n)
				}
			})
		})
	}
}
