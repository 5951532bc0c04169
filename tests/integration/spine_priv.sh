#!/usr/bin/env bash
# agentd after start-up, read from /proc/<pid>/status of the running
# process (and of every one of its threads: the seccomp filter is loaded with
# TSYNC): its own uid, no capabilities, empty bounding set, no_new_privs,
# seccomp filter mode. And the files the two daemons made: modes and owners.
. "$(dirname "$0")/../lib.sh"
. "$T_ROOT/tests/integration/lib-env.sh"
t_require_root
env_setup
env_start_both

st=/proc/$E_AGENTD_PID/status
field() { awk -v k="$1:" '$1 == k { $1 = ""; sub(/^ /, ""); print; exit }' "$2"; }

# The drop happens after the listeners are bound: wait (bounded) for it.
if ! wait_for 10 eval '[ "$(field Seccomp "$st")" = 2 ]'; then
	t_fail "agentd reached seccomp mode within 10 s" "Seccomp: $(field Seccomp "$st")"
fi
cp "$st" "$D/agentd.status"
S=$D/agentd.status
for c in CapEff CapBnd CapPrm CapInh CapAmb; do
	v=$(field "$c" "$S")
	[ "$v" = 0000000000000000 ] && t_pass "agentd $c 0" || t_fail "agentd $c 0" "$c: $v"
done
v=$(field NoNewPrivs "$S"); [ "$v" = 1 ] && t_pass "agentd NoNewPrivs 1" || t_fail "agentd NoNewPrivs 1" "got '$v'"
v=$(field Seccomp "$S"); [ "$v" = 2 ] && t_pass "agentd Seccomp 2 (filter)" || t_fail "agentd Seccomp 2" "got '$v'"
read -r ruid euid suid fsuid <<<"$(field Uid "$S")"
if [ "$ruid" != 0 ] && [ "$ruid" = "$E_VMLET_UID" ] && [ "$euid" = "$ruid" ] && [ "$suid" = "$ruid" ] && [ "$fsuid" = "$ruid" ]; then
	t_pass "agentd runs as vmlet (uid $ruid, all four ids)"
else
	t_fail "agentd runs as vmlet" "Uid: $ruid $euid $suid $fsuid, vmlet is $E_VMLET_UID"
fi
vgid=$(getent group vmlet | cut -d: -f3)
read -r rgid egid sgid fsgid <<<"$(field Gid "$S")"
[ "$rgid" = "$vgid" ] && [ "$egid" = "$vgid" ] && [ "$sgid" = "$vgid" ] && [ "$fsgid" = "$vgid" ] &&
	t_pass "agentd gid vmlet (all four ids)" || t_fail "agentd gid vmlet" "Gid: $rgid $egid $sgid $fsgid, vmlet is $vgid"
groups=$(field Groups "$S")
[[ " $groups " != *" 0 "* ]] && t_pass "agentd not in group root (groups: '${groups}')" ||
	t_fail "agentd not in group root" "Groups: $groups"

# Every thread (NNG's, wolfSSL's) is under the same filter and identity.
bad=
for t in /proc/"$E_AGENTD_PID"/task/*; do
	[ "$(field Seccomp "$t/status")" = 2 ] && [ "$(field CapEff "$t/status")" = 0000000000000000 ] &&
		[ "$(field Uid "$t/status" | cut -d' ' -f1)" = "$E_VMLET_UID" ] || bad="$bad ${t##*/}"
done
nthreads=$(ls /proc/"$E_AGENTD_PID"/task | wc -l)
[ -z "$bad" ] && t_pass "all $nthreads agentd threads: seccomp, no caps, uid vmlet" ||
	t_fail "all agentd threads dropped" "threads not dropped:$bad"

# The TLS key was read before the drop and is not kept open.
if ls -l /proc/"$E_AGENTD_PID"/fd 2>/dev/null | grep -q "$D/certs"; then
	t_fail "agentd holds no fd on the certs dir" "$(ls -l /proc/"$E_AGENTD_PID"/fd | grep "$D/certs")"
else
	t_pass "agentd holds no fd on the certs dir"
fi

# It still works under all of that (NNG, wolfSSL, urandom reachable).
run_capture after ctl_tls node stats
[ "$RC" = 0 ] && t_pass "agentd serves mTLS under seccomp" || t_fail "agentd serves mTLS under seccomp" "exit $RC: $(head -c 200 "$D/after.err")"
kill -0 "$E_AGENTD_PID" && t_pass "agentd alive after serving (no seccomp kill)" ||
	t_fail "agentd alive after serving" "$(tail -3 "$D/agentd.log")"

# ---- hostd: root, its socket dir and socket ------------------------------------------
v=$(field Uid "/proc/$E_HOSTD_PID/status" | cut -d' ' -f1)
[ "$v" = 0 ] && t_pass "hostd runs as root" || t_fail "hostd runs as root" "uid $v"
v=$(stat -c '%a %U:%G' "$D/run/hostd" 2>&1)
[ "$v" = "750 root:vmlet" ] && t_pass "hostd socket dir 0750 root:vmlet" || t_fail "hostd socket dir 0750 root:vmlet" "got '$v'"
v=$(stat -c '%a %U' "$E_HOSTD_SOCK" 2>&1)
[ "$v" = "660 root" ] && t_pass "hostd socket 0660 root" || t_fail "hostd socket 0660 root" "got '$v'"
v=$(stat -c '%a %U' "$E_SOCK" 2>&1)
[ "$v" = "660 root" ] && t_pass "agentd local socket 0660 root" || t_fail "agentd local socket 0660 root" "got '$v'"
t_done
