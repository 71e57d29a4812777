package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/dst-traps/dst/internal/action"
	"github.com/dst-traps/dst/internal/admin"
	"github.com/dst-traps/dst/internal/article"
	"github.com/dst-traps/dst/internal/config"
	"github.com/dst-traps/dst/internal/dkim"
	"github.com/dst-traps/dst/internal/feed"
	"github.com/dst-traps/dst/internal/ingest"
	"github.com/dst-traps/dst/internal/logging"
	"github.com/dst-traps/dst/internal/metrics"
	"github.com/dst-traps/dst/internal/policy"
	"github.com/dst-traps/dst/internal/store"
)

// daemon is one running dstd: what serve builds, and what SIGHUP reloads.
type daemon struct {
	cfg      *config.Config
	confPath string
	log      *slog.Logger
	db       *store.DB
	in       *ingest.Ingester
	own      ed25519.PublicKey
	reg      *prometheus.Registry
	met      *metrics.Metrics
	started  time.Time

	actions     []action.Action
	reportLog   *action.ReportLog
	kicks       []chan struct{}
	stats       []*action.Stats
	feeders     []*feed.Feeder
	feedKicks   []chan struct{}
	feedPeers   []string
	serverTLS   *tls.Config
	dns         *dnsParts
	removalQs   []string
	allowMu     sync.Mutex // serialises writes to the allow file
	listenAddrs []string
	adminToken  string // admin.token_file's token, for the TCP admin listener
	// submitGID and adminGID are the groups of nntp.submit_group and
	// admin.group, -1 when unset.
	submitGID, adminGID int
}

func newLogger(c config.Log, stderr io.Writer) (*slog.Logger, func()) {
	var level slog.Level
	level.UnmarshalText([]byte(c.Level)) // validated by config
	mode, _ := logging.ParseMode(c.Destination)
	return logging.New("dstd", mode, level, stderr)
}

func serve(ctx context.Context, cfg *config.Config, confPath string, stderr io.Writer) error {
	log, closeLog := newLogger(cfg.Log, stderr)
	defer closeLog()
	d := &daemon{cfg: cfg, confPath: confPath, log: log, started: time.Now()}

	var err error
	if d.submitGID, err = groupID(cfg.NNTP.SubmitGroup, "nntp.submit_group"); err != nil {
		return err
	}
	if d.adminGID, err = groupID(cfg.Admin.Group, "admin.group"); err != nil {
		return err
	}
	if err := ensureDataDir(cfg.DataDir, d.adminGID, cfg.Admin.Group); err != nil {
		return err
	}
	if err := ensureSpool(cfg.SpoolDir, d.submitGID, cfg.NNTP.SubmitGroup, log); err != nil {
		return err
	}
	key, created, err := loadOrCreateKey(cfg.DKIM.PrivateKey)
	if err != nil {
		return err
	}
	d.own = key.Public().(ed25519.PublicKey)
	if created {
		log.Info("created the site's DKIM key; give peers this keyring line (dstd keygen prints it again)",
			"file", cfg.DKIM.PrivateKey, "keyring_line", dkim.KeyringLine(cfg.Site, cfg.DKIM.Selector, d.own))
	}
	kr, err := loadKeyring(cfg, d.own, log)
	if err != nil {
		return err
	}
	pol, err := d.buildPolicy(cfg)
	if err != nil {
		return err
	}
	signer, err := dkim.NewSigner(cfg.Site, cfg.DKIM.Selector, key)
	if err != nil {
		return err
	}

	d.db, err = store.Open(cfg.DBPath(), store.Options{Timeout: 2 * time.Second})
	if err != nil {
		return err
	}
	defer d.db.Close()

	d.reg = prometheus.NewRegistry()
	d.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d.met = metrics.New(d.reg)
	metrics.RegisterStore(d.reg,
		func() float64 { s, _ := d.db.Stats(); return float64(s.Listings) },
		func() float64 { s, _ := d.db.Stats(); return float64(s.Pending) })

	if err := d.buildActions(); err != nil {
		return err
	}
	if err := d.buildFeeds(); err != nil {
		return err
	}
	if err := d.buildDNS(); err != nil {
		return err
	}
	reportQsDNS := d.dnsQueues()
	d.removalQs = append(d.removalQs, reportQsDNS...)
	var reportQs []string
	for _, a := range d.actions {
		if a.Wants(store.Event{Kind: store.EventReport}) {
			reportQs = append(reportQs, a.Name())
		}
		if a.Wants(store.Event{Kind: store.EventExpired}) || a.Wants(store.Event{Kind: store.EventDelisted}) {
			d.removalQs = append(d.removalQs, a.Name())
		}
	}
	d.in = ingest.New(ingest.Options{
		Site:        cfg.Site,
		Store:       d.db,
		Signer:      signer,
		Limits:      article.Limits{MaxBytes: cfg.NNTP.MaxArticleBytes},
		HistoryKeep: cfg.History.Keep.Duration,
		MaxFuture:   cfg.History.MaxFuture.Duration,
		Listing: store.IngestParams{
			ExpireBase: cfg.Listing.Expire.Duration,
			ExpireMax:  cfg.Listing.MaxExpire.Duration,
			Threshold:  cfg.Policy.Threshold,
			Window:     cfg.Policy.Window.Duration,
		},
		ReportQueues: append(reportQs, reportQsDNS...),
		Listed:       d.dnsListed,
		// A cancel that removes a listing tells the same queues and the
		// DNS index as dstctl delist does.
		RemovalQueues: d.removalQs,
		UpdateQueues:  reportQsDNS,
		Removed:       d.dnsRemoved,
		FeedQueues:    d.feedQueues,
		Notify:        d.kick,
		Metrics:       d.met,
		Log:           log,
	}, kr, pol)

	if err := d.loadServerTLS(); err != nil {
		return err
	}
	// Listeners first, so that a port in use fails the start at once.
	nntpLs, err := d.nntpListeners()
	if err != nil {
		return err
	}
	adminLs, err := d.adminListeners()
	if err != nil {
		for _, l := range nntpLs {
			l.Close()
		}
		return err
	}
	srv := d.nntpServer()

	log.Info("dstd started", "version", version, "site", cfg.Site, "config", orNone(confPath),
		"data_dir", cfg.DataDir, "db", cfg.DBPath(), "nntp", strings.Join(d.listenAddrs, ","),
		"admin", cfg.Admin.Socket+orEmpty(","+cfg.Admin.Listen, cfg.Admin.Listen != ""),
		"spool", cfg.SpoolDir, "report_log", orNone(cfg.Actions.Log.File), "keyring", cfg.DKIM.Keyring,
		"keys", kr.Len(), "dns", strings.Join(cfg.DNS.Listen, ","), "zone", cfg.DNS.Zone)

	runCtx, cancelRun := context.WithCancel(context.Background())
	defer cancelRun()
	var wg sync.WaitGroup
	goRun := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }

	for i, a := range d.actions {
		a, kick := a, d.kicks[i]
		// The report log runs one event at a time, so its lines keep the
		// queue's order; the runner does not wait for an event's ack
		// before the next one, so acks still share commits.
		opt := action.RunnerOptions{Log: log.With("action", a.Name()), Metrics: d.met, Kick: kick, Stats: d.stats[i]}
		if a.Name() == action.ProgramName {
			opt.Concurrency = cfg.Actions.Program.Concurrency
			opt.MaxAttempts = cfg.Actions.Program.MaxAttempts
		}
		goRun(func() {
			if err := action.Run(runCtx, d.db, a, opt); err != nil {
				log.Error("action stopped", "action", a.Name(), "err", err)
			}
		})
	}
	for _, f := range d.feeders {
		f := f
		goRun(func() {
			if err := f.Run(runCtx); err != nil {
				log.Error("feed stopped", "err", err)
			}
		})
	}
	if err := d.runDNS(runCtx, goRun); err != nil {
		cancelRun()
		for _, l := range append(nntpLs, adminLs...) {
			l.Close()
		}
		wg.Wait()
		return err
	}
	goRun(func() { d.sweep(runCtx) })
	goRun(func() { d.pickUpSpool(runCtx) })
	for _, l := range adminLs {
		l := l
		goRun(func() {
			if err := admin.Serve(runCtx, l, d.adminHandler(l, log)); err != nil {
				log.Error("admin endpoint stopped", "addr", l.Addr(), "err", err)
			}
		})
	}
	srvDone := make(chan struct{})
	var srvWG sync.WaitGroup
	for _, l := range nntpLs {
		l := l
		srvWG.Add(1)
		go func() {
			defer srvWG.Done()
			if err := srv.Serve(runCtx, l); err != nil && runCtx.Err() == nil {
				log.Error("NNTP listener stopped", "addr", l.Addr(), "err", err)
			}
		}()
	}
	go func() { srvWG.Wait(); close(srvDone) }()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	for loop := true; loop; {
		select {
		case <-ctx.Done():
			loop = false
		case <-hup:
			d.reload()
		case <-usr1:
			d.resyncDNS(runCtx, goRun)
		}
	}

	// Staged shutdown: stop taking articles, let the ones being received
	// finish (their answer comes only after their commit), then stop the
	// loops and close the store.
	log.Info("dstd stopping")
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		log.Warn("NNTP connections cut at shutdown", "err", err)
	}
	cancelRun()
	<-srvDone
	wg.Wait()
	log.Info("dstd stopped")
	return nil
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

// groupID is the id of the group a key names, -1 for "". Validate has
// checked it exists; it is looked up again for the id.
func groupID(name, key string) (int, error) {
	if name == "" {
		return -1, nil
	}
	id, err := config.LookupGroup(name)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", key, err)
	}
	return id, nil
}

// ensureDataDir creates the data directory where it is missing: 0750, or,
// with admin.group, 0710 and that group, so that its members can reach
// admin.sock without reading the keys and the database.
func ensureDataDir(dir string, adminGID int, adminGroup string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("creating the data directory: %w", err)
	}
	if adminGID < 0 {
		return nil
	}
	if err := giveToGroup(dir, adminGID, adminGroup, 0o710); err != nil {
		return fmt.Errorf("creating the data directory: %w", err)
	}
	return nil
}

// giveToGroup sets path's group and mode. Only root, or a member of the
// group, may give a file to a group: the error says so.
func giveToGroup(path string, gid int, group string, mode os.FileMode) error {
	if err := os.Chown(path, -1, gid); err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("giving %s to group %s: %w (make dstd's user a member: usermod -aG %s USER, then restart dstd)", path, group, err, group)
		}
		return fmt.Errorf("giving %s to group %s: %w", path, group, err)
	}
	return os.Chmod(path, mode)
}

// ensureSpool creates the spool (dstc's submission directory: it holds
// tmp/, new/ and the NNTP socket) where it is missing. With
// nntp.submit_group, what it creates is that group's, mode 3770 whatever
// the umask: setgid, so the files dstc writes keep the group and dstd can
// read them, and sticky, so that a member can neither remove another's
// report nor swap tmp/, new/ or the socket for a link of its own (dstd
// would then read and delete files elsewhere). Without, 0700: only dstd's
// user may submit. Directories that exist are the administrator's and keep
// their modes, but a spool the submission group cannot write, or that is
// not sticky, is worth a warning.
func ensureSpool(dir string, gid int, group string, log *slog.Logger) error {
	for _, d := range []string{dir, filepath.Join(dir, "tmp"), filepath.Join(dir, "new")} {
		if fi, err := os.Stat(d); err == nil {
			if gid < 0 {
				continue
			}
			st, ok := fi.Sys().(*syscall.Stat_t)
			fix := fmt.Sprintf("chgrp %s %s && chmod 3770 %s", group, d, d)
			if ok && (int(st.Gid) != gid || fi.Mode().Perm()&0o070 != 0o070) {
				log.Warn("the spool directory is not writable by nntp.submit_group: dstc run by its members cannot spool while dstd is down",
					"dir", d, "group", group, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()), "fix", fix)
			} else if fi.Mode()&os.ModeSticky == 0 {
				log.Warn("the spool directory is not sticky: a member of nntp.submit_group can remove others' reports, or swap a directory for a link",
					"dir", d, "group", group, "fix", fix)
			}
			continue
		}
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("creating the spool directory: %w", err)
		}
		if gid < 0 {
			if err := os.Chmod(d, 0o700); err != nil {
				return fmt.Errorf("creating the spool directory: %w", err)
			}
			continue
		}
		if err := giveToGroup(d, gid, group, 0o770|os.ModeSetgid|os.ModeSticky); err != nil {
			return fmt.Errorf("creating the spool directory: %w", err)
		}
	}
	return nil
}

// warnUnreachable logs when the members of group cannot reach the socket at
// path because a directory above it does not let them through: the mode and
// group of the socket are then no help, and they would see "permission
// denied" with no hint of why.
func warnUnreachable(log *slog.Logger, path, group string, gid int, key string) {
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return
		}
		perm := fi.Mode().Perm()
		st, ok := fi.Sys().(*syscall.Stat_t)
		if ok && perm&0o001 == 0 && !(int(st.Gid) == gid && perm&0o010 != 0) {
			log.Warn("members of "+key+" cannot reach the socket: a directory above it does not let them through",
				"socket", path, "group", group, "dir", dir, "mode", fmt.Sprintf("%04o", perm),
				"fix", fmt.Sprintf("chgrp %s %s && chmod g+x %s", group, dir, dir))
			return
		}
		if dir == filepath.Dir(dir) {
			return
		}
	}
}

func (d *daemon) kick() {
	for _, ks := range [][]chan struct{}{d.kicks, d.feedKicks} {
		for _, k := range ks {
			select {
			case k <- struct{}{}:
			default:
			}
		}
	}
}

func (d *daemon) buildActions() error {
	c := d.cfg.Actions
	if c.Log.File != "" {
		rl, err := action.NewReportLog(c.Log.File)
		if err != nil {
			return err
		}
		d.reportLog = rl
		d.actions = append(d.actions, rl)
	}
	if len(c.Program.Command) > 0 {
		d.actions = append(d.actions, action.NewProgram(action.ProgramConfig{
			Command: c.Program.Command,
			Timeout: c.Program.Timeout.Duration,
			Store:   d.db,
			Log:     d.log,
		}))
	}
	for range d.actions {
		d.kicks = append(d.kicks, make(chan struct{}, 1))
		d.stats = append(d.stats, new(action.Stats))
	}
	return nil
}

// buildPolicy reads the policy settings and the allow file.
func (d *daemon) buildPolicy(cfg *config.Config) (*policy.Policy, error) {
	own, _ := config.ParsePrefixes(cfg.Policy.OwnNetworks)
	allow, _ := config.ParsePrefixes(cfg.Policy.Allow)
	more, err := readAllowFile(cfg.Policy.AllowFile)
	if err != nil {
		return nil, err
	}
	return policy.New(policy.Config{OwnNetworks: own, Allow: append(allow, more...), AllowDocumentation: cfg.Policy.AllowDocumentation}), nil
}

// readAllowFile reads one address or CIDR per line ('#' comments); a
// missing file is an empty list.
func readAllowFile(path string) ([]netip.Prefix, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("allow file: %w", err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		if _, err := config.ParsePrefixes([]string{line}); err != nil {
			return nil, fmt.Errorf("allow file %s line %d: %w", path, n, err)
		}
		lines = append(lines, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("allow file %s: %w", path, err)
	}
	return config.ParsePrefixes(lines)
}

// reload applies what SIGHUP may change: keyring, policy and allow file,
// and reopens the report log (logrotate). Other keys need a restart.
func (d *daemon) reload() {
	cfg, err := config.Load(d.confPath)
	if err != nil {
		d.log.Error("reload failed, keeping the running configuration", "err", err)
		return
	}
	kr, err := loadKeyring(cfg, d.own, d.log)
	if err != nil {
		d.log.Error("reload failed, keeping the running keyring", "err", err)
		return
	}
	pol, err := d.buildPolicy(cfg)
	if err != nil {
		d.log.Error("reload failed, keeping the running policy", "err", err)
		return
	}
	d.in.SetKeyring(kr)
	d.in.SetPolicy(pol)
	if d.reportLog != nil {
		if err := d.reportLog.Reopen(); err != nil {
			d.log.Error("cannot reopen the report log", "err", err)
		}
	}
	d.log.Info("configuration reloaded", "keys", kr.Len())
}

func (d *daemon) nntpListeners() ([]net.Listener, error) {
	var ls []net.Listener
	fail := func(err error) ([]net.Listener, error) {
		for _, l := range ls {
			l.Close()
		}
		return nil, err
	}
	for _, a := range d.cfg.NNTP.Listen {
		l, err := net.Listen("tcp", a)
		if err != nil {
			return fail(fmt.Errorf("NNTP listener: %w", err))
		}
		ls = append(ls, l)
		d.listenAddrs = append(d.listenAddrs, l.Addr().String())
	}
	for _, a := range d.cfg.TLS.Listen {
		l, err := net.Listen("tcp", a)
		if err != nil {
			return fail(fmt.Errorf("NNTPS listener: %w", err))
		}
		ls = append(ls, tls.NewListener(l, d.serverTLS))
		d.listenAddrs = append(d.listenAddrs, "tls:"+l.Addr().String())
	}
	if d.cfg.NNTP.Socket != "" {
		// Whoever can connect injects reports signed with the site's
		// key: dstd's user and root, and nntp.submit_group's members.
		mode := os.FileMode(0o600)
		if d.submitGID >= 0 {
			mode = 0o660
		}
		l, err := listenUnix(d.cfg.NNTP.Socket, mode, d.submitGID, d.cfg.NNTP.SubmitGroup)
		if err != nil {
			return fail(fmt.Errorf("NNTP socket: %w", err))
		}
		ls = append(ls, l)
		d.listenAddrs = append(d.listenAddrs, d.cfg.NNTP.Socket)
		if d.submitGID >= 0 {
			warnUnreachable(d.log, d.cfg.NNTP.Socket, d.cfg.NNTP.SubmitGroup, d.submitGID, "nntp.submit_group")
		}
	}
	return ls, nil
}

func (d *daemon) adminListeners() ([]net.Listener, error) {
	var ls []net.Listener
	// Whoever can connect may delist and cancel network-wide: dstd's
	// user and root (who ignores modes), and admin.group's members.
	mode := os.FileMode(0o600)
	if d.adminGID >= 0 {
		mode = 0o660
	}
	l, err := listenUnix(d.cfg.Admin.Socket, mode, d.adminGID, d.cfg.Admin.Group)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	ls = append(ls, l)
	if d.adminGID >= 0 {
		warnUnreachable(d.log, d.cfg.Admin.Socket, d.cfg.Admin.Group, d.adminGID, "admin.group")
	}
	if d.cfg.Admin.Listen != "" {
		if d.cfg.Admin.TokenFile != "" {
			tok, err := admin.ReadTokenFile(d.cfg.Admin.TokenFile)
			if err != nil {
				ls[0].Close()
				return nil, fmt.Errorf("admin.token_file: %w", err)
			}
			d.adminToken = tok
		}
		l, err := net.Listen("tcp", d.cfg.Admin.Listen)
		if err != nil {
			ls[0].Close()
			return nil, fmt.Errorf("admin listener: %w", err)
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// listenUnix replaces a stale socket file left by a crash; the store's lock
// already guarantees no other dstd runs on this data directory. The socket
// gets mode, and group gid unless it is -1. Between bind and chmod the
// socket has the umask's mode; the directory it is in (spool 3770 or 0700,
// data directory 0750 or 0710) keeps others out meanwhile.
func listenUnix(path string, mode os.FileMode, gid int, group string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(path)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if gid >= 0 {
		err = giveToGroup(path, gid, group, mode)
	} else {
		err = os.Chmod(path, mode)
	}
	if err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}
