/* vmlet's nftables rules: two tables hostd owns completely, `inet vmlet`
 * (isolation, NAT, published ports) and `bridge vmlet` (anti-spoofing),
 * rendered from a model of the tenant networks and replaced together in
 * one libnftables transaction. No nft/iptables process is ever run.
 *
 * The rendering is pure (nft JSON built with jansson; every value in it was
 * validated first) so it is tested without root; nft_apply sends it;
 * nft_read lists the tables back as JSON and compares them rule by rule
 * (every rule carries a comment "vmlet:<kind>:<ids>" naming it).
 *
 * Why our chains never use a drop policy: other tables on the host see the
 * same packets, and a drop policy in our base chain would drop host traffic
 * that is not ours. Our chains have policy accept and match only our own
 * interfaces (br-tenant-*, tn*); what vmlet forbids is dropped explicitly.
 * An accept in our chain is harmless to others: every table's base chain
 * gives its own verdict and a drop anywhere still drops.
 *
 * Why anti-spoofing lives in `bridge vmlet`: with br_netfilter the inet
 * hooks see a bridged or routed guest packet with iifname = the bridge, not
 * the TAP (nft has no physdev match in inet), so the inet table cannot tell
 * which guest sent it. The bridge family's prerouting hook sees the bridge
 * port (the TAP) as iifname, before the packet is bridged or routed, and
 * works whether or not br_netfilter is loaded. Isolation does not depend
 * on br_netfilter either: traffic between two tenant bridges is always
 * routed, so it always crosses the inet forward hook. (`meta ibrname`,
 * which would also pin a TAP to its bridge, needs CONFIG_NFT_BRIDGE_META,
 * missing on some kernels; the TAP's master is checked over netlink.)
 *
 * The rules themselves are listed, with the reason for each, above the
 * render_* functions in nft.c; tests/unit/test_hostd_nft.c shows the
 * complete ruleset of a two-tenant model as nft prints it. */
#ifndef HOSTD_NFT_H
#define HOSTD_NFT_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "shared/err.h"

#define NFT_TABLE_NAME "vmlet"
#define NFT_MAX_TENANTS 1024
#define NFT_MAX_INSTANCES 16384
#define NFT_MAX_PUBLISHES 4096

enum nft_proto { NFT_PROTO_TCP = 1, NFT_PROTO_UDP = 2 };

/* Addresses and subnets are IPv4 in host byte order (as vmlet_parse_cidr4
 * returns them). */
struct nft_tenant {
	uint32_t net_id;        /* 1..4094 */
	char bridge[IFNAMSIZ];  /* must be exactly "br-tenant-<net_id>" */
	uint32_t subnet;        /* private, host bits zero */
	unsigned prefix;        /* 16..29; gateway = subnet + 1 */
};

struct nft_instance {
	uint32_t net_id;        /* a tenant of the model */
	char tap[IFNAMSIZ];     /* "tn<net_id>i<n>", n decimal without leading zeros */
	uint32_t addr;          /* inside the tenant's subnet, not network/gateway/broadcast */
};

struct nft_publish {
	uint32_t net_id;        /* the tenant that publishes */
	uint32_t proto;         /* enum nft_proto */
	uint32_t host_port;     /* 1..65535, unique per proto */
	uint32_t addr;          /* an instance of that tenant */
	uint32_t guest_port;    /* 1..65535 */
};

/* What vmlet's rules must express. Whether a publish is allowed by the
 * port whitelist is the caller's decision (nft_publish_allowed); the model
 * itself is validated again by every function taking it. */
struct nft_model {
	char uplink[IFNAMSIZ];  /* "" = no uplink: no egress, no masquerade */
	const struct nft_tenant *tenants;
	size_t n_tenants;
	const struct nft_instance *instances;
	size_t n_instances;
	const struct nft_publish *publishes;
	size_t n_publishes;
};

/* 0 when the model is well-formed; else -1, err 400 naming the field. */
int nft_model_validate(const struct nft_model *m, struct vmlet_err *err);

/* The complete expected ruleset of both tables, as `nft -j list table`
 * prints it without handles: a JSON array of {"table"|"chain"|"rule": {...}},
 * inet table first. Pure. *out is a new reference. */
int nft_render(const struct nft_model *m, json_t **out, struct vmlet_err *err);

/* The transaction nft_apply sends: {"nftables": [add table, delete table,
 * add <everything>] for inet vmlet, then the same for bridge vmlet}. Pure. */
int nft_render_commands(const struct nft_model *m, json_t **out, struct vmlet_err *err);

/* Replace both tables with the model's rules in one transaction. On any
 * failure (validation 400, kernel refusal 500) the previous ruleset is left
 * exactly as it was. */
int nft_apply(const struct nft_model *m, struct vmlet_err *err);

/* Drop both tables (one transaction; absent tables are fine). */
int nft_remove(struct vmlet_err *err);

/* One verification result. expected/found are compact JSON (or a short
 * word such as "(missing)"), heap strings owned by the nft_verify. */
struct nft_check {
	char name[96];
	bool ok;
	char *expected;
	char *found;
};

struct nft_verify {
	struct nft_check *checks;
	size_t n_checks;
	size_t cap;
	size_t n_failed;
};

/* List both tables back from the kernel and compare them with the model's
 * rendering: each table, each chain (type, hook, priority, policy), each
 * expected rule by its comment (missing / changed), the order of our rules
 * in each chain, and anything present that we did not put there (a
 * listing nft cannot print as JSON counts as a missing table). Returns 0
 * when the comparison could be made (out->n_failed says how it went), -1
 * if the model is invalid or the kernel could not be asked. Free out with
 * nft_verify_free, also after a failure. */
int nft_read(const struct nft_model *m, struct nft_verify *out, struct vmlet_err *err);
void nft_verify_free(struct nft_verify *v);

/* ---- the port whitelist (moby-derp's rule) ---------------------------- */

#define NFT_WL_MAX 256

struct nft_wl_entry {
	char tenant[64];        /* a tenant id */
	uint32_t proto;         /* enum nft_proto */
	uint16_t lo, hi;        /* inclusive port range, 1 <= lo <= hi */
};

struct nft_whitelist {
	size_t n;
	struct nft_wl_entry e[NFT_WL_MAX];
};

/* Parse entries "tenant:proto:port" or "tenant:proto:lo-hi" (proto tcp or
 * udp) separated by commas and/or blanks; "" is an empty whitelist. As in
 * moby-derp, where the whitelist maps each port to the one pod allowed to
 * publish it, a port may be whitelisted for one tenant only: entries of two
 * tenants that overlap are refused. -1 with err 400 naming the entry. */
int nft_whitelist_parse(const char *text, struct nft_whitelist *wl, struct vmlet_err *err);

/* moby-derp: no whitelist entry, no publish. A specific host port may be
 * published only when an entry names this tenant, this protocol and a
 * range containing the port; a port in the ephemeral range is no
 * exception. 0 when allowed, else -1 with err 403 (400 for bad input). */
int nft_publish_allowed(const struct nft_whitelist *wl, const char *tenant, uint32_t proto,
			uint32_t host_port, struct vmlet_err *err);

/* The kernel's ephemeral range, /proc/sys/net/ipv4/ip_local_port_range. */
int nft_ephemeral_range(uint32_t *lo, uint32_t *hi, struct vmlet_err *err);

/* moby-derp lets a pod publish without naming a host port (the port then
 * comes from the ephemeral range), and an ephemeral port must never squat
 * on a whitelisted one: pick the lowest port of [lo, hi] that no whitelist
 * entry of any tenant covers for proto and that is not in taken[].
 * -1 with err 409 when none is left. */
int nft_publish_pick_ephemeral(const struct nft_whitelist *wl, uint32_t proto, uint32_t lo,
			       uint32_t hi, const uint32_t *taken, size_t n_taken,
			       uint32_t *port, struct vmlet_err *err);

#endif
