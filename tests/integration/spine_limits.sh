#!/usr/bin/env bash
# agentd's resource limits: handshake timeout (slowloris), per-connection
# rate limit (429) and the maximum connection count. Limits are set low in
# the config; waits are bounded, nothing is timed more finely than that.
. "$(dirname "$0")/../lib.sh"
. "$T_ROOT/tests/integration/lib-env.sh"
t_require_root
E_HANDSHAKE_MS=1000
E_RATE=2
E_BURST=3
E_MAXCONN=4
env_setup
env_start_both

TLSW=(--tls "127.0.0.1:$E_PORT" --ca "$D/certs/ca.pem" --cert "$D/certs/coordinator.pem"
	--key "$D/certs/coordinator.key")

# ---- slowloris: connect and say nothing -> closed (handshake_timeout_ms=1000) --
wire --tcp "127.0.0.1:$E_PORT" --timeout 10 read >"$D/slow.out" 2>&1
l=$(head -1 "$D/slow.out")
[[ "$l" =~ ^(eof|reset) ]] && t_pass "silent TCP client closed within 10 s ($l)" ||
	t_fail "silent TCP client closed within 10 s" "got '$l'"
# Half a ClientHello header, then silence: same.
wire --tcp "127.0.0.1:$E_PORT" --timeout 10 raw:160301 read >"$D/slow2.out" 2>&1
l=$(grep -v '^sent' "$D/slow2.out" | head -1)
[[ "$l" =~ ^(eof|reset) ]] && t_pass "stalled TLS handshake closed within 10 s ($l)" ||
	t_fail "stalled TLS handshake closed within 10 s" "got '$l'"

# ---- rate limit: a burst on one connection gets 429 ------------------------------
wire "${TLSW[@]}" burst:node_stats:20 >"$D/burst.out" 2>&1
first=$(head -1 "$D/burst.out")
n429=$(grep -c 'error code=429' "$D/burst.out")
if [[ "$first" =~ node_stats ]] && [ "$n429" -gt 0 ]; then
	t_pass "burst of 20 on one connection (rate 2/s, burst 3): served, then 429 ($n429 times)"
else
	t_fail "burst gets 429" "first '$first', 429s: $n429: $(tr '\n' '|' <"$D/burst.out" | head -c 300)"
fi
grep 'error code=429' "$D/burst.out" | head -1 | grep -qi 'rate' &&
	t_pass "429 message says rate" || t_fail "429 message says rate" "$(grep 429 "$D/burst.out" | head -1)"
# A fresh connection has its own bucket.
run_capture fresh ctl_tls node stats
[ "$RC" = 0 ] && t_pass "a new connection is served after the burst" ||
	t_fail "a new connection is served after the burst" "exit $RC: $(head -c 200 "$D/fresh.err")"

# ---- max_connections = 4: a fifth is refused, and served once one closes ------------
# Run directly (not through the wire() function) so $! is the client itself.
"$PY" "$WIRE_PY" "${TLSW[@]}" --timeout 30 hold:3:60 >"$D/hold.out" 2>&1 &
holder=$!
E_EXTRA_PIDS+=("$holder")
if wait_for 20 grep -q '^held 4' "$D/hold.out"; then
	t_pass "4 idle mTLS connections open"
	run_capture fifth ctl_tls node info
	[ "$RC" != 0 ] && t_pass "fifth connection refused (exit $RC)" ||
		t_fail "fifth connection refused" "it was served"
	kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
	if wait_for 10 eval 'ctl_tls node info >/dev/null 2>&1'; then
		t_pass "served again once the idle connections closed"
	else
		t_fail "served again once the idle connections closed" "$(tail -3 "$D/agentd.log")"
	fi
else
	t_fail "4 idle mTLS connections open" "$(tr '\n' '|' <"$D/hold.out")"
fi
kill -0 "$E_AGENTD_PID" 2>/dev/null && t_pass "agentd still running" || t_fail "agentd still running" "$(tail -3 "$D/agentd.log")"
t_done
