package feeds_test

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dst-traps/dst/internal/dkim"
	"github.com/dst-traps/dst/internal/dsttest"
	"github.com/dst-traps/dst/internal/report"
)

// dnsListed asks a site's embedded DNS server about ip in zone bl.test.
func dnsListed(t *testing.T, s *dsttest.Dstd, ip string) int {
	t.Helper()
	b := netip.MustParseAddr(ip).As4()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(fmt.Sprintf("%d.%d.%d.%d.bl.test", b[3], b[2], b[1], b[0])), dns.TypeA)
	r, err := dns.Exchange(m, s.DNS)
	if err != nil {
		t.Fatalf("DNS query at %s: %v", s.Site, err)
	}
	return r.Rcode
}

// A cancel from the origin delists its report at every site of a chain; a
// cancel signed by another site is refused and changes nothing.
func TestCancel(t *testing.T) {
	nw := newNetwork(t, 3, chain(3), "[dns]\nzone = \"bl.test\"\n")
	nw.start()

	const ip = "203.0.113.40"
	id := nw.inject(0, ip)
	nw.waitEverywhere(ip)
	if rc := dnsListed(t, nw.sites[2], ip); rc != dns.RcodeSuccess {
		t.Fatalf("site 2's DNSBL answers %s for a listed address", dns.RcodeToString[rc])
	}

	// Site 1 tries to cancel site 0's report at site 2, straight over IHAVE.
	key, err := dkim.LoadPrivateKey(filepath.Join(nw.sites[1].Dir, "dkim.key"))
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := dkim.NewSigner("site-1.test", "dst", key)
	forged, err := report.NewCancel("site-1.test", id, netip.Addr{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	forged.Del("Path")
	signed, err := signer.Sign(forged.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	signed = append([]byte("Path: site-1.test!not-for-mail\r\n"), signed...)
	if code := dsttest.IHave(t, nw.sites[2].NNTP, signed); code != 437 {
		t.Errorf("IHAVE of site 1's cancel of site 0's report: %d, want 437", code)
	}
	if !listed(nw.sites[2], ip) {
		t.Fatal("site 1's cancel delisted site 0's report")
	}
	if m := metricsOf(t, nw.sites[2]); !strings.Contains(m, `dst_reports_refused_total{reason="cancel-origin"} 1`) {
		t.Error("the refused cancel is not counted")
	}

	// Only the origin may ask, and only for a report it has.
	if out, code := nw.sites[1].Ctl("cancel", id); code != 4 || !strings.Contains(out, "only its origin") {
		t.Errorf("dstctl cancel at another site: exit %d, %q", code, out)
	}
	if out, code := nw.sites[0].Ctl("cancel", "<nope@site-0.test>"); code != 4 || !strings.Contains(out, "no accepted report") {
		t.Errorf("dstctl cancel of an unknown report: exit %d, %q", code, out)
	}

	out, code := nw.sites[0].Ctl("cancel", id)
	if code != 0 || !strings.Contains(out, "cancelled "+id+" (report about "+ip+"): delisted here") {
		t.Fatalf("dstctl cancel: exit %d, %q", code, out)
	}
	dsttest.WaitFor(t, 60*time.Second, ip+" delisted at every site", func() bool {
		for _, s := range nw.sites {
			if listed(s, ip) {
				return false
			}
		}
		return true
	})
	dsttest.WaitFor(t, 10*time.Second, "NXDOMAIN for "+ip+" at site 2", func() bool {
		return dnsListed(t, nw.sites[2], ip) == dns.RcodeNameError
	})
	if !strings.Contains(nw.sites[2].Log(), "cancel accepted") {
		t.Error("site 2 did not log the cancel")
	}
}
