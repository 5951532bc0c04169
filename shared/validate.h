/* DESIGN.md's validation rules, one implementation linked into agentd and
 * hostd. Every rejection names the field path and why, e.g.
 *   tenants[1].pools[0].pool_id: "Bad_ID" must match [a-z0-9-]{1,63} without leading or trailing '-'
 * All return 0 when valid, -1 with err->code = VMLET_E_INVALID otherwise. */
#ifndef VMLET_VALIDATE_H
#define VMLET_VALIDATE_H

#include <stdbool.h>
#include <stdint.h>

#include "rpc/agent.pb-c.h"
#include "shared/err.h"

#define VMLET_MAX_PER_STATE 100
#define VMLET_NET_ID_MIN 1
#define VMLET_NET_ID_MAX 4094
#define VMLET_VCPUS_MIN 1
#define VMLET_VCPUS_MAX 32
#define VMLET_MEM_MIB_MIN 64
#define VMLET_MEM_MIB_MAX 262144
#define VMLET_MAX_TENANTS 1024
#define VMLET_MAX_POOLS_PER_TENANT 256

/* tenant/pool/node ids: 1-63 of [a-z0-9-], no leading/trailing '-'. */
bool vmlet_id_ok(const char *s);
/* instance ids: "i-" + 8 lowercase hex. */
bool vmlet_instance_id_ok(const char *s);

int vmlet_validate_id(const char *field, const char *s, struct vmlet_err *err);
int vmlet_validate_instance_id(const char *field, const char *s, struct vmlet_err *err);

/* Parse "a.b.c.d/n" strictly (no leading zeros, no spaces, host bits zero).
 * net is in host byte order. */
int vmlet_parse_cidr4(const char *field, const char *s, uint32_t *net, unsigned *prefix,
		      struct vmlet_err *err);
/* A valid private (RFC 1918) IPv4 CIDR with prefix /16../29. */
int vmlet_validate_tenant_subnet(const char *field, const char *s, struct vmlet_err *err);

/* The whole desired state. node_id may be NULL to skip the node check. */
int vmlet_validate_desired_state(const Vmlet__V1__DesiredState *ds, const char *node_id,
				 struct vmlet_err *err);

/* Requests other than Reconcile (ids present and well-formed). */
int vmlet_validate_instance_list(const Vmlet__V1__InstanceListRequest *r, struct vmlet_err *err);
int vmlet_validate_wake_instance(const Vmlet__V1__WakeInstanceRequest *r, struct vmlet_err *err);

#endif
