/* Strict HostRequest decoding, the bytes hostd (root) takes from agentd:
 * hostd must treat them as hostile. Whatever is accepted must pass the
 * strict walker, pack and strictly unpack again to the same bytes, and
 * survive the JSON codec. HostResponse and the registry's InstanceRecord
 * get the same treatment from the same bytes. */
#include "rpc/host.pb-c.h"
#include "fuzz_strict_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_accepted(&vmlet__host__v1__host_request__descriptor, data, size);
	check_accepted(&vmlet__host__v1__host_response__descriptor, data, size);
	check_accepted(&vmlet__host__v1__instance_record__descriptor, data, size);
	return 0;
}
