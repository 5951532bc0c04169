/* Strict protobuf decoding (the deny_unknown_fields rule): after
 * protobuf_c_message_unpack, walk the message through its descriptor and
 * reject any unknown field at any depth, any unknown enum value, any
 * invalid UTF-8 string, and any oneof with nothing set. One generic walker
 * over protobuf-c descriptors, no per-message code. Errors name the field
 * path: "reconcile.desired_state.tenants[2].pools[0]: unknown field 99". */
#ifndef VMLET_STRICT_H
#define VMLET_STRICT_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

/* Check an already unpacked (or constructed) message. 0 ok, -1 + err (400). */
int vmlet_strict_check(const ProtobufCMessage *msg, struct vmlet_err *err);

/* Unpack and check; NULL + err (400) on failure. Free with
 * protobuf_c_message_free_unpacked(msg, NULL). */
ProtobufCMessage *vmlet_strict_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *buf,
				      size_t len, struct vmlet_err *err);

/* Pack into a new malloc'd buffer. */
int vmlet_pack(const ProtobufCMessage *msg, uint8_t **out, size_t *len, struct vmlet_err *err);

/* Valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
int vmlet_utf8_valid(const char *s, size_t len);

#endif
