#!/usr/bin/env bash
# `vmletctl net verify` through agentd: a local-admin request. hostd runs
# in a network namespace this script creates (nsenter --net), so its
# bridges and rules never touch the host's namespace; agentd and vmletctl
# run as usual. Over the local socket verify passes (exit 0, PASS lines),
# --json gives the checks, --deep shows the rules; over mutual TLS the
# coordinator is refused (403). After a rule is deleted out of band with
# nft, verify fails (exit 1, FAIL with expected/found); after hostd
# re-applies (the next ensure_tenant) it passes again.
set -u
. "$(dirname "$0")/../lib.sh"
t_require_root
. "$(dirname "$0")/lib-env.sh"

CLIENT_BIN=$T_BUILD/tests/helpers/host_client
[ -x "$CLIENT_BIN" ] || { t_fail "build" "$CLIENT_BIN missing"; t_done; exit 1; }
command -v nft >/dev/null || { t_skip "all" "needs nft (to tamper with the rules)"; t_done; exit 0; }
NS=vnv$$
ip netns add "$NS" 2>/dev/null || { t_skip "all" "cannot create network namespaces"; t_done; exit 0; }
net_cleanup() { env_cleanup; ip netns del "$NS" 2>/dev/null; }

E_ALLOW_ROOT_PEER=true
E_HOSTD_EXTRA="network = true"
env_setup
trap net_cleanup EXIT

# hostd in the netns (lib-env's start_hostd checks listening sockets with
# ss, which only sees the caller's namespace: wait for a real answer)
hc() { "$CLIENT_BIN" --timeout 10000 "ipc://$E_HOSTD_SOCK" "$@"; }
nsenter --net="/run/netns/$NS" "$HOSTD" --config "$E_CONF" >>"$D/hostd.log" 2>&1 &
E_HOSTD_PID=$!
for _ in $(seq 150); do hc node_facts >/dev/null 2>&1 && break; sleep 0.1; done
hc node_facts >/dev/null 2>&1 || { t_fail "start hostd" "$(tail -3 "$D/hostd.log")"; t_done; exit 1; }
start_agentd 2>"$D/start.err" || { t_fail "start agentd" "$(cat "$D/start.err")"; t_done; exit 1; }

hc ensure_tenant t-a 7 10.7.0.0/24 >/dev/null && hc ensure_tenant t-b 8 10.8.0.0/24 >/dev/null ||
	{ t_fail "tenants"; t_done; exit 1; }

run_capture ok ctl_local net verify
[ $RC = 0 ] && grep -q "^PASS tenant t-a: bridge br-tenant-7 is up" "$D/ok.out" &&
	grep -q "^PASS isolation t-a <-> t-b" "$D/ok.out" && grep -q "checks, 0 failed" "$D/ok.out" &&
	t_pass "net verify over the local socket passes (exit 0)" ||
	t_fail "verify" "rc=$RC $(tail -3 "$D/ok.out") $(cat "$D/ok.err")"
run_capture js ctl_local --json net verify t-a
[ $RC = 0 ] && [ "$(jget "$D/js.out" failed)" = MISSING -o "$(jget "$D/js.out" failed)" = 0 ] &&
	grep -q '"checks"' "$D/js.out" && t_pass "--json lists the checks" ||
	t_fail "json" "rc=$RC $(head -c 300 "$D/js.out")"
run_capture deep ctl_local net verify --deep
[ $RC = 0 ] && grep -q "expected: .*isolate\|expected: .*drop" "$D/deep.out" &&
	t_pass "--deep shows the rules themselves" || t_fail "deep" "$(head -5 "$D/deep.out")"
run_capture tls ctl_tls net verify
[ $RC = 1 ] && grep -q "error 403" "$D/tls.err" &&
	t_pass "net verify over TLS is refused (403): local admin only" ||
	t_fail "tls" "rc=$RC $(cat "$D/tls.err")"
run_capture bad ctl_local net verify ../x
[ $RC = 2 ] && t_pass "a bad tenant id is a usage error" || t_fail "bad id" "rc=$RC"

h=$(ip netns exec "$NS" nft -a list chain inet vmlet forward |
	sed -n 's/.*comment "vmlet:isolate:8".*# handle \([0-9]*\)/\1/p')
ip netns exec "$NS" nft delete rule inet vmlet forward handle "$h"
run_capture tamper ctl_local net verify
[ $RC = 1 ] && grep -q "^FAIL nft rule vmlet:isolate:8" "$D/tamper.out" &&
	grep -q "found:    (missing)" "$D/tamper.out" && grep -q "^FAIL isolation t-a <-> t-b" "$D/tamper.out" &&
	t_pass "a rule deleted with nft: verify fails (exit 1) naming it" ||
	t_fail "tamper" "rc=$RC $(grep FAIL "$D/tamper.out" | head -3)"
run_capture tj ctl_local --json net verify
[ $RC = 1 ] && t_pass "--json exits 1 too when a check fails" || t_fail "json tamper" "rc=$RC"
hc ensure_tenant t-a 7 10.7.0.0/24 >/dev/null
run_capture again ctl_local net verify
[ $RC = 0 ] && t_pass "after hostd re-applies (ensure_tenant) verify passes again" ||
	t_fail "reapply" "$(grep FAIL "$D/again.out" | head -3)"
hc remove_tenant t-a >/dev/null; hc remove_tenant t-b >/dev/null
t_done
