/* The check both binary-request harnesses run on every descriptor they
 * try (fuzz_rpc_agent_request, fuzz_rpc_host_request): bytes the strict
 * decoder rejects must be a 400; whatever it accepts must pass the strict
 * walker, pack and strictly unpack again to the same bytes, and survive a
 * JSON round trip. */
#ifndef FUZZ_STRICT_COMMON_H
#define FUZZ_STRICT_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/json.h"
#include "rpc/strict.h"

static void check_accepted(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t size)
{
	struct vmlet_err e;
	ProtobufCMessage *m = vmlet_strict_unpack(d, data, size, &e);
	uint8_t *p1, *p2;
	size_t l1, l2;

	if (!m) {
		if (e.code != VMLET_E_INVALID)
			abort();
		return;
	}
	if (vmlet_strict_check(m, &e) < 0 || vmlet_pack(m, &p1, &l1, &e) < 0)
		abort();
	ProtobufCMessage *m2 = vmlet_strict_unpack(d, p1, l1, &e);
	if (!m2 || vmlet_pack(m2, &p2, &l2, &e) < 0 || l1 != l2 || memcmp(p1, p2, l1) != 0)
		abort();

	char *t1 = vmlet_json_encode(m, 0, &e);
	if (t1) {
		ProtobufCMessage *m3 = vmlet_json_decode(d, t1, strlen(t1), &e);
		char *t2 = m3 ? vmlet_json_encode(m3, 0, &e) : NULL;
		if (!t2 || strcmp(t1, t2) != 0)
			abort();
		free(t2);
		protobuf_c_message_free_unpacked(m3, NULL);
		free(t1);
	} else if (!strstr(e.msg, "does not fit a JSON integer")) {
		/* Only a uint64 above 2^63-1 has no JSON form. */
		abort();
	}
	free(p1);
	free(p2);
	protobuf_c_message_free_unpacked(m2, NULL);
	protobuf_c_message_free_unpacked(m, NULL);
}

#endif
