/* A minimal HTTP/1.1 client for Firecracker's API on a unix socket.
 *
 * The peer is a Firecracker process running as an instance uid next to a
 * guest we do not trust, so its answers are treated as hostile input:
 *  - a whole response (status line, headers, body) is capped at
 *    FC_API_RESPONSE_MAX and its head at FC_API_HEAD_MAX;
 *  - the status line and headers are parsed strictly (CRLF only, no
 *    folding, exactly one numeric Content-Length, no Transfer-Encoding);
 *    a body is read by Content-Length only, never "until close";
 *  - every call has a deadline; after a timeout or any protocol error the
 *    connection is dropped (a late answer must never be matched to the next
 *    request) and the next call opens a fresh one, unless the peer itself
 *    closed it: Firecracker keeps connections open, so EOF means it exited.
 * Requests are built with jansson; no caller string is printed into JSON,
 * and method and path are checked against a fixed grammar. One request is
 * in flight at a time (keep-alive, as Firecracker's micro_http serves it). */
#ifndef HOSTD_FC_API_H
#define HOSTD_FC_API_H

#include <jansson.h>
#include <stdbool.h>

#include "shared/err.h"

/* Cap on a whole response, head and body. */
#define FC_API_RESPONSE_MAX 65536
/* Cap on the status line plus headers (Firecracker sends about 100 bytes). */
#define FC_API_HEAD_MAX 8192
/* Firecracker's default --http-api-max-payload-size: larger request
 * bodies are refused by it, so they are refused here before sending. */
#define FC_API_REQUEST_BODY_MAX 51200
/* Cap on Firecracker's fault_message as it reaches an error message. */
#define FC_API_FAULT_MAX 240

struct fc_api;

/* Connect to the API socket at path, retrying while it does not exist yet
 * or refuses (Firecracker still starting), for up to timeout_ms. */
int fc_api_connect(const char *path, int timeout_ms, struct fc_api **out, struct vmlet_err *err);

/* Use an already connected stream socket (takes fd, also on failure).
 * Such a connection cannot be reopened once dropped. */
int fc_api_attach(int fd, struct fc_api **out, struct vmlet_err *err);

/* One request and its response, within timeout_ms.
 * method: "GET", "PUT" or "PATCH". path: "/" followed by [A-Za-z0-9/_.-].
 * body: a JSON object or array sent as application/json (borrowed; NULL
 * sends no body). On a 2xx answer returns 0 and, if reply is not NULL,
 * *reply holds the parsed JSON body (NULL when the answer had none).
 * Any other status fails: 400 -> VMLET_E_INVALID, others ->
 * VMLET_E_INTERNAL, the message naming method, path, status and
 * Firecracker's fault_message. Transport failures and timeouts are
 * VMLET_E_UNAVAILABLE; malformed answers VMLET_E_INTERNAL. */
int fc_api_call(struct fc_api *a, const char *method, const char *path, const json_t *body,
		int timeout_ms, json_t **reply, struct vmlet_err *err);

/* Wait up to timeout_ms for the peer to close the connection (Firecracker
 * exited). 1: it closed; 0: still open at the deadline; -1 with err: it
 * sent unexpected bytes, or the socket failed (connection dropped). */
int fc_api_wait_closed(struct fc_api *a, int timeout_ms, struct vmlet_err *err);

/* The peer closed the connection (EOF): Firecracker is gone. */
bool fc_api_peer_closed(const struct fc_api *a);

void fc_api_close(struct fc_api *a);

#endif
