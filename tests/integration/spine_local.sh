#!/usr/bin/env bash
# The spine over agentd's local unix socket: every API answer matches the
# host and the empty registry, and only root and the admin group get in.
. "$(dirname "$0")/../lib.sh"
. "$T_ROOT/tests/integration/lib-env.sh"
. "$T_ROOT/tests/integration/lib-api.sh"
t_require_root
env_setup
env_start_both

api_checks local ctl_local

# ---- who may use the local socket -----------------------------------------
# The socket is 0660, group admin_group: the filesystem is the first gate.
v=$(stat -c '%a %G' "$E_SOCK" 2>&1)
[ "$v" = "660 vmlet-admin" ] && t_pass "local socket 0660 group vmlet-admin" ||
	t_fail "local socket 0660 group vmlet-admin" "got '$v'"

# nobody, no groups: cannot connect at all.
run_capture nobody setpriv --reuid=nobody --regid=nogroup --clear-groups \
	timeout 30 "$D/bin/vmletctl" --socket "$E_SOCK" node info
[ "$RC" != 0 ] && t_pass "user outside vmlet-admin refused (exit $RC)" ||
	t_fail "user outside vmlet-admin refused" "exit 0: $(head -c 200 "$D/nobody.out")"

# nobody with CAP_DAC_OVERRIDE gets past the file mode, so this reaches
# agentd's own SO_PEERCRED check, which must refuse and log it.
before=$(grep -c local_refused "$D/agentd.log")
run_capture nobody_dac setpriv --reuid=nobody --regid=nogroup --clear-groups \
	--inh-caps=+dac_override --ambient-caps=+dac_override \
	timeout 30 "$D/bin/vmletctl" --socket "$E_SOCK" node info
if [ "$RC" != 0 ] && ! grep -q node-1 "$D/nobody_dac.out"; then
	t_pass "agentd refuses a non-admin peer by SO_PEERCRED (exit $RC)"
else
	t_fail "agentd refuses a non-admin peer by SO_PEERCRED" "exit $RC: $(head -c 200 "$D/nobody_dac.out")"
fi
if wait_for 5 eval '[ "$(grep -c local_refused "$D/agentd.log")" -gt "$before" ]'; then
	t_pass "agentd logs local_refused"
else
	t_fail "agentd logs local_refused" "$(tail -3 "$D/agentd.log")"
fi
grep local_refused "$D/agentd.log" | tail -1 | grep -q "65534" &&
	t_pass "local_refused names the peer uid" ||
	t_fail "local_refused names the peer uid" "$(grep local_refused "$D/agentd.log" | tail -1)"

# nobody in vmlet-admin (supplementary group only): allowed.
run_capture admin setpriv --reuid=nobody --regid=nogroup --groups="$E_ADMIN_GID" \
	timeout 30 "$D/bin/vmletctl" --socket "$E_SOCK" node info
if [ "$RC" = 0 ] && grep -q node-1 "$D/admin.out"; then
	t_pass "member of vmlet-admin (supplementary) allowed"
else
	t_fail "member of vmlet-admin (supplementary) allowed" "exit $RC: $(head -c 300 "$D/admin.err")"
fi
# ... and as primary group.
run_capture admin2 setpriv --reuid=nobody --regid="$E_ADMIN_GID" --clear-groups \
	timeout 30 "$D/bin/vmletctl" --socket "$E_SOCK" node info
if [ "$RC" = 0 ] && grep -q node-1 "$D/admin2.out"; then
	t_pass "vmlet-admin as primary group allowed"
else
	t_fail "vmlet-admin as primary group allowed" "exit $RC: $(head -c 300 "$D/admin2.err")"
fi

# ---- clean exit: SIGTERM, exit 0, sockets gone -------------------------------
stop_agentd
[ "$E_STOP_RC" = 0 ] && t_pass "agentd exits 0 on SIGTERM" || t_fail "agentd exits 0 on SIGTERM" "status $E_STOP_RC"
stop_hostd
[ "$E_STOP_RC" = 0 ] && t_pass "hostd exits 0 on SIGTERM" || t_fail "hostd exits 0 on SIGTERM" "status $E_STOP_RC"
[ ! -e "$E_HOSTD_SOCK" ] && t_pass "hostd removed its socket" || t_fail "hostd removed its socket" "$E_HOSTD_SOCK remains"
t_done
