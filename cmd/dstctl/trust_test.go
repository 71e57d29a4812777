package main

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/dst-traps/dst/internal/admin"
)

func (b *backend) Origins(context.Context) ([]admin.OriginStatus, error) {
	return []admin.OriginStatus{
		{Origin: "site-a.test", Operator: "site-a.test", State: "trusted", Weight: 1, InKeyring: true, Reports: 10, Addresses: 8,
			Corroborated: 5, CorroboratedShare: 0.5, Needed: 3, Last: t0},
		{Origin: "site-b.test", Operator: "acme", State: "demoted", InKeyring: true, Reports: 8, Addresses: 8,
			Disputed: 3, DisputedShare: 0.375, Held: 2, Earned: 1, Needed: 3, Last: t0},
	}, nil
}

func (b *backend) Why(_ context.Context, ip netip.Addr) (admin.WhyResult, error) {
	if ip.String() != "203.0.113.7" {
		return admin.WhyResult{IP: ip}, nil
	}
	l := admin.FromStore(b.listings[ip])
	return admin.WhyResult{IP: ip, Listed: true, Listing: &l, Reports: []admin.WhyReport{
		{MessageID: "<1@site-a.example>", Origin: "site-a.example", Operator: "site-a.example", Time: t0, Class: "spam",
			Signature: "valid", Corroborated: true, Received: "from spammer ([203.0.113.7]) by mx.site-a.example"},
		{MessageID: "<2@site-b.example>", Origin: "site-b.example", Operator: "acme", Time: t0, Class: "spam",
			Signature: "dkim: unknown key\nadd it", Probation: true},
	}}, nil
}

func TestOrigins(t *testing.T) {
	sock := serve(t, newBackend())
	code, out, errOut := dstctl(t, "-admin", sock, "origins")
	lines := strings.Split(out, "\n")
	if code != 0 || len(lines) != 4 || !strings.HasPrefix(lines[0], "ORIGIN ") ||
		strings.Join(strings.Fields(lines[2]), " ") != "site-b.test acme demoted (1/3 corroborated) 0 8 0 (0%) 3 of 8 addresses (38%) 2 2026-11-29T10:10:10Z" ||
		strings.Join(strings.Fields(lines[1]), " ") != "site-a.test site-a.test trusted 1 10 5 (50%) 0 of 8 addresses (0%) 0 2026-11-29T10:10:10Z" {
		t.Errorf("origins: exit %d, %q:\n%s", code, errOut, out)
	}
	if code, _, _ := dstctl(t, "-admin", sock, "origins", "extra"); code != exitUsage {
		t.Errorf("origins with an argument: exit %d, want %d", code, exitUsage)
	}
}

func TestWhy(t *testing.T) {
	sock := serve(t, newBackend())
	code, out, errOut := dstctl(t, "-admin", sock, "why", "203.0.113.7")
	for _, s := range []string{
		"203.0.113.7 is listed until 2026-11-30T11:10:10Z (3 hits)",
		"<1@site-a.example>", "evidence   from spammer ([203.0.113.7]) by mx.site-a.example", "status     counted, corroborated",
		"<2@site-b.example>", "operator   acme", "not counted: origin on probation", "signature  dkim: unknown key add it", "class      spam",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("why: exit %d, %q: output lacks %q:\n%s", code, errOut, s, out)
		}
	}
	if code, out, _ := dstctl(t, "-admin", sock, "why", "203.0.113.8"); code != exitNo || !strings.Contains(out, "no report of it") {
		t.Errorf("why of an unknown address: exit %d, %q; want exit 1", code, out)
	}
	if code, _, _ := dstctl(t, "-admin", sock, "why", "nonsense"); code != exitUsage {
		t.Errorf("why nonsense: exit %d, want %d", code, exitUsage)
	}
}
