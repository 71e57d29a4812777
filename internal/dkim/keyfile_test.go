package dkim

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseKeyring(t *testing.T) {
	pub := testKey().Public().(ed25519.PublicKey)
	b64 := base64.StdEncoding.EncodeToString(pub)
	other := base64.StdEncoding.EncodeToString(otherKey().Public().(ed25519.PublicKey))
	file := "# DST peers\n\n" +
		"site-a.example dst " + b64 + "   # raw key\n" +
		"Site-B.Example. sel2 v=DKIM1; k=ed25519; p=" + other + "\n" +
		`site-c.example dst "v=DKIM1; k=ed25519; " "p=` + other + `"` + "\n"
	kr, err := ParseKeyring(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if kr.Len() != 3 {
		t.Fatalf("Len = %d, want 3", kr.Len())
	}
	if got, ok, _ := kr.lookup("SITE-A.example", "DST"); !ok || !got.Equal(pub) {
		t.Error("site-a key not found case-insensitively")
	}
	if _, ok, _ := kr.lookup("site-b.example", "sel2"); !ok {
		t.Error("site-b key (trailing dot, capitals) not found")
	}
	if _, ok, _ := kr.lookup("site-c.example", "dst"); !ok {
		t.Error("site-c key (quoted TXT strings) not found")
	}

	// What KeyringLine and TXTRecord print must be accepted back.
	line := KeyringLine(testDomain, testSelector, pub)
	if line != "site-a.example dst "+b64 {
		t.Errorf("KeyringLine = %q", line)
	}
	txt := TXTRecord(testDomain, testSelector, pub)
	if want := `dst._domainkey.site-a.example. IN TXT "v=DKIM1; k=ed25519; p=` + b64 + `"`; txt != want {
		t.Errorf("TXTRecord = %q, want %q", txt, want)
	}
	value := txt[strings.Index(txt, `"`):]
	for _, l := range []string{line, "site-a.example dst " + value} {
		if kr, err := ParseKeyring(strings.NewReader(l)); err != nil || kr.Len() != 1 {
			t.Errorf("ParseKeyring(%q) = %v", l, err)
		}
	}
}

func TestParseKeyringErrors(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString(testKey().Public().(ed25519.PublicKey))
	good := "site-a.example dst " + b64 + "\n"
	for _, tc := range []struct{ line, want string }{
		{"site-b.example dst", "want \"domain selector key\""},
		{"site-b.example dst !!!notbase64", "base64"},
		{"site-b.example dst " + b64[:20], "want the 32 bytes"},
		{"site-b.example dst v=DKIM1; p=" + b64, "rsa"},
		{"site-b.example dst v=DKIM1; k=rsa; p=" + b64, "Ed25519"},
		{"site-b.example dst v=DKIM1; k=ed25519; p=", "revoked"},
		{"site-b.example dst v=DKIM2; k=ed25519; p=" + b64, "DKIM1"},
		{"site-b.example dst k=ed25519; h=sha1; p=" + b64, "sha256"},
		{"site-b.example dst k=ed25519", "no p="},
		{"site-b.example dst k=ed25519; k=ed25519; p=" + b64, "twice"},
		{"site b.example dst x " + b64, "want \"domain selector key\""},
		{"site!b.example dst " + b64, "not allowed"},
		{"dst._domainkey.site-b.example. IN TXT \"v=DKIM1; k=ed25519; p=" + b64 + "\"", "zone line"},
		{"SITE-A.example DST " + b64, "already has a key on line 2"},
	} {
		_, err := ParseKeyring(strings.NewReader("# peers\n" + good + "\n" + tc.line + "\n"))
		if err == nil {
			t.Errorf("%q: no error", tc.line)
			continue
		}
		if !strings.Contains(err.Error(), "line 4") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %q should name line 4 and say %q", tc.line, err, tc.want)
		}
	}
}

func TestLoadKeyring(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadKeyring(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
	path := filepath.Join(dir, "keyring")
	os.WriteFile(path, []byte("site-a.example dst nonsense\n"), 0o644)
	if _, err := LoadKeyring(path); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("bad file: %v", err)
	}
	os.WriteFile(path, []byte(KeyringLine("site-a.example", "dst", testKey().Public().(ed25519.PublicKey))+"\n"), 0o644)
	if kr, err := LoadKeyring(path); err != nil || kr.Len() != 1 {
		t.Errorf("good file: %v", err)
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dkim.key")
	pub, priv, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := WritePrivateKey(path, priv); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %04o, want 0600", st.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary file left behind: %v", entries)
	}
	got, err := LoadPrivateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(priv) || !got.Public().(ed25519.PublicKey).Equal(pub) {
		t.Fatal("loaded key differs from the written one")
	}
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), "-----BEGIN PRIVATE KEY-----") {
		t.Errorf("key file is not PEM PRIVATE KEY:\n%s", data)
	}

	_, other, _ := GenerateKey()
	if err := WritePrivateKey(path, other); !errors.Is(err, fs.ErrExist) {
		t.Errorf("overwrite: %v, want fs.ErrExist", err)
	}
	if again, _ := LoadPrivateKey(path); !again.Equal(priv) {
		t.Error("the existing key was replaced")
	}

	if _, err := LoadPrivateKey(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v, want fs.ErrNotExist", err)
	}

	for _, mode := range []os.FileMode{0o640, 0o604, 0o660} {
		os.Chmod(path, mode)
		_, err := LoadPrivateKey(path)
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: %v, want a refusal saying chmod 600", mode, err)
		}
	}
	os.Chmod(path, 0o400)
	if _, err := LoadPrivateKey(path); err != nil {
		t.Errorf("mode 0400: %v", err)
	}
}

func TestLoadPrivateKeyWrongContent(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	for _, tc := range []struct{ name, want string }{
		{write("text", []byte("not a key\n")), "not a PEM file"},
		{write("cert", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}})), `"CERTIFICATE"`},
		{write("ecdsa", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})), "want an Ed25519 key"},
		{write("garbage", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}})), "DKIM private key"},
	} {
		if _, err := LoadPrivateKey(tc.name); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := LoadPrivateKey(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
}

// TestKeyringAttributes: operator= and probation after the key; old lines
// stay valid; a site without operator is its own.
func TestKeyringAttributes(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString(testKey().Public().(ed25519.PublicKey))
	other := base64.StdEncoding.EncodeToString(otherKey().Public().(ed25519.PublicKey))
	file := "site-a.example dst " + b64 + " operator=Acme\n" +
		"site-a.example dst2 " + other + "\n" + // a rotation line need not repeat it
		"site-b.example dst v=DKIM1; k=ed25519; p=" + other + " operator=acme probation # new\n" +
		"site-c.example dst " + b64 + " probation\n" +
		"site-d.example dst " + b64 + "\n"
	kr, err := ParseKeyring(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		domain, op string
		probation  bool
	}{
		{"site-a.example", "acme", false}, {"SITE-B.example", "acme", true},
		{"site-c.example", "site-c.example", true}, {"site-d.example", "site-d.example", false},
		{"dns-only.example", "dns-only.example", false},
	} {
		if got := kr.Operator(tc.domain); got != tc.op {
			t.Errorf("Operator(%s) = %q, want %q", tc.domain, got, tc.op)
		}
		if got := kr.Probation(tc.domain); got != tc.probation {
			t.Errorf("Probation(%s) = %v, want %v", tc.domain, got, tc.probation)
		}
	}
	if !kr.InFile("site-d.example") || kr.InFile("dns-only.example") {
		t.Error("InFile does not tell keyring-file origins from others")
	}
	var cp Keyring
	cp.Replace(kr)
	if cp.Operator("site-b.example") != "acme" || !cp.Probation("site-c.example") {
		t.Error("Replace lost the attributes")
	}
	for _, k := range kr.Keys() {
		if k.Domain == "site-b.example" && (k.Operator != "acme" || !k.Probation) {
			t.Errorf("Keys: %+v", k)
		}
	}
	for _, tc := range []struct{ line, want string }{
		{"site-x.example dst " + b64 + " operator=", "operator= has no name"},
		{"site-x.example dst " + b64 + " operator=a!b", "operator"},
		{"site-a.example dst3 " + b64 + " operator=other", "one site has one operator"},
		{"site-x.example dst " + b64 + " trusted", "want \"domain selector key\""},
	} {
		_, err := ParseKeyring(strings.NewReader(file + tc.line + "\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "line 6") {
			t.Errorf("%q: error %v, want line 6 and %q", tc.line, err, tc.want)
		}
	}
}
