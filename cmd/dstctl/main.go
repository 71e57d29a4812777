// Command dstctl administers a running dstd through its admin endpoint
// (a Unix socket in the data directory by default). dstd alone opens the
// database, so dstctl never touches it directly.
//
//	dstctl [-admin ADDR] [-token-file FILE] status
//	dstctl [-admin ADDR] [-token-file FILE] lookup IP
//	dstctl [-admin ADDR] [-token-file FILE] list [-json]
//	dstctl [-admin ADDR] [-token-file FILE] delist [-allow] IP
//	dstctl [-admin ADDR] [-token-file FILE] queues
//	dstctl [-admin ADDR] [-token-file FILE] origins
//	dstctl [-admin ADDR] [-token-file FILE] why IP
//	dstctl version
//
// ADDR is a socket path (anything with a '/' but http://host:port) or
// host:port. On TCP, a dstd with admin.token_file wants its token: FILE
// holds it (default $DST_ADMIN_TOKEN_FILE). Exit status:
// 0 done; 1 not listed (lookup) or dstd reported an error; 2 usage error;
// 3 dstd cannot be reached.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/dst-traps/dst/internal/admin"
	"github.com/dst-traps/dst/internal/buildinfo"
	"github.com/dst-traps/dst/internal/config"
)

// Exit statuses.
const (
	exitOK          = 0
	exitFail        = 1 // not listed, or dstd answered with an error
	exitUsage       = 2
	exitUnreachable = 3
)

// tokenFileEnv names the environment variable that gives -token-file's
// default, so a script need not repeat it.
const tokenFileEnv = "DST_ADMIN_TOKEN_FILE"

// requestTimeout bounds every command but list, whose length depends on
// the number of listings.
const requestTimeout = 30 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: dstctl [-admin ADDR] [-token-file FILE] COMMAND

commands:
  status              what dstd is doing: site, listeners, counts, queues
  lookup IP           is IP listed? since when, until when, by whom (exit 1: not listed)
  list [-json]        every listing, one per line
  delist [-allow] IP  remove IP's listing; -allow also keeps it from being listed again
  cancel MESSAGE-ID   withdraw a report this site sent, here and at every site it reached
  queues              the action queues: waiting events, successes, failures
  peers [-json]       every peer: outgoing feed (state, waiting, sent, refused by reason, TLS), incoming sessions
  peers refeed [-reason keyring|clock|all] NAME
                      offer NAME again the reports it refused for a keyring or clock reason, once fixed
  peers flush NAME    connect to NAME now, skipping the backoff; deferred reports are due at once
  peers test NAME     a round trip to NAME without a report: connect, TLS, MODE STREAM, CHECK, QUIT (exit 1: failed)
  keys                the DKIM keys reports are verified with (keyring and own key)
  resync              repair the DNS UPDATE server's zone from the listings, and say what changed
  origins             every origin: operator, trust state and weight, reports, corroborated, delisted by you, held
  why IP              every report of IP held here: origin, operator, time, class, signature, evidence (exit 1: none)
  version             print dstctl's version

ADDR is dstd's admin socket, or admin.listen as host:port or http://host:port.
Over TCP, a dstd with admin.token_file wants its token: give the file with
-token-file or $DST_ADMIN_TOKEN_FILE. The socket needs none.

exit status: 0 done, 1 not listed or dstd reported an error, 2 usage, 3 dstd unreachable

`

// cli is one invocation's output streams and client.
type cli struct {
	stdout, stderr io.Writer
	c              *admin.Client
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dstctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("admin", config.DefaultAdminSocket(), "dstd's admin endpoint: socket path, host:port or http://host:port")
	tokenFile := fs.String("token-file", os.Getenv(tokenFileEnv), "file holding admin.token_file's token, for a TCP endpoint (default $"+tokenFileEnv+")")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return exitUsage
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	if cmd == "version" {
		fmt.Fprintln(stdout, buildinfo.Line("dstctl"))
		return exitOK
	}
	var opts []admin.ClientOption
	if *tokenFile != "" {
		tok, err := admin.ReadTokenFile(*tokenFile)
		if err != nil {
			fmt.Fprintln(stderr, "dstctl: -token-file:", err)
			return exitUsage
		}
		opts = append(opts, admin.WithToken(tok))
	}
	c := &cli{stdout: stdout, stderr: stderr, c: admin.NewClient(*addr, opts...)}
	defer c.c.Close()

	var f func(context.Context, []string) int
	switch cmd {
	case "status":
		f = c.status
	case "lookup":
		f = c.lookup
	case "list":
		f = c.list
	case "delist":
		f = c.delist
	case "cancel":
		f = c.cancel
	case "queues":
		f = c.queues
	case "peers":
		f = c.peers
	case "keys":
		f = c.keys
	case "resync":
		f = c.resync
	case "origins":
		f = c.origins
	case "why":
		f = c.why
	case "help":
		fs.SetOutput(stdout)
		fs.Usage()
		return exitOK
	default:
		fmt.Fprintf(stderr, "dstctl: unknown command %q\n\n", cmd)
		fs.Usage()
		return exitUsage
	}
	return f(ctx, rest)
}

// fail prints err and returns the matching exit status.
func (c *cli) fail(err error) int {
	fmt.Fprintln(c.stderr, "dstctl:", err)
	var ue *admin.UnreachableError
	if errors.As(err, &ue) {
		return exitUnreachable
	}
	return exitFail
}

func (c *cli) usageError(format string, args ...any) int {
	fmt.Fprintf(c.stderr, "dstctl: "+format+"\n", args...)
	fmt.Fprintf(c.stderr, "run \"dstctl help\" for the commands\n")
	return exitUsage
}

// parseArgs parses a subcommand's flags and wants exactly nargs
// arguments; it returns ok false after printing the usage error.
func (c *cli) parseArgs(fs *flag.FlagSet, args []string, nargs int, synopsis string) (bool, int) {
	fs.SetOutput(c.stderr)
	fs.Usage = func() { fmt.Fprintf(c.stderr, "usage: dstctl %s\n", synopsis); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return false, exitOK
		}
		return false, exitUsage
	}
	if fs.NArg() != nargs {
		fs.Usage()
		return false, exitUsage
	}
	return true, 0
}

// ipArg parses a command's IP argument; ok false: it is not one, the
// usage error is printed and code is the exit status.
func (c *cli) ipArg(s string) (ip netip.Addr, code int, ok bool) {
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, c.usageError("%q is not an IPv4 or IPv6 address", s), false
	}
	return ip.Unmap(), 0, true
}

// fetch runs a command that takes no arguments and makes one request.
// ok false: it failed, and code is the exit status.
func fetch[T any](ctx context.Context, c *cli, args []string, name string, req func(context.Context) (T, error)) (v T, code int, ok bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	if ok, code := c.parseArgs(fs, args, 0, name); !ok {
		return v, code, false
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	v, err := req(ctx)
	if err != nil {
		return v, c.fail(err), false
	}
	return v, exitOK, true
}

func (c *cli) status(ctx context.Context, args []string) int {
	s, code, ok := fetch(ctx, c, args, "status", c.c.Status)
	if !ok {
		return code
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("dstd", s.Version)
	row("site", s.Site)
	row("data directory", s.DataDir)
	row("NNTP", orNone(strings.Join(s.Listen, ", ")))
	row("admin", orNone(strings.Join(s.Admin, ", ")))
	row("up since", fmt.Sprintf("%s (%s)", fmtTime(s.Started), time.Duration(s.UptimeSeconds)*time.Second))
	row("listed", fmt.Sprint(s.Listings))
	row("pending", fmt.Sprintf("%d (reported, below the threshold)", s.Pending))
	row("history", fmt.Sprintf("%d Message-IDs, %d articles", s.History, s.Articles))
	row("database", fmtBytes(s.DBBytes))
	for _, q := range s.Queues {
		row("queue "+q.Name, fmt.Sprintf("%d waiting", q.Depth))
	}
	if err := tw.Flush(); err != nil {
		return c.fail(fmt.Errorf("writing the status: %w", err))
	}
	return exitOK
}

func (c *cli) lookup(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("lookup", flag.ContinueOnError)
	if ok, code := c.parseArgs(fs, args, 1, "lookup IP"); !ok {
		return code
	}
	ip, code, ok := c.ipArg(fs.Arg(0))
	if !ok {
		return code
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	l, found, err := c.c.Lookup(ctx, ip)
	if err != nil {
		return c.fail(err)
	}
	if !found {
		fmt.Fprintf(c.stdout, "%s is not listed\n", ip)
		return exitFail
	}
	if l.Simulated {
		// Exit 0 all the same: the listing exists, only unpublished.
		fmt.Fprintf(c.stdout, "%s would be listed (policy.simulate: not published in DNS)\n", l.IP)
	} else {
		fmt.Fprintf(c.stdout, "%s is listed\n", l.IP)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "  %s\t%s\n", k, v) }
	row("since", fmtTime(l.FirstSeen))
	row("until", fmtTime(l.Expires))
	row("last report", fmtTime(l.LastSeen))
	row("hits", fmt.Sprint(l.Hits))
	row("origins", orNone(strings.Join(l.Origins, ", ")))
	row("last Message-ID", orNone(l.LastMessageID))
	if err := tw.Flush(); err != nil {
		return c.fail(fmt.Errorf("writing the listing: %w", err))
	}
	return exitOK
}

// list streams: each listing is written as it arrives, through a buffer,
// never gathered. That is why it uses fixed-width columns instead of
// tabwriter, which holds every line until it has seen them all.
func (c *cli) list(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("list", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "one JSON object per line, as the admin API gives them")
	if ok, code := c.parseArgs(fs, args, 0, "list [-json]"); !ok {
		return code
	}
	w := bufio.NewWriter(c.stdout)
	enc := json.NewEncoder(w)
	n := 0
	err := c.c.List(ctx, func(l admin.Listing) error {
		n++
		if *asJSON {
			return enc.Encode(l)
		}
		_, err := fmt.Fprintf(w, "%-15s  until %s  hits %-4d  %s  %s\n", l.IP, fmtTime(l.Expires), l.Hits,
			orNone(strings.Join(l.Origins, ",")), orNone(l.LastMessageID))
		return err
	})
	if ferr := w.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("writing the listings: %w", ferr)
	}
	if err != nil {
		return c.fail(err)
	}
	if n == 0 && !*asJSON {
		fmt.Fprintln(c.stderr, "dstctl: nothing is listed")
	}
	return exitOK
}

func (c *cli) delist(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("delist", flag.ContinueOnError)
	allow := fs.Bool("allow", false, "also add IP to the allow list, so reports can never list it again")
	if ok, code := c.parseArgs(fs, args, 1, "delist [-allow] IP"); !ok {
		return code
	}
	ip, code, ok := c.ipArg(fs.Arg(0))
	if !ok {
		return code
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	r, err := c.c.Delist(ctx, ip, *allow)
	if err != nil {
		return c.fail(err)
	}
	var msg string
	switch {
	case r.Delisted && r.Allowed:
		msg = "%s delisted and added to the allow list"
	case r.Delisted:
		msg = "%s delisted (new reports can list it again; use -allow to prevent that)"
	case r.Allowed:
		msg = "%s was not listed; added to the allow list"
	default:
		msg = "%s was not listed; nothing to do"
	}
	fmt.Fprintf(c.stdout, msg+"\n", r.IP)
	return exitOK
}

func (c *cli) cancel(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("cancel", flag.ContinueOnError)
	if ok, code := c.parseArgs(fs, args, 1, "cancel MESSAGE-ID"); !ok {
		return code
	}
	id := fs.Arg(0)
	if !strings.HasPrefix(id, "<") {
		id = "<" + id + ">" // the shell makes the brackets a nuisance
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	r, err := c.c.Cancel(ctx, id)
	if err != nil {
		return c.fail(err)
	}
	var here string
	switch {
	case r.Delisted:
		here = "delisted here"
	case r.Listed:
		here = "still listed by " + strings.Join(r.Origins, ", ")
	default:
		here = "was not listed here"
	}
	fmt.Fprintf(c.stdout, "cancelled %s (report about %s): %s; cancel %s sent to the peers\n", r.MessageID, r.IP, here, r.Cancel)
	return exitOK
}

func (c *cli) queues(ctx context.Context, args []string) int {
	qs, code, ok := fetch(ctx, c, args, "queues", c.c.Queues)
	if !ok {
		return code
	}
	if len(qs) == 0 {
		fmt.Fprintln(c.stdout, "no actions configured")
		return exitOK
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUE\tWAITING\tDONE\tFAILURES\tLAST SUCCESS\tLAST ERROR")
	for _, q := range qs {
		lastErr := "-"
		if q.LastError != "" {
			lastErr = fmtTime(q.LastErrorTime) + " " + oneLine(q.LastError)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\n", q.Name, q.Depth, q.Done, q.Failures, fmtTime(q.LastSuccess), lastErr)
	}
	if err := tw.Flush(); err != nil {
		return c.fail(fmt.Errorf("writing the queues: %w", err))
	}
	return exitOK
}

// resyncTimeout is long: a resynchronisation transfers the whole zone
// and sends what differs, which for a million listings takes minutes.
const resyncTimeout = 30 * time.Minute

func (c *cli) resync(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("resync", flag.ContinueOnError)
	if ok, code := c.parseArgs(fs, args, 0, "resync"); !ok {
		return code
	}
	ctx, cancel := context.WithTimeout(ctx, resyncTimeout)
	defer cancel()
	r, err := c.c.Resync(ctx)
	if err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(c.stdout, "DNS UPDATE zone resynchronised: %d listings, %d names were in the zone; %d added, %d fixed, %d removed\n",
		r.Wanted, r.Present, r.Added, r.Fixed, r.Removed)
	return exitOK
}

func (c *cli) keys(ctx context.Context, args []string) int {
	ks, code, ok := fetch(ctx, c, args, "keys", c.c.Keys)
	if !ok {
		return code
	}
	// The columns are those of a keyring line, so a line can be compared
	// with what a peer sent, or copied.
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SITE\tSELECTOR\tPUBLIC KEY")
	for _, k := range ks {
		own := ""
		if k.Own {
			own = "  (this site)"
		}
		attrs := ""
		if k.Operator != "" {
			attrs += " operator=" + k.Operator
		}
		if k.Probation {
			attrs += " probation"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s%s%s\n", k.Site, k.Selector, k.PublicKey, attrs, own)
	}
	if err := tw.Flush(); err != nil {
		return c.fail(fmt.Errorf("writing the keys: %w", err))
	}
	return exitOK
}

// fmtTime shows times in UTC, like the report log, so lines from several
// sites compare at a glance.
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a table row on one line whatever an error message holds.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
