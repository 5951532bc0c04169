/* A test double of hostd with state, for agentd's reconcile tests: an NNG
 * rep0 socket served by one thread that keeps a registry of tenants, pools
 * and instances and applies hostd's instance transitions (the table of
 * rpc/host.proto's InstanceAction comments), so the reconcile executor can
 * be run pass after pass against it and converge. No VM, network or file is
 * touched: it only records.
 *
 * Knobs for the tests: images[] names the images the "store" has (a
 * create_instance with another image fails 404 like hostd's image check);
 * fail_action makes one InstanceAction fail with 500; hold makes the
 * thread wait before answering (a pass in progress);
 * mutating counts every request that changes state; log keeps their names
 * ("create_instance acme/web/i-00000001"). */
#ifndef VMLET_TEST_AGENTD_FAKE_HOSTD_STATE_H
#define VMLET_TEST_AGENTD_FAKE_HOSTD_STATE_H

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>
#include <nng/protocol/reqrep0/rep.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/host.pb-c.h"
#include "rpc/strict.h"

#define FS_MAX_TENANTS 16
#define FS_MAX_POOLS 32
#define FS_MAX_INSTANCES 128
#define FS_MAX_IMAGES 4
#define FS_LOG_MAX 512

struct fs_tenant {
	bool used;
	char id[64];
	uint32_t net_id;
	char subnet[32];
};

struct fs_pool {
	bool used;
	char tenant[64], pool[64], hash[80];
};

struct fs_instance {
	bool used;
	char tenant[64], pool[64], id[16], hash[80], image[64];
	Vmlet__V1__InstanceState state;
	uint32_t vcpus, mem_mib;
	uint64_t created_unix, state_since_unix;
};

struct fake_state_hostd {
	nng_socket sock;
	pthread_t thread;
	bool running;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool hold;        /* wait before answering until cleared */
	unsigned waiting; /* requests received while held */
	const char *images[FS_MAX_IMAGES];
	int fail_action;  /* an InstanceAction answered 500 (0: none) */
	uint64_t now_unix;
	unsigned mutating, served;
	char log[FS_LOG_MAX][128];
	unsigned n_log;
	struct fs_tenant tenants[FS_MAX_TENANTS];
	struct fs_pool pools[FS_MAX_POOLS];
	struct fs_instance instances[FS_MAX_INSTANCES];
};

static inline struct fs_tenant *fs_tenant(struct fake_state_hostd *f, const char *id)
{
	for (int i = 0; i < FS_MAX_TENANTS; i++)
		if (f->tenants[i].used && strcmp(f->tenants[i].id, id) == 0)
			return &f->tenants[i];
	return NULL;
}

static inline struct fs_pool *fs_pool(struct fake_state_hostd *f, const char *t, const char *p)
{
	for (int i = 0; i < FS_MAX_POOLS; i++)
		if (f->pools[i].used && strcmp(f->pools[i].tenant, t) == 0 &&
		    strcmp(f->pools[i].pool, p) == 0)
			return &f->pools[i];
	return NULL;
}

static inline struct fs_instance *fs_instance(struct fake_state_hostd *f, const char *t,
					      const char *p, const char *id)
{
	for (int i = 0; i < FS_MAX_INSTANCES; i++)
		if (f->instances[i].used && strcmp(f->instances[i].tenant, t) == 0 &&
		    strcmp(f->instances[i].pool, p) == 0 && strcmp(f->instances[i].id, id) == 0)
			return &f->instances[i];
	return NULL;
}

/* How many instances of tenant/pool are in state s. */
static inline unsigned fs_count(struct fake_state_hostd *f, const char *t, const char *p,
				Vmlet__V1__InstanceState s)
{
	unsigned n = 0;

	pthread_mutex_lock(&f->mu);
	for (int i = 0; i < FS_MAX_INSTANCES; i++)
		if (f->instances[i].used && strcmp(f->instances[i].tenant, t) == 0 &&
		    strcmp(f->instances[i].pool, p) == 0 && f->instances[i].state == s)
			n++;
	pthread_mutex_unlock(&f->mu);
	return n;
}

static inline unsigned fs_mutating(struct fake_state_hostd *f)
{
	unsigned n;

	pthread_mutex_lock(&f->mu);
	n = f->mutating;
	pthread_mutex_unlock(&f->mu);
	return n;
}

/* Count a mutating request and log it as "op tenant[/pool[/instance]]". */
static inline void fs_note(struct fake_state_hostd *f, const char *op, const char *t,
			   const char *p, const char *i)
{
	f->mutating++;
	if (f->n_log < FS_LOG_MAX)
		snprintf(f->log[f->n_log++], sizeof(f->log[0]), "%s %s%s%s%s%s", op, t,
			 p && *p ? "/" : "", p ? p : "", i && *i ? "/" : "", i ? i : "");
}

/* Whether some logged op starts with prefix. */
static inline bool fs_logged(struct fake_state_hostd *f, const char *prefix)
{
	bool found = false;

	pthread_mutex_lock(&f->mu);
	for (unsigned i = 0; i < f->n_log && !found; i++)
		found = strncmp(f->log[i], prefix, strlen(prefix)) == 0;
	pthread_mutex_unlock(&f->mu);
	return found;
}

/* hostd's InstanceAction table: allowed source states and the target. */
static inline int fs_transition(Vmlet__Host__V1__InstanceAction a, Vmlet__V1__InstanceState from,
				Vmlet__V1__InstanceState *to)
{
	const Vmlet__V1__InstanceState C = VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_CREATED,
				       R = VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_RUNNING,
				       W = VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_WARM,
				       S = VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_SLEEPING,
				       X = VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_STOPPED;

	switch (a) {
	case VMLET__HOST__V1__INSTANCE_ACTION__INSTANCE_ACTION_START:
		*to = R;
		return from == C || from == X ? 0 : -1;
	case VMLET__HOST__V1__INSTANCE_ACTION__INSTANCE_ACTION_STOP:
		*to = X;
		return from == R || from == W || from == S ? 0 : -1;
	case VMLET__HOST__V1__INSTANCE_ACTION__INSTANCE_ACTION_PAUSE:
		*to = W;
		return from == R ? 0 : -1;
	case VMLET__HOST__V1__INSTANCE_ACTION__INSTANCE_ACTION_RESUME:
		*to = R;
		return from == W ? 0 : -1;
	case VMLET__HOST__V1__INSTANCE_ACTION__INSTANCE_ACTION_SLEEP:
		*to = S;
		return from == R || from == W ? 0 : -1;
	case VMLET__HOST__V1__INSTANCE_ACTION__INSTANCE_ACTION_WAKE:
		*to = R;
		return from == S || from == W ? 0 : -1;
	default:
		return -1;
	}
}

static inline void fs_info(const struct fs_instance *in, Vmlet__V1__InstanceInfo *ii)
{
	vmlet__v1__instance_info__init(ii);
	ii->tenant_id = (char *)in->tenant;
	ii->pool_id = (char *)in->pool;
	ii->instance_id = (char *)in->id;
	ii->state = in->state;
	ii->vcpus = in->vcpus;
	ii->mem_mib = in->mem_mib;
	ii->created_unix = in->created_unix;
	ii->state_since_unix = in->state_since_unix;
	ii->spec_hash = (char *)in->hash;
}

/* Answer req into *out (called with f->mu held). */
static inline void fs_answer(struct fake_state_hostd *f, const Vmlet__Host__V1__HostRequest *req,
			     uint8_t **out, size_t *len)
{
	Vmlet__Host__V1__HostResponse resp = VMLET__HOST__V1__HOST_RESPONSE__INIT;
	Vmlet__Host__V1__HostError he = VMLET__HOST__V1__HOST_ERROR__INIT;
	Vmlet__Host__V1__Ok ok = VMLET__HOST__V1__OK__INIT;
	Vmlet__V1__TenantListResult tl = VMLET__V1__TENANT_LIST_RESULT__INIT;
	Vmlet__V1__InstanceListResult il = VMLET__V1__INSTANCE_LIST_RESULT__INIT;
	Vmlet__V1__TenantSummary ts[FS_MAX_TENANTS], *tsp[FS_MAX_TENANTS];
	Vmlet__V1__InstanceInfo ii[FS_MAX_INSTANCES], *iip[FS_MAX_INSTANCES];
	struct fs_instance gone; /* a destroyed instance, answered after the switch */
	char msg[256] = "";
	int code = 0;

	resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT_OK;
	resp.ok = &ok;
	switch (req ? req->op_case : 0) {
	case VMLET__HOST__V1__HOST_REQUEST__OP_LIST_TENANTS:
		for (int i = 0; i < FS_MAX_TENANTS; i++) {
			if (!f->tenants[i].used)
				continue;
			vmlet__v1__tenant_summary__init(&ts[tl.n_tenants]);
			ts[tl.n_tenants].tenant_id = f->tenants[i].id;
			ts[tl.n_tenants].tenant_net_id = f->tenants[i].net_id;
			ts[tl.n_tenants].ipv4_subnet = f->tenants[i].subnet;
			tsp[tl.n_tenants] = &ts[tl.n_tenants];
			tl.n_tenants++;
		}
		tl.tenants = tsp;
		resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT_TENANTS;
		resp.tenants = &tl;
		break;
	case VMLET__HOST__V1__HOST_REQUEST__OP_LIST_INSTANCES:
		for (int i = 0; i < FS_MAX_INSTANCES; i++) {
			if (!f->instances[i].used)
				continue;
			fs_info(&f->instances[i], &ii[il.n_instances]);
			iip[il.n_instances] = &ii[il.n_instances];
			il.n_instances++;
		}
		il.instances = iip;
		resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT_INSTANCES;
		resp.instances = &il;
		break;
	case VMLET__HOST__V1__HOST_REQUEST__OP_ENSURE_TENANT: {
		const Vmlet__Host__V1__EnsureTenantRequest *r = req->ensure_tenant;
		struct fs_tenant *t = fs_tenant(f, r->tenant_id);
		fs_note(f, "ensure_tenant", r->tenant_id, NULL, NULL);
		if (t && (t->net_id != r->tenant_net_id || strcmp(t->subnet, r->ipv4_subnet))) {
			code = 409;
			snprintf(msg, sizeof(msg), "tenant %s exists with another network", r->tenant_id);
		} else if (!t) {
			for (int i = 0; i < FS_MAX_TENANTS && !t; i++)
				if (!f->tenants[i].used)
					t = &f->tenants[i];
			t->used = true;
			snprintf(t->id, sizeof(t->id), "%s", r->tenant_id);
			t->net_id = r->tenant_net_id;
			snprintf(t->subnet, sizeof(t->subnet), "%s", r->ipv4_subnet);
		}
		break;
	}
	case VMLET__HOST__V1__HOST_REQUEST__OP_REMOVE_TENANT: {
		const char *t = req->remove_tenant->tenant_id;
		struct fs_tenant *ft = fs_tenant(f, t);
		fs_note(f, "remove_tenant", t, NULL, NULL);
		for (int i = 0; i < FS_MAX_POOLS; i++)
			if (f->pools[i].used && strcmp(f->pools[i].tenant, t) == 0)
				f->pools[i].used = false;
		for (int i = 0; i < FS_MAX_INSTANCES; i++)
			if (f->instances[i].used && strcmp(f->instances[i].tenant, t) == 0)
				f->instances[i].used = false;
		if (ft)
			ft->used = false;
		break;
	}
	case VMLET__HOST__V1__HOST_REQUEST__OP_ENSURE_POOL: {
		const Vmlet__Host__V1__EnsurePoolRequest *r = req->ensure_pool;
		struct fs_pool *p = fs_pool(f, r->tenant_id, r->pool_id);
		fs_note(f, "ensure_pool", r->tenant_id, r->pool_id, NULL);
		if (!fs_tenant(f, r->tenant_id)) {
			code = 404;
			snprintf(msg, sizeof(msg), "tenant %s not found", r->tenant_id);
			break;
		}
		for (int i = 0; i < FS_MAX_POOLS && !p; i++)
			if (!f->pools[i].used)
				p = &f->pools[i];
		p->used = true;
		snprintf(p->tenant, sizeof(p->tenant), "%s", r->tenant_id);
		snprintf(p->pool, sizeof(p->pool), "%s", r->pool_id);
		snprintf(p->hash, sizeof(p->hash), "%s", r->spec_hash);
		break;
	}
	case VMLET__HOST__V1__HOST_REQUEST__OP_REMOVE_POOL: {
		const Vmlet__Host__V1__RemovePoolRequest *r = req->remove_pool;
		struct fs_pool *p = fs_pool(f, r->tenant_id, r->pool_id);
		fs_note(f, "remove_pool", r->tenant_id, r->pool_id, NULL);
		if (p)
			p->used = false;
		break;
	}
	case VMLET__HOST__V1__HOST_REQUEST__OP_CREATE_INSTANCE: {
		const Vmlet__Host__V1__CreateInstanceRequest *r = req->create_instance;
		struct fs_instance *in = NULL;
		bool have_image = false;
		fs_note(f, "create_instance", r->tenant_id, r->pool_id, r->instance_id);
		for (int i = 0; i < FS_MAX_IMAGES; i++)
			have_image |= f->images[i] && strcmp(f->images[i], r->spec->image) == 0;
		if (!fs_pool(f, r->tenant_id, r->pool_id)) {
			code = 404;
			snprintf(msg, sizeof(msg), "pool %s/%s not found", r->tenant_id, r->pool_id);
			break;
		}
		if (!have_image) {
			code = 404;
			snprintf(msg, sizeof(msg), "image %s not found in the image store",
				 r->spec->image);
			break;
		}
		if (fs_instance(f, r->tenant_id, r->pool_id, r->instance_id)) {
			code = 409;
			snprintf(msg, sizeof(msg), "instance %s exists", r->instance_id);
			break;
		}
		for (int i = 0; i < FS_MAX_INSTANCES && !in; i++)
			if (!f->instances[i].used)
				in = &f->instances[i];
		memset(in, 0, sizeof(*in));
		in->used = true;
		snprintf(in->tenant, sizeof(in->tenant), "%s", r->tenant_id);
		snprintf(in->pool, sizeof(in->pool), "%s", r->pool_id);
		snprintf(in->id, sizeof(in->id), "%s", r->instance_id);
		snprintf(in->hash, sizeof(in->hash), "%s", r->spec->spec_hash);
		snprintf(in->image, sizeof(in->image), "%s", r->spec->image);
		in->vcpus = r->spec->vcpus;
		in->mem_mib = r->spec->mem_mib;
		in->state = VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_CREATED;
		in->created_unix = in->state_since_unix = f->now_unix;
		fs_info(in, &ii[0]);
		resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT_INSTANCE;
		resp.instance = &ii[0];
		break;
	}
	case VMLET__HOST__V1__HOST_REQUEST__OP_INSTANCE_ACTION: {
		const Vmlet__Host__V1__InstanceActionRequest *a = req->instance_action;
		struct fs_instance *in = fs_instance(f, a->tenant_id, a->pool_id, a->instance_id);
		Vmlet__V1__InstanceState to;
		const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(
			&vmlet__host__v1__instance_action__descriptor, (int)a->action);
		fs_note(f, ev ? ev->name : "action?", a->tenant_id, a->pool_id, a->instance_id);
		if (a->action == VMLET__HOST__V1__INSTANCE_ACTION__INSTANCE_ACTION_DESTROY) {
			memset(&gone, 0, sizeof(gone));
			if (in) {
				gone = *in;
				in->used = false;
			} else {
				snprintf(gone.tenant, sizeof(gone.tenant), "%s", a->tenant_id);
				snprintf(gone.pool, sizeof(gone.pool), "%s", a->pool_id);
				snprintf(gone.id, sizeof(gone.id), "%s", a->instance_id);
			}
			gone.state = VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_DESTROYED;
			fs_info(&gone, &ii[0]);
			resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT_INSTANCE;
			resp.instance = &ii[0];
			break;
		}
		if (f->fail_action && (int)a->action == f->fail_action) {
			code = 500;
			snprintf(msg, sizeof(msg), "injected failure of action %d", (int)a->action);
			break;
		}
		if (!in) {
			code = 404;
			snprintf(msg, sizeof(msg), "instance %s not found", a->instance_id);
			break;
		}
		if (fs_transition(a->action, in->state, &to) < 0) {
			code = 409;
			snprintf(msg, sizeof(msg), "instance %s: action %d not allowed in state %d",
				 a->instance_id, (int)a->action, (int)in->state);
			break;
		}
		in->state = to;
		in->state_since_unix = f->now_unix;
		fs_info(in, &ii[0]);
		resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT_INSTANCE;
		resp.instance = &ii[0];
		break;
	}
	default:
		code = 400;
		snprintf(msg, sizeof(msg), "the state double does not serve op %d",
			 req ? (int)req->op_case : -1);
		break;
	}
	if (code) {
		he.code = (uint32_t)code;
		he.message = msg;
		resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT_ERROR;
		resp.error = &he;
	}
	*len = protobuf_c_message_get_packed_size(&resp.base);
	*out = malloc(*len ? *len : 1);
	protobuf_c_message_pack(&resp.base, *out);
}

static inline void *fs_thread(void *arg)
{
	struct fake_state_hostd *f = arg;

	for (;;) {
		nng_msg *msg;
		ProtobufCMessage *req;
		struct vmlet_err err;
		uint8_t *out = NULL;
		size_t len = 0;

		if (nng_recvmsg(f->sock, &msg, 0) != 0)
			return NULL;
		req = vmlet_strict_unpack(&vmlet__host__v1__host_request__descriptor,
					  nng_msg_body(msg), nng_msg_len(msg), &err);
		pthread_mutex_lock(&f->mu);
		f->served++;
		f->waiting++;
		pthread_cond_broadcast(&f->cv);
		while (f->hold)
			pthread_cond_wait(&f->cv, &f->mu);
		f->waiting--;
		fs_answer(f, (const Vmlet__Host__V1__HostRequest *)req, &out, &len);
		pthread_mutex_unlock(&f->mu);
		if (req)
			protobuf_c_message_free_unpacked(req, NULL);
		nng_msg_clear(msg);
		nng_msg_append(msg, out, len);
		free(out);
		if (nng_sendmsg(f->sock, msg, 0) != 0)
			nng_msg_free(msg);
	}
}

static inline void fs_set_hold(struct fake_state_hostd *f, bool hold)
{
	pthread_mutex_lock(&f->mu);
	f->hold = hold;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

/* Block until a held request has arrived. */
static inline void fs_wait_held(struct fake_state_hostd *f)
{
	pthread_mutex_lock(&f->mu);
	while (f->waiting == 0)
		pthread_cond_wait(&f->cv, &f->mu);
	pthread_mutex_unlock(&f->mu);
}

static inline int fs_start(struct fake_state_hostd *f, const char *url)
{
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	if (nng_rep0_open(&f->sock) != 0)
		return -1;
	if (nng_listen(f->sock, url, NULL, 0) != 0 ||
	    pthread_create(&f->thread, NULL, fs_thread, f) != 0) {
		nng_close(f->sock);
		return -1;
	}
	f->running = true;
	return 0;
}

static inline void fs_stop(struct fake_state_hostd *f)
{
	if (!f->running)
		return;
	fs_set_hold(f, false);
	nng_close(f->sock);
	pthread_join(f->thread, NULL);
	f->running = false;
	pthread_cond_destroy(&f->cv);
	pthread_mutex_destroy(&f->mu);
}

#endif
