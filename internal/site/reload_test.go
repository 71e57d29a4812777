package site

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/config"
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
