/* agentd's TLS server side (wolfSSL).
 *
 * Policy, all fixed here rather than left to defaults:
 * - TLS 1.3 only (wolfTLSv1_3_server_method: a 1.2 ClientHello is refused).
 * - A client certificate is required and must chain to the configured CA
 *   (and not be revoked when a CRL is configured); a certificate whose
 *   extendedKeyUsage excludes clientAuth is refused too.
 * - No session tickets and no session cache: every connection presents
 *   and proves its client certificate again, so a revoked or removed
 *   coordinator cannot ride on an old session.
 * - Our own send/recv callbacks on the fd given to wolfSSL_set_fd: the
 *   same non-blocking behaviour as wolfSSL's, plus MSG_NOSIGNAL so a peer
 *   that vanishes mid-write cannot kill agentd with SIGPIPE.
 * Identity (CN and URI SANs) is read once, right after the handshake, from
 * the verified peer certificate. */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfio.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/openssl/x509v3.h>

#include "agentd/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shared/cleanup.h"
#include "shared/log.h"
#include "shared/safefile.h"

#define TLS_MAX_URIS 16
#define KEY_FILE_MAX (64 * 1024)
#define TLS_ID_MAX 256

struct agentd_tls {
	WOLFSSL_CTX *ctx;
};

struct agentd_tls_conn {
	WOLFSSL *ssl;
	int fd;
	int verified;                        /* handshake completed, identity read */
	char cn[TLS_ID_MAX];                 /* subject CN, "" if none */
	char uris[TLS_MAX_URIS][TLS_ID_MAX]; /* URI SANs, in certificate order */
	size_t n_uris;
};

/* ---- errors ---------------------------------------------------------------- */

static int tls_fail(struct vmlet_err *err, int code, const char *what, int wolf_err)
{
	char buf[WOLFSSL_MAX_ERROR_SZ];

	wolfSSL_ERR_error_string((unsigned long)wolf_err, buf);
	return vmlet_err_set(err, code, 0, "%s: wolfSSL error %d (%s)", what, wolf_err, buf);
}

/* wolfSSL's file loaders return WOLFSSL_FAILURE or WOLFSSL_BAD_FILE; the
 * reason (e.g. "ASN no PEM Header Error") is in the per-thread error
 * queue, cleared before each call. */
static int load_fail(struct vmlet_err *err, const char *what, const char *path, const char *fn,
		     int ret)
{
	unsigned long reason = wolfSSL_ERR_get_error();
	char buf[WOLFSSL_MAX_ERROR_SZ];

	if (reason)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "tls %s %s: %s: wolfSSL error -%lu (%s)",
				     what, path, fn, reason, wolfSSL_ERR_error_string(reason, buf));
	if (ret < 0 && ret != WOLFSSL_BAD_FILE)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "tls %s %s: %s: wolfSSL error %d (%s)",
				     what, path, fn, ret,
				     wolfSSL_ERR_error_string((unsigned long)ret, buf));
	return vmlet_err_set(err, VMLET_E_INVALID, 0, "tls %s %s: %s failed (returned %d)", what,
			     path, fn, ret);
}

/* wolfSSL says nothing useful about a file it cannot open: open it first
 * ourselves so the error carries errno. */
static int check_readable(const char *what, const char *path, struct vmlet_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0)
		return vmlet_err_sys(err, errno == ENOENT ? VMLET_E_NOT_FOUND : VMLET_E_INVALID,
				     "tls %s %s: open", what, path);
	close(fd);
	wolfSSL_ERR_clear_error();
	return 0;
}

/* ---- I/O callbacks ----------------------------------------------------------- */

static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
	int fd = *(int *)ctx;
	ssize_t n = recv(fd, buf, (size_t)sz, 0);

	(void)ssl;
	if (n > 0)
		return (int)n;
	if (n == 0)
		return WOLFSSL_CBIO_ERR_CONN_CLOSE;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return WOLFSSL_CBIO_ERR_WANT_READ;
	if (errno == EINTR)
		return WOLFSSL_CBIO_ERR_ISR;
	if (errno == ECONNRESET)
		return WOLFSSL_CBIO_ERR_CONN_RST;
	return WOLFSSL_CBIO_ERR_GENERAL;
}

static int io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
	int fd = *(int *)ctx;
	ssize_t n = send(fd, buf, (size_t)sz, MSG_NOSIGNAL);

	(void)ssl;
	if (n >= 0)
		return (int)n;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return WOLFSSL_CBIO_ERR_WANT_WRITE;
	if (errno == EINTR)
		return WOLFSSL_CBIO_ERR_ISR;
	if (errno == ECONNRESET)
		return WOLFSSL_CBIO_ERR_CONN_RST;
	if (errno == EPIPE)
		return WOLFSSL_CBIO_ERR_CONN_CLOSE;
	return WOLFSSL_CBIO_ERR_GENERAL;
}

/* ---- context ------------------------------------------------------------------- */

/* The key must not be readable by anyone but its owner; agentd reads it
 * as root before dropping privileges, so a looser mode is a deployment
 * mistake worth a warning (not fatal: dev setups on shared dirs). */
static void warn_key_mode(const char *path)
{
	char q[VLOG_STR_MAX];
	struct stat st;

	if (stat(path, &st) == 0 && (st.st_mode & 077))
		vlog(VLOG_WARN, "tls_key_mode", "path=%s mode=%04o want=0600",
		     vlog_str(path, q, sizeof(q)), (unsigned)(st.st_mode & 07777));
}

static int load_crl(WOLFSSL_CTX *ctx, const char *path, struct vmlet_err *err)
{
	int ret = wolfSSL_CTX_EnableCRL(ctx, WOLFSSL_CRL_CHECKALL);

	if (ret != WOLFSSL_SUCCESS)
		return tls_fail(err, VMLET_E_INTERNAL, "wolfSSL_CTX_EnableCRL", ret);
	if (check_readable("crl", path, err) < 0)
		return -1;
	ret = wolfSSL_CTX_LoadCRLFile(ctx, path, WOLFSSL_FILETYPE_PEM);
	if (ret != WOLFSSL_SUCCESS) {
		wolfSSL_ERR_clear_error();
		ret = wolfSSL_CTX_LoadCRLFile(ctx, path, WOLFSSL_FILETYPE_ASN1);
	}
	if (ret != WOLFSSL_SUCCESS)
		return load_fail(err, "crl", path, "wolfSSL_CTX_LoadCRLFile (PEM or DER)", ret);
	return 0;
}

/* The uncompressed EC point of a public key in SubjectPublicKeyInfo DER. */
static int spki_point(const unsigned char *spki, int len, unsigned char *out, word32 *out_len)
{
	ecc_key pub;
	word32 idx = 0;
	int ret;

	if (wc_ecc_init(&pub) != 0)
		return -1;
	ret = wc_EccPublicKeyDecode(spki, &idx, &pub, (word32)len);
	if (ret == 0)
		ret = wc_ecc_export_x963(&pub, out, out_len);
	wc_ecc_free(&pub);
	return ret == 0 ? 0 : -1;
}

/* wolfSSL 5.5.4's wolfSSL_CTX_check_private_key accepts any EC key for an
 * EC certificate (measured), so a node.key/node.pem mix-up would only show
 * up as failing handshakes. Compare the public points ourselves: the one
 * derived from the private key and the one in the certificate. Non-EC keys
 * are left to wolfSSL's own check. */
static int check_ec_key_matches(WOLFSSL_CTX *ctx, const char *pem, size_t pem_len,
				const struct vmlet_config *cfg, struct vmlet_err *err)
{
	unsigned char der[4096], spki[1024], from_key[160], from_cert[160];
	word32 idx = 0, key_pt_len = sizeof(from_key), cert_pt_len = sizeof(from_cert);
	WOLFSSL_X509 *x = wolfSSL_CTX_get0_certificate(ctx); /* owned by ctx */
	int der_len, spki_len = sizeof(spki), rc = 0, ret;
	ecc_key priv;
	WC_RNG rng;

	der_len = wc_KeyPemToDer((const unsigned char *)pem, (int)pem_len, der, sizeof(der), NULL);
	if (der_len <= 0)
		return 0; /* wolfSSL accepted a form we do not parse here */
	if (wc_ecc_init(&priv) != 0) {
		explicit_bzero(der, sizeof(der));
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "wc_ecc_init failed");
	}
	if (wc_EccPrivateKeyDecode(der, &idx, &priv, (word32)der_len) != 0)
		goto out; /* not an EC key */
	if ((ret = wc_InitRng(&rng)) != 0) {
		rc = vmlet_err_set(err, VMLET_E_INTERNAL, 0, "wc_InitRng failed: %d", ret);
		goto out;
	}
	ret = wc_ecc_make_pub_ex(&priv, NULL, &rng);
	if (ret == 0)
		ret = wc_ecc_export_x963(&priv, from_key, &key_pt_len);
	wc_FreeRng(&rng);
	if (ret != 0) {
		rc = vmlet_err_set(err, VMLET_E_INVALID, 0,
				   "tls key %s: cannot derive its public key: error %d", cfg->tls_key,
				   ret);
		goto out;
	}
	if (!x || wolfSSL_X509_get_pubkey_buffer(x, spki, &spki_len) != WOLFSSL_SUCCESS ||
	    spki_point(spki, spki_len, from_cert, &cert_pt_len) < 0 ||
	    cert_pt_len != key_pt_len || memcmp(from_key, from_cert, key_pt_len) != 0)
		rc = vmlet_err_set(err, VMLET_E_INVALID, 0,
				   "tls key %s does not match the public key of cert %s", cfg->tls_key,
				   cfg->tls_cert);
out:
	wc_ecc_free(&priv);
	explicit_bzero(der, sizeof(der));
	return rc;
}

static int load_key(WOLFSSL_CTX *ctx, const struct vmlet_config *cfg, struct vmlet_err *err)
{
	_cleanup_free_ char *pem = NULL;
	size_t len = 0;
	int ret, rc = 0;

	if (vmlet_read_file(cfg->tls_key, KEY_FILE_MAX, &pem, &len, err) < 0)
		return vmlet_err_prefix(err, "tls key: ");
	wolfSSL_ERR_clear_error();
	ret = wolfSSL_CTX_use_PrivateKey_buffer(ctx, (const unsigned char *)pem, (long)len,
						WOLFSSL_FILETYPE_PEM);
	if (ret != WOLFSSL_SUCCESS) {
		rc = load_fail(err, "key", cfg->tls_key, "wolfSSL_CTX_use_PrivateKey_buffer", ret);
	} else if ((ret = wolfSSL_CTX_check_private_key(ctx)) != WOLFSSL_SUCCESS) {
		tls_fail(err, VMLET_E_INVALID, "wolfSSL_CTX_check_private_key", ret);
		rc = vmlet_err_prefix(err, "tls key %s does not match cert %s: ", cfg->tls_key,
				      cfg->tls_cert);
	} else {
		rc = check_ec_key_matches(ctx, pem, len, cfg, err);
	}
	explicit_bzero(pem, len);
	return rc;
}

int agentd_tls_init(const struct vmlet_config *cfg, struct agentd_tls **out, struct vmlet_err *err)
{
	struct agentd_tls *tls;
	WOLFSSL_CTX *ctx;
	int ret;

	*out = NULL;
	if (!cfg->tls_ca[0] || !cfg->tls_cert[0] || !cfg->tls_key[0])
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "tls: ca, cert and key must all be configured");
	if ((ret = wolfSSL_Init()) != WOLFSSL_SUCCESS)
		return tls_fail(err, VMLET_E_INTERNAL, "wolfSSL_Init", ret);
	ctx = wolfSSL_CTX_new(wolfTLSv1_3_server_method());
	if (!ctx)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM,
				     "wolfSSL_CTX_new(TLS 1.3 server) failed");

	if (check_readable("ca", cfg->tls_ca, err) < 0)
		goto fail;
	ret = wolfSSL_CTX_load_verify_locations(ctx, cfg->tls_ca, NULL);
	if (ret != WOLFSSL_SUCCESS) {
		load_fail(err, "ca", cfg->tls_ca, "wolfSSL_CTX_load_verify_locations", ret);
		goto fail;
	}
	if (check_readable("cert", cfg->tls_cert, err) < 0)
		goto fail;
	ret = wolfSSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert);
	if (ret != WOLFSSL_SUCCESS) {
		load_fail(err, "cert", cfg->tls_cert, "wolfSSL_CTX_use_certificate_chain_file", ret);
		goto fail;
	}
	if (load_key(ctx, cfg, err) < 0)
		goto fail;
	warn_key_mode(cfg->tls_key);
	if (cfg->tls_crl[0] && load_crl(ctx, cfg->tls_crl, err) < 0)
		goto fail;

	wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT,
			       NULL);
	wolfSSL_CTX_no_ticket_TLSv13(ctx);
	wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
	/* A write that moved part of the buffer reports it (the event loop
	 * keeps the rest) instead of holding the whole frame hostage. */
	wolfSSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
	wolfSSL_CTX_SetIORecv(ctx, io_recv);
	wolfSSL_CTX_SetIOSend(ctx, io_send);

	tls = calloc(1, sizeof(*tls));
	if (!tls) {
		vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "out of memory");
		goto fail;
	}
	tls->ctx = ctx;
	*out = tls;
	return 0;
fail:
	wolfSSL_CTX_free(ctx);
	return -1;
}

void agentd_tls_free(struct agentd_tls *tls)
{
	if (!tls)
		return;
	wolfSSL_CTX_free(tls->ctx);
	free(tls);
}

/* ---- connections ------------------------------------------------------------------ */

struct agentd_tls_conn *agentd_tls_conn_new(struct agentd_tls *tls, int fd, struct vmlet_err *err)
{
	struct agentd_tls_conn *c = calloc(1, sizeof(*c));
	int ret;

	if (!c) {
		vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "out of memory");
		return NULL;
	}
	c->fd = fd;
	c->ssl = wolfSSL_new(tls->ctx);
	if (!c->ssl) {
		free(c);
		vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "wolfSSL_new failed");
		return NULL;
	}
	/* set_fd points the I/O callbacks' context at the fd. */
	ret = wolfSSL_set_fd(c->ssl, fd);
	if (ret != WOLFSSL_SUCCESS) {
		tls_fail(err, VMLET_E_INTERNAL, "wolfSSL_set_fd", ret);
		agentd_tls_conn_free(c);
		return NULL;
	}
	return c;
}

void agentd_tls_conn_free(struct agentd_tls_conn *c)
{
	if (!c)
		return;
	wolfSSL_free(c->ssl);
	explicit_bzero(c, sizeof(*c));
	free(c);
}

/* Copy an ASN.1 string into dst when it is a plain C string (no embedded
 * NUL: an identity "a\0b" must never compare equal to "a"). */
static int copy_ident(char *dst, const WOLFSSL_ASN1_STRING *s)
{
	if (!s || !s->data || s->length <= 0 || s->length >= TLS_ID_MAX ||
	    memchr(s->data, '\0', (size_t)s->length))
		return 0;
	memcpy(dst, s->data, (size_t)s->length);
	dst[s->length] = '\0';
	return 1;
}

/* Reads CN and URI SANs of the verified peer certificate. */
static int read_identity(struct agentd_tls_conn *c, struct vmlet_err *err)
{
	WOLFSSL_X509 *x = wolfSSL_get_peer_certificate(c->ssl);
	WOLFSSL_GENERAL_NAMES *gns;
	unsigned int eku;
	char cn[TLS_ID_MAX];
	int n;

	if (!x)
		return vmlet_err_set(err, VMLET_E_UNAUTHENTICATED, 0,
				     "TLS handshake finished without a peer certificate");
	/* No EKU means any purpose (RFC 5280 4.2.1.12); if present it must
	 * allow client authentication. */
	eku = wolfSSL_X509_get_extended_key_usage(x);
	if (eku && !(eku & (XKU_SSL_CLIENT | XKU_ANYEKU))) {
		wolfSSL_X509_free(x);
		return vmlet_err_set(err, VMLET_E_UNAUTHENTICATED, 0,
				     "client certificate's extendedKeyUsage does not allow clientAuth");
	}
	n = wolfSSL_X509_NAME_get_text_by_NID(wolfSSL_X509_get_subject_name(x), NID_commonName, cn,
					      sizeof(cn));
	if (n > 0 && (size_t)n < sizeof(cn) && strlen(cn) == (size_t)n)
		memcpy(c->cn, cn, (size_t)n + 1);

	gns = wolfSSL_X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	n = gns ? wolfSSL_sk_GENERAL_NAME_num(gns) : 0;
	for (int i = 0; i < n && c->n_uris < TLS_MAX_URIS; i++) {
		WOLFSSL_GENERAL_NAME *gn = wolfSSL_sk_GENERAL_NAME_value(gns, i);

		if (gn && gn->type == GEN_URI &&
		    copy_ident(c->uris[c->n_uris], gn->d.uniformResourceIdentifier))
			c->n_uris++;
	}
	if (gns)
		wolfSSL_GENERAL_NAMES_free(gns);
	wolfSSL_X509_free(x);
	c->verified = 1;
	return 0;
}

/* Maps a failed wolfSSL call to WANT_*, CLOSED or ERROR. */
static int map_io(struct agentd_tls_conn *c, int ret, const char *what, int fatal_code,
		  struct vmlet_err *err)
{
	int e = wolfSSL_get_error(c->ssl, ret);

	switch (e) {
	case WOLFSSL_ERROR_WANT_READ:
		return AGENTD_TLS_WANT_READ;
	case WOLFSSL_ERROR_WANT_WRITE:
		return AGENTD_TLS_WANT_WRITE;
	case WOLFSSL_ERROR_ZERO_RETURN: /* close_notify */
		return AGENTD_TLS_CLOSED;
	case SOCKET_PEER_CLOSED_E:      /* TCP FIN without close_notify */
		if (c->verified)
			return AGENTD_TLS_CLOSED;
		vmlet_err_set(err, fatal_code, 0, "%s: peer closed the connection", what);
		return AGENTD_TLS_ERROR;
	default:
		tls_fail(err, fatal_code, what, e);
		return AGENTD_TLS_ERROR;
	}
}

int agentd_tls_handshake(struct agentd_tls_conn *c, struct vmlet_err *err)
{
	int ret;

	if (c->verified)
		return AGENTD_TLS_OK;
	ret = wolfSSL_accept(c->ssl);
	if (ret != WOLFSSL_SUCCESS)
		return map_io(c, ret, "TLS handshake", VMLET_E_UNAUTHENTICATED, err);
	if (read_identity(c, err) < 0)
		return AGENTD_TLS_ERROR;
	return AGENTD_TLS_OK;
}

int agentd_tls_read(struct agentd_tls_conn *c, void *buf, size_t len, size_t *n, struct vmlet_err *err)
{
	int ret;

	*n = 0;
	if (!c->verified) {
		vmlet_err_set(err, VMLET_E_INTERNAL, 0, "TLS read before handshake");
		return AGENTD_TLS_ERROR;
	}
	if (len == 0)
		return AGENTD_TLS_OK;
	ret = wolfSSL_read(c->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
	if (ret > 0) {
		*n = (size_t)ret;
		return AGENTD_TLS_OK;
	}
	return map_io(c, ret, "TLS read", VMLET_E_INVALID, err);
}

/* After WANT_WRITE call again with the same buffer: wolfSSL already holds
 * the encrypted record and reports those bytes once it is flushed. */
int agentd_tls_write(struct agentd_tls_conn *c, const void *buf, size_t len, size_t *n,
		     struct vmlet_err *err)
{
	int ret;

	*n = 0;
	if (!c->verified) {
		vmlet_err_set(err, VMLET_E_INTERNAL, 0, "TLS write before handshake");
		return AGENTD_TLS_ERROR;
	}
	if (len == 0)
		return AGENTD_TLS_OK;
	ret = wolfSSL_write(c->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
	if (ret > 0) {
		*n = (size_t)ret;
		return AGENTD_TLS_OK;
	}
	return map_io(c, ret, "TLS write", VMLET_E_INTERNAL, err);
}

int agentd_tls_pending(struct agentd_tls_conn *c)
{
	return c->verified ? wolfSSL_pending(c->ssl) : 0;
}

/* Best effort close_notify, never waiting for the peer's: the caller
 * closes the fd right after. */
void agentd_tls_shutdown(struct agentd_tls_conn *c)
{
	if (c && c->verified)
		wolfSSL_shutdown(c->ssl);
}

const char *agentd_tls_peer_identity(struct agentd_tls_conn *c)
{
	if (!c || !c->verified)
		return "";
	return c->n_uris ? c->uris[0] : c->cn;
}

int agentd_tls_peer_is_coordinator(struct agentd_tls_conn *c, const struct vmlet_config *cfg)
{
	if (!c || !c->verified)
		return 0;
	for (size_t i = 0; i < cfg->n_coordinators && i < VMLET_MAX_COORDINATORS; i++) {
		const char *want = cfg->coordinators[i];

		if (!want[0])
			continue;
		if (c->cn[0] && strcmp(c->cn, want) == 0)
			return 1;
		for (size_t j = 0; j < c->n_uris; j++)
			if (strcmp(c->uris[j], want) == 0)
				return 1;
	}
	return 0;
}
