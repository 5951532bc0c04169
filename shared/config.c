/* System configuration loader (inih). Every key lives in one table that
 * says where it goes, how its value is parsed and what its default is;
 * vmlet_config_defaults() runs the defaults through the same parsers, so a
 * default can never be a value the parser would refuse.
 *
 * inih is fed through our own line reader, which numbers lines (this
 * build's handler gets no line number), strips leading blanks (so an
 * indented key is a key, never an inih continuation line), refuses lines
 * longer than inih's buffer (inih would silently split them) and stops
 * the parse at the first error. */
#include "shared/config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <ini.h>
#include <inttypes.h>
#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "shared/cleanup.h"
#include "shared/log.h"
#include "shared/safefile.h"
#include "shared/validate.h"

#define CONFIG_FILE_MAX (1024 * 1024)
#define WHY_LEN 256
#define QUOTE_LEN 96
#define HOSTD_SOCKET_NAME "hostd.sock"
/* user, group and cgroup names: the portable set [A-Za-z0-9._-] */
#define NAME_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"

struct key_def;
typedef int (*parse_fn)(const struct key_def *k, const char *value, struct vmlet_config *cfg,
			char *why, size_t whylen);

struct key_def {
	const char *section;
	const char *key;
	parse_fn parse;
	size_t offset; /* into struct vmlet_config */
	size_t size;   /* of that field */
	uint32_t min, max; /* integer keys */
	const char *def;   /* default, as written in the file; "" leaves the field empty */
};

#define FIELD_AT(cfg, k) ((char *)(cfg) + (k)->offset)

/* ---- value parsers ------------------------------------------------------- */

static const char *quote(const char *s, char *buf, size_t len)
{
	return vlog_str(s, buf, len);
}

static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* A string that fits its field and has no control characters. */
static int store_string(const struct key_def *k, const char *v, struct vmlet_config *cfg,
			char *why, size_t whylen)
{
	char q[QUOTE_LEN];
	size_t len = strlen(v);

	if (len >= k->size) {
		snprintf(why, whylen, "%s is %zu bytes long, at most %zu", quote(v, q, sizeof(q)),
			 len, k->size - 1);
		return -1;
	}
	if (has_control(v)) {
		snprintf(why, whylen, "%s contains a control character", quote(v, q, sizeof(q)));
		return -1;
	}
	memcpy(FIELD_AT(cfg, k), v, len + 1);
	return 0;
}

static int parse_id(const struct key_def *k, const char *v, struct vmlet_config *cfg, char *why,
		    size_t whylen)
{
	char q[QUOTE_LEN];

	if (!vmlet_id_ok(v)) {
		snprintf(why, whylen,
			 "%s must match [a-z0-9-]{1,63} without leading or trailing '-'",
			 quote(v, q, sizeof(q)));
		return -1;
	}
	return store_string(k, v, cfg, why, whylen);
}

struct bool_word {
	const char *word;
	bool value;
};

static const struct bool_word bool_words[] = {
	{ "true", true },  { "yes", true }, { "on", true },   { "1", true },
	{ "false", false }, { "no", false }, { "off", false }, { "0", false },
};

static int parse_bool(const struct key_def *k, const char *v, struct vmlet_config *cfg, char *why,
		      size_t whylen)
{
	char q[QUOTE_LEN];

	for (size_t i = 0; i < sizeof(bool_words) / sizeof(bool_words[0]); i++) {
		if (strcmp(v, bool_words[i].word) == 0) {
			*(bool *)FIELD_AT(cfg, k) = bool_words[i].value;
			return 0;
		}
	}
	snprintf(why, whylen, "%s is not a boolean (true/false, yes/no, on/off, 1/0)",
		 quote(v, q, sizeof(q)));
	return -1;
}

/* Decimal digits only: strtoul alone would take "-1", " 5", "+5", "0x10". */
static int parse_u32(const struct key_def *k, const char *v, struct vmlet_config *cfg, char *why,
		     size_t whylen)
{
	char q[QUOTE_LEN];
	unsigned long n;
	char *end;

	errno = 0;
	n = strtoul(v, &end, 10);
	if (v[0] < '0' || v[0] > '9' || *end != '\0') {
		snprintf(why, whylen, "%s is not a decimal integer", quote(v, q, sizeof(q)));
		return -1;
	}
	if (errno == ERANGE || n < k->min || n > k->max) {
		snprintf(why, whylen, "%s is out of range %" PRIu32 "..%" PRIu32,
			 quote(v, q, sizeof(q)), k->min, k->max);
		return -1;
	}
	*(uint32_t *)FIELD_AT(cfg, k) = (uint32_t)n;
	return 0;
}

static int check_absolute(const char *v, char *why, size_t whylen)
{
	char q[QUOTE_LEN];

	if (v[0] != '/') {
		snprintf(why, whylen, "%s is not an absolute path", quote(v, q, sizeof(q)));
		return -1;
	}
	return 0;
}

static int parse_path(const struct key_def *k, const char *v, struct vmlet_config *cfg, char *why,
		      size_t whylen)
{
	if (check_absolute(v, why, whylen) < 0)
		return -1;
	return store_string(k, v, cfg, why, whylen);
}

/* An absolute path, or empty for "not configured". */
static int parse_path_opt(const struct key_def *k, const char *v, struct vmlet_config *cfg,
			  char *why, size_t whylen)
{
	if (v[0] && check_absolute(v, why, whylen) < 0)
		return -1;
	return store_string(k, v, cfg, why, whylen);
}

/* A unix socket path must fit sockaddr_un.sun_path; k->max is the room
 * that has to stay free after it (a socket name appended to a directory). */
static int parse_socket_path(const struct key_def *k, const char *v, struct vmlet_config *cfg,
			     char *why, size_t whylen)
{
	char q[QUOTE_LEN];
	size_t room = sizeof(((struct sockaddr_un *)0)->sun_path) - 1 - k->max;

	if (check_absolute(v, why, whylen) < 0)
		return -1;
	if (strlen(v) > room) {
		snprintf(why, whylen, "%s is too long for a unix socket path (at most %zu bytes%s)",
			 quote(v, q, sizeof(q)), room,
			 k->max ? " here, \"/" HOSTD_SOCKET_NAME "\" is appended" : "");
		return -1;
	}
	return store_string(k, v, cfg, why, whylen);
}

/* User and group names: the portable set ([A-Za-z0-9._-], not starting with
 * '-'), so a name is never an option or a path. */
static int parse_name(const struct key_def *k, const char *v, struct vmlet_config *cfg,
		      char *why, size_t whylen)
{
	char q[QUOTE_LEN];
	size_t n = strspn(v, NAME_CHARS);

	if (!v[0] || v[n] != '\0' || v[0] == '-') {
		snprintf(why, whylen, "%s is not a user or group name ([A-Za-z0-9._-], not "
			 "starting with '-')", quote(v, q, sizeof(q)));
		return -1;
	}
	return store_string(k, v, cfg, why, whylen);
}

/* "host:port", "[v6]:port", or ""/"off" for no TLS listener (stored as ""). */
static int parse_listen(const struct key_def *k, const char *v, struct vmlet_config *cfg,
			char *why, size_t whylen)
{
	char q[QUOTE_LEN];
	const char *colon;
	unsigned long port;
	char *end;

	if (v[0] == '\0' || strcmp(v, "off") == 0)
		return store_string(k, "", cfg, why, whylen);
	colon = strrchr(v, ':');
	if (!colon || colon == v || strchr(v, ' ') ||
	    (v[0] == '[' && colon[-1] != ']') || (v[0] != '[' && strchr(v, ':') != colon)) {
		snprintf(why, whylen, "%s is not HOST:PORT, [IPV6]:PORT or \"off\"",
			 quote(v, q, sizeof(q)));
		return -1;
	}
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (colon[1] < '0' || colon[1] > '9' || *end || errno || port < 1 || port > 65535) {
		snprintf(why, whylen, "%s: port must be 1..65535", quote(v, q, sizeof(q)));
		return -1;
	}
	return store_string(k, v, cfg, why, whylen);
}

/* Comma-separated identities (certificate CN or URI SAN), blanks around
 * each trimmed; an empty entry is an error (it would match nothing, or
 * worse, a certificate without a CN). */
static int parse_coordinators(const struct key_def *k, const char *v, struct vmlet_config *cfg,
			      char *why, size_t whylen)
{
	char q[QUOTE_LEN];
	size_t n = 0;
	const char *p = v;

	if (has_control(v)) {
		snprintf(why, whylen, "%s contains a control character", quote(v, q, sizeof(q)));
		return -1;
	}
	for (;;) {
		const char *comma = strchr(p, ',');
		const char *e = comma ? comma : p + strlen(p);
		while (*p == ' ' || *p == '\t')
			p++;
		while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		size_t len = (size_t)(e - p);
		if (len == 0) {
			snprintf(why, whylen, "entry %zu is empty", n + 1);
			return -1;
		}
		if (n == VMLET_MAX_COORDINATORS) {
			snprintf(why, whylen, "more than %d identities", VMLET_MAX_COORDINATORS);
			return -1;
		}
		if (len >= sizeof(cfg->coordinators[0])) {
			snprintf(why, whylen, "entry %zu is %zu bytes long, at most %zu", n + 1, len,
				 sizeof(cfg->coordinators[0]) - 1);
			return -1;
		}
		memcpy(cfg->coordinators[n], p, len);
		cfg->coordinators[n][len] = '\0';
		n++;
		if (!comma)
			break;
		p = comma + 1;
	}
	cfg->n_coordinators = n;
	return 0;
}

/* How guests run: "tcg" (emulation, works everywhere), "kvm" (hardware
 * virtualisation; only where the host's KVM really runs the guest kernel,
 * which a /dev/kvm that opens does not prove: see MACHINE-NOTES), or
 * "auto": hostd boots kvm_probe_image under KVM at start and uses KVM only
 * if that guest reaches its readiness marker. */
static int parse_accel(const struct key_def *k, const char *v, struct vmlet_config *cfg,
		       char *why, size_t whylen)
{
	char q[QUOTE_LEN];

	if (strcmp(v, "tcg") != 0 && strcmp(v, "kvm") != 0 && strcmp(v, "auto") != 0) {
		snprintf(why, whylen, "%s must be auto, tcg or kvm", quote(v, q, sizeof(q)));
		return -1;
	}
	return store_string(k, v, cfg, why, whylen);
}

/* An image name of the image store (an id), or empty. */
static int parse_image_opt(const struct key_def *k, const char *v, struct vmlet_config *cfg,
			   char *why, size_t whylen)
{
	char q[QUOTE_LEN];

	if (v[0] && !vmlet_id_ok(v)) {
		snprintf(why, whylen, "%s is not an image name ([a-z0-9-]{1,63})",
			 quote(v, q, sizeof(q)));
		return -1;
	}
	return store_string(k, v, cfg, why, whylen);
}

static int parse_vmm(const struct key_def *k, const char *v, struct vmlet_config *cfg, char *why,
		     size_t whylen)
{
	char q[QUOTE_LEN];

	if (strcmp(v, "qemu") != 0 && strcmp(v, "firecracker") != 0) {
		snprintf(why, whylen, "%s must be qemu or firecracker", quote(v, q, sizeof(q)));
		return -1;
	}
	return store_string(k, v, cfg, why, whylen);
}

/* A path below the cgroup mount, relative: components of [A-Za-z0-9._-],
 * none "." or "..", so hostd can join it to the mount point as is. */
static int parse_cgroup_root(const struct key_def *k, const char *v, struct vmlet_config *cfg,
			     char *why, size_t whylen)
{
	char q[QUOTE_LEN];
	const char *p = v;

	for (;;) {
		size_t n = strspn(p, NAME_CHARS);
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.') ||
		    (p[n] != '\0' && p[n] != '/')) {
			snprintf(why, whylen,
				 "%s must be a relative cgroup path of [A-Za-z0-9._-] names "
				 "(no \".\", \"..\", or empty names)",
				 quote(v, q, sizeof(q)));
			return -1;
		}
		if (p[n] == '\0')
			break;
		p += n + 1;
	}
	return store_string(k, v, cfg, why, whylen);
}

/* A network interface name (IFNAMSIZ, what the kernel accepts: no '/',
 * ':', blank, not "." or ".."), or empty. */
static int parse_ifname_opt(const struct key_def *k, const char *v, struct vmlet_config *cfg,
			    char *why, size_t whylen)
{
	char q[QUOTE_LEN];

	if (v[0] && (strlen(v) >= k->size || strspn(v, NAME_CHARS) != strlen(v) ||
		     strcmp(v, ".") == 0 || strcmp(v, "..") == 0)) {
		snprintf(why, whylen, "%s is not an interface name (1..%zu of [A-Za-z0-9._-])",
			 quote(v, q, sizeof(q)), k->size - 1);
		return -1;
	}
	return store_string(k, v, cfg, why, whylen);
}

/* The port whitelist's characters; its grammar is hostd's (nft.h), checked
 * when hostd starts, since shared/ does not link hostd/. */
#define WHITELIST_CHARS "abcdefghijklmnopqrstuvwxyz0123456789-:, \t"

static int parse_port_whitelist(const struct key_def *k, const char *v,
				struct vmlet_config *cfg, char *why, size_t whylen)
{
	char q[QUOTE_LEN];
	size_t bad = strspn(v, WHITELIST_CHARS);

	if (v[bad]) {
		snprintf(why, whylen,
			 "%s: character %zu is not allowed (entries tenant:tcp|udp:port[-port] "
			 "separated by commas or blanks)",
			 quote(v, q, sizeof(q)), bad + 1);
		return -1;
	}
	return store_string(k, v, cfg, why, whylen);
}

/* ---- the key table ------------------------------------------------------- */

#define FIELD(f) offsetof(struct vmlet_config, f), sizeof(((struct vmlet_config *)0)->f)
#define TIMEOUT_MS 100, 3600000

static const struct key_def keys[] = {
	{ "node", "id", parse_id, FIELD(node_id), 0, 0, "" },
	{ "node", "production", parse_bool, FIELD(production), 0, 0, "false" },

	{ "paths", "state_dir", parse_path, FIELD(state_dir), 0, 0, "/var/lib/vmlet" },
	{ "paths", "agentd_state_dir", parse_path, FIELD(agentd_state_dir), 0, 0,
	  "/var/lib/vmlet/agentd" },
	{ "paths", "run_dir", parse_path, FIELD(run_dir), 0, 0, "/run/vmlet" },
	{ "paths", "hostd_socket_dir", parse_socket_path, FIELD(hostd_socket_dir), 0,
	  sizeof("/" HOSTD_SOCKET_NAME) - 1, "/run/vmlet/hostd" },

	{ "agentd", "user", parse_name, FIELD(agentd_user), 0, 0, "vmlet" },
	{ "agentd", "group", parse_name, FIELD(agentd_group), 0, 0, "vmlet" },
	{ "agentd", "listen", parse_listen, FIELD(listen), 0, 0, "0.0.0.0:7443" },
	{ "agentd", "local_socket", parse_socket_path, FIELD(local_socket), 0, 0,
	  "/run/vmlet/agentd.sock" },
	{ "agentd", "admin_group", parse_name, FIELD(admin_group), 0, 0, "vmlet-admin" },
	{ "agentd", "max_frame", parse_u32, FIELD(max_frame), 1024, 67108864, "1048576" },
	{ "agentd", "max_connections", parse_u32, FIELD(max_connections), 1, 65536, "256" },
	{ "agentd", "handshake_timeout_ms", parse_u32, FIELD(handshake_timeout_ms), TIMEOUT_MS,
	  "5000" },
	{ "agentd", "idle_timeout_ms", parse_u32, FIELD(idle_timeout_ms), TIMEOUT_MS, "60000" },
	{ "agentd", "rate_limit", parse_u32, FIELD(rate_per_sec), 1, 100000, "50" },
	{ "agentd", "rate_burst", parse_u32, FIELD(rate_burst), 1, 1000000, "100" },
	{ "agentd", "hostd_timeout_ms", parse_u32, FIELD(hostd_timeout_ms), TIMEOUT_MS, "10000" },
	{ "agentd", "reconcile_interval_s", parse_u32, FIELD(reconcile_interval_s), 1, 86400,
	  "30" },
	{ "agentd", "trusted_keys_dir", parse_path, FIELD(trusted_keys_dir), 0, 0,
	  "/etc/vmlet/trusted-keys" },

	{ "tls", "ca", parse_path, FIELD(tls_ca), 0, 0, "/etc/vmlet/certs/ca.pem" },
	{ "tls", "cert", parse_path, FIELD(tls_cert), 0, 0, "/etc/vmlet/certs/node.pem" },
	{ "tls", "key", parse_path, FIELD(tls_key), 0, 0, "/etc/vmlet/certs/node.key" },
	{ "tls", "crl", parse_path_opt, FIELD(tls_crl), 0, 0, "" },
	{ "tls", "coordinators", parse_coordinators, FIELD(coordinators), 0, 0, "coordinator" },

	{ "hostd", "allow_root_peer", parse_bool, FIELD(allow_root_peer), 0, 0, "false" },
	{ "hostd", "vmm", parse_vmm, FIELD(vmm), 0, 0, "qemu" },
	{ "hostd", "qemu_binary", parse_path, FIELD(qemu_binary), 0, 0,
	  "/usr/bin/qemu-system-x86_64" },
	{ "hostd", "firecracker_binary", parse_path_opt, FIELD(firecracker_binary), 0, 0, "" },
	{ "hostd", "jailer_binary", parse_path_opt, FIELD(jailer_binary), 0, 0, "" },
	{ "hostd", "cgroup_root", parse_cgroup_root, FIELD(cgroup_root), 0, 0, "vmlet" },
	{ "hostd", "workers", parse_u32, FIELD(hostd_workers), 1, 64, "4" },
	{ "hostd", "accel", parse_accel, FIELD(accel), 0, 0, "auto" },
	{ "hostd", "kvm_probe_image", parse_image_opt, FIELD(kvm_probe_image), 0, 0, "guest" },
	{ "hostd", "vmm_overhead_mib", parse_u32, FIELD(vmm_overhead_mib), 16, 4096, "96" },
	{ "hostd", "instance_pids_max", parse_u32, FIELD(instance_pids_max), 16, 65536, "256" },
	{ "hostd", "console_log_max", parse_u32, FIELD(console_log_max), 4096, 1073741824,
	  "1048576" },
	{ "hostd", "uid_base", parse_u32, FIELD(uid_base), 65536, 4000000000u, "200000" },
	{ "hostd", "uid_count", parse_u32, FIELD(uid_count), 1, 1000000, "65536" },
	{ "hostd", "network", parse_bool, FIELD(network), 0, 0, "false" },
	{ "hostd", "uplink", parse_ifname_opt, FIELD(uplink), 0, 0, "" },
	{ "hostd", "port_whitelist", parse_port_whitelist, FIELD(port_whitelist), 0, 0, "" },
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const char *const sections[] = { "node", "paths", "agentd", "tls", "hostd" };

static const struct key_def *find_key(const char *section, const char *key)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].key, key) == 0)
			return &keys[i];
	return NULL;
}

static size_t key_index(const char *section, const char *key)
{
	const struct key_def *k = find_key(section, key);
	return k ? (size_t)(k - keys) : NKEYS;
}

static bool known_section(const char *section)
{
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
		if (strcmp(sections[i], section) == 0)
			return true;
	return false;
}

void vmlet_config_defaults(struct vmlet_config *cfg)
{
	char why[WHY_LEN];

	memset(cfg, 0, sizeof(*cfg));
	/* Cannot fail: the unit test checks every default parses to itself. */
	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].def[0])
			keys[i].parse(&keys[i], keys[i].def, cfg, why, sizeof(why));
	cfg->agentd_uid = (uid_t)-1;
	cfg->agentd_gid = (gid_t)-1;
	cfg->admin_gid = (gid_t)-1;
}

const char *vmlet_config_path(const char *cli_path)
{
	const char *env;

	if (cli_path && cli_path[0])
		return cli_path;
	/* secure_getenv: a set-id wrapper must never let its caller pick the
	 * file that decides uids and listeners. */
	env = secure_getenv("VMLET_CONFIG");
	if (env && env[0])
		return env;
	return VMLET_DEFAULT_CONFIG;
}

int vmlet_config_hostd_socket(const struct vmlet_config *cfg, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/" HOSTD_SOCKET_NAME, cfg->hostd_socket_dir);

	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* ---- parsing ------------------------------------------------------------- */

struct parse_ctx {
	struct vmlet_config *cfg;
	const char *name;      /* the file name, for messages */
	const char *next;      /* unread input */
	unsigned line;         /* number of the line inih is working on */
	unsigned set_at[NKEYS]; /* line that set each key, 0 = not set */
	bool failed;
	struct vmlet_err *err;
};

/* Section and key names come from the file as written: show them with
 * controls and non-ASCII bytes replaced, cut to a sane length, so an error
 * message cannot carry terminal escapes into a log or a terminal. */
static const char *printable(const char *s, char *buf, size_t len)
{
	size_t i;

	for (i = 0; s[i] && i + 1 < len; i++)
		buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	buf[i] = '\0';
	return buf;
}

static void ctx_fail(struct parse_ctx *c, const char *section, const char *key, const char *why)
{
	char sec[64], name[64];

	if (c->failed)
		return;
	c->failed = true;
	if (key)
		vmlet_err_set(c->err, VMLET_E_INVALID, 0, "%s:%u: [%s] %s: %s", c->name, c->line,
			      printable(section, sec, sizeof(sec)), printable(key, name, sizeof(name)),
			      why);
	else
		vmlet_err_set(c->err, VMLET_E_INVALID, 0, "%s:%u: %s", c->name, c->line, why);
}

static char *read_line(char *buf, int size, void *stream)
{
	struct parse_ctx *c = stream;
	const char *p = c->next;
	size_t len, skip;

	if (c->failed || !*p)
		return NULL;
	c->line++;
	len = strcspn(p, "\n");
	c->next = p[len] ? p + len + 1 : p + len;
	skip = strspn(p, " \t");
	if (skip > len)
		skip = len;
	if (len - skip > (size_t)size - 2) {
		char why[WHY_LEN];
		snprintf(why, sizeof(why), "line is longer than %d bytes", size - 2);
		ctx_fail(c, NULL, NULL, why);
		return NULL;
	}
	memcpy(buf, p + skip, len - skip);
	buf[len - skip] = '\n';
	buf[len - skip + 1] = '\0';
	return buf;
}

static int on_key(void *user, const char *section, const char *key, const char *value)
{
	struct parse_ctx *c = user;
	char why[WHY_LEN];
	size_t i;

	if (c->failed)
		return 0;
	if (!section[0]) {
		ctx_fail(c, NULL, NULL, "key outside any section");
		return 0;
	}
	if (!known_section(section)) {
		ctx_fail(c, section, key, "unknown section (expected node, paths, agentd, tls, hostd)");
		return 0;
	}
	i = key_index(section, key);
	if (i == NKEYS) {
		ctx_fail(c, section, key, "unknown key");
		return 0;
	}
	if (c->set_at[i]) {
		snprintf(why, sizeof(why), "duplicate key (first set on line %u)", c->set_at[i]);
		ctx_fail(c, section, key, why);
		return 0;
	}
	c->set_at[i] = c->line;
	if (keys[i].parse(&keys[i], value, c->cfg, why, sizeof(why)) < 0) {
		ctx_fail(c, section, key, why);
		return 0;
	}
	return 1;
}

/* "FILE:LINE: [section] key: why" when the file set the key, else
 * "FILE: [section] key: why" (its default was used). */
static int fail_key(struct parse_ctx *c, const char *section, const char *key, int sys_errno,
		    const char *why)
{
	unsigned line = c->set_at[key_index(section, key)];

	if (line)
		return vmlet_err_set(c->err, VMLET_E_INVALID, sys_errno, "%s:%u: [%s] %s: %s",
				     c->name, line, section, key, why);
	return vmlet_err_set(c->err, VMLET_E_INVALID, sys_errno, "%s: [%s] %s: %s", c->name,
			     section, key, why);
}

enum id_db { ID_USER, ID_GROUP };

/* NAME's uid and primary gid (ID_USER) or gid (ID_GROUP; uid unused).
 * getpwnam_r/getgrnam_r want a buffer of unknown size: start at 16 KiB and
 * grow on ERANGE up to 1 MiB. -1 with *sys_errno 0 means no such name. */
static int lookup_id(enum id_db db, const char *name, uid_t *uid, gid_t *gid, int *sys_errno)
{
	size_t blen = 16384;
	bool found = false;
	int rc;

	for (;;) {
		_cleanup_free_ char *buf = malloc(blen);
		if (!buf) {
			*sys_errno = ENOMEM;
			return -1;
		}
		if (db == ID_USER) {
			struct passwd pw, *res = NULL;
			rc = getpwnam_r(name, &pw, buf, blen, &res);
			if (!rc && res) {
				found = true;
				*uid = pw.pw_uid;
				*gid = pw.pw_gid;
			}
		} else {
			struct group gr, *res = NULL;
			rc = getgrnam_r(name, &gr, buf, blen, &res);
			if (!rc && res) {
				found = true;
				*gid = gr.gr_gid;
			}
		}
		if (rc != ERANGE || blen >= (1u << 20))
			break;
		blen *= 4;
	}
	*sys_errno = rc;
	return found ? 0 : -1;
}

/* After the file: the environment, then checks that span keys. */
static int finish(struct parse_ctx *c)
{
	struct vmlet_config *cfg = c->cfg;
	const char *prod = getenv("VMLET_PRODUCTION");
	char q[QUOTE_LEN], why[WHY_LEN];
	gid_t primary;
	int e;

	if (!cfg->node_id[0])
		return fail_key(c, "node", "id", 0, "required (this node's id)");
	/* The environment can only make the node stricter, never less. */
	if (prod && prod[0]) {
		if (strcmp(prod, "1") == 0)
			cfg->production = true;
		else if (strcmp(prod, "0") != 0)
			return vmlet_err_set(c->err, VMLET_E_INVALID, 0,
					     "VMLET_PRODUCTION: %s must be 0 or 1",
					     quote(prod, q, sizeof(q)));
	}
	if (cfg->production && cfg->allow_root_peer)
		return fail_key(c, "hostd", "allow_root_peer", 0,
				"true is refused in production mode");
	if (strcmp(cfg->vmm, "firecracker") == 0 && !cfg->firecracker_binary[0])
		return fail_key(c, "hostd", "firecracker_binary", 0,
				"required when vmm = firecracker");
	if (lookup_id(ID_USER, cfg->agentd_user, &cfg->agentd_uid, &primary, &e) < 0) {
		snprintf(why, sizeof(why), "no such user %s%s%s", quote(cfg->agentd_user, q, sizeof(q)),
			 e ? ": " : "", e ? strerror(e) : "");
		return fail_key(c, "agentd", "user", e, why);
	}
	if (lookup_id(ID_GROUP, cfg->agentd_group, NULL, &cfg->agentd_gid, &e) < 0) {
		snprintf(why, sizeof(why), "no such group %s%s%s",
			 quote(cfg->agentd_group, q, sizeof(q)), e ? ": " : "", e ? strerror(e) : "");
		return fail_key(c, "agentd", "group", e, why);
	}
	/* A missing admin group is not an error: then only root may use the
	 * local socket. */
	if (lookup_id(ID_GROUP, cfg->admin_group, NULL, &cfg->admin_gid, &e) < 0)
		cfg->admin_gid = (gid_t)-1;
	return 0;
}

static int load_text(const char *text, const char *name, struct vmlet_config *cfg,
		     struct vmlet_err *err)
{
	struct parse_ctx c = { .cfg = cfg, .name = name, .next = text, .err = err };
	int rc;

	vmlet_config_defaults(cfg);
	rc = ini_parse_stream(read_line, &c, on_key, &c);
	if (c.failed)
		return -1;
	if (rc < 0)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "%s: parser out of memory", name);
	if (rc > 0)
		/* inih found a line that is neither a section, a key nor a comment */
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "%s:%d: syntax error: expected [section], key = value or a "
				     "comment",
				     name, rc);
	return finish(&c);
}

int vmlet_config_load_string(const char *text, const char *name, struct vmlet_config *cfg,
			     struct vmlet_err *err)
{
	return load_text(text ? text : "", name ? name : "(string)", cfg, err);
}

int vmlet_config_load(const char *path, struct vmlet_config *cfg, struct vmlet_err *err)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *text = NULL;
	struct stat st;
	size_t len;

	vmlet_config_defaults(cfg);
	/* The path may be a symlink (e.g. into a configuration store): it is
	 * the admin's choice. What it resolves to must be a regular file that
	 * only root (or the invoking user) can change. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return vmlet_err_sys(err, errno == ENOENT ? VMLET_E_NOT_FOUND : VMLET_E_INVALID,
				     "%s: cannot open config", path);
	if (fstat(fd, &st) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "%s: fstat", path);
	if (st.st_uid != 0 && st.st_uid != geteuid())
		return vmlet_err_set(err, VMLET_E_FORBIDDEN, 0,
				     "%s: owned by uid %d, must be owned by root", path,
				     (int)st.st_uid);
	if ((st.st_mode & S_IWOTH) || ((st.st_mode & S_IWGRP) && st.st_gid != 0))
		return vmlet_err_set(err, VMLET_E_FORBIDDEN, 0,
				     "%s: writable by group %d or others (mode %04o); only its "
				     "owner may write it",
				     path, (int)st.st_gid, (unsigned)(st.st_mode & 07777));
	if (vmlet_read_fd(fd, path, CONFIG_FILE_MAX, &text, &len, err) < 0)
		return -1;
	if (memchr(text, '\0', len)) {
		size_t off = (size_t)((char *)memchr(text, '\0', len) - text);
		unsigned line = 1;
		for (size_t i = 0; i < off; i++)
			line += text[i] == '\n';
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "%s:%u: contains a NUL byte", path,
				     line);
	}
	return load_text(text, path, cfg, err);
}
