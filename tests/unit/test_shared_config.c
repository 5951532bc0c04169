/* Config loader: defaults, a full file, every kind of bad value named with
 * file:line, [section] key and the reason, missing file, environment. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "shared/config.h"

/* Users that exist on every Debian system, so no test depends on the
 * vmlet user having been created. */
#define BASE "[node]\nid = n1\n[agentd]\nuser = root\ngroup = root\n"
#define BASE_LINES 5

static int load(const char *text, struct vmlet_config *cfg, struct vmlet_err *err)
{
	memset(err, 0, sizeof(*err));
	return vmlet_config_load_string(text, "t.conf", cfg, err);
}

static int setup_env(void **state)
{
	unsetenv("VMLET_PRODUCTION");
	unsetenv("VMLET_CONFIG");
	return 0;
}

static void defaults_match_header(void **state)
{
	struct vmlet_config c;

	vmlet_config_defaults(&c);
	assert_string_equal(c.node_id, "");
	assert_false(c.production);
	assert_string_equal(c.state_dir, "/var/lib/vmlet");
	assert_string_equal(c.agentd_state_dir, "/var/lib/vmlet/agentd");
	assert_string_equal(c.run_dir, "/run/vmlet");
	assert_string_equal(c.hostd_socket_dir, "/run/vmlet/hostd");
	assert_string_equal(c.agentd_user, "vmlet");
	assert_string_equal(c.agentd_group, "vmlet");
	assert_string_equal(c.listen, "0.0.0.0:7443");
	assert_string_equal(c.local_socket, "/run/vmlet/agentd.sock");
	assert_string_equal(c.admin_group, "vmlet-admin");
	assert_int_equal(c.max_frame, 1048576);
	assert_int_equal(c.max_connections, 256);
	assert_int_equal(c.handshake_timeout_ms, 5000);
	assert_int_equal(c.idle_timeout_ms, 60000);
	assert_int_equal(c.rate_per_sec, 50);
	assert_int_equal(c.rate_burst, 100);
	assert_int_equal(c.hostd_timeout_ms, 10000);
	assert_int_equal(c.reconcile_interval_s, 30);
	assert_string_equal(c.trusted_keys_dir, "/etc/vmlet/trusted-keys");
	assert_string_equal(c.tls_ca, "/etc/vmlet/certs/ca.pem");
	assert_string_equal(c.tls_cert, "/etc/vmlet/certs/node.pem");
	assert_string_equal(c.tls_key, "/etc/vmlet/certs/node.key");
	assert_string_equal(c.tls_crl, "");
	assert_int_equal(c.n_coordinators, 1);
	assert_string_equal(c.coordinators[0], "coordinator");
	assert_false(c.allow_root_peer);
	assert_string_equal(c.vmm, "qemu");
	assert_string_equal(c.qemu_binary, "/usr/bin/qemu-system-x86_64");
	assert_string_equal(c.firecracker_binary, "");
	assert_string_equal(c.jailer_binary, "");
	assert_string_equal(c.cgroup_root, "vmlet");
	assert_int_equal(c.hostd_workers, 4);
	assert_string_equal(c.accel, "auto");
	assert_string_equal(c.kvm_probe_image, "guest");
	assert_int_equal(c.vmm_overhead_mib, 96);
	assert_int_equal(c.instance_pids_max, 256);
	assert_int_equal(c.console_log_max, 1048576);
	assert_int_equal(c.uid_base, 200000);
	assert_int_equal(c.uid_count, 65536);
	assert_false(c.network);
	assert_string_equal(c.uplink, "");
	assert_string_equal(c.port_whitelist, "");
	assert_int_equal(c.agentd_uid, (uid_t)-1);
	assert_int_equal(c.admin_gid, (gid_t)-1);
}

static void minimal_file_keeps_defaults(void **state)
{
	struct vmlet_config c;
	struct vmlet_err e;

	assert_int_equal(load(BASE, &c, &e), 0);
	assert_string_equal(c.node_id, "n1");
	assert_int_equal(c.agentd_uid, 0);
	assert_int_equal(c.agentd_gid, 0);
	assert_int_equal(c.max_frame, 1048576);
	assert_string_equal(c.vmm, "qemu");
	assert_false(c.production);
}

static const char full_file[] =
	"; a full configuration, every key changed from its default\n"
	"# both comment styles\n"
	"[node]\n"
	"id = node-7\n"
	"production = no\n"
	"\n"
	"[paths]\n"
	"  state_dir = /srv/vmlet\n" /* indented keys are keys */
	"\tagentd_state_dir = /srv/vmlet/agentd\n"
	"run_dir = /run/v\n"
	"hostd_socket_dir = /run/v/h\n"
	"[agentd]\n"
	"user = nobody\n"
	"group = nogroup\n"
	"listen = [::1]:8443\n"
	"local_socket = /run/v/a.sock\n"
	"admin_group = root\n"
	"max_frame = 1024\n"
	"max_connections = 65536\n"
	"handshake_timeout_ms = 100\n"
	"idle_timeout_ms = 3600000\n"
	"rate_limit = 100000 ; inline comment\n"
	"rate_burst = 1000000\n"
	"hostd_timeout_ms = 2500\n"
	"reconcile_interval_s = 86400\n"
	"trusted_keys_dir = /etc/x/keys\n"
	"[tls]\r\n" /* CRLF */
	"ca = /etc/x/ca.pem\r\n"
	"cert = /etc/x/n.pem\n"
	"key = /etc/x/n.key\n"
	"crl = /etc/x/crl.pem\n"
	"coordinators = coord-a ,spiffe://example.org/coordinator,  c3\n"
	"[hostd]\n"
	"allow_root_peer = on\n"
	"vmm = firecracker\n"
	"qemu_binary = /opt/qemu\n"
	"firecracker_binary = /opt/fc\n"
	"jailer_binary = /opt/jailer\n"
	"cgroup_root = machine.slice/vmlet-1\n"
	"workers = 64\n"
	"accel = kvm\n"
	"kvm_probe_image = probe-1\n"
	"vmm_overhead_mib = 128\n"
	"instance_pids_max = 512\n"
	"console_log_max = 65536\n"
	"uid_base = 300000\n"
	"uid_count = 1000\n"
	"network = yes\n"
	"uplink = eth0.7\n"
	"port_whitelist = t-1:tcp:8080, t-2:udp:5000-5010\n";

static void full_file_sets_every_key(void **state)
{
	struct vmlet_config c;
	struct vmlet_err e;

	assert_int_equal(load(full_file, &c, &e), 0);
	assert_string_equal(c.node_id, "node-7");
	assert_false(c.production);
	assert_string_equal(c.state_dir, "/srv/vmlet");
	assert_string_equal(c.agentd_state_dir, "/srv/vmlet/agentd");
	assert_string_equal(c.run_dir, "/run/v");
	assert_string_equal(c.hostd_socket_dir, "/run/v/h");
	assert_string_equal(c.agentd_user, "nobody");
	assert_int_equal(c.agentd_uid, 65534);
	assert_int_equal(c.agentd_gid, 65534);
	assert_string_equal(c.listen, "[::1]:8443");
	assert_string_equal(c.local_socket, "/run/v/a.sock");
	assert_int_equal(c.admin_gid, 0);
	assert_int_equal(c.max_frame, 1024);
	assert_int_equal(c.max_connections, 65536);
	assert_int_equal(c.handshake_timeout_ms, 100);
	assert_int_equal(c.idle_timeout_ms, 3600000);
	assert_int_equal(c.rate_per_sec, 100000);
	assert_int_equal(c.rate_burst, 1000000);
	assert_int_equal(c.hostd_timeout_ms, 2500);
	assert_int_equal(c.reconcile_interval_s, 86400);
	assert_string_equal(c.trusted_keys_dir, "/etc/x/keys");
	assert_string_equal(c.tls_ca, "/etc/x/ca.pem");
	assert_string_equal(c.tls_cert, "/etc/x/n.pem");
	assert_string_equal(c.tls_key, "/etc/x/n.key");
	assert_string_equal(c.tls_crl, "/etc/x/crl.pem");
	assert_int_equal(c.n_coordinators, 3);
	assert_string_equal(c.coordinators[0], "coord-a");
	assert_string_equal(c.coordinators[1], "spiffe://example.org/coordinator");
	assert_string_equal(c.coordinators[2], "c3");
	assert_true(c.allow_root_peer);
	assert_string_equal(c.vmm, "firecracker");
	assert_string_equal(c.qemu_binary, "/opt/qemu");
	assert_string_equal(c.firecracker_binary, "/opt/fc");
	assert_string_equal(c.jailer_binary, "/opt/jailer");
	assert_string_equal(c.cgroup_root, "machine.slice/vmlet-1");
	assert_int_equal(c.hostd_workers, 64);
	assert_string_equal(c.accel, "kvm");
	assert_string_equal(c.kvm_probe_image, "probe-1");
	assert_int_equal(c.vmm_overhead_mib, 128);
	assert_int_equal(c.instance_pids_max, 512);
	assert_int_equal(c.console_log_max, 65536);
	assert_int_equal(c.uid_base, 300000);
	assert_int_equal(c.uid_count, 1000);
	assert_true(c.network);
	assert_string_equal(c.uplink, "eth0.7");
	assert_string_equal(c.port_whitelist, "t-1:tcp:8080, t-2:udp:5000-5010");

	char sock[128];
	assert_int_equal(vmlet_config_hostd_socket(&c, sock, sizeof(sock)), 0);
	assert_string_equal(sock, "/run/v/h/hostd.sock");
	assert_int_equal(vmlet_config_hostd_socket(&c, sock, 8), -1);
	assert_int_equal(errno, ENAMETOOLONG);
}

static void bool_words_and_listen_off(void **state)
{
	static const struct {
		const char *word;
		bool value;
	} words[] = { { "true", 1 }, { "yes", 1 }, { "on", 1 }, { "1", 1 },
		      { "false", 0 }, { "no", 0 }, { "off", 0 }, { "0", 0 } };
	struct vmlet_config c;
	struct vmlet_err e;
	char text[256];

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		snprintf(text, sizeof(text), BASE "[hostd]\nallow_root_peer = %s\n", words[i].word);
		assert_int_equal(load(text, &c, &e), 0);
		assert_int_equal(c.allow_root_peer, words[i].value);
	}
	assert_int_equal(load(BASE "listen = off\n", &c, &e), 0);
	assert_string_equal(c.listen, "");
	assert_int_equal(load(BASE "listen =\n", &c, &e), 0);
	assert_string_equal(c.listen, "");
}

/* One bad line appended after BASE (in its own [section]); the message
 * must name t.conf, the line, the section and key, and the reason. */
struct bad_case {
	const char *section;
	const char *line;
	const char *expect;
};

#define L "t.conf:7: "
static const struct bad_case bad_cases[] = {
	/* booleans */
	{ "node", "production = maybe", L "[node] production: \"maybe\" is not a boolean" },
	{ "hostd", "allow_root_peer = TRUE", L "[hostd] allow_root_peer: \"TRUE\" is not a boolean" },
	{ "hostd", "allow_root_peer =", L "[hostd] allow_root_peer: \"\" is not a boolean" },
	/* integers: strict decimal, full consumption, range */
	{ "agentd", "max_frame = abc", L "[agentd] max_frame: \"abc\" is not a decimal integer" },
	{ "agentd", "max_frame = -1", L "[agentd] max_frame: \"-1\" is not a decimal integer" },
	{ "agentd", "max_frame = +2048", L "[agentd] max_frame: \"+2048\" is not a decimal integer" },
	{ "agentd", "max_frame = 0x1000", L "[agentd] max_frame: \"0x1000\" is not a decimal integer" },
	{ "agentd", "max_frame = 4096k", L "[agentd] max_frame: \"4096k\" is not a decimal integer" },
	{ "agentd", "max_frame = 1e6", L "[agentd] max_frame: \"1e6\" is not a decimal integer" },
	{ "agentd", "max_frame = 2048 4096", L "[agentd] max_frame: \"2048 4096\" is not a decimal" },
	{ "agentd", "max_frame =", L "[agentd] max_frame: \"\" is not a decimal integer" },
	{ "agentd", "max_frame = 99999999999999999999999",
	  L "[agentd] max_frame: \"99999999999999999999999\" is out of range 1024..67108864" },
	{ "agentd", "max_frame = 4294968320", L "[agentd] max_frame: \"4294968320\" is out of range" },
	{ "agentd", "max_frame = 1023", L "[agentd] max_frame: \"1023\" is out of range 1024..67108864" },
	{ "agentd", "max_frame = 67108865", L "[agentd] max_frame: \"67108865\" is out of range" },
	{ "agentd", "max_connections = 0",
	  L "[agentd] max_connections: \"0\" is out of range 1..65536" },
	{ "agentd", "max_connections = 65537", L "[agentd] max_connections: \"65537\" is out of range" },
	{ "agentd", "handshake_timeout_ms = 99",
	  L "[agentd] handshake_timeout_ms: \"99\" is out of range 100..3600000" },
	{ "agentd", "idle_timeout_ms = 3600001",
	  L "[agentd] idle_timeout_ms: \"3600001\" is out of range 100..3600000" },
	{ "agentd", "hostd_timeout_ms = 0", L "[agentd] hostd_timeout_ms: \"0\" is out of range" },
	{ "agentd", "rate_limit = 0", L "[agentd] rate_limit: \"0\" is out of range 1..100000" },
	{ "agentd", "rate_limit = 100001", L "[agentd] rate_limit: \"100001\" is out of range" },
	{ "agentd", "rate_burst = 1000001",
	  L "[agentd] rate_burst: \"1000001\" is out of range 1..1000000" },
	{ "agentd", "trusted_keys_dir = keys", L "[agentd] trusted_keys_dir: \"keys\" is not an absolute path" },
	{ "agentd", "reconcile_interval_s = 86401",
	  L "[agentd] reconcile_interval_s: \"86401\" is out of range 1..86400" },
	{ "hostd", "workers = 65", L "[hostd] workers: \"65\" is out of range 1..64" },
	{ "hostd", "workers = 0", L "[hostd] workers: \"0\" is out of range 1..64" },
	/* paths */
	{ "paths", "state_dir = var/lib/vmlet",
	  L "[paths] state_dir: \"var/lib/vmlet\" is not an absolute path" },
	{ "paths", "run_dir = ../run", L "[paths] run_dir: \"../run\" is not an absolute path" },
	{ "paths", "agentd_state_dir =", L "[paths] agentd_state_dir: \"\" is not an absolute path" },
	{ "tls", "key = node.key", L "[tls] key: \"node.key\" is not an absolute path" },
	{ "tls", "crl = crl.pem", L "[tls] crl: \"crl.pem\" is not an absolute path" },
	{ "hostd", "qemu_binary = qemu-system-x86_64",
	  L "[hostd] qemu_binary: \"qemu-system-x86_64\" is not an absolute path" },
	{ "hostd", "jailer_binary = ./jailer", L "[hostd] jailer_binary: \"./jailer\" is not an abs" },
	{ "agentd",
	  "local_socket = /run/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock",
	  L "[agentd] local_socket: \"/run/aaaa" },
	{ "paths",
	  "hostd_socket_dir = /run/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "aaaaaaaaaaaaaaaaaaaaaaaa",
	  "is too long for a unix socket path (at most 96 bytes here" },
	{ "paths", "run_dir = /run/a\001b", L "[paths] run_dir: \"/run/a\\x01b\" contains a control" },
	/* ids and names */
	{ "node", "id = n2", L "[node] id: duplicate key (first set on line 2)" },
	{ "agentd", "user = daemon", L "[agentd] user: duplicate key (first set on line 4)" },
	{ "agentd", "admin_group = ../wheel",
	  L "[agentd] admin_group: \"../wheel\" is not a user or group name" },
	{ "agentd", "admin_group = -g", L "[agentd] admin_group: \"-g\" is not a user or group name" },
	{ "agentd", "admin_group = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	  L "[agentd] admin_group: \"aaaa" },
	/* listen */
	{ "agentd", "listen = 7443", L "[agentd] listen: \"7443\" is not HOST:PORT" },
	{ "agentd", "listen = 0.0.0.0:0", L "[agentd] listen: \"0.0.0.0:0\": port must be 1..65535" },
	{ "agentd", "listen = 0.0.0.0:65536", L "[agentd] listen: \"0.0.0.0:65536\": port must be" },
	{ "agentd", "listen = ::1:7443", L "[agentd] listen: \"::1:7443\" is not HOST:PORT" },
	{ "agentd", "listen = host:", L "[agentd] listen: \"host:\": port must be 1..65535" },
	/* coordinators */
	{ "tls", "coordinators = a,,b", L "[tls] coordinators: entry 2 is empty" },
	{ "tls", "coordinators = a,", L "[tls] coordinators: entry 2 is empty" },
	{ "tls", "coordinators =", L "[tls] coordinators: entry 1 is empty" },
	{ "tls", "coordinators = c1,c2,c3,c4,c5,c6,c7,c8,c9,c10,c11,c12,c13,c14,c15,c16,c17",
	  L "[tls] coordinators: more than 16 identities" },
	{ "tls",
	  "coordinators = spiffe://example.org/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	  L "[tls] coordinators: entry 1 is 128 bytes long, at most 127" },
	/* hostd */
	{ "hostd", "vmm = kvm", L "[hostd] vmm: \"kvm\" must be qemu or firecracker" },
	{ "hostd", "vmm = QEMU", L "[hostd] vmm: \"QEMU\" must be qemu or firecracker" },
	{ "hostd", "cgroup_root = ../escape", L "[hostd] cgroup_root: \"../escape\" must be a relative" },
	{ "hostd", "cgroup_root = /vmlet", L "[hostd] cgroup_root: \"/vmlet\" must be a relative" },
	{ "hostd", "cgroup_root = a//b", L "[hostd] cgroup_root: \"a//b\" must be a relative" },
	{ "hostd", "cgroup_root = a/./b", L "[hostd] cgroup_root: \"a/./b\" must be a relative" },
	{ "hostd", "cgroup_root =", L "[hostd] cgroup_root: \"\" must be a relative" },
	/* structure */
	{ "hostd", "vmm_binary = /usr/bin/qemu", L "[hostd] vmm_binary: unknown key" },
	{ "agentd", "Max_Frame = 2048", L "[agentd] Max_Frame: unknown key" },
	{ "hostd", "v\033[2Jmm = qemu", L "[hostd] v?[2Jmm: unknown key" },
	{ "n\xc3\xb6" "de", "id = n1", L "[n??de] id: unknown section" },
	{ "nodes", "id = n1", L "[nodes] id: unknown section" },
	{ " node ", "id = n1", L "[ node ] id: unknown section" },
	{ "hostd", "vmm", L "syntax error" },
	/* the lifecycle's keys */
	{ "hostd", "accel = hvf", L "[hostd] accel: \"hvf\" must be auto, tcg or kvm" },
	{ "hostd", "accel = KVM", L "[hostd] accel: \"KVM\" must be auto, tcg or kvm" },
	{ "hostd", "kvm_probe_image = ../guest", L "[hostd] kvm_probe_image: \"../guest\" is not an image name" },
	{ "hostd", "vmm_overhead_mib = 15", L "[hostd] vmm_overhead_mib: \"15\" is out of range" },
	{ "hostd", "instance_pids_max = 0", L "[hostd] instance_pids_max" },
	{ "hostd", "console_log_max = 100", L "[hostd] console_log_max" },
	{ "hostd", "uid_base = 1000", L "[hostd] uid_base" },
	{ "hostd", "uid_count = 0", L "[hostd] uid_count" },
	/* the network's keys */
	{ "hostd", "uplink = eth0/1", L "[hostd] uplink: \"eth0/1\" is not an interface name" },
	{ "hostd", "uplink = ..", L "[hostd] uplink: \"..\" is not an interface name" },
	{ "hostd", "uplink = abcdefghijklmnop", L "[hostd] uplink: \"abcdefghijklmnop\" is not an interface name" },
	{ "hostd", "port_whitelist = t1:tcp:80;rm", L "[hostd] port_whitelist: \"t1:tcp:80;rm\": character 10 is not allowed" },
	{ "hostd", "port_whitelist = T1:tcp:80", L "[hostd] port_whitelist: \"T1:tcp:80\": character 1 is not allowed" },
	{ "hostd", "[hostd", L "syntax error" },
	{ "node",
	  "id = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "aaaaaaaaaaaaaaaaaaaaaaaaa",
	  L "line is longer than" },
};

static void bad_values_are_named(void **state)
{
	struct vmlet_config c;
	struct vmlet_err e;
	char text[1024];

	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *b = &bad_cases[i];
		snprintf(text, sizeof(text), BASE "[%s]\n%s\n", b->section, b->line);
		int rc = load(text, &c, &e);
		if (rc != -1 || !strstr(e.msg, b->expect))
			fail_msg("case %zu (%s): rc=%d msg=\"%s\", expected \"%s\"", i, b->line, rc,
				 e.msg, b->expect);
		assert_int_equal(e.code, 400);
	}
}

static void bad_node_ids(void **state)
{
	static const char *const ids[] = { "Node1", "-n", "n-", "a/b", "..", "n_1", "nöde",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" /* 64 */ };
	struct vmlet_config c;
	struct vmlet_err e;
	char text[256], expect[160];

	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		snprintf(text, sizeof(text), "[agentd]\nuser = root\ngroup = root\n[node]\nid = %s\n",
			 ids[i]);
		snprintf(expect, sizeof(expect), "t.conf:5: [node] id: \"%s\" must match [a-z0-9-]{1,63} "
			 "without leading or trailing '-'",
			 ids[i]);
		assert_int_equal(load(text, &c, &e), -1);
		assert_string_equal(e.msg, expect);
	}
}

static void exact_messages(void **state)
{
	struct vmlet_config c;
	struct vmlet_err e;

	assert_int_equal(load(BASE "[agentd]\nmax_frame = 512\n", &c, &e), -1);
	assert_string_equal(e.msg, "t.conf:7: [agentd] max_frame: \"512\" is out of range 1024..67108864");
	assert_int_equal(load(BASE "[tls]\nca = ca.pem\n", &c, &e), -1);
	assert_string_equal(e.msg, "t.conf:7: [tls] ca: \"ca.pem\" is not an absolute path");
	assert_int_equal(load("id = n1\n", &c, &e), -1);
	assert_string_equal(e.msg, "t.conf:1: key outside any section");
}

static void node_id_required(void **state)
{
	struct vmlet_config c;
	struct vmlet_err e;

	assert_int_equal(load("[agentd]\nuser = root\ngroup = root\n", &c, &e), -1);
	assert_string_equal(e.msg, "t.conf: [node] id: required (this node's id)");
	assert_int_equal(load("", &c, &e), -1);
	assert_int_equal(load(BASE "[node]\n", &c, &e), 0);
}

static void users_and_groups_resolve(void **state)
{
	struct vmlet_config c;
	struct vmlet_err e;

	assert_int_equal(load("[node]\nid = n1\n[agentd]\nuser = no-such-user-vmlet\ngroup = root\n",
			      &c, &e), -1);
	assert_string_equal(e.msg, "t.conf:4: [agentd] user: no such user \"no-such-user-vmlet\"");
	assert_int_equal(load("[node]\nid = n1\n[agentd]\nuser = root\ngroup = no-such-group-x\n", &c,
			      &e), -1);
	assert_string_equal(e.msg, "t.conf:5: [agentd] group: no such group \"no-such-group-x\"");

	/* The admin group may be missing: then only root uses the local socket. */
	assert_int_equal(load(BASE "admin_group = no-such-group-x\n", &c, &e), 0);
	assert_int_equal(c.admin_gid, (gid_t)-1);
	assert_int_equal(load(BASE "admin_group = nogroup\n", &c, &e), 0);
	assert_int_equal(c.admin_gid, 65534);
}

static void firecracker_needs_binary(void **state)
{
	struct vmlet_config c;
	struct vmlet_err e;

	assert_int_equal(load(BASE "[hostd]\nvmm = firecracker\n", &c, &e), -1);
	assert_string_equal(e.msg, "t.conf: [hostd] firecracker_binary: required when vmm = firecracker");
}

static void production_from_env_and_file(void **state)
{
	struct vmlet_config c;
	struct vmlet_err e;

	assert_int_equal(load(BASE "[hostd]\nallow_root_peer = true\n", &c, &e), 0);
	assert_false(c.production);

	setenv("VMLET_PRODUCTION", "1", 1);
	assert_int_equal(load(BASE, &c, &e), 0);
	assert_true(c.production);
	/* the file cannot turn it back off */
	assert_int_equal(load(BASE "[node]\nproduction = false\n", &c, &e), 0);
	assert_true(c.production);
	assert_int_equal(load(BASE "[hostd]\nallow_root_peer = true\n", &c, &e), -1);
	assert_string_equal(e.msg,
			    "t.conf:7: [hostd] allow_root_peer: true is refused in production mode");

	setenv("VMLET_PRODUCTION", "0", 1);
	assert_int_equal(load(BASE, &c, &e), 0);
	assert_false(c.production);
	assert_int_equal(load(BASE "[node]\nproduction = yes\n[hostd]\nallow_root_peer = 1\n", &c, &e),
			 -1);
	assert_string_equal(e.msg,
			    "t.conf:9: [hostd] allow_root_peer: true is refused in production mode");

	setenv("VMLET_PRODUCTION", "yes", 1);
	assert_int_equal(load(BASE, &c, &e), -1);
	assert_string_equal(e.msg, "VMLET_PRODUCTION: \"yes\" must be 0 or 1");
	unsetenv("VMLET_PRODUCTION");
}

static void config_path_selection(void **state)
{
	assert_string_equal(vmlet_config_path(NULL), VMLET_DEFAULT_CONFIG);
	assert_string_equal(vmlet_config_path("/cli.conf"), "/cli.conf");
	setenv("VMLET_CONFIG", "/env.conf", 1);
	assert_string_equal(vmlet_config_path(NULL), "/env.conf");
	assert_string_equal(vmlet_config_path("/cli.conf"), "/cli.conf");
	setenv("VMLET_CONFIG", "", 1);
	assert_string_equal(vmlet_config_path(NULL), VMLET_DEFAULT_CONFIG);
	unsetenv("VMLET_CONFIG");
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static void load_from_file(void **state)
{
	char dir[] = "/tmp/vmlet-cfg-XXXXXX";
	char path[64], link[64];
	struct vmlet_config c;
	struct vmlet_err e;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/vmlet.conf", dir);
	snprintf(link, sizeof(link), "%s/link.conf", dir);

	/* missing file: names the path and the errno */
	memset(&e, 0, sizeof(e));
	assert_int_equal(vmlet_config_load(path, &c, &e), -1);
	assert_int_equal(e.sys_errno, ENOENT);
	assert_non_null(strstr(e.msg, path));
	assert_non_null(strstr(e.msg, "No such file or directory"));
	assert_int_equal(e.code, 404);

	write_file(path, BASE "[agentd]\nrate_limit = 0\n", 0644);
	assert_int_equal(vmlet_config_load(path, &c, &e), -1);
	char expect[160];
	snprintf(expect, sizeof(expect), "%s:7: [agentd] rate_limit: \"0\" is out of range 1..100000",
		 path);
	assert_string_equal(e.msg, expect);

	write_file(path, BASE "[agentd]\nrate_limit = 7\n", 0644);
	assert_int_equal(vmlet_config_load(path, &c, &e), 0);
	assert_int_equal(c.rate_per_sec, 7);

	/* VMLET_CONFIG picks the file */
	setenv("VMLET_CONFIG", path, 1);
	assert_int_equal(vmlet_config_load(vmlet_config_path(NULL), &c, &e), 0);
	assert_int_equal(c.rate_per_sec, 7);
	unsetenv("VMLET_CONFIG");

	/* a symlinked config is the admin's choice and is followed */
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(vmlet_config_load(link, &c, &e), 0);

	/* a file others can write is refused */
	assert_int_equal(chmod(path, 0666), 0);
	assert_int_equal(vmlet_config_load(path, &c, &e), -1);
	assert_non_null(strstr(e.msg, "mode 0666"));
	assert_int_equal(chmod(path, 0644), 0);

	/* a NUL byte is refused with its line */
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fwrite(BASE "x\0y\n", 1, sizeof(BASE) + 3, f);
	fclose(f);
	assert_int_equal(vmlet_config_load(path, &c, &e), -1);
	snprintf(expect, sizeof(expect), "%s:6: contains a NUL byte", path);
	assert_string_equal(e.msg, expect);

	/* a directory is not a config */
	assert_int_equal(vmlet_config_load(dir, &c, &e), -1);
	assert_non_null(strstr(e.msg, "not a regular file"));

	unlink(link);
	unlink(path);
	rmdir(dir);
}

/* deploy/vmlet.conf.example documents every key with its default: loaded
 * (with users that exist here), it must give exactly the defaults. */
static void example_config_is_the_defaults(void **state)
{
	FILE *f = fopen("deploy/vmlet.conf.example", "r");
	char text[16384], *p;
	size_t n;
	struct vmlet_config c, d;
	struct vmlet_err e;

	if (!f) {
		skip(); /* not run from the source tree */
		return;
	}
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	/* the vmlet user may not exist on this machine */
	assert_non_null(p = strstr(text, "\nuser = vmlet\n"));
	memcpy(p, "\nuser = root \n", 14);
	assert_non_null(p = strstr(text, "\ngroup = vmlet\n"));
	memcpy(p, "\ngroup = root \n", 15);
	assert_int_equal(load(text, &c, &e), 0);

	vmlet_config_defaults(&d);
	strcpy(d.node_id, c.node_id);
	assert_string_equal(c.agentd_user, "root");
	strcpy(d.agentd_user, "root");
	strcpy(d.agentd_group, "root");
	d.agentd_uid = c.agentd_uid;
	d.agentd_gid = c.agentd_gid;
	d.admin_gid = c.admin_gid;
	assert_memory_equal(&c, &d, sizeof(c));

	/* and it names every key */
	static const char *const keys[] = {
		"id", "production", "state_dir", "agentd_state_dir", "run_dir", "hostd_socket_dir",
		"user", "group", "listen", "local_socket", "admin_group", "max_frame",
		"max_connections", "handshake_timeout_ms", "idle_timeout_ms", "rate_limit",
		"rate_burst", "hostd_timeout_ms", "reconcile_interval_s", "trusted_keys_dir", "ca", "cert", "key", "crl",
		"coordinators", "allow_root_peer", "vmm", "qemu_binary", "firecracker_binary",
		"jailer_binary", "cgroup_root", "workers",
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char pat[64];
		snprintf(pat, sizeof(pat), "\n%s =", keys[i]);
		if (!strstr(text, pat))
			fail_msg("example does not set %s", keys[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults_match_header),
		cmocka_unit_test(minimal_file_keeps_defaults),
		cmocka_unit_test(full_file_sets_every_key),
		cmocka_unit_test(bool_words_and_listen_off),
		cmocka_unit_test(bad_values_are_named),
		cmocka_unit_test(bad_node_ids),
		cmocka_unit_test(exact_messages),
		cmocka_unit_test(node_id_required),
		cmocka_unit_test(users_and_groups_resolve),
		cmocka_unit_test(firecracker_needs_binary),
		cmocka_unit_test(production_from_env_and_file),
		cmocka_unit_test(config_path_selection),
		cmocka_unit_test(load_from_file),
		cmocka_unit_test(example_config_is_the_defaults),
	};
	return cmocka_run_group_tests(tests, setup_env, NULL);
}
