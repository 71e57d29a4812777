package site

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/config"
	"github.com/dst-traps/dst/internal/dkim"
	"github.com/dst-traps/dst/internal/dsttest"
)

// A peer on probation in B's keyring: its report reaches B, is stored and
// shown by Origins and Why, and lists nothing there until B's own report
// corroborates it. B's rate cap holds its second new listing of the hour.
func TestProbationAndRateCap(t *testing.T) {
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
		c.Policy.MaxNewListingsPerHour = 2
		c.Policy.ProbationCorroborations = 1
		c.Peers = []config.Peer{{Name: "a.test", Addresses: config.Prefixes{{Prefix: netip.MustParsePrefix("127.0.0.1/32")}}}}
	})
	line := dkim.KeyringLine("a.test", cfgA.DKIM.Selector, key.Public().(ed25519.PublicKey)) + " operator=acme probation"
	if err := os.MkdirAll(filepath.Dir(cfgB.DKIM.Keyring), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgB.DKIM.Keyring, []byte(line+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	b := start(t, cfgB)
	cfgA.Peers = []config.Peer{{Name: "b.test", Feed: config.MustParseHostPort(b.Addrs().NNTP[0].String())}}
	a := start(t, cfgA)
	ctx := context.Background()

	post(t, a.Site, "192.0.2.7")
	ip := netip.MustParseAddr("192.0.2.7")
	dsttest.WaitFor(t, 20*time.Second, "A's report to be stored at B", func() bool {
		w, err := b.Why(ctx, ip)
		return err == nil && len(w.Reports) == 1
	})
	if listed(t, b.Site, "192.0.2.7") {
		t.Error("a report of an origin on probation is listed")
	}
	w, _ := b.Why(ctx, ip)
	if r := w.Reports[0]; r.Origin != "a.test" || r.Operator != "acme" || !r.Probation || r.Signature != "valid" || r.Class != "spam" {
		t.Errorf("why: %+v", r)
	}
	os, err := b.Origins(ctx)
	if err != nil || len(os) != 1 || os[0].State != "probation" || os[0].Weight != 0 || os[0].Operator != "acme" {
		t.Fatalf("origins at B = %+v, %v", os, err)
	}

	// B's own trap corroborates: B lists (its own report), and a.test
	// has earned its one corroboration.
	post(t, b.Site, "192.0.2.7")
	if !listed(t, b.Site, "192.0.2.7") {
		t.Error("B's own report did not list")
	}
	os, _ = b.Origins(ctx)
	for _, o := range os {
		if o.Origin == "a.test" && (o.State != "trusted" || o.Corroborated != 1) {
			t.Errorf("a.test after a corroboration = %+v; want trusted", o)
		}
	}
	// The cap: 192.0.2.7 was B's first new listing this hour, .8 the
	// second, .9 is held.
	post(t, b.Site, "192.0.2.8")
	post(t, b.Site, "192.0.2.9")
	if !listed(t, b.Site, "192.0.2.8") || listed(t, b.Site, "192.0.2.9") {
		t.Errorf("rate cap 2: .8 listed %v (want true), .9 listed %v (want false)", listed(t, b.Site, "192.0.2.8"), listed(t, b.Site, "192.0.2.9"))
	}
	if !strings.Contains(b.log.String(), "held pending") {
		t.Error("no log line for the held report")
	}
	// Delisting counts against a.test, which reported .7; not against B.
	if _, err := b.Delist(ctx, ip, false); err != nil {
		t.Fatal(err)
	}
	os, _ = b.Origins(ctx)
	for _, o := range os {
		if want := map[string]int{"a.test": 1, "b.test": 0}[o.Origin]; o.Disputed != want {
			t.Errorf("%s disputed %d, want %d", o.Origin, o.Disputed, want)
		}
	}
}
