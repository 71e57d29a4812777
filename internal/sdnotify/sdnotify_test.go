package sdnotify

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

// TestWithoutSystemd: with no NOTIFY_SOCKET, FromEnv is nil and its
// methods do nothing (dstd run by hand or by another init).
func TestWithoutSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := FromEnv()
	if n != nil {
		t.Fatalf("FromEnv() = %+v without NOTIFY_SOCKET", n)
	}
	if err := n.Ready(); err != nil {
		t.Errorf("Ready on nil: %v", err)
	}
}

// TestGoneSocket: a socket that went away is an error naming it, for the
// log, not a crash.
func TestGoneSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gone")
	t.Setenv("NOTIFY_SOCKET", path)
	n := FromEnv()
	if err := n.Ready(); err == nil {
		t.Fatal("Ready to a missing socket succeeded")
	}
}

// TestAbstract: "@name" is the abstract namespace, as systemd may give.
func TestAbstract(t *testing.T) {
	name := "@dst-sdnotify-test-" + time.Now().Format("150405.000000000")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t.Setenv("NOTIFY_SOCKET", name)
	if err := FromEnv().Stopping(); err != nil {
		t.Fatal(err)
	}
	l.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 100)
	n, err := l.Read(buf)
	if err != nil || string(buf[:n]) != "STOPPING=1" {
		t.Errorf("read %q, %v; want STOPPING=1", buf[:n], err)
	}
}
