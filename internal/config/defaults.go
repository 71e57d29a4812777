package config

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
)

// DefaultDataDir is where dstd keeps its database, keys and sockets when
// the configuration does not say: /var/lib/dst for root (a system daemon),
// else a directory under the user's home, so that a newcomer can try dstd
// without privileges.
func DefaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/dst"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "dst")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "dst")
	}
	return "dst-data"
}

// SystemAdminSockets are where the admin socket of the system's dstd is
// found, in the order dstctl tries them: the package's (/run/dst, its
// admin.socket), then the older layout's, in the system data directory.
func SystemAdminSockets() []string {
	return []string{"/run/dst/admin.sock", "/var/lib/dst/admin.sock"}
}

// DefaultAdminSocket is the admin endpoint dstctl talks to by default: the
// first of SystemAdminSockets that exists (an operator in admin.group can
// see it: /run/dst lets others through, and the older data directory
// let the group through), else that of a dstd this user runs without a
// configuration, as dstc's default spool is: /var/lib/dst/admin.sock for
// root.
//
// When none exists but the package is installed (its tmpfiles.d file,
// which anyone may see, is there), the package's socket is still the
// answer: its dstd is stopped, and "cannot reach /run/dst/admin.sock"
// says so better than a path in the user's home directory.
func DefaultAdminSocket() string {
	return AdminSocketOf(SystemAdminSockets(), PackageInstalled())
}

// AdminSocketOf is DefaultAdminSocket with other candidates: the first
// that exists; else, when packaged, the first candidate; else that of a
// dstd this user runs without a configuration.
func AdminSocketOf(candidates []string, packaged bool) string {
	p := FirstAdminSocket(candidates)
	if _, err := os.Stat(p); err != nil && packaged && len(candidates) > 0 {
		return candidates[0]
	}
	return p
}

// PackageInstalled reports whether the Debian package is installed.
func PackageInstalled() bool {
	_, err := os.Stat(packageMarker)
	return err == nil
}

const packageMarker = "/usr/lib/tmpfiles.d/dst.conf"

// FirstAdminSocket is DefaultAdminSocket with other candidates than
// SystemAdminSockets.
func FirstAdminSocket(candidates []string) string {
	for _, p := range candidates {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return filepath.Join(DefaultDataDir(), "admin.sock")
}

// DefaultSpoolDir is the spool (and submission) directory of a dstd that
// runs on DefaultDataDir: /var/spool/dst for root, else a directory in the
// user's data directory. dstc uses it too, so that dstd and dstc run by one
// user with no flags find each other.
func DefaultSpoolDir() string { return spoolDirFor(DefaultDataDir()) }

func spoolDirFor(dataDir string) string {
	if dataDir == "/var/lib/dst" {
		return "/var/spool/dst"
	}
	return filepath.Join(dataDir, "spool")
}

// SubmitSocket is the default path of dstd's NNTP submission socket for a
// spool directory: dstc derives it from -spool, dstd from spool_dir.
func SubmitSocket(spoolDir string) string { return filepath.Join(spoolDir, "nntp.sock") }

// LookupGroup returns the id of a Unix group, or an error saying how to
// create it.
func LookupGroup(name string) (int, error) {
	g, err := user.LookupGroup(name)
	var unknown user.UnknownGroupError
	if errors.As(err, &unknown) {
		return 0, fmt.Errorf("no group %q on this host: create it (groupadd --system %s) or fix the key", name, name)
	}
	if err != nil {
		return 0, fmt.Errorf("group %q: %w", name, err)
	}
	id, err := strconv.Atoi(g.Gid)
	if err != nil {
		return 0, fmt.Errorf("group %q has id %q, not a number", name, g.Gid)
	}
	return id, nil
}
