#include "agentd/handlers.h"

#include <stdio.h>
#include <string.h>

#include "agentd/reconcile.h"
#include "shared/validate.h"

const char *agentd_transport_name(unsigned transport)
{
	switch (transport) {
	case AGENTD_TRANSPORT_TLS:
		return "tls";
	case AGENTD_TRANSPORT_LOCAL:
		return "local";
	default:
		return "unknown";
	}
}

/* ---- prepare: AgentRequest -> HostRequest -------------------------------- */

static int prepare_node_info(const Vmlet__V1__AgentRequest *req, const struct vmlet_config *cfg,
			     struct agentd_host_call *call, struct vmlet_err *err)
{
	vmlet__host__v1__node_facts_request__init(&call->op.node_facts);
	call->req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_NODE_FACTS;
	call->req.node_facts = &call->op.node_facts;
	return 0;
}

static int prepare_node_stats(const Vmlet__V1__AgentRequest *req, const struct vmlet_config *cfg,
			      struct agentd_host_call *call, struct vmlet_err *err)
{
	vmlet__host__v1__node_stats_request__init(&call->op.node_stats);
	call->req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_NODE_STATS;
	call->req.node_stats = &call->op.node_stats;
	return 0;
}

static int prepare_tenant_list(const Vmlet__V1__AgentRequest *req, const struct vmlet_config *cfg,
			       struct agentd_host_call *call, struct vmlet_err *err)
{
	vmlet__host__v1__list_tenants_request__init(&call->op.list_tenants);
	call->req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_LIST_TENANTS;
	call->req.list_tenants = &call->op.list_tenants;
	return 0;
}

static int prepare_instance_list(const Vmlet__V1__AgentRequest *req,
				 const struct vmlet_config *cfg, struct agentd_host_call *call,
				 struct vmlet_err *err)
{
	const Vmlet__V1__InstanceListRequest *r = req->instance_list;

	if (vmlet_validate_instance_list(r, err) < 0)
		return -1;
	vmlet__host__v1__list_instances_request__init(&call->op.list_instances);
	call->op.list_instances.tenant_id = r->tenant_id;
	call->op.list_instances.pool_id = r->pool_id;
	call->req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_LIST_INSTANCES;
	call->req.list_instances = &call->op.list_instances;
	return 0;
}

static int prepare_wake_instance(const Vmlet__V1__AgentRequest *req,
				 const struct vmlet_config *cfg, struct agentd_host_call *call,
				 struct vmlet_err *err)
{
	const Vmlet__V1__WakeInstanceRequest *r = req->wake_instance;

	if (vmlet_validate_wake_instance(r, err) < 0)
		return -1;
	/* One host operation does it all, under hostd's per-instance lock:
	 * hostd resumes a warm instance or restores a sleeping one and
	 * answers once the VMM runs the guest again; a running one is a
	 * no-op answered at once (idempotent); an unknown one is 404 and any
	 * other state 409 naming it. A lookup first would only add a round
	 * trip and a window for the state to change between the two. */
	vmlet__host__v1__instance_action_request__init(&call->op.instance_action);
	call->op.instance_action.tenant_id = r->tenant_id;
	call->op.instance_action.pool_id = r->pool_id;
	call->op.instance_action.instance_id = r->instance_id;
	call->op.instance_action.action = VMLET__HOST__V1__INSTANCE_ACTION__INSTANCE_ACTION_WAKE;
	call->req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_INSTANCE_ACTION;
	call->req.instance_action = &call->op.instance_action;
	return 0;
}

static int prepare_reconcile(const Vmlet__V1__AgentRequest *req, const struct vmlet_config *cfg,
			     struct agentd_host_call *call, struct vmlet_err *err)
{
	const Vmlet__V1__DesiredState *ds = req->reconcile->desired_state;

	if (!ds)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "reconcile.desired_state: required");
	if (vmlet_validate_desired_state(ds, cfg->node_id, err) < 0)
		return -1;
	/* No host request: serve_reconcile hands the state to the engine. */
	return 0;
}

/* Signature, sequence, persistence, then a pass whose ReconcileReport is
 * the answer (agentd/reconcile.h); 409 while another pass runs. */
static int serve_reconcile(const Vmlet__V1__AgentRequest *req, struct agentd_reconciler *rec,
			   uint64_t cookie, struct vmlet_err *err)
{
	if (!rec)
		return vmlet_err_set(err, VMLET_E_UNAVAILABLE, 0,
				     "the reconcile engine is not running; nothing was changed");
	return agentd_reconciler_accept(rec, req->reconcile, cookie, err);
}

/* ---- finish: HostResponse -> AgentResponse -------------------------------- */

static int unexpected(const Vmlet__Host__V1__HostResponse *resp, const char *what,
		      struct vmlet_err *err)
{
	return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
			     "hostd answered %s with an unexpected result (case %d)", what,
			     (int)resp->result_case);
}

static int finish_node_info(const Vmlet__Host__V1__HostResponse *resp, uint64_t elapsed_us,
			    union agentd_reply_scratch *scratch,
			    Vmlet__V1__AgentResponse *out, struct vmlet_err *err)
{
	if (resp->result_case != VMLET__HOST__V1__HOST_RESPONSE__RESULT_NODE_FACTS)
		return unexpected(resp, "node_info", err);
	out->response_case = VMLET__V1__AGENT_RESPONSE__RESPONSE_NODE_INFO;
	out->node_info = resp->node_facts;
	return 0;
}

static int finish_node_stats(const Vmlet__Host__V1__HostResponse *resp, uint64_t elapsed_us,
			     union agentd_reply_scratch *scratch,
			     Vmlet__V1__AgentResponse *out, struct vmlet_err *err)
{
	if (resp->result_case != VMLET__HOST__V1__HOST_RESPONSE__RESULT_NODE_STATS)
		return unexpected(resp, "node_stats", err);
	out->response_case = VMLET__V1__AGENT_RESPONSE__RESPONSE_NODE_STATS;
	out->node_stats = resp->node_stats;
	return 0;
}

static int finish_tenant_list(const Vmlet__Host__V1__HostResponse *resp, uint64_t elapsed_us,
			      union agentd_reply_scratch *scratch,
			      Vmlet__V1__AgentResponse *out, struct vmlet_err *err)
{
	if (resp->result_case != VMLET__HOST__V1__HOST_RESPONSE__RESULT_TENANTS)
		return unexpected(resp, "tenant_list", err);
	out->response_case = VMLET__V1__AGENT_RESPONSE__RESPONSE_TENANT_LIST;
	out->tenant_list = resp->tenants;
	return 0;
}

static int finish_instance_list(const Vmlet__Host__V1__HostResponse *resp, uint64_t elapsed_us,
				union agentd_reply_scratch *scratch,
				Vmlet__V1__AgentResponse *out, struct vmlet_err *err)
{
	if (resp->result_case != VMLET__HOST__V1__HOST_RESPONSE__RESULT_INSTANCES)
		return unexpected(resp, "instance_list", err);
	out->response_case = VMLET__V1__AGENT_RESPONSE__RESPONSE_INSTANCE_LIST;
	out->instance_list = resp->instances;
	return 0;
}

static int finish_wake_instance(const Vmlet__Host__V1__HostResponse *resp, uint64_t elapsed_us,
				union agentd_reply_scratch *scratch, Vmlet__V1__AgentResponse *out,
				struct vmlet_err *err)
{
	Vmlet__V1__WakeInstanceResult *w = &scratch->wake_instance;

	if (resp->result_case != VMLET__HOST__V1__HOST_RESPONSE__RESULT_INSTANCE || !resp->instance)
		return unexpected(resp, "wake_instance", err);
	/* hostd answers a wake with the instance as the wake left it: anything
	 * but running would be a success that did not happen. */
	if (resp->instance->state != VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_RUNNING)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
				     "hostd answered the wake with an instance in state %d, not running",
				     (int)resp->instance->state);
	vmlet__v1__wake_instance_result__init(w);
	w->instance = resp->instance;
	w->wake_micros = elapsed_us;
	out->response_case = VMLET__V1__AGENT_RESPONSE__RESPONSE_WAKE_INSTANCE;
	out->wake_instance = w;
	return 0;
}

/* net verify: an operator's question about this host, so local only. */
static int prepare_net_verify(const Vmlet__V1__AgentRequest *req, const struct vmlet_config *cfg,
			      struct agentd_host_call *call, struct vmlet_err *err)
{
	const Vmlet__V1__NetVerifyRequest *r = req->net_verify;

	if (r->tenant_id && r->tenant_id[0] &&
	    vmlet_validate_id("net_verify.tenant_id", r->tenant_id, err) < 0)
		return -1;
	vmlet__host__v1__verify_network_request__init(&call->op.verify_network);
	call->op.verify_network.tenant_id = r->tenant_id;
	call->op.verify_network.deep = r->deep;
	call->req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_VERIFY_NETWORK;
	call->req.verify_network = &call->op.verify_network;
	return 0;
}

static int finish_net_verify(const Vmlet__Host__V1__HostResponse *resp, uint64_t elapsed_us,
			     union agentd_reply_scratch *scratch, Vmlet__V1__AgentResponse *out,
			     struct vmlet_err *err)
{
	if (resp->result_case != VMLET__HOST__V1__HOST_RESPONSE__RESULT_NET_VERIFY ||
	    !resp->net_verify)
		return unexpected(resp, "net_verify", err);
	out->response_case = VMLET__V1__AGENT_RESPONSE__RESPONSE_NET_VERIFY;
	out->net_verify = resp->net_verify;
	return 0;
}

/* ---- the table ------------------------------------------------------------ */

#define BOTH (AGENTD_TRANSPORT_TLS | AGENTD_TRANSPORT_LOCAL)

const struct agentd_handler agentd_handlers[] = {
	[VMLET__V1__AGENT_REQUEST__REQUEST_RECONCILE] = {
		VMLET__V1__AGENT_REQUEST__REQUEST_RECONCILE, "reconcile", BOTH,
		prepare_reconcile, NULL, serve_reconcile },
	[VMLET__V1__AGENT_REQUEST__REQUEST_NODE_INFO] = {
		VMLET__V1__AGENT_REQUEST__REQUEST_NODE_INFO, "node_info", BOTH,
		prepare_node_info, finish_node_info },
	[VMLET__V1__AGENT_REQUEST__REQUEST_NODE_STATS] = {
		VMLET__V1__AGENT_REQUEST__REQUEST_NODE_STATS, "node_stats", BOTH,
		prepare_node_stats, finish_node_stats },
	[VMLET__V1__AGENT_REQUEST__REQUEST_TENANT_LIST] = {
		VMLET__V1__AGENT_REQUEST__REQUEST_TENANT_LIST, "tenant_list", BOTH,
		prepare_tenant_list, finish_tenant_list },
	[VMLET__V1__AGENT_REQUEST__REQUEST_INSTANCE_LIST] = {
		VMLET__V1__AGENT_REQUEST__REQUEST_INSTANCE_LIST, "instance_list", BOTH,
		prepare_instance_list, finish_instance_list },
	[VMLET__V1__AGENT_REQUEST__REQUEST_WAKE_INSTANCE] = {
		VMLET__V1__AGENT_REQUEST__REQUEST_WAKE_INSTANCE, "wake_instance", BOTH,
		prepare_wake_instance, finish_wake_instance },
	/* local admin only */
	[VMLET__V1__AGENT_REQUEST__REQUEST_NET_VERIFY] = {
		VMLET__V1__AGENT_REQUEST__REQUEST_NET_VERIFY, "net_verify", AGENTD_TRANSPORT_LOCAL,
		prepare_net_verify, finish_net_verify },
};

const size_t agentd_handlers_len = sizeof(agentd_handlers) / sizeof(agentd_handlers[0]);

const struct agentd_handler *agentd_handler_lookup(const struct agentd_handler *table, size_t len,
						   int request_case, unsigned transport,
						   struct vmlet_err *err)
{
	const struct agentd_handler *h;

	if (request_case <= 0 || (size_t)request_case >= len ||
	    table[request_case].request_case != request_case || !table[request_case].prepare) {
		vmlet_err_set(err, VMLET_E_INVALID, 0, "request: unknown request type %d",
			      request_case);
		return NULL;
	}
	h = &table[request_case];
	if (!(h->transports & transport)) {
		vmlet_err_set(err, VMLET_E_FORBIDDEN, 0, "%s is not allowed over the %s transport",
			      h->name, agentd_transport_name(transport));
		return NULL;
	}
	return h;
}

int agentd_handler_reply(const struct agentd_handler *h, const Vmlet__Host__V1__HostResponse *resp,
			 uint64_t elapsed_us, union agentd_reply_scratch *scratch,
			 Vmlet__V1__AgentResponse *out, struct vmlet_err *err)
{
	if (resp->result_case == VMLET__HOST__V1__HOST_RESPONSE__RESULT_ERROR) {
		const Vmlet__Host__V1__HostError *he = resp->error;
		if (!he)
			return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "hostd sent an empty error");
		/* hostd's codes travel unchanged; a code outside the error range
		 * would read as success or nonsense to the client. */
		if (he->code < 400 || he->code > 599)
			return vmlet_err_set(err, VMLET_E_INTERNAL, he->sys_errno,
					     "hostd error with invalid code %u: %s", he->code,
					     he->message);
		return vmlet_err_set(err, (int)he->code, he->sys_errno, "%s", he->message);
	}
	if (!h->finish)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "%s does not expect a hostd reply",
				     h->name);
	return h->finish(resp, elapsed_us, scratch, out, err);
}
