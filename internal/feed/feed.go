// Package feed sends reports to peers: one Feeder per outgoing peer reads
// the peer's durable queue in the store and offers each report over NNTP,
// streaming (RFC 4644: TAKETHIS alone for a small article, CHECK first for
// a large one) with many commands in flight, or with IHAVE (RFC 3977
// §6.3.2) when the peer does not stream.
//
// A queue item leaves the queue only when the peer has answered for it
// (taken, refused, already had it) or there is nothing left to send (the
// article was pruned, the peer is already in its Path). A lost connection,
// a crash or a restart of either side leaves the item queued, so it is
// offered again: delivery is at least once, and the peer's history turns a
// repeat into a cheap 438. That is also why the acknowledgements are
// committed together, up to Options.AckDelay after the answers, rather
// than one fsync each: one lost in a crash costs a repeat, nothing more.
package feed

import (
	"container/heap"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dst-traps/dst/internal/article"
	"github.com/dst-traps/dst/internal/metrics"
	"github.com/dst-traps/dst/internal/nntp"
	"github.com/dst-traps/dst/internal/retry"
	"github.com/dst-traps/dst/internal/store"
)

// Defaults for the zero values of Peer and Options.
const (
	DefaultWindow      = 64
	DefaultMinBackoff  = time.Second
	DefaultMaxBackoff  = 5 * time.Minute
	DefaultPoll        = 30 * time.Second
	DefaultIdleTimeout = 2 * time.Minute
	DefaultTimeout     = time.Minute
	DefaultAckDelay    = 250 * time.Millisecond
	// DefaultCheckSize is the default Peer.CheckSize. A DST report is
	// about 1.5 KiB: sending one the peer turns out to have costs a few
	// more packets, a CHECK costs a round trip before every article the
	// peer wants, and each round trip wakes both processes (on a busy
	// host that, not the bytes, is the cost of a feed). Up to 16 KiB the
	// article is about a window of TCP on loopback or a LAN, and a full
	// window of them (DefaultWindow·16 KiB = 1 MiB) stays well below
	// the 4 MiB of TAKETHIS articles a dstd peer holds per connection.
	DefaultCheckSize = 16 << 10
)

// maxWindow caps Peer.Window. Answers to commands in flight wait in socket
// buffers and in the peer's memory; a few hundred keeps a long link busy
// without asking a peer (INN's innd included) to hold thousands.
const maxWindow = 1024

// maxSettling bounds the acknowledgements and retries handed to the store
// and not yet committed. They are committed in the background so that the
// feed need not wait for each fsync (the store shares one commit among
// concurrent writers); the bound keeps a slow disk from piling them up.
const maxSettling = 256

// maxAckBatch is the most acknowledgements gathered before they are
// committed without waiting for AckDelay. It is below maxSettling, so
// that settleOp, waiting for room, always has acknowledgements on their
// way to the store rather than waiting for the timer.
const maxAckBatch = maxSettling / 2

// The TLS modes of Peer.TLS.
const (
	TLSNone     = nntp.TLSNone
	TLSStartTLS = nntp.TLSStartTLS
	TLSImplicit = nntp.TLSImplicit
)

// Peer is where a feed goes and how to connect.
type Peer struct {
	Name      string      // the peer's site name, its path-identity in Path
	Addr      string      // host:port of its NNTP server
	TLS       string      // TLSNone, TLSStartTLS or TLSImplicit
	TLSConfig *tls.Config // roots or pinned certificate, client certificate, ServerName
	// Username and Password are for AUTHINFO USER/PASS (RFC 4643), sent
	// only over TLS unless AllowPlaintextAuth.
	Username, Password string
	AllowPlaintextAuth bool
	LocalAddr          string // source address, when the peer admits only one of ours
	// Window is how many CHECK and TAKETHIS commands may await their
	// answer at once when streaming (default DefaultWindow, at most 1024).
	Window int
	// CheckSize: when streaming, an article of at least this many bytes
	// is offered with CHECK and sent with TAKETHIS only if the peer wants
	// it; a smaller one is sent with TAKETHIS at once, as RFC 4644 §2.5
	// allows (and innfeed does in its no-CHECK mode), a duplicate then
	// costing a refused article (439) rather than every wanted one a
	// round trip more. Zero: DefaultCheckSize; negative: CHECK for all.
	CheckSize int
}

// Source is the part of the store a Feeder uses; *store.DB implements it.
type Source interface {
	store.Queue
	// Article returns the stored article, or nil once it has been pruned.
	Article(messageID string) ([]byte, error)
	// QueueMove, QueueTrim and QueueReschedule keep the reports the peer
	// refused for a reason its administrator can fix (refused.go), and
	// make deferred reports due at once (Flush).
	QueueMove(from, to string, seqs []uint64, by string) (int, error)
	QueueTrim(queue string, keep int) (int, error)
	QueueReschedule(queue string, at time.Time) (int, error)
	// QueueAckAll acknowledges many items in one commit, which may wait
	// for another writer's; QueueAckAllNow commits at once.
	QueueAckAll(queue string, seqs []uint64) error
	QueueAckAllNow(queue string, seqs []uint64) error
}

// QueueName is the name of the store queue that holds the reports for peer.
// The store appends to it what Wants takes; the peer's Feeder consumes it.
func QueueName(peer string) string { return "feed/" + peer }

// Wants is the subscription of peer's queue (store.DB.Subscribe): every
// article an event names (a report, listed here or only relayed, and a
// cancel control article), unless its Path names the peer already, who
// then has it. A cancel's update of a listing names no new article.
func Wants(peer string) func(store.Event) bool {
	return func(ev store.Event) bool {
		return ev.Kind == store.EventReport && ev.Cause != store.CauseUpdate && !article.PathContains(ev.Path, peer)
	}
}

// Options tune a Feeder. The zero value works, except that Site is
// required.
type Options struct {
	// Site is this site's path-identity, prepended to Path before sending.
	Site    string
	Log     *slog.Logger     // nil: no logging
	Metrics *metrics.Metrics // nil: no metrics
	// The delay before reconnecting after the n-th failure in a row, and
	// before offering again an article the peer deferred for the n-th
	// time, is MinBackoff·2^(n-1) capped at MaxBackoff, less a random part
	// of up to half so that many feeds do not retry in step (defaults 1s
	// and 5m).
	MinBackoff, MaxBackoff time.Duration
	// Kick wakes the Feeder at once: ingest sends on it (a buffered
	// channel of one, without blocking) after each commit that queued a
	// report for the peer.
	Kick <-chan struct{}
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Poll is the longest the Feeder sleeps without looking at its queue
	// (default 30s): a missed kick costs at most that.
	Poll time.Duration
	// IdleTimeout closes a connection that had nothing to send for this
	// long (default 2m). Reconnecting is cheap; an idle connection held
	// for ever is a slot on the peer.
	IdleTimeout time.Duration
	// Timeout bounds connecting (TLS and AUTHINFO included) and waiting
	// for each answer (default 1m).
	Timeout time.Duration
	// AckDelay is how long the acknowledgements of the reports the peer
	// answered for are gathered before they are committed together
	// (default 250ms). Each commit is an fsync, and a feed acknowledges
	// every report, refused ones included: in a mesh, where each report
	// is offered over every link, one commit per answer made the acks
	// most of a site's fsyncs, and every report waited behind them for
	// the store. An acknowledgement needs no haste: one lost in a crash
	// only makes the report offered again, and the peer refuses the
	// repeat (438). It does not delay the next report.
	AckDelay time.Duration
	// PeerHas, if not nil, reports whether the peer is known to have an
	// article already: it offered it to this site (Offered). Such a
	// report is not offered to it, and is counted in Status.Skipped.
	PeerHas func(messageID string) bool
}

func (o Options) withDefaults() Options {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	o.MaxBackoff = max(o.MaxBackoff, o.MinBackoff)
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.AckDelay <= 0 {
		o.AckDelay = DefaultAckDelay
	}
	return o
}

// Status describes a feed since dstd started, for "dstctl peers".
type Status struct {
	Name          string
	Addr          string
	Connected     bool
	Streaming     bool  // the peer accepted MODE STREAM (else IHAVE)
	Depth         int   // reports in the queue, the last answered until their acknowledgement is committed (Options.AckDelay)
	Sent          int64 // accepted by the peer (239, 235)
	Refused       int64 // refused by it or already there (438, 439, 435, 437), or its name already in Path
	Deferred      int64 // to be offered again (431, 436, connection lost)
	Skipped       int64 // not offered: the peer had offered it to us (Options.PeerHas)
	LastSuccess   time.Time
	LastError     string
	LastErrorTime time.Time
	// TLSMode is the configured mode (TLSNone, TLSStartTLS, TLSImplicit);
	// TLS what the last connection had (zero before the first).
	TLSMode string
	TLS     TLSInfo
	// Refusals counts the peer's refusals by reason (RefusalReason),
	// with its last answer for each.
	Refusals []Refusal
	// Kept is how many refused reports wait in the refused queue for
	// Refeed (at most MaxKept).
	Kept int
	// RetryAt is when the feed reconnects after a failure, while it
	// waits (Flush cuts the wait short); zero otherwise.
	RetryAt time.Time
}

// Feeder feeds one peer. Run does the work; Status may be called from any
// goroutine.
type Feeder struct {
	peer  Peer
	src   Source
	o     Options
	queue string
	log   *slog.Logger

	mu       sync.Mutex
	st       Status
	refusals map[string]*Refusal // by reason

	// poke wakes Run from any wait (Refeed, Flush); flushReq says the
	// poke is a Flush, which also cuts a reconnection backoff short.
	poke     chan struct{}
	flushReq atomic.Bool
	refused  string // the refused queue's name

	// The rest belongs to Run's goroutine, except settled, which the
	// settling goroutines send on.
	busy      map[uint64]bool // items in flight or settling: not to be read again
	nSettling int
	settled   chan settleResult
	settleWG  sync.WaitGroup
	acks      chan uint64 // to the acker goroutine, which commits them together
	retries   retry.Times // when items this Feeder deferred are due again
}

// New makes a Feeder for p reading its queue from src.
func New(p Peer, src Source, o Options) *Feeder {
	if p.Window <= 0 {
		p.Window = DefaultWindow
	}
	p.Window = min(p.Window, maxWindow)
	if p.CheckSize == 0 {
		p.CheckSize = DefaultCheckSize
	}
	o = o.withDefaults()
	return &Feeder{
		peer:     p,
		src:      src,
		o:        o,
		queue:    QueueName(p.Name),
		log:      o.Log.With("peer", p.Name, "addr", p.Addr),
		st:       Status{Name: p.Name, Addr: p.Addr, TLSMode: p.TLS},
		refusals: make(map[string]*Refusal),
		poke:     make(chan struct{}, 1),
		refused:  RefusedQueueName(p.Name),
		busy:     make(map[uint64]bool),
		settled:  make(chan settleResult, maxSettling),
		acks:     make(chan uint64, maxSettling),
	}
}

// Status returns the feed's counters and state now.
func (f *Feeder) Status() Status {
	f.mu.Lock()
	s := f.st
	s.Refusals = f.refusalList()
	f.mu.Unlock()
	if n, err := f.src.QueueDepth(f.queue); err == nil {
		s.Depth = n
	}
	if n, err := f.src.QueueDepth(f.refused); err == nil {
		s.Kept = n
	}
	return s
}

// Run feeds the peer until ctx is done, then returns nil once the
// connection is closed and every acknowledgement is committed. It connects
// when there is something to send, and reconnects with backoff after any
// failure; it returns an error only for a Feeder that cannot work. Call it
// once.
func (f *Feeder) Run(ctx context.Context) error {
	if f.src == nil || f.peer.Name == "" || f.peer.Addr == "" || f.o.Site == "" {
		return fmt.Errorf("feed %q: a feed needs a store, the peer's name and address, and this site's name", f.peer.Name)
	}
	f.settleWG.Add(1)
	go f.acker()
	defer func() {
		close(f.acks) // the acker commits what it holds and ends
		f.settleWG.Wait()
	}()
	f.updateDepth()
	failures := 0
	for ctx.Err() == nil {
		f.takeSettled()
		due, err := f.hasDue()
		if err != nil {
			f.log.Error("cannot read the feed queue; will try again", "err", err)
			f.sleep(ctx, f.o.MinBackoff)
			continue
		}
		if !due {
			f.wait(ctx, time.Time{})
			continue
		}
		progress, err := f.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			failures = 0
			continue
		}
		if progress {
			failures = 0
		}
		failures++
		delay := retry.Backoff(failures, f.o.MinBackoff, f.o.MaxBackoff)
		f.failed(err)
		f.log.Warn("feed to peer failed; will reconnect", "err", err, "retry_in", delay.Round(time.Millisecond))
		f.setRetryAt(f.o.Now().Add(delay))
		if f.sleep(ctx, delay) {
			f.log.Info("reconnecting now: the administrator flushed the feed (dstctl peers flush)")
			failures = 0
		}
		f.setRetryAt(time.Time{})
	}
	return nil
}

// hasDue reports whether an item is waiting and due.
func (f *Feeder) hasDue() (bool, error) {
	items, err := f.src.QueueNext(f.queue, f.o.Now(), 1, f.isBusy)
	return len(items) > 0, err
}

func (f *Feeder) isBusy(seq uint64) bool { return f.busy[seq] }

// session connects, feeds until the queue has been empty for IdleTimeout
// (then nil) or something fails, and closes. progress says whether the peer
// answered for at least one article, which resets the reconnect backoff.
func (f *Feeder) session(ctx context.Context) (progress bool, err error) {
	c, err := nntp.DialWith(ctx, f.peer.Addr, nntp.DialOptions{
		Timeout:            f.o.Timeout,
		LocalAddr:          f.peer.LocalAddr,
		TLS:                f.peer.TLS,
		TLSConfig:          f.peer.TLSConfig,
		Username:           f.peer.Username,
		Password:           f.peer.Password,
		AllowPlaintextAuth: f.peer.AllowPlaintextAuth,
	})
	if err != nil {
		return false, err
	}
	f.flushReq.Store(false) // connected: a flush asked for before is done
	streaming, err := c.ModeStream(ctx)
	if err != nil {
		c.Close()
		return false, err
	}
	ti := describeClientTLS(c, f.peer.Addr)
	f.mu.Lock()
	f.st.TLS = ti
	f.mu.Unlock()
	f.setConnected(true, streaming)
	f.log.Info("connected to peer", "streaming", streaming, "tls", ti.String())
	if streaming {
		progress, err = f.stream(ctx, c)
	} else {
		progress, err = f.ihave(ctx, c)
	}
	if cerr := c.Close(); cerr != nil && err == nil && ctx.Err() == nil {
		f.log.Debug("closing the connection to the peer", "err", cerr)
	}
	f.setConnected(false, streaming)
	switch {
	case ctx.Err() != nil:
		f.log.Info("disconnected from peer: shutting down")
	case err != nil:
		f.log.Info("disconnected from peer", "err", err)
	default:
		f.log.Info("disconnected from peer: idle", "idle_timeout", f.o.IdleTimeout)
	}
	return progress, err
}

// flight is an article offered or sent and not yet answered.
type flight struct {
	seq      uint64
	attempts int
	id       string
	art      []byte // with our name in Path
}

type readResult struct {
	r   nntp.Result
	err error
}

// stream feeds over a streaming session: TAKETHIS at once for each item
// smaller than Peer.CheckSize, CHECK for the others and TAKETHIS for each
// 238, with up to Window commands unanswered (a TAKETHIS after a 238 takes
// its CHECK's place). A second goroutine reads
// the answers, so sending never waits for reading (and a full window of
// answers can never block the peer while we are busy writing).
func (f *Feeder) stream(ctx context.Context, c *nntp.Client) (progress bool, err error) {
	window := f.peer.Window
	rctx, stopReader := context.WithCancel(ctx)
	results := make(chan readResult, window+1) // never blocks the reader: at most window answers, then one error
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			r, err := c.NextResult(rctx)
			results <- readResult{r, err}
			if err != nil {
				return
			}
		}
	}()
	// Commands on the wire, oldest first: answers come in this order.
	var onWire []*flight
	defer func() {
		stopReader()
		<-readerDone
		// What was in flight stays queued, to be offered again.
		for _, fl := range onWire {
			delete(f.busy, fl.seq)
		}
		if err != nil && ctx.Err() == nil && len(onWire) > 0 {
			f.count(outcomeDeferred, int64(len(onWire)))
		}
	}()

	lastActive := f.o.Now()
	for {
		f.takeSettled()
		// Refill when half the window is free, so commands go out in
		// batches rather than one per answer.
		if free := window - len(onWire); free >= (window+1)/2 || len(onWire) == 0 {
			fls, err := f.next(free)
			if err != nil {
				return progress, err
			}
			if len(fls) > 0 {
				// Commands go out in the order of fls, as the answers
				// will come: consecutive CHECKs in one write, and
				// consecutive TAKETHIS in one.
				onWire = append(onWire, fls...)
				if err := sendRefill(ctx, c, fls, f.peer.CheckSize); err != nil {
					return progress, err
				}
				lastActive = f.o.Now()
			}
		}
		if len(onWire) == 0 {
			if f.wait(ctx, lastActive.Add(f.o.IdleTimeout)) {
				return progress, nil // idle
			}
			if ctx.Err() != nil {
				return progress, nil
			}
			continue
		}

		var rr readResult
		select {
		case rr = <-results:
		case s := <-f.settled:
			f.takeSettled1(s)
			continue
		case <-f.o.Kick:
			continue
		case <-f.poke:
			continue
		case <-ctx.Done():
			return progress, nil
		}
		fl := onWire[0]
		onWire = onWire[1:]
		if rr.err != nil {
			onWire = append([]*flight{fl}, onWire...) // still queued
			var ne *nntp.Error
			if errors.As(rr.err, &ne) && ne.Code == 400 {
				return progress, fmt.Errorf("peer %s deferred %s and closed the session: %w", f.peer.Name, fl.id, rr.err)
			}
			return progress, rr.err
		}
		if rr.r.MsgID != fl.id { // the client checks the order; this is a bug of ours
			onWire = append([]*flight{fl}, onWire...)
			return progress, fmt.Errorf("feed: answer about %s while expecting one about %s", rr.r.MsgID, fl.id)
		}
		progress = true
		lastActive = f.o.Now()
		switch {
		case rr.r.Command == "CHECK" && rr.r.Kind() == nntp.Accept:
			onWire = append(onWire, fl)
			if err := c.TakeThis(ctx, fl.id, fl.art); err != nil {
				return progress, err
			}
		default:
			f.outcome(fl, rr.r)
		}
	}
}

// sendRefill sends the commands for fls in their order: CHECK for an
// article of at least checkSize bytes (for all if checkSize is negative),
// TAKETHIS for the others, each run of one kind in one flush.
func sendRefill(ctx context.Context, c *nntp.Client, fls []*flight, checkSize int) error {
	var ids []string
	var offers []nntp.Offer
	flush := func() error {
		switch {
		case len(ids) > 0:
			err := c.Check(ctx, ids...)
			ids = ids[:0]
			return err
		case len(offers) > 0:
			err := c.TakeThese(ctx, offers...)
			offers = offers[:0]
			return err
		}
		return nil
	}
	for _, fl := range fls {
		check := checkSize < 0 || len(fl.art) >= checkSize
		if (check && len(offers) > 0) || (!check && len(ids) > 0) {
			if err := flush(); err != nil {
				return err
			}
		}
		if check {
			ids = append(ids, fl.id)
		} else {
			offers = append(offers, nntp.Offer{ID: fl.id, Article: fl.art})
		}
	}
	return flush()
}

// ihave feeds one article at a time with IHAVE, for peers that do not
// stream.
func (f *Feeder) ihave(ctx context.Context, c *nntp.Client) (progress bool, err error) {
	lastActive := f.o.Now()
	for {
		f.takeSettled()
		fls, err := f.next(1)
		if err != nil {
			return progress, err
		}
		if len(fls) == 0 {
			if f.wait(ctx, lastActive.Add(f.o.IdleTimeout)) || ctx.Err() != nil {
				return progress, nil
			}
			continue
		}
		fl := fls[0]
		r, err := c.IHave(ctx, fl.id, fl.art)
		if err != nil {
			delete(f.busy, fl.seq) // stays queued
			if ctx.Err() == nil {
				f.count(outcomeDeferred, 1)
			}
			return progress, err
		}
		progress = true
		lastActive = f.o.Now()
		f.outcome(fl, r)
	}
}

// next takes up to n due items from the queue, in queue order, and
// prepares them for sending. Items with nothing to send are settled here.
func (f *Feeder) next(n int) ([]*flight, error) {
	if n <= 0 {
		return nil, nil
	}
	items, err := f.src.QueueNext(f.queue, f.o.Now(), n, f.isBusy)
	if err != nil {
		return nil, fmt.Errorf("reading the feed queue: %w", err)
	}
	var fls []*flight
	for _, it := range items {
		f.busy[it.Seq] = true
		if fl := f.prepare(it); fl != nil {
			fls = append(fls, fl)
		}
	}
	return fls, nil
}

// prepare loads an item's article and puts our name in its Path. It
// returns nil, and settles the item, when there is nothing to send.
func (f *Feeder) prepare(it store.QueueItem) *flight {
	ev := it.Event
	log := f.log.With("seq", it.Seq, "message_id", ev.MessageID)
	if ev.Kind != store.EventReport {
		log.Warn("dropping a queue item that is not a report", "event", ev.Kind.String())
		f.settle(it.Seq, time.Time{})
		return nil
	}
	// An ID that cannot go in a command line would make the client refuse
	// the whole batch, again at every reconnection.
	if !article.ValidMessageID(ev.MessageID) {
		log.Warn("dropping a report whose Message-ID cannot be sent over NNTP")
		f.settle(it.Seq, time.Time{})
		return nil
	}
	if f.o.PeerHas != nil && f.o.PeerHas(ev.MessageID) {
		log.Debug("not offering a report the peer offered to us: it has it")
		f.mu.Lock()
		f.st.Skipped++
		f.mu.Unlock()
		if m := f.o.Metrics; m != nil {
			m.FeedSkipped.WithLabelValues(f.peer.Name).Inc()
		}
		f.settle(it.Seq, time.Time{})
		return nil
	}
	art, err := f.src.Article(ev.MessageID)
	if err != nil {
		log.Error("cannot read the article to send; will try again", "err", err)
		f.settle(it.Seq, f.o.Now().Add(retry.Backoff(it.Attempts+1, f.o.MinBackoff, f.o.MaxBackoff)))
		return nil
	}
	if art == nil {
		log.Info("dropping a report from the feed: its article is no longer stored (pruned from the history)")
		f.settle(it.Seq, time.Time{})
		return nil
	}
	out, path := withSiteInPath(art, f.o.Site)
	// Ingest does not queue a report for a peer named in its Path
	// (RFC 5537 §3.6); this catches what slipped through, such as items
	// queued before the peer's name changed.
	if article.PathContains(path, f.peer.Name) {
		log.Debug("not offering a report to a peer already in its Path", "path", path)
		f.count(outcomeRefused, 1)
		f.noteRefusal(ReasonInPath, 0, "the peer is in the report's Path already; not offered")
		f.settle(it.Seq, time.Time{})
		return nil
	}
	return &flight{seq: it.Seq, attempts: it.Attempts, id: ev.MessageID, art: out}
}

// outcome settles an item the peer answered for.
func (f *Feeder) outcome(fl *flight, r nntp.Result) {
	switch r.Kind() {
	case nntp.Accept: // 239, 235
		f.count(outcomeSent, 1)
		f.settle(fl.seq, time.Time{})
	case nntp.Refuse: // 438, 439, 435, 437: the peer has it or will never take it
		reason := RefusalReason(r.Code, r.Text)
		f.log.Debug("peer refused a report", "message_id", fl.id, "code", r.Code, "reason", r.Text, "kind", reason)
		f.count(outcomeRefused, 1)
		f.noteRefusal(reason, r.Code, r.Text)
		if Fixable(reason) {
			// Kept, not dropped: once the peer's administrator has
			// fixed the cause, dstctl peers refeed offers it again.
			f.settleOp(settleOp{seq: fl.seq, keep: keptBy(reason, r.Code, r.Text)})
			return
		}
		f.settle(fl.seq, time.Time{})
	default: // 431, 436
		next := f.o.Now().Add(retry.Backoff(fl.attempts+1, f.o.MinBackoff, f.o.MaxBackoff))
		f.log.Debug("peer deferred a report", "message_id", fl.id, "code", r.Code, "reason", r.Text, "next_attempt", next)
		f.count(outcomeDeferred, 1)
		f.settle(fl.seq, next)
	}
}

// settleResult is what a settling goroutine reports.
type settleResult struct {
	seq     uint64
	retryAt time.Time // zero: acknowledged
	err     error
}

// settleOp is what to do with an item the feed is done with for now: keep
// it in the refused queue (keep: why), schedule it again (retryAt), or
// acknowledge it (neither).
type settleOp struct {
	seq     uint64
	retryAt time.Time
	keep    string
}

// settle acknowledges the item (retryAt zero) or schedules it again, in
// the background.
func (f *Feeder) settle(seq uint64, retryAt time.Time) {
	f.settleOp(settleOp{seq: seq, retryAt: retryAt})
}

// settleOp does op in the background. The item stays busy until the store
// has done it, so it is not read again in the meantime.
func (f *Feeder) settleOp(op settleOp) {
	for f.nSettling >= maxSettling {
		f.takeSettled1(<-f.settled)
	}
	f.busy[op.seq] = true
	f.nSettling++
	if op.keep == "" && op.retryAt.IsZero() {
		f.acks <- op.seq // cannot block: at most maxSettling settling
		return
	}
	f.settleWG.Add(1)
	go func() {
		defer f.settleWG.Done()
		var err error
		switch {
		case op.keep != "":
			err = f.keep(op.seq, op.keep)
		default:
			err = f.src.QueueRetry(f.queue, op.seq, op.retryAt)
		}
		f.settled <- settleResult{op.seq, op.retryAt, err} // cannot block: at most maxSettling in flight
	}()
}

// acker commits the acknowledgements settleOp sends it, gathered for up
// to AckDelay (or until maxAckBatch wait) into one commit, and reports
// each as settled. When acks is closed it commits what it holds and
// returns.
func (f *Feeder) acker() {
	defer f.settleWG.Done()
	var seqs []uint64
	t := time.NewTimer(time.Hour)
	t.Stop()
	// A full batch is a backlog going through: it is committed at once.
	// Fewer wait for another commit to join (store.LazyWait), as a
	// report's acknowledgements do in a network of sites.
	flush := func() {
		t.Stop()
		if len(seqs) == 0 {
			return
		}
		ack := f.src.QueueAckAll
		if len(seqs) >= maxAckBatch {
			ack = f.src.QueueAckAllNow
		}
		err := ack(f.queue, seqs)
		for _, seq := range seqs {
			f.settled <- settleResult{seq: seq, err: err} // cannot block: at most maxSettling settling
		}
		seqs = seqs[:0]
	}
	for {
		select {
		case seq, ok := <-f.acks:
			if !ok {
				flush()
				return
			}
			seqs = append(seqs, seq)
			if len(seqs) == 1 {
				t.Reset(f.o.AckDelay)
			}
			if len(seqs) >= maxAckBatch {
				flush()
			}
		case <-t.C:
			flush()
		}
	}
}

// takeSettled takes every settle result waiting.
func (f *Feeder) takeSettled() {
	for {
		select {
		case s := <-f.settled:
			f.takeSettled1(s)
		default:
			return
		}
	}
}

func (f *Feeder) takeSettled1(s settleResult) {
	f.nSettling--
	delete(f.busy, s.seq)
	switch {
	case s.err != nil:
		// The item is still queued as it was and will be offered
		// again; the peer refuses a repeat cheaply.
		f.log.Error("cannot record the outcome of a report in the feed queue; it will be offered again", "seq", s.seq, "err", s.err)
	case !s.retryAt.IsZero():
		heap.Push(&f.retries, s.retryAt)
	}
	if f.nSettling == 0 {
		f.updateDepth()
	}
}

// wait sleeps until a kick, a settled item, the next retry, Poll, or
// until (if not zero), and reports whether until was reached.
func (f *Feeder) wait(ctx context.Context, until time.Time) bool {
	now := f.o.Now()
	for f.retries.Len() > 0 && !f.retries[0].After(now) {
		heap.Pop(&f.retries)
	}
	wake := now.Add(f.o.Poll)
	if f.retries.Len() > 0 && f.retries[0].Before(wake) {
		wake = f.retries[0]
	}
	if !until.IsZero() && until.Before(wake) {
		wake = until
	}
	f.updateDepth()
	t := time.NewTimer(wake.Sub(now))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-f.o.Kick:
	case <-f.poke:
	case s := <-f.settled:
		f.takeSettled1(s)
	case <-t.C:
		return !until.IsZero() && !f.o.Now().Before(until)
	}
	return false
}

// sleep waits for d or ctx, whichever comes first, and reports whether a
// Flush cut it short. Kicks do not (a flood of reports must not make a
// flood of reconnects), nor does a Refeed: only the administrator's
// flush.
func (f *Feeder) sleep(ctx context.Context, d time.Duration) (flushed bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return false
		case <-f.poke:
			if f.flushReq.Swap(false) {
				return true
			}
		case s := <-f.settled:
			f.takeSettled1(s)
		}
	}
}

type outcomeKind int

const (
	outcomeSent outcomeKind = iota
	outcomeRefused
	outcomeDeferred
)

func (f *Feeder) count(k outcomeKind, n int64) {
	now := f.o.Now()
	f.mu.Lock()
	switch k {
	case outcomeSent:
		f.st.Sent += n
		f.st.LastSuccess = now
	case outcomeRefused:
		f.st.Refused += n
	case outcomeDeferred:
		f.st.Deferred += n
	}
	f.mu.Unlock()
	if m := f.o.Metrics; m != nil {
		switch k {
		case outcomeSent:
			m.FeedSent.WithLabelValues(f.peer.Name).Add(float64(n))
		case outcomeRefused:
			m.FeedRefused.WithLabelValues(f.peer.Name).Add(float64(n))
		case outcomeDeferred:
			m.FeedDeferred.WithLabelValues(f.peer.Name).Add(float64(n))
		}
	}
}

func (f *Feeder) failed(err error) {
	f.mu.Lock()
	f.st.LastError = err.Error()
	f.st.LastErrorTime = f.o.Now()
	f.mu.Unlock()
	if m := f.o.Metrics; m != nil {
		m.FeedErrors.WithLabelValues(f.peer.Name).Inc()
	}
}

func (f *Feeder) setConnected(connected, streaming bool) {
	f.mu.Lock()
	f.st.Connected = connected
	f.st.Streaming = streaming
	f.mu.Unlock()
	if m := f.o.Metrics; m != nil {
		v := 0.0
		if connected {
			v = 1
		}
		m.FeedConnected.WithLabelValues(f.peer.Name).Set(v)
	}
}

func (f *Feeder) updateDepth() {
	if f.o.Metrics == nil {
		return
	}
	n, err := f.src.QueueDepth(f.queue)
	if err != nil {
		f.log.Warn("cannot read the depth of the feed queue", "err", err)
		return
	}
	f.o.Metrics.FeedQueue.WithLabelValues(f.peer.Name).Set(float64(n))
}
