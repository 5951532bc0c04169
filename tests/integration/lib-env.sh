# Test environment for the integration scripts (sourced after tests/lib.sh).
#
# env_setup makes a private world for one script run: the `vmlet` system
# user/group (agentd's user) and the `vmlet-admin` group, a temp dir
# (0755 so agentd's user can traverse it) with dev certificates, a config
# pointing every path into it and a free loopback port. start_hostd /
# start_agentd run the real binaries in the background and wait (bounded)
# until their sockets listen. A trap stops everything and removes the dir,
# keeping the daemons' logs in $T_BUILD/test-logs/.
#
# Knobs a script may set before env_setup (or before env_write_config):
#   E_HANDSHAKE_MS E_IDLE_MS E_RATE E_BURST E_MAXCONN E_HOSTD_TIMEOUT_MS
#   E_ALLOW_ROOT_PEER
#   E_TMP_PARENT  where the temp dir is made (default /tmp; a script that
#                 runs jailed VMMs needs a root-owned, not world-writable
#                 parent such as /var/lib, because the jail checks every
#                 directory above its root)
#   E_HOSTD_EXTRA more lines for the [hostd] section (cgroup_root, accel, ...)

HOSTD=$T_BUILD/vmlet-hostd
AGENTD=$T_BUILD/vmlet-agentd
VMLETCTL=$T_BUILD/vmletctl
PY=${PYTHON:-python3}
WIRE_PY=$T_ROOT/tests/integration/lib-wire.py

D=
E_CONF=
E_PORT=
E_SOCK=
E_HOSTD_SOCK=
E_HOSTD_PID=
E_AGENTD_PID=
E_EXTRA_PIDS=()
E_ADMIN_GID=
E_VMLET_UID=

wire() { timeout 60 "$PY" "$WIRE_PY" "$@"; }

# ---- users and groups (the ones deploy/ creates) ----------------------------
. "$T_ROOT/deploy/lib-users.sh"
env_users() {
	vmlet_ensure_users || return 1
	E_ADMIN_GID=$(getent group vmlet-admin | cut -d: -f3)
	E_VMLET_UID=$(id -u vmlet)
}

# A TCP port on 127.0.0.1 that nothing listens on right now (the kernel
# picks it; the tiny window until agentd binds it is acceptable here).
free_port() {
	"$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ---- config -------------------------------------------------------------
env_write_config() {
	cat >"$E_CONF" <<EOF
# written by tests/integration/lib-env.sh for $T_NAME
[node]
id = node-1
production = false

[paths]
state_dir = $D/state
agentd_state_dir = $D/agentd
run_dir = $D/run
hostd_socket_dir = $D/run/hostd

[agentd]
user = vmlet
group = vmlet
listen = 127.0.0.1:$E_PORT
local_socket = $E_SOCK
admin_group = vmlet-admin
max_connections = ${E_MAXCONN:-256}
handshake_timeout_ms = ${E_HANDSHAKE_MS:-1000}
idle_timeout_ms = ${E_IDLE_MS:-60000}
rate_limit = ${E_RATE:-50}
rate_burst = ${E_BURST:-100}
hostd_timeout_ms = ${E_HOSTD_TIMEOUT_MS:-2000}

[tls]
ca = $D/certs/ca.pem
cert = $D/certs/node.pem
key = $D/certs/node.key
coordinators = vmlet://coordinator

[hostd]
allow_root_peer = ${E_ALLOW_ROOT_PEER:-false}
${E_HOSTD_EXTRA:-}
EOF
	chmod 0644 "$E_CONF"
}

# ---- set-up / tear-down -----------------------------------------------------
env_setup() {
	local b
	for b in "$HOSTD" "$AGENTD" "$VMLETCTL"; do
		if [ ! -x "$b" ]; then
			t_fail "setup" "$b is not built (run make all)"
			t_done; exit 1
		fi
	done
	if ! env_users; then t_fail "setup" "could not create user vmlet / group vmlet-admin"; t_done; exit 1; fi
	D=$(mktemp -d "${E_TMP_PARENT:-/tmp}/vmlet-it.XXXXXX") || { t_fail "setup" "mktemp"; t_done; exit 1; }
	trap env_cleanup EXIT
	trap 'exit 130' INT TERM
	chmod 0755 "$D"
	mkdir -m 0755 "$D/run" "$D/bin"
	mkdir -m 0700 "$D/state" "$D/agentd"
	chown vmlet:vmlet "$D/agentd"
	# A copy other uids can execute whatever the checkout's permissions are.
	install -m 0755 "$VMLETCTL" "$D/bin/vmletctl"
	if ! "$VMLETCTL" certs init --dir "$D/certs" --node-id node-1 >"$D/certs-init.log" 2>&1; then
		t_fail "setup" "vmletctl certs init: $(tail -3 "$D/certs-init.log")"
		t_done; exit 1
	fi
	# Root only: agentd loads its key before it drops privileges.
	chown -R root:root "$D/certs"
	chmod 0700 "$D/certs"
	chmod 0600 "$D"/certs/*.key
	E_CONF=$D/vmlet.conf
	E_SOCK=$D/run/agentd.sock
	E_HOSTD_SOCK=$D/run/hostd/hostd.sock
	E_PORT=$(free_port)
	env_write_config
}

# Stop one pid: SIGTERM, up to 10 s, then SIGKILL. Sets E_STOP_RC to its
# exit status (or "killed" when SIGKILL was needed).
stop_pid() {
	local pid=$1 i
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; E_STOP_RC=gone; return 0; }
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		E_STOP_RC=killed
		return 1
	fi
	wait "$pid" 2>/dev/null
	E_STOP_RC=$?
	return 0
}

env_cleanup() {
	local p
	for p in "${E_EXTRA_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	stop_pid "$E_AGENTD_PID"
	stop_pid "$E_HOSTD_PID"
	[ -n "$D" ] && [ -d "$D" ] || return 0
	mkdir -p "$T_BUILD/test-logs"
	for p in hostd agentd; do
		[ -f "$D/$p.log" ] && cp "$D/$p.log" "$T_BUILD/test-logs/$T_NAME.$p.log"
	done
	if [ "$T_FAILED" != 0 ]; then
		echo "daemon logs: $T_BUILD/test-logs/$T_NAME.{hostd,agentd}.log"
	fi
	if [ -n "${E_KEEP:-}" ]; then echo "kept $D"; else rm -rf "$D"; fi
}

# Is PATH (unix) or 127.0.0.1:PORT (tcp) a listening socket owned by PID?
listening_unix() { ss -Hxlp 2>/dev/null | grep -F " $1 " | grep -q "pid=$2,"; }
listening_tcp() { ss -Hltnp "sport = :$1" 2>/dev/null | grep -q "pid=$2,"; }

# Wait (bounded: 15 s) until CHECK... succeeds while PID lives.
wait_ready() {
	local pid=$1 what=$2 i; shift 2
	for i in $(seq 150); do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "$what exited before it was ready" >&2
			return 1
		fi
		"$@" && return 0
		sleep 0.1
	done
	echo "$what not ready within 15 s" >&2
	return 1
}

start_hostd() {
	"$HOSTD" --config "$E_CONF" >>"$D/hostd.log" 2>&1 &
	E_HOSTD_PID=$!
	wait_ready "$E_HOSTD_PID" hostd listening_unix "$E_HOSTD_SOCK" "$E_HOSTD_PID" ||
		{ tail -5 "$D/hostd.log" >&2; return 1; }
}

_agentd_listening() {
	listening_unix "$E_SOCK" "$E_AGENTD_PID" && listening_tcp "$E_PORT" "$E_AGENTD_PID"
}

start_agentd() {
	"$AGENTD" --config "$E_CONF" >>"$D/agentd.log" 2>&1 &
	E_AGENTD_PID=$!
	wait_ready "$E_AGENTD_PID" agentd _agentd_listening ||
		{ tail -5 "$D/agentd.log" >&2; return 1; }
}

stop_hostd() { stop_pid "$E_HOSTD_PID"; local r=$?; E_HOSTD_PID=; return $r; }
stop_agentd() { stop_pid "$E_AGENTD_PID"; local r=$?; E_AGENTD_PID=; return $r; }
kill_hostd() {
	[ -n "$E_HOSTD_PID" ] || return 0
	kill -KILL "$E_HOSTD_PID" 2>/dev/null; wait "$E_HOSTD_PID" 2>/dev/null; E_HOSTD_PID=
}

# Both daemons, or fail the script (nothing else can be tested without them).
env_start_both() {
	if ! start_hostd 2>"$D/start.err"; then
		t_fail "start hostd" "$(tr '\n' ' ' <"$D/start.err")"; t_done; exit 1
	fi
	if ! start_agentd 2>"$D/start.err"; then
		t_fail "start agentd" "$(tr '\n' ' ' <"$D/start.err")"; t_done; exit 1
	fi
}

# ---- clients ------------------------------------------------------------------
# vmletctl over the local socket / over mutual TLS as the coordinator, bounded.
ctl_local() { timeout 30 "$VMLETCTL" --socket "$E_SOCK" "$@"; }
ctl_tls() {
	timeout 30 "$VMLETCTL" --connect "127.0.0.1:$E_PORT" --ca "$D/certs/ca.pem" \
		--cert "$D/certs/coordinator.pem" --key "$D/certs/coordinator.key" "$@"
}
# ctl_tls_as CERT KEY [CA] ARGS...: another client identity.
ctl_tls_as() {
	local cert=$1 key=$2; shift 2
	timeout 30 "$VMLETCTL" --connect "127.0.0.1:$E_PORT" --ca "$D/certs/ca.pem" \
		--cert "$cert" --key "$key" "$@"
}

# run_capture NAME CMD...: runs CMD, stdout -> $D/NAME.out, stderr ->
# $D/NAME.err, exit status -> $RC.
RC=0
run_capture() {
	local n=$1; shift
	"$@" >"$D/$n.out" 2>"$D/$n.err"; RC=$?
}

# jget FILE KEY: the value of the first KEY found anywhere in the JSON
# document FILE (strings bare, everything else as JSON); "MISSING" if absent,
# exit 2 if FILE is not JSON.
jget() {
	"$PY" - "$1" "$2" <<'EOF'
import json, sys
try:
    doc = json.load(open(sys.argv[1]))
except Exception as e:
    print("not JSON: %s" % e); sys.exit(2)
def find(o, k):
    if isinstance(o, dict):
        if k in o: return True, o[k]
        o = list(o.values())
    if isinstance(o, list):
        for v in o:
            ok, r = find(v, k)
            if ok: return True, r
    return False, None
ok, v = find(doc, sys.argv[2])
print(v if isinstance(v, str) else ("MISSING" if not ok else json.dumps(v)))
EOF
}

# Seconds-bounded poll: wait_for SECONDS CMD... (0 when CMD succeeded).
wait_for() {
	local secs=$1 i; shift
	for i in $(seq $((secs * 10))); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}
