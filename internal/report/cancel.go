package report

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/dst-traps/dst/internal/article"
)

// A cancel is the control article with which the origin of a report
// withdraws it (RFC 5537 §5.3, docs/PROTOCOL.md §5). Only the
// origin's signature makes it count; the receiving dstd checks that.

// ErrNotCancel: the article is a control message, but not a cancel, or its
// Control field cannot be read.
var ErrNotCancel = errors.New("not a cancel control message")

// NewCancel builds the control article with which site withdraws its report
// target about ip, ready to be signed: dkim.Signer.Sign covers Control
// because it is present.
func NewCancel(site, target string, ip netip.Addr, now time.Time) (*article.Article, error) {
	if !article.ValidMessageID(target) {
		return nil, fmt.Errorf("cannot cancel %q: not a Message-ID", target)
	}
	a := &article.Article{}
	a.Set("Path", site+"!"+article.DefaultPathTail)
	a.Set("From", "DST <dst@"+site+">")
	a.Set("Newsgroups", Newsgroup)
	a.Set("Subject", "cmsg cancel "+target)
	a.Set("Control", "cancel "+target)
	a.Set("Message-ID", article.NewMessageID(site))
	a.Set("Date", now.UTC().Format(time.RFC1123Z))
	a.Set("MIME-Version", "1.0")
	a.Set("Content-Type", "text/plain; charset=us-ascii")
	what := "report " + target
	if ip.IsValid() {
		what += " about " + ip.String()
	}
	a.Body = []byte(site + " withdraws its " + what + ".\r\n")
	return a, nil
}

// IsControl says whether a is a control message of any kind.
func IsControl(a *article.Article) bool { return a.Get("Control") != "" }

// ParseCancel returns the Message-ID a cancel withdraws. It refuses any
// other control message, and a Subject that names another article than
// Control does (RFC 5536 §3.1.4 wants them to agree, and a reader that
// trusts the Subject must not be misled).
func ParseCancel(a *article.Article) (string, error) {
	verb, arg, _ := strings.Cut(a.Get("Control"), " ")
	if !strings.EqualFold(verb, "cancel") {
		return "", fmt.Errorf("%w: Control: %.60q (only cancel is supported)", ErrNotCancel, a.Get("Control"))
	}
	target := strings.TrimSpace(arg)
	if !article.ValidMessageID(target) {
		return "", fmt.Errorf("%w: Control: cancel %.60q does not name a Message-ID", ErrNotCancel, target)
	}
	if s := a.Get("Subject"); s != "" && s != "cmsg cancel "+target {
		return "", fmt.Errorf("%w: Subject %.60q does not match Control: cancel %s", ErrNotCancel, s, target)
	}
	return target, nil
}
