/* vmletctl's side of the agentd protocol: one connection, one framed
 * AgentRequest out, one framed AgentResponse back, strictly decoded.
 * Two transports: agentd's local unix socket, or mutual TLS 1.3 (wolfSSL)
 * with the server verified against a CA and its SAN against HOST. */
#ifndef VMLET_CTL_TRANSPORT_H
#define VMLET_CTL_TRANSPORT_H

#include "rpc/agent.pb-c.h"
#include "rpc/frame.h"
#include "shared/err.h"

/* A response larger than this is refused before anything is allocated.
 * Generous next to agentd's 1 MiB request cap: a node's instance list is
 * the largest answer and still far below it. */
#define CTL_RESPONSE_MAX (16u << 20)

#define CTL_HOST_MAX 255

enum ctl_transport { CTL_TRANSPORT_UNIX, CTL_TRANSPORT_TLS };

struct ctl_target {
	enum ctl_transport kind;
	const char *where;          /* for messages: the socket path or HOST:PORT */
	const char *socket_path;    /* unix */
	char host[CTL_HOST_MAX + 1];/* tls: name or address, without [] */
	char port[6];               /* tls: 1..65535 */
	const char *ca, *cert, *key;
	unsigned timeout_ms;        /* per connect/read/write; 0 = wait forever */
};

/* Connect, send req, read and strict-unpack the response (free with
 * protobuf_c_message_free_unpacked(&(*resp)->base, NULL)). Any failure
 * (connect, TLS handshake or verification, timeout, peer closing, oversize
 * or malformed response) returns -1 with err saying which step failed and
 * why; for TLS the reason is wolfSSL's error string. */
int ctl_call(const struct ctl_target *t, const Vmlet__V1__AgentRequest *req,
	     Vmlet__V1__AgentResponse **resp, struct vmlet_err *err);

/* The exchange alone, over an already connected stream. */
int ctl_exchange(const struct vmlet_io *io, const Vmlet__V1__AgentRequest *req,
		 Vmlet__V1__AgentResponse **resp, struct vmlet_err *err);

#endif
