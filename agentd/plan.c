/* The reconcile planner (see plan.h for the rules it implements).
 *
 * Shape of a pass: index what the node has (tenants and pools in hash
 * tables, each pool's live instances in one array sorted oldest first, so
 * nothing is ever searched across all instances), then prune unknown
 * tenants, then walk the desired tenants in order. Per tenant: decide every
 * pool (pure bookkeeping: which instance goes where), then emit in two
 * phases, first what frees capacity, then what uses it, checking quotas
 * against a running tally of the tenant's usage. */
#include "agentd/plan.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "shared/validate.h"

#define S(x) VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_##x

/* ---- small helpers ------------------------------------------------------------ */

static const char *str(const char *s)
{
	return s ? s : "";
}

static void copy_str(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(str(src), size - 1);

	memcpy(dst, str(src), n);
	dst[n] = '\0';
}

static uint64_t fnv1a(uint64_t h, const char *s)
{
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ull;
	}
	return h;
}

static uint64_t hash2(const char *a, const char *b)
{
	uint64_t h = fnv1a(0xcbf29ce484222325ull, str(a));

	h ^= 0xff; /* separator: ("ab","c") != ("a","bc") */
	h *= 0x100000001b3ull;
	return b ? fnv1a(h, b) : h;
}

static size_t pow2_at_least(size_t n)
{
	size_t p = 16;

	while (p < n)
		p <<= 1;
	return p;
}

/* ---- the index of what the node has ------------------------------------------------ */

struct tent {
	const char *id;
	const struct plan_tenant *rec; /* NULL: only pools/instances name it */
	long first_pool, last_pool;    /* pents of this tenant, linked by next */
	bool desired;
};

struct pent {
	const char *tenant, *pool;
	const struct plan_pool *rec; /* NULL: only instances name it */
	long tent, next;
	size_t begin, count; /* its live instances: ctx->live[begin .. begin+count) */
	bool desired;
};

/* Instance states as the planner groups them. */
enum st { ST_RUN, ST_WARM, ST_SLEEP, ST_COLD, ST_N, ST_NEW = ST_N };
/* Targets a pool fills. A target and the state it ends in share a value
 * (the chain table and the usage deltas rely on it). */
enum tg { TG_RUN, TG_WARM, TG_SLEEP, TG_N, TG_REMOVE = TG_N };
_Static_assert((int)TG_RUN == (int)ST_RUN && (int)TG_WARM == (int)ST_WARM &&
		       (int)TG_SLEEP == (int)ST_SLEEP,
	       "targets and states must line up");

static const char *const st_name[] = { "running", "warm", "sleeping", "stopped" };
static const char *const tg_name[] = { "running", "warm", "sleeping" };

/* A decided change to one existing instance. */
struct move {
	const struct plan_instance *inst;
	uint8_t from; /* enum st */
	uint8_t to;   /* enum tg, or TG_REMOVE */
};

/* The decisions for one desired pool, emitted in two phases. */
struct pool_work {
	const Vmlet__V1__DesiredPool *dp;
	struct pent *pe; /* NULL: the node has nothing of it */
	char hash[AGENTD_SPEC_HASH_LEN + 1];
	uint32_t min_running, min_warm, graceful_ms;
	size_t fills_begin, fills_end;     /* ctx->moves, in fill order */
	size_t removes_begin, removes_end; /* ctx->moves, newest first */
	uint32_t new_count[TG_N];
	const struct plan_instance *replace; /* old-spec instance replaced this pass */
	uint8_t replace_from;
	int64_t live; /* live instances in the pool, as ops are planned */
	long ensure_op; /* index of this pass's ENSURE_POOL, -1 */
	bool skipped;   /* refused (max_pools) or backed off before it exists */
	unsigned quota_noted; /* bit per quota already reported for this pool */
};

/* A tenant's usage, as counted against its quotas. */
struct usage {
	int64_t running, warm, vcpus, mem_mib, disk_mib, pools;
};

struct ctx {
	const struct plan_input *in;
	struct plan *out;
	struct vmlet_err *err;
	uint64_t now;

	struct tent *tents;
	size_t n_tents;
	struct pent *pents;
	size_t n_pents;
	uint32_t *tmap, *pmap; /* open addressing: 0 empty, else index + 1 */
	size_t tmask, pmask;

	const struct plan_instance **live; /* grouped by pool, oldest first */
	size_t n_live;
	uint64_t *ids; /* used instance id values + 1; 0 = empty slot */
	size_t ids_mask;

	const struct plan_backoff **backoff; /* sorted by key */
	size_t n_backoff;

	/* Scratch reused per pool / per tenant. */
	const struct plan_instance **scratch; /* 2 x the largest pool */
	uint8_t *used;
	struct move *moves;
	size_t n_moves;
	struct pool_work *works;
	const struct pent **pool_list; /* a tenant's unknown pools */
};

static int oom(struct ctx *c)
{
	return vmlet_err_set(c->err, VMLET_E_INTERNAL, ENOMEM, "reconcile planner: out of memory");
}

static long tent_find(const struct ctx *c, const char *id)
{
	for (size_t i = hash2(id, NULL) & c->tmask;; i = (i + 1) & c->tmask) {
		uint32_t v = c->tmap[i];
		if (!v)
			return -1;
		if (strcmp(c->tents[v - 1].id, id) == 0)
			return (long)v - 1;
	}
}

static long tent_get(struct ctx *c, const char *id)
{
	size_t i = hash2(id, NULL) & c->tmask;

	for (;; i = (i + 1) & c->tmask) {
		uint32_t v = c->tmap[i];
		if (!v)
			break;
		if (strcmp(c->tents[v - 1].id, id) == 0)
			return (long)v - 1;
	}
	c->tents[c->n_tents] = (struct tent){ .id = id, .first_pool = -1, .last_pool = -1 };
	c->tmap[i] = (uint32_t)++c->n_tents;
	return (long)c->n_tents - 1;
}

static long pent_find(const struct ctx *c, const char *tenant, const char *pool)
{
	for (size_t i = hash2(tenant, pool) & c->pmask;; i = (i + 1) & c->pmask) {
		uint32_t v = c->pmap[i];
		if (!v)
			return -1;
		const struct pent *p = &c->pents[v - 1];
		if (strcmp(p->pool, pool) == 0 && strcmp(p->tenant, tenant) == 0)
			return (long)v - 1;
	}
}

static long pent_get(struct ctx *c, const char *tenant, const char *pool)
{
	size_t i = hash2(tenant, pool) & c->pmask;

	for (;; i = (i + 1) & c->pmask) {
		uint32_t v = c->pmap[i];
		if (!v)
			break;
		const struct pent *p = &c->pents[v - 1];
		if (strcmp(p->pool, pool) == 0 && strcmp(p->tenant, tenant) == 0)
			return (long)v - 1;
	}
	long t = tent_get(c, tenant);
	long idx = (long)c->n_pents;
	c->pents[idx] = (struct pent){ .tenant = tenant, .pool = pool, .tent = t, .next = -1 };
	c->pmap[i] = (uint32_t)++c->n_pents;
	if (c->tents[t].last_pool < 0)
		c->tents[t].first_pool = idx;
	else
		c->pents[c->tents[t].last_pool].next = idx;
	c->tents[t].last_pool = idx;
	return idx;
}

/* "i-" + 8 lowercase hex -> its value; false for anything else. */
static bool instance_id_value(const char *id, uint32_t *v)
{
	if (!id || !vmlet_instance_id_ok(id))
		return false;
	*v = (uint32_t)strtoul(id + 2, NULL, 16);
	return true;
}

static bool ids_insert(struct ctx *c, uint32_t v)
{
	for (size_t i = (v * 0x9e3779b97f4a7c15ull >> 17) & c->ids_mask;; i = (i + 1) & c->ids_mask) {
		if (c->ids[i] == (uint64_t)v + 1)
			return false;
		if (!c->ids[i]) {
			c->ids[i] = (uint64_t)v + 1;
			return true;
		}
	}
}

static bool is_live(Vmlet__V1__InstanceState s)
{
	return s == S(CREATED) || s == S(RUNNING) || s == S(WARM) || s == S(SLEEPING) ||
	       s == S(STOPPED);
}

static enum st st_of(Vmlet__V1__InstanceState s)
{
	switch (s) {
	case S(RUNNING):
		return ST_RUN;
	case S(WARM):
		return ST_WARM;
	case S(SLEEPING):
		return ST_SLEEP;
	default:
		return ST_COLD;
	}
}

/* Oldest first: created_unix, then id. */
static int cmp_age(const void *a, const void *b)
{
	const struct plan_instance *x = *(const struct plan_instance *const *)a;
	const struct plan_instance *y = *(const struct plan_instance *const *)b;

	if (x->created_unix != y->created_unix)
		return x->created_unix < y->created_unix ? -1 : 1;
	return strcmp(str(x->instance_id), str(y->instance_id));
}

static int cmp_backoff(const void *a, const void *b)
{
	return strcmp((*(const struct plan_backoff *const *)a)->key,
		      (*(const struct plan_backoff *const *)b)->key);
}

static int build_index(struct ctx *c)
{
	const struct plan_input *in = c->in;
	const Vmlet__V1__DesiredState *ds = in->desired;
	size_t max_tents = in->n_tenants + in->n_pools + in->n_instances + ds->n_tenants + 1;
	size_t max_pents = in->n_pools + in->n_instances + 1;
	size_t largest = 0, most_pools = 0, may_create = 0;

	c->tents = calloc(max_tents, sizeof(*c->tents));
	c->pents = calloc(max_pents, sizeof(*c->pents));
	c->tmask = pow2_at_least(2 * max_tents) - 1;
	c->pmask = pow2_at_least(2 * max_pents) - 1;
	c->tmap = calloc(c->tmask + 1, sizeof(*c->tmap));
	c->pmap = calloc(c->pmask + 1, sizeof(*c->pmap));
	/* Room for every existing id and every id this pass can create (the
	 * desired counts plus one replacement per pool), at most half full. */
	for (size_t i = 0; i < ds->n_tenants; i++)
		for (size_t j = 0; j < ds->tenants[i]->n_pools; j++) {
			const Vmlet__V1__DesiredCounts *dc = ds->tenants[i]->pools[j]->desired_counts;
			may_create += (size_t)dc->running + dc->warm + dc->sleeping + 1;
		}
	c->ids_mask = pow2_at_least(2 * (in->n_instances + may_create) + 16) - 1;
	c->ids = calloc(c->ids_mask + 1, sizeof(*c->ids));
	c->live = calloc(in->n_instances + 1, sizeof(*c->live));
	c->moves = calloc(in->n_instances + 1, sizeof(*c->moves));
	c->backoff = calloc(in->n_backoff + 1, sizeof(*c->backoff));
	if (!c->tents || !c->pents || !c->tmap || !c->pmap || !c->ids || !c->live || !c->moves ||
	    !c->backoff)
		return oom(c);

	for (size_t i = 0; i < in->n_tenants; i++) {
		long t = tent_get(c, str(in->tenants[i].id));
		if (!c->tents[t].rec)
			c->tents[t].rec = &in->tenants[i];
	}
	for (size_t i = 0; i < in->n_pools; i++) {
		long p = pent_get(c, str(in->pools[i].tenant), str(in->pools[i].pool));
		if (!c->pents[p].rec)
			c->pents[p].rec = &in->pools[i];
	}
	/* Live instances grouped by pool: count, prefix sums, place, sort. */
	for (size_t i = 0; i < in->n_instances; i++) {
		const struct plan_instance *x = &in->instances[i];
		uint32_t v;
		if (instance_id_value(x->instance_id, &v))
			ids_insert(c, v);
		if (!is_live(x->state))
			continue;
		c->pents[pent_get(c, str(x->tenant), str(x->pool))].count++;
	}
	for (size_t p = 0, at = 0; p < c->n_pents; p++) {
		c->pents[p].begin = at;
		at += c->pents[p].count;
		if (c->pents[p].count > largest)
			largest = c->pents[p].count;
		c->pents[p].count = 0;
	}
	for (size_t i = 0; i < in->n_instances; i++) {
		const struct plan_instance *x = &in->instances[i];
		if (!is_live(x->state))
			continue;
		struct pent *p = &c->pents[pent_find(c, str(x->tenant), str(x->pool))];
		c->live[p->begin + p->count++] = x;
		c->n_live++;
	}
	for (size_t p = 0; p < c->n_pents; p++)
		if (c->pents[p].count > 1)
			qsort(&c->live[c->pents[p].begin], c->pents[p].count, sizeof(*c->live),
			      cmp_age);

	for (size_t i = 0; i < ds->n_tenants; i++)
		if (ds->tenants[i]->n_pools > most_pools)
			most_pools = ds->tenants[i]->n_pools;
	c->scratch = calloc(2 * largest + 1, sizeof(*c->scratch));
	c->used = calloc(2 * largest + 1, 1);
	c->works = calloc(most_pools + 1, sizeof(*c->works));
	c->pool_list = calloc(c->n_pents + 1, sizeof(*c->pool_list));
	if (!c->scratch || !c->used || !c->works || !c->pool_list)
		return oom(c);

	for (size_t i = 0; i < in->n_backoff; i++)
		c->backoff[i] = &in->backoff[i];
	c->n_backoff = in->n_backoff;
	qsort(c->backoff, c->n_backoff, sizeof(*c->backoff), cmp_backoff);
	return 0;
}

/* ---- output ------------------------------------------------------------------------- */

static int add_note(struct ctx *c, enum plan_note_kind kind, const char *tenant, const char *pool,
		    const char *instance, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static int add_note(struct ctx *c, enum plan_note_kind kind, const char *tenant, const char *pool,
		    const char *instance, const char *fmt, ...)
{
	struct plan *p = c->out;
	struct plan_note *n;
	va_list ap;
	int off;

	if (p->n_notes == p->cap_notes) {
		size_t cap = p->cap_notes ? 2 * p->cap_notes : 16;
		struct plan_note *nn = realloc(p->notes, cap * sizeof(*nn));
		if (!nn)
			return oom(c);
		p->notes = nn;
		p->cap_notes = cap;
	}
	n = &p->notes[p->n_notes++];
	n->kind = kind;
	copy_str(n->tenant, sizeof(n->tenant), tenant);
	copy_str(n->pool, sizeof(n->pool), pool);
	copy_str(n->instance, sizeof(n->instance), instance);
	/* "tenant T[ pool P][ instance I]: what" (ids are at most 63 + 63 + 10
	 * characters, so the prefix always fits with room for the sentence). */
	off = snprintf(n->text, sizeof(n->text), "tenant %s%s%s%s%s: ", n->tenant,
		       n->pool[0] ? " pool " : "", n->pool, n->instance[0] ? " instance " : "",
		       n->instance);
	if (off < 0 || (size_t)off >= sizeof(n->text))
		off = 0;
	va_start(ap, fmt);
	vsnprintf(n->text + off, sizeof(n->text) - (size_t)off, fmt, ap);
	va_end(ap);
	return 0;
}

static long emit(struct ctx *c, enum plan_op_kind kind, const char *tenant, const char *pool,
		 const char *instance, long after)
{
	struct plan *p = c->out;
	struct plan_op *op;

	if (p->n_ops == p->cap_ops) {
		size_t cap = p->cap_ops ? 2 * p->cap_ops : 64;
		struct plan_op *n = realloc(p->ops, cap * sizeof(*n));
		if (!n)
			return oom(c);
		p->ops = n;
		p->cap_ops = cap;
	}
	op = &p->ops[p->n_ops];
	memset(op, 0, sizeof(*op));
	op->kind = kind;
	copy_str(op->tenant, sizeof(op->tenant), tenant);
	copy_str(op->pool, sizeof(op->pool), pool);
	copy_str(op->instance, sizeof(op->instance), instance);
	op->after = after;
	return (long)p->n_ops++;
}

/* Account the op once its fields are final. */
static void emitted(struct ctx *c, long idx)
{
	plan_counts_add(&c->out->counts, &c->out->ops[idx]);
}

/* ---- backoff ------------------------------------------------------------------------- */

/* The retry time of key, or 0 when it may run now. */
static uint64_t backed_off(const struct ctx *c, const char *tenant, const char *pool,
			   const char *instance)
{
	char key[PLAN_KEY_MAX + 1];
	struct plan_backoff probe = { .key = key };
	const struct plan_backoff *pp = &probe, *const *hit;

	if (!c->n_backoff)
		return 0;
	plan_key(key, sizeof(key), tenant, pool, instance);
	hit = bsearch(&pp, c->backoff, c->n_backoff, sizeof(*c->backoff), cmp_backoff);
	return hit && (*hit)->next_retry_unix > c->now ? (*hit)->next_retry_unix : 0;
}

static int note_retry(struct ctx *c, uint64_t when, const char *tenant, const char *pool,
		      const char *instance, const char *what)
{
	return add_note(c, PLAN_NOTE_RETRY, tenant, pool, instance,
			"%s skipped after a failure, retrying after %" PRIu64 " (in %" PRIu64 "s)",
			what, when, when - c->now);
}

/* ---- quotas ---------------------------------------------------------------------------- */

enum qdim { Q_RUNNING, Q_WARM, Q_VCPUS, Q_MEM, Q_DISK, Q_POOL_INSTANCES, Q_N };

struct delta {
	int64_t d[Q_N];
};

static const char *const qname[Q_N] = { "max_running", "max_warm",     "max_vcpus",
					"max_mem_mib", "max_disk_gib", "max_instances_per_pool" };

static int64_t usage_of(const struct usage *u, const struct pool_work *w, enum qdim q)
{
	switch (q) {
	case Q_RUNNING:
		return u->running;
	case Q_WARM:
		return u->warm;
	case Q_VCPUS:
		return u->vcpus;
	case Q_MEM:
		return u->mem_mib;
	case Q_DISK:
		return u->disk_mib;
	default:
		return w->live;
	}
}

static uint64_t limit_of(const Vmlet__V1__TenantQuotas *q, enum qdim d)
{
	switch (d) {
	case Q_RUNNING:
		return q->max_running;
	case Q_WARM:
		return q->max_warm;
	case Q_VCPUS:
		return q->max_vcpus;
	case Q_MEM:
		return q->max_mem_mib;
	case Q_DISK:
		return q->max_disk_gib > UINT64_MAX / 1024 ? UINT64_MAX : q->max_disk_gib * 1024;
	default:
		return q->max_instances_per_pool;
	}
}

/* What an instance in state s counts for (not its disk / existence). */
static void add_state(struct delta *d, enum st s, const struct plan_instance *x, int sign)
{
	if (s == ST_RUN)
		d->d[Q_RUNNING] += sign;
	else if (s == ST_WARM)
		d->d[Q_WARM] += sign;
	else
		return;
	d->d[Q_VCPUS] += sign * (int64_t)x->vcpus;
	d->d[Q_MEM] += sign * (int64_t)x->mem_mib;
}

static void add_exists(struct delta *d, const struct plan_instance *x, int sign)
{
	d->d[Q_DISK] += sign * (int64_t)x->data_disk_mib;
	d->d[Q_POOL_INSTANCES] += sign;
}

static void apply(struct usage *u, struct pool_work *w, const struct delta *d)
{
	u->running += d->d[Q_RUNNING];
	u->warm += d->d[Q_WARM];
	u->vcpus += d->d[Q_VCPUS];
	u->mem_mib += d->d[Q_MEM];
	u->disk_mib += d->d[Q_DISK];
	if (w)
		w->live += d->d[Q_POOL_INSTANCES];
}

static bool grows(const struct delta *d)
{
	for (int q = 0; q < Q_N; q++)
		if (d->d[q] > 0)
			return true;
	return false;
}

/* -1 when d fits; else the first quota it would push past its limit.
 * Counters that do not grow are not checked: a tenant already over a
 * quota (e.g. lowered by the coordinator) can still shrink and shuffle. */
static int over_quota(const Vmlet__V1__TenantQuotas *q, const struct usage *u,
		      const struct pool_work *w, const struct delta *d, uint64_t *limit,
		      int64_t *would)
{
	if (!q)
		return -1;
	for (int k = 0; k < Q_N; k++) {
		if (d->d[k] <= 0)
			continue;
		int64_t v = usage_of(u, w, (enum qdim)k) + d->d[k];
		uint64_t l = limit_of(q, (enum qdim)k);
		if (v > 0 && (uint64_t)v > l) {
			*limit = l;
			*would = v;
			return k;
		}
	}
	return -1;
}

static int note_quota(struct ctx *c, const char *tenant, struct pool_work *w, int k,
		      uint64_t limit, int64_t would, const char *by)
{
	if (w->quota_noted & (1u << k))
		return 0;
	w->quota_noted |= 1u << k;
	if (k == Q_DISK)
		return add_note(c, PLAN_NOTE_QUOTA, tenant, w->dp->pool_id, NULL,
				"max_disk_gib %" PRIu64 " (%" PRIu64 " MiB) would be exceeded (%" PRId64
				" MiB) by %s",
				limit / 1024, limit, would, by);
	return add_note(c, PLAN_NOTE_QUOTA, tenant, w->dp->pool_id, NULL,
			"%s %" PRIu64 " would be exceeded (%" PRId64 ") by %s", qname[k], limit,
			would, by);
}

/* ---- chains: the ops that take an instance from one state to another --------------- */

struct chain {
	uint8_t n;
	enum plan_op_kind op[3];
};

/* [from][to]: existing instances (ST_*) and new ones (ST_NEW). */
static const struct chain chains[ST_N + 1][TG_N] = {
	[ST_RUN] = { [TG_WARM] = { 1, { PLAN_PAUSE } }, [TG_SLEEP] = { 1, { PLAN_SLEEP } } },
	[ST_WARM] = { [TG_RUN] = { 1, { PLAN_RESUME } }, [TG_SLEEP] = { 1, { PLAN_SLEEP } } },
	[ST_SLEEP] = { [TG_RUN] = { 1, { PLAN_WAKE } }, [TG_WARM] = { 2, { PLAN_WAKE, PLAN_PAUSE } } },
	[ST_COLD] = { [TG_RUN] = { 1, { PLAN_START } },
		      [TG_WARM] = { 2, { PLAN_START, PLAN_PAUSE } },
		      [TG_SLEEP] = { 2, { PLAN_START, PLAN_SLEEP } } },
	[ST_NEW] = { [TG_RUN] = { 2, { PLAN_CREATE_INSTANCE, PLAN_START } },
		     [TG_WARM] = { 3, { PLAN_CREATE_INSTANCE, PLAN_START, PLAN_PAUSE } },
		     [TG_SLEEP] = { 3, { PLAN_CREATE_INSTANCE, PLAN_START, PLAN_SLEEP } } },
};

/* Emit a chain on an instance; returns the index of its last op (or -1
 * when it could not be emitted, with c->err set on a real error -2). */
static long emit_chain(struct ctx *c, const struct chain *ch, const char *tenant, const char *pool,
		       const char *instance, long after, bool grow, bool is_new,
		       const struct plan_spec *spec, uint32_t graceful_ms)
{
	long idx = after;

	for (int k = 0; k < ch->n; k++) {
		idx = emit(c, ch->op[k], tenant, pool, instance, idx);
		if (idx < 0)
			return -2;
		struct plan_op *op = &c->out->ops[idx];
		op->grows = grow;
		op->new_instance = is_new;
		if (op->kind == PLAN_CREATE_INSTANCE && spec)
			op->spec = *spec;
		if (op->kind == PLAN_STOP)
			op->graceful_ms = graceful_ms;
		emitted(c, idx);
	}
	return idx;
}

static const struct chain remove_running = { 2, { PLAN_STOP, PLAN_DESTROY } };
static const struct chain remove_cold = { 1, { PLAN_DESTROY } };

static const struct chain *removal(enum st s)
{
	return s == ST_RUN || s == ST_WARM ? &remove_running : &remove_cold;
}

/* ---- runtime policy -------------------------------------------------------------------- */

static uint64_t in_state_for(const struct ctx *c, const struct plan_instance *x)
{
	return c->now > x->state_since_unix ? c->now - x->state_since_unix : 0;
}

/* Minimum time in state s before leaving it for `to` (0: no minimum). */
static uint32_t min_seconds(const struct pool_work *w, enum st s, int to)
{
	if (s == ST_RUN)
		return w->min_running;
	if (s == ST_WARM && to != TG_RUN)
		return w->min_warm;
	return 0;
}

static bool may_leave(const struct ctx *c, const struct pool_work *w, const struct plan_instance *x,
		      enum st s, int to)
{
	return in_state_for(c, x) >= min_seconds(w, s, to);
}

static int note_deferred(struct ctx *c, const struct pool_work *w, const struct plan_instance *x,
			 enum st s, int to, const char *what)
{
	uint64_t had = in_state_for(c, x);
	uint32_t min = min_seconds(w, s, to);

	c->out->counts.instances_deferred++;
	return add_note(c, PLAN_NOTE_DEFERRED, x->tenant, x->pool, x->instance_id,
			"%s for %" PRIu64 "s, %s is %" PRIu32 ": %s deferred (%" PRIu64 "s left)",
			st_name[s], had, s == ST_RUN ? "min_running_seconds" : "min_warm_seconds",
			min, what, (uint64_t)min - had);
}

static const char *move_verb(enum st from, int to)
{
	if (to == TG_REMOVE)
		return "stop";
	if (to == TG_SLEEP)
		return "sleep";
	return from == ST_RUN ? "pause" : "move";
}

/* ---- deciding one pool ----------------------------------------------------------------- */

/* A group of the pool's current instances in one state that were not kept
 * as they are: candidates to move, oldest first. Two cursors, both only
 * moving forward, make every pick O(1) amortized. */
struct source {
	const struct plan_instance **v;
	uint8_t *used;
	size_t n, any, elig;
};

static const struct plan_instance *pick_any(struct source *s)
{
	while (s->any < s->n && s->used[s->any])
		s->any++;
	if (s->any == s->n)
		return NULL;
	s->used[s->any] = 1;
	return s->v[s->any];
}

static const struct plan_instance *pick_eligible(struct ctx *c, const struct pool_work *w,
						 struct source *s, enum st from, int to)
{
	while (s->elig < s->n && (s->used[s->elig] || !may_leave(c, w, s->v[s->elig], from, to)))
		s->elig++;
	if (s->elig == s->n)
		return NULL;
	s->used[s->elig] = 1;
	return s->v[s->elig];
}

/* Sources of each target, in preference order (plan.h, step 2a). */
static const enum st prefs[TG_N][3] = {
	[TG_RUN] = { ST_WARM, ST_SLEEP, ST_COLD },
	[TG_WARM] = { ST_RUN, ST_SLEEP, ST_COLD },
	[TG_SLEEP] = { ST_WARM, ST_RUN, ST_COLD },
};

static void add_move(struct ctx *c, const struct plan_instance *x, enum st from, int to)
{
	c->moves[c->n_moves++] = (struct move){ .inst = x, .from = (uint8_t)from, .to = (uint8_t)to };
}

/* Newest first: created_unix desc, then id desc. */
static int cmp_move_newest(const void *a, const void *b)
{
	const struct move *x = a, *y = b;

	return -cmp_age(&x->inst, &y->inst);
}

static int decide_pool(struct ctx *c, struct pool_work *w)
{
	const Vmlet__V1__DesiredCounts *dc = w->dp->desired_counts;
	const uint32_t want[TG_N] = { dc->running, dc->warm, dc->sleeping };
	const struct plan_instance **cur[ST_N], **old[ST_N];
	size_t ncur[ST_N] = { 0 }, nold[ST_N] = { 0 }, oldnext[ST_N] = { 0 };
	size_t n = w->pe ? w->pe->count : 0;
	const struct plan_instance *const *all = w->pe ? &c->live[w->pe->begin] : NULL;
	struct source src[ST_N];

	/* Partition into current / old per state (counts first, then place,
	 * keeping the oldest-first order). */
	for (size_t i = 0; i < n; i++) {
		bool is_cur = strcmp(str(all[i]->spec_hash), w->hash) == 0;
		(is_cur ? ncur : nold)[st_of(all[i]->state)]++;
	}
	{
		const struct plan_instance **at = c->scratch;
		for (int s = 0; s < ST_N; s++) {
			cur[s] = at;
			at += ncur[s];
			old[s] = at;
			at += nold[s];
			ncur[s] = nold[s] = 0;
		}
	}
	for (size_t i = 0; i < n; i++) {
		enum st s = st_of(all[i]->state);
		if (strcmp(str(all[i]->spec_hash), w->hash) == 0)
			cur[s][ncur[s]++] = all[i];
		else
			old[s][nold[s]++] = all[i];
	}
	memset(c->used, 0, n);

	/* 1. keep; what is left of the current ones becomes a source. */
	uint32_t deficit[TG_N];
	for (int s = 0; s < ST_N; s++) {
		size_t keep = s < TG_N ? (ncur[s] < want[s] ? ncur[s] : want[s]) : 0;
		if (s < TG_N)
			deficit[s] = want[s] - (uint32_t)keep;
		src[s] = (struct source){ .v = cur[s] + keep,
					  .used = c->used + (size_t)(cur[s] + keep - c->scratch),
					  .n = ncur[s] - keep };
	}

	/* 2. fill running, then warm, then sleeping. */
	w->fills_begin = c->n_moves;
	const struct plan_instance **kept_old = c->scratch + n; /* second half */
	size_t n_kept_old = 0;
	for (int t = 0; t < TG_N; t++) {
		for (uint32_t k = 0; k < deficit[t]; k++) {
			const struct plan_instance *x = NULL;
			/* a. a current instance that may move now */
			for (int j = 0; j < 3 && !x; j++) {
				enum st from = prefs[t][j];
				x = min_seconds(w, from, t) ? pick_eligible(c, w, &src[from], from, t)
							    : pick_any(&src[from]);
				if (x)
					add_move(c, x, from, t);
			}
			if (x)
				continue;
			/* b. an old instance already in this state */
			if (oldnext[t] < nold[t]) {
				kept_old[n_kept_old++] = old[t][oldnext[t]++];
				continue;
			}
			/* c. one that may not move yet: hold the slot for it */
			for (int j = 0; j < 3 && !x; j++) {
				enum st from = prefs[t][j];
				if (!min_seconds(w, from, t))
					continue;
				x = pick_any(&src[from]);
				if (x && note_deferred(c, w, x, from, t, move_verb(from, t)) < 0)
					return -1;
			}
			if (x)
				continue;
			/* d. a new one */
			w->new_count[t]++;
		}
	}
	w->fills_end = c->n_moves;

	/* 3. the excess, newest first. */
	w->removes_begin = c->n_moves;
	for (int s = 0; s < ST_N; s++) {
		const struct plan_instance *x;
		while ((x = pick_any(&src[s])))
			add_move(c, x, (enum st)s, TG_REMOVE);
		for (size_t i = oldnext[s]; i < nold[s]; i++)
			add_move(c, old[s][i], (enum st)s, TG_REMOVE);
	}
	qsort(&c->moves[w->removes_begin], c->n_moves - w->removes_begin, sizeof(*c->moves),
	      cmp_move_newest);
	/* Removals the policy holds back are deferred, not emitted. */
	size_t keep_at = w->removes_begin;
	for (size_t i = w->removes_begin; i < c->n_moves; i++) {
		struct move *m = &c->moves[i];
		if (!may_leave(c, w, m->inst, (enum st)m->from, TG_REMOVE)) {
			if (note_deferred(c, w, m->inst, (enum st)m->from, TG_REMOVE, "stop") < 0)
				return -1;
			continue;
		}
		c->moves[keep_at++] = *m;
	}
	c->n_moves = keep_at;
	w->removes_end = c->n_moves;

	/* Spec change: replace the oldest old instance the policy lets go. */
	if (n_kept_old) {
		qsort(kept_old, n_kept_old, sizeof(*kept_old), cmp_age);
		for (size_t i = 0; i < n_kept_old && !w->replace; i++) {
			enum st s = st_of(kept_old[i]->state);
			if (may_leave(c, w, kept_old[i], s, TG_REMOVE)) {
				w->replace = kept_old[i];
				w->replace_from = (uint8_t)s;
			}
		}
		if (!w->replace &&
		    note_deferred(c, w, kept_old[0], st_of(kept_old[0]->state), TG_REMOVE,
				  "replacement with the new spec") < 0)
			return -1;
	}
	return 0;
}

/* ---- emitting one pool ----------------------------------------------------------------- */

struct tenant_run {
	const Vmlet__V1__DesiredTenant *dt;
	struct usage u;
	long ensure_op;
};

/* Phase A: ENSURE_POOL, removals, sleeps of running/warm instances. */
static int emit_pool_frees(struct ctx *c, struct tenant_run *tr, struct pool_work *w)
{
	const char *tenant = tr->dt->tenant_id, *pool = w->dp->pool_id;
	bool missing = !w->pe || !w->pe->rec;
	bool changed = !missing && strcmp(str(w->pe->rec->spec_hash), w->hash) != 0;

	if (missing || changed) {
		uint64_t when = backed_off(c, tenant, pool, NULL);
		if (when) {
			if (note_retry(c, when, tenant, pool, NULL, "ensure_pool") < 0)
				return -1;
			if (missing) {
				w->skipped = true;
				return 0;
			}
		} else if (missing && tr->dt->quotas &&
			   (uint64_t)tr->u.pools + 1 > tr->dt->quotas->max_pools) {
			w->skipped = true;
			return add_note(c, PLAN_NOTE_QUOTA, tenant, pool, NULL,
					"max_pools %" PRIu32 " would be exceeded (%" PRId64
					") by creating the pool",
					tr->dt->quotas->max_pools, tr->u.pools + 1);
		} else {
			long idx = emit(c, PLAN_ENSURE_POOL, tenant, pool, NULL, tr->ensure_op);
			if (idx < 0)
				return -1;
			c->out->ops[idx].update = changed;
			c->out->ops[idx].grows = missing;
			copy_str(c->out->ops[idx].spec.spec_hash, sizeof(c->out->ops[idx].spec.spec_hash),
				 w->hash);
			emitted(c, idx);
			w->ensure_op = idx;
			if (missing)
				tr->u.pools++;
		}
	}
	for (size_t i = w->removes_begin; i < w->removes_end; i++) {
		const struct move *m = &c->moves[i];
		const struct plan_instance *x = m->inst;
		uint64_t when = backed_off(c, tenant, pool, x->instance_id);
		if (when) {
			if (note_retry(c, when, tenant, pool, x->instance_id, "removal") < 0)
				return -1;
			continue;
		}
		struct delta d = { 0 };
		add_state(&d, (enum st)m->from, x, -1);
		add_exists(&d, x, -1);
		if (emit_chain(c, removal((enum st)m->from), tenant, pool, x->instance_id, -1, false,
			       false, NULL, w->graceful_ms) < -1)
			return -1;
		apply(&tr->u, w, &d);
	}
	for (size_t i = w->fills_begin; i < w->fills_end; i++) {
		const struct move *m = &c->moves[i];
		if (m->to != TG_SLEEP || (m->from != ST_RUN && m->from != ST_WARM))
			continue;
		uint64_t when = backed_off(c, tenant, pool, m->inst->instance_id);
		if (when) {
			if (note_retry(c, when, tenant, pool, m->inst->instance_id, "sleep") < 0)
				return -1;
			continue;
		}
		struct delta d = { 0 };
		add_state(&d, (enum st)m->from, m->inst, -1);
		if (emit_chain(c, &chains[m->from][m->to], tenant, pool, m->inst->instance_id, -1,
			       false, false, NULL, 0) < -1)
			return -1;
		apply(&tr->u, w, &d);
	}
	return 0;
}

static int new_instance_id(struct ctx *c, char out[PLAN_INSTANCE_ID_LEN + 1])
{
	if (!c->in->rand32)
		return vmlet_err_set(c->err, VMLET_E_INTERNAL, 0,
				     "reconcile planner: no instance id source");
	/* With at most a few thousand ids in 2^32, a collision is rare; 1000
	 * in a row means the source is broken, not unlucky. */
	for (int attempt = 0; attempt < 1000; attempt++) {
		uint32_t v = c->in->rand32(c->in->rand_ctx);
		if (ids_insert(c, v)) {
			snprintf(out, PLAN_INSTANCE_ID_LEN + 1, "i-%08" PRIx32, v);
			return 0;
		}
	}
	return vmlet_err_set(c->err, VMLET_E_INTERNAL, 0,
			     "reconcile planner: no unique instance id after 1000 tries");
}

static void pool_spec(const struct pool_work *w, struct plan_spec *spec)
{
	const Vmlet__V1__InstanceResources *r = w->dp->instance_resources;

	memset(spec, 0, sizeof(*spec));
	copy_str(spec->image, sizeof(spec->image), w->dp->image);
	spec->vcpus = r->vcpus;
	spec->mem_mib = r->mem_mib;
	spec->data_disk_mib = r->data_disk_mib;
	copy_str(spec->spec_hash, sizeof(spec->spec_hash), w->hash);
}

/* The usage delta of a new instance ending in target t. */
static struct delta new_delta(const struct pool_work *w, int t)
{
	struct plan_instance proto = { .vcpus = w->dp->instance_resources->vcpus,
				       .mem_mib = w->dp->instance_resources->mem_mib,
				       .data_disk_mib = w->dp->instance_resources->data_disk_mib };
	struct delta d = { 0 };

	add_state(&d, (enum st)t, &proto, +1);
	add_exists(&d, &proto, +1);
	return d;
}

/* CREATE + START [+ PAUSE | SLEEP]; returns its last op, -1 on error. */
static long emit_new(struct ctx *c, struct tenant_run *tr, struct pool_work *w, int t, long after)
{
	char id[PLAN_INSTANCE_ID_LEN + 1];
	struct plan_spec spec;

	if (new_instance_id(c, id) < 0)
		return -1;
	pool_spec(w, &spec);
	return emit_chain(c, &chains[ST_NEW][t], tr->dt->tenant_id, w->dp->pool_id, id, after, true,
			  true, &spec, 0) < 0
		       ? -1
		       : (long)c->out->n_ops - 1;
}

static int emit_replacement(struct ctx *c, struct tenant_run *tr, struct pool_work *w)
{
	const char *tenant = tr->dt->tenant_id, *pool = w->dp->pool_id;
	const struct plan_instance *x = w->replace;
	enum st from = (enum st)w->replace_from;
	int t = (int)from; /* old instances are kept in running/warm/sleeping only */
	struct delta add = new_delta(w, t), del = { 0 }, both;
	uint64_t limit, when;
	int64_t would;
	char by[96];

	if ((when = backed_off(c, tenant, pool, x->instance_id)))
		return note_retry(c, when, tenant, pool, x->instance_id, "replacement");
	if ((when = backed_off(c, tenant, pool, NULL)))
		return note_retry(c, when, tenant, pool, NULL, "replacement of " "an old instance");
	add_state(&del, from, x, -1);
	add_exists(&del, x, -1);
	if (over_quota(tr->dt->quotas, &tr->u, w, &add, &limit, &would) < 0) {
		/* Surge: the new one first; the old one goes once it is up. */
		long last = emit_new(c, tr, w, t, w->ensure_op);
		if (last < 0)
			return -1;
		apply(&tr->u, w, &add);
		if (emit_chain(c, removal(from), tenant, pool, x->instance_id, last, false, false,
			       NULL, w->graceful_ms) < -1)
			return -1;
		apply(&tr->u, w, &del);
		return 0;
	}
	/* Tight quota: the old one first, then the new one, if that fits. */
	for (int k = 0; k < Q_N; k++)
		both.d[k] = add.d[k] + del.d[k];
	int q = over_quota(tr->dt->quotas, &tr->u, w, &both, &limit, &would);
	if (q >= 0) {
		snprintf(by, sizeof(by), "replacing %s with the new spec", x->instance_id);
		return note_quota(c, tenant, w, q, limit, would, by);
	}
	long last = emit_chain(c, removal(from), tenant, pool, x->instance_id, -1, false, false,
			       NULL, w->graceful_ms);
	if (last < -1)
		return -1;
	apply(&tr->u, w, &del);
	if (emit_new(c, tr, w, t, last) < 0)
		return -1;
	apply(&tr->u, w, &add);
	return 0;
}

/* Phase B: the other moves, new instances, the replacement. */
static int emit_pool_growth(struct ctx *c, struct tenant_run *tr, struct pool_work *w)
{
	const char *tenant = tr->dt->tenant_id, *pool = w->dp->pool_id;
	uint64_t limit, when;
	int64_t would;
	char by[128];

	for (size_t i = w->fills_begin; i < w->fills_end; i++) {
		const struct move *m = &c->moves[i];
		const struct plan_instance *x = m->inst;
		if (m->to == TG_SLEEP && (m->from == ST_RUN || m->from == ST_WARM))
			continue; /* phase A */
		if ((when = backed_off(c, tenant, pool, x->instance_id))) {
			snprintf(by, sizeof(by), "%s -> %s", st_name[m->from], tg_name[m->to]);
			if (note_retry(c, when, tenant, pool, x->instance_id, by) < 0)
				return -1;
			continue;
		}
		struct delta d = { 0 };
		add_state(&d, (enum st)m->from, x, -1);
		add_state(&d, (enum st)m->to, x, +1);
		int q = over_quota(tr->dt->quotas, &tr->u, w, &d, &limit, &would);
		if (q >= 0) {
			snprintf(by, sizeof(by), "moving %s from %s to %s", x->instance_id,
				 st_name[m->from], tg_name[m->to]);
			if (note_quota(c, tenant, w, q, limit, would, by) < 0)
				return -1;
			continue;
		}
		if (emit_chain(c, &chains[m->from][m->to], tenant, pool, x->instance_id, -1,
			       grows(&d), false, NULL, 0) < -1)
			return -1;
		apply(&tr->u, w, &d);
	}

	uint32_t total_new = w->new_count[TG_RUN] + w->new_count[TG_WARM] + w->new_count[TG_SLEEP];
	if (total_new && (when = backed_off(c, tenant, pool, NULL))) {
		snprintf(by, sizeof(by), "creating %" PRIu32 " new instance%s", total_new,
			 total_new == 1 ? "" : "s");
		if (note_retry(c, when, tenant, pool, NULL, by) < 0)
			return -1;
		total_new = 0;
	}
	for (int t = 0; total_new && t < TG_N; t++) {
		struct delta d = new_delta(w, t);
		for (uint32_t k = 0; k < w->new_count[t]; k++) {
			int q = over_quota(tr->dt->quotas, &tr->u, w, &d, &limit, &would);
			if (q >= 0) {
				snprintf(by, sizeof(by), "a new %s instance (%" PRIu32 " not created)",
					 tg_name[t], w->new_count[t] - k);
				if (note_quota(c, tenant, w, q, limit, would, by) < 0)
					return -1;
				break;
			}
			if (emit_new(c, tr, w, t, w->ensure_op) < 0)
				return -1;
			apply(&tr->u, w, &d);
		}
	}
	return w->replace ? emit_replacement(c, tr, w) : 0;
}

/* ---- pruning ------------------------------------------------------------------------------ */

static int cmp_pent_pool(const void *a, const void *b)
{
	return strcmp((*(const struct pent *const *)a)->pool, (*(const struct pent *const *)b)->pool);
}

/* Tear one pool down: instances newest first, then the pool record. */
static int prune_pool(struct ctx *c, const struct pent *p, struct usage *u)
{
	uint64_t when;

	for (size_t i = p->count; i-- > 0;) {
		const struct plan_instance *x = c->live[p->begin + i];
		if ((when = backed_off(c, p->tenant, p->pool, x->instance_id))) {
			if (note_retry(c, when, p->tenant, p->pool, x->instance_id, "removal") < 0)
				return -1;
			continue;
		}
		if (emit_chain(c, removal(st_of(x->state)), p->tenant, p->pool, x->instance_id, -1,
			       false, false, NULL, PLAN_DEFAULT_GRACEFUL_MS) < -1)
			return -1;
		if (u) {
			struct delta d = { 0 };
			add_state(&d, st_of(x->state), x, -1);
			add_exists(&d, x, -1);
			apply(u, NULL, &d);
		}
	}
	if (!p->rec) {
		if (u) /* a pool only its instances named is gone with them */
			u->pools--;
		return 0;
	}
	if ((when = backed_off(c, p->tenant, p->pool, NULL)))
		return note_retry(c, when, p->tenant, p->pool, NULL, "remove_pool");
	long idx = emit(c, PLAN_REMOVE_POOL, p->tenant, p->pool, NULL, -1);
	if (idx < 0)
		return -1;
	emitted(c, idx);
	if (u)
		u->pools--;
	return 0;
}

/* A tenant's pools not in want (NULL: all of them), sorted by id. */
static size_t unknown_pools(struct ctx *c, const struct tent *t, const struct pent **out)
{
	size_t n = 0;

	for (long i = t->first_pool; i >= 0; i = c->pents[i].next)
		if (!c->pents[i].desired)
			out[n++] = &c->pents[i];
	qsort(out, n, sizeof(*out), cmp_pent_pool);
	return n;
}

static int cmp_tent_id(const void *a, const void *b)
{
	return strcmp((*(const struct tent *const *)a)->id, (*(const struct tent *const *)b)->id);
}

static int prune_tenants(struct ctx *c)
{
	bool prune = c->in->desired->prune_unknown_tenants;
	const struct tent **unknown = NULL;
	const struct pent **pools = NULL;
	size_t n = 0;
	int rc = -1;

	unknown = calloc(c->n_tents + 1, sizeof(*unknown));
	pools = calloc(c->n_pents + 1, sizeof(*pools));
	if (!unknown || !pools) {
		oom(c);
		goto out;
	}
	for (size_t i = 0; i < c->n_tents; i++)
		if (!c->tents[i].desired)
			unknown[n++] = &c->tents[i];
	qsort(unknown, n, sizeof(*unknown), cmp_tent_id);
	for (size_t i = 0; i < n; i++) {
		const struct tent *t = unknown[i];
		size_t np = unknown_pools(c, t, pools), ni = 0;
		for (size_t k = 0; k < np; k++)
			ni += pools[k]->count;
		if (!prune) {
			if (add_note(c, PLAN_NOTE_UNKNOWN, t->id, NULL, NULL,
				     "not in the desired state, left alone (prune_unknown_tenants "
				     "is off): %zu pool%s, %zu instance%s",
				     np, np == 1 ? "" : "s", ni, ni == 1 ? "" : "s") < 0)
				goto out;
			continue;
		}
		for (size_t k = 0; k < np; k++)
			if (prune_pool(c, pools[k], NULL) < 0)
				goto out;
		if (!t->rec)
			continue;
		uint64_t when = backed_off(c, t->id, NULL, NULL);
		if (when) {
			if (note_retry(c, when, t->id, NULL, NULL, "remove_tenant") < 0)
				goto out;
			continue;
		}
		long idx = emit(c, PLAN_REMOVE_TENANT, t->id, NULL, NULL, -1);
		if (idx < 0)
			goto out;
		emitted(c, idx);
	}
	rc = 0;
out:
	free(unknown);
	free(pools);
	return rc;
}

/* ---- one desired tenant ----------------------------------------------------------------- */

static bool subnets_overlap(const char *a, const char *b)
{
	uint32_t na, nb;
	unsigned pa, pb;

	if (vmlet_parse_cidr4("", str(a), &na, &pa, NULL) < 0 ||
	    vmlet_parse_cidr4("", str(b), &nb, &pb, NULL) < 0)
		return false;
	unsigned p = pa < pb ? pa : pb;
	uint32_t m = p ? ~0u << (32 - p) : 0;
	return (na & m) == (nb & m);
}

/* A new tenant's network must not collide with a tenant that stays. */
static const struct tent *network_holder(const struct ctx *c, const Vmlet__V1__DesiredTenant *dt)
{
	bool pruning = c->in->desired->prune_unknown_tenants;

	for (size_t i = 0; i < c->n_tents; i++) {
		const struct tent *o = &c->tents[i];
		if (!o->rec || strcmp(o->id, dt->tenant_id) == 0 || (!o->desired && pruning))
			continue;
		if (o->rec->net_id == dt->network->tenant_net_id ||
		    subnets_overlap(o->rec->subnet, dt->network->ipv4_subnet))
			return o;
	}
	return NULL;
}

static int ensure_tenant(struct ctx *c, struct tenant_run *tr, const struct tent *te, bool *skip)
{
	const Vmlet__V1__DesiredTenant *dt = tr->dt;
	const Vmlet__V1__TenantNetwork *net = dt->network;

	*skip = false;
	if (te && te->rec) {
		if (te->rec->net_id == net->tenant_net_id &&
		    strcmp(str(te->rec->subnet), net->ipv4_subnet) == 0)
			return 0;
		return add_note(c, PLAN_NOTE_CONFLICT, dt->tenant_id, NULL, NULL,
				"network is net %" PRIu32 " %s on the node, desired net %" PRIu32
				" %s: a tenant's network is not changed while it exists (remove the "
				"tenant and add it again)",
				te->rec->net_id, str(te->rec->subnet), net->tenant_net_id,
				net->ipv4_subnet);
	}
	const struct tent *holder = network_holder(c, dt);
	if (holder) {
		*skip = true;
		return add_note(c, PLAN_NOTE_CONFLICT, dt->tenant_id, NULL, NULL,
				"net %" PRIu32 " %s collides with tenant %s (net %" PRIu32
				" %s) that stays on the node%s",
				net->tenant_net_id, net->ipv4_subnet, holder->id, holder->rec->net_id,
				str(holder->rec->subnet),
				holder->desired ? "" : " (prune_unknown_tenants is off)");
	}
	uint64_t when = backed_off(c, dt->tenant_id, NULL, NULL);
	if (when) {
		*skip = true;
		return note_retry(c, when, dt->tenant_id, NULL, NULL, "ensure_tenant (and the tenant)");
	}
	long idx = emit(c, PLAN_ENSURE_TENANT, dt->tenant_id, NULL, NULL, -1);
	if (idx < 0)
		return -1;
	c->out->ops[idx].net_id = net->tenant_net_id;
	copy_str(c->out->ops[idx].subnet, sizeof(c->out->ops[idx].subnet), net->ipv4_subnet);
	emitted(c, idx);
	tr->ensure_op = idx;
	return 0;
}

static void tenant_usage(const struct ctx *c, const struct tent *te, struct usage *u)
{
	memset(u, 0, sizeof(*u));
	if (!te)
		return;
	for (long i = te->first_pool; i >= 0; i = c->pents[i].next) {
		const struct pent *p = &c->pents[i];
		struct delta d = { 0 };
		u->pools++;
		for (size_t k = 0; k < p->count; k++) {
			const struct plan_instance *x = c->live[p->begin + k];
			add_state(&d, st_of(x->state), x, +1);
			add_exists(&d, x, +1);
		}
		apply(u, NULL, &d);
	}
}

static uint32_t graceful_ms(const Vmlet__V1__RuntimePolicy *rp)
{
	if (!rp)
		return PLAN_DEFAULT_GRACEFUL_MS;
	uint64_t ms = (uint64_t)rp->graceful_shutdown_seconds * 1000u;
	return ms > PLAN_GRACEFUL_MS_MAX ? PLAN_GRACEFUL_MS_MAX : (uint32_t)ms;
}

static int plan_tenant(struct ctx *c, const Vmlet__V1__DesiredTenant *dt)
{
	long ti = tent_find(c, dt->tenant_id);
	struct tent *te = ti >= 0 ? &c->tents[ti] : NULL;
	struct tenant_run tr = { .dt = dt, .ensure_op = -1 };
	bool skip;

	if (ensure_tenant(c, &tr, te, &skip) < 0)
		return -1;
	if (skip)
		return 0;
	tenant_usage(c, te, &tr.u);
	c->n_moves = 0;

	/* Which pools the node has for each desired one; the rest are unknown. */
	for (size_t i = 0; i < dt->n_pools; i++) {
		const Vmlet__V1__DesiredPool *dp = dt->pools[i];
		struct pool_work *w = &c->works[i];
		long pi = te ? pent_find(c, dt->tenant_id, dp->pool_id) : -1;
		memset(w, 0, sizeof(*w));
		w->dp = dp;
		w->pe = pi >= 0 ? &c->pents[pi] : NULL;
		w->live = w->pe ? (int64_t)w->pe->count : 0;
		w->ensure_op = -1;
		if (w->pe)
			w->pe->desired = true;
		if (agentd_spec_hash_pool(dp, w->hash, c->err) < 0)
			return -1;
		w->min_running = dp->runtime_policy ? dp->runtime_policy->min_running_seconds : 0;
		w->min_warm = dp->runtime_policy ? dp->runtime_policy->min_warm_seconds : 0;
		w->graceful_ms = graceful_ms(dp->runtime_policy);
	}
	if (te) {
		const struct pent **unknown = c->pool_list;
		size_t nu = unknown_pools(c, te, unknown);
		for (size_t k = 0; k < nu; k++) {
			int rc;
			if (c->in->desired->prune_unknown_pools)
				rc = prune_pool(c, unknown[k], &tr.u);
			else
				rc = add_note(c, PLAN_NOTE_UNKNOWN, dt->tenant_id, unknown[k]->pool, NULL,
					      "not in the desired state, left alone "
					      "(prune_unknown_pools is off): %zu instance%s",
					      unknown[k]->count, unknown[k]->count == 1 ? "" : "s");
			if (rc < 0)
				return -1;
		}
	}
	for (size_t i = 0; i < dt->n_pools; i++)
		if (decide_pool(c, &c->works[i]) < 0)
			return -1;
	for (size_t i = 0; i < dt->n_pools; i++)
		if (emit_pool_frees(c, &tr, &c->works[i]) < 0)
			return -1;
	for (size_t i = 0; i < dt->n_pools; i++)
		if (!c->works[i].skipped && emit_pool_growth(c, &tr, &c->works[i]) < 0)
			return -1;
	return 0;
}

/* ---- the pass ----------------------------------------------------------------------------- */

static int check_desired(const Vmlet__V1__DesiredState *ds, struct vmlet_err *err)
{
	for (size_t i = 0; i < ds->n_tenants; i++) {
		const Vmlet__V1__DesiredTenant *t = ds->tenants[i];
		if (!t || !t->tenant_id || !t->network || !t->network->ipv4_subnet)
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "tenants[%zu]: incomplete (desired state not validated)", i);
		for (size_t j = 0; j < t->n_pools; j++) {
			const Vmlet__V1__DesiredPool *p = t->pools[j];
			if (!p || !p->pool_id || !p->instance_resources || !p->desired_counts)
				return vmlet_err_set(err, VMLET_E_INVALID, 0,
						     "tenants[%zu].pools[%zu]: incomplete (desired "
						     "state not validated)",
						     i, j);
		}
	}
	return 0;
}

int plan_compute(const struct plan_input *in, struct plan *out, struct vmlet_err *err)
{
	struct ctx c = { .in = in, .out = out, .err = err, .now = in->now_unix };
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (!in->desired)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "reconcile planner: no desired state");
	if (check_desired(in->desired, err) < 0)
		return -1;
	if (build_index(&c) < 0)
		goto done;
	for (size_t i = 0; i < in->desired->n_tenants; i++) {
		long t = tent_find(&c, in->desired->tenants[i]->tenant_id);
		if (t >= 0)
			c.tents[t].desired = true;
	}
	if (prune_tenants(&c) < 0)
		goto done;
	for (size_t i = 0; i < in->desired->n_tenants; i++)
		if (plan_tenant(&c, in->desired->tenants[i]) < 0)
			goto done;
	rc = 0;
done:
	free(c.tents);
	free(c.pents);
	free(c.tmap);
	free(c.pmap);
	free(c.ids);
	free(c.live);
	free(c.moves);
	free(c.backoff);
	free(c.scratch);
	free(c.used);
	free(c.works);
	free(c.pool_list);
	return rc;
}

void plan_free(struct plan *p)
{
	free(p->ops);
	free(p->notes);
	memset(p, 0, sizeof(*p));
}

/* ---- small public helpers --------------------------------------------------------------- */

static const char *const op_names[] = {
	[PLAN_ENSURE_TENANT] = "ensure_tenant", [PLAN_ENSURE_POOL] = "ensure_pool",
	[PLAN_CREATE_INSTANCE] = "create_instance", [PLAN_START] = "start",
	[PLAN_STOP] = "stop", [PLAN_PAUSE] = "pause", [PLAN_RESUME] = "resume",
	[PLAN_SLEEP] = "sleep", [PLAN_WAKE] = "wake", [PLAN_DESTROY] = "destroy",
	[PLAN_REMOVE_POOL] = "remove_pool", [PLAN_REMOVE_TENANT] = "remove_tenant",
};

const char *plan_op_name(enum plan_op_kind kind)
{
	return (unsigned)kind < sizeof(op_names) / sizeof(op_names[0]) && op_names[kind]
		       ? op_names[kind]
		       : "unknown";
}

void plan_counts_add(struct plan_counts *c, const struct plan_op *op)
{
	switch (op->kind) {
	case PLAN_ENSURE_TENANT:
		c->tenants_created++;
		break;
	case PLAN_ENSURE_POOL:
		if (!op->update)
			c->pools_created++;
		break;
	case PLAN_CREATE_INSTANCE:
		c->instances_created++;
		break;
	case PLAN_START:
		c->instances_started++;
		break;
	case PLAN_STOP:
		c->instances_stopped++;
		break;
	case PLAN_PAUSE:
		c->instances_warmed++;
		break;
	case PLAN_RESUME:
	case PLAN_WAKE:
		c->instances_woken++;
		break;
	case PLAN_SLEEP:
		c->instances_slept++;
		break;
	case PLAN_DESTROY:
		c->instances_destroyed++;
		break;
	case PLAN_REMOVE_POOL:
		c->pools_pruned++;
		break;
	case PLAN_REMOVE_TENANT:
		c->tenants_pruned++;
		break;
	}
}

void plan_key(char *buf, size_t size, const char *tenant, const char *pool, const char *instance)
{
	if (instance && *instance)
		snprintf(buf, size, "%s/%s/%s", str(tenant), str(pool), instance);
	else if (pool && *pool)
		snprintf(buf, size, "%s/%s", str(tenant), pool);
	else
		snprintf(buf, size, "%s", str(tenant));
}

void plan_op_key(const struct plan_op *op, char *buf, size_t size)
{
	switch (op->kind) {
	case PLAN_ENSURE_TENANT:
	case PLAN_REMOVE_TENANT:
		plan_key(buf, size, op->tenant, NULL, NULL);
		break;
	case PLAN_ENSURE_POOL:
	case PLAN_REMOVE_POOL:
		plan_key(buf, size, op->tenant, op->pool, NULL);
		break;
	default:
		plan_key(buf, size, op->tenant, op->pool, op->new_instance ? NULL : op->instance);
		break;
	}
}

uint64_t plan_backoff_next(uint64_t now_unix, uint32_t failures)
{
	uint64_t delay = PLAN_BACKOFF_MAX_S;

	if (failures == 0)
		failures = 1;
	if (failures <= 32) {
		uint64_t d = (uint64_t)PLAN_BACKOFF_BASE_S << (failures - 1);
		if (d < delay)
			delay = d;
	}
	return now_unix > UINT64_MAX - delay ? UINT64_MAX : now_unix + delay;
}

uint32_t plan_rand32_getrandom(void *ctx)
{
	uint32_t v;

	(void)ctx;
	/* getrandom of 4 bytes from an initialized pool does not fail or
	 * return short; if it ever did, the planner's collision check and
	 * retry limit turn a stuck source into an error, not a duplicate. */
	if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
		v = 0;
	return v;
}
