// Package report turns a trap hit into the article that DST sites exchange
// (docs/PROTOCOL.md §2): netnews headers around an RFC 5965 feedback
// report.
package report

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/dst-traps/dst/internal/arf"
	"github.com/dst-traps/dst/internal/article"
)

// Newsgroup is the group every report is posted to.
const Newsgroup = "dst.reports"

// Hit is one message that reached a trap.
type Hit struct {
	SourceIP netip.Addr
	Arrival  time.Time
	// Host is the name of the host where the trap was hit: the
	// Reporting-MTA, and the domain of the Message-ID the client proposes.
	Host string
	// UserAgent names the reporting program, as "dstc/0.1.0".
	UserAgent string
	// Message is the trapped message, whole or its header section only,
	// already redacted (internal/redact): the report carries it to every
	// site as it is.
	Message     []byte
	HeadersOnly bool
	// TrapHMAC names the trap by its keyed hash (redact.TrapHMAC), for
	// the DST-Trap-HMAC field; empty when the site has no trap secret.
	TrapHMAC string
	// Class is what kind of hit this is (internal/classify), for the
	// DST-Class field; empty writes none, which sites read as spam.
	Class string
}

// New builds the report article a trap client submits with POST. It carries
// a Message-ID so that a report spooled after an uncertain POST and
// submitted again is a duplicate, not a second report (RFC 5537 §3.4 lets
// the posting agent supply it); the injecting dstd adds Path and signs.
func New(h Hit) (*article.Article, error) {
	if !h.SourceIP.IsValid() {
		return nil, fmt.Errorf("report without a source address")
	}
	host := strings.TrimSuffix(h.Host, ".")
	if host == "" {
		host = "localhost"
	}
	r := &arf.Report{
		SourceIP:     h.SourceIP,
		ArrivalDate:  h.Arrival,
		ReportingMTA: host,
		UserAgent:    h.UserAgent,
		Message:      h.Message,
		HeadersOnly:  h.HeadersOnly,
		TrapHMAC:     h.TrapHMAC,
		Class:        h.Class,
	}
	ctype, body, err := r.Build()
	if err != nil {
		return nil, fmt.Errorf("building the feedback report: %w", err)
	}
	a := &article.Article{Body: body}
	a.Set("From", "DST <dst@"+host+">")
	a.Set("Newsgroups", Newsgroup)
	a.Set("Subject", "trap hit "+h.SourceIP.String())
	a.Set("Message-ID", article.NewMessageID(host))
	a.Set("Date", h.Arrival.Format(time.RFC1123Z))
	a.Set("User-Agent", h.UserAgent)
	a.Set("MIME-Version", "1.0")
	a.Set("Content-Type", ctype)
	return a, nil
}
