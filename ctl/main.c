/* vmletctl: talk to vmlet-agentd over its local socket or mutual TLS. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "ctl/commands.h"

int main(int argc, char **argv)
{
	/* A server that hangs up mid-write is reported as an error (EPIPE),
	 * not by dying of SIGPIPE: wolfSSL writes with plain send(2). */
	signal(SIGPIPE, SIG_IGN);
	return ctl_main(argc, argv, getenv("VMLET_SOCKET"), stdout, stderr);
}
