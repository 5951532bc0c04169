#include "agentd/local.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "shared/cleanup.h"
#include "shared/log.h"

bool agentd_local_peer_allowed(uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups,
			       gid_t admin_gid)
{
	if (uid == 0)
		return true;
	if (admin_gid == (gid_t)-1)
		return false;
	if (gid == admin_gid)
		return true;
	for (size_t i = 0; i < n_groups; i++)
		if (groups[i] == admin_gid)
			return true;
	return false;
}

void agentd_peer_cred_free(struct agentd_peer_cred *c)
{
	free(c->groups);
	c->groups = NULL;
	c->n_groups = 0;
}

int agentd_local_peer_cred(int fd, struct agentd_peer_cred *out, struct vmlet_err *err)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);
	_cleanup_free_ gid_t *groups = NULL;
	size_t cap = 64;

	memset(out, 0, sizeof(*out));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "getsockopt(SO_PEERCRED)");
	out->pid = uc.pid;
	out->uid = uc.uid;
	out->gid = uc.gid;

	/* SO_PEERGROUPS answers ERANGE with the size it needs: grow once. */
	for (int attempt = 0; attempt < 2; attempt++) {
		socklen_t glen = (socklen_t)(cap * sizeof(gid_t));
		free(groups);
		groups = malloc(glen);
		if (!groups)
			return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM,
					     "SO_PEERGROUPS: out of memory");
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) == 0) {
			out->n_groups = glen / sizeof(gid_t);
			out->groups = vmlet_take_ptr(&groups);
			return 0;
		}
		if (errno != ERANGE || attempt == 1)
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "getsockopt(SO_PEERGROUPS)");
		cap = glen / sizeof(gid_t);
		if (cap > AGENTD_PEER_GROUPS_MAX)
			cap = AGENTD_PEER_GROUPS_MAX;
	}
	return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "SO_PEERGROUPS: unreachable");
}

/* mkdir -p for the directories that are missing; existing ones are left
 * exactly as they are (their owner and mode are the admin's choice). */
static int make_parent_dirs(const char *path, struct vmlet_err *err)
{
	char dir[PATH_MAX];
	char *slash;
	struct stat st;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "%s: path too long", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return vmlet_err_set(err, VMLET_E_INVALID, ENOTDIR, "%s: not a directory",
					     dir);
		return 0;
	}
	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "mkdir %s", dir);
		*p = '/';
	}
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "mkdir %s", dir);
	vlog(VLOG_INFO, "dir_created", "path=%s mode=0755", dir);
	return 0;
}

/* A socket file left behind by a crashed agentd is removed; anything else
 * (a regular file, a symlink, a live listener) is never touched. */
static int remove_stale_socket(const struct sockaddr_un *sa, struct vmlet_err *err)
{
	struct stat st;
	_cleanup_close_ int probe = -1;

	if (lstat(sa->sun_path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "lstat %s", sa->sun_path);
	}
	if (!S_ISSOCK(st.st_mode))
		return vmlet_err_set(err, VMLET_E_CONFLICT, 0,
				     "%s exists and is not a socket; refusing to replace it",
				     sa->sun_path);
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (probe < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "socket(AF_UNIX)");
	if (connect(probe, (const struct sockaddr *)sa, sizeof(*sa)) == 0 || errno == EAGAIN)
		return vmlet_err_set(err, VMLET_E_CONFLICT, 0,
				     "%s: another process is listening on it (is agentd already running?)",
				     sa->sun_path);
	if (errno != ECONNREFUSED)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "probing %s", sa->sun_path);
	if (unlink(sa->sun_path) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "unlink stale socket %s", sa->sun_path);
	vlog(VLOG_INFO, "stale_socket_removed", "path=%s", sa->sun_path);
	return 0;
}

int agentd_local_listen(const struct vmlet_config *cfg, struct agentd_local_listener *out,
			struct vmlet_err *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;
	struct stat st;
	mode_t old_umask;
	int r;

	out->fd = -1;
	out->path[0] = '\0';
	if (cfg->local_socket[0] != '/')
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "agentd.local_socket: \"%s\" must be an absolute path",
				     cfg->local_socket);
	if (strlen(cfg->local_socket) >= sizeof(sa.sun_path))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "agentd.local_socket: path longer than %zu bytes",
				     sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, cfg->local_socket, strlen(cfg->local_socket) + 1);

	if (make_parent_dirs(sa.sun_path, err) < 0 || remove_stale_socket(&sa, err) < 0)
		return -1;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "socket(AF_UNIX)");
	/* The socket file gets 0660 at creation: there is no moment in which
	 * someone outside root/admin could connect. (We are single-threaded
	 * here, so the process-wide umask change is not observed by anyone.) */
	old_umask = umask(0117);
	r = bind(fd, (const struct sockaddr *)&sa, sizeof(sa));
	umask(old_umask);
	if (r < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "bind %s", sa.sun_path);

	if (geteuid() == 0) {
		gid_t gid = cfg->admin_gid != (gid_t)-1 ? cfg->admin_gid : 0;
		if (chown(sa.sun_path, 0, gid) < 0) {
			vmlet_err_sys(err, VMLET_E_INTERNAL, "chown %s", sa.sun_path);
			unlink(sa.sun_path);
			return -1;
		}
		if (cfg->admin_gid == (gid_t)-1)
			vlog(VLOG_WARN, "admin_group_missing",
			     "group=%s socket=%s note=\"only root can use the local socket\"",
			     cfg->admin_group, sa.sun_path);
	} else if (cfg->admin_gid != (gid_t)-1 && chown(sa.sun_path, (uid_t)-1, cfg->admin_gid) < 0) {
		/* Started directly as the agentd user: we can only hand the
		 * socket to a group we are in. Root can still connect. */
		vlog(VLOG_WARN, "local_socket_chgrp_failed", "path=%s group=%s errno=%d",
		     sa.sun_path, cfg->admin_group, errno);
	}
	if (chmod(sa.sun_path, 0660) < 0) {
		vmlet_err_sys(err, VMLET_E_INTERNAL, "chmod %s", sa.sun_path);
		unlink(sa.sun_path);
		return -1;
	}
	if (lstat(sa.sun_path, &st) < 0) {
		vmlet_err_sys(err, VMLET_E_INTERNAL, "lstat %s", sa.sun_path);
		unlink(sa.sun_path);
		return -1;
	}
	if (listen(fd, 128) < 0) {
		vmlet_err_sys(err, VMLET_E_INTERNAL, "listen %s", sa.sun_path);
		unlink(sa.sun_path);
		return -1;
	}
	out->dev = st.st_dev;
	out->ino = st.st_ino;
	memcpy(out->path, sa.sun_path, sizeof(out->path));
	out->fd = vmlet_take_fd(&fd);
	return 0;
}

int agentd_local_close(struct agentd_local_listener *l, struct vmlet_err *err)
{
	struct stat st;

	if (l->fd >= 0) {
		close(l->fd);
		l->fd = -1;
	}
	if (!l->path[0])
		return 0;
	if (lstat(l->path, &st) < 0) {
		if (errno == ENOENT) {
			l->path[0] = '\0';
			return 0;
		}
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "lstat %s", l->path);
	}
	if (st.st_dev != l->dev || st.st_ino != l->ino) {
		/* Someone else (a newer agentd) owns the path now: leave it. */
		l->path[0] = '\0';
		return 0;
	}
	if (unlink(l->path) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "unlink %s", l->path);
	l->path[0] = '\0';
	return 0;
}
