package e2e_test

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/dsttest"
)

// startTrapPostfix runs site A's Postfix MX, whose alias pipe runs dstc
// for trap@site-a.test, and returns its address.
func startTrapPostfix(t *testing.T, l *lab) string {
	trapMX := net.JoinHostPort(mxAAddr, smtpPort)
	dsttest.StartPostfix(t, dsttest.PostfixOptions{
		Netns:    l.hosts,
		Listen:   trapMX,
		Hostname: mxA,
		Domains:  []string{"site-a.test", mxA},
		// The alias pipe runs as default_privs: the trap user. No -s:
		// dstc submits to the socket in its -spool.
		Aliases: fmt.Sprintf("trap: \"|%s -m %s -spool %s -log stderr\"\n",
			dsttest.Bin(t, "dstc"), mxA, l.dstcSpool),
		DefaultPrivs: l.trap.Name,
	})
	return trapMX
}

// TestPostfix: the trap site and the blocking site both run Postfix. Site
// A delivers trap@site-a.test to an alias pipe running dstc; site C has two
// MXes, one refusing listed clients in smtpd (reject_rbl_client), the
// other in postscreen (postscreen_dnsbl_sites), each with its own spammer.
func TestPostfix(t *testing.T) {
	l := newLab(t)
	trapMX := startTrapPostfix(t, l)

	// What a site adds to the Postfix it has: the blocklist in
	// smtpd_recipient_restrictions, or in postscreen.
	smtpdMX := net.JoinHostPort("192.0.2.30", smtpPort)
	dsttest.StartPostfix(t, dsttest.PostfixOptions{
		Netns:    l.hosts,
		Listen:   smtpdMX,
		Hostname: "mx.site-c.test",
		Domains:  []string{"site-c.test", "mx.site-c.test"},
		Aliases:  "alice: /dev/null\n",
		Main: []string{
			"smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination, reject_rbl_client " + zone + "=127.0.0.2",
			// An smtpd process remembers each DNSBL answer for as long as
			// it lives (max_use sessions, default 100): the probes made
			// before the listing reached C would otherwise be answered
			// from that memory until the process is replaced, and the
			// figure would measure the probing rate, not DST.
			"max_use = 1",
		},
	})
	postscreenMX := net.JoinHostPort("192.0.2.31", smtpPort)
	dsttest.StartPostfix(t, dsttest.PostfixOptions{
		Netns:      l.hosts,
		Listen:     postscreenMX,
		Postscreen: true,
		Hostname:   "mx2.site-c.test",
		Domains:    []string{"site-c.test", "mx2.site-c.test"},
		Aliases:    "alice: /dev/null\n",
		Main: []string{
			"postscreen_dnsbl_sites = " + zone + "=127.0.0.2",
			"postscreen_dnsbl_action = enforce",
			// The defaults, 6s and a 60s minimum cache of a pass, would
			// make each probe slow and hide a new listing for a minute.
			"postscreen_greet_wait = 1s",
			"postscreen_dnsbl_min_ttl = 1s",
		},
	})

	t.Run("reject_rbl_client", func(t *testing.T) {
		l.t = t
		// A bounce to the trap first: stored as backscatter, never listed.
		l.bounceToTrap(bouncer1, trapMX)
		listed, refused, refusal := l.trapToRejection(spammer1, smtpdMX, trapMX)
		l.bounceNotListed(bouncer1)
		if err := l.probe(bouncer1, smtpdMX); err != nil {
			t.Errorf("site C's Postfix refuses the innocent bouncer %s: %v", bouncer1, err)
		}
		if !strings.Contains(refusal.Msg, "Listed by DST") {
			t.Errorf("smtpd's refusal does not quote the blocklist's TXT record: %q", refusal.Msg)
		}
		dsttest.Figure(t, "trap delivery at site A (Postfix, dstc) -> listed at site C %s -> first rejection by C's Postfix smtpd (reject_rbl_client, via unbound, negative_ttl %s) %s: %d %s",
			ms(listed), negTTL, ms(refused), refusal.Code, refusal.Msg)
	})
	t.Run("postscreen", func(t *testing.T) {
		l.t = t
		listed, refused, refusal := l.trapToRejection(spammer2, postscreenMX, trapMX)
		dsttest.Figure(t, "trap delivery at site A (Postfix, dstc) -> listed at site C %s -> first rejection by C's Postfix postscreen (postscreen_dnsbl_sites, via unbound, negative_ttl %s, greet_wait 1s) %s: %d %s",
			ms(listed), negTTL, ms(refused), refusal.Code, refusal.Msg)
	})
}

// TestPostscreenGraded: site C answers graded (dns.graded = true) and its
// postscreen weighs the answers as docs/ADMIN.md says: 127.0.0.2 (one
// reporter) scores 1, 127.0.0.3..9 (two or more) score 2, and 2 blocks.
// A spammer that only site A's trap caught is let in; one that site A's
// and site B's traps both caught is refused.
func TestPostscreenGraded(t *testing.T) {
	l := newLab(t, "graded = true")
	trapMX := startTrapPostfix(t, l)
	gradedMX := net.JoinHostPort(gradedAddr, smtpPort)
	dsttest.StartPostfix(t, dsttest.PostfixOptions{
		Netns:      l.hosts,
		Listen:     gradedMX,
		Postscreen: true,
		Hostname:   "mx3.site-c.test",
		Domains:    []string{"site-c.test", "mx3.site-c.test"},
		Aliases:    "alice: /dev/null\n",
		Main: []string{
			// The recipe of docs/ADMIN.md §"Using the blocklist".
			"postscreen_dnsbl_sites = " + zone + "=127.0.0.2*1 " + zone + "=127.0.0.[3..9]*2",
			"postscreen_dnsbl_threshold = 2",
			"postscreen_dnsbl_action = enforce",
			"postscreen_greet_wait = 1s",
			"postscreen_dnsbl_min_ttl = 1s",
		},
	})
	one, two := spammer3, spammer4
	// Both are let in before any report; one's probe first, so that its
	// cached pass expires no later than two's.
	for _, s := range []string{one, two} {
		if err := l.probe(s, gradedMX); err != nil {
			t.Fatalf("before any report, postscreen refused %s: %v", s, err)
		}
	}

	// one: caught by site A's trap only.
	if err := l.smtp(one, trapMX, spam(one, trapRcpt)); err != nil {
		t.Fatalf("site A's MX refused the trap message: %v", err)
	}
	// two: caught by site A's trap, and by site B's (B's MTA runs dstc).
	if err := l.smtp(two, trapMX, spam(two, trapRcpt)); err != nil {
		t.Fatalf("site A's MX refused the trap message: %v", err)
	}
	msg := fmt.Sprintf("Received: from bulk.example.com (unknown [%s])\r\n\tby mx.site-b.test (Postfix) with ESMTP id 2B\r\n\tfor <trap@site-b.test>; %s\r\n"+
		"From: <offers@example.com>\r\nTo: <trap@site-b.test>\r\nSubject: Cheap watches\r\n\r\nBuy now.\r\n", two, time.Now().Format(time.RFC1123Z))
	if out, code := l.b.Dstc([]byte(msg), "-m", "mx.site-b.test", "-r", "trap@site-b.test"); code != 0 {
		t.Fatalf("dstc at site B: exit %d\n%s", code, out)
	}
	dsttest.WaitFor(t, 60*time.Second, "C to list "+two+" by site A and site B, and "+one+" by site A", func() bool {
		o2, c2 := l.c.Ctl("lookup", two)
		o1, c1 := l.c.Ctl("lookup", one)
		return c1 == 0 && c2 == 0 && strings.Contains(o2, "site-a.test") && strings.Contains(o2, "site-b.test") && strings.Contains(o1, "site-a.test")
	})
	// C's answers, through the sites' resolver as postscreen asks it.
	dsttest.WaitFor(t, 30*time.Second, "unbound to answer 127.0.0.3 for "+two+" and 127.0.0.2 for "+one, func() bool {
		return l.resolve(two) == "127.0.0.3" && l.resolve(one) == "127.0.0.2"
	})

	// two scores 2: refused.
	var refusal *dsttest.SMTPError
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := l.probe(two, gradedMX)
		if errors.As(err, &refusal) {
			break
		}
		if err != nil {
			t.Fatalf("probe from %s: %v", two, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("postscreen still accepts %s, listed by two origins (127.0.0.3), 60s on", two)
		}
		time.Sleep(probeEvery)
	}
	if refusal.Code/100 != 5 || !strings.Contains(refusal.Msg, "blocked using "+zone) {
		t.Fatalf("postscreen refused %s with %q, want a 5xx naming %s", two, refusal.Error(), zone)
	}
	// one scores 1: still let in. Its pass of the first probe expired no
	// later than two's, which the refusal just proved expired, and unbound
	// answers 127.0.0.2 for it: postscreen weighed the listing.
	if err := l.probe(one, gradedMX); err != nil {
		t.Errorf("postscreen refused %s, listed by one origin only (127.0.0.2, weight 1 < threshold 2): %v", one, err)
	}
	if err := l.smtp(innocent, gradedMX, ham(aliceRcpt)); err != nil {
		t.Errorf("postscreen refused the innocent %s: %v", innocent, err)
	}
}
