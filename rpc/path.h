/* The path of the value a descriptor walker is at, for error messages
 * ("tenants[2].pools[0].pool_id", "$.tenants[1]"): appended to on the way
 * down, restored on the way back up. Used by the strict walker and the
 * JSON codec. */
#ifndef VMLET_RPC_PATH_H
#define VMLET_RPC_PATH_H

#include <stddef.h>

#include "shared/err.h"

struct vmlet_path {
	char buf[VMLET_ERR_MSG_MAX / 2]; /* room left in the message for the reason */
	size_t len;
};

/* Appends printf-style; returns the previous length for vmlet_path_restore.
 * A path too long for the buffer is cut, which only shortens the message. */
size_t vmlet_path_append(struct vmlet_path *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void vmlet_path_restore(struct vmlet_path *p, size_t old);

#endif
