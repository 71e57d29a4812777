// Package flood_test holds a real dstd under a connection flood: one local
// address holding a thousand connections, and connections to the
// implicit-TLS listener that never handshake. dstc on the Unix socket and
// a configured peer must still get their reports accepted meanwhile.
package flood_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/dkim"
	"github.com/dst-traps/dst/internal/dsttest"
	"github.com/dst-traps/dst/internal/nntp"
	"github.com/dst-traps/dst/internal/report"
)

const (
	floodConns = 1000
	// The defaults of nntp.max_connections_per_ip and the number of
	// connections that never handshake in the TLS case (more than the
	// 64 slots that used to be shared by everyone).
	perIPDefault = 16
	tlsStalled   = 70
	peerAddr     = "127.0.0.2"
)

// site is a dstd with an implicit-TLS listener and one peer, site-b.test,
// known by the address 127.0.0.2 and trusted by its key.
type site struct {
	*dsttest.Dstd
	tlsAddr string
	cert    *x509.CertPool
	peer    *dkim.Signer
}

func newSite(t *testing.T) *site {
	t.Helper()
	if !loopbackUsable(peerAddr) {
		t.Fatalf("cannot connect from %s: the tests need the whole of 127.0.0.0/8 on the loopback interface (Linux has it)", peerAddr)
	}
	b := dsttest.NewDstd(t, "site-b.test", "") // never started: its key signs the peer's reports
	a := dsttest.NewDstd(t, "site-a.test", "")
	certPath, keyPath, pool := dsttest.SelfSigned(t, t.TempDir(), "site-a.test")
	s := &site{Dstd: a, tlsAddr: fmt.Sprintf("127.0.0.1:%d", dsttest.FreePort(t)), cert: pool}
	// The handshake deadline is far beyond the test's waits: a
	// connection closed at once was refused, not timed out. The flood
	// comes from 127.0.0.1, which may post here: a stranger is refused
	// at the greeting anyway, so only such an address can hold slots.
	a.Reconfigure(fmt.Sprintf(`[policy]
allow_documentation = true
[nntp]
tls_handshake_timeout = "2m"
post_allow = ["127.0.0.1"]
[tls]
cert = %q
key = %q
listen = [%q]
[[peer]]
name = "site-b.test"
addresses = [%q]
`, certPath, keyPath, s.tlsAddr, peerAddr))
	if err := os.MkdirAll(a.Dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a.Dir, "keyring"), []byte(b.KeyringLine()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	key, err := dkim.LoadPrivateKey(filepath.Join(b.Dir, "dkim.key"))
	if err != nil {
		t.Fatal(err)
	}
	if s.peer, err = dkim.NewSigner(b.Site, "dst", key); err != nil {
		t.Fatal(err)
	}
	a.Start()
	return s
}

// TestLocalAddressFlood: one local address opens a thousand connections
// and holds them. It gets its share (nntp.max_connections_per_ip), the
// rest are refused with 400 at once; dstc over the socket and the peer
// still get their reports in while the share stays held.
func TestLocalAddressFlood(t *testing.T) {
	needFiles(t, floodConns+200)
	s := newSite(t)

	var held []*bufio.ReadWriter
	accepted, refused := 0, 0
	for i := range floodConns {
		c, err := net.DialTimeout("tcp", s.NNTP, 10*time.Second)
		if err != nil {
			t.Fatalf("flood connection %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() }) // held to the end, refused or not
		c.SetDeadline(time.Now().Add(60 * time.Second))
		rw := bufio.NewReadWriter(bufio.NewReader(c), bufio.NewWriter(c))
		greeting, err := rw.ReadString('\n')
		switch {
		case strings.HasPrefix(greeting, "200 "):
			accepted++
			held = append(held, rw)
		case strings.HasPrefix(greeting, "400 too many connections from your address"):
			refused++
			// Refused at once: closed without waiting for a word.
			if rest, err := rw.ReadString('\n'); rest != "" || err == nil {
				t.Fatalf("flood connection %d: after the 400, got %q, %v; want it closed", i, rest, err)
			}
		default:
			t.Fatalf("flood connection %d: greeting %q, %v", i, greeting, err)
		}
	}
	if accepted != perIPDefault || refused != floodConns-perIPDefault {
		t.Fatalf("of %d connections from one address, %d were served and %d refused; want %d and %d",
			floodConns, accepted, refused, perIPDefault, floodConns-perIPDefault)
	}
	active := func() {
		t.Helper()
		for i, rw := range held {
			rw.WriteString("DATE\r\n")
			rw.Flush()
			if l, err := rw.ReadString('\n'); !strings.HasPrefix(l, "111 ") {
				t.Fatalf("held connection %d: DATE answered %q, %v", i, l, err)
			}
		}
	}
	active()

	// dstc over the Unix socket.
	out, code := s.Dstc(trapMessage("203.0.113.50"), "-m", "mx1.example.net")
	if code != 0 || !strings.Contains(out, "msg=reported") {
		t.Fatalf("dstc over the socket during the flood: exit %d (want 0, reported, not spooled):\n%s", code, out)
	}
	if out, code := s.Ctl("lookup", "203.0.113.50"); code != 0 || !strings.Contains(out, "site-a.test") {
		t.Fatalf("dstctl lookup after dstc: exit %d: %s", code, out)
	}

	// The peer over TCP, from its address.
	if code := s.ihave(t, nntp.DialOptions{LocalAddr: peerAddr}, s.NNTP, "203.0.113.51"); code != 235 {
		t.Fatalf("the peer's IHAVE during the flood answered %d, want 235", code)
	}
	if out, code := s.Ctl("lookup", "203.0.113.51"); code != 0 || !strings.Contains(out, "site-b.test") {
		t.Fatalf("dstctl lookup after the peer's IHAVE: exit %d: %s", code, out)
	}

	active() // the flood's share was held all along
	if m := s.Metrics(); !strings.Contains(m, fmt.Sprintf(`dst_nntp_refused_connections_total{reason="other-client-limit"} %d`, floodConns-perIPDefault)) {
		t.Errorf("the refusals are not counted:\n%s", grep(m, "dst_nntp_"))
	}
}

// TestTLSListenerStalledHandshakes: connections to the implicit-TLS
// listener from an address that is no peer's, which never start a
// handshake, are closed at once without a byte; the peer still gets
// through over implicit TLS.
func TestTLSListenerStalledHandshakes(t *testing.T) {
	s := newSite(t)
	for i := range tlsStalled {
		c, err := net.DialTimeout("tcp", s.tlsAddr, 10*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		// Well within tls_handshake_timeout (2m): only a refusal closes
		// it this soon.
		c.SetDeadline(time.Now().Add(30 * time.Second))
		n, err := io.Copy(io.Discard, c)
		if n != 0 || (err != nil && !isReset(err)) {
			t.Fatalf("connection %d from a non-peer to the TLS listener: got %d bytes, %v; want it closed at once without a byte", i, n, err)
		}
	}
	if code := s.ihave(t, nntp.DialOptions{LocalAddr: peerAddr, TLS: nntp.TLSImplicit,
		TLSConfig: &tls.Config{RootCAs: s.cert, ServerName: "site-a.test", MinVersion: tls.VersionTLS12}}, s.tlsAddr, "203.0.113.52"); code != 235 {
		t.Fatalf("the peer's IHAVE over implicit TLS answered %d, want 235", code)
	}
	if out, code := s.Ctl("lookup", "203.0.113.52"); code != 0 || !strings.Contains(out, "site-b.test") {
		t.Fatalf("dstctl lookup after the peer's IHAVE: exit %d: %s", code, out)
	}
	if m := s.Metrics(); !strings.Contains(m, fmt.Sprintf(`dst_nntp_refused_connections_total{reason="tls-not-peer"} %d`, tlsStalled)) {
		t.Errorf("the refusals are not counted:\n%s", grep(m, "dst_nntp_"))
	}
}

// ihave offers a report for ip signed by the peer, over a connection with
// opts, and returns the final answer's code.
func (s *site) ihave(t *testing.T, opts nntp.DialOptions, addr, ip string) int {
	t.Helper()
	rep, err := report.New(report.Hit{SourceIP: netip.MustParseAddr(ip), Arrival: time.Now(), Host: "trap.test",
		UserAgent: "dst-test", Message: trapMessage(ip)})
	if err != nil {
		t.Fatal(err)
	}
	art, err := s.peer.Sign(append([]byte("Path: site-b.test!not-for-mail\r\n"), rep.Bytes()...))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	opts.Timeout = 20 * time.Second
	c, err := nntp.DialWith(ctx, addr, opts)
	if err != nil {
		t.Fatalf("the peer connecting to %s: %v", addr, err)
	}
	defer c.Close()
	r, err := c.IHave(ctx, rep.Get("Message-ID"), art)
	if r.Code == 0 {
		t.Fatalf("IHAVE: %v", err)
	}
	return r.Code
}

// trapMessage is a message as Postfix on mx1.example.net delivers it, sent
// by client.
func trapMessage(client string) []byte {
	return []byte(fmt.Sprintf("Received: from spam.example (unknown [%s])\r\n\tby mx1.example.net (Postfix) with ESMTP id 1\r\n\tfor <trap@example.net>; %s\r\n"+
		"From: <a@spam.example>\r\nTo: <trap@example.net>\r\nSubject: offer for %s\r\n\r\nbuy\r\n", client, time.Now().Format(time.RFC1123Z), client))
}

// needFiles makes sure this process may hold n more open files: Go raises
// the soft limit to the hard one at start on Linux, which may still be
// too low.
func needFiles(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < n {
		lim.Cur = min(n, lim.Max)
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if lim.Cur < n {
		t.Fatalf("this test holds %d connections but may open only %d files: raise the limit (ulimit -n %d)", floodConns, lim.Cur, n)
	}
}

// loopbackUsable reports whether a TCP connection can come from src.
func loopbackUsable(src string) bool {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return false
	}
	defer l.Close()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", l.Addr().String())
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
