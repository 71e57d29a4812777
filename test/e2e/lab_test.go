// Package e2e_test runs DST's whole path with real mail servers: spam hits a
// trap at site A, whose MTA pipes it to dstc; dstd A floods the report to
// B, B to C; and site C's MTA, which asks C's DNS blocklist through a local
// resolver, refuses the same sender while it still accepts an innocent one.
//
// The lab is two network namespaces joined by a veth pair:
//
//	lab  the sites' hosts: dstd A, B and C on the lab's loopback, unbound on
//	     127.0.0.1:53 (the lab's resolv.conf), site A's MX at 192.0.2.10
//	     (Postfix) or .11 (Exim), site C's MXes at 192.0.2.30 (Postfix
//	     smtpd), .31 (Postfix postscreen), .32 (Exim) or .33 (Postfix
//	     postscreen weighting graded answers);
//	net  the Internet's clients: spammers at 198.51.100.7, .8, .9 and
//	     .10, an innocent sender at 203.0.113.9.
//
// Nothing in either namespace can reach any other network. Needs root,
// iproute2, unbound and the MTA under test; with CI=true a missing one is a
// failure, not a skip.
package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/dsttest"
)

const (
	zone       = "dnsbl.site-c.test"
	mxA        = "mx.site-a.test"
	mxAAddr    = "192.0.2.10"
	eximAAddr  = "192.0.2.11"
	eximCAddr  = "192.0.2.32"
	gradedAddr = "192.0.2.33"
	smtpPort   = "2525"
	spammer1   = "198.51.100.7"
	spammer2   = "198.51.100.8"
	spammer3   = "198.51.100.9"
	spammer4   = "198.51.100.10"
	innocent   = "203.0.113.9"
	// Innocent MTAs that bounce spam which forged a trap as its sender:
	// one per MTA under test.
	bouncer1   = "198.51.100.20"
	bouncer2   = "198.51.100.21"
	trapRcpt   = "trap@site-a.test"
	aliceRcpt  = "alice@site-c.test"
	negTTL     = "1s" // C's SOA minimum: how long a resolver caches "not listed"
	probeEvery = 100 * time.Millisecond
)

// lab is the two namespaces, the resolver and the three dstd sites.
type lab struct {
	t         *testing.T
	hosts     *dsttest.Netns // the sites
	internet  *dsttest.Netns // the clients
	a, b, c   *dsttest.Dstd
	dstcSpool string
	// reportLogA is site A's report log (actions.log.file).
	reportLogA string
	// trap runs dstc for the MTAs of site A: its primary group is site
	// A's nntp.submit_group, as docs/ADMIN.md says.
	trap        *dsttest.User
	submitGroup string
}

// newLab builds the lab; cDNS are extra lines for site C's [dns] table
// (such as graded = true).
func newLab(t *testing.T, cDNS ...string) *lab {
	t.Helper()
	unbound := dsttest.Require(t, "unbound", "unbound")
	dsttest.Require(t, "dig", "bind9-dnsutils")
	l := &lab{t: t}
	l.hosts = dsttest.NewNetns(t, "dste2e-lab")
	l.internet = dsttest.NewNetns(t, "dste2e-net")
	dsttest.Link(t, l.hosts, l.internet, "e0")
	for _, a := range []string{mxAAddr, eximAAddr, "192.0.2.30", "192.0.2.31", eximCAddr, gradedAddr} {
		l.hosts.IP("addr", "add", a+"/32", "dev", "e0")
	}
	for _, a := range []string{spammer1, spammer2, spammer3, spammer4, innocent, bouncer1, bouncer2} {
		l.internet.IP("addr", "add", a+"/32", "dev", "e0")
	}
	// Only the two sides' ranges are routed: nothing has a default route.
	l.hosts.IP("route", "add", "198.51.100.0/24", "dev", "e0")
	l.hosts.IP("route", "add", "203.0.113.0/24", "dev", "e0")
	l.internet.IP("route", "add", "192.0.2.0/24", "dev", "e0")
	l.hosts.SetFile("resolv.conf", "nameserver 127.0.0.1\noptions timeout:1 attempts:2\n")

	// Three sites in a chain, A - B - C, on the lab's loopback. Every site
	// trusts every site's key, as sites of one network do.
	l.a = dsttest.NewDstd(t, "site-a.test", "")
	l.b = dsttest.NewDstd(t, "site-b.test", "")
	l.c = dsttest.NewDstd(t, "site-c.test", "")
	sites := []*dsttest.Dstd{l.a, l.b, l.c}
	var keyring strings.Builder
	for _, s := range sites {
		keyring.WriteString(s.KeyringLine() + "\n")
		s.Prefix = l.hosts.Prefix()
	}
	peer := func(s *dsttest.Dstd) string {
		return fmt.Sprintf("\n[[peer]]\nname = %q\naddresses = [\"127.0.0.1\"]\nfeed = %q\n", s.Site, s.NNTP)
	}
	// dstc runs as the trap user, in site A's submission group: it
	// submits through the socket in the spool, which dstd A creates for
	// that group, and it may write the spool while dstd A is down.
	var submitGID uint32
	l.submitGroup, submitGID = dsttest.NewGroup(t, "e2esub")
	l.trap = dsttest.NewSubmitter(t, "e2etrap", l.submitGroup, submitGID)
	spoolParent := t.TempDir()
	for _, d := range []string{filepath.Dir(spoolParent), spoolParent} {
		os.Chmod(d, 0o755)
	}
	l.dstcSpool = filepath.Join(spoolParent, "spool")
	const policy = "[policy]\nallow_documentation = true\n"
	l.reportLogA = filepath.Join(t.TempDir(), "reports.log")
	l.a.Reconfigure(fmt.Sprintf("spool_dir = %q\n[nntp]\nsubmit_group = %q\n", l.dstcSpool, l.submitGroup) + policy +
		fmt.Sprintf("[actions.log]\nfile = %q\n", l.reportLogA) + peer(l.b))
	l.b.Reconfigure(policy + peer(l.a) + peer(l.c))
	l.c.Reconfigure(policy + fmt.Sprintf("[dns]\nzone = %q\nnegative_ttl = %q\n", zone, negTTL) + strings.Join(cDNS, "\n") + "\n" + peer(l.b))
	for _, s := range sites {
		if err := os.WriteFile(filepath.Join(s.Dir, "keyring"), []byte(keyring.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		s.Start()
	}
	l.startUnbound(unbound)
	return l
}

// startUnbound runs the sites' resolver, as a mail site has one: it
// answers the MTAs on 127.0.0.1:53 and sends queries for the blocklist's
// zone to dstd C's embedded server (a stub zone). Every other name is
// answered locally (NXDOMAIN): the lab has no Internet to recurse into.
func (l *lab) startUnbound(bin string) {
	t := l.t
	dir := t.TempDir()
	host, port, _ := strings.Cut(l.c.DNS, ":")
	conf := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`server:
	interface: 127.0.0.1
	port: 53
	do-ip6: no
	username: ""
	chroot: ""
	directory: %[1]q
	pidfile: %[5]q
	use-syslog: no
	logfile: ""
	verbosity: 1
	module-config: "iterator"
	# dstd C listens on the loopback, which unbound does not query by default.
	do-not-query-localhost: no
	local-zone: "." static
	local-zone: %[2]q transparent
stub-zone:
	name: %[2]q
	stub-addr: %[3]s@%[4]s
`, dir, zone+".", host, port, filepath.Join(dir, "unbound.pid"))), 0o644); err != nil {
		t.Fatal(err)
	}
	logName := filepath.Join(dir, "unbound.log")
	logf, err := os.Create(logName)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := l.hosts.Command(bin, "-d", "-c", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logName)
			t.Logf("unbound output:\n%s", b)
		}
	})
	// Ready when it answers for the zone's apex through the stub.
	dsttest.WaitFor(t, 30*time.Second, "unbound to answer for "+zone, func() bool {
		return exec.Command("ip", "netns", "exec", l.hosts.Name, "dig", "+short", "+time=1", "+tries=1",
			"@127.0.0.1", zone, "SOA").Run() == nil
	})
}

// watchListing polls s's listings every 10ms until ip is listed there
// and then sends the time it saw the listing.
func (l *lab) watchListing(s *dsttest.Dstd, ip string) <-chan time.Time {
	ch := make(chan time.Time, 1)
	dstctl := dsttest.Bin(l.t, "dstctl")
	go func() {
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			if exec.Command(dstctl, "-admin", s.Admin, "lookup", ip).Run() == nil {
				ch <- time.Now()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		ch <- time.Time{}
	}()
	return ch
}

// resolve asks the sites' resolver (unbound) for the A record of ip's name
// in C's zone, as the MTAs do: the address, or "" when there is none.
func (l *lab) resolve(ip string) string {
	rev, _, _ := strings.Cut(reverse4(ip), ".in-addr.arpa")
	out, err := exec.Command("ip", "netns", "exec", l.hosts.Name, "dig", "+short", "+time=1", "+tries=1",
		"@127.0.0.1", rev+"."+zone, "A").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// reverse4 is the in-addr.arpa name of an IPv4 address.
func reverse4(ip string) string {
	p := strings.Split(ip, ".")
	return p[3] + "." + p[2] + "." + p[1] + "." + p[0] + ".in-addr.arpa"
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }

// smtp runs one SMTP transaction from the Internet namespace.
func (l *lab) smtp(from, server string, m dsttest.SMTPMessage) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := l.internet.Dial(ctx, from, server)
	if err != nil {
		return fmt.Errorf("connect from %s to %s: %w", from, server, err)
	}
	return dsttest.SendSMTP(conn, m)
}

func spam(from, to string) dsttest.SMTPMessage {
	return dsttest.SMTPMessage{
		Helo: "bulk.example.com",
		From: "offers@example.com",
		To:   to,
		Data: fmt.Sprintf("From: <offers@example.com>\r\nTo: <%s>\r\nSubject: Cheap watches\r\n"+
			"Message-ID: <%d@bulk.example.com>\r\nDate: %s\r\n\r\nBuy now.\r\n",
			to, time.Now().UnixNano(), time.Now().Format(time.RFC1123Z)),
	}
}

func ham(to string) dsttest.SMTPMessage {
	return dsttest.SMTPMessage{
		Helo: "mail.example.org",
		From: "bob@example.org",
		To:   to,
		Data: fmt.Sprintf("From: <bob@example.org>\r\nTo: <%s>\r\nSubject: Lunch\r\n"+
			"Message-ID: <%d@mail.example.org>\r\nDate: %s\r\n\r\nNoon?\r\n",
			to, time.Now().UnixNano(), time.Now().Format(time.RFC1123Z)),
	}
}

// bounce is what an innocent MTA sends back when it cannot deliver spam
// that forged the trap as its sender: a delivery status notification
// (RFC 3464) with the null envelope sender (RFC 5321 §4.5.5).
func bounce(to string) dsttest.SMTPMessage {
	id := time.Now().UnixNano()
	return dsttest.SMTPMessage{
		Helo: "mail.victim.example",
		From: "", // MAIL FROM:<>
		To:   to,
		Data: fmt.Sprintf("From: Mail Delivery System <MAILER-DAEMON@mail.victim.example>\r\nTo: <%[1]s>\r\n"+
			"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <%[2]d@mail.victim.example>\r\nDate: %[3]s\r\n"+
			"Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"+
			"Content-Type: multipart/report; report-type=delivery-status; boundary=\"b%[2]d\"\r\n\r\n"+
			"--b%[2]d\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"+
			"--b%[2]d\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mail.victim.example\r\n\r\n"+
			"Final-Recipient: rfc822; nobody@victim.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"+
			"--b%[2]d\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: <%[1]s>\r\nSubject: Cheap watches\r\n"+
			"--b%[2]d--\r\n", to, id, time.Now().Format(time.RFC1123Z)),
	}
}

// bounceToTrap sends a bounce from bouncer to the trap at site A's MX
// and waits until site A has stored its report as backscatter: its report
// log says so, with listed=no.
func (l *lab) bounceToTrap(bouncer, trapServer string) {
	t := l.t
	t.Helper()
	if err := l.smtp(bouncer, trapServer, bounce(trapRcpt)); err != nil {
		t.Fatalf("site A's MX refused the bounce: %v", err)
	}
	dsttest.WaitFor(t, 30*time.Second, "site A's report log to show the bounce from "+bouncer+" as backscatter", func() bool {
		b, _ := os.ReadFile(l.reportLogA)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, " report ip="+bouncer+" ") {
				if !strings.Contains(line, " listed=no ") || !strings.HasSuffix(line, " class=backscatter") {
					t.Fatalf("site A's report log: %q, want listed=no and class=backscatter", line)
				}
				return true
			}
		}
		return false
	})
}

// bounceNotListed checks, once a later spam report from A has been listed
// at C, that C has the bounce's report (it was relayed, since each site
// applies its own policy.list_classes) and that neither A nor C lists the
// bouncer.
func (l *lab) bounceNotListed(bouncer string) {
	t := l.t
	t.Helper()
	// Feeds keep their order, so the bounce's report, sent before the
	// spam's, is at C by now; wait for C's log to be written all the same.
	dsttest.WaitFor(t, 10*time.Second, "site C to store the bounce's report without listing it", func() bool {
		for _, line := range strings.Split(l.c.Log(), "\n") {
			if strings.Contains(line, "not listed here: policy.list_classes leaves out its class") &&
				strings.Contains(line, " ip="+bouncer+" ") && strings.Contains(line, " class=backscatter") {
				return true
			}
		}
		return false
	})
	for _, s := range []*dsttest.Dstd{l.a, l.c} {
		if out, code := s.Ctl("lookup", bouncer); code != 1 {
			t.Errorf("dstctl lookup %s at %s: exit %d, want 1 (not listed): a bounce listed its innocent sender\n%s", bouncer, s.Site, code, out)
		}
	}
	if m := l.c.Metrics(); !strings.Contains(m, `dst_reports_unlisted_total{class="backscatter"} 1`) {
		t.Errorf("site C's metrics do not count the bounce as unlisted backscatter:\n%s", grepLines(m, "dst_reports_"))
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// probe is a spammer's RCPT TO at server: nil when accepted, the refusal
// otherwise.
func (l *lab) probe(from, server string) error {
	return l.smtp(from, server, dsttest.SMTPMessage{Helo: "bulk.example.com", From: "offers@example.com", To: aliceRcpt})
}

// trapToRejection hits the trap at A from spammer, then probes server (one
// of C's MXes) from spammer until C's MTA refuses it. It returns the times
// from A's acceptance of the trap message to the listing at C and to the
// refusal, and the refusal.
// It checks before and after that C accepts the innocent sender's mail.
func (l *lab) trapToRejection(spammer, server, trapServer string) (listed, refused time.Duration, _ *dsttest.SMTPError) {
	t := l.t
	t.Helper()
	if err := l.probe(spammer, server); err != nil {
		t.Fatalf("before the trap hit, %s refused %s: %v", server, spammer, err)
	}
	if err := l.smtp(innocent, server, ham(aliceRcpt)); err != nil {
		t.Fatalf("before the trap hit, %s refused the innocent %s: %v", server, innocent, err)
	}

	if err := l.smtp(spammer, trapServer, spam(spammer, trapRcpt)); err != nil {
		t.Fatalf("site A's MX refused the trap message: %v", err)
	}
	hit := time.Now()
	listedAtC := l.watchListing(l.c, spammer)
	var refusal *dsttest.SMTPError
	deadline := hit.Add(60 * time.Second)
	for {
		err := l.probe(spammer, server)
		if errors.As(err, &refusal) {
			break
		}
		if err != nil {
			t.Fatalf("probe from %s to %s: %v", spammer, server, err)
		}
		if time.Now().After(deadline) {
			_, lookupA := l.a.Ctl("lookup", spammer)
			_, lookupC := l.c.Ctl("lookup", spammer)
			t.Fatalf("%s still accepts %s 60s after the trap hit at A (dstctl lookup exit: A %d, C %d)",
				server, spammer, lookupA, lookupC)
		}
		time.Sleep(probeEvery)
	}
	refused = time.Since(hit)
	listed = (<-listedAtC).Sub(hit)
	if refusal.Code/100 != 5 || !strings.Contains(refusal.Msg, "blocked using "+zone) {
		t.Fatalf("%s refused %s with %q, want a 5xx naming %s", server, spammer, refusal.Error(), zone)
	}
	if err := l.smtp(innocent, server, ham(aliceRcpt)); err != nil {
		t.Fatalf("after the listing, %s refused the innocent %s: %v", server, innocent, err)
	}
	out, code := l.c.Ctl("lookup", spammer)
	if code != 0 || !strings.Contains(out, "site-a.test") {
		t.Errorf("dstctl lookup %s at C: exit %d, want a listing reported by site-a.test:\n%s", spammer, code, out)
	}
	// The trap user submitted through dstd A's socket: had it been
	// refused there, the report would have come through the spool.
	if strings.Contains(l.a.Log(), "spooled report picked up") {
		t.Errorf("the report reached dstd A through the spool, not its socket:\n%s", l.a.Log())
	}
	return listed, refused, refusal
}
