package feeds_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/dsttest"
)

// TestTLSFeeds links A -> B with STARTTLS, B requiring A's client
// certificate, and B -> A with implicit TLS and AUTHINFO.
func TestTLSFeeds(t *testing.T) {
	dir := t.TempDir()
	aCert, aKey, _ := dsttest.SelfSigned(t, dir, "site-a.test")
	bCert, bKey, _ := dsttest.SelfSigned(t, dir, "site-b.test")
	a := dsttest.NewDstd(t, "site-a.test", "")
	b := dsttest.NewDstd(t, "site-b.test", "")
	aTLS := fmt.Sprintf("127.0.0.1:%d", dsttest.FreePort(t))
	keyring := a.KeyringLine() + "\n" + b.KeyringLine() + "\n"
	a.Reconfigure(fmt.Sprintf(`[policy]
allow_documentation = true
[tls]
cert = %q
key = %q
listen = [%q]
[[peer]]
name = "site-b.test"
addresses = ["127.0.0.1"]
auth_user = "site-b"
auth_password = "s3cret pass"
feed = %q
tls = "starttls"
ca = %q
server_name = "site-b.test"
`, aCert, aKey, aTLS, b.NNTP, bCert))
	b.Reconfigure(fmt.Sprintf(`[policy]
allow_documentation = true
[tls]
cert = %q
key = %q
[[peer]]
name = "site-a.test"
addresses = ["127.0.0.1"]
client_cert = %q
feed = %q
tls = "implicit"
ca = %q
username = "site-b"
password = "s3cret pass"
`, bCert, bKey, aCert, aTLS, aCert))
	for _, s := range []*dsttest.Dstd{a, b} {
		os.WriteFile(filepath.Join(s.Dir, "keyring"), []byte(keyring), 0o644)
	}
	a.Start()
	b.Start()
	nw := &network{t: t, sites: []*dsttest.Dstd{a, b}}
	nw.inject(0, "203.0.113.70")
	nw.inject(1, "203.0.113.71")
	nw.waitEverywhere("203.0.113.70")
	nw.waitEverywhere("203.0.113.71")
	for _, s := range []*dsttest.Dstd{a, b} {
		out, _ := s.Ctl("peers")
		if !strings.Contains(out, "connected (streaming)") {
			t.Errorf("%s peers:\n%s", s.Site, out)
		}
	}
}

// TestTLSPeerWithoutCredentialsCannotFeed: B requires A's certificate; A
// feeds in clear, so nothing crosses, and A's dstctl says why.
func TestTLSPeerWithoutCredentialsCannotFeed(t *testing.T) {
	dir := t.TempDir()
	aCert, _, _ := dsttest.SelfSigned(t, dir, "site-a.test")
	bCert, bKey, _ := dsttest.SelfSigned(t, dir, "site-b.test")
	a := dsttest.NewDstd(t, "site-a.test", "")
	b := dsttest.NewDstd(t, "site-b.test", "")
	keyring := a.KeyringLine() + "\n" + b.KeyringLine() + "\n"
	a.Reconfigure(fmt.Sprintf("[policy]\nallow_documentation = true\n[[peer]]\nname = \"site-b.test\"\nfeed = %q\n", b.NNTP))
	b.Reconfigure(fmt.Sprintf("[policy]\nallow_documentation = true\n[tls]\ncert = %q\nkey = %q\n[[peer]]\nname = \"site-a.test\"\naddresses = [\"127.0.0.1\"]\nclient_cert = %q\n", bCert, bKey, aCert))
	for _, s := range []*dsttest.Dstd{a, b} {
		os.WriteFile(filepath.Join(s.Dir, "keyring"), []byte(keyring), 0o644)
	}
	a.Start()
	b.Start()
	nw := &network{t: t, sites: []*dsttest.Dstd{a, b}}
	nw.inject(0, "203.0.113.72")
	dsttest.WaitFor(t, 20*time.Second, "the feed to report its refusal", func() bool {
		out, _ := a.Ctl("peers")
		return strings.Contains(out, "480") || strings.Contains(strings.ToLower(out), "authentication")
	})
	if listed(b, "203.0.113.72") {
		t.Error("a peer that did not authenticate fed B")
	}
}
