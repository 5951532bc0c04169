/* Framing fuzzer: the input is a byte stream from a peer. The first byte
 * picks the cap and the chunk size the incremental reader is fed with;
 * every frame it yields must match what the blocking reader yields from
 * the same stream, and re-encoding a frame must give back its bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/frame.h"

struct mem_io {
	const uint8_t *data;
	size_t len, pos, chunk;
};

static ssize_t mem_read(void *ctx, void *buf, size_t len)
{
	struct mem_io *m = ctx;
	size_t n = m->len - m->pos;

	if (n > len)
		n = len;
	if (n > m->chunk)
		n = m->chunk;
	memcpy(buf, m->data + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmlet_frame_reader r;
	struct vmlet_err e;
	size_t cap, chunk, off = 0;

	if (size < 1)
		return 0;
	cap = (size_t)(data[0] & 0x3f) * 16 + 1;      /* 1..1009 */
	chunk = (size_t)(data[0] >> 6) * 7 + 1;       /* 1, 8, 15, 22 */
	data++;
	size--;

	struct mem_io mio = { data, size, 0, chunk };
	struct vmlet_io io = { mem_read, NULL, &mio };

	vmlet_frame_reader_init(&r, cap);
	for (;;) {
		size_t n = size - off < chunk ? size - off : chunk;
		size_t used, len, blen;
		int rc = vmlet_frame_feed(&r, data + off, n, &used, &e);
		uint8_t *bp;
		int brc;

		if (used > n)
			abort();
		off += used;
		if (rc < 0) {
			if (e.code != VMLET_E_TOO_LARGE && e.code != VMLET_E_INVALID)
				abort();
			/* The blocking reader must fail on the same frame. */
			if (vmlet_frame_read(&io, cap, &bp, &blen, &e) == 0)
				abort();
			break;
		}
		if (rc == 0) {
			if (off == size)
				break; /* stream ends inside a frame (or cleanly) */
			continue;
		}
		uint8_t *p = vmlet_frame_take(&r, &len);
		if (!p || len == 0 || len > cap)
			abort();
		brc = vmlet_frame_read(&io, cap, &bp, &blen, &e);
		if (brc < 0 || blen != len || memcmp(bp, p, len) != 0)
			abort();
		if (mio.pos != off)
			abort();
		uint8_t *enc;
		size_t enc_len;
		if (vmlet_frame_encode(p, len, &enc, &enc_len, &e) < 0 || enc_len != len + 4 ||
		    memcmp(enc, data + off - enc_len, enc_len) != 0)
			abort();
		free(enc);
		free(bp);
		free(p);
	}
	vmlet_frame_reader_reset(&r);
	return 0;
}
