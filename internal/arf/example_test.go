package arf_test

import (
	"fmt"
	"log"
	"net/netip"
	"time"

	"github.com/dst-traps/dst/internal/arf"
	"github.com/dst-traps/dst/internal/article"
)

// The path of a report from dstc to dstd: an ARF body inside a netnews
// article, read back on the other side.
func Example() {
	r := &arf.Report{
		SourceIP:     netip.MustParseAddr("203.0.113.7"),
		ArrivalDate:  time.Date(2026, 11, 28, 10, 10, 10, 0, time.UTC),
		ReportingMTA: "mx1.site-a.example",
		UserAgent:    "dstc/0.1",
		Message:      []byte("From: <spammer@example.net>\nSubject: Earn money\n\nSpam.\n"),
	}
	ct, body, err := r.Build()
	if err != nil {
		log.Fatal(err)
	}
	a := &article.Article{Body: body}
	a.Set("From", "DST <dst@site-a.example>")
	a.Set("Newsgroups", "dst.reports")
	a.Set("Subject", "trap hit "+r.SourceIP.String())
	a.Set("MIME-Version", "1.0")
	a.Set("Content-Type", ct)
	wire := a.Bytes()

	// At dstd.
	got, err := article.Parse(wire, article.DefaultLimits())
	if err != nil {
		log.Fatal(err)
	}
	rep, err := arf.Parse(got.Get("Content-Type"), got.Body)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rep.SourceIP, rep.ArrivalDate.UTC().Format(time.RFC3339), rep.ReportingMTA, rep.UserAgent)
	fmt.Printf("%q\n", rep.Message)
	// Output:
	// 203.0.113.7 2026-11-28T10:10:10Z mx1.site-a.example dstc/0.1
	// "From: <spammer@example.net>\r\nSubject: Earn money\r\n\r\nSpam.\r\n"
}
