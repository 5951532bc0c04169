/* The spec hash of a pool's instances: what an instance was created from
 * (image and resources), so a change is seen by comparing strings, as
 * moby-derp hashes a container's parameters. hostd stores it with each
 * instance and pool (InstanceSpec.spec_hash) and gives it back in
 * InstanceList; the planner replaces instances whose hash is not the
 * desired pool's.
 *
 * Definition (stable: changing it replaces every instance on every node):
 * the first 16 lowercase hex digits of SHA-256 over the canonical text
 *     "vmlet-spec-v1\nimage=<image>\nvcpus=<n>\nmem_mib=<n>\ndata_disk_mib=<n>\n"
 * with the numbers in decimal without leading zeros and <image> the pool's
 * image name as given (an id: it cannot contain '\n'; "" when unset).
 * flake_ref, profile, desired counts and runtime policy are not part of
 * it: changing them does not replace running instances. */
#ifndef VMLET_AGENTD_SPEC_HASH_H
#define VMLET_AGENTD_SPEC_HASH_H

#include <stdint.h>

#include "rpc/agent.pb-c.h"
#include "shared/err.h"

#define AGENTD_SPEC_HASH_LEN 16

/* 0, out = 16 hex digits + NUL; -1 + err (500) if SHA-256 fails. */
int agentd_spec_hash(const char *image, uint32_t vcpus, uint32_t mem_mib, uint32_t data_disk_mib,
		     char out[AGENTD_SPEC_HASH_LEN + 1], struct vmlet_err *err);

/* The hash of a validated desired pool (image + instance_resources). */
int agentd_spec_hash_pool(const Vmlet__V1__DesiredPool *pool, char out[AGENTD_SPEC_HASH_LEN + 1],
			  struct vmlet_err *err);

#endif
