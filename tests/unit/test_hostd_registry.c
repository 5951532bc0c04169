/* hostd's registry (hostd/registry.c) on a temp state dir populated with
 * the write functions and then vandalised by hand: listing, stats and
 * lookup see exactly the valid records; everything else is ignored. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "shared/log.h"
#include "test_hostd_util.h"

#define OP(x) VMLET__HOST__V1__HOST_REQUEST__OP_##x
#define RESULT(x) VMLET__HOST__V1__HOST_RESPONSE__RESULT_##x
#define ST(x) VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_##x

/* ---- populating ------------------------------------------------------------------ */

static void put_tenant(struct hostd_fixture *fx, const char *t, uint32_t net, const char *cidr)
{
	Vmlet__Host__V1__TenantRecord r = VMLET__HOST__V1__TENANT_RECORD__INIT;
	struct vmlet_err err;

	r.tenant_id = (char *)t;
	r.tenant_net_id = net;
	r.ipv4_subnet = (char *)cidr;
	r.created_unix = 1700000000;
	if (hostd_registry_write_tenant(&fx->reg, &r, &err) < 0)
		fail_msg("write tenant %s: %s", t, err.msg);
}

static void put_pool(struct hostd_fixture *fx, const char *t, const char *p)
{
	Vmlet__Host__V1__PoolRecord r = VMLET__HOST__V1__POOL_RECORD__INIT;
	struct vmlet_err err;

	r.tenant_id = (char *)t;
	r.pool_id = (char *)p;
	r.spec_hash = "sha256:abc";
	if (hostd_registry_write_pool(&fx->reg, &r, &err) < 0)
		fail_msg("write pool %s/%s: %s", t, p, err.msg);
}

static void fill_instance(Vmlet__Host__V1__InstanceRecord *r, const char *t, const char *p,
			  const char *i, Vmlet__V1__InstanceState st, uint32_t vcpus, uint32_t mem)
{
	vmlet__host__v1__instance_record__init(r);
	r->tenant_id = (char *)t;
	r->pool_id = (char *)p;
	r->instance_id = (char *)i;
	r->state = st;
	r->vcpus = vcpus;
	r->mem_mib = mem;
	r->image = "base";
	r->ipv4_address = "10.10.0.2";
	r->tap_name = "tn10i2";
	r->pid = 4242;
	r->created_unix = 1700000001;
	r->state_since_unix = 1700000002;
	r->spec_hash = "sha256:abc";
}

static void put_instance(struct hostd_fixture *fx, const char *t, const char *p, const char *i,
			 Vmlet__V1__InstanceState st, uint32_t vcpus, uint32_t mem)
{
	Vmlet__Host__V1__InstanceRecord r;
	struct vmlet_err err;

	fill_instance(&r, t, p, i, st, vcpus, mem);
	if (hostd_registry_write_instance(&fx->reg, &r, &err) < 0)
		fail_msg("write instance %s/%s/%s: %s", t, p, i, err.msg);
}

static const char *path_in(struct hostd_fixture *fx, const char *rel)
{
	static char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", fx->dir, rel);
	return path;
}

static void mkdir_in(struct hostd_fixture *fx, const char *rel)
{
	if (mkdir(path_in(fx, rel), 0700) < 0 && errno != EEXIST)
		fail_msg("mkdir %s: %s", rel, strerror(errno));
}

static void write_in(struct hostd_fixture *fx, const char *rel, const char *text)
{
	FILE *f = fopen(path_in(fx, rel), "w");

	if (!f)
		fail_msg("create %s: %s", rel, strerror(errno));
	fputs(text, f);
	fclose(f);
}

static void copy_in(struct hostd_fixture *fx, const char *from, const char *to)
{
	char cmd[2 * PATH_MAX + 16], a[PATH_MAX];

	snprintf(a, sizeof(a), "%s", path_in(fx, from));
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", a, path_in(fx, to));
	assert_int_equal(system(cmd), 0);
}

static void symlink_in(struct hostd_fixture *fx, const char *target_rel, const char *link_rel)
{
	char target[PATH_MAX];

	snprintf(target, sizeof(target), "%s", path_in(fx, target_rel));
	if (symlink(target, path_in(fx, link_rel)) < 0)
		fail_msg("symlink %s: %s", link_rel, strerror(errno));
}

/* The good part of the registry, then everything that must be ignored. */
static int setup_populated(void **state)
{
	struct hostd_fixture *fx = hostd_fixture_new();

	vlog_init("test_hostd_registry");
	if (!fx)
		return -1;
	*state = fx;
	put_tenant(fx, "acme", 10, "10.10.0.0/24");
	put_pool(fx, "acme", "web");
	put_pool(fx, "acme", "db");
	put_instance(fx, "acme", "web", "i-00000001", ST(RUNNING), 2, 256);
	put_instance(fx, "acme", "web", "i-00000002", ST(WARM), 1, 128);
	put_instance(fx, "acme", "web", "i-00000003", ST(SLEEPING), 4, 512);
	put_instance(fx, "acme", "web", "i-00000004", ST(STOPPED), 1, 64);
	put_instance(fx, "acme", "db", "i-000000aa", ST(CREATED), 1, 64);
	put_instance(fx, "acme", "db", "i-000000ab", ST(DESTROYED), 8, 1024);
	put_tenant(fx, "beta", 11, "10.11.0.0/24");

	/* a tenant dir whose name is not an id, with a record claiming it */
	mkdir_in(fx, "state/tenants/Bad_Name");
	write_in(fx, "state/tenants/Bad_Name/tenant.json",
		 "{\"tenant_id\": \"Bad_Name\", \"tenant_net_id\": 12, \"ipv4_subnet\": \"10.12.0.0/24\"}");
	mkdir_in(fx, "state/tenants/.hidden");
	/* a symlinked tenant dir, pointing at a perfectly valid tenant */
	mkdir_in(fx, "outside");
	mkdir_in(fx, "outside/evil");
	write_in(fx, "outside/evil/tenant.json",
		 "{\"tenant_id\": \"evil\", \"tenant_net_id\": 13, \"ipv4_subnet\": \"10.13.0.0/24\"}");
	symlink_in(fx, "outside/evil", "state/tenants/evil");
	/* a record whose id is another tenant's: it and its pools are ignored */
	mkdir_in(fx, "state/tenants/liar");
	copy_in(fx, "state/tenants/acme/tenant.json", "state/tenants/liar/tenant.json");
	mkdir_in(fx, "state/tenants/liar/pools");
	mkdir_in(fx, "state/tenants/liar/pools/web");
	write_in(fx, "state/tenants/liar/pools/web/pool.json",
		 "{\"tenant_id\": \"liar\", \"pool_id\": \"web\"}");
	/* a tenant dir with no record, and a file where a dir belongs */
	mkdir_in(fx, "state/tenants/norecord");
	write_in(fx, "state/tenants/afile", "x");
	/* a tenant record that does not validate (net id 0) or decode */
	mkdir_in(fx, "state/tenants/badnet");
	write_in(fx, "state/tenants/badnet/tenant.json",
		 "{\"tenant_id\": \"badnet\", \"tenant_net_id\": 0, \"ipv4_subnet\": \"10.14.0.0/24\"}");
	mkdir_in(fx, "state/tenants/notjson");
	write_in(fx, "state/tenants/notjson/tenant.json", "{\"tenant_id\": \"notjson\",");
	mkdir_in(fx, "state/tenants/extrakey");
	write_in(fx, "state/tenants/extrakey/tenant.json",
		 "{\"tenant_id\": \"extrakey\", \"tenant_net_id\": 15, \"ipv4_subnet\": "
		 "\"10.15.0.0/24\", \"root\": true}");
	/* tenant.json itself a symlink to a valid record */
	mkdir_in(fx, "state/tenants/linkrec");
	write_in(fx, "outside/linkrec.json",
		 "{\"tenant_id\": \"linkrec\", \"tenant_net_id\": 16, \"ipv4_subnet\": \"10.16.0.0/24\"}");
	symlink_in(fx, "outside/linkrec.json", "state/tenants/linkrec/tenant.json");

	/* under acme/web/instances: */
	/* mismatched pool id in the record */
	mkdir_in(fx, "state/tenants/acme/pools/web/instances/i-00000009");
	copy_in(fx, "state/tenants/acme/pools/db/instances/i-000000aa/instance.json",
		"state/tenants/acme/pools/web/instances/i-00000009/instance.json");
	/* a name that is not an instance id, holding a valid-looking record */
	mkdir_in(fx, "state/tenants/acme/pools/web/instances/i-0000000z");
	copy_in(fx, "state/tenants/acme/pools/web/instances/i-00000001/instance.json",
		"state/tenants/acme/pools/web/instances/i-0000000z/instance.json");
	/* instance.json is a symlink to the real record of i-00000001 */
	mkdir_in(fx, "state/tenants/acme/pools/web/instances/i-00000008");
	symlink_in(fx, "state/tenants/acme/pools/web/instances/i-00000001/instance.json",
		   "state/tenants/acme/pools/web/instances/i-00000008/instance.json");
	/* the instance dir itself a symlink */
	symlink_in(fx, "state/tenants/acme/pools/web/instances/i-00000001",
		   "state/tenants/acme/pools/web/instances/i-00000007");
	/* an oversize record */
	mkdir_in(fx, "state/tenants/acme/pools/web/instances/i-00000006");
	{
		char *big = malloc(HOSTD_REGISTRY_MAX_RECORD + 2);
		memset(big, ' ', HOSTD_REGISTRY_MAX_RECORD + 1);
		big[0] = '{';
		big[HOSTD_REGISTRY_MAX_RECORD] = '}';
		big[HOSTD_REGISTRY_MAX_RECORD + 1] = 0;
		write_in(fx, "state/tenants/acme/pools/web/instances/i-00000006/instance.json", big);
		free(big);
	}
	/* a record with state unspecified, and one with vcpus out of range */
	mkdir_in(fx, "state/tenants/acme/pools/web/instances/i-00000005");
	write_in(fx, "state/tenants/acme/pools/web/instances/i-00000005/instance.json",
		 "{\"tenant_id\": \"acme\", \"pool_id\": \"web\", \"instance_id\": \"i-00000005\", "
		 "\"vcpus\": 1, \"mem_mib\": 64}");
	mkdir_in(fx, "state/tenants/acme/pools/web/instances/i-0000000a");
	write_in(fx, "state/tenants/acme/pools/web/instances/i-0000000a/instance.json",
		 "{\"tenant_id\": \"acme\", \"pool_id\": \"web\", \"instance_id\": \"i-0000000a\", "
		 "\"state\": \"running\", \"vcpus\": 33, \"mem_mib\": 64}");
	/* a pool dir without pool.json: its instances do not exist */
	mkdir_in(fx, "state/tenants/acme/pools/ghost");
	mkdir_in(fx, "state/tenants/acme/pools/ghost/instances");
	mkdir_in(fx, "state/tenants/acme/pools/ghost/instances/i-000000ff");
	write_in(fx, "state/tenants/acme/pools/ghost/instances/i-000000ff/instance.json",
		 "{\"tenant_id\": \"acme\", \"pool_id\": \"ghost\", \"instance_id\": \"i-000000ff\", "
		 "\"state\": \"running\", \"vcpus\": 1, \"mem_mib\": 64}");
	/* a symlinked pools dir under beta */
	symlink_in(fx, "state/tenants/acme/pools", "state/tenants/beta/pools");
	return 0;
}

static int teardown(void **state)
{
	hostd_fixture_free(*state);
	return 0;
}

/* ---- requests -------------------------------------------------------------------- */

static Vmlet__Host__V1__HostResponse *simple(struct hostd_fixture *fx, int op)
{
	Vmlet__Host__V1__HostRequest req = VMLET__HOST__V1__HOST_REQUEST__INIT;
	Vmlet__Host__V1__NodeStatsRequest ns = VMLET__HOST__V1__NODE_STATS_REQUEST__INIT;
	Vmlet__Host__V1__ListTenantsRequest lt = VMLET__HOST__V1__LIST_TENANTS_REQUEST__INIT;

	req.op_case = op;
	if (op == OP(NODE_STATS))
		req.node_stats = &ns;
	else
		req.list_tenants = &lt;
	return hostd_call(fx, &req);
}

/* ---- tests ------------------------------------------------------------------------- */

static void stats_count_only_valid_records(void **state)
{
	Vmlet__Host__V1__HostResponse *resp = simple(*state, OP(NODE_STATS));
	Vmlet__V1__NodeStats *st;

	assert_non_null(resp);
	assert_int_equal(resp->result_case, RESULT(NODE_STATS));
	st = resp->node_stats;
	assert_int_equal(st->tenant_count, 2);    /* acme, beta */
	assert_int_equal(st->pool_count, 2);      /* acme/web, acme/db */
	assert_int_equal(st->running_instances, 1);
	assert_int_equal(st->warm_instances, 1);
	assert_int_equal(st->sleeping_instances, 1);
	assert_int_equal(st->stopped_instances, 1);
	assert_int_equal(st->created_instances, 1);
	assert_int_equal(st->total_vcpus_used, 3);    /* running 2 + warm 1 */
	assert_int_equal(st->total_mem_used_mib, 384); /* 256 + 128 */
	hostd_resp_free(resp);
}

static void tenants_listed_sorted_with_counts(void **state)
{
	Vmlet__Host__V1__HostResponse *resp = simple(*state, OP(LIST_TENANTS));
	Vmlet__V1__TenantListResult *tl;

	assert_non_null(resp);
	assert_int_equal(resp->result_case, RESULT(TENANTS));
	tl = resp->tenants;
	assert_int_equal(tl->n_tenants, 2);
	assert_string_equal(tl->tenants[0]->tenant_id, "acme");
	assert_int_equal(tl->tenants[0]->tenant_net_id, 10);
	assert_string_equal(tl->tenants[0]->ipv4_subnet, "10.10.0.0/24");
	assert_int_equal(tl->tenants[0]->pool_count, 2);
	assert_int_equal(tl->tenants[0]->instance_count, 6); /* destroyed one included */
	assert_string_equal(tl->tenants[1]->tenant_id, "beta");
	assert_int_equal(tl->tenants[1]->pool_count, 0);  /* its pools dir is a symlink */
	assert_int_equal(tl->tenants[1]->instance_count, 0);
	hostd_resp_free(resp);
}

static void instances_listed_and_filtered(void **state)
{
	struct hostd_fixture *fx = *state;
	Vmlet__Host__V1__HostResponse *resp;
	Vmlet__V1__InstanceListResult *il;
	static const char *const all[] = { "i-000000aa", "i-000000ab", "i-00000001", "i-00000002",
					   "i-00000003", "i-00000004" };

	resp = hostd_call_list_instances(fx, "", "");
	assert_non_null(resp);
	assert_int_equal(resp->result_case, RESULT(INSTANCES));
	il = resp->instances;
	assert_int_equal(il->n_instances, 6);
	/* sorted: pools db before web, instances by id */
	for (size_t k = 0; k < 6; k++)
		assert_string_equal(il->instances[k]->instance_id, all[k]);
	assert_string_equal(il->instances[2]->pool_id, "web");
	assert_int_equal(il->instances[2]->state, ST(RUNNING));
	assert_int_equal(il->instances[2]->vcpus, 2);
	assert_int_equal(il->instances[2]->mem_mib, 256);
	assert_string_equal(il->instances[2]->ipv4_address, "10.10.0.2");
	assert_string_equal(il->instances[2]->tap_name, "tn10i2");
	assert_int_equal(il->instances[2]->pid, 4242);
	assert_int_equal(il->instances[2]->created_unix, 1700000001);
	assert_int_equal(il->instances[2]->state_since_unix, 1700000002);
	assert_string_equal(il->instances[2]->spec_hash, "sha256:abc");
	hostd_resp_free(resp);

	resp = hostd_call_list_instances(fx, "acme", "");
	assert_int_equal(resp->instances->n_instances, 6);
	hostd_resp_free(resp);
	resp = hostd_call_list_instances(fx, "acme", "web");
	assert_int_equal(resp->instances->n_instances, 4);
	for (size_t k = 0; k < 4; k++)
		assert_string_equal(resp->instances->instances[k]->pool_id, "web");
	hostd_resp_free(resp);
	resp = hostd_call_list_instances(fx, "acme", "db");
	assert_int_equal(resp->instances->n_instances, 2);
	hostd_resp_free(resp);
	/* ignored and unknown things list as nothing */
	static const char *const empty[][2] = {
		{ "beta", "" }, { "beta", "web" }, { "zzz", "" }, { "acme", "ghost" },
		{ "evil", "" }, { "liar", "" }, { "liar", "web" }, { "linkrec", "" },
		{ "norecord", "" }, { "afile", "" }, { "acme", "nope" },
	};
	for (size_t k = 0; k < sizeof(empty) / sizeof(empty[0]); k++) {
		resp = hostd_call_list_instances(fx, empty[k][0], empty[k][1]);
		assert_non_null(resp);
		assert_int_equal(resp->result_case, RESULT(INSTANCES));
		if (resp->instances->n_instances != 0)
			fail_msg("%s/%s listed %zu instances", empty[k][0], empty[k][1],
				 resp->instances->n_instances);
		hostd_resp_free(resp);
	}
}

static void lookup_finds_only_valid_records(void **state)
{
	struct hostd_fixture *fx = *state;
	Vmlet__Host__V1__HostResponse *resp;
	static const char *const absent[][3] = {
		{ "acme", "web", "i-00000009" }, /* mismatched ids */
		{ "acme", "web", "i-00000008" }, /* symlinked record */
		{ "acme", "web", "i-00000007" }, /* symlinked dir */
		{ "acme", "web", "i-00000006" }, /* oversize */
		{ "acme", "web", "i-00000005" }, /* state unspecified */
		{ "acme", "web", "i-0000000a" }, /* vcpus out of range */
		{ "acme", "ghost", "i-000000ff" }, /* pool without record */
		{ "acme", "db", "i-00000001" },  /* wrong pool */
		{ "beta", "web", "i-00000001" }, /* through a symlinked pools dir */
		{ "liar", "web", "i-00000001" },
		{ "zzz", "web", "i-00000001" },
	};

	resp = hostd_call_lookup(fx, "acme", "web", "i-00000002");
	assert_non_null(resp);
	assert_int_equal(resp->result_case, RESULT(INSTANCE));
	assert_string_equal(resp->instance->tenant_id, "acme");
	assert_string_equal(resp->instance->pool_id, "web");
	assert_string_equal(resp->instance->instance_id, "i-00000002");
	assert_int_equal(resp->instance->state, ST(WARM));
	hostd_resp_free(resp);

	for (size_t k = 0; k < sizeof(absent) / sizeof(absent[0]); k++) {
		char want[128];

		resp = hostd_call_lookup(fx, absent[k][0], absent[k][1], absent[k][2]);
		assert_non_null(resp);
		snprintf(want, sizeof(want), "instance %s/%s/%s not found", absent[k][0],
			 absent[k][1], absent[k][2]);
		if (resp->result_case != RESULT(ERROR) || resp->error->code != 404 ||
		    strcmp(resp->error->message, want) != 0)
			fail_msg("lookup %s: not a 404 \"%s\"", want, want);
		hostd_resp_free(resp);
	}
}

static void records_are_private_and_updates_replace(void **state)
{
	struct hostd_fixture *fx = *state;
	Vmlet__Host__V1__HostResponse *resp;
	struct stat st;

	assert_int_equal(stat(path_in(fx, "state"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0711);
	assert_int_equal(stat(path_in(fx, "state/tenants"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(stat(path_in(fx, "state/tenants/acme"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(st.st_uid, geteuid());
	assert_int_equal(stat(path_in(fx, "state/tenants/acme/pools/web/instances"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(stat(path_in(fx, "state/tenants/acme/tenant.json"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(
		stat(path_in(fx, "state/tenants/acme/pools/web/instances/i-00000001/instance.json"),
		     &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	/* rewriting a record replaces it */
	put_instance(fx, "acme", "web", "i-00000001", ST(STOPPED), 2, 256);
	resp = hostd_call_lookup(fx, "acme", "web", "i-00000001");
	assert_int_equal(resp->result_case, RESULT(INSTANCE));
	assert_int_equal(resp->instance->state, ST(STOPPED));
	hostd_resp_free(resp);
	resp = simple(fx, OP(NODE_STATS));
	assert_int_equal(resp->node_stats->running_instances, 0);
	assert_int_equal(resp->node_stats->stopped_instances, 2);
	hostd_resp_free(resp);
}

static void writes_refuse_invalid_records(void **state)
{
	struct hostd_fixture *fx = *state;
	Vmlet__Host__V1__TenantRecord t = VMLET__HOST__V1__TENANT_RECORD__INIT;
	Vmlet__Host__V1__PoolRecord p = VMLET__HOST__V1__POOL_RECORD__INIT;
	Vmlet__Host__V1__InstanceRecord i;
	struct vmlet_err err;
	struct stat st;

	t.tenant_id = "../x";
	t.tenant_net_id = 20;
	t.ipv4_subnet = "10.20.0.0/24";
	assert_int_equal(hostd_registry_write_tenant(&fx->reg, &t, &err), -1);
	assert_int_equal(err.code, 400);
	assert_non_null(strstr(err.msg, "tenant_id"));
	assert_int_equal(stat(path_in(fx, "state/x"), &st), -1);
	t.tenant_id = "gamma";
	t.tenant_net_id = 4095;
	assert_int_equal(hostd_registry_write_tenant(&fx->reg, &t, &err), -1);
	assert_non_null(strstr(err.msg, "tenant_net_id"));
	t.tenant_net_id = 20;
	t.ipv4_subnet = "8.8.8.0/24"; /* not private */
	assert_int_equal(hostd_registry_write_tenant(&fx->reg, &t, &err), -1);
	assert_non_null(strstr(err.msg, "ipv4_subnet"));
	assert_int_equal(stat(path_in(fx, "state/tenants/gamma"), &st), -1);

	/* parents must exist */
	p.tenant_id = "gamma";
	p.pool_id = "web";
	assert_int_equal(hostd_registry_write_pool(&fx->reg, &p, &err), -1);
	assert_int_equal(err.code, 404);
	assert_int_equal(stat(path_in(fx, "state/tenants/gamma"), &st), -1);
	p.tenant_id = "acme";
	p.pool_id = "a/b";
	assert_int_equal(hostd_registry_write_pool(&fx->reg, &p, &err), -1);
	assert_int_equal(err.code, 400);

	fill_instance(&i, "acme", "nopool", "i-00000100", ST(RUNNING), 1, 64);
	assert_int_equal(hostd_registry_write_instance(&fx->reg, &i, &err), -1);
	assert_int_equal(err.code, 404);
	fill_instance(&i, "acme", "web", "i-0000010", ST(RUNNING), 1, 64);
	assert_int_equal(hostd_registry_write_instance(&fx->reg, &i, &err), -1);
	assert_non_null(strstr(err.msg, "instance_id"));
	fill_instance(&i, "acme", "web", "i-00000100", ST(UNSPECIFIED), 1, 64);
	assert_int_equal(hostd_registry_write_instance(&fx->reg, &i, &err), -1);
	assert_non_null(strstr(err.msg, "state"));
	fill_instance(&i, "acme", "web", "i-00000100", (Vmlet__V1__InstanceState)99, 1, 64);
	assert_int_equal(hostd_registry_write_instance(&fx->reg, &i, &err), -1);
	fill_instance(&i, "acme", "web", "i-00000100", ST(RUNNING), 0, 64);
	assert_int_equal(hostd_registry_write_instance(&fx->reg, &i, &err), -1);
	assert_non_null(strstr(err.msg, "vcpus"));
	fill_instance(&i, "acme", "web", "i-00000100", ST(RUNNING), 1, 63);
	assert_int_equal(hostd_registry_write_instance(&fx->reg, &i, &err), -1);
	assert_non_null(strstr(err.msg, "mem_mib"));
	assert_int_equal(stat(path_in(fx, "state/tenants/acme/pools/web/instances/i-00000100"), &st),
			 -1);
}

static int count_visits(void *arg, const Vmlet__Host__V1__InstanceRecord *i,
			struct vmlet_err *err)
{
	int *n = arg;

	if (++*n == 2)
		return vmlet_err_set(err, VMLET_E_CONFLICT, 0, "stop at %s", i->instance_id);
	return 0;
}

static void walk_stops_when_a_visitor_fails(void **state)
{
	struct hostd_fixture *fx = *state;
	struct hostd_registry_visitor v = { .instance = count_visits };
	struct vmlet_err err;
	int n = 0;

	assert_int_equal(hostd_registry_walk(&fx->reg, NULL, NULL, &v, &n, &err), -1);
	assert_int_equal(n, 2);
	assert_int_equal(err.code, VMLET_E_CONFLICT);
	assert_string_equal(err.msg, "stop at i-000000ab");
	/* the walk itself refuses what is not an id */
	assert_int_equal(hostd_registry_walk(&fx->reg, "../acme", NULL, &v, &n, &err), -1);
	assert_int_equal(err.code, 400);
	assert_int_equal(hostd_registry_walk(&fx->reg, NULL, "web", &v, &n, &err), -1);
	assert_int_equal(err.code, 400);
}

static void flooded_directory_is_an_error_not_a_crash(void **state)
{
	struct hostd_fixture *fx = *state;
	Vmlet__Host__V1__HostResponse *resp;
	char rel[128];

	/* beta's pools dir (a symlink in the fixture) becomes a real one
	 * holding one entry too many; plain files will do: the cap is on the
	 * names read, before any of them is opened. */
	assert_int_equal(unlink(path_in(fx, "state/tenants/beta/pools")), 0);
	mkdir_in(fx, "state/tenants/beta/pools");
	for (int k = 0; k <= HOSTD_REGISTRY_MAX_ENTRIES; k++) {
		snprintf(rel, sizeof(rel), "state/tenants/beta/pools/p%d", k);
		write_in(fx, rel, "");
	}
	resp = simple(fx, OP(NODE_STATS));
	assert_non_null(resp);
	assert_int_equal(resp->result_case, RESULT(ERROR));
	assert_int_equal(resp->error->code, 500);
	assert_non_null(strstr(resp->error->message, "more than"));
	hostd_resp_free(resp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(stats_count_only_valid_records, setup_populated,
						teardown),
		cmocka_unit_test_setup_teardown(tenants_listed_sorted_with_counts, setup_populated,
						teardown),
		cmocka_unit_test_setup_teardown(instances_listed_and_filtered, setup_populated,
						teardown),
		cmocka_unit_test_setup_teardown(lookup_finds_only_valid_records, setup_populated,
						teardown),
		cmocka_unit_test_setup_teardown(records_are_private_and_updates_replace,
						setup_populated, teardown),
		cmocka_unit_test_setup_teardown(writes_refuse_invalid_records, setup_populated,
						teardown),
		cmocka_unit_test_setup_teardown(walk_stops_when_a_visitor_fails, setup_populated,
						teardown),
		cmocka_unit_test_setup_teardown(flooded_directory_is_an_error_not_a_crash,
						setup_populated, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
