// Command dstc is DST's trap client. An MTA runs it for each message sent to
// a spam-trap address; it finds the address of the host that handed the
// message to the site's MX and reports it to the local dstd, or spools the
// report when dstd is down. It never makes the MTA bounce the message.
//
// See README.md ("dstc") for flags, exit codes and MTA wiring.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/dst-traps/dst/internal/config"
	"github.com/dst-traps/dst/internal/logging"
	"github.com/dst-traps/dst/internal/mailmsg"
	"github.com/dst-traps/dst/internal/nntp"
	"github.com/dst-traps/dst/internal/received"
	"github.com/dst-traps/dst/internal/report"
	"github.com/dst-traps/dst/internal/spool"
)

const version = "0.1.0"

// Exit codes, from sysexits.h: MTAs know them.
const (
	exitOK       = 0
	exitUsage    = 64 // EX_USAGE
	exitTempFail = 75 // EX_TEMPFAIL: the MTA keeps the message and retries
)

// systemSpool is the spool of a system dstd (README documents the defaults).
const systemSpool = "/var/spool/dst"

// defaultSpool is the spool of the dstd this user most likely submits to:
// the system one when it exists (a trap user on a real site) or when
// running as root; else the per-user one a dstd run by this user without a
// configuration uses, so that dstd and dstc run as oneself just work.
func defaultSpool() string {
	if os.Geteuid() == 0 {
		return systemSpool
	}
	if _, err := os.Stat(systemSpool); err == nil {
		return systemSpool
	}
	return config.DefaultSpoolDir()
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

type options struct {
	mx, trusted  listFlag
	dryRun       bool
	verbose      bool
	server       string
	spoolDir     string
	logMode      string
	maxMessage   int
	timeout      time.Duration
	printVersion bool
}

func parseFlags(args []string, stderr io.Writer) (*options, *received.Site, error) {
	o := &options{}
	fs := flag.NewFlagSet("dstc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: dstc -m MX-GLOB [-m ...] [-t CIDR ...] [-n] [-v] [-s ADDR] [-spool DIR] < message\n\n"+
			"Reports the address that handed a trapped message to the site's MX.\n\n")
		fs.PrintDefaults()
	}
	fs.Var(&o.mx, "m", "glob (case-insensitive) of the site's MX host names, e.g. 'mx[12].example.net'; repeatable, at least one")
	fs.Var(&o.trusted, "t", "CIDR of the site's own hosts, trusted whatever their names; repeatable")
	fs.BoolVar(&o.dryRun, "n", false, "dry run: print the report article on stdout, submit nothing")
	fs.BoolVar(&o.verbose, "v", false, "log each Received field as it is walked")
	fs.StringVar(&o.server, "s", "", "dstd's NNTP address: the path of its Unix socket, or host:port (then dstd's nntp.post_allow must list this host) (default: nntp.sock in the -spool directory)")
	fs.StringVar(&o.spoolDir, "spool", defaultSpool(), "spool directory: dstd's submission socket is there, and reports are written there when dstd cannot be reached")
	fs.StringVar(&o.logMode, "log", "auto", "where to log: auto (stderr on a terminal, else syslog), stderr, syslog")
	fs.IntVar(&o.maxMessage, "max-message", mailmsg.DefaultLimits().MaxKeep, "largest message carried whole in the report; larger ones carry their header only")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "time allowed for submitting to dstd")
	fs.BoolVar(&o.printVersion, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if o.server == "" {
		// "unix:" keeps a relative -spool a socket path, not a host.
		o.server = "unix:" + config.SubmitSocket(o.spoolDir)
	}
	if o.printVersion {
		return o, nil, nil
	}
	if fs.NArg() > 0 {
		return nil, nil, fmt.Errorf("unexpected argument %q (the message is read from stdin)", fs.Arg(0))
	}
	if len(o.mx) == 0 {
		return nil, nil, errors.New("at least one -m MX-GLOB is needed: dstc only trusts Received fields written by the site's MX")
	}
	if _, err := logging.ParseMode(o.logMode); err != nil {
		return nil, nil, err
	}
	if o.maxMessage < 0 {
		return nil, nil, errors.New("-max-message must not be negative")
	}
	var prefixes []netip.Prefix
	for _, c := range o.trusted {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			if a, aerr := netip.ParseAddr(c); aerr == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			} else {
				return nil, nil, fmt.Errorf("-t %s: not a CIDR: %w", c, err)
			}
		}
		prefixes = append(prefixes, p.Masked())
	}
	site, err := received.NewSite(o.mx, prefixes)
	if err != nil {
		return nil, nil, fmt.Errorf("-m: %w", err)
	}
	return o, site, nil
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) (code int) {
	o, site, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "dstc:", err)
		}
		// Still drain the pipe: an MTA that sees EPIPE reports a failure
		// of its own on top of ours.
		io.Copy(io.Discard, stdin)
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if o.printVersion {
		fmt.Fprintln(stdout, "dstc", version)
		return exitOK
	}
	mode, _ := logging.ParseMode(o.logMode)
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	log, closeLog := logging.New("dstc", mode, level, stderr)
	defer closeLog()
	defer func() {
		// A panic would exit 2 and make the MTA bounce the trapped
		// message to its forged sender. Ask for a retry instead.
		if r := recover(); r != nil {
			log.Error("internal error, asking the MTA to retry", "panic", fmt.Sprint(r))
			code = exitTempFail
		}
	}()

	lim := mailmsg.DefaultLimits()
	lim.MaxKeep = o.maxMessage
	msg, err := mailmsg.Read(stdin, lim)
	if err != nil {
		log.Error("cannot read the message; the MTA will retry", "err", err)
		return exitTempFail
	}
	if msg.HeaderTruncated {
		log.Warn("header section larger than the limit, only its beginning was read", "limit", lim.MaxHeader)
	}
	fields := received.Fields(msg.Header)
	for i, f := range fields {
		if i >= received.MaxHops || !o.verbose {
			break
		}
		h, err := received.Parse(f)
		own, why := site.Own(h)
		log.Debug("Received field", "n", i+1, "client", h.IP, "name", h.ReverseName, "verified", h.NameVerified,
			"helo", h.Helo, "by", h.By, "mta", h.MTA, "own", own, "why", why, "err", err)
	}
	ans, err := site.Source(fields)
	if err != nil {
		log.Info("nothing to report", "reason", err, "size", msg.Size)
		return exitOK
	}

	host, _ := os.Hostname()
	hit := report.Hit{
		SourceIP:  ans.IP,
		Arrival:   time.Now(),
		Host:      host,
		UserAgent: "dstc/" + version,
		Message:   msg.Whole,
	}
	if hit.Message == nil {
		hit.Message, hit.HeadersOnly = msg.Header, true
	}
	art, err := report.New(hit)
	if err != nil {
		log.Error("cannot build the report; the MTA will retry", "ip", ans.IP, "err", err)
		return exitTempFail
	}
	wire := art.Bytes()
	id := art.Get("Message-ID")

	if o.dryRun {
		// On a terminal, LF line ends read better; the article is the same.
		stdout.Write(bytes.ReplaceAll(wire, []byte("\r\n"), []byte("\n")))
		log.Info("dry run: report not submitted", "ip", ans.IP, "received_field", ans.Index+1, "by", ans.Hop.By)
		return exitOK
	}
	return submit(ctx, log, o, ans.IP, id, wire)
}

// submit posts the report to dstd, or spools it. Only when both fail does
// the MTA get EX_TEMPFAIL and keep the message for a retry.
func submit(ctx context.Context, log *slog.Logger, o *options, ip netip.Addr, id string, wire []byte) int {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	postErr := post(ctx, o.server, o.timeout, wire)
	if postErr == nil {
		log.Info("reported", "ip", ip, "message_id", id, "dstd", o.server)
		return exitOK
	}
	var ne *nntp.Error
	if errors.As(postErr, &ne) && ne.Permanent() {
		// dstd read the report and refused it (duplicate, policy): it
		// has decided, and a retry would be refused the same way.
		log.Warn("dstd refused the report", "ip", ip, "message_id", id, "dstd", o.server, "err", postErr)
		return exitOK
	}
	path, spoolErr := spool.Put(o.spoolDir, wire)
	if spoolErr == nil {
		log.Info("dstd not reachable, report spooled", "ip", ip, "message_id", id, "dstd", o.server, "post_err", postErr, "file", path)
		return exitOK
	}
	log.Error("cannot submit nor spool the report; the MTA will retry", "ip", ip, "dstd", o.server, "post_err", postErr, "spool_err", spoolErr)
	return exitTempFail
}

func post(ctx context.Context, addr string, timeout time.Duration, wire []byte) error {
	c, err := nntp.Dial(ctx, addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Post(ctx, wire)
}
