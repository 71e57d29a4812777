package config

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestFirstAdminSocket: the package's /run/dst/admin.sock first, the older
// layout's next, each only when it exists, else the socket of a dstd on
// the default data directory.
func TestFirstAdminSocket(t *testing.T) {
	if got := SystemAdminSockets(); len(got) != 2 || got[0] != "/run/dst/admin.sock" || got[1] != "/var/lib/dst/admin.sock" {
		t.Errorf("SystemAdminSockets() = %q, want /run/dst/admin.sock then /var/lib/dst/admin.sock", got)
	}
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	dir := t.TempDir()
	run, lib := filepath.Join(dir, "run.sock"), filepath.Join(dir, "lib.sock")
	fallback := filepath.Join(DefaultDataDir(), "admin.sock")
	if got := FirstAdminSocket([]string{run, lib}); got != fallback {
		t.Errorf("neither exists: %s, want %s", got, fallback)
	}
	if got := AdminSocketOf([]string{run, lib}, false); got != fallback {
		t.Errorf("neither exists, no package: %s, want %s", got, fallback)
	}
	// The package installed, its dstd stopped: its socket all the same.
	if got := AdminSocketOf([]string{run, lib}, true); got != run {
		t.Errorf("neither exists, packaged: %s, want %s", got, run)
	}
	l, err := net.Listen("unix", lib)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := FirstAdminSocket([]string{run, lib}); got != lib {
		t.Errorf("only the older layout's exists: %s, want %s", got, lib)
	}
	if got := AdminSocketOf([]string{run, lib}, true); got != lib {
		t.Errorf("only the older layout's exists, packaged: %s, want %s", got, lib)
	}
	l2, err := net.Listen("unix", run)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if got := FirstAdminSocket([]string{run, lib}); got != run {
		t.Errorf("both exist: %s, want %s", got, run)
	}
	if os.Geteuid() == 0 && fallback != "/var/lib/dst/admin.sock" {
		t.Errorf("root's fallback: %s, want /var/lib/dst/admin.sock", fallback)
	}
}
