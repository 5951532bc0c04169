#include "hostd/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shared/cleanup.h"
#include "shared/log.h"
#include "shared/validate.h"

char *hostd_audit_format(const struct hostd_audit_entry *e, time_t now)
{
	char when[32];
	struct tm tm;
	bool ok = !e->err || e->err->code == VMLET_OK;
	json_t *o;
	char *line;

	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	/* "s?" stores null for a NULL string; everything else is copied and
	 * escaped by jansson. */
	o = json_pack("{s:s, s:s?, s:s?, s:s?, s:s, s:s, s:i, s:s, s:I}", "time", when, "tenant",
		      e->tenant, "pool", e->pool && *e->pool ? e->pool : NULL, "instance",
		      e->instance && *e->instance ? e->instance : NULL, "action", e->action,
		      "result", ok ? "ok" : "error", "code", ok ? 200 : e->err->code, "message",
		      ok ? "" : e->err->msg, "duration_ms", (json_int_t)e->duration_ms);
	if (!o)
		return NULL;
	/* JSON_ENSURE_ASCII: a message never carries raw control or non-ASCII
	 * bytes into the file; JSON_COMPACT: one line. */
	line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
	json_decref(o);
	return line;
}

int hostd_audit_append(const struct hostd_registry *reg, const struct hostd_audit_entry *e,
		       struct vmlet_err *err)
{
	_cleanup_close_ int tdir = -1, fd = -1;
	_cleanup_free_ char *line = NULL;
	size_t n;
	ssize_t w;

	if (!e->tenant || !vmlet_id_ok(e->tenant))
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "audit: tenant id is not valid");
	/* Beneath the registry's own fd, never following a symlink: a planted
	 * link cannot redirect audit lines into another file. */
	tdir = openat(reg->tenants_fd, e->tenant, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (tdir < 0)
		return vmlet_err_sys(err, VMLET_E_NOT_FOUND, "audit: tenants/%s", e->tenant);
	fd = openat(tdir, "audit.jsonl", O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
		    0600);
	if (fd < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "audit: tenants/%s/audit.jsonl",
				     e->tenant);
	line = hostd_audit_format(e, time(NULL));
	if (!line)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "audit: out of memory");
	n = strlen(line);
	line[n] = '\n'; /* replaces the NUL: written with an explicit length */
	w = write(fd, line, n + 1);
	line[n] = '\0';
	if (w < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "audit: write tenants/%s/audit.jsonl",
				     e->tenant);
	if ((size_t)w != n + 1)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
				     "audit: short write to tenants/%s/audit.jsonl", e->tenant);
	return 0;
}
