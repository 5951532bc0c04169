/* Firecracker driver: `firecracker --api-sock S --id I`, then everything
 * over its HTTP API (hostd/fc_api.c). See vmm_firecracker.h for how it
 * differs from QEMU and what that asks of hostd.
 *
 * argv carries only the socket and the id: the machine is configured over
 * the API, the same way a snapshot is restored, so one path handles both
 * and no request value ever reaches a command line. Firecracker's default
 * seccomp filter stays on. Every value is checked here again before the
 * first request goes out, so a bad spec changes nothing. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>

#include <jansson.h>

#include "hostd/fc_api.h"
#include "hostd/vmm.h"
#include "hostd/vmm_firecracker.h"
#include "hostd/vmm_spec.h"
#include "shared/cleanup.h"
#include "shared/validate.h"

/* hostd's own paths are short; the cap keeps argv within VMM_ARGV_BUF. */
#define FC_PATH_MAX 1024

#define _cleanup_json_ _cleanup_(json_decrefp)

struct fc_conn {
	struct vmm_conn base; /* first: the table passes &base around */
	struct fc_api *api;
	/* Last known state: from GET / at connect, then kept by our own
	 * requests, so configure/load can refuse a VM that is not fresh
	 * without another round trip (a failed load ends Firecracker). */
	enum fc_state state;
};

static struct fc_conn *fc_of(struct vmm_conn *c)
{
	return (struct fc_conn *)c;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Remaining ms to deadline; at least 1 so a request still gets its try
 * and reports its own timeout. */
static int left_ms(int64_t deadline)
{
	int64_t l = deadline - now_ms();

	return l < 1 ? 1 : l > INT32_MAX ? INT32_MAX : (int)l;
}

static const char *state_name(enum fc_state s)
{
	switch (s) {
	case FC_STATE_NOT_STARTED:
		return "Not started";
	case FC_STATE_RUNNING:
		return "Running";
	case FC_STATE_PAUSED:
		return "Paused";
	}
	return "?";
}

/* ---- checks ------------------------------------------------------------------- */

/* A Linux interface name Firecracker will open: 1..15 of [A-Za-z0-9_-]. */
static bool tap_name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > FC_TAP_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
			return false;
	return true;
}

static int check_spec(const struct vmm_spec *s, struct vmlet_err *err)
{
	struct sockaddr_un sa;

	if (!s->instance_id || !vmlet_instance_id_ok(s->instance_id))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "instance_id: must be \"i-\" and 8 lowercase hex digits");
	if (vmm_check_path("binary", s->binary, FC_PATH_MAX, err) < 0 ||
	    vmm_check_path("control_socket", s->control_socket, sizeof(sa.sun_path), err) < 0 ||
	    vmm_check_path("kernel", s->kernel, FC_PATH_MAX, err) < 0 ||
	    (s->initrd && vmm_check_path("initrd", s->initrd, FC_PATH_MAX, err) < 0))
		return -1;
	if (!s->use_kvm)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "use_kvm: firecracker runs only on KVM (it has no TCG)");
	if (vmm_check_resources(s, err) < 0)
		return -1;
	/* Firecracker opens its TAP by name; an fd hostd kept attached to a
	 * single-queue TAP would make that open fail (EBUSY). */
	if (s->tap_fd != -1)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "tap_fd: firecracker opens its TAP by name (tap_name), "
				     "not from an fd; hostd must not hold the TAP open");
	if (s->mac && !vmm_mac_ok(s->mac))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "mac: must be a unicast MAC as xx:xx:xx:xx:xx:xx (lowercase)");
	return vmm_check_drives(s, FC_PATH_MAX, vmm_check_path, err);
}

/* dir/FC_SNAP_STATE_FILE and dir/FC_SNAP_MEM_FILE, after checking dir. */
static int snapshot_paths(const char *dir, char *state, char *mem, size_t cap,
			  struct vmlet_err *err)
{
	size_t n;

	if (vmm_check_path("snapshot dir", dir, FC_PATH_MAX, err) < 0)
		return -1;
	n = strlen(dir);
	if (n < 2 || dir[n - 1] == '/')
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "snapshot dir: must name a directory below / without a "
				     "trailing '/'");
	if ((size_t)snprintf(state, cap, "%s/%s", dir, FC_SNAP_STATE_FILE) >= cap ||
	    (size_t)snprintf(mem, cap, "%s/%s", dir, FC_SNAP_MEM_FILE) >= cap)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "snapshot dir: too long");
	return 0;
}

/* ---- argv --------------------------------------------------------------------- */

static bool add_arg(struct vmm_argv *a, const char *s)
{
	size_t n = strlen(s) + 1;

	if (a->argc + 1 >= VMM_ARGV_MAX || n > sizeof(a->buf) - a->used)
		return false;
	memcpy(a->buf + a->used, s, n);
	a->argv[a->argc++] = a->buf + a->used;
	a->argv[a->argc] = NULL;
	a->used += n;
	return true;
}

static int fc_build_argv(const struct vmm_spec *s, struct vmm_argv *a, struct vmlet_err *err)
{
	a->argc = 0;
	a->used = 0;
	a->n_keep_fds = 0;
	a->argv[0] = NULL;
	if (check_spec(s, err) < 0)
		return vmlet_err_prefix(err, "firecracker spec: ");
	/* No --no-seccomp, no --config-file: Firecracker's own seccomp filter
	 * stays on, and the machine arrives over the API. */
	if (!add_arg(a, s->binary) || !add_arg(a, "--api-sock") ||
	    !add_arg(a, s->control_socket) || !add_arg(a, "--id") ||
	    !add_arg(a, s->instance_id)) {
		a->argc = 0;
		a->argv[0] = NULL;
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
				     "firecracker argv: more than %d arguments or %d bytes",
				     VMM_ARGV_MAX - 1, VMM_ARGV_BUF);
	}
	return 0;
}

/* ---- requests ----------------------------------------------------------------- */

/* One request; body is consumed (NULL means json_pack failed: out of
 * memory or a NULL string, both refused before anything is sent). */
static int request(struct fc_conn *fc, const char *method, const char *path, json_t *body,
		   int64_t deadline, json_t **reply, struct vmlet_err *err)
{
	_cleanup_json_ json_t *b = body;

	if (!b && strcmp(method, "GET") != 0)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM,
				     "firecracker %s %s: cannot build the request body", method, path);
	return fc_api_call(fc->api, method, path, b, left_ms(deadline), reply, err);
}

static int describe(struct fc_conn *fc, struct fc_instance_info *out, int64_t deadline,
		    struct vmlet_err *err)
{
	_cleanup_json_ json_t *info = NULL;
	const char *st, *id, *ver;

	memset(out, 0, sizeof(*out));
	if (request(fc, "GET", "/", NULL, deadline, &info, err) < 0)
		return -1;
	st = json_string_value(json_object_get(info, "state"));
	if (!json_is_object(info) || !st)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
				     "firecracker GET /: no \"state\" in the instance info");
	if (strcmp(st, "Not started") == 0)
		out->state = FC_STATE_NOT_STARTED;
	else if (strcmp(st, "Running") == 0)
		out->state = FC_STATE_RUNNING;
	else if (strcmp(st, "Paused") == 0)
		out->state = FC_STATE_PAUSED;
	else
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
				     "firecracker GET /: unknown state (not \"Not started\", "
				     "\"Running\" or \"Paused\")");
	/* Firecracker's strings: printable ASCII only, capped. */
	id = json_string_value(json_object_get(info, "id"));
	ver = json_string_value(json_object_get(info, "vmm_version"));
	for (size_t i = 0; id && id[i] && i + 1 < sizeof(out->id); i++)
		out->id[i] = (id[i] >= 0x20 && id[i] < 0x7f) ? id[i] : '?';
	for (size_t i = 0; ver && ver[i] && i + 1 < sizeof(out->vmm_version); i++)
		out->vmm_version[i] = (ver[i] >= 0x20 && ver[i] < 0x7f) ? ver[i] : '?';
	fc->state = out->state;
	return 0;
}

int firecracker_describe(struct vmm_conn *c, struct fc_instance_info *out, int timeout_ms,
			 struct vmlet_err *err)
{
	return describe(fc_of(c), out, now_ms() + timeout_ms, err);
}

static int fc_connect(const char *control_socket, int timeout_ms, struct vmm_conn **out,
		      struct vmlet_err *err)
{
	int64_t deadline = now_ms() + timeout_ms;
	struct fc_conn *fc = calloc(1, sizeof(*fc));
	struct fc_instance_info info;

	*out = NULL;
	if (!fc)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "firecracker: out of memory");
	fc->base.driver = &vmm_firecracker_driver;
	/* The socket appears when Firecracker is ready to serve; GET /
	 * proves it is Firecracker's API answering. */
	if (fc_api_connect(control_socket, timeout_ms, &fc->api, err) < 0 ||
	    describe(fc, &info, deadline, err) < 0) {
		fc_api_close(fc->api);
		free(fc);
		return -1;
	}
	*out = &fc->base;
	return 0;
}

static void fc_disconnect(struct vmm_conn *c)
{
	if (!c)
		return;
	fc_api_close(fc_of(c)->api);
	free(c);
}

static int require_fresh(struct fc_conn *fc, const char *what, struct vmlet_err *err)
{
	if (fc->state != FC_STATE_NOT_STARTED)
		return vmlet_err_set(err, VMLET_E_CONFLICT, 0,
				     "%s: firecracker is \"%s\", not a fresh process", what,
				     state_name(fc->state));
	return 0;
}

int firecracker_configure(struct vmm_conn *c, const struct vmm_spec *spec, const char *tap_name,
			  int timeout_ms, struct vmlet_err *err)
{
	struct fc_conn *fc = fc_of(c);
	int64_t deadline = now_ms() + timeout_ms;
	json_t *boot;

	if (check_spec(spec, err) < 0)
		return vmlet_err_prefix(err, "firecracker spec: ");
	if (spec->incoming)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "firecracker spec: incoming: a restore loads a snapshot "
				     "instead of configuring");
	if (tap_name && !tap_name_ok(tap_name))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "firecracker spec: tap_name: must be 1..%d of [A-Za-z0-9_-]",
				     FC_TAP_NAME_MAX);
	if (tap_name && !spec->mac)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "firecracker spec: mac: a NIC needs a MAC");
	if (!tap_name && spec->mac)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "firecracker spec: mac: given without a tap_name");
	if (require_fresh(fc, "configure", err) < 0)
		return -1;

	/* smt stays off: vCPUs are whole cores to the guest, and any count
	 * 1..32 is accepted (with SMT only 1 or even counts are). */
	if (request(fc, "PUT", "/machine-config",
		    json_pack("{s:I, s:I, s:b}", "vcpu_count", (json_int_t)spec->vcpus,
			      "mem_size_mib", (json_int_t)spec->mem_mib, "smt", 0),
		    deadline, NULL, err) < 0)
		return -1;

	boot = json_pack("{s:s, s:s}", "kernel_image_path", spec->kernel, "boot_args",
			 spec->cmdline);
	if (boot && spec->initrd && json_object_set_new(boot, "initrd_path",
							json_string(spec->initrd)) < 0) {
		json_decref(boot);
		boot = NULL;
	}
	if (request(fc, "PUT", "/boot-source", boot, deadline, NULL, err) < 0)
		return -1;

	for (size_t i = 0; i < spec->n_drives; i++) {
		const struct vmm_drive *d = &spec->drives[i];
		char path[64];

		/* The id was checked: [a-z][a-z0-9_]{0,15}. */
		snprintf(path, sizeof(path), "/drives/%s", d->id);
		if (request(fc, "PUT", path,
			    json_pack("{s:s, s:s, s:b, s:b}", "drive_id", d->id, "path_on_host",
				      d->path, "is_root_device", 0, "is_read_only",
				      d->read_only ? 1 : 0),
			    deadline, NULL, err) < 0)
			return -1;
	}

	if (tap_name &&
	    request(fc, "PUT", "/network-interfaces/" FC_IFACE_ID,
		    json_pack("{s:s, s:s, s:s}", "iface_id", FC_IFACE_ID, "host_dev_name",
			      tap_name, "guest_mac", spec->mac),
		    deadline, NULL, err) < 0)
		return -1;

	if (request(fc, "PUT", "/actions", json_pack("{s:s}", "action_type", "InstanceStart"),
		    deadline, NULL, err) < 0)
		return -1;
	fc->state = FC_STATE_RUNNING;
	return 0;
}

static int set_vm_state(struct fc_conn *fc, const char *want, int64_t deadline,
			struct vmlet_err *err)
{
	if (request(fc, "PATCH", "/vm", json_pack("{s:s}", "state", want), deadline, NULL,
		    err) < 0)
		return -1;
	fc->state = strcmp(want, "Paused") == 0 ? FC_STATE_PAUSED : FC_STATE_RUNNING;
	return 0;
}

static int fc_pause(struct vmm_conn *c, int timeout_ms, struct vmlet_err *err)
{
	return set_vm_state(fc_of(c), "Paused", now_ms() + timeout_ms, err);
}

static int fc_resume(struct vmm_conn *c, int timeout_ms, struct vmlet_err *err)
{
	return set_vm_state(fc_of(c), "Resumed", now_ms() + timeout_ms, err);
}

int firecracker_snapshot_create(struct vmm_conn *c, const char *dir, int timeout_ms,
				struct vmlet_err *err)
{
	struct fc_conn *fc = fc_of(c);
	int64_t deadline = now_ms() + timeout_ms;
	char state[FC_PATH_MAX + 16], mem[FC_PATH_MAX + 16];

	if (snapshot_paths(dir, state, mem, sizeof(state), err) < 0)
		return vmlet_err_prefix(err, "snapshot: ");
	/* Paused first: Firecracker requires it, and the guest cannot
	 * dirty memory behind the copy. */
	if (set_vm_state(fc, "Paused", deadline, err) < 0 ||
	    request(fc, "PUT", "/snapshot/create",
		    json_pack("{s:s, s:s, s:s}", "snapshot_type", "Full", "snapshot_path", state,
			      "mem_file_path", mem),
		    deadline, NULL, err) < 0)
		return vmlet_err_prefix(err, "snapshot: ");
	return 0;
}

int firecracker_snapshot_load(struct vmm_conn *c, const char *dir, int timeout_ms,
			      struct vmlet_err *err)
{
	struct fc_conn *fc = fc_of(c);
	int64_t deadline = now_ms() + timeout_ms;
	char state[FC_PATH_MAX + 16], mem[FC_PATH_MAX + 16];

	if (snapshot_paths(dir, state, mem, sizeof(state), err) < 0)
		return vmlet_err_prefix(err, "restore: ");
	if (require_fresh(fc, "restore", err) < 0)
		return -1;
	/* mem_backend (v1.x; mem_file_path is deprecated). Dirty-page
	 * tracking is left at its default (off): only full snapshots are
	 * taken, and the deprecated enable_diff_snapshots is not sent. */
	if (request(fc, "PUT", "/snapshot/load",
		    json_pack("{s:s, s:{s:s, s:s}, s:b}", "snapshot_path", state, "mem_backend",
			      "backend_type", "File", "backend_path", mem, "resume_vm", 1),
		    deadline, NULL, err) < 0)
		/* Firecracker ends itself after a failed load (the snapshot
		 * was damaged, or from another version or spec). */
		return vmlet_err_prefix(err, "restore: ");
	fc->state = FC_STATE_RUNNING;
	return 0;
}

static int fc_shutdown(struct vmm_conn *c, int graceful_ms, int timeout_ms, bool *graceful,
		       struct vmlet_err *err)
{
	struct fc_conn *fc = fc_of(c);

	if (graceful)
		*graceful = false;
	if (fc_api_peer_closed(fc->api))
		return 0; /* already gone */
	if (graceful_ms > 0) {
		int64_t deadline = now_ms() + graceful_ms;
		int r;

		/* Ctrl+Alt+Del on the emulated i8042 (x86): the guest's init
		 * reboots, and Firecracker exits on the guest's reset. */
		if (request(fc, "PUT", "/actions",
			    json_pack("{s:s}", "action_type", "SendCtrlAltDel"), deadline, NULL,
			    err) < 0)
			return fc_api_peer_closed(fc->api) ? 0 : vmlet_err_prefix(err, "shutdown: ");
		/* The driver sees only the socket: EOF means the process is
		 * gone (hostd's wait status tells a clean exit from a crash). */
		r = fc_api_wait_closed(fc->api, left_ms(deadline), err);
		if (r < 0)
			return vmlet_err_prefix(err, "shutdown: ");
		if (r == 1) {
			if (graceful)
				*graceful = true;
			return 0;
		}
	}
	return vmlet_err_set(err, VMLET_E_NOT_IMPLEMENTED, 0,
			     "shutdown: firecracker has no quit request and the guest did not "
			     "power off within %d ms: kill the process",
			     graceful_ms > 0 ? graceful_ms : 0);
}

static int fc_snapshot_to_fd(struct vmm_conn *c, int fd, int timeout_ms, struct vmlet_err *err)
{
	return vmlet_err_set(err, VMLET_E_NOT_IMPLEMENTED, 0,
			     "snapshot: firecracker writes its snapshot files by path, not to "
			     "an fd (use firecracker_snapshot_create)");
}

static int fc_restore_from_fd(struct vmm_conn *c, int fd, int timeout_ms, struct vmlet_err *err)
{
	return vmlet_err_set(err, VMLET_E_NOT_IMPLEMENTED, 0,
			     "restore: firecracker loads its snapshot files by path, not from "
			     "an fd (use firecracker_snapshot_load)");
}

/* The table's boot op: Firecracker opens its TAP by name (spec.tap_name). */
static int fc_boot(struct vmm_conn *c, const struct vmm_spec *spec, int timeout_ms,
		   struct vmlet_err *err)
{
	return firecracker_configure(c, spec, spec->tap_name, timeout_ms, err);
}

const struct vmm_driver vmm_firecracker_driver = {
	.name = "firecracker",
	.console_on_stdout = true,
	.build_argv = fc_build_argv,
	.connect = fc_connect,
	.boot = fc_boot,
	.pause = fc_pause,
	.resume = fc_resume,
	.snapshot_to_fd = fc_snapshot_to_fd,
	.restore_from_fd = fc_restore_from_fd,
	.snapshot_to_dir = firecracker_snapshot_create,
	.restore_from_dir = firecracker_snapshot_load,
	.shutdown = fc_shutdown,
	.disconnect = fc_disconnect,
};
