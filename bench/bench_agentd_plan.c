/* Planning time of the reconcile planner for 100 tenants x 100 instances
 * (two pools of 50 per tenant: 30 running, 10 warm, 10 sleeping).
 * Goal (issue 5): < 5 ms per plan.
 *
 *   converged  the node has exactly the desired state: a no-op pass, the
 *              common case of the periodic reconcile (0 ops)
 *   changed    every pool's counts shifted (running 25, warm 15, sleeping 10)
 *              and every tenant's first pool on a new image (one rolling
 *              replacement each), with min_running_seconds holding some
 *              moves back
 *   fresh      an empty node: every tenant, pool and instance created
 *
 * Pure CPU work, no daemons (needs no root). Output: `name: value unit`
 * lines and one `ratio:` line per scenario (p99 / goal). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agentd/plan.h"
#include "bench/bench_env.h"

#define TENANTS 100
#define POOLS 2
#define PER_POOL 50
#define RUNS 300
#define GOAL_US 5000.0
#define NOW 1000000u

static char tenant_ids[TENANTS][16], pool_ids[POOLS][16], inst_ids[TENANTS * POOLS * PER_POOL][16];
static char subnets[TENANTS][24];
static char hashes[2][AGENTD_SPEC_HASH_LEN + 1]; /* [0] image v1, [1] image v2 */

static Vmlet__V1__DesiredState ds = VMLET__V1__DESIRED_STATE__INIT;
static Vmlet__V1__DesiredTenant tenants[TENANTS], *tenant_ptrs[TENANTS];
static Vmlet__V1__TenantNetwork nets[TENANTS];
static Vmlet__V1__TenantQuotas quotas[TENANTS];
static Vmlet__V1__DesiredPool pools[TENANTS][POOLS], *pool_ptrs[TENANTS][POOLS];
static Vmlet__V1__InstanceResources res = VMLET__V1__INSTANCE_RESOURCES__INIT;
static Vmlet__V1__DesiredCounts counts[TENANTS][POOLS];
static Vmlet__V1__RuntimePolicy policy = VMLET__V1__RUNTIME_POLICY__INIT;

static struct plan_tenant have_tenants[TENANTS];
static struct plan_pool have_pools[TENANTS * POOLS];
static struct plan_instance have[TENANTS * POOLS * PER_POOL];

static void build_desired(uint32_t running, uint32_t warm, uint32_t sleeping, bool new_image)
{
	static const Vmlet__V1__DesiredTenant t0 = VMLET__V1__DESIRED_TENANT__INIT;
	static const Vmlet__V1__TenantNetwork n0 = VMLET__V1__TENANT_NETWORK__INIT;
	static const Vmlet__V1__TenantQuotas q0 = VMLET__V1__TENANT_QUOTAS__INIT;
	static const Vmlet__V1__DesiredPool p0 = VMLET__V1__DESIRED_POOL__INIT;
	static const Vmlet__V1__DesiredCounts c0 = VMLET__V1__DESIRED_COUNTS__INIT;

	res.vcpus = 1;
	res.mem_mib = 128;
	policy.min_running_seconds = 60;
	policy.graceful_shutdown_seconds = 5;
	ds.schema_version = 1;
	ds.node_id = "bench-node";
	ds.n_tenants = TENANTS;
	ds.tenants = tenant_ptrs;
	for (int t = 0; t < TENANTS; t++) {
		tenants[t] = t0;
		nets[t] = n0;
		quotas[t] = q0;
		snprintf(tenant_ids[t], sizeof(tenant_ids[t]), "tenant-%03d", t);
		snprintf(subnets[t], sizeof(subnets[t]), "10.%d.%d.0/24", t / 200, t % 200);
		nets[t].tenant_net_id = (uint32_t)t + 1;
		nets[t].ipv4_subnet = subnets[t];
		quotas[t].max_vcpus = 1000;
		quotas[t].max_mem_mib = 1000000;
		quotas[t].max_running = 1000;
		quotas[t].max_warm = 1000;
		quotas[t].max_pools = 10;
		quotas[t].max_instances_per_pool = 300;
		quotas[t].max_disk_gib = 1000;
		tenants[t].tenant_id = tenant_ids[t];
		tenants[t].network = &nets[t];
		tenants[t].quotas = &quotas[t];
		tenants[t].n_pools = POOLS;
		tenants[t].pools = pool_ptrs[t];
		tenant_ptrs[t] = &tenants[t];
		for (int p = 0; p < POOLS; p++) {
			pools[t][p] = p0;
			counts[t][p] = c0;
			snprintf(pool_ids[p], sizeof(pool_ids[p]), "pool-%d", p);
			counts[t][p].running = running;
			counts[t][p].warm = warm;
			counts[t][p].sleeping = sleeping;
			pools[t][p].pool_id = pool_ids[p];
			pools[t][p].image = new_image && p == 0 ? "v2" : "v1";
			pools[t][p].instance_resources = &res;
			pools[t][p].desired_counts = &counts[t][p];
			pools[t][p].runtime_policy = &policy;
			pool_ptrs[t][p] = &pools[t][p];
		}
	}
}

/* The node as it is after converging to 30/10/10 per pool on image v1;
 * instance k of a pool was created at k, entered its state at NOW - 100
 * (or NOW - 10 for every fifth, to exercise min_running_seconds). */
static void build_node(void)
{
	size_t n = 0;

	for (int t = 0; t < TENANTS; t++) {
		have_tenants[t] = (struct plan_tenant){ tenant_ids[t], (uint32_t)t + 1, subnets[t] };
		for (int p = 0; p < POOLS; p++) {
			have_pools[t * POOLS + p] = (struct plan_pool){ tenant_ids[t], pool_ids[p], hashes[0] };
			for (int k = 0; k < PER_POOL; k++, n++) {
				snprintf(inst_ids[n], sizeof(inst_ids[n]), "i-%08zx", n + 0x1000);
				Vmlet__V1__InstanceState st = k < 30   ? VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_RUNNING
							      : k < 40 ? VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_WARM
								       : VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_SLEEPING;
				have[n] = (struct plan_instance){
					.tenant = tenant_ids[t], .pool = pool_ids[p], .instance_id = inst_ids[n],
					.state = st, .spec_hash = hashes[0], .created_unix = (uint64_t)k,
					.state_since_unix = k % 5 ? NOW - 100 : NOW - 10,
					.vcpus = 1, .mem_mib = 128, .data_disk_mib = 0,
				};
			}
		}
	}
}

static uint32_t counter;
static uint32_t count_up(void *ctx)
{
	(void)ctx;
	return ++counter;
}

static void run(const char *name, bool empty_node)
{
	static double us[RUNS];
	struct plan_input in = {
		.desired = &ds, .now_unix = NOW, .rand32 = count_up,
		.tenants = have_tenants, .n_tenants = empty_node ? 0 : TENANTS,
		.pools = have_pools, .n_pools = empty_node ? 0 : TENANTS * POOLS,
		.instances = have, .n_instances = empty_node ? 0 : TENANTS * POOLS * PER_POOL,
	};
	struct vmlet_err err = { 0 };
	size_t ops = 0, notes = 0;

	for (int r = -5; r < RUNS; r++) { /* 5 warm-up runs */
		struct plan p;
		counter = 0x10000000;
		double t0 = bench_now_us();
		if (plan_compute(&in, &p, &err) < 0)
			bench_die("%s: plan_compute: %s", name, err.msg);
		double t1 = bench_now_us();
		ops = p.n_ops;
		notes = p.n_notes;
		plan_free(&p);
		if (r >= 0)
			us[r] = t1 - t0;
	}
	double med = bench_percentile(us, RUNS, 0.5), p99 = bench_percentile(us, RUNS, 0.99);
	printf("plan_%s_ops: %zu ops, %zu notes\n", name, ops, notes);
	printf("plan_%s_median: %.0f us\n", name, med);
	printf("plan_%s_p99: %.0f us\n", name, p99);
	printf("ratio: %.3fx plan %s p99 / goal 5 ms (%d tenants x %d instances; goal <= 1x)\n",
	       p99 / GOAL_US, name, TENANTS, POOLS * PER_POOL);
}

int main(void)
{
	struct vmlet_err err = { 0 };

	if (agentd_spec_hash("v1", 1, 128, 0, hashes[0], &err) < 0 ||
	    agentd_spec_hash("v2", 1, 128, 0, hashes[1], &err) < 0)
		bench_die("spec hash: %s", err.msg);
	build_desired(30, 10, 10, false);
	build_node();
	run("converged", false);
	build_desired(25, 15, 10, true);
	run("changed", false);
	build_desired(30, 10, 10, false);
	run("fresh", true);
	return 0;
}
