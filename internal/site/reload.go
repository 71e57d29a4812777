package site

import (
	"bufio"
	"crypto/tls"
	"encoding"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"sync/atomic"

	"github.com/dst-traps/dst/internal/config"
	"github.com/dst-traps/dst/internal/dkim"
	"github.com/dst-traps/dst/internal/policy"
)

// reloadable are the keys Reload applies; a change to any other key is
// logged as needing a restart. tls.cert and tls.key are reloaded only
// when the site started with a certificate (STARTTLS and tls.listen are
// set up at start).
var reloadable = map[string]bool{
	"dkim.keyring": true, "dkim.dns_key_domains": true, "dkim.dns_key_server": true,
	"policy.own_networks": true, "policy.allow": true, "policy.allow_file": true, "policy.allow_documentation": true, "policy.list_classes": true,
	"tls.cert": true, "tls.key": true,
}

// load reads what a snapshot holds: the keyring and the policy of cfg.
// prev is the snapshot in force (nil at the start): a keyring file it
// read at the same path must still be there.
func (s *Site) load(cfg *config.Config, prev *snapshot) (*snapshot, error) {
	required := prev != nil && prev.krFile && prev.cfg.DKIM.Keyring == cfg.DKIM.Keyring
	kr, fromFile, err := loadKeyring(cfg, required, s.log)
	if err != nil {
		return nil, err
	}
	// The site's own key, so that the reports it injects always verify
	// here: under the name and selector it signs with, those it started
	// with (site and dkim.selector need a restart).
	kr.Add(s.cfg.Site, s.cfg.DKIM.Selector, s.own)
	pol, err := buildPolicy(cfg)
	if err != nil {
		return nil, err
	}
	return &snapshot{cfg: cfg, pol: pol, kr: kr, krFile: fromFile}, nil
}

// Reload applies what SIGHUP may change: the keyring, the policy and the
// allow file, and the TLS certificate; and it reopens the report log
// (logrotate). The other keys need a restart: those that changed since the
// start are named in one warning. On an error (a keyring file that is
// gone among them) nothing changes. Keys the keyring loses are named in a
// warning: the reports they sign are refused from now on.
func (s *Site) Reload(cfg *config.Config) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	prev := s.snap.Load()
	snap, err := s.load(cfg, prev)
	if err != nil {
		s.log.Error("reload failed, keeping the running configuration", "err", err)
		return err
	}
	if s.cert != nil && cfg.TLS.Cert != "" {
		if err := s.cert.reload(cfg.TLS.Cert, cfg.TLS.Key); err != nil {
			s.log.Error("reload failed, keeping the running configuration and certificate", "err", err)
			return err
		}
	}
	s.snap.Store(snap)
	s.in.SetKeyring(snap.kr)
	s.in.SetPolicy(snap.pol)
	s.initMetrics() // the keyring's new origins
	if s.reportLog != nil {
		if err := s.reportLog.Reopen(); err != nil {
			s.log.Error("cannot reopen the report log", "err", err)
		}
	}
	if lost := lostKeys(prev.kr, snap.kr); len(lost) > 0 {
		s.log.Warn("the reload removed keys from the keyring: reports signed with them are refused from now on (put their lines back in the keyring file and send SIGHUP again if that was a mistake)",
			"keyring", cfg.DKIM.Keyring, "lost", strings.Join(lost, ","))
	}
	if keys := restartKeys(s.cfg, cfg, s.cert != nil); len(keys) > 0 {
		s.log.Warn("configuration keys changed that SIGHUP does not apply; restart dstd to apply them", "keys", strings.Join(keys, ","))
	}
	s.log.Info("configuration reloaded", "keys", snap.kr.Len())
	return nil
}

// restartKeys are the keys that differ between the configuration the site
// started with and cfg and that Reload does not apply. The certificate is
// reloaded only when the site started with one (STARTTLS and tls.listen
// are set up at the start).
func restartKeys(started, cfg *config.Config, hasCert bool) []string {
	var out []string
	for _, k := range changedKeys(started, cfg) {
		if reloadable[k] && (!strings.HasPrefix(k, "tls.") || (hasCert && cfg.TLS.Cert != "")) {
			continue
		}
		out = append(out, k)
	}
	return out
}

// lostKeys names the keys ("domain/selector") of the keyring file that old
// has and cur lacks.
func lostKeys(old, cur *dkim.Keyring) []string {
	have := make(map[string]bool)
	for _, k := range cur.Keys() {
		have[k.Domain+"/"+k.Selector] = true
	}
	var lost []string
	for _, k := range old.Keys() {
		if id := k.Domain + "/" + k.Selector; !have[id] {
			lost = append(lost, id)
		}
	}
	return lost
}

// changedKeys names the keys (as the file spells them, "nntp.listen") whose
// values differ between a and b. A list of tables ([[peer]]) counts as one
// key.
func changedKeys(a, b *config.Config) []string {
	var out []string
	var walk func(prefix string, va, vb reflect.Value)
	walk = func(prefix string, va, vb reflect.Value) {
		t := va.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if name == "" || name == "-" {
				continue
			}
			fa, fb := va.Field(i), vb.Field(i)
			// A table is walked; a value that parses itself (a duration,
			// an address) is one key, however it is stored.
			if f.Type.Kind() == reflect.Struct && !reflect.PointerTo(f.Type).Implements(reflect.TypeFor[encoding.TextUnmarshaler]()) {
				walk(prefix+name+".", fa, fb)
				continue
			}
			if !reflect.DeepEqual(fa.Interface(), fb.Interface()) {
				out = append(out, prefix+name)
			}
		}
	}
	walk("", reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem())
	return out
}

// buildPolicy reads the policy settings and the allow file.
func buildPolicy(cfg *config.Config) (*policy.Policy, error) {
	more, err := readAllowFile(cfg.Policy.AllowFile)
	if err != nil {
		return nil, err
	}
	allow := append(cfg.Policy.Allow.Netip(), more...)
	classes := make([]string, len(cfg.Policy.ListClasses))
	for i, c := range cfg.Policy.ListClasses {
		classes[i] = string(c)
	}
	return policy.New(policy.Config{OwnNetworks: cfg.Policy.OwnNetworks.Netip(), Allow: allow, AllowDocumentation: cfg.Policy.AllowDocumentation,
		ListClasses: classes}), nil
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
	var out []netip.Prefix
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		// The rule of policy.allow: a CIDR, or a bare address.
		p, err := config.ParsePrefix(line)
		if err != nil {
			return nil, fmt.Errorf("allow file %s line %d: %w", path, n, err)
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("allow file %s: %w", path, err)
	}
	return out, nil
}

// certificate is the site's TLS key pair, read once and handed out to each
// handshake (server and feed client alike), so that Reload can replace it
// for the connections that follow.
type certificate struct {
	p atomic.Pointer[tls.Certificate]
}

func loadCertificate(certFile, keyFile string) (*certificate, error) {
	c := new(certificate)
	if err := c.reload(certFile, keyFile); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *certificate) reload(certFile, keyFile string) error {
	kp, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("tls.cert/tls.key: %w (check that both files are PEM, that the key matches the certificate, and that dstd's user can read them)", err)
	}
	c.p.Store(&kp)
	return nil
}

// get is tls.Config.GetCertificate.
func (c *certificate) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.p.Load(), nil }

// getClient is tls.Config.GetClientCertificate: the certificate goes to
// every server that asks for one.
func (c *certificate) getClient(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return c.p.Load(), nil
}

// serverTLS is the configuration of STARTTLS and the implicit-TLS
// listeners, nil without a certificate. Client certificates are
// requested, not required: peers pinned with client_cert are matched in
// authorize, others may use AUTHINFO.
func (s *Site) serverTLS() *tls.Config {
	if s.cert == nil {
		return nil
	}
	return &tls.Config{
		GetCertificate: s.cert.get,
		ClientAuth:     tls.RequestClientCert,
		MinVersion:     tls.VersionTLS12,
	}
}
