/* Development PKI with wolfCrypt: ECDSA P-256 keys, SHA-256 signatures.
 *
 * Every certificate is built in memory, then checked the way a peer will
 * check it (wolfSSL's CertManager against the issuing CA, and the SAN
 * extension parsed back through the X509 API) before anything reaches the
 * disk: a cert that wolfSSL itself would reject or mis-read is never
 * written. Keys are written 0600 through vmlet_write_atomic and wiped from
 * memory after use; they never reach a log or an error message. */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/openssl/x509v3.h>

#include "certs/certs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "shared/cleanup.h"
#include "shared/log.h"
#include "shared/safefile.h"

#define CERT_DER_MAX 8192
#define KEY_DER_MAX 512
#define PEM_IN_MAX (64 * 1024)  /* cap for reading ca.pem / ca.key */
#define SAN_VALUE_MAX 255
#define SAN_LIST_MAX (VMLET_CERTS_MAX_SANS + 3) /* extras + the dev defaults */
#define CN_MAX (CTC_NAME_SIZE - 1)

#define CA_DAYS 3650        /* dev CA: 10 years */
#define LEAF_DAYS_DEV 825   /* dev leaves: the longest lifetime browsers accept */
#define LEAF_DAYS_MAX 3650
#define BACKDATE_SECONDS 3600 /* tolerate an hour of clock skew between peers */

/* GeneralName CHOICE tags (RFC 5280 4.2.1.6): context-specific, primitive. */
enum san_kind { SAN_DNS = 2, SAN_URI = 6, SAN_IP = 7 };

struct san {
	enum san_kind kind;
	size_t len;                           /* bytes in value */
	unsigned char value[SAN_VALUE_MAX + 1]; /* text (NUL-terminated) or 4/16 address bytes */
};

struct san_list {
	struct san items[SAN_LIST_MAX];
	size_t n;
};

/* A CA able to sign: its certificate (DER) and private key. */
struct issuer {
	unsigned char der[CERT_DER_MAX];
	int der_sz;
	ecc_key key;
	int key_ready;
};

/* wolfSSL_Init is reference counted and idempotent for our purposes; the
 * CertManager and X509 checks below need the SSL layer initialised. */
static int wolf_init(struct vmlet_err *err)
{
	int ret = wolfSSL_Init();

	if (ret != WOLFSSL_SUCCESS)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "wolfSSL_Init failed: %d", ret);
	return 0;
}

static int wc_fail(struct vmlet_err *err, const char *what, int ret)
{
	return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "%s failed: error %d (%s)", what, ret,
			     wc_GetErrorString(ret));
}

/* ---- SAN parsing ----------------------------------------------------------- */

static int dns_label_char(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-';
}

/* RFC 1035 host name: labels of 1-63 [A-Za-z0-9-], no leading/trailing
 * '-', total <= 253. No wildcards: nothing in vmlet needs them. */
static const char *dns_name_problem(const char *s)
{
	size_t len = strlen(s), label = 0;

	if (len == 0)
		return "empty DNS name";
	if (len > 253)
		return "DNS name longer than 253 characters";
	for (size_t i = 0; i <= len; i++) {
		char c = s[i];

		if (c == '.' || c == '\0') {
			if (label == 0)
				return "empty DNS label";
			if (s[i - 1] == '-')
				return "DNS label ends with '-'";
			label = 0;
			continue;
		}
		if (!dns_label_char((unsigned char)c))
			return "DNS name may only contain [A-Za-z0-9.-]";
		if (label == 0 && c == '-')
			return "DNS label starts with '-'";
		if (++label > 63)
			return "DNS label longer than 63 characters";
	}
	return NULL;
}

/* RFC 3986: scheme ":" rest, where the whole URI is printable ASCII
 * without spaces (the SAN is an IA5String; identities are compared
 * byte for byte, so nothing that could look alike is accepted). */
static const char *uri_problem(const char *s)
{
	size_t len = strlen(s);
	const char *colon = strchr(s, ':');

	if (len == 0)
		return "empty URI";
	if (len > SAN_VALUE_MAX)
		return "URI longer than 255 characters";
	if (!colon || colon == s || colon[1] == '\0')
		return "URI must be scheme:rest (e.g. spiffe://domain/path)";
	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
		return "URI scheme must start with a letter";
	for (const char *p = s; p < colon; p++) {
		char c = *p;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '+' || c == '-' || c == '.'))
			return "URI scheme may only contain [A-Za-z0-9+.-]";
	}
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return "URI may only contain printable ASCII without spaces";
	return NULL;
}

static int parse_san(const char *spec, struct san *out, struct vmlet_err *err)
{
	char q[VLOG_STR_MAX];
	const char *problem = NULL;
	const char *v;

	if (!spec)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "SAN: missing value");
	memset(out, 0, sizeof(*out));
	if (strncmp(spec, "IP:", 3) == 0) {
		v = spec + 3;
		out->kind = SAN_IP;
		/* inet_pton accepts only the strict dotted quad (no octal, no
		 * short forms), which is what a certificate should carry. */
		if (inet_pton(AF_INET, v, out->value) == 1)
			out->len = 4;
		else if (inet_pton(AF_INET6, v, out->value) == 1)
			out->len = 16;
		else
			problem = "not an IPv4 or IPv6 address";
	} else if (strncmp(spec, "URI:", 4) == 0) {
		v = spec + 4;
		out->kind = SAN_URI;
		problem = uri_problem(v);
	} else {
		v = strncmp(spec, "DNS:", 4) == 0 ? spec + 4 : spec;
		out->kind = SAN_DNS;
		problem = dns_name_problem(v);
	}
	if (problem)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "SAN %s: %s (expected DNS:name, IP:a.b.c.d, URI:scheme:... or a bare DNS name)",
				     vlog_str(spec, q, sizeof(q)), problem);
	if (out->kind != SAN_IP) {
		out->len = strlen(v);
		memcpy(out->value, v, out->len + 1);
	}
	return 0;
}

static int san_equal(const struct san *a, const struct san *b)
{
	return a->kind == b->kind && a->len == b->len && memcmp(a->value, b->value, a->len) == 0;
}

/* Appends unless an identical entry is already there (so "--san localhost"
 * next to the default DNS:localhost is harmless). */
static int san_list_add(struct san_list *l, const char *spec, struct vmlet_err *err)
{
	struct san s;

	if (parse_san(spec, &s, err) < 0)
		return -1;
	for (size_t i = 0; i < l->n; i++)
		if (san_equal(&l->items[i], &s))
			return 0;
	if (l->n >= SAN_LIST_MAX)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "too many SANs (at most %d)",
				     VMLET_CERTS_MAX_SANS);
	l->items[l->n++] = s;
	return 0;
}

static int san_list_add_all(struct san_list *l, const char *const *specs, size_t n,
			    struct vmlet_err *err)
{
	if (n > VMLET_CERTS_MAX_SANS)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "too many SANs: %zu (at most %d)", n,
				     VMLET_CERTS_MAX_SANS);
	if (n && !specs)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "SAN list is NULL");
	for (size_t i = 0; i < n; i++)
		if (san_list_add(l, specs[i], err) < 0)
			return -1;
	return 0;
}

/* ---- DER helpers ------------------------------------------------------------- */

/* DER definite length; returns the number of bytes written (at most 3:
 * nothing here is 64 KiB). */
static size_t der_put_len(unsigned char *out, size_t len)
{
	if (len < 0x80) {
		out[0] = (unsigned char)len;
		return 1;
	}
	if (len <= 0xff) {
		out[0] = 0x81;
		out[1] = (unsigned char)len;
		return 2;
	}
	out[0] = 0x82;
	out[1] = (unsigned char)(len >> 8);
	out[2] = (unsigned char)len;
	return 3;
}

/* GeneralNames ::= SEQUENCE OF GeneralName, each [tag] IMPLICIT value:
 * the form wolfSSL's Cert.altNames expects (it wraps it in the
 * subjectAltName extension itself). */
static int encode_general_names(const struct san_list *l, unsigned char *out, size_t cap,
				int *out_len, struct vmlet_err *err)
{
	unsigned char body[SAN_LIST_MAX * (SAN_VALUE_MAX + 4)];
	size_t blen = 0, hlen;

	for (size_t i = 0; i < l->n; i++) {
		const struct san *s = &l->items[i];

		body[blen++] = (unsigned char)(0x80 | s->kind);
		blen += der_put_len(body + blen, s->len);
		memcpy(body + blen, s->value, s->len);
		blen += s->len;
	}
	if (blen + 4 > cap)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "SANs too large (%zu bytes)", blen);
	out[0] = 0x30; /* SEQUENCE */
	hlen = 1 + der_put_len(out + 1, blen);
	memcpy(out + hlen, body, blen);
	*out_len = (int)(hlen + blen);
	return 0;
}

/* A Validity time with its tag and length, as Cert.beforeDate/afterDate
 * carry it: UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280
 * 4.1.2.5). wolfSSL's own SetValidity backdates a whole day; we want
 * "now - 1h" exactly, so we supply both dates. */
static int encode_time(time_t t, unsigned char *out, int *out_len, struct vmlet_err *err)
{
	struct tm tm;
	char buf[20];
	int n;

	if (!gmtime_r(&t, &tm))
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "gmtime_r failed for a validity date");
	if (tm.tm_year + 1900 < 2050) {
		n = snprintf(buf, sizeof(buf), "%02d%02d%02d%02d%02d%02dZ", tm.tm_year % 100,
			     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		out[0] = ASN_UTC_TIME;
	} else {
		n = snprintf(buf, sizeof(buf), "%04d%02d%02d%02d%02d%02dZ", tm.tm_year + 1900,
			     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		out[0] = ASN_GENERALIZED_TIME;
	}
	if (n != 13 && n != 15)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "cannot encode validity date");
	out[1] = (unsigned char)n;
	memcpy(out + 2, buf, (size_t)n);
	*out_len = n + 2;
	return 0;
}

static int set_validity(Cert *cert, int days, struct vmlet_err *err)
{
	time_t now = time(NULL);

	if (encode_time(now - BACKDATE_SECONDS, cert->beforeDate, &cert->beforeDateSz, err) < 0 ||
	    encode_time(now + (time_t)days * 86400, cert->afterDate, &cert->afterDateSz, err) < 0)
		return -1;
	cert->daysValid = days;
	return 0;
}

/* 16 random bytes, as a positive INTEGER without a leading zero octet
 * (RFC 5280 4.1.2.2: positive, unique, at most 20 octets). */
static int set_serial(Cert *cert, WC_RNG *rng, struct vmlet_err *err)
{
	int ret = wc_RNG_GenerateBlock(rng, cert->serial, 16);

	if (ret != 0)
		return wc_fail(err, "wc_RNG_GenerateBlock (serial)", ret);
	cert->serial[0] = (unsigned char)((cert->serial[0] & 0x7f) | 0x40);
	cert->serialSz = 16;
	return 0;
}

static int set_subject(Cert *cert, const char *cn, const char *org, struct vmlet_err *err)
{
	char q[VLOG_STR_MAX];
	size_t len = cn ? strlen(cn) : 0;

	if (len == 0 || len > CN_MAX)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "common name %s: must be 1-%d characters",
				     vlog_str(cn ? cn : "", q, sizeof(q)), CN_MAX);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)cn[i] < 0x20 || (unsigned char)cn[i] >= 0x7f)
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "common name %s: only printable ASCII is allowed",
					     vlog_str(cn, q, sizeof(q)));
	memcpy(cert->subject.commonName, cn, len + 1);
	cert->subject.commonNameEnc = CTC_UTF8;
	snprintf(cert->subject.org, sizeof(cert->subject.org), "%s", org);
	return 0;
}

/* ---- keys ---------------------------------------------------------------------- */

static int make_key(WC_RNG *rng, ecc_key *key, struct vmlet_err *err)
{
	int ret = wc_ecc_init(key);

	if (ret != 0)
		return wc_fail(err, "wc_ecc_init", ret);
	ret = wc_ecc_make_key_ex(rng, 32, key, ECC_SECP256R1);
	if (ret != 0) {
		wc_ecc_free(key);
		return wc_fail(err, "wc_ecc_make_key_ex(P-256)", ret);
	}
	/* ECC_TIMING_RESISTANT builds blind private-key operations with it. */
	wc_ecc_set_rng(key, rng);
	return 0;
}

/* SEC1 "EC PRIVATE KEY" PEM into *pem (malloc'd; caller wipes and frees). */
static int key_to_pem(ecc_key *key, char **pem, size_t *pem_len, struct vmlet_err *err)
{
	unsigned char der[KEY_DER_MAX];
	size_t cap = 2 * KEY_DER_MAX + 128;
	int der_sz, ret;

	der_sz = wc_EccKeyToDer(key, der, sizeof(der));
	if (der_sz <= 0)
		return wc_fail(err, "wc_EccKeyToDer", der_sz);
	*pem = calloc(1, cap);
	if (!*pem) {
		explicit_bzero(der, sizeof(der));
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "out of memory");
	}
	ret = wc_DerToPem(der, (word32)der_sz, (byte *)*pem, (word32)cap, ECC_PRIVATEKEY_TYPE);
	explicit_bzero(der, sizeof(der));
	if (ret <= 0) {
		free(*pem);
		*pem = NULL;
		return wc_fail(err, "wc_DerToPem(EC PRIVATE KEY)", ret);
	}
	*pem_len = (size_t)ret;
	return 0;
}

static int cert_to_pem(const unsigned char *der, int der_sz, char **pem, size_t *pem_len,
		       struct vmlet_err *err)
{
	size_t cap = 2 * (size_t)der_sz + 128;
	int ret;

	*pem = calloc(1, cap);
	if (!*pem)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "out of memory");
	ret = wc_DerToPem(der, (word32)der_sz, (byte *)*pem, (word32)cap, CERT_TYPE);
	if (ret <= 0) {
		free(*pem);
		*pem = NULL;
		return wc_fail(err, "wc_DerToPem(CERTIFICATE)", ret);
	}
	*pem_len = (size_t)ret;
	return 0;
}

/* ---- self-checks: read the result back the way peers will -------------------- */

/* The cert chains to the CA under wolfSSL's own verifier (signature,
 * issuer, validity, CA flags). Catches a CA key that does not belong to
 * the CA certificate before a useless cert is written. */
static int check_chain(const unsigned char *ca_der, int ca_sz, const unsigned char *der,
		       int der_sz, struct vmlet_err *err)
{
	WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
	int ret;

	if (!cm)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "wolfSSL_CertManagerNew failed");
	ret = wolfSSL_CertManagerLoadCABuffer(cm, ca_der, ca_sz, WOLFSSL_FILETYPE_ASN1);
	if (ret != WOLFSSL_SUCCESS) {
		wolfSSL_CertManagerFree(cm);
		return wc_fail(err, "wolfSSL_CertManagerLoadCABuffer(CA)", ret);
	}
	ret = wolfSSL_CertManagerVerifyBuffer(cm, der, der_sz, WOLFSSL_FILETYPE_ASN1);
	wolfSSL_CertManagerFree(cm);
	if (ret != WOLFSSL_SUCCESS)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "issued certificate does not verify against the CA (does the CA key belong to the CA certificate?): wolfSSL_CertManagerVerifyBuffer error %d (%s)",
				     ret, wc_GetErrorString(ret));
	return 0;
}

/* Every SAN we asked for is present, with the same type and bytes, in
 * what wolfSSL's parser reads back, and nothing else is. */
static int check_sans(const unsigned char *der, int der_sz, const struct san_list *want,
		      struct vmlet_err *err)
{
	WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_buffer(der, der_sz, WOLFSSL_FILETYPE_ASN1);
	WOLFSSL_GENERAL_NAMES *gns;
	int n, rc = 0;

	if (!x)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
				     "wolfSSL_X509_load_certificate_buffer cannot parse the new certificate");
	gns = wolfSSL_X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	n = gns ? wolfSSL_sk_GENERAL_NAME_num(gns) : 0;
	if ((size_t)n != want->n) {
		rc = vmlet_err_set(err, VMLET_E_INTERNAL, 0,
				   "wolfSSL reads %d SANs back from the new certificate, expected %zu", n,
				   want->n);
		goto out;
	}
	for (size_t i = 0; i < want->n; i++) {
		const struct san *s = &want->items[i];
		int found = 0;

		for (int j = 0; j < n && !found; j++) {
			WOLFSSL_GENERAL_NAME *gn = wolfSSL_sk_GENERAL_NAME_value(gns, j);
			WOLFSSL_ASN1_STRING *str = gn ? gn->d.ia5 : NULL;

			found = gn && str && gn->type == (int)s->kind && str->length == (int)s->len &&
				memcmp(str->data, s->value, s->len) == 0;
		}
		if (!found) {
			rc = vmlet_err_set(err, VMLET_E_INTERNAL, 0,
					   "SAN #%zu (type %d) is not read back from the new certificate",
					   i, (int)s->kind);
			goto out;
		}
	}
out:
	if (gns)
		wolfSSL_GENERAL_NAMES_free(gns);
	wolfSSL_X509_free(x);
	return rc;
}

/* ---- certificates ----------------------------------------------------------------- */

static int sign_cert(Cert *cert, ecc_key *subject_key, ecc_key *signer_key, WC_RNG *rng,
		     unsigned char *der, int *der_sz, struct vmlet_err *err)
{
	int ret = wc_MakeCert(cert, der, CERT_DER_MAX, NULL, subject_key, rng);

	if (ret < 0)
		return wc_fail(err, "wc_MakeCert", ret);
	ret = wc_SignCert(cert->bodySz, cert->sigType, der, CERT_DER_MAX, NULL, signer_key, rng);
	if (ret < 0)
		return wc_fail(err, "wc_SignCert", ret);
	*der_sz = ret;
	return 0;
}

/* Common fields. wc_InitCert defaults to an RSA signature; we sign with
 * ECDSA P-256 over SHA-256. */
static int init_cert(Cert *cert, WC_RNG *rng, int days, struct vmlet_err *err)
{
	int ret = wc_InitCert(cert);

	if (ret != 0)
		return wc_fail(err, "wc_InitCert", ret);
	cert->sigType = CTC_SHA256wECDSA;
	cert->keyType = ECC_KEY;
	if (set_serial(cert, rng, err) < 0 || set_validity(cert, days, err) < 0)
		return -1;
	return 0;
}

static int make_ca(WC_RNG *rng, const char *cn, struct issuer *ca, struct vmlet_err *err)
{
	Cert cert;
	int ret;

	if (make_key(rng, &ca->key, err) < 0)
		return -1;
	ca->key_ready = 1;
	if (init_cert(&cert, rng, CA_DAYS, err) < 0 || set_subject(&cert, cn, "vmlet", err) < 0)
		return -1;
	cert.selfSigned = 1;
	cert.isCA = 1;
	/* pathLen 0: the dev CA signs leaves only, never another CA. */
	cert.pathLen = 0;
	cert.pathLenSet = 1;
	cert.keyUsage = KEYUSE_KEY_CERT_SIGN | KEYUSE_CRL_SIGN;
	ret = wc_SetSubjectKeyIdFromPublicKey_ex(&cert, ECC_TYPE, &ca->key);
	if (ret != 0)
		return wc_fail(err, "wc_SetSubjectKeyIdFromPublicKey_ex(CA)", ret);
	ret = wc_SetAuthKeyIdFromPublicKey_ex(&cert, ECC_TYPE, &ca->key);
	if (ret != 0)
		return wc_fail(err, "wc_SetAuthKeyIdFromPublicKey_ex(CA)", ret);
	if (sign_cert(&cert, &ca->key, &ca->key, rng, ca->der, &ca->der_sz, err) < 0)
		return vmlet_err_prefix(err, "CA certificate: ");
	if (check_chain(ca->der, ca->der_sz, ca->der, ca->der_sz, err) < 0)
		return vmlet_err_prefix(err, "CA certificate: ");
	return 0;
}

/* usage: 1 = serverAuth + clientAuth, 2 = clientAuth only. */
static int make_leaf(WC_RNG *rng, struct issuer *ca, const char *cn, const struct san_list *sans,
		     int days, int usage, ecc_key *key, unsigned char *der, int *der_sz,
		     struct vmlet_err *err)
{
	Cert cert;
	int ret;

	if (usage != 1 && usage != 2)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "usage %d: must be 1 (server+client) or 2 (client)", usage);
	if (days < 1 || days > LEAF_DAYS_MAX)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "validity %d days: must be 1-%d", days,
				     LEAF_DAYS_MAX);
	if (init_cert(&cert, rng, days, err) < 0 || set_subject(&cert, cn, "vmlet", err) < 0)
		return -1;
	cert.selfSigned = 0;
	cert.isCA = 0;
	cert.basicConstSet = 1; /* explicit CA:FALSE */
	cert.keyUsage = KEYUSE_DIGITAL_SIG;
	cert.extKeyUsage = (byte)(usage == 1 ? EXTKEYUSE_SERVER_AUTH | EXTKEYUSE_CLIENT_AUTH
					     : EXTKEYUSE_CLIENT_AUTH);
	if (sans->n && encode_general_names(sans, cert.altNames, sizeof(cert.altNames),
					    &cert.altNamesSz, err) < 0)
		return -1;
	ret = wc_SetIssuerBuffer(&cert, ca->der, ca->der_sz);
	if (ret != 0)
		return wc_fail(err, "wc_SetIssuerBuffer", ret);
	/* The AKID must equal the CA's SKID or OpenSSL's chain building
	 * rejects the path; fall back to hashing the CA key only for a CA
	 * without a SKID. */
	ret = wc_SetAuthKeyIdFromCert(&cert, ca->der, ca->der_sz);
	if (ret != 0)
		ret = wc_SetAuthKeyIdFromPublicKey_ex(&cert, ECC_TYPE, &ca->key);
	if (ret != 0)
		return wc_fail(err, "wc_SetAuthKeyIdFromPublicKey_ex", ret);
	ret = wc_SetSubjectKeyIdFromPublicKey_ex(&cert, ECC_TYPE, key);
	if (ret != 0)
		return wc_fail(err, "wc_SetSubjectKeyIdFromPublicKey_ex", ret);
	if (sign_cert(&cert, key, &ca->key, rng, der, der_sz, err) < 0)
		return -1;
	if (check_chain(ca->der, ca->der_sz, der, *der_sz, err) < 0 ||
	    check_sans(der, *der_sz, sans, err) < 0)
		return -1;
	return 0;
}

/* ---- files -------------------------------------------------------------------------- */

static int write_pem(const char *path, char *pem, size_t len, mode_t mode, int secret,
		     struct vmlet_err *err)
{
	int rc = vmlet_write_atomic(path, pem, len, mode, err);

	if (secret)
		explicit_bzero(pem, len);
	return rc;
}

/* Key (0600) then certificate (0644): a cert on disk always has its key. */
static int write_pair(const char *cert_path, const unsigned char *der, int der_sz,
		      const char *key_path, ecc_key *key, struct vmlet_err *err)
{
	_cleanup_free_ char *key_pem = NULL;
	_cleanup_free_ char *cert_pem = NULL;
	size_t key_len = 0, cert_len = 0;

	if (key_to_pem(key, &key_pem, &key_len, err) < 0)
		return vmlet_err_prefix(err, "%s: ", key_path);
	if (write_pem(key_path, key_pem, key_len, 0600, 1, err) < 0)
		return -1;
	if (cert_to_pem(der, der_sz, &cert_pem, &cert_len, err) < 0)
		return vmlet_err_prefix(err, "%s: ", cert_path);
	return write_pem(cert_path, cert_pem, cert_len, 0644, 0, err);
}

static int load_issuer(const char *ca_cert, const char *ca_key, struct issuer *ca,
		       struct vmlet_err *err)
{
	_cleanup_free_ char *pem = NULL;
	unsigned char key_der[4096];
	size_t len = 0;
	word32 idx = 0;
	int ret, key_sz;

	if (vmlet_read_file(ca_cert, PEM_IN_MAX, &pem, &len, err) < 0)
		return -1;
	ret = wc_CertPemToDer((const unsigned char *)pem, (int)len, ca->der, sizeof(ca->der),
			      CERT_TYPE);
	if (ret <= 0)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "%s: wc_CertPemToDer failed: error %d (%s)", ca_cert, ret,
				     wc_GetErrorString(ret));
	ca->der_sz = ret;
	free(pem);
	pem = NULL;

	if (vmlet_read_file(ca_key, PEM_IN_MAX, &pem, &len, err) < 0)
		return -1;
	ret = wc_KeyPemToDer((const unsigned char *)pem, (int)len, key_der, sizeof(key_der), NULL);
	explicit_bzero(pem, len);
	if (ret <= 0)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "%s: wc_KeyPemToDer failed: error %d (%s)", ca_key, ret,
				     wc_GetErrorString(ret));
	key_sz = ret;
	if ((ret = wc_ecc_init(&ca->key)) != 0) {
		explicit_bzero(key_der, sizeof(key_der));
		return wc_fail(err, "wc_ecc_init", ret);
	}
	ca->key_ready = 1;
	ret = wc_EccPrivateKeyDecode(key_der, &idx, &ca->key, (word32)key_sz);
	explicit_bzero(key_der, sizeof(key_der));
	if (ret != 0)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "%s: wc_EccPrivateKeyDecode failed (not an EC private key?): error %d (%s)",
				     ca_key, ret, wc_GetErrorString(ret));
	return 0;
}

static void issuer_free(struct issuer *ca)
{
	if (ca->key_ready)
		wc_ecc_free(&ca->key);
	ca->key_ready = 0;
}

int vmlet_certs_issue(const char *ca_cert, const char *ca_key, const char *cn,
		      const char *const *sans, size_t n_sans, int days, int usage,
		      const char *cert_path, const char *key_path, struct vmlet_err *err)
{
	struct issuer ca = { .key_ready = 0 };
	struct san_list list = { .n = 0 };
	unsigned char der[CERT_DER_MAX];
	ecc_key key;
	int key_ready = 0, der_sz = 0, rc = -1;
	WC_RNG rng;
	int ret;

	if (!ca_cert || !ca_key || !cert_path || !key_path)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "certs issue: missing path argument");
	if (wolf_init(err) < 0 || san_list_add_all(&list, sans, n_sans, err) < 0)
		return -1;
	if ((ret = wc_InitRng(&rng)) != 0)
		return wc_fail(err, "wc_InitRng", ret);
	if (load_issuer(ca_cert, ca_key, &ca, err) < 0)
		goto out;
	wc_ecc_set_rng(&ca.key, &rng);
	if (make_key(&rng, &key, err) < 0)
		goto out;
	key_ready = 1;
	if (make_leaf(&rng, &ca, cn, &list, days, usage, &key, der, &der_sz, err) < 0) {
		vmlet_err_prefix(err, "%s: ", cert_path);
		goto out;
	}
	rc = write_pair(cert_path, der, der_sz, key_path, &key, err);
out:
	if (key_ready)
		wc_ecc_free(&key);
	issuer_free(&ca);
	wc_FreeRng(&rng);
	return rc;
}

/* ---- vmletctl certs init ---------------------------------------------------------- */

static const char *const dev_files[] = {
	"ca.pem", "ca.key", "node.pem", "node.key", "coordinator.pem", "coordinator.key",
};

static int dev_path(char *buf, size_t len, const char *dir, const char *name, struct vmlet_err *err)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= len)
		return vmlet_err_set(err, VMLET_E_INVALID, ENAMETOOLONG, "%s/%s: path too long", dir,
				     name);
	return 0;
}

/* The directory is created 0700 when missing; an existing one keeps its
 * owner and mode (it may be shared, e.g. a temp dir), only the key files
 * themselves are 0600. */
static int prepare_dir(const char *dir, int force, struct vmlet_err *err)
{
	char path[PATH_MAX];
	struct stat st;

	if (stat(dir, &st) < 0) {
		if (errno != ENOENT)
			return vmlet_err_sys(err, VMLET_E_INVALID, "stat %s", dir);
		if (vmlet_ensure_dir(dir, 0700, (uid_t)-1, (gid_t)-1, err) < 0)
			return -1;
	} else if (!S_ISDIR(st.st_mode)) {
		return vmlet_err_set(err, VMLET_E_INVALID, ENOTDIR, "%s: not a directory", dir);
	}
	if (force)
		return 0;
	for (size_t i = 0; i < sizeof(dev_files) / sizeof(dev_files[0]); i++) {
		if (dev_path(path, sizeof(path), dir, dev_files[i], err) < 0)
			return -1;
		if (lstat(path, &st) == 0)
			return vmlet_err_set(err, VMLET_E_CONFLICT, EEXIST,
					     "%s already exists; refusing to overwrite without force",
					     path);
		if (errno != ENOENT)
			return vmlet_err_sys(err, VMLET_E_INVALID, "lstat %s", path);
	}
	return 0;
}

int vmlet_certs_init_dev(const char *dir, const char *node_id, const char *const *extra_sans,
			 size_t n_sans, int force, struct vmlet_err *err)
{
	char p_ca[PATH_MAX], p_ca_key[PATH_MAX], p_node[PATH_MAX], p_node_key[PATH_MAX];
	char p_co[PATH_MAX], p_co_key[PATH_MAX];
	struct issuer ca = { .key_ready = 0 };
	struct san_list node_sans = { .n = 0 }, co_sans = { .n = 0 };
	unsigned char node_der[CERT_DER_MAX], co_der[CERT_DER_MAX];
	int node_sz = 0, co_sz = 0, node_ready = 0, co_ready = 0, rc = -1, ret;
	ecc_key node_key, co_key;
	char q[VLOG_STR_MAX];
	const char *problem;
	WC_RNG rng;

	if (!dir || !*dir || !node_id)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "certs init: dir and node id are required");
	/* The node id becomes the leaf CN and a DNS SAN: it must be both a
	 * valid CN and a valid host name (no "IP:"/"URI:" prefix games). */
	if ((problem = dns_name_problem(node_id)) != NULL)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "node id %s: %s",
				     vlog_str(node_id, q, sizeof(q)), problem);
	if (san_list_add(&node_sans, node_id, err) < 0 ||
	    san_list_add(&node_sans, "DNS:localhost", err) < 0 ||
	    san_list_add(&node_sans, "IP:127.0.0.1", err) < 0 ||
	    san_list_add_all(&node_sans, extra_sans, n_sans, err) < 0 ||
	    san_list_add(&co_sans, "URI:vmlet://coordinator", err) < 0)
		return -1;
	if (dev_path(p_ca, sizeof(p_ca), dir, "ca.pem", err) < 0 ||
	    dev_path(p_ca_key, sizeof(p_ca_key), dir, "ca.key", err) < 0 ||
	    dev_path(p_node, sizeof(p_node), dir, "node.pem", err) < 0 ||
	    dev_path(p_node_key, sizeof(p_node_key), dir, "node.key", err) < 0 ||
	    dev_path(p_co, sizeof(p_co), dir, "coordinator.pem", err) < 0 ||
	    dev_path(p_co_key, sizeof(p_co_key), dir, "coordinator.key", err) < 0)
		return -1;
	if (wolf_init(err) < 0 || prepare_dir(dir, force, err) < 0)
		return -1;
	if ((ret = wc_InitRng(&rng)) != 0)
		return wc_fail(err, "wc_InitRng", ret);

	/* Everything is generated and checked before the first file is
	 * written, so a failure leaves no half-made set behind. */
	if (make_ca(&rng, "vmlet development CA", &ca, err) < 0)
		goto out;
	if (make_key(&rng, &node_key, err) < 0)
		goto out;
	node_ready = 1;
	if (make_leaf(&rng, &ca, node_id, &node_sans, LEAF_DAYS_DEV, 1, &node_key, node_der,
		      &node_sz, err) < 0) {
		vmlet_err_prefix(err, "node certificate: ");
		goto out;
	}
	if (make_key(&rng, &co_key, err) < 0)
		goto out;
	co_ready = 1;
	if (make_leaf(&rng, &ca, "coordinator", &co_sans, LEAF_DAYS_DEV, 2, &co_key, co_der, &co_sz,
		      err) < 0) {
		vmlet_err_prefix(err, "coordinator certificate: ");
		goto out;
	}
	if (write_pair(p_ca, ca.der, ca.der_sz, p_ca_key, &ca.key, err) < 0 ||
	    write_pair(p_node, node_der, node_sz, p_node_key, &node_key, err) < 0 ||
	    write_pair(p_co, co_der, co_sz, p_co_key, &co_key, err) < 0)
		goto out;
	rc = 0;
out:
	if (node_ready)
		wc_ecc_free(&node_key);
	if (co_ready)
		wc_ecc_free(&co_key);
	issuer_free(&ca);
	wc_FreeRng(&rng);
	return rc;
}
