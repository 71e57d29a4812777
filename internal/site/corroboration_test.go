package site

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/dst-traps/dst/internal/dkim"
	"github.com/dst-traps/dst/internal/store"
)

// Graded answers count operators, not sites: one operator's two sites
// stand behind a listing once, as they do for policy.threshold.
func TestCorroborationCountsOperators(t *testing.T) {
	key := func(n byte) string {
		seed := make([]byte, ed25519.SeedSize)
		seed[0] = n
		return base64.StdEncoding.EncodeToString(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey))
	}
	ring := fmt.Sprintf("a.example dst %s operator=acme\nb.example dst %s operator=acme\nc.example dst %s\n", key(1), key(2), key(3))
	kr, err := dkim.ParseKeyring(strings.NewReader(ring))
	if err != nil {
		t.Fatal(err)
	}
	s := &Site{}
	s.snap.Store(&snapshot{kr: kr})
	for _, tc := range []struct {
		origins []string
		want    int
	}{
		{[]string{"a.example"}, 1},
		{[]string{"a.example", "b.example"}, 1},
		{[]string{"a.example", "b.example", "c.example"}, 2},
		{[]string{"c.example", "d.example"}, 2}, // d.example: not in the keyring, its own operator
	} {
		if got := s.corroboration(store.Listing{Origins: tc.origins}); got != tc.want {
			t.Errorf("origins %v: corroboration %d, want %d", tc.origins, got, tc.want)
		}
	}
}
