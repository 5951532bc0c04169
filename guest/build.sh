#!/usr/bin/env bash
# Builds the test guest image into $OUT (default build/guest):
#   vmlinuz    Debian's linux-image-*-cloud-amd64 kernel (apt-get download, dpkg -x;
#              no network beyond apt)
#   initrd.gz  the static init from guest/init.c plus the virtio modules it loads
# The kernel package version is whatever Debian's linux-image-cloud-amd64
# metapackage points at; it is recorded in $OUT/kernel-version.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/build/guest}
CC=${CC:-cc}
mkdir -p "$OUT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The download runs as root (APT::Sandbox::User=root below): the .deb lands in
# this private temp dir, which _apt could not write to.

if [ ! -s "$OUT/vmlinuz" ] || [ ! -s "$OUT/modules/evdev.ko" ]; then
	resolve() { apt-cache depends linux-image-cloud-amd64 2>/dev/null | sed -n 's/.*Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -1; }
	pkg=$(resolve)
	# A machine whose packages are all installed may never have had its
	# package lists fetched (make deps only updates when it installs).
	if [ -z "$pkg" ] && [ "$(id -u)" = 0 ]; then
		apt-get update -qq >/dev/null 2>&1 || true
		pkg=$(resolve)
	fi
	if [ -z "$pkg" ]; then
		echo "guest: cannot resolve linux-image-cloud-amd64 (run apt-get update)" >&2
		exit 1
	fi
	(cd "$work" && apt-get -o APT::Sandbox::User=root download "$pkg" >/dev/null)
	dpkg -x "$work"/"$pkg"_*.deb "$work/x"
	cp "$work"/x/boot/vmlinuz-* "$OUT/vmlinuz"
	kdir=$(ls -d "$work"/x/lib/modules/*)
	basename "$kdir" > "$OUT/kernel-version"
	rm -rf "$OUT/modules" && mkdir -p "$OUT/modules"
	for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_mmio \
		 net/core/failover drivers/net/net_failover drivers/net/virtio_net drivers/block/virtio_blk \
		 drivers/acpi/button drivers/input/evdev; do
		cp "$kdir/kernel/$m.ko" "$OUT/modules/"
	done
fi

rm -rf "$work/root" && mkdir -p "$work/root"/{proc,sys,dev,run,lib/modules}
$CC -static -O2 -Wall -Wextra -Werror -o "$work/root/init" "$ROOT/guest/init.c"
cp "$OUT"/modules/*.ko "$work/root/lib/modules/"
(cd "$work/root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet --reproducible) | gzip -9n > "$OUT/initrd.gz.tmp"
mv "$OUT/initrd.gz.tmp" "$OUT/initrd.gz"
echo "guest: $OUT/vmlinuz ($(cat "$OUT/kernel-version")) $OUT/initrd.gz"
