/* Key, CSR and certificate work with wolfSSL (ECDSA P-256, SHA-256).
 * Keys are written 0600 through vmlet_write_atomic and never logged. */
#ifndef VMLET_CERTS_H
#define VMLET_CERTS_H

#include <stddef.h>

#include "shared/err.h"

#define VMLET_CERTS_MAX_SANS 16

/* `vmletctl certs init`: a development CA, a node certificate (serverAuth +
 * clientAuth; SAN DNS node_id, DNS localhost, IP 127.0.0.1, plus extra_sans
 * entries "DNS:name", "IP:a.b.c.d", "URI:spiffe://..." or a bare name taken
 * as DNS) and one coordinator client certificate (clientAuth; CN
 * "coordinator", SAN URI "vmlet://coordinator"). Files in dir (created
 * 0700): ca.pem ca.key node.pem node.key coordinator.pem coordinator.key.
 * Refuses to overwrite existing files unless force. */
int vmlet_certs_init_dev(const char *dir, const char *node_id, const char *const *extra_sans,
			 size_t n_sans, int force, struct vmlet_err *err);

/* A new P-256 key and a certificate for it signed by (ca_cert, ca_key),
 * with the given CN, SANs (same syntax as above), validity in days and
 * usage: 1 = server+client, 2 = client only. Writes cert_path and key_path. */
int vmlet_certs_issue(const char *ca_cert, const char *ca_key, const char *cn,
		      const char *const *sans, size_t n_sans, int days, int usage,
		      const char *cert_path, const char *key_path, struct vmlet_err *err);

#endif
