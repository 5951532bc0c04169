#include "hostd/ops_instance.h"

#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hostd/audit.h"
#include "hostd/lifecycle.h"
#include "hostd/ops_net.h"
#include "hostd/ops_query.h"
#include "shared/log.h"
#include "shared/validate.h"

#define SPEC_HASH_MAX 128
/* A data disk larger than 1 TiB is not something this node is asked for. */
#define DATA_DISK_MIB_MAX (1024u * 1024u)
/* STOP's graceful wait is bounded so a request cannot park a worker. */
#define GRACEFUL_MS_MAX 60000u

/* Serializes changes to the registry's tree (tenants, pools, instance
 * creation and removal) so that "does it still have instances?" and
 * "create an instance in it" cannot interleave. Instance transitions take
 * their instance's lock first and this one only around the final removal;
 * nothing takes them in the other order. */
static pthread_mutex_t tree_lock = PTHREAD_MUTEX_INITIALIZER;

void hostd_tree_lock(void)
{
	pthread_mutex_lock(&tree_lock);
}

void hostd_tree_unlock(void)
{
	pthread_mutex_unlock(&tree_lock);
}

static uint64_t now_ms_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void audit(const struct hostd_env *env, const char *tenant, const char *pool,
		  const char *instance, const char *action, int rc, const struct vmlet_err *err,
		  uint64_t start_ms)
{
	struct hostd_audit_entry e = {
		.tenant = tenant, .pool = pool, .instance = instance, .action = action,
		.err = rc < 0 ? err : NULL, .duration_ms = now_ms_mono() - start_ms,
	};
	struct vmlet_err aerr;
	char qmsg[VLOG_STR_MAX];

	if (hostd_audit_append(env->registry, &e, &aerr) < 0)
		vlog(VLOG_WARN, "audit_failed", "action=%s error=%s", action,
		     vlog_str(aerr.msg, qmsg, sizeof(qmsg)));
}

static int reply_ok(struct hostd_reply *reply, struct vmlet_err *err)
{
	Vmlet__Host__V1__Ok *ok = hostd_reply_alloc(reply, sizeof(*ok));

	if (!ok)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "out of memory");
	vmlet__host__v1__ok__init(ok);
	reply->resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT_OK;
	reply->resp.ok = ok;
	return 0;
}

static int reply_instance(struct hostd_reply *reply, const hostd_instance_rec *rec,
			  struct vmlet_err *err)
{
	Vmlet__V1__InstanceInfo *info = hostd_instance_info(reply, rec);

	if (!info)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "out of memory");
	reply->resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT_INSTANCE;
	reply->resp.instance = info;
	return 0;
}

/* "" or 1..128 of [A-Za-z0-9:._-]: a digest as the coordinator writes it
 * ("sha256:ab12..."), compared, never interpreted. */
static int check_spec_hash(const char *field, const char *s, struct vmlet_err *err)
{
	size_t n = s ? strlen(s) : 0;

	if (n > SPEC_HASH_MAX)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "%s: longer than %d characters",
				     field, SPEC_HASH_MAX);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!isascii(c) || !(isalnum(c) || c == ':' || c == '.' || c == '_' || c == '-'))
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "%s: character 0x%02x is not allowed ([A-Za-z0-9:._-])",
					     field, c);
	}
	return 0;
}

static const char *str_or_empty(const char *s)
{
	return s ? s : "";
}

/* ---- tenants ------------------------------------------------------------------------- */

struct tenant_scan {
	const char *self;
	uint32_t net_id, net, prefix;
	char conflict[VMLET_ERR_MSG_MAX];
};

static int scan_tenant(void *arg, const Vmlet__Host__V1__TenantRecord *t, struct vmlet_err *err)
{
	struct tenant_scan *s = arg;
	uint32_t net, mask, smask;
	unsigned prefix;

	if (strcmp(t->tenant_id, s->self) == 0 || s->conflict[0])
		return 0;
	if (t->tenant_net_id == s->net_id) {
		snprintf(s->conflict, sizeof(s->conflict),
			 "ensure_tenant.tenant_net_id: %u is already used by tenant %s", s->net_id,
			 t->tenant_id);
		return 0;
	}
	if (vmlet_parse_cidr4("ipv4_subnet", t->ipv4_subnet, &net, &prefix, NULL) < 0)
		return 0; /* a record that reads back invalid is skipped by the walk */
	/* Two CIDRs overlap when they agree on the shorter prefix. */
	mask = prefix ? ~0u << (32 - prefix) : 0;
	smask = s->prefix ? ~0u << (32 - s->prefix) : 0;
	if (((net ^ s->net) & (mask & smask)) == 0)
		snprintf(s->conflict, sizeof(s->conflict),
			 "ensure_tenant.ipv4_subnet: overlaps %s of tenant %s", t->ipv4_subnet,
			 t->tenant_id);
	return 0;
}

int hostd_op_ensure_tenant(const struct hostd_env *env, const Vmlet__Host__V1__HostRequest *req,
			   struct hostd_reply *reply, struct vmlet_err *err)
{
	static const struct hostd_registry_visitor v = { scan_tenant, NULL, NULL };
	const Vmlet__Host__V1__EnsureTenantRequest *r = req->ensure_tenant;
	Vmlet__Host__V1__TenantRecord *have = NULL, rec = VMLET__HOST__V1__TENANT_RECORD__INIT;
	struct tenant_scan scan = { 0 };
	uint64_t start = now_ms_mono();
	int rc;

	if (!r)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "ensure_tenant: missing");
	if (vmlet_validate_id("ensure_tenant.tenant_id", r->tenant_id, err) < 0)
		return -1;
	if (r->tenant_net_id < VMLET_NET_ID_MIN || r->tenant_net_id > VMLET_NET_ID_MAX)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "ensure_tenant.tenant_net_id: %u must be %d..%d",
				     r->tenant_net_id, VMLET_NET_ID_MIN, VMLET_NET_ID_MAX);
	if (vmlet_validate_tenant_subnet("ensure_tenant.ipv4_subnet", r->ipv4_subnet, err) < 0 ||
	    vmlet_parse_cidr4("ensure_tenant.ipv4_subnet", r->ipv4_subnet, &scan.net, &scan.prefix,
			      err) < 0)
		return -1;

	pthread_mutex_lock(&tree_lock);
	if (hostd_registry_lookup_tenant(env->registry, r->tenant_id, &have, err) == 0) {
		if (have->tenant_net_id == r->tenant_net_id &&
		    strcmp(have->ipv4_subnet, r->ipv4_subnet) == 0)
			/* already so: converge the network again (an operator may
			 * have changed it behind our back) */
			rc = hostd_net_tenant_ensure(env, r->tenant_net_id, r->ipv4_subnet, err) < 0 ||
					     hostd_net_apply(env, err) < 0 ? -1 : 0;
		else
			rc = vmlet_err_set(err, VMLET_E_CONFLICT, 0,
					   "tenant %s exists with tenant_net_id %u and ipv4_subnet "
					   "%s; changing them is not supported",
					   r->tenant_id, have->tenant_net_id, have->ipv4_subnet);
		protobuf_c_message_free_unpacked(&have->base, NULL);
		goto out;
	}
	scan.self = r->tenant_id;
	scan.net_id = r->tenant_net_id;
	if ((rc = hostd_registry_walk(env->registry, NULL, NULL, &v, &scan, err)) < 0)
		goto out;
	if (scan.conflict[0]) {
		rc = vmlet_err_set(err, VMLET_E_CONFLICT, 0, "%s", scan.conflict);
		goto out;
	}
	rec.tenant_id = r->tenant_id;
	rec.tenant_net_id = r->tenant_net_id;
	rec.ipv4_subnet = r->ipv4_subnet;
	rec.created_unix = (uint64_t)time(NULL);
	/* The bridge first: a name taken by a foreign interface (409) must
	 * leave no tenant behind. */
	if ((rc = hostd_net_tenant_ensure(env, r->tenant_net_id, r->ipv4_subnet, err)) < 0)
		goto out;
	if ((rc = hostd_registry_write_tenant(env->registry, &rec, err)) < 0) {
		struct vmlet_err rerr;

		hostd_net_tenant_remove(env, r->tenant_net_id, &rerr);
		goto out;
	}
	rc = hostd_net_apply(env, err);
out:
	pthread_mutex_unlock(&tree_lock);
	audit(env, r->tenant_id, NULL, NULL, "ensure_tenant", rc, err, start);
	return rc < 0 ? -1 : reply_ok(reply, err);
}

static int count_instance(void *arg, const Vmlet__Host__V1__InstanceRecord *i,
			  struct vmlet_err *err)
{
	(*(size_t *)arg)++;
	return 0;
}

/* Before the registry forgets the tenant (and its net id): its bridge and
 * TAPs. Not while it has instances (the registry's removal says 409 then,
 * and the network must still be there). */
static int remove_tenant_network(const struct hostd_env *env, const char *tenant_id,
				 struct vmlet_err *err)
{
	static const struct hostd_registry_visitor v = { NULL, NULL, count_instance };
	Vmlet__Host__V1__TenantRecord *t = NULL;
	size_t n = 0;
	int rc;

	if (!env->net)
		return 0;
	if (hostd_registry_lookup_tenant(env->registry, tenant_id, &t, err) < 0) {
		if (err->code != VMLET_E_NOT_FOUND)
			return -1;
		vmlet_err_clear(err);
		return 0;
	}
	rc = hostd_registry_walk(env->registry, tenant_id, NULL, &v, &n, err);
	if (rc == 0 && n == 0)
		rc = hostd_net_tenant_remove(env, t->tenant_net_id, err);
	protobuf_c_message_free_unpacked(&t->base, NULL);
	return rc;
}

int hostd_op_remove_tenant(const struct hostd_env *env, const Vmlet__Host__V1__HostRequest *req,
			   struct hostd_reply *reply, struct vmlet_err *err)
{
	const Vmlet__Host__V1__RemoveTenantRequest *r = req->remove_tenant;
	uint64_t start = now_ms_mono();
	int rc;

	if (!r)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "remove_tenant: missing");
	if (vmlet_validate_id("remove_tenant.tenant_id", r->tenant_id, err) < 0)
		return -1;
	pthread_mutex_lock(&tree_lock);
	rc = remove_tenant_network(env, r->tenant_id, err);
	if (rc == 0)
		rc = hostd_registry_remove_tenant(env->registry, r->tenant_id, err);
	if (rc == 0)
		rc = hostd_net_apply(env, err);
	pthread_mutex_unlock(&tree_lock);
	if (rc < 0) {
		/* The tenant (and its audit log) is still there: record why. */
		audit(env, r->tenant_id, NULL, NULL, "remove_tenant", rc, err, start);
		return -1;
	}
	/* Its audit log went with it (the tenant's files are wiped as a
	 * whole); hostd's own log keeps the removal. */
	vlog(VLOG_INFO, "tenant_removed", "tenant=%s", r->tenant_id);
	return reply_ok(reply, err);
}

/* ---- pools ----------------------------------------------------------------------------- */

int hostd_op_ensure_pool(const struct hostd_env *env, const Vmlet__Host__V1__HostRequest *req,
			 struct hostd_reply *reply, struct vmlet_err *err)
{
	const Vmlet__Host__V1__EnsurePoolRequest *r = req->ensure_pool;
	Vmlet__Host__V1__PoolRecord *have = NULL, rec = VMLET__HOST__V1__POOL_RECORD__INIT;
	Vmlet__Host__V1__TenantRecord *tenant = NULL;
	uint64_t start = now_ms_mono();
	int rc;

	if (!r)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "ensure_pool: missing");
	if (vmlet_validate_id("ensure_pool.tenant_id", r->tenant_id, err) < 0 ||
	    vmlet_validate_id("ensure_pool.pool_id", r->pool_id, err) < 0 ||
	    check_spec_hash("ensure_pool.spec_hash", r->spec_hash, err) < 0)
		return -1;
	pthread_mutex_lock(&tree_lock);
	if ((rc = hostd_registry_lookup_tenant(env->registry, r->tenant_id, &tenant, err)) < 0) {
		pthread_mutex_unlock(&tree_lock);
		return -1; /* no tenant: no audit log to write to */
	}
	protobuf_c_message_free_unpacked(&tenant->base, NULL);
	rec.tenant_id = r->tenant_id;
	rec.pool_id = r->pool_id;
	rec.spec_hash = (char *)str_or_empty(r->spec_hash);
	rec.created_unix = (uint64_t)time(NULL);
	if (hostd_registry_lookup_pool(env->registry, r->tenant_id, r->pool_id, &have, NULL) == 0) {
		/* Ensure means "make it so": a new spec_hash replaces the old
		 * one (the pool's desired spec changed); same one: nothing. */
		bool same = strcmp(have->spec_hash, rec.spec_hash) == 0;

		rec.created_unix = have->created_unix;
		protobuf_c_message_free_unpacked(&have->base, NULL);
		if (same) {
			pthread_mutex_unlock(&tree_lock);
			audit(env, r->tenant_id, r->pool_id, NULL, "ensure_pool", 0, err, start);
			return reply_ok(reply, err);
		}
	}
	rc = hostd_registry_write_pool(env->registry, &rec, err);
	pthread_mutex_unlock(&tree_lock);
	audit(env, r->tenant_id, r->pool_id, NULL, "ensure_pool", rc, err, start);
	return rc < 0 ? -1 : reply_ok(reply, err);
}

int hostd_op_remove_pool(const struct hostd_env *env, const Vmlet__Host__V1__HostRequest *req,
			 struct hostd_reply *reply, struct vmlet_err *err)
{
	const Vmlet__Host__V1__RemovePoolRequest *r = req->remove_pool;
	uint64_t start = now_ms_mono();
	int rc;

	if (!r)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "remove_pool: missing");
	if (vmlet_validate_id("remove_pool.tenant_id", r->tenant_id, err) < 0 ||
	    vmlet_validate_id("remove_pool.pool_id", r->pool_id, err) < 0)
		return -1;
	pthread_mutex_lock(&tree_lock);
	rc = hostd_registry_remove_pool(env->registry, r->tenant_id, r->pool_id, err);
	pthread_mutex_unlock(&tree_lock);
	audit(env, r->tenant_id, r->pool_id, NULL, "remove_pool", rc, err, start);
	return rc < 0 ? -1 : reply_ok(reply, err);
}

/* ---- create ----------------------------------------------------------------------------- */

/* Instance ids are chosen by the caller, but the jail dir and the cgroup
 * are named by the instance id alone: an id must be unique on the node,
 * not just in its pool. */
struct id_scan {
	const char *instance_id;
	char where[2 * VMLET_ID_MAX + 2];
};

static int scan_instance(void *arg, const Vmlet__Host__V1__InstanceRecord *i,
			 struct vmlet_err *err)
{
	struct id_scan *s = arg;

	if (!s->where[0] && strcmp(i->instance_id, s->instance_id) == 0)
		snprintf(s->where, sizeof(s->where), "%s/%s", i->tenant_id, i->pool_id);
	return 0;
}

static int check_create(const Vmlet__Host__V1__CreateInstanceRequest *r, struct vmlet_err *err)
{
	const Vmlet__Host__V1__InstanceSpec *s = r->spec;

	if (vmlet_validate_id("create_instance.tenant_id", r->tenant_id, err) < 0 ||
	    vmlet_validate_id("create_instance.pool_id", r->pool_id, err) < 0 ||
	    vmlet_validate_instance_id("create_instance.instance_id", r->instance_id, err) < 0)
		return -1;
	if (strcmp(r->instance_id, HOSTD_PROBE_INSTANCE) == 0)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "create_instance.instance_id: %s is reserved (hostd's KVM probe)",
				     HOSTD_PROBE_INSTANCE);
	if (!s)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "create_instance.spec: missing");
	if (s->vcpus < VMLET_VCPUS_MIN || s->vcpus > VMLET_VCPUS_MAX)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "create_instance.spec.vcpus: %u must be %d..%d", s->vcpus,
				     VMLET_VCPUS_MIN, VMLET_VCPUS_MAX);
	if (s->mem_mib < VMLET_MEM_MIB_MIN || s->mem_mib > VMLET_MEM_MIB_MAX)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "create_instance.spec.mem_mib: %u must be %d..%d", s->mem_mib,
				     VMLET_MEM_MIB_MIN, VMLET_MEM_MIB_MAX);
	if (s->data_disk_mib > DATA_DISK_MIB_MAX)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "create_instance.spec.data_disk_mib: %u is more than %u",
				     s->data_disk_mib, DATA_DISK_MIB_MAX);
	/* An image names an entry of the image store: an id, never a path. */
	if (vmlet_validate_id("create_instance.spec.image", s->image, err) < 0)
		return vmlet_err_prefix(err, "(an image name, not a path) ");
	return check_spec_hash("create_instance.spec.spec_hash", s->spec_hash, err);
}

static bool same_spec(const hostd_instance_rec *have, const Vmlet__Host__V1__InstanceSpec *s)
{
	return have->vcpus == s->vcpus && have->mem_mib == s->mem_mib &&
	       have->data_disk_mib == s->data_disk_mib && strcmp(have->image, s->image) == 0 &&
	       strcmp(have->spec_hash, str_or_empty(s->spec_hash)) == 0;
}

int hostd_op_create_instance(const struct hostd_env *env,
			     const Vmlet__Host__V1__HostRequest *req, struct hostd_reply *reply,
			     struct vmlet_err *err)
{
	static const struct hostd_registry_visitor v = { NULL, NULL, scan_instance };
	const Vmlet__Host__V1__CreateInstanceRequest *r = req->create_instance;
	hostd_instance_rec *have = NULL, rec = VMLET__HOST__V1__INSTANCE_RECORD__INIT;
	Vmlet__Host__V1__PoolRecord *pool = NULL;
	struct id_scan scan = { 0 };
	uint64_t start = now_ms_mono();
	char addr[INET_ADDRSTRLEN], tap[NET_IFNAME_MAX];
	unsigned net_index = 0;
	int rc;

	if (!r)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "create_instance: missing");
	if (check_create(r, err) < 0)
		return -1;
	pthread_mutex_lock(&tree_lock);
	if (hostd_registry_lookup_pool(env->registry, r->tenant_id, r->pool_id, &pool, err) < 0) {
		pthread_mutex_unlock(&tree_lock);
		return -1;
	}
	protobuf_c_message_free_unpacked(&pool->base, NULL);
	if (hostd_registry_lookup_instance(env->registry, r->tenant_id, r->pool_id,
					   r->instance_id, &have, NULL) == 0) {
		/* A retried create: same spec -> the instance as it is. */
		if (same_spec(have, r->spec))
			rc = reply_instance(reply, have, err);
		else
			rc = vmlet_err_set(err, VMLET_E_CONFLICT, 0,
					   "instance %s/%s/%s exists with a different spec",
					   r->tenant_id, r->pool_id, r->instance_id);
		protobuf_c_message_free_unpacked(&have->base, NULL);
		pthread_mutex_unlock(&tree_lock);
		audit(env, r->tenant_id, r->pool_id, r->instance_id, "create", rc, err, start);
		return rc;
	}
	scan.instance_id = r->instance_id;
	if ((rc = hostd_registry_walk(env->registry, NULL, NULL, &v, &scan, err)) == 0 &&
	    scan.where[0])
		rc = vmlet_err_set(err, VMLET_E_CONFLICT, 0,
				   "create_instance.instance_id: %s is already used by pool %s "
				   "(instance ids are unique on a node)",
				   r->instance_id, scan.where);
	if (rc == 0) {
		Vmlet__Host__V1__TenantRecord *tenant = NULL;

		rc = hostd_registry_lookup_tenant(env->registry, r->tenant_id, &tenant, err);
		if (rc == 0) {
			rc = hostd_net_allocate(env->registry, tenant, &net_index, addr, tap, err);
			protobuf_c_message_free_unpacked(&tenant->base, NULL);
		}
	}
	if (rc == 0) {
		rec.ipv4_address = addr;
		rec.tap_name = tap;
		rec.net_index = net_index;
		rec.tenant_id = r->tenant_id;
		rec.pool_id = r->pool_id;
		rec.instance_id = r->instance_id;
		rec.state = VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_CREATED;
		rec.vcpus = r->spec->vcpus;
		rec.mem_mib = r->spec->mem_mib;
		rec.data_disk_mib = r->spec->data_disk_mib;
		rec.image = r->spec->image;
		rec.spec_hash = (char *)str_or_empty(r->spec->spec_hash);
		rec.created_unix = rec.state_since_unix = (uint64_t)time(NULL);
		rc = hostd_registry_write_instance(env->registry, &rec, err);
	}
	/* No rules yet: they are applied when its TAP is attached (START),
	 * and until then the bridge table drops anything from a TAP that has
	 * none. (An apply replaces whole tables; its kernel cost is paid
	 * where it buys something.) */
	pthread_mutex_unlock(&tree_lock);
	audit(env, r->tenant_id, r->pool_id, r->instance_id, "create", rc, err, start);
	return rc < 0 ? -1 : reply_instance(reply, &rec, err);
}

/* ---- transitions ---------------------------------------------------------------------- */

static void lower(char *dst, size_t cap, const char *src)
{
	size_t i;

	for (i = 0; src[i] && i + 1 < cap; i++)
		dst[i] = (char)tolower((unsigned char)src[i]);
	dst[i] = '\0';
}

int hostd_op_instance_action(const struct hostd_env *env,
			     const Vmlet__Host__V1__HostRequest *req, struct hostd_reply *reply,
			     struct vmlet_err *err)
{
	const Vmlet__Host__V1__InstanceActionRequest *r = req->instance_action;
	const struct lc_transition *t;
	hostd_instance_rec *rec = NULL;
	struct lc_args args = { 0 };
	uint64_t start = now_ms_mono();
	char action[16];
	int rc;

	if (!r)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "instance_action: missing");
	if (vmlet_validate_id("instance_action.tenant_id", r->tenant_id, err) < 0 ||
	    vmlet_validate_id("instance_action.pool_id", r->pool_id, err) < 0 ||
	    vmlet_validate_instance_id("instance_action.instance_id", r->instance_id, err) < 0)
		return -1;
	/* The strict decoder already refuses enum values it does not know;
	 * the table is the second check (UNSPECIFIED has no row). */
	t = lc_transition_find((int)r->action);
	if (!t)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "instance_action.action: %d is not an action", (int)r->action);
	if (r->graceful_ms > GRACEFUL_MS_MAX)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "instance_action.graceful_ms: %u is more than %u",
				     r->graceful_ms, GRACEFUL_MS_MAX);
	args.graceful_ms = r->graceful_ms;
	lower(action, sizeof(action), t->name);

	hostd_instance_lock(r->tenant_id, r->pool_id, r->instance_id);
	rc = hostd_registry_lookup_instance(env->registry, r->tenant_id, r->pool_id,
					    r->instance_id, &rec, err);
	if (rc < 0) {
		hostd_instance_unlock(r->tenant_id, r->pool_id, r->instance_id);
		if (err->code != VMLET_E_NOT_FOUND ||
		    t->action != VMLET__HOST__V1__INSTANCE_ACTION__INSTANCE_ACTION_DESTROY)
			return -1;
		/* Destroying what is not there is done already. */
		hostd_instance_rec gone = VMLET__HOST__V1__INSTANCE_RECORD__INIT;

		vmlet_err_clear(err);
		gone.tenant_id = r->tenant_id;
		gone.pool_id = r->pool_id;
		gone.instance_id = r->instance_id;
		gone.state = VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_DESTROYED;
		return reply_instance(reply, &gone, err);
	}
	rc = lc_transition_check(t, rec, err);
	if (rc == 1) {
		rc = 0; /* already in the target state: nothing to do */
	} else if (rc == 0 && !t->run) {
		rc = vmlet_err_set(err, VMLET_E_NOT_IMPLEMENTED, 0,
				   "%s is not available on this node yet", t->name);
	} else if (rc == 0 && !env->runtime) {
		rc = vmlet_err_set(err, VMLET_E_UNAVAILABLE, 0,
				   "%s instance %s/%s/%s: the instance runtime is not running",
				   t->name, r->tenant_id, r->pool_id, r->instance_id);
	} else if (rc == 0) {
		rc = t->run(env->runtime, rec, &args, err);
		if (rc < 0)
			vmlet_err_prefix(err, "%s instance %s/%s/%s: ", t->name, r->tenant_id,
					 r->pool_id, r->instance_id);
	}
	/* The instance's address and index are free again with its record;
	 * its TAP and rules go now. */
	if (rc == 0 && t->action == VMLET__HOST__V1__INSTANCE_ACTION__INSTANCE_ACTION_DESTROY &&
	    hostd_net_instance_detach(env, rec, err) < 0)
		rc = vmlet_err_prefix(err, "destroy instance %s/%s/%s: ", r->tenant_id, r->pool_id,
				      r->instance_id);
	hostd_instance_unlock(r->tenant_id, r->pool_id, r->instance_id);
	/* DESTROY wipes the tenant's files of the instance, not the tenant's
	 * audit log, so every action is audited here. */
	audit(env, r->tenant_id, r->pool_id, r->instance_id, action, rc, err, start);
	if (rc == 0)
		rc = reply_instance(reply, rec, err);
	protobuf_c_message_free_unpacked(&rec->base, NULL);
	return rc;
}
