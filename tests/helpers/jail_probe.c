/* jail_probe: runs INSIDE a jail built by hostd/jail.c and reports what it
 * sees, so tests/unit/test_hostd_jail.c can check the jail from inside as
 * well as from outside.
 *
 * test_hostd_jail builds it itself, statically (cc -static, into its temp
 * dir), because the jail it runs in has no /usr and no dynamic loader. The
 * Makefile's tests/helpers rule also builds a dynamic copy; nothing uses it.
 *
 * Usage: jail_probe REPORT_FD RELEASE_FD CHECK_FD [PATH...]
 * Writes "key=value" lines to REPORT_FD, then "END", closes it, then
 * blocks reading RELEASE_FD until EOF (so the test can inspect the running
 * process from outside) and exits 0. RELEASE_FD -1: exit at once.
 *   pid uid gid root dev fds checkfd mkdir_root proc procpids
 *   write:<PATH>   for each PATH: the result of writing into it (a file is
 *                  opened O_WRONLY, a directory gets a new file)
 * Results are "ok" or an errno name (EROFS, EACCES, ...). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static FILE *out;

static const char *errname(int e)
{
	static char buf[32];

	switch (e) {
	case 0: return "ok";
	case EROFS: return "EROFS";
	case EACCES: return "EACCES";
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EEXIST: return "EEXIST";
	case ETXTBSY: return "ETXTBSY";
	case EBADF: return "EBADF";
	case ENOTDIR: return "ENOTDIR";
	default:
		snprintf(buf, sizeof(buf), "errno%d", e);
		return buf;
	}
}

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted, comma-separated names in dir (prefix + name); subdirectories
 * one level down are listed as "dir/name". */
static void list_dir(const char *key, const char *dir, int depth)
{
	char *names[256];
	size_t n = 0;
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d) {
		fprintf(out, "%s=!%s\n", key, errname(errno));
		return;
	}
	while ((de = readdir(d)) && n < 256) {
		char path[512];
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", strcmp(dir, "/") ? dir : "", de->d_name);
		if (depth > 0 && lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
			DIR *sd = opendir(path);
			struct dirent *se;

			while (sd && (se = readdir(sd)) && n < 256) {
				if (se->d_name[0] == '.')
					continue;
				names[n] = malloc(strlen(de->d_name) + strlen(se->d_name) + 2);
				sprintf(names[n++], "%s/%s", de->d_name, se->d_name);
			}
			if (sd)
				closedir(sd);
			continue;
		}
		names[n++] = strdup(de->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(names[0]), cmp);
	fprintf(out, "%s=", key);
	for (size_t i = 0; i < n; i++) {
		fprintf(out, "%s%s", i ? "," : "", names[i]);
		free(names[i]);
	}
	fputc('\n', out);
}

static void try_write(const char *path)
{
	struct stat st;
	int fd, e = 0;

	if (stat(path, &st) < 0) {
		fprintf(out, "write:%s=%s\n", path, errname(errno));
		return;
	}
	if (S_ISDIR(st.st_mode)) {
		char f[512];

		snprintf(f, sizeof(f), "%s/probe-write", path);
		fd = open(f, O_WRONLY | O_CREAT | O_EXCL, 0600);
	} else {
		fd = open(path, O_WRONLY);
	}
	if (fd < 0)
		e = errno;
	else
		close(fd);
	fprintf(out, "write:%s=%s\n", path, errname(e));
}

int main(int argc, char **argv)
{
	int report_fd, release_fd, check_fd;
	int first = 1;
	char buf[64];

	if (argc < 4)
		return 2;
	report_fd = atoi(argv[1]);
	release_fd = atoi(argv[2]);
	check_fd = atoi(argv[3]);
	out = fdopen(report_fd, "w");
	if (!out)
		return 3;

	fprintf(out, "pid=%d\n", (int)getpid());
	fprintf(out, "uid=%u\ngid=%u\n", (unsigned)getuid(), (unsigned)getgid());
	list_dir("root", "/", 0);
	list_dir("dev", "/dev", 1);
	fprintf(out, "fds=");
	for (int fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0) {
			fprintf(out, "%s%d", first ? "" : ",", fd);
			first = 0;
		}
	fputc('\n', out);
	fprintf(out, "checkfd=%s\n", fcntl(check_fd, F_GETFD) >= 0 ? "open" : "closed");
	fprintf(out, "mkdir_root=%s\n", errname(mkdir("/probe-dir", 0700) < 0 ? errno : 0));
	fprintf(out, "proc=%s\n", access("/proc/self/status", R_OK) == 0 ? "yes" : "no");
	/* The pids /proc shows (numeric entries only). */
	{
		DIR *d = opendir("/proc");
		struct dirent *de;
		int n = 0;

		fprintf(out, "procpids=");
		while (d && (de = readdir(d)))
			if (de->d_name[0] >= '0' && de->d_name[0] <= '9')
				fprintf(out, "%s%s", n++ ? "," : "", de->d_name);
		fputc('\n', out);
		if (d)
			closedir(d);
	}
	for (int i = 4; i < argc; i++)
		try_write(argv[i]);
	fprintf(out, "END\n");
	fclose(out);

	if (release_fd < 0)
		return 0;
	/* Wait for the test to close its end. */
	while (read(release_fd, buf, sizeof(buf)) > 0)
		;
	return 0;
}
