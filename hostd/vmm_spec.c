#include "hostd/vmm_spec.h"

#include <stdio.h>
#include <string.h>

#include "shared/validate.h"

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

int vmm_check_resources(const struct vmm_spec *s, struct vmlet_err *err)
{
	if (s->vcpus < VMLET_VCPUS_MIN || s->vcpus > VMLET_VCPUS_MAX)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "vcpus: %u is outside %d..%d",
				     s->vcpus, VMLET_VCPUS_MIN, VMLET_VCPUS_MAX);
	if (s->mem_mib < VMLET_MEM_MIB_MIN || s->mem_mib > VMLET_MEM_MIB_MAX)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "mem_mib: %u is outside %d..%d",
				     s->mem_mib, VMLET_MEM_MIB_MIN, VMLET_MEM_MIB_MAX);
	if (!s->cmdline)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "cmdline: missing");
	if (strlen(s->cmdline) >= VMM_CMDLINE_MAX)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "cmdline: longer than %d bytes",
				     VMM_CMDLINE_MAX - 1);
	for (const char *c = s->cmdline; *c; c++)
		if (*c < 0x20 || *c > 0x7e)
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "cmdline: character 0x%02x is not printable ASCII",
					     (unsigned char)*c);
	return 0;
}

int vmm_check_drives(const struct vmm_spec *s, size_t max,
		     int (*check_path)(const char *field, const char *p, size_t max,
				       struct vmlet_err *err),
		     struct vmlet_err *err)
{
	if (s->n_drives > VMM_MAX_DRIVES)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "drives: %zu, at most %d",
				     s->n_drives, VMM_MAX_DRIVES);
	for (size_t i = 0; i < s->n_drives; i++) {
		char field[48];

		snprintf(field, sizeof(field), "drives[%zu].path", i);
		if (check_path(field, s->drives[i].path, max, err) < 0)
			return -1;
		if (!vmm_drive_id_ok(s->drives[i].id))
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "drives[%zu].id: must match [a-z][a-z0-9_]{0,15}", i);
		for (size_t j = 0; j < i; j++)
			if (strcmp(s->drives[i].id, s->drives[j].id) == 0)
				return vmlet_err_set(err, VMLET_E_INVALID, 0,
						     "drives[%zu].id: \"%s\" is used twice", i,
						     s->drives[i].id);
	}
	return 0;
}
