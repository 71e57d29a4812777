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

	"github.com/dst-traps/dst/internal/buildinfo"
	"github.com/dst-traps/dst/internal/classify"
	"github.com/dst-traps/dst/internal/config"
	"github.com/dst-traps/dst/internal/logging"
	"github.com/dst-traps/dst/internal/mailmsg"
	"github.com/dst-traps/dst/internal/nntp"
	"github.com/dst-traps/dst/internal/received"
	"github.com/dst-traps/dst/internal/redact"
	"github.com/dst-traps/dst/internal/report"
	"github.com/dst-traps/dst/internal/spool"
)

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

// defaultTimeout bounds a whole run: reading the message, submitting,
// spooling. A message comes from the MTA over a local pipe, tens of MB in
// well under a second, and dstd answers in milliseconds, so 30 s is ample
// on a loaded host; it is also far below every MTA's own limit for a pipe
// (Postfix: command_time_limit, 1000 s; Exim: the pipe transport's timeout,
// 1 h), so dstc stops by itself and says why in its log instead of being
// killed by the MTA.
const defaultTimeout = 30 * time.Second

func main() {
	ctx, stop := stopOnSignal(context.Background())
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// stopOnSignal returns a context cancelled on SIGTERM (an MTA ending a
// delivery that takes too long, or shutting down; an administrator's kill)
// or SIGINT (^C), with the signal's name as its cause for the log.
// Catching the signals, rather than dying of them, is what lets dstc remove
// a half-written spool file and exit 75; run must then return promptly.
func stopOnSignal(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		select {
		case s := <-sigs:
			name := "SIGTERM"
			if s == syscall.SIGINT {
				name = "SIGINT"
			}
			cancel(fmt.Errorf("%s received (the MTA or an administrator stopped dstc)", name))
		case <-ctx.Done():
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		cancel(nil)
	}
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
	logMode      logging.Mode
	maxMessage   int
	maxArticle   int
	timeout      time.Duration
	printVersion bool
	// trap is -r: the trap address, when the MTA passes it on the command
	// line (Postfix pipe(8): -r ${original_recipient}).
	trap string
	// secretFile holds the site's trap secret; secretSet says -secret was
	// given, so that a missing file is an error rather than "no hash".
	secretFile string
	secretSet  bool
	// trapHash is -trap-hash: print the hash of this address and exit.
	trapHash string
	// sender is -f: the envelope sender, when the MTA passes it on the
	// command line (Postfix pipe(8): -f ${sender}); senderSet says -f was
	// given, since an empty value is the null sender.
	sender    string
	senderSet bool
	// confPath is -c: dstd's configuration, read for -spool, -s and
	// -max-article when they are not given (the *Set fields say which).
	confPath                           string
	serverSet, spoolSet, maxArticleSet bool
}

func parseFlags(args []string, stderr io.Writer) (*options, *received.Site, error) {
	o := &options{}
	fs := flag.NewFlagSet("dstc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: dstc -m MX-GLOB [-m ...] [-t CIDR ...] [-r TRAP] [-f SENDER] [-secret FILE] [-n] [-v] [-c DSTD.TOML | -s ADDR -spool DIR] < message\n"+
			"       dstc -trap-hash TRAP [-secret FILE]\n\n"+
			"Reports the address that handed a trapped message to the site's MX.\n\n")
		fs.PrintDefaults()
	}
	fs.Var(&o.mx, "m", "glob (case-insensitive) of the site's MX host names, e.g. 'mx[12].example.net'; repeatable, at least one")
	fs.Var(&o.trusted, "t", "CIDR of the site's own hosts, trusted whatever their names; repeatable")
	fs.BoolVar(&o.dryRun, "n", false, "dry run: print the report article on stdout, submit nothing")
	fs.BoolVar(&o.verbose, "v", false, "log each Received field as it is walked")
	fs.StringVar(&o.server, "s", "", "dstd's NNTP address: the path of its Unix socket, or host:port (then dstd's nntp.post_allow must list this host) (default: -c's nntp.socket, else nntp.sock in the -spool directory)")
	fs.StringVar(&o.spoolDir, "spool", "", "spool directory: dstd's submission socket is there, and reports are written there when dstd cannot be reached (default: -c's spool_dir, else "+defaultSpool()+")")
	fs.StringVar(&o.confPath, "c", "", "dstd's configuration file: -spool, -s and -max-article default to its spool_dir, nntp.socket and nntp.max_article_bytes; it must be readable by the user dstc runs as")
	fs.TextVar(&o.logMode, "log", logging.Auto, "where to log: auto (stderr on a terminal, else syslog), stderr, syslog")
	fs.IntVar(&o.maxMessage, "max-message", mailmsg.DefaultLimits().MaxKeep, "largest message carried whole in the report; larger ones carry their header only")
	fs.IntVar(&o.maxArticle, "max-article", config.DefaultMaxArticleBytes, "largest report dstd takes (its nntp.max_article_bytes); a report that would be larger carries the message's header only")
	fs.DurationVar(&o.timeout, "timeout", defaultTimeout, "time allowed for the whole run: reading the message, submitting to dstd, spooling; past it dstc exits 75 and the MTA retries")
	fs.StringVar(&o.trap, "r", "", "the trap address the message was sent to (default: $ORIGINAL_RECIPIENT, else $RECIPIENT, else $LOCAL_PART@$DOMAIN, as Postfix local(8) and Exim's pipe transport set them); the report names it only by its keyed hash, and it is redacted from the message")
	fs.StringVar(&o.sender, "f", "", "the envelope sender (default: $SENDER, as Postfix local(8) and Exim's pipe transport set it); empty, <> or MAILER-DAEMON is the null sender of a bounce, which is reported as backscatter and not listed by default")
	fs.StringVar(&o.secretFile, "secret", redact.DefaultSecretFile, "file holding the site's trap secret, readable by the trap user only; without it the report does not say which trap was hit")
	fs.StringVar(&o.trapHash, "trap-hash", "", "print the DST-Trap-HMAC value of this trap address under -secret and exit, to find which trap a report names")
	fs.BoolVar(&o.printVersion, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "secret":
			o.secretSet = true
		case "f":
			o.senderSet = true
		case "s":
			o.serverSet = true
		case "spool":
			o.spoolSet = true
		case "max-article":
			o.maxArticleSet = true
		}
	})
	if o.trapHash != "" {
		if fs.NArg() > 0 {
			return nil, nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
		}
		return o, nil, nil
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
	if o.timeout <= 0 {
		return nil, nil, errors.New("-timeout must be positive, e.g. 30s")
	}
	if o.maxArticle < 4096 {
		return nil, nil, errors.New("-max-article must be at least 4096, as dstd's nntp.max_article_bytes")
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
		// of its own on top of ours. But not for ever: the input may be
		// endless, and a signal must still stop dstc.
		dctx, cancel := context.WithTimeout(ctx, defaultTimeout)
		_, derr := readAll(dctx, stdin, func(r io.Reader) (struct{}, error) {
			_, err := io.Copy(io.Discard, r)
			return struct{}{}, err
		})
		cancel()
		if ctx.Err() != nil && errors.Is(derr, ctx.Err()) {
			fmt.Fprintln(stderr, "dstc: stopped:", context.Cause(ctx))
			return exitTempFail
		}
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if o.printVersion {
		fmt.Fprintln(stdout, buildinfo.Line("dstc"))
		return exitOK
	}
	if o.trapHash != "" {
		secret, err := redact.LoadSecret(o.secretFile)
		if err != nil {
			fmt.Fprintln(stderr, "dstc:", err)
			return exitUsage
		}
		h, err := redact.TrapHMAC(secret, o.trapHash)
		if err != nil {
			fmt.Fprintln(stderr, "dstc: -trap-hash:", err)
			return exitUsage
		}
		fmt.Fprintln(stdout, h)
		return exitOK
	}
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	log, closeLog := logging.New("dstc", o.logMode, level, stderr)
	defer closeLog()
	defer func() {
		// A panic would exit 2 and make the MTA bounce the trapped
		// message to its forged sender. Ask for a retry instead.
		if r := recover(); r != nil {
			log.Error("internal error, asking the MTA to retry", "panic", fmt.Sprint(r))
			code = exitTempFail
		}
	}()

	// -timeout bounds the whole run, reading included: a message that
	// never ends (/dev/zero) or an MTA that stalls mid-message must not
	// keep dstc, and the MTA's delivery, waiting.
	ctx, cancel := context.WithTimeoutCause(ctx, o.timeout,
		fmt.Errorf("-timeout %s reached (raise -timeout if messages legitimately take longer)", o.timeout))
	defer cancel()

	lim := mailmsg.DefaultLimits()
	lim.MaxKeep = o.maxMessage
	msg, err := readAll(ctx, stdin, func(r io.Reader) (*mailmsg.Message, error) { return mailmsg.Read(r, lim) })
	if ctx.Err() != nil {
		return stopped(ctx, log, "while reading the message, nothing reported")
	}
	if err != nil {
		log.Error("cannot read the message; the MTA will retry", "err", err)
		return exitTempFail
	}
	// Read once the message is: exiting before it would leave the MTA
	// writing to a closed pipe, an error of its own on top of ours.
	if err := o.locate(); err != nil {
		// The message is safe with the MTA until the file is fixed.
		log.Error("cannot read dstd's configuration (-c); the MTA will retry", "err", err)
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

	// What kind of hit: a bounce or an auto-reply is reported with its
	// class, which sites do not list by default; mail from a client that
	// logged in at the MX is a customer's and is never reported.
	sender, senderKnown := o.sender, o.senderSet
	if !senderKnown {
		sender, senderKnown = os.LookupEnv("SENDER")
	}
	cls := classify.Classify(classify.Input{Header: msg.Header, MXField: ans.Index, Sender: sender, SenderKnown: senderKnown})
	if cls.Class == classify.Authenticated {
		log.Info("not reported: the client authenticated at the MX, so it is a user of this site, not a spammer's host",
			"ip", ans.IP, "received_field", ans.Index+1, "why", cls.Reason)
		return exitOK
	}
	if cls.Class != classify.Spam {
		log.Info("classified", "class", cls.Class, "why", cls.Reason, "ip", ans.IP)
	}

	// The trap: named by its hash only, and redacted from the message.
	trap, trapAddrs := trapAddresses(o.trap, os.Getenv)
	var trapHMAC string
	if _, err := redact.Normalize(o.trap); o.trap != "" && err != nil {
		// Not a usage error: exit 64 would make the MTA bounce the
		// message to its forged sender. The address is not logged.
		log.Warn("-r is not of the form local-part@domain (or has a control character or several @); ignored")
	}
	if trap == "" {
		log.Warn("trap address unknown: only the recipient fields and Received \"for\" clauses are redacted, the body may still name the trap; give -r ADDR or run dstc from the MTA's alias, .forward or pipe (README \"Wiring a trap into your MTA\")")
	} else {
		secret, err := redact.LoadSecret(o.secretFile)
		switch {
		case err == nil:
			trapHMAC, _ = redact.TrapHMAC(secret, trap) // trap is valid: trapAddresses checked it
		case errors.Is(err, redact.ErrNoSecret) && !o.secretSet:
			log.Info("the report does not say which trap was hit", "why", err)
		default:
			log.Error("cannot use the trap secret; the MTA will retry", "err", err)
			return exitTempFail
		}
	}
	red := redact.New(trapAddrs...)

	host, _ := os.Hostname()
	hit := report.Hit{
		SourceIP:  ans.IP,
		Arrival:   time.Now(),
		Host:      host,
		UserAgent: "dstc/" + buildinfo.Release,
		TrapHMAC:  trapHMAC,
	}
	if cls.Class != classify.Spam {
		// Spam is the class of a report without the field: the common
		// report stays as older sites and dstc versions write it.
		hit.Class = string(cls.Class)
	}
	if msg.Whole != nil {
		hit.Message = red.Message(msg.Whole)
	} else {
		hit.Message, hit.HeadersOnly = red.Message(msg.Header), true
	}
	art, err := report.New(hit)
	if err != nil {
		log.Error("cannot build the report; the MTA will retry", "ip", ans.IP, "err", err)
		return exitTempFail
	}
	if !hit.HeadersOnly && len(art.Bytes()) > o.maxArticle {
		// The message fit -max-message, but the report around it (CRLF
		// line ends, the ARF parts) would exceed what dstd takes: dstd
		// would refuse it and the hit would be lost. Its header section
		// is all a report needs.
		log.Info("report too large with the whole message, sending its header only", "size", len(art.Bytes()), "max_article", o.maxArticle)
		hit.Message, hit.HeadersOnly = red.Message(msg.Header), true
		if art, err = report.New(hit); err != nil {
			log.Error("cannot build the report; the MTA will retry", "ip", ans.IP, "err", err)
			return exitTempFail
		}
	}
	wire := art.Bytes()
	id := art.Get("Message-ID")

	if o.dryRun {
		// On a terminal, LF line ends read better; the article is the same.
		stdout.Write(bytes.ReplaceAll(wire, []byte("\r\n"), []byte("\n")))
		log.Info("dry run: report not submitted", "ip", ans.IP, "received_field", ans.Index+1, "by", ans.Hop.By, "trap_hmac", trapHMAC, "class", cls.Class)
		return exitOK
	}
	return submit(ctx, log.With("trap_hmac", trapHMAC, "class", cls.Class), o, ans.IP, id, wire)
}

// locate fills in what -s, -spool and -max-article did not give: from
// dstd's configuration (-c) when there is one, so that the MTA's command
// line need not repeat it, else the defaults.
func (o *options) locate() error {
	var cfg *config.Config
	if o.confPath != "" {
		var err error
		if cfg, err = config.Load(o.confPath); err != nil {
			return fmt.Errorf("-c: %w (dstc reads spool_dir and nntp.socket there: make the file readable by this user, or give -spool and -s instead)", err)
		}
	}
	if !o.spoolSet {
		o.spoolDir = defaultSpool()
		if cfg != nil {
			o.spoolDir = cfg.SpoolDir
		}
	}
	if !o.serverSet {
		if cfg != nil {
			o.server = "unix:" + cfg.NNTP.Socket
		} else {
			// "unix:" keeps a relative -spool a socket path, not a host.
			o.server = "unix:" + config.SubmitSocket(o.spoolDir)
		}
	}
	if !o.maxArticleSet && cfg != nil {
		o.maxArticle = int(cfg.NNTP.MaxArticleBytes)
	}
	return nil
}

// trapAddresses returns the trap address the report names by its hash
// (-r, else what the MTA put in the environment) and every valid address
// the MTA gave, all redacted from the message: with an alias or .forward,
// Postfix's ORIGINAL_RECIPIENT is the trap and RECIPIENT the local user it
// was aliased to, which the Delivered-To field names too.
//
//   - Postfix local(8) (alias and .forward pipes): ORIGINAL_RECIPIENT, the
//     address before any rewriting or aliasing (Postfix 2.5 and later), and
//     RECIPIENT. Postfix pipe(8) exports neither: pass -r
//     ${original_recipient}.
//   - Exim's pipe transport: RECIPIENT (prefix, local part, suffix and
//     domain of the address delivered, or of the one an alias or .forward
//     expanded), LOCAL_PART and DOMAIN.
func trapAddresses(flagR string, getenv func(string) string) (trap string, all []string) {
	cands := []string{flagR, getenv("ORIGINAL_RECIPIENT"), getenv("RECIPIENT")}
	if lp, d := getenv("LOCAL_PART"), getenv("DOMAIN"); lp != "" && d != "" {
		cands = append(cands, lp+"@"+d)
	}
	for _, c := range cands {
		n, err := redact.Normalize(c)
		if c == "" || err != nil {
			continue
		}
		if trap == "" {
			trap = n
		}
		all = append(all, n)
	}
	return trap, all
}

// submit posts the report to dstd, or spools it. Only when both fail, or
// dstc is stopped before the report is safely in one or the other, does the
// MTA get EX_TEMPFAIL and keep the message for a retry.
func submit(ctx context.Context, log *slog.Logger, o *options, ip netip.Addr, id string, wire []byte) int {
	// A dstd that takes the connection and then hangs must not use up the
	// time spooling needs: the post gets all but a third of -timeout.
	postCtx, cancel := ctx, context.CancelFunc(func() {})
	if dl, ok := ctx.Deadline(); ok {
		postCtx, cancel = context.WithDeadline(ctx, dl.Add(-o.timeout/3))
	}
	postErr := post(postCtx, o.server, o.timeout, wire)
	cancel()
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
	if ctx.Err() != nil {
		// The report may or may not have reached dstd; the MTA's retry
		// makes a new one, and a hit counted twice costs less than one
		// lost.
		return stopped(ctx, log, "while submitting the report to dstd, nothing spooled")
	}
	path, spoolErr := spool.PutContext(ctx, o.spoolDir, wire)
	if spoolErr == nil {
		// Even when a signal came meanwhile: the report is complete in
		// new/, so the message is dealt with.
		log.Info("dstd not reachable, report spooled", "ip", ip, "message_id", id, "dstd", o.server, "post_err", postErr, "file", path)
		return exitOK
	}
	if ctx.Err() != nil {
		return stopped(ctx, log, "while spooling the report, nothing left in the spool")
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

// stopped logs why dstc gave up before the report was safely handed over
// (a signal, or -timeout) and asks the MTA to retry later.
func stopped(ctx context.Context, log *slog.Logger, what string) int {
	log.Error("stopped "+what+"; exit 75: the MTA keeps the message and retries", "why", context.Cause(ctx).Error())
	return exitTempFail
}

// readAll runs read on r in a goroutine and returns its result, or the
// context's error as soon as ctx is done, even while a read is blocked
// (an MTA that stalls mid-message): a stopped dstc must exit at once. The
// reader it hands to read fails once ctx is done, so that with an endless
// input the goroutine stops too instead of spinning until the exit.
func readAll[T any](ctx context.Context, r io.Reader, read func(io.Reader) (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := read(ctxReader{ctx, r})
		done <- result{v, err}
	}()
	select {
	case res := <-done:
		return res.v, res.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// ctxReader is r that fails with ctx's error once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
