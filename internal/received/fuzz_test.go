package received

import (
	"net/netip"
	"os"
	"strings"
	"testing"
)

// addFieldSeeds seeds a fuzz target with every Received field of the corpus.
func addFieldSeeds(f *testing.F, add func(string)) {
	for _, c := range loadCorpus(f) {
		msg, err := os.ReadFile(c.eml)
		if err != nil {
			f.Fatal(err)
		}
		for _, fld := range Fields(headerOf(msg)) {
			add(fld)
		}
	}
}

// FuzzParse checks that Parse never panics and never invents an address: a
// client address it returns is written in the field.
func FuzzParse(f *testing.F) {
	addFieldSeeds(f, func(s string) { f.Add(s) })
	f.Fuzz(func(t *testing.T, v string) {
		h, err := Parse(v)
		if err != nil || !h.IP.IsValid() {
			return
		}
		if !mentions(v, h.IP) {
			t.Fatalf("Parse(%q) returned %v, which the field does not contain", v, h.IP)
		}
		if h.NameVerified && h.ReverseName == "" {
			t.Fatalf("Parse(%q): verified empty name", v)
		}
	})
}

// mentions reports whether some run of address characters in s parses to ip.
func mentions(s string, ip netip.Addr) bool {
	isAddrChar := func(r rune) bool {
		return r == '.' || r == ':' || ('0' <= r && r <= '9') || ('a' <= r && r <= 'f') || ('A' <= r && r <= 'F')
	}
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return !isAddrChar(r) }) {
		for _, cand := range []string{w, strings.TrimPrefix(strings.TrimPrefix(w, ":"), "6:")} {
			if a, err := netip.ParseAddr(cand); err == nil && a.Unmap() == ip {
				return true
			}
		}
	}
	// "IPv6:" leaves "v6:" split as "6:..." by the rule above; an address
	// literal may also end with ":port": try the parts before.
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return !isAddrChar(r) && r != 'v' && r != 'V' && r != 'I' && r != 'P' }) {
		w = strings.TrimPrefix(strings.TrimPrefix(w, "IPv6:"), "ipv6:")
		for i := len(w); i > 0; i-- {
			if a, err := netip.ParseAddr(w[:i]); err == nil && a.Unmap() == ip {
				return true
			}
		}
	}
	return false
}

// FuzzSource walks fuzzed header sections. Whatever the input, an answer is
// never a site host (loopback or trusted network), and it is the client of
// a field received by an MX or by a trusted host with a verified MX name.
func FuzzSource(f *testing.F) {
	for _, c := range loadCorpus(f) {
		msg, err := os.ReadFile(c.eml)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(headerOf(msg))
	}
	site := &Site{MX: []string{"mx[12].example.net"}, Trusted: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}
	f.Fuzz(func(t *testing.T, hdr []byte) {
		fields := Fields(hdr)
		a, err := site.Source(fields)
		if err != nil {
			return
		}
		if own, why := site.Own(a.Hop); own || a.IP.IsLoopback() {
			t.Fatalf("answer %v is a site host (%s)", a.IP, why)
		}
		h, perr := Parse(fields[a.Index])
		if perr != nil || h.IP != a.IP {
			t.Fatalf("answer %v is not the client of field %d (%v, %v)", a.IP, a.Index, h.IP, perr)
		}
		for i := 0; i < a.Index; i++ {
			h, err := Parse(fields[i])
			if err != nil {
				t.Fatalf("walked past unparsable field %d: %v", i, err)
			}
			if own, _ := site.Own(h); h.HasClient() && !own {
				t.Fatalf("walked past field %d whose client %v is not a site host", i, h.IP)
			}
		}
	})
}
