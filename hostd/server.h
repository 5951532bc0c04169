/* hostd's NNG rep0 endpoint: ipc://<hostd_socket_dir>/hostd.sock, the
 * peer-uid check on every pipe, and cfg->hostd_workers contexts serving
 * requests concurrently. */
#ifndef HOSTD_SERVER_H
#define HOSTD_SERVER_H

#include "hostd/hostd.h"
#include "shared/config.h"
#include "shared/err.h"

struct hostd_server;

/* Create the socket dir (0750 root:<agentd group>), replace a stale socket
 * (refuse when another hostd answers on it), listen (socket 0660
 * root:<agentd group>, NNG_OPT_RECVMAXSZ = cfg->max_frame) and start the
 * workers. env must stay valid until hostd_server_stop returns. */
int hostd_server_start(struct hostd_server **out, const struct vmlet_config *cfg,
		       const struct hostd_env *env, struct vmlet_err *err);

/* Close the socket, wait for in-flight callbacks, remove the socket file. */
void hostd_server_stop(struct hostd_server *srv);

#endif
