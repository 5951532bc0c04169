/* Per-instance cgroups: <mount>/<root>/<tenant>/<instance> in the cgroup2
 * hierarchy, or the same relative path in each cgroup v1 hierarchy carrying
 * memory, cpu, pids (and freezer, used to stop forks while killing).
 *
 * Detected once at start; the env is read-only afterwards, so every call is
 * safe from several workers. Tenant and instance ids are validated before
 * any path is touched, and every directory is reached with openat() from a
 * directory fd of the mount, one component at a time, never by joining
 * strings. Functions return negative and fill *err. */
#ifndef HOSTD_CGROUP_H
#define HOSTD_CGROUP_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shared/err.h"

/* Controllers, as bits of cgroup_hier.ctls. */
#define CGROUP_CTL_MEMORY 0x1u
#define CGROUP_CTL_CPU 0x2u
#define CGROUP_CTL_PIDS 0x4u
#define CGROUP_CTL_FREEZER 0x8u
#define CGROUP_CTL_NEEDED (CGROUP_CTL_MEMORY | CGROUP_CTL_CPU | CGROUP_CTL_PIDS)

/* v1: one per distinct hierarchy (cpu,cpuacct or memory,pids comounts
 * count once); v2: exactly one. */
#define CGROUP_MAX_HIER 4
#define CGROUP_ROOT_MAX 128

enum cgroup_mode { CGROUP_MODE_AUTO = 0, CGROUP_MODE_V2, CGROUP_MODE_V1 };

struct cgroup_hier {
	unsigned ctls;         /* CGROUP_CTL_* this hierarchy carries (v2: all needed) */
	int mount_fd;          /* O_PATH directory fd of the mount point */
	char mount[PATH_MAX];  /* mount point, for messages and tests */
};

/* Filled by cgroup_detect; fields are read-only for callers. */
struct cgroup_env {
	int version;                /* 1 or 2 */
	bool has_freezer;           /* v1: a freezer hierarchy is part of hier[] */
	char root[CGROUP_ROOT_MAX]; /* vmlet's tree below each mount ("vmlet") */
	unsigned nhier;
	struct cgroup_hier hier[CGROUP_MAX_HIER];
};

/* Limits of one instance; all required. The memory limit is rounded down
 * to the page size by the kernel (and the read-back check knows it). Swap
 * is left alone: v1 memory.memsw.* and v2 memory.swap.max keep their
 * defaults. */
struct cgroup_limits {
	uint64_t mem_bytes;     /* 1 MiB .. 1 PiB */
	uint64_t cpu_quota_us;  /* 1000 .. 1024 * period */
	uint64_t cpu_period_us; /* 1000 .. 1000000 */
	uint64_t pids_max;      /* 1 .. 4194304 */
};

struct cgroup_stats {
	uint64_t mem_bytes; /* v2 memory.current, v1 memory.usage_in_bytes */
	uint64_t pids;      /* pids.current */
};

/* The cgroup.procs of an instance in every hierarchy, opened (O_CLOEXEC)
 * by the parent so a forked child can join without allocating. */
struct cgroup_procs_fds {
	unsigned n;
	int fd[CGROUP_MAX_HIER];
};

/* Parse /proc/self/mountinfo: v2 when the cgroup2 mount's cgroup.controllers
 * has memory, cpu and pids; else v1 when memory, cpu and pids hierarchies
 * are mounted (freezer noted when present); else 503 naming what is
 * missing. root_name: 1-8 '/'-separated components of [A-Za-z0-9._-]
 * (not "." or ".."). mode forces one version (tests). */
int cgroup_detect(const char *root_name, enum cgroup_mode mode, struct cgroup_env *env,
		  struct vmlet_err *err);
/* Same, from another mountinfo file (tests feed crafted ones). */
int cgroup_detect_from(const char *mountinfo_path, const char *root_name, enum cgroup_mode mode,
		       struct cgroup_env *env, struct vmlet_err *err);
/* Close the mount fds. */
void cgroup_env_close(struct cgroup_env *env);

/* Create (or re-apply, idempotently) the instance cgroup and its limits.
 * v2 enables +memory +cpu +pids in cgroup.subtree_control of every ancestor
 * from the mount root down. Every limit is read back; a mismatch fails with
 * the file and both values. A failed create removes the instance directories
 * it made. */
int cgroup_create(const struct cgroup_env *env, const char *tenant, const char *instance,
		  const struct cgroup_limits *lim, struct vmlet_err *err);

/* Move pid (> 0) into the instance cgroup in every hierarchy. */
int cgroup_add_pid(const struct cgroup_env *env, const char *tenant, const char *instance,
		   pid_t pid, struct vmlet_err *err);

/* Open the instance's cgroup.procs files for cgroup_procs_fds_join. */
int cgroup_open_procs_fds(const struct cgroup_env *env, const char *tenant, const char *instance,
			  struct cgroup_procs_fds *out, struct vmlet_err *err);
/* In a forked child: write "0" (the caller itself) to every fd. No
 * allocation, async-signal-safe. 0, or -errno of the first failed write.
 * Run it before the jail closes inherited fds; the fds close on exec. */
int cgroup_procs_fds_join(const struct cgroup_procs_fds *fds);
void cgroup_procs_fds_close(struct cgroup_procs_fds *fds);

/* Kill every process of the instance cgroup and wait (up to timeout_ms)
 * until it is empty. v2: cgroup.kill, then cgroup.events "populated 0".
 * v1: freeze (when a freezer is mounted), SIGKILL each pid through a pidfd
 * after re-checking membership, thaw, repeat until empty (v2 sends no
 * signal itself: signals=0 in the log). A missing cgroup
 * is already empty (0). Refuses (409) when the caller is in it. */
int cgroup_kill_all(const struct cgroup_env *env, const char *tenant, const char *instance,
		    int timeout_ms, struct vmlet_err *err);

/* kill_all, then remove the instance directory in every hierarchy, then
 * the tenant directory when it is empty. Idempotent. */
int cgroup_remove(const struct cgroup_env *env, const char *tenant, const char *instance,
		  int timeout_ms, struct vmlet_err *err);

/* Current memory use and number of pids (404 when the cgroup is missing).
 * pids.current counts a task until its parent reaps it, so it can stay
 * above 0 after kill_all; that does not keep remove from succeeding. */
int cgroup_read_stats(const struct cgroup_env *env, const char *tenant, const char *instance,
		      struct cgroup_stats *st, struct vmlet_err *err);

/* Existing instance ids of a tenant (tenant NULL: tenant ids under the
 * root), union over the hierarchies, sorted; names that are not valid ids
 * are skipped (vmlet never creates them). *ids is malloc'd; free with
 * cgroup_list_free. A missing tenant/root lists nothing. */
int cgroup_list(const struct cgroup_env *env, const char *tenant, char ***ids, size_t *n,
		struct vmlet_err *err);
void cgroup_list_free(char **ids, size_t n);

/* The read-back rule (exposed for tests): got (trailing newline ignored)
 * must equal expect. page_rounded says expect is wrote rounded down to the
 * page size (memory limits), which the message then explains. */
int cgroup_readback_check(const char *path, const char *wrote, const char *expect,
			  bool page_rounded, const char *got, struct vmlet_err *err);

#endif
