/* hostd/netlink.c against the running kernel (root; SKIP otherwise).
 *
 * The process moves into its own mount namespace once, and every test
 * starts in a NEW network namespace (unshare(CLONE_NEWNET)) with a sysfs
 * mounted for it, so nothing touches the host's links and all traffic
 * stays inside namespaces the test made. Results are checked through the
 * module and independently: `ip -d -j link` / `ip -j addr` (run as child
 * processes in the same netns) and /sys/class/net. Fixtures the module must
 * refuse (foreign interfaces) are made with `ip` and plain TUNSETIFF. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>

#include <cmocka.h>

#include "hostd/netlink.h"
#include "shared/log.h"

#define UID_A 200100u
#define UID_B 200101u
#define OUT_MAX (1 << 20)
#define LIST_MAX 8192

static bool can_net;
static char skip_reason[256];
static struct net_ctx *ctx;

/* ---- helpers ------------------------------------------------------------------ */

static void require_net(void)
{
	if (!can_net) {
		print_message("skip: %s\n", skip_reason);
		skip();
	}
}

static __attribute__((format(printf, 3, 4))) void fmt(char *buf, size_t len, const char *f, ...)
{
	va_list ap;
	int n;

	va_start(ap, f);
	n = vsnprintf(buf, len, f, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len)
		abort();
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run argv (optionally inside the netns nsfd); stdout captured into a
 * malloc'd string when out != NULL. Returns the exit status (-1 on
 * failure to run). */
static int run_in(int nsfd, char **out, char *const argv[])
{
	int pfd[2], status;
	size_t n = 0;
	char *buf = NULL;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		if (nsfd >= 0 && setns(nsfd, CLONE_NEWNET) < 0)
			_exit(126);
		dup2(out ? pfd[1] : devnull, 1);
		dup2(devnull, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(pfd[1]);
	if (out) {
		buf = malloc(OUT_MAX);
		if (buf) {
			ssize_t r;
			while (n < OUT_MAX - 1 && (r = read(pfd[0], buf + n, OUT_MAX - 1 - n)) > 0)
				n += (size_t)r;
			buf[n] = '\0';
		}
		*out = buf;
	}
	close(pfd[0]);
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

#define RUN(...) run_in(-1, NULL, (char *const[]){ __VA_ARGS__, NULL })
#define RUN_NS(fd, ...) run_in(fd, NULL, (char *const[]){ __VA_ARGS__, NULL })

/* `ip -d -j link show` / `ip -j addr show`, parsed. */
static json_t *ip_json(const char *what)
{
	char *out = NULL;
	json_t *j;
	int r;

	if (strcmp(what, "link") == 0)
		r = run_in(-1, &out, (char *const[]){ "ip", "-d", "-j", "link", "show", NULL });
	else
		r = run_in(-1, &out, (char *const[]){ "ip", "-j", "addr", "show", NULL });
	assert_int_equal(r, 0);
	assert_non_null(out);
	j = json_loads(out, 0, NULL);
	free(out);
	assert_non_null(j);
	return j;
}

static json_t *ip_find(json_t *arr, const char *name)
{
	size_t i;
	json_t *v;

	json_array_foreach(arr, i, v)
	{
		const char *n = json_string_value(json_object_get(v, "ifname"));
		if (n && strcmp(n, name) == 0)
			return v;
	}
	return NULL;
}

static bool ip_has_flag(json_t *link, const char *flag)
{
	size_t i;
	json_t *v;

	json_array_foreach(json_object_get(link, "flags"), i, v)
	{
		if (strcmp(json_string_value(v), flag) == 0)
			return true;
	}
	return false;
}

static const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted, comma-joined names in /sys/class/net. */
static void sys_links(char *buf, size_t len)
{
	char *names[512];
	size_t n = 0, o = 0;
	struct dirent *de;
	DIR *d = opendir("/sys/class/net");

	assert_non_null(d);
	while ((de = readdir(d)) && n < 512)
		if (de->d_name[0] != '.')
			names[n++] = strdup(de->d_name);
	closedir(d);
	qsort(names, n, sizeof(names[0]), cmp_str);
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		int w = snprintf(buf + o, len - o, "%s%s", i ? "," : "", names[i]);
		assert_true(w > 0 && (size_t)w < len - o);
		o += (size_t)w;
		free(names[i]);
	}
}

static bool sys_read(const char *name, const char *attr, char *buf, size_t len)
{
	char path[256];
	FILE *f;

	fmt(path, sizeof(path), "/sys/class/net/%s/%s", name, attr);
	if (!(f = fopen(path, "r")))
		return false;
	if (!fgets(buf, (int)len, f)) {
		fclose(f);
		return false;
	}
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	return true;
}

static bool sys_exists(const char *name)
{
	char path[256];
	struct stat st;

	fmt(path, sizeof(path), "/sys/class/net/%s", name);
	return stat(path, &st) == 0;
}

static int sys_ifindex(const char *name)
{
	char buf[32];

	if (!sys_read(name, "ifindex", buf, sizeof(buf)))
		return -1;
	return atoi(buf);
}

/* A persistent TAP made by "someone else" (no vmlet alias). */
static void make_foreign_tap(const char *name)
{
	struct ifreq ifr;
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

	assert_true(fd >= 0);
	memset(&ifr, 0, sizeof(ifr));
	fmt(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	assert_int_equal(ioctl(fd, TUNSETIFF, &ifr), 0);
	assert_int_equal(ioctl(fd, TUNSETPERSIST, 1UL), 0);
	close(fd);
}

static void expect_code(int r, const struct vmlet_err *err, int code)
{
	if (r == 0 || err->code != code)
		print_message("expected %d, got r=%d code=%d msg=%s\n", code, r, err->code, err->msg);
	assert_int_equal(r, -1);
	assert_int_equal(err->code, code);
	assert_true(err->msg[0] != '\0');
}

static void ok(int r, const struct vmlet_err *err)
{
	if (r != 0)
		print_message("unexpected error %d: %s\n", err->code, err->msg);
	assert_int_equal(r, 0);
}

/* ---- fixtures -------------------------------------------------------------------- */

static int group_setup(void **state)
{
	(void)state;
	vlog_set_level(VLOG_WARN);
	if (geteuid() != 0) {
		fmt(skip_reason, sizeof(skip_reason), "needs root (creates network namespaces)");
		return 0;
	}
	if (access("/dev/net/tun", R_OK | W_OK) != 0) {
		fmt(skip_reason, sizeof(skip_reason), "/dev/net/tun unusable: %s", strerror(errno));
		return 0;
	}
	/* A private mount namespace, so each test can mount the sysfs of its
	 * own network namespace on /sys without the host seeing it. */
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		fmt(skip_reason, sizeof(skip_reason), "no private mount namespace: %s",
		    strerror(errno));
		return 0;
	}
	can_net = true;
	return 0;
}

static int fresh_netns(void **state)
{
	struct vmlet_err err;

	(void)state;
	if (!can_net)
		return 0;
	if (unshare(CLONE_NEWNET) < 0) {
		fmt(skip_reason, sizeof(skip_reason), "unshare(CLONE_NEWNET): %s", strerror(errno));
		can_net = false;
		return 0;
	}
	umount2("/sys", MNT_DETACH);
	if (mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
		fmt(skip_reason, sizeof(skip_reason), "mounting sysfs: %s", strerror(errno));
		can_net = false;
		return 0;
	}
	if (net_open(&ctx, &err) < 0) {
		fprintf(stderr, "net_open: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static int close_ctx(void **state)
{
	(void)state;
	net_close(ctx);
	ctx = NULL;
	return 0;
}

/* ---- pure derivations ------------------------------------------------------------------ */

static void test_names_and_macs(void **state)
{
	char name[NET_IFNAME_MAX], mac_s[NET_MAC_STR];
	uint8_t mac[NET_MAC_LEN], mac2[NET_MAC_LEN];
	struct vmlet_err err;

	(void)state;
	ok(net_bridge_name(1, name, &err), &err);
	assert_string_equal(name, "br-tenant-1");
	ok(net_bridge_name(4094, name, &err), &err);
	assert_string_equal(name, "br-tenant-4094");
	assert_int_equal(strlen(name), 14);
	ok(net_tap_name(7, 0, name, &err), &err);
	assert_string_equal(name, "tn7i0");
	ok(net_tap_name(4094, 65535, name, &err), &err);
	assert_string_equal(name, "tn4094i65535");

	/* Out of range, including indexes whose name would overflow IFNAMSIZ. */
	expect_code(net_bridge_name(0, name, &err), &err, VMLET_E_INVALID);
	assert_non_null(strstr(err.msg, "net_id"));
	expect_code(net_bridge_name(4095, name, &err), &err, VMLET_E_INVALID);
	expect_code(net_tap_name(0, 1, name, &err), &err, VMLET_E_INVALID);
	expect_code(net_tap_name(4095, 1, name, &err), &err, VMLET_E_INVALID);
	expect_code(net_tap_name(7, 65536, name, &err), &err, VMLET_E_INVALID);
	assert_non_null(strstr(err.msg, "index"));
	expect_code(net_tap_name(4094, 100000000u, name, &err), &err, VMLET_E_INVALID);
	expect_code(net_tap_name(4094, UINT32_MAX, name, &err), &err, VMLET_E_INVALID);
	expect_code(net_guest_mac(7, 65536, mac, &err), &err, VMLET_E_INVALID);
	expect_code(net_tap_mac(0, 0, mac, &err), &err, VMLET_E_INVALID);
	expect_code(net_bridge_mac(4095, mac, &err), &err, VMLET_E_INVALID);

	/* The derivation: 02:<role>:<net_id be16>:<index be16>. */
	ok(net_guest_mac(7, 1, mac, &err), &err);
	net_mac_format(mac, mac_s);
	assert_string_equal(mac_s, "02:fc:00:07:00:01");
	ok(net_tap_mac(7, 1, mac, &err), &err);
	net_mac_format(mac, mac_s);
	assert_string_equal(mac_s, "02:fd:00:07:00:01");
	ok(net_bridge_mac(7, mac, &err), &err);
	net_mac_format(mac, mac_s);
	assert_string_equal(mac_s, "02:fe:00:07:00:00");
	ok(net_guest_mac(4094, 65535, mac, &err), &err);
	net_mac_format(mac, mac_s);
	assert_string_equal(mac_s, "02:fc:0f:fe:ff:ff");
	/* Stable, unicast + locally administered, distinct per (net, index). */
	ok(net_guest_mac(258, 513, mac, &err), &err);
	ok(net_guest_mac(258, 513, mac2, &err), &err);
	assert_memory_equal(mac, mac2, NET_MAC_LEN);
	assert_int_equal(mac[0] & 1, 0);
	assert_int_equal(mac[0] & 2, 2);
	ok(net_guest_mac(513, 258, mac2, &err), &err);
	assert_memory_not_equal(mac, mac2, NET_MAC_LEN);
	for (unsigned net = 1; net <= 4094; net += 97)
		for (unsigned i = 0; i <= 65535; i += 4099) {
			ok(net_guest_mac(net, i, mac, &err), &err);
			assert_int_equal(((unsigned)mac[2] << 8) | mac[3], net);
			assert_int_equal(((unsigned)mac[4] << 8) | mac[5], i);
			ok(net_tap_mac(net, i, mac2, &err), &err);
			assert_memory_not_equal(mac, mac2, NET_MAC_LEN);
		}
}

static void test_gateway_and_bad_cidrs(void **state)
{
	static const char *bad[] = {
		"10.70.0.1/24",   /* host bits */
		"8.8.8.0/24",     /* public */
		"10.0.0.0/8",     /* too large */
		"10.70.0.0/30",   /* too small */
		"10.70.0.0",      /* no prefix */
		"10.70.0.0/024",  /* leading zero */
		"10.070.0.0/24",
		" 10.70.0.0/24",
		"10.70.0.0/24 ",
		"",
		"br-tenant-7",
		"10.70.0.0/24;rm -rf /",
	};
	struct vmlet_err err;
	uint32_t gw;
	unsigned prefix;

	(void)state;
	ok(net_gateway("10.70.0.0/24", &gw, &prefix, &err), &err);
	assert_int_equal(gw, 0x0a460001u);
	assert_int_equal(prefix, 24);
	ok(net_gateway("192.168.8.0/29", &gw, &prefix, &err), &err);
	assert_int_equal(gw, 0xc0a80801u);
	assert_int_equal(prefix, 29);
	ok(net_gateway("172.16.0.0/16", &gw, &prefix, &err), &err);
	assert_int_equal(gw, 0xac100001u);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_code(net_gateway(bad[i], &gw, &prefix, &err), &err, VMLET_E_INVALID);
	expect_code(net_gateway(NULL, &gw, &prefix, &err), &err, VMLET_E_INVALID);
}

/* ---- bridges and TAPs ---------------------------------------------------------------------- */

static void test_bridge_ensure(void **state)
{
	struct vmlet_err err;
	struct net_state st;
	int ifindex = 0, again = 0;
	json_t *links, *addrs, *br;

	(void)state;
	require_net();
	ok(net_bridge_ensure(ctx, 7, "10.70.0.0/24", &ifindex, &err), &err);
	assert_true(ifindex > 0);
	ok(net_bridge_ensure(ctx, 7, "10.70.0.0/24", &again, &err), &err);
	assert_int_equal(again, ifindex);

	/* Through the module. */
	ok(net_read(ctx, 7, &st, &err), &err);
	assert_true(st.bridge_exists);
	assert_int_equal(st.bridge.role, NET_ROLE_BRIDGE);
	assert_int_equal(st.bridge.net_id, 7);
	assert_int_equal(st.bridge.ifindex, ifindex);
	assert_string_equal(st.bridge.kind, "bridge");
	assert_string_equal(st.bridge.alias, "vmlet:tenant=7");
	assert_true(st.bridge.up);
	assert_int_equal(st.naddrs, 1);
	assert_int_equal(st.addrs[0].addr, 0x0a460001u);
	assert_int_equal(st.addrs[0].prefix, 24);
	assert_int_equal(st.nlinks, 0);
	net_state_free(&st);

	/* Independently: ip and sysfs of this netns. */
	links = ip_json("link");
	br = ip_find(links, "br-tenant-7");
	assert_non_null(br);
	assert_true(ip_has_flag(br, "UP"));
	assert_string_equal(jstr(br, "ifalias"), "vmlet:tenant=7");
	assert_string_equal(jstr(br, "address"), "02:fe:00:07:00:00");
	assert_string_equal(jstr(json_object_get(br, "linkinfo"), "info_kind"), "bridge");
	json_decref(links);
	addrs = ip_json("addr");
	br = ip_find(addrs, "br-tenant-7");
	assert_non_null(br);
	json_t *ai = json_object_get(br, "addr_info");
	size_t n4 = 0, i;
	json_t *a;
	json_array_foreach(ai, i, a)
	{
		if (strcmp(jstr(a, "family"), "inet") != 0)
			continue;
		n4++;
		assert_string_equal(jstr(a, "local"), "10.70.0.1");
		assert_int_equal(json_integer_value(json_object_get(a, "prefixlen")), 24);
		assert_string_equal(jstr(a, "broadcast"), "10.70.0.255");
	}
	assert_int_equal(n4, 1);
	json_decref(addrs);
	assert_int_equal(sys_ifindex("br-tenant-7"), ifindex);
	assert_true(sys_exists("br-tenant-7/bridge"));

	/* An extra address put there by someone is reported, not deleted; a
	 * deleted gateway comes back; a downed bridge comes back up. */
	assert_int_equal(RUN("ip", "addr", "add", "10.99.0.1/24", "dev", "br-tenant-7"), 0);
	assert_int_equal(RUN("ip", "addr", "del", "10.70.0.1/24", "dev", "br-tenant-7"), 0);
	assert_int_equal(RUN("ip", "link", "set", "br-tenant-7", "down"), 0);
	ok(net_bridge_ensure(ctx, 7, "10.70.0.0/24", &again, &err), &err);
	assert_int_equal(again, ifindex);
	ok(net_read(ctx, 7, &st, &err), &err);
	assert_true(st.bridge.up);
	assert_int_equal(st.naddrs, 2);
	bool gw = false, extra = false;
	for (size_t k = 0; k < st.naddrs; k++) {
		gw |= st.addrs[k].addr == 0x0a460001u && st.addrs[k].prefix == 24;
		extra |= st.addrs[k].addr == 0x0a630001u;
	}
	assert_true(gw && extra);
	net_state_free(&st);
	ok(net_bridge_remove(ctx, 7, &err), &err);
	assert_false(sys_exists("br-tenant-7"));
}

static void check_tap_ip(json_t *links, const char *name, const char *master, unsigned uid,
			 const char *mac, const char *alias)
{
	json_t *l = ip_find(links, name), *info, *data;

	assert_non_null(l);
	assert_true(ip_has_flag(l, "UP"));
	assert_string_equal(jstr(l, "master"), master);
	assert_string_equal(jstr(l, "address"), mac);
	assert_string_equal(jstr(l, "ifalias"), alias);
	info = json_object_get(l, "linkinfo");
	assert_string_equal(jstr(info, "info_kind"), "tun");
	data = json_object_get(info, "info_data");
	assert_string_equal(jstr(data, "type"), "tap");
	assert_true(json_is_true(json_object_get(data, "persist")));
	assert_true(json_is_true(json_object_get(data, "vnet_hdr")));
	assert_false(json_is_true(json_object_get(data, "pi")));
	assert_int_equal(json_integer_value(json_object_get(data, "user")), uid);
	assert_int_equal(json_integer_value(json_object_get(data, "group")), uid);
}

static void test_taps(void **state)
{
	char buf[64];
	struct vmlet_err err;
	struct net_state st;
	int br = 0, t0 = 0, t1 = 0, again = 0;
	json_t *links;

	(void)state;
	require_net();
	/* No bridge yet: 404, nothing created. */
	expect_code(net_tap_ensure(ctx, 7, 0, UID_A, UID_A, &t0, &err), &err, VMLET_E_NOT_FOUND);
	assert_false(sys_exists("tn7i0"));

	ok(net_bridge_ensure(ctx, 7, "10.70.0.0/24", &br, &err), &err);
	ok(net_tap_ensure(ctx, 7, 0, UID_A, UID_A, &t0, &err), &err);
	ok(net_tap_ensure(ctx, 7, 1, UID_B, UID_B, &t1, &err), &err);
	assert_true(t0 > 0 && t1 > 0 && t0 != t1);
	ok(net_tap_ensure(ctx, 7, 0, UID_A, UID_A, &again, &err), &err);
	assert_int_equal(again, t0);

	ok(net_read(ctx, 7, &st, &err), &err);
	assert_int_equal(st.nlinks, 2);
	for (size_t i = 0; i < 2; i++) {
		const struct net_link *l = &st.links[i];
		assert_string_equal(l->name, i == 0 ? "tn7i0" : "tn7i1");
		assert_int_equal(l->ifindex, i == 0 ? t0 : t1);
		assert_int_equal(l->role, NET_ROLE_TAP);
		assert_int_equal(l->net_id, 7);
		assert_int_equal(l->index, i);
		assert_int_equal(l->master, br);
		assert_true(l->up && l->tap && l->persist && l->has_owner && l->has_group);
		assert_int_equal(l->owner, i == 0 ? UID_A : UID_B);
		assert_int_equal(l->owner_group, i == 0 ? UID_A : UID_B);
		assert_string_equal(l->kind, "tun");
	}
	net_state_free(&st);

	links = ip_json("link");
	check_tap_ip(links, "tn7i0", "br-tenant-7", UID_A, "02:fd:00:07:00:00", "vmlet:tap=7/0");
	check_tap_ip(links, "tn7i1", "br-tenant-7", UID_B, "02:fd:00:07:00:01", "vmlet:tap=7/1");
	json_decref(links);
	assert_true(sys_read("tn7i0", "owner", buf, sizeof(buf)));
	assert_string_equal(buf, "200100");
	assert_true(sys_read("tn7i1", "group", buf, sizeof(buf)));
	assert_string_equal(buf, "200101");
	assert_true(sys_exists("br-tenant-7/brif/tn7i0"));
	assert_true(sys_exists("br-tenant-7/brif/tn7i1"));

	/* Tampering converges back: moved off the bridge, downed, re-owned. */
	assert_int_equal(RUN("ip", "link", "set", "tn7i1", "nomaster", "down"), 0);
	ok(net_tap_ensure(ctx, 7, 1, UID_A, UID_A, &again, &err), &err);
	assert_int_equal(again, t1);
	assert_true(sys_exists("br-tenant-7/brif/tn7i1"));
	assert_true(sys_read("tn7i1", "owner", buf, sizeof(buf)));
	assert_string_equal(buf, "200100");

	ok(net_tap_remove(ctx, 7, 1, &err), &err);
	assert_false(sys_exists("tn7i1"));
	ok(net_tap_remove(ctx, 7, 1, &err), &err); /* idempotent */
	ok(net_bridge_remove(ctx, 7, &err), &err);
	assert_false(sys_exists("tn7i0"));
	assert_false(sys_exists("br-tenant-7"));
}

static void test_tap_open_fd(void **state)
{
	struct vmlet_err err;
	struct ifreq ifr;
	int fd = -1, fd2 = -1;
	char buf[32];

	(void)state;
	require_net();
	expect_code(net_tap_open_fd(ctx, 7, 0, &fd, &err), &err, VMLET_E_NOT_FOUND);
	assert_int_equal(fd, -1);
	assert_false(sys_exists("tn7i0")); /* TUNSETIFF did not create one */
	ok(net_bridge_ensure(ctx, 7, "10.70.0.0/24", NULL, &err), &err);
	ok(net_tap_ensure(ctx, 7, 0, UID_A, UID_A, NULL, &err), &err);
	ok(net_tap_open_fd(ctx, 7, 0, &fd, &err), &err);
	assert_true(fd >= 0);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	memset(&ifr, 0, sizeof(ifr));
	assert_int_equal(ioctl(fd, TUNGETIFF, &ifr), 0);
	assert_string_equal(ifr.ifr_name, "tn7i0");
	assert_true(ifr.ifr_flags & IFF_TAP);
	assert_true(ifr.ifr_flags & IFF_NO_PI);
	assert_true(ifr.ifr_flags & IFF_VNET_HDR);
	assert_true(ifr.ifr_flags & IFF_PERSIST);
	/* Attached: the carrier is on now. */
	assert_true(sys_read("tn7i0", "carrier", buf, sizeof(buf)));
	assert_string_equal(buf, "1");
	/* One holder at a time; re-owning while held is refused too. */
	expect_code(net_tap_open_fd(ctx, 7, 0, &fd2, &err), &err, VMLET_E_CONFLICT);
	assert_int_equal(fd2, -1);
	expect_code(net_tap_ensure(ctx, 7, 0, UID_B, UID_B, NULL, &err), &err, VMLET_E_CONFLICT);
	ok(net_tap_ensure(ctx, 7, 0, UID_A, UID_A, NULL, &err), &err); /* same owner: fine */
	close(fd);
	ok(net_tap_open_fd(ctx, 7, 0, &fd2, &err), &err);
	close(fd2);
	assert_true(sys_exists("tn7i0")); /* persistent across closes */
	expect_code(net_tap_open_fd(ctx, 7, 65536, &fd2, &err), &err, VMLET_E_INVALID);
	ok(net_bridge_remove(ctx, 7, &err), &err);
}

static void test_foreign_refused(void **state)
{
	char before[LIST_MAX], after[LIST_MAX], buf[64];
	struct vmlet_err err;
	struct net_state st;
	struct net_link *ours = NULL;
	size_t nours = 0;
	int fd = -1, idx;
	json_t *links, *l;

	(void)state;
	require_net();
	/* A veth named like tenant 8's bridge, a bridge without our alias
	 * named like tenant 9's, a TAP without alias named like one of ours,
	 * and a veth carrying our TAP alias under a name that is not ours. */
	assert_int_equal(RUN("ip", "link", "add", "br-tenant-8", "type", "veth", "peer", "name",
			     "x8"),
			 0);
	assert_int_equal(RUN("ip", "link", "add", "br-tenant-9", "type", "bridge"), 0);
	assert_int_equal(RUN("ip", "link", "set", "br-tenant-9", "alias", "vmlet:something"), 0);
	assert_int_equal(RUN("ip", "link", "add", "x7", "type", "veth", "peer", "name", "y7"), 0);
	assert_int_equal(RUN("ip", "link", "set", "x7", "alias", "vmlet:tap=7/6"), 0);
	make_foreign_tap("tn7i5");
	idx = sys_ifindex("br-tenant-8");
	sys_links(before, sizeof(before));

	expect_code(net_bridge_ensure(ctx, 8, "10.80.0.0/24", NULL, &err), &err, VMLET_E_CONFLICT);
	assert_non_null(strstr(err.msg, "br-tenant-8"));
	assert_non_null(strstr(err.msg, "veth"));
	expect_code(net_bridge_ensure(ctx, 9, "10.90.0.0/24", NULL, &err), &err, VMLET_E_CONFLICT);
	expect_code(net_bridge_remove(ctx, 8, &err), &err, VMLET_E_CONFLICT);
	expect_code(net_bridge_remove(ctx, 9, &err), &err, VMLET_E_CONFLICT);
	expect_code(net_tap_ensure(ctx, 8, 0, UID_A, UID_A, NULL, &err), &err, VMLET_E_CONFLICT);

	ok(net_bridge_ensure(ctx, 7, "10.70.0.0/24", NULL, &err), &err);
	expect_code(net_tap_ensure(ctx, 7, 5, UID_A, UID_A, NULL, &err), &err, VMLET_E_CONFLICT);
	expect_code(net_tap_open_fd(ctx, 7, 5, &fd, &err), &err, VMLET_E_CONFLICT);
	assert_int_equal(fd, -1);
	expect_code(net_tap_remove(ctx, 7, 5, &err), &err, VMLET_E_CONFLICT);

	/* Untouched: same links, the veth still a veth, down, unaddressed,
	 * no alias; the foreign TAP still unowned and unattached. */
	ok(net_bridge_remove(ctx, 7, &err), &err);
	sys_links(after, sizeof(after));
	assert_string_equal(before, after);
	assert_int_equal(sys_ifindex("br-tenant-8"), idx);
	links = ip_json("link");
	l = ip_find(links, "br-tenant-8");
	assert_string_equal(jstr(json_object_get(l, "linkinfo"), "info_kind"), "veth");
	assert_false(ip_has_flag(l, "UP"));
	assert_null(json_object_get(l, "ifalias"));
	l = ip_find(links, "tn7i5");
	assert_null(json_object_get(l, "ifalias"));
	assert_null(json_object_get(l, "master"));
	l = ip_find(links, "br-tenant-9");
	assert_string_equal(jstr(l, "ifalias"), "vmlet:something");
	json_decref(links);
	assert_false(sys_read("tn7i5", "owner", buf, sizeof(buf)) && strcmp(buf, "-1") != 0);

	/* None of them counts as ours; net_read shows the foreign TAP by name. */
	ok(net_list_ours(ctx, &ours, &nours, &err), &err);
	assert_int_equal(nours, 0);
	free(ours);
	ok(net_read(ctx, 7, &st, &err), &err);
	assert_false(st.bridge_exists);
	assert_int_equal(st.nlinks, 1);
	assert_string_equal(st.links[0].name, "tn7i5");
	assert_int_equal(st.links[0].role, NET_ROLE_FOREIGN);
	net_state_free(&st);
	ok(net_read(ctx, 8, &st, &err), &err);
	assert_true(st.bridge_exists);
	assert_int_equal(st.bridge.role, NET_ROLE_FOREIGN);
	net_state_free(&st);
}

/* A bridge with our name and MAC but no alias is what a bridge_ensure
 * that died between create and alias leaves: completed, not refused. */
static void test_half_created_bridge_completed(void **state)
{
	struct vmlet_err err;
	int ifindex = 0;
	json_t *links, *l;

	(void)state;
	require_net();
	assert_int_equal(RUN("ip", "link", "add", "br-tenant-12", "address", "02:fe:00:0c:00:00",
			     "type", "bridge"),
			 0);
	ok(net_bridge_ensure(ctx, 12, "10.12.0.0/24", &ifindex, &err), &err);
	assert_int_equal(ifindex, sys_ifindex("br-tenant-12"));
	links = ip_json("link");
	l = ip_find(links, "br-tenant-12");
	assert_string_equal(jstr(l, "ifalias"), "vmlet:tenant=12");
	json_decref(links);
	/* Same without our MAC: foreign. */
	assert_int_equal(RUN("ip", "link", "add", "br-tenant-13", "address", "02:fe:00:0c:00:00",
			     "type", "bridge"),
			 0);
	expect_code(net_bridge_ensure(ctx, 13, "10.13.0.0/24", NULL, &err), &err,
		    VMLET_E_CONFLICT);
	ok(net_bridge_remove(ctx, 12, &err), &err);
	assert_false(sys_exists("br-tenant-12"));
}

static void test_bad_input_changes_nothing(void **state)
{
	static const char *bad_cidrs[] = { "10.70.0.1/24", "8.8.8.0/24", "10.0.0.0/8",
					   "10.70.0.0/30", "garbage", "" };
	char before[LIST_MAX], after[LIST_MAX];
	struct vmlet_err err;
	int fd = -1;

	(void)state;
	require_net();
	sys_links(before, sizeof(before));
	expect_code(net_bridge_ensure(ctx, 0, "10.70.0.0/24", NULL, &err), &err, VMLET_E_INVALID);
	expect_code(net_bridge_ensure(ctx, 4095, "10.70.0.0/24", NULL, &err), &err,
		    VMLET_E_INVALID);
	expect_code(net_bridge_ensure(ctx, UINT32_MAX, "10.70.0.0/24", NULL, &err), &err,
		    VMLET_E_INVALID);
	for (size_t i = 0; i < sizeof(bad_cidrs) / sizeof(bad_cidrs[0]); i++) {
		expect_code(net_bridge_ensure(ctx, 7, bad_cidrs[i], NULL, &err), &err,
			    VMLET_E_INVALID);
		assert_non_null(strstr(err.msg, "subnet"));
	}
	expect_code(net_bridge_ensure(ctx, 7, NULL, NULL, &err), &err, VMLET_E_INVALID);
	expect_code(net_bridge_remove(ctx, 0, &err), &err, VMLET_E_INVALID);
	expect_code(net_bridge_remove(ctx, 4095, &err), &err, VMLET_E_INVALID);
	sys_links(after, sizeof(after));
	assert_string_equal(before, after);

	ok(net_bridge_ensure(ctx, 7, "10.70.0.0/24", NULL, &err), &err);
	sys_links(before, sizeof(before));
	expect_code(net_tap_ensure(ctx, 7, 65536, UID_A, UID_A, NULL, &err), &err, VMLET_E_INVALID);
	expect_code(net_tap_ensure(ctx, 7, 100000000u, UID_A, UID_A, NULL, &err), &err,
		    VMLET_E_INVALID);
	expect_code(net_tap_ensure(ctx, 4095, 0, UID_A, UID_A, NULL, &err), &err, VMLET_E_INVALID);
	expect_code(net_tap_ensure(ctx, 0, 0, UID_A, UID_A, NULL, &err), &err, VMLET_E_INVALID);
	/* Owners: root, a login user, "no owner" (-1) are not per-instance ids. */
	expect_code(net_tap_ensure(ctx, 7, 0, 0, UID_A, NULL, &err), &err, VMLET_E_INVALID);
	assert_non_null(strstr(err.msg, "owner_uid"));
	expect_code(net_tap_ensure(ctx, 7, 0, 1000, UID_A, NULL, &err), &err, VMLET_E_INVALID);
	expect_code(net_tap_ensure(ctx, 7, 0, (uid_t)-1, UID_A, NULL, &err), &err,
		    VMLET_E_INVALID);
	expect_code(net_tap_ensure(ctx, 7, 0, UID_A, 0, NULL, &err), &err, VMLET_E_INVALID);
	assert_non_null(strstr(err.msg, "owner_gid"));
	expect_code(net_tap_ensure(ctx, 7, 0, UID_A, (gid_t)-1, NULL, &err), &err,
		    VMLET_E_INVALID);
	expect_code(net_tap_remove(ctx, 7, 65536, &err), &err, VMLET_E_INVALID);
	expect_code(net_tap_open_fd(ctx, 4095, 0, &fd, &err), &err, VMLET_E_INVALID);
	/* A TAP for net 8 cannot hang on tenant 7's bridge: it needs br-tenant-8. */
	expect_code(net_tap_ensure(ctx, 8, 0, UID_A, UID_A, NULL, &err), &err, VMLET_E_NOT_FOUND);
	sys_links(after, sizeof(after));
	assert_string_equal(before, after);
	ok(net_bridge_remove(ctx, 7, &err), &err);
}

static void test_remove_leaves_nothing(void **state)
{
	char before[LIST_MAX], after[LIST_MAX];
	struct vmlet_err err;

	(void)state;
	require_net();
	sys_links(before, sizeof(before));
	ok(net_bridge_ensure(ctx, 7, "10.70.0.0/24", NULL, &err), &err);
	ok(net_bridge_ensure(ctx, 8, "10.80.0.0/24", NULL, &err), &err);
	for (unsigned i = 0; i < 4; i++)
		ok(net_tap_ensure(ctx, 7, i, UID_A + i, UID_A + i, NULL, &err), &err);
	ok(net_tap_ensure(ctx, 8, 0, UID_B, UID_B, NULL, &err), &err);
	/* An orphan TAP of net 7 that is off the bridge goes too. */
	assert_int_equal(RUN("ip", "link", "set", "tn7i3", "nomaster"), 0);
	/* A foreign port on the bridge blocks the removal, which then changes nothing. */
	assert_int_equal(RUN("ip", "link", "add", "v7", "type", "veth", "peer", "name", "w7"), 0);
	assert_int_equal(RUN("ip", "link", "set", "v7", "master", "br-tenant-7"), 0);
	sys_links(after, sizeof(after));
	expect_code(net_bridge_remove(ctx, 7, &err), &err, VMLET_E_CONFLICT);
	assert_non_null(strstr(err.msg, "v7"));
	sys_links(before, sizeof(before));
	assert_string_equal(before, after);
	/* So does our TAP of another tenant moved onto it. */
	assert_int_equal(RUN("ip", "link", "del", "v7"), 0);
	assert_int_equal(RUN("ip", "link", "set", "tn8i0", "master", "br-tenant-7"), 0);
	expect_code(net_bridge_remove(ctx, 7, &err), &err, VMLET_E_CONFLICT);
	assert_true(sys_exists("br-tenant-7"));
	ok(net_tap_ensure(ctx, 8, 0, UID_B, UID_B, NULL, &err), &err); /* moved back */
	assert_true(sys_exists("br-tenant-8/brif/tn8i0"));

	ok(net_bridge_remove(ctx, 7, &err), &err);
	for (unsigned i = 0; i < 4; i++) {
		char name[NET_IFNAME_MAX];
		fmt(name, sizeof(name), "tn7i%u", i);
		assert_false(sys_exists(name));
	}
	assert_false(sys_exists("br-tenant-7"));
	assert_true(sys_exists("tn8i0"));
	ok(net_bridge_remove(ctx, 7, &err), &err); /* idempotent */
	ok(net_bridge_remove(ctx, 8, &err), &err);
	sys_links(after, sizeof(after));
	assert_string_equal(after, "lo");
}

static void test_list_ours_and_remove_links(void **state)
{
	struct vmlet_err err;
	struct net_link *ours = NULL, stale;
	size_t n = 0;

	(void)state;
	require_net();
	ok(net_bridge_ensure(ctx, 20, "10.20.0.0/24", NULL, &err), &err);
	ok(net_bridge_ensure(ctx, 21, "10.21.0.0/24", NULL, &err), &err);
	ok(net_tap_ensure(ctx, 20, 3, UID_A, UID_A, NULL, &err), &err);
	ok(net_tap_ensure(ctx, 21, 0, UID_B, UID_B, NULL, &err), &err);
	assert_int_equal(RUN("ip", "link", "add", "x1", "type", "veth", "peer", "name", "x2"), 0);
	ok(net_list_ours(ctx, &ours, &n, &err), &err);
	assert_int_equal(n, 4);
	assert_string_equal(ours[0].name, "br-tenant-20");
	assert_int_equal(ours[0].role, NET_ROLE_BRIDGE);
	assert_string_equal(ours[2].name, "tn20i3");
	assert_int_equal(ours[2].role, NET_ROLE_TAP);
	assert_int_equal(ours[2].net_id, 20);
	assert_int_equal(ours[2].index, 3);

	/* A stale entry (its ifindex now someone else's) refuses the lot. */
	stale = ours[3];
	stale.ifindex = sys_ifindex("x1");
	expect_code(net_remove_links(ctx, &stale, 1, &err), &err, VMLET_E_CONFLICT);
	assert_true(sys_exists("x1"));

	/* The reaper's batch: everything of ours in one go. */
	ok(net_remove_links(ctx, ours, n, &err), &err);
	free(ours);
	ok(net_list_ours(ctx, &ours, &n, &err), &err);
	assert_int_equal(n, 0);
	assert_null(ours);
	assert_true(sys_exists("x1") && sys_exists("x2"));
	/* Gone already: nothing to do. */
	ok(net_remove_links(ctx, &stale, 0, &err), &err);
}

/* ---- traffic: a veth "guest" in its own netns pings the gateway ------------------------------ */

static uint16_t icmp_sum(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t s = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		s += (uint32_t)p[len - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return htons((uint16_t)~s);
}

/* In a child inside the guest netns: echo requests to dst until a reply
 * from dst comes back (up to `tries` one-second waits). Exit 0 on reply. */
static int ping_from(int nsfd, const char *dst, int tries)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		struct sockaddr_in to = { .sin_family = AF_INET };
		struct timeval tv = { .tv_sec = 1 };
		int s;

		if (setns(nsfd, CLONE_NEWNET) < 0)
			_exit(2);
		s = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
		if (s < 0 || setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
			_exit(3);
		inet_pton(AF_INET, dst, &to.sin_addr);
		for (int t = 0; t < tries; t++) {
			struct icmphdr req = { .type = ICMP_ECHO };
			uint8_t buf[1500];
			ssize_t n;

			req.un.echo.id = htons(0x766d);
			req.un.echo.sequence = htons((uint16_t)t);
			req.checksum = icmp_sum(&req, sizeof(req));
			if (sendto(s, &req, sizeof(req), 0, (struct sockaddr *)&to, sizeof(to)) < 0)
				continue;
			while ((n = recv(s, buf, sizeof(buf), 0)) > 0) {
				const struct iphdr *ip = (const struct iphdr *)buf;
				const struct icmphdr *rep;
				if ((size_t)n < sizeof(*ip) || (size_t)n < ip->ihl * 4u + sizeof(*rep))
					continue;
				rep = (const struct icmphdr *)(buf + ip->ihl * 4);
				if (ip->saddr == to.sin_addr.s_addr && rep->type == ICMP_ECHOREPLY &&
				    rep->un.echo.id == htons(0x766d))
					_exit(0);
			}
		}
		_exit(1);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_guest_pings_gateway(void **state)
{
	char path[64];
	struct vmlet_err err;
	struct net_state st;
	int node_fd, guest_fd;

	(void)state;
	require_net();
	node_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	assert_true(node_fd >= 0);
	assert_int_equal(unshare(CLONE_NEWNET), 0);
	guest_fd = open("/proc/self/ns/net", O_RDONLY); /* inherited by ip below */
	assert_true(guest_fd >= 0);
	assert_int_equal(setns(node_fd, CLONE_NEWNET), 0);
	close(node_fd);

	ok(net_ip_forward_enable(&err), &err);
	ok(net_bridge_ensure(ctx, 7, "10.70.0.0/24", NULL, &err), &err);
	ok(net_tap_ensure(ctx, 7, 0, UID_A, UID_A, NULL, &err), &err);
	/* The guest NIC: a veth whose far end lives in the guest netns,
	 * with the MAC a guest of (7, 1) would get. */
	fmt(path, sizeof(path), "/proc/%d/fd/%d", (int)getpid(), guest_fd);
	assert_int_equal(RUN("ip", "link", "add", "vg7", "type", "veth", "peer", "name", "eth0",
			     "address", "02:fc:00:07:00:01", "netns", path),
			 0);
	assert_int_equal(RUN("ip", "link", "set", "vg7", "master", "br-tenant-7", "up"), 0);
	assert_int_equal(RUN_NS(guest_fd, "ip", "link", "set", "lo", "up"), 0);
	assert_int_equal(RUN_NS(guest_fd, "ip", "addr", "add", "10.70.0.2/24", "dev", "eth0"), 0);
	assert_int_equal(RUN_NS(guest_fd, "ip", "link", "set", "eth0", "up"), 0);
	assert_false(sys_exists("eth0")); /* really elsewhere */

	assert_int_equal(ping_from(guest_fd, "10.70.0.1", 10), 0);
	/* An address nobody has: no reply (the check can fail). */
	assert_int_equal(ping_from(guest_fd, "10.70.0.77", 2), 1);

	ok(net_read(ctx, 7, &st, &err), &err);
	assert_int_equal(st.nlinks, 2); /* tn7i0 and the foreign port vg7 */
	assert_string_equal(st.links[1].name, "vg7");
	assert_int_equal(st.links[1].role, NET_ROLE_FOREIGN);
	assert_int_equal(st.links[1].master, st.bridge.ifindex);
	net_state_free(&st);

	expect_code(net_bridge_remove(ctx, 7, &err), &err, VMLET_E_CONFLICT);
	assert_int_equal(RUN("ip", "link", "del", "vg7"), 0);
	ok(net_bridge_remove(ctx, 7, &err), &err);
	close(guest_fd);
}

static void test_ip_forward(void **state)
{
	struct vmlet_err err;
	char buf[8] = "";
	FILE *f;

	(void)state;
	require_net();
	/* A new netns starts with forwarding off. */
	f = fopen("/proc/sys/net/ipv4/ip_forward", "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	assert_string_equal(buf, "0\n");
	ok(net_ip_forward_enable(&err), &err);
	ok(net_ip_forward_enable(&err), &err);
	f = fopen("/proc/sys/net/ipv4/ip_forward", "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	assert_string_equal(buf, "1\n");
}

/* ---- scale: 100 bridge+TAP sets (timings printed, never asserted) ----------------------------- */

#define SETS 100
#define SET_BASE 101

static void create_sets(void)
{
	struct vmlet_err err;
	char subnet[32];

	for (unsigned i = 0; i < SETS; i++) {
		unsigned id = SET_BASE + i;
		fmt(subnet, sizeof(subnet), "10.%u.%u.0/24", id >> 8, id & 255);
		ok(net_bridge_ensure(ctx, id, subnet, NULL, &err), &err);
		ok(net_tap_ensure(ctx, id, 0, UID_A + i, UID_A + i, NULL, &err), &err);
	}
}

static void test_hundred_sets(void **state)
{
	char after[LIST_MAX];
	struct vmlet_err err;
	struct net_link *ours = NULL;
	size_t n = 0;
	double t0, t_create1, t_remove1, t_create2, t_remove2;

	(void)state;
	require_net();
	t0 = now_s();
	create_sets();
	t_create1 = now_s() - t0;
	ok(net_list_ours(ctx, &ours, &n, &err), &err);
	assert_int_equal(n, 2 * SETS);
	free(ours);
	t0 = now_s();
	for (unsigned i = 0; i < SETS; i++)
		ok(net_bridge_remove(ctx, SET_BASE + i, &err), &err);
	t_remove1 = now_s() - t0;
	sys_links(after, sizeof(after));
	assert_string_equal(after, "lo");

	t0 = now_s();
	create_sets();
	t_create2 = now_s() - t0;
	ok(net_list_ours(ctx, &ours, &n, &err), &err);
	assert_int_equal(n, 2 * SETS);
	t0 = now_s();
	ok(net_remove_links(ctx, ours, n, &err), &err);
	t_remove2 = now_s() - t0;
	free(ours);
	sys_links(after, sizeof(after));
	assert_string_equal(after, "lo");
	print_message("timing: %d bridge+TAP sets: create %.3f s, remove per tenant "
		      "(bridge_remove x%d) %.3f s; create %.3f s, remove all in one batch "
		      "(remove_links) %.3f s\n",
		      SETS, t_create1, SETS, t_remove1, t_create2, t_remove2);
}

int main(void)
{
#define NS_TEST(f) cmocka_unit_test_setup_teardown(f, fresh_netns, close_ctx)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names_and_macs),
		cmocka_unit_test(test_gateway_and_bad_cidrs),
		NS_TEST(test_bridge_ensure),
		NS_TEST(test_taps),
		NS_TEST(test_tap_open_fd),
		NS_TEST(test_foreign_refused),
		NS_TEST(test_half_created_bridge_completed),
		NS_TEST(test_bad_input_changes_nothing),
		NS_TEST(test_remove_leaves_nothing),
		NS_TEST(test_list_ours_and_remove_links),
		NS_TEST(test_guest_pings_gateway),
		NS_TEST(test_ip_forward),
		NS_TEST(test_hundred_sets),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
