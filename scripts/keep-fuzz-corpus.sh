#!/usr/bin/env bash
# Copies the corpus that `go test -fuzz` grew in the Go build cache into each
# package's testdata/fuzz/<Target>/, where `go test` replays it as seeds and
# where it is committed. Run after a fuzzing session.
set -euo pipefail
cd "$(dirname "$0")/.."
mod=$(go list -m)
cache=$(go env GOCACHE)/fuzz/$mod
[ -d "$cache" ] || { echo "no fuzz corpus in $cache"; exit 0; }
for target in "$cache"/*/*/ "$cache"/*/*/*/; do
	[ -d "$target" ] || continue
	rel=${target#"$cache"/}
	pkg=$(dirname "$rel") name=$(basename "$rel")
	[[ $name == Fuzz* ]] || continue
	[ -d "$pkg" ] || continue
	mkdir -p "$pkg/testdata/fuzz/$name"
	cp -n "$target"/* "$pkg/testdata/fuzz/$name/" 2>/dev/null || true
	echo "$pkg/testdata/fuzz/$name: $(ls "$pkg/testdata/fuzz/$name" | wc -l) inputs"
done
