/* Safe file I/O: atomic replace, capped reads, symlink and non-file
 * refusal, errno in messages, ensure_dir fixing mode/owner and refusing
 * symlinks. Each test works in its own temp directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "shared/safefile.h"

struct tmp {
	char dir[64];
	char path[128];
};

static int make_tmp(void **state)
{
	struct tmp *t = calloc(1, sizeof(*t));
	if (!t)
		return -1;
	snprintf(t->dir, sizeof(t->dir), "/tmp/vmlet-sf-XXXXXX");
	if (!mkdtemp(t->dir))
		return -1;
	*state = t;
	return 0;
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	return remove(path);
}

static int remove_tmp(void **state)
{
	struct tmp *t = *state;
	/* Only our own mkdtemp directory; FTW_PHYS: never follow the
	 * symlinks the tests planted. */
	int rc = nftw(t->dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
	free(t);
	return rc;
}

static const char *in(struct tmp *t, const char *name)
{
	snprintf(t->path, sizeof(t->path), "%s/%s", t->dir, name);
	return t->path;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void write_raw(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void atomic_replace(void **state)
{
	struct tmp *t = *state;
	struct vmlet_err e = { 0 };
	char path[128], *buf = NULL;
	size_t len;
	struct stat st;

	snprintf(path, sizeof(path), "%s", in(t, "state.pb"));
	assert_int_equal(vmlet_write_atomic(path, "one", 3, 0600, &e), 0);
	assert_int_equal(vmlet_read_file(path, 100, &buf, &len, &e), 0);
	assert_int_equal(len, 3);
	assert_string_equal(buf, "one");
	free(buf);

	/* replaced, with the requested mode even under a strict umask */
	mode_t old = umask(077);
	assert_int_equal(vmlet_write_atomic(path, "second", 6, 0644, &e), 0);
	umask(old);
	assert_int_equal(vmlet_read_file(path, 100, &buf, &len, &e), 0);
	assert_string_equal(buf, "second");
	free(buf);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	/* no temp file left behind */
	assert_int_equal(count_entries(t->dir), 1);

	/* empty content is a valid file */
	assert_int_equal(vmlet_write_atomic(path, "", 0, 0600, &e), 0);
	assert_int_equal(vmlet_read_file(path, 100, &buf, &len, &e), 0);
	assert_int_equal(len, 0);
	assert_string_equal(buf, "");
	free(buf);
}

static void atomic_replaces_a_symlink_not_its_target(void **state)
{
	struct tmp *t = *state;
	struct vmlet_err e = { 0 };
	char target[128], link[128], *buf = NULL;
	struct stat st;

	snprintf(target, sizeof(target), "%s", in(t, "target"));
	snprintf(link, sizeof(link), "%s", in(t, "link"));
	write_raw(target, "keep", 4);
	assert_int_equal(symlink(target, link), 0);
	assert_int_equal(vmlet_write_atomic(link, "new", 3, 0600, &e), 0);
	assert_int_equal(lstat(link, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(vmlet_read_file(target, 100, &buf, NULL, &e), 0);
	assert_string_equal(buf, "keep");
	free(buf);
}

static void atomic_write_errors(void **state)
{
	struct tmp *t = *state;
	struct vmlet_err e = { 0 };
	char path[160];

	snprintf(path, sizeof(path), "%s/missing-dir/file", t->dir);
	assert_int_equal(vmlet_write_atomic(path, "x", 1, 0600, &e), -1);
	assert_int_equal(e.sys_errno, ENOENT);
	assert_non_null(strstr(e.msg, path));
	assert_non_null(strstr(e.msg, "No such file or directory"));

	snprintf(path, sizeof(path), "%s/", t->dir);
	assert_int_equal(vmlet_write_atomic(path, "x", 1, 0600, &e), -1);
	assert_non_null(strstr(e.msg, "does not name a file"));

	/* a directory in the way: rename fails, nothing is left behind */
	assert_int_equal(mkdir(in(t, "d"), 0700), 0);
	assert_int_equal(vmlet_write_atomic(in(t, "d"), "x", 1, 0600, &e), -1);
	assert_non_null(strstr(e.msg, "rename"));
	assert_int_equal(count_entries(t->dir), 1);
}

static void read_cap_exceeded(void **state)
{
	struct tmp *t = *state;
	struct vmlet_err e = { 0 };
	char data[2000], *buf = NULL;
	size_t len;

	memset(data, 'x', sizeof(data));
	write_raw(in(t, "big"), data, sizeof(data));
	assert_int_equal(vmlet_read_file(t->path, 1024, &buf, &len, &e), -1);
	assert_null(buf);
	assert_int_equal(e.code, VMLET_E_TOO_LARGE);
	assert_non_null(strstr(e.msg, t->path));
	assert_non_null(strstr(e.msg, "2000 bytes"));
	assert_non_null(strstr(e.msg, "1024"));

	/* exactly the cap is fine */
	assert_int_equal(vmlet_read_file(t->path, 2000, &buf, &len, &e), 0);
	assert_int_equal(len, 2000);
	assert_int_equal(buf[2000], '\0');
	free(buf);
}

static void read_refuses_symlink(void **state)
{
	struct tmp *t = *state;
	struct vmlet_err e = { 0 };
	char target[128], *buf = NULL;

	snprintf(target, sizeof(target), "%s", in(t, "real"));
	write_raw(target, "secret", 6);
	assert_int_equal(symlink(target, in(t, "link")), 0);
	assert_int_equal(vmlet_read_file(t->path, 100, &buf, NULL, &e), -1);
	assert_null(buf);
	assert_non_null(strstr(e.msg, t->path));
	assert_non_null(strstr(e.msg, "symbolic link"));
}

static void read_missing_names_errno(void **state)
{
	struct tmp *t = *state;
	struct vmlet_err e = { 0 };
	char *buf = NULL;

	assert_int_equal(vmlet_read_file(in(t, "nope"), 100, &buf, NULL, &e), -1);
	assert_int_equal(e.sys_errno, ENOENT);
	assert_int_equal(e.code, VMLET_E_NOT_FOUND);
	assert_non_null(strstr(e.msg, t->path));
	assert_non_null(strstr(e.msg, "No such file or directory"));
}

static void read_refuses_non_files(void **state)
{
	struct tmp *t = *state;
	struct vmlet_err e = { 0 };
	char *buf = NULL;

	assert_int_equal(vmlet_read_file(t->dir, 100, &buf, NULL, &e), -1);
	assert_non_null(strstr(e.msg, "not a regular file"));
	/* a FIFO must be refused, not waited on */
	assert_int_equal(mkfifo(in(t, "fifo"), 0600), 0);
	assert_int_equal(vmlet_read_file(t->path, 100, &buf, NULL, &e), -1);
	assert_non_null(strstr(e.msg, "not a regular file"));
	assert_null(buf);
}

static void read_file_without_size(void **state)
{
	struct vmlet_err e = { 0 };
	char *buf = NULL;
	size_t len;

	/* /proc files report st_size 0 but have content */
	assert_int_equal(vmlet_read_file("/proc/self/status", 1 << 20, &buf, &len, &e), 0);
	assert_true(len > 0);
	assert_non_null(strstr(buf, "Pid:"));
	free(buf);
	assert_int_equal(vmlet_read_file("/proc/self/status", 16, &buf, &len, &e), -1);
	assert_int_equal(e.code, VMLET_E_TOO_LARGE);
}

static void read_fd_checks_the_fd(void **state)
{
	struct tmp *t = *state;
	struct vmlet_err e = { 0 };
	char *buf = NULL;
	size_t len;

	write_raw(in(t, "f"), "abc", 3);
	int fd = open(t->path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(vmlet_read_fd(fd, "named", 10, &buf, &len, &e), 0);
	assert_string_equal(buf, "abc");
	free(buf);
	close(fd);
	fd = open(t->dir, O_RDONLY | O_DIRECTORY);
	assert_int_equal(vmlet_read_fd(fd, "named", 10, &buf, &len, &e), -1);
	assert_string_equal(e.msg, "named: not a regular file");
	close(fd);
}

static void ensure_dir_creates_and_fixes(void **state)
{
	struct tmp *t = *state;
	struct vmlet_err e = { 0 };
	char path[160];
	struct stat st;

	snprintf(path, sizeof(path), "%s/a/b/c", t->dir);
	assert_int_equal(vmlet_ensure_dir(path, 0750, (uid_t)-1, (gid_t)-1, &e), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0750);

	/* existing directory with the wrong mode is fixed */
	assert_int_equal(chmod(path, 0777), 0);
	assert_int_equal(vmlet_ensure_dir(path, 0700, (uid_t)-1, (gid_t)-1, &e), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);

	/* trailing slashes name the same directory */
	snprintf(path, sizeof(path), "%s/a/b/c//", t->dir);
	assert_int_equal(vmlet_ensure_dir(path, 0710, (uid_t)-1, (gid_t)-1, &e), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0710);
}

static void ensure_dir_sets_owner(void **state)
{
	struct tmp *t = *state;
	struct vmlet_err e = { 0 };
	struct stat st;

	if (geteuid() != 0) {
		skip(); /* chown to another uid needs root */
		return;
	}
	assert_int_equal(vmlet_ensure_dir(in(t, "owned"), 02750, 65534, 65534, &e), 0);
	assert_int_equal(stat(t->path, &st), 0);
	assert_int_equal(st.st_uid, 65534);
	assert_int_equal(st.st_gid, 65534);
	assert_int_equal(st.st_mode & 07777, 02750);
	/* back to root, group only */
	assert_int_equal(vmlet_ensure_dir(t->path, 0750, (uid_t)-1, 0, &e), 0);
	assert_int_equal(stat(t->path, &st), 0);
	assert_int_equal(st.st_uid, 65534);
	assert_int_equal(st.st_gid, 0);
}

static void ensure_dir_refuses_symlink_and_file(void **state)
{
	struct tmp *t = *state;
	struct vmlet_err e = { 0 };
	char real[128], link[128], path[160];
	struct stat st;

	snprintf(real, sizeof(real), "%s", in(t, "real"));
	snprintf(link, sizeof(link), "%s", in(t, "link"));
	assert_int_equal(mkdir(real, 0755), 0);
	assert_int_equal(symlink(real, link), 0);
	assert_int_equal(vmlet_ensure_dir(link, 0700, (uid_t)-1, (gid_t)-1, &e), -1);
	assert_non_null(strstr(e.msg, link));
	assert_non_null(strstr(e.msg, "symbolic link"));
	/* the symlink's target was left alone */
	assert_int_equal(stat(real, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);

	/* a dangling symlink too (mkdir must not create its target) */
	char dangling[128];
	snprintf(dangling, sizeof(dangling), "%s", in(t, "dangling"));
	assert_int_equal(symlink(in(t, "nowhere"), dangling), 0);
	assert_int_equal(vmlet_ensure_dir(dangling, 0700, (uid_t)-1, (gid_t)-1, &e), -1);
	assert_non_null(strstr(e.msg, "symbolic link"));
	assert_int_equal(access(in(t, "nowhere"), F_OK), -1);

	write_raw(in(t, "file"), "x", 1);
	assert_int_equal(vmlet_ensure_dir(t->path, 0700, (uid_t)-1, (gid_t)-1, &e), -1);
	assert_non_null(strstr(e.msg, "not a directory"));

	/* symlinks above the final component are followed (/var/run is one) */
	snprintf(path, sizeof(path), "%s/sub", link);
	assert_int_equal(vmlet_ensure_dir(path, 0700, (uid_t)-1, (gid_t)-1, &e), 0);
	snprintf(path, sizeof(path), "%s/sub", real);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));

	assert_int_equal(vmlet_ensure_dir("", 0700, (uid_t)-1, (gid_t)-1, &e), -1);
	assert_int_equal(vmlet_ensure_dir("/", 0700, (uid_t)-1, (gid_t)-1, &e), -1);
}

#define T(f) cmocka_unit_test_setup_teardown(f, make_tmp, remove_tmp)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(atomic_replace),
		T(atomic_replaces_a_symlink_not_its_target),
		T(atomic_write_errors),
		T(read_cap_exceeded),
		T(read_refuses_symlink),
		T(read_missing_names_errno),
		T(read_refuses_non_files),
		T(read_file_without_size),
		T(read_fd_checks_the_fd),
		T(ensure_dir_creates_and_fixes),
		T(ensure_dir_sets_owner),
		T(ensure_dir_refuses_symlink_and_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
