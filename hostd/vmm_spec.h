/* Checks every VMM driver applies to a vmm_spec before it becomes argv or
 * an API request: the spec comes from hostd's validated state, but argv and
 * request bodies are the last place a bad value could slip in. */
#ifndef HOSTD_VMM_SPEC_H
#define HOSTD_VMM_SPEC_H

#include <stdbool.h>
#include <stddef.h>

#include "hostd/vmm.h"
#include "shared/err.h"

/* An absolute path of [A-Za-z0-9/._+-] (no ',', '=', spaces or controls),
 * shorter than max, without "." or ".." components. */
int vmm_check_path(const char *field, const char *p, size_t max, struct vmlet_err *err);

/* vcpus and mem_mib within vmlet's ranges; cmdline present, shorter than
 * VMM_CMDLINE_MAX and printable ASCII. */
int vmm_check_resources(const struct vmm_spec *s, struct vmlet_err *err);

/* At most VMM_MAX_DRIVES drives, each path accepted by check_path (the
 * driver's own rule, at most max bytes), each id well-formed and unique. */
int vmm_check_drives(const struct vmm_spec *s, size_t max,
		     int (*check_path)(const char *field, const char *p, size_t max,
				       struct vmlet_err *err),
		     struct vmlet_err *err);

/* Drive ids: [a-z][a-z0-9_]{0,15}. */
bool vmm_drive_id_ok(const char *s);

/* "xx:xx:xx:xx:xx:xx", lowercase hex, unicast (I/G bit clear). */
bool vmm_mac_ok(const char *s);

#endif
