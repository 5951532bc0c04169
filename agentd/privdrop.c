/* agentd gives up everything it does not need once its listeners are bound,
 * its TLS key is loaded and NNG/wolfSSL are running:
 *
 *   1. (root only) clear the capability bounding set and the ambient set
 *      while CAP_SETPCAP is still held, then setgroups/setresgid/setresuid
 *      to the configured user;
 *   2. clear every remaining capability set and verify the result from the
 *      kernel's point of view (capget, bounding set, setuid(0) must fail);
 *   3. no_new_privs, not dumpable;
 *   4. (agentd_load_seccomp) a syscall allowlist, synchronised onto every
 *      thread (NNG starts ~13) with SCMP_FLTATR_CTL_TSYNC.
 *
 * A bug in agentd after this point can talk to its open sockets, to hostd
 * over a unix socket, and write its own state dir; it cannot exec, fork,
 * open network sockets, ptrace, mount, load BPF or regain privileges. */
#include "agentd/privdrop.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include "shared/log.h"

/* ---- capabilities -------------------------------------------------------------- */

/* capget/capset directly: three 64-bit sets as two 32-bit halves. */
static int caps_read(struct __user_cap_data_struct data[2])
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };

	return (int)syscall(SYS_capget, &hdr, data);
}

static int caps_clear_all(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[2];

	memset(data, 0, sizeof(data));
	return (int)syscall(SYS_capset, &hdr, data);
}

/* Number of capabilities this kernel knows: PR_CAPBSET_READ answers EINVAL
 * past the last one (kernels newer than our headers have more). */
static int caps_count(void)
{
	int cap = 0;

	while (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0)
		cap++;
	return cap;
}

/* Drops the bounding set: with it empty no exec'd program (setuid or file
 * caps) can ever regain a capability. Needs CAP_SETPCAP. */
static int bounding_clear(int must, struct vmlet_err *err)
{
	int n = caps_count();

	for (int cap = 0; cap < n; cap++) {
		if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 0)
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
			if (must)
				return vmlet_err_sys(err, VMLET_E_INTERNAL,
						     "prctl(PR_CAPBSET_DROP, %d)", cap);
			vlog(VLOG_INFO, "privdrop_bounding_kept",
			     "reason=\"no CAP_SETPCAP; no_new_privs makes the bounding set moot\"");
			return 0;
		}
	}
	return 0;
}

static int ambient_clear(struct vmlet_err *err)
{
	/* EINVAL: kernel without ambient capabilities (< 4.3), nothing to clear. */
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "prctl(PR_CAP_AMBIENT_CLEAR_ALL)");
	return 0;
}

/* What the kernel says, not what we think we did. */
static int verify_no_caps(int bounding_must_be_empty, struct vmlet_err *err)
{
	struct __user_cap_data_struct data[2];
	int n = caps_count();

	if (caps_read(data) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "capget");
	for (int i = 0; i < 2; i++)
		if (data[i].effective || data[i].permitted || data[i].inheritable)
			return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
					     "capabilities still held after the drop (eff %08x prm %08x inh %08x)",
					     data[i].effective, data[i].permitted,
					     data[i].inheritable);
	for (int cap = 0; cap < n; cap++) {
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) > 0)
			return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
					     "ambient capability %d still set after the drop", cap);
		if (bounding_must_be_empty && prctl(PR_CAPBSET_READ, cap, 0, 0, 0) > 0)
			return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
					     "capability %d still in the bounding set after the drop",
					     cap);
	}
	return 0;
}

/* ---- user switch ------------------------------------------------------------------ */

/* The configured user/group must exist and agree with the resolved ids:
 * a typo in the config must not leave agentd running as a stale uid. */
static int check_target(const struct vmlet_config *cfg, struct vmlet_err *err)
{
	char q[VLOG_STR_MAX];
	struct passwd *pw;
	struct group *gr;

	errno = 0;
	pw = cfg->agentd_user[0] ? getpwnam(cfg->agentd_user) : getpwuid(cfg->agentd_uid);
	if (!pw)
		return vmlet_err_set(err, VMLET_E_INVALID, errno,
				     "agentd user %s (uid %u) does not exist",
				     vlog_str(cfg->agentd_user, q, sizeof(q)),
				     (unsigned)cfg->agentd_uid);
	if (pw->pw_uid != cfg->agentd_uid)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "agentd user %s has uid %u, configuration resolved uid %u",
				     vlog_str(cfg->agentd_user, q, sizeof(q)), (unsigned)pw->pw_uid,
				     (unsigned)cfg->agentd_uid);
	errno = 0;
	gr = cfg->agentd_group[0] ? getgrnam(cfg->agentd_group) : getgrgid(cfg->agentd_gid);
	if (!gr)
		return vmlet_err_set(err, VMLET_E_INVALID, errno,
				     "agentd group %s (gid %u) does not exist",
				     vlog_str(cfg->agentd_group, q, sizeof(q)),
				     (unsigned)cfg->agentd_gid);
	if (gr->gr_gid != cfg->agentd_gid)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "agentd group %s has gid %u, configuration resolved gid %u",
				     vlog_str(cfg->agentd_group, q, sizeof(q)), (unsigned)gr->gr_gid,
				     (unsigned)cfg->agentd_gid);
	if (cfg->agentd_uid == 0 || cfg->agentd_gid == 0)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "agentd must not run as root (user uid %u, group gid %u)",
				     (unsigned)cfg->agentd_uid, (unsigned)cfg->agentd_gid);
	return 0;
}

static int switch_user(const struct vmlet_config *cfg, struct vmlet_err *err)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	/* Groups first: once the uid changes we may no longer change them. */
	if (setgroups(1, &cfg->agentd_gid) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "setgroups(%u)",
				     (unsigned)cfg->agentd_gid);
	if (setresgid(cfg->agentd_gid, cfg->agentd_gid, cfg->agentd_gid) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "setresgid(%u)",
				     (unsigned)cfg->agentd_gid);
	if (setresuid(cfg->agentd_uid, cfg->agentd_uid, cfg->agentd_uid) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "setresuid(%u)",
				     (unsigned)cfg->agentd_uid);
	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "getresuid/getresgid");
	if (ru != cfg->agentd_uid || eu != ru || su != ru || rg != cfg->agentd_gid || eg != rg ||
	    sg != rg)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
				     "uid/gid after the drop are %u/%u/%u %u/%u/%u, expected %u/%u",
				     (unsigned)ru, (unsigned)eu, (unsigned)su, (unsigned)rg,
				     (unsigned)eg, (unsigned)sg, (unsigned)cfg->agentd_uid,
				     (unsigned)cfg->agentd_gid);
	return 0;
}

int agentd_drop_privileges(const struct vmlet_config *cfg, struct vmlet_err *err)
{
	uid_t ru, eu, su;
	int was_root;

	if (getresuid(&ru, &eu, &su) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "getresuid");
	was_root = ru == 0 || eu == 0 || su == 0;
	if (was_root) {
		if (check_target(cfg, err) < 0)
			return -1;
		/* Capabilities must not survive the uid change. */
		if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "prctl(PR_SET_KEEPCAPS, 0)");
		if (bounding_clear(1, err) < 0 || ambient_clear(err) < 0 || switch_user(cfg, err) < 0)
			return -1;
	} else if (eu != cfg->agentd_uid) {
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "running as uid %u but agentd user is uid %u: start agentd as root or as that user",
				     (unsigned)eu, (unsigned)cfg->agentd_uid);
	} else {
		/* Already the agentd user: shed what can be shed without
		 * privilege (the bounding set only with CAP_SETPCAP). */
		if (bounding_clear(0, err) < 0 || ambient_clear(err) < 0)
			return -1;
	}
	/* setresuid from root clears permitted/effective, not inheritable. */
	if (caps_clear_all() < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "capset(all empty)");
	if (verify_no_caps(was_root, err) < 0)
		return -1;
	if (was_root && (setuid(0) == 0 || setgid(0) == 0))
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
				     "setuid(0)/setgid(0) succeeded after the privilege drop");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "prctl(PR_SET_NO_NEW_PRIVS)");
	/* Not dumpable (the kernel already clears it on the uid change; this
	 * makes it explicit for the already-that-user path too): agentd's
	 * memory holds the TLS private key, so no core file may write it to
	 * disk and no other process of the agentd user may ptrace us or read
	 * /proc/<pid>/mem. /proc/<pid>/status stays readable for monitoring
	 * (mode 0444); only /proc/<pid>/{fd,mem,environ,...} become root's. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "prctl(PR_SET_DUMPABLE, 0)");
	return 0;
}

/* ---- seccomp ------------------------------------------------------------------------- */

/* Syscalls allowed without argument checks, grouped by why agentd needs
 * them. Names, not numbers: libseccomp maps them per architecture and we
 * skip the ones an architecture does not have (e.g. no "time" on arm64). */
static const char *const allow_plain[] = {
	/* Threads of NNG, wolfSSL and glibc: creation goes through the
	 * filtered clone rule below; these run and end them. rseq and
	 * set_robust_list are registered by every new glibc thread. */
	"futex", "set_robust_list", "get_robust_list", "rseq", "set_tid_address",
	"sched_yield", "sched_getaffinity", "exit", "exit_group", "restart_syscall",

	/* Memory: malloc, thread stacks, wolfSSL buffers. */
	"brk", "mmap", "munmap", "mprotect", "mremap", "madvise",

	/* Time and sleeping (vDSO fallbacks, NNG timers, token buckets). */
	"clock_gettime", "clock_getres", "gettimeofday", "time", "nanosleep",
	"clock_nanosleep",

	/* Signals: SIGINT/SIGTERM handling (sigaction or signalfd),
	 * sigaltstack used by sanitizer runtimes. tgkill: see below. */
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigtimedwait", "signalfd4",
	"sigaltstack", "getpid", "gettid",

	/* The event loop and NNG's pollers/notifications. */
	"epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "poll",
	"ppoll", "eventfd2", "pipe2", "timerfd_create", "timerfd_settime", "timerfd_gettime",

	/* Sockets that already exist (TLS and local listeners, accepted
	 * connections) and the NNG ipc connection to hostd. Creating sockets
	 * is filtered below (AF_UNIX only); bind/listen are not needed after
	 * the drop and are absent. */
	"accept", "accept4", "connect", "sendmsg", "recvmsg", "sendto", "recvfrom",
	"shutdown", "getsockopt", "setsockopt", "getsockname", "getpeername",

	/* fd I/O, logging to stderr, wolfSSL reading /dev/urandom, and the
	 * desired-state file in agentd's own state dir (atomic write: temp
	 * file, fsync, rename, fsync dir). */
	"read", "write", "readv", "writev", "pread64", "pwrite64", "lseek", "close", "fcntl",
	"fstat", "newfstatat", "statx", "openat", "getdents64", "rename", "renameat",
	"renameat2", "unlink", "unlinkat", "mkdir", "mkdirat", "fsync", "fdatasync", "fchmod",
	"ftruncate", "faccessat", "faccessat2", "umask",

	/* Entropy and identity facts (wolfSSL's RNG; log lines). */
	"getrandom", "uname", "getuid", "geteuid", "getgid", "getegid", "getgroups",
	"getresuid", "getresgid",
};

struct arg_rule {
	const char *name;
	uint32_t action;
	unsigned n_args;
	struct scmp_arg_cmp args[2];
};

/* CLONE_THREAD requires CLONE_SIGHAND which requires CLONE_VM: together
 * they mean "a thread of this process". Namespace flags are never part
 * of a thread. fork() and posix_spawn() lack CLONE_THREAD and die. */
#define THREAD_FLAGS_MASK                                                                      \
	(CLONE_THREAD | CLONE_SIGHAND | CLONE_VM | CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWPID | \
	 CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP)
#define THREAD_FLAGS_WANT (CLONE_THREAD | CLONE_SIGHAND | CLONE_VM)

/* One argument comparison; for SCMP_CMP_MASKED_EQ a is the mask, b the value. */
#define ARG(n, cmp, a, b) { .arg = (n), .op = (cmp), .datum_a = (a), .datum_b = (b) }

/* Rules that look at arguments. */
static const struct arg_rule allow_args[] = {
	/* Threads only (x86_64 and most arches: flags are arg 0). */
	{ "clone", SCMP_ACT_ALLOW, 1,
	  { ARG(0, SCMP_CMP_MASKED_EQ, THREAD_FLAGS_MASK, THREAD_FLAGS_WANT) } },
	/* clone3 passes its flags in memory, which seccomp cannot read:
	 * answer ENOSYS so glibc falls back to clone(), filtered above. */
	{ "clone3", SCMP_ACT_ERRNO(ENOSYS), 0, { ARG(0, SCMP_CMP_EQ, 0, 0) } },
	/* NNG redials hostd over ipc:// (AF_UNIX). No AF_INET/AF_INET6
	 * (no outbound network), no AF_PACKET, no AF_NETLINK. */
	{ "socket", SCMP_ACT_ALLOW, 1, { ARG(0, SCMP_CMP_EQ, AF_UNIX, 0) } },
	{ "socketpair", SCMP_ACT_ALLOW, 1, { ARG(0, SCMP_CMP_EQ, AF_UNIX, 0) } },
	/* getrlimit() is prlimit64(0, res, NULL, old): reading only. */
	{ "prlimit64", SCMP_ACT_ALLOW, 1, { ARG(2, SCMP_CMP_EQ, 0, 0) } },
	/* Thread names (glibc pthread_setname_np/getname_np on self). */
	{ "prctl", SCMP_ACT_ALLOW, 1, { ARG(0, SCMP_CMP_EQ, PR_SET_NAME, 0) } },
	{ "prctl", SCMP_ACT_ALLOW, 1, { ARG(0, SCMP_CMP_EQ, PR_GET_NAME, 0) } },
	/* Bytes waiting on a socket, non-blocking mode, and stdio's isatty()
	 * probe of stdout/stderr. No other ioctl (no TIOCSTI, no SIOC*). */
	{ "ioctl", SCMP_ACT_ALLOW, 1, { ARG(1, SCMP_CMP_EQ, FIONREAD, 0) } },
	{ "ioctl", SCMP_ACT_ALLOW, 1, { ARG(1, SCMP_CMP_EQ, FIONBIO, 0) } },
	{ "ioctl", SCMP_ACT_ALLOW, 1, { ARG(1, SCMP_CMP_EQ, TCGETS, 0) } },
};

/* Everything else hits the default action. Notably absent: execve,
 * execveat, fork, vfork, ptrace, process_vm_*, mount/umount2/pivot_root,
 * the set*id family, capset, bpf, io_uring_*, keyctl/add_key, kexec_*,
 * init_module, perf_event_open, userfaultfd, unshare/setns, chroot,
 * bind/listen, kill/tgkill of other processes. */

static int add_rule(scmp_filter_ctx ctx, const char *name, uint32_t action, unsigned n_args,
		    const struct scmp_arg_cmp *args, struct vmlet_err *err)
{
	int nr = seccomp_syscall_resolve_name(name);
	int rc;

	if (nr == __NR_SCMP_ERROR)
		return 0; /* not a syscall on this architecture */
	rc = seccomp_rule_add_array(ctx, action, nr, n_args, args);
	if (rc < 0)
		return vmlet_err_set(err, VMLET_E_INTERNAL, -rc, "seccomp_rule_add(%s): %s", name,
				     strerror(-rc));
	return 0;
}

int agentd_load_seccomp(struct vmlet_err *err)
{
	const char *log_env = getenv("VMLET_SECCOMP_LOG");
	int debug = log_env && strcmp(log_env, "1") == 0;
	uint32_t deny = debug ? SCMP_ACT_ERRNO(EPERM) : SCMP_ACT_KILL_PROCESS;
	struct scmp_arg_cmp self;
	scmp_filter_ctx ctx;
	int rc;

	ctx = seccomp_init(deny);
	if (!ctx)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "seccomp_init failed");
	/* TSYNC: NNG's and wolfSSL's threads already exist and must get the
	 * same filter atomically. BADARCH: a foreign-ABI syscall (int 0x80)
	 * is an attack, never agentd. LOG (debug mode): every denied call is
	 * written to the audit log / dmesg so the allowlist can be fixed. */
	if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) < 0 ||
	    (rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS)) < 0 ||
	    (debug && (rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_LOG, 1)) < 0)) {
		seccomp_release(ctx);
		return vmlet_err_set(err, VMLET_E_INTERNAL, -rc, "seccomp_attr_set: %s",
				     strerror(-rc));
	}
	for (size_t i = 0; i < sizeof(allow_plain) / sizeof(allow_plain[0]); i++)
		if (add_rule(ctx, allow_plain[i], SCMP_ACT_ALLOW, 0, NULL, err) < 0)
			goto fail;
	for (size_t i = 0; i < sizeof(allow_args) / sizeof(allow_args[0]); i++)
		if (add_rule(ctx, allow_args[i].name, allow_args[i].action, allow_args[i].n_args,
			     allow_args[i].args, err) < 0)
			goto fail;
	/* abort(), raise() and pthread_kill() signal our own threads only.
	 * Our pid cannot change any more (fork is gone), so pin it: no signal
	 * to another process of the agentd user. */
	self = (struct scmp_arg_cmp)ARG(0, SCMP_CMP_EQ, (scmp_datum_t)getpid(), 0);
	if (add_rule(ctx, "tgkill", SCMP_ACT_ALLOW, 1, &self, err) < 0)
		goto fail;
	rc = seccomp_load(ctx);
	if (rc < 0) {
		vmlet_err_set(err, VMLET_E_INTERNAL, -rc,
			      "seccomp_load (TSYNC): %s", strerror(-rc));
		goto fail;
	}
	seccomp_release(ctx);
	if (debug)
		vlog(VLOG_WARN, "seccomp_debug_mode",
		     "reason=\"VMLET_SECCOMP_LOG=1: denied syscalls fail with EPERM and are logged instead of killing\"");
	return 0;
fail:
	seccomp_release(ctx);
	return -1;
}
