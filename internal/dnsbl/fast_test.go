package dnsbl

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// slowAnswers is what the slow path answers pkt with, from 127.0.0.1.
func slowAnswers(s *Server, pkt []byte) [][]byte {
	pkt = bytes.Clone(pkt) // TSIG verification edits the packet
	if len(pkt) > udpReadSize {
		pkt = pkt[:udpReadSize]
	}
	w := &slowWriter{local: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53},
		remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, provider: s.tsigProvider()}
	s.serveSlow(pkt, s.acceptFunc(&net.UDPConn{}), w)
	return w.out
}

// fastAnswer is the fast path's answer, if it takes pkt.
func fastAnswer(s *Server, pkt []byte, sc *fastScratch) ([]byte, bool) {
	if len(pkt) > udpReadSize {
		pkt = pkt[:udpReadSize]
	}
	out := make([]byte, fastOutSize)
	n, ok := s.answerFast(pkt, out, sc)
	return out[:n], ok
}

// memConn is a net.PacketConn in memory, for running the real dns.Server
// on packets: the reference the slow path must match.
type memConn struct {
	in       chan []byte
	taken    chan struct{} // a packet was read
	mu       sync.Mutex
	out      [][]byte
	deadline chan struct{} // closed by a deadline in the past
	once     sync.Once
}

var errTimeout = timeoutError{}

type timeoutError struct{}

func (timeoutError) Error() string   { return "timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func (c *memConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case p := <-c.in:
		c.taken <- struct{}{}
		return copy(b, p), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil
	case <-c.deadline:
		return 0, nil, errTimeout
	}
}

func (c *memConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	c.mu.Lock()
	c.out = append(c.out, bytes.Clone(b))
	c.mu.Unlock()
	return len(b), nil
}
func (c *memConn) Close() error        { return nil }
func (c *memConn) LocalAddr() net.Addr { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (c *memConn) SetDeadline(t time.Time) error {
	return c.SetReadDeadline(t)
}
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }
func (c *memConn) SetReadDeadline(t time.Time) error {
	if !t.IsZero() && t.Before(time.Now()) {
		c.once.Do(func() { close(c.deadline) })
	}
	return nil
}

// miekgAnswers runs pkt through dns.Server, configured as Serve configured
// it before the fast path, and returns what it wrote.
func miekgAnswers(t testing.TB, s *Server, pkt []byte) [][]byte {
	t.Helper()
	c := &memConn{in: make(chan []byte, 1), taken: make(chan struct{}, 1), deadline: make(chan struct{})}
	started := make(chan struct{})
	sv := &dns.Server{PacketConn: c, Handler: s, TsigSecret: s.tsigSecret(), MsgAcceptFunc: s.acceptFunc(c),
		NotifyStartedFunc: func() { close(started) }}
	done := make(chan error, 1)
	go func() { done <- sv.ActivateAndServe() }()
	<-started
	c.in <- bytes.Clone(pkt)
	// Once the server has read pkt, Shutdown waits for its handler.
	<-c.taken
	if err := sv.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil && !errors.Is(err, errTimeout) {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out
}

// diffServer is a server with every kind of name: listings of both
// families, with TXT text full of quotes, backslashes and UTF-8 near the
// size limits, empty non-terminals and the test points.
func diffServer(t testing.TB, graded bool) (*Server, []string) {
	t.Helper()
	x := NewIndex()
	s, err := New(Config{
		Zone: "Bl.Example", TTL: 10 * time.Minute, NegativeTTL: 90 * time.Second, Graded: graded,
		TXT: `"{ip}" \ {origins} é {hits} {expires} {first_seen}`,
		NS:  []string{"ns1.bl.example", "ns2.other.example"}, Mbox: "Host-Master.Example",
	}, x)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	add := func(ip string, e Entry) {
		a := netip.MustParseAddr(ip)
		x.Set(a, e)
		names = append(names, s.reverseName(a))
	}
	add("1.2.3.4", entry)
	add("2001:db8::1", entry)
	add("10.0.0.1", Entry{Expires: t0, FirstSeen: t0, Hits: 1, Origins: []string{strings.Repeat(`"é"`, 250)}, Corroboration: 3})
	add("10.0.0.2", Entry{Origins: []string{strings.Repeat("o", 900)}, Corroboration: 12})
	add("10.0.0.3", Entry{Origins: []string{strings.Repeat(`\`, 1200)}})
	add("10.0.0.4", Entry{})
	// Text whose 255-byte and 1000-byte cuts fall inside UTF-8 sequences.
	for i := range 8 {
		add(fmt.Sprintf("10.0.1.%d", i), Entry{Origins: []string{strings.Repeat("x", i) + strings.Repeat("€", 400)}, Hits: i})
		add(fmt.Sprintf("10.0.2.%d", i), Entry{Origins: []string{strings.Repeat("y", 170+i) + strings.Repeat("\xff\"", 200)}})
	}
	add("2001:db8:ffff::abcd", Entry{Origins: []string{strings.Repeat("\x00\x7f", 600)}})
	add("255.255.255.255", entry)
	add("0.0.0.0", entry)
	names = append(names,
		s.reverseName(test4Yes), s.reverseName(test4No), s.reverseName(test6Yes), s.reverseName(test6No),
		"5.3.2.1.bl.example.", "3.2.1.bl.example.", "2.1.bl.example.", "1.bl.example.", "127.bl.example.",
		"0.0.127.bl.example.", "9.bl.example.", "8.b.d.0.1.0.0.2.bl.example.", "9.b.d.0.1.0.0.2.bl.example.",
		"2.bl.example.", "f.bl.example.", "a.bl.example.", "1.0.0.10.bl.example.", "4.3.2.1.0.bl.example.",
		"04.3.2.1.bl.example.", "256.3.2.1.bl.example.", "x.bl.example.", "ns.bl.example.", "bl.example.",
		"example.", "4.3.2.1.other.example.", "xbl.example.", "4.3.2.1.bl.example.com.",
		"4-3.2.1.bl.example.", "_.bl.example.", "1.2.3.bl.example.", "0.bl.example.", "00.bl.example.",
		strings.Repeat("a.", 100)+"bl.example.", strings.Repeat("1.", 119)+"bl.example.",
		strings.Repeat("0.", 32)+"bl.example.", strings.Repeat("0.", 31)+"bl.example.",
		strings.Repeat("x", 63)+"."+strings.Repeat("y", 63)+"."+strings.Repeat("z", 63)+"."+strings.Repeat("w", 50)+".bl.example.",
	)
	return s, names
}

// mixCase returns name with every other letter upper-cased.
func mixCase(name string) string {
	b := []byte(name)
	up := false
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			if up {
				b[i] = c - 'a' + 'A'
			}
			up = !up
		}
	}
	return string(b)
}

// compare checks that the fast path, when it takes pkt, answers as the
// slow path does, and (ref) that the slow path answers as dns.Server.
// It returns whether the fast path took it.
func compare(t *testing.T, s *Server, pkt []byte, sc *fastScratch, ref bool) bool {
	t.Helper()
	slow := slowAnswers(s, pkt)
	if ref {
		want := miekgAnswers(t, s, pkt)
		if len(want) != len(slow) {
			t.Fatalf("query %x: dns.Server wrote %d answers, the slow path %d", pkt, len(want), len(slow))
		}
		for i := range want {
			if !bytes.Equal(want[i], slow[i]) {
				t.Fatalf("query %x: the slow path differs from dns.Server:\n%x\n%x", pkt, slow[i], want[i])
			}
		}
	}
	fast, ok := fastAnswer(s, pkt, sc)
	if !ok {
		return false
	}
	if len(slow) != 1 || !bytes.Equal(fast, slow[0]) {
		var fm, sm dns.Msg
		fm.Unpack(fast)
		if len(slow) > 0 {
			sm.Unpack(slow[0])
		}
		t.Fatalf("query %x: the fast path answers\n%x\n%v\nthe slow path (%d answers)\n%x\n%v", pkt, fast, &fm, len(slow), slow, &sm)
	}
	return true
}

func packQuery(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFastEqualsSlow: every answer of the fast path is byte for byte the
// slow path's, and the slow path's is dns.Server's, over names of every
// kind in mixed case, query types, classes, header bits and EDNS buffer
// sizes; and the fast path takes the plain queries it is for.
func TestFastEqualsSlow(t *testing.T) {
	for _, graded := range []bool{false, true} {
		s, names := diffServer(t, graded)
		var sc fastScratch
		took := 0
		for _, name := range names {
			for _, nm := range []string{name, strings.ToUpper(name), mixCase(name)} {
				for _, qt := range []uint16{dns.TypeA, dns.TypeTXT, dns.TypeANY, dns.TypeAAAA, dns.TypeMX, dns.TypeSOA, dns.TypeNS, 0, 65535, dns.TypeAXFR, dns.TypeIXFR} {
					for _, qc := range []uint16{dns.ClassINET, dns.ClassANY, dns.ClassCHAOS} {
						for _, bits := range []struct{ rd, cd, ad, z, tc bool }{{}, {rd: true}, {cd: true}, {rd: true, cd: true, ad: true, z: true, tc: true}} {
							for _, edns := range []int{-1, 0, 512, 1232, 4096} {
								m := new(dns.Msg)
								m.SetQuestion(nm, qt)
								m.Id = 0xbeef
								m.Question[0].Qclass = qc
								m.RecursionDesired, m.CheckingDisabled, m.AuthenticatedData, m.Zero, m.Truncated = bits.rd, bits.cd, bits.ad, bits.z, bits.tc
								if edns >= 0 {
									m.SetEdns0(uint16(edns), edns == 4096)
								}
								ref := qt == dns.TypeA && qc == dns.ClassINET && !bits.rd
								if compare(t, s, packQuery(t, m), &sc, ref) {
									took++
								}
							}
						}
					}
				}
			}
		}
		// Names × 3 cases × A/TXT/ANY/AAAA/MX/0/65535 (SOA and NS
		// too below the apex) × IN/ANY × bits × EDNS: most of them.
		if took < len(names)*3*2*4*5 {
			t.Fatalf("the fast path took only %d queries", took)
		}
		t.Logf("graded=%v: the fast path took %d queries", graded, took)
	}
}

// TestFastEDNSSizes: every EDNS buffer size from 0 to 4096, for answers
// around the truncation limits (a ~1,000-byte TXT, an A+TXT pair, an
// NXDOMAIN with a long name).
func TestFastEDNSSizes(t *testing.T) {
	s, _ := diffServer(t, false)
	var sc fastScratch
	for _, q := range []struct {
		name string
		qt   uint16
	}{
		{"1.0.0.10.bl.example.", dns.TypeTXT}, {"2.0.0.10.BL.example.", dns.TypeANY}, {"3.0.0.10.bl.example.", dns.TypeANY},
		{"7.1.0.10.bl.example.", dns.TypeTXT}, {"4.3.2.1.bl.example.", dns.TypeANY},
		{strings.Repeat("x", 63) + "." + strings.Repeat("y", 63) + "." + strings.Repeat("z", 63) + "." + strings.Repeat("w", 50) + ".bl.example.", dns.TypeA},
	} {
		for size := 0; size <= 4096; size++ {
			m := new(dns.Msg)
			m.SetQuestion(q.name, q.qt)
			m.SetEdns0(uint16(size), size%2 == 0)
			if !compare(t, s, packQuery(t, m), &sc, size%512 == 0) {
				t.Fatalf("%s %s EDNS %d: the fast path declined", q.name, dns.TypeToString[q.qt], size)
			}
		}
	}
}

// TestFastDeclines: what the fast path must leave to the slow path.
func TestFastDeclines(t *testing.T) {
	s, _ := diffServer(t, false)
	var sc fastScratch
	base := func() *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion("4.3.2.1.bl.example.", dns.TypeA)
		return m
	}
	cases := map[string]func(*dns.Msg){
		"response": func(m *dns.Msg) { m.Response = true },
		"notify":   func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify },
		"update":   func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate },
		"2 qs":     func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) },
		"0 qs":     func(m *dns.Msg) { m.Question = nil },
		"apex":     func(m *dns.Msg) { m.Question[0].Name = "bl.example." },
		"outside":  func(m *dns.Msg) { m.Question[0].Name = "example.com." },
		"chaos":    func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS },
		"axfr":     func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeAXFR },
		"ixfr":     func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeIXFR },
		"escaped":  func(m *dns.Msg) { m.Question[0].Name = `4\.3.2.1.bl.example.` },
		"star":     func(m *dns.Msg) { m.Question[0].Name = "*.bl.example." },
		"edns v1":  func(m *dns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) },
		"edns opt": func(m *dns.Msg) {
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0123456789abcdef"}}
		},
		"2 opts": func(m *dns.Msg) { m.SetEdns0(1232, false); m.Extra = append(m.Extra, m.Extra[0]) },
		"answer": func(m *dns.Msg) {
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "x.", Rrtype: dns.TypeA, Class: 1}, A: net.IPv4(1, 2, 3, 4)}}
		},
		"tsig":       func(m *dns.Msg) { m.SetTsig("k.", dns.HmacSHA256, 300, t0.Unix()) },
		"compressed": nil,
		"trailing":   nil,
	}
	for name, edit := range cases {
		m := base()
		if edit != nil {
			edit(m)
		}
		pkt := packQuery(t, m)
		switch name {
		case "compressed": // the question name as a pointer to itself
			pkt = append(pkt[:12:12], 0xc0, 12, 0, 1, 0, 1)
		case "trailing":
			pkt = append(pkt, 0)
		}
		if compare(t, s, pkt, &sc, true) {
			t.Errorf("%s: the fast path took it", name)
		}
	}
}

// FuzzFastPath: whatever the packet, the fast path either declines it or
// answers it exactly as the slow path does, and the slow path answers as
// dns.Server does.
func FuzzFastPath(f *testing.F) {
	s, names := diffServer(f, true)
	for i, name := range names {
		m := new(dns.Msg)
		m.SetQuestion(mixCase(name), []uint16{dns.TypeA, dns.TypeTXT, dns.TypeANY, dns.TypeMX}[i%4])
		if i%3 == 0 {
			m.SetEdns0(uint16(400+i*37), i%2 == 0)
		}
		m.RecursionDesired = i%2 == 1
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	var sc fastScratch
	f.Fuzz(func(t *testing.T, pkt []byte) {
		compare(t, s, pkt, &sc, true)
	})
}

// TestFastAllocs: the fast path allocates nothing, counted or not, for
// hits, misses, ENTs, TXT and truncated answers.
func TestFastAllocs(t *testing.T) {
	s, _ := countedServer(t)
	s2, _ := diffServer(t, true)
	var sc fastScratch
	out := make([]byte, fastOutSize)
	for _, srv := range []*Server{s, s2} {
		srv.x.Set(netip.MustParseAddr("10.0.0.1"), Entry{Origins: []string{strings.Repeat("o", 900)}})
		for _, q := range []struct {
			name string
			qt   uint16
		}{{"4.3.2.1." + zone, dns.TypeA}, {"5.3.2.1." + zone, dns.TypeA}, {"3.2.1." + zone, dns.TypeA},
			{"4.3.2.1." + zone, dns.TypeTXT}, {"1.0.0.10." + zone, dns.TypeANY}, {s.reverseName(test6Yes), dns.TypeTXT}} {
			m := new(dns.Msg)
			m.SetQuestion(q.name, q.qt)
			pkt := packQuery(t, m)
			if _, ok := srv.answerFast(pkt, out, &sc); !ok {
				t.Fatalf("%s: declined", q.name)
			}
			if n := testing.AllocsPerRun(100, func() { srv.answerFast(pkt, out, &sc) }); n != 0 {
				t.Errorf("%s %s: %v allocations per query", q.name, dns.TypeToString[q.qt], n)
			}
		}
	}
}

// TestFastCounts: the fast path counts its answers as the slow path does.
func TestFastCounts(t *testing.T) {
	s, vec := countedServer(t)
	var sc fastScratch
	m := new(dns.Msg)
	m.SetQuestion("4.3.2.1."+zone, dns.TypeA)
	if _, ok := fastAnswer(s, packQuery(t, m), &sc); !ok {
		t.Fatal("declined")
	}
	m.SetQuestion("5.3.2.1."+zone, dns.TypeTXT)
	if _, ok := fastAnswer(s, packQuery(t, m), &sc); !ok {
		t.Fatal("declined")
	}
	if v := counterValue(t, vec.WithLabelValues("A", "NOERROR", "udp")); v != 1 {
		t.Errorf("A NOERROR udp = %v", v)
	}
	if v := counterValue(t, vec.WithLabelValues("TXT", "NXDOMAIN", "udp")); v != 1 {
		t.Errorf("TXT NXDOMAIN udp = %v", v)
	}
}
