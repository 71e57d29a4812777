package rbldnsd

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dst-traps/dst/internal/dsttest"
)

// gradedSample: listings with their own A records (graded answers), one
// with none (the exporter's) and one with an address outside 127/8, which
// never reaches the file.
func gradedSample() []Listing {
	return []Listing{
		{IP: netip.MustParseAddr("203.0.113.1"), Expires: expires, Hits: 1, Origins: []string{"a"}, A: netip.MustParseAddr("127.0.0.2")},
		{IP: netip.MustParseAddr("203.0.113.3"), Expires: expires, Hits: 3, Origins: []string{"a", "b", "c"}, A: netip.MustParseAddr("127.0.0.4")},
		{IP: netip.MustParseAddr("203.0.113.9"), Expires: expires, Hits: 9, Origins: []string{"a"}, A: netip.MustParseAddr("127.0.0.9")},
		{IP: netip.MustParseAddr("203.0.113.10"), Expires: expires, Hits: 1, Origins: []string{"a"}},
		{IP: netip.MustParseAddr("203.0.113.11"), Expires: expires, Hits: 1, Origins: []string{"a"}, A: netip.MustParseAddr("192.0.2.1")},
		{IP: netip.MustParseAddr("2001:db8::5"), Expires: expires, Hits: 5, Origins: []string{"a"}, A: netip.MustParseAddr("127.0.0.6")},
	}
}

var gradedWant = map[string]string{
	"203.0.113.1": "127.0.0.2", "203.0.113.3": "127.0.0.4", "203.0.113.9": "127.0.0.9",
	"203.0.113.10": "127.0.0.2", "203.0.113.11": "127.0.0.2", "2001:db8::5": "127.0.0.6",
	"127.0.0.2": "127.0.0.2", "::ffff:7f00:2": "127.0.0.2",
}

// TestGradedFormat: each line carries its listing's value (":127.0.0.4:"),
// the default line and the test point stay 127.0.0.2.
func TestGradedFormat(t *testing.T) {
	dir := t.TempDir()
	export(t, dir, gradedSample())
	b, err := os.ReadFile(filepath.Join(dir, "dst-ip4"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		":127.0.0.2:Listed by DST", "\n127.0.0.2\n",
		"\n203.0.113.1 :127.0.0.2:Listed by DST: 1 trap hits",
		"\n203.0.113.3 :127.0.0.4:Listed by DST: 3 trap hits",
		"\n203.0.113.9 :127.0.0.9:",
		"\n203.0.113.10 :127.0.0.2:",
		"\n203.0.113.11 :127.0.0.2:",
	} {
		if !strings.Contains(string(b), line) {
			t.Errorf("dst-ip4 lacks %q:\n%s", line, b)
		}
	}
	b, err = os.ReadFile(filepath.Join(dir, "dst-ip6"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "\n2001:db8::5 :127.0.0.6:") {
		t.Errorf("dst-ip6 lacks the graded 2001:db8::5:\n%s", b)
	}
}

// TestGradedRbldnsd: a real rbldnsd answers each listing's own value.
func TestGradedRbldnsd(t *testing.T) {
	bin := dsttest.Require(t, "rbldnsd", "rbldnsd")
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	export(t, dir, gradedSample())
	addr := Start(t, bin, dir, "bl.test", "dst-ip4", "dst-ip6")
	c := &dns.Client{Timeout: 2 * time.Second}
	for ip, want := range gradedWant {
		m := new(dns.Msg)
		m.SetQuestion(reverse(t, ip, "bl.test"), dns.TypeA)
		r, _, err := c.Exchange(m, addr)
		if err != nil {
			t.Fatal(err)
		}
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != want {
			t.Errorf("%s A: %v, want %s", ip, r.Answer, want)
		}
	}
	m := new(dns.Msg)
	m.SetQuestion(reverse(t, "127.0.0.1", "bl.test"), dns.TypeA)
	if r, _, err := c.Exchange(m, addr); err != nil || r.Rcode != dns.RcodeNameError {
		t.Errorf("test point 127.0.0.1: %v %v, want NXDOMAIN", r, err)
	}
}

func reverse(t *testing.T, ip, zone string) string {
	t.Helper()
	n, err := dns.ReverseAddr(ip)
	if err != nil {
		t.Fatal(err)
	}
	n = strings.TrimSuffix(n, "in-addr.arpa.")
	n = strings.TrimSuffix(n, "ip6.arpa.")
	return n + zone + "."
}
