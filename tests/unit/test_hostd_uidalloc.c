/* hostd/uidalloc.c: the lowest free uid of the range, never one in use,
 * never a system id; bad ranges refused; exhaustion reported. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hostd/uidalloc.h"

static const struct uid_range def = { UIDALLOC_DEFAULT_BASE, UIDALLOC_DEFAULT_COUNT };

static uint32_t pick(const struct uid_range *r, const uint32_t *used, size_t n)
{
	struct vmlet_err err;
	uint32_t uid = 0;

	if (uidalloc_pick(r, used, n, &uid, &err) < 0)
		fail_msg("uidalloc_pick: %s", err.msg);
	return uid;
}

static void lowest_free_is_picked(void **state)
{
	const uint32_t none[1] = { 0 };
	const uint32_t first[] = { 200000 };
	const uint32_t gap[] = { 200003, 200000, 200001, 200005 };   /* unsorted */
	const uint32_t dups[] = { 200000, 200000, 200001, 200001 };
	/* ids outside the range (a system user, another range) are ignored */
	const uint32_t outside[] = { 0, 65534, 199999, 265536, 4294967295u, 200000 };

	assert_int_equal(pick(&def, none, 0), 200000);
	assert_int_equal(pick(&def, NULL, 0), 200000);
	assert_int_equal(pick(&def, first, 1), 200001);
	assert_int_equal(pick(&def, gap, 4), 200002);
	assert_int_equal(pick(&def, dups, 4), 200002);
	assert_int_equal(pick(&def, outside, 6), 200001);
}

/* Allocating one by one, each new uid differs from every live one; a
 * freed uid is reused first. */
static void never_shared_between_live_instances(void **state)
{
	const struct uid_range r = { 300000, 64 };
	uint32_t live[64];
	size_t n = 0;
	struct vmlet_err err;
	uint32_t uid;

	for (n = 0; n < 64; n++) {
		uid = pick(&r, live, n);
		for (size_t i = 0; i < n; i++)
			assert_int_not_equal(uid, live[i]);
		assert_true(uidalloc_in_range(&r, uid));
		live[n] = uid;
	}
	/* Full: 503, *out untouched. */
	uid = 7;
	assert_int_equal(uidalloc_pick(&r, live, n, &uid, &err), -1);
	assert_int_equal(err.code, 503);
	assert_int_equal(uid, 7);
	assert_non_null(strstr(err.msg, "all 64 uids are in use"));
	/* Instance 17 is destroyed: its uid comes back. */
	live[17] = live[63];
	assert_int_equal(pick(&r, live, 63), 300017);
}

static void bad_ranges_refused(void **state)
{
	const struct uid_range bad[] = {
		{ 0, 100 },             /* root */
		{ 1000, 1000 },         /* login users */
		{ 60000, 10000 },       /* contains nobody (65534) */
		{ 65535, 10 },          /* starts at a system id */
		{ 200000, 0 },          /* empty */
		{ 4294967295u, 1 },     /* (uid_t)-1 */
		{ 4294900000u, 67296 }, /* reaches (uid_t)-1 */
		{ 4294967000u, 4000000000u }, /* wraps around */
	};
	struct vmlet_err err;
	uint32_t uid = 5;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(uidalloc_check_range(&bad[i], &err), -1);
		assert_int_equal(err.code, 400);
		assert_int_equal(uidalloc_pick(&bad[i], NULL, 0, &uid, &err), -1);
		assert_int_equal(uid, 5);
	}
	assert_int_equal(uidalloc_check_range(NULL, &err), -1);
	assert_int_equal(uidalloc_check_range(&def, &err), 0);
	/* The highest usable range ends at 0xfffffffe. */
	{
		const struct uid_range top = { 4294967294u, 1 };

		assert_int_equal(uidalloc_check_range(&top, &err), 0);
		assert_int_equal(pick(&top, NULL, 0), 4294967294u);
	}
	{
		const struct uid_range low = { UIDALLOC_MIN_BASE, 1 };

		assert_int_equal(uidalloc_check_range(&low, &err), 0);
	}
}

static void in_range_bounds(void **state)
{
	assert_false(uidalloc_in_range(&def, 199999));
	assert_true(uidalloc_in_range(&def, 200000));
	assert_true(uidalloc_in_range(&def, 265535));
	assert_false(uidalloc_in_range(&def, 265536));
	assert_false(uidalloc_in_range(NULL, 200000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(lowest_free_is_picked),
		cmocka_unit_test(never_shared_between_live_instances),
		cmocka_unit_test(bad_ranges_refused),
		cmocka_unit_test(in_range_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
