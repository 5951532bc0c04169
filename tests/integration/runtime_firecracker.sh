#!/usr/bin/env bash
# vmm = firecracker through vmlet-hostd's real lifecycle code (jail,
# cgroups, registry, console capture), against a FIRECRACKER TEST DOUBLE:
# tests/helpers/fake_firecracker, set as firecracker_binary. Firecracker is
# not installable on these machines, so nothing here ran a real
# Firecracker or a real guest; what is proven is hostd's side: argv, the
# jail (its own uid, /dev/kvm, the binary bound in, stdout = console),
# the API request sequence (boot, pause/resume, snapshot create/load,
# CtrlAltDel), the snapshot directories (an empty instance-owned dir bound
# rw; after sleep root's 0600 files in a 0700 generation dir; a wake binds
# the generation read-only and the next sleep makes a NEW generation),
# stop killing a VMM whose guest ignores CtrlAltDel (and not killing one
# whose guest powers off), kill -9 recorded, re-adoption after a hostd
# restart, and destroy leaving nothing. Hostile: a group-writable
# firecracker_binary, a symlink planted in a snapshot generation. First, with accel as this
# machine decides it by default (no usable KVM), start must be refused:
# Firecracker has no TCG. Every wait bounded.
set -u
. "$(dirname "$0")/../lib.sh"
t_require_root

HOSTD=$T_BUILD/vmlet-hostd
CLIENT_BIN=$T_BUILD/tests/helpers/host_client
FAKE=$T_BUILD/tests/helpers/fake_firecracker
for b in "$HOSTD" "$CLIENT_BIN" "$FAKE"; do
	if [ ! -x "$b" ]; then
		t_fail "build" "$b missing (make all build/tests/helpers/host_client build/tests/helpers/fake_firecracker)"
		t_done; exit 1
	fi
done
if ! grep -q "cgroup .*memory" /proc/self/mountinfo && ! grep -q cgroup2 /proc/self/mountinfo; then
	t_skip "all" "needs cgroups"; t_done; exit 0
fi

# The jail requires every directory above it to be root's and not
# group/world-writable, so the state dir cannot live under /tmp.
TMP=$(mktemp -d /var/lib/vmlet-fc-test.XXXXXX)
chmod 0755 "$TMP"
STATE=$TMP/state
CGROOT=vmlet-fc-$$
SOCK=$TMP/run/hostd/hostd.sock
LOG=$TMP/hostd.log
T=acme P=web I=i-0000fc01
IDIR=$STATE/tenants/$T/pools/$P/instances/$I
SNAPDIR=$IDIR/snapshot
CONSOLE=$IDIR/console.log
HOSTD_PID=

cgroup_dirs() { find /sys/fs/cgroup -maxdepth 5 -type d -path "*/$CGROOT*" 2>/dev/null; }
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
	[ -n "${KEEP_LOG:-}" ] && cp "$LOG" "$KEEP_LOG"
	for d in $(cgroup_dirs | sort -r); do
		for p in $(cat "$d/cgroup.procs" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
	done
	sleep 0.2
	for d in $(cgroup_dirs | sort -r); do rmdir "$d" 2>/dev/null; done
	rm -rf "$TMP"
}
trap cleanup EXIT

write_conf() { # ACCEL [FIRECRACKER_BINARY]
	cat >"$TMP/vmlet.conf" <<EOC
[node]
id = fc-test
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
vmm = firecracker
firecracker_binary = ${2:-$FAKE}
accel = $1
console_log_max = 1048576
EOC
	chmod 0644 "$TMP/vmlet.conf"
}
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
wait_until() {
	local n=$(( $1 * 10 )); shift
	for _ in $(seq 1 "$n"); do "$@" && return 0; sleep 0.1; done
	return 1
}
state_of() { hc lookup "$T" "$P" "$1" | field instance.state; }
pid_of() { hc lookup "$T" "$P" "$1" | field instance.pid; }
gone() {
	local st
	st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)
	[ -z "$st" ] || [ "$st" = Z ]
}
# The requests the double received so far, one "METHOD PATH BODY" a line.
reqs() { sed -n 's/^FAKE-FC-REQ //p' "$CONSOLE" 2>/dev/null; }
nreqs() { reqs | wc -l; }
nreqs_at_least() { [ "$(nreqs)" -ge "$1" ]; }
# reqs_since N: the requests after the first N, as "METHOD PATH" (bodies dropped)
reqs_since() { reqs | tail -n +"$(( $1 + 1 ))" | awk '{print $1, $2}' | tr '\n' ';'; }
modes() { stat -c '%a %U:%G' "$@" 2>/dev/null | tr '\n' ' ' | sed 's/ $//'; }

getent group vmlet >/dev/null || groupadd --system vmlet
id -u vmlet >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin -g vmlet vmlet
: >"$LOG"
# An image the double "boots": it only opens the kernel and initrd.
mkdir -p "$STATE/images" "$TMP/img"
head -c 4096 /dev/urandom >"$TMP/img/vmlinuz"
head -c 4096 /dev/urandom >"$TMP/img/initrd.gz"
if ! "$T_ROOT/deploy/install-image.sh" fcimg "$TMP/img" "$STATE/images" >/dev/null 2>"$TMP/install.err" ||
	! "$T_ROOT/deploy/install-image.sh" --cmdline "console=ttyS0 fakefc.poweroff" fcoff "$TMP/img" \
		"$STATE/images" >/dev/null 2>>"$TMP/install.err"; then
	t_fail "install the test image" "$(cat "$TMP/install.err")"; t_done; exit 1
fi

# ---- without KVM (this machine's default): refused -------------------------------------------
# accel = auto boots kvm_probe_image (default "guest", not installed here)
# under KVM; it cannot, so NodeInfo.accel is tcg, as on any host where KVM
# does not run a guest.
write_conf auto
if ! start_hostd; then t_fail "hostd starts (vmm = firecracker)" "$(tail -5 "$LOG")"; t_done; exit 1; fi
out=$(hc node_facts)
[ "$(echo "$out" | field node_facts.accel)" = tcg ] && [ "$(echo "$out" | field node_facts.vmm_name)" = firecracker ] &&
	[ "$(echo "$out" | field node_facts.jailer_available)" != true ] &&
	t_pass "NodeInfo: vmm firecracker, accel tcg, no jailer" || t_fail "node facts" "$out"
hc ensure_tenant "$T" 10 10.10.0.0/24 >/dev/null && hc ensure_pool "$T" "$P" h1 >/dev/null &&
	t_pass "ensure tenant and pool" || t_fail "ensure tenant and pool"
[ "$(hc create "$T" "$P" "$I" 1 128 fcimg h1 | field instance.state)" = INSTANCE_STATE_CREATED ] &&
	t_pass "create -> created" || t_fail "create"
out=$(hc action "$T" "$P" "$I" start)
echo "$out" | grep -q "error.code=503" && echo "$out" | grep -q "needs KVM" &&
	echo "$out" | grep -q "no TCG" && t_pass "start without KVM: 503, says firecracker needs KVM" ||
	t_fail "KVM-less refusal" "$out"
[ "$(state_of "$I")" = INSTANCE_STATE_CREATED ] && [ -z "$(cgroup_dirs | grep "/$I")" ] &&
	[ ! -e "$STATE/jail/$I" ] && [ ! -e "$CONSOLE" ] &&
	t_pass "the refused start left nothing (no process, cgroup, jail dir)" || t_fail "refusal debris"
stop_hostd

# ---- accel = kvm: the lifecycle against the double -----------------------------------------------
# Hostile first: a firecracker_binary others may write is never exec'ed.
cp "$FAKE" "$TMP/fc-writable" && chmod 0775 "$TMP/fc-writable"
write_conf kvm "$TMP/fc-writable"
if ! start_hostd; then t_fail "hostd restarts with accel = kvm" "$(tail -5 "$LOG")"; t_done; exit 1; fi
if [ "$(hc node_facts | field node_facts.accel)" != kvm ]; then
	t_skip "lifecycle" "/dev/kvm is not usable here (NodeInfo.accel stays tcg)"; t_done; exit 0
fi
out=$(hc action "$T" "$P" "$I" start)
echo "$out" | grep -q "error.code=403" && echo "$out" | grep -q "group- or world-writable" &&
	[ "$(state_of "$I")" = INSTANCE_STATE_CREATED ] && [ ! -e "$CONSOLE" ] &&
	t_pass "a group-writable firecracker_binary is refused (403), nothing started" || t_fail "writable binary" "$out"
stop_hostd
write_conf kvm
if ! start_hostd; then t_fail "hostd restarts with accel = kvm" "$(tail -5 "$LOG")"; t_done; exit 1; fi

out=$(hc action "$T" "$P" "$I" start)
[ "$(echo "$out" | field instance.state)" = INSTANCE_STATE_RUNNING ] && t_pass "start -> running" ||
	t_fail "start" "$out $(tail -3 "$LOG")"
VPID=$(pid_of "$I")
wait_until 10 grep -q "^FAKE-FC-GUEST-BOOTED" "$CONSOLE" &&
	grep -q "^FAKE-FIRECRACKER-READY id=$I " "$CONSOLE" &&
	t_pass "the VMM's stdout is the console log (readiness line, boot line)" ||
	t_fail "console" "$(cat "$CONSOLE" 2>&1 | head -5)"
BOOT_ID=$(sed -n 's/^FAKE-FC-GUEST-BOOTED boot_id=//p' "$CONSOLE" | head -1)
seq=$(reqs_since 0)
[ "$seq" = "GET /;PUT /machine-config;PUT /boot-source;PUT /actions;" ] &&
	t_pass "boot: GET /, machine-config, boot-source, InstanceStart (no NIC yet)" || t_fail "boot sequence" "$seq"
reqs | grep -qx 'PUT /machine-config {"mem_size_mib":128,"smt":false,"vcpu_count":1}' &&
	reqs | grep -q '^PUT /boot-source {"boot_args":"[^"]*","initrd_path":"/image/initrd","kernel_image_path":"/image/kernel"}$' &&
	reqs | grep -qx 'PUT /actions {"action_type":"InstanceStart"}' &&
	t_pass "boot request bodies" || t_fail "boot bodies" "$(reqs)"

# ---- the jail, seen from outside ---------------------------------------------------------------
if [ -n "$VPID" ] && [ -r "/proc/$VPID/status" ]; then
	uid=$(awk '/^Uid:/{print $2}' "/proc/$VPID/status")
	[ "$uid" -ge 200000 ] && grep -q "^FAKE-FIRECRACKER-READY id=$I uid=$uid gid=$uid" "$CONSOLE" &&
		t_pass "VMM runs as the instance's own uid ($uid)" || t_fail "uid" "$uid"
	[ "$(awk '/^CapEff:/{print $2}' "/proc/$VPID/status")" = 0000000000000000 ] &&
		[ "$(awk '/^NoNewPrivs:/{print $2}' "/proc/$VPID/status")" = 1 ] &&
		t_pass "CapEff 0, NoNewPrivs 1" || t_fail "privileges" "$(grep -E 'Cap|NoNew' "/proc/$VPID/status")"
	[ "$(stat -L -c %d:%i "/proc/$VPID/exe")" = "$(stat -L -c %d:%i "$FAKE")" ] &&
		[ "$(tr '\0' ' ' <"/proc/$VPID/cmdline")" = "/firecracker --api-sock /run/api.sock --id $I " ] &&
		t_pass "exec'ed firecracker_binary (bound at /firecracker) with --api-sock and --id" ||
		t_fail "binary/argv" "$(tr '\0' ' ' <"/proc/$VPID/cmdline")"
	R=/proc/$VPID/root
	[ -c "$R/dev/kvm" ] && [ -d "$R/snapshot" ] && [ -z "$(ls -A "$R/snapshot")" ] && [ ! -e "$R/restore" ] &&
		t_pass "jail: /dev/kvm, an empty /snapshot, no /restore on a cold start" ||
		t_fail "jail contents" "$(ls -la "$R/" "$R/dev" 2>&1 | head -20)"
	grep -q "memory:/$CGROOT/$T/$I\$\|^0::/$CGROOT/$T/$I\$" "/proc/$VPID/cgroup" &&
		t_pass "VMM is in its cgroup" || t_fail "cgroup" "$(cat "/proc/$VPID/cgroup")"
	[ "$(modes "$SNAPDIR")" = "700 root:root" ] && [ "$(stat -c '%a %u' "$SNAPDIR/next")" = "700 $uid" ] &&
		t_pass "host side: 0700 root snapshot dir, next/ owned by the instance" ||
		t_fail "next dir" "$(ls -la "$SNAPDIR" 2>&1)"
else
	t_fail "VMM process" "pid '$VPID' not readable"
fi

# ---- pause / resume --------------------------------------------------------------------------------
n=$(nreqs)
[ "$(hc action "$T" "$P" "$I" pause | field instance.state)" = INSTANCE_STATE_WARM ] &&
	[ "$(hc action "$T" "$P" "$I" resume | field instance.state)" = INSTANCE_STATE_RUNNING ] &&
	wait_until 5 nreqs_at_least $((n + 2)) &&
	[ "$(reqs | tail -2 | tr '\n' ';')" = 'PATCH /vm {"state":"Paused"};PATCH /vm {"state":"Resumed"};' ] &&
	t_pass "pause -> warm, resume -> running: PATCH /vm Paused, Resumed" || t_fail "pause/resume" "$(reqs | tail -3)"

# ---- sleep ----------------------------------------------------------------------------------------
# Debris planted in the VM's snapshot dir (as a VMM could) is removed
# before the snapshot is written.
touch "$SNAPDIR/next/junk" && ln -s /etc/passwd "$SNAPDIR/next/link"
n=$(nreqs)
out=$(hc action "$T" "$P" "$I" sleep)
[ "$(echo "$out" | field instance.state)" = INSTANCE_STATE_SLEEPING ] && t_pass "sleep -> sleeping" ||
	t_fail "sleep" "$out $(tail -3 "$LOG")"
seq=$(reqs_since "$n")
[ "$seq" = "PATCH /vm;PUT /snapshot/create;" ] &&
	reqs | grep -qx 'PUT /snapshot/create {"mem_file_path":"/snapshot/mem","snapshot_path":"/snapshot/vmstate","snapshot_type":"Full"}' &&
	t_pass "sleep: PATCH /vm Paused, snapshot/create Full into /snapshot" || t_fail "sleep sequence" "$seq"
gone "$VPID" && t_pass "asleep: the VMM was killed (no process)" || t_fail "process after sleep"
G1=$SNAPDIR/gen-1
[ "$(modes "$SNAPDIR" "$G1" "$G1/vmstate" "$G1/mem")" = "700 root:root 700 root:root 600 root:root 600 root:root" ] &&
	[ "$(ls "$G1" | tr '\n' ' ')" = "mem vmstate " ] && [ ! -e "$SNAPDIR/next" ] &&
	[ "$(stat -c %h "$G1/mem")" = 1 ] &&
	t_pass "snapshot: gen-1 holds exactly vmstate and mem, root's 0600 in 0700 dirs" ||
	t_fail "snapshot files" "$(ls -laR "$SNAPDIR" 2>&1)"
grep -q "boot_id=$BOOT_ID" "$G1/vmstate" && t_pass "the vmstate is the double's (boot id $BOOT_ID)" ||
	t_fail "vmstate content" "$(cat "$G1/vmstate")"
[ -z "$(cgroup_dirs | grep "/$I")" ] && [ ! -e "$STATE/jail/$I" ] &&
	t_pass "asleep: no cgroup, no jail dir" || t_fail "debris while asleep" "$(cgroup_dirs)"

# ---- wake -----------------------------------------------------------------------------------------
# Hostile: a symlink planted for the memory file is refused (openat2
# RESOLVE_NO_SYMLINKS), nothing runs, nothing stays lent.
mv "$G1/mem" "$G1/mem.real" && ln -s mem.real "$G1/mem"
out=$(hc action "$T" "$P" "$I" wake)
echo "$out" | grep -q "error.code=403" && [ "$(state_of "$I")" = INSTANCE_STATE_SLEEPING ] &&
	[ "$(modes "$G1" "$G1/vmstate")" = "700 root:root 600 root:root" ] && [ -z "$(cgroup_dirs | grep "/$I")" ] &&
	t_pass "wake with a symlinked snapshot file: 403, still sleeping, files root's again" ||
	t_fail "symlinked snapshot" "$out $(ls -la "$G1")"
rm -f "$G1/mem" && mv "$G1/mem.real" "$G1/mem"
n=$(nreqs)
out=$(hc action "$T" "$P" "$I" wake)
[ "$(echo "$out" | field instance.state)" = INSTANCE_STATE_RUNNING ] && t_pass "wake -> running" ||
	t_fail "wake" "$out $(tail -3 "$LOG")"
VPID=$(pid_of "$I")
seq=$(reqs_since "$n")
[ "$seq" = "GET /;PUT /snapshot/load;" ] &&
	reqs | grep -qx 'PUT /snapshot/load {"mem_backend":{"backend_path":"/restore/mem","backend_type":"File"},"resume_vm":true,"snapshot_path":"/restore/vmstate"}' &&
	t_pass "wake: a fresh VMM, snapshot/load from /restore with resume_vm" || t_fail "wake sequence" "$seq $(reqs | tail -1)"
wait_until 5 grep -q "^FAKE-FC-RESTORED boot_id=$BOOT_ID\$" "$CONSOLE" &&
	[ "$(grep -c '^FAKE-FC-GUEST-BOOTED' "$CONSOLE")" = 1 ] &&
	t_pass "restored the same boot ($BOOT_ID), no second boot" || t_fail "restore" "$(tail -3 "$CONSOLE")"
uid=$(awk '/^Uid:/{print $2}' "/proc/$VPID/status" 2>/dev/null)
R=/proc/$VPID/root
[ -n "$uid" ] && [ "$(stat -c '%a %u:%g' "$G1" "$G1/mem" "$G1/vmstate" | tr '\n' ' ')" = "750 0:$uid 440 0:$uid 440 0:$uid " ] &&
	t_pass "while restored: gen-1 lent read-only to the instance's gid (root 0440/0750)" ||
	t_fail "lent generation" "$(stat -c '%n %a %u:%g' "$G1" "$G1/mem")"
[ -z "$(ls -A "$R/snapshot" 2>&1)" ] && grep -q " /restore .*\bro\b" "/proc/$VPID/mountinfo" &&
	grep -q " /snapshot .*\brw\b" "/proc/$VPID/mountinfo" &&
	t_pass "jail: /restore read-only, a NEW empty /snapshot read-write" ||
	t_fail "wake jail" "$(grep -E ' /(restore|snapshot) ' "/proc/$VPID/mountinfo")"

# ---- sleep again: a new generation; then wake from it ---------------------------------------------
out=$(hc action "$T" "$P" "$I" sleep)
G2=$SNAPDIR/gen-2
[ "$(echo "$out" | field instance.state)" = INSTANCE_STATE_SLEEPING ] && [ ! -e "$G1" ] &&
	[ "$(modes "$G2" "$G2/vmstate" "$G2/mem")" = "700 root:root 600 root:root 600 root:root" ] &&
	t_pass "second sleep: new generation gen-2 (root 0600), gen-1 wiped" ||
	t_fail "second sleep" "$out $(ls -laR "$SNAPDIR" 2>&1)"
out=$(hc action "$T" "$P" "$I" wake)
VPID=$(pid_of "$I")
[ "$(echo "$out" | field instance.state)" = INSTANCE_STATE_RUNNING ] &&
	wait_until 5 eval '[ "$(grep -c "^FAKE-FC-RESTORED boot_id=$BOOT_ID\$" "$CONSOLE")" = 2 ]' &&
	t_pass "wake from gen-2: the same boot again" || t_fail "second wake" "$out"

# ---- hostd restart: the Firecracker VMM is re-adopted -----------------------------------------------
stop_hostd
kill -0 "$VPID" 2>/dev/null && t_pass "VMM survives hostd's exit" || t_fail "VMM died with hostd"
if ! start_hostd; then t_fail "hostd restarts" "$(tail -5 "$LOG")"; t_done; exit 1; fi
out=$(hc lookup "$T" "$P" "$I")
[ "$(echo "$out" | field instance.pid)" = "$VPID" ] && grep -q "event=vmm_readopted instance=$T/$P/$I pid=$VPID" "$LOG" &&
	t_pass "restarted hostd re-adopted the VMM (exe = firecracker_binary)" || t_fail "re-adopt" "$out"
n=$(nreqs)
[ "$(hc action "$T" "$P" "$I" pause | field instance.state)" = INSTANCE_STATE_WARM ] &&
	[ "$(hc action "$T" "$P" "$I" resume | field instance.state)" = INSTANCE_STATE_RUNNING ] &&
	[ "$(reqs_since "$n")" = "GET /;PATCH /vm;PATCH /vm;" ] &&
	t_pass "re-adopted: pause/resume over a new API connection" || t_fail "API after re-adopt" "$(reqs_since "$n")"

# ---- stop: the guest ignores CtrlAltDel, hostd kills the VMM --------------------------------------------
n=$(nreqs)
out=$(hc action "$T" "$P" "$I" stop 300)
[ "$(echo "$out" | field instance.state)" = INSTANCE_STATE_STOPPED ] && gone "$VPID" &&
	[ "$(reqs_since "$n")" = "PUT /actions;" ] && reqs | tail -1 | grep -q SendCtrlAltDel &&
	grep -q "event=stop_forced instance=$I" "$LOG" &&
	t_pass "stop: SendCtrlAltDel, ignored (501), VMM killed through its cgroup" ||
	t_fail "stop" "$out $(reqs_since "$n")"
[ ! -e "$SNAPDIR" ] && [ -z "$(cgroup_dirs | grep "/$I")" ] && [ ! -e "$STATE/jail/$I" ] &&
	t_pass "stopped: snapshots wiped, no cgroup, no jail dir" || t_fail "after stop" "$(ls -la "$SNAPDIR" 2>&1)"

# ---- a guest that powers off on CtrlAltDel: a graceful stop; kill -9 is recorded -----------------------
I2=i-0000fc02
CONSOLE2=$STATE/tenants/$T/pools/$P/instances/$I2/console.log
hc create "$T" "$P" "$I2" 1 128 fcoff h1 >/dev/null
[ "$(hc action "$T" "$P" "$I2" start | field instance.state)" = INSTANCE_STATE_RUNNING ] &&
	t_pass "second instance (image with fakefc.poweroff) starts" || t_fail "second start" "$(tail -3 "$LOG")"
V2=$(pid_of "$I2")
out=$(hc action "$T" "$P" "$I2" stop 10000)
[ "$(echo "$out" | field instance.state)" = INSTANCE_STATE_STOPPED ] && gone "$V2" &&
	grep -q "^FAKE-FC-GUEST-POWEROFF" "$CONSOLE2" && ! grep -q "event=stop_forced instance=$I2" "$LOG" &&
	t_pass "stop: the guest powered off on CtrlAltDel, no kill needed" || t_fail "graceful stop" "$out"
hc action "$T" "$P" "$I2" start >/dev/null
V2=$(pid_of "$I2")
kill -KILL "$V2"
stopped2() { [ "$(state_of "$I2")" = INSTANCE_STATE_STOPPED ]; }
wait_until 10 stopped2 && hc lookup "$T" "$P" "$I2" | grep -q "last_error=VMM killed by signal 9" &&
	[ -z "$(cgroup_dirs | grep "/$I2")" ] && [ ! -e "$STATE/jail/$I2" ] &&
	t_pass "kill -9 of the VMM: recorded stopped with the reason, cleaned" || t_fail "kill -9" "$(hc lookup "$T" "$P" "$I2")"
hc action "$T" "$P" "$I2" destroy >/dev/null

# ---- cold start again, then destroy ------------------------------------------------------------------
[ "$(hc action "$T" "$P" "$I" start | field instance.state)" = INSTANCE_STATE_RUNNING ] &&
	wait_until 5 eval '[ "$(grep -c "^FAKE-FC-GUEST-BOOTED" "$CONSOLE")" = 2 ]' &&
	t_pass "stopped -> start: a cold boot (second boot line)" || t_fail "cold start"
hc action "$T" "$P" "$I" sleep >/dev/null
hc action "$T" "$P" "$I" wake >/dev/null
VPID=$(pid_of "$I")
out=$(hc action "$T" "$P" "$I" destroy)
left=""
gone "$VPID" || left="$left process:$VPID"
[ -n "$(cgroup_dirs | grep "/$I")" ] && left="$left cgroup"
[ -e "$STATE/jail/$I" ] && left="$left jail"
grep -q "$STATE/jail/$I" /proc/self/mountinfo && left="$left mount"
[ -e "$IDIR" ] && left="$left registry"
[ "$(echo "$out" | field instance.state)" = INSTANCE_STATE_DESTROYED ] && [ -z "$left" ] &&
	t_pass "destroy (while restored) leaves no process, cgroup, jail, mount, snapshot or record" ||
	t_fail "destroy" "$out left:$left"
hc remove_pool "$T" "$P" >/dev/null && hc remove_tenant "$T" >/dev/null && t_pass "remove pool and tenant" ||
	t_fail "remove pool/tenant"

stop_hostd
t_done
