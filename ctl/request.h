/* Building AgentRequests, apart from sending them: a command fills a
 * struct ctl_request, and whatever must be added before it goes out (a
 * desired-state signature, in the reconcile engine issue) is attached to
 * the finished request by the caller. */
#ifndef VMLET_CTL_REQUEST_H
#define VMLET_CTL_REQUEST_H

#include <stdbool.h>

#include "rpc/agent.pb-c.h"
#include "shared/err.h"

#define CTL_ID_MAX 63
#define CTL_INSTANCE_ID_MAX 10

/* An AgentRequest and the storage its sub-messages point into. */
struct ctl_request {
	Vmlet__V1__AgentRequest msg;
	Vmlet__V1__NodeInfoRequest node_info;
	Vmlet__V1__NodeStatsRequest node_stats;
	Vmlet__V1__TenantListRequest tenant_list;
	Vmlet__V1__InstanceListRequest instance_list;
	Vmlet__V1__WakeInstanceRequest wake_instance;
	Vmlet__V1__ReconcileRequest reconcile;
	Vmlet__V1__NetVerifyRequest net_verify;
	/* Owned: decoded by vmlet_json_decode, freed by ctl_request_clear. */
	Vmlet__V1__DesiredState *desired_state;
	/* The desired state's signature, when the command signs it
	 * (reconcile --sign-key): reconcile.signature points here. */
	Vmlet__V1__Signature signature;
	uint8_t signature_bytes[64];
	char signature_key_id[CTL_ID_MAX + 1];
	char tenant[CTL_ID_MAX + 1];
	char pool[CTL_ID_MAX + 1];
	char instance[CTL_INSTANCE_ID_MAX + 1];
};

void ctl_request_init(struct ctl_request *r);
void ctl_request_clear(struct ctl_request *r);

void ctl_request_node_info(struct ctl_request *r);
void ctl_request_node_stats(struct ctl_request *r);
void ctl_request_tenant_list(struct ctl_request *r);
/* pool may be NULL or "" (every pool). Ids are checked (400 otherwise). */
int ctl_request_instance_list(struct ctl_request *r, const char *tenant, const char *pool,
			      struct vmlet_err *err);
int ctl_request_wake_instance(struct ctl_request *r, const char *tenant, const char *pool,
			      const char *instance, struct vmlet_err *err);
/* Takes ownership of ds. The request carries no signature; a signer sets
 * r->reconcile.signature afterwards. */
/* tenant may be NULL or "" (every tenant); checked (400 otherwise). */
int ctl_request_net_verify(struct ctl_request *r, const char *tenant, bool deep,
			   struct vmlet_err *err);
void ctl_request_reconcile(struct ctl_request *r, Vmlet__V1__DesiredState *ds);

#endif
