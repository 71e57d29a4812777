#!/usr/bin/env bash
# Compares the query rate of dstd's embedded DNS blocklist server with rbldnsd
# serving the same listings (exported by internal/rbldnsd), for 100,000 and
# 1,000,000 listed addresses: same dnsperf run time, query file (half hits,
# half misses) and listing set for both. Prints both queries/second, their
# ratio, and the memory each needs per million listings.
#
# Usage: scripts/bench-dns.sh [duration] [extra test/dnsbench flags...]
# Run as root (rbldnsd drops privileges to user rbldns) with the Debian
# packages rbldnsd and dnsperf installed. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${1:-10s}
shift || true

for p in rbldnsd dnsperf; do
	if ! command -v "$p" >/dev/null; then
		echo "bench-dns.sh: $p is not installed (apt-get install $p)" >&2
		exit 1
	fi
done

# One binary for both sizes, so the two runs measure the same code.
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/dnsbench" ./test/dnsbench

for n in 100000 1000000; do
	echo "=== $n listings, $duration per server"
	"$bin/dnsbench" -n "$n" -d "$duration" "$@"
	echo
done
