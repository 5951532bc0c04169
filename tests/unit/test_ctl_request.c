/* Request building apart from sending: the builders check ids again (a
 * caller other than the argument parser gets no shortcut), and the
 * desired-state loader refuses bad files (missing, a directory, too large
 * on disk or through stdin, bad JSON, invalid state) with a message that
 * names the file. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctl/reconcile.h"
#include "ctl/request.h"

static char tmpdir[64];

static int setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_ctl_request.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void assert_contains(const char *hay, const char *needle)
{
	if (!strstr(hay, needle))
		fail_msg("\"%s\" lacks \"%s\"", hay, needle);
}

static void simple_requests_set_their_case(void **state)
{
	struct ctl_request r;

	ctl_request_init(&r);
	assert_int_equal(r.msg.request_case, VMLET__V1__AGENT_REQUEST__REQUEST__NOT_SET);
	ctl_request_node_info(&r);
	assert_int_equal(r.msg.request_case, VMLET__V1__AGENT_REQUEST__REQUEST_NODE_INFO);
	assert_ptr_equal(r.msg.node_info, &r.node_info);
	ctl_request_node_stats(&r);
	assert_int_equal(r.msg.request_case, VMLET__V1__AGENT_REQUEST__REQUEST_NODE_STATS);
	ctl_request_tenant_list(&r);
	assert_int_equal(r.msg.request_case, VMLET__V1__AGENT_REQUEST__REQUEST_TENANT_LIST);
	ctl_request_clear(&r);
}

static void instance_list_checks_ids(void **state)
{
	struct ctl_request r;
	struct vmlet_err err;
	char longid[200];

	ctl_request_init(&r);
	assert_int_equal(ctl_request_instance_list(&r, "acme", NULL, &err), 0);
	assert_int_equal(r.msg.request_case, VMLET__V1__AGENT_REQUEST__REQUEST_INSTANCE_LIST);
	assert_string_equal(r.msg.instance_list->tenant_id, "acme");
	assert_string_equal(r.msg.instance_list->pool_id, "");
	assert_int_equal(ctl_request_instance_list(&r, "acme", "web", &err), 0);
	assert_string_equal(r.msg.instance_list->pool_id, "web");

	ctl_request_init(&r);
	assert_int_equal(ctl_request_instance_list(&r, "../x", NULL, &err), -1);
	assert_int_equal(err.code, VMLET_E_INVALID);
	assert_int_equal(r.msg.request_case, VMLET__V1__AGENT_REQUEST__REQUEST__NOT_SET);
	assert_int_equal(ctl_request_instance_list(&r, "acme", "Web", &err), -1);
	assert_int_equal(ctl_request_instance_list(&r, NULL, NULL, &err), -1);
	memset(longid, 'a', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	assert_int_equal(ctl_request_instance_list(&r, longid, NULL, &err), -1);
	assert_int_equal(ctl_request_instance_list(&r, "acme", longid, &err), -1);
	assert_int_equal(r.msg.request_case, VMLET__V1__AGENT_REQUEST__REQUEST__NOT_SET);
	ctl_request_clear(&r);
}

static void wake_checks_ids(void **state)
{
	struct ctl_request r;
	struct vmlet_err err;

	ctl_request_init(&r);
	assert_int_equal(ctl_request_wake_instance(&r, "acme", "web", "i-0123abcd", &err), 0);
	assert_int_equal(r.msg.request_case, VMLET__V1__AGENT_REQUEST__REQUEST_WAKE_INSTANCE);
	assert_string_equal(r.msg.wake_instance->instance_id, "i-0123abcd");

	ctl_request_init(&r);
	assert_int_equal(ctl_request_wake_instance(&r, "acme", "web", "i-0123abc", &err), -1);
	assert_int_equal(ctl_request_wake_instance(&r, "acme", "web", "i-0123abcdef0", &err), -1);
	assert_int_equal(ctl_request_wake_instance(&r, "acme", "web", "../../etc", &err), -1);
	assert_int_equal(ctl_request_wake_instance(&r, "acme", "", "i-0123abcd", &err), -1);
	assert_int_equal(ctl_request_wake_instance(&r, "ac/me", "web", "i-0123abcd", &err), -1);
	assert_int_equal(err.code, VMLET_E_INVALID);
	assert_int_equal(r.msg.request_case, VMLET__V1__AGENT_REQUEST__REQUEST__NOT_SET);
	ctl_request_clear(&r);
}

static const char valid_state[] =
	"{\"schema_version\": 1, \"node_id\": \"node-1\",\n"
	" \"tenants\": [{\"tenant_id\": \"acme\",\n"
	"   \"network\": {\"tenant_net_id\": 5, \"ipv4_subnet\": \"10.5.0.0/24\"},\n"
	"   \"quotas\": {\"max_vcpus\": 8, \"max_mem_mib\": 4096, \"max_running\": 4,\n"
	"              \"max_warm\": 4, \"max_pools\": 2, \"max_instances_per_pool\": 8,\n"
	"              \"max_disk_gib\": 10},\n"
	"   \"pools\": [{\"pool_id\": \"web\", \"instance_resources\": {\"vcpus\": 1, \"mem_mib\": 128},\n"
	"               \"desired_counts\": {\"running\": 1}}]}]}\n";

static void reconcile_request_owns_the_state(void **state)
{
	Vmlet__V1__DesiredState *ds = NULL;
	struct ctl_request r;
	struct vmlet_err err;

	assert_int_equal(ctl_desired_state_parse("t.json", valid_state, strlen(valid_state), &ds,
						 &err),
			 0);
	ctl_request_init(&r);
	ctl_request_reconcile(&r, ds);
	assert_int_equal(r.msg.request_case, VMLET__V1__AGENT_REQUEST__REQUEST_RECONCILE);
	assert_ptr_equal(r.msg.reconcile->desired_state, ds);
	assert_null(r.msg.reconcile->signature); /* a signer adds it later */
	assert_true(protobuf_c_message_get_packed_size(&r.msg.base) > 0);
	ctl_request_clear(&r); /* frees ds: ASan would see a leak or double free */
	assert_null(r.desired_state);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void load_refuses_bad_files(void **state)
{
	Vmlet__V1__DesiredState *ds = NULL;
	struct vmlet_err err;
	char path[160];

	snprintf(path, sizeof(path), "%s/missing.json", tmpdir);
	assert_int_equal(ctl_desired_state_load(path, &ds, &err), -1);
	assert_contains(err.msg, path);
	assert_contains(err.msg, "No such file or directory");

	assert_int_equal(ctl_desired_state_load(tmpdir, &ds, &err), -1);
	assert_contains(err.msg, "is a directory");

	/* larger than the cap on disk: refused from its size, unread */
	snprintf(path, sizeof(path), "%s/huge.json", tmpdir);
	int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)CTL_DESIRED_STATE_MAX + 1), 0);
	close(fd);
	assert_int_equal(ctl_desired_state_load(path, &ds, &err), -1);
	assert_int_equal(err.code, VMLET_E_TOO_LARGE);

	snprintf(path, sizeof(path), "%s/bad.json", tmpdir);
	write_file(path, "{\"schema_version\": 1, \"tenants\": [{\"tenant_id\": \"a\", \"x\": 1}]}");
	assert_int_equal(ctl_desired_state_load(path, &ds, &err), -1);
	assert_int_equal(err.code, VMLET_E_INVALID);
	assert_contains(err.msg, "$.tenants[0]");

	write_file(path, "{\"schema_version\": 1, \"tenants\": [{\"tenant_id\": \"../x\"}]}");
	assert_int_equal(ctl_desired_state_load(path, &ds, &err), -1);
	assert_contains(err.msg, "tenants[0].tenant_id");

	write_file(path, "");
	assert_int_equal(ctl_desired_state_load(path, &ds, &err), -1);
	assert_null(ds);

	snprintf(path, sizeof(path), "%s/good.json", tmpdir);
	write_file(path, valid_state);
	assert_int_equal(ctl_desired_state_load(path, &ds, &err), 0);
	assert_string_equal(ds->tenants[0]->tenant_id, "acme");
	protobuf_c_message_free_unpacked(&ds->base, NULL);
}

/* Run ctl_desired_state_load("-") with fd as standard input. */
static int load_from_stdin(int fd, Vmlet__V1__DesiredState **ds, struct vmlet_err *err)
{
	int saved = dup(STDIN_FILENO);
	int rc;

	assert_true(saved >= 0);
	assert_int_equal(dup2(fd, STDIN_FILENO), STDIN_FILENO);
	rc = ctl_desired_state_load("-", ds, err);
	dup2(saved, STDIN_FILENO);
	close(saved);
	return rc;
}

static void load_reads_stdin_with_a_cap(void **state)
{
	Vmlet__V1__DesiredState *ds = NULL;
	struct vmlet_err err;
	int p[2];
	char path[160];

	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], valid_state, strlen(valid_state)), (ssize_t)strlen(valid_state));
	close(p[1]);
	assert_int_equal(load_from_stdin(p[0], &ds, &err), 0);
	close(p[0]);
	assert_string_equal(ds->node_id, "node-1");
	protobuf_c_message_free_unpacked(&ds->base, NULL);

	/* stdin has no size to check first: the cap holds while reading */
	snprintf(path, sizeof(path), "%s/huge-stdin", tmpdir);
	int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)CTL_DESIRED_STATE_MAX + 4096), 0);
	assert_int_equal(load_from_stdin(fd, &ds, &err), -1);
	close(fd);
	assert_int_equal(err.code, VMLET_E_TOO_LARGE);
	assert_contains(err.msg, "<stdin>: larger than");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(simple_requests_set_their_case),
		cmocka_unit_test(instance_list_checks_ids),
		cmocka_unit_test(wake_checks_ids),
		cmocka_unit_test(reconcile_request_owns_the_state),
		cmocka_unit_test(load_refuses_bad_files),
		cmocka_unit_test(load_reads_stdin_with_a_cap),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
