package report

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/arf"
	"github.com/dst-traps/dst/internal/article"
)

func TestNewRoundTrip(t *testing.T) {
	msg := []byte("Received: from x (unknown [2001:db8::7]) by mx1 (Postfix); date\r\nSubject: hi\r\n")
	a, err := New(Hit{
		SourceIP:    netip.MustParseAddr("2001:db8::7"),
		Arrival:     time.Date(2026, 11, 29, 2, 0, 0, 0, time.UTC),
		Host:        "trap.example.net.",
		UserAgent:   "dstc/test",
		Message:     msg,
		HeadersOnly: true,
		TrapHMAC:    "hmac-sha256:75b8ce8ee971c9d757d3f7fc5e81ca5f7b33052b084b7fc1988e2b850c0196dd",
		Class:       "backscatter",
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := article.Parse(a.Bytes(), article.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if got.Get("Newsgroups") != Newsgroup || got.Get("Subject") != "trap hit 2001:db8::7" ||
		!strings.HasSuffix(got.Get("Message-ID"), "@trap.example.net>") || got.Get("From") != "DST <dst@trap.example.net>" {
		t.Errorf("headers: %q", got.Header)
	}
	r, err := arf.Parse(got.Get("Content-Type"), got.Body)
	if err != nil {
		t.Fatal(err)
	}
	if r.SourceIP.String() != "2001:db8::7" || !r.HeadersOnly || r.ReportingMTA != "trap.example.net" ||
		r.TrapHMAC != "hmac-sha256:75b8ce8ee971c9d757d3f7fc5e81ca5f7b33052b084b7fc1988e2b850c0196dd" || r.OriginalRcptTo != "" || r.Class != "backscatter" {
		t.Errorf("report: %+v", r)
	}
}

func TestNewNeedsAnAddress(t *testing.T) {
	if _, err := New(Hit{Arrival: time.Now(), Host: "h", UserAgent: "u", Message: []byte("a: b\r\n")}); err == nil {
		t.Error("New built a report without a source address")
	}
}
