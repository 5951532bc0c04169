/* The per-instance jail (see jail.h for the layout and the child's order).
 *
 * Three parts: checking a spec (pure), building the jail root on the host
 * (jail_prepare / jail_cleanup, ordinary parent code working beneath
 * directory fds), and the child between clone and execve, which only makes
 * plain syscalls on a plan the parent computed. */
#include "hostd/jail.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shared/cleanup.h"
#include "shared/log.h"
#include "shared/validate.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
/* Deepest directory tree jail_cleanup walks (the jail has a few levels;
 * a VMM could make more in its writable dirs). */
#define REMOVE_DEPTH_MAX 32
/* The /dev tmpfs holds a handful of nodes and directories. */
#define DEV_TMPFS_OPTS "mode=0755,size=64k,nr_inodes=64"

/* A fixed, minimal environment: QEMU and Firecracker need none of it, and
 * nothing hostd inherited (LD_PRELOAD, proxies, ...) may reach the VMM. */
char *const jail_envp[] = { "PATH=/usr/bin", NULL };

/* ---- the device allowlist ----------------------------------------------- */

static const struct allowed_device {
	unsigned major, minor;
	const char *what;
} allowed_devices[] = {
	{ 1, 3, "null" },     { 1, 5, "zero" },       { 1, 8, "random" },
	{ 1, 9, "urandom" },  { 10, 200, "net/tun" }, { 10, 232, "kvm" },
	{ 10, 238, "vhost-net" }, { 10, 241, "vhost-vsock" },
};

static bool device_allowed(unsigned major, unsigned minor)
{
	for (size_t i = 0; i < sizeof(allowed_devices) / sizeof(allowed_devices[0]); i++)
		if (allowed_devices[i].major == major && allowed_devices[i].minor == minor)
			return true;
	return false;
}

/* ---- spec checks ---------------------------------------------------------- */

static bool jail_path_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-' || c == '+' || c == '@';
}

/* Absolute, no empty, "." or ".." component, no trailing '/', not "/",
 * shorter than max. strict: components of [A-Za-z0-9._+@-] only (paths
 * inside the jail); otherwise any byte but control characters (host
 * paths from hostd's own configuration). */
static bool path_ok(const char *p, size_t max, bool strict)
{
	size_t n, comp = 0;

	if (!p || p[0] != '/' || p[1] == '\0')
		return false;
	for (n = 1; p[n]; n++) {
		unsigned char c = (unsigned char)p[n];

		if (n + 1 >= max)
			return false;
		if (c == '/') {
			if (comp == 0)
				return false;
			if ((comp == 1 && p[n - 1] == '.') ||
			    (comp == 2 && p[n - 1] == '.' && p[n - 2] == '.'))
				return false;
			comp = 0;
			continue;
		}
		if (c < 0x20 || c == 0x7f || (strict && !jail_path_char((char)c)))
			return false;
		comp++;
	}
	if (comp == 0)
		return false;
	if ((comp == 1 && p[n - 1] == '.') || (comp == 2 && p[n - 1] == '.' && p[n - 2] == '.'))
		return false;
	return true;
}

/* a lies strictly beneath b ("/usr/lib" beneath "/usr"). */
static bool beneath(const char *a, const char *b)
{
	size_t lb = strlen(b);

	return strncmp(a, b, lb) == 0 && a[lb] == '/';
}

static bool same_or_nested(const char *a, const char *b)
{
	return strcmp(a, b) == 0 || beneath(a, b) || beneath(b, a);
}

static bool fd_open(int fd)
{
	return fd >= 0 && fcntl(fd, F_GETFD) >= 0;
}

/* One entry of the jail's namespace, for the overlap check. */
struct named_path {
	const char *field;
	size_t index;
	const char *path;
};

static int check_paths_disjoint(const struct named_path *p, size_t n, struct vmlet_err *err)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (same_or_nested(p[i].path, p[j].path))
				return vmlet_err_set(err, VMLET_E_INVALID, 0,
						     "%s[%zu].jail_path %s and %s[%zu].jail_path %s "
						     "overlap (same path or one beneath the other)",
						     p[i].field, p[i].index, p[i].path, p[j].field,
						     p[j].index, p[j].path);
	return 0;
}

static int check_jail_path(const char *field, size_t i, const char *path, struct vmlet_err *err)
{
	if (!path_ok(path, JAIL_PATH_MAX, true))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "%s[%zu].jail_path: must be an absolute, normalized path of "
				     "[A-Za-z0-9._+@-] components shorter than %d bytes, not \"/\"",
				     field, i, JAIL_PATH_MAX);
	if (strcmp(path, "/dev") == 0 || beneath(path, "/dev") || strcmp(path, "/proc") == 0 ||
	    beneath(path, "/proc"))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "%s[%zu].jail_path %s: /dev and /proc belong to the jail", field,
				     i, path);
	return 0;
}

static int check_symlink_target(size_t i, const char *t, struct vmlet_err *err)
{
	size_t n = t ? strlen(t) : 0;

	if (n == 0 || n >= JAIL_PATH_MAX || t[0] == '/' || t[n - 1] == '/')
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "symlinks[%zu].target: must be a relative path (no leading or "
				     "trailing '/') shorter than %d bytes", i, JAIL_PATH_MAX);
	for (const char *c = t; *c; c++) {
		if (*c == '/' && c[1] == '/')
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "symlinks[%zu].target: empty component", i);
		if (*c != '/' && !jail_path_char(*c))
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "symlinks[%zu].target: only [A-Za-z0-9._+@-] components", i);
	}
	/* No component may be "..": the link must stay inside the jail root. */
	for (const char *c = t; c; c = strchr(c, '/'), c = c ? c + 1 : NULL)
		if (c[0] == '.' && c[1] == '.' && (c[2] == '/' || c[2] == '\0'))
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "symlinks[%zu].target %s: \"..\" is not allowed", i, t);
	return 0;
}

static int check_device(size_t i, const struct jail_device *d, struct vmlet_err *err)
{
	const char *rest;
	const char *slash;

	if (!path_ok(d->jail_path, JAIL_PATH_MAX, true) || !beneath(d->jail_path, "/dev"))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "devices[%zu].jail_path: must be /dev/<name> or /dev/<dir>/<name>",
				     i);
	rest = d->jail_path + 5;
	slash = strchr(rest, '/');
	if (slash && strchr(slash + 1, '/'))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "devices[%zu].jail_path %s: at most one directory below /dev", i,
				     d->jail_path);
	if (!device_allowed(d->major, d->minor))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "devices[%zu]: %u:%u is not a device a VMM may have (null, zero, "
				     "random, urandom, net/tun, kvm, vhost-net, vhost-vsock)",
				     i, d->major, d->minor);
	if (d->mode & ~(mode_t)0666)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "devices[%zu].mode: %04o must be permission bits within 0666", i,
				     (unsigned)d->mode);
	return 0;
}

static int check_rlimits(const struct jail_spec *s, struct vmlet_err *err)
{
	for (size_t i = 0; i < s->n_rlimits; i++) {
		const struct jail_rlimit *r = &s->rlimits[i];
		struct rlimit cur;

		if (r->resource < 0 || r->resource >= RLIM_NLIMITS)
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "rlimits[%zu].resource: %d is not an RLIMIT_*", i,
					     r->resource);
		for (size_t j = 0; j < i; j++)
			if (s->rlimits[j].resource == r->resource)
				return vmlet_err_set(err, VMLET_E_INVALID, 0,
						     "rlimits[%zu]: resource %d given twice", i,
						     r->resource);
		if (r->soft > r->hard)
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "rlimits[%zu]: soft limit above the hard limit", i);
		if (getrlimit(r->resource, &cur) < 0)
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "getrlimit(%d)", r->resource);
		/* hostd lacks CAP_SYS_RESOURCE: the child could only fail. */
		if (cur.rlim_max != RLIM_INFINITY && r->hard > cur.rlim_max)
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "rlimits[%zu]: hard limit %llu of resource %d is above "
					     "hostd's own (%llu); it can only be lowered",
					     i, (unsigned long long)r->hard, r->resource,
					     (unsigned long long)cur.rlim_max);
	}
	return 0;
}

static int check_fds(const struct jail_spec *s, struct vmlet_err *err)
{
	for (size_t i = 0; i < s->n_keep_fds; i++) {
		const struct jail_fd *f = &s->keep_fds[i];

		if (!fd_open(f->parent_fd))
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "keep_fds[%zu].parent_fd %d is not an open fd", i,
					     f->parent_fd);
		if (f->child_fd < 0 || f->child_fd >= JAIL_CHILD_FD_LIMIT)
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "keep_fds[%zu].child_fd %d must be 0..%d", i, f->child_fd,
					     JAIL_CHILD_FD_LIMIT - 1);
		for (size_t j = 0; j < i; j++)
			if (s->keep_fds[j].child_fd == f->child_fd)
				return vmlet_err_set(err, VMLET_E_INVALID, 0,
						     "keep_fds[%zu].child_fd %d is already taken by "
						     "keep_fds[%zu]", i, f->child_fd, j);
	}
	for (size_t i = 0; i < s->n_cgroup_procs_fds; i++)
		if (!fd_open(s->cgroup_procs_fds[i]))
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "cgroup_procs_fds[%zu] %d is not an open fd", i,
					     s->cgroup_procs_fds[i]);
	for (size_t i = 0; i < s->n_binds; i++)
		if (s->binds[i].from_fd && !fd_open(s->binds[i].host_fd))
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "binds[%zu].host_fd %d is not an open fd", i,
					     s->binds[i].host_fd);
	return 0;
}

static const char *last_component(const char *p)
{
	const char *s = strrchr(p, '/');

	return s ? s + 1 : p;
}

/* Everything that does not need the filesystem. */
static int check_spec(const struct jail_spec *s, struct vmlet_err *err)
{
	struct named_path names[JAIL_MAX_BINDS + JAIL_MAX_SYMLINKS + JAIL_MAX_WRITABLE_DIRS];
	size_t nn = 0, argc;

	if (!s)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "jail: no spec");
	if (vmlet_validate_instance_id("instance_id", s->instance_id, err) < 0)
		return -1;
	if (!path_ok(s->jail_dir, PATH_MAX - JAIL_PATH_MAX - 16, false) ||
	    strcmp(last_component(s->jail_dir), s->instance_id) != 0)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "jail_dir: must be an absolute, normalized path ending in the "
				     "instance id %s", s->instance_id);
	if (s->uid == 0 || s->gid == 0 || s->uid == (uid_t)-1 || s->gid == (gid_t)-1)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "uid/gid %u/%u: a jailed VMM never runs as root or as -1",
				     (unsigned)s->uid, (unsigned)s->gid);
	if (s->n_binds > JAIL_MAX_BINDS || s->n_symlinks > JAIL_MAX_SYMLINKS ||
	    s->n_devices > JAIL_MAX_DEVICES || s->n_writable_dirs > JAIL_MAX_WRITABLE_DIRS ||
	    s->n_keep_fds > JAIL_MAX_KEEP_FDS || s->n_cgroup_procs_fds > JAIL_MAX_CGROUP_FDS ||
	    s->n_rlimits > JAIL_MAX_RLIMITS)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "jail: too many entries in a list");

	for (size_t i = 0; i < s->n_binds; i++) {
		const struct jail_bind *b = &s->binds[i];

		if (!path_ok(b->host_path, PATH_MAX, false))
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "binds[%zu].host_path: must be an absolute, normalized "
					     "path", i);
		if (check_jail_path("binds", i, b->jail_path, err) < 0)
			return -1;
		names[nn++] = (struct named_path){ "binds", i, b->jail_path };
	}
	for (size_t i = 0; i < s->n_symlinks; i++) {
		if (check_jail_path("symlinks", i, s->symlinks[i].jail_path, err) < 0 ||
		    check_symlink_target(i, s->symlinks[i].target, err) < 0)
			return -1;
		names[nn++] = (struct named_path){ "symlinks", i, s->symlinks[i].jail_path };
	}
	for (size_t i = 0; i < s->n_writable_dirs; i++) {
		const struct jail_writable_dir *w = &s->writable_dirs[i];

		if (check_jail_path("writable_dirs", i, w->jail_path, err) < 0)
			return -1;
		if (w->mode & ~(mode_t)0770 || !(w->mode & 0700))
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "writable_dirs[%zu].mode %04o: must include 0700 and stay "
					     "within 0770", i, (unsigned)w->mode);
		names[nn++] = (struct named_path){ "writable_dirs", i, w->jail_path };
	}
	if (check_paths_disjoint(names, nn, err) < 0)
		return -1;
	for (size_t i = 0; i < s->n_devices; i++) {
		if (check_device(i, &s->devices[i], err) < 0)
			return -1;
		for (size_t j = 0; j < i; j++)
			if (same_or_nested(s->devices[i].jail_path, s->devices[j].jail_path))
				return vmlet_err_set(err, VMLET_E_INVALID, 0,
						     "devices[%zu].jail_path %s overlaps devices[%zu]",
						     i, s->devices[i].jail_path, j);
	}
	if (check_fds(s, err) < 0 || check_rlimits(s, err) < 0)
		return -1;
	if (!path_ok(s->exec_path, JAIL_PATH_MAX, true))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "exec_path: must be an absolute, normalized path in the jail");
	if (!s->argv || !s->argv[0])
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "argv: must have at least argv[0]");
	for (argc = 0; s->argv[argc]; argc++)
		if (argc + 1 >= JAIL_MAX_ARGS)
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "argv: more than %d arguments", JAIL_MAX_ARGS - 1);
	return 0;
}

/* ---- trusted directories on the host --------------------------------------- */

/* Root-owned, a directory, not group/world-writable: only root can change
 * what it contains, so what was checked stays true. */
static int check_owner(const struct stat *st, const char *path, struct vmlet_err *err)
{
	if (S_ISLNK(st->st_mode))
		return vmlet_err_set(err, VMLET_E_FORBIDDEN, 0, "jail: %s is a symlink", path);
	if (!S_ISDIR(st->st_mode))
		return vmlet_err_set(err, VMLET_E_FORBIDDEN, 0, "jail: %s is not a directory",
				     path);
	if (st->st_uid != 0)
		return vmlet_err_set(err, VMLET_E_FORBIDDEN, 0,
				     "jail: %s is owned by uid %u, not root", path,
				     (unsigned)st->st_uid);
	if (st->st_mode & (S_IWGRP | S_IWOTH))
		return vmlet_err_set(err, VMLET_E_FORBIDDEN, 0,
				     "jail: %s is group- or world-writable (mode %04o)", path,
				     (unsigned)(st->st_mode & 07777));
	return 0;
}

/* Open the directory at an absolute, normalized path, checking every
 * component from "/" down (itself included) with check_owner. */
static int open_trusted_dir(const char *path, struct vmlet_err *err)
{
	_cleanup_close_ int fd = open("/", DIR_FLAGS);
	char shown[PATH_MAX];
	struct stat st;
	const char *p = path;

	if (fd < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "jail: open /");
	if (fstat(fd, &st) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "jail: fstat /");
	if (check_owner(&st, "/", err) < 0)
		return -1;
	shown[0] = '\0';
	while (*p == '/')
		p++;
	while (*p) {
		char comp[NAME_MAX + 1];
		size_t n = strcspn(p, "/");
		struct stat st2;
		int next;

		if (n > NAME_MAX)
			return vmlet_err_set(err, VMLET_E_INVALID, 0, "jail: %s: name too long",
					     path);
		memcpy(comp, p, n);
		comp[n] = '\0';
		snprintf(shown + strlen(shown), sizeof(shown) - strlen(shown), "/%s", comp);
		if (fstatat(fd, comp, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return vmlet_err_sys(err, errno == ENOENT ? VMLET_E_NOT_FOUND
								  : VMLET_E_INTERNAL,
					     "jail: %s", shown);
		if (check_owner(&st, shown, err) < 0)
			return -1;
		next = openat(fd, comp, DIR_FLAGS);
		if (next < 0)
			return vmlet_err_sys(err, VMLET_E_FORBIDDEN, "jail: open %s", shown);
		close(fd);
		fd = next;
		/* The same directory as the one checked, and still fine. */
		if (fstat(fd, &st2) < 0)
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "jail: fstat %s", shown);
		if (st2.st_dev != st.st_dev || st2.st_ino != st.st_ino)
			return vmlet_err_set(err, VMLET_E_CONFLICT, 0, "jail: %s changed while "
					     "being checked", shown);
		p += n;
		while (*p == '/')
			p++;
	}
	return vmlet_take_fd(&fd);
}

/* The parent of an absolute normalized path ("/a/b" -> "/a", "/a" -> "/"). */
static void parent_of(const char *path, char *out, size_t len)
{
	const char *s = strrchr(path, '/');
	size_t n = (size_t)(s - path);

	if (n == 0)
		n = 1;
	if (n >= len)
		n = len - 1;
	memcpy(out, path, n);
	out[n] = '\0';
}

/* ---- removing a tree without crossing mounts ---------------------------------- */

static int mnt_id_of(int dirfd, const char *name, struct statx *sx, const char *shown,
		     struct vmlet_err *err)
{
	if (statx(dirfd, name, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | (name[0] ? 0 : AT_EMPTY_PATH),
		  STATX_TYPE | STATX_MNT_ID, sx) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "jail: statx %s", shown);
	if (!(sx->stx_mask & STATX_MNT_ID))
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
				     "jail: the kernel gives no mount id (STATX_MNT_ID) for %s: "
				     "cannot prove nothing is mounted there", shown);
	return 0;
}

static bool is_mount_root(const struct statx *sx)
{
	return (sx->stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
	       (sx->stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

/* Empty the directory dirfd (shown names it), staying on mount mnt_id. */
static int empty_dir(int dirfd, const char *shown, uint64_t mnt_id, int depth,
		     struct vmlet_err *err)
{
	DIR *d;
	int dup_fd;
	bool removed;

	if (depth > REMOVE_DEPTH_MAX)
		return vmlet_err_set(err, VMLET_E_CONFLICT, 0,
				     "jail: %s is nested deeper than %d levels; not removing it",
				     shown, REMOVE_DEPTH_MAX);
	dup_fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	if (dup_fd < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "jail: dup %s", shown);
	d = fdopendir(dup_fd);
	if (!d) {
		close(dup_fd);
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "jail: fdopendir %s", shown);
	}
	/* Repeat until a pass finds nothing: removing while reading a
	 * directory may make readdir skip entries. */
	do {
		struct dirent *de;

		removed = false;
		rewinddir(d);
		errno = 0;
		while ((de = readdir(d))) {
			char sub[PATH_MAX];
			struct statx sx;

			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			snprintf(sub, sizeof(sub), "%s/%s", shown, de->d_name);
			if (mnt_id_of(dirfd, de->d_name, &sx, sub, err) < 0)
				goto fail;
			if (sx.stx_mnt_id != mnt_id || is_mount_root(&sx)) {
				vmlet_err_set(err, VMLET_E_CONFLICT, 0,
					      "jail: %s is a mount point; refusing to remove it", sub);
				goto fail;
			}
			if (S_ISDIR(sx.stx_mode)) {
				_cleanup_close_ int sfd = openat(dirfd, de->d_name, DIR_FLAGS);

				if (sfd < 0) {
					vmlet_err_sys(err, VMLET_E_INTERNAL, "jail: open %s", sub);
					goto fail;
				}
				if (empty_dir(sfd, sub, mnt_id, depth + 1, err) < 0)
					goto fail;
				if (unlinkat(dirfd, de->d_name, AT_REMOVEDIR) < 0) {
					vmlet_err_sys(err, VMLET_E_INTERNAL, "jail: rmdir %s", sub);
					goto fail;
				}
			} else if (unlinkat(dirfd, de->d_name, 0) < 0) {
				vmlet_err_sys(err, VMLET_E_INTERNAL, "jail: unlink %s", sub);
				goto fail;
			}
			removed = true;
		}
		if (errno) {
			vmlet_err_sys(err, VMLET_E_INTERNAL, "jail: readdir %s", shown);
			goto fail;
		}
	} while (removed);
	closedir(d);
	return 0;
fail:
	closedir(d);
	return -1;
}

/* Remove parentfd/name (a directory) and everything beneath it. */
static int remove_tree(int parentfd, const char *name, const char *shown, struct vmlet_err *err)
{
	_cleanup_close_ int fd = -1;
	struct statx psx, sx;
	struct stat st;

	if (mnt_id_of(parentfd, "", &psx, shown, err) < 0)
		return -1;
	if (fstatat(parentfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "jail: stat %s", shown);
	}
	if (mnt_id_of(parentfd, name, &sx, shown, err) < 0)
		return -1;
	if (sx.stx_mnt_id != psx.stx_mnt_id || is_mount_root(&sx))
		return vmlet_err_set(err, VMLET_E_CONFLICT, 0,
				     "jail: %s is a mount point; refusing to remove it", shown);
	if (!S_ISDIR(sx.stx_mode))
		return vmlet_err_set(err, VMLET_E_CONFLICT, 0, "jail: %s is not a directory",
				     shown);
	fd = openat(parentfd, name, DIR_FLAGS);
	if (fd < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "jail: open %s", shown);
	if (empty_dir(fd, shown, sx.stx_mnt_id, 0, err) < 0)
		return -1;
	if (unlinkat(parentfd, name, AT_REMOVEDIR) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "jail: rmdir %s", shown);
	return 0;
}

/* ---- building the jail root ------------------------------------------------------ */

/* mkdir if missing, open (refusing a symlink) and set mode exactly. */
static int make_dir_at(int dirfd, const char *name, mode_t mode, const char *shown,
		       struct vmlet_err *err)
{
	int fd;

	if (mkdirat(dirfd, name, mode) < 0 && errno != EEXIST)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "jail: mkdir %s", shown);
	fd = openat(dirfd, name, DIR_FLAGS);
	if (fd < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "jail: open %s", shown);
	/* hostd's umask must not decide what the VMM can traverse. */
	if (fchmod(fd, mode) < 0) {
		vmlet_err_sys(err, VMLET_E_INTERNAL, "jail: chmod %s", shown);
		close(fd);
		return -1;
	}
	return fd;
}

/* Open (creating 0755 as needed) the directory holding jail_path's last
 * component; *leaf points into jail_path. */
static int open_parent_in_root(int rootfd, const char *jail_path, const char **leaf,
			       struct vmlet_err *err)
{
	_cleanup_close_ int fd = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
	const char *p = jail_path + 1;

	if (fd < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "jail: dup");
	for (;;) {
		const char *slash = strchr(p, '/');
		char comp[NAME_MAX + 1];
		size_t n;
		int next;

		if (!slash)
			break;
		n = (size_t)(slash - p);
		if (n > NAME_MAX)
			return vmlet_err_set(err, VMLET_E_INVALID, 0, "jail: %s: name too long",
					     jail_path);
		memcpy(comp, p, n);
		comp[n] = '\0';
		next = make_dir_at(fd, comp, 0755, jail_path, err);
		if (next < 0)
			return -1;
		close(fd);
		fd = next;
		p = slash + 1;
	}
	*leaf = p;
	return vmlet_take_fd(&fd);
}

static int source_type(const struct jail_bind *b, size_t i, mode_t *type, struct vmlet_err *err)
{
	struct stat st;
	int r = b->from_fd ? fstat(b->host_fd, &st) : stat(b->host_path, &st);

	if (r < 0)
		return vmlet_err_sys(err, errno == ENOENT ? VMLET_E_NOT_FOUND : VMLET_E_INTERNAL,
				     "binds[%zu]: %s", i, b->host_path);
	if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "binds[%zu]: %s is neither a directory nor a regular file", i,
				     b->host_path);
	*type = st.st_mode & S_IFMT;
	return 0;
}

static int make_bind_target(int rootfd, const struct jail_bind *b, size_t i,
			    struct vmlet_err *err)
{
	_cleanup_close_ int pfd = -1;
	const char *leaf;
	mode_t type = 0;

	if (source_type(b, i, &type, err) < 0)
		return -1;
	pfd = open_parent_in_root(rootfd, b->jail_path, &leaf, err);
	if (pfd < 0)
		return -1;
	if (S_ISDIR(type)) {
		int fd = make_dir_at(pfd, leaf, 0755, b->jail_path, err);

		if (fd < 0)
			return -1;
		close(fd);
	} else {
		int fd = openat(pfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
				0444);

		if (fd < 0)
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "jail: create %s",
					     b->jail_path);
		close(fd);
	}
	return 0;
}

static int make_symlink(int rootfd, const struct jail_symlink *l, struct vmlet_err *err)
{
	_cleanup_close_ int pfd = -1;
	const char *leaf;

	pfd = open_parent_in_root(rootfd, l->jail_path, &leaf, err);
	if (pfd < 0)
		return -1;
	if (symlinkat(l->target, pfd, leaf) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "jail: symlink %s -> %s", l->jail_path,
				     l->target);
	return 0;
}

static int make_writable_dir(int rootfd, const struct jail_writable_dir *w, uid_t uid, gid_t gid,
			     struct vmlet_err *err)
{
	_cleanup_close_ int pfd = -1;
	_cleanup_close_ int fd = -1;
	const char *leaf;

	pfd = open_parent_in_root(rootfd, w->jail_path, &leaf, err);
	if (pfd < 0)
		return -1;
	fd = make_dir_at(pfd, leaf, 0700, w->jail_path, err);
	if (fd < 0)
		return -1;
	if (fchown(fd, uid, gid) < 0 || fchmod(fd, w->mode) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "jail: chown/chmod %s", w->jail_path);
	return 0;
}

int jail_prepare(const struct jail_spec *spec, struct vmlet_err *err)
{
	_cleanup_close_ int parentfd = -1;
	_cleanup_close_ int dirfd = -1;
	_cleanup_close_ int rootfd = -1;
	char parent[PATH_MAX], shown[PATH_MAX];
	const char *base;
	struct stat st;
	int fd;

	if (check_spec(spec, err) < 0)
		return -1;
	base = last_component(spec->jail_dir);
	parent_of(spec->jail_dir, parent, sizeof(parent));
	parentfd = open_trusted_dir(parent, err);
	if (parentfd < 0)
		return vmlet_err_prefix(err, "jail %s: parent of jail_dir: ", spec->instance_id);
	if (mkdirat(parentfd, base, 0700) < 0 && errno != EEXIST)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "jail: mkdir %s", spec->jail_dir);
	if (fstatat(parentfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "jail: stat %s", spec->jail_dir);
	if (check_owner(&st, spec->jail_dir, err) < 0)
		return -1;
	dirfd = openat(parentfd, base, DIR_FLAGS);
	if (dirfd < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "jail: open %s", spec->jail_dir);

	/* Every start builds the root afresh: nothing an earlier VMM or an
	 * interrupted prepare left can shape this one. */
	snprintf(shown, sizeof(shown), "%s/root", spec->jail_dir);
	if (remove_tree(dirfd, "root", shown, err) < 0)
		return -1;
	rootfd = make_dir_at(dirfd, "root", 0755, shown, err);
	if (rootfd < 0)
		return -1;

	for (size_t i = 0; i < spec->n_binds; i++)
		if (make_bind_target(rootfd, &spec->binds[i], i, err) < 0)
			return -1;
	for (size_t i = 0; i < spec->n_symlinks; i++)
		if (make_symlink(rootfd, &spec->symlinks[i], err) < 0)
			return -1;
	for (size_t i = 0; i < spec->n_writable_dirs; i++)
		if (make_writable_dir(rootfd, &spec->writable_dirs[i], spec->uid, spec->gid, err) <
		    0)
			return -1;
	fd = make_dir_at(rootfd, "dev", 0755, "/dev", err);
	if (fd < 0)
		return -1;
	close(fd);
	if (spec->mount_proc) {
		fd = make_dir_at(rootfd, "proc", 0555, "/proc", err);
		if (fd < 0)
			return -1;
		close(fd);
	}
	return 0;
}

int jail_cleanup(const char *jail_dir, struct vmlet_err *err)
{
	_cleanup_close_ int parentfd = -1;
	char parent[PATH_MAX];

	if (!path_ok(jail_dir, PATH_MAX, false) || !vmlet_instance_id_ok(last_component(jail_dir)))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "jail_dir: must be an absolute, normalized path ending in an "
				     "instance id");
	parent_of(jail_dir, parent, sizeof(parent));
	parentfd = open_trusted_dir(parent, err);
	if (parentfd < 0) {
		if (err && err->code == VMLET_E_NOT_FOUND)
			return 0;
		return vmlet_err_prefix(err, "jail cleanup: ");
	}
	return remove_tree(parentfd, last_component(jail_dir), jail_dir, err);
}

int jail_host_path(const struct jail_spec *spec, const char *jail_path, char *buf, size_t len,
		   struct vmlet_err *err)
{
	bool inside = false;
	int n;

	if (!path_ok(jail_path, JAIL_PATH_MAX, true))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "jail path: must be absolute and normalized");
	for (size_t i = 0; i < spec->n_writable_dirs && i < JAIL_MAX_WRITABLE_DIRS; i++)
		if (beneath(jail_path, spec->writable_dirs[i].jail_path))
			inside = true;
	if (!inside)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "jail path %s is not beneath a writable dir of the jail",
				     jail_path);
	n = snprintf(buf, len, "%s/root%s", spec->jail_dir, jail_path);
	if (n < 0 || (size_t)n >= len)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "jail path %s: too long", jail_path);
	return 0;
}

int jail_policy_check(bool production, bool jailed, struct vmlet_err *err)
{
	if (production && !jailed)
		return vmlet_err_set(err, VMLET_E_FORBIDDEN, 0,
				     "production mode: refusing to start a VMM outside its jail");
	return 0;
}

/* ---- the plan: everything the child needs, computed by the parent ---------------- */

enum child_step {
	STEP_NONE = 0,
	STEP_SIGNALS,
	STEP_CGROUP,
	STEP_CGROUP_NS,
	STEP_SETSID,
	STEP_PROPAGATION,
	STEP_BIND_ROOT,
	STEP_BIND,
	STEP_BIND_REMOUNT,
	STEP_WDIR,
	STEP_WDIR_REMOUNT,
	STEP_CHDIR_ROOT,
	STEP_PIVOT,
	STEP_UMOUNT_OLD,
	STEP_CHDIR,
	STEP_ROOT_REMOUNT,
	STEP_DEV_MOUNT,
	STEP_DEV_DIR,
	STEP_MKNOD,
	STEP_DEV_CHOWN,
	STEP_DEV_REMOUNT,
	STEP_PROC,
	STEP_FDS,
	STEP_RLIMIT,
	STEP_SETGROUPS,
	STEP_SETGID,
	STEP_CAPBSET,
	STEP_SETUID,
	STEP_CAPS,
	STEP_AMBIENT,
	STEP_CAPS_VERIFY,
	STEP_NO_NEW_PRIVS,
	STEP_EXEC,
	STEP_COUNT
};

/* What the index of a failed step refers to, for the parent's message. */
enum step_index { IDX_NONE, IDX_CGROUP, IDX_BIND, IDX_WDIR, IDX_DEVDIR, IDX_DEVICE, IDX_RLIMIT,
		  IDX_CAP };

static const struct step_info {
	const char *what;
	enum step_index idx;
} step_info[STEP_COUNT] = {
	[STEP_SIGNALS] = { "reset signal handlers", IDX_NONE },
	[STEP_CGROUP] = { "join cgroup (write 0 to cgroup.procs fd)", IDX_CGROUP },
	[STEP_CGROUP_NS] = { "unshare cgroup namespace", IDX_NONE },
	[STEP_SETSID] = { "setsid", IDX_NONE },
	[STEP_PROPAGATION] = { "make mounts private", IDX_NONE },
	[STEP_BIND_ROOT] = { "bind the jail root onto itself", IDX_NONE },
	[STEP_BIND] = { "bind", IDX_BIND },
	[STEP_BIND_REMOUNT] = { "remount bind", IDX_BIND },
	[STEP_WDIR] = { "bind writable dir", IDX_WDIR },
	[STEP_WDIR_REMOUNT] = { "remount writable dir", IDX_WDIR },
	[STEP_CHDIR_ROOT] = { "chdir to the jail root", IDX_NONE },
	[STEP_PIVOT] = { "pivot_root", IDX_NONE },
	[STEP_UMOUNT_OLD] = { "detach the old root", IDX_NONE },
	[STEP_CHDIR] = { "chdir /", IDX_NONE },
	[STEP_ROOT_REMOUNT] = { "remount / read-only", IDX_NONE },
	[STEP_DEV_MOUNT] = { "mount tmpfs /dev", IDX_NONE },
	[STEP_DEV_DIR] = { "mkdir in /dev", IDX_DEVDIR },
	[STEP_MKNOD] = { "mknod", IDX_DEVICE },
	[STEP_DEV_CHOWN] = { "chown device", IDX_DEVICE },
	[STEP_DEV_REMOUNT] = { "remount /dev read-only", IDX_NONE },
	[STEP_PROC] = { "mount /proc", IDX_NONE },
	[STEP_FDS] = { "set up file descriptors", IDX_NONE },
	[STEP_RLIMIT] = { "setrlimit", IDX_RLIMIT },
	[STEP_SETGROUPS] = { "setgroups", IDX_NONE },
	[STEP_SETGID] = { "setresgid", IDX_NONE },
	[STEP_CAPBSET] = { "drop capability from the bounding set", IDX_CAP },
	[STEP_SETUID] = { "setresuid", IDX_NONE },
	[STEP_CAPS] = { "clear capabilities", IDX_NONE },
	[STEP_AMBIENT] = { "clear ambient capabilities", IDX_NONE },
	[STEP_CAPS_VERIFY] = { "verify no capability and ids are left", IDX_NONE },
	[STEP_NO_NEW_PRIVS] = { "set no_new_privs", IDX_NONE },
	[STEP_EXEC] = { "execve", IDX_NONE },
};

struct child_report {
	int step;
	int index;
	int err;
};

/* Sources are resolved by the parent, in hostd's mount namespace, into
 * detached mount trees (open_tree OPEN_TREE_CLONE, not recursive): the
 * child cannot bind /proc/self/fd/N itself, since that mount belongs to
 * another namespace (mount(2) says EINVAL), but it can attach a detached
 * tree with move_mount. It also pins exactly the file the caller checked. */
struct plan_bind {
	int tree_fd;
	char dst[PATH_MAX];
	unsigned long remount_flags;
};

struct plan_device {
	char path[JAIL_PATH_MAX];
	dev_t dev;
	mode_t mode;
};

struct jail_plan {
	char root[PATH_MAX];
	unsigned long root_flags;
	size_t n_binds;
	struct plan_bind binds[JAIL_MAX_BINDS];
	size_t n_wdirs;
	char wdirs[JAIL_MAX_WRITABLE_DIRS][PATH_MAX];
	size_t n_dev_dirs;
	char dev_dirs[JAIL_MAX_DEVICES][JAIL_PATH_MAX];
	size_t n_devices;
	struct plan_device devices[JAIL_MAX_DEVICES];
	bool proc;

	size_t n_cgroup_fds;
	int cgroup_fds[JAIL_MAX_CGROUP_FDS];
	size_t n_keep;
	int src_fd[JAIL_MAX_KEEP_FDS];
	int dst_fd[JAIL_MAX_KEEP_FDS];
	int hi; /* above every dst_fd and 2: scratch fds live from here up */
	bool is_dst[JAIL_CHILD_FD_LIMIT];
	int devnull;
	int errfd;

	size_t n_rlimits;
	struct jail_rlimit rlimits[JAIL_MAX_RLIMITS];
	uid_t uid;
	gid_t gid;
	int cap_last;

	const char *exec_path;
	char *const *argv;
};

static unsigned long preserved_flags(const struct statvfs *sv)
{
	unsigned long f = 0;

	if (sv->f_flag & ST_NOEXEC)
		f |= MS_NOEXEC;
	if (sv->f_flag & ST_RDONLY)
		f |= MS_RDONLY;
	return f;
}

static int read_cap_last(void)
{
	FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
	int v = -1;

	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = -1;
		fclose(f);
	}
	if (v < 0 || v > 63)
		v = CAP_LAST_CAP;
	return v;
}

static int build_plan(const struct jail_spec *s, struct jail_plan *p, struct vmlet_err *err)
{
	struct statvfs sv;

	if ((size_t)snprintf(p->root, sizeof(p->root), "%s/root", s->jail_dir) >= sizeof(p->root))
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "jail_dir: too long");
	if (statvfs(p->root, &sv) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "jail: statvfs %s", p->root);
	p->root_flags = sv.f_flag & ST_NOEXEC ? MS_NOEXEC : 0;

	for (size_t i = 0; i < s->n_binds; i++) {
		const struct jail_bind *b = &s->binds[i];
		struct plan_bind *pb = &p->binds[i];

		if (b->from_fd)
			pb->tree_fd = (int)syscall(SYS_open_tree, b->host_fd, "",
						   OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
		else
			pb->tree_fd = (int)syscall(SYS_open_tree, AT_FDCWD, b->host_path,
						   OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
		if (pb->tree_fd < 0)
			return vmlet_err_sys(err, errno == ENOENT ? VMLET_E_NOT_FOUND
								  : VMLET_E_INTERNAL,
					     "binds[%zu]: open_tree %s", i, b->host_path);
		p->n_binds = i + 1;
		if (fstatvfs(pb->tree_fd, &sv) < 0)
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "binds[%zu]: statvfs %s", i,
					     b->host_path);
		if ((size_t)snprintf(pb->dst, sizeof(pb->dst), "%s%s", p->root, b->jail_path) >=
		    sizeof(pb->dst))
			return vmlet_err_set(err, VMLET_E_INVALID, 0, "binds[%zu]: path too long",
					     i);
		pb->remount_flags = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV |
				    preserved_flags(&sv) | (b->writable ? 0 : MS_RDONLY);
	}
	p->n_wdirs = s->n_writable_dirs;
	for (size_t i = 0; i < s->n_writable_dirs; i++)
		if ((size_t)snprintf(p->wdirs[i], sizeof(p->wdirs[i]), "%s%s", p->root,
				     s->writable_dirs[i].jail_path) >= sizeof(p->wdirs[i]))
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "writable_dirs[%zu]: path too long", i);

	/* /dev/<dir>/ directories, each once. */
	p->n_devices = s->n_devices;
	for (size_t i = 0; i < s->n_devices; i++) {
		const struct jail_device *d = &s->devices[i];
		const char *slash = strchr(d->jail_path + 5, '/');

		snprintf(p->devices[i].path, sizeof(p->devices[i].path), "%s", d->jail_path);
		p->devices[i].dev = makedev(d->major, d->minor);
		p->devices[i].mode = d->mode;
		if (slash) {
			char dir[JAIL_PATH_MAX];
			bool seen = false;

			snprintf(dir, sizeof(dir), "%.*s", (int)(slash - d->jail_path),
				 d->jail_path);
			for (size_t j = 0; j < p->n_dev_dirs; j++)
				seen = seen || strcmp(p->dev_dirs[j], dir) == 0;
			if (!seen)
				memcpy(p->dev_dirs[p->n_dev_dirs++], dir, sizeof(dir));
		}
	}
	p->proc = s->mount_proc;

	p->n_cgroup_fds = s->n_cgroup_procs_fds;
	memcpy(p->cgroup_fds, s->cgroup_procs_fds, sizeof(int) * s->n_cgroup_procs_fds);
	p->n_keep = s->n_keep_fds;
	p->hi = 3;
	for (size_t i = 0; i < s->n_keep_fds; i++) {
		p->src_fd[i] = s->keep_fds[i].parent_fd;
		p->dst_fd[i] = s->keep_fds[i].child_fd;
		p->is_dst[p->dst_fd[i]] = true;
		if (p->dst_fd[i] + 1 > p->hi)
			p->hi = p->dst_fd[i] + 1;
	}

	p->n_rlimits = s->n_rlimits;
	memcpy(p->rlimits, s->rlimits, sizeof(s->rlimits[0]) * s->n_rlimits);
	p->uid = s->uid;
	p->gid = s->gid;
	p->cap_last = read_cap_last();
	p->exec_path = s->exec_path;
	p->argv = s->argv;
	return 0;
}

/* ---- the child: plain syscalls only until execve ------------------------------------ */

static __attribute__((noreturn)) void child_fail(struct jail_plan *p, int step, int index)
{
	struct child_report r = { step, index, errno };
	ssize_t n;

	do
		n = write(p->errfd, &r, sizeof(r));
	while (n < 0 && errno == EINTR);
	_exit(127);
}

static void close_range_(unsigned lo, unsigned hi)
{
	if (lo <= hi)
		syscall(SYS_close_range, lo, hi, 0U);
}

/* keep_fds into place, /dev/null on unmapped 0-2, everything else closed
 * except the error pipe (close-on-exec, moved above every target). */
static void child_fds(struct jail_plan *p)
{
	int tmp[JAIL_MAX_KEEP_FDS];
	int devnull, errfd, lo;

	errfd = fcntl(p->errfd, F_DUPFD_CLOEXEC, p->hi);
	if (errfd < 0)
		child_fail(p, STEP_FDS, 0);
	p->errfd = errfd;
	devnull = fcntl(p->devnull, F_DUPFD_CLOEXEC, p->hi);
	if (devnull < 0)
		child_fail(p, STEP_FDS, 1);
	/* Copy every source above every target first, so no dup2 below can
	 * overwrite a source still to be moved (src and dst sets overlap). */
	for (size_t i = 0; i < p->n_keep; i++) {
		tmp[i] = fcntl(p->src_fd[i], F_DUPFD_CLOEXEC, p->hi);
		if (tmp[i] < 0)
			child_fail(p, STEP_FDS, 2);
	}
	/* dup2 clears FD_CLOEXEC on the new fd: these survive the exec. */
	for (size_t i = 0; i < p->n_keep; i++)
		if (dup2(tmp[i], p->dst_fd[i]) < 0)
			child_fail(p, STEP_FDS, 3);
	for (int fd = 0; fd <= 2; fd++)
		if (!p->is_dst[fd] && dup2(devnull, fd) < 0)
			child_fail(p, STEP_FDS, 4);
	/* Close every gap below hi, then all of hi.. but the error pipe. */
	lo = 3;
	for (int fd = 3; fd <= p->hi; fd++) {
		if (fd < p->hi && !p->is_dst[fd])
			continue;
		if (fd > lo)
			close_range_((unsigned)lo, (unsigned)fd - 1);
		lo = fd + 1;
	}
	if (errfd > p->hi)
		close_range_((unsigned)p->hi, (unsigned)errfd - 1);
	close_range_((unsigned)errfd + 1, ~0U);
}

static void child_mounts(struct jail_plan *p)
{
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		child_fail(p, STEP_PROPAGATION, 0);
	if (mount(p->root, p->root, NULL, MS_BIND, NULL) < 0)
		child_fail(p, STEP_BIND_ROOT, 0);
	for (size_t i = 0; i < p->n_binds; i++) {
		if (syscall(SYS_move_mount, p->binds[i].tree_fd, "", AT_FDCWD, p->binds[i].dst,
			    MOVE_MOUNT_F_EMPTY_PATH) < 0)
			child_fail(p, STEP_BIND, (int)i);
		if (mount(NULL, p->binds[i].dst, NULL, p->binds[i].remount_flags, NULL) < 0)
			child_fail(p, STEP_BIND_REMOUNT, (int)i);
	}
	for (size_t i = 0; i < p->n_wdirs; i++) {
		if (mount(p->wdirs[i], p->wdirs[i], NULL, MS_BIND, NULL) < 0)
			child_fail(p, STEP_WDIR, (int)i);
		if (mount(NULL, p->wdirs[i], NULL,
			  MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
			child_fail(p, STEP_WDIR_REMOUNT, (int)i);
	}
	/* pivot_root(".", ".") stacks the old root on top of the new one;
	 * detaching "." then leaves only the jail (pivot_root(2)). */
	if (chdir(p->root) < 0)
		child_fail(p, STEP_CHDIR_ROOT, 0);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		child_fail(p, STEP_PIVOT, 0);
	if (umount2(".", MNT_DETACH) < 0)
		child_fail(p, STEP_UMOUNT_OLD, 0);
	if (chdir("/") < 0)
		child_fail(p, STEP_CHDIR, 0);
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV |
		  p->root_flags, NULL) < 0)
		child_fail(p, STEP_ROOT_REMOUNT, 0);

	if (mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, DEV_TMPFS_OPTS) < 0)
		child_fail(p, STEP_DEV_MOUNT, 0);
	for (size_t i = 0; i < p->n_dev_dirs; i++)
		if (mkdir(p->dev_dirs[i], 0755) < 0)
			child_fail(p, STEP_DEV_DIR, (int)i);
	for (size_t i = 0; i < p->n_devices; i++) {
		if (mknod(p->devices[i].path, S_IFCHR | p->devices[i].mode, p->devices[i].dev) < 0)
			child_fail(p, STEP_MKNOD, (int)i);
		if (chown(p->devices[i].path, p->uid, p->gid) < 0)
			child_fail(p, STEP_DEV_CHOWN, (int)i);
	}
	/* Device nodes stay usable on a read-only mount; nothing new can
	 * appear in /dev. */
	if (mount(NULL, "/dev", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC,
		  NULL) < 0)
		child_fail(p, STEP_DEV_REMOUNT, 0);
	if (p->proc && mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
			     "hidepid=2") < 0)
		child_fail(p, STEP_PROC, 0);
}

static void child_creds(struct jail_plan *p)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	/* glibc's set*id wrappers would signal the parent's other threads
	 * (its setxid broadcast) from this copy of its thread list: raw
	 * syscalls only. */
	if (syscall(SYS_setgroups, 0, NULL) < 0)
		child_fail(p, STEP_SETGROUPS, 0);
	if (syscall(SYS_setresgid, p->gid, p->gid, p->gid) < 0)
		child_fail(p, STEP_SETGID, 0);
	/* Needs CAP_SETPCAP, so before setresuid drops it. */
	for (int cap = 0; cap <= p->cap_last; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
			child_fail(p, STEP_CAPBSET, cap);
	if (syscall(SYS_setresuid, p->uid, p->uid, p->uid) < 0)
		child_fail(p, STEP_SETUID, 0);
	/* setresuid clears permitted/effective unless keep-caps is set, but
	 * never the inheritable set: clear all three explicitly. */
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capset, &hdr, data) < 0)
		child_fail(p, STEP_CAPS, 0);
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		child_fail(p, STEP_AMBIENT, 0);

	errno = EPERM;
	hdr.version = _LINUX_CAPABILITY_VERSION_3;
	hdr.pid = 0;
	if (syscall(SYS_capget, &hdr, data) < 0)
		child_fail(p, STEP_CAPS_VERIFY, 0);
	errno = EPERM;
	for (int i = 0; i < 2; i++)
		if (data[i].effective || data[i].permitted || data[i].inheritable)
			child_fail(p, STEP_CAPS_VERIFY, 1);
	for (int cap = 0; cap <= p->cap_last; cap++)
		if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) != 0)
			child_fail(p, STEP_CAPS_VERIFY, 2);
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_SYS_ADMIN, 0, 0) != 0)
		child_fail(p, STEP_CAPS_VERIFY, 3);
	if (syscall(SYS_getresuid, &ru, &eu, &su) < 0 || ru != p->uid || eu != p->uid ||
	    su != p->uid || syscall(SYS_getresgid, &rg, &eg, &sg) < 0 || rg != p->gid ||
	    eg != p->gid || sg != p->gid)
		child_fail(p, STEP_CAPS_VERIFY, 4);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail(p, STEP_NO_NEW_PRIVS, 0);
}

static __attribute__((noreturn)) void child_main(struct jail_plan *p)
{
	struct sigaction dfl;
	sigset_t none;

	/* hostd's handlers must never run here, nor its ignored signals
	 * stay ignored in the VMM. Signals stay blocked (as the parent set
	 * them around clone) until just before execve. */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (int sig = 1; sig < _NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &dfl, NULL); /* EINVAL for libc-internal ones */
	umask(0);

	for (size_t i = 0; i < p->n_cgroup_fds; i++) {
		ssize_t n;

		do
			n = write(p->cgroup_fds[i], "0", 1);
		while (n < 0 && errno == EINTR);
		if (n != 1)
			child_fail(p, STEP_CGROUP, (int)i);
	}
	if (unshare(CLONE_NEWCGROUP) < 0)
		child_fail(p, STEP_CGROUP_NS, 0);
	if (setsid() < 0)
		child_fail(p, STEP_SETSID, 0);
	child_mounts(p);
	child_fds(p);
	for (size_t i = 0; i < p->n_rlimits; i++) {
		struct rlimit rl = { p->rlimits[i].soft, p->rlimits[i].hard };

		if (setrlimit(p->rlimits[i].resource, &rl) < 0)
			child_fail(p, STEP_RLIMIT, (int)i);
	}
	child_creds(p);
	umask(077);
	sigemptyset(&none);
	if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, _NSIG / 8) < 0)
		child_fail(p, STEP_SIGNALS, 0);
	execve(p->exec_path, p->argv, jail_envp);
	child_fail(p, STEP_EXEC, 0);
}

/* ---- the parent side of spawning ----------------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void reap(pid_t pid)
{
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

static int report_error(const struct jail_spec *s, const struct child_report *r,
			struct vmlet_err *err)
{
	char detail[JAIL_PATH_MAX + 64] = "";
	const char *what = "unknown step";
	int idx = r->index;

	if (r->step > STEP_NONE && r->step < STEP_COUNT && step_info[r->step].what) {
		what = step_info[r->step].what;
		switch (step_info[r->step].idx) {
		case IDX_CGROUP:
			snprintf(detail, sizeof(detail), " #%d", idx);
			break;
		case IDX_BIND:
			if (idx >= 0 && (size_t)idx < s->n_binds)
				snprintf(detail, sizeof(detail), " %s at %s",
					 s->binds[idx].host_path, s->binds[idx].jail_path);
			break;
		case IDX_WDIR:
			if (idx >= 0 && (size_t)idx < s->n_writable_dirs)
				snprintf(detail, sizeof(detail), " %s",
					 s->writable_dirs[idx].jail_path);
			break;
		case IDX_DEVDIR:
			snprintf(detail, sizeof(detail), " #%d", idx);
			break;
		case IDX_DEVICE:
			if (idx >= 0 && (size_t)idx < s->n_devices)
				snprintf(detail, sizeof(detail), " %s", s->devices[idx].jail_path);
			break;
		case IDX_RLIMIT:
			if (idx >= 0 && (size_t)idx < s->n_rlimits)
				snprintf(detail, sizeof(detail), " resource %d",
					 s->rlimits[idx].resource);
			break;
		case IDX_CAP:
			snprintf(detail, sizeof(detail), " %d", idx);
			break;
		case IDX_NONE:
			/* ENOENT from execve may mean the ELF interpreter named by
			 * a dynamically linked binary is missing from the jail. */
			if (r->step == STEP_EXEC)
				snprintf(detail, sizeof(detail), " %s%s", s->exec_path,
					 r->err == ENOENT ? ", or its ELF interpreter" : "");
			break;
		}
	}
	/* Whatever the step, the host could not start the VMM: 500. */
	return vmlet_err_set(err, VMLET_E_INTERNAL, r->err, "jail %s: step %d (%s%s) failed: %s",
			     s->instance_id, r->step, what, detail, strerror(r->err));
}

static void free_plan(struct jail_plan **p)
{
	/* The detached trees dissolve here; the child's attached copies
	 * live on in its namespace. */
	for (size_t i = 0; *p && i < (*p)->n_binds; i++)
		if ((*p)->binds[i].tree_fd >= 0)
			close((*p)->binds[i].tree_fd);
	free(*p);
	*p = NULL;
}

int jail_spawn(const struct jail_spec *spec, pid_t *pid_out, int *pidfd_out,
	       struct vmlet_err *err)
{
	_cleanup_(free_plan) struct jail_plan *plan = NULL;
	_cleanup_close_ int parentfd = -1;
	_cleanup_close_ int devnull = -1;
	_cleanup_close_ int rfd = -1;
	_cleanup_close_ int pidfd = -1;
	char parent[PATH_MAX];
	struct child_report rep;
	sigset_t all, old;
	int pipefd[2], wfd;
	int64_t deadline;
	size_t got = 0;
	long child;

	*pid_out = -1;
	*pidfd_out = -1;
	if (check_spec(spec, err) < 0)
		return -1;
	parent_of(spec->jail_dir, parent, sizeof(parent));
	parentfd = open_trusted_dir(parent, err);
	if (parentfd < 0)
		return vmlet_err_prefix(err, "jail %s: parent of jail_dir: ", spec->instance_id);
	{
		/* The dir and the root prepare made, still root-owned. */
		_cleanup_close_ int dfd = openat(parentfd, last_component(spec->jail_dir),
						 DIR_FLAGS);
		struct stat st;

		if (dfd < 0 || fstat(dfd, &st) < 0)
			return vmlet_err_sys(err, VMLET_E_CONFLICT,
					     "jail %s: %s (not prepared?)", spec->instance_id,
					     spec->jail_dir);
		if (check_owner(&st, spec->jail_dir, err) < 0)
			return -1;
		if (fstatat(dfd, "root", &st, AT_SYMLINK_NOFOLLOW) < 0)
			return vmlet_err_sys(err, VMLET_E_CONFLICT,
					     "jail %s: %s/root (not prepared?)", spec->instance_id,
					     spec->jail_dir);
		if (check_owner(&st, "root of the jail", err) < 0)
			return -1;
	}
	plan = calloc(1, sizeof(*plan));
	if (!plan)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "jail: out of memory");
	if (build_plan(spec, plan, err) < 0)
		return -1;
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "jail: open /dev/null");
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "jail: pipe2");
	rfd = pipefd[0];
	wfd = pipefd[1];
	plan->devnull = devnull;
	plan->errfd = wfd;

	/* No handler of hostd may run in the child before it resets them. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	child = syscall(SYS_clone, (unsigned long)(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC |
						   CLONE_NEWUTS | CLONE_NEWNET | CLONE_PIDFD |
						   SIGCHLD),
			NULL, &pidfd, NULL, 0UL);
	if (child == 0)
		child_main(plan);
	{
		int saved = errno;

		pthread_sigmask(SIG_SETMASK, &old, NULL);
		close(wfd);
		errno = saved;
	}
	if (child < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "jail %s: clone", spec->instance_id);

	/* EOF: the exec closed the pipe. A report: the child failed. */
	deadline = now_ms() + JAIL_SPAWN_TIMEOUT_MS;
	for (;;) {
		struct pollfd pf = { .fd = rfd, .events = POLLIN };
		int64_t left = deadline - now_ms();
		ssize_t n;
		int r;

		if (left <= 0) {
			kill((pid_t)child, SIGKILL);
			reap((pid_t)child);
			return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
					     "jail %s: the child neither exec'ed nor failed within "
					     "%d ms; killed", spec->instance_id,
					     JAIL_SPAWN_TIMEOUT_MS);
		}
		r = poll(&pf, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;

			kill((pid_t)child, SIGKILL);
			reap((pid_t)child);
			return vmlet_err_set(err, VMLET_E_INTERNAL, e, "jail: poll: %s",
					     strerror(e));
		}
		if (r == 0)
			continue;
		n = read(rfd, (char *)&rep + got, sizeof(rep) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got == sizeof(rep))
			break;
	}
	if (got != 0) {
		/* The child _exits right after reporting. */
		reap((pid_t)child);
		if (got != sizeof(rep))
			return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
					     "jail %s: short report from the child",
					     spec->instance_id);
		return report_error(spec, &rep, err);
	}
	*pid_out = (pid_t)child;
	*pidfd_out = vmlet_take_fd(&pidfd);
	vlog(VLOG_INFO, "jail_spawn", "instance=%s pid=%ld uid=%u", spec->instance_id, child,
	     (unsigned)spec->uid);
	return 0;
}
