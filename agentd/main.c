/* vmlet-agentd: the network-facing half of vmlet.
 *
 * Startup order is the security argument, so it is spelled out here:
 *   1. config;
 *   2. the TLS key (root-only file) and both listeners, while still root;
 *   3. the privilege drop (user, no capabilities, no_new_privs) BEFORE any
 *      thread exists, so NNG's threads are born unprivileged;
 *   4. NNG (threads start) dialling hostd without blocking;
 *   5. the event loop's descriptors, then the seccomp allowlist (TSYNC);
 *   6. serve until SIGINT/SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentd/handlers.h"
#include "agentd/hostclient.h"
#include "agentd/listen.h"
#include "agentd/local.h"
#include "agentd/loop.h"
#include "agentd/privdrop.h"
#include "agentd/reconcile.h"
#include "agentd/tls.h"
#include "shared/config.h"
#include "shared/daemon.h"
#include "shared/log.h"

static struct vmlet_config cfg;

int main(int argc, char **argv)
{
	const char *cli_config;
	struct agentd_tls *tls = NULL;
	struct agentd_hostclient *hc = NULL;
	struct agentd_loop *loop = NULL;
	struct agentd_reconciler *rec = NULL;
	struct agentd_local_listener local = { .fd = -1 };
	int tcp_fd = -1, rc = 1;
	char tcp_addr[128] = "", hostd_sock[PATH_MAX], url[PATH_MAX + 8], pbuf[VLOG_STR_MAX];
	struct vmlet_err err;

	if (vmlet_daemon_args("vmlet-agentd", false, argc, argv, &cli_config, &rc) < 0)
		return rc;
	vmlet_err_clear(&err);
	/* Peers that vanish must not kill us with SIGPIPE; SIGINT/SIGTERM are
	 * blocked now, before any thread exists, and read from a signalfd. */
	signal(SIGPIPE, SIG_IGN);
	if (agentd_loop_block_signals(&err) < 0)
		return vmlet_daemon_fail("startup_failed", &err);

	if (vmlet_daemon_load_config(cli_config, &cfg, &err) < 0)
		return vmlet_daemon_fail("config_failed", &err);

	if (agentd_listen_enabled(cfg.listen)) {
		if (agentd_tls_init(&cfg, &tls, &err) < 0) {
			rc = vmlet_daemon_fail("tls_init_failed", &err);
			goto out;
		}
		vlog(VLOG_INFO, "tls_ready", "ca=%s cert=%s coordinators=%zu", cfg.tls_ca,
		     cfg.tls_cert, cfg.n_coordinators);
		if (agentd_listen_tcp(cfg.listen, &tcp_fd, tcp_addr, sizeof(tcp_addr), &err) < 0) {
			rc = vmlet_daemon_fail("listen_failed", &err);
			goto out;
		}
		vlog(VLOG_INFO, "listening", "transport=tls addr=%s", tcp_addr);
	} else {
		vlog(VLOG_INFO, "tls_disabled", "reason=\"agentd.listen is off\"");
	}
	if (agentd_local_listen(&cfg, &local, &err) < 0) {
		rc = vmlet_daemon_fail("listen_failed", &err);
		goto out;
	}
	vlog(VLOG_INFO, "listening", "transport=local path=%s mode=0660 admin_group=%s", local.path,
	     cfg.admin_group);

	if (agentd_drop_privileges(&cfg, &err) < 0) {
		rc = vmlet_daemon_fail("privdrop_failed", &err);
		goto out;
	}
	vlog(VLOG_INFO, "privileges_dropped", "uid=%u gid=%u", (unsigned)getuid(), (unsigned)getgid());

	if (vmlet_config_hostd_socket(&cfg, hostd_sock, sizeof(hostd_sock)) < 0) {
		vmlet_err_set(&err, VMLET_E_INVALID, 0, "paths.hostd_socket_dir: path too long");
		rc = vmlet_daemon_fail("startup_failed", &err);
		goto out;
	}
	snprintf(url, sizeof(url), "ipc://%s", hostd_sock);
	{
		struct agentd_hostclient_opts ho = {
			.url = url,
			.recv_max = cfg.max_frame,
			.timeout_ms = cfg.hostd_timeout_ms,
			/* One request per connection, plus room for requests of
			 * connections that closed while hostd was still busy. */
			.max_in_flight = cfg.max_connections * 2,
		};
		if (agentd_hostclient_open(&ho, &hc, &err) < 0) {
			rc = vmlet_daemon_fail("hostd_client_failed", &err);
			goto out;
		}
	}
	vlog(VLOG_INFO, "hostd_dialing", "url=%s timeout_ms=%u", url, cfg.hostd_timeout_ms);

	if (agentd_loop_new(&cfg, tls, hc, &loop, &err) < 0 ||
	    (tcp_fd >= 0 && agentd_loop_add_listener(loop, tcp_fd, AGENTD_TRANSPORT_TLS, &err) < 0) ||
	    agentd_loop_add_listener(loop, local.fd, AGENTD_TRANSPORT_LOCAL, &err) < 0 ||
	    agentd_loop_watch_signals(loop, &err) < 0) {
		rc = vmlet_daemon_fail("startup_failed", &err);
		goto out;
	}
	{
		/* The persisted desired state is read (and checked) here; the
		 * first pass runs a second after start, once NNG has had a
		 * chance to reach hostd, then every reconcile_interval_s.
		 * Signed states verify against the public keys in
		 * trusted_keys_dir (read at each check, so a key can be added
		 * or revoked without a restart). */
		struct agentd_reconciler_opts ro = {
			.node_id = cfg.node_id,
			.state_dir = cfg.agentd_state_dir,
			.keys_dir = cfg.trusted_keys_dir,
			.production = cfg.production,
			.max_len = cfg.max_frame,
			.hc = hc,
			.done = agentd_loop_reconcile_done,
			.done_arg = loop,
		};
		if (agentd_reconciler_new(&ro, &rec, &err) < 0 ||
		    agentd_loop_attach_reconciler(loop, rec, 1, cfg.reconcile_interval_s, &err) < 0) {
			rc = vmlet_daemon_fail("startup_failed", &err);
			goto out;
		}
	}
	if (agentd_load_seccomp(&err) < 0) {
		rc = vmlet_daemon_fail("seccomp_failed", &err);
		goto out;
	}
	vlog(VLOG_INFO, "seccomp_loaded", NULL);
	vlog(VLOG_INFO, "ready", "max_connections=%u max_frame=%u rate_limit=%u rate_burst=%u",
	     cfg.max_connections, cfg.max_frame, cfg.rate_per_sec, cfg.rate_burst);

	if (agentd_loop_run(loop, &err) < 0) {
		rc = vmlet_daemon_fail("loop_failed", &err);
		goto out;
	}
	rc = 0;
out:
	vlog(VLOG_INFO, "shutdown", "rc=%d", rc);
	agentd_loop_free(loop);
	agentd_reconciler_free(rec);
	agentd_hostclient_close(hc);
	if (tcp_fd >= 0)
		close(tcp_fd);
	if (local.path[0] || local.fd >= 0) {
		vmlet_err_clear(&err);
		if (agentd_local_close(&local, &err) < 0)
			/* Expected after the drop: /run/vmlet belongs to root. */
			vlog(VLOG_WARN, "socket_unlink_failed", "path=%s error=%s", local.path,
			     vlog_str(err.msg, pbuf, sizeof(pbuf)));
		else
			vlog(VLOG_INFO, "local_socket_closed", "path=%s", cfg.local_socket);
	}
	agentd_tls_free(tls);
	return rc;
}
