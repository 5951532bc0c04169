#include "shared/daemon.h"

#include <getopt.h>
#include <stdio.h>

#include "shared/log.h"

static void usage(FILE *out, const char *prog, bool debug_option)
{
	fprintf(out,
		"usage: %s [--config FILE]%s\n"
		"  --config FILE  system config (default: $VMLET_CONFIG, else %s)\n"
		"%s",
		prog, debug_option ? " [--debug]" : "", VMLET_DEFAULT_CONFIG,
		debug_option ? "  --debug        log every request\n" : "");
}

int vmlet_daemon_args(const char *prog, bool debug_option, int argc, char **argv,
		      const char **cli_config, int *exit_status)
{
	/* A NULL name ends the table: --debug exists only when debug_option. */
	const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ debug_option ? "debug" : NULL, no_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	vlog_init(prog);
	*cli_config = NULL;
	while ((c = getopt_long(argc, argv, debug_option ? "c:dh" : "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			*cli_config = optarg;
			break;
		case 'd':
			vlog_set_level(VLOG_DEBUG);
			break;
		case 'h':
			usage(stdout, prog, debug_option);
			*exit_status = 0;
			return -1;
		default:
			usage(stderr, prog, debug_option);
			*exit_status = 2;
			return -1;
		}
	}
	if (optind != argc) {
		usage(stderr, prog, debug_option);
		*exit_status = 2;
		return -1;
	}
	return 0;
}

int vmlet_daemon_load_config(const char *cli_config, struct vmlet_config *cfg,
			     struct vmlet_err *err)
{
	const char *path = vmlet_config_path(cli_config);
	char qpath[VLOG_STR_MAX];

	if (vmlet_config_load(path, cfg, err) < 0)
		return -1;
	vlog(VLOG_INFO, "config_loaded", "path=%s node_id=%s production=%d agentd_user=%s",
	     vlog_str(path, qpath, sizeof(qpath)), cfg->node_id, cfg->production,
	     cfg->agentd_user);
	return 0;
}

int vmlet_daemon_fail(const char *event, const struct vmlet_err *err)
{
	char qmsg[VLOG_STR_MAX];

	vlog(VLOG_ERROR, event, "code=%d errno=%d error=%s", err->code, err->sys_errno,
	     vlog_str(err->msg, qmsg, sizeof(qmsg)));
	return 1;
}
