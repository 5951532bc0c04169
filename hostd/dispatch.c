#include "hostd/dispatch.h"

#include <time.h>

#include "hostd/ops_instance.h"
#include "hostd/ops_net.h"
#include "hostd/ops_query.h"
#include "rpc/strict.h"
#include "shared/log.h"

typedef int (*hostd_op_fn)(const struct hostd_env *env, const Vmlet__Host__V1__HostRequest *req,
			   struct hostd_reply *reply, struct vmlet_err *err);

struct host_op {
	const char *name;   /* the oneof member's name in host.proto */
	hostd_op_fn handler;
};

/* Every operation hostd performs, indexed by HostRequest's oneof case.
 * A request is served only if its case has a row here. */
static const struct host_op host_ops[] = {
	[VMLET__HOST__V1__HOST_REQUEST__OP_NODE_FACTS] = { "node_facts", hostd_op_node_facts },
	[VMLET__HOST__V1__HOST_REQUEST__OP_NODE_STATS] = { "node_stats", hostd_op_node_stats },
	[VMLET__HOST__V1__HOST_REQUEST__OP_LIST_TENANTS] = { "list_tenants", hostd_op_list_tenants },
	[VMLET__HOST__V1__HOST_REQUEST__OP_LIST_INSTANCES] = { "list_instances",
							       hostd_op_list_instances },
	[VMLET__HOST__V1__HOST_REQUEST__OP_LOOKUP_INSTANCE] = { "lookup_instance",
								hostd_op_lookup_instance },
	[VMLET__HOST__V1__HOST_REQUEST__OP_ENSURE_TENANT] = { "ensure_tenant",
							      hostd_op_ensure_tenant },
	[VMLET__HOST__V1__HOST_REQUEST__OP_REMOVE_TENANT] = { "remove_tenant",
							      hostd_op_remove_tenant },
	[VMLET__HOST__V1__HOST_REQUEST__OP_ENSURE_POOL] = { "ensure_pool", hostd_op_ensure_pool },
	[VMLET__HOST__V1__HOST_REQUEST__OP_REMOVE_POOL] = { "remove_pool", hostd_op_remove_pool },
	[VMLET__HOST__V1__HOST_REQUEST__OP_CREATE_INSTANCE] = { "create_instance",
								hostd_op_create_instance },
	[VMLET__HOST__V1__HOST_REQUEST__OP_INSTANCE_ACTION] = { "instance_action",
								hostd_op_instance_action },
	[VMLET__HOST__V1__HOST_REQUEST__OP_PUBLISH_PORT] = { "publish_port", hostd_op_publish_port },
	[VMLET__HOST__V1__HOST_REQUEST__OP_UNPUBLISH_PORT] = { "unpublish_port",
							       hostd_op_unpublish_port },
	[VMLET__HOST__V1__HOST_REQUEST__OP_VERIFY_NETWORK] = { "verify_network",
							       hostd_op_verify_network },
	[VMLET__HOST__V1__HOST_REQUEST__OP_REAPPLY_NETWORK] = { "reapply_network",
								hostd_op_reapply_network },
};

#define N_HOST_OPS (sizeof(host_ops) / sizeof(host_ops[0]))

static const struct host_op *find_op(int op_case)
{
	if (op_case <= 0 || (size_t)op_case >= N_HOST_OPS || !host_ops[op_case].handler)
		return NULL;
	return &host_ops[op_case];
}

const char *hostd_op_name(int op_case)
{
	const struct host_op *op = find_op(op_case);

	return op ? op->name : NULL;
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void hostd_dispatch(const struct hostd_env *env, const uint8_t *buf, size_t len,
		    struct hostd_reply *reply)
{
	Vmlet__Host__V1__HostRequest *req = NULL;
	const struct host_op *op = NULL;
	const char *op_name = "-";
	uint64_t start = now_us();
	struct vmlet_err err;
	int rc = -1;

	hostd_reply_init(reply);
	vmlet_err_clear(&err);
	req = (Vmlet__Host__V1__HostRequest *)vmlet_strict_unpack(
		&vmlet__host__v1__host_request__descriptor, buf, len, &err);
	if (!req) {
		vmlet_err_prefix(&err, "host request: ");
		goto out;
	}
	op = find_op((int)req->op_case);
	if (!op) {
		vmlet_err_set(&err, VMLET_E_INVALID, 0, "host request: unknown operation %d",
			      (int)req->op_case);
		goto out;
	}
	op_name = op->name;
	rc = op->handler(env, req, reply, &err);
	if (rc == 0 && reply->oom)
		rc = vmlet_err_set(&err, VMLET_E_INTERNAL, 0, "%s: out of memory", op_name);
	if (rc == 0 && reply->resp.result_case == VMLET__HOST__V1__HOST_RESPONSE__RESULT__NOT_SET)
		rc = vmlet_err_set(&err, VMLET_E_INTERNAL, 0, "%s: no result", op_name);
out:
	if (rc < 0) {
		char qmsg[VLOG_STR_MAX];

		if (err.code == VMLET_OK)
			err.code = VMLET_E_INTERNAL;
		hostd_reply_set_error(reply, &err);
		vlog(VLOG_WARN, "host_request", "op=%s code=%d duration_us=%llu error=%s", op_name,
		     err.code, (unsigned long long)(now_us() - start),
		     vlog_str(reply->error_msg, qmsg, sizeof(qmsg)));
	} else {
		vlog(VLOG_DEBUG, "host_request", "op=%s code=200 duration_us=%llu", op_name,
		     (unsigned long long)(now_us() - start));
	}
	if (req)
		protobuf_c_message_free_unpacked(&req->base, NULL);
}
