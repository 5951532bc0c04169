/* The command table: which words name a command, how many operands and
 * which options it takes, how its operands are checked locally, and either
 * the request it sends to agentd (and the response it expects) or the local
 * work it does instead. ctl_main dispatches through it. */
#ifndef VMLET_CTL_COMMANDS_H
#define VMLET_CTL_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "ctl/args.h"
#include "ctl/request.h"
#include "rpc/agent.pb-c.h"
#include "shared/err.h"

#define CTL_MAX_WORDS 2

enum ctl_exit {
	CTL_EXIT_OK = 0,
	CTL_EXIT_REFUSED = 1,   /* agentd (or the local check of a request) said no */
	CTL_EXIT_USAGE = 2,
	CTL_EXIT_TRANSPORT = 3, /* could not connect, or the exchange failed */
};

struct ctl_cmd_opt {
	enum ctl_opt_id id;
	bool required;
};

struct ctl_command {
	const char *words[CTL_MAX_WORDS]; /* {"instance", "list"}; unused = NULL */
	const char *synopsis;             /* operands and options: "TENANT [POOL]" */
	size_t min_operands, max_operands;
	const struct ctl_cmd_opt *opts;
	size_t n_opts;
	/* Local checks of operands and options (ids); a failure is a usage
	 * error. Fills inv->tenant/pool/instance. May be NULL. */
	int (*check)(struct ctl_invocation *inv, struct vmlet_err *err);
	/* Remote commands: build the request; a failure (e.g. a bad desired
	 * state file) is reported like a refusal, exit 1. */
	int (*build)(const struct ctl_invocation *inv, struct ctl_request *req,
		     struct vmlet_err *err);
	Vmlet__V1__AgentResponse__ResponseCase expect;
	/* Local commands: do the work here, return an enum ctl_exit. */
	int (*run_local)(const struct ctl_invocation *inv, FILE *out, FILE *errf);
	const char *help;
};

extern const struct ctl_command ctl_commands[];
extern const size_t ctl_n_commands;

/* "instance list" */
void ctl_command_name(const struct ctl_command *c, char *buf, size_t len);

/* Full help (--help, `help`). */
void ctl_print_help(FILE *f);
/* One or two lines for after a usage error; cmd may be NULL. */
void ctl_print_short_usage(FILE *f, const struct ctl_command *cmd);

/* The whole program: returns the exit status. */
int ctl_main(int argc, char *const argv[], const char *env_socket, FILE *out, FILE *errf);

#endif
