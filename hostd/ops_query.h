/* The read-only host operations of the spine: node facts, node stats,
 * tenant and instance lists, instance lookup. Each handler re-validates
 * its request as if it came from an attacker and builds its result in the
 * reply; -1 + err (the reply then carries HostError). */
#ifndef HOSTD_OPS_QUERY_H
#define HOSTD_OPS_QUERY_H

#include "hostd/hostd.h"
#include "hostd/reply.h"
#include "rpc/host.pb-c.h"
#include "shared/err.h"

int hostd_op_node_facts(const struct hostd_env *env, const Vmlet__Host__V1__HostRequest *req,
			struct hostd_reply *reply, struct vmlet_err *err);
int hostd_op_node_stats(const struct hostd_env *env, const Vmlet__Host__V1__HostRequest *req,
			struct hostd_reply *reply, struct vmlet_err *err);
int hostd_op_list_tenants(const struct hostd_env *env, const Vmlet__Host__V1__HostRequest *req,
			  struct hostd_reply *reply, struct vmlet_err *err);
int hostd_op_list_instances(const struct hostd_env *env, const Vmlet__Host__V1__HostRequest *req,
			    struct hostd_reply *reply, struct vmlet_err *err);
int hostd_op_lookup_instance(const struct hostd_env *env, const Vmlet__Host__V1__HostRequest *req,
			     struct hostd_reply *reply, struct vmlet_err *err);

/* The InstanceInfo of a record, allocated in the reply (NULL: out of
 * memory). Shared with the lifecycle operations, which answer with it. */
Vmlet__V1__InstanceInfo *hostd_instance_info(struct hostd_reply *reply,
					     const Vmlet__Host__V1__InstanceRecord *r);

#endif
