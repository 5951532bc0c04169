#include "agentd/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "shared/cleanup.h"

bool agentd_listen_enabled(const char *spec)
{
	return spec && spec[0] && strcmp(spec, "off") != 0;
}

int agentd_listen_parse(const char *spec, char *host, size_t host_len, char *port,
			size_t port_len, struct vmlet_err *err)
{
	const char *colon, *h = spec;
	size_t hl;
	char *end;
	unsigned long p;

	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');
		if (!close || close[1] != ':')
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "agentd.listen: \"%s\": expected [address]:port", spec);
		h = spec + 1;
		hl = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(spec, ':');
		if (!colon || strchr(spec, ':') != colon)
			return vmlet_err_set(err, VMLET_E_INVALID, 0,
					     "agentd.listen: \"%s\": expected host:port, [v6]:port or :port",
					     spec);
		hl = (size_t)(colon - spec);
	}
	if (hl >= host_len)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "agentd.listen: host too long");
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (!colon[1] || *end || errno || p > 65535 || colon[1] == '-' || colon[1] == '+')
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "agentd.listen: \"%s\": port must be 0..65535", spec);
	memcpy(host, h, hl);
	host[hl] = '\0';
	snprintf(port, port_len, "%lu", p);
	return 0;
}

void agentd_format_sockaddr(const void *sa, size_t sa_len, char *buf, size_t len)
{
	const struct sockaddr *s = sa;
	char ip[INET6_ADDRSTRLEN];

	if (s->sa_family == AF_INET && sa_len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = sa;
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(in->sin_port));
	} else if (s->sa_family == AF_INET6 && sa_len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, ntohs(in6->sin6_port));
	} else {
		snprintf(buf, len, "unknown");
	}
}

int agentd_listen_tcp(const char *spec, int *fd_out, char *addr, size_t addr_len,
		      struct vmlet_err *err)
{
	char host[256], port[8];
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int saved = 0, r;
	_cleanup_close_ int fd = -1;

	*fd_out = -1;
	if (agentd_listen_parse(spec, host, sizeof(host), port, sizeof(port), err) < 0)
		return -1;
	/* Numeric addresses only (and localhost, from /etc/hosts): binding
	 * must not depend on, or leak a query to, DNS. */
	if (host[0] && strcmp(host, "localhost") != 0)
		hints.ai_flags |= AI_NUMERICHOST;
	r = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (r != 0)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "agentd.listen: \"%s\": %s", spec,
				     gai_strerror(r));
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		int one = 1;
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			saved = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 256) == 0)
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		errno = saved;
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "bind/listen %s", spec);
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "getsockname");
	agentd_format_sockaddr(&ss, sl, addr, addr_len);
	*fd_out = vmlet_take_fd(&fd);
	return 0;
}
