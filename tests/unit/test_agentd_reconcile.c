/* The reconcile executor (agentd/reconcile.c) and the persisted desired
 * state (agentd/desired_store.c), driven through agentd's real hostd client
 * against a test double of hostd with state (agentd_fake_hostd_state.h):
 * persistence before any host op, sequence and signature refusals that
 * change nothing, a fresh pass, idempotence (zero mutating ops on a
 * converged node), a failing op reported with tenant/pool/instance and
 * retried after its backoff, a corrupt persisted file ignored, and a
 * Reconcile during a pass refused with 409.
 *
 * The signer's source is compiled in (as in test_agentd_signature.c) so a
 * correctly signed state can be accepted. */
#include "ctl/sign.c"

#include <ftw.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "agentd/desired_store.h"
#include "agentd/handlers.h"
#include "agentd/hostclient.h"
#include "agentd/local.h"
#include "agentd/loop.h"
#include "agentd/reconcile.h"
#include "agentd_fake_hostd_state.h"
#include "rpc/json.h"
#include "rpc/strict.h"
#include "shared/safefile.h"

#define PUMP_TURNS 3000 /* x 10 ms at most: a bound, not a timing assertion */
#define NODE "node-1"
#define T0 1700000000u

struct harness {
	char dir[64];
	char state_dir[96];
	char url[128];
	char keys[96];
	bool production;
	const char *keys_dir;
	struct fake_state_hostd fh;
	struct agentd_hostclient *hc;
	struct agentd_reconciler *rec;
	uint64_t now;
	uint32_t next_id;
	/* what the done callback saw */
	unsigned done_calls;
	uint64_t done_cookie;
	Vmlet__V1__ReconcileReport *report;
	struct vmlet_err done_err;
};

static uint64_t clock_now(void *ctx)
{
	return ((struct harness *)ctx)->now;
}

static uint32_t ids(void *ctx)
{
	return ++((struct harness *)ctx)->next_id;
}

static void set_now(struct harness *h, uint64_t now)
{
	h->now = now;
	pthread_mutex_lock(&h->fh.mu);
	h->fh.now_unix = now;
	pthread_mutex_unlock(&h->fh.mu);
}

static void on_done(void *arg, uint64_t cookie, const Vmlet__V1__ReconcileReport *report,
		    const struct vmlet_err *err)
{
	struct harness *h = arg;
	uint8_t *buf = NULL;
	size_t len = 0;
	struct vmlet_err e;

	h->done_calls++;
	h->done_cookie = cookie;
	if (h->report)
		protobuf_c_message_free_unpacked(&h->report->base, NULL);
	h->report = NULL;
	vmlet_err_clear(&h->done_err);
	if (!report) {
		h->done_err = *err;
		return;
	}
	/* Keep a copy: the report is only borrowed for the call. */
	assert_int_equal(vmlet_pack(&report->base, &buf, &len, &e), 0);
	h->report = (Vmlet__V1__ReconcileReport *)vmlet_strict_unpack(
		&vmlet__v1__reconcile_report__descriptor, buf, len, &e);
	free(buf);
	assert_non_null(h->report);
}

static void reconciler_open(struct harness *h)
{
	struct agentd_reconciler_opts o = {
		.node_id = NODE, .state_dir = h->state_dir, .keys_dir = h->keys_dir,
		.production = h->production, .max_len = 1u << 20, .hc = h->hc,
		.done = on_done, .done_arg = h, .now_unix = clock_now, .now_ctx = h,
		.rand32 = ids, .rand_ctx = h,
	};
	struct vmlet_err err;

	agentd_reconciler_free(h->rec);
	h->rec = NULL;
	assert_int_equal(agentd_reconciler_new(&o, &h->rec, &err), 0);
}

static int setup(void **state)
{
	struct harness *h = calloc(1, sizeof(*h));
	struct agentd_hostclient_opts ho = { .recv_max = 1u << 20, .timeout_ms = 10000,
					     .max_in_flight = 8 };
	struct vmlet_err err;

	snprintf(h->dir, sizeof(h->dir), "/tmp/vmlet-rec.XXXXXX");
	assert_non_null(mkdtemp(h->dir));
	snprintf(h->state_dir, sizeof(h->state_dir), "%s/state", h->dir);
	assert_int_equal(mkdir(h->state_dir, 0700), 0);
	snprintf(h->url, sizeof(h->url), "ipc://%s/hostd.sock", h->dir);
	h->fh.images[0] = "base";
	assert_int_equal(fs_start(&h->fh, h->url), 0);
	set_now(h, T0);
	ho.url = h->url;
	assert_int_equal(agentd_hostclient_open(&ho, &h->hc, &err), 0);
	for (int i = 0; i < PUMP_TURNS && !agentd_hostclient_connected(h->hc); i++)
		nng_msleep(10);
	assert_true(agentd_hostclient_connected(h->hc));
	reconciler_open(h);
	*state = h;
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	remove(path);
	return 0;
}

static int teardown(void **state)
{
	struct harness *h = *state;

	agentd_reconciler_free(h->rec);
	agentd_hostclient_close(h->hc);
	fs_stop(&h->fh);
	if (h->report)
		protobuf_c_message_free_unpacked(&h->report->base, NULL);
	nftw(h->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(h);
	return 0;
}

/* ---- driving ------------------------------------------------------------------- */

static void route(void *arg, uint64_t cookie, const Vmlet__Host__V1__HostResponse *resp,
		  const struct vmlet_err *err)
{
	struct harness *h = arg;

	assert_true(agentd_reconcile_cookie(cookie));
	agentd_reconciler_on_host_reply(h->rec, cookie, resp, err);
}

/* Deliver hostd replies until the pass in progress ends. */
static void pump_until_done(struct harness *h)
{
	unsigned before = h->done_calls;
	struct pollfd p = { .fd = agentd_hostclient_event_fd(h->hc), .events = POLLIN };

	for (int i = 0; i < PUMP_TURNS && h->done_calls == before; i++) {
		poll(&p, 1, 10);
		agentd_hostclient_drain(h->hc, route, h);
	}
	assert_int_equal(h->done_calls, before + 1);
	assert_false(agentd_reconciler_busy(h->rec));
}

static Vmlet__V1__ReconcileRequest *desired(uint64_t seq, unsigned running, unsigned warm,
					     unsigned sleeping, const char *image)
{
	char json[2048];
	struct vmlet_err err;
	Vmlet__V1__ReconcileRequest *req;

	snprintf(json, sizeof(json),
		 "{\"desired_state\":{\"schema_version\":1,\"node_id\":\"" NODE "\","
		 "\"sequence\":%llu,\"tenants\":[{\"tenant_id\":\"acme\","
		 "\"network\":{\"tenant_net_id\":10,\"ipv4_subnet\":\"10.10.0.0/24\"},"
		 "\"quotas\":{\"max_vcpus\":16,\"max_mem_mib\":8192,\"max_running\":8,"
		 "\"max_warm\":8,\"max_pools\":2,\"max_instances_per_pool\":8,\"max_disk_gib\":10},"
		 "\"pools\":[{\"pool_id\":\"web\",\"image\":\"%s\","
		 "\"instance_resources\":{\"vcpus\":1,\"mem_mib\":256},"
		 "\"desired_counts\":{\"running\":%u,\"warm\":%u,\"sleeping\":%u},"
		 "\"runtime_policy\":{\"graceful_shutdown_seconds\":5}}]}]}}",
		 (unsigned long long)seq, image, running, warm, sleeping);
	req = (Vmlet__V1__ReconcileRequest *)vmlet_json_decode(
		&vmlet__v1__reconcile_request__descriptor, json, strlen(json), &err);
	if (!req)
		fail_msg("desired: %s", err.msg);
	return req;
}

/* Tenant acme with pools web and api (running counts only). */
static Vmlet__V1__ReconcileRequest *desired_two_pools(uint64_t seq, unsigned web, unsigned api)
{
	char json[2048];
	struct vmlet_err err;
	Vmlet__V1__ReconcileRequest *req;

	snprintf(json, sizeof(json),
		 "{\"desired_state\":{\"schema_version\":1,\"node_id\":\"" NODE "\","
		 "\"sequence\":%llu,\"tenants\":[{\"tenant_id\":\"acme\","
		 "\"network\":{\"tenant_net_id\":10,\"ipv4_subnet\":\"10.10.0.0/24\"},"
		 "\"quotas\":{\"max_vcpus\":16,\"max_mem_mib\":8192,\"max_running\":8,"
		 "\"max_warm\":8,\"max_pools\":2,\"max_instances_per_pool\":8,\"max_disk_gib\":10},"
		 "\"pools\":[{\"pool_id\":\"web\",\"image\":\"base\","
		 "\"instance_resources\":{\"vcpus\":1,\"mem_mib\":256},"
		 "\"desired_counts\":{\"running\":%u}},"
		 "{\"pool_id\":\"api\",\"image\":\"base\","
		 "\"instance_resources\":{\"vcpus\":1,\"mem_mib\":256},"
		 "\"desired_counts\":{\"running\":%u}}]}]}}",
		 (unsigned long long)seq, web, api);
	req = (Vmlet__V1__ReconcileRequest *)vmlet_json_decode(
		&vmlet__v1__reconcile_request__descriptor, json, strlen(json), &err);
	if (!req)
		fail_msg("desired: %s", err.msg);
	return req;
}

static bool deferred_has(const Vmlet__V1__ReconcileReport *r, const char *needle)
{
	for (size_t i = 0; i < r->n_deferred; i++)
		if (strstr(r->deferred[i], needle))
			return true;
	return false;
}

static void free_req(Vmlet__V1__ReconcileRequest *req)
{
	protobuf_c_message_free_unpacked(&req->base, NULL);
}

static void expect_refused(int rc, const struct vmlet_err *err, int code, const char *needle)
{
	assert_int_equal(rc, -1);
	if (err->code != code || !strstr(err->msg, needle))
		fail_msg("expected %d containing \"%s\", got %d: %s", code, needle, err->code,
			 err->msg);
}

static bool stored(struct harness *h)
{
	char path[160];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", h->state_dir, AGENTD_DESIRED_FILE);
	return stat(path, &st) == 0;
}

static unsigned served(struct harness *h)
{
	unsigned n;

	pthread_mutex_lock(&h->fh.mu);
	n = h->fh.served;
	pthread_mutex_unlock(&h->fh.mu);
	return n;
}

#define RUNNING VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_RUNNING
#define WARM VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_WARM
#define SLEEPING VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_SLEEPING

/* Accept req (cookie 7) and run its pass to the end. */
static void accept_and_pass(struct harness *h, Vmlet__V1__ReconcileRequest *req)
{
	struct vmlet_err err;

	vmlet_err_clear(&err);
	if (agentd_reconciler_accept(h->rec, req, 7, &err) < 0)
		fail_msg("accept: %d %s", err.code, err.msg);
	assert_true(agentd_reconciler_busy(h->rec));
	pump_until_done(h);
	assert_int_equal(h->done_cookie, 7);
	assert_non_null(h->report);
}

static void timer_pass(struct harness *h)
{
	struct vmlet_err err;

	assert_int_equal(agentd_reconciler_run(h->rec, &err), 1);
	pump_until_done(h);
	assert_int_equal(h->done_cookie, AGENTD_RECONCILE_NO_WAITER);
	assert_non_null(h->report);
}

/* ---- tests ---------------------------------------------------------------------- */

static void fresh_pass_converges_then_second_pass_is_a_noop(void **state)
{
	struct harness *h = *state;
	Vmlet__V1__ReconcileRequest *req = desired(1, 2, 1, 1, "base");
	const Vmlet__V1__ReconcileReport *r;
	unsigned ops;
	uint64_t seq = 0;

	accept_and_pass(h, req);
	r = h->report;
	assert_int_equal(r->n_errors, 0);
	assert_int_equal(r->sequence, 1);
	assert_int_equal(r->tenants_created, 1);
	assert_int_equal(r->pools_created, 1);
	assert_int_equal(r->instances_created, 4);
	assert_int_equal(r->instances_started, 4);
	assert_int_equal(r->instances_warmed, 1);
	assert_int_equal(r->instances_slept, 1);
	assert_int_equal(fs_count(&h->fh, "acme", "web", RUNNING), 2);
	assert_int_equal(fs_count(&h->fh, "acme", "web", WARM), 1);
	assert_int_equal(fs_count(&h->fh, "acme", "web", SLEEPING), 1);
	/* The network and the pool come before any instance. */
	assert_string_equal(h->fh.log[0], "ensure_tenant acme");
	assert_string_equal(h->fh.log[1], "ensure_pool acme/web");
	assert_true(fs_logged(&h->fh, "create_instance acme/web/i-"));
	assert_true(fs_logged(&h->fh, "INSTANCE_ACTION_START acme/web/i-"));
	assert_true(stored(h));
	assert_true(agentd_reconciler_sequence(h->rec, &seq));
	assert_int_equal(seq, 1);

	/* Idempotent: a converged node gets no mutating op at all. */
	ops = fs_mutating(&h->fh);
	set_now(h, T0 + 3600);
	timer_pass(h);
	assert_int_equal(fs_mutating(&h->fh), ops);
	r = h->report;
	assert_int_equal(r->n_errors, 0);
	assert_int_equal(r->instances_created + r->instances_started + r->instances_stopped +
				 r->instances_destroyed + r->tenants_created + r->pools_created,
			 0);

	/* After a restart (pools now seen through their instances) too. */
	reconciler_open(h);
	timer_pass(h);
	assert_int_equal(fs_mutating(&h->fh), ops);

	/* A change converges: one running more, the sleeping one gone. */
	free_req(req);
	req = desired(2, 3, 1, 0, "base");
	accept_and_pass(h, req);
	assert_int_equal(h->report->n_errors, 0);
	assert_int_equal(fs_count(&h->fh, "acme", "web", RUNNING), 3);
	assert_int_equal(fs_count(&h->fh, "acme", "web", WARM), 1);
	assert_int_equal(fs_count(&h->fh, "acme", "web", SLEEPING), 0);
	ops = fs_mutating(&h->fh);
	timer_pass(h);
	assert_int_equal(fs_mutating(&h->fh), ops);
	free_req(req);
}

static void persist_failure_changes_nothing(void **state)
{
	struct harness *h = *state;
	Vmlet__V1__ReconcileRequest *req = desired(1, 1, 0, 0, "base");
	struct vmlet_err err;
	uint64_t seq;

	/* The state dir cannot take the file (a regular file stands in its
	 * way: permissions would not stop root). */
	nftw(h->state_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	assert_int_equal(vmlet_write_atomic(h->state_dir, "x", 1, 0600, &err), 0);
	expect_refused(agentd_reconciler_accept(h->rec, req, 7, &err), &err, 500,
		       "persisting the desired state");
	assert_false(agentd_reconciler_busy(h->rec));
	assert_false(agentd_reconciler_sequence(h->rec, &seq));
	assert_int_equal(served(h), 0);
	assert_int_equal(fs_mutating(&h->fh), 0);
	assert_int_equal(h->done_calls, 0);
	/* Nothing accepted: the timer has nothing to run. */
	assert_int_equal(agentd_reconciler_run(h->rec, &err), 0);
	assert_int_equal(served(h), 0);
	free_req(req);
}

static void sequence_must_grow_even_across_restarts(void **state)
{
	struct harness *h = *state;
	Vmlet__V1__ReconcileRequest *req = desired(5, 1, 0, 0, "base");
	struct vmlet_err err;
	unsigned before;

	accept_and_pass(h, req);
	before = served(h);
	/* replayed */
	expect_refused(agentd_reconciler_accept(h->rec, req, 7, &err), &err, 409,
		       "sequence 5 is not newer than the accepted 5");
	/* older */
	req->desired_state->sequence = 4;
	expect_refused(agentd_reconciler_accept(h->rec, req, 7, &err), &err, 409,
		       "sequence 4 is not newer than the accepted 5");
	assert_int_equal(served(h), before);
	/* after a restart, from the persisted state */
	reconciler_open(h);
	req->desired_state->sequence = 5;
	expect_refused(agentd_reconciler_accept(h->rec, req, 7, &err), &err, 409,
		       "not newer than the accepted 5");
	assert_int_equal(served(h), before);
	/* newer is fine */
	req->desired_state->sequence = 6;
	accept_and_pass(h, req);
	assert_int_equal(h->report->sequence, 6);
	free_req(req);
}

static void invalid_state_is_refused(void **state)
{
	struct harness *h = *state;
	Vmlet__V1__ReconcileRequest *req = desired(1, 1, 0, 0, "base");
	struct vmlet_err err;

	free(req->desired_state->node_id);
	req->desired_state->node_id = strdup("other-node");
	expect_refused(agentd_reconciler_accept(h->rec, req, 7, &err), &err, 400, "node_id");
	assert_false(stored(h));
	assert_int_equal(served(h), 0);
	free_req(req);
}

/* Generate a key pair, trust its public key as coord-1 (root-owned dir). */
static void trust_key(struct harness *h, char *keyfile, size_t size)
{
	char prefix[128], src[160], dst[160], *text = NULL;
	size_t len = 0;
	struct vmlet_err err;

	snprintf(h->keys, sizeof(h->keys), "%s/keys", h->dir);
	assert_int_equal(mkdir(h->keys, 0755), 0);
	assert_int_equal(chmod(h->keys, 0755), 0);
	snprintf(prefix, sizeof(prefix), "%s/coord", h->dir);
	if (ctl_keys_gen(prefix, false, &err) < 0)
		fail_msg("keys gen: %s", err.msg);
	snprintf(src, sizeof(src), "%s.pub", prefix);
	snprintf(dst, sizeof(dst), "%s/coord-1.pub", h->keys);
	assert_int_equal(vmlet_read_file(src, 4096, &text, &len, &err), 0);
	assert_int_equal(vmlet_write_atomic(dst, text, len, 0644, &err), 0);
	free(text);
	snprintf(keyfile, size, "%s.key", prefix);
	h->keys_dir = h->keys;
}

static void signatures_production_and_development(void **state)
{
	struct harness *h = *state;
	Vmlet__V1__ReconcileRequest *req = desired(1, 1, 0, 0, "base");
	Vmlet__V1__Signature sig = VMLET__V1__SIGNATURE__INIT;
	uint8_t raw[CTL_ED25519_SIG_LEN];
	char keyfile[160];
	struct vmlet_err err;

	if (geteuid() != 0) {
		print_message("skipped: trusted keys must be root-owned (not root)\n");
		skip();
	}
	trust_key(h, keyfile, sizeof(keyfile));
	h->production = true;
	reconciler_open(h);

	/* production: unsigned is refused */
	expect_refused(agentd_reconciler_accept(h->rec, req, 7, &err), &err, 403,
		       "signature_required(production)");
	/* a signature that does not verify */
	assert_int_equal(ctl_sign_desired_state(keyfile, req->desired_state, raw, &err), 0);
	raw[0] ^= 1;
	sig.key_id = (char *)"coord-1";
	sig.ed25519.data = raw;
	sig.ed25519.len = sizeof(raw);
	req->signature = &sig;
	expect_refused(agentd_reconciler_accept(h->rec, req, 7, &err), &err, 403, "");
	/* an unknown signer */
	raw[0] ^= 1;
	sig.key_id = (char *)"coord-2";
	expect_refused(agentd_reconciler_accept(h->rec, req, 7, &err), &err, 403, "");
	assert_false(stored(h));
	assert_int_equal(served(h), 0);

	/* development: a present signature must still verify */
	h->production = false;
	reconciler_open(h);
	expect_refused(agentd_reconciler_accept(h->rec, req, 7, &err), &err, 403, "");
	assert_false(stored(h));
	assert_int_equal(served(h), 0);

	/* correctly signed, production: accepted, and reloaded after a restart */
	h->production = true;
	reconciler_open(h);
	sig.key_id = (char *)"coord-1";
	accept_and_pass(h, req);
	assert_int_equal(h->report->n_errors, 0);
	assert_int_equal(fs_count(&h->fh, "acme", "web", RUNNING), 1);
	req->signature = NULL;
	reconciler_open(h);
	{
		uint64_t seq = 0;
		assert_true(agentd_reconciler_sequence(h->rec, &seq));
		assert_int_equal(seq, 1);
	}
	free_req(req);
}

static void failing_op_is_reported_and_retried_after_backoff(void **state)
{
	struct harness *h = *state;
	Vmlet__V1__ReconcileRequest *req = desired(1, 2, 0, 0, "missing");
	const Vmlet__V1__ReconcileReport *r;
	unsigned ops;
	bool retry_noted = false;

	accept_and_pass(h, req);
	r = h->report;
	/* The pass went on after the failure: tenant and pool exist; both
	 * instances' creates failed, each reported with its ids. */
	assert_int_equal(r->tenants_created, 1);
	assert_int_equal(r->pools_created, 1);
	assert_int_equal(r->instances_created, 0);
	assert_true(r->n_errors >= 1);
	assert_string_equal(r->errors[0]->tenant_id, "acme");
	assert_string_equal(r->errors[0]->pool_id, "web");
	assert_memory_equal(r->errors[0]->instance_id, "i-", 2);
	assert_non_null(strstr(r->errors[0]->message, "create_instance"));
	assert_non_null(strstr(r->errors[0]->message, "image missing not found"));
	/* The starts of the instances that were not created are skipped. */
	assert_true(deferred_has(r, "skipped: the create_instance it depends on failed"));
	assert_false(fs_logged(&h->fh, "INSTANCE_ACTION_START"));

	/* Inside the backoff: nothing is sent again, and the report says why. */
	ops = fs_mutating(&h->fh);
	set_now(h, T0 + 1);
	timer_pass(h);
	assert_int_equal(fs_mutating(&h->fh), ops);
	for (size_t i = 0; i < h->report->n_deferred; i++)
		retry_noted |= strstr(h->report->deferred[i], "retry") != NULL;
	assert_true(retry_noted);

	/* The image arrives; after the backoff the creates are retried. */
	pthread_mutex_lock(&h->fh.mu);
	h->fh.images[1] = "missing";
	pthread_mutex_unlock(&h->fh.mu);
	set_now(h, T0 + PLAN_BACKOFF_MAX_S + 1);
	timer_pass(h);
	assert_int_equal(h->report->n_errors, 0);
	assert_int_equal(h->report->instances_created, 2);
	assert_int_equal(fs_count(&h->fh, "acme", "web", RUNNING), 2);
	free_req(req);
}

static void failed_removal_holds_back_growth_in_its_tenant(void **state)
{
	struct harness *h = *state;
	Vmlet__V1__ReconcileRequest *req = desired_two_pools(1, 2, 0);
	const Vmlet__V1__ReconcileReport *r;
	bool stop_error = false;

	accept_and_pass(h, req);
	assert_int_equal(h->report->n_errors, 0);
	assert_int_equal(fs_count(&h->fh, "acme", "web", RUNNING), 2);
	free_req(req);

	/* web shrinks, api grows: the removal is planned first; when its STOP
	 * fails, the DESTROY after it and api's growth wait for a later pass. */
	pthread_mutex_lock(&h->fh.mu);
	h->fh.fail_action = VMLET__HOST__V1__INSTANCE_ACTION__INSTANCE_ACTION_STOP;
	pthread_mutex_unlock(&h->fh.mu);
	req = desired_two_pools(2, 1, 1);
	accept_and_pass(h, req);
	r = h->report;
	for (size_t i = 0; i < r->n_errors; i++)
		stop_error |= strstr(r->errors[i]->message, "stop acme/web/i-") != NULL &&
			      strcmp(r->errors[i]->pool_id, "web") == 0;
	assert_true(stop_error);
	assert_true(deferred_has(r, "skipped: the stop it depends on failed"));
	assert_true(deferred_has(r, "would grow tenant acme's usage after its stop failed"));
	assert_false(fs_logged(&h->fh, "create_instance acme/api/"));
	assert_int_equal(fs_count(&h->fh, "acme", "web", RUNNING), 2);

	/* Fixed, and past the backoff: the next pass converges. */
	pthread_mutex_lock(&h->fh.mu);
	h->fh.fail_action = 0;
	pthread_mutex_unlock(&h->fh.mu);
	set_now(h, T0 + PLAN_BACKOFF_MAX_S + 1);
	timer_pass(h);
	assert_int_equal(h->report->n_errors, 0);
	assert_int_equal(fs_count(&h->fh, "acme", "web", RUNNING), 1);
	assert_int_equal(fs_count(&h->fh, "acme", "api", RUNNING), 1);
	free_req(req);
}

static void corrupt_persisted_state_is_ignored(void **state)
{
	struct harness *h = *state;
	Vmlet__V1__ReconcileRequest *req = desired(3, 1, 0, 0, "base");
	char path[160];
	struct vmlet_err err;
	uint8_t *buf = NULL;
	size_t len = 0;
	uint64_t seq;

	snprintf(path, sizeof(path), "%s/%s", h->state_dir, AGENTD_DESIRED_FILE);
	/* not a protobuf */
	assert_int_equal(vmlet_write_atomic(path, "\xff\xff\xff\xff", 4, 0600, &err), 0);
	reconciler_open(h);
	assert_false(agentd_reconciler_sequence(h->rec, &seq));
	assert_int_equal(agentd_reconciler_run(h->rec, &err), 0);
	/* well encoded but for another node */
	free(req->desired_state->node_id);
	req->desired_state->node_id = strdup("other-node");
	assert_int_equal(vmlet_pack(&req->base, &buf, &len, &err), 0);
	assert_int_equal(vmlet_write_atomic(path, buf, len, 0600, &err), 0);
	free(buf);
	reconciler_open(h);
	assert_false(agentd_reconciler_sequence(h->rec, &seq));
	/* truncated */
	free(req->desired_state->node_id);
	req->desired_state->node_id = strdup(NODE);
	assert_int_equal(vmlet_pack(&req->base, &buf, &len, &err), 0);
	assert_int_equal(vmlet_write_atomic(path, buf, len - 3, 0600, &err), 0);
	free(buf);
	reconciler_open(h);
	assert_false(agentd_reconciler_sequence(h->rec, &seq));
	assert_int_equal(served(h), 0);
	/* A new state replaces the corrupt file and is read back. */
	accept_and_pass(h, req);
	reconciler_open(h);
	assert_true(agentd_reconciler_sequence(h->rec, &seq));
	assert_int_equal(seq, 3);
	free_req(req);
}

static void reconcile_during_a_pass_is_409(void **state)
{
	struct harness *h = *state;
	Vmlet__V1__ReconcileRequest *one = desired(1, 1, 0, 0, "base");
	Vmlet__V1__ReconcileRequest *two = desired(2, 2, 0, 0, "base");
	struct vmlet_err err;
	uint64_t seq = 0;

	fs_set_hold(&h->fh, true);
	assert_int_equal(agentd_reconciler_accept(h->rec, one, 7, &err), 0);
	fs_wait_held(&h->fh);
	expect_refused(agentd_reconciler_accept(h->rec, two, 8, &err), &err, 409,
		       "a reconcile pass is running");
	assert_int_equal(agentd_reconciler_run(h->rec, &err), 0); /* timer: skipped */
	fs_set_hold(&h->fh, false);
	pump_until_done(h);
	assert_int_equal(h->done_cookie, 7);
	assert_int_equal(h->report->sequence, 1);
	assert_true(agentd_reconciler_sequence(h->rec, &seq));
	assert_int_equal(seq, 1);
	assert_int_equal(fs_count(&h->fh, "acme", "web", RUNNING), 1);
	/* after the pass, the newer state is welcome */
	accept_and_pass(h, two);
	assert_int_equal(fs_count(&h->fh, "acme", "web", RUNNING), 2);
	free_req(one);
	free_req(two);
}

static void hostd_gone_fails_the_pass_not_the_state(void **state)
{
	struct harness *h = *state;
	Vmlet__V1__ReconcileRequest *req = desired(1, 1, 0, 0, "base");
	struct vmlet_err err;
	uint64_t seq = 0;

	fs_stop(&h->fh);
	for (int i = 0; i < PUMP_TURNS && agentd_hostclient_connected(h->hc); i++)
		nng_msleep(10);
	expect_refused(agentd_reconciler_accept(h->rec, req, 7, &err), &err, 503,
		       "accepted and persisted, but the pass could not start");
	assert_true(stored(h));
	assert_true(agentd_reconciler_sequence(h->rec, &seq));
	assert_int_equal(seq, 1);
	assert_false(agentd_reconciler_busy(h->rec));
	free_req(req);
}

static void handler_row_serves_reconcile(void **state)
{
	const struct agentd_handler *row =
		&agentd_handlers[VMLET__V1__AGENT_REQUEST__REQUEST_RECONCILE];
	Vmlet__V1__AgentRequest ar = VMLET__V1__AGENT_REQUEST__INIT;
	Vmlet__V1__ReconcileRequest *req = desired(1, 1, 0, 0, "base");
	struct vmlet_err err;

	assert_non_null(row->serve);
	ar.request_case = VMLET__V1__AGENT_REQUEST__REQUEST_RECONCILE;
	ar.reconcile = req;
	/* without an engine: a clear 503, nothing changed */
	expect_refused(row->serve(&ar, NULL, 7, &err), &err, 503, "nothing was changed");
	free_req(req);
}

/* ---- through agentd's loop: a client's Reconcile waits for its pass --------------- */

struct served_loop {
	struct vmlet_config cfg;
	struct agentd_local_listener l;
	struct agentd_loop *loop;
	struct agentd_reconciler *rec;
};

static void loop_turn(struct served_loop *s)
{
	struct vmlet_err err;

	assert_true(agentd_loop_run_once(s->loop, 10, &err) >= 0);
}

static int loop_client(struct served_loop *s)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memcpy(sa.sun_path, s->l.path, sizeof(s->l.path));
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void loop_send(int fd, Vmlet__V1__ReconcileRequest *rr)
{
	Vmlet__V1__AgentRequest req = VMLET__V1__AGENT_REQUEST__INIT;
	uint8_t *buf;
	size_t len;

	req.request_case = VMLET__V1__AGENT_REQUEST__REQUEST_RECONCILE;
	req.reconcile = rr;
	len = protobuf_c_message_get_packed_size(&req.base);
	buf = malloc(4 + len);
	buf[0] = (uint8_t)(len >> 24);
	buf[1] = (uint8_t)(len >> 16);
	buf[2] = (uint8_t)(len >> 8);
	buf[3] = (uint8_t)len;
	protobuf_c_message_pack(&req.base, buf + 4);
	assert_int_equal(send(fd, buf, 4 + len, MSG_NOSIGNAL), (ssize_t)(4 + len));
	free(buf);
}

static void loop_read(struct served_loop *s, int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;

	for (int i = 0; i < PUMP_TURNS && got < len; i++) {
		ssize_t r = recv(fd, buf + got, len - got, MSG_DONTWAIT);
		if (r < 0 && errno == EAGAIN) {
			loop_turn(s);
			continue;
		}
		assert_true(r > 0);
		got += (size_t)r;
	}
	assert_int_equal(got, len);
}

static Vmlet__V1__AgentResponse *loop_response(struct served_loop *s, int fd)
{
	uint8_t hdr[4], *buf;
	size_t len;
	struct vmlet_err err;
	ProtobufCMessage *m;

	loop_read(s, fd, hdr, 4);
	len = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
	assert_true(len > 0 && len < (1u << 20));
	buf = malloc(len);
	loop_read(s, fd, buf, len);
	m = vmlet_strict_unpack(&vmlet__v1__agent_response__descriptor, buf, len, &err);
	free(buf);
	if (!m)
		fail_msg("response does not decode: %s", err.msg);
	return (Vmlet__V1__AgentResponse *)m;
}

static void loop_expect_error(struct served_loop *s, int fd, uint32_t code, const char *needle)
{
	Vmlet__V1__AgentResponse *r = loop_response(s, fd);

	assert_int_equal(r->response_case, VMLET__V1__AGENT_RESPONSE__RESPONSE_ERROR);
	if (r->error->code != code || !strstr(r->error->message, needle))
		fail_msg("expected %u containing \"%s\", got %u: %s", code, needle, r->error->code,
			 r->error->message);
	protobuf_c_message_free_unpacked(&r->base, NULL);
}

static void loop_until_held(struct served_loop *s, struct fake_state_hostd *f)
{
	for (int i = 0; i < PUMP_TURNS; i++) {
		unsigned w;
		pthread_mutex_lock(&f->mu);
		w = f->waiting;
		pthread_mutex_unlock(&f->mu);
		if (w)
			return;
		loop_turn(s);
	}
	fail_msg("no request reached the hostd double");
}

static void reconcile_over_the_local_socket(void **state)
{
	struct harness *h = *state;
	struct served_loop s = { 0 };
	struct agentd_reconciler_opts o = {
		.node_id = NODE, .state_dir = h->state_dir, .max_len = 1u << 20, .hc = h->hc,
		.done = agentd_loop_reconcile_done, .now_unix = clock_now, .now_ctx = h,
		.rand32 = ids, .rand_ctx = h,
	};
	Vmlet__V1__ReconcileRequest *one = desired(1, 1, 0, 0, "base");
	Vmlet__V1__ReconcileRequest *two = desired(2, 2, 0, 0, "base");
	Vmlet__V1__AgentResponse *resp;
	struct vmlet_err err;
	int a, b;
	uint64_t seq = 0;

	vmlet_config_defaults(&s.cfg);
	snprintf(s.cfg.node_id, sizeof(s.cfg.node_id), NODE);
	snprintf(s.cfg.local_socket, sizeof(s.cfg.local_socket), "%s/agentd.sock", h->dir);
	s.cfg.admin_gid = getegid();
	assert_int_equal(agentd_local_listen(&s.cfg, &s.l, &err), 0);
	assert_int_equal(agentd_loop_new(&s.cfg, NULL, h->hc, &s.loop, &err), 0);
	assert_int_equal(agentd_loop_add_listener(s.loop, s.l.fd, AGENTD_TRANSPORT_LOCAL, &err), 0);
	o.done_arg = s.loop;
	assert_int_equal(agentd_reconciler_new(&o, &s.rec, &err), 0);
	/* The timer stays far away: this test runs passes by request only. */
	assert_int_equal(agentd_loop_attach_reconciler(s.loop, s.rec, 86400, 86400, &err), 0);

	/* A's pass is held inside hostd; B's Reconcile meanwhile is 409. */
	fs_set_hold(&h->fh, true);
	a = loop_client(&s);
	loop_send(a, one);
	loop_until_held(&s, &h->fh);
	b = loop_client(&s);
	loop_send(b, two);
	loop_expect_error(&s, b, 409, "a reconcile pass is running");
	fs_set_hold(&h->fh, false);
	resp = loop_response(&s, a);
	assert_int_equal(resp->response_case, VMLET__V1__AGENT_RESPONSE__RESPONSE_RECONCILE);
	assert_int_equal(resp->reconcile->sequence, 1);
	assert_int_equal(resp->reconcile->instances_created, 1);
	assert_int_equal(resp->reconcile->instances_started, 1);
	assert_int_equal(resp->reconcile->n_errors, 0);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	/* A replay on the same connection: 409, and the connection stays. */
	loop_send(a, one);
	loop_expect_error(&s, a, 409, "sequence 1 is not newer than the accepted 1");

	/* A client that leaves during its pass: the pass still completes. */
	fs_set_hold(&h->fh, true);
	loop_send(b, two);
	loop_until_held(&s, &h->fh);
	close(b);
	for (int i = 0; i < 20; i++)
		loop_turn(&s);
	fs_set_hold(&h->fh, false);
	for (int i = 0; i < PUMP_TURNS && agentd_reconciler_busy(s.rec); i++)
		loop_turn(&s);
	assert_false(agentd_reconciler_busy(s.rec));
	assert_true(agentd_reconciler_sequence(s.rec, &seq));
	assert_int_equal(seq, 2);
	assert_int_equal(fs_count(&h->fh, "acme", "web", RUNNING), 2);

	close(a);
	agentd_loop_free(s.loop);
	agentd_reconciler_free(s.rec);
	agentd_local_close(&s.l, &err);
	free_req(one);
	free_req(two);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(fresh_pass_converges_then_second_pass_is_a_noop),
		T(persist_failure_changes_nothing),
		T(sequence_must_grow_even_across_restarts),
		T(invalid_state_is_refused),
		T(signatures_production_and_development),
		T(failing_op_is_reported_and_retried_after_backoff),
		T(failed_removal_holds_back_growth_in_its_tenant),
		T(corrupt_persisted_state_is_ignored),
		T(reconcile_during_a_pass_is_409),
		T(hostd_gone_fails_the_pass_not_the_state),
		T(handler_row_serves_reconcile),
		T(reconcile_over_the_local_socket),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
