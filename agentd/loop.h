/* agentd's single epoll loop: the TLS and local listeners, every client
 * connection (agentd/conn.h), hostd completions (the hostclient's eventfd),
 * SIGINT/SIGTERM (signalfd) and the per-connection deadlines (handshake,
 * idle, slow reader) via the epoll_wait timeout. All sockets non-blocking;
 * nothing here blocks. */
#ifndef VMLET_AGENTD_LOOP_H
#define VMLET_AGENTD_LOOP_H

#include <stddef.h>

#include "agentd/hostclient.h"
#include "agentd/reconcile.h"
#include "agentd/tls.h"
#include "shared/config.h"
#include "shared/err.h"

struct agentd_loop;

/* tls may be NULL when there is no TLS listener. cfg, tls and hc must
 * outlive the loop. */
int agentd_loop_new(const struct vmlet_config *cfg, struct agentd_tls *tls,
		    struct agentd_hostclient *hc, struct agentd_loop **out, struct vmlet_err *err);

/* Watch a listening socket (not owned: the caller closes it after
 * agentd_loop_free). transport is AGENTD_TRANSPORT_TLS or _LOCAL. */
int agentd_loop_add_listener(struct agentd_loop *loop, int fd, unsigned transport,
			     struct vmlet_err *err);

/* Serve Reconcile through r and run a pass from the persisted state
 * first_s seconds from now, then every interval_s seconds (a timerfd, set
 * up here so no timer syscall is needed after seccomp). r is not owned;
 * create it with done = agentd_loop_reconcile_done, done_arg = loop. */
int agentd_loop_attach_reconciler(struct agentd_loop *loop, struct agentd_reconciler *r,
				  uint32_t first_s, uint32_t interval_s, struct vmlet_err *err);

/* The reconciler's done callback: answers the waiting connection. */
void agentd_loop_reconcile_done(void *arg, uint64_t cookie, const Vmlet__V1__ReconcileReport *report,
				const struct vmlet_err *err);

/* Block SIGINT and SIGTERM (call before any thread starts, so every thread
 * inherits the mask) and receive them through a signalfd: either one ends
 * agentd_loop_run. */
int agentd_loop_block_signals(struct vmlet_err *err);
int agentd_loop_watch_signals(struct agentd_loop *loop, struct vmlet_err *err);

/* Run until a signal or agentd_loop_stop. */
int agentd_loop_run(struct agentd_loop *loop, struct vmlet_err *err);

/* One turn: wait at most timeout_ms (-1: until something happens), handle
 * what is ready. 1 when the loop was asked to stop, else 0; -1 on error. */
int agentd_loop_run_once(struct agentd_loop *loop, int timeout_ms, struct vmlet_err *err);

void agentd_loop_stop(struct agentd_loop *loop);
size_t agentd_loop_connections(const struct agentd_loop *loop);

/* Closes every connection (cancelling their hostd requests). */
void agentd_loop_free(struct agentd_loop *loop);

#endif
