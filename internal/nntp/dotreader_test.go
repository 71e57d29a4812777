package nntp

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadArticle(t *testing.T) {
	long := strings.Repeat("x", 100)
	for _, tc := range []struct {
		name, wire string
		max        int64
		want       string // the article, when accepted
		problem    string // the reason, when refused after reading
		rest       string // what must be left unread
	}{
		{name: "simple", wire: "a\r\nb\r\n.\r\nNEXT", want: "a\r\nb\r\n", rest: "NEXT"},
		{name: "empty", wire: ".\r\n", want: ""},
		{name: "unstuffing", wire: "..\r\n...\r\n..x\r\nx.\r\n.\r\n", want: ".\r\n..\r\n.x\r\nx.\r\n"},
		{name: "long lines in fragments", wire: long + "\r\n." + long + "\r\n.\r\n", want: long + "\r\n" + long + "\r\n"},
		{name: "CRLF across fragments", wire: strings.Repeat("y", 15) + "\r\n.\r\n", want: strings.Repeat("y", 15) + "\r\n"},
		{name: "bare LF", wire: "a\nb\r\n.\r\n", problem: "bare LF"},
		{name: "bare LF empty line", wire: "a\r\n\n.\r\n", problem: "bare LF"},
		{name: "bare CR", wire: "a\rb\r\n.\r\n", problem: "bare CR"},
		{name: "bare CR at a fragment end", wire: strings.Repeat("z", 15) + "\rz\r\n.\r\n", problem: "bare CR"},
		{name: "CR CR LF", wire: "a\r\r\n.\r\n", problem: "bare CR"},
		{name: "dot LF is not the end", wire: "a\r\n.\n.\r\nNEXT", problem: "bare LF", rest: "NEXT"},
		{name: "dot CR is not the end", wire: "a\r\n.\rQUIT\r\n.\r\n", problem: "bare CR"},
		{name: "dot space is not the end", wire: ". \r\n.\r\n", want: " \r\n"},
		{name: "at the limit", wire: "12345678\r\n.\r\n", max: 10, want: "12345678\r\n"},
		{name: "over the limit", wire: "123456789\r\n" + long + "\r\n.\r\nNEXT", max: 10, problem: "larger than 10", rest: "NEXT"},
		{name: "stuffed dot not counted", wire: "..2345678\r\n.\r\n", max: 10, want: ".2345678\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.max == 0 {
				tc.max = 1 << 20
			}
			// The smallest buffer bufio allows, so that lines come in
			// fragments.
			r := bufio.NewReaderSize(strings.NewReader(tc.wire), 16)
			art, err := readArticle(r, tc.max)
			var ae *articleError
			switch {
			case tc.problem != "":
				if !errors.As(err, &ae) || !strings.Contains(ae.reason, tc.problem) {
					t.Fatalf("err = %v, want an articleError about %q", err, tc.problem)
				}
				if art != nil {
					t.Errorf("refused article returned as %q", art)
				}
			case err != nil:
				t.Fatalf("err = %v", err)
			case string(art) != tc.want:
				t.Errorf("got %q, want %q", art, tc.want)
			}
			rest, _ := io.ReadAll(r)
			if string(rest) != tc.rest {
				t.Errorf("left %q unread, want %q", rest, tc.rest)
			}
		})
	}
}

func TestReadArticleTruncated(t *testing.T) {
	for _, wire := range []string{"", "a\r\n", "a\r\n.", "a\r\n.\r", "a\r\n..\r\n"} {
		_, err := readArticle(bufio.NewReaderSize(strings.NewReader(wire), 16), 1<<20)
		var ae *articleError
		if !errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ae) {
			t.Errorf("%q: err = %v, want io.ErrUnexpectedEOF", wire, err)
		}
	}
}
