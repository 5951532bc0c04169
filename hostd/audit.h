/* The tenant's audit log: one JSON line per host operation on the tenant,
 * its pools or its instances, appended to
 *   <state_dir>/tenants/<t>/audit.jsonl   (root, 0600)
 * {"time": RFC 3339 UTC, "tenant", "pool", "instance", "action",
 *  "result": "ok"|"error", "code", "message", "duration_ms"}.
 *
 * Lines are built with jansson, never printf, because pool/instance ids
 * and error messages can carry request text; jansson escapes it. Each line
 * is ONE write() on an O_APPEND fd, so lines from concurrent operations
 * never interleave. An audit failure is logged, never turned into the
 * operation's result: the operation already happened. */
#ifndef HOSTD_AUDIT_H
#define HOSTD_AUDIT_H

#include <stdint.h>
#include <time.h>

#include "hostd/registry.h"
#include "shared/err.h"

struct hostd_audit_entry {
	const char *tenant;   /* must be a valid id (the file lives under it) */
	const char *pool;     /* "" or NULL when the op is about the tenant */
	const char *instance; /* "" or NULL when not about an instance */
	const char *action;   /* "ensure_tenant", "start", "sleep", ... */
	const struct vmlet_err *err; /* NULL or code 0: ok */
	uint64_t duration_ms;
};

/* Append one line. 0, or -1 with err (the tenant's directory is missing,
 * or the write failed); callers log that and carry on. */
int hostd_audit_append(const struct hostd_registry *reg, const struct hostd_audit_entry *e,
		       struct vmlet_err *err);

/* The line as it would be written (without the newline), for tests and
 * for the hostd log when the tenant directory is gone. Caller frees. */
char *hostd_audit_format(const struct hostd_audit_entry *e, time_t now);

#endif
