/* hostd's dispatcher fed hostile bytes and hostile fields: every request
 * gets a HostResponse that decodes strictly, bad ones a HostError naming
 * the problem, and nothing in the state dir changes. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "shared/log.h"
#include "test_hostd_util.h"

#define OP(x) VMLET__HOST__V1__HOST_REQUEST__OP_##x
#define RESULT(x) VMLET__HOST__V1__HOST_RESPONSE__RESULT_##x

static int setup(void **state)
{
	vlog_init("test_hostd_dispatch");
	*state = hostd_fixture_new();
	return *state ? 0 : -1;
}

static int teardown(void **state)
{
	hostd_fixture_free(*state);
	return 0;
}

static size_t count_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	size_t n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void assert_error(Vmlet__Host__V1__HostResponse *resp, uint32_t code, const char *needle)
{
	assert_non_null(resp);
	if (resp->result_case != RESULT(ERROR))
		fail_msg("want error %u (%s), got result case %d", code, needle,
			 (int)resp->result_case);
	if (resp->error->code != code || (needle && !strstr(resp->error->message, needle)))
		fail_msg("want error %u containing \"%s\", got %u \"%s\"", code, needle ? needle : "",
			 resp->error->code, resp->error->message);
	hostd_resp_free(resp);
}

/* ---- the table ------------------------------------------------------------------ */

static void table_matches_the_proto(void **state)
{
	const ProtobufCMessageDescriptor *d = &vmlet__host__v1__host_request__descriptor;
	size_t served = 0;

	/* Every oneof member of HostRequest has a row named like it, and
	 * nothing else has one. */
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];

		assert_true(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF);
		assert_non_null(hostd_op_name((int)f->id));
		assert_string_equal(hostd_op_name((int)f->id), f->name);
		served++;
	}
	/* the spine's 5 + the lifecycle's 6 (10..15) + the network's 4 (16..19) */
	assert_int_equal(served, 15);
	assert_null(hostd_op_name(0));
	assert_null(hostd_op_name(-1));
	assert_null(hostd_op_name(6));
	assert_null(hostd_op_name(9));
	assert_null(hostd_op_name(20));
	assert_null(hostd_op_name(1000));
}

/* ---- hostile bytes -------------------------------------------------------------- */

static void garbage_bytes_are_400(void **state)
{
	struct hostd_fixture *fx = *state;
	static const struct {
		const char *what;
		uint8_t bytes[8];
		size_t len;
		const char *needle;
	} cases[] = {
		{ "all ones", { 0xff, 0xff, 0xff, 0xff }, 4, "host request" },
		{ "truncated length", { 0x0a, 0x0a, 0x00, 0x00 }, 4, "host request" },
		{ "wrong wire type for node_facts", { 0x08, 0x01 }, 2, "host request" },
		{ "unknown oneof member 9", { 0x4a, 0x00 }, 2, "host request" },
		{ "unknown oneof member 6 (next free)", { 0x32, 0x00 }, 2, "host request" },
		{ "empty message: no operation", { 0 }, 0, "host request" },
		{ "unknown field inside node_facts", { 0x0a, 0x02, 0x08, 0x01 }, 4, "host request" },
		{ "invalid UTF-8 tenant_id", { 0x22, 0x03, 0x0a, 0x01, 0xff }, 5, "host request" },
		{ "huge varint tag", { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80 }, 8,
		  "host request" },
	};

	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		Vmlet__Host__V1__HostResponse *resp =
			hostd_call_bytes(fx, cases[k].bytes, cases[k].len);

		if (!resp || resp->result_case != RESULT(ERROR) || resp->error->code != 400)
			fail_msg("case \"%s\": not a 400", cases[k].what);
		assert_non_null(strstr(resp->error->message, cases[k].needle));
		hostd_resp_free(resp);
	}
	/* a NULL buffer of length 0 is the empty message */
	assert_error(hostd_call_bytes(fx, NULL, 0), 400, NULL);
}

/* ---- hostile fields ------------------------------------------------------------- */

static const char *const bad_ids[] = {
	"../x", "..", ".", "a/b", "/etc", "Bad_ID", "UPPER", "-lead", "trail-", "sp ace",
	"tab\t", "new\nline", "a..b/..", "\xc3\xa9t\xc3\xa9", /* "été": valid UTF-8, not an id */
	"0123456789012345678901234567890123456789012345678901234567890123", /* 64 chars */
};

static void list_instances_rejects_bad_ids(void **state)
{
	struct hostd_fixture *fx = *state;

	for (size_t k = 0; k < sizeof(bad_ids) / sizeof(bad_ids[0]); k++) {
		assert_error(hostd_call_list_instances(fx, bad_ids[k], ""), 400,
			     "list_instances.tenant_id");
		assert_error(hostd_call_list_instances(fx, "acme", bad_ids[k]), 400,
			     "list_instances.pool_id");
	}
	/* a pool without its tenant is meaningless */
	assert_error(hostd_call_list_instances(fx, "", "web"), 400,
		     "list_instances.pool_id: requires list_instances.tenant_id");
	assert_error(hostd_call_list_instances(fx, "", "../x"), 400, "list_instances.pool_id");
	assert_int_equal(count_entries(fx->cfg.state_dir), 1); /* only tenants/ */
	assert_int_equal(count_entries(fx->reg.state_dir), 1);
}

static void lookup_rejects_bad_ids(void **state)
{
	struct hostd_fixture *fx = *state;
	char tenants[PATH_MAX + 16];
	static const char *const bad_instances[] = {
		"", "i-", "i-1234567", "i-123456789", "i-ABCDEF01", "x-12345678", "../i-12345678",
		"i-1234567g", "i-12345678/..", "acme",
	};

	/* every field is required */
	assert_error(hostd_call_lookup(fx, "", "web", "i-12345678"), 400,
		     "lookup_instance.tenant_id");
	assert_error(hostd_call_lookup(fx, "acme", "", "i-12345678"), 400,
		     "lookup_instance.pool_id");
	assert_error(hostd_call_lookup(fx, "acme", "web", ""), 400, "lookup_instance.instance_id");
	for (size_t k = 0; k < sizeof(bad_ids) / sizeof(bad_ids[0]); k++) {
		assert_error(hostd_call_lookup(fx, bad_ids[k], "web", "i-12345678"), 400,
			     "lookup_instance.tenant_id");
		assert_error(hostd_call_lookup(fx, "acme", bad_ids[k], "i-12345678"), 400,
			     "lookup_instance.pool_id");
	}
	for (size_t k = 0; k < sizeof(bad_instances) / sizeof(bad_instances[0]); k++)
		assert_error(hostd_call_lookup(fx, "acme", "web", bad_instances[k]), 400,
			     "lookup_instance.instance_id");
	snprintf(tenants, sizeof(tenants), "%s/tenants", fx->cfg.state_dir);
	assert_int_equal(count_entries(tenants), 0);
}

static void empty_submessage_is_validated(void **state)
{
	struct hostd_fixture *fx = *state;
	/* lookup_instance = {} on the wire: all ids empty */
	static const uint8_t bytes[] = { 0x2a, 0x00 };

	assert_error(hostd_call_bytes(fx, bytes, sizeof(bytes)), 400, "lookup_instance.tenant_id");
}

static void error_messages_stay_ascii(void **state)
{
	struct hostd_fixture *fx = *state;
	Vmlet__Host__V1__HostResponse *resp =
		hostd_call_list_instances(fx, "\xc3\xa9t\xc3\xa9", "");

	/* the quoted value may be cut anywhere: non-ASCII never goes back */
	assert_non_null(resp);
	assert_int_equal(resp->result_case, RESULT(ERROR));
	for (const char *p = resp->error->message; *p; p++)
		assert_true((unsigned char)*p < 0x80);
	hostd_resp_free(resp);
}

/* ---- the operations on an empty node -------------------------------------------- */

static void node_facts_are_the_facts(void **state)
{
	struct hostd_fixture *fx = *state;
	Vmlet__Host__V1__HostRequest req = VMLET__HOST__V1__HOST_REQUEST__INIT;
	Vmlet__Host__V1__NodeFactsRequest nf = VMLET__HOST__V1__NODE_FACTS_REQUEST__INIT;
	Vmlet__Host__V1__HostResponse *resp;
	Vmlet__V1__NodeInfo *info;

	req.op_case = OP(NODE_FACTS);
	req.node_facts = &nf;
	resp = hostd_call(fx, &req);
	assert_non_null(resp);
	assert_int_equal(resp->result_case, RESULT(NODE_FACTS));
	info = resp->node_facts;
	assert_string_equal(info->node_id, "node-test");
	assert_string_equal(info->hostname, "host-test");
	assert_string_equal(info->arch, "x86_64");
	assert_int_equal(info->total_vcpus, sysconf(_SC_NPROCESSORS_ONLN));
	assert_true(info->total_mem_mib > 0);
	assert_string_equal(info->cgroup_version, "v2");
	assert_true(info->cgroup_v2);
	assert_true(info->kvm_usable);
	assert_string_equal(info->accel, "tcg");
	assert_string_equal(info->vmm_name, "qemu");
	assert_string_equal(info->vmm_version, "7.2.22");
	assert_string_equal(info->attestation_provider, "none");
	assert_string_equal(info->vmlet_version, VMLET_VERSION);
	assert_false(info->production);
	hostd_resp_free(resp);
}

static void empty_registry_is_empty(void **state)
{
	struct hostd_fixture *fx = *state;
	Vmlet__Host__V1__HostRequest req = VMLET__HOST__V1__HOST_REQUEST__INIT;
	Vmlet__Host__V1__NodeStatsRequest ns = VMLET__HOST__V1__NODE_STATS_REQUEST__INIT;
	Vmlet__Host__V1__ListTenantsRequest lt = VMLET__HOST__V1__LIST_TENANTS_REQUEST__INIT;
	Vmlet__Host__V1__HostResponse *resp;

	req.op_case = OP(NODE_STATS);
	req.node_stats = &ns;
	resp = hostd_call(fx, &req);
	assert_non_null(resp);
	assert_int_equal(resp->result_case, RESULT(NODE_STATS));
	assert_int_equal(resp->node_stats->tenant_count, 0);
	assert_int_equal(resp->node_stats->running_instances, 0);
	assert_int_equal(resp->node_stats->total_mem_used_mib, 0);
	hostd_resp_free(resp);

	req.op_case = OP(LIST_TENANTS);
	req.list_tenants = &lt;
	resp = hostd_call(fx, &req);
	assert_non_null(resp);
	assert_int_equal(resp->result_case, RESULT(TENANTS));
	assert_int_equal(resp->tenants->n_tenants, 0);
	hostd_resp_free(resp);

	resp = hostd_call_list_instances(fx, "", "");
	assert_non_null(resp);
	assert_int_equal(resp->result_case, RESULT(INSTANCES));
	assert_int_equal(resp->instances->n_instances, 0);
	hostd_resp_free(resp);

	/* an unknown tenant filters to nothing; it is not an error */
	resp = hostd_call_list_instances(fx, "nobody-here", "web");
	assert_non_null(resp);
	assert_int_equal(resp->result_case, RESULT(INSTANCES));
	assert_int_equal(resp->instances->n_instances, 0);
	hostd_resp_free(resp);

	assert_error(hostd_call_lookup(fx, "t", "p", "i-00000000"), 404,
		     "instance t/p/i-00000000 not found");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(table_matches_the_proto),
		cmocka_unit_test_setup_teardown(garbage_bytes_are_400, setup, teardown),
		cmocka_unit_test_setup_teardown(list_instances_rejects_bad_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(lookup_rejects_bad_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(empty_submessage_is_validated, setup, teardown),
		cmocka_unit_test_setup_teardown(error_messages_stay_ascii, setup, teardown),
		cmocka_unit_test_setup_teardown(node_facts_are_the_facts, setup, teardown),
		cmocka_unit_test_setup_teardown(empty_registry_is_empty, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
