package e2e_test

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/dst-traps/dst/internal/dsttest"
)

// TestExim: the same path with Exim at both ends. Site A's Exim delivers
// trap@site-a.test to an alias pipe running dstc; site C's Exim refuses
// listed clients with a dnslists condition in its RCPT ACL.
func TestExim(t *testing.T) {
	dsttest.EximBin(t) // skip (or fail in CI) before building the lab
	l := newLab(t)

	const trapHost = "mx-exim.site-a.test"
	trapMX := net.JoinHostPort(eximAAddr, smtpPort)
	dsttest.StartExim(t, dsttest.EximOptions{
		Netns:    l.hosts,
		Listen:   trapMX,
		Hostname: trapHost,
		Domains:  []string{"site-a.test"},
		// The alias pipe runs as the trap user with the submission group.
		// No -s: dstc submits to the socket in its -spool.
		Aliases: fmt.Sprintf("trap: |%s -m %s -spool %s -log stderr\n",
			dsttest.Bin(t, "dstc"), trapHost, l.dstcSpool),
		PipeUser:  l.trap.Name,
		PipeGroup: l.submitGroup,
	})

	// What a site adds to its Exim: the blocklist in the RCPT ACL.
	blockMX := net.JoinHostPort(eximCAddr, smtpPort)
	dsttest.StartExim(t, dsttest.EximOptions{
		Netns:    l.hosts,
		Listen:   blockMX,
		Hostname: "mx-exim.site-c.test",
		Domains:  []string{"site-c.test"},
		Aliases:  "alice: /dev/null\n",
		RcptACL: "  deny dnslists = " + zone + "=127.0.0.2\n" +
			"       message = Client host [$sender_host_address] blocked using $dnslist_domain; $dnslist_text\n",
	})

	// A bounce to the trap first: stored as backscatter, never listed.
	l.bounceToTrap(bouncer2, trapMX)
	listed, refused, refusal := l.trapToRejection(spammer3, blockMX, trapMX)
	l.bounceNotListed(bouncer2)
	if err := l.probe(bouncer2, blockMX); err != nil {
		t.Errorf("site C's Exim refuses the innocent bouncer %s: %v", bouncer2, err)
	}
	if !strings.Contains(refusal.Msg, "Listed by DST") {
		t.Errorf("Exim's refusal does not quote the blocklist's TXT record: %q", refusal.Msg)
	}
	dsttest.Figure(t, "trap delivery at site A (Exim, dstc) -> listed at site C %s -> first rejection by C's Exim (dnslists in the RCPT ACL, via unbound, negative_ttl %s) %s: %d %s",
		ms(listed), negTTL, ms(refused), refusal.Code, strings.Join(strings.Fields(refusal.Msg), " "))
}
