/* The lifecycle host operations: ensure/remove tenant and pool, create an
 * instance, and instance_action (the transition table in lifecycle.h).
 * Each re-validates its request as if it came from an attacker, is
 * idempotent, and writes one line to the tenant's audit log. */
#ifndef HOSTD_OPS_INSTANCE_H
#define HOSTD_OPS_INSTANCE_H

#include "hostd/hostd.h"
#include "hostd/reply.h"
#include "rpc/host.pb-c.h"
#include "shared/err.h"

/* The registry tree's lock (tenants, pools, instance creation and
 * removal, a tenant's published ports): held by every change to the tree
 * so that checks and writes cannot interleave. */
void hostd_tree_lock(void);
void hostd_tree_unlock(void);

int hostd_op_ensure_tenant(const struct hostd_env *env, const Vmlet__Host__V1__HostRequest *req,
			   struct hostd_reply *reply, struct vmlet_err *err);
int hostd_op_remove_tenant(const struct hostd_env *env, const Vmlet__Host__V1__HostRequest *req,
			   struct hostd_reply *reply, struct vmlet_err *err);
int hostd_op_ensure_pool(const struct hostd_env *env, const Vmlet__Host__V1__HostRequest *req,
			 struct hostd_reply *reply, struct vmlet_err *err);
int hostd_op_remove_pool(const struct hostd_env *env, const Vmlet__Host__V1__HostRequest *req,
			 struct hostd_reply *reply, struct vmlet_err *err);
int hostd_op_create_instance(const struct hostd_env *env,
			     const Vmlet__Host__V1__HostRequest *req, struct hostd_reply *reply,
			     struct vmlet_err *err);
int hostd_op_instance_action(const struct hostd_env *env,
			     const Vmlet__Host__V1__HostRequest *req, struct hostd_reply *reply,
			     struct vmlet_err *err);

#endif
