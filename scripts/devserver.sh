#!/usr/bin/env bash
# devserver.sh: local XMPP servers for parley-xmpp's tests and demo.
#
#   scripts/devserver.sh start [SERVER...]    install from apt if missing, and start on
#                                             127.0.0.1 with MUC + MAM and the test accounts
#   scripts/devserver.sh stop [SERVER...]     stop what this script started (by pid file)
#   scripts/devserver.sh restart [SERVER...]  stop and start again, keeping the data
#   scripts/devserver.sh reset [SERVER...]    stop, delete the data (rooms, archives), start
#                                             afresh: what the benchmarks want (both servers
#                                             slow down as their archives and rooms pile up)
#   scripts/devserver.sh status [SERVER...]   exit 0 when every one is up
#
# SERVER is prosody (Prosody 0.12, port 5222, the default service) or ejabberd
# (ejabberd 23.01, port 15222); without one, both. Idempotent: start on a running server
# and stop on a stopped one are no-ops. No systemd, no files outside the state directory
# ($PARLEY_DEV_DIR, default /tmp/parley-xmpp-dev: configurations, logs, pid files) and
# the data directory on tmpfs (see data_root: rooms and archives, in SQLite).
# PARLEY_DEV_DIR, PARLEY_DEV_PROSODY_PORT and PARLEY_DEV_EJABBERD_PORT run a second
# instance beside the first (set all three for every command, the chaos tests'
# restarts included: they inherit them). Nothing else is shared: each instance
# has its own data directory, Erlang node name and mnesia spool, and listens on
# its two ports only (and the Erlang distribution on a random loopback port);
# the Erlang port mapper (epmd) is shared and refuses to stop while a node is
# registered with it. Listens on loopback only. Plain-text
# authentication is enabled because the servers are reachable from this machine only;
# never copy these configurations to a real deployment.
set -euo pipefail

PROSODY_PORT=${PARLEY_DEV_PROSODY_PORT:-5222}
EJABBERD_PORT=${PARLEY_DEV_EJABBERD_PORT:-15222}
# The state directory (pid files) follows the ports unless PARLEY_DEV_DIR names
# one: an instance on other ports never reads the first instance's pid files
# (stop and restart would end that instance's servers).
if [ "$PROSODY_PORT:$EJABBERD_PORT" = 5222:15222 ]; then
	DEV_DIR=${PARLEY_DEV_DIR:-${TMPDIR:-/tmp}/parley-xmpp-dev}
else
	DEV_DIR=${PARLEY_DEV_DIR:-${TMPDIR:-/tmp}/parley-xmpp-dev-$PROSODY_PORT-$EJABBERD_PORT}
fi
DOMAIN=parley.local
# The other names (muc.parley.local, nomam.parley.local, transient.parley.local
# and ejabberd's hosts nomam.local and transient.local) are internal/devconfig's.

# Where the servers keep their data (accounts, rooms, archives): on tmpfs
# (/dev/shm) when the machine has one we can write, else the temp dir. Both servers
# keep their archives in SQLite (see below), where every archived message is a
# synced transaction: on an ordinary disk sequential post -> reflection on Prosody
# falls to about 300 msg/s (p50 3 ms), on tmpfs it runs at about 1,070 msg/s (p50
# 0.6 ms). The data is throwaway (reset deletes it), so the sync buys nothing here.
# A production server keeps its archives on a disk whose sync cost it accepts, or in
# PostgreSQL (docs/performance.md). The name follows PARLEY_DEV_DIR, so that two
# instances never share data.
data_root() {
	local base=${TMPDIR:-/tmp}
	if [ -d /dev/shm ] && [ -w /dev/shm ]; then base=/dev/shm; fi
	echo "$base/parley-xmpp-dev-$(printf '%s' "$DEV_DIR" | cksum | cut -d' ' -f1)"
}

# Test accounts: user:password. These exist only on this throwaway loopback server.
ACCOUNTS="parley:parleypass parley2:parleypass2 parley3:parleypass3 observer:observerpass"


# as_root and apt_install: scripts/apt.sh, shared with scripts/deps.sh.
. "$(dirname "$0")/apt.sh"

# Prosody's SQL storage reaches SQLite through LuaDBI's driver, a separate package.
install_prosody() {
	command -v prosody >/dev/null || apt_install prosody
	dpkg -s lua-dbi-sqlite3 >/dev/null 2>&1 || apt_install lua-dbi-sqlite3
}

prosody_dir() { echo "$DEV_DIR/prosody"; }
prosody_pid() {
	local f; f="$(prosody_dir)/prosody.pid"
	[ -s "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

prosody_data() { echo "$(data_root)/prosody"; }

# render: the configurations come from internal/devconfig's templates, which
# the tests' private servers render too (nothing here is a copy of them).
render() {
	(cd "$(dirname "$0")/.." && go run ./internal/devconfig/render "$@")
}

write_prosody_config() {
	local d data; d=$(prosody_dir); data=$(prosody_data)
	mkdir -p "$d/certs" "$data" # certs: Prosody looks there (none: loopback, no TLS)
	render prosody "$d" "$data" "$PROSODY_PORT"
}

start_prosody() {
	if [ -n "$(prosody_pid || true)" ]; then log "prosody already running (pid $(prosody_pid))"; return 0; fi
	if port_open "$PROSODY_PORT"; then
		log "port $PROSODY_PORT is taken by another process; set PARLEY_DEV_PROSODY_PORT"; return 1
	fi
	install_prosody
	write_prosody_config
	local d; d=$(prosody_dir)
	local acct
	for acct in $ACCOUNTS; do
		prosodyctl --config "$d/prosody.cfg.lua" register "${acct%%:*}" "$DOMAIN" "${acct#*:}" >/dev/null
	done
	prosody --config "$d/prosody.cfg.lua" -F >"$d/stdout.log" 2>&1 &
	local i
	for i in $(seq 1 100); do
		if port_open "$PROSODY_PORT" && [ -n "$(prosody_pid || true)" ]; then
			log "prosody up on 127.0.0.1:$PROSODY_PORT (pid $(prosody_pid), config in $d, data in $(prosody_data))"; return 0
		fi
		sleep 0.1
	done
	log "prosody did not start; its log:"; tail -n 30 "$d"/*.log "$d"/*.err >&2 2>/dev/null || true
	return 1
}

stop_prosody() {
	local pid; pid=$(prosody_pid || true)
	[ -n "$pid" ] || { log "prosody not running"; return 0; }
	kill "$pid"
	local i
	for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
	rm -f "$(prosody_dir)/prosody.pid"
	log "prosody stopped"
}

# ---- ejabberd ----

# ejabberd reaches SQLite through erlang-p1-sqlite3, a separate package.
install_ejabberd() {
	[ -x /usr/sbin/ejabberdctl ] || apt_install ejabberd
	dpkg -s erlang-p1-sqlite3 >/dev/null 2>&1 || apt_install erlang-p1-sqlite3
}

ejabberd_dir() { echo "$DEV_DIR/ejabberd"; }
ejabberd_data() { echo "$(data_root)/ejabberd"; }

ejabberdctl_() {
	local d; d=$(ejabberd_dir)
	ejabberdctl --config-dir "$d/etc" --ctl-config "$d/etc/ejabberdctl.cfg" --spool "$(ejabberd_spool)" --logs "$d/log" "$@"
}

# The Erlang node's name follows the port (parleydev_PORT, internal/devconfig), so
# that two instances (each with its own PARLEY_DEV_DIR and ports) can run side by
# side on one port mapper (epmd). Mnesia refuses a database made by another node
# name, so each name has a spool of its own (mnesia keeps only accounts and
# sessions here: rooms and archives are in SQL).
ejabberd_spool() { echo "$(ejabberd_dir)/db/${EJABBERD_PORT}"; }

# stop_epmd: end the Erlang port mapper ejabberd started, but only once no node
# (another instance's ejabberd, or anything else Erlang) is registered with it.
stop_epmd() {
	local names
	names=$(ERL_EPMD_ADDRESS=127.0.0.1 epmd -names 2>/dev/null) || return 0
	if printf '%s\n' "$names" | grep -q '^name '; then return 0; fi
	ERL_EPMD_ADDRESS=127.0.0.1 epmd -kill >/dev/null 2>&1 || true
}

ejabberd_pid() {
	local f; f="$(ejabberd_dir)/ejabberd.pid"
	[ -s "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"
}

write_ejabberd_config() {
	local d data; d=$(ejabberd_dir); data=$(ejabberd_data)
	mkdir -p "$d/etc" "$(ejabberd_spool)" "$d/log" "$data"
	cp /etc/ejabberd/inetrc "$d/etc/inetrc"
	render ejabberd "$d" "$data" "$EJABBERD_PORT"
	chown -R ejabberd:ejabberd "$d" "$data"
}

start_ejabberd() {
	if [ -n "$(ejabberd_pid || true)" ]; then log "ejabberd already running (pid $(ejabberd_pid))"; return 0; fi
	if port_open "$EJABBERD_PORT"; then
		log "port $EJABBERD_PORT is taken by another process; set PARLEY_DEV_EJABBERD_PORT"; return 1
	fi
	install_ejabberd
	write_ejabberd_config
	local d; d=$(ejabberd_dir)
	ejabberdctl_ start >/dev/null
	if ! ejabberdctl_ started >/dev/null 2>&1; then
		log "ejabberd did not start; its log:"; tail -n 30 "$d"/log/error.log >&2 2>/dev/null || true
		stop_epmd
		return 1
	fi
	local acct
	for acct in $ACCOUNTS; do
		ejabberdctl_ register "${acct%%:*}" "$DOMAIN" "${acct#*:}" >/dev/null 2>&1 || true
	done
	local i
	for i in $(seq 1 100); do
		if port_open "$EJABBERD_PORT"; then
			log "ejabberd up on 127.0.0.1:$EJABBERD_PORT (pid $(ejabberd_pid), config in $d, data in $(ejabberd_data))"; return 0
		fi
		sleep 0.1
	done
	log "ejabberd started but does not listen on $EJABBERD_PORT"; return 1
}

stop_ejabberd() {
	local pid; pid=$(ejabberd_pid || true)
	[ -n "$pid" ] || { log "ejabberd not running"; return 0; }
	ejabberdctl_ stop >/dev/null 2>&1 || true
	ejabberdctl_ stopped >/dev/null 2>&1 || true
	local i
	for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
	rm -f "$(ejabberd_dir)/ejabberd.pid"
	# The Erlang port mapper it started: ours to end once no node uses it.
	stop_epmd
	log "ejabberd stopped"
}

# ---- dispatch ----

cmd=${1:-}
shift || true
servers=${*:-prosody ejabberd}
rc=0
for srv in $servers; do
	case "$srv" in prosody | ejabberd) ;; *) echo "unknown server $srv (prosody or ejabberd)" >&2; exit 2 ;; esac
	case "$cmd" in
	start) "start_$srv" || rc=1 ;;
	stop) "stop_$srv" || rc=1 ;;
	restart) { "stop_$srv" && "start_$srv"; } || rc=1 ;;
	reset) { "stop_$srv" && rm -rf "$("${srv}_dir")" "$("${srv}_data")" && "start_$srv"; } || rc=1 ;;
	status) [ -n "$("${srv}_pid" || true)" ] || rc=1 ;;
	*) echo "usage: $0 start|stop|restart|reset|status [prosody|ejabberd]..." >&2; exit 2 ;;
	esac
done
exit $rc
