/* What every host operation may read: hostd's configuration, the node
 * facts collected at start, the registry and the instance runtime. Shared
 * by all NNG workers once the server runs (the runtime locks itself). */
#ifndef HOSTD_HOSTD_H
#define HOSTD_HOSTD_H

#include "hostd/facts.h"
#include "hostd/registry.h"
#include "shared/config.h"

struct hostd_runtime;
struct hostd_net;

struct hostd_env {
	const struct vmlet_config *cfg;
	const struct hostd_facts *facts;
	const struct hostd_registry *registry;
	/* The live VMMs (hostd/lifecycle.h). NULL where no runtime was opened
	 * (unit tests): operations that need a VMM then answer 503, and every
	 * check before that point still runs. */
	struct hostd_runtime *runtime;
	/* The tenant networks (hostd/ops_net.h). NULL: operations keep the
	 * registry only and never touch the kernel's links or rules (unit
	 * tests of other modules); the network operations answer 503. */
	struct hostd_net *net;
};

#endif
