/* agentd's event loop and connection state machine, driven through a real
 * local (unix) listener with a plain client socket, and a fake hostd on
 * NNG for the hostd side: framing errors, strict decoding, the rate limit,
 * the connection limit, idle timeouts, peer refusal, the hostd-down 503 and
 * recovery, and a connection that goes away while hostd is working. */
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "agentd/handlers.h"
#include "agentd/hostclient.h"
#include "agentd/local.h"
#include "agentd/loop.h"
#include "agentd_fake_hostd.h"
#include "rpc/strict.h"

#define PUMP_TURNS 3000 /* x 10 ms at most: a bound, not a timing assertion */

struct harness {
	char dir[64];
	char url[200];
	struct vmlet_config cfg;
	struct agentd_hostclient *hc;
	struct agentd_loop *loop;
	struct agentd_local_listener l;
	struct fake_hostd fh;
};

static void harness_config(struct harness *h)
{
	vmlet_config_defaults(&h->cfg);
	snprintf(h->cfg.node_id, sizeof(h->cfg.node_id), "node-a");
	snprintf(h->cfg.local_socket, sizeof(h->cfg.local_socket), "%s/agentd.sock", h->dir);
	/* The test process is an admin whoever runs it. */
	h->cfg.admin_gid = getegid();
	h->cfg.hostd_timeout_ms = 10000;
}

static void harness_start(struct harness *h)
{
	struct agentd_hostclient_opts o = { .url = h->url, .recv_max = h->cfg.max_frame,
					    .timeout_ms = h->cfg.hostd_timeout_ms,
					    .max_in_flight = h->cfg.max_connections * 2 };
	struct vmlet_err err;

	assert_int_equal(agentd_local_listen(&h->cfg, &h->l, &err), 0);
	assert_int_equal(agentd_hostclient_open(&o, &h->hc, &err), 0);
	assert_int_equal(agentd_loop_new(&h->cfg, NULL, h->hc, &h->loop, &err), 0);
	assert_int_equal(agentd_loop_add_listener(h->loop, h->l.fd, AGENTD_TRANSPORT_LOCAL, &err), 0);
}

static int setup(void **state)
{
	struct harness *h = calloc(1, sizeof(*h));

	snprintf(h->dir, sizeof(h->dir), "/tmp/vmlet-agentd-conn-XXXXXX");
	if (!mkdtemp(h->dir))
		return -1;
	snprintf(h->url, sizeof(h->url), "ipc://%s/hostd.sock", h->dir);
	harness_config(h);
	*state = h;
	return 0;
}

static int teardown(void **state)
{
	struct harness *h = *state;
	struct vmlet_err err;
	char cmd[128];

	agentd_loop_free(h->loop);
	agentd_hostclient_close(h->hc);
	fake_hostd_stop(&h->fh);
	if (h->l.fd >= 0 || h->l.path[0])
		agentd_local_close(&h->l, &err);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", h->dir);
	free(h);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- client side ------------------------------------------------------------- */

static int client_connect(struct harness *h)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memcpy(sa.sun_path, h->l.path, sizeof(h->l.path));
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void send_all(int fd, const void *buf, size_t len)
{
	assert_int_equal(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void send_request(int fd, const Vmlet__V1__AgentRequest *req)
{
	size_t len = protobuf_c_message_get_packed_size(&req->base);
	uint8_t *buf = malloc(4 + len);
	buf[0] = (uint8_t)(len >> 24);
	buf[1] = (uint8_t)(len >> 16);
	buf[2] = (uint8_t)(len >> 8);
	buf[3] = (uint8_t)len;
	protobuf_c_message_pack(&req->base, buf + 4);
	send_all(fd, buf, 4 + len);
	free(buf);
}

static void send_node_info(int fd)
{
	Vmlet__V1__AgentRequest req = VMLET__V1__AGENT_REQUEST__INIT;
	Vmlet__V1__NodeInfoRequest ni = VMLET__V1__NODE_INFO_REQUEST__INIT;
	req.request_case = VMLET__V1__AGENT_REQUEST__REQUEST_NODE_INFO;
	req.node_info = &ni;
	send_request(fd, &req);
}

/* Turn the loop until fd has something to read (data or EOF). */
static void pump_until_readable(struct harness *h, int fd)
{
	struct vmlet_err err;

	for (int i = 0; i < PUMP_TURNS; i++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 0) > 0)
			return;
		assert_true(agentd_loop_run_once(h->loop, 10, &err) >= 0);
	}
	fail_msg("nothing arrived on the client socket");
}

static void read_exact(struct harness *h, int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t r;
		pump_until_readable(h, fd);
		r = recv(fd, buf + got, len - got, MSG_DONTWAIT);
		if (r < 0 && errno == EAGAIN)
			continue;
		assert_true(r > 0);
		got += (size_t)r;
	}
}

static Vmlet__V1__AgentResponse *read_response(struct harness *h, int fd)
{
	uint8_t hdr[4], *buf;
	size_t len;
	struct vmlet_err err;
	ProtobufCMessage *m;

	read_exact(h, fd, hdr, 4);
	len = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
	assert_true(len > 0 && len < (1u << 20));
	buf = malloc(len);
	read_exact(h, fd, buf, len);
	/* agentd's answers must pass the same strict decoder clients use. */
	m = vmlet_strict_unpack(&vmlet__v1__agent_response__descriptor, buf, len, &err);
	free(buf);
	if (!m)
		fail_msg("response does not decode: %s", err.msg);
	return (Vmlet__V1__AgentResponse *)m;
}

/* Reads one response and checks it is Error{code}; returns its message
 * copied into msg. */
static void expect_error(struct harness *h, int fd, uint32_t code, char *msg, size_t msglen)
{
	Vmlet__V1__AgentResponse *r = read_response(h, fd);
	assert_int_equal(r->response_case, VMLET__V1__AGENT_RESPONSE__RESPONSE_ERROR);
	if (r->error->code != code)
		fail_msg("expected error %u, got %u: %s", code, r->error->code, r->error->message);
	if (msg)
		snprintf(msg, msglen, "%s", r->error->message);
	protobuf_c_message_free_unpacked(&r->base, NULL);
}

static void expect_eof(struct harness *h, int fd)
{
	char c;
	ssize_t r;

	pump_until_readable(h, fd);
	r = recv(fd, &c, 1, MSG_DONTWAIT);
	/* A clean close (0) or a reset: either way the connection is gone. */
	assert_true(r == 0 || (r < 0 && errno == ECONNRESET));
}

static void pump_until_connections(struct harness *h, size_t n)
{
	struct vmlet_err err;
	for (int i = 0; i < PUMP_TURNS && agentd_loop_connections(h->loop) != n; i++)
		assert_true(agentd_loop_run_once(h->loop, 10, &err) >= 0);
	assert_int_equal(agentd_loop_connections(h->loop), n);
}

static void wait_hostd(struct harness *h, bool up)
{
	struct vmlet_err err;
	for (int i = 0; i < PUMP_TURNS && agentd_hostclient_connected(h->hc) != up; i++)
		assert_true(agentd_loop_run_once(h->loop, 10, &err) >= 0);
	assert_true(agentd_hostclient_connected(h->hc) == up);
}

static void pump_until_in_flight(struct harness *h, size_t n)
{
	struct vmlet_err err;
	for (int i = 0; i < PUMP_TURNS && agentd_hostclient_in_flight(h->hc) != n; i++)
		assert_true(agentd_loop_run_once(h->loop, 10, &err) >= 0);
	assert_int_equal(agentd_hostclient_in_flight(h->hc), n);
}

/* Starts the fake hostd in MODE and waits until agentd is connected to it. */
static void hostd_up(struct harness *h, enum fake_hostd_mode mode)
{
	assert_int_equal(fake_hostd_start(&h->fh, h->url), 0);
	atomic_store(&h->fh.mode, mode);
	wait_hostd(h, true);
}

/* node_info on FD is answered with the fake hostd's node facts. */
static void expect_node_info(struct harness *h, int fd)
{
	Vmlet__V1__AgentResponse *r;

	send_node_info(fd);
	r = read_response(h, fd);
	assert_int_equal(r->response_case, VMLET__V1__AGENT_RESPONSE__RESPONSE_NODE_INFO);
	assert_string_equal(r->node_info->node_id, FAKE_NODE_ID);
	assert_int_equal(r->node_info->total_vcpus, 2);
	protobuf_c_message_free_unpacked(&r->base, NULL);
}

/* A WakeInstanceResult for t/p/INSTANCE: running, hostd's pid, and the
 * time agentd measured (non-zero: a real interval, not a default). */
static void expect_wake(struct harness *h, int fd, const char *instance)
{
	Vmlet__V1__AgentResponse *r = read_response(h, fd);

	assert_int_equal(r->response_case, VMLET__V1__AGENT_RESPONSE__RESPONSE_WAKE_INSTANCE);
	assert_non_null(r->wake_instance->instance);
	assert_string_equal(r->wake_instance->instance->instance_id, instance);
	assert_int_equal(r->wake_instance->instance->state,
			 VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_RUNNING);
	assert_int_equal(r->wake_instance->instance->pid, 4242);
	assert_true(r->wake_instance->wake_micros > 0);
	protobuf_c_message_free_unpacked(&r->base, NULL);
}

/* ---- framing -------------------------------------------------------------------- */

/* BYTES on a new connection lose the framing: Error{code}, its message
 * containing NEEDLE (unless NULL), then agentd closes the connection. */
static void expect_framing_lost(struct harness *h, const void *bytes, size_t len, uint32_t code,
				const char *needle)
{
	char msg[VMLET_ERR_MSG_MAX];
	int fd = client_connect(h);

	send_all(fd, bytes, len);
	expect_error(h, fd, code, msg, sizeof(msg));
	if (needle)
		assert_non_null(strstr(msg, needle));
	expect_eof(h, fd);
	close(fd);
}

static void oversize_frame_413_then_close(void **state)
{
	struct harness *h = *state;
	const uint8_t hdr[4] = { 0x00, 0x20, 0x00, 0x00 }; /* 2 MiB > 1 MiB cap */

	harness_start(h);
	expect_framing_lost(h, hdr, 4, 413, "2097152");
	pump_until_connections(h, 0);
}

static void garbage_bytes_413_then_close(void **state)
{
	struct harness *h = *state;
	const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

	harness_start(h);
	/* "GET " read as a length is 1195725856 bytes. */
	expect_framing_lost(h, http, sizeof(http) - 1, 413, NULL);
}

static void zero_length_frame_400_then_close(void **state)
{
	struct harness *h = *state;
	const uint8_t hdr[4] = { 0, 0, 0, 0 };

	harness_start(h);
	expect_framing_lost(h, hdr, 4, 400, "zero-length");
}

static void bad_protobuf_400_connection_kept(void **state)
{
	struct harness *h = *state;
	/* node_info {} followed by unknown field 99 (varint 1). */
	const uint8_t unknown[] = { 0, 0, 0, 5, 0x12, 0x00, 0x98, 0x06, 0x01 };
	/* Not protobuf at all: a truncated length-delimited field. */
	const uint8_t broken[] = { 0, 0, 0, 2, 0x12, 0x05 };
	/* Well-formed but no request set (empty oneof). */
	const uint8_t empty[] = { 0, 0, 0, 2, 0x08, 0x01 };
	char msg[VMLET_ERR_MSG_MAX];
	int fd;

	harness_start(h);
	fd = client_connect(h);
	send_all(fd, unknown, sizeof(unknown));
	expect_error(h, fd, 400, msg, sizeof(msg));
	assert_non_null(strstr(msg, "unknown field"));
	send_all(fd, broken, sizeof(broken));
	expect_error(h, fd, 400, NULL, 0);
	send_all(fd, empty, sizeof(empty));
	expect_error(h, fd, 400, NULL, 0);
	/* Still in sync: a valid request is served (hostd is down here). */
	send_node_info(fd);
	expect_error(h, fd, 503, msg, sizeof(msg));
	assert_non_null(strstr(msg, "hostd unavailable"));
	assert_int_equal(agentd_loop_connections(h->loop), 1);
	close(fd);
	pump_until_connections(h, 0);
}

static void pipelined_frames_answered_in_order(void **state)
{
	struct harness *h = *state;
	/* Three frames in one write, the last split across two writes. */
	const uint8_t three[] = { 0, 0, 0, 2, 0x12, 0x00,   /* node_info  -> 503 */
				  0, 0, 0, 2, 0x08, 0x01,   /* empty oneof -> 400 */
				  0, 0, 0, 2, 0x1a };       /* node_stats, 1 byte short */
	const uint8_t tail[] = { 0x00 };
	int fd;

	harness_start(h);
	fd = client_connect(h);
	send_all(fd, three, sizeof(three));
	expect_error(h, fd, 503, NULL, 0);
	expect_error(h, fd, 400, NULL, 0);
	send_all(fd, tail, sizeof(tail));
	expect_error(h, fd, 503, NULL, 0);
	close(fd);
}

/* ---- limits ------------------------------------------------------------------------ */

static void rate_limit_429_connection_kept(void **state)
{
	struct harness *h = *state;
	char msg[VMLET_ERR_MSG_MAX];
	int fd;

	h->cfg.rate_per_sec = 1;
	h->cfg.rate_burst = 2;
	harness_start(h);
	fd = client_connect(h);
	send_node_info(fd);
	expect_error(h, fd, 503, NULL, 0);
	send_node_info(fd);
	expect_error(h, fd, 503, NULL, 0);
	/* Burst used up; the next token is a second away. */
	send_node_info(fd);
	expect_error(h, fd, 429, msg, sizeof(msg));
	assert_non_null(strstr(msg, "rate limit"));
	assert_int_equal(agentd_loop_connections(h->loop), 1);
	close(fd);
}

static void max_connections_refuses_extra(void **state)
{
	struct harness *h = *state;
	int a, b, c;

	h->cfg.max_connections = 2;
	harness_start(h);
	a = client_connect(h);
	b = client_connect(h);
	pump_until_connections(h, 2);
	c = client_connect(h);
	expect_eof(h, c);
	assert_int_equal(agentd_loop_connections(h->loop), 2);
	/* The admitted ones still work, and a slot frees on close. */
	send_node_info(a);
	expect_error(h, a, 503, NULL, 0);
	close(b);
	pump_until_connections(h, 1);
	close(c);
	c = client_connect(h);
	send_node_info(c);
	expect_error(h, c, 503, NULL, 0);
	close(a);
	close(c);
}

static void idle_and_slowloris_connections_closed(void **state)
{
	struct harness *h = *state;
	const uint8_t partial[2] = { 0, 0 };
	int idle, slow;

	h->cfg.idle_timeout_ms = 100;
	harness_start(h);
	idle = client_connect(h);
	slow = client_connect(h);
	send_all(slow, partial, sizeof(partial)); /* half a header, then nothing */
	expect_eof(h, idle);
	expect_eof(h, slow);
	pump_until_connections(h, 0);
	close(idle);
	close(slow);
}

/* ---- the local peer policy, for real -------------------------------------------- */

static void outsider_gets_403_then_close(void **state)
{
	struct harness *h = *state;
	pid_t pid;
	int status = -1;
	struct vmlet_err err;

	if (geteuid() != 0)
		skip(); /* needs to become another user */
	h->cfg.admin_gid = 4242; /* a group the outsider is not in */
	harness_start(h);
	/* Let "nobody" reach the socket: the file mode would stop them before
	 * agentd's policy is ever asked. */
	assert_int_equal(chmod(h->dir, 0711), 0);
	assert_int_equal(chmod(h->l.path, 0666), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* No NNG here: plain syscalls only. */
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		uint8_t buf[512];
		size_t got = 0;
		ssize_t r;
		int fd;

		if (setgroups(0, NULL) || setgid(65534) || setuid(65534))
			_exit(10);
		memcpy(sa.sun_path, h->l.path, sizeof(h->l.path));
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			_exit(11);
		while ((r = recv(fd, buf + got, sizeof(buf) - got, 0)) > 0)
			got += (size_t)r;
		/* One Error frame, then EOF. */
		if (got < 4 || got != 4 + ((size_t)buf[2] << 8 | buf[3]))
			_exit(12);
		ProtobufCMessage *m = vmlet_strict_unpack(&vmlet__v1__agent_response__descriptor,
							  buf + 4, got - 4, &err);
		if (!m)
			_exit(13);
		Vmlet__V1__AgentResponse *resp = (Vmlet__V1__AgentResponse *)m;
		if (resp->response_case != VMLET__V1__AGENT_RESPONSE__RESPONSE_ERROR ||
		    resp->error->code != 403 || !strstr(resp->error->message, "uid 65534"))
			_exit(14);
		_exit(0);
	}
	for (int i = 0; i < PUMP_TURNS; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		assert_true(agentd_loop_run_once(h->loop, 10, &err) >= 0);
	}
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	pump_until_connections(h, 0);
}

/* ---- with a hostd ------------------------------------------------------------------- */

static void serves_through_hostd_and_recovers(void **state)
{
	struct harness *h = *state;
	Vmlet__V1__AgentRequest req = VMLET__V1__AGENT_REQUEST__INIT;
	Vmlet__V1__WakeInstanceRequest w = VMLET__V1__WAKE_INSTANCE_REQUEST__INIT;
	char msg[VMLET_ERR_MSG_MAX];
	int fd;

	harness_start(h);
	fd = client_connect(h);
	send_node_info(fd);
	expect_error(h, fd, 503, NULL, 0);

	hostd_up(h, FAKE_REPLY);
	expect_node_info(h, fd);

	/* Wake: unknown -> hostd's 404; stopped -> hostd's 409 naming the
	 * state; sleeping -> woken, with the time it took. */
	req.request_case = VMLET__V1__AGENT_REQUEST__REQUEST_WAKE_INSTANCE;
	req.wake_instance = &w;
	w.tenant_id = (char *)"acme";
	w.pool_id = (char *)"web";
	w.instance_id = (char *)"i-00000001";
	send_request(fd, &req);
	expect_error(h, fd, 404, msg, sizeof(msg));
	assert_non_null(strstr(msg, "not found"));
	w.instance_id = (char *)FAKE_STOPPED_INSTANCE;
	send_request(fd, &req);
	expect_error(h, fd, 409, msg, sizeof(msg));
	assert_non_null(strstr(msg, "it is stopped"));
	w.instance_id = (char *)FAKE_KNOWN_INSTANCE;
	send_request(fd, &req);
	expect_wake(h, fd, FAKE_KNOWN_INSTANCE);
	/* Invalid ids never reach hostd. */
	int served = atomic_load(&h->fh.served);
	w.instance_id = (char *)"../../etc";
	send_request(fd, &req);
	expect_error(h, fd, 400, NULL, 0);
	assert_int_equal(atomic_load(&h->fh.served), served);

	/* hostd dies: 503; comes back: served again without restarting. */
	fake_hostd_stop(&h->fh);
	wait_hostd(h, false);
	send_node_info(fd);
	expect_error(h, fd, 503, NULL, 0);
	hostd_up(h, FAKE_REPLY);
	expect_node_info(h, fd);
	close(fd);
}

static void client_gone_while_hostd_works(void **state)
{
	struct harness *h = *state;
	int fd, other;

	harness_start(h);
	hostd_up(h, FAKE_SILENT);
	fd = client_connect(h);
	send_node_info(fd);
	pump_until_in_flight(h, 1);
	close(fd);
	/* The connection goes; its request is cancelled and its late
	 * completion is recognised as stale and dropped. */
	pump_until_connections(h, 0);
	pump_until_in_flight(h, 0);
	/* A new connection (likely the same slot) is not confused by it. */
	atomic_store(&h->fh.mode, FAKE_REPLY);
	other = client_connect(h);
	expect_node_info(h, other);
	close(other);
}

static void reconcile_invalid_and_valid(void **state)
{
	struct harness *h = *state;
	Vmlet__V1__AgentRequest req = VMLET__V1__AGENT_REQUEST__INIT;
	Vmlet__V1__ReconcileRequest rr = VMLET__V1__RECONCILE_REQUEST__INIT;
	Vmlet__V1__DesiredState ds = VMLET__V1__DESIRED_STATE__INIT;
	char msg[VMLET_ERR_MSG_MAX];
	int fd;

	harness_start(h);
	fd = client_connect(h);
	req.request_case = VMLET__V1__AGENT_REQUEST__REQUEST_RECONCILE;
	req.reconcile = &rr;
	send_request(fd, &req);
	expect_error(h, fd, 400, msg, sizeof(msg));
	assert_string_equal(msg, "reconcile.desired_state: required");
	rr.desired_state = &ds;
	ds.schema_version = 1;
	ds.node_id = (char *)"someone-else";
	send_request(fd, &req);
	expect_error(h, fd, 400, msg, sizeof(msg));
	assert_non_null(strstr(msg, "node_id"));
	ds.node_id = (char *)"node-a";
	send_request(fd, &req);
	/* This harness attaches no reconcile engine (test_agentd_reconcile
	 * drives one through the loop). */
	expect_error(h, fd, 503, msg, sizeof(msg));
	assert_non_null(strstr(msg, "nothing was changed"));
	close(fd);
}

static void stop_ends_the_loop(void **state)
{
	struct harness *h = *state;
	struct vmlet_err err;

	harness_start(h);
	agentd_loop_stop(h->loop);
	assert_int_equal(agentd_loop_run(h->loop, &err), 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(oversize_frame_413_then_close),
		T(garbage_bytes_413_then_close),
		T(zero_length_frame_400_then_close),
		T(bad_protobuf_400_connection_kept),
		T(pipelined_frames_answered_in_order),
		T(rate_limit_429_connection_kept),
		T(max_connections_refuses_extra),
		T(idle_and_slowloris_connections_closed),
		T(outsider_gets_403_then_close),
		T(serves_through_hostd_and_recovers),
		T(client_gone_while_hostd_works),
		T(reconcile_invalid_and_valid),
		T(stop_ends_the_loop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
