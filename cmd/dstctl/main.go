// Command dstctl administers a running dstd through its admin endpoint
// (a Unix socket in the data directory by default). dstd alone opens the
// database, so dstctl never touches it directly.
//
//	dstctl [-admin ADDR | -c FILE] [-token-file FILE] [-json] COMMAND [-json] [ARGS]
//
//	status              what dstd is doing
//	lookup IP           is IP listed? (exit 1: no)
//	list                every listing
//	delist [-allow] IP  remove IP's listing (-allow: and never list it again)
//	cancel MESSAGE-ID   withdraw a report this site sent
//	queues              the action queues
//	peers               the outgoing feeds
//	keys                the DKIM keys reports are verified with
//	resync              repair the DNS UPDATE server's zone
//	origins             every origin and its trust state
//	why IP              every report of IP held here (exit 1: none)
//	version             dstctl's version
//
// Finding dstd: -admin ADDR, else $DSTCTL_ADMIN, else admin.socket of the
// dstd configuration -c FILE, else admin.socket of /etc/dst/dstd.toml
// when that file exists and is readable (the packaged dstd's), else the
// default socket: /run/dst/admin.sock when it exists (the package's), else
// /var/lib/dst/admin.sock when it exists (an older layout) or for root,
// else admin.sock in the data directory of a dstd run by this user with no
// configuration. A member of dst-admin may not read /etc/dst/dstd.toml
// and so finds /run/dst/admin.sock. ADDR is a socket path (anything with
// a '/' but http://host:port) or host:port. On TCP, a dstd with
// admin.token_file wants its token: -token-file FILE, else
// $DST_ADMIN_TOKEN_FILE, else admin.token_file of the configuration read.
//
// -json, before or after the command, prints the admin API's answer
// (docs/API.md) instead of text: one JSON document on one line, or for
// list one listing per line (JSON lines). Errors are then one JSON object
// on stderr: {"error": MESSAGE, "exit": STATUS, "http_status": CODE}, the
// last only when dstd answered.
//
// Exit status, distinct so that a script can tell "no" from "broken":
//
//	0  done; yes (lookup: listed, why: reports held)
//	1  no: not listed (lookup), no report held (why)
//	2  usage: a wrong command, flag or argument
//	3  dstd unreachable: not running, no permission on its socket, no answer in time
//	4  dstd refused or failed the request (HTTP 4xx or 5xx: wrong token, unknown report, ...)
//	5  a local error: the token file or -c's configuration cannot be read, output cannot be written
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
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

// Exit statuses (usage and the package comment list them too).
const (
	exitOK          = 0
	exitNo          = 1 // not listed, nothing held
	exitUsage       = 2
	exitUnreachable = 3
	exitRefused     = 4 // dstd answered with an error
	exitLocal       = 5
)

// Environment variables a script may set instead of repeating flags.
const (
	adminEnv     = "DSTCTL_ADMIN"         // -admin's default
	tokenFileEnv = "DST_ADMIN_TOKEN_FILE" // -token-file's default
)

// systemConfig is the configuration of the packaged dstd (dstd.service
// runs dstd -c with it): without -admin, $DSTCTL_ADMIN or -c, dstctl
// reads its admin socket from there when the file exists.
const systemConfig = "/etc/dst/dstd.toml"

// requestTimeout bounds every command but list, whose length depends on
// the number of listings.
const requestTimeout = 30 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: dstctl [-admin ADDR | -c FILE] [-token-file FILE] [-json] COMMAND [-json] [ARGS]

commands:
  status              what dstd is doing: site, listeners, counts, queues
  lookup IP           is IP listed? since when, until when, by whom (exit 1: not listed)
  list                every listing, one per line (-json: JSON lines)
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

dstd is found at -admin ADDR, else $DSTCTL_ADMIN, else admin.socket of the
dstd configuration -c FILE, else of /etc/dst/dstd.toml when you may read it,
else the first that exists of /run/dst/admin.sock and /var/lib/dst/admin.sock,
else admin.sock in your own dstd's data directory. ADDR is dstd's admin
socket, or admin.listen as host:port or http://host:port. Over TCP, a dstd with admin.token_file wants
its token: -token-file, else $DST_ADMIN_TOKEN_FILE, else admin.token_file of
the configuration. The socket needs none.

-json (before or after the command) prints the admin API's JSON answer
(docs/API.md), one document per line; errors are then JSON on stderr.

exit status:
  0  done; yes          3  dstd unreachable
  1  no: not listed     4  dstd refused or failed the request
  2  usage              5  local error (token or config file, output)

`

// cli is one invocation's settings, output streams and client.
type cli struct {
	stdout, stderr io.Writer
	json           bool // -json: print the API's JSON, and errors as JSON
	c              *admin.Client
	// systemConfig is the configuration read when nothing names the
	// endpoint: the package's systemConfig, another file in tests.
	systemConfig string
	// systemSockets are the default sockets, the first that exists
	// taken: config.SystemAdminSockets, others in tests.
	systemSockets []string
	// packaged: the Debian package is installed, so its socket is the
	// default even while its dstd is stopped.
	packaged bool
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := &cli{stdout: stdout, stderr: stderr, systemConfig: systemConfig, systemSockets: config.SystemAdminSockets(), packaged: config.PackageInstalled()}
	return c.run(ctx, args)
}

func (c *cli) run(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("dstctl", flag.ContinueOnError)
	addr := fs.String("admin", "", "dstd's admin endpoint: socket path, host:port or http://host:port (default $"+adminEnv+", else -c's admin.socket)")
	confPath := fs.String("c", "", "dstd's configuration file, to find its admin.socket and admin.token_file (default "+systemConfig+" when it exists)")
	tokenFile := fs.String("token-file", os.Getenv(tokenFileEnv), "file holding admin.token_file's token, for a TCP endpoint (default $"+tokenFileEnv+", else -c's admin.token_file)")
	fs.BoolVar(&c.json, "json", false, "print the admin API's JSON answer (docs/API.md), and errors as JSON on stderr")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if ok, code := c.parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() == 0 {
		if c.json {
			return c.usageError(fs, "no command given")
		}
		fs.SetOutput(c.stderr)
		fs.Usage()
		return exitUsage
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	var f func(context.Context, []string) int
	switch cmd {
	case "version":
		return c.version(rest)
	case "help":
		fs.SetOutput(c.stdout)
		fs.Usage()
		return exitOK
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
	default:
		return c.usageError(fs, "unknown command %q", cmd)
	}
	ep, err := c.endpoint(*addr, *confPath, *tokenFile)
	if err != nil {
		return c.fail(err)
	}
	var opts []admin.ClientOption
	if ep.from != "" {
		opts = append(opts, admin.WithAddrSource(ep.from))
	}
	if ep.tokenFile != "" && !admin.IsSocket(ep.addr) {
		tok, err := admin.ReadTokenFile(ep.tokenFile)
		if err != nil {
			return c.fail(&localError{fmt.Errorf("%s: %w", ep.tokenFrom, err)})
		}
		opts = append(opts, admin.WithToken(tok))
	}
	c.c = admin.NewClient(ep.addr, opts...)
	defer c.c.Close()
	return f(ctx, rest)
}

// endpoint is where dstd is, and which token file to use over TCP.
type endpoint struct {
	addr string
	// from says where addr came from, for error messages; "" for -admin,
	// which the user just typed.
	from                 string
	tokenFile, tokenFrom string
}

// endpoint finds dstd: -admin, $DSTCTL_ADMIN, -c FILE's admin.socket,
// systemConfig's when it exists, the default socket. The token file is
// -token-file (or its environment variable), else the configuration's.
func (c *cli) endpoint(addrFlag, confPath, tokenFlag string) (endpoint, error) {
	ep := endpoint{addr: addrFlag, tokenFile: tokenFlag, tokenFrom: "-token-file"}
	if tokenFlag != "" && tokenFlag == os.Getenv(tokenFileEnv) {
		ep.tokenFrom = "$" + tokenFileEnv
	}
	if ep.addr == "" {
		if ep.addr = os.Getenv(adminEnv); ep.addr != "" {
			ep.from = "$" + adminEnv
		}
	}
	// A configuration is read when -c names one, or when it would give
	// the address.
	var cfg *config.Config
	switch {
	case confPath != "":
		var err error
		if cfg, err = config.Load(confPath); err != nil {
			return ep, &localError{fmt.Errorf("-c: %w (dstctl reads it for admin.socket and admin.token_file; give -admin instead if you cannot read it)", err)}
		}
	case ep.addr == "":
		if _, err := os.Stat(c.systemConfig); err == nil {
			confPath = c.systemConfig
			if cfg, err = config.Load(confPath); err != nil {
				// Not fatal: the default socket may still be right, and
				// the note explains a failure to reach it.
				why := "it is not valid"
				if errors.Is(err, fs.ErrPermission) {
					why = "you may not read it"
				}
				ep.addr = config.AdminSocketOf(c.systemSockets, c.packaged)
				ep.from = fmt.Sprintf("the default; %s exists but %s: give -admin or set $%s", confPath, why, adminEnv)
				return ep, nil
			}
		}
	}
	if cfg != nil {
		if ep.addr == "" {
			ep.addr = cfg.Admin.Socket
			ep.from = "admin.socket of " + confPath
		}
		if ep.tokenFile == "" && cfg.Admin.TokenFile != "" {
			ep.tokenFile, ep.tokenFrom = cfg.Admin.TokenFile, "admin.token_file of "+confPath
		}
	}
	if ep.addr == "" {
		ep.addr = config.AdminSocketOf(c.systemSockets, c.packaged)
		ep.from = "the default: give -admin, $" + adminEnv + " or -c"
	}
	return ep, nil
}

// localError is a failure on this side: a file dstctl cannot read, output
// it cannot write. It exits exitLocal.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

// jsonError is an error as -json prints it on stderr.
type jsonError struct {
	Error      string `json:"error"`
	Exit       int    `json:"exit"`
	HTTPStatus int    `json:"http_status,omitempty"` // dstd's answer, when it gave one
}

// fail prints err and returns its exit status: exitUnreachable when dstd
// could not be reached or did not answer, exitLocal for a *localError,
// exitRefused for anything dstd answered or cut short.
func (c *cli) fail(err error) int {
	code := exitRefused
	var (
		ue     *admin.UnreachableError
		ae     *admin.APIError
		le     *localError
		status int
	)
	switch {
	case errors.As(err, &le):
		code = exitLocal
	case errors.As(err, &ue), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		code = exitUnreachable
	case errors.As(err, &ae):
		status = ae.StatusCode
	}
	c.printError(jsonError{Error: err.Error(), Exit: code, HTTPStatus: status})
	return code
}

func (c *cli) printError(e jsonError) {
	if c.json {
		b, _ := json.Marshal(e) // a struct of strings and ints
		fmt.Fprintf(c.stderr, "%s\n", b)
		return
	}
	fmt.Fprintln(c.stderr, "dstctl:", e.Error)
}

// usageError reports a usage error: the message and how to get help, or
// with -json the message as a JSON error.
func (c *cli) usageError(fs *flag.FlagSet, format string, args ...any) int {
	msg := fmt.Sprintf(format, args...)
	if c.json {
		c.printError(jsonError{Error: msg, Exit: exitUsage})
		return exitUsage
	}
	fmt.Fprintf(c.stderr, "dstctl: %s\n", msg)
	if fs != nil && fs.Name() != "dstctl" {
		fs.SetOutput(c.stderr)
		fs.Usage()
	} else {
		fmt.Fprintf(c.stderr, "run \"dstctl help\" for the commands\n")
	}
	return exitUsage
}

// parseFlags parses fs; ok false: the flags are wrong (or -h), and code is
// the exit status. With -json a wrong flag is a JSON error.
func (c *cli) parseFlags(fs *flag.FlagSet, args []string) (ok bool, code int) {
	var msgs bytes.Buffer
	fs.SetOutput(&msgs)
	err := fs.Parse(args)
	fs.SetOutput(c.stderr)
	switch {
	case err == nil:
		return true, exitOK
	case errors.Is(err, flag.ErrHelp):
		io.Copy(c.stderr, &msgs)
		return false, exitOK
	case c.json:
		c.printError(jsonError{Error: err.Error(), Exit: exitUsage})
	default:
		io.Copy(c.stderr, &msgs) // the message and the usage
	}
	return false, exitUsage
}

// parseArgs parses a command's flags, -json among them, and wants exactly
// nargs arguments; ok false: they are wrong, and code is the exit status.
func (c *cli) parseArgs(fs *flag.FlagSet, args []string, nargs int, synopsis string) (ok bool, code int) {
	fs.BoolVar(&c.json, "json", c.json, "print the admin API's JSON answer (docs/API.md)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: dstctl %s [-json]\n", synopsis)
		fs.PrintDefaults()
	}
	// Flags may follow the arguments too (dstctl lookup IP -json): parse
	// what follows each argument again, then leave the arguments alone
	// in fs.Args.
	var pos []string
	for {
		if ok, code := c.parseFlags(fs, args); !ok {
			return false, code
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if err := fs.Parse(append([]string{"--"}, pos...)); err != nil {
		return false, c.usageError(fs, "%v", err) // cannot happen: no flags
	}
	if fs.NArg() != nargs {
		what := "no argument"
		if nargs == 1 {
			what = "one argument"
		}
		return false, c.usageError(fs, "%s wants %s", fs.Name(), what)
	}
	return true, exitOK
}

// ipArg parses a command's IP argument; ok false: it is not one, the
// usage error is printed and code is the exit status.
func (c *cli) ipArg(s string) (ip netip.Addr, code int, ok bool) {
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, c.usageError(nil, "%q is not an IPv4 or IPv6 address", s), false
	}
	return ip.Unmap(), 0, true
}

// emit prints a command's answer: v as one line of JSON with -json, else
// the text that text writes. It returns the exit status: exitOK, or
// exitLocal when the output cannot be written. A command that adds its
// own (peers' subcommands) uses it the same way.
func (c *cli) emit(v any, text func() error) int {
	var err error
	if c.json {
		err = json.NewEncoder(c.stdout).Encode(v)
	} else {
		err = text()
	}
	if err != nil {
		return c.fail(&localError{fmt.Errorf("writing the answer: %w", err)})
	}
	return exitOK
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

// versionInfo is version's -json answer.
type versionInfo struct {
	Program  string `json:"program"`
	Version  string `json:"version"`
	Revision string `json:"revision,omitempty"`
	Time     string `json:"time,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go,omitempty"`
}

func (c *cli) version(args []string) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if ok, code := c.parseArgs(fs, args, 0, "version"); !ok {
		return code
	}
	bi := buildinfo.Read()
	return c.emit(versionInfo{Program: "dstctl", Version: bi.Version, Revision: bi.Revision, Time: bi.Time, Modified: bi.Modified, Go: bi.Go},
		func() error {
			_, err := fmt.Fprintln(c.stdout, buildinfo.Line("dstctl"))
			return err
		})
}

func (c *cli) status(ctx context.Context, args []string) int {
	s, code, ok := fetch(ctx, c, args, "status", c.c.Status)
	if !ok {
		return code
	}
	return c.emit(s, func() error {
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
		return tw.Flush()
	})
}

// lookup exits 0 when the address is listed, 1 when not. With -json it
// prints the listing, and nothing when there is none (the API's 404).
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
		if !c.json {
			fmt.Fprintf(c.stdout, "%s is not listed\n", ip)
		}
		return exitNo
	}
	return c.emit(l, func() error {
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
		return tw.Flush()
	})
}

// list streams: each listing is written as it arrives, through a buffer,
// never gathered. That is why it uses fixed-width columns instead of
// tabwriter, which holds every line until it has seen them all. With
// -json it writes the API's JSON lines, one listing per line.
func (c *cli) list(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("list", flag.ContinueOnError)
	if ok, code := c.parseArgs(fs, args, 0, "list"); !ok {
		return code
	}
	w := bufio.NewWriter(c.stdout)
	enc := json.NewEncoder(w)
	n := 0
	var werr error // a failed write is ours, not dstd's
	err := c.c.List(ctx, func(l admin.Listing) error {
		n++
		if c.json {
			werr = enc.Encode(l)
		} else {
			_, werr = fmt.Fprintf(w, "%-15s  until %s  hits %-4d  %s  %s\n", l.IP, fmtTime(l.Expires), l.Hits,
				orNone(strings.Join(l.Origins, ",")), orNone(l.LastMessageID))
		}
		return werr
	})
	if ferr := w.Flush(); werr == nil {
		werr = ferr
	}
	if werr != nil {
		return c.fail(&localError{fmt.Errorf("writing the listings: %w", werr)})
	}
	if err != nil {
		return c.fail(err)
	}
	if n == 0 && !c.json {
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
	return c.emit(r, func() error {
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
		_, err := fmt.Fprintf(c.stdout, msg+"\n", r.IP)
		return err
	})
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
	return c.emit(r, func() error {
		var here string
		switch {
		case r.Delisted:
			here = "delisted here"
		case r.Listed:
			here = "still listed by " + strings.Join(r.Origins, ", ")
		default:
			here = "was not listed here"
		}
		_, err := fmt.Fprintf(c.stdout, "cancelled %s (report about %s): %s; cancel %s sent to the peers\n", r.MessageID, r.IP, here, r.Cancel)
		return err
	})
}

func (c *cli) queues(ctx context.Context, args []string) int {
	qs, code, ok := fetch(ctx, c, args, "queues", c.c.Queues)
	if !ok {
		return code
	}
	return c.emit(qs, func() error {
		if len(qs) == 0 {
			_, err := fmt.Fprintln(c.stdout, "no actions configured")
			return err
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
		return tw.Flush()
	})
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
	return c.emit(r, func() error {
		_, err := fmt.Fprintf(c.stdout, "DNS UPDATE zone resynchronised: %d listings, %d names were in the zone; %d added, %d fixed, %d removed\n",
			r.Wanted, r.Present, r.Added, r.Fixed, r.Removed)
		return err
	})
}

func (c *cli) keys(ctx context.Context, args []string) int {
	ks, code, ok := fetch(ctx, c, args, "keys", c.c.Keys)
	if !ok {
		return code
	}
	return c.emit(ks, func() error {
		// The columns are those of a keyring line, so a line can be
		// compared with what a peer sent, or copied.
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
		return tw.Flush()
	})
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
