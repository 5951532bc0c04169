/* vmletctl's command line: global options, a command matched against the
 * command table (commands.h), its own options and operands. Parsing never
 * touches the network or the file system: every mistake it can see,
 * malformed ids included, is a usage error found here. */
#ifndef VMLET_CTL_ARGS_H
#define VMLET_CTL_ARGS_H

#include <stdbool.h>
#include <stddef.h>

#include "ctl/request.h"
#include "ctl/transport.h"
#include "shared/err.h"

#define CTL_DEFAULT_SOCKET "/run/vmlet/agentd.sock"
#define CTL_DEFAULT_TIMEOUT_MS 15000u
#define CTL_TIMEOUT_MAX_MS 3600000u
#define CTL_MAX_OPERANDS 4
#define CTL_MAX_OPT_VALUES 16 /* --san may repeat; VMLET_CERTS_MAX_SANS */

/* Every option vmletctl knows; each is global or belongs to commands. */
enum ctl_opt_id {
	CTL_O_SOCKET,
	CTL_O_CONNECT,
	CTL_O_CA,
	CTL_O_CERT,
	CTL_O_KEY,
	CTL_O_JSON,
	CTL_O_TIMEOUT,
	CTL_O_HELP,
	CTL_O_VERSION,
	CTL_O_FILE,
	CTL_O_DIR,
	CTL_O_NODE_ID,
	CTL_O_SAN,
	CTL_O_FORCE,
	CTL_O_SIGNING_KEY, /* sign --key FILE (the command's own --key, not TLS's) */
	CTL_O_OUT,         /* keys gen --out PREFIX, sign -o FILE */
	CTL_O_SIGN_KEY,    /* reconcile --sign-key FILE */
	CTL_O_KEY_ID,      /* reconcile --key-id ID */
	CTL_O_DEEP,        /* net verify --deep */
	CTL_O__COUNT
};

enum ctl_opt_kind {
	CTL_OPT_FLAG,  /* no value */
	CTL_OPT_VALUE, /* one value, at most once */
	CTL_OPT_LIST,  /* one value, may repeat */
};

/* A name may appear twice, once global and once for some commands
 * (--key: the TLS client key, and sign's signing key): after such a
 * command its own option wins. */
struct ctl_opt {
	const char *name; /* "--socket", "-f" */
	enum ctl_opt_id id;
	enum ctl_opt_kind kind;
	bool global;         /* accepted before or after any command */
	const char *metavar; /* "PATH"; NULL for flags */
	const char *help;
};

extern const struct ctl_opt ctl_opts[];
extern const size_t ctl_n_opts;
const struct ctl_opt *ctl_opt_by_id(enum ctl_opt_id id);

struct ctl_command;

struct ctl_invocation {
	const struct ctl_command *cmd; /* NULL for a bare --help / --version */
	bool json;
	bool help, version;
	struct ctl_target target;
	struct {
		const char *v[CTL_MAX_OPT_VALUES];
		size_t n;
	} opt[CTL_O__COUNT];
	const char *operands[CTL_MAX_OPERANDS];
	size_t n_operands;
	/* Filled by the command's check(): the ids, validated. */
	char tenant[CTL_ID_MAX + 1];
	char pool[CTL_ID_MAX + 1];
	char instance[CTL_INSTANCE_ID_MAX + 1];
};

/* Parse argv. env_socket is $VMLET_SOCKET (NULL or "" = unset). 0 on
 * success; -1 with err (code 400, message for the user) on a usage error,
 * in which case inv->cmd says which command's usage to show (if known). */
int ctl_parse_args(int argc, char *const argv[], const char *env_socket,
		   struct ctl_invocation *inv, struct vmlet_err *err);

/* The value of a single-valued option, or NULL. */
const char *ctl_opt_value(const struct ctl_invocation *inv, enum ctl_opt_id id);
bool ctl_opt_given(const struct ctl_invocation *inv, enum ctl_opt_id id);

#endif
