/* Dropping agentd's privileges once its listeners are bound and its key is
 * loaded: setgroups/setgid/setuid to the configured user, every capability
 * and the bounding set cleared, no_new_privs, then a seccomp allowlist
 * loaded with SCMP_FLTATR_CTL_TSYNC so NNG's and wolfSSL's threads get it
 * too. Order matters: NNG and wolfSSL must be initialised first. */
#ifndef VMLET_AGENTD_PRIVDROP_H
#define VMLET_AGENTD_PRIVDROP_H

#include "shared/config.h"
#include "shared/err.h"

/* Drop to cfg->agentd_uid/gid (skipped when already that user and not
 * root), clear caps and bounding set, set no_new_privs. */
int agentd_drop_privileges(const struct vmlet_config *cfg, struct vmlet_err *err);

/* Load the seccomp allowlist (default action: kill the process, or EPERM
 * when VMLET_SECCOMP_LOG=1 for debugging) with TSYNC. */
int agentd_load_seccomp(struct vmlet_err *err);

#endif
