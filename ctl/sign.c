#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/ed25519.h>
#include <wolfssl/wolfcrypt/random.h>

#include "ctl/sign.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rpc/strict.h"
#include "shared/cleanup.h"
#include "shared/safefile.h"

#define KEY_B64_LEN 44 /* base64 of 32 bytes */

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* base64 of 32 bytes + "\n" into out (at least KEY_B64_LEN + 2 bytes). */
static int encode32(const uint8_t in[32], char *out, size_t size, struct vmlet_err *err)
{
	word32 n = (word32)size - 1;

	if (Base64_Encode_NoNl(in, 32, (byte *)out, &n) != 0 || n != KEY_B64_LEN ||
	    n + 2 > size)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "base64 encoding failed");
	out[n] = '\n';
	out[n + 1] = '\0';
	return 0;
}

/* One line of canonical base64 encoding 32 bytes. */
static int decode32(const char *text, size_t len, const char *name, uint8_t out[32],
		    struct vmlet_err *err)
{
	byte buf[36];
	word32 n = sizeof(buf);
	int rc = 0;

	if (len > 0 && text[len - 1] == '\n')
		len--;
	if (len != KEY_B64_LEN || text[KEY_B64_LEN - 1] != '=' ||
	    strspn(text, b64_alphabet) != KEY_B64_LEN - 1 ||
	    Base64_Decode((const byte *)text, (word32)len, buf, &n) != 0 || n != 32)
		rc = vmlet_err_set(err, VMLET_E_INVALID, 0,
				   "%s: not an Ed25519 key file (expected one line of base64 "
				   "encoding 32 bytes)",
				   name);
	else
		memcpy(out, buf, 32);
	explicit_bzero(buf, sizeof(buf));
	return rc;
}

static int wc_fail(struct vmlet_err *err, const char *what, int ret)
{
	return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "%s failed (wolfSSL error %d)", what, ret);
}

static int file_path(char *buf, size_t size, const char *prefix, const char *ext,
		     struct vmlet_err *err)
{
	int n = snprintf(buf, size, "%s%s", prefix, ext);

	if (n < 0 || (size_t)n >= size)
		return vmlet_err_set(err, VMLET_E_INVALID, ENAMETOOLONG, "%s%s: path too long", prefix,
				     ext);
	return 0;
}

int ctl_keys_gen(const char *prefix, bool force, struct vmlet_err *err)
{
	char key_path[PATH_MAX], pub_path[PATH_MAX];
	char key_text[KEY_B64_LEN + 2], pub_text[KEY_B64_LEN + 2];
	uint8_t seed[CTL_ED25519_SEED_LEN], pub[CTL_ED25519_PUB_LEN];
	word32 seed_len = sizeof(seed), pub_len = sizeof(pub);
	struct stat st;
	ed25519_key key;
	WC_RNG rng;
	int ret, rc = -1;

	if (!prefix || !prefix[0])
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "--out: empty prefix");
	if (file_path(key_path, sizeof(key_path), prefix, ".key", err) < 0 ||
	    file_path(pub_path, sizeof(pub_path), prefix, ".pub", err) < 0)
		return -1;
	if (!force) {
		if (lstat(key_path, &st) == 0 || lstat(pub_path, &st) == 0)
			return vmlet_err_set(err, VMLET_E_CONFLICT, EEXIST,
					     "%s: exists (use --force to replace the key pair)",
					     lstat(key_path, &st) == 0 ? key_path : pub_path);
	}
	if ((ret = wc_InitRng(&rng)) != 0)
		return wc_fail(err, "wc_InitRng", ret);
	if ((ret = wc_ed25519_init(&key)) != 0) {
		wc_FreeRng(&rng);
		return wc_fail(err, "wc_ed25519_init", ret);
	}
	if ((ret = wc_ed25519_make_key(&rng, ED25519_KEY_SIZE, &key)) != 0) {
		wc_fail(err, "wc_ed25519_make_key", ret);
		goto out;
	}
	if ((ret = wc_ed25519_export_private_only(&key, seed, &seed_len)) != 0 ||
	    seed_len != sizeof(seed) || (ret = wc_ed25519_export_public(&key, pub, &pub_len)) != 0 ||
	    pub_len != sizeof(pub)) {
		wc_fail(err, "exporting the Ed25519 key", ret);
		goto out;
	}
	if (encode32(seed, key_text, sizeof(key_text), err) < 0 ||
	    encode32(pub, pub_text, sizeof(pub_text), err) < 0)
		goto out;
	/* The private key is created 0600 (temp file, then rename): it is
	 * never readable by anyone else, not even for a moment. */
	if (vmlet_write_atomic(key_path, key_text, strlen(key_text), 0600, err) < 0 ||
	    vmlet_write_atomic(pub_path, pub_text, strlen(pub_text), 0644, err) < 0)
		goto out;
	rc = 0;
out:
	explicit_bzero(seed, sizeof(seed));
	explicit_bzero(key_text, sizeof(key_text));
	wc_ed25519_free(&key);
	wc_FreeRng(&rng);
	return rc;
}

/* Read the private seed; the file must not be readable by group/others. */
static int load_seed(const char *path, uint8_t seed[CTL_ED25519_SEED_LEN], struct vmlet_err *err)
{
	_cleanup_close_ int fd = -1;
	char *text = NULL;
	size_t len = 0;
	struct stat st;
	int rc;

	fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return vmlet_err_sys(err, VMLET_E_INVALID, "%s: open", path);
	if (fstat(fd, &st) < 0)
		return vmlet_err_sys(err, VMLET_E_INVALID, "%s: fstat", path);
	if (S_ISREG(st.st_mode) && (st.st_mode & 077))
		return vmlet_err_set(err, VMLET_E_FORBIDDEN, 0,
				     "%s: private key is accessible by group or others (mode %04o); "
				     "chmod 600 it",
				     path, (unsigned)(st.st_mode & 07777));
	if (vmlet_read_fd(fd, path, CTL_KEY_FILE_MAX, &text, &len, err) < 0)
		return -1;
	rc = decode32(text, len, path, seed, err);
	explicit_bzero(text, len);
	free(text);
	return rc;
}

int ctl_sign_bytes(const char *key_path, const uint8_t *data, size_t len,
		   uint8_t sig[CTL_ED25519_SIG_LEN], struct vmlet_err *err)
{
	uint8_t seed[CTL_ED25519_SEED_LEN], pub[CTL_ED25519_PUB_LEN];
	word32 sig_len = CTL_ED25519_SIG_LEN;
	ed25519_key key;
	int ret, rc = -1;

	if (len > UINT32_MAX)
		return vmlet_err_set(err, VMLET_E_TOO_LARGE, 0, "%zu bytes are too many to sign", len);
	if (load_seed(key_path, seed, err) < 0)
		return -1;
	if ((ret = wc_ed25519_init(&key)) != 0) {
		explicit_bzero(seed, sizeof(seed));
		return wc_fail(err, "wc_ed25519_init", ret);
	}
	/* The seed alone is stored; derive the public half, then import both. */
	if ((ret = wc_ed25519_import_private_only(seed, sizeof(seed), &key)) != 0 ||
	    (ret = wc_ed25519_make_public(&key, pub, sizeof(pub))) != 0 ||
	    (ret = wc_ed25519_import_private_key(seed, sizeof(seed), pub, sizeof(pub), &key)) != 0) {
		wc_fail(err, "loading the Ed25519 private key", ret);
		goto out;
	}
	if ((ret = wc_ed25519_sign_msg(data, (word32)len, sig, &sig_len, &key)) != 0 ||
	    sig_len != CTL_ED25519_SIG_LEN) {
		wc_fail(err, "wc_ed25519_sign_msg", ret);
		goto out;
	}
	rc = 0;
out:
	explicit_bzero(seed, sizeof(seed));
	wc_ed25519_free(&key);
	return rc;
}

int ctl_sign_payload(const Vmlet__V1__DesiredState *ds, uint8_t **out, size_t *len,
		     struct vmlet_err *err)
{
	return vmlet_pack(&ds->base, out, len, err);
}

int ctl_sign_desired_state(const char *key_path, const Vmlet__V1__DesiredState *ds,
			   uint8_t sig[CTL_ED25519_SIG_LEN], struct vmlet_err *err)
{
	_cleanup_free_ uint8_t *bytes = NULL;
	size_t len = 0;

	if (ctl_sign_payload(ds, &bytes, &len, err) < 0)
		return -1;
	return ctl_sign_bytes(key_path, bytes, len, sig, err);
}

int ctl_sig_base64(const uint8_t sig[CTL_ED25519_SIG_LEN], char out[CTL_SIG_B64_MAX],
		   struct vmlet_err *err)
{
	word32 n = CTL_SIG_B64_MAX - 1;

	if (Base64_Encode_NoNl(sig, CTL_ED25519_SIG_LEN, (byte *)out, &n) != 0 ||
	    n >= CTL_SIG_B64_MAX)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "base64 encoding failed");
	out[n] = '\0';
	return 0;
}
