//go:build linux

package dnsbl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dst-traps/dst/internal/dsttest"
)

// serveOn runs Serve on a UDP socket bound to addr (and TCP on its port)
// and returns the bound UDP address.
func serveOn(t *testing.T, s *Server, addr string) *net.UDPAddr {
	t.Helper()
	network := "udp"
	if a, ok := strings.CutPrefix(addr, "udp4:"); ok {
		network, addr = "udp4", a // an AF_INET socket, not a dual-stack one
	}
	pc, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, []net.PacketConn{pc}, []net.Listener{ln}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return pc.LocalAddr().(*net.UDPAddr)
}

// udpSocketsOn counts the UDP sockets bound to port, from /proc/net.
func udpSocketsOn(t *testing.T, port int) int {
	t.Helper()
	n := 0
	for _, f := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) > 1 && strings.HasSuffix(fields[1], fmt.Sprintf(":%04X", port)) {
				n++
			}
		}
	}
	return n
}

// TestReusePortGroup: the address is served by the asked number of
// sockets, each answering, and still cannot be bound by anyone else.
func TestReusePortGroup(t *testing.T) {
	s, _ := newTestServer(t)
	s.udpSockets = 3
	addr := serveOn(t, s, "127.0.0.1:0")
	// Serve opens the extra sockets as it starts.
	dsttest.WaitFor(t, 10*time.Second, "3 UDP sockets on the port", func() bool { return udpSocketsOn(t, addr.Port) == 3 })
	// Queries from many source ports spread over the sockets.
	for i := range 40 {
		c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
		m := new(dns.Msg)
		m.SetQuestion("4.3.2.1."+zone, dns.TypeA)
		if i%2 == 1 {
			m.SetQuestion("1.0.0.127."+zone, dns.TypeTXT)
		}
		r, _, err := c.Exchange(m, addr.String())
		if err != nil {
			t.Fatal(err)
		}
		if want := []int{dns.RcodeSuccess, dns.RcodeNameError}[i%2]; r.Rcode != want || r.Id != m.Id {
			t.Fatalf("query %d: %v", i, r)
		}
	}
	// A second server (a second dstd) binds without SO_REUSEPORT first,
	// and so fails, whether or not it would ask for SO_REUSEPORT later.
	if pc, err := net.ListenPacket("udp", addr.String()); err == nil {
		pc.Close()
		t.Fatal("the DNS port could be bound a second time")
	} else if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("second bind: %v, want address already in use", err)
	}
	s2, _ := newTestServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s2.ListenAndServe(ctx, []string{addr.String()}); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("second server on the port: %v", err)
	}
}

// TestWildcardSource: a server bound to a wildcard address answers from
// the address each query was sent to (IP_PKTINFO, IPV6_PKTINFO), as
// miekg/dns did: a resolver drops an answer from another address.
func TestWildcardSource(t *testing.T) {
	for _, tc := range []struct {
		bind string
		to   []string
	}{
		{"0.0.0.0:0", []string{"127.0.0.1", "127.0.0.2", "127.1.2.3"}},
		{"udp4:0.0.0.0:0", []string{"127.0.0.1", "127.0.0.4"}},
		{"[::]:0", []string{"::1", "127.0.0.1", "127.0.0.3"}},
	} {
		t.Run(tc.bind, func(t *testing.T) {
			s, _ := newTestServer(t)
			s.udpSockets = 2
			addr := serveOn(t, s, tc.bind)
			for _, to := range tc.to {
				dst := netip.AddrPortFrom(netip.MustParseAddr(to), uint16(addr.Port))
				network := "udp4"
				if dst.Addr().Is6() {
					network = "udp6"
				}
				c, err := net.ListenUDP(network, nil)
				if err != nil {
					t.Skipf("%s: %v", network, err)
				}
				m := new(dns.Msg)
				m.SetQuestion("4.3.2.1."+zone, dns.TypeA)
				b, _ := m.Pack()
				for _, q := range [][]byte{b, b[:5]} { // fast path, then a runt (no answer)
					if _, err := c.WriteToUDPAddrPort(q, dst); err != nil {
						t.Fatal(err)
					}
				}
				// The slow path answers from the right address too.
				m.SetTsig("unknown-key.", dns.HmacSHA256, 300, time.Now().Unix())
				b2, _ := m.Pack()
				if _, err := c.WriteToUDPAddrPort(b2, dst); err != nil {
					t.Fatal(err)
				}
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 1500)
				for range 2 {
					n, from, err := c.ReadFromUDPAddrPort(buf)
					if err != nil {
						t.Fatalf("query to %s: %v", dst, err)
					}
					if from.Addr().Unmap() != dst.Addr() || from.Port() != dst.Port() {
						t.Errorf("query to %s answered from %s", dst, from)
					}
					r := new(dns.Msg)
					if err := r.Unpack(buf[:n]); err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
						t.Errorf("query to %s: %v %v", dst, r, err)
					}
				}
				c.Close()
			}
		})
	}
}

// TestUDPTSIG: a query signed with the transfer key over UDP gets a
// signed answer the client verifies; one signed with an unknown key or a
// wrong secret gets the same answer unsigned, as dns.Server gave it (the
// signature only matters to transfers, which refuse it).
func TestUDPTSIG(t *testing.T) {
	key := &TSIGKey{Name: "dst-xfr", Secret: "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ="}
	x := NewIndex()
	x.Set(netip.MustParseAddr("1.2.3.4"), entry)
	s, err := New(Config{Zone: zone, TransferKey: key}, x)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveOn(t, s, "127.0.0.1:0").String()
	ask := func(name, secret string, qt uint16) (*dns.Msg, error) {
		c := &dns.Client{Net: "udp", Timeout: 2 * time.Second, TsigSecret: map[string]string{name: secret}}
		m := new(dns.Msg)
		m.SetQuestion("4.3.2.1."+zone, qt)
		m.SetTsig(name, dns.HmacSHA256, 300, time.Now().Unix())
		r, _, err := c.Exchange(m, addr)
		return r, err
	}
	for _, qt := range []uint16{dns.TypeA, dns.TypeTXT} {
		r, err := ask("dst-xfr.", key.Secret, qt)
		if err != nil {
			t.Fatalf("signed %s: %v", dns.TypeToString[qt], err) // includes a bad answer signature
		}
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.IsTsig() == nil {
			t.Errorf("signed %s: %v", dns.TypeToString[qt], r)
		}
	}
	for _, bad := range []struct{ name, secret string }{
		{"other-key.", key.Secret}, {"dst-xfr.", "d3Jvbmctd3Jvbmctd3Jvbmctd3Jvbmctd3Jvbmc="},
	} {
		r, err := ask(bad.name, bad.secret, dns.TypeA)
		if err != nil {
			t.Fatalf("key %s: %v", bad.name, err)
		}
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.IsTsig() != nil {
			t.Errorf("key %s: %v", bad.name, r)
		}
	}
	// The same, byte for byte, as dns.Server: unsigned answers exactly;
	// signed ones but for the time and MAC, checked by the client above.
	for _, bad := range []string{"other-key.", "dst-xfr."} {
		m := new(dns.Msg)
		m.SetQuestion("4.3.2.1."+zone, dns.TypeA)
		m.SetTsig(bad, dns.HmacSHA256, 300, time.Now().Unix())
		pkt, _, err := dns.TsigGenerate(m, "d3Jvbmctd3Jvbmctd3Jvbmctd3Jvbmctd3Jvbmc=", "", false)
		if err != nil {
			t.Fatal(err)
		}
		got, want := slowAnswers(s, pkt), miekgAnswers(t, s, pkt)
		if len(got) != 1 || len(want) != 1 || !bytes.Equal(got[0], want[0]) {
			t.Errorf("key %s: slow path %x, dns.Server %x", bad, got, want)
		}
	}
	m := new(dns.Msg)
	m.SetQuestion("4.3.2.1."+zone, dns.TypeA)
	m.SetTsig("dst-xfr.", dns.HmacSHA256, 300, time.Now().Unix())
	pkt, mac, err := dns.TsigGenerate(m, key.Secret, "", false)
	if err != nil {
		t.Fatal(err)
	}
	got, want := slowAnswers(s, pkt), miekgAnswers(t, s, pkt)
	if len(got) != 1 || len(want) != 1 {
		t.Fatalf("signed: %d and %d answers", len(got), len(want))
	}
	if err := dns.TsigVerify(bytes.Clone(got[0]), key.Secret, mac, false); err != nil { // it edits what it verifies
		t.Errorf("the slow path's signature: %v", err)
	}
	strip := func(b []byte) string {
		r := new(dns.Msg)
		if err := r.Unpack(b); err != nil {
			t.Fatal(err)
		}
		ts := r.IsTsig()
		if ts == nil {
			t.Fatalf("unsigned: %v", r)
		}
		ts.TimeSigned, ts.MAC = 0, ""
		return r.String()
	}
	if strip(got[0]) != strip(want[0]) {
		t.Errorf("signed answers differ:\n%s\n%s", strip(got[0]), strip(want[0]))
	}
}

// TestStopWakesReaders: the readers wait for queries inside recvmmsg, on
// descriptors of their own; when the context ends, Serve wakes them, returns
// and closes every socket of the group, so that the port is free again.
func TestStopWakesReaders(t *testing.T) {
	s, _ := newTestServer(t)
	s.udpSockets = 3
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	// stop fails the test if Serve does not return: a reader would still
	// wait in recvmmsg.
	stop := dsttest.Go(t, func(ctx context.Context) error { return s.Serve(ctx, []net.PacketConn{pc}, nil) })
	dsttest.WaitFor(t, 10*time.Second, "3 UDP sockets on the port", func() bool { return udpSocketsOn(t, port) == 3 })
	// One answered query: the readers are in their loop, not starting.
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion("4.3.2.1."+zone, dns.TypeA)
	if _, _, err := c.Exchange(m, pc.LocalAddr().String()); err != nil {
		t.Fatal(err)
	}
	stop()
	if t.Failed() {
		t.FailNow()
	}
	if n := udpSocketsOn(t, port); n != 0 {
		t.Fatalf("%d UDP sockets still bound to the port after Serve returned", n)
	}
	pc2, err := net.ListenPacket("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatalf("binding the port again after Serve: %v", err)
	}
	pc2.Close()
}
