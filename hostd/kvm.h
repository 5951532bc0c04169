/* Can this host run guests with KVM? Two answers, both real probes. */
#ifndef HOSTD_KVM_H
#define HOSTD_KVM_H

#include <stdbool.h>
#include <stddef.h>

struct hostd_kvm_probe {
	bool usable;      /* /dev/kvm opened, API version 12, KVM_CREATE_VM worked */
	bool vcpu_runs;   /* a real-mode vCPU ran a `hlt` and exited with KVM_EXIT_HLT */
	char detail[600]; /* why not, for the log ("" when both are true) */
};

/* Forks for the vCPU test (call before NNG is up). Never fails: every
 * problem is an answer of "no" with a detail. */
void hostd_kvm_probe(const char *dev, struct hostd_kvm_probe *out);

#endif
