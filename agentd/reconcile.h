/* The reconcile executor: runs the planner (agentd/plan.h) against what
 * hostd reports and carries the plan out through the async hostd client.
 *
 * One pass at a time. A pass: list_tenants, list_instances (all tenants),
 * plan_compute, then the ops one by one in plan order (an op whose `after`
 * op failed or was skipped is skipped; once a non-growing op of a tenant
 * failed, that tenant's `grows` ops are skipped). A failing op does not stop
 * the pass: it is reported (tenant/pool/instance + hostd's message) and its
 * key (plan_op_key) backs off with plan_backoff_next; the backoff table
 * lives in memory across passes and an op's success clears its key.
 *
 * Reconcile requests (agentd_reconciler_accept): refused with 409 while a
 * pass runs ("a reconcile pass is running") rather than queued -- the
 * coordinator retries, and a queued state could be overtaken by a newer
 * one anyway. Otherwise: signature rule (agentd/signature.h), then the
 * sequence must be greater than the accepted one (409), then the request
 * is persisted (agentd/desired_store.h) and only then a pass starts; its
 * ReconcileReport goes to the done callback with the request's cookie.
 * Passes without a waiter (start-up, timer) report with cookie
 * AGENTD_RECONCILE_NO_WAITER.
 *
 * hostd has no "list pools" operation: the pools the planner sees are the
 * ones this agentd ensured (remembered in memory) plus every pool that has
 * an instance (with the spec hash of its newest instance). After a restart
 * a pool without instances is ensured once more (idempotent in hostd).
 *
 * Report mapping: counters count ops that succeeded (instances_deferred
 * counts the planner's deferrals); deferred[] holds the deferral, retry,
 * "left alone" and skipped-op notes; errors[] holds failed ops and the
 * planner's quota and conflict refusals. */
#ifndef VMLET_AGENTD_RECONCILE_H
#define VMLET_AGENTD_RECONCILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agentd/hostclient.h"
#include "agentd/plan.h"
#include "rpc/agent.pb-c.h"
#include "shared/err.h"

/* The low 32 bits of every hostd cookie the reconciler uses; connection
 * cookies carry a slot index there, always < max_connections. */
#define AGENTD_RECONCILE_SLOT UINT32_MAX
#define AGENTD_RECONCILE_NO_WAITER 0u /* connection cookies are never 0 */

static inline bool agentd_reconcile_cookie(uint64_t cookie)
{
	return (uint32_t)cookie == AGENTD_RECONCILE_SLOT;
}

struct agentd_reconciler;

/* A pass ended: report (borrowed for the call) or, when the pass could not
 * plan at all (hostd unavailable, bad list), err. */
typedef void (*agentd_reconcile_done_fn)(void *arg, uint64_t cookie,
					 const Vmlet__V1__ReconcileReport *report,
					 const struct vmlet_err *err);

struct agentd_reconciler_opts {
	const char *node_id;
	const char *state_dir; /* where desired_store keeps the state */
	const char *keys_dir;  /* trusted signing keys; NULL: none configured */
	bool production;
	size_t max_len;        /* biggest persisted state read back */
	struct agentd_hostclient *hc;
	agentd_reconcile_done_fn done;
	void *done_arg;
	uint64_t (*now_unix)(void *ctx); /* NULL: time(2) */
	void *now_ctx;
	plan_rand32_fn rand32; /* NULL: plan_rand32_getrandom */
	void *rand_ctx;
};

/* Also loads the persisted state (a corrupt or invalid one is logged and
 * ignored). The strings in opts must outlive the reconciler. */
int agentd_reconciler_new(const struct agentd_reconciler_opts *opts,
			  struct agentd_reconciler **out, struct vmlet_err *err);
void agentd_reconciler_free(struct agentd_reconciler *r);

/* Accept a Reconcile and start its pass (0), or -1 + err and nothing
 * changed: 409 pass running / sequence not newer, 403 signature, 400
 * invalid, 500 cannot persist. When the state was persisted but the pass
 * cannot start (hostd unavailable) -1 + 503 saying so. */
int agentd_reconciler_accept(struct agentd_reconciler *r, const Vmlet__V1__ReconcileRequest *req,
			     uint64_t cookie, struct vmlet_err *err);

/* A pass from the persisted state (start-up, timer): 1 started, 0 skipped
 * (no state, or a pass is running), -1 + err when it cannot start. */
int agentd_reconciler_run(struct agentd_reconciler *r, struct vmlet_err *err);

bool agentd_reconciler_busy(const struct agentd_reconciler *r);
/* Sequence of the accepted state; false when there is none. */
bool agentd_reconciler_sequence(const struct agentd_reconciler *r, uint64_t *seq);

/* A hostd reply whose cookie satisfies agentd_reconcile_cookie. */
void agentd_reconciler_on_host_reply(struct agentd_reconciler *r, uint64_t cookie,
				     const Vmlet__Host__V1__HostResponse *resp,
				     const struct vmlet_err *err);

#endif
