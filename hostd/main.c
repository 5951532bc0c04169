/* vmlet-hostd: the root half of vmlet. Accepts a few narrow, re-validated
 * host operations from agentd over NNG and nothing else.
 *
 * Start-up order matters: node facts are collected first because their
 * probes fork (qemu --version, the KVM vCPU test) and NNG is not fork-safe;
 * SIGINT/SIGTERM are blocked before NNG starts its threads so that only
 * the main thread, in sigwaitinfo, ever sees them. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hostd/facts.h"
#include "hostd/hostd.h"
#include "hostd/lifecycle.h"
#include "hostd/ops_net.h"
#include "hostd/registry.h"
#include "hostd/server.h"
#include "shared/config.h"
#include "shared/daemon.h"
#include "shared/log.h"
#include "shared/version.h"

/* The facts' KVM check only proves that /dev/kvm creates a VM; under a
 * nested hypervisor a stock guest kernel can still fault (MACHINE-NOTES).
 * accel = auto therefore boots a real guest under KVM once, at start
 * (jailed like any VMM), and uses KVM only if it ran; accel = kvm trusts
 * the operator where /dev/kvm works; anything else is TCG. Reported in
 * NodeInfo.accel and used by every cold start (a restore keeps the accel
 * its snapshot was taken with). */
static void choose_accel(const struct vmlet_config *cfg, struct hostd_facts *facts,
			 struct hostd_runtime *runtime)
{
	const char *why = "configured tcg";
	bool kvm = false;
	struct vmlet_err err;

	if (strcmp(cfg->accel, "tcg") == 0) {
		why = "configured tcg";
	} else if (!facts->kvm_usable) {
		why = "/dev/kvm unusable";
	} else if (strcmp(cfg->accel, "kvm") == 0) {
		kvm = true;
		why = "configured kvm";
	} else if (!cfg->kvm_probe_image[0]) {
		why = "auto without kvm_probe_image";
	} else if (hostd_runtime_probe_kvm(runtime, cfg->kvm_probe_image, &kvm, &err) < 0) {
		vlog(VLOG_WARN, "kvm_probe_failed", "image=%s error=\"%s\"", cfg->kvm_probe_image,
		     err.msg);
		why = "probe could not run";
	} else {
		why = kvm ? "probe guest booted under kvm" : "probe guest failed under kvm";
	}
	snprintf(facts->accel, sizeof(facts->accel), "%s", kvm ? "kvm" : "tcg");
	vlog(VLOG_INFO, "accel_chosen", "accel=%s configured=%s reason=\"%s\"", facts->accel,
	     cfg->accel, why);
}

int main(int argc, char **argv)
{
	static struct vmlet_config cfg;
	static struct hostd_facts facts;
	struct hostd_registry registry = { .tenants_fd = -1 };
	struct hostd_server *server = NULL;
	struct hostd_env env = { &cfg, &facts, &registry, NULL, NULL };
	struct hostd_net *net = NULL;
	struct hostd_runtime *runtime = NULL;
	const char *cli_config;
	struct vmlet_err err;
	sigset_t stop_signals;
	siginfo_t si;
	int status, sig;

	if (vmlet_daemon_args("vmlet-hostd", true, argc, argv, &cli_config, &status) < 0)
		return status;
	if (geteuid() != 0) {
		vlog(VLOG_ERROR, "hostd_not_root",
		     "reason=\"vmlet-hostd performs host operations and must run as root\"");
		return 1;
	}

	if (vmlet_daemon_load_config(cli_config, &cfg, &err) < 0)
		return vmlet_daemon_fail("config_failed", &err);
	/* Every file and final directory hostd creates gets an explicit mode;
	 * the umask only shapes missing parents of the socket dir, which
	 * agentd must be able to traverse (vmlet_ensure_dir makes them 0755). */
	umask(022);
	/* The port whitelist's grammar is hostd's (shared/ cannot parse it):
	 * a bad one stops hostd here, naming the key. */
	if (cfg.network && hostd_net_open(&net, &cfg, &err) < 0)
		return vmlet_daemon_fail("config_failed", &err);
	env.net = net;

	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGINT);
	sigaddset(&stop_signals, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &stop_signals, NULL) < 0) {
		vmlet_err_sys(&err, VMLET_E_INTERNAL, "sigprocmask");
		return vmlet_daemon_fail("hostd_start_failed", &err);
	}
	signal(SIGPIPE, SIG_IGN);

	hostd_facts_collect(&cfg, &facts); /* forks: before any NNG call */

	if (hostd_registry_create(cfg.state_dir, &err) < 0 ||
	    hostd_registry_open(&registry, cfg.state_dir, &err) < 0)
		return vmlet_daemon_fail("hostd_start_failed", &err);
	if (hostd_runtime_open(&runtime, &cfg, &facts, &registry, &err) < 0) {
		hostd_registry_close(&registry);
		return vmlet_daemon_fail("hostd_start_failed", &err);
	}
	env.runtime = runtime;
	hostd_runtime_set_net(runtime, net);
	/* Before any request: the registry must describe what really runs. */
	if (hostd_runtime_recover(runtime, &err) < 0) {
		hostd_runtime_close(runtime);
		hostd_registry_close(&registry);
		return vmlet_daemon_fail("hostd_start_failed", &err);
	}
	choose_accel(&cfg, &facts, runtime);
	/* The kernel's links and rules must match the registry before the
	 * first request: what was lost (a reboot, an operator's nft flush) is
	 * rebuilt, what nothing accounts for is reaped. */
	if (net && hostd_net_restore(&env, &err) < 0) {
		hostd_runtime_close(runtime);
		hostd_registry_close(&registry);
		hostd_net_close(net);
		return vmlet_daemon_fail("hostd_start_failed", &err);
	}
	if (hostd_server_start(&server, &cfg, &env, &err) < 0) {
		hostd_net_close(net);
		hostd_runtime_close(runtime);
		hostd_registry_close(&registry);
		return vmlet_daemon_fail("hostd_start_failed", &err);
	}
	vlog(VLOG_INFO, "hostd_started", "node_id=%s version=%s", cfg.node_id, VMLET_VERSION);

	do
		sig = sigwaitinfo(&stop_signals, &si);
	while (sig < 0 && errno == EINTR);
	vlog(VLOG_INFO, "hostd_stopping", "signal=%s sender_pid=%d",
	     sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "?", sig > 0 ? (int)si.si_pid : 0);

	hostd_server_stop(server);
	/* VMMs keep running across a hostd restart; the next start re-adopts
	 * them. */
	hostd_runtime_close(runtime);
	hostd_registry_close(&registry);
	hostd_net_close(net);
	vlog(VLOG_INFO, "hostd_stopped", NULL);
	return 0;
}
