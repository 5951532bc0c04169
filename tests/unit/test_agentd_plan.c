/* The reconcile planner: a table of (desired, actual) -> expected ops, and
 * a small simulator of hostd's registry that applies a plan (refusing any
 * transition hostd would refuse) and plans again until nothing is left to
 * do, to show convergence and idempotence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "agentd/plan.h"
#include "agentd/spec_hash.h"
#include "rpc/json.h"
#include "shared/validate.h"

#define S(x) VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_##x
#define CR S(CREATED)
#define RU S(RUNNING)
#define WA S(WARM)
#define SL S(SLEEPING)
#define ST S(STOPPED)

#define NOW 100000u
#define MAX_ROWS 16

/* ---- building the desired state ------------------------------------------------ */

static void set_default(json_t *obj, const char *key, json_t *value)
{
	if (!json_object_get(obj, key))
		json_object_set(obj, key, value);
	json_decref(value);
}

/* Test JSON is written with ' for "; missing parts get generous defaults:
 * tenant i's network is net i+1, 10.(i+1).0.0/24. */
static Vmlet__V1__DesiredState *desired(const char *text)
{
	char *buf = strdup(text);
	json_error_t jerr;
	struct vmlet_err err = { 0 };

	for (char *p = buf; *p; p++)
		if (*p == '\'')
			*p = '"';
	json_t *root = json_loads(buf, 0, &jerr);
	if (!root)
		fail_msg("bad test JSON: %s: %s", jerr.text, buf);
	free(buf);
	set_default(root, "schema_version", json_integer(1));
	set_default(root, "node_id", json_string("node-1"));
	json_t *tenants = json_object_get(root, "tenants");
	for (size_t i = 0; tenants && i < json_array_size(tenants); i++) {
		json_t *t = json_array_get(tenants, i);
		char subnet[32];
		snprintf(subnet, sizeof(subnet), "10.%zu.0.0/24", i + 1);
		set_default(t, "network",
			    json_pack("{s:I,s:s}", "tenant_net_id", (json_int_t)i + 1, "ipv4_subnet",
				      subnet));
		set_default(t, "quotas", json_object());
		json_t *q = json_object_get(t, "quotas");
		set_default(q, "max_vcpus", json_integer(1000));
		set_default(q, "max_mem_mib", json_integer(1000000));
		set_default(q, "max_running", json_integer(1000));
		set_default(q, "max_warm", json_integer(1000));
		set_default(q, "max_pools", json_integer(100));
		set_default(q, "max_instances_per_pool", json_integer(300));
		set_default(q, "max_disk_gib", json_integer(1000));
		json_t *pools = json_object_get(t, "pools");
		for (size_t j = 0; pools && j < json_array_size(pools); j++) {
			json_t *p = json_array_get(pools, j);
			set_default(p, "instance_resources",
				    json_pack("{s:i,s:i}", "vcpus", 1, "mem_mib", 128));
			set_default(p, "desired_counts", json_object());
		}
	}
	ProtobufCMessage *m = vmlet_json_to_message(&vmlet__v1__desired_state__descriptor, root, &err);
	json_decref(root);
	if (!m)
		fail_msg("test desired state does not decode: %s", err.msg);
	Vmlet__V1__DesiredState *ds = (Vmlet__V1__DesiredState *)m;
	if (vmlet_validate_desired_state(ds, "node-1", &err) < 0)
		fail_msg("test desired state is not valid: %s", err.msg);
	return ds;
}

static const Vmlet__V1__DesiredPool *find_pool(const Vmlet__V1__DesiredState *ds, const char *t,
					       const char *p)
{
	for (size_t i = 0; i < ds->n_tenants; i++)
		if (strcmp(ds->tenants[i]->tenant_id, t) == 0)
			for (size_t j = 0; j < ds->tenants[i]->n_pools; j++)
				if (strcmp(ds->tenants[i]->pools[j]->pool_id, p) == 0)
					return ds->tenants[i]->pools[j];
	return NULL;
}

static const Vmlet__V1__DesiredTenant *find_tenant(const Vmlet__V1__DesiredState *ds,
						   const char *t)
{
	for (size_t i = 0; i < ds->n_tenants; i++)
		if (strcmp(ds->tenants[i]->tenant_id, t) == 0)
			return ds->tenants[i];
	return NULL;
}

static void pool_hash(const Vmlet__V1__DesiredPool *p, char out[AGENTD_SPEC_HASH_LEN + 1])
{
	struct vmlet_err err = { 0 };
	assert_int_equal(agentd_spec_hash_pool(p, out, &err), 0);
}

/* ---- the simulated node ----------------------------------------------------------------- */

struct sim_tenant {
	char id[64];
	uint32_t net_id;
	char subnet[32];
};
struct sim_pool {
	char tenant[64], pool[64], hash[32];
};
struct sim_inst {
	char tenant[64], pool[64], id[16], hash[32];
	Vmlet__V1__InstanceState state;
	uint64_t created, since;
	uint32_t vcpus, mem, disk;
};

struct sim {
	struct sim_tenant t[64];
	size_t nt;
	struct sim_pool p[256];
	size_t np;
	struct sim_inst i[1024];
	size_t ni;
	/* the views handed to the planner */
	struct plan_tenant vt[64];
	struct plan_pool vp[256];
	struct plan_instance vi[1024];
};

static void sim_view(struct sim *s, struct plan_input *in)
{
	for (size_t k = 0; k < s->nt; k++)
		s->vt[k] = (struct plan_tenant){ s->t[k].id, s->t[k].net_id, s->t[k].subnet };
	for (size_t k = 0; k < s->np; k++)
		s->vp[k] = (struct plan_pool){ s->p[k].tenant, s->p[k].pool, s->p[k].hash };
	for (size_t k = 0; k < s->ni; k++) {
		const struct sim_inst *x = &s->i[k];
		s->vi[k] = (struct plan_instance){ x->tenant, x->pool,    x->id,     x->state, x->hash,
						   x->created, x->since,  x->vcpus, x->mem,   x->disk };
	}
	in->tenants = s->vt;
	in->n_tenants = s->nt;
	in->pools = s->vp;
	in->n_pools = s->np;
	in->instances = s->vi;
	in->n_instances = s->ni;
}

static struct sim_inst *sim_find(struct sim *s, const struct plan_op *op)
{
	for (size_t k = 0; k < s->ni; k++)
		if (strcmp(s->i[k].id, op->instance) == 0 && strcmp(s->i[k].tenant, op->tenant) == 0 &&
		    strcmp(s->i[k].pool, op->pool) == 0)
			return &s->i[k];
	fail_msg("%s of unknown instance %s/%s/%s", plan_op_name(op->kind), op->tenant, op->pool,
		 op->instance);
	return NULL;
}

/* hostd's transition table (rpc/host.proto InstanceAction). */
static void sim_transition(struct sim_inst *x, const struct plan_op *op, uint64_t now)
{
	static const struct {
		enum plan_op_kind kind;
		unsigned from; /* bit per state */
		Vmlet__V1__InstanceState to;
	} table[] = {
		{ PLAN_START, 1u << CR | 1u << ST, RU },
		{ PLAN_STOP, 1u << RU | 1u << WA | 1u << SL, ST },
		{ PLAN_PAUSE, 1u << RU, WA },
		{ PLAN_RESUME, 1u << WA, RU },
		{ PLAN_SLEEP, 1u << RU | 1u << WA, SL },
		{ PLAN_WAKE, 1u << SL | 1u << WA, RU },
	};
	for (size_t k = 0; k < sizeof(table) / sizeof(table[0]); k++) {
		if (table[k].kind != op->kind)
			continue;
		if (!(table[k].from & (1u << x->state)))
			fail_msg("hostd would refuse %s of %s in state %d", plan_op_name(op->kind), x->id,
				 x->state);
		x->state = table[k].to;
		x->since = now;
		return;
	}
	fail_msg("not a transition: %s", plan_op_name(op->kind));
}

static void sim_apply(struct sim *s, const struct plan *p, uint64_t now)
{
	for (size_t k = 0; k < p->n_ops; k++) {
		const struct plan_op *op = &p->ops[k];
		assert_true(op->after < (long)k);
		switch (op->kind) {
		case PLAN_ENSURE_TENANT:
			for (size_t j = 0; j < s->nt; j++)
				if (strcmp(s->t[j].id, op->tenant) == 0)
					fail_msg("ensure_tenant of existing %s", op->tenant);
			snprintf(s->t[s->nt].id, 64, "%s", op->tenant);
			s->t[s->nt].net_id = op->net_id;
			snprintf(s->t[s->nt].subnet, 32, "%s", op->subnet);
			s->nt++;
			break;
		case PLAN_ENSURE_POOL: {
			size_t j;
			for (j = 0; j < s->np; j++)
				if (!strcmp(s->p[j].tenant, op->tenant) && !strcmp(s->p[j].pool, op->pool))
					break;
			assert_int_equal(op->update, j < s->np);
			if (j == s->np) {
				snprintf(s->p[j].tenant, 64, "%s", op->tenant);
				snprintf(s->p[j].pool, 64, "%s", op->pool);
				s->np++;
			}
			snprintf(s->p[j].hash, 32, "%s", op->spec.spec_hash);
			break;
		}
		case PLAN_CREATE_INSTANCE: {
			struct sim_inst *x = &s->i[s->ni++];
			assert_true(vmlet_instance_id_ok(op->instance));
			for (size_t j = 0; j + 1 < s->ni; j++)
				assert_string_not_equal(s->i[j].id, op->instance);
			memset(x, 0, sizeof(*x));
			snprintf(x->tenant, 64, "%s", op->tenant);
			snprintf(x->pool, 64, "%s", op->pool);
			snprintf(x->id, 16, "%s", op->instance);
			snprintf(x->hash, 32, "%s", op->spec.spec_hash);
			x->state = CR;
			x->created = x->since = now;
			x->vcpus = op->spec.vcpus;
			x->mem = op->spec.mem_mib;
			x->disk = op->spec.data_disk_mib;
			break;
		}
		case PLAN_DESTROY: {
			struct sim_inst *x = sim_find(s, op);
			*x = s->i[--s->ni];
			break;
		}
		case PLAN_REMOVE_POOL:
			for (size_t j = 0; j < s->ni; j++)
				if (!strcmp(s->i[j].tenant, op->tenant) && !strcmp(s->i[j].pool, op->pool))
					fail_msg("remove_pool %s/%s with instances", op->tenant, op->pool);
			for (size_t j = 0; j < s->np; j++)
				if (!strcmp(s->p[j].tenant, op->tenant) && !strcmp(s->p[j].pool, op->pool))
					s->p[j--] = s->p[--s->np];
			break;
		case PLAN_REMOVE_TENANT:
			for (size_t j = 0; j < s->ni; j++)
				if (!strcmp(s->i[j].tenant, op->tenant))
					fail_msg("remove_tenant %s with instances", op->tenant);
			for (size_t j = 0; j < s->np; j++)
				if (!strcmp(s->p[j].tenant, op->tenant))
					s->p[j--] = s->p[--s->np];
			for (size_t j = 0; j < s->nt; j++)
				if (!strcmp(s->t[j].id, op->tenant))
					s->t[j--] = s->t[--s->nt];
			break;
		default:
			sim_transition(sim_find(s, op), op, now);
			break;
		}
	}
}

/* ---- the table ------------------------------------------------------------------------- */

struct row_tenant {
	const char *id;
	uint32_t net_id; /* 0: the desired tenant's network */
	const char *subnet;
};
struct row_pool {
	const char *tenant, *pool, *hash; /* hash "CUR": the desired pool's */
};
struct row_inst {
	const char *tenant, *pool, *id;
	Vmlet__V1__InstanceState state;
	const char *hash; /* "CUR": the desired pool's spec hash */
	uint64_t created, since;
	uint32_t vcpus, mem, disk; /* 0: the desired pool's resources (else 1/128/0) */
};

struct tcase {
	const char *name;
	const char *desired;
	struct row_tenant tenants[MAX_ROWS];
	struct row_pool pools[MAX_ROWS];
	struct row_inst inst[MAX_ROWS];
	struct plan_backoff backoff[4];
	uint64_t now; /* 0: NOW */
	const char *ops; /* one "op tenant[/pool[/instance]]" per line */
	const char *notes[6]; /* each must be a substring of some note */
	uint32_t deferred;
	bool converges; /* applying plans (time moving on) reaches desired exactly */
};

/* A compact desired state: tenant acme with the given pools. */
#define ACME(pools) "{'tenants':[{'tenant_id':'acme','pools':[" pools "]}]}"
#define ACME_Q(quotas, pools) \
	"{'tenants':[{'tenant_id':'acme','quotas':{" quotas "},'pools':[" pools "]}]}"
#define WEB(counts) "{'pool_id':'web','desired_counts':{" counts "}}"
#define WEBP(counts, policy) \
	"{'pool_id':'web','desired_counts':{" counts "},'runtime_policy':{" policy "}}"
#define T_ACME { { "acme", 0, NULL } }
#define P_WEB { { "acme", "web", "CUR" } }
#define I(id, st, hash, created, since) { "acme", "web", id, st, hash, created, since, 0, 0, 0 }

static const struct tcase cases[] = {
	{ .name = "fresh node: ensure tenant and pool, create every instance",
	  .desired = ACME(WEB("'running':2,'warm':1,'sleeping':1")),
	  .ops = "ensure_tenant acme\n"
		 "ensure_pool acme/web\n"
		 "create_instance acme/web/i-00000001\nstart acme/web/i-00000001\n"
		 "create_instance acme/web/i-00000002\nstart acme/web/i-00000002\n"
		 "create_instance acme/web/i-00000003\nstart acme/web/i-00000003\n"
		 "pause acme/web/i-00000003\n"
		 "create_instance acme/web/i-00000004\nstart acme/web/i-00000004\n"
		 "sleep acme/web/i-00000004\n",
	  .converges = true },
	{ .name = "converged: zero ops",
	  .desired = ACME(WEB("'running':2,'warm':1,'sleeping':1")),
	  .tenants = T_ACME,
	  .pools = P_WEB,
	  .inst = { I("i-000000a1", RU, "CUR", 10, 10), I("i-000000a2", RU, "CUR", 11, 11),
		    I("i-000000a3", WA, "CUR", 12, 12), I("i-000000a4", SL, "CUR", 13, 13) },
	  .ops = "",
	  .converges = true },
	{ .name = "more running: warm (resume), then sleeping (wake), then stopped (start), then new",
	  .desired = ACME(WEB("'running':5")),
	  .tenants = T_ACME,
	  .pools = P_WEB,
	  .inst = { I("i-000000a1", RU, "CUR", 10, 10), I("i-000000a2", ST, "CUR", 11, 11),
		    I("i-000000a3", SL, "CUR", 12, 12), I("i-000000a4", WA, "CUR", 13, 13) },
	  .ops = "resume acme/web/i-000000a4\n"
		 "wake acme/web/i-000000a3\n"
		 "start acme/web/i-000000a2\n"
		 "create_instance acme/web/i-00000001\nstart acme/web/i-00000001\n",
	  .converges = true },
	{ .name = "more warm: pause a running one, then wake+pause a sleeping one, then start+pause",
	  .desired = ACME(WEB("'running':1,'warm':3")),
	  .tenants = T_ACME,
	  .pools = P_WEB,
	  .inst = { I("i-000000a1", RU, "CUR", 10, 10), I("i-000000a2", RU, "CUR", 11, 11),
		    I("i-000000a3", SL, "CUR", 12, 12), I("i-000000a4", CR, "CUR", 13, 13) },
	  .ops = "pause acme/web/i-000000a2\n"
		 "wake acme/web/i-000000a3\npause acme/web/i-000000a3\n"
		 "start acme/web/i-000000a4\npause acme/web/i-000000a4\n",
	  .converges = true },
	{ .name = "more sleeping: sleep a warm one, then a running one; excess destroyed first",
	  .desired = ACME(WEB("'running':1,'sleeping':2")),
	  .tenants = T_ACME,
	  .pools = P_WEB,
	  .inst = { I("i-000000a1", RU, "CUR", 10, 10), I("i-000000a2", RU, "CUR", 11, 11),
		    I("i-000000a3", WA, "CUR", 12, 12), I("i-000000a4", ST, "CUR", 13, 13) },
	  .ops = "destroy acme/web/i-000000a4\n"
		 "sleep acme/web/i-000000a3\n"
		 "sleep acme/web/i-000000a2\n",
	  .converges = true },
	{ .name = "a stopped instance is started before a new one is created",
	  .desired = ACME(WEB("'sleeping':1")),
	  .tenants = T_ACME,
	  .pools = P_WEB,
	  .inst = { I("i-000000a1", ST, "CUR", 10, 10) },
	  .ops = "start acme/web/i-000000a1\nsleep acme/web/i-000000a1\n",
	  .converges = true },
	{ .name = "scale down: newest first (created desc, then id desc); stop then destroy",
	  .desired = ACME(WEB("'running':1")),
	  .tenants = T_ACME,
	  .pools = P_WEB,
	  .inst = { I("i-000000a3", RU, "CUR", 30, 30), I("i-000000a1", RU, "CUR", 10, 10),
		    I("i-000000a2", SL, "CUR", 30, 30), I("i-000000b0", WA, "CUR", 20, 20) },
	  .ops = "stop acme/web/i-000000a3\ndestroy acme/web/i-000000a3\n"
		 "destroy acme/web/i-000000a2\n"
		 "stop acme/web/i-000000b0\ndestroy acme/web/i-000000b0\n",
	  .converges = true },
	{ .name = "min_running_seconds: a young excess running instance is not stopped",
	  .desired = ACME(WEBP("'running':1", "'min_running_seconds':60")),
	  .tenants = T_ACME,
	  .pools = P_WEB,
	  .inst = { I("i-000000a1", RU, "CUR", 10, NOW - 100), I("i-000000a2", RU, "CUR", 20, NOW - 10) },
	  .ops = "",
	  .notes = { "tenant acme pool web instance i-000000a2: running for 10s, min_running_seconds "
		     "is 60: stop deferred (50s left)" },
	  .deferred = 1,
	  .converges = true },
	{ .name = "min_running_seconds: expired, the stop happens",
	  .desired = ACME(WEBP("'running':1", "'min_running_seconds':60")),
	  .tenants = T_ACME,
	  .pools = P_WEB,
	  .inst = { I("i-000000a1", RU, "CUR", 10, NOW - 100), I("i-000000a2", RU, "CUR", 20, NOW - 60) },
	  .ops = "stop acme/web/i-000000a2\ndestroy acme/web/i-000000a2\n",
	  .converges = true },
	{ .name = "min_running_seconds: pause deferred, and nothing created in its place",
	  .desired = ACME(WEBP("'warm':1", "'min_running_seconds':60")),
	  .tenants = T_ACME,
	  .pools = P_WEB,
	  .inst = { I("i-000000a1", RU, "CUR", 10, NOW - 5) },
	  .ops = "",
	  .notes = { "running for 5s, min_running_seconds is 60: pause deferred (55s left)" },
	  .deferred = 1,
	  .converges = true },
	{ .name = "min_running_seconds: an old enough running instance is paused, not a young one",
	  .desired = ACME(WEBP("'running':1,'warm':1", "'min_running_seconds':60")),
	  .tenants = T_ACME,
	  .pools = P_WEB,
	  .inst = { I("i-000000a1", RU, "CUR", 10, NOW - 5), I("i-000000a2", RU, "CUR", 20, NOW - 500),
		    I("i-000000a3", RU, "CUR", 30, NOW - 500) },
	  .ops = "stop acme/web/i-000000a3\ndestroy acme/web/i-000000a3\n"
		 "pause acme/web/i-000000a2\n",
	  .converges = true },
	{ .name = "min_warm_seconds: sleep deferred; warm -> running is never held back",
	  .desired = ACME(WEBP("'running':1,'sleeping':1", "'min_warm_seconds':30")),
	  .tenants = T_ACME,
	  .pools = P_WEB,
	  .inst = { I("i-000000a1", WA, "CUR", 10, NOW - 1), I("i-000000a2", WA, "CUR", 20, NOW - 1) },
	  .ops = "resume acme/web/i-000000a1\n",
	  .notes = { "instance i-000000a2: warm for 1s, min_warm_seconds is 30: sleep deferred (29s "
		     "left)" },
	  .deferred = 1,
	  .converges = true },
	{ .name = "min_warm_seconds: one second short is still deferred",
	  .desired = ACME(WEBP("'sleeping':1", "'min_warm_seconds':30")),
	  .tenants = T_ACME,
	  .pools = P_WEB,
	  .inst = { I("i-000000a2", WA, "CUR", 20, NOW - 29) },
	  .ops = "",
	  .notes = { "warm for 29s, min_warm_seconds is 30: sleep deferred (1s left)" },
	  .deferred = 1,
	  .converges = true },
	{ .name = "min_warm_seconds: expired, the warm one sleeps",
	  .desired = ACME(WEBP("'sleeping':1", "'min_warm_seconds':30")),
	  .tenants = T_ACME,
	  .pools = P_WEB,
	  .inst = { I("i-000000a2", WA, "CUR", 20, NOW - 30) },
	  .ops = "sleep acme/web/i-000000a2\n",
	  .converges = true },
	{ .name = "quota max_running: refused with the numbers",
	  .desired = ACME_Q("'max_running':3", WEB("'running':3")),
	  .tenants = T_ACME,
	  .pools = { { "acme", "web", "CUR" }, { "acme", "legacy", "x" } },
	  .inst = { I("i-000000a1", RU, "CUR", 10, 10),
		    { "acme", "legacy", "i-000000c1", RU, "x", 5, 5, 1, 128, 0 } },
	  .ops = "create_instance acme/web/i-00000001\nstart acme/web/i-00000001\n",
	  .notes = { "tenant acme pool legacy: not in the desired state, left alone "
		     "(prune_unknown_pools is off): 1 instance",
		     "tenant acme pool web: max_running 3 would be exceeded (4) by a new running "
		     "instance (1 not created)" } },
	{ .name = "quota max_warm",
	  .desired = ACME_Q("'max_warm':1", WEB("'warm':1")),
	  .tenants = T_ACME,
	  .pools = { { "acme", "web", "CUR" }, { "acme", "legacy", "x" } },
	  .inst = { I("i-000000a1", RU, "CUR", 10, 10),
		    { "acme", "legacy", "i-000000c1", WA, "x", 5, 5, 1, 128, 0 } },
	  .ops = "",
	  .notes = { "tenant acme pool web: max_warm 1 would be exceeded (2) by moving i-000000a1 "
		     "from running to warm" } },
	{ .name = "quota max_vcpus",
	  .desired = ACME_Q("'max_vcpus':2", "{'pool_id':'web','instance_resources':{'vcpus':2,"
					     "'mem_mib':128},'desired_counts':{'running':1}}"),
	  .tenants = T_ACME,
	  .pools = { { "acme", "web", "CUR" }, { "acme", "legacy", "x" } },
	  .inst = { { "acme", "legacy", "i-000000c1", RU, "x", 5, 5, 1, 128, 0 } },
	  .ops = "",
	  .notes = { "tenant acme pool web: max_vcpus 2 would be exceeded (3) by a new running "
		     "instance" } },
	{ .name = "quota max_mem_mib",
	  .desired = ACME_Q("'max_mem_mib':1024", "{'pool_id':'web','instance_resources':{'vcpus':1,"
						  "'mem_mib':1024},'desired_counts':{'warm':1}}"),
	  .tenants = T_ACME,
	  .pools = { { "acme", "web", "CUR" }, { "acme", "legacy", "x" } },
	  .inst = { { "acme", "legacy", "i-000000c1", RU, "x", 5, 5, 1, 64, 0 } },
	  .ops = "",
	  .notes = { "max_mem_mib 1024 would be exceeded (1088) by a new warm instance" } },
	{ .name = "quota max_disk_gib counts every live instance, sleeping ones too",
	  .desired = ACME_Q("'max_disk_gib':1",
			    "{'pool_id':'web','instance_resources':{'vcpus':1,'mem_mib':128,"
			    "'data_disk_mib':1024},'desired_counts':{'sleeping':1}}"),
	  .tenants = T_ACME,
	  .pools = { { "acme", "web", "CUR" }, { "acme", "legacy", "x" } },
	  .inst = { { "acme", "legacy", "i-000000c1", SL, "x", 5, 5, 1, 128, 512 } },
	  .ops = "",
	  .notes = { "max_disk_gib 1 (1024 MiB) would be exceeded (1536 MiB) by a new sleeping "
		     "instance" } },
	{ .name = "quota max_instances_per_pool (an undestroyable old instance is still there)",
	  .desired = ACME_Q("'max_instances_per_pool':1", WEB("'running':1")),
	  .tenants = T_ACME,
	  .pools = P_WEB,
	  .inst = { I("i-000000a1", ST, "old", 10, 10) },
	  .backoff = { { "acme/web/i-000000a1", NOW + 40 } },
	  .ops = "",
	  .notes = { "instance i-000000a1: removal skipped after a failure, retrying after 100040 "
		     "(in 40s)",
		     "max_instances_per_pool 1 would be exceeded (2) by a new running instance" } },
	{ .name = "quota max_pools: the new pool is not created",
	  .desired = ACME_Q("'max_pools':1", WEB("'running':1")),
	  .tenants = T_ACME,
	  .pools = { { "acme", "legacy", "x" } },
	  .ops = "",
	  .notes = { "tenant acme pool web: max_pools 1 would be exceeded (2) by creating the pool" } },
	{ .name = "quota: removals free capacity for the same pass",
	  .desired = ACME_Q("'max_running':2",
			    WEB("'running':1") ",{'pool_id':'api','desired_counts':{'running':1}}"),
	  .tenants = T_ACME,
	  .pools = { { "acme", "web", "CUR" } },
	  .inst = { I("i-000000a1", RU, "CUR", 10, 10), I("i-000000a2", RU, "CUR", 20, 20) },
	  .ops = "stop acme/web/i-000000a2\ndestroy acme/web/i-000000a2\n"
		 "ensure_pool acme/api\n"
		 "create_instance acme/api/i-00000001\nstart acme/api/i-00000001\n",
	  .converges = true },
	{ .name = "spec change: one replaced per pass, the new one first, the pool record updated",
	  .desired = ACME(WEB("'running':2")),
	  .tenants = T_ACME,
	  .pools = { { "acme", "web", "old" } },
	  .inst = { I("i-000000a1", RU, "old", 10, 10), I("i-000000a2", RU, "old", 20, 20) },
	  .ops = "ensure_pool acme/web\n"
		 "create_instance acme/web/i-00000001\nstart acme/web/i-00000001\n"
		 "stop acme/web/i-000000a1\ndestroy acme/web/i-000000a1\n",
	  .converges = true },
	{ .name = "spec change with a tight quota: the old one goes first",
	  .desired = ACME_Q("'max_running':2", WEB("'running':2")),
	  .tenants = T_ACME,
	  .pools = P_WEB,
	  .inst = { I("i-000000a1", RU, "old", 10, 10), I("i-000000a2", RU, "old", 20, 20) },
	  .ops = "stop acme/web/i-000000a1\ndestroy acme/web/i-000000a1\n"
		 "create_instance acme/web/i-00000001\nstart acme/web/i-00000001\n",
	  .converges = true },
	{ .name = "spec change that no order can fit is refused",
	  .desired = ACME_Q("'max_vcpus':5,'max_running':3",
			    "{'pool_id':'web','instance_resources':{'vcpus':2,'mem_mib':128},"
			    "'desired_counts':{'running':2}}"),
	  .tenants = T_ACME,
	  .pools = { { "acme", "web", "CUR" }, { "acme", "legacy", "x" } },
	  .inst = { { "acme", "web", "i-000000a1", RU, "old", 10, 10, 1, 128, 0 },
		    { "acme", "web", "i-000000a2", RU, "old", 20, 20, 1, 128, 0 },
		    { "acme", "legacy", "i-000000c1", RU, "x", 5, 5, 3, 128, 0 } },
	  .ops = "",
	  .notes = { "max_vcpus 5 would be exceeded (6) by replacing i-000000a1 with the new spec" } },
	{ .name = "spec change held back by min_running_seconds",
	  .desired = ACME(WEBP("'running':1", "'min_running_seconds':60")),
	  .tenants = T_ACME,
	  .pools = P_WEB,
	  .inst = { I("i-000000a1", RU, "old", 10, NOW - 20) },
	  .ops = "",
	  .notes = { "running for 20s, min_running_seconds is 60: replacement with the new spec "
		     "deferred (40s left)" },
	  .deferred = 1,
	  .converges = true },
	{ .name = "spec change: a current instance is used before an old one is kept",
	  .desired = ACME(WEB("'running':1")),
	  .tenants = T_ACME,
	  .pools = P_WEB,
	  .inst = { I("i-000000a1", RU, "old", 10, 10), I("i-000000a2", WA, "CUR", 20, 20) },
	  .ops = "stop acme/web/i-000000a1\ndestroy acme/web/i-000000a1\n"
		 "resume acme/web/i-000000a2\n",
	  .converges = true },
	{ .name = "prune_unknown_tenants on: everything of the unknown tenant goes, first",
	  .desired = "{'prune_unknown_tenants':true,'tenants':[{'tenant_id':'acme','pools':["
		     "{'pool_id':'web','desired_counts':{'running':1}}]}]}",
	  .tenants = { { "acme", 0, NULL }, { "ghost", 99, "10.99.0.0/24" } },
	  .pools = { { "acme", "web", "CUR" }, { "ghost", "p1", "x" } },
	  .inst = { I("i-000000a1", RU, "CUR", 10, 10),
		    { "ghost", "p1", "i-000000d1", RU, "x", 10, NOW, 1, 128, 0 },
		    { "ghost", "p1", "i-000000d2", SL, "x", 20, NOW, 1, 128, 0 } },
	  .ops = "destroy ghost/p1/i-000000d2\n"
		 "stop ghost/p1/i-000000d1\ndestroy ghost/p1/i-000000d1\n"
		 "remove_pool ghost/p1\nremove_tenant ghost\n",
	  .converges = true },
	{ .name = "prune_unknown_tenants off: listed and left alone",
	  .desired = ACME(WEB("'running':1")),
	  .tenants = { { "acme", 0, NULL }, { "ghost", 99, "10.99.0.0/24" } },
	  .pools = { { "acme", "web", "CUR" }, { "ghost", "p1", "x" } },
	  .inst = { I("i-000000a1", RU, "CUR", 10, 10),
		    { "ghost", "p1", "i-000000d1", RU, "x", 10, 10, 1, 128, 0 },
		    { "ghost", "p1", "i-000000d2", SL, "x", 20, 20, 1, 128, 0 } },
	  .ops = "",
	  .notes = { "tenant ghost: not in the desired state, left alone (prune_unknown_tenants is "
		     "off): 1 pool, 2 instances" },
	  .converges = true },
	{ .name = "prune_unknown_pools on: the unknown pool of a desired tenant goes",
	  .desired = "{'prune_unknown_pools':true,'tenants':[{'tenant_id':'acme','pools':["
		     "{'pool_id':'web','desired_counts':{'running':1}}]}]}",
	  .tenants = T_ACME,
	  .pools = { { "acme", "web", "CUR" }, { "acme", "old", "x" } },
	  .inst = { I("i-000000a1", RU, "CUR", 10, 10),
		    { "acme", "old", "i-000000e1", WA, "x", 10, NOW, 1, 128, 0 } },
	  .ops = "stop acme/old/i-000000e1\ndestroy acme/old/i-000000e1\nremove_pool acme/old\n",
	  .converges = true },
	{ .name = "prune_unknown_pools off: listed and left alone; a pool known only by its "
		  "instances too",
	  .desired = ACME(WEB("'running':1")),
	  .tenants = T_ACME,
	  .pools = { { "acme", "web", "CUR" } },
	  .inst = { I("i-000000a1", RU, "CUR", 10, 10),
		    { "acme", "stray", "i-000000e1", ST, "x", 10, 10, 1, 128, 0 } },
	  .ops = "",
	  .notes = { "tenant acme pool stray: not in the desired state, left alone "
		     "(prune_unknown_pools is off): 1 instance" },
	  .converges = true },
	{ .name = "backoff: a failed wake is not retried before its time",
	  .desired = ACME(WEB("'running':2")),
	  .tenants = T_ACME,
	  .pools = P_WEB,
	  .inst = { I("i-000000a1", RU, "CUR", 10, 10), I("i-000000a2", SL, "CUR", 20, 20) },
	  .backoff = { { "acme/web/i-000000a2", NOW + 20 }, { "acme/web/i-000000a1", NOW - 1 } },
	  .ops = "",
	  .notes = { "tenant acme pool web instance i-000000a2: sleeping -> running skipped after a "
		     "failure, retrying after 100020 (in 20s)" } },
	{ .name = "backoff expired: the wake is retried",
	  .desired = ACME(WEB("'running':2")),
	  .tenants = T_ACME,
	  .pools = P_WEB,
	  .inst = { I("i-000000a1", RU, "CUR", 10, 10), I("i-000000a2", SL, "CUR", 20, 20) },
	  .backoff = { { "acme/web/i-000000a2", NOW } },
	  .ops = "wake acme/web/i-000000a2\n",
	  .converges = true },
	{ .name = "backoff on a pool: new instances wait, moves of existing ones do not",
	  .desired = ACME(WEB("'running':3")),
	  .tenants = T_ACME,
	  .pools = P_WEB,
	  .inst = { I("i-000000a1", WA, "CUR", 10, 10) },
	  .backoff = { { "acme/web", NOW + 5 } },
	  .ops = "resume acme/web/i-000000a1\n",
	  .notes = { "tenant acme pool web: creating 2 new instances skipped after a failure, "
		     "retrying after 100005 (in 5s)" } },
	{ .name = "backoff on a tenant that does not exist yet: the whole tenant waits",
	  .desired = ACME(WEB("'running':1")),
	  .backoff = { { "acme", NOW + 300 } },
	  .ops = "",
	  .notes = { "tenant acme: ensure_tenant (and the tenant) skipped after a failure, retrying "
		     "after 100300 (in 300s)" } },
	{ .name = "a tenant's network is not changed in place",
	  .desired = ACME(WEB("'running':1")),
	  .tenants = { { "acme", 7, "10.7.0.0/24" } },
	  .pools = P_WEB,
	  .inst = { I("i-000000a1", RU, "CUR", 10, 10) },
	  .ops = "",
	  .notes = { "tenant acme: network is net 7 10.7.0.0/24 on the node, desired net 1 "
		     "10.1.0.0/24" } },
	{ .name = "a new tenant whose network an unknown tenant holds is not created",
	  .desired = ACME(WEB("'running':1")),
	  .tenants = { { "ghost", 1, "10.200.0.0/24" } },
	  .ops = "",
	  .notes = { "tenant acme: net 1 10.1.0.0/24 collides with tenant ghost (net 1 "
		     "10.200.0.0/24) that stays on the node (prune_unknown_tenants is off)",
		     "tenant ghost: not in the desired state" } },
	{ .name = "...unless it is pruned first in the same pass",
	  .desired = "{'prune_unknown_tenants':true,'tenants':[{'tenant_id':'acme','pools':["
		     "{'pool_id':'web','desired_counts':{'running':1}}]}]}",
	  .tenants = { { "ghost", 2, "10.1.0.0/16" } },
	  .ops = "remove_tenant ghost\n"
		 "ensure_tenant acme\nensure_pool acme/web\n"
		 "create_instance acme/web/i-00000001\nstart acme/web/i-00000001\n",
	  .converges = true },
	{ .name = "new ids never collide with existing ones",
	  .desired = ACME(WEB("'running':2")),
	  .tenants = T_ACME,
	  .pools = P_WEB,
	  .inst = { { "acme", "web", "i-00000001", S(DESTROYED), "CUR", 1, 1, 0, 0, 0 },
		    I("i-00000002", RU, "CUR", 10, 10) },
	  .ops = "create_instance acme/web/i-00000003\nstart acme/web/i-00000003\n",
	  .converges = true },
};

/* ---- running a case --------------------------------------------------------------------- */

struct counter {
	uint32_t next;
};

static uint32_t count_up(void *ctx)
{
	return ++((struct counter *)ctx)->next;
}

static void sim_load(struct sim *s, const struct tcase *tc, const Vmlet__V1__DesiredState *ds)
{
	memset(s, 0, sizeof(*s));
	for (size_t k = 0; k < MAX_ROWS && tc->tenants[k].id; k++) {
		const struct row_tenant *r = &tc->tenants[k];
		struct sim_tenant *t = &s->t[s->nt++];
		snprintf(t->id, sizeof(t->id), "%s", r->id);
		if (r->net_id) {
			t->net_id = r->net_id;
			snprintf(t->subnet, sizeof(t->subnet), "%s", r->subnet);
		} else {
			const Vmlet__V1__DesiredTenant *dt = find_tenant(ds, r->id);
			assert_non_null(dt);
			t->net_id = dt->network->tenant_net_id;
			snprintf(t->subnet, sizeof(t->subnet), "%s", dt->network->ipv4_subnet);
		}
	}
	for (size_t k = 0; k < MAX_ROWS && tc->pools[k].tenant; k++) {
		const struct row_pool *r = &tc->pools[k];
		struct sim_pool *p = &s->p[s->np++];
		snprintf(p->tenant, sizeof(p->tenant), "%s", r->tenant);
		snprintf(p->pool, sizeof(p->pool), "%s", r->pool);
		if (strcmp(r->hash, "CUR") == 0)
			pool_hash(find_pool(ds, r->tenant, r->pool), p->hash);
		else
			snprintf(p->hash, sizeof(p->hash), "%s", r->hash);
	}
	for (size_t k = 0; k < MAX_ROWS && tc->inst[k].tenant; k++) {
		const struct row_inst *r = &tc->inst[k];
		const Vmlet__V1__DesiredPool *dp = find_pool(ds, r->tenant, r->pool);
		struct sim_inst *x = &s->i[s->ni++];
		snprintf(x->tenant, sizeof(x->tenant), "%s", r->tenant);
		snprintf(x->pool, sizeof(x->pool), "%s", r->pool);
		snprintf(x->id, sizeof(x->id), "%s", r->id);
		if (strcmp(r->hash, "CUR") == 0)
			pool_hash(dp, x->hash);
		else
			snprintf(x->hash, sizeof(x->hash), "%s", r->hash);
		x->state = r->state;
		x->created = r->created;
		x->since = r->since;
		x->vcpus = r->vcpus ? r->vcpus : dp ? dp->instance_resources->vcpus : 1;
		x->mem = r->mem ? r->mem : dp ? dp->instance_resources->mem_mib : 128;
		x->disk = r->vcpus ? r->disk : dp ? dp->instance_resources->data_disk_mib : 0;
	}
}

/* "op tenant[/pool[/instance]]\n" per op. */
static char *dump(const struct plan *p)
{
	size_t cap = 64 + p->n_ops * 200, n = 0;
	char *s = malloc(cap);
	s[0] = '\0';
	for (size_t k = 0; k < p->n_ops; k++) {
		const struct plan_op *op = &p->ops[k];
		n += (size_t)snprintf(s + n, cap - n, "%s %s%s%s%s%s\n", plan_op_name(op->kind),
				      op->tenant, op->pool[0] ? "/" : "", op->pool,
				      op->instance[0] ? "/" : "", op->instance);
	}
	return s;
}

static void print_notes(const struct plan *p)
{
	for (size_t k = 0; k < p->n_notes; k++)
		print_message("  note[%zu]: %s\n", k, p->notes[k].text);
}

static int run_plan(struct sim *s, const Vmlet__V1__DesiredState *ds,
		    const struct plan_backoff *bo, size_t nbo, uint64_t now, struct counter *ids,
		    struct plan *p)
{
	struct plan_input in = { .desired = ds,
				 .backoff = bo,
				 .n_backoff = nbo,
				 .now_unix = now,
				 .rand32 = count_up,
				 .rand_ctx = ids };
	struct vmlet_err err = { 0 };

	sim_view(s, &in);
	int rc = plan_compute(&in, p, &err);
	if (rc < 0)
		print_message("plan_compute: %s\n", err.msg);
	return rc;
}

/* Every desired pool has exactly its counts, all of the current spec. */
static void assert_converged(const struct sim *s, const Vmlet__V1__DesiredState *ds,
			     const char *name)
{
	for (size_t i = 0; i < ds->n_tenants; i++)
		for (size_t j = 0; j < ds->tenants[i]->n_pools; j++) {
			const Vmlet__V1__DesiredPool *dp = ds->tenants[i]->pools[j];
			char h[AGENTD_SPEC_HASH_LEN + 1];
			uint32_t got[8] = { 0 }, other = 0;
			pool_hash(dp, h);
			for (size_t k = 0; k < s->ni; k++) {
				const struct sim_inst *x = &s->i[k];
				if (strcmp(x->tenant, ds->tenants[i]->tenant_id) ||
				    strcmp(x->pool, dp->pool_id))
					continue;
				if (strcmp(x->hash, h) == 0 && x->state < 8)
					got[x->state]++;
				else
					other++;
			}
			if (got[RU] != dp->desired_counts->running ||
			    got[WA] != dp->desired_counts->warm ||
			    got[SL] != dp->desired_counts->sleeping || got[CR] || got[ST] || other)
				fail_msg("%s: %s/%s not converged: running %u warm %u sleeping %u "
					 "created %u stopped %u other %u",
					 name, ds->tenants[i]->tenant_id, dp->pool_id, got[RU], got[WA],
					 got[SL], got[CR], got[ST], other);
		}
}

static void table(void **state)
{
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		const struct tcase *tc = &cases[c];
		Vmlet__V1__DesiredState *ds = desired(tc->desired);
		static struct sim s;
		struct counter ids = { 0 };
		struct plan p;
		size_t nbo = 0;
		uint64_t now = tc->now ? tc->now : NOW;

		while (nbo < 4 && tc->backoff[nbo].key)
			nbo++;
		sim_load(&s, tc, ds);
		if (run_plan(&s, ds, tc->backoff, nbo, now, &ids, &p) < 0)
			fail_msg("case '%s': plan_compute failed", tc->name);
		char *got = dump(&p);
		if (strcmp(got, tc->ops) != 0) {
			print_message("case '%s'\n--- expected\n%s--- got\n%s", tc->name, tc->ops, got);
			print_notes(&p);
			fail();
		}
		free(got);
		for (size_t k = 0; k < 6 && tc->notes[k]; k++) {
			bool found = false;
			for (size_t n = 0; n < p.n_notes && !found; n++)
				found = strstr(p.notes[n].text, tc->notes[k]) != NULL;
			if (!found) {
				print_message("case '%s': no note contains\n  %s\n", tc->name,
					      tc->notes[k]);
				print_notes(&p);
				fail();
			}
		}
		if (p.counts.instances_deferred != tc->deferred) {
			print_notes(&p);
			fail_msg("case '%s': deferred %u, expected %u", tc->name,
				 p.counts.instances_deferred, tc->deferred);
		}
		/* Apply and plan again with time moving on (past every minimum
		 * and every backoff) until nothing is left: converged, and the
		 * last plan is empty. A rolling replacement takes a few passes. */
		if (tc->converges) {
			int pass = 0;
			while (p.n_ops || p.counts.instances_deferred) {
				if (++pass > 12)
					fail_msg("case '%s': no convergence after 12 passes", tc->name);
				sim_apply(&s, &p, now);
				plan_free(&p);
				now += 1000;
				assert_int_equal(run_plan(&s, ds, NULL, 0, now, &ids, &p), 0);
			}
			assert_converged(&s, ds, tc->name);
		}
		plan_free(&p);
		protobuf_c_message_free_unpacked(&ds->base, NULL);
	}
}

/* ---- properties beyond the table ----------------------------------------------------------- */

static const struct plan_op *first_stop(const struct plan *p)
{
	for (size_t k = 0; k < p->n_ops; k++)
		if (p->ops[k].kind == PLAN_STOP)
			return &p->ops[k];
	fail_msg("no stop in the plan");
	return NULL;
}

static void counters_and_fields(void **state)
{
	Vmlet__V1__DesiredState *ds = desired(
		"{'tenants':[{'tenant_id':'acme','pools':[{'pool_id':'web','image':'base',"
		"'instance_resources':{'vcpus':2,'mem_mib':256,'data_disk_mib':64},"
		"'desired_counts':{'running':2,'warm':1,'sleeping':1},"
		"'runtime_policy':{'graceful_shutdown_seconds':7}}]}]}");
	static struct sim s;
	struct counter ids = { 0 };
	struct plan p;
	char h[AGENTD_SPEC_HASH_LEN + 1], key[PLAN_KEY_MAX + 1];

	memset(&s, 0, sizeof(s));
	assert_int_equal(run_plan(&s, ds, NULL, 0, NOW, &ids, &p), 0);
	assert_int_equal(p.counts.tenants_created, 1);
	assert_int_equal(p.counts.pools_created, 1);
	assert_int_equal(p.counts.instances_created, 4);
	assert_int_equal(p.counts.instances_started, 4);
	assert_int_equal(p.counts.instances_warmed, 1);
	assert_int_equal(p.counts.instances_slept, 1);
	assert_int_equal(p.counts.instances_stopped + p.counts.instances_destroyed +
				 p.counts.instances_woken + p.counts.instances_deferred,
			 0);
	pool_hash(find_pool(ds, "acme", "web"), h);
	/* ENSURE_TENANT carries the network; chains link each op to the one
	 * before; CREATE carries the spec; new instances' key is the pool. */
	assert_int_equal(p.ops[0].kind, PLAN_ENSURE_TENANT);
	assert_int_equal(p.ops[0].net_id, 1);
	assert_string_equal(p.ops[0].subnet, "10.1.0.0/24");
	assert_int_equal(p.ops[1].kind, PLAN_ENSURE_POOL);
	assert_int_equal(p.ops[1].after, 0);
	assert_string_equal(p.ops[1].spec.spec_hash, h);
	assert_int_equal(p.ops[2].kind, PLAN_CREATE_INSTANCE);
	assert_int_equal(p.ops[2].after, 1);
	assert_true(p.ops[2].grows);
	assert_string_equal(p.ops[2].spec.image, "base");
	assert_int_equal(p.ops[2].spec.vcpus, 2);
	assert_int_equal(p.ops[2].spec.mem_mib, 256);
	assert_int_equal(p.ops[2].spec.data_disk_mib, 64);
	assert_string_equal(p.ops[2].spec.spec_hash, h);
	assert_int_equal(p.ops[3].kind, PLAN_START);
	assert_int_equal(p.ops[3].after, 2);
	plan_op_key(&p.ops[3], key, sizeof(key));
	assert_string_equal(key, "acme/web");
	plan_op_key(&p.ops[0], key, sizeof(key));
	assert_string_equal(key, "acme");

	/* Scale to zero: STOP carries graceful_shutdown_seconds, DESTROY
	 * follows its STOP, the key is the instance. */
	sim_apply(&s, &p, NOW);
	plan_free(&p);
	ds->tenants[0]->pools[0]->desired_counts->running = 0;
	ds->tenants[0]->pools[0]->desired_counts->warm = 0;
	ds->tenants[0]->pools[0]->desired_counts->sleeping = 0;
	assert_int_equal(run_plan(&s, ds, NULL, 0, NOW + 10, &ids, &p), 0);
	assert_int_equal(p.counts.instances_stopped, 3);
	assert_int_equal(p.counts.instances_destroyed, 4);
	for (size_t k = 0; k < p.n_ops; k++) {
		if (p.ops[k].kind == PLAN_STOP) {
			assert_int_equal(p.ops[k].graceful_ms, 7000);
			assert_int_equal(p.ops[k + 1].kind, PLAN_DESTROY);
			assert_int_equal(p.ops[k + 1].after, (long)k);
			plan_op_key(&p.ops[k], key, sizeof(key));
			assert_non_null(strstr(key, "acme/web/i-"));
		}
		assert_false(p.ops[k].grows);
	}
	plan_free(&p);

	/* graceful_ms is capped at what hostd accepts; no policy: the default */
	ds->tenants[0]->pools[0]->runtime_policy->graceful_shutdown_seconds = 3600;
	assert_int_equal(run_plan(&s, ds, NULL, 0, NOW + 10, &ids, &p), 0);
	assert_int_equal(first_stop(&p)->graceful_ms, PLAN_GRACEFUL_MS_MAX);
	plan_free(&p);
	Vmlet__V1__RuntimePolicy *rp = ds->tenants[0]->pools[0]->runtime_policy;
	ds->tenants[0]->pools[0]->runtime_policy = NULL;
	protobuf_c_message_free_unpacked(&rp->base, NULL);
	assert_int_equal(run_plan(&s, ds, NULL, 0, NOW + 10, &ids, &p), 0);
	assert_int_equal(first_stop(&p)->graceful_ms, PLAN_DEFAULT_GRACEFUL_MS);
	plan_free(&p);
	protobuf_c_message_free_unpacked(&ds->base, NULL);
}

/* Surge replacement: the old instance's STOP waits for the new one. */
static void replacement_links(void **state)
{
	Vmlet__V1__DesiredState *ds = desired(ACME(WEB("'running':1")));
	static struct sim s;
	struct counter ids = { 0 };
	struct plan p;
	const struct tcase tc = { .tenants = T_ACME,
				  .pools = P_WEB,
				  .inst = { I("i-000000a1", RU, "old", 10, 10) } };

	sim_load(&s, &tc, ds);
	assert_int_equal(run_plan(&s, ds, NULL, 0, NOW, &ids, &p), 0);
	assert_int_equal(p.n_ops, 4);
	assert_int_equal(p.ops[0].kind, PLAN_CREATE_INSTANCE);
	assert_int_equal(p.ops[1].kind, PLAN_START);
	assert_int_equal(p.ops[2].kind, PLAN_STOP);
	assert_int_equal(p.ops[2].after, 1);
	assert_string_equal(p.ops[2].instance, "i-000000a1");
	assert_int_equal(p.ops[3].after, 2);
	plan_free(&p);
	protobuf_c_message_free_unpacked(&ds->base, NULL);
}

static void same_plan(const struct plan *a, const struct plan *b)
{
	assert_int_equal(a->n_ops, b->n_ops);
	assert_int_equal(a->n_notes, b->n_notes);
	for (size_t k = 0; k < a->n_ops; k++)
		assert_memory_equal(&a->ops[k], &b->ops[k], sizeof(a->ops[k]));
	for (size_t k = 0; k < a->n_notes; k++)
		assert_string_equal(a->notes[k].text, b->notes[k].text);
	assert_memory_equal(&a->counts, &b->counts, sizeof(a->counts));
}

/* Same input -> same plan, also with the node's lists in another order. */
static void deterministic(void **state)
{
	Vmlet__V1__DesiredState *ds = desired(
		"{'tenants':[{'tenant_id':'acme','pools':[{'pool_id':'web','desired_counts':"
		"{'running':3,'warm':2,'sleeping':1},'runtime_policy':{'min_running_seconds':50}},"
		"{'pool_id':'api','desired_counts':{'running':1}}]},"
		"{'tenant_id':'beta','pools':[{'pool_id':'web','desired_counts':{'warm':2}}]}]}");
	static struct sim s, r;
	struct counter ids1 = { 0 }, ids2 = { 0 }, ids3 = { 0 };
	struct plan p1, p2, p3;
	const struct tcase tc = {
		.tenants = { { "acme", 0, NULL }, { "zed", 50, "10.50.0.0/24" } },
		.pools = { { "acme", "web", "CUR" }, { "acme", "gone", "x" }, { "zed", "q", "x" } },
		.inst = { I("i-000000a1", RU, "CUR", 10, NOW - 10), I("i-000000a2", RU, "CUR", 10, NOW - 100),
			  I("i-000000a3", WA, "CUR", 30, 30), I("i-000000a4", SL, "old", 40, 40),
			  I("i-000000a5", ST, "CUR", 50, 50), I("i-000000a6", RU, "CUR", 10, NOW - 99),
			  I("i-000000a7", RU, "CUR", 5, NOW - 1),
			  { "acme", "gone", "i-000000b1", RU, "x", 1, 1, 1, 128, 0 },
			  { "zed", "q", "i-000000b2", WA, "x", 1, 1, 1, 128, 0 } },
	};

	sim_load(&s, &tc, ds);
	assert_int_equal(run_plan(&s, ds, NULL, 0, NOW, &ids1, &p1), 0);
	assert_int_equal(run_plan(&s, ds, NULL, 0, NOW, &ids2, &p2), 0);
	same_plan(&p1, &p2);
	/* the same node, lists reversed */
	memset(&r, 0, sizeof(r));
	for (size_t k = 0; k < s.nt; k++)
		r.t[k] = s.t[s.nt - 1 - k];
	for (size_t k = 0; k < s.np; k++)
		r.p[k] = s.p[s.np - 1 - k];
	for (size_t k = 0; k < s.ni; k++)
		r.i[k] = s.i[s.ni - 1 - k];
	r.nt = s.nt, r.np = s.np, r.ni = s.ni;
	assert_int_equal(run_plan(&r, ds, NULL, 0, NOW, &ids3, &p3), 0);
	same_plan(&p1, &p3);
	assert_true(p1.n_ops > 0);
	plan_free(&p1);
	plan_free(&p2);
	plan_free(&p3);
	protobuf_c_message_free_unpacked(&ds->base, NULL);
}

/* A changing sequence of desired states, each applied until converged:
 * after every convergence one more pass plans zero ops. */
static void idempotent_through_changes(void **state)
{
	static const char *const steps[] = {
		ACME(WEB("'running':2,'warm':1,'sleeping':1")),
		ACME(WEB("'running':4")),
		ACME(WEB("'running':1,'warm':2,'sleeping':2")),
		ACME("{'pool_id':'web','image':'v2','desired_counts':{'running':1,'warm':2,"
		     "'sleeping':2}}"),
		ACME("{'pool_id':'web','image':'v2','instance_resources':{'vcpus':2,'mem_mib':512},"
		     "'desired_counts':{'running':3}}"),
		("{'prune_unknown_pools':true,'tenants':[{'tenant_id':'acme','pools':["
		 "{'pool_id':'api','desired_counts':{'sleeping':2}}]}]}"),
		"{'prune_unknown_tenants':true,'tenants':[]}",
	};
	static struct sim s;
	struct counter ids = { 0 };
	uint64_t now = NOW;

	memset(&s, 0, sizeof(s));
	for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		Vmlet__V1__DesiredState *ds = desired(steps[k]);
		struct plan p;
		int pass = 0;
		for (;;) {
			assert_int_equal(run_plan(&s, ds, NULL, 0, now, &ids, &p), 0);
			if (p.n_ops == 0)
				break;
			if (++pass > 12)
				fail_msg("step %zu: no convergence", k);
			sim_apply(&s, &p, now);
			plan_free(&p);
			now += 100;
		}
		assert_int_equal(p.n_notes, 0);
		plan_free(&p);
		assert_converged(&s, ds, steps[k]);
		protobuf_c_message_free_unpacked(&ds->base, NULL);
	}
	assert_int_equal(s.ni, 0);
	assert_int_equal(s.nt, 0);
	assert_int_equal(s.np, 0);
}

static uint32_t stuck(void *ctx)
{
	return 7;
}

static void refuses_what_it_cannot_plan(void **state)
{
	Vmlet__V1__DesiredState *ds = desired(ACME(WEB("'running':2")));
	struct plan p;
	struct vmlet_err err = { 0 };
	struct plan_input in = { .desired = ds, .now_unix = NOW, .rand32 = stuck };

	/* an id source that repeats itself cannot produce a second id */
	assert_int_equal(plan_compute(&in, &p, &err), -1);
	assert_int_equal(err.code, VMLET_E_INTERNAL);
	assert_non_null(strstr(err.msg, "no unique instance id"));
	plan_free(&p);
	/* no id source at all */
	in.rand32 = NULL;
	assert_int_equal(plan_compute(&in, &p, &err), -1);
	plan_free(&p);
	/* a desired state that was not validated */
	Vmlet__V1__DesiredCounts *saved = ds->tenants[0]->pools[0]->desired_counts;
	ds->tenants[0]->pools[0]->desired_counts = NULL;
	in.rand32 = plan_rand32_getrandom;
	assert_int_equal(plan_compute(&in, &p, &err), -1);
	assert_int_equal(err.code, VMLET_E_INVALID);
	plan_free(&p);
	ds->tenants[0]->pools[0]->desired_counts = saved;
	in.desired = NULL;
	assert_int_equal(plan_compute(&in, &p, &err), -1);
	plan_free(&p);
	/* the production id source works */
	in.desired = ds;
	assert_int_equal(plan_compute(&in, &p, &err), 0);
	assert_true(vmlet_instance_id_ok(p.ops[2].instance));
	plan_free(&p);
	protobuf_c_message_free_unpacked(&ds->base, NULL);
}

static void backoff_schedule(void **state)
{
	assert_int_equal(plan_backoff_next(1000, 1), 1005);
	assert_int_equal(plan_backoff_next(1000, 2), 1010);
	assert_int_equal(plan_backoff_next(1000, 3), 1020);
	assert_int_equal(plan_backoff_next(1000, 7), 1300);
	assert_int_equal(plan_backoff_next(1000, 8), 1300);
	assert_int_equal(plan_backoff_next(1000, 1000), 1300);
	assert_int_equal(plan_backoff_next(1000, 0), 1005);
	assert_int_equal(plan_backoff_next(UINT64_MAX - 1, 9), UINT64_MAX);
}

static void spec_hash_is_stable(void **state)
{
	char a[AGENTD_SPEC_HASH_LEN + 1], b[AGENTD_SPEC_HASH_LEN + 1];
	struct vmlet_err err = { 0 };

	/* first 16 hex of SHA-256 of the canonical text (plan.h/spec_hash.h):
	 * printf 'vmlet-spec-v1\nimage=base\nvcpus=1\nmem_mib=128\ndata_disk_mib=0\n' | sha256sum */
	assert_int_equal(agentd_spec_hash("base", 1, 128, 0, a, &err), 0);
	assert_int_equal(strlen(a), 16);
	assert_string_equal(a, "880843ab0e5e1f44");
	assert_int_equal(agentd_spec_hash("base", 1, 128, 1, b, &err), 0);
	assert_string_not_equal(a, b);
	assert_int_equal(agentd_spec_hash("base2", 1, 128, 0, b, &err), 0);
	assert_string_not_equal(a, b);
	assert_int_equal(agentd_spec_hash(NULL, 1, 128, 0, a, &err), 0);
	assert_int_equal(agentd_spec_hash("", 1, 128, 0, b, &err), 0);
	assert_string_equal(a, b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(table),
		cmocka_unit_test(counters_and_fields),
		cmocka_unit_test(replacement_links),
		cmocka_unit_test(deterministic),
		cmocka_unit_test(idempotent_through_changes),
		cmocka_unit_test(refuses_what_it_cannot_plan),
		cmocka_unit_test(backoff_schedule),
		cmocka_unit_test(spec_hash_is_stable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
