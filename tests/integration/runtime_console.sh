#!/usr/bin/env bash
# A guest cannot fill hostd's disk through its serial console: with
# console_log_max = 4096 and a guest whose kernel prints its whole boot log
# (no "quiet"), console.log is rotated and never exceeds the cap, one old
# file is kept, and the guest is not slowed into a hang (READY arrives).
# Also the accel = auto probe: hostd boots the image under KVM at start,
# reports what it chose in NodeInfo.accel and leaves nothing behind.
set -u
. "$(dirname "$0")/../lib.sh"
t_require_root

HOSTD=$T_BUILD/vmlet-hostd
CLIENT_BIN=$T_BUILD/tests/helpers/host_client
GUEST=$T_BUILD/guest
QEMU=/usr/bin/qemu-system-x86_64
if [ ! -x "$HOSTD" ] || [ ! -x "$CLIENT_BIN" ]; then
	t_fail "build" "$HOSTD or $CLIENT_BIN missing"; t_done; exit 1
fi
if [ ! -x "$QEMU" ]; then t_skip "all" "needs $QEMU (qemu-system-x86)"; t_done; exit 0; fi
if [ ! -s "$GUEST/vmlinuz" ] || [ ! -s "$GUEST/initrd.gz" ]; then
	t_skip "all" "needs the test guest in $GUEST (make guest)"; t_done; exit 0
fi
getent group vmlet >/dev/null || groupadd --system vmlet
id -u vmlet >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin -g vmlet vmlet

TMP=$(mktemp -d /var/lib/vmlet-console-test.XXXXXX) # not /tmp: the jail needs a root-only path
chmod 0755 "$TMP"
STATE=$TMP/state
CGROOT=vmlet-con-$$
SOCK=$TMP/run/hostd/hostd.sock
LOG=$TMP/hostd.log
IDIR=$STATE/tenants/acme/pools/web/instances/i-0000c0de
HOSTD_PID=
cleanup() {
	if [ -n "$HOSTD_PID" ]; then
		"$CLIENT_BIN" --timeout 20000 "ipc://$SOCK" action acme web i-0000c0de destroy >/dev/null 2>&1
		kill -TERM "$HOSTD_PID" 2>/dev/null
		for _ in $(seq 1 100); do kill -0 "$HOSTD_PID" 2>/dev/null || break; sleep 0.05; done
		kill -KILL "$HOSTD_PID" 2>/dev/null
	fi
	for d in $(find /sys/fs/cgroup -maxdepth 5 -type d -path "*/$CGROOT*" 2>/dev/null | sort -r); do
		for p in $(cat "$d/cgroup.procs" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
		rmdir "$d" 2>/dev/null
	done
	rm -rf "$TMP"
}
trap cleanup EXIT

cat >"$TMP/vmlet.conf" <<EOC
[node]
id = console-test
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
cgroup_root = $CGROOT
console_log_max = 4096
accel = auto
kvm_probe_image = loud
EOC
mkdir -p "$STATE/images"
"$T_ROOT/deploy/install-image.sh" --cmdline "console=ttyS0 tsc_early_khz=2000000 panic=-1 loglevel=8" \
	loud "$GUEST" "$STATE/images" >/dev/null || { t_fail "install image"; t_done; exit 1; }
"$HOSTD" --config "$TMP/vmlet.conf" >>"$LOG" 2>&1 &
HOSTD_PID=$!
for _ in $(seq 1 200); do [ -S "$SOCK" ] && break; sleep 0.05; done
hc() { "$CLIENT_BIN" --timeout 60000 "ipc://$SOCK" "$@"; }
line=$(grep "event=accel_chosen" "$LOG")
chosen=$(echo "$line" | sed -n 's/.*accel=\([a-z]*\) configured=auto.*/\1/p')
reported=$(hc node_facts | sed -n 's/^node_facts.accel=//p')
if echo "$line" | grep -q 'reason="probe guest \(booted\|failed\) under kvm"\|reason="/dev/kvm unusable"'; then
	[ -n "$chosen" ] && [ "$chosen" = "$reported" ] &&
		t_pass "accel=auto: probe decided $chosen ($(echo "$line" | sed -n 's/.*reason=//p')), NodeInfo says $reported" ||
		t_fail "accel report" "log: $line; NodeInfo: $reported"
else
	t_fail "kvm probe" "$line"
fi
[ ! -e "$STATE/jail/i-ffffffff" ] && [ -z "$(pgrep -f guest=i-ffffffff)" ] &&
	t_pass "the probe left no process or jail dir" || t_fail "probe debris"
hc ensure_tenant acme 10 10.10.0.0/24 >/dev/null && hc ensure_pool acme web >/dev/null &&
	hc create acme web i-0000c0de 1 128 loud >/dev/null &&
	hc action acme web i-0000c0de start | grep -q INSTANCE_STATE_RUNNING &&
	t_pass "a guest with a verbose kernel starts" || { t_fail "start" "$(tail -3 "$LOG")"; t_done; exit 1; }
ready=
for _ in $(seq 1 600); do
	if grep -q VMLET-GUEST-READY "$IDIR/console.log" "$IDIR/console.log.1" 2>/dev/null; then ready=1; break; fi
	sleep 0.1
done
[ -n "$ready" ] && t_pass "guest reaches READY through a capped console" || t_fail "READY" "$(ls -la "$IDIR")"
sleep 1
cur=$(stat -c %s "$IDIR/console.log" 2>/dev/null || echo missing)
old=$(stat -c %s "$IDIR/console.log.1" 2>/dev/null || echo missing)
[ "$old" != missing ] && [ "$old" -gt 0 ] && [ "$old" -le 4096 ] && t_pass "log rotated once full (old file $old bytes)" ||
	t_fail "rotation" "console.log.1: $old"
[ "$cur" != missing ] && [ "$cur" -le 4096 ] && t_pass "current log within the cap ($cur <= 4096)" ||
	t_fail "cap" "console.log: $cur"
n=$(ls "$IDIR" | grep -c '^console')
[ "$n" = 2 ] && t_pass "only one old file is kept" || t_fail "console files" "$(ls "$IDIR")"
t_done
