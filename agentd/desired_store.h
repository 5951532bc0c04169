/* The last accepted Reconcile, kept on disk so a restarted agentd converges
 * to what the coordinator last asked for (and so a replayed or older
 * sequence is still refused after a restart).
 *
 * The file is <agentd_state_dir>/desired-state.pb: the packed
 * ReconcileRequest (DesiredState + optional Signature) exactly as accepted,
 * mode 0600, written with vmlet_write_atomic (temp, fsync, rename, fsync
 * dir). It is saved BEFORE the pass it triggers touches the host: if the
 * write fails the request is refused and nothing changes.
 *
 * Loading trusts nothing: the bytes are decoded strictly, the desired state
 * is validated against this node's id and the signature rule is applied
 * again (the trusted keys or the mode may have changed since). */
#ifndef VMLET_AGENTD_DESIRED_STORE_H
#define VMLET_AGENTD_DESIRED_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "rpc/agent.pb-c.h"
#include "shared/err.h"

#define AGENTD_DESIRED_FILE "desired-state.pb"

struct agentd_desired_check {
	const char *node_id;  /* this node's id */
	const char *keys_dir; /* trusted keys (agentd/signature.h); NULL: none */
	bool production;      /* unsigned states refused */
	size_t max_len;       /* biggest file accepted (cfg->max_frame) */
};

/* Save req atomically into dir. -1 + err (500, naming the file) when it
 * cannot be written. */
int agentd_desired_store_save(const char *dir, const Vmlet__V1__ReconcileRequest *req,
			      struct vmlet_err *err);

/* 0 and *out (free with protobuf_c_message_free_unpacked) for a valid
 * stored state; 1 when there is none; -1 + err when the file exists but is
 * unreadable, corrupt, invalid or not correctly signed (the caller logs it
 * and carries on as if there were none). */
int agentd_desired_store_load(const char *dir, const struct agentd_desired_check *chk,
			      Vmlet__V1__ReconcileRequest **out, struct vmlet_err *err);

#endif
