/* hostd/cgroup.c against the running kernel (root; SKIP otherwise) and
 * against crafted mountinfo files. Every cgroup lives under a root named
 * vmlet-test-<pid>, scrubbed (killed, thawed, removed) in the group
 * teardown even when a test failed, and at the next run if this one
 * crashed. The test process itself never joins a test cgroup: children do. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hostd/cgroup.h"
#include "shared/log.h"

#define MiB (UINT64_C(1) << 20)
#define KILL_TIMEOUT_MS 10000

static char root_name[64];
static struct cgroup_env env;
static bool have_env;
static char skip_reason[VMLET_ERR_MSG_MAX];
static char v2_mount[PATH_MAX]; /* any cgroup2 mount, even one without controllers */
static char tmpdir[] = "/tmp/test_hostd_cgroup.XXXXXX";

static const struct cgroup_limits small_limits = {
	.mem_bytes = 256 * MiB, .cpu_quota_us = 50000, .cpu_period_us = 100000, .pids_max = 16
};

/* ---- helpers ------------------------------------------------------------------ */

/* snprintf that refuses to truncate (a test path too long is a test bug). */
static __attribute__((format(printf, 3, 4))) void fmt(char *buf, size_t len, const char *f, ...)
{
	va_list ap;
	int n;

	va_start(ap, f);
	n = vsnprintf(buf, len, f, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len)
		abort();
}

static void require_env(void)
{
	if (!have_env) {
		print_message("skip: %s\n", skip_reason);
		skip();
	}
}

/* Test-side path (trusted strings only): <mount>/<root>[/<tenant>[/<instance>]]. */
static const char *cg_dir(char *buf, size_t len, const char *mount, const char *tenant,
			  const char *instance)
{
	fmt(buf, len, "%s/%s%s%s%s%s", mount, root_name, tenant ? "/" : "",
		 tenant ? tenant : "", instance ? "/" : "", instance ? instance : "");
	return buf;
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* First line of a file, without its newline ("" when unreadable). */
static const char *read_text(const char *path)
{
	static char buf[4096];
	FILE *f = fopen(path, "re");
	size_t n = 0;

	buf[0] = '\0';
	if (f) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

static const char *limit_file(const char *tenant, const char *instance, unsigned ctl,
			      const char *file)
{
	static char path[PATH_MAX + 64];
	char dir[PATH_MAX];

	for (unsigned i = 0; i < env.nhier; i++)
		if (env.hier[i].ctls & ctl) {
			cg_dir(dir, sizeof(dir), env.hier[i].mount, tenant, instance);
			fmt(path, sizeof(path), "%s/%s", dir, file);
			return read_text(path);
		}
	fail_msg("no hierarchy carries controller %#x", ctl);
	return "";
}

/* Directory entries of path (0 when missing). */
static size_t count_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	size_t n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (de->d_type == DT_DIR && strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static pid_t fork_sleeper(void)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		for (;;)
			pause();
	}
	return pid;
}

/* Lines of /proc/<pid>/cgroup ending in the instance's path. */
static int cgroup_lines_for(pid_t pid, const char *tenant, const char *instance)
{
	char path[64], want[256], line[1024];
	FILE *f;
	int n = 0;

	fmt(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	fmt(want, sizeof(want), ":/%s/%s/%s\n", root_name, tenant, instance);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		size_t l = strlen(line), w = strlen(want);

		if (l >= w && strcmp(line + l - w, want) == 0)
			n++;
	}
	fclose(f);
	return n;
}

static void reap_all(void)
{
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

/* ---- scrubbing (independent of the code under test) ----------------------------- */

static void write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd >= 0) {
		if (write(fd, text, strlen(text)) < 0) {
			/* best effort */
		}
		close(fd);
	}
}

static int scrub_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	char file[PATH_MAX + 32];
	FILE *f;
	int pid;

	if (type != FTW_DP)
		return 0;
	fmt(file, sizeof(file), "%s/freezer.state", path);
	write_text(file, "THAWED");
	fmt(file, sizeof(file), "%s/cgroup.kill", path);
	write_text(file, "1");
	fmt(file, sizeof(file), "%s/cgroup.procs", path);
	for (int round = 0; round < 500; round++) {
		bool any = false;

		f = fopen(file, "re");
		while (f && fscanf(f, "%d", &pid) == 1)
			if (pid != getpid()) {
				kill(pid, SIGKILL);
				any = true;
			}
		if (f)
			fclose(f);
		reap_all();
		if (rmdir(path) == 0 || errno == ENOENT)
			return 0;
		if (!any && errno != EBUSY)
			break;
		usleep(10000);
	}
	fprintf(stderr, "scrub: could not remove %s: %s\n", path, strerror(errno));
	return 0;
}

static void scrub_tree(const char *mount, const char *name)
{
	char path[PATH_MAX];

	fmt(path, sizeof(path), "%s/%s", mount, name);
	if (exists(path))
		nftw(path, scrub_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Trees of earlier runs that died before their teardown. */
static void scrub_stale(const char *mount)
{
	DIR *d = opendir(mount);
	struct dirent *de;
	char names[64][64];
	int n = 0, pid;

	if (!d)
		return;
	while ((de = readdir(d)) && n < 64)
		if (sscanf(de->d_name, "vmlet-test-%d", &pid) == 1 && pid != getpid() &&
		    kill(pid, 0) < 0 && errno == ESRCH)
			fmt(names[n++], sizeof(names[0]), "%s", de->d_name);
	closedir(d);
	for (int i = 0; i < n; i++)
		scrub_tree(mount, names[i]);
}

/* The first cgroup2 mount in mountinfo, whatever its controllers. */
static void find_v2_mount(void)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096], point[PATH_MAX];

	v2_mount[0] = '\0';
	while (f && fgets(line, sizeof(line), f)) {
		if (!strstr(line, " - cgroup2 "))
			continue;
		if (sscanf(line, "%*s %*s %*s %*s %4095s", point) == 1 && !strchr(point, '\\')) {
			fmt(v2_mount, sizeof(v2_mount), "%s", point);
			break;
		}
	}
	if (f)
		fclose(f);
}

static int group_setup(void **state)
{
	struct vmlet_err err;

	vlog_init("test_hostd_cgroup");
	if (!mkdtemp(tmpdir))
		return -1;
	if (geteuid() != 0) {
		fmt(skip_reason, sizeof(skip_reason), "needs root (creates cgroups)");
		return 0;
	}
	fmt(root_name, sizeof(root_name), "vmlet-test-%d", (int)getpid());
	/* Orphaned grandchildren (fork loop) come back to us to be reaped. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	find_v2_mount();
	if (cgroup_detect(root_name, CGROUP_MODE_AUTO, &env, &err) < 0) {
		fmt(skip_reason, sizeof(skip_reason), "no usable cgroups: %s", err.msg);
		return 0;
	}
	have_env = true;
	for (unsigned i = 0; i < env.nhier; i++)
		scrub_stale(env.hier[i].mount);
	if (v2_mount[0])
		scrub_stale(v2_mount);
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[128];

	if (have_env) {
		for (unsigned i = 0; i < env.nhier; i++)
			scrub_tree(env.hier[i].mount, root_name);
		cgroup_env_close(&env);
	}
	if (v2_mount[0] && root_name[0])
		scrub_tree(v2_mount, root_name);
	reap_all();
	fmt(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- detection ------------------------------------------------------------------ */

static void test_detect_here(void **state)
{
	struct cgroup_env forced;
	struct vmlet_err err;
	unsigned all = 0;

	require_env();
	if (cgroup_detect(root_name, CGROUP_MODE_V2, &forced, &err) == 0) {
		print_message("cgroup v2 with memory, cpu, pids at %s\n", forced.hier[0].mount);
		assert_int_equal(env.version, 2);
		cgroup_env_close(&forced);
		return;
	}
	/* This machine kind: v1 memory/cpu/pids/freezer, cgroup2 with hugetlb only. */
	print_message("v2 not usable here (%s); expecting v1\n", err.msg);
	assert_int_equal(env.version, 1);
	assert_string_equal(env.root, root_name);
	for (unsigned i = 0; i < env.nhier; i++) {
		char probe[PATH_MAX + 64];

		assert_int_equal(all & env.hier[i].ctls, 0); /* each controller once */
		all |= env.hier[i].ctls;
		fmt(probe, sizeof(probe), "%s/cgroup.procs", env.hier[i].mount);
		assert_true(exists(probe));
		if (env.hier[i].ctls & CGROUP_CTL_MEMORY) {
			fmt(probe, sizeof(probe), "%s/memory.limit_in_bytes", env.hier[i].mount);
			assert_true(exists(probe));
		}
		fmt(probe, sizeof(probe), "%s/tasks", env.hier[i].mount); /* v1 only */
		assert_true(exists(probe));
	}
	assert_int_equal(all & CGROUP_CTL_NEEDED, CGROUP_CTL_NEEDED);
	assert_int_equal(env.has_freezer, (all & CGROUP_CTL_FREEZER) != 0);
	assert_int_equal(cgroup_detect(root_name, CGROUP_MODE_V1, &forced, &err), 0);
	assert_int_equal(forced.version, 1);
	cgroup_env_close(&forced);
}

static const char *fake_dir(const char *name)
{
	static char path[PATH_MAX];

	fmt(path, sizeof(path), "%s/%s", tmpdir, name);
	mkdir(path, 0755);
	return path;
}

static void put_file(const char *dir, const char *name, const char *text)
{
	char path[PATH_MAX + 64];
	FILE *f;

	fmt(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* mountinfo with a cgroup2 mount at <tmp>/v2 and the given v1 lines. */
static const char *fake_mountinfo(const char *v1_lines)
{
	static char path[PATH_MAX];
	FILE *f;

	fmt(path, sizeof(path), "%s/mountinfo", tmpdir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
		   "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
		   "41 31 0:38 / %s/v2 rw,relatime shared:9 master:2 - cgroup2 cgroup2 rw\n"
		   "%s",
		tmpdir, v1_lines);
	fclose(f);
	return path;
}

static void test_detect_crafted(void **state)
{
	char v1[4096], v2[PATH_MAX];
	struct cgroup_env e;
	struct vmlet_err err;
	const char *mi;

	fmt(v2, sizeof(v2), "%s", fake_dir("v2"));
	fake_dir("mem");
	fake_dir("cpu");
	fake_dir("pids dir");
	fake_dir("fz");
	fmt(v1, sizeof(v1),
		 "32 31 0:29 / %s/cpu rw - cgroup cgroup rw,cpu,cpuacct\n"
		 "35 31 0:32 / %s/mem rw shared:3 - cgroup cgroup rw,memory\n"
		 "39 31 0:36 / %s/pids\\040dir rw - cgroup cgroup rw,pids\n"
		 "37 31 0:34 / %s/fz rw - cgroup cgroup rw,freezer\n"
		 "99 31 0:99 / %s/mem2 rw - cgroup cgroup rw,memory\n"
		 "garbage line without separator\n",
		 tmpdir, tmpdir, tmpdir, tmpdir, tmpdir);

	/* cgroup2 offering the three controllers wins. */
	put_file(v2, "cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma\n");
	mi = fake_mountinfo(v1);
	assert_int_equal(cgroup_detect_from(mi, "vmlet", CGROUP_MODE_AUTO, &e, &err), 0);
	assert_int_equal(e.version, 2);
	assert_int_equal(e.nhier, 1);
	assert_string_equal(e.hier[0].mount, v2);
	cgroup_env_close(&e);
	/* ... unless v1 is forced: every hierarchy recorded, comounts once. */
	assert_int_equal(cgroup_detect_from(mi, "vmlet", CGROUP_MODE_V1, &e, &err), 0);
	assert_int_equal(e.version, 1);
	assert_int_equal(e.nhier, 4);
	assert_true(e.has_freezer);
	for (unsigned i = 0; i < e.nhier; i++) {
		char want[PATH_MAX];

		if (e.hier[i].ctls == CGROUP_CTL_PIDS) {
			fmt(want, sizeof(want), "%s/pids dir", tmpdir); /* \040 decoded */
			assert_string_equal(e.hier[i].mount, want);
		}
		if (e.hier[i].ctls == CGROUP_CTL_MEMORY) { /* the first memory mount */
			fmt(want, sizeof(want), "%s/mem", tmpdir);
			assert_string_equal(e.hier[i].mount, want);
		}
	}
	cgroup_env_close(&e);

	/* cgroup2 with hugetlb only (this machine kind): auto falls back to v1,
	 * forcing v2 names what is missing. */
	put_file(v2, "cgroup.controllers", "hugetlb\n");
	assert_int_equal(cgroup_detect_from(mi, "vmlet", CGROUP_MODE_AUTO, &e, &err), 0);
	assert_int_equal(e.version, 1);
	cgroup_env_close(&e);
	assert_int_equal(cgroup_detect_from(mi, "vmlet", CGROUP_MODE_V2, &e, &err), -1);
	assert_int_equal(err.code, VMLET_E_UNAVAILABLE);
	assert_non_null(strstr(err.msg, "lacks memory cpu pids"));
	assert_non_null(strstr(err.msg, "\"hugetlb\""));

	/* memory,pids comounted: two hierarchies, no freezer. */
	fmt(v1, sizeof(v1),
		 "35 31 0:32 / %s/mem rw - cgroup cgroup rw,memory,pids\n"
		 "32 31 0:29 / %s/cpu rw - cgroup cgroup rw,cpuacct,cpu\n",
		 tmpdir, tmpdir);
	mi = fake_mountinfo(v1);
	assert_int_equal(cgroup_detect_from(mi, "vmlet", CGROUP_MODE_AUTO, &e, &err), 0);
	assert_int_equal(e.version, 1);
	assert_int_equal(e.nhier, 2);
	assert_false(e.has_freezer);
	cgroup_env_close(&e);

	/* Neither works: the error says what each lacks. */
	fmt(v1, sizeof(v1), "32 31 0:29 / %s/cpu rw - cgroup cgroup rw,cpu,cpuacct\n",
		 tmpdir);
	mi = fake_mountinfo(v1);
	assert_int_equal(cgroup_detect_from(mi, "vmlet", CGROUP_MODE_AUTO, &e, &err), -1);
	assert_int_equal(err.code, VMLET_E_UNAVAILABLE);
	assert_non_null(strstr(err.msg, "lacks memory cpu pids"));
	assert_non_null(strstr(err.msg, "no cgroup v1 hierarchy for memory pids"));
	assert_int_equal(cgroup_detect_from(mi, "vmlet", CGROUP_MODE_V1, &e, &err), -1);
	assert_non_null(strstr(err.msg, "cgroup v1 unusable"));

	/* A mount point that does not exist is an error naming it. */
	fmt(v1, sizeof(v1),
		 "35 31 0:32 / %s/gone rw - cgroup cgroup rw,memory,pids,cpu\n", tmpdir);
	mi = fake_mountinfo(v1);
	assert_int_equal(cgroup_detect_from(mi, "vmlet", CGROUP_MODE_V1, &e, &err), -1);
	assert_non_null(strstr(err.msg, "/gone"));

	assert_int_equal(cgroup_detect_from("/nonexistent/mountinfo", "vmlet", CGROUP_MODE_AUTO,
					    &e, &err), -1);
	assert_non_null(strstr(err.msg, "/nonexistent/mountinfo"));
}

static void test_detect_root_names(void **state)
{
	static const char *bad[] = {
		"", "../x", "..", ".", "/vmlet", "vmlet/", "a//b", "a/../b", "a/./b", "vm let",
		"vm\nlet", "a/b/c/d/e/f/g/h/i",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", /* 64 */
		NULL,
	};
	char v1[1024];
	struct cgroup_env e;
	struct vmlet_err err;
	const char *mi;

	fake_dir("mem");
	fmt(v1, sizeof(v1), "35 31 0:32 / %s/mem rw - cgroup cgroup rw,memory,pids,cpu\n",
		 tmpdir);
	mi = fake_mountinfo(v1);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(cgroup_detect_from(mi, bad[i], CGROUP_MODE_V1, &e, &err), -1);
		assert_int_equal(err.code, VMLET_E_INVALID);
		assert_non_null(strstr(err.msg, "cgroup_root"));
	}
	assert_int_equal(cgroup_detect_from(mi, "vmlet.slice/vmlet_1-x", CGROUP_MODE_V1, &e, &err),
			 0);
	assert_string_equal(e.root, "vmlet.slice/vmlet_1-x");
	cgroup_env_close(&e);
}

static void assert_gone(const char *tenant, const char *instance);

/* ---- limits ---------------------------------------------------------------------- */

static void test_create_reads_back(void **state)
{
	struct cgroup_limits l = small_limits;
	struct cgroup_stats st;
	struct vmlet_err err;

	require_env();
	assert_int_equal(cgroup_create(&env, "t-create", "i-0000000a", &l, &err), 0);
	if (env.version == 2) {
		assert_string_equal(limit_file("t-create", "i-0000000a", CGROUP_CTL_MEMORY,
					       "memory.max"), "268435456");
		assert_string_equal(limit_file("t-create", "i-0000000a", CGROUP_CTL_CPU,
					       "cpu.max"), "50000 100000");
	} else {
		assert_string_equal(limit_file("t-create", "i-0000000a", CGROUP_CTL_MEMORY,
					       "memory.limit_in_bytes"), "268435456");
		assert_string_equal(limit_file("t-create", "i-0000000a", CGROUP_CTL_CPU,
					       "cpu.cfs_quota_us"), "50000");
		assert_string_equal(limit_file("t-create", "i-0000000a", CGROUP_CTL_CPU,
					       "cpu.cfs_period_us"), "100000");
	}
	assert_string_equal(limit_file("t-create", "i-0000000a", CGROUP_CTL_PIDS, "pids.max"),
			    "16");
	assert_int_equal(cgroup_read_stats(&env, "t-create", "i-0000000a", &st, &err), 0);
	assert_int_equal(st.pids, 0);

	/* Create again with other limits: idempotent, the new values hold. */
	l.mem_bytes = 128 * MiB;
	l.cpu_quota_us = 200000;
	l.cpu_period_us = 50000;
	l.pids_max = 32;
	assert_int_equal(cgroup_create(&env, "t-create", "i-0000000a", &l, &err), 0);
	assert_string_equal(limit_file("t-create", "i-0000000a", CGROUP_CTL_PIDS, "pids.max"),
			    "32");
	assert_string_equal(limit_file("t-create", "i-0000000a", CGROUP_CTL_CPU,
				       env.version == 2 ? "cpu.max" : "cpu.cfs_quota_us"),
			    env.version == 2 ? "200000 50000" : "200000");
	assert_int_equal(cgroup_remove(&env, "t-create", "i-0000000a", KILL_TIMEOUT_MS, &err), 0);
}

/* The kernel keeps memory limits in pages: a non-aligned request reads back
 * rounded down, which must pass, and anything else must fail naming the
 * file and both values. */
static void test_memory_rounding(void **state)
{
	struct cgroup_limits l = small_limits;
	long page = sysconf(_SC_PAGESIZE);
	char want[32];
	struct vmlet_err err;

	require_env();
	l.mem_bytes = 64 * MiB + 123;
	assert_int_equal(cgroup_create(&env, "t-round", "i-0000000b", &l, &err), 0);
	fmt(want, sizeof(want), "%llu",
		 (unsigned long long)(l.mem_bytes / (uint64_t)page * (uint64_t)page));
	assert_string_equal(limit_file("t-round", "i-0000000b", CGROUP_CTL_MEMORY,
				       env.version == 2 ? "memory.max" : "memory.limit_in_bytes"),
			    want);
	assert_int_equal(cgroup_remove(&env, "t-round", "i-0000000b", KILL_TIMEOUT_MS, &err), 0);
}

/* The comparison itself (no root needed). */
static void test_readback_check(void **state)
{
	struct vmlet_err err;

	assert_int_equal(cgroup_readback_check("/cg/memory.max", "67108987", "67108864", true,
					       "67108864\n", &err), 0);
	assert_int_equal(cgroup_readback_check("/cg/memory.max", "67108987", "67108864", true,
					       "67104768\n", &err), -1);
	assert_int_equal(err.code, VMLET_E_INTERNAL);
	assert_non_null(strstr(err.msg, "/cg/memory.max"));
	assert_non_null(strstr(err.msg, "wrote 67108987"));
	assert_non_null(strstr(err.msg, "read back \"67104768\""));
	assert_non_null(strstr(err.msg, "rounds memory limits down"));
	/* Unrounded value where the kernel rounds: also a mismatch. */
	assert_int_equal(cgroup_readback_check("/cg/memory.max", "67108987", "67108864", true,
					       "67108987", &err), -1);
	assert_int_equal(cgroup_readback_check("/cg/pids.max", "8", "8", false, "max\n", &err), -1);
	assert_non_null(strstr(err.msg, "/cg/pids.max: wrote 8, read back \"max\""));
	assert_null(strstr(err.msg, "rounds"));
	assert_int_equal(cgroup_readback_check("/cg/cpu.max", "50000 100000", "50000 100000",
					       false, "50000 100000\n", &err), 0);
	assert_int_equal(cgroup_readback_check("/cg/cpu.max", "50000 100000", "50000 100000",
					       false, "max 100000\n", &err), -1);
}

static void test_bad_limits_refused(void **state)
{
	static const struct {
		struct cgroup_limits l;
		const char *field;
	} bad[] = {
		{ { 0, 50000, 100000, 16 }, "limits.mem_bytes" },
		{ { 1024, 50000, 100000, 16 }, "limits.mem_bytes" },
		{ { UINT64_MAX, 50000, 100000, 16 }, "limits.mem_bytes" },
		{ { 64 * MiB, 50000, 999, 16 }, "limits.cpu_period_us" },
		{ { 64 * MiB, 50000, 1000001, 16 }, "limits.cpu_period_us" },
		{ { 64 * MiB, 999, 100000, 16 }, "limits.cpu_quota_us" },
		{ { 64 * MiB, 100000ull * 1025, 100000, 16 }, "limits.cpu_quota_us" },
		{ { 64 * MiB, 50000, 100000, 0 }, "limits.pids_max" },
		{ { 64 * MiB, 50000, 100000, 4194305 }, "limits.pids_max" },
	};
	char dir[PATH_MAX];
	struct vmlet_err err;

	require_env();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(cgroup_create(&env, "t-limits", "i-0000000c", &bad[i].l, &err), -1);
		assert_int_equal(err.code, VMLET_E_INVALID);
		assert_non_null(strstr(err.msg, bad[i].field));
	}
	assert_int_equal(cgroup_create(&env, "t-limits", "i-0000000c", NULL, &err), -1);
	for (unsigned i = 0; i < env.nhier; i++)
		assert_false(exists(cg_dir(dir, sizeof(dir), env.hier[i].mount, "t-limits", NULL)));
}

/* A limit the kernel refuses after the directories exist: v1 rejects a
 * child quota above its parent's. create fails naming the file and errno
 * and removes the instance directories it made. */
static void test_failed_create_undoes(void **state)
{
	struct cgroup_limits l = small_limits;
	char dir[PATH_MAX], quota[PATH_MAX + 32];
	struct vmlet_err err;
	int cpu = -1;

	require_env();
	if (env.version != 1) {
		print_message("skip: only cgroup v1 refuses a child quota above its parent's\n");
		skip();
	}
	for (unsigned i = 0; i < env.nhier; i++)
		if (env.hier[i].ctls & CGROUP_CTL_CPU)
			cpu = (int)i;
	assert_true(cpu >= 0);
	/* On a fresh tenant directory: the kernel may still count children
	 * removed a moment ago against a parent's new quota. */
	cg_dir(dir, sizeof(dir), env.hier[cpu].mount, NULL, NULL);
	assert_true(mkdir(dir, 0755) == 0 || errno == EEXIST);
	cg_dir(dir, sizeof(dir), env.hier[cpu].mount, "t-undo", NULL);
	assert_int_equal(mkdir(dir, 0755), 0);
	fmt(quota, sizeof(quota), "%s/cpu.cfs_quota_us", dir);
	write_text(quota, "10000");
	assert_string_equal(read_text(quota), "10000");
	l.cpu_quota_us = 50000;
	err.code = 0;
	assert_int_equal(cgroup_create(&env, "t-undo", "i-000000aa", &l, &err), -1);
	print_message("refused as expected: %s\n", err.msg);
	assert_int_equal(err.code, VMLET_E_INTERNAL);
	assert_int_equal(err.sys_errno, EINVAL);
	assert_non_null(strstr(err.msg, "i-000000aa/cpu.cfs_quota_us"));
	assert_gone("t-undo", "i-000000aa");
	assert_int_equal(cgroup_remove(&env, "t-undo", "i-000000aa", KILL_TIMEOUT_MS, &err), 0);
	assert_gone("t-undo", NULL);
}

/* ---- hostile ids ----------------------------------------------------------------- */

struct dir_counts {
	size_t mount[CGROUP_MAX_HIER], root[CGROUP_MAX_HIER], tenant[CGROUP_MAX_HIER];
};

static void snapshot_dirs(struct dir_counts *c)
{
	char dir[PATH_MAX];

	for (unsigned i = 0; i < env.nhier; i++) {
		c->mount[i] = count_entries(env.hier[i].mount);
		c->root[i] = count_entries(cg_dir(dir, sizeof(dir), env.hier[i].mount, NULL, NULL));
		c->tenant[i] = count_entries(cg_dir(dir, sizeof(dir), env.hier[i].mount, "t-ok",
						    NULL));
	}
}

static void test_bad_ids_refused(void **state)
{
	static const struct {
		const char *tenant, *instance, *field;
	} bad[] = {
		{ "../x", "i-0000000d", "tenant_id" },
		{ "A", "i-0000000d", "tenant_id" },
		{ "", "i-0000000d", "tenant_id" },
		{ NULL, "i-0000000d", "tenant_id" },
		{ "t-ok/../../x", "i-0000000d", "tenant_id" },
		{ "-t", "i-0000000d", "tenant_id" },
		{ "t-ok", "../x", "instance_id" },
		{ "t-ok", "A", "instance_id" },
		{ "t-ok", "", "instance_id" },
		{ "t-ok", NULL, "instance_id" },
		{ "t-ok", "i-0000000D", "instance_id" },
		{ "t-ok", "i-0000000d/..", "instance_id" },
		{ "t-ok", "i-000000001", "instance_id" },
		{ "t-ok", "x", "instance_id" },
	};
	struct cgroup_limits l = small_limits;
	struct dir_counts before = { 0 }, after = { 0 };
	struct cgroup_procs_fds fds;
	struct cgroup_stats st;
	struct vmlet_err err;
	char dir[PATH_MAX + 8];
	char **ids;
	size_t n;

	require_env();
	/* A real tenant exists, so "../x" from inside it would have somewhere to go. */
	assert_int_equal(cgroup_create(&env, "t-ok", "i-00000001", &l, &err), 0);
	snapshot_dirs(&before);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *t = bad[i].tenant, *in = bad[i].instance;

#define REFUSED(call)                                                         \
	do {                                                                  \
		err.code = 0;                                                 \
		assert_int_equal((call), -1);                                 \
		assert_int_equal(err.code, VMLET_E_INVALID);                  \
		assert_non_null(strstr(err.msg, bad[i].field));               \
	} while (0)
		REFUSED(cgroup_create(&env, t, in, &l, &err));
		REFUSED(cgroup_add_pid(&env, t, in, getpid(), &err));
		REFUSED(cgroup_open_procs_fds(&env, t, in, &fds, &err));
		assert_int_equal(fds.n, 0);
		REFUSED(cgroup_kill_all(&env, t, in, KILL_TIMEOUT_MS, &err));
		REFUSED(cgroup_remove(&env, t, in, KILL_TIMEOUT_MS, &err));
		REFUSED(cgroup_read_stats(&env, t, in, &st, &err));
		if (strcmp(bad[i].field, "tenant_id") == 0 && t)
			REFUSED(cgroup_list(&env, t, &ids, &n, &err));
#undef REFUSED
	}
	snapshot_dirs(&after);
	assert_memory_equal(&before, &after, sizeof(before));
	for (unsigned i = 0; i < env.nhier; i++) {
		fmt(dir, sizeof(dir), "%s/x", env.hier[i].mount);
		assert_false(exists(dir));
		fmt(dir, sizeof(dir), "%s/%s/x", env.hier[i].mount, root_name);
		assert_false(exists(dir));
	}
	/* A pid that is not one. */
	assert_int_equal(cgroup_add_pid(&env, "t-ok", "i-00000001", 0, &err), -1);
	assert_int_equal(err.code, VMLET_E_INVALID);
	assert_int_equal(cgroup_add_pid(&env, "t-ok", "i-00000001", -5, &err), -1);
	assert_int_equal(err.code, VMLET_E_INVALID);
	assert_int_equal(cgroup_remove(&env, "t-ok", "i-00000001", KILL_TIMEOUT_MS, &err), 0);
}

static void test_missing_instance(void **state)
{
	struct cgroup_procs_fds fds;
	struct cgroup_stats st;
	struct vmlet_err err;
	char **ids;
	size_t n;

	require_env();
	/* Nothing to kill or remove: done. Nothing to read or join: not found. */
	assert_int_equal(cgroup_kill_all(&env, "t-none", "i-0000dead", KILL_TIMEOUT_MS, &err), 0);
	assert_int_equal(cgroup_remove(&env, "t-none", "i-0000dead", KILL_TIMEOUT_MS, &err), 0);
	assert_int_equal(cgroup_read_stats(&env, "t-none", "i-0000dead", &st, &err), -1);
	assert_int_equal(err.code, VMLET_E_NOT_FOUND);
	assert_int_equal(cgroup_add_pid(&env, "t-none", "i-0000dead", getpid(), &err), -1);
	assert_int_equal(err.code, VMLET_E_NOT_FOUND);
	assert_int_equal(cgroup_open_procs_fds(&env, "t-none", "i-0000dead", &fds, &err), -1);
	assert_int_equal(fds.n, 0);
	assert_int_equal(cgroup_list(&env, "t-none", &ids, &n, &err), 0);
	assert_int_equal(n, 0);
	cgroup_list_free(ids, n);
}

/* ---- processes --------------------------------------------------------------------- */

struct fork_report {
	int join_rc, forked, eagain, other;
};

/* The child of the fork-loop test: joins through the pre-opened fds (as the
 * jail will), then forks until the pids limit says no. */
static void fork_loop_child(const struct cgroup_procs_fds *fds, int report_fd)
{
	struct fork_report r = { 0 };

	r.join_rc = cgroup_procs_fds_join(fds);
	for (int i = 0; r.join_rc == 0 && i < 32; i++) {
		pid_t p = fork();

		if (p == 0) {
			for (;;)
				pause();
		}
		if (p > 0)
			r.forked++;
		else if (errno == EAGAIN)
			r.eagain++;
		else
			r.other++;
	}
	if (write(report_fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
		_exit(3);
	for (;;)
		pause();
}

static void test_pids_max_holds(void **state)
{
	struct cgroup_limits l = small_limits;
	struct cgroup_procs_fds fds;
	struct fork_report r;
	struct cgroup_stats st;
	struct vmlet_err err;
	int pipefd[2], status;
	pid_t child;

	require_env();
	l.pids_max = 8;
	assert_int_equal(cgroup_create(&env, "t-forks", "i-000000b1", &l, &err), 0);
	assert_int_equal(cgroup_open_procs_fds(&env, "t-forks", "i-000000b1", &fds, &err), 0);
	assert_int_equal(fds.n, env.nhier);
	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		close(pipefd[0]);
		fork_loop_child(&fds, pipefd[1]);
	}
	close(pipefd[1]);
	cgroup_procs_fds_close(&fds);
	assert_int_equal(read(pipefd[0], &r, sizeof(r)), (ssize_t)sizeof(r));
	close(pipefd[0]);
	print_message("fork loop: %d forked, %d EAGAIN, %d other errors\n", r.forked, r.eagain,
		      r.other);
	assert_int_equal(r.join_rc, 0);
	assert_int_equal(r.other, 0);
	assert_true(r.eagain >= 1);
	assert_int_equal(r.forked, 7); /* the child itself is the 8th */
	assert_int_equal(cgroup_read_stats(&env, "t-forks", "i-000000b1", &st, &err), 0);
	assert_true(st.pids <= 8);
	assert_int_equal(st.pids, (uint64_t)r.forked + 1);
	assert_true(strtoull(limit_file("t-forks", "i-000000b1", CGROUP_CTL_PIDS, "pids.current"),
			     NULL, 10) <= 8);
	assert_int_equal(cgroup_lines_for(child, "t-forks", "i-000000b1"), (int)env.nhier);

	assert_int_equal(cgroup_kill_all(&env, "t-forks", "i-000000b1", KILL_TIMEOUT_MS, &err), 0);
	assert_string_equal(limit_file("t-forks", "i-000000b1", CGROUP_CTL_PIDS, "cgroup.procs"),
			    "");
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
	/* The grandchildren were re-parented to us (subreaper); pids.current
	 * counts a task until it is reaped, so reap them all before checking. */
	while (waitpid(-1, &status, 0) > 0)
		assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	assert_int_equal(errno, ECHILD);
	assert_int_equal(cgroup_read_stats(&env, "t-forks", "i-000000b1", &st, &err), 0);
	assert_int_equal(st.pids, 0);
	assert_int_equal(cgroup_remove(&env, "t-forks", "i-000000b1", KILL_TIMEOUT_MS, &err), 0);
}

static void test_kill_all_sleeper(void **state)
{
	struct cgroup_limits l = small_limits;
	struct vmlet_err err;
	int status;
	pid_t child;

	require_env();
	assert_int_equal(cgroup_create(&env, "t-kill", "i-000000d1", &l, &err), 0);
	child = fork_sleeper();
	assert_int_equal(cgroup_add_pid(&env, "t-kill", "i-000000d1", child, &err), 0);
	assert_int_equal(cgroup_lines_for(child, "t-kill", "i-000000d1"), (int)env.nhier);
	assert_int_equal(cgroup_kill_all(&env, "t-kill", "i-000000d1", KILL_TIMEOUT_MS, &err), 0);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
	assert_string_equal(limit_file("t-kill", "i-000000d1", CGROUP_CTL_PIDS, "cgroup.procs"),
			    "");
	if (env.has_freezer) /* never left frozen */
		assert_string_equal(limit_file("t-kill", "i-000000d1", CGROUP_CTL_FREEZER,
					       "freezer.state"), "THAWED");
	/* Empty already: still fine. */
	assert_int_equal(cgroup_kill_all(&env, "t-kill", "i-000000d1", KILL_TIMEOUT_MS, &err), 0);
	assert_int_equal(cgroup_remove(&env, "t-kill", "i-000000d1", KILL_TIMEOUT_MS, &err), 0);
}

/* A caller inside the cgroup is refused before anything is frozen or
 * killed. Run in a child; the parent's wait is only a guard against a
 * regression freezing the child forever. */
static void test_refuses_own_cgroup(void **state)
{
	struct cgroup_limits l = small_limits;
	struct vmlet_err err;
	int status = 0;
	pid_t child, w = 0;

	require_env();
	assert_int_equal(cgroup_create(&env, "t-self", "i-000000e1", &l, &err), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		struct vmlet_err e;

		if (cgroup_add_pid(&env, "t-self", "i-000000e1", getpid(), &e) < 0)
			_exit(2);
		if (cgroup_kill_all(&env, "t-self", "i-000000e1", 1000, &e) == 0)
			_exit(3);
		_exit(e.code == VMLET_E_CONFLICT && strstr(e.msg, "refusing") ? 0 : 4);
	}
	for (int i = 0; i < 6000 && (w = waitpid(child, &status, WNOHANG)) == 0; i++)
		usleep(10000);
	if (w == 0) {
		char dir[PATH_MAX], state_file[PATH_MAX + 16];

		for (unsigned i = 0; i < env.nhier; i++)
			if (env.hier[i].ctls & CGROUP_CTL_FREEZER) {
				cg_dir(dir, sizeof(dir), env.hier[i].mount, "t-self", "i-000000e1");
				fmt(state_file, sizeof(state_file), "%s/freezer.state", dir);
				write_text(state_file, "THAWED");
			}
		kill(child, SIGKILL);
		waitpid(child, &status, 0);
		fail_msg("child did not finish: it froze or killed itself");
	}
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(cgroup_remove(&env, "t-self", "i-000000e1", KILL_TIMEOUT_MS, &err), 0);
}

static void test_join_fds_errors(void **state)
{
	struct cgroup_procs_fds fds = { .n = 1, .fd = { -1, -1, -1, -1 } };

	assert_int_equal(cgroup_procs_fds_join(&fds), -EBADF);
	fds.n = 0;
	assert_int_equal(cgroup_procs_fds_join(&fds), 0);
}

/* ---- removal and listing ------------------------------------------------------------- */

static bool list_has(char **ids, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(ids[i], id) == 0)
			return true;
	return false;
}

static void assert_gone(const char *tenant, const char *instance)
{
	char dir[PATH_MAX];

	for (unsigned i = 0; i < env.nhier; i++)
		assert_false(exists(cg_dir(dir, sizeof(dir), env.hier[i].mount, tenant, instance)));
}

static void test_remove_leaves_nothing(void **state)
{
	struct cgroup_limits l = small_limits;
	struct vmlet_err err;
	char **ids;
	size_t n;
	int status;
	pid_t child;

	require_env();
	assert_int_equal(cgroup_create(&env, "t-rm", "i-000000f1", &l, &err), 0);
	assert_int_equal(cgroup_create(&env, "t-rm", "i-000000f2", &l, &err), 0);
	child = fork_sleeper();
	assert_int_equal(cgroup_add_pid(&env, "t-rm", "i-000000f1", child, &err), 0);

	assert_int_equal(cgroup_remove(&env, "t-rm", "i-000000f1", KILL_TIMEOUT_MS, &err), 0);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFSIGNALED(status));
	assert_gone("t-rm", "i-000000f1");
	assert_int_equal(cgroup_list(&env, "t-rm", &ids, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ids[0], "i-000000f2");
	cgroup_list_free(ids, n);

	/* The last instance takes the tenant directory with it, everywhere. */
	assert_int_equal(cgroup_remove(&env, "t-rm", "i-000000f2", KILL_TIMEOUT_MS, &err), 0);
	assert_gone("t-rm", NULL);
	assert_int_equal(cgroup_list(&env, NULL, &ids, &n, &err), 0);
	assert_false(list_has(ids, n, "t-rm"));
	cgroup_list_free(ids, n);
	/* Idempotent. */
	assert_int_equal(cgroup_remove(&env, "t-rm", "i-000000f2", KILL_TIMEOUT_MS, &err), 0);
}

static void test_list(void **state)
{
	struct cgroup_limits l = small_limits;
	char dir[PATH_MAX], junk[PATH_MAX + 32];
	struct vmlet_err err;
	char **ids;
	size_t n;

	require_env();
	assert_int_equal(cgroup_create(&env, "t-list", "i-00000002", &l, &err), 0);
	assert_int_equal(cgroup_create(&env, "t-list", "i-00000001", &l, &err), 0);
	/* Not vmlet's: a directory whose name is no instance id. */
	cg_dir(dir, sizeof(dir), env.hier[0].mount, "t-list", NULL);
	fmt(junk, sizeof(junk), "%s/Not_An_Id", dir);
	assert_int_equal(mkdir(junk, 0755), 0);
	/* v1: a half-made instance (one hierarchy only) still shows up. */
	if (env.nhier > 1) {
		char half[PATH_MAX + 32];

		cg_dir(dir, sizeof(dir), env.hier[env.nhier - 1].mount, "t-list", NULL);
		fmt(half, sizeof(half), "%s/i-00000003", dir);
		assert_int_equal(mkdir(half, 0755), 0);
	}
	assert_int_equal(cgroup_list(&env, "t-list", &ids, &n, &err), 0);
	assert_int_equal(n, env.nhier > 1 ? 3 : 2);
	assert_string_equal(ids[0], "i-00000001");
	assert_string_equal(ids[1], "i-00000002");
	if (env.nhier > 1)
		assert_string_equal(ids[2], "i-00000003");
	cgroup_list_free(ids, n);
	assert_int_equal(cgroup_list(&env, NULL, &ids, &n, &err), 0);
	assert_true(list_has(ids, n, "t-list"));
	cgroup_list_free(ids, n);

	assert_int_equal(rmdir(junk), 0);
	assert_int_equal(cgroup_remove(&env, "t-list", "i-00000001", KILL_TIMEOUT_MS, &err), 0);
	assert_int_equal(cgroup_remove(&env, "t-list", "i-00000002", KILL_TIMEOUT_MS, &err), 0);
	assert_int_equal(cgroup_remove(&env, "t-list", "i-00000003", KILL_TIMEOUT_MS, &err), 0);
	assert_gone("t-list", NULL);
}

/* ---- cgroup v2 -------------------------------------------------------------------------- */

/* The whole v2 path; needs a cgroup2 hierarchy offering memory, cpu, pids. */
static void test_v2_full(void **state)
{
	struct cgroup_limits l = small_limits;
	struct cgroup_env e2;
	struct vmlet_err err;
	char dir[PATH_MAX], file[PATH_MAX + 32];
	int status;
	pid_t child;

	if (geteuid() != 0) {
		print_message("skip: needs root (creates cgroups)\n");
		skip();
	}
	if (cgroup_detect(root_name, CGROUP_MODE_V2, &e2, &err) < 0) {
		print_message("skip: %s\n", err.msg);
		skip();
	}
	assert_int_equal(cgroup_create(&e2, "t-v2", "i-000000a2", &l, &err), 0);
	/* Controllers enabled from the vmlet root down. */
	fmt(file, sizeof(file), "%s/cgroup.subtree_control",
		 cg_dir(dir, sizeof(dir), e2.hier[0].mount, NULL, NULL));
	assert_non_null(strstr(read_text(file), "memory"));
	fmt(file, sizeof(file), "%s/cgroup.subtree_control",
		 cg_dir(dir, sizeof(dir), e2.hier[0].mount, "t-v2", NULL));
	assert_non_null(strstr(read_text(file), "pids"));
	cg_dir(dir, sizeof(dir), e2.hier[0].mount, "t-v2", "i-000000a2");
	fmt(file, sizeof(file), "%s/cpu.max", dir);
	assert_string_equal(read_text(file), "50000 100000");
	fmt(file, sizeof(file), "%s/memory.max", dir);
	assert_string_equal(read_text(file), "268435456");
	fmt(file, sizeof(file), "%s/pids.max", dir);
	assert_string_equal(read_text(file), "16");
	child = fork_sleeper();
	assert_int_equal(cgroup_add_pid(&e2, "t-v2", "i-000000a2", child, &err), 0);
	assert_int_equal(cgroup_remove(&e2, "t-v2", "i-000000a2", KILL_TIMEOUT_MS, &err), 0);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFSIGNALED(status));
	assert_false(exists(dir));
	cgroup_env_close(&e2);
}

/* v2 kill and removal do not need controllers: run them on whatever
 * cgroup2 mount exists (here: hugetlb only), with the env filled by hand
 * the way cgroup_detect would if the controllers were there. create must
 * refuse on it, naming what is missing, and make nothing. */
static void test_v2_kill_without_controllers(void **state)
{
	struct cgroup_limits l = small_limits;
	struct cgroup_env e2 = { 0 }, probe;
	struct vmlet_err err;
	char dir[PATH_MAX], tdir[PATH_MAX], file[PATH_MAX + 32];
	int status;
	pid_t child;

	if (geteuid() != 0) {
		print_message("skip: needs root (creates cgroups)\n");
		skip();
	}
	if (!v2_mount[0]) {
		print_message("skip: no cgroup2 mount\n");
		skip();
	}
	e2.version = 2;
	e2.nhier = 1;
	fmt(e2.root, sizeof(e2.root), "%s", root_name);
	for (unsigned i = 0; i < CGROUP_MAX_HIER; i++)
		e2.hier[i].mount_fd = -1;
	fmt(e2.hier[0].mount, sizeof(e2.hier[0].mount), "%s", v2_mount);
	e2.hier[0].ctls = CGROUP_CTL_NEEDED;
	e2.hier[0].mount_fd = open(v2_mount, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(e2.hier[0].mount_fd >= 0);
	if (cgroup_detect(root_name, CGROUP_MODE_V2, &probe, &err) == 0) {
		cgroup_env_close(&probe); /* has controllers: test_v2_full covers create */
	} else {
		assert_int_equal(cgroup_create(&e2, "t-v2k", "i-000000c2", &l, &err), -1);
		assert_int_equal(err.code, VMLET_E_UNAVAILABLE);
		assert_non_null(strstr(err.msg, "cgroup.controllers lacks"));
		print_message("create refused as expected: %s\n", err.msg);
		assert_false(exists(cg_dir(dir, sizeof(dir), v2_mount, NULL, NULL)));
	}

	cg_dir(tdir, sizeof(tdir), v2_mount, "t-v2k", NULL);
	cg_dir(dir, sizeof(dir), v2_mount, "t-v2k", "i-000000c2");
	assert_true(mkdir(cg_dir(file, sizeof(file), v2_mount, NULL, NULL), 0755) == 0 ||
		    errno == EEXIST);
	assert_int_equal(mkdir(tdir, 0755), 0);
	assert_int_equal(mkdir(dir, 0755), 0);
	fmt(file, sizeof(file), "%s/cgroup.kill", dir);
	if (!exists(file)) {
		print_message("skip: %s missing (Linux < 5.14)\n", file);
		cgroup_env_close(&e2);
		skip();
	}
	child = fork_sleeper();
	assert_int_equal(cgroup_add_pid(&e2, "t-v2k", "i-000000c2", child, &err), 0);
	assert_int_equal(cgroup_lines_for(child, "t-v2k", "i-000000c2"), 1);
	fmt(file, sizeof(file), "%s/cgroup.events", dir);
	assert_non_null(strstr(read_text(file), "populated 1"));
	assert_int_equal(cgroup_kill_all(&e2, "t-v2k", "i-000000c2", KILL_TIMEOUT_MS, &err), 0);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
	assert_non_null(strstr(read_text(file), "populated 0"));
	assert_int_equal(cgroup_remove(&e2, "t-v2k", "i-000000c2", KILL_TIMEOUT_MS, &err), 0);
	assert_false(exists(dir));
	assert_false(exists(tdir));
	cgroup_env_close(&e2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_detect_crafted),
		cmocka_unit_test(test_detect_root_names),
		cmocka_unit_test(test_join_fds_errors),
		cmocka_unit_test(test_readback_check),
		cmocka_unit_test(test_detect_here),
		cmocka_unit_test(test_create_reads_back),
		cmocka_unit_test(test_memory_rounding),
		cmocka_unit_test(test_bad_limits_refused),
		cmocka_unit_test(test_failed_create_undoes),
		cmocka_unit_test(test_bad_ids_refused),
		cmocka_unit_test(test_missing_instance),
		cmocka_unit_test(test_pids_max_holds),
		cmocka_unit_test(test_kill_all_sleeper),
		cmocka_unit_test(test_refuses_own_cgroup),
		cmocka_unit_test(test_remove_leaves_nothing),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_v2_full),
		cmocka_unit_test(test_v2_kill_without_controllers),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
