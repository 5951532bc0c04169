#include "agentd/reconcile.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agentd/desired_store.h"
#include "agentd/signature.h"
#include "rpc/strict.h"
#include "shared/log.h"
#include "shared/validate.h"

enum step { STEP_IDLE, STEP_LIST_TENANTS, STEP_LIST_INSTANCES, STEP_OPS };
enum op_result { OP_PENDING = 0, OP_OK, OP_FAILED, OP_SKIPPED };

struct backoff_entry {
	char key[PLAN_KEY_MAX + 1];
	uint32_t failures;
	uint64_t next_retry_unix;
};

struct known_pool {
	char tenant[PLAN_ID_MAX + 1];
	char pool[PLAN_ID_MAX + 1];
	char spec_hash[AGENTD_SPEC_HASH_LEN + 1];
};

/* Growable arrays of the report's repeated fields. */
struct report_acc {
	Vmlet__V1__ReconcileError **errors;
	size_t n_errors, cap_errors;
	char **deferred;
	size_t n_deferred, cap_deferred;
	struct plan_counts done;
};

struct pass {
	enum step step;
	uint64_t waiter;
	uint64_t start_ns;
	uint32_t op_seq; /* cookie high half of the request in flight */
	Vmlet__V1__TenantListResult *tenants;
	Vmlet__V1__InstanceListResult *instances;
	struct plan plan;
	bool planned;
	enum op_result *results;
	size_t next_op;
	/* Tenants with a failed non-growing op this pass, and which op. */
	struct failed_tenant {
		char tenant[PLAN_ID_MAX + 1];
		enum plan_op_kind kind;
	} *failed;
	size_t n_failed, cap_failed;
	struct report_acc acc;
};

struct agentd_reconciler {
	struct agentd_reconciler_opts o;
	Vmlet__V1__ReconcileRequest *accepted; /* owned; NULL: none */
	struct backoff_entry *backoff;
	size_t n_backoff, cap_backoff;
	struct known_pool *pools;
	size_t n_pools, cap_pools;
	uint32_t op_seq;
	struct pass pass;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t now_unix(const struct agentd_reconciler *r)
{
	return r->o.now_unix ? r->o.now_unix(r->o.now_ctx) : (uint64_t)time(NULL);
}

static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	size_t nc;
	void *p;

	if (n < *cap)
		return 0;
	nc = *cap ? *cap * 2 : 8;
	p = realloc(*arr, nc * elem);
	if (!p)
		return -1;
	*arr = p;
	*cap = nc;
	return 0;
}

/* ---- report ------------------------------------------------------------------ */

static void acc_error(struct report_acc *a, const char *tenant, const char *pool,
		      const char *instance, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void acc_error(struct report_acc *a, const char *tenant, const char *pool,
		      const char *instance, const char *fmt, ...)
{
	Vmlet__V1__ReconcileError *e;
	char msg[VMLET_ERR_MSG_MAX + 128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (grow((void **)&a->errors, &a->cap_errors, a->n_errors, sizeof(*a->errors)) < 0 ||
	    !(e = malloc(sizeof(*e))))
		return; /* out of memory: the entry is lost, the pass goes on */
	vmlet__v1__reconcile_error__init(e);
	e->tenant_id = strdup(tenant ? tenant : "");
	e->pool_id = strdup(pool ? pool : "");
	e->instance_id = strdup(instance ? instance : "");
	e->message = strdup(msg);
	if (!e->tenant_id || !e->pool_id || !e->instance_id || !e->message) {
		free(e->tenant_id);
		free(e->pool_id);
		free(e->instance_id);
		free(e->message);
		free(e);
		return;
	}
	a->errors[a->n_errors++] = e;
}

static void acc_deferred(struct report_acc *a, const char *text)
{
	char *s;

	if (grow((void **)&a->deferred, &a->cap_deferred, a->n_deferred, sizeof(*a->deferred)) < 0 ||
	    !(s = strdup(text)))
		return;
	a->deferred[a->n_deferred++] = s;
}

static void acc_free(struct report_acc *a)
{
	for (size_t i = 0; i < a->n_errors; i++) {
		free(a->errors[i]->tenant_id);
		free(a->errors[i]->pool_id);
		free(a->errors[i]->instance_id);
		free(a->errors[i]->message);
		free(a->errors[i]);
	}
	free(a->errors);
	for (size_t i = 0; i < a->n_deferred; i++)
		free(a->deferred[i]);
	free(a->deferred);
	memset(a, 0, sizeof(*a));
}

/* ---- backoff and pools ------------------------------------------------------- */

static struct backoff_entry *backoff_find(struct agentd_reconciler *r, const char *key)
{
	for (size_t i = 0; i < r->n_backoff; i++)
		if (strcmp(r->backoff[i].key, key) == 0)
			return &r->backoff[i];
	return NULL;
}

static void backoff_fail(struct agentd_reconciler *r, const char *key)
{
	struct backoff_entry *b = backoff_find(r, key);

	if (!b) {
		if (grow((void **)&r->backoff, &r->cap_backoff, r->n_backoff, sizeof(*r->backoff)) < 0)
			return;
		b = &r->backoff[r->n_backoff++];
		memset(b, 0, sizeof(*b));
		snprintf(b->key, sizeof(b->key), "%s", key);
	}
	if (b->failures < UINT32_MAX)
		b->failures++;
	b->next_retry_unix = plan_backoff_next(now_unix(r), b->failures);
}

static void backoff_clear(struct agentd_reconciler *r, const char *key)
{
	struct backoff_entry *b = backoff_find(r, key);

	if (b)
		*b = r->backoff[--r->n_backoff];
}

static struct known_pool *pool_find(struct agentd_reconciler *r, const char *tenant,
				    const char *pool)
{
	for (size_t i = 0; i < r->n_pools; i++)
		if (strcmp(r->pools[i].tenant, tenant) == 0 && strcmp(r->pools[i].pool, pool) == 0)
			return &r->pools[i];
	return NULL;
}

static void pool_set(struct agentd_reconciler *r, const char *tenant, const char *pool,
		     const char *hash)
{
	struct known_pool *p = pool_find(r, tenant, pool);

	if (!p) {
		if (grow((void **)&r->pools, &r->cap_pools, r->n_pools, sizeof(*r->pools)) < 0)
			return;
		p = &r->pools[r->n_pools++];
		snprintf(p->tenant, sizeof(p->tenant), "%s", tenant);
		snprintf(p->pool, sizeof(p->pool), "%s", pool);
	}
	snprintf(p->spec_hash, sizeof(p->spec_hash), "%s", hash);
}

static void pools_remove(struct agentd_reconciler *r, const char *tenant, const char *pool)
{
	for (size_t i = 0; i < r->n_pools;) {
		if (strcmp(r->pools[i].tenant, tenant) == 0 &&
		    (!pool || strcmp(r->pools[i].pool, pool) == 0))
			r->pools[i] = r->pools[--r->n_pools];
		else
			i++;
	}
}

/* ---- host requests ------------------------------------------------------------- */

static int submit(struct agentd_reconciler *r, const Vmlet__Host__V1__HostRequest *req,
		  struct vmlet_err *err)
{
	r->op_seq++;
	r->pass.op_seq = r->op_seq;
	return agentd_hostclient_submit(r->o.hc, req,
					((uint64_t)r->op_seq << 32) | AGENTD_RECONCILE_SLOT, NULL,
					err);
}

static const Vmlet__Host__V1__InstanceAction action_of[] = {
	[PLAN_START] = VMLET__HOST__V1__INSTANCE_ACTION__INSTANCE_ACTION_START,
	[PLAN_STOP] = VMLET__HOST__V1__INSTANCE_ACTION__INSTANCE_ACTION_STOP,
	[PLAN_PAUSE] = VMLET__HOST__V1__INSTANCE_ACTION__INSTANCE_ACTION_PAUSE,
	[PLAN_RESUME] = VMLET__HOST__V1__INSTANCE_ACTION__INSTANCE_ACTION_RESUME,
	[PLAN_SLEEP] = VMLET__HOST__V1__INSTANCE_ACTION__INSTANCE_ACTION_SLEEP,
	[PLAN_WAKE] = VMLET__HOST__V1__INSTANCE_ACTION__INSTANCE_ACTION_WAKE,
	[PLAN_DESTROY] = VMLET__HOST__V1__INSTANCE_ACTION__INSTANCE_ACTION_DESTROY,
};

/* The HostRequest of one planned op (strings borrow from op). */
static int submit_op(struct agentd_reconciler *r, struct plan_op *op, struct vmlet_err *err)
{
	Vmlet__Host__V1__HostRequest req = VMLET__HOST__V1__HOST_REQUEST__INIT;
	Vmlet__Host__V1__EnsureTenantRequest et = VMLET__HOST__V1__ENSURE_TENANT_REQUEST__INIT;
	Vmlet__Host__V1__RemoveTenantRequest rt = VMLET__HOST__V1__REMOVE_TENANT_REQUEST__INIT;
	Vmlet__Host__V1__EnsurePoolRequest ep = VMLET__HOST__V1__ENSURE_POOL_REQUEST__INIT;
	Vmlet__Host__V1__RemovePoolRequest rp = VMLET__HOST__V1__REMOVE_POOL_REQUEST__INIT;
	Vmlet__Host__V1__CreateInstanceRequest ci = VMLET__HOST__V1__CREATE_INSTANCE_REQUEST__INIT;
	Vmlet__Host__V1__InstanceSpec spec = VMLET__HOST__V1__INSTANCE_SPEC__INIT;
	Vmlet__Host__V1__InstanceActionRequest ia = VMLET__HOST__V1__INSTANCE_ACTION_REQUEST__INIT;

	switch (op->kind) {
	case PLAN_ENSURE_TENANT:
		et.tenant_id = op->tenant;
		et.tenant_net_id = op->net_id;
		et.ipv4_subnet = op->subnet;
		req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_ENSURE_TENANT;
		req.ensure_tenant = &et;
		break;
	case PLAN_REMOVE_TENANT:
		rt.tenant_id = op->tenant;
		req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_REMOVE_TENANT;
		req.remove_tenant = &rt;
		break;
	case PLAN_ENSURE_POOL:
		ep.tenant_id = op->tenant;
		ep.pool_id = op->pool;
		ep.spec_hash = op->spec.spec_hash;
		req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_ENSURE_POOL;
		req.ensure_pool = &ep;
		break;
	case PLAN_REMOVE_POOL:
		rp.tenant_id = op->tenant;
		rp.pool_id = op->pool;
		req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_REMOVE_POOL;
		req.remove_pool = &rp;
		break;
	case PLAN_CREATE_INSTANCE:
		spec.vcpus = op->spec.vcpus;
		spec.mem_mib = op->spec.mem_mib;
		spec.data_disk_mib = op->spec.data_disk_mib;
		spec.image = op->spec.image;
		spec.spec_hash = op->spec.spec_hash;
		ci.tenant_id = op->tenant;
		ci.pool_id = op->pool;
		ci.instance_id = op->instance;
		ci.spec = &spec;
		req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_CREATE_INSTANCE;
		req.create_instance = &ci;
		break;
	case PLAN_START:
	case PLAN_STOP:
	case PLAN_PAUSE:
	case PLAN_RESUME:
	case PLAN_SLEEP:
	case PLAN_WAKE:
	case PLAN_DESTROY:
		ia.tenant_id = op->tenant;
		ia.pool_id = op->pool;
		ia.instance_id = op->instance;
		ia.action = action_of[op->kind];
		ia.graceful_ms = op->kind == PLAN_STOP ? op->graceful_ms : 0;
		req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_INSTANCE_ACTION;
		req.instance_action = &ia;
		break;
	default:
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "unknown planned op %d", (int)op->kind);
	}
	return submit(r, &req, err);
}

/* What a successful reply to op looks like. */
static bool reply_fits(const struct plan_op *op, const Vmlet__Host__V1__HostResponse *resp)
{
	switch (op->kind) {
	case PLAN_ENSURE_TENANT:
	case PLAN_REMOVE_TENANT:
	case PLAN_ENSURE_POOL:
	case PLAN_REMOVE_POOL:
		return resp->result_case == VMLET__HOST__V1__HOST_RESPONSE__RESULT_OK;
	default:
		return resp->result_case == VMLET__HOST__V1__HOST_RESPONSE__RESULT_INSTANCE &&
		       resp->instance;
	}
}

/* ---- a pass -------------------------------------------------------------------- */

static void pass_reset(struct agentd_reconciler *r)
{
	struct pass *p = &r->pass;

	if (p->tenants)
		protobuf_c_message_free_unpacked(&p->tenants->base, NULL);
	if (p->instances)
		protobuf_c_message_free_unpacked(&p->instances->base, NULL);
	if (p->planned)
		plan_free(&p->plan);
	free(p->results);
	free(p->failed);
	acc_free(&p->acc);
	memset(p, 0, sizeof(*p));
	p->step = STEP_IDLE;
}

/* The pass cannot go on (no plan): tell the waiter, log, reset. */
static void pass_abort(struct agentd_reconciler *r, struct vmlet_err *err)
{
	uint64_t waiter = r->pass.waiter, seq = 0;
	char ebuf[VLOG_STR_MAX];

	agentd_reconciler_sequence(r, &seq);
	vmlet_err_prefix(err, "desired state sequence %" PRIu64 " is accepted, but the pass failed: ",
			 seq);
	vlog(VLOG_ERROR, "reconcile_failed", "sequence=%" PRIu64 " error=%s", seq,
	     vlog_str(err->msg, ebuf, sizeof(ebuf)));
	pass_reset(r);
	if (r->o.done)
		r->o.done(r->o.done_arg, waiter, NULL, err);
}

static void pass_finish(struct agentd_reconciler *r)
{
	struct pass *p = &r->pass;
	Vmlet__V1__ReconcileReport rep = VMLET__V1__RECONCILE_REPORT__INIT;
	const struct plan_counts *c = &p->acc.done;
	uint64_t waiter = p->waiter;
	struct report_acc acc;

	rep.tenants_created = c->tenants_created;
	rep.tenants_pruned = c->tenants_pruned;
	rep.pools_created = c->pools_created;
	rep.pools_pruned = c->pools_pruned;
	rep.instances_created = c->instances_created;
	rep.instances_started = c->instances_started;
	rep.instances_warmed = c->instances_warmed;
	rep.instances_slept = c->instances_slept;
	rep.instances_stopped = c->instances_stopped;
	rep.instances_destroyed = c->instances_destroyed;
	rep.instances_woken = c->instances_woken;
	rep.instances_deferred = p->plan.counts.instances_deferred;
	rep.n_errors = p->acc.n_errors;
	rep.errors = p->acc.errors;
	rep.n_deferred = p->acc.n_deferred;
	rep.deferred = p->acc.deferred;
	rep.duration_micros = (now_ns() - p->start_ns) / 1000u;
	agentd_reconciler_sequence(r, &rep.sequence);
	vlog(VLOG_INFO, "reconcile_pass",
	     "sequence=%" PRIu64 " ops=%zu errors=%zu tenants_created=%u pools_created=%u "
	     "created=%u started=%u warmed=%u slept=%u stopped=%u destroyed=%u woken=%u "
	     "deferred=%u duration_us=%" PRIu64,
	     rep.sequence, p->plan.n_ops, rep.n_errors, rep.tenants_created, rep.pools_created,
	     rep.instances_created, rep.instances_started, rep.instances_warmed,
	     rep.instances_slept, rep.instances_stopped, rep.instances_destroyed,
	     rep.instances_woken, rep.instances_deferred, rep.duration_micros);
	/* The report borrows the accumulated arrays: take them out of the
	 * pass, so the reconciler is idle (and may start the next pass)
	 * while the callback runs. */
	acc = p->acc;
	memset(&p->acc, 0, sizeof(p->acc));
	pass_reset(r);
	if (r->o.done)
		r->o.done(r->o.done_arg, waiter, &rep, NULL);
	acc_free(&acc);
}

/* Whether op must be skipped this pass, with the reason in why. */
static bool must_skip(struct agentd_reconciler *r, size_t i, char *why, size_t size)
{
	struct pass *p = &r->pass;
	const struct plan_op *op = &p->plan.ops[i];

	if (op->after >= 0 && (size_t)op->after < i && p->results[op->after] != OP_OK) {
		snprintf(why, size, "the %s it depends on %s",
			 plan_op_name(p->plan.ops[op->after].kind),
			 p->results[op->after] == OP_FAILED ? "failed" : "was skipped");
		return true;
	}
	if (op->grows) {
		for (size_t k = 0; k < p->n_failed; k++) {
			if (strcmp(p->failed[k].tenant, op->tenant) == 0) {
				snprintf(why, size,
					 "it would grow tenant %s's usage after its %s failed", op->tenant,
					 plan_op_name(p->failed[k].kind));
				return true;
			}
		}
	}
	return false;
}

static void describe_op(const struct plan_op *op, char *buf, size_t size)
{
	char key[PLAN_KEY_MAX + 1];

	plan_key(key, sizeof(key), op->tenant, op->pool[0] ? op->pool : NULL,
		 op->instance[0] ? op->instance : NULL);
	snprintf(buf, size, "%s %s", plan_op_name(op->kind), key);
}

static void op_failed(struct agentd_reconciler *r, size_t i, const char *msg)
{
	struct pass *p = &r->pass;
	const struct plan_op *op = &p->plan.ops[i];
	char key[PLAN_KEY_MAX + 1], what[PLAN_KEY_MAX + 32];

	p->results[i] = OP_FAILED;
	if (!op->grows) {
		bool known = false;
		for (size_t k = 0; k < p->n_failed && !known; k++)
			known = strcmp(p->failed[k].tenant, op->tenant) == 0;
		if (!known && grow((void **)&p->failed, &p->cap_failed, p->n_failed,
				   sizeof(*p->failed)) == 0) {
			snprintf(p->failed[p->n_failed].tenant, sizeof(p->failed[0].tenant), "%s",
				 op->tenant);
			p->failed[p->n_failed++].kind = op->kind;
		}
	}
	describe_op(op, what, sizeof(what));
	acc_error(&p->acc, op->tenant, op->pool, op->instance, "%s failed: %s", what, msg);
	plan_op_key(op, key, sizeof(key));
	backoff_fail(r, key);
}

static void op_succeeded(struct agentd_reconciler *r, size_t i)
{
	struct pass *p = &r->pass;
	const struct plan_op *op = &p->plan.ops[i];
	char key[PLAN_KEY_MAX + 1];

	p->results[i] = OP_OK;
	plan_counts_add(&p->acc.done, op);
	plan_op_key(op, key, sizeof(key));
	backoff_clear(r, key);
	if (op->kind == PLAN_ENSURE_POOL)
		pool_set(r, op->tenant, op->pool, op->spec.spec_hash);
	else if (op->kind == PLAN_REMOVE_POOL)
		pools_remove(r, op->tenant, op->pool);
	else if (op->kind == PLAN_REMOVE_TENANT)
		pools_remove(r, op->tenant, NULL);
}

/* Send the next op that is not skipped; finish when none is left. */
static void advance(struct agentd_reconciler *r)
{
	struct pass *p = &r->pass;

	while (p->next_op < p->plan.n_ops) {
		size_t i = p->next_op++;
		char why[PLAN_NOTE_MAX], what[PLAN_KEY_MAX + 32], line[PLAN_NOTE_MAX + PLAN_KEY_MAX + 64];
		struct vmlet_err err;

		if (must_skip(r, i, why, sizeof(why))) {
			p->results[i] = OP_SKIPPED;
			describe_op(&p->plan.ops[i], what, sizeof(what));
			snprintf(line, sizeof(line), "%s skipped: %s", what, why);
			acc_deferred(&p->acc, line);
			continue;
		}
		vmlet_err_clear(&err);
		if (submit_op(r, &p->plan.ops[i], &err) == 0)
			return; /* on_host_reply continues */
		op_failed(r, i, err.msg);
	}
	pass_finish(r);
}

/* ---- planning ------------------------------------------------------------------ */

static int copy_message(const ProtobufCMessage *m, ProtobufCMessage **out, struct vmlet_err *err)
{
	uint8_t *buf = NULL;
	size_t len = 0;

	if (vmlet_pack(m, &buf, &len, err) < 0)
		return -1;
	*out = protobuf_c_message_unpack(m->descriptor, NULL, len, buf);
	free(buf);
	if (!*out)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "copying hostd's %s failed",
				     m->descriptor->short_name);
	return 0;
}

static bool tenant_listed(const Vmlet__V1__TenantListResult *tl, const char *tenant)
{
	for (size_t i = 0; i < tl->n_tenants; i++)
		if (strcmp(tl->tenants[i]->tenant_id, tenant) == 0)
			return true;
	return false;
}

static int plan_now(struct agentd_reconciler *r, struct vmlet_err *err)
{
	struct pass *p = &r->pass;
	const Vmlet__V1__TenantListResult *tl = p->tenants;
	const Vmlet__V1__InstanceListResult *il = p->instances;
	struct plan_tenant *pt = NULL;
	struct plan_pool *pp = NULL;
	struct plan_instance *pi = NULL;
	struct plan_backoff *pb = NULL;
	const uint64_t **newest = NULL;
	size_t n_pp = 0;
	int rc = -1;

	/* Pools hostd no longer has a tenant for are forgotten. */
	for (size_t i = 0; i < r->n_pools;) {
		if (!tenant_listed(tl, r->pools[i].tenant))
			r->pools[i] = r->pools[--r->n_pools];
		else
			i++;
	}
	pt = calloc(tl->n_tenants + 1, sizeof(*pt));
	pi = calloc(il->n_instances + 1, sizeof(*pi));
	pp = calloc(r->n_pools + il->n_instances + 1, sizeof(*pp));
	newest = calloc(r->n_pools + il->n_instances + 1, sizeof(*newest));
	pb = calloc(r->n_backoff + 1, sizeof(*pb));
	if (!pt || !pi || !pp || !pb || !newest) {
		vmlet_err_set(err, VMLET_E_INTERNAL, 0, "planning: out of memory");
		goto out;
	}
	for (size_t i = 0; i < tl->n_tenants; i++)
		pt[i] = (struct plan_tenant){ tl->tenants[i]->tenant_id, tl->tenants[i]->tenant_net_id,
					      tl->tenants[i]->ipv4_subnet };
	for (size_t i = 0; i < r->n_pools; i++)
		pp[n_pp++] = (struct plan_pool){ r->pools[i].tenant, r->pools[i].pool,
						 r->pools[i].spec_hash };
	for (size_t i = 0; i < il->n_instances; i++) {
		const Vmlet__V1__InstanceInfo *ii = il->instances[i];
		size_t k;

		/* InstanceInfo carries no data_disk_mib: the disk quota counts
		 * 0 for existing instances (see the report). */
		pi[i] = (struct plan_instance){ ii->tenant_id, ii->pool_id, ii->instance_id, ii->state,
						ii->spec_hash, ii->created_unix, ii->state_since_unix,
						ii->vcpus, ii->mem_mib, 0 };
		if (ii->state == VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_DESTROYED ||
		    ii->state == VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_UNSPECIFIED)
			continue;
		if (pool_find(r, ii->tenant_id, ii->pool_id))
			continue;
		/* A pool hostd has but this agentd did not ensure (restart):
		 * seen through its instances, with the newest one's hash. */
		for (k = 0; k < n_pp; k++)
			if (strcmp(pp[k].tenant, ii->tenant_id) == 0 && strcmp(pp[k].pool, ii->pool_id) == 0)
				break;
		if (k == n_pp) {
			pp[n_pp++] = (struct plan_pool){ ii->tenant_id, ii->pool_id, ii->spec_hash };
			newest[k] = &ii->created_unix;
		} else if (newest[k] && ii->created_unix >= *newest[k]) {
			pp[k].spec_hash = ii->spec_hash;
			newest[k] = &ii->created_unix;
		}
	}
	for (size_t i = 0; i < r->n_backoff; i++)
		pb[i] = (struct plan_backoff){ r->backoff[i].key, r->backoff[i].next_retry_unix };
	{
		struct plan_input in = {
			.desired = r->accepted->desired_state,
			.tenants = pt, .n_tenants = tl->n_tenants,
			.pools = pp, .n_pools = n_pp,
			.instances = pi, .n_instances = il->n_instances,
			.backoff = pb, .n_backoff = r->n_backoff,
			.now_unix = now_unix(r),
			.rand32 = r->o.rand32 ? r->o.rand32 : plan_rand32_getrandom,
			.rand_ctx = r->o.rand_ctx,
		};
		p->planned = true;
		if (plan_compute(&in, &p->plan, err) < 0)
			goto out;
	}
	p->results = calloc(p->plan.n_ops + 1, sizeof(*p->results));
	if (!p->results) {
		vmlet_err_set(err, VMLET_E_INTERNAL, 0, "planning: out of memory");
		goto out;
	}
	for (size_t i = 0; i < p->plan.n_notes; i++) {
		const struct plan_note *n = &p->plan.notes[i];
		switch (n->kind) {
		case PLAN_NOTE_QUOTA:
		case PLAN_NOTE_CONFLICT:
			acc_error(&p->acc, n->tenant, n->pool, n->instance, "%s", n->text);
			break;
		default:
			acc_deferred(&p->acc, n->text);
			break;
		}
	}
	rc = 0;
out:
	free(pt);
	free(pp);
	free(pi);
	free(pb);
	free(newest);
	return rc;
}

/* ---- replies ------------------------------------------------------------------- */

static void host_error_text(const Vmlet__Host__V1__HostResponse *resp, const struct vmlet_err *err,
			    char *buf, size_t size)
{
	if (!resp)
		snprintf(buf, size, "%s", err && err->msg[0] ? err->msg : "hostd unavailable");
	else if (resp->result_case == VMLET__HOST__V1__HOST_RESPONSE__RESULT_ERROR && resp->error)
		snprintf(buf, size, "%u %s", resp->error->code,
			 resp->error->message ? resp->error->message : "");
	else
		snprintf(buf, size, "hostd answered with an unexpected result (case %d)",
			 (int)resp->result_case);
}

void agentd_reconciler_on_host_reply(struct agentd_reconciler *r, uint64_t cookie,
				     const Vmlet__Host__V1__HostResponse *resp,
				     const struct vmlet_err *err)
{
	struct pass *p = &r->pass;
	struct vmlet_err e;
	char msg[VMLET_ERR_MSG_MAX];

	if (p->step == STEP_IDLE || (uint32_t)(cookie >> 32) != p->op_seq) {
		vlog(VLOG_DEBUG, "reconcile_reply_dropped", "seq=%u", (unsigned)(cookie >> 32));
		return;
	}
	vmlet_err_clear(&e);
	switch (p->step) {
	case STEP_LIST_TENANTS:
		if (!resp || resp->result_case != VMLET__HOST__V1__HOST_RESPONSE__RESULT_TENANTS ||
		    !resp->tenants) {
			host_error_text(resp, err, msg, sizeof(msg));
			vmlet_err_set(&e, resp ? VMLET_E_INTERNAL : VMLET_E_UNAVAILABLE, 0,
				      "list_tenants: %s", msg);
			pass_abort(r, &e);
			return;
		}
		if (copy_message(&resp->tenants->base, (ProtobufCMessage **)&p->tenants, &e) < 0) {
			pass_abort(r, &e);
			return;
		}
		{
			Vmlet__Host__V1__HostRequest req = VMLET__HOST__V1__HOST_REQUEST__INIT;
			Vmlet__Host__V1__ListInstancesRequest li =
				VMLET__HOST__V1__LIST_INSTANCES_REQUEST__INIT;
			req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_LIST_INSTANCES;
			req.list_instances = &li;
			p->step = STEP_LIST_INSTANCES;
			if (submit(r, &req, &e) < 0)
				pass_abort(r, &e);
		}
		return;
	case STEP_LIST_INSTANCES:
		if (!resp || resp->result_case != VMLET__HOST__V1__HOST_RESPONSE__RESULT_INSTANCES ||
		    !resp->instances) {
			host_error_text(resp, err, msg, sizeof(msg));
			vmlet_err_set(&e, resp ? VMLET_E_INTERNAL : VMLET_E_UNAVAILABLE, 0,
				      "list_instances: %s", msg);
			pass_abort(r, &e);
			return;
		}
		if (copy_message(&resp->instances->base, (ProtobufCMessage **)&p->instances, &e) < 0 ||
		    plan_now(r, &e) < 0) {
			pass_abort(r, &e);
			return;
		}
		p->step = STEP_OPS;
		advance(r);
		return;
	case STEP_OPS: {
		size_t i = p->next_op - 1;
		if (resp && reply_fits(&p->plan.ops[i], resp)) {
			op_succeeded(r, i);
		} else {
			host_error_text(resp, err, msg, sizeof(msg));
			op_failed(r, i, msg);
		}
		advance(r);
		return;
	}
	case STEP_IDLE:
		return;
	}
}

/* ---- entry points ------------------------------------------------------------- */

static int start_pass(struct agentd_reconciler *r, uint64_t waiter, struct vmlet_err *err)
{
	Vmlet__Host__V1__HostRequest req = VMLET__HOST__V1__HOST_REQUEST__INIT;
	Vmlet__Host__V1__ListTenantsRequest lt = VMLET__HOST__V1__LIST_TENANTS_REQUEST__INIT;

	pass_reset(r);
	r->pass.waiter = waiter;
	r->pass.start_ns = now_ns();
	r->pass.step = STEP_LIST_TENANTS;
	req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_LIST_TENANTS;
	req.list_tenants = &lt;
	if (submit(r, &req, err) < 0) {
		pass_reset(r);
		return -1;
	}
	return 0;
}

bool agentd_reconciler_busy(const struct agentd_reconciler *r)
{
	return r->pass.step != STEP_IDLE;
}

bool agentd_reconciler_sequence(const struct agentd_reconciler *r, uint64_t *seq)
{
	if (!r->accepted)
		return false;
	*seq = r->accepted->desired_state->sequence;
	return true;
}

int agentd_reconciler_accept(struct agentd_reconciler *r, const Vmlet__V1__ReconcileRequest *req,
			     uint64_t cookie, struct vmlet_err *err)
{
	ProtobufCMessage *copy = NULL;
	uint64_t have;

	if (agentd_reconciler_busy(r))
		return vmlet_err_set(err, VMLET_E_CONFLICT, 0,
				     "a reconcile pass is running; retry when it has finished");
	if (!req->desired_state)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "reconcile.desired_state: required");
	if (vmlet_validate_desired_state(req->desired_state, r->o.node_id, err) < 0)
		return -1;
	if (agentd_signature_check(req->desired_state, req->signature, r->o.keys_dir,
				   r->o.production, err) < 0)
		return -1;
	if (agentd_reconciler_sequence(r, &have) && req->desired_state->sequence <= have)
		return vmlet_err_set(err, VMLET_E_CONFLICT, 0,
				     "desired_state.sequence %" PRIu64
				     " is not newer than the accepted %" PRIu64,
				     req->desired_state->sequence, have);
	if (copy_message(&req->base, &copy, err) < 0)
		return -1;
	/* Durable before anything changes on the host. */
	if (agentd_desired_store_save(r->o.state_dir, req, err) < 0) {
		protobuf_c_message_free_unpacked(copy, NULL);
		return -1;
	}
	if (r->accepted)
		protobuf_c_message_free_unpacked(&r->accepted->base, NULL);
	r->accepted = (Vmlet__V1__ReconcileRequest *)copy;
	vlog(VLOG_INFO, "desired_state_accepted", "sequence=%" PRIu64 " tenants=%zu signed=%s",
	     r->accepted->desired_state->sequence, r->accepted->desired_state->n_tenants,
	     r->accepted->signature ? "yes" : "no");
	if (start_pass(r, cookie, err) < 0)
		return vmlet_err_prefix(err,
					"desired state sequence %" PRIu64
					" is accepted and persisted, but the pass could not start: ",
					r->accepted->desired_state->sequence);
	return 0;
}

int agentd_reconciler_run(struct agentd_reconciler *r, struct vmlet_err *err)
{
	if (!r->accepted || agentd_reconciler_busy(r))
		return 0;
	if (start_pass(r, AGENTD_RECONCILE_NO_WAITER, err) < 0)
		return -1;
	return 1;
}

int agentd_reconciler_new(const struct agentd_reconciler_opts *opts,
			  struct agentd_reconciler **out, struct vmlet_err *err)
{
	struct agentd_reconciler *r;
	struct agentd_desired_check chk = { opts->node_id, opts->keys_dir, opts->production,
					    opts->max_len };
	struct vmlet_err le;
	char ebuf[VLOG_STR_MAX];
	int lr;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "reconciler: out of memory");
	r->o = *opts;
	r->pass.step = STEP_IDLE;
	vmlet_err_clear(&le);
	lr = agentd_desired_store_load(opts->state_dir, &chk, &r->accepted, &le);
	if (lr < 0)
		vlog(VLOG_ERROR, "desired_state_ignored", "error=%s",
		     vlog_str(le.msg, ebuf, sizeof(ebuf)));
	else if (lr == 0)
		vlog(VLOG_INFO, "desired_state_loaded", "sequence=%" PRIu64 " tenants=%zu",
		     r->accepted->desired_state->sequence, r->accepted->desired_state->n_tenants);
	else
		vlog(VLOG_INFO, "desired_state_none", "dir=%s", opts->state_dir);
	*out = r;
	return 0;
}

void agentd_reconciler_free(struct agentd_reconciler *r)
{
	if (!r)
		return;
	pass_reset(r);
	if (r->accepted)
		protobuf_c_message_free_unpacked(&r->accepted->base, NULL);
	free(r->backoff);
	free(r->pools);
	free(r);
}
