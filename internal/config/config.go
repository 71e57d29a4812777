// Package config reads dstd's configuration: a TOML file whose every key is
// optional. Defaults are applied once, in Default, so dstd runs with no file
// at all; examples/dstd.toml documents every key. Each value is parsed
// once, as the file is read, into the type the daemon uses (HostPort,
// Prefixes, Addr, LogLevel, ...): a bad value is reported with its line and
// key, and nothing downstream parses a string of the file again. Validate
// then checks what no single value can: the rules that span keys.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/dst-traps/dst/internal/logging"
)

// Config is dstd's whole configuration.
type Config struct {
	Site     string  `toml:"site"`
	DataDir  string  `toml:"data_dir"`
	SpoolDir string  `toml:"spool_dir"`
	Log      Log     `toml:"log"`
	NNTP     NNTP    `toml:"nntp"`
	DKIM     DKIM    `toml:"dkim"`
	History  History `toml:"history"`
	Listing  Listing `toml:"listing"`
	Policy   Policy  `toml:"policy"`
	Admin    Admin   `toml:"admin"`
	Actions  Actions `toml:"actions"`
	TLS      TLS     `toml:"tls"`
	DNS      DNS     `toml:"dns"`
	Peers    []Peer  `toml:"peer"`

	// set are the keys the file gave a value ("dkim.keyring"): a file
	// the administrator named must exist, one only defaulted may not.
	set map[string]bool
}

// IsSet tells whether the configuration file set key (dotted, as the file
// spells it: "dkim.keyring"), rather than leaving it to its default.
func (c *Config) IsSet(key string) bool { return c.set[key] }

// DNS is the blocklist: the embedded server, DNS UPDATE into another
// server, and the rbldnsd export.
type DNS struct {
	Zone          string    `toml:"zone"`           // e.g. "bl.example.net"
	Listen        HostPorts `toml:"listen"`         // UDP and TCP; empty: no embedded server
	A             Addr      `toml:"a"`              // answer for listed addresses
	Graded        bool      `toml:"graded"`         // answer 127.0.0.2..9 by corroboration instead of A (then 127.0.0.2)
	TXT           string    `toml:"txt"`            // template: {ip} {origins} {hits} {expires} {first_seen}
	TTL           Duration  `toml:"ttl"`            // of answers
	NegativeTTL   Duration  `toml:"negative_ttl"`   // SOA minimum: how long NXDOMAIN is cached
	NS            []string  `toml:"ns"`             // NS names at the apex; default ns.<zone>
	Mbox          string    `toml:"mbox"`           // SOA RNAME; default hostmaster.<zone>
	AllowTransfer Prefixes  `toml:"allow_transfer"` // addresses that may AXFR/IXFR
	// The TSIG key transfers must be signed with (then allow_transfer
	// may be empty); NOTIFY is signed with it too.
	TransferKeyName      string    `toml:"transfer_key_name"`
	TransferKeySecret    string    `toml:"transfer_key_secret"`    // base64
	TransferKeyAlgorithm string    `toml:"transfer_key_algorithm"` // default hmac-sha256
	Notify               HostPorts `toml:"notify"`                 // secondaries told of changes

	Update DNSUpdate `toml:"update"`
	// RbldnsdIP4 and RbldnsdIP6 are the export files for rbldnsd
	// (ip4set and ip6trie datasets); empty: no export.
	RbldnsdIP4 string `toml:"rbldnsd_ip4"`
	RbldnsdIP6 string `toml:"rbldnsd_ip6"`
}

// DNSUpdate pushes listings into an existing primary server (RFC 2136)
// signed with TSIG (RFC 8945).
type DNSUpdate struct {
	Server    HostPort `toml:"server"`    // empty: disabled
	Zone      string   `toml:"zone"`      // default: dns.zone
	KeyName   string   `toml:"key_name"`  // TSIG key name
	Secret    string   `toml:"secret"`    // base64, as in BIND's key statement
	Algorithm string   `toml:"algorithm"` // default hmac-sha256
}

// TLS is the site's certificate, used as the server's and as the client
// certificate of its outgoing feeds, and the implicit-TLS listeners.
type TLS struct {
	Cert   string    `toml:"cert"`   // PEM certificate chain
	Key    string    `toml:"key"`    // PEM private key
	Listen HostPorts `toml:"listen"` // implicit TLS (NNTPS) addresses
}

// Log is where dstd's own log goes.
type Log struct {
	Level       LogLevel     `toml:"level"`
	Destination logging.Mode `toml:"destination"` // auto, stderr, syslog
	// Format of each line: text (key=value) or json, one object per
	// line for a log collector.
	Format logging.Format `toml:"format"`
}

// NNTP is the server dstc and peers talk to.
type NNTP struct {
	Listen HostPorts `toml:"listen"`
	Socket string    `toml:"socket"`
	// SubmitGroup is the group whose members may submit reports: it gets
	// the submission socket (0660) and the spool directories dstd creates
	// (3770). Empty: only dstd's own user (and root) may submit.
	SubmitGroup     string   `toml:"submit_group"`
	PostAllow       Prefixes `toml:"post_allow"`
	MaxArticleBytes int64    `toml:"max_article_bytes"`
	IdleTimeout     Duration `toml:"idle_timeout"`

	// Connection limits, one pool per class so that a flood of one class
	// cannot lock out the others: MaxConnections and MaxConnectionsPerIP
	// bound everyone but the Unix socket and the peers.
	MaxConnections             int      `toml:"max_connections"`
	MaxConnectionsPerIP        int      `toml:"max_connections_per_ip"`
	MaxLocalConnections        int      `toml:"max_local_connections"`          // the Unix socket
	MaxLocalConnectionsPerUser int      `toml:"max_local_connections_per_user"` // the socket, per local user
	MaxPeerConnections         int      `toml:"max_peer_connections"`           // per configured peer
	TLSHandshakeTimeout        Duration `toml:"tls_handshake_timeout"`
}

// DKIM is the site's signing key and the keyring of trusted origins.
type DKIM struct {
	Selector   string `toml:"selector"`
	PrivateKey string `toml:"private_key"`
	Keyring    string `toml:"keyring"`
	// DNSKeyDomains are the sites whose keys may also come from DNS
	// (selector._domainkey.domain), for selectors the keyring lacks.
	DNSKeyDomains []string `toml:"dns_key_domains"`
	// DNSKeyServer is the DNS server asked; empty: the first nameserver
	// of /etc/resolv.conf.
	DNSKeyServer HostPort `toml:"dns_key_server"`
}

// History is how long Message-IDs are remembered.
type History struct {
	Keep      Duration `toml:"keep"`
	MaxFuture Duration `toml:"max_future"`
}

// Listing is how long an address stays listed.
type Listing struct {
	Expire        Duration `toml:"expire"`
	MaxExpire     Duration `toml:"max_expire"`
	SweepInterval Duration `toml:"sweep_interval"`
}

// Policy decides which reported addresses may be listed.
type Policy struct {
	OwnNetworks        Prefixes `toml:"own_networks"`
	Allow              Prefixes `toml:"allow"`
	AllowFile          string   `toml:"allow_file"`
	AllowDocumentation bool     `toml:"allow_documentation"`
	Threshold          int      `toml:"threshold"`
	Window             Duration `toml:"window"`
	// Earned origin trust (see trust.go).
	NewOrigin               OriginState `toml:"new_origin"`
	ProbationCorroborations int         `toml:"probation_corroborations"`
	MaxNewListingsPerHour   int         `toml:"max_new_listings_per_hour"`
	DisputeShare            float64     `toml:"dispute_share"`
	DisputeMinAddresses     int         `toml:"dispute_min_addresses"`
	// ListClasses are the report classes (DST-Class) that list an
	// address here; reports of the others are stored, counted and
	// relayed, not listed.
	ListClasses []ReportClass `toml:"list_classes"`
	Simulate    bool          `toml:"simulate"` // compute and log listings ("would list"), publish none
}

// Admin is the local endpoint of dstctl and Prometheus.
type Admin struct {
	Socket string `toml:"socket"`
	// Group is the group whose members may use dstctl without being root
	// or dstd's user: it gets admin.sock (0660). Empty: socket mode 0600.
	Group     string   `toml:"group"`
	Listen    HostPort `toml:"listen"`
	TokenFile string   `toml:"token_file"` // bearer token for admin.listen; needed off loopback
}

// Actions are what dstd does with each accepted report.
type Actions struct {
	Log     LogAction     `toml:"log"`
	Program ProgramAction `toml:"program"`
}

// LogAction is the text log of reports and delistings.
type LogAction struct {
	File string `toml:"file"` // empty: disabled
}

// ProgramAction runs an external program for each new report.
type ProgramAction struct {
	Command     []string `toml:"command"` // empty: disabled
	Timeout     Duration `toml:"timeout"`
	Concurrency int      `toml:"concurrency"`
	MaxAttempts int      `toml:"max_attempts"`
}

// Peer is another site: it may feed this one (incoming) and this one may
// feed it (outgoing, when Feed is set).
type Peer struct {
	// Name is the peer's site name: its Path identity and DKIM domain.
	Name string `toml:"name"`

	// Incoming: the addresses it may feed from, and what it must present.
	Addresses    Prefixes `toml:"addresses"`
	ClientCert   string   `toml:"client_cert"`   // PEM certificate it must present (TLS)
	AuthUser     string   `toml:"auth_user"`     // AUTHINFO USER it must give (over TLS)
	AuthPassword string   `toml:"auth_password"` // and its AUTHINFO PASS

	// Outgoing: where and how this site sends it reports.
	Feed       HostPort `toml:"feed"`        // empty: no outgoing feed
	TLS        PeerTLS  `toml:"tls"`         // "", "starttls" or "implicit"
	CA         string   `toml:"ca"`          // PEM CA or certificate its server certificate must chain to; empty: system roots
	ServerName string   `toml:"server_name"` // name to verify in its certificate; default: the host of feed
	Username   string   `toml:"username"`    // AUTHINFO USER to give it
	Password   string   `toml:"password"`    // AUTHINFO PASS to give it
	Source     string   `toml:"source"`      // local address to connect from
	// CheckSize: when streaming, a report of at least this many bytes is
	// offered with CHECK, and sent only if the peer wants it; a smaller
	// one goes with TAKETHIS at once, a round trip less, at the cost of
	// sending it in full when the peer already has it. 0: CHECK every
	// report. Load sets an absent one to DefaultCheckSize.
	CheckSize *int `toml:"check_size"`
}

// DefaultCheckSize is [[peer]] check_size's default, the feed's own
// (feed.DefaultCheckSize; see why there).
const DefaultCheckSize = 16 << 10

// DefaultMaxArticleBytes is nntp.max_article_bytes's default, and dstc's
// -max-article: a report dstc builds must fit what dstd takes.
const DefaultMaxArticleBytes = 1_000_000

// Default returns the configuration dstd runs with when no file is given.
// Paths depend on DataDir; Load recomputes those the file leaves empty.
func Default() *Config {
	c := &Config{
		Site:    defaultSite(),
		DataDir: DefaultDataDir(),
		Log:     Log{Level: LogLevel{slog.LevelInfo}, Destination: logging.Auto, Format: logging.Text},
		NNTP: NNTP{
			Listen: HostPorts{{Host: "127.0.0.1", Port: "1119"}},
			// Nobody may POST over TCP unless listed: whoever can POST
			// injects reports signed with the site's key, and local
			// submission goes through the socket, which file
			// permissions guard.
			PostAllow:       nil,
			MaxArticleBytes: DefaultMaxArticleBytes,
			IdleTimeout:     Duration{5 * time.Minute},

			MaxConnections:             64,
			MaxConnectionsPerIP:        16,
			MaxLocalConnections:        64,
			MaxLocalConnectionsPerUser: 32,
			MaxPeerConnections:         16,
			TLSHandshakeTimeout:        Duration{10 * time.Second},
		},
		DKIM:    DKIM{Selector: "dst"},
		History: History{Keep: Duration{30 * 24 * time.Hour}, MaxFuture: Duration{time.Hour}},
		Listing: Listing{Expire: Duration{24 * time.Hour}, MaxExpire: Duration{14 * 24 * time.Hour}, SweepInterval: Duration{time.Minute}},
		Policy: Policy{Threshold: 1, Window: Duration{24 * time.Hour}, ListClasses: []ReportClass{"spam"},
			NewOrigin: OriginTrusted, ProbationCorroborations: 3, DisputeShare: 0.25, DisputeMinAddresses: 4},
		DNS: DNS{
			Zone:                 "dnsbl.invalid",
			Listen:               HostPorts{{Host: "127.0.0.1", Port: "5353"}},
			A:                    Addr{netip.AddrFrom4([4]byte{127, 0, 0, 2})},
			TXT:                  "Listed by DST: {ip} hit spam traps ({hits} reports from {origins}), until {expires}",
			TTL:                  Duration{5 * time.Minute},
			NegativeTTL:          Duration{time.Minute},
			Update:               DNSUpdate{Algorithm: "hmac-sha256"},
			TransferKeyAlgorithm: "hmac-sha256",
		},
		Actions: Actions{Program: ProgramAction{Timeout: Duration{time.Minute}, Concurrency: 4, MaxAttempts: 10}},
	}
	return c
}

func defaultSite() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return strings.ToLower(h)
}

// Load reads the file at path over the defaults; path "" means no file.
// Unknown keys are errors: a misspelt key silently ignored is a surprise.
func Load(path string) (*Config, error) {
	c := Default()
	if path != "" {
		md, err := toml.DecodeFile(path, c)
		var perr toml.ParseError
		if errors.As(err, &perr) && perr.LastKey != "" {
			// "config /etc/dst/dstd.toml line 12: nntp.listen: "1119" is
			// not host:port: want e.g. ...": the line, the key, what is
			// wrong and what is wanted.
			return nil, fmt.Errorf("config %s line %d: %s: %s", path, perr.Position.Line, perr.LastKey, perr.Message)
		}
		if err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
		c.set = make(map[string]bool)
		for _, k := range md.Keys() {
			c.set[k.String()] = true
		}
		if und := md.Undecoded(); len(und) > 0 {
			keys := make([]string, len(und))
			for i, k := range und {
				keys[i] = k.String()
			}
			return nil, fmt.Errorf("config %s: %s", path, unknownKeys(keys))
		}
	}
	c.fillPaths()
	for i := range c.Peers {
		if c.Peers[i].CheckSize == nil {
			n := DefaultCheckSize
			c.Peers[i].CheckSize = &n
		}
	}
	if err := c.Validate(); err != nil {
		if path == "" {
			return nil, err
		}
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// fillPaths puts every file under DataDir unless the file set it.
func (c *Config) fillPaths() {
	def := func(p *string, name string) {
		if *p == "" {
			*p = filepath.Join(c.DataDir, name)
		}
	}
	if c.SpoolDir == "" {
		c.SpoolDir = spoolDirFor(c.DataDir)
	}
	if c.NNTP.Socket == "" {
		// The spool is the submission directory: dstc finds the socket
		// next to where it would spool, and the directory's group
		// decides who may use either.
		c.NNTP.Socket = SubmitSocket(c.SpoolDir)
	}
	def(&c.DKIM.PrivateKey, "dkim.key")
	def(&c.DKIM.Keyring, "keyring")
	def(&c.Policy.AllowFile, "allow")
	def(&c.Admin.Socket, "admin.sock")
	def(&c.Actions.Log.File, "reports.log")
}

// loopbackHost reports whether a listen host binds loopback only: an
// address in 127.0.0.0/8, ::1, or localhost. An empty host, 0.0.0.0 or ::
// is every interface, and another name may resolve to anything.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// DBPath is the bbolt database file.
func (c *Config) DBPath() string { return filepath.Join(c.DataDir, "dst.db") }

// Validate checks what decoding each value alone cannot: the rules that
// span keys (listing.max_expire and listing.expire, tls.cert and tls.key,
// ...), the ranges of numbers and durations, and what exists on this host
// (groups). The values themselves were parsed when the file was read. It
// runs again on a Config built or changed in code.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if !validSite(c.Site) {
		bad("site %q: want a domain name such as site-a.example", c.Site)
	}
	if c.DataDir == "" {
		bad("data_dir is empty")
	}
	if !c.Admin.Listen.IsZero() {
		if !loopbackHost(c.Admin.Listen.Host) && c.Admin.TokenFile == "" {
			// It serves delist and cancel: beyond this host, only with a token.
			bad("admin.listen %s is not loopback: set admin.token_file, or listen on 127.0.0.1", c.Admin.Listen)
		}
	} else if c.Admin.TokenFile != "" {
		bad("admin.token_file is set but admin.listen is not: the token guards the TCP listener only (the socket's file mode guards the socket); set admin.listen or remove admin.token_file")
	}
	for _, g := range []struct{ key, name string }{{"nntp.submit_group", c.NNTP.SubmitGroup}, {"admin.group", c.Admin.Group}} {
		if g.name == "" {
			continue
		}
		if _, err := LookupGroup(g.name); err != nil {
			bad("%s: %w", g.key, err)
		}
	}
	for key, n := range map[string]int{
		"nntp.max_connections": c.NNTP.MaxConnections, "nntp.max_connections_per_ip": c.NNTP.MaxConnectionsPerIP,
		"nntp.max_local_connections": c.NNTP.MaxLocalConnections, "nntp.max_local_connections_per_user": c.NNTP.MaxLocalConnectionsPerUser,
		"nntp.max_peer_connections": c.NNTP.MaxPeerConnections,
	} {
		if n < 1 {
			bad("%s must be at least 1", key)
		}
	}
	if c.NNTP.MaxArticleBytes < 4096 {
		bad("nntp.max_article_bytes must be at least 4096")
	}
	for key, d := range map[string]Duration{
		"nntp.idle_timeout": c.NNTP.IdleTimeout, "nntp.tls_handshake_timeout": c.NNTP.TLSHandshakeTimeout, "history.keep": c.History.Keep, "history.max_future": c.History.MaxFuture,
		"listing.expire": c.Listing.Expire, "listing.max_expire": c.Listing.MaxExpire, "listing.sweep_interval": c.Listing.SweepInterval,
		"policy.window": c.Policy.Window, "actions.program.timeout": c.Actions.Program.Timeout,
		"dns.ttl": c.DNS.TTL, "dns.negative_ttl": c.DNS.NegativeTTL,
	} {
		if d.Duration <= 0 {
			bad("%s must be positive", key)
		}
	}
	if c.Listing.MaxExpire.Duration < c.Listing.Expire.Duration {
		bad("listing.max_expire (%s) is shorter than listing.expire (%s)", c.Listing.MaxExpire, c.Listing.Expire)
	}
	if c.History.Keep.Duration < c.Listing.Expire.Duration {
		// A report older than the history could be offered again and
		// listed twice.
		bad("history.keep (%s) must be at least listing.expire (%s)", c.History.Keep, c.Listing.Expire)
	}
	if c.Policy.Threshold < 1 {
		bad("policy.threshold must be at least 1")
	}
	errs = append(errs, c.Policy.validateTrust()...)
	if len(c.Policy.ListClasses) == 0 {
		bad(`policy.list_classes is empty, so nothing would ever be listed: list at least "spam"`)
	}
	if c.DKIM.Selector == "" || strings.ContainsAny(c.DKIM.Selector, " ;=") {
		bad("dkim.selector %q is not a DKIM selector", c.DKIM.Selector)
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		bad("tls.cert and tls.key go together")
	}
	if len(c.TLS.Listen) > 0 && c.TLS.Cert == "" {
		bad("tls.listen needs tls.cert and tls.key")
	}
	if !validSite(strings.TrimSuffix(c.DNS.Zone, ".")) {
		bad("dns.zone %q is not a domain name", c.DNS.Zone)
	}
	if a := c.DNS.A.Addr; !a.Is4() || !a.IsLoopback() {
		bad("dns.a %q: want an address in 127.0.0.0/8 (RFC 5782 §2.1)", c.DNS.A)
	} else if c.DNS.Graded && a != netip.AddrFrom4([4]byte{127, 0, 0, 2}) {
		// Graded answers use 127.0.0.2..9 themselves; another base
		// would collide with them or shift what MTAs weight.
		bad("dns.graded answers 127.0.0.2 to 127.0.0.9 by corroboration: remove dns.a (or set it to 127.0.0.2), or set dns.graded = false")
	}
	if (c.DNS.TransferKeyName == "") != (c.DNS.TransferKeySecret == "") {
		bad("dns.transfer_key_name and transfer_key_secret go together")
	}
	if !c.DNS.Update.Server.IsZero() && (c.DNS.Update.KeyName == "" || c.DNS.Update.Secret == "") {
		bad("dns.update needs key_name and secret: updates are always signed (TSIG)")
	}
	if c.Actions.Program.Concurrency < 1 || c.Actions.Program.MaxAttempts < 1 {
		bad("actions.program.concurrency and max_attempts must be at least 1")
	}
	names := map[string]bool{}
	for i, p := range c.Peers {
		if p.Name == "" {
			bad("peer %d has no name", i+1)
		}
		if names[p.Name] {
			bad("peer %q is configured twice", p.Name)
		}
		names[p.Name] = true
		if p.Name == c.Site {
			bad("peer %q has this site's own name", p.Name)
		}
		if (p.Username != "" || p.Password != "") && p.TLS == PeerTLSNone {
			bad("peer %q: username/password are only sent over TLS: set tls", p.Name)
		}
		if (p.AuthUser == "") != (p.AuthPassword == "") {
			bad("peer %q: auth_user and auth_password go together", p.Name)
		}
		if p.CheckSize != nil && *p.CheckSize < 0 {
			bad("peer %q: check_size is %d: give 0 (CHECK every report first) or a size in bytes", p.Name, *p.CheckSize)
		}
		if (p.ClientCert != "" || p.AuthUser != "") && c.TLS.Cert == "" {
			bad("peer %q must authenticate over TLS, but [tls] has no cert", p.Name)
		}
	}
	return errors.Join(errs...)
}

func validSite(s string) bool {
	if s == "" || len(s) > 253 || strings.ContainsAny(s, "!/ \t") {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
		for _, r := range l {
			if !(r == '-' || r == '_' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9')) {
				return false
			}
		}
	}
	return true
}
