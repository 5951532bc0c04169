#!/usr/bin/env bash
# Installs a guest image into vmlet's image store (hostd/images.h):
#
#   install-image.sh [--cmdline CMDLINE] NAME SRC_DIR [IMAGES_DIR]
#
# SRC_DIR must hold vmlinuz and may hold initrd.gz and rootfs.img (e.g. the
# build/guest directory `make guest` fills). They are copied (0444) into
# IMAGES_DIR/NAME (0755; default /var/lib/vmlet/images) with a
# manifest.json listing each file's sha256. hostd refuses an image whose
# files no longer match. The new image is assembled in a temporary
# directory beside the old one and renamed into place; an existing image of
# the same name is replaced.
#
# NAME follows the id rule ([a-z0-9-]{1,63}, no leading/trailing '-').
# CMDLINE (default below) must be printable ASCII without '"' or '\'.
set -euo pipefail

CMDLINE="console=ttyS0 tsc_early_khz=2000000 panic=-1 quiet"

usage() {
	echo "usage: $0 [--cmdline CMDLINE] NAME SRC_DIR [IMAGES_DIR]" >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case "$1" in
	--cmdline) [ $# -ge 2 ] || usage; CMDLINE=$2; shift 2 ;;
	--) shift; break ;;
	-*) usage ;;
	*) break ;;
	esac
done
if [ $# -lt 2 ] || [ $# -gt 3 ]; then usage; fi
NAME=$1
SRC=$2
IMAGES_DIR=${3:-/var/lib/vmlet/images}

if ! [[ $NAME =~ ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ ]]; then
	echo "install-image: name \"$NAME\" must match [a-z0-9-]{1,63} without leading or trailing '-'" >&2
	exit 2
fi
case $IMAGES_DIR in
/*) ;;
*) echo "install-image: IMAGES_DIR must be an absolute path" >&2; exit 2 ;;
esac
if [ ${#CMDLINE} -gt 1024 ] || ! [[ $CMDLINE =~ ^[\ -~]*$ ]] || [[ $CMDLINE == *[\"\\]* ]]; then
	printf '%s\n' "install-image: --cmdline must be at most 1024 printable ASCII characters without '\"' or '\\'" >&2
	exit 2
fi
if [ ! -f "$SRC/vmlinuz" ] || [ ! -s "$SRC/vmlinuz" ]; then
	echo "install-image: $SRC/vmlinuz is missing or empty (run make guest?)" >&2
	exit 1
fi

umask 022
install -d -m 0755 "$IMAGES_DIR"
tmp=$(mktemp -d "$IMAGES_DIR/.install-$NAME.XXXXXX")
old=""
cleanup() {
	rm -rf -- "$tmp"
	[ -z "$old" ] || rm -rf -- "$old"
}
trap cleanup EXIT

kernel=vmlinuz initrd="" rootfs=""
files=(vmlinuz)
if [ -f "$SRC/initrd.gz" ]; then initrd=initrd.gz; files+=(initrd.gz); fi
if [ -f "$SRC/rootfs.img" ]; then rootfs=rootfs.img; files+=(rootfs.img); fi

hashes=""
for f in "${files[@]}"; do
	if [ ! -s "$SRC/$f" ]; then
		echo "install-image: $SRC/$f is empty" >&2
		exit 1
	fi
	install -m 0444 "$SRC/$f" "$tmp/$f"
	h=$(sha256sum "$tmp/$f" | cut -d' ' -f1)
	hashes+="${hashes:+, }\"$f\": \"$h\""
done

cat >"$tmp/manifest.json" <<EOF
{
  "name": "$NAME",
  "kernel": "$kernel",
  "initrd": "$initrd",
  "rootfs": "$rootfs",
  "sha256": {$hashes},
  "cmdline": "$CMDLINE"
}
EOF
chmod 0444 "$tmp/manifest.json"
chmod 0755 "$tmp"

if [ -e "$IMAGES_DIR/$NAME" ] || [ -L "$IMAGES_DIR/$NAME" ]; then
	old=$(mktemp -u "$IMAGES_DIR/.old-$NAME.XXXXXX")
	mv -T -- "$IMAGES_DIR/$NAME" "$old"
fi
mv -T -- "$tmp" "$IMAGES_DIR/$NAME"
echo "install-image: installed $NAME (${files[*]}) into $IMAGES_DIR/$NAME"
