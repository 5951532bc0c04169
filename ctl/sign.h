/* vmletctl's side of the signed desired state (agentd/signature.h has
 * agentd's side and the rules): Ed25519 key pairs and signatures, with
 * wolfSSL.
 *
 * Files written by `vmletctl keys gen --out PREFIX`:
 *   PREFIX.key  the 32-byte Ed25519 private seed, standard base64 + "\n",
 *               mode 0600 from the moment it exists (written atomically)
 *   PREFIX.pub  the 32-byte public key, standard base64 + "\n", mode 0644:
 *               install it as <trusted keys dir>/<key id>.pub on the nodes
 * A private key file readable by group or others is refused, as ssh does.
 *
 * What is signed: ctl_sign_payload(ds) = vmlet_pack(ds), the canonical
 * protobuf-c encoding of the decoded, validated DesiredState -- the bytes
 * vmletctl sends inside ReconcileRequest, and the bytes agentd gets back by
 * re-packing what it decoded. */
#ifndef VMLET_CTL_SIGN_H
#define VMLET_CTL_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc/agent.pb-c.h"
#include "shared/err.h"

#define CTL_ED25519_SEED_LEN 32
#define CTL_ED25519_PUB_LEN 32
#define CTL_ED25519_SIG_LEN 64
#define CTL_KEY_FILE_MAX 256
#define CTL_SIG_B64_MAX 96 /* base64 of 64 bytes is 88 characters */

/* Write PREFIX.key and PREFIX.pub. Refuses (409) when either exists,
 * unless force. */
int ctl_keys_gen(const char *prefix, bool force, struct vmlet_err *err);

/* Sign data with the private key file at key_path. */
int ctl_sign_bytes(const char *key_path, const uint8_t *data, size_t len,
		   uint8_t sig[CTL_ED25519_SIG_LEN], struct vmlet_err *err);

/* The bytes a desired-state signature covers (free *out). */
int ctl_sign_payload(const Vmlet__V1__DesiredState *ds, uint8_t **out, size_t *len,
		     struct vmlet_err *err);

/* ctl_sign_bytes over ctl_sign_payload(ds). */
int ctl_sign_desired_state(const char *key_path, const Vmlet__V1__DesiredState *ds,
			   uint8_t sig[CTL_ED25519_SIG_LEN], struct vmlet_err *err);

/* Standard base64 of a signature, NUL-terminated, no newline. */
int ctl_sig_base64(const uint8_t sig[CTL_ED25519_SIG_LEN], char out[CTL_SIG_B64_MAX],
		   struct vmlet_err *err);

#endif
