/* QMP client: one command in flight, a deadline on every wait, a cap on
 * every line, strict replies. See qmp.h for the rules and why. */
#include "hostd/qmp.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "shared/cleanup.h"

/* How long to sleep between connection attempts while QEMU starts. */
#define QMP_CONNECT_RETRY_MS 10
/* QMP descriptions are QEMU's (untrusted) text: cap what reaches errors. */
#define QMP_DESC_MAX 200

struct qmp {
	int fd;
	bool closed;      /* dropped: no further I/O */
	bool peer_closed; /* ... because the peer closed it (EOF) */
	int64_t next_id;
	size_t have; /* bytes buffered in buf */
	struct qmp_events ev;
	char buf[QMP_LINE_MAX]; /* one line, including its '\n', must fit */
};

enum line_kind { LINE_GREETING, LINE_EVENT, LINE_REPLY };

static const char *const event_names[QMP_EV_COUNT] = {
	[QMP_EV_STOP] = "STOP",
	[QMP_EV_RESUME] = "RESUME",
	[QMP_EV_SHUTDOWN] = "SHUTDOWN",
	[QMP_EV_MIGRATION] = "MIGRATION",
};

/* jansson's own json_decrefp (json_auto_t) releases a reference. */
#define _cleanup_json_ _cleanup_(json_decrefp)

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int ms_left(int64_t deadline)
{
	int64_t left = deadline - now_ms();

	if (left <= 0)
		return 0;
	return left > INT32_MAX ? INT32_MAX : (int)left;
}

/* Copy QEMU-provided text into dst: printable ASCII only, capped. */
static void copy_untrusted(char *dst, size_t cap, const char *src)
{
	size_t i;

	for (i = 0; src && src[i] && i + 1 < cap; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	dst[i] = '\0';
}

static void qmp_drop(struct qmp *q)
{
	if (q->fd >= 0)
		close(q->fd);
	q->fd = -1;
	q->closed = true;
	q->have = 0;
}

/* Protocol violations and timeouts end the connection: a late or
 * malformed reply must never be matched to the next command. */
static int drop_with(struct qmp *q, struct vmlet_err *err, int code, const char *what,
		     const char *why)
{
	qmp_drop(q);
	return vmlet_err_set(err, code, 0, "qmp %s: %s", what, why);
}

/* Read one line (ending in '\n') into q->buf[0..*len). Returns 1 with a
 * line, 0 on timeout (connection kept), -1 with err on EOF, overlong line
 * or socket error (connection dropped). */
static int read_line(struct qmp *q, int64_t deadline, const char *what, size_t *len,
		     struct vmlet_err *err)
{
	for (;;) {
		char *nl = memchr(q->buf, '\n', q->have);
		struct pollfd p = { .fd = q->fd, .events = POLLIN };
		ssize_t n;
		int r;

		if (nl) {
			*len = (size_t)(nl - q->buf) + 1;
			return 1;
		}
		if (q->have == sizeof(q->buf)) {
			char why[96];
			snprintf(why, sizeof(why), "line longer than %d bytes from QEMU",
				 QMP_LINE_MAX);
			return drop_with(q, err, VMLET_E_INTERNAL, what, why);
		}
		r = poll(&p, 1, ms_left(deadline));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			vmlet_err_sys(err, VMLET_E_INTERNAL, "qmp %s: poll", what);
			qmp_drop(q);
			return -1;
		}
		if (r == 0)
			return 0;
		n = recv(q->fd, q->buf + q->have, sizeof(q->buf) - q->have, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (n < 0) {
			vmlet_err_sys(err, VMLET_E_UNAVAILABLE, "qmp %s: recv", what);
			qmp_drop(q);
			return -1;
		}
		if (n == 0) {
			q->peer_closed = true;
			return drop_with(q, err, VMLET_E_UNAVAILABLE, what,
					 "QEMU closed the connection");
		}
		q->have += (size_t)n;
	}
}

static void consume_line(struct qmp *q, size_t len)
{
	memmove(q->buf, q->buf + len, q->have - len);
	q->have -= len;
}

static void record_event(struct qmp *q, const char *name, json_t *data)
{
	for (int i = 0; i < QMP_EV_COUNT; i++) {
		if (strcmp(name, event_names[i]) != 0)
			continue;
		q->ev.count[i]++;
		if (i == QMP_EV_SHUTDOWN) {
			json_t *guest = json_object_get(data, "guest");
			q->ev.shutdown_guest = json_is_true(guest);
			copy_untrusted(q->ev.shutdown_reason, sizeof(q->ev.shutdown_reason),
				       json_string_value(json_object_get(data, "reason")));
		} else if (i == QMP_EV_MIGRATION) {
			copy_untrusted(q->ev.migration_status, sizeof(q->ev.migration_status),
				       json_string_value(json_object_get(data, "status")));
		}
		return;
	}
}

/* Parse and classify the line at the head of the buffer, then consume it.
 * Events are recorded here. *msg gets the parsed object (new reference). */
static int parse_line(struct qmp *q, size_t len, const char *what, enum line_kind *kind,
		      json_t **msg, struct vmlet_err *err)
{
	_cleanup_json_ json_t *m = NULL;
	json_error_t jerr;
	json_t *ev;

	m = json_loadb(q->buf, len, JSON_REJECT_DUPLICATES, &jerr);
	consume_line(q, len);
	if (!m || !json_is_object(m)) {
		char why[200];
		snprintf(why, sizeof(why), "QEMU sent %s",
			 m ? "a JSON value that is not an object" : "a line that is not JSON");
		return drop_with(q, err, VMLET_E_INTERNAL, what, why);
	}
	if ((ev = json_object_get(m, "event")) != NULL) {
		json_t *data = json_object_get(m, "data");
		if (!json_is_string(ev) || (data && !json_is_object(data)))
			return drop_with(q, err, VMLET_E_INTERNAL, what,
					 "malformed event (\"event\" must be a string, \"data\" an object)");
		record_event(q, json_string_value(ev), data);
		*kind = LINE_EVENT;
	} else if (json_object_get(m, "QMP")) {
		*kind = LINE_GREETING;
	} else if (json_object_get(m, "return") || json_object_get(m, "error")) {
		*kind = LINE_REPLY;
	} else {
		return drop_with(q, err, VMLET_E_INTERNAL, what,
				 "message is neither a reply, an event nor a greeting");
	}
	*msg = vmlet_take_ptr(&m);
	return 0;
}

/* A reply must be {"return": any, "id": id} or
 * {"error": {"class": str, "desc": str}, "id": id} and nothing else. */
static int check_reply(struct qmp *q, json_t *m, int64_t id, const char *what, json_t **ret,
		       struct vmlet_err *err)
{
	json_t *r = json_object_get(m, "return");
	json_t *e = json_object_get(m, "error");
	json_t *jid = json_object_get(m, "id");
	const char *cls, *desc;
	char cls_s[64], desc_s[QMP_DESC_MAX];

	if (!json_is_integer(jid) || json_integer_value(jid) != id)
		return drop_with(q, err, VMLET_E_INTERNAL, what, "reply does not carry our id");
	if (json_object_size(m) != 2 || (r && e))
		return drop_with(q, err, VMLET_E_INTERNAL, what,
				 "reply has members besides one \"return\" or \"error\" and \"id\"");
	if (r) {
		if (ret)
			*ret = json_incref(r);
		return 0;
	}
	cls = json_string_value(json_object_get(e, "class"));
	desc = json_string_value(json_object_get(e, "desc"));
	if (!json_is_object(e) || !cls || !desc)
		return drop_with(q, err, VMLET_E_INTERNAL, what,
				 "error reply without string \"class\" and \"desc\"");
	copy_untrusted(cls_s, sizeof(cls_s), cls);
	copy_untrusted(desc_s, sizeof(desc_s), desc);
	/* The connection stays usable: QEMU answered, it just said no. */
	return vmlet_err_set(err,
			     strcmp(cls, "CommandNotFound") == 0 ? VMLET_E_NOT_IMPLEMENTED
								 : VMLET_E_INTERNAL,
			     0, "qmp %s: %s: %s", what, cls_s, desc_s);
}

static bool command_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '-' || s[i] == '_'))
			return false;
	return true;
}

/* Send all of line; the fd (if any) rides on the first byte. */
static int send_line(struct qmp *q, const char *line, size_t len, int send_fd, int64_t deadline,
		     const char *what, struct vmlet_err *err)
{
	size_t off = 0;

	while (off < len) {
		struct iovec iov = { .iov_base = (char *)line + off, .iov_len = len - off };
		union {
			char buf[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} ctl;
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		struct pollfd p = { .fd = q->fd, .events = POLLOUT };
		ssize_t n;
		int r;

		if (off == 0 && send_fd >= 0) {
			struct cmsghdr *c;

			memset(&ctl, 0, sizeof(ctl));
			mh.msg_control = ctl.buf;
			mh.msg_controllen = sizeof(ctl.buf);
			c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(c), &send_fd, sizeof(int));
		}
		n = sendmsg(q->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			vmlet_err_sys(err, VMLET_E_UNAVAILABLE, "qmp %s: sendmsg", what);
			qmp_drop(q);
			return -1;
		}
		r = poll(&p, 1, ms_left(deadline));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return drop_with(q, err, VMLET_E_UNAVAILABLE, what,
					 "QEMU does not read its control socket");
	}
	return 0;
}

static int execute_by(struct qmp *q, const char *command, json_t *args_stolen, int send_fd,
		      int64_t deadline, int timeout_ms, json_t **ret, struct vmlet_err *err)
{
	_cleanup_json_ json_t *args = args_stolen;
	_cleanup_json_ json_t *req = NULL;
	_cleanup_free_ char *text = NULL;
	int64_t id;

	if (ret)
		*ret = NULL;
	if (!command_name_ok(command))
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "qmp: bad command name");
	if (q->closed)
		return vmlet_err_set(err, VMLET_E_UNAVAILABLE, 0,
				     "qmp %s: the connection is closed", command);
	if (args && !json_is_object(args))
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
				     "qmp %s: arguments must be an object", command);
	id = q->next_id++;
	req = json_pack("{s:s, s:I}", "execute", command, "id", (json_int_t)id);
	if (!req || (args && json_object_set(req, "arguments", args) < 0))
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "qmp %s: out of memory",
				     command);
	text = json_dumps(req, JSON_COMPACT);
	if (!text)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "qmp %s: out of memory",
				     command);
	/* json_dumps escapes control characters: the text holds no '\n'. */
	size_t tlen = strlen(text);
	_cleanup_free_ char *line = malloc(tlen + 2);
	if (!line)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "qmp %s: out of memory",
				     command);
	memcpy(line, text, tlen);
	line[tlen] = '\n';
	line[tlen + 1] = '\0';
	if (send_line(q, line, tlen + 1, send_fd, deadline, command, err) < 0)
		return -1;

	for (;;) {
		_cleanup_json_ json_t *m = NULL;
		enum line_kind kind;
		size_t len;
		int r = read_line(q, deadline, command, &len, err);

		if (r < 0)
			return -1;
		if (r == 0) {
			char why[64];
			snprintf(why, sizeof(why), "no reply within %d ms", timeout_ms);
			return drop_with(q, err, VMLET_E_UNAVAILABLE, command, why);
		}
		if (parse_line(q, len, command, &kind, &m, err) < 0)
			return -1;
		if (kind == LINE_EVENT)
			continue;
		if (kind == LINE_GREETING)
			return drop_with(q, err, VMLET_E_INTERNAL, command,
					 "unexpected greeting instead of a reply");
		return check_reply(q, m, id, command, ret, err);
	}
}

int qmp_execute(struct qmp *q, const char *command, json_t *args, int send_fd, int timeout_ms,
		json_t **ret, struct vmlet_err *err)
{
	return execute_by(q, command, args, send_fd, now_ms() + timeout_ms, timeout_ms, ret, err);
}

int qmp_wait_event(struct qmp *q, enum qmp_event ev, unsigned after, int timeout_ms,
		   struct vmlet_err *err)
{
	int64_t deadline = now_ms() + timeout_ms;
	const char *what = "event wait";

	if ((int)ev < 0 || ev >= QMP_EV_COUNT)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "qmp: unknown event kind");
	for (;;) {
		_cleanup_json_ json_t *m = NULL;
		enum line_kind kind;
		size_t len;
		int r;

		if (q->ev.count[ev] > after)
			return 1;
		if (q->closed)
			return vmlet_err_set(err, VMLET_E_UNAVAILABLE, 0,
					     "qmp waiting for %s: the connection is closed",
					     event_names[ev]);
		r = read_line(q, deadline, what, &len, err);
		if (r <= 0)
			return r;
		if (parse_line(q, len, what, &kind, &m, err) < 0)
			return -1;
		if (kind != LINE_EVENT)
			return drop_with(q, err, VMLET_E_INTERNAL, what,
					 "reply or greeting while no command was sent");
	}
}

int qmp_attach(int fd, int timeout_ms, struct qmp **out, struct vmlet_err *err)
{
	int64_t deadline = now_ms() + timeout_ms;
	_cleanup_json_ json_t *m = NULL;
	struct qmp *q;
	enum line_kind kind;
	json_t *greet;
	size_t len;
	int r;

	*out = NULL;
	q = calloc(1, sizeof(*q));
	if (!q) {
		close(fd);
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "qmp: out of memory");
	}
	q->fd = fd;
	q->next_id = 1;

	r = read_line(q, deadline, "greeting", &len, err);
	if (r == 0)
		drop_with(q, err, VMLET_E_UNAVAILABLE, "greeting", "no greeting from QEMU in time");
	if (r <= 0 || parse_line(q, len, "greeting", &kind, &m, err) < 0)
		goto fail;
	greet = json_object_get(m, "QMP");
	if (kind != LINE_GREETING || !json_is_object(greet) ||
	    !json_is_array(json_object_get(greet, "capabilities"))) {
		drop_with(q, err, VMLET_E_INTERNAL, "greeting",
			  "first message is not a QMP greeting {\"QMP\": {\"capabilities\": [...]}}");
		goto fail;
	}
	/* Enter command mode; no optional capabilities (no out-of-band). */
	if (execute_by(q, "qmp_capabilities", NULL, -1, deadline, timeout_ms, NULL, err) < 0)
		goto fail;
	*out = q;
	return 0;
fail:
	qmp_close(q);
	return -1;
}

int qmp_connect(const char *path, int timeout_ms, struct qmp **out, struct vmlet_err *err)
{
	int64_t deadline = now_ms() + timeout_ms;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	*out = NULL;
	if (strlen(path) >= sizeof(sa.sun_path))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "qmp socket path is longer than %zu bytes",
				     sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	for (;;) {
		_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		int e;

		if (fd < 0)
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "qmp: socket");
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			int left = ms_left(deadline);
			return qmp_attach(vmlet_take_fd(&fd), left ? left : 1, out, err);
		}
		e = errno;
		/* connect() says "refused" for a path that is not a socket at
		 * all; that will not change by waiting. */
		struct stat st;
		if (e == ECONNREFUSED && lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
			return vmlet_err_set(err, VMLET_E_UNAVAILABLE, 0,
					     "qmp: connect to %s: it is not a socket", path);
		/* Not there yet / not listening yet / backlog full: QEMU is
		 * still starting. Anything else is final. */
		if (e != ENOENT && e != ECONNREFUSED && e != EAGAIN && e != EINTR)
			return vmlet_err_sys(err, VMLET_E_UNAVAILABLE, "qmp: connect to %s", path);
		if (ms_left(deadline) == 0) {
			errno = e;
			return vmlet_err_sys(err, VMLET_E_UNAVAILABLE,
					     "qmp: connect to %s: no QMP socket within %d ms", path,
					     timeout_ms);
		}
		int nap = ms_left(deadline);
		struct timespec ts = { 0, (long)(nap < QMP_CONNECT_RETRY_MS ? nap : QMP_CONNECT_RETRY_MS) * 1000000L };
		nanosleep(&ts, NULL);
	}
}

const struct qmp_events *qmp_events(const struct qmp *q)
{
	return &q->ev;
}

bool qmp_closed(const struct qmp *q)
{
	return q->closed;
}

bool qmp_peer_closed(const struct qmp *q)
{
	return q->peer_closed;
}

void qmp_close(struct qmp *q)
{
	if (!q)
		return;
	qmp_drop(q);
	free(q);
}
