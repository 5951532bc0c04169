#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/ed25519.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include "agentd/signature.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rpc/strict.h"
#include "shared/cleanup.h"
#include "shared/safefile.h"
#include "shared/validate.h"

#define PUB_B64_LEN 44 /* base64 of 32 bytes, one '=' of padding */

int agentd_pubkey_parse(const char *text, size_t len, const char *name,
			uint8_t out[AGENTD_ED25519_PUB_LEN], struct vmlet_err *err)
{
	byte buf[AGENTD_ED25519_PUB_LEN + 4];
	word32 outlen = sizeof(buf);

	if (len > 0 && text[len - 1] == '\n')
		len--;
	/* Exactly one canonical encoding is accepted: wolfSSL's decoder
	 * skips line breaks and stops at padding, so check shape first. */
	if (len != PUB_B64_LEN || text[PUB_B64_LEN - 1] != '=' ||
	    strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") !=
		    PUB_B64_LEN - 1)
		return vmlet_err_set(err, VMLET_E_FORBIDDEN, 0,
				     "%s: not an Ed25519 public key (expected one line of base64 "
				     "encoding 32 bytes)",
				     name);
	if (Base64_Decode((const byte *)text, (word32)len, buf, &outlen) != 0 ||
	    outlen != AGENTD_ED25519_PUB_LEN)
		return vmlet_err_set(err, VMLET_E_FORBIDDEN, 0,
				     "%s: not an Ed25519 public key (base64 does not decode to 32 "
				     "bytes)",
				     name);
	memcpy(out, buf, AGENTD_ED25519_PUB_LEN);
	return 0;
}

/* Root-owned and not writable by group or others: only root can have
 * put a key there. */
static int check_owner_mode(const struct stat *st, const char *what, const char *name,
			    struct vmlet_err *err)
{
	if (st->st_uid != 0)
		return vmlet_err_set(err, VMLET_E_FORBIDDEN, 0,
				     "%s %s: owned by uid %u, not root; refusing to trust its keys",
				     what, name, (unsigned)st->st_uid);
	if (st->st_mode & (S_IWGRP | S_IWOTH))
		return vmlet_err_set(err, VMLET_E_FORBIDDEN, 0,
				     "%s %s: writable by %s (mode %04o); refusing to trust its keys",
				     what, name, st->st_mode & S_IWOTH ? "others" : "its group",
				     (unsigned)(st->st_mode & 07777));
	return 0;
}

static int load_trusted_key(const char *dir, const char *key_id,
			    uint8_t pub[AGENTD_ED25519_PUB_LEN], struct vmlet_err *err)
{
	_cleanup_close_ int dfd = -1;
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *text = NULL;
	char file[VMLET_ERR_MSG_MAX / 2], name[80];
	struct stat st;
	size_t len = 0;

	if (!dir || !dir[0])
		return vmlet_err_set(err, VMLET_E_FORBIDDEN, 0,
				     "signature: no trusted keys directory is configured");
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return vmlet_err_sys(err, VMLET_E_FORBIDDEN, "trusted keys directory %s: open", dir);
	if (fstat(dfd, &st) < 0)
		return vmlet_err_sys(err, VMLET_E_FORBIDDEN, "trusted keys directory %s: fstat", dir);
	if (check_owner_mode(&st, "trusted keys directory", dir, err) < 0)
		return -1;
	/* key_id is a checked id: the name has no '/' and is not "..". */
	snprintf(name, sizeof(name), "%s.pub", key_id);
	snprintf(file, sizeof(file), "%s/%s", dir, name);
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return vmlet_err_set(err, VMLET_E_FORBIDDEN, ENOENT,
				     "signature.key_id: unknown key id \"%s\" (no %s)", key_id, file);
	if (fd < 0 && errno == ELOOP)
		return vmlet_err_set(err, VMLET_E_FORBIDDEN, ELOOP,
				     "trusted key %s: is a symbolic link (refused)", file);
	if (fd < 0)
		return vmlet_err_sys(err, VMLET_E_FORBIDDEN, "trusted key %s: open", file);
	if (fstat(fd, &st) < 0)
		return vmlet_err_sys(err, VMLET_E_FORBIDDEN, "trusted key %s: fstat", file);
	if (!S_ISREG(st.st_mode))
		return vmlet_err_set(err, VMLET_E_FORBIDDEN, 0,
				     "trusted key %s: not a regular file", file);
	if (check_owner_mode(&st, "trusted key", file, err) < 0)
		return -1;
	if (vmlet_read_fd(fd, file, AGENTD_PUBKEY_FILE_MAX, &text, &len, err) < 0) {
		if (err)
			err->code = VMLET_E_FORBIDDEN;
		return -1;
	}
	return agentd_pubkey_parse(text, len, file, pub, err);
}

int agentd_signature_verify(const uint8_t *data, size_t len, const Vmlet__V1__Signature *sig,
			    const char *keys_dir, struct vmlet_err *err)
{
	uint8_t pub[AGENTD_ED25519_PUB_LEN];
	ed25519_key key;
	int ret, ok = 0;

	if (!sig)
		return vmlet_err_set(err, VMLET_E_FORBIDDEN, 0, "signature: missing");
	if (vmlet_validate_id("signature.key_id", sig->key_id ? sig->key_id : "", err) < 0)
		return -1; /* 400: a malformed id never reaches the file system */
	if (sig->ed25519.len != AGENTD_ED25519_SIG_LEN)
		return vmlet_err_set(err, VMLET_E_FORBIDDEN, 0,
				     "signature.ed25519: bad length %zu bytes, an Ed25519 signature "
				     "is %d",
				     sig->ed25519.len, AGENTD_ED25519_SIG_LEN);
	if (len > UINT32_MAX)
		return vmlet_err_set(err, VMLET_E_FORBIDDEN, 0,
				     "signature: signed data of %zu bytes is too large", len);
	if (load_trusted_key(keys_dir, sig->key_id, pub, err) < 0)
		return -1;
	if ((ret = wc_ed25519_init(&key)) != 0)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "signature: wc_ed25519_init: %d", ret);
	ret = wc_ed25519_import_public(pub, sizeof(pub), &key);
	if (ret != 0) {
		wc_ed25519_free(&key);
		return vmlet_err_set(err, VMLET_E_FORBIDDEN, 0,
				     "signature: trusted key \"%s\" is not a valid Ed25519 public key "
				     "(%d)",
				     sig->key_id, ret);
	}
	ret = wc_ed25519_verify_msg(sig->ed25519.data, (word32)sig->ed25519.len, data, (word32)len,
				    &ok, &key);
	wc_ed25519_free(&key);
	if (ret != 0 || ok != 1)
		return vmlet_err_set(err, VMLET_E_FORBIDDEN, 0,
				     "signature: bad signature: does not verify with key \"%s\" over "
				     "the %zu bytes of the desired state",
				     sig->key_id, len);
	return 0;
}

int agentd_signature_payload(const Vmlet__V1__DesiredState *ds, uint8_t **out, size_t *len,
			     struct vmlet_err *err)
{
	return vmlet_pack(&ds->base, out, len, err);
}

int agentd_signature_check(const Vmlet__V1__DesiredState *ds, const Vmlet__V1__Signature *sig,
			   const char *keys_dir, bool production, struct vmlet_err *err)
{
	_cleanup_free_ uint8_t *bytes = NULL;
	size_t len = 0;

	if (!sig) {
		if (production)
			return vmlet_err_set(err, VMLET_E_FORBIDDEN, 0,
					     "signature_required(production): this node accepts "
					     "only a signed desired state");
		return 0;
	}
	if (agentd_signature_payload(ds, &bytes, &len, err) < 0)
		return -1;
	return agentd_signature_verify(bytes, len, sig, keys_dir, err);
}
