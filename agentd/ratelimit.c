#include "agentd/ratelimit.h"

#include <time.h>

#define MICRO 1000000ull
#define NANO 1000000000ull

void agentd_bucket_init(struct agentd_bucket *b, uint32_t rate_per_sec, uint32_t burst,
			uint64_t now_ns)
{
	if (burst == 0)
		burst = 1;
	b->rate = rate_per_sec;
	b->cap_micro = (uint64_t)burst * MICRO;
	b->micro = b->cap_micro;
	/* burst <= 2^32 and rate >= 1: at most ~4.3e18 ns, fits in 64 bits. */
	b->fill_ns = rate_per_sec ? ((uint64_t)burst * NANO + rate_per_sec - 1) / rate_per_sec : 0;
	b->last_ns = now_ns;
	b->rem = 0;
}

static void refill(struct agentd_bucket *b, uint64_t now_ns)
{
	uint64_t elapsed;

	if (now_ns <= b->last_ns)
		return; /* same instant, or a clock step backwards: nothing earned */
	elapsed = now_ns - b->last_ns;
	b->last_ns = now_ns;
	/* Anything at least as long as a full refill just fills the bucket;
	 * below that, elapsed * rate < burst * 1e9 <= 2^32 * 1e9 < 2^64, so
	 * the product cannot overflow. */
	if (elapsed >= b->fill_ns) {
		b->micro = b->cap_micro;
		b->rem = 0;
		return;
	}
	/* ns * tokens/s / 1000 = micro-tokens; the remainder is carried so
	 * frequent calls do not lose fractions of a token. */
	uint64_t product = elapsed * b->rate + b->rem;
	b->micro += product / 1000u;
	b->rem = product % 1000u;
	if (b->micro >= b->cap_micro) {
		b->micro = b->cap_micro;
		b->rem = 0;
	}
}

bool agentd_bucket_take(struct agentd_bucket *b, uint64_t now_ns)
{
	if (b->rate == 0)
		return true;
	refill(b, now_ns);
	if (b->micro < MICRO)
		return false;
	b->micro -= MICRO;
	return true;
}

uint64_t agentd_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NANO + (uint64_t)ts.tv_nsec;
}
