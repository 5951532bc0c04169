/* Generic JSON <-> protobuf codec: the desired-state files, round trips of
 * every response variant, and a rejection (with its JSON path) for each
 * kind of bad input. Runs under ASan to prove decoded and half-decoded
 * messages free cleanly with protobuf_c_message_free_unpacked. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "rpc/agent.pb-c.h"
#include "rpc/host.pb-c.h"
#include "rpc/json.h"
#include "rpc/strict.h"

#define DESIRED (&vmlet__v1__desired_state__descriptor)
#define AGENT_REQ (&vmlet__v1__agent_request__descriptor)
#define AGENT_RESP (&vmlet__v1__agent_response__descriptor)

/* tests/data/<name>, found from the source tree root (the usual cwd) or
 * from the test binary's location (build/tests, build/san/tests). */
static char *read_data(const char *name, size_t *len)
{
	char path[PATH_MAX + 64], exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	FILE *f = NULL;

	snprintf(path, sizeof(path), "tests/data/%s", name);
	f = fopen(path, "rb");
	if (n > 0) {
		exe[n] = '\0';
		for (int up = 0; !f && up < 5; up++) {
			char *slash = strrchr(exe, '/');
			if (!slash)
				break;
			*slash = '\0';
			snprintf(path, sizeof(path), "%s/tests/data/%s", exe, name);
			f = fopen(path, "rb");
		}
	}
	if (!f)
		fail_msg("cannot find tests/data/%s", name);
	char *buf = malloc(1 << 16);
	assert_non_null(buf);
	*len = fread(buf, 1, (1 << 16) - 1, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

static ProtobufCMessage *decode_ok(const ProtobufCMessageDescriptor *d, const char *text)
{
	struct vmlet_err e = { 0 };
	ProtobufCMessage *m = vmlet_json_decode(d, text, strlen(text), &e);

	if (!m)
		fail_msg("decode failed: %s", e.msg);
	return m;
}

/* Decoding TEXT must be refused as invalid; *e holds the error. */
static void decode_refused(const ProtobufCMessageDescriptor *d, const char *text,
			   struct vmlet_err *e)
{
	ProtobufCMessage *m = vmlet_json_decode(d, text, strlen(text), e);

	if (m) {
		protobuf_c_message_free_unpacked(m, NULL);
		fail_msg("accepted: %s", text);
	}
	assert_int_equal(e->code, VMLET_E_INVALID);
}

static void expect_error(const ProtobufCMessageDescriptor *d, const char *text, const char *want)
{
	struct vmlet_err e = { 0 };

	decode_refused(d, text, &e);
	if (!strstr(e.msg, want))
		fail_msg("error \"%s\" does not contain \"%s\"", e.msg, want);
}

static void expect_exact_error(const ProtobufCMessageDescriptor *d, const char *text,
			       const char *want)
{
	struct vmlet_err e = { 0 };

	decode_refused(d, text, &e);
	assert_string_equal(e.msg, want);
}

/* Every key of `part` is in `whole` with an equal value (recursively for
 * objects; arrays must match element-wise the same way). */
static int json_subset(const json_t *part, const json_t *whole)
{
	if (json_is_object(part)) {
		const char *k;
		json_t *v;
		if (!json_is_object(whole))
			return 0;
		json_object_foreach((json_t *)part, k, v)
			if (!json_subset(v, json_object_get(whole, k)))
				return 0;
		return 1;
	}
	if (json_is_array(part)) {
		if (!json_is_array(whole) || json_array_size(part) != json_array_size(whole))
			return 0;
		for (size_t i = 0; i < json_array_size(part); i++)
			if (!json_subset(json_array_get(part, i), json_array_get(whole, i)))
				return 0;
		return 1;
	}
	return whole && json_equal(part, whole);
}

/* msg -> JSON -> msg -> JSON: both JSON texts equal, both messages pack
 * to the same bytes, and the packed bytes strict-unpack back. */
static void round_trip(const ProtobufCMessage *msg)
{
	struct vmlet_err e = { 0 };
	char *t1 = vmlet_json_encode(msg, VMLET_JSON_PRETTY, &e);
	if (!t1)
		fail_msg("encode: %s", e.msg);
	ProtobufCMessage *m2 = decode_ok(msg->descriptor, t1);
	char *t2 = vmlet_json_encode(m2, VMLET_JSON_PRETTY, &e);
	assert_non_null(t2);
	assert_string_equal(t1, t2);

	uint8_t *b1, *b2;
	size_t l1, l2;
	assert_int_equal(vmlet_pack(msg, &b1, &l1, &e), 0);
	assert_int_equal(vmlet_pack(m2, &b2, &l2, &e), 0);
	assert_int_equal(l1, l2);
	assert_memory_equal(b1, b2, l1);
	ProtobufCMessage *m3 = vmlet_strict_unpack(msg->descriptor, b2, l2, &e);
	if (!m3)
		fail_msg("strict unpack: %s", e.msg);
	char *t3 = vmlet_json_encode(m3, VMLET_JSON_PRETTY, &e);
	assert_string_equal(t1, t3);

	protobuf_c_message_free_unpacked(m3, NULL);
	protobuf_c_message_free_unpacked(m2, NULL);
	free(b1);
	free(b2);
	free(t1);
	free(t2);
	free(t3);
}

/* ---- the desired-state files ---- */

/* tests/data/NAME decoded as a DesiredState; *text (to free) and *len
 * hold the file. */
static Vmlet__V1__DesiredState *load_desired(const char *name, char **text, size_t *len)
{
	struct vmlet_err e = { 0 };
	Vmlet__V1__DesiredState *ds;

	*text = read_data(name, len);
	ds = (Vmlet__V1__DesiredState *)vmlet_json_decode(DESIRED, *text, *len, &e);
	if (!ds)
		fail_msg("%s: %s", name, e.msg);
	return ds;
}

static void mvm_file_loads(void **state)
{
	size_t len;
	char *text;
	Vmlet__V1__DesiredState *ds = load_desired("desired-mvm.json", &text, &len);
	struct vmlet_err e = { 0 };

	assert_int_equal(ds->schema_version, 1);
	assert_string_equal(ds->node_id, "node-1");
	assert_int_equal(ds->n_tenants, 2);
	assert_string_equal(ds->tenants[0]->tenant_id, "acme");
	assert_int_equal(ds->tenants[0]->network->tenant_net_id, 100);
	assert_string_equal(ds->tenants[0]->network->ipv4_subnet, "10.240.1.0/24");
	assert_int_equal(ds->tenants[0]->quotas->max_mem_mib, 16384);
	assert_int_equal(ds->tenants[0]->n_pools, 2);
	assert_int_equal(ds->tenants[1]->n_pools, 1);
	Vmlet__V1__DesiredPool *p = ds->tenants[0]->pools[1];
	assert_string_equal(p->pool_id, "worker");
	assert_string_equal(p->flake_ref, "github:acme/infra#worker");
	assert_string_equal(p->profile, "baseline");
	assert_int_equal(p->instance_resources->data_disk_mib, 2048);
	assert_int_equal(p->desired_counts->sleeping, 2);
	/* Absent in mvm's format: left exactly as protobuf-c's unpack leaves it. */
	assert_ptr_equal(p->image, protobuf_c_empty_string);
	assert_null(p->runtime_policy);
	assert_int_equal(ds->sequence, 0);
	assert_false(ds->prune_unknown_tenants);

	/* Re-encoding keeps every original key and value, and adds defaults. */
	json_t *orig = json_loadb(text, len, 0, NULL);
	json_t *back = vmlet_message_to_json(&ds->base, &e);
	assert_non_null(back);
	assert_true(json_subset(orig, back));
	json_t *pool = json_array_get(json_object_get(json_array_get(json_object_get(back, "tenants"), 0), "pools"), 0);
	assert_string_equal(json_string_value(json_object_get(pool, "image")), "");
	assert_true(json_is_null(json_object_get(pool, "runtime_policy")));
	json_decref(orig);
	json_decref(back);

	round_trip(&ds->base);
	protobuf_c_message_free_unpacked(&ds->base, NULL);
	free(text);
}

static void vmlet_file_loads_and_round_trips_exactly(void **state)
{
	size_t len;
	char *text;
	Vmlet__V1__DesiredState *ds = load_desired("desired-vmlet.json", &text, &len);
	struct vmlet_err e = { 0 };

	assert_string_equal(ds->node_id, "node-1");
	assert_int_equal(ds->sequence, 7);
	assert_true(ds->prune_unknown_pools);
	Vmlet__V1__DesiredPool *p = ds->tenants[0]->pools[0];
	assert_string_equal(p->image, "debian-minimal");
	assert_int_equal(p->runtime_policy->min_warm_seconds, 30);

	/* The file spells out every field, so JSON -> msg -> JSON is identity. */
	json_t *orig = json_loadb(text, len, 0, NULL);
	json_t *back = vmlet_message_to_json(&ds->base, &e);
	assert_true(json_equal(orig, back));
	json_decref(orig);
	json_decref(back);
	round_trip(&ds->base);
	protobuf_c_message_free_unpacked(&ds->base, NULL);
	free(text);
}

/* ---- AgentResponse / AgentRequest variants ---- */

static void response_variants_round_trip(void **state)
{
	Vmlet__V1__AgentResponse r = VMLET__V1__AGENT_RESPONSE__INIT;

	Vmlet__V1__Error err = VMLET__V1__ERROR__INIT;
	err.code = 409;
	err.message = "tenants[1].pools[0].pool_id: \"Bad_ID\" must match [a-z0-9-]{1,63} \xe2\x9c\x97";
	r.response_case = VMLET__V1__AGENT_RESPONSE__RESPONSE_ERROR;
	r.error = &err;
	round_trip(&r.base);

	Vmlet__V1__ReconcileReport rep = VMLET__V1__RECONCILE_REPORT__INIT;
	Vmlet__V1__ReconcileError re1 = VMLET__V1__RECONCILE_ERROR__INIT;
	Vmlet__V1__ReconcileError *res[1] = { &re1 };
	char *deferred[2] = { "tenant-a/web: quota max_running reached", "second" };
	re1.tenant_id = "tenant-a";
	re1.message = "start failed";
	rep.tenants_created = 1;
	rep.instances_started = 3;
	rep.duration_micros = 123456789012ULL;
	rep.sequence = 9;
	rep.n_errors = 1;
	rep.errors = res;
	rep.n_deferred = 2;
	rep.deferred = deferred;
	r.response_case = VMLET__V1__AGENT_RESPONSE__RESPONSE_RECONCILE;
	r.reconcile = &rep;
	round_trip(&r.base);

	Vmlet__V1__NodeInfo ni = VMLET__V1__NODE_INFO__INIT;
	ni.node_id = "node-1";
	ni.total_mem_mib = 1ULL << 40;
	ni.kvm_usable = 1;
	ni.accel = "kvm";
	r.response_case = VMLET__V1__AGENT_RESPONSE__RESPONSE_NODE_INFO;
	r.node_info = &ni;
	round_trip(&r.base);

	Vmlet__V1__NodeStats ns = VMLET__V1__NODE_STATS__INIT;
	ns.running_instances = UINT32_MAX;
	ns.total_mem_used_mib = INT64_MAX;
	r.response_case = VMLET__V1__AGENT_RESPONSE__RESPONSE_NODE_STATS;
	r.node_stats = &ns;
	round_trip(&r.base);

	Vmlet__V1__TenantListResult tl = VMLET__V1__TENANT_LIST_RESULT__INIT;
	Vmlet__V1__TenantSummary ts1 = VMLET__V1__TENANT_SUMMARY__INIT;
	Vmlet__V1__TenantSummary ts2 = VMLET__V1__TENANT_SUMMARY__INIT;
	Vmlet__V1__TenantSummary *tsl[2] = { &ts1, &ts2 };
	ts1.tenant_id = "a";
	ts2.tenant_id = "b";
	ts2.tenant_net_id = 4094;
	tl.n_tenants = 2;
	tl.tenants = tsl;
	r.response_case = VMLET__V1__AGENT_RESPONSE__RESPONSE_TENANT_LIST;
	r.tenant_list = &tl;
	round_trip(&r.base);
	tl.n_tenants = 0; /* an empty list is [] and comes back empty */
	tl.tenants = NULL;
	round_trip(&r.base);

	Vmlet__V1__InstanceListResult il = VMLET__V1__INSTANCE_LIST_RESULT__INIT;
	Vmlet__V1__InstanceInfo i1 = VMLET__V1__INSTANCE_INFO__INIT;
	Vmlet__V1__InstanceInfo i2 = VMLET__V1__INSTANCE_INFO__INIT;
	Vmlet__V1__InstanceInfo *ill[2] = { &i1, &i2 };
	i1.instance_id = "i-0000abcd";
	i1.state = VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_WARM;
	i2.instance_id = "i-0000abce";
	i2.state = VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_SLEEPING;
	il.n_instances = 2;
	il.instances = ill;
	r.response_case = VMLET__V1__AGENT_RESPONSE__RESPONSE_INSTANCE_LIST;
	r.instance_list = &il;
	round_trip(&r.base);

	struct vmlet_err e;
	json_t *j = vmlet_message_to_json(&r.base, &e);
	json_t *inst = json_array_get(json_object_get(json_object_get(j, "instance_list"), "instances"), 0);
	assert_string_equal(json_string_value(json_object_get(inst, "state")), "warm");
	/* Only the member that is set appears. */
	assert_int_equal(json_object_size(j), 1);
	json_decref(j);

	Vmlet__V1__WakeInstanceResult wr = VMLET__V1__WAKE_INSTANCE_RESULT__INIT;
	wr.instance = &i1;
	wr.wake_micros = 1500;
	r.response_case = VMLET__V1__AGENT_RESPONSE__RESPONSE_WAKE_INSTANCE;
	r.wake_instance = &wr;
	round_trip(&r.base);
}

static void request_with_signature_round_trips(void **state)
{
	ProtobufCMessage *m = decode_ok(AGENT_REQ,
		"{\"reconcile\": {\"desired_state\": {\"schema_version\": 1, \"node_id\": \"node-1\"},"
		" \"signature\": {\"key_id\": \"k1\", \"ed25519\": \"AAECAwT/\"}}}");
	Vmlet__V1__AgentRequest *r = (Vmlet__V1__AgentRequest *)m;

	assert_int_equal(r->request_case, VMLET__V1__AGENT_REQUEST__REQUEST_RECONCILE);
	assert_int_equal(r->reconcile->signature->ed25519.len, 6);
	assert_memory_equal(r->reconcile->signature->ed25519.data, "\0\1\2\3\4\xff", 6);
	round_trip(m);
	protobuf_c_message_free_unpacked(m, NULL);

	/* Base64 lengths 1 and 2 mod 3, and empty bytes (NULL, like unpack). */
	m = decode_ok(AGENT_REQ, "{\"reconcile\": {\"signature\": {\"ed25519\": \"QQ==\"}}}");
	r = (Vmlet__V1__AgentRequest *)m;
	assert_int_equal(r->reconcile->signature->ed25519.len, 1);
	assert_int_equal(r->reconcile->signature->ed25519.data[0], 'A');
	round_trip(m);
	protobuf_c_message_free_unpacked(m, NULL);
	m = decode_ok(AGENT_REQ, "{\"reconcile\": {\"signature\": {\"ed25519\": \"QUI=\"}}}");
	round_trip(m);
	protobuf_c_message_free_unpacked(m, NULL);
	m = decode_ok(AGENT_REQ, "{\"reconcile\": {\"signature\": {\"ed25519\": \"\"}}}");
	r = (Vmlet__V1__AgentRequest *)m;
	assert_int_equal(r->reconcile->signature->ed25519.len, 0);
	assert_null(r->reconcile->signature->ed25519.data);
	round_trip(m);
	protobuf_c_message_free_unpacked(m, NULL);

	/* Every request kind, written by hand. */
	static const char *reqs[] = {
		"{\"node_info\": {}}",
		"{\"node_stats\": {}}",
		"{\"tenant_list\": {}}",
		"{\"instance_list\": {\"tenant_id\": \"tenant-a\"}}",
		"{\"wake_instance\": {\"tenant_id\": \"t\", \"pool_id\": \"p\", \"instance_id\": \"i-00000001\"}}",
	};
	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		m = decode_ok(AGENT_REQ, reqs[i]);
		assert_int_equal(((Vmlet__V1__AgentRequest *)m)->request_case, i + 2);
		round_trip(m);
		protobuf_c_message_free_unpacked(m, NULL);
	}
}

static void enum_names_accepted(void **state)
{
	const char *forms[] = { "running", "INSTANCE_STATE_RUNNING" };

	for (int i = 0; i < 2; i++) {
		char text[200];
		snprintf(text, sizeof(text),
			 "{\"instance_list\": {\"instances\": [{\"state\": \"%s\"}]}}", forms[i]);
		ProtobufCMessage *m = decode_ok(AGENT_RESP, text);
		Vmlet__V1__AgentResponse *r = (Vmlet__V1__AgentResponse *)m;
		assert_int_equal(r->instance_list->instances[0]->state,
				 VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_RUNNING);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	/* Host records: int32 and a registry record with an enum. */
	ProtobufCMessage *m = decode_ok(&vmlet__host__v1__instance_record__descriptor,
					"{\"state\": \"destroyed\", \"pid_start_time\": 9223372036854775807}");
	round_trip(m);
	protobuf_c_message_free_unpacked(m, NULL);
	m = decode_ok(&vmlet__host__v1__host_response__descriptor,
		      "{\"error\": {\"code\": 500, \"sys_errno\": -2147483648}}");
	assert_int_equal(((Vmlet__Host__V1__HostResponse *)m)->error->sys_errno, INT32_MIN);
	round_trip(m);
	protobuf_c_message_free_unpacked(m, NULL);
}

static void null_message_means_absent(void **state)
{
	ProtobufCMessage *m = decode_ok(DESIRED, "{\"tenants\": [{\"tenant_id\": \"a\", \"network\": null}]}");
	Vmlet__V1__DesiredState *ds = (Vmlet__V1__DesiredState *)m;

	assert_null(ds->tenants[0]->network);
	protobuf_c_message_free_unpacked(m, NULL);
	/* A oneof member given as null is not set. */
	m = decode_ok(AGENT_REQ, "{\"reconcile\": null, \"node_info\": {}}");
	assert_int_equal(((Vmlet__V1__AgentRequest *)m)->request_case,
			 VMLET__V1__AGENT_REQUEST__REQUEST_NODE_INFO);
	protobuf_c_message_free_unpacked(m, NULL);
}

/* ---- rejections ---- */

static void rejects_unknown_keys(void **state)
{
	expect_exact_error(DESIRED, "{\"schema_version\": 1, \"nodeid\": \"x\"}",
			   "$: unknown key \"nodeid\"");
	expect_exact_error(DESIRED,
		"{\"tenants\": [{\"tenant_id\": \"a\"}, {\"tenant_id\": \"b\", \"pools\": ["
		"{\"pool_id\": \"p\", \"desired_counts\": {\"running\": 1, \"runing\": 2}}]}]}",
		"$.tenants[1].pools[0].desired_counts: unknown key \"runing\"");
	/* Hostile key text is escaped in the message. */
	expect_exact_error(DESIRED, "{\"a\\nb\\\"\": 1}", "$: unknown key \"a\\x0ab\\\"\"");
}

static void rejects_wrong_types(void **state)
{
	expect_exact_error(DESIRED, "{\"schema_version\": \"1\"}",
			   "$.schema_version: expected an integer 0..4294967295, got a string");
	expect_exact_error(DESIRED, "{\"node_id\": 5}", "$.node_id: expected a string, got an integer");
	expect_exact_error(DESIRED, "{\"prune_unknown_pools\": 1}",
			   "$.prune_unknown_pools: expected true or false, got an integer");
	expect_exact_error(DESIRED, "{\"tenants\": {}}", "$.tenants: expected an array, got an object");
	expect_exact_error(DESIRED, "{\"tenants\": [null]}",
			   "$.tenants[0]: expected an object, got null");
	expect_exact_error(DESIRED, "{\"tenants\": [{\"network\": []}]}",
			   "$.tenants[0].network: expected an object, got an array");
	expect_exact_error(DESIRED, "{\"schema_version\": null}",
			   "$.schema_version: expected an integer 0..4294967295, got null");
}

static void rejects_out_of_range_numbers(void **state)
{
	expect_exact_error(DESIRED, "{\"tenants\": [{\"network\": {\"tenant_net_id\": -1}}]}",
			   "$.tenants[0].network.tenant_net_id: expected an integer 0..4294967295, got -1");
	expect_exact_error(DESIRED,
		"{\"tenants\": [{\"pools\": [{\"desired_counts\": {\"warm\": 4294967296}}]}]}",
		"$.tenants[0].pools[0].desired_counts.warm: expected an integer 0..4294967295, got 4294967296");
	expect_exact_error(DESIRED, "{\"schema_version\": 1.5}",
			   "$.schema_version: expected an integer 0..4294967295, got 1.5");
	expect_exact_error(DESIRED, "{\"schema_version\": 1.0}",
			   "$.schema_version: expected an integer 0..4294967295, got 1");
	expect_exact_error(DESIRED, "{\"schema_version\": 1e2}",
			   "$.schema_version: expected an integer 0..4294967295, got 100");
	expect_exact_error(DESIRED, "{\"sequence\": -1}",
			   "$.sequence: expected an integer 0..9223372036854775807, got -1");
	expect_exact_error(&vmlet__host__v1__host_error__descriptor, "{\"sys_errno\": 2147483648}",
			   "$.sys_errno: expected an integer -2147483648..2147483647, got 2147483648");
	/* Beyond 64 bits jansson itself refuses the number. */
	expect_error(DESIRED, "{\"sequence\": 18446744073709551616}", "too big");
	/* 4294967295 itself is fine. */
	ProtobufCMessage *m = decode_ok(DESIRED, "{\"schema_version\": 4294967295}");
	assert_int_equal(((Vmlet__V1__DesiredState *)m)->schema_version, UINT32_MAX);
	protobuf_c_message_free_unpacked(m, NULL);
}

static void rejects_bad_enums(void **state)
{
	expect_exact_error(AGENT_RESP,
		"{\"instance_list\": {\"instances\": [{}, {\"state\": \"runnin\"}]}}",
		"$.instance_list.instances[1].state: unknown vmlet.v1.InstanceState \"runnin\" (expected one of: "
		"unspecified, created, running, warm, sleeping, stopped, destroyed)");
	expect_error(AGENT_RESP, "{\"instance_list\": {\"instances\": [{\"state\": 2}]}}",
		     "$.instance_list.instances[0].state: expected a vmlet.v1.InstanceState name");
	/* Case matters: neither "Running" nor "instance_state_running". */
	expect_error(AGENT_RESP, "{\"instance_list\": {\"instances\": [{\"state\": \"Running\"}]}}",
		     "unknown vmlet.v1.InstanceState \"Running\"");
	expect_error(AGENT_RESP,
		     "{\"instance_list\": {\"instances\": [{\"state\": \"instance_state_running\"}]}}",
		     "unknown vmlet.v1.InstanceState");
}

static void rejects_oneof_misuse(void **state)
{
	struct vmlet_err e;
	const char *text = "{\"error\": {\"code\": 400}, \"node_stats\": {}}";
	ProtobufCMessage *m = vmlet_json_decode(AGENT_RESP, text, strlen(text), &e);

	assert_null(m);
	/* Whichever member jansson hands over second is the one named. */
	if (strcmp(e.msg, "$.node_stats: only one of a oneof may be set, \"error\" already is") != 0)
		assert_string_equal(e.msg, "$.error: only one of a oneof may be set, \"node_stats\" already is");
	expect_exact_error(AGENT_REQ, "{}",
			   "$: no member of oneof set (expected one of reconcile, node_info, node_stats, "
			   "tenant_list, instance_list, wake_instance, net_verify)");
	expect_exact_error(AGENT_REQ, "{\"reconcile\": null}",
			   "$: no member of oneof set (expected one of reconcile, node_info, node_stats, "
			   "tenant_list, instance_list, wake_instance, net_verify)");
	expect_exact_error(AGENT_RESP, "{\"wake_instance\": {\"instance\": {\"state\": \"bogus\"}}}",
			   "$.wake_instance.instance.state: unknown vmlet.v1.InstanceState \"bogus\" "
			   "(expected one of: unspecified, created, running, warm, sleeping, stopped, destroyed)");
}

static void rejects_bad_base64(void **state)
{
	static const struct {
		const char *b64, *want;
	} cases[] = {
		{ "abc", "invalid base64: length 3 is not a multiple of 4" },
		{ "ab=c", "invalid base64 character at offset 2" },
		{ "a=bc", "invalid base64 character at offset 1" },
		{ "QQ==QQ==", "invalid base64 character at offset 2" },
		{ "Q===", "invalid base64 character at offset 1" },
		{ "====", "invalid base64 character at offset 0" },
		{ "QR==", "invalid base64: non-zero padding bits" },
		{ "QUJ=", "invalid base64: non-zero padding bits" },
		{ "QU I", "invalid base64 character at offset 2" },
		{ "QUI-", "invalid base64 character at offset 3" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[200], want[200];
		snprintf(text, sizeof(text), "{\"reconcile\": {\"signature\": {\"ed25519\": \"%s\"}}}",
			 cases[i].b64);
		snprintf(want, sizeof(want), "$.reconcile.signature.ed25519: %s", cases[i].want);
		expect_exact_error(AGENT_REQ, text, want);
	}
	expect_exact_error(AGENT_REQ, "{\"reconcile\": {\"signature\": {\"ed25519\": 7}}}",
			   "$.reconcile.signature.ed25519: expected a base64 string, got an integer");
}

static void rejects_bad_strings(void **state)
{
	/* Lone surrogate escapes and raw invalid bytes fail in the parser. */
	expect_error(DESIRED, "{\"node_id\": \"\\ud800\"}", "invalid JSON at line 1");
	expect_error(DESIRED, "{\"node_id\": \"\\udc00x\"}", "invalid Unicode");
	expect_error(DESIRED, "{\"node_id\": \"\xc0\xaf\"}", "invalid JSON at line 1");
	expect_error(DESIRED, "{\"node_id\": \"a\\u0000b\"}", "invalid JSON");

	/* A jansson value built without checks still meets the codec's own. */
	struct vmlet_err e;
	json_t *j = json_object();
	json_object_set_new(j, "node_id", json_stringn_nocheck("bad\xed\xa0\x80", 6));
	assert_null(vmlet_json_to_message(DESIRED, j, &e));
	assert_string_equal(e.msg, "$.node_id: invalid UTF-8");
	json_object_set_new(j, "node_id", json_stringn("a\0b", 3));
	assert_null(vmlet_json_to_message(DESIRED, j, &e));
	assert_string_equal(e.msg, "$.node_id: string contains a NUL character");
	json_object_del(j, "node_id");
	/* A key with an embedded NUL does not alias "node_id". */
	json_object_setn_new(j, "node_id\0x", 9, json_string("n"));
	assert_null(vmlet_json_to_message(DESIRED, j, &e));
	assert_string_equal(e.msg, "$: unknown key \"node_id\"");
	json_decref(j);
}

static void rejects_bad_documents(void **state)
{
	expect_error(DESIRED, "{\"schema_version\": 1} x", "invalid JSON at line 1");
	expect_error(DESIRED, "{\"schema_version\": 1}{}", "end of file expected");
	expect_error(DESIRED, "{\"node_id\": \"a\", \"node_id\": \"b\"}", "duplicate object key");
	expect_error(DESIRED, "{\"tenants\": [{\"pools\": [{}], \"pools\": []}]}", "duplicate object key");
	expect_exact_error(DESIRED, "[{\"schema_version\": 1}]", "$: expected an object, got an array");
	expect_exact_error(DESIRED, "\"desired\"", "$: expected an object, got a string");
	expect_exact_error(DESIRED, "null", "$: expected an object, got null");
	expect_error(DESIRED, "", "invalid JSON");
	expect_error(DESIRED, "{\"schema_version\": 1", "invalid JSON");

	/* Nesting: 32 levels of containers pass the depth check (and then fail
	 * on type), 33 do not, wherever they are. */
	char deep[256];
	size_t o = 0;
	o += (size_t)snprintf(deep + o, sizeof(deep) - o, "{\"tenants\": ");
	for (int i = 0; i < 32; i++)
		deep[o++] = '[';
	for (int i = 0; i < 32; i++)
		deep[o++] = ']';
	deep[o++] = '}';
	deep[o] = '\0';
	expect_error(DESIRED, deep, "nesting deeper than 32");
	expect_error(DESIRED, deep, "$.tenants[0][0][0][0]");
	/* One level less: the depth check passes and the type check answers. */
	o = 0;
	o += (size_t)snprintf(deep + o, sizeof(deep) - o, "{\"tenants\": ");
	for (int i = 0; i < 31; i++)
		deep[o++] = '[';
	for (int i = 0; i < 31; i++)
		deep[o++] = ']';
	deep[o++] = '}';
	deep[o] = '\0';
	expect_exact_error(DESIRED, deep, "$.tenants[0]: expected an object, got an array");
	/* Deep nesting under an unknown key is still caught as nesting. */
	expect_error(DESIRED,
		     "{\"x\": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
		     "$.x[0][0]");
}

/* A failure deep inside a half-built message frees everything (ASan). */
static void partial_messages_free_cleanly(void **state)
{
	expect_error(DESIRED,
		     "{\"node_id\": \"n\", \"tenants\": [{\"tenant_id\": \"a\", \"pools\": [{\"pool_id\": \"p\","
		     " \"image\": \"i\", \"instance_resources\": {\"vcpus\": 1}}]}, {\"tenant_id\": \"b\","
		     " \"pools\": [{\"pool_id\": \"q\", \"runtime_policy\": {\"min_warm_seconds\": -5}}]}]}",
		     "$.tenants[1].pools[0].runtime_policy.min_warm_seconds");
	expect_error(AGENT_RESP,
		     "{\"reconcile\": {\"deferred\": [\"a\", \"b\", 3], \"errors\": [{\"message\": \"m\"}]}}",
		     "$.reconcile.deferred[2]: expected a string, got an integer");
	expect_error(AGENT_REQ,
		     "{\"reconcile\": {\"signature\": {\"key_id\": \"k\", \"ed25519\": \"QQ==\"}, \"x\": 1}}",
		     "$.reconcile: unknown key \"x\"");
}

static void encode_rejects_what_json_cannot_carry(void **state)
{
	struct vmlet_err e;
	Vmlet__V1__DesiredState ds = VMLET__V1__DESIRED_STATE__INIT;

	ds.sequence = (uint64_t)INT64_MAX + 1;
	assert_null(vmlet_json_encode(&ds.base, 0, &e));
	assert_string_equal(e.msg, "$.sequence: value 9223372036854775808 does not fit a JSON integer "
				   "(at most 9223372036854775807)");
	ds.sequence = 1;
	ds.node_id = "\xff";
	assert_null(vmlet_json_encode(&ds.base, 0, &e));
	assert_string_equal(e.msg, "$.node_id: invalid UTF-8");

	Vmlet__Host__V1__InstanceRecord rec = VMLET__HOST__V1__INSTANCE_RECORD__INIT;
	rec.state = 99;
	assert_null(vmlet_message_to_json(&rec.base, &e));
	assert_string_equal(e.msg, "$.state: unknown enum value 99 for vmlet.v1.InstanceState");

	/* Compact output, every field present, defaults included. */
	ds.node_id = "n";
	char *s = vmlet_json_encode(&ds.base, 0, &e);
	assert_string_equal(s, "{\"schema_version\":0,\"node_id\":\"n\",\"tenants\":[],"
			       "\"prune_unknown_tenants\":false,\"prune_unknown_pools\":false,\"sequence\":1}");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(mvm_file_loads),
		cmocka_unit_test(vmlet_file_loads_and_round_trips_exactly),
		cmocka_unit_test(response_variants_round_trip),
		cmocka_unit_test(request_with_signature_round_trips),
		cmocka_unit_test(enum_names_accepted),
		cmocka_unit_test(null_message_means_absent),
		cmocka_unit_test(rejects_unknown_keys),
		cmocka_unit_test(rejects_wrong_types),
		cmocka_unit_test(rejects_out_of_range_numbers),
		cmocka_unit_test(rejects_bad_enums),
		cmocka_unit_test(rejects_oneof_misuse),
		cmocka_unit_test(rejects_bad_base64),
		cmocka_unit_test(rejects_bad_strings),
		cmocka_unit_test(rejects_bad_documents),
		cmocka_unit_test(partial_messages_free_cleanly),
		cmocka_unit_test(encode_rejects_what_json_cannot_carry),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
