/* Per-connection token bucket: rate_per_sec tokens per second up to
 * burst. One request costs one token; without one the request is answered
 * 429 and the connection is kept. Pure arithmetic on a monotonic clock so
 * it can be tested without waiting. */
#ifndef VMLET_AGENTD_RATELIMIT_H
#define VMLET_AGENTD_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct agentd_bucket {
	uint64_t micro;     /* tokens * 1e6 currently available */
	uint64_t cap_micro; /* burst * 1e6 */
	uint64_t fill_ns;   /* time to refill an empty bucket completely */
	uint32_t rate;      /* tokens per second; 0 = no limit */
	uint64_t last_ns;   /* clock value of the last refill */
	uint64_t rem;       /* sub-micro-token remainder (ns * rate units) */
};

/* Starts full. rate_per_sec == 0 disables the limit; burst 0 is taken as 1
 * so a limited connection can still make progress. */
void agentd_bucket_init(struct agentd_bucket *b, uint32_t rate_per_sec, uint32_t burst,
			uint64_t now_ns);

/* Refill for the time since the last call, then take one token if there is
 * one. Never overflows, whatever now_ns is; a clock that goes backwards
 * refills nothing. */
bool agentd_bucket_take(struct agentd_bucket *b, uint64_t now_ns);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t agentd_now_ns(void);

#endif
