#!/usr/bin/env bash
# Runs every benchmark of the project one after the other on this machine and
# prints a Markdown report on stdout: the machine, the exact command of each
# benchmark, its figures, and the ratios against the peers (innd, rbldnsd)
# computed from this same run. The raw output of every command is kept in a
# directory, named on stderr and in the report.
#
# Usage: scripts/bench-all.sh > /tmp/report.md
#
# Environment:
#   QUICK=1      short smoke run: small -benchtime, 2 s dnsperf runs, 50
#                propagation reports; the million-listing memory benchmark
#                runs only on its cached store (see test/bench/README.md) and
#                is reported as skipped when there is no fresh cache.
#                Figures from a quick run are not for publication.
#   OUT=DIR      where to keep the raw outputs (default: a new
#                ${TMPDIR:-/tmp}/bench-all-XXXXXX).
#   MEMORY=0|1   force the memory benchmark off (0, reported as skipped) or
#                on (1, building the cached store if needed, ~1.5 min).
#                Default: on, except under QUICK=1 without a fresh cache.
#   VERBOSE=1    copy the raw output of each benchmark to stderr as it runs.
#
# Needs: Go, root, Debian's inn2 (innd), rbldnsd and dnsperf. A missing tool,
# a failing or skipped benchmark, or a figure that cannot be found in the
# output stops the run with a non-zero exit and a message on stderr.
#
# The full run uses the parameters of test/bench/README.md and
# test/dnsbench/README.md and takes about 5 minutes on a 2-CPU VM (the DNS
# comparison alone about 2.5: 3 rounds of 10 s per server and size), plus
# about 1.5 minutes when the million-listing store must be (re)built;
# QUICK=1 takes about 2.5 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=${QUICK:-0}
VERBOSE=${VERBOSE:-0}
MEMORY=${MEMORY:-auto}
case $QUICK in 0 | 1) ;; *) echo "bench-all.sh: QUICK must be 0 or 1, not '$QUICK'" >&2; exit 2 ;; esac
case $MEMORY in 0 | 1 | auto) ;; *) echo "bench-all.sh: MEMORY must be 0, 1 or auto, not '$MEMORY'" >&2; exit 2 ;; esac

die() {
	echo "bench-all.sh: $*" >&2
	exit 1
}
note() { echo "bench-all.sh: $*" >&2; }

# --- tools --------------------------------------------------------------

[ "$(id -u)" -eq 0 ] || die "must run as root (innd runs as user news, rbldnsd drops to user rbldns)"
command -v go >/dev/null || die "go is not installed or not in PATH"
command -v dpkg-query >/dev/null || die "dpkg-query is missing (the report gives the Debian package versions)"
# The INN harness looks in these directories (internal/dsttest/inn.go).
innd=""
for d in /usr/lib/news/bin /usr/libexec/news /usr/local/news/bin; do
	if [ -x "$d/innd" ]; then
		innd=$d/innd
		break
	fi
done
[ -n "$innd" ] || die "innd is not installed (apt-get install inn2); the stream ingest benchmark compares dstd with it"
id news >/dev/null 2>&1 || die "INN is installed but there is no user news"
for p in rbldnsd dnsperf; do
	command -v "$p" >/dev/null || die "$p is not installed (apt-get install $p); the DNS benchmark compares dstd with rbldnsd using dnsperf"
done
pkgver() {
	local v
	v=$(dpkg-query -W -f='${Version}' "$1" 2>/dev/null) || die "dpkg-query knows no package $1"
	[ -n "$v" ] || die "package $1 is not installed"
	printf '%s' "$v"
}
ver_inn=$(pkgver inn2)
ver_rbldnsd=$(pkgver rbldnsd)
ver_dnsperf=$(pkgver dnsperf)

# --- output directory -----------------------------------------------------

if [ -n "${OUT:-}" ]; then
	mkdir -p "$OUT"
else
	OUT=$(mktemp -d "${TMPDIR:-/tmp}/bench-all-XXXXXX")
fi
OUT=$(cd "$OUT" && pwd)
note "raw outputs in $OUT"
report=$OUT/report.md
: >"$report"
: >"$OUT/commands.txt"

# --- helpers --------------------------------------------------------------

# shellquote prints its arguments as one shell command line.
shellquote() {
	local a out=""
	for a in "$@"; do
		if [[ $a =~ ^[A-Za-z0-9_./=:,+@%-]+$ ]]; then
			out+="$a "
		else
			out+="'${a//\'/\'\\\'\'}' "
		fi
	done
	printf '%s' "${out% }"
}

r() { printf '%s\n' "$@" >>"$report"; }

# run ID ENV... -- CMD...: runs CMD with the environment assignments ENV,
# output (stdout and stderr) to $OUT/ID.txt, and records the command line in
# $cmdline and the wall time in $elapsed. A non-zero exit stops everything.
cmdline=""
elapsed=0
run() {
	local id=$1 envs=() start rc
	shift
	while [ "$1" != "--" ]; do
		envs+=("$1")
		shift
	done
	shift
	cmdline=$(shellquote "${envs[@]}" "$@")
	printf '%s\t%s\n' "$id" "$cmdline" >>"$OUT/commands.txt"
	note "[$(date -u +%H:%M:%S)] $id: $cmdline"
	start=$(date +%s)
	rc=0
	if [ "$VERBOSE" = 1 ]; then
		env "${envs[@]}" "$@" 2>&1 | tee "$OUT/$id.txt" >&2 || rc=$?
	else
		env "${envs[@]}" "$@" >"$OUT/$id.txt" 2>&1 || rc=$?
	fi
	elapsed=$(($(date +%s) - start))
	printf '%s\t%s\n' "$id" "$elapsed" >>"$OUT/times.txt"
	if [ "$rc" -ne 0 ]; then
		echo "bench-all.sh: $id FAILED (exit $rc): $cmdline" >&2
		# go test's failure lines and the messages of the test files, not
		# the daemons' logs that the harness appends to them.
		if grep -Eq '^[[:space:]]*--- FAIL|^[[:space:]]+[A-Za-z0-9_]+\.go:[0-9]+:' "$OUT/$id.txt"; then
			echo "--- failures in $OUT/$id.txt (first 30 lines):" >&2
			grep -E '^[[:space:]]*--- FAIL|^[[:space:]]+[A-Za-z0-9_]+\.go:[0-9]+:|^[[:space:]]+[a-z]+: .*(error|in use|fail|cannot)|^panic:' "$OUT/$id.txt" | cut -c1-400 | head -n 30 >&2
		fi
		echo "--- last 10 lines of $OUT/$id.txt:" >&2
		tail -n 10 "$OUT/$id.txt" | cut -c1-400 >&2
		# A failed start can leave dstd processes behind; say so, but leave
		# them to the operator (other runs on the machine may own some).
		left=$(ps -eo pid=,args= | awk '$2 ~ /\/dstd$/ && $4 ~ /^\/tmp\/Benchmark/ { print "  " $0 }')
		if [ -n "$left" ]; then
			echo "bench-all.sh: dstd processes of benchmarks still running (check they are this run's, then kill PID):" >&2
			echo "$left" >&2
		fi
		exit 1
	fi
	note "$id: done in ${elapsed}s"
}

# results RAW > TSV: one line per benchmark result of `go test -bench`
# output: name, iterations, then value and unit pairs. A benchmark that logs
# has its name printed on a line of its own before the logs, and again (Go
# 1.20+) or not at all in front of the figures; both forms are handled.
results() {
	awk '
		/^Benchmark[^ \t]*[ \t]*$/ { name = $1; next }
		/^Benchmark[^ \t]*[ \t]+[0-9]+[ \t]+[0-9.e+-]+ ns\/op/ { name = $1; start = 2 }
		/^[ \t]+[0-9]+[ \t]+[0-9.e+-]+ ns\/op/ { start = 1 }
		start {
			line = name "\t" $start
			for (i = start + 1; i < NF; i += 2) line = line "\t" $i "\t" $(i + 1)
			print line
			start = 0
		}
	' "$1"
}

# check_go ID: fails unless the go test output has figures, and no skip or
# failure.
check_go() {
	local f=$OUT/$1.txt
	if grep -Eq '^[[:space:]]*--- (SKIP|FAIL)|^FAIL|^panic:' "$f"; then
		echo "bench-all.sh: $1: a benchmark was skipped or failed:" >&2
		grep -E -B2 -A8 '^[[:space:]]*--- (SKIP|FAIL)|^FAIL|^panic:' "$f" >&2 || true
		exit 1
	fi
	results "$f" >"$OUT/$1.tsv"
	[ -s "$OUT/$1.tsv" ] || die "$1: no benchmark figures in $f"
}

# table ID: the figures of $OUT/ID.tsv as a Markdown table, one column per
# unit in the order they first appear.
table() {
	awk -F '\t' '
		{
			rows[NR] = $0
			for (i = 3; i < NF; i += 2) if (!($(i + 1) in seen)) { seen[$(i + 1)] = 1; units[++nu] = $(i + 1) }
		}
		END {
			h = "| benchmark | runs |"; s = "| --- | ---: |"
			for (u = 1; u <= nu; u++) { h = h " " units[u] " |"; s = s " ---: |" }
			print h; print s
			for (n = 1; n <= NR; n++) {
				split(rows[n], f, "\t"); delete v
				for (i = 3; i in f; i += 2) v[f[i + 1]] = f[i]
				line = "| " f[1] " | " f[2] " |"
				for (u = 1; u <= nu; u++) line = line " " ((units[u] in v) ? v[units[u]] : "–") " |"
				print line
			}
		}
	' "$OUT/$1.tsv"
}

# metric ID NAME UNIT: the value of UNIT for the benchmark NAME (without the
# -GOMAXPROCS suffix); fails if absent.
metric() {
	local v
	v=$(awk -F '\t' -v name="$2" -v unit="$3" '
		{ n = $1; sub(/-[0-9]+$/, "", n) }
		n == name { for (i = 3; i < NF; i += 2) if ($(i + 1) == unit) v = $i }
		END { if (v != "") print v }
	' "$OUT/$1.tsv")
	[ -n "$v" ] || die "$1: no $3 figure for $2 in $OUT/$1.txt"
	printf '%s' "$v"
}

# commas N: 1000000 -> 1,000,000.
commas() { printf '%s' "$1" | sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/' -e 'ta'; }

# calc EXPR: floating point arithmetic, printed with FORMAT (default %.2f).
calc() { awk "BEGIN { printf \"${2:-%.2f}\", $1 }"; }

section() {
	r "" "### $1" "" "$2" "" '```sh' "$cmdline" '```' "" "(${elapsed} s; raw output: \`$OUT/$3.txt\`)" ""
}

# --- parameters -----------------------------------------------------------

if [ "$QUICK" = 1 ]; then
	unit_bt=(-benchtime 100ms)
	ingest_bt=(-benchtime 300x)
	prop_bt=(-benchtime 1x)
	dns_duration=2s
else
	unit_bt=()
	ingest_bt=(-benchtime 5s)
	prop_bt=(-benchtime 500x)
	dns_duration=10s
fi

# The memory benchmark reuses a store of a million listings cached in
# os.TempDir() for 12 hours (test/bench/memory_test.go); building it takes
# about 1.5 minutes on the reference machine.
cache=${TMPDIR:-/tmp}/dst-bench-1m.db
cache_fresh=0
if [ -f "$cache" ] && [ -f "$cache.version" ]; then
	built=$(sed -n 2p "$cache.version")
	if built_s=$(date -d "$built" +%s 2>/dev/null) && [ $(($(date +%s) - built_s)) -lt $((11 * 3600)) ]; then
		cache_fresh=1
	fi
fi
memory_skip="MEMORY=0"
if [ "$MEMORY" = auto ]; then
	if [ "$QUICK" = 1 ] && [ "$cache_fresh" = 0 ]; then
		MEMORY=0
		memory_skip="QUICK=1 and no fresh cached store ($cache); run without QUICK, or with MEMORY=1, for these figures"
	else
		MEMORY=1
	fi
fi

# --- header ---------------------------------------------------------------

cpu=$(awk -F ': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ "$commit" != unknown ] && ! git diff --quiet HEAD -- 2>/dev/null; then commit="$commit + uncommitted changes"; fi
mode="full run"
[ "$QUICK" = 1 ] && mode="QUICK=1: a smoke run with short benchtimes, figures not for publication"
run_start=$(date +%s)

r "## Figures from one run" ""
r "Generated by \`scripts/bench-all.sh\` ($mode), started $(date -u '+%Y-%m-%d %H:%M:%S UTC')." ""
r "| | |" "| --- | --- |"
r "| CPUs (nproc) | $(nproc) |"
r "| CPU model | ${cpu:-unknown} |"
r "| memory | $mem |"
r "| kernel | $(uname -sr) |"
r "| Go | $(go env GOVERSION) ($(go env GOOS)/$(go env GOARCH)) |"
r "| innd (inn2) | $ver_inn |"
r "| rbldnsd | $ver_rbldnsd |"
r "| dnsperf | $ver_dnsperf |"
r "| commit | $commit |"
r "| load average at start | $(cut -d' ' -f1-3 /proc/loadavg) |"
r "| raw outputs | \`$OUT\` |"

# --- benchmarks -----------------------------------------------------------

# CI=true makes the test harness fail, rather than skip, when INN or root is
# missing (internal/dsttest/inn.go); -count 1 keeps go test from caching.

run dstc CI=true -- go test -count 1 -run '^$' -bench . -benchmem "${unit_bt[@]}" ./internal/received ./cmd/dstc
check_go dstc
section "Trap client: dstc" \
	"Messages per second through the Received-field walk alone (\`BenchmarkSourceCorpus\`) and through the whole \`dstc\` program on the Received corpus (\`BenchmarkCorpus\`), and the peak RSS of \`dstc\` reading a 50 MB message (\`BenchmarkPeakMemory50MB\`)." dstc
table dstc >>"$report"

run store CI=true -- go test -count 1 -run '^$' -bench . -benchmem "${unit_bt[@]}" ./internal/store
check_go store
section "Store: durable ingest and lookups" \
	"\`BenchmarkAddReport\`: reports per second into the bbolt store with fsync and many concurrent submitters. \`BenchmarkAddReportAlone\`: one report per commit, as a site of a network commits a relayed report, with fsync (\`synced\`) and without (\`unsynced\`), and the CPU each takes. \`BenchmarkLookup1M\`: one lookup in a store of a million listings, and the file size." store
table store >>"$report"

run dnsbl CI=true -- go test -count 1 -run '^$' -bench . -benchmem "${unit_bt[@]}" ./internal/dnsbl
check_go dnsbl
section "DNS blocklist server, in process" \
	"\`BenchmarkServeDNS\`: one A query (listed, not listed) answered by the embedded server with a million listings, replies dropped; \`MiB/Mlistings\` is the index heap. \`BenchmarkAXFR\`: one full zone transfer of a million listings. \`BenchmarkUDPAnswer\`: one UDP query from the packet read to the packet to send, names drawn at random from a million listings (half not listed), by the fast path (\`fast\`, 0 allocs/op) and by the slow path every query took before it (\`slow\`)." dnsbl
table dnsbl >>"$report"

run ingest CI=true -- go test -count 1 -run '^$' -bench IngestNNTP "${ingest_bt[@]}" -timeout 10m ./test/bench/
check_go ingest
section "Ingest over NNTP (POST)" \
	"\`BenchmarkIngestNNTP\`: distinct reports POSTed to a real \`dstd\` (durable store) over 1, 8 and 64 connections, each counted at its 240. See [test/bench/README.md](test/bench/README.md#ingest-over-nntp)." ingest
table ingest >>"$report"

run stream CI=true -- go test -count 1 -run '^$' -bench StreamIngest -timeout 10m ./test/bench/
check_go stream
section "Stream ingest: dstd beside innd" \
	"\`BenchmarkStreamIngest\`: the same signed reports streamed (CHECK/TAKETHIS) on one connection to a fresh \`dstd\`, then to a fresh \`innd\` ($ver_inn); rates from the first CHECK to the last answer. \`dstd\` answers each report after the commit with fsync that stores it (pipelined articles share commits), \`innd\` fsyncs nothing. See [test/bench/README.md](test/bench/README.md#streaming-ingest-dstd-beside-innd)." stream
table stream >>"$report"
stream_d=$(metric stream BenchmarkStreamIngest dstd-reports/s)
stream_i=$(metric stream BenchmarkStreamIngest innd-reports/s)
stream_n=$(metric stream BenchmarkStreamIngest articles)

run propagation CI=true -- go test -count 1 -run '^$' -bench Propagation "${prop_bt[@]}" -timeout 10m ./test/bench/
check_go propagation
section "Propagation across a network of sites" \
	"\`BenchmarkPropagation\`: time from the 240 of a POST at site 0 to the listing at the farthest site, on a 10-site chain and a 20-site mesh of real \`dstd\` processes feeding each other, one report injected every 20 ms. \`ns/op\` is the injection pace, not a latency. See [test/bench/README.md](test/bench/README.md#propagation-across-a-network-of-sites)." propagation
table propagation >>"$report"

if [ "$MEMORY" = 1 ]; then
	[ "$cache_fresh" = 1 ] || note "the million-listing store is not cached or is old: building it first (about 1.5 minutes)"
	run memory CI=true -- go test -count 1 -run '^$' -bench Memory1M -benchtime 1x -timeout 30m ./test/bench/
	check_go memory
	section "dstd with a million listings: memory" \
		"\`BenchmarkMemory1MListings\`: \`dstd\` started on a copy of a store of 1,000,000 listings (evicted from the page cache), \`dstctl list\` and \`dstctl status\` run, then its RSS read from /proc. \`anon-RSS\` is \`dstd\`'s own memory, \`file-RSS\` the part of the mapped store it touched. See [test/bench/README.md](test/bench/README.md#memory-with-a-million-listings)." memory
	table memory >>"$report"
	if grep -q 'built 1000000 listings' "$OUT/memory.txt"; then
		r "" "(The cached store was built in this run: $(grep -o 'built 1000000 listings in [^ ]*' "$OUT/memory.txt" | head -1).)"
	fi
	mem_peak=$(metric memory BenchmarkMemory1MListings peak-RSS-MiB)
	mem_anon=$(metric memory BenchmarkMemory1MListings anon-RSS-MiB)
	mem_rss=$(metric memory BenchmarkMemory1MListings RSS-MiB)
else
	r "" "### dstd with a million listings: memory" ""
	r "**SKIPPED**: $memory_skip."
	note "SKIPPED the memory benchmark: $memory_skip"
fi

run dns QUICK="$QUICK" -- scripts/bench-dns.sh "$dns_duration"
# bench-dns.sh (test/dnsbench) prints its per-round lines, then a Markdown
# report between two marker lines, copied as is, then tab-separated lines
#   result	LISTINGS	rbldnsd|dstd|ratio	KEY	VALUE
# (keys: qps, cpu_us_per_query, lost, sent, vmrss_bytes, rssanon_bytes,
# index_heap_bytes...), from which the ratio table below is made.
awk -F '\t' '$1 == "result" && NF == 5 { print $2 "\t" $3 "\t" $4 "\t" $5 }' "$OUT/dns.txt" >"$OUT/dns.tsv"
dnsv() {
	local v
	v=$(awk -F '\t' -v n="$1" -v who="$2" -v k="$3" '$1 == n && $2 == who && $3 == k { v = $4 } END { if (v != "") print v }' "$OUT/dns.tsv")
	[ -n "$v" ] || die "dns: no $3 for $2 with $1 listings in $OUT/dns.txt"
	printf '%s' "$v"
}
mapfile -t dns_sizes < <(awk -F '\t' '$2 == "ratio" && $3 == "qps" { print $1 }' "$OUT/dns.tsv")
[ "${#dns_sizes[@]}" -gt 0 ] || die "dns: no dstd/rbldnsd result lines in $OUT/dns.txt"
dns_md=$(sed -n '/^<!-- dnsbench report -->$/,/^<!-- end of dnsbench report -->$/p' "$OUT/dns.txt" | sed '1d;$d')
[ -n "$dns_md" ] || die "dns: no dnsbench report in $OUT/dns.txt"
section "DNS blocklist: dstd's embedded server vs rbldnsd" \
	"\`test/dnsbench\`: the same listings served by \`dstd\`'s embedded server (\`internal/dnsbl\` in a process of its own) and by rbldnsd ($ver_rbldnsd, files exported by \`internal/rbldnsd\`); dnsperf ($ver_dnsperf) against each with the same query file (half hits, half misses, random names), in rounds that measure both back to back. See [test/dnsbench/README.md](test/dnsbench/README.md)." dns
r "$dns_md"

# --- ratios -----------------------------------------------------------------

big=$(printf '%s\n' "${dns_sizes[@]}" | sort -n | tail -1)
r "" "### Ratios against the peers (this run)" ""
r "| comparison | dstd | peer | dstd / peer |" "| --- | ---: | ---: | ---: |"
r "| stream ingest, reports/s ($stream_n articles on one connection; dstd answers each after its fsynced commit, innd fsyncs none) | $stream_d | $stream_i (innd) | $(calc "$stream_d / $stream_i") |"
for n in "${dns_sizes[@]}"; do
	rq=$(dnsv "$n" rbldnsd qps)
	dq=$(dnsv "$n" dstd qps)
	ratio=$(dnsv "$n" ratio qps)
	r "| DNS queries/s, $(commas "$n") listings (median of the rounds; ratio: median of the rounds' ratios) | $(commas "$dq") | $(commas "$rq") (rbldnsd) | $ratio |"
done
for n in "${dns_sizes[@]}"; do
	rc=$(dnsv "$n" rbldnsd cpu_us_per_query)
	dc=$(dnsv "$n" dstd cpu_us_per_query)
	ratio=$(dnsv "$n" ratio cpu_us_per_query)
	r "| DNS server CPU µs per query, $(commas "$n") listings (utime+stime of the server process / queries completed) | $(calc "$dc") | $(calc "$rc") (rbldnsd) | $ratio |"
done
# One variable each: a failure inside $(...) in another command's arguments
# would not stop the script.
rb_b=$(dnsv "$big" rbldnsd vmrss_bytes)
dh_b=$(dnsv "$big" dstd index_heap_bytes)
da_b=$(dnsv "$big" dstd rssanon_bytes)
rb_bpl=$(calc "$rb_b / $big" "%.0f")
dh_bpl=$(calc "$dh_b / $big" "%.0f")
da_bpl=$(calc "$da_b / $big" "%.0f")
r "| memory per listing, DNS index heap vs rbldnsd VmRSS ($(commas "$big") listings, test/dnsbench) | $dh_bpl B | $rb_bpl B | $(calc "$dh_bpl / $rb_bpl") |"
r "| memory per listing, DNS server process (index and Go runtime) RssAnon vs rbldnsd VmRSS ($(commas "$big") listings, test/dnsbench) | $da_bpl B | $rb_bpl B | $(calc "$da_bpl / $rb_bpl") |"
if [ "$MEMORY" = 1 ]; then
	for m in "peak RSS:$mem_peak" "RSS at the end:$mem_rss" "anon RSS at the end:$mem_anon"; do
		label=${m%%:*}
		v=${m#*:}
		bpl=$(calc "$v * 1048576 / 1000000" "%.0f")
		r "| memory per listing, whole dstd $label (1,000,000 listings, BenchmarkMemory1MListings) vs rbldnsd VmRSS | $bpl B | $rb_bpl B | $(calc "$bpl / $rb_bpl") |"
	done
else
	r "| memory per listing, whole dstd (BenchmarkMemory1MListings) vs rbldnsd VmRSS | not run | $rb_bpl B | – |"
fi
r "" "rbldnsd's VmRSS is its whole process (including a baseline of 1–2 MiB); the dstd figures of BenchmarkMemory1MListings are the whole daemon (store, NNTP, admin, DNS index), and its file-backed part is page cache of the mapped store." 

total=$(($(date +%s) - run_start))
r "" "Total time of the benchmarks: $((total / 60)) min $((total % 60)) s; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."

cat "$report"
note "done in ${total}s; report also in $report, raw outputs in $OUT"
