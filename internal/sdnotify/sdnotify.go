// Package sdnotify tells systemd how dstd is doing, as sd_notify(3) does
// for a Type=notify service: READY=1 once every listener is served,
// RELOADING=1 and READY=1 around a SIGHUP reload, STOPPING=1 at shutdown.
// Without systemd (no NOTIFY_SOCKET) it does nothing.
//
// It is written here rather than taken from a library: the protocol is one
// datagram of "KEY=value" lines to the Unix socket NOTIFY_SOCKET names, a
// few lines of code, and the library commonly used for it
// (coreos/go-systemd) would bring a module for that alone.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Notifier sends states to systemd's notification socket. The nil
// Notifier (no NOTIFY_SOCKET) sends nothing.
type Notifier struct {
	addr *net.UnixAddr
}

// FromEnv returns the Notifier of the socket NOTIFY_SOCKET names, or nil
// when it is unset. It unsets the variable, so that the programs dstd runs
// (actions.program) do not inherit it and speak for dstd.
func FromEnv() *Notifier {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	os.Unsetenv("NOTIFY_SOCKET")
	// "@name" is a socket in the abstract namespace; package net maps a
	// leading @ to the NUL byte the kernel wants.
	return &Notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
}

// Send sends state, lines of KEY=value, as one datagram.
func (n *Notifier) Send(state string) error {
	if n == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("telling systemd %q (NOTIFY_SOCKET %s): %w", firstLine(state), n.addr.Name, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("telling systemd %q (NOTIFY_SOCKET %s): %w", firstLine(state), n.addr.Name, err)
	}
	return nil
}

// Ready says the service is up: every listener is bound and served, or a
// reload is over.
func (n *Notifier) Ready() error { return n.Send("READY=1") }

// Reloading says a reload begins. systemd 253 and later want the
// monotonic clock with it (to tell this reload from an earlier one);
// earlier versions ignore the field.
func (n *Notifier) Reloading() error {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return n.Send("RELOADING=1")
	}
	return n.Send(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", ts.Nano()/1000))
}

// Stopping says the service is shutting down.
func (n *Notifier) Stopping() error { return n.Send("STOPPING=1") }

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
