/* vmletctl against a test double of vmlet-agentd ("fake agentd"): a
 * thread that serves exactly one connection, checks the frame vmletctl
 * sent, and answers with a scripted reply (a real response, raw bytes such
 * as an oversize length or garbage, nothing at all). Over a socketpair
 * (ctl_exchange), a unix socket (the whole of ctl_main) and mutual TLS on
 * loopback inside a network namespace this test creates. */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "certs/certs.h"
#include "ctl/commands.h"
#include "ctl/request.h"
#include "ctl/transport.h"
#include "rpc/frame.h"
#include "rpc/strict.h"

/* ---- the test double ---------------------------------------------------- */

enum reply_kind {
	REPLY_MESSAGE,        /* a framed AgentResponse */
	REPLY_RAW,            /* exactly these bytes, then close */
	REPLY_CLOSE,          /* read the request, close without a word */
	REPLY_WAIT_FOR_CLOSE, /* read the request, answer nothing until the client hangs up */
};

struct fake_agentd {
	/* set up by the test */
	int listen_fd;     /* accept one connection here, or */
	int conn_fd;       /* serve this connected fd (socketpair) */
	WOLFSSL_CTX *tls;  /* speak TLS when set */
	enum reply_kind reply;
	const Vmlet__V1__AgentResponse *response;
	const uint8_t *raw;
	size_t raw_len;
	/* what it saw */
	bool connected;
	bool tls_accept_failed;
	size_t frame_len;  /* payload length from the frame header */
	Vmlet__V1__AgentRequest *request; /* strictly decoded, or NULL */
	char problem[VMLET_ERR_MSG_MAX + 16]; /* why the request was not decoded */
	pthread_t thread;
};

static ssize_t fake_tls_read(void *ctx, void *buf, size_t len)
{
	int n = wolfSSL_read(ctx, buf, (int)(len > INT_MAX ? INT_MAX : len));
	return n > 0 ? n : (wolfSSL_get_error(ctx, n) == WOLFSSL_ERROR_ZERO_RETURN ? 0 : -1);
}

static ssize_t fake_tls_write(void *ctx, const void *buf, size_t len)
{
	int n = wolfSSL_write(ctx, buf, (int)(len > INT_MAX ? INT_MAX : len));
	return n > 0 ? n : -1;
}

static void fake_serve(struct fake_agentd *f, const struct vmlet_io *io)
{
	struct vmlet_err err;
	uint8_t *payload = NULL;
	size_t len = 0;

	if (vmlet_frame_read(io, VMLET_FRAME_MAX_DEFAULT, &payload, &len, &err) < 0) {
		snprintf(f->problem, sizeof(f->problem), "frame: %s", err.msg);
		return;
	}
	f->frame_len = len;
	f->request = (Vmlet__V1__AgentRequest *)vmlet_strict_unpack(
		&vmlet__v1__agent_request__descriptor, payload, len, &err);
	if (!f->request)
		snprintf(f->problem, sizeof(f->problem), "unpack: %s", err.msg);
	free(payload);

	switch (f->reply) {
	case REPLY_MESSAGE: {
		uint8_t *out = NULL;
		size_t out_len = 0;
		if (vmlet_pack(&f->response->base, &out, &out_len, &err) == 0)
			vmlet_frame_write(io, out, out_len, &err);
		free(out);
		break;
	}
	case REPLY_RAW:
		for (size_t off = 0; off < f->raw_len;) {
			ssize_t n = io->write(io->ctx, f->raw + off, f->raw_len - off);
			if (n <= 0)
				break;
			off += (size_t)n;
		}
		break;
	case REPLY_CLOSE:
		break;
	case REPLY_WAIT_FOR_CLOSE: {
		char c;
		while (io->read(io->ctx, &c, 1) > 0)
			;
		break;
	}
	}
}

static void *fake_agentd_main(void *arg)
{
	struct fake_agentd *f = arg;
	int fd = f->conn_fd;

	if (f->listen_fd >= 0) {
		fd = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			return NULL;
	}
	f->connected = true;
	if (f->tls) {
		WOLFSSL *ssl = wolfSSL_new(f->tls);
		wolfSSL_set_fd(ssl, fd);
		if (wolfSSL_accept(ssl) != WOLFSSL_SUCCESS) {
			f->tls_accept_failed = true;
		} else {
			struct vmlet_io io = { fake_tls_read, fake_tls_write, ssl };
			fake_serve(f, &io);
			wolfSSL_shutdown(ssl);
		}
		wolfSSL_free(ssl);
		/* wolfSSL's FP_ECC point cache is per thread: free this one's
		 * before the thread ends (wolfSSL_Cleanup frees only the
		 * caller's). */
		wc_ecc_fp_free();
	} else {
		struct vmlet_io io = vmlet_io_fd_template;
		io.ctx = &fd;
		fake_serve(f, &io);
	}
	close(fd);
	return NULL;
}

static void fake_start(struct fake_agentd *f)
{
	assert_int_equal(pthread_create(&f->thread, NULL, fake_agentd_main, f), 0);
}

static void fake_finish(struct fake_agentd *f)
{
	pthread_join(f->thread, NULL);
}

static void fake_free(struct fake_agentd *f)
{
	if (f->request)
		protobuf_c_message_free_unpacked(&f->request->base, NULL);
	f->request = NULL;
}

/* ---- fixtures ------------------------------------------------------------ */

static char tmpdir[64];

static int make_tmpdir(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_ctl_transport.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static int unix_listener(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	return fd;
}

struct run {
	int rc;
	char *out, *err;
};

/* ctl_main with argv (NULL-terminated), output captured. */
static struct run run_ctl(char *const *argv)
{
	struct run r = { 0 };
	size_t ol = 0, el = 0;
	FILE *o = open_memstream(&r.out, &ol), *e = open_memstream(&r.err, &el);
	int argc = 0;

	while (argv[argc])
		argc++;
	r.rc = ctl_main(argc, argv, NULL, o, e);
	fclose(o);
	fclose(e);
	return r;
}

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

static void assert_contains(const char *hay, const char *needle)
{
	if (!strstr(hay, needle))
		fail_msg("\"%s\" lacks \"%s\"", hay, needle);
}

/* ---- ctl_exchange over a socketpair -------------------------------------- */

struct pair {
	int client;
	struct fake_agentd fake;
};

static void pair_start(struct pair *p, enum reply_kind reply,
		       const Vmlet__V1__AgentResponse *resp, const uint8_t *raw, size_t raw_len)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	memset(&p->fake, 0, sizeof(p->fake));
	p->client = sv[0];
	p->fake.listen_fd = -1;
	p->fake.conn_fd = sv[1];
	p->fake.reply = reply;
	p->fake.response = resp;
	p->fake.raw = raw;
	p->fake.raw_len = raw_len;
	fake_start(&p->fake);
}

/* Send a NodeInfo request through ctl_exchange; returns its result. */
static int pair_exchange(struct pair *p, Vmlet__V1__AgentResponse **resp, struct vmlet_err *err)
{
	struct ctl_request req;
	struct vmlet_io io = vmlet_io_fd_template;
	int rc;

	io.ctx = &p->client;
	ctl_request_init(&req);
	ctl_request_node_info(&req);
	*resp = NULL;
	rc = ctl_exchange(&io, &req.msg, resp, err);
	/* The client is done: let a fake that waits for the close finish. */
	shutdown(p->client, SHUT_RDWR);
	fake_finish(&p->fake);
	close(p->client);
	ctl_request_clear(&req);
	return rc;
}

static void exchange_sends_one_frame_and_reads_one(void **state)
{
	Vmlet__V1__NodeStats ns = VMLET__V1__NODE_STATS__INIT;
	Vmlet__V1__AgentResponse resp = VMLET__V1__AGENT_RESPONSE__INIT;
	Vmlet__V1__AgentResponse *got;
	Vmlet__V1__AgentRequest expect = VMLET__V1__AGENT_REQUEST__INIT;
	Vmlet__V1__NodeInfoRequest ni = VMLET__V1__NODE_INFO_REQUEST__INIT;
	struct vmlet_err err;
	struct pair p;

	ns.running_instances = 7;
	resp.response_case = VMLET__V1__AGENT_RESPONSE__RESPONSE_NODE_STATS;
	resp.node_stats = &ns;
	pair_start(&p, REPLY_MESSAGE, &resp, NULL, 0);
	assert_int_equal(pair_exchange(&p, &got, &err), 0);
	/* the frame header carried exactly the request's packed size */
	expect.request_case = VMLET__V1__AGENT_REQUEST__REQUEST_NODE_INFO;
	expect.node_info = &ni;
	assert_int_equal(p.fake.frame_len, protobuf_c_message_get_packed_size(&expect.base));
	assert_non_null(p.fake.request);
	assert_int_equal(p.fake.request->request_case, VMLET__V1__AGENT_REQUEST__REQUEST_NODE_INFO);
	assert_int_equal(got->response_case, VMLET__V1__AGENT_RESPONSE__RESPONSE_NODE_STATS);
	assert_int_equal(got->node_stats->running_instances, 7);
	protobuf_c_message_free_unpacked(&got->base, NULL);
	fake_free(&p.fake);
}

struct bad_reply {
	const char *what;
	const uint8_t *raw;
	size_t len;
	int code;
	const char *msg;
};

static const uint8_t oversize_max[] = { 0xff, 0xff, 0xff, 0xff };
static const uint8_t oversize_by_one[] = { 0x01, 0x00, 0x00, 0x01 }; /* 16 MiB + 1 */
static const uint8_t http_garbage[] = "HTTP/1.1 400 Bad Request\r\n\r\n";
static const uint8_t junk_payload[] = { 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0xff };
/* node_stats {} plus field 99 = 1: a field this client does not know */
static const uint8_t unknown_field[] = { 0, 0, 0, 5, 0x22, 0x00, 0x98, 0x06, 0x01 };
/* a valid encoding of field 1 (error) with code 404 but a message that is
 * not UTF-8 */
static const uint8_t bad_utf8[] = { 0, 0, 0, 8, 0x0a, 0x06, 0x08, 0x94, 0x03, 0x12, 0x01, 0xc3 };
static const uint8_t zero_length[] = { 0, 0, 0, 0 };
static const uint8_t truncated[] = { 0, 0, 0, 10, 0x22, 0x00 };
static const uint8_t half_header[] = { 0, 0 };

static const struct bad_reply bad_replies[] = {
	{ "length 0xffffffff", oversize_max, sizeof(oversize_max), VMLET_E_TOO_LARGE,
	  "reading response: " },
	{ "length cap+1", oversize_by_one, sizeof(oversize_by_one), VMLET_E_TOO_LARGE,
	  "reading response: " },
	{ "HTTP text", http_garbage, sizeof(http_garbage) - 1, VMLET_E_TOO_LARGE,
	  "reading response: " },
	{ "junk payload", junk_payload, sizeof(junk_payload), VMLET_E_INVALID,
	  "malformed response: " },
	{ "unknown field", unknown_field, sizeof(unknown_field), VMLET_E_INVALID,
	  "malformed response: " },
	{ "bad UTF-8", bad_utf8, sizeof(bad_utf8), VMLET_E_INVALID, "malformed response: " },
	{ "zero length", zero_length, sizeof(zero_length), VMLET_E_INVALID, "reading response: " },
	{ "truncated payload", truncated, sizeof(truncated), VMLET_E_INVALID,
	  "reading response: truncated" },
	{ "half a header", half_header, sizeof(half_header), VMLET_E_INVALID,
	  "reading response: truncated" },
};

static void exchange_refuses_bad_replies_cleanly(void **state)
{
	for (size_t i = 0; i < sizeof(bad_replies) / sizeof(bad_replies[0]); i++) {
		const struct bad_reply *b = &bad_replies[i];
		Vmlet__V1__AgentResponse *got;
		struct vmlet_err err = { 0 };
		struct pair p;

		pair_start(&p, REPLY_RAW, NULL, b->raw, b->len);
		if (pair_exchange(&p, &got, &err) == 0)
			fail_msg("%s: accepted", b->what);
		assert_null(got);
		if (err.code != b->code || strncmp(err.msg, b->msg, strlen(b->msg)) != 0)
			fail_msg("%s: got %d \"%s\", want %d \"%s...\"", b->what, err.code, err.msg,
				 b->code, b->msg);
		fake_free(&p.fake);
	}
}

static void exchange_reports_peer_closing(void **state)
{
	Vmlet__V1__AgentResponse *got;
	struct vmlet_err err = { 0 };
	struct pair p;

	pair_start(&p, REPLY_CLOSE, NULL, NULL, 0);
	assert_int_equal(pair_exchange(&p, &got, &err), -1);
	assert_string_equal(err.msg, "reading response: connection closed");
	assert_non_null(p.fake.request); /* it did get the request */
	fake_free(&p.fake);
}

/* ---- the whole program over a unix socket -------------------------------- */

struct unix_fake {
	char path[108];
	struct fake_agentd fake;
};

static void unix_fake_start(struct unix_fake *u, enum reply_kind reply,
			    const Vmlet__V1__AgentResponse *resp, const uint8_t *raw,
			    size_t raw_len)
{
	memset(u, 0, sizeof(*u));
	snprintf(u->path, sizeof(u->path), "%s/agentd.sock", tmpdir);
	u->fake.listen_fd = unix_listener(u->path);
	u->fake.conn_fd = -1;
	u->fake.reply = reply;
	u->fake.response = resp;
	u->fake.raw = raw;
	u->fake.raw_len = raw_len;
	fake_start(&u->fake);
}

static void unix_fake_finish(struct unix_fake *u)
{
	fake_finish(&u->fake);
	close(u->fake.listen_fd);
	unlink(u->path);
	fake_free(&u->fake);
}

static void main_node_info_as_text_and_json(void **state)
{
	Vmlet__V1__NodeInfo ni = VMLET__V1__NODE_INFO__INIT;
	Vmlet__V1__AgentResponse resp = VMLET__V1__AGENT_RESPONSE__INIT;
	struct unix_fake u;

	ni.node_id = "node-1";
	ni.total_vcpus = 2;
	resp.response_case = VMLET__V1__AGENT_RESPONSE__RESPONSE_NODE_INFO;
	resp.node_info = &ni;

	unix_fake_start(&u, REPLY_MESSAGE, &resp, NULL, 0);
	char *argv[] = { "vmletctl", "--socket", u.path, "node", "info", NULL };
	struct run r = run_ctl(argv);
	unix_fake_finish(&u);
	assert_int_equal(r.rc, 0);
	assert_contains(r.out, "node_id: node-1\n");
	assert_contains(r.out, "total_vcpus: 2\n");
	assert_string_equal(r.err, "");
	run_free(&r);

	unix_fake_start(&u, REPLY_MESSAGE, &resp, NULL, 0);
	char *argv2[] = { "vmletctl", "--json", "--socket", u.path, "node", "info", NULL };
	r = run_ctl(argv2);
	unix_fake_finish(&u);
	assert_int_equal(r.rc, 0);
	assert_contains(r.out, "\"node_id\": \"node-1\"");
	assert_contains(r.out, "\"total_vcpus\": 2");
	run_free(&r);
}

static void main_sends_the_ids_it_was_given(void **state)
{
	Vmlet__V1__InstanceListResult il = VMLET__V1__INSTANCE_LIST_RESULT__INIT;
	Vmlet__V1__AgentResponse resp = VMLET__V1__AGENT_RESPONSE__INIT;
	struct unix_fake u;

	resp.response_case = VMLET__V1__AGENT_RESPONSE__RESPONSE_INSTANCE_LIST;
	resp.instance_list = &il;
	unix_fake_start(&u, REPLY_MESSAGE, &resp, NULL, 0);
	char *argv[] = { "vmletctl", "--socket", u.path, "instance", "list", "acme", "web", NULL };
	struct run r = run_ctl(argv);
	fake_finish(&u.fake);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.out, "no instances\n");
	assert_non_null(u.fake.request);
	assert_int_equal(u.fake.request->request_case,
			 VMLET__V1__AGENT_REQUEST__REQUEST_INSTANCE_LIST);
	assert_string_equal(u.fake.request->instance_list->tenant_id, "acme");
	assert_string_equal(u.fake.request->instance_list->pool_id, "web");
	close(u.fake.listen_fd);
	unlink(u.path);
	fake_free(&u.fake);
	run_free(&r);
}

static void main_prints_server_errors_and_exits_1(void **state)
{
	Vmlet__V1__Error e = VMLET__V1__ERROR__INIT;
	Vmlet__V1__AgentResponse resp = VMLET__V1__AGENT_RESPONSE__INIT;
	struct unix_fake u;

	e.code = 404;
	e.message = "instance acme/web/i-0123abcd not found";
	resp.response_case = VMLET__V1__AGENT_RESPONSE__RESPONSE_ERROR;
	resp.error = &e;

	unix_fake_start(&u, REPLY_MESSAGE, &resp, NULL, 0);
	char *argv[] = { "vmletctl", "--socket", u.path, "instance", "wake",
			 "acme/web/i-0123abcd", NULL };
	struct run r = run_ctl(argv);
	fake_finish(&u.fake);
	assert_int_equal(r.rc, 1);
	assert_string_equal(r.out, "");
	assert_string_equal(r.err, "error 404 not found: instance acme/web/i-0123abcd not found\n");
	assert_int_equal(u.fake.request->request_case,
			 VMLET__V1__AGENT_REQUEST__REQUEST_WAKE_INSTANCE);
	assert_string_equal(u.fake.request->wake_instance->tenant_id, "acme");
	assert_string_equal(u.fake.request->wake_instance->pool_id, "web");
	assert_string_equal(u.fake.request->wake_instance->instance_id, "i-0123abcd");
	close(u.fake.listen_fd);
	unlink(u.path);
	fake_free(&u.fake);
	run_free(&r);

	/* --json: the Error as JSON on stdout, still exit 1 */
	unix_fake_start(&u, REPLY_MESSAGE, &resp, NULL, 0);
	char *argv2[] = { "vmletctl", "--socket", u.path, "--json", "tenant", "list", NULL };
	r = run_ctl(argv2);
	unix_fake_finish(&u);
	assert_int_equal(r.rc, 1);
	assert_contains(r.out, "\"code\": 404");
	assert_string_equal(r.err, "");
	run_free(&r);
}

static void main_transport_failures_exit_3(void **state)
{
	Vmlet__V1__NodeStats ns = VMLET__V1__NODE_STATS__INIT;
	Vmlet__V1__AgentResponse resp = VMLET__V1__AGENT_RESPONSE__INIT;
	struct unix_fake u;
	char expect[256];

	/* oversize length */
	unix_fake_start(&u, REPLY_RAW, NULL, oversize_max, sizeof(oversize_max));
	char *argv[] = { "vmletctl", "--socket", u.path, "node", "info", NULL };
	struct run r = run_ctl(argv);
	unix_fake_finish(&u);
	assert_int_equal(r.rc, 3);
	snprintf(expect, sizeof(expect), "vmletctl: cannot connect to %s: reading response: ", u.path);
	assert_contains(r.err, expect);
	assert_string_equal(r.out, "");
	run_free(&r);

	/* garbage */
	unix_fake_start(&u, REPLY_RAW, NULL, junk_payload, sizeof(junk_payload));
	r = run_ctl(argv);
	unix_fake_finish(&u);
	assert_int_equal(r.rc, 3);
	assert_contains(r.err, "malformed response: ");
	run_free(&r);

	/* an answer of the wrong kind */
	resp.response_case = VMLET__V1__AGENT_RESPONSE__RESPONSE_NODE_STATS;
	resp.node_stats = &ns;
	unix_fake_start(&u, REPLY_MESSAGE, &resp, NULL, 0);
	r = run_ctl(argv);
	unix_fake_finish(&u);
	assert_int_equal(r.rc, 3);
	assert_contains(r.err, "agentd answered with node_stats where node_info was expected");
	run_free(&r);

	/* nobody listening */
	char missing[160];
	snprintf(missing, sizeof(missing), "%s/nobody.sock", tmpdir);
	char *argv2[] = { "vmletctl", "--socket", missing, "node", "stats", NULL };
	r = run_ctl(argv2);
	assert_int_equal(r.rc, 3);
	snprintf(expect, sizeof(expect), "vmletctl: cannot connect to %s: connect: No such file",
		 missing);
	assert_contains(r.err, expect);
	run_free(&r);

	/* an agentd that never answers: --timeout gives up (no timing checked) */
	unix_fake_start(&u, REPLY_WAIT_FOR_CLOSE, NULL, NULL, 0);
	char *argv3[] = { "vmletctl", "--timeout", "50", "--socket", u.path, "node", "info", NULL };
	r = run_ctl(argv3);
	unix_fake_finish(&u);
	assert_int_equal(r.rc, 3);
	assert_contains(r.err, "timed out after 50 ms");
	run_free(&r);
}

static const char valid_state[] =
	"{\"schema_version\": 1, \"node_id\": \"node-1\", \"sequence\": 3,\n"
	" \"tenants\": [{\"tenant_id\": \"acme\",\n"
	"   \"network\": {\"tenant_net_id\": 5, \"ipv4_subnet\": \"10.5.0.0/24\"},\n"
	"   \"quotas\": {\"max_vcpus\": 8, \"max_mem_mib\": 4096, \"max_running\": 4,\n"
	"              \"max_warm\": 4, \"max_pools\": 2, \"max_instances_per_pool\": 8,\n"
	"              \"max_disk_gib\": 10},\n"
	"   \"pools\": [{\"pool_id\": \"web\", \"instance_resources\": {\"vcpus\": 1, \"mem_mib\": 128},\n"
	"               \"desired_counts\": {\"running\": 1}}]}]}\n";

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void main_reconcile_sends_the_desired_state(void **state)
{
	Vmlet__V1__Error e = VMLET__V1__ERROR__INIT;
	Vmlet__V1__AgentResponse resp = VMLET__V1__AGENT_RESPONSE__INIT;
	struct unix_fake u;
	char file[160];

	snprintf(file, sizeof(file), "%s/desired.json", tmpdir);
	write_text(file, valid_state);
	e.code = 501;
	e.message = "reconcile engine not available yet";
	resp.response_case = VMLET__V1__AGENT_RESPONSE__RESPONSE_ERROR;
	resp.error = &e;
	unix_fake_start(&u, REPLY_MESSAGE, &resp, NULL, 0);
	char *argv[] = { "vmletctl", "--socket", u.path, "reconcile", "-f", file, NULL };
	struct run r = run_ctl(argv);
	fake_finish(&u.fake);
	assert_int_equal(r.rc, 1);
	assert_string_equal(r.err, "error 501 not implemented: reconcile engine not available yet\n");
	assert_non_null(u.fake.request);
	assert_int_equal(u.fake.request->request_case, VMLET__V1__AGENT_REQUEST__REQUEST_RECONCILE);
	const Vmlet__V1__DesiredState *ds = u.fake.request->reconcile->desired_state;
	assert_non_null(ds);
	assert_string_equal(ds->node_id, "node-1");
	assert_int_equal(ds->sequence, 3);
	assert_int_equal(ds->n_tenants, 1);
	assert_string_equal(ds->tenants[0]->pools[0]->pool_id, "web");
	assert_null(u.fake.request->reconcile->signature);
	close(u.fake.listen_fd);
	unlink(u.path);
	fake_free(&u.fake);
	run_free(&r);
}

/* A bad desired state is reported with its JSON path and never sent: the
 * fake's listener sees no connection. */
static void main_reconcile_refuses_bad_json_locally(void **state)
{
	static const struct {
		const char *text;
		const char *msg;
	} cases[] = {
		{ "{\"schema_version\": 1, \"tenants\": [{\"tenant_id\": \"acme\", \"pool\": 1}]}",
		  "$.tenants[0]: unknown key \"pool\"" },
		{ "{\"schema_version\": 1,", "" },
		{ "{\"schema_version\": \"one\"}", "$.schema_version" },
		{ "{\"schema_version\": 2}", "schema_version" },
		{ "{\"schema_version\": 1, \"tenants\": [{\"tenant_id\": \"Bad_ID\"}]}",
		  "tenants[0].tenant_id: \"Bad_ID\" must match" },
	};
	char sock[160], file[160];
	struct sockaddr_un peer;
	socklen_t plen = sizeof(peer);

	snprintf(sock, sizeof(sock), "%s/idle.sock", tmpdir);
	snprintf(file, sizeof(file), "%s/bad.json", tmpdir);
	int lfd = unix_listener(sock);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		write_text(file, cases[i].text);
		char *argv[] = { "vmletctl", "--socket", sock, "reconcile", "-f", file, NULL };
		struct run r = run_ctl(argv);
		assert_int_equal(r.rc, 1);
		assert_contains(r.err, "error 400 invalid: ");
		assert_contains(r.err, file);
		assert_contains(r.err, cases[i].msg);
		run_free(&r);
	}
	char missing[170];
	snprintf(missing, sizeof(missing), "%s/none.json", tmpdir);
	char *argv[] = { "vmletctl", "--socket", sock, "--json", "reconcile", "-f", missing, NULL };
	struct run r = run_ctl(argv);
	assert_int_equal(r.rc, 1);
	assert_contains(r.out, "\"code\": 400");
	assert_contains(r.out, "No such file or directory");
	run_free(&r);

	assert_int_equal(fcntl(lfd, F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(accept(lfd, (struct sockaddr *)&peer, &plen), -1);
	assert_int_equal(errno, EAGAIN);
	close(lfd);
	unlink(sock);
}

/* ---- mutual TLS (loopback of a network namespace made here) ------------- */

static bool have_netns;
static char tls_skip_reason[128];
static char dir_a[128], dir_b[128];

static int tls_setup(void **state)
{
	struct ifreq ifr = { 0 };
	struct vmlet_err err;
	int s;

	if (make_tmpdir(state) < 0)
		return -1;
	if (unshare(CLONE_NEWNET) < 0) {
		snprintf(tls_skip_reason, sizeof(tls_skip_reason),
			 "cannot create a network namespace: %s", strerror(errno));
		return 0;
	}
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0 ||
	    (ifr.ifr_flags |= IFF_UP, ioctl(s, SIOCSIFFLAGS, &ifr) < 0)) {
		snprintf(tls_skip_reason, sizeof(tls_skip_reason), "cannot bring lo up: %s",
			 strerror(errno));
		if (s >= 0)
			close(s);
		return 0;
	}
	close(s);
	/* Two independent dev PKIs: A is the one vmletctl trusts. */
	snprintf(dir_a, sizeof(dir_a), "%s/pki-a", tmpdir);
	snprintf(dir_b, sizeof(dir_b), "%s/pki-b", tmpdir);
	if (vmlet_certs_init_dev(dir_a, "node-1", NULL, 0, 0, &err) < 0 ||
	    vmlet_certs_init_dev(dir_b, "node-1", NULL, 0, 0, &err) < 0) {
		fprintf(stderr, "certs: %s\n", err.msg);
		return -1;
	}
	wolfSSL_Init();
	have_netns = true;
	return 0;
}

static int tls_teardown(void **state)
{
	if (have_netns)
		wolfSSL_Cleanup();
	return remove_tmpdir(state);
}

#define REQUIRE_NETNS()                                   \
	do {                                              \
		if (!have_netns) {                        \
			print_message("skip: %s\n", tls_skip_reason); \
			skip();                           \
		}                                         \
	} while (0)

/* A TLS 1.3 server context like agentd's: client certificate required and
 * checked against trust_dir's CA. */
static WOLFSSL_CTX *server_ctx(const char *cert_dir, const char *trust_dir)
{
	char cert[192], key[192], ca[192];
	WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfTLSv1_3_server_method());

	assert_non_null(ctx);
	snprintf(cert, sizeof(cert), "%s/node.pem", cert_dir);
	snprintf(key, sizeof(key), "%s/node.key", cert_dir);
	snprintf(ca, sizeof(ca), "%s/ca.pem", trust_dir);
	assert_int_equal(wolfSSL_CTX_use_certificate_chain_file(ctx, cert), WOLFSSL_SUCCESS);
	assert_int_equal(wolfSSL_CTX_use_PrivateKey_file(ctx, key, WOLFSSL_FILETYPE_PEM),
			 WOLFSSL_SUCCESS);
	assert_int_equal(wolfSSL_CTX_load_verify_locations(ctx, ca, NULL), WOLFSSL_SUCCESS);
	wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	return ctx;
}

struct tls_fake {
	struct fake_agentd fake;
	unsigned port;
	char where[64];
};

static void tls_fake_start(struct tls_fake *t, const char *cert_dir, const char *trust_dir,
			   enum reply_kind reply, const Vmlet__V1__AgentResponse *resp)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(t, 0, sizeof(*t));
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	t->port = ntohs(sa.sin_port);
	t->fake.listen_fd = fd;
	t->fake.conn_fd = -1;
	t->fake.tls = server_ctx(cert_dir, trust_dir);
	t->fake.reply = reply;
	t->fake.response = resp;
	fake_start(&t->fake);
}

static void tls_fake_cleanup(struct tls_fake *t)
{
	close(t->fake.listen_fd);
	wolfSSL_CTX_free(t->fake.tls);
	fake_free(&t->fake);
}

static void tls_fake_finish(struct tls_fake *t)
{
	fake_finish(&t->fake);
	tls_fake_cleanup(t);
}

/* Run vmletctl --connect HOST:port with PKI A's coordinator credentials. */
static struct run run_tls(struct tls_fake *t, const char *host, const char *ca_override)
{
	char ca[192], cert[192], key[192];

	snprintf(t->where, sizeof(t->where), "%s:%u", host, t->port);
	snprintf(ca, sizeof(ca), "%s/ca.pem", dir_a);
	snprintf(cert, sizeof(cert), "%s/coordinator.pem", dir_a);
	snprintf(key, sizeof(key), "%s/coordinator.key", dir_a);
	char *argv[] = { "vmletctl", "--connect", t->where, "--ca",
			 (char *)(ca_override ? ca_override : ca), "--cert", cert, "--key", key,
			 "node", "stats", NULL };
	return run_ctl(argv);
}

static Vmlet__V1__NodeStats tls_stats = VMLET__V1__NODE_STATS__INIT;
static Vmlet__V1__AgentResponse tls_resp = VMLET__V1__AGENT_RESPONSE__INIT;

static void tls_prepare_response(void)
{
	tls_stats.tenant_count = 4;
	tls_resp.response_case = VMLET__V1__AGENT_RESPONSE__RESPONSE_NODE_STATS;
	tls_resp.node_stats = &tls_stats;
}

static void tls_mutual_auth_works(void **state)
{
	REQUIRE_NETNS();
	tls_prepare_response();
	static const char *const hosts[] = { "127.0.0.1", "localhost" };
	for (size_t i = 0; i < 2; i++) {
		struct tls_fake t;
		tls_fake_start(&t, dir_a, dir_a, REPLY_MESSAGE, &tls_resp);
		struct run r = run_tls(&t, hosts[i], NULL);
		fake_finish(&t.fake);
		if (r.rc != 0)
			fail_msg("%s: exit %d: %s", hosts[i], r.rc, r.err);
		assert_contains(r.out, "tenant_count: 4\n");
		assert_non_null(t.fake.request);
		assert_int_equal(t.fake.request->request_case,
				 VMLET__V1__AGENT_REQUEST__REQUEST_NODE_STATS);
		tls_fake_cleanup(&t);
		run_free(&r);
	}
}

static void tls_refuses_server_from_another_ca(void **state)
{
	REQUIRE_NETNS();
	tls_prepare_response();
	struct tls_fake t;
	char expect[128];

	/* server presents PKI B's certificate; vmletctl trusts only A */
	tls_fake_start(&t, dir_b, dir_a, REPLY_MESSAGE, &tls_resp);
	struct run r = run_tls(&t, "127.0.0.1", NULL);
	tls_fake_finish(&t);
	assert_int_equal(r.rc, 3);
	snprintf(expect, sizeof(expect), "vmletctl: cannot connect to %s: TLS handshake: ", t.where);
	assert_contains(r.err, expect);
	assert_contains(r.err, "wolfSSL error");
	assert_string_equal(r.out, "");
	run_free(&r);
}

static void tls_refuses_server_name_mismatch(void **state)
{
	REQUIRE_NETNS();
	tls_prepare_response();
	struct tls_fake t;

	/* 127.0.0.2 reaches the same listener, but the certificate names only
	 * node-1, localhost and 127.0.0.1 */
	tls_fake_start(&t, dir_a, dir_a, REPLY_MESSAGE, &tls_resp);
	struct run r = run_tls(&t, "127.0.0.2", NULL);
	tls_fake_finish(&t);
	assert_int_equal(r.rc, 3);
	assert_contains(r.err, "TLS handshake: ");
	assert_contains(r.err, "wolfSSL error -322"); /* DOMAIN_NAME_MISMATCH */
	run_free(&r);
}

/* TLS 1.3: the server checks our certificate after our side of the
 * handshake is done, so vmletctl learns of the refusal only when reading
 * the answer; it must still be a clean transport error with wolfSSL's
 * reason. */
static void tls_reports_server_refusing_our_certificate(void **state)
{
	REQUIRE_NETNS();
	tls_prepare_response();
	struct tls_fake t;

	/* server (PKI A's cert, which we trust) accepts only clients of PKI B */
	tls_fake_start(&t, dir_a, dir_b, REPLY_MESSAGE, &tls_resp);
	struct run r = run_tls(&t, "127.0.0.1", NULL);
	tls_fake_finish(&t);
	assert_true(t.fake.tls_accept_failed);
	assert_int_equal(r.rc, 3);
	assert_contains(r.err, "vmletctl: cannot connect to ");
	assert_contains(r.err, "wolfSSL error");
	assert_string_equal(r.out, "");
	run_free(&r);
}

static void tls_times_out_when_agentd_is_silent(void **state)
{
	REQUIRE_NETNS();
	struct tls_fake t;
	char ca[192], cert[192], key[192];

	tls_fake_start(&t, dir_a, dir_a, REPLY_WAIT_FOR_CLOSE, NULL);
	snprintf(t.where, sizeof(t.where), "127.0.0.1:%u", t.port);
	snprintf(ca, sizeof(ca), "%s/ca.pem", dir_a);
	snprintf(cert, sizeof(cert), "%s/coordinator.pem", dir_a);
	snprintf(key, sizeof(key), "%s/coordinator.key", dir_a);
	char *argv[] = { "vmletctl", "--timeout", "50", "--connect", t.where, "--ca", ca,
			 "--cert", cert, "--key", key, "tenant", "list", NULL };
	struct run r = run_ctl(argv);
	tls_fake_finish(&t);
	assert_int_equal(r.rc, 3);
	assert_contains(r.err, "reading response: timed out after 50 ms");
	run_free(&r);
}

static void tls_reports_unreadable_credentials(void **state)
{
	REQUIRE_NETNS();
	char missing[192];
	struct tls_fake t;

	/* nothing listens: the credentials are checked first */
	snprintf(missing, sizeof(missing), "%s/no-such-ca.pem", tmpdir);
	memset(&t, 0, sizeof(t));
	t.port = 9;
	struct run r = run_tls(&t, "127.0.0.1", missing);
	assert_int_equal(r.rc, 3);
	assert_contains(r.err, "loading CA ");
	assert_contains(r.err, "No such file or directory");
	run_free(&r);
}

int main(void)
{
	/* vmletctl's main() ignores SIGPIPE; so does this stand-in for it. */
	signal(SIGPIPE, SIG_IGN);
	/* One group (tests/run.sh reads one summary): the setup makes the
	 * temp dir and, when it can, the network namespace for TLS. */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(exchange_sends_one_frame_and_reads_one),
		cmocka_unit_test(exchange_refuses_bad_replies_cleanly),
		cmocka_unit_test(exchange_reports_peer_closing),
		cmocka_unit_test(main_node_info_as_text_and_json),
		cmocka_unit_test(main_sends_the_ids_it_was_given),
		cmocka_unit_test(main_prints_server_errors_and_exits_1),
		cmocka_unit_test(main_transport_failures_exit_3),
		cmocka_unit_test(main_reconcile_sends_the_desired_state),
		cmocka_unit_test(main_reconcile_refuses_bad_json_locally),
		cmocka_unit_test(tls_mutual_auth_works),
		cmocka_unit_test(tls_refuses_server_from_another_ca),
		cmocka_unit_test(tls_refuses_server_name_mismatch),
		cmocka_unit_test(tls_reports_server_refusing_our_certificate),
		cmocka_unit_test(tls_times_out_when_agentd_is_silent),
		cmocka_unit_test(tls_reports_unreadable_credentials),
	};
	return cmocka_run_group_tests(tests, tls_setup, tls_teardown);
}
