/* Framing: incremental reader, encoder, blocking read/write over vmlet_io. */
#include <errno.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "rpc/frame.h"

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ASAN 1
#endif
#endif
#ifdef HAVE_ASAN
/* From <sanitizer/allocator_interface.h>, which gcc does not install. */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

/* Bytes currently allocated from the heap, from whichever allocator runs. */
static size_t heap_in_use(void)
{
#ifdef HAVE_ASAN
	return __sanitizer_get_current_allocated_bytes();
#else
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
#endif
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void exact_frame(void **state)
{
	struct vmlet_frame_reader r;
	struct vmlet_err e;
	uint8_t in[] = { 0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o' };
	size_t used, len;

	vmlet_frame_reader_init(&r, 64);
	assert_int_equal(vmlet_frame_feed(&r, in, sizeof(in), &used, &e), 1);
	assert_int_equal(used, sizeof(in));
	uint8_t *p = vmlet_frame_take(&r, &len);
	assert_non_null(p);
	assert_int_equal(len, 5);
	assert_memory_equal(p, "hello", 5);
	free(p);
	/* The reader is ready for the next frame and holds nothing. */
	assert_null(r.buf);
	assert_int_equal(r.hdr_got, 0);
	assert_null(vmlet_frame_take(&r, &len));
	assert_int_equal(len, 0);
	vmlet_frame_reader_reset(&r);
}

static void byte_by_byte(void **state)
{
	struct vmlet_frame_reader r;
	struct vmlet_err e;
	uint8_t in[4 + 300];
	size_t used, len;

	put_be32(in, 300);
	for (int i = 0; i < 300; i++)
		in[4 + i] = (uint8_t)i;
	vmlet_frame_reader_init(&r, 1024);
	for (size_t i = 0; i < sizeof(in); i++) {
		int rc = vmlet_frame_feed(&r, in + i, 1, &used, &e);
		assert_int_equal(used, 1);
		assert_int_equal(rc, i + 1 == sizeof(in) ? 1 : 0);
	}
	uint8_t *p = vmlet_frame_take(&r, &len);
	assert_int_equal(len, 300);
	assert_memory_equal(p, in + 4, 300);
	free(p);
	vmlet_frame_reader_reset(&r);
}

static void split_unevenly(void **state)
{
	struct vmlet_frame_reader r;
	struct vmlet_err e;
	uint8_t in[4 + 100];
	size_t used, len, off = 0;
	size_t steps[] = { 2, 1, 3, 50, 48 };

	put_be32(in, 100);
	memset(in + 4, 'x', 100);
	vmlet_frame_reader_init(&r, 100);
	for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
		int rc = vmlet_frame_feed(&r, in + off, steps[s], &used, &e);
		assert_int_equal(used, steps[s]);
		off += used;
		assert_int_equal(rc, off == sizeof(in) ? 1 : 0);
	}
	uint8_t *p = vmlet_frame_take(&r, &len);
	assert_int_equal(len, 100);
	free(p);
	vmlet_frame_reader_reset(&r);
}

static void two_frames_one_buffer(void **state)
{
	struct vmlet_frame_reader r;
	struct vmlet_err e;
	uint8_t in[] = { 0, 0, 0, 2, 'a', 'b', 0, 0, 0, 3, 'c', 'd', 'e' };
	size_t used, len;

	vmlet_frame_reader_init(&r, 16);
	assert_int_equal(vmlet_frame_feed(&r, in, sizeof(in), &used, &e), 1);
	assert_int_equal(used, 6); /* stops at the end of the first frame */
	/* Feeding while a frame waits to be taken consumes nothing. */
	size_t used2;
	assert_int_equal(vmlet_frame_feed(&r, in + used, sizeof(in) - used, &used2, &e), 1);
	assert_int_equal(used2, 0);
	uint8_t *p = vmlet_frame_take(&r, &len);
	assert_int_equal(len, 2);
	assert_memory_equal(p, "ab", 2);
	free(p);
	assert_int_equal(vmlet_frame_feed(&r, in + used, sizeof(in) - used, &used2, &e), 1);
	assert_int_equal(used2, 7);
	p = vmlet_frame_take(&r, &len);
	assert_int_equal(len, 3);
	assert_memory_equal(p, "cde", 3);
	free(p);
	vmlet_frame_reader_reset(&r);
}

static void truncated_needs_more(void **state)
{
	struct vmlet_frame_reader r;
	struct vmlet_err e;
	uint8_t in[] = { 0, 0, 0, 10, 'a', 'b', 'c' };
	size_t used, len;

	vmlet_frame_reader_init(&r, 16);
	assert_int_equal(vmlet_frame_feed(&r, in, 3, &used, &e), 0); /* short header */
	assert_int_equal(used, 3);
	assert_null(vmlet_frame_take(&r, &len));
	assert_int_equal(vmlet_frame_feed(&r, in + 3, sizeof(in) - 3, &used, &e), 0);
	assert_int_equal(used, 4);
	assert_null(vmlet_frame_take(&r, &len)); /* incomplete payload not handed out */
	assert_int_equal(r.got, 3);
	assert_int_equal(vmlet_frame_feed(&r, NULL, 0, &used, &e), 0);
	vmlet_frame_reader_reset(&r); /* frees the partial payload (ASan checks) */
	assert_null(r.buf);
	assert_int_equal(r.cap, 16);
}

static void oversize_rejected_without_allocating(void **state)
{
	struct vmlet_frame_reader r;
	struct vmlet_err e;
	uint8_t hdr[] = { 0xff, 0xff, 0xff, 0xf0 };
	size_t used;

	vmlet_frame_reader_init(&r, VMLET_FRAME_MAX_DEFAULT);
	size_t before = heap_in_use();
	assert_int_equal(vmlet_frame_feed(&r, hdr, sizeof(hdr), &used, &e), -1);
	size_t after = heap_in_use();
	assert_int_equal(e.code, VMLET_E_TOO_LARGE);
	assert_non_null(strstr(e.msg, "4294967280"));
	assert_null(r.buf);
	/* Not even a fraction of the announced 4 GiB was allocated. */
	assert_true(after < before + 4096);
	/* The reader stays failed: the stream must be closed. */
	assert_int_equal(vmlet_frame_feed(&r, (const uint8_t *)"x", 1, &used, &e), -1);
	vmlet_frame_reader_reset(&r);
}

static void zero_length_rejected(void **state)
{
	struct vmlet_frame_reader r;
	struct vmlet_err e;
	uint8_t in[] = { 0, 0, 0, 0, 0, 0, 0, 1, 'x' };
	size_t used;

	vmlet_frame_reader_init(&r, 16);
	assert_int_equal(vmlet_frame_feed(&r, in, sizeof(in), &used, &e), -1);
	assert_int_equal(e.code, VMLET_E_INVALID);
	assert_non_null(strstr(e.msg, "zero-length"));
	assert_null(r.buf);
	vmlet_frame_reader_reset(&r);
}

static void cap_boundary(void **state)
{
	struct vmlet_frame_reader r;
	struct vmlet_err e;
	uint8_t in[4 + 33];
	size_t used, len;

	memset(in, 'z', sizeof(in));
	put_be32(in, 32); /* exactly the cap */
	vmlet_frame_reader_init(&r, 32);
	assert_int_equal(vmlet_frame_feed(&r, in, 4 + 32, &used, &e), 1);
	free(vmlet_frame_take(&r, &len));
	assert_int_equal(len, 32);

	put_be32(in, 33); /* cap + 1 */
	assert_int_equal(vmlet_frame_feed(&r, in, sizeof(in), &used, &e), -1);
	assert_int_equal(e.code, VMLET_E_TOO_LARGE);
	assert_int_equal(used, 4); /* only the header was looked at */
	assert_null(r.buf);
	vmlet_frame_reader_reset(&r);
}

static void encode_round_trip(void **state)
{
	struct vmlet_frame_reader r;
	struct vmlet_err e;
	uint8_t *out;
	size_t out_len, used, len;

	assert_int_equal(vmlet_frame_encode((const uint8_t *)"abc", 3, &out, &out_len, &e), 0);
	assert_int_equal(out_len, 7);
	assert_memory_equal(out, "\0\0\0\3abc", 7);
	vmlet_frame_reader_init(&r, 0); /* 0 = default cap */
	assert_int_equal(r.cap, VMLET_FRAME_MAX_DEFAULT);
	assert_int_equal(vmlet_frame_feed(&r, out, out_len, &used, &e), 1);
	uint8_t *p = vmlet_frame_take(&r, &len);
	assert_memory_equal(p, "abc", 3);
	free(p);
	free(out);
	vmlet_frame_reader_reset(&r);

	assert_int_equal(vmlet_frame_encode((const uint8_t *)"", 0, &out, &out_len, &e), -1);
	assert_int_equal(e.code, VMLET_E_INVALID);
	assert_null(out);
}

/* ---- blocking I/O ---- */

static int sp[2];

static int setup_pair(void **state)
{
	return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp);
}

static int teardown_pair(void **state)
{
	if (sp[0] >= 0)
		close(sp[0]);
	if (sp[1] >= 0)
		close(sp[1]);
	return 0;
}

static void socketpair_round_trip(void **state)
{
	struct vmlet_io wio = vmlet_io_fd_template, rio = vmlet_io_fd_template;
	struct vmlet_err e;
	uint8_t *p;
	size_t len;

	wio.ctx = &sp[0];
	rio.ctx = &sp[1];
	assert_int_equal(vmlet_frame_write(&wio, (const uint8_t *)"one", 3, &e), 0);
	assert_int_equal(vmlet_frame_write(&wio, (const uint8_t *)"second", 6, &e), 0);
	assert_int_equal(vmlet_frame_read(&rio, 64, &p, &len, &e), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(p, "one", 3);
	free(p);
	assert_int_equal(vmlet_frame_read(&rio, 64, &p, &len, &e), 0);
	assert_int_equal(len, 6);
	assert_memory_equal(p, "second", 6);
	free(p);
	/* Clean EOF between frames. */
	close(sp[0]);
	sp[0] = -1;
	assert_int_equal(vmlet_frame_read(&rio, 64, &p, &len, &e), -1);
	assert_int_equal(e.code, VMLET_E_UNAVAILABLE);
	assert_string_equal(e.msg, "connection closed");
	assert_null(p);
}

static void socketpair_eof_mid_payload(void **state)
{
	struct vmlet_io rio = vmlet_io_fd_template;
	struct vmlet_err e;
	uint8_t in[] = { 0, 0, 0, 10, 'a', 'b', 'c' };
	uint8_t *p;
	size_t len;

	rio.ctx = &sp[1];
	assert_int_equal(write(sp[0], in, sizeof(in)), (ssize_t)sizeof(in));
	close(sp[0]);
	sp[0] = -1;
	assert_int_equal(vmlet_frame_read(&rio, 64, &p, &len, &e), -1);
	assert_int_equal(e.code, VMLET_E_INVALID);
	assert_non_null(strstr(e.msg, "after 3 of 10 payload bytes"));
	assert_null(p);
}

static void socketpair_eof_mid_header(void **state)
{
	struct vmlet_io rio = vmlet_io_fd_template;
	struct vmlet_err e;
	uint8_t *p;
	size_t len;

	rio.ctx = &sp[1];
	assert_int_equal(write(sp[0], "\0\0", 2), 2);
	close(sp[0]);
	sp[0] = -1;
	assert_int_equal(vmlet_frame_read(&rio, 64, &p, &len, &e), -1);
	assert_int_equal(e.code, VMLET_E_INVALID);
	assert_non_null(strstr(e.msg, "after 2 of 4 header bytes"));
}

static void socketpair_oversize_and_zero(void **state)
{
	struct vmlet_io rio = vmlet_io_fd_template;
	struct vmlet_err e;
	uint8_t hdr[4];
	uint8_t *p;
	size_t len;

	rio.ctx = &sp[1];
	/* Only the header is sent and the writer stays open: if the reader
	 * tried to read (or allocate) the payload before checking the cap it
	 * would block here instead of failing. */
	put_be32(hdr, 65);
	assert_int_equal(write(sp[0], hdr, 4), 4);
	assert_int_equal(vmlet_frame_read(&rio, 64, &p, &len, &e), -1);
	assert_int_equal(e.code, VMLET_E_TOO_LARGE);
	assert_null(p);

	put_be32(hdr, 0);
	assert_int_equal(write(sp[0], hdr, 4), 4);
	assert_int_equal(vmlet_frame_read(&rio, 64, &p, &len, &e), -1);
	assert_int_equal(e.code, VMLET_E_INVALID);
}

static void write_to_closed_peer_fails(void **state)
{
	struct vmlet_io wio = vmlet_io_fd_template;
	struct vmlet_err e;

	wio.ctx = &sp[0];
	close(sp[1]);
	sp[1] = -1;
	/* MSG_NOSIGNAL: EPIPE instead of a SIGPIPE that would kill the test. */
	assert_int_equal(vmlet_frame_write(&wio, (const uint8_t *)"x", 1, &e), -1);
	assert_int_equal(e.code, VMLET_E_UNAVAILABLE);
	assert_int_equal(e.sys_errno, EPIPE);
}

/* A transport that moves at most one byte per call and fails every other
 * call with EINTR: read/write must loop over both. */
struct dribble {
	uint8_t buf[64];
	size_t len, pos;
	unsigned calls;
};

static ssize_t dribble_read(void *ctx, void *buf, size_t len)
{
	struct dribble *d = ctx;

	if (d->calls++ % 2 == 0) {
		errno = EINTR;
		return -1;
	}
	if (d->pos == d->len)
		return 0;
	if (len == 0)
		return 0;
	((uint8_t *)buf)[0] = d->buf[d->pos++];
	return 1;
}

static ssize_t dribble_write(void *ctx, const void *buf, size_t len)
{
	struct dribble *d = ctx;

	if (d->calls++ % 2 == 0) {
		errno = EINTR;
		return -1;
	}
	if (d->len == sizeof(d->buf)) {
		errno = ENOSPC;
		return -1;
	}
	d->buf[d->len++] = ((const uint8_t *)buf)[0];
	return 1;
}

static void short_io_and_eintr(void **state)
{
	struct dribble d = { 0 };
	struct vmlet_io io = { dribble_read, dribble_write, &d };
	struct vmlet_err e;
	uint8_t *p;
	size_t len;

	assert_int_equal(vmlet_frame_write(&io, (const uint8_t *)"payload", 7, &e), 0);
	assert_int_equal(d.len, 11);
	assert_memory_equal(d.buf, "\0\0\0\7payload", 11);
	d.calls = 0;
	assert_int_equal(vmlet_frame_read(&io, 64, &p, &len, &e), 0);
	assert_int_equal(len, 7);
	assert_memory_equal(p, "payload", 7);
	free(p);

	/* A transport error other than EINTR is reported with its errno. */
	d.len = sizeof(d.buf);
	d.calls = 1;
	assert_int_equal(vmlet_frame_write(&io, (const uint8_t *)"x", 1, &e), -1);
	assert_int_equal(e.sys_errno, ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(exact_frame),
		cmocka_unit_test(byte_by_byte),
		cmocka_unit_test(split_unevenly),
		cmocka_unit_test(two_frames_one_buffer),
		cmocka_unit_test(truncated_needs_more),
		cmocka_unit_test(oversize_rejected_without_allocating),
		cmocka_unit_test(zero_length_rejected),
		cmocka_unit_test(cap_boundary),
		cmocka_unit_test(encode_round_trip),
		cmocka_unit_test_setup_teardown(socketpair_round_trip, setup_pair, teardown_pair),
		cmocka_unit_test_setup_teardown(socketpair_eof_mid_payload, setup_pair, teardown_pair),
		cmocka_unit_test_setup_teardown(socketpair_eof_mid_header, setup_pair, teardown_pair),
		cmocka_unit_test_setup_teardown(socketpair_oversize_and_zero, setup_pair, teardown_pair),
		cmocka_unit_test_setup_teardown(write_to_closed_peer_fails, setup_pair, teardown_pair),
		cmocka_unit_test(short_io_and_eintr),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
