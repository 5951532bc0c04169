/* hostd's peer policy (hostd/peer.c) as a table: who may send host
 * requests, given the configured agentd uid and allow_root_peer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hostd/peer.h"

struct peer_case {
	uint64_t peer_uid;
	uid_t agentd_uid;
	bool allow_root;
	bool want;
	const char *reason;
};

static const struct peer_case cases[] = {
	/* the agentd user is served */
	{ 999, 999, false, true, "agentd uid" },
	{ 999, 999, true, true, "agentd uid" },
	/* anyone else is not */
	{ 65534, 999, false, false, "uid is not the agentd uid" },
	{ 65534, 999, true, false, "uid is not the agentd uid" },
	{ 1000, 999, false, false, "uid is not the agentd uid" },
	{ 998, 999, true, false, "uid is not the agentd uid" },
	/* root only when allowed (tests) */
	{ 0, 999, false, false, "root peer not allowed" },
	{ 0, 999, true, true, "root peer allowed by allow_root_peer" },
	/* agentd misconfigured as root: still needs allow_root_peer */
	{ 0, 0, false, false, "root peer not allowed" },
	{ 0, 0, true, true, "root peer allowed by allow_root_peer" },
	/* not real uids: (uid_t)-1 is "unresolved", 64-bit values are bogus */
	{ (uint64_t)(uid_t)-1, (uid_t)-1, true, false, "not a valid uid" },
	{ UINT64_MAX, 999, true, false, "not a valid uid" },
	{ ((uint64_t)1 << 32) + 999, 999, true, false, "not a valid uid" },
	{ ((uint64_t)1 << 32), 999, true, false, "not a valid uid" },
};

static void policy_table(void **state)
{
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		const struct peer_case *c = &cases[k];
		const char *reason = NULL;
		bool got = hostd_peer_allowed(c->peer_uid, c->agentd_uid, c->allow_root, &reason);

		if (got != c->want || !reason || strcmp(reason, c->reason) != 0)
			fail_msg("case %zu: uid %llu agentd %u allow_root %d: got %d (%s), want %d (%s)",
				 k, (unsigned long long)c->peer_uid, (unsigned)c->agentd_uid,
				 c->allow_root, got, reason ? reason : "(null)", c->want, c->reason);
	}
}

static void reason_is_optional(void **state)
{
	assert_true(hostd_peer_allowed(5, 5, false, NULL));
	assert_false(hostd_peer_allowed(6, 5, false, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(policy_table),
		cmocka_unit_test(reason_is_optional),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
