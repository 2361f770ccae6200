#!/usr/bin/env bash
# deps.sh: installs from Debian what `make test` runs besides the XMPP servers
# (scripts/devserver.sh installs those): etcd for the cluster tests, prometheus
# and promtool for examples/monitoring, systemd-analyze for examples/systemd,
# python3-slixmpp (for /usr/bin/python3) as the third-party client of runtime's
# relations tests, iproute2 (ip) for the cluster's partition tests (network
# namespaces; they run as root).
# Idempotent; a tool that can't be installed fails the run with the command
# that installs it. Package-started servers (etcd, prometheus) are stopped: the
# tests start their own on loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/apt.sh
need systemd-analyze systemd
need ip iproute2
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
	apt_install prometheus
	if [ -d /run/systemd/system ]; then as_root systemctl disable --now prometheus >/dev/null 2>&1 || true; fi
fi
if ! command -v etcd >/dev/null; then
	apt_install etcd-server
	if [ -d /run/systemd/system ]; then as_root systemctl disable --now etcd >/dev/null 2>&1 || true; fi
fi
if ! /usr/bin/python3 -c 'import slixmpp' >/dev/null 2>&1; then
	apt_install python3-slixmpp
fi
/usr/bin/python3 -c 'import slixmpp' >/dev/null 2>&1 || { log "python3-slixmpp is still missing after the install"; exit 1; }
for tool in systemd-analyze ip prometheus promtool etcd; do
	command -v "$tool" >/dev/null || { log "$tool is still missing after the install"; exit 1; }
done
