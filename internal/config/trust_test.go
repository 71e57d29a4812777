package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTrustKeys(t *testing.T) {
	d := Default()
	if d.Policy.NewOrigin != OriginTrusted || d.Policy.MaxNewListingsPerHour != 0 || d.Policy.ProbationCorroborations != 3 {
		t.Errorf("defaults: %+v; want trusted, no cap, 3", d.Policy)
	}
	dir := t.TempDir()
	load := func(body string) error {
		path := filepath.Join(dir, "dstd.toml")
		if err := os.WriteFile(path, []byte("data_dir = \""+dir+"\"\n[policy]\n"+body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path)
		return err
	}
	if err := load("new_origin = \"Probation\"\nmax_new_listings_per_hour = 50\n"); err != nil {
		t.Errorf("valid keys: %v", err)
	}
	for body, want := range map[string]string{
		"new_origin = \"maybe\"\n":         `want "trusted" or "probation"`,
		"probation_corroborations = 0\n":   "policy.probation_corroborations must be at least 1",
		"max_new_listings_per_hour = -1\n": "policy.max_new_listings_per_hour must be 0",
		"dispute_share = 1.5\n":            "policy.dispute_share",
		"dispute_min_addresses = 0\n":      "policy.dispute_min_addresses",
	} {
		if err := load(body); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", body, err, want)
		}
	}
}
