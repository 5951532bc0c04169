#include "agentd/loop.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "agentd/conn.h"
#include "agentd/handlers.h"
#include "agentd/listen.h"
#include "agentd/local.h"
#include "shared/log.h"

#define TAG_LISTENER 1u
#define TAG_SIGNAL 2u
#define TAG_HOST 3u
#define TAG_TIMER 5u /* AGENTD_TAG_CONN is 4 */
#define MAX_LISTENERS 4
#define MAX_EVENTS 64
#define ACCEPTS_PER_TURN 64
#define SCRATCH_LEN (64u * 1024u)

struct listener {
	int fd;
	unsigned transport;
};

struct agentd_loop {
	const struct vmlet_config *cfg;
	struct agentd_conn_env env;
	int epfd;
	int sigfd;
	int timerfd; /* periodic reconcile pass; -1 = none */
	struct listener listeners[MAX_LISTENERS];
	size_t n_listeners;
	bool listeners_paused; /* out of file descriptors: accept later */

	struct agentd_conn *slots;
	size_t n_slots;
	struct agentd_conn *free_list; /* singly linked through next */
	struct agentd_conn *active;    /* doubly linked */
	size_t n_active;
	bool stop;
};

/* ---- slots ------------------------------------------------------------------ */

static struct agentd_conn *slot_get(struct agentd_loop *loop)
{
	struct agentd_conn *c = loop->free_list;

	if (!c)
		return NULL;
	loop->free_list = c->next;
	c->prev = NULL;
	c->next = loop->active;
	if (loop->active)
		loop->active->prev = c;
	loop->active = c;
	loop->n_active++;
	return c;
}

static void resume_listeners(struct agentd_loop *loop);

static void slot_release(struct agentd_loop *loop, struct agentd_conn *c)
{
	agentd_conn_release(c);
	/* A new generation: epoll events still queued for the old fd and
	 * hostd replies still in flight for the old request no longer match. */
	c->gen++;
	if (c->gen == 0)
		c->gen = 1;
	if (c->prev)
		c->prev->next = c->next;
	else
		loop->active = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = NULL;
	c->next = loop->free_list;
	loop->free_list = c;
	loop->n_active--;
	if (loop->listeners_paused)
		resume_listeners(loop);
}

static void release_if_closed(struct agentd_loop *loop, struct agentd_conn *c)
{
	if (c->state == CONN_CLOSED)
		slot_release(loop, c);
}

/* ---- setup ------------------------------------------------------------------ */

static int epoll_add(int epfd, int fd, uint32_t events, uint64_t tag, struct vmlet_err *err)
{
	struct epoll_event ev = { .events = events, .data.u64 = tag };

	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "epoll_ctl(ADD)");
	return 0;
}

int agentd_loop_new(const struct vmlet_config *cfg, struct agentd_tls *tls,
		    struct agentd_hostclient *hc, struct agentd_loop **out, struct vmlet_err *err)
{
	struct agentd_loop *loop;

	*out = NULL;
	if (cfg->max_connections == 0)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "agentd.max_connections must be >= 1");
	loop = calloc(1, sizeof(*loop));
	if (!loop)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "loop: out of memory");
	loop->cfg = cfg;
	loop->epfd = -1;
	loop->sigfd = -1;
	loop->timerfd = -1;
	loop->n_slots = cfg->max_connections;
	loop->slots = calloc(loop->n_slots, sizeof(*loop->slots));
	loop->env.scratch = malloc(SCRATCH_LEN);
	if (!loop->slots || !loop->env.scratch) {
		agentd_loop_free(loop);
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "loop: out of memory");
	}
	for (size_t i = loop->n_slots; i-- > 0;) {
		struct agentd_conn *c = &loop->slots[i];
		c->slot = (uint32_t)i;
		c->gen = 1;
		c->fd = -1;
		c->state = CONN_FREE;
		c->next = loop->free_list;
		loop->free_list = c;
	}
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		vmlet_err_sys(err, VMLET_E_INTERNAL, "epoll_create1");
		agentd_loop_free(loop);
		return -1;
	}
	loop->env.cfg = cfg;
	loop->env.tls = tls;
	loop->env.hc = hc;
	loop->env.table = agentd_handlers;
	loop->env.table_len = agentd_handlers_len;
	loop->env.epfd = loop->epfd;
	loop->env.scratch_len = SCRATCH_LEN;
	if (epoll_add(loop->epfd, agentd_hostclient_event_fd(hc), EPOLLIN, TAG_HOST, err) < 0) {
		agentd_loop_free(loop);
		return -1;
	}
	*out = loop;
	return 0;
}

int agentd_loop_add_listener(struct agentd_loop *loop, int fd, unsigned transport,
			     struct vmlet_err *err)
{
	size_t i = loop->n_listeners;

	if (i >= MAX_LISTENERS)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "too many listeners");
	if (transport == AGENTD_TRANSPORT_TLS && !loop->env.tls)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "TLS listener without a TLS context");
	if (epoll_add(loop->epfd, fd, EPOLLIN, ((uint64_t)i << 8) | TAG_LISTENER, err) < 0)
		return -1;
	loop->listeners[i].fd = fd;
	loop->listeners[i].transport = transport;
	loop->n_listeners++;
	return 0;
}

int agentd_loop_block_signals(struct vmlet_err *err)
{
	sigset_t set;
	int r;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if ((r = pthread_sigmask(SIG_BLOCK, &set, NULL)) != 0)
		return vmlet_err_set(err, VMLET_E_INTERNAL, r, "pthread_sigmask: %s", strerror(r));
	return 0;
}

int agentd_loop_watch_signals(struct agentd_loop *loop, struct vmlet_err *err)
{
	sigset_t set;

	if (agentd_loop_block_signals(err) < 0)
		return -1;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	loop->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (loop->sigfd < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "signalfd");
	return epoll_add(loop->epfd, loop->sigfd, EPOLLIN, TAG_SIGNAL, err);
}

void agentd_loop_free(struct agentd_loop *loop)
{
	if (!loop)
		return;
	while (loop->active)
		slot_release(loop, loop->active);
	if (loop->sigfd >= 0)
		close(loop->sigfd);
	if (loop->timerfd >= 0)
		close(loop->timerfd);
	if (loop->epfd >= 0)
		close(loop->epfd);
	free(loop->slots);
	free(loop->env.scratch);
	free(loop);
}

void agentd_loop_stop(struct agentd_loop *loop)
{
	loop->stop = true;
}

size_t agentd_loop_connections(const struct agentd_loop *loop)
{
	return loop->n_active;
}

/* ---- accepting -------------------------------------------------------------- */

static void pause_listeners(struct agentd_loop *loop)
{
	for (size_t i = 0; i < loop->n_listeners; i++) {
		struct epoll_event ev = { .events = 0, .data.u64 = ((uint64_t)i << 8) | TAG_LISTENER };
		epoll_ctl(loop->epfd, EPOLL_CTL_MOD, loop->listeners[i].fd, &ev);
	}
	loop->listeners_paused = true;
}

static void resume_listeners(struct agentd_loop *loop)
{
	for (size_t i = 0; i < loop->n_listeners; i++) {
		struct epoll_event ev = { .events = EPOLLIN,
					  .data.u64 = ((uint64_t)i << 8) | TAG_LISTENER };
		epoll_ctl(loop->epfd, EPOLL_CTL_MOD, loop->listeners[i].fd, &ev);
	}
	loop->listeners_paused = false;
	vlog(VLOG_INFO, "accept_resumed", NULL);
}

/* Local peers: credentials and the admin policy, before any byte is read. */
static void start_local(struct agentd_loop *loop, struct agentd_conn *c)
{
	struct agentd_peer_cred pc;
	struct vmlet_err err;
	char ebuf[VLOG_STR_MAX];

	vmlet_err_clear(&err);
	if (agentd_local_peer_cred(c->fd, &pc, &err) < 0) {
		vlog(VLOG_ERROR, "local_peer_cred_failed", "error=%s",
		     vlog_str(err.msg, ebuf, sizeof(ebuf)));
		c->state = CONN_CLOSED;
		return;
	}
	snprintf(c->peer, sizeof(c->peer), "pid:%d", (int)pc.pid);
	snprintf(c->identity, sizeof(c->identity), "uid:%u", (unsigned)pc.uid);
	if (!agentd_local_peer_allowed(pc.uid, pc.gid, pc.groups, pc.n_groups,
				       loop->cfg->admin_gid)) {
		char msg[VMLET_ERR_MSG_MAX];
		vlog(VLOG_WARN, "local_refused", "uid=%u gid=%u pid=%d groups=%zu admin_group=%s",
		     (unsigned)pc.uid, (unsigned)pc.gid, (int)pc.pid, pc.n_groups,
		     loop->cfg->admin_group);
		snprintf(msg, sizeof(msg), "uid %u is neither root nor in the admin group %s",
			 (unsigned)pc.uid, loop->cfg->admin_group);
		agentd_peer_cred_free(&pc);
		agentd_conn_refuse(c, VMLET_E_FORBIDDEN, msg);
		return;
	}
	agentd_peer_cred_free(&pc);
	vlog(VLOG_INFO, "conn_accepted", "transport=local peer=%s identity=%s", c->peer,
	     c->identity);
	agentd_conn_start(c);
}

static void start_tls(struct agentd_loop *loop, struct agentd_conn *c,
		      const struct sockaddr_storage *ss, socklen_t sl)
{
	struct vmlet_err err;
	char ebuf[VLOG_STR_MAX];
	int one = 1;

	vmlet_err_clear(&err);
	agentd_format_sockaddr(ss, sl, c->peer, sizeof(c->peer));
	/* One frame per write; do not let Nagle hold back the tail of a
	 * response or a handshake flight. */
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->tls = agentd_tls_conn_new(loop->env.tls, c->fd, &err);
	if (!c->tls) {
		vlog(VLOG_ERROR, "tls_conn_failed", "peer=%s error=%s", c->peer,
		     vlog_str(err.msg, ebuf, sizeof(ebuf)));
		c->state = CONN_CLOSED;
		return;
	}
	agentd_conn_start(c);
}

static void accept_on(struct agentd_loop *loop, const struct listener *l)
{
	for (int i = 0; i < ACCEPTS_PER_TURN; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		struct agentd_conn *c;
		struct vmlet_err err;
		int fd;

		fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
				continue;
			vlog(VLOG_ERROR, "accept_failed", "transport=%s errno=%d error=\"%s\"",
			     agentd_transport_name(l->transport), errno, strerror(errno));
			/* Out of descriptors or memory: stop accepting until a
			 * connection goes away instead of spinning on the
			 * still-readable listener. */
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				pause_listeners(loop);
			return;
		}
		c = slot_get(loop);
		if (!c) {
			char peer[64] = "local";
			if (l->transport == AGENTD_TRANSPORT_TLS)
				agentd_format_sockaddr(&ss, sl, peer, sizeof(peer));
			vlog(VLOG_WARN, "conn_refused", "transport=%s peer=%s reason=max_connections limit=%zu",
			     agentd_transport_name(l->transport), peer, loop->n_slots);
			close(fd);
			continue;
		}
		vmlet_err_clear(&err);
		agentd_conn_init(c, &loop->env, fd, l->transport, agentd_now_ns());
		if (epoll_add(loop->epfd, fd, 0, agentd_conn_tag(c), &err) < 0) {
			vlog(VLOG_ERROR, "epoll_add_failed", "errno=%d", err.sys_errno);
			c->state = CONN_CLOSED;
		} else if (l->transport == AGENTD_TRANSPORT_LOCAL) {
			start_local(loop, c);
		} else {
			start_tls(loop, c, &ss, sl);
		}
		release_if_closed(loop, c);
	}
}

/* ---- the loop --------------------------------------------------------------- */

static void on_host_reply(void *arg, uint64_t cookie, const Vmlet__Host__V1__HostResponse *resp,
			  const struct vmlet_err *err)
{
	struct agentd_loop *loop = arg;
	uint32_t slot = (uint32_t)cookie, gen = (uint32_t)(cookie >> 32);
	struct agentd_conn *c;

	if (agentd_reconcile_cookie(cookie)) {
		if (loop->env.reconciler)
			agentd_reconciler_on_host_reply(loop->env.reconciler, cookie, resp, err);
		return;
	}
	if (slot >= loop->n_slots || loop->slots[slot].gen != gen ||
	    loop->slots[slot].state != CONN_WAITING) {
		/* Its connection is gone (closed, timed out): nothing to do. */
		vlog(VLOG_DEBUG, "host_reply_dropped", "slot=%u gen=%u", slot, gen);
		return;
	}
	c = &loop->slots[slot];
	agentd_conn_on_host_reply(c, resp, err);
	release_if_closed(loop, c);
}

void agentd_loop_reconcile_done(void *arg, uint64_t cookie, const Vmlet__V1__ReconcileReport *report,
				const struct vmlet_err *err)
{
	struct agentd_loop *loop = arg;
	Vmlet__V1__AgentResponse out = VMLET__V1__AGENT_RESPONSE__INIT;
	uint32_t slot = (uint32_t)cookie, gen = (uint32_t)(cookie >> 32);
	struct agentd_conn *c;

	if (cookie == AGENTD_RECONCILE_NO_WAITER)
		return; /* a timer pass: the reconciler logged it */
	if (slot >= loop->n_slots || loop->slots[slot].gen != gen ||
	    loop->slots[slot].state != CONN_WAITING) {
		vlog(VLOG_INFO, "reconcile_report_dropped", "reason=\"the requesting connection is gone\"");
		return;
	}
	c = &loop->slots[slot];
	if (report) {
		out.response_case = VMLET__V1__AGENT_RESPONSE__RESPONSE_RECONCILE;
		out.reconcile = (Vmlet__V1__ReconcileReport *)report;
		agentd_conn_on_served(c, &out, NULL);
	} else {
		agentd_conn_on_served(c, NULL, err);
	}
	release_if_closed(loop, c);
}

int agentd_loop_attach_reconciler(struct agentd_loop *loop, struct agentd_reconciler *r,
				  uint32_t first_s, uint32_t interval_s, struct vmlet_err *err)
{
	struct itimerspec its = { .it_value = { .tv_sec = first_s ? first_s : 1 },
				  .it_interval = { .tv_sec = interval_s } };

	loop->env.reconciler = r;
	loop->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (loop->timerfd < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "timerfd_create");
	if (timerfd_settime(loop->timerfd, 0, &its, NULL) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "timerfd_settime");
	return epoll_add(loop->epfd, loop->timerfd, EPOLLIN, TAG_TIMER, err);
}

static void on_timer(struct agentd_loop *loop)
{
	uint64_t ticks;
	struct vmlet_err err;
	char ebuf[VLOG_STR_MAX];

	if (read(loop->timerfd, &ticks, sizeof(ticks)) != (ssize_t)sizeof(ticks))
		return;
	vmlet_err_clear(&err);
	/* Skipped without a persisted state or while a pass runs; hostd
	 * being away only costs this tick. */
	if (agentd_reconciler_run(loop->env.reconciler, &err) < 0)
		vlog(VLOG_WARN, "reconcile_pass_not_started", "error=%s",
		     vlog_str(err.msg, ebuf, sizeof(ebuf)));
}

static void on_signal(struct agentd_loop *loop)
{
	struct signalfd_siginfo si;

	while (read(loop->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		vlog(VLOG_INFO, "signal", "signo=%u name=%s", si.ssi_signo,
		     si.ssi_signo == SIGINT ? "SIGINT" : si.ssi_signo == SIGTERM ? "SIGTERM" : "?");
		loop->stop = true;
	}
}

/* Milliseconds until the earliest deadline (capped by limit_ms; -1 = no
 * limit), 0 if a connection has input to look at already. */
static int next_timeout(struct agentd_loop *loop, int limit_ms)
{
	uint64_t now = agentd_now_ns(), first = 0;
	int64_t ms;

	for (struct agentd_conn *c = loop->active; c; c = c->next) {
		if (c->pending_input)
			return 0;
		if (c->deadline_ns && (!first || c->deadline_ns < first))
			first = c->deadline_ns;
	}
	if (!first)
		return limit_ms;
	ms = first <= now ? 0 : (int64_t)((first - now + 999999u) / 1000000u);
	if (ms > INT32_MAX)
		ms = INT32_MAX;
	if (limit_ms >= 0 && ms > limit_ms)
		ms = limit_ms;
	return (int)ms;
}

static void run_pending_and_deadlines(struct agentd_loop *loop)
{
	struct agentd_conn *c, *next;
	uint64_t now;

	for (c = loop->active; c; c = next) {
		next = c->next;
		if (c->pending_input && c->state == CONN_READING) {
			agentd_conn_on_io(c, EPOLLIN);
			release_if_closed(loop, c);
		} else {
			c->pending_input = false;
		}
	}
	now = agentd_now_ns();
	for (c = loop->active; c; c = next) {
		next = c->next;
		if (c->deadline_ns && now >= c->deadline_ns) {
			agentd_conn_on_deadline(c);
			release_if_closed(loop, c);
		}
	}
}

int agentd_loop_run_once(struct agentd_loop *loop, int timeout_ms, struct vmlet_err *err)
{
	struct epoll_event evs[MAX_EVENTS];
	int n;

	if (loop->stop)
		return 1;
	n = epoll_wait(loop->epfd, evs, MAX_EVENTS, next_timeout(loop, timeout_ms));
	if (n < 0) {
		if (errno != EINTR)
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "epoll_wait");
		n = 0;
	}
	for (int i = 0; i < n; i++) {
		uint64_t tag = evs[i].data.u64;
		switch (tag & 0xff) {
		case TAG_LISTENER: {
			size_t idx = (size_t)((tag >> 8) & 0xff);
			if (idx < loop->n_listeners && !loop->listeners_paused)
				accept_on(loop, &loop->listeners[idx]);
			break;
		}
		case TAG_SIGNAL:
			on_signal(loop);
			break;
		case TAG_TIMER:
			on_timer(loop);
			break;
		case TAG_HOST:
			agentd_hostclient_drain(loop->env.hc, on_host_reply, loop);
			break;
		case AGENTD_TAG_CONN: {
			uint32_t slot = (uint32_t)((tag >> 8) & 0xffffff), gen = (uint32_t)(tag >> 32);
			struct agentd_conn *c;
			if (slot >= loop->n_slots)
				break;
			c = &loop->slots[slot];
			if (c->gen != gen || c->state == CONN_FREE)
				break; /* event for a connection already released */
			agentd_conn_on_io(c, evs[i].events);
			release_if_closed(loop, c);
			break;
		}
		default:
			break;
		}
	}
	run_pending_and_deadlines(loop);
	return loop->stop ? 1 : 0;
}

int agentd_loop_run(struct agentd_loop *loop, struct vmlet_err *err)
{
	int r;

	while ((r = agentd_loop_run_once(loop, -1, err)) == 0)
		;
	return r < 0 ? -1 : 0;
}
