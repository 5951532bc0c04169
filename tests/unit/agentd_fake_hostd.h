/* A stand-in hostd for agentd's unit tests: an NNG rep0 socket on an ipc://
 * path, served by one thread, answering the spine's host operations with
 * fixed results. It lets the tests drive agentd's real hostd client (NNG
 * req contexts, aio callbacks, eventfd) end to end without root. */
#ifndef VMLET_TEST_AGENTD_FAKE_HOSTD_H
#define VMLET_TEST_AGENTD_FAKE_HOSTD_H

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "rpc/host.pb-c.h"
#include "rpc/strict.h"

enum fake_hostd_mode {
	FAKE_REPLY = 0,  /* answer every request */
	FAKE_SILENT = 1, /* take requests, never answer (timeouts, cancels) */
	FAKE_GARBAGE = 2 /* answer with bytes that are not a HostResponse */
};

#define FAKE_KNOWN_INSTANCE "i-0000beef"   /* sleeping: a wake makes it running */
#define FAKE_STOPPED_INSTANCE "i-0000dead" /* stopped: a wake is refused (409) */
#define FAKE_NODE_ID "test-node"

struct fake_hostd {
	nng_socket sock;
	pthread_t thread;
	bool running;
	atomic_int mode;
	atomic_int served;
	char url[300];
};

static inline void fake_hostd_answer(const Vmlet__Host__V1__HostRequest *req, uint8_t **out,
				     size_t *len)
{
	Vmlet__Host__V1__HostResponse resp = VMLET__HOST__V1__HOST_RESPONSE__INIT;
	Vmlet__Host__V1__HostError he = VMLET__HOST__V1__HOST_ERROR__INIT;
	Vmlet__V1__NodeInfo ni = VMLET__V1__NODE_INFO__INIT;
	Vmlet__V1__NodeStats ns = VMLET__V1__NODE_STATS__INIT;
	Vmlet__V1__TenantListResult tl = VMLET__V1__TENANT_LIST_RESULT__INIT;
	Vmlet__V1__InstanceListResult il = VMLET__V1__INSTANCE_LIST_RESULT__INIT;
	Vmlet__V1__InstanceInfo ii = VMLET__V1__INSTANCE_INFO__INIT;
	char msg[256];

	switch (req ? req->op_case : 0) {
	case VMLET__HOST__V1__HOST_REQUEST__OP_NODE_FACTS:
		ni.node_id = (char *)FAKE_NODE_ID;
		ni.total_vcpus = 2;
		ni.total_mem_mib = 2048;
		resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT_NODE_FACTS;
		resp.node_facts = &ni;
		break;
	case VMLET__HOST__V1__HOST_REQUEST__OP_NODE_STATS:
		ns.tenant_count = 3;
		resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT_NODE_STATS;
		resp.node_stats = &ns;
		break;
	case VMLET__HOST__V1__HOST_REQUEST__OP_LIST_TENANTS:
		resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT_TENANTS;
		resp.tenants = &tl;
		break;
	case VMLET__HOST__V1__HOST_REQUEST__OP_LIST_INSTANCES:
		resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT_INSTANCES;
		resp.instances = &il;
		break;
	case VMLET__HOST__V1__HOST_REQUEST__OP_LOOKUP_INSTANCE:
		if (strcmp(req->lookup_instance->instance_id, FAKE_KNOWN_INSTANCE) == 0) {
			ii.tenant_id = req->lookup_instance->tenant_id;
			ii.pool_id = req->lookup_instance->pool_id;
			ii.instance_id = req->lookup_instance->instance_id;
			ii.state = VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_RUNNING;
			resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT_INSTANCE;
			resp.instance = &ii;
			break;
		}
		snprintf(msg, sizeof(msg), "instance %s/%s/%s not found",
			 req->lookup_instance->tenant_id, req->lookup_instance->pool_id,
			 req->lookup_instance->instance_id);
		he.code = 404;
		he.message = msg;
		resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT_ERROR;
		resp.error = &he;
		break;
	case VMLET__HOST__V1__HOST_REQUEST__OP_INSTANCE_ACTION: {
		const Vmlet__Host__V1__InstanceActionRequest *a = req->instance_action;

		if (a->action != VMLET__HOST__V1__INSTANCE_ACTION__INSTANCE_ACTION_WAKE) {
			he.code = 400;
			he.message = (char *)"the fake hostd only wakes";
		} else if (strcmp(a->instance_id, FAKE_KNOWN_INSTANCE) == 0) {
			ii.tenant_id = a->tenant_id;
			ii.pool_id = a->pool_id;
			ii.instance_id = a->instance_id;
			ii.state = VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_RUNNING;
			ii.pid = 4242;
			resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT_INSTANCE;
			resp.instance = &ii;
			break;
		} else if (strcmp(a->instance_id, FAKE_STOPPED_INSTANCE) == 0) {
			snprintf(msg, sizeof(msg),
				 "cannot WAKE instance %s/%s/%s: it is stopped (allowed from: warm, sleeping)",
				 a->tenant_id, a->pool_id, a->instance_id);
			he.code = 409;
			he.message = msg;
		} else {
			snprintf(msg, sizeof(msg), "instance %s/%s/%s not found", a->tenant_id,
				 a->pool_id, a->instance_id);
			he.code = 404;
			he.message = msg;
		}
		resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT_ERROR;
		resp.error = &he;
		break;
	}
	default:
		he.code = 400;
		he.message = (char *)"unknown operation";
		resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT_ERROR;
		resp.error = &he;
		break;
	}
	*len = protobuf_c_message_get_packed_size(&resp.base);
	*out = malloc(*len ? *len : 1);
	protobuf_c_message_pack(&resp.base, *out);
}

static inline void *fake_hostd_thread(void *arg)
{
	struct fake_hostd *fh = arg;

	for (;;) {
		nng_msg *msg;
		ProtobufCMessage *req;
		struct vmlet_err err;
		uint8_t *out = NULL;
		size_t len = 0;

		if (nng_recvmsg(fh->sock, &msg, 0) != 0)
			return NULL; /* closed */
		atomic_fetch_add(&fh->served, 1);
		if (atomic_load(&fh->mode) == FAKE_SILENT) {
			nng_msg_free(msg);
			continue;
		}
		req = vmlet_strict_unpack(&vmlet__host__v1__host_request__descriptor,
					  nng_msg_body(msg), nng_msg_len(msg), &err);
		if (atomic_load(&fh->mode) == FAKE_GARBAGE) {
			out = malloc(3);
			memcpy(out, "\xff\xff\xff", 3);
			len = 3;
		} else {
			fake_hostd_answer((const Vmlet__Host__V1__HostRequest *)req, &out, &len);
		}
		if (req)
			protobuf_c_message_free_unpacked(req, NULL);
		nng_msg_clear(msg);
		nng_msg_append(msg, out, len);
		free(out);
		if (nng_sendmsg(fh->sock, msg, 0) != 0)
			nng_msg_free(msg);
	}
}

/* 0 on success. */
static inline int fake_hostd_start(struct fake_hostd *fh, const char *url)
{
	snprintf(fh->url, sizeof(fh->url), "%s", url);
	atomic_init(&fh->served, 0);
	atomic_init(&fh->mode, FAKE_REPLY);
	if (nng_rep0_open(&fh->sock) != 0)
		return -1;
	if (nng_listen(fh->sock, fh->url, NULL, 0) != 0) {
		nng_close(fh->sock);
		return -1;
	}
	if (pthread_create(&fh->thread, NULL, fake_hostd_thread, fh) != 0) {
		nng_close(fh->sock);
		return -1;
	}
	fh->running = true;
	return 0;
}

static inline void fake_hostd_stop(struct fake_hostd *fh)
{
	if (!fh->running)
		return;
	nng_close(fh->sock);
	pthread_join(fh->thread, NULL);
	fh->running = false;
}

#endif
