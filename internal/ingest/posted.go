package ingest

import (
	"strings"

	"github.com/dst-traps/dst/internal/article"
)

// Only the administrator cancels. Inject signs what it is given with the
// site's key, and every peer believes that key about the site's own
// reports, so a control article that came in by POST or through the spool
// would be a cancel the site itself had issued: it would delist here and
// at every peer. Whoever can reach the local posting path (dstc, any local
// user on the loopback port) can therefore post reports, never control
// articles. Cancels are made by InjectCancel, behind dstctl cancel and the
// admin socket. Articles relayed by peers are signed by their origin and
// are judged by accept as before.

// RefusedControl is the reason given to a poster whose article is, or
// could be taken for, a control article.
const RefusedControl = "control articles may not be posted; cancel a report with dstctl cancel on the dstd host"

// controlField returns the name of the first field for which a news
// server would act on a as a control article (or as a moderator's
// approval), and "" for an ordinary report. Names are
// compared without regard to case (RFC 5322 §1.2.2) and a field counts
// whatever its value, even empty: the test is deliberately wider than
// report.IsControl, which decides how a signed article is handled, because
// here anything doubtful is refused and dstc never sends these fields.
//
//   - Control (RFC 5536 §3.2.3): the control article itself.
//   - Also-Control (son-of-RFC-1036, published as RFC 1849): an article
//     that is also a control message; some servers still honour it.
//   - Supersedes (RFC 5536 §3.2.12): withdraws the article it names, as a
//     cancel would: a cancel in disguise.
//   - Approved (RFC 5536 §3.2.1): a moderator's approval, which news
//     servers require for some control messages and for moderated groups;
//     the site must not vouch for one it never gave.
//   - a Subject starting with "cmsg ": RFC 1036 §3 made that a control
//     message even without a Control field, and old software still may.
func controlField(a *article.Article) string {
	// The fields in order of how plainly they make a control article,
	// so that a cancel is reported for its Control field, not its Subject.
	for _, name := range []string{"Control", "Also-Control", "Supersedes", "Approved"} {
		for _, f := range a.Header {
			if strings.EqualFold(f.Name, name) {
				return name
			}
		}
	}
	for _, f := range a.Header {
		if strings.EqualFold(f.Name, "Subject") {
			if s := f.Unfolded(); len(s) >= 5 && strings.EqualFold(s[:5], "cmsg ") {
				return "Subject"
			}
		}
	}
	return ""
}

// refuseControl counts and logs a posted control article. Its Message-ID
// is not recorded as refused: the poster chose it, and a history entry
// would only let a local user block that Message-ID for others.
func (in *Ingester) refuseControl(a *article.Article, field, poster string) Verdict {
	what := "a " + field + " field"
	if field == "Subject" {
		what = `a Subject starting with "cmsg "`
	}
	v := refused("control", "%s (the article has %s)", RefusedControl, what)
	in.count(v)
	in.noteRefusal(a.Get("Message-ID"), poster, v)
	value := a.Get(field)
	if len(value) > 200 {
		value = value[:200] + "..."
	}
	in.o.Log.Warn("posted control article refused: only dstctl cancel may withdraw a report",
		"from", poster, "field", field, "value", value, "message_id", a.Get("Message-ID"))
	return v
}
