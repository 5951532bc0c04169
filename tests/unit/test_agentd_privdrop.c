/* agentd/privdrop.c: the privilege drop and the seccomp allowlist, checked
 * from the kernel's side (/proc/self/status, what gets killed by SIGSYS).
 * Every scenario runs in a forked child of this (NNG-free) test process:
 * the drop and the filter are irreversible. Needs root, else skipped. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <grp.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "agentd/privdrop.h"
#include "shared/config.h"
#include "shared/log.h"

#define NOBODY 65534

struct outcome {
	int exited, code, signaled, sig;
	char out[16384];
};

typedef int (*child_fn)(int out_fd);

static void require_root(void)
{
	if (geteuid() != 0) {
		print_message("needs root (setresuid, bounding set, seccomp)\n");
		skip();
	}
}

/* nobody/nogroup as a hand-filled config, like the loader would resolve it. */
static void nobody_config(struct vmlet_config *cfg)
{
	struct passwd *pw = getpwuid(NOBODY);
	struct group *gr;

	vmlet_config_defaults(cfg);
	assert_non_null(pw);
	gr = getgrgid(pw->pw_gid);
	assert_non_null(gr);
	snprintf(cfg->agentd_user, sizeof(cfg->agentd_user), "%s", pw->pw_name);
	snprintf(cfg->agentd_group, sizeof(cfg->agentd_group), "%s", gr->gr_name);
	cfg->agentd_uid = pw->pw_uid;
	cfg->agentd_gid = gr->gr_gid;
}

/* Fork; in the child: pre() (e.g. start a thread, like NNG), drop to cfg
 * (if any), load seccomp (if asked), then fn(). The child's output comes
 * back through a pipe; its exit status says how it ended. */
static void run_child(const struct vmlet_config *cfg, int seccomp, int debug_log, child_fn pre,
		      child_fn fn, struct outcome *o)
{
	int p[2], st;
	size_t len = 0;
	ssize_t n;
	pid_t pid;

	memset(o, 0, sizeof(*o));
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct vmlet_err err = { 0 };

		close(p[0]);
		if (pre && pre(p[1]) != 0)
			_exit(89);
		if (cfg && agentd_drop_privileges(cfg, &err) < 0) {
			dprintf(p[1], "drop: %s", err.msg);
			_exit(90);
		}
		if (debug_log)
			setenv("VMLET_SECCOMP_LOG", "1", 1);
		if (seccomp && agentd_load_seccomp(&err) < 0) {
			dprintf(p[1], "seccomp: %s", err.msg);
			_exit(91);
		}
		/* _exit: no atexit handlers (LeakSanitizer's tracer would need
		 * ptrace and fork, which the filter rightly kills). */
		_exit(fn ? fn(p[1]) : 0);
	}
	close(p[1]);
	while ((n = read(p[0], o->out + len, sizeof(o->out) - 1 - len)) > 0)
		len += (size_t)n;
	close(p[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	o->exited = WIFEXITED(st);
	o->code = o->exited ? WEXITSTATUS(st) : -1;
	o->signaled = WIFSIGNALED(st);
	o->sig = o->signaled ? WTERMSIG(st) : 0;
}

/* The value after "Key:" in a /proc status text, whitespace squeezed. */
static const char *status_field(const char *text, const char *key, char *buf, size_t len)
{
	size_t klen = strlen(key);
	const char *line = text;

	while (line && *line) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			const char *v = line + klen + 1;
			size_t i = 0;
			int space = 0;

			while (*v == ' ' || *v == '\t')
				v++;
			for (; *v && *v != '\n' && i + 1 < len; v++) {
				if (*v == ' ' || *v == '\t') {
					space = 1;
					continue;
				}
				if (space && i)
					buf[i++] = ' ';
				space = 0;
				if (i + 1 < len)
					buf[i++] = *v;
			}
			buf[i] = '\0';
			return buf;
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return NULL;
}

static void assert_field(const char *text, const char *key, const char *want)
{
	char buf[256];
	const char *got = status_field(text, key, buf, sizeof(buf));

	if (!got || strcmp(got, want) != 0)
		fail_msg("%s: got \"%s\", want \"%s\"", key, got ? got : "(missing)", want);
}

static int send_file(int out_fd, const char *path)
{
	char buf[8192];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		dprintf(out_fd, "open %s: %s", path, strerror(errno));
		return 1;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (write(out_fd, buf, (size_t)n) != n)
			return 1;
	close(fd);
	return 0;
}

/* ---- a thread started before the filter (as NNG's are) ---------------------------- */

static int gate[2] = { -1, -1 };
static pthread_t early;
static volatile pid_t early_tid;
static int early_action; /* 0: report and exit; 1: socket(AF_INET) */

static void *early_main(void *arg)
{
	char c;

	(void)arg;
	early_tid = (pid_t)syscall(SYS_gettid);
	if (read(gate[0], &c, 1) != 1)
		return NULL;
	if (early_action == 1)
		syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
	return NULL;
}

static int start_early_thread(int out_fd)
{
	(void)out_fd;
	if (pipe(gate) < 0 || pthread_create(&early, NULL, early_main, NULL) != 0)
		return 1;
	while (!early_tid)
		sched_yield();
	return 0;
}

static int release_early_thread(void)
{
	return write(gate[1], "x", 1) == 1 && pthread_join(early, NULL) == 0 ? 0 : 1;
}

/* ---- scenarios run inside the confined child -------------------------------------- */

static int report_status(int out_fd)
{
	char path[64];

	if (send_file(out_fd, "/proc/self/status"))
		return 1;
	/* The thread that existed before the filter has it too (TSYNC). */
	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)early_tid);
	dprintf(out_fd, "\n--- early thread ---\n");
	if (send_file(out_fd, path))
		return 1;
	return release_early_thread();
}

static int early_thread_opens_inet(int out_fd)
{
	(void)out_fd;
	early_action = 1;
	release_early_thread();
	return 0; /* not reached: the whole process is killed */
}

static int do_execve(int fd)
{
	char *const argv[] = { "/bin/true", NULL };
	char *const envp[] = { NULL };

	(void)fd;
	execve("/bin/true", argv, envp);
	return 0;
}

static int do_socket_inet(int fd) { (void)fd; return socket(AF_INET, SOCK_STREAM, 0) >= 0 ? 0 : 2; }
static int do_socket_inet6(int fd) { (void)fd; return socket(AF_INET6, SOCK_DGRAM, 0) >= 0 ? 0 : 2; }
static int do_socket_netlink(int fd) { (void)fd; return socket(AF_NETLINK, SOCK_RAW, 0) >= 0 ? 0 : 2; }
static int do_socket_packet(int fd) { (void)fd; return socket(AF_PACKET, SOCK_RAW, 0) >= 0 ? 0 : 2; }

static int do_fork(int fd)
{
	pid_t pid;

	(void)fd;
	pid = fork();
	if (pid == 0)
		_exit(0);
	return 0;
}

static int do_raw_fork(int fd) { (void)fd; syscall(SYS_fork); return 0; }
static int do_vfork_clone(int fd)
{
	(void)fd;
	/* posix_spawn's clone: shares memory but is a new process. */
	syscall(SYS_clone, CLONE_VM | CLONE_VFORK | SIGCHLD, 0, 0, 0, 0);
	return 0;
}
static int do_thread_in_new_netns(int fd)
{
	(void)fd;
	/* Thread flags plus a namespace flag: still refused. */
	syscall(SYS_clone, CLONE_THREAD | CLONE_SIGHAND | CLONE_VM | CLONE_NEWNET, 0, 0, 0, 0);
	return 0;
}
static int do_ptrace(int fd) { (void)fd; ptrace(PTRACE_TRACEME, 0, NULL, NULL); return 0; }
static int do_mount(int fd) { (void)fd; mount("none", "/tmp", "tmpfs", 0, NULL); return 0; }
static int do_setuid(int fd) { (void)fd; setuid(0); return 0; }
static int do_bpf(int fd) { (void)fd; syscall(SYS_bpf, 0, NULL, 0); return 0; }
static int do_io_uring(int fd) { (void)fd; syscall(SYS_io_uring_setup, 1, NULL); return 0; }
static int do_keyctl(int fd) { (void)fd; syscall(SYS_keyctl, 0, 0, 0, 0, 0); return 0; }
static int do_unshare(int fd) { (void)fd; unshare(CLONE_NEWUSER); return 0; }
static int do_setrlimit(int fd)
{
	struct rlimit rl = { 16, 16 };

	(void)fd;
	setrlimit(RLIMIT_NOFILE, &rl);
	return 0;
}
static int do_prctl_dumpable(int fd) { (void)fd; prctl(PR_SET_DUMPABLE, 1, 0, 0, 0); return 0; }
static int do_ioctl_other(int fd) { (void)fd; ioctl(0, TIOCSTI, "x"); return 0; }
static int do_kill_other(int fd) { (void)fd; kill(getppid(), 0); return 0; }
static int do_tgkill_other(int fd)
{
	(void)fd;
	syscall(SYS_tgkill, getppid(), getppid(), 0);
	return 0;
}

static void *thread_body(void *arg)
{
	*(int *)arg = 42;
	return NULL;
}

/* What agentd does all day must keep working. */
static int do_allowed(int out_fd)
{
	struct rlimit rl;
	pthread_t th;
	char buf[16];
	int sv[2], v = 0, fd;
	long r;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 10;
	close(fd);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return 11;
	if (write(sv[0], "hi", 2) != 2 || read(sv[1], buf, 2) != 2)
		return 12;
	if (ioctl(sv[1], FIONREAD, &v) < 0)
		return 13;
	close(sv[0]);
	close(sv[1]);
	if (pthread_create(&th, NULL, thread_body, &v) != 0 || pthread_join(th, NULL) != 0 || v != 42)
		return 14;
	fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC); /* wolfSSL's RNG */
	if (fd < 0 || read(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
		return 15;
	close(fd);
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 16;
	if (prctl(PR_SET_NAME, "agentd-test", 0, 0, 0) < 0)
		return 17;
	/* Signalling ourselves (abort, raise, pthread_kill) works. */
	if (syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), 0) != 0)
		return 19;
	/* clone3 answers ENOSYS (so glibc falls back to the filtered clone). */
	r = syscall(SYS_clone3, NULL, 0);
	if (r != -1 || errno != ENOSYS)
		return 18;
	dprintf(out_fd, "all allowed calls worked");
	return 0;
}

/* Debug mode: denied calls fail with EPERM instead of killing. */
static int do_inet_expect_eperm(int out_fd)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd >= 0)
		return 20;
	if (errno != EPERM)
		return 21;
	dprintf(out_fd, "socket(AF_INET): EPERM");
	return 0;
}

/* ---- tests ---------------------------------------------------------------------------- */

static void drop_and_filter_show_in_proc_status(void **state)
{
	struct vmlet_config cfg;
	struct outcome o;
	char want_ids[64];
	const char *early_part;

	(void)state;
	require_root();
	nobody_config(&cfg);
	run_child(&cfg, 1, 0, start_early_thread, report_status, &o);
	if (!o.exited || o.code != 0)
		fail_msg("child: exited %d code %d signal %d: %s", o.exited, o.code, o.sig, o.out);
	snprintf(want_ids, sizeof(want_ids), "%u %u %u %u", NOBODY, NOBODY, NOBODY, NOBODY);
	assert_field(o.out, "Uid", want_ids);
	snprintf(want_ids, sizeof(want_ids), "%u %u %u %u", (unsigned)cfg.agentd_gid,
		 (unsigned)cfg.agentd_gid, (unsigned)cfg.agentd_gid, (unsigned)cfg.agentd_gid);
	assert_field(o.out, "Gid", want_ids);
	snprintf(want_ids, sizeof(want_ids), "%u", (unsigned)cfg.agentd_gid);
	assert_field(o.out, "Groups", want_ids);
	assert_field(o.out, "CapInh", "0000000000000000");
	assert_field(o.out, "CapPrm", "0000000000000000");
	assert_field(o.out, "CapEff", "0000000000000000");
	assert_field(o.out, "CapBnd", "0000000000000000");
	assert_field(o.out, "CapAmb", "0000000000000000");
	assert_field(o.out, "NoNewPrivs", "1");
	assert_field(o.out, "Seccomp", "2");
	early_part = strstr(o.out, "--- early thread ---");
	assert_non_null(early_part);
	assert_field(early_part, "Seccomp", "2");
	assert_field(early_part, "NoNewPrivs", "1");
	assert_field(early_part, "CapEff", "0000000000000000");
}

struct forbidden {
	const char *what;
	child_fn fn;
};

static const struct forbidden forbidden[] = {
	{ "execve", do_execve },
	{ "socket(AF_INET)", do_socket_inet },
	{ "socket(AF_INET6)", do_socket_inet6 },
	{ "socket(AF_NETLINK)", do_socket_netlink },
	{ "socket(AF_PACKET)", do_socket_packet },
	{ "fork()", do_fork },
	{ "fork syscall", do_raw_fork },
	{ "clone(CLONE_VM|CLONE_VFORK)", do_vfork_clone },
	{ "clone(thread|CLONE_NEWNET)", do_thread_in_new_netns },
	{ "ptrace", do_ptrace },
	{ "mount", do_mount },
	{ "setuid", do_setuid },
	{ "bpf", do_bpf },
	{ "io_uring_setup", do_io_uring },
	{ "keyctl", do_keyctl },
	{ "unshare", do_unshare },
	{ "setrlimit (prlimit64 with a new limit)", do_setrlimit },
	{ "prctl(PR_SET_DUMPABLE)", do_prctl_dumpable },
	{ "ioctl(TIOCSTI)", do_ioctl_other },
	{ "kill(other process)", do_kill_other },
	{ "tgkill(other process)", do_tgkill_other },
};

static void forbidden_syscalls_kill_the_process(void **state)
{
	struct vmlet_config cfg;
	struct outcome o;

	(void)state;
	require_root();
	nobody_config(&cfg);
	for (size_t i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++) {
		run_child(&cfg, 1, 0, NULL, forbidden[i].fn, &o);
		if (!o.signaled || o.sig != SIGSYS)
			fail_msg("%s: expected SIGSYS, got exited=%d code=%d signal=%d %s",
				 forbidden[i].what, o.exited, o.code, o.sig, o.out);
	}
}

static void allowed_syscalls_work(void **state)
{
	struct vmlet_config cfg;
	struct outcome o;

	(void)state;
	require_root();
	nobody_config(&cfg);
	run_child(&cfg, 1, 0, NULL, do_allowed, &o);
	if (!o.exited || o.code != 0)
		fail_msg("allowed calls: exited=%d code=%d signal=%d %s", o.exited, o.code, o.sig,
			 o.out);
	assert_non_null(strstr(o.out, "all allowed calls worked"));
}

static void filter_reaches_threads_started_before_it(void **state)
{
	struct vmlet_config cfg;
	struct outcome o;

	(void)state;
	require_root();
	nobody_config(&cfg);
	run_child(&cfg, 1, 0, start_early_thread, early_thread_opens_inet, &o);
	if (!o.signaled || o.sig != SIGSYS)
		fail_msg("early thread socket(AF_INET): exited=%d code=%d signal=%d %s", o.exited,
			 o.code, o.sig, o.out);
}

static void debug_mode_answers_eperm(void **state)
{
	struct vmlet_config cfg;
	struct outcome o;

	(void)state;
	require_root();
	nobody_config(&cfg);
	run_child(&cfg, 1, 1, NULL, do_inet_expect_eperm, &o);
	if (!o.exited || o.code != 0)
		fail_msg("debug mode: exited=%d code=%d signal=%d %s", o.exited, o.code, o.sig,
			 o.out);
}

static void drop_to_missing_user_fails_clearly(void **state)
{
	struct vmlet_config cfg;
	struct outcome o;

	(void)state;
	require_root();
	nobody_config(&cfg);
	snprintf(cfg.agentd_user, sizeof(cfg.agentd_user), "vmlet-no-such-user");
	cfg.agentd_uid = 64999;
	run_child(&cfg, 0, 0, NULL, NULL, &o);
	assert_true(o.exited);
	assert_int_equal(o.code, 90);
	assert_non_null(strstr(o.out, "vmlet-no-such-user"));
	assert_non_null(strstr(o.out, "does not exist"));

	nobody_config(&cfg);
	snprintf(cfg.agentd_group, sizeof(cfg.agentd_group), "vmlet-no-such-group");
	run_child(&cfg, 0, 0, NULL, NULL, &o);
	assert_int_equal(o.code, 90);
	assert_non_null(strstr(o.out, "vmlet-no-such-group"));

	/* Name and resolved uid disagree. */
	nobody_config(&cfg);
	cfg.agentd_uid = 12345;
	run_child(&cfg, 0, 0, NULL, NULL, &o);
	assert_int_equal(o.code, 90);
	assert_non_null(strstr(o.out, "uid 12345"));

	/* Root is never a valid target. */
	vmlet_config_defaults(&cfg);
	snprintf(cfg.agentd_user, sizeof(cfg.agentd_user), "root");
	snprintf(cfg.agentd_group, sizeof(cfg.agentd_group), "root");
	cfg.agentd_uid = 0;
	cfg.agentd_gid = 0;
	run_child(&cfg, 0, 0, NULL, NULL, &o);
	assert_int_equal(o.code, 90);
	assert_non_null(strstr(o.out, "must not run as root"));
}

/* Started as the agentd user already (e.g. by systemd User=): no user
 * switch, but no_new_privs and empty capability sets all the same. */
static int become_nobody(int out_fd)
{
	gid_t g = NOBODY;

	(void)out_fd;
	if (setgroups(1, &g) < 0 || setresgid(getpwuid(NOBODY)->pw_gid, getpwuid(NOBODY)->pw_gid,
					       getpwuid(NOBODY)->pw_gid) < 0 ||
	    setresuid(NOBODY, NOBODY, NOBODY) < 0)
		return 1;
	return 0;
}

static int report_self_status(int out_fd)
{
	return send_file(out_fd, "/proc/self/status");
}

static void already_that_user(void **state)
{
	struct vmlet_config cfg;
	struct outcome o;

	(void)state;
	require_root();
	nobody_config(&cfg);
	run_child(&cfg, 1, 0, become_nobody, report_self_status, &o);
	if (!o.exited || o.code != 0)
		fail_msg("already nobody: exited=%d code=%d signal=%d %s", o.exited, o.code, o.sig,
			 o.out);
	assert_field(o.out, "CapEff", "0000000000000000");
	assert_field(o.out, "CapPrm", "0000000000000000");
	assert_field(o.out, "NoNewPrivs", "1");
	assert_field(o.out, "Seccomp", "2");

	/* A different unprivileged user cannot become the agentd user. */
	cfg.agentd_uid = 64998;
	run_child(&cfg, 0, 0, become_nobody, NULL, &o);
	assert_int_equal(o.code, 90);
	assert_non_null(strstr(o.out, "start agentd as root or as that user"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(drop_and_filter_show_in_proc_status),
		cmocka_unit_test(forbidden_syscalls_kill_the_process),
		cmocka_unit_test(allowed_syscalls_work),
		cmocka_unit_test(filter_reaches_threads_started_before_it),
		cmocka_unit_test(debug_mode_answers_eperm),
		cmocka_unit_test(drop_to_missing_user_fails_clearly),
		cmocka_unit_test(already_that_user),
	};

	vlog_init("test_agentd_privdrop");
	vlog_set_level(VLOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
