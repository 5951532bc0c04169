/* The instance runtime's cost over bare QEMU, measured on the same guest,
 * the same QEMU command and the same snapshot in one run:
 *
 *  - Cold start: hostd's START request (after create) until the guest's
 *    "VMLET-GUEST-READY" shows up in the instance's console.log (hostd's
 *    monitor drains QEMU's console FIFO into it), against the SAME argv
 *    (hostd/vmm_qemu.c's build_argv with the same spec, host paths instead
 *    of jail paths) run by hand: fork+exec, unjailed, console to a file.
 *    What hostd adds: image hashing, uid allocation, cgroup creation and
 *    read-back, the jail (namespaces, binds, pivot_root), QMP connect,
 *    registry writes, the NNG round trip.
 *  - Wake: hostd's WAKE request on a sleeping instance until hostd
 *    answers (QEMU restored and running), against a hand-started QEMU
 *    with -incoming defer restoring the SAME snapshot file through the
 *    same QMP client (vmm_qemu_driver.connect + restore_from_fd: getfd,
 *    migrate-incoming fd:, wait for completion, cont).
 *  - The snapshot: its size and the SLEEP request's duration (stop,
 *    migrate to the file, fsync, quit, teardown).
 *
 * hostd runs as a child (forked before any NNG call) on a temp state dir
 * under /var/lib (the jail refuses world-writable parents such as /tmp),
 * with allow_root_peer = true since the bench itself is the host RPC
 * client, accel = tcg (what these machines run guests with; a TCG boot
 * is ~1-3 s) and its own cgroup root. Runs alternate between hostd and
 * the baseline so drift hits both alike, and never overlap: each side
 * runs with no other guest on the machine. Every instance is destroyed,
 * every QEMU killed and reaped, the cgroups and the temp dir removed.
 *
 * Output: `name: value unit` lines and `ratio:` lines (goals: cold start
 * overhead <= 10% or <= 30 ms; wake overhead <= 15 ms). Skips (exit 0,
 * with a message) when QEMU or the test guest (make guest) is missing. */
#include <dirent.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <poll.h>
#include <stdint.h>

#include "bench/bench_env.h"
#include "hostd/images.h"
#include "hostd/vmm.h"
#include "rpc/host.pb-c.h"
#include "rpc/strict.h"

#define QEMU_BIN "/usr/bin/qemu-system-x86_64"
#define MARKER "VMLET-GUEST-READY"
#define DEFAULT_RUNS 5
#define BOOT_TIMEOUT_MS 60000
#define HOST_TIMEOUT_MS 120000
#define TENANT "bench"
#define POOL "p"
#define VCPUS 1
#define MEM_MIB 128
/* lifecycle.c's cmdline when the image's manifest has none. */
#define DEFAULT_CMDLINE "console=ttyS0 tsc_early_khz=2000000 panic=-1"

#define ACT(x) VMLET__HOST__V1__INSTANCE_ACTION__INSTANCE_ACTION_##x
#define STATE(x) VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_##x

static struct bench_env env;
static char cgroot[64];
static char rawdir[PATH_MAX + 16];
static nng_socket sock;
static bool sock_open;
static char live[16][16]; /* instances to destroy at the end */
static size_t n_live;
static pid_t raw_pid; /* the baseline QEMU while it runs */

/* ---- set-up --------------------------------------------------------------------- */

static int run_wait(char *const argv[])
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		bench_die("fork: %s", strerror(errno));
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (fd >= 0)
			dup2(fd, 1);
		execv(argv[0], argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void write_config(void)
{
	FILE *f = fopen(env.conf, "we");

	if (!f)
		bench_die("%s: %s", env.conf, strerror(errno));
	fprintf(f,
		"[node]\nid = bench-node\n"
		"[paths]\nstate_dir = %1$s/state\nagentd_state_dir = %1$s/agentd\n"
		"run_dir = %1$s/run\nhostd_socket_dir = %1$s/run/hostd\n"
		"[agentd]\nuser = nobody\ngroup = nogroup\nadmin_group = nogroup\n"
		"listen = 127.0.0.1:%2$d\nlocal_socket = %1$s/run/agentd.sock\n"
		"[tls]\nca = %1$s/certs/ca.pem\ncert = %1$s/certs/node.pem\n"
		"key = %1$s/certs/node.key\ncoordinators = vmlet://coordinator\n"
		"[hostd]\nallow_root_peer = true\nqemu_binary = " QEMU_BIN "\n"
		"cgroup_root = %3$s\naccel = tcg\nworkers = 4\nconsole_log_max = 16777216\n",
		env.dir, env.port, cgroot);
	if (fclose(f) != 0)
		bench_die("%s: %s", env.conf, strerror(errno));
}

/* The private world: temp dir, the guest image installed with the
 * project's installer, the config. Nothing here touches NNG. */
static void env_setup(const char *guest_dir)
{
	char p[PATH_MAX + 128], images[PATH_MAX + 64], installer[PATH_MAX + 64];

	memset(&env, 0, sizeof(env));
	bench_find_bindir(&env);
	snprintf(env.dir, sizeof(env.dir), "/var/lib/vmlet-bench-rt.XXXXXX");
	if (!mkdtemp(env.dir))
		bench_die("mkdtemp %s: %s", env.dir, strerror(errno));
	chmod(env.dir, 0755);
	bench_mkdir(env.dir, "run", 0755);
	bench_mkdir(env.dir, "state", 0700);
	bench_mkdir(env.dir, "agentd", 0700);
	bench_mkdir(env.dir, "raw", 0700);
	bench_mkdir(env.dir, "state/images", 0755);
	snprintf(rawdir, sizeof(rawdir), "%s/raw", env.dir);
	snprintf(cgroot, sizeof(cgroot), "vmlet-bench-%d", (int)getpid());
	env.port = bench_free_port();
	snprintf(env.conf, sizeof(env.conf), "%s/vmlet.conf", env.dir);
	snprintf(env.hostd_sock, sizeof(env.hostd_sock), "%s/run/hostd/hostd.sock", env.dir);
	write_config();
	snprintf(images, sizeof(images), "%s/state/images", env.dir);
	snprintf(installer, sizeof(installer), "%s/../deploy/install-image.sh", env.bindir);
	{
		char *argv[] = { installer, (char *)"guest", (char *)guest_dir, images, NULL };
		if (run_wait(argv) != 0)
			bench_die("%s guest %s %s failed", installer, guest_dir, images);
	}
	snprintf(p, sizeof(p), "%s/guest/manifest.json", images);
	if (access(p, R_OK) < 0)
		bench_die("%s: %s", p, strerror(errno));
}

/* ---- host RPC (synchronous req0) -------------------------------------------------- */

/* One request, one reply; NULL with why on failure (never exits: the
 * clean-up uses it too). */
static Vmlet__Host__V1__HostResponse *host_try(const Vmlet__Host__V1__HostRequest *req,
					       char *why, size_t why_len)
{
	size_t len = protobuf_c_message_get_packed_size(&req->base);
	uint8_t *buf = malloc(len ? len : 1);
	nng_msg *msg;
	ProtobufCMessage *resp;
	struct vmlet_err err;
	int rv;

	if (!buf) {
		snprintf(why, why_len, "out of memory");
		return NULL;
	}
	protobuf_c_message_pack(&req->base, buf);
	rv = nng_send(sock, buf, len, 0);
	free(buf);
	if (rv == 0)
		rv = nng_recvmsg(sock, &msg, 0);
	if (rv != 0) {
		snprintf(why, why_len, "host rpc: %s", nng_strerror(rv));
		return NULL;
	}
	resp = vmlet_strict_unpack(&vmlet__host__v1__host_response__descriptor, nng_msg_body(msg),
				   nng_msg_len(msg), &err);
	nng_msg_free(msg);
	if (!resp)
		snprintf(why, why_len, "host rpc reply does not decode: %s", err.msg);
	return (Vmlet__Host__V1__HostResponse *)resp;
}

static Vmlet__Host__V1__HostResponse *host_call(const Vmlet__Host__V1__HostRequest *req)
{
	char why[VMLET_ERR_MSG_MAX + 64];
	Vmlet__Host__V1__HostResponse *r = host_try(req, why, sizeof(why));

	if (!r)
		bench_die("%s", why);
	return r;
}

/* Answer of an op that must succeed; dies with hostd's message otherwise. */
static Vmlet__Host__V1__HostResponse *host_ok(const Vmlet__Host__V1__HostRequest *req,
					       const char *what)
{
	Vmlet__Host__V1__HostResponse *r = host_call(req);

	if (r->result_case == VMLET__HOST__V1__HOST_RESPONSE__RESULT_ERROR)
		bench_die("%s: hostd: %u %s", what, r->error->code, r->error->message);
	return r;
}

static void ensure_tenant_pool(void)
{
	Vmlet__Host__V1__HostRequest req = VMLET__HOST__V1__HOST_REQUEST__INIT;
	Vmlet__Host__V1__EnsureTenantRequest t = VMLET__HOST__V1__ENSURE_TENANT_REQUEST__INIT;
	Vmlet__Host__V1__EnsurePoolRequest p = VMLET__HOST__V1__ENSURE_POOL_REQUEST__INIT;

	t.tenant_id = (char *)TENANT;
	t.tenant_net_id = 77;
	t.ipv4_subnet = (char *)"10.77.0.0/24";
	req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_ENSURE_TENANT;
	req.ensure_tenant = &t;
	protobuf_c_message_free_unpacked(&host_ok(&req, "ensure_tenant")->base, NULL);
	p.tenant_id = (char *)TENANT;
	p.pool_id = (char *)POOL;
	req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_ENSURE_POOL;
	req.ensure_pool = &p;
	protobuf_c_message_free_unpacked(&host_ok(&req, "ensure_pool")->base, NULL);
}

static void create_instance(const char *id)
{
	Vmlet__Host__V1__HostRequest req = VMLET__HOST__V1__HOST_REQUEST__INIT;
	Vmlet__Host__V1__CreateInstanceRequest c = VMLET__HOST__V1__CREATE_INSTANCE_REQUEST__INIT;
	Vmlet__Host__V1__InstanceSpec s = VMLET__HOST__V1__INSTANCE_SPEC__INIT;

	s.vcpus = VCPUS;
	s.mem_mib = MEM_MIB;
	s.image = (char *)"guest";
	c.tenant_id = (char *)TENANT;
	c.pool_id = (char *)POOL;
	c.instance_id = (char *)id;
	c.spec = &s;
	req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_CREATE_INSTANCE;
	req.create_instance = &c;
	protobuf_c_message_free_unpacked(&host_ok(&req, "create_instance")->base, NULL);
	if (n_live < sizeof(live) / sizeof(live[0]))
		snprintf(live[n_live++], sizeof(live[0]), "%s", id);
}

/* Run an action; the instance must end in state want. Returns the
 * request's duration (us) and the VMM pid hostd reports. */
static double instance_action(const char *id, Vmlet__Host__V1__InstanceAction action,
			      Vmlet__V1__InstanceState want, const char *what)
{
	Vmlet__Host__V1__HostRequest req = VMLET__HOST__V1__HOST_REQUEST__INIT;
	Vmlet__Host__V1__InstanceActionRequest a = VMLET__HOST__V1__INSTANCE_ACTION_REQUEST__INIT;
	Vmlet__Host__V1__HostResponse *r;
	double t0, t1;

	a.tenant_id = (char *)TENANT;
	a.pool_id = (char *)POOL;
	a.instance_id = (char *)id;
	a.action = action;
	req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_INSTANCE_ACTION;
	req.instance_action = &a;
	t0 = bench_now_us();
	r = host_ok(&req, what);
	t1 = bench_now_us();
	if (r->result_case != VMLET__HOST__V1__HOST_RESPONSE__RESULT_INSTANCE || !r->instance ||
	    r->instance->state != want)
		bench_die("%s %s: hostd answered state %d, want %d", what, id,
			  r->instance ? (int)r->instance->state : -1, (int)want);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return t1 - t0;
}

static void instance_dir(const char *id, const char *file, char *buf, size_t len)
{
	snprintf(buf, len, "%s/state/tenants/" TENANT "/pools/" POOL "/instances/%s/%s", env.dir,
		 id, file);
}

/* ---- the console marker ------------------------------------------------------------- */

/* Poll (every 1 ms) until path holds MARKER; the time it was seen (us),
 * or dies after BOOT_TIMEOUT_MS. pid (>0) must stay alive meanwhile. */
static double wait_marker(const char *path, pid_t pid)
{
	double deadline = bench_now_us() + BOOT_TIMEOUT_MS * 1000.0;
	static char buf[1 << 20];

	for (;;) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);

		if (fd >= 0) {
			ssize_t n = read(fd, buf, sizeof(buf));
			close(fd);
			if (n > 0 && memmem(buf, (size_t)n, MARKER, strlen(MARKER)))
				return bench_now_us();
		}
		if (pid > 0 && waitpid(pid, NULL, WNOHANG) == pid)
			bench_die("QEMU (pid %d) exited before %s appeared in %s", (int)pid, MARKER,
				  path);
		if (bench_now_us() > deadline)
			bench_die("%s did not appear in %s within %d ms", MARKER, path,
				  BOOT_TIMEOUT_MS);
		bench_sleep_ms(1);
	}
}

/* ---- the baseline: the same QEMU command, by hand ---------------------------------- */

/* The spec hostd's start_vmm builds (hostd/lifecycle.c), with the image's
 * host paths for the jail's /image/... and files in rawdir for /run/... */
static void raw_spec(const struct image *img, const char *tag, bool incoming,
		     struct vmm_spec *vs, char *sockp, char *conp, size_t len)
{
	snprintf(sockp, len, "%s/%s.qmp", rawdir, tag);
	snprintf(conp, len, "%s/%s.console", rawdir, tag);
	unlink(sockp);
	unlink(conp);
	memset(vs, 0, sizeof(*vs));
	vs->instance_id = "i-0000ba5e";
	vs->binary = QEMU_BIN;
	vs->vcpus = VCPUS;
	vs->mem_mib = MEM_MIB;
	vs->kernel = img->files[IMAGE_KERNEL].path;
	vs->initrd = img->files[IMAGE_INITRD].present ? img->files[IMAGE_INITRD].path : NULL;
	vs->cmdline = img->cmdline[0] ? img->cmdline : DEFAULT_CMDLINE;
	vs->control_socket = sockp;
	vs->console_log = conp;
	vs->tap_fd = -1;
	vs->use_kvm = false; /* accel = tcg, as hostd is configured */
	vs->incoming = incoming;
}

static pid_t raw_launch(const struct vmm_argv *av)
{
	pid_t pid = fork();

	if (pid < 0)
		bench_die("fork: %s", strerror(errno));
	if (pid == 0) {
		/* Exec at once: no NNG (not fork-safe) in the child. */
		int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (fd < 0 || dup2(fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(127);
		setsid();
		execv(av->argv[0], av->argv);
		_exit(127);
	}
	raw_pid = pid;
	return pid;
}

static void raw_kill(pid_t pid, const char *sockp, const char *conp)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	raw_pid = 0;
	unlink(sockp);
	unlink(conp);
}

static double raw_cold_start(const struct image *img, struct vmm_argv *av)
{
	char sockp[PATH_MAX + 64], conp[PATH_MAX + 64];
	struct vmm_spec vs;
	struct vmlet_err err;
	double t0, t1;
	pid_t pid;

	raw_spec(img, "cold", false, &vs, sockp, conp, sizeof(sockp));
	if (vmm_qemu_driver.build_argv(&vs, av, &err) < 0)
		bench_die("build_argv: %s", err.msg);
	t0 = bench_now_us();
	pid = raw_launch(av);
	t1 = wait_marker(conp, pid);
	raw_kill(pid, sockp, conp);
	return t1 - t0;
}

static double raw_restore(const struct image *img, struct vmm_argv *av, const char *snapshot)
{
	char sockp[PATH_MAX + 64], conp[PATH_MAX + 64];
	struct vmm_conn *conn = NULL;
	struct vmm_spec vs;
	struct vmlet_err err;
	double t0, t1;
	pid_t pid;
	int fd = open(snapshot, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		bench_die("%s: %s", snapshot, strerror(errno));
	raw_spec(img, "wake", true, &vs, sockp, conp, sizeof(sockp));
	if (vmm_qemu_driver.build_argv(&vs, av, &err) < 0)
		bench_die("build_argv: %s", err.msg);
	t0 = bench_now_us();
	pid = raw_launch(av);
	if (vmm_qemu_driver.connect(sockp, 10000, &conn, &err) < 0 ||
	    vmm_qemu_driver.restore_from_fd(conn, fd, 60000, &err) < 0) {
		raw_kill(pid, sockp, conp);
		bench_die("raw restore: %s", err.msg);
	}
	t1 = bench_now_us();
	vmm_qemu_driver.disconnect(conn);
	close(fd);
	raw_kill(pid, sockp, conp);
	return t1 - t0;
}

/* ---- clean-up ------------------------------------------------------------------------ */

static int cg_rmdir(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	char procs[PATH_MAX + 32];
	FILE *f;
	int pid;

	(void)st;
	(void)ftw;
	if (flag != FTW_DP)
		return 0;
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", path);
	f = fopen(procs, "re");
	if (f) {
		while (fscanf(f, "%d", &pid) == 1)
			kill(pid, SIGKILL);
		fclose(f);
	}
	for (int i = 0; i < 50 && rmdir(path) < 0 && errno == EBUSY; i++)
		bench_sleep_ms(20);
	return 0;
}

/* Whatever is left of the bench's cgroup root, in every hierarchy (v2:
 * /sys/fs/cgroup itself; v1: each controller's mount under it). */
static void cgroups_cleanup(void)
{
	DIR *d;
	struct dirent *de;
	char p[PATH_MAX];
	struct stat st;

	/* Never walk a hierarchy's root: only our own subtree, by name. */
	if (strncmp(cgroot, "vmlet-bench-", 12) != 0 || strchr(cgroot, '/'))
		return;
	d = opendir("/sys/fs/cgroup");
	snprintf(p, sizeof(p), "/sys/fs/cgroup/%s", cgroot);
	if (stat(p, &st) == 0 && S_ISDIR(st.st_mode))
		nftw(p, cg_rmdir, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.' || strncmp(de->d_name, "vmlet-bench-", 12) == 0)
			continue;
		snprintf(p, sizeof(p), "/sys/fs/cgroup/%s/%s", de->d_name, cgroot);
		if (stat(p, &st) == 0 && S_ISDIR(st.st_mode))
			nftw(p, cg_rmdir, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	}
	if (d)
		closedir(d);
}

static void cleanup(void)
{
	Vmlet__Host__V1__HostResponse *r;
	char why[VMLET_ERR_MSG_MAX + 64];

	if (raw_pid > 0) {
		kill(raw_pid, SIGKILL);
		waitpid(raw_pid, NULL, 0);
		raw_pid = 0;
	}
	if (sock_open) {
		for (size_t i = 0; i < n_live; i++) {
			Vmlet__Host__V1__HostRequest req = VMLET__HOST__V1__HOST_REQUEST__INIT;
			Vmlet__Host__V1__InstanceActionRequest a =
				VMLET__HOST__V1__INSTANCE_ACTION_REQUEST__INIT;

			a.tenant_id = (char *)TENANT;
			a.pool_id = (char *)POOL;
			a.instance_id = live[i];
			a.action = ACT(DESTROY);
			req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_INSTANCE_ACTION;
			req.instance_action = &a;
			r = host_try(&req, why, sizeof(why));
			if (r)
				protobuf_c_message_free_unpacked(&r->base, NULL);
			else
				fprintf(stderr, "bench: destroy %s: %s\n", live[i], why);
		}
		n_live = 0;
		nng_close(sock);
		sock_open = false;
	}
	bench_stop(env.hostd);
	env.hostd = 0;
	cgroups_cleanup();
	bench_env_cleanup(&env);
}

static double median(double *v, size_t n)
{
	return bench_percentile(v, n, 0.5);
}

static void print_samples(const char *name, const double *v, size_t n)
{
	printf("%s_samples:", name);
	for (size_t i = 0; i < n; i++)
		printf(" %.1f", v[i] / 1000.0);
	printf(" ms\n");
}

int main(void)
{
	char guest[PATH_MAX + 32], url[PATH_MAX + 64], p[PATH_MAX + 64];
	const char *e = getenv("VMLET_BENCH_RUNS");
	int runs = e && atoi(e) > 0 && atoi(e) <= 50 ? atoi(e) : DEFAULT_RUNS;
	double cold_h[50], cold_r[50], wake_h[50], wake_r[50], sleep_t[50], start_req[50], hash_t[50];
	struct vmm_argv *av = calloc(1, sizeof(*av));
	struct image img = { 0 };
	struct vmlet_err err;
	struct stat st;
	off_t snap_size = 0;
	int rv;

	if (!av)
		bench_die("out of memory");
	if (geteuid() != 0)
		bench_die("needs root (hostd jails QEMU and makes cgroups)");
	if (access(QEMU_BIN, X_OK) < 0) {
		printf("skipped: %s missing (apt-get install qemu-system-x86)\n", QEMU_BIN);
		return 0;
	}
	memset(&env, 0, sizeof(env));
	bench_find_bindir(&env);
	snprintf(guest, sizeof(guest), "%s/guest", env.bindir);
	snprintf(p, sizeof(p), "%s/vmlinuz", guest);
	if (stat(p, &st) < 0 || st.st_size == 0) {
		printf("skipped: no test guest in %s (make guest)\n", guest);
		return 0;
	}

	/* From here on every exit (bench_die too) destroys what was made. */
	atexit(cleanup);
	env_setup(guest);
	/* hostd first, before this process touches NNG. */
	env.hostd = bench_spawn(&env, "vmlet-hostd");
	bench_wait_socket(&env, env.hostd, "vmlet-hostd", env.hostd_sock, 30000);
	snprintf(url, sizeof(url), "ipc://%s", env.hostd_sock);
	if ((rv = nng_req0_open(&sock)) != 0 ||
	    (rv = nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, HOST_TIMEOUT_MS)) != 0 ||
	    (rv = nng_socket_set_ms(sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE)) != 0 ||
	    (rv = nng_dial(sock, url, NULL, 0)) != 0)
		bench_die("nng %s: %s", url, nng_strerror(rv));
	sock_open = true;
	snprintf(p, sizeof(p), "%s/state/images", env.dir);
	if (image_open(p, "guest", &img, &err) < 0)
		bench_die("image: %s", err.msg);
	ensure_tenant_pool();
	/* hostd opens and hashes the image on every start and wake: part of
	 * both overheads, printed on its own. */
	for (int k = 0; k < runs; k++) {
		struct image again = { 0 };
		double t0 = bench_now_us();

		if (image_open(p, "guest", &again, &err) < 0)
			bench_die("image: %s", err.msg);
		hash_t[k] = bench_now_us() - t0;
		image_close(&again);
	}

	/* ---- cold start ---- */
	for (int k = 0; k < runs; k++) {
		char id[16], con[PATH_MAX + 128];
		double t0;

		snprintf(id, sizeof(id), "i-%08x", 0xc0000000u + (unsigned)k);
		create_instance(id);
		instance_dir(id, "console.log", con, sizeof(con));
		t0 = bench_now_us();
		start_req[k] = instance_action(id, ACT(START), STATE(RUNNING), "start");
		cold_h[k] = wait_marker(con, 0) - t0;
		instance_action(id, ACT(DESTROY), STATE(DESTROYED), "destroy");
		n_live--;
		cold_r[k] = raw_cold_start(&img, av);
		fprintf(stderr, "cold %d: hostd %.1f ms, raw %.1f ms\n", k, cold_h[k] / 1000.0,
			cold_r[k] / 1000.0);
	}

	/* ---- sleep / wake ---- */
	{
		const char *id = "i-0000aaaa";
		char con[PATH_MAX + 128], snap[PATH_MAX + 128];

		create_instance(id);
		instance_dir(id, "console.log", con, sizeof(con));
		instance_dir(id, "snapshot/vm.state", snap, sizeof(snap));
		instance_action(id, ACT(START), STATE(RUNNING), "start");
		wait_marker(con, 0);
		for (int k = 0; k < runs; k++) {
			sleep_t[k] = instance_action(id, ACT(SLEEP), STATE(SLEEPING), "sleep");
			if (stat(snap, &st) < 0)
				bench_die("%s: %s", snap, strerror(errno));
			snap_size = st.st_size;
			/* The baseline restores while the instance sleeps: a running
			 * TCG guest next to it would slow whichever goes second.
			 * The snapshot stays after a wake, but the next sleep
			 * rewrites it, so both restore this very file. */
			wake_r[k] = raw_restore(&img, av, snap);
			wake_h[k] = instance_action(id, ACT(WAKE), STATE(RUNNING), "wake");
			fprintf(stderr, "wake %d: hostd %.1f ms, raw %.1f ms, sleep %.1f ms\n", k,
				wake_h[k] / 1000.0, wake_r[k] / 1000.0, sleep_t[k] / 1000.0);
		}
	}

	print_samples("cold_start_hostd", cold_h, (size_t)runs);
	print_samples("cold_start_raw", cold_r, (size_t)runs);
	print_samples("wake_hostd", wake_h, (size_t)runs);
	print_samples("wake_raw", wake_r, (size_t)runs);
	{
		double ch = median(cold_h, (size_t)runs) / 1000.0;
		double cr = median(cold_r, (size_t)runs) / 1000.0;
		double sr = median(start_req, (size_t)runs) / 1000.0;
		double wh = median(wake_h, (size_t)runs) / 1000.0;
		double wr = median(wake_r, (size_t)runs) / 1000.0;
		double sl = median(sleep_t, (size_t)runs) / 1000.0;
		double co = ch - cr, wo = wh - wr;

		printf("runs: %d each (accel tcg, %u vcpu, %u MiB guest)\n", runs, VCPUS, MEM_MIB);
		printf("cold_start_hostd_median: %.1f ms (START request -> " MARKER
		       " in console.log)\n", ch);
		printf("cold_start_hostd_request_median: %.1f ms (START request -> hostd's answer)\n",
		       sr);
		printf("cold_start_raw_median: %.1f ms (same QEMU argv by hand, unjailed)\n", cr);
		printf("cold_start_overhead: %.1f ms (%.1f%%)\n", co, cr > 0 ? 100.0 * co / cr : 0.0);
		printf("ratio: %.3fx cold start hostd/raw, overhead %.1f ms = %.1f%% "
		       "(goal: overhead <= 10%% or <= 30 ms: %s)\n",
		       cr > 0 ? ch / cr : 0.0, co, cr > 0 ? 100.0 * co / cr : 0.0,
		       (co <= 30.0 || (cr > 0 && co <= 0.10 * cr)) ? "met" : "missed");
		printf("wake_hostd_median: %.1f ms (WAKE request -> hostd's answer, guest running)\n",
		       wh);
		printf("wake_raw_median: %.1f ms (QEMU -incoming defer by hand, QMP getfd + "
		       "migrate-incoming + cont)\n", wr);
		printf("wake_overhead: %.1f ms\n", wo);
		printf("ratio: %.3fx wake hostd/raw, overhead %.1f ms (goal: overhead <= 15 ms: %s)\n",
		       wr > 0 ? wh / wr : 0.0, wo, wo <= 15.0 ? "met" : "missed");
		printf("image_open_median: %.1f ms (image_open of the guest's %.1f MiB as hostd does "
		       "it on every start and wake: sha256 on first use, then cached by file "
		       "identity and ctime)\n", median(hash_t, (size_t)runs) / 1000.0,
		       (double)(img.files[IMAGE_KERNEL].size + img.files[IMAGE_INITRD].size) /
			       (1 << 20));
		printf("snapshot_size: %.1f MiB (%lld bytes)\n", (double)snap_size / (1 << 20),
		       (long long)snap_size);
		printf("snapshot_write_median: %.1f ms (SLEEP request: stop, migrate to the file, "
		       "fsync, quit, teardown)\n", sl);
		printf("snapshot_write_rate: %.0f MiB/s\n",
		       sl > 0 ? (double)snap_size / (1 << 20) / (sl / 1000.0) : 0.0);
	}
	image_close(&img);
	free(av);
	return 0;
}
