package ingest

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/dst-traps/dst/internal/article"
	"github.com/dst-traps/dst/internal/dkim"
	"github.com/dst-traps/dst/internal/report"
)

// cancelBy is a cancel of target signed by signer as site.
func (f *fixture) cancelBy(t *testing.T, signer *dkim.Signer, site, target string, edit func(*article.Article)) (string, []byte) {
	t.Helper()
	a, err := report.NewCancel(site, target, netip.Addr{}, f.now)
	if err != nil {
		t.Fatal(err)
	}
	a.Del("Path")
	if edit != nil {
		edit(a)
	}
	signed, err := signer.Sign(a.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return a.Get("Message-ID"), append([]byte("Path: "+site+"!not-for-mail\r\n"), signed...)
}

func TestReceiveCancel(t *testing.T) {
	f := newFixture(t)
	ip := netip.MustParseAddr("203.0.113.7")
	rid, raw := f.relayed(t, "203.0.113.7", f.now, nil)
	if v := f.in.Receive(context.Background(), rid, raw, "site-b.test"); v.Kind != Accepted {
		t.Fatalf("report: %+v", v)
	}
	// Site a (this site's key) may not cancel site b's report.
	own := f.in.o.Signer
	cid, craw := f.cancelBy(t, own, "site-a.test", rid, nil)
	if v := f.in.Receive(context.Background(), cid, craw, "site-c.test"); v.Kind != Refused || v.Refusal != "cancel-origin" {
		t.Errorf("cancel by another site = %+v, want refused", v)
	}
	if _, ok, _ := f.db.Lookup(ip); !ok {
		t.Fatal("another site's cancel delisted the address")
	}

	// An unsigned Control field is refused by the signature check.
	cid, craw = f.cancelBy(t, f.peer, "site-b.test", rid, nil)
	forged := strings.Replace(string(craw), "Control: cancel", "Control: cancel <x@y>", 1)
	if v := f.in.Receive(context.Background(), cid, []byte(forged), "site-c.test"); v.Kind != Refused {
		t.Errorf("altered Control = %+v, want refused", v)
	}
	// The real one, with a new Message-ID, works.
	cid, craw = f.cancelBy(t, f.peer, "site-b.test", rid, nil)
	if v := f.in.Receive(context.Background(), cid, craw, "site-c.test"); v.Kind != Accepted {
		t.Fatalf("origin's cancel = %+v", v)
	}
	if _, ok, _ := f.db.Lookup(ip); ok {
		t.Error("still listed after the origin's cancel")
	}
	if removed := f.removed(); len(removed) != 1 || removed[0] != ip {
		t.Errorf("the store told of removals %v, want %s", removed, ip)
	}
	if v := f.in.Receive(context.Background(), cid, craw, "site-c.test"); v.Kind != Duplicate {
		t.Errorf("same cancel again = %+v, want duplicate", v)
	}
}

func TestReceiveCancelBeforeReport(t *testing.T) {
	f := newFixture(t)
	rid, raw := f.relayed(t, "203.0.113.7", f.now, nil)
	cid, craw := f.cancelBy(t, f.peer, "site-b.test", rid, nil)
	if v := f.in.Receive(context.Background(), cid, craw, "site-c.test"); v.Kind != Accepted {
		t.Fatalf("cancel before its report = %+v", v)
	}
	if v := f.in.Receive(context.Background(), rid, raw, "site-b.test"); v.Kind != Refused || v.Refusal != "cancelled" {
		t.Errorf("cancelled report = %+v, want refused as cancelled", v)
	}
	if _, ok, _ := f.db.Lookup(netip.MustParseAddr("203.0.113.7")); ok {
		t.Error("a cancelled report listed its address")
	}
}

func TestReceiveOtherControl(t *testing.T) {
	f := newFixture(t)
	cid, craw := f.cancelBy(t, f.peer, "site-b.test", "<r@site-b.test>", func(a *article.Article) {
		a.Set("Control", "newgroup dst.other")
	})
	if v := f.in.Receive(context.Background(), cid, craw, "site-b.test"); v.Kind != Refused || v.Refusal != "malformed" {
		t.Errorf("newgroup = %+v, want refused", v)
	}
}

func TestInjectCancel(t *testing.T) {
	f := newFixture(t)
	a := f.report(t, "203.0.113.7", f.now)
	id, v := f.in.Inject(context.Background(), a.Bytes(), "test")
	if v.Kind != Accepted {
		t.Fatal(v)
	}
	rid, raw := f.relayed(t, "203.0.113.8", f.now, nil)
	f.in.Receive(context.Background(), rid, raw, "site-b.test")

	r, err := f.in.InjectCancel(context.Background(), id)
	if err != nil || !r.Delisted || r.IP != netip.MustParseAddr("203.0.113.7") {
		t.Fatalf("InjectCancel = %+v, %v", r, err)
	}
	stored, _ := f.db.Article(r.MessageID)
	st, err := article.Parse(stored, article.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if st.Get("Control") != "cancel "+id || st.Get("Subject") != "cmsg cancel "+id ||
		!strings.Contains(strings.ToLower(st.Get("DKIM-Signature")), "control") || !strings.Contains(string(st.Body), "203.0.113.7") {
		t.Errorf("cancel article:\n%s", stored)
	}
	for _, bad := range []string{id, rid, "<never@site-a.test>", "junk"} {
		if _, err := f.in.InjectCancel(context.Background(), bad); !errors.Is(err, ErrCannotCancel) {
			t.Errorf("InjectCancel(%s) = %v, want ErrCannotCancel", bad, err)
		}
	}
}
