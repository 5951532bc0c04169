/* What the benchmarks share: a private temp dir with a config, the real
 * daemons started from the build tree with fork+exec (before the caller
 * touches NNG or wolfSSL: neither is fork-safe), bounded waits, clean-up,
 * and latency statistics.
 *
 * Benchmarks run as root and must not depend on the integration tests'
 * users: agentd's user is `nobody`/`nogroup` here (present on every
 * Debian), which is also the uid hostd accepts pipes from. */
#ifndef VMLET_BENCH_ENV_H
#define VMLET_BENCH_ENV_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct bench_env {
	char dir[PATH_MAX];    /* mkdtemp'd, removed by bench_env_cleanup */
	char conf[PATH_MAX + 32];
	char bindir[PATH_MAX]; /* where vmlet-hostd / vmlet-agentd are */
	char hostd_sock[PATH_MAX + 32];
	char agentd_sock[PATH_MAX + 32];
	int port;              /* agentd's TLS port on 127.0.0.1 */
	pid_t hostd, agentd;
};

static inline void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static inline void bench_die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static inline double bench_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static inline void bench_sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* p in [0,1] of n samples; sorts them. */
static inline double bench_percentile(double *v, size_t n, double p)
{
	size_t i;
	if (n == 0)
		return 0.0;
	qsort(v, n, sizeof(*v), bench_cmp_double);
	i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

/* A free TCP port on 127.0.0.1 (the kernel's choice). */
static inline int bench_free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port;

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		bench_die("free port: %s", strerror(errno));
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static inline void bench_find_bindir(struct bench_env *env)
{
	const char *e = getenv("VMLET_BIN_DIR");
	char exe[PATH_MAX];
	ssize_t n;
	char *slash;

	if (e && *e) {
		snprintf(env->bindir, sizeof(env->bindir), "%s", e);
		return;
	}
	/* <build>/bench/bench_x -> <build> */
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		bench_die("readlink /proc/self/exe: %s", strerror(errno));
	exe[n] = '\0';
	for (int i = 0; i < 2; i++) {
		slash = strrchr(exe, '/');
		if (!slash)
			bench_die("cannot find the build dir from %s; set VMLET_BIN_DIR", exe);
		*slash = '\0';
	}
	snprintf(env->bindir, sizeof(env->bindir), "%s", exe);
}

static inline void bench_mkdir(const char *dir, const char *sub, mode_t mode)
{
	char p[PATH_MAX + 64];
	snprintf(p, sizeof(p), "%s/%s", dir, sub);
	if (mkdir(p, mode) < 0 || chmod(p, mode) < 0)
		bench_die("mkdir %s: %s", p, strerror(errno));
}

/* Temp dir, dirs, config. extra is appended to the [agentd] section. With
 * certs, [tls] points at <dir>/certs (the caller creates them). */
static inline void bench_env_init(struct bench_env *env, int allow_root_peer, const char *agentd_extra)
{
	struct passwd *pw = getpwnam("nobody");
	char p[PATH_MAX + 64];
	FILE *f;

	memset(env, 0, sizeof(*env));
	if (geteuid() != 0)
		bench_die("needs root (hostd is the root helper; agentd starts as root and drops)");
	if (!pw)
		bench_die("user nobody does not exist");
	bench_find_bindir(env);
	snprintf(env->dir, sizeof(env->dir), "/tmp/vmlet-bench.XXXXXX");
	if (!mkdtemp(env->dir))
		bench_die("mkdtemp: %s", strerror(errno));
	chmod(env->dir, 0755); /* agentd's user traverses it */
	bench_mkdir(env->dir, "run", 0755);
	bench_mkdir(env->dir, "state", 0700);
	bench_mkdir(env->dir, "agentd", 0700);
	snprintf(p, sizeof(p), "%s/agentd", env->dir);
	if (chown(p, pw->pw_uid, pw->pw_gid) < 0)
		bench_die("chown %s: %s", p, strerror(errno));
	env->port = bench_free_port();
	snprintf(env->conf, sizeof(env->conf), "%s/vmlet.conf", env->dir);
	snprintf(env->hostd_sock, sizeof(env->hostd_sock), "%s/run/hostd/hostd.sock", env->dir);
	snprintf(env->agentd_sock, sizeof(env->agentd_sock), "%s/run/agentd.sock", env->dir);
	f = fopen(env->conf, "we");
	if (!f)
		bench_die("%s: %s", env->conf, strerror(errno));
	fprintf(f,
		"[node]\nid = bench-node\n"
		"[paths]\nstate_dir = %1$s/state\nagentd_state_dir = %1$s/agentd\n"
		"run_dir = %1$s/run\nhostd_socket_dir = %1$s/run/hostd\n"
		"[agentd]\nuser = nobody\ngroup = nogroup\nadmin_group = nogroup\n"
		"listen = 127.0.0.1:%2$d\nlocal_socket = %1$s/run/agentd.sock\n%3$s\n"
		"[tls]\nca = %1$s/certs/ca.pem\ncert = %1$s/certs/node.pem\n"
		"key = %1$s/certs/node.key\ncoordinators = vmlet://coordinator\n"
		"[hostd]\nallow_root_peer = %4$s\n",
		env->dir, env->port, agentd_extra ? agentd_extra : "",
		allow_root_peer ? "true" : "false");
	if (fclose(f) != 0)
		bench_die("%s: %s", env->conf, strerror(errno));
}

/* fork+exec <bindir>/<name> --config <conf>, output to <dir>/<name>.log. */
static inline pid_t bench_spawn(const struct bench_env *env, const char *name)
{
	char bin[PATH_MAX + 64], log[PATH_MAX + 64];
	pid_t pid;
	int fd;

	snprintf(bin, sizeof(bin), "%s/%s", env->bindir, name);
	snprintf(log, sizeof(log), "%s/%s.log", env->dir, name);
	if (access(bin, X_OK) < 0)
		bench_die("%s: %s (build it: make all)", bin, strerror(errno));
	pid = fork();
	if (pid < 0)
		bench_die("fork: %s", strerror(errno));
	if (pid == 0) {
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(127);
		execl(bin, bin, "--config", env->conf, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static inline int bench_alive(pid_t pid)
{
	return waitpid(pid, NULL, WNOHANG) == 0;
}

/* Wait (at most timeout_ms) until path is a socket; the daemon must live. */
static inline void bench_wait_socket(const struct bench_env *env, pid_t pid, const char *name,
				     const char *path, int timeout_ms)
{
	struct stat st;
	for (int waited = 0; waited < timeout_ms; waited += 20) {
		if (!bench_alive(pid))
			bench_die("%s exited at start; see %s/%s.log", name, env->dir, name);
		if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode))
			return;
		bench_sleep_ms(20);
	}
	bench_die("%s: %s did not appear within %d ms", name, path, timeout_ms);
}

/* Wait until 127.0.0.1:port accepts a TCP connection. */
static inline void bench_wait_port(const struct bench_env *env, pid_t pid, const char *name,
				   int port, int timeout_ms)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	for (int waited = 0; waited < timeout_ms; waited += 20) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;
		if (!bench_alive(pid))
			bench_die("%s exited at start; see %s/%s.log", name, env->dir, name);
		ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
		if (fd >= 0)
			close(fd);
		if (ok)
			return;
		bench_sleep_ms(20);
	}
	bench_die("%s: port %d not listening within %d ms", name, port, timeout_ms);
}

/* SIGTERM, at most 10 s, then SIGKILL. */
static inline void bench_stop(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	for (int i = 0; i < 500; i++) {
		if (waitpid(pid, NULL, WNOHANG) != 0)
			return;
		bench_sleep_ms(20);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static inline int bench_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path); /* best effort: keep going */
	return 0;
}

static inline void bench_env_cleanup(struct bench_env *env)
{
	bench_stop(env->agentd);
	bench_stop(env->hostd);
	env->agentd = env->hostd = 0;
	if (env->dir[0] && !getenv("VMLET_BENCH_KEEP"))
		nftw(env->dir, bench_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A value from /proc/<pid>/status ("VmHWM" -> kB), -1 if absent. */
static inline long bench_proc_status_kb(pid_t pid, const char *key)
{
	char path[64], line[256];
	size_t klen = strlen(key);
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			v = strtol(line + klen + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

#endif
