/* The image store: /var/lib/vmlet/images/<name>/ holds a guest kernel,
 * an optional initrd and/or rootfs, and manifest.json naming them with
 * their SHA-256. hostd starts nothing from an image it has not opened and
 * hashed itself: image_open returns open fds of exactly the files whose
 * hashes matched (the jail binds those fds, not paths).
 *
 * manifest.json (strict: unknown or duplicate keys are refused):
 *   {
 *     "name":    "guest",                 required, equals the directory name
 *     "kernel":  "vmlinuz",               required
 *     "initrd":  "initrd.gz",             optional, "" or absent: none
 *     "rootfs":  "",                      optional, "" or absent: none
 *     "sha256":  {"vmlinuz": "<64 hex>", "initrd.gz": "<64 hex>"},
 *                                         exactly one lowercase hash per named file
 *     "cmdline": "console=ttyS0 ..."      optional, printable ASCII
 *   }
 * File names are plain names: 1-64 of [A-Za-z0-9._-], not starting with
 * '.', never "manifest.json", each file named once.
 *
 * Trust: the images dir, the image dir, the manifest and every file must
 * be owned by hostd's user (root) and not group/world-writable; nothing
 * is a symlink (O_NOFOLLOW, one openat per name beneath the image dir);
 * files must be regular and non-empty.
 * Errors: a bad image name 400; a missing image 404 "image <name> not
 * found"; anything wrong inside the store (manifest, ownership, symlink,
 * hash mismatch naming the file and both hashes) 500: the request was
 * fine, the node's store is not. */
#ifndef HOSTD_IMAGES_H
#define HOSTD_IMAGES_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

#define IMAGE_MANIFEST_NAME "manifest.json"
#define IMAGE_MANIFEST_MAX (64 * 1024)
#define IMAGE_FILE_NAME_MAX 64
#define IMAGE_NAME_MAX 64
#define IMAGE_CMDLINE_MAX 1024
#define IMAGE_SHA256_HEX 64

enum image_role { IMAGE_KERNEL = 0, IMAGE_INITRD, IMAGE_ROOTFS, IMAGE_ROLES };

/* The manifest, parsed and checked (no filesystem access). */
struct image_manifest {
	char name[IMAGE_NAME_MAX];
	char file[IMAGE_ROLES][IMAGE_FILE_NAME_MAX + 1];    /* "" when absent */
	char sha256[IMAGE_ROLES][IMAGE_SHA256_HEX + 1];
	char cmdline[IMAGE_CMDLINE_MAX + 1];
};

struct image_file {
	bool present;
	char name[IMAGE_FILE_NAME_MAX + 1];
	char path[PATH_MAX]; /* <images_dir>/<image>/<name>: messages, jail_bind.host_path */
	int fd;              /* O_RDONLY|O_CLOEXEC, offset 0; -1 when absent */
	uint64_t size;
	char sha256[IMAGE_SHA256_HEX + 1];
};

struct image {
	char name[IMAGE_NAME_MAX];
	char dir[PATH_MAX];
	struct image_file files[IMAGE_ROLES]; /* files[IMAGE_KERNEL] is always present */
	char cmdline[IMAGE_CMDLINE_MAX + 1];
};

/* "kernel", "initrd", "rootfs". */
const char *image_role_name(enum image_role role);

/* A plain file name as the manifest may use. */
bool image_file_name_ok(const char *s);

/* Parse manifest text (len bytes, need not be NUL-terminated) for the
 * image called name. 400 naming the key and why. */
int image_parse_manifest(const char *text, size_t len, const char *name,
			 struct image_manifest *m, struct vmlet_err *err);

/* Open, check and hash the image; on success img holds open fds the
 * caller releases with image_close. On failure nothing stays open. */
int image_open(const char *images_dir, const char *name, struct image *img,
	       struct vmlet_err *err);

/* Close the fds (idempotent; also fine on a zeroed or failed image). */
void image_close(struct image *img);

/* Forget every cached file hash (tests; hostd never needs to: a changed
 * file misses the cache by its ctime). */
void image_hash_cache_clear(void);

#endif
