/* System configuration: INI (inih), root-owned, default
 * /etc/vmlet/vmlet.conf; VMLET_CONFIG overrides the path (meant for root
 * wrappers and tests, moby-derp style). Unknown sections/keys and bad
 * values are errors that name file, line, section.key and the reason. */
#ifndef VMLET_CONFIG_H
#define VMLET_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "shared/err.h"

#define VMLET_DEFAULT_CONFIG "/etc/vmlet/vmlet.conf"
#define VMLET_MAX_COORDINATORS 16
#define VMLET_ID_MAX 64   /* 63 chars + NUL */
#define VMLET_NAME_MAX 64 /* user / group names */

struct vmlet_config {
	/* [node] */
	char node_id[VMLET_ID_MAX];       /* id = ... (required; validated as an id) */
	bool production;                  /* production = false; VMLET_PRODUCTION=1 forces true */

	/* [paths] */
	char state_dir[PATH_MAX];         /* state_dir = /var/lib/vmlet          (hostd registry) */
	char agentd_state_dir[PATH_MAX];  /* agentd_state_dir = /var/lib/vmlet/agentd */
	char run_dir[PATH_MAX];           /* run_dir = /run/vmlet */
	char hostd_socket_dir[PATH_MAX];  /* hostd_socket_dir = /run/vmlet/hostd (socket: <dir>/hostd.sock) */

	/* [agentd] */
	char agentd_user[VMLET_NAME_MAX]; /* user = vmlet   (resolved to agentd_uid/gid at load) */
	char agentd_group[VMLET_NAME_MAX];/* group = vmlet */
	uid_t agentd_uid;
	gid_t agentd_gid;
	char listen[128];                 /* listen = 0.0.0.0:7443 ("" or "off": no TLS listener) */
	char local_socket[PATH_MAX];      /* local_socket = /run/vmlet/agentd.sock */
	char admin_group[VMLET_NAME_MAX]; /* admin_group = vmlet-admin (may connect to local_socket) */
	gid_t admin_gid;                  /* resolved; (gid_t)-1 when the group does not exist */
	uint32_t max_frame;               /* max_frame = 1048576 (bytes, 1 KiB .. 64 MiB) */
	uint32_t max_connections;         /* max_connections = 256 */
	uint32_t handshake_timeout_ms;    /* handshake_timeout_ms = 5000 */
	uint32_t idle_timeout_ms;         /* idle_timeout_ms = 60000 */
	uint32_t rate_per_sec;            /* rate_limit = 50   (requests per second per connection) */
	uint32_t rate_burst;              /* rate_burst = 100 */
	uint32_t hostd_timeout_ms;        /* hostd_timeout_ms = 10000 */
	uint32_t reconcile_interval_s;    /* reconcile_interval_s = 30 */
	char trusted_keys_dir[PATH_MAX];  /* trusted_keys_dir = /etc/vmlet/trusted-keys (Ed25519 <key_id>.pub
	                                   * files that may sign desired states; root-owned) */

	/* [tls] */
	char tls_ca[PATH_MAX];            /* ca = /etc/vmlet/certs/ca.pem */
	char tls_cert[PATH_MAX];          /* cert = /etc/vmlet/certs/node.pem */
	char tls_key[PATH_MAX];           /* key = /etc/vmlet/certs/node.key */
	char tls_crl[PATH_MAX];           /* crl = (empty: none) */
	char coordinators[VMLET_MAX_COORDINATORS][128]; /* coordinators = coordinator, spiffe://... (CN or SAN URI) */
	size_t n_coordinators;

	/* [hostd] */
	bool allow_root_peer;             /* allow_root_peer = false (tests only; refused in production) */
	char vmm[16];                     /* vmm = qemu | firecracker */
	char qemu_binary[PATH_MAX];       /* qemu_binary = /usr/bin/qemu-system-x86_64 */
	char firecracker_binary[PATH_MAX];/* firecracker_binary = (empty) */
	char jailer_binary[PATH_MAX];     /* jailer_binary = (empty) */
	char cgroup_root[128];            /* cgroup_root = vmlet */
	uint32_t hostd_workers;           /* workers = 4 (NNG contexts) */
	char accel[8];                    /* accel = auto | tcg | kvm (how guests run) */
	char kvm_probe_image[VMLET_ID_MAX];/* kvm_probe_image = guest (accel = auto boots it; "" : no probe, TCG) */
	uint32_t vmm_overhead_mib;        /* vmm_overhead_mib = 96 (cgroup memory = mem_mib + this) */
	uint32_t instance_pids_max;       /* instance_pids_max = 256 (pids.max of an instance) */
	uint32_t console_log_max;         /* console_log_max = 1048576 (bytes per console log file) */
	uint32_t uid_base;                /* uid_base = 200000 (per-instance uids: base..base+count-1) */
	uint32_t uid_count;               /* uid_count = 65536 */
	bool network;                     /* network = false (hostd builds tenant bridges, TAPs and nft rules) */
	char uplink[16];                  /* uplink = (empty: tenants get no egress, no masquerade) */
	/* port_whitelist = (empty: no tenant may publish a port). Entries
	 * "tenant:tcp|udp:port[-port]" (hostd/nft.h); the loader checks the
	 * characters, hostd parses it with nft_whitelist_parse at start and
	 * refuses to start naming this key when it is invalid. */
	char port_whitelist[1024];
};

/* Fill every field with its default. */
void vmlet_config_defaults(struct vmlet_config *cfg);

/* The path to load: cli_path if non-NULL, else $VMLET_CONFIG, else the default. */
const char *vmlet_config_path(const char *cli_path);

/* Defaults, then the file, then the environment (VMLET_PRODUCTION=1), then
 * cross-checks (node id valid, production forbids allow_root_peer, users
 * and groups resolve). -1 with err on any problem. */
int vmlet_config_load(const char *path, struct vmlet_config *cfg, struct vmlet_err *err);

/* Same, from a string (tests, fuzzing); name is used in messages. */
int vmlet_config_load_string(const char *text, const char *name, struct vmlet_config *cfg,
			     struct vmlet_err *err);

/* "<hostd_socket_dir>/hostd.sock" */
int vmlet_config_hostd_socket(const struct vmlet_config *cfg, char *buf, size_t len);

#endif
