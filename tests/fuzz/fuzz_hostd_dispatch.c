/* hostd's whole request path on hostile bytes: strict decode, the
 * operation table, each handler's re-validation, the registry walk (a
 * small real registry in a temp dir) and reply packing. Invariants: every
 * input gets a HostResponse that decodes strictly with a result set, and
 * an error is only ever 400 or 404 (anything else is a hostd bug). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Vmlet__Host__V1__HostResponse *resp = hostd_call_bytes(fx, data, size);

	if (!resp || resp->result_case == VMLET__HOST__V1__HOST_RESPONSE__RESULT__NOT_SET)
		abort();
	if (resp->result_case == VMLET__HOST__V1__HOST_RESPONSE__RESULT_ERROR &&
	    resp->error->code != 400 && resp->error->code != 404)
		abort();
	hostd_resp_free(resp);
	return 0;
}
