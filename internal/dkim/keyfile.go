package dkim

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// pemType is the PEM block type of a PKCS#8 private key (RFC 7468 §10).
const pemType = "PRIVATE KEY"

// GenerateKey creates a new Ed25519 key pair.
func GenerateKey() (ed25519.PublicKey, ed25519.PrivateKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating an Ed25519 key: %w", err)
	}
	return pub, priv, nil
}

// WritePrivateKey stores key at path as a PEM "PRIVATE KEY" (PKCS#8, the
// form openssl pkey reads), mode 0600. It never overwrites an existing
// file, since that would silently invalidate the key every peer has; the
// error then wraps fs.ErrExist. The file appears complete or not at all.
func WritePrivateKey(path string, key ed25519.PrivateKey) error {
	if len(key) != ed25519.PrivateKeySize {
		return fmt.Errorf("writing DKIM key %s: not an Ed25519 private key (%d bytes)", path, len(key))
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("writing DKIM key %s: %w", path, err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der})

	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("refusing to overwrite the DKIM key %s: %w (move it away first if you really mean to replace the site's key)", path, fs.ErrExist)
	}
	dir := filepath.Dir(path)
	// CreateTemp makes the file 0600, so the key is never readable by
	// others, not even for a moment.
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing DKIM key %s: %w", path, err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // after a successful link, only removes the extra name
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing DKIM key %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing DKIM key %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing DKIM key %s: %w", path, err)
	}
	// link, unlike rename, fails if path appeared meanwhile: no race can
	// make us replace a key.
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("refusing to overwrite the DKIM key %s: %w", path, fs.ErrExist)
		}
		return fmt.Errorf("writing DKIM key %s: %w", path, err)
	}
	// Make the new directory entry durable too.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// LoadPrivateKey reads a key written by WritePrivateKey (or by
// "openssl genpkey -algorithm ed25519"). A missing file gives an error that
// wraps fs.ErrNotExist. A key readable or writable by group or others is
// refused: whoever can read it can inject reports in the site's name.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the DKIM private key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading the DKIM private key: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("DKIM private key %s is not a regular file", path)
	}
	// Windows has no Unix permission bits to check.
	if perm := st.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return nil, fmt.Errorf("DKIM private key %s has mode %04o, so group or others can use it; run: chmod 600 %s", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, 64<<10)) // the file checked above, not a new lookup
	if err != nil {
		return nil, fmt.Errorf("reading the DKIM private key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("DKIM private key %s is not a PEM file (want a %q block)", path, pemType)
	}
	if block.Type != pemType {
		return nil, fmt.Errorf("DKIM private key %s holds a PEM %q block, want %q (PKCS#8); convert it with: openssl pkey -in %s", path, block.Type, pemType, path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("DKIM private key %s: %w", path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("DKIM private key %s is a %T, want an Ed25519 key (RFC 8463)", path, k)
	}
	return key, nil
}

// KeyringLine returns the keyring-file line ("domain selector base64key")
// that peers add to trust this key.
func KeyringLine(domain, selector string, pub ed25519.PublicKey) string {
	return fmt.Sprintf("%s %s %s", normName(domain), normName(selector), base64.StdEncoding.EncodeToString(pub))
}

// TXTRecord returns the zone-file line publishing pub in DNS at
// selector._domainkey.domain (RFC 6376 §3.6.2.1, key record per RFC 8463
// §4: the p= value is the raw 32-byte key, not SubjectPublicKeyInfo).
func TXTRecord(domain, selector string, pub ed25519.PublicKey) string {
	return fmt.Sprintf(`%s._domainkey.%s. IN TXT "v=DKIM1; k=ed25519; p=%s"`, normName(selector), normName(domain), base64.StdEncoding.EncodeToString(pub))
}
