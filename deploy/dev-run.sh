#!/usr/bin/env bash
# `make run`: runs vmlet-hostd and vmlet-agentd from the build tree on a
# development directory ./dev/ (config, dev CA and certificates, state),
# prints how to talk to them, and stops both on Ctrl-C. It builds nothing:
# `make run` has built the binaries already.
#
# Env: O (build dir, default build), VMLET_DEV_PORT (TLS port, default 7443).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
O=${O:-build}
case "$O" in /*) ;; *) O=$ROOT/$O ;; esac
HOSTD=$O/vmlet-hostd
AGENTD=$O/vmlet-agentd
CTL=$O/vmletctl
DEV=$ROOT/dev
PORT=${VMLET_DEV_PORT:-7443}

die() { echo "dev-run: $*" >&2; exit 1; }

for b in "$HOSTD" "$AGENTD" "$CTL"; do
	[ -x "$b" ] || die "$b is not built (use: make run)"
done
if [ "$(id -u)" != 0 ]; then
	die "needs root: vmlet-hostd is the root helper that performs host operations
(namespaces, cgroups, network, LUKS), and vmlet-agentd starts as root to read
its key and bind its sockets before dropping to user 'vmlet'. Run: sudo make run"
fi
if ss -Hltn "sport = :$PORT" 2>/dev/null | grep -q .; then
	die "TCP port $PORT is in use; set VMLET_DEV_PORT to another port"
fi

# ---- users and groups (as installed by deploy/vmlet.sysusers.conf) ---------------
. "$ROOT/deploy/lib-users.sh"
vmlet_ensure_users || die "could not create user vmlet / group vmlet-admin"

# ---- the development directory ---------------------------------------------------------
mkdir -p "$DEV" && chmod 0755 "$DEV"
mkdir -p -m 0700 "$DEV/state"
# After dropping privileges agentd (user vmlet) must still reach hostd's
# socket and its own state dir. When the checkout is not traversable by that
# user (e.g. under /root), those two live under /run/vmlet-dev instead.
if setpriv --reuid=vmlet --regid=vmlet --clear-groups test -x "$DEV" 2>/dev/null; then
	RUNBASE=$DEV
else
	RUNBASE=/run/vmlet-dev
	echo "dev-run: $DEV is not reachable by user vmlet; sockets and agentd state go to $RUNBASE"
	mkdir -p "$RUNBASE" && chmod 0755 "$RUNBASE"
fi
mkdir -p "$RUNBASE/run" && chmod 0755 "$RUNBASE/run"
mkdir -p "$RUNBASE/agentd" && chmod 0700 "$RUNBASE/agentd" && chown vmlet:vmlet "$RUNBASE/agentd"

# Node id from the host name, made a valid id ([a-z0-9-], 1-63, no edge '-').
NODE=$(hostname -s 2>/dev/null | tr 'A-Z_.' 'a-z--' | tr -cd 'a-z0-9-' | cut -c1-63 | sed 's/^-*//; s/-*$//')
NODE=${NODE:-dev-node}

CONF=$DEV/vmlet.conf
if [ ! -f "$CONF" ]; then
	cat >"$CONF" <<EOF
# Development config written by deploy/dev-run.sh (make run). Edit freely;
# it is kept between runs. Keys and defaults: README.md, shared/config.h.
[node]
id = $NODE
production = false

[paths]
state_dir = $DEV/state
agentd_state_dir = $RUNBASE/agentd
run_dir = $RUNBASE/run
hostd_socket_dir = $RUNBASE/run/hostd

[agentd]
user = vmlet
group = vmlet
listen = 127.0.0.1:$PORT
local_socket = $RUNBASE/run/agentd.sock
admin_group = vmlet-admin

[tls]
ca = $DEV/certs/ca.pem
cert = $DEV/certs/node.pem
key = $DEV/certs/node.key
coordinators = vmlet://coordinator

[hostd]
allow_root_peer = false
EOF
	chmod 0644 "$CONF"
	echo "dev-run: wrote $CONF (node id $NODE)"
else
	NODE=$(sed -n 's/^[[:space:]]*id[[:space:]]*=[[:space:]]*//p' "$CONF" | head -1)
fi
SOCK=$(sed -n 's/^[[:space:]]*local_socket[[:space:]]*=[[:space:]]*//p' "$CONF" | head -1)
LISTEN=$(sed -n 's/^[[:space:]]*listen[[:space:]]*=[[:space:]]*//p' "$CONF" | head -1)
HSOCKDIR=$(sed -n 's/^[[:space:]]*hostd_socket_dir[[:space:]]*=[[:space:]]*//p' "$CONF" | head -1)

# The sample desired state, addressed to this node.
if [ ! -f "$DEV/desired.json" ] && [ -f "$ROOT/tests/data/desired-vmlet.json" ]; then
	sed "s/\"node_id\": *\"[^\"]*\"/\"node_id\": \"$NODE\"/" "$ROOT/tests/data/desired-vmlet.json" >"$DEV/desired.json"
fi

if [ ! -f "$DEV/certs/ca.pem" ]; then
	"$CTL" certs init --dir "$DEV/certs" --node-id "$NODE" || die "vmletctl certs init failed"
	echo "dev-run: made a development CA and certificates in $DEV/certs"
fi
chmod 0700 "$DEV/certs"

# ---- run ------------------------------------------------------------------------------------
HOSTD_PID=
AGENTD_PID=
# Each daemon in its own session, so Ctrl-C reaches only this script, which
# stops them in order: agentd first (no new requests), then hostd.
# stop_one NAME PID: SIGTERM, then SIGKILL if it is still there after 10 s.
stop_one() {
	local i
	[ -n "$2" ] || return 0
	kill -TERM "$2" 2>/dev/null || return 0
	for i in $(seq 100); do kill -0 "$2" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$2" 2>/dev/null; then
		echo "dev-run: $1 ignored SIGTERM for 10 s, killing it"
		kill -KILL "$2" 2>/dev/null
	fi
	wait "$2" 2>/dev/null
}
stop() {
	trap - INT TERM
	echo
	echo "dev-run: stopping"
	stop_one agentd "$AGENTD_PID"
	stop_one hostd "$HOSTD_PID"
	echo "dev-run: stopped (logs: $DEV/hostd.log $DEV/agentd.log)"
	exit 0
}
trap stop INT TERM

# wait_listen PID PATH: bounded wait (15 s) for a unix socket PATH.
wait_listen() {
	local i
	for i in $(seq 150); do
		kill -0 "$1" 2>/dev/null || return 1
		[ -S "$2" ] && ss -Hxl 2>/dev/null | grep -qF " $2 " && return 0
		sleep 0.1
	done
	return 1
}

echo "dev-run: starting vmlet-hostd (log: $DEV/hostd.log)"
# The log readers ignore SIGINT: Ctrl-C must not close the daemons' stderr
# under them (they would die of SIGPIPE instead of shutting down cleanly).
setsid "$HOSTD" --config "$CONF" > >(trap '' INT; tee -a "$DEV/hostd.log" | sed -u 's/^/hostd  | /') 2>&1 &
HOSTD_PID=$!
wait_listen "$HOSTD_PID" "$HSOCKDIR/hostd.sock" || { echo "dev-run: hostd did not start"; stop; }

echo "dev-run: starting vmlet-agentd (log: $DEV/agentd.log)"
setsid "$AGENTD" --config "$CONF" > >(trap '' INT; tee -a "$DEV/agentd.log" | sed -u 's/^/agentd | /') 2>&1 &
AGENTD_PID=$!
wait_listen "$AGENTD_PID" "$SOCK" || { echo "dev-run: agentd did not start"; stop; }

REL_CTL=${CTL#"$ROOT"/}
rel() { local p=${1#"$ROOT"/}; echo "$p"; }
cat <<EOF

vmlet is running (node $NODE): hostd pid $HOSTD_PID, agentd pid $AGENTD_PID.
Talk to it from $ROOT:

  local socket (root or members of vmlet-admin):
    $REL_CTL --socket $(rel "$SOCK") node info
    $REL_CTL --socket $(rel "$SOCK") tenant list

  mutual TLS as the coordinator:
    $REL_CTL --connect $LISTEN --ca $(rel "$DEV/certs/ca.pem") --cert $(rel "$DEV/certs/coordinator.pem") --key $(rel "$DEV/certs/coordinator.key") node stats

  a desired state (validated; the reconcile engine is not there yet):
    $REL_CTL --socket $(rel "$SOCK") reconcile -f dev/desired.json

Ctrl-C stops both.

EOF

# Until Ctrl-C, or until one daemon exits by itself (then stop the other).
wait -n "$HOSTD_PID" "$AGENTD_PID"
rc=$?
echo "dev-run: a daemon exited (status $rc)"
kill -0 "$HOSTD_PID" 2>/dev/null || HOSTD_PID=
kill -0 "$AGENTD_PID" 2>/dev/null || AGENTD_PID=
stop
