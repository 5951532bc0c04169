/* Validation rules: a valid base DesiredState (2 tenants x 2 pools), a
 * table of mutations each of which must be rejected with the expected
 * message, and a table of edge-value mutations that must be accepted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "shared/validate.h"

#define NODE "node-1"

/* Every message of the base state, in one place, rebuilt for each case. */
struct fixture {
	Vmlet__V1__DesiredState ds;
	Vmlet__V1__DesiredTenant t[2];
	Vmlet__V1__DesiredTenant *tp[2];
	Vmlet__V1__TenantNetwork net[2];
	Vmlet__V1__TenantQuotas q[2];
	Vmlet__V1__DesiredPool p[2][2];
	Vmlet__V1__DesiredPool *pp[2][2];
	Vmlet__V1__InstanceResources res[2][2];
	Vmlet__V1__DesiredCounts cnt[2][2];
	Vmlet__V1__RuntimePolicy pol[2][2];
	/* room for cases that need more tenants or pools than the base */
	Vmlet__V1__DesiredTenant *many_tenants[VMLET_MAX_TENANTS + 1];
	Vmlet__V1__DesiredPool *many_pools[VMLET_MAX_POOLS_PER_TENANT + 1];
	char text[512];
};

static struct fixture fx;

#define S(s) ((char *)(s))

static void build_base(struct fixture *f)
{
	static const char *const tenant_ids[2] = { "acme", "globex" };
	static const char *const subnets[2] = { "10.1.0.0/16", "192.168.4.0/24" };
	static const char *const pool_ids[2][2] = { { "web", "worker" }, { "api", "batch" } };
	static const uint32_t counts[2][3] = { { 3, 2, 1 }, { 2, 1, 0 } }; /* per pool index */

	memset(f, 0, sizeof(*f));
	f->ds = (Vmlet__V1__DesiredState)VMLET__V1__DESIRED_STATE__INIT;
	f->ds.schema_version = 1;
	f->ds.node_id = S(NODE);
	f->ds.n_tenants = 2;
	f->ds.tenants = f->tp;
	for (int t = 0; t < 2; t++) {
		f->tp[t] = &f->t[t];
		f->t[t] = (Vmlet__V1__DesiredTenant)VMLET__V1__DESIRED_TENANT__INIT;
		f->t[t].tenant_id = S(tenant_ids[t]);
		f->net[t] = (Vmlet__V1__TenantNetwork)VMLET__V1__TENANT_NETWORK__INIT;
		f->net[t].tenant_net_id = 10 * (uint32_t)(t + 1);
		f->net[t].ipv4_subnet = S(subnets[t]);
		f->t[t].network = &f->net[t];
		f->q[t] = (Vmlet__V1__TenantQuotas)VMLET__V1__TENANT_QUOTAS__INIT;
		f->q[t].max_vcpus = 64;
		f->q[t].max_mem_mib = 65536;
		f->q[t].max_running = 20;
		f->q[t].max_warm = 10;
		f->q[t].max_pools = 4;
		f->q[t].max_instances_per_pool = 50;
		f->q[t].max_disk_gib = 100;
		f->t[t].quotas = &f->q[t];
		f->t[t].n_pools = 2;
		f->t[t].pools = f->pp[t];
		for (int p = 0; p < 2; p++) {
			Vmlet__V1__DesiredPool *pool = &f->p[t][p];
			f->pp[t][p] = pool;
			*pool = (Vmlet__V1__DesiredPool)VMLET__V1__DESIRED_POOL__INIT;
			pool->pool_id = S(pool_ids[t][p]);
			pool->flake_ref = S("github:example/microvms");
			pool->profile = S("minimal");
			pool->image = S(p ? "debian-12" : "");
			f->res[t][p] = (Vmlet__V1__InstanceResources)VMLET__V1__INSTANCE_RESOURCES__INIT;
			f->res[t][p].vcpus = p ? 1 : 2;
			f->res[t][p].mem_mib = p ? 256 : 512;
			f->res[t][p].data_disk_mib = p ? 0 : 1024;
			pool->instance_resources = &f->res[t][p];
			f->cnt[t][p] = (Vmlet__V1__DesiredCounts)VMLET__V1__DESIRED_COUNTS__INIT;
			f->cnt[t][p].running = counts[p][0];
			f->cnt[t][p].warm = counts[p][1];
			f->cnt[t][p].sleeping = counts[p][2];
			pool->desired_counts = &f->cnt[t][p];
			f->pol[t][p] = (Vmlet__V1__RuntimePolicy)VMLET__V1__RUNTIME_POLICY__INIT;
			f->pol[t][p].min_running_seconds = 60;
			f->pol[t][p].min_warm_seconds = 30;
			f->pol[t][p].drain_timeout_seconds = 10;
			f->pol[t][p].graceful_shutdown_seconds = 5;
			pool->runtime_policy = p ? NULL : &f->pol[t][p];
		}
	}
}

/* ---- mutations that must be rejected ------------------------------------ */

#define MUT(name, body)                                                                         \
	static void name(struct fixture *f)                                                     \
	{                                                                                       \
		body;                                                                           \
	}

MUT(schema_0, f->ds.schema_version = 0)
MUT(schema_2, f->ds.schema_version = 2)
MUT(node_other, f->ds.node_id = S("node-2"))
MUT(node_empty, f->ds.node_id = S(""))
MUT(tenant_traversal, f->t[0].tenant_id = S("../etc"))
MUT(tenant_slash, f->t[0].tenant_id = S("a/b"))
MUT(tenant_dotdot, f->t[0].tenant_id = S(".."))
MUT(tenant_empty, f->t[0].tenant_id = S(""))
MUT(tenant_null, f->t[0].tenant_id = NULL)
MUT(tenant_64, f->t[0].tenant_id = S("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"))
MUT(tenant_leading_dash, f->t[0].tenant_id = S("-acme"))
MUT(tenant_trailing_dash, f->t[1].tenant_id = S("globex-"))
MUT(tenant_upper, f->t[0].tenant_id = S("Acme"))
MUT(tenant_unicode, f->t[0].tenant_id = S("\xc3\xa4" "cme"))
MUT(tenant_newline, f->t[0].tenant_id = S("acme\n"))
MUT(tenant_underscore, f->t[0].tenant_id = S("ac_me"))
MUT(pool_bad_id, f->p[1][0].pool_id = S("Bad_ID"))
MUT(pool_traversal, f->p[0][1].pool_id = S("../../x"))
MUT(pool_space, f->p[0][0].pool_id = S("web "))
MUT(pool_dot, f->p[0][0].pool_id = S("."))
MUT(dup_tenant, f->t[1].tenant_id = S("acme"))
MUT(dup_pool, f->p[0][1].pool_id = S("web"))
MUT(dup_net_id, f->net[1].tenant_net_id = 10)
MUT(network_missing, f->t[0].network = NULL)
MUT(quotas_missing, f->t[1].quotas = NULL)
MUT(net_id_0, f->net[0].tenant_net_id = 0)
MUT(net_id_4095, f->net[1].tenant_net_id = 4095)
MUT(subnet_public, f->net[0].ipv4_subnet = S("8.8.8.0/24"))
MUT(subnet_15, f->net[0].ipv4_subnet = S("10.0.0.0/15"))
MUT(subnet_30, f->net[0].ipv4_subnet = S("10.0.0.0/30"))
MUT(subnet_host_bits, f->net[0].ipv4_subnet = S("10.0.0.1/24"))
MUT(subnet_trailing_space, f->net[0].ipv4_subnet = S("10.0.0.0/24 "))
MUT(subnet_leading_space, f->net[0].ipv4_subnet = S(" 10.0.0.0/24"))
MUT(subnet_leading_zero, f->net[0].ipv4_subnet = S("010.0.0.0/24"))
MUT(subnet_prefix_zero, f->net[0].ipv4_subnet = S("10.0.0.0/024"))
MUT(subnet_33, f->net[0].ipv4_subnet = S("10.0.0.0/33"))
MUT(subnet_3_octets, f->net[0].ipv4_subnet = S("10.0.0/24"))
MUT(subnet_no_prefix, f->net[0].ipv4_subnet = S("10.0.0.0"))
MUT(subnet_octet_256, f->net[0].ipv4_subnet = S("10.256.0.0/16"))
MUT(subnet_two_prefixes, f->net[0].ipv4_subnet = S("10.0.0.0/16/16"))
MUT(subnet_empty, f->net[0].ipv4_subnet = S(""))
MUT(subnet_hex, f->net[0].ipv4_subnet = S("0xa.0.0.0/16"))
MUT(subnet_ipv6, f->net[0].ipv4_subnet = S("fd00::/64"))
MUT(subnet_172_32, f->net[0].ipv4_subnet = S("172.32.0.0/16"))
MUT(subnet_192_169, f->net[0].ipv4_subnet = S("192.169.0.0/16"))
MUT(subnet_overlap, f->net[1].ipv4_subnet = S("10.1.2.0/24"))
MUT(subnet_same, f->net[1].ipv4_subnet = S("10.1.0.0/16"))
MUT(vcpus_0, f->res[0][0].vcpus = 0)
MUT(vcpus_33, f->res[0][0].vcpus = 33)
MUT(mem_63, f->res[0][1].mem_mib = 63)
MUT(mem_262145, f->res[1][1].mem_mib = 262145)
MUT(resources_missing, f->p[0][0].instance_resources = NULL)
MUT(counts_missing, f->p[1][1].desired_counts = NULL)
MUT(running_101, f->cnt[0][0].running = 101)
MUT(warm_101, f->cnt[0][0].warm = 101)
MUT(sleeping_101, f->cnt[1][0].sleeping = 101)
MUT(running_huge, f->cnt[0][0].running = UINT32_MAX)
MUT(image_traversal, f->p[0][1].image = S("../../etc/passwd"))
MUT(image_absolute, f->p[0][1].image = S("/var/lib/images/x"))
MUT(image_upper, f->p[0][1].image = S("Debian"))
MUT(flake_control, f->p[0][0].flake_ref = S("github:x/y\x1b[31m"))
MUT(profile_c1_control, f->p[0][0].profile = S("min\xc2\x85imal"))
MUT(flake_long, memset(f->text, 'a', 257); f->text[257] = 0; f->p[0][0].flake_ref = f->text)
MUT(policy_too_long, f->pol[0][0].drain_timeout_seconds = 86401)
MUT(policy_min_running, f->pol[0][0].min_running_seconds = UINT32_MAX)
MUT(pool_null, f->pp[0][1] = NULL)
MUT(tenant_null_entry, f->tp[1] = NULL)
MUT(quota_pools, f->q[0].max_pools = 1)
MUT(quota_pools_zero, f->q[1].max_pools = 0)
MUT(quota_per_pool, f->q[0].max_instances_per_pool = 5)
MUT(quota_running, f->cnt[0][0].running = 10; f->q[0].max_running = 8)
MUT(quota_running_zero, f->q[1].max_running = 0)
MUT(quota_warm, f->cnt[0][1].warm = 9; f->q[0].max_warm = 10)
MUT(quota_vcpus, f->res[0][0].vcpus = 32; f->q[0].max_vcpus = 100)
MUT(quota_mem, f->res[0][0].mem_mib = 4096; f->q[0].max_mem_mib = 8192)
MUT(quota_disk, f->q[0].max_disk_gib = 5)
MUT(quota_disk_sleeping_counts, f->res[0][1].data_disk_mib = 1024; f->cnt[0][1].sleeping = 20;
    f->q[0].max_disk_gib = 28)
MUT(quota_disk_huge, f->res[0][0].data_disk_mib = UINT32_MAX;
    f->cnt[0][0].running = 100; f->cnt[0][0].warm = 100; f->cnt[0][0].sleeping = 100;
    f->q[0].max_instances_per_pool = 300; f->q[0].max_running = 300; f->q[0].max_warm = 300;
    f->q[0].max_vcpus = 1000; f->q[0].max_mem_mib = 1 << 20;
    f->q[0].max_disk_gib = 1u << 20)
static void too_many_tenants(struct fixture *f)
{
	for (size_t i = 0; i <= VMLET_MAX_TENANTS; i++)
		f->many_tenants[i] = &f->t[0];
	f->ds.tenants = f->many_tenants;
	f->ds.n_tenants = VMLET_MAX_TENANTS + 1;
}
static void too_many_pools(struct fixture *f)
{
	for (size_t i = 0; i <= VMLET_MAX_POOLS_PER_TENANT; i++)
		f->many_pools[i] = &f->p[0][0];
	f->t[0].pools = f->many_pools;
	f->t[0].n_pools = VMLET_MAX_POOLS_PER_TENANT + 1;
}

struct bad_case {
	const char *name;
	void (*mutate)(struct fixture *f);
	const char *expect; /* substring of the message */
};

#define BAD(fn, msg) { #fn, fn, msg }
#define ID_RULE "must match [a-z0-9-]{1,63} without leading or trailing '-'"

static const struct bad_case bad_cases[] = {
	BAD(schema_0, "schema_version: 0 is not supported (must be 1)"),
	BAD(schema_2, "schema_version: 2 is not supported (must be 1)"),
	BAD(node_other, "node_id: \"node-2\" does not match this node's id \"node-1\""),
	BAD(node_empty, "node_id: \"\" does not match this node's id \"node-1\""),
	BAD(tenant_traversal, "tenants[0].tenant_id: \"../etc\" " ID_RULE),
	BAD(tenant_slash, "tenants[0].tenant_id: \"a/b\" " ID_RULE),
	BAD(tenant_dotdot, "tenants[0].tenant_id: \"..\" " ID_RULE),
	BAD(tenant_empty, "tenants[0].tenant_id: \"\" " ID_RULE),
	BAD(tenant_null, "tenants[0].tenant_id: \"\" " ID_RULE),
	BAD(tenant_64, "tenants[0].tenant_id: \"aaaaaaaa"),
	BAD(tenant_leading_dash, "tenants[0].tenant_id: \"-acme\" " ID_RULE),
	BAD(tenant_trailing_dash, "tenants[1].tenant_id: \"globex-\" " ID_RULE),
	BAD(tenant_upper, "tenants[0].tenant_id: \"Acme\" " ID_RULE),
	BAD(tenant_unicode, "tenants[0].tenant_id: \"\xc3\xa4" "cme\" " ID_RULE),
	BAD(tenant_newline, "tenants[0].tenant_id: \"acme\\x0a\" " ID_RULE),
	BAD(tenant_underscore, "tenants[0].tenant_id: \"ac_me\" " ID_RULE),
	BAD(pool_bad_id, "tenants[1].pools[0].pool_id: \"Bad_ID\" " ID_RULE),
	BAD(pool_traversal, "tenants[0].pools[1].pool_id: \"../../x\" " ID_RULE),
	BAD(pool_space, "tenants[0].pools[0].pool_id: \"web \" " ID_RULE),
	BAD(pool_dot, "tenants[0].pools[0].pool_id: \".\" " ID_RULE),
	BAD(dup_tenant, "tenants[1].tenant_id: \"acme\" duplicates tenants[0].tenant_id"),
	BAD(dup_pool, "tenants[0].pools[1].pool_id: \"web\" duplicates tenants[0].pools[0].pool_id"),
	BAD(dup_net_id, "tenants[1].network.tenant_net_id: 10 duplicates tenants[0].network.tenant_net_id"),
	BAD(network_missing, "tenants[0].network: required"),
	BAD(quotas_missing, "tenants[1].quotas: required"),
	BAD(net_id_0, "tenants[0].network.tenant_net_id: 0 is out of range 1..4094"),
	BAD(net_id_4095, "tenants[1].network.tenant_net_id: 4095 is out of range 1..4094"),
	BAD(subnet_public, "tenants[0].network.ipv4_subnet: \"8.8.8.0/24\" is not inside a private range"),
	BAD(subnet_15, "tenants[0].network.ipv4_subnet: \"10.0.0.0/15\" has prefix /15, must be /16../29"),
	BAD(subnet_30, "\"10.0.0.0/30\" has prefix /30, must be /16../29"),
	BAD(subnet_host_bits, "\"10.0.0.1/24\" has host bits set (the network is 10.0.0.0/24)"),
	BAD(subnet_trailing_space, "\"10.0.0.0/24 \" is not an IPv4 CIDR"),
	BAD(subnet_leading_space, "\" 10.0.0.0/24\" is not an IPv4 CIDR"),
	BAD(subnet_leading_zero, "\"010.0.0.0/24\" is not an IPv4 CIDR"),
	BAD(subnet_prefix_zero, "\"10.0.0.0/024\" is not an IPv4 CIDR"),
	BAD(subnet_33, "\"10.0.0.0/33\" is not an IPv4 CIDR"),
	BAD(subnet_3_octets, "\"10.0.0/24\" is not an IPv4 CIDR"),
	BAD(subnet_no_prefix, "\"10.0.0.0\" is not an IPv4 CIDR"),
	BAD(subnet_octet_256, "\"10.256.0.0/16\" is not an IPv4 CIDR"),
	BAD(subnet_two_prefixes, "\"10.0.0.0/16/16\" is not an IPv4 CIDR"),
	BAD(subnet_empty, "tenants[0].network.ipv4_subnet: \"\" is not an IPv4 CIDR"),
	BAD(subnet_hex, "\"0xa.0.0.0/16\" is not an IPv4 CIDR"),
	BAD(subnet_ipv6, "\"fd00::/64\" is not an IPv4 CIDR"),
	BAD(subnet_172_32, "\"172.32.0.0/16\" is not inside a private range"),
	BAD(subnet_192_169, "\"192.169.0.0/16\" is not inside a private range"),
	BAD(subnet_overlap, "tenants[1].network.ipv4_subnet: \"10.1.2.0/24\" overlaps "
			    "tenants[0].network.ipv4_subnet \"10.1.0.0/16\""),
	BAD(subnet_same, "tenants[1].network.ipv4_subnet: \"10.1.0.0/16\" overlaps"),
	BAD(vcpus_0, "tenants[0].pools[0].instance_resources.vcpus: 0 is out of range 1..32"),
	BAD(vcpus_33, "tenants[0].pools[0].instance_resources.vcpus: 33 is out of range 1..32"),
	BAD(mem_63, "tenants[0].pools[1].instance_resources.mem_mib: 63 is out of range 64..262144"),
	BAD(mem_262145, "tenants[1].pools[1].instance_resources.mem_mib: 262145 is out of range"),
	BAD(resources_missing, "tenants[0].pools[0].instance_resources: required"),
	BAD(counts_missing, "tenants[1].pools[1].desired_counts: required"),
	BAD(running_101, "tenants[0].pools[0].desired_counts.running: 101 is out of range 0..100"),
	BAD(warm_101, "tenants[0].pools[0].desired_counts.warm: 101 is out of range 0..100"),
	BAD(sleeping_101, "tenants[1].pools[0].desired_counts.sleeping: 101 is out of range 0..100"),
	BAD(running_huge, "desired_counts.running: 4294967295 is out of range 0..100"),
	BAD(image_traversal, "tenants[0].pools[1].image: \"../../etc/passwd\" must be an image name (not a path)"),
	BAD(image_absolute, "tenants[0].pools[1].image: \"/var/lib/images/x\" must be an image name"),
	BAD(image_upper, "tenants[0].pools[1].image: \"Debian\" must be an image name"),
	BAD(flake_control, "tenants[0].pools[0].flake_ref: \"github:x/y\\x1b[31m\" contains a control character"),
	BAD(profile_c1_control, "tenants[0].pools[0].profile: \"min\xc2\x85imal\" contains a control character"),
	BAD(flake_long, "tenants[0].pools[0].flake_ref: \"aaaa"),
	BAD(policy_too_long, "tenants[0].pools[0].runtime_policy.drain_timeout_seconds: 86401 is out of range 0..86400"),
	BAD(policy_min_running, "runtime_policy.min_running_seconds: 4294967295 is out of range"),
	BAD(pool_null, "tenants[0].pools[1]: required"),
	BAD(tenant_null_entry, "tenants[1]: required"),
	BAD(quota_pools, "tenants[0].quotas.max_pools: tenant has 2 pools, quota is 1"),
	BAD(quota_pools_zero, "tenants[1].quotas.max_pools: tenant has 2 pools, quota is 0"),
	BAD(quota_per_pool, "tenants[0].quotas.max_instances_per_pool: pools[0] needs 6 instances "
			    "(running+warm+sleeping), quota is 5"),
	BAD(quota_running, "tenants[0].quotas.max_running: pools need 12 running instances, quota is 8"),
	BAD(quota_running_zero, "tenants[1].quotas.max_running: pools need 5 running instances, quota is 0"),
	BAD(quota_warm, "tenants[0].quotas.max_warm: pools need 11 warm instances, quota is 10"),
	/* (3+2) x 32 + (2+1) x 1 */
	BAD(quota_vcpus, "tenants[0].quotas.max_vcpus: pools need 163 vCPUs for running and warm "
			 "instances, quota is 100"),
	/* (3+2) x 4096 + (2+1) x 256 */
	BAD(quota_mem, "tenants[0].quotas.max_mem_mib: pools need 21248 MiB of memory for running "
		       "and warm instances, quota is 8192 MiB"),
	/* (3+2+1) x 1024 */
	BAD(quota_disk, "tenants[0].quotas.max_disk_gib: pools need 6144 MiB of data disk, quota is "
			"5120 MiB"),
	/* sleeping instances keep their disks: 6 x 1024 + (2+1+20) x 1024 */
	BAD(quota_disk_sleeping_counts, "tenants[0].quotas.max_disk_gib: pools need 29696 MiB of data disk, quota is 28672 MiB"),
	BAD(quota_disk_huge, "tenants[0].quotas.max_disk_gib: pools need 1288490188500 MiB of data disk"),
	BAD(too_many_tenants, "tenants: 1025 tenants, at most 1024"),
	BAD(too_many_pools, "tenants[0].pools: 257 pools, at most 256"),
};

static void base_state_is_valid(void **state)
{
	struct vmlet_err e = { 0 };

	build_base(&fx);
	if (vmlet_validate_desired_state(&fx.ds, NODE, &e) != 0)
		fail_msg("base state rejected: %s", e.msg);
	assert_int_equal(vmlet_validate_desired_state(&fx.ds, NULL, &e), 0);
}

static void mutations_are_rejected(void **state)
{
	int failures = 0;

	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *b = &bad_cases[i];
		struct vmlet_err e = { 0 };
		build_base(&fx);
		b->mutate(&fx);
		int rc = vmlet_validate_desired_state(&fx.ds, NODE, &e);
		if (rc != -1 || e.code != VMLET_E_INVALID || !strstr(e.msg, b->expect)) {
			print_error("%s: rc=%d code=%d msg=\"%s\"\n   expected \"%s\"\n", b->name, rc,
				    e.code, e.msg, b->expect);
			failures++;
		}
	}
	assert_true(sizeof(bad_cases) / sizeof(bad_cases[0]) >= 45);
	assert_int_equal(failures, 0);
}

/* ---- mutations that must be accepted (edge values) --------------------- */

MUT(ok_vcpus_32, f->res[0][1].vcpus = 32; f->q[0].max_vcpus = 106)
MUT(ok_vcpus_1, f->res[0][0].vcpus = 1)
MUT(ok_mem_64, f->res[0][0].mem_mib = 64)
MUT(ok_mem_max, f->res[1][1].mem_mib = 262144; f->q[1].max_mem_mib = 262144 * 3 + 2560)
MUT(ok_counts_100, f->cnt[0][0].running = 100; f->cnt[0][0].warm = 100;
    f->cnt[0][0].sleeping = 100; f->q[0].max_instances_per_pool = 300;
    f->q[0].max_running = 102; f->q[0].max_warm = 101; f->q[0].max_vcpus = 403;
    f->q[0].max_mem_mib = 200 * 512 + 3 * 256; f->q[0].max_disk_gib = 300)
MUT(ok_prefix_16, f->net[1].ipv4_subnet = S("192.168.0.0/16"))
MUT(ok_prefix_29, f->net[1].ipv4_subnet = S("172.31.255.248/29"))
MUT(ok_172_16, f->net[1].ipv4_subnet = S("172.16.0.0/16"))
MUT(ok_10_255, f->net[0].ipv4_subnet = S("10.255.255.0/24"))
MUT(ok_adjacent, f->net[0].ipv4_subnet = S("10.1.0.0/24"); f->net[1].ipv4_subnet = S("10.1.1.0/24"))
MUT(ok_net_ids, f->net[0].tenant_net_id = 1; f->net[1].tenant_net_id = 4094)
MUT(ok_id_63, f->t[0].tenant_id = S("a23456789012345678901234567890123456789012345678901234567890123"))
MUT(ok_id_1, f->p[0][0].pool_id = S("a"); f->t[1].tenant_id = S("0"))
MUT(ok_id_dashes, f->p[0][0].pool_id = S("a--b-9"))
MUT(ok_same_pool_ids_in_two_tenants, f->p[1][0].pool_id = S("web"))
MUT(ok_no_policy, f->p[0][0].runtime_policy = NULL)
MUT(ok_policy_max, f->pol[0][0].min_running_seconds = 86400;
    f->pol[0][0].graceful_shutdown_seconds = 86400)
MUT(ok_no_image, f->p[0][1].image = S(""))
MUT(ok_text_256, memset(f->text, 'a', 256); f->text[256] = 0; f->p[0][0].flake_ref = f->text;
    f->p[0][0].profile = S("caf\xc3\xa9 - free text: ok"))
MUT(ok_no_pools, f->t[0].n_pools = 0; f->q[0].max_pools = 0; f->q[0].max_running = 0)
MUT(ok_no_tenants, f->ds.n_tenants = 0)
MUT(ok_quotas_exact, f->q[0].max_running = 5; f->q[0].max_warm = 3; f->q[0].max_vcpus = 13;
    f->q[0].max_mem_mib = 3328; f->q[0].max_disk_gib = 6; f->q[0].max_pools = 2;
    f->q[0].max_instances_per_pool = 6)
MUT(ok_huge_quotas, f->res[0][0].data_disk_mib = UINT32_MAX; f->q[0].max_disk_gib = UINT64_MAX;
    f->q[0].max_mem_mib = UINT64_MAX; f->q[0].max_vcpus = UINT32_MAX)

struct good_case {
	const char *name;
	void (*mutate)(struct fixture *f);
};

#define GOOD(fn) { #fn, fn }

static const struct good_case good_cases[] = {
	GOOD(ok_vcpus_32),   GOOD(ok_vcpus_1),    GOOD(ok_mem_64),      GOOD(ok_mem_max),
	GOOD(ok_counts_100), GOOD(ok_prefix_16),  GOOD(ok_prefix_29),   GOOD(ok_172_16),
	GOOD(ok_10_255),     GOOD(ok_adjacent),   GOOD(ok_net_ids),     GOOD(ok_id_63),
	GOOD(ok_id_1),       GOOD(ok_id_dashes),  GOOD(ok_same_pool_ids_in_two_tenants),
	GOOD(ok_no_policy),  GOOD(ok_policy_max), GOOD(ok_no_image),    GOOD(ok_text_256),
	GOOD(ok_no_pools),   GOOD(ok_no_tenants), GOOD(ok_quotas_exact), GOOD(ok_huge_quotas),
};

static void edge_values_are_accepted(void **state)
{
	int failures = 0;

	for (size_t i = 0; i < sizeof(good_cases) / sizeof(good_cases[0]); i++) {
		struct vmlet_err e = { 0 };
		build_base(&fx);
		good_cases[i].mutate(&fx);
		if (vmlet_validate_desired_state(&fx.ds, NODE, &e) != 0) {
			print_error("%s: rejected: %s\n", good_cases[i].name, e.msg);
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

/* ---- exact messages ------------------------------------------------------ */

static void exact_messages(void **state)
{
	struct vmlet_err e;

	build_base(&fx);
	pool_bad_id(&fx);
	assert_int_equal(vmlet_validate_desired_state(&fx.ds, NODE, &e), -1);
	assert_string_equal(e.msg, "tenants[1].pools[0].pool_id: \"Bad_ID\" must match "
				   "[a-z0-9-]{1,63} without leading or trailing '-'");

	build_base(&fx);
	quota_running(&fx);
	assert_int_equal(vmlet_validate_desired_state(&fx.ds, NODE, &e), -1);
	assert_string_equal(e.msg,
			    "tenants[0].quotas.max_running: pools need 12 running instances, quota is 8");

	build_base(&fx);
	network_missing(&fx);
	assert_int_equal(vmlet_validate_desired_state(&fx.ds, NODE, &e), -1);
	assert_string_equal(e.msg, "tenants[0].network: required");

	build_base(&fx);
	subnet_overlap(&fx);
	assert_int_equal(vmlet_validate_desired_state(&fx.ds, NODE, &e), -1);
	assert_string_equal(e.msg, "tenants[1].network.ipv4_subnet: \"10.1.2.0/24\" overlaps "
				   "tenants[0].network.ipv4_subnet \"10.1.0.0/16\"");

	build_base(&fx);
	subnet_public(&fx);
	assert_int_equal(vmlet_validate_desired_state(&fx.ds, NODE, &e), -1);
	assert_string_equal(e.msg, "tenants[0].network.ipv4_subnet: \"8.8.8.0/24\" is not inside a "
				   "private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)");

	build_base(&fx);
	quota_disk(&fx);
	assert_int_equal(vmlet_validate_desired_state(&fx.ds, NODE, &e), -1);
	assert_string_equal(e.msg, "tenants[0].quotas.max_disk_gib: pools need 6144 MiB of data "
				   "disk, quota is 5120 MiB (max_disk_gib x 1024)");

	assert_int_equal(vmlet_validate_desired_state(NULL, NODE, &e), -1);
	assert_string_equal(e.msg, "desired_state: required");
}

/* The first problem in document order is the one reported. */
static void first_error_wins(void **state)
{
	struct vmlet_err e;

	build_base(&fx);
	fx.res[1][1].vcpus = 0;
	fx.t[0].tenant_id = S("X");
	assert_int_equal(vmlet_validate_desired_state(&fx.ds, NODE, &e), -1);
	assert_non_null(strstr(e.msg, "tenants[0].tenant_id"));
}

/* ---- helpers and the other requests ------------------------------------- */

static void id_helpers(void **state)
{
	struct vmlet_err e;

	assert_true(vmlet_id_ok("a"));
	assert_true(vmlet_id_ok("node-1"));
	assert_false(vmlet_id_ok(NULL));
	assert_false(vmlet_id_ok(""));
	assert_false(vmlet_id_ok("-"));
	assert_false(vmlet_id_ok("a."));
	assert_true(vmlet_instance_id_ok("i-0123abcd"));
	assert_false(vmlet_instance_id_ok("i-0123ABCD"));
	assert_false(vmlet_instance_id_ok("i-0123abc"));
	assert_false(vmlet_instance_id_ok("i-0123abcde"));
	assert_false(vmlet_instance_id_ok("x-0123abcd"));
	assert_false(vmlet_instance_id_ok("i-0123abcg"));
	assert_false(vmlet_instance_id_ok(NULL));
	assert_int_equal(vmlet_validate_id("f", "ok", &e), 0);
	assert_int_equal(vmlet_validate_instance_id("iid", "i-../../..", &e), -1);
	assert_string_equal(e.msg, "iid: \"i-../../..\" must be \"i-\" followed by 8 lowercase hex digits");
}

static void cidr_parser(void **state)
{
	struct vmlet_err e;
	uint32_t net;
	unsigned pfx;

	assert_int_equal(vmlet_parse_cidr4("c", "0.0.0.0/0", &net, &pfx, &e), 0);
	assert_int_equal(net, 0);
	assert_int_equal(pfx, 0);
	assert_int_equal(vmlet_parse_cidr4("c", "255.255.255.255/32", &net, &pfx, &e), 0);
	assert_int_equal(net, 0xffffffffu);
	assert_int_equal(pfx, 32);
	assert_int_equal(vmlet_parse_cidr4("c", "172.16.8.0/21", &net, &pfx, &e), 0);
	assert_int_equal(net, 0xac100800u);
	assert_int_equal(pfx, 21);
	assert_int_equal(vmlet_parse_cidr4("c", "1.2.3.4/", &net, &pfx, &e), -1);
	assert_int_equal(vmlet_parse_cidr4("c", "1.2.3.4/-1", &net, &pfx, &e), -1);
	assert_int_equal(vmlet_parse_cidr4("c", "1.2.3.4/+8", &net, &pfx, &e), -1);
	assert_int_equal(vmlet_parse_cidr4("c", "1.2.3.4./32", &net, &pfx, &e), -1);
	assert_int_equal(vmlet_parse_cidr4("c", "1..3.4/32", &net, &pfx, &e), -1);
	assert_int_equal(vmlet_parse_cidr4("c", "1.2.3.4/32\n", &net, &pfx, &e), -1);
	assert_int_equal(vmlet_parse_cidr4("c", "1.2.3.0004/32", &net, &pfx, &e), -1);
	assert_int_equal(vmlet_parse_cidr4("c", NULL, &net, &pfx, &e), -1);
	assert_int_equal(vmlet_validate_tenant_subnet("s", "192.168.255.248/29", &e), 0);
	assert_int_equal(vmlet_validate_tenant_subnet("s", "172.15.255.0/24", &e), -1);
	assert_int_equal(vmlet_validate_tenant_subnet("s", "11.0.0.0/16", &e), -1);
}

static void instance_list_request(void **state)
{
	Vmlet__V1__InstanceListRequest r = VMLET__V1__INSTANCE_LIST_REQUEST__INIT;
	struct vmlet_err e;

	assert_int_equal(vmlet_validate_instance_list(&r, &e), -1);
	assert_string_equal(e.msg, "tenant_id: required");
	r.tenant_id = S("acme");
	assert_int_equal(vmlet_validate_instance_list(&r, &e), 0); /* pool optional */
	r.pool_id = S("web");
	assert_int_equal(vmlet_validate_instance_list(&r, &e), 0);
	r.pool_id = S("../web");
	assert_int_equal(vmlet_validate_instance_list(&r, &e), -1);
	assert_string_equal(e.msg, "pool_id: \"../web\" " ID_RULE);
	r.pool_id = S("");
	r.tenant_id = S("a/b");
	assert_int_equal(vmlet_validate_instance_list(&r, &e), -1);
	assert_string_equal(e.msg, "tenant_id: \"a/b\" " ID_RULE);
	assert_int_equal(vmlet_validate_instance_list(NULL, &e), -1);
}

static void wake_instance_request(void **state)
{
	Vmlet__V1__WakeInstanceRequest r = VMLET__V1__WAKE_INSTANCE_REQUEST__INIT;
	struct vmlet_err e;

	assert_int_equal(vmlet_validate_wake_instance(&r, &e), -1);
	assert_string_equal(e.msg, "tenant_id: required");
	r.tenant_id = S("acme");
	assert_int_equal(vmlet_validate_wake_instance(&r, &e), -1);
	assert_string_equal(e.msg, "pool_id: required");
	r.pool_id = S("web");
	assert_int_equal(vmlet_validate_wake_instance(&r, &e), -1);
	assert_string_equal(e.msg, "instance_id: required");
	r.instance_id = S("i-../../x");
	assert_int_equal(vmlet_validate_wake_instance(&r, &e), -1);
	assert_int_equal(e.code, VMLET_E_INVALID);
	assert_non_null(strstr(e.msg, "instance_id: \"i-../../x\" must be"));
	r.instance_id = S("i-deadbeef");
	assert_int_equal(vmlet_validate_wake_instance(&r, &e), 0);
	r.pool_id = S("Web");
	assert_int_equal(vmlet_validate_wake_instance(&r, &e), -1);
	assert_string_equal(e.msg, "pool_id: \"Web\" " ID_RULE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(base_state_is_valid),
		cmocka_unit_test(mutations_are_rejected),
		cmocka_unit_test(edge_values_are_accepted),
		cmocka_unit_test(exact_messages),
		cmocka_unit_test(first_error_wins),
		cmocka_unit_test(id_helpers),
		cmocka_unit_test(cidr_parser),
		cmocka_unit_test(instance_list_request),
		cmocka_unit_test(wake_instance_request),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
