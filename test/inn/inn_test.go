// Package inn_test runs DST reports through a real INN (Debian's inn2):
// first INN alone, fed by a tiny client and feeding fake sites, then INN
// between two dstd, relaying reports both ways (docs/PROTOCOL.md §4.10:
// an INN server can sit between two sites and relay reports both ways).
//
// Needs root and an installed inn2 (test.sh installs it). Skipped
// otherwise, except that with CI=true a missing INN is a failure.
package inn_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/article"
	"github.com/dst-traps/dst/internal/dkim"
	"github.com/dst-traps/dst/internal/dsttest"
	"github.com/dst-traps/dst/internal/nntp"
	"github.com/dst-traps/dst/internal/report"
)

// site is a fake NNTP peer that records what it is fed: a stand-in for a
// dstd in the tests of INN alone.
type site struct {
	name string
	addr string
	mu   sync.Mutex
	got  map[string][]byte // Message-ID -> article as received
	ids  []string          // the Message-IDs offered (CHECK, IHAVE) and received, duplicates included, in order
}

func startSite(t *testing.T, name string) *site {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &site{name: name, got: map[string][]byte{}}
	srv := &nntp.Server{Handler: s, Hostname: name,
		Authorize: func(_ net.Conn, ss nntp.Session) (nntp.Session, bool) {
			ss.CanFeed, ss.Peer = true, "inn"
			return ss, true
		}}
	s.addr = dsttest.ServeNNTP(t, srv, l)
	return s
}

func (s *site) Post(context.Context, *nntp.Session, []byte) nntp.Verdict {
	return nntp.Refused("no posting here")
}

func (s *site) Check(_ context.Context, _ *nntp.Session, id string) nntp.Verdict {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids = append(s.ids, id)
	if _, ok := s.got[id]; ok {
		return nntp.Refused("already have it")
	}
	return nntp.Accepted()
}

func (s *site) Receive(_ context.Context, _ *nntp.Session, id string, art []byte) nntp.Verdict {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids = append(s.ids, id)
	if _, ok := s.got[id]; ok {
		return nntp.Refused("already have it")
	}
	s.got[id] = art
	return nntp.Accepted()
}

func (s *site) article(id string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[id]
}

// offered returns the Message-IDs offered and sent to s, in order.
func (s *site) offered() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ids)
}

// signedReport is a report on ip injected at origin: signed with key, with
// origin's Path.
func signedReport(t *testing.T, origin string, key ed25519.PrivateKey, ip string) (msgID string, art []byte) {
	t.Helper()
	a, err := report.New(report.Hit{SourceIP: netip.MustParseAddr(ip), Arrival: time.Now(), Host: "trap." + origin,
		UserAgent: "dst-test", Message: trapMessage(ip)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := dkim.NewSigner(origin, "dst", key)
	if err != nil {
		t.Fatal(err)
	}
	art, err = s.Sign(append([]byte("Path: "+origin+"!not-for-mail\r\n"), a.Bytes()...))
	if err != nil {
		t.Fatal(err)
	}
	return a.Get("Message-ID"), art
}

// trapMessage is a message as Postfix on mx1.example.net delivers it, sent
// by client.
func trapMessage(client string) []byte {
	return []byte("Received: from spam.example (unknown [" + client + "])\r\n\tby mx1.example.net (Postfix) with ESMTP id 1\r\n\tfor <trap@example.net>; " +
		time.Now().Format(time.RFC1123Z) + "\r\nFrom: <a@spam.example>\r\nTo: <trap@example.net>\r\nSubject: offer for " + client + "\r\n\r\nbuy\r\n")
}

// header returns the header section of art, without the fields relays
// add (Path, Xref), for comparing what the origin signed with what a relay
// passed on.
func signedPart(t *testing.T, art []byte) (fields []string, body []byte) {
	t.Helper()
	a, err := article.Parse(art, article.Limits{})
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, art)
	}
	for _, f := range a.Header {
		switch strings.ToLower(f.Name) {
		case "path", "xref":
			continue
		}
		fields = append(fields, f.Name+":"+f.Value+"\r\n")
	}
	return fields, a.Body
}

// TestINNAcceptsTakethis feeds INN a signed report with MODE STREAM,
// CHECK and TAKETHIS, as dstd's feeder does, and checks that INN stores it
// and passes it on with innfeed, byte for byte apart from its name in
// Path: the DKIM signature still verifies downstream. It also checks INN's
// side of loop prevention: the origin, named in Path, is not fed.
func TestINNAcceptsTakethis(t *testing.T) {
	siteA := startSite(t, "site-a.test")
	siteB := startSite(t, "site-b.test")
	// One connection per feed, so that innfeed offers a site its
	// articles in the order innd queued them (see the end).
	inn := dsttest.StartINN(t, dsttest.INNOptions{Name: "inn.test", FeedConnections: 1,
		Feeds: []dsttest.INNFeed{{Name: "site-a.test", Addr: siteA.addr}, {Name: "site-b.test", Addr: siteB.addr}}})

	pub, key, err := dkim.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	var ring dkim.Keyring
	ring.Add("site-a.test", "dst", pub)
	id, art := signedReport(t, "site-a.test", key, "203.0.113.7")
	if _, err := ring.Verify(art); err != nil {
		t.Fatalf("the report does not verify before INN: %v", err)
	}

	check, take, err := dsttest.INNOffer(inn.Addr(), id, art)
	if err != nil {
		t.Fatalf("offer to INN: CHECK %d TAKETHIS %d: %v\n%s", check, take, err, inn.NewsLog())
	}
	if !inn.Has(id) {
		t.Fatalf("INN answered 239 but has no %s", id)
	}
	stored, err := inn.Article(id)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("INN stored:\n%s", headerOf(stored))
	if a, _ := article.Parse(stored, article.Limits{}); a == nil || a.Get("Path") != "inn.test!site-a.test!not-for-mail" {
		t.Errorf("stored Path: want inn.test!site-a.test!not-for-mail, got\n%s", headerOf(stored))
	}
	if n := inn.ArticleCount("dst.reports"); n != 1 {
		t.Errorf("dst.reports holds %d articles, want 1", n)
	}
	if arts, err := inn.GroupArticles("dst.reports"); err != nil || len(arts) != 1 || !bytes.Equal(arts[0], stored) {
		t.Errorf("GroupArticles: %d articles, %v; want the one sm gives", len(arts), err)
	}

	// A second offer of the same Message-ID: INN already has it.
	if check, _, err := dsttest.INNOffer(inn.Addr(), id, art); check != 438 {
		t.Errorf("second CHECK of %s: %d %v, want 438", id, check, err)
	}

	dsttest.WaitFor(t, 30*time.Second, "innfeed to feed site-b.test", func() bool { return siteB.article(id) != nil })
	relayed := siteB.article(id)
	t.Logf("site-b.test received:\n%s", headerOf(relayed))
	if d, err := ring.Verify(relayed); err != nil || d != "site-a.test" {
		t.Errorf("the relayed report does not verify: %q %v", d, err)
	}
	ra, err := article.Parse(relayed, article.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if p := ra.Get("Path"); p != "inn.test!site-a.test!not-for-mail" {
		t.Errorf("relayed Path %q, want inn.test!site-a.test!not-for-mail", p)
	}
	wantF, wantB := signedPart(t, art)
	gotF, gotB := signedPart(t, relayed)
	if !bytes.Equal(wantB, gotB) {
		t.Errorf("INN changed the body")
	}
	// Every field of the origin's is passed on unchanged and in order;
	// INN may only add its own (Xref, which signedPart drops, and no
	// others are expected).
	if strings.Join(gotF, "") != strings.Join(wantF, "") {
		t.Errorf("INN changed the header fields:\nsent:\n%s\nrelayed:\n%s", strings.Join(wantF, ""), strings.Join(gotF, ""))
	}

	// The origin is in Path: innfeed must not offer it back. innd
	// decides where an article goes when it accepts it, and innfeed queues
	// it for every such site at once (the same funnel line); site-b.test
	// has it, so a wrong offer to site-a.test is queued by now. A later
	// report, from site-b.test, goes to site-a.test only, over one
	// connection, behind anything queued for it before: once site-a.test
	// has it, it has been offered everything INN would offer it.
	id2, art2 := signedReport(t, "site-b.test", key, "203.0.113.8")
	if check, take, err := dsttest.INNOffer(inn.Addr(), id2, art2); err != nil {
		t.Fatalf("offer of %s to INN: CHECK %d TAKETHIS %d: %v\n%s", id2, check, take, err, inn.NewsLog())
	}
	dsttest.WaitFor(t, 30*time.Second, "innfeed to feed site-a.test the report from site-b.test", func() bool { return siteA.article(id2) != nil })
	for _, got := range siteA.offered() {
		if got != id2 {
			t.Errorf("INN offered site-a.test %s; its name is in that report's Path (offers: %q)", got, siteA.offered())
			break
		}
	}
	// INN's article log, written out at shutdown, names the sites each
	// article was sent to: site-b.test only.
	inn.Stop()
	var logged bool
	for _, line := range strings.Split(inn.NewsLog(), "\n") {
		if f := strings.Fields(line); len(f) >= 6 && f[3] == "+" && f[5] == id {
			logged = true
			if sites := strings.Join(f[7:], " "); sites != "site-b.test" {
				t.Errorf("INN logged %s as sent to %q, want site-b.test only", id, sites)
			}
		}
	}
	if !logged {
		t.Errorf("INN's news log has no line accepting %s:\n%s", id, inn.NewsLog())
	}
}

// headerOf is the header section of art, for logs.
func headerOf(art []byte) string {
	if i := bytes.Index(art, []byte("\r\n\r\n")); i >= 0 {
		return string(art[:i+2])
	}
	return string(art)
}

// innLab starts two sites whose only peer is one INN between them.
func innLab(t *testing.T) (a, b *dsttest.Dstd, inn *dsttest.INN, aLine, bLine string) {
	t.Helper()
	dsttest.INNBin(t) // skip (or fail with CI=true) before building anything
	const lab = "[policy]\nallow_documentation = true\n"
	a = dsttest.NewDstd(t, "site-a.test", lab)
	b = dsttest.NewDstd(t, "site-b.test", lab)
	// One connection per feed: innfeed offers a site its articles in the
	// order innd queued them, which TestINNBetweenTwoSites counts on.
	inn = dsttest.StartINN(t, dsttest.INNOptions{Name: "inn.test", FeedConnections: 1,
		Feeds: []dsttest.INNFeed{{Name: a.Site, Addr: a.NNTP}, {Name: b.Site, Addr: b.NNTP}}})

	// Each site's only peer is INN: it may feed the site (from 127.0.0.1,
	// where innfeed connects from) and the site feeds it. The peer's name
	// is INN's pathhost, so a site never offers INN what came through it.
	peer := fmt.Sprintf("\n[[peer]]\nname = %q\naddresses = [\"127.0.0.1\"]\nfeed = %q\n", inn.Name, inn.Addr())
	aLine, bLine = a.KeyringLine(), b.KeyringLine()
	for _, s := range []struct {
		d     *dsttest.Dstd
		trust string
	}{{a, bLine}, {b, aLine}} {
		s.d.Reconfigure(lab + peer)
		if err := os.WriteFile(filepath.Join(s.d.Dir, "keyring"), []byte(s.trust+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		s.d.Start()
	}
	return a, b, inn, aLine, bLine
}

// TestINNBetweenTwoSites puts INN between two dstd, each with INN as its
// only peer: site-a.test -> inn.test -> site-b.test and back. A report
// injected at one site (dstc, as the MTA runs it) is listed at the other,
// so its signature survived INN, and nothing loops: each site accepts each
// report once, and INN is offered each report once and feeds it only to
// the site that is not in its Path.
func TestINNBetweenTwoSites(t *testing.T) {
	a, b, inn, aLine, bLine := innLab(t)

	// A trap hit at A, listed at B.
	out, code := a.Dstc(trapMessage("203.0.113.7"), "-m", "mx1.example.net")
	if code != 0 || !strings.Contains(out, "msg=reported") {
		t.Fatalf("dstc at A: exit %d: %s", code, out)
	}
	waitListed(t, b, "203.0.113.7", a.Site)

	// A trap hit at B, listed at A.
	out, code = b.Dstc(trapMessage("203.0.113.8"), "-m", "mx1.example.net")
	if code != 0 || !strings.Contains(out, "msg=reported") {
		t.Fatalf("dstc at B: exit %d: %s", code, out)
	}
	waitListed(t, a, "203.0.113.8", b.Site)

	// A late duplicate of those two must be refused, not counted. Rather
	// than wait a while for one, send one more report each way and wait
	// for it: every hop is a queue served in order (a site's feed to INN,
	// INN's history, innfeed's queue for a site over one connection), and
	// anything a wrong site or INN would send because of the first two was
	// queued when they were accepted, ahead of these. Once these are
	// listed, whatever came before them has arrived.
	for _, m := range []struct {
		from, to *dsttest.Dstd
		ip       string
	}{{a, b, "203.0.113.10"}, {b, a, "203.0.113.11"}} {
		if out, code := m.from.Dstc(trapMessage(m.ip), "-m", "mx1.example.net"); code != 0 || !strings.Contains(out, "msg=reported") {
			t.Fatalf("dstc at %s: exit %d: %s", m.from.Site, code, out)
		}
		waitListed(t, m.to, m.ip, m.from.Site)
	}
	ips := []string{"203.0.113.7", "203.0.113.8", "203.0.113.10", "203.0.113.11"}

	// What INN stored verifies against the origins' keys: the signed
	// fields came through innd untouched.
	ring, err := dkim.ParseKeyring(strings.NewReader(aLine + "\n" + bLine + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	arts, err := inn.GroupArticles("dst.reports")
	if err != nil {
		t.Fatal(err)
	}
	if len(arts) != len(ips) {
		t.Fatalf("INN filed %d reports, want %d", len(arts), len(ips))
	}
	origins := map[string]string{} // Message-ID -> origin
	for _, art := range arts {
		d, err := ring.Verify(art)
		if err != nil {
			t.Errorf("a report stored by INN does not verify: %v\n%s", err, headerOf(art))
			continue
		}
		pa, _ := article.Parse(art, article.Limits{})
		if p, want := pa.Get("Path"), "inn.test!"+d+"!"; !strings.HasPrefix(p, want) {
			t.Errorf("INN stored Path %q, want %s...", p, want)
		}
		origins[pa.Get("Message-ID")] = d
	}

	for _, s := range []*dsttest.Dstd{a, b} {
		m := metricsOf(t, s)
		if n := metric(m, "dst_reports_accepted_total"); n != len(ips) {
			t.Errorf("%s accepted %d reports, want %d (each exactly once)\n%s", s.Site, n, len(ips), grepLines(m, "dst_reports_"))
		}
		for _, ip := range ips {
			out, code := s.Ctl("lookup", ip)
			if code != 0 || !regexp.MustCompile(`hits\s+1\b`).MatchString(out) {
				t.Errorf("%s: lookup %s: exit %d, want listed with 1 hit:\n%s", s.Site, ip, code, out)
			}
		}
	}

	// INN's side: each report offered to it once (no "-" duplicate lines)
	// and sent on to the other site only.
	inn.Stop()
	log := inn.NewsLog()
	t.Logf("INN's news log:\n%s", log)
	plus := 0
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		if f[3] != "+" {
			t.Errorf("INN refused an offer (a report came back?): %s", line)
			continue
		}
		plus++
		origin, ok := origins[f[5]]
		if !ok {
			t.Errorf("INN accepted an unknown article: %s", line)
			continue
		}
		want := b.Site
		if origin == b.Site {
			want = a.Site
		}
		if sites := strings.Join(f[7:], " "); sites != want {
			t.Errorf("INN sent %s's report %s to %q, want %s only", origin, f[5], sites, want)
		}
	}
	if plus != len(ips) {
		t.Errorf("INN accepted %d offers, want %d:\n%s", plus, len(ips), log)
	}
}

// waitListed waits until s lists ip with origin among its origins.
func waitListed(t *testing.T, s *dsttest.Dstd, ip, origin string) {
	t.Helper()
	var out string
	dsttest.WaitFor(t, 60*time.Second, ip+" listed at "+s.Site, func() bool {
		var code int
		out, code = s.Ctl("lookup", ip)
		return code == 0
	})
	if !strings.Contains(out, origin) {
		t.Errorf("%s lists %s without origin %s:\n%s", s.Site, ip, origin, out)
	}
}

// metricsOf fetches a dstd's Prometheus metrics over its admin socket.
func metricsOf(t *testing.T, s *dsttest.Dstd) string {
	t.Helper()
	return s.Metrics()
}

// metric is the value of an unlabelled metric, -1 if absent.
func metric(m, name string) int {
	sm := regexp.MustCompile(`(?m)^` + name + ` (\d+)`).FindStringSubmatch(m)
	if sm == nil {
		return -1
	}
	n, _ := strconv.Atoi(sm[1])
	return n
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestINNRelaysCancel: a cancel control article from the report's origin
// crosses INN like the report did, and the other site delists.
func TestINNRelaysCancel(t *testing.T) {
	a, b, _, _, _ := innLab(t)
	out, code := a.Dstc(trapMessage("203.0.113.9"), "-m", "mx1.example.net")
	if code != 0 || !strings.Contains(out, "msg=reported") {
		t.Fatalf("dstc at A: exit %d: %s", code, out)
	}
	waitListed(t, b, "203.0.113.9", a.Site)
	out, _ = a.Ctl("lookup", "203.0.113.9")
	m := regexp.MustCompile(`last Message-ID\s+(<\S+>)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no Message-ID in A's listing:\n%s", out)
	}
	if out, code := a.Ctl("cancel", m[1]); code != 0 {
		t.Fatalf("dstctl cancel %s at A: exit %d: %s", m[1], code, out)
	}
	dsttest.WaitFor(t, 60*time.Second, "B to delist 203.0.113.9 after A's cancel crossed INN", func() bool {
		_, code := b.Ctl("lookup", "203.0.113.9")
		return code == 1
	})
}
