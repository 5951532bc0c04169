/* Generic JSON <-> protobuf-c codec (jansson), driven by the descriptors.
 *
 * Desired state is written by people (and by mvm) as JSON, and hostd keeps
 * its registry records as JSON; both go through this one codec so every
 * message gets the same strict rules: proto field names as keys, unknown
 * keys rejected, exact JSON types, integer ranges per field type, valid
 * UTF-8, strict base64 for bytes, enum names, one member per oneof and a
 * nesting limit. Every rejection names the JSON path of the value.
 *
 * Decoded messages are allocated exactly the way protobuf_c_message_unpack
 * allocates (malloc'd message, sub-messages, arrays, strings and bytes;
 * untouched strings stay at the descriptor default), so callers free them
 * with protobuf_c_message_free_unpacked(msg, NULL) like any unpacked one.
 * The message is kept freeable at every step, so a failure half-way
 * through is released the same way. */
#include "rpc/json.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/path.h"
#include "rpc/strict.h"
#include "shared/log.h"

#define JSON_MAX_DEPTH 32

/* ---- JSON path for error messages ("$.tenants[1].pools[0]") ------------- */

struct jctx {
	struct vmlet_path path;
	struct vmlet_err *err;
};

static void jctx_init(struct jctx *c, struct vmlet_err *err)
{
	c->path.buf[0] = '$';
	c->path.buf[1] = '\0';
	c->path.len = 1;
	c->err = err;
}

static int jfail(struct jctx *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int jfail(struct jctx *c, int code, const char *fmt, ...)
{
	char what[VMLET_ERR_MSG_MAX / 2];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return vmlet_err_set(c->err, code, 0, "%s: %s", c->path.buf, what);
}

static const char *json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a number with a fraction or exponent";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	}
	return "an unknown JSON value";
}

/* An object key as it may appear in a path or message: plain names as is,
 * anything else quoted and escaped (keys come from untrusted input). */
static const char *key_display(const char *key, size_t klen, char *buf, size_t size)
{
	int plain = klen > 0 && klen < 64 && strlen(key) == klen;

	for (size_t i = 0; plain && i < klen; i++) {
		char ch = key[i];

		plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			(ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
	}
	if (plain) {
		snprintf(buf, size, "%s", key);
		return buf;
	}
	return vlog_str(key, buf, size);
}

/* ---- protobuf-c layout helpers --------------------------------------------- */

static size_t element_size(ProtobufCType type)
{
	switch (type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_ENUM:
		return 4;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	}
	return 0;
}

static void *field_ptr(ProtobufCMessage *msg, unsigned offset)
{
	return (char *)msg + offset;
}

static const void *field_cptr(const ProtobufCMessage *msg, unsigned offset)
{
	return (const char *)msg + offset;
}

/* proto2 `optional` scalars (and bytes) carry a has_ flag; proto3 fields,
 * strings and messages do not. */
static int has_presence_flag(const ProtobufCFieldDescriptor *f)
{
	return f->label == PROTOBUF_C_LABEL_OPTIONAL && !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
	       f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE;
}

static ProtobufCMessage *message_new(const ProtobufCMessageDescriptor *desc, struct jctx *c)
{
	ProtobufCMessage *m = malloc(desc->sizeof_message);

	if (!m) {
		vmlet_err_set(c->err, VMLET_E_INTERNAL, ENOMEM, "allocating %s: out of memory",
			      desc->name);
		return NULL;
	}
	protobuf_c_message_init(desc, m);
	return m;
}

/* ---- enum names -------------------------------------------------------------
 * "INSTANCE_STATE_RUNNING" <-> "running": the prefix shared by every value
 * of the enum, cut back to an underscore, is dropped and the rest
 * lowercased. */

static size_t enum_prefix_len(const ProtobufCEnumDescriptor *ed)
{
	size_t n;

	if (ed->n_values < 2)
		return 0;
	n = strlen(ed->values[0].name);
	for (unsigned i = 1; i < ed->n_values; i++) {
		const char *a = ed->values[0].name, *b = ed->values[i].name;
		size_t k = 0;

		while (k < n && a[k] && a[k] == b[k])
			k++;
		n = k;
	}
	while (n > 0 && ed->values[0].name[n - 1] != '_')
		n--;
	return n;
}

static void enum_short_name(const ProtobufCEnumDescriptor *ed, const char *full, char *buf,
			    size_t size)
{
	const char *s = full + enum_prefix_len(ed);
	size_t i = 0;

	for (; s[i] && i + 1 < size; i++)
		buf[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
	buf[i] = '\0';
}

static const ProtobufCEnumValue *enum_lookup(const ProtobufCEnumDescriptor *ed, const char *name)
{
	char shortn[128];

	for (unsigned i = 0; i < ed->n_values; i++) {
		if (strcmp(ed->values[i].name, name) == 0)
			return &ed->values[i];
		enum_short_name(ed, ed->values[i].name, shortn, sizeof(shortn));
		if (strcmp(shortn, name) == 0)
			return &ed->values[i];
	}
	return NULL;
}

static void enum_list(const ProtobufCEnumDescriptor *ed, char *buf, size_t size)
{
	size_t used = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < ed->n_values && used < size; i++) {
		char shortn[128];
		int n;

		enum_short_name(ed, ed->values[i].name, shortn, sizeof(shortn));
		n = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", shortn);
		if (n < 0)
			break;
		used += (size_t)n;
	}
}

/* ---- base64 (RFC 4648, standard alphabet, padded, canonical only) ---------- */

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

static char *b64_encode(const uint8_t *data, size_t len)
{
	size_t out_len = (len + 2) / 3 * 4;
	char *out = malloc(out_len + 1);
	size_t o = 0;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)data[i] << 16;
		size_t rem = len - i;

		if (rem > 1)
			v |= (uint32_t)data[i + 1] << 8;
		if (rem > 2)
			v |= data[i + 2];
		out[o++] = b64_alphabet[v >> 18 & 63];
		out[o++] = b64_alphabet[v >> 12 & 63];
		out[o++] = rem > 1 ? b64_alphabet[v >> 6 & 63] : '=';
		out[o++] = rem > 2 ? b64_alphabet[v & 63] : '=';
	}
	out[o] = '\0';
	return out;
}

/* Strict: no whitespace, no missing padding, padding only at the end, and
 * the unused low bits of the last symbol must be zero, so each byte string
 * has exactly one accepted spelling. *out is NULL for an empty string,
 * as protobuf-c leaves empty bytes. */
static int b64_decode(struct jctx *c, const char *s, size_t len, uint8_t **out, size_t *out_len)
{
	size_t pad = 0, n, o = 0;
	uint8_t *buf;

	*out = NULL;
	*out_len = 0;
	if (len == 0)
		return 0;
	if (len % 4 != 0)
		return jfail(c, VMLET_E_INVALID, "invalid base64: length %zu is not a multiple of 4", len);
	if (s[len - 1] == '=')
		pad = s[len - 2] == '=' ? 2 : 1;
	n = len / 4 * 3 - pad;
	buf = malloc(n ? n : 1);
	if (!buf)
		return vmlet_err_set(c->err, VMLET_E_INTERNAL, ENOMEM, "base64: out of memory");
	for (size_t i = 0; i < len; i += 4) {
		int v[4];
		int last = i + 4 == len;

		for (int k = 0; k < 4; k++) {
			v[k] = b64_value((unsigned char)s[i + k]);
			if (v[k] < 0 && !(last && s[i + k] == '=' && k >= 4 - (int)pad)) {
				free(buf);
				return jfail(c, VMLET_E_INVALID, "invalid base64 character at offset %zu",
					     i + (size_t)k);
			}
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
			     (uint32_t)(v[2] < 0 ? 0 : v[2]) << 6 | (uint32_t)(v[3] < 0 ? 0 : v[3]);
		if (last && ((pad == 1 && (w & 0xFF)) || (pad == 2 && (w & 0xFFFF)))) {
			free(buf);
			return jfail(c, VMLET_E_INVALID, "invalid base64: non-zero padding bits");
		}
		buf[o++] = (uint8_t)(w >> 16);
		if (!(last && pad == 2))
			buf[o++] = (uint8_t)(w >> 8);
		if (!(last && pad >= 1))
			buf[o++] = (uint8_t)w;
	}
	*out = buf;
	*out_len = n;
	return 0;
}

/* ---- JSON -> message --------------------------------------------------------- */

/* Containers nested deeper than JSON_MAX_DEPTH anywhere in the document are
 * rejected before any conversion, whatever keys they sit under. */
static int check_depth(struct jctx *c, const json_t *v, int depth)
{
	if (!json_is_object(v) && !json_is_array(v))
		return 0;
	if (depth > JSON_MAX_DEPTH)
		return jfail(c, VMLET_E_INVALID, "nesting deeper than %d", JSON_MAX_DEPTH);
	if (json_is_array(v)) {
		for (size_t i = 0; i < json_array_size(v); i++) {
			size_t old = vmlet_path_append(&c->path, "[%zu]", i);
			int rc = check_depth(c, json_array_get(v, i), depth + 1);

			vmlet_path_restore(&c->path, old);
			if (rc < 0)
				return -1;
		}
		return 0;
	}
	for (void *it = json_object_iter((json_t *)v); it;
	     it = json_object_iter_next((json_t *)v, it)) {
		char kb[96];
		const char *k = key_display(json_object_iter_key(it), json_object_iter_key_len(it),
					    kb, sizeof(kb));
		size_t old = k[0] == '"' ? vmlet_path_append(&c->path, "[%s]", k)
					 : vmlet_path_append(&c->path, ".%s", k);
		int rc = check_depth(c, json_object_iter_value(it), depth + 1);

		vmlet_path_restore(&c->path, old);
		if (rc < 0)
			return -1;
	}
	return 0;
}

static int want_int(struct jctx *c, const json_t *v, json_int_t min, json_int_t max, json_int_t *out)
{
	if (!json_is_integer(v)) {
		if (json_is_real(v))
			return jfail(c, VMLET_E_INVALID,
				     "expected an integer %" JSON_INTEGER_FORMAT "..%" JSON_INTEGER_FORMAT
				     ", got %g",
				     min, max, json_real_value(v));
		return jfail(c, VMLET_E_INVALID,
			     "expected an integer %" JSON_INTEGER_FORMAT "..%" JSON_INTEGER_FORMAT
			     ", got %s",
			     min, max, json_type_name(v));
	}
	*out = json_integer_value(v);
	if (*out < min || *out > max)
		return jfail(c, VMLET_E_INVALID,
			     "expected an integer %" JSON_INTEGER_FORMAT "..%" JSON_INTEGER_FORMAT
			     ", got %" JSON_INTEGER_FORMAT,
			     min, max, *out);
	return 0;
}

static int want_number(struct jctx *c, const json_t *v, double limit, double *out)
{
	if (!json_is_number(v))
		return jfail(c, VMLET_E_INVALID, "expected a number, got %s", json_type_name(v));
	*out = json_number_value(v);
	if (!isfinite(*out) || fabs(*out) > limit)
		return jfail(c, VMLET_E_INVALID, "number %g is out of range", *out);
	return 0;
}

static int decode_message(struct jctx *c, ProtobufCMessage *msg, const json_t *obj, int depth);

/* Decode one non-message value into dst (a struct member or an array
 * element). Allocates only on success, so a failure leaves dst as it was. */
static int decode_scalar(struct jctx *c, const ProtobufCFieldDescriptor *f, const json_t *v,
			 void *dst)
{
	json_int_t i;
	double d;

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		if (want_int(c, v, INT32_MIN, INT32_MAX, &i) < 0)
			return -1;
		*(int32_t *)dst = (int32_t)i;
		return 0;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		if (want_int(c, v, 0, UINT32_MAX, &i) < 0)
			return -1;
		*(uint32_t *)dst = (uint32_t)i;
		return 0;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		if (want_int(c, v, INT64_MIN, INT64_MAX, &i) < 0)
			return -1;
		*(int64_t *)dst = i;
		return 0;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		/* jansson integers are signed 64-bit: 2^63-1 is the ceiling. */
		if (want_int(c, v, 0, INT64_MAX, &i) < 0)
			return -1;
		*(uint64_t *)dst = (uint64_t)i;
		return 0;
	case PROTOBUF_C_TYPE_FLOAT:
		if (want_number(c, v, FLT_MAX, &d) < 0)
			return -1;
		*(float *)dst = (float)d;
		return 0;
	case PROTOBUF_C_TYPE_DOUBLE:
		if (want_number(c, v, DBL_MAX, &d) < 0)
			return -1;
		*(double *)dst = d;
		return 0;
	case PROTOBUF_C_TYPE_BOOL:
		if (!json_is_boolean(v))
			return jfail(c, VMLET_E_INVALID, "expected true or false, got %s",
				     json_type_name(v));
		*(protobuf_c_boolean *)dst = json_is_true(v);
		return 0;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumDescriptor *ed = f->descriptor;
		const ProtobufCEnumValue *ev;
		char names[200];

		if (json_is_string(v)) {
			ev = strlen(json_string_value(v)) == json_string_length(v) ?
				     enum_lookup(ed, json_string_value(v)) : NULL;
			if (ev) {
				*(int *)dst = ev->value;
				return 0;
			}
		}
		enum_list(ed, names, sizeof(names));
		if (json_is_string(v)) {
			char vb[80];

			return jfail(c, VMLET_E_INVALID, "unknown %s %s (expected one of: %s)", ed->name,
				     vlog_str(json_string_value(v), vb, sizeof(vb)), names);
		}
		return jfail(c, VMLET_E_INVALID, "expected a %s name (one of: %s), got %s", ed->name,
			     names, json_type_name(v));
	}
	case PROTOBUF_C_TYPE_STRING: {
		const char *s;
		size_t len;
		char *copy;

		if (!json_is_string(v))
			return jfail(c, VMLET_E_INVALID, "expected a string, got %s", json_type_name(v));
		s = json_string_value(v);
		len = json_string_length(v);
		if (memchr(s, 0, len))
			return jfail(c, VMLET_E_INVALID, "string contains a NUL character");
		if (!vmlet_utf8_valid(s, len))
			return jfail(c, VMLET_E_INVALID, "invalid UTF-8");
		copy = malloc(len + 1);
		if (!copy)
			return vmlet_err_set(c->err, VMLET_E_INTERNAL, ENOMEM, "out of memory");
		memcpy(copy, s, len + 1);
		*(char **)dst = copy;
		return 0;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		ProtobufCBinaryData *bd = dst;
		uint8_t *data;
		size_t len;

		if (!json_is_string(v))
			return jfail(c, VMLET_E_INVALID, "expected a base64 string, got %s",
				     json_type_name(v));
		if (b64_decode(c, json_string_value(v), json_string_length(v), &data, &len) < 0)
			return -1;
		bd->data = data;
		bd->len = len;
		return 0;
	}
	case PROTOBUF_C_TYPE_MESSAGE:
		break;
	}
	return jfail(c, VMLET_E_INTERNAL, "unsupported field type %d", (int)f->type);
}

static int decode_repeated(struct jctx *c, ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
			   const json_t *v, int depth)
{
	size_t *count = field_ptr(msg, f->quantifier_offset);
	void **arrp = field_ptr(msg, f->offset);
	size_t esz = element_size(f->type);
	size_t n;
	char *arr;

	if (!json_is_array(v))
		return jfail(c, VMLET_E_INVALID, "expected an array, got %s", json_type_name(v));
	n = json_array_size(v);
	if (n == 0)
		return 0;
	arr = calloc(n, esz);
	if (!arr)
		return vmlet_err_set(c->err, VMLET_E_INTERNAL, ENOMEM, "out of memory");
	/* The count grows with each finished element, so free_unpacked
	 * releases exactly what was built if a later element fails. */
	*arrp = arr;
	*count = 0;
	for (size_t i = 0; i < n; i++) {
		const json_t *elem = json_array_get(v, i);
		size_t old = vmlet_path_append(&c->path, "[%zu]", i);
		int rc;

		if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
			ProtobufCMessage *sub;

			if (!json_is_object(elem)) {
				rc = jfail(c, VMLET_E_INVALID, "expected an object, got %s",
					   json_type_name(elem));
			} else if (!(sub = message_new(f->descriptor, c))) {
				rc = -1;
			} else {
				((ProtobufCMessage **)(void *)arr)[i] = sub;
				(*count)++;
				rc = decode_message(c, sub, elem, depth + 1);
			}
		} else {
			rc = decode_scalar(c, f, elem, arr + i * esz);
			if (rc == 0)
				(*count)++;
		}
		vmlet_path_restore(&c->path, old);
		if (rc < 0)
			return -1;
	}
	return 0;
}

static int decode_field(struct jctx *c, ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
			const json_t *v, int depth)
{
	int oneof = (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0;
	uint32_t *casep = oneof ? field_ptr(msg, f->quantifier_offset) : NULL;
	void *dst = field_ptr(msg, f->offset);

	if (f->label == PROTOBUF_C_LABEL_REPEATED)
		return decode_repeated(c, msg, f, v, depth);

	/* null is "absent" for a message, the way a NULL sub-message is. */
	if (f->type == PROTOBUF_C_TYPE_MESSAGE && json_is_null(v))
		return 0;
	if (oneof && *casep != 0 && *casep != f->id) {
		const ProtobufCFieldDescriptor *other =
			protobuf_c_message_descriptor_get_field(msg->descriptor, *casep);

		return jfail(c, VMLET_E_INVALID, "only one of a oneof may be set, \"%s\" already is",
			     other ? other->name : "?");
	}

	if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
		ProtobufCMessage *sub;

		if (!json_is_object(v))
			return jfail(c, VMLET_E_INVALID, "expected an object, got %s", json_type_name(v));
		sub = message_new(f->descriptor, c);
		if (!sub)
			return -1;
		*(ProtobufCMessage **)dst = sub;
		if (oneof)
			*casep = f->id;
		return decode_message(c, sub, v, depth + 1);
	}

	if (decode_scalar(c, f, v, dst) < 0)
		return -1;
	if (oneof)
		*casep = f->id;
	else if (has_presence_flag(f))
		*(protobuf_c_boolean *)field_ptr(msg, f->quantifier_offset) = 1;
	return 0;
}

/* Every oneof must end with a member set, as the strict decoder demands. */
static int check_oneofs(struct jctx *c, const ProtobufCMessage *msg)
{
	const ProtobufCMessageDescriptor *d = msg->descriptor;

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		char members[200];
		size_t used = 0;

		if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) ||
		    *(const uint32_t *)field_cptr(msg, f->quantifier_offset) != 0)
			continue;
		members[0] = '\0';
		for (unsigned j = i; j < d->n_fields && used < sizeof(members); j++) {
			const ProtobufCFieldDescriptor *m = &d->fields[j];
			int n;

			if (!(m->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) ||
			    m->quantifier_offset != f->quantifier_offset)
				continue;
			n = snprintf(members + used, sizeof(members) - used, "%s%s", used ? ", " : "",
				     m->name);
			if (n < 0)
				break;
			used += (size_t)n;
		}
		return jfail(c, VMLET_E_INVALID, "no member of oneof set (expected one of %s)", members);
	}
	return 0;
}

static int decode_message(struct jctx *c, ProtobufCMessage *msg, const json_t *obj, int depth)
{
	const ProtobufCMessageDescriptor *d = msg->descriptor;

	if (depth > JSON_MAX_DEPTH)
		return jfail(c, VMLET_E_INVALID, "nesting deeper than %d", JSON_MAX_DEPTH);
	if (!json_is_object(obj))
		return jfail(c, VMLET_E_INVALID, "expected an object, got %s", json_type_name(obj));

	for (void *it = json_object_iter((json_t *)obj); it;
	     it = json_object_iter_next((json_t *)obj, it)) {
		const char *key = json_object_iter_key(it);
		size_t klen = json_object_iter_key_len(it);
		const ProtobufCFieldDescriptor *f = NULL;
		size_t old;
		int rc;

		/* A key with an embedded NUL must not match the field it starts with. */
		if (strlen(key) == klen)
			f = protobuf_c_message_descriptor_get_field_by_name(d, key);
		if (!f) {
			char kb[96];

			return jfail(c, VMLET_E_INVALID, "unknown key %s",
				     vlog_str(key, kb, sizeof(kb)));
		}
		old = vmlet_path_append(&c->path, ".%s", f->name);
		rc = decode_field(c, msg, f, json_object_iter_value(it), depth);
		vmlet_path_restore(&c->path, old);
		if (rc < 0)
			return -1;
	}
	return check_oneofs(c, msg);
}

ProtobufCMessage *vmlet_json_to_message(const ProtobufCMessageDescriptor *desc,
					const json_t *value, struct vmlet_err *err)
{
	struct jctx c;
	ProtobufCMessage *msg;

	jctx_init(&c, err);
	if (!value) {
		vmlet_err_set(err, VMLET_E_INVALID, 0, "$: no JSON value");
		return NULL;
	}
	if (check_depth(&c, value, 1) < 0)
		return NULL;
	if (!json_is_object(value)) {
		jfail(&c, VMLET_E_INVALID, "expected an object, got %s", json_type_name(value));
		return NULL;
	}
	msg = message_new(desc, &c);
	if (!msg)
		return NULL;
	if (decode_message(&c, msg, value, 1) < 0) {
		protobuf_c_message_free_unpacked(msg, NULL);
		return NULL;
	}
	/* Belt and braces: the result obeys the same rules as a strictly
	 * unpacked message (the checks above should already guarantee it). */
	if (vmlet_strict_check(msg, err) < 0 || !protobuf_c_message_check(msg)) {
		if (err && err->code == VMLET_OK)
			vmlet_err_set(err, VMLET_E_INVALID, 0, "%s: a required field is missing",
				      desc->name);
		vmlet_err_prefix(err, "$: ");
		protobuf_c_message_free_unpacked(msg, NULL);
		return NULL;
	}
	return msg;
}

ProtobufCMessage *vmlet_json_decode(const ProtobufCMessageDescriptor *desc, const char *text,
				    size_t len, struct vmlet_err *err)
{
	json_error_t je;
	json_t *root;
	ProtobufCMessage *msg;

	if (!text) {
		vmlet_err_set(err, VMLET_E_INVALID, 0, "no JSON text");
		return NULL;
	}
	/* JSON_DECODE_ANY: a top-level scalar gets our own "expected an
	 * object" error; jansson rejects trailing garbage by default. */
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
	if (!root) {
		vmlet_err_set(err, VMLET_E_INVALID, 0, "invalid JSON at line %d column %d: %s", je.line,
			      je.column, je.text);
		return NULL;
	}
	msg = vmlet_json_to_message(desc, root, err);
	json_decref(root);
	return msg;
}

/* ---- message -> JSON ----------------------------------------------------------- */

static json_t *encode_message(struct jctx *c, const ProtobufCMessage *msg, int depth);

static json_t *oom(struct jctx *c)
{
	vmlet_err_set(c->err, VMLET_E_INTERNAL, ENOMEM, "%s: out of memory", c->path.buf);
	return NULL;
}

static json_t *encode_value(struct jctx *c, const ProtobufCFieldDescriptor *f, const void *p,
			    int depth)
{
	json_t *j = NULL;

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		j = json_integer(*(const int32_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		j = json_integer(*(const uint32_t *)p);
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		j = json_integer(*(const int64_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64: {
		uint64_t u = *(const uint64_t *)p;

		if (u > INT64_MAX) {
			jfail(c, VMLET_E_INVALID,
			      "value %llu does not fit a JSON integer (at most 9223372036854775807)",
			      (unsigned long long)u);
			return NULL;
		}
		j = json_integer((json_int_t)u);
		break;
	}
	case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_DOUBLE: {
		double d = f->type == PROTOBUF_C_TYPE_FLOAT ? *(const float *)p : *(const double *)p;

		if (!isfinite(d)) {
			jfail(c, VMLET_E_INVALID, "non-finite number has no JSON form");
			return NULL;
		}
		j = json_real(d);
		break;
	}
	case PROTOBUF_C_TYPE_BOOL:
		j = json_boolean(*(const protobuf_c_boolean *)p);
		break;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumDescriptor *ed = f->descriptor;
		int v = *(const int *)p;
		const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(ed, v);
		char shortn[128];

		if (!ev) {
			jfail(c, VMLET_E_INVALID, "unknown enum value %d for %s", v, ed->name);
			return NULL;
		}
		enum_short_name(ed, ev->name, shortn, sizeof(shortn));
		j = json_string(shortn);
		break;
	}
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)p;

		if (!s)
			s = "";
		if (!vmlet_utf8_valid(s, strlen(s))) {
			jfail(c, VMLET_E_INVALID, "invalid UTF-8");
			return NULL;
		}
		j = json_stringn(s, strlen(s));
		break;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *bd = p;
		char *s = b64_encode(bd->data, bd->data ? bd->len : 0);

		if (!s)
			return oom(c);
		j = json_string(s);
		free(s);
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;

		if (!sub)
			return json_null();
		return encode_message(c, sub, depth + 1);
	}
	}
	return j ? j : oom(c);
}

static json_t *encode_repeated(struct jctx *c, const ProtobufCMessage *msg,
			       const ProtobufCFieldDescriptor *f, int depth)
{
	size_t n = *(const size_t *)field_cptr(msg, f->quantifier_offset);
	const char *arr = *(char *const *)field_cptr(msg, f->offset);
	size_t esz = element_size(f->type);
	json_t *a = json_array();

	if (!a)
		return oom(c);
	for (size_t i = 0; i < n; i++) {
		size_t old = vmlet_path_append(&c->path, "[%zu]", i);
		json_t *v;

		if (f->type == PROTOBUF_C_TYPE_MESSAGE && !((ProtobufCMessage *const *)(const void *)arr)[i]) {
			jfail(c, VMLET_E_INVALID, "missing message in a repeated field");
			v = NULL;
		} else {
			v = encode_value(c, f, arr + i * esz, depth);
		}
		vmlet_path_restore(&c->path, old);
		if (!v || json_array_append_new(a, v) < 0) {
			json_decref(a);
			return v ? oom(c) : NULL;
		}
	}
	return a;
}

static json_t *encode_message(struct jctx *c, const ProtobufCMessage *msg, int depth)
{
	const ProtobufCMessageDescriptor *d = msg->descriptor;
	json_t *obj;

	if (depth > JSON_MAX_DEPTH) {
		jfail(c, VMLET_E_INVALID, "nesting deeper than %d", JSON_MAX_DEPTH);
		return NULL;
	}
	obj = json_object();
	if (!obj)
		return oom(c);
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		size_t old;
		json_t *v;

		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)field_cptr(msg, f->quantifier_offset) != f->id)
			continue; /* only the member that is set */
		if (has_presence_flag(f) &&
		    !*(const protobuf_c_boolean *)field_cptr(msg, f->quantifier_offset))
			continue; /* proto2 optional left unset */
		old = vmlet_path_append(&c->path, ".%s", f->name);
		v = f->label == PROTOBUF_C_LABEL_REPEATED ?
			    encode_repeated(c, msg, f, depth) :
			    encode_value(c, f, field_cptr(msg, f->offset), depth);
		vmlet_path_restore(&c->path, old);
		if (!v || json_object_set_new(obj, f->name, v) < 0) {
			json_decref(obj);
			return v ? oom(c) : NULL;
		}
	}
	return obj;
}

json_t *vmlet_message_to_json(const ProtobufCMessage *msg, struct vmlet_err *err)
{
	struct jctx c;

	jctx_init(&c, err);
	if (!msg) {
		vmlet_err_set(err, VMLET_E_INTERNAL, 0, "$: no message");
		return NULL;
	}
	return encode_message(&c, msg, 1);
}

char *vmlet_json_encode(const ProtobufCMessage *msg, int flags, struct vmlet_err *err)
{
	size_t jflags = (flags & VMLET_JSON_PRETTY) ? JSON_INDENT(2) : JSON_COMPACT;
	json_t *j = vmlet_message_to_json(msg, err);
	size_t need;
	char *out;

	if (!j)
		return NULL;
	/* Dump into our own malloc'd buffer so the caller's free() matches
	 * whatever allocator jansson was configured with. */
	need = json_dumpb(j, NULL, 0, jflags);
	out = need ? malloc(need + 1) : NULL;
	if (!out || json_dumpb(j, out, need, jflags) != need) {
		free(out);
		json_decref(j);
		vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "encoding %s as JSON failed",
			      msg->descriptor->name);
		return NULL;
	}
	out[need] = '\0';
	json_decref(j);
	return out;
}
