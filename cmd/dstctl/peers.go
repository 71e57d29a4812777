package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dst-traps/dst/internal/admin"
)

// peerTestTimeout covers a test's connection and each answer, which dstd
// bounds at a minute each, with room to spare.
const peerTestTimeout = 3 * time.Minute

// peers runs "dstctl peers" and its subcommands refeed, flush and test.
func (c *cli) peers(ctx context.Context, args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "refeed":
			return c.peersRefeed(ctx, args[1:])
		case "flush":
			return c.peersFlush(ctx, args[1:])
		case "test":
			return c.peersTest(ctx, args[1:])
		}
	}
	ps, code, ok := fetch(ctx, c, args, "peers", c.c.Peers)
	if !ok {
		return code
	}
	if ps == nil {
		ps = []admin.PeerStatus{}
	}
	return c.emit(ps, func() error {
		if len(ps) == 0 {
			_, err := fmt.Fprintln(c.stdout, "no peers configured")
			return err
		}
		return c.printPeers(ps)
	})
}

// printPeers writes the outgoing feeds, then the incoming peers, each a
// table followed by what does not fit in one: TLS details, refusals,
// kept reports.
func (c *cli) printPeers(ps []admin.PeerStatus) error {
	var out, in []admin.PeerStatus
	for _, p := range ps {
		if p.Outgoing || p.Addr != "" { // Addr alone: a dstd from before "outgoing"
			out = append(out, p)
		}
		if p.Incoming != nil {
			in = append(in, p)
		}
	}
	if len(out) == 0 {
		fmt.Fprintln(c.stdout, "no outgoing feeds configured")
	} else {
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "PEER\tADDRESS\tSTATE\tWAITING\tSENT\tREFUSED\tDEFERRED\tSKIPPED\tKEPT\tTLS\tLAST SUCCESS\tLAST ERROR")
		for _, p := range out {
			state := "disconnected"
			if p.Connected {
				state = "connected (IHAVE)"
				if p.Streaming {
					state = "connected (streaming)"
				}
			}
			lastErr := "-"
			if p.LastError != "" {
				lastErr = fmtTime(p.LastErrorTime) + " " + oneLine(p.LastError)
			}
			tlsCol := "-" // not connected yet: the configured mode is below
			if p.TLS != nil {
				tlsCol = shortTLS(*p.TLS)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", p.Name, p.Addr, state, p.Depth, p.Sent, p.Refused, p.Deferred,
				p.Skipped, p.Kept, tlsCol, fmtTime(p.LastSuccess), lastErr)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, p := range out {
			if p.TLS != nil && p.TLS.State == "tls" {
				fmt.Fprintf(c.stdout, "  %s: %s\n", p.Name, longTLS(*p.TLS))
			} else if p.TLS == nil && p.TLSMode != "" {
				fmt.Fprintf(c.stdout, "  %s: not connected yet (tls = %s)\n", p.Name, p.TLSMode)
			}
			if !p.RetryAt.IsZero() {
				fmt.Fprintf(c.stdout, "  %s: reconnects at %s; to try now: dstctl peers flush %s\n", p.Name, fmtTime(p.RetryAt), p.Name)
			}
			if len(p.Refusals) > 0 {
				fmt.Fprintf(c.stdout, "  %s refused: %s\n", p.Name, refusalsLine(p.Refusals))
			}
			if p.Kept > 0 {
				fmt.Fprintf(c.stdout, "  %s: %d refused reports kept; once the peer has fixed its keyring or clock: dstctl peers refeed %s\n",
					p.Name, p.Kept, p.Name)
			}
		}
	}
	if len(in) == 0 {
		return nil
	}
	fmt.Fprintln(c.stdout)
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INCOMING\tSESSIONS\tFROM\tTLS\tACCEPTED\tREFUSED\tLAST SEEN")
	for _, p := range in {
		i := p.Incoming
		from, tlsCol := "-", "-"
		if len(i.Connections) > 0 {
			var addrs, tlss []string
			for _, cn := range i.Connections {
				addrs = append(addrs, cn.Addr)
				tlss = append(tlss, shortTLS(cn.TLS))
			}
			from, tlsCol = strings.Join(addrs, ","), strings.Join(uniq(tlss), ",")
		} else if i.LastAddr != "" {
			from = "(last) " + i.LastAddr
			if i.LastTLS != nil {
				tlsCol = shortTLS(*i.LastTLS)
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\t%s\n", p.Name, len(i.Connections), from, tlsCol, i.Accepted, i.Refused, fmtTime(i.LastSeen))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range in {
		i := p.Incoming
		for _, cn := range i.Connections {
			if cn.TLS.State == "tls" {
				fmt.Fprintf(c.stdout, "  %s from %s: %s\n", p.Name, cn.Addr, longTLS(cn.TLS))
			}
		}
		if len(i.Refusals) > 0 {
			fmt.Fprintf(c.stdout, "  %s refused here: %s\n", p.Name, refusalsLine(i.Refusals))
		}
	}
	return nil
}

// shortTLS is a connection's protection in a table cell.
func shortTLS(t admin.TLSState) string {
	if t.State == "tls" && t.Version != "" {
		return t.Version
	}
	return orNone(t.State)
}

// longTLS is all of it, the certificate's fingerprint included, to
// compare with the peer's (openssl x509 -noout -fingerprint -sha256).
func longTLS(t admin.TLSState) string {
	s := t.Version + " " + t.Cipher
	if t.CertSHA256 != "" {
		s += ", certificate sha256:" + t.CertSHA256
		if t.CertSubject != "" {
			s += " (" + t.CertSubject + ")"
		}
	}
	return s
}

func refusalsLine(rs []admin.RefusalCount) string {
	var parts []string
	for _, r := range rs {
		last := oneLine(r.LastText)
		if r.LastCode != 0 {
			last = fmt.Sprintf("%d %s", r.LastCode, last)
		}
		parts = append(parts, fmt.Sprintf("%s %d (last: %s)", r.Reason, r.Count, last))
	}
	return strings.Join(parts, "; ")
}

func uniq(ss []string) []string {
	var out []string
	for _, s := range ss {
		if len(out) == 0 || out[len(out)-1] != s {
			out = append(out, s)
		}
	}
	return out
}

func (c *cli) peersRefeed(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("peers refeed", flag.ContinueOnError)
	reason := fs.String("reason", "all", "which refused reports: keyring, clock or all")
	if ok, code := c.parseArgs(fs, args, 1, "peers refeed [-reason keyring|clock|all] NAME"); !ok {
		return code
	}
	switch *reason {
	case "keyring", "clock", "all":
	default:
		return c.usageError(fs, "-reason %q: use keyring, clock or all (only those refusals are kept)", *reason)
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	r, err := c.c.Refeed(ctx, fs.Arg(0), *reason)
	if err != nil {
		return c.fail(err)
	}
	return c.emit(r, func() error {
		what := "refused reports"
		if r.Reason != "all" {
			what = "reports refused for a " + r.Reason + " reason"
		}
		still := ""
		if r.Kept > 0 {
			still = fmt.Sprintf("; %d still kept", r.Kept)
		}
		_, err := fmt.Fprintf(c.stdout, "%d %s offered again to %s%s\n", r.Refed, what, r.Peer, still)
		return err
	})
}

func (c *cli) peersFlush(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("peers flush", flag.ContinueOnError)
	if ok, code := c.parseArgs(fs, args, 1, "peers flush NAME"); !ok {
		return code
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	r, err := c.c.Flush(ctx, fs.Arg(0))
	if err != nil {
		return c.fail(err)
	}
	return c.emit(r, func() error {
		_, err := fmt.Fprintf(c.stdout, "feed to %s flushed: connecting now, %d deferred reports due; see dstctl peers\n", r.Peer, r.Due)
		return err
	})
}

// peersTest exits 0 when the round trip worked, exitNo when it did not.
func (c *cli) peersTest(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("peers test", flag.ContinueOnError)
	if ok, code := c.parseArgs(fs, args, 1, "peers test NAME"); !ok {
		return code
	}
	ctx, cancel := context.WithTimeout(ctx, peerTestTimeout)
	defer cancel()
	r, err := c.c.TestPeer(ctx, fs.Arg(0))
	if err != nil {
		return c.fail(err)
	}
	code := c.emit(r, func() error {
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		for _, s := range r.Steps {
			res := "ok"
			if s.Error != "" {
				res = "FAILED: " + oneLine(s.Error)
			}
			detail := ""
			if s.Detail != "" {
				detail = " (" + oneLine(s.Detail) + ")"
			}
			fmt.Fprintf(tw, "%s\t%.1f ms\t%s%s\n", s.Step, s.DurationMS, res, detail)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		verdict := "ok, round trip in"
		if !r.OK {
			verdict = "FAILED after"
		}
		_, err := fmt.Fprintf(c.stdout, "%s at %s: %s %.1f ms\n", r.Peer, r.Addr, verdict, r.DurationMS)
		return err
	})
	if code == exitOK && !r.OK {
		code = exitNo
	}
	return code
}
