/* Test helper: send one HostRequest to hostd over NNG and print the
 * HostResponse as key=value lines (nested fields as a.b, repeated as
 * a[0].b). Used by tests/integration/hostd_peer.sh, run under other uids.
 *
 *   nng_client [--timeout MS] URL node_facts|node_stats|list_tenants
 *   nng_client [--timeout MS] URL list_instances [TENANT [POOL]]
 *   nng_client [--timeout MS] URL lookup TENANT POOL INSTANCE
 *   nng_client [--timeout MS] URL raw HEX      (arbitrary bytes as the request)
 *   nng_client [--timeout MS] URL fill N       (N zero bytes: not a valid message)
 *
 * Exit: 0 a result, 1 a HostError (printed as error.code=... lines),
 * 2 usage, 3 transport failure (refused, closed, timed out). */
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
	fprintf(stderr, "usage: nng_client [--timeout MS] URL OP [ARGS]\n");
	return 2;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

int main(int argc, char **argv)
{
	Vmlet__Host__V1__HostRequest req = VMLET__HOST__V1__HOST_REQUEST__INIT;
	Vmlet__Host__V1__NodeFactsRequest facts = VMLET__HOST__V1__NODE_FACTS_REQUEST__INIT;
	Vmlet__Host__V1__NodeStatsRequest stats = VMLET__HOST__V1__NODE_STATS_REQUEST__INIT;
	Vmlet__Host__V1__ListTenantsRequest tenants = VMLET__HOST__V1__LIST_TENANTS_REQUEST__INIT;
	Vmlet__Host__V1__ListInstancesRequest list = VMLET__HOST__V1__LIST_INSTANCES_REQUEST__INIT;
	Vmlet__Host__V1__LookupInstanceRequest lookup = VMLET__HOST__V1__LOOKUP_INSTANCE_REQUEST__INIT;
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
	} else if (!strcmp(op, "list_tenants") && a == argc) {
		req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_LIST_TENANTS;
		req.list_tenants = &tenants;
	} else if (!strcmp(op, "list_instances") && argc - a <= 2) {
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
	} else if (!strcmp(op, "raw") && argc - a == 1) {
		size_t n = strlen(argv[a]);
		if (n % 2)
			return usage();
		out = malloc(n / 2 + 1);
		for (size_t k = 0; k < n / 2; k++) {
			int hi = hexval(argv[a][2 * k]), lo = hexval(argv[a][2 * k + 1]);
			if (hi < 0 || lo < 0)
				return usage();
			out[k] = (uint8_t)(hi << 4 | lo);
		}
		out_len = n / 2;
	} else if (!strcmp(op, "fill") && argc - a == 1) {
		out_len = strtoul(argv[a], NULL, 10);
		out = calloc(1, out_len + 1);
		if (!out)
			return usage();
	} else {
		return usage();
	}
	if (!out) {
		out_len = protobuf_c_message_get_packed_size(&req.base);
		out = malloc(out_len + 1);
		protobuf_c_message_pack(&req.base, out);
	}

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
