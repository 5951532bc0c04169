/* QMP client (QEMU Machine Protocol) for hostd's QEMU driver.
 *
 * The peer is a QEMU process running as an instance uid next to a guest we
 * do not trust, so the client treats its output as hostile: every line is
 * capped (QMP_LINE_MAX, longer -> error), every reply is parsed strictly
 * (an object with exactly one of "return" / "error"{class,desc}, carrying
 * our id), every wait has a deadline, and after any protocol error or
 * timeout the connection is dropped rather than resynchronised.
 * Asynchronous events that arrive while a reply is awaited are skipped,
 * except that STOP, RESUME, SHUTDOWN and MIGRATION are counted for callers. */
#ifndef HOSTD_QMP_H
#define HOSTD_QMP_H

#include <jansson.h>
#include <stdbool.h>

#include "shared/err.h"

#define QMP_LINE_MAX 65536

enum qmp_event {
	QMP_EV_STOP,
	QMP_EV_RESUME,
	QMP_EV_SHUTDOWN,
	QMP_EV_MIGRATION,
	QMP_EV_COUNT
};

struct qmp_events {
	unsigned count[QMP_EV_COUNT]; /* how many of each were seen */
	bool shutdown_guest;          /* last SHUTDOWN: the guest asked for it */
	char shutdown_reason[32];     /* last SHUTDOWN's reason ("guest-shutdown") */
	char migration_status[32];    /* last MIGRATION's status ("completed") */
};

struct qmp;

/* Connect to the unix socket at path, retrying while it does not exist or
 * refuses (a VMM that is still starting), then read the greeting and
 * negotiate capabilities, all within timeout_ms. */
int qmp_connect(const char *path, int timeout_ms, struct qmp **out, struct vmlet_err *err);

/* Same handshake over an already connected stream socket. Takes ownership
 * of fd, also on failure. */
int qmp_attach(int fd, int timeout_ms, struct qmp **out, struct vmlet_err *err);

/* Execute command with args (a JSON object or NULL; the reference is
 * STOLEN, also on failure). send_fd >= 0 is passed with SCM_RIGHTS along
 * with the command (for "getfd"). On success *ret (if ret is not NULL)
 * holds a new reference to the "return" value. A QMP error reply fails
 * with the command name and QMP's class and description. */
int qmp_execute(struct qmp *q, const char *command, json_t *args, int send_fd, int timeout_ms,
		json_t **ret, struct vmlet_err *err);

/* Wait until more than `after` events of kind ev have been seen.
 * Returns 1 when they have, 0 on timeout (the connection stays usable),
 * -1 with err when the connection fails or closes first. */
int qmp_wait_event(struct qmp *q, enum qmp_event ev, unsigned after, int timeout_ms,
		   struct vmlet_err *err);

const struct qmp_events *qmp_events(const struct qmp *q);

/* True once the connection was dropped: the peer closed it (QEMU exited),
 * or it was abandoned after a protocol error or timeout. */
bool qmp_closed(const struct qmp *q);
/* The peer closed the connection cleanly (EOF), as QEMU does on exit. */
bool qmp_peer_closed(const struct qmp *q);

void qmp_close(struct qmp *q);

#endif
