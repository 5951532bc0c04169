#!/usr/bin/env bash
# Hostile clients: TLS without a certificate, with another CA's certificate,
# with a valid certificate that is not a coordinator, TLS 1.2; and on the
# wire: oversize frames, unknown fields, bad UTF-8, bad ids, garbage. Each
# gets a clear error or a closed connection, and agentd keeps serving.
. "$(dirname "$0")/../lib.sh"
. "$T_ROOT/tests/integration/lib-env.sh"
t_require_root
env_setup
env_start_both

hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
# A length-delimited protobuf field: ld FIELDNUM HEXBYTES (payload < 128 bytes).
ld() { printf '%02x%02x%s' $(( $1 << 3 | 2 )) $(( ${#2} / 2 )) "$2"; }

# sc NAME S_CLIENT_ARGS...: send a framed NodeInfo request with openssl
# s_client (TLS 1.3); what came back is in $D/NAME.out.
sc() {
	local n=$1; shift
	{ printf '\000\000\000\002\022\000'; sleep 3; } | timeout 20 openssl s_client \
		-connect "127.0.0.1:$E_PORT" -tls1_3 -quiet -no_ign_eof -nocommands \
		-CAfile "$D/certs/ca.pem" "$@" >"$D/$n.out" 2>"$D/$n.err"
}
no_frame() { # NAME LABEL
	local n; n=$(stat -c %s "$D/$1.out")
	[ "$n" = 0 ] && t_pass "$2: no response, connection closed" ||
		t_fail "$2" "got $n bytes back: $(od -An -tx1 -N16 "$D/$1.out")"
}

# ---- TLS: no client certificate ------------------------------------------------
sc nocert
no_frame nocert "TLS 1.3 client without a certificate"
grep -q "alert certificate required" "$D/nocert.err" && t_pass "no certificate: certificate_required alert" ||
	t_fail "no certificate: certificate_required alert" "$(grep -i alert "$D/nocert.err" | head -1)"

# ---- TLS: a certificate from another CA (same names as the real coordinator) --
if "$VMLETCTL" certs init --dir "$D/other" --node-id other-node >"$D/other.log" 2>&1; then
	sc otherca -cert "$D/other/coordinator.pem" -key "$D/other/coordinator.key"
	no_frame otherca "client certificate from another CA"
	grep -q "alert unknown ca" "$D/otherca.err" && t_pass "another CA: unknown_ca alert" ||
		t_fail "another CA: unknown_ca alert" "$(grep -i alert "$D/otherca.err" | head -1)"
	run_capture otherca_ctl ctl_tls_as "$D/other/coordinator.pem" "$D/other/coordinator.key" node info
	[ "$RC" = 3 ] && t_pass "vmletctl with another CA's certificate: transport failure (exit 3)" ||
		t_fail "vmletctl with another CA's certificate: exit 3" "exit $RC: $(head -c 200 "$D/otherca_ctl.err")"
else
	t_fail "second CA" "$(tail -2 "$D/other.log")"
fi

# ---- TLS: valid certificate, identity not a coordinator -> 403 ----------------
run_capture node403 ctl_tls_as "$D/certs/node.pem" "$D/certs/node.key" node info
if [ "$RC" = 1 ] && grep -q "error 403" "$D/node403.err"; then
	t_pass "valid certificate that is not a coordinator -> 403"
else
	t_fail "valid certificate that is not a coordinator -> 403" "exit $RC: $(head -c 300 "$D/node403.err")"
fi
sc node403sc -cert "$D/certs/node.pem" -key "$D/certs/node.key"
# AgentResponse.error is field 1 (tag 0x0a), code 403 is 08 93 03.
got=$(od -An -tx1 -j4 "$D/node403sc.out" | tr -d ' \n')
if [[ "$got" =~ ^0a([0-7][0-9a-f]|[89a-f][0-9a-f]0[0-9a-f])089303 ]]; then
	t_pass "s_client as non-coordinator gets an error 403 frame"
else
	t_fail "s_client as non-coordinator gets an error 403 frame" "got '${got:0:40}'"
fi

# ---- TLS 1.2 client: handshake fails -------------------------------------------
timeout 20 openssl s_client -connect "127.0.0.1:$E_PORT" -tls1_2 -CAfile "$D/certs/ca.pem" \
	-cert "$D/certs/coordinator.pem" -key "$D/certs/coordinator.key" </dev/null >"$D/tls12.out" 2>&1
rc=$?
if [ "$rc" != 0 ] && ! grep -q 'New, TLSv1.2' "$D/tls12.out"; then
	t_pass "TLS 1.2 client: handshake fails"
else
	t_fail "TLS 1.2 client: handshake fails" "rc $rc: $(grep -E 'New,|alert' "$D/tls12.out" | head -2)"
fi

# ---- frames over the local socket -----------------------------------------------
# wire_expect LABEL REGEX-LINE1 [REGEX-LINE2] -- WIRE-ARGS...
wire_expect() {
	local label=$1 r1=$2 r2=$3; shift 4
	wire "$@" 2>&1 | grep -v '^sent ' >"$D/wire.out"
	local l1 l2; l1=$(sed -n 1p "$D/wire.out"); l2=$(sed -n 2p "$D/wire.out")
	if [[ "$l1" =~ $r1 ]] && { [ -z "$r2" ] || [[ "$l2" =~ $r2 ]]; }; then
		t_pass "$label ($l1${l2:+; $l2})"
	else
		t_fail "$label" "got: $(tr '\n' '|' <"$D/wire.out" | head -c 300)"
	fi
}
CLOSED='^(eof|reset)'

wire_expect "oversize frame (2 MiB header) -> 413 then close" 'error code=413' "$CLOSED" -- \
	--unix "$E_SOCK" raw:00200000 drain
wire_expect "zero-length frame -> 400 or close" "error code=400|$CLOSED" "" -- \
	--unix "$E_SOCK" raw:00000000 drain
wire_expect "unknown field next to node_info -> 400" 'error code=400' "" -- \
	--unix "$E_SOCK" frame:1200f80601 read
wire_expect "only an unknown field (empty oneof) -> 400" 'error code=400' "" -- \
	--unix "$E_SOCK" frame:f80601 read
wire_expect "unknown field inside node_info -> 400" 'error code=400' "" -- \
	--unix "$E_SOCK" frame:1203f80601 read
wire_expect "unparsable protobuf -> 400" 'error code=400' "" -- \
	--unix "$E_SOCK" frame:ffffffffffffffff read
wake() { ld 6 "$(ld 1 "$1")$(ld 2 "$2")$(ld 3 "$3")"; }
wire_expect "wake with instance_id ../../etc -> 400" "error code=400 .*instance_id" "" -- \
	--unix "$E_SOCK" "frame:$(wake "$(hex t1)" "$(hex p1)" "$(hex ../../etc)")" read
wire_expect "wake with tenant_id Bad_ID -> 400" "error code=400 .*tenant_id" "" -- \
	--unix "$E_SOCK" "frame:$(wake "$(hex Bad_ID)" "$(hex p1)" "$(hex i-0000abcd)")" read
wire_expect "invalid UTF-8 in tenant_id -> 400" "error code=400" "" -- \
	--unix "$E_SOCK" "frame:$(wake fffe "$(hex p1)" "$(hex i-0000abcd)")" read
wire_expect "garbage text (HTTP request) -> error or close" "error code=4[01][0-9]|$CLOSED" "" -- \
	--unix "$E_SOCK" "raw:$(hex 'GET / HTTP/1.1')0d0a0d0a" drain
# A frame cut short by the client closing: agentd just drops it.
wire --unix "$E_SOCK" raw:000000101200 >/dev/null 2>&1
# Two requests in one write are both answered, in order.
wire --unix "$E_SOCK" raw:000000021200000000021a00 read read >"$D/pipe.out" 2>&1
if [ "$(grep -c '^frame' "$D/pipe.out")" = 2 ] && grep '^frame' "$D/pipe.out" | head -1 | grep -q node_info &&
	grep '^frame' "$D/pipe.out" | tail -1 | grep -q node_stats; then
	t_pass "two pipelined requests answered in order"
else
	t_fail "two pipelined requests answered in order" "$(tr '\n' '|' <"$D/pipe.out")"
fi

# ---- the same over TLS --------------------------------------------------------------
TLSW=(--tls "127.0.0.1:$E_PORT" --ca "$D/certs/ca.pem" --cert "$D/certs/coordinator.pem"
	--key "$D/certs/coordinator.key")
wire_expect "TLS: oversize frame -> 413 then close" 'error code=413' "$CLOSED" -- \
	"${TLSW[@]}" raw:00200000 drain
wire_expect "TLS: unknown field -> 400" 'error code=400' "" -- "${TLSW[@]}" frame:1200f80601 read
wire_expect "TLS: a valid request still works" 'node_stats' "" -- "${TLSW[@]}" req:node_stats read

# ---- agentd logged the refusals with the peer address ---------------------------------
n=$(grep -c 'event=tls_handshake_failed peer=127.0.0.1:' "$D/agentd.log")
[ "$n" -ge 3 ] && t_pass "agentd logged $n failed handshakes with the peer address" ||
	t_fail "agentd logs failed handshakes" "$n tls_handshake_failed lines"

# ---- agentd is still there and serves the next clients ------------------------------
kill -0 "$E_AGENTD_PID" 2>/dev/null && t_pass "agentd survived all of the above" ||
	t_fail "agentd survived all of the above" "$(tail -5 "$D/agentd.log")"
run_capture after ctl_local node info
[ "$RC" = 0 ] && t_pass "local socket serves the next client" || t_fail "local socket serves the next client" "exit $RC: $(head -c 200 "$D/after.err")"
run_capture after_tls ctl_tls node info
[ "$RC" = 0 ] && t_pass "TLS serves the next client" || t_fail "TLS serves the next client" "exit $RC: $(head -c 200 "$D/after_tls.err")"
t_done
