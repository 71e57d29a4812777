// Package trust_test runs five real dstd sites of four operators on
// loopback, fed in a full mesh, and shows each rule of origin trust at each
// site, by the DNS answer of its embedded server and by `dstctl why` and
// `dstctl origins` (docs/ADMIN.md §9, §5.3):
//
//   - operators count once: two sites of one operator grade an address
//     127.0.0.2, two operators 127.0.0.3;
//   - a second report within an episode does not extend the listing;
//   - an origin on probation is stored and relayed but lists nothing
//     (except at its own site), until another operator has corroborated
//     policy.probation_corroborations of its reports;
//   - an origin past policy.max_new_listings_per_hour has its new
//     listings held pending, until another operator reports them;
//   - a bounce (backscatter) is never listed.
//
// Every "not listed" is asserted only after the report is proven to have
// arrived at that site (`dstctl why` shows it, or its counter moved).
package trust_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dst-traps/dst/internal/admin"
	"github.com/dst-traps/dst/internal/dsttest"
)

// The lab's sites, by index.
const (
	s1 = iota // operator acme
	s2        // operator acme
	s3        // operator globex
	s4        // operator initech, on probation in every keyring
	s5        // no operator=: its own; the one that goes over its cap
)

const (
	zone = "dnsbl.invalid" // dns.zone's default
	// rateCap is policy.max_new_listings_per_hour at every site.
	rateCap = 3
	// needed is policy.probation_corroborations at every site.
	needed = 2
	// trap is the address the trapped messages were sent to: dstc
	// redacts it, so it must never show in dstctl why.
	trap = "lab5-trap@example.net"
)

// lab is five sites that trust each other's keys, each with its own view
// of who is who (the same keyring at every site).
type lab struct {
	t      *testing.T
	sites  []*dsttest.Dstd
	secret string // the trap secret file dstc hashes the trap with
}

func newLab(t *testing.T) *lab {
	t.Helper()
	l := &lab{t: t}
	names := []string{"s1.test", "s2.test", "s3.test", "s4.test", "s5.test"}
	attrs := []string{" operator=acme", " operator=acme", " operator=globex", " operator=initech probation", ""}
	for _, n := range names {
		l.sites = append(l.sites, dsttest.NewDstd(t, n, ""))
	}
	var keyring strings.Builder
	for i, s := range l.sites {
		keyring.WriteString(s.KeyringLine() + attrs[i] + "\n")
	}
	policy := fmt.Sprintf("[policy]\nallow_documentation = true\nthreshold = 1\n"+
		"probation_corroborations = %d\nmax_new_listings_per_hour = %d\n\n[dns]\ngraded = true\n", needed, rateCap)
	for i, s := range l.sites {
		var peers strings.Builder
		for j, p := range l.sites {
			if j != i {
				fmt.Fprintf(&peers, "\n[[peer]]\nname = %q\naddresses = [\"127.0.0.1\"]\nfeed = %q\n", p.Site, p.NNTP)
			}
		}
		s.Reconfigure(policy + peers.String())
		if err := os.WriteFile(filepath.Join(s.Dir, "keyring"), []byte(keyring.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l.secret = filepath.Join(t.TempDir(), "trap-secret")
	if err := os.WriteFile(l.secret, []byte("5b1f0c2a9e7d4f3c8a6b2d1e0f9c8b7a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, s := range l.sites {
		s.Start()
	}
	return l
}

// trapMessage is a message as Postfix on mx1.example.net delivers it to the
// trap, sent by client.
func trapMessage(client string) []byte {
	return []byte(fmt.Sprintf("Received: from spam.example (unknown [%s])\r\n\tby mx1.example.net (Postfix) with ESMTP id 4F1A2\r\n\tfor <%s>; %s\r\n"+
		"From: <a@spam.example>\r\nTo: <%s>\r\nSubject: offer for %s\r\n\r\nbuy\r\n", client, trap, time.Now().Format(time.RFC1123Z), trap, client))
}

var reportedID = regexp.MustCompile(`msg=reported .*message_id=(\S+)`)

// report runs dstc at site i for a trap hit from ip, with more dstc flags,
// and returns the report's Message-ID.
func (l *lab) report(i int, ip string, args ...string) string {
	l.t.Helper()
	s := l.sites[i]
	out, code := s.Dstc(trapMessage(ip), append([]string{"-m", "mx1.example.net", "-r", trap, "-secret", l.secret}, args...)...)
	m := reportedID.FindStringSubmatch(out)
	if code != 0 || m == nil {
		l.t.Fatalf("dstc at %s for %s: exit %d, want a report:\n%s", s.Site, ip, code, out)
	}
	return m[1]
}

// whyReport is one report as `dstctl why` shows it.
type whyReport struct {
	id                                                   string
	origin, operator, class, signature, status, evidence string
}

// why runs `dstctl why ip` at s and reads its text: the first line, and
// one block per report.
func why(t *testing.T, s *dsttest.Dstd, ip string) (head string, reps map[string]whyReport) {
	t.Helper()
	out, code := s.Ctl("why", ip)
	blocks := strings.Split(strings.TrimSpace(out), "\n\n")
	head = blocks[0]
	if code != 0 && !strings.Contains(head, "no report of it is held here") {
		t.Fatalf("dstctl why %s at %s: exit %d:\n%s", ip, s.Site, code, out)
	}
	reps = map[string]whyReport{}
	for _, b := range blocks[1:] {
		lines := strings.Split(b, "\n")
		r := whyReport{id: strings.TrimSpace(lines[0])}
		for _, line := range lines[1:] {
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			v := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), f[0]))
			switch f[0] {
			case "origin":
				r.origin = v
			case "operator":
				r.operator = v
			case "class":
				r.class = v
			case "signature":
				r.signature = v
			case "status":
				r.status = v
			case "evidence":
				r.evidence = v
			}
		}
		reps[r.id] = r
	}
	return head, reps
}

// arrived waits until `dstctl why ip` at every site shows every one of the
// reports ids, and then until no report is on its way between the sites:
// from then on, what each site answers for ip is final. The second wait
// matters for DNS: a site refreshes its DNS index just after the commit
// that stores a report, and answers the sender only after that, while
// dstctl may see the commit a moment earlier. Every feed queue empty
// means every sender has had its answer.
func (l *lab) arrived(ip string, ids ...string) {
	l.t.Helper()
	for _, s := range l.sites {
		dsttest.WaitFor(l.t, 30*time.Second, fmt.Sprintf("%s to hold the reports of %s", s.Site, ip), func() bool {
			_, reps := why(l.t, s, ip)
			for _, id := range ids {
				if _, ok := reps[id]; !ok {
					return false
				}
			}
			return true
		})
	}
	dsttest.WaitFeedsQuiet(l.t, l.sites)
}

// answer is what s's embedded DNS server answers for ip: "NXDOMAIN" or
// the A record.
func answer(t *testing.T, s *dsttest.Dstd, ip string) string {
	t.Helper()
	b := netip.MustParseAddr(ip).As4()
	m := new(dns.Msg)
	m.SetQuestion(fmt.Sprintf("%d.%d.%d.%d.%s.", b[3], b[2], b[1], b[0], zone), dns.TypeA)
	r, err := dns.Exchange(m, s.DNS)
	if err != nil {
		t.Fatalf("DNS query for %s at %s: %v", ip, s.Site, err)
	}
	switch {
	case r.Rcode == dns.RcodeNameError:
		return "NXDOMAIN"
	case r.Rcode != dns.RcodeSuccess:
		return dns.RcodeToString[r.Rcode]
	}
	var as []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			as = append(as, a.A.String())
		}
	}
	return strings.Join(as, ",")
}

// expectDNS checks every site's answer for ip, want[i] for site i, and
// that `dstctl why` agrees on whether it is listed.
func (l *lab) expectDNS(ip string, want ...string) {
	l.t.Helper()
	for i, s := range l.sites {
		if got := answer(l.t, s, ip); got != want[i] {
			l.t.Errorf("%s answers %s for %s, want %s", s.Site, got, ip, want[i])
		}
		head, _ := why(l.t, s, ip)
		if listed := strings.Contains(head, " is listed until "); listed != (want[i] != "NXDOMAIN") {
			l.t.Errorf("%s: dstctl why %s says %q, want it listed: %v", s.Site, ip, head, want[i] != "NXDOMAIN")
		}
	}
}

// all is the same want at every site.
func all(want string) []string { return []string{want, want, want, want, want} }

// expectWhy checks the report id of ip as `dstctl why` shows it at every
// site: origin, operator, class spam, a valid signature, the evidence
// naming ip with the trap redacted, and status[i] at site i.
func (l *lab) expectWhy(ip, id, origin, operator string, status ...string) {
	l.t.Helper()
	for i, s := range l.sites {
		_, reps := why(l.t, s, ip)
		r, ok := reps[id]
		if !ok {
			l.t.Errorf("%s: dstctl why %s does not show %s", s.Site, ip, id)
			continue
		}
		if r.origin != origin || r.operator != operator || r.class != "spam" || r.signature != "valid" || r.status != status[i] {
			l.t.Errorf("%s: dstctl why %s shows %s as origin %q operator %q class %q signature %q status %q, want %s %s spam valid %q",
				s.Site, ip, id, r.origin, r.operator, r.class, r.signature, r.status, origin, operator, status[i])
		}
		if !strings.Contains(r.evidence, "["+ip+"]") || !strings.Contains(r.evidence, "by mx1.example.net") {
			l.t.Errorf("%s: dstctl why %s: evidence %q is not the MX's Received field naming %s", s.Site, ip, r.evidence, ip)
		}
		if strings.Contains(strings.ToLower(r.evidence), "lab5-trap") {
			l.t.Errorf("%s: dstctl why %s: the evidence names the trap: %q", s.Site, ip, r.evidence)
		}
	}
}

// same is the same status at every site.
func same(status string) []string { return all(status) }

// originRow is one row of `dstctl origins`.
type originRow struct{ operator, state, weight, held string }

// origins runs `dstctl origins` at s and reads its columns (tabwriter's,
// two spaces or more apart).
func origins(t *testing.T, s *dsttest.Dstd) map[string]originRow {
	t.Helper()
	out, code := s.Ctl("origins")
	if code != 0 {
		t.Fatalf("dstctl origins at %s: exit %d:\n%s", s.Site, code, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	sep := regexp.MustCompile(`\s{2,}`)
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "ORIGIN") {
		t.Fatalf("dstctl origins at %s: no header:\n%s", s.Site, out)
	}
	rows := map[string]originRow{}
	for _, line := range lines[1:] {
		f := sep.Split(strings.TrimSpace(line), -1)
		if len(f) < 8 {
			t.Fatalf("dstctl origins at %s: unreadable row %q", s.Site, line)
		}
		rows[f[0]] = originRow{operator: f[1], state: f[2], weight: f[3], held: f[7]}
	}
	return rows
}

// expectOrigin checks origin's row of `dstctl origins` at every site:
// state[i] at site i, and its weight and operator.
func (l *lab) expectOrigin(origin, operator string, state ...string) {
	l.t.Helper()
	for i, s := range l.sites {
		r, ok := origins(l.t, s)[origin]
		weight := "0"
		if state[i] == "trusted" {
			weight = "1"
		}
		if !ok || r.operator != operator || r.state != state[i] || r.weight != weight {
			l.t.Errorf("%s: dstctl origins shows %s as %+v, want operator %s, state %q, weight %s", s.Site, origin, r, operator, state[i], weight)
		}
	}
}

// expires is when ip's listing at s expires.
func expires(t *testing.T, s *dsttest.Dstd, ip string) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lst, ok, err := admin.NewClient(s.Admin).Lookup(ctx, netip.MustParseAddr(ip))
	if err != nil || !ok {
		t.Fatalf("lookup of %s at %s: listed %v, %v", ip, s.Site, ok, err)
	}
	return lst.Expires
}

// metric is the value of the sample named (with labels) series in s's
// metrics, "" when absent.
func metric(t *testing.T, s *dsttest.Dstd, series string) string {
	t.Helper()
	for _, line := range strings.Split(s.Metrics(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

func TestTrustLab(t *testing.T) {
	l := newLab(t)
	const (
		counted   = "counted"
		probation = "not counted: origin on probation"
		held      = "held: origin over its rate cap"
	)

	// Operators count once. O1 reported by s1 and s2 (both acme) is
	// graded as one operator's; the second report, within the episode,
	// does not extend the listing.
	o1 := "203.0.113.11"
	id := l.report(s1, o1)
	l.arrived(o1, id)
	l.expectDNS(o1, all("127.0.0.2")...)
	var before []time.Time
	for _, s := range l.sites {
		before = append(before, expires(t, s, o1))
	}
	id2 := l.report(s2, o1)
	l.arrived(o1, id, id2)
	l.expectDNS(o1, all("127.0.0.2")...)
	// Neither corroborates the other: one operator is one witness.
	l.expectWhy(o1, id, "s1.test", "acme", same(counted)...)
	l.expectWhy(o1, id2, "s2.test", "acme", same(counted)...)
	for i, s := range l.sites {
		if got := expires(t, s, o1); !got.Equal(before[i]) {
			t.Errorf("%s: a second report within the episode moved the expiry of %s from %s to %s", s.Site, o1, before[i], got)
		}
	}

	// O2 reported by s1 (acme) then s3 (globex): two operators, and the
	// grade rises at once.
	o2 := "203.0.113.12"
	id = l.report(s1, o2)
	l.arrived(o2, id)
	l.expectDNS(o2, all("127.0.0.2")...)
	id2 = l.report(s3, o2)
	l.arrived(o2, id, id2)
	l.expectDNS(o2, all("127.0.0.3")...)
	l.expectWhy(o2, id, "s1.test", "acme", same(counted+", corroborated")...)
	l.expectWhy(o2, id2, "s3.test", "globex", same(counted+", corroborated")...)

	// Probation. s4 is on probation in every keyring, so its reports are
	// stored and relayed everywhere but list only at s4 itself (a site is
	// never on probation at home).
	p1 := "203.0.113.21"
	p1s4 := l.report(s4, p1)
	l.arrived(p1, p1s4)
	l.expectDNS(p1, "NXDOMAIN", "NXDOMAIN", "NXDOMAIN", "127.0.0.2", "NXDOMAIN")
	l.expectWhy(p1, p1s4, "s4.test", "initech", probation, probation, probation, counted, probation)
	onProbation := func(earned int) string { return fmt.Sprintf("probation (%d/%d corroborated)", earned, needed) }
	l.expectOrigin("s4.test", "initech", onProbation(0), onProbation(0), onProbation(0), "trusted", onProbation(0))
	// One corroboration by another operator (s3) lists P1 on s3's word
	// and credits s4, which still needs a second.
	p1s3 := l.report(s3, p1)
	l.arrived(p1, p1s4, p1s3)
	l.expectDNS(p1, "127.0.0.2", "127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.2")
	l.expectWhy(p1, p1s4, "s4.test", "initech", probation+", corroborated", probation+", corroborated", probation+", corroborated", counted+", corroborated", probation+", corroborated")
	l.expectOrigin("s4.test", "initech", onProbation(1), onProbation(1), onProbation(1), "trusted", onProbation(1))
	p2 := "203.0.113.22"
	p2s4 := l.report(s4, p2)
	l.arrived(p2, p2s4)
	l.expectDNS(p2, "NXDOMAIN", "NXDOMAIN", "NXDOMAIN", "127.0.0.2", "NXDOMAIN")
	l.expectWhy(p2, p2s4, "s4.test", "initech", probation, probation, probation, counted, probation)
	// The second corroboration: s4 has earned its trust.
	p2s3 := l.report(s3, p2)
	l.arrived(p2, p2s4, p2s3)
	l.expectDNS(p2, "127.0.0.2", "127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.2")
	l.expectWhy(p2, p2s4, "s4.test", "initech", probation+", corroborated", probation+", corroborated", probation+", corroborated", counted+", corroborated", probation+", corroborated")
	l.expectOrigin("s4.test", "initech", same("trusted")...)
	p3 := "203.0.113.23"
	p3s4 := l.report(s4, p3)
	l.arrived(p3, p3s4)
	l.expectDNS(p3, all("127.0.0.2")...)
	l.expectWhy(p3, p3s4, "s4.test", "initech", same(counted)...)
	for _, s := range []*dsttest.Dstd{l.sites[s1], l.sites[s2], l.sites[s3], l.sites[s5]} {
		if got := metric(t, s, `dst_reports_not_listed_total{reason="probation"}`); got != "2" {
			t.Errorf("%s: dst_reports_not_listed_total{reason=\"probation\"} = %q, want 2 (P1 and P2 from s4)", s.Site, got)
		}
	}

	// Rate cap. s5 reports rateCap+2 new addresses, one at a time (so that
	// every site sees them in the same order): the first rateCap list at
	// every site, the others are held pending. The cap counts per clock
	// hour: start in an hour that has time left for the whole phase.
	hour := func() int64 { return time.Now().Unix() / 3600 }
	if left := time.Until(time.Unix((hour()+1)*3600, 0)); left < 30*time.Second {
		h := hour()
		t.Logf("waiting %s for the next clock hour: policy.max_new_listings_per_hour counts per hour", left.Round(time.Second))
		dsttest.WaitFor(t, time.Minute, "the next clock hour", func() bool { return hour() != h })
	}
	startHour := hour()
	var rs, rids []string
	for k := range rateCap + 2 {
		ip := fmt.Sprintf("203.0.113.%d", 31+k)
		rid := l.report(s5, ip)
		l.arrived(ip, rid)
		rs, rids = append(rs, ip), append(rids, rid)
	}
	if hour() != startHour {
		t.Fatalf("s5's reports straddle two clock hours (they took longer than the 30 s they were given), so the cap was counted twice: the results would say nothing")
	}
	for k, ip := range rs {
		if k < rateCap {
			l.expectDNS(ip, all("127.0.0.2")...)
			l.expectWhy(ip, rids[k], "s5.test", "s5.test", same(counted)...)
		} else {
			l.expectDNS(ip, all("NXDOMAIN")...)
			l.expectWhy(ip, rids[k], "s5.test", "s5.test", same(held)...)
		}
	}
	for _, s := range l.sites {
		r := origins(t, s)["s5.test"]
		if r.held != "2" || r.state != "trusted" {
			t.Errorf("%s: dstctl origins shows s5.test held %q state %q, want 2 held, trusted", s.Site, r.held, r.state)
		}
		if got := metric(t, s, `dst_reports_not_listed_total{reason="rate-cap"}`); got != "2" {
			t.Errorf("%s: dst_reports_not_listed_total{reason=\"rate-cap\"} = %q, want 2", s.Site, got)
		}
	}
	// Another operator's report of a held address lists it, with both
	// behind it.
	r4s1 := l.report(s1, rs[rateCap])
	l.arrived(rs[rateCap], rids[rateCap], r4s1)
	l.expectDNS(rs[rateCap], all("127.0.0.3")...)
	l.expectWhy(rs[rateCap], r4s1, "s1.test", "acme", same(counted+", corroborated")...)
	l.expectWhy(rs[rateCap], rids[rateCap], "s5.test", "s5.test", same(held+", corroborated")...)
	l.expectDNS(rs[rateCap+1], all("NXDOMAIN")...)

	// A bounce (null envelope sender) is a backscatter report: stored and
	// relayed everywhere, listed nowhere, even when two operators (acme,
	// globex) report it.
	b := "203.0.113.41"
	bids := []string{l.report(s2, b, "-f", "<>"), l.report(s3, b, "-f", "<>")}
	for _, s := range l.sites {
		dsttest.WaitFor(t, 30*time.Second, s.Site+" to count both backscatter reports", func() bool {
			return metric(t, s, `dst_reports_unlisted_total{class="backscatter"}`) == "2"
		})
	}
	dsttest.WaitFeedsQuiet(t, l.sites)
	l.expectDNS(b, all("NXDOMAIN")...)
	// docs/ADMIN.md §9.5: "dstctl why IP lists every report of the
	// address held here", with its class: reports of the classes that do
	// not list are stored, counted and shown, as counting for nothing.
	t.Run("why shows the backscatter reports", func(t *testing.T) {
		for _, s := range l.sites {
			head, reps := why(t, s, b)
			for _, bid := range bids {
				r, ok := reps[bid]
				if !ok || r.class != "backscatter" || !strings.Contains(head, "is not listed") ||
					!strings.Contains(r.status, "not counted: stored to relay only (policy.list_classes leaves out backscatter)") {
					t.Errorf("%s: dstctl why %s does not show the stored backscatter report %s (class backscatter, relayed only):\n%s\n%+v", s.Site, b, bid, head, reps)
				}
			}
		}
	})
}
