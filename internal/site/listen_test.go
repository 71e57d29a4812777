package site

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// openDir returns a fresh directory whose parents all let others through,
// so that only what a test makes below it can stop a socket's group.
func openDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	// t.TempDir's parent, the test's own directory, is 0700.
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	return dir
}

func dirGID(t *testing.T, dir string) int {
	t.Helper()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	return int(fi.Sys().(*syscall.Stat_t).Gid)
}

// TestWarnUnreachable: dstd warns when a directory above a socket keeps
// the socket's group out, and only then. /run/dst is 0711 dst:dst: the
// members of dst-admin pass by its others x bit.
func TestWarnUnreachable(t *testing.T) {
	for _, tc := range []struct {
		name     string
		mode     os.FileMode
		ownGroup bool // the directory is the socket's group's
		warn     bool
	}{
		{"0711, another group's (/run/dst)", 0o711, false, false},
		{"0710, the socket's group's (data_dir of dstd's own making)", 0o710, true, false},
		{"0700, another group's", 0o700, false, true},
		{"0750, another group's", 0o750, false, true},
		{"0710, another group's", 0o710, false, true},
		// The kernel takes the group bits for the group's members:
		// others x does not let them through.
		{"0701, the socket's group's", 0o701, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(openDir(t), "run")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tc.mode); err != nil {
				t.Fatal(err)
			}
			gid := dirGID(t, dir)
			if !tc.ownGroup {
				gid++ // no need for the group to exist: only its id counts
			}
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			sock := filepath.Join(dir, "admin.sock")
			warnUnreachable(log, sock, "dst-admin", gid, "admin.group")
			warned := strings.Contains(buf.String(), "members of admin.group cannot reach the socket")
			if warned != tc.warn {
				t.Errorf("directory %04o: warned %v, want %v; log:\n%s", tc.mode, warned, tc.warn, buf.String())
			}
			if warned && !strings.Contains(buf.String(), "dir="+dir) {
				t.Errorf("the warning does not name %s:\n%s", dir, buf.String())
			}
		})
	}
}

// TestEnsureSocketDir: a socket's missing directory is made for the
// socket's group (0710) or dstd's user alone (0700); one dstd cannot make
// is an error that names it and says how to make it.
func TestEnsureSocketDir(t *testing.T) {
	base := openDir(t)

	sock := filepath.Join(base, "own", "admin.sock")
	if err := ensureSocketDir(sock, -1, "", "admin.socket"); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Dir(sock)); err != nil || fi.Mode() != os.ModeDir|0o700 {
		t.Errorf("without a group: %v, %v; want drwx------", fi.Mode(), err)
	}

	gid := os.Getgid() // a group dstd's user may give files to
	sock = filepath.Join(base, "grp", "admin.sock")
	if err := ensureSocketDir(sock, gid, "g", "admin.socket"); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Dir(sock)); err != nil || fi.Mode() != os.ModeDir|0o710 || dirGID(t, filepath.Dir(sock)) != gid {
		t.Errorf("with a group: %v, %v; want drwx--x--- and group %d", fi.Mode(), err, gid)
	}

	// One that exists is left as it is.
	if err := os.Chmod(filepath.Dir(sock), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := ensureSocketDir(sock, gid, "g", "admin.socket"); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Dir(sock)); fi.Mode() != os.ModeDir|0o711 {
		t.Errorf("an existing directory changed to %v", fi.Mode())
	}

	// Its parent missing, dstd does not make the directory (even as
	// root): the error names the directory and the command.
	dir := filepath.Join(base, "missing", "dst")
	err := ensureSocketDir(filepath.Join(dir, "admin.sock"), -1, "", "admin.socket")
	if err == nil || !strings.Contains(err.Error(), "its directory "+dir+" is missing and dstd cannot create it") ||
		!strings.Contains(err.Error(), "install -d -m 0711 -o ") || !strings.Contains(err.Error(), " "+dir+")") {
		t.Errorf("a directory dstd cannot make: %v", err)
	}
	// Under /run, which boot empties, it says how to have it each boot.
	dir = "/run/dst-test-no-such-dir/dst"
	err = ensureSocketDir(filepath.Join(dir, "admin.sock"), -1, "", "admin.socket")
	if err == nil || !strings.Contains(err.Error(), "RuntimeDirectory=dst-test-no-such-dir/dst") || !strings.Contains(err.Error(), "tmpfiles.d") {
		t.Errorf("a directory under /run dstd cannot make: %v", err)
	}
}

// takenTCP returns a loopback port whose TCP side is bound (and stays so
// for the test) while its UDP side is free.
func takenTCP(t *testing.T) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil { // some other socket has that UDP port: try another
			l.Close()
			continue
		}
		pc.Close()
		t.Cleanup(func() { l.Close() })
		return port
	}
	t.Fatal("no loopback port with a free UDP side")
	return 0
}

// TestListenUDPTCPRetry: dns.listen binds UDP, then TCP on the port UDP
// got. When that TCP port is taken, a ":0" address tries another port,
// up to maxPortTries times; a given port fails at once. Either way the
// UDP socket of a failed attempt is closed.
func TestListenUDPTCPRetry(t *testing.T) {
	taken := takenTCP(t)
	takenAddr := fmt.Sprintf("127.0.0.1:%d", taken)
	// The first bind lands on the taken port, as the kernel may do with ":0".
	var calls int
	firstTaken := func(network, addr string) (net.PacketConn, error) {
		calls++
		if calls == 1 {
			return net.ListenPacket(network, takenAddr)
		}
		return net.ListenPacket(network, addr)
	}
	pc, l, err := listenUDPThenTCP(firstTaken, "127.0.0.1:0", true)
	if err != nil {
		t.Fatalf("port 0: %v", err)
	}
	udp, tcp := pc.LocalAddr().(*net.UDPAddr).Port, l.Addr().(*net.TCPAddr).Port
	pc.Close()
	l.Close()
	if calls != 2 || udp == taken || udp != tcp {
		t.Errorf("port 0: %d binds, UDP port %d, TCP port %d; want 2 binds and one port for both, not %d", calls, udp, tcp, taken)
	}
	assertUDPFree(t, takenAddr)

	// A port the administrator chose is not traded for another.
	if _, _, err := listenUDPThenTCP(net.ListenPacket, takenAddr, false); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("port %d, TCP side taken: %v, want address already in use", taken, err)
	}
	assertUDPFree(t, takenAddr)

	// With ":0", the tries end.
	calls = 0
	alwaysTaken := func(network, _ string) (net.PacketConn, error) {
		calls++
		return net.ListenPacket(network, takenAddr)
	}
	if _, _, err := listenUDPThenTCP(alwaysTaken, "127.0.0.1:0", true); !errors.Is(err, syscall.EADDRINUSE) || calls != maxPortTries {
		t.Errorf("port 0, every port taken: %v after %d binds, want address already in use after %d", err, calls, maxPortTries)
	}
	assertUDPFree(t, takenAddr)
}

// assertUDPFree fails the test if addr's UDP port is still bound.
func assertUDPFree(t *testing.T, addr string) {
	t.Helper()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Errorf("a failed attempt left %s bound: %v", addr, err)
		return
	}
	pc.Close()
}
