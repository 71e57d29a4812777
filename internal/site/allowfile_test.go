package site

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dst-traps/dst/internal/config"
)

// The allow file takes what policy.allow takes, read by the same rule: a
// CIDR (masked) or a bare address (IPv4-mapped ones as IPv4).
func TestAllowFileAsPolicyAllow(t *testing.T) {
	entries := []string{"192.0.2.7", "198.51.100.77/24", "::ffff:192.0.2.8", "2001:db8::1", "2001:db8:1::5/48"}
	path := filepath.Join(t.TempDir(), "allow")
	text := "# delisted by hand\n\n" + strings.Join(entries, "  # a comment\n") + "\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := readAllowFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var allow config.Prefixes
	for _, e := range entries {
		var p config.Prefix
		if err := p.UnmarshalText([]byte(e)); err != nil {
			t.Fatal(err)
		}
		allow = append(allow, p)
	}
	if want := allow.Netip(); !reflect.DeepEqual(got, want) {
		t.Errorf("allow file read as %v, policy.allow as %v", got, want)
	}

	if err := os.WriteFile(path, []byte("192.0.2.7\n# next is bad\n192.0.2.0/33\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readAllowFile(path); err == nil || !strings.Contains(err.Error(), "allow file "+path+" line 3: \"192.0.2.0/33\" is neither an address nor a CIDR") {
		t.Errorf("a bad line: error %v, want it to name the file, line 3 and the value", err)
	}
	if got, err := readAllowFile(filepath.Join(t.TempDir(), "none")); err != nil || len(got) != 0 {
		t.Errorf("a missing allow file: %v, %v; want an empty list", got, err)
	}
}
