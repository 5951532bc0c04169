/* hostd/ops_net.c: the tenant networks as host operations.
 *
 * The first group needs nothing: address/index allocation through
 * create_instance, hostile requests, the whitelist refusal (all decided
 * before the kernel is asked). The second group runs as root, each test in
 * a NEW network namespace (unshare(CLONE_NEWNET), its own sysfs in a
 * private mount namespace), so no bridge, TAP or rule ever reaches the
 * host's namespace; without root it skips with the reason. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cmocka.h>

#include "hostd/ops_instance.h"
#include "hostd/ops_net.h"
#include "shared/log.h"
#include "shared/version.h"
#include "test_hostd_util.h"

static bool can_net;
static char skip_reason[256];

#define NEED_NET()                                                                       \
	do {                                                                             \
		if (!can_net) {                                                          \
			print_message("skip: %s\n", skip_reason);                        \
			skip();                                                          \
		}                                                                        \
	} while (0)

/* ---- requests ------------------------------------------------------------------------- */

static Vmlet__Host__V1__HostResponse *ensure_tenant(struct hostd_fixture *fx, const char *t,
						    unsigned net_id, const char *subnet)
{
	Vmlet__Host__V1__HostRequest req = VMLET__HOST__V1__HOST_REQUEST__INIT;
	Vmlet__Host__V1__EnsureTenantRequest r = VMLET__HOST__V1__ENSURE_TENANT_REQUEST__INIT;

	r.tenant_id = (char *)t;
	r.tenant_net_id = net_id;
	r.ipv4_subnet = (char *)subnet;
	req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_ENSURE_TENANT;
	req.ensure_tenant = &r;
	return hostd_call(fx, &req);
}

static Vmlet__Host__V1__HostResponse *remove_tenant(struct hostd_fixture *fx, const char *t)
{
	Vmlet__Host__V1__HostRequest req = VMLET__HOST__V1__HOST_REQUEST__INIT;
	Vmlet__Host__V1__RemoveTenantRequest r = VMLET__HOST__V1__REMOVE_TENANT_REQUEST__INIT;

	r.tenant_id = (char *)t;
	req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_REMOVE_TENANT;
	req.remove_tenant = &r;
	return hostd_call(fx, &req);
}

static Vmlet__Host__V1__HostResponse *ensure_pool(struct hostd_fixture *fx, const char *t,
						  const char *p)
{
	Vmlet__Host__V1__HostRequest req = VMLET__HOST__V1__HOST_REQUEST__INIT;
	Vmlet__Host__V1__EnsurePoolRequest r = VMLET__HOST__V1__ENSURE_POOL_REQUEST__INIT;

	r.tenant_id = (char *)t;
	r.pool_id = (char *)p;
	req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_ENSURE_POOL;
	req.ensure_pool = &r;
	return hostd_call(fx, &req);
}

static Vmlet__Host__V1__HostResponse *create(struct hostd_fixture *fx, const char *t,
					     const char *p, const char *i)
{
	Vmlet__Host__V1__HostRequest req = VMLET__HOST__V1__HOST_REQUEST__INIT;
	Vmlet__Host__V1__CreateInstanceRequest r = VMLET__HOST__V1__CREATE_INSTANCE_REQUEST__INIT;
	Vmlet__Host__V1__InstanceSpec s = VMLET__HOST__V1__INSTANCE_SPEC__INIT;

	s.vcpus = 1;
	s.mem_mib = 128;
	s.image = "guest";
	r.tenant_id = (char *)t;
	r.pool_id = (char *)p;
	r.instance_id = (char *)i;
	r.spec = &s;
	req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_CREATE_INSTANCE;
	req.create_instance = &r;
	return hostd_call(fx, &req);
}

static Vmlet__Host__V1__HostResponse *publish(struct hostd_fixture *fx, const char *t,
					      const char *p, const char *i, int proto,
					      uint32_t host_port, uint32_t guest_port)
{
	Vmlet__Host__V1__HostRequest req = VMLET__HOST__V1__HOST_REQUEST__INIT;
	Vmlet__Host__V1__PublishPortRequest r = VMLET__HOST__V1__PUBLISH_PORT_REQUEST__INIT;

	r.tenant_id = (char *)t;
	r.pool_id = (char *)p;
	r.instance_id = (char *)i;
	r.proto = proto;
	r.host_port = host_port;
	r.guest_port = guest_port;
	req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_PUBLISH_PORT;
	req.publish_port = &r;
	return hostd_call(fx, &req);
}

static Vmlet__Host__V1__HostResponse *unpublish(struct hostd_fixture *fx, const char *t,
						int proto, uint32_t host_port)
{
	Vmlet__Host__V1__HostRequest req = VMLET__HOST__V1__HOST_REQUEST__INIT;
	Vmlet__Host__V1__UnpublishPortRequest r = VMLET__HOST__V1__UNPUBLISH_PORT_REQUEST__INIT;

	r.tenant_id = (char *)t;
	r.proto = proto;
	r.host_port = host_port;
	req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_UNPUBLISH_PORT;
	req.unpublish_port = &r;
	return hostd_call(fx, &req);
}

static Vmlet__Host__V1__HostResponse *verify(struct hostd_fixture *fx, const char *t, bool deep)
{
	Vmlet__Host__V1__HostRequest req = VMLET__HOST__V1__HOST_REQUEST__INIT;
	Vmlet__Host__V1__VerifyNetworkRequest r = VMLET__HOST__V1__VERIFY_NETWORK_REQUEST__INIT;

	r.tenant_id = (char *)t;
	r.deep = deep;
	req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_VERIFY_NETWORK;
	req.verify_network = &r;
	return hostd_call(fx, &req);
}

static Vmlet__Host__V1__HostResponse *reapply(struct hostd_fixture *fx)
{
	Vmlet__Host__V1__HostRequest req = VMLET__HOST__V1__HOST_REQUEST__INIT;
	Vmlet__Host__V1__ReapplyNetworkRequest r = VMLET__HOST__V1__REAPPLY_NETWORK_REQUEST__INIT;

	req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_REAPPLY_NETWORK;
	req.reapply_network = &r;
	return hostd_call(fx, &req);
}

static void expect_ok(Vmlet__Host__V1__HostResponse *resp)
{
	assert_non_null(resp);
	if (resp->result_case == VMLET__HOST__V1__HOST_RESPONSE__RESULT_ERROR)
		fail_msg("unexpected error %u: %s", resp->error->code, resp->error->message);
	hostd_resp_free(resp);
}

static void expect_error(Vmlet__Host__V1__HostResponse *resp, unsigned code, const char *part)
{
	assert_non_null(resp);
	if (resp->result_case != VMLET__HOST__V1__HOST_RESPONSE__RESULT_ERROR)
		fail_msg("expected error %u (%s), got result %d", code, part, resp->result_case);
	if (resp->error->code != code || !strstr(resp->error->message, part))
		fail_msg("expected %u \"%s\", got %u \"%s\"", code, part, resp->error->code,
			 resp->error->message);
	hostd_resp_free(resp);
}

/* create_instance's answer: the address it was given */
static void expect_address(Vmlet__Host__V1__HostResponse *resp, const char *addr,
			   const char *tap)
{
	assert_non_null(resp);
	if (resp->result_case != VMLET__HOST__V1__HOST_RESPONSE__RESULT_INSTANCE)
		fail_msg("create failed: %s", resp->error ? resp->error->message : "?");
	assert_string_equal(resp->instance->ipv4_address, addr);
	assert_string_equal(resp->instance->tap_name, tap);
	hostd_resp_free(resp);
}

static void expect_record(struct hostd_fixture *fx, const char *t, const char *p, const char *i,
			  const char *addr, const char *tap, unsigned index)
{
	Vmlet__Host__V1__InstanceRecord *rec = NULL;
	struct vmlet_err err;

	assert_int_equal(hostd_registry_lookup_instance(&fx->reg, t, p, i, &rec, &err), 0);
	assert_string_equal(rec->ipv4_address, addr);
	assert_string_equal(rec->tap_name, tap);
	assert_int_equal(rec->net_index, index);
	protobuf_c_message_free_unpacked(&rec->base, NULL);
}

static int fixture_setup(void **state)
{
	*state = hostd_fixture_new();
	return *state ? 0 : -1;
}

static int fixture_teardown(void **state)
{
	struct hostd_fixture *fx = *state;

	if (fx && fx->env.net) {
		hostd_net_close(fx->env.net);
		fx->env.net = NULL;
	}
	hostd_fixture_free(fx);
	return 0;
}

/* ---- allocation (no kernel) ---------------------------------------------------------- */

static void addresses_from_two_upward_until_full(void **state)
{
	struct hostd_fixture *fx = *state;
	struct vmlet_err err;

	/* /29: network .0, gateway .1, guests .2 .. .6, broadcast .7 */
	expect_ok(ensure_tenant(fx, "acme", 7, "10.7.0.0/29"));
	expect_ok(ensure_pool(fx, "acme", "web"));
	expect_address(create(fx, "acme", "web", "i-00000001"), "10.7.0.2", "tn7i0");
	expect_address(create(fx, "acme", "web", "i-00000002"), "10.7.0.3", "tn7i1");
	expect_address(create(fx, "acme", "web", "i-00000003"), "10.7.0.4", "tn7i2");
	expect_address(create(fx, "acme", "web", "i-00000004"), "10.7.0.5", "tn7i3");
	expect_address(create(fx, "acme", "web", "i-00000005"), "10.7.0.6", "tn7i4");
	expect_record(fx, "acme", "web", "i-00000003", "10.7.0.4", "tn7i2", 2);
	/* never the broadcast address: the sixth is refused, nothing recorded */
	expect_error(create(fx, "acme", "web", "i-00000006"), 409,
		     "tenant acme: subnet 10.7.0.0/29 is full (5 guest addresses");
	expect_error(hostd_call_lookup(fx, "acme", "web", "i-00000006"), 404, "not found");
	/* a retried create keeps its address */
	expect_address(create(fx, "acme", "web", "i-00000002"), "10.7.0.3", "tn7i1");

	/* destroy releases: the lowest free address and index come back */
	assert_int_equal(hostd_registry_remove_instance(&fx->reg, "acme", "web", "i-00000003",
							&err), 0);
	expect_address(create(fx, "acme", "web", "i-00000007"), "10.7.0.4", "tn7i2");
	expect_error(create(fx, "acme", "web", "i-00000008"), 409, "is full");
}

static void addresses_are_per_tenant(void **state)
{
	struct hostd_fixture *fx = *state;

	expect_ok(ensure_tenant(fx, "t-a", 1, "10.1.0.0/24"));
	expect_ok(ensure_tenant(fx, "t-b", 2, "10.2.0.0/24"));
	expect_ok(ensure_pool(fx, "t-a", "p"));
	expect_ok(ensure_pool(fx, "t-b", "p"));
	expect_address(create(fx, "t-a", "p", "i-0000000a"), "10.1.0.2", "tn1i0");
	expect_address(create(fx, "t-b", "p", "i-0000000b"), "10.2.0.2", "tn2i0");
	expect_address(create(fx, "t-a", "p", "i-0000000c"), "10.1.0.3", "tn1i1");
}

static void hostile_tenants(void **state)
{
	struct hostd_fixture *fx = *state;

	expect_ok(ensure_tenant(fx, "t-a", 1, "10.1.0.0/24"));
	expect_error(ensure_tenant(fx, "t-b", 2, "10.1.0.128/25"), 409, "overlaps 10.1.0.0/24");
	expect_error(ensure_tenant(fx, "t-b", 2, "10.1.0.0/16"), 409, "overlaps");
	expect_error(ensure_tenant(fx, "t-b", 1, "10.2.0.0/24"), 409, "already used by tenant t-a");
	expect_error(ensure_tenant(fx, "t-b", 0, "10.2.0.0/24"), 400, "tenant_net_id");
	expect_error(ensure_tenant(fx, "t-b", 4095, "10.2.0.0/24"), 400, "tenant_net_id");
	expect_error(ensure_tenant(fx, "t-b", 2, "8.8.8.0/24"), 400, "ipv4_subnet");
	expect_error(ensure_tenant(fx, "../t", 2, "10.2.0.0/24"), 400, "tenant_id");
}

static void hostile_publishes(void **state)
{
	struct hostd_fixture *fx = *state;

	expect_error(publish(fx, "t-a", "p", "i-0000000a", 1, 0, 80), 400,
		     "publish_port.host_port: 0 must be 1..65535");
	expect_error(publish(fx, "t-a", "p", "i-0000000a", 1, 70000, 80), 400,
		     "publish_port.host_port: 70000 must be 1..65535");
	expect_error(publish(fx, "t-a", "p", "i-0000000a", 1, 80, 0), 400, "guest_port");
	expect_error(publish(fx, "t-a", "p", "i-0000000a", 0, 80, 80), 400,
		     "publish_port.proto: must be tcp or udp");
	expect_error(publish(fx, "../a", "p", "i-0000000a", 1, 80, 80), 400, "tenant_id");
	expect_error(publish(fx, "t-a", "p", "../i", 1, 80, 80), 400, "instance_id");
	expect_error(unpublish(fx, "t-a", 2, 65536), 400, "unpublish_port.host_port");
	/* without a network, nothing is half-done */
	expect_error(publish(fx, "t-a", "p", "i-0000000a", 1, 80, 80), 503, "not managed");
	expect_error(verify(fx, "", false), 503, "not managed");
	expect_error(verify(fx, "../x", false), 400, "tenant_id");
	expect_error(reapply(fx), 503, "not managed");
}

static void whitelist_refuses_before_anything(void **state)
{
	struct hostd_fixture *fx = *state;
	struct hostd_net *net = NULL;
	struct vmlet_err err;

	snprintf(fx->cfg.port_whitelist, sizeof(fx->cfg.port_whitelist), "t-a:tcp:8080-8081");
	assert_int_equal(hostd_net_open(&net, &fx->cfg, &err), 0);
	fx->env.net = net;
	expect_error(publish(fx, "t-b", "p", "i-0000000b", 1, 8080, 80), 403, "t-b");
	expect_error(publish(fx, "t-a", "p", "i-0000000a", 2, 8080, 80), 403, "udp");
	expect_error(publish(fx, "t-a", "p", "i-0000000a", 1, 9090, 80), 403, "9090");
	/* whitelisted but no such tenant: 404, nothing written */
	expect_error(publish(fx, "t-a", "p", "i-0000000a", 1, 8080, 80), 404, "not found");
}

static void bad_whitelist_names_the_key(void **state)
{
	struct hostd_fixture *fx = *state;
	struct hostd_net *net = NULL;
	struct vmlet_err err;

	snprintf(fx->cfg.port_whitelist, sizeof(fx->cfg.port_whitelist), "t-a:tcp:0");
	assert_int_equal(hostd_net_open(&net, &fx->cfg, &err), -1);
	assert_null(net);
	assert_int_equal(err.code, 400);
	assert_non_null(strstr(err.msg, "config: [hostd] port_whitelist: "));
	/* one port, two tenants */
	snprintf(fx->cfg.port_whitelist, sizeof(fx->cfg.port_whitelist),
		 "t-a:tcp:80 t-b:tcp:70-90");
	assert_int_equal(hostd_net_open(&net, &fx->cfg, &err), -1);
	assert_non_null(strstr(err.msg, "[hostd] port_whitelist"));
}

/* ---- in a fresh network namespace ----------------------------------------------------- */

static int group_setup(void **state)
{
	(void)state;
	vlog_set_level(VLOG_ERROR);
	if (geteuid() != 0) {
		snprintf(skip_reason, sizeof(skip_reason), "needs root (creates network namespaces)");
		return 0;
	}
	if (access("/dev/net/tun", R_OK | W_OK) != 0) {
		snprintf(skip_reason, sizeof(skip_reason), "/dev/net/tun unusable: %s",
			 strerror(errno));
		return 0;
	}
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		snprintf(skip_reason, sizeof(skip_reason), "no private mount namespace: %s",
			 strerror(errno));
		return 0;
	}
	can_net = true;
	return 0;
}

static int net_setup(void **state)
{
	struct hostd_fixture *fx;
	struct vmlet_err err;

	if (fixture_setup(state) < 0)
		return -1;
	fx = *state;
	if (!can_net)
		return 0;
	if (unshare(CLONE_NEWNET) < 0) {
		snprintf(skip_reason, sizeof(skip_reason), "unshare(CLONE_NEWNET): %s",
			 strerror(errno));
		can_net = false;
		return 0;
	}
	umount2("/sys", MNT_DETACH);
	if (mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
		snprintf(skip_reason, sizeof(skip_reason), "mounting sysfs: %s", strerror(errno));
		can_net = false;
		return 0;
	}
	snprintf(fx->cfg.port_whitelist, sizeof(fx->cfg.port_whitelist),
		 "t-a:tcp:8080 t-b:udp:5353");
	if (hostd_net_open(&fx->env.net, &fx->cfg, &err) < 0) {
		fprintf(stderr, "hostd_net_open: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static bool link_exists(const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/class/net/%s", name);
	return access(path, F_OK) == 0;
}

static int sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

/* verify's failed checks, with the first failure printed */
static unsigned verify_failed(struct hostd_fixture *fx, const char *tenant, const char *want)
{
	Vmlet__Host__V1__HostResponse *resp = verify(fx, tenant, true);
	unsigned failed;
	bool seen = !want;

	assert_non_null(resp);
	if (resp->result_case != VMLET__HOST__V1__HOST_RESPONSE__RESULT_NET_VERIFY)
		fail_msg("verify: %s", resp->error ? resp->error->message : "?");
	for (size_t i = 0; i < resp->net_verify->n_checks; i++) {
		const Vmlet__V1__NetCheck *c = resp->net_verify->checks[i];

		if (!c->ok)
			print_message("  FAIL %s: expected %s, found %s\n", c->name, c->expected,
				      c->found);
		if (want && !c->ok && strstr(c->name, want))
			seen = true;
	}
	failed = resp->net_verify->failed;
	assert_true(resp->net_verify->n_checks > 0);
	hostd_resp_free(resp);
	if (!seen)
		fail_msg("no failed check named like \"%s\"", want);
	return failed;
}

static void tenant_network_lifecycle(void **state)
{
	struct hostd_fixture *fx = *state;

	NEED_NET();
	expect_ok(ensure_tenant(fx, "t-a", 7, "10.7.0.0/24"));
	expect_ok(ensure_tenant(fx, "t-b", 8, "10.8.0.0/24"));
	assert_true(link_exists("br-tenant-7"));
	assert_true(link_exists("br-tenant-8"));
	assert_int_equal(verify_failed(fx, "", NULL), 0);
	assert_int_equal(verify_failed(fx, "t-a", NULL), 0);
	expect_error(verify(fx, "t-zz", false), 404, "t-zz");
	/* isolation checked for the pair, then removal leaves nothing */
	expect_ok(remove_tenant(fx, "t-b"));
	assert_false(link_exists("br-tenant-8"));
	assert_int_equal(verify_failed(fx, "", NULL), 0);
	expect_ok(remove_tenant(fx, "t-a"));
	assert_false(link_exists("br-tenant-7"));
	assert_int_equal(sh("nft list table inet vmlet | grep -q br-tenant-7"), 256);
}

static void foreign_interface_is_refused_not_adopted(void **state)
{
	struct hostd_fixture *fx = *state;
	Vmlet__Host__V1__TenantRecord *t = NULL;
	struct vmlet_err err;

	NEED_NET();
	assert_int_equal(sh("ip link add br-tenant-9 type veth peer name vethx9"), 0);
	expect_error(ensure_tenant(fx, "t-a", 9, "10.9.0.0/24"), 409, "br-tenant-9");
	assert_int_equal(hostd_registry_lookup_tenant(&fx->reg, "t-a", &t, &err), -1);
	assert_int_equal(err.code, 404);
	assert_true(link_exists("br-tenant-9"));
	assert_int_equal(sh("ip -d link show br-tenant-9 | grep -q veth"), 0);
}

static void set_uid(struct hostd_fixture *fx, const char *t, const char *p, const char *i)
{
	Vmlet__Host__V1__InstanceRecord *rec = NULL;
	struct vmlet_err err;

	assert_int_equal(hostd_registry_lookup_instance(&fx->reg, t, p, i, &rec, &err), 0);
	rec->uid = 200123;
	rec->gid = 200123;
	assert_int_equal(hostd_registry_write_instance(&fx->reg, rec, &err), 0);
	protobuf_c_message_free_unpacked(&rec->base, NULL);
}

static Vmlet__Host__V1__InstanceRecord *record(struct hostd_fixture *fx, const char *t,
					      const char *p, const char *i)
{
	Vmlet__Host__V1__InstanceRecord *rec = NULL;
	struct vmlet_err err;

	assert_int_equal(hostd_registry_lookup_instance(&fx->reg, t, p, i, &rec, &err), 0);
	return rec;
}

static void attach_publish_tamper_reapply(void **state)
{
	struct hostd_fixture *fx = *state;
	Vmlet__Host__V1__InstanceRecord *rec;
	char cmdline[HOSTD_NET_CMDLINE_MAX], mac_s[NET_MAC_STR];
	uint8_t mac[NET_MAC_LEN];
	struct vmlet_err err;
	int fd = -1;

	NEED_NET();
	expect_ok(ensure_tenant(fx, "t-a", 7, "10.7.0.0/24"));
	expect_ok(ensure_tenant(fx, "t-b", 8, "10.8.0.0/24"));
	expect_ok(ensure_pool(fx, "t-a", "p"));
	expect_address(create(fx, "t-a", "p", "i-0000000a"), "10.7.0.2", "tn7i0");
	rec = record(fx, "t-a", "p", "i-0000000a");
	/* no per-instance uid yet: refused, no TAP */
	assert_int_equal(hostd_net_instance_attach(&fx->env, rec, &fd, mac, cmdline, &err), -1);
	assert_int_equal(err.code, 400);
	assert_false(link_exists("tn7i0"));
	protobuf_c_message_free_unpacked(&rec->base, NULL);

	set_uid(fx, "t-a", "p", "i-0000000a");
	rec = record(fx, "t-a", "p", "i-0000000a");
	if (hostd_net_instance_attach(&fx->env, rec, &fd, mac, cmdline, &err) < 0)
		fail_msg("attach: %s", err.msg);
	assert_true(fd >= 0);
	net_mac_format(mac, mac_s);
	assert_string_equal(mac_s, "02:fc:00:07:00:00");
	assert_string_equal(cmdline, "vmlet.ip=10.7.0.2/24 vmlet.gw=10.7.0.1");
	assert_true(link_exists("tn7i0"));
	assert_int_equal(sh("ip -d link show tn7i0 | grep -q 'master br-tenant-7'"), 0);
	assert_int_equal(verify_failed(fx, "", NULL), 0);

	/* published ports: whitelisted yes, others refused with the reason */
	expect_ok(publish(fx, "t-a", "p", "i-0000000a", 1, 8080, 80));
	expect_ok(publish(fx, "t-a", "p", "i-0000000a", 1, 8080, 80)); /* again: ok */
	expect_error(publish(fx, "t-a", "p", "i-0000000a", 1, 8080, 81), 409, "already published");
	expect_error(publish(fx, "t-a", "p", "i-0000000a", 2, 5353, 53), 403, "t-a");
	assert_int_equal(sh("nft list chain inet vmlet prerouting | grep -q 'dport 8080'"), 0);
	assert_int_equal(verify_failed(fx, "", NULL), 0);

	/* an operator deletes our rules: verify says so, reapply repairs */
	assert_int_equal(sh("nft flush chain inet vmlet forward"), 0);
	assert_true(verify_failed(fx, "", "isolation t-a <-> t-b") > 0);
	expect_ok(reapply(fx));
	assert_int_equal(verify_failed(fx, "", NULL), 0);

	/* the TAP moved to another tenant's bridge */
	assert_int_equal(sh("ip link set tn7i0 nomaster && ip link set tn7i0 master br-tenant-8"),
			 0);
	assert_true(verify_failed(fx, "", "TAP tn7i0 master") > 0);
	close(fd); /* the VMM's fd: reown/re-master works on a TAP nobody holds */
	expect_ok(reapply(fx));
	assert_int_equal(verify_failed(fx, "", NULL), 0);

	expect_ok(unpublish(fx, "t-a", 1, 8080));
	assert_int_equal(sh("nft list chain inet vmlet prerouting | grep -q 'dport 8080'"), 256);
	/* detach (destroy's part): TAP and its rules go */
	assert_int_equal(hostd_net_instance_detach(&fx->env, rec, &err), 0);
	assert_false(link_exists("tn7i0"));
	protobuf_c_message_free_unpacked(&rec->base, NULL);
}

static void restore_reaps_what_nothing_accounts_for(void **state)
{
	struct hostd_fixture *fx = *state;
	struct net_ctx *ctx = NULL;
	struct vmlet_err err;

	NEED_NET();
	expect_ok(ensure_tenant(fx, "t-a", 7, "10.7.0.0/24"));
	/* leftovers of ours: a bridge and a TAP without records */
	assert_int_equal(net_open(&ctx, &err), 0);
	assert_int_equal(net_bridge_ensure(ctx, 12, "10.12.0.0/24", NULL, &err), 0);
	assert_int_equal(net_tap_ensure(ctx, 12, 3, 200001, 200001, NULL, &err), 0);
	assert_int_equal(net_tap_ensure(ctx, 7, 5, 200001, 200001, NULL, &err), 0);
	net_close(ctx);
	/* and something foreign, which is never touched */
	assert_int_equal(sh("ip link add tn99i1 type veth peer name vethx99"), 0);
	/* the bridge of t-a is gone (a reboot) */
	assert_int_equal(sh("ip link del br-tenant-7"), 0);
	assert_int_equal(hostd_net_restore(&fx->env, &err), 0);
	assert_true(link_exists("br-tenant-7"));
	assert_false(link_exists("br-tenant-12"));
	assert_false(link_exists("tn12i3"));
	assert_false(link_exists("tn7i5"));
	assert_true(link_exists("tn99i1"));
	assert_int_equal(verify_failed(fx, "", NULL), 0);
}

int main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test_setup_teardown(addresses_from_two_upward_until_full, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(addresses_are_per_tenant, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(hostile_tenants, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(hostile_publishes, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(whitelist_refuses_before_anything, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(bad_whitelist_names_the_key, fixture_setup,
						fixture_teardown),
	};
	const struct CMUnitTest netns[] = {
		cmocka_unit_test_setup_teardown(tenant_network_lifecycle, net_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(foreign_interface_is_refused_not_adopted, net_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(attach_publish_tamper_reapply, net_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(restore_reaps_what_nothing_accounts_for, net_setup,
						fixture_teardown),
	};
	int failed;

	vlog_set_level(VLOG_ERROR);
	failed = cmocka_run_group_tests_name("pure", pure, NULL, NULL);
	failed += cmocka_run_group_tests_name("netns", netns, group_setup, NULL);
	return failed;
}
