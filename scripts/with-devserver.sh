#!/usr/bin/env bash
# with-devserver.sh CMD...: run CMD with the local XMPP dev server up. Starts (and
# if need be installs) the server when it isn't running, and stops it afterwards
# only if this script started it.
set -euo pipefail
cd "$(dirname "$0")/.."
started=""
if ! scripts/devserver.sh status; then
	scripts/devserver.sh start
	started=1
fi
cleanup() { if [ -n "$started" ]; then scripts/devserver.sh stop; fi; }
trap cleanup EXIT
# The server is known to be up: integration tests must reach it, never skip.
export PARLEY_XMPP_REQUIRE_SERVER=1
"$@"
