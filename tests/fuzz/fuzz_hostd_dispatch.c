/* hostd's whole request path on hostile bytes: strict decode, the
 * operation table, each handler's re-validation, the registry walk (a
 * small real registry in a temp dir) and reply packing. Invariants: every
 * input gets a HostResponse that decodes strictly with a result set, and
 * an error is only ever 400 or 404, or, from the lifecycle operations,
 * 409 (a conflict with the registry) or 503 (no instance runtime in the
 * harness); anything else is a hostd bug. What a lifecycle operation adds
 * to the registry is removed after each input, so the registry stays the
 * seeded one and never fills up. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "shared/log.h"
#include "tests/unit/test_hostd_util.h"

static struct hostd_fixture *fx;

static void cleanup(void)
{
	hostd_fixture_free(fx);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	Vmlet__Host__V1__TenantRecord t = VMLET__HOST__V1__TENANT_RECORD__INIT;
	Vmlet__Host__V1__PoolRecord p = VMLET__HOST__V1__POOL_RECORD__INIT;
	Vmlet__Host__V1__InstanceRecord i = VMLET__HOST__V1__INSTANCE_RECORD__INIT;
	struct vmlet_err err;

	vlog_init("fuzz_hostd_dispatch");
	vlog_set_level(VLOG_ERROR); /* every rejection logs a warning */
	fx = hostd_fixture_new();
	if (!fx)
		abort();
	atexit(cleanup);
	t.tenant_id = "acme";
	t.tenant_net_id = 10;
	t.ipv4_subnet = "10.10.0.0/24";
	p.tenant_id = "acme";
	p.pool_id = "web";
	i.tenant_id = "acme";
	i.pool_id = "web";
	i.instance_id = "i-00000001";
	i.state = VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_RUNNING;
	i.vcpus = 1;
	i.mem_mib = 128;
	if (hostd_registry_write_tenant(&fx->reg, &t, &err) < 0 ||
	    hostd_registry_write_pool(&fx->reg, &p, &err) < 0 ||
	    hostd_registry_write_instance(&fx->reg, &i, &err) < 0)
		abort();
	return 0;
}

struct extras {
	char ids[64][3][64]; /* t, p, i ("" when not that level) */
	size_t n;
};

static void add_extra(struct extras *x, const char *t, const char *p, const char *i)
{
	if (x->n < 64) {
		snprintf(x->ids[x->n][0], 64, "%s", t);
		snprintf(x->ids[x->n][1], 64, "%s", p ? p : "");
		snprintf(x->ids[x->n][2], 64, "%s", i ? i : "");
		x->n++;
	}
}

static int extra_tenant(void *arg, const Vmlet__Host__V1__TenantRecord *t, struct vmlet_err *err)
{
	if (strcmp(t->tenant_id, "acme"))
		add_extra(arg, t->tenant_id, NULL, NULL);
	return 0;
}

static int extra_pool(void *arg, const Vmlet__Host__V1__PoolRecord *p, struct vmlet_err *err)
{
	if (strcmp(p->tenant_id, "acme") == 0 && strcmp(p->pool_id, "web"))
		add_extra(arg, p->tenant_id, p->pool_id, NULL);
	return 0;
}

static int extra_instance(void *arg, const Vmlet__Host__V1__InstanceRecord *i,
			  struct vmlet_err *err)
{
	if (strcmp(i->instance_id, "i-00000001"))
		add_extra(arg, i->tenant_id, i->pool_id, i->instance_id);
	return 0;
}

/* Back to the seeded registry: instances first, then pools, then tenants. */
static void reset_registry(void)
{
	static const struct hostd_registry_visitor v = { extra_tenant, extra_pool,
							 extra_instance };
	struct extras x = { .n = 0 };
	struct vmlet_err err;

	if (hostd_registry_walk(&fx->reg, NULL, NULL, &v, &x, &err) < 0)
		abort();
	for (int pass = 0; pass < 3; pass++)
		for (size_t k = 0; k < x.n; k++) {
			const char *t = x.ids[k][0], *p = x.ids[k][1], *i = x.ids[k][2];
			int rc = 0;

			if (pass == 0 && *i)
				rc = hostd_registry_remove_instance(&fx->reg, t, p, i, &err);
			else if (pass == 1 && *p && !*i)
				rc = hostd_registry_remove_pool(&fx->reg, t, p, &err);
			else if (pass == 2 && !*p)
				rc = hostd_registry_remove_tenant(&fx->reg, t, &err);
			if (rc < 0)
				abort();
		}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Vmlet__Host__V1__HostResponse *resp = hostd_call_bytes(fx, data, size);

	if (!resp || resp->result_case == VMLET__HOST__V1__HOST_RESPONSE__RESULT__NOT_SET)
		abort();
	if (resp->result_case == VMLET__HOST__V1__HOST_RESPONSE__RESULT_ERROR &&
	    resp->error->code != 400 && resp->error->code != 404 && resp->error->code != 409 &&
	    resp->error->code != 503)
		abort();
	if (resp->result_case != VMLET__HOST__V1__HOST_RESPONSE__RESULT_ERROR)
		reset_registry();
	/* Every lifecycle op on acme appends an audit line: keep the temp
	 * dir from growing over millions of runs. */
	unlinkat(fx->reg.tenants_fd, "acme/audit.jsonl", 0);
	hostd_resp_free(resp);
	return 0;
}
