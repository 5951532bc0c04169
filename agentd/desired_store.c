#include "agentd/desired_store.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "agentd/signature.h"
#include "rpc/strict.h"
#include "shared/cleanup.h"
#include "shared/safefile.h"
#include "shared/validate.h"

static int store_path(const char *dir, char *buf, size_t size, struct vmlet_err *err)
{
	int n = snprintf(buf, size, "%s/%s", dir, AGENTD_DESIRED_FILE);

	if (!dir || !*dir || n < 0 || (size_t)n >= size)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
				     "paths.agentd_state_dir: missing or too long");
	return 0;
}

int agentd_desired_store_save(const char *dir, const Vmlet__V1__ReconcileRequest *req,
			      struct vmlet_err *err)
{
	_cleanup_free_ uint8_t *buf = NULL;
	char path[PATH_MAX];
	size_t len = 0;

	if (store_path(dir, path, sizeof(path), err) < 0)
		return -1;
	if (vmlet_pack(&req->base, &buf, &len, err) < 0)
		return -1;
	if (vmlet_write_atomic(path, buf, len, 0600, err) < 0) {
		/* Whatever the cause (EACCES, ENOSPC, EROFS), the coordinator
		 * sees a server-side failure, not a bad request. */
		err->code = VMLET_E_INTERNAL;
		return vmlet_err_prefix(err, "persisting the desired state: ");
	}
	return 0;
}

int agentd_desired_store_load(const char *dir, const struct agentd_desired_check *chk,
			      Vmlet__V1__ReconcileRequest **out, struct vmlet_err *err)
{
	_cleanup_free_ char *data = NULL;
	Vmlet__V1__ReconcileRequest *req;
	char path[PATH_MAX];
	size_t len = 0;

	*out = NULL;
	if (store_path(dir, path, sizeof(path), err) < 0)
		return -1;
	if (vmlet_read_file(path, chk->max_len, &data, &len, err) < 0) {
		if (err->code == VMLET_E_NOT_FOUND)
			return 1;
		return -1;
	}
	req = (Vmlet__V1__ReconcileRequest *)vmlet_strict_unpack(
		&vmlet__v1__reconcile_request__descriptor, (const uint8_t *)data, len, err);
	if (!req)
		return vmlet_err_prefix(err, "%s: ", path);
	if (!req->desired_state) {
		protobuf_c_message_free_unpacked(&req->base, NULL);
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "%s: desired_state: required", path);
	}
	if (vmlet_validate_desired_state(req->desired_state, chk->node_id, err) < 0 ||
	    agentd_signature_check(req->desired_state, req->signature, chk->keys_dir,
				   chk->production, err) < 0) {
		protobuf_c_message_free_unpacked(&req->base, NULL);
		return vmlet_err_prefix(err, "%s: ", path);
	}
	*out = req;
	return 0;
}
