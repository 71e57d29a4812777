package main

import (
	"strings"
	"testing"
)

// simulating is a dstd running with policy.simulate.
type simulating struct{ *backend }

func (simulating) Simulating() bool { return true }

// TestLookupSimulated: in simulation lookup says the address would be
// listed (exit 0, the listing's details follow), and list -json marks it.
func TestLookupSimulated(t *testing.T) {
	sock := serve(t, simulating{newBackend()})
	code, out, _ := dstctl(t, "-admin", sock, "lookup", "203.0.113.7")
	if code != 0 || !strings.HasPrefix(out, "203.0.113.7 would be listed (policy.simulate: not published in DNS)\n") ||
		!strings.Contains(out, "origins          site-a.example, site-b.example\n") {
		t.Errorf("lookup in simulation: exit %d, output:\n%s", code, out)
	}
	code, out, _ = dstctl(t, "-admin", sock, "list", "-json")
	if code != 0 || !strings.Contains(out, `"simulated":true`) {
		t.Errorf("list -json in simulation: exit %d, output:\n%s", code, out)
	}
	// Not simulating: no mark.
	sock = serve(t, newBackend())
	if _, out, _ = dstctl(t, "-admin", sock, "list", "-json"); strings.Contains(out, "simulated") {
		t.Errorf("list -json without simulation marks listings:\n%s", out)
	}
}
