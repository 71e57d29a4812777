#!/usr/bin/env bash
# Runs DST's whole test suite: formatting, vet, and go test -race over every
# package, including the integration tests that start real components (Postfix)
# on loopback. Run as root: it installs those components with apt-get when they
# are missing. With CI=true, a component that cannot be installed fails the run
# (the integration tests also refuse to skip).
#
# "./test.sh gates" runs only the checks of the sources (gates, below), which
# need no component and no root.
set -euo pipefail
cd "$(dirname "$0")"

# The tools the gates run, at pinned versions (a newer release may report
# new findings: raise these on purpose, and fix what it reports).
staticcheck_pkg=honnef.co/go/tools/cmd/staticcheck@v0.8.2 # staticcheck 2026.2.2
goimports_pkg=golang.org/x/tools/cmd/goimports@v0.52.0
module=github.com/dst-traps/dst

# tool installs the pinned package $1 (path@version) into a directory of its
# own, once, and prints the path of its program.
tool() {
	local name=${1%@*} version=${1#*@}
	name=${name##*/}
	local dir
	dir="$(go env GOPATH)/pkg/dst-test-tools/$name-$version"
	if [ ! -x "$dir/$name" ]; then
		echo "test.sh: installing $1 into $dir" >&2
		GOBIN=$dir go install "$1" >&2 || {
			echo "test.sh: FAILED to install $1: check the network access to the Go module proxy" >&2
			return 1
		}
	fi
	echo "$dir/$name"
}

# gates checks the sources without running them: formatting, import
# grouping, go vet, a tidy go.mod and staticcheck. It runs every check, says
# what to do about each that fails, and returns non-zero if any failed.
gates() {
	local failed=() out bin
	echo "test.sh: gates: gofmt, goimports, go vet, go mod tidy, staticcheck"
	# gofmt walks the tree itself (its testdata holds no .go files).
	if ! out=$(gofmt -l .) || [ -n "$out" ]; then
		printf '%s\n' "$out" >&2
		echo "test.sh: FAILED: these files are not gofmt-formatted: run gofmt -w on them" >&2
		failed+=(gofmt)
	fi
	if bin=$(tool "$goimports_pkg"); then
		if ! out=$("$bin" -l -local "$module" .) || [ -n "$out" ]; then
			printf '%s\n' "$out" >&2
			echo "test.sh: FAILED: the imports of these files are not grouped as the project groups them (standard library, others, then $module): run $bin -w -local $module on them" >&2
			failed+=(goimports)
		fi
	else
		failed+=(goimports)
	fi
	if ! go vet ./...; then
		echo "test.sh: FAILED: go vet reports the problems above: fix them" >&2
		failed+=("go vet")
	fi
	if ! go mod tidy -diff; then
		echo "test.sh: FAILED: go.mod or go.sum is not tidy (the diff above): run go mod tidy and commit the result" >&2
		failed+=("go mod tidy")
	fi
	if bin=$(tool "$staticcheck_pkg"); then
		if ! "$bin" ./...; then
			echo "test.sh: FAILED: staticcheck reports the problems above: fix them ($bin -explain CHECK says why each check matters)" >&2
			failed+=(staticcheck)
		fi
	else
		failed+=(staticcheck)
	fi
	if ((${#failed[@]})); then
		echo "test.sh: FAILED gates: ${failed[*]}" >&2
		return 1
	fi
	echo "test.sh: gates passed"
}

case "${1:-}" in
gates)
	gates
	exit
	;;
"") ;;
*)
	echo "usage: $0 [gates]" >&2
	exit 2
	;;
esac

# Debian packages of the real components the integration tests start
# (unbound is the blocking site's resolver in test/e2e; iproute2 makes its
# network namespaces; prometheus has promtool, which test/monitoring runs
# on the example alert rules; go-md2man, logrotate and man-db are for
# test/pkg, which builds the Debian package with scripts/package.sh,
# installs it, reads its man pages and rotates its report log; chromium
# loads the status page in test/statuspage).
packages=(postfix inn2 rbldnsd dnsperf bind9 bind9-dnsutils unbound iproute2 prometheus go-md2man logrotate man-db chromium)
# Exim conflicts with Postfix as a package: test/e2e runs the real Debian
# exim4 binary unpacked from its .deb (below), which needs its libraries.
exim_pkgs=(exim4-daemon-light exim4-base)
if ! command -v exim4 >/dev/null && [ -z "${DST_EXIM:-}" ]; then
	mapfile -t exim_libs < <(apt-cache depends exim4-daemon-light 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^lib/ {print $2}')
	packages+=("${exim_libs[@]}")
fi

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
if ((${#missing[@]})); then
	if [ "$(id -u)" = 0 ]; then
		echo "test.sh: installing ${missing[*]}"
		# Postfix: no site configuration, the tests write their own.
		echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
		export DEBIAN_FRONTEND=noninteractive
		# The packages' maintainer scripts must not start their daemons: the
		# tests start private instances on free ports, and without systemd
		# invoke-rc.d would run the init scripts (inn2's innd on port 119).
		# A policy-rc.d that exits 101 ("action forbidden") stops that with
		# or without systemd; it is ours to remove only if we created it.
		policy=/usr/sbin/policy-rc.d our_policy=
		if [ ! -e "$policy" ]; then
			printf '#!/bin/sh\n# test.sh: no daemon starts while it installs packages\nexit 101\n' >"$policy"
			chmod 755 "$policy"
			our_policy=yes
			trap 'rm -f "$policy"' EXIT
		fi
		# inn2's postinst fails on two things of minimal machines. innconfval
		# refuses a host whose name has no domain ("hostname does not resolve
		# or domain not set in inn.conf"); the tests run innd with an inn.conf
		# of their own, the system one only has to be valid: give it a domain
		# (the reserved .invalid). And it adds "usenet: root" to /etc/aliases
		# and runs newaliases, which fails while Postfix has no main.cf (it is
		# installed with "No configuration"): add the alias first, so that
		# the postinst leaves /etc/aliases alone. Then configure again.
		inn_fixups() {
			[[ " ${missing[*]} " == *" inn2 "* ]] || return 0
			if [ -f /etc/aliases ] && ! grep -q '^usenet:' /etc/aliases && ! getent passwd usenet >/dev/null; then
				echo "test.sh: adding the alias usenet: root to /etc/aliases (for inn2)"
				printf '# Added by DST test.sh for inn2 (news reports).\nusenet: root\n' >>/etc/aliases
			fi
			[ -f /etc/news/inn.conf ] || return 0
			/usr/lib/news/bin/innconfval pathdb >/dev/null 2>&1 && return 0
			grep -q '^domain:' /etc/news/inn.conf && return 0
			echo "test.sh: setting 'domain: invalid' in /etc/news/inn.conf ($(hostname) has no domain)"
			printf '\n# Set by DST test.sh: this host name has no domain.\ndomain: invalid\n' >>/etc/news/inn.conf
		}
		install_missing() {
			inn_fixups
			apt-get install -y -q --no-install-recommends "${missing[@]}" && return
			echo "test.sh: configuring again after fixing what inn2's postinst needs"
			inn_fixups
			dpkg --configure --pending && apt-get install -y -q --no-install-recommends "${missing[@]}"
		}
		install_missing || { apt-get update -q && install_missing; } ||
			{ echo "test.sh: FAILED to install ${missing[*]}" >&2; exit 1; }
		if [ -n "$our_policy" ]; then
			rm -f "$policy"
			trap - EXIT
		fi
		# Should the install have started the system innd anyway, stop it as
		# its init script does (rc.news stop: innd, innwatch, actsyncd).
		if [ -s /run/news/innd.pid ] && kill -0 "$(cat /run/news/innd.pid)" 2>/dev/null; then
			echo "test.sh: stopping the system innd that the install started"
			su news -s /bin/sh -c '/usr/lib/news/bin/rc.news stop' >/dev/null 2>&1 ||
				kill "$(cat /run/news/innd.pid)" 2>/dev/null || true
		fi
	elif [ "${CI:-}" = true ]; then
		echo "test.sh: FAILED: ${missing[*]} not installed and not root to install them" >&2
		exit 1
	else
		echo "test.sh: warning: ${missing[*]} not installed (run as root to install); their integration tests will be skipped" >&2
	fi
fi

# Unpack Exim (see exim_pkgs) into a directory of its own, once per version.
if ! command -v exim4 >/dev/null && [ -z "${DST_EXIM:-}" ]; then
	exim_ver=$(apt-cache policy exim4-daemon-light 2>/dev/null | awk '$1 == "Candidate:" {print $2}')
	exim_root=/var/cache/dst-test/exim4-${exim_ver//[^A-Za-z0-9.+~-]/_}
	if [ -n "$exim_ver" ] && [ "$exim_ver" != "(none)" ] && [ "$(id -u)" = 0 ] && [ ! -x "$exim_root/usr/sbin/exim4" ]; then
		echo "test.sh: unpacking ${exim_pkgs[*]} $exim_ver into $exim_root"
		dl=$(mktemp -d)
		chmod 755 "$dl" # apt-get download runs as _apt where it can
		(cd "$dl" && apt-get -o APT::Sandbox::User=root download -q "${exim_pkgs[@]}") >/dev/null ||
			{ apt-get update -q >/dev/null && (cd "$dl" && apt-get -o APT::Sandbox::User=root download -q "${exim_pkgs[@]}"); } ||
			{ echo "test.sh: FAILED to download ${exim_pkgs[*]}" >&2; exit 1; }
		rm -rf "$exim_root.tmp" && mkdir -p "$exim_root.tmp"
		for deb in "$dl"/*.deb; do dpkg-deb -x "$deb" "$exim_root.tmp"; done
		rm -rf "$dl" "$exim_root" && mv "$exim_root.tmp" "$exim_root"
	fi
	if [ -x "$exim_root/usr/sbin/exim4" ]; then
		export DST_EXIM=$exim_root/usr/sbin/exim4
		# Debian's exim4 looks up its compiled-in user Debian-exim at every
		# start, even with exim_user set in the configuration; the package's
		# postinst creates it, and dpkg-deb -x runs no postinst.
		if ! getent passwd Debian-exim >/dev/null; then
			if [ "$(id -u)" = 0 ]; then
				echo "test.sh: creating the system user Debian-exim (as exim4-base's postinst does)"
				getent group Debian-exim >/dev/null || groupadd --system Debian-exim
				useradd --system --badname --gid Debian-exim --home-dir /var/spool/exim4 --no-create-home \
					--shell /usr/sbin/nologin Debian-exim
			elif [ "${CI:-}" = true ]; then
				echo "test.sh: FAILED: no user Debian-exim for the unpacked Exim, and not root to create it" >&2
				exit 1
			fi
		fi
	elif [ "${CI:-}" = true ]; then
		echo "test.sh: FAILED: no Exim for test/e2e (install exim4-daemon-light, or run as root to unpack it)" >&2
		exit 1
	else
		echo "test.sh: warning: no Exim (run as root to unpack it); test/e2e's Exim test will be skipped" >&2
	fi
fi

gates
# Integration tests write the figures they measure (trap-to-rejection time)
# here; go test shows nothing of a passing package.
figures=$(mktemp "${TMPDIR:-/tmp}/dst-test-figures.XXXXXX")
trap 'rm -f "$figures"' EXIT
if ! DST_TEST_FIGURES=$figures go test -race -count=1 -timeout 20m ./...; then
	echo "test.sh: FAILED: go test: the failing tests are marked --- FAIL above, each with what it expected" >&2
	exit 1
fi
if [ -s "$figures" ]; then
	echo
	echo "Figures measured by the integration tests:"
	sed 's/^/  /' "$figures"
fi
