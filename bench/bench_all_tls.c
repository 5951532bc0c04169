/* agentd's TLS front end against a minimal wolfSSL server, same run, same
 * certificates, same client:
 *   1. full mutual-TLS 1.3 handshakes per second (one client, sequential,
 *      no resumption; the client closes right after its handshake).
 *      Goal: agentd >= 0.9x the minimal server.
 *   2. NodeStats requests per second on kept-alive connections (KEEPALIVE
 *      connections, one request in flight on each) against agentd, which
 *      answers through hostd, vs the minimal server echoing each frame.
 *      Goal: >= 0.7x.
 *   3. agentd's peak RSS (VmHWM) with 200 open, authenticated connections.
 *
 * The minimal server is what agentd would be with nothing but TLS: one
 * thread, poll(), non-blocking wolfSSL, the same CTX settings as
 * agentd/tls.c (TLS 1.3 only, client cert required, no tickets, no session
 * cache). It is forked before this process touches wolfSSL; hostd and
 * agentd are fork+exec'd. agentd runs as `nobody` (see bench_env.h) with
 * its rate limit raised so the bench measures throughput, not the limiter.
 *
 * Output: `name: value unit` lines and `ratio:` lines. */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>

#include "bench/bench_env.h"
#include "certs/certs.h"

#define HANDSHAKES 400
#define HS_ROUNDS 2
#define REQUESTS 4000
#define KEEPALIVE 8
#define HELD 200
#define REF_MAX_CONNS 512

/* AgentRequest{node_stats{}} framed: length 2, field 3 (0x1a), length 0. */
static const uint8_t node_stats_frame[] = { 0, 0, 0, 2, 0x1a, 0x00 };

static char certdir[PATH_MAX + 16];

static void certpath(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", certdir, name);
}

/* ---- the minimal wolfSSL server (a forked child) ------------------------------- */

struct ref_conn {
	WOLFSSL *ssl;
	int fd;
	int hs_done;
	size_t got;
	uint8_t buf[4096];
};

static WOLFSSL_CTX *ref_ctx(void)
{
	char ca[PATH_MAX + 32], cert[PATH_MAX + 32], key[PATH_MAX + 32];
	WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfTLSv1_3_server_method());

	certpath(ca, sizeof(ca), "ca.pem");
	certpath(cert, sizeof(cert), "node.pem");
	certpath(key, sizeof(key), "node.key");
	if (!ctx || wolfSSL_CTX_load_verify_locations(ctx, ca, NULL) != WOLFSSL_SUCCESS ||
	    wolfSSL_CTX_use_certificate_chain_file(ctx, cert) != WOLFSSL_SUCCESS ||
	    wolfSSL_CTX_use_PrivateKey_file(ctx, key, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
		bench_die("reference server: loading certificates failed");
	wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	wolfSSL_CTX_no_ticket_TLSv13(ctx);
	wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
	return ctx;
}

static void ref_close(struct ref_conn *c)
{
	wolfSSL_free(c->ssl);
	close(c->fd);
	c->ssl = NULL;
	c->fd = -1;
}

/* Handshake, then echo every complete frame, until the peer is done. */
static void ref_serve(struct ref_conn *c)
{
	for (;;) {
		int n, e;

		if (!c->hs_done) {
			if (wolfSSL_accept(c->ssl) != WOLFSSL_SUCCESS) {
				e = wolfSSL_get_error(c->ssl, 0);
				if (e != WOLFSSL_ERROR_WANT_READ && e != WOLFSSL_ERROR_WANT_WRITE)
					ref_close(c);
				return;
			}
			c->hs_done = 1;
		}
		n = wolfSSL_read(c->ssl, c->buf + c->got, (int)(sizeof(c->buf) - c->got));
		if (n <= 0) {
			e = wolfSSL_get_error(c->ssl, n);
			if (e != WOLFSSL_ERROR_WANT_READ)
				ref_close(c);
			return;
		}
		c->got += (size_t)n;
		while (c->got >= 4) {
			size_t len = ((size_t)c->buf[0] << 24) | ((size_t)c->buf[1] << 16) |
				     ((size_t)c->buf[2] << 8) | c->buf[3];
			if (len > sizeof(c->buf) - 4) {
				ref_close(c);
				return;
			}
			if (c->got < 4 + len)
				break;
			for (size_t off = 0; off < 4 + len;) {
				int w = wolfSSL_write(c->ssl, c->buf + off, (int)(4 + len - off));
				if (w > 0) {
					off += (size_t)w;
					continue;
				}
				e = wolfSSL_get_error(c->ssl, w);
				if (e != WOLFSSL_ERROR_WANT_WRITE) {
					ref_close(c);
					return;
				}
			}
			memmove(c->buf, c->buf + 4 + len, c->got - 4 - len);
			c->got -= 4 + len;
		}
	}
}

/* Runs until ctl (the parent's end of a pipe) closes. */
static void __attribute__((noreturn)) ref_server(int port, int go_fd, int ready_fd)
{
	static struct ref_conn conns[REF_MAX_CONNS];
	static struct pollfd pfd[REF_MAX_CONNS + 2];
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int one = 1, lfd;
	char c;
	WOLFSSL_CTX *ctx;

	/* The parent writes the certificates first. */
	if (read(go_fd, &c, 1) != 1)
		_exit(0);
	wolfSSL_Init();
	ctx = ref_ctx();
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 512) < 0)
		bench_die("reference server: listen on %d: %s", port, strerror(errno));
	for (int i = 0; i < REF_MAX_CONNS; i++)
		conns[i].fd = -1;
	if (write(ready_fd, "r", 1) != 1)
		_exit(1);
	for (;;) {
		int map[REF_MAX_CONNS], n = 2;

		pfd[0] = (struct pollfd){ .fd = go_fd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		for (int i = 0; i < REF_MAX_CONNS; i++)
			if (conns[i].fd >= 0) {
				map[n - 2] = i;
				pfd[n++] = (struct pollfd){ .fd = conns[i].fd, .events = POLLIN };
			}
		if (poll(pfd, (nfds_t)n, -1) < 0 && errno != EINTR)
			_exit(1);
		if (pfd[0].revents)
			_exit(0); /* the parent is done */
		for (int i = 2; i < n; i++)
			if (pfd[i].revents)
				ref_serve(&conns[map[i - 2]]);
		if (pfd[1].revents & POLLIN) {
			int fd;
			while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
				int slot = -1;
				for (int i = 0; i < REF_MAX_CONNS && slot < 0; i++)
					if (conns[i].fd < 0)
						slot = i;
				if (slot < 0) {
					close(fd);
					continue;
				}
				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
				conns[slot] = (struct ref_conn){ .fd = fd, .ssl = wolfSSL_new(ctx) };
				if (!conns[slot].ssl || wolfSSL_set_fd(conns[slot].ssl, fd) != WOLFSSL_SUCCESS) {
					ref_close(&conns[slot]);
					continue;
				}
				ref_serve(&conns[slot]);
			}
		}
	}
}

/* ---- the client ------------------------------------------------------------------------ */

static WOLFSSL_CTX *client_ctx(void)
{
	char ca[PATH_MAX + 32], cert[PATH_MAX + 32], key[PATH_MAX + 32];
	WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfTLSv1_3_client_method());

	certpath(ca, sizeof(ca), "ca.pem");
	certpath(cert, sizeof(cert), "coordinator.pem");
	certpath(key, sizeof(key), "coordinator.key");
	if (!ctx || wolfSSL_CTX_load_verify_locations(ctx, ca, NULL) != WOLFSSL_SUCCESS ||
	    wolfSSL_CTX_use_certificate_chain_file(ctx, cert) != WOLFSSL_SUCCESS ||
	    wolfSSL_CTX_use_PrivateKey_file(ctx, key, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
		bench_die("client: loading certificates failed");
	wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, NULL);
	wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
	return ctx;
}

struct client {
	WOLFSSL *ssl;
	int fd;
};

/* A blocking mutual-TLS 1.3 connection to 127.0.0.1:port; 0 on success. */
static int client_open(WOLFSSL_CTX *ctx, int port, struct client *c)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int one = 1;

	c->ssl = NULL;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		goto fail;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->ssl = wolfSSL_new(ctx);
	if (!c->ssl || wolfSSL_set_fd(c->ssl, c->fd) != WOLFSSL_SUCCESS ||
	    wolfSSL_connect(c->ssl) != WOLFSSL_SUCCESS)
		goto fail;
	return 0;
fail:
	if (c->ssl)
		wolfSSL_free(c->ssl);
	if (c->fd >= 0)
		close(c->fd);
	c->ssl = NULL;
	c->fd = -1;
	return -1;
}

static void client_close(struct client *c)
{
	if (!c->ssl)
		return;
	wolfSSL_shutdown(c->ssl);
	wolfSSL_free(c->ssl);
	close(c->fd);
	c->ssl = NULL;
	c->fd = -1;
}

static int read_full(WOLFSSL *ssl, uint8_t *buf, size_t len)
{
	for (size_t got = 0; got < len;) {
		int n = wolfSSL_read(ssl, buf + got, (int)(len - got));
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

static int send_request(struct client *c)
{
	return wolfSSL_write(c->ssl, node_stats_frame, sizeof(node_stats_frame)) ==
			       (int)sizeof(node_stats_frame)
		       ? 0
		       : -1;
}

/* Read one answer frame; 0 if it came and is not an error. An answer whose
 * field is AgentResponse.error (tag 0x0a) fails; agentd's node_stats answer
 * is tag 0x22, the echo returns the request (0x1a). */
static int read_answer(struct client *c)
{
	uint8_t buf[4096];
	size_t len;

	if (read_full(c->ssl, buf, 4) < 0)
		return -1;
	len = ((size_t)buf[0] << 24) | ((size_t)buf[1] << 16) | ((size_t)buf[2] << 8) | buf[3];
	if (len == 0 || len > sizeof(buf) || read_full(c->ssl, buf, len) < 0)
		return -1;
	return buf[0] == 0x0a ? -1 : 0;
}

static int client_request(struct client *c)
{
	return send_request(c) < 0 ? -1 : read_answer(c);
}

static double handshakes_per_sec(WOLFSSL_CTX *ctx, int port, int n, const char *who)
{
	double t0 = bench_now_us();
	for (int i = 0; i < n; i++) {
		struct client c;
		if (client_open(ctx, port, &c) < 0)
			bench_die("%s: handshake %d failed", who, i);
		client_close(&c);
	}
	return (double)n / ((bench_now_us() - t0) / 1e6);
}

static double requests_per_sec(WOLFSSL_CTX *ctx, int port, int n, const char *who)
{
	struct client c[KEEPALIVE];
	double t0;
	int done = 0;

	for (int i = 0; i < KEEPALIVE; i++)
		if (client_open(ctx, port, &c[i]) < 0)
			bench_die("%s: keep-alive connection %d failed", who, i);
	/* warm-up: one request on each */
	for (int i = 0; i < KEEPALIVE; i++)
		if (client_request(&c[i]) < 0)
			bench_die("%s: first request failed", who);
	t0 = bench_now_us();
	while (done < n) {
		/* one request in flight on every connection, then collect */
		for (int i = 0; i < KEEPALIVE; i++)
			if (send_request(&c[i]) < 0)
				bench_die("%s: write failed after %d requests", who, done);
		for (int i = 0; i < KEEPALIVE; i++, done++)
			if (read_answer(&c[i]) < 0)
				bench_die("%s: no (or an error) answer after %d requests", who, done);
	}
	double rate = (double)done / ((bench_now_us() - t0) / 1e6);
	for (int i = 0; i < KEEPALIVE; i++)
		client_close(&c[i]);
	return rate;
}

int main(void)
{
	struct bench_env env;
	struct vmlet_err err;
	struct client held[HELD];
	int go[2], ready[2], ref_port;
	double hs_agentd = 0, hs_ref = 0, rq_agentd, rq_ref;
	long rss_idle, hwm;
	pid_t ref;
	WOLFSSL_CTX *ctx;
	char c;

	signal(SIGPIPE, SIG_IGN);
	bench_env_init(&env, 0,
		       "rate_limit = 100000\nrate_burst = 1000000\nmax_connections = 512\n");
	snprintf(certdir, sizeof(certdir), "%s/certs", env.dir);
	ref_port = bench_free_port();

	/* The reference server is forked before this process uses wolfSSL. */
	if (pipe2(go, O_CLOEXEC) < 0 || pipe2(ready, O_CLOEXEC) < 0)
		bench_die("pipe: %s", strerror(errno));
	ref = fork();
	if (ref < 0)
		bench_die("fork: %s", strerror(errno));
	if (ref == 0) {
		close(go[1]);
		close(ready[0]);
		ref_server(ref_port, go[0], ready[1]);
	}
	close(go[0]);
	close(ready[1]);

	if (vmlet_certs_init_dev(certdir, "bench-node", NULL, 0, 0, &err) < 0)
		bench_die("certs: %s", err.msg);
	env.hostd = bench_spawn(&env, "vmlet-hostd");
	bench_wait_socket(&env, env.hostd, "vmlet-hostd", env.hostd_sock, 10000);
	env.agentd = bench_spawn(&env, "vmlet-agentd");
	bench_wait_port(&env, env.agentd, "vmlet-agentd", env.port, 10000);
	if (write(go[1], "g", 1) != 1 || read(ready[0], &c, 1) != 1)
		bench_die("reference server did not start");

	wolfSSL_Init();
	ctx = client_ctx();

	/* 1. handshakes, alternating servers so drift hits both */
	for (int r = 0; r < HS_ROUNDS; r++) {
		hs_agentd += handshakes_per_sec(ctx, env.port, HANDSHAKES / HS_ROUNDS, "agentd") / HS_ROUNDS;
		hs_ref += handshakes_per_sec(ctx, ref_port, HANDSHAKES / HS_ROUNDS, "minimal server") / HS_ROUNDS;
	}
	printf("tls_handshakes_agentd: %.0f per second\n", hs_agentd);
	printf("tls_handshakes_minimal_wolfssl: %.0f per second\n", hs_ref);
	printf("ratio: %.2fx handshakes agentd/minimal (goal >= 0.9x)\n", hs_agentd / hs_ref);
	fflush(stdout);

	/* 2. requests on kept-alive connections */
	rq_agentd = requests_per_sec(ctx, env.port, REQUESTS, "agentd");
	rq_ref = requests_per_sec(ctx, ref_port, REQUESTS, "minimal echo server");
	printf("tls_requests_agentd_node_stats: %.0f per second (%d connections)\n", rq_agentd, KEEPALIVE);
	printf("tls_requests_minimal_echo: %.0f per second (%d connections)\n", rq_ref, KEEPALIVE);
	printf("ratio: %.2fx requests agentd/echo (goal >= 0.7x)\n", rq_agentd / rq_ref);
	fflush(stdout);

	/* 3. peak RSS with HELD authenticated connections */
	rss_idle = bench_proc_status_kb(env.agentd, "VmRSS");
	for (int i = 0; i < HELD; i++) {
		if (client_open(ctx, env.port, &held[i]) < 0 || client_request(&held[i]) < 0)
			bench_die("agentd: connection %d of %d failed", i + 1, HELD);
	}
	hwm = bench_proc_status_kb(env.agentd, "VmHWM");
	printf("agentd_rss_before: %ld kB\n", rss_idle);
	printf("agentd_peak_rss_%d_connections: %ld kB (VmHWM)\n", HELD, hwm);
	printf("ratio: %.1f kB per connection ((VmHWM - RSS before) / %d)\n",
	       (double)(hwm - rss_idle) / HELD, HELD);
	fflush(stdout);
	for (int i = 0; i < HELD; i++)
		client_close(&held[i]);

	wolfSSL_CTX_free(ctx);
	wolfSSL_Cleanup();
	close(go[1]); /* the reference server exits */
	waitpid(ref, NULL, 0);
	bench_env_cleanup(&env);
	return 0;
}
