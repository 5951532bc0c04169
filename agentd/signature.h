/* Signed desired state (issue 5): an Ed25519 signature (wolfSSL) over the
 * exact serialized DesiredState bytes, checked against trusted public keys.
 *
 * What is signed: the canonical protobuf-c encoding of the DesiredState,
 * i.e. vmlet_pack() of the message. agentd does not keep the bytes it
 * received for the sub-message; it re-packs the decoded message. That
 * gives back the sender's bytes whenever the sender wrote the canonical
 * encoding (fields in field-number order, proto3 defaults omitted, no
 * unknown fields): protobuf-c serializes deterministically that way, and
 * strict decoding (rpc/strict.h) refuses unknown fields, so nothing the
 * sender wrote can be dropped by the round trip. vmletctl signs exactly
 * these bytes (ctl/sign.h); another signer must produce the same encoding.
 *
 * Trusted keys: <dir>/<key_id>.pub, where key_id follows the id rule
 * ([a-z0-9-]{1,63}, no leading/trailing '-'; anything else, "../x"
 * included, is 400 before any file is touched). The file holds the raw
 * 32-byte Ed25519 public key in standard base64 (44 characters, padded),
 * optionally followed by one newline -- what `vmletctl keys gen` writes to
 * PREFIX.pub. The directory and the file must be owned by root and not
 * writable by group or others (checked with fstat on the opened fds; the
 * file is opened beneath the directory fd, never through a symlink);
 * otherwise every signature is refused. */
#ifndef VMLET_AGENTD_SIGNATURE_H
#define VMLET_AGENTD_SIGNATURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc/agent.pb-c.h"
#include "shared/err.h"

#define AGENTD_ED25519_PUB_LEN 32
#define AGENTD_ED25519_SIG_LEN 64
#define AGENTD_PUBKEY_FILE_MAX 256

/* Verify sig over data with the trusted key sig->key_id from keys_dir.
 * 0 when it verifies; -1 + err otherwise: 400 malformed key id, 403
 * (naming why) unknown key id, signature not 64 bytes, bad signature,
 * malformed or unsafe key file or directory, no directory configured. */
int agentd_signature_verify(const uint8_t *data, size_t len, const Vmlet__V1__Signature *sig,
			    const char *keys_dir, struct vmlet_err *err);

/* The bytes a signature covers: vmlet_pack(ds). Free *out. */
int agentd_signature_payload(const Vmlet__V1__DesiredState *ds, uint8_t **out, size_t *len,
			     struct vmlet_err *err);

/* The Reconcile rule: no signature -> refused in production (403
 * "signature_required(production)"), accepted in development; a signature
 * -> it must verify in either mode. */
int agentd_signature_check(const Vmlet__V1__DesiredState *ds, const Vmlet__V1__Signature *sig,
			   const char *keys_dir, bool production, struct vmlet_err *err);

/* Parse a .pub file's text (see above). name labels messages. 0 / -1 + 403. */
int agentd_pubkey_parse(const char *text, size_t len, const char *name,
			uint8_t out[AGENTD_ED25519_PUB_LEN], struct vmlet_err *err);

#endif
