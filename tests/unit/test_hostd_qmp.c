/* QMP client (hostd/qmp.c) against a QMP test double (tests/unit/
 * hostd_qmp_double.h, a scripted thread, not QEMU): the handshake,
 * replies, errors, interleaved events, hostile lines (garbage, overlong,
 * wrong id, extra members), silence (timeouts), EOF, fd passing. The real
 * QEMU run is in test_hostd_vmm_qemu.c. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "hostd/qmp.h"
#include "tests/unit/hostd_qmp_double.h"

static char tmpdir[] = "/tmp/test_hostd_qmp.XXXXXX";

static int setup(void **state)
{
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Start the double on a socketpair and do the client handshake. */
static struct qmp *attach(struct qmp_double *d, const struct qd_step *script)
{
	struct vmlet_err err = { 0 };
	struct qmp *q = NULL;
	int fd = qd_start_pair(d, script);

	assert_true(fd >= 0);
	if (qmp_attach(fd, 2000, &q, &err) < 0)
		fail_msg("attach: %s", err.msg);
	return q;
}

static void finish(struct qmp_double *d, struct qmp *q)
{
	qmp_close(q);
	qd_join(d);
	if (d->why[0])
		fail_msg("QMP test double: %s", d->why);
	qd_free(d);
}

/* ---- handshake ---------------------------------------------------------------- */

static void test_handshake_and_return_value(void **state)
{
	static const struct qd_step script[] = {
		QD_HANDSHAKE,
		{ QD_EXPECT, "query-status", false, NULL, 0 },
		{ QD_REPLY, "{\"return\": {\"status\": \"running\", \"running\": true}, \"id\": $ID}\r\n",
		  false, NULL, 0 },
		{ QD_END, NULL, false, NULL, 0 },
	};
	struct qmp_double d;
	struct vmlet_err err = { 0 };
	struct qmp *q = attach(&d, script);
	json_t *ret = NULL;

	assert_int_equal(qmp_execute(q, "query-status", NULL, -1, 2000, &ret, &err), 0);
	assert_string_equal(json_string_value(json_object_get(ret, "status")), "running");
	json_decref(ret);
	assert_false(qmp_closed(q));
	finish(&d, q);
	assert_int_equal(d.commands, 2);
}

static void expect_attach_fails(const struct qd_step *script, const char *needle, int code)
{
	struct qmp_double d;
	struct vmlet_err err = { 0 };
	struct qmp *q = (struct qmp *)1;
	int fd = qd_start_pair(&d, script);

	assert_true(fd >= 0);
	assert_int_equal(qmp_attach(fd, 300, &q, &err), -1);
	assert_null(q);
	if (!strstr(err.msg, needle))
		fail_msg("error \"%s\" does not mention \"%s\"", err.msg, needle);
	assert_int_equal(err.code, code);
	qd_join(&d);
	qd_free(&d);
}

static void test_greeting_required(void **state)
{
	static const struct qd_step reply_first[] = {
		{ QD_SEND, "{\"return\": {}}\r\n", false, NULL, 0 },
		{ QD_END, NULL, false, NULL, 0 },
	};
	static const struct qd_step no_caps[] = {
		{ QD_SEND, "{\"QMP\": {\"version\": {}}}\r\n", false, NULL, 0 },
		{ QD_END, NULL, false, NULL, 0 },
	};
	static const struct qd_step silent[] = {
		{ QD_HOLD, NULL, false, NULL, 0 },
		{ QD_END, NULL, false, NULL, 0 },
	};
	static const struct qd_step closed[] = {
		{ QD_CLOSE, NULL, false, NULL, 0 },
		{ QD_END, NULL, false, NULL, 0 },
	};
	static const struct qd_step caps_refused[] = {
		{ QD_SEND, QD_GREETING, false, NULL, 0 },
		{ QD_EXPECT, "qmp_capabilities", false, NULL, 0 },
		{ QD_REPLY,
		  "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"nope\"}, \"id\": $ID}\r\n",
		  false, NULL, 0 },
		{ QD_END, NULL, false, NULL, 0 },
	};

	expect_attach_fails(reply_first, "not a QMP greeting", VMLET_E_INTERNAL);
	expect_attach_fails(no_caps, "not a QMP greeting", VMLET_E_INTERNAL);
	expect_attach_fails(silent, "no greeting from QEMU in time", VMLET_E_UNAVAILABLE);
	expect_attach_fails(closed, "QEMU closed the connection", VMLET_E_UNAVAILABLE);
	expect_attach_fails(caps_refused, "qmp qmp_capabilities: CommandNotFound: nope",
			    VMLET_E_NOT_IMPLEMENTED);
}

/* ---- replies ------------------------------------------------------------------ */

static void test_error_reply_keeps_connection(void **state)
{
	static const struct qd_step script[] = {
		QD_HANDSHAKE,
		{ QD_EXPECT, "migrate", false, "{\"uri\": \"fd:snap\"}", 0 },
		{ QD_REPLY,
		  "{\"error\": {\"class\": \"GenericError\", \"desc\": \"no fd \\u0007named snap\"}, "
		  "\"id\": $ID}\r\n",
		  false, NULL, 0 },
		{ QD_EXPECT, "stop", false, NULL, 0 },
		{ QD_REPLY, QD_OK, false, NULL, 0 },
		{ QD_END, NULL, false, NULL, 0 },
	};
	struct qmp_double d;
	struct vmlet_err err = { 0 };
	struct qmp *q = attach(&d, script);

	assert_int_equal(qmp_execute(q, "migrate", json_pack("{s:s}", "uri", "fd:snap"), -1, 2000,
				     NULL, &err),
			 -1);
	/* Command, class and description; QEMU's control bytes neutralised. */
	assert_string_equal(err.msg, "qmp migrate: GenericError: no fd ?named snap");
	assert_int_equal(err.code, VMLET_E_INTERNAL);
	assert_false(qmp_closed(q));
	assert_int_equal(qmp_execute(q, "stop", NULL, -1, 2000, NULL, &err), 0);
	finish(&d, q);
}

/* One hostile reply line: the command fails, names itself, the
 * connection is dropped and the next command fails without I/O. */
static void expect_bad_reply(const char *line, const char *needle)
{
	const struct qd_step script[] = {
		QD_HANDSHAKE,
		{ QD_EXPECT, "cont", false, NULL, 0 },
		{ QD_REPLY, line, false, NULL, 0 },
		{ QD_END, NULL, false, NULL, 0 },
	};
	struct qmp_double d;
	struct vmlet_err err = { 0 };
	struct qmp *q = attach(&d, script);

	assert_int_equal(qmp_execute(q, "cont", NULL, -1, 2000, NULL, &err), -1);
	if (!strstr(err.msg, "qmp cont: ") || !strstr(err.msg, needle))
		fail_msg("error \"%s\" for %s does not name the command and \"%s\"", err.msg, line,
			 needle);
	assert_true(qmp_closed(q));
	assert_false(qmp_peer_closed(q));
	assert_int_equal(qmp_execute(q, "stop", NULL, -1, 2000, NULL, &err), -1);
	assert_string_equal(err.msg, "qmp stop: the connection is closed");
	finish(&d, q);
}

static void test_hostile_replies(void **state)
{
	expect_bad_reply("this is not json\r\n", "not JSON");
	expect_bad_reply("{\"return\": {}, \"id\": $ID\r\n", "not JSON");
	expect_bad_reply("[1, 2, 3]\r\n", "not an object");
	expect_bad_reply("\"return\"\r\n", "not JSON"); /* jansson: top level must be [] or {} */
	expect_bad_reply("{\"id\": $ID}\r\n", "neither a reply, an event nor a greeting");
	expect_bad_reply("{\"return\": {}}\r\n", "does not carry our id");
	expect_bad_reply("{\"return\": {}, \"id\": 999}\r\n", "does not carry our id");
	expect_bad_reply("{\"return\": {}, \"id\": \"$ID\"}\r\n", "does not carry our id");
	expect_bad_reply("{\"return\": {}, \"return\": {}, \"id\": $ID}\r\n", "not JSON");
	expect_bad_reply("{\"return\": {}, \"error\": {\"class\": \"a\", \"desc\": \"b\"}, "
			 "\"id\": $ID}\r\n",
			 "members besides");
	expect_bad_reply("{\"return\": {}, \"extra\": 1, \"id\": $ID}\r\n", "members besides");
	expect_bad_reply("{\"error\": \"boom\", \"id\": $ID}\r\n", "without string");
	expect_bad_reply("{\"error\": {\"class\": 7, \"desc\": \"x\"}, \"id\": $ID}\r\n",
			 "without string");
	expect_bad_reply("{\"error\": {\"class\": \"GenericError\"}, \"id\": $ID}\r\n",
			 "without string");
	expect_bad_reply("{\"event\": 5}\r\n", "malformed event");
	expect_bad_reply("{\"event\": \"STOP\", \"data\": []}\r\n", "malformed event");
	expect_bad_reply(QD_GREETING, "unexpected greeting");
}

static void test_overlong_line_drops_connection(void **state)
{
	/* A line one byte over the cap (no newline inside the cap). */
	size_t n = QMP_LINE_MAX + 1;
	char *line = malloc(n + 3);
	struct qd_step script[] = {
		QD_HANDSHAKE,
		{ QD_EXPECT, "query-status", false, NULL, 0 },
		{ QD_SEND, line, false, NULL, 0 },
		{ QD_END, NULL, false, NULL, 0 },
	};
	struct qmp_double d;
	struct vmlet_err err = { 0 };
	struct qmp *q;

	assert_non_null(line);
	memset(line, ' ', n);
	line[n] = '\n';
	line[n + 1] = '\0';
	q = attach(&d, script);
	assert_int_equal(qmp_execute(q, "query-status", NULL, -1, 5000, NULL, &err), -1);
	assert_string_equal(err.msg, "qmp query-status: line longer than 65536 bytes from QEMU");
	assert_true(qmp_closed(q));
	finish(&d, q);
	free(line);
}

static void test_long_line_under_cap_is_fine(void **state)
{
	/* A valid reply of 60000 bytes: the cap is not a tight squeeze. */
	size_t pad = 60000;
	const char *head = "{\"return\": {\"blob\": \"";
	const char *tail = "\"}, \"id\": $ID}\r\n";
	char *line = malloc(strlen(head) + pad + strlen(tail) + 1);
	struct qd_step script[] = {
		QD_HANDSHAKE,
		{ QD_EXPECT, "query-status", false, NULL, 0 },
		{ QD_REPLY, line, false, NULL, 0 },
		{ QD_END, NULL, false, NULL, 0 },
	};
	struct qmp_double d;
	struct vmlet_err err = { 0 };
	json_t *ret = NULL;
	struct qmp *q;

	assert_non_null(line);
	strcpy(line, head);
	memset(line + strlen(head), 'x', pad);
	strcpy(line + strlen(head) + pad, tail);
	q = attach(&d, script);
	assert_int_equal(qmp_execute(q, "query-status", NULL, -1, 5000, &ret, &err), 0);
	assert_int_equal(strlen(json_string_value(json_object_get(ret, "blob"))), pad);
	json_decref(ret);
	finish(&d, q);
	free(line);
}

static void test_timeout_drops_connection(void **state)
{
	static const struct qd_step script[] = {
		QD_HANDSHAKE,
		{ QD_EXPECT, "stop", false, NULL, 0 },
		{ QD_HOLD, NULL, false, NULL, 0 },
		{ QD_END, NULL, false, NULL, 0 },
	};
	struct qmp_double d;
	struct vmlet_err err = { 0 };
	struct qmp *q = attach(&d, script);

	assert_int_equal(qmp_execute(q, "stop", NULL, -1, 200, NULL, &err), -1);
	assert_string_equal(err.msg, "qmp stop: no reply within 200 ms");
	assert_int_equal(err.code, VMLET_E_UNAVAILABLE);
	/* A late reply could be taken for the next command's: never reuse. */
	assert_true(qmp_closed(q));
	finish(&d, q);
}

static void test_eof_mid_command(void **state)
{
	static const struct qd_step script[] = {
		QD_HANDSHAKE,
		{ QD_EXPECT, "quit", false, NULL, 0 },
		{ QD_SEND, "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": "
			   "\"SHUTDOWN\", \"data\": {\"guest\": false, \"reason\": \"host-qmp-quit\"}}\r\n",
		  false, NULL, 0 },
		{ QD_CLOSE, NULL, false, NULL, 0 },
		{ QD_END, NULL, false, NULL, 0 },
	};
	struct qmp_double d;
	struct vmlet_err err = { 0 };
	struct qmp *q = attach(&d, script);

	assert_int_equal(qmp_execute(q, "quit", NULL, -1, 2000, NULL, &err), -1);
	assert_string_equal(err.msg, "qmp quit: QEMU closed the connection");
	assert_true(qmp_peer_closed(q));
	assert_int_equal(qmp_events(q)->count[QMP_EV_SHUTDOWN], 1);
	assert_string_equal(qmp_events(q)->shutdown_reason, "host-qmp-quit");
	assert_false(qmp_events(q)->shutdown_guest);
	finish(&d, q);
}

/* ---- events ------------------------------------------------------------------- */

#define EV(name, data)                                                                       \
	"{\"timestamp\": {\"seconds\": 1795622017, \"microseconds\": 825940}, \"event\": \"" name \
	"\"" data "}\r\n"

static void test_events_interleaved_and_recorded(void **state)
{
	static const struct qd_step script[] = {
		QD_HANDSHAKE,
		{ QD_EXPECT, "stop", false, NULL, 0 },
		{ QD_SEND, EV("STOP", ""), false, NULL, 0 },
		{ QD_SEND, EV("RTC_CHANGE", ", \"data\": {\"offset\": 1}"), false, NULL, 0 },
		{ QD_REPLY, QD_OK, false, NULL, 0 },
		{ QD_EXPECT, "cont", false, NULL, 0 },
		{ QD_SEND, EV("MIGRATION", ", \"data\": {\"status\": \"completed\"}"), false, NULL, 0 },
		{ QD_SEND, EV("RESUME", ""), false, NULL, 0 },
		{ QD_REPLY, QD_OK, false, NULL, 0 },
		{ QD_SLEEP, NULL, false, NULL, 50 },
		{ QD_SEND, EV("POWERDOWN", ""), false, NULL, 0 },
		{ QD_SEND, EV("SHUTDOWN", ", \"data\": {\"guest\": true, \"reason\": \"guest-\\nshutdown\"}"),
		  false, NULL, 0 },
		{ QD_END, NULL, false, NULL, 0 },
	};
	struct qmp_double d;
	struct vmlet_err err = { 0 };
	struct qmp *q = attach(&d, script);
	const struct qmp_events *ev;

	assert_int_equal(qmp_execute(q, "stop", NULL, -1, 2000, NULL, &err), 0);
	assert_int_equal(qmp_execute(q, "cont", NULL, -1, 2000, NULL, &err), 0);
	ev = qmp_events(q);
	assert_int_equal(ev->count[QMP_EV_STOP], 1);
	assert_int_equal(ev->count[QMP_EV_RESUME], 1);
	assert_int_equal(ev->count[QMP_EV_MIGRATION], 1);
	assert_string_equal(ev->migration_status, "completed");
	assert_int_equal(ev->count[QMP_EV_SHUTDOWN], 0);
	/* Already seen: returns at once. */
	assert_int_equal(qmp_wait_event(q, QMP_EV_STOP, 0, 0, &err), 1);
	/* The SHUTDOWN arrives later, after an event we do not track. */
	assert_int_equal(qmp_wait_event(q, QMP_EV_SHUTDOWN, 0, 2000, &err), 1);
	assert_true(ev->shutdown_guest);
	assert_string_equal(ev->shutdown_reason, "guest-?shutdown");
	/* Nothing more comes: a timeout is an answer, not a broken link. */
	assert_int_equal(qmp_wait_event(q, QMP_EV_SHUTDOWN, 1, 100, &err), 0);
	assert_false(qmp_closed(q));
	finish(&d, q);
}

static void test_wait_event_rejects_unsolicited_reply(void **state)
{
	static const struct qd_step script[] = {
		QD_HANDSHAKE,
		{ QD_SEND, "{\"return\": {}, \"id\": 77}\r\n", false, NULL, 0 },
		{ QD_END, NULL, false, NULL, 0 },
	};
	struct qmp_double d;
	struct vmlet_err err = { 0 };
	struct qmp *q = attach(&d, script);

	assert_int_equal(qmp_wait_event(q, QMP_EV_SHUTDOWN, 0, 2000, &err), -1);
	assert_string_equal(err.msg,
			    "qmp event wait: reply or greeting while no command was sent");
	assert_true(qmp_closed(q));
	assert_int_equal(qmp_wait_event(q, QMP_EV_SHUTDOWN, 0, 100, &err), -1);
	finish(&d, q);
}

/* ---- fd passing ----------------------------------------------------------------- */

static void test_getfd_passes_the_fd(void **state)
{
	static const struct qd_step script[] = {
		QD_HANDSHAKE,
		{ QD_EXPECT, "getfd", true, "{\"fdname\": \"snap\"}", 0 },
		{ QD_REPLY, QD_OK, false, NULL, 0 },
		{ QD_EXPECT, "cont", false, NULL, 0 },
		{ QD_REPLY, QD_OK, false, NULL, 0 },
		{ QD_END, NULL, false, NULL, 0 },
	};
	char path[256];
	struct qmp_double d;
	struct vmlet_err err = { 0 };
	struct stat mine, theirs;
	struct qmp *q;
	int fd;

	snprintf(path, sizeof(path), "%s/snap.bin", tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	q = attach(&d, script);
	assert_int_equal(qmp_execute(q, "getfd", json_pack("{s:s}", "fdname", "snap"), fd, 2000,
				     NULL, &err),
			 0);
	/* The fd rides only on the command it was given with. */
	assert_int_equal(qmp_execute(q, "cont", NULL, -1, 2000, NULL, &err), 0);
	qmp_close(q);
	qd_join(&d);
	if (d.why[0])
		fail_msg("QMP test double: %s", d.why);
	/* The double's copy is the same open file: same inode, and what it
	 * writes lands in our file. */
	assert_true(d.received_fd >= 0);
	assert_int_equal(fstat(fd, &mine), 0);
	assert_int_equal(fstat(d.received_fd, &theirs), 0);
	assert_int_equal(mine.st_ino, theirs.st_ino);
	assert_int_equal(mine.st_dev, theirs.st_dev);
	assert_int_equal(write(d.received_fd, "state", 5), 5);
	assert_int_equal(lseek(fd, 0, SEEK_END), 5);
	qd_free(&d);
	close(fd);
}

/* ---- connect -------------------------------------------------------------------- */

static void test_connect_waits_for_socket(void **state)
{
	static const struct qd_step script[] = {
		QD_HANDSHAKE,
		{ QD_EXPECT, "query-status", false, NULL, 0 },
		{ QD_REPLY, "{\"return\": {\"status\": \"inmigrate\"}, \"id\": $ID}\r\n", false, NULL, 0 },
		{ QD_END, NULL, false, NULL, 0 },
	};
	char path[108];
	struct qmp_double d;
	struct vmlet_err err = { 0 };
	struct qmp *q = NULL;

	/* The socket appears 150 ms after the client starts trying. */
	snprintf(path, sizeof(path), "%s/qmp.sock", tmpdir);
	assert_int_equal(qd_start_listen(&d, script, path, 150), 0);
	if (qmp_connect(path, 5000, &q, &err) < 0)
		fail_msg("connect: %s", err.msg);
	assert_int_equal(qmp_execute(q, "query-status", NULL, -1, 2000, NULL, &err), 0);
	finish(&d, q);
}

static void test_connect_refusals(void **state)
{
	char path[300];
	struct vmlet_err err = { 0 };
	struct qmp *q = (struct qmp *)1;

	snprintf(path, sizeof(path), "%s/absent.sock", tmpdir);
	assert_int_equal(qmp_connect(path, 100, &q, &err), -1);
	assert_null(q);
	assert_non_null(strstr(err.msg, "no QMP socket within 100 ms"));
	assert_int_equal(err.code, VMLET_E_UNAVAILABLE);

	/* A regular file is not a socket: final, no retrying. */
	snprintf(path, sizeof(path), "%s/plain", tmpdir);
	close(open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
	assert_int_equal(qmp_connect(path, 5000, &q, &err), -1);
	assert_non_null(strstr(err.msg, "is not a socket"));
	assert_int_equal(err.code, VMLET_E_UNAVAILABLE);

	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	assert_int_equal(qmp_connect(path, 100, &q, &err), -1);
	assert_int_equal(err.code, VMLET_E_INVALID);
	assert_non_null(strstr(err.msg, "longer than"));
}

static void test_bad_arguments_refused_without_io(void **state)
{
	static const struct qd_step script[] = {
		QD_HANDSHAKE,
		{ QD_END, NULL, false, NULL, 0 },
	};
	struct qmp_double d;
	struct vmlet_err err = { 0 };
	struct qmp *q = attach(&d, script);

	assert_int_equal(qmp_execute(q, "stop\n{\"execute\":\"quit\"}", NULL, -1, 100, NULL, &err),
			 -1);
	assert_string_equal(err.msg, "qmp: bad command name");
	assert_int_equal(qmp_execute(q, "", NULL, -1, 100, NULL, &err), -1);
	assert_int_equal(qmp_execute(q, "migrate", json_string("fd:snap"), -1, 100, NULL, &err), -1);
	assert_string_equal(err.msg, "qmp migrate: arguments must be an object");
	assert_int_equal(qmp_wait_event(q, QMP_EV_COUNT, 0, 100, &err), -1);
	assert_false(qmp_closed(q));
	finish(&d, q);
	/* Only the handshake reached the double. */
	assert_int_equal(d.commands, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handshake_and_return_value),
		cmocka_unit_test(test_greeting_required),
		cmocka_unit_test(test_error_reply_keeps_connection),
		cmocka_unit_test(test_hostile_replies),
		cmocka_unit_test(test_overlong_line_drops_connection),
		cmocka_unit_test(test_long_line_under_cap_is_fine),
		cmocka_unit_test(test_timeout_drops_connection),
		cmocka_unit_test(test_eof_mid_command),
		cmocka_unit_test(test_events_interleaved_and_recorded),
		cmocka_unit_test(test_wait_event_rejects_unsolicited_reply),
		cmocka_unit_test(test_getfd_passes_the_fd),
		cmocka_unit_test(test_connect_waits_for_socket),
		cmocka_unit_test(test_connect_refusals),
		cmocka_unit_test(test_bad_arguments_refused_without_io),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
