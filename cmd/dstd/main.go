// Command dstd is DST's site daemon: it takes spam-trap reports from dstc
// and from peer sites over NNTP, checks and stores them, and acts on them.
//
//	dstd [-c FILE]             run (no file: embedded defaults)
//	dstd keygen [-c FILE]      create the site's DKIM key, print its public record
//	dstd check [-c FILE] [-n]  check the configuration (-n: print it), no side effects
//	dstd version
//
// SIGHUP reloads the configuration file, SIGUSR1 resynchronises the DNS
// UPDATE server's zone, SIGTERM and SIGINT stop dstd. The daemon itself is
// package internal/site. See README.md ("dstd") and examples/dstd.toml.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/dst-traps/dst/internal/buildinfo"
	"github.com/dst-traps/dst/internal/check"
	"github.com/dst-traps/dst/internal/config"
	"github.com/dst-traps/dst/internal/dnsbl"
	"github.com/dst-traps/dst/internal/heapfloor"
	"github.com/dst-traps/dst/internal/sdnotify"
	"github.com/dst-traps/dst/internal/site"
	"github.com/dst-traps/dst/internal/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := ""
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("dstd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	confPath := fs.String("c", "", "configuration file (TOML); none: embedded defaults")
	printConf := fs.Bool("n", false, "check: print the effective configuration as TOML")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: dstd [-c FILE]          run the site daemon\n"+
			"       dstd keygen [-c FILE]   create the site's DKIM key and print what to give peers\n"+
			"       dstd check [-c FILE] [-n]\n"+
			"                               check the configuration and the files it names, changing\n"+
			"                               nothing; run it as the user that runs dstd (-n: print it)\n"+
			"       dstd version\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "dstd: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	switch cmd {
	case "version":
		fmt.Fprintln(stdout, buildinfo.Line("dstd"))
		return 0
	case "check":
		return check.Main(*confPath, *printConf, stdout, stderr)
	case "keygen", "":
	default:
		fmt.Fprintf(stderr, "dstd: unknown command %q\n", cmd)
		fs.Usage()
		return 2
	}
	cfg, err := config.Load(*confPath)
	if err != nil {
		fmt.Fprintln(stderr, "dstd:", err)
		return 1
	}
	if cmd == "keygen" {
		if err := site.Keygen(cfg, stdout); err != nil {
			fmt.Fprintln(stderr, "dstd keygen:", err)
			return 1
		}
		return 0
	}
	if err := serve(ctx, cfg, *confPath, stderr); err != nil {
		fmt.Fprintln(stderr, "dstd:", err)
		return 1
	}
	return 0
}

// serve runs the site until ctx ends, turning SIGHUP and SIGUSR1 into
// Reload and RequestResync. Under systemd (Type=notify) it says READY=1
// once every listener is served, RELOADING=1 and READY=1 around a reload,
// and STOPPING=1 when it stops.
func serve(ctx context.Context, cfg *config.Config, confPath string, stderr io.Writer) error {
	log, closeLog := site.NewLogger(cfg.Log, stderr)
	defer closeLog()
	if len(cfg.DNS.Listen) > 0 {
		if n := dnsbl.SpareP(); n > 0 {
			log.Debug("GOMAXPROCS raised by one for the DNS server's UDP readers (set GOMAXPROCS to choose)", "gomaxprocs", n)
		}
	}
	if k := heapfloor.Keep(heapfloor.Default); k != nil {
		defer k.Stop()
		log.Debug("garbage collection waits for a heap of at least the floor (set GOGC to choose)", "floor_mib", heapfloor.Default>>20)
	}
	if store.Unsynced {
		log.Warn("this dstd was built with the dstexp_unsynced tag: its commits are not synced to disk, and a crash can lose acknowledged reports; it is for measurements, never for a site")
	}
	notify := sdnotify.FromEnv()
	tell := func(err error) {
		if err != nil {
			log.Warn("cannot notify systemd", "err", err)
		}
	}
	// Subscribe before the site exists, so that a signal sent as soon as
	// the start is logged is not lost to the default action.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	s, err := site.New(cfg, site.WithLogger(log), site.WithVersion(buildinfo.Read().String()), site.WithConfigPath(confPath),
		site.WithReady(func() { tell(notify.Ready()) }))
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopping := ctx.Done()
	for {
		select {
		case err := <-done:
			// Run may return before this loop saw ctx end (both ready
			// at once): systemd is told all the same.
			if stopping != nil {
				tell(notify.Stopping())
			}
			return err
		case <-stopping:
			tell(notify.Stopping())
			stopping = nil // Run is shutting down: wait for done
		case sig := <-sigs:
			if sig == syscall.SIGUSR1 {
				s.RequestResync()
				continue
			}
			tell(notify.Reloading())
			if c, err := config.Load(confPath); err != nil {
				log.Error("reload failed, keeping the running configuration", "err", err)
			} else {
				s.Reload(c) // logs what it did, or why not
			}
			// Running on, with the new configuration or the old one.
			tell(notify.Ready())
		}
	}
}
