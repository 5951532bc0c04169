/* Per-instance cgroups, v2 or v1 (see cgroup.h). Models: crun's
 * libcrun/cgroup-v1.c / cgroup-v2.c for the file dance, runc's kill-by-freeze
 * for v1. Every path below a mount is walked component by component with
 * openat(O_NOFOLLOW) from the mount's directory fd; ids are validated first. */
#include "hostd/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "shared/cleanup.h"
#include "shared/log.h"
#include "shared/validate.h"

#define MEM_MIN (UINT64_C(1) << 20)
#define MEM_MAX (UINT64_C(1) << 50)
#define CPU_PERIOD_MIN 1000     /* the kernel's min_cfs_quota_period */
#define CPU_PERIOD_MAX 1000000  /* and max_cfs_quota_period */
#define CPU_QUOTA_MIN 1000
#define CPU_QUOTA_MAX_FACTOR 1024 /* quota up to 1024 CPUs' worth of the period */
#define PIDS_LIMIT 4194304      /* PID_MAX_LIMIT on 64-bit */
#define ROOT_MAX_DEPTH 8
#define ROOT_COMP_MAX 63
#define CG_DIR_MODE 0755
#define SMALL_FILE_MAX 512
#define DISP_MAX (PATH_MAX + 256)
#define PIDFD_BATCH 256
#define POLL_SLICE_MS 100       /* re-check even if a kernfs notification is lost */
#define BACKOFF_MAX_MS 50

/* ---- small helpers --------------------------------------------------------- */

static int code_for_errno(int e)
{
	return e == ENOENT ? VMLET_E_NOT_FOUND : VMLET_E_INTERNAL;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int ms_left(int64_t deadline)
{
	int64_t left = deadline - now_ms();

	if (left <= 0)
		return 0;
	return left > INT32_MAX ? INT32_MAX : (int)left;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static uint64_t page_size(void)
{
	long p = sysconf(_SC_PAGESIZE);

	return p > 0 ? (uint64_t)p : 4096;
}

static const struct {
	unsigned bit;
	const char *name;
} controller_names[] = {
	{ CGROUP_CTL_MEMORY, "memory" },
	{ CGROUP_CTL_CPU, "cpu" },
	{ CGROUP_CTL_PIDS, "pids" },
	{ CGROUP_CTL_FREEZER, "freezer" },
};

#define N_CONTROLLERS (sizeof(controller_names) / sizeof(controller_names[0]))

/* Controllers named in a list ("rw,cpu,cpuacct" or "cpu io memory pids"). */
static unsigned controllers_in(const char *list, const char *seps)
{
	unsigned mask = 0;

	while (*list) {
		size_t n = strcspn(list, seps);

		for (size_t i = 0; i < N_CONTROLLERS; i++)
			if (strlen(controller_names[i].name) == n &&
			    !memcmp(list, controller_names[i].name, n))
				mask |= controller_names[i].bit;
		list += n;
		list += strspn(list, seps);
	}
	return mask;
}

/* "memory cpu" for a mask, in a fixed order. */
static const char *controller_list(unsigned mask, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < N_CONTROLLERS; i++) {
		if (!(mask & controller_names[i].bit))
			continue;
		int n = snprintf(buf + used, len - used, "%s%s", used ? " " : "",
				 controller_names[i].name);
		if (n < 0 || (size_t)n >= len - used)
			break;
		used += (size_t)n;
	}
	return buf;
}

static int check_tenant(const char *tenant, struct vmlet_err *err)
{
	return vmlet_validate_id("tenant_id", tenant, err);
}

static int check_ids(const char *tenant, const char *instance, struct vmlet_err *err)
{
	if (check_tenant(tenant, err) < 0 ||
	    vmlet_validate_instance_id("instance_id", instance, err) < 0)
		return -1;
	return 0;
}

/* 1-8 components of [A-Za-z0-9._-]{1,63}, not "." or "..", separated by '/'. */
static bool root_name_ok(const char *s)
{
	static const char allowed[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-";
	unsigned depth = 0;

	if (!s || !*s || strnlen(s, CGROUP_ROOT_MAX) >= CGROUP_ROOT_MAX)
		return false;
	for (;;) {
		size_t n = strspn(s, allowed);

		if (n == 0 || n > ROOT_COMP_MAX || ++depth > ROOT_MAX_DEPTH)
			return false;
		if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
			return false;
		s += n;
		if (*s == '\0')
			return true;
		if (*s != '/' || s[1] == '\0')
			return false;
		s++;
	}
}

/* ---- file I/O beneath a directory fd -------------------------------------- */

/* Read a small cgroup file; the trailing newline is dropped. */
static int read_small_at(int dirfd, const char *file, char *buf, size_t len, const char *disp,
			 struct vmlet_err *err)
{
	_cleanup_close_ int fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	size_t used = 0;

	if (fd < 0)
		return vmlet_err_sys(err, code_for_errno(errno), "open %s/%s", disp, file);
	for (;;) {
		ssize_t n = read(fd, buf + used, len - 1 - used);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "read %s/%s", disp, file);
		if (n == 0)
			break;
		used += (size_t)n;
		if (used == len - 1)
			return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
					     "read %s/%s: longer than %zu bytes", disp, file, len - 1);
	}
	buf[used] = '\0';
	while (used && (buf[used - 1] == '\n' || buf[used - 1] == ' '))
		buf[--used] = '\0';
	return 0;
}

static int write_at(int dirfd, const char *file, const char *text, const char *disp,
		    struct vmlet_err *err)
{
	_cleanup_close_ int fd = openat(dirfd, file, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	size_t len = strlen(text);
	ssize_t n;

	if (fd < 0)
		return vmlet_err_sys(err, code_for_errno(errno), "open %s/%s", disp, file);
	do
		n = write(fd, text, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "write \"%s\" to %s/%s", text, disp,
				     file);
	if ((size_t)n != len)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "write \"%s\" to %s/%s: short write",
				     text, disp, file);
	return 0;
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return errno || *end ? -1 : 0;
}

/* ---- walking the tree -------------------------------------------------------- */

/* <root components>[/tenant[/instance]], already validated. */
struct cg_path {
	char root_copy[CGROUP_ROOT_MAX];
	const char *comp[ROOT_MAX_DEPTH + 2];
	size_t n;
};

static void cg_path_init(struct cg_path *p, const struct cgroup_env *env, const char *tenant,
			 const char *instance)
{
	char *save = NULL;

	memcpy(p->root_copy, env->root, sizeof(p->root_copy));
	p->n = 0;
	for (char *c = strtok_r(p->root_copy, "/", &save); c && p->n < ROOT_MAX_DEPTH;
	     c = strtok_r(NULL, "/", &save))
		p->comp[p->n++] = c;
	if (tenant)
		p->comp[p->n++] = tenant;
	if (tenant && instance)
		p->comp[p->n++] = instance;
}

/* For messages only: never used to open anything. */
static const char *disp_path(char *buf, size_t len, const struct cgroup_hier *h,
			     const struct cg_path *p, size_t upto)
{
	size_t used = (size_t)snprintf(buf, len, "%s", h->mount);

	for (size_t i = 0; i < upto && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "/%s", p->comp[i]);
	return buf;
}

static int enable_controllers(int dirfd, const char *disp, struct vmlet_err *err);

enum { WALK_CREATE = 1, WALK_ENABLE = 2 };

/* Open the directory at p beneath h's mount. WALK_CREATE makes missing
 * components; WALK_ENABLE (v2) makes memory, cpu and pids available below
 * the mount root and below every directory passed, the last one included.
 * O_NOFOLLOW on each step: a symlink planted in the tree is refused.
 * Returns the fd; -1 with err (sys_errno ENOENT when a part is missing). */
static int walk(const struct cgroup_hier *h, const struct cg_path *p, unsigned flags,
		struct vmlet_err *err)
{
	_cleanup_close_ int cur = openat(h->mount_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char disp[DISP_MAX];

	if (cur < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "open %s", h->mount);
	for (size_t i = 0; i < p->n; i++) {
		int next;

		if ((flags & WALK_ENABLE) &&
		    enable_controllers(cur, disp_path(disp, sizeof(disp), h, p, i), err) < 0)
			return -1;
		if ((flags & WALK_CREATE) && mkdirat(cur, p->comp[i], CG_DIR_MODE) < 0 &&
		    errno != EEXIST)
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "mkdir %s",
					     disp_path(disp, sizeof(disp), h, p, i + 1));
		next = openat(cur, p->comp[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0)
			return vmlet_err_sys(err, code_for_errno(errno), "open %s",
					     disp_path(disp, sizeof(disp), h, p, i + 1));
		close(cur);
		cur = next;
	}
	if ((flags & WALK_ENABLE) &&
	    enable_controllers(cur, disp_path(disp, sizeof(disp), h, p, p->n), err) < 0)
		return -1;
	return vmlet_take_fd(&cur);
}

/* v2: children of dirfd get memory, cpu and pids. Only missing controllers
 * are written (a populated non-root cgroup refuses any subtree_control write,
 * so an already-enabled ancestor must be left alone); then read back. */
static int enable_controllers(int dirfd, const char *disp, struct vmlet_err *err)
{
	char avail[SMALL_FILE_MAX], have[SMALL_FILE_MAX], want[64], names[64];
	unsigned missing;
	size_t used = 0;

	if (read_small_at(dirfd, "cgroup.controllers", avail, sizeof(avail), disp, err) < 0)
		return -1;
	missing = CGROUP_CTL_NEEDED & ~controllers_in(avail, " ");
	if (missing)
		return vmlet_err_set(err, VMLET_E_UNAVAILABLE, 0,
				     "%s/cgroup.controllers lacks %s (it has \"%s\")", disp,
				     controller_list(missing, names, sizeof(names)), avail);
	if (read_small_at(dirfd, "cgroup.subtree_control", have, sizeof(have), disp, err) < 0)
		return -1;
	missing = CGROUP_CTL_NEEDED & ~controllers_in(have, " ");
	if (!missing)
		return 0;
	want[0] = '\0';
	for (size_t i = 0; i < N_CONTROLLERS; i++)
		if (missing & controller_names[i].bit)
			used += (size_t)snprintf(want + used, sizeof(want) - used, "%s+%s",
						 used ? " " : "", controller_names[i].name);
	if (write_at(dirfd, "cgroup.subtree_control", want, disp, err) < 0 ||
	    read_small_at(dirfd, "cgroup.subtree_control", have, sizeof(have), disp, err) < 0)
		return -1;
	missing = CGROUP_CTL_NEEDED & ~controllers_in(have, " ");
	if (missing)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
				     "%s/cgroup.subtree_control: wrote \"%s\", read back \"%s\"",
				     disp, want, have);
	return 0;
}

/* The instance directory in every hierarchy; fd -1 where it does not exist. */
struct inst_dirs {
	int fd[CGROUP_MAX_HIER];
	char disp[CGROUP_MAX_HIER][DISP_MAX];
	unsigned present;
};

static void inst_dirs_close(struct inst_dirs *d)
{
	for (unsigned i = 0; i < CGROUP_MAX_HIER; i++)
		if (d->fd[i] >= 0)
			close(d->fd[i]);
}

static int inst_dirs_open(const struct cgroup_env *env, const char *tenant, const char *instance,
			  struct inst_dirs *d, struct vmlet_err *err)
{
	struct cg_path p;

	cg_path_init(&p, env, tenant, instance);
	d->present = 0;
	for (unsigned i = 0; i < CGROUP_MAX_HIER; i++)
		d->fd[i] = -1;
	for (unsigned i = 0; i < env->nhier; i++) {
		disp_path(d->disp[i], sizeof(d->disp[i]), &env->hier[i], &p, p.n);
		d->fd[i] = walk(&env->hier[i], &p, 0, err);
		if (d->fd[i] >= 0) {
			d->present++;
		} else if (err->sys_errno != ENOENT) {
			inst_dirs_close(d);
			return -1;
		}
	}
	return 0;
}

/* ---- detection --------------------------------------------------------------- */

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape_octal(char *s)
{
	char *w = s;

	for (const char *r = s; *r;) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 4;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
}

struct mount_fields {
	char *point, *fstype, *superopts;
};

/* "36 35 98:0 /root /mnt opts [optional...] - fstype source superopts" */
static int split_mountinfo(char *line, struct mount_fields *m)
{
	char *field[64], *save = NULL;
	size_t n = 0;

	line[strcspn(line, "\n")] = '\0';
	for (char *t = strtok_r(line, " ", &save); t && n < 64; t = strtok_r(NULL, " ", &save))
		field[n++] = t;
	for (size_t k = 6; k + 3 < n; k++) {
		if (strcmp(field[k], "-") != 0)
			continue;
		m->point = field[4];
		m->fstype = field[k + 1];
		m->superopts = field[k + 3];
		unescape_octal(m->point);
		return 0;
	}
	return -1;
}

struct found_mounts {
	bool v2;
	char v2_mount[PATH_MAX];
	unsigned nv1;
	unsigned v1_covered; /* controllers some v1 entry already carries */
	struct {
		char mount[PATH_MAX];
		unsigned ctls;
	} v1[CGROUP_MAX_HIER];
};

static int scan_mountinfo(const char *path, struct found_mounts *fm, struct vmlet_err *err)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;

	memset(fm, 0, sizeof(*fm));
	if (!f)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "open %s", path);
	while (getline(&line, &cap, f) > 0) {
		struct mount_fields m;
		unsigned ctls;

		if (split_mountinfo(line, &m) < 0 || strlen(m.point) >= PATH_MAX)
			continue;
		if (strcmp(m.fstype, "cgroup2") == 0) {
			/* The first cgroup2 mount; later ones are bind mounts or over-mounts. */
			if (!fm->v2) {
				fm->v2 = true;
				snprintf(fm->v2_mount, sizeof(fm->v2_mount), "%s", m.point);
			}
			continue;
		}
		if (strcmp(m.fstype, "cgroup") != 0)
			continue;
		/* Each controller from the first hierarchy that carries it. */
		ctls = controllers_in(m.superopts, ",") & ~fm->v1_covered;
		if (!ctls || fm->nv1 == CGROUP_MAX_HIER)
			continue;
		snprintf(fm->v1[fm->nv1].mount, PATH_MAX, "%s", m.point);
		fm->v1[fm->nv1].ctls = ctls;
		fm->v1_covered |= ctls;
		fm->nv1++;
	}
	if (ferror(f))
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "read %s", path);
	return 0;
}

static int open_mount(struct cgroup_hier *h, const char *mount, unsigned ctls,
		      struct vmlet_err *err)
{
	snprintf(h->mount, sizeof(h->mount), "%s", mount);
	h->ctls = ctls;
	h->mount_fd = open(mount, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (h->mount_fd < 0)
		return vmlet_err_sys(err, VMLET_E_UNAVAILABLE, "open cgroup mount %s", mount);
	return 0;
}

/* v2 is usable when the mount root offers memory, cpu and pids. On failure
 * why says what is missing. */
static bool v2_usable(const struct found_mounts *fm, struct cgroup_env *env, char *why,
		      size_t whylen)
{
	char avail[SMALL_FILE_MAX], names[64];
	struct vmlet_err e;
	unsigned missing;

	if (!fm->v2) {
		snprintf(why, whylen, "no cgroup2 mount");
		return false;
	}
	if (open_mount(&env->hier[0], fm->v2_mount, CGROUP_CTL_NEEDED, &e) < 0 ||
	    read_small_at(env->hier[0].mount_fd, "cgroup.controllers", avail, sizeof(avail),
			  fm->v2_mount, &e) < 0) {
		snprintf(why, whylen, "%s", e.msg);
		cgroup_env_close(env);
		return false;
	}
	missing = CGROUP_CTL_NEEDED & ~controllers_in(avail, " ");
	if (missing) {
		snprintf(why, whylen, "cgroup2 at %.200s lacks %s (cgroup.controllers: \"%.100s\")",
			 fm->v2_mount, controller_list(missing, names, sizeof(names)), avail);
		cgroup_env_close(env);
		return false;
	}
	env->version = 2;
	env->nhier = 1;
	return true;
}

static bool v1_usable(const struct found_mounts *fm, struct cgroup_env *env, char *why,
		      size_t whylen)
{
	unsigned missing = CGROUP_CTL_NEEDED & ~fm->v1_covered;
	struct vmlet_err e;
	char names[64];

	if (missing) {
		snprintf(why, whylen, "no cgroup v1 hierarchy for %s",
			 controller_list(missing, names, sizeof(names)));
		return false;
	}
	for (unsigned i = 0; i < fm->nv1; i++) {
		if (open_mount(&env->hier[i], fm->v1[i].mount, fm->v1[i].ctls, &e) < 0) {
			snprintf(why, whylen, "%s", e.msg);
			cgroup_env_close(env);
			return false;
		}
		env->nhier = i + 1;
	}
	env->version = 1;
	env->has_freezer = (fm->v1_covered & CGROUP_CTL_FREEZER) != 0;
	return true;
}

int cgroup_detect_from(const char *mountinfo_path, const char *root_name, enum cgroup_mode mode,
		       struct cgroup_env *env, struct vmlet_err *err)
{
	struct found_mounts *fm;
	char why2[512] = "", why1[512] = "";
	bool ok = false;

	memset(env, 0, sizeof(*env));
	for (unsigned i = 0; i < CGROUP_MAX_HIER; i++)
		env->hier[i].mount_fd = -1;
	if (!root_name_ok(root_name))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "cgroup_root: \"%.*s\" must be 1-%d '/'-separated names of "
				     "[A-Za-z0-9._-]{1,%d}, not \".\" or \"..\"",
				     CGROUP_ROOT_MAX, root_name ? root_name : "", ROOT_MAX_DEPTH,
				     ROOT_COMP_MAX);
	snprintf(env->root, sizeof(env->root), "%s", root_name);
	/* Two PATH_MAX buffers per hierarchy: keep them off the stack. */
	fm = calloc(1, sizeof(*fm));
	if (!fm)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "cgroup detection");
	if (scan_mountinfo(mountinfo_path, fm, err) < 0) {
		free(fm);
		return -1;
	}
	if (mode != CGROUP_MODE_V1)
		ok = v2_usable(fm, env, why2, sizeof(why2));
	if (!ok && mode != CGROUP_MODE_V2)
		ok = v1_usable(fm, env, why1, sizeof(why1));
	free(fm);
	if (ok) {
		vlog(VLOG_INFO, "cgroup_detected", "version=%d root=%s hierarchies=%u freezer=%d",
		     env->version, env->root, env->nhier, env->has_freezer);
		return 0;
	}
	if (mode == CGROUP_MODE_V2)
		return vmlet_err_set(err, VMLET_E_UNAVAILABLE, 0, "cgroup v2 unusable: %s", why2);
	if (mode == CGROUP_MODE_V1)
		return vmlet_err_set(err, VMLET_E_UNAVAILABLE, 0, "cgroup v1 unusable: %s", why1);
	return vmlet_err_set(err, VMLET_E_UNAVAILABLE, 0,
			     "no usable cgroups: v2: %s; v1: %s", why2, why1);
}

int cgroup_detect(const char *root_name, enum cgroup_mode mode, struct cgroup_env *env,
		  struct vmlet_err *err)
{
	return cgroup_detect_from("/proc/self/mountinfo", root_name, mode, env, err);
}

void cgroup_env_close(struct cgroup_env *env)
{
	for (unsigned i = 0; i < CGROUP_MAX_HIER; i++) {
		if (env->hier[i].mount_fd >= 0)
			close(env->hier[i].mount_fd);
		env->hier[i].mount_fd = -1;
	}
	env->nhier = 0;
}

/* ---- limits ------------------------------------------------------------------ */

enum limit_kind { LIM_MEM, LIM_CPU_MAX, LIM_CPU_PERIOD, LIM_CPU_QUOTA, LIM_PIDS };

/* What create writes, in order, per version. */
static const struct limit_file {
	int version;
	unsigned ctl;
	const char *file;
	enum limit_kind kind;
} limit_files[] = {
	{ 2, CGROUP_CTL_MEMORY, "memory.max", LIM_MEM },
	{ 2, CGROUP_CTL_CPU, "cpu.max", LIM_CPU_MAX },
	{ 2, CGROUP_CTL_PIDS, "pids.max", LIM_PIDS },
	{ 1, CGROUP_CTL_MEMORY, "memory.limit_in_bytes", LIM_MEM },
	/* The period first: the quota written next is a share of it. */
	{ 1, CGROUP_CTL_CPU, "cpu.cfs_period_us", LIM_CPU_PERIOD },
	{ 1, CGROUP_CTL_CPU, "cpu.cfs_quota_us", LIM_CPU_QUOTA },
	{ 1, CGROUP_CTL_PIDS, "pids.max", LIM_PIDS },
};

/* The text to write and the text reading it back must give. */
static bool format_limit(enum limit_kind kind, const struct cgroup_limits *l, char *wrote,
			 char *expect, size_t len)
{
	uint64_t page = page_size();

	switch (kind) {
	case LIM_MEM:
		snprintf(wrote, len, "%" PRIu64, l->mem_bytes);
		snprintf(expect, len, "%" PRIu64, l->mem_bytes / page * page);
		return true;
	case LIM_CPU_MAX:
		snprintf(wrote, len, "%" PRIu64 " %" PRIu64, l->cpu_quota_us, l->cpu_period_us);
		break;
	case LIM_CPU_PERIOD:
		snprintf(wrote, len, "%" PRIu64, l->cpu_period_us);
		break;
	case LIM_CPU_QUOTA:
		snprintf(wrote, len, "%" PRIu64, l->cpu_quota_us);
		break;
	case LIM_PIDS:
		snprintf(wrote, len, "%" PRIu64, l->pids_max);
		break;
	}
	snprintf(expect, len, "%s", wrote);
	return false;
}

static int check_limits(const struct cgroup_limits *l, struct vmlet_err *err)
{
	if (!l)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "limits: missing");
	if (l->mem_bytes < MEM_MIN || l->mem_bytes > MEM_MAX)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "limits.mem_bytes: %" PRIu64 " out of range %" PRIu64
				     "..%" PRIu64,
				     l->mem_bytes, MEM_MIN, MEM_MAX);
	if (l->cpu_period_us < CPU_PERIOD_MIN || l->cpu_period_us > CPU_PERIOD_MAX)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "limits.cpu_period_us: %" PRIu64 " out of range %d..%d",
				     l->cpu_period_us, CPU_PERIOD_MIN, CPU_PERIOD_MAX);
	if (l->cpu_quota_us < CPU_QUOTA_MIN ||
	    l->cpu_quota_us > l->cpu_period_us * CPU_QUOTA_MAX_FACTOR)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "limits.cpu_quota_us: %" PRIu64 " out of range %d..%" PRIu64,
				     l->cpu_quota_us, CPU_QUOTA_MIN,
				     l->cpu_period_us * CPU_QUOTA_MAX_FACTOR);
	if (l->pids_max < 1 || l->pids_max > PIDS_LIMIT)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "limits.pids_max: %" PRIu64 " out of range 1..%d", l->pids_max,
				     PIDS_LIMIT);
	return 0;
}

int cgroup_readback_check(const char *path, const char *wrote, const char *expect,
			  bool page_rounded, const char *got, struct vmlet_err *err)
{
	size_t n = strlen(got);

	while (n && (got[n - 1] == '\n' || got[n - 1] == ' '))
		n--;
	if (n == strlen(expect) && memcmp(got, expect, n) == 0)
		return 0;
	if (page_rounded)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
				     "%s: wrote %s, read back \"%.*s\", expected %s (the kernel "
				     "rounds memory limits down to whole %" PRIu64
				     "-byte pages; the comparison allows exactly that)",
				     path, wrote, (int)n, got, expect, page_size());
	return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "%s: wrote %s, read back \"%.*s\"", path,
			     wrote, (int)n, got);
}

/* Index of the hierarchy carrying ctl (v2: the only one). */
static int hier_of(const struct cgroup_env *env, unsigned ctl)
{
	for (unsigned i = 0; i < env->nhier; i++)
		if (env->hier[i].ctls & ctl)
			return (int)i;
	return -1;
}

static int apply_limits(const struct cgroup_env *env, const int *leaf_fd,
			char (*disp)[DISP_MAX], const struct cgroup_limits *l,
			struct vmlet_err *err)
{
	for (size_t i = 0; i < sizeof(limit_files) / sizeof(limit_files[0]); i++) {
		const struct limit_file *lf = &limit_files[i];
		char wrote[48], expect[48], got[SMALL_FILE_MAX], path[DISP_MAX + 32];
		int h = hier_of(env, lf->ctl);
		bool rounded;

		if (lf->version != env->version)
			continue;
		if (h < 0)
			return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "no hierarchy for %s",
					     lf->file);
		rounded = format_limit(lf->kind, l, wrote, expect, sizeof(wrote));
		snprintf(path, sizeof(path), "%s/%s", disp[h], lf->file);
		if (write_at(leaf_fd[h], lf->file, wrote, disp[h], err) < 0 ||
		    read_small_at(leaf_fd[h], lf->file, got, sizeof(got), disp[h], err) < 0 ||
		    cgroup_readback_check(path, wrote, expect, rounded, got, err) < 0)
			return -1;
	}
	return 0;
}

/* Make the instance directory in hierarchy h. *tenant_fd and *leaf_fd are
 * returned open; *made says the leaf is new (so a failed create removes it). */
static int make_leaf(const struct cgroup_env *env, const struct cgroup_hier *h,
		     const char *tenant, const char *instance, int *tenant_fd, int *leaf_fd,
		     bool *made, char *disp, struct vmlet_err *err)
{
	unsigned flags = WALK_CREATE | (env->version == 2 ? WALK_ENABLE : 0);
	struct cg_path p;

	cg_path_init(&p, env, tenant, instance);
	disp_path(disp, DISP_MAX, h, &p, p.n);
	/* Twice: a concurrent remove of the tenant's last instance may rmdir the
	 * tenant directory between our walk and our mkdir. */
	for (int attempt = 0; attempt < 2; attempt++) {
		struct cg_path tp;

		cg_path_init(&tp, env, tenant, NULL);
		*tenant_fd = walk(h, &tp, flags, err);
		if (*tenant_fd < 0)
			return -1;
		if (mkdirat(*tenant_fd, instance, CG_DIR_MODE) == 0) {
			*made = true;
		} else if (errno == ENOENT && attempt == 0) {
			close(*tenant_fd);
			*tenant_fd = -1;
			continue;
		} else if (errno != EEXIST) {
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "mkdir %s", disp);
		}
		*leaf_fd = openat(*tenant_fd, instance, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (*leaf_fd < 0)
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "open %s", disp);
		return 0;
	}
	return vmlet_err_set(err, VMLET_E_CONFLICT, ENOENT, "mkdir %s: tenant directory removed twice",
			     disp);
}

int cgroup_create(const struct cgroup_env *env, const char *tenant, const char *instance,
		  const struct cgroup_limits *lim, struct vmlet_err *err)
{
	int tenant_fd[CGROUP_MAX_HIER], leaf_fd[CGROUP_MAX_HIER];
	bool made[CGROUP_MAX_HIER] = { false };
	_cleanup_free_ char(*disp)[DISP_MAX] = NULL;
	int rc = -1;

	if (check_ids(tenant, instance, err) < 0 || check_limits(lim, err) < 0)
		return -1;
	disp = calloc(CGROUP_MAX_HIER, sizeof(*disp));
	if (!disp)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "cgroup create");
	for (unsigned i = 0; i < CGROUP_MAX_HIER; i++)
		tenant_fd[i] = leaf_fd[i] = -1;
	for (unsigned i = 0; i < env->nhier; i++)
		if (make_leaf(env, &env->hier[i], tenant, instance, &tenant_fd[i], &leaf_fd[i],
			      &made[i], disp[i], err) < 0)
			goto out;
	if (apply_limits(env, leaf_fd, disp, lim, err) < 0)
		goto out;
	rc = 0;
	vlog(VLOG_INFO, "cgroup_created",
	     "version=%d tenant=%s instance=%s mem_bytes=%" PRIu64 " cpu_quota_us=%" PRIu64
	     " cpu_period_us=%" PRIu64 " pids_max=%" PRIu64,
	     env->version, tenant, instance, lim->mem_bytes, lim->cpu_quota_us,
	     lim->cpu_period_us, lim->pids_max);
out:
	for (unsigned i = 0; i < CGROUP_MAX_HIER; i++) {
		if (leaf_fd[i] >= 0)
			close(leaf_fd[i]);
		/* Nothing has joined a directory made just now: it can go. */
		if (rc < 0 && made[i] && unlinkat(tenant_fd[i], instance, AT_REMOVEDIR) < 0)
			vlog(VLOG_WARN, "cgroup_undo_failed", "path=\"%s\" errno=%d", disp[i], errno);
		if (tenant_fd[i] >= 0)
			close(tenant_fd[i]);
	}
	return rc;
}

/* ---- joining ----------------------------------------------------------------- */

int cgroup_add_pid(const struct cgroup_env *env, const char *tenant, const char *instance,
		   pid_t pid, struct vmlet_err *err)
{
	struct vmlet_err scratch;
	struct cg_path p;
	char text[24], disp[DISP_MAX];

	if (!err)
		err = &scratch;
	if (check_ids(tenant, instance, err) < 0)
		return -1;
	if (pid <= 0)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "pid: %d is not a process id",
				     (int)pid);
	snprintf(text, sizeof(text), "%d", (int)pid);
	cg_path_init(&p, env, tenant, instance);
	for (unsigned i = 0; i < env->nhier; i++) {
		_cleanup_close_ int fd = walk(&env->hier[i], &p, 0, err);

		if (fd < 0 || write_at(fd, "cgroup.procs", text,
				       disp_path(disp, sizeof(disp), &env->hier[i], &p, p.n),
				       err) < 0)
			return -1;
	}
	return 0;
}

int cgroup_open_procs_fds(const struct cgroup_env *env, const char *tenant, const char *instance,
			  struct cgroup_procs_fds *out, struct vmlet_err *err)
{
	struct vmlet_err scratch;
	struct cg_path p;
	char disp[DISP_MAX];

	if (!err)
		err = &scratch;
	out->n = 0;
	for (unsigned i = 0; i < CGROUP_MAX_HIER; i++)
		out->fd[i] = -1;
	if (check_ids(tenant, instance, err) < 0)
		return -1;
	cg_path_init(&p, env, tenant, instance);
	for (unsigned i = 0; i < env->nhier; i++) {
		_cleanup_close_ int dir = walk(&env->hier[i], &p, 0, err);

		if (dir < 0)
			goto fail;
		out->fd[i] = openat(dir, "cgroup.procs", O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
		if (out->fd[i] < 0) {
			vmlet_err_sys(err, VMLET_E_INTERNAL, "open %s/cgroup.procs",
				      disp_path(disp, sizeof(disp), &env->hier[i], &p, p.n));
			goto fail;
		}
		out->n = i + 1;
	}
	return 0;
fail:
	cgroup_procs_fds_close(out);
	return -1;
}

int cgroup_procs_fds_join(const struct cgroup_procs_fds *fds)
{
	for (unsigned i = 0; i < fds->n; i++) {
		ssize_t n;

		do
			n = write(fds->fd[i], "0", 1);
		while (n < 0 && errno == EINTR);
		if (n != 1)
			return n < 0 ? -errno : -EIO;
	}
	return 0;
}

void cgroup_procs_fds_close(struct cgroup_procs_fds *fds)
{
	for (unsigned i = 0; i < CGROUP_MAX_HIER; i++) {
		if (fds->fd[i] >= 0)
			close(fds->fd[i]);
		fds->fd[i] = -1;
	}
	fds->n = 0;
}

/* ---- killing ----------------------------------------------------------------- */

struct pid_set {
	pid_t *v;
	size_t n, cap;
};

static int pid_cmp(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

	return (x > y) - (x < y);
}

/* Sorted, unique union of cgroup.procs over the instance's directories. */
static int read_members(const struct inst_dirs *d, unsigned nhier, struct pid_set *s,
			struct vmlet_err *err)
{
	s->n = 0;
	for (unsigned i = 0; i < nhier; i++) {
		_cleanup_fclose_ FILE *f = NULL;
		int fd, pid;

		if (d->fd[i] < 0)
			continue;
		fd = openat(d->fd[i], "cgroup.procs", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "open %s/cgroup.procs",
					     d->disp[i]);
		f = fdopen(fd, "re");
		if (!f) {
			close(fd);
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "fdopen %s/cgroup.procs",
					     d->disp[i]);
		}
		while (fscanf(f, "%d", &pid) == 1) {
			if (s->n == s->cap) {
				size_t cap = s->cap ? s->cap * 2 : 64;
				pid_t *v = reallocarray(s->v, cap, sizeof(*v));

				if (!v)
					return vmlet_err_sys(err, VMLET_E_INTERNAL,
							     "reading %s/cgroup.procs", d->disp[i]);
				s->v = v;
				s->cap = cap;
			}
			s->v[s->n++] = pid;
		}
		if (ferror(f))
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "read %s/cgroup.procs",
					     d->disp[i]);
	}
	if (s->n) {
		size_t w = 1;

		qsort(s->v, s->n, sizeof(*s->v), pid_cmp);
		for (size_t r = 1; r < s->n; r++)
			if (s->v[r] != s->v[w - 1])
				s->v[w++] = s->v[r];
		s->n = w;
	}
	return 0;
}

static bool pid_in(const struct pid_set *s, pid_t pid)
{
	return s->n && bsearch(&pid, s->v, s->n, sizeof(*s->v), pid_cmp) != NULL;
}

/* SIGKILL the listed pids that are still members. A pid read from
 * cgroup.procs may have exited and been reused by an unrelated process
 * before kill() runs, so: pin each with a pidfd, re-read the membership,
 * and signal through the pidfd only those still listed. If the pinned
 * process were not the member, it would have to be dead for the pid to be
 * listed again, and signalling a dead pidfd is harmless. */
static int kill_members(const struct inst_dirs *d, unsigned nhier, const struct pid_set *listed,
			unsigned *killed, struct vmlet_err *err)
{
	struct pid_set now = { 0 };
	int rc = 0;

	for (size_t base = 0; base < listed->n && rc == 0; base += PIDFD_BATCH) {
		size_t cnt = listed->n - base < PIDFD_BATCH ? listed->n - base : PIDFD_BATCH;
		int pidfd[PIDFD_BATCH];

		for (size_t i = 0; i < cnt; i++)
			pidfd[i] = (int)syscall(SYS_pidfd_open, listed->v[base + i], 0);
		rc = read_members(d, nhier, &now, err);
		for (size_t i = 0; i < cnt; i++) {
			if (pidfd[i] < 0)
				continue;
			if (rc == 0 && pid_in(&now, listed->v[base + i]) &&
			    syscall(SYS_pidfd_send_signal, pidfd[i], SIGKILL, NULL, 0) == 0)
				(*killed)++;
			close(pidfd[i]);
		}
	}
	free(now.v);
	return rc;
}

/* Wait for freezer.state to say FROZEN (it passes through FREEZING). */
static bool wait_frozen(int dirfd, const char *disp, int64_t deadline)
{
	int backoff = 1;

	for (;;) {
		char state[32];
		struct vmlet_err e;

		if (read_small_at(dirfd, "freezer.state", state, sizeof(state), disp, &e) < 0)
			return false;
		if (strcmp(state, "FROZEN") == 0)
			return true;
		if (ms_left(deadline) == 0)
			return false;
		sleep_ms(backoff);
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
}

/* v1 has no cgroup.kill: freeze so nothing forks or exits while the pids
 * are read and signalled, SIGKILL, thaw so the signals are delivered,
 * repeat until cgroup.procs is empty everywhere. */
static int kill_v1(const struct cgroup_env *env, const struct inst_dirs *d, int64_t deadline,
		   unsigned *killed, struct vmlet_err *err)
{
	int fz = env->has_freezer ? hier_of(env, CGROUP_CTL_FREEZER) : -1;
	struct pid_set pids = { 0 };
	bool frozen = false;
	int backoff = 1, rc = -1;

	if (fz >= 0 && d->fd[fz] >= 0) {
		if (write_at(d->fd[fz], "freezer.state", "FROZEN", d->disp[fz], err) < 0)
			return -1;
		frozen = true;
		/* Half the budget at most: killing unfrozen is still correct
		 * (pidfds), only a racing fork may need one more round. */
		if (!wait_frozen(d->fd[fz], d->disp[fz], now_ms() + ms_left(deadline) / 2))
			vlog(VLOG_WARN, "cgroup_freeze_slow", "path=\"%s\"", d->disp[fz]);
	}
	for (;;) {
		if (read_members(d, env->nhier, &pids, err) < 0)
			break;
		if (pids.n == 0) {
			rc = 0;
			break;
		}
		if (kill_members(d, env->nhier, &pids, killed, err) < 0)
			break;
		if (frozen) {
			if (write_at(d->fd[fz], "freezer.state", "THAWED", d->disp[fz], err) < 0)
				break;
			frozen = false;
		}
		if (ms_left(deadline) == 0) {
			vmlet_err_set(err, VMLET_E_INTERNAL, 0,
				      "%s: %zu processes still in the cgroup after SIGKILL",
				      d->disp[hier_of(env, CGROUP_CTL_PIDS)], pids.n);
			break;
		}
		sleep_ms(backoff);
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
	/* Never leave a cgroup frozen, whatever failed. */
	if (frozen) {
		struct vmlet_err e;

		if (write_at(d->fd[fz], "freezer.state", "THAWED", d->disp[fz], &e) < 0)
			vlog(VLOG_ERROR, "cgroup_thaw_failed", "path=\"%s\" errno=%d",
			     d->disp[fz], e.sys_errno);
	}
	free(pids.v);
	return rc;
}

/* "populated 0|1" from cgroup.events; -1 if the file does not say. */
static int events_populated(const char *events)
{
	for (const char *l = events; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
		if (strncmp(l, "populated ", 10) == 0)
			return l[10] == '0' ? 0 : l[10] == '1' ? 1 : -1;
	return -1;
}

/* v2: cgroup.kill, then wait for "populated 0". cgroup.events raises
 * POLLPRI when it changes (kernfs_notify); the poll is still capped at
 * POLL_SLICE_MS so a missed notification cannot stall us past a re-read. */
static int kill_v2(const struct inst_dirs *d, int64_t deadline, struct vmlet_err *err)
{
	_cleanup_close_ int ev = -1;
	char text[SMALL_FILE_MAX];

	if (write_at(d->fd[0], "cgroup.kill", "1", d->disp[0], err) < 0) {
		if (err->sys_errno == ENOENT)
			return vmlet_err_set(err, VMLET_E_NOT_IMPLEMENTED, ENOENT,
					     "%s/cgroup.kill: missing (needs Linux 5.14 or later)",
					     d->disp[0]);
		return -1;
	}
	ev = openat(d->fd[0], "cgroup.events", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (ev < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "open %s/cgroup.events", d->disp[0]);
	for (;;) {
		struct pollfd pfd = { .fd = ev, .events = POLLPRI };
		ssize_t n;
		int left;

		if (lseek(ev, 0, SEEK_SET) < 0 || (n = read(ev, text, sizeof(text) - 1)) < 0)
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "read %s/cgroup.events",
					     d->disp[0]);
		text[n] = '\0';
		switch (events_populated(text)) {
		case 0:
			return 0;
		case 1:
			break;
		default:
			return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
					     "%s/cgroup.events: no \"populated\" line", d->disp[0]);
		}
		left = ms_left(deadline);
		if (left == 0)
			return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
					     "%s: still populated after cgroup.kill", d->disp[0]);
		if (poll(&pfd, 1, left < POLL_SLICE_MS ? left : POLL_SLICE_MS) < 0 &&
		    errno != EINTR)
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "poll %s/cgroup.events",
					     d->disp[0]);
	}
}

static int kill_all(const struct cgroup_env *env, const char *tenant, const char *instance,
		    int timeout_ms, struct vmlet_err *err)
{
	int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	struct pid_set pids = { 0 };
	struct inst_dirs d;
	unsigned killed = 0;
	int rc;

	if (inst_dirs_open(env, tenant, instance, &d, err) < 0)
		return -1;
	if (d.present == 0)
		return 0;
	/* Freezing or killing our own cgroup would stop or kill hostd. */
	rc = read_members(&d, env->nhier, &pids, err);
	if (rc == 0 && pid_in(&pids, getpid()))
		rc = vmlet_err_set(err, VMLET_E_CONFLICT, 0,
				   "%s: refusing to kill a cgroup this process (pid %d) is in",
				   d.disp[0], (int)getpid());
	if (rc == 0)
		rc = env->version == 2 ? kill_v2(&d, deadline, err)
				       : kill_v1(env, &d, deadline, &killed, err);
	if (rc == 0 && pids.n)
		vlog(VLOG_INFO, "cgroup_killed", "version=%d tenant=%s instance=%s pids=%zu signals=%u",
		     env->version, tenant, instance, pids.n, killed);
	free(pids.v);
	inst_dirs_close(&d);
	return rc;
}

int cgroup_kill_all(const struct cgroup_env *env, const char *tenant, const char *instance,
		    int timeout_ms, struct vmlet_err *err)
{
	struct vmlet_err scratch;

	if (!err)
		err = &scratch;
	if (check_ids(tenant, instance, err) < 0)
		return -1;
	return kill_all(env, tenant, instance, timeout_ms, err);
}

/* ---- removal ----------------------------------------------------------------- */

/* rmdir name beneath dirfd; ENOENT is success. EBUSY right after the last
 * task left can happen while the kernel finishes offlining, so retry. */
static int rmdir_at(int dirfd, const char *name, const char *disp, int64_t deadline,
		    struct vmlet_err *err)
{
	int backoff = 1;

	while (unlinkat(dirfd, name, AT_REMOVEDIR) < 0) {
		if (errno == ENOENT)
			return 0;
		if (errno != EBUSY || ms_left(deadline) == 0)
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "rmdir %s", disp);
		sleep_ms(backoff);
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
	return 0;
}

int cgroup_remove(const struct cgroup_env *env, const char *tenant, const char *instance,
		  int timeout_ms, struct vmlet_err *err)
{
	int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	struct vmlet_err scratch;
	char disp[DISP_MAX];
	struct cg_path rp, ip;

	if (!err)
		err = &scratch;
	if (check_ids(tenant, instance, err) < 0 ||
	    kill_all(env, tenant, instance, timeout_ms, err) < 0)
		return -1;
	cg_path_init(&rp, env, NULL, NULL);
	cg_path_init(&ip, env, tenant, instance);
	for (unsigned i = 0; i < env->nhier; i++) {
		const struct cgroup_hier *h = &env->hier[i];
		_cleanup_close_ int root_fd = walk(h, &rp, 0, err);
		_cleanup_close_ int tenant_fd = -1;

		if (root_fd < 0 && err->sys_errno == ENOENT)
			continue;
		if (root_fd < 0)
			return -1;
		tenant_fd = openat(root_fd, tenant, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (tenant_fd < 0 && errno == ENOENT)
			continue;
		if (tenant_fd < 0)
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "open %s",
					     disp_path(disp, sizeof(disp), h, &ip, ip.n - 1));
		if (rmdir_at(tenant_fd, instance, disp_path(disp, sizeof(disp), h, &ip, ip.n),
			     deadline, err) < 0)
			return -1;
		/* The tenant goes with its last instance; another one may be
		 * under creation right now, so "not empty" is fine. */
		if (unlinkat(root_fd, tenant, AT_REMOVEDIR) < 0 && errno != ENOTEMPTY &&
		    errno != EEXIST && errno != EBUSY && errno != ENOENT)
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "rmdir %s",
					     disp_path(disp, sizeof(disp), h, &ip, ip.n - 1));
	}
	vlog(VLOG_INFO, "cgroup_removed", "tenant=%s instance=%s", tenant, instance);
	return 0;
}

/* ---- stats and listing ------------------------------------------------------- */

static const struct stat_file {
	int version;
	unsigned ctl;
	const char *file;
	size_t offset;
} stat_files[] = {
	{ 2, CGROUP_CTL_MEMORY, "memory.current", offsetof(struct cgroup_stats, mem_bytes) },
	{ 2, CGROUP_CTL_PIDS, "pids.current", offsetof(struct cgroup_stats, pids) },
	{ 1, CGROUP_CTL_MEMORY, "memory.usage_in_bytes", offsetof(struct cgroup_stats, mem_bytes) },
	{ 1, CGROUP_CTL_PIDS, "pids.current", offsetof(struct cgroup_stats, pids) },
};

int cgroup_read_stats(const struct cgroup_env *env, const char *tenant, const char *instance,
		      struct cgroup_stats *st, struct vmlet_err *err)
{
	struct vmlet_err scratch;
	struct cg_path p;
	char disp[DISP_MAX];

	if (!err)
		err = &scratch;
	memset(st, 0, sizeof(*st));
	if (check_ids(tenant, instance, err) < 0)
		return -1;
	cg_path_init(&p, env, tenant, instance);
	for (size_t i = 0; i < sizeof(stat_files) / sizeof(stat_files[0]); i++) {
		const struct stat_file *sf = &stat_files[i];
		int h = hier_of(env, sf->ctl);
		char text[64];
		uint64_t v;
		_cleanup_close_ int fd = -1;

		if (sf->version != env->version || h < 0)
			continue;
		fd = walk(&env->hier[h], &p, 0, err);
		disp_path(disp, sizeof(disp), &env->hier[h], &p, p.n);
		if (fd < 0 || read_small_at(fd, sf->file, text, sizeof(text), disp, err) < 0)
			return -1;
		if (parse_u64(text, &v) < 0)
			return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
					     "%s/%s: \"%s\" is not a number", disp, sf->file, text);
		memcpy((char *)st + sf->offset, &v, sizeof(v));
	}
	return 0;
}

struct name_list {
	char **v;
	size_t n, cap;
};

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_dir(int dirfd, const char *disp, bool instances, struct name_list *l,
		    struct vmlet_err *err)
{
	DIR *dir = fdopendir(dirfd);
	struct dirent *de;
	int rc = 0;

	if (!dir) {
		close(dirfd);
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "opendir %s", disp);
	}
	while (rc == 0 && (errno = 0, de = readdir(dir)) != NULL) {
		bool ok = instances ? vmlet_instance_id_ok(de->d_name) : vmlet_id_ok(de->d_name);
		char *dup;

		/* cgroupfs sets d_type: control files are DT_REG. */
		if (de->d_type != DT_DIR || !ok)
			continue;
		if (l->n == l->cap) {
			size_t cap = l->cap ? l->cap * 2 : 16;
			char **v = reallocarray(l->v, cap, sizeof(*v));

			if (!v) {
				rc = vmlet_err_sys(err, VMLET_E_INTERNAL, "listing %s", disp);
				break;
			}
			l->v = v;
			l->cap = cap;
		}
		dup = strdup(de->d_name);
		if (!dup)
			rc = vmlet_err_sys(err, VMLET_E_INTERNAL, "listing %s", disp);
		else
			l->v[l->n++] = dup;
	}
	if (rc == 0 && errno)
		rc = vmlet_err_sys(err, VMLET_E_INTERNAL, "readdir %s", disp);
	closedir(dir);
	return rc;
}

int cgroup_list(const struct cgroup_env *env, const char *tenant, char ***ids, size_t *n,
		struct vmlet_err *err)
{
	struct name_list l = { 0 };
	struct vmlet_err scratch;
	struct cg_path p;
	char disp[DISP_MAX];

	if (!err)
		err = &scratch;
	*ids = NULL;
	*n = 0;
	if (tenant && check_tenant(tenant, err) < 0)
		return -1;
	cg_path_init(&p, env, tenant, NULL);
	for (unsigned i = 0; i < env->nhier; i++) {
		int fd = walk(&env->hier[i], &p, 0, err);

		if (fd < 0 && err->sys_errno == ENOENT)
			continue;
		if (fd < 0 || list_dir(fd, disp_path(disp, sizeof(disp), &env->hier[i], &p, p.n),
				       tenant != NULL, &l, err) < 0) {
			cgroup_list_free(l.v, l.n);
			return -1;
		}
	}
	if (l.n) {
		size_t w = 1;

		qsort(l.v, l.n, sizeof(*l.v), str_cmp);
		for (size_t r = 1; r < l.n; r++) {
			if (strcmp(l.v[r], l.v[w - 1]) == 0)
				free(l.v[r]);
			else
				l.v[w++] = l.v[r];
		}
		l.n = w;
	}
	*ids = l.v;
	*n = l.n;
	return 0;
}

void cgroup_list_free(char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}
