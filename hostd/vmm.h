/* The VMM driver interface: what hostd's instance runtime needs from a
 * VMM, and nothing more. QEMU (hostd/vmm_qemu.c, QMP) and Firecracker
 * (its HTTP API) implement the same table so the runtime's lifecycle code
 * is written once.
 *
 * Why it is this small and shaped this way:
 *  - Drivers never fork or exec. hostd's jail forks, jails and execs the
 *    argv a driver builds, so every process-level protection lives in one
 *    place and no driver can start an unjailed VMM.
 *  - Drivers never open files by path. hostd opens snapshot files beneath
 *    the instance's 0700 snapshot dir (openat2, RESOLVE_BENEATH) and hands
 *    the driver an open fd; the VMM (running as the instance uid, inside
 *    its jail) never needs a path to hostd's state. (Firecracker's
 *    snapshot API takes paths: it uses snapshot_to_dir/restore_from_dir
 *    below, on a directory hostd binds into the jail.)
 *  - Everything that talks to the VMM takes a timeout: a wedged or hostile
 *    VMM costs a bounded wait and a clear error, never a hung worker.
 * The spec is validated by hostd before it gets here; build_argv checks it
 * again (paths absolute, no ',' that QEMU's option syntax would split on,
 * ranges, ids) because argv is the last place a bad value could slip in. */
#ifndef HOSTD_VMM_H
#define HOSTD_VMM_H

#include <stdbool.h>
#include <stddef.h>

#include "shared/err.h"

#define VMM_MAX_DRIVES 4
#define VMM_MAX_KEEP_FDS 4
#define VMM_ARGV_MAX 96
#define VMM_ARGV_BUF 16384
/* Linux/x86 COMMAND_LINE_SIZE (including the NUL). */
#define VMM_CMDLINE_MAX 2048

struct vmm_drive {
	const char *path; /* absolute, as the VMM sees it (inside its jail) */
	const char *id;   /* [a-z][a-z0-9_]{0,15}, unique in the spec */
	bool read_only;
};

/* One VMM process. Paths are as the VMM will see them (inside its jail). */
struct vmm_spec {
	const char *instance_id;    /* "i-" + 8 hex (names the VM in ps/QMP) */
	const char *binary;         /* VMM executable, absolute; argv[0] */
	unsigned vcpus;             /* VMLET_VCPUS_MIN..MAX */
	unsigned mem_mib;           /* VMLET_MEM_MIB_MIN..MAX */
	const char *kernel;         /* absolute */
	const char *initrd;         /* absolute, or NULL */
	const char *cmdline;        /* built by hostd from validated values */
	const char *control_socket; /* QMP / API unix socket the VMM creates */
	const char *console_log;    /* serial console output file */
	int tap_fd;                 /* open TAP fd for the NIC, or -1: no NIC */
	const char *tap_name;       /* firecracker: the TAP by name (it opens it
				     * itself), or NULL; tap_fd stays -1 */
	const char *mac;            /* "52:54:00:12:34:56"; required with tap_fd */
	struct vmm_drive drives[VMM_MAX_DRIVES];
	size_t n_drives;
	bool use_kvm;               /* from hostd's start-up probe; else TCG */
	bool incoming;              /* start waiting for restore_from_fd */
};

/* build_argv's result, in caller-provided storage (no allocation, so the
 * jail can use it between fork and exec). keep_fds are the fds the VMM
 * must inherit under the SAME numbers argv names (the jail clears
 * FD_CLOEXEC on them and closes everything else). */
struct vmm_argv {
	char *argv[VMM_ARGV_MAX]; /* NULL-terminated; argv[0] is spec->binary */
	size_t argc;
	int keep_fds[VMM_MAX_KEEP_FDS];
	size_t n_keep_fds;
	char buf[VMM_ARGV_BUF]; /* the strings argv points into */
	size_t used;
};

/* An open control connection. Drivers embed this as the first member of
 * their own connection struct; callers only pass it back to the table. */
struct vmm_conn {
	const struct vmm_driver *driver;
};

/* Every int-returning op: 0 on success, -1 with *err filled. Timeouts
 * are milliseconds for the whole operation. */
struct vmm_driver {
	const char *name; /* "qemu", "firecracker" */
	/* The VMM writes the guest console to its stdout (firecracker): the
	 * jail opens spec.console_log and makes it the VMM's fd 1. */
	bool console_on_stdout;
	/* Check the spec again and write the VMM's argv (no fork, no I/O). */
	int (*build_argv)(const struct vmm_spec *spec, struct vmm_argv *out,
			  struct vmlet_err *err);
	/* Connect to the control socket of a just-started VMM, retrying
	 * until it appears or timeout_ms passes; handshake included. */
	int (*connect)(const char *control_socket, int timeout_ms, struct vmm_conn **out,
		       struct vmlet_err *err);
	/* Optional (NULL when argv already boots the guest, as QEMU's does).
	 * Configure a fresh VMM for spec over its API and start the guest.
	 * Not called with spec.incoming. */
	int (*boot)(struct vmm_conn *c, const struct vmm_spec *spec, int timeout_ms,
		    struct vmlet_err *err);
	/* Stop the vCPUs (state "warm"); memory stays in the process. */
	int (*pause)(struct vmm_conn *c, int timeout_ms, struct vmlet_err *err);
	/* Run the vCPUs again after pause or restore. */
	int (*resume)(struct vmm_conn *c, int timeout_ms, struct vmlet_err *err);
	/* Pause, write the complete VM state to fd (an open, writable file
	 * hostd created 0600 in the snapshot dir), fsync it, then end the
	 * VMM: on success the process exits by itself and hostd reaps it. */
	int (*snapshot_to_fd)(struct vmm_conn *c, int fd, int timeout_ms, struct vmlet_err *err);
	/* For a VMM started with spec.incoming: load the state from fd (open
	 * for reading) and resume the guest. On failure the VMM may exit. */
	int (*restore_from_fd)(struct vmm_conn *c, int fd, int timeout_ms, struct vmlet_err *err);
	/* For a VMM that writes/reads its snapshot BY PATH (firecracker;
	 * then snapshot_to_fd/restore_from_fd answer 501, and these are NULL
	 * for fd-based drivers). dir is absolute as the VMM sees it: hostd
	 * bind-mounts a directory beneath the instance's 0700 snapshot dir
	 * there (rw and EMPTY for a snapshot, ro for a restore). The files
	 * are VMM_SNAP_STATE_FILE and VMM_SNAP_MEM_FILE. After snapshot_to_dir
	 * the VM is paused and the process still runs: hostd kills it, then
	 * checks (openat2 RESOLVE_BENEATH|NO_SYMLINKS, regular, nlink 1,
	 * owned by the instance uid), chowns to root and chmods 0600 both
	 * files. A restored VM maps the memory file for its whole life: the
	 * directory it was restored from must not change until it is gone,
	 * so the next snapshot goes to a new directory. */
	int (*snapshot_to_dir)(struct vmm_conn *c, const char *dir, int timeout_ms,
			       struct vmlet_err *err);
	int (*restore_from_dir)(struct vmm_conn *c, const char *dir, int timeout_ms,
				struct vmlet_err *err);
	/* Ask the guest to power off and wait up to graceful_ms (0: skip);
	 * then force the VMM to quit, waiting up to timeout_ms for that.
	 * *graceful (may be NULL) says whether the guest powered off itself.
	 * Success means the VMM is ending; hostd reaps the process (and kills
	 * its cgroup if anything lingers). A VMM with no quit request
	 * (firecracker) fails with VMLET_E_NOT_IMPLEMENTED when the guest
	 * did not power off within graceful_ms: hostd kills the process. */
	int (*shutdown)(struct vmm_conn *c, int graceful_ms, int timeout_ms, bool *graceful,
			struct vmlet_err *err);
	/* Close the connection; the VMM keeps running. NULL is fine. */
	void (*disconnect)(struct vmm_conn *c);
};

#define VMM_SNAP_STATE_FILE "vmstate"
#define VMM_SNAP_MEM_FILE "mem"

extern const struct vmm_driver vmm_qemu_driver;
extern const struct vmm_driver vmm_firecracker_driver;

#endif
