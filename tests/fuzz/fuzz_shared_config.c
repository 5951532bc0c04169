/* libFuzzer: arbitrary bytes as a config file. The loader must return 0 or
 * -1 with a message, never crash, overrun or leak, whatever the input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shared/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmlet_config cfg;
	struct vmlet_err err;
	char *text = malloc(size + 1);

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	err.msg[0] = '\0';
	if (vmlet_config_load_string(text, "fuzz.conf", &cfg, &err) < 0) {
		/* every rejection carries a message */
		if (!err.msg[0] || err.code == 0)
			abort();
	}
	free(text);
	return 0;
}
