/* Strict AgentRequest decoding, the bytes a coordinator or a local admin
 * sends agentd. Whatever is accepted must pass the strict walker, pack and
 * strictly unpack again to the same bytes, and survive the JSON codec
 * (vmletctl prints what agentd handles). */
#include "rpc/agent.pb-c.h"
#include "fuzz_strict_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_accepted(&vmlet__v1__agent_request__descriptor, data, size);
	/* The same bytes as a response: what vmletctl and a coordinator decode. */
	check_accepted(&vmlet__v1__agent_response__descriptor, data, size);
	return 0;
}
