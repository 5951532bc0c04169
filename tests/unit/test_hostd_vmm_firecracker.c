/* Firecracker driver (hostd/vmm_firecracker.c) and its HTTP client
 * (hostd/fc_api.c), against the Firecracker API TEST DOUBLE in
 * tests/unit/hostd_fc_double.h — NOT a real Firecracker, which cannot be
 * installed on the build machines. What is checked here: the exact argv;
 * the exact request sequences (method, path, JSON body compared as parsed
 * JSON, one keep-alive connection) of boot, pause/resume, snapshot create
 * and load, and shutdown; Firecracker's 400 fault_message reaching the
 * vmlet_err; hostile specs refused before any request; and the client's
 * handling of malformed HTTP (bad status lines, oversize heads, bodies
 * longer than Content-Length, no Content-Length, closes mid-response,
 * silence -> timeout). No timing is asserted. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "hostd/fc_api.h"
#include "hostd/vmm.h"
#include "hostd/vmm_firecracker.h"
#include "tests/unit/hostd_fc_double.h"

#define FC_BIN "/usr/bin/firecracker"
/* Generous: these bound a broken test, they are never measured. */
#define T_MS 5000

static char tmpdir[] = "/tmp/test_hostd_vmm_fc.XXXXXX";
static char sock_path[108];
static const struct vmm_driver *drv = &vmm_firecracker_driver;

static int setup(void **state)
{
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(sock_path, sizeof(sock_path), "%s/api.sock", tmpdir);
	return 0;
}

static int teardown(void **state)
{
	unlink(sock_path);
	return rmdir(tmpdir);
}

static struct vmm_spec base_spec(void)
{
	struct vmm_spec s = {
		.instance_id = "i-0123abcd",
		.binary = FC_BIN,
		.vcpus = 2,
		.mem_mib = 256,
		.kernel = "/images/guest/vmlinux",
		.initrd = "/images/guest/initrd.gz",
		.cmdline = "console=ttyS0 reboot=k panic=1 pci=off",
		.control_socket = "/run/firecracker.sock",
		.console_log = "/run/console.log",
		.tap_fd = -1,
		.use_kvm = true,
	};
	return s;
}

/* ---- double helpers ----------------------------------------------------------- */

static struct fc_double *double_new(void)
{
	struct fc_double *d = calloc(1, sizeof(*d));

	assert_non_null(d);
	fd_init(d, sock_path);
	return d;
}

static void double_start(struct fc_double *d)
{
	assert_int_equal(fd_start(d), 0);
}

/* Stop and check the double saw only well-formed requests. */
static void double_stop(struct fc_double *d)
{
	fd_stop(d);
	if (d->why[0])
		fail_msg("double: %s", d->why);
}

static void double_free(struct fc_double *d)
{
	fd_free(d);
	free(d);
}

static struct vmm_conn *connect_ok(struct fc_double *d)
{
	struct vmm_conn *c = NULL;
	struct vmlet_err err = { 0 };

	if (drv->connect(d->path, T_MS, &c, &err) < 0)
		fail_msg("connect: %s", err.msg);
	assert_non_null(c);
	assert_ptr_equal(c->driver, drv);
	return c;
}

/* Request i was `method path` with a body equal (as JSON) to want_json,
 * or no body when want_json is NULL. */
static void expect_req(struct fc_double *d, int i, const char *method, const char *path,
		       const char *want_json)
{
	const struct fd_request *r;

	if (i >= d->n_req)
		fail_msg("request %d (%s %s) was never sent", i, method, path);
	r = &d->req[i];
	if (strcmp(r->method, method) != 0 || strcmp(r->path, path) != 0)
		fail_msg("request %d is %s %s, want %s %s", i, r->method, r->path, method, path);
	if (!want_json) {
		if (r->body)
			fail_msg("request %d (%s %s) has a body: %s", i, method, path, r->body);
		return;
	}
	if (!r->body)
		fail_msg("request %d (%s %s) has no body", i, method, path);
	json_t *got = json_loads(r->body, JSON_REJECT_DUPLICATES, NULL);
	json_t *want = json_loads(want_json, 0, NULL);
	assert_non_null(want);
	if (!got || !json_equal(got, want))
		fail_msg("request %d (%s %s) body\n  got  %s\n  want %s", i, method, path, r->body,
			 want_json);
	json_decref(got);
	json_decref(want);
}

/* A raw micro_http-style answer with a JSON body, for fault injection. */
static const char *raw_json(char *buf, size_t cap, int status, const char *json)
{
	int n = snprintf(buf, cap,
			 "HTTP/1.1 %d \r\nServer: Firecracker API\r\nConnection: keep-alive\r\n"
			 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
			 status, strlen(json), json);
	assert_true(n > 0 && (size_t)n < cap);
	return buf;
}

static void assert_err(int rc, const struct vmlet_err *err, int code, const char *needle)
{
	assert_int_equal(rc, -1);
	if (err->code != code)
		fail_msg("code %d, want %d (%s)", err->code, code, err->msg);
	if (needle && !strstr(err->msg, needle))
		fail_msg("error \"%s\" does not mention \"%s\"", err->msg, needle);
}

/* ---- argv --------------------------------------------------------------------- */

static void test_argv_exact(void **state)
{
	struct vmm_spec s = base_spec();
	struct vmm_argv *a = calloc(1, sizeof(*a));
	struct vmlet_err err = { 0 };
	static const char *const want[] = { FC_BIN, "--api-sock", "/run/firecracker.sock", "--id",
					    "i-0123abcd", NULL };

	assert_non_null(a);
	s.mac = "52:54:00:12:34:56";
	s.drives[0] = (struct vmm_drive){ "/volumes/data.img", "data", false };
	s.n_drives = 1;
	if (drv->build_argv(&s, a, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(a->argc, 5);
	for (size_t i = 0; i < 5; i++)
		assert_string_equal(a->argv[i], want[i]);
	assert_null(a->argv[5]);
	assert_int_equal(a->n_keep_fds, 0);
	assert_string_equal(drv->name, "firecracker");
	free(a);
}

/* A spec mutation and the field its refusal must name. */
struct bad_spec {
	const char *what;
	void (*mutate)(struct vmm_spec *s);
	const char *needle;
};

static void m_id_upper(struct vmm_spec *s) { s->instance_id = "i-0123ABCD"; }
static void m_id_trav(struct vmm_spec *s) { s->instance_id = "../../etc"; }
static void m_id_null(struct vmm_spec *s) { s->instance_id = NULL; }
static void m_id_long(struct vmm_spec *s) { s->instance_id = "i-0123abcde"; }
static void m_bin_rel(struct vmm_spec *s) { s->binary = "firecracker"; }
static void m_kernel_rel(struct vmm_spec *s) { s->kernel = "images/vmlinux"; }
static void m_kernel_dots(struct vmm_spec *s) { s->kernel = "/images/../etc/shadow"; }
static void m_kernel_space(struct vmm_spec *s) { s->kernel = "/images/vm linux"; }
static void m_initrd_rel(struct vmm_spec *s) { s->initrd = "./initrd"; }
static void m_sock_rel(struct vmm_spec *s) { s->control_socket = "fc.sock"; }
static void m_sock_long(struct vmm_spec *s)
{
	static char p[200];
	memset(p, 'a', sizeof(p) - 1);
	p[0] = '/';
	p[sizeof(p) - 1] = '\0';
	s->control_socket = p;
}
static void m_vcpus0(struct vmm_spec *s) { s->vcpus = 0; }
static void m_vcpus33(struct vmm_spec *s) { s->vcpus = 33; }
static void m_mem_low(struct vmm_spec *s) { s->mem_mib = 63; }
static void m_mem_high(struct vmm_spec *s) { s->mem_mib = 262145; }
static void m_cmd_nl(struct vmm_spec *s) { s->cmdline = "console=ttyS0\ninit=/bin/sh"; }
static void m_cmd_null(struct vmm_spec *s) { s->cmdline = NULL; }
static void m_tap_fd(struct vmm_spec *s) { s->tap_fd = 5; }
static void m_no_kvm(struct vmm_spec *s) { s->use_kvm = false; }
static void m_mac_bad(struct vmm_spec *s) { s->mac = "53:54:00:12:34:56"; }
static void m_drive_id(struct vmm_spec *s)
{
	s->drives[0] = (struct vmm_drive){ "/v/d.img", "../x", false };
	s->n_drives = 1;
}
static void m_drive_dup(struct vmm_spec *s)
{
	s->drives[0] = (struct vmm_drive){ "/v/a.img", "data", false };
	s->drives[1] = (struct vmm_drive){ "/v/b.img", "data", true };
	s->n_drives = 2;
}
static void m_drive_rel(struct vmm_spec *s)
{
	s->drives[0] = (struct vmm_drive){ "v/a.img", "data", false };
	s->n_drives = 1;
}
static void m_drive_quote(struct vmm_spec *s)
{
	s->drives[0] = (struct vmm_drive){ "/v/a\".img", "data", false };
	s->n_drives = 1;
}
static void m_drives_many(struct vmm_spec *s) { s->n_drives = VMM_MAX_DRIVES + 1; }

static const struct bad_spec bad_specs[] = {
	{ "instance id with capitals", m_id_upper, "instance_id" },
	{ "instance id traversal", m_id_trav, "instance_id" },
	{ "no instance id", m_id_null, "instance_id" },
	{ "instance id too long", m_id_long, "instance_id" },
	{ "relative binary", m_bin_rel, "binary" },
	{ "relative kernel", m_kernel_rel, "kernel" },
	{ "kernel with ..", m_kernel_dots, "kernel" },
	{ "kernel with a space", m_kernel_space, "kernel" },
	{ "relative initrd", m_initrd_rel, "initrd" },
	{ "relative socket", m_sock_rel, "control_socket" },
	{ "socket too long", m_sock_long, "control_socket" },
	{ "vcpus 0", m_vcpus0, "vcpus" },
	{ "vcpus 33", m_vcpus33, "vcpus" },
	{ "mem 63", m_mem_low, "mem_mib" },
	{ "mem too high", m_mem_high, "mem_mib" },
	{ "cmdline newline", m_cmd_nl, "cmdline" },
	{ "no cmdline", m_cmd_null, "cmdline" },
	{ "tap fd", m_tap_fd, "tap_fd" },
	{ "no kvm", m_no_kvm, "use_kvm" },
	{ "multicast mac", m_mac_bad, "mac" },
	{ "bad drive id", m_drive_id, "drives[0].id" },
	{ "duplicate drive id", m_drive_dup, "drives[1].id" },
	{ "relative drive", m_drive_rel, "drives[0].path" },
	{ "quote in drive path", m_drive_quote, "drives[0].path" },
	{ "too many drives", m_drives_many, "drives" },
};

static void test_argv_refuses_hostile_spec(void **state)
{
	struct vmm_argv *a = calloc(1, sizeof(*a));

	assert_non_null(a);
	for (size_t i = 0; i < sizeof(bad_specs) / sizeof(bad_specs[0]); i++) {
		struct vmm_spec s = base_spec();
		struct vmlet_err err = { 0 };
		int rc;

		bad_specs[i].mutate(&s);
		rc = drv->build_argv(&s, a, &err);
		if (rc != -1 || err.code != VMLET_E_INVALID || !strstr(err.msg, bad_specs[i].needle))
			fail_msg("%s: rc %d code %d \"%s\"", bad_specs[i].what, rc, err.code, err.msg);
		assert_int_equal(a->argc, 0);
		assert_null(a->argv[0]);
	}
	free(a);
}

/* ---- boot ----------------------------------------------------------------------- */

static void test_connect_reads_instance_info(void **state)
{
	struct fc_double *d = double_new();
	struct vmlet_err err = { 0 };
	struct fc_instance_info info;

	d->id = "i-0123abcd";
	d->vmm_version = "1.7.0";
	double_start(d);
	struct vmm_conn *c = connect_ok(d);
	if (firecracker_describe(c, &info, T_MS, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(info.state, FC_STATE_NOT_STARTED);
	assert_string_equal(info.id, "i-0123abcd");
	assert_string_equal(info.vmm_version, "1.7.0");
	drv->disconnect(c);
	double_stop(d);
	assert_int_equal(d->n_req, 2);
	expect_req(d, 0, "GET", "/", NULL);
	expect_req(d, 1, "GET", "/", NULL);
	assert_int_equal(d->conns, 1);
	double_free(d);
}

static void test_boot_full_sequence(void **state)
{
	struct fc_double *d = double_new();
	struct vmm_spec s = base_spec();
	struct vmlet_err err = { 0 };
	struct fc_instance_info info;

	s.mac = "52:54:00:12:34:56";
	s.drives[0] = (struct vmm_drive){ "/run/secrets.img", "secrets", true };
	s.drives[1] = (struct vmm_drive){ "/volumes/data_1.img", "data", false };
	s.n_drives = 2;
	/* Quotes and backslashes are legal in a kernel command line: they
	 * must arrive as the same string, not break the JSON. */
	s.cmdline = "console=ttyS0 reboot=k panic=1 pci=off vmlet.note=\"a\\b\"}";
	double_start(d);
	struct vmm_conn *c = connect_ok(d);
	if (firecracker_configure(c, &s, "tn42i7", T_MS, &err) < 0)
		fail_msg("configure: %s", err.msg);
	if (firecracker_describe(c, &info, T_MS, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(info.state, FC_STATE_RUNNING);
	/* A second boot is refused without asking Firecracker. */
	assert_err(firecracker_configure(c, &s, "tn42i7", T_MS, &err), &err, VMLET_E_CONFLICT,
		   "Running");
	drv->disconnect(c);
	double_stop(d);

	assert_int_equal(d->n_req, 8);
	expect_req(d, 0, "GET", "/", NULL);
	expect_req(d, 1, "PUT", "/machine-config",
		   "{\"vcpu_count\": 2, \"mem_size_mib\": 256, \"smt\": false}");
	expect_req(d, 2, "PUT", "/boot-source",
		   "{\"kernel_image_path\": \"/images/guest/vmlinux\","
		   " \"initrd_path\": \"/images/guest/initrd.gz\","
		   " \"boot_args\": \"console=ttyS0 reboot=k panic=1 pci=off vmlet.note=\\\"a\\\\b\\\"}\"}");
	expect_req(d, 3, "PUT", "/drives/secrets",
		   "{\"drive_id\": \"secrets\", \"path_on_host\": \"/run/secrets.img\","
		   " \"is_root_device\": false, \"is_read_only\": true}");
	expect_req(d, 4, "PUT", "/drives/data",
		   "{\"drive_id\": \"data\", \"path_on_host\": \"/volumes/data_1.img\","
		   " \"is_root_device\": false, \"is_read_only\": false}");
	expect_req(d, 5, "PUT", "/network-interfaces/eth0",
		   "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tn42i7\","
		   " \"guest_mac\": \"52:54:00:12:34:56\"}");
	expect_req(d, 6, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
	expect_req(d, 7, "GET", "/", NULL);
	/* All of it on one keep-alive connection. */
	assert_int_equal(d->conns, 1);
	for (int i = 0; i < d->n_req; i++)
		assert_int_equal(d->req[i].conn, 1);
	double_free(d);
}

static void test_boot_minimal_sequence(void **state)
{
	struct fc_double *d = double_new();
	struct vmm_spec s = base_spec();
	struct vmlet_err err = { 0 };

	s.initrd = NULL;
	s.vcpus = 1;
	s.mem_mib = 64;
	double_start(d);
	struct vmm_conn *c = connect_ok(d);
	if (firecracker_configure(c, &s, NULL, T_MS, &err) < 0)
		fail_msg("configure: %s", err.msg);
	drv->disconnect(c);
	double_stop(d);
	assert_int_equal(d->n_req, 4);
	expect_req(d, 1, "PUT", "/machine-config",
		   "{\"vcpu_count\": 1, \"mem_size_mib\": 64, \"smt\": false}");
	expect_req(d, 2, "PUT", "/boot-source",
		   "{\"kernel_image_path\": \"/images/guest/vmlinux\","
		   " \"boot_args\": \"console=ttyS0 reboot=k panic=1 pci=off\"}");
	expect_req(d, 3, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
	double_free(d);
}

static void test_configure_refuses_before_any_request(void **state)
{
	struct fc_double *d = double_new();

	double_start(d);
	struct vmm_conn *c = connect_ok(d);
	assert_int_equal(fd_count(d), 1);
	for (size_t i = 0; i < sizeof(bad_specs) / sizeof(bad_specs[0]); i++) {
		struct vmm_spec s = base_spec();
		struct vmlet_err err = { 0 };
		int rc;

		bad_specs[i].mutate(&s);
		rc = firecracker_configure(c, &s, NULL, T_MS, &err);
		if (rc != -1 || err.code != VMLET_E_INVALID || !strstr(err.msg, bad_specs[i].needle))
			fail_msg("%s: rc %d code %d \"%s\"", bad_specs[i].what, rc, err.code, err.msg);
	}
	/* Driver-specific refusals: the TAP name and MAC pairing, restore. */
	static const char *const bad_taps[] = { "", "tap/0", "tap 0", "tn4094i1234567890",
						"tap\"0", "tn1i1\n" };
	for (size_t i = 0; i < sizeof(bad_taps) / sizeof(bad_taps[0]); i++) {
		struct vmm_spec s = base_spec();
		struct vmlet_err err = { 0 };

		s.mac = "52:54:00:12:34:56";
		assert_err(firecracker_configure(c, &s, bad_taps[i], T_MS, &err), &err,
			   VMLET_E_INVALID, "tap_name");
	}
	{
		struct vmm_spec s = base_spec();
		struct vmlet_err err = { 0 };

		assert_err(firecracker_configure(c, &s, "tn1i1", T_MS, &err), &err, VMLET_E_INVALID,
			   "needs a MAC");
		s.mac = "52:54:00:12:34:56";
		assert_err(firecracker_configure(c, &s, NULL, T_MS, &err), &err, VMLET_E_INVALID,
			   "without a tap_name");
		s.mac = NULL;
		s.incoming = true;
		assert_err(firecracker_configure(c, &s, NULL, T_MS, &err), &err, VMLET_E_INVALID,
			   "incoming");
	}
	/* Nothing reached Firecracker but the connect's GET /. */
	assert_int_equal(fd_count(d), 1);
	drv->disconnect(c);
	double_stop(d);
	double_free(d);
}

/* Firecracker's 400 and its fault_message reach the caller, and the
 * connection stays usable (a well-formed error is not a protocol error). */
static void test_fault_message_surfaces(void **state)
{
	struct fc_double *d = double_new();
	struct vmlet_err err = { 0 };
	struct fc_instance_info info;

	double_start(d);
	struct vmm_conn *c = connect_ok(d);
	/* Pausing a VM that never started: Firecracker refuses. */
	assert_err(drv->pause(c, T_MS, &err), &err, VMLET_E_INVALID,
		   "firecracker PATCH /vm: 400: The requested operation is not supported before "
		   "starting the microVM.");
	if (firecracker_describe(c, &info, T_MS, &err) < 0)
		fail_msg("after a 400: %s", err.msg);
	drv->disconnect(c);
	double_stop(d);
	assert_int_equal(d->conns, 1);
	double_free(d);
}

/* ---- pause, resume, snapshot, restore, shutdown -------------------------------- */

static struct vmm_conn *booted(struct fc_double *d)
{
	struct vmm_spec s = base_spec();
	struct vmlet_err err = { 0 };
	struct vmm_conn *c;

	double_start(d);
	c = connect_ok(d);
	if (firecracker_configure(c, &s, NULL, T_MS, &err) < 0)
		fail_msg("configure: %s", err.msg);
	return c;
}

/* Requests of booted(): GET /, machine-config, boot-source, InstanceStart. */
#define BOOT_REQS 4

static void test_pause_resume(void **state)
{
	struct fc_double *d = double_new();
	struct vmlet_err err = { 0 };
	struct fc_instance_info info;
	struct vmm_conn *c = booted(d);

	if (drv->pause(c, T_MS, &err) < 0)
		fail_msg("pause: %s", err.msg);
	if (firecracker_describe(c, &info, T_MS, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(info.state, FC_STATE_PAUSED);
	if (drv->resume(c, T_MS, &err) < 0)
		fail_msg("resume: %s", err.msg);
	if (firecracker_describe(c, &info, T_MS, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(info.state, FC_STATE_RUNNING);
	drv->disconnect(c);
	double_stop(d);
	assert_int_equal(d->n_req, BOOT_REQS + 4);
	expect_req(d, BOOT_REQS + 0, "PATCH", "/vm", "{\"state\": \"Paused\"}");
	expect_req(d, BOOT_REQS + 2, "PATCH", "/vm", "{\"state\": \"Resumed\"}");
	double_free(d);
}

static void test_snapshot_create(void **state)
{
	struct fc_double *d = double_new();
	struct vmlet_err err = { 0 };
	struct vmm_conn *c = booted(d);
	static const char *const bad_dirs[] = { "snapshot", "/snapshot/", "/", "/a/../b",
						"/snap shot", NULL };

	for (size_t i = 0; i < sizeof(bad_dirs) / sizeof(bad_dirs[0]); i++)
		assert_err(firecracker_snapshot_create(c, bad_dirs[i], T_MS, &err), &err,
			   VMLET_E_INVALID, "snapshot dir");
	assert_int_equal(fd_count(d), BOOT_REQS);
	if (firecracker_snapshot_create(c, "/snapshot/new", T_MS, &err) < 0)
		fail_msg("snapshot: %s", err.msg);
	/* The table's fd-based op does not fit Firecracker: 501, no I/O. */
	assert_err(drv->snapshot_to_fd(c, 0, T_MS, &err), &err, VMLET_E_NOT_IMPLEMENTED, "by path");
	assert_err(drv->restore_from_fd(c, 0, T_MS, &err), &err, VMLET_E_NOT_IMPLEMENTED,
		   "by path");
	drv->disconnect(c);
	double_stop(d);
	assert_int_equal(d->n_req, BOOT_REQS + 2);
	expect_req(d, BOOT_REQS + 0, "PATCH", "/vm", "{\"state\": \"Paused\"}");
	expect_req(d, BOOT_REQS + 1, "PUT", "/snapshot/create",
		   "{\"snapshot_type\": \"Full\", \"snapshot_path\": \"/snapshot/new/vmstate\","
		   " \"mem_file_path\": \"/snapshot/new/mem\"}");
	double_free(d);
}

static void test_snapshot_create_refused_by_firecracker(void **state)
{
	struct fc_double *d = double_new();
	struct vmlet_err err = { 0 };

	/* The double refuses the create (as Firecracker does when the VM
	 * is not paused): its fault_message comes back, prefixed. */
	char raw[512];

	d->fault_at = BOOT_REQS + 1;
	d->fault = FD_FAULT_RAW;
	d->raw = raw_json(raw, sizeof(raw), 400,
			  "{\"fault_message\": \"Cannot create snapshot: disk full.\"}");
	struct vmm_conn *c = booted(d);
	assert_err(firecracker_snapshot_create(c, "/snapshot/new", T_MS, &err), &err,
		   VMLET_E_INVALID,
		   "snapshot: firecracker PUT /snapshot/create: 400: Cannot create snapshot: disk full.");
	drv->disconnect(c);
	double_stop(d);
	double_free(d);
}

static void test_snapshot_load(void **state)
{
	struct fc_double *d = double_new();
	struct vmlet_err err = { 0 };
	struct fc_instance_info info;

	double_start(d);
	struct vmm_conn *c = connect_ok(d);
	assert_err(firecracker_snapshot_load(c, "snap", T_MS, &err), &err, VMLET_E_INVALID,
		   "snapshot dir");
	if (firecracker_snapshot_load(c, "/snapshot/cur", T_MS, &err) < 0)
		fail_msg("load: %s", err.msg);
	if (firecracker_describe(c, &info, T_MS, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(info.state, FC_STATE_RUNNING);
	/* Loading into a VM that runs is refused before Firecracker (which
	 * would end itself) is asked. */
	assert_err(firecracker_snapshot_load(c, "/snapshot/cur", T_MS, &err), &err,
		   VMLET_E_CONFLICT, "not a fresh process");
	drv->disconnect(c);
	double_stop(d);
	assert_int_equal(d->n_req, 3);
	expect_req(d, 1, "PUT", "/snapshot/load",
		   "{\"snapshot_path\": \"/snapshot/cur/vmstate\","
		   " \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"/snapshot/cur/mem\"},"
		   " \"resume_vm\": true}");
	double_free(d);
}

static void test_snapshot_load_failure_ends_firecracker(void **state)
{
	struct fc_double *d = double_new();
	struct vmlet_err err = { 0 };

	d->load_fails = true;
	double_start(d);
	struct vmm_conn *c = connect_ok(d);
	assert_err(firecracker_snapshot_load(c, "/snapshot/cur", T_MS, &err), &err,
		   VMLET_E_INVALID,
		   "restore: firecracker PUT /snapshot/load: 400: Load snapshot error: Failed to "
		   "restore from snapshot: Cannot deserialize the microVM state.");
	/* The process is gone: the next request says so, without hanging. */
	assert_err(drv->resume(c, T_MS, &err), &err, VMLET_E_UNAVAILABLE, "exited");
	drv->disconnect(c);
	double_stop(d);
	double_free(d);
}

static void test_shutdown_graceful(void **state)
{
	struct fc_double *d = double_new();
	struct vmlet_err err = { 0 };
	bool graceful = false;

	d->guest_powers_off = true;
	struct vmm_conn *c = booted(d);
	if (drv->shutdown(c, T_MS, T_MS, &graceful, &err) < 0)
		fail_msg("shutdown: %s", err.msg);
	assert_true(graceful);
	/* Gone stays gone: shutting down again is immediate success. */
	if (drv->shutdown(c, T_MS, T_MS, &graceful, &err) < 0)
		fail_msg("second shutdown: %s", err.msg);
	drv->disconnect(c);
	double_stop(d);
	assert_int_equal(d->n_req, BOOT_REQS + 1);
	expect_req(d, BOOT_REQS, "PUT", "/actions", "{\"action_type\": \"SendCtrlAltDel\"}");
	double_free(d);
}

static void test_shutdown_guest_ignores(void **state)
{
	struct fc_double *d = double_new();
	struct vmlet_err err = { 0 };
	bool graceful = true;
	struct vmm_conn *c = booted(d);

	/* The guest ignores Ctrl+Alt+Del for the whole (short) window:
	 * Firecracker has no quit request, so the caller is told to kill. */
	assert_err(drv->shutdown(c, 50, T_MS, &graceful, &err), &err, VMLET_E_NOT_IMPLEMENTED,
		   "kill the process");
	assert_false(graceful);
	/* graceful_ms 0: no request at all, the same answer. */
	assert_err(drv->shutdown(c, 0, T_MS, &graceful, &err), &err, VMLET_E_NOT_IMPLEMENTED,
		   "kill the process");
	assert_int_equal(fd_count(d), BOOT_REQS + 1);
	drv->disconnect(c);
	double_stop(d);
	expect_req(d, BOOT_REQS, "PUT", "/actions", "{\"action_type\": \"SendCtrlAltDel\"}");
	double_free(d);
}

/* ---- connecting ----------------------------------------------------------------- */

static void test_connect_waits_for_late_socket(void **state)
{
	struct fc_double *d = double_new();

	d->bind_delay_ms = 150;
	double_start(d);
	struct vmm_conn *c = connect_ok(d);
	drv->disconnect(c);
	double_stop(d);
	double_free(d);
}

static void test_connect_times_out(void **state)
{
	struct vmm_conn *c = (struct vmm_conn *)1;
	struct vmlet_err err = { 0 };

	unlink(sock_path);
	assert_err(drv->connect(sock_path, 50, &c, &err), &err, VMLET_E_UNAVAILABLE, "within 50 ms");
	assert_null(c);
}

static void test_connect_refuses_non_firecracker(void **state)
{
	struct fc_double *d = double_new();
	struct vmm_conn *c = NULL;
	struct vmlet_err err = { 0 };

	d->fault_at = 0;
	d->fault = FD_FAULT_RAW;
	d->raw = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"foo\": 1}\n";
	double_start(d);
	assert_err(drv->connect(d->path, T_MS, &c, &err), &err, VMLET_E_INTERNAL, "state");
	assert_null(c);
	double_stop(d);
	double_free(d);
}

/* ---- the HTTP client against malformed answers ---------------------------------- */

struct bad_http {
	const char *what;
	const char *raw;
	size_t raw_len; /* 0: strlen(raw) */
	enum fd_fault fault;
	int code;
	const char *needle;
	bool reconnects; /* the next call opens a new connection and works */
};

#define NUL_HEADER "HTTP/1.1 204 \r\nServer: a\0b\r\n\r\n"
static char big_head[FC_API_HEAD_MAX + 200];
static char big_body_head[128];

static const struct bad_http bad_https[] = {
	{ "status digits", "HTTP/1.1 2O4 \r\n\r\n", 0, FD_FAULT_RAW, VMLET_E_INTERNAL,
	  "malformed status line", true },
	{ "HTTP/1.0", "HTTP/1.0 204 \r\n\r\n", 0, FD_FAULT_RAW, VMLET_E_INTERNAL,
	  "malformed status line", true },
	{ "not HTTP", "ICY 200 OK\r\n\r\n", 0, FD_FAULT_RAW, VMLET_E_INTERNAL,
	  "malformed status line", true },
	{ "status 600", "HTTP/1.1 600 \r\n\r\n", 0, FD_FAULT_RAW, VMLET_E_INTERNAL,
	  "malformed status line", true },
	{ "four digits", "HTTP/1.1 2040 \r\n\r\n", 0, FD_FAULT_RAW, VMLET_E_INTERNAL,
	  "malformed status line", true },
	{ "interim 100", "HTTP/1.1 100 \r\n\r\n", 0, FD_FAULT_RAW, VMLET_E_INTERNAL,
	  "unexpected status 100", true },
	{ "bare LF", "HTTP/1.1 204 \nServer: x\n\r\n\r\n", 0, FD_FAULT_RAW, VMLET_E_INTERNAL,
	  "bare CR, LF or NUL", true },
	{ "NUL in header", NUL_HEADER, sizeof(NUL_HEADER) - 1, FD_FAULT_RAW,
	  VMLET_E_INTERNAL, "bare CR, LF or NUL", true },
	{ "control in reason", "HTTP/1.1 204 A\x01Z\r\n\r\n", 0, FD_FAULT_RAW, VMLET_E_INTERNAL,
	  "control character", true },
	{ "folded header", "HTTP/1.1 204 \r\nServer: a\r\n b\r\n\r\n", 0, FD_FAULT_RAW,
	  VMLET_E_INTERNAL, "folded", true },
	{ "header without colon", "HTTP/1.1 204 \r\nServer a\r\n\r\n", 0, FD_FAULT_RAW,
	  VMLET_E_INTERNAL, "malformed header", true },
	{ "no Content-Length", "HTTP/1.1 200 \r\nServer: Firecracker API\r\n\r\n{}", 0,
	  FD_FAULT_RAW, VMLET_E_INTERNAL, "without Content-Length", true },
	{ "two Content-Lengths",
	  "HTTP/1.1 200 \r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}", 0, FD_FAULT_RAW,
	  VMLET_E_INTERNAL, "twice", true },
	{ "signed Content-Length", "HTTP/1.1 200 \r\nContent-Length: +2\r\n\r\n{}", 0,
	  FD_FAULT_RAW, VMLET_E_INTERNAL, "bad Content-Length", true },
	{ "negative Content-Length", "HTTP/1.1 200 \r\nContent-Length: -1\r\n\r\n{}", 0,
	  FD_FAULT_RAW, VMLET_E_INTERNAL, "bad Content-Length", true },
	{ "huge Content-Length", "HTTP/1.1 200 \r\nContent-Length: 99999999999999999999\r\n\r\n",
	  0, FD_FAULT_RAW, VMLET_E_INTERNAL, "bad Content-Length", true },
	{ "chunked", "HTTP/1.1 200 \r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
	  0, FD_FAULT_RAW, VMLET_E_INTERNAL, "Transfer-Encoding", true },
	{ "204 with a body", "HTTP/1.1 204 \r\nContent-Length: 2\r\n\r\n{}", 0, FD_FAULT_RAW,
	  VMLET_E_INTERNAL, "non-zero Content-Length", true },
	{ "body longer than Content-Length",
	  "HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\n{}{\"state\":\"Running\"}", 0, FD_FAULT_RAW,
	  VMLET_E_INTERNAL, "beyond the declared Content-Length", true },
	{ "2xx body not JSON", "HTTP/1.1 200 \r\nContent-Length: 5\r\n\r\nhello", 0, FD_FAULT_RAW,
	  VMLET_E_INTERNAL, "not JSON", true },
	{ "oversize head", big_head, 0, FD_FAULT_RAW, VMLET_E_INTERNAL, "head longer than", true },
	{ "oversize body", big_body_head, 0, FD_FAULT_RAW, VMLET_E_INTERNAL, "byte cap", true },
	{ "closed mid-response",
	  "HTTP/1.1 200 \r\nContent-Length: 40\r\n\r\n{\"state\": \"Run", 0, FD_FAULT_RAW_CLOSE,
	  VMLET_E_UNAVAILABLE, "in the middle of the response", false },
	{ "closed before answering", NULL, 0, FD_FAULT_CLOSE, VMLET_E_UNAVAILABLE,
	  "before a response", false },
	{ "silence", NULL, 0, FD_FAULT_STALL, VMLET_E_UNAVAILABLE, "no complete response within",
	  true },
};

static void test_http_malformed_answers(void **state)
{
	memset(big_head, 'a', sizeof(big_head) - 1);
	memcpy(big_head, "HTTP/1.1 204 \r\nX-Pad: ", 22);
	memcpy(big_head + sizeof(big_head) - 5, "\r\n\r\n", 5);
	snprintf(big_body_head, sizeof(big_body_head), "HTTP/1.1 200 \r\nContent-Length: %d\r\n\r\n",
		 FC_API_RESPONSE_MAX);

	for (size_t i = 0; i < sizeof(bad_https) / sizeof(bad_https[0]); i++) {
		const struct bad_http *b = &bad_https[i];
		struct fc_double *d = double_new();
		struct fc_api *api = NULL;
		struct vmlet_err err = { 0 };
		json_t *reply = (json_t *)1;
		int rc;

		d->fault_at = 0;
		d->fault = b->fault;
		d->raw = b->raw;
		d->raw_len = b->raw_len;
		double_start(d);
		if (fc_api_connect(d->path, T_MS, &api, &err) < 0)
			fail_msg("%s: connect: %s", b->what, err.msg);
		rc = fc_api_call(api, "GET", "/", NULL, b->fault == FD_FAULT_STALL ? 100 : T_MS,
				 &reply, &err);
		if (rc != -1 || err.code != b->code || !strstr(err.msg, b->needle))
			fail_msg("%s: rc %d code %d \"%s\"", b->what, rc, err.code, err.msg);
		assert_null(reply);
		/* After a protocol error or timeout the client dropped the
		 * connection and opens a new one; after the peer closed it,
		 * it knows Firecracker is gone and says so at once. */
		rc = fc_api_call(api, "GET", "/", NULL, T_MS, &reply, &err);
		if (b->reconnects) {
			if (rc < 0)
				fail_msg("%s: next call: %s", b->what, err.msg);
			assert_non_null(reply);
			json_decref(reply);
		} else {
			if (rc != -1 || err.code != VMLET_E_UNAVAILABLE || !strstr(err.msg, "exited"))
				fail_msg("%s: next call: rc %d \"%s\"", b->what, rc, err.msg);
			assert_true(fc_api_peer_closed(api));
		}
		fc_api_close(api);
		double_stop(d);
		assert_int_equal(d->conns, b->reconnects ? 2 : 1);
		double_free(d);
	}
}

/* Well-formed variations Firecracker may send are accepted. */
static void test_http_accepted_variations(void **state)
{
	static const char *const ok[] = {
		/* No reason phrase and no trailing space. */
		"HTTP/1.1 204\r\n\r\n",
		/* A reason phrase, mixed-case names, OWS around values. */
		"HTTP/1.1 204 No Content\r\nserver:Firecracker API \r\ncontent-length:  0\r\n\r\n",
		/* A deprecated API was used: logged, still a success. */
		"HTTP/1.1 204 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\n"
		"Deprecation: true\r\n\r\n",
	};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct fc_double *d = double_new();
		struct fc_api *api = NULL;
		struct vmlet_err err = { 0 };
		json_t *body = json_pack("{s:s}", "state", "Paused");

		d->fault_at = 0;
		d->fault = FD_FAULT_RAW;
		d->raw = ok[i];
		double_start(d);
		if (fc_api_connect(d->path, T_MS, &api, &err) < 0 ||
		    fc_api_call(api, "PATCH", "/vm", body, T_MS, NULL, &err) < 0)
			fail_msg("variation %zu: %s", i, err.msg);
		json_decref(body);
		fc_api_close(api);
		double_stop(d);
		assert_int_equal(d->conns, 1);
		double_free(d);
	}
}

/* "Connection: close" is honoured: the next call uses a new connection. */
static void test_http_connection_close(void **state)
{
	struct fc_double *d = double_new();
	struct fc_api *api = NULL;
	struct vmlet_err err = { 0 };

	d->fault_at = 0;
	d->fault = FD_FAULT_RAW;
	d->raw = "HTTP/1.1 204 \r\nConnection: close\r\n\r\n";
	double_start(d);
	if (fc_api_connect(d->path, T_MS, &api, &err) < 0 ||
	    fc_api_call(api, "GET", "/", NULL, T_MS, NULL, &err) < 0 ||
	    fc_api_call(api, "GET", "/", NULL, T_MS, NULL, &err) < 0)
		fail_msg("%s", err.msg);
	fc_api_close(api);
	double_stop(d);
	assert_int_equal(d->conns, 2);
	double_free(d);
}

/* Firecracker's fault text is untrusted: controls are replaced, length capped. */
static void test_http_fault_message_sanitised(void **state)
{
	struct fc_double *d = double_new();
	struct fc_api *api = NULL;
	struct vmlet_err err = { 0 };
	static char raw[2048];
	char fault[1200];

	memset(fault, 'x', sizeof(fault) - 1);
	fault[sizeof(fault) - 1] = '\0';
	memcpy(fault, "bad\\nline\\u0001end ", 19);
	char body[1300];

	snprintf(body, sizeof(body), "{\"fault_message\": \"%s\"}", fault);
	d->fault_at = 0;
	d->fault = FD_FAULT_RAW;
	d->raw = raw_json(raw, sizeof(raw), 400, body);
	double_start(d);
	if (fc_api_connect(d->path, T_MS, &api, &err) < 0)
		fail_msg("%s", err.msg);
	assert_err(fc_api_call(api, "GET", "/", NULL, T_MS, NULL, &err), &err, VMLET_E_INVALID,
		   "400: bad?line?end xxx");
	assert_true(strlen(err.msg) < 40 + FC_API_FAULT_MAX);
	for (const char *p = err.msg; *p; p++)
		assert_true(*p >= 0x20 && *p < 0x7f);
	/* A 500 without a JSON body still names the status. */
	fc_api_close(api);
	double_stop(d);
	double_free(d);

	d = double_new();
	d->fault_at = 0;
	d->fault = FD_FAULT_RAW;
	d->raw = "HTTP/1.1 500 \r\nContent-Length: 4\r\n\r\noops";
	double_start(d);
	if (fc_api_connect(d->path, T_MS, &api, &err) < 0)
		fail_msg("%s", err.msg);
	assert_err(fc_api_call(api, "GET", "/", NULL, T_MS, NULL, &err), &err, VMLET_E_INTERNAL,
		   "500: (no fault_message)");
	fc_api_close(api);
	double_stop(d);
	double_free(d);
}

/* Requests outside the grammar, or too big for Firecracker, never leave. */
static void test_http_refuses_bad_requests(void **state)
{
	struct fc_double *d = double_new();
	struct fc_api *api = NULL;
	struct vmlet_err err = { 0 };
	static const char *const bad_paths[] = { "vm", "/vm x", "/vm\r\nX: y", "/vm?a=b", "/%2e",
						  NULL };
	static char big[FC_API_REQUEST_BODY_MAX + 10];

	double_start(d);
	if (fc_api_connect(d->path, T_MS, &api, &err) < 0)
		fail_msg("%s", err.msg);
	for (size_t i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++)
		assert_err(fc_api_call(api, "GET", bad_paths[i], NULL, T_MS, NULL, &err), &err,
			   VMLET_E_INTERNAL, "refusing");
	assert_err(fc_api_call(api, "DELETE", "/vm", NULL, T_MS, NULL, &err), &err,
		   VMLET_E_INTERNAL, "refusing");
	assert_err(fc_api_call(api, "get", "/", NULL, T_MS, NULL, &err), &err, VMLET_E_INTERNAL,
		   "refusing");
	memset(big, 'a', sizeof(big) - 1);
	json_t *body = json_pack("{s:s}", "x", big);
	assert_err(fc_api_call(api, "PUT", "/mmds", body, T_MS, NULL, &err), &err,
		   VMLET_E_TOO_LARGE, "51200");
	json_decref(body);
	assert_int_equal(fd_count(d), 0);
	fc_api_close(api);
	double_stop(d);
	double_free(d);
}

/* Firecracker exits while the connection is idle: the next call knows. */
static void test_http_peer_exit_while_idle(void **state)
{
	struct fc_double *d = double_new();
	struct fc_api *api = NULL;
	struct vmlet_err err = { 0 };

	double_start(d);
	if (fc_api_connect(d->path, T_MS, &api, &err) < 0 ||
	    fc_api_call(api, "GET", "/", NULL, T_MS, NULL, &err) < 0)
		fail_msg("%s", err.msg);
	double_stop(d); /* closes the double's end: EOF on the idle connection */
	assert_err(fc_api_call(api, "GET", "/", NULL, T_MS, NULL, &err), &err, VMLET_E_UNAVAILABLE,
		   "exited");
	assert_true(fc_api_peer_closed(api));
	assert_int_equal(fc_api_wait_closed(api, T_MS, &err), 1);
	fc_api_close(api);
	double_free(d);
}

/* On a socketpair (no double needed): bytes nobody asked for on an idle
 * connection are a protocol error, an attached connection is not
 * reopened, and wait_closed tells silence, EOF and stray bytes apart. */
static void test_http_idle_connection_checks(void **state)
{
	static const char ok[] = "HTTP/1.1 204 \r\n\r\n";
	struct fc_api *api = NULL;
	struct vmlet_err err = { 0 };
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(fc_api_attach(sv[0], &api, &err), 0);
	assert_int_equal(fc_api_wait_closed(api, 10, &err), 0);
	/* An "answer" that is there before the request was even sent. */
	assert_int_equal(write(sv[1], ok, sizeof(ok) - 1), (ssize_t)(sizeof(ok) - 1));
	assert_err(fc_api_call(api, "GET", "/", NULL, T_MS, NULL, &err), &err, VMLET_E_INTERNAL,
		   "unsolicited bytes");
	assert_err(fc_api_call(api, "GET", "/", NULL, T_MS, NULL, &err), &err,
		   VMLET_E_UNAVAILABLE, "dropped earlier");
	assert_false(fc_api_peer_closed(api));
	fc_api_close(api);
	close(sv[1]);

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(fc_api_attach(sv[0], &api, &err), 0);
	assert_int_equal(write(sv[1], "x", 1), 1);
	assert_err(fc_api_wait_closed(api, T_MS, &err), &err, VMLET_E_INTERNAL, "unsolicited");
	fc_api_close(api);
	close(sv[1]);

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(fc_api_attach(sv[0], &api, &err), 0);
	close(sv[1]);
	assert_int_equal(fc_api_wait_closed(api, T_MS, &err), 1);
	assert_true(fc_api_peer_closed(api));
	fc_api_close(api);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_argv_exact),
		cmocka_unit_test(test_argv_refuses_hostile_spec),
		cmocka_unit_test(test_connect_reads_instance_info),
		cmocka_unit_test(test_boot_full_sequence),
		cmocka_unit_test(test_boot_minimal_sequence),
		cmocka_unit_test(test_configure_refuses_before_any_request),
		cmocka_unit_test(test_fault_message_surfaces),
		cmocka_unit_test(test_pause_resume),
		cmocka_unit_test(test_snapshot_create),
		cmocka_unit_test(test_snapshot_create_refused_by_firecracker),
		cmocka_unit_test(test_snapshot_load),
		cmocka_unit_test(test_snapshot_load_failure_ends_firecracker),
		cmocka_unit_test(test_shutdown_graceful),
		cmocka_unit_test(test_shutdown_guest_ignores),
		cmocka_unit_test(test_connect_waits_for_late_socket),
		cmocka_unit_test(test_connect_times_out),
		cmocka_unit_test(test_connect_refuses_non_firecracker),
		cmocka_unit_test(test_http_malformed_answers),
		cmocka_unit_test(test_http_accepted_variations),
		cmocka_unit_test(test_http_connection_close),
		cmocka_unit_test(test_http_fault_message_sanitised),
		cmocka_unit_test(test_http_refuses_bad_requests),
		cmocka_unit_test(test_http_peer_exit_while_idle),
		cmocka_unit_test(test_http_idle_connection_checks),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
