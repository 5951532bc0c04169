/* Helpers shared by the hostd unit tests: a temp state dir with an open
 * registry, and a round trip through the dispatcher that packs the reply
 * and decodes it strictly, exactly as agentd will. */
#ifndef TEST_HOSTD_UTIL_H
#define TEST_HOSTD_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostd/dispatch.h"
#include "hostd/registry.h"
#include "rpc/host.pb-c.h"
#include "rpc/strict.h"

struct hostd_fixture {
	char dir[64];
	struct vmlet_config cfg;
	struct hostd_facts facts;
	struct hostd_registry reg;
	struct hostd_env env;
};

static inline struct hostd_fixture *hostd_fixture_new(void)
{
	struct hostd_fixture *fx = calloc(1, sizeof(*fx));
	struct vmlet_err err;

	if (!fx)
		return NULL;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_hostd.XXXXXX");
	if (!mkdtemp(fx->dir))
		goto fail;
	vmlet_config_defaults(&fx->cfg);
	snprintf(fx->cfg.node_id, sizeof(fx->cfg.node_id), "node-test");
	snprintf(fx->cfg.state_dir, sizeof(fx->cfg.state_dir), "%s/state", fx->dir);
	/* Facts as hostd_facts_collect leaves them, without forking probes. */
	snprintf(fx->facts.node_id, sizeof(fx->facts.node_id), "node-test");
	snprintf(fx->facts.hostname, sizeof(fx->facts.hostname), "host-test");
	snprintf(fx->facts.arch, sizeof(fx->facts.arch), "x86_64");
	snprintf(fx->facts.kernel_release, sizeof(fx->facts.kernel_release), "6.1.0");
	snprintf(fx->facts.cgroup_version, sizeof(fx->facts.cgroup_version), "v2");
	snprintf(fx->facts.accel, sizeof(fx->facts.accel), "tcg");
	snprintf(fx->facts.vmm_name, sizeof(fx->facts.vmm_name), "qemu");
	snprintf(fx->facts.vmm_version, sizeof(fx->facts.vmm_version), "7.2.22");
	snprintf(fx->facts.qemu_version, sizeof(fx->facts.qemu_version), "7.2.22");
	snprintf(fx->facts.vmlet_version, sizeof(fx->facts.vmlet_version), "%s", VMLET_VERSION);
	fx->facts.kvm_usable = true;
	if (hostd_registry_create(fx->cfg.state_dir, &err) < 0 ||
	    hostd_registry_open(&fx->reg, fx->cfg.state_dir, &err) < 0) {
		fprintf(stderr, "fixture: %s\n", err.msg);
		goto fail;
	}
	fx->env.cfg = &fx->cfg;
	fx->env.facts = &fx->facts;
	fx->env.registry = &fx->reg;
	return fx;
fail:
	free(fx);
	return NULL;
}

static inline void hostd_fixture_free(struct hostd_fixture *fx)
{
	char cmd[128];

	if (!fx)
		return;
	hostd_registry_close(&fx->reg);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", fx->dir);
	free(fx);
}

/* Dispatch raw bytes; the reply is packed and strictly decoded (it must
 * always be a valid HostResponse). NULL only if that fails. */
static inline Vmlet__Host__V1__HostResponse *hostd_call_bytes(struct hostd_fixture *fx,
							      const void *buf, size_t len)
{
	struct hostd_reply reply;
	struct vmlet_err err;
	ProtobufCMessage *m;
	uint8_t *out;
	size_t n;

	hostd_dispatch(&fx->env, buf, len, &reply);
	n = protobuf_c_message_get_packed_size(&reply.resp.base);
	out = malloc(n ? n : 1);
	if (!out) {
		hostd_reply_free(&reply);
		return NULL;
	}
	protobuf_c_message_pack(&reply.resp.base, out);
	hostd_reply_free(&reply);
	m = vmlet_strict_unpack(&vmlet__host__v1__host_response__descriptor, out, n, &err);
	if (!m)
		fprintf(stderr, "reply does not decode strictly: %s\n", err.msg);
	free(out);
	return (Vmlet__Host__V1__HostResponse *)m;
}

static inline Vmlet__Host__V1__HostResponse *hostd_call(struct hostd_fixture *fx,
							const Vmlet__Host__V1__HostRequest *req)
{
	size_t n = protobuf_c_message_get_packed_size(&req->base);
	uint8_t *buf = malloc(n ? n : 1);
	Vmlet__Host__V1__HostResponse *resp;

	if (!buf)
		return NULL;
	protobuf_c_message_pack(&req->base, buf);
	resp = hostd_call_bytes(fx, buf, n);
	free(buf);
	return resp;
}

/* ListInstances for tenant T and pool P (NULL or "" = all). */
static inline Vmlet__Host__V1__HostResponse *
hostd_call_list_instances(struct hostd_fixture *fx, const char *t, const char *p)
{
	Vmlet__Host__V1__HostRequest req = VMLET__HOST__V1__HOST_REQUEST__INIT;
	Vmlet__Host__V1__ListInstancesRequest li = VMLET__HOST__V1__LIST_INSTANCES_REQUEST__INIT;

	li.tenant_id = (char *)t;
	li.pool_id = (char *)p;
	req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_LIST_INSTANCES;
	req.list_instances = &li;
	return hostd_call(fx, &req);
}

/* LookupInstance T/P/I. */
static inline Vmlet__Host__V1__HostResponse *hostd_call_lookup(struct hostd_fixture *fx,
							       const char *t, const char *p,
							       const char *i)
{
	Vmlet__Host__V1__HostRequest req = VMLET__HOST__V1__HOST_REQUEST__INIT;
	Vmlet__Host__V1__LookupInstanceRequest li = VMLET__HOST__V1__LOOKUP_INSTANCE_REQUEST__INIT;

	li.tenant_id = (char *)t;
	li.pool_id = (char *)p;
	li.instance_id = (char *)i;
	req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_LOOKUP_INSTANCE;
	req.lookup_instance = &li;
	return hostd_call(fx, &req);
}

static inline void hostd_resp_free(Vmlet__Host__V1__HostResponse *resp)
{
	if (resp)
		protobuf_c_message_free_unpacked(&resp->base, NULL);
}

#endif
