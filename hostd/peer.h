/* Who may talk to hostd: the pure policy applied to every NNG pipe when it
 * is added (server.c reads the peer's credentials from the kernel via
 * NNG_OPT_IPC_PEER_UID and asks here). Kept free of NNG so it is tested as
 * a table. */
#ifndef HOSTD_PEER_H
#define HOSTD_PEER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* true when a peer with peer_uid may send host requests. Root is allowed
 * only when allow_root_peer is set (tests), even if agentd_uid is 0: a
 * misconfigured "agentd runs as root" must not silently open the door.
 * *reason (may be NULL) gets a short static explanation for the log. */
bool hostd_peer_allowed(uint64_t peer_uid, uid_t agentd_uid, bool allow_root_peer,
			const char **reason);

#endif
