#include "hostd/peer.h"

bool hostd_peer_allowed(uint64_t peer_uid, uid_t agentd_uid, bool allow_root_peer,
			const char **reason)
{
	const char *why;
	bool ok;

	/* NNG reports the uid as 64 bits; anything that is not a real uid
	 * (including (uid_t)-1, the "unresolved" marker) is never a match. */
	if (peer_uid >= (uint64_t)(uid_t)-1) {
		why = "not a valid uid";
		ok = false;
	} else if (peer_uid == 0) {
		ok = allow_root_peer;
		why = ok ? "root peer allowed by allow_root_peer" : "root peer not allowed";
	} else if (peer_uid == (uint64_t)agentd_uid) {
		ok = true;
		why = "agentd uid";
	} else {
		ok = false;
		why = "uid is not the agentd uid";
	}
	if (reason)
		*reason = why;
	return ok;
}
