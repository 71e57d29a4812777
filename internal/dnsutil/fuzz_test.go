package dnsutil

import (
	"slices"
	"testing"
)

// FuzzTXT round-trips TXT data through a packed and unpacked dns.Msg:
// any text, split and escaped by TXT, arrives byte for byte and reads
// back as the very strings TXT wrote; and any presentation string that
// miekg/dns packs reads back through UnescapeTXT as the bytes it packed.
func FuzzTXT(f *testing.F) {
	for _, s := range []string{"", "Listed by DST", `back\slash`, `\065BC`, `"quoted"`, "caf\xc3\xa9\x00\xff", `\\\`, `\999`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		txt := TXT(text)
		for _, p := range txt {
			if n := len(UnescapeTXT(p)); n > MaxCharString {
				t.Fatalf("TXT(%q) has a %d-byte string", text, n)
			}
		}
		got, err := wire(t, txt)
		if err != nil {
			t.Fatalf("TXT(%q) = %q does not pack: %v", text, txt, err)
		}
		if s := TXTText(got.Txt); s != text {
			t.Fatalf("TXT(%q) read back as %q", text, s)
		}
		if !slices.Equal(got.Txt, txt) {
			t.Fatalf("TXT(%q) = %q, read back as %q", text, txt, got.Txt)
		}
		if SplitTXT(text)[0] != UnescapeTXT(txt[0]) {
			t.Fatalf("UnescapeTXT(EscapeTXT(x)) != x for %q", text)
		}

		// text as presentation form, as a hand-written record holds it.
		if len(text) > 4*MaxCharString {
			return
		}
		got, err = wire(t, []string{text})
		if err != nil {
			return // more than 255 bytes once unescaped
		}
		if s, want := TXTText(got.Txt), UnescapeTXT(text); s != want {
			t.Fatalf("presentation %q packed as %q, UnescapeTXT says %q", text, s, want)
		}
	})
}
