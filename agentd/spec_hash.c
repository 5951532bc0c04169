#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "agentd/spec_hash.h"

#include <stdio.h>
#include <string.h>

int agentd_spec_hash(const char *image, uint32_t vcpus, uint32_t mem_mib, uint32_t data_disk_mib,
		     char out[AGENTD_SPEC_HASH_LEN + 1], struct vmlet_err *err)
{
	static const char hex[] = "0123456789abcdef";
	/* Image names are ids (at most 63 characters); the numbers at most 10
	 * digits each: the canonical text always fits. */
	char text[256];
	byte digest[WC_SHA256_DIGEST_SIZE];
	wc_Sha256 sha;
	int n, ret;

	n = snprintf(text, sizeof(text),
		     "vmlet-spec-v1\nimage=%s\nvcpus=%u\nmem_mib=%u\ndata_disk_mib=%u\n",
		     image ? image : "", vcpus, mem_mib, data_disk_mib);
	if (n < 0 || (size_t)n >= sizeof(text))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "spec hash: image name of %zu characters is too long",
				     strlen(image ? image : ""));
	if ((ret = wc_InitSha256(&sha)) != 0)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "spec hash: wc_InitSha256: %d", ret);
	ret = wc_Sha256Update(&sha, (const byte *)text, (word32)n);
	if (ret == 0)
		ret = wc_Sha256Final(&sha, digest);
	wc_Sha256Free(&sha);
	if (ret != 0)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "spec hash: SHA-256: %d", ret);
	for (int i = 0; i < AGENTD_SPEC_HASH_LEN / 2; i++) {
		out[2 * i] = hex[digest[i] >> 4];
		out[2 * i + 1] = hex[digest[i] & 15];
	}
	out[AGENTD_SPEC_HASH_LEN] = '\0';
	return 0;
}

int agentd_spec_hash_pool(const Vmlet__V1__DesiredPool *pool, char out[AGENTD_SPEC_HASH_LEN + 1],
			  struct vmlet_err *err)
{
	const Vmlet__V1__InstanceResources *r = pool->instance_resources;

	if (!r)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "pool %s: instance_resources missing (desired state not validated)",
				     pool->pool_id ? pool->pool_id : "");
	return agentd_spec_hash(pool->image, r->vcpus, r->mem_mib, r->data_disk_mib, out, err);
}
