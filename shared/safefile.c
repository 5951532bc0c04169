/* Safe file I/O. Reads never follow a symlink at the final component, never
 * block on a FIFO, and check type and size on the open fd (no stat-then-open
 * race) before allocating. Writes go to a temp file created O_EXCL in the
 * target's directory, are fsync'ed, renamed over the target, and the
 * directory is fsync'ed, so a crash leaves either the old or the new file. */
#include "shared/safefile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shared/cleanup.h"

/* ---- reading ------------------------------------------------------------- */

int vmlet_read_fd(int fd, const char *name, size_t max, char **out, size_t *len,
		  struct vmlet_err *err)
{
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t cap, n = 0;

	if (fstat(fd, &st) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "%s: fstat", name);
	if (!S_ISREG(st.st_mode))
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "%s: not a regular file", name);
	if ((uintmax_t)st.st_size > max)
		return vmlet_err_set(err, VMLET_E_TOO_LARGE, 0,
				     "%s: %jd bytes, more than the limit of %zu bytes", name,
				     (intmax_t)st.st_size, max);
	/* st_size is a hint: the file may grow after fstat (or report 0, as
	 * in /proc), so read to EOF and keep enforcing max. */
	cap = (size_t)st.st_size;
	buf = malloc(cap + 1);
	if (!buf)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "%s: out of memory", name);
	for (;;) {
		/* A full buffer reads one probe byte: it grows only when the
		 * file really is longer. */
		bool full = n == cap;
		char probe;
		ssize_t r = full ? read(fd, &probe, 1) : read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "%s: read", name);
		if (r == 0)
			break;
		if (!full) {
			n += (size_t)r;
			continue;
		}
		if (cap >= max)
			return vmlet_err_set(err, VMLET_E_TOO_LARGE, 0,
					     "%s: more than the limit of %zu bytes", name, max);
		size_t ncap = cap < max / 2 ? cap * 2 + 4096 : max;
		if (ncap > max)
			ncap = max;
		char *nbuf = realloc(buf, ncap + 1);
		if (!nbuf)
			return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "%s: out of memory",
					     name);
		buf = nbuf;
		cap = ncap;
		buf[n++] = probe;
	}
	buf[n] = '\0';
	*out = vmlet_take_ptr(&buf);
	if (len)
		*len = n;
	return 0;
}

int vmlet_read_file(const char *path, size_t max, char **out, size_t *len, struct vmlet_err *err)
{
	_cleanup_close_ int fd = -1;

	/* O_NONBLOCK: opening a FIFO planted at path must not hang us; it
	 * is then refused as "not a regular file". */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		if (errno == ELOOP)
			return vmlet_err_set(err, VMLET_E_INVALID, ELOOP,
					     "%s: is a symbolic link (refused)", path);
		return vmlet_err_sys(err, errno == ENOENT ? VMLET_E_NOT_FOUND : VMLET_E_INTERNAL,
				     "%s: open", path);
	}
	return vmlet_read_fd(fd, path, max, out, len, err);
}

/* ---- writing ------------------------------------------------------------- */

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t r = write(fd, p, len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

/* Split path into its directory ("." when there is none) and last name. */
static int split_path(const char *path, char *dir, size_t dirlen, const char **base,
		      struct vmlet_err *err)
{
	const char *slash = strrchr(path, '/');

	*base = slash ? slash + 1 : path;
	if (!**base || strcmp(*base, ".") == 0 || strcmp(*base, "..") == 0)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "%s: does not name a file", path);
	if (!slash) {
		snprintf(dir, dirlen, ".");
		return 0;
	}
	size_t n = slash == path ? 1 : (size_t)(slash - path);
	if (n >= dirlen)
		return vmlet_err_set(err, VMLET_E_INVALID, ENAMETOOLONG, "%s: path too long", path);
	memcpy(dir, path, n);
	dir[n] = '\0';
	return 0;
}

/* Create ".<base>.<random>.tmp" O_EXCL next to the target. The base is cut
 * so the name always fits NAME_MAX. */
static int create_temp(int dirfd, const char *base, mode_t mode, char *name, size_t namelen)
{
	for (int attempt = 0; attempt < 16; attempt++) {
		uint64_t rnd;
		if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
			rnd = ((uint64_t)getpid() << 32) ^ (uint64_t)attempt ^ (uint64_t)(uintptr_t)name;
		snprintf(name, namelen, ".%.200s.%016llx.tmp", base, (unsigned long long)rnd);
		int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
				mode);
		if (fd >= 0 || errno != EEXIST)
			return fd;
	}
	errno = EEXIST;
	return -1;
}

int vmlet_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
		       struct vmlet_err *err)
{
	_cleanup_close_ int dirfd = -1;
	_cleanup_close_ int fd = -1;
	char dir[PATH_MAX];
	char tmp[NAME_MAX + 1];
	const char *base;

	if (split_path(path, dir, sizeof(dir), &base, err) < 0)
		return -1;
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "%s: open directory %s", path, dir);
	fd = create_temp(dirfd, base, mode & 07777, tmp, sizeof(tmp));
	if (fd < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "%s: create temp file in %s", path, dir);
	/* The umask narrowed the create mode; the caller asked for mode. */
	if (fchmod(fd, mode & 07777) < 0) {
		vmlet_err_sys(err, VMLET_E_INTERNAL, "%s: fchmod temp file", path);
		goto fail;
	}
	if (write_all(fd, data, len) < 0) {
		vmlet_err_sys(err, VMLET_E_INTERNAL, "%s: write temp file", path);
		goto fail;
	}
	if (fsync(fd) < 0) {
		vmlet_err_sys(err, VMLET_E_INTERNAL, "%s: fsync temp file", path);
		goto fail;
	}
	/* close() can report a deferred write error (NFS): check it. */
	if (close(vmlet_take_fd(&fd)) < 0) {
		vmlet_err_sys(err, VMLET_E_INTERNAL, "%s: close temp file", path);
		goto fail;
	}
	if (renameat(dirfd, tmp, dirfd, base) < 0) {
		vmlet_err_sys(err, VMLET_E_INTERNAL, "%s: rename temp file into place", path);
		goto fail;
	}
	if (fsync(dirfd) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "%s: fsync directory %s", path, dir);
	return 0;
fail:;
	int saved = errno;
	unlinkat(dirfd, tmp, 0);
	errno = saved;
	return -1;
}

/* ---- directories ------------------------------------------------------- */

/* The final component: must be a real directory (not a symlink to one);
 * opened with O_NOFOLLOW so a symlink swapped in after the check is refused
 * too. */
static int open_final_dir(int parent, const char *name, const char *path, struct vmlet_err *err)
{
	struct stat st;
	int fd;

	if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "%s: stat", path);
	if (S_ISLNK(st.st_mode))
		return vmlet_err_set(err, VMLET_E_INVALID, ELOOP, "%s: is a symbolic link (refused)",
				     path);
	if (!S_ISDIR(st.st_mode))
		return vmlet_err_set(err, VMLET_E_INVALID, ENOTDIR,
				     "%s: exists and is not a directory", path);
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "%s: open", path);
	return fd;
}

int vmlet_ensure_dir(const char *path, mode_t mode, uid_t uid, gid_t gid, struct vmlet_err *err)
{
	_cleanup_close_ int fd = -1;
	char buf[PATH_MAX];
	char *p, *next;
	struct stat st;

	if (!path || !*path)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "empty directory path");
	if (strlen(path) >= sizeof(buf))
		return vmlet_err_set(err, VMLET_E_INVALID, ENAMETOOLONG, "%s: path too long", path);
	strcpy(buf, path);
	/* Strip trailing slashes so the last name is the real final component. */
	for (size_t n = strlen(buf); n > 1 && buf[n - 1] == '/'; n--)
		buf[n - 1] = '\0';
	if (strcmp(buf, "/") == 0)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "%s: refusing to manage /", path);

	fd = open(buf[0] == '/' ? "/" : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "%s: open start directory", path);
	/* Walk with openat: intermediate components may be symlinks (/var/run
	 * is one on Debian); only the final one is refused as a symlink. */
	for (p = buf; *p == '/'; p++)
		;
	for (; *p; p = next) {
		char *slash = strchr(p, '/');
		bool final;
		if (slash) {
			*slash = '\0';
			for (next = slash + 1; *next == '/'; next++)
				;
		} else {
			next = p + strlen(p);
		}
		final = *next == '\0';
		if (mkdirat(fd, p, final ? (mode & 07777) : 0755) < 0 && errno != EEXIST)
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "%s: mkdir %s", path, p);
		int nfd;
		if (final) {
			nfd = open_final_dir(fd, p, path, err);
			if (nfd < 0)
				return -1;
		} else {
			nfd = openat(fd, p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (nfd < 0)
				return vmlet_err_sys(err, VMLET_E_INTERNAL, "%s: open %s", path, p);
		}
		close(fd);
		fd = nfd;
	}
	/* Owner first: chown may clear set-id bits that the mode then restores. */
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) && fchown(fd, uid, gid) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "%s: chown to %d:%d", path, (int)uid,
				     (int)gid);
	if (fchmod(fd, mode & 07777) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "%s: chmod %04o", path,
				     (unsigned)(mode & 07777));
	if (fstat(fd, &st) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "%s: fstat", path);
	if ((st.st_mode & 07777) != (mode & 07777))
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "%s: mode is %04o after chmod %04o",
				     path, (unsigned)(st.st_mode & 07777), (unsigned)(mode & 07777));
	return 0;
}
