/* Strict protobuf decoding: the deny_unknown_fields rule.
 *
 * protobuf-c accepts a lot that we must not: it keeps unknown fields in
 * message->unknown_fields, stores any integer in an enum field, copies
 * string bytes without checking UTF-8 (and cuts a string at an embedded
 * NUL when C reads it back), and leaves a oneof unset when none of its
 * members arrived. One generic walker over the descriptors rejects all of
 * that at any depth, naming the offending field by its proto path
 * ("reconcile.desired_state.tenants[2].pools[0]: unknown field number 99").
 * There is no per-message code: a new message in a .proto is covered. */
#include "rpc/strict.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/path.h"

/* Our schemas nest 5 deep; anything near this is hostile or a bug. */
#define STRICT_MAX_DEPTH 32

int vmlet_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		unsigned c = p[i];
		size_t more;
		uint32_t cp, min;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) { /* C0, C1 would be overlong */
			more = 1;
			cp = c & 0x1F;
			min = 0x80;
		} else if ((c & 0xF0) == 0xE0) {
			more = 2;
			cp = c & 0x0F;
			min = 0x800;
		} else if (c >= 0xF0 && c <= 0xF4) { /* F5.. would be > U+10FFFF */
			more = 3;
			cp = c & 0x07;
			min = 0x10000;
		} else {
			return 0; /* stray continuation byte, C0/C1, F5..FF */
		}
		if (len - i - 1 < more)
			return 0;
		for (size_t k = 1; k <= more; k++) {
			unsigned b = p[i + k];

			if ((b & 0xC0) != 0x80)
				return 0;
			cp = cp << 6 | (b & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return 0;
		i += more + 1;
	}
	return 1;
}

/* ---- field path ("tenants[2].pools[0].pool_id") ------------------------- */

struct strict_walk {
	struct vmlet_path path;
	const char *root; /* message type name, used when the path is empty */
	struct vmlet_err *err;
};

static size_t path_field(struct strict_walk *w, const char *name)
{
	return w->path.len ? vmlet_path_append(&w->path, ".%s", name)
			   : vmlet_path_append(&w->path, "%s", name);
}

static int walk_fail(struct strict_walk *w, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int walk_fail(struct strict_walk *w, int code, const char *fmt, ...)
{
	char what[VMLET_ERR_MSG_MAX / 2];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return vmlet_err_set(w->err, code, 0, "%s: %s", w->path.len ? w->path.buf : w->root, what);
}

/* ---- the walker ---------------------------------------------------------- */

static int walk_message(struct strict_walk *w, const ProtobufCMessage *msg,
			const ProtobufCMessageDescriptor *want, int depth);

static uint32_t oneof_case(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
	/* protobuf-c stores the case as an int-sized enum holding the member's
	 * field number, at the member's quantifier_offset. */
	return *(const uint32_t *)((const char *)msg + f->quantifier_offset);
}

/* Members of one oneof share the quantifier_offset (their case field). */
static int oneof_first_member(const ProtobufCMessageDescriptor *d, unsigned i)
{
	for (unsigned j = 0; j < i; j++)
		if ((d->fields[j].flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    d->fields[j].quantifier_offset == d->fields[i].quantifier_offset)
			return 0;
	return 1;
}

static int check_oneof(struct strict_walk *w, const ProtobufCMessage *msg, unsigned first)
{
	const ProtobufCMessageDescriptor *d = msg->descriptor;
	const ProtobufCFieldDescriptor *f = &d->fields[first];
	uint32_t c = oneof_case(msg, f);
	char members[VMLET_ERR_MSG_MAX / 4];
	size_t ml = 0;

	for (unsigned j = first; j < d->n_fields; j++) {
		const ProtobufCFieldDescriptor *m = &d->fields[j];

		if (!(m->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) ||
		    m->quantifier_offset != f->quantifier_offset)
			continue;
		if (c != 0 && m->id == c)
			return 0;
		if (ml < sizeof(members)) {
			int n = snprintf(members + ml, sizeof(members) - ml, "%s%s",
					 ml ? ", " : "", m->name);
			if (n > 0)
				ml += (size_t)n;
		}
	}
	if (c == 0)
		return walk_fail(w, VMLET_E_INVALID, "no member of oneof set (expected one of %s)",
				 members);
	return walk_fail(w, VMLET_E_INVALID, "oneof case %u names no member (expected one of %s)",
			 c, members);
}

/* Check one value of a field (a singular value or one repeated element). */
static int check_value(struct strict_walk *w, const ProtobufCFieldDescriptor *f, const void *p,
		       int repeated, int depth)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumDescriptor *ed = f->descriptor;
		int v = *(const int *)p;

		if (!protobuf_c_enum_descriptor_get_value(ed, v))
			return walk_fail(w, VMLET_E_INVALID, "unknown enum value %d for %s", v,
					 ed->name);
		return 0;
	}
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)p;

		if (!s) /* proto2 optional: absent; a NULL repeated element is not */
			return repeated ? walk_fail(w, VMLET_E_INVALID, "missing string") : 0;
		if (!vmlet_utf8_valid(s, strlen(s)))
			return walk_fail(w, VMLET_E_INVALID, "invalid UTF-8");
		return 0;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;

		if (!sub) /* an absent sub-message is NULL */
			return repeated ? walk_fail(w, VMLET_E_INVALID, "missing message") : 0;
		return walk_message(w, sub, f->descriptor, depth + 1);
	}
	default:
		return 0; /* every bit pattern of a number or bool is a valid value */
	}
}

static size_t element_size(ProtobufCType type)
{
	switch (type) {
	case PROTOBUF_C_TYPE_ENUM:
		return sizeof(int);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	default:
		return 0; /* nothing to check in the element */
	}
}

static int walk_message(struct strict_walk *w, const ProtobufCMessage *msg,
			const ProtobufCMessageDescriptor *want, int depth)
{
	const ProtobufCMessageDescriptor *d = msg->descriptor;

	if (depth > STRICT_MAX_DEPTH)
		return walk_fail(w, VMLET_E_INVALID, "nesting deeper than %d", STRICT_MAX_DEPTH);
	if (!d || d->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC || (want && d != want))
		return walk_fail(w, VMLET_E_INTERNAL, "message of the wrong type (want %s)",
				 want ? want->name : "a message");
	if (msg->n_unknown_fields > 0)
		return walk_fail(w, VMLET_E_INVALID, "unknown field number %u",
				 msg->unknown_fields[0].tag);

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *member = (const char *)msg + f->offset;
		size_t old;
		int rc = 0;

		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			if (oneof_first_member(d, i) && check_oneof(w, msg, i) < 0)
				return -1;
			if (oneof_case(msg, f) != f->id)
				continue; /* the union holds another member */
		}

		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)((const char *)msg + f->quantifier_offset);
			size_t esz = element_size(f->type);
			const char *arr = *(char *const *)member;

			if (esz == 0 || n == 0)
				continue;
			if (!arr) {
				old = path_field(w, f->name);
				rc = walk_fail(w, VMLET_E_INTERNAL, "%zu elements but no array", n);
				vmlet_path_restore(&w->path, old);
				return rc;
			}
			for (size_t k = 0; k < n && rc == 0; k++) {
				old = path_field(w, f->name);
				vmlet_path_append(&w->path, "[%zu]", k);
				rc = check_value(w, f, arr + k * esz, 1, depth);
				vmlet_path_restore(&w->path, old);
			}
		} else {
			old = path_field(w, f->name);
			rc = check_value(w, f, member, 0, depth);
			vmlet_path_restore(&w->path, old);
		}
		if (rc < 0)
			return -1;
	}
	return 0;
}

int vmlet_strict_check(const ProtobufCMessage *msg, struct vmlet_err *err)
{
	struct strict_walk w = { .err = err };

	if (!msg || !msg->descriptor)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "strict check of a NULL message");
	w.root = msg->descriptor->name;
	return walk_message(&w, msg, NULL, 0);
}

/* ---- wire-level scan ------------------------------------------------------
 * One thing cannot be seen in the unpacked C structs: a string with a NUL
 * byte inside, which C code would silently read as a shorter string
 * ("tenant-a\0../x" -> "tenant-a"). So the wire bytes are walked once
 * more, guided by the same descriptors, and such strings are rejected.
 * protobuf-c has already accepted the bytes, so structure errors here are
 * unexpected but still reported. */

static int wire_varint(const uint8_t *p, size_t len, size_t *off, uint64_t *v)
{
	uint64_t r = 0;

	for (unsigned shift = 0; shift < 64; shift += 7) {
		uint8_t b;

		if (*off >= len)
			return -1;
		b = p[(*off)++];
		r |= (uint64_t)(b & 0x7F) << shift;
		if (!(b & 0x80)) {
			*v = r;
			return 0;
		}
	}
	return -1;
}

static int wire_scan(struct strict_walk *w, const ProtobufCMessageDescriptor *d,
		     const uint8_t *p, size_t len, int depth)
{
	size_t off = 0;
	size_t *seen; /* per field: repeated elements met so far, for [i] */
	int rc = 0;

	if (depth > STRICT_MAX_DEPTH)
		return walk_fail(w, VMLET_E_INVALID, "nesting deeper than %d", STRICT_MAX_DEPTH);
	seen = calloc(d->n_fields ? d->n_fields : 1, sizeof(*seen));
	if (!seen)
		return vmlet_err_set(w->err, VMLET_E_INTERNAL, ENOMEM, "out of memory");

	while (off < len && rc == 0) {
		uint64_t key, l;
		const ProtobufCFieldDescriptor *f;

		if (wire_varint(p, len, &off, &key) < 0) {
			rc = walk_fail(w, VMLET_E_INVALID, "malformed protobuf");
			break;
		}
		f = key >> 3 <= UINT32_MAX ?
			protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3)) : NULL;
		switch (key & 7) {
		case 0:
			if (wire_varint(p, len, &off, &l) < 0)
				rc = walk_fail(w, VMLET_E_INVALID, "malformed protobuf");
			break;
		case 1:
		case 5: {
			size_t sz = (key & 7) == 1 ? 8 : 4;

			if (len - off < sz)
				rc = walk_fail(w, VMLET_E_INVALID, "malformed protobuf");
			else
				off += sz;
			break;
		}
		case 2: {
			const uint8_t *body;
			size_t old;

			if (wire_varint(p, len, &off, &l) < 0 || l > len - off) {
				rc = walk_fail(w, VMLET_E_INVALID, "malformed protobuf");
				break;
			}
			body = p + off;
			off += (size_t)l;
			if (!f || (f->type != PROTOBUF_C_TYPE_STRING &&
				   f->type != PROTOBUF_C_TYPE_MESSAGE))
				break;
			old = path_field(w, f->name);
			if (f->label == PROTOBUF_C_LABEL_REPEATED)
				vmlet_path_append(&w->path, "[%zu]", seen[f - d->fields]++);
			if (f->type == PROTOBUF_C_TYPE_STRING) {
				if (memchr(body, 0, (size_t)l))
					rc = walk_fail(w, VMLET_E_INVALID, "string contains a NUL byte");
			} else {
				rc = wire_scan(w, f->descriptor, body, (size_t)l, depth + 1);
			}
			vmlet_path_restore(&w->path, old);
			break;
		}
		default: /* groups: protobuf-c does not accept them either */
			rc = walk_fail(w, VMLET_E_INVALID, "malformed protobuf");
			break;
		}
	}
	free(seen);
	return rc;
}

ProtobufCMessage *vmlet_strict_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *buf,
				      size_t len, struct vmlet_err *err)
{
	ProtobufCMessage *msg;
	struct strict_walk w = { .err = err, .root = desc->name };

	if (!buf && len > 0) {
		vmlet_err_set(err, VMLET_E_INTERNAL, 0, "unpacking %zu bytes from NULL", len);
		return NULL;
	}
	msg = protobuf_c_message_unpack(desc, NULL, len, buf);
	if (!msg) {
		vmlet_err_set(err, VMLET_E_INVALID, 0, "malformed protobuf");
		return NULL;
	}
	if (walk_message(&w, msg, desc, 0) < 0 || wire_scan(&w, desc, buf, len, 0) < 0) {
		protobuf_c_message_free_unpacked(msg, NULL);
		return NULL;
	}
	return msg;
}

int vmlet_pack(const ProtobufCMessage *msg, uint8_t **out, size_t *len, struct vmlet_err *err)
{
	size_t sz = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf;

	*out = NULL;
	*len = 0;
	/* malloc(0) may return NULL; an empty message is a valid 0-byte pack. */
	buf = malloc(sz ? sz : 1);
	if (!buf)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "packing %s (%zu bytes): out of memory",
				     msg->descriptor->name, sz);
	if (protobuf_c_message_pack(msg, buf) != sz) {
		free(buf);
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "packing %s: size changed while packing",
				     msg->descriptor->name);
	}
	*out = buf;
	*len = sz;
	return 0;
}
