package check

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/config"
)

// load writes a configuration file (data_dir: a fresh directory) and loads it.
func load(t *testing.T, body string) (*config.Config, string) {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "dstd.toml")
	body = "site = \"site-a.example\"\ndata_dir = \"" + dir + "\"\n" + body
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return c, dir
}

// certPair writes a self-signed certificate and its key under dir.
func certPair(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "site-a.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"site-a.example"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := x509.MarshalPKCS8PrivateKey(priv)
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	write(t, cert, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	write(t, key, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})))
	return cert, key
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func only(t *testing.T, got []Finding, sev Severity, key, msg string) {
	t.Helper()
	for _, f := range got {
		if f.Severity == sev && f.Key == key && strings.Contains(f.Msg, msg) {
			return
		}
	}
	t.Errorf("findings %v lack %s: %s: ...%s...", got, sev, key, msg)
}

func TestClean(t *testing.T) {
	dir := t.TempDir()
	cert, key := certPair(t, dir)
	tok := filepath.Join(dir, "token")
	write(t, tok, strings.Repeat("a", 40)+"\n")
	write(t, filepath.Join(dir, "keyring"), "")
	c, ddir := load(t, `[dns]
ns = ["ns1.example.net"]
allow_transfer = ["192.0.2.1"]
[admin]
listen = "127.0.0.1:9100"
token_file = "`+tok+`"
[tls]
cert = "`+cert+`"
key = "`+key+`"
[[peer]]
name = "site-b.example"
addresses = ["192.0.2.9"]
client_cert = "`+cert+`"
feed = "site-b.example:563"
tls = "implicit"
ca = "`+cert+`"
`)
	write(t, filepath.Join(ddir, "dkim.key"), "x")
	c.DKIM.Keyring = filepath.Join(dir, "keyring")
	if got := Check(c); len(got) != 0 {
		t.Errorf("clean configuration: %v", got)
	}
	var out bytes.Buffer
	if code := Report(&out, nil); code != 0 || out.String() != "dstd check: 0 errors, 0 warnings\n" {
		t.Errorf("Report(nil) = %d %q", code, out.String())
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	cert, _ := certPair(t, dir)
	notPEM := filepath.Join(dir, "junk")
	write(t, notPEM, "not a certificate\n")
	loose := filepath.Join(dir, "token")
	write(t, loose, strings.Repeat("a", 40)+"\n")
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	c, ddir := load(t, `[admin]
listen = "127.0.0.1:9100"
token_file = "`+loose+`"
[tls]
cert = "`+cert+`"
key = "`+cert+`"
[[peer]]
name = "site-b.example"
client_cert = "`+notPEM+`"
ca = "`+filepath.Join(dir, "missing.pem")+`"
`)
	// A directory where a file must be is unreadable as one.
	for _, p := range []string{"dkim.key", "keyring", "allow"} {
		if err := os.Mkdir(filepath.Join(ddir, p), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	got := Check(c)
	only(t, got, Error, "tls.cert", cert)
	only(t, got, Error, "admin.token_file", "chmod 600")
	only(t, got, Error, "peer[site-b.example].client_cert", "no PEM certificate")
	only(t, got, Error, "peer[site-b.example].ca", "missing.pem")
	var out bytes.Buffer
	if code := Report(&out, got); code != 1 || !strings.Contains(out.String(), "error: tls.cert: ") {
		t.Errorf("Report = %d %q", code, out.String())
	}
}

func TestUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads every file")
	}
	c, ddir := load(t, "")
	for _, p := range []string{"dkim.key", "keyring", "allow"} {
		write(t, filepath.Join(ddir, p), "x")
		if err := os.Chmod(filepath.Join(ddir, p), 0); err != nil {
			t.Fatal(err)
		}
	}
	got := Check(c)
	only(t, got, Error, "dkim.private_key", "permission denied")
	only(t, got, Error, "dkim.keyring", "permission denied")
	only(t, got, Error, "policy.allow_file", "permission denied")
}

func TestNotesAndWarnings(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	write(t, tok, strings.Repeat("a", 40)+"\n")
	c, _ := load(t, `[nntp]
post_allow = ["192.0.2.0/24"]
[dns]
notify = ["192.0.2.53:53"]
[admin]
listen = "0.0.0.0:9100"
token_file = "`+tok+`"
[[peer]]
name = "site-b.example"
addresses = ["192.0.2.9"]
feed = "site-b.example:119"
`)
	got := Check(c)
	only(t, got, Note, "dkim.private_key", "creates it at its first start")
	only(t, got, Warning, "dkim.keyring", "peers are configured")
	only(t, got, Warning, "admin.listen", "not loopback")
	only(t, got, Warning, "dns.ns", "ns.dnsbl.invalid")
	only(t, got, Warning, "peer[site-b.example].tls", "in clear")
	only(t, got, Warning, "peer[site-b.example].addresses", "192.0.2.9")
	only(t, got, Warning, "nntp.post_allow", "192.0.2.0/24")
	for _, f := range got {
		if f.Severity == Error {
			t.Errorf("unexpected %v", f)
		}
	}
	var out bytes.Buffer
	if code := Report(&out, got); code != 0 || !strings.Contains(out.String(), "dstd check: 0 errors, 6 warnings\n") {
		t.Errorf("Report = %d %q", code, out.String())
	}
}

// TestPrintLoadsBack: check -n's output loads back to an equal configuration.
func TestPrintLoadsBack(t *testing.T) {
	c, dir := load(t, `[nntp]
post_allow = ["192.0.2.0/24"]
idle_timeout = "90s"
[dns]
ns = ["ns1.example.net"]
[[peer]]
name = "site-b.example"
addresses = ["192.0.2.9"]
feed = "site-b.example:563"
tls = "starttls"
`)
	var out, errOut bytes.Buffer
	p := filepath.Join(dir, "dstd.toml")
	if code := Main(p, true, &out, &errOut); code != 0 {
		t.Fatalf("Main -n = %d: %s", code, errOut.String())
	}
	p2 := filepath.Join(dir, "printed.toml")
	write(t, p2, out.String())
	c2, err := config.Load(p2)
	if err != nil {
		t.Fatalf("printed configuration does not load: %v\n%s", err, out.String())
	}
	// Printed, every key is set (config.IsSet): compare the values, as
	// printed again.
	var again bytes.Buffer
	if err := Print(&again, c2); err != nil {
		t.Fatal(err)
	}
	if again.String() != out.String() {
		t.Errorf("printed configuration loads differently:\n%s\n%s", out.String(), again.String())
	}
	if !reflect.DeepEqual(c.Peers, c2.Peers) || !reflect.DeepEqual(c.NNTP, c2.NNTP) {
		t.Errorf("the peers load differently: %+v, %+v", c.Peers, c2.Peers)
	}
}

func TestMainLoadError(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "dstd.toml")
	write(t, p, "[nntp]\nlistn = [\"127.0.0.1:1119\"]\n")
	var out, errOut bytes.Buffer
	if code := Main(p, false, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "did you mean nntp.listen?") || !strings.HasSuffix(errOut.String(), "dstd check: 1 error, 0 warnings\n") {
		t.Errorf("Main = %d %q", code, errOut.String())
	}
}

// A keyring the file names must exist (dstd refuses to start without it);
// one that exists must parse as dstd reads it.
func TestKeyring(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "keyring")
	c, _ := load(t, "[dkim]\nkeyring = \""+missing+"\"\n")
	got := Check(c)
	only(t, got, Error, "dkim.keyring", missing+" does not exist")
	var out bytes.Buffer
	if code := Report(&out, got); code != 1 {
		t.Errorf("Report = %d, want 1: %s", code, out.String())
	}
	write(t, missing, "site-b.example dst not-a-key\n")
	only(t, Check(c), Error, "dkim.keyring", "line 1")
	// Left to its default, a missing keyring is no error.
	c, _ = load(t, "")
	for _, f := range Check(c) {
		if f.Key == "dkim.keyring" {
			t.Errorf("default keyring missing, no peers: %v", f)
		}
	}
}
