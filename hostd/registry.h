/* hostd's on-disk registry of what exists on this host (rpc/host.proto
 * TenantRecord / PoolRecord / InstanceRecord, as JSON):
 *   <state_dir>/tenants/<t>/tenant.json
 *   <state_dir>/tenants/<t>/pools/<p>/pool.json
 *   <state_dir>/tenants/<t>/pools/<p>/instances/<i>/instance.json
 * Directories are 0700 and owned by hostd (root); files are 0600 and
 * replaced atomically.
 *
 * Reading trusts nothing it finds: a directory name that is not a valid id
 * (or instance id), a symlink, a non-directory, an unreadable or invalid
 * record, or a record whose ids differ from its path is skipped and logged,
 * together with everything below it. Every directory is opened beneath its
 * parent's fd with O_NOFOLLOW, so no path component is ever a symlink. */
#ifndef HOSTD_REGISTRY_H
#define HOSTD_REGISTRY_H

#include <limits.h>

#include "rpc/host.pb-c.h"
#include "shared/err.h"

/* Cap on entries read from one registry directory: far above what the
 * validation limits allow (tenants, pools, instances per pool), low enough
 * that a flooded directory cannot exhaust memory. */
#define HOSTD_REGISTRY_MAX_ENTRIES 4096
/* Cap on the published ports of one tenant (nft.h's NFT_MAX_PUBLISHES is
 * the node's). */
#define HOSTD_REGISTRY_MAX_PUBLISHES 1024
/* Cap on a record file. */
#define HOSTD_REGISTRY_MAX_RECORD (64 * 1024)

struct hostd_registry {
	char state_dir[PATH_MAX];
	int tenants_fd; /* <state_dir>/tenants, O_DIRECTORY */
};

/* Create <state_dir> (0711: agentd's own state dir may live below it) and
 * <state_dir>/tenants (0700), owned by the caller (root in hostd). */
int hostd_registry_create(const char *state_dir, struct vmlet_err *err);

int hostd_registry_open(struct hostd_registry *reg, const char *state_dir, struct vmlet_err *err);
void hostd_registry_close(struct hostd_registry *reg);

/* Callbacks get records that passed every check; they are freed after the
 * callback returns. Returning -1 (with err filled) stops the walk. */
struct hostd_registry_visitor {
	int (*tenant)(void *arg, const Vmlet__Host__V1__TenantRecord *t, struct vmlet_err *err);
	int (*pool)(void *arg, const Vmlet__Host__V1__PoolRecord *p, struct vmlet_err *err);
	int (*instance)(void *arg, const Vmlet__Host__V1__InstanceRecord *i, struct vmlet_err *err);
};

/* Depth first, each level sorted by id: a tenant, then for each of its
 * pools the pool and then its instances. tenant_id / pool_id NULL or ""
 * mean all (pool_id needs tenant_id); they must be valid ids (callers
 * validate). An unknown tenant or pool is simply absent: nothing visited. */
int hostd_registry_walk(const struct hostd_registry *reg, const char *tenant_id,
			const char *pool_id, const struct hostd_registry_visitor *v, void *arg,
			struct vmlet_err *err);

/* The instance record at t/p/i, or 404 "instance t/p/i not found" (also
 * when the record exists but is invalid: it is logged and not trusted).
 * Free with protobuf_c_message_free_unpacked(&rec->base, NULL). */
int hostd_registry_lookup_instance(const struct hostd_registry *reg, const char *tenant_id,
				   const char *pool_id, const char *instance_id,
				   Vmlet__Host__V1__InstanceRecord **out, struct vmlet_err *err);

/* Validate a record exactly as reading would, create its directories
 * (0700) and write its JSON atomically (0600). The parent records must
 * already exist (a pool needs its tenant, an instance its pool). */
int hostd_registry_write_tenant(const struct hostd_registry *reg,
				const Vmlet__Host__V1__TenantRecord *rec, struct vmlet_err *err);
int hostd_registry_write_pool(const struct hostd_registry *reg,
			      const Vmlet__Host__V1__PoolRecord *rec, struct vmlet_err *err);
int hostd_registry_write_instance(const struct hostd_registry *reg,
				  const Vmlet__Host__V1__InstanceRecord *rec, struct vmlet_err *err);

/* The tenant / pool record, or 404 (also when invalid: logged, not
 * trusted). Free with protobuf_c_message_free_unpacked. */
int hostd_registry_lookup_tenant(const struct hostd_registry *reg, const char *tenant_id,
				 Vmlet__Host__V1__TenantRecord **out, struct vmlet_err *err);
int hostd_registry_lookup_pool(const struct hostd_registry *reg, const char *tenant_id,
			       const char *pool_id, Vmlet__Host__V1__PoolRecord **out,
			       struct vmlet_err *err);

/* O_DIRECTORY fds (O_CLOEXEC) of <tenants>/<t> and of an instance's
 * directory, every component opened O_NOFOLLOW beneath its parent; 404
 * when missing. The instance dir also holds its console log and its 0700
 * snapshot dir. */
int hostd_registry_open_tenant_dir(const struct hostd_registry *reg, const char *tenant_id,
				   struct vmlet_err *err);
int hostd_registry_open_instance_dir(const struct hostd_registry *reg, const char *tenant_id,
				     const char *pool_id, const char *instance_id,
				     struct vmlet_err *err);

/* Removal. Every regular file below is zero-filled (and synced) before it
 * is unlinked: records, console logs and snapshots (guest memory) must not
 * survive in free blocks. Nothing is followed: symlinks, FIFOs and
 * sockets are unlinked themselves. Missing: 0 (idempotent).
 * remove_pool: 409 while the pool has any instance directory.
 * remove_tenant: 409 while any of its pools has one; removes its empty
 * pools and its audit log. */
int hostd_registry_remove_instance(const struct hostd_registry *reg, const char *tenant_id,
				   const char *pool_id, const char *instance_id,
				   struct vmlet_err *err);
int hostd_registry_remove_pool(const struct hostd_registry *reg, const char *tenant_id,
			       const char *pool_id, struct vmlet_err *err);
int hostd_registry_remove_tenant(const struct hostd_registry *reg, const char *tenant_id,
				 struct vmlet_err *err);

/* The checks reading applies (ids well-formed, ranges), without the path. */
int hostd_registry_check_tenant(const Vmlet__Host__V1__TenantRecord *rec, struct vmlet_err *err);
int hostd_registry_check_pool(const Vmlet__Host__V1__PoolRecord *rec, struct vmlet_err *err);
int hostd_registry_check_instance(const Vmlet__Host__V1__InstanceRecord *rec,
				  struct vmlet_err *err);

#endif
