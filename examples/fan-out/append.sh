#!/bin/sh
# append.sh FILE: the exec sink of the fan-out example. The engine runs it once
# per message, with the message as JSON on standard input (and PARLEY_ROUTE,
# PARLEY_TOPIC and PARLEY_MESSAGE_ID in the environment); exit status 0 means
# delivered. The message id makes a redelivery (after a crash) easy to drop.
set -eu
out=${1:?usage: append.sh FILE}
line=$(cat)
grep -qF "\"id\":\"$PARLEY_MESSAGE_ID\"" "$out" 2>/dev/null && exit 0 # already have it
printf '%s\n' "$line" >>"$out"
