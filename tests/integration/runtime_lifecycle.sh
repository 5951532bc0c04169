#!/usr/bin/env bash
# The instance lifecycle through vmlet-hostd with real jails, cgroups and
# QEMU (TCG): boot the test guest and see its marker; prove the jail from
# outside (uid/gid, CapEff 0, NoNewPrivs 1, root and namespaces differ,
# cgroup); pause stops the ticks, resume continues them; sleep leaves no
# process and a 0600 snapshot in a 0700 dir; wake continues the same boot
# (restore, not reboot); a hostd restart re-adopts the running VMM and
# reaps debris nobody accounts for; kill -9 of the VMM is recorded; stop is
# graceful; destroy leaves no process, cgroup, jail dir, mount, snapshot or
# record. Hostile: unknown image, image hash mismatch. Every wait bounded.
set -u
. "$(dirname "$0")/../lib.sh"
t_require_root

HOSTD=$T_BUILD/vmlet-hostd
CLIENT_BIN=$T_BUILD/tests/helpers/host_client
GUEST=$T_BUILD/guest
QEMU=/usr/bin/qemu-system-x86_64
if [ ! -x "$HOSTD" ] || [ ! -x "$CLIENT_BIN" ]; then
	t_fail "build" "$HOSTD or $CLIENT_BIN missing (make all build/tests/helpers/host_client)"
	t_done; exit 1
fi
if [ ! -x "$QEMU" ]; then t_skip "all" "needs $QEMU (qemu-system-x86)"; t_done; exit 0; fi
if [ ! -s "$GUEST/vmlinuz" ] || [ ! -s "$GUEST/initrd.gz" ]; then
	t_skip "all" "needs the test guest in $GUEST (make guest)"; t_done; exit 0
fi
if ! grep -q "cgroup .*memory" /proc/self/mountinfo && ! grep -q cgroup2 /proc/self/mountinfo; then
	t_skip "all" "needs cgroups"; t_done; exit 0
fi
getent group vmlet >/dev/null || groupadd --system vmlet
id -u vmlet >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin -g vmlet vmlet

# The jail requires every directory above it to be root's and not
# group/world-writable, so the state dir cannot live under /tmp.
TMP=$(mktemp -d /var/lib/vmlet-runtime-test.XXXXXX)
chmod 0755 "$TMP"
STATE=$TMP/state
CGROOT=vmlet-rt-$$
SOCK=$TMP/run/hostd/hostd.sock
LOG=$TMP/hostd.log
T=acme P=web I=i-0000abcd
IDIR=$STATE/tenants/$T/pools/$P/instances/$I
CONSOLE=$IDIR/console.log
HOSTD_PID=

cgroup_dirs() { # every cgroup dir of vmlet's test root, in every hierarchy
	find /sys/fs/cgroup -maxdepth 5 -type d -path "*/$CGROOT*" 2>/dev/null
}
stop_hostd() {
	if [ -n "$HOSTD_PID" ] && kill -0 "$HOSTD_PID" 2>/dev/null; then
		kill -TERM "$HOSTD_PID"
		for _ in $(seq 1 100); do kill -0 "$HOSTD_PID" 2>/dev/null || break; sleep 0.05; done
		kill -KILL "$HOSTD_PID" 2>/dev/null
		wait "$HOSTD_PID" 2>/dev/null
	fi
	HOSTD_PID=
}
cleanup() {
	stop_hostd
	# KEEP_LOG=FILE keeps hostd's log (e.g. to read sanitizer reports).
	[ -n "${KEEP_LOG:-}" ] && cp "$LOG" "$KEEP_LOG"
	# Anything left in the test's cgroups (a failed run) is killed by pid.
	for d in $(cgroup_dirs | sort -r); do
		for p in $(cat "$d/cgroup.procs" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
	done
	sleep 0.2
	for d in $(cgroup_dirs | sort -r); do rmdir "$d" 2>/dev/null; done
	rm -rf "$TMP"
}
trap cleanup EXIT

cat >"$TMP/vmlet.conf" <<EOC
[node]
id = runtime-test
[paths]
state_dir = $STATE
agentd_state_dir = $STATE/agentd
run_dir = $TMP/run
hostd_socket_dir = $TMP/run/hostd
[agentd]
user = vmlet
group = vmlet
[hostd]
allow_root_peer = true
workers = 4
cgroup_root = $CGROOT
accel = tcg
console_log_max = 1048576
EOC
chmod 0644 "$TMP/vmlet.conf"

start_hostd() {
	"$HOSTD" --config "$TMP/vmlet.conf" >>"$LOG" 2>&1 &
	HOSTD_PID=$!
	for _ in $(seq 1 200); do
		grep -q "pid=$HOSTD_PID event=hostd_started" "$LOG" 2>/dev/null && [ -S "$SOCK" ] && return 0
		kill -0 "$HOSTD_PID" 2>/dev/null || break
		sleep 0.05
	done
	return 1
}
hc() { "$CLIENT_BIN" --timeout 60000 "ipc://$SOCK" "$@"; }
field() { sed -n "s/^$1=//p" | head -1; }
# wait_until SECONDS CMD...: poll every 0.1 s, bounded.
wait_until() {
	local n=$(( $1 * 10 )); shift
	for _ in $(seq 1 "$n"); do "$@" && return 0; sleep 0.1; done
	return 1
}
state_of() { hc lookup "$T" "$P" "$1" | field instance.state; }
pid_of() { hc lookup "$T" "$P" "$1" | field instance.pid; }
ticks() { local n; n=$(grep -c '^vmlet-tick' "$CONSOLE" 2>/dev/null); echo "${n:-0}"; }
ticks_above() { [ "$(ticks)" -gt "$1" ]; }
expect_state() { # name instance want
	local got; got=$(state_of "$2")
	[ "$got" = "INSTANCE_STATE_$3" ] && t_pass "$1" || t_fail "$1" "state $got, want $3"
}
# Gone, or a zombie on its way out: a re-adopted VMM is no longer hostd's
# child, so whoever inherited it (pid 1) reaps it, in its own time.
gone() {
	local st
	st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)
	[ -z "$st" ] || [ "$st" = Z ]
}

: >"$LOG"
mkdir -p "$STATE/images"
if ! "$T_ROOT/deploy/install-image.sh" guest "$GUEST" "$STATE/images" >/dev/null 2>"$TMP/install.err"; then
	t_fail "install the guest image" "$(cat "$TMP/install.err")"; t_done; exit 1
fi
if ! start_hostd; then t_fail "hostd starts" "$(tail -5 "$LOG")"; t_done; exit 1; fi
t_pass "hostd starts with the runtime"

# ---- tenant, pool, instance -------------------------------------------------------------
hc ensure_tenant "$T" 10 10.10.0.0/24 >/dev/null && hc ensure_pool "$T" "$P" h1 >/dev/null &&
	t_pass "ensure tenant and pool" || t_fail "ensure tenant and pool"
[ "$(hc create "$T" "$P" "$I" 1 128 guest h1 | field instance.state)" = INSTANCE_STATE_CREATED ] &&
	t_pass "create -> created" || t_fail "create" "$(hc lookup "$T" "$P" "$I")"

# ---- hostile: images ------------------------------------------------------------------------
out=$(hc create "$T" "$P" i-0000bad0 1 128 ../guest); rc=$?
[ $rc = 1 ] && echo "$out" | grep -q "error.code=400" && t_pass "image name with .. refused (400)" ||
	t_fail "image traversal" "$out"
hc create "$T" "$P" i-0000bad1 1 128 nope >/dev/null
out=$(hc action "$T" "$P" i-0000bad1 start)
echo "$out" | grep -q "error.code=404" && echo "$out" | grep -q "image nope not found" &&
	t_pass "start with a missing image: 404, names it" || t_fail "missing image" "$out"
mkdir -p "$TMP/badimg" && cp "$GUEST/vmlinuz" "$GUEST/initrd.gz" "$TMP/badimg/"
"$T_ROOT/deploy/install-image.sh" bad "$TMP/badimg" "$STATE/images" >/dev/null 2>&1
chmod u+w "$STATE/images/bad/initrd.gz" && printf 'x' >>"$STATE/images/bad/initrd.gz" &&
	chmod 0444 "$STATE/images/bad/initrd.gz"
hc create "$T" "$P" i-0000bad2 1 128 bad >/dev/null
out=$(hc action "$T" "$P" i-0000bad2 start)
echo "$out" | grep -q "error.code=500" && echo "$out" | grep -qi "sha256\|hash" &&
	t_pass "start with a tampered image is refused (hash mismatch)" || t_fail "hash mismatch" "$out"
[ "$(state_of i-0000bad2)" = INSTANCE_STATE_CREATED ] && [ -z "$(cgroup_dirs | grep -E 'i-0000bad[12]')" ] &&
	[ ! -e "$STATE/jail/i-0000bad1" ] && [ ! -e "$STATE/jail/i-0000bad2" ] &&
	t_pass "a refused start leaves no cgroup or jail dir" || t_fail "refused start left debris" "$(cgroup_dirs)"
hc action "$T" "$P" i-0000bad1 destroy >/dev/null
hc action "$T" "$P" i-0000bad2 destroy >/dev/null

# ---- start ----------------------------------------------------------------------------------
out=$(hc action "$T" "$P" "$I" start)
[ "$(echo "$out" | field instance.state)" = INSTANCE_STATE_RUNNING ] && t_pass "start -> running" ||
	t_fail "start" "$out $(tail -3 "$LOG")"
VPID=$(pid_of "$I")
if wait_until 60 grep -q VMLET-GUEST-READY "$CONSOLE"; then
	t_pass "guest console shows VMLET-GUEST-READY"
else
	t_fail "guest readiness" "$(tail -5 "$CONSOLE" 2>/dev/null)"
fi
BOOT_ID=$(sed -n 's/.*VMLET-GUEST-READY boot_id=\([0-9a-f-]*\).*/\1/p' "$CONSOLE" | head -1)
out=$(hc action "$T" "$P" "$I" start)
[ "$(echo "$out" | field instance.pid)" = "$VPID" ] && t_pass "start again: no-op, same pid" ||
	t_fail "start twice" "$out"

# ---- the jail, seen from outside --------------------------------------------------------------
if [ -n "$VPID" ] && [ -r "/proc/$VPID/status" ]; then
	uids=$(awk '/^Uid:/{print $2,$3,$4,$5}' "/proc/$VPID/status")
	gids=$(awk '/^Gid:/{print $2,$3,$4,$5}' "/proc/$VPID/status")
	set -- $uids
	[ "$1" -ge 200000 ] && [ "$uids" = "$1 $1 $1 $1" ] && [ "$gids" = "$uids" ] &&
		t_pass "VMM runs as its own uid/gid ($1)" || t_fail "uid/gid" "uid $uids gid $gids"
	[ "$(awk '/^CapEff:/{print $2}' "/proc/$VPID/status")" = 0000000000000000 ] &&
		[ "$(awk '/^CapBnd:/{print $2}' "/proc/$VPID/status")" = 0000000000000000 ] &&
		t_pass "CapEff and CapBnd are 0" || t_fail "capabilities" "$(grep Cap "/proc/$VPID/status")"
	[ "$(awk '/^NoNewPrivs:/{print $2}' "/proc/$VPID/status")" = 1 ] && t_pass "NoNewPrivs 1" ||
		t_fail "NoNewPrivs"
	[ "$(stat -L -c %d:%i "/proc/$VPID/root/")" != "$(stat -L -c %d:%i /)" ] &&
		t_pass "its root differs from hostd's" || t_fail "root is the host's"
	same=""
	for ns in mnt pid net ipc uts cgroup; do
		[ "$(readlink "/proc/$VPID/ns/$ns")" = "$(readlink "/proc/$HOSTD_PID/ns/$ns")" ] && same="$same $ns"
	done
	[ -z "$same" ] && t_pass "mnt pid net ipc uts cgroup namespaces differ from hostd's" ||
		t_fail "shared namespaces" "$same"
	grep -q "memory:/$CGROOT/$T/$I\$\|^0::/$CGROOT/$T/$I\$" "/proc/$VPID/cgroup" &&
		t_pass "VMM is in its cgroup $CGROOT/$T/$I" || t_fail "cgroup" "$(cat "/proc/$VPID/cgroup")"
	env_n=$(tr '\0' '\n' <"/proc/$VPID/environ" | grep -c .)
	[ "$env_n" -le 3 ] && t_pass "VMM environment is the jail's ($env_n entries)" ||
		t_fail "environment" "$(tr '\0' ' ' <"/proc/$VPID/environ")"
else
	t_fail "VMM process" "pid '$VPID' not readable"
fi
[ "$(stat -c '%a %U' "$CONSOLE")" = "600 root" ] && t_pass "console log is root 0600" ||
	t_fail "console log mode" "$(stat -c '%a %U' "$CONSOLE")"

# ---- pause / resume ---------------------------------------------------------------------------
[ "$(hc action "$T" "$P" "$I" pause | field instance.state)" = INSTANCE_STATE_WARM ] &&
	t_pass "pause -> warm" || t_fail "pause"
n1=$(ticks); sleep 2.5; n2=$(ticks)
[ "$n1" = "$n2" ] && t_pass "paused guest stops ticking ($n1)" || t_fail "paused guest ticks" "$n1 -> $n2"
out=$(hc action "$T" "$P" "$I" resume)
wait_until 10 ticks_above "$n2" && t_pass "resume -> ticks continue" || t_fail "resume" "$out"

# ---- sleep -------------------------------------------------------------------------------------
out=$(hc action "$T" "$P" "$I" sleep)
[ "$(echo "$out" | field instance.state)" = INSTANCE_STATE_SLEEPING ] && t_pass "sleep -> sleeping" ||
	t_fail "sleep" "$out"
gone "$VPID" && [ -z "$(pgrep -f "guest=$I")" ] && t_pass "asleep: no VMM process left" ||
	t_fail "process after sleep" "$(pgrep -af "guest=$I")"
SNAP=$IDIR/snapshot/vm.state
[ -s "$SNAP" ] && [ "$(stat -c '%a %U' "$SNAP")" = "600 root" ] &&
	[ "$(stat -c '%a %U' "$IDIR/snapshot")" = "700 root" ] &&
	t_pass "snapshot $(stat -c %s "$SNAP") bytes, 0600 in a 0700 dir" ||
	t_fail "snapshot file" "$(ls -la "$IDIR/snapshot" 2>&1)"
[ -z "$(cgroup_dirs | grep "/$I")" ] && [ ! -e "$STATE/jail/$I" ] &&
	t_pass "asleep: no cgroup, no jail dir" || t_fail "debris while asleep" "$(cgroup_dirs)"

# ---- wake --------------------------------------------------------------------------------------
n1=$(ticks)
out=$(hc action "$T" "$P" "$I" wake)
[ "$(echo "$out" | field instance.state)" = INSTANCE_STATE_RUNNING ] && t_pass "wake -> running" ||
	t_fail "wake" "$out $(tail -3 "$LOG")"
VPID=$(pid_of "$I")
if wait_until 15 ticks_above "$n1"; then
	last=$(grep '^vmlet-tick' "$CONSOLE" | tail -1)
	[ "$(grep -c VMLET-GUEST-READY "$CONSOLE")" = 1 ] && echo "$last" | grep -q "boot_id=$BOOT_ID " &&
		t_pass "woken guest continues the same boot ($BOOT_ID), no second boot" ||
		t_fail "wake rebooted" "$last"
else
	t_fail "ticks after wake" "$(tail -3 "$CONSOLE")"
fi

# ---- a second instance: its own uid; killed while hostd is down -------------------------------------
I2=i-0000beef
hc create "$T" "$P" "$I2" 1 128 guest h1 >/dev/null
[ "$(hc action "$T" "$P" "$I2" start | field instance.state)" = INSTANCE_STATE_RUNNING ] &&
	t_pass "second instance starts" || t_fail "second start"
V2=$(pid_of "$I2")
u1=$(awk '/^Uid:/{print $2}' "/proc/$VPID/status" 2>/dev/null)
u2=$(awk '/^Uid:/{print $2}' "/proc/$V2/status" 2>/dev/null)
[ -n "$u1" ] && [ -n "$u2" ] && [ "$u1" != "$u2" ] && t_pass "live instances never share a uid ($u1, $u2)" ||
	t_fail "uids" "$u1 $u2"

# ---- hostd restart: re-adopt, reap debris --------------------------------------------------------
stop_hostd
kill -0 "$VPID" 2>/dev/null && t_pass "VMM survives hostd's exit" || t_fail "VMM died with hostd"
kill -KILL "$V2" 2>/dev/null # dies while nobody watches
# debris no record accounts for: a cgroup and a jail dir
for h in /sys/fs/cgroup/pids /sys/fs/cgroup; do
	[ -d "$h/$CGROOT" ] && mkdir -p "$h/$CGROOT/$T/i-0badf00d" && break
done
mkdir -p "$STATE/jail/i-0badf00d/root"
if ! start_hostd; then t_fail "hostd restarts" "$(tail -5 "$LOG")"; t_done; exit 1; fi
out=$(hc lookup "$T" "$P" "$I")
[ "$(echo "$out" | field instance.pid)" = "$VPID" ] && [ "$(echo "$out" | field instance.state)" = INSTANCE_STATE_RUNNING ] &&
	grep -q "event=vmm_readopted instance=$T/$P/$I pid=$VPID" "$LOG" &&
	t_pass "restarted hostd re-adopted the VMM (same pid $VPID, running)" || t_fail "re-adopt" "$out"
out=$(hc lookup "$T" "$P" "$I2")
[ "$(echo "$out" | field instance.state)" = INSTANCE_STATE_STOPPED ] &&
	echo "$out" | grep -q "last_error=VMM (pid $V2) gone while hostd was down" &&
	[ -z "$(cgroup_dirs | grep "/$I2")" ] && [ ! -e "$STATE/jail/$I2" ] &&
	t_pass "a VMM that died while hostd was down: stopped with the reason, cleaned" ||
	t_fail "lost VMM" "$out"
hc action "$T" "$P" "$I2" destroy >/dev/null
[ -z "$(cgroup_dirs | grep i-0badf00d)" ] && [ ! -e "$STATE/jail/i-0badf00d" ] &&
	grep -q "event=reaped_cgroup tenant=$T instance=i-0badf00d" "$LOG" &&
	grep -q "event=reaped_jail_dir instance=i-0badf00d" "$LOG" &&
	t_pass "unaccounted cgroup and jail dir reaped and logged" || t_fail "reaping" "$(cgroup_dirs)"
n1=$(ticks)
[ "$(hc action "$T" "$P" "$I" pause | field instance.state)" = INSTANCE_STATE_WARM ] &&
	[ "$(hc action "$T" "$P" "$I" resume | field instance.state)" = INSTANCE_STATE_RUNNING ] &&
	t_pass "re-adopted VMM: pause/resume over a new QMP connection" || t_fail "QMP after re-adopt"
wait_until 10 ticks_above "$n1" && t_pass "re-adopted VMM's console is captured again" ||
	t_fail "console after re-adopt"

# ---- a re-adopted VMM stops cleanly ------------------------------------------------------------------
out=$(hc action "$T" "$P" "$I" stop 10000)
[ "$(echo "$out" | field instance.state)" = INSTANCE_STATE_STOPPED ] && gone "$VPID" &&
	grep -q "powering off" "$CONSOLE" &&
	t_pass "re-adopted VMM: stop powers the guest off, no process" ||
	t_fail "stop after re-adopt" "$out $(tail -2 "$CONSOLE")"
[ ! -e "$IDIR/snapshot/vm.state" ] && t_pass "stop wiped the snapshot" || t_fail "snapshot left"
out=$(hc action "$T" "$P" "$I" pause)
echo "$out" | grep -q "cannot PAUSE instance $T/$P/$I: it is stopped (allowed from: running)" &&
	t_pass "refused transition names both states" || t_fail "refusal message" "$out"

# ---- cold start from stopped, then kill -9 --------------------------------------------------------------
[ "$(hc action "$T" "$P" "$I" start | field instance.state)" = INSTANCE_STATE_RUNNING ] &&
	t_pass "stopped -> start -> running" || t_fail "restart"
wait_until 60 eval '[ "$(grep -c VMLET-GUEST-READY "$CONSOLE")" -ge 2 ]' && t_pass "cold boot: a new READY" ||
	t_fail "cold boot"
VPID=$(pid_of "$I")
kill -KILL "$VPID"
stopped() { [ "$(state_of "$I")" = INSTANCE_STATE_STOPPED ]; }
if wait_until 10 stopped; then
	out=$(hc list "$T" "$P")
	echo "$out" | grep -q "last_error=VMM killed by signal 9" &&
		t_pass "kill -9: InstanceList shows stopped with the reason" || t_fail "exit reason" "$out"
else
	t_fail "kill -9 not noticed" "$(state_of "$I")"
fi
[ -z "$(cgroup_dirs | grep "/$I")" ] && [ ! -e "$STATE/jail/$I" ] &&
	t_pass "dead VMM's cgroup and jail cleaned" || t_fail "debris after kill" "$(cgroup_dirs)"

# ---- destroy: nothing left ----------------------------------------------------------------------------
hc action "$T" "$P" "$I" start >/dev/null
VPID=$(pid_of "$I")
wait_until 30 grep -q VMLET-GUEST-READY "$CONSOLE"
hc action "$T" "$P" "$I" sleep >/dev/null  # leave a snapshot to be wiped
hc action "$T" "$P" "$I" wake >/dev/null
VPID=$(pid_of "$I")
out=$(hc action "$T" "$P" "$I" destroy)
[ "$(echo "$out" | field instance.state)" = INSTANCE_STATE_DESTROYED ] && t_pass "destroy -> destroyed" ||
	t_fail "destroy" "$out"
left=""
gone "$VPID" || left="$left process:$VPID"
[ -n "$(pgrep -f "guest=$I")" ] && left="$left qemu:$(pgrep -f "guest=$I")"
[ -n "$(cgroup_dirs | grep "/$I")" ] && left="$left cgroup:$(cgroup_dirs | grep "/$I")"
[ -e "$STATE/jail/$I" ] && left="$left jail:$STATE/jail/$I"
grep -q "$STATE/jail/$I" /proc/self/mountinfo && left="$left mount"
[ -e "$IDIR" ] && left="$left registry:$IDIR"
[ -e "$IDIR/snapshot" ] && left="$left snapshot"
[ -z "$left" ] && t_pass "destroy leaves no process, cgroup, jail dir, mount, snapshot or record" ||
	t_fail "destroy left" "$left"
[ "$(hc action "$T" "$P" "$I" destroy | field instance.state)" = INSTANCE_STATE_DESTROYED ] &&
	t_pass "destroy again: ok (idempotent)" || t_fail "destroy twice"

# ---- audit, teardown of tenant and pool -------------------------------------------------------------
AUDIT=$STATE/tenants/$T/audit.jsonl
[ "$(stat -c %a "$AUDIT")" = 600 ] && python3 -c '
import json, sys
acts = [json.loads(l)["action"] for l in open(sys.argv[1])]
need = ["ensure_tenant", "ensure_pool", "create", "start", "pause", "resume", "sleep", "wake", "stop", "destroy"]
missing = [a for a in need if a not in acts]
sys.exit(1 if missing else 0)' "$AUDIT" && t_pass "audit log (0600) has a JSON line per operation" ||
	t_fail "audit log" "$(tail -3 "$AUDIT")"
hc remove_pool "$T" "$P" >/dev/null && hc remove_tenant "$T" >/dev/null && [ ! -e "$STATE/tenants/$T" ] &&
	t_pass "remove pool and tenant" || t_fail "remove pool/tenant"

stop_hostd
t_done
