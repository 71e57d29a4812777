package authz

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/article"
	"github.com/dst-traps/dst/internal/dsttest"
	"github.com/dst-traps/dst/internal/report"
	"github.com/dst-traps/dst/internal/spool"
)

// controlPostScript POSTs the article on its stdin (dot-stuffed and ending
// in ".\r\n") to the NNTP server at $1:$2 and prints the effective uid, then
// every answer line. It runs as an unprivileged user through bash's
// /dev/tcp, because bash is on every Debian machine and the point is that
// nothing but a plain local account is needed to reach the port.
const controlPostScript = `printf 'uid %s\n' "$EUID"
exec 3<>"/dev/tcp/$1/$2" || exit 3
IFS= read -r line <&3 || exit 4
printf '%s\n' "$line"
printf 'POST\r\n' >&3
IFS= read -r line <&3 || exit 4
printf '%s\n' "$line"
case $line in 340*) ;; *) exit 0 ;; esac
cat >&3
IFS= read -r line <&3 || exit 4
printf '%s\n' "$line"
printf 'QUIT\r\n' >&3
`

// controlPostAs POSTs art to addr as u and returns the server's last
// answer line (to the article, or to POST if that was refused).
func controlPostAs(t *testing.T, u *dsttest.User, bash, addr string, art []byte) string {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	cmd := u.Command(bash, "-c", controlPostScript, "control-post", host, port)
	cmd.Dir = "/"
	cmd.Stdin = bytes.NewReader(controlDotStuff(art))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("POST as %s: %v\n%s", u.Name, err, out)
	}
	lines := strings.Split(strings.TrimSpace(strings.ReplaceAll(string(out), "\r", "")), "\n")
	if want := fmt.Sprintf("uid %d", u.UID); lines[0] != want {
		t.Fatalf("the POST ran as %q, want %q", lines[0], want)
	}
	if len(lines) < 3 || !strings.HasPrefix(lines[1], "200") {
		t.Fatalf("POST as %s: %q", u.Name, lines)
	}
	return lines[len(lines)-1]
}

// controlDotStuff frames a CRLF article for POST (RFC 3977 §3.1.1).
func controlDotStuff(art []byte) []byte {
	var b bytes.Buffer
	for _, l := range strings.SplitAfter(string(art), "\r\n") {
		if l == "" {
			continue
		}
		if strings.HasPrefix(l, ".") {
			b.WriteByte('.')
		}
		b.WriteString(l)
	}
	b.WriteString(".\r\n")
	return b.Bytes()
}

// controlReport is a report about ip as dstc would post it.
func controlReport(t *testing.T, ip string) []byte {
	t.Helper()
	a, err := report.New(report.Hit{SourceIP: netip.MustParseAddr(ip), Arrival: time.Now(), Host: "trap.test", UserAgent: "test",
		Message: []byte("Subject: spam\r\n\r\nbuy\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	return a.Bytes()
}

// controlCancel is the cancel of target that dstctl cancel at site would
// make, unsigned: what an attacker would post for dstd to sign.
func controlCancel(t *testing.T, site, target string) []byte {
	t.Helper()
	a, err := report.NewCancel(site, target, netip.Addr{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return a.Bytes()
}

func controlMessageID(t *testing.T, art []byte) string {
	t.Helper()
	a, err := article.Parse(art, article.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	return a.Get("Message-ID")
}

func controlListed(s *dsttest.Dstd, ip string) bool {
	_, code := s.Ctl("lookup", ip)
	return code == 0
}

// controlWaiting is how many articles wait in s's feed queue for peer, as
// dstctl peers shows them.
func controlWaiting(t *testing.T, s *dsttest.Dstd, peer string) int {
	t.Helper()
	out, code := s.Ctl("peers")
	if code != 0 {
		t.Fatalf("dstctl peers at %s: exit %d: %s", s.Site, code, out)
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(peer) + `\s+\S+\s+(?:connected \(\w+\)|disconnected)\s+(\d+)\s`)
	m := re.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no line for %s in dstctl peers at %s:\n%s", peer, s.Site, out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func controlMetric(t *testing.T, s *dsttest.Dstd, series string) int {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\d+)`)
	m := re.FindStringSubmatch(s.Metrics())
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// Only the administrator cancels. An unprivileged local user who may post
// reports to the loopback NNTP port (nntp.post_allow) posts a cancel of the
// site's report: dstd would sign it with the site's key, and every peer
// would take it for the site's own withdrawal. It must be refused with 441
// and change nothing, at the site or its peer; the same article dropped in
// the spool too. dstctl cancel, the administrator's path, still withdraws
// the report everywhere.
func TestControlPostedCancelRefused(t *testing.T) {
	bash := dsttest.Require(t, "bash", "bash")
	evil := dsttest.NewUser(t, "dstt-evil")

	a := dsttest.NewDstd(t, "site-a.test", "")
	b := dsttest.NewDstd(t, "site-b.test", "")
	keyring := a.KeyringLine() + "\n" + b.KeyringLine() + "\n"
	for _, s := range []*dsttest.Dstd{a, b} {
		if err := os.WriteFile(filepath.Join(s.Dir, "keyring"), []byte(keyring), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// post_allow is set here, not left to the default: this test is about
	// what a poster allowed on the port may do.
	a.Reconfigure(fmt.Sprintf("[policy]\nallow_documentation = true\n\n[nntp]\npost_allow = [\"127.0.0.0/8\"]\n\n"+
		"[[peer]]\nname = %q\naddresses = [\"127.0.0.1\"]\nfeed = %q\n", b.Site, b.NNTP))
	b.Reconfigure(fmt.Sprintf("[policy]\nallow_documentation = true\n\n"+
		"[[peer]]\nname = %q\naddresses = [\"127.0.0.1\"]\n", a.Site))
	a.Start()
	b.Start()

	// The user may post reports: the refusal below is about what it
	// posts, not about who it is.
	const ip1, ip2 = "203.0.113.60", "203.0.113.61"
	rep1 := controlReport(t, ip1)
	id1 := controlMessageID(t, rep1)
	if got := controlPostAs(t, evil, bash, a.NNTP, rep1); !strings.HasPrefix(got, "240") {
		t.Fatalf("POST of a report as %s: %q, want 240", evil.Name, got)
	}
	dsttest.WaitFor(t, 60*time.Second, ip1+" listed at A and B", func() bool {
		return controlListed(a, ip1) && controlListed(b, ip1)
	})

	// The attack: the cancel dstctl cancel would make, posted by the user.
	got := controlPostAs(t, evil, bash, a.NNTP, controlCancel(t, a.Site, id1))
	if !strings.HasPrefix(got, "441") || !strings.Contains(got, "dstctl cancel") {
		t.Errorf("POST of Control: cancel %s as %s: %q, want 441 naming dstctl cancel", id1, evil.Name, got)
	}
	// The lower-case spelling is the same field.
	lower := bytes.Replace(controlCancel(t, a.Site, id1), []byte("Control:"), []byte("control:"), 1)
	if got := controlPostAs(t, evil, bash, a.NNTP, lower); !strings.HasPrefix(got, "441") {
		t.Errorf("POST of control: cancel %s as %s: %q, want 441", id1, evil.Name, got)
	}

	// The spool is the other local way in (dstc spools there while dstd
	// is down): the same cancel dropped there is refused and removed.
	spoolDir := filepath.Join(a.Dir, "spool")
	if _, err := spool.Put(spoolDir, controlCancel(t, a.Site, id1)); err != nil {
		t.Fatal(err)
	}
	dsttest.WaitFor(t, 30*time.Second, "A to pick up the spooled cancel", func() bool {
		es, err := spool.List(spoolDir)
		return err == nil && len(es) == 0
	})

	// Had A accepted any of these cancels, it would have queued it for B
	// before answering, and applied it here at once. A second, ordinary
	// report posted now is queued behind them. A feed queue item leaves
	// the queue only once B has answered for it, and B answers after its
	// commit: so once B lists the second report and A has nothing left
	// waiting for B, any cancel A had let through would already have been
	// applied at B. Only then is "still listed at B" evidence.
	if got := controlPostAs(t, evil, bash, a.NNTP, controlReport(t, ip2)); !strings.HasPrefix(got, "240") {
		t.Fatalf("POST of the second report: %q, want 240", got)
	}
	dsttest.WaitFor(t, 60*time.Second, ip2+" listed at B and A's feed to B drained", func() bool {
		return controlListed(b, ip2) && controlWaiting(t, a, b.Site) == 0
	})
	for _, s := range []*dsttest.Dstd{a, b} {
		if !controlListed(s, ip1) {
			t.Errorf("%s no longer lists %s: a posted cancel withdrew the site's report", s.Site, ip1)
		}
		if strings.Contains(s.Log(), "cancel accepted") {
			t.Errorf("%s accepted a cancel that nobody issued with dstctl cancel", s.Site)
		}
	}
	if n := controlMetric(t, a, `dst_reports_refused_total{reason="control"}`); n != 3 {
		t.Errorf("A counted %d refusals as reason=\"control\", want 3 (two POSTs, one spooled)", n)
	}
	if n := controlMetric(t, b, "dst_reports_accepted_total"); n != 2 {
		t.Errorf("B accepted %d articles, want 2 (the two reports, no cancel)", n)
	}
	log := a.Log()
	if !strings.Contains(log, "posted control article refused") || !strings.Contains(log, "local poster at 127.0.0.1:") ||
		!strings.Contains(log, `from=spool`) {
		t.Errorf("A's log does not name the posters of the refused control articles:\n%s", log)
	}

	// The administrator's path still works, and B follows it.
	out, code := a.Ctl("cancel", id1)
	if code != 0 || !strings.Contains(out, "delisted here") {
		t.Fatalf("dstctl cancel %s at A: exit %d: %s", id1, code, out)
	}
	if controlListed(a, ip1) {
		t.Errorf("A still lists %s after dstctl cancel", ip1)
	}
	dsttest.WaitFor(t, 60*time.Second, ip1+" delisted at B after dstctl cancel at A", func() bool {
		return !controlListed(b, ip1)
	})
	if !controlListed(b, ip2) {
		t.Errorf("B lost %s, which nobody cancelled", ip2)
	}
}
