/* Rendering agentd's answers for people (aligned tables, "key: value"
 * lines) or as JSON (rpc/json.h). Every string from the server is printed
 * with control characters escaped: a hostile agentd (or tenant-supplied
 * text in a last_error) cannot drive the terminal. */
#ifndef VMLET_CTL_OUTPUT_H
#define VMLET_CTL_OUTPUT_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "rpc/agent.pb-c.h"
#include "shared/err.h"

/* All return 0, or -1 + err when output could not be produced (no memory,
 * JSON encoding failure). */

/* Every singular field as "name: value", sub-messages as "name.field: v";
 * repeated fields are left to the caller. */
int ctl_render_fields(FILE *out, const ProtobufCMessage *msg, const char *prefix,
		      struct vmlet_err *err);

int ctl_render_node_info(FILE *out, const Vmlet__V1__NodeInfo *m, struct vmlet_err *err);
int ctl_render_node_stats(FILE *out, const Vmlet__V1__NodeStats *m, struct vmlet_err *err);
int ctl_render_tenant_list(FILE *out, const Vmlet__V1__TenantListResult *m,
			   struct vmlet_err *err);
/* Columns STATE, UPTIME (running only: since its last start, resume or
 * wake), AGE (since created), PID, ...; _at takes "now" (unix seconds). */
int ctl_render_instance_list(FILE *out, const Vmlet__V1__InstanceListResult *m,
			     struct vmlet_err *err);
int ctl_render_instance_list_at(FILE *out, const Vmlet__V1__InstanceListResult *m,
				uint64_t now_unix, struct vmlet_err *err);
/* net verify: PASS/FAIL per check, expected/found under failures (and
 * under every check in --deep mode); returns 1 when any check failed. */
int ctl_render_net_verify(FILE *out, const Vmlet__V1__NetVerifyResult *m, struct vmlet_err *err);
int ctl_render_wake_instance(FILE *out, const Vmlet__V1__WakeInstanceResult *m,
			     struct vmlet_err *err);
int ctl_render_reconcile_report(FILE *out, const Vmlet__V1__ReconcileReport *m,
				struct vmlet_err *err);
/* "error <code> <name>: <message>\n" */
void ctl_render_error(FILE *errf, const Vmlet__V1__Error *e);

/* Pretty JSON of any message plus a newline. */
int ctl_render_json(FILE *out, const ProtobufCMessage *msg, struct vmlet_err *err);

/* The member set in an AgentResponse (NULL when none). */
const ProtobufCMessage *ctl_response_body(const Vmlet__V1__AgentResponse *resp);
const char *ctl_response_case_name(Vmlet__V1__AgentResponse__ResponseCase c);

/* Render resp for a command that expects `expect`: the result (human or
 * JSON) on out, an Error on errf (or as JSON on out). Returns 0 for a
 * result, 1 for an Error, -1 + err for an answer of the wrong kind or when
 * rendering failed. */
int ctl_render_response(FILE *out, FILE *errf, const Vmlet__V1__AgentResponse *resp,
			Vmlet__V1__AgentResponse__ResponseCase expect, bool json,
			struct vmlet_err *err);

/* Write s with control characters and DEL escaped as \xHH. */
void ctl_put_safe(FILE *out, const char *s);

#endif
