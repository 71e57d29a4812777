package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func (b *fakeBackend) peerCall(format string, a ...any) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.peerCalls = append(b.peerCalls, fmt.Sprintf(format, a...))
	if b.fail != nil {
		return &RequestError{Err: b.fail}
	}
	return nil
}

func (b *fakeBackend) Refeed(_ context.Context, peer, reason string) (RefeedResult, error) {
	if err := b.peerCall("refeed %s %s", peer, reason); err != nil {
		return RefeedResult{}, err
	}
	return RefeedResult{Peer: peer, Reason: reason, Refed: 4, Kept: 1}, nil
}

func (b *fakeBackend) Flush(_ context.Context, peer string) (FlushResult, error) {
	if err := b.peerCall("flush %s", peer); err != nil {
		return FlushResult{}, err
	}
	return FlushResult{Peer: peer, Due: 2}, nil
}

func (b *fakeBackend) TestPeer(_ context.Context, peer string) (TestResult, error) {
	if err := b.peerCall("test %s", peer); err != nil {
		return TestResult{}, err
	}
	return TestResult{Peer: peer, Addr: "192.0.2.20:119", OK: true, DurationMS: 1.5, TLS: &TLSState{State: "tls", Version: "TLS 1.3"},
		Steps: []TestStep{{Step: "connect", Detail: "TLS 1.3"}, {Step: "QUIT"}}}, nil
}

func TestPeerControlThroughClient(t *testing.T) {
	b := newFakeBackend()
	srv := newTestServer(t, b)
	c := NewClient(srv.URL)
	defer c.Close()
	ctx := context.Background()
	r, err := c.Refeed(ctx, "site-b.test", "keyring")
	if err != nil || r != (RefeedResult{Peer: "site-b.test", Reason: "keyring", Refed: 4, Kept: 1}) {
		t.Errorf("Refeed = %+v, %v", r, err)
	}
	if _, err := c.Refeed(ctx, "site-b.test", ""); err != nil {
		t.Error(err)
	}
	f, err := c.Flush(ctx, "site-b.test")
	if err != nil || f.Due != 2 {
		t.Errorf("Flush = %+v, %v", f, err)
	}
	tr, err := c.TestPeer(ctx, "site-b.test")
	if err != nil || !tr.OK || tr.TLS == nil || tr.TLS.Version != "TLS 1.3" || len(tr.Steps) != 2 {
		t.Errorf("TestPeer = %+v, %v", tr, err)
	}
	want := "refeed site-b.test keyring,refeed site-b.test all,flush site-b.test,test site-b.test"
	if got := strings.Join(b.peerCalls, ","); got != want {
		t.Errorf("backend saw %s\nwant %s", got, want)
	}

	// A missing peer is the request's fault; so is an unknown one.
	var ae *APIError
	if _, err := c.Flush(ctx, ""); !errors.As(err, &ae) || ae.StatusCode != 400 || !strings.Contains(err.Error(), "peer") {
		t.Errorf("Flush of no peer = %v, want 400", err)
	}
	b.fail = errors.New(`no outgoing feed to peer "nope"`)
	if _, err := c.TestPeer(ctx, "nope"); !errors.As(err, &ae) || ae.StatusCode != 400 || !strings.Contains(err.Error(), "nope") {
		t.Errorf("TestPeer of an unknown peer = %v, want 400", err)
	}
	// GET is not enough to change anything.
	if code, _, _ := get(t, srv.URL+"/v1/peers/flush"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/peers/flush = %d, want 405", code)
	}
}

// readOnly is a Backend without PeerControl.
type readOnly struct{ *fakeBackend }

func (readOnly) Refeed() {} // a method of another signature hides the fake's: readOnly is no PeerControl

func TestPeerControlWithoutPeers(t *testing.T) {
	srv := newTestServer(t, readOnly{newFakeBackend()})
	code, _, body := do(t, "POST", srv.URL+"/v1/peers/flush", `{"peer": "x"}`, map[string]string{"Content-Type": "application/json"})
	if code != http.StatusNotFound {
		t.Errorf("flush on a backend without peers = %d %s, want 404", code, body)
	}
}
