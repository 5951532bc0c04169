#include "ctl/reconcile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rpc/json.h"
#include "shared/cleanup.h"
#include "shared/validate.h"

/* Read all of fd, refusing more than max bytes. A pipe on stdin has no
 * size to check up front, so the cap is enforced while reading. */
static int read_capped(int fd, const char *name, size_t max, char **out, size_t *out_len,
		       struct vmlet_err *err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, size = 0;

	for (;;) {
		if (len == size) {
			size_t want = size ? size * 2 : 64 * 1024;
			if (want > max + 1)
				want = max + 1;
			if (want <= len)
				return vmlet_err_set(err, VMLET_E_TOO_LARGE, 0,
						     "%s: larger than %zu bytes", name, max);
			char *nb = realloc(buf, want + 1);
			if (!nb)
				return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM,
						     "%s: out of memory", name);
			buf = nb;
			size = want;
		}
		ssize_t n = read(fd, buf + len, size - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return vmlet_err_sys(err, VMLET_E_INVALID, "%s: read", name);
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max)
			return vmlet_err_set(err, VMLET_E_TOO_LARGE, 0,
					     "%s: larger than %zu bytes", name, max);
	}
	buf[len] = '\0';
	*out_len = len;
	*out = vmlet_take_ptr(&buf);
	return 0;
}

int ctl_desired_state_parse(const char *name, const char *text, size_t len,
			    Vmlet__V1__DesiredState **out, struct vmlet_err *err)
{
	ProtobufCMessage *m = vmlet_json_decode(&vmlet__v1__desired_state__descriptor, text, len,
						err);

	if (!m)
		return vmlet_err_prefix(err, "%s: ", name);
	Vmlet__V1__DesiredState *ds = (Vmlet__V1__DesiredState *)m;
	/* node_id is left to agentd: only it knows which node it is. */
	if (vmlet_validate_desired_state(ds, NULL, err) < 0) {
		protobuf_c_message_free_unpacked(m, NULL);
		return vmlet_err_prefix(err, "%s: ", name);
	}
	*out = ds;
	return 0;
}

int ctl_desired_state_load(const char *path, Vmlet__V1__DesiredState **out,
			   struct vmlet_err *err)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *text = NULL;
	const char *name = path;
	struct stat st;
	size_t len = 0;
	int in = STDIN_FILENO;

	if (strcmp(path, "-") == 0) {
		name = "<stdin>";
	} else {
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			return vmlet_err_sys(err, VMLET_E_INVALID, "%s: open", path);
		if (fstat(fd, &st) < 0)
			return vmlet_err_sys(err, VMLET_E_INVALID, "%s: fstat", path);
		if (S_ISDIR(st.st_mode))
			return vmlet_err_set(err, VMLET_E_INVALID, 0, "%s: is a directory", path);
		if (S_ISREG(st.st_mode) && (uintmax_t)st.st_size > CTL_DESIRED_STATE_MAX)
			return vmlet_err_set(err, VMLET_E_TOO_LARGE, 0,
					     "%s: %jd bytes, larger than %u", path,
					     (intmax_t)st.st_size, CTL_DESIRED_STATE_MAX);
		in = fd;
	}
	if (read_capped(in, name, CTL_DESIRED_STATE_MAX, &text, &len, err) < 0)
		return -1;
	return ctl_desired_state_parse(name, text, len, out, err);
}
