package ingest

import (
	"context"
	"testing"
)

// TestOnRefuse: every refusal, and nothing else, reaches Options.OnRefuse
// (the status page's last refusals), with who sent it and why.
func TestOnRefuse(t *testing.T) {
	f := newFixture(t)
	var got []Refusal
	f.in.o.OnRefuse = func(r Refusal) { got = append(got, r) }

	id, raw := f.relayed(t, "203.0.113.7", f.now, nil)
	if v := f.in.Receive(context.Background(), id, raw, "site-b.test"); v.Kind != Accepted {
		t.Fatalf("Receive = %+v", v)
	}
	if v := f.in.Receive(context.Background(), id, raw, "site-b.test"); v.Kind != Duplicate {
		t.Fatalf("Receive again = %+v", v)
	}
	// Signed, then changed: the signature no longer verifies.
	bad, badRaw := f.relayed(t, "203.0.113.8", f.now, nil)
	badRaw = append(badRaw, "tampered\r\n"...)
	if v := f.in.Receive(context.Background(), bad, badRaw, "site-b.test"); v.Kind != Refused {
		t.Fatalf("Receive of a tampered article = %+v", v)
	}
	posted := f.report(t, "203.0.113.9", f.now)
	posted.Set("Control", "cancel <x@y>")
	if _, v := f.in.Inject(context.Background(), posted.Bytes(), "local poster"); v.Kind != Refused {
		t.Fatalf("Inject of a control article = %+v", v)
	}
	if len(got) != 2 {
		t.Fatalf("OnRefuse got %+v, want the tampered article and the control article", got)
	}
	if got[0].MessageID != bad || got[0].From != "site-b.test" || got[0].Label != "signature" || got[0].Reason == "" || !got[0].Time.Equal(f.now) {
		t.Errorf("first refusal = %+v", got[0])
	}
	if got[1].From != "local poster" || got[1].Label != "control" {
		t.Errorf("second refusal = %+v", got[1])
	}
}

// TestDuplicateRefusedFirst: a relayed copy of a stored report is refused
// from the history before anything else is done with it. A feed sends
// reports with TAKETHIS without asking first (no CHECK), so in a mesh
// most copies a site receives are repeats: they must not cost a parse or
// a DKIM verification. The repeat here could not even be parsed.
func TestDuplicateRefusedFirst(t *testing.T) {
	f := newFixture(t)
	id, raw := f.relayed(t, "203.0.113.7", f.now, nil)
	if v := f.in.Receive(context.Background(), id, raw, "site-b.test"); v.Kind != Accepted {
		t.Fatalf("Receive = %+v", v)
	}
	if v := f.in.Receive(context.Background(), id, []byte("not an article"), "site-c.test"); v.Kind != Duplicate {
		t.Errorf("Receive of a repeat = %+v, want Duplicate before any parsing", v)
	}
}
