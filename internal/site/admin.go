package site

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/dst-traps/dst/internal/action"
	"github.com/dst-traps/dst/internal/admin"
	"github.com/dst-traps/dst/internal/ingest"
	"github.com/dst-traps/dst/internal/store"
)

// The site is the admin endpoint's Backend.
var _ admin.Backend = (*Site)(nil)

// adminHandler is the admin API for listener l. The TCP listener also
// wants admin.token_file's token, or a loopback Host when there is none;
// the Unix socket's file mode already says who may connect.
func (s *Site) adminHandler(l net.Listener) http.Handler {
	h := admin.Handler(s, s.reg, s.log)
	if l.Addr().Network() == "tcp" {
		return admin.ForTCP(h, s.adminToken)
	}
	return h
}

func (s *Site) Status(ctx context.Context) (admin.Status, error) {
	st, err := s.db.Stats()
	if err != nil {
		return admin.Status{}, err
	}
	qs, err := s.Queues(ctx)
	if err != nil {
		return admin.Status{}, err
	}
	adm := []string{s.cfg.Admin.Socket}
	if !s.cfg.Admin.Listen.IsZero() {
		adm = append(adm, s.cfg.Admin.Listen.String())
	}
	return admin.Status{
		Version: s.version, Site: s.cfg.Site, DataDir: s.cfg.DataDir, Listen: s.listenAddrs, Admin: adm,
		Started: s.started, UptimeSeconds: int64(time.Since(s.started).Seconds()),
		Listings: st.Listings, Pending: st.Pending, History: st.History, Articles: st.Articles, DBBytes: st.FileBytes,
		Queues: qs,
	}, nil
}

func (s *Site) Lookup(_ context.Context, ip netip.Addr) (store.Listing, bool, error) {
	return s.db.Lookup(ip)
}

func (s *Site) List(_ context.Context, fn func(store.Listing) error) error {
	return s.db.ForEachListing(fn)
}

// Delist removes a listing now; with allow, the address also goes into the
// allow file (and the running policy), so it is never listed again.
func (s *Site) Delist(_ context.Context, ip netip.Addr, allow bool) (bool, error) {
	ip = ip.Unmap()
	if allow {
		if err := s.addToAllowFile(ip); err != nil {
			return false, err
		}
	}
	// The commit observer (committed) takes the removal to the DNS
	// index and the metrics, and wakes the queues' consumers.
	// The delisting counts against the origins that reported ip; one
	// whose share of disputed addresses passes policy.dispute_share goes
	// back on probation.
	pol := s.cfg.Policy // like the other trust keys, applied at a restart
	r, err := s.db.AdminDelist(ip, time.Now(), "dstctl", store.DisputeParams{
		Self: strings.ToLower(s.cfg.Site), Share: pol.DisputeShare, MinAddresses: pol.DisputeMinAddresses})
	if err != nil {
		return false, err
	}
	s.log.Info("delisted by the administrator", "ip", ip, "was_listed", r.Found, "allowed", allow, "disputed_origins", r.Disputed)
	for _, o := range r.Demoted {
		s.log.Warn("origin put back on probation: the administrator delisted too many of the addresses it reported (policy.dispute_share); see dstctl origins",
			"origin", o, "dispute_share", pol.DisputeShare)
		if s.met != nil {
			s.met.OriginsDemoted.Inc()
		}
	}
	return r.Found, nil
}

// Cancel withdraws a report of this site across the network.
func (s *Site) Cancel(ctx context.Context, messageID string) (admin.CancelResult, error) {
	r, err := s.in.InjectCancel(ctx, messageID)
	if errors.Is(err, ingest.ErrCannotCancel) {
		return admin.CancelResult{}, &admin.RequestError{Err: err}
	}
	if err != nil {
		return admin.CancelResult{}, err
	}
	return admin.CancelResult{MessageID: messageID, Cancel: r.MessageID, IP: r.IP,
		Delisted: r.Delisted, Listed: r.Listed, Origins: r.Origins}, nil
}

// addToAllowFile appends ip to the allow file and rebuilds the running
// policy from the configuration in force: the last Reload's, so that a
// delisting never undoes a reload. reloadMu orders it with Reload.
func (s *Site) addToAllowFile(ip netip.Addr) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	cur := s.snap.Load()
	f, err := os.OpenFile(cur.cfg.Policy.AllowFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("allow file: %w", err)
	}
	_, err = fmt.Fprintf(f, "%s # dstctl delist -allow, %s\n", ip, time.Now().UTC().Format(time.RFC3339))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("allow file: %w", err)
	}
	pol, err := buildPolicy(cur.cfg)
	if err != nil {
		return err
	}
	s.snap.Store(&snapshot{cfg: cur.cfg, pol: pol, kr: cur.kr, krFile: cur.krFile})
	s.in.SetPolicy(pol)
	return nil
}

func (s *Site) Queues(_ context.Context) ([]admin.QueueStatus, error) {
	var out []admin.QueueStatus
	for i, a := range s.actions {
		n, err := s.db.QueueDepth(a.Name())
		if err != nil {
			return nil, err
		}
		st := s.stats[i].Snapshot()
		out = append(out, admin.QueueStatus{Name: a.Name(), Depth: n, Done: st.Done, Failures: st.Failures,
			LastError: st.LastError, LastErrorTime: st.LastErrorTime, LastSuccess: st.LastSuccess})
	}
	return out, nil
}

var _ action.Queue = (*store.DB)(nil)

func (s *Site) Keys(_ context.Context) ([]admin.KeyStatus, error) {
	var out []admin.KeyStatus
	for _, k := range s.snap.Load().kr.Keys() {
		out = append(out, admin.KeyStatus{Site: k.Domain, Selector: k.Selector,
			PublicKey: base64.StdEncoding.EncodeToString(k.Public),
			Own:       k.Domain == strings.ToLower(s.cfg.Site) && k.Selector == strings.ToLower(s.cfg.DKIM.Selector) && k.Public.Equal(s.own),
			Operator:  k.Operator, Probation: k.Probation})
	}
	return out, nil
}

func (s *Site) Resync(ctx context.Context) (admin.ResyncResult, error) {
	if s.dns == nil || s.dns.updater == nil {
		return admin.ResyncResult{}, &admin.RequestError{Err: errors.New("no DNS UPDATE server is configured ([dns.update] server): nothing to resynchronise")}
	}
	s.log.Info("DNS UPDATE resynchronisation requested", "by", "dstctl")
	if err := s.dns.updater.Resync(ctx, s.resyncSource); err != nil {
		return admin.ResyncResult{}, fmt.Errorf("DNS UPDATE resynchronisation: %w", err)
	}
	r := s.dns.updater.LastResync()
	s.log.Info("DNS UPDATE resynchronised", "wanted", r.Wanted, "present", r.Present, "added", r.Added, "fixed", r.Fixed, "removed", r.Removed)
	return admin.ResyncResult{Wanted: r.Wanted, Present: r.Present, Added: r.Added, Fixed: r.Fixed, Removed: r.Removed}, nil
}
