/* A QMP TEST DOUBLE (not QEMU): a thread that plays a scripted QMP server
 * on a socketpair or a listening unix socket, so the QMP client and the
 * QEMU driver can be driven through protocol edge cases that a real QEMU
 * never produces on demand (garbage, overlong lines, wrong ids, silence).
 * It checks what the client sends (command names, arguments, a passed fd)
 * and records the first mismatch in `why`. Every wait in it is bounded. */
#ifndef TEST_HOSTD_QMP_DOUBLE_H
#define TEST_HOSTD_QMP_DOUBLE_H

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define QD_GREETING                                                                         \
	"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, "  \
	"\"package\": \"\"}, \"capabilities\": [\"oob\"]}}\r\n"
#define QD_OK "{\"return\": {}, \"id\": $ID}\r\n"
/* Bound on every wait inside the double (a broken client must not hang
 * the test run). */
#define QD_WAIT_MS 10000

enum qd_op {
	QD_END = 0,
	QD_SEND,   /* send text as is */
	QD_EXPECT, /* read one command; name must be text; see want_fd/args */
	QD_REPLY,  /* send text with every "$ID" replaced by the last command's id */
	QD_HOLD,   /* send nothing until the client closes its end */
	QD_CLOSE,  /* close our end now */
	QD_SLEEP,  /* sleep ms */
};

struct qd_step {
	enum qd_op op;
	const char *text;
	bool want_fd;          /* QD_EXPECT: an fd must come with the command */
	const char *args_json; /* QD_EXPECT: arguments must equal this (NULL: none) */
	int ms;                /* QD_SLEEP */
};

#define QD_HANDSHAKE                                                                        \
	{ QD_SEND, QD_GREETING, false, NULL, 0 }, { QD_EXPECT, "qmp_capabilities", false, NULL, 0 }, \
	{ QD_REPLY, QD_OK, false, NULL, 0 }

struct qmp_double {
	const struct qd_step *script;
	int fd;                 /* our end of the connection */
	int listen_fd;          /* listening mode: accept from here first */
	char path[108];         /* listening mode: socket path */
	int bind_delay_ms;      /* listening mode: create the socket this late */
	pthread_t thread;
	/* results, read after qd_join */
	char why[512];          /* first mismatch, "" if the script ran as written */
	int received_fd;        /* fd that came with a want_fd command, or -1 */
	int commands;           /* commands read */
	char last_command[64];
	char buf[8192];
	size_t have;
	json_int_t last_id;
};

static inline __attribute__((format(printf, 2, 3))) void qd_fail(struct qmp_double *d,
								  const char *fmt, ...)
{
	va_list ap;

	if (d->why[0])
		return;
	va_start(ap, fmt);
	vsnprintf(d->why, sizeof(d->why), fmt, ap);
	va_end(ap);
}

static inline void qd_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Read one '\n'-terminated command, catching an SCM_RIGHTS fd. */
static inline int qd_read_line(struct qmp_double *d, char *line, size_t cap, int *fd_out)
{
	*fd_out = -1;
	for (;;) {
		char *nl = memchr(d->buf, '\n', d->have);
		if (nl) {
			size_t len = (size_t)(nl - d->buf);
			if (len >= cap)
				return -1;
			memcpy(line, d->buf, len);
			line[len] = '\0';
			memmove(d->buf, nl + 1, d->have - len - 1);
			d->have -= len + 1;
			return 0;
		}
		struct pollfd p = { .fd = d->fd, .events = POLLIN };
		if (poll(&p, 1, QD_WAIT_MS) <= 0 || d->have == sizeof(d->buf))
			return -1;
		union {
			char b[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} ctl;
		struct iovec iov = { d->buf + d->have, sizeof(d->buf) - d->have };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
				     .msg_controllen = sizeof(ctl.b) };
		ssize_t n = recvmsg(d->fd, &mh, MSG_CMSG_CLOEXEC);
		if (n <= 0)
			return -1;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
			    c->cmsg_len == CMSG_LEN(sizeof(int)))
				memcpy(fd_out, CMSG_DATA(c), sizeof(int));
		d->have += (size_t)n;
	}
}

static inline void qd_send(struct qmp_double *d, const char *text)
{
	size_t off = 0, len = strlen(text);

	while (off < len) {
		ssize_t n = send(d->fd, text + off, len - off, MSG_NOSIGNAL);
		if (n <= 0)
			return; /* the client may drop us mid-line on purpose */
		off += (size_t)n;
	}
}

static inline void qd_expect(struct qmp_double *d, const struct qd_step *s)
{
	char line[4096];
	int fd = -1;
	json_t *m, *args;
	json_error_t jerr;
	const char *name;

	if (qd_read_line(d, line, sizeof(line), &fd) < 0) {
		qd_fail(d, "expected command %s, got nothing", s->text);
		return;
	}
	d->commands++;
	m = json_loads(line, 0, &jerr);
	name = json_string_value(json_object_get(m, "execute"));
	if (!name || !json_is_integer(json_object_get(m, "id"))) {
		qd_fail(d, "not a QMP command with an integer id: %.300s", line);
		goto out;
	}
	snprintf(d->last_command, sizeof(d->last_command), "%s", name);
	d->last_id = json_integer_value(json_object_get(m, "id"));
	if (strcmp(name, s->text) != 0) {
		qd_fail(d, "unexpected command: %.300s", line);
		goto out;
	}
	args = json_object_get(m, "arguments");
	if (s->args_json) {
		json_t *want = json_loads(s->args_json, 0, &jerr);
		if (!args || !json_equal(args, want))
			qd_fail(d, "arguments differ: %.300s", line);
		json_decref(want);
	} else if (args) {
		qd_fail(d, "unexpected arguments: %.300s", line);
	}
	if (s->want_fd && fd < 0)
		qd_fail(d, "no fd came with %s", s->text);
	if (!s->want_fd && fd >= 0)
		qd_fail(d, "an unexpected fd came with %s", s->text);
	if (fd >= 0) {
		if (d->received_fd >= 0)
			close(d->received_fd);
		d->received_fd = fd;
		fd = -1;
	}
out:
	if (fd >= 0)
		close(fd);
	json_decref(m);
}

static inline void qd_reply(struct qmp_double *d, const char *tmpl)
{
	char id[32], *out;
	size_t n = 0, cap = strlen(tmpl) * 8 + 64;
	const char *p = tmpl;

	snprintf(id, sizeof(id), "%lld", (long long)d->last_id);
	out = malloc(cap);
	if (!out)
		return;
	while (*p) {
		if (strncmp(p, "$ID", 3) == 0) {
			n += (size_t)snprintf(out + n, cap - n, "%s", id);
			p += 3;
		} else {
			out[n++] = *p++;
		}
	}
	out[n] = '\0';
	qd_send(d, out);
	free(out);
}

static inline void qd_hold(struct qmp_double *d)
{
	char b[4096];
	struct pollfd p = { .fd = d->fd, .events = POLLIN };

	/* Swallow whatever comes until the client hangs up. */
	while (poll(&p, 1, QD_WAIT_MS) > 0 && recv(d->fd, b, sizeof(b), 0) > 0)
		;
}

static inline void *qd_main(void *arg)
{
	struct qmp_double *d = arg;

	if (d->listen_fd >= 0 || d->path[0]) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		struct pollfd p;

		if (d->bind_delay_ms)
			qd_sleep_ms(d->bind_delay_ms);
		memcpy(sa.sun_path, d->path, strlen(d->path) + 1);
		d->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (d->listen_fd < 0 || bind(d->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		    listen(d->listen_fd, 1) < 0) {
			qd_fail(d, "cannot listen on %s: %s", d->path, strerror(errno));
			return NULL;
		}
		p = (struct pollfd){ .fd = d->listen_fd, .events = POLLIN };
		if (poll(&p, 1, QD_WAIT_MS) <= 0 ||
		    (d->fd = accept4(d->listen_fd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
			qd_fail(d, "no client connected to %s", d->path);
			return NULL;
		}
	}
	for (const struct qd_step *s = d->script; s->op != QD_END && d->fd >= 0; s++) {
		switch (s->op) {
		case QD_SEND:
			qd_send(d, s->text);
			break;
		case QD_EXPECT:
			qd_expect(d, s);
			break;
		case QD_REPLY:
			qd_reply(d, s->text);
			break;
		case QD_HOLD:
			qd_hold(d);
			break;
		case QD_CLOSE:
			close(d->fd);
			d->fd = -1;
			break;
		case QD_SLEEP:
			qd_sleep_ms(s->ms);
			break;
		case QD_END:
			break;
		}
		if (d->why[0])
			break;
	}
	/* Script done: stay connected until the client closes, so an early
	 * EOF never masks what the client would do next. */
	if (d->fd >= 0 && !d->why[0])
		qd_hold(d);
	return NULL;
}

static inline void qd_init(struct qmp_double *d, const struct qd_step *script)
{
	memset(d, 0, sizeof(*d));
	d->script = script;
	d->fd = -1;
	d->listen_fd = -1;
	d->received_fd = -1;
}

/* Socketpair mode: returns the client's end (or -1). */
static inline int qd_start_pair(struct qmp_double *d, const struct qd_step *script)
{
	int sv[2];

	qd_init(d, script);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	d->fd = sv[1];
	if (pthread_create(&d->thread, NULL, qd_main, d) != 0) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	return sv[0];
}

/* Listening mode on path (created bind_delay_ms after the start). */
static inline int qd_start_listen(struct qmp_double *d, const struct qd_step *script,
				  const char *path, int bind_delay_ms)
{
	qd_init(d, script);
	snprintf(d->path, sizeof(d->path), "%s", path);
	d->bind_delay_ms = bind_delay_ms;
	unlink(path);
	return pthread_create(&d->thread, NULL, qd_main, d) == 0 ? 0 : -1;
}

/* Wait for the script to finish (the client must have closed by now). */
static inline void qd_join(struct qmp_double *d)
{
	pthread_join(d->thread, NULL);
	if (d->fd >= 0)
		close(d->fd);
	if (d->listen_fd >= 0)
		close(d->listen_fd);
	if (d->path[0])
		unlink(d->path);
	d->fd = d->listen_fd = -1;
}

static inline void qd_free(struct qmp_double *d)
{
	if (d->received_fd >= 0)
		close(d->received_fd);
	d->received_fd = -1;
}

#endif
