/* libFuzzer: arbitrary bytes as an image manifest.json. The parser must
 * accept or refuse with a message, never crash, overrun or leak; what it
 * accepts must satisfy the rules image_open relies on (plain file names,
 * one 64-hex hash per named file, printable cmdline). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hostd/images.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct image_manifest m;
	struct vmlet_err err;

	err.msg[0] = '\0';
	if (image_parse_manifest((const char *)data, size, "guest", &m, &err) < 0) {
		if (!err.msg[0] || err.code != VMLET_E_INVALID)
			abort();
		return 0;
	}
	if (strcmp(m.name, "guest") != 0 || !image_file_name_ok(m.file[IMAGE_KERNEL]))
		abort();
	for (int r = 0; r < IMAGE_ROLES; r++) {
		if (!m.file[r][0])
			continue;
		if (!image_file_name_ok(m.file[r]) || strlen(m.sha256[r]) != IMAGE_SHA256_HEX)
			abort();
	}
	for (const char *c = m.cmdline; *c; c++)
		if (*c < 0x20 || *c > 0x7e)
			abort();
	return 0;
}
