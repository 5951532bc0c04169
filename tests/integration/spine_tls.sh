#!/usr/bin/env bash
# The spine over mutual TLS as the coordinator: the same API answers as over
# the local socket, TLS 1.3, and each request logged with the peer's
# identity and address. openssl s_client is the independent client.
. "$(dirname "$0")/../lib.sh"
. "$T_ROOT/tests/integration/lib-env.sh"
. "$T_ROOT/tests/integration/lib-api.sh"
t_require_root
env_setup
env_start_both

api_checks tls ctl_tls

# The identity and the address of the peer are logged per request.
if grep -F 'vmlet://coordinator' "$D/agentd.log" | grep -q '127.0.0.1'; then
	t_pass "requests logged with peer identity and address"
else
	t_fail "requests logged with peer identity and address" "$(tail -3 "$D/agentd.log")"
fi

# An independent TLS 1.3 client with the coordinator's certificate gets a
# framed NodeInfo answer (this is the positive control for spine_reject.sh,
# which sends the same bytes without an acceptable certificate).
{ printf '\000\000\000\002\022\000'; sleep 3; } | timeout 20 openssl s_client -connect "127.0.0.1:$E_PORT" \
	-tls1_3 -quiet -no_ign_eof -nocommands -CAfile "$D/certs/ca.pem" \
	-cert "$D/certs/coordinator.pem" -key "$D/certs/coordinator.key" \
	>"$D/sc.out" 2>"$D/sc.err"
n=$(stat -c %s "$D/sc.out")
# AgentResponse.node_info is field 3 (tag 0x1a) right after the 4-byte length.
tag=$(od -An -tx1 -j4 -N1 "$D/sc.out" | tr -d ' ')
if [ "$n" -gt 4 ] && [ "$tag" = 1a ]; then
	t_pass "openssl s_client (TLS 1.3, coordinator cert) gets a node_info frame"
else
	t_fail "openssl s_client (TLS 1.3, coordinator cert) gets a node_info frame" \
		"$n bytes, tag '$tag': $(tail -3 "$D/sc.err")"
fi

# The negotiated protocol is TLS 1.3.
timeout 20 openssl s_client -connect "127.0.0.1:$E_PORT" -CAfile "$D/certs/ca.pem" \
	-cert "$D/certs/coordinator.pem" -key "$D/certs/coordinator.key" </dev/null >"$D/sc13.out" 2>&1
grep -q 'New, TLSv1.3' "$D/sc13.out" && t_pass "negotiates TLS 1.3" ||
	t_fail "negotiates TLS 1.3" "$(grep -E 'New,|Protocol' "$D/sc13.out" | head -2)"

# The server certificate verifies against the dev CA for 127.0.0.1.
timeout 20 openssl s_client -connect "127.0.0.1:$E_PORT" -CAfile "$D/certs/ca.pem" \
	-verify_ip 127.0.0.1 -verify_return_error \
	-cert "$D/certs/coordinator.pem" -key "$D/certs/coordinator.key" </dev/null >"$D/scv.out" 2>&1
grep -q 'Verify return code: 0 (ok)' "$D/scv.out" && t_pass "node certificate verifies for IP 127.0.0.1" ||
	t_fail "node certificate verifies for IP 127.0.0.1" "$(grep -i verify "$D/scv.out" | head -2)"

# Many sequential coordinator connections are served (no leak of slots).
ok=0
for i in $(seq 30); do ctl_tls node stats >/dev/null 2>&1 && ok=$((ok+1)); done
[ "$ok" = 30 ] && t_pass "30 sequential mTLS requests served" || t_fail "30 sequential mTLS requests served" "$ok/30"
t_done
