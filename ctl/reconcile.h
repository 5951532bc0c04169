/* Loading a desired state for `vmletctl reconcile -f FILE`: the JSON is
 * decoded and validated here, so a mistake is reported with its JSON path
 * before anything is sent (agentd validates again, and checks node_id). */
#ifndef VMLET_CTL_RECONCILE_H
#define VMLET_CTL_RECONCILE_H

#include <stddef.h>

#include "rpc/agent.pb-c.h"
#include "shared/err.h"

/* Desired-state JSON is hand-written and small; 16 MiB leaves room for
 * the largest valid state (1024 tenants x 256 pools) with whitespace. */
#define CTL_DESIRED_STATE_MAX (16u << 20)

/* Read path ("-" = standard input) up to CTL_DESIRED_STATE_MAX bytes,
 * decode and validate. *out is freed with
 * protobuf_c_message_free_unpacked(&(*out)->base, NULL). -1 + err (400,
 * message starting with the file name) on any problem. */
int ctl_desired_state_load(const char *path, Vmlet__V1__DesiredState **out,
			   struct vmlet_err *err);

/* The same from text already in memory; name labels the messages. */
int ctl_desired_state_parse(const char *name, const char *text, size_t len,
			    Vmlet__V1__DesiredState **out, struct vmlet_err *err);

#endif
