// Package dns_test checks a running dstd's DNS blocklist from the outside:
// the real dig against its embedded server, a real BIND as its secondary
// (NOTIFY, AXFR) and as a primary it updates (DNS UPDATE with TSIG), and a
// real rbldnsd serving its export.
package dns_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dst-traps/dst/internal/dnsutil"
	"github.com/dst-traps/dst/internal/dsttest"
)

const zone = "bl.test"

func digBin(t *testing.T) string {
	t.Helper()
	return dsttest.Require(t, "dig", "bind9-dnsutils")
}

// dig runs the real dig and returns its short answer and status line.
func dig(t *testing.T, server string, args ...string) string {
	t.Helper()
	host, port, _ := strings.Cut(server, ":")
	cmd := exec.Command(digBin(t), append([]string{"@" + host, "-p", port, "+tries=1", "+time=3", "+norecurse"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil && !strings.Contains(string(out), "status:") {
		t.Fatalf("dig %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func reverse(ip string) string {
	a := netip.MustParseAddr(ip)
	if a.Is4() {
		b := a.As4()
		return fmt.Sprintf("%d.%d.%d.%d.%s.", b[3], b[2], b[1], b[0], zone)
	}
	var sb strings.Builder
	b := a.As16()
	for i := 15; i >= 0; i-- {
		fmt.Fprintf(&sb, "%x.%x.", b[i]&0xf, b[i]>>4)
	}
	return sb.String() + zone + "."
}

func query(t *testing.T, server, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	r, err := dns.Exchange(m, server)
	if err != nil {
		t.Fatalf("query %s: %v", name, err)
	}
	return r
}

func TestEmbeddedServerWithDig(t *testing.T) {
	d := dsttest.NewDstd(t, "site-a.test", "[policy]\nallow_documentation = true\n[dns]\nzone = \"bl.test\"\n")
	d.Start()
	if out, code := d.Ctl("resync"); code != 4 || !strings.Contains(out, "no DNS UPDATE server") {
		t.Errorf("dstctl resync without [dns.update]: exit %d: %s", code, out)
	}
	d.Inject("203.0.113.7")
	d.Inject("2001:db8::7")
	srv := d.DNS
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{reverse("203.0.113.7"), "A"}, []string{"status: NOERROR", "127.0.0.2", "flags: qr aa"}},
		{[]string{reverse("203.0.113.7"), "TXT"}, []string{"status: NOERROR", "203.0.113.7", "site-a.test"}},
		{[]string{reverse("2001:db8::7"), "A"}, []string{"status: NOERROR", "127.0.0.2"}},
		{[]string{reverse("203.0.113.8"), "A"}, []string{"status: NXDOMAIN", "SOA"}},
		{[]string{"2.0.0.127." + zone, "A"}, []string{"status: NOERROR", "127.0.0.2"}},
		{[]string{"1.0.0.127." + zone, "A"}, []string{"status: NXDOMAIN"}},
		{[]string{reverse("203.0.113.7"), "MX"}, []string{"status: NOERROR", "ANSWER: 0", "SOA"}},
		{[]string{zone, "SOA"}, []string{"status: NOERROR", "SOA"}},
		{[]string{zone, "NS"}, []string{"status: NOERROR", "NS"}},
		{[]string{"www.example.com", "A"}, []string{"status: REFUSED"}},
		{[]string{"+tcp", reverse("203.0.113.7"), "A"}, []string{"status: NOERROR", "127.0.0.2"}},
	} {
		out := dig(t, srv, tc.args...)
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("dig %v: no %q in:\n%s", tc.args, w, out)
			}
		}
	}
	if out := dig(t, srv, zone, "AXFR"); !strings.Contains(out, "Transfer failed") && !strings.Contains(out, "REFUSED") {
		t.Errorf("AXFR from an address not allowed:\n%s", out)
	}
	// The serial moves with every change.
	before := query(t, srv, zone+".", dns.TypeSOA).Answer[0].(*dns.SOA).Serial
	d.Inject("203.0.113.9")
	after := query(t, srv, zone+".", dns.TypeSOA).Answer[0].(*dns.SOA).Serial
	if after <= before {
		t.Errorf("serial %d after a new listing, was %d", after, before)
	}
	// Delisting removes it from DNS at once.
	if _, code := d.Ctl("delist", "203.0.113.7"); code != 0 {
		t.Fatal("delist failed")
	}
	if r := query(t, srv, reverse("203.0.113.7"), dns.TypeA); r.Rcode != dns.RcodeNameError {
		t.Errorf("after delist: %s", dns.RcodeToString[r.Rcode])
	}
	// Serving DNS, dstd keeps a P beside its UDP readers (dnsbl.SpareP),
	// unless the environment it inherited from this test sets GOMAXPROCS.
	raised := regexp.MustCompile(`GOMAXPROCS raised by one .* gomaxprocs=(\d+)`).FindStringSubmatch(d.Log())
	switch {
	case os.Getenv("GOMAXPROCS") != "" && raised != nil:
		t.Errorf("dstd changed GOMAXPROCS, which the environment sets: %q", raised[0])
	case os.Getenv("GOMAXPROCS") == "" && raised == nil:
		t.Errorf("dstd serving DNS did not say it raised GOMAXPROCS; log:\n%s", d.Log())
	case raised != nil && raised[1] == "1":
		t.Errorf("GOMAXPROCS raised to 1: %q", raised[0])
	}
}

// TestBINDSecondary: BIND transfers dstd's zone after NOTIFY and answers
// for a listed address; a delisting reaches it too.
func TestBINDSecondary(t *testing.T) {
	key := &dsttest.TSIGKey{Name: "dst-xfr", Secret: "eGZyLXNlY3JldC14ZnItc2VjcmV0LXhmci1zZWNyZXQ="}
	for _, tc := range []struct {
		name string
		conf string
		key  *dsttest.TSIGKey
	}{
		{"by address", "allow_transfer = [\"127.0.0.1\"]\n", nil},
		{"by TSIG key", fmt.Sprintf("transfer_key_name = %q\ntransfer_key_secret = %q\n", key.Name, key.Secret), key},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := dsttest.FreeUDPTCPPort(t)
			d := dsttest.NewDstd(t, "site-a.test", "")
			d.Reconfigure(fmt.Sprintf("[policy]\nallow_documentation = true\n[dns]\nzone = \"bl.test\"\n%snotify = [\"127.0.0.1:%d\"]\n", tc.conf, port))
			d.Start()
			d.Inject("203.0.113.20")
			b := dsttest.StartBIND(t, dsttest.BINDOptions{Port: port, Secondary: &dsttest.BINDSecondary{Zone: zone, Primary: d.DNS, Key: tc.key}})
			dsttest.WaitFor(t, 30*time.Second, "BIND to answer for the listed address", func() bool {
				r, err := b.Query(reverse("203.0.113.20"), dns.TypeA)
				return err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0
			})
			d.Inject("203.0.113.21")
			dsttest.WaitFor(t, 30*time.Second, "NOTIFY to bring a new listing to BIND", func() bool {
				r, err := b.Query(reverse("203.0.113.21"), dns.TypeA)
				return err == nil && len(r.Answer) > 0
			})
			d.Ctl("delist", "203.0.113.20")
			dsttest.WaitFor(t, 30*time.Second, "a delisting to reach BIND", func() bool {
				r, err := b.Query(reverse("203.0.113.20"), dns.TypeA)
				return err == nil && r.Rcode == dns.RcodeNameError
			})
			if r, _ := b.Query(reverse("203.0.113.21"), dns.TypeTXT); r == nil || len(r.Answer) == 0 {
				t.Error("BIND has no TXT for the listing")
			}
			if !strings.Contains(d.Log(), "dns.ns is not set") {
				t.Error("dstd serving secondaries with the default NS name did not warn")
			}
			if tc.key != nil {
				// Without the key, no transfer, from any address.
				m := new(dns.Msg)
				m.SetAxfr(zone + ".")
				env, err := new(dns.Transfer).In(m, d.DNS)
				if err == nil {
					for e := range env {
						if e.Error == nil && len(e.RR) > 0 {
							t.Errorf("an unsigned AXFR got %d records", len(e.RR))
						}
					}
				}
			}
		})
	}
}

// oddTXT is a TXT template (a TOML literal string) whose text miekg/dns
// would misread if it were not escaped: a backslash, an escape-like
// sequence, quotes and non-ASCII.
const oddTXT = "Listed: back\\slash \\065BC \"quoted\" caf\u00e9 {ip}"

// TestBINDUpdate: dstd pushes listings into a BIND primary with DNS UPDATE
// signed with TSIG, and deletes them at expiry; a wrong key is refused by
// BIND and dstd says so.
func TestBINDUpdate(t *testing.T) {
	key := &dsttest.TSIGKey{Name: "dst-key", Secret: "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ="}
	b := dsttest.StartBIND(t, dsttest.BINDOptions{Primary: &dsttest.BINDPrimary{Zone: zone, Key: key}})
	conf := func(secret string) string {
		return fmt.Sprintf("[policy]\nallow_documentation = true\n[listing]\nexpire = \"3s\"\nmax_expire = \"6s\"\nsweep_interval = \"200ms\"\n"+
			"[dns]\nzone = \"bl.test\"\ntxt = '%s'\n[dns.update]\nserver = %q\nkey_name = \"dst-key\"\nsecret = %q\n", oddTXT, b.Addr(), secret)
	}
	d := dsttest.NewDstd(t, "site-a.test", "")
	d.Reconfigure(conf(key.Secret))
	d.Start()
	d.Inject("203.0.113.30")
	dsttest.WaitFor(t, 20*time.Second, "the listing to appear in BIND", func() bool {
		r, err := b.Query(reverse("203.0.113.30"), dns.TypeA)
		return err == nil && len(r.Answer) > 0
	})
	// The template's backslashes, quotes and non-ASCII reach BIND byte
	// for byte.
	if r, _ := b.Query(reverse("203.0.113.30"), dns.TypeTXT); r == nil || len(r.Answer) == 0 {
		t.Error("no TXT in BIND")
	} else if txt, ok := r.Answer[0].(*dns.TXT); !ok || dnsutil.TXTText(txt.Txt) != strings.ReplaceAll(oddTXT, "{ip}", "203.0.113.30") {
		t.Errorf("TXT in BIND %v, want %q", r.Answer[0], strings.ReplaceAll(oddTXT, "{ip}", "203.0.113.30"))
	}
	// Someone else's record in the zone: a resynchronisation on demand
	// (SIGUSR1) removes it.
	stray := reverse("198.51.100.99")
	u := new(dns.Msg)
	u.SetUpdate(zone + ".")
	rr, _ := dns.NewRR(stray + " 300 IN A 127.0.0.2")
	u.Insert([]dns.RR{rr})
	u.SetTsig(key.Name+".", dns.HmacSHA256, 300, time.Now().Unix())
	c := &dns.Client{Net: "tcp", TsigSecret: map[string]string{key.Name + ".": key.Secret}}
	if r, _, err := c.Exchange(u, b.Addr()); err != nil || r.Rcode != dns.RcodeSuccess {
		t.Fatalf("adding a stray record to BIND: %v %v", err, r)
	}
	d.Signal(syscall.SIGUSR1)
	dsttest.WaitFor(t, 20*time.Second, "the resynchronisation to remove the stray record", func() bool {
		r, err := b.Query(stray, dns.TypeA)
		return err == nil && r.Rcode == dns.RcodeNameError
	})
	// And on demand from dstctl, which waits and says what it did.
	stray2 := reverse("198.51.100.98")
	rr2, _ := dns.NewRR(stray2 + " 300 IN A 127.0.0.2")
	u2 := new(dns.Msg)
	u2.SetUpdate(zone + ".")
	u2.Insert([]dns.RR{rr2})
	u2.SetTsig(key.Name+".", dns.HmacSHA256, 300, time.Now().Unix())
	if r, _, err := c.Exchange(u2, b.Addr()); err != nil || r.Rcode != dns.RcodeSuccess {
		t.Fatalf("adding a second stray record to BIND: %v %v", err, r)
	}
	if out, code := d.Ctl("resync"); code != 0 || !strings.Contains(out, "0 fixed, 1 removed") {
		t.Errorf("dstctl resync: exit %d: %s", code, out)
	}
	if r, err := b.Query(stray2, dns.TypeA); err != nil || r.Rcode != dns.RcodeNameError {
		t.Errorf("after dstctl resync, the stray record is still in BIND: %v %v", r, err)
	}
	dsttest.WaitFor(t, 30*time.Second, "the expiry to delete it from BIND", func() bool {
		r, err := b.Query(reverse("203.0.113.30"), dns.TypeA)
		return err == nil && r.Rcode == dns.RcodeNameError
	})

	w := dsttest.NewDstd(t, "site-w.test", "")
	w.Reconfigure(conf("d3Jvbmctd3Jvbmctd3Jvbmctd3Jvbmctd3Jvbmc="))
	w.Start()
	w.Inject("203.0.113.31")
	dsttest.WaitFor(t, 20*time.Second, "dstd to report the refused key", func() bool {
		l := strings.ToLower(w.Log())
		return strings.Contains(l, "dns update") && (strings.Contains(l, "badsig") || strings.Contains(l, "badkey") || strings.Contains(l, "notauth") || strings.Contains(l, "refused"))
	})
	if r, _ := b.Query(reverse("203.0.113.31"), dns.TypeA); r != nil && len(r.Answer) > 0 {
		t.Error("BIND took an update signed with a wrong key")
	}
	if out, code := w.Ctl("resync"); code != 4 || !strings.Contains(strings.ToLower(out), "resynchronisation") {
		t.Errorf("dstctl resync with a refused key: exit %d, want 4 (dstd failed the request) and the error: %s", code, out)
	}
	// dstctl queues shows the UPDATE queue with its failures and why.
	out, _ := w.Ctl("queues")
	if !regexp.MustCompile(`(?m)^dnsupdate\s+1\s+0\s+[1-9]\d*\s.*(?i:badsig|badkey|notauth|refused|signature)`).MatchString(out) {
		t.Errorf("dstctl queues does not show the failing UPDATE queue:\n%s", out)
	}
	if out, _ := d.Ctl("queues"); !regexp.MustCompile(`(?m)^dnsupdate\s+0\s+[1-9]`).MatchString(out) {
		t.Errorf("dstctl queues does not show the UPDATE queue's work:\n%s", out)
	}
}

// TestRbldnsdExport: rbldnsd serving dstd's export answers as dstd does.
func TestRbldnsdExport(t *testing.T) {
	rbl := dsttest.Require(t, "rbldnsd", "rbldnsd")
	dir, err := os.MkdirTemp("", "dst-rbl-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	ip4, ip6 := filepath.Join(dir, "dst.ip4"), filepath.Join(dir, "dst.ip6")
	// Every template field, so that the export must fill each as the
	// embedded server does.
	const txt = "{ip} first {first_seen} until {expires}, {hits} hits from {origins}"
	d := dsttest.NewDstd(t, "site-a.test", fmt.Sprintf("[policy]\nallow_documentation = true\n[dns]\nzone = \"bl.test\"\ntxt = %q\nrbldnsd_ip4 = %q\nrbldnsd_ip6 = %q\n", txt, ip4, ip6))
	d.Start()
	hits := []string{"203.0.113.40", "198.51.100.41", "2001:db8::42"}
	for _, ip := range hits {
		d.Inject(ip)
	}
	dsttest.WaitFor(t, 10*time.Second, "the export", func() bool {
		b4, _ := os.ReadFile(ip4)
		b6, _ := os.ReadFile(ip6)
		return strings.Contains(string(b4), "198.51.100.41") && strings.Contains(string(b6), "2001:db8::42")
	})
	port := dsttest.FreeUDPTCPPort(t)
	cmd := exec.Command(rbl, "-n", "-b", fmt.Sprintf("127.0.0.1/%d", port), "-c", "0", "-r", dir, "-w", "/",
		zone+":ip4set:dst.ip4", zone+":ip6trie:dst.ip6")
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	rAddr := fmt.Sprintf("127.0.0.1:%d", port)
	dsttest.WaitFor(t, 10*time.Second, "rbldnsd to answer", func() bool {
		m := new(dns.Msg)
		m.SetQuestion("2.0.0.127."+zone+".", dns.TypeA)
		_, err := dns.Exchange(m, rAddr)
		return err == nil
	})
	misses := []string{"203.0.113.99", "2001:db8::99", "127.0.0.1"}
	for _, ip := range append(append([]string{"127.0.0.2"}, hits...), misses...) {
		a, b := query(t, d.DNS, reverse(ip), dns.TypeA), query(t, rAddr, reverse(ip), dns.TypeA)
		if a.Rcode != b.Rcode || len(a.Answer) != len(b.Answer) {
			t.Errorf("%s: dstd %s %v, rbldnsd %s %v\n%s", ip, dns.RcodeToString[a.Rcode], a.Answer, dns.RcodeToString[b.Rcode], b.Answer, out)
			continue
		}
		if len(a.Answer) > 0 && a.Answer[0].(*dns.A).A.String() != b.Answer[0].(*dns.A).A.String() {
			t.Errorf("%s: dstd %v, rbldnsd %v", ip, a.Answer, b.Answer)
		}
	}
	for _, ip := range hits {
		a, b := query(t, d.DNS, reverse(ip), dns.TypeTXT), query(t, rAddr, reverse(ip), dns.TypeTXT)
		if len(a.Answer) != 1 || len(b.Answer) != 1 {
			t.Errorf("%s TXT: dstd %v, rbldnsd %v", ip, a.Answer, b.Answer)
			continue
		}
		at, bt := strings.Join(a.Answer[0].(*dns.TXT).Txt, ""), strings.Join(b.Answer[0].(*dns.TXT).Txt, "")
		if at != bt {
			t.Errorf("%s TXT: dstd %q, rbldnsd %q", ip, at, bt)
		}
	}
}

// TestSecondDstdOnTheDNSPort: the embedded server serves UDP on several
// SO_REUSEPORT sockets, which a socket of the same user may join; a
// second dstd on the same dns.listen must still fail to start, with the
// message it always gave, and leave the first one answering every query.
func TestSecondDstdOnTheDNSPort(t *testing.T) {
	conf := "[policy]\nallow_documentation = true\n[dns]\nzone = \"bl.test\"\n"
	for _, listen := range []string{"127.0.0.1", "0.0.0.0"} {
		t.Run(listen, func(t *testing.T) {
			a := dsttest.NewDstd(t, "site-a.test", conf)
			if listen != "127.0.0.1" {
				a.DNS = strings.Replace(a.DNS, "127.0.0.1", listen, 1)
				a.Reconfigure(conf)
			}
			a.Start()
			b := dsttest.NewDstd(t, "site-b.test", conf)
			b.DNS = a.DNS
			b.Reconfigure(conf)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, dsttest.Bin(t, "dstd"), "-c", b.Conf).CombinedOutput()
			if err == nil || ctx.Err() != nil {
				t.Fatalf("a second dstd on DNS port %s: %v\n%s", a.DNS, err, out)
			}
			if !strings.Contains(string(out), "dns.listen") || !strings.Contains(string(out), "address already in use") {
				t.Errorf("the second dstd did not say the DNS port is in use:\n%s", out)
			}
			// Every query still reaches the first: none was taken by a
			// socket of the second.
			srv := strings.Replace(a.DNS, "0.0.0.0", "127.0.0.1", 1)
			for i := range 50 {
				name := fmt.Sprintf("%d.0.0.127.%s.", 1+i%2, zone)
				if r := query(t, srv, name, dns.TypeA); r.Rcode != []int{dns.RcodeNameError, dns.RcodeSuccess}[i%2] {
					t.Fatalf("%s: %s", name, dns.RcodeToString[r.Rcode])
				}
			}
		})
	}
}
