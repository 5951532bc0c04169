/* certs/certs.c: the dev PKI as wolfSSL and (independently) OpenSSL see it. */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/openssl/x509v3.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "certs/certs.h"

/* ---- helpers ------------------------------------------------------------------ */

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

static void rm_rf(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

struct fixture {
	char base[64];   /* mkdtemp */
	char dir[128];   /* base/pki: created by init */
	char dir2[128];  /* base/other: a second, unrelated CA */
};

static void path_in(char *buf, size_t len, const char *dir, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	assert_true(n > 0 && (size_t)n < len);
}

static unsigned char *slurp(const char *path, long *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	*len = ftell(f);
	rewind(f);
	buf = malloc((size_t)*len + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)*len, f), (size_t)*len);
	buf[*len] = 0;
	fclose(f);
	return buf;
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
}

static const char *const extra_sans[] = {
	"DNS:extra.example", "IP:10.0.0.5", "URI:spiffe://vmlet/node-1", "bare.example",
	"localhost", /* duplicate of a default: accepted, not repeated */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct vmlet_err err = { 0 };

	assert_non_null(f);
	snprintf(f->base, sizeof(f->base), "/tmp/vmlet-certs-XXXXXX");
	assert_non_null(mkdtemp(f->base));
	path_in(f->dir, sizeof(f->dir), f->base, "pki");
	path_in(f->dir2, sizeof(f->dir2), f->base, "other");
	if (vmlet_certs_init_dev(f->dir, "node-1", extra_sans, 5, 0, &err) < 0)
		fail_msg("init_dev: %s", err.msg);
	if (vmlet_certs_init_dev(f->dir2, "node-2", NULL, 0, 0, &err) < 0)
		fail_msg("init_dev (second CA): %s", err.msg);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	rm_rf(f->base);
	free(f);
	return 0;
}

/* wolfSSL's CertManager with ca_dir/ca.pem as the only trust anchor. */
static int verify_with(const char *ca_dir, const char *cert_path)
{
	WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
	char ca[256];
	unsigned char *pem;
	long len;
	int ret;

	assert_non_null(cm);
	path_in(ca, sizeof(ca), ca_dir, "ca.pem");
	assert_int_equal(wolfSSL_CertManagerLoadCA(cm, ca, NULL), WOLFSSL_SUCCESS);
	pem = slurp(cert_path, &len);
	ret = wolfSSL_CertManagerVerifyBuffer(cm, pem, len, WOLFSSL_FILETYPE_PEM);
	free(pem);
	wolfSSL_CertManagerFree(cm);
	return ret;
}

static WOLFSSL_X509 *load_x509(const char *dir, const char *name)
{
	char p[256];
	WOLFSSL_X509 *x;

	path_in(p, sizeof(p), dir, name);
	x = wolfSSL_X509_load_certificate_file(p, WOLFSSL_FILETYPE_PEM);
	assert_non_null(x);
	return x;
}

/* 1 if the cert has a SAN of this GEN_* type with exactly these bytes. */
static int has_san(WOLFSSL_X509 *x, int type, const void *val, size_t len)
{
	WOLFSSL_GENERAL_NAMES *gns = wolfSSL_X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int n = gns ? wolfSSL_sk_GENERAL_NAME_num(gns) : 0, found = 0;

	for (int i = 0; i < n; i++) {
		WOLFSSL_GENERAL_NAME *gn = wolfSSL_sk_GENERAL_NAME_value(gns, i);

		if (gn->type == type && gn->d.ia5->length == (int)len &&
		    memcmp(gn->d.ia5->data, val, len) == 0)
			found = 1;
	}
	if (gns)
		wolfSSL_GENERAL_NAMES_free(gns);
	return found;
}

static int san_count(WOLFSSL_X509 *x)
{
	WOLFSSL_GENERAL_NAMES *gns = wolfSSL_X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int n = gns ? wolfSSL_sk_GENERAL_NAME_num(gns) : 0;

	if (gns)
		wolfSSL_GENERAL_NAMES_free(gns);
	return n;
}

static void cn_of(WOLFSSL_X509 *x, char *buf, int len)
{
	assert_true(wolfSSL_X509_NAME_get_text_by_NID(wolfSSL_X509_get_subject_name(x),
						      NID_commonName, buf, len) > 0);
}

/* ---- tests ---------------------------------------------------------------------- */

static void files_and_modes(void **state)
{
	struct fixture *f = *state;
	static const char *const keys[] = { "ca.key", "node.key", "coordinator.key" };
	static const char *const certs[] = { "ca.pem", "node.pem", "coordinator.pem" };
	char p[256];

	assert_int_equal(mode_of(f->dir), 0700);
	for (size_t i = 0; i < 3; i++) {
		unsigned char *pem;
		long len;

		path_in(p, sizeof(p), f->dir, keys[i]);
		assert_int_equal(mode_of(p), 0600);
		pem = slurp(p, &len);
		assert_non_null(strstr((char *)pem, "-----BEGIN EC PRIVATE KEY-----"));
		free(pem);
		path_in(p, sizeof(p), f->dir, certs[i]);
		assert_int_equal(mode_of(p), 0644);
		pem = slurp(p, &len);
		assert_non_null(strstr((char *)pem, "-----BEGIN CERTIFICATE-----"));
		free(pem);
	}
}

static void leaves_verify_against_their_ca(void **state)
{
	struct fixture *f = *state;
	char p[256];

	path_in(p, sizeof(p), f->dir, "node.pem");
	assert_int_equal(verify_with(f->dir, p), WOLFSSL_SUCCESS);
	path_in(p, sizeof(p), f->dir, "coordinator.pem");
	assert_int_equal(verify_with(f->dir, p), WOLFSSL_SUCCESS);
	path_in(p, sizeof(p), f->dir2, "node.pem");
	assert_int_equal(verify_with(f->dir2, p), WOLFSSL_SUCCESS);
}

static void other_ca_does_not_verify(void **state)
{
	struct fixture *f = *state;
	char p[256];

	path_in(p, sizeof(p), f->dir2, "node.pem");
	assert_int_not_equal(verify_with(f->dir, p), WOLFSSL_SUCCESS);
	path_in(p, sizeof(p), f->dir2, "coordinator.pem");
	assert_int_not_equal(verify_with(f->dir, p), WOLFSSL_SUCCESS);
	path_in(p, sizeof(p), f->dir, "coordinator.pem");
	assert_int_not_equal(verify_with(f->dir2, p), WOLFSSL_SUCCESS);
}

static void node_cert_names_and_usage(void **state)
{
	struct fixture *f = *state;
	WOLFSSL_X509 *x = load_x509(f->dir, "node.pem");
	const unsigned char lo[4] = { 127, 0, 0, 1 }, ten[4] = { 10, 0, 0, 5 };
	char cn[64];

	cn_of(x, cn, sizeof(cn));
	assert_string_equal(cn, "node-1");
	assert_true(has_san(x, GEN_DNS, "node-1", 6));
	assert_true(has_san(x, GEN_DNS, "localhost", 9));
	assert_true(has_san(x, GEN_IPADD, lo, 4));
	assert_true(has_san(x, GEN_DNS, "extra.example", 13));
	assert_true(has_san(x, GEN_IPADD, ten, 4));
	assert_true(has_san(x, GEN_URI, "spiffe://vmlet/node-1", 21));
	assert_true(has_san(x, GEN_DNS, "bare.example", 12));
	assert_int_equal(san_count(x), 7); /* the duplicate localhost is not repeated */
	assert_false(wolfSSL_X509_get_isCA(x));
	assert_true(wolfSSL_X509_get_extended_key_usage(x) & XKU_SSL_SERVER);
	assert_true(wolfSSL_X509_get_extended_key_usage(x) & XKU_SSL_CLIENT);
	wolfSSL_X509_free(x);
}

static void coordinator_cert_names_and_usage(void **state)
{
	struct fixture *f = *state;
	WOLFSSL_X509 *x = load_x509(f->dir, "coordinator.pem");
	char cn[64];

	cn_of(x, cn, sizeof(cn));
	assert_string_equal(cn, "coordinator");
	assert_true(has_san(x, GEN_URI, "vmlet://coordinator", 19));
	assert_int_equal(san_count(x), 1);
	assert_true(wolfSSL_X509_get_extended_key_usage(x) & XKU_SSL_CLIENT);
	assert_false(wolfSSL_X509_get_extended_key_usage(x) & XKU_SSL_SERVER);
	wolfSSL_X509_free(x);
}

static void ca_is_ca_and_serials_are_random(void **state)
{
	struct fixture *f = *state;
	WOLFSSL_X509 *ca = load_x509(f->dir, "ca.pem");
	WOLFSSL_X509 *a = load_x509(f->dir, "node.pem");
	WOLFSSL_X509 *b = load_x509(f->dir, "coordinator.pem");
	unsigned char sa[32], sb[32];
	int la = sizeof(sa), lb = sizeof(sb);

	assert_true(wolfSSL_X509_get_isCA(ca));
	assert_int_equal(wolfSSL_X509_get_serial_number(a, sa, &la), WOLFSSL_SUCCESS);
	assert_int_equal(wolfSSL_X509_get_serial_number(b, sb, &lb), WOLFSSL_SUCCESS);
	assert_int_equal(la, 16);
	assert_int_equal(lb, 16);
	assert_memory_not_equal(sa, sb, 16);
	wolfSSL_X509_free(ca);
	wolfSSL_X509_free(a);
	wolfSSL_X509_free(b);
}

static void keys_match_certs(void **state)
{
	struct fixture *f = *state;
	static const char *const names[] = { "node", "coordinator", "ca" };

	for (size_t i = 0; i < 3; i++) {
		WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfTLSv1_3_client_method());
		char c[256], k[256], n[32];

		assert_non_null(ctx);
		snprintf(n, sizeof(n), "%s.pem", names[i]);
		path_in(c, sizeof(c), f->dir, n);
		snprintf(n, sizeof(n), "%s.key", names[i]);
		path_in(k, sizeof(k), f->dir, n);
		assert_int_equal(wolfSSL_CTX_use_certificate_file(ctx, c, WOLFSSL_FILETYPE_PEM),
				 WOLFSSL_SUCCESS);
		assert_int_equal(wolfSSL_CTX_use_PrivateKey_file(ctx, k, WOLFSSL_FILETYPE_PEM),
				 WOLFSSL_SUCCESS);
		assert_int_equal(wolfSSL_CTX_check_private_key(ctx), WOLFSSL_SUCCESS);
		wolfSSL_CTX_free(ctx);
	}
}

static void refuses_overwrite_unless_forced(void **state)
{
	struct fixture *f = *state;
	struct vmlet_err err = { 0 };
	unsigned char *before, *after, *forced;
	long lb, la, lf;
	char p[256];

	path_in(p, sizeof(p), f->dir, "ca.pem");
	before = slurp(p, &lb);
	assert_int_equal(vmlet_certs_init_dev(f->dir, "node-1", NULL, 0, 0, &err), -1);
	assert_int_equal(err.code, VMLET_E_CONFLICT);
	assert_non_null(strstr(err.msg, "ca.pem"));
	assert_non_null(strstr(err.msg, "exists"));
	after = slurp(p, &la);
	assert_int_equal(lb, la);
	assert_memory_equal(before, after, (size_t)lb);

	/* Only one file present is enough to refuse. */
	char solo[160], q[256];
	path_in(solo, sizeof(solo), f->base, "solo");
	assert_int_equal(mkdir(solo, 0700), 0);
	path_in(q, sizeof(q), solo, "coordinator.key");
	int fd = open(q, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(vmlet_certs_init_dev(solo, "node-1", NULL, 0, 0, &err), -1);
	assert_int_equal(err.code, VMLET_E_CONFLICT);
	assert_non_null(strstr(err.msg, "coordinator.key"));

	assert_int_equal(vmlet_certs_init_dev(f->dir, "node-1", extra_sans, 5, 1, &err), 0);
	forced = slurp(p, &lf);
	assert_false(lf == lb && memcmp(before, forced, (size_t)lb) == 0);
	path_in(p, sizeof(p), f->dir, "ca.key");
	assert_int_equal(mode_of(p), 0600);
	path_in(p, sizeof(p), f->dir, "node.pem");
	assert_int_equal(verify_with(f->dir, p), WOLFSSL_SUCCESS);
	free(before);
	free(after);
	free(forced);
}

static void bad_sans_rejected_nothing_written(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[] = {
		"IP:256.1.1.1",       "IP:1.2.3",          "IP:01.2.3.4",   "IP:",
		"URI:nocolon",        "URI:",              "URI:vmlet://a b", "URI:1abc:x",
		"URI:vmlet:",         "DNS:-bad",          "DNS:bad-",       "DNS:a..b",
		"DNS:",               "bad name",          "EMAIL:x@y",      "DNS:under_score",
		"DNS:.lead",          "dns:lowercase-prefix",
		"DNS:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	};
	char dir[160];

	path_in(dir, sizeof(dir), f->base, "never");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct vmlet_err err = { 0 };
		const char *one[1] = { bad[i] };

		assert_int_equal(vmlet_certs_init_dev(dir, "node-1", one, 1, 0, &err), -1);
		if (err.code != VMLET_E_INVALID || !strstr(err.msg, "SAN"))
			fail_msg("SAN \"%s\": code %d msg %s", bad[i], err.code, err.msg);
		assert_int_equal(access(dir, F_OK), -1); /* nothing created */
	}
}

static void bad_node_ids_and_counts_rejected(void **state)
{
	struct fixture *f = *state;
	static const char *const bad_ids[] = { "", "a:b", "IP:127.0.0.1", "node 1", "-node",
					       "x.", "URI:vmlet://x" };
	const char *many[VMLET_CERTS_MAX_SANS + 1];
	char names[VMLET_CERTS_MAX_SANS + 1][16];
	struct vmlet_err err = { 0 };
	char dir[160];

	path_in(dir, sizeof(dir), f->base, "never2");
	for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
		assert_int_equal(vmlet_certs_init_dev(dir, bad_ids[i], NULL, 0, 0, &err), -1);
		if (err.code != VMLET_E_INVALID || !strstr(err.msg, "node id"))
			fail_msg("node id \"%s\": code %d msg %s", bad_ids[i], err.code, err.msg);
	}
	for (size_t i = 0; i <= VMLET_CERTS_MAX_SANS; i++) {
		snprintf(names[i], sizeof(names[i]), "n%zu.example", i);
		many[i] = names[i];
	}
	assert_int_equal(vmlet_certs_init_dev(dir, "node-1", many, VMLET_CERTS_MAX_SANS + 1, 0, &err),
			 -1);
	assert_int_equal(err.code, VMLET_E_INVALID);
	assert_non_null(strstr(err.msg, "too many SANs"));
	assert_int_equal(access(dir, F_OK), -1);
	/* Exactly the maximum is fine. */
	assert_int_equal(vmlet_certs_init_dev(dir, "node-1", many, VMLET_CERTS_MAX_SANS, 0, &err), 0);
	char p[256];
	path_in(p, sizeof(p), dir, "node.pem");
	WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_file(p, WOLFSSL_FILETYPE_PEM);
	assert_non_null(x);
	assert_int_equal(san_count(x), VMLET_CERTS_MAX_SANS + 3);
	wolfSSL_X509_free(x);
}

static void issue_from_existing_ca(void **state)
{
	struct fixture *f = *state;
	const char *sans[] = { "URI:spiffe://vmlet/tenant-a", "IP:192.168.7.1" };
	char ca[256], cak[256], ca2k[256], out[256], outk[256];
	struct vmlet_err err = { 0 };
	const unsigned char ip[4] = { 192, 168, 7, 1 };
	WOLFSSL_X509 *x;
	char cn[64];

	path_in(ca, sizeof(ca), f->dir, "ca.pem");
	path_in(cak, sizeof(cak), f->dir, "ca.key");
	path_in(ca2k, sizeof(ca2k), f->dir2, "ca.key");
	path_in(out, sizeof(out), f->base, "issued.pem");
	path_in(outk, sizeof(outk), f->base, "issued.key");

	if (vmlet_certs_issue(ca, cak, "tenant-a-admin", sans, 2, 30, 2, out, outk, &err) < 0)
		fail_msg("issue: %s", err.msg);
	assert_int_equal(verify_with(f->dir, out), WOLFSSL_SUCCESS);
	assert_int_not_equal(verify_with(f->dir2, out), WOLFSSL_SUCCESS);
	assert_int_equal(mode_of(outk), 0600);
	x = wolfSSL_X509_load_certificate_file(out, WOLFSSL_FILETYPE_PEM);
	assert_non_null(x);
	cn_of(x, cn, sizeof(cn));
	assert_string_equal(cn, "tenant-a-admin");
	assert_true(has_san(x, GEN_URI, "spiffe://vmlet/tenant-a", 23));
	assert_true(has_san(x, GEN_IPADD, ip, 4));
	assert_false(wolfSSL_X509_get_extended_key_usage(x) & XKU_SSL_SERVER);
	wolfSSL_X509_free(x);

	/* A CA key that does not belong to the CA cert: caught before writing. */
	path_in(out, sizeof(out), f->base, "mismatch.pem");
	path_in(outk, sizeof(outk), f->base, "mismatch.key");
	assert_int_equal(vmlet_certs_issue(ca, ca2k, "x", NULL, 0, 30, 1, out, outk, &err), -1);
	assert_non_null(strstr(err.msg, "does not verify against the CA"));
	assert_int_equal(access(out, F_OK), -1);
	assert_int_equal(access(outk, F_OK), -1);

	/* Bad arguments, each named. */
	assert_int_equal(vmlet_certs_issue(ca, cak, "x", NULL, 0, 30, 3, out, outk, &err), -1);
	assert_non_null(strstr(err.msg, "usage 3"));
	assert_int_equal(vmlet_certs_issue(ca, cak, "x", NULL, 0, 0, 1, out, outk, &err), -1);
	assert_non_null(strstr(err.msg, "validity 0 days"));
	assert_int_equal(vmlet_certs_issue(ca, cak, "", NULL, 0, 30, 1, out, outk, &err), -1);
	assert_non_null(strstr(err.msg, "common name"));
	assert_int_equal(vmlet_certs_issue(ca, cak, "bad\ncn", NULL, 0, 30, 1, out, outk, &err), -1);
	assert_non_null(strstr(err.msg, "printable"));
	path_in(ca2k, sizeof(ca2k), f->base, "no-such-ca.pem");
	assert_int_equal(vmlet_certs_issue(ca2k, cak, "x", NULL, 0, 30, 1, out, outk, &err), -1);
	assert_non_null(strstr(err.msg, "no-such-ca.pem"));
	/* The CA cert given as the key. */
	assert_int_equal(vmlet_certs_issue(ca, ca, "x", NULL, 0, 30, 1, out, outk, &err), -1);
	assert_non_null(strstr(err.msg, "ca.pem"));
	assert_int_equal(access(out, F_OK), -1);
}

/* ---- OpenSSL as an independent verifier -------------------------------------------- */

static int have_openssl(void)
{
	return system("command -v openssl >/dev/null 2>&1") == 0;
}

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Runs a command and returns its stdout (malloc'd). */
static char *capture(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *capture(const char *fmt, ...)
{
	char cmd[1024];
	size_t cap = 65536, len = 0, n;
	char *out = calloc(1, cap);
	va_list ap;
	FILE *p;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	assert_non_null(out);
	p = popen(cmd, "r");
	assert_non_null(p);
	while ((n = fread(out + len, 1, cap - 1 - len, p)) > 0)
		len += n;
	assert_int_equal(pclose(p), 0);
	return out;
}

static void openssl_agrees(void **state)
{
	struct fixture *f = *state;
	char *text;

	if (!have_openssl())
		skip();
	assert_int_equal(run("openssl verify -CAfile %s/ca.pem %s/node.pem %s/coordinator.pem >/dev/null 2>&1",
			     f->dir, f->dir, f->dir), 0);
	assert_int_not_equal(run("openssl verify -CAfile %s/ca.pem %s/node.pem >/dev/null 2>&1",
				 f->dir, f->dir2), 0);
	/* Valid now; the CA for (at least) nine more years, leaves for a year. */
	assert_int_equal(run("openssl x509 -checkend 0 -noout -in %s/node.pem >/dev/null", f->dir), 0);
	assert_int_equal(run("openssl x509 -checkend 283824000 -noout -in %s/ca.pem >/dev/null",
			     f->dir), 0);
	assert_int_equal(run("openssl x509 -checkend 31536000 -noout -in %s/node.pem >/dev/null",
			     f->dir), 0);
	assert_int_equal(run("openssl ec -check -noout -in %s/node.key >/dev/null 2>&1", f->dir), 0);

	text = capture("openssl x509 -text -noout -in %s/node.pem", f->dir);
	assert_non_null(strstr(text, "ecdsa-with-SHA256"));
	assert_non_null(strstr(text, "prime256v1"));
	assert_non_null(strstr(text, "DNS:node-1"));
	assert_non_null(strstr(text, "DNS:localhost"));
	assert_non_null(strstr(text, "IP Address:127.0.0.1"));
	assert_non_null(strstr(text, "IP Address:10.0.0.5"));
	assert_non_null(strstr(text, "URI:spiffe://vmlet/node-1"));
	assert_non_null(strstr(text, "TLS Web Server Authentication"));
	assert_non_null(strstr(text, "TLS Web Client Authentication"));
	assert_non_null(strstr(text, "CA:FALSE"));
	free(text);

	text = capture("openssl x509 -text -noout -in %s/coordinator.pem", f->dir);
	assert_non_null(strstr(text, "CN = coordinator"));
	assert_non_null(strstr(text, "URI:vmlet://coordinator"));
	assert_null(strstr(text, "TLS Web Server Authentication"));
	free(text);

	text = capture("openssl x509 -text -noout -in %s/ca.pem", f->dir);
	assert_non_null(strstr(text, "CA:TRUE"));
	assert_non_null(strstr(text, "Certificate Sign, CRL Sign"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(files_and_modes),
		cmocka_unit_test(leaves_verify_against_their_ca),
		cmocka_unit_test(other_ca_does_not_verify),
		cmocka_unit_test(node_cert_names_and_usage),
		cmocka_unit_test(coordinator_cert_names_and_usage),
		cmocka_unit_test(ca_is_ca_and_serials_are_random),
		cmocka_unit_test(keys_match_certs),
		cmocka_unit_test(bad_sans_rejected_nothing_written),
		cmocka_unit_test(bad_node_ids_and_counts_rejected),
		cmocka_unit_test(issue_from_existing_ca),
		cmocka_unit_test(openssl_agrees),
		cmocka_unit_test(refuses_overwrite_unless_forced),
	};

	wolfSSL_Init();
	return cmocka_run_group_tests(tests, setup, teardown);
}
