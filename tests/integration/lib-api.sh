# The coordinator/admin API checks, run once per transport by
# spine_local.sh (unix socket) and spine_tls.sh (mutual TLS). Sourced after
# lib-env.sh; expects both daemons running on an empty registry.
#
# api_checks LABEL CTL: CTL is ctl_local or ctl_tls.

api_checks() {
	local L=$1 CTL=$2 v want

	# ---- NodeInfo matches this host -----------------------------------
	run_capture ni "$CTL" --json node info
	if [ "$RC" != 0 ]; then
		t_fail "$L node info" "exit $RC: $(head -c 300 "$D/ni.err")"
	else
		t_pass "$L node info answers"
		v=$(jget "$D/ni.out" node_id)
		[ "$v" = node-1 ] && t_pass "$L node info node_id" || t_fail "$L node info node_id" "got '$v'"
		v=$(jget "$D/ni.out" hostname); want=$(hostname)
		[ "$v" = "$want" ] && t_pass "$L node info hostname" || t_fail "$L node info hostname" "got '$v', host says '$want'"
		v=$(jget "$D/ni.out" arch); want=$(uname -m)
		[ "$v" = "$want" ] && t_pass "$L node info arch" || t_fail "$L node info arch" "got '$v', uname -m says '$want'"
		v=$(jget "$D/ni.out" total_vcpus); want=$(nproc --all)
		[ "$v" = "$want" ] && t_pass "$L node info total_vcpus = $want" || t_fail "$L node info total_vcpus" "got '$v', nproc --all says '$want'"
		v=$(jget "$D/ni.out" total_mem_mib | tr -d '"')
		want=$(awk '/^MemTotal:/ {print int($2/1024)}' /proc/meminfo)
		if [[ "$v" =~ ^[0-9]+$ ]] && [ $(( (v > want ? v - want : want - v) * 100 )) -le $((want * 2)) ]; then
			t_pass "$L node info total_mem_mib $v within 2% of $want"
		else
			t_fail "$L node info total_mem_mib" "got '$v', /proc/meminfo says $want MiB"
		fi
	fi
	# The human-readable form shows the same node.
	run_capture ni_text "$CTL" node info
	if [ "$RC" = 0 ] && grep -q node-1 "$D/ni_text.out"; then
		t_pass "$L node info (table)"
	else
		t_fail "$L node info (table)" "exit $RC: $(head -c 300 "$D/ni_text.out" "$D/ni_text.err")"
	fi

	# ---- NodeStats on an empty registry: every counter is 0 -----------------
	run_capture ns "$CTL" --json node stats
	if [ "$RC" != 0 ]; then
		t_fail "$L node stats" "exit $RC: $(head -c 300 "$D/ns.err")"
	else
		v=$("$PY" - "$D/ns.out" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
if isinstance(doc, dict) and len(doc) == 1 and isinstance(next(iter(doc.values())), dict):
    doc = next(iter(doc.values()))           # {"node_stats": {...}}
bad = {k: v for k, v in doc.items() if v not in (0, "0", False)}
print("ok" if not bad else "non-zero: %s" % bad)
EOF
)
		[ "$v" = ok ] && t_pass "$L node stats all zero" || t_fail "$L node stats all zero" "$v"
	fi

	# ---- TenantList / InstanceList: empty ------------------------------------
	run_capture tl "$CTL" --json tenant list
	v=$(jget "$D/tl.out" tenants)
	if [ "$RC" = 0 ] && { [ "$v" = MISSING ] || [ "$v" = "[]" ]; }; then
		t_pass "$L tenant list empty"
	else
		t_fail "$L tenant list empty" "exit $RC tenants=$v: $(head -c 300 "$D/tl.err")"
	fi
	run_capture il "$CTL" --json instance list t1
	v=$(jget "$D/il.out" instances)
	if [ "$RC" = 0 ] && { [ "$v" = MISSING ] || [ "$v" = "[]" ]; }; then
		t_pass "$L instance list t1 empty"
	else
		t_fail "$L instance list t1 empty" "exit $RC instances=$v: $(head -c 300 "$D/il.err")"
	fi

	# ---- WakeInstance of an unknown instance: 404 -----------------------------
	run_capture wake "$CTL" instance wake t1/p1/i-0000abcd
	if [ "$RC" = 1 ] && grep -q "error 404" "$D/wake.err"; then
		t_pass "$L wake unknown instance -> 404"
	else
		t_fail "$L wake unknown instance -> 404" "exit $RC: $(head -c 300 "$D/wake.err")"
	fi
	# An id that is not an id is refused (by vmletctl as a usage error, or
	# by agentd with 400); spine_reject.sh sends one past vmletctl.
	run_capture wake_bad "$CTL" instance wake t1/p1/I-BAD
	if { [ "$RC" = 1 ] && grep -q "error 400" "$D/wake_bad.err"; } || [ "$RC" = 2 ]; then
		t_pass "$L wake with a bad instance id refused"
	else
		t_fail "$L wake with a bad instance id refused" "exit $RC: $(head -c 300 "$D/wake_bad.err")"
	fi

	# ---- Reconcile: a valid state runs a real pass against hostd and is
	# answered with its report; a replay is 409; a state for another node
	# is 400; an empty state with prune removes what the first pass made,
	# so the registry ends empty. The pool asks for no instances: this
	# environment has no image store, and in it (under /tmp) hostd refuses
	# to DESTROY an instance ("jail: /tmp is group- or world-writable"), so
	# instances created here could not be pruned again. ----
	local desired=$T_ROOT/tests/data/desired-vmlet.json e
	if [ ! -f "$desired" ]; then
		t_fail "$L reconcile" "$desired is missing"
		return
	fi
	"$PY" - "$desired" "$D/no-instances.json" "$D/empty.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
for t in d["tenants"]:
    for p in t["pools"]:
        p["desired_counts"] = {"running": 0, "warm": 0, "sleeping": 0}
json.dump(d, open(sys.argv[2], "w"))
d["tenants"] = []
d["prune_unknown_tenants"] = True
d["sequence"] = d["sequence"] + 1
json.dump(d, open(sys.argv[3], "w"))
EOF
	run_capture rec "$CTL" --json reconcile -f "$D/no-instances.json"
	if [ "$RC" = 0 ] && [ "$(jget "$D/rec.out" sequence)" = 7 ] &&
	   [ "$(jget "$D/rec.out" tenants_created)" = 1 ] &&
	   [ "$(jget "$D/rec.out" pools_created)" = 1 ] &&
	   { e=$(jget "$D/rec.out" errors); [ "$e" = MISSING ] || [ "$e" = "[]" ]; }; then
		t_pass "$L reconcile valid state -> report of a real pass (tenant and pool created)"
	else
		t_fail "$L reconcile valid state -> report" "exit $RC: $(head -c 600 "$D/rec.out") $(head -c 300 "$D/rec.err")"
	fi
	run_capture ts1 "$CTL" --json tenant list
	if [ "$RC" = 0 ] && grep -q '"tenant-a"' "$D/ts1.out"; then
		t_pass "$L reconcile created tenant-a in hostd's registry"
	else
		t_fail "$L reconcile created tenant-a" "exit $RC: $(head -c 300 "$D/ts1.out")"
	fi
	run_capture rec_replay "$CTL" reconcile -f "$D/no-instances.json"
	if [ "$RC" = 1 ] && grep -q "error 409" "$D/rec_replay.err"; then
		t_pass "$L reconcile replayed sequence -> 409"
	else
		t_fail "$L reconcile replayed sequence -> 409" "exit $RC: $(head -c 300 "$D/rec_replay.err")"
	fi
	# The periodic pass may be running just then: that is a 409 saying so.
	local i
	for i in 1 2 3 4 5; do
		run_capture rec_prune "$CTL" --json reconcile -f "$D/empty.json"
		grep -q "pass is running" "$D/rec_prune.err" || break
		sleep 1
	done
	if [ "$RC" = 0 ] && [ "$(jget "$D/rec_prune.out" tenants_pruned)" = 1 ] &&
	   { e=$(jget "$D/rec_prune.out" errors); [ "$e" = MISSING ] || [ "$e" = "[]" ]; }; then
		t_pass "$L reconcile empty state with prune -> tenant pruned, no errors"
	else
		t_fail "$L reconcile empty state with prune" "exit $RC: $(head -c 600 "$D/rec_prune.out") $(head -c 300 "$D/rec_prune.err")"
	fi
	"$PY" - "$desired" "$D/other-node.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
d["node_id"] = "node-2"
json.dump(d, open(sys.argv[2], "w"))
EOF
	run_capture rec_bad "$CTL" reconcile -f "$D/other-node.json"
	if [ "$RC" = 1 ] && grep -q "error 400" "$D/rec_bad.err" && grep -q "node_id" "$D/rec_bad.err"; then
		t_pass "$L reconcile for another node -> 400 naming node_id"
	else
		t_fail "$L reconcile for another node -> 400" "exit $RC: $(head -c 300 "$D/rec_bad.err")"
	fi
	# The registry is empty again after all of the above (the prune removed
	# what the first pass created).
	run_capture ns2 "$CTL" --json node stats
	v=$(jget "$D/ns2.out" tenant_count)
	if [ "$RC" = 0 ] && { [ "$v" = MISSING ] || [ "$v" = 0 ]; }; then
		t_pass "$L registry empty after the passes and the rejected requests"
	else
		t_fail "$L registry still empty" "exit $RC tenant_count=$v"
	fi
}
