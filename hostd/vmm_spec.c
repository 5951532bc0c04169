#include "hostd/vmm_spec.h"

#include <string.h>

/* hostd builds these paths: nothing else is needed, and the set keeps them
 * printable in logs and free of QEMU's option separators (',' and '='). */
static bool path_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '/' || c == '.' || c == '_' || c == '-' || c == '+';
}

int vmm_check_path(const char *field, const char *p, size_t max, struct vmlet_err *err)
{
	size_t n;

	if (!p || !*p)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "%s: missing", field);
	n = strlen(p);
	if (p[0] != '/')
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "%s: must be an absolute path",
				     field);
	if (n >= max)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "%s: longer than %zu bytes", field,
				     max - 1);
	for (size_t i = 0; i < n; i++)
		if (!path_char_ok(p[i]))
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "%s: character 0x%02x is not allowed in a path", field,
					     (unsigned char)p[i]);
	/* No "." or ".." components: the path means what it says. */
	for (const char *c = p; c; c = strchr(c + 1, '/')) {
		const char *s = c + 1;
		size_t len = strcspn(s, "/");
		if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "%s: '.' and '..' components are not allowed", field);
	}
	return 0;
}

bool vmm_drive_id_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > 16 || !(s[0] >= 'a' && s[0] <= 'z'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

bool vmm_mac_ok(const char *s)
{
	if (!s || strlen(s) != 17)
		return false;
	for (int i = 0; i < 17; i++)
		if (i % 3 == 2 ? s[i] != ':' : hexval(s[i]) < 0)
			return false;
	return (hexval(s[1]) & 1) == 0;
}
