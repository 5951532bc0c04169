#include "ctl/args.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "ctl/commands.h"

const struct ctl_opt ctl_opts[] = {
	{ "--socket", CTL_O_SOCKET, CTL_OPT_VALUE, true, "PATH",
	  "agentd's local socket (default $VMLET_SOCKET, else " CTL_DEFAULT_SOCKET ")" },
	{ "--connect", CTL_O_CONNECT, CTL_OPT_VALUE, true, "HOST:PORT",
	  "talk to agentd over mutual TLS 1.3 ([ADDR]:PORT for IPv6)" },
	{ "--ca", CTL_O_CA, CTL_OPT_VALUE, true, "FILE", "CA that signed agentd's certificate" },
	{ "--cert", CTL_O_CERT, CTL_OPT_VALUE, true, "FILE", "client certificate (PEM)" },
	{ "--key", CTL_O_KEY, CTL_OPT_VALUE, true, "FILE", "client private key (PEM)" },
	{ "--json", CTL_O_JSON, CTL_OPT_FLAG, true, NULL, "print the answer as JSON" },
	{ "--timeout", CTL_O_TIMEOUT, CTL_OPT_VALUE, true, "MS",
	  "connect/read/write timeout, 0 = none (default 15000)" },
	{ "--help", CTL_O_HELP, CTL_OPT_FLAG, true, NULL, "show help" },
	{ "-h", CTL_O_HELP, CTL_OPT_FLAG, true, NULL, NULL },
	{ "--version", CTL_O_VERSION, CTL_OPT_FLAG, true, NULL, "show the version" },
	{ "-f", CTL_O_FILE, CTL_OPT_VALUE, false, "FILE", NULL },
	{ "--dir", CTL_O_DIR, CTL_OPT_VALUE, false, "DIR", NULL },
	{ "--node-id", CTL_O_NODE_ID, CTL_OPT_VALUE, false, "ID", NULL },
	{ "--san", CTL_O_SAN, CTL_OPT_LIST, false, "SAN", NULL },
	{ "--force", CTL_O_FORCE, CTL_OPT_FLAG, false, NULL, NULL },
	{ "--key", CTL_O_SIGNING_KEY, CTL_OPT_VALUE, false, "FILE", NULL },
	{ "--out", CTL_O_OUT, CTL_OPT_VALUE, false, "PATH", NULL },
	{ "-o", CTL_O_OUT, CTL_OPT_VALUE, false, "PATH", NULL },
	{ "--sign-key", CTL_O_SIGN_KEY, CTL_OPT_VALUE, false, "FILE", NULL },
	{ "--key-id", CTL_O_KEY_ID, CTL_OPT_VALUE, false, "ID", NULL },
	{ "--deep", CTL_O_DEEP, CTL_OPT_FLAG, false, NULL, NULL },
};
const size_t ctl_n_opts = sizeof(ctl_opts) / sizeof(ctl_opts[0]);

const struct ctl_opt *ctl_opt_by_id(enum ctl_opt_id id)
{
	for (size_t i = 0; i < ctl_n_opts; i++)
		if (ctl_opts[i].id == id)
			return &ctl_opts[i];
	return NULL;
}

const char *ctl_opt_value(const struct ctl_invocation *inv, enum ctl_opt_id id)
{
	return inv->opt[id].n ? inv->opt[id].v[0] : NULL;
}

bool ctl_opt_given(const struct ctl_invocation *inv, enum ctl_opt_id id)
{
	return inv->opt[id].n > 0;
}

static int usage_error(struct vmlet_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int usage_error(struct vmlet_err *err, const char *fmt, ...)
{
	char msg[VMLET_ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return vmlet_err_set(err, VMLET_E_INVALID, 0, "%s", msg);
}

static bool cmd_accepts(const struct ctl_command *cmd, enum ctl_opt_id id)
{
	for (size_t i = 0; cmd && i < cmd->n_opts; i++)
		if (cmd->opts[i].id == id)
			return true;
	return false;
}

/* Find the option named by arg ("--x", "--x=v", "-f"); *inline_val points
 * after '=' when the value was attached. A name defined both globally and
 * for cmd resolves to cmd's own option. */
static const struct ctl_opt *find_opt(const char *arg, const struct ctl_command *cmd,
				      const char **inline_val)
{
	const char *eq = strchr(arg, '=');
	size_t len = eq && arg[1] == '-' ? (size_t)(eq - arg) : strlen(arg);
	const struct ctl_opt *found = NULL;

	*inline_val = NULL;
	for (size_t i = 0; i < ctl_n_opts; i++) {
		if (strlen(ctl_opts[i].name) != len || strncmp(ctl_opts[i].name, arg, len) != 0)
			continue;
		if (!found || (!ctl_opts[i].global && cmd_accepts(cmd, ctl_opts[i].id)))
			found = &ctl_opts[i];
	}
	if (found && len < strlen(arg))
		*inline_val = arg + len + 1;
	return found;
}

/* argv[*i] is an option: record it (and its value) in inv. */
static int take_option(struct ctl_invocation *inv, int argc, char *const argv[], int *i,
		       struct vmlet_err *err)
{
	const char *arg = argv[*i];
	const char *val;
	const struct ctl_opt *o = find_opt(arg, inv->cmd, &val);
	char cmdname[64];

	if (!o)
		return usage_error(err, "unknown option '%s'", arg);
	if (!o->global) {
		if (!inv->cmd)
			return usage_error(err, "option %s must follow its command", o->name);
		if (!cmd_accepts(inv->cmd, o->id)) {
			ctl_command_name(inv->cmd, cmdname, sizeof(cmdname));
			return usage_error(err, "option %s does not apply to '%s'", o->name,
					   cmdname);
		}
	}
	if (o->kind == CTL_OPT_FLAG) {
		if (val)
			return usage_error(err, "option %s takes no value", o->name);
	} else if (!val) {
		if (*i + 1 >= argc)
			return usage_error(err, "option %s needs a value (%s)", o->name,
					   o->metavar);
		val = argv[++*i];
	}
	if (o->kind != CTL_OPT_LIST && inv->opt[o->id].n > 0)
		return usage_error(err, "option %s given twice", o->name);
	if (inv->opt[o->id].n >= CTL_MAX_OPT_VALUES)
		return usage_error(err, "option %s given too many times (at most 16)", o->name);
	if (o->kind != CTL_OPT_FLAG && val[0] == '\0')
		return usage_error(err, "option %s needs a non-empty value (%s)", o->name,
				   o->metavar);
	inv->opt[o->id].v[inv->opt[o->id].n++] = val;
	return 0;
}

static bool is_option(const char *arg)
{
	return arg[0] == '-' && arg[1] != '\0';
}

/* Longest table entry whose words start argv[*i]; advances *i past them. */
static int match_command(struct ctl_invocation *inv, int argc, char *const argv[], int *i,
			 struct vmlet_err *err)
{
	const struct ctl_command *best = NULL;
	size_t best_words = 0;
	bool first_word_known = false;

	for (size_t c = 0; c < ctl_n_commands; c++) {
		const struct ctl_command *cmd = &ctl_commands[c];
		size_t w = 0;

		while (w < CTL_MAX_WORDS && cmd->words[w] && *i + (int)w < argc &&
		       strcmp(cmd->words[w], argv[*i + w]) == 0)
			w++;
		if (w > 0)
			first_word_known = true;
		if (w > 0 && (w == CTL_MAX_WORDS || !cmd->words[w]) && w > best_words) {
			best = cmd;
			best_words = w;
		}
	}
	if (!best) {
		char subs[128] = "";
		size_t used = 0;

		if (!first_word_known)
			return usage_error(err, "unknown command '%s'", argv[*i]);
		/* A known group with a wrong or missing second word: name the
		 * subcommands it has. */
		for (size_t c = 0; c < ctl_n_commands; c++) {
			const struct ctl_command *cmd = &ctl_commands[c];
			if (strcmp(cmd->words[0], argv[*i]) == 0 && cmd->words[1]) {
				int n = snprintf(subs + used, sizeof(subs) - used, "%s%s",
						 used ? ", " : "", cmd->words[1]);
				if (n > 0 && (size_t)n < sizeof(subs) - used)
					used += (size_t)n;
			}
		}
		if (*i + 1 >= argc)
			return usage_error(err, "'%s' needs a subcommand: %s", argv[*i], subs);
		char word[64];
		snprintf(word, sizeof(word), "%s %s", argv[*i], argv[*i + 1]);
		return usage_error(err, "unknown command '%s' (expected one of: %s)", word, subs);
	}
	inv->cmd = best;
	*i += (int)best_words;
	return 0;
}

/* "HOST:PORT" or "[ADDR]:PORT" into the target. */
static int parse_connect(const char *s, struct ctl_target *t, struct vmlet_err *err)
{
	const char *host = s, *host_end, *port;

	if (s[0] == '[') {
		host = s + 1;
		host_end = strchr(host, ']');
		if (!host_end || host_end[1] != ':')
			return usage_error(err, "--connect '%s': expected [ADDR]:PORT", s);
		port = host_end + 2;
	} else {
		host_end = strrchr(s, ':');
		if (!host_end)
			return usage_error(err, "--connect '%s': expected HOST:PORT", s);
		if (memchr(s, ':', (size_t)(host_end - s)))
			return usage_error(err, "--connect '%s': write an IPv6 address as [ADDR]:PORT",
					   s);
		port = host_end + 1;
	}
	size_t hlen = (size_t)(host_end - host);
	if (hlen == 0 || hlen > CTL_HOST_MAX)
		return usage_error(err, "--connect '%s': host must be 1-255 characters", s);
	size_t plen = strlen(port);
	unsigned long p = 0;
	if (plen == 0 || plen > 5 || strspn(port, "0123456789") != plen ||
	    (p = strtoul(port, NULL, 10)) == 0 || p > 65535)
		return usage_error(err, "--connect '%s': port must be a number 1-65535", s);
	memcpy(t->host, host, hlen);
	t->host[hlen] = '\0';
	snprintf(t->port, sizeof(t->port), "%lu", p);
	return 0;
}

static int parse_timeout(const char *s, unsigned *out, struct vmlet_err *err)
{
	size_t len = strlen(s);
	unsigned long v;

	if (len == 0 || len > 7 || strspn(s, "0123456789") != len ||
	    (v = strtoul(s, NULL, 10)) > CTL_TIMEOUT_MAX_MS)
		return usage_error(err, "--timeout '%s': expected milliseconds 0-3600000", s);
	*out = (unsigned)v;
	return 0;
}

/* Where to connect, from the global options and the environment. */
static int resolve_target(struct ctl_invocation *inv, const char *env_socket,
			  struct vmlet_err *err)
{
	struct ctl_target *t = &inv->target;
	const char *sock = ctl_opt_value(inv, CTL_O_SOCKET);
	const char *conn = ctl_opt_value(inv, CTL_O_CONNECT);
	const char *ca = ctl_opt_value(inv, CTL_O_CA);
	const char *cert = ctl_opt_value(inv, CTL_O_CERT);
	const char *key = ctl_opt_value(inv, CTL_O_KEY);
	const char *timeout = ctl_opt_value(inv, CTL_O_TIMEOUT);

	t->timeout_ms = CTL_DEFAULT_TIMEOUT_MS;
	if (timeout && parse_timeout(timeout, &t->timeout_ms, err) < 0)
		return -1;
	if (sock && conn)
		return usage_error(err, "--socket and --connect exclude each other");
	if (conn) {
		char missing[64] = "";
		if (!ca)
			strcat(missing, " --ca");
		if (!cert)
			strcat(missing, " --cert");
		if (!key)
			strcat(missing, " --key");
		if (missing[0])
			return usage_error(err, "--connect needs --ca, --cert and --key (missing:%s)",
					   missing);
		t->kind = CTL_TRANSPORT_TLS;
		t->where = conn;
		t->ca = ca;
		t->cert = cert;
		t->key = key;
		return parse_connect(conn, t, err);
	}
	if (ca || cert || key)
		return usage_error(err, "--ca, --cert and --key only apply with --connect");
	if (!sock)
		sock = env_socket && env_socket[0] ? env_socket : CTL_DEFAULT_SOCKET;
	if (strlen(sock) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return usage_error(err, "socket path '%s' is too long for a unix socket", sock);
	t->kind = CTL_TRANSPORT_UNIX;
	t->socket_path = sock;
	t->where = sock;
	return 0;
}

static int check_command(struct ctl_invocation *inv, struct vmlet_err *err)
{
	const struct ctl_command *cmd = inv->cmd;
	char name[64];

	ctl_command_name(cmd, name, sizeof(name));
	if (inv->n_operands < cmd->min_operands)
		return usage_error(err, "'%s' needs %s", name, cmd->synopsis);
	for (size_t i = 0; i < cmd->n_opts; i++) {
		const struct ctl_opt *o = ctl_opt_by_id(cmd->opts[i].id);
		if (cmd->opts[i].required && !ctl_opt_given(inv, o->id)) {
			char what[64];
			snprintf(what, sizeof(what), "%s %s", o->name, o->metavar ? o->metavar : "");
			return usage_error(err, "'%s' needs %s", name, what);
		}
	}
	return cmd->check ? cmd->check(inv, err) : 0;
}

int ctl_parse_args(int argc, char *const argv[], const char *env_socket,
		   struct ctl_invocation *inv, struct vmlet_err *err)
{
	int i = 1;
	bool options_done = false;

	memset(inv, 0, sizeof(*inv));

	/* Global options, then the command words. */
	for (; i < argc && is_option(argv[i]); i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		if (take_option(inv, argc, argv, &i, err) < 0)
			return -1;
	}
	inv->help = ctl_opt_given(inv, CTL_O_HELP);
	inv->version = ctl_opt_given(inv, CTL_O_VERSION);
	if (inv->help || inv->version)
		return 0;
	if (i >= argc)
		return usage_error(err, "no command given");
	if (match_command(inv, argc, argv, &i, err) < 0)
		return -1;

	/* The command's options and operands, in any order. */
	for (; i < argc; i++) {
		if (!options_done && strcmp(argv[i], "--") == 0) {
			options_done = true;
			continue;
		}
		if (!options_done && is_option(argv[i])) {
			if (take_option(inv, argc, argv, &i, err) < 0)
				return -1;
			continue;
		}
		if (inv->n_operands >= inv->cmd->max_operands) {
			char name[64];
			ctl_command_name(inv->cmd, name, sizeof(name));
			return usage_error(err, "unexpected argument '%s' after '%s'", argv[i],
					   name);
		}
		inv->operands[inv->n_operands++] = argv[i];
	}
	inv->help = ctl_opt_given(inv, CTL_O_HELP);
	inv->version = ctl_opt_given(inv, CTL_O_VERSION);
	if (inv->help || inv->version)
		return 0;
	inv->json = ctl_opt_given(inv, CTL_O_JSON);
	if (resolve_target(inv, env_socket, err) < 0)
		return -1;
	return check_command(inv, err);
}
