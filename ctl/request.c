#include "ctl/request.h"

#include <string.h>

#include "shared/validate.h"

void ctl_request_init(struct ctl_request *r)
{
	static const Vmlet__V1__AgentRequest msg = VMLET__V1__AGENT_REQUEST__INIT;
	static const Vmlet__V1__NodeInfoRequest node_info = VMLET__V1__NODE_INFO_REQUEST__INIT;
	static const Vmlet__V1__NodeStatsRequest node_stats = VMLET__V1__NODE_STATS_REQUEST__INIT;
	static const Vmlet__V1__TenantListRequest tenant_list =
		VMLET__V1__TENANT_LIST_REQUEST__INIT;
	static const Vmlet__V1__InstanceListRequest instance_list =
		VMLET__V1__INSTANCE_LIST_REQUEST__INIT;
	static const Vmlet__V1__WakeInstanceRequest wake_instance =
		VMLET__V1__WAKE_INSTANCE_REQUEST__INIT;
	static const Vmlet__V1__ReconcileRequest reconcile = VMLET__V1__RECONCILE_REQUEST__INIT;
	static const Vmlet__V1__NetVerifyRequest net_verify = VMLET__V1__NET_VERIFY_REQUEST__INIT;

	memset(r, 0, sizeof(*r));
	r->msg = msg;
	r->node_info = node_info;
	r->node_stats = node_stats;
	r->tenant_list = tenant_list;
	r->instance_list = instance_list;
	r->wake_instance = wake_instance;
	r->reconcile = reconcile;
	r->net_verify = net_verify;
}

void ctl_request_clear(struct ctl_request *r)
{
	if (r->desired_state)
		protobuf_c_message_free_unpacked(&r->desired_state->base, NULL);
	ctl_request_init(r);
}

void ctl_request_node_info(struct ctl_request *r)
{
	r->msg.request_case = VMLET__V1__AGENT_REQUEST__REQUEST_NODE_INFO;
	r->msg.node_info = &r->node_info;
}

void ctl_request_node_stats(struct ctl_request *r)
{
	r->msg.request_case = VMLET__V1__AGENT_REQUEST__REQUEST_NODE_STATS;
	r->msg.node_stats = &r->node_stats;
}

void ctl_request_tenant_list(struct ctl_request *r)
{
	r->msg.request_case = VMLET__V1__AGENT_REQUEST__REQUEST_TENANT_LIST;
	r->msg.tenant_list = &r->tenant_list;
}

/* Copy an id into fixed storage; ids longer than the buffer are invalid
 * anyway, and the validator below names them. */
static void copy_id(char *dst, size_t size, const char *src)
{
	size_t n = src ? strnlen(src, size) : 0;

	if (n >= size)
		n = size - 1;
	memcpy(dst, src ? src : "", n);
	dst[n] = '\0';
}

static bool fits(const char *s, size_t size)
{
	return !s || strnlen(s, size) < size;
}

int ctl_request_instance_list(struct ctl_request *r, const char *tenant, const char *pool,
			      struct vmlet_err *err)
{
	if (!fits(tenant, sizeof(r->tenant)))
		return vmlet_validate_id("tenant_id", tenant, err);
	if (!fits(pool, sizeof(r->pool)))
		return vmlet_validate_id("pool_id", pool, err);
	copy_id(r->tenant, sizeof(r->tenant), tenant);
	copy_id(r->pool, sizeof(r->pool), pool);
	r->instance_list.tenant_id = r->tenant;
	r->instance_list.pool_id = r->pool;
	if (vmlet_validate_instance_list(&r->instance_list, err) < 0)
		return -1;
	r->msg.request_case = VMLET__V1__AGENT_REQUEST__REQUEST_INSTANCE_LIST;
	r->msg.instance_list = &r->instance_list;
	return 0;
}

int ctl_request_wake_instance(struct ctl_request *r, const char *tenant, const char *pool,
			      const char *instance, struct vmlet_err *err)
{
	if (!fits(tenant, sizeof(r->tenant)))
		return vmlet_validate_id("tenant_id", tenant, err);
	if (!fits(pool, sizeof(r->pool)))
		return vmlet_validate_id("pool_id", pool, err);
	if (!fits(instance, sizeof(r->instance)))
		return vmlet_validate_instance_id("instance_id", instance, err);
	copy_id(r->tenant, sizeof(r->tenant), tenant);
	copy_id(r->pool, sizeof(r->pool), pool);
	copy_id(r->instance, sizeof(r->instance), instance);
	r->wake_instance.tenant_id = r->tenant;
	r->wake_instance.pool_id = r->pool;
	r->wake_instance.instance_id = r->instance;
	if (vmlet_validate_wake_instance(&r->wake_instance, err) < 0)
		return -1;
	r->msg.request_case = VMLET__V1__AGENT_REQUEST__REQUEST_WAKE_INSTANCE;
	r->msg.wake_instance = &r->wake_instance;
	return 0;
}

void ctl_request_reconcile(struct ctl_request *r, Vmlet__V1__DesiredState *ds)
{
	if (r->desired_state && r->desired_state != ds)
		protobuf_c_message_free_unpacked(&r->desired_state->base, NULL);
	r->desired_state = ds;
	r->reconcile.desired_state = ds;
	r->reconcile.signature = NULL;
	r->msg.request_case = VMLET__V1__AGENT_REQUEST__REQUEST_RECONCILE;
	r->msg.reconcile = &r->reconcile;
}

int ctl_request_net_verify(struct ctl_request *r, const char *tenant, bool deep,
			   struct vmlet_err *err)
{
	if (tenant && tenant[0]) {
		/* a valid id is at most CTL_ID_MAX characters: it fits */
		if (vmlet_validate_id("net_verify.tenant_id", tenant, err) < 0)
			return -1;
		copy_id(r->tenant, sizeof(r->tenant), tenant);
		r->net_verify.tenant_id = r->tenant;
	}
	r->net_verify.deep = deep;
	r->msg.request_case = VMLET__V1__AGENT_REQUEST__REQUEST_NET_VERIFY;
	r->msg.net_verify = &r->net_verify;
	return 0;
}
