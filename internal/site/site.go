// Package site is one running DST site, as dstd runs it: New builds every
// component from the configuration (store, keys, policy, ingest, actions,
// feeds, DNS, the NNTP server, the admin endpoint) and binds every
// listener; Run serves them until its context ends and shuts down in
// stages; Reload applies what SIGHUP may change. cmd/dstd is only flags
// and signals around it, and tests run whole sites in process.
package site

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/dst-traps/dst/internal/action"
	"github.com/dst-traps/dst/internal/admin"
	"github.com/dst-traps/dst/internal/article"
	"github.com/dst-traps/dst/internal/buildinfo"
	"github.com/dst-traps/dst/internal/config"
	"github.com/dst-traps/dst/internal/dkim"
	"github.com/dst-traps/dst/internal/dnsupdate"
	"github.com/dst-traps/dst/internal/feed"
	"github.com/dst-traps/dst/internal/ingest"
	"github.com/dst-traps/dst/internal/logging"
	"github.com/dst-traps/dst/internal/metrics"
	"github.com/dst-traps/dst/internal/nntp"
	"github.com/dst-traps/dst/internal/policy"
	"github.com/dst-traps/dst/internal/store"
)

// shutdownGrace bounds how long articles being received at shutdown may
// take to finish; connections still busy after it are cut.
const shutdownGrace = 10 * time.Second

// Site is one dstd: what New builds, Run serves and Reload updates.
type Site struct {
	// cfg is the configuration the site started with: it holds the keys
	// that need a restart. What Reload changes is in snap.
	cfg      *config.Config
	version  string
	confPath string
	log      *slog.Logger
	db       *store.DB
	in       *ingest.Ingester
	own      ed25519.PublicKey
	reg      *prometheus.Registry
	met      *metrics.Metrics
	started  time.Time

	// reloadMu serialises the writers of snap (Reload, Delist -allow):
	// each builds the new policy from the snapshot before it, so neither
	// can undo the other.
	reloadMu sync.Mutex
	snap     atomic.Pointer[snapshot]
	cert     *certificate // nil without tls.cert

	// actions are run by the action runner, DNS UPDATE among them; kicks
	// and stats go with them, by index.
	actions   []action.Action
	reportLog *action.ReportLog
	// offered is what each peer offered this site lately: the feeds do
	// not offer it back (feed.Offered).
	offered   *feed.Offered
	kicks     []chan struct{}
	stats     []*action.Stats
	feeders   []*feed.Feeder
	feedKicks []chan struct{}
	feedPeers []string
	incoming  *incoming // the peers feeding this site, for dstctl peers
	// kickOf wakes the consumer of a queue, by queue name.
	kickOf map[string]chan struct{}
	dns    *dnsParts
	resync chan struct{}
	srv    *nntp.Server

	// The listeners New binds and Run serves.
	nntpLs      []net.Listener
	nntpTCP     []net.Addr // the addresses of nntp.listen, and of tls.listen
	nntpTLS     []net.Addr
	adminLs     []net.Listener
	dnsPCs      []net.PacketConn
	dnsLs       []net.Listener
	listenAddrs []string
	adminToken  string // admin.token_file's token, for the TCP admin listener
	// submitGID and adminGID are the groups of nntp.submit_group and
	// admin.group, -1 when unset.
	submitGID, adminGID int

	// ready is called once Run serves every listener (WithReady).
	ready func()

	// refused holds the last refusals, for the status page.
	refused refusalRing

	ran    atomic.Bool
	closed sync.Once
}

// snapshot is what Reload swaps as one: a report is judged by the policy
// and keyring of one configuration, never half of each.
type snapshot struct {
	cfg *config.Config
	pol *policy.Policy
	kr  *dkim.Keyring
	// krFile: kr was read from the keyring file (not an empty keyring
	// for a file that does not exist).
	krFile bool
}

// Option sets what New cannot read from the configuration.
type Option func(*Site)

// WithLogger sets the site's logger (default: none).
func WithLogger(l *slog.Logger) Option { return func(s *Site) { s.log = l } }

// WithVersion sets the version dstd reports in its log and status.
func WithVersion(v string) Option { return func(s *Site) { s.version = v } }

// WithConfigPath names the configuration file in the start-up log line.
func WithConfigPath(p string) Option { return func(s *Site) { s.confPath = p } }

// WithReady sets what Run calls once every listener is served: dstd tells
// systemd READY=1 there.
func WithReady(f func()) Option { return func(s *Site) { s.ready = f } }

// NewLogger is dstd's logger as log.level, log.destination and log.format
// ask; call the function it returns at exit.
func NewLogger(c config.Log, stderr io.Writer) (*slog.Logger, func()) {
	return logging.NewFormat("dstd", c.Destination, c.Format, c.Level.Level, stderr)
}

// New builds the site cfg describes and binds all its listeners, so that a
// port in use, a missing file or a bad key fails here, before anything is
// served. Call Run to serve, or Close to give everything back.
func New(cfg *config.Config, opts ...Option) (_ *Site, err error) {
	s := &Site{cfg: cfg, started: time.Now(), resync: make(chan struct{}, 1), submitGID: -1, adminGID: -1}
	for _, o := range opts {
		o(s)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.submitGID, err = groupID(cfg.NNTP.SubmitGroup, "nntp.submit_group"); err != nil {
		return nil, err
	}
	if s.adminGID, err = groupID(cfg.Admin.Group, "admin.group"); err != nil {
		return nil, err
	}
	if err := ensureDataDir(cfg.DataDir, s.adminGID, cfg.Admin.Group); err != nil {
		return nil, err
	}
	if err := ensureSpool(cfg.SpoolDir, s.submitGID, cfg.NNTP.SubmitGroup, s.log); err != nil {
		return nil, err
	}
	if err := ensureSocketDir(cfg.Admin.Socket, s.adminGID, cfg.Admin.Group, "admin.socket"); err != nil {
		return nil, err
	}
	if cfg.NNTP.Socket != "" {
		if err := ensureSocketDir(cfg.NNTP.Socket, s.submitGID, cfg.NNTP.SubmitGroup, "nntp.socket"); err != nil {
			return nil, err
		}
	}
	key, created, err := loadOrCreateKey(cfg.DKIM.PrivateKey)
	if err != nil {
		return nil, err
	}
	s.own = key.Public().(ed25519.PublicKey)
	if created {
		s.log.Info("created the site's DKIM key; give peers this keyring line (dstd keygen prints it again)",
			"file", cfg.DKIM.PrivateKey, "keyring_line", dkim.KeyringLine(cfg.Site, cfg.DKIM.Selector, s.own))
	}
	snap, err := s.load(cfg, nil)
	if err != nil {
		return nil, err
	}
	s.snap.Store(snap)
	signer, err := dkim.NewSigner(cfg.Site, cfg.DKIM.Selector, key)
	if err != nil {
		return nil, err
	}
	if cfg.TLS.Cert != "" {
		if s.cert, err = loadCertificate(cfg.TLS.Cert, cfg.TLS.Key); err != nil {
			return nil, err
		}
	}

	s.db, err = store.Open(cfg.DBPath(), store.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, err
	}
	s.reg = prometheus.NewRegistry()
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.met = metrics.New(s.reg)
	bi := buildinfo.Read()
	metrics.RegisterBuildInfo(s.reg, bi.Version, bi.Revision, bi.Go)
	metrics.RegisterStore(s.reg,
		func() float64 { st, _ := s.db.Stats(); return float64(st.Listings) },
		func() float64 { st, _ := s.db.Stats(); return float64(st.Pending) })

	if err := s.buildActions(); err != nil {
		return nil, err
	}
	if err := s.buildFeeds(); err != nil {
		return nil, err
	}
	if err := s.buildDNS(); err != nil {
		return nil, err
	}
	if err := s.subscribe(); err != nil {
		return nil, err
	}
	s.initMetrics()
	s.in = ingest.New(ingest.Options{
		Site:        cfg.Site,
		Store:       s.db,
		Signer:      signer,
		Limits:      article.Limits{MaxBytes: cfg.NNTP.MaxArticleBytes},
		HistoryKeep: cfg.History.Keep.Duration,
		MaxFuture:   cfg.History.MaxFuture.Duration,
		Listing: store.IngestParams{
			ExpireBase: cfg.Listing.Expire.Duration,
			ExpireMax:  cfg.Listing.MaxExpire.Duration,
			Threshold:  cfg.Policy.Threshold,
			Window:     cfg.Policy.Window.Duration,

			ProbationCorroborations: cfg.Policy.ProbationCorroborations,
			MaxNewListingsPerHour:   cfg.Policy.MaxNewListingsPerHour,
		},
		NewOriginProbation: cfg.Policy.NewOrigin == config.OriginProbation,
		PeerNames:          peerNames(cfg.Peers),
		Metrics:            s.met,
		Log:                s.log,
		OnRefuse:           s.refused.add,
	}, snap.kr, snap.pol)
	s.srv = s.nntpServer()

	// Every listener now, so that a port in use fails the start at once
	// and "dstd started" means the site answers on all of them.
	if err := s.listenNNTP(); err != nil {
		return nil, err
	}
	if err := s.listenAdmin(); err != nil {
		return nil, err
	}
	if err := s.listenDNS(); err != nil {
		return nil, err
	}
	return s, nil
}

// Addrs are the addresses a site listens on, as bound (the ports of ":0"
// filled in).
type Addrs struct {
	NNTP     []net.Addr // nntp.listen
	NNTPS    []net.Addr // tls.listen
	Socket   string     // nntp.socket
	Admin    string     // admin.socket
	AdminTCP net.Addr   // admin.listen; nil without
	DNS      []net.Addr // dns.listen (UDP; TCP is on the same port)
}

// Addrs says where the site listens.
func (s *Site) Addrs() Addrs {
	a := Addrs{NNTP: s.nntpTCP, NNTPS: s.nntpTLS, Socket: s.cfg.NNTP.Socket, Admin: s.cfg.Admin.Socket}
	for _, l := range s.adminLs {
		if l.Addr().Network() == "tcp" {
			a.AdminTCP = l.Addr()
		}
	}
	for _, pc := range s.dnsPCs {
		a.DNS = append(a.DNS, pc.LocalAddr())
	}
	return a
}

// Run serves the site until ctx ends or a listener fails, then shuts down
// in stages: it stops taking articles, lets those being received finish
// (their answer comes only after their commit) for up to 10 s, stops the
// loops and closes the store. It returns the failed listener's error, or
// nil. A Site runs once.
func (s *Site) Run(ctx context.Context) error {
	if !s.ran.CompareAndSwap(false, true) {
		return errors.New("site: Run called twice")
	}
	defer s.Close()
	cfg := s.cfg
	s.log.Info("dstd started", "version", s.version, "site", cfg.Site, "config", orNone(s.confPath),
		"data_dir", cfg.DataDir, "db", cfg.DBPath(), "nntp", strings.Join(s.listenAddrs, ","),
		"admin", cfg.Admin.Socket+orEmpty(","+cfg.Admin.Listen.String(), !cfg.Admin.Listen.IsZero()),
		"spool", cfg.SpoolDir, "report_log", orNone(cfg.Actions.Log.File), "keyring", cfg.DKIM.Keyring,
		"keys", s.snap.Load().kr.Len(), "dns", strings.Join(addrStrings(s.Addrs().DNS), ","), "zone", cfg.DNS.Zone)

	// The loops outlive the listeners: they stop once the articles being
	// received are stored.
	loopCtx, stopLoops := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLoops()
	var loops errgroup.Group
	s.runLoops(loopCtx, &loops)

	// A listener that fails ends gctx, and with it the others: the site
	// stops rather than go on half deaf, and Run returns why.
	g, gctx := errgroup.WithContext(ctx)
	serve := func(f func() error) {
		g.Go(func() error {
			err := f()
			if err != nil && gctx.Err() != nil {
				// Stopping already: the news is why it stops, not
				// how each listener took it.
				s.log.Warn("listener stopped with an error at shutdown", "err", err)
				return nil
			}
			return err
		})
	}
	for _, l := range s.nntpLs {
		serve(func() error {
			if err := s.srv.Serve(gctx, l); err != nil {
				return fmt.Errorf("NNTP listener %s: %w", l.Addr(), err)
			}
			return nil
		})
	}
	for _, l := range s.adminLs {
		serve(func() error { return admin.Serve(gctx, l, s.adminHandler(l)) })
	}
	if s.dns.server != nil {
		serve(func() error {
			if err := s.dns.server.Serve(gctx, s.dnsPCs, s.dnsLs); err != nil {
				return fmt.Errorf("DNS listener: %w", err)
			}
			return nil
		})
	}
	// The listeners were bound by New and each has its server now: a
	// client that connects from here on is answered.
	if s.ready != nil {
		s.ready()
	}
	<-gctx.Done()
	s.log.Info("dstd stopping")
	shutCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := s.srv.Shutdown(shutCtx); err != nil {
		s.log.Warn("NNTP connections cut at shutdown", "err", err)
	}
	err := g.Wait()
	if err != nil {
		s.log.Error("a listener failed; dstd stops", "err", err)
	}
	stopLoops()
	stopped := make(chan struct{})
	go func() { loops.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(shutdownGrace):
		// Say what holds the exit up; the store closes once they end.
		s.log.Error("actions, feeds or DNS exports still running 10 s after the stop; waiting for them (a stuck actions.program? see actions.program.timeout)")
		<-stopped
	}
	s.log.Info("dstd stopped")
	return err
}

// runLoops starts the actions, feeds, DNS exports, the sweep and the spool
// pick-up. They log their errors: one that stops leaves the others going,
// and its queue waits for a restart.
func (s *Site) runLoops(ctx context.Context, g *errgroup.Group) {
	for i, a := range s.actions {
		// The report log runs one event at a time, so its lines keep the
		// queue's order; the runner does not wait for an event's ack
		// before the next one, so acks still share commits.
		opt := action.RunnerOptions{Log: s.log.With("action", a.Name()), Metrics: s.met, Kick: s.kicks[i], Stats: s.stats[i]}
		if a.Name() == action.ProgramName {
			opt.Concurrency = s.cfg.Actions.Program.Concurrency
			opt.MaxAttempts = s.cfg.Actions.Program.MaxAttempts
		}
		g.Go(func() error {
			if u, ok := a.(*dnsupdate.Updater); ok {
				// The zone is repaired before the queue goes on, so that
				// the queue's events apply to what the listings say.
				if err := u.Resync(ctx, s.resyncSource); err != nil {
					s.log.Error("DNS UPDATE resynchronisation failed; the queue goes on", "err", err)
				}
			}
			if err := action.Run(ctx, s.db, a, opt); err != nil {
				s.log.Error("action stopped", "action", a.Name(), "err", err)
			}
			return nil
		})
	}
	for _, f := range s.feeders {
		g.Go(func() error {
			if err := f.Run(ctx); err != nil {
				s.log.Error("feed stopped", "err", err)
			}
			return nil
		})
	}
	s.runDNS(ctx, g)
	g.Go(func() error { s.sweep(ctx); return nil })
	g.Go(func() error { s.pickUpSpool(ctx); return nil })
}

// Close gives back what New took (listeners, the store) when Run is not
// called; Run closes them itself.
func (s *Site) Close() error {
	var err error
	s.closed.Do(func() {
		for _, l := range append(s.nntpLs, append(s.adminLs, s.dnsLs...)...) {
			l.Close()
		}
		for _, pc := range s.dnsPCs {
			pc.Close()
		}
		if s.db != nil {
			err = s.db.Close()
		}
	})
	return err
}

func (s *Site) buildActions() error {
	c := s.cfg.Actions
	if c.Log.File != "" {
		rl, err := action.NewReportLog(c.Log.File)
		if err != nil {
			return err
		}
		rl.Simulate = s.cfg.Policy.Simulate
		s.reportLog = rl
		s.actions = append(s.actions, rl)
	}
	if len(c.Program.Command) > 0 {
		s.actions = append(s.actions, action.NewProgram(action.ProgramConfig{
			Command:  c.Program.Command,
			Timeout:  c.Program.Timeout.Duration,
			Store:    s.db,
			Log:      s.log,
			Simulate: s.cfg.Policy.Simulate,
		}))
	}
	return nil
}

func peerNames(peers []config.Peer) []string {
	names := make([]string, len(peers))
	for i, p := range peers {
		names[i] = p.Name
	}
	return names
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func orEmpty(s string, ok bool) string {
	if ok {
		return s
	}
	return ""
}

func addrStrings(as []net.Addr) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}
