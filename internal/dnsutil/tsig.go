package dnsutil

import (
	"fmt"
	"strings"

	"github.com/miekg/dns"
)

// DefaultTSIGAlgorithm is the algorithm of a key whose configuration names
// none; it is also tsig-keygen's default.
const DefaultTSIGAlgorithm = "hmac-sha256"

// tsigAlgorithms maps the names BIND's key statement (and dstd's
// configuration) uses to miekg/dns's.
var tsigAlgorithms = map[string]string{
	"hmac-sha1": dns.HmacSHA1, "hmac-sha224": dns.HmacSHA224, "hmac-sha256": dns.HmacSHA256,
	"hmac-sha384": dns.HmacSHA384, "hmac-sha512": dns.HmacSHA512,
}

// TSIGAlgorithm returns miekg/dns's name (dns.HmacSHA256, ...) for the
// algorithm a key statement names: "hmac-sha256" and the others of RFC
// 8945 §6, in any case, with or without a final dot. "" means
// DefaultTSIGAlgorithm. hmac-md5 is refused: RFC 8945 §6 deprecates it.
func TSIGAlgorithm(name string) (string, error) {
	n := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(name)), ".")
	if n == "" {
		n = DefaultTSIGAlgorithm
	}
	if alg, ok := tsigAlgorithms[n]; ok {
		return alg, nil
	}
	return "", fmt.Errorf("unknown TSIG algorithm %q: use hmac-sha256 (the default), hmac-sha512, hmac-sha384, hmac-sha224 or hmac-sha1, as in the server's key statement", name)
}
