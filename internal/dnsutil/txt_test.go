package dnsutil

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/miekg/dns"
)

// wire packs a TXT record with txt into a DNS message, as a server or an
// UPDATE would send it, and returns the record read back.
func wire(t testing.TB, txt []string) (*dns.TXT, error) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion("1.0.0.10.bl.example.", dns.TypeTXT)
	m.Answer = []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: "1.0.0.10.bl.example.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: txt}}
	b, err := m.Pack()
	if err != nil {
		return nil, err
	}
	r := new(dns.Msg)
	if err := r.Unpack(b); err != nil {
		t.Fatalf("a packed message does not unpack: %v", err)
	}
	return r.Answer[0].(*dns.TXT), nil
}

func TestTXTKeepsBytes(t *testing.T) {
	for _, text := range []string{
		"", "plain", `back\slash`, `\065BC`, `say "no"`, "caf\u00e9 \u2014 \U0001F600",
		"tab\there\nnewline\x00nul\xff\x80", `\\\"\`, strings.Repeat(`"é\`, 300),
	} {
		txt := TXT(text)
		got, err := wire(t, txt)
		if err != nil {
			t.Errorf("TXT(%q) does not pack: %v", text, err)
			continue
		}
		if s := TXTText(got.Txt); s != text {
			t.Errorf("TXT(%q) reads back as %q", text, s)
		}
		// What a server returns is what TXT wrote, so records compare
		// equal string by string (Resync relies on it).
		if !slices.Equal(got.Txt, txt) {
			t.Errorf("TXT(%q) = %q, read back as %q", text, txt, got.Txt)
		}
	}
}

func TestSplitTXT(t *testing.T) {
	if got := SplitTXT(""); len(got) != 1 || got[0] != "" {
		t.Errorf("SplitTXT(\"\") = %q, want one empty string", got)
	}
	if got := SplitTXT("short"); len(got) != 1 || got[0] != "short" {
		t.Errorf("SplitTXT(short) = %q", got)
	}
	if got := SplitTXT(strings.Repeat("a", 255)); len(got) != 1 {
		t.Errorf("255 bytes split into %d strings, want 1", len(got))
	}
	long := strings.Repeat("é", 200) // 400 bytes, 255 is inside a rune
	parts := SplitTXT(long)
	if len(parts) != 2 || strings.Join(parts, "") != long {
		t.Fatalf("SplitTXT: %q", parts)
	}
	for _, p := range parts {
		if len(p) > MaxCharString || !utf8.ValidString(p) {
			t.Errorf("bad part %q (%d bytes)", p, len(p))
		}
	}
	// Not UTF-8: cut at 255 all the same.
	bin := strings.Repeat("\x80", 600)
	if parts := SplitTXT(bin); len(parts) != 3 || len(parts[0]) != 255 || strings.Join(parts, "") != bin {
		t.Errorf("SplitTXT(600 continuation bytes) = %d parts", len(parts))
	}
}

func TestCutText(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"abc", 5, "abc"}, {"abcdef", 4, "abcd"}, {"ab€", 4, "ab"}, {"ab€", 5, "ab€"}, {"\x80\x80\x80\x80\x80", 4, "\x80\x80\x80\x80"},
	} {
		if got := CutText(tc.s, tc.n); got != tc.want {
			t.Errorf("CutText(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
}

func TestEscapeTXT(t *testing.T) {
	for in, want := range map[string]string{
		"plain": "plain", `a\b`: `a\\b`, `"q"`: `\"q\"`, "é": `\195\169`, "\x00\x1f\x7f": `\000\031\127`,
	} {
		if got := EscapeTXT(in); got != want {
			t.Errorf("EscapeTXT(%q) = %q, want %q", in, got, want)
		}
		if back := UnescapeTXT(want); back != in {
			t.Errorf("UnescapeTXT(%q) = %q, want %q", want, back, in)
		}
	}
	// Forms EscapeTXT never writes, read as miekg/dns packs them.
	for in, want := range map[string]string{`\A`: "A", `trail\`: "trail", `\06`: "06", `\256`: "\x00"} {
		if got := UnescapeTXT(in); got != want {
			t.Errorf("UnescapeTXT(%q) = %q, want %q", in, got, want)
		}
	}
}
