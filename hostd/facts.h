/* Node facts: what this host is and can do, measured, never assumed.
 * Collected once at start (hostd_facts_collect forks probes, so it runs
 * before NNG is initialised); vCPUs and memory are re-read per request. */
#ifndef HOSTD_FACTS_H
#define HOSTD_FACTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/config.h"
#include "shared/version.h"

#define HOSTD_VERSION_MAX 64

struct hostd_facts {
	char node_id[VMLET_ID_MAX];
	bool production;
	char hostname[65];
	char arch[65];
	char kernel_release[65];
	char cgroup_version[8];  /* "v2", "v1" or "none" */
	bool kvm_usable;         /* /dev/kvm opens, API 12, KVM_CREATE_VM works */
	char accel[8];           /* "kvm" or "tcg" */
	char vmm_name[16];
	char vmm_version[HOSTD_VERSION_MAX];         /* "" when the binary is missing */
	char qemu_version[HOSTD_VERSION_MAX];
	char firecracker_version[HOSTD_VERSION_MAX];
	bool jailer_available;
	char vmlet_version[32];
};

void hostd_facts_collect(const struct vmlet_config *cfg, struct hostd_facts *f);

/* Online CPUs and total RAM, read now. */
uint32_t hostd_facts_vcpus(void);
uint64_t hostd_facts_mem_mib(void);

/* "v2" when controllers_path (cgroup.controllers of the v2 root) lists
 * memory, cpu and pids; else "v1" when mountinfo_path shows cgroup (v1)
 * hierarchies carrying memory, cpu and pids; else "none". */
const char *hostd_cgroup_detect(const char *controllers_path, const char *mountinfo_path);

/* First line of a `--version` output: when it starts with prefix, copy the
 * version token after it ("QEMU emulator version 7.2.22 (Debian ...)" with
 * prefix "QEMU emulator version " -> "7.2.22"). 0 ok; -1 when the output
 * is not recognised (buf is then ""). */
int hostd_parse_version(const char *output, const char *prefix, char *buf, size_t len);

#endif
