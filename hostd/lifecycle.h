/* The instance lifecycle: DESIGN.md's state machine as a table, and the
 * runtime that makes each transition real (jail + cgroup + VMM).
 *
 *   created  -START->   running          running -PAUSE->  warm
 *   stopped  -START->   running (cold)   warm    -RESUME-> running
 *   running|warm -SLEEP-> sleeping (snapshot on disk, no process)
 *   sleeping|warm -WAKE-> running (restore / resume)
 *   running|warm|sleeping -STOP-> stopped
 *   any -DESTROY-> gone
 *
 * A request whose target state is the current one is a no-op (idempotent);
 * any other pair not in the table is refused with 409 naming both states.
 * Callers hold the instance's lock (ops_instance.c) for the whole
 * transition, so one instance sees one operation at a time. */
#ifndef HOSTD_LIFECYCLE_H
#define HOSTD_LIFECYCLE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "hostd/facts.h"
#include "hostd/registry.h"
#include "rpc/host.pb-c.h"
#include "shared/config.h"
#include "shared/err.h"

typedef Vmlet__Host__V1__InstanceRecord hostd_instance_rec;

struct hostd_runtime;

/* What a transition needs besides the record. */
struct lc_args {
	uint32_t graceful_ms; /* STOP */
};

typedef int (*lc_run_fn)(struct hostd_runtime *rt, hostd_instance_rec *rec,
			 const struct lc_args *a, struct vmlet_err *err);

struct lc_transition {
	Vmlet__Host__V1__InstanceAction action;
	const char *name;  /* "START": used in messages and the audit log (lowercased) */
	unsigned from;     /* LC_BIT(state) of every state it is allowed from */
	Vmlet__V1__InstanceState to;
	lc_run_fn run;
};

#define LC_BIT(s) (1u << (unsigned)(s))

/* The row for an action, NULL for an unknown one. */
const struct lc_transition *lc_transition_find(int action);
/* "running", "sleeping", ...; "unknown" for anything else. */
const char *lc_state_name(int state);

/* The table's verdict for rec in its current state: 1 = already there
 * (no-op), 0 = go, -1 = refused (409: "cannot PAUSE instance t/p/i: it is
 * sleeping (allowed from: running)"). DESTROY is allowed from every state. */
int lc_transition_check(const struct lc_transition *t, const hostd_instance_rec *rec,
			struct vmlet_err *err);

/* ---- the runtime (jail + cgroup + VMM + monitor) ---------------------------------- */

/* Detect cgroups, start the monitor thread. Forks nothing, so it may run
 * after NNG started; recovery (hostd_runtime_recover) should run first. */
int hostd_runtime_open(struct hostd_runtime **out, const struct vmlet_config *cfg,
		       const struct hostd_facts *facts, const struct hostd_registry *reg,
		       struct vmlet_err *err);
/* Stop the monitor; running VMMs keep running (a restarted hostd
 * re-adopts them). */
void hostd_runtime_close(struct hostd_runtime *rt);

/* The tenant networks (hostd/ops_net.h), or NULL: without them instances
 * start with no NIC. With them, a (cold or restoring) start of an
 * instance that has a network attaches its TAP: QEMU gets the TAP's fd
 * and the guest MAC, the kernel command line vmlet.ip= / vmlet.gw=. */
struct hostd_net;
void hostd_runtime_set_net(struct hostd_runtime *rt, struct hostd_net *net);

/* At start, before requests are served: re-adopt every VMM the registry
 * names that is still the same process (pid + start time + executable),
 * mark the others stopped (last_error says why), and kill/remove cgroups
 * and jail dirs that no live VMM accounts for. Everything is logged. */
int hostd_runtime_recover(struct hostd_runtime *rt, struct vmlet_err *err);

/* The instance id the KVM probe's jail uses; create_instance refuses it. */
#define HOSTD_PROBE_INSTANCE "i-ffffffff"

/* accel = auto: boot image_name (hashed, jailed, its own uid, no network)
 * with KVM and see whether the guest reaches VMLET-GUEST-READY within
 * 15 s. A /dev/kvm that creates VMs is not enough: under nested
 * hypervisors stock kernels fault ("KVM internal error", MSR writes) and
 * QEMU exits. *kvm_ok says what happened; -1 when the probe could not run
 * (no such image, ...), which callers treat as "use TCG". Run it before
 * requests are served: it blocks for up to 15 s. */
int hostd_runtime_probe_kvm(struct hostd_runtime *rt, const char *image_name, bool *kvm_ok,
			    struct vmlet_err *err);

/* openat2(dirfd, rel, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
 * RESOLVE_NO_MAGICLINKS), O_CLOEXEC|O_NOFOLLOW added: "..", absolute paths
 * and symlinks anywhere on the way are refused by the kernel (403), a
 * missing file is 404. mode applies with O_CREAT. */
int hostd_open_beneath(int dirfd, const char *rel, int flags, mode_t mode,
		       struct vmlet_err *err);

/* An instance's snapshot file (pools/<p>/instances/<i>/snapshot/vm.state
 * beneath its tenant's directory), opened with hostd_open_beneath at every
 * step; the dir must be root's 0700, the file root's, regular, and is
 * made 0600. for_write: created/truncated (the dir made if missing). */
int hostd_snapshot_open(const struct hostd_registry *reg, const char *tenant, const char *pool,
			const char *instance, bool for_write, struct vmlet_err *err);

/* The per-instance lock callers hold around a transition. */
void hostd_instance_lock(const char *tenant, const char *pool, const char *instance);
void hostd_instance_unlock(const char *tenant, const char *pool, const char *instance);

#endif
