/* Length-prefixed framing: 4-byte big-endian length + payload.
 *
 * The length announced by a peer is untrusted: it is checked against the
 * cap (and against zero) as soon as the 4 header bytes are in, and only
 * then is the payload buffer allocated. A reader that hit an error stays
 * in the error state; the caller is expected to close the stream. */
#include "rpc/frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static uint32_t be32_get(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void be32_put(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* The one place that decides whether an announced length is acceptable. */
static int frame_check_len(uint32_t len, size_t cap, struct vmlet_err *err)
{
	if (len == 0)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "zero-length frame");
	if (len > cap)
		return vmlet_err_set(err, VMLET_E_TOO_LARGE, 0,
				     "frame of %u bytes exceeds the limit of %zu bytes", len, cap);
	return 0;
}

void vmlet_frame_reader_init(struct vmlet_frame_reader *r, size_t cap)
{
	memset(r, 0, sizeof(*r));
	r->cap = cap ? cap : VMLET_FRAME_MAX_DEFAULT;
}

void vmlet_frame_reader_reset(struct vmlet_frame_reader *r)
{
	size_t cap = r->cap;

	free(r->buf);
	memset(r, 0, sizeof(*r));
	r->cap = cap;
}

int vmlet_frame_feed(struct vmlet_frame_reader *r, const uint8_t *data, size_t n,
		     size_t *consumed, struct vmlet_err *err)
{
	size_t used = 0;

	*consumed = 0;
	if (r->hdr_got < VMLET_FRAME_HDR) {
		size_t want = VMLET_FRAME_HDR - r->hdr_got;
		size_t take = n < want ? n : want;

		if (take)
			memcpy(r->hdr + r->hdr_got, data, take);
		r->hdr_got += take;
		used += take;
		*consumed = used;
		if (r->hdr_got < VMLET_FRAME_HDR)
			return 0;

		uint32_t len = be32_get(r->hdr);
		if (frame_check_len(len, r->cap, err) < 0)
			return -1; /* header complete, no buffer: error state */
		r->buf = malloc(len);
		if (!r->buf)
			return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM,
					     "allocating a %u-byte frame: out of memory", len);
		r->len = len;
		r->got = 0;
	} else if (!r->buf) {
		/* An earlier header was rejected (or its allocation failed). */
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "frame stream is unusable after an earlier error");
	}

	if (r->got < r->len) {
		size_t want = r->len - r->got;
		size_t avail = n - used;
		size_t take = avail < want ? avail : want;

		if (take)
			memcpy(r->buf + r->got, data + used, take);
		r->got += take;
		used += take;
		*consumed = used;
	}
	return r->got == r->len ? 1 : 0;
}

uint8_t *vmlet_frame_take(struct vmlet_frame_reader *r, size_t *len)
{
	uint8_t *buf;

	if (r->hdr_got < VMLET_FRAME_HDR || !r->buf || r->got != r->len) {
		*len = 0;
		return NULL;
	}
	buf = r->buf;
	*len = r->len;
	r->buf = NULL;
	vmlet_frame_reader_reset(r);
	return buf;
}

int vmlet_frame_encode(const uint8_t *payload, size_t len, uint8_t **out, size_t *out_len,
		       struct vmlet_err *err)
{
	uint8_t *buf;

	*out = NULL;
	*out_len = 0;
	/* A reader rejects empty frames, so never produce one. */
	if (len == 0)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "refusing to encode a zero-length frame");
	if (len > UINT32_MAX)
		return vmlet_err_set(err, VMLET_E_TOO_LARGE, 0,
				     "payload of %zu bytes does not fit a 32-bit frame length", len);
	buf = malloc(VMLET_FRAME_HDR + len);
	if (!buf)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "allocating a frame: out of memory");
	be32_put(buf, (uint32_t)len);
	memcpy(buf + VMLET_FRAME_HDR, payload, len);
	*out = buf;
	*out_len = VMLET_FRAME_HDR + len;
	return 0;
}

/* ---- blocking I/O over struct vmlet_io ---------------------------------- */

static ssize_t fd_read(void *ctx, void *buf, size_t len)
{
	return read(*(int *)ctx, buf, len);
}

static ssize_t fd_write(void *ctx, const void *buf, size_t len)
{
	int fd = *(int *)ctx;
	/* MSG_NOSIGNAL: a peer that went away must give EPIPE, not kill us. */
	ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

	if (n < 0 && errno == ENOTSOCK)
		n = write(fd, buf, len);
	return n;
}

const struct vmlet_io vmlet_io_fd_template = {
	.read = fd_read,
	.write = fd_write,
	.ctx = NULL,
};

/* Read exactly len bytes unless EOF comes first. Returns 0 with *got set
 * (got < len means EOF), -1 on a transport error (errno set). */
static int read_full(const struct vmlet_io *io, uint8_t *buf, size_t len, size_t *got)
{
	*got = 0;
	while (*got < len) {
		ssize_t n = io->read(io->ctx, buf + *got, len - *got);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			return 0;
		*got += (size_t)n;
	}
	return 0;
}

static int write_full(const struct vmlet_io *io, const uint8_t *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = io->write(io->ctx, buf + done, len - done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			/* A transport that accepts nothing would spin forever. */
			errno = EIO;
			return -1;
		}
		done += (size_t)n;
	}
	return 0;
}

int vmlet_frame_write(const struct vmlet_io *io, const uint8_t *payload, size_t len,
		      struct vmlet_err *err)
{
	uint8_t *frame = NULL;
	size_t frame_len;
	int rc;

	/* One buffer, one write loop: header and payload leave together (one
	 * TLS record, no Nagle pause between them). */
	if (vmlet_frame_encode(payload, len, &frame, &frame_len, err) < 0)
		return -1;
	rc = write_full(io, frame, frame_len);
	if (rc < 0)
		vmlet_err_sys(err, VMLET_E_UNAVAILABLE, "writing a %zu-byte frame", len);
	free(frame);
	return rc;
}

int vmlet_frame_read(const struct vmlet_io *io, size_t cap, uint8_t **out, size_t *len,
		     struct vmlet_err *err)
{
	uint8_t hdr[VMLET_FRAME_HDR];
	uint8_t *buf;
	uint32_t flen;
	size_t got;

	*out = NULL;
	*len = 0;
	if (cap == 0)
		cap = VMLET_FRAME_MAX_DEFAULT;
	if (read_full(io, hdr, sizeof(hdr), &got) < 0)
		return vmlet_err_sys(err, VMLET_E_UNAVAILABLE, "reading frame header");
	if (got == 0)
		return vmlet_err_set(err, VMLET_E_UNAVAILABLE, 0, "connection closed");
	if (got < sizeof(hdr))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "truncated frame: connection closed after %zu of %d header bytes",
				     got, VMLET_FRAME_HDR);

	flen = be32_get(hdr);
	if (frame_check_len(flen, cap, err) < 0)
		return -1;
	buf = malloc(flen);
	if (!buf)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM,
				     "allocating a %u-byte frame: out of memory", flen);
	if (read_full(io, buf, flen, &got) < 0) {
		vmlet_err_sys(err, VMLET_E_UNAVAILABLE, "reading a %u-byte frame", flen);
		free(buf);
		return -1;
	}
	if (got < flen) {
		free(buf);
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "truncated frame: connection closed after %zu of %u payload bytes",
				     got, flen);
	}
	*out = buf;
	*len = flen;
	return 0;
}
