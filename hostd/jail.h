/* The per-instance jail: hostd forks, jails and execs every VMM itself,
 * following the order of Firecracker's jailer (docs/jailer.md), so no VMM
 * ever runs with hostd's root, mounts, namespaces, fds or environment.
 *
 * Layout on the host (all root-owned, checked on every call):
 *   <jail_dir>            /var/lib/vmlet/jail/<instance>, 0700; its parent
 *                         must exist, and every component from / down to it
 *                         must be a root-owned directory (not a symlink) that
 *                         is not group/world-writable
 *   <jail_dir>/root       0755, the VMM's "/": only mount points, symlinks
 *                         and the writable dirs, made by jail_prepare
 * Every mount is made inside the child's own mount namespace, so the host
 * sees none of them and nothing is left mounted when the VMM ends.
 *
 * The child (clone with new mount, pid, ipc, uts, net namespaces; it is
 * pid 1 of its pid namespace; its UTS names are a private copy, left as
 * they are: systemd's ProtectHostname= would refuse sethostname), in this
 * order: default signal handlers;
 * join the cgroups (writes "0" to the pre-opened cgroup.procs fds) and
 * unshare a cgroup namespace; setsid; mount propagation private; bind the
 * jail root onto itself; attach the binds (read-only unless marked
 * writable; all nosuid,nodev); the writable dirs (nosuid,nodev,noexec);
 * pivot_root(".", ".") + umount2(".", MNT_DETACH); "/" remounted
 * read-only; a fresh tmpfs /dev with only the listed (allowlisted) device
 * nodes, owned by the instance uid, then remounted read-only; /proc
 * (hidepid=2, nosuid,nodev,noexec) when asked for; the fd map (keep_fds dup2'ed into place, /dev/null on unmapped 0-2,
 * everything else closed); rlimits; setgroups(none), setresgid;
 * bounding set cleared; setresuid; permitted/effective/inheritable and
 * ambient sets cleared and verified empty; no_new_privs; umask 077;
 * signals unblocked; execve with a fixed environment.
 *
 * hostd is multi-threaded (NNG): between clone and execve the child makes
 * only plain syscalls (no malloc, no stdio, no locks). Every path, argv
 * and fd number is prepared by the parent. A failing child writes
 * {step, index, errno} to a close-on-exec pipe and _exits(127); the parent
 * turns it into an error naming the step. EOF on the pipe means the exec
 * happened. Functions return negative and fill *err. */
#ifndef HOSTD_JAIL_H
#define HOSTD_JAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "shared/err.h"

#define JAIL_MAX_BINDS 16
#define JAIL_MAX_SYMLINKS 8
#define JAIL_MAX_DEVICES 8
#define JAIL_MAX_WRITABLE_DIRS 4
#define JAIL_MAX_KEEP_FDS 16
#define JAIL_MAX_CGROUP_FDS 8
#define JAIL_MAX_RLIMITS 8
#define JAIL_MAX_ARGS 128
/* Paths inside the jail ("/usr", "/image/vmlinuz"). */
#define JAIL_PATH_MAX 256
/* child_fd < this. Kept well under the usual RLIMIT_NOFILE soft limit
 * (1024): the child parks fds just above the highest child_fd. */
#define JAIL_CHILD_FD_LIMIT 256
/* How long jail_spawn waits for the child to exec or report a failure. */
#define JAIL_SPAWN_TIMEOUT_MS 10000

/* A host file or directory made visible in the jail (not recursive: what
 * the host mounted below a source stays out). Read-only unless writable;
 * always nosuid,nodev (and noexec when the source is). The parent resolves
 * the source in its own mount namespace (open_tree) and the child attaches
 * it (move_mount). With from_fd, the source is host_fd itself: exactly the
 * file the caller opened and checked (image files), not whatever the path
 * names by then; host_path then only names it in messages. */
struct jail_bind {
	const char *host_path; /* absolute */
	bool from_fd;
	int host_fd;
	const char *jail_path; /* absolute, normalized, not "/", not under /dev or /proc */
	bool writable;
};

/* A symlink in the jail root, e.g. lib -> usr/lib (Debian 12 is
 * merged-usr). target is relative, without "..". */
struct jail_symlink {
	const char *jail_path;
	const char *target;
};

/* A character device node under /dev, owned by the instance uid:gid with
 * mode (at most 0666). Only the devices a VMM needs are allowed:
 * null 1:3, zero 1:5, random 1:8, urandom 1:9, net/tun 10:200, kvm 10:232,
 * vhost-net 10:238, vhost-vsock 10:241. Anything else is refused. */
struct jail_device {
	const char *jail_path; /* "/dev/<name>" or "/dev/<dir>/<name>" */
	unsigned major, minor;
	mode_t mode;
};

/* A directory owned by the instance uid:gid (mode at most 0770), made by
 * jail_prepare inside the jail root on the host's disk and bind-mounted
 * nosuid,nodev,noexec. It is the only place the VMM can write (its QMP
 * socket, console log); hostd reaches it at <jail_dir>/root/<path>
 * (jail_host_path) without entering the VMM's namespaces. */
struct jail_writable_dir {
	const char *jail_path;
	mode_t mode;
};

/* parent_fd appears as child_fd in the VMM (FD_CLOEXEC cleared); they may
 * be equal. child_fd values are unique and < JAIL_CHILD_FD_LIMIT. */
struct jail_fd {
	int parent_fd;
	int child_fd;
};

/* Never raises a hard limit above the current one (hostd has no
 * CAP_SYS_RESOURCE): such a request is refused before anything runs. */
struct jail_rlimit {
	int resource; /* RLIMIT_* */
	rlim_t soft, hard;
};

struct jail_spec {
	const char *instance_id; /* "i-" + 8 hex; also the last component of jail_dir */
	uid_t uid;               /* the instance's own uid/gid: never 0 */
	gid_t gid;
	const char *jail_dir;    /* absolute, normalized */
	struct jail_bind binds[JAIL_MAX_BINDS];
	size_t n_binds;
	struct jail_symlink symlinks[JAIL_MAX_SYMLINKS];
	size_t n_symlinks;
	struct jail_device devices[JAIL_MAX_DEVICES];
	size_t n_devices;
	struct jail_writable_dir writable_dirs[JAIL_MAX_WRITABLE_DIRS];
	size_t n_writable_dirs;
	bool mount_proc;         /* a pid-namespace /proc, hidepid=2 */
	struct jail_fd keep_fds[JAIL_MAX_KEEP_FDS];
	size_t n_keep_fds;
	/* cgroup.procs files opened (O_WRONLY|O_CLOEXEC) by the cgroup module;
	 * the child writes "0" to each before anything else. */
	int cgroup_procs_fds[JAIL_MAX_CGROUP_FDS];
	size_t n_cgroup_procs_fds;
	struct jail_rlimit rlimits[JAIL_MAX_RLIMITS];
	size_t n_rlimits;
	const char *exec_path;   /* absolute, inside the jail */
	char *const *argv;       /* NULL-terminated, 1..JAIL_MAX_ARGS-1 entries */
};

/* The environment every jailed VMM gets; nothing of hostd's leaks in. */
extern char *const jail_envp[];

/* Check the spec (400 naming the field), the ownership of every component
 * of jail_dir's parent (403), create <jail_dir> (0700) if missing and a
 * fresh <jail_dir>/root with every mount point, symlink, writable dir and
 * the /dev (and /proc) mount points. A <jail_dir>/root left by an earlier
 * run is removed first (refused, 409, if anything is still mounted in it).
 * Must not run while a VMM of this jail is alive. */
int jail_prepare(const struct jail_spec *spec, struct vmlet_err *err);

/* Check again, clone the jailed child and wait until it has exec'ed
 * exec_path (or failed: then it is reaped and the error names the step,
 * e.g. "jail i-0000abcd: step 27 (execve /usr/bin/qemu): No such file or
 * directory"). On success *pid (as hostd sees it) and *pidfd (O_CLOEXEC,
 * owned by the caller) identify the running VMM; the caller reaps it. */
int jail_spawn(const struct jail_spec *spec, pid_t *pid, int *pidfd, struct vmlet_err *err);

/* Remove <jail_dir> and everything in it (files the VMM left in writable
 * dirs included), never following a symlink and never crossing a mount
 * point (409 if one is found: then nothing below it is touched).
 * jail_dir's last component must be an instance id. Missing: 0. */
int jail_cleanup(const char *jail_dir, struct vmlet_err *err);

/* <jail_dir>/root + jail_path: where hostd finds a file the VMM made in
 * one of the spec's writable dirs (its QMP socket). 400 unless jail_path
 * lies strictly beneath a writable dir of the spec. */
int jail_host_path(const struct jail_spec *spec, const char *jail_path, char *buf, size_t len,
		   struct vmlet_err *err);

/* The policy: production mode never runs a VMM outside its jail.
 * 0 when a VMM may be started (jailed, or not in production), else 403. */
int jail_policy_check(bool production, bool jailed, struct vmlet_err *err);

#endif
