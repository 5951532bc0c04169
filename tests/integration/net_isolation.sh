#!/usr/bin/env bash
# Tenant networking end to end, every packet inside network namespaces this
# script creates: vmlet-hostd runs inside a "node" netns (`ip netns exec`),
# so its bridges, TAPs and nftables tables never touch the host's
# namespace. An "uplink" netns sits behind the node's uplink interface.
# Two tenants are built through hostd's host RPC (tests/helpers/host_client);
# their "guests" are veth peers in netns of their own, the node ends named
# like the instance TAPs hostd allocated (so the per-TAP anti-spoofing
# rules apply to them) and enslaved to the tenant bridges: real kernel
# bridging, routing and netfilter, a stand-in for a VM's NIC.
# Checked: within a tenant guests reach each other and their gateway;
# across tenants nothing passes (ICMP, TCP, UDP); a spoofed source is
# dropped; egress reaches the uplink masqueraded; a whitelisted published
# port reaches the guest, a non-whitelisted one is refused by hostd (403);
# net verify passes, fails after a rule is deleted out of band with nft,
# passes after hostd re-applies; hostd at start rebuilds what was lost.
# Then (when QEMU and the test guest are there) one real QEMU guest on its
# TAP answers ping from the node, verify checks its TAP (owner, master),
# notices the TAP moved to another tenant's bridge, and re-apply puts it
# back; destroy leaves no TAP. Every wait is bounded.
set -u
. "$(dirname "$0")/../lib.sh"
t_require_root

HOSTD=$T_BUILD/vmlet-hostd
CLIENT_BIN=$T_BUILD/tests/helpers/host_client
GUEST=$T_BUILD/guest
QEMU=/usr/bin/qemu-system-x86_64
for b in "$HOSTD" "$CLIENT_BIN"; do
	[ -x "$b" ] || { t_fail "build" "$b missing (make all integration builds it)"; t_done; exit 1; }
done
for tool in ip nft python3; do
	command -v $tool >/dev/null || { t_skip "all" "needs $tool"; t_done; exit 0; }
done
P=vnt$$
NODE=${P}node UP=${P}up
if ! ip netns add "$NODE" 2>/dev/null; then t_skip "all" "cannot create network namespaces"; t_done; exit 0; fi
ip netns add "$UP"
getent group vmlet >/dev/null || groupadd --system vmlet
id -u vmlet >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin -g vmlet vmlet

# The jail wants root-owned, not world-writable parents: not /tmp.
TMP=$(mktemp -d /var/lib/vmlet-net-test.XXXXXX)
chmod 0755 "$TMP"
STATE=$TMP/state
SOCK=$TMP/run/hostd/hostd.sock
LOG=$TMP/hostd.log
CGROOT=vmlet-net-$$
HOSTD_PID=
GUEST_NS=()
BG_PIDS=()

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
	local p d ns
	for p in "${BG_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	stop_hostd
	mkdir -p "$T_BUILD/test-logs" && cp "$LOG" "$T_BUILD/test-logs/$T_NAME.hostd.log" 2>/dev/null
	for d in $(cgroup_dirs | sort -r); do
		for p in $(cat "$d/cgroup.procs" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
	done
	sleep 0.2
	for d in $(cgroup_dirs | sort -r); do rmdir "$d" 2>/dev/null; done
	for ns in "${GUEST_NS[@]}" "$UP" "$NODE"; do ip netns del "$ns" 2>/dev/null; done
	rm -rf "$TMP"
}
trap cleanup EXIT

# ---- the node and its uplink --------------------------------------------------------
ip -n "$NODE" link set lo up
ip -n "$UP" link set lo up
ip link add up0 netns "$NODE" type veth peer name upx netns "$UP"
ip -n "$NODE" addr add 192.0.2.1/24 dev up0
ip -n "$NODE" link set up0 up
ip -n "$UP" addr add 192.0.2.2/24 dev upx
ip -n "$UP" link set upx up

cat >"$TMP/vmlet.conf" <<EOC
[node]
id = net-test
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
accel = tcg
kvm_probe_image =
network = true
uplink = up0
port_whitelist = t-a:tcp:8080
EOC
chmod 0644 "$TMP/vmlet.conf"

start_hostd() {
	# nsenter, not `ip netns exec`: that also remounts /sys, hiding the
	# cgroup hierarchies the jailed QEMU needs.
	nsenter --net="/run/netns/$NODE" "$HOSTD" --config "$TMP/vmlet.conf" >>"$LOG" 2>&1 &
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
nx() { ip netns exec "$NODE" "$@"; }
wait_until() {
	local n=$(( $1 * 10 )); shift
	for _ in $(seq 1 "$n"); do "$@" && return 0; sleep 0.1; done
	return 1
}
# verify_failed [ARGS]: how many checks hostd's verify_network reports failed
verify_failed() {
	local out
	out=$(hc verify_network "$@") || { echo "error"; return; }
	echo "$out" >"$TMP/verify.out"
	echo "$out" | field net_verify.failed | grep . || echo 0
}

mkdir -p "$STATE/images"
if ! start_hostd; then t_fail "start hostd in the node netns" "$(tail -5 "$LOG")"; t_done; exit 1; fi
t_pass "hostd runs inside the node netns"

# ---- tenants, pools, instances ------------------------------------------------------
hc ensure_tenant t-a 7 10.7.0.0/24 >/dev/null && hc ensure_tenant t-b 8 10.8.0.0/24 >/dev/null &&
	hc ensure_pool t-a p >/dev/null && hc ensure_pool t-b p >/dev/null ||
	{ t_fail "tenants" "$(tail -3 "$LOG")"; t_done; exit 1; }
nx ip -d link show br-tenant-7 | grep -q bridge && nx ip addr show br-tenant-7 | grep -q "10.7.0.1/24" &&
	! ip link show br-tenant-7 >/dev/null 2>&1 &&
	t_pass "bridges with their gateways exist in the node netns only" ||
	t_fail "bridges" "$(nx ip -br addr)"
out=$(hc ensure_tenant t-c 9 10.7.0.0/16); rc=$?
[ $rc = 1 ] && echo "$out" | grep -q "error.code=409" && echo "$out" | grep -q overlaps &&
	t_pass "an overlapping subnet is refused (409)" || t_fail "overlap" "$out"
nx ip link add br-tenant-10 type veth peer name vfor10
out=$(hc ensure_tenant t-d 10 10.10.0.0/24); rc=$?
[ $rc = 1 ] && echo "$out" | grep -q "error.code=409" && [ "$(hc list t-d | field error.code)" != 500 ] &&
	nx ip -d link show br-tenant-10 | grep -q veth &&
	t_pass "a foreign interface with the bridge's name is refused, not adopted" ||
	t_fail "foreign bridge name" "$out"
nx ip link del br-tenant-10

addr_of() { hc create "$1" p "$2" 1 128 guest | field instance.ipv4_address; }
A1=$(addr_of t-a i-000000a1); A2=$(addr_of t-a i-000000a2); B1=$(addr_of t-b i-000000b1)
[ "$A1" = 10.7.0.2 ] && [ "$A2" = 10.7.0.3 ] && [ "$B1" = 10.8.0.2 ] &&
	t_pass "addresses allocated from .2 upward per tenant" || t_fail "allocation" "$A1 $A2 $B1"

# guest NAME TAP ADDR/PREFIX GATEWAY BRIDGE: a netns whose eth0 is a veth
# peer of TAP (in the node, on BRIDGE)
guest() {
	local ns=${P}$1
	GUEST_NS+=("$ns")
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	ip link add "$2" netns "$NODE" type veth peer name eth0 netns "$ns"
	nx ip link set "$2" master "$5" up
	ip -n "$ns" addr add "$3" dev eth0
	ip -n "$ns" link set eth0 up
	ip -n "$ns" route add default via "$4"
}
guest a1 tn7i0 10.7.0.2/24 10.7.0.1 br-tenant-7
guest a2 tn7i1 10.7.0.3/24 10.7.0.1 br-tenant-7
guest b1 tn8i0 10.8.0.2/24 10.8.0.1 br-tenant-8
# hostd applies an instance's rules when START attaches its TAP; the
# stand-ins were attached by hand, so ask for the rules explicitly
hc reapply_network >/dev/null || t_fail "reapply for the stand-ins"
gx() { local g=$1; shift; ip netns exec "${P}$g" "$@"; }
# icmp NETNS DST [SRC]: one ICMP echo, answered within 1 s? (this machine
# has no ping binary: a raw socket does the same)
icmp() {
	ip netns exec "$1" timeout 3 python3 -c '
import os, socket, struct, sys, time
dst = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
if len(sys.argv) > 2:
    s.bind((sys.argv[2], 0))
ident = os.getpid() & 0xffff
def csum(b):
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    t = (t >> 16) + (t & 0xffff); t += t >> 16
    return ~t & 0xffff
body = b"vmlet-net-test!!"
h = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
s.sendto(struct.pack("!BBHHH", 8, 0, csum(h + body), ident, 1) + body, (dst, 0))
end = time.time() + 1
while time.time() < end:
    s.settimeout(max(0.01, end - time.time()))
    try:
        d, a = s.recvfrom(200)
    except socket.timeout:
        break
    ihl = (d[0] & 15) * 4
    t, _, _, i, _ = struct.unpack("!BBHHH", d[ihl:ihl + 8])
    if t == 0 and i == ident and a[0] == dst:
        sys.exit(0)
sys.exit(1)
' "${@:2}" 2>/dev/null
}
ping1() { icmp "${P}$1" "$2"; }

# ---- within a tenant -----------------------------------------------------------------
wait_until 5 ping1 a1 10.7.0.3 && t_pass "guest to guest within a tenant (ICMP)" ||
	t_fail "intra-tenant ping"
ping1 a1 10.7.0.1 && t_pass "guest to its gateway" || t_fail "gateway ping"

# tcp_serve / udp_serve GUEST PORT TEXT: answer every connection / datagram with TEXT
serve() {
	ip netns exec "${P}$1" python3 -c '
import socket, sys
kind, port, text = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port))
if kind == "tcp":
    s.listen(8)
    while True:
        c, a = s.accept(); c.sendall(text + b" " + a[0].encode()); c.close()
else:
    while True:
        d, a = s.recvfrom(100); s.sendto(text + b" " + a[0].encode(), a)
' "$2" "$3" "$4" &
	BG_PIDS+=($!)
}
# ask GUEST-OR-NS KIND ADDR PORT: what the server answers (empty: nothing, within 2 s)
ask() {
	local ns=$1; shift
	ip netns exec "$ns" timeout 3 python3 -c '
import socket, sys
kind, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
s.settimeout(2)
try:
    if kind == "tcp":
        s.connect((addr, port)); print(s.recv(100).decode())
    else:
        s.sendto(b"hi", (addr, port)); print(s.recvfrom(100)[0].decode())
except Exception:
    pass
' "$@" 2>/dev/null
}
serve a1 tcp 80 hello-a1; serve a1 udp 53 udp-a1; serve b1 tcp 80 hello-b1; serve b1 udp 53 udp-b1
serve_up() {
	ip netns exec "$UP" python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 9999))
while True:
    d, a = s.recvfrom(100); s.sendto(b"up-saw " + a[0].encode(), a)
' &
	BG_PIDS+=($!)
}
serve_up
sleep 0.3
wait_until 3 sh -c "[ -n \"\$(ip netns exec ${P}a2 timeout 3 python3 -c 'import socket;s=socket.create_connection((\"10.7.0.2\",80),2);print(s.recv(9))' 2>/dev/null)\" ]"
r=$(ask "${P}a2" tcp 10.7.0.2 80); [ "${r%% *}" = hello-a1 ] && t_pass "TCP within a tenant" ||
	t_fail "intra-tenant TCP" "$r"

# ---- across tenants ---------------------------------------------------------------------
! ping1 b1 10.7.0.2 && ! ping1 a1 10.8.0.2 && t_pass "no ICMP across tenants" ||
	t_fail "cross-tenant ICMP passed"
[ -z "$(ask "${P}b1" tcp 10.7.0.2 80)" ] && [ -z "$(ask "${P}a1" tcp 10.8.0.2 80)" ] &&
	t_pass "no TCP across tenants" || t_fail "cross-tenant TCP passed"
[ -z "$(ask "${P}b1" udp 10.7.0.2 53)" ] && [ -z "$(ask "${P}a1" udp 10.8.0.2 53)" ] &&
	t_pass "no UDP across tenants" || t_fail "cross-tenant UDP passed"
! ping1 b1 10.7.0.1 && t_pass "a tenant cannot reach another tenant's gateway" ||
	t_fail "foreign gateway reachable"

# ---- spoofing ------------------------------------------------------------------------------
gx a1 ip addr add 10.7.0.99/24 dev eth0
! icmp "${P}a1" 10.7.0.3 10.7.0.99 && ping1 a1 10.7.0.3 &&
	t_pass "a spoofed source address is dropped (its own still works)" ||
	t_fail "spoofing not dropped"
gx a1 ip addr del 10.7.0.99/24 dev eth0

# ---- egress --------------------------------------------------------------------------------
r=$(ask "${P}a1" udp 192.0.2.2 9999)
[ "$r" = "up-saw 192.0.2.1" ] && t_pass "egress reaches the uplink masqueraded (as 192.0.2.1)" ||
	t_fail "egress masquerade" "uplink answered: '$r'"

# ---- published ports ------------------------------------------------------------------------
out=$(hc publish t-a p i-000000a1 tcp 8080 80) && t_pass "whitelisted port published" ||
	t_fail "publish" "$out"
r=$(ask "$UP" tcp 192.0.2.1 8080)
[ "${r%% *}" = hello-a1 ] && t_pass "the published port reaches the guest from the uplink" ||
	t_fail "published port" "answer: '$r'"
out=$(hc publish t-a p i-000000a1 tcp 9090 80); rc=$?
[ $rc = 1 ] && echo "$out" | grep -q "error.code=403" && echo "$out" | grep -q "t-a" &&
	echo "$out" | grep -q 9090 && t_pass "a non-whitelisted port is refused by hostd (403, names tenant and port)" ||
	t_fail "non-whitelisted publish" "$out"
out=$(hc publish t-b p i-000000b1 tcp 8080 80); rc=$?
[ $rc = 1 ] && echo "$out" | grep -q "error.code=403" &&
	t_pass "another tenant cannot publish t-a's whitelisted port" || t_fail "foreign whitelist" "$out"
[ -z "$(ask "$UP" tcp 192.0.2.1 9090)" ] && t_pass "the refused port does not reach anything" ||
	t_fail "9090 reached something"

# ---- net verify -------------------------------------------------------------------------------
for p in "${BG_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
BG_PIDS=()
# the stand-ins are not vmlet's TAPs: take them away before verifying
nx ip link del tn7i0; nx ip link del tn7i1; nx ip link del tn8i0
n=$(verify_failed)
[ "$n" = 0 ] && t_pass "net verify passes" || t_fail "verify" "$(grep -A3 'ok=false' "$TMP/verify.out" | head -20)"
h=$(nx nft -a list chain inet vmlet forward | sed -n 's/.*comment "vmlet:isolate:7".*# handle \([0-9]*\)/\1/p')
[ -n "$h" ] && nx nft delete rule inet vmlet forward handle "$h"
n=$(verify_failed)
[ "$n" != 0 ] && [ "$n" != error ] && grep -q "isolate:7" "$TMP/verify.out" &&
	t_pass "net verify fails after an isolation rule is deleted with nft ($n failed)" ||
	t_fail "tamper not detected" "failed=$n handle=$h"
hc reapply_network >/dev/null && [ "$(verify_failed)" = 0 ] &&
	t_pass "net verify passes again after hostd re-applies" || t_fail "reapply"
nx nft flush table inet vmlet
nx ip link del br-tenant-8
stop_hostd
start_hostd && [ "$(verify_failed)" = 0 ] && nx ip link show br-tenant-8 >/dev/null 2>&1 &&
	t_pass "hostd at start rebuilds a lost bridge and flushed rules" || t_fail "restore at start"

# ---- a real QEMU guest on its TAP ------------------------------------------------------------
if [ ! -x "$QEMU" ] || [ ! -s "$GUEST/vmlinuz" ] || [ ! -s "$GUEST/initrd.gz" ]; then
	t_skip "QEMU guest" "needs $QEMU and the test guest (make guest)"
elif ! grep -q "cgroup .*memory" /proc/self/mountinfo && ! grep -q cgroup2 /proc/self/mountinfo; then
	t_skip "QEMU guest" "needs cgroups"
elif ! "$T_ROOT/deploy/install-image.sh" guest "$GUEST" "$STATE/images" >/dev/null 2>"$TMP/install.err"; then
	t_fail "install the guest image" "$(cat "$TMP/install.err")"
else
	I=i-000000a3
	CONSOLE=$STATE/tenants/t-a/pools/p/instances/$I/console.log
	A3=$(addr_of t-a $I)
	out=$(hc action t-a p $I start); rc=$?
	if [ $rc != 0 ]; then
		t_fail "start the QEMU guest" "$out"
	else
		TAP=$(hc lookup t-a p $I | field instance.tap_name)
		wait_until 90 grep -q VMLET-GUEST-READY "$CONSOLE"
		if wait_until 30 icmp "$NODE" "$A3"; then
			t_pass "a QEMU guest on TAP $TAP answers ping from its gateway ($A3)"
		else
			t_fail "QEMU guest ping" "$(tail -5 "$CONSOLE" 2>/dev/null)"
		fi
		uid=$(hc lookup t-a p $I | field instance.uid)
		nx ip -d link show "$TAP" | grep -q "master br-tenant-7" && [ "$(verify_failed)" = 0 ] &&
			t_pass "its TAP is on the tenant bridge and verify passes" ||
			t_fail "TAP verify" "$(grep -B1 -A3 'ok=false' "$TMP/verify.out" | head)"
		nx ip link set "$TAP" nomaster && nx ip link set "$TAP" master br-tenant-8
		n=$(verify_failed)
		[ "$n" != 0 ] && grep -q "TAP $TAP master" "$TMP/verify.out" &&
			t_pass "net verify notices the TAP moved to another bridge" ||
			t_fail "moved TAP not detected" "failed=$n"
		hc reapply_network >/dev/null && [ "$(verify_failed)" = 0 ] &&
			nx ip -d link show "$TAP" | grep -q "master br-tenant-7" &&
			t_pass "re-apply puts the TAP back on its bridge" || t_fail "reapply TAP"
		hc action t-a p $I destroy >/dev/null
		! nx ip link show "$TAP" >/dev/null 2>&1 && t_pass "destroy removes the TAP" ||
			t_fail "TAP left after destroy"
	fi
fi

# ---- teardown leaves nothing -------------------------------------------------------------------
for i in i-000000a1 i-000000a2 i-000000a3; do hc action t-a p $i destroy >/dev/null; done
hc action t-b p i-000000b1 destroy >/dev/null
hc unpublish t-a tcp 8080 >/dev/null
for t in t-a t-b; do hc remove_pool $t p >/dev/null; hc remove_tenant $t >/dev/null; done
left=$(nx ip -br link | grep -E "^(br-tenant-|tn[0-9])" || true)
rules=$(nx nft list table inet vmlet 2>/dev/null | grep -cE "br-tenant-[0-9]|tn[0-9]+i" || true)
[ -z "$left" ] && [ "$rules" = 0 ] && t_pass "teardown leaves no bridge, TAP or tenant rule" ||
	t_fail "left behind" "links: $left rules: $rules"
t_done
