#include "hostd/facts.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hostd/child.h"
#include "hostd/kvm.h"
#include "shared/cleanup.h"
#include "shared/log.h"

#define VERSION_TIMEOUT_MS 5000
#define VERSION_OUTPUT_MAX 4096

uint32_t hostd_facts_vcpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (uint32_t)n : 0;
}

uint64_t hostd_facts_mem_mib(void)
{
	struct sysinfo si;

	if (sysinfo(&si) < 0)
		return 0;
	return (uint64_t)si.totalram * (uint64_t)si.mem_unit / (1024 * 1024);
}

/* The three controllers a VM's cgroup needs (limits on memory, CPU, pids). */
struct needed_controllers {
	bool memory, cpu, pids;
};

static void mark_controller(struct needed_controllers *c, const char *name, size_t len)
{
	if (len == 6 && !memcmp(name, "memory", 6))
		c->memory = true;
	else if (len == 3 && !memcmp(name, "cpu", 3))
		c->cpu = true;
	else if (len == 4 && !memcmp(name, "pids", 4))
		c->pids = true;
}

/* Mark every name in a list separated by any of seps. */
static void mark_list(struct needed_controllers *c, const char *list, const char *seps)
{
	while (*list) {
		size_t n = strcspn(list, seps);

		mark_controller(c, list, n);
		list += n;
		list += strspn(list, seps);
	}
}

static bool v2_has_controllers(const char *controllers_path)
{
	_cleanup_fclose_ FILE *f = fopen(controllers_path, "re");
	struct needed_controllers c = { 0 };
	char line[1024];

	if (!f || !fgets(line, sizeof(line), f))
		return false;
	mark_list(&c, line, " \n");
	return c.memory && c.cpu && c.pids;
}

/* mountinfo: "36 35 98:0 /root /mnt opts [optional...] - fstype source superopts".
 * A v1 hierarchy is fstype "cgroup" with its controllers in superopts. */
static bool v1_has_controllers(const char *mountinfo_path)
{
	_cleanup_fclose_ FILE *f = fopen(mountinfo_path, "re");
	_cleanup_free_ char *line = NULL;
	struct needed_controllers c = { 0 };
	size_t cap = 0;

	if (!f)
		return false;
	while (getline(&line, &cap, f) > 0) {
		char fstype[64], source[256], superopts[512];
		const char *tail = strstr(line, " - ");

		if (!tail || sscanf(tail + 3, "%63s %255s %511s", fstype, source, superopts) != 3)
			continue;
		if (strcmp(fstype, "cgroup") == 0)
			mark_list(&c, superopts, ",");
	}
	return c.memory && c.cpu && c.pids;
}

const char *hostd_cgroup_detect(const char *controllers_path, const char *mountinfo_path)
{
	if (v2_has_controllers(controllers_path))
		return "v2";
	if (v1_has_controllers(mountinfo_path))
		return "v1";
	return "none";
}

int hostd_parse_version(const char *output, const char *prefix, char *buf, size_t len)
{
	size_t plen = strlen(prefix), n;
	const char *v;

	if (len)
		buf[0] = '\0';
	if (!output || strncmp(output, prefix, plen) != 0)
		return -1;
	v = output + plen;
	/* A version token: digits first, then what version strings use. */
	if (*v < '0' || *v > '9')
		return -1;
	n = strspn(v, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.+~_-");
	if (n == 0 || n >= len)
		return -1;
	memcpy(buf, v, n);
	buf[n] = '\0';
	return 0;
}

/* `binary --version` -> out ("" when missing or unrecognised, logged). */
static void probe_version(const char *vmm, const char *binary, const char *prefix, char *out,
			  size_t outlen)
{
	char output[VERSION_OUTPUT_MAX];
	char qpath[VLOG_STR_MAX];
	char *argv[] = { (char *)binary, "--version", NULL };
	struct vmlet_err err;
	size_t len;
	int status;

	out[0] = '\0';
	vlog_str(binary, qpath, sizeof(qpath));
	/* Never exec something found relative to hostd's cwd. */
	if (binary[0] != '/') {
		vlog(VLOG_WARN, "vmm_binary_missing", "vmm=%s path=%s reason=\"not an absolute path\"",
		     vmm, qpath);
		return;
	}
	if (access(binary, X_OK) < 0) {
		vlog(VLOG_WARN, "vmm_binary_missing", "vmm=%s path=%s errno=%d reason=\"%s\"", vmm,
		     qpath, errno, strerror(errno));
		return;
	}
	if (hostd_child_capture(binary, argv, VERSION_TIMEOUT_MS, output, sizeof(output), &len,
				&status, &err) < 0) {
		vlog(VLOG_WARN, "vmm_version_failed", "vmm=%s path=%s errno=%d reason=\"%s\"", vmm,
		     qpath, err.sys_errno, err.msg);
		return;
	}
	if (hostd_parse_version(output, prefix, out, outlen) < 0) {
		char first[VLOG_STR_MAX];

		output[strcspn(output, "\n")] = '\0';
		vlog(VLOG_WARN, "vmm_version_unknown", "vmm=%s path=%s status=%d output=%s", vmm,
		     qpath, status, vlog_str(output, first, sizeof(first)));
		return;
	}
	if (status != 0)
		vlog(VLOG_WARN, "vmm_version_status", "vmm=%s path=%s status=%d version=%s", vmm,
		     qpath, status, out);
}

static bool executable_file(const char *path)
{
	struct stat st;

	return path[0] == '/' && stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
	       access(path, X_OK) == 0;
}

void hostd_facts_collect(const struct vmlet_config *cfg, struct hostd_facts *f)
{
	struct hostd_kvm_probe kvm;
	struct utsname u;

	memset(f, 0, sizeof(*f));
	snprintf(f->node_id, sizeof(f->node_id), "%s", cfg->node_id);
	f->production = cfg->production;
	snprintf(f->vmlet_version, sizeof(f->vmlet_version), "%s", VMLET_VERSION);
	snprintf(f->vmm_name, sizeof(f->vmm_name), "%s", cfg->vmm);

	if (uname(&u) == 0) {
		snprintf(f->hostname, sizeof(f->hostname), "%s", u.nodename);
		snprintf(f->arch, sizeof(f->arch), "%s", u.machine);
		snprintf(f->kernel_release, sizeof(f->kernel_release), "%s", u.release);
	} else {
		vlog(VLOG_WARN, "uname_failed", "errno=%d", errno);
	}

	snprintf(f->cgroup_version, sizeof(f->cgroup_version), "%s",
		 hostd_cgroup_detect("/sys/fs/cgroup/cgroup.controllers", "/proc/self/mountinfo"));

	hostd_kvm_probe("/dev/kvm", &kvm);
	f->kvm_usable = kvm.usable;
	snprintf(f->accel, sizeof(f->accel), "%s", kvm.vcpu_runs ? "kvm" : "tcg");
	if (kvm.detail[0])
		vlog(VLOG_INFO, "kvm_probe", "kvm_usable=%d accel=%s detail=\"%s\"", kvm.usable,
		     f->accel, kvm.detail);

	probe_version("qemu", cfg->qemu_binary, "QEMU emulator version ", f->qemu_version,
		      sizeof(f->qemu_version));
	if (cfg->firecracker_binary[0])
		probe_version("firecracker", cfg->firecracker_binary, "Firecracker v",
			      f->firecracker_version, sizeof(f->firecracker_version));
	f->jailer_available = cfg->jailer_binary[0] && executable_file(cfg->jailer_binary);

	if (strcmp(cfg->vmm, "firecracker") == 0)
		snprintf(f->vmm_version, sizeof(f->vmm_version), "%s", f->firecracker_version);
	else
		snprintf(f->vmm_version, sizeof(f->vmm_version), "%s", f->qemu_version);

	vlog(VLOG_INFO, "node_facts",
	     "node_id=%s arch=%s kernel=%s vcpus=%u mem_mib=%llu cgroup=%s kvm_usable=%d "
	     "accel=%s vmm=%s vmm_version=%s qemu=%s firecracker=%s jailer=%d",
	     f->node_id, f->arch, f->kernel_release, hostd_facts_vcpus(),
	     (unsigned long long)hostd_facts_mem_mib(), f->cgroup_version, f->kvm_usable,
	     f->accel, f->vmm_name, f->vmm_version[0] ? f->vmm_version : "\"\"",
	     f->qemu_version[0] ? f->qemu_version : "\"\"",
	     f->firecracker_version[0] ? f->firecracker_version : "\"\"", f->jailer_available);
}
