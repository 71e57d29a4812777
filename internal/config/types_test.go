package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/dst-traps/dst/internal/logging"
)

// TestTypedKeys: every key whose value is parsed takes a good value as
// the daemon will use it, and refuses a bad one with an error that names
// the file's line, the key and what is wanted.
func TestTypedKeys(t *testing.T) {
	for _, tc := range []struct {
		key, table, field string
		good              string // a TOML value
		check             func(c *Config) any
		want              any
		bad               string // a TOML value
		wantErr           string // what the error says is wanted
		extra             string // more of the table: what the good value needs with it
	}{
		{key: "log.level", table: "[log]", field: "level", good: `"debug"`,
			check: func(c *Config) any { return c.Log.Level.Level }, want: slog.LevelDebug,
			bad: `"loud"`, wantErr: `"loud" is not a log level: want debug, info, warn or error`},
		{key: "log.level", table: "[log]", field: "level", good: `"error"`,
			check: func(c *Config) any { return c.Log.Level.Level }, want: slog.LevelError,
			bad: `"INFO+2"`, wantErr: `want debug, info, warn or error`},
		{key: "log.destination", table: "[log]", field: "destination", good: `"syslog"`,
			check: func(c *Config) any { return c.Log.Destination }, want: logging.Syslog,
			bad: `"file"`, wantErr: `unknown log destination "file" (want auto, stderr or syslog)`},
		{key: "log.format", table: "[log]", field: "format", good: `"json"`,
			check: func(c *Config) any { return c.Log.Format }, want: logging.JSON,
			bad: `"logfmt"`, wantErr: `unknown log format "logfmt" (want text or json)`},
		{key: "nntp.listen", table: "[nntp]", field: "listen", good: `["[::1]:1119", ":119"]`,
			check: func(c *Config) any { return c.NNTP.Listen.Strings() }, want: []string{"[::1]:1119", ":119"},
			bad: `["1119"]`, wantErr: `"1119" is not host:port: want e.g. 127.0.0.1:1119 or [::1]:1119`},
		{key: "nntp.listen", table: "[nntp]", field: "listen", good: `[]`,
			check: func(c *Config) any { return len(c.NNTP.Listen) }, want: 0,
			bad: `[""]`, wantErr: `an entry is empty: want host:port, e.g. "127.0.0.1:1119"`},
		{key: "nntp.listen", table: "[nntp]", field: "listen", good: `["localhost:nntp"]`,
			check: func(c *Config) any { return c.NNTP.Listen[0] }, want: HostPort{Host: "localhost", Port: "nntp"},
			bad: `"127.0.0.1:1119"`, wantErr: `want a list of host:port, e.g. ["127.0.0.1:1119"]`},
		{key: "nntp.listen", table: "[nntp]", field: "listen", good: `["127.0.0.1:1119"]`,
			check: func(c *Config) any { return c.NNTP.Listen[0].Port }, want: "1119",
			bad: `[1119]`, wantErr: `1119 is not a quoted host:port`},
		{key: "nntp.post_allow", table: "[nntp]", field: "post_allow", good: `["192.0.2.7", "198.51.100.9/24", "::ffff:192.0.2.8"]`,
			check: func(c *Config) any { return c.NNTP.PostAllow.Netip() },
			want:  []netip.Prefix{netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("192.0.2.8/32")},
			bad:   `["10.0.0.0/33"]`, wantErr: `"10.0.0.0/33" is neither an address nor a CIDR: want e.g. 192.0.2.0/24, 2001:db8::/32 or 192.0.2.1`},
		{key: "policy.own_networks", table: "[policy]", field: "own_networks", good: `["2001:db8::/32"]`,
			check: func(c *Config) any { return c.Policy.OwnNetworks.Netip() }, want: []netip.Prefix{netip.MustParsePrefix("2001:db8::/32")},
			bad: `["mx.example.net"]`, wantErr: `"mx.example.net" is neither an address nor a CIDR`},
		{key: "policy.allow", table: "[policy]", field: "allow", good: `[" 192.0.2.1 "]`,
			check: func(c *Config) any { return c.Policy.Allow.Netip() }, want: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")},
			bad: `["192.0.2.1-192.0.2.9"]`, wantErr: `is neither an address nor a CIDR`},
		{key: "dkim.dns_key_server", table: "[dkim]", field: "dns_key_server", good: `"127.0.0.53:53"`,
			check: func(c *Config) any { return c.DKIM.DNSKeyServer.String() }, want: "127.0.0.53:53",
			bad: `"127.0.0.53"`, wantErr: `"127.0.0.53" is not host:port`},
		{key: "dkim.dns_key_server", table: "[dkim]", field: "dns_key_server", good: `""`,
			check: func(c *Config) any { return c.DKIM.DNSKeyServer.IsZero() }, want: true,
			bad: `"::1:53"`, wantErr: `"::1:53" is not host:port`},
		{key: "admin.listen", table: "[admin]", field: "listen", good: `"[::1]:9100"`,
			check: func(c *Config) any { return c.Admin.Listen }, want: HostPort{Host: "::1", Port: "9100"},
			bad: `"9100"`, wantErr: `"9100" is not host:port`},
		{key: "tls.listen", table: "[tls]", field: "listen", good: `["127.0.0.1:563"]`, extra: "cert = \"/c.pem\"\nkey = \"/k.pem\"\n",
			check: func(c *Config) any { return c.TLS.Listen.Strings() }, want: []string{"127.0.0.1:563"},
			bad: `["127.0.0.1:"]`, wantErr: `"127.0.0.1:" is not host:port`},
		{key: "dns.listen", table: "[dns]", field: "listen", good: `["127.0.0.1:53", "[::1]:53"]`,
			check: func(c *Config) any { return c.DNS.Listen.Strings() }, want: []string{"127.0.0.1:53", "[::1]:53"},
			bad: `["127.0.0.1"]`, wantErr: `"127.0.0.1" is not host:port`},
		{key: "dns.a", table: "[dns]", field: "a", good: `"127.0.0.10"`,
			check: func(c *Config) any { return c.DNS.A.Addr }, want: netip.MustParseAddr("127.0.0.10"),
			bad: `"127.0.0.2/32"`, wantErr: `"127.0.0.2/32" is not an IP address: want e.g. 127.0.0.2`},
		{key: "dns.allow_transfer", table: "[dns]", field: "allow_transfer", good: `["127.0.0.0/8"]`,
			check: func(c *Config) any { return c.DNS.AllowTransfer.Netip() }, want: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
			bad: `["secondary"]`, wantErr: `"secondary" is neither an address nor a CIDR`},
		{key: "dns.notify", table: "[dns]", field: "notify", good: `["127.0.0.1:5300"]`,
			check: func(c *Config) any { return c.DNS.Notify.Strings() }, want: []string{"127.0.0.1:5300"},
			bad: `["127.0.0.1"]`, wantErr: `"127.0.0.1" is not host:port`},
		{key: "dns.update.server", table: "[dns.update]", field: "server", good: `"127.0.0.1:53"`, extra: "key_name = \"k\"\nsecret = \"c2VjcmV0\"\n",
			check: func(c *Config) any { return c.DNS.Update.Server.String() }, want: "127.0.0.1:53",
			bad: `"ns1.example.net"`, wantErr: `"ns1.example.net" is not host:port`},
		{key: "listing.expire", table: "[listing]", field: "expire", good: `"2d"`,
			check: func(c *Config) any { return c.Listing.Expire.Duration }, want: 48 * time.Hour,
			bad: `"forever"`, wantErr: `duration "forever": want e.g. 90s, 36h or 30d`},
		{key: "peer.addresses", table: "[[peer]]\nname = \"b.example\"", field: "addresses", good: `["192.0.2.20", "2001:db8::/64"]`,
			check: func(c *Config) any { return c.Peers[0].Addresses.Netip() },
			want:  []netip.Prefix{netip.MustParsePrefix("192.0.2.20/32"), netip.MustParsePrefix("2001:db8::/64")},
			bad:   `["dst.b.example"]`, wantErr: `"dst.b.example" is neither an address nor a CIDR`},
		{key: "peer.feed", table: "[[peer]]\nname = \"b.example\"", field: "feed", good: `"dst.b.example:1119"`,
			check: func(c *Config) any { return c.Peers[0].Feed }, want: HostPort{Host: "dst.b.example", Port: "1119"},
			bad: `"dst.b.example"`, wantErr: `"dst.b.example" is not host:port`},
		{key: "peer.tls", table: "[[peer]]\nname = \"b.example\"", field: "tls", good: `"implicit"`,
			check: func(c *Config) any { return c.Peers[0].TLS }, want: PeerTLSImplicit,
			bad: `"yes"`, wantErr: `"yes" is not a TLS mode: want "starttls", "implicit" or "" (no TLS)`},
	} {
		// The key is on line 3: a comment and the table come first.
		file := func(v string) string {
			return fmt.Sprintf("# %s\n%s\n%s = %s\n%s", tc.key, tc.table, tc.field, v, tc.extra)
		}
		if strings.Contains(tc.table, "\n") {
			file = func(v string) string {
				return fmt.Sprintf("%s\n%s = %s\n%s", tc.table, tc.field, v, tc.extra)
			}
		}
		c, err := Load(write(t, file(tc.good)))
		if err != nil {
			t.Errorf("%s = %s: %v", tc.key, tc.good, err)
		} else if got := tc.check(c); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s = %s: got %v, want %v", tc.key, tc.good, got, tc.want)
		}
		_, err = Load(write(t, file(tc.bad)))
		wantErr := regexp.MustCompile(`^config \S+ line 3: ` + regexp.QuoteMeta(tc.key+": ") + `.*` + regexp.QuoteMeta(tc.wantErr))
		if err == nil || !wantErr.MatchString(err.Error()) {
			t.Errorf("%s = %s: error %v, want one matching %s", tc.key, tc.bad, err, wantErr)
		}
	}
}

// TestPrintedBack: a configuration printed as TOML (MarshalText) loads as
// the same configuration, every typed value included.
func TestPrintedBack(t *testing.T) {
	c, err := Load(write(t, `site = "site-a.example"
data_dir = "/srv/dst"
[log]
level = "warn"
destination = "stderr"
[nntp]
listen = ["127.0.0.1:1119", "[::1]:1119", ":nntp"]
post_allow = ["192.0.2.7", "198.51.100.0/24", "2001:db8::/48"]
[dkim]
dns_key_server = "[::1]:53"
[policy]
own_networks = ["203.0.113.0/24"]
allow = ["::ffff:192.0.2.9"]
window = "36h"
[admin]
listen = "127.0.0.1:9100"
[tls]
cert = "/etc/dst/cert.pem"
key = "/etc/dst/key.pem"
listen = ["127.0.0.1:563"]
[dns]
listen = ["127.0.0.1:53"]
a = "127.0.0.3"
allow_transfer = ["127.0.0.0/8"]
notify = ["127.0.0.1:5300"]
[dns.update]
server = "127.0.0.1:53"
key_name = "k"
secret = "c2VjcmV0"
[[peer]]
name = "site-b.example"
addresses = ["192.0.2.20", "2001:db8::/64"]
feed = "dst.site-b.example:563"
tls = "implicit"
[[peer]]
name = "site-c.example"
feed = "192.0.2.30:1119"
check_size = 0
`))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(c); err != nil {
		t.Fatal(err)
	}
	again, err := Load(write(t, b.String()))
	if err != nil {
		t.Fatalf("the printed configuration does not load: %v\n%s", err, b.String())
	}
	if b, c := c.Peers[0].CheckSize, c.Peers[1].CheckSize; b == nil || *b != DefaultCheckSize || c == nil || *c != 0 {
		t.Errorf("check_size: site-b %v, site-c %v; want the default %d (absent) and 0", b, c, DefaultCheckSize)
	}
	// Printed, every key is set: compare the values alone.
	c.set, again.set = nil, nil
	if !reflect.DeepEqual(c, again) {
		t.Errorf("printed and loaded again, the configuration differs:\n%+v\n%+v\nprinted:\n%s", c, again, b.String())
	}
}

// TestExample: every key that examples/dstd.toml sets has its
// default value, so the documentation cannot drift from the code.
func TestExample(t *testing.T) {
	c, err := Load("../../examples/dstd.toml")
	if err != nil {
		t.Fatal(err)
	}
	d, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	// The example writes "key = []" where the default is no list.
	emptyToNil(reflect.ValueOf(c).Elem())
	c.set = nil // which keys the file set; compare the values alone
	if !reflect.DeepEqual(c, d) {
		t.Errorf("examples/dstd.toml disagrees with the defaults:\n%+v\n%+v", c, d)
	}
}

// emptyToNil sets every empty slice in v (a struct) to nil.
func emptyToNil(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				emptyToNil(v.Field(i))
			}
		}
	case reflect.Slice:
		if v.Len() == 0 {
			v.SetZero()
		}
		for i := range v.Len() {
			emptyToNil(v.Index(i))
		}
	}
}

// TestParsePrefix is the rule of every address list and of the allow file.
func TestParsePrefix(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"192.0.2.7", "192.0.2.7/32"},
		{" 192.0.2.7\t", "192.0.2.7/32"},
		{"192.0.2.7/24", "192.0.2.0/24"},
		{"::ffff:192.0.2.7", "192.0.2.7/32"},
		{"2001:db8::1", "2001:db8::1/128"},
		{"2001:db8::1/32", "2001:db8::/32"},
		{"", ""},
		{"192.0.2.0/33", ""},
		{"192.0.2", ""},
		{"mx.example.net", ""},
	} {
		got, err := ParsePrefix(tc.in)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("ParsePrefix(%q) = %v, want an error", tc.in, got)
		case tc.want != "" && (err != nil || got != netip.MustParsePrefix(tc.want)):
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	if _, err := ParsePrefixes([]string{"192.0.2.1", "bad"}); err == nil || !strings.Contains(err.Error(), `"bad" is neither`) {
		t.Errorf("ParsePrefixes with a bad entry: %v", err)
	}
}
