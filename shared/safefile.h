/* File I/O that hostile or broken state cannot turn into a crash or a
 * half-written file. */
#ifndef VMLET_SAFEFILE_H
#define VMLET_SAFEFILE_H

#include <stddef.h>
#include <sys/types.h>

#include "shared/err.h"

/* Write temp file in the same directory, fsync, rename over path, fsync the
 * directory. mode applies to the new file. */
int vmlet_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
		       struct vmlet_err *err);

/* Read a whole regular file of at most max bytes (O_NOFOLLOW, fstat-checked).
 * *out is malloc'd and NUL-terminated (the NUL is not counted in *len). */
int vmlet_read_file(const char *path, size_t max, char **out, size_t *len, struct vmlet_err *err);

/* Same checks and cap on an fd the caller opened (e.g. a config path that
 * may legitimately be a symlink); name is used in messages. fd stays open. */
int vmlet_read_fd(int fd, const char *name, size_t max, char **out, size_t *len,
		  struct vmlet_err *err);

/* mkdir -p with the final component's owner/mode enforced (chown/chmod even
 * when it already exists); refuses if the final component is a symlink or
 * not a directory. uid/gid (uid_t)-1 keeps the current owner. */
int vmlet_ensure_dir(const char *path, mode_t mode, uid_t uid, gid_t gid, struct vmlet_err *err);

#endif
