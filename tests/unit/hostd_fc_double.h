/* A FIRECRACKER API TEST DOUBLE (not Firecracker): a thread serving a
 * unix socket that answers like Firecracker's API server (micro_http byte
 * for byte: "HTTP/1.1 204 \r\nServer: Firecracker API\r\nConnection:
 * keep-alive\r\n\r\n", 400 with {"fault_message": "..."}, GET / with the
 * instance info) and models the part of Firecracker's state machine the
 * driver uses: pre-boot configuration only while "Not started",
 * InstanceStart, PATCH /vm Paused/Resumed, snapshot create only while
 * Paused, snapshot load only on a fresh process (a failed load ends the
 * process), SendCtrlAltDel (the guest may power off: the process "exits",
 * closing every connection). It records every request (method, path,
 * body, the connection it came on) and checks that each is well-formed
 * HTTP/1.1 (Host, Content-Type and an exact Content-Length with a body);
 * the first violation goes to `why`. One request can be replaced by a
 * fault (raw bytes, a close, or silence) to drive the client through what
 * a real Firecracker does not produce on demand.
 * Firecracker itself is not installable on the build machines: whatever
 * passes against this double was NOT run against a real Firecracker. */
#ifndef TEST_HOSTD_FC_DOUBLE_H
#define TEST_HOSTD_FC_DOUBLE_H

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define FD_MAX_REQ 64
/* Bound on every wait inside the double (a broken client must not hang
 * the test run); fd_stop ends any wait at once. */
#define FD_WAIT_MS 20000
#define FD_BUF 70000

enum fd_fault {
	FD_FAULT_NONE = 0,
	FD_FAULT_RAW,       /* send raw[0..raw_len) instead of the answer */
	FD_FAULT_RAW_CLOSE, /* send raw, then close the connection */
	FD_FAULT_CLOSE,     /* close the connection without answering */
	FD_FAULT_STALL,     /* answer nothing; wait until the client hangs up */
};

struct fd_request {
	char method[8];
	char path[128];
	char *body; /* NUL-terminated copy, or NULL */
	int conn;   /* which accepted connection (1, 2, ...) */
};

struct fc_double {
	/* set before fd_start */
	char path[108];
	int bind_delay_ms;        /* create the socket this late */
	int fault_at;             /* request index to fault, -1: none */
	enum fd_fault fault;
	const char *raw;
	size_t raw_len;
	bool guest_powers_off;    /* SendCtrlAltDel ends the "process" */
	bool load_fails;          /* snapshot load answers 400 and "exits" */
	const char *id;           /* InstanceInfo.id */
	const char *vmm_version;  /* InstanceInfo.vmm_version */
	char state[16];           /* "Not started", "Running", "Paused" */
	/* model */
	bool configured;          /* a pre-boot resource was set */
	bool exited;
	/* results (lock mu, or read after fd_stop) */
	pthread_mutex_t mu;
	struct fd_request req[FD_MAX_REQ];
	int n_req;
	int conns;
	char why[512];
	/* internals */
	pthread_t thread;
	int listen_fd;
	int stop[2];
	char buf[FD_BUF];
	size_t have;
};

static inline __attribute__((format(printf, 2, 3))) void fd_fail(struct fc_double *d,
								  const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&d->mu);
	if (!d->why[0]) {
		va_start(ap, fmt);
		vsnprintf(d->why, sizeof(d->why), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&d->mu);
}

static inline void fd_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Wait for fd readable; false on stop, timeout or error. */
static inline bool fd_wait_in(struct fc_double *d, int fd)
{
	struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = d->stop[0], .events = POLLIN } };

	if (poll(p, 2, FD_WAIT_MS) <= 0 || (p[1].revents & POLLIN))
		return false;
	return true;
}

static inline void fd_send(int fd, const char *b, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = send(fd, b + off, len - off, MSG_NOSIGNAL);
		if (n <= 0)
			return; /* the client may drop us on purpose */
		off += (size_t)n;
	}
}

/* Answer exactly as micro_http formats it. */
static inline void fd_reply(int fd, int status, const char *json_body)
{
	char head[256];
	int n;

	if (!json_body)
		n = snprintf(head, sizeof(head),
			     "HTTP/1.1 %d \r\nServer: Firecracker API\r\nConnection: keep-alive\r\n\r\n",
			     status);
	else
		n = snprintf(head, sizeof(head),
			     "HTTP/1.1 %d \r\nServer: Firecracker API\r\nConnection: keep-alive\r\n"
			     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
			     status, strlen(json_body));
	fd_send(fd, head, (size_t)n);
	if (json_body)
		fd_send(fd, json_body, strlen(json_body));
}

static inline void fd_fault_reply(int fd, const char *msg)
{
	json_t *j = json_pack("{s:s}", "fault_message", msg);
	char *s = json_dumps(j, JSON_COMPACT);

	fd_reply(fd, 400, s);
	free(s);
	json_decref(j);
}

/* Read one request from the client. 1: got one (recorded); 0: the client
 * closed or stop; -1: malformed (why set). */
static inline int fd_read_request(struct fc_double *d, int fd, int conn, json_t **body_out)
{
	char *end;
	size_t head_len, clen = 0;
	bool has_len = false, has_host = false, has_ctype = false;
	char method[8], path[128];

	*body_out = NULL;
	for (;;) {
		end = memmem(d->buf, d->have, "\r\n\r\n", 4);
		if (end)
			break;
		if (d->have == sizeof(d->buf) || !fd_wait_in(d, fd))
			return 0;
		ssize_t n = recv(fd, d->buf + d->have, sizeof(d->buf) - d->have, 0);
		if (n <= 0)
			return 0;
		d->have += (size_t)n;
	}
	head_len = (size_t)(end - d->buf) + 4;
	/* Request line: METHOD SP PATH SP HTTP/1.1 */
	char *line_end = memmem(d->buf, head_len, "\r\n", 2);
	char line[256];
	size_t ll = (size_t)(line_end - d->buf);
	if (ll >= sizeof(line)) {
		fd_fail(d, "request line too long");
		return -1;
	}
	memcpy(line, d->buf, ll);
	line[ll] = '\0';
	char ver[16];
	if (sscanf(line, "%7s %127s %15s", method, path, ver) != 3 || strcmp(ver, "HTTP/1.1") != 0) {
		fd_fail(d, "bad request line: %s", line);
		return -1;
	}
	/* Headers */
	for (char *h = line_end + 2; h < d->buf + head_len - 2;) {
		char *e = memmem(h, (size_t)(d->buf + head_len - h), "\r\n", 2);
		size_t hl = (size_t)(e - h);
		if (hl > 16 && strncasecmp(h, "Content-Length: ", 16) == 0) {
			has_len = true;
			clen = strtoul(h + 16, NULL, 10);
		} else if (hl >= 5 && strncasecmp(h, "Host:", 5) == 0) {
			has_host = true;
		} else if (hl == 30 && strncasecmp(h, "Content-Type: application/json", 30) == 0) {
			has_ctype = true;
		}
		h = e + 2;
	}
	if (!has_host)
		fd_fail(d, "%s %s: no Host header", method, path);
	if (strcmp(method, "GET") == 0 && (has_len || has_ctype))
		fd_fail(d, "GET %s with a body", path);
	if (strcmp(method, "GET") != 0 && (!has_len || !has_ctype))
		fd_fail(d, "%s %s: body without Content-Length/Content-Type", method, path);
	while (d->have < head_len + clen) {
		if (d->have == sizeof(d->buf) || !fd_wait_in(d, fd)) {
			fd_fail(d, "%s %s: body shorter than Content-Length", method, path);
			return -1;
		}
		ssize_t n = recv(fd, d->buf + d->have, sizeof(d->buf) - d->have, 0);
		if (n <= 0) {
			fd_fail(d, "%s %s: body shorter than Content-Length", method, path);
			return -1;
		}
		d->have += (size_t)n;
	}
	pthread_mutex_lock(&d->mu);
	if (d->n_req < FD_MAX_REQ) {
		struct fd_request *r = &d->req[d->n_req];
		snprintf(r->method, sizeof(r->method), "%s", method);
		snprintf(r->path, sizeof(r->path), "%s", path);
		r->conn = conn;
		if (clen) {
			r->body = malloc(clen + 1);
			if (r->body) {
				memcpy(r->body, d->buf + head_len, clen);
				r->body[clen] = '\0';
			}
		}
	}
	d->n_req++;
	pthread_mutex_unlock(&d->mu);
	if (clen) {
		json_error_t jerr;
		*body_out = json_loadb(d->buf + head_len, clen, JSON_REJECT_DUPLICATES, &jerr);
		if (!*body_out)
			fd_fail(d, "%s %s: body is not JSON: %s", method, path, jerr.text);
	}
	memmove(d->buf, d->buf + head_len + clen, d->have - head_len - clen);
	d->have -= head_len + clen;
	return 1;
}

static inline bool fd_prefix(const char *path, const char *pre, const char **rest)
{
	size_t n = strlen(pre);

	if (strncmp(path, pre, n) != 0)
		return false;
	*rest = path + n;
	return true;
}

/* Firecracker's behaviour for one request. Returns false when the
 * "process" exits after answering. */
static inline bool fd_model(struct fc_double *d, int fd, const char *method, const char *path,
			    json_t *body)
{
	const char *rest;
	bool fresh = strcmp(d->state, "Not started") == 0;

	if (strcmp(method, "GET") == 0 && strcmp(path, "/") == 0) {
		json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "id", d->id ? d->id : "anonymous-instance",
				      "state", d->state, "vmm_version",
				      d->vmm_version ? d->vmm_version : "1.7.0", "app_name",
				      "Firecracker");
		char *s = json_dumps(j, JSON_COMPACT);
		fd_reply(fd, 200, s);
		free(s);
		json_decref(j);
		return true;
	}
	if (strcmp(method, "PUT") == 0 &&
	    (strcmp(path, "/machine-config") == 0 || strcmp(path, "/boot-source") == 0 ||
	     fd_prefix(path, "/drives/", &rest) || fd_prefix(path, "/network-interfaces/", &rest))) {
		if (!fresh) {
			fd_fault_reply(fd, "The requested operation is not supported after starting "
					   "the microVM.");
			return true;
		}
		if (!json_is_object(body)) {
			fd_fault_reply(fd, "An error occurred when deserializing the json body of a "
					   "request: expected an object.");
			return true;
		}
		const char *key = strncmp(path, "/drives/", 8) == 0 ? "drive_id"
				  : strncmp(path, "/network-interfaces/", 20) == 0 ? "iface_id"
										  : NULL;
		if (key) {
			const char *v = json_string_value(json_object_get(body, key));
			const char *id = strrchr(path, '/') + 1;
			if (!v || strcmp(v, id) != 0) {
				fd_fault_reply(fd, "The id from the path does not match the id from "
						   "the body!");
				return true;
			}
		}
		d->configured = true;
		fd_reply(fd, 204, NULL);
		return true;
	}
	if (strcmp(method, "PUT") == 0 && strcmp(path, "/actions") == 0) {
		const char *a = json_string_value(json_object_get(body, "action_type"));
		if (a && strcmp(a, "InstanceStart") == 0 && fresh) {
			snprintf(d->state, sizeof(d->state), "Running");
			fd_reply(fd, 204, NULL);
		} else if (a && strcmp(a, "SendCtrlAltDel") == 0 && !fresh) {
			fd_reply(fd, 204, NULL);
			if (d->guest_powers_off)
				return false;
		} else {
			fd_fault_reply(fd, "The requested operation is not supported in this state.");
		}
		return true;
	}
	if (strcmp(method, "PATCH") == 0 && strcmp(path, "/vm") == 0) {
		const char *s = json_string_value(json_object_get(body, "state"));
		if (fresh) {
			fd_fault_reply(fd, "The requested operation is not supported before starting "
					   "the microVM.");
		} else if (s && (strcmp(s, "Paused") == 0 || strcmp(s, "Resumed") == 0)) {
			snprintf(d->state, sizeof(d->state), "%s",
				 strcmp(s, "Paused") == 0 ? "Paused" : "Running");
			fd_reply(fd, 204, NULL);
		} else {
			fd_fault_reply(fd, "An error occurred when deserializing the json body of a "
					   "request: unknown variant.");
		}
		return true;
	}
	if (strcmp(method, "PUT") == 0 && strcmp(path, "/snapshot/create") == 0) {
		if (strcmp(d->state, "Paused") != 0)
			fd_fault_reply(fd, "Cannot create snapshot: the microVM is not paused.");
		else
			fd_reply(fd, 204, NULL);
		return true;
	}
	if (strcmp(method, "PUT") == 0 && strcmp(path, "/snapshot/load") == 0) {
		if (!fresh || d->configured) {
			fd_fault_reply(fd, "Loading a microVM snapshot not allowed after configuring "
					   "boot-specific resources.");
			return true;
		}
		if (d->load_fails) {
			fd_fault_reply(fd, "Load snapshot error: Failed to restore from snapshot: "
					   "Cannot deserialize the microVM state.");
			return false; /* Firecracker ends itself after a failed load */
		}
		snprintf(d->state, sizeof(d->state), "%s",
			 json_is_true(json_object_get(body, "resume_vm")) ? "Running" : "Paused");
		fd_reply(fd, 204, NULL);
		return true;
	}
	{
		char msg[300];
		snprintf(msg, sizeof(msg), "Invalid request method and/or path: %s %s.", method, path);
		fd_fault_reply(fd, msg);
	}
	return true;
}

/* Serve one connection until the client closes, a fault closes it, the
 * process "exits" or stop. */
static inline void fd_serve(struct fc_double *d, int fd, int conn)
{
	d->have = 0;
	for (;;) {
		json_t *body = NULL;
		int r = fd_read_request(d, fd, conn, &body);
		int idx;
		bool alive = true;

		if (r <= 0) {
			json_decref(body);
			return;
		}
		pthread_mutex_lock(&d->mu);
		idx = d->n_req - 1;
		pthread_mutex_unlock(&d->mu);
		if (idx == d->fault_at && d->fault != FD_FAULT_NONE) {
			json_decref(body);
			switch (d->fault) {
			case FD_FAULT_RAW:
				fd_send(fd, d->raw, d->raw_len ? d->raw_len : strlen(d->raw));
				continue;
			case FD_FAULT_RAW_CLOSE:
				fd_send(fd, d->raw, d->raw_len ? d->raw_len : strlen(d->raw));
				return;
			case FD_FAULT_CLOSE:
				return;
			case FD_FAULT_STALL: {
				char b[512];
				while (fd_wait_in(d, fd) && recv(fd, b, sizeof(b), 0) > 0)
					;
				return;
			}
			case FD_FAULT_NONE:
				break;
			}
		}
		{
			char method[8], path[128];
			pthread_mutex_lock(&d->mu);
			if (idx < FD_MAX_REQ) {
				memcpy(method, d->req[idx].method, sizeof(method));
				memcpy(path, d->req[idx].path, sizeof(path));
			} else {
				method[0] = path[0] = '\0';
			}
			pthread_mutex_unlock(&d->mu);
			alive = fd_model(d, fd, method, path, body);
		}
		json_decref(body);
		if (!alive) {
			d->exited = true;
			return;
		}
	}
}

static inline int fd_listen(struct fc_double *d)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	memcpy(sa.sun_path, d->path, strlen(d->path) + 1);
	d->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (d->listen_fd < 0 || bind(d->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(d->listen_fd, 4) < 0) {
		fd_fail(d, "cannot listen on %s: %s", d->path, strerror(errno));
		return -1;
	}
	return 0;
}

static inline void *fd_main(void *arg)
{
	struct fc_double *d = arg;

	if (d->bind_delay_ms) {
		struct pollfd p = { .fd = d->stop[0], .events = POLLIN };
		if (poll(&p, 1, d->bind_delay_ms) != 0)
			return NULL;
		if (fd_listen(d) < 0)
			return NULL;
	}
	while (!d->exited) {
		int fd;

		if (!fd_wait_in(d, d->listen_fd))
			break;
		fd = accept4(d->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			break;
		pthread_mutex_lock(&d->mu);
		int conn = ++d->conns;
		pthread_mutex_unlock(&d->mu);
		fd_serve(d, fd, conn);
		close(fd);
	}
	/* A Firecracker that exited leaves its socket file; connecting to it
	 * is then refused. */
	if (d->exited && d->listen_fd >= 0) {
		close(d->listen_fd);
		d->listen_fd = -1;
	}
	return NULL;
}

static inline void fd_init(struct fc_double *d, const char *path)
{
	memset(d, 0, sizeof(*d));
	pthread_mutex_init(&d->mu, NULL);
	snprintf(d->path, sizeof(d->path), "%s", path);
	snprintf(d->state, sizeof(d->state), "Not started");
	d->fault_at = -1;
	d->listen_fd = -1;
	d->stop[0] = d->stop[1] = -1;
}

/* Start serving (fd_init and the settings first). 0 or -1. */
static inline int fd_start(struct fc_double *d)
{
	unlink(d->path);
	if (pipe2(d->stop, O_CLOEXEC) < 0)
		return -1;
	if (!d->bind_delay_ms && fd_listen(d) < 0)
		return -1;
	return pthread_create(&d->thread, NULL, fd_main, d) == 0 ? 0 : -1;
}

/* Requests seen so far (safe while the thread runs). */
static inline int fd_count(struct fc_double *d)
{
	int n;

	pthread_mutex_lock(&d->mu);
	n = d->n_req;
	pthread_mutex_unlock(&d->mu);
	return n;
}

/* Stop the thread, close everything, remove the socket. Results stay
 * readable until fd_free. */
static inline void fd_stop(struct fc_double *d)
{
	if (d->stop[1] >= 0) {
		if (write(d->stop[1], "x", 1) < 0) {
			/* the thread still ends at FD_WAIT_MS */
		}
		pthread_join(d->thread, NULL);
		close(d->stop[0]);
		close(d->stop[1]);
		d->stop[0] = d->stop[1] = -1;
	}
	if (d->listen_fd >= 0)
		close(d->listen_fd);
	d->listen_fd = -1;
	unlink(d->path);
}

static inline void fd_free(struct fc_double *d)
{
	for (int i = 0; i < d->n_req && i < FD_MAX_REQ; i++) {
		free(d->req[i].body);
		d->req[i].body = NULL;
	}
	pthread_mutex_destroy(&d->mu);
}

#endif
