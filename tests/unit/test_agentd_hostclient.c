#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agentd/hostclient.h"
#include "agentd_fake_hostd.h"

static char tmpdir[64];
static char url[200];

static int setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/vmlet-agentd-hc-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(url, sizeof(url), "ipc://%s/hostd.sock", tmpdir);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static struct agentd_hostclient *open_client(uint32_t timeout_ms, uint32_t max_in_flight)
{
	struct agentd_hostclient_opts o = { .url = url, .recv_max = 1 << 20,
					    .timeout_ms = timeout_ms,
					    .max_in_flight = max_in_flight };
	struct agentd_hostclient *hc;
	struct vmlet_err err;
	assert_int_equal(agentd_hostclient_open(&o, &hc, &err), 0);
	return hc;
}

/* Waits (bounded, no timing asserted) for NNG to (dis)connect. */
static bool wait_connected(struct agentd_hostclient *hc, bool want)
{
	for (int i = 0; i < 3000; i++) {
		if (agentd_hostclient_connected(hc) == want)
			return true;
		usleep(5000);
	}
	return false;
}

struct replies {
	int n;
	uint64_t cookie;
	int code;
	char msg[VMLET_ERR_MSG_MAX];
	int result_case;
	uint32_t vcpus;
};

static void collect(void *arg, uint64_t cookie, const Vmlet__Host__V1__HostResponse *resp,
		    const struct vmlet_err *err)
{
	struct replies *r = arg;
	r->n++;
	r->cookie = cookie;
	if (resp) {
		r->code = 200;
		r->result_case = resp->result_case;
		r->vcpus = resp->result_case == VMLET__HOST__V1__HOST_RESPONSE__RESULT_NODE_FACTS ?
				   resp->node_facts->total_vcpus : 0;
		r->msg[0] = '\0';
	} else {
		r->code = err->code;
		snprintf(r->msg, sizeof(r->msg), "%s", err->msg);
	}
}

/* Polls the event fd like agentd's loop does, until n replies arrived. */
static void drain_until(struct agentd_hostclient *hc, struct replies *r, int n)
{
	for (int i = 0; i < 3000 && r->n < n; i++) {
		struct pollfd p = { .fd = agentd_hostclient_event_fd(hc), .events = POLLIN };
		if (poll(&p, 1, 10) > 0)
			agentd_hostclient_drain(hc, collect, r);
	}
	assert_int_equal(r->n, n);
}

static void node_facts_request(Vmlet__Host__V1__HostRequest *req,
			       Vmlet__Host__V1__NodeFactsRequest *nf)
{
	vmlet__host__v1__host_request__init(req);
	vmlet__host__v1__node_facts_request__init(nf);
	req->op_case = VMLET__HOST__V1__HOST_REQUEST__OP_NODE_FACTS;
	req->node_facts = nf;
}

/* Starts the fake hostd in MODE and waits until the client is connected. */
static void start_fake(struct fake_hostd *fh, struct agentd_hostclient *hc,
		       enum fake_hostd_mode mode)
{
	assert_int_equal(fake_hostd_start(fh, url), 0);
	atomic_store(&fh->mode, mode);
	assert_true(wait_connected(hc, true));
}

/* One node_facts request with COOKIE to a fake hostd in MODE; *r holds
 * what the client reported for it. */
static void one_request(struct agentd_hostclient *hc, enum fake_hostd_mode mode, uint64_t cookie,
			struct replies *r)
{
	Vmlet__Host__V1__HostRequest req;
	Vmlet__Host__V1__NodeFactsRequest nf;
	struct fake_hostd fh = { 0 };
	struct vmlet_err err;

	node_facts_request(&req, &nf);
	start_fake(&fh, hc, mode);
	assert_int_equal(agentd_hostclient_submit(hc, &req, cookie, NULL, &err), 0);
	drain_until(hc, r, 1);
	fake_hostd_stop(&fh);
}

static void hostd_down_is_503_at_once(void **state)
{
	struct agentd_hostclient *hc = open_client(10000, 4);
	Vmlet__Host__V1__HostRequest req;
	Vmlet__Host__V1__NodeFactsRequest nf;
	struct agentd_host_op *op = (void *)1;
	struct vmlet_err err;

	node_facts_request(&req, &nf);
	/* Nobody listens on the path: opening still works (non-blocking dial). */
	assert_false(agentd_hostclient_connected(hc));
	assert_int_equal(agentd_hostclient_submit(hc, &req, 7, &op, &err), -1);
	assert_int_equal(err.code, 503);
	assert_non_null(strstr(err.msg, "hostd unavailable"));
	assert_non_null(strstr(err.msg, url));
	assert_null(op);
	assert_int_equal(agentd_hostclient_in_flight(hc), 0);
	agentd_hostclient_close(hc);
}

static void round_trip_and_recovery(void **state)
{
	struct agentd_hostclient *hc = open_client(10000, 4);
	Vmlet__Host__V1__HostRequest req;
	Vmlet__Host__V1__NodeFactsRequest nf;
	struct fake_hostd fh = { 0 };
	struct replies r = { 0 };
	struct vmlet_err err;

	node_facts_request(&req, &nf);
	/* hostd comes up after agentd: NNG's redial finds it. */
	start_fake(&fh, hc, FAKE_REPLY);
	assert_int_equal(agentd_hostclient_submit(hc, &req, 0x1234567800000009ull, NULL, &err), 0);
	assert_int_equal(agentd_hostclient_in_flight(hc), 1);
	drain_until(hc, &r, 1);
	assert_int_equal(r.code, 200);
	assert_int_equal(r.cookie, 0x1234567800000009ull);
	assert_int_equal(r.result_case, VMLET__HOST__V1__HOST_RESPONSE__RESULT_NODE_FACTS);
	assert_int_equal(r.vcpus, 2);
	assert_int_equal(agentd_hostclient_in_flight(hc), 0);

	/* hostd goes away: 503; comes back: served again, same client. */
	fake_hostd_stop(&fh);
	assert_true(wait_connected(hc, false));
	assert_int_equal(agentd_hostclient_submit(hc, &req, 1, NULL, &err), -1);
	assert_int_equal(err.code, 503);
	start_fake(&fh, hc, FAKE_REPLY);
	/* Several at once, each on its own context. */
	for (uint64_t i = 0; i < 4; i++)
		assert_int_equal(agentd_hostclient_submit(hc, &req, 100 + i, NULL, &err), 0);
	/* The fifth exceeds max_in_flight. */
	assert_int_equal(agentd_hostclient_submit(hc, &req, 104, NULL, &err), -1);
	assert_int_equal(err.code, 503);
	assert_non_null(strstr(err.msg, "in flight"));
	memset(&r, 0, sizeof(r));
	drain_until(hc, &r, 4);
	assert_int_equal(r.code, 200);
	assert_int_equal(agentd_hostclient_in_flight(hc), 0);
	fake_hostd_stop(&fh);
	agentd_hostclient_close(hc);
}

static void silent_hostd_times_out_503(void **state)
{
	struct agentd_hostclient *hc = open_client(200, 4);
	struct replies r = { 0 };

	one_request(hc, FAKE_SILENT, 5, &r);
	assert_int_equal(r.code, 503);
	assert_int_equal(r.cookie, 5);
	assert_string_equal(r.msg, "hostd unavailable: Timed out");
	agentd_hostclient_close(hc);
}

static void garbage_reply_is_500(void **state)
{
	struct agentd_hostclient *hc = open_client(10000, 4);
	struct replies r = { 0 };

	one_request(hc, FAKE_GARBAGE, 6, &r);
	assert_int_equal(r.code, 500);
	assert_non_null(strstr(r.msg, "hostd sent an invalid reply"));
	agentd_hostclient_close(hc);
}

static void cancel_completes_through_drain(void **state)
{
	struct agentd_hostclient *hc = open_client(60000, 4);
	Vmlet__Host__V1__HostRequest req;
	Vmlet__Host__V1__NodeFactsRequest nf;
	struct fake_hostd fh = { 0 };
	struct agentd_host_op *op = NULL;
	struct replies r = { 0 };
	struct vmlet_err err;

	node_facts_request(&req, &nf);
	start_fake(&fh, hc, FAKE_SILENT);
	assert_int_equal(agentd_hostclient_submit(hc, &req, 8, &op, &err), 0);
	assert_non_null(op);
	/* Let hostd take it, so the cancel hits the reply wait. */
	for (int i = 0; i < 3000 && atomic_load(&fh.served) == 0; i++)
		usleep(1000);
	agentd_hostclient_cancel(hc, op);
	drain_until(hc, &r, 1);
	assert_int_equal(r.cookie, 8);
	assert_int_equal(r.code, 503);
	assert_int_equal(agentd_hostclient_in_flight(hc), 0);
	/* The op is reused for the next request and works normally. */
	atomic_store(&fh.mode, FAKE_REPLY);
	assert_int_equal(agentd_hostclient_submit(hc, &req, 9, NULL, &err), 0);
	drain_until(hc, &r, 2);
	assert_int_equal(r.cookie, 9);
	assert_int_equal(r.code, 200);
	fake_hostd_stop(&fh);
	agentd_hostclient_close(hc);
}

static void close_with_requests_in_flight(void **state)
{
	struct agentd_hostclient *hc = open_client(60000, 4);
	Vmlet__Host__V1__HostRequest req;
	Vmlet__Host__V1__NodeFactsRequest nf;
	struct fake_hostd fh = { 0 };
	struct vmlet_err err;

	node_facts_request(&req, &nf);
	start_fake(&fh, hc, FAKE_SILENT);
	assert_int_equal(agentd_hostclient_submit(hc, &req, 1, NULL, &err), 0);
	assert_int_equal(agentd_hostclient_submit(hc, &req, 2, NULL, &err), 0);
	/* Never drained: close must abort them and free everything. */
	agentd_hostclient_close(hc);
	fake_hostd_stop(&fh);
}

static void bad_url_refused(void **state)
{
	struct agentd_hostclient_opts o = { .url = "nosuch://x", .recv_max = 1024,
					    .timeout_ms = 100, .max_in_flight = 1 };
	struct agentd_hostclient *hc = (void *)1;
	struct vmlet_err err;
	assert_int_equal(agentd_hostclient_open(&o, &hc, &err), -1);
	assert_null(hc);
	assert_non_null(strstr(err.msg, "nng_dial"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hostd_down_is_503_at_once),
		cmocka_unit_test(round_trip_and_recovery),
		cmocka_unit_test(silent_hostd_times_out_503),
		cmocka_unit_test(garbage_reply_is_500),
		cmocka_unit_test(cancel_completes_through_drain),
		cmocka_unit_test(close_with_requests_in_flight),
		cmocka_unit_test(bad_url_refused),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
