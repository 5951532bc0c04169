/* Length-prefixed framing for byte streams (TLS, unix socket):
 * 4-byte big-endian length + one protobuf message. The length is checked
 * against the cap before anything is allocated. */
#ifndef VMLET_FRAME_H
#define VMLET_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shared/err.h"

#define VMLET_FRAME_MAX_DEFAULT (1u << 20)
#define VMLET_FRAME_HDR 4

/* Incremental decoder for non-blocking streams. */
struct vmlet_frame_reader {
	size_t cap;        /* max payload length */
	uint8_t hdr[VMLET_FRAME_HDR];
	size_t hdr_got;
	uint8_t *buf;      /* payload, allocated once the header is complete */
	size_t len;        /* payload length from the header */
	size_t got;
};

void vmlet_frame_reader_init(struct vmlet_frame_reader *r, size_t cap);
void vmlet_frame_reader_reset(struct vmlet_frame_reader *r);  /* frees buf */

/* Feed bytes. Sets *consumed to how many were used (stops at the end of one
 * frame). Returns 1 when a complete frame is ready (payload in r->buf,
 * r->len; take it with vmlet_frame_take), 0 when more bytes are needed,
 * -1 with err: VMLET_E_TOO_LARGE (length > cap), VMLET_E_INVALID (zero
 * length). After an error the stream must be closed. */
int vmlet_frame_feed(struct vmlet_frame_reader *r, const uint8_t *data, size_t n,
		     size_t *consumed, struct vmlet_err *err);

/* Take the completed payload (caller frees) and reset for the next frame. */
uint8_t *vmlet_frame_take(struct vmlet_frame_reader *r, size_t *len);

/* Encode header+payload into a new malloc'd buffer. */
int vmlet_frame_encode(const uint8_t *payload, size_t len, uint8_t **out, size_t *out_len,
		       struct vmlet_err *err);

/* Blocking I/O over any transport (plain fd, TLS): read/write return bytes
 * moved, 0 on EOF, -1 on error (errno set). */
struct vmlet_io {
	ssize_t (*read)(void *ctx, void *buf, size_t len);
	ssize_t (*write)(void *ctx, const void *buf, size_t len);
	void *ctx;
};

/* Adapter for a plain file descriptor (ctx points at an int fd). */
extern const struct vmlet_io vmlet_io_fd_template;

int vmlet_frame_write(const struct vmlet_io *io, const uint8_t *payload, size_t len,
		      struct vmlet_err *err);
/* Reads one frame; *out malloc'd. EOF before a header -> err code
 * VMLET_E_UNAVAILABLE "connection closed". */
int vmlet_frame_read(const struct vmlet_io *io, size_t cap, uint8_t **out, size_t *len,
		     struct vmlet_err *err);

#endif
