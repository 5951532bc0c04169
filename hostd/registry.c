#include "hostd/registry.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rpc/json.h"
#include "shared/cleanup.h"
#include "shared/config.h"
#include "shared/log.h"
#include "shared/safefile.h"
#include "shared/validate.h"

#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

typedef ProtobufCMessage *msgp;

static void free_msgp(msgp *m)
{
	if (*m)
		protobuf_c_message_free_unpacked(*m, NULL);
	*m = NULL;
}
#define _cleanup_msg_ _cleanup_(free_msgp)

/* ---- record checks (shared by reading and writing) ----------------------- */

int hostd_registry_check_tenant(const Vmlet__Host__V1__TenantRecord *rec, struct vmlet_err *err)
{
	if (vmlet_validate_id("tenant_id", rec->tenant_id, err) < 0)
		return -1;
	if (rec->tenant_net_id < VMLET_NET_ID_MIN || rec->tenant_net_id > VMLET_NET_ID_MAX)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "tenant_net_id: %u must be %d..%d",
				     rec->tenant_net_id, VMLET_NET_ID_MIN, VMLET_NET_ID_MAX);
	if (vmlet_validate_tenant_subnet("ipv4_subnet", rec->ipv4_subnet, err) < 0)
		return -1;
	if (rec->n_publishes > HOSTD_REGISTRY_MAX_PUBLISHES)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "publishes: more than %d",
				     HOSTD_REGISTRY_MAX_PUBLISHES);
	for (size_t i = 0; i < rec->n_publishes; i++) {
		const Vmlet__Host__V1__PublishedPort *p = rec->publishes[i];

		if (p->proto != VMLET__HOST__V1__PORT_PROTO__PORT_PROTO_TCP &&
		    p->proto != VMLET__HOST__V1__PORT_PROTO__PORT_PROTO_UDP)
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "publishes[%zu].proto: must be tcp or udp", i);
		if (p->host_port < 1 || p->host_port > 65535 || p->guest_port < 1 ||
		    p->guest_port > 65535)
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "publishes[%zu]: ports must be 1..65535", i);
		if (vmlet_validate_id("publishes.pool_id", p->pool_id, err) < 0 ||
		    vmlet_validate_instance_id("publishes.instance_id", p->instance_id, err) < 0)
			return -1;
		for (size_t j = 0; j < i; j++)
			if (rec->publishes[j]->proto == p->proto &&
			    rec->publishes[j]->host_port == p->host_port)
				return vmlet_err_set(err, VMLET_E_INVALID, 0,
						     "publishes[%zu]: port %u published twice", i,
						     p->host_port);
	}
	return 0;
}

int hostd_registry_check_pool(const Vmlet__Host__V1__PoolRecord *rec, struct vmlet_err *err)
{
	if (vmlet_validate_id("tenant_id", rec->tenant_id, err) < 0)
		return -1;
	return vmlet_validate_id("pool_id", rec->pool_id, err);
}

int hostd_registry_check_instance(const Vmlet__Host__V1__InstanceRecord *rec,
				  struct vmlet_err *err)
{
	if (vmlet_validate_id("tenant_id", rec->tenant_id, err) < 0 ||
	    vmlet_validate_id("pool_id", rec->pool_id, err) < 0 ||
	    vmlet_validate_instance_id("instance_id", rec->instance_id, err) < 0)
		return -1;
	if (rec->state < VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_CREATED ||
	    rec->state > VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_DESTROYED)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "state: %d is not an instance state",
				     (int)rec->state);
	if (rec->vcpus < VMLET_VCPUS_MIN || rec->vcpus > VMLET_VCPUS_MAX)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "vcpus: %u must be %d..%d",
				     rec->vcpus, VMLET_VCPUS_MIN, VMLET_VCPUS_MAX);
	if (rec->mem_mib < VMLET_MEM_MIB_MIN || rec->mem_mib > VMLET_MEM_MIB_MAX)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "mem_mib: %u must be %d..%d",
				     rec->mem_mib, VMLET_MEM_MIB_MIN, VMLET_MEM_MIB_MAX);
	return 0;
}

/* ---- reading ------------------------------------------------------------------ */

static void log_skip(const char *where, const char *name, const char *reason)
{
	char qname[VLOG_STR_MAX], qreason[VLOG_STR_MAX];

	vlog(VLOG_WARN, "registry_skip", "dir=%s name=%s reason=%s", where,
	     vlog_str(name, qname, sizeof(qname)), vlog_str(reason, qreason, sizeof(qreason)));
}

/* Open a child directory beneath dirfd without following a symlink.
 * Returns the fd; -1 with errno (ENOENT: absent, logged otherwise). */
static int open_subdir(int dirfd, const char *where, const char *name)
{
	int fd = openat(dirfd, name, DIR_FLAGS);

	if (fd < 0 && errno != ENOENT) {
		int saved = errno;
		struct stat st;

		/* O_NOFOLLOW|O_DIRECTORY reports a symlink as ENOTDIR: say which. */
		if ((saved == ENOTDIR || saved == ELOOP) &&
		    fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
			log_skip(where, name, "symlink, not followed");
		else
			log_skip(where, name, saved == ENOTDIR ? "not a directory" : strerror(saved));
		errno = saved;
	}
	return fd;
}

/* Read and decode the record file name beneath dirfd: opened relative to
 * the directory already checked, never following a symlink, never
 * blocking on a FIFO; the capped reader checks type and size on the fd.
 * NULL + err on any problem. */
static ProtobufCMessage *read_record(int dirfd, const char *name,
				     const ProtobufCMessageDescriptor *desc, struct vmlet_err *err)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_close_ int fd = -1;
	ProtobufCMessage *rec;
	size_t len;

	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ELOOP)
			vmlet_err_set(err, VMLET_E_INVALID, ELOOP, "%s: is a symbolic link (refused)",
				      name);
		else
			vmlet_err_sys(err, errno == ENOENT ? VMLET_E_NOT_FOUND : VMLET_E_INTERNAL,
				      "%s: open", name);
		return NULL;
	}
	if (vmlet_read_fd(fd, name, HOSTD_REGISTRY_MAX_RECORD, &text, &len, err) < 0)
		return NULL; /* the message names the file */
	rec = vmlet_json_decode(desc, text, len, err);
	if (!rec)
		vmlet_err_prefix(err, "%s: ", name);
	return rec;
}

/* One level of the tree: its record file, how to decode it, and its
 * checks, which include that the record's ids are the path's (t, p, i). */
struct level {
	const char *record_file;                 /* "tenant.json" */
	const ProtobufCMessageDescriptor *desc;
	int (*check)(const ProtobufCMessage *rec, const char *t, const char *p, const char *i,
		     struct vmlet_err *err);
};

static int ids_match(const char *field, const char *have, const char *want, struct vmlet_err *err)
{
	char qh[VLOG_STR_MAX];

	if (strcmp(have, want) != 0)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "%s: %s does not match its directory",
				     field, vlog_str(have, qh, sizeof(qh)));
	return 0;
}

static int check_tenant_at(const ProtobufCMessage *m, const char *t, const char *p,
			   const char *i, struct vmlet_err *err)
{
	const Vmlet__Host__V1__TenantRecord *rec = (const void *)m;

	if (ids_match("tenant_id", rec->tenant_id, t, err) < 0)
		return -1;
	return hostd_registry_check_tenant(rec, err);
}

static int check_pool_at(const ProtobufCMessage *m, const char *t, const char *p, const char *i,
			 struct vmlet_err *err)
{
	const Vmlet__Host__V1__PoolRecord *rec = (const void *)m;

	if (ids_match("tenant_id", rec->tenant_id, t, err) < 0 ||
	    ids_match("pool_id", rec->pool_id, p, err) < 0)
		return -1;
	return hostd_registry_check_pool(rec, err);
}

static int check_instance_at(const ProtobufCMessage *m, const char *t, const char *p,
			     const char *i, struct vmlet_err *err)
{
	const Vmlet__Host__V1__InstanceRecord *rec = (const void *)m;

	if (ids_match("tenant_id", rec->tenant_id, t, err) < 0 ||
	    ids_match("pool_id", rec->pool_id, p, err) < 0 ||
	    ids_match("instance_id", rec->instance_id, i, err) < 0)
		return -1;
	return hostd_registry_check_instance(rec, err);
}

static const struct level tenant_level = {
	"tenant.json", &vmlet__host__v1__tenant_record__descriptor, check_tenant_at,
};
static const struct level pool_level = {
	"pool.json", &vmlet__host__v1__pool_record__descriptor, check_pool_at,
};
static const struct level instance_level = {
	"instance.json", &vmlet__host__v1__instance_record__descriptor,
	check_instance_at,
};

/* Load one level: open dir `name` beneath parent_fd (logged as where/name),
 * read its record file, check it and that its ids match the path.
 * Returns 1 with *fd_out and *rec_out, 0 when absent or not trustworthy
 * (logged, except plain absence of the directory). */
static int load(const struct level *lv, int parent_fd, const char *where, const char *name,
		const char *t, const char *p, const char *i, int *fd_out, ProtobufCMessage **rec_out)
{
	_cleanup_close_ int fd = -1;
	_cleanup_msg_ msgp rec = NULL;
	struct vmlet_err err;

	fd = open_subdir(parent_fd, where, name);
	if (fd < 0)
		return 0;
	rec = read_record(fd, lv->record_file, lv->desc, &err);
	if (!rec) {
		log_skip(where, name, err.msg);
		return 0;
	}
	if (lv->check(rec, t, p, i, &err) < 0) {
		vmlet_err_prefix(&err, "%s: ", lv->record_file);
		log_skip(where, name, err.msg);
		return 0;
	}
	*fd_out = vmlet_take_fd(&fd);
	*rec_out = vmlet_take_ptr(&rec);
	return 1;
}

struct name_list {
	char **names;
	size_t n;
};

static void name_list_free(struct name_list *l)
{
	for (size_t k = 0; k < l->n; k++)
		free(l->names[k]);
	free(l->names);
	l->names = NULL;
	l->n = 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The entries of dirfd whose names pass ok(), sorted; others are logged
 * and skipped. A fresh open of "." gives this listing its own offset, so
 * concurrent requests never share a directory stream. */
static int list_names(int dirfd, const char *where, bool (*ok)(const char *),
		      struct name_list *out, struct vmlet_err *err)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct name_list l = { 0 };
	size_t cap = 0;
	struct dirent *de;
	DIR *d;

	if (fd < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "registry: open %s", where);
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "registry: fdopendir %s", where);
	}
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno) {
				vmlet_err_sys(err, VMLET_E_INTERNAL, "registry: readdir %s", where);
				goto fail;
			}
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (!ok(de->d_name)) {
			log_skip(where, de->d_name, "not a valid id");
			continue;
		}
		if (l.n == HOSTD_REGISTRY_MAX_ENTRIES) {
			vmlet_err_set(err, VMLET_E_INTERNAL, 0,
				      "registry: %s has more than %d entries", where,
				      HOSTD_REGISTRY_MAX_ENTRIES);
			goto fail;
		}
		if (l.n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			char **nn = realloc(l.names, ncap * sizeof(*nn));

			if (!nn)
				goto oom;
			l.names = nn;
			cap = ncap;
		}
		l.names[l.n] = strdup(de->d_name);
		if (!l.names[l.n])
			goto oom;
		l.n++;
	}
	closedir(d);
	if (l.n)
		qsort(l.names, l.n, sizeof(*l.names), cmp_names);
	*out = l;
	return 0;
oom:
	vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "registry: out of memory listing %s", where);
fail:
	closedir(d);
	name_list_free(&l);
	return -1;
}

struct walk {
	const struct hostd_registry_visitor *v;
	void *arg;
	struct vmlet_err *err;
};

static int walk_instance(struct walk *w, int instances_fd, const char *where, const char *t,
			 const char *p, const char *i)
{
	_cleanup_close_ int fd = -1;
	_cleanup_msg_ msgp rec = NULL;

	if (!load(&instance_level, instances_fd, where, i, t, p, i, &fd, &rec))
		return 0;
	return w->v->instance ? w->v->instance(w->arg, (const void *)rec, w->err) : 0;
}

static int walk_pool(struct walk *w, int pools_fd, const char *t, const char *p)
{
	_cleanup_close_ int fd = -1;
	_cleanup_close_ int instances_fd = -1;
	_cleanup_msg_ msgp rec = NULL;
	struct name_list names = { 0 };
	char where[2 * VMLET_ID_MAX + 32];
	int rc = 0;

	snprintf(where, sizeof(where), "tenants/%s/pools", t);
	if (!load(&pool_level, pools_fd, where, p, t, p, NULL, &fd, &rec))
		return 0;
	if (w->v->pool && w->v->pool(w->arg, (const void *)rec, w->err) < 0)
		return -1;
	snprintf(where, sizeof(where), "tenants/%s/pools/%s", t, p);
	instances_fd = open_subdir(fd, where, "instances");
	if (instances_fd < 0)
		return 0;
	snprintf(where, sizeof(where), "tenants/%s/pools/%s/instances", t, p);
	if (list_names(instances_fd, where, vmlet_instance_id_ok, &names, w->err) < 0)
		return -1;
	for (size_t k = 0; k < names.n && rc == 0; k++)
		rc = walk_instance(w, instances_fd, where, t, p, names.names[k]);
	name_list_free(&names);
	return rc;
}

static int walk_tenant(struct walk *w, int tenants_fd, const char *t, const char *pool_filter)
{
	_cleanup_close_ int fd = -1;
	_cleanup_close_ int pools_fd = -1;
	_cleanup_msg_ msgp rec = NULL;
	struct name_list names = { 0 };
	char where[VMLET_ID_MAX + 32];
	int rc = 0;

	if (!load(&tenant_level, tenants_fd, "tenants", t, t, NULL, NULL, &fd, &rec))
		return 0;
	if (w->v->tenant && w->v->tenant(w->arg, (const void *)rec, w->err) < 0)
		return -1;
	snprintf(where, sizeof(where), "tenants/%s", t);
	pools_fd = open_subdir(fd, where, "pools");
	if (pools_fd < 0)
		return 0;
	if (pool_filter && *pool_filter)
		return walk_pool(w, pools_fd, t, pool_filter);
	snprintf(where, sizeof(where), "tenants/%s/pools", t);
	if (list_names(pools_fd, where, vmlet_id_ok, &names, w->err) < 0)
		return -1;
	for (size_t k = 0; k < names.n && rc == 0; k++)
		rc = walk_pool(w, pools_fd, t, names.names[k]);
	name_list_free(&names);
	return rc;
}

int hostd_registry_walk(const struct hostd_registry *reg, const char *tenant_id,
			const char *pool_id, const struct hostd_registry_visitor *v, void *arg,
			struct vmlet_err *err)
{
	struct walk w = { v, arg, err };
	struct name_list names = { 0 };
	int rc = 0;

	/* Callers validate; this layer still refuses to build a lookup from
	 * something that is not an id. */
	if (pool_id && *pool_id && !(tenant_id && *tenant_id))
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "pool_id: requires tenant_id");
	if (tenant_id && *tenant_id &&
	    vmlet_validate_id("tenant_id", tenant_id, err) < 0)
		return -1;
	if (pool_id && *pool_id && vmlet_validate_id("pool_id", pool_id, err) < 0)
		return -1;

	if (tenant_id && *tenant_id)
		return walk_tenant(&w, reg->tenants_fd, tenant_id, pool_id);
	if (list_names(reg->tenants_fd, "tenants", vmlet_id_ok, &names, err) < 0)
		return -1;
	for (size_t k = 0; k < names.n && rc == 0; k++)
		rc = walk_tenant(&w, reg->tenants_fd, names.names[k], NULL);
	name_list_free(&names);
	return rc;
}

int hostd_registry_lookup_instance(const struct hostd_registry *reg, const char *tenant_id,
				   const char *pool_id, const char *instance_id,
				   Vmlet__Host__V1__InstanceRecord **out, struct vmlet_err *err)
{
	_cleanup_close_ int tenant_fd = -1, pools_fd = -1, pool_fd = -1, instances_fd = -1,
			    instance_fd = -1;
	_cleanup_msg_ msgp trec = NULL, prec = NULL, irec = NULL;
	char where[2 * VMLET_ID_MAX + 32];

	*out = NULL;
	if (vmlet_validate_id("tenant_id", tenant_id, err) < 0 ||
	    vmlet_validate_id("pool_id", pool_id, err) < 0 ||
	    vmlet_validate_instance_id("instance_id", instance_id, err) < 0)
		return -1;

	/* The instance counts only beneath a valid tenant and pool, exactly as
	 * in a walk. */
	if (!load(&tenant_level, reg->tenants_fd, "tenants", tenant_id, tenant_id, NULL, NULL,
		  &tenant_fd, &trec))
		goto not_found;
	snprintf(where, sizeof(where), "tenants/%s", tenant_id);
	pools_fd = open_subdir(tenant_fd, where, "pools");
	if (pools_fd < 0)
		goto not_found;
	snprintf(where, sizeof(where), "tenants/%s/pools", tenant_id);
	if (!load(&pool_level, pools_fd, where, pool_id, tenant_id, pool_id, NULL, &pool_fd, &prec))
		goto not_found;
	snprintf(where, sizeof(where), "tenants/%s/pools/%s", tenant_id, pool_id);
	instances_fd = open_subdir(pool_fd, where, "instances");
	if (instances_fd < 0)
		goto not_found;
	snprintf(where, sizeof(where), "tenants/%s/pools/%s/instances", tenant_id, pool_id);
	if (!load(&instance_level, instances_fd, where, instance_id, tenant_id, pool_id,
		  instance_id, &instance_fd, &irec))
		goto not_found;
	*out = vmlet_take_ptr(&irec);
	return 0;
not_found:
	return vmlet_err_set(err, VMLET_E_NOT_FOUND, 0, "instance %s/%s/%s not found", tenant_id,
			     pool_id, instance_id);
}

/* ---- opening and writing --------------------------------------------------------- */

int hostd_registry_create(const char *state_dir, struct vmlet_err *err)
{
	char path[PATH_MAX];

	if (vmlet_ensure_dir(state_dir, 0711, geteuid(), getegid(), err) < 0)
		return vmlet_err_prefix(err, "state dir: ");
	if (snprintf(path, sizeof(path), "%s/tenants", state_dir) >= (int)sizeof(path))
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "state dir: path too long");
	if (vmlet_ensure_dir(path, 0700, geteuid(), getegid(), err) < 0)
		return vmlet_err_prefix(err, "state dir: ");
	return 0;
}

int hostd_registry_open(struct hostd_registry *reg, const char *state_dir, struct vmlet_err *err)
{
	char path[PATH_MAX];

	reg->tenants_fd = -1;
	if (snprintf(reg->state_dir, sizeof(reg->state_dir), "%s", state_dir) >=
		    (int)sizeof(reg->state_dir) ||
	    snprintf(path, sizeof(path), "%s/tenants", state_dir) >= (int)sizeof(path))
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "registry: state dir path too long");
	reg->tenants_fd = open(path, DIR_FLAGS);
	if (reg->tenants_fd < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "registry: open %s", path);
	return 0;
}

void hostd_registry_close(struct hostd_registry *reg)
{
	if (reg->tenants_fd >= 0)
		close(reg->tenants_fd);
	reg->tenants_fd = -1;
}

static int ensure_record_dir(const char *path, struct vmlet_err *err)
{
	return vmlet_ensure_dir(path, 0700, geteuid(), getegid(), err);
}

/* A parent record exists as a regular file (not a symlink). */
static int require_record(const char *path, const char *what, struct vmlet_err *err)
{
	struct stat st;

	if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return vmlet_err_set(err, VMLET_E_NOT_FOUND, 0, "%s not found", what);
	return 0;
}

static int write_record(const char *dir, const char *file, const ProtobufCMessage *rec,
			struct vmlet_err *err)
{
	_cleanup_free_ char *json = NULL;
	char path[PATH_MAX];

	if (snprintf(path, sizeof(path), "%s/%s", dir, file) >= (int)sizeof(path))
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "registry: path too long");
	if (ensure_record_dir(dir, err) < 0)
		return -1;
	json = vmlet_json_encode(rec, VMLET_JSON_PRETTY, err);
	if (!json)
		return -1;
	return vmlet_write_atomic(path, json, strlen(json), 0600, err);
}

int hostd_registry_write_tenant(const struct hostd_registry *reg,
				const Vmlet__Host__V1__TenantRecord *rec, struct vmlet_err *err)
{
	char dir[PATH_MAX];

	if (hostd_registry_check_tenant(rec, err) < 0)
		return vmlet_err_prefix(err, "tenant record: ");
	if (snprintf(dir, sizeof(dir), "%s/tenants/%s", reg->state_dir, rec->tenant_id) >=
	    (int)sizeof(dir))
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "registry: path too long");
	return write_record(dir, "tenant.json", &rec->base, err);
}

int hostd_registry_write_pool(const struct hostd_registry *reg,
			      const Vmlet__Host__V1__PoolRecord *rec, struct vmlet_err *err)
{
	char dir[PATH_MAX], parent[PATH_MAX], what[VMLET_ID_MAX + 16];

	if (hostd_registry_check_pool(rec, err) < 0)
		return vmlet_err_prefix(err, "pool record: ");
	snprintf(what, sizeof(what), "tenant %s", rec->tenant_id);
	if (snprintf(parent, sizeof(parent), "%s/tenants/%s/tenant.json", reg->state_dir,
		     rec->tenant_id) >= (int)sizeof(parent) ||
	    snprintf(dir, sizeof(dir), "%s/tenants/%s/pools", reg->state_dir, rec->tenant_id) >=
		    (int)sizeof(dir))
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "registry: path too long");
	if (require_record(parent, what, err) < 0 || ensure_record_dir(dir, err) < 0)
		return -1;
	if (snprintf(dir, sizeof(dir), "%s/tenants/%s/pools/%s", reg->state_dir, rec->tenant_id,
		     rec->pool_id) >= (int)sizeof(dir))
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "registry: path too long");
	return write_record(dir, "pool.json", &rec->base, err);
}

int hostd_registry_write_instance(const struct hostd_registry *reg,
				  const Vmlet__Host__V1__InstanceRecord *rec, struct vmlet_err *err)
{
	char dir[PATH_MAX], parent[PATH_MAX], what[2 * VMLET_ID_MAX + 16];

	if (hostd_registry_check_instance(rec, err) < 0)
		return vmlet_err_prefix(err, "instance record: ");
	snprintf(what, sizeof(what), "pool %s/%s", rec->tenant_id, rec->pool_id);
	if (snprintf(parent, sizeof(parent), "%s/tenants/%s/pools/%s/pool.json", reg->state_dir,
		     rec->tenant_id, rec->pool_id) >= (int)sizeof(parent) ||
	    snprintf(dir, sizeof(dir), "%s/tenants/%s/pools/%s/instances", reg->state_dir,
		     rec->tenant_id, rec->pool_id) >= (int)sizeof(dir))
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "registry: path too long");
	if (require_record(parent, what, err) < 0 || ensure_record_dir(dir, err) < 0)
		return -1;
	if (snprintf(dir, sizeof(dir), "%s/tenants/%s/pools/%s/instances/%s", reg->state_dir,
		     rec->tenant_id, rec->pool_id, rec->instance_id) >= (int)sizeof(dir))
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "registry: path too long");
	return write_record(dir, "instance.json", &rec->base, err);
}

/* ---- lookups of the parents ------------------------------------------------------ */

int hostd_registry_lookup_tenant(const struct hostd_registry *reg, const char *tenant_id,
				 Vmlet__Host__V1__TenantRecord **out, struct vmlet_err *err)
{
	_cleanup_close_ int fd = -1;
	_cleanup_msg_ msgp rec = NULL;

	*out = NULL;
	if (vmlet_validate_id("tenant_id", tenant_id, err) < 0)
		return -1;
	if (!load(&tenant_level, reg->tenants_fd, "tenants", tenant_id, tenant_id, NULL, NULL, &fd,
		  &rec))
		return vmlet_err_set(err, VMLET_E_NOT_FOUND, 0, "tenant %s not found", tenant_id);
	*out = vmlet_take_ptr(&rec);
	return 0;
}

int hostd_registry_lookup_pool(const struct hostd_registry *reg, const char *tenant_id,
			       const char *pool_id, Vmlet__Host__V1__PoolRecord **out,
			       struct vmlet_err *err)
{
	_cleanup_close_ int tenant_fd = -1, pools_fd = -1, pool_fd = -1;
	_cleanup_msg_ msgp trec = NULL, prec = NULL;
	char where[2 * VMLET_ID_MAX + 32];

	*out = NULL;
	if (vmlet_validate_id("tenant_id", tenant_id, err) < 0 ||
	    vmlet_validate_id("pool_id", pool_id, err) < 0)
		return -1;
	if (!load(&tenant_level, reg->tenants_fd, "tenants", tenant_id, tenant_id, NULL, NULL,
		  &tenant_fd, &trec))
		goto not_found;
	snprintf(where, sizeof(where), "tenants/%s", tenant_id);
	pools_fd = open_subdir(tenant_fd, where, "pools");
	if (pools_fd < 0)
		goto not_found;
	snprintf(where, sizeof(where), "tenants/%s/pools", tenant_id);
	if (!load(&pool_level, pools_fd, where, pool_id, tenant_id, pool_id, NULL, &pool_fd, &prec))
		goto not_found;
	*out = vmlet_take_ptr(&prec);
	return 0;
not_found:
	return vmlet_err_set(err, VMLET_E_NOT_FOUND, 0, "pool %s/%s not found", tenant_id, pool_id);
}

/* ---- directories of one instance ------------------------------------------------- */

int hostd_registry_open_tenant_dir(const struct hostd_registry *reg, const char *tenant_id,
				   struct vmlet_err *err)
{
	int fd;

	if (vmlet_validate_id("tenant_id", tenant_id, err) < 0)
		return -1;
	fd = openat(reg->tenants_fd, tenant_id, DIR_FLAGS);
	if (fd < 0)
		return vmlet_err_sys(err, errno == ENOENT ? VMLET_E_NOT_FOUND : VMLET_E_INTERNAL,
				     "registry: tenants/%s", tenant_id);
	return fd;
}

int hostd_registry_open_instance_dir(const struct hostd_registry *reg, const char *tenant_id,
				     const char *pool_id, const char *instance_id,
				     struct vmlet_err *err)
{
	_cleanup_close_ int t = -1, ps = -1, p = -1, is = -1;
	int fd;

	if (vmlet_validate_id("tenant_id", tenant_id, err) < 0 ||
	    vmlet_validate_id("pool_id", pool_id, err) < 0 ||
	    vmlet_validate_instance_id("instance_id", instance_id, err) < 0)
		return -1;
	/* One component at a time, O_NOFOLLOW each: no symlink anywhere. */
	if ((t = openat(reg->tenants_fd, tenant_id, DIR_FLAGS)) < 0 ||
	    (ps = openat(t, "pools", DIR_FLAGS)) < 0 || (p = openat(ps, pool_id, DIR_FLAGS)) < 0 ||
	    (is = openat(p, "instances", DIR_FLAGS)) < 0 ||
	    (fd = openat(is, instance_id, DIR_FLAGS)) < 0)
		return vmlet_err_sys(err, errno == ENOENT ? VMLET_E_NOT_FOUND : VMLET_E_INTERNAL,
				     "registry: instance dir %s/%s/%s", tenant_id, pool_id,
				     instance_id);
	return fd;
}

/* ---- removal ------------------------------------------------------------------------ */

/* Overwrite a regular file with zeros (what it held may be guest memory or
 * a record), then sync, so unlinking it does not leave the data in free
 * blocks that a later file could be handed. */
static int zero_fill(int dirfd, const char *name, const char *where, struct vmlet_err *err)
{
	static const char zeros[65536];
	_cleanup_close_ int fd = openat(dirfd, name, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;

	if (fd < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "registry: open %s/%s to wipe", where,
				     name);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return 0;
	for (off_t off = 0; off < st.st_size;) {
		size_t n = st.st_size - off > (off_t)sizeof(zeros) ? sizeof(zeros)
								   : (size_t)(st.st_size - off);
		ssize_t w = pwrite(fd, zeros, n, off);

		if (w <= 0)
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "registry: wiping %s/%s", where,
					     name);
		off += w;
	}
	if (fdatasync(fd) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "registry: fdatasync %s/%s", where,
				     name);
	return 0;
}

/* Remove name (a directory) beneath dirfd and everything in it: regular
 * files are zero-filled first; symlinks, FIFOs and sockets are unlinked,
 * never followed; nested directories are opened O_NOFOLLOW. A depth cap
 * keeps a planted deep tree from exhausting the stack. */
static int wipe_tree(int parent_fd, const char *name, const char *where, int depth,
		     struct vmlet_err *err)
{
	_cleanup_close_ int fd = -1;
	struct dirent *de;
	DIR *d;
	int rc = 0;

	if (depth > 8)
		return vmlet_err_set(err, VMLET_E_CONFLICT, 0,
				     "registry: %s/%s: nested too deep to remove", where, name);
	fd = openat(parent_fd, name, DIR_FLAGS);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		if (errno == ENOTDIR || errno == ELOOP) {
			if (unlinkat(parent_fd, name, 0) < 0)
				return vmlet_err_sys(err, VMLET_E_INTERNAL, "registry: unlink %s/%s",
						     where, name);
			return 0;
		}
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "registry: open %s/%s", where, name);
	}
	d = fdopendir(vmlet_take_fd(&fd));
	if (!d)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "registry: fdopendir %s/%s", where, name);
	while (rc == 0 && (de = readdir(d))) {
		int dfd = dirfd(d);
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = vmlet_err_sys(err, VMLET_E_INTERNAL, "registry: stat %s/%s/%s", where,
					   name, de->d_name);
			break;
		}
		if (S_ISDIR(st.st_mode)) {
			rc = wipe_tree(dfd, de->d_name, where, depth + 1, err);
			/* the listing changed under readdir: start over */
			if (rc == 0)
				rewinddir(d);
			continue;
		}
		if (S_ISREG(st.st_mode) && zero_fill(dfd, de->d_name, where, err) < 0) {
			rc = -1;
			break;
		}
		if (unlinkat(dfd, de->d_name, 0) < 0)
			rc = vmlet_err_sys(err, VMLET_E_INTERNAL, "registry: unlink %s/%s/%s", where,
					   name, de->d_name);
	}
	closedir(d);
	if (rc == 0 && unlinkat(parent_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		rc = vmlet_err_sys(err, VMLET_E_INTERNAL, "registry: rmdir %s/%s", where, name);
	return rc;
}

int hostd_registry_remove_instance(const struct hostd_registry *reg, const char *tenant_id,
				   const char *pool_id, const char *instance_id,
				   struct vmlet_err *err)
{
	_cleanup_close_ int t = -1, ps = -1, p = -1, is = -1;
	char where[2 * VMLET_ID_MAX + 32];

	if (vmlet_validate_id("tenant_id", tenant_id, err) < 0 ||
	    vmlet_validate_id("pool_id", pool_id, err) < 0 ||
	    vmlet_validate_instance_id("instance_id", instance_id, err) < 0)
		return -1;
	if ((t = openat(reg->tenants_fd, tenant_id, DIR_FLAGS)) < 0 ||
	    (ps = openat(t, "pools", DIR_FLAGS)) < 0 || (p = openat(ps, pool_id, DIR_FLAGS)) < 0 ||
	    (is = openat(p, "instances", DIR_FLAGS)) < 0) {
		if (errno == ENOENT)
			return 0;
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "registry: instances of %s/%s",
				     tenant_id, pool_id);
	}
	snprintf(where, sizeof(where), "tenants/%s/pools/%s/instances", tenant_id, pool_id);
	return wipe_tree(is, instance_id, where, 0, err);
}

/* Names of the instance directories of a pool (valid or not: any entry
 * keeps the pool from being removed). */
static int count_entries_at(int dirfd, const char *name, size_t *n, struct vmlet_err *err)
{
	_cleanup_close_ int fd = openat(dirfd, name, DIR_FLAGS);
	struct dirent *de;
	DIR *d;

	*n = 0;
	if (fd < 0)
		return errno == ENOENT ? 0 : vmlet_err_sys(err, VMLET_E_INTERNAL, "registry: %s", name);
	d = fdopendir(vmlet_take_fd(&fd));
	if (!d)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "registry: fdopendir %s", name);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			(*n)++;
	closedir(d);
	return 0;
}

int hostd_registry_remove_pool(const struct hostd_registry *reg, const char *tenant_id,
			       const char *pool_id, struct vmlet_err *err)
{
	_cleanup_close_ int t = -1, ps = -1, p = -1;
	char where[VMLET_ID_MAX + 32];
	size_t n = 0;

	if (vmlet_validate_id("tenant_id", tenant_id, err) < 0 ||
	    vmlet_validate_id("pool_id", pool_id, err) < 0)
		return -1;
	if ((t = openat(reg->tenants_fd, tenant_id, DIR_FLAGS)) < 0 ||
	    (ps = openat(t, "pools", DIR_FLAGS)) < 0 || (p = openat(ps, pool_id, DIR_FLAGS)) < 0) {
		if (errno == ENOENT)
			return 0;
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "registry: pool %s/%s", tenant_id,
				     pool_id);
	}
	if (count_entries_at(p, "instances", &n, err) < 0)
		return -1;
	if (n > 0)
		return vmlet_err_set(err, VMLET_E_CONFLICT, 0,
				     "pool %s/%s still has %zu instance(s): destroy them first",
				     tenant_id, pool_id, n);
	snprintf(where, sizeof(where), "tenants/%s/pools", tenant_id);
	return wipe_tree(ps, pool_id, where, 0, err);
}

int hostd_registry_remove_tenant(const struct hostd_registry *reg, const char *tenant_id,
				 struct vmlet_err *err)
{
	_cleanup_close_ int t = -1, ps = -1;
	struct name_list pools = { 0 };
	char where[VMLET_ID_MAX + 32];
	int rc = 0;

	if (vmlet_validate_id("tenant_id", tenant_id, err) < 0)
		return -1;
	if ((t = openat(reg->tenants_fd, tenant_id, DIR_FLAGS)) < 0) {
		if (errno == ENOENT)
			return 0;
		/* Not a directory (a planted symlink or file): never a tenant;
		 * wipe_tree unlinks the entry itself, following nothing. */
		if (errno == ENOTDIR || errno == ELOOP)
			return wipe_tree(reg->tenants_fd, tenant_id, "tenants", 0, err);
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "registry: tenant %s", tenant_id);
	}
	ps = openat(t, "pools", DIR_FLAGS);
	if (ps >= 0) {
		snprintf(where, sizeof(where), "tenants/%s/pools", tenant_id);
		if (list_names(ps, where, vmlet_id_ok, &pools, err) < 0)
			return -1;
		for (size_t k = 0; k < pools.n && rc == 0; k++) {
			_cleanup_close_ int p = openat(ps, pools.names[k], DIR_FLAGS);
			size_t n = 0;

			if (p >= 0 && count_entries_at(p, "instances", &n, err) < 0)
				rc = -1;
			else if (n > 0)
				rc = vmlet_err_set(err, VMLET_E_CONFLICT, 0,
						   "tenant %s still has instances (pool %s has %zu): "
						   "destroy them first",
						   tenant_id, pools.names[k], n);
		}
		name_list_free(&pools);
		if (rc < 0)
			return rc;
	} else if (errno != ENOENT) {
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "registry: tenants/%s/pools", tenant_id);
	}
	return wipe_tree(reg->tenants_fd, tenant_id, "tenants", 0, err);
}
