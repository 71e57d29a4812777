package ingest

import (
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/article"
	"github.com/dst-traps/dst/internal/dkim"
	"github.com/dst-traps/dst/internal/policy"
	"github.com/dst-traps/dst/internal/store"
)

// TestTrustDecisions: the keyring's operator= makes two sites one reporter
// towards the threshold, and its probation keeps a site's reports off the
// list while they are still stored and relayed.
func TestTrustDecisions(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "dst.db"), store.Options{NoSync: true, Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var relayed []string
	if err := db.Subscribe("feed", func(ev store.Event) bool {
		relayed = append(relayed, ev.MessageID)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	signers := map[string]*dkim.Signer{}
	var ring strings.Builder
	for _, l := range []struct{ site, attrs string }{
		{"site-a.test", ""}, {"site-b.test", " operator=acme"}, {"site-c.test", " operator=acme"}, {"site-d.test", " probation"},
	} {
		pub, key, _ := dkim.GenerateKey()
		signers[l.site], _ = dkim.NewSigner(l.site, "dst", key)
		ring.WriteString(l.site + " dst " + base64.StdEncoding.EncodeToString(pub) + l.attrs + "\n")
	}
	kr, err := dkim.ParseKeyring(strings.NewReader(ring.String()))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	in := New(Options{
		Site: "site-a.test", Store: db, Signer: signers["site-a.test"], Limits: article.DefaultLimits(),
		HistoryKeep: 30 * 24 * time.Hour, MaxFuture: time.Hour,
		Listing: store.IngestParams{ExpireBase: 24 * time.Hour, ExpireMax: 14 * 24 * time.Hour, Threshold: 2, Window: 24 * time.Hour,
			ProbationCorroborations: 3},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now: func() time.Time { return now },
	}, kr, policy.New(policy.Config{AllowDocumentation: true}))
	f := &fixture{now: now}
	send := func(site, ip string) Verdict {
		t.Helper()
		a := f.report(t, ip, now)
		a.Set("From", "DST <dst@"+site+">")
		signed, err := signers[site].Sign(a.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		raw := append([]byte("Path: "+site+"!not-for-mail\r\n"), signed...)
		return in.Receive(context.Background(), a.Get("Message-ID"), raw, site)
	}
	listed := func(ip string) bool {
		_, ok, err := db.Lookup(netip.MustParseAddr(ip))
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if v := send("site-b.test", "203.0.113.1"); v.Kind != Accepted || listed("203.0.113.1") {
		t.Fatalf("first report: %+v, listed %v", v, listed("203.0.113.1"))
	}
	if v := send("site-c.test", "203.0.113.1"); v.Kind != Accepted || listed("203.0.113.1") {
		t.Errorf("second site of the same operator: %+v, listed %v; want pending (one operator)", v, listed("203.0.113.1"))
	}
	if _, v := in.Inject(context.Background(), f.report(t, "203.0.113.1", now).Bytes(), "test"); v.Kind != Accepted || !listed("203.0.113.1") {
		t.Errorf("a second operator (this site): %+v, listed %v; want listed", v, listed("203.0.113.1"))
	}
	n := len(relayed)
	if v := send("site-d.test", "203.0.113.2"); v.Kind != Accepted || !strings.Contains(v.Reason, "probation") {
		t.Errorf("report of a site on probation: %+v", v)
	}
	if len(relayed) != n+1 {
		t.Errorf("the report on probation was not queued for the feeds")
	}
	// Not listed even with a second operator: probation reports count
	// for nothing, they only earn.
	send("site-b.test", "203.0.113.2")
	if listed("203.0.113.2") {
		t.Error("a report on probation counted towards the threshold")
	}
}

// TestConfiguredProbation: policy.new_origin applies to origins whose key
// is not in the keyring file; never to this site.
func TestConfiguredProbation(t *testing.T) {
	pub, _, _ := dkim.GenerateKey()
	k := base64.StdEncoding.EncodeToString(pub)
	kr, err := dkim.ParseKeyring(strings.NewReader("site-b.test dst " + k + "\nsite-c.test dst " + k + " probation\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		newProbation bool
		origin       string
		want         bool
	}{
		{false, "site-b.test", false}, {false, "site-c.test", true}, {false, "dns.test", false},
		{true, "site-b.test", false}, {true, "dns.test", true}, {true, "SITE-A.test", false},
	} {
		in := &Ingester{o: Options{Site: "site-a.test", NewOriginProbation: tc.newProbation}}
		if got := in.configuredProbation(kr, tc.origin); got != tc.want {
			t.Errorf("new_origin probation %v, %s: %v, want %v", tc.newProbation, tc.origin, got, tc.want)
		}
	}
}
