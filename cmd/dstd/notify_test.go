package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dst-traps/dst/internal/dsttest"
)

// TestNotify runs dstd as systemd runs a Type=notify service, with a
// notification socket of the test's: READY=1 must come once every
// listener answers (systemd then starts what is ordered after dstd),
// RELOADING=1 with MONOTONIC_USEC and READY=1 around a SIGHUP, STOPPING=1
// at the stop.
func TestNotify(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify")
	notifications, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notifications.Close()
	t.Setenv("NOTIFY_SOCKET", sock)

	nntpAddr := fmt.Sprintf("127.0.0.1:%d", dsttest.FreePort(t))
	dnsAddr := fmt.Sprintf("127.0.0.1:%d", dsttest.FreeUDPTCPPort(t))
	data := filepath.Join(dir, "data")
	conf := filepath.Join(dir, "dstd.toml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`site = "notify.example"
data_dir = %q
[log]
destination = "stderr"
[nntp]
listen = [%q]
[dns]
zone = "bl.example"
listen = [%q]
`, data, nntpAddr, dnsAddr)), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var log dsttest.SyncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dstd log:\n%s", log.String())
		}
	})
	exited := make(chan int, 1)
	go func() { exited <- run(ctx, []string{"-c", conf}, &strings.Builder{}, &log) }()
	next := func(what string) string {
		t.Helper()
		notifications.SetReadDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, 4096)
		n, err := notifications.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %s on NOTIFY_SOCKET: %v", what, err)
		}
		return string(buf[:n])
	}

	if got := next("READY=1"); got != "READY=1" {
		t.Fatalf("first notification = %q, want READY=1", got)
	}
	if os.Getenv("NOTIFY_SOCKET") != "" {
		t.Error("NOTIFY_SOCKET is still set: the programs of actions.program would inherit it")
	}
	// Every listener answers now, without waiting.
	for _, addr := range []string{"tcp:" + nntpAddr, "unix:" + filepath.Join(data, "spool", "nntp.sock")} {
		network, address, _ := strings.Cut(addr, ":")
		c, err := net.DialTimeout(network, address, 5*time.Second)
		if err != nil {
			t.Fatalf("after READY=1, NNTP %s: %v", addr, err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		greeting, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		// A greeting, whatever it says: TCP from a stranger is refused
		// (502), the socket greets with 200.
		if err != nil || len(greeting) < 4 || greeting[3] != ' ' {
			t.Errorf("after READY=1, NNTP %s greeted %q, %v", addr, greeting, err)
		}
	}
	admin := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", filepath.Join(data, "admin.sock"))
		}}}
	resp, err := admin.Get("http://dstd/healthz")
	if err != nil {
		t.Fatalf("after READY=1, the admin socket: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("after READY=1, /healthz answered %s", resp.Status)
	}
	for _, network := range []string{"udp", "tcp"} {
		m := new(dns.Msg)
		m.SetQuestion("10.2.0.192.bl.example.", dns.TypeA) // not listed
		r, _, err := (&dns.Client{Net: network, Timeout: 10 * time.Second}).Exchange(m, dnsAddr)
		if err != nil || r.Rcode != dns.RcodeNameError {
			t.Errorf("after READY=1, DNS over %s: %v, %v (want NXDOMAIN)", network, r, err)
		}
	}

	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	got := next("RELOADING=1")
	lines := strings.Split(got, "\n")
	if len(lines) != 2 || lines[0] != "RELOADING=1" || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") {
		t.Fatalf("at SIGHUP systemd was told %q, want RELOADING=1 and MONOTONIC_USEC=", got)
	}
	if usec, err := strconv.ParseInt(strings.TrimPrefix(lines[1], "MONOTONIC_USEC="), 10, 64); err != nil || usec <= 0 {
		t.Errorf("MONOTONIC_USEC = %q, want a positive count of microseconds", lines[1])
	}
	if got := next("READY=1 after the reload"); got != "READY=1" {
		t.Fatalf("after the reload systemd was told %q, want READY=1", got)
	}

	cancel()
	if got := next("STOPPING=1"); got != "STOPPING=1" {
		t.Fatalf("at the stop systemd was told %q, want STOPPING=1", got)
	}
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("dstd exited %d", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("dstd did not stop within 30 s")
	}
}
