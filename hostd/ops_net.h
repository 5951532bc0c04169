/* The tenant networks as host operations: hostd's registry says what must
 * exist (tenants -> bridges, instances -> TAPs and addresses, published
 * ports) and this module makes the kernel say the same, through
 * hostd/netlink.h (links) and hostd/nft.h (rules).
 *
 * One place builds the nftables model from the registry and applies it
 * (hostd_net_apply); applies are serialized, and each reads the registry
 * afresh, so the last apply always describes the registry as it is.
 * Without a struct hostd_net in the env (unit tests of other modules) the
 * registry half of every operation still runs and nothing touches the
 * kernel's network. */
#ifndef HOSTD_OPS_NET_H
#define HOSTD_OPS_NET_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "hostd/hostd.h"
#include "hostd/netlink.h"
#include "hostd/nft.h"
#include "hostd/reply.h"
#include "rpc/host.pb-c.h"
#include "shared/err.h"

/* "vmlet.ip=255.255.255.255/32 vmlet.gw=255.255.255.255" + NUL */
#define HOSTD_NET_CMDLINE_MAX 64

struct hostd_net;

/* Parse the config's port_whitelist with nft_whitelist_parse (400 naming
 * "[hostd] port_whitelist" when it is invalid) and keep the uplink. */
int hostd_net_open(struct hostd_net **out, const struct vmlet_config *cfg,
		   struct vmlet_err *err);
void hostd_net_close(struct hostd_net *net); /* NULL is fine */
const struct nft_whitelist *hostd_net_whitelist(const struct hostd_net *net);

/* At start: delete the interfaces of ours the registry cannot account for
 * (a bridge without a tenant, a TAP without an instance record naming it),
 * ensure every tenant's bridge and apply the rules. A tenant whose bridge
 * cannot be built is logged and the rest still converge; -1 only when the
 * kernel could not be asked at all or the rules could not be applied. */
int hostd_net_restore(const struct hostd_env *env, struct vmlet_err *err);

/* Build the model from the registry and replace vmlet's tables with it. */
int hostd_net_apply(const struct hostd_env *env, struct vmlet_err *err);

/* The network half of ensure_tenant / remove_tenant (callers hold the
 * registry's tree lock). ensure: bridge with its gateway, forwarding on.
 * remove: the bridge and every TAP of the net, in one batch. */
int hostd_net_tenant_ensure(const struct hostd_env *env, unsigned net_id, const char *subnet,
			    struct vmlet_err *err);
int hostd_net_tenant_remove(const struct hostd_env *env, unsigned net_id,
			    struct vmlet_err *err);

/* Pick a new instance's network: the lowest net index and the lowest
 * host address from .2 upward (never the network, gateway or broadcast
 * address) that no instance record of the tenant holds. Pure over the
 * registry; the caller holds the tree lock and persists the result in the
 * instance record. 409 when the subnet (or the index space) is full. */
int hostd_net_allocate(const struct hostd_registry *reg,
		       const Vmlet__Host__V1__TenantRecord *tenant, unsigned *index,
		       char addr[INET_ADDRSTRLEN], char tap[NET_IFNAME_MAX],
		       struct vmlet_err *err);

/* START's network: the TAP (owned by the instance's uid/gid, on the
 * tenant bridge), an fd of it for the VMM (*tap_fd, O_CLOEXEC), the guest
 * MAC and "vmlet.ip=<addr>/<prefix> vmlet.gw=<gateway>" for the kernel
 * command line; then the rules. Detach (destroy): the TAP and the rules.
 * 400 when the record carries no network (created before networking). */
int hostd_net_instance_attach(const struct hostd_env *env,
			      const Vmlet__Host__V1__InstanceRecord *rec, int *tap_fd,
			      uint8_t mac[NET_MAC_LEN], char cmdline[HOSTD_NET_CMDLINE_MAX],
			      struct vmlet_err *err);
int hostd_net_instance_detach(const struct hostd_env *env,
			      const Vmlet__Host__V1__InstanceRecord *rec, struct vmlet_err *err);

/* Host operations (dispatch table rows). */
int hostd_op_publish_port(const struct hostd_env *env, const Vmlet__Host__V1__HostRequest *req,
			  struct hostd_reply *reply, struct vmlet_err *err);
int hostd_op_unpublish_port(const struct hostd_env *env,
			    const Vmlet__Host__V1__HostRequest *req, struct hostd_reply *reply,
			    struct vmlet_err *err);
int hostd_op_verify_network(const struct hostd_env *env,
			    const Vmlet__Host__V1__HostRequest *req, struct hostd_reply *reply,
			    struct vmlet_err *err);
int hostd_op_reapply_network(const struct hostd_env *env,
			     const Vmlet__Host__V1__HostRequest *req, struct hostd_reply *reply,
			     struct vmlet_err *err);

#endif
