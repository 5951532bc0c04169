/* QEMU driver: `qemu-system-x86_64 -M microvm` controlled over QMP.
 *
 * argv: every value is checked here again and passed in a fixed option
 * layout; paths that would need QEMU's ',,' escaping are refused rather
 * than escaped, so what hostd validated is exactly what QEMU parses.
 * Snapshots use migration to an fd (QEMU 7.2 has no file: target): hostd
 * opens the file, we pass the fd with `getfd`, and QEMU never sees a path. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "hostd/qmp.h"
#include "hostd/vmm.h"
#include "hostd/vmm_spec.h"
#include "shared/cleanup.h"
#include "shared/validate.h"

/* hostd's own paths are short; the cap keeps argv within VMM_ARGV_BUF. */
#define QEMU_PATH_MAX 1024
/* fdname for getfd; the migration URIs below name it. */
#define SNAP_FDNAME "snap"
/* Pause between query-migrate polls (ends early on a MIGRATION event). */
#define MIGRATE_POLL_MS 10
/* The VM is stopped while it is saved: there is no guest downtime to trade
 * for bandwidth, so the rate limit (128 MiB/s by default) only slows the
 * save. 1 TiB/s means "as fast as the disk takes it". */
#define SNAP_MAX_BANDWIDTH (1LL << 40)

struct qemu_conn {
	struct vmm_conn base; /* first: the table passes &base around */
	struct qmp *qmp;
};

/* ---- argv ------------------------------------------------------------------ */

/* ',' separates QEMU options: say so, before the shared path rules. */
static int check_path(const char *field, const char *p, size_t max, struct vmlet_err *err)
{
	if (p && p[0] == '/' && strchr(p, ','))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "%s: ',' is not allowed (QEMU option syntax)", field);
	return vmm_check_path(field, p, max, err);
}

static int check_spec(const struct vmm_spec *s, struct vmlet_err *err)
{
	struct sockaddr_un sa;

	if (!s->instance_id || !vmlet_instance_id_ok(s->instance_id))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "instance_id: must be \"i-\" and 8 lowercase hex digits");
	if (check_path("binary", s->binary, QEMU_PATH_MAX, err) < 0 ||
	    check_path("kernel", s->kernel, QEMU_PATH_MAX, err) < 0 ||
	    (s->initrd && check_path("initrd", s->initrd, QEMU_PATH_MAX, err) < 0) ||
	    check_path("console_log", s->console_log, QEMU_PATH_MAX, err) < 0 ||
	    check_path("control_socket", s->control_socket, sizeof(sa.sun_path), err) < 0)
		return -1;
	if (vmm_check_resources(s, err) < 0)
		return -1;
	if (s->tap_fd < -1)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "tap_fd: %d is not an fd", s->tap_fd);
	if (s->tap_fd >= 0 && !vmm_mac_ok(s->mac))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "mac: a NIC needs a unicast MAC as xx:xx:xx:xx:xx:xx (lowercase)");
	if (s->tap_fd < 0 && s->mac)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "mac: given without a tap_fd");
	return vmm_check_drives(s, QEMU_PATH_MAX, check_path, err);
}

/* Appends to argv; a full argv or buffer makes `full` stick, checked once
 * at the end, so the layout below reads like the command line it makes. */
struct argv_builder {
	struct vmm_argv *a;
	bool full;
};

static __attribute__((format(printf, 2, 0))) void vadd(struct argv_builder *b, const char *fmt,
						       va_list ap)
{
	struct vmm_argv *a = b->a;
	size_t room = sizeof(a->buf) - a->used;
	int n;

	if (b->full || a->argc + 1 >= VMM_ARGV_MAX) {
		b->full = true;
		return;
	}
	n = vsnprintf(a->buf + a->used, room, fmt, ap);
	if (n < 0 || (size_t)n >= room) {
		b->full = true;
		return;
	}
	a->argv[a->argc++] = a->buf + a->used;
	a->argv[a->argc] = NULL;
	a->used += (size_t)n + 1;
}

static __attribute__((format(printf, 2, 3))) void arg(struct argv_builder *b, const char *fmt,
						      ...)
{
	va_list ap;

	va_start(ap, fmt);
	vadd(b, fmt, ap);
	va_end(ap);
}

/* An option and its formatted value: opt(b, "-m", "%uM", mib). */
static __attribute__((format(printf, 3, 4))) void opt(struct argv_builder *b, const char *name,
						      const char *fmt, ...)
{
	va_list ap;

	arg(b, "%s", name);
	va_start(ap, fmt);
	vadd(b, fmt, ap);
	va_end(ap);
}

static int qemu_build_argv(const struct vmm_spec *s, struct vmm_argv *a, struct vmlet_err *err)
{
	struct argv_builder b = { .a = a };

	a->argc = 0;
	a->used = 0;
	a->n_keep_fds = 0;
	a->argv[0] = NULL;
	if (check_spec(s, err) < 0)
		return vmlet_err_prefix(err, "qemu spec: ");

	arg(&b, "%s", s->binary);
	opt(&b, "-name", "guest=%s", s->instance_id);
	/* microvm: no PCI, no firmware option ROMs, no RTC (the guest keeps
	 * time from its TSC). ACPI stays on: the guest finds its virtio-mmio
	 * devices through it. */
	opt(&b, "-M", "microvm,x-option-roms=off,rtc=off");
	opt(&b, "-accel", "%s", s->use_kvm ? "kvm" : "tcg");
	opt(&b, "-cpu", "%s", s->use_kvm ? "host" : "max");
	opt(&b, "-m", "%uM", s->mem_mib);
	opt(&b, "-smp", "%u", s->vcpus);
	arg(&b, "-nodefaults");
	arg(&b, "-no-user-config");
	arg(&b, "-nographic");
	arg(&b, "-no-reboot");
	/* QEMU's own seccomp filter on top of the jail. A QEMU built without
	 * seccomp refuses this option and does not start: fail closed. */
	opt(&b, "-sandbox",
	    "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
	opt(&b, "-kernel", "%s", s->kernel);
	if (s->initrd)
		opt(&b, "-initrd", "%s", s->initrd);
	opt(&b, "-append", "%s", s->cmdline);
	opt(&b, "-chardev", "file,id=con,path=%s", s->console_log);
	opt(&b, "-serial", "chardev:con");
	opt(&b, "-chardev", "socket,id=qmp,path=%s,server=on,wait=off", s->control_socket);
	opt(&b, "-mon", "chardev=qmp,mode=control");
	if (s->tap_fd >= 0) {
		opt(&b, "-netdev", "tap,id=n0,fd=%d", s->tap_fd);
		opt(&b, "-device", "virtio-net-device,netdev=n0,mac=%s", s->mac);
		a->keep_fds[a->n_keep_fds++] = s->tap_fd;
	}
	for (size_t i = 0; i < s->n_drives; i++) {
		const struct vmm_drive *d = &s->drives[i];

		opt(&b, "-drive", "file=%s,if=none,id=%s,format=raw,readonly=%s", d->path, d->id,
		    d->read_only ? "on" : "off");
		opt(&b, "-device", "virtio-blk-device,drive=%s", d->id);
	}
	if (s->incoming)
		opt(&b, "-incoming", "defer");
	if (b.full) {
		a->argc = 0;
		a->argv[0] = NULL;
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
				     "qemu argv: more than %d arguments or %d bytes",
				     VMM_ARGV_MAX - 1, VMM_ARGV_BUF);
	}
	return 0;
}

/* ---- control ---------------------------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Remaining ms to deadline; at least 1 so a command still gets its try
 * and reports its own timeout. */
static int left_ms(int64_t deadline)
{
	int64_t l = deadline - now_ms();

	return l < 1 ? 1 : l > INT32_MAX ? INT32_MAX : (int)l;
}

static struct qmp *qmp_of(struct vmm_conn *c)
{
	return ((struct qemu_conn *)c)->qmp;
}

static int qemu_connect(const char *control_socket, int timeout_ms, struct vmm_conn **out,
			struct vmlet_err *err)
{
	struct qemu_conn *qc = calloc(1, sizeof(*qc));

	*out = NULL;
	if (!qc)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "qemu: out of memory");
	if (qmp_connect(control_socket, timeout_ms, &qc->qmp, err) < 0) {
		free(qc);
		return -1;
	}
	qc->base.driver = &vmm_qemu_driver;
	*out = &qc->base;
	return 0;
}

static void qemu_disconnect(struct vmm_conn *c)
{
	if (!c)
		return;
	qmp_close(qmp_of(c));
	free(c);
}

static int qemu_pause(struct vmm_conn *c, int timeout_ms, struct vmlet_err *err)
{
	return qmp_execute(qmp_of(c), "stop", NULL, -1, timeout_ms, NULL, err);
}

static int qemu_resume(struct vmm_conn *c, int timeout_ms, struct vmlet_err *err)
{
	return qmp_execute(qmp_of(c), "cont", NULL, -1, timeout_ms, NULL, err);
}

/* The "status" string of a query-* reply, copied (QEMU's text, capped). */
static int query_status(struct qmp *q, const char *command, int64_t deadline, char *out,
			size_t cap, json_t **reply, struct vmlet_err *err)
{
	json_t *ret = NULL;
	const char *st;

	if (qmp_execute(q, command, NULL, -1, left_ms(deadline), &ret, err) < 0)
		return -1;
	st = json_string_value(json_object_get(ret, "status"));
	if (!st || strlen(st) >= cap) {
		json_decref(ret);
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
				     "qmp %s: reply has no usable \"status\"", command);
	}
	memcpy(out, st, strlen(st) + 1);
	if (reply)
		*reply = ret;
	else
		json_decref(ret);
	return 0;
}

/* Poll query-migrate until the migration (either direction) completes.
 * Between polls, wait for a MIGRATION event (only seen when QEMU emits
 * them) or MIGRATE_POLL_MS, whichever is first. */
static int wait_migration(struct qmp *q, const char *what, int64_t deadline,
			  struct vmlet_err *err)
{
	for (;;) {
		char st[32];
		json_t *ret = NULL;
		unsigned seen = qmp_events(q)->count[QMP_EV_MIGRATION];

		if (query_status(q, "query-migrate", deadline, st, sizeof(st), &ret, err) < 0)
			return vmlet_err_prefix(err, "%s: ", what);
		if (strcmp(st, "completed") == 0) {
			json_decref(ret);
			return 0;
		}
		if (strcmp(st, "failed") == 0 || strcmp(st, "cancelled") == 0) {
			char desc[200] = "no error-desc";
			const char *d = json_string_value(json_object_get(ret, "error-desc"));
			size_t i;

			for (i = 0; d && d[i] && i + 1 < sizeof(desc); i++)
				desc[i] = (d[i] >= 0x20 && d[i] < 0x7f) ? d[i] : '?';
			if (d)
				desc[i] = '\0';
			json_decref(ret);
			return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "%s: migration %s: %s", what,
					     st, desc);
		}
		json_decref(ret);
		if (now_ms() >= deadline)
			return vmlet_err_set(err, VMLET_E_UNAVAILABLE, 0,
					     "%s: migration still \"%s\" at the deadline", what, st);
		int nap = (int)(deadline - now_ms());
		if (qmp_wait_event(q, QMP_EV_MIGRATION, seen,
				   nap < MIGRATE_POLL_MS ? (nap > 0 ? nap : 1) : MIGRATE_POLL_MS,
				   err) < 0)
			return vmlet_err_prefix(err, "%s: ", what);
	}
}

static int check_snapshot_fd(int fd, bool writing, struct vmlet_err *err)
{
	struct stat st;
	int fl = fcntl(fd, F_GETFL);

	if (fd < 0 || fl < 0 || fstat(fd, &st) < 0)
		return vmlet_err_set(err, VMLET_E_INTERNAL, EBADF, "snapshot fd %d is not open", fd);
	if (!S_ISREG(st.st_mode))
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
				     "snapshot fd %d is not a regular file", fd);
	if (writing && (fl & O_ACCMODE) == O_RDONLY)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "snapshot fd %d is not writable", fd);
	if (!writing && (fl & O_ACCMODE) == O_WRONLY)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "snapshot fd %d is not readable", fd);
	if (!writing && st.st_size == 0)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "snapshot file is empty");
	return 0;
}

/* quit, tolerating QEMU closing the socket before its reply arrives. */
static int quit(struct qmp *q, int64_t deadline, struct vmlet_err *err)
{
	unsigned seen = qmp_events(q)->count[QMP_EV_SHUTDOWN];

	if (qmp_execute(q, "quit", NULL, -1, left_ms(deadline), NULL, err) < 0)
		return qmp_peer_closed(q) ? 0 : -1;
	/* QEMU announces its exit with SHUTDOWN, then closes. */
	if (qmp_wait_event(q, QMP_EV_SHUTDOWN, seen, left_ms(deadline), err) < 0 &&
	    !qmp_peer_closed(q))
		return -1;
	return 0;
}

static int qemu_snapshot_to_fd(struct vmm_conn *c, int fd, int timeout_ms, struct vmlet_err *err)
{
	int64_t deadline = now_ms() + timeout_ms;
	struct qmp *q = qmp_of(c);

	if (check_snapshot_fd(fd, true, err) < 0)
		return -1;
	/* Stopped first: one consistent pass, and the guest cannot dirty
	 * memory behind the copy. */
	if (qmp_execute(q, "stop", NULL, -1, left_ms(deadline), NULL, err) < 0 ||
	    qmp_execute(q, "migrate-set-parameters",
			json_pack("{s:I}", "max-bandwidth", (json_int_t)SNAP_MAX_BANDWIDTH), -1,
			left_ms(deadline), NULL, err) < 0 ||
	    qmp_execute(q, "getfd", json_pack("{s:s}", "fdname", SNAP_FDNAME), fd,
			left_ms(deadline), NULL, err) < 0 ||
	    qmp_execute(q, "migrate", json_pack("{s:s}", "uri", "fd:" SNAP_FDNAME), -1,
			left_ms(deadline), NULL, err) < 0)
		return vmlet_err_prefix(err, "snapshot: ");
	if (wait_migration(q, "snapshot", deadline, err) < 0) {
		/* Leave no migration running into hostd's fd; the VM stays
		 * paused (state "warm") for hostd to decide. */
		if (!qmp_closed(q))
			qmp_execute(q, "migrate_cancel", NULL, -1, left_ms(deadline), NULL, NULL);
		return -1;
	}
	/* The snapshot must be on disk before the instance counts as asleep. */
	if (fsync(fd) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "snapshot: fsync");
	if (quit(q, deadline, err) < 0)
		return vmlet_err_prefix(err, "snapshot saved, but: ");
	return 0;
}

static int qemu_restore_from_fd(struct vmm_conn *c, int fd, int timeout_ms,
				struct vmlet_err *err)
{
	int64_t deadline = now_ms() + timeout_ms;
	struct qmp *q = qmp_of(c);
	char st[32];

	if (check_snapshot_fd(fd, false, err) < 0)
		return -1;
	if (query_status(q, "query-status", deadline, st, sizeof(st), NULL, err) < 0)
		return vmlet_err_prefix(err, "restore: ");
	if (strcmp(st, "inmigrate") != 0)
		return vmlet_err_set(err, VMLET_E_CONFLICT, 0,
				     "restore: QEMU is \"%s\", not waiting for a snapshot "
				     "(start it with incoming)", st);
	if (qmp_execute(q, "getfd", json_pack("{s:s}", "fdname", SNAP_FDNAME), fd,
			left_ms(deadline), NULL, err) < 0 ||
	    qmp_execute(q, "migrate-incoming", json_pack("{s:s}", "uri", "fd:" SNAP_FDNAME), -1,
			left_ms(deadline), NULL, err) < 0)
		return vmlet_err_prefix(err, "restore: ");
	if (wait_migration(q, "restore", deadline, err) < 0) {
		/* QEMU exits when an incoming migration fails. */
		if (qmp_peer_closed(q))
			vmlet_err_prefix(err, "QEMU exited while loading the snapshot "
					      "(damaged or from another QEMU/spec?): ");
		return -1;
	}
	if (qmp_execute(q, "cont", NULL, -1, left_ms(deadline), NULL, err) < 0)
		return vmlet_err_prefix(err, "restore: ");
	return 0;
}

static int qemu_shutdown(struct vmm_conn *c, int graceful_ms, int timeout_ms, bool *graceful,
			 struct vmlet_err *err)
{
	struct qmp *q = qmp_of(c);

	if (graceful)
		*graceful = false;
	if (qmp_closed(q))
		return vmlet_err_set(err, VMLET_E_UNAVAILABLE, 0,
				     "shutdown: no QMP connection (kill the process)");
	if (graceful_ms > 0) {
		int64_t deadline = now_ms() + graceful_ms;
		unsigned seen = qmp_events(q)->count[QMP_EV_SHUTDOWN];
		int r;

		/* ACPI power button. A guest without a handler for it
		 * ignores this; then the quit below does the job. */
		if (qmp_execute(q, "system_powerdown", NULL, -1, left_ms(deadline), NULL, err) < 0)
			return qmp_peer_closed(q) ? 0 : vmlet_err_prefix(err, "shutdown: ");
		r = qmp_wait_event(q, QMP_EV_SHUTDOWN, seen, left_ms(deadline), err);
		if (r == 1) {
			if (graceful)
				*graceful = qmp_events(q)->shutdown_guest;
			return 0;
		}
		if (r < 0)
			/* QEMU went away (crashed or killed): it is down. */
			return qmp_peer_closed(q) ? 0 : vmlet_err_prefix(err, "shutdown: ");
	}
	if (quit(q, now_ms() + timeout_ms, err) < 0)
		return vmlet_err_prefix(err, "shutdown: ");
	return 0;
}

const struct vmm_driver vmm_qemu_driver = {
	.name = "qemu",
	.build_argv = qemu_build_argv,
	.connect = qemu_connect,
	.pause = qemu_pause,
	.resume = qemu_resume,
	.snapshot_to_fd = qemu_snapshot_to_fd,
	.restore_from_fd = qemu_restore_from_fd,
	.shutdown = qemu_shutdown,
	.disconnect = qemu_disconnect,
};
