/* Error reporting, crun style: a function that fails fills a struct
 * vmlet_err and returns a negative value. The code is HTTP-like so it can
 * travel unchanged to the coordinator; sys_errno keeps the failing
 * syscall's errno; msg names the field/file/syscall and why. */
#ifndef VMLET_ERR_H
#define VMLET_ERR_H

#include <stddef.h>

enum vmlet_code {
	VMLET_OK = 0,
	VMLET_E_INVALID = 400,
	VMLET_E_UNAUTHENTICATED = 401,
	VMLET_E_FORBIDDEN = 403,
	VMLET_E_NOT_FOUND = 404,
	VMLET_E_CONFLICT = 409,
	VMLET_E_TOO_LARGE = 413,
	VMLET_E_RATE_LIMITED = 429,
	VMLET_E_INTERNAL = 500,
	VMLET_E_NOT_IMPLEMENTED = 501,
	VMLET_E_UNAVAILABLE = 503,
};

#define VMLET_ERR_MSG_MAX 512

struct vmlet_err {
	int code;      /* enum vmlet_code */
	int sys_errno; /* errno of the failing syscall, 0 if none */
	char msg[VMLET_ERR_MSG_MAX];
};

/* Fill *err (may be NULL) and return -1. */
int vmlet_err_set(struct vmlet_err *err, int code, int sys_errno,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Same, with sys_errno = errno and ": strerror(errno)" appended. */
int vmlet_err_sys(struct vmlet_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prepend context ("loading /etc/vmlet/vmlet.conf: ") to an existing
 * message; keeps code and errno. Returns -1. */
int vmlet_err_prefix(struct vmlet_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void vmlet_err_clear(struct vmlet_err *err);

/* Short name for a code ("invalid", "forbidden", ...). */
const char *vmlet_code_name(int code);

#endif
