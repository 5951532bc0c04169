#include "shared/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static __attribute__((format(printf, 2, 0))) void vfill(struct vmlet_err *err, const char *fmt, va_list ap)
{
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
}

int vmlet_err_set(struct vmlet_err *err, int code, int sys_errno,
		  const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return -1;
	err->code = code;
	err->sys_errno = sys_errno;
	va_start(ap, fmt);
	vfill(err, fmt, ap);
	va_end(ap);
	return -1;
}

int vmlet_err_sys(struct vmlet_err *err, int code, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;
	size_t len;

	if (!err)
		return -1;
	err->code = code;
	err->sys_errno = saved;
	va_start(ap, fmt);
	vfill(err, fmt, ap);
	va_end(ap);
	len = strlen(err->msg);
	if (len < sizeof(err->msg))
		snprintf(err->msg + len, sizeof(err->msg) - len, ": %s",
			 strerror(saved));
	errno = saved;
	return -1;
}

int vmlet_err_prefix(struct vmlet_err *err, const char *fmt, ...)
{
	char prefix[VMLET_ERR_MSG_MAX];
	char old[VMLET_ERR_MSG_MAX];
	va_list ap;

	if (!err)
		return -1;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	old[sizeof(old) - 1] = '\0';
	/* Assemble by hand: the result is deliberately truncated to msg. */
	size_t pl = strnlen(prefix, sizeof(err->msg) - 1);
	size_t ol = strnlen(old, sizeof(err->msg) - 1 - pl);
	memcpy(err->msg, prefix, pl);
	memcpy(err->msg + pl, old, ol);
	err->msg[pl + ol] = '\0';
	return -1;
}

void vmlet_err_clear(struct vmlet_err *err)
{
	if (!err)
		return;
	err->code = VMLET_OK;
	err->sys_errno = 0;
	err->msg[0] = '\0';
}

struct code_name {
	int code;
	const char *name;
};

static const struct code_name code_names[] = {
	{ VMLET_OK, "ok" },
	{ VMLET_E_INVALID, "invalid" },
	{ VMLET_E_UNAUTHENTICATED, "unauthenticated" },
	{ VMLET_E_FORBIDDEN, "forbidden" },
	{ VMLET_E_NOT_FOUND, "not found" },
	{ VMLET_E_CONFLICT, "conflict" },
	{ VMLET_E_TOO_LARGE, "too large" },
	{ VMLET_E_RATE_LIMITED, "rate limited" },
	{ VMLET_E_INTERNAL, "internal" },
	{ VMLET_E_NOT_IMPLEMENTED, "not implemented" },
	{ VMLET_E_UNAVAILABLE, "unavailable" },
};

const char *vmlet_code_name(int code)
{
	for (size_t i = 0; i < sizeof(code_names) / sizeof(code_names[0]); i++)
		if (code_names[i].code == code)
			return code_names[i].name;
	return "error";
}
