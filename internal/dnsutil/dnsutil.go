// Package dnsutil holds the DNS details that every way of publishing the
// blocklist must get the same: the RFC 5782 name of an address, TXT text
// as miekg/dns wants it, and the names of TSIG algorithms. The embedded
// server (dnsbl), DNS UPDATE (dnsupdate) and the rbldnsd export use it, so
// that a listing reads the same whichever of them a site runs.
package dnsutil
