#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "agentd/ratelimit.h"

#define SEC 1000000000ull

static int take_all(struct agentd_bucket *b, uint64_t now)
{
	int n = 0;
	while (agentd_bucket_take(b, now) && n < 10000000)
		n++;
	return n;
}

static void burst_then_refused(void **state)
{
	struct agentd_bucket b;
	agentd_bucket_init(&b, 10, 5, 1000);
	assert_int_equal(take_all(&b, 1000), 5);
	assert_false(agentd_bucket_take(&b, 1000));
}

static void refills_at_rate(void **state)
{
	struct agentd_bucket b;
	uint64_t t = 5 * SEC;
	agentd_bucket_init(&b, 10, 5, t);
	assert_int_equal(take_all(&b, t), 5);
	/* 10 per second: one token every 100 ms. */
	assert_false(agentd_bucket_take(&b, t + 99 * 1000000ull));
	assert_true(agentd_bucket_take(&b, t + 100 * 1000000ull));
	assert_false(agentd_bucket_take(&b, t + 100 * 1000000ull));
	/* 350 ms later: 3 more (the fraction is kept for later). */
	assert_int_equal(take_all(&b, t + 450 * 1000000ull), 3);
	assert_true(agentd_bucket_take(&b, t + 500 * 1000000ull));
}

static void refill_capped_at_burst(void **state)
{
	struct agentd_bucket b;
	agentd_bucket_init(&b, 100, 7, 0);
	assert_int_equal(take_all(&b, 0), 7);
	assert_int_equal(take_all(&b, 3600 * SEC), 7);
}

static void fractions_not_lost_on_frequent_calls(void **state)
{
	struct agentd_bucket b;
	uint64_t t = 0;
	int got = 0;
	agentd_bucket_init(&b, 3, 1, 0);
	assert_true(agentd_bucket_take(&b, 0));
	/* Ask every microsecond for 2 s (+1 ms of slack for the rounding at
	 * each full bucket): rate 3/s must give exactly 6, not fewer. */
	for (t = 1000; t <= 2 * SEC + 1000000; t += 1000)
		got += agentd_bucket_take(&b, t);
	assert_int_equal(got, 6);
}

static void no_overflow_with_huge_elapsed(void **state)
{
	struct agentd_bucket b;
	agentd_bucket_init(&b, 100000, 1000000, 0);
	assert_int_equal(take_all(&b, 0), 1000000);
	/* elapsed * rate would overflow 64 bits if computed naively. */
	assert_int_equal(take_all(&b, UINT64_MAX - 1), 1000000);
	agentd_bucket_init(&b, 1, 1, 0);
	assert_true(agentd_bucket_take(&b, 0));
	assert_true(agentd_bucket_take(&b, UINT64_MAX));
	assert_false(agentd_bucket_take(&b, UINT64_MAX));
}

static void max_config_values(void **state)
{
	struct agentd_bucket b;
	/* The largest burst the type allows, at the slowest rate. */
	agentd_bucket_init(&b, 1, UINT32_MAX, 0);
	assert_true(agentd_bucket_take(&b, 0));
	assert_true(agentd_bucket_take(&b, UINT64_MAX / 2));
	agentd_bucket_init(&b, UINT32_MAX, UINT32_MAX, 0);
	assert_true(agentd_bucket_take(&b, 12345));
}

static void clock_going_backwards_earns_nothing(void **state)
{
	struct agentd_bucket b;
	agentd_bucket_init(&b, 1, 1, 10 * SEC);
	assert_true(agentd_bucket_take(&b, 10 * SEC));
	assert_false(agentd_bucket_take(&b, 1 * SEC));
	assert_false(agentd_bucket_take(&b, 10 * SEC + SEC / 2));
	assert_true(agentd_bucket_take(&b, 11 * SEC));
}

static void zero_rate_means_unlimited_and_zero_burst_means_one(void **state)
{
	struct agentd_bucket b;
	agentd_bucket_init(&b, 0, 1, 0);
	for (int i = 0; i < 1000; i++)
		assert_true(agentd_bucket_take(&b, 0));
	agentd_bucket_init(&b, 5, 0, 0);
	assert_true(agentd_bucket_take(&b, 0));
	assert_false(agentd_bucket_take(&b, 0));
}

static void monotonic_clock_moves(void **state)
{
	uint64_t a = agentd_now_ns(), b = agentd_now_ns();
	assert_true(a > 0);
	assert_true(b >= a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(burst_then_refused),
		cmocka_unit_test(refills_at_rate),
		cmocka_unit_test(refill_capped_at_burst),
		cmocka_unit_test(fractions_not_lost_on_frequent_calls),
		cmocka_unit_test(no_overflow_with_huge_elapsed),
		cmocka_unit_test(max_config_values),
		cmocka_unit_test(clock_going_backwards_earns_nothing),
		cmocka_unit_test(zero_rate_means_unlimited_and_zero_burst_means_one),
		cmocka_unit_test(monotonic_clock_moves),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
