/* hostd's lifecycle operations through the dispatcher, without VMMs (the
 * fixture has no runtime: every check before a VMM is needed runs, and
 * a transition that needs one answers 503): the transition table, hostile
 * input for every new operation, idempotency, and the audit log. The
 * real VMM side is tests/integration/runtime_lifecycle.sh. */
#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "hostd/audit.h"
#include "hostd/lifecycle.h"
#include "hostd/monitor.h"
#include "shared/log.h"
#include "test_hostd_util.h"

#define OP(x) VMLET__HOST__V1__HOST_REQUEST__OP_##x
#define RESULT(x) VMLET__HOST__V1__HOST_RESPONSE__RESULT_##x
#define ST(x) VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_##x
#define ACT(x) VMLET__HOST__V1__INSTANCE_ACTION__INSTANCE_ACTION_##x

static int setup(void **state)
{
	vlog_init("test_hostd_lifecycle");
	*state = hostd_fixture_new();
	return *state ? 0 : -1;
}

static int teardown(void **state)
{
	hostd_fixture_free(*state);
	return 0;
}

static void expect_error(Vmlet__Host__V1__HostResponse *resp, uint32_t code, const char *needle)
{
	assert_non_null(resp);
	if (resp->result_case != RESULT(ERROR))
		fail_msg("want error %u (%s), got result case %d", code, needle ? needle : "",
			 (int)resp->result_case);
	if (resp->error->code != code || (needle && !strstr(resp->error->message, needle)))
		fail_msg("want error %u containing \"%s\", got %u \"%s\"", code,
			 needle ? needle : "", resp->error->code, resp->error->message);
	hostd_resp_free(resp);
}

static void expect_ok(Vmlet__Host__V1__HostResponse *resp)
{
	assert_non_null(resp);
	if (resp->result_case == RESULT(ERROR))
		fail_msg("want ok, got %u \"%s\"", resp->error->code, resp->error->message);
	hostd_resp_free(resp);
}

/* The instance of a reply (the caller frees the response). */
static Vmlet__V1__InstanceInfo *instance_of(Vmlet__Host__V1__HostResponse *resp)
{
	assert_non_null(resp);
	if (resp->result_case != RESULT(INSTANCE))
		fail_msg("want an instance, got case %d (%s)", (int)resp->result_case,
			 resp->result_case == RESULT(ERROR) ? resp->error->message : "");
	return resp->instance;
}

/* ---- requests ------------------------------------------------------------------------ */

static Vmlet__Host__V1__HostResponse *ensure_tenant(struct hostd_fixture *fx, const char *t,
						    uint32_t net, const char *subnet)
{
	Vmlet__Host__V1__HostRequest req = VMLET__HOST__V1__HOST_REQUEST__INIT;
	Vmlet__Host__V1__EnsureTenantRequest r = VMLET__HOST__V1__ENSURE_TENANT_REQUEST__INIT;

	r.tenant_id = (char *)t;
	r.tenant_net_id = net;
	r.ipv4_subnet = (char *)subnet;
	req.op_case = OP(ENSURE_TENANT);
	req.ensure_tenant = &r;
	return hostd_call(fx, &req);
}

static Vmlet__Host__V1__HostResponse *remove_tenant(struct hostd_fixture *fx, const char *t)
{
	Vmlet__Host__V1__HostRequest req = VMLET__HOST__V1__HOST_REQUEST__INIT;
	Vmlet__Host__V1__RemoveTenantRequest r = VMLET__HOST__V1__REMOVE_TENANT_REQUEST__INIT;

	r.tenant_id = (char *)t;
	req.op_case = OP(REMOVE_TENANT);
	req.remove_tenant = &r;
	return hostd_call(fx, &req);
}

static Vmlet__Host__V1__HostResponse *ensure_pool(struct hostd_fixture *fx, const char *t,
						  const char *p, const char *hash)
{
	Vmlet__Host__V1__HostRequest req = VMLET__HOST__V1__HOST_REQUEST__INIT;
	Vmlet__Host__V1__EnsurePoolRequest r = VMLET__HOST__V1__ENSURE_POOL_REQUEST__INIT;

	r.tenant_id = (char *)t;
	r.pool_id = (char *)p;
	if (hash)
		r.spec_hash = (char *)hash;
	req.op_case = OP(ENSURE_POOL);
	req.ensure_pool = &r;
	return hostd_call(fx, &req);
}

static Vmlet__Host__V1__HostResponse *remove_pool(struct hostd_fixture *fx, const char *t,
						  const char *p)
{
	Vmlet__Host__V1__HostRequest req = VMLET__HOST__V1__HOST_REQUEST__INIT;
	Vmlet__Host__V1__RemovePoolRequest r = VMLET__HOST__V1__REMOVE_POOL_REQUEST__INIT;

	r.tenant_id = (char *)t;
	r.pool_id = (char *)p;
	req.op_case = OP(REMOVE_POOL);
	req.remove_pool = &r;
	return hostd_call(fx, &req);
}

struct spec {
	uint32_t vcpus, mem_mib, disk;
	const char *image, *hash;
};

static Vmlet__Host__V1__HostResponse *create(struct hostd_fixture *fx, const char *t,
					     const char *p, const char *i, const struct spec *s)
{
	Vmlet__Host__V1__HostRequest req = VMLET__HOST__V1__HOST_REQUEST__INIT;
	Vmlet__Host__V1__CreateInstanceRequest r = VMLET__HOST__V1__CREATE_INSTANCE_REQUEST__INIT;
	Vmlet__Host__V1__InstanceSpec sp = VMLET__HOST__V1__INSTANCE_SPEC__INIT;

	r.tenant_id = (char *)t;
	r.pool_id = (char *)p;
	r.instance_id = (char *)i;
	if (s) {
		sp.vcpus = s->vcpus;
		sp.mem_mib = s->mem_mib;
		sp.data_disk_mib = s->disk;
		sp.image = (char *)s->image;
		if (s->hash)
			sp.spec_hash = (char *)s->hash;
		r.spec = &sp;
	}
	req.op_case = OP(CREATE_INSTANCE);
	req.create_instance = &r;
	return hostd_call(fx, &req);
}

static Vmlet__Host__V1__HostResponse *action(struct hostd_fixture *fx, const char *t,
					     const char *p, const char *i, int act,
					     uint32_t graceful_ms)
{
	Vmlet__Host__V1__HostRequest req = VMLET__HOST__V1__HOST_REQUEST__INIT;
	Vmlet__Host__V1__InstanceActionRequest r = VMLET__HOST__V1__INSTANCE_ACTION_REQUEST__INIT;

	r.tenant_id = (char *)t;
	r.pool_id = (char *)p;
	r.instance_id = (char *)i;
	r.action = (Vmlet__Host__V1__InstanceAction)act;
	r.graceful_ms = graceful_ms;
	req.op_case = OP(INSTANCE_ACTION);
	req.instance_action = &r;
	return hostd_call(fx, &req);
}

static const struct spec good = { 1, 128, 0, "guest", "sha256:ab12" };

/* acme (net 10, 10.10.0.0/24) with pool web. */
static void make_pool(struct hostd_fixture *fx)
{
	expect_ok(ensure_tenant(fx, "acme", 10, "10.10.0.0/24"));
	expect_ok(ensure_pool(fx, "acme", "web", "h1"));
}

/* An instance record in a given state, written as hostd would. */
static void put_instance(struct hostd_fixture *fx, const char *i, int state)
{
	Vmlet__Host__V1__InstanceRecord rec = VMLET__HOST__V1__INSTANCE_RECORD__INIT;
	struct vmlet_err err;

	rec.tenant_id = "acme";
	rec.pool_id = "web";
	rec.instance_id = (char *)i;
	rec.state = (Vmlet__V1__InstanceState)state;
	rec.vcpus = 1;
	rec.mem_mib = 128;
	rec.image = "guest";
	if (hostd_registry_write_instance(&fx->reg, &rec, &err) < 0)
		fail_msg("write_instance: %s", err.msg);
}

static size_t count_tree(const char *path)
{
	char cmd[PATH_MAX + 64];
	FILE *f;
	size_t n = 0;
	int c;

	snprintf(cmd, sizeof(cmd), "find '%s' | wc -l", path);
	f = popen(cmd, "r");
	assert_non_null(f);
	if (fscanf(f, "%zu", &n) != 1)
		n = 0;
	while ((c = fgetc(f)) != EOF)
		;
	pclose(f);
	return n;
}

/* ---- the transition table -------------------------------------------------------------- */

/* The expected verdicts, written out independently of lifecycle.c:
 * 'g' go, 'n' no-op (already there), 'r' refused. Rows: actions START..
 * DESTROY; columns: created running warm sleeping stopped. */
static const char *const expected[] = {
	/* START   */ "gnrrg",
	/* STOP    */ "rgggn",
	/* PAUSE   */ "rgnrr",
	/* RESUME  */ "rngrr",
	/* SLEEP   */ "rggnr",
	/* WAKE    */ "rnggr",
	/* DESTROY */ "ggggg",
};

static void transition_table_matches_the_design(void **state)
{
	static const char *const names[] = { "START", "STOP", "PAUSE", "RESUME",
					     "SLEEP", "WAKE", "DESTROY" };

	for (int a = ACT(START); a <= ACT(DESTROY); a++) {
		const struct lc_transition *t = lc_transition_find(a);

		assert_non_null(t);
		assert_string_equal(t->name, names[a - 1]);
		for (int s = ST(CREATED); s <= ST(STOPPED); s++) {
			Vmlet__Host__V1__InstanceRecord rec = VMLET__HOST__V1__INSTANCE_RECORD__INIT;
			struct vmlet_err err;
			char want = expected[a - 1][s - 1];
			int got;

			rec.tenant_id = "acme";
			rec.pool_id = "web";
			rec.instance_id = "i-0000abcd";
			rec.state = (Vmlet__V1__InstanceState)s;
			vmlet_err_clear(&err);
			got = lc_transition_check(t, &rec, &err);
			if ((want == 'g' && got != 0) || (want == 'n' && got != 1) ||
			    (want == 'r' && got != -1))
				fail_msg("%s from %s: want %c, got %d", t->name, lc_state_name(s),
					 want, got);
			if (want == 'r') {
				char both[64];

				/* names the action, the instance, its state and the
				 * states it is allowed from */
				assert_int_equal(err.code, 409);
				assert_non_null(strstr(err.msg, t->name));
				assert_non_null(strstr(err.msg, "acme/web/i-0000abcd"));
				snprintf(both, sizeof(both), "it is %s (allowed from: ",
					 lc_state_name(s));
				if (!strstr(err.msg, both))
					fail_msg("message \"%s\" lacks \"%s\"", err.msg, both);
			}
		}
	}
	assert_null(lc_transition_find(ACT(UNSPECIFIED)));
	assert_null(lc_transition_find(8));
	assert_null(lc_transition_find(-1));
	assert_string_equal(lc_state_name(99), "unknown");
}

static void refused_transition_through_dispatch(void **state)
{
	struct hostd_fixture *fx = *state;

	make_pool(fx);
	put_instance(fx, "i-00000001", ST(SLEEPING));
	expect_error(action(fx, "acme", "web", "i-00000001", ACT(PAUSE), 0), 409,
		     "cannot PAUSE instance acme/web/i-00000001: it is sleeping (allowed from: "
		     "running)");
	put_instance(fx, "i-00000002", ST(CREATED));
	expect_error(action(fx, "acme", "web", "i-00000002", ACT(RESUME), 0), 409,
		     "it is created (allowed from: warm)");
	expect_error(action(fx, "acme", "web", "i-00000002", ACT(WAKE), 0), 409,
		     "it is created (allowed from: warm, sleeping)");
}

/* ---- idempotency ---------------------------------------------------------------------- */

static void same_state_requests_are_no_ops(void **state)
{
	struct hostd_fixture *fx = *state;
	Vmlet__Host__V1__HostResponse *resp;
	static const struct {
		int state, act;
	} cases[] = {
		{ ST(RUNNING), ACT(START) }, { ST(RUNNING), ACT(RESUME) },
		{ ST(RUNNING), ACT(WAKE) },  { ST(WARM), ACT(PAUSE) },
		{ ST(SLEEPING), ACT(SLEEP) }, { ST(STOPPED), ACT(STOP) },
	};

	make_pool(fx);
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		put_instance(fx, "i-0000abcd", cases[k].state);
		/* no runtime here: a request that needed one would be 503 */
		resp = action(fx, "acme", "web", "i-0000abcd", cases[k].act, 0);
		assert_int_equal(instance_of(resp)->state, cases[k].state);
		hostd_resp_free(resp);
		/* and again */
		resp = action(fx, "acme", "web", "i-0000abcd", cases[k].act, 0);
		assert_int_equal(instance_of(resp)->state, cases[k].state);
		hostd_resp_free(resp);
	}
}

static void transition_needing_a_vmm_without_runtime_is_503(void **state)
{
	struct hostd_fixture *fx = *state;

	make_pool(fx);
	put_instance(fx, "i-0000abcd", ST(CREATED));
	expect_error(action(fx, "acme", "web", "i-0000abcd", ACT(START), 0), 503,
		     "START instance acme/web/i-0000abcd: the instance runtime is not running");
	/* nothing changed */
	Vmlet__Host__V1__HostResponse *resp = hostd_call_lookup(fx, "acme", "web", "i-0000abcd");
	assert_int_equal(instance_of(resp)->state, ST(CREATED));
	hostd_resp_free(resp);
}

static void destroy_of_unknown_instance_is_ok(void **state)
{
	struct hostd_fixture *fx = *state;
	Vmlet__Host__V1__HostResponse *resp;

	for (int k = 0; k < 2; k++) {
		resp = action(fx, "nobody", "none", "i-deadbeef", ACT(DESTROY), 0);
		assert_int_equal(instance_of(resp)->state, ST(DESTROYED));
		assert_string_equal(instance_of(resp)->instance_id, "i-deadbeef");
		hostd_resp_free(resp);
	}
	/* other actions on it are 404 */
	expect_error(action(fx, "nobody", "none", "i-deadbeef", ACT(START), 0), 404, "not found");
	assert_int_equal(count_tree(fx->cfg.state_dir), 2); /* state/ and tenants/ */
}

static void ensure_and_create_are_idempotent(void **state)
{
	struct hostd_fixture *fx = *state;
	struct spec other = good;
	Vmlet__Host__V1__HostResponse *resp;

	make_pool(fx);
	make_pool(fx); /* again: ok, nothing changes */
	resp = create(fx, "acme", "web", "i-0000abcd", &good);
	assert_int_equal(instance_of(resp)->state, ST(CREATED));
	assert_int_equal(instance_of(resp)->mem_mib, 128);
	hostd_resp_free(resp);
	resp = create(fx, "acme", "web", "i-0000abcd", &good); /* retried: ok */
	assert_int_equal(instance_of(resp)->state, ST(CREATED));
	hostd_resp_free(resp);
	other.mem_mib = 256;
	expect_error(create(fx, "acme", "web", "i-0000abcd", &other), 409,
		     "exists with a different spec");
	other = good;
	other.hash = "sha256:ffff";
	expect_error(create(fx, "acme", "web", "i-0000abcd", &other), 409, "different spec");
	/* instance ids are unique on the node, not only in their pool */
	expect_ok(ensure_pool(fx, "acme", "api", NULL));
	expect_error(create(fx, "acme", "api", "i-0000abcd", &good), 409,
		     "already used by pool acme/web");
	/* a tenant with other values: 409; same net id elsewhere: 409; overlap: 409 */
	expect_error(ensure_tenant(fx, "acme", 11, "10.10.0.0/24"), 409, "changing them");
	expect_error(ensure_tenant(fx, "beta", 10, "10.20.0.0/24"), 409,
		     "tenant_net_id: 10 is already used by tenant acme");
	expect_error(ensure_tenant(fx, "beta", 20, "10.10.0.0/16"), 409,
		     "overlaps 10.10.0.0/24 of tenant acme");
	expect_ok(ensure_tenant(fx, "beta", 20, "10.20.0.0/24"));
	/* a pool with a new spec hash: updated */
	expect_ok(ensure_pool(fx, "acme", "web", "h2"));
}

static void remove_refuses_while_instances_exist(void **state)
{
	struct hostd_fixture *fx = *state;
	char path[PATH_MAX + 64];

	make_pool(fx);
	expect_ok(create(fx, "acme", "web", "i-0000abcd", &good));
	expect_error(remove_pool(fx, "acme", "web"), 409, "still has 1 instance(s)");
	expect_error(remove_tenant(fx, "acme"), 409, "still has instances (pool web");
	expect_ok(ensure_pool(fx, "acme", "empty", NULL));
	expect_ok(remove_pool(fx, "acme", "empty"));
	expect_ok(remove_pool(fx, "acme", "empty")); /* gone already: ok */
	snprintf(path, sizeof(path), "%s/tenants/acme/pools/empty", fx->cfg.state_dir);
	assert_int_equal(access(path, F_OK), -1);
	/* a tenant with only empty pools goes, with them */
	expect_ok(ensure_tenant(fx, "beta", 20, "10.20.0.0/24"));
	expect_ok(ensure_pool(fx, "beta", "p1", NULL));
	expect_ok(remove_tenant(fx, "beta"));
	expect_ok(remove_tenant(fx, "beta"));
	snprintf(path, sizeof(path), "%s/tenants/beta", fx->cfg.state_dir);
	assert_int_equal(access(path, F_OK), -1);
}

static void remove_tenant_never_follows_a_symlink(void **state)
{
	struct hostd_fixture *fx = *state;
	char target[PATH_MAX], link[PATH_MAX + 32], victim[PATH_MAX + 16];
	int fd;

	/* tenants/evil -> a directory outside the state dir holding a file */
	snprintf(target, sizeof(target), "%s/outside", fx->dir);
	assert_int_equal(mkdir(target, 0700), 0);
	snprintf(victim, sizeof(victim), "%s/keep", target);
	fd = open(victim, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "data", 4), 4);
	close(fd);
	snprintf(link, sizeof(link), "%s/tenants/evil", fx->cfg.state_dir);
	assert_int_equal(symlink(target, link), 0);
	expect_ok(remove_tenant(fx, "evil"));
	/* the link is gone, what it pointed at is untouched */
	assert_int_equal(access(link, F_OK), -1);
	struct stat st;
	assert_int_equal(stat(victim, &st), 0);
	assert_int_equal(st.st_size, 4);
}

/* ---- hostile input ---------------------------------------------------------------------- */

static const char *const bad_ids[] = {
	"", "../x", "..", ".", "a/b", "/etc", "Bad_ID", "-lead", "trail-", "sp ace", "new\nline",
	"0123456789012345678901234567890123456789012345678901234567890123",
};
static const char *const bad_instances[] = {
	"", "i-", "i-1234567", "i-123456789", "i-ABCDEF01", "x-12345678", "../i-12345678",
	"i-1234567g", "i-12345678/..", "acme",
};
#define N(a) (sizeof(a) / sizeof((a)[0]))

static void hostile_tenant_and_pool_requests(void **state)
{
	struct hostd_fixture *fx = *state;
	size_t before;

	before = count_tree(fx->cfg.state_dir);
	for (size_t k = 0; k < N(bad_ids); k++) {
		expect_error(ensure_tenant(fx, bad_ids[k], 10, "10.10.0.0/24"), 400,
			     "ensure_tenant.tenant_id");
		expect_error(remove_tenant(fx, bad_ids[k]), 400, "remove_tenant.tenant_id");
		expect_error(ensure_pool(fx, bad_ids[k], "web", NULL), 400,
			     "ensure_pool.tenant_id");
		expect_error(ensure_pool(fx, "acme", bad_ids[k], NULL), 400, "ensure_pool.pool_id");
		expect_error(remove_pool(fx, bad_ids[k], "web"), 400, "remove_pool.tenant_id");
		expect_error(remove_pool(fx, "acme", bad_ids[k]), 400, "remove_pool.pool_id");
	}
	expect_error(ensure_tenant(fx, "acme", 0, "10.10.0.0/24"), 400, "tenant_net_id: 0");
	expect_error(ensure_tenant(fx, "acme", 4095, "10.10.0.0/24"), 400, "tenant_net_id: 4095");
	expect_error(ensure_tenant(fx, "acme", 10, "8.8.8.0/24"), 400, "ensure_tenant.ipv4_subnet");
	expect_error(ensure_tenant(fx, "acme", 10, "10.10.0.0/8"), 400, "ensure_tenant.ipv4_subnet");
	expect_error(ensure_tenant(fx, "acme", 10, "10.10.0.1/24"), 400,
		     "ensure_tenant.ipv4_subnet");
	expect_error(ensure_tenant(fx, "acme", 10, "../../etc"), 400, "ensure_tenant.ipv4_subnet");
	/* a pool needs its tenant */
	expect_error(ensure_pool(fx, "acme", "web", NULL), 404, "tenant acme not found");
	assert_int_equal(count_tree(fx->cfg.state_dir), before);
	expect_ok(ensure_tenant(fx, "acme", 10, "10.10.0.0/24"));
	expect_error(ensure_pool(fx, "acme", "web", "sha256:a/b"), 400,
		     "ensure_pool.spec_hash: character 0x2f");
	expect_error(ensure_pool(fx, "acme", "web", "x\x01y"), 400, "ensure_pool.spec_hash");
	char longhash[200];
	memset(longhash, 'a', sizeof(longhash) - 1);
	longhash[sizeof(longhash) - 1] = '\0';
	expect_error(ensure_pool(fx, "acme", "web", longhash), 400, "longer than 128");
}

static void hostile_create_requests(void **state)
{
	struct hostd_fixture *fx = *state;
	struct spec s;
	size_t before;

	make_pool(fx);
	before = count_tree(fx->cfg.state_dir);
	for (size_t k = 0; k < N(bad_ids); k++) {
		expect_error(create(fx, bad_ids[k], "web", "i-0000abcd", &good), 400,
			     "create_instance.tenant_id");
		expect_error(create(fx, "acme", bad_ids[k], "i-0000abcd", &good), 400,
			     "create_instance.pool_id");
	}
	for (size_t k = 0; k < N(bad_instances); k++)
		expect_error(create(fx, "acme", "web", bad_instances[k], &good), 400,
			     "create_instance.instance_id");
	expect_error(create(fx, "acme", "web", "i-0000abcd", NULL), 400,
		     "create_instance.spec: missing");
	expect_error(create(fx, "acme", "web", HOSTD_PROBE_INSTANCE, &good), 400,
		     "is reserved (hostd's KVM probe)");
	s = good, s.vcpus = 0;
	expect_error(create(fx, "acme", "web", "i-0000abcd", &s), 400, "spec.vcpus: 0");
	s = good, s.vcpus = 33;
	expect_error(create(fx, "acme", "web", "i-0000abcd", &s), 400, "spec.vcpus: 33");
	s = good, s.mem_mib = 63;
	expect_error(create(fx, "acme", "web", "i-0000abcd", &s), 400, "spec.mem_mib: 63");
	s = good, s.mem_mib = 262145;
	expect_error(create(fx, "acme", "web", "i-0000abcd", &s), 400, "spec.mem_mib: 262145");
	s = good, s.disk = 2u * 1024 * 1024;
	expect_error(create(fx, "acme", "web", "i-0000abcd", &s), 400, "spec.data_disk_mib");
	static const char *const bad_images[] = { "", "../guest", "a/b", "/etc/passwd", "Guest",
						  "guest/../../x", ".", ".." };
	for (size_t k = 0; k < N(bad_images); k++) {
		s = good, s.image = bad_images[k];
		expect_error(create(fx, "acme", "web", "i-0000abcd", &s), 400,
			     "create_instance.spec.image");
	}
	s = good, s.hash = "sha256:\"x\"";
	expect_error(create(fx, "acme", "web", "i-0000abcd", &s), 400, "spec.spec_hash");
	/* a missing pool: 404, nothing made */
	expect_error(create(fx, "acme", "nopool", "i-0000abcd", &good), 404,
		     "pool acme/nopool not found");
	assert_int_equal(count_tree(fx->cfg.state_dir), before);
}

static void hostile_action_requests(void **state)
{
	struct hostd_fixture *fx = *state;
	/* instance_action {tenant "acme", pool "web", instance "i-0000abcd",
	 * action 99}: an enum value the proto does not define */
	static const uint8_t unknown_action[] = {
		0x7a, 0x1c, 0x0a, 0x04, 'a', 'c', 'm', 'e', 0x12, 0x03, 'w', 'e', 'b',
		0x1a, 0x0a, 'i', '-', '0', '0', '0', '0', 'a', 'b', 'c', 'd', 0x20, 0x63,
	};
	Vmlet__Host__V1__HostResponse *resp;

	make_pool(fx);
	put_instance(fx, "i-0000abcd", ST(RUNNING));
	for (size_t k = 0; k < N(bad_ids); k++) {
		expect_error(action(fx, bad_ids[k], "web", "i-0000abcd", ACT(STOP), 0), 400,
			     "instance_action.tenant_id");
		expect_error(action(fx, "acme", bad_ids[k], "i-0000abcd", ACT(STOP), 0), 400,
			     "instance_action.pool_id");
	}
	for (size_t k = 0; k < N(bad_instances); k++)
		expect_error(action(fx, "acme", "web", bad_instances[k], ACT(DESTROY), 0), 400,
			     "instance_action.instance_id");
	expect_error(action(fx, "acme", "web", "i-0000abcd", ACT(UNSPECIFIED), 0), 400,
		     "instance_action.action: 0 is not an action");
	expect_error(hostd_call_bytes(fx, unknown_action, sizeof(unknown_action)), 400,
		     "host request");
	expect_error(action(fx, "acme", "web", "i-0000abcd", ACT(STOP), 60001), 400,
		     "instance_action.graceful_ms: 60001");
	/* still running, untouched */
	resp = hostd_call_lookup(fx, "acme", "web", "i-0000abcd");
	assert_int_equal(instance_of(resp)->state, ST(RUNNING));
	hostd_resp_free(resp);
}

/* ---- the audit log ---------------------------------------------------------------------- */

static void audit_lines_are_written(void **state)
{
	struct hostd_fixture *fx = *state;
	struct spec other = good;
	char path[PATH_MAX + 64], line[4096];
	struct stat st;
	size_t n = 0;
	FILE *f;
	static const struct {
		const char *action, *instance, *result;
		int code;
	} want[] = {
		{ "ensure_tenant", NULL, "ok", 200 },
		{ "ensure_pool", NULL, "ok", 200 },
		{ "create", "i-0000abcd", "ok", 200 },
		{ "create", "i-0000abcd", "error", 409 },
		{ "pause", "i-0000abcd", "error", 409 },
		{ "start", "i-0000abcd", "error", 503 },
		{ "remove_pool", NULL, "error", 409 },
	};

	make_pool(fx);
	expect_ok(create(fx, "acme", "web", "i-0000abcd", &good));
	other.mem_mib = 512;
	expect_error(create(fx, "acme", "web", "i-0000abcd", &other), 409, NULL);
	expect_error(action(fx, "acme", "web", "i-0000abcd", ACT(PAUSE), 0), 409, NULL);
	expect_error(action(fx, "acme", "web", "i-0000abcd", ACT(START), 0), 503, NULL);
	expect_error(remove_pool(fx, "acme", "web"), 409, NULL);

	snprintf(path, sizeof(path), "%s/tenants/acme/audit.jsonl", fx->cfg.state_dir);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		json_error_t je;
		json_t *o = json_loads(line, 0, &je);
		const char *inst;

		assert_true(n < N(want));
		if (!o)
			fail_msg("line %zu is not JSON: %s", n, je.text);
		assert_string_equal(json_string_value(json_object_get(o, "tenant")), "acme");
		if (n == 0)
			assert_null(json_string_value(json_object_get(o, "pool")));
		else
			assert_string_equal(json_string_value(json_object_get(o, "pool")), "web");
		assert_string_equal(json_string_value(json_object_get(o, "action")), want[n].action);
		assert_string_equal(json_string_value(json_object_get(o, "result")), want[n].result);
		assert_int_equal(json_integer_value(json_object_get(o, "code")), want[n].code);
		assert_true(json_is_integer(json_object_get(o, "duration_ms")));
		assert_int_equal(strlen(json_string_value(json_object_get(o, "time"))), 20);
		inst = json_string_value(json_object_get(o, "instance"));
		if (want[n].instance)
			assert_string_equal(inst, want[n].instance);
		else
			assert_null(inst);
		if (want[n].code != 200)
			assert_true(strlen(json_string_value(json_object_get(o, "message"))) > 0);
		json_decref(o);
		n++;
	}
	fclose(f);
	assert_int_equal(n, N(want));
}

static void audit_line_escapes_hostile_text(void **state)
{
	struct vmlet_err err;
	struct hostd_audit_entry e = { .tenant = "acme", .pool = "web", .instance = "i-0000abcd",
				       .action = "start", .err = &err, .duration_ms = 7 };
	char *line;
	json_t *o;

	vmlet_err_set(&err, 500, 0, "evil\n{\"result\":\"ok\"}\x01\xc3\xa9");
	line = hostd_audit_format(&e, 0);
	assert_non_null(line);
	assert_null(strchr(line, '\n'));
	for (const char *c = line; *c; c++)
		assert_true((unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f);
	o = json_loads(line, 0, NULL);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "result")), "error");
	assert_string_equal(json_string_value(json_object_get(o, "message")),
			    "evil\n{\"result\":\"ok\"}\x01\xc3\xa9");
	assert_string_equal(json_string_value(json_object_get(o, "time")), "1970-01-01T00:00:00Z");
	json_decref(o);
	free(line);
}

static void audit_refuses_a_symlinked_log(void **state)
{
	struct hostd_fixture *fx = *state;
	char target[PATH_MAX], link[PATH_MAX + 64];
	struct hostd_audit_entry e = { .tenant = "acme", .action = "x" };
	struct vmlet_err err;
	struct stat st;

	make_pool(fx);
	snprintf(target, sizeof(target), "%s/elsewhere", fx->dir);
	snprintf(link, sizeof(link), "%s/tenants/acme/audit.jsonl", fx->cfg.state_dir);
	unlink(link);
	assert_int_equal(symlink(target, link), 0);
	assert_int_equal(hostd_audit_append(&fx->reg, &e, &err), -1);
	assert_int_equal(stat(target, &st), -1); /* nothing created through the link */
	e.tenant = "../x";
	assert_int_equal(hostd_audit_append(&fx->reg, &e, &err), -1);
	assert_int_equal(err.code, 400);
}

/* ---- snapshot paths: beneath the tenant root, no symlinks, no ".." -------------------- */

static void open_beneath_refuses_dotdot_and_symlinks(void **state)
{
	struct hostd_fixture *fx = *state;
	char path[PATH_MAX + 64];
	struct vmlet_err err;
	int tfd, fd;

	make_pool(fx);
	tfd = hostd_registry_open_tenant_dir(&fx->reg, "acme", &err);
	assert_true(tfd >= 0);
	/* ".." out of the tenant root, and an absolute path */
	assert_int_equal(hostd_open_beneath(tfd, "../../tenants/acme/tenant.json", O_RDONLY, 0,
					    &err), -1);
	assert_int_equal(err.code, 403);
	assert_int_equal(hostd_open_beneath(tfd, "/etc/passwd", O_RDONLY, 0, &err), -1);
	assert_int_equal(err.code, 403);
	/* a symlink inside the root, even one pointing inside it */
	snprintf(path, sizeof(path), "%s/tenants/acme/link", fx->cfg.state_dir);
	assert_int_equal(symlink("tenant.json", path), 0);
	assert_int_equal(hostd_open_beneath(tfd, "link", O_RDONLY, 0, &err), -1);
	assert_int_equal(err.code, 403);
	fd = hostd_open_beneath(tfd, "tenant.json", O_RDONLY, 0, &err);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(hostd_open_beneath(tfd, "missing", O_RDONLY, 0, &err), -1);
	assert_int_equal(err.code, 404);
	close(tfd);
}

static void snapshot_modes_and_planted_symlinks(void **state)
{
	struct hostd_fixture *fx = *state;
	char idir[PATH_MAX + 64], sdir[PATH_MAX + 80], file[PATH_MAX + 96], target[PATH_MAX];
	struct vmlet_err err;
	struct stat st;
	int fd;

	make_pool(fx);
	put_instance(fx, "i-0000abcd", ST(RUNNING));
	snprintf(idir, sizeof(idir), "%s/tenants/acme/pools/web/instances/i-0000abcd",
		 fx->cfg.state_dir);
	snprintf(sdir, sizeof(sdir), "%s/snapshot", idir);
	snprintf(file, sizeof(file), "%s/vm.state", sdir);
	/* nothing to read yet */
	assert_int_equal(hostd_snapshot_open(&fx->reg, "acme", "web", "i-0000abcd", false, &err),
			 -1);
	assert_int_equal(err.code, 404);
	fd = hostd_snapshot_open(&fx->reg, "acme", "web", "i-0000abcd", true, &err);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(stat(sdir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	/* the file replaced by a symlink to a file outside: refused, the
	 * target untouched */
	snprintf(target, sizeof(target), "%s/outside", fx->dir);
	fd = open(target, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "keep", 4), 4);
	close(fd);
	assert_int_equal(unlink(file), 0);
	assert_int_equal(symlink(target, file), 0);
	assert_int_equal(hostd_snapshot_open(&fx->reg, "acme", "web", "i-0000abcd", true, &err),
			 -1);
	assert_int_equal(err.code, 403);
	assert_int_equal(hostd_snapshot_open(&fx->reg, "acme", "web", "i-0000abcd", false, &err),
			 -1);
	assert_int_equal(stat(target, &st), 0);
	assert_int_equal(st.st_size, 4);

	/* the snapshot dir replaced by a symlink: refused */
	assert_int_equal(unlink(file), 0);
	assert_int_equal(rmdir(sdir), 0);
	assert_int_equal(symlink(fx->dir, sdir), 0);
	assert_int_equal(hostd_snapshot_open(&fx->reg, "acme", "web", "i-0000abcd", true, &err),
			 -1);
	assert_int_equal(err.code, 403);
	assert_int_equal(unlink(sdir), 0);

	/* a snapshot dir someone else could read: refused */
	assert_int_equal(mkdir(sdir, 0755), 0);
	assert_int_equal(chmod(sdir, 0755), 0);
	assert_int_equal(hostd_snapshot_open(&fx->reg, "acme", "web", "i-0000abcd", true, &err),
			 -1);
	assert_int_equal(err.code, 403);
	/* ids are checked before any path is made */
	assert_int_equal(hostd_snapshot_open(&fx->reg, "acme", "..", "i-0000abcd", true, &err), -1);
	assert_int_equal(err.code, 400);
	assert_int_equal(hostd_snapshot_open(&fx->reg, "acme", "web", "../i-0000ab", true, &err),
			 -1);
	assert_int_equal(err.code, 400);
}

/* ---- the monitor thread ---------------------------------------------------------------- */

struct mon_probe {
	struct hostd_monitor *m;
	int fd;
	int calls;       /* callback runs */
	int ticks;
	bool self_del;   /* the callback drops its own registration */
	char last;
};

static void mon_cb(void *arg, int fd, uint32_t events)
{
	struct mon_probe *p = arg;
	char c;

	if (read(fd, &c, 1) == 1)
		p->last = c;
	__atomic_add_fetch(&p->calls, 1, __ATOMIC_SEQ_CST);
	if (p->self_del)
		hostd_monitor_del(p->m, fd);
}

static void mon_tick(void *arg)
{
	__atomic_add_fetch(&((struct mon_probe *)arg)->ticks, 1, __ATOMIC_SEQ_CST);
}

/* Wait (bounded) until *v reaches want. */
static bool wait_count(int *v, int want)
{
	for (int k = 0; k < 500; k++) {
		if (__atomic_load_n(v, __ATOMIC_SEQ_CST) >= want)
			return true;
		usleep(10000);
	}
	return false;
}

static void monitor_calls_back_and_stops_on_del(void **state)
{
	struct mon_probe p = { 0 }, q = { .self_del = true };
	struct hostd_monitor *m;
	struct vmlet_err err;
	int a[2], b[2];

	assert_int_equal(pipe(a), 0);
	assert_int_equal(pipe(b), 0);
	assert_int_equal(hostd_monitor_start(&m, mon_tick, &p, 10, &err), 0);
	p.m = q.m = m;
	assert_int_equal(hostd_monitor_add(m, a[0], mon_cb, &p, &err), 0);
	assert_int_equal(hostd_monitor_add(m, b[0], mon_cb, &q, &err), 0);
	assert_int_equal(write(a[1], "x", 1), 1);
	assert_true(wait_count(&p.calls, 1));
	assert_int_equal(p.last, 'x');
	assert_true(wait_count(&p.ticks, 2)); /* the tick runs with nothing to do */

	/* a callback that drops itself is never called again */
	assert_int_equal(write(b[1], "yz", 2), 2);
	assert_true(wait_count(&q.calls, 1));
	usleep(50000);
	assert_int_equal(q.calls, 1);

	/* after del returns, no callback for that fd, even with data waiting */
	hostd_monitor_del(m, a[0]);
	int before = p.calls;
	assert_int_equal(write(a[1], "w", 1), 1);
	usleep(50000);
	assert_int_equal(p.calls, before);
	hostd_monitor_del(m, 12345); /* unknown fd: nothing */
	/* an fd that is not pollable is refused with the reason */
	int dfd = open("/", O_RDONLY | O_DIRECTORY);
	assert_int_equal(hostd_monitor_add(m, dfd, mon_cb, &p, &err), -1);
	assert_non_null(strstr(err.msg, "epoll_ctl"));
	close(dfd);
	hostd_monitor_stop(m);
	close(a[0]), close(a[1]), close(b[0]), close(b[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(transition_table_matches_the_design),
		cmocka_unit_test_setup_teardown(refused_transition_through_dispatch, setup, teardown),
		cmocka_unit_test_setup_teardown(same_state_requests_are_no_ops, setup, teardown),
		cmocka_unit_test_setup_teardown(transition_needing_a_vmm_without_runtime_is_503,
						setup, teardown),
		cmocka_unit_test_setup_teardown(destroy_of_unknown_instance_is_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(ensure_and_create_are_idempotent, setup, teardown),
		cmocka_unit_test_setup_teardown(remove_refuses_while_instances_exist, setup,
						teardown),
		cmocka_unit_test_setup_teardown(remove_tenant_never_follows_a_symlink, setup,
						teardown),
		cmocka_unit_test_setup_teardown(hostile_tenant_and_pool_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(hostile_create_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(hostile_action_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(audit_lines_are_written, setup, teardown),
		cmocka_unit_test(audit_line_escapes_hostile_text),
		cmocka_unit_test_setup_teardown(audit_refuses_a_symlinked_log, setup, teardown),
		cmocka_unit_test_setup_teardown(open_beneath_refuses_dotdot_and_symlinks, setup,
						teardown),
		cmocka_unit_test_setup_teardown(snapshot_modes_and_planted_symlinks, setup,
						teardown),
		cmocka_unit_test(monitor_calls_back_and_stops_on_del),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
