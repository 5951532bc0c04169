#!/usr/bin/env bash
# vmlet-hostd alone, as root: socket dir and socket modes/owners, the peer
# uid check (another uid is refused, closed and logged; the agentd uid is
# served), node facts over NNG match the host, hostile bytes get 400,
# stale-socket recovery, one hostd per socket, clean shutdown on
# SIGTERM/SIGINT (socket removed).
set -u
. "$(dirname "$0")/../lib.sh"
t_require_root

HOSTD=$T_BUILD/vmlet-hostd
if [ ! -x "$HOSTD" ]; then t_fail "build" "$HOSTD missing (run make all)"; t_done; exit 1; fi
for tool in setpriv cc stat nproc; do
	if ! command -v "$tool" >/dev/null; then t_skip "all" "needs $tool"; t_done; exit 0; fi
done

# The agentd user (as the other integration tests create it).
getent group vmlet >/dev/null || groupadd --system vmlet
id -u vmlet >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin -g vmlet vmlet
if ! id -u nobody >/dev/null 2>&1 || ! getent group nogroup >/dev/null; then
	t_skip "all" "needs user nobody and group nogroup"; t_done; exit 0
fi

TMP=$(mktemp -d /tmp/hostd_peer.XXXXXX)
chmod 0711 "$TMP" # the clients below run as vmlet and nobody
HOSTD_PID=
stop_hostd() { # [signal]
	if [ -n "$HOSTD_PID" ] && kill -0 "$HOSTD_PID" 2>/dev/null; then
		kill -"${1:-TERM}" "$HOSTD_PID"
		wait "$HOSTD_PID"
		HOSTD_RC=$?
	fi
	HOSTD_PID=
}
cleanup() { stop_hostd KILL 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

# The test client (tests/helpers/nng_client.c): a make-built one if there
# is a rule for it, else built here from the generated protobuf-c code.
CLIENT=$TMP/nng_client
if [ -x "$T_BUILD/tests/helpers/nng_client" ]; then
	install -m 0755 "$T_BUILD/tests/helpers/nng_client" "$CLIENT"
elif ! cc -std=c11 -D_GNU_SOURCE -O1 -I"$T_ROOT" -I"$T_BUILD/gen" -I"$T_BUILD/gen/rpc" -o "$CLIENT" \
	"$T_ROOT/tests/helpers/nng_client.c" "$T_BUILD/gen/rpc/host.pb-c.c" \
	"$T_BUILD/gen/rpc/agent.pb-c.c" -lprotobuf-c -lnng -lpthread 2>"$TMP/cc.log"; then
	t_fail "build nng_client" "$(head -5 "$TMP/cc.log")"; t_done; exit 1
fi
chmod 0755 "$CLIENT"

SOCKDIR=$TMP/run/hostd
SOCK=$SOCKDIR/hostd.sock
URL=ipc://$SOCK
LOG=$TMP/hostd.log

write_config() { # allow_root_peer [max_frame]
	cat >"$TMP/vmlet.conf" <<EOC
[node]
id = hostd-peer-test
[paths]
state_dir = $TMP/state
agentd_state_dir = $TMP/state/agentd
run_dir = $TMP/run
hostd_socket_dir = $SOCKDIR
[agentd]
user = vmlet
group = vmlet
max_frame = ${2:-1048576}
[hostd]
allow_root_peer = $1
workers = 4
EOC
	chmod 0644 "$TMP/vmlet.conf"
}

start_hostd() {
	"$HOSTD" --config "$TMP/vmlet.conf" >>"$LOG" 2>&1 &
	HOSTD_PID=$!
	# Facts probes (qemu --version, KVM) run before the socket exists; the
	# log is shared by every start, so wait for this process's own line.
	for _ in $(seq 1 200); do
		grep -q "pid=$HOSTD_PID event=hostd_started" "$LOG" 2>/dev/null && [ -S "$SOCK" ] && return 0
		kill -0 "$HOSTD_PID" 2>/dev/null || break
		sleep 0.05
	done
	return 1
}

as_agentd() { setpriv --reuid=vmlet --regid=vmlet --clear-groups "$CLIENT" "$@"; }
field() { sed -n "s/^$1=//p"; }

# ---- start ------------------------------------------------------------------
write_config false
: >"$LOG"
if ! start_hostd; then t_fail "hostd starts" "$(tail -5 "$LOG")"; t_done; exit 1; fi
t_pass "hostd starts and listens"

# ---- files ------------------------------------------------------------------------
got=$(stat -c '%a %U %G' "$SOCKDIR")
[ "$got" = "750 root vmlet" ] && t_pass "socket dir is 0750 root:vmlet" || t_fail "socket dir mode/owner" "$got"
got=$(stat -c '%F %a %U %G' "$SOCK")
[ "$got" = "socket 660 root vmlet" ] && t_pass "socket is 0660 root:vmlet" || t_fail "socket mode/owner" "$got"
got=$(stat -c '%a %U' "$TMP/state")/$(stat -c '%a %U' "$TMP/state/tenants")
[ "$got" = "711 root/700 root" ] && t_pass "state dir 0711, tenants 0700, root" || t_fail "state dir modes" "$got"

# ---- the agentd uid is served -----------------------------------------------------
out=$(as_agentd "$URL" node_facts); rc=$?
if [ $rc = 0 ]; then
	t_pass "agentd uid is served"
	[ "$(echo "$out" | field node_facts.total_vcpus)" = "$(nproc)" ] &&
		t_pass "NodeInfo.total_vcpus = nproc" ||
		t_fail "NodeInfo.total_vcpus" "$(echo "$out" | field node_facts.total_vcpus) vs $(nproc)"
	mem=$(echo "$out" | field node_facts.total_mem_mib)
	host_mem=$(( $(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo) / 1024 ))
	if [ -n "$mem" ] && [ $((mem * 100)) -ge $((host_mem * 99)) ] && [ $((mem * 100)) -le $((host_mem * 101)) ]; then
		t_pass "NodeInfo.total_mem_mib within 1% of MemTotal"
	else
		t_fail "NodeInfo.total_mem_mib" "$mem vs $host_mem"
	fi
	[ "$(echo "$out" | field node_facts.arch)" = "$(uname -m)" ] &&
	[ "$(echo "$out" | field node_facts.kernel_release)" = "$(uname -r)" ] &&
	[ "$(echo "$out" | field node_facts.hostname)" = "$(uname -n)" ] &&
	[ "$(echo "$out" | field node_facts.node_id)" = "hostd-peer-test" ] &&
		t_pass "NodeInfo arch/kernel/hostname/node_id match" ||
		t_fail "NodeInfo identity" "$(echo "$out" | grep -E 'arch|kernel|hostname|node_id' | tr '\n' ' ')"
	if command -v qemu-system-x86_64 >/dev/null; then
		want=$(qemu-system-x86_64 --version | sed -n '1s/^QEMU emulator version \([^ ]*\).*/\1/p')
		[ "$(echo "$out" | field node_facts.qemu_version)" = "$want" ] &&
			t_pass "NodeInfo.qemu_version = $want" ||
			t_fail "NodeInfo.qemu_version" "$(echo "$out" | field node_facts.qemu_version) vs $want"
	else
		t_skip "NodeInfo.qemu_version" "qemu-system-x86_64 not installed"
	fi
else
	t_fail "agentd uid is served" "rc=$rc $out"
fi

out=$(as_agentd "$URL" node_stats)
[ $? = 0 ] && [ "$(echo "$out" | field node_stats.tenant_count)" = 0 ] &&
	[ "$(echo "$out" | field node_stats.running_instances)" = 0 ] &&
	t_pass "NodeStats on an empty registry is zero" || t_fail "NodeStats" "$out"
out=$(as_agentd "$URL" list_tenants)
[ $? = 0 ] && [ "$(echo "$out" | field tenants.tenants.count)" = 0 ] &&
	t_pass "tenant list is empty" || t_fail "tenant list" "$out"
out=$(as_agentd "$URL" list_instances acme)
[ $? = 0 ] && [ "$(echo "$out" | field instances.instances.count)" = 0 ] &&
	t_pass "instance list is empty" || t_fail "instance list" "$out"
out=$(as_agentd "$URL" lookup acme web i-0000abcd); rc=$?
[ $rc = 1 ] && [ "$(echo "$out" | field error.code)" = 404 ] &&
	[ "$(echo "$out" | field error.message)" = "instance acme/web/i-0000abcd not found" ] &&
	t_pass "unknown instance -> 404" || t_fail "unknown instance" "rc=$rc $out"
out=$(as_agentd "$URL" lookup ../x web i-0000abcd); rc=$?
[ $rc = 1 ] && [ "$(echo "$out" | field error.code)" = 400 ] &&
	echo "$out" | grep -q "lookup_instance.tenant_id" &&
	t_pass "path traversal id -> 400 naming the field" || t_fail "bad id" "rc=$rc $out"
out=$(as_agentd "$URL" raw ffffffff0a); rc=$?
[ $rc = 1 ] && [ "$(echo "$out" | field error.code)" = 400 ] &&
	t_pass "garbage bytes -> 400" || t_fail "garbage bytes" "rc=$rc $out"
out=$(as_agentd "$URL" raw 4a00); rc=$?
[ $rc = 1 ] && [ "$(echo "$out" | field error.code)" = 400 ] &&
	t_pass "unknown operation -> 400" || t_fail "unknown operation" "rc=$rc $out"

# Several requests at once (several NNG contexts).
for k in 1 2 3 4 5 6 7 8; do as_agentd "$URL" node_stats >"$TMP/par.$k" 2>&1 & done
wait_ok=0
for job in $(jobs -p); do [ "$job" = "$HOSTD_PID" ] && continue; wait "$job" || wait_ok=1; done
[ $wait_ok = 0 ] && [ "$(cat "$TMP"/par.* | grep -c '^node_stats.tenant_count=0$')" = 8 ] &&
	t_pass "8 concurrent clients served" || t_fail "concurrent clients" "$(head -3 "$TMP"/par.*)"

# ---- other uids are refused ----------------------------------------------------------
# nobody with agentd's group passes the file modes: the uid check must stop it.
setpriv --reuid=nobody --regid=vmlet --clear-groups "$CLIENT" --timeout 1500 "$URL" node_facts >"$TMP/nobody.out" 2>&1 &
cpid=$!
wait $cpid; rc=$?
out=$(cat "$TMP/nobody.out")
if [ $rc = 3 ] && ! echo "$out" | grep -q node_facts && echo "$out" | grep -Eq 'pipes_removed=[1-9]'; then
	t_pass "uid 65534 (in agentd's group) gets no answer; its connections are closed"
else
	t_fail "uid 65534 refused" "rc=$rc $out"
fi
grep -q "event=peer_refused uid=65534 pid=$cpid " "$LOG" &&
	t_pass "log: peer_refused uid=65534 pid=$cpid" || t_fail "peer_refused log line" "$(grep peer_ "$LOG" | tail -3)"
# Without the group it cannot even reach the socket.
out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups "$CLIENT" --timeout 1500 "$URL" node_facts 2>&1); rc=$?
[ $rc = 3 ] && echo "$out" | grep -qi "permission denied" &&
	t_pass "uid 65534 outside agentd's group: permission denied" || t_fail "nobody/nogroup" "rc=$rc $out"
# root is refused unless allow_root_peer.
"$CLIENT" --timeout 1500 "$URL" node_facts >"$TMP/root.out" 2>&1 &
cpid=$!
wait $cpid; rc=$?
[ $rc = 3 ] && grep -q "event=peer_refused uid=0 pid=$cpid " "$LOG" &&
	t_pass "root refused when allow_root_peer = false" || t_fail "root refused" "rc=$rc $(cat "$TMP/root.out")"
out=$(as_agentd "$URL" node_stats); rc=$?
[ $rc = 0 ] && t_pass "agentd still served after refusals" || t_fail "served after refusals" "rc=$rc $out"

# ---- one hostd per socket ----------------------------------------------------------------
out=$(timeout 30 "$HOSTD" --config "$TMP/vmlet.conf" 2>&1); rc=$?
[ $rc != 0 ] && echo "$out" | grep -q "another hostd is listening" && [ -S "$SOCK" ] &&
	t_pass "a second hostd refuses to take over the socket" || t_fail "second hostd" "rc=$rc $(echo "$out" | tail -2)"

# ---- shutdown ---------------------------------------------------------------------------------
stop_hostd TERM
[ "${HOSTD_RC:-x}" = 0 ] && [ ! -e "$SOCK" ] && grep -q "event=hostd_stopped" "$LOG" &&
	t_pass "SIGTERM: exit 0, socket removed" || t_fail "SIGTERM shutdown" "rc=${HOSTD_RC:-?} sock=$(ls "$SOCKDIR")"

# ---- root allowed by config; frame cap; stale socket recovery; SIGINT -----------------------
write_config true 1024
if start_hostd; then
	out=$("$CLIENT" "$URL" node_stats); rc=$?
	[ $rc = 0 ] && t_pass "root served when allow_root_peer = true" || t_fail "root allowed" "rc=$rc $out"
	# NNG_OPT_RECVMAXSZ = max_frame: a bigger message is never read.
	out=$("$CLIENT" --timeout 1500 "$URL" fill 2048); rc=$?
	[ $rc = 3 ] && ! echo "$out" | grep -q "^error" &&
		t_pass "message over max_frame (1024) is dropped unread" || t_fail "frame cap" "rc=$rc $out"
	out=$("$CLIENT" "$URL" fill 512); rc=$?
	[ $rc = 1 ] && [ "$(echo "$out" | field error.code)" = 400 ] &&
		t_pass "512 zero bytes under the cap -> 400" || t_fail "under the cap" "rc=$rc $out"
	stop_hostd KILL 2>/dev/null # leaves the socket file behind
	if [ -S "$SOCK" ] && start_hostd; then
		grep -q "pid=$HOSTD_PID event=stale_socket_removed" "$LOG" && out=$("$CLIENT" "$URL" node_stats) &&
			t_pass "stale socket from a killed hostd is replaced" || t_fail "stale socket" "$(tail -3 "$LOG")"
		stop_hostd INT
		[ "${HOSTD_RC:-x}" = 0 ] && [ ! -e "$SOCK" ] &&
			t_pass "SIGINT: exit 0, socket removed" || t_fail "SIGINT shutdown" "rc=${HOSTD_RC:-?}"
	else
		t_fail "restart after SIGKILL" "$(tail -3 "$LOG")"
	fi
else
	t_fail "hostd restarts" "$(tail -5 "$LOG")"
fi

t_done
