# apt.sh: sourced by devserver.sh and deps.sh. Installs Debian packages the way
# the README promises: as root (or through sudo), without letting a package
# start a system-wide server of its own, refreshing the package lists only when
# an install fails. Where neither root nor sudo is available, it fails naming
# the command that installs the package.

log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
		log "need root (or sudo) to run: $*"; return 1
	fi
}

# apt_install PACKAGE: install from apt without letting the package start a
# system-wide server of its own (policy-rc.d, and systemctl where systemd runs).
apt_install() {
	log "installing $1 from apt"
	export DEBIAN_FRONTEND=noninteractive
	local guard=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null || { apt_refuse "$1"; return 1; }
		as_root chmod +x /usr/sbin/policy-rc.d
		guard=1
	fi
	local rc=0
	as_root apt-get install -y -q --no-install-recommends "$1" >/dev/null 2>&1 || {
		as_root apt-get update -q >/dev/null 2>&1
		as_root apt-get install -y -q --no-install-recommends "$1" >/dev/null
	} || rc=$?
	if [ -n "$guard" ]; then as_root rm -f /usr/sbin/policy-rc.d; fi
	if [ "$rc" != 0 ]; then apt_refuse "$1"; return "$rc"; fi
}

apt_refuse() { log "could not install $1: run 'sudo apt-get install $1' and try again"; }

# need PROGRAM PACKAGE: install PACKAGE unless PROGRAM is on PATH (or, for a
# PROGRAM that is a path, exists).
need() {
	if [ -x "$1" ] || command -v "$1" >/dev/null; then return 0; fi
	apt_install "$2"
}
