#include "hostd/reply.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each allocation is its own chunk on a list: replies are small (a few
 * messages, at most a few thousand list entries), so a bump allocator
 * would buy nothing but code. */
struct hostd_reply_chunk {
	struct hostd_reply_chunk *next;
	max_align_t data[];
};

void hostd_reply_init(struct hostd_reply *r)
{
	memset(r, 0, sizeof(*r));
	vmlet__host__v1__host_response__init(&r->resp);
	vmlet__host__v1__host_error__init(&r->error);
}

void *hostd_reply_alloc(struct hostd_reply *r, size_t size)
{
	struct hostd_reply_chunk *c;

	if (size > SIZE_MAX - sizeof(*c)) {
		r->oom = true;
		return NULL;
	}
	c = calloc(1, sizeof(*c) + size);
	if (!c) {
		r->oom = true;
		return NULL;
	}
	c->next = r->chunks;
	r->chunks = c;
	return c->data;
}

void *hostd_reply_alloc_array(struct hostd_reply *r, size_t n, size_t elem)
{
	if (n == 0)
		return NULL;
	if (elem && n > SIZE_MAX / elem) {
		r->oom = true;
		return NULL;
	}
	return hostd_reply_alloc(r, n * elem);
}

char *hostd_reply_strdup(struct hostd_reply *r, const char *s)
{
	size_t len;
	char *d;

	if (!s || !*s)
		return (char *)protobuf_c_empty_string;
	len = strlen(s);
	d = hostd_reply_alloc(r, len + 1);
	if (!d)
		return (char *)protobuf_c_empty_string;
	memcpy(d, s, len + 1);
	return d;
}

void hostd_reply_set_error(struct hostd_reply *r, const struct vmlet_err *err)
{
	int code = err && err->code ? err->code : VMLET_E_INTERNAL;

	snprintf(r->error_msg, sizeof(r->error_msg), "%s",
		 err && err->msg[0] ? err->msg : vmlet_code_name(code));
	/* The message may quote request values and may have been truncated
	 * mid-character; the peer decodes strictly and would reject bad
	 * UTF-8. Messages are ASCII by design, so non-ASCII bytes (only ever
	 * inside quoted values) become '?'. */
	for (char *p = r->error_msg; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	vmlet__host__v1__host_error__init(&r->error);
	r->error.code = (uint32_t)code;
	r->error.message = r->error_msg;
	r->error.sys_errno = err ? err->sys_errno : 0;
	r->resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT_ERROR;
	r->resp.error = &r->error;
}

void hostd_reply_free(struct hostd_reply *r)
{
	struct hostd_reply_chunk *c = r->chunks, *next;

	for (; c; c = next) {
		next = c->next;
		free(c);
	}
	r->chunks = NULL;
	r->resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT__NOT_SET;
}
