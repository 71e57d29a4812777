package config

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "dstd.toml")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNoFile(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.NNTP.Listen[0].String() != "127.0.0.1:1119" || c.DKIM.PrivateKey != filepath.Join(c.DataDir, "dkim.key") || c.Listing.Expire.Duration != 24*time.Hour {
		t.Errorf("defaults: %+v", c)
	}
}

func TestLoad(t *testing.T) {
	c, err := Load(write(t, `site = "site-a.example"
data_dir = "/tmp/x"
[history]
keep = "45d"
[[peer]]
name = "site-b.example"
addresses = ["192.0.2.20", "2001:db8::/64"]
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Site != "site-a.example" || c.History.Keep.Duration != 45*24*time.Hour || c.SpoolDir != "/tmp/x/spool" || len(c.Peers) != 1 {
		t.Errorf("got %+v", c)
	}
}

func TestBadConfigs(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{`sight = "typo.example"`, "unknown key sight (did you mean site?)"},
		{`[listing]
expire = "forever"`, "want e.g. 90s, 36h or 30d"},
		{`site = "bad site"`, `site "bad site"`},
		{`[nntp]
post_allow = ["10.0.0.0/33"]`, "nntp.post_allow"},
		{`[listing]
expire = "20d"
max_expire = "10d"`, "listing.max_expire"},
		{`[history]
keep = "1h"`, "history.keep"},
		{`[policy]
threshold = 0`, "policy.threshold"},
		{`[policy]
list_classes = ["spam", "backscater"]`, `class "backscater" is not one of "spam", "backscatter", "auto-reply"`},
		{`[policy]
list_classes = ["authenticated"]`, "never reports mail from clients that authenticated"},
		{`[policy]
list_classes = []`, "policy.list_classes is empty"},
		{`[[peer]]
name = "a"
[[peer]]
name = "a"`, `peer "a" is configured twice`},
		{`[log]
level = "loud"`, "log.level"},
		// The rules that span keys, and the ranges, are Validate's.
		{"[dns]\na = \"192.0.2.1\"", `dns.a "192.0.2.1": want an address in 127.0.0.0/8`},
		{"[dns]\na = \"127.0.0.3\"\ngraded = true", "dns.graded answers 127.0.0.2 to 127.0.0.9"},
		{"[tls]\ncert = \"/c.pem\"", "tls.cert and tls.key go together"},
		{"[tls]\nlisten = [\"127.0.0.1:563\"]", "tls.listen needs tls.cert and tls.key"},
		{"[dns.update]\nserver = \"127.0.0.1:53\"", "dns.update needs key_name and secret"},
		{"[[peer]]\nname = \"b.example\"\nfeed = \"192.0.2.1:1119\"\nusername = \"u\"", `peer "b.example": username/password are only sent over TLS`},
		{"[[peer]]\nname = \"b.example\"\nauth_user = \"u\"\nauth_password = \"p\"", `peer "b.example" must authenticate over TLS, but [tls] has no cert`},
		{"[[peer]]\nname = \"b.example\"\nfeed = \"192.0.2.1:1119\"\ncheck_size = -1", `peer "b.example": check_size is -1: give 0 (CHECK every report first) or a size in bytes`},
	} {
		_, err := Load(write(t, tc.file))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to mention %q", tc.file, err, tc.want)
		}
	}
}

// TestAdminListen: the admin TCP listener serves delist and cancel, so
// off loopback it needs a token.
func TestAdminListen(t *testing.T) {
	for _, tc := range []struct {
		listen, tokenFile string
		want              string // "" when valid, else a piece of the error
	}{
		{"127.0.0.1:9100", "", ""},
		{"127.0.0.53:9100", "", ""},
		{"[::1]:9100", "", ""},
		{"localhost:9100", "", ""},
		{"127.0.0.1:9100", "/etc/dst/admin.token", ""},
		{"0.0.0.0:9100", "/etc/dst/admin.token", ""},
		{"0.0.0.0:9100", "", "admin.listen 0.0.0.0:9100 is not loopback: set admin.token_file, or listen on 127.0.0.1"},
		{":9100", "", "is not loopback"},
		{"[::]:9100", "", "is not loopback"},
		{"192.0.2.1:9100", "", "is not loopback"},
		{"[::ffff:192.0.2.1]:9100", "", "is not loopback"},
		{"admin.example.net:9100", "", "is not loopback"},
		{"", "/etc/dst/admin.token", "admin.token_file is set but admin.listen is not"},
	} {
		_, err := Load(write(t, fmt.Sprintf("[admin]\nlisten = %q\ntoken_file = %q\n", tc.listen, tc.tokenFile)))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("listen %q token_file %q: %v, want valid", tc.listen, tc.tokenFile, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("listen %q token_file %q: %v, want an error with %q", tc.listen, tc.tokenFile, err, tc.want)
		}
	}
}

// TestSubmissionDefaults: nobody may POST over TCP unless listed, and the
// submission socket is in the spool directory, where dstc looks for it.
func TestSubmissionDefaults(t *testing.T) {
	c, err := Load(write(t, `data_dir = "/srv/dst"`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.NNTP.PostAllow) != 0 {
		t.Errorf("nntp.post_allow defaults to %v, want empty", c.NNTP.PostAllow)
	}
	if c.NNTP.Socket != "/srv/dst/spool/nntp.sock" || c.Admin.Socket != "/srv/dst/admin.sock" {
		t.Errorf("sockets %q and %q, want /srv/dst/spool/nntp.sock and /srv/dst/admin.sock", c.NNTP.Socket, c.Admin.Socket)
	}
	if c.NNTP.SubmitGroup != "" || c.Admin.Group != "" {
		t.Errorf("groups default to %q and %q, want none", c.NNTP.SubmitGroup, c.Admin.Group)
	}
	c, err = Load(write(t, `data_dir = "/var/lib/dst"`))
	if err != nil {
		t.Fatal(err)
	}
	if c.SpoolDir != "/var/spool/dst" || c.NNTP.Socket != "/var/spool/dst/nntp.sock" {
		t.Errorf("system layout: spool %q, socket %q", c.SpoolDir, c.NNTP.Socket)
	}
	if got, want := SubmitSocket(DefaultSpoolDir()), filepath.Join(spoolDirFor(DefaultDataDir()), "nntp.sock"); got != want {
		t.Errorf("dstc's default socket %q, dstd's %q", got, want)
	}
}

func TestGroups(t *testing.T) {
	// Group 0 exists on every Unix host; its name varies little.
	root, err := user.LookupGroupId("0")
	if err != nil {
		t.Skip("no group 0:", err)
	}
	c, err := Load(write(t, "[nntp]\nsubmit_group = \""+root.Name+"\"\n[admin]\ngroup = \""+root.Name+"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.NNTP.SubmitGroup != root.Name || c.Admin.Group != root.Name {
		t.Errorf("groups %q and %q, want %q", c.NNTP.SubmitGroup, c.Admin.Group, root.Name)
	}
	for _, tc := range []struct{ file, want string }{
		{"[nntp]\nsubmit_group = \"dst-no-such-group\"", `nntp.submit_group: no group "dst-no-such-group" on this host: create it (groupadd --system dst-no-such-group) or fix the key`},
		{"[admin]\ngroup = \"dst-no-such-admins\"", `admin.group: no group "dst-no-such-admins" on this host: create it (groupadd --system dst-no-such-admins)`},
	} {
		_, err := Load(write(t, tc.file))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to mention %q", tc.file, err, tc.want)
		}
	}
}

// policy.list_classes: spam by default, and the known classes as the
// administrator lists them.
func TestListClasses(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(c.Policy.ListClasses) != "[spam]" {
		t.Errorf("default policy.list_classes = %v, want [spam]", c.Policy.ListClasses)
	}
	c, err = Load(write(t, "[policy]\nlist_classes = [\"spam\", \"backscatter\", \"auto-reply\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(c.Policy.ListClasses) != "[spam backscatter auto-reply]" {
		t.Errorf("policy.list_classes = %v", c.Policy.ListClasses)
	}
}

// IsSet tells a key the file set from one left to its default, even when
// both give the same value: a keyring the administrator named must exist.
func TestIsSet(t *testing.T) {
	c, err := Load(write(t, "site = \"site-a.example\"\ndata_dir = \"/tmp/x\"\n[dkim]\nkeyring = \"/tmp/x/keyring\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.IsSet("dkim.keyring") || !c.IsSet("site") {
		t.Error("IsSet is false for keys the file sets")
	}
	if c.IsSet("dkim.private_key") || c.IsSet("policy.allow_file") {
		t.Error("IsSet is true for keys left to their defaults")
	}
	d, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if d.IsSet("dkim.keyring") {
		t.Error("IsSet is true without a file")
	}
}
