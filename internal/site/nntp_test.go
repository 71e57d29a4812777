package site

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/config"
	"github.com/dst-traps/dst/internal/dsttest"
	"github.com/dst-traps/dst/internal/nntp"
)

// addr is a client address as the connection gives it.
type addr string

func (a addr) Network() string { return "tcp" }
func (a addr) String() string  { return string(a) }

func withCert(der string) *tls.ConnectionState {
	return &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{Raw: []byte(der)}}}
}

func TestAuthorize(t *testing.T) {
	pfx := func(s ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, p := range s {
			out = append(out, netip.MustParsePrefix(p))
		}
		return out
	}
	peers := []peerAuth{
		{name: "open", addrs: pfx("192.0.2.1/32", "2001:db8::/64")},
		{name: "pinned", addrs: pfx("192.0.2.2/32"), needCert: true, cert: []byte("cert-of-pinned")},
		{name: "unreadable", addrs: pfx("192.0.2.3/32"), needCert: true}, // its client_cert could not be read
		{name: "user", addrs: pfx("192.0.2.4/32"), user: "feeder"},
		{name: "either", addrs: pfx("192.0.2.5/32"), needCert: true, cert: []byte("cert-of-either"), user: "either"},
	}
	postAllow := pfx("127.0.0.1/32", "192.0.2.1/32")
	for _, tc := range []struct {
		name       string
		s          nntp.Session
		ok         bool
		post, feed bool
		peer       string
	}{
		{name: "unix socket", s: nntp.Session{Unix: true}, ok: true, post: true},
		{name: "no address", s: nntp.Session{}},
		{name: "unparseable address", s: nntp.Session{Remote: addr("somewhere")}},
		{name: "stranger", s: nntp.Session{Remote: addr("203.0.113.9:4000")}},
		{name: "stranger with a certificate", s: nntp.Session{Remote: addr("203.0.113.9:4000"), TLS: withCert("cert-of-pinned")}},
		{name: "post_allow", s: nntp.Session{Remote: addr("127.0.0.1:4000")}, ok: true, post: true},
		{name: "post_allow, IPv4-mapped", s: nntp.Session{Remote: addr("[::ffff:127.0.0.1]:4000")}, ok: true, post: true},
		{name: "peer by address, also post_allow", s: nntp.Session{Remote: addr("192.0.2.1:4000")}, ok: true, post: true, feed: true, peer: "open"},
		{name: "peer by address, IPv6", s: nntp.Session{Remote: addr("[2001:db8::7]:4000")}, ok: true, feed: true, peer: "open"},
		{name: "peer by address, IPv4-mapped", s: nntp.Session{Remote: addr("[::ffff:192.0.2.1]:4000")}, ok: true, post: true, feed: true, peer: "open"},
		{name: "certificate required, absent", s: nntp.Session{Remote: addr("192.0.2.2:4000")}, ok: true},
		{name: "certificate required, present", s: nntp.Session{Remote: addr("192.0.2.2:4000"), TLS: withCert("cert-of-pinned")}, ok: true, feed: true, peer: "pinned"},
		{name: "certificate required, IPv4-mapped", s: nntp.Session{Remote: addr("[::ffff:192.0.2.2]:4000"), TLS: withCert("cert-of-pinned")}, ok: true, feed: true, peer: "pinned"},
		{name: "certificate required, wrong one", s: nntp.Session{Remote: addr("192.0.2.2:4000"), TLS: withCert("cert-of-either")}, ok: true},
		{name: "certificate required, TLS without one", s: nntp.Session{Remote: addr("192.0.2.2:4000"), TLS: &tls.ConnectionState{}}, ok: true},
		{name: "certificate unreadable: nothing matches", s: nntp.Session{Remote: addr("192.0.2.3:4000"), TLS: withCert("")}, ok: true},
		{name: "the right certificate from another address", s: nntp.Session{Remote: addr("192.0.2.3:4000"), TLS: withCert("cert-of-pinned")}, ok: true},
		{name: "AUTHINFO user required, not given", s: nntp.Session{Remote: addr("192.0.2.4:4000")}, ok: true},
		{name: "AUTHINFO user given", s: nntp.Session{Remote: addr("192.0.2.4:4000"), User: "feeder"}, ok: true, feed: true, peer: "user"},
		{name: "AUTHINFO another peer's user", s: nntp.Session{Remote: addr("192.0.2.4:4000"), User: "either"}, ok: true},
		{name: "AUTHINFO user, stranger's address", s: nntp.Session{Remote: addr("203.0.113.9:4000"), User: "feeder"}},
		{name: "certificate or user: user", s: nntp.Session{Remote: addr("192.0.2.5:4000"), User: "either"}, ok: true, feed: true, peer: "either"},
		{name: "certificate or user: certificate", s: nntp.Session{Remote: addr("192.0.2.5:4000"), TLS: withCert("cert-of-either")}, ok: true, feed: true, peer: "either"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := authorize(peers, postAllow, tc.s)
			if ok != tc.ok || got.CanPost != tc.post || got.CanFeed != tc.feed || (tc.feed && got.Peer != tc.peer) {
				t.Errorf("authorize = ok %v, post %v, feed %v, peer %q; want ok %v, post %v, feed %v, peer %q",
					ok, got.CanPost, got.CanFeed, got.Peer, tc.ok, tc.post, tc.feed, tc.peer)
			}
		})
	}
}

// The pools count a connection against every peer whose addresses hold it.
func TestPeersAt(t *testing.T) {
	peers := []peerAuth{
		{name: "a", addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("192.0.2.1/32")}},
		{name: "b", addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}},
		{name: "c", addrs: []netip.Prefix{netip.MustParsePrefix("2001:db8::/32")}},
	}
	for _, tc := range []struct {
		ip   string
		want []string
	}{
		{"192.0.2.1", []string{"a", "b"}},
		{"192.0.2.9", []string{"a"}},
		{"2001:db8::1", []string{"c"}},
		{"203.0.113.1", nil},
	} {
		if got := peersAt(peers, netip.MustParseAddr(tc.ip)); !slices.Equal(got, tc.want) {
			t.Errorf("peersAt(%s) = %v, want %v", tc.ip, got, tc.want)
		}
	}
}

var _ net.Addr = addr("")

// A pinned peer that presents another certificate, or none, under TLS is
// told apart from one that matches; a session that already authenticated
// with AUTHINFO is not told again.
func TestPinMismatches(t *testing.T) {
	peers := []peerAuth{
		{name: "pinned", addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.2/32")}, needCert: true, cert: []byte("cert-of-pinned")},
		{name: "unreadable", addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.2/32")}, needCert: true},
		{name: "open", addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.2/32")}},
	}
	for _, tc := range []struct {
		name string
		s    nntp.Session
		want string // the presented certificate; "-": no mismatch
	}{
		{"the pinned certificate", nntp.Session{Remote: addr("192.0.2.2:4000"), TLS: withCert("cert-of-pinned")}, "-"},
		{"another certificate", nntp.Session{Remote: addr("192.0.2.2:4000"), TLS: withCert("other")}, "other"},
		{"another certificate, IPv4-mapped", nntp.Session{Remote: addr("[::ffff:192.0.2.2]:4000"), TLS: withCert("other")}, "other"},
		{"no certificate", nntp.Session{Remote: addr("192.0.2.2:4000"), TLS: &tls.ConnectionState{}}, ""},
		{"not yet under TLS", nntp.Session{Remote: addr("192.0.2.2:4000")}, "-"},
		{"after AUTHINFO", nntp.Session{Remote: addr("192.0.2.2:4000"), TLS: withCert("other"), User: "u"}, "-"},
		{"another address", nntp.Session{Remote: addr("192.0.2.3:4000"), TLS: withCert("other")}, "-"},
	} {
		got := pinMismatches(peers, tc.s)
		switch {
		case tc.want == "-" && len(got) != 0:
			t.Errorf("%s: mismatches %+v, want none", tc.name, got)
		case tc.want == "-":
		case len(got) != 1 || got[0].peer.name != "pinned":
			t.Errorf("%s: mismatches %+v, want the peer pinned", tc.name, got)
		case tc.want == "" && got[0].presented != nil, tc.want != "" && (got[0].presented == nil || string(got[0].presented.Raw) != tc.want):
			t.Errorf("%s: presented %v, want %q", tc.name, got[0].presented, tc.want)
		}
	}
}

func TestFingerprint(t *testing.T) {
	// printf abc | openssl dgst -sha256
	want := "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
	if got := fingerprint([]byte("abc")); got != want {
		t.Errorf("fingerprint = %s, want %s", got, want)
	}
}

// The receiver of a pinned peer's connection with another certificate
// logs a warning naming the peer and both fingerprints, and counts it.
func TestPinMismatchLogged(t *testing.T) {
	dir := t.TempDir()
	pinned := writeCert(t, filepath.Join(dir, "pinned.pem"), filepath.Join(dir, "pinned.key"))
	presented := writeCert(t, filepath.Join(dir, "other.pem"), filepath.Join(dir, "other.key"))
	siteCert, siteKey := filepath.Join(dir, "site.pem"), filepath.Join(dir, "site.key")
	writeCert(t, siteCert, siteKey)
	cfg := testConfig(t, "a.test", func(c *config.Config) {
		c.TLS = config.TLS{Cert: siteCert, Key: siteKey, Listen: config.HostPorts{config.MustParseHostPort("127.0.0.1:0")}}
		c.Peers = []config.Peer{{Name: "b.test", Addresses: config.Prefixes{{Prefix: netip.MustParsePrefix("127.0.0.1/32")}},
			ClientCert: filepath.Join(dir, "pinned.pem")}}
	})
	r := start(t, cfg)
	kp, err := tls.LoadX509KeyPair(filepath.Join(dir, "other.pem"), filepath.Join(dir, "other.key"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", r.Addrs().NNTPS[0].String(), &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{kp}}) // the client's certificate is the point
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The greeting comes after Authorize.
	if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	line := ""
	dsttest.WaitFor(t, 10*time.Second, "the pin mismatch to be logged", func() bool {
		for _, l := range strings.Split(r.log.String(), "\n") {
			if strings.Contains(l, "does not match its pin") {
				line = l
			}
		}
		return line != ""
	})
	for _, want := range []string{"level=WARN", "peer=b.test", "expected_sha256=" + fingerprint(pinned), "presented_sha256=" + fingerprint(presented), "client_cert=" + filepath.Join(dir, "pinned.pem")} {
		if !strings.Contains(line, want) {
			t.Errorf("the warning lacks %s: %s", want, line)
		}
	}
	if n := counter(t, r.Site, "dst_nntp_refused_connections_total", "peer-cert-mismatch"); n != 1 {
		t.Errorf("dst_nntp_refused_connections_total{reason=\"peer-cert-mismatch\"} = %v, want 1", n)
	}
}

// counter is the value of a counter of the site's registry with the given
// reason label.
func counter(t *testing.T, s *Site, name, reason string) float64 {
	t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestRemoteIP: a session's address from a real TCP connection or from
// any net.Addr that prints as host:port, IPv4 unmapped; none from a Unix
// socket or without a remote.
func TestRemoteIP(t *testing.T) {
	for _, tc := range []struct {
		remote net.Addr
		want   string // "" for none
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 4000}, "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.8"), Port: 4000}, "192.0.2.8"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::9"), Port: 4000}, "2001:db8::9"},
		{addr("[::ffff:198.51.100.1]:119"), "198.51.100.1"},
		{&net.UnixAddr{Name: "/run/dst/nntp.sock", Net: "unix"}, ""},
		{nil, ""},
	} {
		got := ""
		if ip, ok := remoteIP(nntp.Session{Remote: tc.remote}); ok {
			got = ip.String()
		}
		if got != tc.want {
			t.Errorf("remoteIP(%v) = %q, want %q", tc.remote, got, tc.want)
		}
	}
}
