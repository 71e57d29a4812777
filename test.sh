#!/usr/bin/env bash
# Runs DST's whole test suite: formatting, vet, and go test -race over every
# package, including the integration tests that start real components (Postfix)
# on loopback. Run as root: it installs those components with apt-get when they
# are missing. With CI=true, a component that cannot be installed fails the run
# (the integration tests also refuse to skip).
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages of the real components the integration tests start.
packages=(postfix)

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
		apt-get install -y -q --no-install-recommends "${missing[@]}" ||
			{ apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } ||
			{ echo "test.sh: FAILED to install ${missing[*]}" >&2; exit 1; }
	elif [ "${CI:-}" = true ]; then
		echo "test.sh: FAILED: ${missing[*]} not installed and not root to install them" >&2
		exit 1
	else
		echo "test.sh: warning: ${missing[*]} not installed (run as root to install); their integration tests will be skipped" >&2
	fi
fi

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "test.sh: FAILED: gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi
go vet ./...
go test -race -count=1 -timeout 20m ./...
