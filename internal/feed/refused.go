package feed

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/dst-traps/dst/internal/nntp"
)

// Why a peer refused a report, as RefusalReason reads its answer.
const (
	// ReasonKeyring: the peer has no key for the report's signer, or
	// another one (its keyring lacks or has an old key of the origin).
	ReasonKeyring = "keyring"
	// ReasonClock: the report's Date is outside the peer's window (in
	// its future, or older than its history): a clock is wrong.
	ReasonClock = "clock"
	// ReasonDuplicate: the peer has the report already.
	ReasonDuplicate = "duplicate"
	// ReasonInPath: not offered, the peer is in the report's Path.
	ReasonInPath = "in-path"
	// ReasonOther: any other refusal (malformed, policy, ...).
	ReasonOther = "other"
)

// MaxKept bounds the refused reports kept per peer for Refeed; past it
// the oldest go. A peer refusing for a keyring reason refuses everything
// of one origin, and a day of a busy origin's reports is well under this.
const MaxKept = 10000

// maxKeptText bounds the peer's answer kept with each refused report.
const maxKeptText = 200

// RefusedQueueName is the store queue that keeps the reports peer refused
// for a reason its administrator can fix (Fixable), until Refeed.
func RefusedQueueName(peer string) string { return "refused/" + peer }

// RefusalReason classifies a peer's refusal from its answer: code 435 or
// 438, or a text saying so, is a duplicate; the texts of a missing or
// wrong key (dstd's "signature: no key in the keyring for the signer",
// "DKIM signature does not verify") are ReasonKeyring; those of a Date
// out of the window ("Date ... is in the future", "older than the
// history") ReasonClock. Anything else is ReasonOther: not kept, as no
// fix on the peer's side is known to make it take the report.
func RefusalReason(code int, text string) string {
	t := strings.ToLower(text)
	has := func(words ...string) bool {
		for _, w := range words {
			if strings.Contains(t, w) {
				return true
			}
		}
		return false
	}
	switch {
	case code == 435 || code == 438 || has("duplicate", "already"):
		return ReasonDuplicate
	case has("no key", "unknown key", "keyring", "does not verify", "key record", "no dkim key"):
		return ReasonKeyring
	case has("in the future", "older than", "clock", "skew"):
		return ReasonClock
	}
	return ReasonOther
}

// Fixable reports whether reports refused for reason are kept for
// Refeed: the peer's administrator can fix a keyring or a clock.
func Fixable(reason string) bool { return reason == ReasonKeyring || reason == ReasonClock }

// keptBy is what a kept report remembers of its refusal (store.Event.By):
// the reason, the code and the peer's text.
func keptBy(reason string, code int, text string) string {
	if len(text) > maxKeptText {
		text = text[:maxKeptText]
	}
	return fmt.Sprintf("%s %d %s", reason, code, text)
}

// keptReason is the reason keptBy wrote.
func keptReason(by string) string {
	r, _, _ := strings.Cut(by, " ")
	return r
}

// Refusal counts a peer's refusals of one reason since dstd started.
type Refusal struct {
	Reason   string
	Count    int64
	LastCode int    // the peer's last answer of this reason
	LastText string // (code 0: decided here, not by the peer)
	LastTime time.Time
}

// noteRefusal counts a refusal, and warns the first time a reason that
// keeps reports is seen: the administrator has something to fix.
func (f *Feeder) noteRefusal(reason string, code int, text string) {
	f.mu.Lock()
	r := f.refusals[reason]
	first := r == nil
	if first {
		r = &Refusal{Reason: reason}
		f.refusals[reason] = r
	}
	r.Count++
	r.LastCode, r.LastText, r.LastTime = code, text, f.o.Now()
	f.mu.Unlock()
	if first && Fixable(reason) {
		f.log.Warn("peer refuses reports for a "+reason+" reason; they are kept: once the cause is fixed, run dstctl peers refeed "+f.peer.Name,
			"code", code, "answer", text)
	}
}

// refusalList is the refusals by reason, most frequent first; f.mu held.
func (f *Feeder) refusalList() []Refusal {
	out := make([]Refusal, 0, len(f.refusals))
	for _, r := range f.refusals {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b Refusal) int {
		if a.Count != b.Count {
			return int(b.Count - a.Count)
		}
		return strings.Compare(a.Reason, b.Reason)
	})
	return out
}

// keep moves an item to the refused queue, and drops the oldest kept
// beyond MaxKept.
func (f *Feeder) keep(seq uint64, by string) error {
	if _, err := f.src.QueueMove(f.queue, f.refused, []uint64{seq}, by); err != nil {
		return err
	}
	n, err := f.src.QueueDepth(f.refused)
	if err != nil || n <= MaxKept {
		return nil // the bound is kept at the next refusal
	}
	dropped, err := f.src.QueueTrim(f.refused, MaxKept)
	if err != nil {
		f.log.Warn("cannot trim the refused reports kept for the peer", "err", err)
		return nil
	}
	f.log.Warn("dropped the oldest refused reports kept for the peer: more than the bound; fix the cause and run dstctl peers refeed",
		"dropped", dropped, "bound", MaxKept)
	return nil
}

// Refeed puts the kept reports refused for reason (ReasonKeyring,
// ReasonClock, or "all" for both) back in the feed's queue, to be offered
// again, and returns how many.
func (f *Feeder) Refeed(reason string) (int, error) {
	if reason != "all" && !Fixable(reason) {
		return 0, fmt.Errorf("refeed: reason %q is none of %s, %s or all", reason, ReasonKeyring, ReasonClock)
	}
	passed := make(map[uint64]bool) // kept for another reason
	skip := func(seq uint64) bool { return passed[seq] }
	far := time.Now().AddDate(100, 0, 0) // every kept item, whatever its time
	moved := 0
	for {
		items, err := f.src.QueueNext(f.refused, far, 512, skip)
		if err != nil {
			return moved, fmt.Errorf("refeed %s: %w", f.peer.Name, err)
		}
		if len(items) == 0 {
			break
		}
		var seqs []uint64
		for _, it := range items {
			if reason == "all" || keptReason(it.Event.By) == reason {
				seqs = append(seqs, it.Seq)
			} else {
				passed[it.Seq] = true
			}
		}
		n, err := f.src.QueueMove(f.refused, f.queue, seqs, "")
		moved += n
		if err != nil {
			return moved, fmt.Errorf("refeed %s: %w", f.peer.Name, err)
		}
	}
	if moved > 0 {
		f.log.Info("refused reports put back in the feed (dstctl peers refeed)", "reports", moved, "reason", reason)
		f.wake(false)
	}
	return moved, nil
}

// Flush makes the feed try now: deferred reports are due at once, and a
// reconnection backoff is cut short. It returns how many deferred
// reports it made due.
func (f *Feeder) Flush() (int, error) {
	n, err := f.src.QueueReschedule(f.queue, f.o.Now())
	if err != nil {
		return 0, fmt.Errorf("flush %s: %w", f.peer.Name, err)
	}
	f.log.Info("feed flushed by the administrator (dstctl peers flush)", "deferred_now_due", n)
	f.wake(true)
	return n, nil
}

func (f *Feeder) wake(flush bool) {
	if flush {
		f.flushReq.Store(true)
	}
	select {
	case f.poke <- struct{}{}:
	default: // a poke is pending already
	}
}

func (f *Feeder) setRetryAt(t time.Time) {
	f.mu.Lock()
	f.st.RetryAt = t
	f.mu.Unlock()
}

// TLSInfo describes a connection's protection, for dstctl peers.
type TLSInfo struct {
	// State is "tls", "plain", or "loopback plain" (plain on a loopback
	// address or a Unix socket: nothing leaves the host); "" before any
	// connection.
	State       string
	Version     string // "TLS 1.3"
	Cipher      string
	CertSHA256  string // the other side's certificate, hex SHA-256 of its DER
	CertSubject string
}

func (t TLSInfo) String() string {
	if t.State != "tls" {
		return t.State
	}
	s := t.Version + " " + t.Cipher
	if t.CertSHA256 != "" {
		s += " cert sha256:" + t.CertSHA256
	}
	return s
}

// DescribeTLS describes a connection to or from remote (host:port, a
// host, or a socket path) with TLS state cs (nil: not encrypted).
func DescribeTLS(cs *tls.ConnectionState, remote string) TLSInfo {
	if cs == nil {
		if isLoopback(remote) {
			return TLSInfo{State: "loopback plain"}
		}
		return TLSInfo{State: "plain"}
	}
	ti := TLSInfo{State: "tls", Version: tls.VersionName(cs.Version), Cipher: tls.CipherSuiteName(cs.CipherSuite)}
	if len(cs.PeerCertificates) > 0 {
		sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
		ti.CertSHA256 = hex.EncodeToString(sum[:])
		ti.CertSubject = cs.PeerCertificates[0].Subject.String()
	}
	return ti
}

func isLoopback(remote string) bool {
	if strings.Contains(remote, "/") || strings.HasPrefix(remote, "unix:") || remote == "@" {
		return true // a Unix socket
	}
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

func describeClientTLS(c *nntp.Client, addr string) TLSInfo {
	if cs, ok := c.ConnectionState(); ok {
		return DescribeTLS(&cs, addr)
	}
	return DescribeTLS(nil, addr)
}

// TestStep is one step of Test.
type TestStep struct {
	Step     string // "connect", "MODE STREAM", "CHECK", "DATE", "QUIT"
	Detail   string // what the peer answered or what was set up
	Duration time.Duration
	Err      string // the step failed
}

// TestResult is what Test did.
type TestResult struct {
	Peer, Addr string
	OK         bool
	Steps      []TestStep
	Duration   time.Duration
	TLS        TLSInfo
	Streaming  bool
}

// Test makes one round trip to the peer without sending a report:
// connect (TLS and AUTHINFO as configured), MODE STREAM, then CHECK of a
// Message-ID nobody has (any answer will do, and nothing follows it) or,
// when the peer does not stream, DATE, and QUIT. It uses its own
// connection, whatever the feed is doing. ok false: the step that failed
// says why.
func (f *Feeder) Test(ctx context.Context) TestResult {
	res := TestResult{Peer: f.peer.Name, Addr: f.peer.Addr}
	start := f.o.Now()
	step := func(name string, t0 time.Time, detail string, err error) bool {
		s := TestStep{Step: name, Detail: detail, Duration: f.o.Now().Sub(t0)}
		if err != nil {
			s.Err = err.Error()
		}
		res.Steps = append(res.Steps, s)
		return err == nil
	}
	defer func() { res.Duration = f.o.Now().Sub(start) }()
	ctx, cancel := context.WithTimeout(ctx, f.o.Timeout)
	defer cancel()

	t0 := f.o.Now()
	c, err := nntp.DialWith(ctx, f.peer.Addr, nntp.DialOptions{
		Timeout: f.o.Timeout, LocalAddr: f.peer.LocalAddr, TLS: f.peer.TLS, TLSConfig: f.peer.TLSConfig,
		Username: f.peer.Username, Password: f.peer.Password, AllowPlaintextAuth: f.peer.AllowPlaintextAuth,
	})
	if err != nil {
		step("connect", t0, "", err)
		return res
	}
	defer c.Close()
	res.TLS = describeClientTLS(c, f.peer.Addr)
	detail := res.TLS.String()
	if f.peer.Username != "" {
		detail += ", AUTHINFO as " + f.peer.Username
	}
	step("connect", t0, detail, nil)

	t0 = f.o.Now()
	streaming, err := c.ModeStream(ctx)
	if !step("MODE STREAM", t0, map[bool]string{true: "203 streaming", false: "not streaming: IHAVE"}[streaming], err) {
		return res
	}
	res.Streaming = streaming
	t0 = f.o.Now()
	if streaming {
		id := testMessageID(f.o.Site)
		err := c.Check(ctx, id)
		var r nntp.Result
		if err == nil {
			r, err = c.NextResult(ctx)
		}
		if !step("CHECK", t0, fmt.Sprintf("%s: %d %s", id, r.Code, r.Text), err) {
			return res
		}
	} else {
		t, err := c.Date(ctx)
		if !step("DATE", t0, "peer's clock "+t.UTC().Format(time.RFC3339), err) {
			return res
		}
	}
	t0 = f.o.Now()
	if !step("QUIT", t0, "", c.Close()) {
		return res
	}
	res.OK = true
	return res
}

// testMessageID is a Message-ID no site has: the CHECK of a test.
func testMessageID(site string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "<dst-peer-test." + hex.EncodeToString(b[:]) + "@" + site + ">"
}
