#include "hostd/server.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "hostd/dispatch.h"
#include "hostd/peer.h"
#include "shared/cleanup.h"
#include "shared/log.h"
#include "shared/safefile.h"

#define HOSTD_MAX_WORKERS 256

/* One NNG context and its aio: a two-state machine, receive -> send ->
 * receive. The request is NOT served in the aio callback: a lifecycle
 * operation can take seconds (a snapshot, a guest power-off), and NNG's
 * callback threads are shared by every aio of the process. The callback
 * queues the context for the server's own threads, which serve it and
 * reply with nng_ctx_send; other contexts keep receiving meanwhile. */
struct hostd_worker {
	struct hostd_server *srv;
	nng_ctx ctx;
	nng_aio *aio;
	enum { WORKER_RECV, WORKER_SEND } state;
	struct hostd_worker *next_queued;
};

struct hostd_server {
	nng_socket sock;
	bool sock_open;
	const struct hostd_env *env;
	uid_t agentd_uid;
	bool allow_root_peer;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	bool path_created;
	/* The serving threads and their queue (FIFO of contexts with a
	 * received request). One thread per context: a context has at most
	 * one request in flight, so no request ever waits for a thread. */
	pthread_mutex_t qlock;
	pthread_cond_t qcond;
	struct hostd_worker *qhead, *qtail;
	bool qstop;
	size_t n_threads;
	pthread_t *threads;
	size_t n_workers;
	struct hostd_worker workers[];
};

static int nng_fail(struct vmlet_err *err, int rv, const char *what)
{
	return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "%s: %s", what, nng_strerror(rv));
}

/* ---- peer check ------------------------------------------------------------- */

/* Called by NNG before a new pipe joins the socket; closing it here means
 * no request from it is ever read. The uid comes from the kernel
 * (SO_PEERCRED), not from anything the peer sent. */
static void on_pipe_add(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	const struct hostd_server *srv = arg;
	uint64_t uid = UINT64_MAX, pid = 0;
	const char *why = "peer uid unavailable";
	bool ok = false;

	if (nng_pipe_get_uint64(pipe, NNG_OPT_IPC_PEER_UID, &uid) == 0)
		ok = hostd_peer_allowed(uid, srv->agentd_uid, srv->allow_root_peer, &why);
	if (nng_pipe_get_uint64(pipe, NNG_OPT_IPC_PEER_PID, &pid) != 0)
		pid = 0;
	if (!ok) {
		vlog(VLOG_WARN, "peer_refused", "uid=%lld pid=%llu reason=\"%s\"",
		     uid == UINT64_MAX ? -1LL : (long long)uid, (unsigned long long)pid, why);
		nng_pipe_close(pipe);
		return;
	}
	vlog(VLOG_INFO, "peer_accepted", "uid=%llu pid=%llu reason=\"%s\"",
	     (unsigned long long)uid, (unsigned long long)pid, why);
}

/* ---- workers ------------------------------------------------------------------ */

/* Turn the request message into the response in place (the rep context
 * keeps the routing header apart). -1 when the response could not be
 * built (out of memory): the request is then dropped and the client's
 * own timeout reports it. */
static int serve(const struct hostd_server *srv, nng_msg *msg)
{
	struct hostd_reply reply;
	size_t n;
	int rv;

	hostd_dispatch(srv->env, nng_msg_body(msg), nng_msg_len(msg), &reply);
	n = protobuf_c_message_get_packed_size(&reply.resp.base);
	rv = nng_msg_realloc(msg, n);
	if (rv == 0)
		protobuf_c_message_pack(&reply.resp.base, nng_msg_body(msg));
	else
		vlog(VLOG_ERROR, "host_reply_failed", "size=%zu error=\"%s\"", n, nng_strerror(rv));
	hostd_reply_free(&reply);
	return rv == 0 ? 0 : -1;
}

static void worker_cb(void *arg)
{
	struct hostd_worker *w = arg;
	int rv = nng_aio_result(w->aio);

	switch (w->state) {
	case WORKER_RECV:
		if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
			return; /* shutting down */
		if (rv != 0) {
			vlog(VLOG_WARN, "host_recv_failed", "error=\"%s\"", nng_strerror(rv));
			break;
		}
		pthread_mutex_lock(&w->srv->qlock);
		w->next_queued = NULL;
		if (w->srv->qtail)
			w->srv->qtail->next_queued = w;
		else
			w->srv->qhead = w;
		w->srv->qtail = w;
		pthread_cond_signal(&w->srv->qcond);
		pthread_mutex_unlock(&w->srv->qlock);
		return;
	case WORKER_SEND:
		if (rv != 0) {
			/* A failed send leaves the message with us. */
			nng_msg_free(nng_aio_get_msg(w->aio));
			if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
				return;
			vlog(VLOG_WARN, "host_send_failed", "error=\"%s\"", nng_strerror(rv));
		}
		break;
	}
	w->state = WORKER_RECV;
	nng_ctx_recv(w->ctx, w->aio);
}

static void *serve_thread(void *arg)
{
	struct hostd_server *srv = arg;

	for (;;) {
		struct hostd_worker *w;
		nng_msg *msg;

		pthread_mutex_lock(&srv->qlock);
		while (!srv->qhead && !srv->qstop)
			pthread_cond_wait(&srv->qcond, &srv->qlock);
		w = srv->qhead;
		if (w) {
			srv->qhead = w->next_queued;
			if (!srv->qhead)
				srv->qtail = NULL;
		}
		pthread_mutex_unlock(&srv->qlock);
		if (!w)
			return NULL; /* stopping and nothing left */
		msg = nng_aio_get_msg(w->aio);
		if (serve(srv, msg) < 0) {
			nng_msg_free(msg);
			w->state = WORKER_RECV;
			nng_ctx_recv(w->ctx, w->aio);
			continue;
		}
		nng_aio_set_msg(w->aio, msg);
		w->state = WORKER_SEND;
		nng_ctx_send(w->ctx, w->aio);
	}
}

/* ---- socket file ------------------------------------------------------------------ */

/* A socket file left by a hostd that died is removed; one that answers
 * belongs to a running hostd and is left alone; anything else at that
 * path is not ours to delete. */
static int clear_stale_socket(const char *path, struct vmlet_err *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;
	struct stat st;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "lstat %s", path);
	}
	if (!S_ISSOCK(st.st_mode))
		return vmlet_err_set(err, VMLET_E_CONFLICT, 0, "%s exists and is not a socket", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "socket");
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return vmlet_err_set(err, VMLET_E_CONFLICT, 0,
				     "%s: another hostd is listening on it", path);
	if (errno != ECONNREFUSED)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "probing %s", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "removing stale %s", path);
	vlog(VLOG_INFO, "stale_socket_removed", "path=%s", path);
	return 0;
}

/* ---- start / stop ------------------------------------------------------------------ */

void hostd_server_stop(struct hostd_server *srv)
{
	if (!srv)
		return;
	/* Closing the socket fails every pending receive/send with
	 * NNG_ECLOSED; the callbacks then stop re-arming. nng_aio_stop waits
	 * for any callback still running before the aio is freed. */
	if (srv->sock_open)
		nng_close(srv->sock);
	/* Requests already received are still served (their replies then
	 * fail with NNG_ECLOSED and are freed by the callback); the threads
	 * end when the queue is empty. */
	pthread_mutex_lock(&srv->qlock);
	srv->qstop = true;
	pthread_cond_broadcast(&srv->qcond);
	pthread_mutex_unlock(&srv->qlock);
	for (size_t k = 0; k < srv->n_threads; k++)
		pthread_join(srv->threads[k], NULL);
	free(srv->threads);
	for (size_t k = 0; k < srv->n_workers; k++)
		if (srv->workers[k].aio)
			nng_aio_stop(srv->workers[k].aio);
	/* A receive that completed just before the close may have queued its
	 * request after the threads left: no callback runs any more, so its
	 * message is freed here. */
	for (struct hostd_worker *w = srv->qhead; w; w = w->next_queued)
		nng_msg_free(nng_aio_get_msg(w->aio));
	srv->qhead = srv->qtail = NULL;
	for (size_t k = 0; k < srv->n_workers; k++)
		if (srv->workers[k].aio)
			nng_aio_free(srv->workers[k].aio);
	if (srv->path_created && unlink(srv->path) < 0 && errno != ENOENT)
		vlog(VLOG_WARN, "socket_remove_failed", "path=%s errno=%d", srv->path, errno);
	pthread_cond_destroy(&srv->qcond);
	pthread_mutex_destroy(&srv->qlock);
	free(srv);
}

static int start_workers(struct hostd_server *srv, struct vmlet_err *err)
{
	int rv;

	srv->threads = calloc(srv->n_workers, sizeof(*srv->threads));
	if (!srv->threads)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "out of memory");
	for (size_t k = 0; k < srv->n_workers; k++) {
		if ((rv = pthread_create(&srv->threads[k], NULL, serve_thread, srv)) != 0) {
			errno = rv;
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "pthread_create");
		}
		srv->n_threads++;
	}
	for (size_t k = 0; k < srv->n_workers; k++) {
		struct hostd_worker *w = &srv->workers[k];

		w->srv = srv;
		if ((rv = nng_aio_alloc(&w->aio, worker_cb, w)) != 0)
			return nng_fail(err, rv, "nng_aio_alloc");
		if ((rv = nng_ctx_open(&w->ctx, srv->sock)) != 0)
			return nng_fail(err, rv, "nng_ctx_open");
	}
	for (size_t k = 0; k < srv->n_workers; k++) {
		srv->workers[k].state = WORKER_RECV;
		nng_ctx_recv(srv->workers[k].ctx, srv->workers[k].aio);
	}
	return 0;
}

static int listen_on(struct hostd_server *srv, const struct vmlet_config *cfg,
		     struct vmlet_err *err)
{
	char url[sizeof(srv->path) + 8];
	nng_listener listener;
	int rv;

	if ((rv = nng_rep0_open(&srv->sock)) != 0)
		return nng_fail(err, rv, "nng_rep0_open");
	srv->sock_open = true;
	if ((rv = nng_socket_set_size(srv->sock, NNG_OPT_RECVMAXSZ, cfg->max_frame)) != 0)
		return nng_fail(err, rv, "set NNG_OPT_RECVMAXSZ");
	if ((rv = nng_pipe_notify(srv->sock, NNG_PIPE_EV_ADD_PRE, on_pipe_add, srv)) != 0)
		return nng_fail(err, rv, "nng_pipe_notify");

	snprintf(url, sizeof(url), "ipc://%s", srv->path);
	if ((rv = nng_listener_create(&listener, srv->sock, url)) != 0)
		return nng_fail(err, rv, "nng_listener_create");
	/* Applied by NNG right after bind: there is no window in which the
	 * socket is open to everyone. */
	if ((rv = nng_listener_set_int(listener, NNG_OPT_IPC_PERMISSIONS, 0660)) != 0)
		return nng_fail(err, rv, "set NNG_OPT_IPC_PERMISSIONS");
	if ((rv = nng_listener_set_size(listener, NNG_OPT_RECVMAXSZ, cfg->max_frame)) != 0)
		return nng_fail(err, rv, "set listener NNG_OPT_RECVMAXSZ");
	if ((rv = nng_listener_start(listener, 0)) != 0)
		return nng_fail(err, rv, "listening on the hostd socket");
	srv->path_created = true;
	/* Group: agentd's, so only agentd (and root) can connect at all; the
	 * peer uid check above still decides who is served. */
	if (chown(srv->path, 0, cfg->agentd_gid) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "chown %s", srv->path);
	if (chmod(srv->path, 0660) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "chmod %s", srv->path);
	return 0;
}

int hostd_server_start(struct hostd_server **out, const struct vmlet_config *cfg,
		       const struct hostd_env *env, struct vmlet_err *err)
{
	size_t n_workers = cfg->hostd_workers;
	struct hostd_server *srv;
	char qpath[VLOG_STR_MAX];

	*out = NULL;
	if (n_workers < 1)
		n_workers = 1;
	if (n_workers > HOSTD_MAX_WORKERS)
		n_workers = HOSTD_MAX_WORKERS;
	srv = calloc(1, sizeof(*srv) + n_workers * sizeof(srv->workers[0]));
	if (!srv)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "out of memory");
	pthread_mutex_init(&srv->qlock, NULL);
	pthread_cond_init(&srv->qcond, NULL);
	srv->env = env;
	srv->agentd_uid = cfg->agentd_uid;
	srv->allow_root_peer = cfg->allow_root_peer;
	srv->n_workers = n_workers;

	if (vmlet_config_hostd_socket(cfg, srv->path, sizeof(srv->path)) < 0) {
		vmlet_err_set(err, VMLET_E_INVALID, 0,
			      "hostd_socket_dir: %s/hostd.sock is too long for a unix socket",
			      cfg->hostd_socket_dir);
		goto fail;
	}
	if (vmlet_ensure_dir(cfg->hostd_socket_dir, 0750, 0, cfg->agentd_gid, err) < 0) {
		vmlet_err_prefix(err, "hostd_socket_dir: ");
		goto fail;
	}
	if (clear_stale_socket(srv->path, err) < 0 || listen_on(srv, cfg, err) < 0 ||
	    start_workers(srv, err) < 0)
		goto fail;
	vlog(VLOG_INFO, "hostd_listening", "socket=%s workers=%zu recv_max=%u agentd_uid=%u "
	     "allow_root_peer=%d", vlog_str(srv->path, qpath, sizeof(qpath)), n_workers,
	     cfg->max_frame, (unsigned)cfg->agentd_uid, cfg->allow_root_peer);
	*out = srv;
	return 0;
fail:
	hostd_server_stop(srv);
	return -1;
}
