// Package ingest is where a report enters a site: it injects reports posted
// by the local trap client (RFC 5537 §3.5: Message-ID, Date, Path, DKIM
// signature) and checks every article, local or relayed, before one store
// transaction records it (docs/PROTOCOL.md §2.7).
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dst-traps/dst/internal/arf"
	"github.com/dst-traps/dst/internal/article"
	"github.com/dst-traps/dst/internal/classify"
	"github.com/dst-traps/dst/internal/dkim"
	"github.com/dst-traps/dst/internal/metrics"
	"github.com/dst-traps/dst/internal/policy"
	"github.com/dst-traps/dst/internal/report"
	"github.com/dst-traps/dst/internal/store"
)

// Kind is the outcome of offering or submitting an article.
type Kind int

// The outcomes; the NNTP layer maps each to the code of the command.
const (
	Accepted  Kind = iota + 1 // stored durably (or, for Offer: wanted)
	Duplicate                 // already seen: nothing done
	Refused                   // checked and refused: recorded, counted
	Later                     // temporary failure: try again
)

// Verdict is an outcome with the reason given to the sender and the log.
type Verdict struct {
	Kind   Kind
	Reason string
	// Refusal is the metrics label of a refusal (signature, date, ...).
	Refusal string
	// Fixable: refused for a reason this site's administrator can fix
	// (a key missing from the keyring or out of date, a Date outside the
	// window: a clock). Such a Message-ID is not remembered, so that the
	// sender may offer the report again once it is fixed (dstctl peers
	// refeed).
	Fixable bool
}

func refused(label, format string, a ...any) Verdict {
	return Verdict{Kind: Refused, Refusal: label, Reason: fmt.Sprintf(format, a...)}
}

// Options are the Ingester's dependencies and settings.
type Options struct {
	Site   string
	Store  *store.DB
	Signer *dkim.Signer
	Limits article.Limits
	// HistoryKeep bounds how old an article's Date may be; MaxFuture how
	// far ahead (clock skew).
	HistoryKeep, MaxFuture time.Duration
	// Listing carries ExpireBase, ExpireMax, Threshold and Window; Now
	// is filled per report. Where the events of a report go is the
	// store's business (store.DB.Subscribe), and so is telling what
	// changed (store.DB.OnCommit).
	Listing store.IngestParams
	// NewOriginProbation is policy.new_origin = "probation": an origin
	// whose key came from DNS, not the keyring file, starts on probation.
	NewOriginProbation bool
	// PeerNames are the names of the configured peers ([[peer]] name).
	// A relayed article whose Path starts with one of them came from that
	// peer: peers that share an address are known by the first one's
	// name until they authenticate.
	PeerNames []string
	Metrics   *metrics.Metrics
	Log       *slog.Logger
	Now       func() time.Time
	// OnRefuse, if set, is told of every refused article or report (not
	// of duplicates nor of temporary failures): the status page's list of
	// the last refusals. It must be quick; it runs in the request.
	OnRefuse func(Refusal)
}

// Refusal is one refused article, as Options.OnRefuse is told of it.
type Refusal struct {
	Time      time.Time
	MessageID string // "" when the article had none that could be read
	From      string // the peer's name, or the local poster
	Label     string // the metrics label: signature, date, policy, ...
	Reason    string // as given to the sender and logged
}

// noteRefusal tells Options.OnRefuse of a refusal.
func (in *Ingester) noteRefusal(msgID, from string, v Verdict) {
	if in.o.OnRefuse != nil && v.Kind == Refused {
		in.o.OnRefuse(Refusal{Time: in.o.Now(), MessageID: msgID, From: from, Label: v.Refusal, Reason: v.Reason})
	}
}

// Ingester checks and stores reports. Keyring and Policy can be replaced
// while it runs (SIGHUP).
type Ingester struct {
	o       Options
	keyring atomic.Pointer[dkim.Keyring]
	policy  atomic.Pointer[policy.Policy]
	// misnamed holds the peers already warned about (checkPeerName),
	// so that the warning comes once per peer and run, not per article.
	misnamed sync.Map
	// receiving holds the Message-IDs being accepted now, each with a
	// channel closed when that is done (see accept).
	receivingMu sync.Mutex
	receiving   map[string]chan struct{}
}

// New returns an Ingester with its initial keyring and policy.
func New(o Options, kr *dkim.Keyring, p *policy.Policy) *Ingester {
	if o.Now == nil {
		o.Now = time.Now
	}
	in := &Ingester{o: o, receiving: make(map[string]chan struct{})}
	in.keyring.Store(kr)
	in.policy.Store(p)
	return in
}

// SetKeyring replaces the keyring (reload).
func (in *Ingester) SetKeyring(k *dkim.Keyring) { in.keyring.Store(k) }

// Keyring is the keyring reports are verified with now.
func (in *Ingester) Keyring() *dkim.Keyring { return in.keyring.Load() }

// SetPolicy replaces the policy (reload, allow-list change).
func (in *Ingester) SetPolicy(p *policy.Policy) { in.policy.Store(p) }

// Policy returns the policy in force.
func (in *Ingester) Policy() *policy.Policy { return in.policy.Load() }

// Offer answers "do you want this article?" (IHAVE, CHECK).
func (in *Ingester) Offer(msgID string) Verdict {
	if !article.ValidMessageID(msgID) {
		return refused("malformed", "malformed Message-ID")
	}
	seen, err := in.o.Store.Seen(msgID)
	if err != nil {
		in.o.Log.Error("history lookup failed", "message_id", msgID, "err", err)
		return Verdict{Kind: Later, Reason: "internal error"}
	}
	if seen {
		return Verdict{Kind: Duplicate, Reason: "already seen"}
	}
	return Verdict{Kind: Accepted, Reason: "send it"}
}

// begin claims msgID for one accept at a time and returns the function
// that releases it, or the verdict when the article need not be accepted
// (it is in the history). In a mesh the same report comes over several
// links at once: each peer sent it (TAKETHIS alone) or asked (CHECK)
// before any copy was stored, so each was told to send it. Without this, every copy would be verified
// and go through a write transaction of its own, a commit and an fsync
// that a site's next report then waits behind, only for the store to find
// the Message-ID in the history. Here the later copies wait for the
// first, then find it in the history and are refused as duplicates (439)
// without writing; if the first was not stored (refused, deferred), the
// next goes ahead as if it had come first, so no report is lost.
func (in *Ingester) begin(ctx context.Context, msgID string) (done func(), v Verdict) {
	for {
		if v := in.Offer(msgID); v.Kind != Accepted {
			return nil, v
		}
		in.receivingMu.Lock()
		busy, ok := in.receiving[msgID]
		if !ok {
			ch := make(chan struct{})
			in.receiving[msgID] = ch
			in.receivingMu.Unlock()
			return func() {
				in.receivingMu.Lock()
				delete(in.receiving, msgID)
				in.receivingMu.Unlock()
				close(ch)
			}, Verdict{Kind: Accepted}
		}
		in.receivingMu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return nil, Verdict{Kind: Later, Reason: "shutting down"}
		}
	}
}

// Inject turns a report posted by a local trap client into a signed article
// of this site and accepts it. The poster is "local poster on the Unix
// socket", "spool", ... for the log. A control article is refused
// (controlField): only InjectCancel makes those.
func (in *Ingester) Inject(ctx context.Context, raw []byte, poster string) (string, Verdict) {
	if in.o.Metrics != nil {
		in.o.Metrics.ReportsReceived.Inc()
	}
	a, err := article.Parse(raw, in.o.Limits)
	if err != nil {
		return "", in.refuse("", poster, refusal(err))
	}
	if f := controlField(a); f != "" {
		return "", in.refuseControl(a, f, poster)
	}
	if !hasGroup(a.Get("Newsgroups")) {
		return "", in.refuse("", poster, refused("malformed", "not a DST report: Newsgroups must be %s", report.Newsgroup))
	}
	now := in.o.Now()
	id := a.Get("Message-ID")
	if !article.ValidMessageID(id) {
		// The poster did not propose one (RFC 5537 §3.5 lets the
		// injecting agent supply it).
		id = article.NewMessageID(in.o.Site)
	}
	a.Set("Message-ID", id)
	if d, err := mail.ParseDate(a.Get("Date")); err != nil || d.After(now.Add(in.o.MaxFuture)) || d.Before(now.Add(-in.o.HistoryKeep)) {
		a.Set("Date", now.UTC().Format(time.RFC1123Z))
	}
	// The site speaks for the report; a poster cannot sign for it.
	a.Set("From", "DST <dst@"+in.o.Site+">")
	a.Set("Path", in.o.Site+"!"+article.DefaultPathTail)
	a.Del("DKIM-Signature")
	signed, err := in.o.Signer.Sign(a.Bytes())
	if errors.Is(err, dkim.ErrMalformed) {
		// The poster's article cannot be signed as it is (a required
		// field missing, one repeated): a retry would fail the same way,
		// and a spooled copy would be retried for ever.
		return id, in.refuse("", poster, refused("malformed", "%v", err))
	}
	if err != nil {
		in.o.Log.Error("cannot sign a report", "message_id", id, "err", err)
		return id, Verdict{Kind: Later, Reason: "internal error: cannot sign"}
	}
	return id, in.accept(ctx, id, signed, poster, false)
}

// Receive checks and stores an article relayed by a peer (IHAVE, TAKETHIS).
// msgID is the one the peer announced; it must be the article's.
func (in *Ingester) Receive(ctx context.Context, msgID string, raw []byte, peer string) Verdict {
	if in.o.Metrics != nil {
		in.o.Metrics.ReportsReceived.Inc()
	}
	return in.accept(ctx, msgID, raw, peer, true)
}

func (in *Ingester) accept(ctx context.Context, msgID string, raw []byte, from string, relayed bool) Verdict {
	if relayed {
		// A feed sends a small article with TAKETHIS without asking
		// first (no CHECK), so copies of one report arrive over every
		// link of a mesh: the history answers for the repeats before
		// anything is parsed or verified, with the one lookup that
		// begin makes.
		done, v := in.begin(ctx, msgID)
		switch v.Kind {
		case Accepted:
			defer done()
		case Refused:
			return in.refuse(msgID, from, v)
		default:
			in.count(v)
			return v
		}
	}
	a, err := article.Parse(raw, in.o.Limits)
	if err != nil {
		return in.refuse(msgID, from, refusal(err))
	}
	if got := a.Get("Message-ID"); got != msgID {
		return in.refuse(msgID, from, refused("malformed", "article's Message-ID %s is not the announced %s", got, msgID))
	}
	if !relayed {
		done, v := in.begin(ctx, msgID)
		if v.Kind != Accepted {
			in.count(v)
			return v
		}
		defer done()
	}
	if !hasGroup(a.Get("Newsgroups")) {
		return in.refuse(msgID, from, refused("malformed", "not a DST report: Newsgroups must be %s", report.Newsgroup))
	}
	origin, err := in.keyring.Load().Verify(raw)
	if err != nil {
		v := refused("signature", "signature: %v", err)
		v.Fixable = errors.Is(err, dkim.ErrUnknownKey) || errors.Is(err, dkim.ErrBadSignature)
		return in.refuse(msgID, from, v)
	}
	if relayed {
		in.checkPeerName(from, a.Get("Path"), origin, msgID)
	}
	now := in.o.Now()
	date, err := mail.ParseDate(a.Get("Date"))
	switch {
	case err != nil:
		return in.refuse(msgID, from, refused("date", "unreadable Date %q", a.Get("Date")))
	case date.Before(now.Add(-in.o.HistoryKeep)):
		v := refused("date", "Date %s is older than the history (%s)", date.UTC().Format(time.RFC3339), in.o.HistoryKeep)
		v.Fixable = true
		return in.refuse(msgID, from, v)
	case date.After(now.Add(in.o.MaxFuture)):
		v := refused("date", "Date %s is in the future", date.UTC().Format(time.RFC3339))
		v.Fixable = true
		return in.refuse(msgID, from, v)
	}
	if report.IsControl(a) {
		v, _ := in.acceptCancel(a, msgID, raw, origin, from, relayed, now)
		return v
	}
	fb, err := arf.Parse(a.Get("Content-Type"), a.Body)
	if err != nil {
		return in.refuse(msgID, from, refused("malformed", "feedback report: %v", err))
	}
	ip := fb.SourceIP.Unmap()
	kr := in.keyring.Load()
	p := in.trustParams(kr)
	p.Now = now
	// The class is the origin's, under its signature; a report without
	// one (an older dstc) is spam.
	class := fb.Class
	if class == "" {
		class = string(classify.Spam)
	}
	pol := in.policy.Load()
	if err := pol.Check(ip); err != nil {
		// A special-purpose address is nobody's to list, and this site's
		// own trap hitting its own networks or allow-list is its own
		// business: refused. A peer's report refused for a local reason
		// is still relayed, or one site's allow-list would cut the
		// network behind it off from the report.
		if !relayed || errors.Is(err, policy.ErrSpecial) {
			return in.refuse(msgID, from, refused("policy", "%v", err))
		}
		p.RelayOnly, p.RelayReason = true, err.Error()
		in.o.Log.Info("report relayed, not listed here", "message_id", msgID, "ip", ip, "origin", origin, "from", from, "reason", err.Error(), "class", class)
	}
	unlisted := !pol.Lists(class)
	if unlisted {
		// A bounce or an auto-reply: its sender is most likely an
		// innocent MTA answering spam that forged a trap as its sender.
		// Stored, counted and relayed (each peer applies its own
		// policy.list_classes), never listed here.
		p.RelayOnly = true
		if p.RelayReason == "" {
			p.RelayReason = "policy.list_classes leaves out " + class
		}
	}
	r := store.Report{MessageID: msgID, IP: ip, Origin: origin, Date: date, Article: raw, Path: a.Get("Path"),
		Probation: in.configuredProbation(kr, origin)}
	if class != string(classify.Spam) {
		r.Class = class
	}
	out, l, err := in.o.Store.AddReport(r, p)
	if err != nil {
		in.o.Log.Error("cannot store a report", "message_id", msgID, "err", err)
		v := Verdict{Kind: Later, Reason: "internal error: cannot store"}
		in.count(v)
		return v
	}
	if out == store.Duplicate {
		v := Verdict{Kind: Duplicate, Reason: "already seen"}
		in.count(v)
		return v
	}
	if out == store.Cancelled {
		// The store has recorded the Message-ID as refused.
		v := refused("cancelled", "%s cancelled this report before it arrived", origin)
		in.count(v)
		in.noteRefusal(msgID, from, v)
		in.o.Log.Warn("report refused", "message_id", msgID, "from", from, "ip", ip, "origin", origin, "reason", v.Reason)
		return v
	}
	if in.o.Metrics != nil {
		in.o.Metrics.ReportsAccepted.Inc()
		label := class
		if !classify.IsKnown(classify.Class(class)) {
			// A peer chooses the name: it must not grow the metrics.
			label = "other"
		}
		in.o.Metrics.ReportsByClass.WithLabelValues(label).Inc()
		if unlisted {
			in.o.Metrics.ReportsUnlisted.WithLabelValues(label).Inc()
		}
	}
	if unlisted {
		in.o.Log.Info("report stored and relayed, not listed here: policy.list_classes leaves out its class",
			"message_id", msgID, "ip", ip, "origin", origin, "from", from, "relayed", relayed, "class", class)
	}
	switch out {
	case store.Relayed:
		return Verdict{Kind: Accepted, Reason: "stored to relay; not listed here"}
	case store.Probation:
		in.notListed("probation")
		in.o.Log.Info("report stored and relayed, not listed: its origin is on probation here", "message_id", msgID, "ip", ip,
			"origin", origin, "operator", kr.Operator(origin), "from", from)
		return Verdict{Kind: Accepted, Reason: "stored to relay; origin on probation here"}
	case store.Held:
		in.notListed("rate-cap")
		in.o.Log.Warn("report held pending: its origin is over policy.max_new_listings_per_hour", "message_id", msgID, "ip", ip,
			"origin", origin, "from", from, "max_new_listings_per_hour", p.MaxNewListingsPerHour)
		return Verdict{Kind: Accepted, Reason: "stored; held pending (origin over its rate cap)"}
	}
	in.o.Log.Info("report accepted", "message_id", msgID, "ip", ip, "origin", origin, "from", from,
		"relayed", relayed, "outcome", out.String(), "expires", l.Expires.UTC().Format(time.RFC3339), "class", class)
	return Verdict{Kind: Accepted, Reason: "stored"}
}

// checkPeerName warns, once per peer and run, when the configured name of
// the peer an article came from is neither the first name in its Path
// (every relaying site puts its own name there) nor its signer's (DKIM
// d=): the [[peer]] name is then most likely mistyped, and since this site
// feeds a peer only the reports whose Path lacks its name, every report
// from it would be offered back to it. A Path that starts with another
// configured peer's name is that peer's, sharing an address.
func (in *Ingester) checkPeerName(peer, path, domain, msgID string) {
	if peer == "" {
		return
	}
	head, _, _ := strings.Cut(path, "!")
	head = strings.TrimSpace(head)
	if strings.EqualFold(head, peer) || strings.EqualFold(domain, peer) {
		return
	}
	for _, n := range in.o.PeerNames {
		if strings.EqualFold(head, n) {
			return
		}
	}
	if _, warned := in.misnamed.LoadOrStore(strings.ToLower(peer), true); warned {
		return
	}
	in.o.Log.Warn("a peer's configured name matches neither the Path nor the DKIM d= of what it sends: check the name of its [[peer]] (it must be the peer's site name), or reports from it are offered back to it; told once per peer until dstd restarts",
		"peer", peer, "path_first", head, "dkim_domain", domain, "message_id", msgID)
}

// trustParams are the listing parameters with the keyring in force: the
// operators of the origins, and this site's own origin.
func (in *Ingester) trustParams(kr *dkim.Keyring) store.IngestParams {
	p := in.o.Listing
	p.OperatorOf = kr.Operator
	p.Self = strings.ToLower(in.o.Site)
	return p
}

// configuredProbation tells whether origin starts on probation: its
// keyring line says so, or its key came from DNS and policy.new_origin is
// "probation". This site is never on probation.
func (in *Ingester) configuredProbation(kr *dkim.Keyring, origin string) bool {
	if strings.EqualFold(origin, in.o.Site) {
		return false
	}
	return kr.Probation(origin) || (in.o.NewOriginProbation && !kr.InFile(origin))
}

func (in *Ingester) notListed(reason string) {
	if in.o.Metrics != nil {
		in.o.Metrics.ReportsNotListed.WithLabelValues(reason).Inc()
	}
}

// refuse logs and counts a refusal, and records the Message-ID so that the
// article is not offered again (docs/PROTOCOL.md §2.7), unless the reason
// is one the administrator can fix (Verdict.Fixable).
func (in *Ingester) refuse(msgID, from string, v Verdict) Verdict {
	in.count(v)
	in.noteRefusal(msgID, from, v)
	in.o.Log.Warn("report refused", "message_id", msgID, "from", from, "reason", v.Reason)
	if msgID != "" && article.ValidMessageID(msgID) && !v.Fixable {
		if err := in.o.Store.RecordRefused(msgID, in.o.Now()); err != nil {
			in.o.Log.Error("cannot record a refused Message-ID", "message_id", msgID, "err", err)
		}
	}
	return v
}

func (in *Ingester) count(v Verdict) {
	if in.o.Metrics == nil {
		return
	}
	switch v.Kind {
	case Duplicate:
		in.o.Metrics.ReportsRefused.WithLabelValues("duplicate").Inc()
	case Refused:
		in.o.Metrics.ReportsRefused.WithLabelValues(v.Refusal).Inc()
	case Later:
		in.o.Metrics.ReportsRefused.WithLabelValues("internal").Inc()
	}
}

func refusal(err error) Verdict {
	if errors.Is(err, article.ErrTooLarge) {
		return refused("too-large", "%v", err)
	}
	return refused("malformed", "%v", err)
}

func hasGroup(newsgroups string) bool {
	for _, g := range strings.Split(newsgroups, ",") {
		if strings.TrimSpace(g) == report.Newsgroup {
			return true
		}
	}
	return false
}
