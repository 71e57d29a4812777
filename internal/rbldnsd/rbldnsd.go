// Package rbldnsd exports DST's listings as rbldnsd(8) data files, for sites
// that serve their blocklist with rbldnsd instead of (or besides) dstd's
// embedded DNS server.
//
// Two files are written: IPv4 listings in the ip4set format and IPv6 listings
// in the ip6trie format, to be served as one zone:
//
//	rbldnsd -b 127.0.0.1/53 zone:ip4set:dst-ip4 zone:ip6trie:dst-ip6
//
// Both carry the RFC 5782 test points (127.0.0.2 and ::ffff:7f00:2 listed;
// 127.0.0.1 and ::ffff:7f00:1 never), so monitoring of the zone works the same
// as against the embedded server.
package rbldnsd

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"
)

// Listing is one listed address as the exporter sees it.
type Listing struct {
	IP        netip.Addr
	Expires   time.Time
	FirstSeen time.Time
	Hits      int
	Origins   []string
	// A is this listing's own A record (graded answers); the exporter's
	// when zero or not an address in 127.0.0.0/8.
	A netip.Addr
}

// Exporter writes the listing to the rbldnsd data files.
type Exporter struct {
	ip4Path, ip6Path string
	a                netip.Addr
	txt              func(Listing) string

	// MinInterval is the shortest time between two rewrites in Run; rbldnsd
	// reloads a whole file on every change, so rewriting on every single
	// listing would keep a busy server reloading all the time.
	MinInterval time.Duration
	// ErrorLog, if set, receives the errors of Run's rewrites (Run retries
	// them itself).
	ErrorLog func(error)

	now func() time.Time // the header's generation time; tests fix it
}

// DefaultA is the A record of a listed address (RFC 5782 §2.1).
var DefaultA = netip.AddrFrom4([4]byte{127, 0, 0, 2})

// Limits of rbldnsd (1.0~20210120): parse_a_txt cuts a TXT template at 255
// bytes when loading (with a warning per line), and addrr_a_txt cuts the
// expanded text at 253 bytes. Staying inside both keeps what resolvers see a
// prefix of what txt returned that ends on a character, not on an arbitrary
// byte or inside a "$$". (Lines are then at most 39+13+255 bytes, inside
// the 511 bytes that its line reader takes before truncating too.)
const (
	maxTXT      = 253
	maxTemplate = 255
)

// New returns an exporter writing IPv4 listings to ip4Path and IPv6 listings
// to ip6Path (either may be empty to skip that family). a is the A record of
// a listing (127.0.0.2 when invalid or not IPv4, since rbldnsd answers A
// records only with IPv4 values); txt gives its TXT record (DefaultTXT when
// nil).
func New(ip4Path, ip6Path string, a netip.Addr, txt func(Listing) string) *Exporter {
	if !a.Is4() || a.IsUnspecified() {
		a = DefaultA
	}
	if txt == nil {
		txt = DefaultTXT
	}
	return &Exporter{ip4Path: ip4Path, ip6Path: ip6Path, a: a, txt: txt, MinInterval: time.Second, now: time.Now}
}

// DefaultTXT says why and until when an address is listed.
func DefaultTXT(l Listing) string {
	return fmt.Sprintf("Listed by DST: %d trap hits from %d sites, until %s",
		l.Hits, len(l.Origins), l.Expires.UTC().Format(time.RFC3339))
}

// Test points of RFC 5782 §5 (the IPv6 ones are ::ffff:7f00:2 listed and
// ::ffff:7f00:1 not, which Unmap folds into the IPv4 ones). The positive ones
// are written by the exporter whatever the store holds; the negative ones are
// dropped if they ever reach it, since a listed 127.0.0.1 would make every
// checker think the zone is broken (or worse, block everything).
var (
	test4Listed   = netip.AddrFrom4([4]byte{127, 0, 0, 2})
	test4Unlisted = netip.AddrFrom4([4]byte{127, 0, 0, 1})
)

// Write writes both files from the listings that each passes to fn. Each
// file is replaced atomically: rbldnsd (which polls the modification time)
// or a crash sees either the old or the new file, never a partial one.
func (e *Exporter) Write(each func(fn func(Listing) error) error) error {
	f4, err := e.create(e.ip4Path)
	if err != nil {
		return err
	}
	defer f4.abort()
	f6, err := e.create(e.ip6Path)
	if err != nil {
		return err
	}
	defer f6.abort()

	now := e.now().UTC()
	header := func(f *tmpFile, format, point string) {
		if f == nil {
			return
		}
		fmt.Fprintf(f.w, "# DST blocklist, %s dataset, generated %s\n", format, now.Format(time.RFC3339))
		// Default A and TXT: used by the test point, which has no value of
		// its own. Every listing carries its own value.
		fmt.Fprintf(f.w, ":%s:%s\n", e.a, escapeTXT("Listed by DST"))
		fmt.Fprintf(f.w, "# RFC 5782 test point\n%s\n", point)
	}
	header(f4, "ip4set", test4Listed.String())
	// Written by hand: netip writes mapped addresses in dotted
	// form ("::ffff:127.0.0.2"), which rbldnsd's ip6trie rejects as an
	// invalid address.
	header(f6, "ip6trie", "::ffff:7f00:2")

	err = each(func(l Listing) error {
		ip := l.IP.Unmap()
		f := f6
		if ip.Is4() {
			f = f4
		}
		if f == nil || !ip.IsValid() || ip.Zone() != "" {
			return nil
		}
		// Unmap folded ::ffff:7f00:1 and ::ffff:7f00:2 into these.
		if ip == test4Listed || ip == test4Unlisted {
			return nil // see the test point variables
		}
		// After Unmap, only IPv4 addresses print in dotted form; the
		// IPv6 ones print in the hex form that ip6trie parses as a /128.
		a := e.a
		if l.A.Is4() && l.A.IsLoopback() {
			a = l.A
		}
		_, err := fmt.Fprintf(f.w, "%s :%s:%s\n", ip, a, escapeTXT(e.txt(l)))
		return err
	})
	if err != nil {
		return err
	}
	if err := f4.commit(); err != nil {
		return err
	}
	return f6.commit()
}

// escapeTXT makes s a TXT template that rbldnsd expands back to s (within
// its limits). rbldnsd replaces "$" by the queried address and "$N" by a
// substitution variable, while "$$" stands for "$"; it drops a leading "="
// (the "$=" base template marker), while "==" stands for "="; it strips
// leading and trailing blanks; and a control character would end the line
// (newline) or reach resolvers as garbage. Invalid UTF-8 is replaced so the
// TXT stays text.
func escapeTXT(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	s = strings.Trim(s, " ")
	var b strings.Builder
	n := 0 // bytes of the expanded text
	if strings.HasPrefix(s, "=") {
		b.WriteByte('=')
	}
	for _, r := range s {
		rl := utf8.RuneLen(r)
		el := rl
		if r == '$' {
			el = 2
		}
		if n+rl > maxTXT || b.Len()+el > maxTemplate {
			break
		}
		n += rl
		if r == '$' {
			b.WriteByte('$')
		}
		b.WriteRune(r)
	}
	// rbldnsd strips trailing blanks too; stripping them here keeps the
	// file equal to what it serves.
	return strings.TrimRight(b.String(), " ")
}

// tmpFile is a data file being written next to its final path.
type tmpFile struct {
	f    *os.File
	w    *bufio.Writer
	path string
	done bool
}

func (e *Exporter) create(path string) (*tmpFile, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("rbldnsd: %w", err)
	}
	// rbldnsd drops root for its own user (rbldns) before it reads data;
	// CreateTemp's 0600 would hide the file from it.
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("rbldnsd: %w", err)
	}
	return &tmpFile{f: f, w: bufio.NewWriterSize(f, 1<<16), path: path}, nil
}

func (t *tmpFile) commit() error {
	if t == nil {
		return nil
	}
	err := t.w.Flush()
	if err == nil {
		err = t.f.Sync()
	}
	if cerr := t.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(t.f.Name(), t.path)
	}
	if err != nil {
		os.Remove(t.f.Name())
		t.done = true
		return fmt.Errorf("rbldnsd: writing %s: %w", t.path, err)
	}
	t.done = true
	// The rename is durable only once the directory is on disk.
	d, err := os.Open(filepath.Dir(t.path))
	if err != nil {
		return fmt.Errorf("rbldnsd: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("rbldnsd: syncing %s: %w", filepath.Dir(t.path), err)
	}
	return nil
}

func (t *tmpFile) abort() {
	if t == nil || t.done {
		return
	}
	t.f.Close()
	os.Remove(t.f.Name())
}

// Run writes the files once, then again after each signal on changed, until
// ctx ends. Rewrites are at least MinInterval apart: changes that arrive in
// the meantime are folded into the next rewrite. A failed rewrite is retried
// after MinInterval, so a passing disk error does not leave the files stale
// until the next change. Run returns ctx's error.
func (e *Exporter) Run(ctx context.Context, changed <-chan struct{}, each func(fn func(Listing) error) error) error {
	interval := e.MinInterval
	if interval <= 0 {
		interval = time.Second
	}
	pending := true // write at start: the files must match the store now
	var last time.Time
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
			if !pending {
				pending = true
				timer.Reset(max(0, interval-time.Since(last)))
			}
		case <-timer.C:
			if !pending {
				continue
			}
			last = time.Now()
			if err := e.Write(each); err != nil {
				if e.ErrorLog != nil {
					e.ErrorLog(err)
				}
				timer.Reset(interval)
				continue
			}
			pending = false
		}
	}
}
