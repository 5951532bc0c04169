/* Tenant links through rtnetlink (libnl-3): one bridge per tenant network,
 * one persistent TAP per instance NIC. Never runs ip/brctl.
 *
 * Names:  bridge  br-tenant-<net_id>         net_id 1..4094
 *         TAP     tn<net_id>i<index>         index 0..65535 (<= 12 chars)
 * MACs (locally administered unicast, unique per (net_id, index) and role):
 *         guest NIC   02:fc:NH:NL:IH:IL   (given to the VMM, not set here)
 *         TAP (host)  02:fd:NH:NL:IH:IL   (must differ from the guest's, or
 *                                          the bridge takes the guest's frames
 *                                          for its own)
 *         bridge      02:fe:NH:NL:00:00   (fixed, so the gateway's MAC does
 *                                          not follow the lowest port's)
 *         NH:NL = net_id, IH:IL = index, big-endian.
 * Ownership: vmlet marks what it creates with an IFLA_IFALIAS,
 * "vmlet:tenant=<net_id>" on bridges and "vmlet:tap=<net_id>/<index>" on
 * TAPs. An interface is "ours" only when its alias parses, its name is the
 * one the alias implies and its kind is right (bridge / tun in TAP mode).
 * Anything else carrying one of our names is foreign: refused with 409 and
 * left untouched, never adopted. One exception: a bridge with our name, no
 * alias at all and exactly our derived bridge MAC is a bridge_ensure that
 * died between RTM_NEWLINK and setting the alias (the kernel ignores
 * IFLA_IFALIAS on create), and is completed. TAPs need no such rule: the
 * alias is set before TUNSETPERSIST, so a crash leaves no TAP at all.
 *
 * Every entry point re-validates its arguments (400, nothing changed).
 * Functions return negative and fill *err. A ctx is one rtnetlink socket
 * bound to the network namespace it was opened in; it is not thread-safe
 * (one per worker). Reads are fresh kernel queries, never a stale cache. */
#ifndef HOSTD_NETLINK_H
#define HOSTD_NETLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shared/err.h"

#define NET_ID_MIN 1
#define NET_ID_MAX 4094
#define NET_INDEX_MAX 65535u /* the MAC carries 16 bits of index */
#define NET_IFNAME_MAX 16    /* IFNAMSIZ, with the NUL */
#define NET_ALIAS_MAX 64     /* longest alias we read back in full */
#define NET_KIND_MAX 16
#define NET_ADDRS_MAX 16
#define NET_MAC_LEN 6
#define NET_MAC_STR 18       /* "02:fc:00:07:00:01" + NUL */

struct net_ctx;

/* ---- pure derivations (no kernel, no root) -------------------------------- */

int net_bridge_name(unsigned net_id, char name[NET_IFNAME_MAX], struct vmlet_err *err);
int net_tap_name(unsigned net_id, unsigned index, char name[NET_IFNAME_MAX],
		 struct vmlet_err *err);
int net_guest_mac(unsigned net_id, unsigned index, uint8_t mac[NET_MAC_LEN],
		  struct vmlet_err *err);
int net_tap_mac(unsigned net_id, unsigned index, uint8_t mac[NET_MAC_LEN], struct vmlet_err *err);
int net_bridge_mac(unsigned net_id, uint8_t mac[NET_MAC_LEN], struct vmlet_err *err);
/* "02:fc:00:07:00:01" */
void net_mac_format(const uint8_t mac[NET_MAC_LEN], char out[NET_MAC_STR]);
/* Tenant subnet ("10.70.0.0/24", vmlet_validate_tenant_subnet's rules) ->
 * gateway = first host, host byte order, with the subnet's prefix. */
int net_gateway(const char *subnet, uint32_t *gateway, unsigned *prefix, struct vmlet_err *err);

/* ---- context -------------------------------------------------------------- */

int net_open(struct net_ctx **out, struct vmlet_err *err);
void net_close(struct net_ctx *ctx); /* NULL is fine */

/* ---- operations ----------------------------------------------------------- */

/* Create br-tenant-<net_id> if missing (alias, bridge MAC), set it up, add
 * the gateway (first host of subnet, subnet prefix) if missing, read it
 * back. Other IPv4 addresses on it are kept and logged (net_read reports
 * them; removing is an operator's call). 409 when the name is taken by
 * anything that is not ours. *ifindex (may be NULL) gets the bridge's. */
int net_bridge_ensure(struct net_ctx *ctx, unsigned net_id, const char *subnet, int *ifindex,
		      struct vmlet_err *err);

/* Remove the tenant's bridge and every TAP carrying this net's alias, in one
 * kernel batch (a temporary link group: the kernel's RCU waits are paid
 * once, not per link). Refuses (409, nothing removed) when the name is
 * taken by a foreign interface or a foreign interface is a port of the
 * bridge (vmlet does not delete or detach what it did not create).
 * Missing bridge: the TAPs still go; nothing at all: 0. */
int net_bridge_remove(struct net_ctx *ctx, unsigned net_id, struct vmlet_err *err);

/* Create (or converge) TAP tn<net_id>i<index>: IFF_TAP|IFF_NO_PI|IFF_VNET_HDR,
 * owner uid/gid (per-instance ids: >= 65536, not -1), alias, host-side MAC,
 * master = the tenant bridge (404 when the bridge is missing, 409 when
 * foreign), up, persistent; read back. A TAP that exists and is ours is
 * re-owned only when it is not attached (409 if a VMM holds it). */
int net_tap_ensure(struct net_ctx *ctx, unsigned net_id, unsigned index, uid_t owner_uid,
		   gid_t owner_gid, int *ifindex, struct vmlet_err *err);

/* Attach to our persistent TAP (TUNSETIFF, same flags) and return the fd
 * (O_CLOEXEC) for the VMM (QEMU -netdev tap,fd=N finds vnet_hdr itself).
 * 404 missing, 409 foreign or already attached (one queue, one holder). */
int net_tap_open_fd(struct net_ctx *ctx, unsigned net_id, unsigned index, int *fd,
		    struct vmlet_err *err);

/* Delete our TAP. Missing: 0. Foreign: 409, untouched. */
int net_tap_remove(struct net_ctx *ctx, unsigned net_id, unsigned index, struct vmlet_err *err);

/* net.ipv4.ip_forward = 1 in the caller's network namespace, read back. */
int net_ip_forward_enable(struct vmlet_err *err);

/* ---- read back (net verify, reaping) --------------------------------------- */

enum net_role { NET_ROLE_FOREIGN = 0, NET_ROLE_BRIDGE, NET_ROLE_TAP };

struct net_link {
	int ifindex;
	char name[NET_IFNAME_MAX];
	char kind[NET_KIND_MAX];   /* IFLA_INFO_KIND ("bridge", "tun", "veth"), "" none */
	char alias[NET_ALIAS_MAX]; /* "" none (longer aliases are cut) */
	bool up;                   /* IFF_UP (administrative) */
	int master;                /* ifindex of the master, 0 none */
	uint32_t group;
	bool has_mac;
	uint8_t mac[NET_MAC_LEN];
	/* tun devices (kind "tun") */
	bool tap;                  /* IFLA_TUN_TYPE is IFF_TAP */
	bool persist;
	bool has_owner, has_group;
	uint32_t owner, owner_group;
	/* what the alias says, when role != FOREIGN */
	enum net_role role;
	unsigned net_id;
	unsigned index;            /* TAPs */
};

struct net_addr4 {
	uint32_t addr; /* host byte order */
	unsigned prefix;
};

struct net_state {
	unsigned net_id;
	bool bridge_exists;        /* an interface named br-tenant-<net_id> */
	struct net_link bridge;    /* valid when bridge_exists; .role says whether ours */
	size_t naddrs;             /* its IPv4 addresses */
	struct net_addr4 addrs[NET_ADDRS_MAX];
	bool addrs_truncated;      /* more than NET_ADDRS_MAX */
	/* Every interface that is a port of the bridge, carries a TAP alias of
	 * this net, or is named like one of its TAPs; sorted by name. */
	size_t nlinks;
	struct net_link *links;
};

/* Fill *out for net verify (free with net_state_free). Missing bridge is
 * not an error. */
int net_read(struct net_ctx *ctx, unsigned net_id, struct net_state *out, struct vmlet_err *err);
void net_state_free(struct net_state *st);

/* Every interface that is ours (role != FOREIGN), all nets, sorted by
 * name; *out is malloc'd (free()). */
int net_list_ours(struct net_ctx *ctx, struct net_link **out, size_t *n, struct vmlet_err *err);

/* Delete the given interfaces of ours in one batch (the reaper's tool).
 * Each is re-read first: ifindex, name and ownership must still match, or
 * nothing is deleted (409). Interfaces already gone are skipped. */
int net_remove_links(struct net_ctx *ctx, const struct net_link *links, size_t n,
		     struct vmlet_err *err);

#endif
