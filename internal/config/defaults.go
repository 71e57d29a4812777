package config

import (
	"os"
	"path/filepath"
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

// DefaultAdminSocket is the admin endpoint dstctl talks to by default.
func DefaultAdminSocket() string {
	return filepath.Join(DefaultDataDir(), "admin.sock")
}
