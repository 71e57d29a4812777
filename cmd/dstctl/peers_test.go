package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/dst-traps/dst/internal/admin"
)

func (b *backend) Peers(context.Context) ([]admin.PeerStatus, error) {
	return []admin.PeerStatus{
		{Name: "site-b.test", Addr: "192.0.2.20:1119", Connected: true, Streaming: true, Depth: 3, Sent: 10, Refused: 4, Skipped: 6,
			Outgoing: true, TLSMode: "implicit", Kept: 3,
			TLS:      &admin.TLSState{State: "tls", Version: "TLS 1.3", Cipher: "TLS_AES_128_GCM_SHA256", CertSHA256: "ab12", CertSubject: "CN=site-b.test"},
			Refusals: []admin.RefusalCount{{Reason: "keyring", Count: 3, LastCode: 439, LastText: "signature: no key in the keyring for the signer", LastTime: t0}, {Reason: "duplicate", Count: 1, LastCode: 438, LastText: "already seen"}},
			Incoming: &admin.IncomingStatus{Connections: []admin.IncomingConn{{Addr: "192.0.2.20:40000", TLS: admin.TLSState{State: "plain"}, Since: t0}},
				Accepted: 7, Refused: 1, LastSeen: t0, Refusals: []admin.RefusalCount{{Reason: "clock", Count: 1, LastCode: 439, LastText: "Date 2031-01-01T00:00:00Z is in the future"}}}},
		{Name: "site-c.test", Incoming: &admin.IncomingStatus{Connections: []admin.IncomingConn{}, LastAddr: "127.0.0.1:5555", LastTLS: &admin.TLSState{State: "loopback plain"}}},
	}, nil
}

func (b *backend) Refeed(_ context.Context, peer, reason string) (admin.RefeedResult, error) {
	if peer != "site-b.test" {
		return admin.RefeedResult{}, &admin.RequestError{Err: fmt.Errorf("no peer %q is configured", peer)}
	}
	return admin.RefeedResult{Peer: peer, Reason: reason, Refed: 3}, nil
}

func (b *backend) Flush(_ context.Context, peer string) (admin.FlushResult, error) {
	return admin.FlushResult{Peer: peer, Due: 2}, nil
}

func (b *backend) TestPeer(_ context.Context, peer string) (admin.TestResult, error) {
	if peer == "dead.test" {
		return admin.TestResult{Peer: peer, Addr: "127.0.0.1:1", DurationMS: 0.4,
			Steps: []admin.TestStep{{Step: "connect", DurationMS: 0.4, Error: "dial tcp 127.0.0.1:1: connect: connection refused"}}}, nil
	}
	return admin.TestResult{Peer: peer, Addr: "192.0.2.20:1119", OK: true, DurationMS: 3.25, Streaming: true,
		Steps: []admin.TestStep{{Step: "connect", Detail: "loopback plain", DurationMS: 1}, {Step: "MODE STREAM", Detail: "203 streaming", DurationMS: 0.5},
			{Step: "CHECK", Detail: "<t@x>: 238", DurationMS: 0.5}, {Step: "QUIT", DurationMS: 0.25}}}, nil
}

func TestPeers(t *testing.T) {
	sock := serve(t, newBackend())
	code, out, _ := dstctl(t, "-admin", sock, "peers")
	want := `PEER         ADDRESS          STATE                  WAITING  SENT  REFUSED  DEFERRED  SKIPPED  KEPT  TLS      LAST SUCCESS  LAST ERROR
site-b.test  192.0.2.20:1119  connected (streaming)  3        10    4        0         6        3     TLS 1.3  -             -
  site-b.test: TLS 1.3 TLS_AES_128_GCM_SHA256, certificate sha256:ab12 (CN=site-b.test)
  site-b.test refused: keyring 3 (last: 439 signature: no key in the keyring for the signer); duplicate 1 (last: 438 already seen)
  site-b.test: 3 refused reports kept; once the peer has fixed its keyring or clock: dstctl peers refeed site-b.test

INCOMING     SESSIONS  FROM                   TLS             ACCEPTED  REFUSED  LAST SEEN
site-b.test  1         192.0.2.20:40000       plain           7         1        2026-11-29T10:10:10Z
site-c.test  0         (last) 127.0.0.1:5555  loopback plain  0         0        -
  site-b.test refused here: clock 1 (last: 439 Date 2031-01-01T00:00:00Z is in the future)
`
	if code != 0 || out != want {
		t.Errorf("peers: exit %d:\n%s\nwant:\n%s", code, out, want)
	}

	code, out, _ = dstctl(t, "-admin", sock, "peers", "-json")
	var ps []admin.PeerStatus
	if err := json.Unmarshal([]byte(out), &ps); code != 0 || err != nil || len(ps) != 2 || ps[0].Incoming.Accepted != 7 || ps[0].Skipped != 6 || ps[0].TLS.CertSHA256 != "ab12" {
		t.Errorf("peers -json: exit %d, %v: %s", code, err, out)
	}
}

func TestPeersControl(t *testing.T) {
	sock := serve(t, newBackend())
	for _, tc := range []struct {
		args []string
		code int
		out  string // a part of stdout
		err  string // a part of stderr
	}{
		{[]string{"refeed", "site-b.test"}, 0, "3 refused reports offered again to site-b.test\n", ""},
		{[]string{"refeed", "-reason", "keyring", "site-b.test"}, 0, "3 reports refused for a keyring reason offered again", ""},
		{[]string{"refeed", "-reason", "duplicate", "site-b.test"}, 2, "", "use keyring, clock or all"},
		{[]string{"refeed", "nope.test"}, 4, "", `no peer "nope.test" is configured`},
		{[]string{"refeed"}, 2, "", "usage: dstctl peers refeed"},
		{[]string{"refeed", "-json", "site-b.test"}, 0, `"refed":3`, ""},
		{[]string{"flush", "site-b.test"}, 0, "feed to site-b.test flushed: connecting now, 2 deferred reports due", ""},
		{[]string{"flush", "-json", "site-b.test"}, 0, `{"peer":"site-b.test","due":2}`, ""},
		{[]string{"test", "site-b.test"}, 0, "site-b.test at 192.0.2.20:1119: ok, round trip in 3.2 ms", ""},
		{[]string{"test", "dead.test"}, 1, "connect  0.4 ms  FAILED: dial tcp 127.0.0.1:1: connect: connection refused", ""},
		{[]string{"test", "-json", "dead.test"}, 1, `"ok":false`, ""},
	} {
		code, out, errOut := dstctl(t, append([]string{"-admin", sock, "peers"}, tc.args...)...)
		if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errOut, tc.err) {
			t.Errorf("peers %v: exit %d\nstdout %s\nstderr %s\nwant exit %d, stdout with %q, stderr with %q", tc.args, code, out, errOut, tc.code, tc.out, tc.err)
		}
	}
}
