#!/usr/bin/env bash
# `make install` staged under DESTDIR: what lands where with which mode, the
# units point at the installed binaries and pass systemd-analyze verify,
# an existing config is never overwritten, and the sysusers.d / tmpfiles.d
# files create the users and directories they promise (in a scratch root).
. "$(dirname "$0")/../lib.sh"
t_require_root
S=$(mktemp -d /tmp/vmlet-install.XXXXXX)
trap 'rm -rf "$S"' EXIT
ST=$S/stage
for b in vmlet-hostd vmlet-agentd vmletctl; do
	[ -x "$T_BUILD/$b" ] || { t_fail "install" "$T_BUILD/$b is not built"; t_done; exit 1; }
done

if O=$T_BUILD PREFIX=/usr/local DESTDIR=$ST "$T_ROOT/deploy/install.sh" >"$S/install.log" 2>&1; then
	t_pass "install.sh with DESTDIR"
else
	t_fail "install.sh with DESTDIR" "$(tail -3 "$S/install.log")"
	t_done; exit 1
fi

# path mode [owner]
expect() {
	local got; got=$(stat -c '%a' "$ST$1" 2>&1)
	[ "$got" = "$2" ] && t_pass "$1 mode $2" || t_fail "$1 mode $2" "got '$got'"
}
expect /usr/local/sbin/vmlet-hostd 755
expect /usr/local/sbin/vmlet-agentd 755
expect /usr/local/bin/vmletctl 755
expect /usr/local/lib/systemd/system/vmlet-hostd.service 644
expect /usr/local/lib/systemd/system/vmlet-agentd.service 644
expect /usr/local/lib/sysusers.d/vmlet.conf 644
expect /usr/local/lib/tmpfiles.d/vmlet.conf 644
expect /usr/local/share/doc/vmlet/README.md 644
expect /etc/vmlet 755
expect /etc/vmlet/certs 700
expect /etc/vmlet/vmlet.conf 644
expect /var/lib/vmlet 711
expect /var/lib/vmlet/agentd 700

"$ST/usr/local/bin/vmletctl" --version >/dev/null 2>&1 && t_pass "installed vmletctl runs" ||
	t_fail "installed vmletctl runs"
if grep -q '@[A-Z]*@' "$ST"/usr/local/lib/systemd/system/*.service; then
	t_fail "units: placeholders substituted" "$(grep -h '@[A-Z]*@' "$ST"/usr/local/lib/systemd/system/*.service)"
else
	t_pass "units: placeholders substituted"
fi
grep -q '^ExecStart=/usr/local/sbin/vmlet-hostd --config /etc/vmlet/vmlet.conf$' \
	"$ST/usr/local/lib/systemd/system/vmlet-hostd.service" &&
	grep -q '^ExecStart=/usr/local/sbin/vmlet-agentd --config /etc/vmlet/vmlet.conf$' \
		"$ST/usr/local/lib/systemd/system/vmlet-agentd.service" &&
	t_pass "units start the installed binaries" || t_fail "units start the installed binaries"

# A second install keeps the admin's config.
echo "# edited by the admin" >>"$ST/etc/vmlet/vmlet.conf"
O=$T_BUILD PREFIX=/usr/local DESTDIR=$ST "$T_ROOT/deploy/install.sh" >"$S/install2.log" 2>&1
grep -q '^# edited by the admin$' "$ST/etc/vmlet/vmlet.conf" && t_pass "reinstall keeps an existing vmlet.conf" ||
	t_fail "reinstall keeps an existing vmlet.conf"
cmp -s "$T_ROOT/deploy/vmlet.conf.example" "$ST/usr/local/share/doc/vmlet/vmlet.conf.example" &&
	t_pass "example config installed with the docs" || t_fail "example config installed with the docs"

# systemd-analyze verify: every directive known, binaries present.
if command -v systemd-analyze >/dev/null; then
	mkdir -p "$S/units"
	for u in vmlet-hostd vmlet-agentd; do
		sed -e "s|@SBINDIR@|$T_BUILD|g" -e "s|@DOCDIR@|/usr/share/doc|g" \
			"$T_ROOT/deploy/$u.service" >"$S/units/$u.service"
	done
	out=$(cd "$S/units" && systemd-analyze verify vmlet-hostd.service vmlet-agentd.service 2>&1)
	[ -z "$out" ] && t_pass "systemd-analyze verify: both units clean" ||
		t_fail "systemd-analyze verify: both units clean" "$out"
else
	t_skip "systemd-analyze verify" "systemd-analyze not installed"
fi

# sysusers.d and tmpfiles.d, applied to a scratch root.
if command -v systemd-sysusers >/dev/null && command -v systemd-tmpfiles >/dev/null; then
	R=$S/root
	mkdir -p "$R/etc"
	if systemd-sysusers --root="$R" "$T_ROOT/deploy/vmlet.sysusers.conf" >"$S/sysusers.log" 2>&1 &&
		grep -q '^vmlet:x:[0-9]*:[0-9]*:.*:/usr/sbin/nologin$' "$R/etc/passwd" &&
		grep -q '^vmlet-admin:' "$R/etc/group" && grep -q '^vmlet:' "$R/etc/group"; then
		t_pass "sysusers.d: user vmlet (nologin), groups vmlet and vmlet-admin"
	else
		t_fail "sysusers.d creates vmlet and vmlet-admin" "$(cat "$S/sysusers.log")"
	fi
	vuid=$(awk -F: '$1 == "vmlet" {print $3}' "$R/etc/passwd")
	if systemd-tmpfiles --root="$R" --create "$T_ROOT/deploy/vmlet.tmpfiles.conf" >"$S/tmpfiles.log" 2>&1; then
		v1=$(stat -c '%a %u' "$R/run/vmlet"); v2=$(stat -c '%a %u' "$R/var/lib/vmlet")
		v3=$(stat -c '%a %u' "$R/var/lib/vmlet/agentd")
		if [ "$v1" = "755 0" ] && [ "$v2" = "711 0" ] && [ "$v3" = "700 $vuid" ]; then
			t_pass "tmpfiles.d: /run/vmlet 0755 root, /var/lib/vmlet 0711 root, agentd dir 0700 vmlet"
		else
			t_fail "tmpfiles.d modes and owners" "run '$v1' lib '$v2' agentd '$v3' (vmlet uid $vuid)"
		fi
	else
		t_fail "tmpfiles.d applies" "$(cat "$S/tmpfiles.log")"
	fi
else
	t_skip "sysusers.d / tmpfiles.d" "systemd-sysusers or systemd-tmpfiles not installed"
fi

# Installing into / needs root; it says so instead of half-installing.
if setpriv --reuid=nobody --regid=nogroup --clear-groups test -r "$T_ROOT/deploy/install.sh" 2>/dev/null; then
	out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups env O="$T_BUILD" PREFIX="$S/never" \
		bash "$T_ROOT/deploy/install.sh" 2>&1); rc=$?
	[ "$rc" != 0 ] && [ ! -e "$S/never" ] && [[ "$out" == *"needs root"* ]] &&
		t_pass "install into / as non-root refused" || t_fail "install into / as non-root refused" "rc $rc: $out"
else
	t_skip "install as non-root" "checkout not readable by nobody"
fi
t_done
