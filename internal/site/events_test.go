package site

import (
	"context"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/dst-traps/dst/internal/config"
	"github.com/dst-traps/dst/internal/dsttest"
	"github.com/dst-traps/dst/internal/store"
)

// TestRemovalsOneObserver: a listing removed by dstctl delist, by expiry
// or by a cancel goes the same way, through the store's commit observer:
// out of the embedded DNS server, counted by reason, and a line in the
// report log, whose queue the store routed.
func TestRemovalsOneObserver(t *testing.T) {
	cfg := testConfig(t, "a.test", func(c *config.Config) {
		documentation(c)
		c.Actions.Log.File = filepath.Join(t.TempDir(), "reports.log")
	})
	r := start(t, cfg)
	removed := func(reason string) float64 {
		var m dto.Metric
		if err := r.met.ListingsRemoved.WithLabelValues(reason).Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	inDNS := func(ip string) bool { return len(queryA(t, r.Site, ip)) > 0 }

	for _, ip := range []string{"192.0.2.1", "192.0.2.2"} {
		post(t, r.Site, ip)
		if !inDNS(ip) {
			t.Fatalf("%s listed but not in DNS: the observer did not add it", ip)
		}
	}

	// dstctl delist.
	if ok, err := r.Delist(context.Background(), netip.MustParseAddr("192.0.2.1"), false); err != nil || !ok {
		t.Fatalf("Delist = %v, %v", ok, err)
	}
	if inDNS("192.0.2.1") || removed("delisted") != 1 {
		t.Errorf("after delist: in DNS %v, delisted count %v", inDNS("192.0.2.1"), removed("delisted"))
	}

	// Expiry.
	r.sweepOnce(time.Now().Add(cfg.Listing.MaxExpire.Duration+time.Hour), false)
	if inDNS("192.0.2.2") || removed("expired") != 1 {
		t.Errorf("after expiry: in DNS %v, expired count %v", inDNS("192.0.2.2"), removed("expired"))
	}
	if !strings.Contains(r.log.String(), "listing expired") {
		t.Error("the expiry is not logged")
	}

	// A cancel of this site's own report.
	post(t, r.Site, "192.0.2.3")
	var id string
	r.db.ForEachListing(func(l store.Listing) error { id = l.LastMessageID; return nil })
	res, err := r.Cancel(context.Background(), id)
	if err != nil || !res.Delisted {
		t.Fatalf("Cancel = %+v, %v", res, err)
	}
	if inDNS("192.0.2.3") || removed("cancelled") != 1 {
		t.Errorf("after cancel: in DNS %v, cancelled count %v", inDNS("192.0.2.3"), removed("cancelled"))
	}

	// The report log got each, woken by the observer, not by its poll.
	dsttest.WaitFor(t, 10*time.Second, "the report log lines", func() bool {
		n, _ := r.db.QueueDepth("log")
		return n == 0 && r.stats[0].Snapshot().Done == 6
	})
}
