package site

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/config"
	"github.com/dst-traps/dst/internal/dkim"
)

// writeCert writes a new self-signed certificate and its key to certFile
// and keyFile, and returns the certificate (DER).
func writeCert(t *testing.T, certFile, keyFile string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "a.test"}, DNSNames: []string{"a.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return der
}

// served is the certificate the site's implicit-TLS listener presents.
func served(t *testing.T, r *running) []byte {
	t.Helper()
	c, err := tls.Dial("tcp", r.Addrs().NNTPS[0].String(), &tls.Config{InsecureSkipVerify: true}) // only the certificate is looked at
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Raw
}

// SIGHUP reloads the certificate: the connections that follow get the new
// one. A key pair that cannot be read keeps the running one.
func TestReloadCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first := writeCert(t, certFile, keyFile)
	cfg := testConfig(t, "a.test", func(c *config.Config) {
		c.TLS = config.TLS{Cert: certFile, Key: keyFile, Listen: config.HostPorts{config.MustParseHostPort("127.0.0.1:0")}}
		// Only peers are let in on the implicit-TLS listener.
		c.Peers = []config.Peer{{Name: "b.test", Addresses: config.Prefixes{{Prefix: netip.MustParsePrefix("127.0.0.1/32")}}}}
	})
	r := start(t, cfg)
	if got := served(t, r); !bytes.Equal(got, first) {
		t.Fatal("the site does not serve tls.cert")
	}
	second := writeCert(t, certFile, keyFile)
	if err := r.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if got := served(t, r); !bytes.Equal(got, second) {
		t.Fatal("after the reload, the site still serves the old certificate")
	}
	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(cfg); err == nil {
		t.Error("Reload with an unreadable key succeeded")
	}
	if got := served(t, r); !bytes.Equal(got, second) {
		t.Error("a failed reload changed the certificate")
	}
}

func TestChangedKeys(t *testing.T) {
	a := config.Default()
	b := *a
	b.NNTP.Listen = config.HostPorts{config.MustParseHostPort("127.0.0.1:119")}
	b.DNS.Update.Server = config.MustParseHostPort("127.0.0.1:53")
	b.History.Keep = config.Duration{Duration: time.Hour}
	b.Peers = []config.Peer{{Name: "b.test"}}
	// Values that are structs underneath are keys, not tables.
	b.Admin.Listen = config.MustParseHostPort("127.0.0.1:9100")
	b.DNS.A = config.Addr{Addr: netip.MustParseAddr("127.0.0.3")}
	b.Log.Level = config.LogLevel{Level: slog.LevelDebug}
	b.Policy.Allow = config.Prefixes{{Prefix: netip.MustParsePrefix("192.0.2.0/24")}}
	want := []string{"nntp.listen", "history.keep", "dns.update.server", "peer", "admin.listen", "dns.a", "log.level", "policy.allow"}
	got := changedKeys(a, &b)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("changedKeys = %v, want %v", got, want)
	}
	if got := changedKeys(a, a); len(got) != 0 {
		t.Errorf("changedKeys of a configuration and itself = %v", got)
	}
}

// changedValue sets the field of v (a Config) that key names to a value
// other than its default; it fails the test on a type it cannot change,
// so that a new key of a new type is not left out silently.
func changedValue(t *testing.T, v reflect.Value, key string) {
	t.Helper()
	for _, name := range strings.Split(key, ".") {
		found := false
		for i := range v.NumField() {
			if n, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("toml"), ","); n == name {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			t.Fatalf("%s: no field %s", key, name)
		}
	}
	if u, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok && v.Kind() == reflect.Struct {
		// A value that parses itself: a sample of each such type.
		samples := map[string]string{"Duration": "7h", "HostPort": "127.0.0.9:9", "Addr": "127.0.0.9", "LogLevel": "error"}
		sample, ok := samples[v.Type().Name()]
		if !ok {
			t.Fatalf("%s: no sample value for type %s", key, v.Type())
		}
		if err := u.UnmarshalText([]byte(sample)); err != nil {
			t.Fatal(err)
		}
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Int, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Float64:
		v.SetFloat(v.Float() + 0.5)
	case reflect.Slice:
		v.Set(reflect.Append(reflect.MakeSlice(v.Type(), 0, v.Len()+1), reflect.Zero(v.Type().Elem())))
	default:
		t.Fatalf("%s: cannot change a %s", key, v.Type())
	}
}

// Every key of the file is seen to change (changedKeys), and every one
// that SIGHUP does not apply is named for a restart: the listeners,
// data_dir, spool_dir, the groups, the trust settings of the policy...
func TestChangedKeysCoverEveryKey(t *testing.T) {
	tables := map[string]bool{}
	keys := config.Keys()
	for _, k := range keys {
		if i := strings.LastIndexByte(k, '.'); i > 0 {
			tables[k[:i]] = true
		}
	}
	restart := map[string]bool{}
	for _, k := range keys {
		if tables[k] || strings.HasPrefix(k, "peer.") {
			continue // a table; a [[peer]]'s keys change as "peer"
		}
		a := config.Default()
		b := *a
		changedValue(t, reflect.ValueOf(&b).Elem(), k)
		if got := changedKeys(a, &b); !slices.Equal(got, []string{k}) {
			t.Errorf("changing %s: changedKeys = %v", k, got)
		}
		if got := restartKeys(a, &b, true); len(got) > 0 {
			restart[k] = true
		}
	}
	for _, k := range []string{"nntp.listen", "nntp.socket", "tls.listen", "dns.listen", "admin.listen", "admin.socket",
		"data_dir", "spool_dir", "nntp.submit_group", "admin.group", "site", "dkim.selector", "dkim.private_key",
		"policy.threshold", "policy.new_origin", "log.level", "peer"} {
		if k != "peer" && !restart[k] {
			t.Errorf("a change of %s is not named for a restart", k)
		}
	}
	b := *config.Default()
	b.Peers = []config.Peer{{Name: "b.test"}}
	if got := restartKeys(config.Default(), &b, true); !slices.Equal(got, []string{"peer"}) {
		t.Errorf("a new [[peer]]: restartKeys = %v", got)
	}
	// The certificate is reloaded only when the site started with one.
	b = *config.Default()
	b.TLS.Cert, b.TLS.Key = "/c.pem", "/k.pem"
	if got := restartKeys(config.Default(), &b, false); !slices.Equal(got, []string{"tls.cert", "tls.key"}) {
		t.Errorf("a certificate where the site started without one: restartKeys = %v", got)
	}
	if got := restartKeys(config.Default(), &b, true); len(got) != 0 {
		t.Errorf("a new certificate where the site has one: restartKeys = %v", got)
	}
}

// SIGHUP names, in one warning, the changed keys that need a restart, by
// the names the file gives them, and says to restart; keys it applies are
// not named.
func TestReloadNamesRestartKeys(t *testing.T) {
	cfg := testConfig(t, "a.test", nil)
	r := start(t, cfg)
	next := *cfg
	next.NNTP.Listen = config.HostPorts{config.MustParseHostPort("127.0.0.1:1")}
	next.SpoolDir = filepath.Join(t.TempDir(), "spool")
	next.Listing.Expire = config.Duration{Duration: time.Hour}
	next.Policy.Allow = config.Prefixes{{Prefix: netip.MustParsePrefix("192.0.2.0/24")}}
	next.Policy.AllowDocumentation = true
	if err := r.Reload(&next); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(r.log.String(), "\n") {
		if strings.Contains(l, "restart dstd to apply") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "level=WARN") || !strings.HasSuffix(lines[0], " keys=spool_dir,nntp.listen,listing.expire") {
		t.Errorf("want one warning naming spool_dir, nntp.listen and listing.expire (not the policy's keys) and saying to restart; got %q\n%s", lines, r.log.String())
	}
	// Reloading the configuration the site runs with names nothing.
	before := strings.Count(r.log.String(), "restart dstd to apply")
	if err := r.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if strings.Count(r.log.String(), "restart dstd to apply") != before {
		t.Error("a reload with nothing changed asks for a restart")
	}
}

// keyringConfig is a site whose file names its keyring (dkim.keyring).
func keyringConfig(t *testing.T, keyring string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "dstd.toml")
	toml := fmt.Sprintf("site = \"a.test\"\ndata_dir = %q\n[nntp]\nlisten = [\"127.0.0.1:0\"]\n[dkim]\nkeyring = %q\n", filepath.Join(dir, "data"), keyring)
	if err := os.WriteFile(path, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func keyLine(t *testing.T, domain string) (string, ed25519.PublicKey) {
	t.Helper()
	pub, _, err := dkim.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return dkim.KeyringLine(domain, "dst", pub), pub
}

// A keyring file the configuration names and that does not exist stops
// the start, with an error naming the file and the key; one left to its
// default may be missing (a site without peers yet).
func TestMissingKeyringFails(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "keyring")
	cfg := keyringConfig(t, missing)
	s, err := New(cfg)
	if err == nil {
		s.Close()
		t.Fatal("New succeeded with the configured keyring missing")
	}
	if !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "dkim.keyring") {
		t.Errorf("New: %v; want the file and dkim.keyring named", err)
	}
	assertNothingLeft(t, cfg)
	start(t, testConfig(t, "a.test", nil)) // the default keyring, missing: it starts
}

// On SIGHUP a keyring file that is gone keeps the keyring in force, with
// an error; one that loses keys is applied, with a warning naming them.
func TestReloadKeyring(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyring")
	bLine, bPub := keyLine(t, "b.test")
	cLine, _ := keyLine(t, "c.test")
	if err := os.WriteFile(path, []byte(bLine+"\n"+cLine+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := keyringConfig(t, path)
	r := start(t, cfg)
	hasB := func() bool {
		for _, k := range r.snap.Load().kr.Keys() {
			if k.Domain == "b.test" && bytes.Equal(k.Public, bPub) {
				return true
			}
		}
		return false
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(cfg); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Reload with the keyring gone = %v; want an error naming %s", err, path)
	}
	if !hasB() {
		t.Error("a reload with the keyring gone dropped its keys")
	}
	if !strings.Contains(r.log.String(), "level=ERROR msg=\"reload failed, keeping the running configuration\"") {
		t.Errorf("the failed reload is not logged as an error:\n%s", r.log.String())
	}

	// The same, where the keyring was left to its default path.
	dcfg := testConfig(t, "d.test", nil)
	if err := os.MkdirAll(dcfg.DataDir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dcfg.DKIM.Keyring, []byte(bLine+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := start(t, dcfg)
	if err := os.Remove(dcfg.DKIM.Keyring); err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(dcfg); err == nil {
		t.Error("Reload succeeded with the keyring the site read gone")
	}
	if d.snap.Load().kr.Len() != 2 {
		t.Errorf("the keyring has %d keys after a failed reload, want 2", d.snap.Load().kr.Len())
	}

	if err := os.WriteFile(path, []byte(cLine+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if hasB() {
		t.Error("the key removed from the keyring is still in force")
	}
	var warn string
	for _, l := range strings.Split(r.log.String(), "\n") {
		if strings.Contains(l, "removed keys from the keyring") {
			warn = l
		}
	}
	if !strings.Contains(warn, "level=WARN") || !strings.Contains(warn, "lost=b.test/dst") || strings.Contains(warn, "c.test") || strings.Contains(warn, "a.test") {
		t.Errorf("want a warning naming the lost key b.test/dst alone; got %q", warn)
	}
}
