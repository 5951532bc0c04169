/* hostd/jail.c: a jailed process, proved from outside (/proc/<pid>/...
 * while it runs) and from inside (tests/helpers/jail_probe.c, built here
 * statically with `cc -static` into the test's temp dir, reports what it
 * sees through a pipe passed in keep_fds); hostile specs and dirty jail
 * dirs refused; child-side failures named; no mount reaching the host;
 * and once, real QEMU booting the test guest inside the jail (SKIP without
 * qemu-system-x86_64 or build/guest/{vmlinuz,initrd.gz}: `make guest`).
 * Everything but the spec checks needs root and is skipped otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hostd/jail.h"

#define TEST_UID 200123
#define INSTANCE "i-0000abcd"

static char base[] = "/run/vmlet-test-jail.XXXXXX";
static char probe[PATH_MAX];     /* the static probe, "" when it could not be built */
static char cg_dir[PATH_MAX];    /* a v1 pids cgroup for the join check, "" if none */
static char srcdir[PATH_MAX];    /* the source tree ($VMLET_SRC_DIR or the cwd), absolute */
static bool is_root;
/* Jailed processes a test started and has not reaped yet: killed and
 * reaped after each test, also when it failed half-way. */
static pid_t live[4];

static void live_add(pid_t pid)
{
	for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++)
		if (live[i] == 0) {
			live[i] = pid;
			return;
		}
}

static void live_del(pid_t pid)
{
	for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++)
		if (live[i] == pid)
			live[i] = 0;
}

static int kill_leftovers(void **state)
{
	for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++)
		if (live[i] > 0) {
			kill(live[i], SIGKILL);
			while (waitpid(live[i], NULL, 0) < 0 && errno == EINTR)
				;
			live[i] = 0;
		}
	return 0;
}

/* ---- small helpers ------------------------------------------------------------ */

/* snprintf that fails the test instead of truncating. */
static void fmt(char *buf, size_t len, const char *f, ...) __attribute__((format(printf, 3, 4)));
static void fmt(char *buf, size_t len, const char *f, ...)
{
	va_list ap;
	int n;

	va_start(ap, f);
	n = vsnprintf(buf, len, f, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < len);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf;
	size_t cap = 1 << 16, n;

	if (!f)
		return NULL;
	buf = malloc(cap + 1);
	if (!buf) {
		fclose(f);
		return NULL;
	}
	n = fread(buf, 1, cap, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* "Key:\tvalue" of /proc/<pid>/status, value up to the newline. */
static void status_field(pid_t pid, const char *key, char *out, size_t len)
{
	char path[64], *text, *p, *nl;

	fmt(path, sizeof(path), "/proc/%d/status", (int)pid);
	text = slurp(path);
	assert_non_null(text);
	p = strstr(text, key);
	assert_non_null(p);
	p += strlen(key);
	while (*p == ' ' || *p == '\t')
		p++;
	nl = strchr(p, '\n');
	if (nl)
		*nl = '\0';
	snprintf(out, len, "%s", p);
	free(text);
}

static void assert_ns_differs(pid_t pid, const char *ns)
{
	char a[64], b[64], la[128] = "", lb[128] = "";

	fmt(a, sizeof(a), "/proc/%d/ns/%s", (int)pid, ns);
	fmt(b, sizeof(b), "/proc/self/ns/%s", ns);
	assert_true(readlink(a, la, sizeof(la) - 1) > 0);
	assert_true(readlink(b, lb, sizeof(lb) - 1) > 0);
	if (strcmp(la, lb) == 0)
		fail_msg("namespace %s of the jailed pid equals ours (%s)", ns, la);
}

static void fd_target(pid_t pid, int fd, char *out, size_t len)
{
	char path[64];
	ssize_t n;

	if (pid > 0)
		fmt(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd);
	else
		fmt(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, out, len - 1);
	assert_true(n > 0);
	out[n] = '\0';
}

/* The mounts of pid as it sees them: "mountpoint opts;..." for each line
 * of /proc/<pid>/mountinfo (field 5 and the per-mount options, field 6).
 * Returns the number of mounts; fills opts_of with the options of mp. */
static int mount_opts(pid_t pid, const char *mp, char *opts_of, size_t len)
{
	char path[64], *text, *line, *save = NULL;
	int n = 0;

	fmt(path, sizeof(path), "/proc/%d/mountinfo", (int)pid);
	text = slurp(path);
	assert_non_null(text);
	opts_of[0] = '\0';
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char point[512], opts[512];

		if (sscanf(line, "%*s %*s %*s %*s %511s %511s", point, opts) != 2)
			continue;
		n++;
		if (strcmp(point, mp) == 0)
			fmt(opts_of, len, "%s", opts);
	}
	free(text);
	return n;
}

/* Every comma-separated flag of want is in the options of mp. */
static void assert_mount(pid_t pid, const char *mp, const char *want)
{
	char opts[512], w[128], *tok, *save = NULL;

	mount_opts(pid, mp, opts, sizeof(opts));
	if (!opts[0])
		fail_msg("%s is not a mount point of pid %d", mp, (int)pid);
	fmt(w, sizeof(w), "%s", want);
	for (tok = strtok_r(w, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char padded[600], flag[140];

		fmt(padded, sizeof(padded), ",%s,", opts);
		fmt(flag, sizeof(flag), ",%s,", tok);
		if (!strstr(padded, flag))
			fail_msg("mount %s of pid %d has \"%s\", lacks %s", mp, (int)pid, opts,
				 tok);
	}
}

/* No mount of the host lies beneath our temp dir: every jail mount was
 * made in the child's own namespace. (Only our paths are compared, so
 * mounts other tests make meanwhile cannot disturb the check.) */
static void assert_no_host_mounts(void)
{
	char *text = slurp("/proc/self/mountinfo");

	assert_non_null(text);
	if (strstr(text, base))
		fail_msg("a mount beneath %s is visible on the host:\n%s", base, text);
	free(text);
}

/* Read "key=value" lines from fd until "END". */
static char *read_report(int fd)
{
	size_t cap = 1 << 16, used = 0;
	char *buf = calloc(1, cap + 1);

	assert_non_null(buf);
	while (used < cap && !strstr(buf, "END\n")) {
		ssize_t n = read(fd, buf + used, cap - used);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		used += (size_t)n;
		buf[used] = '\0';
	}
	return buf;
}

static void assert_report(const char *report, const char *line)
{
	char want[512];

	/* A whole line: at the start, or after a newline. */
	fmt(want, sizeof(want), "\n%s\n", line);
	if (strncmp(report, want + 1, strlen(want + 1)) != 0 && !strstr(report, want))
		fail_msg("probe report lacks \"%s\"; got:\n%s", line, report);
}

static void wait_exit(pid_t pid, int *status)
{
	while (waitpid(pid, status, 0) < 0)
		assert_int_equal(errno, EINTR);
	live_del(pid);
}

/* Open path read-only as fd number `as` (flags: 0 or O_CLOEXEC). */
static void open_as(const char *path, int as, int flags)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(dup3(fd, as, flags), as);
	close(fd);
}

static void spec_base(struct jail_spec *s, const char *jail_dir, char **argv)
{
	memset(s, 0, sizeof(*s));
	s->instance_id = INSTANCE;
	s->uid = TEST_UID;
	s->gid = TEST_UID;
	s->jail_dir = jail_dir;
	s->exec_path = "/probe";
	s->argv = argv;
}

/* ---- fixture ---------------------------------------------------------------- */

static int setup(void **state)
{
	char cmd[PATH_MAX * 2 + 64];
	const char *src = getenv("VMLET_SRC_DIR");

	is_root = geteuid() == 0;
	if (!is_root)
		return 0;
	if (!realpath(src ? src : ".", srcdir))
		return -1;
	if (!mkdtemp(base))
		return -1;
	fmt(probe, sizeof(probe), "%s/jail_probe", base);
	fmt(cmd, sizeof(cmd), "cc -static -O2 -o '%s' '%s/tests/helpers/jail_probe.c' 2>&1",
		 probe, srcdir);
	if (system(cmd) != 0) {
		fprintf(stderr, "could not build the static probe (%s)\n", cmd);
		probe[0] = '\0';
	}
	/* A cgroup of our own for the join check (v1 pids, as these hosts
	 * have; skipped where it is not mounted). */
	if (access("/sys/fs/cgroup/pids/cgroup.procs", W_OK) == 0) {
		fmt(cg_dir, sizeof(cg_dir), "/sys/fs/cgroup/pids/vmlet-test-jail-%d",
			 (int)getpid());
		if (mkdir(cg_dir, 0755) < 0)
			cg_dir[0] = '\0';
	}
	return 0;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 32];

	if (!is_root)
		return 0;
	if (cg_dir[0])
		rmdir(cg_dir);
	fmt(cmd, sizeof(cmd), "rm -rf '%s'", base);
	return system(cmd) == 0 ? 0 : -1;
}

#define NEED_ROOT()                                                      \
	do {                                                             \
		if (!is_root) {                                          \
			print_message("needs root (mounts, setuid)\n");  \
			skip();                                          \
		}                                                        \
	} while (0)

#define NEED_PROBE()                                                          \
	do {                                                                  \
		NEED_ROOT();                                                  \
		if (!probe[0]) {                                              \
			print_message("cc -static could not build the probe\n"); \
			skip();                                               \
		}                                                             \
	} while (0)

/* ---- the jail, from outside and inside ----------------------------------------- */

static void probe_is_jailed(void **state)
{
	char jail_dir[PATH_MAX], datafile[PATH_MAX], datadir[PATH_MAX], rootdir[PATH_MAX];
	char hostfile[PATH_MAX], buf[256], buf2[256], fdarg[16];
	char *report, *text;
	int report_p[2], release_p[2], datafd, cgfd = -1, status, pidfd;
	struct jail_spec s;
	struct vmlet_err err;
	struct stat st_root, st_jail, st_self;
	struct rlimit nofile;
	char *argv[12];
	pid_t pid;

	NEED_PROBE();
	fmt(jail_dir, sizeof(jail_dir), "%s/%s", base, INSTANCE);
	fmt(datafile, sizeof(datafile), "%s/data.txt", base);
	fmt(datadir, sizeof(datadir), "%s/datadir", base);
	/* Writable by anyone on the host: EROFS inside can only come from
	 * the read-only bind. */
	write_file(datafile, "data\n");
	assert_int_equal(chmod(datafile, 0666), 0);
	assert_int_equal(mkdir(datadir, 0777), 0);
	assert_int_equal(chmod(datadir, 0777), 0);

	/* Pipes for the report (probe -> us) and the release (EOF ends it). */
	assert_int_equal(pipe2(report_p, O_CLOEXEC), 0);
	assert_int_equal(pipe2(release_p, O_CLOEXEC), 0);
	/* Fixed numbers: 40 <-> 41 swapped, 42 kept in place although
	 * close-on-exec here, 43 inherited by accident (no CLOEXEC). */
	open_as("/etc/hostname", 40, 0);
	open_as("/etc/passwd", 41, 0);
	open_as("/etc/group", 42, O_CLOEXEC);
	open_as("/dev/null", 43, 0);
	datafd = open(datafile, O_RDONLY | O_CLOEXEC);
	assert_true(datafd >= 0);
	fmt(fdarg, sizeof(fdarg), "%d", 43);

	argv[0] = "/probe";
	argv[1] = "3";
	argv[2] = "4";
	argv[3] = fdarg;
	argv[4] = "/data/file.txt";
	argv[5] = "/data/dir";
	argv[6] = "/run";
	argv[7] = "/dev/null";
	argv[8] = "/";
	argv[9] = NULL;
	spec_base(&s, jail_dir, argv);
	s.binds[0] = (struct jail_bind){ .host_path = probe, .jail_path = "/probe" };
	s.binds[1] = (struct jail_bind){ .host_path = datafile, .from_fd = true, .host_fd = datafd,
					 .jail_path = "/data/file.txt" };
	s.binds[2] = (struct jail_bind){ .host_path = datadir, .jail_path = "/data/dir" };
	s.n_binds = 3;
	s.writable_dirs[0] = (struct jail_writable_dir){ "/run", 0700 };
	s.n_writable_dirs = 1;
	s.devices[0] = (struct jail_device){ "/dev/null", 1, 3, 0666 };
	s.devices[1] = (struct jail_device){ "/dev/urandom", 1, 9, 0444 };
	s.devices[2] = (struct jail_device){ "/dev/net/tun", 10, 200, 0660 };
	s.n_devices = 3;
	s.keep_fds[0] = (struct jail_fd){ report_p[1], 3 };
	s.keep_fds[1] = (struct jail_fd){ release_p[0], 4 };
	s.keep_fds[2] = (struct jail_fd){ 40, 41 };
	s.keep_fds[3] = (struct jail_fd){ 41, 40 };
	s.keep_fds[4] = (struct jail_fd){ 42, 42 };
	s.n_keep_fds = 5;
	if (cg_dir[0]) {
		fmt(buf, sizeof(buf), "%s/cgroup.procs", cg_dir);
		cgfd = open(buf, O_WRONLY | O_CLOEXEC);
		assert_true(cgfd >= 0);
		s.cgroup_procs_fds[0] = cgfd;
		s.n_cgroup_procs_fds = 1;
	}
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &nofile), 0);
	s.rlimits[0] = (struct jail_rlimit){ RLIMIT_CORE, 0, 0 };
	s.rlimits[1] = (struct jail_rlimit){ RLIMIT_NOFILE, 64, 64 < nofile.rlim_max ? 64 : nofile.rlim_max };
	s.rlimits[2] = (struct jail_rlimit){ RLIMIT_FSIZE, 1 << 20, 1 << 20 };
	s.n_rlimits = 3;

	assert_no_host_mounts();
	if (jail_prepare(&s, &err) < 0)
		fail_msg("jail_prepare: %s", err.msg);
	if (jail_spawn(&s, &pid, &pidfd, &err) < 0)
		fail_msg("jail_spawn: %s", err.msg);
	live_add(pid);
	assert_true(pid > 0);
	assert_true(pidfd >= 0);
	close(report_p[1]);
	close(release_p[0]);
	report = read_report(report_p[0]);
	close(report_p[0]);

	/* -- from outside, while it runs -- */
	status_field(pid, "Uid:", buf, sizeof(buf));
	assert_string_equal(buf, "200123\t200123\t200123\t200123");
	status_field(pid, "Gid:", buf, sizeof(buf));
	assert_string_equal(buf, "200123\t200123\t200123\t200123");
	status_field(pid, "Groups:", buf, sizeof(buf));
	assert_string_equal(buf, "");
	status_field(pid, "CapEff:", buf, sizeof(buf));
	assert_string_equal(buf, "0000000000000000");
	status_field(pid, "CapPrm:", buf, sizeof(buf));
	assert_string_equal(buf, "0000000000000000");
	status_field(pid, "CapInh:", buf, sizeof(buf));
	assert_string_equal(buf, "0000000000000000");
	status_field(pid, "CapBnd:", buf, sizeof(buf));
	assert_string_equal(buf, "0000000000000000");
	status_field(pid, "CapAmb:", buf, sizeof(buf));
	assert_string_equal(buf, "0000000000000000");
	status_field(pid, "NoNewPrivs:", buf, sizeof(buf));
	assert_string_equal(buf, "1");
	/* Its own pid namespace, in which it is pid 1. */
	status_field(pid, "NSpid:", buf, sizeof(buf));
	fmt(buf2, sizeof(buf2), "%d\t1", (int)pid);
	assert_string_equal(buf, buf2);
	for (const char *const *ns = (const char *const[]){ "mnt", "pid", "net", "ipc", "uts",
							     "cgroup", NULL };
	     *ns; ns++)
		assert_ns_differs(pid, *ns);
	/* Its root is the jail root (a bind of it: same inode), not ours. */
	fmt(buf, sizeof(buf), "/proc/%d/root/", (int)pid);
	fmt(rootdir, sizeof(rootdir), "%s/root", jail_dir);
	assert_int_equal(stat(buf, &st_root), 0);
	assert_int_equal(stat(rootdir, &st_jail), 0);
	assert_int_equal(stat("/", &st_self), 0);
	assert_true(st_root.st_ino == st_jail.st_ino && st_root.st_dev == st_jail.st_dev);
	assert_false(st_root.st_ino == st_self.st_ino && st_root.st_dev == st_self.st_dev);
	/* Its fds: 40 and 41 swapped, 42 in place, 0-2 on /dev/null. */
	fd_target(pid, 41, buf, sizeof(buf));
	fd_target(0, 40, buf2, sizeof(buf2));
	assert_string_equal(buf, buf2);
	fd_target(pid, 40, buf, sizeof(buf));
	fd_target(0, 41, buf2, sizeof(buf2));
	assert_string_equal(buf, buf2);
	fd_target(pid, 42, buf, sizeof(buf));
	assert_string_equal(buf, "/etc/group");
	for (int fd = 0; fd <= 2; fd++) {
		fd_target(pid, fd, buf, sizeof(buf));
		assert_string_equal(buf, "/dev/null");
	}
	/* Its limits. */
	fmt(buf, sizeof(buf), "/proc/%d/limits", (int)pid);
	text = slurp(buf);
	assert_non_null(text);
	assert_non_null(strstr(text, "Max core file size        0                    0"));
	assert_non_null(strstr(text, "Max open files            64                   64"));
	assert_non_null(strstr(text, "Max file size             1048576              1048576"));
	free(text);
	/* Its cgroup: joined before the exec. */
	if (cg_dir[0]) {
		fmt(buf, sizeof(buf), "/proc/%d/cgroup", (int)pid);
		text = slurp(buf);
		assert_non_null(text);
		fmt(buf2, sizeof(buf2), ":pids:/%s\n", cg_dir + strlen("/sys/fs/cgroup/pids/"));
		if (!strstr(text, buf2))
			fail_msg("pid %d is not in %s:\n%s", (int)pid, cg_dir, text);
		free(text);
	} else {
		print_message("no v1 pids hierarchy: cgroup join not checked\n");
	}
	/* Its mounts: exactly the jail's, with the flags the spec implies. */
	assert_int_equal(mount_opts(pid, "/", buf, sizeof(buf)), 6);
	assert_mount(pid, "/", "ro,nosuid,nodev");
	assert_mount(pid, "/probe", "ro,nosuid,nodev");
	assert_mount(pid, "/data/file.txt", "ro,nosuid,nodev");
	assert_mount(pid, "/data/dir", "ro,nosuid,nodev");
	assert_mount(pid, "/run", "rw,nosuid,nodev,noexec");
	assert_mount(pid, "/dev", "ro,nosuid,noexec");
	/* Nothing of the jail is mounted on the host, even now. */
	assert_no_host_mounts();

	/* -- from inside -- */
	assert_report(report, "pid=1");
	assert_report(report, "uid=200123");
	assert_report(report, "gid=200123");
	assert_report(report, "root=data,dev,probe,run");
	assert_report(report, "dev=net/tun,null,urandom");
	assert_report(report, "fds=0,1,2,3,4,40,41,42");
	assert_report(report, "checkfd=closed");
	assert_report(report, "mkdir_root=EROFS");
	assert_report(report, "proc=no");
	assert_report(report, "write:/data/file.txt=EROFS");
	assert_report(report, "write:/data/dir=EROFS");
	assert_report(report, "write:/run=ok");
	assert_report(report, "write:/dev/null=ok");
	assert_report(report, "write:/=EROFS");
	free(report);

	/* What it wrote in /run is where jail_host_path says. */
	assert_int_equal(jail_host_path(&s, "/run/probe-write", hostfile, sizeof(hostfile), &err), 0);
	assert_int_equal(lstat(hostfile, &st_self), 0);
	assert_int_equal(st_self.st_uid, TEST_UID);
	assert_int_equal(st_self.st_mode & 0777, 0600); /* the jail's umask 077 */

	/* Release it; it exits 0. */
	close(release_p[1]);
	wait_exit(pid, &status);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	close(pidfd);

	if (jail_cleanup(jail_dir, &err) < 0)
		fail_msg("jail_cleanup: %s", err.msg);
	assert_int_equal(access(jail_dir, F_OK), -1);
	/* Idempotent. */
	assert_int_equal(jail_cleanup(jail_dir, &err), 0);
	assert_no_host_mounts();
	for (int fd = 40; fd <= 43; fd++)
		close(fd);
	close(datafd);
	if (cgfd >= 0)
		close(cgfd);
}

/* With mount_proc: a /proc of its own pid namespace, hidepid, noexec. */
static void probe_with_proc(void **state)
{
	char jail_dir[PATH_MAX], *report, *text, path[64];
	char *argv[] = { "/probe", "3", "4", "99", NULL };
	int report_p[2], release_p[2], pidfd, status;
	struct jail_spec s;
	struct vmlet_err err;
	pid_t pid;

	NEED_PROBE();
	fmt(jail_dir, sizeof(jail_dir), "%s/%s", base, INSTANCE);
	assert_int_equal(pipe2(report_p, O_CLOEXEC), 0);
	assert_int_equal(pipe2(release_p, O_CLOEXEC), 0);
	spec_base(&s, jail_dir, argv);
	s.binds[0] = (struct jail_bind){ .host_path = probe, .jail_path = "/probe" };
	s.n_binds = 1;
	s.mount_proc = true;
	s.keep_fds[0] = (struct jail_fd){ report_p[1], 3 };
	s.keep_fds[1] = (struct jail_fd){ release_p[0], 4 };
	s.n_keep_fds = 2;
	if (jail_prepare(&s, &err) < 0)
		fail_msg("jail_prepare: %s", err.msg);
	if (jail_spawn(&s, &pid, &pidfd, &err) < 0)
		fail_msg("jail_spawn: %s", err.msg);
	live_add(pid);
	close(report_p[1]);
	close(release_p[0]);
	report = read_report(report_p[0]);
	close(report_p[0]);
	assert_mount(pid, "/proc", "rw,nosuid,nodev,noexec");
	fmt(path, sizeof(path), "/proc/%d/mountinfo", (int)pid);
	text = slurp(path);
	assert_non_null(text);
	if (!strstr(text, "hidepid=invisible") && !strstr(text, "hidepid=2"))
		fail_msg("/proc of the jail lacks hidepid:\n%s", text);
	free(text);
	close(release_p[1]);
	wait_exit(pid, &status);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(pidfd);
	assert_report(report, "proc=yes");
	/* Only itself: the pid namespace has one process. */
	assert_report(report, "procpids=1");
	assert_report(report, "root=dev,probe,proc");
	free(report);
	assert_int_equal(jail_cleanup(jail_dir, &err), 0);
}

/* hostd is multi-threaded: other threads hold malloc's and stdio's locks
 * at any moment. The child touches neither, so spawning never hangs (a
 * hang would show as the spawn's own timeout error). */
static atomic_int churn_stop;

static void *churn(void *arg)
{
	char line[128];
	unsigned n = 0;

	while (!atomic_load(&churn_stop)) {
		void *p = malloc(16 + (n++ % 4096));

		snprintf(line, sizeof(line), "churn %u %p", n, p);
		free(p);
	}
	return NULL;
}

static void spawn_while_threads_allocate(void **state)
{
	char jail_dir[PATH_MAX], *report;
	char *argv[] = { "/probe", "3", "-1", "99", NULL };
	struct jail_spec s;
	struct vmlet_err err;
	pthread_t th[4];
	int status;

	NEED_PROBE();
	fmt(jail_dir, sizeof(jail_dir), "%s/%s", base, INSTANCE);
	spec_base(&s, jail_dir, argv);
	s.binds[0] = (struct jail_bind){ .host_path = probe, .jail_path = "/probe" };
	s.n_binds = 1;
	s.n_keep_fds = 1;
	if (jail_prepare(&s, &err) < 0)
		fail_msg("jail_prepare: %s", err.msg);
	atomic_store(&churn_stop, 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, churn, NULL), 0);
	for (int round = 0; round < 25; round++) {
		int report_p[2], pidfd;
		pid_t pid;

		assert_int_equal(pipe2(report_p, O_CLOEXEC), 0);
		s.keep_fds[0] = (struct jail_fd){ report_p[1], 3 };
		if (jail_spawn(&s, &pid, &pidfd, &err) < 0) {
			atomic_store(&churn_stop, 1);
			for (int i = 0; i < 4; i++)
				pthread_join(th[i], NULL);
			fail_msg("round %d: jail_spawn: %s", round, err.msg);
		}
		live_add(pid);
		close(report_p[1]);
		report = read_report(report_p[0]);
		close(report_p[0]);
		wait_exit(pid, &status);
		close(pidfd);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		assert_report(report, "pid=1");
		free(report);
	}
	atomic_store(&churn_stop, 1);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	assert_int_equal(jail_cleanup(jail_dir, &err), 0);
}

/* The child fails at execve: the error names the step, path and errno,
 * the child is reaped, nothing is left mounted. */
static void exec_failure_is_reported(void **state)
{
	char jail_dir[PATH_MAX];
	char *argv[] = { "/missing", NULL };
	struct jail_spec s;
	struct vmlet_err err;
	pid_t pid = 0;
	int pidfd = 0, st;

	NEED_ROOT();
	fmt(jail_dir, sizeof(jail_dir), "%s/%s", base, INSTANCE);
	spec_base(&s, jail_dir, argv);
	s.exec_path = "/missing";
	assert_int_equal(jail_prepare(&s, &err), 0);
	assert_int_equal(jail_spawn(&s, &pid, &pidfd, &err), -1);
	assert_int_equal(pid, -1);
	assert_int_equal(pidfd, -1);
	assert_int_equal(err.sys_errno, ENOENT);
	assert_int_equal(err.code, 500);
	assert_non_null(strstr(err.msg, "execve /missing"));
	assert_non_null(strstr(err.msg, "step "));
	assert_non_null(strstr(err.msg, "No such file or directory"));
	/* Reaped: no child of ours is left. */
	assert_int_equal(waitpid(-1, &st, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	assert_no_host_mounts();
	assert_int_equal(jail_cleanup(jail_dir, &err), 0);
}

/* A bind whose source disappeared after prepare: a child-side mount
 * failure, named with its paths. */
static void bind_failure_is_reported(void **state)
{
	char jail_dir[PATH_MAX], src[PATH_MAX];
	char *argv[] = { "/probe", NULL };
	struct jail_spec s;
	struct vmlet_err err;
	pid_t pid;
	int pidfd, fd;

	NEED_ROOT();
	fmt(jail_dir, sizeof(jail_dir), "%s/%s", base, INSTANCE);
	fmt(src, sizeof(src), "%s/vanishing", base);
	write_file(src, "x");
	fd = open(src, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	spec_base(&s, jail_dir, argv);
	/* Bound through its fd; after prepare made a file mount point, the fd
	 * number is made to name a directory behind the spec's back: the
	 * child cannot attach a directory on a file, and says so. */
	s.binds[0] = (struct jail_bind){ .host_path = src, .from_fd = true, .host_fd = fd,
					 .jail_path = "/file" };
	s.n_binds = 1;
	assert_int_equal(jail_prepare(&s, &err), 0);
	{
		int dfd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		assert_true(dfd >= 0);
		assert_int_equal(dup3(dfd, fd, O_CLOEXEC), fd);
		close(dfd);
	}
	assert_int_equal(jail_spawn(&s, &pid, &pidfd, &err), -1);
	assert_non_null(strstr(err.msg, "(bind "));
	assert_non_null(strstr(err.msg, src));
	assert_non_null(strstr(err.msg, "at /file"));
	assert_true(err.sys_errno != 0);
	close(fd);
	assert_int_equal(jail_cleanup(jail_dir, &err), 0);
}

/* ---- dirty jail dirs ------------------------------------------------------------- */

static void expect_refused(const char *jail_dir, const char *instance, const char *needle)
{
	char *argv[] = { "/probe", NULL };
	struct jail_spec s;
	struct vmlet_err err;

	spec_base(&s, jail_dir, argv);
	s.instance_id = instance;
	assert_int_equal(jail_prepare(&s, &err), -1);
	if (!strstr(err.msg, needle))
		fail_msg("expected \"%s\" in: %s", needle, err.msg);
	assert_int_equal(err.code, 403);
}

static void dirty_jail_dir_refused(void **state)
{
	char d[PATH_MAX], j[PATH_MAX], t[PATH_MAX];

	NEED_ROOT();
	/* A group-writable parent. */
	fmt(d, sizeof(d), "%s/gw", base);
	assert_int_equal(mkdir(d, 0775), 0);
	assert_int_equal(chmod(d, 0775), 0);
	fmt(j, sizeof(j), "%s/i-00000001", d);
	expect_refused(j, "i-00000001", "group- or world-writable");
	assert_int_equal(access(j, F_OK), -1);
	/* A parent owned by someone else. */
	fmt(d, sizeof(d), "%s/other", base);
	assert_int_equal(mkdir(d, 0755), 0);
	assert_int_equal(chown(d, 1000, 1000), 0);
	fmt(j, sizeof(j), "%s/i-00000002", d);
	expect_refused(j, "i-00000002", "owned by uid 1000");
	assert_int_equal(access(j, F_OK), -1);
	/* A symlink on the way. */
	fmt(d, sizeof(d), "%s/real", base);
	assert_int_equal(mkdir(d, 0755), 0);
	fmt(t, sizeof(t), "%s/link", base);
	assert_int_equal(symlink(d, t), 0);
	fmt(j, sizeof(j), "%s/i-00000003", t);
	expect_refused(j, "i-00000003", "is a symlink");
	fmt(j, sizeof(j), "%s/i-00000003", d);
	assert_int_equal(access(j, F_OK), -1);
	/* The jail dir itself a symlink (to a root-owned dir). */
	fmt(j, sizeof(j), "%s/i-00000004", base);
	assert_int_equal(symlink(d, j), 0);
	expect_refused(j, "i-00000004", "is a symlink");
	/* The jail dir itself world-writable. */
	fmt(j, sizeof(j), "%s/i-00000005", base);
	assert_int_equal(mkdir(j, 0777), 0);
	assert_int_equal(chmod(j, 0777), 0);
	expect_refused(j, "i-00000005", "group- or world-writable");
	fmt(t, sizeof(t), "%s/root", j);
	assert_int_equal(access(t, F_OK), -1);
	/* cleanup refuses it too, and leaves it alone. */
	{
		struct vmlet_err err;

		fmt(j, sizeof(j), "%s/link/i-00000003", base);
		assert_int_equal(jail_cleanup(j, &err), -1);
		assert_int_equal(err.code, 403);
	}
}

/* cleanup never crosses a mount point, and removes nothing beneath one. */
static void cleanup_refuses_mount_points(void **state)
{
	char jail_dir[PATH_MAX], target[PATH_MAX], src[PATH_MAX], keep[PATH_MAX];
	char *argv[] = { "/probe", NULL };
	struct jail_spec s;
	struct vmlet_err err;

	NEED_ROOT();
	fmt(jail_dir, sizeof(jail_dir), "%s/%s", base, INSTANCE);
	fmt(src, sizeof(src), "%s/precious", base);
	fmt(keep, sizeof(keep), "%s/precious/file", base);
	assert_int_equal(mkdir(src, 0755), 0);
	write_file(keep, "keep me");
	spec_base(&s, jail_dir, argv);
	s.binds[0] = (struct jail_bind){ .host_path = src, .jail_path = "/usr" };
	s.n_binds = 1;
	assert_int_equal(jail_prepare(&s, &err), 0);
	/* A mount leaked on the host (as a buggy jail would leave). */
	fmt(target, sizeof(target), "%s/root/usr", jail_dir);
	assert_int_equal(mount(src, target, NULL, MS_BIND, NULL), 0);
	assert_int_equal(jail_cleanup(jail_dir, &err), -1);
	assert_int_equal(err.code, 409);
	assert_non_null(strstr(err.msg, "mount point"));
	assert_int_equal(access(keep, F_OK), 0);
	/* prepare refuses to rebuild over it, too. */
	assert_int_equal(jail_prepare(&s, &err), -1);
	assert_int_equal(err.code, 409);
	assert_int_equal(access(keep, F_OK), 0);
	assert_int_equal(umount2(target, MNT_DETACH), 0);
	assert_int_equal(jail_cleanup(jail_dir, &err), 0);
	assert_int_equal(access(keep, F_OK), 0);
	assert_int_equal(access(jail_dir, F_OK), -1);
}

/* ---- hostile specs (no root needed: refused before any file is touched) -------- */

static void expect_invalid(const struct jail_spec *s, const char *needle)
{
	struct vmlet_err err;
	pid_t pid;
	int pidfd;

	assert_int_equal(jail_prepare(s, &err), -1);
	assert_int_equal(err.code, 400);
	if (!strstr(err.msg, needle))
		fail_msg("prepare: expected \"%s\" in: %s", needle, err.msg);
	assert_int_equal(jail_spawn(s, &pid, &pidfd, &err), -1);
	assert_int_equal(err.code, 400);
	if (!strstr(err.msg, needle))
		fail_msg("spawn: expected \"%s\" in: %s", needle, err.msg);
}

static void hostile_specs_refused(void **state)
{
	char *argv[] = { "/probe", NULL };
	char *empty_argv[] = { NULL };
	struct jail_spec s;
	struct rlimit rl;
	const char *dir = "/nonexistent-vmlet/" INSTANCE;

	spec_base(&s, dir, argv);
	s.instance_id = "i-0000ABCD";
	s.jail_dir = "/nonexistent-vmlet/i-0000ABCD";
	expect_invalid(&s, "instance_id");
	spec_base(&s, "/nonexistent-vmlet/i-00000000", argv);
	expect_invalid(&s, "ending in the instance id");
	spec_base(&s, "/nonexistent-vmlet/../" INSTANCE, argv);
	expect_invalid(&s, "jail_dir");
	spec_base(&s, dir, argv);
	s.uid = 0;
	expect_invalid(&s, "never runs as root");

	spec_base(&s, dir, argv);
	s.binds[0] = (struct jail_bind){ .host_path = "/usr", .jail_path = "/usr/../etc" };
	s.n_binds = 1;
	expect_invalid(&s, "binds[0].jail_path");
	s.binds[0].jail_path = "/usr,x";
	expect_invalid(&s, "binds[0].jail_path");
	s.binds[0].jail_path = "/dev/sda";
	expect_invalid(&s, "/dev and /proc belong to the jail");
	s.binds[0].jail_path = "/";
	expect_invalid(&s, "binds[0].jail_path");
	s.binds[0] = (struct jail_bind){ .host_path = "usr", .jail_path = "/usr" };
	expect_invalid(&s, "binds[0].host_path");
	s.binds[0] = (struct jail_bind){ .host_path = "/usr", .jail_path = "/usr" };
	s.binds[1] = (struct jail_bind){ .host_path = "/etc", .jail_path = "/usr/etc" };
	s.n_binds = 2;
	expect_invalid(&s, "overlap");
	s.binds[1] = (struct jail_bind){ .host_path = "/etc", .from_fd = true, .host_fd = 999,
					 .jail_path = "/etc" };
	expect_invalid(&s, "binds[1].host_fd 999 is not an open fd");

	spec_base(&s, dir, argv);
	s.writable_dirs[0] = (struct jail_writable_dir){ "/run", 0700 };
	s.n_writable_dirs = 1;
	s.symlinks[0] = (struct jail_symlink){ "/run/x", "usr" };
	s.n_symlinks = 1;
	expect_invalid(&s, "overlap");
	s.symlinks[0] = (struct jail_symlink){ "/lib", "../etc" };
	expect_invalid(&s, "\"..\" is not allowed");
	s.symlinks[0] = (struct jail_symlink){ "/lib", "/usr/lib" };
	expect_invalid(&s, "relative");
	s.n_symlinks = 0;
	s.writable_dirs[0].mode = 0777;
	expect_invalid(&s, "within 0770");

	spec_base(&s, dir, argv);
	s.devices[0] = (struct jail_device){ "/dev/mem", 1, 1, 0600 };
	s.n_devices = 1;
	expect_invalid(&s, "1:1 is not a device a VMM may have");
	s.devices[0] = (struct jail_device){ "/dev/sda", 8, 0, 0600 };
	expect_invalid(&s, "8:0 is not a device");
	s.devices[0] = (struct jail_device){ "/dev/null", 1, 3, 04666 };
	expect_invalid(&s, "within 0666");
	s.devices[0] = (struct jail_device){ "/etc/null", 1, 3, 0666 };
	expect_invalid(&s, "devices[0].jail_path");
	s.devices[0] = (struct jail_device){ "/dev/a/b/null", 1, 3, 0666 };
	expect_invalid(&s, "at most one directory");
	s.devices[0] = (struct jail_device){ "/dev/null", 1, 3, 0666 };
	s.devices[1] = (struct jail_device){ "/dev/null", 1, 9, 0666 };
	s.n_devices = 2;
	expect_invalid(&s, "overlaps");

	spec_base(&s, dir, argv);
	s.keep_fds[0] = (struct jail_fd){ 0, 3 };
	s.keep_fds[1] = (struct jail_fd){ 1, 3 };
	s.n_keep_fds = 2;
	expect_invalid(&s, "already taken");
	s.keep_fds[1] = (struct jail_fd){ 1, JAIL_CHILD_FD_LIMIT };
	expect_invalid(&s, "child_fd");
	s.keep_fds[1] = (struct jail_fd){ 998, 4 };
	expect_invalid(&s, "keep_fds[1].parent_fd 998 is not an open fd");
	spec_base(&s, dir, argv);
	s.cgroup_procs_fds[0] = 997;
	s.n_cgroup_procs_fds = 1;
	expect_invalid(&s, "cgroup_procs_fds[0] 997");

	spec_base(&s, dir, argv);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max != RLIM_INFINITY) {
		s.rlimits[0] = (struct jail_rlimit){ RLIMIT_NOFILE, rl.rlim_cur, rl.rlim_max + 1 };
		s.n_rlimits = 1;
		expect_invalid(&s, "can only be lowered");
	}
	s.rlimits[0] = (struct jail_rlimit){ RLIMIT_CORE, 10, 0 };
	s.n_rlimits = 1;
	expect_invalid(&s, "soft limit above the hard limit");
	s.rlimits[0] = (struct jail_rlimit){ 99, 0, 0 };
	expect_invalid(&s, "is not an RLIMIT_*");
	s.rlimits[0] = (struct jail_rlimit){ RLIMIT_CORE, 0, 0 };
	s.rlimits[1] = (struct jail_rlimit){ RLIMIT_CORE, 0, 0 };
	s.n_rlimits = 2;
	expect_invalid(&s, "given twice");

	spec_base(&s, dir, empty_argv);
	expect_invalid(&s, "argv");
	spec_base(&s, dir, argv);
	s.exec_path = "probe";
	expect_invalid(&s, "exec_path");
	s.n_binds = JAIL_MAX_BINDS + 1;
	s.exec_path = "/probe";
	expect_invalid(&s, "too many");
}

static void host_path_and_policy(void **state)
{
	char *argv[] = { "/probe", NULL };
	struct jail_spec s;
	struct vmlet_err err;
	char buf[PATH_MAX];

	spec_base(&s, "/var/lib/vmlet/jail/" INSTANCE, argv);
	s.writable_dirs[0] = (struct jail_writable_dir){ "/run", 0700 };
	s.n_writable_dirs = 1;
	assert_int_equal(jail_host_path(&s, "/run/qmp.sock", buf, sizeof(buf), &err), 0);
	assert_string_equal(buf, "/var/lib/vmlet/jail/" INSTANCE "/root/run/qmp.sock");
	assert_int_equal(jail_host_path(&s, "/run", buf, sizeof(buf), &err), -1);
	assert_int_equal(jail_host_path(&s, "/runx/a", buf, sizeof(buf), &err), -1);
	assert_int_equal(jail_host_path(&s, "/run/../etc/passwd", buf, sizeof(buf), &err), -1);
	assert_int_equal(jail_host_path(&s, "/run/qmp.sock", buf, 20, &err), -1);

	assert_int_equal(jail_policy_check(true, false, &err), -1);
	assert_int_equal(err.code, 403);
	assert_non_null(strstr(err.msg, "production"));
	assert_int_equal(jail_policy_check(true, true, &err), 0);
	assert_int_equal(jail_policy_check(false, false, &err), 0);
	assert_int_equal(jail_policy_check(false, true, &err), 0);
}

/* ---- real QEMU inside the jail ----------------------------------------------------- */

static bool file_has(const char *path, const char *needle)
{
	char *text = slurp(path);
	bool r = text && strstr(text, needle);

	free(text);
	return r;
}

static void qemu_boots_in_jail(void **state)
{
	const char *qemu = "/usr/bin/qemu-system-x86_64";
	char jail_dir[PATH_MAX], kernel[PATH_MAX], initrd[PATH_MAX], errlog[PATH_MAX];
	char console[PATH_MAX], buf[256];
	char *argv[] = { "/usr/bin/qemu-system-x86_64", "-M", "microvm", "-accel", "tcg",
			 "-cpu", "max", "-m", "128", "-smp", "1", "-nodefaults",
			 "-no-user-config", "-nographic", "-no-reboot",
			 "-kernel", "/image/vmlinuz", "-initrd", "/image/initrd.gz",
			 "-append", "console=ttyS0 tsc_early_khz=2000000 panic=-1 quiet",
			 "-serial", "file:/run/console.log", NULL };
	struct jail_spec s;
	struct vmlet_err err;
	struct timespec ts = { 0, 100 * 1000 * 1000 };
	int kfd, ifd, efd, pidfd, status;
	bool ready = false;
	pid_t pid;

	NEED_ROOT();
	fmt(kernel, sizeof(kernel), "%s/build/guest/vmlinuz", srcdir);
	fmt(initrd, sizeof(initrd), "%s/build/guest/initrd.gz", srcdir);
	if (access(qemu, X_OK) != 0 || access(kernel, R_OK) != 0 || access(initrd, R_OK) != 0) {
		print_message("needs %s and build/guest/{vmlinuz,initrd.gz} (make guest)\n", qemu);
		skip();
	}
	fmt(jail_dir, sizeof(jail_dir), "%s/i-0000e001", base);
	fmt(errlog, sizeof(errlog), "%s/qemu-stderr.log", base);
	kfd = open(kernel, O_RDONLY | O_CLOEXEC);
	ifd = open(initrd, O_RDONLY | O_CLOEXEC);
	efd = open(errlog, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(kfd >= 0 && ifd >= 0 && efd >= 0);

	memset(&s, 0, sizeof(s));
	s.instance_id = "i-0000e001";
	s.uid = TEST_UID + 1;
	s.gid = TEST_UID + 1;
	s.jail_dir = jail_dir;
	s.exec_path = argv[0];
	s.argv = argv;
	/* What QEMU needs: its binary and libraries (/usr, nosuid, read-only,
	 * with Debian's merged-usr symlinks for the dynamic loader), its
	 * firmware (/usr/share/qemu, inside /usr), the image files, /dev/null
	 * and /dev/urandom, and a writable /run for its console (and QMP). */
	s.binds[0] = (struct jail_bind){ .host_path = "/usr", .jail_path = "/usr" };
	s.binds[1] = (struct jail_bind){ .host_path = kernel, .from_fd = true, .host_fd = kfd,
					 .jail_path = "/image/vmlinuz" };
	s.binds[2] = (struct jail_bind){ .host_path = initrd, .from_fd = true, .host_fd = ifd,
					 .jail_path = "/image/initrd.gz" };
	s.n_binds = 3;
	s.symlinks[0] = (struct jail_symlink){ "/lib", "usr/lib" };
	s.symlinks[1] = (struct jail_symlink){ "/lib64", "usr/lib64" };
	s.symlinks[2] = (struct jail_symlink){ "/bin", "usr/bin" };
	s.n_symlinks = 3;
	s.devices[0] = (struct jail_device){ "/dev/null", 1, 3, 0666 };
	s.devices[1] = (struct jail_device){ "/dev/urandom", 1, 9, 0444 };
	s.n_devices = 2;
	s.writable_dirs[0] = (struct jail_writable_dir){ "/run", 0700 };
	s.n_writable_dirs = 1;
	s.keep_fds[0] = (struct jail_fd){ efd, 2 };
	s.n_keep_fds = 1;
	s.rlimits[0] = (struct jail_rlimit){ RLIMIT_CORE, 0, 0 };
	s.n_rlimits = 1;

	if (jail_prepare(&s, &err) < 0)
		fail_msg("jail_prepare: %s", err.msg);
	if (jail_spawn(&s, &pid, &pidfd, &err) < 0)
		fail_msg("jail_spawn: %s", err.msg);
	live_add(pid);
	assert_int_equal(jail_host_path(&s, "/run/console.log", console, sizeof(console), &err), 0);
	/* Bounded wait for the guest's marker (30 s; it boots in ~3 s). */
	for (int i = 0; i < 300 && !ready; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			char *e = slurp(errlog), *c = slurp(console);

			fail_msg("qemu exited (status %d) before the marker; stderr:\n%s\nconsole:\n%s",
				 status, e ? e : "", c ? c : "");
		}
		ready = file_has(console, "VMLET-GUEST-READY");
		if (!ready)
			nanosleep(&ts, NULL);
	}
	if (!ready) {
		char *e = slurp(errlog);

		kill(pid, SIGKILL);
		wait_exit(pid, &status);
		fail_msg("no VMLET-GUEST-READY within 30 s; qemu stderr:\n%s", e ? e : "");
	}
	/* The running VMM, from outside. */
	status_field(pid, "Uid:", buf, sizeof(buf));
	assert_string_equal(buf, "200124\t200124\t200124\t200124");
	status_field(pid, "CapEff:", buf, sizeof(buf));
	assert_string_equal(buf, "0000000000000000");
	status_field(pid, "NoNewPrivs:", buf, sizeof(buf));
	assert_string_equal(buf, "1");
	assert_no_host_mounts();
	assert_ns_differs(pid, "mnt");
	assert_ns_differs(pid, "net");

	assert_int_equal(kill(pid, SIGKILL), 0);
	wait_exit(pid, &status);
	assert_true(WIFSIGNALED(status));
	close(pidfd);
	assert_no_host_mounts();
	if (jail_cleanup(jail_dir, &err) < 0)
		fail_msg("jail_cleanup: %s", err.msg);
	close(kfd);
	close(ifd);
	close(efd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hostile_specs_refused),
		cmocka_unit_test(host_path_and_policy),
		cmocka_unit_test_teardown(probe_is_jailed, kill_leftovers),
		cmocka_unit_test_teardown(probe_with_proc, kill_leftovers),
		cmocka_unit_test_teardown(spawn_while_threads_allocate, kill_leftovers),
		cmocka_unit_test_teardown(exec_failure_is_reported, kill_leftovers),
		cmocka_unit_test_teardown(bind_failure_is_reported, kill_leftovers),
		cmocka_unit_test(dirty_jail_dir_refused),
		cmocka_unit_test(cleanup_refuses_mount_points),
		cmocka_unit_test_teardown(qemu_boots_in_jail, kill_leftovers),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
