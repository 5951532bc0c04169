/* agentd's local admin socket: a unix stream socket (0660, root:admin
 * group) whose peers are identified by SO_PEERCRED / SO_PEERGROUPS. Root
 * and members of the admin group are served; everyone else is refused. */
#ifndef VMLET_AGENTD_LOCAL_H
#define VMLET_AGENTD_LOCAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "shared/config.h"
#include "shared/err.h"

/* Groups kept from SO_PEERGROUPS; a peer in more groups than this is judged
 * on the first ones only (the kernel reports at most NGROUPS_MAX). */
#define AGENTD_PEER_GROUPS_MAX 65536

struct agentd_peer_cred {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	gid_t *groups; /* supplementary groups, malloc'd (NULL when none) */
	size_t n_groups;
};

/* The policy, pure: allowed iff uid 0, or gid == admin_gid, or admin_gid is
 * one of the groups. admin_gid (gid_t)-1 (group missing) matches nothing. */
bool agentd_local_peer_allowed(uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups,
			       gid_t admin_gid);

/* SO_PEERCRED + SO_PEERGROUPS of a connected unix socket. Free with
 * agentd_peer_cred_free. */
int agentd_local_peer_cred(int fd, struct agentd_peer_cred *out, struct vmlet_err *err);
void agentd_peer_cred_free(struct agentd_peer_cred *c);

struct agentd_local_listener {
	int fd;
	char path[108]; /* sun_path */
	dev_t dev;      /* identity of the socket file we created, so shutdown */
	ino_t ino;      /* removes it only if it is still ours */
};

/* Create the socket's directory if missing (0755), refuse to replace
 * anything but a stale socket (a live one means another agentd runs),
 * bind with 0660 permissions from the start, chown root:admin_gid (when
 * root; otherwise only the group, best effort), listen. Non-blocking,
 * close-on-exec. */
int agentd_local_listen(const struct vmlet_config *cfg, struct agentd_local_listener *out,
			struct vmlet_err *err);

/* Close the fd and unlink the path if it is still the socket we created.
 * Returns -1 with err when the unlink was refused (e.g. after the privilege
 * drop the directory is no longer writable). */
int agentd_local_close(struct agentd_local_listener *l, struct vmlet_err *err);

#endif
