package report

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/dst-traps/dst/internal/article"
)

func TestNewCancelRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	a, err := NewCancel("site-a.example", "<r1@site-a.example>", netip.MustParseAddr("203.0.113.7"), now)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"Path": "site-a.example!not-for-mail", "From": "DST <dst@site-a.example>", "Newsgroups": Newsgroup,
		"Subject": "cmsg cancel <r1@site-a.example>", "Control": "cancel <r1@site-a.example>",
		"Date": "Sun, 29 Nov 2026 10:00:00 +0000", "MIME-Version": "1.0", "Content-Type": "text/plain; charset=us-ascii",
	} {
		if got := a.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if want := "site-a.example withdraws its report <r1@site-a.example> about 203.0.113.7.\r\n"; string(a.Body) != want {
		t.Errorf("body %q, want %q", a.Body, want)
	}
	p, err := article.Parse(a.Bytes(), article.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if target, err := ParseCancel(p); err != nil || target != "<r1@site-a.example>" {
		t.Errorf("ParseCancel = %q, %v", target, err)
	}
	if _, err := NewCancel("site-a.example", "not an id", netip.Addr{}, now); err == nil {
		t.Error("NewCancel accepted a target that is not a Message-ID")
	}
}

func TestParseCancelRefuses(t *testing.T) {
	for _, tc := range []struct{ control, subject string }{
		{"newgroup dst.other", "cmsg newgroup dst.other"},
		{"cancel", "cmsg cancel"},
		{"cancel junk", "cmsg cancel junk"},
		{"cancel <a@b>", "cmsg cancel <c@d>"},
		{"cancel <a@b> <c@d>", "cmsg cancel <a@b> <c@d>"},
	} {
		a := &article.Article{}
		a.Set("Control", tc.control)
		a.Set("Subject", tc.subject)
		if target, err := ParseCancel(a); !errors.Is(err, ErrNotCancel) {
			t.Errorf("ParseCancel(Control: %s, Subject: %s) = %q, %v; want ErrNotCancel", tc.control, tc.subject, target, err)
		}
	}
}

// FuzzParseCancel: ParseCancel never panics, and what it accepts names a
// valid Message-ID that NewCancel turns back into an equal Control field.
func FuzzParseCancel(f *testing.F) {
	f.Add([]byte("Control: cancel <r1@site-a.example>\r\nSubject: cmsg cancel <r1@site-a.example>\r\n\r\n"))
	f.Add([]byte("Control: CANCEL   <r1@x>\r\nSubject: cmsg cancel <r1@x>\r\n\r\n"))
	f.Add([]byte("Control: newgroup dst.reports\r\n\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		a, err := article.Parse(raw, article.DefaultLimits())
		if err != nil {
			return
		}
		target, err := ParseCancel(a)
		if err != nil {
			return
		}
		if !article.ValidMessageID(target) {
			t.Fatalf("accepted target %q is not a Message-ID", target)
		}
		c, err := NewCancel("site.example", target, netip.Addr{}, time.Unix(0, 0))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := ParseCancel(c); err != nil || got != target {
			t.Fatalf("round trip of %q: %q, %v", target, got, err)
		}
	})
}
