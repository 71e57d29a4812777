package received

import (
	"bufio"
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mustSite(t testing.TB, mx []string, trusted ...string) *Site {
	t.Helper()
	var ps []netip.Prefix
	for _, c := range trusted {
		ps = append(ps, netip.MustParsePrefix(c))
	}
	s, err := NewSite(mx, ps)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const (
	date     = "; Sat, 28 Nov 2026 10:10:10 +0000"
	spamHop  = " from spam.example (unknown [203.0.113.7]) by mx1.example.net (Postfix) with ESMTP id 1" + date
	forgery  = " from mx1.example.net (mx1.example.net [198.51.100.1]) by mx1.example.net (Postfix) with ESMTP id 2" + date
	storeHop = " from mx1.example.net (mx1.example.net [192.0.2.10]) by store.example.net (Postfix) with ESMTP id 3" + date
	lmtpHop  = " from store.example.net by store.example.net (Dovecot) with LMTP id 4" + date
)

func TestSource(t *testing.T) {
	mx := []string{"mx[12].example.net"}
	cases := []struct {
		name    string
		site    *Site
		fields  []string
		want    string // "" = no answer
		wantIdx int
	}{
		{"on the MX", mustSite(t, mx), []string{spamHop, forgery}, "203.0.113.7", 0},
		{"through a store", mustSite(t, mx), []string{storeHop, spamHop, forgery}, "203.0.113.7", 1},
		{"loopback filter", mustSite(t, mx), []string{
			" from localhost (localhost [127.0.0.1]) by mx1.example.net (Postfix) with ESMTP id 5" + date,
			" by mx1.example.net (amavisd-new, port 10024) with ESMTP id 6" + date,
			spamHop, forgery}, "203.0.113.7", 2},
		{"by name is enough when the store trusts the MX by network", mustSite(t, mx, "192.0.2.0/24"), []string{
			" from mx1 (unknown [192.0.2.10]) by store.example.net (Postfix) with ESMTP id 3" + date,
			spamHop}, "203.0.113.7", 1},
		{"unverified MX name is not trusted", mustSite(t, mx), []string{
			" from mx1.example.net (HELO mx1.example.net) (192.0.2.10) by store.example.net with SMTP" + date,
			spamHop}, "", 0},
		{"spammer reached a host that is not an MX", mustSite(t, mx), []string{
			" from spam.example (unknown [203.0.113.7]) by store.example.net (Postfix) with ESMTP id 7" + date,
			forgery}, "", 0},
		{"HELO claims to be the MX", mustSite(t, mx), []string{
			" from mx2.example.net (unknown [203.0.113.7]) by mx1.example.net (Postfix) with ESMTP id 1" + date,
			forgery}, "203.0.113.7", 0},
		{"sendmail name may be forged", mustSite(t, mx), []string{
			" from x (mx2.example.net [203.0.113.8] (may be forged)) by mx1.example.net (8.17.1.9/8.17.1.9/Debian-2) with ESMTP id 1" + date,
			forgery}, "203.0.113.8", 0},
		{"only local hops", mustSite(t, mx), []string{
			" from localhost (localhost [127.0.0.1]) by mx1.example.net (Postfix) with ESMTP id 5" + date,
			" by mx1.example.net (Postfix, from userid 0) id 9" + date}, "", 0},
		{"no Received", mustSite(t, mx), nil, "", 0},
		{"unparsable field stops the walk", mustSite(t, mx), []string{
			" from mail.example.com by mx1.example.net with ESMTP" + date, forgery}, "", 0},
		{"lmtp hop without address is walked through", mustSite(t, mx), []string{lmtpHop, spamHop}, "203.0.113.7", 1},
		{"ipv6 loopback", mustSite(t, mx), []string{
			" from localhost (localhost [IPv6:::1]) by mx1.example.net (Postfix) with ESMTP id 5" + date, spamHop}, "203.0.113.7", 1},
		{"case-insensitive globs", mustSite(t, []string{"MX1.Example.NET"}), []string{
			" from a (unknown [203.0.113.7]) by Mx1.EXAMPLE.net. (Postfix) with ESMTP id 1" + date}, "203.0.113.7", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := c.site.Source(c.fields)
			if c.want == "" {
				if !errors.Is(err, ErrNoSource) {
					t.Fatalf("Source = %v, %v; want ErrNoSource", a.IP, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Source: %v", err)
			}
			if a.IP.String() != c.want || a.Index != c.wantIdx {
				t.Errorf("Source = %v at %d; want %s at %d", a.IP, a.Index, c.want, c.wantIdx)
			}
		})
	}
}

func TestNewSiteBadPattern(t *testing.T) {
	if _, err := NewSite([]string{"mx[1.example.net"}, nil); err == nil {
		t.Error("NewSite accepted a malformed glob")
	}
	if _, err := NewSite([]string{""}, nil); err == nil {
		t.Error("NewSite accepted an empty pattern")
	}
}

func TestFields(t *testing.T) {
	hdr := "From spam@example.com Sat Nov 28 10:10:10 2026\r\n" +
		"Received: from a (unknown [203.0.113.7])\r\n\tby mx1 (Postfix) id 1; date\r\n" +
		"X-Junk\r\n" +
		"received : second\r\n" +
		"Subject: x\r\n" +
		"\r\n" +
		"Received: in the body\r\n"
	got := Fields([]byte(hdr))
	want := []string{" from a (unknown [203.0.113.7])\n\tby mx1 (Postfix) id 1; date", " second"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("Fields = %q; want %q", got, want)
	}
}

// corpusCase is one message of testdata/*/ with its .want file.
type corpusCase struct {
	eml, source string
	mx          []string
	trust       []netip.Prefix
	want        string // an address, or "none"
}

func loadCorpus(t testing.TB) []corpusCase {
	t.Helper()
	emls, err := filepath.Glob("testdata/*/*.eml")
	if err != nil {
		t.Fatal(err)
	}
	var out []corpusCase
	for _, eml := range emls {
		wf := strings.TrimSuffix(eml, ".eml") + ".want"
		f, err := os.Open(wf)
		if err != nil {
			t.Fatalf("%s has no .want file: %v", eml, err)
		}
		c := corpusCase{eml: eml}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				if strings.HasPrefix(line, "# source:") || strings.HasPrefix(line, "# how") {
					c.source = line
				}
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				t.Fatalf("%s: bad line %q", wf, line)
			}
			v = strings.Trim(strings.TrimSpace(v), "'\"")
			switch strings.TrimSpace(k) {
			case "mx":
				c.mx = append(c.mx, v)
			case "trust":
				p, err := netip.ParsePrefix(v)
				if err != nil {
					t.Fatalf("%s: %v", wf, err)
				}
				c.trust = append(c.trust, p)
			case "want":
				c.want = v
			default:
				t.Fatalf("%s: unknown key %q", wf, k)
			}
		}
		f.Close()
		if c.want == "" || len(c.mx) == 0 {
			t.Fatalf("%s: needs want: and at least one mx:", wf)
		}
		out = append(out, c)
	}
	return out
}

func headerOf(msg []byte) []byte {
	if i := bytes.Index(msg, []byte("\n\n")); i >= 0 {
		return msg[:i+1]
	}
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		return msg[:i+2]
	}
	return msg
}

// TestCorpus runs every message that real MTAs wrote (testdata/mta, made by
// testdata/mta/gen.sh) and every real header from public material
// (testdata/public, each citing its source).
func TestCorpus(t *testing.T) {
	cases := loadCorpus(t)
	if len(cases) == 0 {
		t.Fatal("no corpus under testdata/")
	}
	for _, c := range cases {
		t.Run(strings.TrimPrefix(c.eml, "testdata/"), func(t *testing.T) {
			msg, err := os.ReadFile(c.eml)
			if err != nil {
				t.Fatal(err)
			}
			site := mustSite(t, c.mx)
			site.Trusted = c.trust
			a, err := site.Source(Fields(headerOf(msg)))
			if c.want == "none" {
				if !errors.Is(err, ErrNoSource) {
					t.Errorf("got %v, want no answer (%s)", a.IP, c.source)
				}
				return
			}
			if err != nil {
				t.Fatalf("no answer (%v), want %s (%s)", err, c.want, c.source)
			}
			if a.IP.String() != c.want {
				t.Errorf("got %v, want %s (%s)", a.IP, c.want, c.source)
			}
		})
	}
}
