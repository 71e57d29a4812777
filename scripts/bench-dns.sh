#!/usr/bin/env bash
# Compares dstd's embedded DNS blocklist server with rbldnsd serving the same
# listings (exported by internal/rbldnsd), at 100,000 and 1,000,000 listed
# addresses in the same run: same query file (half hits, half misses, random
# names), same dnsperf settings and run time for both. Each listing count is
# measured in REPEAT rounds; a round runs dnsperf against both servers back
# to back (alternating which goes first), each after a warm-up. For each
# server it prints the queries per second, the server's CPU µs per query
# (utime+stime of the whole process from /proc/PID/stat), lost queries,
# dnsperf's own CPU and what the rest of the machine used, the medians and
# the dstd/rbldnsd ratios in a Markdown report (which scripts/bench-all.sh
# embeds), and both servers' memory. See test/dnsbench/README.md.
#
# Usage: scripts/bench-dns.sh [duration] [extra test/dnsbench flags...]
#   duration   dnsperf run time of each measurement (default 10s, 2s with
#              QUICK=1); whole seconds.
#
# Environment:
#   QUICK=1            smoke run: 2 s measurements; figures not for publication.
#   REPEAT=N           rounds per listing count (default 3); the report gives
#                      the median.
#   WARMUP=DURATION    dnsperf run before each measurement, not counted
#                      (default 1s).
#   SIZES=N,N          listing counts (default 100000,1000000).
#   SERVER_CPUS=LIST   pin both servers to these CPUs (taskset -c), e.g. 1;
#   DNSPERF_CPUS=LIST  pin dnsperf, e.g. 0. Default: nothing pinned (rbldnsd
#                      is single-threaded; dstd's server reads with
#                      GOMAXPROCS-1 sockets, at least one, and raises
#                      GOMAXPROCS by one, as dstd does).
#
# Run as root (rbldnsd drops privileges to user rbldns) with the Debian
# packages rbldnsd and dnsperf installed. Loopback only. Exits non-zero with
# a message on stderr if a tool is missing, a server fails to start or to
# answer as expected, or a dnsperf run fails or loses queries.
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
	echo "bench-dns.sh: $*" >&2
	exit 1
}

QUICK=${QUICK:-0}
case $QUICK in 0 | 1) ;; *) die "QUICK must be 0 or 1, not '$QUICK'" ;; esac
default_duration=10s
[ "$QUICK" = 1 ] && default_duration=2s
duration=${1:-$default_duration}
shift || true
REPEAT=${REPEAT:-3}
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die "REPEAT must be a positive number of rounds, not '$REPEAT'"
WARMUP=${WARMUP:-1s}
SIZES=${SIZES:-100000,1000000}

command -v go >/dev/null || die "go is not installed or not in PATH"
for p in rbldnsd dnsperf getconf; do
	command -v "$p" >/dev/null || die "$p is not installed (apt-get install $p); the benchmark compares dstd with rbldnsd using dnsperf"
done
if [ -n "${SERVER_CPUS:-}${DNSPERF_CPUS:-}" ]; then
	command -v taskset >/dev/null || die "taskset is not installed (apt-get install util-linux); SERVER_CPUS and DNSPERF_CPUS need it"
fi
[ "$(id -u)" -eq 0 ] || echo "bench-dns.sh: not root: rbldnsd runs without chroot" >&2

version() {
	# The Debian package's version when there is one, else the tool's own.
	dpkg-query -W -f='${Version}' "$1" 2>/dev/null || "$@" 2>&1 | grep -m1 -i version || echo unknown
}

# The machine and versions, so that figures are never read without them.
echo "machine: $(nproc) CPUs (nproc), $(awk -F ': *' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(uname -sr), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "versions: $(go env GOVERSION), rbldnsd $(version rbldnsd -h), dnsperf $(version dnsperf -h)"
echo "settings: sizes $SIZES, $duration per measurement, warm-up $WARMUP, $REPEAT rounds, servers ${SERVER_CPUS:+pinned to CPU }${SERVER_CPUS:-not pinned}, dnsperf ${DNSPERF_CPUS:+pinned to CPU }${DNSPERF_CPUS:-not pinned}$([ "$QUICK" = 1 ] && echo ", QUICK=1: figures not for publication")"
echo

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/dnsbench" ./test/dnsbench

# One process for all sizes: the same binary and settings, one report.
"$bin/dnsbench" -n "$SIZES" -d "$duration" -warmup "$WARMUP" -repeat "$REPEAT" \
	-server-cpus "${SERVER_CPUS:-}" -dnsperf-cpus "${DNSPERF_CPUS:-}" "$@" ||
	die "test/dnsbench failed (exit $?); its message is above"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
