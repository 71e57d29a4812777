package site

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/dst-traps/dst/internal/config"
	"github.com/dst-traps/dst/internal/dkim"
)

// Keygen creates the site's key if it has none and prints what peers need.
// Running it again only prints: a site must not change keys by accident.
func Keygen(cfg *config.Config, out io.Writer) error {
	key, created, err := loadOrCreateKey(cfg.DKIM.PrivateKey)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(out, "Created the DKIM key of %s in %s.\n", cfg.Site, cfg.DKIM.PrivateKey)
	} else {
		fmt.Fprintf(out, "%s already holds the DKIM key of %s; it was left as it is.\n", cfg.DKIM.PrivateKey, cfg.Site)
	}
	pub := key.Public().(ed25519.PublicKey)
	fmt.Fprintf(out, "\nGive this line to each peer, for its keyring file:\n\n%s\n\n", dkim.KeyringLine(cfg.Site, cfg.DKIM.Selector, pub))
	fmt.Fprintf(out, "Or publish the key in DNS:\n\n%s\n", dkim.TXTRecord(cfg.Site, cfg.DKIM.Selector, pub))
	return nil
}

func loadOrCreateKey(path string) (ed25519.PrivateKey, bool, error) {
	key, err := dkim.LoadPrivateKey(path)
	if err == nil {
		return key, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, false, fmt.Errorf("creating the key's directory: %w", err)
	}
	_, key, err = dkim.GenerateKey()
	if err != nil {
		return nil, false, err
	}
	if err := dkim.WritePrivateKey(path, key); err != nil {
		return nil, false, err
	}
	return key, true, nil
}

// loadKeyring reads the keyring file (the caller adds the site's own
// key). A missing file is an
// empty keyring only when the configuration left dkim.keyring to its
// default and required is false: a keyring the administrator named, or
// one the running site has read (required, at a reload), that is gone is
// an error, not a silent loss of every peer's key. fromFile tells whether
// the file was read.
func loadKeyring(cfg *config.Config, required bool, log *slog.Logger) (kr *dkim.Keyring, fromFile bool, err error) {
	kr, err = dkim.LoadKeyring(cfg.DKIM.Keyring)
	fromFile = err == nil
	if errors.Is(err, fs.ErrNotExist) {
		switch {
		case cfg.IsSet("dkim.keyring"):
			return nil, false, fmt.Errorf("dkim.keyring: the keyring file %s does not exist: create it with a line per peer (each peer's `dstd keygen` prints its line), or remove dkim.keyring from the configuration to run without one", cfg.DKIM.Keyring)
		case required:
			return nil, false, fmt.Errorf("dkim.keyring: the keyring file %s was read before and is gone: put it back (reports of the peers in it would be refused), or restart dstd to run without one", cfg.DKIM.Keyring)
		}
		kr, err = dkim.ParseKeyring(strings.NewReader(""))
		if len(cfg.Peers) > 0 {
			log.Warn("no keyring file, but peers are configured: their reports are refused unless DNS has their keys (dkim.dns_key_domains); create the keyring with a line per peer", "keyring", cfg.DKIM.Keyring)
		} else {
			log.Info("no keyring file: only this site's own reports are trusted", "keyring", cfg.DKIM.Keyring)
		}
	}
	if err != nil {
		return nil, false, err
	}
	kr.SetDNSKeys(dkim.DNSKeys{Domains: cfg.DKIM.DNSKeyDomains, Server: cfg.DKIM.DNSKeyServer.String()})
	return kr, fromFile, nil
}
