/* Strict protobuf decoding: unknown fields, enums, UTF-8, empty oneofs,
 * NUL bytes in strings, each named by its field path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rpc/agent.pb-c.h"
#include "rpc/host.pb-c.h"
#include "rpc/strict.h"

#define AGENT_REQ (&vmlet__v1__agent_request__descriptor)
#define AGENT_RESP (&vmlet__v1__agent_response__descriptor)
#define HOST_REQ (&vmlet__host__v1__host_request__descriptor)

/* Pack msg, optionally append extra raw bytes, strict-unpack as desc. */
static ProtobufCMessage *repack(const ProtobufCMessage *msg, const uint8_t *extra,
				size_t extra_len, const ProtobufCMessageDescriptor *desc,
				struct vmlet_err *e)
{
	uint8_t *buf;
	size_t len;

	assert_int_equal(vmlet_pack(msg, &buf, &len, e), 0);
	if (extra_len) {
		buf = realloc(buf, len + extra_len);
		assert_non_null(buf);
		memcpy(buf + len, extra, extra_len);
		len += extra_len;
	}
	ProtobufCMessage *out = vmlet_strict_unpack(desc, buf, len, e);
	free(buf);
	return out;
}

static void expect_reject(const ProtobufCMessage *msg, const uint8_t *extra, size_t extra_len,
			  const ProtobufCMessageDescriptor *desc, const char *want)
{
	struct vmlet_err e = { 0 };
	ProtobufCMessage *out = repack(msg, extra, extra_len, desc, &e);

	if (out)
		protobuf_c_message_free_unpacked(out, NULL);
	assert_null(out);
	assert_int_equal(e.code, VMLET_E_INVALID);
	assert_string_equal(e.msg, want);
}

static void expect_accept(const ProtobufCMessage *msg, const ProtobufCMessageDescriptor *desc)
{
	struct vmlet_err e = { 0 };
	ProtobufCMessage *out = repack(msg, NULL, 0, desc, &e);

	if (!out)
		fail_msg("rejected: %s", e.msg);
	/* And the unpacked copy packs back to the same bytes. */
	uint8_t *a, *b;
	size_t al, bl;
	assert_int_equal(vmlet_pack(msg, &a, &al, &e), 0);
	assert_int_equal(vmlet_pack(out, &b, &bl, &e), 0);
	assert_int_equal(al, bl);
	assert_memory_equal(a, b, al);
	free(a);
	free(b);
	assert_int_equal(vmlet_strict_check(out, &e), 0);
	protobuf_c_message_free_unpacked(out, NULL);
}

/* field 99, wire type varint, value 1 */
static const uint8_t field99[] = { 0x98, 0x06, 0x01 };

/* ---- a realistic reconcile request, built on the stack ---- */

struct reconcile_fixture {
	Vmlet__V1__AgentRequest req;
	Vmlet__V1__ReconcileRequest rec;
	Vmlet__V1__DesiredState ds;
	Vmlet__V1__DesiredTenant t[3];
	Vmlet__V1__DesiredTenant *tp[3];
	Vmlet__V1__TenantNetwork net[3];
	Vmlet__V1__DesiredPool pool;
	Vmlet__V1__DesiredPool *pp[1];
	Vmlet__V1__InstanceResources res;
	Vmlet__V1__DesiredCounts counts;
};

static void reconcile_init(struct reconcile_fixture *f)
{
	static const char *ids[] = { "tenant-a", "tenant-b", "tenant-c" };

	vmlet__v1__agent_request__init(&f->req);
	vmlet__v1__reconcile_request__init(&f->rec);
	vmlet__v1__desired_state__init(&f->ds);
	vmlet__v1__desired_pool__init(&f->pool);
	vmlet__v1__instance_resources__init(&f->res);
	vmlet__v1__desired_counts__init(&f->counts);
	f->res.vcpus = 1;
	f->res.mem_mib = 128;
	f->counts.running = 2;
	f->pool.pool_id = "web";
	f->pool.instance_resources = &f->res;
	f->pool.desired_counts = &f->counts;
	f->pp[0] = &f->pool;
	for (int i = 0; i < 3; i++) {
		vmlet__v1__desired_tenant__init(&f->t[i]);
		vmlet__v1__tenant_network__init(&f->net[i]);
		f->net[i].tenant_net_id = 10 + i;
		f->net[i].ipv4_subnet = "10.240.0.0/24";
		f->t[i].tenant_id = (char *)ids[i];
		f->t[i].network = &f->net[i];
		f->t[i].n_pools = 1;
		f->t[i].pools = f->pp;
		f->tp[i] = &f->t[i];
	}
	f->ds.schema_version = 1;
	f->ds.node_id = "node-1";
	f->ds.n_tenants = 3;
	f->ds.tenants = f->tp;
	f->rec.desired_state = &f->ds;
	f->req.request_case = VMLET__V1__AGENT_REQUEST__REQUEST_RECONCILE;
	f->req.reconcile = &f->rec;
}

static void reconcile_accepted(void **state)
{
	struct reconcile_fixture f;

	reconcile_init(&f);
	expect_accept(&f.req.base, AGENT_REQ);
}

static void unknown_field_top(void **state)
{
	Vmlet__V1__AgentRequest req = VMLET__V1__AGENT_REQUEST__INIT;
	Vmlet__V1__NodeInfoRequest ni = VMLET__V1__NODE_INFO_REQUEST__INIT;

	req.request_case = VMLET__V1__AGENT_REQUEST__REQUEST_NODE_INFO;
	req.node_info = &ni;
	expect_reject(&req.base, field99, sizeof(field99), AGENT_REQ,
		      "vmlet.v1.AgentRequest: unknown field number 99");
}

/* protobuf-c packs a message's unknown_fields back out, so a constructed
 * message carrying one produces wire bytes with an unknown field inside. */
static ProtobufCMessageUnknownField unknown99 = {
	.tag = 99,
	.wire_type = PROTOBUF_C_WIRE_TYPE_VARINT,
	.len = 1,
	.data = (uint8_t *)"\x01",
};

static void unknown_field_deep(void **state)
{
	struct reconcile_fixture f;

	reconcile_init(&f);
	f.net[0].base.n_unknown_fields = 1;
	f.net[0].base.unknown_fields = &unknown99;
	expect_reject(&f.req.base, NULL, 0, AGENT_REQ,
		      "reconcile.desired_state.tenants[0].network: unknown field number 99");
}

static void unknown_field_in_repeated(void **state)
{
	struct reconcile_fixture f;
	Vmlet__V1__DesiredPool other;

	reconcile_init(&f);
	other = f.pool;
	other.base.n_unknown_fields = 1;
	other.base.unknown_fields = &unknown99;
	Vmlet__V1__DesiredPool *op[1] = { &other };
	f.t[2].pools = op;
	expect_reject(&f.req.base, NULL, 0, AGENT_REQ,
		      "reconcile.desired_state.tenants[2].pools[0]: unknown field number 99");
}

/* A HostRequest's list_instances (4) lands on AgentRequest's tenant_list
 * (4), whose message has no fields: its tenant_id (1) is unknown there. */
static void host_message_as_agent_request(void **state)
{
	Vmlet__Host__V1__HostRequest hr = VMLET__HOST__V1__HOST_REQUEST__INIT;
	Vmlet__Host__V1__ListInstancesRequest li = VMLET__HOST__V1__LIST_INSTANCES_REQUEST__INIT;

	li.tenant_id = "tenant-a";
	hr.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_LIST_INSTANCES;
	hr.list_instances = &li;
	expect_reject(&hr.base, NULL, 0, AGENT_REQ, "tenant_list: unknown field number 1");
}

static void bad_enum_in_repeated_response(void **state)
{
	Vmlet__V1__AgentResponse resp = VMLET__V1__AGENT_RESPONSE__INIT;
	Vmlet__V1__InstanceListResult lr = VMLET__V1__INSTANCE_LIST_RESULT__INIT;
	Vmlet__V1__InstanceInfo a = VMLET__V1__INSTANCE_INFO__INIT;
	Vmlet__V1__InstanceInfo b = VMLET__V1__INSTANCE_INFO__INIT;
	Vmlet__V1__InstanceInfo *list[2] = { &a, &b };

	a.state = VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_RUNNING;
	b.state = 42;
	lr.n_instances = 2;
	lr.instances = list;
	resp.response_case = VMLET__V1__AGENT_RESPONSE__RESPONSE_INSTANCE_LIST;
	resp.instance_list = &lr;
	expect_reject(&resp.base, NULL, 0, AGENT_RESP,
		      "instance_list.instances[1].state: unknown enum value 42 for vmlet.v1.InstanceState");
	b.state = VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_DESTROYED;
	expect_accept(&resp.base, AGENT_RESP);
}

static void bad_enum_in_record(void **state)
{
	Vmlet__Host__V1__InstanceRecord rec = VMLET__HOST__V1__INSTANCE_RECORD__INIT;

	rec.tenant_id = "tenant-a";
	rec.state = -3;
	expect_reject(&rec.base, NULL, 0, &vmlet__host__v1__instance_record__descriptor,
		      "state: unknown enum value -3 for vmlet.v1.InstanceState");
}

static void bad_utf8_nested(void **state)
{
	struct reconcile_fixture f;

	reconcile_init(&f);
	f.ds.node_id = "node-\xc0\xaf"; /* overlong '/' */
	expect_reject(&f.req.base, NULL, 0, AGENT_REQ,
		      "reconcile.desired_state.node_id: invalid UTF-8");
	reconcile_init(&f);
	f.pool.pool_id = "web\xff";
	expect_reject(&f.req.base, NULL, 0, AGENT_REQ,
		      "reconcile.desired_state.tenants[0].pools[0].pool_id: invalid UTF-8");
}

static void bad_utf8_repeated(void **state)
{
	Vmlet__V1__AgentResponse resp = VMLET__V1__AGENT_RESPONSE__INIT;
	Vmlet__V1__ReconcileReport rep = VMLET__V1__RECONCILE_REPORT__INIT;
	char *deferred[3] = { "ok", "surrogate \xed\xa0\x80", "fine" };

	rep.n_deferred = 3;
	rep.deferred = deferred;
	resp.response_case = VMLET__V1__AGENT_RESPONSE__RESPONSE_RECONCILE;
	resp.reconcile = &rep;
	expect_reject(&resp.base, NULL, 0, AGENT_RESP, "reconcile.deferred[1]: invalid UTF-8");
	deferred[1] = "too high \xf4\x90\x80\x80";
	expect_reject(&resp.base, NULL, 0, AGENT_RESP, "reconcile.deferred[1]: invalid UTF-8");
	deferred[1] = "snowman \xe2\x98\x83, emoji \xf0\x9f\x98\x80";
	expect_accept(&resp.base, AGENT_RESP);
}

static void nul_byte_in_string(void **state)
{
	/* wake_instance (6) { tenant_id (1) = "ab\0c" } */
	static const uint8_t wire[] = { 0x32, 0x06, 0x0a, 0x04, 'a', 'b', 0, 'c' };
	struct vmlet_err e;

	assert_null(vmlet_strict_unpack(AGENT_REQ, wire, sizeof(wire), &e));
	assert_int_equal(e.code, VMLET_E_INVALID);
	assert_string_equal(e.msg, "wake_instance.tenant_id: string contains a NUL byte");

	/* In a repeated string, with the element index. */
	Vmlet__V1__AgentResponse resp = VMLET__V1__AGENT_RESPONSE__INIT;
	Vmlet__V1__ReconcileReport rep = VMLET__V1__RECONCILE_REPORT__INIT;
	char *deferred[2] = { "a", "b" };
	uint8_t *buf;
	size_t len;

	rep.n_deferred = 2;
	rep.deferred = deferred;
	resp.response_case = VMLET__V1__AGENT_RESPONSE__RESPONSE_RECONCILE;
	resp.reconcile = &rep;
	assert_int_equal(vmlet_pack(&resp.base, &buf, &len, &e), 0);
	/* The last byte is the second element's "b": make it a NUL. */
	assert_int_equal(buf[len - 1], 'b');
	buf[len - 1] = 0;
	assert_null(vmlet_strict_unpack(AGENT_RESP, buf, len, &e));
	assert_string_equal(e.msg, "reconcile.deferred[1]: string contains a NUL byte");
	free(buf);
}

static void empty_oneof(void **state)
{
	struct vmlet_err e;

	assert_null(vmlet_strict_unpack(AGENT_REQ, (const uint8_t *)"", 0, &e));
	assert_int_equal(e.code, VMLET_E_INVALID);
	assert_string_equal(e.msg, "vmlet.v1.AgentRequest: no member of oneof set (expected one of "
			    "reconcile, node_info, node_stats, tenant_list, instance_list, "
			    "wake_instance, net_verify)");
	assert_null(vmlet_strict_unpack(HOST_REQ, NULL, 0, &e));
	assert_non_null(strstr(e.msg, "vmlet.host.v1.HostRequest: no member of oneof set"));

	/* Nested: a WakeInstanceResult in a response is fine, but a response
	 * whose oneof is empty is not. */
	Vmlet__V1__AgentResponse resp = VMLET__V1__AGENT_RESPONSE__INIT;
	assert_int_equal(vmlet_strict_check(&resp.base, &e), -1);
	assert_non_null(strstr(e.msg, "no member of oneof set"));

	/* A case value that names no member (only a constructed message). */
	resp.response_case = 77;
	assert_int_equal(vmlet_strict_check(&resp.base, &e), -1);
	assert_non_null(strstr(e.msg, "oneof case 77 names no member"));
}

static void all_six_requests_pass(void **state)
{
	Vmlet__V1__AgentRequest req = VMLET__V1__AGENT_REQUEST__INIT;
	Vmlet__V1__NodeInfoRequest ni = VMLET__V1__NODE_INFO_REQUEST__INIT;
	Vmlet__V1__NodeStatsRequest ns = VMLET__V1__NODE_STATS_REQUEST__INIT;
	Vmlet__V1__TenantListRequest tl = VMLET__V1__TENANT_LIST_REQUEST__INIT;
	Vmlet__V1__InstanceListRequest il = VMLET__V1__INSTANCE_LIST_REQUEST__INIT;
	Vmlet__V1__WakeInstanceRequest wi = VMLET__V1__WAKE_INSTANCE_REQUEST__INIT;
	Vmlet__V1__Signature sig = VMLET__V1__SIGNATURE__INIT;
	struct reconcile_fixture f;

	reconcile_init(&f);
	sig.key_id = "coord-1";
	sig.ed25519.data = (uint8_t *)"\0\1\2\3";
	sig.ed25519.len = 4;
	f.rec.signature = &sig;
	expect_accept(&f.req.base, AGENT_REQ);

	req.request_case = VMLET__V1__AGENT_REQUEST__REQUEST_NODE_INFO;
	req.node_info = &ni;
	expect_accept(&req.base, AGENT_REQ);
	req.request_case = VMLET__V1__AGENT_REQUEST__REQUEST_NODE_STATS;
	req.node_stats = &ns;
	expect_accept(&req.base, AGENT_REQ);
	req.request_case = VMLET__V1__AGENT_REQUEST__REQUEST_TENANT_LIST;
	req.tenant_list = &tl;
	expect_accept(&req.base, AGENT_REQ);
	il.tenant_id = "tenant-a";
	req.request_case = VMLET__V1__AGENT_REQUEST__REQUEST_INSTANCE_LIST;
	req.instance_list = &il;
	expect_accept(&req.base, AGENT_REQ);
	wi.tenant_id = "tenant-a";
	wi.pool_id = "web";
	wi.instance_id = "i-0123abcd";
	req.request_case = VMLET__V1__AGENT_REQUEST__REQUEST_WAKE_INSTANCE;
	req.wake_instance = &wi;
	expect_accept(&req.base, AGENT_REQ);
}

static void host_requests_pass(void **state)
{
	Vmlet__Host__V1__HostRequest hr = VMLET__HOST__V1__HOST_REQUEST__INIT;
	Vmlet__Host__V1__LookupInstanceRequest lk = VMLET__HOST__V1__LOOKUP_INSTANCE_REQUEST__INIT;

	lk.tenant_id = "t";
	lk.pool_id = "p";
	lk.instance_id = "i-00000000";
	hr.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_LOOKUP_INSTANCE;
	hr.lookup_instance = &lk;
	expect_accept(&hr.base, HOST_REQ);
}

static void garbage_rejected(void **state)
{
	static const uint8_t garbage[][6] = {
		{ 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }, /* endless varint */
		{ 0x0a, 0x7f, 0x01, 0x02, 0x03, 0x04 }, /* length past the end */
		{ 0x0b, 0x00, 0x00, 0x00, 0x00, 0x00 }, /* start group */
		{ 0x08, 0x01, 0x00, 0x00, 0x00, 0x00 }, /* message field as varint */
	};
	struct vmlet_err e;

	for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
		ProtobufCMessage *m = vmlet_strict_unpack(AGENT_REQ, garbage[i], 6, &e);
		if (m)
			fail_msg("garbage %zu accepted", i);
		assert_int_equal(e.code, VMLET_E_INVALID);
		assert_string_equal(e.msg, "malformed protobuf");
	}
}

static void utf8_table(void **state)
{
	static const struct {
		const char *s;
		int ok;
	} cases[] = {
		{ "", 1 },
		{ "plain ascii", 1 },
		{ "\x7f", 1 },
		{ "\xc2\x80", 1 },		/* U+0080 */
		{ "\xdf\xbf", 1 },		/* U+07FF */
		{ "\xe0\xa0\x80", 1 },		/* U+0800 */
		{ "\xed\x9f\xbf", 1 },		/* U+D7FF */
		{ "\xee\x80\x80", 1 },		/* U+E000 */
		{ "\xef\xbf\xbf", 1 },		/* U+FFFF */
		{ "\xf0\x90\x80\x80", 1 },	/* U+10000 */
		{ "\xf4\x8f\xbf\xbf", 1 },	/* U+10FFFF */
		{ "\x80", 0 },			/* lone continuation */
		{ "\xc0\x80", 0 },		/* overlong NUL */
		{ "\xc1\xbf", 0 },		/* overlong */
		{ "\xe0\x9f\xbf", 0 },		/* overlong 3-byte */
		{ "\xf0\x8f\xbf\xbf", 0 },	/* overlong 4-byte */
		{ "\xed\xa0\x80", 0 },		/* U+D800 */
		{ "\xed\xbf\xbf", 0 },		/* U+DFFF */
		{ "\xf4\x90\x80\x80", 0 },	/* U+110000 */
		{ "\xf5\x80\x80\x80", 0 },
		{ "\xff", 0 },
		{ "\xe2\x98", 0 },		/* truncated */
		{ "a\xc2", 0 },			/* truncated at the end */
		{ "\xe2\x28\xa1", 0 },		/* bad continuation */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (vmlet_utf8_valid(cases[i].s, strlen(cases[i].s)) != cases[i].ok)
			fail_msg("case %zu: expected %d", i, cases[i].ok);
	/* Length, not NUL, bounds the check. */
	assert_int_equal(vmlet_utf8_valid("ab\xff", 2), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(reconcile_accepted),
		cmocka_unit_test(unknown_field_top),
		cmocka_unit_test(unknown_field_deep),
		cmocka_unit_test(unknown_field_in_repeated),
		cmocka_unit_test(host_message_as_agent_request),
		cmocka_unit_test(bad_enum_in_repeated_response),
		cmocka_unit_test(bad_enum_in_record),
		cmocka_unit_test(bad_utf8_nested),
		cmocka_unit_test(bad_utf8_repeated),
		cmocka_unit_test(nul_byte_in_string),
		cmocka_unit_test(empty_oneof),
		cmocka_unit_test(all_six_requests_pass),
		cmocka_unit_test(host_requests_pass),
		cmocka_unit_test(garbage_rejected),
		cmocka_unit_test(utf8_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
