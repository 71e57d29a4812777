package site

import (
	"net"
	"testing"

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
