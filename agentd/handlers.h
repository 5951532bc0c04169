/* agentd's request dispatch table (OpenSSH monitor.c style): one row per
 * AgentRequest oneof case saying what the request is called, on which
 * transports it is accepted and how it is served. A request is decoded
 * strictly, looked up here, checked against its transport, validated and
 * turned into one host request by prepare(); hostd's answer is turned into
 * the AgentResponse by finish(). */
#ifndef VMLET_AGENTD_HANDLERS_H
#define VMLET_AGENTD_HANDLERS_H

#include <stddef.h>
#include <stdint.h>

#include "rpc/agent.pb-c.h"
#include "rpc/host.pb-c.h"
#include "shared/config.h"
#include "shared/err.h"

enum agentd_transport {
	AGENTD_TRANSPORT_TLS = 1u << 0,   /* coordinator, mutual TLS */
	AGENTD_TRANSPORT_LOCAL = 1u << 1, /* admin, unix socket */
};

const char *agentd_transport_name(unsigned transport);

struct agentd_reconciler; /* agentd/reconcile.h */

/* Storage for the host request prepare() builds; its strings borrow from
 * the AgentRequest, so it is packed before that is freed. */
struct agentd_host_call {
	Vmlet__Host__V1__HostRequest req;
	union {
		Vmlet__Host__V1__NodeFactsRequest node_facts;
		Vmlet__Host__V1__NodeStatsRequest node_stats;
		Vmlet__Host__V1__ListTenantsRequest list_tenants;
		Vmlet__Host__V1__ListInstancesRequest list_instances;
		Vmlet__Host__V1__LookupInstanceRequest lookup_instance;
		Vmlet__Host__V1__InstanceActionRequest instance_action;
		Vmlet__Host__V1__VerifyNetworkRequest verify_network;
	} op;
};

/* Result messages finish() builds itself (the rest borrow from hostd's
 * reply). */
union agentd_reply_scratch {
	Vmlet__V1__WakeInstanceResult wake_instance;
};

struct agentd_handler {
	int request_case; /* Vmlet__V1__AgentRequest__RequestCase; 0 = empty row */
	const char *name; /* the oneof member's name, used in logs */
	unsigned transports;
	/* Validate and fill call (returns 0), or -1 with err: the request is
	 * answered with Error{err.code, err.msg} and nothing reaches hostd. */
	int (*prepare)(const Vmlet__V1__AgentRequest *req, const struct vmlet_config *cfg,
		       struct agentd_host_call *call, struct vmlet_err *err);
	/* hostd answered with a result (not an error): fill out, whose
	 * sub-messages may borrow from resp (and from *scratch, storage the
	 * caller keeps alive as long as out); or -1 with err. elapsed_us is
	 * the time from agentd's receipt of the request to hostd's answer. */
	int (*finish)(const Vmlet__Host__V1__HostResponse *resp, uint64_t elapsed_us,
		      union agentd_reply_scratch *scratch, Vmlet__V1__AgentResponse *out,
		      struct vmlet_err *err);
	/* Set for a request served inside agentd rather than by one host
	 * request (reconcile): called instead of submitting call, after
	 * prepare() accepted the request. 0: the answer comes later
	 * (agentd_conn_on_served, matched by cookie); -1 + err: answered now. */
	int (*serve)(const Vmlet__V1__AgentRequest *req, struct agentd_reconciler *rec,
		     uint64_t cookie, struct vmlet_err *err);
};

/* Indexed by request case. */
extern const struct agentd_handler agentd_handlers[];
extern const size_t agentd_handlers_len;

/* The row for a request case, or NULL with err: 400 for a case the table
 * does not have, 403 when the transport is not allowed for it. */
const struct agentd_handler *agentd_handler_lookup(const struct agentd_handler *table, size_t len,
						   int request_case, unsigned transport,
						   struct vmlet_err *err);

/* hostd's reply to a request handled by h: a HostError becomes -1 with the
 * same code (5xx/4xx kept, anything else 500) and message; a result goes
 * through h->finish (elapsed_us and scratch as there). */
int agentd_handler_reply(const struct agentd_handler *h, const Vmlet__Host__V1__HostResponse *resp,
			 uint64_t elapsed_us, union agentd_reply_scratch *scratch,
			 Vmlet__V1__AgentResponse *out, struct vmlet_err *err);

#endif
