#!/usr/bin/env bash
# A three-site DST demo on loopback: a trap hit at site A becomes a listing in
# site C's DNS blocklist, flooded A -> B -> C.
#
#   scripts/demo.sh            run it (nothing is left running or on disk)
#   KEEP=1 scripts/demo.sh     keep the temporary directory (configs, logs, data)
#
# Needs Go (to build dstc, dstd, dstctl). Uses dig if installed
# (apt-get install bind9-dnsutils), else dstctl alone. Root not needed.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SITES=(site-a.demo site-b.demo site-c.demo)
ZONE=bl.demo
IP=203.0.113.7
QNAME=7.113.0.203.$ZONE
WAIT_START=30 # seconds for each dstd to answer dstctl status
WAIT_FLOOD=20 # seconds for the listing to reach site C

die() {
	echo "demo: error: $*" >&2
	exit 1
}
step() { printf '\n==> %s\n' "$*"; }

for cmd in go mktemp; do
	command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' is not installed (Go 1.26 is needed: https://go.dev/dl/)"
done
[[ -f $REPO/examples/trap-hit.eml ]] || die "cannot find examples/trap-hit.eml under $REPO"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dst-demo.XXXXXX") || die "cannot create a temporary directory"
PIDS=()

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	local pid n
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		for ((n = 0; n < 50; n++)); do # up to 5 s, then SIGKILL
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "demo: dstd (pid $pid) did not stop on SIGTERM, killing it" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	done
	if [[ ${KEEP:-0} == 1 ]]; then
		echo "demo: kept $WORK (configs, data, logs)" >&2
	else
		rm -rf "$WORK"
	fi
	if ((rc != 0)); then
		if [[ ${KEEP:-0} == 1 ]]; then
			echo "demo: FAILED (exit $rc)" >&2
		else
			echo "demo: FAILED (exit $rc); run with KEEP=1 to keep the logs" >&2
		fi
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- free loopback ports ---------------------------------------------------

USED_PORTS=" "
port_busy() { # TCP or UDP port in use on this host?
	local p=$1
	if command -v ss >/dev/null 2>&1; then
		ss -Htuan 2>/dev/null | awk '{print $5}' | grep -Eq "[:.]$p\$" && return 0
		return 1
	fi
	# No ss: try to connect over TCP (cannot see UDP, good enough for a demo).
	(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && return 0
	return 1
}
pick_port() {
	local p n
	for ((n = 0; n < 200; n++)); do
		p=$((20000 + RANDOM % 20000))
		[[ $USED_PORTS == *" $p "* ]] && continue
		port_busy "$p" && continue
		USED_PORTS+="$p "
		echo "$p"
		return 0
	done
	die "found no free loopback port"
}

# --- build -----------------------------------------------------------------

BIN=$WORK/bin
step "Building dstc, dstd and dstctl into $BIN"
mkdir -p "$BIN"
# -buildvcs=false: no git stamp needed, and none of git's "dubious ownership"
# refusal when the checkout belongs to another user.
if ! (cd "$REPO" && go build -buildvcs=false -o "$BIN/" ./cmd/dstc ./cmd/dstd ./cmd/dstctl); then
	die "go build failed (see above); are GOCACHE ($(go env GOCACHE 2>/dev/null)) and GOMODCACHE ($(go env GOMODCACHE 2>/dev/null)) writable, and the modules downloadable?"
fi

# --- sites -----------------------------------------------------------------

declare -A NNTP DNS DIR CONF
for s in "${SITES[@]}"; do
	NNTP[$s]=$(pick_port)
	DNS[$s]=$(pick_port)
	DIR[$s]=$WORK/$s
	CONF[$s]=$WORK/$s.toml
	mkdir -p "${DIR[$s]}"
done

peer() { # peer NAME: a [[peer]] section for site NAME
	cat <<EOF

[[peer]]
name = "$1"
addresses = ["127.0.0.1"]
feed = "127.0.0.1:${NNTP[$1]}"
EOF
}

step "Configuring three sites in $WORK (zone $ZONE, peers A<->B<->C)"
for s in "${SITES[@]}"; do
	{
		cat <<EOF
site = "$s"
data_dir = "${DIR[$s]}"

[log]
destination = "stderr"

[nntp]
listen = ["127.0.0.1:${NNTP[$s]}"]

[policy]
# Lab switch: the demo's sender, $IP, is a documentation address.
allow_documentation = true

[dns]
zone = "$ZONE"
listen = ["127.0.0.1:${DNS[$s]}"]
EOF
		case $s in
		site-a.demo) peer site-b.demo ;;
		site-b.demo) peer site-a.demo && peer site-c.demo ;;
		site-c.demo) peer site-b.demo ;;
		esac
	} >"${CONF[$s]}"
	printf '    %-12s NNTP 127.0.0.1:%-5s  DNS 127.0.0.1:%-5s  data %s\n' \
		"$s" "${NNTP[$s]}" "${DNS[$s]}" "${DIR[$s]}"
done

step "Creating each site's DKIM key and a shared keyring"
KEYRING=$WORK/keyring
: >"$KEYRING"
for s in "${SITES[@]}"; do
	out=$("$BIN/dstd" keygen -c "${CONF[$s]}" 2>&1) || die "dstd keygen failed for $s: $out"
	line=$(printf '%s\n' "$out" | grep -E "^$s dst [A-Za-z0-9+/=]+\$" | head -n1) ||
		die "dstd keygen for $s printed no keyring line: $out"
	echo "$line" >>"$KEYRING"
	echo "    $line"
done
for s in "${SITES[@]}"; do
	cp "$KEYRING" "${DIR[$s]}/keyring"
done

# --- start -----------------------------------------------------------------

step "Starting the three dstd (logs in $WORK/<site>.log)"
for s in "${SITES[@]}"; do
	"$BIN/dstd" -c "${CONF[$s]}" </dev/null >"$WORK/$s.log" 2>&1 &
	PIDS+=("$!")
	echo "    $s: pid $!"
done

i=0
for s in "${SITES[@]}"; do
	pid=${PIDS[$i]}
	i=$((i + 1))
	ok=0
	for ((n = 0; n < WAIT_START * 10; n++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "--- $WORK/$s.log:" >&2
			tail -n 20 "$WORK/$s.log" >&2 || true
			die "dstd of $s exited at start (log above)"
		fi
		if "$BIN/dstctl" -admin "${DIR[$s]}/admin.sock" status >/dev/null 2>&1; then
			ok=1
			break
		fi
		sleep 0.1
	done
	((ok)) || {
		tail -n 20 "$WORK/$s.log" >&2 || true
		die "dstd of $s did not answer 'dstctl status' within ${WAIT_START}s"
	}
	echo "    $s: up"
done

# --- the trap hit ----------------------------------------------------------

A=site-a.demo
C=site-c.demo
step "A trap at $A receives examples/trap-hit.eml:"
echo "    dstc -m 'mx[12].example.net' -spool ${DIR[$A]}/spool -log stderr < examples/trap-hit.eml"
echo "    (dstc submits to the socket nntp.sock in its spool directory)"
t0=$(date +%s%N)
dstc_rc=0
dstc_out=$("$BIN/dstc" -m 'mx[12].example.net' -log stderr \
	-spool "${DIR[$A]}/spool" <"$REPO/examples/trap-hit.eml" 2>&1) || dstc_rc=$?
printf '    %s\n' "$dstc_out"
((dstc_rc == 0)) || die "dstc exited $dstc_rc"
case $dstc_out in
*"msg=reported"* | *" reported "*) ;;
*) die "dstc did not report $IP to $A (its log line is above)" ;;
esac

HAVE_DIG=0
command -v dig >/dev/null 2>&1 && HAVE_DIG=1
step "Waiting (at most ${WAIT_FLOOD}s) for $C's DNSBL to list $IP"
listed=0
for ((n = 0; n < WAIT_FLOOD * 20; n++)); do
	if ((HAVE_DIG)); then
		ans=$(dig @127.0.0.1 -p "${DNS[$C]}" "$QNAME" A +short +time=1 +tries=1 2>/dev/null || true)
		[[ $ans == 127.* ]] && listed=1
	elif "$BIN/dstctl" -admin "${DIR[$C]}/admin.sock" lookup "$IP" >/dev/null 2>&1; then
		listed=1
	fi
	((listed)) && break
	sleep 0.05
done
t1=$(date +%s%N)
if ((!listed)); then
	for s in "${SITES[@]}"; do
		echo "--- $s: dstctl peers" >&2
		"$BIN/dstctl" -admin "${DIR[$s]}/admin.sock" peers >&2 || true
		echo "--- $s: last lines of $WORK/$s.log" >&2
		tail -n 10 "$WORK/$s.log" >&2 || true
	done
	die "$IP was not listed at $C within ${WAIT_FLOOD}s (diagnostics above)"
fi
ms=$(((t1 - t0) / 1000000))

step "$C: dstctl lookup $IP"
"$BIN/dstctl" -admin "${DIR[$C]}/admin.sock" lookup "$IP" | sed 's/^/    /' ||
	die "dstctl lookup at $C failed"

if ((HAVE_DIG)); then
	step "$C's DNSBL: dig @127.0.0.1 -p ${DNS[$C]} $QNAME A / TXT +short"
	for t in A TXT; do
		ans=$(dig @127.0.0.1 -p "${DNS[$C]}" "$QNAME" "$t" +short +time=2 +tries=2) ||
			die "dig $t failed"
		[[ -n $ans ]] || die "$C's DNSBL gave no $t answer for $QNAME"
		printf '    %-3s %s\n' "$t" "$ans"
	done
else
	step "dig is not installed (apt-get install bind9-dnsutils): the DNS answer was not queried, dstctl lookup above is from $C"
fi

B=site-b.demo
"$BIN/dstctl" -admin "${DIR[$B]}/admin.sock" lookup "$IP" >/dev/null 2>&1 ||
	die "$IP is listed at $C but not at $B, which relays between A and C"
step "Done: trap hit at $A to listing at $C (via site-b.demo) in $((ms / 1000)).$(printf '%03d' $((ms % 1000))) s"
