/* The host operation table (OpenSSH monitor.c style): one HostRequest in,
 * one HostResponse out. Decoding is strict (rpc/strict.h); the oneof case
 * picks the row; a case with no row is refused. */
#ifndef HOSTD_DISPATCH_H
#define HOSTD_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "hostd/hostd.h"
#include "hostd/reply.h"

/* Always leaves a response in reply (init'ed here; the caller packs it
 * and calls hostd_reply_free): the operation's result, or HostError with
 * 400 for anything malformed/unknown, the handler's code otherwise.
 * Logs the request (op, code, duration_us): debug when it succeeded,
 * warn when it failed. */
void hostd_dispatch(const struct hostd_env *env, const uint8_t *buf, size_t len,
		    struct hostd_reply *reply);

/* The table's name for a oneof case, NULL when there is no such operation. */
const char *hostd_op_name(int op_case);

#endif
