/* Scope-bound cleanup for locals (crun style): fds, heap buffers, FILEs
 * and protobuf-c messages are released on every return path. */
#ifndef VMLET_CLEANUP_H
#define VMLET_CLEANUP_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void vmlet_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static inline void vmlet_freep(void *p)
{
	free(*(void **)p);
	*(void **)p = NULL;
}

static inline void vmlet_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
	*f = NULL;
}

#define _cleanup_close_ _cleanup_(vmlet_closep)
#define _cleanup_free_ _cleanup_(vmlet_freep)
#define _cleanup_fclose_ _cleanup_(vmlet_fclosep)

/* Hand ownership out of a cleanup-managed local. */
static inline int vmlet_take_fd(int *fd)
{
	int r = *fd;
	*fd = -1;
	return r;
}

static inline void *vmlet_take_ptr(void *p)
{
	void *r = *(void **)p;
	*(void **)p = NULL;
	return r;
}

#endif
