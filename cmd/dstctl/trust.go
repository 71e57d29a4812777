package main

import (
	"context"
	"flag"
	"fmt"
	"text/tabwriter"

	"github.com/dst-traps/dst/internal/admin"
)

// origins shows each origin's record: what its reports did here, and what
// it counts for now.
func (c *cli) origins(ctx context.Context, args []string) int {
	os, code, ok := fetch(ctx, c, args, "origins", c.c.Origins)
	if !ok {
		return code
	}
	return c.emit(os, func() error {
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ORIGIN\tOPERATOR\tSTATE\tWEIGHT\tREPORTS\tCORROBORATED\tDELISTED BY ADMIN\tHELD\tLAST REPORT")
		for _, o := range os {
			state := o.State
			if state != "trusted" {
				state = fmt.Sprintf("%s (%d/%d corroborated)", state, o.Earned, o.Needed)
			}
			if !o.InKeyring {
				state += ", key from DNS"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%g\t%d\t%d (%.0f%%)\t%d of %d addresses (%.0f%%)\t%d\t%s\n",
				o.Origin, o.Operator, state, o.Weight, o.Reports, o.Corroborated, 100*o.CorroboratedShare,
				o.Disputed, o.Addresses, 100*o.DisputedShare, o.Held, fmtTime(o.Last))
		}
		return tw.Flush()
	})
}

// why shows every report of an address this site holds: who reported it,
// when, how, and with what evidence.
func (c *cli) why(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("why", flag.ContinueOnError)
	if ok, code := c.parseArgs(fs, args, 1, "why IP"); !ok {
		return code
	}
	ip, code, ok := c.ipArg(fs.Arg(0))
	if !ok {
		return code
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	res, err := c.c.Why(ctx, ip)
	if err != nil {
		return c.fail(err)
	}
	if !res.Listed && len(res.Reports) == 0 {
		// Exit 1, like lookup: nothing here. -json still prints the
		// answer, which says so.
		if code := c.emit(res, func() error {
			_, err := fmt.Fprintf(c.stdout, "%s is not listed, and no report of it is held here\n", res.IP)
			return err
		}); code != exitOK {
			return code
		}
		return exitNo
	}
	return c.emit(res, func() error { return c.whyText(res) })
}

func (c *cli) whyText(res admin.WhyResult) error {
	if res.Listed {
		fmt.Fprintf(c.stdout, "%s is listed until %s (%d hits)\n", res.IP, fmtTime(res.Listing.Expires), res.Listing.Hits)
	} else {
		fmt.Fprintf(c.stdout, "%s is not listed\n", res.IP)
	}
	for _, r := range res.Reports {
		counts := "counted"
		switch {
		case r.RelayOnly:
			counts = "not counted: stored to relay only (" + r.RelayReason + ")"
		case r.Probation:
			counts = "not counted: origin on probation"
		case r.Held:
			counts = "held: origin over its rate cap"
		}
		if r.Corroborated {
			counts += ", corroborated"
		}
		fmt.Fprintf(c.stdout, "\n%s\n", r.MessageID)
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		row := func(k, v string) { fmt.Fprintf(tw, "  %s\t%s\n", k, v) }
		row("origin", r.Origin)
		row("operator", r.Operator)
		row("time", fmtTime(r.Time))
		row("class", r.Class)
		row("signature", oneLine(r.Signature))
		row("status", counts)
		row("evidence", orNone(oneLine(r.Received)))
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}
