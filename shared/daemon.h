/* Start-up steps vmlet-hostd and vmlet-agentd share: the command line,
 * loading the config, and how a start-up failure is logged. */
#ifndef VMLET_DAEMON_H
#define VMLET_DAEMON_H

#include <stdbool.h>

#include "shared/config.h"
#include "shared/err.h"

/* Names the log after PROG (vlog_init) and parses `PROG [--config FILE]`,
 * plus `--debug` (log at debug level) when debug_option. Returns 0 to go
 * on; -1 when main is to return *exit_status now (0 after --help, 2 on a
 * usage error). */
int vmlet_daemon_args(const char *prog, bool debug_option, int argc, char **argv,
		      const char **cli_config, int *exit_status);

/* Loads the config from --config, else $VMLET_CONFIG, else the default
 * (vmlet_config_path), and logs which file it was. */
int vmlet_daemon_load_config(const char *cli_config, struct vmlet_config *cfg,
			     struct vmlet_err *err);

/* Logs EVENT at error level with err's code, errno and message; returns 1
 * (main's exit status). */
int vmlet_daemon_fail(const char *event, const struct vmlet_err *err);

#endif
