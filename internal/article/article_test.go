package article

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

const sample = "Path: site-b.example!site-a.example!not-for-mail\r\n" +
	"From: DST <dst@site-a.example>\r\n" +
	"Newsgroups: dst.reports\r\n" +
	"Subject: trap hit\r\n" +
	" 203.0.113.7\r\n" +
	"Message-ID: <unique@site-a.example>\r\n" +
	"\r\n" +
	"line one\r\n" +
	".line two\r\n"

func TestParseSample(t *testing.T) {
	a, err := Parse([]byte(sample), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(a.Header), 5; got != want {
		t.Fatalf("got %d fields, want %d", got, want)
	}
	if got, want := a.Header[3], (Field{"Subject", " trap hit\r\n 203.0.113.7"}); got != want {
		t.Errorf("raw Subject = %q, want %q", got, want)
	}
	if got, want := a.Get("subject"), "trap hit 203.0.113.7"; got != want {
		t.Errorf("Get(subject) = %q, want %q", got, want)
	}
	if got, want := a.Get("MESSAGE-ID"), "<unique@site-a.example>"; got != want {
		t.Errorf("Get(MESSAGE-ID) = %q, want %q", got, want)
	}
	if got := a.Get("Xref"); got != "" {
		t.Errorf("Get(Xref) = %q, want empty", got)
	}
	if got, want := string(a.Body), "line one\r\n.line two\r\n"; got != want {
		t.Errorf("body = %q, want %q", got, want)
	}
	if got := string(a.Bytes()); got != sample {
		t.Errorf("Bytes() = %q, want the input back %q", got, sample)
	}
}

func TestParseNormalisesLineEnds(t *testing.T) {
	in := "Subject: x\n folded\nFrom: a@b\n\nbody\nlast"
	want := "Subject: x\r\n folded\r\nFrom: a@b\r\n\r\nbody\r\nlast\r\n"
	a, err := Parse([]byte(in), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if got := string(a.Bytes()); got != want {
		t.Errorf("Bytes() = %q, want %q", got, want)
	}
}

func TestParseBody(t *testing.T) {
	for _, tc := range []struct {
		name, in, body string
	}{
		{"empty body", "A: b\r\n\r\n", ""},
		{"empty body LF", "A: b\n\n", ""},
		{"blank body lines kept", "A: b\r\n\r\n\r\n\r\n", "\r\n\r\n"},
		{"lone CR in body kept", "A: b\r\n\r\nx\ry\r\n", "x\ry\r\n"},
		{"NUL in body kept", "A: b\r\n\r\nx\x00y\r\n", "x\x00y\r\n"},
		{"long body line allowed", "A: b\r\n\r\n" + strings.Repeat("x", 5000) + "\r\n", strings.Repeat("x", 5000) + "\r\n"},
		{"unterminated last line", "A: b\r\n\r\nx", "x\r\n"},
		{"CR at the very end", "A: b\r\n\r\nx\r", "x\r\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Parse([]byte(tc.in), DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			if got := string(a.Body); got != tc.body {
				t.Errorf("body = %q, want %q", got, tc.body)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	small := Limits{MaxBytes: 100, MaxHeaderFields: 3, MaxLineBytes: 20}
	for _, tc := range []struct {
		name string
		in   string
		lim  Limits
		want error
		text string // expected substring of the error message
	}{
		{"empty input", "", Limits{}, ErrMalformed, "not followed by an empty line"},
		{"no blank line", "A: b\r\nC: d\r\n", Limits{}, ErrMalformed, "not followed by an empty line"},
		{"no blank line, no final LF", "A: b\r\nC: d", Limits{}, ErrMalformed, "line 2"},
		{"no header fields", "\r\nbody\r\n", Limits{}, ErrMalformed, "no header fields"},
		{"no colon", "A: b\r\nnocolon\r\n\r\n", Limits{}, ErrMalformed, "line 2: header line has no colon"},
		{"empty name", ": b\r\n\r\n", Limits{}, ErrMalformed, "line 1: header field name is empty"},
		{"space before colon", "Subject : b\r\n\r\n", Limits{}, ErrMalformed, "line 1: header field name"},
		{"8-bit name", "Sub\xe9ject: b\r\n\r\n", Limits{}, ErrMalformed, "line 1"},
		{"control char name", "Sub\x01ject: b\r\n\r\n", Limits{}, ErrMalformed, "line 1"},
		{"NUL in value", "A: b\x00c\r\n\r\n", Limits{}, ErrMalformed, "line 1: NUL"},
		{"lone CR in header", "A: b\rc\r\n\r\n", Limits{}, ErrMalformed, "line 1: carriage return"},
		{"leading continuation", " A: b\r\n\r\n", Limits{}, ErrMalformed, "line 1: the first header line starts with white space"},
		{"white-space-only continuation", "A: b\r\n \t\r\nC: d\r\n\r\n", Limits{}, ErrMalformed, "line 2: header continuation line contains only white space"},
		{"too big", "A: b\r\n\r\n" + strings.Repeat("x", 100), small, ErrTooLarge, "the limit is 100"},
		{"too big after CRLF", "A: b\n\n" + strings.Repeat("\n", 48), small, ErrTooLarge, "with CRLF line ends"},
		{"too many fields", "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", small, ErrTooLarge, "line 4: more than 3 header fields"},
		{"long header line", "A: " + strings.Repeat("x", 18) + "\r\n\r\n", small, ErrTooLarge, "line 1: header line is 21 bytes"},
		{"long continuation line", "A: b\r\n " + strings.Repeat("x", 20) + "\r\n\r\n", small, ErrTooLarge, "line 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Parse([]byte(tc.in), tc.lim)
			if err == nil {
				t.Fatalf("Parse succeeded with %d fields, want error", len(a.Header))
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("error %q does not wrap %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("error %q does not contain %q", err, tc.text)
			}
		})
	}
}

func TestLimitsZeroMeansDefault(t *testing.T) {
	big := "A: b\r\n\r\n" + strings.Repeat("x", int(DefaultLimits().MaxBytes))
	if _, err := Parse([]byte(big), Limits{}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("zero Limits accepted a %d-byte article: err = %v", len(big), err)
	}
	exact := "A: b\r\n\r\n" + strings.Repeat("x", int(DefaultLimits().MaxBytes)-len("A: b\r\n\r\n")-2) + "\r\n"
	if _, err := Parse([]byte(exact), Limits{}); err != nil {
		t.Errorf("article of exactly MaxBytes refused: %v", err)
	}
}

func TestSetPrependDel(t *testing.T) {
	a := &Article{}
	a.Set("Subject", "first")
	a.Set("Newsgroups", "dst.reports")
	a.Header = append(a.Header, Field{"subject", " second"}, Field{"X", " y"}, Field{"SUBJECT", " third"})
	a.Set("SUBJECT", "replaced")
	wantNames := []string{"Subject", "Newsgroups", "X"}
	var names []string
	for _, f := range a.Header {
		names = append(names, f.Name)
	}
	// The replaced field keeps the position of the first occurrence and
	// takes the caller's spelling of the name.
	if !slices.Equal(names, []string{"SUBJECT", "Newsgroups", "X"}) {
		t.Errorf("names after Set = %q, want the order of %q", names, wantNames)
	}
	if got := a.Get("subject"); got != "replaced" {
		t.Errorf("Subject = %q", got)
	}
	a.Prepend("Path", "site-a.example!not-for-mail")
	if a.Header[0].Name != "Path" || a.Get("path") != "site-a.example!not-for-mail" {
		t.Errorf("Prepend did not put Path first: %q", a.Header)
	}
	a.Prepend("Received", "one")
	a.Prepend("Received", "two")
	if got := a.Values("received"); !slices.Equal(got, []string{"two", "one"}) {
		t.Errorf("Values(received) = %q", got)
	}
	a.Del("received")
	if got := a.Values("Received"); got != nil {
		t.Errorf("Values after Del = %q", got)
	}
	a.Body = []byte("hi\r\n")
	want := "Path: site-a.example!not-for-mail\r\nSUBJECT: replaced\r\nNewsgroups: dst.reports\r\nX: y\r\n\r\nhi\r\n"
	if got := string(a.Bytes()); got != want {
		t.Errorf("Bytes() = %q, want %q", got, want)
	}
}

func TestSetSanitisesValue(t *testing.T) {
	a := &Article{}
	a.Set("Subject", "evil\r\nBcc: victim@example\nX: y\r")
	a.Set("Folded", "a\r\n\tb")
	b, err := Parse(a.Bytes(), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Header) != 2 {
		t.Fatalf("header injection: got fields %q", b.Header)
	}
	if got, want := b.Get("Subject"), "evil Bcc: victim@example X: y"; got != want {
		t.Errorf("Subject = %q, want %q", got, want)
	}
	if got, want := b.Header[1].Value, " a\r\n\tb"; got != want {
		t.Errorf("folding not kept: %q, want %q", got, want)
	}
	if got, want := b.Get("Folded"), "a\tb"; got != want {
		t.Errorf("Folded unfolded = %q, want %q", got, want)
	}
}

func TestFieldUnfolded(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{" plain", "plain"},
		{"nospace", "nospace"},
		{"  \ttrim me \t", "trim me"},
		{" a\r\n b\r\n\tc", "a b\tc"},
		{"", ""},
	} {
		if got := (Field{"X", tc.raw}).Unfolded(); got != tc.want {
			t.Errorf("Unfolded(%q) = %q, want %q", tc.raw, got, tc.want)
		}
	}
}

// roundTrip checks the property FuzzParse relies on: whatever Parse
// accepts, it accepts again in the form Bytes writes, unchanged.
func roundTrip(t *testing.T, a *Article, lim Limits) {
	t.Helper()
	wire := a.Bytes()
	b, err := Parse(wire, lim)
	if err != nil {
		t.Fatalf("Parse(Bytes()) failed: %v\nwire: %q", err, wire)
	}
	if !slices.Equal(a.Header, b.Header) {
		t.Fatalf("header changed in round trip:\n%q\n%q", a.Header, b.Header)
	}
	if !bytes.Equal(a.Body, b.Body) {
		t.Fatalf("body changed in round trip:\n%q\n%q", a.Body, b.Body)
	}
	if !bytes.Equal(b.Bytes(), wire) {
		t.Fatalf("Bytes not stable:\n%q\n%q", wire, b.Bytes())
	}
}

func fuzzSeeds() []string {
	return []string{
		sample,
		"Subject: x\n folded\nFrom: a@b\n\nbody\nlast",
		"A: b\r\n\r\n",
		"A:\r\n\r\nx\r",
		"A: b\r\n\r\nx\ry\r\n\x00\n",
		"A: b\r\nnocolon\r\n\r\n",
		" A: b\r\n\r\n",
		"A: b\r\n \r\n\r\n",
		"\r\n",
		"A: b\r\r\n\r\n",
		"A: b\n\r\n\n",
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s))
	}
	lim := Limits{MaxBytes: 1 << 16, MaxHeaderFields: 20, MaxLineBytes: 200}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Parse(data, lim)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %q wraps neither ErrMalformed nor ErrTooLarge", err)
			}
			return
		}
		if len(a.Header) == 0 {
			t.Fatal("Parse succeeded without header fields")
		}
		if len(a.Body) > 0 && !bytes.HasSuffix(a.Body, []byte("\r\n")) {
			t.Fatalf("body does not end in CRLF: %q", a.Body)
		}
		roundTrip(t, a, lim)
	})
}

// FuzzSet checks that Set never produces an article Parse refuses, however
// hostile the value (short of NUL, which Parse always refuses in a header).
func FuzzSet(f *testing.F) {
	for _, s := range []string{"plain", "a\r\n b", "a\r\nBcc: x", "a\r\n \r\n b", "\r", "\n\n", "a\r\n\t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if strings.IndexByte(v, 0) >= 0 || len(v) > 500 {
			return
		}
		a := &Article{}
		a.Set("Subject", v)
		a.Set("Newsgroups", "dst.reports")
		b, err := Parse(a.Bytes(), DefaultLimits())
		if err != nil {
			t.Fatalf("Parse refused what Set wrote for %q: %v", v, err)
		}
		if len(b.Header) != 2 {
			t.Fatalf("value %q produced %d fields", v, len(b.Header))
		}
		roundTrip(t, b, DefaultLimits())
	})
}
