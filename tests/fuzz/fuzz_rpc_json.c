/* JSON desired-state decoding (files people write, `vmletctl reconcile
 * -f`). Whatever is accepted must pass the strict walker, re-encode to
 * JSON that decodes to the same message, and pack/strict-unpack cleanly.
 * The same text is also tried as an AgentRequest (bytes, oneofs) and as a
 * hostd registry record (enums, 64-bit fields). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/agent.pb-c.h"
#include "rpc/host.pb-c.h"
#include "rpc/json.h"
#include "rpc/strict.h"

static void check(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t size)
{
	struct vmlet_err e;
	ProtobufCMessage *m = vmlet_json_decode(d, (const char *)data, size, &e);
	uint8_t *p1, *p2;
	size_t l1, l2;

	if (!m) {
		if (e.code != VMLET_E_INVALID)
			abort();
		return;
	}
	if (vmlet_strict_check(m, &e) < 0)
		abort();
	/* Accepted JSON holds only numbers up to 2^63-1, so it re-encodes. */
	char *t1 = vmlet_json_encode(m, VMLET_JSON_PRETTY, &e);
	if (!t1)
		abort();
	ProtobufCMessage *m2 = vmlet_json_decode(d, t1, strlen(t1), &e);
	char *t2 = m2 ? vmlet_json_encode(m2, VMLET_JSON_PRETTY, &e) : NULL;
	if (!t2 || strcmp(t1, t2) != 0)
		abort();
	if (vmlet_pack(m, &p1, &l1, &e) < 0 || vmlet_pack(m2, &p2, &l2, &e) < 0 || l1 != l2 ||
	    memcmp(p1, p2, l1) != 0)
		abort();
	ProtobufCMessage *m3 = vmlet_strict_unpack(d, p1, l1, &e);
	if (!m3)
		abort();
	protobuf_c_message_free_unpacked(m3, NULL);
	free(p1);
	free(p2);
	free(t1);
	free(t2);
	protobuf_c_message_free_unpacked(m2, NULL);
	protobuf_c_message_free_unpacked(m, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check(&vmlet__v1__desired_state__descriptor, data, size);
	check(&vmlet__v1__agent_request__descriptor, data, size);
	check(&vmlet__host__v1__instance_record__descriptor, data, size);
	return 0;
}
