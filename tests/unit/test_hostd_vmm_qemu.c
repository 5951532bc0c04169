/* QEMU driver (hostd/vmm_qemu.c): the exact argv for a spec and every
 * refusal; the QMP sequences of pause/resume/snapshot/restore/shutdown
 * against the QMP test double (tests/unit/hostd_qmp_double.h), including
 * failures; and a REAL QEMU run (TCG) with the test guest: boot to the
 * readiness marker, stop/cont, snapshot to a file through an fd, restore
 * into a new QEMU and see the same boot continue, then shut down.
 * The real run skips when QEMU or build/guest/ is missing. Timings are
 * printed, never asserted. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hostd/vmm.h"
#include "tests/unit/hostd_qmp_double.h"

#define QEMU_BIN "/usr/bin/qemu-system-x86_64"
/* The test guest (guest/build.sh); VMLET_GUEST_DIR overrides. */
#define GUEST_DIR_DEFAULT "build/guest"

static char tmpdir[] = "/tmp/test_hostd_vmm_qemu.XXXXXX";
static const struct vmm_driver *drv = &vmm_qemu_driver;

/* Every QEMU this file starts, so teardown can end them whatever failed. */
static pid_t started[8];
static size_t n_started;

static int setup(void **state)
{
	return mkdtemp(tmpdir) ? 0 : -1;
}

static void reap_all(void)
{
	for (size_t i = 0; i < n_started; i++) {
		if (started[i] > 0) {
			kill(started[i], SIGKILL);
			waitpid(started[i], NULL, 0);
			started[i] = 0;
		}
	}
	n_started = 0;
}

static int teardown(void **state)
{
	char cmd[128];

	reap_all();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static struct vmm_spec base_spec(void)
{
	struct vmm_spec s = {
		.instance_id = "i-0123abcd",
		.binary = QEMU_BIN,
		.vcpus = 1,
		.mem_mib = 128,
		.kernel = "/images/guest/vmlinuz",
		.initrd = "/images/guest/initrd.gz",
		.cmdline = "console=ttyS0 tsc_early_khz=2000000 panic=-1",
		.control_socket = "/run/qmp.sock",
		.console_log = "/run/console.log",
		.tap_fd = -1,
	};
	return s;
}

/* ---- argv ------------------------------------------------------------------------ */

static void assert_argv(const struct vmm_argv *a, const char *const *want)
{
	size_t n = 0;

	while (want[n])
		n++;
	for (size_t i = 0; i < n && i < a->argc; i++)
		if (strcmp(a->argv[i], want[i]) != 0)
			fail_msg("argv[%zu] = \"%s\", want \"%s\"", i, a->argv[i], want[i]);
	assert_int_equal(a->argc, n);
	assert_null(a->argv[n]);
}

static void test_argv_minimal_tcg(void **state)
{
	static const char *const want[] = {
		QEMU_BIN, "-name", "guest=i-0123abcd",
		"-M", "microvm,x-option-roms=off,rtc=off",
		"-accel", "tcg", "-cpu", "max", "-m", "128M", "-smp", "1",
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
		"-kernel", "/images/guest/vmlinuz", "-initrd", "/images/guest/initrd.gz",
		"-append", "console=ttyS0 tsc_early_khz=2000000 panic=-1",
		"-chardev", "file,id=con,path=/run/console.log", "-serial", "chardev:con",
		"-chardev", "socket,id=qmp,path=/run/qmp.sock,server=on,wait=off",
		"-mon", "chardev=qmp,mode=control",
		NULL,
	};
	struct vmm_spec s = base_spec();
	struct vmm_argv *a = calloc(1, sizeof(*a));
	struct vmlet_err err = { 0 };

	assert_non_null(a);
	if (drv->build_argv(&s, a, &err) < 0)
		fail_msg("%s", err.msg);
	assert_argv(a, want);
	assert_int_equal(a->n_keep_fds, 0);
	free(a);
}

static void test_argv_full_kvm_incoming(void **state)
{
	static const char *const want[] = {
		QEMU_BIN, "-name", "guest=i-89abcdef",
		"-M", "microvm,x-option-roms=off,rtc=off",
		"-accel", "kvm", "-cpu", "host", "-m", "262144M", "-smp", "32",
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
		"-kernel", "/images/guest/vmlinuz",
		"-append", "console=ttyS0 vmlet.ip=10.20.0.5/24 vmlet.gw=10.20.0.1",
		"-chardev", "file,id=con,path=/run/console.log", "-serial", "chardev:con",
		"-chardev", "socket,id=qmp,path=/run/qmp.sock,server=on,wait=off",
		"-mon", "chardev=qmp,mode=control",
		"-netdev", "tap,id=n0,fd=7",
		"-device", "virtio-net-device,netdev=n0,mac=52:54:00:12:34:56",
		"-drive", "file=/dev/shm/vmlet/i-89abcdef/secrets.img,if=none,id=secrets,format=raw,readonly=on",
		"-device", "virtio-blk-device,drive=secrets",
		"-drive", "file=/volumes/data_1.img,if=none,id=data,format=raw,readonly=off",
		"-device", "virtio-blk-device,drive=data",
		"-incoming", "defer",
		NULL,
	};
	struct vmm_spec s = base_spec();
	struct vmm_argv *a = calloc(1, sizeof(*a));
	struct vmlet_err err = { 0 };

	assert_non_null(a);
	s.instance_id = "i-89abcdef";
	s.use_kvm = true;
	s.vcpus = 32;
	s.mem_mib = 262144;
	s.initrd = NULL;
	s.cmdline = "console=ttyS0 vmlet.ip=10.20.0.5/24 vmlet.gw=10.20.0.1";
	s.tap_fd = 7;
	s.mac = "52:54:00:12:34:56";
	s.drives[0] = (struct vmm_drive){ "/dev/shm/vmlet/i-89abcdef/secrets.img", "secrets", true };
	s.drives[1] = (struct vmm_drive){ "/volumes/data_1.img", "data", false };
	s.n_drives = 2;
	s.incoming = true;
	if (drv->build_argv(&s, a, &err) < 0)
		fail_msg("%s", err.msg);
	assert_argv(a, want);
	assert_int_equal(a->n_keep_fds, 1);
	assert_int_equal(a->keep_fds[0], 7);
	free(a);
}

static void expect_refused(const struct vmm_spec *s, const char *needle)
{
	struct vmm_argv *a = calloc(1, sizeof(*a));
	struct vmlet_err err = { 0 };

	assert_non_null(a);
	assert_int_equal(drv->build_argv(s, a, &err), -1);
	if (!strstr(err.msg, needle))
		fail_msg("error \"%s\" does not mention \"%s\"", err.msg, needle);
	assert_int_equal(err.code, VMLET_E_INVALID);
	assert_int_equal(a->argc, 0);
	assert_null(a->argv[0]);
	free(a);
}

static void test_argv_refusals(void **state)
{
	static char long_cmdline[VMM_CMDLINE_MAX + 1];
	static char long_sock[120];
	struct vmm_spec s;

	memset(long_cmdline, 'a', VMM_CMDLINE_MAX);
	long_sock[0] = '/';
	memset(long_sock + 1, 's', sizeof(long_sock) - 2);

#define REFUSE(field_assign, needle) \
	do {                         \
		s = base_spec();     \
		field_assign;        \
		expect_refused(&s, needle); \
	} while (0)

	REFUSE(s.kernel = "images/vmlinuz", "kernel: must be an absolute path");
	REFUSE(s.kernel = NULL, "kernel: missing");
	REFUSE(s.binary = "qemu-system-x86_64", "binary: must be an absolute path");
	REFUSE(s.initrd = "/images/a,b/initrd.gz", "initrd: ',' is not allowed");
	/* ',,' would be QEMU's escape; we never let a comma through. */
	REFUSE(s.console_log = "/run/c.log,,id=x", "console_log: ',' is not allowed");
	REFUSE(s.control_socket = "/run/q.sock,server=off", "control_socket: ',' is not allowed");
	REFUSE(s.console_log = "/run/../etc/passwd", "'.' and '..' components");
	REFUSE(s.console_log = "/run/./x", "'.' and '..' components");
	REFUSE(s.console_log = "/run/..", "'.' and '..' components");
	REFUSE(s.kernel = "/images/vm linuz", "character 0x20");
	REFUSE(s.kernel = "/images/vmlinuz\n-append", "character 0x0a");
	REFUSE(s.kernel = "/images/k=v", "character 0x3d");
	REFUSE(s.control_socket = long_sock, "control_socket: longer than 107 bytes");
	REFUSE(s.instance_id = "i-0123ABCD", "instance_id");
	REFUSE(s.instance_id = "guest,debug-threads=on", "instance_id");
	REFUSE(s.instance_id = NULL, "instance_id");
	REFUSE(s.vcpus = 0, "vcpus: 0 is outside 1..32");
	REFUSE(s.vcpus = 33, "vcpus: 33 is outside 1..32");
	REFUSE(s.mem_mib = 63, "mem_mib: 63 is outside 64..262144");
	REFUSE(s.mem_mib = 262145, "mem_mib: 262145");
	REFUSE(s.cmdline = NULL, "cmdline: missing");
	REFUSE(s.cmdline = "console=ttyS0\ninit=/bin/sh", "cmdline: character 0x0a");
	REFUSE(s.cmdline = "console=ttyS0 \x7f", "cmdline: character 0x7f");
	REFUSE(s.cmdline = long_cmdline, "cmdline: longer than 2047 bytes");
	REFUSE(s.tap_fd = 5, "mac: a NIC needs a unicast MAC");
	REFUSE((s.tap_fd = 5, s.mac = "52:54:00:12:34:5"), "mac:");
	REFUSE((s.tap_fd = 5, s.mac = "52:54:00:12:34:5G"), "mac:");
	REFUSE((s.tap_fd = 5, s.mac = "52:54:00:AB:34:56"), "mac:");
	REFUSE((s.tap_fd = 5, s.mac = "53:54:00:12:34:56"), "mac:"); /* multicast */
	REFUSE((s.tap_fd = 5, s.mac = "52-54-00-12-34-56"), "mac:");
	REFUSE((s.tap_fd = 5, s.mac = "52:54:00:12:34:56,id=x"), "mac:");
	REFUSE(s.mac = "52:54:00:12:34:56", "mac: given without a tap_fd");
	REFUSE(s.tap_fd = -2, "tap_fd: -2 is not an fd");
	REFUSE(s.n_drives = VMM_MAX_DRIVES + 1, "drives: 5, at most 4");
	REFUSE((s.drives[0] = (struct vmm_drive){ "/d/a.img", "data", false },
		s.drives[1] = (struct vmm_drive){ "/d/b.img", "data", true }, s.n_drives = 2),
	       "drives[1].id: \"data\" is used twice");
	REFUSE((s.drives[0] = (struct vmm_drive){ "/d/a.img", "Data", false }, s.n_drives = 1),
	       "drives[0].id: must match");
	REFUSE((s.drives[0] = (struct vmm_drive){ "/d/a.img", "d0,if=floppy", false }, s.n_drives = 1),
	       "drives[0].id: must match");
	REFUSE((s.drives[0] = (struct vmm_drive){ "/d/a.img", "0data", false }, s.n_drives = 1),
	       "drives[0].id: must match");
	REFUSE((s.drives[0] = (struct vmm_drive){ "/d/a.img", "abcdefghijklmnopq", false },
		s.n_drives = 1),
	       "drives[0].id: must match");
	REFUSE((s.drives[0] = (struct vmm_drive){ "/d/a.img", NULL, false }, s.n_drives = 1),
	       "drives[0].id: must match");
	REFUSE((s.drives[0] = (struct vmm_drive){ "d/a.img", "data", false }, s.n_drives = 1),
	       "drives[0].path: must be an absolute path");
	REFUSE((s.drives[0] = (struct vmm_drive){ "/d/a.img,format=qcow2", "data", false },
		s.n_drives = 1),
	       "drives[0].path: ',' is not allowed");
#undef REFUSE
}

/* ---- driver sequences against the QMP test double ---------------------------------- */

static struct vmm_conn *connect_double(struct qmp_double *d, const struct qd_step *script)
{
	char path[108];
	struct vmlet_err err = { 0 };
	struct vmm_conn *c = NULL;

	snprintf(path, sizeof(path), "%s/qmp-double.sock", tmpdir);
	assert_int_equal(qd_start_listen(d, script, path, 0), 0);
	if (drv->connect(path, 5000, &c, &err) < 0)
		fail_msg("connect: %s", err.msg);
	assert_ptr_equal(c->driver, drv);
	return c;
}

static void finish_double(struct qmp_double *d, struct vmm_conn *c)
{
	drv->disconnect(c);
	qd_join(d);
	if (d->why[0])
		fail_msg("QMP test double: %s", d->why);
}

static int snapshot_file(const char *name, int flags)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	return open(path, flags | O_CLOEXEC, 0600);
}

#define STEP_END { QD_END, NULL, false, NULL, 0 }
#define SHUTDOWN_EV(guest, reason)                                                           \
	"{\"timestamp\": {\"seconds\": 1, \"microseconds\": 0}, \"event\": \"SHUTDOWN\", "    \
	"\"data\": {\"guest\": " guest ", \"reason\": \"" reason "\"}}\r\n"

static void test_pause_resume_sequence(void **state)
{
	static const struct qd_step script[] = {
		QD_HANDSHAKE,
		{ QD_EXPECT, "stop", false, NULL, 0 },
		{ QD_REPLY, QD_OK, false, NULL, 0 },
		{ QD_EXPECT, "cont", false, NULL, 0 },
		{ QD_REPLY, QD_OK, false, NULL, 0 },
		STEP_END,
	};
	struct qmp_double d;
	struct vmlet_err err = { 0 };
	struct vmm_conn *c = connect_double(&d, script);

	assert_int_equal(drv->pause(c, 2000, &err), 0);
	assert_int_equal(drv->resume(c, 2000, &err), 0);
	finish_double(&d, c);
	qd_free(&d);
}

static void test_snapshot_sequence(void **state)
{
	static const struct qd_step script[] = {
		QD_HANDSHAKE,
		{ QD_EXPECT, "stop", false, NULL, 0 },
		{ QD_REPLY, QD_OK, false, NULL, 0 },
		{ QD_EXPECT, "migrate-set-parameters", false, "{\"max-bandwidth\": 1099511627776}", 0 },
		{ QD_REPLY, QD_OK, false, NULL, 0 },
		{ QD_EXPECT, "getfd", true, "{\"fdname\": \"snap\"}", 0 },
		{ QD_REPLY, QD_OK, false, NULL, 0 },
		{ QD_EXPECT, "migrate", false, "{\"uri\": \"fd:snap\"}", 0 },
		{ QD_REPLY, QD_OK, false, NULL, 0 },
		{ QD_EXPECT, "query-migrate", false, NULL, 0 },
		{ QD_REPLY, "{\"return\": {\"status\": \"active\"}, \"id\": $ID}\r\n", false, NULL, 0 },
		{ QD_EXPECT, "query-migrate", false, NULL, 0 },
		{ QD_REPLY, "{\"return\": {\"status\": \"completed\", \"total-time\": 5}, \"id\": $ID}\r\n",
		  false, NULL, 0 },
		{ QD_EXPECT, "quit", false, NULL, 0 },
		{ QD_REPLY, QD_OK, false, NULL, 0 },
		{ QD_SEND, SHUTDOWN_EV("false", "host-qmp-quit"), false, NULL, 0 },
		{ QD_CLOSE, NULL, false, NULL, 0 },
		STEP_END,
	};
	struct qmp_double d;
	struct vmlet_err err = { 0 };
	struct stat mine, theirs;
	int fd = snapshot_file("seq.snap", O_RDWR | O_CREAT | O_EXCL);
	struct vmm_conn *c;

	assert_true(fd >= 0);
	c = connect_double(&d, script);
	if (drv->snapshot_to_fd(c, fd, 5000, &err) < 0)
		fail_msg("snapshot: %s", err.msg);
	finish_double(&d, c);
	/* What the double got is our file. */
	assert_true(d.received_fd >= 0);
	assert_int_equal(fstat(fd, &mine), 0);
	assert_int_equal(fstat(d.received_fd, &theirs), 0);
	assert_int_equal(mine.st_ino, theirs.st_ino);
	qd_free(&d);
	close(fd);
}

static void test_snapshot_failure_cancels(void **state)
{
	static const struct qd_step script[] = {
		QD_HANDSHAKE,
		{ QD_EXPECT, "stop", false, NULL, 0 },
		{ QD_REPLY, QD_OK, false, NULL, 0 },
		{ QD_EXPECT, "migrate-set-parameters", false, "{\"max-bandwidth\": 1099511627776}", 0 },
		{ QD_REPLY, QD_OK, false, NULL, 0 },
		{ QD_EXPECT, "getfd", true, "{\"fdname\": \"snap\"}", 0 },
		{ QD_REPLY, QD_OK, false, NULL, 0 },
		{ QD_EXPECT, "migrate", false, "{\"uri\": \"fd:snap\"}", 0 },
		{ QD_REPLY, QD_OK, false, NULL, 0 },
		{ QD_EXPECT, "query-migrate", false, NULL, 0 },
		{ QD_REPLY,
		  "{\"return\": {\"status\": \"failed\", \"error-desc\": \"Unable to write to file: "
		  "No space left on device\"}, \"id\": $ID}\r\n",
		  false, NULL, 0 },
		{ QD_EXPECT, "migrate_cancel", false, NULL, 0 },
		{ QD_REPLY, QD_OK, false, NULL, 0 },
		STEP_END,
	};
	struct qmp_double d;
	struct vmlet_err err = { 0 };
	int fd = snapshot_file("fail.snap", O_RDWR | O_CREAT | O_EXCL);
	struct vmm_conn *c;

	assert_true(fd >= 0);
	c = connect_double(&d, script);
	assert_int_equal(drv->snapshot_to_fd(c, fd, 5000, &err), -1);
	assert_string_equal(err.msg, "snapshot: migration failed: Unable to write to file: No space "
				     "left on device");
	finish_double(&d, c);
	qd_free(&d);
	close(fd);
}

static void test_snapshot_times_out(void **state)
{
	static const struct qd_step script[] = {
		QD_HANDSHAKE,
		{ QD_EXPECT, "stop", false, NULL, 0 },
		{ QD_REPLY, QD_OK, false, NULL, 0 },
		{ QD_EXPECT, "migrate-set-parameters", false, "{\"max-bandwidth\": 1099511627776}", 0 },
		{ QD_REPLY, QD_OK, false, NULL, 0 },
		{ QD_EXPECT, "getfd", true, "{\"fdname\": \"snap\"}", 0 },
		{ QD_REPLY, QD_OK, false, NULL, 0 },
		{ QD_EXPECT, "migrate", false, "{\"uri\": \"fd:snap\"}", 0 },
		{ QD_REPLY, QD_OK, false, NULL, 0 },
		{ QD_EXPECT, "query-migrate", false, NULL, 0 },
		{ QD_REPLY, "{\"return\": {\"status\": \"active\"}, \"id\": $ID}\r\n", false, NULL, 0 },
		/* ... and then QEMU goes silent. */
		{ QD_HOLD, NULL, false, NULL, 0 },
		STEP_END,
	};
	struct qmp_double d;
	struct vmlet_err err = { 0 };
	int fd = snapshot_file("slow.snap", O_RDWR | O_CREAT | O_EXCL);
	struct vmm_conn *c;

	assert_true(fd >= 0);
	c = connect_double(&d, script);
	assert_int_equal(drv->snapshot_to_fd(c, fd, 400, &err), -1);
	if (!strstr(err.msg, "snapshot: qmp query-migrate: no reply within"))
		fail_msg("%s", err.msg);
	assert_int_equal(err.code, VMLET_E_UNAVAILABLE);
	finish_double(&d, c);
	qd_free(&d);
	close(fd);
}

static void test_snapshot_fd_checked(void **state)
{
	static const struct qd_step script[] = {
		QD_HANDSHAKE,
		STEP_END,
	};
	struct qmp_double d;
	struct vmlet_err err = { 0 };
	int ro = snapshot_file("ro.snap", O_RDONLY | O_CREAT | O_EXCL);
	int wo = snapshot_file("wo.snap", O_WRONLY | O_CREAT | O_EXCL);
	int dir = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct vmm_conn *c;

	assert_true(ro >= 0 && wo >= 0 && dir >= 0);
	c = connect_double(&d, script);
	assert_int_equal(drv->snapshot_to_fd(c, ro, 1000, &err), -1);
	assert_non_null(strstr(err.msg, "is not writable"));
	assert_int_equal(drv->snapshot_to_fd(c, dir, 1000, &err), -1);
	assert_non_null(strstr(err.msg, "is not a regular file"));
	assert_int_equal(drv->snapshot_to_fd(c, -1, 1000, &err), -1);
	assert_non_null(strstr(err.msg, "is not open"));
	assert_int_equal(drv->restore_from_fd(c, wo, 1000, &err), -1);
	assert_non_null(strstr(err.msg, "is not readable"));
	assert_int_equal(drv->restore_from_fd(c, ro, 1000, &err), -1);
	assert_string_equal(err.msg, "snapshot file is empty");
	finish_double(&d, c);
	/* None of that reached QEMU. */
	assert_int_equal(d.commands, 1);
	qd_free(&d);
	close(ro);
	close(wo);
	close(dir);
}

static int nonempty_snapshot(const char *name)
{
	int fd = snapshot_file(name, O_RDWR | O_CREAT | O_EXCL);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "QEVM", 4), 4);
	return fd;
}

static void test_restore_sequence(void **state)
{
	static const struct qd_step script[] = {
		QD_HANDSHAKE,
		{ QD_EXPECT, "query-status", false, NULL, 0 },
		{ QD_REPLY, "{\"return\": {\"status\": \"inmigrate\", \"running\": false}, \"id\": $ID}\r\n",
		  false, NULL, 0 },
		{ QD_EXPECT, "getfd", true, "{\"fdname\": \"snap\"}", 0 },
		{ QD_REPLY, QD_OK, false, NULL, 0 },
		{ QD_EXPECT, "migrate-incoming", false, "{\"uri\": \"fd:snap\"}", 0 },
		{ QD_SEND, "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 0}, \"event\": "
			   "\"MIGRATION\", \"data\": {\"status\": \"setup\"}}\r\n",
		  false, NULL, 0 },
		{ QD_REPLY, QD_OK, false, NULL, 0 },
		{ QD_EXPECT, "query-migrate", false, NULL, 0 },
		{ QD_REPLY, "{\"return\": {\"status\": \"completed\"}, \"id\": $ID}\r\n", false, NULL, 0 },
		{ QD_EXPECT, "cont", false, NULL, 0 },
		{ QD_REPLY, QD_OK, false, NULL, 0 },
		STEP_END,
	};
	struct qmp_double d;
	struct vmlet_err err = { 0 };
	int fd = nonempty_snapshot("restore.snap");
	struct vmm_conn *c = connect_double(&d, script);

	if (drv->restore_from_fd(c, fd, 5000, &err) < 0)
		fail_msg("restore: %s", err.msg);
	finish_double(&d, c);
	assert_true(d.received_fd >= 0);
	qd_free(&d);
	close(fd);
}

static void test_restore_needs_incoming(void **state)
{
	static const struct qd_step script[] = {
		QD_HANDSHAKE,
		{ QD_EXPECT, "query-status", false, NULL, 0 },
		{ QD_REPLY, "{\"return\": {\"status\": \"running\", \"running\": true}, \"id\": $ID}\r\n",
		  false, NULL, 0 },
		STEP_END,
	};
	struct qmp_double d;
	struct vmlet_err err = { 0 };
	int fd = nonempty_snapshot("notincoming.snap");
	struct vmm_conn *c = connect_double(&d, script);

	assert_int_equal(drv->restore_from_fd(c, fd, 5000, &err), -1);
	assert_int_equal(err.code, VMLET_E_CONFLICT);
	assert_non_null(strstr(err.msg, "QEMU is \"running\", not waiting for a snapshot"));
	finish_double(&d, c);
	/* Refused before any fd was handed over. */
	assert_int_equal(d.received_fd, -1);
	qd_free(&d);
	close(fd);
}

static void test_restore_vmm_exits(void **state)
{
	static const struct qd_step script[] = {
		QD_HANDSHAKE,
		{ QD_EXPECT, "query-status", false, NULL, 0 },
		{ QD_REPLY, "{\"return\": {\"status\": \"inmigrate\"}, \"id\": $ID}\r\n", false, NULL, 0 },
		{ QD_EXPECT, "getfd", true, "{\"fdname\": \"snap\"}", 0 },
		{ QD_REPLY, QD_OK, false, NULL, 0 },
		{ QD_EXPECT, "migrate-incoming", false, "{\"uri\": \"fd:snap\"}", 0 },
		{ QD_REPLY, QD_OK, false, NULL, 0 },
		{ QD_EXPECT, "query-migrate", false, NULL, 0 },
		/* QEMU exits on a failed incoming migration. */
		{ QD_CLOSE, NULL, false, NULL, 0 },
		STEP_END,
	};
	struct qmp_double d;
	struct vmlet_err err = { 0 };
	int fd = nonempty_snapshot("bad.snap");
	struct vmm_conn *c = connect_double(&d, script);

	assert_int_equal(drv->restore_from_fd(c, fd, 5000, &err), -1);
	if (!strstr(err.msg, "QEMU exited while loading the snapshot") ||
	    !strstr(err.msg, "QEMU closed the connection"))
		fail_msg("%s", err.msg);
	finish_double(&d, c);
	qd_free(&d);
	close(fd);
}

static void test_shutdown_graceful(void **state)
{
	static const struct qd_step script[] = {
		QD_HANDSHAKE,
		{ QD_EXPECT, "system_powerdown", false, NULL, 0 },
		{ QD_REPLY, QD_OK, false, NULL, 0 },
		{ QD_SEND, "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 0}, \"event\": "
			   "\"POWERDOWN\"}\r\n",
		  false, NULL, 0 },
		{ QD_SLEEP, NULL, false, NULL, 50 },
		{ QD_SEND, SHUTDOWN_EV("true", "guest-shutdown"), false, NULL, 0 },
		{ QD_CLOSE, NULL, false, NULL, 0 },
		STEP_END,
	};
	struct qmp_double d;
	struct vmlet_err err = { 0 };
	struct vmm_conn *c = connect_double(&d, script);
	bool graceful = false;

	assert_int_equal(drv->shutdown(c, 3000, 3000, &graceful, &err), 0);
	assert_true(graceful);
	finish_double(&d, c);
	qd_free(&d);
}

static void test_shutdown_falls_back_to_quit(void **state)
{
	static const struct qd_step script[] = {
		QD_HANDSHAKE,
		{ QD_EXPECT, "system_powerdown", false, NULL, 0 },
		{ QD_REPLY, QD_OK, false, NULL, 0 },
		/* The guest ignores the power button. */
		{ QD_EXPECT, "quit", false, NULL, 0 },
		{ QD_REPLY, QD_OK, false, NULL, 0 },
		{ QD_SEND, SHUTDOWN_EV("false", "host-qmp-quit"), false, NULL, 0 },
		{ QD_CLOSE, NULL, false, NULL, 0 },
		STEP_END,
	};
	struct qmp_double d;
	struct vmlet_err err = { 0 };
	struct vmm_conn *c = connect_double(&d, script);
	bool graceful = true;

	assert_int_equal(drv->shutdown(c, 200, 3000, &graceful, &err), 0);
	assert_false(graceful);
	finish_double(&d, c);
	qd_free(&d);
}

/* ---- a real QEMU --------------------------------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double now_ms_f(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* A minimal launcher standing in for hostd's jail (which comes later):
 * fork, keep only the fds argv names, exec. QEMU's stderr goes to a file
 * for failure messages; PDEATHSIG ends QEMU if this test dies. */
static pid_t launch(const struct vmm_argv *a, const char *stderr_path)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);
		int errfd = open(stderr_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (devnull < 0 || errfd < 0 || dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0 ||
		    dup2(errfd, 2) < 0)
			_exit(126);
		syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */);
		for (size_t i = 0; i < a->n_keep_fds; i++)
			fcntl(a->keep_fds[i], F_SETFD, 0);
		execv(a->argv[0], a->argv);
		_exit(127);
	}
	if (n_started < sizeof(started) / sizeof(started[0]))
		started[n_started++] = pid;
	return pid;
}

static void forget(pid_t pid)
{
	for (size_t i = 0; i < n_started; i++)
		if (started[i] == pid)
			started[i] = 0;
}

/* Wait (bounded) for pid to exit; its wait status, or -1 if it had to be
 * killed. */
static int reap_within(pid_t pid, int ms)
{
	int64_t deadline = now_ms() + ms;
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid) {
			forget(pid);
			return status;
		}
		if (now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			forget(pid);
			return -1;
		}
		sleep_ms(10);
	}
}

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	if (!f)
		return strdup("");
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n)
		buf[0] = '\0';
	fclose(f);
	return buf;
}

/* Wait until the console holds `count` lines containing needle (bounded;
 * fails early if QEMU exited). */
static void wait_console(const char *log, const char *needle, int count, pid_t pid, int ms,
			 const char *errlog)
{
	int64_t deadline = now_ms() + ms;

	for (;;) {
		char *text = read_all(log);
		int seen = 0;

		for (const char *p = text; (p = strstr(p, needle)) != NULL; p++)
			seen++;
		free(text);
		if (seen >= count)
			return;
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			char *e = read_all(errlog);
			forget(pid);
			fail_msg("QEMU exited while waiting for \"%s\": %s", needle, e);
		}
		if (now_ms() > deadline)
			fail_msg("no \"%s\" x%d on the console within %d ms", needle, count, ms);
		sleep_ms(20);
	}
}

static int count_of(const char *log, const char *needle)
{
	char *text = read_all(log);
	int n = 0;

	for (const char *p = text; (p = strstr(p, needle)) != NULL; p++)
		n++;
	free(text);
	return n;
}

/* The last tick line: boot id and uptime. */
static void last_tick(const char *log, char *boot_id, size_t cap, long long *uptime)
{
	char *text = read_all(log);
	const char *p = text, *last = NULL;

	while ((p = strstr(p, "vmlet-tick boot_id=")) != NULL)
		last = p++;
	assert_non_null(last);
	last += strlen("vmlet-tick boot_id=");
	size_t n = strcspn(last, " \n");
	assert_true(n < cap);
	memcpy(boot_id, last, n);
	boot_id[n] = '\0';
	const char *u = strstr(last, "uptime_ms=");
	assert_non_null(u);
	*uptime = strtoll(u + strlen("uptime_ms="), NULL, 10);
	free(text);
}

static off_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_size : -1;
}

static void test_real_qemu_boot_pause_snapshot_restore(void **state)
{
	const char *gdir = getenv("VMLET_GUEST_DIR") ? getenv("VMLET_GUEST_DIR") : GUEST_DIR_DEFAULT;
	char kernel[PATH_MAX], initrd[PATH_MAX], rel[PATH_MAX];
	char log1[256], log2[256], sock1[108], sock2[108], err1[256], err2[256], snap[256];
	char boot_id[64], id_after[64], ready[128];
	long long up_before, up_after;
	struct vmm_argv *a = calloc(1, sizeof(*a));
	struct vmlet_err err = { 0 };
	struct vmm_conn *c = NULL;
	struct vmm_spec s;
	double t0, t_ready, t1;
	bool graceful = true;
	pid_t pid;
	int fd, status;

	assert_non_null(a);
	if (access(QEMU_BIN, X_OK) != 0) {
		free(a);
		printf("SKIP: %s is not installed (apt-get install qemu-system-x86)\n", QEMU_BIN);
		skip();
	}
	snprintf(rel, sizeof(rel), "%s/vmlinuz", gdir);
	if (!realpath(rel, kernel)) {
		free(a);
		printf("SKIP: no test guest in %s: run OUT=%s guest/build.sh\n", gdir, gdir);
		skip();
	}
	snprintf(rel, sizeof(rel), "%s/initrd.gz", gdir);
	if (!realpath(rel, initrd)) {
		free(a);
		printf("SKIP: no %s/initrd.gz: run OUT=%s guest/build.sh\n", gdir, gdir);
		skip();
	}
	snprintf(log1, sizeof(log1), "%s/console1.log", tmpdir);
	snprintf(log2, sizeof(log2), "%s/console2.log", tmpdir);
	snprintf(sock1, sizeof(sock1), "%s/qmp1.sock", tmpdir);
	snprintf(sock2, sizeof(sock2), "%s/qmp2.sock", tmpdir);
	snprintf(err1, sizeof(err1), "%s/qemu1.err", tmpdir);
	snprintf(err2, sizeof(err2), "%s/qemu2.err", tmpdir);
	snprintf(snap, sizeof(snap), "%s/guest.snap", tmpdir);

	/* TCG: this machine's nested KVM faults on stock kernels. */
	s = base_spec();
	s.kernel = kernel;
	s.initrd = initrd;
	s.console_log = log1;
	s.control_socket = sock1;
	if (drv->build_argv(&s, a, &err) < 0)
		fail_msg("%s", err.msg);

	/* Boot to the readiness marker. */
	t0 = now_ms_f();
	pid = launch(a, err1);
	if (drv->connect(sock1, 10000, &c, &err) < 0)
		fail_msg("connect: %s (%s)", err.msg, read_all(err1));
	wait_console(log1, "VMLET-GUEST-READY boot_id=", 1, pid, 30000, err1);
	t_ready = now_ms_f();
	wait_console(log1, "vmlet-tick", 1, pid, 10000, err1);
	{
		char *text = read_all(log1);
		const char *m = strstr(text, "VMLET-GUEST-READY boot_id=");
		snprintf(ready, sizeof(ready), "%.*s", (int)strcspn(m, "\n"), m);
		free(text);
	}
	last_tick(log1, boot_id, sizeof(boot_id), &up_before);
	assert_non_null(strstr(ready, boot_id));
	printf("timing: boot_to_ready_ms=%.0f (launch to marker, TCG)\n", t_ready - t0);

	/* Pause: the counter stops. Resume: it continues. */
	t1 = now_ms_f();
	if (drv->pause(c, 5000, &err) < 0)
		fail_msg("pause: %s", err.msg);
	printf("timing: pause_ms=%.2f\n", now_ms_f() - t1);
	off_t paused_size = file_size(log1);
	int ticks = count_of(log1, "vmlet-tick");
	sleep_ms(2500);
	assert_int_equal(file_size(log1), paused_size);
	t1 = now_ms_f();
	if (drv->resume(c, 5000, &err) < 0)
		fail_msg("resume: %s", err.msg);
	printf("timing: resume_ms=%.2f\n", now_ms_f() - t1);
	wait_console(log1, "vmlet-tick", ticks + 1, pid, 10000, err1);

	/* Snapshot through an fd; QEMU exits afterwards. */
	fd = open(snap, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	t1 = now_ms_f();
	if (drv->snapshot_to_fd(c, fd, 30000, &err) < 0)
		fail_msg("snapshot: %s", err.msg);
	printf("timing: snapshot_ms=%.0f snapshot_bytes=%lld (128 MiB guest, incl. fsync)\n",
	       now_ms_f() - t1, (long long)file_size(snap));
	last_tick(log1, id_after, sizeof(id_after), &up_before);
	drv->disconnect(c);
	c = NULL;
	status = reap_within(pid, 10000);
	assert_true(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(fd);
	assert_true(file_size(snap) > 0);

	/* Restore into a new QEMU started with incoming. */
	s.console_log = log2;
	s.control_socket = sock2;
	s.incoming = true;
	if (drv->build_argv(&s, a, &err) < 0)
		fail_msg("%s", err.msg);
	fd = open(snap, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	t1 = now_ms_f();
	pid = launch(a, err2);
	if (drv->connect(sock2, 10000, &c, &err) < 0)
		fail_msg("connect: %s (%s)", err.msg, read_all(err2));
	if (drv->restore_from_fd(c, fd, 30000, &err) < 0)
		fail_msg("restore: %s (%s)", err.msg, read_all(err2));
	printf("timing: restore_ms=%.0f (launch + load + cont)\n", now_ms_f() - t1);
	close(fd);
	wait_console(log2, "vmlet-tick", 2, pid, 10000, err2);
	/* Same boot, later uptime, no second boot: a restore, not a reboot. */
	last_tick(log2, id_after, sizeof(id_after), &up_after);
	assert_string_equal(id_after, boot_id);
	assert_true(up_after > up_before);
	assert_int_equal(count_of(log2, "VMLET-GUEST-READY"), 0);
	printf("restore: boot_id=%s uptime_ms %lld -> %lld\n", boot_id, up_before, up_after);

	/* Shut down (power button, then quit) and reap. */
	t1 = now_ms_f();
	if (drv->shutdown(c, 1500, 5000, &graceful, &err) < 0)
		fail_msg("shutdown: %s", err.msg);
	printf("timing: shutdown_ms=%.0f graceful=%s\n", now_ms_f() - t1,
	       graceful ? "yes" : "no (guest ignores the ACPI power button; quit used)");
	drv->disconnect(c);
	status = reap_within(pid, 10000);
	assert_true(status != -1 && WIFEXITED(status));
	free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_argv_minimal_tcg),
		cmocka_unit_test(test_argv_full_kvm_incoming),
		cmocka_unit_test(test_argv_refusals),
		cmocka_unit_test(test_pause_resume_sequence),
		cmocka_unit_test(test_snapshot_sequence),
		cmocka_unit_test(test_snapshot_failure_cancels),
		cmocka_unit_test(test_snapshot_times_out),
		cmocka_unit_test(test_snapshot_fd_checked),
		cmocka_unit_test(test_restore_sequence),
		cmocka_unit_test(test_restore_needs_incoming),
		cmocka_unit_test(test_restore_vmm_exits),
		cmocka_unit_test(test_shutdown_graceful),
		cmocka_unit_test(test_shutdown_falls_back_to_quit),
		cmocka_unit_test(test_real_qemu_boot_pause_snapshot_restore),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
