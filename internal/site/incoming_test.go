package site

import (
	"net"
	"net/netip"
	"testing"

	"github.com/dst-traps/dst/internal/feed"
	"github.com/dst-traps/dst/internal/nntp"
)

// TestIncoming: a peer's session shows while it lasts, with its address
// and TLS state; what it sent is counted by outcome and reason; sessions
// that may not feed are not peers.
func TestIncoming(t *testing.T) {
	in := newIncoming()
	remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4000}
	s := nntp.Session{ID: 7, Remote: remote, CanFeed: true, Peer: "site-b.test"}
	in.authorized(s)
	in.authorized(nntp.Session{ID: 8, Remote: remote, CanPost: true}) // a local poster
	in.verdict(&s, nntp.Accepted(), true)
	in.verdict(&s, nntp.Accepted(), false) // an offer wanted: nothing taken yet
	in.verdict(&s, nntp.Refused("duplicate: already seen"), false)
	in.verdict(&s, nntp.Refused("signature: no key in the keyring for the signer"), true)

	st := in.status("site-b.test")
	if len(st.Connections) != 1 || st.Connections[0].Addr != "127.0.0.1:4000" || st.Connections[0].TLS.State != "loopback plain" {
		t.Errorf("connections %+v", st.Connections)
	}
	if st.Accepted != 1 || st.Refused != 2 || st.LastSeen.IsZero() || st.LastAddr != "127.0.0.1:4000" {
		t.Errorf("status %+v", st)
	}
	got := map[string]int64{}
	for _, r := range st.Refusals {
		got[r.Reason] = r.Count
	}
	if got["duplicate"] != 1 || got["keyring"] != 1 {
		t.Errorf("refusals %+v", st.Refusals)
	}
	in.ended(s)
	if st := in.status("site-b.test"); len(st.Connections) != 0 || st.LastTLS == nil || st.LastTLS.State != "loopback plain" {
		t.Errorf("after the session ended: %+v", st)
	}
	if st := in.status("site-c.test"); len(st.Connections) != 0 || st.Accepted != 0 {
		t.Errorf("a peer never seen: %+v", st)
	}
}

// TestNoteOffer: what a peer offers is remembered for the feeds only when
// the connection can be that peer alone. Peers sharing an address cannot be
// told apart by it, and a wrong guess would keep a report from a peer that
// does not have it.
func TestNoteOffer(t *testing.T) {
	h := countingHandler{in: newIncoming(), offered: feed.NewOffered(), peers: []peerAuth{
		{name: "site-a.test", addrs: []netip.Prefix{netip.MustParsePrefix("127.0.1.1/32")}},
		{name: "site-b.test", addrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}},
		{name: "site-c.test", addrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/24")}},
	}}
	from := func(ip net.IP, peer string, canFeed bool) *nntp.Session {
		return &nntp.Session{Remote: &net.TCPAddr{IP: ip, Port: 4000}, CanFeed: canFeed, Peer: peer}
	}
	h.noteOffer(from(net.IPv4(127, 0, 1, 1), "site-a.test", true), "<1@x>")
	h.noteOffer(from(net.IPv4(127, 0, 0, 1), "site-b.test", true), "<2@x>")  // site-c.test's too
	h.noteOffer(from(net.IPv4(127, 0, 1, 1), "site-a.test", false), "<3@x>") // not let feed
	if !h.offered.Has("site-a.test", "<1@x>") {
		t.Error("an offer from the only peer at its address was not recorded")
	}
	if h.offered.Has("site-b.test", "<2@x>") || h.offered.Has("site-c.test", "<2@x>") {
		t.Error("an offer from an address two peers share was recorded")
	}
	if h.offered.Has("site-a.test", "<3@x>") {
		t.Error("an offer from a session that may not feed was recorded")
	}
}
