package dnsutil

import "net/netip"

// MaxGrade is the corroboration from which graded answers stop rising:
// eight independent reporters or more answer 127.0.0.9.
const MaxGrade = 8

// GradedA is the A record of a listing that n independent reporters stand
// behind, when answers are graded: 127.0.0.(1+n) for n from 1 to
// MaxGrade, so 127.0.0.2 for one and 127.0.0.9 for eight or more. n below
// 1 counts as 1: a listing is never answered 127.0.0.1, the RFC 5782 §5
// "never listed" test point. Every export (the embedded server, DNS
// UPDATE, rbldnsd) grades through here so they answer alike.
func GradedA(n int) netip.Addr {
	n = min(max(n, 1), MaxGrade)
	return netip.AddrFrom4([4]byte{127, 0, 0, byte(1 + n)})
}
