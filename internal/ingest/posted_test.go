package ingest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/dst-traps/dst/internal/article"
	"github.com/dst-traps/dst/internal/metrics"
	"github.com/dst-traps/dst/internal/nntp"
	"github.com/dst-traps/dst/internal/report"
)

// A control article that arrives by POST or through the spool would be
// signed with the site's key, so every peer would take it for the site's
// own cancel. It must be refused, whatever the spelling of the field, and
// change nothing: no delisting, nothing for the peers.
func TestPostedControlRefused(t *testing.T) {
	f := newFixture(t)
	const feedQueue = "feed-site-b.test"
	f.subscribeFeed(t, feedQueue, "site-b.test")
	f.in.o.Metrics = metrics.New(prometheus.NewRegistry())
	ip := netip.MustParseAddr("203.0.113.7")

	rep := f.report(t, ip.String(), f.now)
	id, v := f.in.Inject(context.Background(), rep.Bytes(), "test")
	if v.Kind != Accepted {
		t.Fatalf("report: %+v", v)
	}
	depth := func(q string) int {
		t.Helper()
		n, err := f.db.QueueDepth(q)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if depth(feedQueue) != 1 || depth("log") != 1 {
		t.Fatalf("after the report: feed queue %d, log queue %d, want 1 and 1", depth(feedQueue), depth("log"))
	}

	// The cancel dstctl cancel would make, as a poster would send it.
	cancel := func(edit func(*article.Article)) []byte {
		a, err := report.NewCancel("site-a.test", id, ip, f.now)
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			edit(a)
		}
		return a.Bytes()
	}
	// An ordinary report with one field added.
	withField := func(name, value string) []byte {
		a := f.report(t, "203.0.113.9", f.now)
		a.Set(name, value)
		return a.Bytes()
	}
	h := NNTPHandler(f.in)
	sess := &nntp.Session{ID: 7, Remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, CanPost: true}
	for _, tc := range []struct {
		name  string
		raw   []byte
		field string
	}{
		{"Control: cancel", cancel(nil), "Control"},
		{"CONTROL: cancel", cancel(func(a *article.Article) { renameField(a, "Control", "CONTROL") }), "Control"},
		{"control: CANCEL", cancel(func(a *article.Article) {
			renameField(a, "Control", "control")
			a.Set("control", "CANCEL "+id)
		}), "Control"},
		{"cOnTrOl, no Subject", cancel(func(a *article.Article) {
			renameField(a, "Control", "cOnTrOl")
			a.Del("Subject")
		}), "Control"},
		{"empty Control", withField("Control", ""), "Control"},
		{"Control: newgroup", withField("Control", "newgroup dst.other"), "Control"},
		{"Also-Control", withField("Also-Control", "cancel "+id), "Also-Control"},
		{"also-control", withField("also-control", "checkgroups"), "Also-Control"},
		{"Supersedes", withField("Supersedes", id), "Supersedes"},
		{"SUPERSEDES", withField("SUPERSEDES", id), "Supersedes"},
		{"Approved", withField("Approved", "moderator@site-a.test"), "Approved"},
		{"Subject: cmsg cancel", cancel(func(a *article.Article) { a.Del("Control") }), "Subject"},
		{"Subject: CMSG cancel", withField("Subject", "CMSG cancel "+id), "Subject"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Through Inject (the spool) and through POST (dstc or any
			// local user on the loopback port).
			gotID, v := f.in.Inject(context.Background(), tc.raw, "spool")
			if v.Kind != Refused || v.Refusal != "control" || gotID != "" {
				t.Errorf("Inject = %q %+v, want refused as control", gotID, v)
			}
			if !strings.Contains(v.Reason, RefusedControl) || !strings.Contains(v.Reason, "has a "+tc.field) {
				t.Errorf("reason %q does not say what to do and which field", v.Reason)
			}
			nv := h.Post(context.Background(), sess, tc.raw)
			if nv.Kind != nntp.Refuse || !strings.Contains(nv.Reason, "dstctl cancel") {
				t.Errorf("POST = %+v, want refused (441) naming dstctl cancel", nv)
			}
		})
	}

	if _, ok, _ := f.db.Lookup(ip); !ok {
		t.Error("a posted control article delisted the report")
	}
	if removed := f.removed(); len(removed) != 0 {
		t.Errorf("the store told of removals %v", removed)
	}
	if depth(feedQueue) != 1 || depth("log") != 1 {
		t.Errorf("a posted control article queued something: feed queue %d, log queue %d, want 1 and 1", depth(feedQueue), depth("log"))
	}
	if seen, _ := f.db.Seen(id); !seen {
		t.Error("the report left the history")
	}
	var m dto.Metric
	if err := f.in.o.Metrics.ReportsRefused.WithLabelValues("control").Write(&m); err != nil {
		t.Fatal(err)
	}
	if n := m.GetCounter().GetValue(); n != 2*13 {
		t.Errorf("refusals counted as control: %v, want %d", n, 2*13)
	}
	// A refused control article's Message-ID is not burnt: the poster
	// chose it.
	c := cancel(nil)
	ca, _ := article.Parse(c, article.DefaultLimits())
	if seen, _ := f.db.Seen(ca.Get("Message-ID")); seen {
		t.Error("the refused control article's Message-ID was recorded")
	}

	// The administrator's path still cancels.
	r, err := f.in.InjectCancel(context.Background(), id)
	if err != nil || !r.Delisted {
		t.Fatalf("InjectCancel after the refusals = %+v, %v", r, err)
	}
	if depth(feedQueue) != 2 {
		t.Errorf("dstctl cancel's article not queued for the peer: feed queue %d, want 2", depth(feedQueue))
	}
}

// Peers' cancels, signed by their origin, are still applied: the refusal is
// for the local posting path only.
func TestRelayedCancelStillApplied(t *testing.T) {
	f := newFixture(t)
	rid, raw := f.relayed(t, "203.0.113.7", f.now, nil)
	if v := f.in.Receive(context.Background(), rid, raw, "site-b.test"); v.Kind != Accepted {
		t.Fatalf("report: %+v", v)
	}
	cid, craw := f.cancelBy(t, f.peer, "site-b.test", rid, nil)
	if v := f.in.Receive(context.Background(), cid, craw, "site-b.test"); v.Kind != Accepted {
		t.Fatalf("the origin's cancel from a peer = %+v, want accepted", v)
	}
	if _, ok, _ := f.db.Lookup(netip.MustParseAddr("203.0.113.7")); ok {
		t.Error("still listed after the origin's cancel")
	}
}

// Ordinary reports are not caught by the check: a Subject that merely
// contains "cmsg", or fields whose names start like the refused ones.
func TestPostedReportNotTakenForControl(t *testing.T) {
	f := newFixture(t)
	for i, edit := range []func(*article.Article){
		func(a *article.Article) { a.Set("Subject", "trap hit cmsg cancel") },
		func(a *article.Article) { a.Set("Subject", "cmsg") },
		func(a *article.Article) { a.Set("X-Control", "cancel <a@b>") },
		func(a *article.Article) { a.Set("Controls", "x") },
	} {
		a := f.report(t, fmt.Sprintf("203.0.113.%d", 1+i), f.now)
		edit(a)
		if _, v := f.in.Inject(context.Background(), a.Bytes(), "test"); v.Kind != Accepted {
			t.Errorf("report %d (%q) = %+v, want accepted", i, a.Header, v)
		}
	}
}

// renameField renames the fields called from (any case) to to, keeping
// their values: the case of a field name is the poster's choice.
func renameField(a *article.Article, from, to string) {
	for i := range a.Header {
		if strings.EqualFold(a.Header[i].Name, from) {
			a.Header[i].Name = to
		}
	}
}

// A posted article that cannot be signed as it is (a field the signature
// must cover is missing, or repeated) is the poster's mistake: refused for
// good, not deferred, or a spooled copy would be retried for ever. An
// article that will do is still signed and stored.
func TestPostedUnsignableRefused(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name string
		edit func(*article.Article)
	}{
		{"no Subject", func(a *article.Article) { a.Del("Subject") }},
		{"no Content-Type", func(a *article.Article) { a.Del("Content-Type") }},
		{"two Subjects", func(a *article.Article) { a.Prepend("Subject", "again") }},
	} {
		a := f.report(t, "203.0.113.9", f.now)
		tc.edit(a)
		_, v := f.in.Inject(context.Background(), a.Bytes(), "test")
		if v.Kind != Refused || !strings.Contains(v.Reason, "cannot sign the article") {
			t.Errorf("%s: %+v, want refused as unsignable", tc.name, v)
		}
	}
	if _, v := f.in.Inject(context.Background(), f.report(t, "203.0.113.9", f.now).Bytes(), "test"); v.Kind != Accepted {
		t.Errorf("a whole report after them: %+v, want accepted", v)
	}
}

// The policy sees the Source-IP as the report wrote it: no IPv6 spelling
// of a non-global address gets listed (issue: ::7f00:1 was).
func TestNonGlobalSpellingsRefused(t *testing.T) {
	f := newFixture(t)
	for _, ip := range []string{"::7f00:1", "::a01:203", "::2", "::ffff:0:a01:203", "4000::1", "e000::1", "2002:a01:203::1", "64:ff9b::a01:203"} {
		_, v := f.in.Inject(context.Background(), f.report(t, ip, f.now).Bytes(), "test")
		if v.Kind != Refused || v.Refusal != "policy" {
			t.Errorf("Source-IP %s: %+v, want refused by the policy", ip, v)
		}
	}
}
