package dnsutil

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestTSIGAlgorithm(t *testing.T) {
	for in, want := range map[string]string{
		"": dns.HmacSHA256, "hmac-sha256": dns.HmacSHA256, "HMAC-SHA512.": dns.HmacSHA512,
		"hmac-sha1": dns.HmacSHA1, "hmac-sha224": dns.HmacSHA224, "hmac-sha384": dns.HmacSHA384,
	} {
		if got, err := TSIGAlgorithm(in); err != nil || got != want {
			t.Errorf("TSIGAlgorithm(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"hmac-md5", "sha256", "hmac-sha256.sig-alg.reg.int"} {
		_, err := TSIGAlgorithm(bad)
		if err == nil || !strings.Contains(err.Error(), "use hmac-sha256") {
			t.Errorf("TSIGAlgorithm(%q) = %v, want an error naming the choices", bad, err)
		}
	}
}
