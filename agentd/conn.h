/* One client connection of agentd (TLS or local), as a state machine the
 * epoll loop drives:
 *
 *   HANDSHAKE --ok, coordinator--> READING --frame--> WAITING (hostd)
 *       |                            ^  |                 |
 *       +--not a coordinator--+      |  +--answered here--+--> WRITING
 *                             v      +------------------------------+
 *                          WRITING --close_after--> DRAINING --> CLOSED
 *
 * One request in flight per connection: EPOLLIN is off outside READING.
 * The connection never frees itself: it sets CLOSED and the loop releases
 * it (agentd_conn_release), bumping the slot's generation so late events
 * and late hostd replies for it are recognised and dropped. */
#ifndef VMLET_AGENTD_CONN_H
#define VMLET_AGENTD_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agentd/handlers.h"
#include "agentd/hostclient.h"
#include "agentd/ratelimit.h"
#include "agentd/tls.h"
#include "rpc/frame.h"
#include "shared/config.h"
#include "shared/log.h"

enum agentd_conn_state {
	CONN_FREE = 0,
	CONN_HANDSHAKE,
	CONN_READING,
	CONN_WAITING,
	CONN_WRITING,
	CONN_DRAINING,
	CONN_CLOSED,
};

/* What every connection shares (owned by the loop). */
struct agentd_conn_env {
	const struct vmlet_config *cfg;
	struct agentd_tls *tls;
	struct agentd_hostclient *hc;
	struct agentd_reconciler *reconciler; /* NULL: reconcile answers 503 */
	const struct agentd_handler *table;
	size_t table_len;
	int epfd;
	uint8_t *scratch; /* read buffer shared by all connections */
	size_t scratch_len;
};

/* Bytes discarded at most, and for how long, after an error that closes the
 * connection (so the peer reads our error before the close, not a reset). */
#define AGENTD_DRAIN_MAX (1u << 20)
#define AGENTD_DRAIN_MS 1000u

struct agentd_conn {
	const struct agentd_conn_env *env;
	enum agentd_conn_state state;
	unsigned transport;
	int fd;
	struct agentd_tls_conn *tls;
	uint32_t slot, gen;  /* set by the loop; make the epoll tag and cookie */
	uint32_t interest;   /* epoll events currently registered */
	bool pending_input;  /* READING with bytes maybe buffered (ours or wolfSSL's) */
	uint64_t deadline_ns; /* 0 = none (waiting for hostd has hostd's timeout) */

	struct vmlet_frame_reader reader;
	uint8_t *leftover;    /* bytes read past the end of the last frame */
	size_t leftover_len, leftover_off;
	struct agentd_bucket bucket;

	uint8_t *out;         /* framed response being written */
	size_t out_len, out_off;
	bool close_after;
	size_t drained;

	const struct agentd_handler *handler; /* request in progress */
	struct agentd_host_op *host_op;
	uint64_t req_start_ns;
	uint64_t requests;

	char peer[64];        /* "1.2.3.4:5555" / "[::1]:5555" or "pid:1234" */
	char identity[VLOG_STR_MAX]; /* quoted TLS identity, "uid:1000", or "-" */

	struct agentd_conn *prev, *next; /* loop's list (active or free) */
};

#define AGENTD_TAG_CONN 4u

static inline uint64_t agentd_conn_tag(const struct agentd_conn *c)
{
	return ((uint64_t)c->gen << 32) | ((uint64_t)c->slot << 8) | AGENTD_TAG_CONN;
}

/* Cookie for hostd requests: same generation + slot. */
static inline uint64_t agentd_conn_cookie(const struct agentd_conn *c)
{
	return ((uint64_t)c->gen << 32) | c->slot;
}

/* Fill a fresh connection (fd already registered with epoll, events 0). */
void agentd_conn_init(struct agentd_conn *c, const struct agentd_conn_env *env, int fd,
		      unsigned transport, uint64_t now_ns);

/* TLS: begin the handshake; local: begin reading. */
void agentd_conn_start(struct agentd_conn *c);

/* Answer Error{code, msg} and close (refused local peer). */
void agentd_conn_refuse(struct agentd_conn *c, int code, const char *msg);

/* epoll reported events for this connection (or pending input: EPOLLIN). */
void agentd_conn_on_io(struct agentd_conn *c, uint32_t events);

/* hostd's reply (resp) or failure (err) for the request in flight. */
void agentd_conn_on_host_reply(struct agentd_conn *c, const Vmlet__Host__V1__HostResponse *resp,
			       const struct vmlet_err *err);

/* The answer to a request a handler served itself (handler->serve):
 * resp, or err when resp is NULL. Ignored unless the connection waits. */
void agentd_conn_on_served(struct agentd_conn *c, const Vmlet__V1__AgentResponse *resp,
			   const struct vmlet_err *err);

/* The deadline passed (handshake, idle, slow reader or drain). */
void agentd_conn_on_deadline(struct agentd_conn *c);

/* Free everything and close the fd (which also leaves epoll); cancels a
 * hostd request still in flight. Leaves state CONN_FREE. */
void agentd_conn_release(struct agentd_conn *c);

const char *agentd_conn_state_name(enum agentd_conn_state s);

#endif
