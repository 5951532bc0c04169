/* One HostResponse under construction, and the memory it points into.
 *
 * Handlers allocate the response's sub-messages and strings from the
 * reply (a small arena): they are released together by hostd_reply_free,
 * so no handler needs per-field cleanup and a half-built response cannot
 * leak. Allocation failure is sticky: hostd_reply_strdup then returns ""
 * and dispatch turns the whole reply into a 500 before it is packed. The
 * error path never allocates (the HostError lives inside the reply). */
#ifndef HOSTD_REPLY_H
#define HOSTD_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#include "rpc/host.pb-c.h"
#include "shared/err.h"

struct hostd_reply_chunk;

struct hostd_reply {
	Vmlet__Host__V1__HostResponse resp;
	Vmlet__Host__V1__HostError error;   /* storage for resp.error */
	char error_msg[VMLET_ERR_MSG_MAX];
	struct hostd_reply_chunk *chunks;
	bool oom;
};

void hostd_reply_init(struct hostd_reply *r);
/* Zeroed memory owned by the reply; NULL (and r->oom) on failure. */
void *hostd_reply_alloc(struct hostd_reply *r, size_t size);
/* Array of n pointers (for repeated message fields); NULL when n == 0. */
void *hostd_reply_alloc_array(struct hostd_reply *r, size_t n, size_t elem);
/* Copy of s owned by the reply ("" for NULL/empty or on failure). */
char *hostd_reply_strdup(struct hostd_reply *r, const char *s);
/* Replace whatever result was set by HostError{code, message, sys_errno}. */
void hostd_reply_set_error(struct hostd_reply *r, const struct vmlet_err *err);
void hostd_reply_free(struct hostd_reply *r);

#endif
