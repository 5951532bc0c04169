#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "agentd/listen.h"

static void enabled_unless_off_or_empty(void **state)
{
	assert_false(agentd_listen_enabled(""));
	assert_false(agentd_listen_enabled("off"));
	assert_false(agentd_listen_enabled(NULL));
	assert_true(agentd_listen_enabled("0.0.0.0:7443"));
}

static void parse_forms(void **state)
{
	char host[64], port[8];
	struct vmlet_err err;

	assert_int_equal(agentd_listen_parse("0.0.0.0:7443", host, sizeof(host), port, sizeof(port), &err), 0);
	assert_string_equal(host, "0.0.0.0");
	assert_string_equal(port, "7443");
	assert_int_equal(agentd_listen_parse("[::1]:443", host, sizeof(host), port, sizeof(port), &err), 0);
	assert_string_equal(host, "::1");
	assert_string_equal(port, "443");
	assert_int_equal(agentd_listen_parse(":9000", host, sizeof(host), port, sizeof(port), &err), 0);
	assert_string_equal(host, "");
	assert_int_equal(agentd_listen_parse("localhost:0", host, sizeof(host), port, sizeof(port), &err), 0);
	assert_string_equal(port, "0");
}

static void parse_rejects(void **state)
{
	const char *bad[] = { "7443", "::1:7443", "[::1]7443", "[::1", "host:", "host:65536",
			      "host:-1", "host:+5", "host:12ab", "host:99999999999999999999" };
	char host[64], port[8];
	struct vmlet_err err;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(agentd_listen_parse(bad[i], host, sizeof(host), port, sizeof(port), &err), -1);
		assert_int_equal(err.code, 400);
		assert_non_null(strstr(err.msg, "agentd.listen"));
	}
	/* A host longer than the buffer is refused, not truncated. */
	assert_int_equal(agentd_listen_parse("abcdefghij:1", host, 5, port, sizeof(port), &err), -1);
}

static void binds_loopback_and_reports_port(void **state)
{
	char addr[128];
	struct vmlet_err err;
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	char want[64];
	int fd, c;

	assert_int_equal(agentd_listen_tcp("127.0.0.1:0", &fd, addr, sizeof(addr), &err), 0);
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	snprintf(want, sizeof(want), "127.0.0.1:%u", ntohs(sin.sin_port));
	assert_string_equal(addr, want);
	assert_true(ntohs(sin.sin_port) != 0);
	/* It accepts connections. */
	c = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(c, (struct sockaddr *)&sin, sizeof(sin)), 0);
	close(c);
	close(fd);
}

static void unresolvable_host_refused(void **state)
{
	char addr[128];
	struct vmlet_err err;
	int fd;

	/* Names other than localhost are not looked up (no DNS query). */
	assert_int_equal(agentd_listen_tcp("999.1.1.1:0", &fd, addr, sizeof(addr), &err), -1);
	assert_int_equal(fd, -1);
	assert_int_equal(err.code, 400);
	assert_int_equal(agentd_listen_tcp("example.invalid:0", &fd, addr, sizeof(addr), &err), -1);
	assert_int_equal(err.code, 400);
	assert_int_equal(agentd_listen_tcp("localhost:0", &fd, addr, sizeof(addr), &err), 0);
	close(fd);
	assert_int_equal(agentd_listen_tcp("garbage", &fd, addr, sizeof(addr), &err), -1);
	assert_int_equal(err.code, 400);
}

static void formats_v4_and_v6(void **state)
{
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_port = htons(5555),
				   .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct sockaddr_in s4 = { .sin_family = AF_INET, .sin_port = htons(80),
				  .sin_addr.s_addr = htonl(0x01020304) };
	struct sockaddr su = { .sa_family = AF_UNIX };
	char buf[64];

	agentd_format_sockaddr(&s6, sizeof(s6), buf, sizeof(buf));
	assert_string_equal(buf, "[::1]:5555");
	agentd_format_sockaddr(&s4, sizeof(s4), buf, sizeof(buf));
	assert_string_equal(buf, "1.2.3.4:80");
	agentd_format_sockaddr(&su, sizeof(su), buf, sizeof(buf));
	assert_string_equal(buf, "unknown");
	/* A short length is not trusted. */
	agentd_format_sockaddr(&s6, 4, buf, sizeof(buf));
	assert_string_equal(buf, "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(enabled_unless_off_or_empty),
		cmocka_unit_test(parse_forms),
		cmocka_unit_test(parse_rejects),
		cmocka_unit_test(binds_loopback_and_reports_port),
		cmocka_unit_test(unresolvable_host_refused),
		cmocka_unit_test(formats_v4_and_v6),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
