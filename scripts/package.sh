#!/usr/bin/env bash
# Builds the Debian package of DST, dist/dst_VERSION_amd64.deb: the three
# programs, the hardened systemd unit, the default configuration, the
# accounts and directories of the security model (in the postinst), the
# man pages (from docs/man/*.md), logrotate and bash completion. What goes
# where is packaging/nfpm.yaml.
#
#   scripts/package.sh [VERSION]     default: internal/buildinfo's Release;
#                                    VERSION is Release or Release-N
#
# It needs Go and go-md2man (Debian: apt-get install go-md2man); it
# installs nfpm, at the pinned version below, into a directory of its own
# under $(go env GOPATH)/pkg/dst-test-tools, as test.sh does its tools.
set -euo pipefail
cd "$(dirname "$0")/.."

nfpm_pkg=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0

release=$(sed -n 's/^const Release = "\(.*\)"$/\1/p' internal/buildinfo/buildinfo.go)
version=${1:-$release}
# The programs print buildinfo's Release: a package named otherwise would
# say one version in dpkg -l and another in dstd version. A Debian
# revision (-1, -2...) may follow it.
if [[ ${version%%-*} != "$release" ]]; then
	echo "package.sh: version $version does not match the programs' release $release (internal/buildinfo): change Release there, or give $release or $release-N" >&2
	exit 2
fi
if ! [[ $version =~ ^[0-9][A-Za-z0-9.+~-]*$ ]]; then
	echo "package.sh: $version is not a Debian version (digits first, then letters, digits, . + ~ -)" >&2
	exit 2
fi

# tool installs the pinned package $1 (path@version) once, and prints the
# path of its program.
tool() {
	local name=${1%@*} ver=${1#*@}
	name=${name##*/}
	local dir
	dir="$(go env GOPATH)/pkg/dst-test-tools/$name-$ver"
	if [ ! -x "$dir/$name" ]; then
		echo "package.sh: installing $1 into $dir" >&2
		GOBIN=$dir go install "$1" >&2 || {
			echo "package.sh: FAILED to install $1: check the network access to the Go module proxy" >&2
			return 1
		}
	fi
	echo "$dir/$name"
}

if ! command -v go-md2man >/dev/null; then
	echo "package.sh: go-md2man is missing: apt-get install go-md2man" >&2
	exit 1
fi
nfpm=$(tool "$nfpm_pkg")

build=dist/build
rm -rf "$build"
mkdir -p "$build/man"
# Static programs: the package depends on nothing but the kernel and the
# accounts in /etc/passwd and /etc/group, which its postinst creates.
CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -ldflags="-s -w" -o "$build/" ./cmd/dstd ./cmd/dstc ./cmd/dstctl

for md in docs/man/*.md; do
	page=$(basename "$md" .md) # dstd.8, dstd.toml.5
	go-md2man -in "$md" -out "$build/man/$page"
	gzip -9n "$build/man/$page"
done

# /usr/share/doc/dst/copyright in Debian's machine-readable format, the
# licence text from LICENSE.
{
	echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
	echo "Upstream-Name: dst"
	echo
	echo "Files: *"
	echo "Copyright: $(sed -n 's/^Copyright (c) //p' LICENSE | head -1)"
	echo "License: BSD-2-Clause"
	sed -n '/^Redistribution/,$p' LICENSE | sed 's/^$/./; s/^/ /'
} >"$build/copyright"

deb=dist/dst_${version}_amd64.deb
rm -f "$deb"
DST_VERSION=$version "$nfpm" package --config packaging/nfpm.yaml --packager deb --target "$deb" >&2
echo "$deb"
