package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/dst-traps/dst/internal/admin"
)

// ctlWith runs dstctl with systemConfig and sockets in place of
// /etc/dst/dstd.toml and the system's default sockets.
func ctlWith(systemConfig string, sockets []string, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	c := &cli{stdout: &out, stderr: &errOut, systemConfig: systemConfig, systemSockets: sockets}
	code = c.run(context.Background(), args)
	return code, out.String(), errOut.String()
}

// siteOf is the site of a -json status, "" if there is none.
func siteOf(out string) string {
	var s admin.Status
	json.Unmarshal([]byte(out), &s)
	return s.Site
}

// traversable lets others through the directories of sock, as /run/dst
// (0711) does: t.TempDir's are 0700.
func traversable(t *testing.T, sock string) {
	t.Helper()
	for _, d := range []string{filepath.Dir(filepath.Dir(sock)), filepath.Dir(sock)} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
}

// asStranger runs fn as one who may not read path (mode 0): for root,
// whom modes do not stop, on a thread of its own whose filesystem uid is
// nobody's, as a member of dst-admin meets /etc/dst/dstd.toml (root:dst
// 0640). The thread is left locked, so that it ends with fn.
func asStranger(t *testing.T, path string, fn func()) {
	t.Helper()
	if err := os.Chmod(path, 0); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		if os.Geteuid() == 0 {
			runtime.LockOSThread()
			syscall.Setfsuid(65534)
		}
		if _, err := os.ReadFile(path); err == nil {
			errc <- fmt.Errorf("%s is still readable: the test cannot stand for a stranger", path)
			return
		}
		fn()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestDefaultSocketSearch: with no -admin, $DSTCTL_ADMIN, -c nor readable
// system configuration, dstctl takes the first default socket that exists:
// the package's /run/dst/admin.sock, then the older /var/lib/dst one. A
// member of dst-admin, who may not read /etc/dst/dstd.toml, reaches
// /run/dst/admin.sock without a word about the file.
func TestDefaultSocketSearch(t *testing.T) {
	t.Setenv(adminEnv, "")
	runSock := serve(t, named{newBackend(), "by-run.test"})
	libSock := serve(t, named{newBackend(), "by-lib.test"})
	traversable(t, runSock)
	missing := filepath.Join(t.TempDir(), "admin.sock")
	noConf := filepath.Join(t.TempDir(), "dstd.toml")

	for _, tc := range []struct {
		name    string
		sockets []string
		want    string
	}{
		{"both exist: /run/dst first", []string{runSock, libSock}, "by-run.test"},
		{"only the older layout's", []string{missing, libSock}, "by-lib.test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := ctlWith(noConf, tc.sockets, "-json", "status")
			if code != exitOK || siteOf(out) != tc.want || errOut != "" {
				t.Errorf("exit %d, site %q, stderr %q; want dstd %s, nothing on stderr", code, siteOf(out), errOut, tc.want)
			}
		})
	}

	// A readable system configuration comes before the default sockets.
	gone := filepath.Join(t.TempDir(), "gone.sock")
	sysConf := writeConf(t, fmt.Sprintf("socket = %q", gone))
	code, _, errOut := ctlWith(sysConf, []string{runSock, libSock}, "status")
	if code != exitUnreachable || !strings.Contains(errOut, gone+" (admin.socket of "+sysConf+")") {
		t.Errorf("a readable system configuration: exit %d, %q; want its socket, %s", code, errOut, gone)
	}

	// Unreadable, it is passed over quietly.
	var out string
	asStranger(t, sysConf, func() {
		code, out, errOut = ctlWith(sysConf, []string{runSock, libSock}, "-json", "status")
	})
	if code != exitOK || siteOf(out) != "by-run.test" || errOut != "" {
		t.Errorf("a system configuration one may not read: exit %d, site %q, stderr %q; want dstd by-run.test, nothing on stderr", code, siteOf(out), errOut)
	}
}
