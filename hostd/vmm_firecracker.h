/* Firecracker driver (hostd/vmm_firecracker.c): the vmm.h table plus the
 * steps Firecracker needs that the table does not (yet) express.
 *
 * How Firecracker differs from QEMU, and what that asks of hostd:
 *  - It is configured over its API after it starts (machine, boot source,
 *    drives, NIC), then told to start the guest: firecracker_configure().
 *  - It opens its TAP by NAME (host_dev_name), not from an inherited fd:
 *    the TAP must exist, be single-queue, persistent, owned by the
 *    instance uid, live in the jail's network namespace, and have no
 *    other fd attached when firecracker_configure() runs.
 *  - It writes and reads snapshots by PATH: two files, the VM state and
 *    the guest memory, in a directory inside its jail
 *    (firecracker_snapshot_create/_load). A restored VM keeps the memory
 *    file mapped (MAP_PRIVATE) for its whole life: the file must stay
 *    unchanged until that VM is gone, so a new snapshot goes to a new,
 *    empty directory.
 *  - It has no quit request: after a snapshot, or when the guest ignores
 *    SendCtrlAltDel, hostd kills the process (it is jailed and in its own
 *    cgroup). Firecracker exits by itself when the guest resets or powers
 *    off.
 *  - It writes the guest's serial console to its stdout: hostd's jail
 *    makes spec->console_log the VMM's stdout (spec->console_log is not
 *    used by this driver). It needs KVM: there is no TCG fallback.
 * API targeted: Firecracker v1.x (request shapes from the v1 swagger:
 * mem_backend on snapshot load, smt in machine-config, InstanceInfo
 * states "Not started" / "Running" / "Paused"). */
#ifndef HOSTD_VMM_FIRECRACKER_H
#define HOSTD_VMM_FIRECRACKER_H

#include <stdbool.h>

#include "hostd/vmm.h"
#include "shared/err.h"

/* The snapshot files inside the directory given to snapshot_create/_load. */
#define FC_SNAP_STATE_FILE "vmstate"
#define FC_SNAP_MEM_FILE "mem"
/* The guest NIC's id in Firecracker's API. */
#define FC_IFACE_ID "eth0"
/* Linux IFNAMSIZ - 1. */
#define FC_TAP_NAME_MAX 15

extern const struct vmm_driver vmm_firecracker_driver;

enum fc_state {
	FC_STATE_NOT_STARTED, /* fresh process: configure or load a snapshot */
	FC_STATE_RUNNING,
	FC_STATE_PAUSED,
};

/* GET / (InstanceInfo); strings are Firecracker's, sanitised and capped. */
struct fc_instance_info {
	enum fc_state state;
	char id[65];
	char vmm_version[32];
};

/* GET /: the instance's state, id and version. */
int firecracker_describe(struct vmm_conn *c, struct fc_instance_info *out, int timeout_ms,
			 struct vmlet_err *err);

/* Configure a fresh Firecracker for spec and start the guest:
 * PUT /machine-config, /boot-source, /drives/<id> for each drive,
 * /network-interfaces/eth0 when tap_name is given (with spec->mac), then
 * PUT /actions InstanceStart. The spec and tap_name are checked before
 * any request is sent. Not for spec->incoming (use snapshot_load). */
int firecracker_configure(struct vmm_conn *c, const struct vmm_spec *spec, const char *tap_name,
			  int timeout_ms, struct vmlet_err *err);

/* Pause the VM and write a full snapshot into dir (absolute, as
 * Firecracker sees it, writable by the instance uid, empty):
 * dir/FC_SNAP_STATE_FILE and dir/FC_SNAP_MEM_FILE. Firecracker flushes
 * both before it answers. On success the VM is paused and the process
 * still runs: the caller kills it (never resume a VM that was
 * snapshotted: its clone would replay the same state). */
int firecracker_snapshot_create(struct vmm_conn *c, const char *dir, int timeout_ms,
				struct vmlet_err *err);

/* In a fresh Firecracker (state "Not started"), load the snapshot in dir
 * (as written by snapshot_create, readable by the instance uid) and
 * resume the guest. The drives and the TAP must be at the same paths and
 * names as when the snapshot was taken. On failure Firecracker exits. */
int firecracker_snapshot_load(struct vmm_conn *c, const char *dir, int timeout_ms,
			      struct vmlet_err *err);

#endif
