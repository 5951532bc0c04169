/* agentd's TCP listener for the coordinator's mutual-TLS connections. */
#ifndef VMLET_AGENTD_LISTEN_H
#define VMLET_AGENTD_LISTEN_H

#include <stdbool.h>
#include <stddef.h>

#include "shared/err.h"

/* "" or "off": no TCP listener. */
bool agentd_listen_enabled(const char *spec);

/* Split "host:port", "[v6]:port" or ":port" (every address). host is ""
 * for the wildcard. 400 with the reason on anything else. */
int agentd_listen_parse(const char *spec, char *host, size_t host_len, char *port,
			size_t port_len, struct vmlet_err *err);

/* Bind and listen (non-blocking, close-on-exec, SO_REUSEADDR). The host is
 * a numeric address or "localhost" (never a DNS lookup). addr gets the
 * bound address as text ("127.0.0.1:7443", "[::]:7443"), which shows the
 * real port when the configured one was 0. */
int agentd_listen_tcp(const char *spec, int *fd_out, char *addr, size_t addr_len,
		      struct vmlet_err *err);

/* Format a socket address as "1.2.3.4:5555" or "[::1]:5555". */
void agentd_format_sockaddr(const void *sa, size_t sa_len, char *buf, size_t len);

#endif
