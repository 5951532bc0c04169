/* Short-lived child processes with a deadline, for probes at start-up.
 * Only call these before NNG is initialised (NNG is not fork-safe): hostd
 * collects its node facts first, then opens its socket. */
#ifndef HOSTD_CHILD_H
#define HOSTD_CHILD_H

#include <stddef.h>

#include "shared/err.h"

/* fork + execve(binary, argv) with a fixed clean environment, stdin and
 * stderr on /dev/null, no inherited fds, default signal mask; no shell.
 * Up to cap-1 bytes of stdout go to buf (NUL-terminated, *len bytes).
 * The child is killed when it runs past timeout_ms or writes more than
 * cap-1 bytes. *status is the waitpid status (-1 if killed on timeout).
 * -1 + err only when the child could not be started or waited for. */
int hostd_child_capture(const char *binary, char *const argv[], int timeout_ms, char *buf,
			size_t cap, size_t *len, int *status, struct vmlet_err *err);

/* fork and run fn(arg) in the child, which exits with fn's return value
 * (0..125). Isolates probes that may crash or hang (KVM on odd hosts).
 * Returns the exit code, or -1 + err when the child failed to start, was
 * killed by a signal or ran past timeout_ms (then it is SIGKILLed). */
int hostd_child_run(int (*fn)(void *arg), void *arg, int timeout_ms, struct vmlet_err *err);

#endif
