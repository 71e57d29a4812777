// Command dstd is DST's site daemon: it takes spam-trap reports from dstc
// and from peer sites over NNTP, checks and stores them, and acts on them.
//
//	dstd [-c FILE]             run (no file: embedded defaults)
//	dstd keygen [-c FILE]      create the site's DKIM key, print its public record
//	dstd version
//
// See README.md ("dstd") and examples/dstd.toml.
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

	"github.com/dst-traps/dst/internal/config"
)

const version = "0.1.0"

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
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: dstd [-c FILE]          run the site daemon\n"+
			"       dstd keygen [-c FILE]   create the site's DKIM key and print what to give peers\n"+
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
		fmt.Fprintln(stdout, "dstd", version)
		return 0
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
		if err := keygen(cfg, stdout); err != nil {
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
