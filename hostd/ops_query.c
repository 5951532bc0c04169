#include "hostd/ops_query.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shared/validate.h"

/* ---- node facts -------------------------------------------------------------- */

int hostd_op_node_facts(const struct hostd_env *env, const Vmlet__Host__V1__HostRequest *req,
			struct hostd_reply *reply, struct vmlet_err *err)
{
	const struct hostd_facts *f = env->facts;
	Vmlet__V1__NodeInfo *info = hostd_reply_alloc(reply, sizeof(*info));

	if (!info)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "out of memory");
	vmlet__v1__node_info__init(info);
	/* The facts outlive every reply (collected once, never changed), so
	 * the strings are referenced, not copied. */
	info->node_id = (char *)f->node_id;
	info->hostname = (char *)f->hostname;
	info->arch = (char *)f->arch;
	info->kernel_release = (char *)f->kernel_release;
	info->cgroup_version = (char *)f->cgroup_version;
	info->cgroup_v2 = strcmp(f->cgroup_version, "v2") == 0;
	info->kvm_usable = f->kvm_usable;
	info->accel = (char *)f->accel;
	info->vmm_name = (char *)f->vmm_name;
	info->vmm_version = (char *)f->vmm_version;
	info->qemu_version = (char *)f->qemu_version;
	info->firecracker_version = (char *)f->firecracker_version;
	info->jailer_available = f->jailer_available;
	info->attestation_provider = "none";
	info->vmlet_version = (char *)f->vmlet_version;
	info->production = f->production;
	/* CPUs can be onlined and memory hot-plugged: read them now. */
	info->total_vcpus = hostd_facts_vcpus();
	info->total_mem_mib = hostd_facts_mem_mib();

	reply->resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT_NODE_FACTS;
	reply->resp.node_facts = info;
	return 0;
}

/* ---- node stats -------------------------------------------------------------- */

struct stats_acc {
	uint64_t tenants, pools, created, running, warm, sleeping, stopped, vcpus, mem_mib;
};

static int stats_tenant(void *arg, const Vmlet__Host__V1__TenantRecord *t, struct vmlet_err *err)
{
	((struct stats_acc *)arg)->tenants++;
	return 0;
}

static int stats_pool(void *arg, const Vmlet__Host__V1__PoolRecord *p, struct vmlet_err *err)
{
	((struct stats_acc *)arg)->pools++;
	return 0;
}

static int stats_instance(void *arg, const Vmlet__Host__V1__InstanceRecord *i,
			  struct vmlet_err *err)
{
	struct stats_acc *a = arg;

	switch (i->state) {
	case VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_CREATED:
		a->created++;
		break;
	case VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_RUNNING:
		a->running++;
		a->vcpus += i->vcpus;
		a->mem_mib += i->mem_mib;
		break;
	case VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_WARM:
		/* A warm VMM is paused but still holds its memory and vCPUs. */
		a->warm++;
		a->vcpus += i->vcpus;
		a->mem_mib += i->mem_mib;
		break;
	case VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_SLEEPING:
		a->sleeping++;
		break;
	case VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_STOPPED:
		a->stopped++;
		break;
	default: /* destroyed: a record kept for the audit trail, uses nothing */
		break;
	}
	return 0;
}

static uint32_t clamp32(uint64_t v)
{
	return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

int hostd_op_node_stats(const struct hostd_env *env, const Vmlet__Host__V1__HostRequest *req,
			struct hostd_reply *reply, struct vmlet_err *err)
{
	static const struct hostd_registry_visitor v = { stats_tenant, stats_pool, stats_instance };
	struct stats_acc a = { 0 };
	Vmlet__V1__NodeStats *st;

	if (hostd_registry_walk(env->registry, NULL, NULL, &v, &a, err) < 0)
		return -1;
	st = hostd_reply_alloc(reply, sizeof(*st));
	if (!st)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "out of memory");
	vmlet__v1__node_stats__init(st);
	st->tenant_count = clamp32(a.tenants);
	st->pool_count = clamp32(a.pools);
	st->created_instances = clamp32(a.created);
	st->running_instances = clamp32(a.running);
	st->warm_instances = clamp32(a.warm);
	st->sleeping_instances = clamp32(a.sleeping);
	st->stopped_instances = clamp32(a.stopped);
	st->total_vcpus_used = clamp32(a.vcpus);
	st->total_mem_used_mib = a.mem_mib;
	reply->resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT_NODE_STATS;
	reply->resp.node_stats = st;
	return 0;
}

/* ---- lists ----------------------------------------------------------------------- */

/* Pointers collected during a walk; the elements live in the reply, the
 * vector itself is temporary. */
struct ptr_vec {
	void **v;
	size_t n, cap;
};

static int ptr_vec_push(struct ptr_vec *pv, void *p, struct vmlet_err *err)
{
	if (pv->n == pv->cap) {
		size_t ncap = pv->cap ? pv->cap * 2 : 16;
		void **nv = realloc(pv->v, ncap * sizeof(*nv));

		if (!nv)
			return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "out of memory");
		pv->v = nv;
		pv->cap = ncap;
	}
	pv->v[pv->n++] = p;
	return 0;
}

/* Move the collected pointers into an array owned by the reply. */
static void **ptr_vec_finish(struct ptr_vec *pv, struct hostd_reply *reply)
{
	void **out = hostd_reply_alloc_array(reply, pv->n, sizeof(void *));

	if (out)
		memcpy(out, pv->v, pv->n * sizeof(void *));
	free(pv->v);
	pv->v = NULL;
	return out;
}

/* What a list walk collects into. An accumulator that needs more embeds it
 * as its FIRST member, so the visitor's arg is both. */
struct list_acc {
	struct hostd_reply *reply;
	struct ptr_vec vec;
};

/* Walks the registry (below tenant and pool when not NULL) with V, whose
 * callbacks push the list's elements onto acc->vec, then allocates the list
 * result message (SIZE bytes) in the reply; the caller fills it and moves
 * the elements in with ptr_vec_finish. NULL with err set on failure. */
static void *walk_list(const struct hostd_env *env, const char *tenant, const char *pool,
		       const struct hostd_registry_visitor *v, struct list_acc *acc, size_t size,
		       struct vmlet_err *err)
{
	void *res;

	if (hostd_registry_walk(env->registry, tenant, pool, v, acc, err) < 0)
		goto fail;
	res = hostd_reply_alloc(acc->reply, size);
	if (res)
		return res;
	vmlet_err_set(err, VMLET_E_INTERNAL, 0, "out of memory");
fail:
	free(acc->vec.v);
	acc->vec.v = NULL;
	return NULL;
}

struct tenants_acc {
	struct list_acc list; /* first: walk_list passes &list as the visitor's arg */
	Vmlet__V1__TenantSummary *current; /* the walk is depth first */
};

static int tenants_tenant(void *arg, const Vmlet__Host__V1__TenantRecord *t,
			  struct vmlet_err *err)
{
	struct tenants_acc *a = arg;
	struct hostd_reply *reply = a->list.reply;
	Vmlet__V1__TenantSummary *s = hostd_reply_alloc(reply, sizeof(*s));

	if (!s)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "out of memory");
	vmlet__v1__tenant_summary__init(s);
	s->tenant_id = hostd_reply_strdup(reply, t->tenant_id);
	s->tenant_net_id = t->tenant_net_id;
	s->ipv4_subnet = hostd_reply_strdup(reply, t->ipv4_subnet);
	a->current = s;
	return ptr_vec_push(&a->list.vec, s, err);
}

static int tenants_pool(void *arg, const Vmlet__Host__V1__PoolRecord *p, struct vmlet_err *err)
{
	((struct tenants_acc *)arg)->current->pool_count++;
	return 0;
}

static int tenants_instance(void *arg, const Vmlet__Host__V1__InstanceRecord *i,
			    struct vmlet_err *err)
{
	((struct tenants_acc *)arg)->current->instance_count++;
	return 0;
}

int hostd_op_list_tenants(const struct hostd_env *env, const Vmlet__Host__V1__HostRequest *req,
			  struct hostd_reply *reply, struct vmlet_err *err)
{
	static const struct hostd_registry_visitor v = { tenants_tenant, tenants_pool,
							 tenants_instance };
	struct tenants_acc a = { .list.reply = reply };
	Vmlet__V1__TenantListResult *res;

	res = walk_list(env, NULL, NULL, &v, &a.list, sizeof(*res), err);
	if (!res)
		return -1;
	vmlet__v1__tenant_list_result__init(res);
	res->n_tenants = a.list.vec.n;
	res->tenants = (Vmlet__V1__TenantSummary **)ptr_vec_finish(&a.list.vec, reply);
	reply->resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT_TENANTS;
	reply->resp.tenants = res;
	return 0;
}

Vmlet__V1__InstanceInfo *hostd_instance_info(struct hostd_reply *reply,
					     const Vmlet__Host__V1__InstanceRecord *r)
{
	Vmlet__V1__InstanceInfo *info = hostd_reply_alloc(reply, sizeof(*info));

	if (!info)
		return NULL;
	vmlet__v1__instance_info__init(info);
	info->tenant_id = hostd_reply_strdup(reply, r->tenant_id);
	info->pool_id = hostd_reply_strdup(reply, r->pool_id);
	info->instance_id = hostd_reply_strdup(reply, r->instance_id);
	info->state = r->state;
	info->ipv4_address = hostd_reply_strdup(reply, r->ipv4_address);
	info->vcpus = r->vcpus;
	info->mem_mib = r->mem_mib;
	info->created_unix = r->created_unix;
	info->state_since_unix = r->state_since_unix;
	info->tap_name = hostd_reply_strdup(reply, r->tap_name);
	info->pid = r->pid;
	info->spec_hash = hostd_reply_strdup(reply, r->spec_hash);
	info->last_error = hostd_reply_strdup(reply, r->last_error);
	return info;
}

static int instances_instance(void *arg, const Vmlet__Host__V1__InstanceRecord *i,
			      struct vmlet_err *err)
{
	struct list_acc *a = arg;
	Vmlet__V1__InstanceInfo *info = hostd_instance_info(a->reply, i);

	if (!info)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "out of memory");
	return ptr_vec_push(&a->vec, info, err);
}

int hostd_op_list_instances(const struct hostd_env *env, const Vmlet__Host__V1__HostRequest *req,
			    struct hostd_reply *reply, struct vmlet_err *err)
{
	static const struct hostd_registry_visitor v = { NULL, NULL, instances_instance };
	const Vmlet__Host__V1__ListInstancesRequest *r = req->list_instances;
	struct list_acc a = { .reply = reply };
	Vmlet__V1__InstanceListResult *res;
	bool has_tenant, has_pool;

	if (!r)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "list_instances: missing");
	has_tenant = r->tenant_id && r->tenant_id[0];
	has_pool = r->pool_id && r->pool_id[0];
	if (has_pool && !has_tenant)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "list_instances.pool_id: requires list_instances.tenant_id");
	if (has_tenant && vmlet_validate_id("list_instances.tenant_id", r->tenant_id, err) < 0)
		return -1;
	if (has_pool && vmlet_validate_id("list_instances.pool_id", r->pool_id, err) < 0)
		return -1;

	res = walk_list(env, has_tenant ? r->tenant_id : NULL, has_pool ? r->pool_id : NULL, &v, &a,
			sizeof(*res), err);
	if (!res)
		return -1;
	vmlet__v1__instance_list_result__init(res);
	res->n_instances = a.vec.n;
	res->instances = (Vmlet__V1__InstanceInfo **)ptr_vec_finish(&a.vec, reply);
	reply->resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT_INSTANCES;
	reply->resp.instances = res;
	return 0;
}

/* ---- lookup ------------------------------------------------------------------------ */

int hostd_op_lookup_instance(const struct hostd_env *env, const Vmlet__Host__V1__HostRequest *req,
			     struct hostd_reply *reply, struct vmlet_err *err)
{
	const Vmlet__Host__V1__LookupInstanceRequest *r = req->lookup_instance;
	Vmlet__Host__V1__InstanceRecord *rec = NULL;
	Vmlet__V1__InstanceInfo *info;

	if (!r)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "lookup_instance: missing");
	if (vmlet_validate_id("lookup_instance.tenant_id", r->tenant_id, err) < 0 ||
	    vmlet_validate_id("lookup_instance.pool_id", r->pool_id, err) < 0 ||
	    vmlet_validate_instance_id("lookup_instance.instance_id", r->instance_id, err) < 0)
		return -1;
	if (hostd_registry_lookup_instance(env->registry, r->tenant_id, r->pool_id,
					   r->instance_id, &rec, err) < 0)
		return -1;
	info = hostd_instance_info(reply, rec);
	protobuf_c_message_free_unpacked(&rec->base, NULL);
	if (!info)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "out of memory");
	reply->resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT_INSTANCE;
	reply->resp.instance = info;
	return 0;
}
