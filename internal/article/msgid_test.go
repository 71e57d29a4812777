package article

import (
	"strings"
	"testing"
)

func TestNewMessageID(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		id := NewMessageID("site-a.example")
		if !ValidMessageID(id) {
			t.Fatalf("NewMessageID gave invalid %q", id)
		}
		if !strings.HasSuffix(id, "@site-a.example>") {
			t.Fatalf("NewMessageID gave %q, want the domain on the right", id)
		}
		// 128 bits in base32: 26 characters.
		if left := id[1:strings.IndexByte(id, '@')]; len(left) != 26 {
			t.Fatalf("left part %q has %d characters, want 26", left, len(left))
		}
		if seen[id] {
			t.Fatalf("NewMessageID repeated %q", id)
		}
		seen[id] = true
	}
}

func TestValidMessageID(t *testing.T) {
	long := "<" + strings.Repeat("a", 250-len("<@b>")) + "@b>"
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"<unique@site-a.example>", true},
		{"<a@b>", true},
		{"<a.b.c@d.e>", true},
		{"<!#$%&'*+-/=?^_`{|}~@x>", true},
		{`<"quoted string"@example.com>`, false}, // space is not mqtext
		{`<"quoted@string"@example.com>`, true},
		{`<"a\"b\\c"@example.com>`, true},
		{`<"\""@example.com>`, false}, // needs at least one mqtext
		{`<"a\x"@example.com>`, false},
		{`<"a>b"@example.com>`, false},
		{`<"ab@example.com>`, false},
		{"<a@[127.0.0.1]>", true},
		{`<a@[IPv6:2001:db8::1]>`, true},
		{`<a@[a\]b]>`, true},
		{`<a@[]>`, false},
		{`<a@[a>b]>`, false},
		{`<a@[ab]c>`, false},
		{"<0@[0<]>", true}, // '<' is mdtext; only '>' is excluded
		{`<"a<b"@c>`, true},
		{long, true},
		{"<" + strings.Repeat("a", 250-len("<@b>")+1) + "@b>", false},
		{"", false},
		{"<>", false},
		{"<@>", false},
		{"<a@>", false},
		{"<@b>", false},
		{"a@b", false},
		{"<a@b", false},
		{"a@b>", false},
		{" <a@b>", false},
		{"<a@b> ", false},
		{"<a b@c>", false},
		{"<a@b c>", false},
		{"<a@b@c>", false},
		{"<a>b@c>", false},
		{"<a@b>c>", false},
		{"<a<b@c>", false},
		{"<.a@b>", false},
		{"<a.@b>", false},
		{"<a..b@c>", false},
		{"<a@b.>", false},
		{"<a@.b>", false},
		{"<a@b..c>", false},
		{"<a\x00@b>", false},
		{"<a\x7f@b>", false},
		{"<\xc3\xa9@b>", false},
		{"<a@b\r\n>", false},
		{"<a(comment)@b>", false},
	} {
		if got := ValidMessageID(tc.id); got != tc.want {
			t.Errorf("ValidMessageID(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

func FuzzValidMessageID(f *testing.F) {
	for _, s := range []string{"<a@b>", `<"q@x"@[1.2.3.4]>`, "<a..b@c>", "<a@[x\\]]>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if !ValidMessageID(id) {
			return
		}
		// Properties netnews software relies on (RFC 5536 §3.1.3).
		if len(id) > 250 {
			t.Fatalf("accepted %d octets", len(id))
		}
		// '>' ends the msg-id for every reader, so it may occur only
		// at the end; '<' is ordinary mqtext/mdtext inside quotes and
		// literals.
		if strings.Count(id, ">") != 1 || id[0] != '<' {
			t.Fatalf("accepted %q with '>' inside", id)
		}
		for i := 0; i < len(id); i++ {
			if id[i] < 33 || id[i] > 126 {
				t.Fatalf("accepted %q with byte %#x", id, id[i])
			}
		}
		if !strings.Contains(id, "@") {
			t.Fatalf("accepted %q without @", id)
		}
	})
}
