#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "agentd/local.h"
#include "shared/config.h"

static char tmpdir[64];
static struct vmlet_config cfg;

static int setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/vmlet-agentd-local-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	vmlet_config_defaults(&cfg);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- the policy ------------------------------------------------------------- */

static void root_always_allowed(void **state)
{
	assert_true(agentd_local_peer_allowed(0, 0, NULL, 0, 1001));
	assert_true(agentd_local_peer_allowed(0, 5, NULL, 0, (gid_t)-1));
}

static void admin_by_primary_group(void **state)
{
	assert_true(agentd_local_peer_allowed(1000, 1001, NULL, 0, 1001));
	assert_false(agentd_local_peer_allowed(1000, 1000, NULL, 0, 1001));
}

static void admin_by_supplementary_group(void **state)
{
	const gid_t groups[] = { 24, 27, 1001, 100 };
	const gid_t others[] = { 24, 27, 100, 1002 };
	assert_true(agentd_local_peer_allowed(1000, 1000, groups, 4, 1001));
	assert_false(agentd_local_peer_allowed(1000, 1000, others, 4, 1001));
	/* Only the first n entries count. */
	assert_false(agentd_local_peer_allowed(1000, 1000, groups, 2, 1001));
}

static void missing_admin_group_matches_nobody(void **state)
{
	const gid_t groups[] = { (gid_t)-1 };
	assert_false(agentd_local_peer_allowed(1000, (gid_t)-1, groups, 1, (gid_t)-1));
	assert_false(agentd_local_peer_allowed(65534, 65534, NULL, 0, (gid_t)-1));
}

static void peer_cred_of_socketpair_is_us(void **state)
{
	int sv[2];
	struct agentd_peer_cred pc;
	struct vmlet_err err;
	gid_t mine[256];
	int n = getgroups(256, mine);

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(agentd_local_peer_cred(sv[0], &pc, &err), 0);
	assert_int_equal(pc.uid, geteuid());
	assert_int_equal(pc.gid, getegid());
	assert_int_equal(pc.pid, getpid());
	assert_int_equal(pc.n_groups, (size_t)n);
	for (int i = 0; i < n; i++) {
		int found = 0;
		for (size_t j = 0; j < pc.n_groups; j++)
			found |= pc.groups[j] == mine[i];
		assert_true(found);
	}
	agentd_peer_cred_free(&pc);
	assert_null(pc.groups);
	close(sv[0]);
	close(sv[1]);
}

static void peer_cred_of_non_socket_fails(void **state)
{
	struct agentd_peer_cred pc;
	struct vmlet_err err;
	int fd = open("/dev/null", O_RDONLY);
	assert_int_equal(agentd_local_peer_cred(fd, &pc, &err), -1);
	assert_non_null(strstr(err.msg, "SO_PEERCRED"));
	close(fd);
}

/* ---- the listener ------------------------------------------------------------ */

static void set_path(const char *rel)
{
	snprintf(cfg.local_socket, sizeof(cfg.local_socket), "%s/%s", tmpdir, rel);
}

static void creates_dirs_and_binds_0660(void **state)
{
	struct agentd_local_listener l;
	struct vmlet_err err;
	struct stat st;

	set_path("run/vmlet/agentd.sock");
	cfg.admin_gid = 4242;
	assert_int_equal(agentd_local_listen(&cfg, &l, &err), 0);
	assert_true(l.fd >= 0);
	assert_int_equal(lstat(cfg.local_socket, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0660);
	if (geteuid() == 0) {
		assert_int_equal(st.st_uid, 0);
		assert_int_equal(st.st_gid, 4242);
	}
	assert_true(fcntl(l.fd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(l.fd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(agentd_local_close(&l, &err), 0);
	assert_int_equal(lstat(cfg.local_socket, &st), -1);
	assert_int_equal(errno, ENOENT);
}

static void stale_socket_is_replaced(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct agentd_local_listener l;
	struct vmlet_err err;
	int fd;

	set_path("stale.sock");
	assert_true(strlen(cfg.local_socket) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, cfg.local_socket, strlen(cfg.local_socket) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd); /* left behind, nobody listening: stale */
	assert_int_equal(agentd_local_listen(&cfg, &l, &err), 0);
	assert_int_equal(agentd_local_close(&l, &err), 0);
}

static void live_socket_is_not_stolen(void **state)
{
	struct agentd_local_listener first, second;
	struct vmlet_err err;

	set_path("live.sock");
	assert_int_equal(agentd_local_listen(&cfg, &first, &err), 0);
	assert_int_equal(agentd_local_listen(&cfg, &second, &err), -1);
	assert_int_equal(err.code, 409);
	assert_non_null(strstr(err.msg, "another process is listening"));
	assert_int_equal(second.fd, -1);
	assert_int_equal(agentd_local_close(&first, &err), 0);
}

static void non_socket_file_is_not_replaced(void **state)
{
	struct agentd_local_listener l;
	struct vmlet_err err;
	struct stat st;
	char target[128];
	int fd;

	set_path("file.sock");
	fd = open(cfg.local_socket, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(agentd_local_listen(&cfg, &l, &err), -1);
	assert_int_equal(err.code, 409);
	assert_non_null(strstr(err.msg, "not a socket"));
	assert_int_equal(lstat(cfg.local_socket, &st), 0);
	assert_true(S_ISREG(st.st_mode));

	/* A symlink (even to a socket) is not followed or removed either. */
	snprintf(target, sizeof(target), "%s/elsewhere", tmpdir);
	set_path("link.sock");
	assert_int_equal(symlink(target, cfg.local_socket), 0);
	assert_int_equal(agentd_local_listen(&cfg, &l, &err), -1);
	assert_int_equal(err.code, 409);
	assert_int_equal(lstat(cfg.local_socket, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
}

static void bad_paths_refused(void **state)
{
	struct agentd_local_listener l;
	struct vmlet_err err;

	snprintf(cfg.local_socket, sizeof(cfg.local_socket), "relative/agentd.sock");
	assert_int_equal(agentd_local_listen(&cfg, &l, &err), -1);
	assert_int_equal(err.code, 400);
	assert_non_null(strstr(err.msg, "absolute"));

	memset(cfg.local_socket, 'a', 200);
	cfg.local_socket[0] = '/';
	cfg.local_socket[200] = '\0';
	assert_int_equal(agentd_local_listen(&cfg, &l, &err), -1);
	assert_int_equal(err.code, 400);
	assert_non_null(strstr(err.msg, "longer"));

	/* The parent exists but is a file. */
	set_path("file.sock/agentd.sock");
	assert_int_equal(agentd_local_listen(&cfg, &l, &err), -1);
	assert_non_null(strstr(err.msg, "not a directory"));
}

static void close_leaves_a_replaced_path_alone(void **state)
{
	struct agentd_local_listener l;
	struct vmlet_err err;
	struct stat st;
	int fd;

	set_path("replaced.sock");
	assert_int_equal(agentd_local_listen(&cfg, &l, &err), 0);
	/* Someone else (a newer agentd, an admin) put something there. */
	assert_int_equal(unlink(cfg.local_socket), 0);
	fd = open(cfg.local_socket, O_CREAT | O_WRONLY, 0600);
	close(fd);
	assert_int_equal(agentd_local_close(&l, &err), 0);
	assert_int_equal(lstat(cfg.local_socket, &st), 0);
	assert_true(S_ISREG(st.st_mode));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(root_always_allowed),
		cmocka_unit_test(admin_by_primary_group),
		cmocka_unit_test(admin_by_supplementary_group),
		cmocka_unit_test(missing_admin_group_matches_nobody),
		cmocka_unit_test(peer_cred_of_socketpair_is_us),
		cmocka_unit_test(peer_cred_of_non_socket_fails),
		cmocka_unit_test(creates_dirs_and_binds_0660),
		cmocka_unit_test(stale_socket_is_replaced),
		cmocka_unit_test(live_socket_is_not_stolen),
		cmocka_unit_test(non_socket_file_is_not_replaced),
		cmocka_unit_test(bad_paths_refused),
		cmocka_unit_test(close_leaves_a_replaced_path_alone),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
