/* Host RPC latency: a node-stats HostRequest from the agentd side to a real
 * vmlet-hostd over NNG, through agentd's own client (agentd/hostclient.c:
 * nng_ctx + aio, completion via eventfd, strict decode of the reply),
 * against a raw AF_UNIX SOCK_SEQPACKET ping-pong carrying the same bytes.
 *
 * The baseline's peer is not a plain echo: like hostd it strictly decodes
 * the HostRequest and packs a HostResponse with an empty NodeStats (what
 * hostd answers on an empty registry, byte for byte), and the client packs
 * and strictly decodes on its side too. So the difference is the transport
 * stack (NNG's threads, aio, req/rep bookkeeping) plus hostd's dispatch,
 * peer check and registry scan, which is what agentd pays per request.
 *
 * hostd is started with allow_root_peer = true because the bench runs as
 * root and is itself the client (agentd would be `vmlet`). Both hostd and
 * the SEQPACKET peer are forked before any NNG call (NNG is not fork-safe).
 *
 * Output: `name: value unit` lines and `ratio:` (goal: NNG median <= 1.5x). */
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <poll.h>
#include <stdint.h>

#include "agentd/hostclient.h"
#include "bench/bench_env.h"
#include "rpc/host.pb-c.h"
#include "rpc/strict.h"
#include "shared/log.h"

#define DEFAULT_ITERS 20000
#define WARMUP 500
#define ROUNDS 5 /* alternate NNG and raw blocks so drift hits both alike */
#define MAX_MSG 4096

static void pack_node_stats_request(uint8_t **buf, size_t *len)
{
	Vmlet__Host__V1__HostRequest req = VMLET__HOST__V1__HOST_REQUEST__INIT;
	Vmlet__Host__V1__NodeStatsRequest ns = VMLET__HOST__V1__NODE_STATS_REQUEST__INIT;
	struct vmlet_err err;

	req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_NODE_STATS;
	req.node_stats = &ns;
	if (vmlet_pack(&req.base, buf, len, &err) < 0)
		bench_die("pack request: %s", err.msg);
}

/* What both baseline peers do with a request: decode it strictly like
 * hostd, and answer like hostd on an empty registry. Exits on bad input. */
static void peer_answer(const uint8_t *in, size_t n, uint8_t **out, size_t *out_len)
{
	Vmlet__Host__V1__HostResponse resp = VMLET__HOST__V1__HOST_RESPONSE__INIT;
	Vmlet__V1__NodeStats stats = VMLET__V1__NODE_STATS__INIT;
	ProtobufCMessage *req;
	struct vmlet_err err;

	req = vmlet_strict_unpack(&vmlet__host__v1__host_request__descriptor, in, n, &err);
	if (!req || ((Vmlet__Host__V1__HostRequest *)req)->op_case !=
			    VMLET__HOST__V1__HOST_REQUEST__OP_NODE_STATS)
		_exit(2);
	protobuf_c_message_free_unpacked(req, NULL);
	resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT_NODE_STATS;
	resp.node_stats = &stats;
	if (vmlet_pack(&resp.base, out, out_len, &err) < 0)
		_exit(3);
}

/* The raw baseline's peer, until EOF. */
static void __attribute__((noreturn)) seqpacket_peer(int fd)
{
	uint8_t in[MAX_MSG];
	for (;;) {
		uint8_t *out = NULL;
		size_t out_len = 0;
		ssize_t n = recv(fd, in, sizeof(in), 0);

		if (n <= 0)
			_exit(0);
		peer_answer(in, (size_t)n, &out, &out_len);
		if (send(fd, out, out_len, 0) != (ssize_t)out_len)
			_exit(4);
		free(out);
	}
}

/* A second reference: the same answer from a bare NNG rep socket (no
 * hostd dispatch, peer check or registry scan), so the output separates
 * NNG's cost from hostd's. Forked before the parent touches NNG; this child
 * starts NNG only after the fork. Runs until killed. */
static void __attribute__((noreturn)) nng_echo_peer(const char *url)
{
	nng_socket s;
	if (nng_rep0_open(&s) != 0 || nng_setopt_size(s, NNG_OPT_RECVMAXSZ, MAX_MSG) != 0 ||
	    nng_listen(s, url, NULL, 0) != 0)
		_exit(5);
	for (;;) {
		nng_msg *m;
		uint8_t *out = NULL;
		size_t out_len = 0;

		if (nng_recvmsg(s, &m, 0) != 0)
			_exit(0);
		peer_answer(nng_msg_body(m), nng_msg_len(m), &out, &out_len);
		nng_msg_clear(m);
		if (nng_msg_append(m, out, out_len) != 0 || nng_sendmsg(s, m, 0) != 0)
			_exit(6);
		free(out);
	}
}

/* ---- NNG through agentd's host client --------------------------------------- */

struct reply_state {
	int done;
	int ok;
	size_t resp_len;
	char why[VMLET_ERR_MSG_MAX];
};

static void on_reply(void *arg, uint64_t cookie, const Vmlet__Host__V1__HostResponse *resp,
		     const struct vmlet_err *err)
{
	struct reply_state *st = arg;
	(void)cookie;
	st->done = 1;
	st->ok = resp && resp->result_case == VMLET__HOST__V1__HOST_RESPONSE__RESULT_NODE_STATS;
	if (resp)
		st->resp_len = protobuf_c_message_get_packed_size(&resp->base);
	if (!st->ok)
		snprintf(st->why, sizeof(st->why), "%s",
			 err ? err->msg : "reply is not node_stats");
}

static double nng_round_trip(struct agentd_hostclient *hc, const Vmlet__Host__V1__HostRequest *req,
			     size_t *resp_len)
{
	struct reply_state st = { 0 };
	struct pollfd pfd = { .fd = agentd_hostclient_event_fd(hc), .events = POLLIN };
	struct vmlet_err err;
	double t0 = bench_now_us();

	if (agentd_hostclient_submit(hc, req, 1, NULL, &err) < 0)
		bench_die("submit: %s", err.msg);
	while (!st.done) {
		if (poll(&pfd, 1, 10000) <= 0)
			bench_die("no reply from hostd within 10 s");
		agentd_hostclient_drain(hc, on_reply, &st);
	}
	if (!st.ok)
		bench_die("hostd: %s", st.why);
	*resp_len = st.resp_len;
	return bench_now_us() - t0;
}

static double raw_round_trip(int fd, const Vmlet__Host__V1__HostRequest *req, size_t *resp_len)
{
	uint8_t in[MAX_MSG];
	uint8_t *out = NULL;
	size_t out_len = 0;
	struct vmlet_err err;
	ProtobufCMessage *resp;
	ssize_t n;
	double t0 = bench_now_us();

	if (vmlet_pack(&req->base, &out, &out_len, &err) < 0)
		bench_die("pack: %s", err.msg);
	if (send(fd, out, out_len, 0) != (ssize_t)out_len)
		bench_die("seqpacket send: %s", strerror(errno));
	free(out);
	n = recv(fd, in, sizeof(in), 0);
	if (n <= 0)
		bench_die("seqpacket peer went away");
	resp = vmlet_strict_unpack(&vmlet__host__v1__host_response__descriptor, in, (size_t)n, &err);
	if (!resp)
		bench_die("seqpacket reply: %s", err.msg);
	protobuf_c_message_free_unpacked(resp, NULL);
	*resp_len = (size_t)n;
	return bench_now_us() - t0;
}

int main(int argc, char **argv)
{
	Vmlet__Host__V1__HostRequest req = VMLET__HOST__V1__HOST_REQUEST__INIT;
	Vmlet__Host__V1__NodeStatsRequest ns = VMLET__HOST__V1__NODE_STATS_REQUEST__INIT;
	struct agentd_hostclient_opts opts = { .recv_max = 1u << 20, .timeout_ms = 10000,
					       .max_in_flight = 16 };
	struct agentd_hostclient *hc = NULL, *hc_echo = NULL;
	struct bench_env env;
	struct vmlet_err err;
	char url[PATH_MAX + 64], echo_url[PATH_MAX + 64];
	int sp[2], iters = DEFAULT_ITERS;
	size_t req_len, nng_resp = 0, raw_resp = 0, echo_resp = 0, n_nng = 0, n_raw = 0, n_echo = 0;
	uint8_t *req_buf = NULL;
	double *t_nng, *t_raw, *t_echo;
	pid_t peer, echo;

	if (argc > 1 && (iters = atoi(argv[1])) < 100)
		bench_die("usage: %s [iterations >= 100]", argv[0]);
	signal(SIGPIPE, SIG_IGN);
	/* The host client logs pipe events; only the numbers belong on stdout. */
	vlog_init("bench_all_hostrpc");
	vlog_set_level(VLOG_ERROR);

	/* Everything that forks comes first. */
	bench_env_init(&env, 1, NULL);
	env.hostd = bench_spawn(&env, "vmlet-hostd");
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		bench_die("socketpair: %s", strerror(errno));
	peer = fork();
	if (peer < 0)
		bench_die("fork: %s", strerror(errno));
	if (peer == 0) {
		close(sp[0]);
		seqpacket_peer(sp[1]);
	}
	close(sp[1]);
	snprintf(echo_url, sizeof(echo_url), "ipc://%s/run/echo.sock", env.dir);
	echo = fork();
	if (echo < 0)
		bench_die("fork: %s", strerror(errno));
	if (echo == 0) {
		close(sp[0]);
		nng_echo_peer(echo_url);
	}
	bench_wait_socket(&env, env.hostd, "vmlet-hostd", env.hostd_sock, 10000);
	bench_wait_socket(&env, echo, "nng echo peer", echo_url + strlen("ipc://"), 10000);

	/* Now NNG. */
	snprintf(url, sizeof(url), "ipc://%s", env.hostd_sock);
	opts.url = url;
	if (agentd_hostclient_open(&opts, &hc, &err) < 0)
		bench_die("host client: %s", err.msg);
	opts.url = echo_url;
	if (agentd_hostclient_open(&opts, &hc_echo, &err) < 0)
		bench_die("host client (echo): %s", err.msg);
	for (int waited = 0; !agentd_hostclient_connected(hc) || !agentd_hostclient_connected(hc_echo);
	     waited += 10) {
		if (waited > 10000)
			bench_die("no pipe to hostd within 10 s; see %s/vmlet-hostd.log", env.dir);
		bench_sleep_ms(10);
	}

	req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_NODE_STATS;
	req.node_stats = &ns;
	pack_node_stats_request(&req_buf, &req_len);
	free(req_buf);

	t_nng = calloc((size_t)iters, sizeof(double));
	t_raw = calloc((size_t)iters, sizeof(double));
	t_echo = calloc((size_t)iters, sizeof(double));
	if (!t_nng || !t_raw || !t_echo)
		bench_die("out of memory");
	for (int i = 0; i < WARMUP; i++) {
		nng_round_trip(hc, &req, &nng_resp);
		raw_round_trip(sp[0], &req, &raw_resp);
		nng_round_trip(hc_echo, &req, &echo_resp);
	}
	for (int r = 0; r < ROUNDS; r++) {
		int block = iters / ROUNDS + (r < iters % ROUNDS);
		for (int i = 0; i < block; i++)
			t_nng[n_nng++] = nng_round_trip(hc, &req, &nng_resp);
		for (int i = 0; i < block; i++)
			t_raw[n_raw++] = raw_round_trip(sp[0], &req, &raw_resp);
		for (int i = 0; i < block; i++)
			t_echo[n_echo++] = nng_round_trip(hc_echo, &req, &echo_resp);
	}

	double nng_med = bench_percentile(t_nng, n_nng, 0.5), nng_p99 = bench_percentile(t_nng, n_nng, 0.99);
	double raw_med = bench_percentile(t_raw, n_raw, 0.5), raw_p99 = bench_percentile(t_raw, n_raw, 0.99);
	double echo_med = bench_percentile(t_echo, n_echo, 0.5);
	double echo_p99 = bench_percentile(t_echo, n_echo, 0.99);

	printf("hostrpc_iterations: %zu requests each\n", n_nng);
	printf("hostrpc_request_size: %zu bytes\n", req_len);
	printf("hostrpc_response_size: %zu bytes (hostd) %zu bytes (seqpacket) %zu bytes (nng echo)\n",
	       nng_resp, raw_resp, echo_resp);
	printf("hostrpc_nng_median: %.1f us\n", nng_med);
	printf("hostrpc_nng_p99: %.1f us\n", nng_p99);
	printf("hostrpc_seqpacket_median: %.1f us\n", raw_med);
	printf("hostrpc_seqpacket_p99: %.1f us\n", raw_p99);
	printf("hostrpc_nng_echo_median: %.1f us (same client, bare NNG rep peer instead of hostd)\n",
	       echo_med);
	printf("hostrpc_nng_echo_p99: %.1f us\n", echo_p99);
	printf("ratio: %.2fx median hostd-over-nng/seqpacket (goal <= 1.5x), p99 %.2fx\n",
	       nng_med / raw_med, nng_p99 / raw_p99);
	printf("ratio: %.2fx median nng-echo/seqpacket (the transport alone)\n", echo_med / raw_med);
	fflush(stdout);

	agentd_hostclient_close(hc);
	agentd_hostclient_close(hc_echo);
	close(sp[0]);
	waitpid(peer, NULL, 0);
	bench_stop(echo);
	bench_env_cleanup(&env);
	free(t_nng);
	free(t_raw);
	free(t_echo);
	return 0;
}
