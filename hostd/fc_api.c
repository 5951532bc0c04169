/* Firecracker API client: HTTP/1.1 over a unix socket, one request in
 * flight, a deadline on every wait, caps on every read, strict parsing.
 * See fc_api.h for the rules and why. */
#include "hostd/fc_api.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "shared/cleanup.h"
#include "shared/log.h"

/* Pause between connection attempts while Firecracker starts. */
#define FC_CONNECT_RETRY_MS 10
/* Longest request path we ever build ("/drives/" + a 16-char id). */
#define FC_PATH_MAX 128
/* Request head: request line and four fixed headers. */
#define FC_REQ_HEAD_MAX 512

struct fc_api {
	int fd;
	bool peer_closed;          /* EOF seen: Firecracker exited; never reconnect */
	char path[108];            /* socket path to reconnect to; "" if attached */
	size_t have;               /* bytes buffered in buf */
	char buf[FC_API_RESPONSE_MAX];
};

/* What one call is about, for its error messages. */
struct call_ctx {
	const char *method;
	const char *path;
	int timeout_ms;
	int64_t deadline;
};

/* The parsed head of a response. */
struct head {
	int status;
	size_t head_len;     /* status line + headers + the empty line */
	bool has_length;
	size_t content_length;
	bool close_after;    /* "Connection: close" */
	bool deprecated;     /* "Deprecation:" present (a deprecated API was used) */
};

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

static void nap_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void drop(struct fc_api *a)
{
	if (a->fd >= 0)
		close(a->fd);
	a->fd = -1;
	a->have = 0;
}

/* Every failure after the request may have been sent ends the
 * connection: a late or malformed answer must never be read as the
 * answer to the next request. */
static __attribute__((format(printf, 4, 5))) int fail(struct fc_api *a, struct vmlet_err *err,
						       int code, const char *fmt, ...)
{
	char why[VMLET_ERR_MSG_MAX];
	va_list ap;

	drop(a);
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return vmlet_err_set(err, code, 0, "%s", why);
}

/* Firecracker's text into dst: printable ASCII only, capped. */
static void copy_untrusted(char *dst, size_t cap, const char *src)
{
	size_t i;

	for (i = 0; src && src[i] && i + 1 < cap; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	dst[i] = '\0';
}

/* ---- connecting --------------------------------------------------------------- */

static int socket_addr(const char *path, struct sockaddr_un *sa, struct vmlet_err *err)
{
	size_t n = path ? strlen(path) : 0;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (n == 0 || n >= sizeof(sa->sun_path))
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "firecracker API socket path must be 1..%zu bytes",
				     sizeof(sa->sun_path) - 1);
	memcpy(sa->sun_path, path, n + 1);
	return 0;
}

/* One attempt; returns the fd or -1 with errno. Non-blocking: a unix
 * connect() to a listener whose backlog is full would otherwise block
 * without a deadline (it fails with EAGAIN instead). All I/O after it
 * polls with a deadline anyway. */
static int connect_once(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static struct fc_api *api_new(int fd)
{
	struct fc_api *a = calloc(1, sizeof(*a));

	if (a)
		a->fd = fd;
	return a;
}

int fc_api_attach(int fd, struct fc_api **out, struct vmlet_err *err)
{
	struct fc_api *a;

	*out = NULL;
	if (fd < 0)
		return vmlet_err_set(err, VMLET_E_INTERNAL, EBADF, "firecracker API: no socket");
	a = api_new(fd);
	if (!a) {
		close(fd);
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "firecracker API: out of memory");
	}
	*out = a;
	return 0;
}

int fc_api_connect(const char *path, int timeout_ms, struct fc_api **out, struct vmlet_err *err)
{
	int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	struct sockaddr_un sa;

	*out = NULL;
	if (socket_addr(path, &sa, err) < 0)
		return -1;
	for (;;) {
		int fd = connect_once(&sa);
		int e = errno;
		struct stat st;

		if (fd >= 0) {
			if (fc_api_attach(fd, out, err) < 0)
				return -1;
			memcpy((*out)->path, sa.sun_path, sizeof((*out)->path));
			return 0;
		}
		/* "Refused" also comes from a path that is not a socket at
		 * all; waiting will not change that. */
		if (e == ECONNREFUSED && lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
			return vmlet_err_set(err, VMLET_E_UNAVAILABLE, 0,
					     "firecracker API: %s is not a socket", path);
		/* Not there yet / not listening yet / backlog full: still
		 * starting. Anything else is final. */
		if (e != ENOENT && e != ECONNREFUSED && e != EAGAIN && e != EINTR) {
			errno = e;
			return vmlet_err_sys(err, VMLET_E_UNAVAILABLE,
					     "firecracker API: connect to %s", path);
		}
		if (ms_left(deadline) == 0) {
			errno = e;
			return vmlet_err_sys(err, VMLET_E_UNAVAILABLE,
					     "firecracker API: no socket at %s within %d ms", path,
					     timeout_ms);
		}
		int left = ms_left(deadline);
		nap_ms(left < FC_CONNECT_RETRY_MS ? left : FC_CONNECT_RETRY_MS);
	}
}

/* Before a request: an open connection must be idle (no stray bytes, no
 * EOF); a dropped one is reopened once unless the peer had closed it. */
static int ready(struct fc_api *a, const struct call_ctx *c, struct vmlet_err *err)
{
	if (a->fd >= 0) {
		char b;
		ssize_t n = recv(a->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return 0;
		if (n == 0 || (n < 0 && errno == ECONNRESET)) {
			a->peer_closed = true;
			return fail(a, err, VMLET_E_UNAVAILABLE,
				    "firecracker %s %s: firecracker closed the API connection "
				    "(it has exited)", c->method, c->path);
		}
		if (n > 0)
			return fail(a, err, VMLET_E_INTERNAL,
				    "firecracker %s %s: unsolicited bytes on the idle API connection",
				    c->method, c->path);
		int e = errno;
		drop(a);
		errno = e;
		return vmlet_err_sys(err, VMLET_E_UNAVAILABLE, "firecracker %s %s: recv",
				     c->method, c->path);
	}
	if (a->peer_closed)
		return vmlet_err_set(err, VMLET_E_UNAVAILABLE, 0,
				     "firecracker %s %s: firecracker closed the API connection "
				     "(it has exited)", c->method, c->path);
	if (!a->path[0])
		return vmlet_err_set(err, VMLET_E_UNAVAILABLE, 0,
				     "firecracker %s %s: the API connection was dropped earlier",
				     c->method, c->path);

	struct sockaddr_un sa;
	if (socket_addr(a->path, &sa, err) < 0)
		return -1;
	/* Firecracker answered on this path before: one attempt, no wait. */
	a->fd = connect_once(&sa);
	if (a->fd < 0)
		return vmlet_err_sys(err, VMLET_E_UNAVAILABLE, "firecracker %s %s: reconnect to %s",
				     c->method, c->path, a->path);
	a->have = 0;
	return 0;
}

/* ---- sending ----------------------------------------------------------------- */

static bool method_ok(const char *m)
{
	return m && (strcmp(m, "GET") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0);
}

static bool path_ok(const char *p)
{
	size_t n = p ? strlen(p) : 0;

	if (n == 0 || n >= FC_PATH_MAX || p[0] != '/')
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = p[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '/' || ch == '_' || ch == '.' || ch == '-'))
			return false;
	}
	return true;
}

static int send_all(struct fc_api *a, const struct call_ctx *c, const char *buf, size_t len,
		    struct vmlet_err *err)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = send(a->fd, buf + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd p = { .fd = a->fd, .events = POLLOUT };
			int r = poll(&p, 1, ms_left(c->deadline));

			if (r < 0 && errno != EINTR)
				return fail(a, err, VMLET_E_INTERNAL, "firecracker %s %s: poll: %s",
					    c->method, c->path, strerror(errno));
			if (r == 0)
				return fail(a, err, VMLET_E_UNAVAILABLE,
					    "firecracker %s %s: request not taken within %d ms",
					    c->method, c->path, c->timeout_ms);
			continue;
		}
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
			a->peer_closed = true;
		return fail(a, err, VMLET_E_UNAVAILABLE, "firecracker %s %s: send: %s", c->method,
			    c->path, n < 0 ? strerror(errno) : "nothing sent");
	}
	return 0;
}

static int send_request(struct fc_api *a, const struct call_ctx *c, const json_t *body,
			struct vmlet_err *err)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_free_ char *req = NULL;
	size_t blen = 0, hlen;
	int n;

	if (body) {
		/* jansson escapes every string it writes: no caller value can
		 * change the JSON's structure. */
		text = json_dumps(body, JSON_COMPACT);
		if (!text)
			return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
					     "firecracker %s %s: cannot encode the request body",
					     c->method, c->path);
		blen = strlen(text);
		if (blen > FC_API_REQUEST_BODY_MAX)
			return vmlet_err_set(err, VMLET_E_TOO_LARGE, 0,
					     "firecracker %s %s: request body of %zu bytes is over "
					     "Firecracker's %d byte limit",
					     c->method, c->path, blen, FC_API_REQUEST_BODY_MAX);
	}
	req = malloc(FC_REQ_HEAD_MAX + blen);
	if (!req)
		return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM,
				     "firecracker %s %s: out of memory", c->method, c->path);
	if (body)
		n = snprintf(req, FC_REQ_HEAD_MAX,
			     "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
			     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
			     c->method, c->path, blen);
	else
		n = snprintf(req, FC_REQ_HEAD_MAX,
			     "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\r\n",
			     c->method, c->path);
	if (n < 0 || n >= FC_REQ_HEAD_MAX)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "firecracker %s %s: request too long",
				     c->method, c->path);
	hlen = (size_t)n;
	if (blen)
		memcpy(req + hlen, text, blen);
	return send_all(a, c, req, hlen + blen, err);
}

/* ---- receiving --------------------------------------------------------------- */

/* Read what is available into buf, waiting until the deadline. 0 with
 * more bytes, -1 with err (connection dropped) on EOF, timeout, error or
 * a full buffer. */
static int read_more(struct fc_api *a, const struct call_ctx *c, struct vmlet_err *err)
{
	for (;;) {
		struct pollfd p = { .fd = a->fd, .events = POLLIN };
		ssize_t n;
		int r;

		if (a->have == sizeof(a->buf))
			return fail(a, err, VMLET_E_INTERNAL,
				    "firecracker %s %s: response larger than %d bytes", c->method,
				    c->path, FC_API_RESPONSE_MAX);
		r = poll(&p, 1, ms_left(c->deadline));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return fail(a, err, VMLET_E_INTERNAL, "firecracker %s %s: poll: %s",
				    c->method, c->path, strerror(errno));
		if (r == 0)
			return fail(a, err, VMLET_E_UNAVAILABLE,
				    "firecracker %s %s: no complete response within %d ms",
				    c->method, c->path, c->timeout_ms);
		n = recv(a->fd, a->buf + a->have, sizeof(a->buf) - a->have, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (n == 0 || (n < 0 && errno == ECONNRESET)) {
			a->peer_closed = true;
			return fail(a, err, VMLET_E_UNAVAILABLE,
				    "firecracker %s %s: connection closed %s", c->method, c->path,
				    a->have ? "in the middle of the response"
					    : "before a response (firecracker exited?)");
		}
		if (n < 0)
			return fail(a, err, VMLET_E_UNAVAILABLE, "firecracker %s %s: recv: %s",
				    c->method, c->path, strerror(errno));
		a->have += (size_t)n;
		return 0;
	}
}

/* RFC 9110 token characters (header names). */
static bool tchar(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Field value / reason phrase characters: HTAB, SP, VCHAR, obs-text. */
static bool vchar(unsigned char ch)
{
	return ch == '\t' || (ch >= 0x20 && ch != 0x7f);
}

static bool name_is(const char *s, size_t n, const char *want)
{
	return strlen(want) == n && strncasecmp(s, want, n) == 0;
}

/* Does a comma-separated header value hold the token tok? */
static bool has_token(const char *v, size_t n, const char *tok)
{
	size_t i = 0, tl = strlen(tok);

	while (i < n) {
		size_t s, e;

		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < n && v[i] != ',')
			i++;
		e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - s == tl && strncasecmp(v + s, tok, tl) == 0)
			return true;
	}
	return false;
}

/* "HTTP/1.1" SP 3DIGIT [ SP reason ] ; the reason may be empty
 * (Firecracker sends "HTTP/1.1 204 "). */
static int parse_status_line(struct fc_api *a, const struct call_ctx *c, const char *l,
			     size_t n, struct head *h, struct vmlet_err *err)
{
	static const char ver[] = "HTTP/1.1 ";
	size_t vl = sizeof(ver) - 1;

	if (n < vl + 3 || memcmp(l, ver, vl) != 0 || l[vl] < '1' || l[vl] > '5' ||
	    l[vl + 1] < '0' || l[vl + 1] > '9' || l[vl + 2] < '0' || l[vl + 2] > '9' ||
	    (n > vl + 3 && l[vl + 3] != ' '))
		return fail(a, err, VMLET_E_INTERNAL,
			    "firecracker %s %s: malformed status line (want \"HTTP/1.1 NNN ...\")",
			    c->method, c->path);
	for (size_t i = vl + 4; i < n; i++)
		if (!vchar((unsigned char)l[i]))
			return fail(a, err, VMLET_E_INTERNAL,
				    "firecracker %s %s: control character in the status line",
				    c->method, c->path);
	h->status = (l[vl] - '0') * 100 + (l[vl + 1] - '0') * 10 + (l[vl + 2] - '0');
	/* We never send "Expect": an interim answer is not Firecracker's. */
	if (h->status < 200)
		return fail(a, err, VMLET_E_INTERNAL, "firecracker %s %s: unexpected status %d",
			    c->method, c->path, h->status);
	return 0;
}

static int parse_header(struct fc_api *a, const struct call_ctx *c, const char *l, size_t n,
			struct head *h, struct vmlet_err *err)
{
	size_t k = 0, vs, ve;

	if (n > 0 && (l[0] == ' ' || l[0] == '\t'))
		return fail(a, err, VMLET_E_INTERNAL,
			    "firecracker %s %s: folded header line (obsolete, refused)", c->method,
			    c->path);
	while (k < n && tchar((unsigned char)l[k]))
		k++;
	if (k == 0 || k == n || l[k] != ':')
		return fail(a, err, VMLET_E_INTERNAL, "firecracker %s %s: malformed header line",
			    c->method, c->path);
	vs = k + 1;
	while (vs < n && (l[vs] == ' ' || l[vs] == '\t'))
		vs++;
	ve = n;
	while (ve > vs && (l[ve - 1] == ' ' || l[ve - 1] == '\t'))
		ve--;
	for (size_t i = vs; i < ve; i++)
		if (!vchar((unsigned char)l[i]))
			return fail(a, err, VMLET_E_INTERNAL,
				    "firecracker %s %s: control character in a header value",
				    c->method, c->path);

	if (name_is(l, k, "Content-Length")) {
		size_t v = 0;

		if (h->has_length)
			return fail(a, err, VMLET_E_INTERNAL,
				    "firecracker %s %s: Content-Length given twice", c->method,
				    c->path);
		/* Digits only (no sign, no list), and few enough that the
		 * value cannot overflow; the cap is checked by the caller. */
		if (ve == vs || ve - vs > 9)
			return fail(a, err, VMLET_E_INTERNAL,
				    "firecracker %s %s: bad Content-Length", c->method, c->path);
		for (size_t i = vs; i < ve; i++) {
			if (l[i] < '0' || l[i] > '9')
				return fail(a, err, VMLET_E_INTERNAL,
					    "firecracker %s %s: bad Content-Length", c->method,
					    c->path);
			v = v * 10 + (size_t)(l[i] - '0');
		}
		h->has_length = true;
		h->content_length = v;
	} else if (name_is(l, k, "Transfer-Encoding")) {
		/* Firecracker never sends one; a chunked body would have to
		 * be read without a length known up front. */
		return fail(a, err, VMLET_E_INTERNAL,
			    "firecracker %s %s: Transfer-Encoding is not supported", c->method,
			    c->path);
	} else if (name_is(l, k, "Connection")) {
		if (has_token(l + vs, ve - vs, "close"))
			h->close_after = true;
	} else if (name_is(l, k, "Deprecation")) {
		h->deprecated = true;
	}
	return 0;
}

/* Parse buf[0..head_len): lines end in CRLF, no bare CR or LF, no NUL. */
static int parse_head(struct fc_api *a, const struct call_ctx *c, size_t head_len, struct head *h,
		      struct vmlet_err *err)
{
	size_t pos = 0;
	bool first = true;

	memset(h, 0, sizeof(*h));
	h->head_len = head_len;
	while (pos < head_len) {
		const char *l = a->buf + pos;
		size_t n = 0;

		while (pos + n < head_len && l[n] != '\r' && l[n] != '\n' && l[n] != '\0')
			n++;
		if (pos + n + 1 >= head_len || l[n] != '\r' || l[n + 1] != '\n')
			return fail(a, err, VMLET_E_INTERNAL,
				    "firecracker %s %s: response head has a bare CR, LF or NUL",
				    c->method, c->path);
		pos += n + 2;
		if (n == 0)
			break; /* the empty line ends the head */
		if (first) {
			if (parse_status_line(a, c, l, n, h, err) < 0)
				return -1;
			first = false;
		} else if (parse_header(a, c, l, n, h, err) < 0) {
			return -1;
		}
	}
	if (first || pos != head_len)
		return fail(a, err, VMLET_E_INTERNAL, "firecracker %s %s: malformed response head",
			    c->method, c->path);
	return 0;
}

/* Find the end of the head ("\r\n\r\n"), reading more as needed. */
static int read_head(struct fc_api *a, const struct call_ctx *c, size_t *head_len,
		     struct vmlet_err *err)
{
	for (;;) {
		size_t scan = a->have < FC_API_HEAD_MAX ? a->have : FC_API_HEAD_MAX;
		const char *end = memmem(a->buf, scan, "\r\n\r\n", 4);

		if (end) {
			*head_len = (size_t)(end - a->buf) + 4;
			return 0;
		}
		if (a->have >= FC_API_HEAD_MAX)
			return fail(a, err, VMLET_E_INTERNAL,
				    "firecracker %s %s: response head longer than %d bytes",
				    c->method, c->path, FC_API_HEAD_MAX);
		if (read_more(a, c, err) < 0)
			return -1;
	}
}

/* The error for a non-2xx answer, with Firecracker's fault_message. */
static int status_error(const struct call_ctx *c, int status, const char *body, size_t len,
			struct vmlet_err *err)
{
	_cleanup_json_ json_t *j = NULL;
	char fault[FC_API_FAULT_MAX] = "(no fault_message)";
	const char *m;

	if (len > 0) {
		j = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
		m = json_string_value(json_object_get(j, "fault_message"));
		if (m)
			copy_untrusted(fault, sizeof(fault), m);
	}
	return vmlet_err_set(err, status == 400 ? VMLET_E_INVALID : VMLET_E_INTERNAL, 0,
			     "firecracker %s %s: %d: %s", c->method, c->path, status, fault);
}

int fc_api_call(struct fc_api *a, const char *method, const char *path, const json_t *body,
		int timeout_ms, json_t **reply, struct vmlet_err *err)
{
	struct call_ctx c = { .method = method, .path = path, .timeout_ms = timeout_ms,
			      .deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0) };
	struct head h;
	size_t head_len = 0, total;
	int rc;

	if (reply)
		*reply = NULL;
	if (!method_ok(method) || !path_ok(path))
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
				     "firecracker API: refusing request method/path outside "
				     "GET|PUT|PATCH /[A-Za-z0-9/_.-]");
	if (ready(a, &c, err) < 0 || send_request(a, &c, body, err) < 0)
		return -1;
	if (read_head(a, &c, &head_len, err) < 0 || parse_head(a, &c, head_len, &h, err) < 0)
		return -1;

	if (h.status == 204 || h.status == 304) {
		/* No body by definition (RFC 9110 6.4.1). */
		if (h.has_length && h.content_length != 0)
			return fail(a, err, VMLET_E_INTERNAL,
				    "firecracker %s %s: %d with a non-zero Content-Length",
				    method, path, h.status);
		h.content_length = 0;
	} else if (!h.has_length) {
		/* Firecracker always sends one; reading "until close" would
		 * let the peer decide how long we wait and how much we take. */
		return fail(a, err, VMLET_E_INTERNAL,
			    "firecracker %s %s: %d response without Content-Length", method, path,
			    h.status);
	}
	if (h.content_length > (size_t)FC_API_RESPONSE_MAX - head_len)
		return fail(a, err, VMLET_E_INTERNAL,
			    "firecracker %s %s: response of %zu bytes is over the %d byte cap",
			    method, path, head_len + h.content_length, FC_API_RESPONSE_MAX);
	total = head_len + h.content_length;
	while (a->have < total)
		if (read_more(a, &c, err) < 0)
			return -1;
	if (a->have > total)
		return fail(a, err, VMLET_E_INTERNAL,
			    "firecracker %s %s: %zu bytes beyond the declared Content-Length",
			    method, path, a->have - total);

	if (h.deprecated)
		vlog(VLOG_WARN, "firecracker_api_deprecated", "method=%s path=%s", method, path);

	const char *b = a->buf + head_len;
	size_t blen = h.content_length;

	if (h.status >= 200 && h.status < 300) {
		json_t *j = NULL;

		if (blen > 0) {
			j = json_loadb(b, blen, JSON_REJECT_DUPLICATES, NULL);
			if (!j)
				return fail(a, err, VMLET_E_INTERNAL,
					    "firecracker %s %s: %d body is not JSON", method, path,
					    h.status);
		}
		if (reply)
			*reply = j;
		else
			json_decref(j);
		rc = 0;
	} else {
		rc = status_error(&c, h.status, b, blen, err);
	}
	a->have = 0;
	if (h.close_after)
		drop(a); /* it said so; the next call opens a new connection */
	return rc;
}

int fc_api_wait_closed(struct fc_api *a, int timeout_ms, struct vmlet_err *err)
{
	int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);

	if (a->fd < 0) {
		if (a->peer_closed)
			return 1;
		return vmlet_err_set(err, VMLET_E_UNAVAILABLE, 0,
				     "firecracker API: no connection to watch");
	}
	for (;;) {
		struct pollfd p = { .fd = a->fd, .events = POLLIN };
		char b[256];
		ssize_t n;
		int r = poll(&p, 1, ms_left(deadline));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return fail(a, err, VMLET_E_INTERNAL, "firecracker API: poll: %s",
				    strerror(errno));
		if (r == 0)
			return 0;
		n = recv(a->fd, b, sizeof(b), MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (n == 0 || (n < 0 && errno == ECONNRESET)) {
			a->peer_closed = true;
			drop(a);
			return 1;
		}
		if (n > 0)
			return fail(a, err, VMLET_E_INTERNAL,
				    "firecracker API: unsolicited bytes on the idle connection");
		return fail(a, err, VMLET_E_UNAVAILABLE, "firecracker API: recv: %s",
			    strerror(errno));
	}
}

bool fc_api_peer_closed(const struct fc_api *a)
{
	return a->peer_closed;
}

void fc_api_close(struct fc_api *a)
{
	if (!a)
		return;
	drop(a);
	free(a);
}
