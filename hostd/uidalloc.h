/* Per-instance uid/gid for jailed VMMs: each live instance gets its own
 * uid (and gid = uid) from a configured range [base, base + count), so no
 * two VMMs can signal, ptrace or read each other's files. The allocation
 * is a pure function of the ids in use (taken from hostd's registry); the
 * caller persists the result in InstanceRecord.uid/gid.
 *
 * The range must stay clear of system and login ids (0..65535, which holds
 * nobody, 65534) and of (uid_t)-1, the "no change" value of set*id. */
#ifndef HOSTD_UIDALLOC_H
#define HOSTD_UIDALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

#define UIDALLOC_DEFAULT_BASE 200000u
#define UIDALLOC_DEFAULT_COUNT 65536u
/* Lowest uid a range may start at: everything below is for the system
 * and for login users (Debian gives those 1000..59999, nobody 65534). */
#define UIDALLOC_MIN_BASE 65536u

struct uid_range {
	uint32_t base;
	uint32_t count;
};

/* 0 when [base, base+count) is usable: count >= 1, base >= 65536, and the
 * last id below 0xffffffff (uid_t -1); else 400 naming the problem. */
int uidalloc_check_range(const struct uid_range *r, struct vmlet_err *err);

/* Whether uid lies in the range (for re-validating a persisted record). */
bool uidalloc_in_range(const struct uid_range *r, uint32_t uid);

/* The lowest uid of the range not in in_use[0..n) (ids outside the range
 * and duplicates are ignored). 503 when every uid of the range is taken;
 * 400 when the range itself is invalid. */
int uidalloc_pick(const struct uid_range *r, const uint32_t *in_use, size_t n, uint32_t *out,
		  struct vmlet_err *err);

#endif
