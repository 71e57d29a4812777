package site

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/netip"
	"slices"
	"testing"

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
