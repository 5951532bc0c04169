/* hostd's monitor: ONE thread with an epoll set over every VMM's pidfd and
 * console FIFO, so a VMM that dies on its own is noticed at once (no
 * polling of /proc, no SIGCHLD handler in a multi-threaded process) and
 * a guest's console output is drained into its capped log even while no
 * request is being served.
 *
 * Callbacks run on the monitor thread and must not block (no instance
 * lock, no VMM round trip): they record what happened and leave the slow
 * work to the tick, which runs on the same thread outside the callback
 * lock every tick_ms and may block briefly (e.g. try an instance lock). */
#ifndef HOSTD_MONITOR_H
#define HOSTD_MONITOR_H

#include <stdint.h>

#include "shared/err.h"

struct hostd_monitor;

/* events: EPOLLIN / EPOLLHUP / EPOLLERR bits. */
typedef void (*hostd_monitor_fn)(void *arg, int fd, uint32_t events);

int hostd_monitor_start(struct hostd_monitor **out, void (*tick)(void *arg), void *tick_arg,
			int tick_ms, struct vmlet_err *err);
/* Stop and join the thread; registrations are dropped, fds not closed. */
void hostd_monitor_stop(struct hostd_monitor *m);

/* Watch fd (level-triggered EPOLLIN). The fd stays the caller's. */
int hostd_monitor_add(struct hostd_monitor *m, int fd, hostd_monitor_fn fn, void *arg,
		      struct vmlet_err *err);
/* Stop watching fd. When it returns, fn is not running for this fd (unless
 * the caller IS that callback) and will not be called again, so the caller
 * may free arg and close fd. Unknown fd: nothing. */
void hostd_monitor_del(struct hostd_monitor *m, int fd);

#endif
