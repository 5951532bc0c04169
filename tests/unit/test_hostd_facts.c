/* Node facts (hostd/facts.c, kvm.c, child.c): the numbers must be the
 * host's, cross-checked against independent sources; the detectors and
 * parsers are fed crafted input. */
#include <fcntl.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "hostd/child.h"
#include "hostd/facts.h"
#include "hostd/kvm.h"

static char tmpdir[] = "/tmp/test_hostd_facts.XXXXXX";

static int setup(void **state)
{
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static const char *write_tmp(const char *name, const char *text)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

/* ---- live facts against other sources ---------------------------------------- */

/* /sys/devices/system/cpu/online: "0-3,5,7-8" */
static long cpus_from_sysfs(void)
{
	FILE *f = fopen("/sys/devices/system/cpu/online", "r");
	char buf[256], *p;
	long n = 0;

	if (!f)
		return -1;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return -1;
	}
	fclose(f);
	for (p = buf; *p && *p != '\n';) {
		long a = strtol(p, &p, 10), b = a;
		if (*p == '-')
			b = strtol(p + 1, &p, 10);
		n += b - a + 1;
		if (*p == ',')
			p++;
	}
	return n;
}

static void vcpus_match_the_host(void **state)
{
	long sysfs = cpus_from_sysfs();

	assert_int_equal(hostd_facts_vcpus(), sysconf(_SC_NPROCESSORS_ONLN));
	if (sysfs > 0)
		assert_int_equal(hostd_facts_vcpus(), sysfs);
	assert_true(hostd_facts_vcpus() >= 1);
}

static void memory_matches_the_host(void **state)
{
	struct sysinfo si;
	unsigned long long meminfo_kib = 0;
	char line[256];
	uint64_t mib = hostd_facts_mem_mib(), want;
	FILE *f;

	assert_int_equal(sysinfo(&si), 0);
	want = (uint64_t)si.totalram * si.mem_unit / (1024 * 1024);
	assert_true(mib * 100 >= want * 99 && mib * 100 <= want * 101);

	f = fopen("/proc/meminfo", "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemTotal: %llu kB", &meminfo_kib) == 1)
			break;
	fclose(f);
	assert_true(meminfo_kib > 0);
	want = meminfo_kib / 1024;
	assert_true(mib * 100 >= want * 99 && mib * 100 <= want * 101);
}

static void collected_facts_describe_this_host(void **state)
{
	struct vmlet_config cfg;
	struct hostd_facts f;
	struct utsname u;

	vmlet_config_defaults(&cfg);
	snprintf(cfg.node_id, sizeof(cfg.node_id), "node-a");
	cfg.production = true;
	hostd_facts_collect(&cfg, &f);
	assert_int_equal(uname(&u), 0);
	assert_string_equal(f.arch, u.machine);
	assert_string_equal(f.kernel_release, u.release);
	assert_string_equal(f.hostname, u.nodename);
	assert_string_equal(f.node_id, "node-a");
	assert_true(f.production);
	assert_string_equal(f.vmm_name, "qemu");
	assert_string_equal(f.vmlet_version, VMLET_VERSION);
	assert_true(!strcmp(f.cgroup_version, "v1") || !strcmp(f.cgroup_version, "v2") ||
		    !strcmp(f.cgroup_version, "none"));
	assert_true(!strcmp(f.accel, "kvm") || !strcmp(f.accel, "tcg"));
	/* "kvm" needs a VM to exist first */
	if (!strcmp(f.accel, "kvm"))
		assert_true(f.kvm_usable);
	/* jailer_binary is empty by default: never available */
	assert_false(f.jailer_available);
	assert_string_equal(f.firecracker_version, "");
	assert_string_equal(f.vmm_version, f.qemu_version);
}

static void qemu_version_is_the_binarys(void **state)
{
	struct vmlet_config cfg;
	struct hostd_facts f;
	char line[256] = "", want[64];
	FILE *p;

	vmlet_config_defaults(&cfg);
	snprintf(cfg.node_id, sizeof(cfg.node_id), "node-a");
	if (access(cfg.qemu_binary, X_OK) != 0)
		skip();
	hostd_facts_collect(&cfg, &f);
	/* An independent reading of the same first line. */
	p = popen("/usr/bin/qemu-system-x86_64 --version", "r");
	assert_non_null(p);
	assert_non_null(fgets(line, sizeof(line), p));
	pclose(p);
	assert_int_equal(sscanf(line, "QEMU emulator version %63[0-9.]", want), 1);
	assert_true(strncmp(f.qemu_version, want, strlen(want)) == 0);
	assert_true(strlen(f.qemu_version) >= 3);
}

static void missing_binaries_give_empty_versions(void **state)
{
	struct vmlet_config cfg;
	struct hostd_facts f;

	vmlet_config_defaults(&cfg);
	snprintf(cfg.node_id, sizeof(cfg.node_id), "node-a");
	snprintf(cfg.qemu_binary, sizeof(cfg.qemu_binary), "%s/no-such-qemu", tmpdir);
	snprintf(cfg.firecracker_binary, sizeof(cfg.firecracker_binary), "relative/firecracker");
	snprintf(cfg.jailer_binary, sizeof(cfg.jailer_binary), "%s", tmpdir); /* a directory */
	hostd_facts_collect(&cfg, &f);
	assert_string_equal(f.qemu_version, "");
	assert_string_equal(f.vmm_version, "");
	assert_string_equal(f.firecracker_version, "");
	assert_false(f.jailer_available);
}

static void jailer_available_when_executable(void **state)
{
	struct vmlet_config cfg;
	struct hostd_facts f;
	const char *path = write_tmp("jailer", "#!/bin/sh\nexit 0\n");

	chmod(path, 0755);
	vmlet_config_defaults(&cfg);
	snprintf(cfg.node_id, sizeof(cfg.node_id), "node-a");
	snprintf(cfg.jailer_binary, sizeof(cfg.jailer_binary), "%s", path);
	hostd_facts_collect(&cfg, &f);
	assert_true(f.jailer_available);
	chmod(path, 0644);
	hostd_facts_collect(&cfg, &f);
	/* root may open anything, but X_OK still needs an x bit */
	assert_false(f.jailer_available);
}

static void firecracker_version_from_its_output(void **state)
{
	struct vmlet_config cfg;
	struct hostd_facts f;
	const char *path = write_tmp("firecracker", "#!/bin/sh\necho 'Firecracker v1.7.0'\n"
						    "echo\necho 'Supported snapshot data format versions: 1.0.0'\n");

	chmod(path, 0755);
	vmlet_config_defaults(&cfg);
	snprintf(cfg.node_id, sizeof(cfg.node_id), "node-a");
	snprintf(cfg.vmm, sizeof(cfg.vmm), "firecracker");
	snprintf(cfg.firecracker_binary, sizeof(cfg.firecracker_binary), "%s", path);
	hostd_facts_collect(&cfg, &f);
	assert_string_equal(f.firecracker_version, "1.7.0");
	assert_string_equal(f.vmm_name, "firecracker");
	assert_string_equal(f.vmm_version, "1.7.0");
}

/* ---- cgroup detection on crafted files ---------------------------------------- */

static const char v1_mountinfo[] =
	"31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
	"32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
	"35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory\n"
	"39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
	"41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

static void cgroup_detection(void **state)
{
	char none[256];
	const char *v2_full, *v2_partial, *mi_v1, *mi_partial, *mi_v2only;
	char p_full[256], p_partial[256], p_v1[256], p_v1part[256], p_v2only[256];

	snprintf(none, sizeof(none), "%s/absent", tmpdir);
	v2_full = write_tmp("ctl_full", "cpuset cpu io memory hugetlb pids rdma misc\n");
	snprintf(p_full, sizeof(p_full), "%s", v2_full);
	v2_partial = write_tmp("ctl_partial", "hugetlb\n");
	snprintf(p_partial, sizeof(p_partial), "%s", v2_partial);
	mi_v1 = write_tmp("mi_v1", v1_mountinfo);
	snprintf(p_v1, sizeof(p_v1), "%s", mi_v1);
	/* memory and cpu, but no pids hierarchy */
	mi_partial = write_tmp("mi_partial",
			       "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
			       "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
			       /* "pids" in a path or as cgroup2 must not count */
			       "36 31 0:33 / /pids rw - cgroup2 cgroup2 rw,pids\n"
			       "37 31 0:34 / /x rw - tmpfs pids rw\n");
	snprintf(p_v1part, sizeof(p_v1part), "%s", mi_partial);
	mi_v2only = write_tmp("mi_v2only", "30 23 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
	snprintf(p_v2only, sizeof(p_v2only), "%s", mi_v2only);

	assert_string_equal(hostd_cgroup_detect(p_full, p_v1), "v2");
	assert_string_equal(hostd_cgroup_detect(p_full, none), "v2");
	assert_string_equal(hostd_cgroup_detect(p_partial, p_v1), "v1");
	assert_string_equal(hostd_cgroup_detect(none, p_v1), "v1");
	assert_string_equal(hostd_cgroup_detect(none, p_v1part), "none");
	assert_string_equal(hostd_cgroup_detect(p_partial, p_v2only), "none");
	assert_string_equal(hostd_cgroup_detect(none, none), "none");
	/* "cpuacct" alone is not "cpu", "memory.x" is not "memory" */
	snprintf(p_v1part, sizeof(p_v1part), "%s",
		 write_tmp("mi_lookalike",
			   "1 0 0:1 / /a rw - cgroup cgroup rw,cpuacct\n"
			   "2 0 0:2 / /b rw - cgroup cgroup rw,memoryx\n"
			   "3 0 0:3 / /c rw - cgroup cgroup rw,pids\n"));
	assert_string_equal(hostd_cgroup_detect(none, p_v1part), "none");
}

/* ---- version parsing ------------------------------------------------------------------ */

static void version_parsing(void **state)
{
	static const struct {
		const char *out, *prefix, *want;
	} ok[] = {
		{ "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright\n",
		  "QEMU emulator version ", "7.2.22" },
		{ "QEMU emulator version 8.0.0\n", "QEMU emulator version ", "8.0.0" },
		{ "QEMU emulator version 9.1.50", "QEMU emulator version ", "9.1.50" },
		{ "Firecracker v1.7.0\n\nSupported snapshot", "Firecracker v", "1.7.0" },
		{ "Firecracker v1.4.0-dev\n", "Firecracker v", "1.4.0-dev" },
	};
	static const struct {
		const char *out, *prefix;
	} bad[] = {
		{ "", "QEMU emulator version " },
		{ "qemu emulator version 7.2.0", "QEMU emulator version " },
		{ "QEMU emulator version \n", "QEMU emulator version " },
		{ "QEMU emulator version v7", "QEMU emulator version " },
		{ "Usage: qemu [options]", "QEMU emulator version " },
		{ "\nQEMU emulator version 7.2.0", "QEMU emulator version " },
		{ "Firecracker 1.7.0", "Firecracker v" },
	};
	char buf[64], small[4];

	for (size_t k = 0; k < sizeof(ok) / sizeof(ok[0]); k++) {
		assert_int_equal(hostd_parse_version(ok[k].out, ok[k].prefix, buf, sizeof(buf)), 0);
		assert_string_equal(buf, ok[k].want);
	}
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		assert_int_equal(hostd_parse_version(bad[k].out, bad[k].prefix, buf, sizeof(buf)), -1);
		assert_string_equal(buf, "");
	}
	assert_int_equal(hostd_parse_version(NULL, "x", buf, sizeof(buf)), -1);
	/* a version longer than the buffer is refused, not cut */
	assert_int_equal(hostd_parse_version("QEMU emulator version 7.2.22", "QEMU emulator version ",
					     small, sizeof(small)), -1);
	assert_string_equal(small, "");
}

/* ---- child processes ----------------------------------------------------------------- */

static void capture_reads_stdout_with_clean_env(void **state)
{
	char *argv[] = { "/usr/bin/env", NULL };
	struct vmlet_err err;
	char buf[512];
	size_t len;
	int status;

	setenv("HOSTD_TEST_SECRET", "leak", 1);
	assert_int_equal(hostd_child_capture("/usr/bin/env", argv, 5000, buf, sizeof(buf), &len,
					     &status, &err), 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(strlen(buf), len);
	assert_null(strstr(buf, "HOSTD_TEST_SECRET"));
	assert_non_null(strstr(buf, "LC_ALL=C"));
	unsetenv("HOSTD_TEST_SECRET");
}

static void capture_does_not_leak_fds(void **state)
{
	char *argv[] = { "/bin/ls", "/proc/self/fd", NULL };
	int fd = open("/dev/null", O_RDONLY);
	/* not CLOEXEC on purpose; high so that ls's own fds cannot be it */
	int extra = dup2(fd, 57);
	struct vmlet_err err;
	char buf[512];
	size_t len;
	int status;

	close(fd);
	assert_int_equal(extra, 57);
	assert_int_equal(hostd_child_capture("/bin/ls", argv, 5000, buf, sizeof(buf), &len, &status,
					     &err), 0);
	close(extra);
	/* ls sees 0, 1, 2 and its own directory fd: never ours */
	char want[16];
	snprintf(want, sizeof(want), "\n%d\n", extra);
	assert_null(strstr(buf, want));
}

static void capture_caps_output_and_kills(void **state)
{
	char *argv[] = { "/usr/bin/yes", NULL };
	struct vmlet_err err;
	char buf[4096];
	size_t len;
	int status;

	assert_int_equal(hostd_child_capture("/usr/bin/yes", argv, 10000, buf, sizeof(buf), &len,
					     &status, &err), 0);
	assert_int_equal(len, sizeof(buf) - 1);
	assert_int_equal(buf[len], '\0');
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == 9);
}

static void capture_kills_on_timeout(void **state)
{
	char *argv[] = { "/bin/sleep", "30", NULL };
	struct vmlet_err err;
	char buf[64];
	size_t len;
	int status;

	assert_int_equal(hostd_child_capture("/bin/sleep", argv, 100, buf, sizeof(buf), &len,
					     &status, &err), 0);
	assert_int_equal(status, -1);
	assert_int_equal(len, 0);
}

static void capture_missing_binary_exits_127(void **state)
{
	char path[256];
	char *argv[] = { path, NULL };
	struct vmlet_err err;
	char buf[64];
	size_t len;
	int status;

	snprintf(path, sizeof(path), "%s/nope", tmpdir);
	assert_int_equal(hostd_child_capture(path, argv, 5000, buf, sizeof(buf), &len, &status,
					     &err), 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 127);
	assert_int_equal(len, 0);
}

static int returns_arg(void *arg)
{
	return *(int *)arg;
}

/* SIGKILL: cmocka's (and ASan's) handlers would catch a SIGSEGV in the
 * forked child and carry on running the test suite there. */
static int crashes(void *arg)
{
	kill(getpid(), SIGKILL);
	return 0;
}

static int hangs(void *arg)
{
	sleep(60);
	return 0;
}

static void child_run_reports_exit_crash_and_hang(void **state)
{
	struct vmlet_err err;
	int v = 42;

	assert_int_equal(hostd_child_run(returns_arg, &v, 5000, &err), 42);
	v = 0;
	assert_int_equal(hostd_child_run(returns_arg, &v, 5000, &err), 0);
	assert_int_equal(hostd_child_run(crashes, NULL, 5000, &err), -1);
	assert_non_null(strstr(err.msg, "signal"));
	assert_int_equal(hostd_child_run(hangs, NULL, 100, &err), -1);
	assert_non_null(strstr(err.msg, "timed out"));
}

/* ---- KVM ------------------------------------------------------------------------------ */

static void kvm_probe_answers(void **state)
{
	struct hostd_kvm_probe p;
	char absent[256];
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	snprintf(absent, sizeof(absent), "%s/kvm", tmpdir);
	hostd_kvm_probe(absent, &p);
	assert_false(p.usable);
	assert_false(p.vcpu_runs);
	assert_non_null(strstr(p.detail, "No such file"));

	/* not a KVM device: the API version ioctl fails */
	hostd_kvm_probe("/dev/null", &p);
	assert_false(p.usable);
	assert_false(p.vcpu_runs);

	if (fd < 0)
		skip(); /* no /dev/kvm here (or not root) */
	close(fd);
	hostd_kvm_probe("/dev/kvm", &p);
	assert_true(p.usable);
	/* the vCPU test may fail on broken nesting: then it must say why */
	if (!p.vcpu_runs)
		assert_true(p.detail[0] != '\0');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(vcpus_match_the_host),
		cmocka_unit_test(memory_matches_the_host),
		cmocka_unit_test(collected_facts_describe_this_host),
		cmocka_unit_test(qemu_version_is_the_binarys),
		cmocka_unit_test(missing_binaries_give_empty_versions),
		cmocka_unit_test(jailer_available_when_executable),
		cmocka_unit_test(firecracker_version_from_its_output),
		cmocka_unit_test(cgroup_detection),
		cmocka_unit_test(version_parsing),
		cmocka_unit_test(capture_reads_stdout_with_clean_env),
		cmocka_unit_test(capture_does_not_leak_fds),
		cmocka_unit_test(capture_caps_output_and_kills),
		cmocka_unit_test(capture_kills_on_timeout),
		cmocka_unit_test(capture_missing_binary_exits_127),
		cmocka_unit_test(child_run_reports_exit_crash_and_hang),
		cmocka_unit_test(kvm_probe_answers),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
