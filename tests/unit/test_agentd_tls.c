/* agentd/tls.c: the server side of mutual TLS 1.3, driven non-blocking as
 * the event loop drives it, against a blocking wolfSSL client in a thread,
 * over a socketpair. Certificates come from certs/certs.c. */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "agentd/tls.h"
#include "certs/certs.h"
#include "shared/config.h"

static char base[64];
static char dir_a[128]; /* the CA agentd trusts */
static char dir_b[128]; /* an unrelated CA */

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

static void pathf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void pathf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < len);
}

static int setup(void **state)
{
	struct vmlet_err err = { 0 };

	(void)state;
	snprintf(base, sizeof(base), "/tmp/vmlet-tls-XXXXXX");
	if (!mkdtemp(base))
		return -1;
	snprintf(dir_a, sizeof(dir_a), "%s/a", base);
	snprintf(dir_b, sizeof(dir_b), "%s/b", base);
	if (vmlet_certs_init_dev(dir_a, "node-1", NULL, 0, 0, &err) < 0 ||
	    vmlet_certs_init_dev(dir_b, "node-1", NULL, 0, 0, &err) < 0) {
		fprintf(stderr, "certs: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static void server_config(struct vmlet_config *cfg, const char *const *coordinators, size_t n)
{
	vmlet_config_defaults(cfg);
	pathf(cfg->tls_ca, sizeof(cfg->tls_ca), "%s/ca.pem", dir_a);
	pathf(cfg->tls_cert, sizeof(cfg->tls_cert), "%s/node.pem", dir_a);
	pathf(cfg->tls_key, sizeof(cfg->tls_key), "%s/node.key", dir_a);
	cfg->tls_crl[0] = '\0';
	for (size_t i = 0; i < n; i++)
		snprintf(cfg->coordinators[i], sizeof(cfg->coordinators[i]), "%s", coordinators[i]);
	cfg->n_coordinators = n;
}

/* ---- the client (blocking, own thread) -------------------------------------------- */

struct client {
	int fd;
	int tls12;             /* TLS 1.2-only client */
	const char *cert_dir;  /* NULL: no client certificate */
	const char *cert_name; /* "coordinator" or "node" */
	/* results */
	int connect_ok;
	int exchange_ok;       /* sent "ping", read "pong" */
};

static void *client_main(void *arg)
{
	struct client *c = arg;
	WOLFSSL_CTX *ctx = wolfSSL_CTX_new(c->tls12 ? wolfTLSv1_2_client_method()
						    : wolfTLSv1_3_client_method());
	WOLFSSL *ssl = NULL;
	char p[256], buf[8];
	sigset_t pipe_set;

	/* wolfSSL's default send() has no MSG_NOSIGNAL: a client writing to
	 * a server that hung up would raise SIGPIPE. Block it in this thread
	 * only (SIGPIPE is thread-directed), so the server side under test
	 * still dies if it ever raised one. */
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
	if (!ctx)
		goto out;
	snprintf(p, sizeof(p), "%s/ca.pem", dir_a);
	if (wolfSSL_CTX_load_verify_locations(ctx, p, NULL) != WOLFSSL_SUCCESS)
		goto out;
	wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, NULL);
	if (c->cert_dir) {
		snprintf(p, sizeof(p), "%s/%s.pem", c->cert_dir, c->cert_name);
		if (wolfSSL_CTX_use_certificate_file(ctx, p, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
			goto out;
		snprintf(p, sizeof(p), "%s/%s.key", c->cert_dir, c->cert_name);
		if (wolfSSL_CTX_use_PrivateKey_file(ctx, p, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
			goto out;
	}
	ssl = wolfSSL_new(ctx);
	if (!ssl || wolfSSL_set_fd(ssl, c->fd) != WOLFSSL_SUCCESS)
		goto out;
	/* The node certificate must be good for its SAN "localhost". */
	wolfSSL_check_domain_name(ssl, "localhost");
	if (wolfSSL_connect(ssl) != WOLFSSL_SUCCESS)
		goto out;
	c->connect_ok = 1;
	if (wolfSSL_write(ssl, "ping", 4) != 4)
		goto out;
	if (wolfSSL_read(ssl, buf, 4) == 4 && memcmp(buf, "pong", 4) == 0)
		c->exchange_ok = 1;
	wolfSSL_shutdown(ssl);
out:
	wolfSSL_free(ssl);
	wolfSSL_CTX_free(ctx);
	/* This build has FP_ECC: a per-thread point cache, freed only here. */
	wc_ecc_fp_free();
	/* Unblocks the server if it still waits on us. */
	shutdown(c->fd, SHUT_RDWR);
	return NULL;
}

/* ---- the server side under test ------------------------------------------------------ */

/* Waits as the event loop would. The 20 s bound only turns a hang into a
 * failure; no assertion depends on timing. */
static void wait_fd(int fd, int rc)
{
	struct pollfd pfd = { .fd = fd, .events = rc == AGENTD_TLS_WANT_WRITE ? POLLOUT : POLLIN };

	assert_int_equal(poll(&pfd, 1, 20000), 1);
}

static int drive_handshake(struct agentd_tls_conn *c, int fd, struct vmlet_err *err)
{
	int rc;

	while ((rc = agentd_tls_handshake(c, err)) == AGENTD_TLS_WANT_READ ||
	       rc == AGENTD_TLS_WANT_WRITE)
		wait_fd(fd, rc);
	return rc;
}

struct session {
	struct vmlet_config cfg;
	struct agentd_tls *tls;
	struct agentd_tls_conn *conn;
	struct client cl;
	pthread_t th;
	int sfd;
	int hs_rc;
	struct vmlet_err err;
};

static void session_start(struct session *s, const char *const *coords, size_t n_coords,
			  const char *crl)
{
	int sv[2];

	memset(s, 0, sizeof(*s));
	server_config(&s->cfg, coords, n_coords);
	if (crl)
		snprintf(s->cfg.tls_crl, sizeof(s->cfg.tls_crl), "%s", crl);
	if (agentd_tls_init(&s->cfg, &s->tls, &s->err) < 0)
		fail_msg("agentd_tls_init: %s", s->err.msg);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	s->sfd = sv[0];
	s->cl.fd = sv[1];
	assert_int_equal(fcntl(s->sfd, F_SETFL, fcntl(s->sfd, F_GETFL) | O_NONBLOCK), 0);
	s->conn = agentd_tls_conn_new(s->tls, s->sfd, &s->err);
	assert_non_null(s->conn);
}

static void session_run_client(struct session *s)
{
	assert_int_equal(pthread_create(&s->th, NULL, client_main, &s->cl), 0);
	s->hs_rc = drive_handshake(s->conn, s->sfd, &s->err);
}

/* After a successful handshake: "ping" in, "pong" out, then a clean close. */
static void session_exchange(struct session *s)
{
	char buf[16];
	size_t n = 0, got = 0;
	int rc;

	while (got < 4) {
		rc = agentd_tls_read(s->conn, buf + got, 4 - got, &n, &s->err);
		if (rc == AGENTD_TLS_WANT_READ || rc == AGENTD_TLS_WANT_WRITE) {
			wait_fd(s->sfd, rc);
			continue;
		}
		if (rc != AGENTD_TLS_OK)
			fail_msg("read: rc %d %s", rc, s->err.msg);
		got += n;
	}
	assert_memory_equal(buf, "ping", 4);
	assert_int_equal(agentd_tls_pending(s->conn), 0);
	got = 0;
	while (got < 4) {
		rc = agentd_tls_write(s->conn, &"pong"[got], 4 - got, &n, &s->err);
		if (rc == AGENTD_TLS_WANT_READ || rc == AGENTD_TLS_WANT_WRITE) {
			wait_fd(s->sfd, rc);
			continue;
		}
		assert_int_equal(rc, AGENTD_TLS_OK);
		got += n;
	}
	/* The client sends close_notify and shuts the socket down. */
	do {
		rc = agentd_tls_read(s->conn, buf, sizeof(buf), &n, &s->err);
		if (rc == AGENTD_TLS_WANT_READ || rc == AGENTD_TLS_WANT_WRITE)
			wait_fd(s->sfd, rc);
	} while (rc == AGENTD_TLS_WANT_READ || rc == AGENTD_TLS_WANT_WRITE);
	assert_int_equal(rc, AGENTD_TLS_CLOSED);
}

/* Frees the server side and closes both sockets (no client thread). */
static void session_free(struct session *s)
{
	agentd_tls_conn_free(s->conn);
	agentd_tls_free(s->tls);
	close(s->sfd);
	close(s->cl.fd);
}

static void session_end(struct session *s)
{
	if (s->hs_rc != AGENTD_TLS_OK)
		shutdown(s->sfd, SHUT_RDWR); /* a rejected client must not wait forever */
	pthread_join(s->th, NULL);
	agentd_tls_shutdown(s->conn);
	session_free(s);
}

/* ---- tests --------------------------------------------------------------------------------- */

static const char *const uri_coord[] = { "vmlet://coordinator" };
static const char *const cn_coord[] = { "coordinator" };

static void coordinator_by_uri(void **state)
{
	struct session s;

	(void)state;
	session_start(&s, uri_coord, 1, NULL);
	s.cl.cert_dir = dir_a;
	s.cl.cert_name = "coordinator";
	session_run_client(&s);
	if (s.hs_rc != AGENTD_TLS_OK)
		fail_msg("handshake: rc %d %s", s.hs_rc, s.err.msg);
	assert_string_equal(agentd_tls_peer_identity(s.conn), "vmlet://coordinator");
	assert_true(agentd_tls_peer_is_coordinator(s.conn, &s.cfg));
	session_exchange(&s);
	session_end(&s);
	assert_true(s.cl.connect_ok);
	assert_true(s.cl.exchange_ok);
}

static void coordinator_by_cn(void **state)
{
	struct session s;
	struct vmlet_config other;

	(void)state;
	session_start(&s, cn_coord, 1, NULL);
	s.cl.cert_dir = dir_a;
	s.cl.cert_name = "coordinator";
	session_run_client(&s);
	assert_int_equal(s.hs_rc, AGENTD_TLS_OK);
	assert_true(agentd_tls_peer_is_coordinator(s.conn, &s.cfg));
	/* Matching is exact: neither a prefix nor a different case. */
	static const char *const near[] = { "coord", "Coordinator", "vmlet://coordinator/",
					    "vmlet://Coordinator", "" };
	server_config(&other, near, 5);
	assert_false(agentd_tls_peer_is_coordinator(s.conn, &other));
	server_config(&other, NULL, 0);
	assert_false(agentd_tls_peer_is_coordinator(s.conn, &other));
	session_exchange(&s);
	session_end(&s);
}

static void node_cert_is_not_a_coordinator(void **state)
{
	struct session s;
	static const char *const both[] = { "vmlet://coordinator", "coordinator" };
	static const char *const node[] = { "node-1" };
	struct vmlet_config by_node;

	(void)state;
	session_start(&s, both, 2, NULL);
	s.cl.cert_dir = dir_a;
	s.cl.cert_name = "node";
	session_run_client(&s);
	assert_int_equal(s.hs_rc, AGENTD_TLS_OK);
	assert_string_equal(agentd_tls_peer_identity(s.conn), "node-1"); /* no URI SAN: the CN */
	assert_false(agentd_tls_peer_is_coordinator(s.conn, &s.cfg));
	server_config(&by_node, node, 1);
	assert_true(agentd_tls_peer_is_coordinator(s.conn, &by_node));
	session_exchange(&s);
	session_end(&s);
}

static void client_without_certificate_fails(void **state)
{
	struct session s;

	(void)state;
	session_start(&s, uri_coord, 1, NULL);
	s.cl.cert_dir = NULL;
	session_run_client(&s);
	assert_int_equal(s.hs_rc, AGENTD_TLS_ERROR);
	print_message("server error: %s\n", s.err.msg);
	assert_int_equal(s.err.code, VMLET_E_UNAUTHENTICATED);
	assert_non_null(strstr(s.err.msg, "TLS handshake"));
	assert_string_equal(agentd_tls_peer_identity(s.conn), "");
	assert_false(agentd_tls_peer_is_coordinator(s.conn, &s.cfg));
	session_end(&s);
	/* TLS 1.3: the client may think it connected; it never gets data. */
	assert_false(s.cl.exchange_ok);
}

static void client_from_other_ca_fails(void **state)
{
	struct session s;

	(void)state;
	session_start(&s, uri_coord, 1, NULL);
	s.cl.cert_dir = dir_b;
	s.cl.cert_name = "coordinator";
	session_run_client(&s);
	assert_int_equal(s.hs_rc, AGENTD_TLS_ERROR);
	print_message("server error: %s\n", s.err.msg);
	assert_int_equal(s.err.code, VMLET_E_UNAUTHENTICATED);
	assert_false(agentd_tls_peer_is_coordinator(s.conn, &s.cfg));
	session_end(&s);
	assert_false(s.cl.exchange_ok);
}

static void tls12_client_fails(void **state)
{
	struct session s;

	(void)state;
	session_start(&s, uri_coord, 1, NULL);
	s.cl.tls12 = 1;
	s.cl.cert_dir = dir_a;
	s.cl.cert_name = "coordinator";
	session_run_client(&s);
	assert_int_equal(s.hs_rc, AGENTD_TLS_ERROR);
	print_message("server error: %s\n", s.err.msg);
	session_end(&s);
	assert_false(s.cl.connect_ok);
	assert_false(s.cl.exchange_ok);
}

static void garbage_client_fails(void **state)
{
	struct session s;
	static const char junk[] = "GET / HTTP/1.0\r\n\r\n";

	(void)state;
	session_start(&s, uri_coord, 1, NULL);
	assert_int_equal(write(s.cl.fd, junk, sizeof(junk) - 1), (ssize_t)sizeof(junk) - 1);
	shutdown(s.cl.fd, SHUT_WR);
	s.hs_rc = drive_handshake(s.conn, s.sfd, &s.err);
	assert_int_equal(s.hs_rc, AGENTD_TLS_ERROR);
	print_message("server error: %s\n", s.err.msg);
	assert_non_null(strstr(s.err.msg, "TLS handshake"));
	session_free(&s); /* no client thread was started */
}

static void io_before_handshake_is_refused(void **state)
{
	struct session s;
	size_t n = 1;
	char buf[4];

	(void)state;
	session_start(&s, uri_coord, 1, NULL);
	assert_int_equal(agentd_tls_read(s.conn, buf, sizeof(buf), &n, &s.err), AGENTD_TLS_ERROR);
	assert_int_equal(n, 0);
	assert_int_equal(agentd_tls_write(s.conn, "x", 1, &n, &s.err), AGENTD_TLS_ERROR);
	assert_int_equal(agentd_tls_pending(s.conn), 0);
	session_free(&s);
}

static void init_errors_name_the_file(void **state)
{
	struct vmlet_config cfg;
	struct agentd_tls *tls = NULL;
	struct vmlet_err err = { 0 };

	(void)state;
	server_config(&cfg, uri_coord, 1);
	pathf(cfg.tls_ca, sizeof(cfg.tls_ca), "%s/missing-ca.pem", dir_a);
	assert_int_equal(agentd_tls_init(&cfg, &tls, &err), -1);
	print_message("init error: %s\n", err.msg);
	assert_non_null(strstr(err.msg, "missing-ca.pem"));
	assert_non_null(strstr(err.msg, "No such file"));
	assert_null(tls);

	server_config(&cfg, uri_coord, 1);
	pathf(cfg.tls_key, sizeof(cfg.tls_key), "%s/coordinator.key", dir_a);
	assert_int_equal(agentd_tls_init(&cfg, &tls, &err), -1);
	print_message("init error: %s\n", err.msg);
	assert_non_null(strstr(err.msg, "does not match"));

	server_config(&cfg, uri_coord, 1);
	pathf(cfg.tls_key, sizeof(cfg.tls_key), "%s/ca.pem", dir_a); /* a cert is not a key */
	assert_int_equal(agentd_tls_init(&cfg, &tls, &err), -1);
	print_message("init error: %s\n", err.msg);
	assert_non_null(strstr(err.msg, "ca.pem"));

	server_config(&cfg, uri_coord, 1);
	pathf(cfg.tls_cert, sizeof(cfg.tls_cert), "%s/node.key", dir_a); /* a key is not a cert */
	assert_int_equal(agentd_tls_init(&cfg, &tls, &err), -1);
	print_message("init error: %s\n", err.msg);
	assert_non_null(strstr(err.msg, "tls cert"));
	assert_non_null(strstr(err.msg, "wolfSSL error"));

	server_config(&cfg, uri_coord, 1);
	pathf(cfg.tls_crl, sizeof(cfg.tls_crl), "%s/ca.pem", dir_a); /* a cert is not a CRL */
	assert_int_equal(agentd_tls_init(&cfg, &tls, &err), -1);
	print_message("init error: %s\n", err.msg);
	assert_non_null(strstr(err.msg, "tls crl"));

	server_config(&cfg, uri_coord, 1);
	pathf(cfg.tls_crl, sizeof(cfg.tls_crl), "%s/no-such.crl", dir_a);
	assert_int_equal(agentd_tls_init(&cfg, &tls, &err), -1);
	print_message("init error: %s\n", err.msg);
	assert_non_null(strstr(err.msg, "no-such.crl"));

	server_config(&cfg, uri_coord, 1);
	cfg.tls_cert[0] = '\0';
	assert_int_equal(agentd_tls_init(&cfg, &tls, &err), -1);
	print_message("init error: %s\n", err.msg);
	assert_int_equal(err.code, VMLET_E_INVALID);
}

/* A CRL made by OpenSSL (independent of our code) revoking the
 * coordinator certificate: the coordinator is refused, the node is not. */
static void revoked_by_crl_fails(void **state)
{
	char cmd[1024], crl[256];
	struct session s;

	(void)state;
	if (system("command -v openssl >/dev/null 2>&1") != 0)
		skip();
	snprintf(cmd, sizeof(cmd),
		 "cd %s && printf '[ca]\\ndefault_ca=d\\n[d]\\ndatabase=./index.txt\\n"
		 "crlnumber=./crlnumber\\ndefault_md=sha256\\ndefault_crl_days=30\\n' >ca.cnf && "
		 ": >index.txt && echo 01 >crlnumber && "
		 "openssl ca -config ca.cnf -keyfile ca.key -cert ca.pem -revoke coordinator.pem && "
		 "openssl ca -config ca.cnf -keyfile ca.key -cert ca.pem -gencrl -out crl.pem",
		 dir_a);
	pathf(crl, sizeof(crl), "%s/crl.pem", dir_a);
	if (system(cmd) != 0 || access(crl, R_OK) != 0)
		fail_msg("openssl could not make a CRL: %s", cmd);

	session_start(&s, uri_coord, 1, crl);
	s.cl.cert_dir = dir_a;
	s.cl.cert_name = "coordinator";
	session_run_client(&s);
	assert_int_equal(s.hs_rc, AGENTD_TLS_ERROR);
	print_message("server error: %s\n", s.err.msg);
	assert_false(agentd_tls_peer_is_coordinator(s.conn, &s.cfg));
	session_end(&s);

	session_start(&s, uri_coord, 1, crl);
	s.cl.cert_dir = dir_a;
	s.cl.cert_name = "node";
	session_run_client(&s);
	if (s.hs_rc != AGENTD_TLS_OK)
		fail_msg("node (not revoked) handshake: %s", s.err.msg);
	session_exchange(&s);
	session_end(&s);
	unlink(crl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(coordinator_by_uri),
		cmocka_unit_test(coordinator_by_cn),
		cmocka_unit_test(node_cert_is_not_a_coordinator),
		cmocka_unit_test(client_without_certificate_fails),
		cmocka_unit_test(client_from_other_ca_fails),
		cmocka_unit_test(tls12_client_fails),
		cmocka_unit_test(garbage_client_fails),
		cmocka_unit_test(io_before_handshake_is_refused),
		cmocka_unit_test(init_errors_name_the_file),
		cmocka_unit_test(revoked_by_crl_fails),
	};

	wolfSSL_Init();
	return cmocka_run_group_tests(tests, setup, teardown);
}
