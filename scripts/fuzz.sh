#!/usr/bin/env bash
# fuzz.sh: runs every fuzz target of the module (a func FuzzXxx in a _test.go
# file) for FUZZTIME each (default 60s), one after the other, with
# FUZZPARALLEL workers (default 2). A failure stops it; the input that failed
# is written to the package's testdata/fuzz/FuzzXxx/: fix the bug and commit
# the input as a seed. `make fuzz` runs it; scripts/check.sh runs it briefly.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
fuzztime=${FUZZTIME:-60s}
targets=$(grep -rH --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]+\(f \*testing\.F\)' . |
	sed -E 's|^\./(.*)/[^/]+_test\.go:func (Fuzz[A-Za-z0-9_]+)\(.*|\1 \2|' | sort)
if [ -z "$targets" ]; then echo "fuzz.sh: no fuzz targets found" >&2; exit 1; fi
while read -r dir name; do
	echo "== fuzz $name (./$dir, $fuzztime)"
	go test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" -parallel "${FUZZPARALLEL:-2}" "./$dir" | grep -v '^fuzz: elapsed' || exit 1
done <<<"$targets"
