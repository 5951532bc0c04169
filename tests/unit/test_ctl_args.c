/* vmletctl argument parsing: a table of command lines, each either
 * accepted (command, operands, target checked) or refused as a usage error
 * whose message names the problem. Nothing here connects anywhere. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctl/args.h"
#include "ctl/commands.h"

#define MAX_ARGV 64

/* Split a command line on spaces into argv (argv[0] = "vmletctl"). */
static int split(const char *line, char *buf, size_t size, char **argv)
{
	int argc = 0;

	snprintf(buf, size, "%s", line);
	argv[argc++] = "vmletctl";
	for (char *tok = strtok(buf, " "); tok && argc < MAX_ARGV - 1; tok = strtok(NULL, " "))
		argv[argc++] = tok;
	argv[argc] = NULL;
	return argc;
}

static int parse(const char *line, const char *env_socket, struct ctl_invocation *inv,
		 struct vmlet_err *err)
{
	static char buf[1024];
	static char *argv[MAX_ARGV];
	int argc = split(line, buf, sizeof(buf), argv);

	memset(err, 0, sizeof(*err));
	return ctl_parse_args(argc, argv, env_socket, inv, err);
}

static const char *cmd_name(const struct ctl_invocation *inv, char *buf, size_t len)
{
	if (!inv->cmd)
		return "";
	ctl_command_name(inv->cmd, buf, len);
	return buf;
}

/* ---- accepted --------------------------------------------------------- */

struct ok_case {
	const char *line;
	const char *cmd;
	size_t n_operands;
	const char *tenant, *pool, *instance; /* what check() derived */
};

static const struct ok_case ok_cases[] = {
	{ "node info", "node info", 0, "", "", "" },
	{ "node stats", "node stats", 0, "", "", "" },
	{ "tenant list", "tenant list", 0, "", "", "" },
	{ "instance list acme", "instance list", 1, "acme", "", "" },
	{ "instance list acme web", "instance list", 2, "acme", "web", "" },
	{ "instance wake acme/web/i-0123abcd", "instance wake", 1, "acme", "web", "i-0123abcd" },
	{ "reconcile -f desired.json", "reconcile", 0, "", "", "" },
	{ "reconcile -f -", "reconcile", 0, "", "", "" },
	{ "certs init --dir /tmp/x --node-id node-1", "certs init", 0, "", "", "" },
	{ "certs init --dir=/tmp/x --node-id=n1 --san DNS:a --san IP:10.0.0.1 --force", "certs init",
	  0, "", "", "" },
	{ "help", "help", 0, "", "", "" },
	{ "--json node info", "node info", 0, "", "", "" },
	{ "node info --json", "node info", 0, "", "", "" },
	{ "--timeout 0 node info", "node info", 0, "", "", "" },
	{ "instance list -- acme", "instance list", 1, "acme", "", "" },
	/* 63 characters: the longest valid id. */
	{ "instance list aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	  "instance list", 1, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "", "" },
};

static void accepts_every_command(void **state)
{
	for (size_t i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++) {
		const struct ok_case *c = &ok_cases[i];
		struct ctl_invocation inv;
		struct vmlet_err err;
		char name[64];

		if (parse(c->line, NULL, &inv, &err) != 0)
			fail_msg("'%s' refused: %s", c->line, err.msg);
		assert_string_equal(cmd_name(&inv, name, sizeof(name)), c->cmd);
		assert_int_equal(inv.n_operands, c->n_operands);
		assert_string_equal(inv.tenant, c->tenant);
		assert_string_equal(inv.pool, c->pool);
		assert_string_equal(inv.instance, c->instance);
	}
}

/* ---- refused ----------------------------------------------------------- */

struct bad_case {
	const char *line;
	const char *msg; /* substring of the usage error */
};

static const struct bad_case bad_cases[] = {
	{ "", "no command given" },
	{ "--json", "no command given" },
	{ "frobnicate", "unknown command 'frobnicate'" },
	{ "node", "'node' needs a subcommand: info, stats" },
	{ "node reboot", "unknown command 'node reboot' (expected one of: info, stats)" },
	{ "instance", "'instance' needs a subcommand: list, wake" },
	{ "node info extra", "unexpected argument 'extra' after 'node info'" },
	{ "tenant list acme", "unexpected argument 'acme' after 'tenant list'" },
	{ "instance list", "'instance list' needs TENANT [POOL]" },
	{ "instance list a b c", "unexpected argument 'c' after 'instance list'" },
	{ "instance wake", "'instance wake' needs TENANT/POOL/INSTANCE" },
	{ "instance wake a/b/i-0123abcd extra", "unexpected argument 'extra'" },
	{ "reconcile", "'reconcile' needs -f FILE" },
	{ "reconcile -f", "option -f needs a value (FILE)" },
	{ "reconcile -f a -f b", "option -f given twice" },
	{ "reconcile desired.json", "unexpected argument 'desired.json' after 'reconcile'" },
	{ "certs init --dir /tmp/x", "'certs init' needs --node-id ID" },
	{ "certs init --node-id n1", "'certs init' needs --dir DIR" },
	{ "certs init --dir /tmp/x --node-id Bad", "--node-id: \"Bad\" must match" },
	{ "certs init --dir /tmp/x --node-id n1 --force=yes", "option --force takes no value" },
	{ "certs", "'certs' needs a subcommand: init" },
	/* bad ids never leave the process */
	{ "instance list ../x", "TENANT: \"../x\" must match" },
	{ "instance list Bad", "TENANT: \"Bad\" must match" },
	{ "instance list -acme", "unknown option '-acme'" },
	{ "instance list -- -acme", "TENANT: \"-acme\" must match" },
	{ "instance list acme- ", "TENANT: \"acme-\" must match" },
	{ "instance list acme web_1", "POOL: \"web_1\" must match" },
	{ "instance list aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	  "TENANT: \"aaaa" },
	{ "instance wake acme/web/i-0123ABCD", "INSTANCE: \"i-0123ABCD\"" },
	{ "instance wake acme/web/i-0123abc", "INSTANCE: \"i-0123abc\"" },
	{ "instance wake acme/web/i-0123abcde", "INSTANCE: \"i-0123abcde\"" },
	{ "instance wake acme/web/../i-0123abcd", "expected TENANT/POOL/INSTANCE" },
	{ "instance wake acme/web", "'acme/web': expected TENANT/POOL/INSTANCE" },
	{ "instance wake acme", "expected TENANT/POOL/INSTANCE" },
	{ "instance wake acme//i-0123abcd", "POOL: \"\" must match" },
	{ "instance wake /web/i-0123abcd", "TENANT: \"\" must match" },
	{ "instance wake acme/web/", "INSTANCE: \"\"" },
	{ "instance wake acme/../i-0123abcd", "POOL: \"..\" must match" },
	{ "instance wake Acme/web/i-0123abcd", "TENANT: \"Acme\" must match" },
	/* options */
	{ "--bogus node info", "unknown option '--bogus'" },
	{ "-f x reconcile", "option -f must follow its command" },
	{ "node info -f x", "option -f does not apply to 'node info'" },
	{ "--socket", "option --socket needs a value (PATH)" },
	{ "--socket= node info", "option --socket needs a non-empty value (PATH)" },
	{ "--json=1 node info", "option --json takes no value" },
	{ "--socket /a --socket /b node info", "option --socket given twice" },
	{ "--socket /tmp/s --connect h:1 --ca a --cert b --key c node info",
	  "--socket and --connect exclude each other" },
	{ "--connect h:1 node info", "--connect needs --ca, --cert and --key (missing: --ca --cert --key)" },
	{ "--connect h:1 --ca a node info", "(missing: --cert --key)" },
	{ "--connect h:1 --ca a --cert b node info", "(missing: --key)" },
	{ "--ca a node info", "--ca, --cert and --key only apply with --connect" },
	{ "--connect h --ca a --cert b --key c node info", "expected HOST:PORT" },
	{ "--connect h:0 --ca a --cert b --key c node info", "port must be a number 1-65535" },
	{ "--connect h:65536 --ca a --cert b --key c node info", "port must be a number 1-65535" },
	{ "--connect h:12x --ca a --cert b --key c node info", "port must be a number 1-65535" },
	{ "--connect :7443 --ca a --cert b --key c node info", "host must be 1-255 characters" },
	{ "--connect ::1:7443 --ca a --cert b --key c node info", "write an IPv6 address as [ADDR]:PORT" },
	{ "--connect [::1]7443 --ca a --cert b --key c node info", "expected [ADDR]:PORT" },
	{ "--timeout -5 node info", "--timeout '-5': expected milliseconds 0-3600000" },
	{ "--timeout 3600001 node info", "expected milliseconds" },
	{ "--timeout 1e3 node info", "expected milliseconds" },
	{ "--socket /xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx node info",
	  "too long for a unix socket" },
};

static void refuses_bad_command_lines(void **state)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		struct ctl_invocation inv;
		struct vmlet_err err;

		if (parse(c->line, NULL, &inv, &err) == 0)
			fail_msg("'%s' accepted", c->line);
		assert_int_equal(err.code, VMLET_E_INVALID);
		if (!strstr(err.msg, c->msg))
			fail_msg("'%s': message \"%s\" lacks \"%s\"", c->line, err.msg, c->msg);
	}
}

/* ---- targets ------------------------------------------------------------ */

static void default_socket_then_env_then_option(void **state)
{
	struct ctl_invocation inv;
	struct vmlet_err err;

	assert_int_equal(parse("node info", NULL, &inv, &err), 0);
	assert_int_equal(inv.target.kind, CTL_TRANSPORT_UNIX);
	assert_string_equal(inv.target.socket_path, "/run/vmlet/agentd.sock");
	assert_int_equal(inv.target.timeout_ms, 15000);
	assert_false(inv.json);

	assert_int_equal(parse("node info", "", &inv, &err), 0);
	assert_string_equal(inv.target.socket_path, "/run/vmlet/agentd.sock");

	assert_int_equal(parse("node info", "/tmp/env.sock", &inv, &err), 0);
	assert_string_equal(inv.target.socket_path, "/tmp/env.sock");

	assert_int_equal(parse("--socket /tmp/opt.sock --timeout 250 --json node info",
			       "/tmp/env.sock", &inv, &err),
			 0);
	assert_string_equal(inv.target.socket_path, "/tmp/opt.sock");
	assert_string_equal(inv.target.where, "/tmp/opt.sock");
	assert_int_equal(inv.target.timeout_ms, 250);
	assert_true(inv.json);
}

static void connect_fills_tls_target(void **state)
{
	struct ctl_invocation inv;
	struct vmlet_err err;

	assert_int_equal(parse("--connect node-1.example:7443 --ca ca.pem --cert c.pem --key c.key "
			       "tenant list",
			       "/tmp/env.sock", &inv, &err),
			 0);
	assert_int_equal(inv.target.kind, CTL_TRANSPORT_TLS);
	assert_string_equal(inv.target.host, "node-1.example");
	assert_string_equal(inv.target.port, "7443");
	assert_string_equal(inv.target.ca, "ca.pem");
	assert_string_equal(inv.target.cert, "c.pem");
	assert_string_equal(inv.target.key, "c.key");
	assert_string_equal(inv.target.where, "node-1.example:7443");

	assert_int_equal(parse("--connect [::1]:443 --ca a --cert b --key c node info", NULL, &inv,
			       &err),
			 0);
	assert_string_equal(inv.target.host, "::1");
	assert_string_equal(inv.target.port, "443");

	/* leading zeros are a number all the same, written back canonically */
	assert_int_equal(parse("--connect 127.0.0.1:07443 --ca a --cert b --key c node info", NULL,
			       &inv, &err),
			 0);
	assert_string_equal(inv.target.port, "7443");
}

static void certs_init_collects_sans(void **state)
{
	struct ctl_invocation inv;
	struct vmlet_err err;

	assert_int_equal(parse("certs init --dir d --node-id n1 --san a --san=IP:10.0.0.1 --force",
			       NULL, &inv, &err),
			 0);
	assert_string_equal(ctl_opt_value(&inv, CTL_O_DIR), "d");
	assert_string_equal(ctl_opt_value(&inv, CTL_O_NODE_ID), "n1");
	assert_int_equal(inv.opt[CTL_O_SAN].n, 2);
	assert_string_equal(inv.opt[CTL_O_SAN].v[0], "a");
	assert_string_equal(inv.opt[CTL_O_SAN].v[1], "IP:10.0.0.1");
	assert_true(ctl_opt_given(&inv, CTL_O_FORCE));

	char line[1024] = "certs init --dir d --node-id n1";
	for (int i = 0; i < 17; i++)
		strcat(line, " --san x");
	assert_int_equal(parse(line, NULL, &inv, &err), -1);
	assert_non_null(strstr(err.msg, "--san given too many times"));
}

static void help_and_version_need_no_command(void **state)
{
	struct ctl_invocation inv;
	struct vmlet_err err;

	assert_int_equal(parse("--help", NULL, &inv, &err), 0);
	assert_true(inv.help);
	assert_null(inv.cmd);
	assert_int_equal(parse("-h", NULL, &inv, &err), 0);
	assert_true(inv.help);
	assert_int_equal(parse("--version", NULL, &inv, &err), 0);
	assert_true(inv.version);
	/* help after a command that lacks its operands is still help */
	assert_int_equal(parse("instance wake --help", NULL, &inv, &err), 0);
	assert_true(inv.help);
}

/* ctl_main: usage errors exit 2 with the message and the short usage on
 * stderr and nothing on stdout. */
static void main_reports_usage_errors(void **state)
{
	char *argv[] = { "vmletctl", "instance", "list", "../x", NULL };
	char *out = NULL, *errs = NULL;
	size_t outlen = 0, errlen = 0;
	FILE *o = open_memstream(&out, &outlen), *e = open_memstream(&errs, &errlen);

	assert_int_equal(ctl_main(4, argv, NULL, o, e), CTL_EXIT_USAGE);
	fclose(o);
	fclose(e);
	assert_string_equal(out, "");
	assert_non_null(strstr(errs, "vmletctl: TENANT: \"../x\" must match"));
	assert_non_null(strstr(errs, "usage: vmletctl [OPTIONS] instance list TENANT [POOL]\n"));
	free(out);
	free(errs);
}

static void main_prints_help_and_version(void **state)
{
	char *argv1[] = { "vmletctl", "help", NULL };
	char *argv2[] = { "vmletctl", "--version", NULL };
	char *out = NULL, *errs = NULL;
	size_t outlen = 0, errlen = 0;
	FILE *o = open_memstream(&out, &outlen), *e = open_memstream(&errs, &errlen);

	assert_int_equal(ctl_main(2, argv1, NULL, o, e), CTL_EXIT_OK);
	fflush(o);
	/* every command of the table is in the help */
	for (size_t i = 0; i < ctl_n_commands; i++) {
		char name[64];
		ctl_command_name(&ctl_commands[i], name, sizeof(name));
		if (!strstr(out, name))
			fail_msg("help lacks '%s'", name);
	}
	assert_non_null(strstr(out, "usage: vmletctl [--socket PATH | --connect HOST:PORT --ca F "
				    "--cert F --key F] [--json] [--timeout MS] COMMAND"));
	assert_int_equal(ctl_main(2, argv2, NULL, o, e), CTL_EXIT_OK);
	fclose(o);
	fclose(e);
	assert_non_null(strstr(out, "vmletctl "));
	assert_string_equal(errs, "");
	free(out);
	free(errs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(accepts_every_command),
		cmocka_unit_test(refuses_bad_command_lines),
		cmocka_unit_test(default_socket_then_env_then_option),
		cmocka_unit_test(connect_fills_tls_target),
		cmocka_unit_test(certs_init_collects_sans),
		cmocka_unit_test(help_and_version_need_no_command),
		cmocka_unit_test(main_reports_usage_errors),
		cmocka_unit_test(main_prints_help_and_version),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
