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
# The packages that talk to a real server run once per server; the chaos suite,
# which restarts its server, runs alone after the others.
live='/runtime$|/serve$|/cmd/parley-xmpp$|/cluster$|/chaos$|/examples/|/bench$'
echo "== go test -race (unit)"
go test -race -count=1 -timeout 15m $(go list ./... | grep -Ev "$live")
echo "== fuzz (each target briefly; make fuzz runs them longer)"
# A count, not a duration: Go 1.26's fuzz coordinator can fail a run that ends
# on its -fuzztime deadline with a bare "context deadline exceeded" and no
# input (go.dev/issue/75804, fixed in Go 1.27), as it did once in CI here.
FUZZTIME=3000x scripts/fuzz.sh
for server in ${PARLEY_TEST_SERVERS:-prosody ejabberd}; do
	case $server in
	prosody) service=xmpp://127.0.0.1:5222 ;;
	ejabberd) service=xmpp://127.0.0.1:15222 ;;
	esac
	echo "== go test -race against $server"
	PARLEY_TEST_SERVER=$server PARLEY_XMPP_SERVICE=$service go test -race -count=1 -timeout 15m ./runtime ./serve ./cmd/parley-xmpp ./cluster ./examples/... ./bench
	echo "== chaos against $server"
	PARLEY_TEST_SERVER=$server PARLEY_XMPP_SERVICE=$service go test -race -count=1 -timeout 15m ./chaos
done
