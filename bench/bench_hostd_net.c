/* Tenant networks: create, verify and tear down N (100) tenant networks
 * with one TAP each, through vmlet-hostd vs with the `ip` and `nft`
 * command-line tools, in the same run; prints both times and the ratio
 * (goal: hostd >= 5x faster).
 *
 * hostd side: this process first moves into a NEW network namespace
 * (unshare(CLONE_NEWNET)) and spawns vmlet-hostd there (network = true),
 * so no bridge, TAP or rule reaches the host's namespace. Per tenant,
 * over NNG: ensure_tenant (bridge, gateway, forwarding, rules), ensure_pool,
 * create_instance (address, anti-spoofing rules); the TAP is made with
 * hostd/netlink's net_tap_ensure, the code hostd's START runs to attach
 * an instance (no host op creates a bare TAP: a TAP exists while its VMM
 * may), and one reapply_network stands for the rule applies START's
 * attaches would make. Then one verify_network over everything (links and every rule
 * read back; must report 0 failed); then per tenant destroy +
 * remove_pool + remove_tenant (bridge and TAP in one kernel batch).
 *
 * CLI side, in another fresh netns (a child process): what a script does,
 * one process per command: per tenant `ip link add` bridge, `ip addr add`,
 * `ip link set up`, `ip tuntap add` + `ip link set master/up`, and `nft add
 * rule` for the same rules hostd keeps (intra-tenant accept, isolation,
 * gateway-only input, anti-spoofing IP and ARP); verify reads each bridge,
 * address and TAP back with `ip` and lists the ruleset once with `nft`;
 * teardown deletes TAP and bridge with `ip link del` and both tables.
 * The kernel's RCU waits on deletion are paid by both. */
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <sched.h>
#include <stdint.h>

#include "bench/bench_env.h"
#include "hostd/netlink.h"
#include "rpc/host.pb-c.h"
#include "rpc/strict.h"

#define DEFAULT_TENANTS 100
#define HOST_TIMEOUT_MS 120000
#define TAP_UID 200000

static nng_socket sock;
static struct bench_env env;

/* bench_die exits: never leave hostd or the temp dir behind */
static void at_exit(void)
{
	if (env.hostd > 0) {
		bench_stop(env.hostd);
		env.hostd = 0;
	}
	if (env.dir[0])
		bench_env_cleanup(&env);
}

static Vmlet__Host__V1__HostResponse *host_ok(const Vmlet__Host__V1__HostRequest *req,
					      const char *what)
{
	size_t len = protobuf_c_message_get_packed_size(&req->base);
	uint8_t *buf = malloc(len ? len : 1);
	Vmlet__Host__V1__HostResponse *r;
	struct vmlet_err err;
	nng_msg *msg;
	int rv;

	if (!buf)
		bench_die("out of memory");
	protobuf_c_message_pack(&req->base, buf);
	rv = nng_send(sock, buf, len, 0);
	free(buf);
	if (rv == 0)
		rv = nng_recvmsg(sock, &msg, 0);
	if (rv != 0)
		bench_die("%s: host rpc: %s", what, nng_strerror(rv));
	r = (Vmlet__Host__V1__HostResponse *)vmlet_strict_unpack(
		&vmlet__host__v1__host_response__descriptor, nng_msg_body(msg), nng_msg_len(msg),
		&err);
	nng_msg_free(msg);
	if (!r)
		bench_die("%s: reply does not decode: %s", what, err.msg);
	if (r->result_case == VMLET__HOST__V1__HOST_RESPONSE__RESULT_ERROR)
		bench_die("%s: hostd: %u %s", what, r->error->code, r->error->message);
	return r;
}

static void host_do(Vmlet__Host__V1__HostRequest *req, const char *what)
{
	protobuf_c_message_free_unpacked(&host_ok(req, what)->base, NULL);
}

static void tenant_names(unsigned i, char *tenant, size_t tlen, char *subnet, size_t slen)
{
	snprintf(tenant, tlen, "t-%u", i);
	snprintf(subnet, slen, "10.%u.%u.0/24", 100 + i / 256, i % 256);
}

static double run_hostd(unsigned n, struct net_ctx *ctx)
{
	Vmlet__Host__V1__HostRequest req = VMLET__HOST__V1__HOST_REQUEST__INIT;
	Vmlet__Host__V1__EnsureTenantRequest et = VMLET__HOST__V1__ENSURE_TENANT_REQUEST__INIT;
	Vmlet__Host__V1__EnsurePoolRequest ep = VMLET__HOST__V1__ENSURE_POOL_REQUEST__INIT;
	Vmlet__Host__V1__CreateInstanceRequest ci = VMLET__HOST__V1__CREATE_INSTANCE_REQUEST__INIT;
	Vmlet__Host__V1__InstanceSpec spec = VMLET__HOST__V1__INSTANCE_SPEC__INIT;
	Vmlet__Host__V1__VerifyNetworkRequest vn = VMLET__HOST__V1__VERIFY_NETWORK_REQUEST__INIT;
	Vmlet__Host__V1__InstanceActionRequest ia = VMLET__HOST__V1__INSTANCE_ACTION_REQUEST__INIT;
	Vmlet__Host__V1__RemovePoolRequest rp = VMLET__HOST__V1__REMOVE_POOL_REQUEST__INIT;
	Vmlet__Host__V1__RemoveTenantRequest rt = VMLET__HOST__V1__REMOVE_TENANT_REQUEST__INIT;
	Vmlet__Host__V1__ReapplyNetworkRequest ra = VMLET__HOST__V1__REAPPLY_NETWORK_REQUEST__INIT;
	Vmlet__Host__V1__HostResponse *r;
	char tenant[32], subnet[32], inst[16];
	struct vmlet_err err;
	double t0 = bench_now_us(), t1, t2;

	spec.vcpus = 1;
	spec.mem_mib = 128;
	spec.image = "guest";
	for (unsigned i = 1; i <= n; i++) {
		tenant_names(i, tenant, sizeof(tenant), subnet, sizeof(subnet));
		snprintf(inst, sizeof(inst), "i-%08x", i);
		et.tenant_id = tenant;
		et.tenant_net_id = i;
		et.ipv4_subnet = subnet;
		req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_ENSURE_TENANT;
		req.ensure_tenant = &et;
		host_do(&req, "ensure_tenant");
		ep.tenant_id = tenant;
		ep.pool_id = "p";
		req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_ENSURE_POOL;
		req.ensure_pool = &ep;
		host_do(&req, "ensure_pool");
		ci.tenant_id = tenant;
		ci.pool_id = "p";
		ci.instance_id = inst;
		ci.spec = &spec;
		req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_CREATE_INSTANCE;
		req.create_instance = &ci;
		host_do(&req, "create_instance");
		if (net_tap_ensure(ctx, i, 0, TAP_UID + i, TAP_UID + i, NULL, &err) < 0)
			bench_die("tap %u: %s", i, err.msg);
	}
	/* START's attach would apply the instances' rules; here one re-apply
	 * does it for all of them (also converging the TAPs) */
	req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_REAPPLY_NETWORK;
	req.reapply_network = &ra;
	host_do(&req, "reapply_network");
	t1 = bench_now_us();
	req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_VERIFY_NETWORK;
	req.verify_network = &vn;
	r = host_ok(&req, "verify_network");
	for (size_t k = 0; k < r->net_verify->n_checks; k++)
		if (!r->net_verify->checks[k]->ok)
			fprintf(stderr, "FAIL %s: expected %.300s found %.300s\n",
				r->net_verify->checks[k]->name, r->net_verify->checks[k]->expected,
				r->net_verify->checks[k]->found);
	if (r->net_verify->failed || r->net_verify->n_checks < 5 * n)
		bench_die("verify_network: %u of %zu checks failed", r->net_verify->failed,
			  r->net_verify->n_checks);
	fprintf(stderr, "hostd verify: %zu checks\n", r->net_verify->n_checks);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	t2 = bench_now_us();
	for (unsigned i = 1; i <= n; i++) {
		tenant_names(i, tenant, sizeof(tenant), subnet, sizeof(subnet));
		snprintf(inst, sizeof(inst), "i-%08x", i);
		ia.tenant_id = tenant;
		ia.pool_id = "p";
		ia.instance_id = inst;
		ia.action = VMLET__HOST__V1__INSTANCE_ACTION__INSTANCE_ACTION_DESTROY;
		req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_INSTANCE_ACTION;
		req.instance_action = &ia;
		host_do(&req, "destroy");
		rp.tenant_id = tenant;
		rp.pool_id = "p";
		req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_REMOVE_POOL;
		req.remove_pool = &rp;
		host_do(&req, "remove_pool");
		rt.tenant_id = tenant;
		req.op_case = VMLET__HOST__V1__HOST_REQUEST__OP_REMOVE_TENANT;
		req.remove_tenant = &rt;
		host_do(&req, "remove_tenant");
	}
	printf("hostd_create_ms: %.1f\nhostd_verify_ms: %.1f\nhostd_teardown_ms: %.1f\n",
	       (t1 - t0) / 1000, (t2 - t1) / 1000, (bench_now_us() - t2) / 1000);
	return bench_now_us() - t0;
}

/* ---- the command-line tools ---------------------------------------------------- */

static unsigned n_cmds;

__attribute__((format(printf, 1, 2))) static void cli(const char *fmt, ...)
{
	char line[512], *argv[40], *save = NULL;
	size_t argc = 0;
	va_list ap;
	pid_t pid;
	int st;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* words separated by blanks; '|' stands for a blank inside a word */
	for (char *w = strtok_r(line, " ", &save); w && argc < 39; w = strtok_r(NULL, " ", &save)) {
		for (char *c = w; *c; c++)
			if (*c == '|')
				*c = ' ';
		argv[argc++] = w;
	}
	argv[argc] = NULL;
	n_cmds++;
	pid = fork();
	if (pid < 0)
		bench_die("fork: %s", strerror(errno));
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

		if (fd >= 0)
			dup2(fd, 1);
		execvp(argv[0], argv);
		_exit(127);
	}
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		bench_die("command failed (%d): %s ...", WIFEXITED(st) ? WEXITSTATUS(st) : -1, argv[0]);
}

static void run_cli(unsigned n)
{
	char tenant[32], subnet[32];
	double t0 = bench_now_us(), t1, t2;

	cli("nft add table inet vmlet");
	cli("nft add chain inet vmlet forward { type filter hook forward priority 0 ; }");
	cli("nft add chain inet vmlet input { type filter hook input priority 0 ; }");
	cli("nft add table bridge vmlet");
	cli("nft add chain bridge vmlet prerouting { type filter hook prerouting priority -200 ; }");
	for (unsigned i = 1; i <= n; i++) {
		unsigned a = 100 + i / 256, b = i % 256;

		tenant_names(i, tenant, sizeof(tenant), subnet, sizeof(subnet));
		cli("ip link add br-tenant-%u type bridge", i);
		cli("ip addr add 10.%u.%u.1/24 dev br-tenant-%u", a, b, i);
		cli("ip link set br-tenant-%u up", i);
		cli("ip tuntap add tn%ui0 mode tap user %u group %u", i, TAP_UID + i, TAP_UID + i);
		cli("ip link set tn%ui0 master br-tenant-%u up", i, i);
		cli("nft add rule inet vmlet forward iifname br-tenant-%u oifname br-tenant-%u "
		    "ip saddr 10.%u.%u.0/24 accept", i, i, a, b);
		cli("nft add rule inet vmlet forward iifname br-tenant-%u oifname \"br-tenant-*\" "
		    "oifname != br-tenant-%u drop", i, i);
		cli("nft add rule inet vmlet input iifname br-tenant-%u ip daddr != 10.%u.%u.1 drop",
		    i, a, b);
		cli("nft add rule bridge vmlet prerouting iifname tn%ui0 ip saddr 10.%u.%u.2 accept",
		    i, a, b);
		cli("nft add rule bridge vmlet prerouting iifname tn%ui0 arp saddr|ip 10.%u.%u.2 "
		    "accept", i, a, b);
	}
	cli("nft add rule bridge vmlet prerouting iifname \"tn*\" drop");
	t1 = bench_now_us();
	for (unsigned i = 1; i <= n; i++) {
		cli("ip -d link show br-tenant-%u", i);
		cli("ip -4 addr show dev br-tenant-%u", i);
		cli("ip -d link show tn%ui0", i);
	}
	cli("nft -j list ruleset");
	t2 = bench_now_us();
	for (unsigned i = 1; i <= n; i++) {
		cli("ip link del tn%ui0", i);
		cli("ip link del br-tenant-%u", i);
	}
	cli("nft delete table inet vmlet");
	cli("nft delete table bridge vmlet");
	printf("cli_create_ms: %.1f\ncli_verify_ms: %.1f\ncli_teardown_ms: %.1f\ncli_commands: %u\n",
	       (t1 - t0) / 1000, (t2 - t1) / 1000, (bench_now_us() - t2) / 1000, n_cmds);
	printf("cli_total_ms: %.1f\n", (bench_now_us() - t0) / 1000);
}

int main(void)
{
	struct net_ctx *ctx = NULL;
	struct vmlet_err err;
	const char *s = getenv("BENCH_NET_TENANTS");
	unsigned n = s ? (unsigned)strtoul(s, NULL, 10) : DEFAULT_TENANTS;
	char url[PATH_MAX + 48];
	double hostd_us, cli_us, t0;
	FILE *f;
	pid_t cli_pid;
	int rv, st;

	if (n < 1 || n > 4000)
		bench_die("BENCH_NET_TENANTS: 1..4000");
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* hostd's destroy cleans up the instance's jail, which insists on
	 * root-owned, not world-writable parents: not /tmp. */
	if (geteuid() != 0)
		bench_die("needs root (hostd is the root helper)");
	memset(&env, 0, sizeof(env));
	bench_find_bindir(&env);
	snprintf(env.dir, sizeof(env.dir), "/var/lib/vmlet-bench-net.XXXXXX");
	if (!mkdtemp(env.dir)) {
		env.dir[0] = '\0';
		bench_die("mkdtemp: %s", strerror(errno));
	}
	atexit(at_exit);
	chmod(env.dir, 0755);
	bench_mkdir(env.dir, "run", 0755);
	bench_mkdir(env.dir, "state", 0700);
	snprintf(env.conf, sizeof(env.conf), "%s/vmlet.conf", env.dir);
	snprintf(env.hostd_sock, sizeof(env.hostd_sock), "%s/run/hostd/hostd.sock", env.dir);
	f = fopen(env.conf, "we");
	if (!f)
		bench_die("%s: %s", env.conf, strerror(errno));
	fprintf(f,
		"[node]\nid = bench-node\n"
		"[paths]\nstate_dir = %1$s/state\nagentd_state_dir = %1$s/agentd\n"
		"run_dir = %1$s/run\nhostd_socket_dir = %1$s/run/hostd\n"
		"[agentd]\nuser = nobody\ngroup = nogroup\n"
		"[hostd]\nallow_root_peer = true\ncgroup_root = vmlet-bench-net-%2$d\n"
		"accel = tcg\nkvm_probe_image =\nnetwork = true\n",
		env.dir, (int)getpid());
	if (fclose(f) != 0)
		bench_die("%s: %s", env.conf, strerror(errno));
	/* This process and hostd share a private network namespace. */
	if (unshare(CLONE_NEWNET) < 0) {
		printf("skipped: unshare(CLONE_NEWNET): %s\n", strerror(errno));
		return 0;
	}
	env.hostd = bench_spawn(&env, "vmlet-hostd");
	bench_wait_socket(&env, env.hostd, "vmlet-hostd", env.hostd_sock, 30000);
	snprintf(url, sizeof(url), "ipc://%s", env.hostd_sock);
	if ((rv = nng_req0_open(&sock)) != 0 ||
	    (rv = nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, HOST_TIMEOUT_MS)) != 0 ||
	    (rv = nng_socket_set_ms(sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE)) != 0 ||
	    (rv = nng_dial(sock, url, NULL, 0)) != 0)
		bench_die("nng %s: %s", url, nng_strerror(rv));
	if (net_open(&ctx, &err) < 0)
		bench_die("net_open: %s", err.msg);
	printf("tenants: %u (one TAP each)\n", n);
	hostd_us = run_hostd(n, ctx);
	net_close(ctx);
	printf("hostd_total_ms: %.1f\n", hostd_us / 1000);
	nng_close(sock);
	bench_stop(env.hostd);
	env.hostd = 0;

	/* The tools, in a fresh namespace of their own (a child: NNG's
	 * threads make this process unfit to fork much; the child execs only). */
	t0 = bench_now_us();
	cli_pid = fork();
	if (cli_pid < 0)
		bench_die("fork: %s", strerror(errno));
	if (cli_pid == 0) {
		env.hostd = 0;
		env.dir[0] = '\0'; /* the parent cleans up */
		if (unshare(CLONE_NEWNET) < 0)
			bench_die("unshare: %s", strerror(errno));
		run_cli(n);
		fflush(stdout);
		_exit(0);
	}
	if (waitpid(cli_pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		bench_die("the command-line run failed");
	cli_us = bench_now_us() - t0;
	printf("ratio: %.1fx (cli %.0f ms / hostd %.0f ms; goal >= 5x)\n", cli_us / hostd_us,
	       cli_us / 1000, hostd_us / 1000);
	return 0; /* at_exit cleans up */
}
