package e2e_test

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/dst-traps/dst/internal/dsttest"
)

// TestPostfix: the trap site and the blocking site both run Postfix. Site
// A delivers trap@site-a.test to an alias pipe running dstc; site C has two
// MXes, one refusing listed clients in smtpd (reject_rbl_client), the
// other in postscreen (postscreen_dnsbl_sites), each with its own spammer.
func TestPostfix(t *testing.T) {
	l := newLab(t)

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
