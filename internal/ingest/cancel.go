package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/dst-traps/dst/internal/article"
	"github.com/dst-traps/dst/internal/report"
	"github.com/dst-traps/dst/internal/store"
)

// acceptCancel stores a control article whose signature and Date accept
// checked. Only the cancelled report's origin may cancel it; the store
// decides that in the transaction that applies it, so a cancel and its
// report arriving at once cannot both slip past the check.
func (in *Ingester) acceptCancel(a *article.Article, msgID string, raw []byte, signer, from string, relayed bool, now time.Time) (Verdict, store.CancelResult) {
	target, err := report.ParseCancel(a)
	if err != nil {
		return in.refuse(msgID, from, refused("malformed", "%v", err)), store.CancelResult{}
	}
	p := store.CancelParams{Now: now, Threshold: in.o.Listing.Threshold, OperatorOf: in.keyring.Load().Operator}
	res, err := in.o.Store.Cancel(store.Cancel{MessageID: msgID, Target: target, Signer: signer, Article: raw, Path: a.Get("Path")}, p)
	if err != nil {
		in.o.Log.Error("cannot store a cancel", "message_id", msgID, "err", err)
		v := Verdict{Kind: Later, Reason: "internal error: cannot store"}
		in.count(v)
		return v, res
	}
	switch res.Outcome {
	case store.CancelDuplicate:
		v := Verdict{Kind: Duplicate, Reason: "already seen"}
		in.count(v)
		return v, res
	case store.CancelRefused:
		// The store has recorded the Message-ID as refused.
		v := refused("cancel-origin", "cancel of %s signed by %s, but only its origin %s may cancel it", target, signer, res.Origin)
		in.count(v)
		in.noteRefusal(msgID, from, v)
		in.o.Log.Warn("cancel refused", "message_id", msgID, "from", from, "cancels", target, "reason", v.Reason)
		return v, res
	}
	if in.o.Metrics != nil {
		in.o.Metrics.ReportsAccepted.Inc()
	}
	in.o.Log.Info("cancel accepted", "message_id", msgID, "cancels", target, "signer", signer, "from", from,
		"relayed", relayed, "outcome", res.Outcome.String(), "ip", res.IP, "delisted", res.Delisted,
		"origins_left", res.Listing.Origins)
	return Verdict{Kind: Accepted, Reason: "stored"}, res
}

// ErrCannotCancel wraps the errors of InjectCancel that are the request's
// fault (unknown report, another site's, already cancelled), not the site's.
var ErrCannotCancel = errors.New("cannot cancel")

// CancelReport is what InjectCancel did.
type CancelReport struct {
	MessageID string     // the control article's
	IP        netip.Addr // the cancelled report's Source-IP
	// Delisted: the listing went. Otherwise, if Listed, the origins that
	// still list the address here.
	Delisted, Listed bool
	Origins          []string
}

// InjectCancel makes this site withdraw one of its own reports: it builds
// the cancel control article, signs it and accepts it like any cancel, so
// it is applied here and flooded. A report this site did not originate, or
// does not have, is an error the administrator can read.
func (in *Ingester) InjectCancel(_ context.Context, target string) (CancelReport, error) {
	if !article.ValidMessageID(target) {
		return CancelReport{}, fmt.Errorf("%w: %q is not a Message-ID (one looks like <unique@site.example>)", ErrCannotCancel, target)
	}
	info, ok, err := in.o.Store.ReportOf(target)
	if err != nil {
		return CancelReport{}, err
	}
	switch {
	case !ok:
		return CancelReport{}, fmt.Errorf("%w: no accepted report %s in the history of this site", ErrCannotCancel, target)
	case !strings.EqualFold(info.Origin, in.o.Site): // d= is stored lower case
		return CancelReport{}, fmt.Errorf("%w: report %s was originated by %s, not by this site (%s): only its origin can cancel it", ErrCannotCancel, target, info.Origin, in.o.Site)
	case info.Cancelled:
		return CancelReport{}, fmt.Errorf("%w: report %s is already cancelled", ErrCannotCancel, target)
	}
	now := in.o.Now()
	a, err := report.NewCancel(in.o.Site, target, info.IP, now)
	if err != nil {
		return CancelReport{}, err
	}
	id := a.Get("Message-ID")
	signed, err := in.o.Signer.Sign(a.Bytes())
	if err != nil {
		return CancelReport{}, fmt.Errorf("cannot sign the cancel: %w", err)
	}
	if in.o.Metrics != nil {
		in.o.Metrics.ReportsReceived.Inc()
	}
	v, res := in.acceptLocal(id, signed)
	if v.Kind != Accepted || res.Outcome != store.CancelApplied {
		return CancelReport{}, fmt.Errorf("cancel %s of %s not applied: %s", id, target, orOutcome(v, res))
	}
	return CancelReport{MessageID: id, IP: res.IP, Delisted: res.Delisted, Listed: res.Listed, Origins: slices.Clone(res.Listing.Origins)}, nil
}

// acceptLocal runs a freshly signed control article through the same
// checks as a relayed one (signature with the site's own key, Date).
func (in *Ingester) acceptLocal(msgID string, raw []byte) (Verdict, store.CancelResult) {
	a, err := article.Parse(raw, in.o.Limits)
	if err != nil {
		return in.refuse(msgID, "dstctl cancel", refusal(err)), store.CancelResult{}
	}
	signer, err := in.keyring.Load().Verify(raw)
	if err != nil {
		return in.refuse(msgID, "dstctl cancel", refused("signature", "signature: %v", err)), store.CancelResult{}
	}
	return in.acceptCancel(a, msgID, raw, signer, "dstctl cancel", false, in.o.Now())
}

func orOutcome(v Verdict, res store.CancelResult) string {
	if v.Kind == Accepted {
		return res.Outcome.String()
	}
	return v.Reason
}
