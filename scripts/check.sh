#!/usr/bin/env bash
# check.sh: every check and test of the project. Run it through `make test`,
# which brings up the local XMPP server first.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt would change:"; echo "$unformatted"; exit 1; fi
echo "== go vet"
go vet ./...
echo "== staticcheck"
go tool staticcheck ./...
echo "== go test -race"
# The chaos suite restarts the server: it runs alone, after the others.
go test -race -count=1 -timeout 15m $(go list ./... | grep -v '/chaos$')
echo "== chaos"
go test -race -count=1 -timeout 15m ./chaos
