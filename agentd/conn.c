#include "agentd/conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rpc/strict.h"
#include "shared/log.h"

const char *agentd_conn_state_name(enum agentd_conn_state s)
{
	static const char *const names[] = {
		[CONN_FREE] = "free",           [CONN_HANDSHAKE] = "handshake",
		[CONN_READING] = "reading",     [CONN_WAITING] = "waiting_hostd",
		[CONN_WRITING] = "writing",     [CONN_DRAINING] = "draining",
		[CONN_CLOSED] = "closed",
	};
	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

static uint64_t ms_to_ns(uint32_t ms)
{
	return (uint64_t)ms * 1000000ull;
}

static void conn_close(struct agentd_conn *c, const char *reason)
{
	char rbuf[VLOG_STR_MAX];

	vlog(VLOG_INFO, "conn_closed", "transport=%s peer=%s identity=%s requests=%llu reason=%s",
	     agentd_transport_name(c->transport), c->peer, c->identity,
	     (unsigned long long)c->requests, vlog_str(reason, rbuf, sizeof(rbuf)));
	c->state = CONN_CLOSED;
}

static void set_interest(struct agentd_conn *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.u64 = agentd_conn_tag(c) };

	if (c->interest == events)
		return;
	if (epoll_ctl(c->env->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
		conn_close(c, "epoll_ctl failed");
		return;
	}
	c->interest = events;
}

/* ---- transport I/O: plain socket or TLS, same result codes ------------- */

static int io_read(struct agentd_conn *c, void *buf, size_t len, size_t *n,
		   struct vmlet_err *err)
{
	ssize_t r;

	if (c->tls)
		return agentd_tls_read(c->tls, buf, len, n, err);
	do
		r = recv(c->fd, buf, len, 0);
	while (r < 0 && errno == EINTR);
	if (r > 0) {
		*n = (size_t)r;
		return AGENTD_TLS_OK;
	}
	if (r == 0)
		return AGENTD_TLS_CLOSED;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return AGENTD_TLS_WANT_READ;
	vmlet_err_sys(err, VMLET_E_UNAVAILABLE, "recv");
	return AGENTD_TLS_ERROR;
}

static int io_write(struct agentd_conn *c, const void *buf, size_t len, size_t *n,
		    struct vmlet_err *err)
{
	ssize_t r;

	if (c->tls)
		return agentd_tls_write(c->tls, buf, len, n, err);
	do
		r = send(c->fd, buf, len, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	if (r >= 0) {
		*n = (size_t)r;
		return AGENTD_TLS_OK;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return AGENTD_TLS_WANT_WRITE;
	vmlet_err_sys(err, VMLET_E_UNAVAILABLE, "send");
	return AGENTD_TLS_ERROR;
}

/* A transport result other than AGENTD_TLS_OK: wait for the direction the
 * socket (or wolfSSL, which may need to write to read) asks for, or close
 * the connection with the reason for a clean close or for a failure. */
static void io_wait_or_close(struct agentd_conn *c, int r, const char *closed, const char *failed)
{
	switch (r) {
	case AGENTD_TLS_WANT_READ:
		set_interest(c, EPOLLIN);
		return;
	case AGENTD_TLS_WANT_WRITE:
		set_interest(c, EPOLLOUT);
		return;
	case AGENTD_TLS_CLOSED:
		conn_close(c, closed);
		return;
	default:
		conn_close(c, failed);
		return;
	}
}

/* ---- responses ---------------------------------------------------------- */

/* Error messages quote client input and may have been cut at a byte
 * limit: the client decodes strictly, so never send invalid UTF-8. */
static void utf8_sanitize(char *s)
{
	size_t len = strlen(s);

	for (int i = 0; i < 4 && len > 0 && !vmlet_utf8_valid(s, len); i++)
		s[--len] = '\0';
	if (vmlet_utf8_valid(s, len))
		return;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80)
			s[i] = '?';
}

static void log_request(struct agentd_conn *c, int code, const char *errmsg)
{
	char ebuf[VLOG_STR_MAX];
	uint64_t us = (agentd_now_ns() - c->req_start_ns) / 1000u;

	vlog(VLOG_INFO, "request",
	     "transport=%s peer=%s identity=%s request=%s code=%d duration_us=%llu%s%s",
	     agentd_transport_name(c->transport), c->peer, c->identity,
	     c->handler ? c->handler->name : "-", code, (unsigned long long)us,
	     errmsg ? " error=" : "", errmsg ? vlog_str(errmsg, ebuf, sizeof(ebuf)) : "");
}

static void flush(struct agentd_conn *c);

static void respond(struct agentd_conn *c, const ProtobufCMessage *msg, int code,
		    const char *errmsg, bool close_after)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf;

	log_request(c, code, errmsg);
	if (len > UINT32_MAX || !(buf = malloc(VMLET_FRAME_HDR + len))) {
		conn_close(c, "cannot allocate the response");
		return;
	}
	buf[0] = (uint8_t)(len >> 24);
	buf[1] = (uint8_t)(len >> 16);
	buf[2] = (uint8_t)(len >> 8);
	buf[3] = (uint8_t)len;
	protobuf_c_message_pack(msg, buf + VMLET_FRAME_HDR);
	free(c->out);
	c->out = buf;
	c->out_len = VMLET_FRAME_HDR + len;
	c->out_off = 0;
	c->close_after = close_after;
	c->state = CONN_WRITING;
	/* A peer that stops reading its answer is cut off like an idle one. */
	c->deadline_ns = agentd_now_ns() + ms_to_ns(c->env->cfg->idle_timeout_ms);
	flush(c);
}

static void respond_error(struct agentd_conn *c, int code, const char *msg, bool close_after)
{
	Vmlet__V1__Error e = VMLET__V1__ERROR__INIT;
	Vmlet__V1__AgentResponse r = VMLET__V1__AGENT_RESPONSE__INIT;
	char text[VMLET_ERR_MSG_MAX];

	if (code < 400 || code > 599)
		code = VMLET_E_INTERNAL;
	snprintf(text, sizeof(text), "%s", msg && *msg ? msg : vmlet_code_name(code));
	utf8_sanitize(text);
	e.code = (uint32_t)code;
	e.message = text;
	r.response_case = VMLET__V1__AGENT_RESPONSE__RESPONSE_ERROR;
	r.error = &e;
	respond(c, &r.base, code, text, close_after);
}

/* ---- reading ------------------------------------------------------------ */

static void enter_reading(struct agentd_conn *c)
{
	c->state = CONN_READING;
	c->handler = NULL;
	/* The idle deadline runs from here and is not extended by partial
	 * bytes: a trickling client (slowloris) gets idle_timeout_ms for the
	 * whole next frame. */
	c->deadline_ns = agentd_now_ns() + ms_to_ns(c->env->cfg->idle_timeout_ms);
	/* Bytes may already be waiting where epoll cannot see them: past the
	 * previous frame in our buffer, or inside wolfSSL. The loop reads them
	 * on its next turn (not from here: no recursion per pipelined frame). */
	if (c->leftover || c->tls)
		c->pending_input = true;
	set_interest(c, EPOLLIN);
}

static void handle_frame(struct agentd_conn *c)
{
	const struct agentd_conn_env *env = c->env;
	Vmlet__V1__AgentRequest *req;
	struct agentd_host_call call;
	struct vmlet_err err;
	uint8_t *payload;
	size_t len;

	vmlet_err_clear(&err);
	payload = vmlet_frame_take(&c->reader, &len);
	c->req_start_ns = agentd_now_ns();
	c->requests++;
	c->handler = NULL;
	if (!agentd_bucket_take(&c->bucket, c->req_start_ns)) {
		free(payload);
		vmlet_err_set(&err, VMLET_E_RATE_LIMITED, 0,
			      "rate limit exceeded: %u requests per second per connection, burst %u",
			      env->cfg->rate_per_sec, env->cfg->rate_burst);
		respond_error(c, err.code, err.msg, false);
		return;
	}
	req = (Vmlet__V1__AgentRequest *)vmlet_strict_unpack(&vmlet__v1__agent_request__descriptor,
							      payload, len, &err);
	free(payload);
	if (!req) {
		/* Well framed but not a valid request: the stream is still in
		 * sync, so the connection stays. */
		respond_error(c, err.code ? err.code : VMLET_E_INVALID, err.msg, false);
		return;
	}
	c->handler = agentd_handler_lookup(env->table, env->table_len, (int)req->request_case,
					   c->transport, &err);
	if (!c->handler) {
		protobuf_c_message_free_unpacked(&req->base, NULL);
		respond_error(c, err.code, err.msg, false);
		return;
	}
	memset(&call, 0, sizeof(call));
	vmlet__host__v1__host_request__init(&call.req);
	if (c->handler->prepare(req, env->cfg, &call, &err) < 0 ||
	    (c->handler->serve
		     ? c->handler->serve(req, env->reconciler, agentd_conn_cookie(c), &err)
		     : agentd_hostclient_submit(env->hc, &call.req, agentd_conn_cookie(c),
						&c->host_op, &err)) < 0) {
		protobuf_c_message_free_unpacked(&req->base, NULL);
		respond_error(c, err.code, err.msg, false);
		return;
	}
	protobuf_c_message_free_unpacked(&req->base, NULL);
	c->state = CONN_WAITING;
	c->deadline_ns = 0; /* hostd_timeout_ms bounds this state */
	set_interest(c, 0);
}

static int keep_leftover(struct agentd_conn *c, const uint8_t *data, size_t n)
{
	c->leftover = malloc(n);
	if (!c->leftover)
		return -1;
	memcpy(c->leftover, data, n);
	c->leftover_len = n;
	c->leftover_off = 0;
	return 0;
}

static void process_input(struct agentd_conn *c)
{
	const struct agentd_conn_env *env = c->env;
	struct vmlet_err err;

	vmlet_err_clear(&err);
	for (;;) {
		const uint8_t *data;
		size_t n = 0, used = 0;
		bool from_leftover = c->leftover != NULL;
		int r;

		if (from_leftover) {
			data = c->leftover + c->leftover_off;
			n = c->leftover_len - c->leftover_off;
		} else {
			r = io_read(c, env->scratch, env->scratch_len, &n, &err);
			if (r != AGENTD_TLS_OK) {
				io_wait_or_close(c, r,
						 c->reader.hdr_got ? "eof in the middle of a frame" : "eof",
						 err.msg[0] ? err.msg : "read failed");
				return;
			}
			if (n == 0) {
				set_interest(c, EPOLLIN);
				return;
			}
			data = env->scratch;
		}

		r = vmlet_frame_feed(&c->reader, data, n, &used, &err);
		if (from_leftover) {
			c->leftover_off += used;
			if (c->leftover_off >= c->leftover_len) {
				free(c->leftover);
				c->leftover = NULL;
			} else if (used == 0 && r == 0) {
				conn_close(c, "frame reader made no progress");
				return;
			}
		} else if (used < n && r >= 0 && keep_leftover(c, data + used, n - used) < 0) {
			conn_close(c, "cannot buffer pipelined input");
			return;
		}
		if (r < 0) {
			/* Framing is lost (oversize or zero length): answer, then
			 * close — whatever follows cannot be trusted to be a frame. */
			c->req_start_ns = agentd_now_ns();
			respond_error(c, err.code, err.msg, true);
			return;
		}
		if (r == 1) {
			handle_frame(c);
			return;
		}
	}
}

/* ---- writing, draining ---------------------------------------------------- */

static void begin_drain(struct agentd_conn *c)
{
	if (c->tls)
		agentd_tls_shutdown(c->tls);
	shutdown(c->fd, SHUT_WR);
	c->state = CONN_DRAINING;
	c->drained = 0;
	c->deadline_ns = agentd_now_ns() + ms_to_ns(AGENTD_DRAIN_MS);
	set_interest(c, EPOLLIN);
}

static void drain(struct agentd_conn *c)
{
	for (;;) {
		ssize_t r = recv(c->fd, c->env->scratch, c->env->scratch_len, MSG_DONTWAIT);
		if (r > 0) {
			c->drained += (size_t)r;
			if (c->drained > AGENTD_DRAIN_MAX) {
				conn_close(c, "closed after error (peer kept sending)");
				return;
			}
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		conn_close(c, "closed after error");
		return;
	}
}

static void flush(struct agentd_conn *c)
{
	struct vmlet_err err;

	vmlet_err_clear(&err);
	while (c->out_off < c->out_len) {
		size_t n = 0;
		int r = io_write(c, c->out + c->out_off, c->out_len - c->out_off, &n, &err);

		if (r != AGENTD_TLS_OK) {
			io_wait_or_close(c, r, "peer closed before reading the response",
					 err.msg[0] ? err.msg : "write failed");
			return;
		}
		c->out_off += n;
	}
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_off = 0;
	if (c->close_after)
		begin_drain(c);
	else
		enter_reading(c);
}

/* ---- TLS handshake -------------------------------------------------------- */

static void handshake(struct agentd_conn *c)
{
	struct vmlet_err err;
	char ebuf[VLOG_STR_MAX];
	int r;

	vmlet_err_clear(&err);
	r = agentd_tls_handshake(c->tls, &err);
	if (r == AGENTD_TLS_ERROR)
		vlog(VLOG_WARN, "tls_handshake_failed", "peer=%s error=%s", c->peer,
		     vlog_str(err.msg, ebuf, sizeof(ebuf)));
	if (r != AGENTD_TLS_OK) {
		io_wait_or_close(c, r, "peer closed during the TLS handshake",
				 "TLS handshake failed");
		return;
	}
	vlog_str(agentd_tls_peer_identity(c->tls), c->identity, sizeof(c->identity));
	c->req_start_ns = agentd_now_ns();
	if (!agentd_tls_peer_is_coordinator(c->tls, c->env->cfg)) {
		char msg[VMLET_ERR_MSG_MAX];
		vlog(VLOG_WARN, "conn_forbidden", "transport=tls peer=%s identity=%s", c->peer,
		     c->identity);
		snprintf(msg, sizeof(msg), "client identity %s is not a configured coordinator",
			 c->identity);
		respond_error(c, VMLET_E_FORBIDDEN, msg, true);
		return;
	}
	vlog(VLOG_INFO, "conn_accepted", "transport=tls peer=%s identity=%s", c->peer, c->identity);
	enter_reading(c);
}

/* ---- entry points ---------------------------------------------------------- */

void agentd_conn_init(struct agentd_conn *c, const struct agentd_conn_env *env, int fd,
		      unsigned transport, uint64_t now_ns)
{
	c->env = env;
	c->fd = fd;
	c->transport = transport;
	c->tls = NULL;
	c->interest = 0;
	c->pending_input = false;
	c->deadline_ns = 0;
	vmlet_frame_reader_init(&c->reader, env->cfg->max_frame);
	c->leftover = NULL;
	c->leftover_len = c->leftover_off = 0;
	agentd_bucket_init(&c->bucket, env->cfg->rate_per_sec, env->cfg->rate_burst, now_ns);
	c->out = NULL;
	c->out_len = c->out_off = 0;
	c->close_after = false;
	c->drained = 0;
	c->handler = NULL;
	c->host_op = NULL;
	c->req_start_ns = now_ns;
	c->requests = 0;
	snprintf(c->peer, sizeof(c->peer), "-");
	snprintf(c->identity, sizeof(c->identity), "-");
	c->state = CONN_READING;
}

void agentd_conn_start(struct agentd_conn *c)
{
	if (c->tls) {
		c->state = CONN_HANDSHAKE;
		c->deadline_ns = agentd_now_ns() + ms_to_ns(c->env->cfg->handshake_timeout_ms);
		handshake(c);
		return;
	}
	enter_reading(c);
}

void agentd_conn_refuse(struct agentd_conn *c, int code, const char *msg)
{
	c->req_start_ns = agentd_now_ns();
	respond_error(c, code, msg, true);
}

void agentd_conn_on_io(struct agentd_conn *c, uint32_t events)
{
	switch (c->state) {
	case CONN_HANDSHAKE:
		handshake(c);
		break;
	case CONN_READING:
		c->pending_input = false;
		process_input(c);
		break;
	case CONN_WAITING:
		/* Nothing is read while hostd works; only a dead peer is noticed
		 * (EPOLLHUP/ERR are reported even with no events asked for). */
		if (events & (EPOLLHUP | EPOLLERR))
			conn_close(c, "peer went away while its request was in flight");
		break;
	case CONN_WRITING:
		flush(c);
		break;
	case CONN_DRAINING:
		drain(c);
		break;
	case CONN_FREE:
	case CONN_CLOSED:
		break;
	}
}

void agentd_conn_on_host_reply(struct agentd_conn *c, const Vmlet__Host__V1__HostResponse *resp,
			       const struct vmlet_err *err)
{
	Vmlet__V1__AgentResponse out = VMLET__V1__AGENT_RESPONSE__INIT;
	union agentd_reply_scratch scratch;
	struct vmlet_err e;

	c->host_op = NULL;
	if (c->state != CONN_WAITING)
		return;
	if (!resp) {
		respond_error(c, err->code, err->msg, false);
		return;
	}
	vmlet_err_clear(&e);
	if (agentd_handler_reply(c->handler, resp, (agentd_now_ns() - c->req_start_ns) / 1000u,
				 &scratch, &out, &e) < 0) {
		respond_error(c, e.code, e.msg, false);
		return;
	}
	respond(c, &out.base, 200, NULL, false);
}

void agentd_conn_on_served(struct agentd_conn *c, const Vmlet__V1__AgentResponse *resp,
			   const struct vmlet_err *err)
{
	if (c->state != CONN_WAITING)
		return;
	if (!resp) {
		respond_error(c, err->code, err->msg, false);
		return;
	}
	respond(c, &resp->base, 200, NULL, false);
}

void agentd_conn_on_deadline(struct agentd_conn *c)
{
	char reason[64];

	snprintf(reason, sizeof(reason), "%s timeout",
		 c->state == CONN_HANDSHAKE ? "handshake" :
		 c->state == CONN_DRAINING  ? "drain" :
		 c->state == CONN_WRITING   ? "write" :
					      "idle");
	vlog(VLOG_INFO, "conn_timeout", "transport=%s peer=%s identity=%s state=%s",
	     agentd_transport_name(c->transport), c->peer, c->identity,
	     agentd_conn_state_name(c->state));
	conn_close(c, reason);
}

void agentd_conn_release(struct agentd_conn *c)
{
	if (c->host_op) {
		agentd_hostclient_cancel(c->env->hc, c->host_op);
		c->host_op = NULL;
	}
	if (c->tls) {
		agentd_tls_conn_free(c->tls);
		c->tls = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	vmlet_frame_reader_reset(&c->reader);
	free(c->leftover);
	c->leftover = NULL;
	free(c->out);
	c->out = NULL;
	c->state = CONN_FREE;
}
