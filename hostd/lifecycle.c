/* The instance lifecycle: the transition table (what is allowed) and the
 * runtime behind it (what each transition does to jails, cgroups and
 * VMMs). Only the table decides; the handlers assume it was consulted.
 *
 * Ownership of a live VMM (struct lc_vm):
 *  - Ops run under their instance's lock (hostd_instance_lock) and are the
 *    only ones that create, tear down or free an lc_vm.
 *  - The monitor thread reaps (waitid on the pidfd), drains the console and
 *    flags an unexpected death; the tick then takes the instance lock
 *    (trylock: never waits behind an op) and records "stopped" with the
 *    exit reason. An op that finds its VMM already dead does the same
 *    itself before answering.
 *  - rt->lock guards the list of lc_vms and the flags the monitor sets. */
#include "hostd/lifecycle.h"
#include "hostd/ops_net.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hostd/cgroup.h"
#include "hostd/images.h"
#include "hostd/jail.h"
#include "hostd/monitor.h"
#include "hostd/uidalloc.h"
#include "hostd/vmm.h"
#include "hostd/vmm_firecracker.h"
#include "shared/cleanup.h"
#include "shared/log.h"
#include "shared/safefile.h"
#include "shared/validate.h"

#define S(x) VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_##x
#define A(x) VMLET__HOST__V1__INSTANCE_ACTION__INSTANCE_ACTION_##x

/* Bounds of every wait on a VMM (ms). A VMM that does not answer within
 * them is killed through its cgroup, never waited on forever. */
#define QMP_CONNECT_MS 10000
#define QMP_OP_MS 3000
#define QUIT_MS 3000
#define EXIT_WAIT_MS 5000
#define CGROUP_KILL_MS 5000
#define SNAPSHOT_MS 120000
#define RESTORE_MS 60000
#define BOOT_MS 10000
#define MONITOR_TICK_MS 100

/* Inside the jail: the only writable dir of the jail's own, holding the
 * QMP / API socket and the console FIFO (hostd reaches both at
 * <jail_dir>/root/run/...). */
#define JAIL_RUN "/run"
#define JAIL_QMP JAIL_RUN "/qmp.sock"
#define JAIL_FC_API JAIL_RUN "/api.sock"
#define JAIL_CONSOLE JAIL_RUN "/console"
/* Firecracker only: its binary (bound from the fd hostd checked), the
 * EMPTY writable dir its next snapshot goes to, and (after a wake) the
 * read-only generation it was restored from. */
#define JAIL_FC_BIN "/firecracker"
#define JAIL_SNAP_OUT "/snapshot"
#define JAIL_SNAP_IN "/restore"
#define JAIL_KERNEL "/image/kernel"
#define JAIL_INITRD "/image/initrd"
#define SNAPSHOT_DIR "snapshot"
#define SNAPSHOT_FILE "vm.state"
/* Firecracker's snapshots are directories beneath SNAPSHOT_DIR: "next"
 * (owned by the instance uid, empty, bound into the live VM's jail) and
 * "gen-<n>" (checked, root's 0600 files; the highest is the one a wake
 * restores). A restored VM maps gen-<n>/mem for its whole life, so it is
 * never reused: the next sleep writes "next", which becomes gen-<n+1>. */
#define SNAP_NEXT "next"
#define SNAP_GEN "gen-"
#define CONSOLE_LOG "console.log"
#define CONSOLE_LOG_OLD "console.log.1"

/* ---- the transition table --------------------------------------------------------- */

static int run_start(struct hostd_runtime *rt, hostd_instance_rec *rec, const struct lc_args *a,
		     struct vmlet_err *err);
static int run_stop(struct hostd_runtime *rt, hostd_instance_rec *rec, const struct lc_args *a,
		    struct vmlet_err *err);
static int run_pause(struct hostd_runtime *rt, hostd_instance_rec *rec, const struct lc_args *a,
		     struct vmlet_err *err);
static int run_resume(struct hostd_runtime *rt, hostd_instance_rec *rec,
		      const struct lc_args *a, struct vmlet_err *err);
static int run_destroy(struct hostd_runtime *rt, hostd_instance_rec *rec,
		       const struct lc_args *a, struct vmlet_err *err);
static int run_sleep(struct hostd_runtime *rt, hostd_instance_rec *rec, const struct lc_args *a,
		     struct vmlet_err *err);
static int run_wake(struct hostd_runtime *rt, hostd_instance_rec *rec, const struct lc_args *a,
		    struct vmlet_err *err);

#define ANY_STATE                                                                             \
	(LC_BIT(S(CREATED)) | LC_BIT(S(RUNNING)) | LC_BIT(S(WARM)) | LC_BIT(S(SLEEPING)) |   \
	 LC_BIT(S(STOPPED)))

/* One row per action. DESIGN.md's state machine, and nothing else: an op
 * whose (action, state) pair is not here is refused. */
static const struct lc_transition transitions[] = {
	{ A(START), "START", LC_BIT(S(CREATED)) | LC_BIT(S(STOPPED)), S(RUNNING), run_start },
	{ A(STOP), "STOP", LC_BIT(S(RUNNING)) | LC_BIT(S(WARM)) | LC_BIT(S(SLEEPING)), S(STOPPED),
	  run_stop },
	{ A(PAUSE), "PAUSE", LC_BIT(S(RUNNING)), S(WARM), run_pause },
	{ A(RESUME), "RESUME", LC_BIT(S(WARM)), S(RUNNING), run_resume },
	{ A(SLEEP), "SLEEP", LC_BIT(S(RUNNING)) | LC_BIT(S(WARM)), S(SLEEPING), run_sleep },
	{ A(WAKE), "WAKE", LC_BIT(S(SLEEPING)) | LC_BIT(S(WARM)), S(RUNNING), run_wake },
	{ A(DESTROY), "DESTROY", ANY_STATE, S(DESTROYED), run_destroy },
};

const struct lc_transition *lc_transition_find(int action)
{
	for (size_t k = 0; k < sizeof(transitions) / sizeof(transitions[0]); k++)
		if ((int)transitions[k].action == action)
			return &transitions[k];
	return NULL;
}

const char *lc_state_name(int state)
{
	switch (state) {
	case S(CREATED): return "created";
	case S(RUNNING): return "running";
	case S(WARM): return "warm";
	case S(SLEEPING): return "sleeping";
	case S(STOPPED): return "stopped";
	case S(DESTROYED): return "destroyed";
	default: return "unknown";
	}
}

int lc_transition_check(const struct lc_transition *t, const hostd_instance_rec *rec,
			struct vmlet_err *err)
{
	char allowed[96] = "";
	size_t used = 0;

	if (rec->state == t->to)
		return 1;
	if (rec->state >= 0 && rec->state < 32 && (t->from & LC_BIT(rec->state)))
		return 0;
	for (int s = S(CREATED); s <= S(STOPPED); s++) {
		if (!(t->from & LC_BIT(s)))
			continue;
		int n = snprintf(allowed + used, sizeof(allowed) - used, "%s%s", used ? ", " : "",
				 lc_state_name(s));
		if (n > 0 && (size_t)n < sizeof(allowed) - used)
			used += (size_t)n;
	}
	return vmlet_err_set(err, VMLET_E_CONFLICT, 0,
			     "cannot %s instance %s/%s/%s: it is %s (allowed from: %s)", t->name,
			     rec->tenant_id, rec->pool_id, rec->instance_id,
			     lc_state_name((int)rec->state), allowed);
}

/* ---- per-instance locks ------------------------------------------------------------ */

/* Striped: a fixed set of mutexes picked by a hash of t/p/i. Two instances
 * may share a stripe and then wait for each other, which costs latency,
 * never correctness; in exchange no lock is ever allocated or freed, so an
 * id from a request can never make hostd keep state. */
#define LOCK_STRIPES 64
static pthread_mutex_t instance_locks[LOCK_STRIPES] = {
	[0 ... LOCK_STRIPES - 1] = PTHREAD_MUTEX_INITIALIZER,
};

static pthread_mutex_t *stripe(const char *t, const char *p, const char *i)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	const char *parts[3] = { t, p, i };

	for (int k = 0; k < 3; k++) {
		for (const char *c = parts[k]; c && *c; c++)
			h = (h ^ (unsigned char)*c) * 16777619u;
		h = (h ^ '/') * 16777619u;
	}
	return &instance_locks[h % LOCK_STRIPES];
}

void hostd_instance_lock(const char *tenant, const char *pool, const char *instance)
{
	pthread_mutex_lock(stripe(tenant, pool, instance));
}

void hostd_instance_unlock(const char *tenant, const char *pool, const char *instance)
{
	pthread_mutex_unlock(stripe(tenant, pool, instance));
}

static bool instance_trylock(const char *tenant, const char *pool, const char *instance)
{
	return pthread_mutex_trylock(stripe(tenant, pool, instance)) == 0;
}

/* ---- runtime state ---------------------------------------------------------------------- */

struct lc_vm {
	struct lc_vm *next;
	struct hostd_runtime *rt;
	char tenant[VMLET_ID_MAX], pool[VMLET_ID_MAX], instance[16];
	pid_t pid;
	int pidfd;
	bool child;               /* spawned by this hostd (waitid works) or re-adopted */
	struct vmm_conn *conn;    /* QMP / API, connected lazily after a re-adopt */
	int console_fd;           /* the FIFO, opened O_RDWR: never EOF, never blocks */
	int log_dir_fd;           /* instance dir, for the console log and its rotation */
	int log_fd;
	uint64_t log_bytes;
	/* Set under rt->lock. */
	bool expect_exit;         /* we are ending it: its exit is not an error */
	bool exited;
	bool dead_pending;        /* exited on its own, not yet recorded */
	char exit_reason[128];
};

struct hostd_runtime {
	const struct vmlet_config *cfg;
	const struct hostd_facts *facts;
	const struct hostd_registry *reg;
	const struct vmm_driver *drv; /* from [hostd] vmm */
	const char *vmm_binary;       /* its configured binary (host path) */
	struct cgroup_env cg;
	bool cg_ok;
	struct hostd_monitor *mon;
	pthread_mutex_t lock;
	struct lc_vm *vms;
	/* Allocating a uid reads every record's uid and writes one: one at a
	 * time, or two starts could pick the same uid. */
	pthread_mutex_t uid_lock;
	struct uid_range uids;
	char jail_root[PATH_MAX];
	char images_dir[PATH_MAX];
	struct hostd_net *net; /* NULL: instances get no NIC */
};

void hostd_runtime_set_net(struct hostd_runtime *rt, struct hostd_net *net)
{
	rt->net = net;
}

static uint64_t now_unix(void)
{
	return (uint64_t)time(NULL);
}

/* Replace a string of an unpacked record (protobuf-c frees it with the
 * record, unless it is the shared empty default). */
static int rec_set_str(char **field, const char *v, struct vmlet_err *err)
{
	char *c = strdup(v ? v : "");

	if (!c)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "out of memory");
	if (*field && *field != protobuf_c_empty_string)
		free(*field);
	*field = c;
	return 0;
}

static void rec_state(hostd_instance_rec *rec, Vmlet__V1__InstanceState st)
{
	if (rec->state != st)
		rec->state_since_unix = now_unix();
	rec->state = st;
}

/* Write the record; a failure is logged (the op already happened on the
 * host and its reply says so) and returned. */
static int rec_save(struct hostd_runtime *rt, const hostd_instance_rec *rec,
		    struct vmlet_err *err)
{
	if (hostd_registry_write_instance(rt->reg, rec, err) < 0) {
		char q[VLOG_STR_MAX];

		vlog(VLOG_ERROR, "record_write_failed", "instance=%s error=%s", rec->instance_id,
		     vlog_str(err->msg, q, sizeof(q)));
		return -1;
	}
	return 0;
}

static struct lc_vm *vm_find(struct hostd_runtime *rt, const char *t, const char *p,
			     const char *i)
{
	struct lc_vm *vm;

	pthread_mutex_lock(&rt->lock);
	for (vm = rt->vms; vm; vm = vm->next)
		if (!strcmp(vm->tenant, t) && !strcmp(vm->pool, p) && !strcmp(vm->instance, i))
			break;
	pthread_mutex_unlock(&rt->lock);
	return vm;
}

static int jail_dir_of(const struct hostd_runtime *rt, const char *instance, char *buf,
		       size_t len, struct vmlet_err *err)
{
	if (snprintf(buf, len, "%s/%s", rt->jail_root, instance) >= (int)len)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "jail dir path too long");
	return 0;
}

/* <jail_dir>/root<jail_path>, for a path in the jail's writable dir. */
static int host_path_of(const struct hostd_runtime *rt, const char *instance,
			const char *jail_path, char *buf, size_t len, struct vmlet_err *err)
{
	char dir[PATH_MAX];
	struct jail_spec js = { .instance_id = instance, .jail_dir = dir };

	if (jail_dir_of(rt, instance, dir, sizeof(dir), err) < 0)
		return -1;
	js.writable_dirs[0].jail_path = JAIL_RUN;
	js.n_writable_dirs = 1;
	return jail_host_path(&js, jail_path, buf, len, err);
}

static bool is_firecracker(const struct hostd_runtime *rt)
{
	return rt->drv == &vmm_firecracker_driver;
}

/* The driver snapshots into a directory by path (snapshot_to_dir), not
 * into an fd hostd opened. */
static bool by_dir(const struct hostd_runtime *rt)
{
	return rt->drv->snapshot_to_dir != NULL;
}

/* The VMM's control socket inside the jail: QMP, or Firecracker's API. */
static const char *control_socket(const struct hostd_runtime *rt)
{
	return is_firecracker(rt) ? JAIL_FC_API : JAIL_QMP;
}

/* ---- console ------------------------------------------------------------------------- */

static void console_rotate(struct lc_vm *vm)
{
	/* One old file is kept: the log never takes more than twice the cap,
	 * however much a guest prints. */
	if (vm->log_fd >= 0)
		close(vm->log_fd);
	vm->log_fd = -1;
	if (renameat(vm->log_dir_fd, CONSOLE_LOG, vm->log_dir_fd, CONSOLE_LOG_OLD) < 0 &&
	    errno != ENOENT)
		vlog(VLOG_WARN, "console_rotate_failed", "instance=%s errno=%d", vm->instance,
		     errno);
	vm->log_fd = openat(vm->log_dir_fd, CONSOLE_LOG,
			    O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
	vm->log_bytes = 0;
}

/* Monitor callback: drain the FIFO into the log, at most 1 MiB per call
 * so one chatty guest cannot starve the others (level-triggered epoll
 * calls again). */
static void console_cb(void *arg, int fd, uint32_t events)
{
	struct lc_vm *vm = arg;
	uint64_t max = vm->rt->cfg->console_log_max;
	char buf[16384];

	for (int k = 0; k < 64; k++) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n <= 0)
			return;
		if (vm->log_fd < 0 || vm->log_bytes + (uint64_t)n > max)
			console_rotate(vm);
		if (vm->log_fd < 0)
			continue; /* no log file: drop, never block the guest */
		if (write(vm->log_fd, buf, (size_t)n) == n)
			vm->log_bytes += (uint64_t)n;
	}
}

/* ---- process identity and exit ----------------------------------------------------- */

/* /proc/<pid>/stat field 22 (start time in clock ticks since boot): with
 * the pid, it names one process for good (pids are reused). 0: unknown. */
static uint64_t pid_start_time(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long v = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* comm may contain spaces and ')': fields start after the LAST ')'. */
	p = strrchr(buf, ')');
	if (!p)
		return 0;
	p++;
	for (int field = 3; field <= 22 && p; field++) {
		while (*p == ' ')
			p++;
		if (field == 22) {
			v = strtoull(p, NULL, 10);
			break;
		}
		p = strchr(p, ' ');
	}
	return v;
}

static void exit_reason(const siginfo_t *si, char *buf, size_t len)
{
	if (si->si_code == CLD_EXITED)
		snprintf(buf, len, "VMM exited with status %d", si->si_status);
	else if (si->si_code == CLD_KILLED || si->si_code == CLD_DUMPED)
		snprintf(buf, len, "VMM killed by signal %d (%s)", si->si_status,
			 sigabbrev_np(si->si_status) ? sigabbrev_np(si->si_status) : "?");
	else
		snprintf(buf, len, "VMM ended (code %d, status %d)", si->si_code, si->si_status);
}

/* Reap through the pidfd. A re-adopted VMM is not our child: its exit
 * status went to its new parent, so only "it ended" is known. */
static void reap(struct lc_vm *vm, char *reason, size_t len)
{
	siginfo_t si = { 0 };

	if (vm->child && waitid((idtype_t)P_PIDFD, (id_t)vm->pidfd, &si, WEXITED | WNOHANG) == 0 &&
	    si.si_pid != 0)
		exit_reason(&si, reason, len);
	else if (!reason[0])
		snprintf(reason, len, "VMM ended (not a child of this hostd: status unknown)");
}

/* Monitor callback: the pidfd is readable, the VMM has ended. */
static void pidfd_cb(void *arg, int fd, uint32_t events)
{
	struct lc_vm *vm = arg;
	struct hostd_runtime *rt = vm->rt;
	char reason[128] = "";

	reap(vm, reason, sizeof(reason));
	hostd_monitor_del(rt->mon, fd);
	pthread_mutex_lock(&rt->lock);
	vm->exited = true;
	snprintf(vm->exit_reason, sizeof(vm->exit_reason), "%s", reason);
	if (!vm->expect_exit)
		vm->dead_pending = true;
	pthread_mutex_unlock(&rt->lock);
	vlog(vm->expect_exit ? VLOG_INFO : VLOG_WARN, "vmm_exited", "instance=%s/%s/%s pid=%d "
	     "expected=%d reason=\"%s\"", vm->tenant, vm->pool, vm->instance, (int)vm->pid,
	     vm->expect_exit, reason);
}

/* Wait until the VMM has ended (pidfd readable), up to ms. */
static bool wait_exit(struct lc_vm *vm, int ms)
{
	struct pollfd pfd = { .fd = vm->pidfd, .events = POLLIN };
	int r;

	do
		r = poll(&pfd, 1, ms);
	while (r < 0 && errno == EINTR);
	return r > 0;
}

/* ---- tearing a VMM down ---------------------------------------------------------------- */

static void vm_free(struct lc_vm *vm)
{
	if (vm->conn)
		vm->conn->driver->disconnect(vm->conn);
	if (vm->pidfd >= 0)
		close(vm->pidfd);
	if (vm->console_fd >= 0)
		close(vm->console_fd);
	if (vm->log_fd >= 0)
		close(vm->log_fd);
	if (vm->log_dir_fd >= 0)
		close(vm->log_dir_fd);
	free(vm);
}

static void vm_unlink(struct hostd_runtime *rt, struct lc_vm *vm)
{
	pthread_mutex_lock(&rt->lock);
	for (struct lc_vm **pp = &rt->vms; *pp; pp = &(*pp)->next)
		if (*pp == vm) {
			*pp = vm->next;
			break;
		}
	pthread_mutex_unlock(&rt->lock);
}

/* End the VMM for good and remove everything its run left on the host:
 * its processes (through the cgroup: whatever it forked goes too), the
 * cgroup, the jail dir. Then forget it. Idempotent pieces: safe when the
 * VMM is already gone. Returns the first cleanup error (the VMM is gone
 * either way). */
static int teardown(struct hostd_runtime *rt, const char *tenant, const char *instance,
		    struct lc_vm *vm, struct vmlet_err *err)
{
	char jdir[PATH_MAX];
	struct vmlet_err e2;
	int rc = 0;

	if (vm) {
		pthread_mutex_lock(&rt->lock);
		vm->expect_exit = true;
		pthread_mutex_unlock(&rt->lock);
	}
	if (rt->cg_ok && cgroup_remove(&rt->cg, tenant, instance, CGROUP_KILL_MS, &e2) < 0) {
		vlog(VLOG_WARN, "cgroup_remove_failed", "instance=%s error=\"%s\"", instance, e2.msg);
		if (rc == 0 && err)
			*err = e2;
		rc = -1;
	}
	if (vm) {
		if (vm->pidfd >= 0 && !wait_exit(vm, EXIT_WAIT_MS)) {
			/* Not in its cgroup any more? Then by its pidfd. */
			syscall(SYS_pidfd_send_signal, vm->pidfd, SIGKILL, NULL, 0);
			wait_exit(vm, EXIT_WAIT_MS);
		}
		if (vm->pidfd >= 0)
			hostd_monitor_del(rt->mon, vm->pidfd);
		if (vm->console_fd >= 0) {
			/* Unregistered first, so the monitor is not draining it
			 * at the same time; then keep the last words. */
			hostd_monitor_del(rt->mon, vm->console_fd);
			console_cb(vm, vm->console_fd, 0);
		}
		if (vm->child && vm->pidfd >= 0) {
			siginfo_t si;

			waitid((idtype_t)P_PIDFD, (id_t)vm->pidfd, &si, WEXITED | WNOHANG);
		}
		vm_unlink(rt, vm);
		vm_free(vm);
	}
	if (jail_dir_of(rt, instance, jdir, sizeof(jdir), &e2) == 0 &&
	    jail_cleanup(jdir, &e2) < 0) {
		vlog(VLOG_WARN, "jail_cleanup_failed", "instance=%s error=\"%s\"", instance, e2.msg);
		if (rc == 0 && err)
			*err = e2;
		rc = -1;
	}
	return rc;
}

static int snapshot_wipe(struct hostd_runtime *rt, const hostd_instance_rec *rec,
			 struct vmlet_err *err);

/* The VMM of a running/warm record died on its own (or is missing):
 * record it as stopped with the reason and clean up. Caller holds the
 * instance lock. */
static void record_death(struct hostd_runtime *rt, hostd_instance_rec *rec, struct lc_vm *vm,
			 const char *why)
{
	char reason[192];
	struct vmlet_err e2;

	snprintf(reason, sizeof(reason), "%s", why);
	teardown(rt, rec->tenant_id, rec->instance_id, vm, NULL);
	snapshot_wipe(rt, rec, &e2); /* stopped means a cold boot next */
	rec_state(rec, S(STOPPED));
	rec->pid = 0;
	rec->pid_start_time = 0;
	if (rec_set_str(&rec->last_error, reason, &e2) == 0)
		rec_save(rt, rec, &e2);
}

/* The live VMM of a running/warm record. When it has died (or hostd has
 * no VMM for it), the death is recorded and 409 says so. */
static struct lc_vm *live_vm(struct hostd_runtime *rt, hostd_instance_rec *rec,
			     struct vmlet_err *err)
{
	struct lc_vm *vm = vm_find(rt, rec->tenant_id, rec->pool_id, rec->instance_id);
	char why[160];
	bool exited;

	if (vm) {
		pthread_mutex_lock(&rt->lock);
		exited = vm->exited;
		snprintf(why, sizeof(why), "%s", vm->exit_reason);
		pthread_mutex_unlock(&rt->lock);
		if (!exited)
			return vm;
	} else {
		snprintf(why, sizeof(why), "VMM not found (pid %u)", rec->pid);
	}
	record_death(rt, rec, vm, why);
	vmlet_err_set(err, VMLET_E_CONFLICT, 0, "it is stopped now: %s", why);
	return NULL;
}

/* QMP, connecting on first use (after a re-adopt, or a dropped link). */
static int vm_conn(struct hostd_runtime *rt, struct lc_vm *vm, struct vmlet_err *err)
{
	char sock[PATH_MAX];

	if (vm->conn)
		return 0;
	if (host_path_of(rt, vm->instance, control_socket(rt), sock, sizeof(sock), err) < 0)
		return -1;
	return rt->drv->connect(sock, QMP_CONNECT_MS, &vm->conn, err);
}

/* Drop a connection after a failed command: the QMP client refuses to
 * resynchronise a broken stream, so the next op reconnects. */
static void vm_conn_drop(struct lc_vm *vm)
{
	if (vm->conn) {
		vm->conn->driver->disconnect(vm->conn);
		vm->conn = NULL;
	}
}

/* ---- starting a VMM ------------------------------------------------------------------- */

struct uid_scan {
	uint32_t *uids;
	size_t n, cap;
	bool oom;
};

static int scan_uid(void *arg, const Vmlet__Host__V1__InstanceRecord *i, struct vmlet_err *err)
{
	struct uid_scan *s = arg;

	if (!i->uid)
		return 0;
	if (s->n == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 64;
		uint32_t *nu = realloc(s->uids, ncap * sizeof(*nu));

		if (!nu)
			return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "out of memory");
		s->uids = nu;
		s->cap = ncap;
	}
	s->uids[s->n++] = i->uid;
	return 0;
}

/* Give the instance its own uid (kept until destroy) and persist it
 * before anything runs under it. */
static int ensure_uid(struct hostd_runtime *rt, hostd_instance_rec *rec, struct vmlet_err *err)
{
	static const struct hostd_registry_visitor v = { NULL, NULL, scan_uid };
	struct uid_scan s = { 0 };
	uint32_t uid;
	int rc;

	if (rec->uid && uidalloc_in_range(&rt->uids, rec->uid) && rec->gid == rec->uid)
		return 0;
	pthread_mutex_lock(&rt->uid_lock);
	rc = hostd_registry_walk(rt->reg, NULL, NULL, &v, &s, err);
	if (rc == 0)
		rc = uidalloc_pick(&rt->uids, s.uids, s.n, &uid, err);
	if (rc == 0) {
		rec->uid = rec->gid = uid;
		rc = rec_save(rt, rec, err);
	}
	pthread_mutex_unlock(&rt->uid_lock);
	free(s.uids);
	return rc;
}

static int add_bind(struct jail_spec *js, const char *host, int fd, const char *jail_path)
{
	struct jail_bind *b = &js->binds[js->n_binds++];

	b->host_path = host;
	b->from_fd = fd >= 0;
	b->host_fd = fd;
	b->jail_path = jail_path;
	return 0;
}

/* What a Firecracker jail has on top of QEMU's (fds owned by the caller,
 * -1 when absent). */
struct fc_jail {
	int bin_fd;   /* the checked firecracker_binary, bound at JAIL_FC_BIN */
	int out_fd;   /* SNAP_NEXT: rw at JAIL_SNAP_OUT */
	int in_fd;    /* the generation a wake restores: ro at JAIL_SNAP_IN */
	/* Their host paths, for the jail's messages (the binds use the fds). */
	char out_path[PATH_MAX], in_path[PATH_MAX];
};

static void add_device(struct jail_spec *js, const char *path, unsigned major, unsigned minor,
		       mode_t mode)
{
	struct jail_device *d = &js->devices[js->n_devices++];

	d->jail_path = path;
	d->major = major;
	d->minor = minor;
	d->mode = mode;
}

/* The jail every VMM runs in: /usr read-only (the binary, its libraries
 * and firmware; Debian is merged-usr, so lib/lib64/bin are symlinks),
 * the image files bound from the fds that were hashed, /dev with only
 * null/zero/urandom (and kvm when used), one writable /run. fc (NULL for
 * QEMU) adds Firecracker's binary and snapshot dirs. */
static void build_jail(struct hostd_runtime *rt, const hostd_instance_rec *rec,
		       const struct image *img, bool use_kvm, const char *jdir,
		       const struct cgroup_procs_fds *cfds, char *const *argv,
		       const struct fc_jail *fc, struct jail_spec *js)
{
	struct rlimit nofile;

	memset(js, 0, sizeof(*js));
	js->instance_id = rec->instance_id;
	js->uid = rec->uid;
	js->gid = rec->gid;
	js->jail_dir = jdir;
	add_bind(js, "/usr", -1, "/usr");
	add_bind(js, img->files[IMAGE_KERNEL].path, img->files[IMAGE_KERNEL].fd, JAIL_KERNEL);
	if (img->files[IMAGE_INITRD].present)
		add_bind(js, img->files[IMAGE_INITRD].path, img->files[IMAGE_INITRD].fd,
			 JAIL_INITRD);
	js->symlinks[js->n_symlinks++] = (struct jail_symlink){ "/lib", "usr/lib" };
	js->symlinks[js->n_symlinks++] = (struct jail_symlink){ "/lib64", "usr/lib64" };
	js->symlinks[js->n_symlinks++] = (struct jail_symlink){ "/bin", "usr/bin" };
	add_device(js, "/dev/null", 1, 3, 0666);
	add_device(js, "/dev/zero", 1, 5, 0666);
	add_device(js, "/dev/urandom", 1, 9, 0666);
	if (use_kvm)
		add_device(js, "/dev/kvm", 10, 232, 0660);
	js->writable_dirs[js->n_writable_dirs++] = (struct jail_writable_dir){ JAIL_RUN, 0700 };
	for (unsigned k = 0; k < cfds->n && k < JAIL_MAX_CGROUP_FDS; k++)
		js->cgroup_procs_fds[js->n_cgroup_procs_fds++] = cfds->fd[k];
	/* No core dumps (guest memory), and a modest fd table; never above
	 * the current hard limit (hostd cannot raise it). */
	js->rlimits[js->n_rlimits++] = (struct jail_rlimit){ RLIMIT_CORE, 0, 0 };
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
		rlim_t lim = nofile.rlim_max < 4096 ? nofile.rlim_max : 4096;

		js->rlimits[js->n_rlimits++] = (struct jail_rlimit){ RLIMIT_NOFILE, lim, lim };
	}
	js->exec_path = rt->cfg->qemu_binary;
	if (fc) {
		/* Bound from the fd whose owner and mode were checked: the jail
		 * execs exactly that file. */
		add_bind(js, rt->cfg->firecracker_binary, fc->bin_fd, JAIL_FC_BIN);
		js->exec_path = JAIL_FC_BIN;
		if (fc->out_fd >= 0) {
			add_bind(js, fc->out_path, fc->out_fd, JAIL_SNAP_OUT);
			js->binds[js->n_binds - 1].writable = true;
		}
		if (fc->in_fd >= 0)
			add_bind(js, fc->in_path, fc->in_fd, JAIL_SNAP_IN);
	}
	js->argv = argv;
}

/* The console FIFO the VMM writes its serial output into, made in the
 * jail's writable dir after jail_prepare built it afresh and before the
 * VMM exists (so nothing of the instance's can race it), owned by the
 * instance uid. hostd holds it O_RDWR: a FIFO with a writer never reads
 * EOF, and with a reader never blocks the VMM's open. */
static int make_console(struct hostd_runtime *rt, const hostd_instance_rec *rec, bool create,
			struct vmlet_err *err)
{
	char path[PATH_MAX];
	int fd;

	if (host_path_of(rt, rec->instance_id, JAIL_CONSOLE, path, sizeof(path), err) < 0)
		return -1;
	if (create) {
		if (mknod(path, S_IFIFO | 0600, 0) < 0)
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "console fifo %s", path);
		if (chown(path, rec->uid, rec->gid) < 0)
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "chown %s", path);
	}
	fd = open(path, O_RDWR | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "open console fifo %s", path);
	return fd;
}

/* Register a VMM with the monitor and the runtime. */
static int vm_attach(struct hostd_runtime *rt, const hostd_instance_rec *rec, pid_t pid,
		     int pidfd, bool child, int console_fd, struct lc_vm **out,
		     struct vmlet_err *err)
{
	struct lc_vm *vm = calloc(1, sizeof(*vm));

	*out = NULL;
	if (!vm) {
		close(console_fd);
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "out of memory");
	}
	vm->rt = rt;
	snprintf(vm->tenant, sizeof(vm->tenant), "%s", rec->tenant_id);
	snprintf(vm->pool, sizeof(vm->pool), "%s", rec->pool_id);
	snprintf(vm->instance, sizeof(vm->instance), "%s", rec->instance_id);
	vm->pid = pid;
	vm->pidfd = pidfd;
	vm->child = child;
	vm->console_fd = console_fd;
	vm->log_fd = -1;
	vm->log_dir_fd = hostd_registry_open_instance_dir(rt->reg, rec->tenant_id, rec->pool_id,
							   rec->instance_id, NULL);
	if (vm->log_dir_fd >= 0) {
		struct stat st;

		vm->log_fd = openat(vm->log_dir_fd, CONSOLE_LOG,
				    O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (vm->log_fd >= 0 && fstat(vm->log_fd, &st) == 0)
			vm->log_bytes = (uint64_t)st.st_size;
	}
	pthread_mutex_lock(&rt->lock);
	vm->next = rt->vms;
	rt->vms = vm;
	pthread_mutex_unlock(&rt->lock);
	*out = vm;
	if (hostd_monitor_add(rt->mon, pidfd, pidfd_cb, vm, err) < 0 ||
	    (console_fd >= 0 && hostd_monitor_add(rt->mon, console_fd, console_cb, vm, err) < 0))
		return -1;
	return 0;
}

/* ---- snapshot directories (shared by both drivers; gens are Firecracker's) ------------ */

/* How deep a tree hostd wipes below a snapshot dir: a VMM can only make
 * directories in SNAP_NEXT, and needs none. */
#define WIPE_DEPTH_MAX 4

/* pools/<p>/instances/<i>/snapshot beneath the tenant root, opened with
 * hostd_open_beneath at every step: root's 0700 dir (made when create). */
static int snapshot_dir_open(const struct hostd_registry *reg, const char *tenant,
			     const char *pool, const char *instance, bool create,
			     struct vmlet_err *err)
{
	_cleanup_close_ int tfd = -1, idir = -1;
	char rel[3 * VMLET_ID_MAX + 64];
	struct stat st;
	int sdir;

	if (!vmlet_id_ok(tenant) || !vmlet_id_ok(pool) || !vmlet_instance_id_ok(instance))
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "snapshot: invalid ids");
	tfd = hostd_registry_open_tenant_dir(reg, tenant, err);
	if (tfd < 0)
		return -1;
	snprintf(rel, sizeof(rel), "pools/%s/instances/%s", pool, instance);
	idir = hostd_open_beneath(tfd, rel, O_RDONLY | O_DIRECTORY, 0, err);
	if (idir < 0)
		return -1;
	if (create && mkdirat(idir, SNAPSHOT_DIR, 0700) < 0 && errno != EEXIST)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "snapshot: mkdir %s/%s", rel,
				     SNAPSHOT_DIR);
	sdir = hostd_open_beneath(idir, SNAPSHOT_DIR, O_RDONLY | O_DIRECTORY, 0, err);
	if (sdir < 0)
		return -1;
	if (fstat(sdir, &st) < 0 || st.st_uid != 0 || (st.st_mode & 07777) != 0700) {
		close(sdir);
		return vmlet_err_set(err, VMLET_E_FORBIDDEN, 0,
				     "snapshot: %s/%s is not a root-owned 0700 directory", rel,
				     SNAPSHOT_DIR);
	}
	return sdir;
}

/* Overwrite a regular file with zeros: guest memory must not linger in
 * free blocks. */
static int zero_fill_fd(int fd, struct vmlet_err *err)
{
	static const char zeros[65536];
	struct stat st;

	if (fstat(fd, &st) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "snapshot: fstat");
	for (off_t off = 0; off < st.st_size;) {
		size_t n = st.st_size - off > (off_t)sizeof(zeros) ? sizeof(zeros)
								  : (size_t)(st.st_size - off);
		ssize_t w = pwrite(fd, zeros, n, off);

		if (w <= 0)
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "snapshot: wiping");
		off += w;
	}
	fdatasync(fd);
	return 0;
}

/* Remove dirfd/name: regular files zero-filled first (only when this is
 * their one link: a hard link would make us zero someone else's data),
 * directories recursively (bounded depth), never following a symlink.
 * Missing: 0. The tree may have been written by a VMM: nothing is
 * trusted, every open is beneath dirfd and non-blocking (a FIFO planted
 * where a file was listed must not hang hostd). */
static int wipe_entry(int dirfd, const char *name, int depth, struct vmlet_err *err)
{
	struct stat st;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0
				       : vmlet_err_sys(err, VMLET_E_INTERNAL, "snapshot: stat %s", name);
	if (S_ISDIR(st.st_mode)) {
		_cleanup_close_ int d = -1;
		DIR *dp;
		struct dirent *de;
		int rc = 0, dd;

		if (depth >= WIPE_DEPTH_MAX)
			return vmlet_err_set(err, VMLET_E_FORBIDDEN, 0,
					     "snapshot: %s nests more than %d directories", name,
					     WIPE_DEPTH_MAX);
		d = hostd_open_beneath(dirfd, name, O_RDONLY | O_DIRECTORY, 0, err);
		if (d < 0)
			return -1;
		dd = dup(d);
		dp = dd >= 0 ? fdopendir(dd) : NULL;
		if (!dp) {
			if (dd >= 0)
				close(dd);
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "snapshot: opendir %s", name);
		}
		while (rc == 0 && (de = readdir(dp)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				rc = wipe_entry(d, de->d_name, depth + 1, err);
		closedir(dp);
		if (rc < 0)
			return -1;
		if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "snapshot: rmdir %s", name);
		return 0;
	}
	if (S_ISREG(st.st_mode) && st.st_nlink == 1) {
		_cleanup_close_ int f = hostd_open_beneath(dirfd, name, O_WRONLY | O_NONBLOCK, 0,
							   err);

		if (f < 0 && err->code != VMLET_E_NOT_FOUND)
			return -1;
		if (f >= 0 && fstat(f, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1 &&
		    zero_fill_fd(f, err) < 0)
			return -1;
	}
	if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "snapshot: unlink %s", name);
	return 0;
}

/* "gen-<n>": n decimal, 1..9 digits, no leading zero. */
static bool gen_parse(const char *name, unsigned *n)
{
	size_t pl = strlen(SNAP_GEN);
	const char *p = name + pl;
	unsigned v = 0;

	if (strncmp(name, SNAP_GEN, pl) != 0 || !*p || strlen(p) > 9 || (p[0] == '0' && p[1]))
		return false;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (unsigned)(*p - '0');
	}
	*n = v;
	return true;
}

/* The highest gen-<n> in the snapshot dir: 1 (found, *n), 0 (none), -1. */
static int gen_latest(int sdir, unsigned *n, struct vmlet_err *err)
{
	int dd = dup(sdir), found = 0;
	DIR *dp = dd >= 0 ? fdopendir(dd) : NULL;
	struct dirent *de;

	if (!dp) {
		if (dd >= 0)
			close(dd);
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "snapshot: opendir");
	}
	rewinddir(dp);
	while ((de = readdir(dp))) {
		unsigned v;

		if (gen_parse(de->d_name, &v) && (!found || v > *n)) {
			*n = v;
			found = 1;
		}
	}
	closedir(dp);
	return found;
}

/* Every gen-<n> except keep: wiped (errors logged: the sleep already
 * succeeded and the next wipe retries). */
static void gen_wipe_others(int sdir, unsigned keep, const char *instance)
{
	int dd = dup(sdir);
	DIR *dp = dd >= 0 ? fdopendir(dd) : NULL;
	struct dirent *de;
	char names[8][NAME_MAX + 1];
	size_t n = 0;

	if (!dp) {
		if (dd >= 0)
			close(dd);
		return;
	}
	rewinddir(dp);
	while ((de = readdir(dp)) && n < 8) {
		unsigned v;

		if (gen_parse(de->d_name, &v) && v != keep)
			snprintf(names[n++], sizeof(names[0]), "%s", de->d_name);
	}
	closedir(dp);
	for (size_t k = 0; k < n; k++) {
		struct vmlet_err e;

		if (wipe_entry(sdir, names[k], 0, &e) < 0)
			vlog(VLOG_WARN, "snapshot_gen_wipe_failed", "instance=%s gen=%s error=\"%s\"",
			     instance, names[k], e.msg);
	}
}

/* The host path of an entry of the instance's snapshot dir (only for the
 * jail's messages: the binds use fds). */
static void snap_host_path(const struct hostd_runtime *rt, const hostd_instance_rec *rec,
			   const char *entry, char *buf, size_t len)
{
	if (snprintf(buf, len, "%s/tenants/%s/pools/%s/instances/%s/%s/%s", rt->cfg->state_dir,
		     rec->tenant_id, rec->pool_id, rec->instance_id, SNAPSHOT_DIR, entry) >= (int)len)
		snprintf(buf, len, "/%s", entry);
}

/* A fresh, EMPTY SNAP_NEXT owned by the instance (0700), for the next
 * snapshot of the VMM about to start; anything left there is wiped. */
static int next_prepare(struct hostd_runtime *rt, const hostd_instance_rec *rec,
			struct fc_jail *fj, struct vmlet_err *err)
{
	_cleanup_close_ int sdir = snapshot_dir_open(rt->reg, rec->tenant_id, rec->pool_id,
						     rec->instance_id, true, err);
	int fd;

	if (sdir < 0 || wipe_entry(sdir, SNAP_NEXT, 0, err) < 0)
		return vmlet_err_prefix(err, "snapshot dir: ");
	if (mkdirat(sdir, SNAP_NEXT, 0700) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "snapshot: mkdir %s", SNAP_NEXT);
	fd = hostd_open_beneath(sdir, SNAP_NEXT, O_RDONLY | O_DIRECTORY, 0, err);
	if (fd < 0)
		return -1;
	if (fchown(fd, rec->uid, rec->gid) < 0 || fchmod(fd, 0700) < 0) {
		close(fd);
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "snapshot: chown %s", SNAP_NEXT);
	}
	fj->out_fd = fd;
	snap_host_path(rt, rec, SNAP_NEXT, fj->out_path, sizeof(fj->out_path));
	return 0;
}

/* The two snapshot files of a generation dir (gfd), checked: regular,
 * one link, owned by want_uid. Then made owner root, group gid, mode
 * file_mode; the dir likewise with dir_mode. lend (gid = the instance's,
 * 0440/0750) lets a restoring VMM read them through its read-only bind;
 * taking them back is gid 0, 0600/0700. */
static int gen_set_owner(int gfd, uid_t want_uid, gid_t gid, mode_t file_mode, mode_t dir_mode,
			 struct vmlet_err *err)
{
	static const char *const files[] = { VMM_SNAP_STATE_FILE, VMM_SNAP_MEM_FILE };

	for (size_t k = 0; k < 2; k++) {
		_cleanup_close_ int f = hostd_open_beneath(gfd, files[k], O_RDONLY | O_NONBLOCK, 0,
							   err);
		struct stat st;

		if (f < 0)
			return vmlet_err_prefix(err, "snapshot: ");
		if (fstat(f, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
		    st.st_uid != want_uid)
			return vmlet_err_set(err, VMLET_E_FORBIDDEN, 0,
					     "snapshot: %s is not a regular file with one link "
					     "owned by uid %u",
					     files[k], (unsigned)want_uid);
		if (fchown(f, 0, gid) < 0 || fchmod(f, file_mode) < 0 || fsync(f) < 0)
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "snapshot: chown/chmod %s",
					     files[k]);
	}
	if (fchown(gfd, 0, gid) < 0 || fchmod(gfd, dir_mode) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "snapshot: chown/chmod its dir");
	return 0;
}

/* After the VMM that wrote SNAP_NEXT is gone: exactly the two files and
 * nothing else may be there. */
static int next_check_entries(int nfd, struct vmlet_err *err)
{
	int dd = dup(nfd), n = 0, bad = 0;
	DIR *dp = dd >= 0 ? fdopendir(dd) : NULL;
	struct dirent *de;
	char q[VLOG_STR_MAX] = "";

	if (!dp) {
		if (dd >= 0)
			close(dd);
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "snapshot: opendir %s", SNAP_NEXT);
	}
	rewinddir(dp);
	while ((de = readdir(dp))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		n++;
		if (strcmp(de->d_name, VMM_SNAP_STATE_FILE) && strcmp(de->d_name, VMM_SNAP_MEM_FILE) &&
		    !bad++)
			vlog_str(de->d_name, q, sizeof(q));
	}
	closedir(dp);
	if (bad)
		return vmlet_err_set(err, VMLET_E_FORBIDDEN, 0,
				     "snapshot: unexpected entry %s in the snapshot dir", q);
	if (n != 2)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
				     "snapshot: the VMM wrote %d of the 2 snapshot files", n);
	return 0;
}

/* Empty SNAP_NEXT in place (it is bound into the live VM's jail: the dir
 * itself stays), e.g. after a snapshot that failed half-way. */
static void next_empty(int nfd, const char *instance)
{
	int dd = dup(nfd);
	DIR *dp = dd >= 0 ? fdopendir(dd) : NULL;
	struct dirent *de;
	char names[8][NAME_MAX + 1];
	size_t n = 0;

	if (!dp) {
		if (dd >= 0)
			close(dd);
		return;
	}
	rewinddir(dp);
	while ((de = readdir(dp)) && n < 8)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			snprintf(names[n++], sizeof(names[0]), "%s", de->d_name);
	closedir(dp);
	for (size_t k = 0; k < n; k++) {
		struct vmlet_err e;

		if (wipe_entry(nfd, names[k], 1, &e) < 0)
			vlog(VLOG_WARN, "snapshot_next_wipe_failed", "instance=%s error=\"%s\"",
			     instance, e.msg);
	}
}

/* firecracker_binary, opened for the jail to bind and exec: a regular,
 * executable file of root's that nobody else may write (the VMM runs it
 * as the instance's uid, but hostd vouches for what it is). */
static int vmm_binary_open(const char *path, struct vmlet_err *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;

	if (fd < 0)
		return vmlet_err_sys(err, errno == ENOENT ? VMLET_E_UNAVAILABLE : VMLET_E_INTERNAL,
				     "firecracker_binary %s", path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || !(st.st_mode & 0100))
		return vmlet_err_set(err, VMLET_E_UNAVAILABLE, 0,
				     "firecracker_binary %s: not an executable regular file", path);
	if (st.st_uid != 0 || (st.st_mode & 022))
		return vmlet_err_set(err, VMLET_E_FORBIDDEN, 0,
				     "firecracker_binary %s: must be root's and not group- or "
				     "world-writable (owner %u, mode %04o)",
				     path, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
	return vmlet_take_fd(&fd);
}

/* The console FIFO's write end, for a VMM whose stdout is the console
 * (console_on_stdout): blocking, so a guest that prints faster than hostd
 * drains waits instead of losing output. */
static int console_writer(struct hostd_runtime *rt, const hostd_instance_rec *rec,
			  struct vmlet_err *err)
{
	char path[PATH_MAX];
	int fd, fl;

	if (host_path_of(rt, rec->instance_id, JAIL_CONSOLE, path, sizeof(path), err) < 0)
		return -1;
	/* hostd holds the read end (O_RDWR): this open does not block. */
	fd = open(path, O_WRONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "open console fifo %s", path);
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		close(fd);
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "console fifo %s: fcntl", path);
	}
	return fd;
}

/* Start the instance's VMM in its jail and cgroup: cold boot, or (with
 * snap_fd >= 0) restoring a snapshot: for QEMU snap_fd is the state file
 * (restore_from_fd), for Firecracker the generation dir (bound read-only
 * at JAIL_SNAP_IN, restore_from_dir; snap_path names it). On success rec
 * is running with the new pid, saved. On failure nothing of the attempt
 * is left running and rec.last_error says why. */
static int start_vmm(struct hostd_runtime *rt, hostd_instance_rec *rec, int snap_fd,
		     const char *snap_path, struct vmlet_err *err)
{
	const struct vmm_driver *drv = rt->drv;
	bool fc = is_firecracker(rt);
	struct fc_jail fj = { .bin_fd = -1, .out_fd = -1, .in_fd = -1 };
	int console_wfd = -1;
	struct image img = { 0 };
	struct cgroup_procs_fds cfds = { 0 };
	struct cgroup_limits lim;
	struct vmm_spec vs = { 0 };
	struct vmm_argv *av = NULL;
	struct jail_spec *js = NULL;
	struct lc_vm *vm = NULL;
	char jdir[PATH_MAX], cmdline[VMM_CMDLINE_MAX];
	char mac_s[NET_MAC_STR], net_args[HOSTD_NET_CMDLINE_MAX];
	uint8_t mac[NET_MAC_LEN];
	bool use_kvm;
	pid_t pid = -1;
	int pidfd = -1, console_fd = -1, tap_fd = -1, rc = -1;

	/* vmlet never runs a VMM outside its jail; the policy check states
	 * it where production mode is decided. */
	if (jail_policy_check(rt->cfg->production, true, err) < 0)
		return -1;
	/* Firecracker has no TCG: without a usable KVM (NodeInfo.accel, from
	 * the start-up probe or accel = kvm) it cannot run a guest at all. */
	if (fc && strcmp(rt->facts->accel, "kvm") != 0)
		return vmlet_err_set(err, VMLET_E_UNAVAILABLE, 0,
				     "vmm = firecracker needs KVM, and KVM is not usable on this "
				     "host (accel = %s): firecracker has no TCG fallback",
				     rt->facts->accel);
	if (fc)
		use_kvm = true;
	else if (snap_fd >= 0)
		use_kvm = strcmp(rec->accel, "kvm") == 0; /* restore as it was saved */
	else
		use_kvm = strcmp(rt->facts->accel, "kvm") == 0;
	if (image_open(rt->images_dir, rec->image, &img, err) < 0)
		return -1;
	av = calloc(1, sizeof(*av));
	js = calloc(1, sizeof(*js));
	if (!av || !js) {
		vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "out of memory");
		goto out;
	}
	if (fc && (fj.bin_fd = vmm_binary_open(rt->cfg->firecracker_binary, err)) < 0)
		goto out;
	if (ensure_uid(rt, rec, err) < 0)
		goto out;
	if (!rt->cg_ok) {
		vmlet_err_set(err, VMLET_E_UNAVAILABLE, 0,
			      "no usable cgroup hierarchy on this host (memory, cpu, pids)");
		goto out;
	}
	lim.mem_bytes = ((uint64_t)rec->mem_mib + rt->cfg->vmm_overhead_mib) << 20;
	lim.cpu_period_us = 100000;
	lim.cpu_quota_us = (uint64_t)rec->vcpus * lim.cpu_period_us;
	lim.pids_max = rt->cfg->instance_pids_max;
	if (cgroup_create(&rt->cg, rec->tenant_id, rec->instance_id, &lim, err) < 0 ||
	    cgroup_open_procs_fds(&rt->cg, rec->tenant_id, rec->instance_id, &cfds, err) < 0)
		goto fail;

	snprintf(cmdline, sizeof(cmdline), "%s",
		 img.cmdline[0] ? img.cmdline : "console=ttyS0 tsc_early_khz=2000000 panic=-1");
	vs.instance_id = rec->instance_id;
	vs.binary = fc ? JAIL_FC_BIN : rt->cfg->qemu_binary;
	vs.vcpus = rec->vcpus;
	vs.mem_mib = rec->mem_mib;
	vs.kernel = JAIL_KERNEL;
	vs.initrd = img.files[IMAGE_INITRD].present ? JAIL_INITRD : NULL;
	vs.cmdline = cmdline;
	vs.control_socket = control_socket(rt);
	vs.console_log = JAIL_CONSOLE;
	vs.tap_fd = -1;
	vs.tap_name = NULL;
	/* The NIC: a TAP owned by the instance's uid on its tenant bridge,
	 * handed to QEMU as an fd (the jail has no /dev/net/tun); the guest
	 * learns its address from the kernel command line. Firecracker opens
	 * TAPs by name and is not wired here yet: it runs without a NIC. */
	if (rt->net && !fc && rec->tap_name && rec->tap_name[0]) {
		struct hostd_env ne = { rt->cfg, rt->facts, rt->reg, rt, rt->net };
		size_t used = strlen(cmdline);

		if (hostd_net_instance_attach(&ne, rec, &tap_fd, mac, net_args, err) < 0)
			goto fail;
		if (used + 1 + strlen(net_args) >= sizeof(cmdline)) {
			vmlet_err_set(err, VMLET_E_INVALID, 0,
				      "kernel command line: no room for the network arguments");
			goto fail;
		}
		snprintf(cmdline + used, sizeof(cmdline) - used, " %s", net_args);
		net_mac_format(mac, mac_s);
		vs.tap_fd = tap_fd;
		vs.mac = mac_s;
	}
	vs.use_kvm = use_kvm;
	vs.incoming = snap_fd >= 0;
	if (drv->build_argv(&vs, av, err) < 0)
		goto fail;
	if (jail_dir_of(rt, rec->instance_id, jdir, sizeof(jdir), err) < 0)
		goto fail;
	if (fc) {
		/* The next snapshot's empty dir; a wake also binds the
		 * generation it restores (read-only: the VM maps its memory
		 * file for its whole life). */
		if (next_prepare(rt, rec, &fj, err) < 0)
			goto fail;
		fj.in_fd = snap_fd;
		snprintf(fj.in_path, sizeof(fj.in_path), "%s", snap_path ? snap_path : "/");
	}
	build_jail(rt, rec, &img, use_kvm, jdir, &cfds, av->argv, fc ? &fj : NULL, js);
	/* fds the argv names (the TAP) stay under their own numbers */
	for (size_t i = 0; i < av->n_keep_fds && js->n_keep_fds < JAIL_MAX_KEEP_FDS; i++)
		js->keep_fds[js->n_keep_fds++] =
			(struct jail_fd){ av->keep_fds[i], av->keep_fds[i] };
	if (jail_prepare(js, err) < 0)
		goto fail;
	console_fd = make_console(rt, rec, true, err);
	if (console_fd < 0)
		goto fail;
	if (drv->console_on_stdout) {
		console_wfd = console_writer(rt, rec, err);
		if (console_wfd < 0)
			goto fail;
		js->keep_fds[js->n_keep_fds++] = (struct jail_fd){ console_wfd, STDOUT_FILENO };
	}
	if (jail_spawn(js, &pid, &pidfd, err) < 0)
		goto fail;
	rc = vm_attach(rt, rec, pid, pidfd, true, console_fd, &vm, err);
	console_fd = -1; /* the vm (or vm_attach's failure path) owns it */
	if (rc < 0) {
		if (!vm)
			close(pidfd); /* the cgroup kill in teardown ends the process */
		goto fail;
	}
	rc = -1;
	/* The pid is on disk before anything else can go wrong: a hostd that
	 * dies from here on finds it and re-adopts or reaps it. */
	rec->pid = (uint32_t)pid;
	rec->pid_start_time = pid_start_time(pid);
	if (rec_set_str(&rec->accel, use_kvm ? "kvm" : "tcg", err) < 0 || rec_save(rt, rec, err) < 0)
		goto fail;
	if (vm_conn(rt, vm, err) < 0)
		goto fail;
	if (snap_fd >= 0) {
		if ((fc ? drv->restore_from_dir(vm->conn, JAIL_SNAP_IN, RESTORE_MS, err)
			: drv->restore_from_fd(vm->conn, snap_fd, RESTORE_MS, err)) < 0)
			goto fail;
	} else if (drv->boot && drv->boot(vm->conn, &vs, BOOT_MS, err) < 0) {
		goto fail;
	}
	rec_state(rec, S(RUNNING));
	if (rec_set_str(&rec->last_error, "", err) < 0 || rec_save(rt, rec, err) < 0)
		goto fail;
	vlog(VLOG_INFO, "vmm_started", "instance=%s/%s/%s vmm=%s pid=%d uid=%u accel=%s restore=%d",
	     rec->tenant_id, rec->pool_id, rec->instance_id, drv->name, (int)pid, rec->uid,
	     use_kvm ? "kvm" : "tcg", snap_fd >= 0);
	rc = 0;
	goto out;
fail:
	/* Nothing of the failed attempt stays: kill, remove cgroup and jail. */
	if (vm)
		vm_conn_drop(vm);
	teardown(rt, rec->tenant_id, rec->instance_id, vm, NULL);
	rec->pid = 0;
	rec->pid_start_time = 0;
	{
		struct vmlet_err e2;

		if (rec_set_str(&rec->last_error, err->msg, &e2) == 0)
			rec_save(rt, rec, &e2);
	}
out:
	if (tap_fd >= 0)
		close(tap_fd); /* QEMU holds its own copy */
	if (console_fd >= 0)
		close(console_fd);
	if (console_wfd >= 0)
		close(console_wfd);
	if (fj.bin_fd >= 0)
		close(fj.bin_fd);
	if (fj.out_fd >= 0)
		close(fj.out_fd);
	cgroup_procs_fds_close(&cfds);
	image_close(&img);
	free(av);
	free(js);
	return rc;
}

/* ---- snapshots ------------------------------------------------------------------------ */

int hostd_open_beneath(int dirfd, const char *rel, int flags, mode_t mode, struct vmlet_err *err)
{
	/* The kernel resolves rel strictly inside dirfd: no "..", no absolute
	 * path, no symlink anywhere on the way (not even one pointing back
	 * inside), no magic /proc links. String checks could not promise that
	 * against a tree an instance's files live in. EXDEV (escape), ELOOP
	 * (symlink) and ENOTDIR (a symlink or file where a directory belongs)
	 * all mean the tree was tampered with: 403. */
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC | O_NOFOLLOW),
		.mode = (flags & O_CREAT) ? mode : 0,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	long fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));

	if (fd < 0)
		return vmlet_err_sys(err,
				     errno == ENOENT ? VMLET_E_NOT_FOUND
				     : (errno == EXDEV || errno == ELOOP || errno == ENOTDIR)
					     ? VMLET_E_FORBIDDEN
									    : VMLET_E_INTERNAL,
				     "open %s beneath the tenant root", rel);
	return (int)fd;
}

/* The snapshot file of an instance, beneath its tenant's root:
 *   pools/<p>/instances/<i>/snapshot/vm.state
 * The directory is made 0700 and the file 0600 (both root's: the VMM
 * never sees them, it gets an fd). For writing, the file is truncated. */
int hostd_snapshot_open(const struct hostd_registry *reg, const char *tenant, const char *pool,
			const char *instance, bool for_write, struct vmlet_err *err)
{
	_cleanup_close_ int sdir = -1;
	struct stat st;
	int fd;

	sdir = snapshot_dir_open(reg, tenant, pool, instance, for_write, err);
	if (sdir < 0)
		return -1;
	fd = hostd_open_beneath(sdir, SNAPSHOT_FILE,
				for_write ? O_RDWR | O_CREAT | O_TRUNC : O_RDONLY, 0600, err);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 ||
	    (for_write && fchmod(fd, 0600) < 0)) {
		close(fd);
		return vmlet_err_set(err, VMLET_E_FORBIDDEN, 0,
				     "snapshot: pools/%s/instances/%s/%s/%s is not a root-owned "
				     "regular file",
				     pool, instance, SNAPSHOT_DIR, SNAPSHOT_FILE);
	}
	return fd;
}

/* Zero-fill and unlink every snapshot of the instance (QEMU's state
 * file, Firecracker's generations and its next dir: guest memory must not
 * linger in free blocks), then remove the directory. Missing: 0. No VMM of
 * the instance may be alive. */
static int snapshot_wipe(struct hostd_runtime *rt, const hostd_instance_rec *rec,
			 struct vmlet_err *err)
{
	_cleanup_close_ int tfd = -1;
	char rel[3 * VMLET_ID_MAX + 64];

	tfd = hostd_registry_open_tenant_dir(rt->reg, rec->tenant_id, err);
	if (tfd < 0)
		return err->code == VMLET_E_NOT_FOUND ? 0 : -1;
	snprintf(rel, sizeof(rel), "pools/%s/instances/%s", rec->pool_id, rec->instance_id);
	{
		_cleanup_close_ int idir = hostd_open_beneath(tfd, rel, O_RDONLY | O_DIRECTORY, 0,
							      err);

		if (idir < 0)
			return err->code == VMLET_E_NOT_FOUND ? 0 : -1;
		if (wipe_entry(idir, SNAPSHOT_DIR, 0, err) < 0)
			return -1;
	}
	return 0;
}

/* ---- the handlers ------------------------------------------------------------------------ */

static int run_start(struct hostd_runtime *rt, hostd_instance_rec *rec, const struct lc_args *a,
		     struct vmlet_err *err)
{
	/* A cold boot: a snapshot left from before (a wake keeps it, a VMM
	 * that died does not get to clean up) is stale guest memory. */
	if (snapshot_wipe(rt, rec, err) < 0)
		return -1;
	return start_vmm(rt, rec, -1, NULL, err);
}

static int run_pause(struct hostd_runtime *rt, hostd_instance_rec *rec, const struct lc_args *a,
		     struct vmlet_err *err)
{
	struct lc_vm *vm = live_vm(rt, rec, err);

	if (!vm)
		return -1;
	if (vm_conn(rt, vm, err) < 0 || rt->drv->pause(vm->conn, QMP_OP_MS, err) < 0) {
		vm_conn_drop(vm);
		return -1;
	}
	rec_state(rec, S(WARM));
	return rec_save(rt, rec, err);
}

static int run_resume(struct hostd_runtime *rt, hostd_instance_rec *rec,
		      const struct lc_args *a, struct vmlet_err *err)
{
	struct lc_vm *vm = live_vm(rt, rec, err);

	if (!vm)
		return -1;
	if (vm_conn(rt, vm, err) < 0 || rt->drv->resume(vm->conn, QMP_OP_MS, err) < 0) {
		vm_conn_drop(vm);
		return -1;
	}
	rec_state(rec, S(RUNNING));
	return rec_save(rt, rec, err);
}

static int run_stop(struct hostd_runtime *rt, hostd_instance_rec *rec, const struct lc_args *a,
		    struct vmlet_err *err)
{
	struct lc_vm *vm = NULL;

	if (rec->state == S(RUNNING) || rec->state == S(WARM)) {
		vm = vm_find(rt, rec->tenant_id, rec->pool_id, rec->instance_id);
		if (vm) {
			bool graceful = false, wait = true;
			struct vmlet_err e2;

			pthread_mutex_lock(&rt->lock);
			vm->expect_exit = true;
			pthread_mutex_unlock(&rt->lock);
			/* A paused guest cannot see the power button. */
			if (vm_conn(rt, vm, &e2) < 0 ||
			    rt->drv->shutdown(vm->conn,
					      rec->state == S(WARM) ? 0 : (int)a->graceful_ms,
					      QUIT_MS, &graceful, &e2) < 0) {
				vlog(VLOG_INFO, "stop_forced", "instance=%s reason=\"%s\"",
				     rec->instance_id, e2.msg);
				/* 501: a VMM with no quit request (firecracker)
				 * whose guest did not power off. It will not end
				 * by itself: teardown kills it via its cgroup. */
				wait = e2.code != VMLET_E_NOT_IMPLEMENTED;
			}
			if (wait)
				wait_exit(vm, EXIT_WAIT_MS);
		}
	}
	/* Whatever is left (or a VMM that would not quit) goes with the
	 * cgroup. */
	if (teardown(rt, rec->tenant_id, rec->instance_id, vm, err) < 0)
		return -1;
	/* A stopped instance boots cold next time: its snapshot (from a
	 * sleep, or the one a wake restored) is of no use and is guest
	 * memory at rest. */
	if (snapshot_wipe(rt, rec, err) < 0)
		return -1;
	rec_state(rec, S(STOPPED));
	rec->pid = 0;
	rec->pid_start_time = 0;
	if (rec_set_str(&rec->last_error, "", err) < 0)
		return -1;
	return rec_save(rt, rec, err);
}

static int run_destroy(struct hostd_runtime *rt, hostd_instance_rec *rec,
		       const struct lc_args *a, struct vmlet_err *err)
{
	struct lc_vm *vm = vm_find(rt, rec->tenant_id, rec->pool_id, rec->instance_id);

	if (teardown(rt, rec->tenant_id, rec->instance_id, vm, err) < 0)
		return -1;
	/* Record, console logs and snapshot: zero-filled, then unlinked. */
	if (hostd_registry_remove_instance(rt->reg, rec->tenant_id, rec->pool_id,
					   rec->instance_id, err) < 0)
		return -1;
	rec_state(rec, S(DESTROYED));
	rec->pid = 0;
	return 0;
}

/* A snapshot by directory (Firecracker): the live VMM writes both files
 * into SNAP_NEXT (bound rw at JAIL_SNAP_OUT since its start) and stays
 * paused; hostd kills it, checks the files, makes them root's 0600 and
 * renames SNAP_NEXT to the next generation; older generations (the one
 * this VM was restored from) are wiped. */
static int run_sleep_dir(struct hostd_runtime *rt, hostd_instance_rec *rec, struct lc_vm *vm,
			 struct vmlet_err *err)
{
	bool was_running = rec->state == S(RUNNING);
	_cleanup_close_ int sdir = -1, nfd = -1;
	unsigned gen = 0;
	char name[32];
	int r;

	sdir = snapshot_dir_open(rt->reg, rec->tenant_id, rec->pool_id, rec->instance_id, false,
				 err);
	if (sdir < 0)
		return vmlet_err_prefix(err, "sleep: ");
	nfd = hostd_open_beneath(sdir, SNAP_NEXT, O_RDONLY | O_DIRECTORY, 0, err);
	if (nfd < 0)
		return vmlet_err_prefix(err, "sleep: ");
	/* EMPTY before the VMM writes: anything there came from the VMM on
	 * its own (or an earlier failed attempt) and is removed. */
	next_empty(nfd, rec->instance_id);
	if ((r = gen_latest(sdir, &gen, err)) < 0)
		return -1;
	gen = r ? gen + 1 : 1;
	if (gen > 999999999u)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "sleep: snapshot generations exhausted");
	pthread_mutex_lock(&rt->lock);
	vm->expect_exit = true; /* a completed snapshot is followed by a kill */
	pthread_mutex_unlock(&rt->lock);
	if (vm_conn(rt, vm, err) < 0 ||
	    rt->drv->snapshot_to_dir(vm->conn, JAIL_SNAP_OUT, SNAPSHOT_MS, err) < 0) {
		struct vmlet_err e2;
		bool exited;

		vm_conn_drop(vm);
		pthread_mutex_lock(&rt->lock);
		exited = vm->exited;
		vm->expect_exit = false;
		pthread_mutex_unlock(&rt->lock);
		next_empty(nfd, rec->instance_id);
		if (exited) {
			record_death(rt, rec, vm, err->msg);
			return -1;
		}
		/* The VM was paused for the snapshot: give a running one back
		 * its vCPUs; a warm one stays warm. */
		if (was_running &&
		    (vm_conn(rt, vm, &e2) < 0 || rt->drv->resume(vm->conn, QMP_OP_MS, &e2) < 0))
			vlog(VLOG_WARN, "resume_after_failed_sleep", "instance=%s error=\"%s\"",
			     rec->instance_id, e2.msg);
		return -1;
	}
	/* Never resume a snapshotted VM (a clone would replay its state):
	 * the process goes, with everything in its cgroup. */
	if (teardown(rt, rec->tenant_id, rec->instance_id, vm, err) < 0)
		return -1;
	rec->pid = 0;
	rec->pid_start_time = 0;
	snprintf(name, sizeof(name), SNAP_GEN "%u", gen);
	if (next_check_entries(nfd, err) < 0 ||
	    gen_set_owner(nfd, rec->uid, 0, 0600, 0700, err) < 0 ||
	    ((renameat(sdir, SNAP_NEXT, sdir, name) < 0 || fsync(sdir) < 0) &&
	     vmlet_err_sys(err, VMLET_E_INTERNAL, "snapshot: rename %s to %s", SNAP_NEXT,
			   name) < 0)) {
		struct vmlet_err e2;
		char why[sizeof(err->msg) + 32];

		/* The VM is gone and its snapshot unusable: stopped. */
		snprintf(why, sizeof(why), "sleep failed: %s", err->msg);
		next_empty(nfd, rec->instance_id);
		snapshot_wipe(rt, rec, &e2);
		rec_state(rec, S(STOPPED));
		if (rec_set_str(&rec->last_error, why, &e2) == 0)
			rec_save(rt, rec, &e2);
		return -1;
	}
	gen_wipe_others(sdir, gen, rec->instance_id);
	vlog(VLOG_INFO, "snapshot_saved", "instance=%s/%s/%s generation=%u", rec->tenant_id,
	     rec->pool_id, rec->instance_id, gen);
	rec_state(rec, S(SLEEPING));
	return rec_save(rt, rec, err);
}

static int run_sleep(struct hostd_runtime *rt, hostd_instance_rec *rec, const struct lc_args *a,
		     struct vmlet_err *err)
{
	bool was_running = rec->state == S(RUNNING);
	_cleanup_close_ int fd = -1;
	struct lc_vm *vm = live_vm(rt, rec, err);

	if (!vm)
		return -1;
	if (by_dir(rt))
		return run_sleep_dir(rt, rec, vm, err);
	fd = hostd_snapshot_open(rt->reg, rec->tenant_id, rec->pool_id, rec->instance_id, true,
				 err);
	if (fd < 0)
		return -1;
	pthread_mutex_lock(&rt->lock);
	vm->expect_exit = true; /* a completed snapshot ends the VMM */
	pthread_mutex_unlock(&rt->lock);
	if (vm_conn(rt, vm, err) < 0 || rt->drv->snapshot_to_fd(vm->conn, fd, SNAPSHOT_MS, err) < 0) {
		struct vmlet_err e2;
		bool exited;

		vm_conn_drop(vm);
		pthread_mutex_lock(&rt->lock);
		exited = vm->exited;
		vm->expect_exit = false;
		pthread_mutex_unlock(&rt->lock);
		snapshot_wipe(rt, rec, &e2);
		if (exited) {
			record_death(rt, rec, vm, err->msg);
			return -1;
		}
		/* The VM was paused for the save: give a running one back its
		 * vCPUs; a warm one stays warm. */
		if (was_running &&
		    (vm_conn(rt, vm, &e2) < 0 || rt->drv->resume(vm->conn, QMP_OP_MS, &e2) < 0))
			vlog(VLOG_WARN, "resume_after_failed_sleep", "instance=%s error=\"%s\"",
			     rec->instance_id, e2.msg);
		return -1;
	}
	wait_exit(vm, EXIT_WAIT_MS);
	if (teardown(rt, rec->tenant_id, rec->instance_id, vm, err) < 0)
		return -1;
	rec_state(rec, S(SLEEPING));
	rec->pid = 0;
	rec->pid_start_time = 0;
	return rec_save(rt, rec, err);
}

/* Restore the latest generation (Firecracker): lent read-only to the
 * instance's gid for the new VMM, which maps its memory file for its
 * whole life; the generation stays until the next sleep has written a
 * newer one (or stop/destroy wipe it). */
static int run_wake_dir(struct hostd_runtime *rt, hostd_instance_rec *rec,
			struct vmlet_err *err)
{
	_cleanup_close_ int sdir = -1, gfd = -1;
	char name[32], path[PATH_MAX];
	unsigned gen = 0;
	int r;

	sdir = snapshot_dir_open(rt->reg, rec->tenant_id, rec->pool_id, rec->instance_id, false,
				 err);
	if (sdir < 0)
		return vmlet_err_prefix(err, "restore: ");
	if ((r = gen_latest(sdir, &gen, err)) < 0)
		return -1;
	if (r == 0)
		return vmlet_err_set(err, VMLET_E_NOT_FOUND, 0, "restore: no snapshot generation");
	snprintf(name, sizeof(name), SNAP_GEN "%u", gen);
	gfd = hostd_open_beneath(sdir, name, O_RDONLY | O_DIRECTORY, 0, err);
	if (gfd < 0)
		return vmlet_err_prefix(err, "restore: ");
	/* Root's files (as the sleep left them), then readable by the
	 * instance's gid only. */
	if (gen_set_owner(gfd, 0, rec->gid, 0440, 0750, err) < 0) {
		struct vmlet_err e2;

		gen_set_owner(gfd, 0, 0, 0600, 0700, &e2); /* what was lent already */
		return vmlet_err_prefix(err, "restore: ");
	}
	snap_host_path(rt, rec, name, path, sizeof(path));
	if (start_vmm(rt, rec, gfd, path, err) < 0) {
		struct vmlet_err e2;

		/* The VMM is gone: the generation is root's alone again. */
		if (gen_set_owner(gfd, 0, 0, 0600, 0700, &e2) < 0)
			vlog(VLOG_WARN, "snapshot_reclaim_failed", "instance=%s error=\"%s\"",
			     rec->instance_id, e2.msg);
		return -1;
	}
	return 0;
}

static int run_wake(struct hostd_runtime *rt, hostd_instance_rec *rec, const struct lc_args *a,
		    struct vmlet_err *err)
{
	_cleanup_close_ int fd = -1;

	if (rec->state == S(WARM))
		return run_resume(rt, rec, a, err);
	if (by_dir(rt))
		return run_wake_dir(rt, rec, err);
	fd = hostd_snapshot_open(rt->reg, rec->tenant_id, rec->pool_id, rec->instance_id, false,
				 err);
	if (fd < 0)
		return vmlet_err_prefix(err, "restore: ");
	/* The snapshot stays until the next sleep overwrites it, or stop and
	 * destroy wipe it: wiping here would put a zero-fill of the guest's
	 * memory on the wake path. */
	return start_vmm(rt, rec, fd, NULL, err);
}

/* ---- the monitor's tick: deaths nobody asked for ---------------------------------------- */

struct dead_ids {
	char t[VMLET_ID_MAX], p[VMLET_ID_MAX], i[16];
};

static void tick(void *arg)
{
	struct hostd_runtime *rt = arg;
	struct dead_ids dead[16];
	size_t n = 0;

	pthread_mutex_lock(&rt->lock);
	for (struct lc_vm *vm = rt->vms; vm && n < 16; vm = vm->next)
		if (vm->dead_pending) {
			snprintf(dead[n].t, sizeof(dead[n].t), "%s", vm->tenant);
			snprintf(dead[n].p, sizeof(dead[n].p), "%s", vm->pool);
			snprintf(dead[n].i, sizeof(dead[n].i), "%s", vm->instance);
			n++;
		}
	pthread_mutex_unlock(&rt->lock);

	for (size_t k = 0; k < n; k++) {
		hostd_instance_rec *rec = NULL;
		struct lc_vm *vm;
		char why[128] = "";

		/* An op holds it: that op finds the death itself, or we retry
		 * on the next tick. Never wait behind an op here. */
		if (!instance_trylock(dead[k].t, dead[k].p, dead[k].i))
			continue;
		vm = vm_find(rt, dead[k].t, dead[k].p, dead[k].i);
		if (vm && vm->dead_pending) {
			pthread_mutex_lock(&rt->lock);
			snprintf(why, sizeof(why), "%s", vm->exit_reason);
			vm->dead_pending = false;
			pthread_mutex_unlock(&rt->lock);
			if (hostd_registry_lookup_instance(rt->reg, dead[k].t, dead[k].p, dead[k].i,
							   &rec, NULL) == 0 &&
			    rec->pid == (uint32_t)vm->pid) {
				record_death(rt, rec, vm, why);
				vm = NULL;
			}
			if (vm)
				teardown(rt, dead[k].t, dead[k].i, vm, NULL);
			if (rec)
				protobuf_c_message_free_unpacked(&rec->base, NULL);
		}
		hostd_instance_unlock(dead[k].t, dead[k].p, dead[k].i);
	}
}

/* ---- the KVM probe ------------------------------------------------------------------------ */

#define PROBE_MS 15000
#define PROBE_MARKER "VMLET-GUEST-READY"

/* Wait for the marker on the probe's console, or its exit, or the
 * deadline. Only the last bytes are kept: the marker is short. */
static bool probe_wait_marker(int console_fd, int pidfd, int ms)
{
	char window[512 + sizeof(PROBE_MARKER)];
	size_t have = 0;
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd p[2] = { { .fd = console_fd, .events = POLLIN },
				       { .fd = pidfd, .events = POLLIN } };
		int left, r;

		clock_gettime(CLOCK_MONOTONIC, &t);
		left = ms - (int)((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0)
			return false;
		r = poll(p, 2, left);
		if (r < 0 && errno != EINTR)
			return false;
		if (r > 0 && (p[0].revents & POLLIN)) {
			char buf[4096];
			ssize_t n = read(console_fd, buf, sizeof(buf));

			for (ssize_t k = 0; k < n; k++) {
				if (have == sizeof(window) - 1) {
					memmove(window, window + 256, have - 256);
					have -= 256;
				}
				window[have++] = buf[k];
			}
			window[have] = '\0';
			if (have && memmem(window, have, PROBE_MARKER, strlen(PROBE_MARKER)))
				return true;
		}
		if (r > 0 && (p[1].revents & POLLIN))
			return false; /* QEMU exited: "KVM internal error", MSR faults */
	}
}

int hostd_runtime_probe_kvm(struct hostd_runtime *rt, const char *image_name, bool *kvm_ok,
			    struct vmlet_err *err)
{
	static const struct hostd_registry_visitor v = { NULL, NULL, scan_uid };
	hostd_instance_rec rec = VMLET__HOST__V1__INSTANCE_RECORD__INIT;
	struct cgroup_procs_fds cfds = { 0 };
	struct uid_scan us = { 0 };
	struct image img = { 0 };
	struct vmm_spec vs = { 0 };
	struct vmm_argv *av = calloc(1, sizeof(*av));
	struct jail_spec *js = calloc(1, sizeof(*js));
	char jdir[PATH_MAX], cmdline[VMM_CMDLINE_MAX];
	int console_fd = -1, pidfd = -1, rc = -1;
	uint32_t uid = 0;
	pid_t pid;

	*kvm_ok = false;
	if (!av || !js) {
		vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "out of memory");
		goto out;
	}
	/* The probe is a VMM like any other: hashed image, own uid, jail. */
	if (image_open(rt->images_dir, image_name, &img, err) < 0)
		goto out;
	if (hostd_registry_walk(rt->reg, NULL, NULL, &v, &us, err) < 0 ||
	    uidalloc_pick(&rt->uids, us.uids, us.n, &uid, err) < 0)
		goto out;
	rec.tenant_id = "vmlet-probe";
	rec.pool_id = "probe";
	rec.instance_id = HOSTD_PROBE_INSTANCE;
	rec.uid = rec.gid = uid;
	snprintf(cmdline, sizeof(cmdline), "%s",
		 img.cmdline[0] ? img.cmdline : "console=ttyS0 tsc_early_khz=2000000 panic=-1");
	vs.instance_id = HOSTD_PROBE_INSTANCE;
	vs.binary = rt->cfg->qemu_binary;
	vs.vcpus = 1;
	vs.mem_mib = 128;
	vs.kernel = JAIL_KERNEL;
	vs.initrd = img.files[IMAGE_INITRD].present ? JAIL_INITRD : NULL;
	vs.cmdline = cmdline;
	vs.control_socket = JAIL_QMP;
	vs.console_log = JAIL_CONSOLE;
	vs.tap_fd = -1;
	vs.use_kvm = true;
	/* The probe is QEMU's: it asks whether a stock kernel runs under this
	 * host's KVM, whatever VMM serves instances. */
	if (vmm_qemu_driver.build_argv(&vs, av, err) < 0 ||
	    jail_dir_of(rt, HOSTD_PROBE_INSTANCE, jdir, sizeof(jdir), err) < 0)
		goto out;
	build_jail(rt, &rec, &img, true, jdir, &cfds, av->argv, NULL, js);
	if (jail_prepare(js, err) < 0 || (console_fd = make_console(rt, &rec, true, err)) < 0 ||
	    jail_spawn(js, &pid, &pidfd, err) < 0)
		goto cleanup;
	*kvm_ok = probe_wait_marker(console_fd, pidfd, PROBE_MS);
	syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
	{
		struct pollfd p = { .fd = pidfd, .events = POLLIN };
		siginfo_t si;

		poll(&p, 1, EXIT_WAIT_MS);
		waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG);
	}
	rc = 0;
cleanup:
	{
		struct vmlet_err e2;

		if (jail_cleanup(jdir, &e2) < 0)
			vlog(VLOG_WARN, "kvm_probe_cleanup_failed", "error=\"%s\"", e2.msg);
	}
out:
	if (console_fd >= 0)
		close(console_fd);
	if (pidfd >= 0)
		close(pidfd);
	image_close(&img);
	free(us.uids);
	free(av);
	free(js);
	return rc;
}

/* ---- recovery at start ---------------------------------------------------------------- */

struct rec_list {
	hostd_instance_rec **v;
	size_t n, cap;
};

static int collect_rec(void *arg, const Vmlet__Host__V1__InstanceRecord *i, struct vmlet_err *err)
{
	struct rec_list *l = arg;
	hostd_instance_rec *copy;
	size_t len = protobuf_c_message_get_packed_size(&i->base);
	uint8_t *buf = malloc(len ? len : 1);

	if (!buf)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "out of memory");
	protobuf_c_message_pack(&i->base, buf);
	copy = vmlet__host__v1__instance_record__unpack(NULL, len, buf);
	free(buf);
	if (!copy)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "out of memory");
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 32;
		hostd_instance_rec **nv = realloc(l->v, ncap * sizeof(*nv));

		if (!nv) {
			protobuf_c_message_free_unpacked(&copy->base, NULL);
			return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "out of memory");
		}
		l->v = nv;
		l->cap = ncap;
	}
	l->v[l->n++] = copy;
	return 0;
}

/* The same process that was started for this record: same start time
 * (pids are reused, start times are not), and its executable is the
 * configured VMM binary (same file, compared by device and inode). */
static bool same_process(const struct hostd_runtime *rt, const hostd_instance_rec *rec)
{
	char exe[64];
	struct stat a, b;

	if (!rec->pid || !rec->pid_start_time || pid_start_time((pid_t)rec->pid) != rec->pid_start_time)
		return false;
	snprintf(exe, sizeof(exe), "/proc/%u/exe", rec->pid);
	return stat(exe, &a) == 0 && stat(rt->vmm_binary, &b) == 0 && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
}

static int readopt(struct hostd_runtime *rt, hostd_instance_rec *rec, struct vmlet_err *err)
{
	struct lc_vm *vm = NULL;
	int pidfd, console_fd;

	pidfd = (int)syscall(SYS_pidfd_open, (pid_t)rec->pid, 0);
	if (pidfd < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "pidfd_open %u", rec->pid);
	/* The process may have exited between the identity check and
	 * pidfd_open, and its pid been reused: check again through the fd's
	 * own pid being alive with the same start time. */
	if (!same_process(rt, rec)) {
		close(pidfd);
		return vmlet_err_set(err, VMLET_E_CONFLICT, 0, "pid %u changed while re-adopting",
				     rec->pid);
	}
	fcntl(pidfd, F_SETFD, FD_CLOEXEC);
	console_fd = make_console(rt, rec, false, NULL);
	if (vm_attach(rt, rec, (pid_t)rec->pid, pidfd, false, console_fd, &vm, err) < 0) {
		if (vm) {
			vm_unlink(rt, vm);
			hostd_monitor_del(rt->mon, pidfd);
			if (console_fd >= 0)
				hostd_monitor_del(rt->mon, console_fd);
			vm_free(vm);
		} else {
			close(pidfd);
		}
		return -1;
	}
	/* QMP reconnects lazily, on the first op that needs it. */
	return 0;
}

static bool adopted(struct hostd_runtime *rt, const char *tenant, const char *instance)
{
	bool found = false;

	pthread_mutex_lock(&rt->lock);
	for (struct lc_vm *vm = rt->vms; vm && !found; vm = vm->next)
		found = !strcmp(vm->tenant, tenant) && !strcmp(vm->instance, instance);
	pthread_mutex_unlock(&rt->lock);
	return found;
}

/* cgroups and jail dirs that no live VMM accounts for: killed, removed,
 * logged. A stopped or sleeping instance has neither, so anything found is
 * debris of a crash or of something that is not vmlet's to keep. */
static void reap_unaccounted(struct hostd_runtime *rt)
{
	struct vmlet_err e;
	char **tenants = NULL, **ids = NULL;
	size_t nt = 0, ni = 0;
	DIR *d;
	struct dirent *de;

	if (rt->cg_ok && cgroup_list(&rt->cg, NULL, &tenants, &nt, &e) == 0) {
		for (size_t t = 0; t < nt; t++) {
			if (cgroup_list(&rt->cg, tenants[t], &ids, &ni, &e) < 0)
				continue;
			for (size_t i = 0; i < ni; i++) {
				if (adopted(rt, tenants[t], ids[i]))
					continue;
				if (cgroup_remove(&rt->cg, tenants[t], ids[i], CGROUP_KILL_MS, &e) == 0)
					vlog(VLOG_WARN, "reaped_cgroup", "tenant=%s instance=%s",
					     tenants[t], ids[i]);
				else
					vlog(VLOG_ERROR, "reap_cgroup_failed",
					     "tenant=%s instance=%s error=\"%s\"", tenants[t],
					     ids[i], e.msg);
			}
			cgroup_list_free(ids, ni);
			ids = NULL;
		}
		cgroup_list_free(tenants, nt);
	}
	d = opendir(rt->jail_root);
	if (!d)
		return;
	while ((de = readdir(d))) {
		char jdir[PATH_MAX];
		bool live = false;

		if (!vmlet_instance_id_ok(de->d_name))
			continue; /* not vmlet's naming: left alone */
		pthread_mutex_lock(&rt->lock);
		for (struct lc_vm *vm = rt->vms; vm && !live; vm = vm->next)
			live = !strcmp(vm->instance, de->d_name);
		pthread_mutex_unlock(&rt->lock);
		if (live || jail_dir_of(rt, de->d_name, jdir, sizeof(jdir), &e) < 0)
			continue;
		if (jail_cleanup(jdir, &e) == 0)
			vlog(VLOG_WARN, "reaped_jail_dir", "instance=%s", de->d_name);
		else
			vlog(VLOG_ERROR, "reap_jail_dir_failed", "instance=%s error=\"%s\"",
			     de->d_name, e.msg);
	}
	closedir(d);
}

int hostd_runtime_recover(struct hostd_runtime *rt, struct vmlet_err *err)
{
	static const struct hostd_registry_visitor v = { NULL, NULL, collect_rec };
	struct rec_list l = { 0 };
	size_t adopted_n = 0, lost_n = 0;
	int rc;

	if ((rc = hostd_registry_walk(rt->reg, NULL, NULL, &v, &l, err)) < 0)
		goto out;
	for (size_t k = 0; k < l.n; k++) {
		hostd_instance_rec *rec = l.v[k];
		bool live_state = rec->state == S(RUNNING) || rec->state == S(WARM);
		struct vmlet_err e;
		char why[160];

		if (!rec->pid && !live_state)
			continue;
		hostd_instance_lock(rec->tenant_id, rec->pool_id, rec->instance_id);
		if (live_state && same_process(rt, rec) && readopt(rt, rec, &e) == 0) {
			vlog(VLOG_INFO, "vmm_readopted", "instance=%s/%s/%s pid=%u state=%s",
			     rec->tenant_id, rec->pool_id, rec->instance_id, rec->pid,
			     lc_state_name((int)rec->state));
			adopted_n++;
		} else {
			snprintf(why, sizeof(why), "VMM (pid %u) gone while hostd was down",
				 rec->pid);
			vlog(VLOG_WARN, "vmm_lost", "instance=%s/%s/%s pid=%u state=%s",
			     rec->tenant_id, rec->pool_id, rec->instance_id, rec->pid,
			     lc_state_name((int)rec->state));
			teardown(rt, rec->tenant_id, rec->instance_id, NULL, NULL);
			/* A start interrupted by the crash leaves its state as it
			 * was; a VMM that was running is now stopped. */
			if (live_state)
				rec_state(rec, S(STOPPED));
			rec->pid = 0;
			rec->pid_start_time = 0;
			if (rec_set_str(&rec->last_error, why, &e) == 0)
				rec_save(rt, rec, &e);
			lost_n++;
		}
		hostd_instance_unlock(rec->tenant_id, rec->pool_id, rec->instance_id);
	}
	reap_unaccounted(rt);
	vlog(VLOG_INFO, "recovery_done", "records=%zu readopted=%zu lost=%zu", l.n, adopted_n,
	     lost_n);
out:
	for (size_t k = 0; k < l.n; k++)
		protobuf_c_message_free_unpacked(&l.v[k]->base, NULL);
	free(l.v);
	return rc;
}

/* ---- open / close ------------------------------------------------------------------------- */

int hostd_runtime_open(struct hostd_runtime **out, const struct vmlet_config *cfg,
		       const struct hostd_facts *facts, const struct hostd_registry *reg,
		       struct vmlet_err *err)
{
	struct hostd_runtime *rt = calloc(1, sizeof(*rt));
	struct vmlet_err cgerr;

	*out = NULL;
	if (!rt)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "out of memory");
	rt->cfg = cfg;
	rt->facts = facts;
	rt->reg = reg;
	/* Firecracker runs in vmlet's own jail (jail.c), exactly like QEMU;
	 * Firecracker's jailer is never used (jailer_binary only feeds
	 * NodeInfo.jailer_available). */
	if (strcmp(cfg->vmm, "firecracker") == 0) {
		rt->drv = &vmm_firecracker_driver;
		rt->vmm_binary = cfg->firecracker_binary;
	} else {
		rt->drv = &vmm_qemu_driver;
		rt->vmm_binary = cfg->qemu_binary;
	}
	rt->uids.base = cfg->uid_base;
	rt->uids.count = cfg->uid_count;
	pthread_mutex_init(&rt->lock, NULL);
	pthread_mutex_init(&rt->uid_lock, NULL);
	if (uidalloc_check_range(&rt->uids, err) < 0) {
		vmlet_err_prefix(err, "[hostd] uid_base/uid_count: ");
		goto fail;
	}
	if (snprintf(rt->jail_root, sizeof(rt->jail_root), "%s/jail", cfg->state_dir) >=
		    (int)sizeof(rt->jail_root) ||
	    snprintf(rt->images_dir, sizeof(rt->images_dir), "%s/images", cfg->state_dir) >=
		    (int)sizeof(rt->images_dir)) {
		vmlet_err_set(err, VMLET_E_INVALID, 0, "state_dir: path too long");
		goto fail;
	}
	/* The jail tree must be root's and closed to everyone else: jail.c
	 * checks every component above each jail dir. */
	if (vmlet_ensure_dir(rt->jail_root, 0700, 0, 0, err) < 0) {
		vmlet_err_prefix(err, "jail dir: ");
		goto fail;
	}
	/* Without cgroups hostd still serves every other operation; starts
	 * then fail with the reason. */
	if (cgroup_detect(cfg->cgroup_root, CGROUP_MODE_AUTO, &rt->cg, &cgerr) == 0)
		rt->cg_ok = true;
	else
		vlog(VLOG_WARN, "cgroups_unavailable", "reason=\"%s\"", cgerr.msg);
	if (hostd_monitor_start(&rt->mon, tick, rt, MONITOR_TICK_MS, err) < 0)
		goto fail;
	*out = rt;
	return 0;
fail:
	if (rt->cg_ok)
		cgroup_env_close(&rt->cg);
	free(rt);
	return -1;
}

void hostd_runtime_close(struct hostd_runtime *rt)
{
	if (!rt)
		return;
	hostd_monitor_stop(rt->mon);
	/* The VMMs keep running; the next hostd re-adopts them. */
	while (rt->vms) {
		struct lc_vm *vm = rt->vms;

		rt->vms = vm->next;
		vm_free(vm);
	}
	if (rt->cg_ok)
		cgroup_env_close(&rt->cg);
	pthread_mutex_destroy(&rt->lock);
	pthread_mutex_destroy(&rt->uid_lock);
	free(rt);
}
