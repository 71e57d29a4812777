package dsttest

// Network namespaces for tests whose hosts need addresses of their own: a
// mail client at a documentation address (192.0.2.0/24, 198.51.100.0/24,
// 203.0.113.0/24) connecting to a mail server, as on the Internet, or a
// resolver on port 53 that a namespace's /etc/resolv.conf points at. The
// namespaces are made by the test and deleted, with every process still
// in them, when it ends; nothing they hold can reach the host's network.

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Netns is a network namespace of a test.
type Netns struct {
	t    testing.TB
	Name string
}

// NewNetns creates a network namespace with its loopback up. Its name is
// prefix and the test process's pid, so that concurrent test binaries do not
// collide. t.Cleanup kills what still runs in it, deletes it and its
// /etc/netns directory.
func NewNetns(t testing.TB, prefix string) *Netns {
	t.Helper()
	Require(t, "ip", "iproute2")
	RequireRoot(t, "network namespaces")
	n := &Netns{t: t, Name: fmt.Sprintf("%s-%d", prefix, os.Getpid())}
	if out, err := exec.Command("ip", "netns", "add", n.Name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", n.Name, err, out)
	}
	t.Cleanup(n.remove)
	n.IP("link", "set", "lo", "up")
	return n
}

func (n *Netns) remove() {
	for _, sig := range []string{"TERM", "KILL"} {
		pids := n.pids()
		if len(pids) == 0 {
			break
		}
		exec.Command("kill", append([]string{"-" + sig}, pids...)...).Run()
		for range 50 {
			if len(n.pids()) == 0 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
		n.t.Errorf("ip netns del %s: %v\n%s", n.Name, err, out)
	}
	os.RemoveAll(filepath.Join("/etc/netns", n.Name))
}

// pids lists the processes in the namespace, but for this one, which
// has threads in it only while Dial makes a socket.
func (n *Netns) pids() []string {
	out, _ := exec.Command("ip", "netns", "pids", n.Name).Output()
	var pids []string
	for _, p := range strings.Fields(string(out)) {
		if p != strconv.Itoa(os.Getpid()) {
			pids = append(pids, p)
		}
	}
	return pids
}

// IP runs "ip -n NAME args..." and fails the test if it fails.
func (n *Netns) IP(args ...string) {
	n.t.Helper()
	if out, err := exec.Command("ip", append([]string{"-n", n.Name}, args...)...).CombinedOutput(); err != nil {
		n.t.Fatalf("ip -n %s %s: %v\n%s", n.Name, strings.Join(args, " "), err, out)
	}
}

// Prefix is the command prefix that runs a program in the namespace, with
// the namespace's /etc/netns files (resolv.conf) in place of /etc's.
func (n *Netns) Prefix() []string { return []string{"ip", "netns", "exec", n.Name} }

// Command is exec.Command of name run in the namespace.
func (n *Netns) Command(name string, args ...string) *exec.Cmd {
	p := n.Prefix()
	return exec.Command(p[0], append(append(p[1:], name), args...)...)
}

// SetFile writes /etc/netns/NAME/file, which "ip netns exec" mounts over
// /etc/file for the programs it starts afterwards (resolv.conf, hosts).
func (n *Netns) SetFile(file, content string) {
	n.t.Helper()
	dir := filepath.Join("/etc/netns", n.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		n.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644); err != nil {
		n.t.Fatal(err)
	}
}

// Link joins two namespaces with a veth pair, named ifname on both sides,
// and brings both ends up.
func Link(t testing.TB, a, b *Netns, ifname string) {
	t.Helper()
	a.IP("link", "add", ifname, "type", "veth", "peer", "name", ifname, "netns", b.Name)
	a.IP("link", "set", ifname, "up")
	b.IP("link", "set", ifname, "up")
}

// Dial connects from the namespace, from local address laddr (an address of
// the namespace, or "" for any) to raddr, as a process in the namespace
// would: the socket is made on an OS thread switched into the namespace,
// and a socket stays in the namespace it was made in.
func (n *Netns) Dial(ctx context.Context, laddr, raddr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// The thread goes back to the scheduler only once it is back in
		// its own namespace; otherwise the runtime ends it (or, for the
		// main thread, parks it) when this goroutine exits.
		home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- result{err: fmt.Errorf("open this thread's namespace: %w", err)}
			return
		}
		defer unix.Close(home)
		fd, err := unix.Open(filepath.Join("/run/netns", n.Name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- result{err: fmt.Errorf("open namespace %s: %w", n.Name, err)}
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("enter namespace %s: %w", n.Name, err)}
			return
		}
		d := net.Dialer{}
		if laddr != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(laddr)}
		}
		c, err := d.DialContext(ctx, "tcp", raddr)
		if unix.Setns(home, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}
