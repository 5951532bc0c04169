/* vmletctl output: each kind of answer rendered into a memory FILE and
 * compared byte for byte (tables, key: value lines, errors, JSON), plus
 * hostile strings from the server escaped instead of reaching a terminal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctl/output.h"
#include "rpc/json.h"

struct mem {
	char *buf;
	size_t len;
	FILE *f;
};

static void mem_open(struct mem *m)
{
	m->buf = NULL;
	m->len = 0;
	m->f = open_memstream(&m->buf, &m->len);
	assert_non_null(m->f);
}

/* Close and return the text (freed by mem_free). */
static const char *mem_text(struct mem *m)
{
	if (m->f) {
		fclose(m->f);
		m->f = NULL;
	}
	return m->buf;
}

static void mem_free(struct mem *m)
{
	mem_text(m);
	free(m->buf);
}

static void node_info_as_key_value_lines(void **state)
{
	Vmlet__V1__NodeInfo ni = VMLET__V1__NODE_INFO__INIT;
	struct vmlet_err err;
	struct mem m;

	ni.node_id = "node-1";
	ni.hostname = "host.example";
	ni.arch = "x86_64";
	ni.total_vcpus = 2;
	ni.total_mem_mib = 7936;
	ni.vmm_name = "qemu";
	ni.vmm_version = "7.2.0";
	ni.cgroup_version = "v1";
	ni.kernel_release = "6.1.0-18-amd64";
	ni.kvm_usable = 1;
	ni.accel = "kvm";
	ni.qemu_version = "7.2.0";
	ni.attestation_provider = "none";
	ni.vmlet_version = "0.1.0";
	mem_open(&m);
	assert_int_equal(ctl_render_node_info(m.f, &ni, &err), 0);
	assert_string_equal(mem_text(&m), "node_id: node-1\n"
					  "hostname: host.example\n"
					  "arch: x86_64\n"
					  "total_vcpus: 2\n"
					  "total_mem_mib: 7936\n"
					  "vmm_name: qemu\n"
					  "vmm_version: 7.2.0\n"
					  "jailer_available: no\n"
					  "cgroup_v2: no\n"
					  "cgroup_version: v1\n"
					  "kernel_release: 6.1.0-18-amd64\n"
					  "kvm_usable: yes\n"
					  "accel: kvm\n"
					  "qemu_version: 7.2.0\n"
					  "firecracker_version: -\n"
					  "attestation_provider: none\n"
					  "vmlet_version: 0.1.0\n"
					  "production: no\n");
	mem_free(&m);
}

static void node_stats_as_key_value_lines(void **state)
{
	Vmlet__V1__NodeStats ns = VMLET__V1__NODE_STATS__INIT;
	struct vmlet_err err;
	struct mem m;

	ns.running_instances = 3;
	ns.total_mem_used_mib = 18446744073709551615ull; /* uint64 max prints whole */
	mem_open(&m);
	assert_int_equal(ctl_render_node_stats(m.f, &ns, &err), 0);
	assert_string_equal(mem_text(&m), "running_instances: 3\n"
					  "warm_instances: 0\n"
					  "sleeping_instances: 0\n"
					  "stopped_instances: 0\n"
					  "total_vcpus_used: 0\n"
					  "total_mem_used_mib: 18446744073709551615\n"
					  "tenant_count: 0\n"
					  "pool_count: 0\n"
					  "created_instances: 0\n");
	mem_free(&m);
}

static void tenant_list_as_aligned_columns(void **state)
{
	Vmlet__V1__TenantSummary a = VMLET__V1__TENANT_SUMMARY__INIT;
	Vmlet__V1__TenantSummary b = VMLET__V1__TENANT_SUMMARY__INIT;
	Vmlet__V1__TenantSummary *list[] = { &a, &b };
	Vmlet__V1__TenantListResult tl = VMLET__V1__TENANT_LIST_RESULT__INIT;
	struct vmlet_err err;
	struct mem m;

	a.tenant_id = "acme";
	a.tenant_net_id = 5;
	a.ipv4_subnet = "10.5.0.0/24";
	a.pool_count = 2;
	a.instance_count = 12;
	b.tenant_id = "a-much-longer-tenant";
	b.tenant_net_id = 4094;
	b.ipv4_subnet = "192.168.128.0/17";
	tl.n_tenants = 2;
	tl.tenants = list;
	mem_open(&m);
	assert_int_equal(ctl_render_tenant_list(m.f, &tl, &err), 0);
	assert_string_equal(mem_text(&m),
			    "TENANT                NET-ID  SUBNET            POOLS  INSTANCES\n"
			    "acme                  5       10.5.0.0/24       2      12\n"
			    "a-much-longer-tenant  4094    192.168.128.0/17  0      0\n");
	mem_free(&m);
}

static void empty_lists_say_so(void **state)
{
	Vmlet__V1__TenantListResult tl = VMLET__V1__TENANT_LIST_RESULT__INIT;
	Vmlet__V1__InstanceListResult il = VMLET__V1__INSTANCE_LIST_RESULT__INIT;
	struct vmlet_err err;
	struct mem m;

	mem_open(&m);
	assert_int_equal(ctl_render_tenant_list(m.f, &tl, &err), 0);
	assert_int_equal(ctl_render_instance_list(m.f, &il, &err), 0);
	assert_string_equal(mem_text(&m), "no tenants\nno instances\n");
	mem_free(&m);
}

static void instance_list_as_aligned_columns(void **state)
{
	Vmlet__V1__InstanceInfo a = VMLET__V1__INSTANCE_INFO__INIT;
	Vmlet__V1__InstanceInfo b = VMLET__V1__INSTANCE_INFO__INIT;
	Vmlet__V1__InstanceInfo *list[] = { &a, &b };
	Vmlet__V1__InstanceListResult il = VMLET__V1__INSTANCE_LIST_RESULT__INIT;
	struct vmlet_err err;
	struct mem m;

	a.tenant_id = "acme";
	a.pool_id = "web";
	a.instance_id = "i-0123abcd";
	a.state = VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_RUNNING;
	a.ipv4_address = "10.5.0.2";
	a.vcpus = 2;
	a.mem_mib = 512;
	a.pid = 4242;
	b.tenant_id = "acme";
	b.pool_id = "workers";
	b.instance_id = "i-ffff0000";
	b.state = VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_SLEEPING;
	b.vcpus = 1;
	b.mem_mib = 128;
	/* now = 1700100000: a running for 2h05m07s, created 3 days ago;
	 * b created 59 s ago; a state_since ahead of the clock reads 0s. */
	a.created_unix = 1700100000 - 3 * 86400 - 7200;
	a.state_since_unix = 1700100000 - 7507;
	b.created_unix = 1700100000 - 59;
	b.state_since_unix = 1700100000 - 30;
	il.n_instances = 2;
	il.instances = list;
	mem_open(&m);
	assert_int_equal(ctl_render_instance_list_at(m.f, &il, 1700100000, &err), 0);
	assert_string_equal(
		mem_text(&m),
		"TENANT  POOL     INSTANCE    STATE     UPTIME  AGE    IPV4      VCPUS  MEM-MIB  PID\n"
		"acme    web      i-0123abcd  running   2h05m   3d02h  10.5.0.2  2      512      4242\n"
		"acme    workers  i-ffff0000  sleeping  -       59s    -         1      128      -\n");
	mem_free(&m);

	/* An ERROR column appears once an instance has one. */
	b.last_error = "restore failed";
	a.state_since_unix = 1700100000 + 100; /* skewed: 0s, never a wrapped number */
	a.created_unix = 0;                     /* unset: "-" */
	b.created_unix = 1700100000 - 125;
	mem_open(&m);
	assert_int_equal(ctl_render_instance_list_at(m.f, &il, 1700100000, &err), 0);
	assert_string_equal(
		mem_text(&m),
		"TENANT  POOL     INSTANCE    STATE     UPTIME  AGE    IPV4      VCPUS  MEM-MIB  PID   ERROR\n"
		"acme    web      i-0123abcd  running   0s      -      10.5.0.2  2      512      4242  -\n"
		"acme    workers  i-ffff0000  sleeping  -       2m05s  -         1      128      -     restore failed\n");
	mem_free(&m);
}

static void wake_result_nests_the_instance(void **state)
{
	Vmlet__V1__InstanceInfo i = VMLET__V1__INSTANCE_INFO__INIT;
	Vmlet__V1__WakeInstanceResult w = VMLET__V1__WAKE_INSTANCE_RESULT__INIT;
	struct vmlet_err err;
	struct mem m;

	i.tenant_id = "acme";
	i.pool_id = "web";
	i.instance_id = "i-0123abcd";
	i.state = VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_WARM;
	w.instance = &i;
	w.wake_micros = 1500;
	mem_open(&m);
	assert_int_equal(ctl_render_wake_instance(m.f, &w, &err), 0);
	const char *text = mem_text(&m);
	assert_non_null(strstr(text, "instance.tenant_id: acme\n"
				     "instance.pool_id: web\n"
				     "instance.instance_id: i-0123abcd\n"
				     "instance.state: warm\n"));
	assert_non_null(strstr(text, "\nwake_micros: 1500\n"));
	mem_free(&m);

	w.instance = NULL;
	mem_open(&m);
	assert_int_equal(ctl_render_wake_instance(m.f, &w, &err), 0);
	assert_string_equal(mem_text(&m), "instance: -\nwake_micros: 1500\n");
	mem_free(&m);
}

static void reconcile_report_lists_errors(void **state)
{
	Vmlet__V1__ReconcileError e1 = VMLET__V1__RECONCILE_ERROR__INIT;
	Vmlet__V1__ReconcileError *errs[] = { &e1 };
	char *deferred[] = { "acme/web: quota max_running reached" };
	Vmlet__V1__ReconcileReport r = VMLET__V1__RECONCILE_REPORT__INIT;
	struct vmlet_err err;
	struct mem m;

	e1.tenant_id = "acme";
	e1.pool_id = "web";
	e1.message = "image missing";
	r.tenants_created = 1;
	r.sequence = 7;
	r.n_errors = 1;
	r.errors = errs;
	r.n_deferred = 1;
	r.deferred = deferred;
	mem_open(&m);
	assert_int_equal(ctl_render_reconcile_report(m.f, &r, &err), 0);
	const char *text = mem_text(&m);
	assert_non_null(strstr(text, "tenants_created: 1\n"));
	assert_non_null(strstr(text, "sequence: 7\n"));
	assert_null(strstr(text, "errors: -")); /* repeated fields are not "key: value" */
	assert_non_null(strstr(text, "errors: 1\n  acme/web/-: image missing\n"
				     "deferred: 1\n  acme/web: quota max_running reached\n"));
	mem_free(&m);
}

static void net_verify_pass_fail_lines(void **state)
{
	Vmlet__V1__NetCheck ok = VMLET__V1__NET_CHECK__INIT, bad = VMLET__V1__NET_CHECK__INIT;
	Vmlet__V1__NetCheck *checks[] = { &ok, &bad };
	Vmlet__V1__NetVerifyResult r = VMLET__V1__NET_VERIFY_RESULT__INIT;
	struct vmlet_err err;
	struct mem m;

	ok.name = "tenant acme: bridge br-tenant-7 is up";
	ok.ok = 1;
	bad.name = "nft rule vmlet:isolate:7";
	bad.expected = "{\"drop\":null}";
	bad.found = "(missing)\x1b[2J";
	r.n_checks = 2;
	r.checks = checks;
	r.failed = 1;
	mem_open(&m);
	assert_int_equal(ctl_render_net_verify(m.f, &r, &err), 1);
	const char *text = mem_text(&m);
	assert_non_null(strstr(text, "PASS tenant acme: bridge br-tenant-7 is up\n"
				     "FAIL nft rule vmlet:isolate:7\n"
				     "     expected: {\"drop\":null}\n"
				     "     found:    (missing)"));
	assert_null(strstr(text, "\x1b")); /* a hostile string is escaped */
	assert_non_null(strstr(text, "2 checks, 1 failed\n"));
	mem_free(&m);

	r.failed = 0;
	r.n_checks = 1;
	mem_open(&m);
	assert_int_equal(ctl_render_net_verify(m.f, &r, &err), 0);
	assert_non_null(strstr(mem_text(&m), "1 checks, 0 failed\n"));
	mem_free(&m);
}

static void error_line_on_stderr_format(void **state)
{
	Vmlet__V1__Error e = VMLET__V1__ERROR__INIT;
	struct mem m;

	e.code = 404;
	e.message = "instance acme/web/i-0123abcd not found";
	mem_open(&m);
	ctl_render_error(m.f, &e);
	e.code = 503;
	e.message = "hostd unavailable";
	ctl_render_error(m.f, &e);
	assert_string_equal(mem_text(&m),
			    "error 404 not found: instance acme/web/i-0123abcd not found\n"
			    "error 503 unavailable: hostd unavailable\n");
	mem_free(&m);
}

/* Terminal escapes from the server never reach the terminal raw, and
 * column alignment counts them as printed. */
static void hostile_strings_are_escaped(void **state)
{
	Vmlet__V1__Error e = VMLET__V1__ERROR__INIT;
	Vmlet__V1__TenantSummary a = VMLET__V1__TENANT_SUMMARY__INIT;
	Vmlet__V1__TenantSummary *list[] = { &a };
	Vmlet__V1__TenantListResult tl = VMLET__V1__TENANT_LIST_RESULT__INIT;
	struct vmlet_err err;
	struct mem m;

	e.code = 400;
	e.message = "bad\x1b[2J\nforged line\x7f";
	mem_open(&m);
	ctl_render_error(m.f, &e);
	assert_string_equal(mem_text(&m), "error 400 invalid: bad\\x1b[2J\\x0aforged line\\x7f\n");
	mem_free(&m);

	a.tenant_id = "x\ty";
	a.ipv4_subnet = "s\xc3\xa9"; /* UTF-8: two bytes, one column */
	tl.n_tenants = 1;
	tl.tenants = list;
	mem_open(&m);
	assert_int_equal(ctl_render_tenant_list(m.f, &tl, &err), 0);
	assert_string_equal(mem_text(&m), "TENANT  NET-ID  SUBNET  POOLS  INSTANCES\n"
					  "x\\x09y  0       s\xc3\xa9      0      0\n");
	mem_free(&m);
}

static void json_output_round_trips(void **state)
{
	Vmlet__V1__NodeStats ns = VMLET__V1__NODE_STATS__INIT;
	struct vmlet_err err;
	struct mem m;

	ns.running_instances = 3;
	ns.tenant_count = 1;
	mem_open(&m);
	assert_int_equal(ctl_render_json(m.f, &ns.base, &err), 0);
	const char *text = mem_text(&m);
	assert_true(strlen(text) > 2 && text[strlen(text) - 1] == '\n');
	assert_non_null(strchr(text, '\n')); /* pretty: more than one line */
	ProtobufCMessage *back =
		vmlet_json_decode(&vmlet__v1__node_stats__descriptor, text, strlen(text), &err);
	assert_non_null(back);
	assert_int_equal(((Vmlet__V1__NodeStats *)back)->running_instances, 3);
	assert_int_equal(((Vmlet__V1__NodeStats *)back)->tenant_count, 1);
	protobuf_c_message_free_unpacked(back, NULL);
	mem_free(&m);
}

/* ctl_render_response picks the renderer by the answer's kind; an Error is
 * exit 1 (on stderr, or as JSON on stdout); the wrong kind is refused. */
static void response_dispatch(void **state)
{
	Vmlet__V1__AgentResponse resp = VMLET__V1__AGENT_RESPONSE__INIT;
	Vmlet__V1__Error e = VMLET__V1__ERROR__INIT;
	Vmlet__V1__TenantListResult tl = VMLET__V1__TENANT_LIST_RESULT__INIT;
	struct vmlet_err err;
	struct mem out, errs;

	e.code = 403;
	e.message = "peer not allowed";
	resp.response_case = VMLET__V1__AGENT_RESPONSE__RESPONSE_ERROR;
	resp.error = &e;
	mem_open(&out);
	mem_open(&errs);
	assert_int_equal(ctl_render_response(out.f, errs.f, &resp,
					     VMLET__V1__AGENT_RESPONSE__RESPONSE_NODE_INFO, false,
					     &err),
			 1);
	assert_string_equal(mem_text(&out), "");
	assert_string_equal(mem_text(&errs), "error 403 forbidden: peer not allowed\n");
	mem_free(&out);
	mem_free(&errs);

	mem_open(&out);
	mem_open(&errs);
	assert_int_equal(ctl_render_response(out.f, errs.f, &resp,
					     VMLET__V1__AGENT_RESPONSE__RESPONSE_NODE_INFO, true,
					     &err),
			 1);
	const char *json = mem_text(&out);
	assert_non_null(strstr(json, "\"code\": 403"));
	assert_non_null(strstr(json, "\"message\": \"peer not allowed\""));
	assert_string_equal(mem_text(&errs), "");
	mem_free(&out);
	mem_free(&errs);

	resp.response_case = VMLET__V1__AGENT_RESPONSE__RESPONSE_TENANT_LIST;
	resp.tenant_list = &tl;
	mem_open(&out);
	mem_open(&errs);
	assert_int_equal(ctl_render_response(out.f, errs.f, &resp,
					     VMLET__V1__AGENT_RESPONSE__RESPONSE_TENANT_LIST, false,
					     &err),
			 0);
	assert_string_equal(mem_text(&out), "no tenants\n");
	/* refused before anything is written */
	assert_int_equal(ctl_render_response(stdout, stderr, &resp,
					     VMLET__V1__AGENT_RESPONSE__RESPONSE_NODE_INFO, false,
					     &err),
			 -1);
	assert_string_equal(err.msg, "agentd answered with tenant_list where node_info was expected");
	mem_free(&out);
	mem_free(&errs);

	resp.response_case = VMLET__V1__AGENT_RESPONSE__RESPONSE__NOT_SET;
	assert_null(ctl_response_body(&resp));
	assert_int_equal(ctl_render_response(stdout, stderr, &resp,
					     VMLET__V1__AGENT_RESPONSE__RESPONSE_NODE_INFO, false,
					     &err),
			 -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(node_info_as_key_value_lines),
		cmocka_unit_test(node_stats_as_key_value_lines),
		cmocka_unit_test(tenant_list_as_aligned_columns),
		cmocka_unit_test(empty_lists_say_so),
		cmocka_unit_test(instance_list_as_aligned_columns),
		cmocka_unit_test(wake_result_nests_the_instance),
		cmocka_unit_test(net_verify_pass_fail_lines),
		cmocka_unit_test(reconcile_report_lists_errors),
		cmocka_unit_test(error_line_on_stderr_format),
		cmocka_unit_test(hostile_strings_are_escaped),
		cmocka_unit_test(json_output_round_trips),
		cmocka_unit_test(response_dispatch),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
