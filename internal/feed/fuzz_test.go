package feed

import (
	"strconv"
	"testing"
)

// FuzzRefusal feeds RefusalReason a peer's answer, which any peer (or
// anyone in the middle of a plain connection) writes as it likes: the
// reason is always one of the four an answer can give, a 435 or 438 is
// always a duplicate, and what a kept report remembers of the refusal is
// bounded and gives the reason back.
func FuzzRefusal(f *testing.F) {
	for _, s := range []struct {
		code int
		text string
	}{
		{439, "signature: no key in the keyring for the signer (d=a.test s=dst)"},
		{439, "signature: DKIM signature does not verify"},
		{439, "Date 2031-01-01T00:00:00Z is in the future"},
		{439, "Date 2020-01-01T00:00:00Z is older than the history (720h0m0s)"},
		{438, "already seen"},
		{435, ""},
		{437, "policy: 192.0.2.1 is on the allow list"},
		{439, "\xff\xfe NO KEY \x00"},
		{-1, "clock skew"},
	} {
		f.Add(s.code, s.text)
	}
	f.Fuzz(func(t *testing.T, code int, text string) {
		reason := RefusalReason(code, text)
		switch reason {
		case ReasonDuplicate, ReasonKeyring, ReasonClock, ReasonOther:
		default:
			t.Fatalf("RefusalReason(%d, %q) = %q, not a reason an answer gives", code, text, reason)
		}
		if (code == 435 || code == 438) && reason != ReasonDuplicate {
			t.Errorf("RefusalReason(%d, %q) = %s, want duplicate", code, text, reason)
		}
		by := keptBy(reason, code, text)
		if got := keptReason(by); got != reason {
			t.Errorf("keptReason(keptBy(%s, %d, %q)) = %q", reason, code, text, got)
		}
		if max := len(reason) + 1 + len(strconv.Itoa(code)) + 1 + maxKeptText; len(by) > max {
			t.Errorf("keptBy kept %d bytes, at most %d expected", len(by), max)
		}
	})
}
