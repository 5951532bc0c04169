#!/usr/bin/env bash
# hostd goes away: agentd answers 503 (not a hang, not a crash); hostd comes
# back: agentd serves again by itself, without a restart.
. "$(dirname "$0")/../lib.sh"
. "$T_ROOT/tests/integration/lib-env.sh"
t_require_root
E_HOSTD_TIMEOUT_MS=2000
env_setup
env_start_both
agentd_pid=$E_AGENTD_PID

run_capture up ctl_local node stats
[ "$RC" = 0 ] && t_pass "served while hostd runs" || t_fail "served while hostd runs" "exit $RC: $(head -c 200 "$D/up.err")"

for round in 1 2; do
	# Round 1: SIGKILL (stale socket file left behind); round 2: SIGTERM.
	if [ $round = 1 ]; then kill_hostd; how=killed; else stop_hostd; how=stopped; fi
	run_capture down ctl_local node stats
	if [ "$RC" = 1 ] && grep -q "error 503" "$D/down.err"; then
		t_pass "hostd $how: local request -> 503"
	else
		t_fail "hostd $how: local request -> 503" "exit $RC: $(head -c 200 "$D/down.err")"
	fi
	run_capture down_tls ctl_tls node info
	if [ "$RC" = 1 ] && grep -q "error 503" "$D/down_tls.err"; then
		t_pass "hostd $how: mTLS request -> 503"
	else
		t_fail "hostd $how: mTLS request -> 503" "exit $RC: $(head -c 200 "$D/down_tls.err")"
	fi
	kill -0 "$agentd_pid" 2>/dev/null && t_pass "hostd $how: agentd keeps running" ||
		t_fail "hostd $how: agentd keeps running" "$(tail -3 "$D/agentd.log")"

	if ! start_hostd 2>"$D/restart.err"; then
		t_fail "hostd restarts (round $round)" "$(cat "$D/restart.err")"
		break
	fi
	if wait_for 20 eval 'ctl_local node stats >/dev/null 2>&1'; then
		t_pass "hostd back after being $how: agentd serves again"
	else
		t_fail "hostd back after being $how: agentd serves again" "$(tail -3 "$D/agentd.log")"
	fi
	run_capture back_tls ctl_tls node info
	[ "$RC" = 0 ] && t_pass "hostd back: mTLS served too" || t_fail "hostd back: mTLS served too" "exit $RC: $(head -c 200 "$D/back_tls.err")"
done
[ "$E_AGENTD_PID" = "$agentd_pid" ] && kill -0 "$agentd_pid" 2>/dev/null &&
	t_pass "the same agentd process throughout" || t_fail "the same agentd process throughout"
t_done
