// Package dnsupdate pushes DST's listings into an existing authoritative
// DNS server, such as BIND, with DNS UPDATE (RFC 2136) signed with TSIG
// (RFC 8945), for sites that serve their blocklist zone from that server
// rather than from dstd's embedded one (docs/PROTOCOL.md §7.6).
//
// Each listed address gets the RFC 5782 records: an A record (127.0.0.2 by
// default) and a TXT record saying why, at the reversed-address name in
// the zone. An Updater is a batched action (action.BatchAction): the
// action runner hands it the durable queue QueueName in batches, and it
// sends one UPDATE message for up to BatchSize events; an UPDATE is atomic
// (RFC 2136 §3.7), so a batch is applied whole or not at all, and the
// runner acknowledges the queue items only after the server said NOERROR. Updater.Resync repairs drift (changes made by hand,
// updates lost while the queue was cleared, a server restored from an old
// backup) by transferring the zone (AXFR, RFC 5936) and sending only the
// differences.
package dnsupdate

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/dst-traps/dst/internal/action"
	"github.com/dst-traps/dst/internal/dnsutil"
	"github.com/dst-traps/dst/internal/store"
)

// QueueName is the action queue the updater consumes (its subscription
// is Wants). It must not change between
// versions, or events left in the old queue are stranded.
const QueueName = "dnsupdate"

// Defaults for the zero values of Config.
const (
	DefaultBatchSize = 100
	DefaultTTL       = 5 * time.Minute
	DefaultTimeout   = 30 * time.Second
	DefaultAlgorithm = dnsutil.DefaultTSIGAlgorithm
)

// maxMsgBytes bounds the size of one UPDATE. A DNS message over TCP may
// have up to 65535 bytes (RFC 1035 §4.2.2); staying well below leaves room
// for the TSIG record and for servers with smaller limits.
const maxMsgBytes = 32 * 1024

// Config says where and how to update. Server, Zone, KeyName and Secret
// are required: DST does not send unsigned updates, since a server that
// accepts them from an address accepts them from anyone who can forge it.
type Config struct {
	Server    string // host:port of the primary server
	Zone      string // the blocklist zone, e.g. "bl.example.org"
	KeyName   string // TSIG key name, as in the server's key statement
	Secret    string // base64 TSIG secret
	Algorithm string // default hmac-sha256 (hmac-sha1/224/256/384/512)

	// A is the address each listed name answers (RFC 5782 §2.1); default
	// 127.0.0.2.
	A netip.Addr
	// Answer, if set, gives the A record of one listing instead of A
	// (graded answers, dnsutil.GradedA). Like TXT it is asked again for
	// every UPDATE and resync, so a listing whose grade changed is
	// rewritten by the event that changed it, and repaired by Resync.
	// It must return an IPv4 address in 127.0.0.0/8.
	Answer func(ip netip.Addr, ev store.Event) netip.Addr
	// TXT returns the TXT text for a listing; default: "Listed by DST
	// until <expiry>". The text is published byte for byte (backslashes
	// and quotes included); texts longer than 255 bytes are split into
	// several character-strings of one record (RFC 1035 §3.3.14).
	TXT func(ip netip.Addr, ev store.Event) string
	// TTL of the A and TXT records; default 5 minutes.
	TTL time.Duration
	// Simulate publishes nothing (policy.simulate): Wants takes no event
	// and Resync wants no listing, so it removes the records an earlier
	// run published. Turning it off again and resynchronising (dstd does
	// at start) publishes every current listing.
	Simulate bool

	Log *slog.Logger // nil: discard

	// Tuning; zero values take the defaults above. Retries and their
	// backoff are the action runner's (action.RunnerOptions).
	BatchSize int           // events per UPDATE
	Timeout   time.Duration // one exchange or one zone transfer
	Now       func() time.Time
}

// Stats counts what an Updater did, for tests and status displays.
type Stats struct {
	Updates        int64 // UPDATE messages the server accepted
	UpdateFailures int64 // UPDATE messages that failed (refused, network)
	Events         int64 // queue events applied and acknowledged
	LastError      string
	LastErrorTime  time.Time
	LastSuccess    time.Time // of an UPDATE
}

// Updater sends UPDATEs for one zone to one server. It is safe for
// concurrent use: DoBatch and Resync may run at the same time, their
// UPDATEs are sent one at a time.
type Updater struct {
	c       Config
	zone    string // canonical: lower case, fully qualified
	keyName string // canonical
	alg     string // canonical, fully qualified
	log     *slog.Logger

	// mu is held while a batch of DoBatch or a whole Resync (transfer,
	// comparison, updates) is in progress, so that their UPDATEs never
	// interleave: a Resync works from one snapshot of the listings, and a
	// batch of events that DoBatch sends after it is newer or describes the
	// same state.
	mu sync.Mutex

	updates, failures, events atomic.Int64

	lastMu      sync.Mutex
	lastErr     error
	lastErrTime time.Time
	lastSuccess time.Time

	resyncMu   sync.Mutex
	lastResync ResyncResult
}

// New checks c and returns an Updater.
func New(c Config) (*Updater, error) {
	if c.Server == "" {
		return nil, errors.New("DNS UPDATE: no server (dns.update.server, host:port)")
	}
	if _, _, err := net.SplitHostPort(c.Server); err != nil {
		return nil, fmt.Errorf("DNS UPDATE: server %q must be host:port (e.g. 127.0.0.1:53): %w", c.Server, err)
	}
	if c.Zone == "" {
		return nil, errors.New("DNS UPDATE: no zone (dns.update.zone or dns.zone)")
	}
	if _, ok := dns.IsDomainName(c.Zone); !ok {
		return nil, fmt.Errorf("DNS UPDATE: zone %q is not a valid domain name", c.Zone)
	}
	if c.KeyName == "" || c.Secret == "" {
		return nil, errors.New("DNS UPDATE: a TSIG key is required (dns.update.key_name and dns.update.secret); DST does not send unsigned updates")
	}
	if _, ok := dns.IsDomainName(c.KeyName); !ok {
		return nil, fmt.Errorf("DNS UPDATE: TSIG key name %q is not a valid domain name", c.KeyName)
	}
	if _, err := base64.StdEncoding.DecodeString(c.Secret); err != nil {
		return nil, fmt.Errorf("DNS UPDATE: TSIG secret for key %s is not base64 (as in BIND's key statement, e.g. from tsig-keygen): %w", c.KeyName, err)
	}
	if c.Algorithm == "" {
		c.Algorithm = DefaultAlgorithm
	}
	alg, err := dnsutil.TSIGAlgorithm(c.Algorithm)
	if err != nil {
		return nil, fmt.Errorf("DNS UPDATE (dns.update.algorithm): %w", err)
	}
	if !c.A.IsValid() {
		c.A = netip.AddrFrom4([4]byte{127, 0, 0, 2})
	}
	if !c.A.Unmap().Is4() {
		return nil, fmt.Errorf("DNS UPDATE: answer address %s is not IPv4 (RFC 5782 §2.1 answers are A records)", c.A)
	}
	c.A = c.A.Unmap()
	if c.TXT == nil {
		c.TXT = defaultTXT
	}
	if c.TTL <= 0 {
		c.TTL = DefaultTTL
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	u := &Updater{c: c, zone: dns.CanonicalName(c.Zone), keyName: dns.CanonicalName(c.KeyName), alg: alg}
	u.log = c.Log.With("component", "dnsupdate", "server", c.Server, "zone", strings.TrimSuffix(u.zone, "."))
	return u, nil
}

func defaultTXT(ip netip.Addr, ev store.Event) string {
	if ev.Expires.IsZero() {
		return fmt.Sprintf("Listed by DST: %s hit spam traps", ip)
	}
	return fmt.Sprintf("Listed by DST: %s hit spam traps, until %s", ip, ev.Expires.UTC().Format(time.RFC3339))
}

// Stats returns the counts so far.
func (u *Updater) Stats() Stats {
	s := Stats{Updates: u.updates.Load(), UpdateFailures: u.failures.Load(), Events: u.events.Load()}
	u.lastMu.Lock()
	defer u.lastMu.Unlock()
	if u.lastErr != nil {
		s.LastError, s.LastErrorTime = u.lastErr.Error(), u.lastErrTime
	}
	s.LastSuccess = u.lastSuccess
	return s
}

// failed counts a failed UPDATE and remembers why, for dstctl queues.
func (u *Updater) failed(err error) error {
	u.failures.Add(1)
	u.lastMu.Lock()
	u.lastErr, u.lastErrTime = err, u.c.Now()
	u.lastMu.Unlock()
	return err
}

// wants says whether ev changes DNS: a report that leaves the address
// below the listing threshold does not, and in simulation nothing does.
func (u *Updater) wants(ev store.Event) bool {
	if u.c.Simulate {
		return false
	}
	switch ev.Kind {
	case store.EventReport:
		return ev.Listed
	case store.EventExpired, store.EventDelisted:
		return true
	}
	return false
}

// records returns the A and TXT records of a listing.
func (u *Updater) records(ip netip.Addr, ev store.Event) (*dns.A, *dns.TXT) {
	// The store holds no mapped addresses; Unmap keeps a stray one from
	// being published under its nibble name, where no client looks.
	name := dnsutil.ReverseName(ip.Unmap(), u.zone)
	ttl := uint32(u.c.TTL / time.Second)
	addr := u.c.A
	if u.c.Answer != nil {
		addr = u.c.Answer(ip, ev)
	}
	a := &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: addr.AsSlice()}
	t := &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: ttl}, Txt: dnsutil.TXT(u.c.TXT(ip, ev))}
	return a, t
}

// change is one name's update: set (A+TXT) or delete.
type change struct {
	ip  netip.Addr
	del bool
	ev  store.Event // for the TXT of a set
}

// addChange appends the RFC 2136 §2.5 operations for ch to m: delete the
// name's A and TXT RRsets (§2.5.2), then, for a listing, add the new ones
// (§2.5.1). Deleting first replaces whatever an older report or a hand
// edit left there; deleting an RRset that does not exist is not an error
// (§3.4.2.3), so the same operations serve a new listing and a repair.
// Operations are applied in message order (§3.4.2), so two events for one
// address in one batch end in the state of the later one.
func (u *Updater) addChange(m *dns.Msg, ch change) {
	a, t := u.records(ch.ip, ch.ev)
	m.RemoveRRset([]dns.RR{a, t})
	if !ch.del {
		m.Insert([]dns.RR{a, t})
	}
}

func (u *Updater) newUpdate() *dns.Msg {
	m := new(dns.Msg)
	m.SetUpdate(u.zone)
	return m
}

// buildBatches turns changes into UPDATE messages of at most BatchSize
// changes and about maxMsgBytes each.
func (u *Updater) buildBatches(chs []change) []*dns.Msg {
	var out []*dns.Msg
	var m *dns.Msg
	n := 0
	for _, ch := range chs {
		if m == nil || n >= u.c.BatchSize || m.Len() > maxMsgBytes {
			m = u.newUpdate()
			out = append(out, m)
			n = 0
		}
		u.addChange(m, ch)
		n++
	}
	return out
}

// sendAll sends ms in order and stops at the first failure. A failure
// after some messages succeeded is harmless to retry: each change replaces
// whole RRsets, so applying it again gives the same zone.
func (u *Updater) sendAll(ctx context.Context, ms []*dns.Msg) error {
	for _, m := range ms {
		if err := u.send(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// UpdateError is an UPDATE the server answered with an error.
type UpdateError struct {
	Server, Zone, Key string
	Rcode             int // the header's RCODE (extended by OPT/TSIG)
	TSIGError         int // the TSIG record's error, 0 if none
}

func (e *UpdateError) Error() string {
	zone := strings.TrimSuffix(e.Zone, ".")
	key := strings.TrimSuffix(e.Key, ".")
	// The TSIG error is the more precise cause: BIND answers NOTAUTH with
	// BADKEY/BADSIG/BADTIME in the TSIG record (RFC 8945 §5.3.2).
	switch e.TSIGError {
	case dns.RcodeBadKey:
		return fmt.Sprintf("DNS UPDATE to %s refused: TSIG key %s not accepted (BADKEY) — check dns.update.key_name/secret against the server's key", e.Server, key)
	case dns.RcodeBadSig:
		return fmt.Sprintf("DNS UPDATE to %s refused: TSIG signature with key %s did not verify (BADSIG) — check dns.update.secret and dns.update.algorithm against the server's key", e.Server, key)
	case dns.RcodeBadTime:
		return fmt.Sprintf("DNS UPDATE to %s refused: TSIG time outside the server's window (BADTIME) — check that this host's and the server's clocks agree (NTP)", e.Server)
	case dns.RcodeBadTrunc:
		return fmt.Sprintf("DNS UPDATE to %s refused: truncated TSIG MAC (BADTRUNC) — check dns.update.algorithm", e.Server)
	}
	switch e.Rcode {
	case dns.RcodeRefused:
		return fmt.Sprintf("DNS UPDATE to %s refused (REFUSED): the server does not let key %s update zone %s — check allow-update/update-policy for that key in the zone's configuration", e.Server, key, zone)
	case dns.RcodeNotAuth:
		return fmt.Sprintf("DNS UPDATE to %s refused (NOTAUTH): the server is not authoritative for zone %s or did not accept key %s — check dns.update.zone and dns.update.server (it must be the zone's primary)", e.Server, zone, key)
	case dns.RcodeNotZone:
		return fmt.Sprintf("DNS UPDATE to %s refused (NOTZONE): a name is outside zone %s — check dns.update.zone", e.Server, zone)
	case dns.RcodeServerFailure:
		return fmt.Sprintf("DNS UPDATE to %s failed (SERVFAIL): the server could not apply the update to zone %s (is the zone loaded? is its journal writable?) — see the server's log", e.Server, zone)
	}
	return fmt.Sprintf("DNS UPDATE to %s for zone %s failed: %s", e.Server, zone, rcodeName(e.Rcode))
}

func rcodeName(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return fmt.Sprintf("RCODE %d", rc)
}

// Auth reports whether the error is about the key or the server's policy
// (a configuration matter), rather than a transient failure.
func (e *UpdateError) Auth() bool {
	return e.TSIGError != 0 || e.Rcode == dns.RcodeRefused || e.Rcode == dns.RcodeNotAuth
}

// Unwrap makes a configuration matter action.ErrNeedsAdmin: the runner
// keeps the events, and logs each refusal as an error with this text.
func (e *UpdateError) Unwrap() error {
	if e.Auth() {
		return action.ErrNeedsAdmin
	}
	return nil
}

func (u *Updater) client() *dns.Client {
	return &dns.Client{Net: "tcp", Timeout: u.c.Timeout,
		TsigSecret: map[string]string{u.keyName: u.c.Secret}}
}

// send signs m and sends it over TCP. TCP rather than UDP because a batch
// is larger than a UDP response/request should be (RFC 2136 §6 allows
// either) and a lost UDP datagram would leave us guessing whether the
// update was applied.
// The caller holds u.mu.
func (u *Updater) send(ctx context.Context, m *dns.Msg) error {
	m.Id = dns.Id()
	m.SetTsig(u.keyName, u.alg, 300, u.c.Now().Unix())
	r, _, err := u.client().ExchangeContext(ctx, m, u.c.Server)
	if r != nil {
		// Look at the answer even when err is set: an answer to a
		// rejected key is unsigned or signed with an empty MAC, so the
		// client's TSIG check fails, and the RCODE says why.
		tsigErr := 0
		if t := r.IsTsig(); t != nil {
			tsigErr = int(t.Error)
		}
		if r.Rcode != dns.RcodeSuccess || tsigErr != 0 {
			return u.failed(&UpdateError{Server: u.c.Server, Zone: u.zone, Key: u.keyName, Rcode: r.Rcode, TSIGError: tsigErr})
		}
	}
	if err != nil {
		if errors.Is(err, dns.ErrSig) || errors.Is(err, dns.ErrAuth) {
			return u.failed(fmt.Errorf("DNS UPDATE to %s: the answer's TSIG signature did not verify with key %s (is the secret right?): %w", u.c.Server, strings.TrimSuffix(u.keyName, "."), err))
		}
		return u.failed(fmt.Errorf("DNS UPDATE to %s: cannot reach the server or it did not answer: %w", u.c.Server, err))
	}
	u.updates.Add(1)
	u.lastMu.Lock()
	u.lastSuccess = u.c.Now()
	u.lastMu.Unlock()
	return nil
}

// Name is the queue of DNS UPDATE events (action.Action).
func (u *Updater) Name() string { return QueueName }

// Wants takes the events that change what is published: a listing (a
// report that leaves the address listed, or a cancel's update of it), an
// expiry, a delisting. A report below the threshold does not.
func (u *Updater) Wants(ev store.Event) bool { return u.wants(ev) }

// BatchSize is how many events one UPDATE carries (action.BatchAction).
func (u *Updater) BatchSize() int { return u.c.BatchSize }

// Do applies one event; the runner calls DoBatch instead.
func (u *Updater) Do(ctx context.Context, ev store.Event) error {
	return u.DoBatch(ctx, []store.Event{ev})
}

// DoBatch sends one UPDATE for evs (more if their TXT texts are very
// long) and returns nil once the server accepted it: the action runner
// then acknowledges them all. When it fails, the runner reschedules the
// whole batch and hands over nothing newer until it is done: later events
// may concern the same addresses, and sending them first would let the
// retried older events undo them.
func (u *Updater) DoBatch(ctx context.Context, evs []store.Event) error {
	var chs []change
	for _, ev := range evs {
		if u.wants(ev) {
			chs = append(chs, change{ip: ev.IP, del: ev.Kind != store.EventReport, ev: ev})
		}
	}
	if len(chs) > 0 {
		u.mu.Lock()
		err := u.sendAll(ctx, u.buildBatches(chs))
		u.mu.Unlock()
		if err != nil {
			return err
		}
	}
	u.events.Add(int64(len(evs)))
	u.log.Debug("DNS UPDATE applied", "events", len(evs), "changes", len(chs))
	return nil
}
