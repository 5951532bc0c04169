/* DESIGN.md's validation rules. agentd runs them on every Reconcile and
 * hostd runs them again on what agentd forwards, so this file treats its
 * input as hostile: every string is quoted (escaped) before it reaches a
 * message, every count is bounded before it is summed, and sums saturate
 * instead of wrapping. The first rule broken, in document order, is the one
 * reported. */
#include "shared/validate.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "shared/log.h"

#define ID_RULE "must match [a-z0-9-]{1,63} without leading or trailing '-'"
#define ID_LEN_MAX 63 /* VMLET_ID_MAX minus the NUL */
#define TEXT_MAX 256
#define POLICY_SECONDS_MAX 86400
/* Field-path buffers, sized so snprintf can never truncate: "tenants[N]"
 * with a 64-bit N, then ".pools[N]", then a field name. */
#define TENANT_PATH_LEN 32
#define POOL_PATH_LEN (TENANT_PATH_LEN + 32)
#define FIELD_PATH_LEN (POOL_PATH_LEN + 64)
#define QUOTE_LEN 80 /* quoted values are cut with "..." beyond this */

/* ---- ids ----------------------------------------------------------------- */

static bool id_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

bool vmlet_id_ok(const char *s)
{
	size_t n;

	if (!s)
		return false;
	for (n = 0; s[n]; n++)
		if (n >= ID_LEN_MAX || !id_char(s[n]))
			return false;
	return n > 0 && s[0] != '-' && s[n - 1] != '-';
}

bool vmlet_instance_id_ok(const char *s)
{
	if (!s || s[0] != 'i' || s[1] != '-')
		return false;
	for (int i = 2; i < 10; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[10] == '\0';
}

static const char *quote(const char *s, char *buf, size_t len)
{
	return vlog_str(s, buf, len);
}

int vmlet_validate_id(const char *field, const char *s, struct vmlet_err *err)
{
	char q[QUOTE_LEN];

	if (vmlet_id_ok(s))
		return 0;
	return vmlet_err_set(err, VMLET_E_INVALID, 0, "%s: %s " ID_RULE, field,
			     quote(s, q, sizeof(q)));
}

int vmlet_validate_instance_id(const char *field, const char *s, struct vmlet_err *err)
{
	char q[QUOTE_LEN];

	if (vmlet_instance_id_ok(s))
		return 0;
	return vmlet_err_set(err, VMLET_E_INVALID, 0,
			     "%s: %s must be \"i-\" followed by 8 lowercase hex digits", field,
			     quote(s, q, sizeof(q)));
}

/* ---- IPv4 CIDR --------------------------------------------------------- */

/* One decimal number of 1..maxdigits digits, no leading zero, <= max.
 * Returns the characters consumed, 0 if there is no such number. */
static size_t parse_dec(const char *s, unsigned maxdigits, unsigned max, unsigned *out)
{
	unsigned v = 0;
	size_t n = 0;

	while (s[n] >= '0' && s[n] <= '9') {
		if (n == maxdigits || (n == 1 && s[0] == '0'))
			return 0;
		v = v * 10 + (unsigned)(s[n] - '0');
		n++;
	}
	if (n == 0 || v > max)
		return 0;
	*out = v;
	return n;
}

static uint32_t prefix_mask(unsigned prefix)
{
	return prefix == 0 ? 0 : UINT32_MAX << (32 - prefix);
}

static void format_ip4(uint32_t a, char *buf, size_t len)
{
	snprintf(buf, len, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
}

int vmlet_parse_cidr4(const char *field, const char *s, uint32_t *net, unsigned *prefix,
		      struct vmlet_err *err)
{
	char q[QUOTE_LEN];
	const char *p = s ? s : "";
	uint32_t addr = 0;
	unsigned v, pfx;
	size_t n;

	for (int i = 0; i < 4; i++) {
		if (i > 0 && *p++ != '.')
			goto malformed;
		if (!(n = parse_dec(p, 3, 255, &v)))
			goto malformed;
		addr = (addr << 8) | v;
		p += n;
	}
	if (*p++ != '/' || !(n = parse_dec(p, 2, 32, &pfx)) || p[n] != '\0')
		goto malformed;
	if (addr & ~prefix_mask(pfx)) {
		char netbuf[16];
		format_ip4(addr & prefix_mask(pfx), netbuf, sizeof(netbuf));
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "%s: %s has host bits set (the network is %s/%u)", field,
				     quote(s, q, sizeof(q)), netbuf, pfx);
	}
	*net = addr;
	*prefix = pfx;
	return 0;
malformed:
	return vmlet_err_set(err, VMLET_E_INVALID, 0,
			     "%s: %s is not an IPv4 CIDR a.b.c.d/n (decimal, no leading zeros, "
			     "no spaces, n 0..32)",
			     field, quote(s, q, sizeof(q)));
}

struct private_range {
	uint32_t base;
	unsigned prefix;
};

/* RFC 1918 */
static const struct private_range private_ranges[] = {
	{ 0x0a000000u, 8 },  /* 10.0.0.0/8 */
	{ 0xac100000u, 12 }, /* 172.16.0.0/12 */
	{ 0xc0a80000u, 16 }, /* 192.168.0.0/16 */
};

#define TENANT_PREFIX_MIN 16
#define TENANT_PREFIX_MAX 29

int vmlet_validate_tenant_subnet(const char *field, const char *s, struct vmlet_err *err)
{
	char q[QUOTE_LEN];
	uint32_t net;
	unsigned prefix;

	if (vmlet_parse_cidr4(field, s, &net, &prefix, err) < 0)
		return -1;
	if (prefix < TENANT_PREFIX_MIN || prefix > TENANT_PREFIX_MAX)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "%s: %s has prefix /%u, must be /%d../%d", field,
				     quote(s, q, sizeof(q)), prefix, TENANT_PREFIX_MIN,
				     TENANT_PREFIX_MAX);
	/* The whole subnet, not just its first address, must be private: the
	 * network lies in a range and is no larger than it. */
	for (size_t i = 0; i < sizeof(private_ranges) / sizeof(private_ranges[0]); i++) {
		const struct private_range *r = &private_ranges[i];
		if (prefix >= r->prefix && (net & prefix_mask(r->prefix)) == r->base)
			return 0;
	}
	return vmlet_err_set(err, VMLET_E_INVALID, 0,
			     "%s: %s is not inside a private range (10.0.0.0/8, 172.16.0.0/12, "
			     "192.168.0.0/16)",
			     field, quote(s, q, sizeof(q)));
}

/* ---- field tables -------------------------------------------------------- */

/* A uint32 field of a message and its allowed range. */
struct u32_rule {
	const char *name;
	size_t offset;
	uint32_t min, max;
};

#define U32_AT(msg, off) (*(const uint32_t *)((const char *)(msg) + (off)))

static const struct u32_rule resources_rules[] = {
	{ "vcpus", offsetof(Vmlet__V1__InstanceResources, vcpus), VMLET_VCPUS_MIN, VMLET_VCPUS_MAX },
	{ "mem_mib", offsetof(Vmlet__V1__InstanceResources, mem_mib), VMLET_MEM_MIB_MIN,
	  VMLET_MEM_MIB_MAX },
	{ "data_disk_mib", offsetof(Vmlet__V1__InstanceResources, data_disk_mib), 0, UINT32_MAX },
};

static const struct u32_rule counts_rules[] = {
	{ "running", offsetof(Vmlet__V1__DesiredCounts, running), 0, VMLET_MAX_PER_STATE },
	{ "warm", offsetof(Vmlet__V1__DesiredCounts, warm), 0, VMLET_MAX_PER_STATE },
	{ "sleeping", offsetof(Vmlet__V1__DesiredCounts, sleeping), 0, VMLET_MAX_PER_STATE },
};

static const struct u32_rule policy_rules[] = {
	{ "min_running_seconds", offsetof(Vmlet__V1__RuntimePolicy, min_running_seconds), 0,
	  POLICY_SECONDS_MAX },
	{ "min_warm_seconds", offsetof(Vmlet__V1__RuntimePolicy, min_warm_seconds), 0,
	  POLICY_SECONDS_MAX },
	{ "drain_timeout_seconds", offsetof(Vmlet__V1__RuntimePolicy, drain_timeout_seconds), 0,
	  POLICY_SECONDS_MAX },
	{ "graceful_shutdown_seconds",
	  offsetof(Vmlet__V1__RuntimePolicy, graceful_shutdown_seconds), 0, POLICY_SECONDS_MAX },
};

#define NRULES(t) (sizeof(t) / sizeof((t)[0]))

static int check_u32_rules(const char *path, const void *msg, const struct u32_rule *rules,
			   size_t n, struct vmlet_err *err)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t v = U32_AT(msg, rules[i].offset);
		if (v < rules[i].min || v > rules[i].max)
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "%s.%s: %" PRIu32 " is out of range %" PRIu32
					     "..%" PRIu32,
					     path, rules[i].name, v, rules[i].min, rules[i].max);
	}
	return 0;
}

/* Free text kept for the coordinator's benefit (mvm's flake_ref, profile):
 * bounded, and without C0/C1 controls or DEL so it cannot forge log lines
 * or terminal output when it is displayed. */
struct text_rule {
	const char *name;
	size_t offset;
};

static const struct text_rule pool_text_rules[] = {
	{ "flake_ref", offsetof(Vmlet__V1__DesiredPool, flake_ref) },
	{ "profile", offsetof(Vmlet__V1__DesiredPool, profile) },
};

static bool has_control(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	for (; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return true;
		/* U+0080..U+009F encode as C2 80..C2 9F */
		if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
			return true;
	}
	return false;
}

static int check_text(const char *path, const char *name, const char *s, struct vmlet_err *err)
{
	char q[QUOTE_LEN];
	size_t len = strlen(s);

	if (len > TEXT_MAX)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "%s.%s: %s is %zu bytes long, at most %d", path, name,
				     quote(s, q, sizeof(q)), len, TEXT_MAX);
	if (has_control(s))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "%s.%s: %s contains a control character", path, name,
				     quote(s, q, sizeof(q)));
	return 0;
}

static const char *str_or_empty(const char *s)
{
	return s ? s : "";
}

/* ---- pools --------------------------------------------------------------- */

static int validate_pool(const char *path, const Vmlet__V1__DesiredPool *p, struct vmlet_err *err)
{
	char field[FIELD_PATH_LEN];
	char q[QUOTE_LEN];

	if (!p)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "%s: required", path);
	snprintf(field, sizeof(field), "%s.pool_id", path);
	if (vmlet_validate_id(field, str_or_empty(p->pool_id), err) < 0)
		return -1;
	for (size_t i = 0; i < NRULES(pool_text_rules); i++) {
		const char *s = *(char *const *)((const char *)p + pool_text_rules[i].offset);
		if (check_text(path, pool_text_rules[i].name, str_or_empty(s), err) < 0)
			return -1;
	}
	/* An image names an entry of the node's image store; it is never a
	 * path, so it obeys the id rule (no '/', no "..", nothing to resolve). */
	if (p->image && p->image[0] && !vmlet_id_ok(p->image))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "%s.image: %s must be an image name (not a path): " ID_RULE,
				     path, quote(p->image, q, sizeof(q)));
	if (!p->instance_resources)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "%s.instance_resources: required",
				     path);
	snprintf(field, sizeof(field), "%s.instance_resources", path);
	if (check_u32_rules(field, p->instance_resources, resources_rules,
			    NRULES(resources_rules), err) < 0)
		return -1;
	if (!p->desired_counts)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "%s.desired_counts: required", path);
	snprintf(field, sizeof(field), "%s.desired_counts", path);
	if (check_u32_rules(field, p->desired_counts, counts_rules, NRULES(counts_rules), err) < 0)
		return -1;
	if (p->runtime_policy) {
		snprintf(field, sizeof(field), "%s.runtime_policy", path);
		if (check_u32_rules(field, p->runtime_policy, policy_rules, NRULES(policy_rules),
				    err) < 0)
			return -1;
	}
	return 0;
}

/* ---- quotas -------------------------------------------------------------- */

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	uint64_t r;
	return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

static uint64_t sat_mul(uint64_t a, uint64_t b)
{
	uint64_t r;
	return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

/* What a tenant's pools ask for, summed over its pools. */
struct tenant_need {
	uint64_t pools;
	uint64_t running;
	uint64_t warm;
	uint64_t vcpus;    /* (running + warm) x vcpus: warm VMMs keep their vCPU threads */
	uint64_t mem_mib;  /* (running + warm) x mem_mib: warm VMMs hold their memory */
	uint64_t disk_mib; /* (running + warm + sleeping) x data_disk_mib */
};

static void add_pool_need(struct tenant_need *n, const Vmlet__V1__DesiredPool *p)
{
	const Vmlet__V1__DesiredCounts *c = p->desired_counts;
	const Vmlet__V1__InstanceResources *r = p->instance_resources;
	uint64_t live = sat_add(c->running, c->warm);
	uint64_t all = sat_add(live, c->sleeping);

	n->pools = sat_add(n->pools, 1);
	n->running = sat_add(n->running, c->running);
	n->warm = sat_add(n->warm, c->warm);
	n->vcpus = sat_add(n->vcpus, sat_mul(live, r->vcpus));
	n->mem_mib = sat_add(n->mem_mib, sat_mul(live, r->mem_mib));
	n->disk_mib = sat_add(n->disk_mib, sat_mul(all, r->data_disk_mib));
}

static uint64_t q_pools(const Vmlet__V1__TenantQuotas *q) { return q->max_pools; }
static uint64_t q_running(const Vmlet__V1__TenantQuotas *q) { return q->max_running; }
static uint64_t q_warm(const Vmlet__V1__TenantQuotas *q) { return q->max_warm; }
static uint64_t q_vcpus(const Vmlet__V1__TenantQuotas *q) { return q->max_vcpus; }
static uint64_t q_mem(const Vmlet__V1__TenantQuotas *q) { return q->max_mem_mib; }
static uint64_t q_disk_mib(const Vmlet__V1__TenantQuotas *q) { return sat_mul(q->max_disk_gib, 1024); }

/* One tenant quota: which sum it bounds and how the message reads,
 * "<path>.quotas.<field>: <subject> <need> <what>, quota is <limit><unit>". */
struct quota_rule {
	const char *field;
	size_t need_offset;
	uint64_t (*limit)(const Vmlet__V1__TenantQuotas *q);
	const char *subject;
	const char *what;
	const char *unit;
};

static const struct quota_rule quota_rules[] = {
	{ "max_pools", offsetof(struct tenant_need, pools), q_pools, "tenant has", "pools", "" },
	{ "max_running", offsetof(struct tenant_need, running), q_running, "pools need",
	  "running instances", "" },
	{ "max_warm", offsetof(struct tenant_need, warm), q_warm, "pools need", "warm instances",
	  "" },
	{ "max_vcpus", offsetof(struct tenant_need, vcpus), q_vcpus, "pools need",
	  "vCPUs for running and warm instances", "" },
	{ "max_mem_mib", offsetof(struct tenant_need, mem_mib), q_mem, "pools need",
	  "MiB of memory for running and warm instances", " MiB" },
	{ "max_disk_gib", offsetof(struct tenant_need, disk_mib), q_disk_mib, "pools need",
	  "MiB of data disk", " MiB (max_disk_gib x 1024)" },
};

static int check_quotas(const char *path, const Vmlet__V1__TenantQuotas *q,
			const struct tenant_need *need, struct vmlet_err *err)
{
	for (size_t i = 0; i < NRULES(quota_rules); i++) {
		const struct quota_rule *r = &quota_rules[i];
		uint64_t n = *(const uint64_t *)((const char *)need + r->need_offset);
		uint64_t limit = r->limit(q);
		if (n > limit)
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "%s.quotas.%s: %s %" PRIu64 " %s, quota is %" PRIu64
					     "%s",
					     path, r->field, r->subject, n, r->what, limit, r->unit);
	}
	return 0;
}

/* ---- tenants ------------------------------------------------------------- */

static int validate_tenant_pools(const char *path, const Vmlet__V1__DesiredTenant *t,
				 struct vmlet_err *err)
{
	const Vmlet__V1__TenantQuotas *q = t->quotas;
	struct tenant_need need = { 0 };
	char pool_path[POOL_PATH_LEN];
	char qv[QUOTE_LEN];

	if (t->n_pools > VMLET_MAX_POOLS_PER_TENANT)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "%s.pools: %zu pools, at most %d",
				     path, t->n_pools, VMLET_MAX_POOLS_PER_TENANT);
	for (size_t i = 0; i < t->n_pools; i++) {
		const Vmlet__V1__DesiredPool *p = t->pools[i];
		snprintf(pool_path, sizeof(pool_path), "%s.pools[%zu]", path, i);
		if (validate_pool(pool_path, p, err) < 0)
			return -1;
		for (size_t j = 0; j < i; j++)
			if (strcmp(t->pools[j]->pool_id, p->pool_id) == 0)
				return vmlet_err_set(err, VMLET_E_INVALID, 0,
						     "%s.pool_id: %s duplicates %s.pools[%zu].pool_id",
						     pool_path, quote(p->pool_id, qv, sizeof(qv)),
						     path, j);
		const Vmlet__V1__DesiredCounts *c = p->desired_counts;
		uint64_t instances = (uint64_t)c->running + c->warm + c->sleeping;
		if (instances > q->max_instances_per_pool)
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "%s.quotas.max_instances_per_pool: pools[%zu] needs %" PRIu64
					     " instances (running+warm+sleeping), quota is %" PRIu32,
					     path, i, instances, q->max_instances_per_pool);
		add_pool_need(&need, p);
	}
	return check_quotas(path, q, &need, err);
}

static int validate_tenant(const char *path, const Vmlet__V1__DesiredTenant *t,
			   struct vmlet_err *err)
{
	char field[FIELD_PATH_LEN];

	if (!t)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "%s: required", path);
	snprintf(field, sizeof(field), "%s.tenant_id", path);
	if (vmlet_validate_id(field, str_or_empty(t->tenant_id), err) < 0)
		return -1;
	if (!t->network)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "%s.network: required", path);
	if (t->network->tenant_net_id < VMLET_NET_ID_MIN || t->network->tenant_net_id > VMLET_NET_ID_MAX)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "%s.network.tenant_net_id: %" PRIu32 " is out of range %d..%d",
				     path, t->network->tenant_net_id, VMLET_NET_ID_MIN,
				     VMLET_NET_ID_MAX);
	snprintf(field, sizeof(field), "%s.network.ipv4_subnet", path);
	if (vmlet_validate_tenant_subnet(field, str_or_empty(t->network->ipv4_subnet), err) < 0)
		return -1;
	if (!t->quotas)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "%s.quotas: required", path);
	return validate_tenant_pools(path, t, err);
}

/* Tenant i against the tenants before it (all already valid): ids, net ids
 * and subnets must be unique; two CIDRs overlap iff they agree on the
 * shorter of their two prefixes. */
static int check_tenant_unique(const Vmlet__V1__DesiredState *ds, size_t i, struct vmlet_err *err)
{
	const Vmlet__V1__DesiredTenant *t = ds->tenants[i];
	uint32_t net, onet;
	unsigned pfx, opfx;
	char q1[QUOTE_LEN], q2[QUOTE_LEN];

	vmlet_parse_cidr4("", t->network->ipv4_subnet, &net, &pfx, NULL);
	for (size_t j = 0; j < i; j++) {
		const Vmlet__V1__DesiredTenant *o = ds->tenants[j];
		if (strcmp(o->tenant_id, t->tenant_id) == 0)
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "tenants[%zu].tenant_id: %s duplicates tenants[%zu].tenant_id",
					     i, quote(t->tenant_id, q1, sizeof(q1)), j);
		if (o->network->tenant_net_id == t->network->tenant_net_id)
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "tenants[%zu].network.tenant_net_id: %" PRIu32
					     " duplicates tenants[%zu].network.tenant_net_id",
					     i, t->network->tenant_net_id, j);
		vmlet_parse_cidr4("", o->network->ipv4_subnet, &onet, &opfx, NULL);
		uint32_t m = prefix_mask(pfx < opfx ? pfx : opfx);
		if ((net & m) == (onet & m))
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "tenants[%zu].network.ipv4_subnet: %s overlaps "
					     "tenants[%zu].network.ipv4_subnet %s",
					     i, quote(t->network->ipv4_subnet, q1, sizeof(q1)), j,
					     quote(o->network->ipv4_subnet, q2, sizeof(q2)));
	}
	return 0;
}

int vmlet_validate_desired_state(const Vmlet__V1__DesiredState *ds, const char *node_id,
				 struct vmlet_err *err)
{
	char path[TENANT_PATH_LEN];
	char q1[QUOTE_LEN], q2[QUOTE_LEN];

	if (!ds)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "desired_state: required");
	if (ds->schema_version != 1)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "schema_version: %" PRIu32 " is not supported (must be 1)",
				     ds->schema_version);
	if (node_id && strcmp(str_or_empty(ds->node_id), node_id) != 0)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "node_id: %s does not match this node's id %s",
				     quote(str_or_empty(ds->node_id), q1, sizeof(q1)),
				     quote(node_id, q2, sizeof(q2)));
	if (ds->n_tenants > VMLET_MAX_TENANTS)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "tenants: %zu tenants, at most %d",
				     ds->n_tenants, VMLET_MAX_TENANTS);
	for (size_t i = 0; i < ds->n_tenants; i++) {
		snprintf(path, sizeof(path), "tenants[%zu]", i);
		if (validate_tenant(path, ds->tenants[i], err) < 0)
			return -1;
		if (check_tenant_unique(ds, i, err) < 0)
			return -1;
	}
	return 0;
}

/* ---- the other requests ------------------------------------------------ */

static int required_id(const char *field, const char *s, struct vmlet_err *err)
{
	if (!s || !s[0])
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "%s: required", field);
	return vmlet_validate_id(field, s, err);
}

int vmlet_validate_instance_list(const Vmlet__V1__InstanceListRequest *r, struct vmlet_err *err)
{
	if (!r)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "instance_list: required");
	if (required_id("tenant_id", r->tenant_id, err) < 0)
		return -1;
	/* pool_id is optional: empty lists every pool of the tenant. */
	if (r->pool_id && r->pool_id[0])
		return vmlet_validate_id("pool_id", r->pool_id, err);
	return 0;
}

int vmlet_validate_wake_instance(const Vmlet__V1__WakeInstanceRequest *r, struct vmlet_err *err)
{
	if (!r)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "wake_instance: required");
	if (required_id("tenant_id", r->tenant_id, err) < 0 ||
	    required_id("pool_id", r->pool_id, err) < 0)
		return -1;
	if (!r->instance_id || !r->instance_id[0])
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "instance_id: required");
	return vmlet_validate_instance_id("instance_id", r->instance_id, err);
}
