/* agentd's client for hostd: NNG req0 over ipc://, fully asynchronous.
 *
 * Each request gets its own nng_ctx + nng_aio. The aio callback runs on an
 * NNG thread and never touches agentd's connection state: it queues the
 * finished operation under a mutex and writes an eventfd that agentd's
 * epoll loop watches; the loop then calls agentd_hostclient_drain, which
 * hands each reply (decoded strictly) back with the cookie it was sent with.
 * The dial is non-blocking and NNG redials by itself, so agentd starts while
 * hostd is down and recovers when hostd comes back. */
#ifndef VMLET_AGENTD_HOSTCLIENT_H
#define VMLET_AGENTD_HOSTCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc/host.pb-c.h"
#include "shared/err.h"

struct agentd_hostclient;
struct agentd_host_op; /* one request in flight */

struct agentd_hostclient_opts {
	const char *url;        /* "ipc:///run/vmlet/hostd/hostd.sock" */
	size_t recv_max;        /* NNG_OPT_RECVMAXSZ for replies */
	uint32_t timeout_ms;    /* per request, send and reply together */
	uint32_t max_in_flight; /* more concurrent requests are refused with 503 */
};

int agentd_hostclient_open(const struct agentd_hostclient_opts *opts,
			   struct agentd_hostclient **out, struct vmlet_err *err);
/* Closes the socket (every outstanding request completes with NNG_ECLOSED
 * and is discarded) and frees everything. NULL is fine. */
void agentd_hostclient_close(struct agentd_hostclient *hc);

/* Readable when replies are waiting for agentd_hostclient_drain. */
int agentd_hostclient_event_fd(const struct agentd_hostclient *hc);

/* Whether NNG currently has a pipe to hostd. */
bool agentd_hostclient_connected(const struct agentd_hostclient *hc);
size_t agentd_hostclient_in_flight(const struct agentd_hostclient *hc);

/* Pack and send req. The reply comes back through drain with this cookie.
 * Fails at once with 503 when there is no pipe to hostd or too many
 * requests are in flight; *op (optional) identifies the request for
 * agentd_hostclient_cancel until its reply has been drained. */
int agentd_hostclient_submit(struct agentd_hostclient *hc, const Vmlet__Host__V1__HostRequest *req,
			     uint64_t cookie, struct agentd_host_op **op, struct vmlet_err *err);

/* Abort a request whose requester went away; its (error) completion still
 * goes through drain, where the caller discards it by cookie. Only valid
 * for an op that has not been drained yet. */
void agentd_hostclient_cancel(struct agentd_hostclient *hc, struct agentd_host_op *op);

/* resp is NULL on failure, with err filled: 503 "hostd unavailable: ..."
 * for transport problems, 500 for a reply that does not decode. resp is
 * only borrowed: it is freed after the callback returns. */
typedef void (*agentd_host_reply_fn)(void *arg, uint64_t cookie,
				     const Vmlet__Host__V1__HostResponse *resp,
				     const struct vmlet_err *err);

/* Deliver every completed request (call when the event fd is readable).
 * Returns how many were delivered. */
size_t agentd_hostclient_drain(struct agentd_hostclient *hc, agentd_host_reply_fn fn, void *arg);

#endif
