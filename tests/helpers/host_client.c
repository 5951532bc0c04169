/* Test helper: drive hostd's lifecycle operations (rpc/host.proto fields
 * 10-15) and the spine's queries over NNG; prints the HostResponse as
 * key=value lines (nested fields as a.b). Used by
 * tests/integration/runtime_*.sh.
 *
 *   host_client [--timeout MS] URL ensure_tenant TENANT NET_ID SUBNET
 *   host_client [--timeout MS] URL remove_tenant TENANT
 *   host_client [--timeout MS] URL ensure_pool TENANT POOL [SPEC_HASH]
 *   host_client [--timeout MS] URL remove_pool TENANT POOL
 *   host_client [--timeout MS] URL create TENANT POOL INSTANCE VCPUS MEM_MIB IMAGE [SPEC_HASH]
 *   host_client [--timeout MS] URL action TENANT POOL INSTANCE ACTION [GRACEFUL_MS]
 *        ACTION: start stop pause resume sleep wake destroy, or a number
 *   host_client [--timeout MS] URL list [TENANT [POOL]]
 *   host_client [--timeout MS] URL lookup TENANT POOL INSTANCE
 *   host_client [--timeout MS] URL node_facts | node_stats
 *   host_client [--timeout MS] URL publish TENANT POOL INSTANCE tcp|udp HOST_PORT GUEST_PORT
 *   host_client [--timeout MS] URL unpublish TENANT tcp|udp HOST_PORT
 *   host_client [--timeout MS] URL verify_network [TENANT] [deep]
 *   host_client [--timeout MS] URL reapply_network
 *
 * Exit: 0 a result, 1 a HostError, 2 usage, 3 transport failure. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "rpc/host.pb-c.h"

static atomic_int pipes_added, pipes_removed;

static void on_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	if (ev == NNG_PIPE_EV_ADD_POST)
		atomic_fetch_add(&pipes_added, 1);
	else if (ev == NNG_PIPE_EV_REM_POST)
		atomic_fetch_add(&pipes_removed, 1);
}

static void print_message(const ProtobufCMessage *m, const char *prefix);

static void print_value(const ProtobufCFieldDescriptor *f, const void *p, const char *key)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING:
		printf("%s=%s\n", key, *(char *const *)p ? *(char *const *)p : "");
		break;
	case PROTOBUF_C_TYPE_BOOL:
		printf("%s=%s\n", key, *(const protobuf_c_boolean *)p ? "true" : "false");
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		printf("%s=%" PRIu32 "\n", key, *(const uint32_t *)p);
		break;
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		printf("%s=%" PRId32 "\n", key, *(const int32_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		printf("%s=%" PRIu64 "\n", key, *(const uint64_t *)p);
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		printf("%s=%" PRId64 "\n", key, *(const int64_t *)p);
		break;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumValue *v =
			protobuf_c_enum_descriptor_get_value(f->descriptor, *(const int *)p);
		printf("%s=%s\n", key, v ? v->name : "?");
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE:
		if (*(void *const *)p)
			print_message(*(const ProtobufCMessage *const *)p, key);
		break;
	default:
		printf("%s=(unprinted type)\n", key);
	}
}

static size_t elem_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_MESSAGE: return sizeof(void *);
	case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_SFIXED64: return 8;
	default: return 4;
	}
}

static void print_message(const ProtobufCMessage *m, const char *prefix)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *base = (const char *)m;
		char key[512];

		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			if (*(const uint32_t *)(base + f->quantifier_offset) != f->id)
				continue;
		}
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			const char *arr = *(const char *const *)(base + f->offset);

			snprintf(key, sizeof(key), "%s%s%s.count", prefix, *prefix ? "." : "", f->name);
			printf("%s=%zu\n", key, n);
			for (size_t k = 0; k < n; k++) {
				snprintf(key, sizeof(key), "%s%s%s[%zu]", prefix, *prefix ? "." : "",
					 f->name, k);
				print_value(f, arr + k * elem_size(f->type), key);
			}
			continue;
		}
		snprintf(key, sizeof(key), "%s%s%s", prefix, *prefix ? "." : "", f->name);
		print_value(f, base + f->offset, key);
	}
}

static int usage(void)
{
	fprintf(stderr, "usage: host_client [--timeout MS] URL OP [ARGS] (see the source)\n");
	return 2;
}

static int parse_action(const char *s)
{
	static const char *const names[] = { "", "start", "stop", "pause", "resume",
					     "sleep", "wake", "destroy" };

	for (int k = 1; k < 8; k++)
		if (!strcmp(s, names[k]))
			return k;
	return atoi(s); /* raw numbers: hostile-input tests */
}

int main(int argc, char **argv)
{
	Vmlet__Host__V1__HostRequest req = VMLET__HOST__V1__HOST_REQUEST__INIT;
	Vmlet__Host__V1__NodeFactsRequest facts = VMLET__HOST__V1__NODE_FACTS_REQUEST__INIT;
	Vmlet__Host__V1__NodeStatsRequest stats = VMLET__HOST__V1__NODE_STATS_REQUEST__INIT;
	Vmlet__Host__V1__ListInstancesRequest list = VMLET__HOST__V1__LIST_INSTANCES_REQUEST__INIT;
	Vmlet__Host__V1__LookupInstanceRequest lookup = VMLET__HOST__V1__LOOKUP_INSTANCE_REQUEST__INIT;
	Vmlet__Host__V1__EnsureTenantRequest et = VMLET__HOST__V1__ENSURE_TENANT_REQUEST__INIT;
	Vmlet__Host__V1__RemoveTenantRequest rt = VMLET__HOST__V1__REMOVE_TENANT_REQUEST__INIT;
	Vmlet__Host__V1__EnsurePoolRequest ep = VMLET__HOST__V1__ENSURE_POOL_REQUEST__INIT;
	Vmlet__Host__V1__RemovePoolRequest rp = VMLET__HOST__V1__REMOVE_POOL_REQUEST__INIT;
	Vmlet__Host__V1__CreateInstanceRequest ci = VMLET__HOST__V1__CREATE_INSTANCE_REQUEST__INIT;
	Vmlet__Host__V1__InstanceSpec spec = VMLET__HOST__V1__INSTANCE_SPEC__INIT;
	Vmlet__Host__V1__InstanceActionRequest ia = VMLET__HOST__V1__INSTANCE_ACTION_REQUEST__INIT;
	Vmlet__Host__V1__PublishPortRequest pp = VMLET__HOST__V1__PUBLISH_PORT_REQUEST__INIT;
	Vmlet__Host__V1__UnpublishPortRequest up = VMLET__HOST__V1__UNPUBLISH_PORT_REQUEST__INIT;
	Vmlet__Host__V1__VerifyNetworkRequest vn = VMLET__HOST__V1__VERIFY_NETWORK_REQUEST__INIT;
	Vmlet__Host__V1__ReapplyNetworkRequest ra = VMLET__HOST__V1__REAPPLY_NETWORK_REQUEST__INIT;
	Vmlet__Host__V1__HostResponse *resp;
	uint8_t *out = NULL;
	size_t out_len = 0;
	int timeout_ms = 3000, a = 1, rv;
	const char *url, *op;
	nng_socket sock;
	nng_msg *msg;

	if (argc > 2 && strcmp(argv[1], "--timeout") == 0) {
		timeout_ms = atoi(argv[2]);
		a = 3;
	}
	if (argc - a < 2)
		return usage();
	url = argv[a++];
	op = argv[a++];

	if (!strcmp(op, "node_facts") && a == argc) {
		req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_NODE_FACTS;
		req.node_facts = &facts;
	} else if (!strcmp(op, "node_stats") && a == argc) {
		req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_NODE_STATS;
		req.node_stats = &stats;
	} else if (!strcmp(op, "list") && argc - a <= 2) {
		if (a < argc)
			list.tenant_id = argv[a++];
		if (a < argc)
			list.pool_id = argv[a++];
		req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_LIST_INSTANCES;
		req.list_instances = &list;
	} else if (!strcmp(op, "lookup") && argc - a == 3) {
		lookup.tenant_id = argv[a];
		lookup.pool_id = argv[a + 1];
		lookup.instance_id = argv[a + 2];
		req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_LOOKUP_INSTANCE;
		req.lookup_instance = &lookup;
	} else if (!strcmp(op, "ensure_tenant") && argc - a == 3) {
		et.tenant_id = argv[a];
		et.tenant_net_id = (uint32_t)strtoul(argv[a + 1], NULL, 10);
		et.ipv4_subnet = argv[a + 2];
		req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_ENSURE_TENANT;
		req.ensure_tenant = &et;
	} else if (!strcmp(op, "remove_tenant") && argc - a == 1) {
		rt.tenant_id = argv[a];
		req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_REMOVE_TENANT;
		req.remove_tenant = &rt;
	} else if (!strcmp(op, "ensure_pool") && (argc - a == 2 || argc - a == 3)) {
		ep.tenant_id = argv[a];
		ep.pool_id = argv[a + 1];
		if (argc - a == 3)
			ep.spec_hash = argv[a + 2];
		req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_ENSURE_POOL;
		req.ensure_pool = &ep;
	} else if (!strcmp(op, "remove_pool") && argc - a == 2) {
		rp.tenant_id = argv[a];
		rp.pool_id = argv[a + 1];
		req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_REMOVE_POOL;
		req.remove_pool = &rp;
	} else if (!strcmp(op, "create") && (argc - a == 6 || argc - a == 7)) {
		ci.tenant_id = argv[a];
		ci.pool_id = argv[a + 1];
		ci.instance_id = argv[a + 2];
		spec.vcpus = (uint32_t)strtoul(argv[a + 3], NULL, 10);
		spec.mem_mib = (uint32_t)strtoul(argv[a + 4], NULL, 10);
		spec.image = argv[a + 5];
		if (argc - a == 7)
			spec.spec_hash = argv[a + 6];
		ci.spec = &spec;
		req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_CREATE_INSTANCE;
		req.create_instance = &ci;
	} else if (!strcmp(op, "action") && (argc - a == 4 || argc - a == 5)) {
		ia.tenant_id = argv[a];
		ia.pool_id = argv[a + 1];
		ia.instance_id = argv[a + 2];
		ia.action = (Vmlet__Host__V1__InstanceAction)parse_action(argv[a + 3]);
		if (argc - a == 5)
			ia.graceful_ms = (uint32_t)strtoul(argv[a + 4], NULL, 10);
		req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_INSTANCE_ACTION;
		req.instance_action = &ia;
	} else if (!strcmp(op, "publish") && argc - a == 6) {
		pp.tenant_id = argv[a];
		pp.pool_id = argv[a + 1];
		pp.instance_id = argv[a + 2];
		pp.proto = !strcmp(argv[a + 3], "tcp") ? 1 : !strcmp(argv[a + 3], "udp") ? 2 : 0;
		pp.host_port = (uint32_t)strtoul(argv[a + 4], NULL, 10);
		pp.guest_port = (uint32_t)strtoul(argv[a + 5], NULL, 10);
		req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_PUBLISH_PORT;
		req.publish_port = &pp;
	} else if (!strcmp(op, "unpublish") && argc - a == 3) {
		up.tenant_id = argv[a];
		up.proto = !strcmp(argv[a + 1], "tcp") ? 1 : !strcmp(argv[a + 1], "udp") ? 2 : 0;
		up.host_port = (uint32_t)strtoul(argv[a + 2], NULL, 10);
		req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_UNPUBLISH_PORT;
		req.unpublish_port = &up;
	} else if (!strcmp(op, "verify_network") && argc - a <= 2) {
		for (; a < argc; a++) {
			if (!strcmp(argv[a], "deep"))
				vn.deep = 1;
			else
				vn.tenant_id = argv[a];
		}
		req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_VERIFY_NETWORK;
		req.verify_network = &vn;
	} else if (!strcmp(op, "reapply_network") && a == argc) {
		req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_REAPPLY_NETWORK;
		req.reapply_network = &ra;
	} else {
		return usage();
	}
	out_len = protobuf_c_message_get_packed_size(&req.base);
	out = malloc(out_len + 1);
	protobuf_c_message_pack(&req.base, out);

	if ((rv = nng_req0_open(&sock)) != 0 ||
	    (rv = nng_pipe_notify(sock, NNG_PIPE_EV_ADD_POST, on_pipe, NULL)) != 0 ||
	    (rv = nng_pipe_notify(sock, NNG_PIPE_EV_REM_POST, on_pipe, NULL)) != 0 ||
	    (rv = nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, timeout_ms)) != 0 ||
	    (rv = nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, timeout_ms)) != 0) {
		printf("transport=%s\n", nng_strerror(rv));
		return 3;
	}
	if ((rv = nng_dial(sock, url, NULL, 0)) != 0) {
		printf("transport=dial: %s\n", nng_strerror(rv));
		return 3;
	}
	if ((rv = nng_send(sock, out, out_len, 0)) != 0 || (rv = nng_recvmsg(sock, &msg, 0)) != 0) {
		printf("transport=%s pipes_added=%d pipes_removed=%d\n", nng_strerror(rv),
		       atomic_load(&pipes_added), atomic_load(&pipes_removed));
		nng_close(sock);
		return 3;
	}
	resp = vmlet__host__v1__host_response__unpack(NULL, nng_msg_len(msg), nng_msg_body(msg));
	if (!resp) {
		printf("transport=undecodable response of %zu bytes\n", nng_msg_len(msg));
		return 3;
	}
	print_message(&resp->base, "");
	rv = resp->result_case == VMLET__HOST__V1__HOST_RESPONSE__RESULT_ERROR ? 1 : 0;
	vmlet__host__v1__host_response__free_unpacked(resp, NULL);
	nng_msg_free(msg);
	nng_close(sock);
	free(out);
	return rv;
}
