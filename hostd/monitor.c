#include "hostd/monitor.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "shared/log.h"

#define MAX_EVENTS 32

struct reg {
	struct reg *next;
	int fd;
	hostd_monitor_fn fn;
	void *arg;
	bool dead;
};

struct hostd_monitor {
	int epfd, stopfd;
	pthread_t thread;
	bool started;
	/* Held while callbacks of one batch run and while registrations
	 * change. Recursive: a callback may drop its own registration. */
	pthread_mutex_t lock;
	struct reg *regs;
	/* Dropped registrations are freed only after the batch that may
	 * still point at them (epoll_wait returned before the drop) is done. */
	struct reg *graveyard;
	void (*tick)(void *arg);
	void *tick_arg;
	int tick_ms;
};

static void free_list(struct reg *r)
{
	while (r) {
		struct reg *next = r->next;

		free(r);
		r = next;
	}
}

static void *monitor_main(void *arg)
{
	struct hostd_monitor *m = arg;
	struct epoll_event ev[MAX_EVENTS];

	for (;;) {
		int n = epoll_wait(m->epfd, ev, MAX_EVENTS, m->tick_ms);

		if (n < 0 && errno != EINTR) {
			vlog(VLOG_ERROR, "monitor_failed", "errno=%d", errno);
			break;
		}
		pthread_mutex_lock(&m->lock);
		bool stop = false;

		for (int k = 0; k < n; k++) {
			struct reg *r = ev[k].data.ptr;

			if (!r) {
				stop = true;
				continue;
			}
			if (!r->dead)
				r->fn(r->arg, r->fd, ev[k].events);
		}
		free_list(m->graveyard);
		m->graveyard = NULL;
		pthread_mutex_unlock(&m->lock);
		if (stop)
			break;
		if (m->tick)
			m->tick(m->tick_arg);
	}
	return NULL;
}

int hostd_monitor_start(struct hostd_monitor **out, void (*tick)(void *arg), void *tick_arg,
			int tick_ms, struct vmlet_err *err)
{
	struct hostd_monitor *m = calloc(1, sizeof(*m));
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	pthread_mutexattr_t ma;

	*out = NULL;
	if (!m)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "monitor: out of memory");
	m->epfd = epoll_create1(EPOLL_CLOEXEC);
	m->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	m->tick = tick;
	m->tick_arg = tick_arg;
	m->tick_ms = tick_ms;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&m->lock, &ma);
	pthread_mutexattr_destroy(&ma);
	if (m->epfd < 0 || m->stopfd < 0 || epoll_ctl(m->epfd, EPOLL_CTL_ADD, m->stopfd, &ev) < 0) {
		vmlet_err_sys(err, VMLET_E_INTERNAL, "monitor: epoll/eventfd");
		goto fail;
	}
	errno = pthread_create(&m->thread, NULL, monitor_main, m);
	if (errno) {
		vmlet_err_sys(err, VMLET_E_INTERNAL, "monitor: pthread_create");
		goto fail;
	}
	m->started = true;
	*out = m;
	return 0;
fail:
	if (m->epfd >= 0)
		close(m->epfd);
	if (m->stopfd >= 0)
		close(m->stopfd);
	pthread_mutex_destroy(&m->lock);
	free(m);
	return -1;
}

void hostd_monitor_stop(struct hostd_monitor *m)
{
	uint64_t one = 1;

	if (!m)
		return;
	if (m->started) {
		if (write(m->stopfd, &one, sizeof(one)) != sizeof(one))
			vlog(VLOG_WARN, "monitor_stop_signal_failed", "errno=%d", errno);
		pthread_join(m->thread, NULL);
	}
	free_list(m->regs);
	free_list(m->graveyard);
	close(m->epfd);
	close(m->stopfd);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

int hostd_monitor_add(struct hostd_monitor *m, int fd, hostd_monitor_fn fn, void *arg,
		      struct vmlet_err *err)
{
	struct reg *r = calloc(1, sizeof(*r));
	struct epoll_event ev = { .events = EPOLLIN };

	if (!r)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "monitor: out of memory");
	r->fd = fd;
	r->fn = fn;
	r->arg = arg;
	ev.data.ptr = r;
	pthread_mutex_lock(&m->lock);
	if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		pthread_mutex_unlock(&m->lock);
		free(r);
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "monitor: epoll_ctl add fd %d", fd);
	}
	r->next = m->regs;
	m->regs = r;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

void hostd_monitor_del(struct hostd_monitor *m, int fd)
{
	pthread_mutex_lock(&m->lock);
	for (struct reg **pp = &m->regs; *pp; pp = &(*pp)->next) {
		struct reg *r = *pp;

		if (r->fd != fd || r->dead)
			continue;
		epoll_ctl(m->epfd, EPOLL_CTL_DEL, fd, NULL);
		r->dead = true;
		*pp = r->next;
		r->next = m->graveyard;
		m->graveyard = r;
		break;
	}
	pthread_mutex_unlock(&m->lock);
}
