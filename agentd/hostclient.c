#include "agentd/hostclient.h"

#include <errno.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "rpc/strict.h"
#include "shared/log.h"

enum op_stage { OP_IDLE, OP_SENDING, OP_RECEIVING };

struct agentd_host_op {
	struct agentd_hostclient *hc;
	nng_ctx ctx;
	nng_aio *aio;
	enum op_stage stage;  /* only touched by whoever owns the op at the time */
	atomic_bool cancelled;
	uint64_t cookie;
	nng_time deadline;
	int result;           /* NNG error, 0 when a reply arrived */
	nng_msg *reply;
	struct agentd_host_op *next;     /* free list or done queue */
	struct agentd_host_op *all_next; /* every op ever made, for teardown */
};

struct agentd_hostclient {
	nng_socket sock;
	bool sock_open;
	char url[128 + 4096];
	int efd;
	uint32_t timeout_ms;
	uint32_t max_in_flight;
	atomic_int pipes;

	pthread_mutex_t lock; /* guards done_head/done_tail (NNG threads push) */
	struct agentd_host_op *done_head, *done_tail;

	/* Loop thread only. */
	struct agentd_host_op *free_list;
	struct agentd_host_op *all;
	size_t in_flight;
};

/* ---- NNG threads ---------------------------------------------------------- */

static void pipe_event(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	struct agentd_hostclient *hc = arg;

	if (ev == NNG_PIPE_EV_ADD_POST) {
		atomic_fetch_add(&hc->pipes, 1);
		vlog(VLOG_INFO, "hostd_connected", "url=%s pipe=%d", hc->url, nng_pipe_id(pipe));
	} else if (ev == NNG_PIPE_EV_REM_POST) {
		atomic_fetch_sub(&hc->pipes, 1);
		vlog(VLOG_WARN, "hostd_disconnected", "url=%s pipe=%d", hc->url, nng_pipe_id(pipe));
	}
}

/* Hand a finished op to the loop thread: queue it and wake the loop. */
static void op_complete(struct agentd_host_op *op, int result)
{
	struct agentd_hostclient *hc = op->hc;
	uint64_t one = 1;

	op->result = result;
	op->stage = OP_IDLE;
	op->next = NULL;
	pthread_mutex_lock(&hc->lock);
	if (hc->done_tail)
		hc->done_tail->next = op;
	else
		hc->done_head = op;
	hc->done_tail = op;
	pthread_mutex_unlock(&hc->lock);
	/* Can only fail with EAGAIN at a counter of 2^64-2: not reachable. */
	if (write(hc->efd, &one, sizeof(one)) < 0)
		vlog(VLOG_ERROR, "hostclient_wakeup_failed", "errno=%d", errno);
}

static void op_callback(void *arg)
{
	struct agentd_host_op *op = arg;
	int rv = nng_aio_result(op->aio);

	if (op->stage == OP_SENDING) {
		if (rv != 0) {
			/* A failed send gives the message back to us. */
			nng_msg *msg = nng_aio_get_msg(op->aio);
			nng_aio_set_msg(op->aio, NULL);
			if (msg)
				nng_msg_free(msg);
			op_complete(op, rv);
			return;
		}
		if (atomic_load(&op->cancelled)) {
			op_complete(op, NNG_ECANCELED);
			return;
		}
		/* One deadline for send and reply together. */
		nng_time now = nng_clock();
		nng_duration left = op->deadline > now ? (nng_duration)(op->deadline - now) : 1;
		op->stage = OP_RECEIVING;
		nng_aio_set_timeout(op->aio, left);
		nng_ctx_recv(op->ctx, op->aio);
		return;
	}
	if (rv == 0) {
		op->reply = nng_aio_get_msg(op->aio);
		nng_aio_set_msg(op->aio, NULL);
	}
	op_complete(op, rv);
}

/* ---- loop thread ---------------------------------------------------------- */

int agentd_hostclient_open(const struct agentd_hostclient_opts *opts,
			   struct agentd_hostclient **out, struct vmlet_err *err)
{
	struct agentd_hostclient *hc;
	int rv;

	*out = NULL;
	hc = calloc(1, sizeof(*hc));
	if (!hc)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "hostclient: out of memory");
	hc->efd = -1;
	pthread_mutex_init(&hc->lock, NULL);
	atomic_init(&hc->pipes, 0);
	hc->timeout_ms = opts->timeout_ms ? opts->timeout_ms : 1;
	hc->max_in_flight = opts->max_in_flight ? opts->max_in_flight : 1;
	if (snprintf(hc->url, sizeof(hc->url), "%s", opts->url) >= (int)sizeof(hc->url)) {
		vmlet_err_set(err, VMLET_E_INVALID, 0, "hostd url too long");
		goto fail;
	}
	hc->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (hc->efd < 0) {
		vmlet_err_sys(err, VMLET_E_INTERNAL, "eventfd");
		goto fail;
	}
	if ((rv = nng_req0_open(&hc->sock)) != 0) {
		vmlet_err_set(err, VMLET_E_INTERNAL, 0, "nng_req0_open: %s", nng_strerror(rv));
		goto fail;
	}
	hc->sock_open = true;
	/* Replies are capped like client frames; reconnects are quick so
	 * agentd notices a restarted hostd within about a second; requests are
	 * never re-sent on a timer (the per-request timeout decides). */
	if ((rv = nng_socket_set_size(hc->sock, NNG_OPT_RECVMAXSZ, opts->recv_max)) != 0 ||
	    (rv = nng_socket_set_ms(hc->sock, NNG_OPT_RECONNMINT, 100)) != 0 ||
	    (rv = nng_socket_set_ms(hc->sock, NNG_OPT_RECONNMAXT, 1000)) != 0 ||
	    (rv = nng_socket_set_ms(hc->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE)) != 0) {
		vmlet_err_set(err, VMLET_E_INTERNAL, 0, "hostd socket options: %s", nng_strerror(rv));
		goto fail;
	}
	if ((rv = nng_pipe_notify(hc->sock, NNG_PIPE_EV_ADD_POST, pipe_event, hc)) != 0 ||
	    (rv = nng_pipe_notify(hc->sock, NNG_PIPE_EV_REM_POST, pipe_event, hc)) != 0) {
		vmlet_err_set(err, VMLET_E_INTERNAL, 0, "nng_pipe_notify: %s", nng_strerror(rv));
		goto fail;
	}
	/* Non-blocking: agentd starts even while hostd is down; NNG keeps
	 * redialling in the background. */
	if ((rv = nng_dial(hc->sock, hc->url, NULL, NNG_FLAG_NONBLOCK)) != 0) {
		vmlet_err_set(err, VMLET_E_INTERNAL, 0, "nng_dial %s: %s", hc->url, nng_strerror(rv));
		goto fail;
	}
	*out = hc;
	return 0;
fail:
	agentd_hostclient_close(hc);
	return -1;
}

static void op_free(struct agentd_host_op *op)
{
	/* nng_aio_free waits for a running callback to return. */
	if (op->aio)
		nng_aio_free(op->aio);
	nng_ctx_close(op->ctx);
	if (op->reply)
		nng_msg_free(op->reply);
	free(op);
}

void agentd_hostclient_close(struct agentd_hostclient *hc)
{
	struct agentd_host_op *op, *next;

	if (!hc)
		return;
	/* Closing the socket aborts every outstanding request (NNG_ECLOSED);
	 * their callbacks only queue them, and nng_aio_free below waits for
	 * each callback to be done before the op is freed. */
	if (hc->sock_open)
		nng_close(hc->sock);
	for (op = hc->all; op; op = next) {
		next = op->all_next;
		op_free(op);
	}
	if (hc->efd >= 0)
		close(hc->efd);
	pthread_mutex_destroy(&hc->lock);
	free(hc);
}

int agentd_hostclient_event_fd(const struct agentd_hostclient *hc)
{
	return hc->efd;
}

bool agentd_hostclient_connected(const struct agentd_hostclient *hc)
{
	return atomic_load(&((struct agentd_hostclient *)hc)->pipes) > 0;
}

size_t agentd_hostclient_in_flight(const struct agentd_hostclient *hc)
{
	return hc->in_flight;
}

static struct agentd_host_op *op_get(struct agentd_hostclient *hc, struct vmlet_err *err)
{
	struct agentd_host_op *op = hc->free_list;
	int rv;

	if (op) {
		hc->free_list = op->next;
		return op;
	}
	op = calloc(1, sizeof(*op));
	if (!op) {
		vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "hostclient: out of memory");
		return NULL;
	}
	op->hc = hc;
	if ((rv = nng_ctx_open(&op->ctx, hc->sock)) != 0) {
		free(op);
		vmlet_err_set(err, VMLET_E_UNAVAILABLE, 0, "hostd unavailable: nng_ctx_open: %s",
			      nng_strerror(rv));
		return NULL;
	}
	if ((rv = nng_aio_alloc(&op->aio, op_callback, op)) != 0) {
		nng_ctx_close(op->ctx);
		free(op);
		vmlet_err_set(err, VMLET_E_INTERNAL, 0, "nng_aio_alloc: %s", nng_strerror(rv));
		return NULL;
	}
	op->all_next = hc->all;
	hc->all = op;
	return op;
}

int agentd_hostclient_submit(struct agentd_hostclient *hc, const Vmlet__Host__V1__HostRequest *req,
			     uint64_t cookie, struct agentd_host_op **op_out,
			     struct vmlet_err *err)
{
	struct agentd_host_op *op;
	nng_msg *msg;
	size_t len;
	int rv;

	if (op_out)
		*op_out = NULL;
	/* Fail fast while hostd is down instead of holding the client for the
	 * whole timeout. */
	if (!agentd_hostclient_connected(hc))
		return vmlet_err_set(err, VMLET_E_UNAVAILABLE, 0,
				     "hostd unavailable: not connected to %s", hc->url);
	if (hc->in_flight >= hc->max_in_flight)
		return vmlet_err_set(err, VMLET_E_UNAVAILABLE, 0,
				     "hostd unavailable: %zu requests already in flight", hc->in_flight);
	len = protobuf_c_message_get_packed_size(&req->base);
	if ((rv = nng_msg_alloc(&msg, len)) != 0)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "nng_msg_alloc: %s", nng_strerror(rv));
	protobuf_c_message_pack(&req->base, nng_msg_body(msg));
	op = op_get(hc, err);
	if (!op) {
		nng_msg_free(msg);
		return -1;
	}
	op->cookie = cookie;
	op->result = 0;
	op->reply = NULL;
	atomic_store(&op->cancelled, false);
	op->stage = OP_SENDING;
	op->deadline = nng_clock() + hc->timeout_ms;
	hc->in_flight++;
	nng_aio_set_msg(op->aio, msg);
	nng_aio_set_timeout(op->aio, (nng_duration)hc->timeout_ms);
	nng_ctx_send(op->ctx, op->aio);
	if (op_out)
		*op_out = op;
	return 0;
}

void agentd_hostclient_cancel(struct agentd_hostclient *hc, struct agentd_host_op *op)
{
	(void)hc;
	if (!op)
		return;
	atomic_store(&op->cancelled, true);
	nng_aio_cancel(op->aio);
}

size_t agentd_hostclient_drain(struct agentd_hostclient *hc, agentd_host_reply_fn fn, void *arg)
{
	struct agentd_host_op *list, *op;
	uint64_t count;
	size_t n = 0;

	if (read(hc->efd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		vlog(VLOG_ERROR, "hostclient_eventfd_read_failed", "errno=%d", errno);
	pthread_mutex_lock(&hc->lock);
	list = hc->done_head;
	hc->done_head = hc->done_tail = NULL;
	pthread_mutex_unlock(&hc->lock);

	while ((op = list)) {
		ProtobufCMessage *msg = NULL;
		struct vmlet_err e;

		list = op->next;
		vmlet_err_clear(&e);
		if (op->result != 0) {
			vmlet_err_set(&e, VMLET_E_UNAVAILABLE, 0, "hostd unavailable: %s",
				      nng_strerror(op->result));
		} else {
			msg = vmlet_strict_unpack(&vmlet__host__v1__host_response__descriptor,
						  nng_msg_body(op->reply), nng_msg_len(op->reply), &e);
			if (!msg) {
				e.code = VMLET_E_INTERNAL;
				vmlet_err_prefix(&e, "hostd sent an invalid reply: ");
			}
		}
		if (op->reply) {
			nng_msg_free(op->reply);
			op->reply = NULL;
		}
		fn(arg, op->cookie, (const Vmlet__Host__V1__HostResponse *)msg, msg ? NULL : &e);
		if (msg)
			protobuf_c_message_free_unpacked(msg, NULL);
		op->next = hc->free_list;
		hc->free_list = op;
		hc->in_flight--;
		n++;
	}
	return n;
}
