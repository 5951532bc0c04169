/* The reconcile planner: desired state + what the node has -> an ordered
 * list of host operations. A pure function (no I/O, no clock, no
 * randomness of its own): the same input gives the same plan, and a
 * converged node gives an empty one. The executor (later) turns the ops
 * into HostRequests, runs them in order, and records failures in the
 * backoff table that the next pass gets back.
 *
 * ---- Per pool: reaching running / warm / sleeping exactly ----------------
 * An instance is "current" when its spec_hash is the desired pool's
 * (agentd/spec_hash.h), "old" otherwise. Only created, running, warm,
 * sleeping and stopped instances are considered (destroyed / unspecified
 * ones are ignored, their ids are still never reused).
 *  1. Keep: in each state, the oldest current instances up to the desired
 *     count stay as they are (oldest = created_unix, then instance id).
 *  2. Fill each state still short, running first, then warm, then sleeping,
 *     one instance at a time, taking the first that applies:
 *       a. a current instance that can move now, sources in this order
 *          (within a source, oldest first):
 *            running  <- warm (RESUME), sleeping (WAKE),
 *                        created/stopped (START)
 *            warm     <- running (PAUSE), sleeping (WAKE, PAUSE),
 *                        created/stopped (START, PAUSE)
 *            sleeping <- warm (SLEEP), running (SLEEP),
 *                        created/stopped (START, SLEEP)
 *          i.e. the cheapest move first: resume a paused VMM, restore a
 *          snapshot, boot an existing instance; making warm/sleeping ones
 *          from running ones before booting anything.
 *       b. an old instance already in that state (kept until it is
 *          replaced, see "spec changes");
 *       c. a source from (a) that may not move yet (min_running_seconds /
 *          min_warm_seconds): the slot is held for it and the move is
 *          deferred and reported; nothing is created in its place, so
 *          waiting never causes a create-then-destroy churn;
 *       d. a new instance: CREATE, START (+ PAUSE for warm, + SLEEP for
 *          sleeping), each op depending on the one before.
 *  3. Everything not kept or used is excess and removed newest first
 *     (created_unix desc, then id desc): running/warm ones STOP (graceful)
 *     then DESTROY; sleeping/created/stopped ones only DESTROY (they have
 *     no process to shut down; DESTROY also removes the snapshot).
 * RESUME and WAKE are both counted as instances_woken (WakeInstance also
 * calls resuming a warm instance a wake); START as started, PAUSE as
 * warmed, SLEEP as slept.
 *
 * ---- Runtime policy -------------------------------------------------------
 * A running instance does not leave running (PAUSE, SLEEP, STOP) before
 * now - state_since_unix >= min_running_seconds; a warm one does not go to
 * sleeping or stopped before min_warm_seconds. Warm -> running is never
 * held back (serving demand is what warm instances are for). Held moves
 * are counted in instances_deferred with a note naming the instance, the
 * time in its state and the minimum. STOP waits graceful_shutdown_seconds
 * (capped at PLAN_GRACEFUL_MS_MAX; PLAN_DEFAULT_GRACEFUL_MS when the pool
 * has no runtime_policy or is being pruned).
 *
 * ---- Spec changes -----------------------------------------------------------
 * Old instances keep their slot (step 2b) and are replaced one per pool per
 * pass, oldest first among those the policy lets go: the new instance is
 * created first (CREATE, START [, PAUSE|SLEEP]) and the old one removed
 * after it (STOP, DESTROY, the STOP depending on the new instance's last
 * op), so capacity never drops. When that surge would exceed a tenant quota
 * the old one is removed first and the new one created after it (its
 * CREATE depending on the DESTROY); when even that does not fit, the
 * replacement is refused with a quota note.
 *
 * ---- Quotas ----------------------------------------------------------------
 * Tenant usage starts from every live instance of the tenant (also in
 * pools not in the desired state) and follows the ops as they are planned:
 * running/warm count vCPUs and memory, every live instance counts its data
 * disk, max_instances_per_pool counts live instances of the pool. Removals
 * and pure reductions (SLEEP of a running/warm instance) of the whole
 * tenant are planned before anything that grows usage, so freed capacity
 * can be reused in the same pass. An op that would raise a counter past its
 * quota is not emitted; a note names the quota and the numbers ("tenant
 * acme pool web: max_running 4 would be exceeded (5) by ..."). A chain is
 * checked against the state it ends in (a new warm instance passes through
 * running for a moment; that is not counted against max_running).
 * ENSURE_POOL of a new pool is checked against max_pools.
 *
 * ---- Tenants and unknowns -----------------------------------------------------
 * A desired tenant the node lacks gets ENSURE_TENANT (refused with a
 * conflict note when its net id or subnet is held by another tenant that
 * stays); one whose network differs from the node's gets a conflict note
 * (a live tenant's network is not changed; prune and re-add it). Pools get
 * ENSURE_POOL when missing or when their spec hash changed. Unknown
 * tenants (prune_unknown_tenants) and unknown pools of desired tenants
 * (prune_unknown_pools) are torn down: every instance STOP/DESTROY, then
 * REMOVE_POOL, then REMOVE_TENANT; the policy's minimum times do not apply
 * (the coordinator asked for them to go). Without the flag they are left
 * alone and listed in the notes. Unknown tenants are pruned first.
 *
 * ---- Failures and backoff -------------------------------------------------------
 * The executor records a failed op under its key (plan_op_key): the
 * instance for ops on an existing instance, the pool for ENSURE_POOL,
 * REMOVE_POOL and new instances' chains, the tenant for ENSURE_TENANT and
 * REMOVE_TENANT. While now < next_retry_unix for a key, ops under it are
 * skipped with a "retrying after" note (a tenant or pool that does not
 * exist yet is then skipped whole); the plan does not route around a
 * backed-off instance (retrying is preferred to churn; the backoff is
 * capped, plan_backoff_next).
 *
 * ---- Executing a plan -------------------------------------------------------------
 * Ops run in order. `after` names the op this one needs: when that one
 * failed or was skipped, skip this one too. `grows` marks ops that raise
 * tenant usage: planning assumed the tenant's earlier removals succeeded,
 * so when one of them failed, skip the tenant's `grows` ops this pass. */
#ifndef VMLET_AGENTD_PLAN_H
#define VMLET_AGENTD_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agentd/spec_hash.h"
#include "rpc/agent.pb-c.h"
#include "shared/err.h"

#define PLAN_ID_MAX 63              /* tenant, pool, image ids */
#define PLAN_INSTANCE_ID_LEN 10     /* "i-" + 8 hex */
#define PLAN_SUBNET_MAX 18          /* "255.255.255.255/29" */
#define PLAN_KEY_MAX (PLAN_ID_MAX + 1 + PLAN_ID_MAX + 1 + PLAN_INSTANCE_ID_LEN)
#define PLAN_NOTE_MAX 320
#define PLAN_GRACEFUL_MS_MAX 60000u /* HostRequest InstanceAction.graceful_ms bound */
#define PLAN_DEFAULT_GRACEFUL_MS 10000u
#define PLAN_BACKOFF_BASE_S 5u
#define PLAN_BACKOFF_MAX_S 300u

/* ---- input: what the node has (from hostd's lists) ------------------------- */

struct plan_tenant {
	const char *id;
	uint32_t net_id;
	const char *subnet;
};

struct plan_pool {
	const char *tenant;
	const char *pool;
	const char *spec_hash;
};

struct plan_instance {
	const char *tenant;
	const char *pool;
	const char *instance_id;
	Vmlet__V1__InstanceState state;
	const char *spec_hash;
	uint64_t created_unix;
	uint64_t state_since_unix;
	uint32_t vcpus;
	uint32_t mem_mib;
	uint32_t data_disk_mib;
};

/* A key (plan_op_key) whose ops wait until next_retry_unix. */
struct plan_backoff {
	const char *key;
	uint64_t next_retry_unix;
};

/* Returns 32 random bits; new instance ids are "i-%08x" of it, retried
 * while they collide with any existing or already planned id. */
typedef uint32_t (*plan_rand32_fn)(void *ctx);

struct plan_input {
	const Vmlet__V1__DesiredState *desired; /* validated (shared/validate.h) */
	const struct plan_tenant *tenants;
	size_t n_tenants;
	const struct plan_pool *pools;
	size_t n_pools;
	const struct plan_instance *instances;
	size_t n_instances;
	const struct plan_backoff *backoff;
	size_t n_backoff;
	uint64_t now_unix;
	plan_rand32_fn rand32; /* plan_rand32_getrandom in production */
	void *rand_ctx;
};

/* ---- output ------------------------------------------------------------------ */

enum plan_op_kind {
	PLAN_ENSURE_TENANT,
	PLAN_ENSURE_POOL,
	PLAN_CREATE_INSTANCE,
	PLAN_START,
	PLAN_STOP,
	PLAN_PAUSE,
	PLAN_RESUME,
	PLAN_SLEEP,
	PLAN_WAKE,
	PLAN_DESTROY,
	PLAN_REMOVE_POOL,
	PLAN_REMOVE_TENANT,
};

struct plan_spec {
	char image[PLAN_ID_MAX + 1];
	uint32_t vcpus;
	uint32_t mem_mib;
	uint32_t data_disk_mib;
	char spec_hash[AGENTD_SPEC_HASH_LEN + 1];
};

struct plan_op {
	enum plan_op_kind kind;
	char tenant[PLAN_ID_MAX + 1];
	char pool[PLAN_ID_MAX + 1];                /* "" for tenant ops */
	char instance[PLAN_INSTANCE_ID_LEN + 1];   /* "" for tenant/pool ops */
	struct plan_spec spec;                     /* CREATE_INSTANCE; ENSURE_POOL: spec_hash */
	uint32_t net_id;                           /* ENSURE_TENANT */
	char subnet[PLAN_SUBNET_MAX + 1];          /* ENSURE_TENANT */
	uint32_t graceful_ms;                      /* STOP */
	bool update;      /* ENSURE_POOL of an existing pool (new spec hash) */
	bool new_instance; /* an op of a chain that creates the instance */
	bool grows;       /* raises tenant usage (see "Executing a plan") */
	long after;       /* index of the op this one needs, -1 = none */
};

/* Mirrors ReconcileReport's counters (for the ops as planned). */
struct plan_counts {
	uint32_t tenants_created, tenants_pruned;
	uint32_t pools_created, pools_pruned;
	uint32_t instances_created, instances_started, instances_warmed, instances_slept;
	uint32_t instances_stopped, instances_destroyed, instances_woken, instances_deferred;
};

enum plan_note_kind {
	PLAN_NOTE_DEFERRED, /* a move held back by min_running/min_warm_seconds */
	PLAN_NOTE_QUOTA,    /* an op refused by a tenant quota */
	PLAN_NOTE_RETRY,    /* ops skipped: their key is backed off */
	PLAN_NOTE_UNKNOWN,  /* a tenant/pool not in the desired state, left alone */
	PLAN_NOTE_CONFLICT, /* the node's state cannot be changed into the desired one */
};

struct plan_note {
	enum plan_note_kind kind;
	char tenant[PLAN_ID_MAX + 1];
	char pool[PLAN_ID_MAX + 1];
	char instance[PLAN_INSTANCE_ID_LEN + 1];
	char text[PLAN_NOTE_MAX]; /* full sentence naming tenant/pool/instance */
};

struct plan {
	struct plan_op *ops;
	size_t n_ops, cap_ops;
	struct plan_note *notes;
	size_t n_notes, cap_notes;
	struct plan_counts counts;
};

/* Compute the plan into *out (initialized here; release with plan_free,
 * also after a failure). -1 + err: 400 when the desired state lacks what
 * validation guarantees, 500 out of memory or no unique instance id. */
int plan_compute(const struct plan_input *in, struct plan *out, struct vmlet_err *err);
void plan_free(struct plan *p);

/* "ensure_tenant", "create_instance", "stop", ... */
const char *plan_op_name(enum plan_op_kind kind);

/* Add op to the report counters (what plan_compute does for each op; the
 * executor recounts what really succeeded). */
void plan_counts_add(struct plan_counts *c, const struct plan_op *op);

/* The backoff key of an op: "tenant", "tenant/pool" or
 * "tenant/pool/instance" (see "Failures and backoff"). buf has at least
 * PLAN_KEY_MAX + 1 bytes. */
void plan_op_key(const struct plan_op *op, char *buf, size_t size);
void plan_key(char *buf, size_t size, const char *tenant, const char *pool, const char *instance);

/* When to retry after the n-th consecutive failure (n >= 1):
 * now + min(PLAN_BACKOFF_BASE_S * 2^(n-1), PLAN_BACKOFF_MAX_S). */
uint64_t plan_backoff_next(uint64_t now_unix, uint32_t failures);

/* The production id source: getrandom(2) (the planner itself never calls
 * it; it is passed in as plan_input.rand32). */
uint32_t plan_rand32_getrandom(void *ctx);

#endif
