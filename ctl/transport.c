/* wolfSSL's feature macros must be seen before any of its headers. */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "ctl/transport.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "rpc/strict.h"
#include "shared/cleanup.h"

/* ---- TLS stream -------------------------------------------------------- */

struct tls_stream {
	WOLFSSL *ssl;
	int error;         /* wolfSSL_get_error of the last failure, 0 if none */
	char reason[160];  /* its text, with the peer's alert when one came */
};

static void tls_note_error(struct tls_stream *s, int ret)
{
	char buf[WOLFSSL_MAX_ERROR_SZ > 80 ? WOLFSSL_MAX_ERROR_SZ : 80];
	WOLFSSL_ALERT_HISTORY h;
	int e = wolfSSL_get_error(s->ssl, ret);

	s->error = e;
	if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE) {
		/* A blocking socket only says "want" when SO_RCVTIMEO or
		 * SO_SNDTIMEO ran out. */
		snprintf(s->reason, sizeof(s->reason), "timed out");
		errno = EAGAIN;
		return;
	}
	wolfSSL_ERR_error_string_n((unsigned long)e, buf, sizeof(buf));
	memset(&h, 0, sizeof(h));
	if (wolfSSL_get_alert_history(s->ssl, &h) == WOLFSSL_SUCCESS && h.last_rx.code > 0)
		snprintf(s->reason, sizeof(s->reason), "%s (wolfSSL error %d; peer sent alert: %s)",
			 buf, e, wolfSSL_alert_desc_string_long(h.last_rx.code));
	else
		snprintf(s->reason, sizeof(s->reason), "%s (wolfSSL error %d)", buf, e);
	errno = EIO;
}

static ssize_t tls_read(void *ctx, void *buf, size_t len)
{
	struct tls_stream *s = ctx;
	int n = wolfSSL_read(s->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);

	if (n > 0)
		return n;
	if (wolfSSL_get_error(s->ssl, n) == WOLFSSL_ERROR_ZERO_RETURN)
		return 0; /* close_notify: an orderly end of stream */
	tls_note_error(s, n);
	return -1;
}

static ssize_t tls_write(void *ctx, const void *buf, size_t len)
{
	struct tls_stream *s = ctx;
	int n = wolfSSL_write(s->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);

	if (n > 0)
		return n;
	tls_note_error(s, n);
	return -1;
}

/* ---- connecting -------------------------------------------------------- */

static int set_timeouts(int fd, unsigned ms, struct vmlet_err *err)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return vmlet_err_sys(err, VMLET_E_UNAVAILABLE, "setsockopt timeout");
	return 0;
}

/* connect(2) on a socket with SO_SNDTIMEO gives up with EINPROGRESS
 * (unix: EAGAIN) when the timeout runs out. */
static int connect_error(const struct ctl_target *t, struct vmlet_err *err)
{
	if (errno == EINPROGRESS || errno == EAGAIN)
		return vmlet_err_set(err, VMLET_E_UNAVAILABLE, ETIMEDOUT,
				     "connect timed out after %u ms", t->timeout_ms);
	return vmlet_err_sys(err, VMLET_E_UNAVAILABLE, "connect");
}

static int connect_unix(const struct ctl_target *t, int *out, struct vmlet_err *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;
	size_t len = strlen(t->socket_path);

	if (len == 0 || len >= sizeof(sa.sun_path))
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "socket path length %zu out of range",
				     len);
	memcpy(sa.sun_path, t->socket_path, len + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vmlet_err_sys(err, VMLET_E_UNAVAILABLE, "socket");
	if (set_timeouts(fd, t->timeout_ms, err) < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return connect_error(t, err);
	*out = vmlet_take_fd(&fd);
	return 0;
}

static int connect_tcp(const struct ctl_target *t, int *out, struct vmlet_err *err)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(t->host, t->port, &hints, &res);

	if (rc != 0)
		return vmlet_err_set(err, VMLET_E_UNAVAILABLE, 0, "resolving %s: %s", t->host,
				     gai_strerror(rc));
	vmlet_err_set(err, VMLET_E_UNAVAILABLE, 0, "no address for %s", t->host);
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		_cleanup_close_ int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
						ai->ai_protocol);
		if (fd < 0) {
			vmlet_err_sys(err, VMLET_E_UNAVAILABLE, "socket");
			continue;
		}
		if (set_timeouts(fd, t->timeout_ms, err) < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
			connect_error(t, err);
			continue;
		}
		freeaddrinfo(res);
		*out = vmlet_take_fd(&fd);
		return 0;
	}
	freeaddrinfo(res);
	return -1;
}

/* One client connection: the socket, and for TLS the wolfSSL objects. */
struct conn {
	int fd;
	WOLFSSL_CTX *ctx;
	struct tls_stream tls;
	struct vmlet_io io;
	bool wolfssl_inited;
};

static void conn_close(struct conn *c)
{
	if (c->tls.ssl) {
		/* Best effort close_notify; the answer has been read already. */
		if (c->tls.error == 0)
			wolfSSL_shutdown(c->tls.ssl);
		wolfSSL_free(c->tls.ssl);
	}
	if (c->ctx)
		wolfSSL_CTX_free(c->ctx);
	if (c->wolfssl_inited)
		wolfSSL_Cleanup();
	if (c->fd >= 0)
		close(c->fd);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

static int tls_load_error(const char *what, const char *path, int ret, struct vmlet_err *err)
{
	char buf[WOLFSSL_MAX_ERROR_SZ > 80 ? WOLFSSL_MAX_ERROR_SZ : 80];

	/* wolfSSL says "bad file" for a missing one: give errno's reason. */
	if (access(path, R_OK) < 0)
		return vmlet_err_sys(err, VMLET_E_INVALID, "%s %s", what, path);
	wolfSSL_ERR_error_string_n((unsigned long)ret, buf, sizeof(buf));
	return vmlet_err_set(err, VMLET_E_INVALID, 0, "%s %s: %s (wolfSSL error %d)", what, path,
			     buf, ret);
}

static int tls_setup(struct conn *c, const struct ctl_target *t, struct vmlet_err *err)
{
	int ret;

	if (wolfSSL_Init() != WOLFSSL_SUCCESS)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "wolfSSL_Init failed");
	c->wolfssl_inited = true;
	c->ctx = wolfSSL_CTX_new(wolfTLSv1_3_client_method());
	if (!c->ctx)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "wolfSSL_CTX_new failed");
	ret = wolfSSL_CTX_load_verify_locations(c->ctx, t->ca, NULL);
	if (ret != WOLFSSL_SUCCESS)
		return tls_load_error("loading CA", t->ca, ret, err);
	ret = wolfSSL_CTX_use_certificate_chain_file(c->ctx, t->cert);
	if (ret != WOLFSSL_SUCCESS)
		return tls_load_error("loading certificate", t->cert, ret, err);
	ret = wolfSSL_CTX_use_PrivateKey_file(c->ctx, t->key, WOLFSSL_FILETYPE_PEM);
	if (ret != WOLFSSL_SUCCESS)
		return tls_load_error("loading key", t->key, ret, err);
	if (wolfSSL_CTX_check_private_key(c->ctx) != WOLFSSL_SUCCESS)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "key %s does not match certificate %s",
				     t->key, t->cert);
	wolfSSL_CTX_set_verify(c->ctx, WOLFSSL_VERIFY_PEER, NULL);
	return 0;
}

static int tls_handshake(struct conn *c, const struct ctl_target *t, struct vmlet_err *err)
{
	c->tls.ssl = wolfSSL_new(c->ctx);
	if (!c->tls.ssl)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "wolfSSL_new failed");
	if (wolfSSL_set_fd(c->tls.ssl, c->fd) != WOLFSSL_SUCCESS)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "wolfSSL_set_fd failed");
	/* The server's certificate must name HOST in a SAN (DNS or IP). */
	if (wolfSSL_check_domain_name(c->tls.ssl, t->host) != WOLFSSL_SUCCESS)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "wolfSSL_check_domain_name failed");
	int ret = wolfSSL_connect(c->tls.ssl);
	if (ret != WOLFSSL_SUCCESS) {
		tls_note_error(&c->tls, ret);
		return vmlet_err_set(err, VMLET_E_UNAVAILABLE, 0, "TLS handshake: %s",
				     c->tls.reason);
	}
	c->tls.error = 0;
	c->io.read = tls_read;
	c->io.write = tls_write;
	c->io.ctx = &c->tls;
	return 0;
}

static int conn_open(struct conn *c, const struct ctl_target *t, struct vmlet_err *err)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	if (t->kind == CTL_TRANSPORT_UNIX) {
		if (connect_unix(t, &c->fd, err) < 0)
			return -1;
		c->io = vmlet_io_fd_template;
		c->io.ctx = &c->fd;
		return 0;
	}
	/* Load the credentials before connecting: a bad file is a local
	 * mistake, not something to find out after a round trip. */
	if (tls_setup(c, t, err) < 0 || connect_tcp(t, &c->fd, err) < 0)
		return -1;
	return tls_handshake(c, t, err);
}

/* ---- the exchange ------------------------------------------------------ */

int ctl_exchange(const struct vmlet_io *io, const Vmlet__V1__AgentRequest *req,
		 Vmlet__V1__AgentResponse **resp, struct vmlet_err *err)
{
	_cleanup_free_ uint8_t *out = NULL;
	_cleanup_free_ uint8_t *in = NULL;
	size_t out_len = 0, in_len = 0;
	ProtobufCMessage *m;

	if (vmlet_pack(&req->base, &out, &out_len, err) < 0)
		return vmlet_err_prefix(err, "encoding request: ");
	if (vmlet_frame_write(io, out, out_len, err) < 0)
		return vmlet_err_prefix(err, "sending request: ");
	if (vmlet_frame_read(io, CTL_RESPONSE_MAX, &in, &in_len, err) < 0)
		return vmlet_err_prefix(err, "reading response: ");
	m = vmlet_strict_unpack(&vmlet__v1__agent_response__descriptor, in, in_len, err);
	if (!m)
		return vmlet_err_prefix(err, "malformed response: ");
	*resp = (Vmlet__V1__AgentResponse *)m;
	return 0;
}

/* The frame layer sees a TLS failure only as "I/O error"; wolfSSL knows
 * why (in TLS 1.3 a server that refuses our certificate says so only now,
 * after our side of the handshake has "succeeded"). Keep the step from the
 * frame layer's message ("reading response") and put wolfSSL's reason after
 * it. */
static void explain_tls_failure(const struct conn *c, const struct ctl_target *t,
				struct vmlet_err *err)
{
	char step[64] = "TLS";
	const char *colon = strchr(err->msg, ':');
	bool timed_out = c->tls.error == WOLFSSL_ERROR_WANT_READ ||
			 c->tls.error == WOLFSSL_ERROR_WANT_WRITE;

	if (colon && (size_t)(colon - err->msg) < sizeof(step))
		snprintf(step, sizeof(step), "%.*s", (int)(colon - err->msg), err->msg);
	if (timed_out)
		vmlet_err_set(err, VMLET_E_UNAVAILABLE, ETIMEDOUT, "%s: timed out after %u ms", step,
			      t->timeout_ms);
	else
		vmlet_err_set(err, VMLET_E_UNAVAILABLE, 0, "%s: %s", step, c->tls.reason);
}

int ctl_call(const struct ctl_target *t, const Vmlet__V1__AgentRequest *req,
	     Vmlet__V1__AgentResponse **resp, struct vmlet_err *err)
{
	struct conn c;
	int ret = conn_open(&c, t, err);

	if (ret == 0) {
		ret = ctl_exchange(&c.io, req, resp, err);
		if (ret < 0 && c.tls.error != 0)
			explain_tls_failure(&c, t, err);
		else if (ret < 0 && (err->sys_errno == EAGAIN || err->sys_errno == EWOULDBLOCK))
			vmlet_err_prefix(err, "timed out after %u ms: ", t->timeout_ms);
	}
	conn_close(&c);
	return ret;
}
