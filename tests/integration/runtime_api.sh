#!/usr/bin/env bash
# WakeInstance and InstanceList through the API, on a real instance: hostd
# and agentd run as in production (agentd as `vmlet`, jailed QEMU under
# hostd), the instance is created, booted and put to sleep through hostd's
# host RPC directly (tests/helpers/host_client, as root with
# allow_root_peer: the reconcile engine that would do this is issue 5),
# then `vmletctl instance wake` over the local socket and over mutual TLS
# restores it: exit 0, running, and the guest console continues the SAME
# boot (same boot_id, one READY: a restore, not a reboot). `instance list`
# shows it running with its pid and uptime. Refusals: unknown instance
# 404, a stopped / created one 409 naming the state. Everything is
# destroyed and no process, cgroup or jail dir is left. Waits are bounded.
set -u
. "$(dirname "$0")/../lib.sh"
t_require_root

CLIENT_BIN=$T_BUILD/tests/helpers/host_client
GUEST=$T_BUILD/guest
QEMU=/usr/bin/qemu-system-x86_64
if [ ! -x "$CLIENT_BIN" ]; then
	t_fail "build" "$CLIENT_BIN missing (make build/tests/helpers/host_client)"; t_done; exit 1
fi
if [ ! -x "$QEMU" ]; then t_skip "all" "needs $QEMU (qemu-system-x86)"; t_done; exit 0; fi
if [ ! -s "$GUEST/vmlinuz" ] || [ ! -s "$GUEST/initrd.gz" ]; then
	t_skip "all" "needs the test guest in $GUEST (make guest)"; t_done; exit 0
fi
if ! grep -q "cgroup .*memory" /proc/self/mountinfo && ! grep -q cgroup2 /proc/self/mountinfo; then
	t_skip "all" "needs cgroups"; t_done; exit 0
fi

. "$T_ROOT/tests/integration/lib-env.sh"

CGROOT=vmlet-api-$$
# The jail checks every directory above its root: not under /tmp.
E_TMP_PARENT=/var/lib
E_ALLOW_ROOT_PEER=true
# A restore under TCG takes a fraction of a second; leave room on a busy box.
E_HOSTD_TIMEOUT_MS=60000
E_HOSTD_EXTRA="cgroup_root = $CGROOT
accel = tcg
workers = 4
console_log_max = 1048576"
env_setup

T=acme P=web I=i-0000a11e I2=i-0000a11f
IDIR=$D/state/tenants/$T/pools/$P/instances/$I
CONSOLE=$IDIR/console.log

cgroup_dirs() { find /sys/fs/cgroup -maxdepth 5 -type d -path "*/$CGROOT*" 2>/dev/null; }
hc() { timeout 120 "$CLIENT_BIN" --timeout 60000 "ipc://$E_HOSTD_SOCK" "$@"; }
field() { sed -n "s/^$1=//p" | head -1; }
state_of() { hc lookup "$T" "$P" "$1" | field instance.state; }
pid_of() { hc lookup "$T" "$P" "$1" | field instance.pid; }
ticks() { local n; n=$(grep -c '^vmlet-tick' "$CONSOLE" 2>/dev/null); echo "${n:-0}"; }
ticks_above() { [ "$(ticks)" -gt "$1" ]; }
readies() { local n; n=$(grep -c VMLET-GUEST-READY "$CONSOLE" 2>/dev/null); echo "${n:-0}"; }
gone() { # gone, or a zombie on its way out
	local st
	st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)
	[ -z "$st" ] || [ "$st" = Z ]
}

api_cleanup() {
	# Instances first (hostd ends their VMMs and removes cgroups and
	# jails), then whatever a failed run left in the test's cgroups, then
	# the daemons and the temp dir.
	if [ -n "$E_HOSTD_PID" ] && kill -0 "$E_HOSTD_PID" 2>/dev/null; then
		hc action "$T" "$P" "$I" destroy >/dev/null 2>&1
		hc action "$T" "$P" "$I2" destroy >/dev/null 2>&1
	fi
	local d p
	for d in $(cgroup_dirs | sort -r); do
		for p in $(cat "$d/cgroup.procs" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
	done
	env_cleanup
	sleep 0.2
	for d in $(cgroup_dirs | sort -r); do rmdir "$d" 2>/dev/null; done
}
trap api_cleanup EXIT

mkdir -p "$D/state/images"
if ! "$T_ROOT/deploy/install-image.sh" guest "$GUEST" "$D/state/images" >/dev/null 2>"$D/install.err"; then
	t_fail "install the guest image" "$(cat "$D/install.err")"; t_done; exit 1
fi
env_start_both
t_pass "hostd (runtime) and agentd start"

# ---- a sleeping instance, made through the host RPC ---------------------------------------
hc ensure_tenant "$T" 11 10.11.0.0/24 >/dev/null && hc ensure_pool "$T" "$P" h1 >/dev/null &&
	hc create "$T" "$P" "$I" 1 128 guest h1 >/dev/null &&
	[ "$(hc action "$T" "$P" "$I" start | field instance.state)" = INSTANCE_STATE_RUNNING ] &&
	t_pass "host RPC: tenant, pool, instance started" ||
	{ t_fail "host RPC set-up" "$(tail -3 "$D/hostd.log")"; t_done; exit 1; }
if wait_for 60 grep -q VMLET-GUEST-READY "$CONSOLE"; then
	t_pass "guest booted (VMLET-GUEST-READY)"
else
	t_fail "guest boot" "$(tail -3 "$CONSOLE" 2>/dev/null)"; t_done; exit 1
fi
BOOT_ID=$(sed -n 's/.*VMLET-GUEST-READY boot_id=\([0-9a-f-]*\).*/\1/p' "$CONSOLE" | head -1)
wait_for 15 ticks_above 0

# sleep_it NAME: put the instance to sleep through hostd; 0 when asleep
# with no process left.
sleep_it() {
	local vpid out
	vpid=$(pid_of "$I")
	out=$(hc action "$T" "$P" "$I" sleep)
	if [ "$(echo "$out" | field instance.state)" = INSTANCE_STATE_SLEEPING ] &&
		wait_for 10 gone "$vpid"; then
		t_pass "$1: sleeping, VMM $vpid gone"
		return 0
	fi
	t_fail "$1" "$out $(tail -2 "$D/hostd.log")"
	return 1
}

# woke NAME RUN_CAPTURE_NAME TICKS_BEFORE: the wake answered 0 with the
# instance running and a time; hostd agrees; the console continues the
# same boot.
woke() {
	local name=$1 n=$2 before=$3 last
	if [ "$RC" = 0 ] && grep -q "^instance.state: running$" "$D/$n.out" &&
		grep -q "^instance.instance_id: $I$" "$D/$n.out" &&
		grep -Eq "^wake_micros: [1-9][0-9]*$" "$D/$n.out"; then
		t_pass "$name: exit 0, running, $(sed -n 's/^wake_micros: //p' "$D/$n.out") us"
	else
		t_fail "$name" "exit $RC: $(head -c 400 "$D/$n.out") $(head -c 300 "$D/$n.err")"
	fi
	[ "$(state_of "$I")" = INSTANCE_STATE_RUNNING ] && [ -n "$(pid_of "$I")" ] &&
		[ "$(pid_of "$I")" != 0 ] && kill -0 "$(pid_of "$I")" 2>/dev/null &&
		t_pass "$name: hostd records it running with a live VMM" ||
		t_fail "$name: hostd's record" "$(hc lookup "$T" "$P" "$I")"
	if wait_for 15 ticks_above "$before"; then
		last=$(grep '^vmlet-tick' "$CONSOLE" | tail -1)
		[ "$(readies)" = 1 ] && echo "$last" | grep -q "boot_id=$BOOT_ID " &&
			t_pass "$name: the guest continues the same boot ($BOOT_ID), no reboot" ||
			t_fail "$name: not a restore" "READY x$(readies), last: $last"
	else
		t_fail "$name: no ticks after the wake" "$(tail -3 "$CONSOLE")"
	fi
}

# ---- wake over the local socket --------------------------------------------------------------
if sleep_it "sleep (host RPC)"; then
	n=$(ticks)
	run_capture wake_local ctl_local instance wake "$T/$P/$I"
	woke "local: vmletctl instance wake" wake_local "$n"
fi

# ---- instance list shows it running with its pid and uptime ------------------------------------
VPID=$(pid_of "$I")
run_capture list ctl_local instance list "$T"
row=$(grep " $I " "$D/list.out")
if [ "$RC" = 0 ] && head -1 "$D/list.out" | grep -q "STATE  *UPTIME  *AGE .* PID" &&
	echo "$row" | grep -Eq "^$T +$P +$I +running +[0-9]+[smhd][0-9]*[smh]? +[0-9]+[smhd]" &&
	[ "$(echo "$row" | awk '{print $NF}')" = "$VPID" ]; then
	t_pass "instance list: running, uptime, pid $VPID"
else
	t_fail "instance list" "exit $RC: $(cat "$D/list.out" "$D/list.err")"
fi
run_capture list_json ctl_local --json instance list "$T" "$P"
[ "$RC" = 0 ] && [ "$(jget "$D/list_json.out" pid)" = "$VPID" ] &&
	[ "$(jget "$D/list_json.out" state)" = running ] &&
	t_pass "instance list --json: state running, pid" ||
	t_fail "instance list --json" "exit $RC: $(head -c 400 "$D/list_json.out")"

# ---- wake over mutual TLS -----------------------------------------------------------------------
if sleep_it "sleep again"; then
	n=$(ticks)
	run_capture wake_tls ctl_tls instance wake "$T/$P/$I"
	woke "tls: vmletctl instance wake" wake_tls "$n"
fi

# ---- a running instance: answered at once, nothing changes -------------------------------------------
VPID=$(pid_of "$I")
run_capture wake_again ctl_tls instance wake "$T/$P/$I"
[ "$RC" = 0 ] && grep -q "^instance.state: running$" "$D/wake_again.out" &&
	grep -q "^instance.pid: $VPID$" "$D/wake_again.out" && [ "$(readies)" = 1 ] &&
	t_pass "wake of a running instance: ok, same VMM (pid $VPID)" ||
	t_fail "wake of a running instance" "exit $RC: $(cat "$D/wake_again.out" "$D/wake_again.err")"

# ---- refusals ---------------------------------------------------------------------------------------
run_capture wake_unknown ctl_local instance wake "$T/$P/i-0000ffff"
[ "$RC" = 1 ] && grep -q "^error 404 .*not found" "$D/wake_unknown.err" &&
	t_pass "wake of an unknown instance: 404" ||
	t_fail "wake unknown" "exit $RC: $(cat "$D/wake_unknown.err")"
hc create "$T" "$P" "$I2" 1 128 guest h1 >/dev/null
run_capture wake_created ctl_tls instance wake "$T/$P/$I2"
[ "$RC" = 1 ] && grep -q "^error 409 .*it is created" "$D/wake_created.err" &&
	t_pass "wake of a created instance: 409 naming the state" ||
	t_fail "wake created" "exit $RC: $(cat "$D/wake_created.err")"
out=$(hc action "$T" "$P" "$I" stop 10000)
[ "$(echo "$out" | field instance.state)" = INSTANCE_STATE_STOPPED ] && gone "$VPID" &&
	t_pass "stop (host RPC)" || t_fail "stop" "$out"
run_capture wake_stopped ctl_local instance wake "$T/$P/$I"
[ "$RC" = 1 ] && grep -q "^error 409 .*it is stopped" "$D/wake_stopped.err" &&
	[ "$(state_of "$I")" = INSTANCE_STATE_STOPPED ] &&
	t_pass "wake of a stopped instance: 409 naming \"stopped\", nothing changed" ||
	t_fail "wake stopped" "exit $RC: $(cat "$D/wake_stopped.err")"
run_capture list2 ctl_local instance list "$T" "$P"
grep -Eq "^$T +$P +$I +stopped +- " "$D/list2.out" && grep -Eq "^$T +$P +$I2 +created +- " "$D/list2.out" &&
	t_pass "instance list: stopped and created, no uptime" ||
	t_fail "instance list after stop" "$(cat "$D/list2.out" "$D/list2.err")"

# ---- clean up: nothing left ---------------------------------------------------------------------------
[ "$(hc action "$T" "$P" "$I" destroy | field instance.state)" = INSTANCE_STATE_DESTROYED ] &&
	[ "$(hc action "$T" "$P" "$I2" destroy | field instance.state)" = INSTANCE_STATE_DESTROYED ] &&
	hc remove_pool "$T" "$P" >/dev/null && hc remove_tenant "$T" >/dev/null &&
	t_pass "destroy instances, remove pool and tenant" || t_fail "tear-down through hostd"
left=""
[ -n "$(pgrep -f "guest=$I")" ] && left="$left qemu:$(pgrep -f "guest=$I")"
[ -n "$(cgroup_dirs | grep -E "/($I|$I2)")" ] && left="$left cgroup:$(cgroup_dirs)"
[ -e "$D/state/jail/$I" ] && left="$left jail:$I"
[ -e "$D/state/tenants/$T" ] && left="$left tenant-dir"
[ -z "$left" ] && t_pass "no process, cgroup, jail dir or record left" || t_fail "left behind" "$left"

t_done
