/* Generic JSON <-> protobuf-c codec over the descriptors (jansson): one
 * codec for every message. Keys are the proto field names (snake_case);
 * unknown keys, wrong types, out-of-range numbers and bad enum names are
 * rejected with the JSON path ("$.tenants[1].pools[0].desired_counts.warm:
 * expected an integer 0..4294967295"). Missing keys keep proto3 defaults.
 * Enums are written as the value name with the enum's common prefix
 * stripped and lowercased (INSTANCE_STATE_RUNNING -> "running"); both that
 * form and the full name are accepted on input. bytes are base64. A oneof
 * is an object key like any other field; two members of one oneof set is an
 * error. 64-bit integers are JSON integers. */
#ifndef VMLET_JSON_H
#define VMLET_JSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

#include "shared/err.h"

#define VMLET_JSON_PRETTY 1

/* Parse text into a new message (free with protobuf_c_message_free_unpacked
 * (msg, NULL)). NULL + err (400) on any problem, including trailing garbage
 * and nesting deeper than 32. The result also passes vmlet_strict_check. */
ProtobufCMessage *vmlet_json_decode(const ProtobufCMessageDescriptor *desc, const char *text,
				    size_t len, struct vmlet_err *err);

/* jansson value -> message (same rules). */
ProtobufCMessage *vmlet_json_to_message(const ProtobufCMessageDescriptor *desc,
					const json_t *value, struct vmlet_err *err);

/* message -> jansson object (new reference). Every field is emitted, default
 * values included, so output is self-describing. */
json_t *vmlet_message_to_json(const ProtobufCMessage *msg, struct vmlet_err *err);

/* message -> malloc'd NUL-terminated text. */
char *vmlet_json_encode(const ProtobufCMessage *msg, int flags, struct vmlet_err *err);

#endif
