/* What every host operation may read: hostd's configuration, the node
 * facts collected at start and the registry. Shared read-only by all NNG
 * workers once the server runs. */
#ifndef HOSTD_HOSTD_H
#define HOSTD_HOSTD_H

#include "hostd/facts.h"
#include "hostd/registry.h"
#include "shared/config.h"

struct hostd_env {
	const struct vmlet_config *cfg;
	const struct hostd_facts *facts;
	const struct hostd_registry *registry;
};

#endif
