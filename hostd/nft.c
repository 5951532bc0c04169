/* vmlet's nftables tables: validation of the model, pure rendering to nft
 * JSON, one-transaction apply, read-back verification, and the port
 * whitelist. See nft.h for why the chains look the way they do. */
#include "hostd/nft.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nftables/libnftables.h>

#include "shared/cleanup.h"
#include "shared/log.h"
#include "shared/validate.h"

#define BRIDGE_PREFIX "br-tenant-"
#define TAP_PREFIX "tn"
#define NET_ID_MIN 1
#define NET_ID_MAX 4094
#define PREFIX_MIN 16
#define PREFIX_MAX 29
#define PORT_MAX 65535
#define TAP_INDEX_DIGITS_MAX 8

/* ---- small helpers ---------------------------------------------------- */

/* jansson's own json_decrefp (what json_auto_t uses). */
#define _cleanup_json_ _cleanup_(json_decrefp)

static void nft_ctx_freep(struct nft_ctx **c)
{
	if (*c)
		nft_ctx_free(*c);
	*c = NULL;
}
#define _cleanup_nft_ctx_ _cleanup_(nft_ctx_freep)

static const char *ip4_str(uint32_t addr, char buf[INET_ADDRSTRLEN])
{
	struct in_addr a = {.s_addr = htonl(addr)};

	if (!inet_ntop(AF_INET, &a, buf, INET_ADDRSTRLEN))
		snprintf(buf, INET_ADDRSTRLEN, "?");
	return buf;
}

static uint32_t prefix_mask(unsigned prefix)
{
	return prefix == 0 ? 0 : (uint32_t)(0xffffffffu << (32 - prefix));
}

static const char *proto_name(uint32_t proto)
{
	return proto == NFT_PROTO_TCP ? "tcp" : "udp";
}

/* An interface-name field of the model: NUL-terminated inside IFNAMSIZ. */
static bool ifname_terminated(const char *s)
{
	return memchr(s, '\0', IFNAMSIZ) != NULL;
}

/* Quote a field that failed validation for a message; unterminated
 * buffers are cut at IFNAMSIZ first. */
static const char *quote_ifname(const char *s, char *buf, size_t len)
{
	char tmp[IFNAMSIZ + 1];

	memcpy(tmp, s, IFNAMSIZ);
	tmp[IFNAMSIZ] = '\0';
	return vlog_str(tmp, buf, len);
}

/* ---- model validation ------------------------------------------------- */

static bool subnet_private(uint32_t net, unsigned prefix)
{
	static const struct {
		uint32_t net;
		unsigned prefix;
	} rfc1918[] = {
		{0x0a000000u, 8},  /* 10.0.0.0/8 */
		{0xac100000u, 12}, /* 172.16.0.0/12 */
		{0xc0a80000u, 16}, /* 192.168.0.0/16 */
	};

	for (size_t i = 0; i < sizeof(rfc1918) / sizeof(rfc1918[0]); i++)
		if (prefix >= rfc1918[i].prefix &&
		    (net & prefix_mask(rfc1918[i].prefix)) == rfc1918[i].net)
			return true;
	return false;
}

/* Uplink: a plain interface name that cannot be mistaken for one of ours
 * (our rules match br-tenant-* and tn* by prefix) and carries no nft
 * wildcard. */
static bool uplink_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= IFNAMSIZ || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return false;
	}
	if (!strncmp(s, BRIDGE_PREFIX, strlen(BRIDGE_PREFIX)) || !strncmp(s, TAP_PREFIX, 2))
		return false;
	return true;
}

/* "tn<net_id>i<n>" exactly, n decimal without leading zeros. */
static bool tap_name_ok(const char *s, uint32_t net_id)
{
	char want[IFNAMSIZ];
	int k = snprintf(want, sizeof(want), TAP_PREFIX "%ui", net_id);
	const char *d;
	size_t nd;

	if (k < 0 || (size_t)k >= sizeof(want) || strncmp(s, want, (size_t)k))
		return false;
	d = s + k;
	nd = strspn(d, "0123456789");
	if (nd == 0 || nd > TAP_INDEX_DIGITS_MAX || d[nd] != '\0' || (d[0] == '0' && nd > 1))
		return false;
	return strlen(s) < IFNAMSIZ;
}

struct key_idx {
	uint64_t key;
	size_t idx;
};

static int cmp_key_idx(const void *a, const void *b)
{
	const struct key_idx *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

static const struct key_idx *find_key(const struct key_idx *v, size_t n, uint64_t key)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v[mid].key < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && v[lo].key == key ? &v[lo] : NULL;
}

/* Lookup tables built during validation and used by the renderer. */
struct model_index {
	struct key_idx *tenant_by_net; /* key net_id */
	struct key_idx *inst_by_addr;  /* key addr */
};

static void model_index_free(struct model_index *ix)
{
	free(ix->tenant_by_net);
	free(ix->inst_by_addr);
	ix->tenant_by_net = ix->inst_by_addr = NULL;
}

static int validate_tenants(const struct nft_model *m, struct model_index *ix,
			    struct vmlet_err *err)
{
	_cleanup_free_ struct key_idx *by_subnet = NULL;
	char q[VLOG_STR_MAX], a[INET_ADDRSTRLEN];

	ix->tenant_by_net = calloc(m->n_tenants + 1, sizeof(*ix->tenant_by_net));
	by_subnet = calloc(m->n_tenants + 1, sizeof(*by_subnet));
	if (!ix->tenant_by_net || !by_subnet)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "nft model: out of memory");
	for (size_t i = 0; i < m->n_tenants; i++) {
		const struct nft_tenant *t = &m->tenants[i];
		char want[IFNAMSIZ];

		if (t->net_id < NET_ID_MIN || t->net_id > NET_ID_MAX)
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "tenants[%zu].net_id: %u out of range %d..%d", i,
					     t->net_id, NET_ID_MIN, NET_ID_MAX);
		snprintf(want, sizeof(want), BRIDGE_PREFIX "%u", t->net_id);
		if (!ifname_terminated(t->bridge) || strcmp(t->bridge, want))
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "tenants[%zu].bridge: %s must be \"%s\" (the bridge of net_id %u)",
					     i, quote_ifname(t->bridge, q, sizeof(q)), want, t->net_id);
		if (t->prefix < PREFIX_MIN || t->prefix > PREFIX_MAX)
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "tenants[%zu].subnet: prefix /%u out of range /%d../%d", i,
					     t->prefix, PREFIX_MIN, PREFIX_MAX);
		if (t->subnet & ~prefix_mask(t->prefix))
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "tenants[%zu].subnet: %s/%u has host bits set", i,
					     ip4_str(t->subnet, a), t->prefix);
		if (!subnet_private(t->subnet, t->prefix))
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "tenants[%zu].subnet: %s/%u is not a private (RFC 1918) subnet",
					     i, ip4_str(t->subnet, a), t->prefix);
		ix->tenant_by_net[i] = (struct key_idx){t->net_id, i};
		by_subnet[i] = (struct key_idx){t->subnet, i};
	}
	qsort(ix->tenant_by_net, m->n_tenants, sizeof(*ix->tenant_by_net), cmp_key_idx);
	for (size_t i = 1; i < m->n_tenants; i++)
		if (ix->tenant_by_net[i].key == ix->tenant_by_net[i - 1].key)
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "tenants[%zu].net_id: %u duplicates tenants[%zu]",
					     ix->tenant_by_net[i].idx, (unsigned)ix->tenant_by_net[i].key,
					     ix->tenant_by_net[i - 1].idx);
	/* Sorted by start, two subnets overlap iff one starts before the
	 * previous one ends (aligned CIDRs nest or are disjoint). */
	qsort(by_subnet, m->n_tenants, sizeof(*by_subnet), cmp_key_idx);
	for (size_t i = 1; i < m->n_tenants; i++) {
		const struct nft_tenant *p = &m->tenants[by_subnet[i - 1].idx];
		const struct nft_tenant *t = &m->tenants[by_subnet[i].idx];
		uint64_t p_end = (uint64_t)p->subnet + (1ull << (32 - p->prefix));

		if (t->subnet < p_end)
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "tenants[%zu].subnet: %s/%u overlaps tenants[%zu]",
					     by_subnet[i].idx, ip4_str(t->subnet, a), t->prefix,
					     by_subnet[i - 1].idx);
	}
	return 0;
}

static const struct nft_tenant *tenant_of(const struct nft_model *m, const struct model_index *ix,
					  uint32_t net_id)
{
	const struct key_idx *k = find_key(ix->tenant_by_net, m->n_tenants, net_id);

	return k ? &m->tenants[k->idx] : NULL;
}

static int cmp_tap_ptr(const void *a, const void *b)
{
	const struct nft_instance *const *x = a, *const *y = b;

	return strcmp((*x)->tap, (*y)->tap);
}

static int validate_instances(const struct nft_model *m, struct model_index *ix,
			      struct vmlet_err *err)
{
	_cleanup_free_ const struct nft_instance **by_tap = NULL;
	char q[VLOG_STR_MAX], a[INET_ADDRSTRLEN], b[INET_ADDRSTRLEN];

	ix->inst_by_addr = calloc(m->n_instances + 1, sizeof(*ix->inst_by_addr));
	by_tap = calloc(m->n_instances + 1, sizeof(*by_tap));
	if (!ix->inst_by_addr || !by_tap)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "nft model: out of memory");
	for (size_t i = 0; i < m->n_instances; i++) {
		const struct nft_instance *in = &m->instances[i];
		const struct nft_tenant *t = tenant_of(m, ix, in->net_id);
		uint32_t mask, bcast;

		if (!t)
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "instances[%zu].net_id: %u is not a tenant of the model", i,
					     in->net_id);
		if (!ifname_terminated(in->tap) || !tap_name_ok(in->tap, in->net_id))
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "instances[%zu].tap: %s must be \"tn%ui<n>\" (n: 0..99999999, no leading zeros)",
					     i, quote_ifname(in->tap, q, sizeof(q)), in->net_id);
		mask = prefix_mask(t->prefix);
		bcast = t->subnet | ~mask;
		if ((in->addr & mask) != t->subnet)
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "instances[%zu].addr: %s is outside net %u's subnet %s/%u", i,
					     ip4_str(in->addr, a), in->net_id, ip4_str(t->subnet, b),
					     t->prefix);
		if (in->addr == t->subnet || in->addr == t->subnet + 1 || in->addr == bcast)
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "instances[%zu].addr: %s is the network, gateway or broadcast address of %s/%u",
					     i, ip4_str(in->addr, a), ip4_str(t->subnet, b), t->prefix);
		ix->inst_by_addr[i] = (struct key_idx){in->addr, i};
		by_tap[i] = in;
	}
	qsort(ix->inst_by_addr, m->n_instances, sizeof(*ix->inst_by_addr), cmp_key_idx);
	for (size_t i = 1; i < m->n_instances; i++)
		if (ix->inst_by_addr[i].key == ix->inst_by_addr[i - 1].key)
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "instances[%zu].addr: %s duplicates instances[%zu]",
					     ix->inst_by_addr[i].idx,
					     ip4_str((uint32_t)ix->inst_by_addr[i].key, a),
					     ix->inst_by_addr[i - 1].idx);
	qsort(by_tap, m->n_instances, sizeof(*by_tap), cmp_tap_ptr);
	for (size_t i = 1; i < m->n_instances; i++)
		if (!strcmp(by_tap[i]->tap, by_tap[i - 1]->tap))
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "instances[%zu].tap: %s is used twice",
					     (size_t)(by_tap[i] - m->instances),
					     vlog_str(by_tap[i]->tap, q, sizeof(q)));
	return 0;
}

static int validate_publishes(const struct nft_model *m, const struct model_index *ix,
			      struct vmlet_err *err)
{
	_cleanup_free_ struct key_idx *by_port = NULL;
	char a[INET_ADDRSTRLEN];

	by_port = calloc(m->n_publishes + 1, sizeof(*by_port));
	if (!by_port)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "nft model: out of memory");
	for (size_t i = 0; i < m->n_publishes; i++) {
		const struct nft_publish *p = &m->publishes[i];
		const struct key_idx *k;

		if (!tenant_of(m, ix, p->net_id))
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "publishes[%zu].net_id: %u is not a tenant of the model", i,
					     p->net_id);
		if (p->proto != NFT_PROTO_TCP && p->proto != NFT_PROTO_UDP)
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "publishes[%zu].proto: %u is neither tcp nor udp", i, p->proto);
		if (p->host_port < 1 || p->host_port > PORT_MAX)
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "publishes[%zu].host_port: %u out of range 1..%d", i,
					     p->host_port, PORT_MAX);
		if (p->guest_port < 1 || p->guest_port > PORT_MAX)
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "publishes[%zu].guest_port: %u out of range 1..%d", i,
					     p->guest_port, PORT_MAX);
		k = find_key(ix->inst_by_addr, m->n_instances, p->addr);
		if (!k || m->instances[k->idx].net_id != p->net_id)
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "publishes[%zu].addr: %s is not an instance of net %u", i,
					     ip4_str(p->addr, a), p->net_id);
		by_port[i] = (struct key_idx){((uint64_t)p->proto << 32) | p->host_port, i};
	}
	qsort(by_port, m->n_publishes, sizeof(*by_port), cmp_key_idx);
	for (size_t i = 1; i < m->n_publishes; i++)
		if (by_port[i].key == by_port[i - 1].key)
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "publishes[%zu].host_port: %s/%u is already published by publishes[%zu]",
					     by_port[i].idx, proto_name((uint32_t)(by_port[i].key >> 32)),
					     (unsigned)(by_port[i].key & 0xffff), by_port[i - 1].idx);
	return 0;
}

static int validate_model(const struct nft_model *m, struct model_index *ix,
			  struct vmlet_err *err)
{
	char q[VLOG_STR_MAX];

	if (!m)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "nft model: missing");
	if (m->n_tenants > NFT_MAX_TENANTS || (m->n_tenants && !m->tenants))
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "tenants: %zu entries (at most %d)",
				     m->n_tenants, NFT_MAX_TENANTS);
	if (m->n_instances > NFT_MAX_INSTANCES || (m->n_instances && !m->instances))
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "instances: %zu entries (at most %d)",
				     m->n_instances, NFT_MAX_INSTANCES);
	if (m->n_publishes > NFT_MAX_PUBLISHES || (m->n_publishes && !m->publishes))
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "publishes: %zu entries (at most %d)",
				     m->n_publishes, NFT_MAX_PUBLISHES);
	if (!ifname_terminated(m->uplink) || (m->uplink[0] && !uplink_name_ok(m->uplink)))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "uplink: %s must be an interface name of [A-Za-z0-9_.-] (1-15 chars, not br-tenant-* or tn*)",
				     quote_ifname(m->uplink, q, sizeof(q)));
	if (validate_tenants(m, ix, err) < 0 || validate_instances(m, ix, err) < 0 ||
	    validate_publishes(m, ix, err) < 0)
		return -1;
	return 0;
}

int nft_model_validate(const struct nft_model *m, struct vmlet_err *err)
{
	struct model_index ix = {0};
	int r = validate_model(m, &ix, err);

	model_index_free(&ix);
	return r;
}

/* ---- rendering ---------------------------------------------------------
 * Objects are built in the exact form (and key order) `nft -j list table`
 * prints, so nft_read can compare the listing with json_equal(). nft adds
 * the implicit dependencies (meta nfproto, ether type, meta l4proto) on
 * input and hides them on output. Every string below is either a constant
 * or a value validated above; jansson does all quoting. */

enum fam { FAM_INET, FAM_BRIDGE };
static const char *const fam_name[] = {"inet", "bridge"};

struct chain_def {
	enum fam fam;
	const char *name, *type, *hook;
	int prio;
};

/* Chain names avoid nft keywords (see MACHINE-NOTES: "fwd"). */
static const struct chain_def chains[] = {
	{FAM_INET, "forward", "filter", "forward", 0},
	{FAM_INET, "input", "filter", "input", 0},
	{FAM_INET, "prerouting", "nat", "prerouting", -100},
	{FAM_INET, "postrouting", "nat", "postrouting", 100},
	{FAM_BRIDGE, "prerouting", "filter", "prerouting", -200},
};

static json_t *m_meta(const char *op, const char *key, const char *value)
{
	return json_pack("{s:{s:s,s:{s:{s:s}},s:s}}", "match", "op", op, "left", "meta", "key", key,
			 "right", value);
}

static json_t *m_addr(const char *op, const char *proto, const char *field, uint32_t addr)
{
	char a[INET_ADDRSTRLEN];

	return json_pack("{s:{s:s,s:{s:{s:s,s:s}},s:s}}", "match", "op", op, "left", "payload",
			 "protocol", proto, "field", field, "right", ip4_str(addr, a));
}

static json_t *m_prefix(const char *field, uint32_t net, unsigned prefix)
{
	char a[INET_ADDRSTRLEN];

	return json_pack("{s:{s:s,s:{s:{s:s,s:s}},s:{s:{s:s,s:i}}}}", "match", "op", "==", "left",
			 "payload", "protocol", "ip", "field", field, "right", "prefix", "addr",
			 ip4_str(net, a), "len", (int)prefix);
}

static json_t *m_port(uint32_t proto, uint32_t port)
{
	return json_pack("{s:{s:s,s:{s:{s:s,s:s}},s:i}}", "match", "op", "==", "left", "payload",
			 "protocol", proto_name(proto), "field", "dport", "right", (int)port);
}

static json_t *m_ct_established(void)
{
	return json_pack("{s:{s:s,s:{s:{s:s}},s:[s,s]}}", "match", "op", "in", "left", "ct", "key",
			 "state", "right", "established", "related");
}

static json_t *m_ct_dnat(void)
{
	return json_pack("{s:{s:s,s:{s:{s:s}},s:s}}", "match", "op", "in", "left", "ct", "key",
			 "status", "right", "dnat");
}

static json_t *m_fib_local(void)
{
	return json_pack("{s:{s:s,s:{s:{s:s,s:[s]}},s:s}}", "match", "op", "==", "left", "fib",
			 "result", "type", "flags", "daddr", "right", "local");
}

static json_t *verdict(const char *v)
{
	return json_pack("{s:n}", v);
}

static json_t *s_dnat(uint32_t addr, uint32_t port)
{
	char a[INET_ADDRSTRLEN];

	return json_pack("{s:{s:s,s:s,s:i}}", "dnat", "family", "ip", "addr", ip4_str(addr, a),
			 "port", (int)port);
}

/* Append {"rule": {...}} with nexpr expressions. A NULL expression (a
 * constructor that ran out of memory) fails the call; the expressions are
 * consumed in every case. */
static int add_rule(json_t *out, enum fam fam, const char *chain, const char *comment,
		    unsigned nexpr, ...)
{
	_cleanup_json_ json_t *expr = json_array();
	json_t *rule;
	bool ok = expr != NULL;
	va_list ap;

	va_start(ap, nexpr);
	for (unsigned i = 0; i < nexpr; i++) {
		json_t *e = va_arg(ap, json_t *);

		if (!e || !ok) {
			json_decref(e);
			ok = false;
		} else if (json_array_append_new(expr, e) < 0) {
			ok = false;
		}
	}
	va_end(ap);
	if (!ok)
		return -1;
	rule = json_pack("{s:{s:s,s:s,s:s,s:s,s:O}}", "rule", "family", fam_name[fam], "table",
			 NFT_TABLE_NAME, "chain", chain, "comment", comment, "expr", expr);
	if (!rule || json_array_append_new(out, rule) < 0)
		return -1;
	return 0;
}

/* add_rule with the expressions counted by the compiler. */
#define RULE(out, fam, chain, comment, ...)                                                    \
	add_rule(out, fam, chain, comment,                                                     \
		 (unsigned)(sizeof((json_t *[]){__VA_ARGS__}) / sizeof(json_t *)), __VA_ARGS__)

static int render_tables_chains(json_t *out, enum fam fam)
{
	json_t *t = json_pack("{s:{s:s,s:s}}", "table", "family", fam_name[fam], "name",
			      NFT_TABLE_NAME);

	if (!t || json_array_append_new(out, t) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(chains) / sizeof(chains[0]); i++) {
		json_t *c;

		if (chains[i].fam != fam)
			continue;
		c = json_pack("{s:{s:s,s:s,s:s,s:s,s:s,s:i,s:s}}", "chain", "family", fam_name[fam],
			      "table", NFT_TABLE_NAME, "name", chains[i].name, "type",
			      chains[i].type, "hook", chains[i].hook, "prio", chains[i].prio,
			      "policy", "accept");
		if (!c || json_array_append_new(out, c) < 0)
			return -1;
	}
	return 0;
}

/* inet forward, in this order:
 *   intra:N        bridge N to itself, from N's subnet (guest<->guest;
 *                  br_netfilter shows bridged frames here with iif = oif
 *                  = the bridge)
 *   isolate:N      bridge N to any other tenant bridge: drop. Before the
 *                  established accept, so even a flow that existed before
 *                  the rules cannot cross tenants.
 *   established    replies and related ICMP
 *   egress:N       bridge N to the uplink, from N's subnet
 *   publish-fwd:P  the DNAT'ed flow of a published port, to its instance
 *   tenant-out     anything else leaving a tenant bridge (other host
 *                  interfaces, stale bridges)
 *   tenant-in      anything else entering a tenant bridge
 * The source subnet in intra/egress is defence in depth behind the bridge
 * table: a TAP re-attached to another tenant's bridge still cannot talk
 * there or leave through it with its own tenant's address. */
static int render_forward(const struct nft_model *m, json_t *out)
{
	char c[64], br[IFNAMSIZ];

	for (size_t i = 0; i < m->n_tenants; i++) {
		const struct nft_tenant *t = &m->tenants[i];

		snprintf(c, sizeof(c), "vmlet:intra:%u", t->net_id);
		if (RULE(out, FAM_INET, "forward", c, m_meta("==", "iifname", t->bridge),
			 m_meta("==", "oifname", t->bridge), m_prefix("saddr", t->subnet, t->prefix),
			 verdict("accept")) < 0)
			return -1;
		snprintf(c, sizeof(c), "vmlet:isolate:%u", t->net_id);
		if (RULE(out, FAM_INET, "forward", c, m_meta("==", "iifname", t->bridge),
			 m_meta("==", "oifname", BRIDGE_PREFIX "*"),
			 m_meta("!=", "oifname", t->bridge), verdict("drop")) < 0)
			return -1;
	}
	if (RULE(out, FAM_INET, "forward", "vmlet:established", m_ct_established(),
		 verdict("accept")) < 0)
		return -1;
	for (size_t i = 0; m->uplink[0] && i < m->n_tenants; i++) {
		const struct nft_tenant *t = &m->tenants[i];

		snprintf(c, sizeof(c), "vmlet:egress:%u", t->net_id);
		if (RULE(out, FAM_INET, "forward", c, m_meta("==", "iifname", t->bridge),
			 m_meta("==", "oifname", m->uplink), m_prefix("saddr", t->subnet, t->prefix),
			 verdict("accept")) < 0)
			return -1;
	}
	for (size_t i = 0; i < m->n_publishes; i++) {
		const struct nft_publish *p = &m->publishes[i];

		snprintf(c, sizeof(c), "vmlet:publish-fwd:%s:%u", proto_name(p->proto), p->host_port);
		snprintf(br, sizeof(br), BRIDGE_PREFIX "%u", p->net_id);
		if (RULE(out, FAM_INET, "forward", c, m_meta("!=", "iifname", BRIDGE_PREFIX "*"),
			 m_meta("==", "oifname", br), m_addr("==", "ip", "daddr", p->addr),
			 m_port(p->proto, p->guest_port), m_ct_dnat(), verdict("accept")) < 0)
			return -1;
	}
	if (RULE(out, FAM_INET, "forward", "vmlet:tenant-out",
		 m_meta("==", "iifname", BRIDGE_PREFIX "*"), verdict("drop")) < 0 ||
	    RULE(out, FAM_INET, "forward", "vmlet:tenant-in",
		 m_meta("==", "oifname", BRIDGE_PREFIX "*"), verdict("drop")) < 0)
		return -1;
	return 0;
}

/* inet input: a tenant may talk to the host only at its own gateway (not
 * at another tenant's gateway, nor at the host's other addresses).
 * Broadcast and multicast are not "local" for fib and stay allowed. */
static int render_input(const struct nft_model *m, json_t *out)
{
	char c[64];

	for (size_t i = 0; i < m->n_tenants; i++) {
		const struct nft_tenant *t = &m->tenants[i];

		snprintf(c, sizeof(c), "vmlet:gateway-only:%u", t->net_id);
		if (RULE(out, FAM_INET, "input", c, m_meta("==", "iifname", t->bridge),
			 m_addr("!=", "ip", "daddr", t->subnet + 1), m_fib_local(),
			 verdict("drop")) < 0)
			return -1;
	}
	return 0;
}

/* inet nat: a published port is DNAT'ed only for packets addressed to the
 * host itself (fib daddr type local: traffic the host merely routes keeps
 * its destination) and not coming from a tenant bridge (no hairpin from
 * one tenant into another's published port). Locally generated traffic
 * does not pass prerouting: published ports are for the outside. Egress
 * from each tenant subnet is masqueraded on the uplink. */
static int render_nat(const struct nft_model *m, json_t *out)
{
	char c[64];

	for (size_t i = 0; i < m->n_publishes; i++) {
		const struct nft_publish *p = &m->publishes[i];

		snprintf(c, sizeof(c), "vmlet:publish:%s:%u", proto_name(p->proto), p->host_port);
		if (RULE(out, FAM_INET, "prerouting", c, m_meta("!=", "iifname", BRIDGE_PREFIX "*"),
			 m_fib_local(), m_port(p->proto, p->host_port),
			 s_dnat(p->addr, p->guest_port)) < 0)
			return -1;
	}
	for (size_t i = 0; m->uplink[0] && i < m->n_tenants; i++) {
		const struct nft_tenant *t = &m->tenants[i];

		snprintf(c, sizeof(c), "vmlet:masq:%u", t->net_id);
		if (RULE(out, FAM_INET, "postrouting", c, m_meta("==", "oifname", m->uplink),
			 m_prefix("saddr", t->subnet, t->prefix), verdict("masquerade")) < 0)
			return -1;
	}
	return 0;
}

/* bridge prerouting (anti-spoofing), before the frame is bridged or
 * routed: from its TAP, an instance may send IPv4 from its own address
 * and ARP claiming its own address; every other frame entering from a
 * tn* port is dropped (forged sources, IPv6, VLAN-tagged frames, unknown
 * TAPs). `meta ibrname` would also pin the TAP to its bridge, but it needs
 * nft_meta_bridge, which not every kernel has (CONFIG_NFT_BRIDGE_META);
 * the TAP's master is checked by the netlink side of net verify. */
static int render_bridge(const struct nft_model *m, json_t *out)
{
	char c[64];

	for (size_t i = 0; i < m->n_instances; i++) {
		const struct nft_instance *in = &m->instances[i];

		snprintf(c, sizeof(c), "vmlet:spoof-ip:%s", in->tap);
		if (RULE(out, FAM_BRIDGE, "prerouting", c, m_meta("==", "iifname", in->tap),
			 m_addr("==", "ip", "saddr", in->addr), verdict("accept")) < 0)
			return -1;
		snprintf(c, sizeof(c), "vmlet:spoof-arp:%s", in->tap);
		if (RULE(out, FAM_BRIDGE, "prerouting", c, m_meta("==", "iifname", in->tap),
			 m_addr("==", "arp", "saddr ip", in->addr), verdict("accept")) < 0)
			return -1;
	}
	return RULE(out, FAM_BRIDGE, "prerouting", "vmlet:spoof-default",
		    m_meta("==", "iifname", TAP_PREFIX "*"), verdict("drop"));
}

int nft_render(const struct nft_model *m, json_t **out, struct vmlet_err *err)
{
	struct model_index ix = {0};
	_cleanup_json_ json_t *r = NULL;
	int rc;

	*out = NULL;
	rc = validate_model(m, &ix, err);
	model_index_free(&ix);
	if (rc < 0)
		return -1;
	r = json_array();
	if (!r || render_tables_chains(r, FAM_INET) < 0 || render_forward(m, r) < 0 ||
	    render_input(m, r) < 0 || render_nat(m, r) < 0 ||
	    render_tables_chains(r, FAM_BRIDGE) < 0 || render_bridge(m, r) < 0)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "nft: building the ruleset failed");
	*out = vmlet_take_ptr(&r);
	return 0;
}

static json_t *cmd(const char *verb, json_t *obj_borrowed)
{
	return json_pack("{s:O}", verb, obj_borrowed);
}

/* add table + delete table first: the table is replaced whether or not it
 * exists, and the whole list is one netlink batch (one transaction). */
static int append_replace_table(json_t *cmds, enum fam fam)
{
	_cleanup_json_ json_t *t =
		json_pack("{s:{s:s,s:s}}", "table", "family", fam_name[fam], "name", NFT_TABLE_NAME);

	if (!t || json_array_append_new(cmds, cmd("add", t)) < 0 ||
	    json_array_append_new(cmds, cmd("delete", t)) < 0)
		return -1;
	return 0;
}

int nft_render_commands(const struct nft_model *m, json_t **out, struct vmlet_err *err)
{
	_cleanup_json_ json_t *rules = NULL;
	_cleanup_json_ json_t *cmds = NULL;
	size_t i;
	json_t *o;

	*out = NULL;
	if (nft_render(m, &rules, err) < 0)
		return -1;
	cmds = json_array();
	if (!cmds)
		goto nomem;
	/* The rendering lists each table followed by its chains and rules. */
	json_array_foreach(rules, i, o) {
		json_t *t = json_object_get(o, "table");

		if (t) {
			const char *f = json_string_value(json_object_get(t, "family"));

			if (append_replace_table(cmds, f && !strcmp(f, "bridge") ? FAM_BRIDGE
										 : FAM_INET) < 0)
				goto nomem;
		}
		if (json_array_append_new(cmds, cmd("add", o)) < 0)
			goto nomem;
	}
	*out = json_pack("{s:O}", "nftables", cmds);
	if (!*out)
		goto nomem;
	return 0;
nomem:
	return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "nft: building the transaction failed");
}

/* ---- talking to the kernel through libnftables ------------------------ */

static struct nft_ctx *ctx_new(struct vmlet_err *err)
{
	struct nft_ctx *c = nft_ctx_new(NFT_CTX_DEFAULT);

	if (!c) {
		vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "nft: nft_ctx_new failed");
		return NULL;
	}
	/* In libnftables 1.0.x the JSON output flag also selects JSON input. */
	nft_ctx_output_set_flags(c, NFT_CTX_OUTPUT_JSON);
	if (nft_ctx_buffer_output(c) < 0 || nft_ctx_buffer_error(c) < 0) {
		nft_ctx_free(c);
		vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "nft: cannot buffer libnftables output");
		return NULL;
	}
	return c;
}

/* libnftables' error text on one line: the "Error: ..." part of each
 * line that has one (it prefixes a location such as "internal:0:0-0: "
 * and follows with the input and carets), repeats dropped. */
static void nft_error_text(struct nft_ctx *c, char *buf, size_t len)
{
	const char *e = nft_ctx_get_error_buffer(c);
	const char *last = NULL;
	size_t o = 0, last_n = 0;

	buf[0] = '\0';
	while (e && *e && o + 1 < len) {
		size_t n = strcspn(e, "\n");
		const char *m = memmem(e, n, "Error:", 6);

		if (m) {
			size_t mn = n - (size_t)(m - e);

			if (!last || mn != last_n || memcmp(m, last, mn)) {
				if (o && o + 2 < len) {
					buf[o++] = ';';
					buf[o++] = ' ';
				}
				for (size_t i = 0; i < mn && o + 1 < len; i++)
					buf[o++] = (m[i] >= 0x20 && m[i] < 0x7f) ? m[i] : '?';
				last = m;
				last_n = mn;
			}
		}
		e += n;
		e += (*e == '\n');
	}
	buf[o] = '\0';
	if (!buf[0])
		snprintf(buf, len, "libnftables failed without a message");
}

static int run_json(json_t *cmds, const char *what, struct vmlet_err *err)
{
	_cleanup_nft_ctx_ struct nft_ctx *c = ctx_new(err);
	_cleanup_free_ char *text = NULL;
	char msg[300];

	if (!c)
		return -1;
	text = json_dumps(cmds, JSON_COMPACT);
	if (!text)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "nft: serialising %s failed", what);
	if (nft_run_cmd_from_buffer(c, text) != 0) {
		nft_error_text(c, msg, sizeof(msg));
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "nft: %s refused (nothing changed): %s",
				     what, msg);
	}
	return 0;
}

int nft_apply(const struct nft_model *m, struct vmlet_err *err)
{
	_cleanup_json_ json_t *cmds = NULL;

	if (nft_render_commands(m, &cmds, err) < 0)
		return -1;
	if (run_json(cmds, "replacing tables inet/bridge " NFT_TABLE_NAME, err) < 0)
		return -1;
	vlog(VLOG_INFO, "nft_applied", "tenants=%zu instances=%zu publishes=%zu uplink=%s",
	     m->n_tenants, m->n_instances, m->n_publishes, m->uplink[0] ? m->uplink : "-");
	return 0;
}

int nft_remove(struct vmlet_err *err)
{
	_cleanup_json_ json_t *list = json_array();
	_cleanup_json_ json_t *cmds = NULL;

	if (!list || append_replace_table(list, FAM_INET) < 0 ||
	    append_replace_table(list, FAM_BRIDGE) < 0)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "nft: out of memory");
	cmds = json_pack("{s:O}", "nftables", list);
	if (!cmds)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "nft: out of memory");
	if (run_json(cmds, "removing tables inet/bridge " NFT_TABLE_NAME, err) < 0)
		return -1;
	vlog(VLOG_INFO, "nft_removed", NULL);
	return 0;
}

/* ---- read back and verify --------------------------------------------- */

static int verify_add(struct nft_verify *v, bool ok, const char *expected, const char *found,
		      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int verify_add(struct nft_verify *v, bool ok, const char *expected, const char *found,
		      const char *fmt, ...)
{
	struct nft_check *c;
	va_list ap;

	if (v->n_checks == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 64;
		struct nft_check *n = realloc(v->checks, cap * sizeof(*n));

		if (!n)
			return -1;
		v->checks = n;
		v->cap = cap;
	}
	c = &v->checks[v->n_checks];
	memset(c, 0, sizeof(*c));
	va_start(ap, fmt);
	vsnprintf(c->name, sizeof(c->name), fmt, ap);
	va_end(ap);
	c->ok = ok;
	c->expected = strdup(expected);
	c->found = strdup(found);
	if (!c->expected || !c->found) {
		free(c->expected);
		free(c->found);
		return -1;
	}
	v->n_checks++;
	if (!ok)
		v->n_failed++;
	return 0;
}

void nft_verify_free(struct nft_verify *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->n_checks; i++) {
		free(v->checks[i].expected);
		free(v->checks[i].found);
	}
	free(v->checks);
	memset(v, 0, sizeof(*v));
}

/* List one table as JSON and append the listed objects (without
 * metainfo) to out. *state says what was found: "present", "(missing)",
 * or "(unreadable: ...)" when nft's listing is not valid JSON (nft 1.0.6
 * prints broken JSON for a table with flags it does not know how to
 * print, e.g. another socket's "owner" table): then the table's contents
 * are reported missing rather than guessed. -1 only when the kernel could
 * not be asked. */
static int list_table(enum fam fam, json_t *out, char *state, size_t state_len,
		      struct vmlet_err *err)
{
	_cleanup_nft_ctx_ struct nft_ctx *c = ctx_new(err);
	_cleanup_json_ json_t *doc = NULL;
	char cmdline[64], msg[300];
	json_error_t jerr;
	json_t *arr, *o;
	size_t i;

	snprintf(state, state_len, "(missing)");
	if (!c)
		return -1;
	snprintf(cmdline, sizeof(cmdline), "list table %s %s", fam_name[fam], NFT_TABLE_NAME);
	if (nft_run_cmd_from_buffer(c, cmdline) != 0) {
		const char *e = nft_ctx_get_error_buffer(c);

		if (e && strstr(e, "No such file or directory"))
			return 0;
		nft_error_text(c, msg, sizeof(msg));
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "nft: %s: %s", cmdline, msg);
	}
	doc = json_loads(nft_ctx_get_output_buffer(c), 0, &jerr);
	arr = json_object_get(doc, "nftables");
	if (!json_is_array(arr)) {
		snprintf(state, state_len, "(unreadable: %.120s)",
			 doc ? "no \"nftables\" array" : jerr.text);
		return 0;
	}
	json_array_foreach(arr, i, o) {
		if (json_object_get(o, "metainfo"))
			continue;
		if (json_array_append(out, o) < 0)
			return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "nft: out of memory");
	}
	snprintf(state, state_len, "present");
	return 0;
}

/* The inner object of {"kind": {...}} and its kind. */
static json_t *obj_body(json_t *o, const char **kind)
{
	const char *k;
	json_t *v;

	*kind = "?";
	json_object_foreach(o, k, v) {
		*kind = k;
		return v;
	}
	return NULL;
}

static const char *str_of(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

/* Compact JSON of what a rule does: {"family","chain","expr"}. */
static char *rule_text(json_t *body)
{
	_cleanup_json_ json_t *r = json_pack("{s:O?,s:O?,s:O?}", "family",
					     json_object_get(body, "family"), "chain",
					     json_object_get(body, "chain"), "expr",
					     json_object_get(body, "expr"));

	return r ? json_dumps(r, JSON_COMPACT) : NULL;
}

static char *chain_text(json_t *body)
{
	_cleanup_json_ json_t *r = json_pack(
		"{s:O?,s:O?,s:O?,s:O?}", "type", json_object_get(body, "type"), "hook",
		json_object_get(body, "hook"), "prio", json_object_get(body, "prio"), "policy",
		json_object_get(body, "policy"));

	return r ? json_dumps(r, JSON_COMPACT) : NULL;
}

static bool same_family_chain(json_t *a, json_t *b)
{
	return !strcmp(str_of(a, "family"), str_of(b, "family")) &&
	       !strcmp(str_of(a, "name"), str_of(b, "name"));
}

static bool rule_equal(json_t *a, json_t *b)
{
	return !strcmp(str_of(a, "family"), str_of(b, "family")) &&
	       !strcmp(str_of(a, "chain"), str_of(b, "chain")) &&
	       json_equal(json_object_get(a, "expr"), json_object_get(b, "expr"));
}

/* match[j] for found[j]: the index in exp of the object it matched, or
 * one of these. */
#define MATCH_NONE (-1L)
#define MATCH_TABLE (-2L)

struct verify_state {
	json_t *exp;        /* rendered objects */
	json_t *found;      /* listed objects */
	long *match;        /* per found object */
	bool *exp_matched;  /* per rendered object: some found object matched it */
	json_t *by_comment; /* "family comment" -> [found indices], listing order */
	struct nft_verify *v;
};

/* Index the listed rules by family and comment, so that each expected
 * rule is looked up, not searched for (a node may have thousands). */
static int index_found_rules(struct verify_state *s)
{
	size_t j;
	json_t *fo;

	json_array_foreach(s->found, j, fo) {
		const char *fk;
		json_t *fb = obj_body(fo, &fk), *list;
		char key[320];

		if (strcmp(fk, "rule"))
			continue;
		snprintf(key, sizeof(key), "%s %s", str_of(fb, "family"), str_of(fb, "comment"));
		list = json_object_get(s->by_comment, key);
		if (!list) {
			list = json_array();
			if (!list || json_object_set_new(s->by_comment, key, list) < 0)
				return -1;
		}
		if (json_array_append_new(list, json_integer((json_int_t)j)) < 0)
			return -1;
	}
	return 0;
}

static int verify_chains(struct verify_state *s)
{
	size_t i, j;
	json_t *eo, *fo;

	json_array_foreach(s->exp, i, eo) {
		const char *ek, *fk;
		json_t *eb = obj_body(eo, &ek), *hit = NULL;
		_cleanup_free_ char *et = NULL, *ft = NULL;

		if (strcmp(ek, "chain"))
			continue;
		json_array_foreach(s->found, j, fo) {
			json_t *fb = obj_body(fo, &fk);

			if (s->match[j] == MATCH_NONE && !strcmp(fk, "chain") &&
			    same_family_chain(eb, fb)) {
				hit = fb;
				s->match[j] = (long)i;
				break;
			}
		}
		et = chain_text(eb);
		ft = hit ? chain_text(hit) : strdup("(missing)");
		if (!et || !ft)
			return -1;
		if (verify_add(s->v, hit && !strcmp(et, ft), et, ft, "chain %s %s %s",
			       str_of(eb, "family"), NFT_TABLE_NAME, str_of(eb, "name")) < 0)
			return -1;
	}
	return 0;
}

static int verify_rules(struct verify_state *s)
{
	size_t i, k;
	json_t *eo, *jo;

	if (index_found_rules(s) < 0)
		return -1;
	json_array_foreach(s->exp, i, eo) {
		const char *ek, *fk, *comment;
		json_t *eb = obj_body(eo, &ek), *hit = NULL, *cands;
		_cleanup_free_ char *et = NULL, *ft = NULL;
		char key[320];

		if (strcmp(ek, "rule"))
			continue;
		comment = str_of(eb, "comment");
		snprintf(key, sizeof(key), "%s %s", str_of(eb, "family"), comment);
		cands = json_object_get(s->by_comment, key);
		/* Prefer an exact match (a tamperer may add a second rule with
		 * our comment); else the first rule carrying the comment, which
		 * is then reported as changed. */
		for (int pass = 0; pass < 2 && !hit; pass++)
			json_array_foreach(cands, k, jo) {
				size_t j = (size_t)json_integer_value(jo);
				json_t *fb = obj_body(json_array_get(s->found, j), &fk);

				if (s->match[j] != MATCH_NONE || (pass == 0 && !rule_equal(eb, fb)))
					continue;
				hit = fb;
				s->match[j] = (long)i;
				s->exp_matched[i] = true;
				break;
			}
		et = rule_text(eb);
		ft = hit ? rule_text(hit) : strdup("(missing)");
		if (!et || !ft)
			return -1;
		if (verify_add(s->v, hit && rule_equal(eb, hit), et, ft, "rule %s", comment) < 0)
			return -1;
	}
	return 0;
}

static bool in_chain(json_t *body, const struct chain_def *c)
{
	return !strcmp(str_of(body, "family"), fam_name[c->fam]) &&
	       !strcmp(str_of(body, "chain"), c->name);
}

/* Our rules present in a chain must come in the rendered order (an accept
 * moved above a drop changes what the chain does). Compares the comments
 * of the matched rules in listing order with the same rules in rendered
 * order. */
static int verify_order(struct verify_state *s)
{
	for (size_t c = 0; c < sizeof(chains) / sizeof(chains[0]); c++) {
		_cleanup_free_ char *want = NULL, *got = NULL;
		size_t wlen = 0, glen = 0, i, j;
		FILE *wf = open_memstream(&want, &wlen);
		FILE *gf = open_memstream(&got, &glen);
		json_t *eo, *fo;
		int r;

		if (!wf || !gf) {
			if (wf)
				fclose(wf);
			if (gf)
				fclose(gf);
			return -1;
		}
		json_array_foreach(s->exp, i, eo) {
			const char *k;
			json_t *eb = obj_body(eo, &k);

			if (strcmp(k, "rule") || !in_chain(eb, &chains[c]))
				continue;
			if (s->exp_matched[i])
				fprintf(wf, "%s%s", ftell(wf) ? " " : "", str_of(eb, "comment"));
		}
		json_array_foreach(s->found, j, fo) {
			const char *fk;
			json_t *fb = obj_body(fo, &fk);

			if (s->match[j] < 0 || strcmp(fk, "rule") || !in_chain(fb, &chains[c]))
				continue;
			fprintf(gf, "%s%s", ftell(gf) ? " " : "", str_of(fb, "comment"));
		}
		fclose(wf);
		fclose(gf);
		if (!want || !got)
			return -1;
		r = verify_add(s->v, !strcmp(want, got), want, got, "order %s %s %s",
			       fam_name[chains[c].fam], NFT_TABLE_NAME, chains[c].name);
		if (r < 0)
			return -1;
	}
	return 0;
}

static int verify_unexpected(struct verify_state *s)
{
	size_t j;
	json_t *fo;

	json_array_foreach(s->found, j, fo) {
		const char *fk;
		json_t *fb = obj_body(fo, &fk);
		_cleanup_free_ char *ft = NULL;

		if (s->match[j] != MATCH_NONE)
			continue;
		ft = !strcmp(fk, "rule") ? rule_text(fb) : json_dumps(fo, JSON_COMPACT);
		if (!ft)
			return -1;
		if (verify_add(s->v, false, "(nothing)", ft, "unexpected %s %s handle %lld",
			       str_of(fb, "family"), fk,
			       (long long)json_integer_value(json_object_get(fb, "handle"))) < 0)
			return -1;
	}
	return 0;
}

int nft_read(const struct nft_model *m, struct nft_verify *out, struct vmlet_err *err)
{
	_cleanup_json_ json_t *exp = NULL;
	_cleanup_json_ json_t *found = json_array();
	_cleanup_free_ long *match = NULL;
	_cleanup_free_ bool *exp_matched = NULL;
	_cleanup_json_ json_t *by_comment = json_object();
	struct verify_state s;
	char state[2][160];
	size_t i, nf;
	json_t *o;

	memset(out, 0, sizeof(*out));
	if (nft_render(m, &exp, err) < 0)
		return -1;
	if (!found)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "nft: out of memory");
	for (int f = FAM_INET; f <= FAM_BRIDGE; f++)
		if (list_table((enum fam)f, found, state[f], sizeof(state[f]), err) < 0)
			return -1;
	nf = json_array_size(found);
	match = calloc(nf + 1, sizeof(*match));
	exp_matched = calloc(json_array_size(exp) + 1, sizeof(*exp_matched));
	if (!match || !exp_matched || !by_comment)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "nft: out of memory");
	json_array_foreach(found, i, o)
		match[i] = json_object_get(o, "table") ? MATCH_TABLE : MATCH_NONE;
	s = (struct verify_state){exp, found, match, exp_matched, by_comment, out};
	for (int f = FAM_INET; f <= FAM_BRIDGE; f++)
		if (verify_add(out, !strcmp(state[f], "present"), "present", state[f],
			       "table %s %s", fam_name[f], NFT_TABLE_NAME) < 0)
			goto nomem;
	if (verify_chains(&s) < 0 || verify_rules(&s) < 0 || verify_order(&s) < 0 ||
	    verify_unexpected(&s) < 0)
		goto nomem;
	return 0;
nomem:
	return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "nft verify: out of memory");
}

/* ---- port whitelist ---------------------------------------------------- */

/* Decimal 1..65535, digits only. */
static bool parse_port(const char *s, size_t n, uint16_t *out)
{
	uint32_t v = 0;

	if (n == 0 || n > 5)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint32_t)(s[i] - '0');
	}
	if (v < 1 || v > PORT_MAX)
		return false;
	*out = (uint16_t)v;
	return true;
}

static int parse_wl_entry(const char *s, size_t n, struct nft_wl_entry *e, size_t idx,
			  struct vmlet_err *err)
{
	char tok[128], q[VLOG_STR_MAX];
	char *c1, *c2, *dash;

	if (n >= sizeof(tok))
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "port_whitelist[%zu]: entry too long",
				     idx);
	memcpy(tok, s, n);
	tok[n] = '\0';
	c1 = strchr(tok, ':');
	c2 = c1 ? strchr(c1 + 1, ':') : NULL;
	if (!c1 || !c2)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "port_whitelist[%zu]: %s must be tenant:proto:port or tenant:proto:lo-hi",
				     idx, vlog_str(tok, q, sizeof(q)));
	*c1 = *c2 = '\0';
	if (!vmlet_id_ok(tok) || strlen(tok) >= sizeof(e->tenant))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "port_whitelist[%zu]: tenant %s must match [a-z0-9-]{1,63}", idx,
				     vlog_str(tok, q, sizeof(q)));
	snprintf(e->tenant, sizeof(e->tenant), "%s", tok);
	if (!strcmp(c1 + 1, "tcp"))
		e->proto = NFT_PROTO_TCP;
	else if (!strcmp(c1 + 1, "udp"))
		e->proto = NFT_PROTO_UDP;
	else
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "port_whitelist[%zu]: protocol %s must be tcp or udp", idx,
				     vlog_str(c1 + 1, q, sizeof(q)));
	dash = strchr(c2 + 1, '-');
	if (!(dash ? parse_port(c2 + 1, (size_t)(dash - c2 - 1), &e->lo) &&
			     parse_port(dash + 1, strlen(dash + 1), &e->hi)
		   : parse_port(c2 + 1, strlen(c2 + 1), &e->lo)))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "port_whitelist[%zu]: port %s must be 1..65535 or lo-hi", idx,
				     vlog_str(c2 + 1, q, sizeof(q)));
	if (!dash)
		e->hi = e->lo;
	if (e->lo > e->hi)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "port_whitelist[%zu]: range %u-%u is reversed", idx, e->lo, e->hi);
	return 0;
}

int nft_whitelist_parse(const char *text, struct nft_whitelist *wl, struct vmlet_err *err)
{
	static const char seps[] = ", \t\r\n";
	const char *p = text ? text : "";

	wl->n = 0;
	p += strspn(p, seps);
	while (*p) {
		size_t n = strcspn(p, seps);
		struct nft_wl_entry *e;

		if (wl->n == NFT_WL_MAX) {
			wl->n = 0;
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "port_whitelist: more than %d entries", NFT_WL_MAX);
		}
		e = &wl->e[wl->n];
		if (parse_wl_entry(p, n, e, wl->n, err) < 0) {
			wl->n = 0;
			return -1;
		}
		/* One owner per port, as moby-derp's port -> pod map. */
		for (size_t i = 0; i < wl->n; i++) {
			const struct nft_wl_entry *o = &wl->e[i];

			if (o->proto == e->proto && o->lo <= e->hi && e->lo <= o->hi &&
			    strcmp(o->tenant, e->tenant)) {
				size_t idx = wl->n;

				wl->n = 0;
				return vmlet_err_set(err, VMLET_E_INVALID, 0,
						     "port_whitelist[%zu]: %s %u-%u of tenant %s overlaps port_whitelist[%zu] of tenant %s (a port has one owner)",
						     idx, proto_name(e->proto), e->lo, e->hi,
						     e->tenant, i, o->tenant);
			}
		}
		wl->n++;
		p += n;
		p += strspn(p, seps);
	}
	return 0;
}

/* The entry covering (proto, port), if any (entries of different tenants
 * never overlap, so there is at most one owner). */
static const struct nft_wl_entry *wl_owner(const struct nft_whitelist *wl, uint32_t proto,
					   uint32_t port)
{
	for (size_t i = 0; wl && i < wl->n && i < NFT_WL_MAX; i++)
		if (wl->e[i].proto == proto && port >= wl->e[i].lo && port <= wl->e[i].hi)
			return &wl->e[i];
	return NULL;
}

int nft_publish_allowed(const struct nft_whitelist *wl, const char *tenant, uint32_t proto,
			uint32_t host_port, struct vmlet_err *err)
{
	const struct nft_wl_entry *e;
	char q[VLOG_STR_MAX];

	if (!tenant || !vmlet_id_ok(tenant))
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "publish: tenant %s is not a valid id",
				     vlog_str(tenant ? tenant : "", q, sizeof(q)));
	if (proto != NFT_PROTO_TCP && proto != NFT_PROTO_UDP)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "publish: proto %u is neither tcp nor udp", proto);
	if (host_port < 1 || host_port > PORT_MAX)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "publish: host_port %u out of range 1..%d", host_port, PORT_MAX);
	e = wl_owner(wl, proto, host_port);
	if (!e)
		return vmlet_err_set(err, VMLET_E_FORBIDDEN, 0,
				     "publish: tenant %s may not publish %s/%u: the port whitelist has no entry for it (no whitelist entry, no publish)",
				     tenant, proto_name(proto), host_port);
	if (strcmp(e->tenant, tenant))
		return vmlet_err_set(err, VMLET_E_FORBIDDEN, 0,
				     "publish: tenant %s may not publish %s/%u: the port whitelist gives it to tenant %s",
				     tenant, proto_name(proto), host_port, e->tenant);
	return 0;
}

int nft_ephemeral_range(uint32_t *lo, uint32_t *hi, struct vmlet_err *err)
{
	static const char path[] = "/proc/sys/net/ipv4/ip_local_port_range";
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	unsigned a, b;

	if (!f)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "open %s", path);
	if (fscanf(f, "%u %u", &a, &b) != 2 || a < 1 || b > PORT_MAX || a > b)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "%s: not a port range", path);
	*lo = a;
	*hi = b;
	return 0;
}

int nft_publish_pick_ephemeral(const struct nft_whitelist *wl, uint32_t proto, uint32_t lo,
			       uint32_t hi, const uint32_t *taken, size_t n_taken,
			       uint32_t *port, struct vmlet_err *err)
{
	if (proto != NFT_PROTO_TCP && proto != NFT_PROTO_UDP)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "publish: proto %u is neither tcp nor udp", proto);
	if (lo < 1 || hi > PORT_MAX || lo > hi)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "publish: bad ephemeral range %u-%u",
				     lo, hi);
	for (uint32_t p = lo; p <= hi; p++) {
		bool busy = wl_owner(wl, proto, p) != NULL;

		for (size_t i = 0; !busy && i < n_taken; i++)
			busy = taken[i] == p;
		if (!busy) {
			*port = p;
			return 0;
		}
	}
	return vmlet_err_set(err, VMLET_E_CONFLICT, 0,
			     "publish: no free %s port left in the ephemeral range %u-%u",
			     proto_name(proto), lo, hi);
}
