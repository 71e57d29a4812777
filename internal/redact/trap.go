// Package redact keeps a site's trap addresses secret. A trap address that
// leaks is dead: spammers drop it from their lists, or feed it innocent
// mail to poison the blocklist. So a report names its trap only by a keyed
// hash (TrapHMAC: a site can tell which of its own traps was hit, and
// nobody else can), and Message removes the address, and every recipient
// field, from the trapped message the report carries to every site.
//
// The report carries the hash in its DST-Trap-HMAC field (arf.Report's
// TrapHMAC, docs/PROTOCOL.md §2.5); docs/ADMIN.md describes
// the secret file and how to find which trap a hash names.
package redact

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// Placeholder replaces every trap and recipient address. Its domain is
// reserved (RFC 2606 .invalid), so it can never be a real mailbox.
const Placeholder = "trap@redacted.invalid"

// hmacScheme prefixes the hex digest, so that another algorithm can follow
// without a new field.
const hmacScheme = "hmac-sha256:"

// MinSecret is the shortest secret accepted, in bytes after trimming: 16
// characters of `openssl rand -hex 32` are already 64 bits, and a short
// secret could be found by trying every value against a known trap.
const MinSecret = 16

// maxSecret bounds what is read from the secret file.
const maxSecret = 4096

// DefaultSecretFile is where dstc looks for the site's trap secret.
const DefaultSecretFile = "/etc/dst/trap-secret"

// Normalize returns the trap address in the one form that is hashed:
// without one pair of angle brackets or surrounding space, in lower case (domains are
// case-insensitive, RFC 5321 §2.4, and every common MTA folds local parts
// too: Postfix local(8) and Exim's default routers do). It refuses what is
// not local@domain.
func Normalize(addr string) (string, error) {
	a := strings.TrimSpace(addr)
	a = strings.TrimSuffix(strings.TrimPrefix(a, "<"), ">")
	at := strings.LastIndexByte(a, '@')
	if at <= 0 || at == len(a)-1 {
		return "", fmt.Errorf("trap address %q is not of the form local-part@domain", addr)
	}
	// A space may be in a quoted local part, which a catch-all trap
	// domain receives too; a control character never is.
	for _, r := range a {
		if r < ' ' || r == 0x7f {
			return "", fmt.Errorf("trap address %q contains a control character", addr)
		}
	}
	a = strings.ToLower(a)
	if strings.IndexByte(a[:at], '@') >= 0 {
		return "", fmt.Errorf("trap address %q has more than one @", addr)
	}
	if strings.TrimSuffix(a[at+1:], ".") == "redacted.invalid" {
		return "", fmt.Errorf("trap address %q is in the placeholder's domain", addr)
	}
	return a, nil
}

// TrapHMAC is the value of the DST-Trap-HMAC field for addr:
// "hmac-sha256:" and the lower-case hex HMAC-SHA256 (RFC 2104) of the
// normalized address (Normalize) under the site's secret. The same address
// always gives the same value at one site, and a value tells nothing to
// whoever lacks the secret.
func TrapHMAC(secret []byte, addr string) (string, error) {
	a, err := Normalize(addr)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(a))
	return hmacScheme + hex.EncodeToString(m.Sum(nil)), nil
}

// ErrNoSecret is wrapped by LoadSecret's error when the file does not exist.
var ErrNoSecret = errors.New("no trap secret file")

// LoadSecret reads the site's trap secret: the file's content without
// surrounding white space (so `openssl rand -hex 32 > FILE` and the shell's
// "$(cat FILE)" agree). It refuses a file that other users may read or
// write (it must be readable by the trap user only: anyone who reads it can
// tell which trap a report names, and test guessed addresses against the
// hashes), that is not a regular file, or whose secret is shorter than
// MinSecret.
func LoadSecret(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w %s: create one with `openssl rand -hex 32 > %s`, owned by the trap user, mode 0400 (docs/ADMIN.md)", ErrNoSecret, path, path)
	}
	if err != nil {
		return nil, fmt.Errorf("trap secret %s: %w (it must be readable by the user the MTA runs dstc as)", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("trap secret %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("trap secret %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o007 != 0 {
		return nil, fmt.Errorf("trap secret %s has mode %04o: every user of this host can read or change it and so tell which trap a report names; run `chmod o-rwx %s` (owner: the trap user, mode 0400)", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecret+1))
	if err != nil {
		return nil, fmt.Errorf("trap secret %s: %w", path, err)
	}
	if len(b) > maxSecret {
		return nil, fmt.Errorf("trap secret %s is larger than %d bytes: is it the right file?", path, maxSecret)
	}
	s := []byte(strings.TrimSpace(string(b)))
	if len(s) < MinSecret {
		return nil, fmt.Errorf("trap secret %s is shorter than %d characters: write a new one with `openssl rand -hex 32 > %s`", path, MinSecret, path)
	}
	return s, nil
}
