#include "hostd/ops_net.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hostd/ops_instance.h"
#include "shared/cleanup.h"
#include "shared/log.h"
#include "shared/validate.h"

struct hostd_net {
	char uplink[IFNAMSIZ];
	struct nft_whitelist whitelist;
	/* One apply at a time: each reads the registry afresh, so whichever
	 * runs last leaves the kernel matching the registry as it is then. */
	pthread_mutex_t apply_lock;
};

int hostd_net_open(struct hostd_net **out, const struct vmlet_config *cfg,
		   struct vmlet_err *err)
{
	struct hostd_net *net = calloc(1, sizeof(*net));

	*out = NULL;
	if (!net)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "out of memory");
	if (nft_whitelist_parse(cfg->port_whitelist, &net->whitelist, err) < 0) {
		free(net);
		return vmlet_err_prefix(err, "config: [hostd] port_whitelist: ");
	}
	if (strlen(cfg->uplink) >= sizeof(net->uplink)) {
		free(net);
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "config: [hostd] uplink: longer than %d characters",
				     IFNAMSIZ - 1);
	}
	snprintf(net->uplink, sizeof(net->uplink), "%s", cfg->uplink);
	pthread_mutex_init(&net->apply_lock, NULL);
	*out = net;
	return 0;
}

void hostd_net_close(struct hostd_net *net)
{
	if (!net)
		return;
	pthread_mutex_destroy(&net->apply_lock);
	free(net);
}

const struct nft_whitelist *hostd_net_whitelist(const struct hostd_net *net)
{
	return net ? &net->whitelist : NULL;
}

static const char *proto_word(uint32_t proto)
{
	return proto == NFT_PROTO_TCP ? "tcp" : proto == NFT_PROTO_UDP ? "udp" : "?";
}

static void addr_format(uint32_t host_order, char out[INET_ADDRSTRLEN])
{
	struct in_addr a = { htonl(host_order) };

	if (!inet_ntop(AF_INET, &a, out, INET_ADDRSTRLEN))
		snprintf(out, INET_ADDRSTRLEN, "?");
}

/* A dotted quad, nothing else (inet_pton's AF_INET is exactly that). */
static int addr_parse(const char *s, uint32_t *host_order)
{
	struct in_addr a;

	if (!s || inet_pton(AF_INET, s, &a) != 1)
		return -1;
	*host_order = ntohl(a.s_addr);
	return 0;
}

/* ---- the registry as a model ------------------------------------------------------ */

struct inst_key {
	char tenant[VMLET_ID_MAX], pool[VMLET_ID_MAX], instance[VMLET_ID_MAX];
	uint32_t net_id, addr, uid, gid;
	unsigned index;
	int state;
	uint32_t pid;
	char tap[IFNAMSIZ];
};

struct pending_pub {
	char tenant[VMLET_ID_MAX], pool[VMLET_ID_MAX], instance[VMLET_ID_MAX];
	uint32_t net_id, proto, host_port, guest_port;
};

struct tenant_key {
	char tenant[VMLET_ID_MAX];
	char subnet[32];
};

struct reg_model {
	struct nft_model m;
	struct nft_tenant *tenants;
	struct tenant_key *tkeys;
	size_t n_tenants, cap_tenants;
	struct nft_instance *instances;
	struct inst_key *ikeys;
	size_t n_instances, cap_instances;
	struct nft_publish *publishes;
	size_t n_publishes;
	struct pending_pub *pending;
	size_t n_pending, cap_pending;
	/* the tenant being walked (its instances follow it) */
	uint32_t cur_net_id;
	bool cur_ok;
};

static void reg_model_free(struct reg_model *rm)
{
	free(rm->tenants);
	free(rm->tkeys);
	free(rm->instances);
	free(rm->ikeys);
	free(rm->publishes);
	free(rm->pending);
	memset(rm, 0, sizeof(*rm));
}

static int grow(void **p, size_t *cap, size_t n, size_t elem, struct vmlet_err *err)
{
	void *q;
	size_t ncap;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 16;
	q = realloc(*p, ncap * elem);
	if (!q)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "out of memory");
	*p = q;
	*cap = ncap;
	return 0;
}

static int rm_tenant(void *arg, const Vmlet__Host__V1__TenantRecord *t, struct vmlet_err *err)
{
	struct reg_model *rm = arg;
	struct nft_tenant *nt;
	size_t cap;

	rm->cur_ok = false;
	rm->cur_net_id = t->tenant_net_id;
	cap = rm->cap_tenants;
	if (grow((void **)&rm->tenants, &cap, rm->n_tenants, sizeof(*rm->tenants), err) < 0 ||
	    grow((void **)&rm->tkeys, &rm->cap_tenants, rm->n_tenants, sizeof(*rm->tkeys), err) < 0)
		return -1;
	nt = &rm->tenants[rm->n_tenants];
	memset(nt, 0, sizeof(*nt));
	nt->net_id = t->tenant_net_id;
	if (net_bridge_name(t->tenant_net_id, nt->bridge, NULL) < 0 ||
	    vmlet_parse_cidr4("ipv4_subnet", t->ipv4_subnet, &nt->subnet, &nt->prefix, NULL) < 0)
		return 0; /* the registry validated it; skip rather than fail all */
	snprintf(rm->tkeys[rm->n_tenants].tenant, VMLET_ID_MAX, "%s", t->tenant_id);
	snprintf(rm->tkeys[rm->n_tenants].subnet, 32, "%s", t->ipv4_subnet);
	rm->n_tenants++;
	rm->cur_ok = true;
	for (size_t i = 0; i < t->n_publishes; i++) {
		const Vmlet__Host__V1__PublishedPort *p = t->publishes[i];
		struct pending_pub *pp;

		if (grow((void **)&rm->pending, &rm->cap_pending, rm->n_pending,
			 sizeof(*rm->pending), err) < 0)
			return -1;
		pp = &rm->pending[rm->n_pending++];
		snprintf(pp->tenant, sizeof(pp->tenant), "%s", t->tenant_id);
		snprintf(pp->pool, sizeof(pp->pool), "%s", p->pool_id);
		snprintf(pp->instance, sizeof(pp->instance), "%s", p->instance_id);
		pp->net_id = t->tenant_net_id;
		pp->proto = (uint32_t)p->proto;
		pp->host_port = p->host_port;
		pp->guest_port = p->guest_port;
	}
	return 0;
}

static int rm_instance(void *arg, const Vmlet__Host__V1__InstanceRecord *i, struct vmlet_err *err)
{
	struct reg_model *rm = arg;
	char want[NET_IFNAME_MAX], q[VLOG_STR_MAX];
	struct inst_key *k;
	uint32_t addr;
	size_t cap;

	if (!rm->cur_ok || !i->tap_name[0] || !i->ipv4_address[0])
		return 0; /* no network (created before networking existed) */
	if (net_tap_name(rm->cur_net_id, i->net_index, want, NULL) < 0 ||
	    strcmp(want, i->tap_name) != 0 || addr_parse(i->ipv4_address, &addr) < 0) {
		vlog(VLOG_WARN, "net_record_skipped", "instance=%s reason=\"tap_name or address "
		     "does not match its tenant\"", vlog_str(i->instance_id, q, sizeof(q)));
		return 0;
	}
	cap = rm->cap_instances;
	if (grow((void **)&rm->instances, &cap, rm->n_instances, sizeof(*rm->instances), err) < 0 ||
	    grow((void **)&rm->ikeys, &rm->cap_instances, rm->n_instances, sizeof(*rm->ikeys),
		 err) < 0)
		return -1;
	memset(&rm->instances[rm->n_instances], 0, sizeof(rm->instances[0]));
	rm->instances[rm->n_instances].net_id = rm->cur_net_id;
	snprintf(rm->instances[rm->n_instances].tap, IFNAMSIZ, "%s", want);
	rm->instances[rm->n_instances].addr = addr;
	k = &rm->ikeys[rm->n_instances];
	memset(k, 0, sizeof(*k));
	snprintf(k->tenant, sizeof(k->tenant), "%s", i->tenant_id);
	snprintf(k->pool, sizeof(k->pool), "%s", i->pool_id);
	snprintf(k->instance, sizeof(k->instance), "%s", i->instance_id);
	snprintf(k->tap, sizeof(k->tap), "%s", want);
	k->net_id = rm->cur_net_id;
	k->addr = addr;
	k->uid = i->uid;
	k->gid = i->gid;
	k->index = i->net_index;
	k->state = (int)i->state;
	k->pid = i->pid;
	rm->n_instances++;
	return 0;
}

static const struct inst_key *find_inst(const struct reg_model *rm, const char *tenant,
					const char *pool, const char *instance)
{
	for (size_t i = 0; i < rm->n_instances; i++)
		if (!strcmp(rm->ikeys[i].tenant, tenant) && !strcmp(rm->ikeys[i].pool, pool) &&
		    !strcmp(rm->ikeys[i].instance, instance))
			return &rm->ikeys[i];
	return NULL;
}

/* The model of the whole registry. A publish whose instance has no
 * network (or is gone) is kept in the registry but not rendered. */
static int reg_model_build(const struct hostd_env *env, struct reg_model *rm,
			   struct vmlet_err *err)
{
	static const struct hostd_registry_visitor v = { rm_tenant, NULL, rm_instance };

	memset(rm, 0, sizeof(*rm));
	if (hostd_registry_walk(env->registry, NULL, NULL, &v, rm, err) < 0) {
		reg_model_free(rm);
		return -1;
	}
	if (rm->n_pending) {
		rm->publishes = calloc(rm->n_pending, sizeof(*rm->publishes));
		if (!rm->publishes) {
			reg_model_free(rm);
			return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "out of memory");
		}
	}
	for (size_t i = 0; i < rm->n_pending; i++) {
		const struct pending_pub *pp = &rm->pending[i];
		const struct inst_key *k = find_inst(rm, pp->tenant, pp->pool, pp->instance);
		struct nft_publish *p;

		if (!k)
			continue;
		p = &rm->publishes[rm->n_publishes++];
		p->net_id = pp->net_id;
		p->proto = pp->proto;
		p->host_port = pp->host_port;
		p->addr = k->addr;
		p->guest_port = pp->guest_port;
	}
	if (env->net)
		snprintf(rm->m.uplink, sizeof(rm->m.uplink), "%s", env->net->uplink);
	rm->m.tenants = rm->tenants;
	rm->m.n_tenants = rm->n_tenants;
	rm->m.instances = rm->instances;
	rm->m.n_instances = rm->n_instances;
	rm->m.publishes = rm->publishes;
	rm->m.n_publishes = rm->n_publishes;
	return 0;
}

int hostd_net_apply(const struct hostd_env *env, struct vmlet_err *err)
{
	struct reg_model rm;
	int rc;

	if (!env->net)
		return 0;
	pthread_mutex_lock(&env->net->apply_lock);
	rc = reg_model_build(env, &rm, err);
	if (rc == 0) {
		rc = nft_apply(&rm.m, err);
		if (rc < 0)
			vmlet_err_prefix(err, "applying vmlet's nftables rules: ");
		else
			vlog(VLOG_DEBUG, "net_rules_applied", "tenants=%zu instances=%zu publishes=%zu",
			     rm.n_tenants, rm.n_instances, rm.n_publishes);
		reg_model_free(&rm);
	}
	pthread_mutex_unlock(&env->net->apply_lock);
	return rc;
}

/* ---- tenants ------------------------------------------------------------------------- */

int hostd_net_tenant_ensure(const struct hostd_env *env, unsigned net_id, const char *subnet,
			    struct vmlet_err *err)
{
	struct net_ctx *ctx = NULL;
	int rc;

	if (!env->net)
		return 0;
	if (net_open(&ctx, err) < 0)
		return -1;
	rc = net_bridge_ensure(ctx, net_id, subnet, NULL, err);
	net_close(ctx);
	if (rc < 0)
		return -1;
	return net_ip_forward_enable(err);
}

int hostd_net_tenant_remove(const struct hostd_env *env, unsigned net_id, struct vmlet_err *err)
{
	struct net_ctx *ctx = NULL;
	int rc;

	if (!env->net)
		return 0;
	if (net_open(&ctx, err) < 0)
		return -1;
	rc = net_bridge_remove(ctx, net_id, err);
	net_close(ctx);
	return rc;
}

/* ---- start-up ---------------------------------------------------------------------- */

static bool accounted(const struct reg_model *rm, const struct net_link *l)
{
	if (l->role == NET_ROLE_BRIDGE) {
		for (size_t i = 0; i < rm->n_tenants; i++)
			if (rm->tenants[i].net_id == l->net_id)
				return true;
		return false;
	}
	for (size_t i = 0; i < rm->n_instances; i++)
		if (rm->ikeys[i].net_id == l->net_id && rm->ikeys[i].index == l->index)
			return true;
	return false;
}

int hostd_net_restore(const struct hostd_env *env, struct vmlet_err *err)
{
	_cleanup_free_ struct net_link *ours = NULL, *reap = NULL;
	struct net_ctx *ctx = NULL;
	struct reg_model rm;
	size_t n = 0, n_reap = 0;
	char q[VLOG_STR_MAX];
	int rc = -1;

	if (!env->net)
		return 0;
	if (reg_model_build(env, &rm, err) < 0)
		return -1;
	if (net_open(&ctx, err) < 0 || net_list_ours(ctx, &ours, &n, err) < 0)
		goto out;
	reap = calloc(n ? n : 1, sizeof(*reap));
	if (!reap) {
		vmlet_err_set(err, VMLET_E_INTERNAL, 0, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (!accounted(&rm, &ours[i])) {
			vlog(VLOG_INFO, "net_reap", "ifname=%s reason=\"no registry record\"",
			     ours[i].name);
			reap[n_reap++] = ours[i];
		}
	if (n_reap && net_remove_links(ctx, reap, n_reap, err) < 0)
		goto out;
	for (size_t i = 0; i < rm.n_tenants; i++) {
		struct vmlet_err terr;

		if (net_bridge_ensure(ctx, rm.tenants[i].net_id, rm.tkeys[i].subnet, NULL, &terr) < 0)
			vlog(VLOG_WARN, "net_tenant_failed", "tenant=%s error=%s", rm.tkeys[i].tenant,
			     vlog_str(terr.msg, q, sizeof(q)));
	}
	/* A TAP of ours that survived (its VMM may still run) goes back on
	 * its bridge with its owner, if someone moved it. */
	for (size_t i = 0; i < n; i++) {
		const struct net_link *l = &ours[i];
		struct vmlet_err terr;

		if (l->role != NET_ROLE_TAP)
			continue;
		for (size_t j = 0; j < rm.n_instances; j++) {
			const struct inst_key *k = &rm.ikeys[j];

			if (k->net_id != l->net_id || k->index != l->index || k->uid < 65536 ||
			    k->gid < 65536)
				continue;
			if (net_tap_ensure(ctx, k->net_id, k->index, k->uid, k->gid, NULL, &terr) < 0)
				vlog(VLOG_WARN, "net_tap_failed", "tap=%s error=%s", k->tap,
				     vlog_str(terr.msg, q, sizeof(q)));
		}
	}
	if (rm.n_tenants && net_ip_forward_enable(err) < 0)
		goto out;
	rc = hostd_net_apply(env, err);
out:
	net_close(ctx);
	reg_model_free(&rm);
	if (rc < 0)
		vmlet_err_prefix(err, "restoring the tenant networks: ");
	return rc;
}

/* ---- allocation ---------------------------------------------------------------------- */

struct alloc_scan {
	uint32_t base, count;     /* host addresses .2 .. broadcast-1: base, count of them */
	uint8_t *addr_used;       /* count entries */
	uint8_t *index_used;      /* NET_INDEX_MAX + 1 entries */
};

static int scan_alloc(void *arg, const Vmlet__Host__V1__InstanceRecord *i, struct vmlet_err *err)
{
	struct alloc_scan *s = arg;
	uint32_t a;

	if (!i->tap_name[0] && !i->ipv4_address[0])
		return 0;
	if (i->net_index <= NET_INDEX_MAX)
		s->index_used[i->net_index] = 1;
	if (addr_parse(i->ipv4_address, &a) == 0 && a >= s->base && a - s->base < s->count)
		s->addr_used[a - s->base] = 1;
	return 0;
}

int hostd_net_allocate(const struct hostd_registry *reg,
		       const Vmlet__Host__V1__TenantRecord *tenant, unsigned *index,
		       char addr[INET_ADDRSTRLEN], char tap[NET_IFNAME_MAX], struct vmlet_err *err)
{
	static const struct hostd_registry_visitor v = { NULL, NULL, scan_alloc };
	_cleanup_free_ uint8_t *addr_used = NULL, *index_used = NULL;
	struct alloc_scan s = { 0 };
	uint32_t net, size;
	unsigned prefix, idx;
	size_t a;

	if (vmlet_parse_cidr4("ipv4_subnet", tenant->ipv4_subnet, &net, &prefix, err) < 0)
		return -1;
	if (prefix < 16 || prefix > 30)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "tenant %s: ipv4_subnet %s has no room for guests",
				     tenant->tenant_id, tenant->ipv4_subnet);
	size = 1u << (32 - prefix);
	/* network, gateway (.1) and broadcast are never a guest's */
	s.base = net + 2;
	s.count = size - 3;
	addr_used = s.addr_used = calloc(s.count, 1);
	index_used = s.index_used = calloc(NET_INDEX_MAX + 1, 1);
	if (!addr_used || !index_used)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "out of memory");
	if (hostd_registry_walk(reg, tenant->tenant_id, NULL, &v, &s, err) < 0)
		return -1;
	for (a = 0; a < s.count && addr_used[a]; a++)
		;
	if (a == s.count)
		return vmlet_err_set(err, VMLET_E_CONFLICT, 0,
				     "tenant %s: subnet %s is full (%u guest addresses, all held by "
				     "instances)",
				     tenant->tenant_id, tenant->ipv4_subnet, s.count);
	for (idx = 0; idx <= NET_INDEX_MAX && index_used[idx]; idx++)
		;
	if (idx > NET_INDEX_MAX)
		return vmlet_err_set(err, VMLET_E_CONFLICT, 0,
				     "tenant %s: all %u network indexes are in use",
				     tenant->tenant_id, NET_INDEX_MAX + 1);
	if (net_tap_name(tenant->tenant_net_id, idx, tap, err) < 0)
		return -1;
	addr_format(s.base + (uint32_t)a, addr);
	*index = idx;
	return 0;
}

/* ---- instances ------------------------------------------------------------------------ */

static int instance_net(const struct hostd_env *env, const Vmlet__Host__V1__InstanceRecord *rec,
			Vmlet__Host__V1__TenantRecord **tenant, struct vmlet_err *err)
{
	char want[NET_IFNAME_MAX];
	uint32_t a;

	if (!rec->tap_name || !rec->tap_name[0] || !rec->ipv4_address || !rec->ipv4_address[0])
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "instance %s/%s/%s has no network (created before networking?)",
				     rec->tenant_id, rec->pool_id, rec->instance_id);
	if (hostd_registry_lookup_tenant(env->registry, rec->tenant_id, tenant, err) < 0)
		return -1;
	if (net_tap_name((*tenant)->tenant_net_id, rec->net_index, want, err) < 0 ||
	    strcmp(want, rec->tap_name) != 0 || addr_parse(rec->ipv4_address, &a) < 0) {
		protobuf_c_message_free_unpacked(&(*tenant)->base, NULL);
		*tenant = NULL;
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "instance %s/%s/%s: tap_name %s / address %s do not belong to "
				     "its tenant's network",
				     rec->tenant_id, rec->pool_id, rec->instance_id, rec->tap_name,
				     rec->ipv4_address);
	}
	return 0;
}

int hostd_net_instance_attach(const struct hostd_env *env,
			      const Vmlet__Host__V1__InstanceRecord *rec, int *tap_fd,
			      uint8_t mac[NET_MAC_LEN], char cmdline[HOSTD_NET_CMDLINE_MAX],
			      struct vmlet_err *err)
{
	Vmlet__Host__V1__TenantRecord *tenant = NULL;
	struct net_ctx *ctx = NULL;
	char gw[INET_ADDRSTRLEN];
	uint32_t gateway;
	unsigned prefix;
	int fd = -1, rc = -1;

	*tap_fd = -1;
	if (!env->net)
		return vmlet_err_set(err, VMLET_E_UNAVAILABLE, 0,
				     "the tenant networks are not managed by this hostd");
	if (instance_net(env, rec, &tenant, err) < 0)
		return -1;
	if (rec->uid < 65536 || rec->gid < 65536) {
		vmlet_err_set(err, VMLET_E_INVALID, 0,
			      "instance %s/%s/%s: no per-instance uid/gid to own its TAP",
			      rec->tenant_id, rec->pool_id, rec->instance_id);
		goto out;
	}
	if (net_gateway(tenant->ipv4_subnet, &gateway, &prefix, err) < 0 ||
	    net_guest_mac(tenant->tenant_net_id, rec->net_index, mac, err) < 0 ||
	    net_open(&ctx, err) < 0 ||
	    net_tap_ensure(ctx, tenant->tenant_net_id, rec->net_index, rec->uid, rec->gid, NULL,
			   err) < 0 ||
	    net_tap_open_fd(ctx, tenant->tenant_net_id, rec->net_index, &fd, err) < 0)
		goto out;
	addr_format(gateway, gw);
	snprintf(cmdline, HOSTD_NET_CMDLINE_MAX, "vmlet.ip=%s/%u vmlet.gw=%s", rec->ipv4_address,
		 prefix, gw);
	if (hostd_net_apply(env, err) < 0)
		goto out;
	*tap_fd = fd;
	fd = -1;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	net_close(ctx);
	protobuf_c_message_free_unpacked(&tenant->base, NULL);
	if (rc < 0)
		vmlet_err_prefix(err, "network of %s/%s/%s: ", rec->tenant_id, rec->pool_id,
				 rec->instance_id);
	return rc;
}

int hostd_net_instance_detach(const struct hostd_env *env,
			      const Vmlet__Host__V1__InstanceRecord *rec, struct vmlet_err *err)
{
	Vmlet__Host__V1__TenantRecord *tenant = NULL;
	struct net_ctx *ctx = NULL;
	int rc;

	if (!env->net || !rec->tap_name || !rec->tap_name[0])
		return 0;
	if (instance_net(env, rec, &tenant, err) < 0)
		return -1;
	rc = net_open(&ctx, err);
	if (rc == 0)
		rc = net_tap_remove(ctx, tenant->tenant_net_id, rec->net_index, err);
	net_close(ctx);
	protobuf_c_message_free_unpacked(&tenant->base, NULL);
	if (rc == 0)
		rc = hostd_net_apply(env, err);
	return rc;
}

/* ---- published ports ------------------------------------------------------------------ */

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

static int check_port(const char *field, uint32_t port, struct vmlet_err *err)
{
	if (port < 1 || port > 65535)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "%s: %u must be 1..65535", field, port);
	return 0;
}

static int check_proto(const char *field, int proto, struct vmlet_err *err)
{
	if (proto != VMLET__HOST__V1__PORT_PROTO__PORT_PROTO_TCP &&
	    proto != VMLET__HOST__V1__PORT_PROTO__PORT_PROTO_UDP)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "%s: must be tcp or udp", field);
	return 0;
}

/* Which tenant (if any) publishes proto/host_port. */
struct pub_scan {
	uint32_t proto, host_port;
	char owner[VMLET_ID_MAX];
};

static int scan_pub(void *arg, const Vmlet__Host__V1__TenantRecord *t, struct vmlet_err *err)
{
	struct pub_scan *s = arg;

	for (size_t i = 0; i < t->n_publishes && !s->owner[0]; i++)
		if ((uint32_t)t->publishes[i]->proto == s->proto &&
		    t->publishes[i]->host_port == s->host_port)
			snprintf(s->owner, sizeof(s->owner), "%s", t->tenant_id);
	return 0;
}

static int write_publishes(const struct hostd_env *env, Vmlet__Host__V1__TenantRecord *t,
			   Vmlet__Host__V1__PublishedPort **list, size_t n, struct vmlet_err *err)
{
	Vmlet__Host__V1__PublishedPort **old = t->publishes;
	size_t old_n = t->n_publishes;
	int rc;

	t->publishes = list;
	t->n_publishes = n;
	rc = hostd_registry_write_tenant(env->registry, t, err);
	t->publishes = old;
	t->n_publishes = old_n;
	return rc;
}

int hostd_op_publish_port(const struct hostd_env *env, const Vmlet__Host__V1__HostRequest *req,
			  struct hostd_reply *reply, struct vmlet_err *err)
{
	static const struct hostd_registry_visitor v = { scan_pub, NULL, NULL };
	const Vmlet__Host__V1__PublishPortRequest *r = req->publish_port;
	Vmlet__Host__V1__TenantRecord *tenant = NULL;
	Vmlet__Host__V1__InstanceRecord *inst = NULL;
	_cleanup_free_ Vmlet__Host__V1__PublishedPort **list = NULL;
	Vmlet__Host__V1__PublishedPort add = VMLET__HOST__V1__PUBLISHED_PORT__INIT;
	struct pub_scan scan = { 0 };
	int rc = -1;

	if (!r)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "publish_port: missing");
	if (vmlet_validate_id("publish_port.tenant_id", r->tenant_id, err) < 0 ||
	    vmlet_validate_id("publish_port.pool_id", r->pool_id, err) < 0 ||
	    vmlet_validate_instance_id("publish_port.instance_id", r->instance_id, err) < 0 ||
	    check_proto("publish_port.proto", (int)r->proto, err) < 0 ||
	    check_port("publish_port.host_port", r->host_port, err) < 0 ||
	    check_port("publish_port.guest_port", r->guest_port, err) < 0)
		return -1;
	if (!env->net)
		return vmlet_err_set(err, VMLET_E_UNAVAILABLE, 0,
				     "publish_port: the tenant networks are not managed by this "
				     "hostd");
	/* moby-derp: no whitelist entry, no publish */
	if (nft_publish_allowed(&env->net->whitelist, r->tenant_id, (uint32_t)r->proto,
				r->host_port, err) < 0)
		return vmlet_err_prefix(err, "publish_port: ");

	hostd_tree_lock();
	if (hostd_registry_lookup_tenant(env->registry, r->tenant_id, &tenant, err) < 0 ||
	    hostd_registry_lookup_instance(env->registry, r->tenant_id, r->pool_id,
					   r->instance_id, &inst, err) < 0)
		goto out;
	if (!inst->ipv4_address[0]) {
		vmlet_err_set(err, VMLET_E_CONFLICT, 0,
			      "publish_port: instance %s/%s/%s has no network address",
			      r->tenant_id, r->pool_id, r->instance_id);
		goto out;
	}
	scan.proto = (uint32_t)r->proto;
	scan.host_port = r->host_port;
	if (hostd_registry_walk(env->registry, NULL, NULL, &v, &scan, err) < 0)
		goto out;
	if (scan.owner[0] && strcmp(scan.owner, r->tenant_id) != 0) {
		vmlet_err_set(err, VMLET_E_CONFLICT, 0, "publish_port: %s port %u is published by "
			      "tenant %s", proto_word((uint32_t)r->proto), r->host_port, scan.owner);
		goto out;
	}
	list = calloc(tenant->n_publishes + 1, sizeof(*list));
	if (!list) {
		vmlet_err_set(err, VMLET_E_INTERNAL, 0, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < tenant->n_publishes; i++) {
		Vmlet__Host__V1__PublishedPort *p = tenant->publishes[i];

		if ((uint32_t)p->proto != (uint32_t)r->proto || p->host_port != r->host_port) {
			list[i] = p;
			continue;
		}
		if (p->guest_port == r->guest_port && !strcmp(p->pool_id, r->pool_id) &&
		    !strcmp(p->instance_id, r->instance_id)) {
			rc = 0; /* already so */
			goto apply;
		}
		vmlet_err_set(err, VMLET_E_CONFLICT, 0,
			      "publish_port: %s port %u is already published to %s/%s port %u",
			      proto_word((uint32_t)r->proto), r->host_port, p->pool_id,
			      p->instance_id, p->guest_port);
		goto out;
	}
	add.proto = r->proto;
	add.host_port = r->host_port;
	add.guest_port = r->guest_port;
	add.pool_id = r->pool_id;
	add.instance_id = r->instance_id;
	list[tenant->n_publishes] = &add;
	if (write_publishes(env, tenant, list, tenant->n_publishes + 1, err) < 0)
		goto out;
apply:
	rc = hostd_net_apply(env, err);
out:
	hostd_tree_unlock();
	if (tenant)
		protobuf_c_message_free_unpacked(&tenant->base, NULL);
	if (inst)
		protobuf_c_message_free_unpacked(&inst->base, NULL);
	if (rc < 0)
		return -1;
	vlog(VLOG_INFO, "port_published", "tenant=%s proto=%s host_port=%u instance=%s/%s "
	     "guest_port=%u", r->tenant_id, proto_word((uint32_t)r->proto), r->host_port,
	     r->pool_id, r->instance_id, r->guest_port);
	return reply_ok(reply, err);
}

int hostd_op_unpublish_port(const struct hostd_env *env,
			    const Vmlet__Host__V1__HostRequest *req, struct hostd_reply *reply,
			    struct vmlet_err *err)
{
	const Vmlet__Host__V1__UnpublishPortRequest *r = req->unpublish_port;
	Vmlet__Host__V1__TenantRecord *tenant = NULL;
	_cleanup_free_ Vmlet__Host__V1__PublishedPort **list = NULL;
	size_t n = 0;
	int rc = -1;

	if (!r)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "unpublish_port: missing");
	if (vmlet_validate_id("unpublish_port.tenant_id", r->tenant_id, err) < 0 ||
	    check_proto("unpublish_port.proto", (int)r->proto, err) < 0 ||
	    check_port("unpublish_port.host_port", r->host_port, err) < 0)
		return -1;
	hostd_tree_lock();
	if (hostd_registry_lookup_tenant(env->registry, r->tenant_id, &tenant, err) < 0)
		goto out;
	list = calloc(tenant->n_publishes + 1, sizeof(*list));
	if (!list) {
		vmlet_err_set(err, VMLET_E_INTERNAL, 0, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < tenant->n_publishes; i++)
		if ((uint32_t)tenant->publishes[i]->proto != (uint32_t)r->proto ||
		    tenant->publishes[i]->host_port != r->host_port)
			list[n++] = tenant->publishes[i];
	rc = 0;
	if (n != tenant->n_publishes &&
	    ((rc = write_publishes(env, tenant, list, n, err)) < 0 ||
	     (rc = hostd_net_apply(env, err)) < 0))
		goto out;
out:
	hostd_tree_unlock();
	if (tenant)
		protobuf_c_message_free_unpacked(&tenant->base, NULL);
	return rc < 0 ? -1 : reply_ok(reply, err);
}

/* ---- net verify --------------------------------------------------------------------- */

struct checks {
	struct hostd_reply *reply;
	Vmlet__V1__NetCheck **v;
	size_t n, cap;
	uint32_t failed;
	bool oom;
};

__attribute__((format(printf, 5, 6))) static void check(struct checks *c, bool ok,
							const char *expected, const char *found,
							const char *fmt, ...)
{
	Vmlet__V1__NetCheck *nc;
	char name[192];
	va_list ap;

	if (c->n == c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 32;
		Vmlet__V1__NetCheck **nv = realloc(c->v, ncap * sizeof(*nv));

		if (!nv) {
			c->oom = true;
			return;
		}
		c->v = nv;
		c->cap = ncap;
	}
	nc = hostd_reply_alloc(c->reply, sizeof(*nc));
	if (!nc) {
		c->oom = true;
		return;
	}
	vmlet__v1__net_check__init(nc);
	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	nc->name = hostd_reply_strdup(c->reply, name);
	nc->ok = ok;
	nc->expected = hostd_reply_strdup(c->reply, expected);
	nc->found = hostd_reply_strdup(c->reply, found);
	c->v[c->n++] = nc;
	if (!ok)
		c->failed++;
}

static void addrs_format(const struct net_state *st, char *out, size_t len)
{
	size_t off = 0;

	out[0] = '\0';
	for (size_t i = 0; i < st->naddrs && off < len; i++) {
		char a[INET_ADDRSTRLEN];

		addr_format(st->addrs[i].addr, a);
		off += (size_t)snprintf(out + off, len - off, "%s%s/%u", i ? " " : "", a,
					st->addrs[i].prefix);
	}
	if (!out[0])
		snprintf(out, len, "(none)");
}

static void verify_tenant(struct checks *c, struct net_ctx *ctx, const struct reg_model *rm,
			  size_t ti)
{
	const struct nft_tenant *t = &rm->tenants[ti];
	const char *tid = rm->tkeys[ti].tenant;
	struct net_state st = { 0 };
	struct vmlet_err e;
	char want[64], got[256];
	uint32_t gw;
	unsigned prefix;
	bool has_gw = false;

	if (net_read(ctx, t->net_id, &st, &e) < 0) {
		check(c, false, "readable", e.msg, "tenant %s: read %s", tid, t->bridge);
		return;
	}
	snprintf(want, sizeof(want), "vmlet bridge (alias vmlet:tenant=%u)", t->net_id);
	snprintf(got, sizeof(got), "%s%s%s alias=\"%s\"", st.bridge_exists ? "kind=" : "(missing)",
		 st.bridge_exists ? st.bridge.kind : "", st.bridge_exists &&
		 st.bridge.role == NET_ROLE_BRIDGE ? " ours" : "", st.bridge_exists ?
		 st.bridge.alias : "");
	check(c, st.bridge_exists && st.bridge.role == NET_ROLE_BRIDGE, want, got,
	      "tenant %s: bridge %s exists", tid, t->bridge);
	if (!st.bridge_exists) {
		net_state_free(&st);
		return;
	}
	check(c, st.bridge.up, "up", st.bridge.up ? "up" : "down", "tenant %s: bridge %s is up",
	      tid, t->bridge);
	gw = t->subnet + 1;
	prefix = t->prefix;
	for (size_t i = 0; i < st.naddrs; i++)
		if (st.addrs[i].addr == gw && st.addrs[i].prefix == prefix)
			has_gw = true;
	addr_format(gw, want);
	snprintf(want + strlen(want), sizeof(want) - strlen(want), "/%u", prefix);
	addrs_format(&st, got, sizeof(got));
	check(c, has_gw, want, got, "tenant %s: bridge %s has gateway %s", tid, t->bridge, want);

	/* every TAP of the registry that exists, and everything on the bridge */
	for (size_t i = 0; i < rm->n_instances; i++) {
		const struct inst_key *k = &rm->ikeys[i];
		const struct net_link *l = NULL;

		if (k->net_id != t->net_id)
			continue;
		for (size_t j = 0; j < st.nlinks; j++)
			if (!strcmp(st.links[j].name, k->tap))
				l = &st.links[j];
		if (!l) {
			/* a TAP exists while its VMM may run (attach .. detach) */
			bool needed = k->pid != 0;

			check(c, !needed, needed ? "present (the VMM runs)" : "absent or present",
			      "(missing)", "tenant %s: TAP %s of %s/%s", tid, k->tap, k->pool,
			      k->instance);
			continue;
		}
		snprintf(want, sizeof(want), "vmlet TAP (alias vmlet:tap=%u/%u)", t->net_id, k->index);
		snprintf(got, sizeof(got), "kind=%s tap=%s alias=\"%s\"", l->kind,
			 l->tap ? "yes" : "no", l->alias);
		check(c, l->role == NET_ROLE_TAP && l->net_id == t->net_id && l->index == k->index,
		      want, got, "tenant %s: TAP %s is ours", tid, k->tap);
		snprintf(want, sizeof(want), "%s (ifindex %d)", t->bridge, st.bridge.ifindex);
		snprintf(got, sizeof(got), "ifindex %d", l->master);
		check(c, l->master == st.bridge.ifindex, want, got, "tenant %s: TAP %s master", tid,
		      k->tap);
		if (k->uid) {
			snprintf(want, sizeof(want), "uid %u", k->uid);
			if (l->has_owner)
				snprintf(got, sizeof(got), "uid %u", l->owner);
			else
				snprintf(got, sizeof(got), "(no owner)");
			check(c, l->has_owner && l->owner == k->uid, want, got,
			      "tenant %s: TAP %s owner", tid, k->tap);
		}
	}
	for (size_t j = 0; j < st.nlinks; j++) {
		const struct net_link *l = &st.links[j];
		bool known = false;

		for (size_t i = 0; i < rm->n_instances && !known; i++)
			known = rm->ikeys[i].net_id == t->net_id && !strcmp(rm->ikeys[i].tap, l->name);
		if (known)
			continue;
		snprintf(got, sizeof(got), "%s kind=%s master=%d alias=\"%s\"", l->name, l->kind,
			 l->master, l->alias);
		check(c, false, "only the TAPs of the tenant's instances", got,
		      "tenant %s: unexpected interface %s on or named for %s", tid, l->name,
		      t->bridge);
	}
	net_state_free(&st);
}

static bool nft_check_ok(const struct nft_verify *v, const char *name)
{
	for (size_t i = 0; i < v->n_checks; i++)
		if (!strcmp(v->checks[i].name, name))
			return v->checks[i].ok;
	return false;
}

int hostd_op_verify_network(const struct hostd_env *env,
			    const Vmlet__Host__V1__HostRequest *req, struct hostd_reply *reply,
			    struct vmlet_err *err)
{
	const Vmlet__Host__V1__VerifyNetworkRequest *r = req->verify_network;
	struct checks c = { .reply = reply };
	struct nft_verify nv = { 0 };
	struct net_ctx *ctx = NULL;
	Vmlet__V1__NetVerifyResult *res;
	struct reg_model rm;
	bool all, found = false, fwd_order;
	int rc = -1;

	if (!r)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "verify_network: missing");
	all = !r->tenant_id || !r->tenant_id[0];
	if (!all && vmlet_validate_id("verify_network.tenant_id", r->tenant_id, err) < 0)
		return -1;
	if (!env->net)
		return vmlet_err_set(err, VMLET_E_UNAVAILABLE, 0,
				     "verify_network: the tenant networks are not managed by this "
				     "hostd");
	pthread_mutex_lock(&env->net->apply_lock);
	if (reg_model_build(env, &rm, err) < 0) {
		pthread_mutex_unlock(&env->net->apply_lock);
		return -1;
	}
	if (net_open(&ctx, err) < 0)
		goto out;
	for (size_t i = 0; i < rm.n_tenants; i++) {
		if (!all && strcmp(rm.tkeys[i].tenant, r->tenant_id) != 0)
			continue;
		found = true;
		verify_tenant(&c, ctx, &rm, i);
	}
	if (!all && !found) {
		vmlet_err_set(err, VMLET_E_NOT_FOUND, 0, "verify_network: tenant %s not found",
			      r->tenant_id);
		goto out;
	}
	if (nft_read(&rm.m, &nv, err) < 0)
		goto out;
	for (size_t i = 0; i < nv.n_checks; i++) {
		const struct nft_check *k = &nv.checks[i];

		/* deep: the rules themselves, also where they match */
		check(&c, k->ok, (r->deep || !k->ok) ? k->expected : "",
		      (r->deep || !k->ok) ? k->found : "", "nft %s", k->name);
	}
	fwd_order = nft_check_ok(&nv, "order inet " NFT_TABLE_NAME " forward");
	for (size_t i = 0; i < rm.n_tenants; i++)
		for (size_t j = i + 1; j < rm.n_tenants; j++) {
			char a[64], b[64];

			if (!all && strcmp(rm.tkeys[i].tenant, r->tenant_id) != 0 &&
			    strcmp(rm.tkeys[j].tenant, r->tenant_id) != 0)
				continue;
			snprintf(a, sizeof(a), "rule vmlet:isolate:%u", rm.tenants[i].net_id);
			snprintf(b, sizeof(b), "rule vmlet:isolate:%u", rm.tenants[j].net_id);
			check(&c, fwd_order && nft_check_ok(&nv, a) && nft_check_ok(&nv, b),
			      "both isolate rules present, in order", fwd_order ? "see nft checks"
			      : "forward chain out of order", "isolation %s <-> %s",
			      rm.tkeys[i].tenant, rm.tkeys[j].tenant);
		}
	if (c.oom) {
		vmlet_err_set(err, VMLET_E_INTERNAL, 0, "out of memory");
		goto out;
	}
	res = hostd_reply_alloc(reply, sizeof(*res));
	if (!res) {
		vmlet_err_set(err, VMLET_E_INTERNAL, 0, "out of memory");
		goto out;
	}
	vmlet__v1__net_verify_result__init(res);
	res->checks = hostd_reply_alloc_array(reply, c.n, sizeof(*res->checks));
	if (c.n && !res->checks) {
		vmlet_err_set(err, VMLET_E_INTERNAL, 0, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < c.n; i++)
		res->checks[i] = c.v[i];
	res->n_checks = c.n;
	res->failed = c.failed;
	reply->resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT_NET_VERIFY;
	reply->resp.net_verify = res;
	rc = 0;
	vlog(VLOG_INFO, "net_verified", "tenant=%s checks=%zu failed=%u", all ? "*" : r->tenant_id,
	     c.n, c.failed);
out:
	pthread_mutex_unlock(&env->net->apply_lock);
	nft_verify_free(&nv);
	net_close(ctx);
	reg_model_free(&rm);
	free(c.v);
	return rc;
}

int hostd_op_reapply_network(const struct hostd_env *env,
			     const Vmlet__Host__V1__HostRequest *req, struct hostd_reply *reply,
			     struct vmlet_err *err)
{
	int rc;

	if (!req->reapply_network)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "reapply_network: missing");
	if (!env->net)
		return vmlet_err_set(err, VMLET_E_UNAVAILABLE, 0,
				     "reapply_network: the tenant networks are not managed by this "
				     "hostd");
	hostd_tree_lock();
	rc = hostd_net_restore(env, err);
	hostd_tree_unlock();
	return rc < 0 ? -1 : reply_ok(reply, err);
}
