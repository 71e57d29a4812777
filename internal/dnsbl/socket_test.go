package dnsbl

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/miekg/dns"

	"github.com/dst-traps/dst/internal/dsttest"
)

// startServer runs ListenAndServe on 127.0.0.1:0 and returns the address.
func startServer(t *testing.T, s *Server) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	bound := make(chan []net.Addr, 1)
	s.onListen = func(a []net.Addr) { bound <- a }
	done := make(chan error, 1)
	go func() { done <- s.ListenAndServe(ctx, []string{"127.0.0.1:0"}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ListenAndServe: %v", err)
		}
	})
	select {
	case a := <-bound:
		return a[0].String()
	case err := <-done:
		t.Fatalf("ListenAndServe: %v", err)
	}
	return ""
}

func TestSocket(t *testing.T) {
	s, _ := newTestServer(t)
	addr := startServer(t, s)
	for _, network := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: network, Timeout: 2 * time.Second}
		m := new(dns.Msg)
		m.SetQuestion("4.3.2.1."+zone, dns.TypeA)
		r, _, err := c.Exchange(m, addr)
		if err != nil {
			t.Fatalf("%s: %v", network, err)
		}
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || !r.Authoritative {
			t.Errorf("%s: %v", network, r)
		}
		m.SetQuestion("1.0.0.127."+zone, dns.TypeA)
		if r, _, err = c.Exchange(m, addr); err != nil || r.Rcode != dns.RcodeNameError {
			t.Errorf("%s 127.0.0.1: %v %v", network, r, err)
		}
	}
	// AXFR over a real TCP connection.
	tr := new(dns.Transfer)
	m := new(dns.Msg)
	m.SetAxfr(zone)
	env, err := tr.In(m, addr)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for e := range env {
		if e.Error != nil {
			t.Fatal(e.Error)
		}
		n += len(e.RR)
	}
	if n != 2+1+2*4 { // SOA×2, NS, (2 listings + 2 test points)×2
		t.Errorf("AXFR %d records", n)
	}
}

func TestListenError(t *testing.T) {
	s, _ := newTestServer(t)
	ln, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.ListenAndServe(ctx, []string{ln.LocalAddr().String()}); err == nil || ctx.Err() != nil {
		t.Errorf("bind conflict: err=%v ctx=%v", err, ctx.Err())
	}
}

// TestNotify: a burst of changes between two ticks is announced by one
// NOTIFY with the last serial, a NOTIFY the secondary refuses is retried,
// no tick without a change sends one, and a later change is announced.
//
// RunNotify runs in a synctest bubble, so its ticker and retry timer run on
// the bubble's clock, which moves only when every goroutine in the bubble
// is durably blocked. A worker waiting for the secondary's answer over UDP
// is not, so after a time.Sleep in the bubble every tick of that time has
// been handled and every NOTIFY it caused has reached the secondary: "no
// second NOTIFY" is then a fact, not a guess that a wrong one would have
// come within some wait. The secondary runs outside the bubble: its
// goroutines block in socket reads for good.
func TestNotify(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var serials []uint32 // of every NOTIFY the secondary got, in order
	refuse := 1          // answer the first NOTIFY SERVFAIL, to exercise the retry
	sec := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		mu.Lock()
		serials = append(serials, r.Answer[0].(*dns.SOA).Serial)
		if refuse > 0 {
			refuse--
			m.Rcode = dns.RcodeServerFailure
		}
		mu.Unlock()
		w.WriteMsg(m)
	})}
	go sec.ActivateAndServe()
	defer sec.Shutdown()
	got := func() []uint32 {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(serials)
	}

	synctest.Test(t, func(t *testing.T) {
		x := NewIndex()
		s, err := New(Config{Zone: zone, Notify: []string{pc.LocalAddr().String()}}, x)
		if err != nil {
			t.Fatal(err)
		}
		go s.RunNotify(t.Context())
		// The bubble's clock stands still while this goroutine runs: the
		// whole burst comes before the first tick.
		for i := range 20 {
			x.Set(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), entry)
		}
		first := x.Serial()
		time.Sleep(10 * notifyEvery)
		// The refused NOTIFY and its retry, and nothing from the nine
		// ticks without a change.
		if want := []uint32{first, first}; !slices.Equal(got(), want) {
			t.Fatalf("NOTIFY serials %v after a burst, want %v (one NOTIFY, refused, then retried)", got(), want)
		}
		x.Set(netip.MustParseAddr("10.0.1.1"), entry)
		second := x.Serial()
		time.Sleep(10 * notifyEvery)
		if want := []uint32{first, first, second}; !slices.Equal(got(), want) {
			t.Errorf("NOTIFY serials %v after a later change, want %v", got(), want)
		}
	})
}

// TestDig checks interop with a real client, BIND's dig.
func TestDig(t *testing.T) {
	dig := dsttest.Require(t, "dig", "bind9-dnsutils")
	s, _ := newTestServer(t)
	addr := startServer(t, s)
	ap := netip.MustParseAddrPort(addr)
	run := func(args ...string) string {
		args = append([]string{"@" + ap.Addr().String(), "-p", strings.TrimPrefix(ap.String(), ap.Addr().String()+":"), "+time=2", "+tries=1"}, args...)
		out, err := exec.Command(dig, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("dig %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	checks := []struct {
		args []string
		want []string
	}{
		{[]string{"4.3.2.1." + zone, "A"}, []string{"status: NOERROR", "flags: qr aa", "127.0.0.2"}},
		{[]string{"4.3.2.1." + zone, "TXT"}, []string{"status: NOERROR", "site-a.example"}},
		{[]string{"2.0.0.127." + zone, "TXT", "+tcp"}, []string{"\"test point\""}},
		{[]string{"1.0.0.127." + zone, "A"}, []string{"status: NXDOMAIN", "SOA"}},
		{[]string{zone, "SOA"}, []string{"status: NOERROR", "hostmaster." + zone}},
		{[]string{"example.com.", "A"}, []string{"status: REFUSED"}},
		{[]string{zone, "AXFR"}, []string{"8.b.d.0.1.0.0.2." + zone, "XFR size: 11 records"}},
	}
	for _, c := range checks {
		out := run(c.args...)
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("dig %v: missing %q in\n%s", c.args, w, out)
			}
		}
	}
}

// TestTransferKey: with a transfer key, only transfers signed with it are
// served, and signed; AllowTransfer may be left empty.
func TestTransferKey(t *testing.T) {
	key := &TSIGKey{Name: "dst-xfr", Secret: "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ="}
	x := NewIndex()
	x.Set(netip.MustParseAddr("1.2.3.4"), entry)
	s, err := New(Config{Zone: zone, TransferKey: key}, x)
	if err != nil {
		t.Fatal(err)
	}
	addr := startServer(t, s)
	axfr := func(name, secret string) (int, error) {
		tr := new(dns.Transfer)
		m := new(dns.Msg)
		m.SetAxfr(zone)
		if name != "" {
			tr.TsigSecret = map[string]string{dns.Fqdn(name): secret}
			m.SetTsig(dns.Fqdn(name), dns.HmacSHA256, 300, time.Now().Unix())
		}
		env, err := tr.In(m, addr)
		if err != nil {
			return 0, err
		}
		n := 0
		for e := range env {
			if e.Error != nil {
				return n, e.Error
			}
			n += len(e.RR)
		}
		return n, nil
	}
	if n, err := axfr("dst-xfr", key.Secret); err != nil || n != 2+1+2*3 {
		t.Errorf("signed AXFR: %d records, %v; want 9", n, err)
	}
	if n, err := axfr("", ""); err == nil {
		t.Errorf("unsigned AXFR served %d records", n)
	}
	if n, err := axfr("other-key", key.Secret); err == nil {
		t.Errorf("AXFR signed with another key served %d records", n)
	}
	if n, err := axfr("dst-xfr", "d3Jvbmctd3Jvbmctd3Jvbmctd3Jvbmctd3Jvbmc="); err == nil {
		t.Errorf("AXFR with a wrong secret served %d records", n)
	}
	for _, bad := range []TSIGKey{{Name: "k", Secret: "not base64!"}, {Name: "k", Algorithm: "hmac-md5", Secret: key.Secret}, {Name: "", Secret: key.Secret}} {
		if _, err := New(Config{Zone: zone, TransferKey: &bad}, NewIndex()); err == nil {
			t.Errorf("New accepted transfer key %+v", bad)
		}
	}
}
