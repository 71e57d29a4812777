// Package check is "dstd check": it reads dstd's configuration as the
// daemon would and reports what would stop it or what is risky, without
// side effects. It creates, binds and writes nothing: it only opens for
// reading the files the configuration names.
package check

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/dst-traps/dst/internal/admin"
	"github.com/dst-traps/dst/internal/config"
	"github.com/dst-traps/dst/internal/dkim"
)

// Severity is how bad a finding is.
type Severity string

// The severities: an error stops dstd (check exits 1), a warning is a
// risky setting, a note is for information.
const (
	Error   Severity = "error"
	Warning Severity = "warning"
	Note    Severity = "note"
)

// Finding is one thing check says about one key.
type Finding struct {
	Severity Severity
	Key      string // "dkim.keyring", "peer[site-b.example].ca"
	Msg      string
}

func (f Finding) String() string { return fmt.Sprintf("%s: %s: %s", f.Severity, f.Key, f.Msg) }

// Main is dstd check: it loads the file at path (config.Load) and either
// prints the effective configuration (printConfig, like postconf -n) or
// reports the findings, one a line, and a summary on stderr. It returns
// the exit code: 1 on any error, else 0.
func Main(path string, printConfig bool, stdout, stderr io.Writer) int {
	c, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "error: config: %v\ndstd check: 1 error, 0 warnings\n", err)
		return 1
	}
	if printConfig {
		if err := Print(stdout, c); err != nil {
			fmt.Fprintln(stderr, "dstd check:", err)
			return 1
		}
		return 0
	}
	return Report(stderr, Check(c))
}

// Report prints the findings and the summary line, and returns the exit
// code: 1 if any is an error.
func Report(w io.Writer, findings []Finding) int {
	var errs, warns int
	for _, f := range findings {
		fmt.Fprintln(w, f)
		switch f.Severity {
		case Error:
			errs++
		case Warning:
			warns++
		}
	}
	fmt.Fprintf(w, "dstd check: %d %s, %d %s\n", errs, plural(errs, "error"), warns, plural(warns, "warning"))
	if errs > 0 {
		return 1
	}
	return 0
}

func plural(n int, s string) string {
	if n == 1 {
		return s
	}
	return s + "s"
}

// Print writes the effective configuration, defaults filled in, as TOML
// that loads back to the same configuration.
func Print(w io.Writer, c *config.Config) error {
	return toml.NewEncoder(w).Encode(c)
}

// Check returns what is wrong or risky in c: the files it names that
// cannot be read, and the settings that expose the site.
func Check(c *config.Config) []Finding {
	var out []Finding
	add := func(s Severity, key, format string, a ...any) {
		out = append(out, Finding{s, key, fmt.Sprintf(format, a...)})
	}

	// Files.
	if err := readable(c.DKIM.PrivateKey); errors.Is(err, fs.ErrNotExist) {
		add(Note, "dkim.private_key", "%s does not exist: dstd creates it at its first start (or run dstd keygen)", c.DKIM.PrivateKey)
	} else if err != nil {
		add(Error, "dkim.private_key", "%v", err)
	}
	// dstd reads the keyring as it does (dkim.LoadKeyring): a line it
	// would refuse is an error here too. A keyring the file names must
	// exist; one left to its default may not, yet.
	if _, err := dkim.LoadKeyring(c.DKIM.Keyring); errors.Is(err, fs.ErrNotExist) {
		switch {
		case c.IsSet("dkim.keyring"):
			add(Error, "dkim.keyring", "the keyring file %s does not exist, and dstd will not start without it: create it with a line per peer (each peer's `dstd keygen` prints its line), or remove dkim.keyring", c.DKIM.Keyring)
		case len(c.Peers) > 0:
			add(Warning, "dkim.keyring", "peers are configured but the keyring %s does not exist: their reports cannot be verified unless DNS has their keys", c.DKIM.Keyring)
		}
	} else if err != nil {
		add(Error, "dkim.keyring", "%v", err)
	}
	if err := readable(c.Policy.AllowFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		add(Error, "policy.allow_file", "%v", err)
	}
	if c.TLS.Cert != "" || c.TLS.Key != "" {
		if _, err := tls.LoadX509KeyPair(c.TLS.Cert, c.TLS.Key); err != nil {
			add(Error, "tls.cert", "tls.cert %s and tls.key %s: %v", c.TLS.Cert, c.TLS.Key, err)
		}
	}
	if c.Admin.TokenFile != "" {
		if _, err := admin.ReadTokenFile(c.Admin.TokenFile); err != nil {
			add(Error, "admin.token_file", "%v", err)
		}
	}
	for _, p := range c.Peers {
		key := "peer[" + p.Name + "]."
		if p.ClientCert != "" {
			if err := pemCerts(p.ClientCert); err != nil {
				add(Error, key+"client_cert", "%v", err)
			}
		}
		if p.CA != "" {
			if err := pemCerts(p.CA); err != nil {
				add(Error, key+"ca", "%v", err)
			}
		}
	}

	// Risky settings.
	if !c.Admin.Listen.IsZero() && !loopback(c.Admin.Listen.Host) {
		add(Warning, "admin.listen", "%s is not loopback: whoever has the token and reaches it can delist and cancel; prefer the socket or an SSH tunnel", c.Admin.Listen)
	}
	if len(c.DNS.NS) == 0 && (len(c.DNS.AllowTransfer) > 0 || len(c.DNS.Notify) > 0 || c.DNS.TransferKeyName != "") {
		add(Warning, "dns.ns", "empty: the zone's NS is the default ns.%s, but secondaries serve it (dns.allow_transfer, dns.notify or dns.transfer_key_name); list the names they answer as", c.DNS.Zone)
	}
	for _, p := range c.Peers {
		key := "peer[" + p.Name + "]."
		if p.TLS == config.PeerTLSNone && !p.Feed.IsZero() && !loopback(p.Feed.Host) {
			add(Warning, key+"tls", "feed %s is not loopback and uses no TLS: reports and AUTHINFO travel in clear", p.Feed)
		}
		if p.ClientCert == "" {
			for _, a := range p.Addresses {
				if !a.Addr().Unmap().IsLoopback() {
					add(Warning, key+"addresses", "%s is not loopback and the peer presents no client_cert: it is known by its address alone", a)
					break
				}
			}
		}
	}
	if len(c.NNTP.PostAllow) > 0 {
		add(Warning, "nntp.post_allow", "not empty: anyone on %s can inject reports signed with this site's key", joinPrefixes(c.NNTP.PostAllow))
	}
	return out
}

// readable opens path for reading and closes it.
func readable(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return f.Close()
}

// pemCerts reads path as one or more PEM certificates.
func pemCerts(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	n := 0
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return fmt.Errorf("%s: %v", path, err)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("%s holds no PEM certificate", path)
	}
	return nil
}

// loopback reports whether host is a loopback address or localhost; an
// empty host (every interface) or another name is not.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

func joinPrefixes(ps config.Prefixes) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}
