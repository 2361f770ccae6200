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
MUC=muc.parley.local
NOMAM_MUC=nomam.parley.local # a MUC service without an archive, for the no-archive tests
NOMAM_HOST=nomam.local       # ejabberd: a host without mod_mam, whose MUC is muc.nomam.local
TRANSIENT_MUC=transient.parley.local # rooms not persistent by default, for the persistent-rooms tests
TRANSIENT_HOST=transient.local       # ejabberd: the same, as muc.transient.local

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

log() { printf 'devserver: %s\n' "$*" >&2; }

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
		log "need root (or sudo) to run: $*"; return 1
	fi
}

# apt_install PACKAGE: install from apt without letting the package start a
# system-wide server of its own.
apt_install() {
	log "installing $1 from apt"
	export DEBIAN_FRONTEND=noninteractive
	# policy-rc.d keeps the package from starting a system-wide server of its own.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
		as_root chmod +x /usr/sbin/policy-rc.d
		trap 'as_root rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	as_root apt-get install -y -q "$1" >/dev/null 2>&1 || {
		as_root apt-get update -q >/dev/null 2>&1
		as_root apt-get install -y -q "$1" >/dev/null
	}
}

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

write_prosody_config() {
	local d data; d=$(prosody_dir); data=$(prosody_data)
	mkdir -p "$d/certs" "$data" # certs: Prosody looks there (none: loopback, no TLS)
	cat >"$d/prosody.cfg.lua" <<CFG
-- Generated by scripts/devserver.sh: a loopback-only test server.
daemonize = false
run_as_root = true
pidfile = "$d/prosody.pid"
data_path = "$data"
log = { info = "$d/prosody.log"; error = "$d/prosody.err" }
plugin_paths = {}

c2s_ports = { $PROSODY_PORT }
c2s_interfaces = { "127.0.0.1" }
s2s_ports = {}
http_ports = {}
https_ports = {}
component_ports = {}

c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_hashed"
-- Archives (and everything else) in SQLite, as a deployment keeps them in SQL:
-- the internal file storage reads a room's whole archive file for every MAM
-- page, so paging a long archive is quadratic (10,000 messages replay at ~74
-- msg/s, against ~830 msg/s here). The SQL storage keeps archives whole (no
-- item limit unless storage_archive_item_limit is set).
storage = "sql"
sql = { driver = "SQLite3", database = "prosody.sqlite" }

-- admin_shell: "prosodyctl --config FILE shell" over admin_socket, which the
-- end-to-end tests use to remove an occupant without telling it (XEP-0410).
modules_enabled = { "roster", "saslauth", "disco", "ping", "mam", "register", "time", "version", "admin_shell" }
modules_disabled = { "s2s" }
admin_socket = "$data/prosody.sock"
archive_expires_after = "never"
max_archive_query_results = 50
-- Tests connect many clients at once from one address.
limits = { c2s = { rate = "100mb/s" } }

VirtualHost "$DOMAIN"

-- Rooms persist by default, as a Parley deployment wants: a non-persistent room
-- is destroyed with its archive when its last occupant leaves.
-- muc_room_cache_size: Prosody keeps this many rooms live (default 100) and
-- swaps the least recently used to disk to make room for another, occupied or
-- not, rewriting its list of rooms each time. A connection in thousands of rooms
-- needs them all live; the joins benchmark keeps 3 × 10,000 rooms occupied
-- (beyond the cache, every join swaps a room out and answers take seconds).
Component "$MUC" "muc"
	modules_enabled = { "muc_mam" }
	restrict_room_creation = false
	muc_room_cache_size = 50000
	muc_room_default_persistent = true
	muc_log_by_default = true
	muc_log_all_rooms = true
	muc_log_expires_after = "never"
	max_history_messages = 50

Component "$NOMAM_MUC" "muc"
	restrict_room_creation = false

-- Rooms that die with their last occupant, unless made persistent.
Component "$TRANSIENT_MUC" "muc"
	modules_enabled = { "muc_mam" }
	restrict_room_creation = false
	muc_room_cache_size = 50000
	muc_room_default_persistent = false
	muc_log_by_default = true
	muc_log_all_rooms = true
	muc_log_expires_after = "never"
CFG
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

# The Erlang node's name follows the port, so that two instances (each with its own
# PARLEY_DEV_DIR and ports) can run side by side on one port mapper (epmd). Mnesia
# refuses a database made by another node name, so each name has a spool of its own
# (mnesia keeps only accounts and sessions here: rooms and archives are in SQL).
ejabberd_node() { echo "parleydev_${EJABBERD_PORT}@localhost"; }
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
	cat >"$d/etc/ejabberdctl.cfg" <<CFG
ERLANG_NODE=$(ejabberd_node)
ERL_OPTIONS="-setcookie parleydev -env ERL_CRASH_DUMP_BYTES 0"
export ERL_EPMD_ADDRESS=127.0.0.1
INET_DIST_INTERFACE=127.0.0.1
EJABBERD_CONFIG_PATH=$d/etc/ejabberd.yml
EJABBERD_PID_PATH=$d/ejabberd.pid
CFG
	cat >"$d/etc/ejabberd.yml" <<CFG
# Generated by scripts/devserver.sh: a loopback-only test server.
hosts:
  - $DOMAIN
  - $NOMAM_HOST
  - $TRANSIENT_HOST
loglevel: warning
log_rotate_count: 0
certfiles: []
auth_method: internal
# Rooms and archives in SQL (SQLite, one database per host), as a deployment keeps
# them: mnesia caps a table at 2 GB, and a heavy run filled the archive's ("won't
# store"). ejabberd 23.01 creates the SQLite schema itself (its lite.sql) in a
# database that has no tables. Sessions, accounts and the rest stay in mnesia.
sql_type: sqlite
sql_database: "$data/$DOMAIN.db"
default_db: sql
listen:
  - port: $EJABBERD_PORT
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls_required: false
    max_stanza_size: 262144
    shaper: none
    access: all
shaper_rules:
  max_user_sessions: 1000
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
modules:
  mod_disco: {}
  mod_ping: {}
  mod_roster: {}
  mod_mam:
    db_type: sql
    assume_mam_usage: true
    default: always
  mod_muc:
    host: muc.@HOST@
    db_type: sql
    access: all
    access_create: all
    access_persistent: all
    access_admin: none
    access_mam: all
    history_size: 0
    max_users: 1000
    max_user_conferences: 100000
    default_room_options:
      mam: true
      persistent: true
      public: true
host_config:
  $NOMAM_HOST:
    sql_database: "$data/$NOMAM_HOST.db"
    modules:
      mod_disco: {}
      mod_muc:
        host: muc.@HOST@
        db_type: sql
        access: all
        access_create: all
        default_room_options:
          mam: false
  $TRANSIENT_HOST:
    sql_database: "$data/$TRANSIENT_HOST.db"
    modules:
      mod_disco: {}
      mod_mam:
        db_type: sql
        assume_mam_usage: true
        default: always
      mod_muc:
        host: muc.@HOST@
        db_type: sql
        access: all
        access_create: all
        access_persistent: all
        access_mam: all
        max_user_conferences: 100000
        default_room_options:
          mam: true
          persistent: false
CFG
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
