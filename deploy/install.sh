#!/usr/bin/env bash
# `make install`: installs vmlet under PREFIX (default /usr/local), staged
# under DESTDIR when set (packaging: then nothing outside DESTDIR is touched,
# no users are created and no service manager is called).
#
#   $PREFIX/sbin/vmlet-hostd, vmlet-agentd     the daemons
#   $PREFIX/bin/vmletctl                       the client
#   $UNITDIR/vmlet-{hostd,agentd}.service      (default $PREFIX/lib/systemd/system)
#   $SYSUSERSDIR/vmlet.conf                    (default $PREFIX/lib/sysusers.d)
#   $TMPFILESDIR/vmlet.conf                    (default $PREFIX/lib/tmpfiles.d)
#   $PREFIX/share/doc/vmlet/                   README.md, vmlet.conf.example
#   /etc/vmlet/vmlet.conf                      the example, only if absent
#   /etc/vmlet (0755), /etc/vmlet/certs (0700), /var/lib/vmlet (0711),
#   /var/lib/vmlet/agentd (0700 vmlet); /run/vmlet comes from tmpfiles.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
O=${O:-build}
case "$O" in /*) ;; *) O=$ROOT/$O ;; esac
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
SBINDIR=${SBINDIR:-$PREFIX/sbin}
BINDIR=${BINDIR:-$PREFIX/bin}
UNITDIR=${UNITDIR:-$PREFIX/lib/systemd/system}
SYSUSERSDIR=${SYSUSERSDIR:-$PREFIX/lib/sysusers.d}
TMPFILESDIR=${TMPFILESDIR:-$PREFIX/lib/tmpfiles.d}
DOCDIR=${DOCDIR:-$PREFIX/share/doc/vmlet}
SYSCONFDIR=${SYSCONFDIR:-/etc}
STATEDIR=${STATEDIR:-/var/lib}

say() { echo "install: $*"; }
die() { echo "install: $*" >&2; exit 1; }

for b in vmlet-hostd vmlet-agentd vmletctl; do
	[ -x "$O/$b" ] || die "$O/$b is not built (run make all)"
done
if [ -z "$DESTDIR" ] && [ "$(id -u)" != 0 ]; then
	die "installing into / needs root (or set DESTDIR=/some/stage)"
fi

D=$DESTDIR
install -d -m 0755 "$D$SBINDIR" "$D$BINDIR" "$D$UNITDIR" "$D$SYSUSERSDIR" "$D$TMPFILESDIR" "$D$DOCDIR"
install -m 0755 "$O/vmlet-hostd" "$O/vmlet-agentd" "$D$SBINDIR/"
install -m 0755 "$O/vmletctl" "$D$BINDIR/"

# Units name the installed binaries and docs.
for u in vmlet-hostd.service vmlet-agentd.service; do
	sed -e "s|@SBINDIR@|$SBINDIR|g" -e "s|@DOCDIR@|$DOCDIR|g" "$ROOT/deploy/$u" >"$D$UNITDIR/$u.tmp"
	chmod 0644 "$D$UNITDIR/$u.tmp"
	mv -f "$D$UNITDIR/$u.tmp" "$D$UNITDIR/$u"
done
install -m 0644 "$ROOT/deploy/vmlet.sysusers.conf" "$D$SYSUSERSDIR/vmlet.conf"
install -m 0644 "$ROOT/deploy/vmlet.tmpfiles.conf" "$D$TMPFILESDIR/vmlet.conf"
install -m 0644 "$ROOT/README.md" "$D$DOCDIR/README.md"

# Configuration: the example always goes to the docs; /etc/vmlet/vmlet.conf
# is written only when there is none, so a reinstall never loses settings.
install -d -m 0755 "$D$SYSCONFDIR/vmlet"
install -d -m 0700 "$D$SYSCONFDIR/vmlet/certs"
chmod 0755 "$D$SYSCONFDIR/vmlet"
chmod 0700 "$D$SYSCONFDIR/vmlet/certs"
example=$ROOT/deploy/vmlet.conf.example
if [ -f "$example" ]; then
	install -m 0644 "$example" "$D$DOCDIR/vmlet.conf.example"
	if [ -e "$D$SYSCONFDIR/vmlet/vmlet.conf" ]; then
		say "kept existing $D$SYSCONFDIR/vmlet/vmlet.conf"
	else
		install -m 0644 "$example" "$D$SYSCONFDIR/vmlet/vmlet.conf"
		say "wrote $D$SYSCONFDIR/vmlet/vmlet.conf from the example: set [node] id"
	fi
else
	say "warning: $example is missing; write $D$SYSCONFDIR/vmlet/vmlet.conf yourself"
fi

# State: hostd's registry root (others may traverse, not list) and agentd's
# own directory.
install -d -m 0711 "$D$STATEDIR/vmlet"
chmod 0711 "$D$STATEDIR/vmlet"
install -d -m 0700 "$D$STATEDIR/vmlet/agentd"

if [ -n "$DESTDIR" ]; then
	say "staged in $DESTDIR (users, ownership of $STATEDIR/vmlet/agentd and /run/vmlet"
	say "come from sysusers.d/tmpfiles.d on the target system)"
	exit 0
fi

# Live install: users and groups, then the tmpfiles entries.
if command -v systemd-sysusers >/dev/null 2>&1; then
	systemd-sysusers "$SYSUSERSDIR/vmlet.conf"
else
	. "$ROOT/deploy/lib-users.sh"
	vmlet_ensure_users || die "could not create user vmlet / group vmlet-admin"
fi
chown vmlet:vmlet "$STATEDIR/vmlet/agentd"
if command -v systemd-tmpfiles >/dev/null 2>&1; then
	systemd-tmpfiles --create "$TMPFILESDIR/vmlet.conf"
else
	install -d -m 0755 /run/vmlet
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload
fi

cat <<EOF
install: done. Next:
  1. set [node] id (and listen, coordinators) in $SYSCONFDIR/vmlet/vmlet.conf
  2. certificates: $BINDIR/vmletctl certs init --dir $SYSCONFDIR/vmlet/certs --node-id <id>
     (a development CA; in production put your CA's ca.pem, node.pem, node.key there)
  3. systemctl enable --now vmlet-hostd vmlet-agentd
  4. add administrators to the vmlet-admin group; then: vmletctl node info
EOF
