/* agentd's TLS server side (wolfSSL): TLS 1.3 only, client certificate
 * required and verified against the configured CA (and CRL when set),
 * non-blocking handshakes driven by the event loop. */
#ifndef VMLET_AGENTD_TLS_H
#define VMLET_AGENTD_TLS_H

#include <stddef.h>
#include <sys/types.h>

#include "shared/config.h"
#include "shared/err.h"

struct agentd_tls;      /* server context (WOLFSSL_CTX) */
struct agentd_tls_conn; /* one connection (WOLFSSL) */

enum agentd_tls_io {
	AGENTD_TLS_OK = 0,          /* done / bytes moved */
	AGENTD_TLS_WANT_READ = 1,   /* wait for EPOLLIN and call again */
	AGENTD_TLS_WANT_WRITE = 2,  /* wait for EPOLLOUT and call again */
	AGENTD_TLS_CLOSED = 3,      /* peer closed cleanly */
	AGENTD_TLS_ERROR = -1,      /* fatal; err filled (e.g. bad/missing client cert) */
};

/* Load CA, cert, key (and CRL) named in cfg; must run before the privilege
 * drop (the key is root-only). */
int agentd_tls_init(const struct vmlet_config *cfg, struct agentd_tls **out, struct vmlet_err *err);
void agentd_tls_free(struct agentd_tls *tls);

struct agentd_tls_conn *agentd_tls_conn_new(struct agentd_tls *tls, int fd, struct vmlet_err *err);
void agentd_tls_conn_free(struct agentd_tls_conn *c); /* does not close fd */

int agentd_tls_handshake(struct agentd_tls_conn *c, struct vmlet_err *err);
/* *n = bytes read/written when AGENTD_TLS_OK. */
int agentd_tls_read(struct agentd_tls_conn *c, void *buf, size_t len, size_t *n, struct vmlet_err *err);
int agentd_tls_write(struct agentd_tls_conn *c, const void *buf, size_t len, size_t *n,
		     struct vmlet_err *err);
/* Bytes already decrypted and buffered inside wolfSSL (read them before
 * waiting on epoll again). */
int agentd_tls_pending(struct agentd_tls_conn *c);
void agentd_tls_shutdown(struct agentd_tls_conn *c);

/* After the handshake: the verified peer's identity, the URI SAN when the
 * certificate has one, else its subject CN. Empty string if none. */
const char *agentd_tls_peer_identity(struct agentd_tls_conn *c);
/* All identities of the peer (CN and every URI SAN), for matching against
 * cfg->coordinators; returns 1 if any one of them is listed. */
int agentd_tls_peer_is_coordinator(struct agentd_tls_conn *c, const struct vmlet_config *cfg);

#endif
