package config

import (
	"slices"
	"strings"
	"testing"
)

func TestKeys(t *testing.T) {
	keys := Keys()
	for _, k := range []string{"site", "nntp.listen", "dns.update.server", "peer.feed", "peer.client_cert", "actions.program.command", "admin.token_file"} {
		if !slices.Contains(keys, k) {
			t.Errorf("Keys() lacks %s", k)
		}
	}
	if slices.Contains(keys, "nntp.idle_timeout.Duration") {
		t.Error("Keys() descends into a typed value")
	}
}

func TestDidYouMean(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"[nntp]\nlistn = [\"127.0.0.1:1119\"]", "unknown key nntp.listn (did you mean nntp.listen?)"},
		{"[[peer]]\nname = \"b.example\"\nclient_crt = \"x\"", "unknown key peer.client_crt (did you mean peer.client_cert?)"},
		{"[dns.update]\nsevrer = \"127.0.0.1:53\"", "unknown key dns.update.sevrer (did you mean dns.update.server?)"},
		{"completely_unrelated_thing = 1", "unknown key completely_unrelated_thing"},
	} {
		_, err := Load(write(t, tc.file))
		if err == nil || !strings.HasSuffix(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one ending %q", tc.file, err, tc.want)
		}
	}
	if s := Suggest("completely_unrelated_thing"); s != "" {
		t.Errorf("Suggest(unrelated) = %q, want none", s)
	}
}
