#include "hostd/images.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "shared/cleanup.h"
#include "shared/log.h"
#include "shared/safefile.h"
#include "shared/validate.h"

#define HASH_CHUNK (256 * 1024)

static const char *const role_names[IMAGE_ROLES] = {
	[IMAGE_KERNEL] = "kernel",
	[IMAGE_INITRD] = "initrd",
	[IMAGE_ROOTFS] = "rootfs",
};

const char *image_role_name(enum image_role role)
{
	return role >= 0 && role < IMAGE_ROLES ? role_names[role] : "?";
}

bool image_file_name_ok(const char *s)
{
	size_t n;

	if (!s || s[0] == '\0' || s[0] == '.')
		return false;
	for (n = 0; s[n]; n++) {
		char c = s[n];

		if (n >= IMAGE_FILE_NAME_MAX)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return strcmp(s, IMAGE_MANIFEST_NAME) != 0;
}

/* ---- manifest ------------------------------------------------------------------ */

/* A JSON string without embedded NULs, shorter than max; else 400. */
static int get_string(json_t *v, const char *key, size_t max, const char **out,
		      struct vmlet_err *err)
{
	if (!json_is_string(v))
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "manifest.json: \"%s\" must be a string",
				     key);
	*out = json_string_value(v);
	if (strlen(*out) != json_string_length(v))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "manifest.json: \"%s\" contains a NUL character", key);
	if (json_string_length(v) >= max)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "manifest.json: \"%s\" is longer than %zu bytes", key, max - 1);
	return 0;
}

static int parse_name(json_t *v, struct image_manifest *m, struct vmlet_err *err)
{
	const char *s;

	if (get_string(v, "name", sizeof(m->name), &s, err) < 0)
		return -1;
	if (!vmlet_id_ok(s))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "manifest.json: \"name\" must match [a-z0-9-]{1,63}");
	memcpy(m->name, s, strlen(s) + 1);
	return 0;
}

static int parse_file(json_t *v, const char *key, enum image_role role, bool required,
		      struct image_manifest *m, struct vmlet_err *err)
{
	const char *s;
	char q[VLOG_STR_MAX];

	if (get_string(v, key, sizeof(m->file[role]), &s, err) < 0)
		return -1;
	if (s[0] == '\0' && !required)
		return 0;
	if (!image_file_name_ok(s))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "manifest.json: \"%s\": %s must be a plain file name (1-%d of "
				     "[A-Za-z0-9._-], not starting with '.', not %s)",
				     key, vlog_str(s, q, sizeof(q)), IMAGE_FILE_NAME_MAX,
				     IMAGE_MANIFEST_NAME);
	memcpy(m->file[role], s, strlen(s) + 1);
	return 0;
}

static int parse_kernel(json_t *v, struct image_manifest *m, struct vmlet_err *err)
{
	return parse_file(v, "kernel", IMAGE_KERNEL, true, m, err);
}

static int parse_initrd(json_t *v, struct image_manifest *m, struct vmlet_err *err)
{
	return parse_file(v, "initrd", IMAGE_INITRD, false, m, err);
}

static int parse_rootfs(json_t *v, struct image_manifest *m, struct vmlet_err *err)
{
	return parse_file(v, "rootfs", IMAGE_ROOTFS, false, m, err);
}

static bool hex64_ok(const char *s)
{
	size_t n;

	for (n = 0; s[n]; n++)
		if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
			return false;
	return n == IMAGE_SHA256_HEX;
}

/* Runs after the file keys: every hash must belong to a named file and
 * every named file must have one. */
static int parse_sha256(json_t *v, struct image_manifest *m, struct vmlet_err *err)
{
	const char *fname;
	json_t *h;
	char q[VLOG_STR_MAX];

	/* One file, one role: a hash could not say which one it checks. */
	for (int a = 0; a < IMAGE_ROLES; a++)
		for (int b = a + 1; b < IMAGE_ROLES; b++)
			if (m->file[a][0] && strcmp(m->file[a], m->file[b]) == 0)
				return vmlet_err_set(err, VMLET_E_INVALID, 0,
						     "manifest.json: %s and %s are the same file "
						     "\"%s\"", role_names[a], role_names[b],
						     m->file[a]);
	if (!json_is_object(v))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "manifest.json: \"sha256\" must be an object");
	json_object_foreach(v, fname, h) {
		const char *hex;
		int role = -1;

		for (int r = 0; r < IMAGE_ROLES; r++)
			if (m->file[r][0] && strcmp(m->file[r], fname) == 0)
				role = r;
		if (role < 0)
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "manifest.json: \"sha256\" names %s, which is not the "
					     "kernel, initrd or rootfs",
					     vlog_str(fname, q, sizeof(q)));
		if (get_string(h, "sha256", IMAGE_SHA256_HEX + 2, &hex, err) < 0)
			return -1;
		if (!hex64_ok(hex))
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "manifest.json: \"sha256\".\"%s\" must be 64 lowercase "
					     "hex digits", fname);
		memcpy(m->sha256[role], hex, IMAGE_SHA256_HEX + 1);
	}
	for (int r = 0; r < IMAGE_ROLES; r++)
		if (m->file[r][0] && !m->sha256[r][0])
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "manifest.json: \"sha256\" has no hash for %s \"%s\"",
					     role_names[r], m->file[r]);
	return 0;
}

static int parse_cmdline(json_t *v, struct image_manifest *m, struct vmlet_err *err)
{
	const char *s;

	if (get_string(v, "cmdline", sizeof(m->cmdline), &s, err) < 0)
		return -1;
	for (const char *c = s; *c; c++)
		if (*c < 0x20 || *c > 0x7e)
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "manifest.json: \"cmdline\" must be printable ASCII "
					     "(byte 0x%02x at %zu)", (unsigned char)*c, (size_t)(c - s));
	memcpy(m->cmdline, s, strlen(s) + 1);
	return 0;
}

/* Parsed in this order (sha256 needs the file names). */
static const struct manifest_key {
	const char *key;
	bool required;
	int (*parse)(json_t *v, struct image_manifest *m, struct vmlet_err *err);
} manifest_keys[] = {
	{ "name", true, parse_name },     { "kernel", true, parse_kernel },
	{ "initrd", false, parse_initrd }, { "rootfs", false, parse_rootfs },
	{ "sha256", true, parse_sha256 }, { "cmdline", false, parse_cmdline },
};
#define N_MANIFEST_KEYS (sizeof(manifest_keys) / sizeof(manifest_keys[0]))

int image_parse_manifest(const char *text, size_t len, const char *name,
			 struct image_manifest *m, struct vmlet_err *err)
{
	json_auto_t *root = NULL; /* jansson's own cleanup attribute */
	json_error_t je;
	const char *key;
	json_t *v;
	char q[VLOG_STR_MAX];

	memset(m, 0, sizeof(*m));
	if (len > IMAGE_MANIFEST_MAX)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "manifest.json: %zu bytes, more than %d", len,
				     IMAGE_MANIFEST_MAX);
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "manifest.json: invalid JSON at line %d column %d: %s",
				     je.line, je.column, je.text);
	if (!json_is_object(root))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "manifest.json: must be a JSON object");
	json_object_foreach(root, key, v) {
		bool known = false;

		for (size_t i = 0; i < N_MANIFEST_KEYS; i++)
			known = known || strcmp(manifest_keys[i].key, key) == 0;
		if (!known)
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "manifest.json: unknown key %s",
					     vlog_str(key, q, sizeof(q)));
	}
	for (size_t i = 0; i < N_MANIFEST_KEYS; i++) {
		v = json_object_get(root, manifest_keys[i].key);
		if (!v) {
			if (manifest_keys[i].required)
				return vmlet_err_set(err, VMLET_E_INVALID, 0,
						     "manifest.json: \"%s\" is missing",
						     manifest_keys[i].key);
			continue;
		}
		if (manifest_keys[i].parse(v, m, err) < 0)
			return -1;
	}
	if (strcmp(m->name, name) != 0)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "manifest.json: \"name\" %s differs from the image directory "
				     "%s", vlog_str(m->name, q, sizeof(q)), name);
	return 0;
}

/* ---- the store on disk ------------------------------------------------------------ */

/* Owned by hostd's own user (root in production) and not writable by
 * anyone else: only hostd's user can then change what was checked. */
static int check_trusted(const struct stat *st, const char *what, const char *path,
			 struct vmlet_err *err)
{
	if (st->st_uid != geteuid())
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
				     "image store: %s %s is owned by uid %u, not %u", what, path,
				     (unsigned)st->st_uid, (unsigned)geteuid());
	if (st->st_mode & (S_IWGRP | S_IWOTH))
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
				     "image store: %s %s is group- or world-writable (mode %04o)",
				     what, path, (unsigned)(st->st_mode & 07777));
	return 0;
}

/* openat(O_NOFOLLOW) beneath dirfd; names the symlink case clearly. */
static int open_beneath(int dirfd, const char *name, int flags, const char *path,
			struct vmlet_err *err)
{
	int fd = openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	struct stat st;

	if (fd >= 0)
		return fd;
	/* O_NOFOLLOW|O_DIRECTORY on a symlink says ENOTDIR: look. */
	if ((errno == ELOOP || errno == ENOTDIR) &&
	    fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
		return vmlet_err_set(err, VMLET_E_INTERNAL, ELOOP,
				     "image store: %s is a symlink; refused", path);
	if (errno == ENOTDIR && (flags & O_DIRECTORY))
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOTDIR,
				     "image store: %s is not a directory", path);
	return vmlet_err_sys(err, errno == ENOENT ? VMLET_E_NOT_FOUND : VMLET_E_INTERNAL,
			     "image store: %s", path);
}

static void to_hex(const unsigned char *d, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[2 * n] = '\0';
}

/* SHA-256 of the whole file through pread (the fd's offset stays 0). */
static int hash_fd(int fd, const char *path, char out[IMAGE_SHA256_HEX + 1],
		   struct vmlet_err *err)
{
	_cleanup_free_ unsigned char *buf = malloc(HASH_CHUNK);
	unsigned char digest[WC_SHA256_DIGEST_SIZE];
	wc_Sha256 sha;
	off_t off = 0;
	int r = 0;

	if (!buf)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "image store: out of memory");
	if (wc_InitSha256(&sha) != 0)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "image store: wc_InitSha256 failed");
	for (;;) {
		ssize_t n = pread(fd, buf, HASH_CHUNK, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = vmlet_err_sys(err, VMLET_E_INTERNAL, "image store: read %s", path);
			break;
		}
		if (n == 0)
			break;
		if (wc_Sha256Update(&sha, buf, (word32)n) != 0) {
			r = vmlet_err_set(err, VMLET_E_INTERNAL, 0,
					  "image store: wc_Sha256Update failed on %s", path);
			break;
		}
		off += n;
	}
	if (r == 0 && wc_Sha256Final(&sha, digest) != 0)
		r = vmlet_err_set(err, VMLET_E_INTERNAL, 0, "image store: wc_Sha256Final failed");
	wc_Sha256Free(&sha);
	if (r == 0)
		to_hex(digest, sizeof(digest), out);
	return r;
}

/* Verified-hash cache. Hashing a 14 MiB kernel costs ~40 ms, paid on every
 * start and every wake; the wake path is latency-critical. A file is only
 * accepted when it is root-owned and not writable by group or others
 * (check_trusted), and any change to its contents moves its ctime, which
 * no process can set back. So (dev, ino, size, mtime, ctime) identifies
 * contents that were already hashed: a hit skips the read, a miss (or any
 * change at all) hashes again. The cache holds computed hashes only, never
 * a verdict: the comparison with the manifest happens on every open. */
#define HASH_CACHE_SLOTS 32

struct hash_cache_entry {
	bool used;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
	char sha256[IMAGE_SHA256_HEX + 1];
};

static struct hash_cache_entry hash_cache[HASH_CACHE_SLOTS];
static unsigned hash_cache_next;
static pthread_mutex_t hash_cache_lock = PTHREAD_MUTEX_INITIALIZER;

static bool same_time(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

static bool hash_cache_match(const struct hash_cache_entry *e, const struct stat *st)
{
	return e->used && e->dev == st->st_dev && e->ino == st->st_ino &&
	       e->size == st->st_size && same_time(&e->mtime, &st->st_mtim) &&
	       same_time(&e->ctime, &st->st_ctim);
}

static bool hash_cache_get(const struct stat *st, char out[IMAGE_SHA256_HEX + 1])
{
	bool hit = false;

	pthread_mutex_lock(&hash_cache_lock);
	for (size_t i = 0; i < HASH_CACHE_SLOTS && !hit; i++)
		if (hash_cache_match(&hash_cache[i], st)) {
			memcpy(out, hash_cache[i].sha256, IMAGE_SHA256_HEX + 1);
			hit = true;
		}
	pthread_mutex_unlock(&hash_cache_lock);
	return hit;
}

static void hash_cache_put(const struct stat *st, const char sha256[IMAGE_SHA256_HEX + 1])
{
	pthread_mutex_lock(&hash_cache_lock);
	struct hash_cache_entry *e = &hash_cache[hash_cache_next++ % HASH_CACHE_SLOTS];
	e->used = true;
	e->dev = st->st_dev;
	e->ino = st->st_ino;
	e->size = st->st_size;
	e->mtime = st->st_mtim;
	e->ctime = st->st_ctim;
	memcpy(e->sha256, sha256, IMAGE_SHA256_HEX + 1);
	pthread_mutex_unlock(&hash_cache_lock);
}

void image_hash_cache_clear(void)
{
	pthread_mutex_lock(&hash_cache_lock);
	memset(hash_cache, 0, sizeof(hash_cache));
	hash_cache_next = 0;
	pthread_mutex_unlock(&hash_cache_lock);
}

/* The file's hash, from the cache when its identity and times are unchanged. */
static int hash_file(int fd, const struct stat *st, const char *path,
		     char out[IMAGE_SHA256_HEX + 1], struct vmlet_err *err)
{
	if (hash_cache_get(st, out))
		return 0;
	if (hash_fd(fd, path, out, err) < 0)
		return -1;
	hash_cache_put(st, out);
	return 0;
}

static int open_image_file(int imgfd, const char *dir, const struct image_manifest *m,
			   enum image_role role, struct image_file *f, struct vmlet_err *err)
{
	_cleanup_close_ int fd = -1;
	struct stat st;

	snprintf(f->name, sizeof(f->name), "%s", m->file[role]);
	if ((size_t)snprintf(f->path, sizeof(f->path), "%s/%s", dir, f->name) >= sizeof(f->path))
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "image store: path too long");
	/* O_NONBLOCK: a FIFO planted here must not hang the open. */
	fd = open_beneath(imgfd, f->name, O_RDONLY | O_NONBLOCK, f->path, err);
	if (fd < 0) {
		/* The image exists; a file it names does not: the store is broken. */
		if (err && err->code == VMLET_E_NOT_FOUND)
			err->code = VMLET_E_INTERNAL;
		return -1;
	}
	if (fstat(fd, &st) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "image store: fstat %s", f->path);
	if (!S_ISREG(st.st_mode))
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
				     "image store: %s %s is not a regular file", role_names[role],
				     f->path);
	if (check_trusted(&st, role_names[role], f->path, err) < 0)
		return -1;
	if (st.st_size == 0)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "image store: %s %s is empty",
				     role_names[role], f->path);
	if (fcntl(fd, F_SETFL, 0) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "image store: fcntl %s", f->path);
	if (hash_file(fd, &st, f->path, f->sha256, err) < 0)
		return -1;
	if (strcmp(f->sha256, m->sha256[role]) != 0)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
				     "image %s: %s %s: sha256 mismatch: the manifest says %s, the "
				     "file has %s", m->name, role_names[role], f->name,
				     m->sha256[role], f->sha256);
	f->size = (uint64_t)st.st_size;
	f->present = true;
	f->fd = vmlet_take_fd(&fd);
	return 0;
}

/* A broken manifest is the store's fault, not the request's: 500. */
static int store_error(struct vmlet_err *err, const char *name)
{
	if (err)
		err->code = VMLET_E_INTERNAL;
	return vmlet_err_prefix(err, "image %s: ", name);
}

void image_close(struct image *img)
{
	if (!img)
		return;
	for (int r = 0; r < IMAGE_ROLES; r++) {
		if (img->files[r].present && img->files[r].fd >= 0)
			close(img->files[r].fd);
		img->files[r].fd = -1;
		img->files[r].present = false;
	}
}

int image_open(const char *images_dir, const char *name, struct image *img,
	       struct vmlet_err *err)
{
	_cleanup_close_ int storefd = -1;
	_cleanup_close_ int imgfd = -1;
	_cleanup_close_ int mfd = -1;
	_cleanup_free_ char *text = NULL;
	struct image_manifest m;
	struct stat st;
	size_t len;
	char q[VLOG_STR_MAX], mpath[PATH_MAX];

	memset(img, 0, sizeof(*img));
	for (int r = 0; r < IMAGE_ROLES; r++)
		img->files[r].fd = -1;
	if (!vmlet_id_ok(name))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "image: name %s must match [a-z0-9-]{1,63} without leading or "
				     "trailing '-'", vlog_str(name, q, sizeof(q)));
	if (!images_dir || images_dir[0] != '/')
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
				     "image store: the images dir must be an absolute path");
	if ((size_t)snprintf(img->dir, sizeof(img->dir), "%s/%s", images_dir, name) >=
		    sizeof(img->dir) ||
	    (size_t)snprintf(mpath, sizeof(mpath), "%s/%s", img->dir, IMAGE_MANIFEST_NAME) >=
		    sizeof(mpath))
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "image store: path too long");
	snprintf(img->name, sizeof(img->name), "%s", name);

	/* The store itself is configured by root; its path may contain
	 * symlinks, but the directory must be trusted. */
	storefd = open(images_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (storefd < 0) {
		if (errno == ENOENT)
			return vmlet_err_set(err, VMLET_E_NOT_FOUND, ENOENT,
					     "image %s not found (no image store at %s)", name,
					     images_dir);
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "image store: %s", images_dir);
	}
	if (fstat(storefd, &st) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "image store: fstat %s", images_dir);
	if (check_trusted(&st, "directory", images_dir, err) < 0)
		return -1;

	imgfd = open_beneath(storefd, name, O_RDONLY | O_DIRECTORY, img->dir, err);
	if (imgfd < 0) {
		if (err && err->code == VMLET_E_NOT_FOUND)
			return vmlet_err_set(err, VMLET_E_NOT_FOUND, ENOENT, "image %s not found",
					     name);
		return -1;
	}
	if (fstat(imgfd, &st) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "image store: fstat %s", img->dir);
	if (check_trusted(&st, "directory", img->dir, err) < 0)
		return -1;

	mfd = open_beneath(imgfd, IMAGE_MANIFEST_NAME, O_RDONLY | O_NONBLOCK, mpath, err);
	if (mfd < 0) {
		if (err && err->code == VMLET_E_NOT_FOUND)
			return vmlet_err_set(err, VMLET_E_INTERNAL, ENOENT,
					     "image %s: no %s in %s", name, IMAGE_MANIFEST_NAME,
					     img->dir);
		return -1;
	}
	if (fstat(mfd, &st) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "image store: fstat %s", mpath);
	if (check_trusted(&st, "manifest", mpath, err) < 0)
		return -1;
	if (vmlet_read_fd(mfd, mpath, IMAGE_MANIFEST_MAX, &text, &len, err) < 0 ||
	    image_parse_manifest(text, len, name, &m, err) < 0)
		return store_error(err, name);
	for (int r = 0; r < IMAGE_ROLES; r++) {
		if (!m.file[r][0])
			continue;
		if (open_image_file(imgfd, img->dir, &m, (enum image_role)r, &img->files[r], err) <
		    0) {
			image_close(img);
			return -1;
		}
	}
	memcpy(img->cmdline, m.cmdline, sizeof(img->cmdline));
	return 0;
}
