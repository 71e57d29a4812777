package dsttest

// A private INN (InterNetNews, Debian's inn2) for integration tests and
// benchmarks: an INN server must be able to sit between two dstd and relay
// reports both ways (docs/PROTOCOL.md §4.10), so tests run the real innd.
//
// Each StartINN builds a whole INN tree of its own in a temporary directory
// (configuration, history, spool, logs, run directory) and points innd at it
// with the INNCONF environment variable, which INN 2.7's innconf_read honours
// in every program (innd, innfeed, ctlinnd, grephistory, sm, makedbz). The
// system's /etc/news and /var/lib/news are never read or written, and several
// INNs can run at once. innd runs as Debian's "news" user (it refuses to run
// as root), in the foreground (-f), on 127.0.0.1 and a free port above 1023
// (so innd binds it itself, without innbind). No systemd is involved.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// INNOptions describe a private INN server.
type INNOptions struct {
	// Name is the server's Path identity (inn.conf pathhost), which it
	// prepends to the Path of every article it relays. Default "inn.test".
	// A dstd that has this INN as a peer must name the peer the same, so
	// that it never offers INN an article that INN has already seen.
	Name string

	// Peers are the addresses allowed to feed INN (incoming.conf), as INN
	// identifies peers: by the connection's source address, not by a name
	// they give. Default: 127.0.0.1 (every dstd of a test, unless its feed
	// sets another loopback source address, dstd's [[peer]] source).
	// Duplicates are dropped: two incoming.conf peers on one address
	// cannot be told apart (innd names channels and log lines by address),
	// and nothing INN decides depends on which peer an article came from:
	// what it feeds where depends on Path and newsfeeds only. So the dstd
	// of a test can share one INN peer, 127.0.0.1.
	Peers []string

	// Feeds are the sites INN sends dst.* articles to, with innfeed.
	Feeds []INNFeed

	// MaxArtSize is inn.conf maxartsize, the largest article innd accepts;
	// 0 means 1,000,000 bytes (INN's default and dstd's max_article_bytes).
	MaxArtSize int

	// FeedConnections is innfeed's max-connections per feed (it opens one
	// at first and more when the queue grows). 0 means 2.
	FeedConnections int

	// HistorySyncEvery is inn.conf icdsynccount: after how many articles
	// innd writes its history and active file out. 0 means 1, so that
	// Has and Article (separate programs reading the files) see each
	// article at once; a benchmark may want INN's default of 10.
	HistorySyncEvery int
}

// INNFeed is a site INN feeds with innfeed.
type INNFeed struct {
	// Name is the site's name: its newsfeeds entry and innfeed.conf peer,
	// and its Path identity. INN never sends a site an article whose Path
	// names it (RFC 5537 §3.6), so Name must be what the site writes into
	// Path (the dstd's site).
	Name string
	// Addr is the site's NNTP address, 127.0.0.1:port.
	Addr string
}

// INN is a running private innd.
type INN struct {
	t    testing.TB
	Dir  string // the INN tree: etc, db, spool, log, run, tmp
	Name string // its Path identity (pathhost)
	addr string
	conf string // its inn.conf (INNCONF)
	bin  string // INN's pathbin (/usr/lib/news/bin on Debian)
	uid  uint32
	gid  uint32

	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	werr error
}

// innBinDirs are where INN's programs may be: Debian's pathbin first.
var innBinDirs = []string{"/usr/lib/news/bin", "/usr/libexec/news", "/usr/local/news/bin"}

// INNBin returns the directory of INN's programs (innd, innfeed, ctlinnd,
// ...). When INN is not installed or the test does not run as root, the
// test is skipped, except with CI=true, where it fails: CI installs inn2
// (test.sh) and runs as root, so a skip there would hide a broken setup.
func INNBin(t testing.TB) string {
	t.Helper()
	bin := ""
	for _, d := range innBinDirs {
		if st, err := os.Stat(filepath.Join(d, "innd")); err == nil && !st.IsDir() {
			bin = d
			break
		}
	}
	if bin == "" {
		missing(t, "INN is not installed (Debian: apt-get install inn2; test.sh does it)")
	}
	RequireRoot(t, "innd, which runs as user news")
	if _, err := user.Lookup("news"); err != nil {
		t.Fatalf("INN is installed but there is no user news: %v", err)
	}
	return bin
}

// StartINN builds a private INN tree, starts innd on 127.0.0.1 and a free
// port, and waits until it greets. t.Cleanup stops it; when the test has
// failed, INN's logs are written to the test log first.
func StartINN(t testing.TB, o INNOptions) *INN {
	t.Helper()
	bin := INNBin(t)
	if o.Name == "" {
		o.Name = "inn.test"
	}
	if len(o.Peers) == 0 {
		o.Peers = []string{"127.0.0.1"}
	}
	if o.MaxArtSize == 0 {
		o.MaxArtSize = 1_000_000
	}
	if o.FeedConnections == 0 {
		o.FeedConnections = 2
	}
	if o.HistorySyncEvery == 0 {
		o.HistorySyncEvery = 1
	}
	u, err := user.Lookup("news")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)

	// Not t.TempDir: its parent is 0700 root, and innd runs as news. The
	// path stays short, since pathrun holds innd's control socket (a Unix
	// socket path has at most 107 bytes).
	dir, err := os.MkdirTemp("", "dst-inn-")
	if err != nil {
		t.Fatal(err)
	}
	n := &INN{t: t, Dir: dir, Name: o.Name, bin: bin, uid: uint32(uid), gid: uint32(gid),
		addr: fmt.Sprintf("127.0.0.1:%d", FreePort(t)), conf: filepath.Join(dir, "etc", "inn.conf")}
	t.Cleanup(func() {
		n.Stop()
		if t.Failed() {
			t.Logf("INN %s (%s) logs:\n%s", n.Name, n.addr, n.Logs())
		}
		os.RemoveAll(dir)
	})
	if err := n.writeTree(o); err != nil {
		t.Fatal(err)
	}
	// An empty history with its dbz index, as Debian's postinst makes one.
	if out, err := n.run("makedbz", "-i", "-o"); err != nil {
		t.Fatalf("INN makedbz: %v\n%s", err, out)
	}
	n.start()
	return n
}

// writeTree writes the configuration and the empty databases, owned by news.
func (n *INN) writeTree(o INNOptions) error {
	d := n.Dir
	for _, sub := range []string{"etc", "db", "log", "run", "tmp", "filter", "http",
		"spool/articles", "spool/overview", "spool/incoming", "spool/outgoing", "spool/archive", "spool/innfeed"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o755); err != nil {
			return err
		}
	}
	_, port, _ := net.SplitHostPort(n.addr)

	// inn.conf. Only what differs from INN's defaults, or what a test
	// depends on, is set.
	innconf := fmt.Sprintf(`# inn.conf of a DST test INN (internal/dsttest/inn.go)
# Identity. domain makes innconfval/innd accept a host whose name has no
# domain (containers); pathhost is what INN prepends to Path.
domain:             test
pathhost:           %[1]s
server:             127.0.0.1
organization:       "DST test"
mta:                "/bin/true %%s"

# Listen on loopback only, on the test's port (above 1023: no innbind).
bindaddress:        127.0.0.1
port:               %[2]s
# Transit only: a host not in incoming.conf is refused, not handed to nnrpd.
noreader:           true
readerswhenstopped: false
maxconnections:     0

# Articles. No age limit: the Date check is dstd's job, and a benchmark may
# replay articles made earlier. Size as dstd's max_article_bytes.
artcutoff:          0
maxartsize:         %[3]d
wireformat:         true
storeonxref:        true
enableoverview:     false
ovmethod:           tradindexed
hismethod:          hisv6
remembertrash:      true
wanttrash:          false
verifygroups:       false
pgpverify:          false
# Write history and active out after each article, so that grephistory and
# sm (other processes) see what innd just stored.
icdsynccount:       %[4]d

# Logging: addresses rather than names in the news log, the sites each
# article was sent to, no periodic status files.
logipaddr:          true
logsitename:        true
logartsize:         true
logtrash:           true
htmlstatus:         false
status:             0
timer:              0
doinnwatch:         false
nnrpdauthsender:    false

# Retry a failed innfeed channel quickly.
chanretrytime:      2
pauseretrytime:     2

# Every path in the test's tree; programs from the system's INN.
pathnews:           /usr/lib/news
pathbin:            %[5]s
pathcontrol:        %[5]s/control
pathfilter:         %[6]s/filter
pathetc:            %[6]s/etc
pathdb:             %[6]s/db
pathlog:            %[6]s/log
pathrun:            %[6]s/run
pathtmp:            %[6]s/tmp
pathhttp:           %[6]s/http
pathspool:          %[6]s/spool
patharticles:       %[6]s/spool/articles
pathoverview:       %[6]s/spool/overview
pathincoming:       %[6]s/spool/incoming
pathoutgoing:       %[6]s/spool/outgoing
patharchive:        %[6]s/spool/archive
`, n.Name, port, o.MaxArtSize, o.HistorySyncEvery, n.bin, d)

	// storage.conf: tradspool, Debian's default: one file per article
	// under spool/articles/<group>/<number>, easy to look at.
	storage := "method tradspool {\n    newsgroups: *\n    class: 0\n}\n"

	// incoming.conf: who may feed INN. Streaming (MODE STREAM, CHECK,
	// TAKETHIS) as dstd's feeder prefers; no connection limit.
	var in strings.Builder
	in.WriteString("streaming: true\nmax-connections: 0\n")
	seen := map[string]bool{}
	for i, p := range o.Peers {
		if seen[p] {
			continue
		}
		seen[p] = true
		fmt.Fprintf(&in, "peer peer%d {\n    hostname: %q\n}\n", i+1, p)
	}

	// newsfeeds: ME with every group but junk and control; the innfeed
	// funnel (channel) running this INN's innfeed; one entry per site,
	// funnelled into it, carrying dst.* only.
	var nf strings.Builder
	fmt.Fprintf(&nf, "ME:*,!junk,!control*::\n")
	fmt.Fprintf(&nf, "innfeed!:!*:Tc,Wnm*:%s/innfeed\n", n.bin)
	// innfeed.conf: fast reconnects and timeouts for tests; every site is
	// a peer at its address, streaming. An article for a site that innfeed
	// cannot reach at that moment (not started yet, restarting) goes to
	// the site's backlog file on disk, which innfeed only takes up again
	// when it rotates the file: every second here, not every minute.
	var ifc strings.Builder
	fmt.Fprintf(&ifc, `# innfeed.conf of a DST test INN (internal/dsttest/inn.go)
backlog-directory:      innfeed
log-file:               innfeed.log
status-file:            innfeed.status
pid-file:               innfeed.pid
initial-sleep:          1
initial-reconnect-time: 1
max-reconnect-time:     2
dns-retry:              1
backlog-ckpt-period:    1
backlog-rotate-period:  1
backlog-newfile-period: 1
stats-period:           60
article-timeout:        30
response-timeout:       30
initial-connections:    1
max-connections:        %d
max-queue-size:         20
streaming:              true
`, o.FeedConnections)
	for _, f := range o.Feeds {
		host, fport, err := net.SplitHostPort(f.Addr)
		if err != nil {
			return fmt.Errorf("INN feed %s: address %q: %v", f.Name, f.Addr, err)
		}
		fmt.Fprintf(&nf, "%s:!*,dst.*:Tm:innfeed!\n", f.Name)
		fmt.Fprintf(&ifc, "peer %s {\n    ip-name: %s\n    port-number: %s\n}\n", f.Name, host, fport)
	}

	// active: INN's required groups (Debian's initial active) and the
	// reports' group, all empty.
	active := "control 0000000000 0000000001 n\ncontrol.cancel 0000000000 0000000001 n\n" +
		"junk 0000000000 0000000001 n\ndst.reports 0000000000 0000000001 y\n"

	files := map[string]string{
		"etc/inn.conf":      innconf,
		"etc/storage.conf":  storage,
		"etc/incoming.conf": in.String(),
		"etc/newsfeeds":     nf.String(),
		"etc/innfeed.conf":  ifc.String(),
		"etc/expire.ctl":    "/remember/:11\n*:A:1:10:never\n",
		"db/active":         active,
		"db/active.times":   "",
		"db/newsgroups":     "dst.reports\tDST spam trap reports.\n",
		"db/history":        "",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(d, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	if err := os.Chmod(d, 0o755); err != nil {
		return err
	}
	return filepath.Walk(d, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(n.uid), int(n.gid))
	})
}

// command prepares one of INN's programs to run as news against this tree.
func (n *INN) command(ctx context.Context, prog string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(n.bin, prog), args...)
	cmd.Dir = n.Dir
	cmd.Env = []string{"INNCONF=" + n.conf, "HOME=" + n.Dir, "LANG=C",
		"PATH=" + n.bin + ":/usr/sbin:/usr/bin:/sbin:/bin"}
	// Its own process group, so that Stop can reach innfeed too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true,
		Credential: &syscall.Credential{Uid: n.uid, Gid: n.gid}}
	return cmd
}

// run runs one of INN's programs to its end and returns its output.
func (n *INN) run(prog string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := n.command(ctx, prog, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return append(stdout.Bytes(), stderr.Bytes()...), err
	}
	return stdout.Bytes(), nil
}

// start runs innd -f (foreground: no fork, so the test holds its pid; its
// own log files as usual) with -N (no Perl or Python filters: the test's
// pathfilter is empty anyway) and waits for its greeting.
func (n *INN) start() {
	n.t.Helper()
	out, err := os.OpenFile(filepath.Join(n.Dir, "log", "innd.stdout"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		n.t.Fatal(err)
	}
	defer out.Close()
	n.cmd = n.command(context.Background(), "innd", "-f", "-N")
	n.cmd.Stdout, n.cmd.Stderr = out, out
	if err := n.cmd.Start(); err != nil {
		n.t.Fatalf("innd: %v", err)
	}
	n.done = make(chan struct{})
	go func() {
		err := n.cmd.Wait()
		n.mu.Lock()
		n.werr = err
		n.mu.Unlock()
		close(n.done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		line, err := n.greeting()
		if err == nil && (strings.HasPrefix(line, "200") || strings.HasPrefix(line, "201")) {
			return
		}
		select {
		case <-n.done:
			n.t.Fatalf("innd exited before answering (%v); greeting %q %v\n%s", n.waitErr(), line, err, n.Logs())
		default:
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("innd did not answer on %s within 30s: %q %v\n%s", n.addr, line, err, n.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (n *INN) waitErr() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.werr
}

// greeting connects once and returns innd's first line.
func (n *INN) greeting() (string, error) {
	c, err := net.DialTimeout("tcp", n.addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err == nil {
		c.Write([]byte("QUIT\r\n"))
	}
	return strings.TrimSpace(line), err
}

// Restart stops innd (if it runs) and starts it again on the same port
// with the same tree: history, spool and innfeed backlogs survive, and
// changes made to the files under Dir/etc take effect.
func (n *INN) Restart() {
	n.t.Helper()
	n.Stop()
	n.start()
}

// Addr is innd's NNTP address, 127.0.0.1:port.
func (n *INN) Addr() string { return n.addr }

// Port is innd's port.
func (n *INN) Port() int {
	_, p, _ := net.SplitHostPort(n.addr)
	i, _ := strconv.Atoi(p)
	return i
}

// Ctlinnd runs ctlinnd (innd's control channel) with args.
func (n *INN) Ctlinnd(args ...string) (string, error) {
	out, err := n.run("ctlinnd", append([]string{"-t", "20"}, args...)...)
	return string(out), err
}

// Has reports whether INN has stored the article msgID (its history has it
// with a storage token; a refused or cancelled article is only remembered).
func (n *INN) Has(msgID string) bool {
	out, err := n.run("grephistory", "-e", msgID)
	return err == nil && bytes.HasPrefix(bytes.TrimSpace(out), []byte("@"))
}

// Remembers reports whether INN's history knows msgID at all: stored,
// or refused and remembered so that it is refused again.
func (n *INN) Remembers(msgID string) bool {
	_, err := n.run("grephistory", "-q", msgID)
	return err == nil
}

// Article returns the article msgID as INN stored it, in wire form (CRLF
// line ends, not dot-stuffed): what innfeed sends on, with INN's own
// additions (its name in Path, Xref).
func (n *INN) Article(msgID string) ([]byte, error) {
	tok, err := n.run("grephistory", "-e", msgID)
	tok = bytes.TrimSpace(tok)
	if err != nil || !bytes.HasPrefix(tok, []byte("@")) {
		return nil, fmt.Errorf("INN has no article %s: %v %s", msgID, err, tok)
	}
	raw, err := n.run("sm", "-R", string(tok))
	if err != nil {
		return nil, fmt.Errorf("sm %s: %v %s", tok, err, raw)
	}
	// sm -R writes it as for NNTP: dot-stuffed and ended by ".\r\n".
	return unstuff(raw), nil
}

// ArticleCount is how many articles INN has filed in group: the high
// water mark of the group's line in INN's active file, which innd writes
// out every HistorySyncEvery articles.
func (n *INN) ArticleCount(group string) int {
	b, err := os.ReadFile(filepath.Join(n.Dir, "db", "active"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 4 && f[0] == group {
			hi, _ := strconv.Atoi(f[1])
			return hi
		}
	}
	return 0
}

// GroupArticles returns the articles INN has filed in group, in wire form
// (CRLF line ends, not dot-stuffed), read from its tradspool files
// (spool/articles/<group as a path>/<number>), oldest first.
func (n *INN) GroupArticles(group string) ([][]byte, error) {
	var arts [][]byte
	dir := filepath.Join(append([]string{n.Dir, "spool", "articles"}, strings.Split(group, ".")...)...)
	for i := 1; i <= n.ArticleCount(group); i++ {
		raw, err := os.ReadFile(filepath.Join(dir, strconv.Itoa(i)))
		if errors.Is(err, os.ErrNotExist) {
			continue // cancelled
		} else if err != nil {
			return nil, err
		}
		arts = append(arts, unstuff(raw))
	}
	return arts, nil
}

// unstuff turns an article stored in INN's wire format (wireformat: true:
// dot-stuffed, ended by ".\r\n", as sent over NNTP) into plain wire form.
func unstuff(raw []byte) []byte {
	raw = bytes.TrimSuffix(raw, []byte(".\r\n"))
	var b bytes.Buffer
	for _, line := range bytes.SplitAfter(raw, []byte("\r\n")) {
		if bytes.HasPrefix(line, []byte("..")) {
			line = line[1:]
		}
		b.Write(line)
	}
	return b.Bytes()
}

// NewsLog is INN's article log (pathlog/news): a line per article offered,
// "+" accepted (with the sites it goes to), "-" refused with the reason,
// "c" cancelled, "j" junked. innd buffers it: it is complete once Stop
// has returned.
func (n *INN) NewsLog() string {
	b, _ := os.ReadFile(filepath.Join(n.Dir, "log", "news"))
	return string(b)
}

// Logs returns every file of INN's log directory (news, errlog, innfeed
// logs, innd's own output). The notices innd and innfeed send to syslog
// are not there: tests do not run a syslog daemon.
func (n *INN) Logs() string {
	var b strings.Builder
	ents, _ := os.ReadDir(filepath.Join(n.Dir, "log"))
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, name := range names {
		c, _ := os.ReadFile(filepath.Join(n.Dir, "log", name))
		const max = 64 << 10
		if len(c) > max {
			c = append([]byte("...\n"), c[len(c)-max:]...)
		}
		fmt.Fprintf(&b, "--- %s (%d bytes)\n%s", name, len(c), c)
		if len(c) > 0 && c[len(c)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	if s, err := os.ReadFile(filepath.Join(n.Dir, "log", "innfeed.status")); err == nil {
		fmt.Fprintf(&b, "--- innfeed.status\n%s", s)
	}
	return b.String()
}

// Stop shuts innd down (ctlinnd shutdown: it closes its channels, so
// innfeed writes its backlog and exits) and waits; after 20s, or if
// ctlinnd fails, it kills innd's process group (innd and innfeed).
// Stopping a stopped INN does nothing.
func (n *INN) Stop() {
	if n.cmd == nil {
		return
	}
	select {
	case <-n.done:
	default:
		if out, err := n.Ctlinnd("shutdown", "test done"); err != nil {
			n.t.Logf("ctlinnd shutdown: %v %s", err, out)
			syscall.Kill(n.cmd.Process.Pid, syscall.SIGTERM)
		}
		select {
		case <-n.done:
		case <-time.After(20 * time.Second):
			n.t.Errorf("innd did not stop within 20s of ctlinnd shutdown; killing it")
			syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
			<-n.done
		}
	}
	// innfeed, innd's child in the same process group, exits when innd
	// closes its channel; give it a moment, then make sure.
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(-n.cmd.Process.Pid, 0) == nil {
		if time.Now().After(deadline) {
			syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.cmd = nil
}

// ErrINNRefused is returned by INNOffer when INN refuses an article.
var ErrINNRefused = errors.New("INN refused the article")

// INNOffer sends art (wire form, not dot-stuffed) to the NNTP server at
// addr the way a streaming peer does: MODE STREAM, CHECK, TAKETHIS. It
// returns the CHECK answer and the TAKETHIS answer (0 when the article was
// not sent because CHECK refused it). It speaks net/textproto itself so
// that what is tested is INN, not DST's client.
func INNOffer(addr, msgID string, art []byte) (check, takethis int, err error) {
	c, err := textproto.Dial("tcp", addr)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	if _, _, err := c.ReadCodeLine(200); err != nil {
		return 0, 0, fmt.Errorf("greeting: %w", err)
	}
	if _, err := c.Cmd("MODE STREAM"); err != nil {
		return 0, 0, err
	}
	if _, _, err := c.ReadCodeLine(203); err != nil {
		return 0, 0, fmt.Errorf("MODE STREAM: %w", err)
	}
	if _, err := c.Cmd("CHECK %s", msgID); err != nil {
		return 0, 0, err
	}
	check, msg, err := c.ReadCodeLine(0)
	if err != nil && check == 0 {
		return 0, 0, err
	}
	if check != 238 {
		return check, 0, fmt.Errorf("%w: CHECK %d %s", ErrINNRefused, check, msg)
	}
	if _, err := c.Cmd("TAKETHIS %s", msgID); err != nil {
		return check, 0, err
	}
	w := c.DotWriter()
	w.Write(bytes.ReplaceAll(art, []byte("\r\n"), []byte("\n"))) // DotWriter writes CRLF
	if err := w.Close(); err != nil {
		return check, 0, err
	}
	takethis, msg, err = c.ReadCodeLine(0)
	if err != nil && takethis == 0 {
		return check, 0, err
	}
	c.Cmd("QUIT")
	if takethis != 239 {
		return check, takethis, fmt.Errorf("%w: TAKETHIS %d %s", ErrINNRefused, takethis, msg)
	}
	return check, takethis, nil
}
