/* vmlet's nftables tables (hostd/nft.c).
 *
 * Pure tests (any user): the rendering of a two-tenant model against a
 * golden, hostile models refused with the field named, the port whitelist
 * (moby-derp's rule).
 *
 * Root tests, each in a network namespace of its own: apply -> read back
 * -> every check passes; out-of-band tampering (rule deleted, changed,
 * moved, added) is named by nft_read and repaired by a new apply; a
 * transaction the kernel refuses leaves the previous ruleset in place;
 * other tables on the host are left alone.
 *
 * Traffic tests (root), real kernel forwarding: a "node" namespace with
 * two tenant bridges, a namespace per guest joined by a veth pair whose
 * bridge end is named like a TAP (tn<net>i<n>), and an "uplink" namespace.
 * What the rules forbid is first shown to pass without vmlet's tables (so
 * each negative check can fail), then with them: intra-tenant and gateway
 * traffic, nothing across tenants (ICMP, TCP, UDP), forged sources
 * dropped, egress masqueraded, published ports reaching their guest and
 * nothing else, a TAP moved to another tenant's bridge still isolated.
 * Every wait is bounded (poll timeouts, alarm() in every child). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <nftables/libnftables.h>

#include "hostd/nft.h"

#define IP4(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (uint32_t)(d))

/* ---- the two-tenant model used throughout ---------------------------------- */

struct fixture {
	struct nft_tenant t[2];
	struct nft_instance in[3];
	struct nft_publish p[2];
	struct nft_model m;
};

/* Tenant 1: 10.1.0.0/24 with tn1i1 (.2) and tn1i2 (.3), publishes tcp
 * 8080 -> 10.1.0.2:80. Tenant 2: 10.2.0.0/16 with tn2i1 (10.2.0.2),
 * publishes udp 5353 -> 10.2.0.2:53. Uplink up0. */
static void fixture_init(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	f->t[0] = (struct nft_tenant){1, "br-tenant-1", IP4(10, 1, 0, 0), 24};
	f->t[1] = (struct nft_tenant){2, "br-tenant-2", IP4(10, 2, 0, 0), 16};
	f->in[0] = (struct nft_instance){1, "tn1i1", IP4(10, 1, 0, 2)};
	f->in[1] = (struct nft_instance){1, "tn1i2", IP4(10, 1, 0, 3)};
	f->in[2] = (struct nft_instance){2, "tn2i1", IP4(10, 2, 0, 2)};
	f->p[0] = (struct nft_publish){1, NFT_PROTO_TCP, 8080, IP4(10, 1, 0, 2), 80};
	f->p[1] = (struct nft_publish){2, NFT_PROTO_UDP, 5353, IP4(10, 2, 0, 2), 53};
	snprintf(f->m.uplink, sizeof(f->m.uplink), "up0");
	f->m.tenants = f->t;
	f->m.n_tenants = 2;
	f->m.instances = f->in;
	f->m.n_instances = 3;
	f->m.publishes = f->p;
	f->m.n_publishes = 2;
}

/* The golden rendering of fixture_init's model. Reviewed as nft prints it
 * (the root test applies it and compares the kernel's listing with it):
 *
 * table inet vmlet {
 *   chain forward { type filter hook forward priority filter; policy accept;
 *     iifname "br-tenant-1" oifname "br-tenant-1" ip saddr 10.1.0.0/24 accept comment "vmlet:intra:1"
 *     iifname "br-tenant-1" oifname "br-tenant-*" oifname != "br-tenant-1" drop comment "vmlet:isolate:1"
 *     iifname "br-tenant-2" oifname "br-tenant-2" ip saddr 10.2.0.0/16 accept comment "vmlet:intra:2"
 *     iifname "br-tenant-2" oifname "br-tenant-*" oifname != "br-tenant-2" drop comment "vmlet:isolate:2"
 *     ct state established,related accept comment "vmlet:established"
 *     iifname "br-tenant-1" oifname "up0" ip saddr 10.1.0.0/24 accept comment "vmlet:egress:1"
 *     iifname "br-tenant-2" oifname "up0" ip saddr 10.2.0.0/16 accept comment "vmlet:egress:2"
 *     iifname != "br-tenant-*" oifname "br-tenant-1" ip daddr 10.1.0.2 tcp dport 80 ct status dnat accept comment "vmlet:publish-fwd:tcp:8080"
 *     iifname != "br-tenant-*" oifname "br-tenant-2" ip daddr 10.2.0.2 udp dport 53 ct status dnat accept comment "vmlet:publish-fwd:udp:5353"
 *     iifname "br-tenant-*" drop comment "vmlet:tenant-out"
 *     oifname "br-tenant-*" drop comment "vmlet:tenant-in" }
 *   chain input { type filter hook input priority filter; policy accept;
 *     iifname "br-tenant-1" ip daddr != 10.1.0.1 fib daddr type local drop comment "vmlet:gateway-only:1"
 *     iifname "br-tenant-2" ip daddr != 10.2.0.1 fib daddr type local drop comment "vmlet:gateway-only:2" }
 *   chain prerouting { type nat hook prerouting priority dstnat; policy accept;
 *     iifname != "br-tenant-*" fib daddr type local tcp dport 8080 dnat ip to 10.1.0.2:80 comment "vmlet:publish:tcp:8080"
 *     iifname != "br-tenant-*" fib daddr type local udp dport 5353 dnat ip to 10.2.0.2:53 comment "vmlet:publish:udp:5353" }
 *   chain postrouting { type nat hook postrouting priority srcnat; policy accept;
 *     oifname "up0" ip saddr 10.1.0.0/24 masquerade comment "vmlet:masq:1"
 *     oifname "up0" ip saddr 10.2.0.0/16 masquerade comment "vmlet:masq:2" }
 * }
 * table bridge vmlet {
 *   chain prerouting { type filter hook prerouting priority filter; policy accept;
 *     iifname "tn1i1" ip saddr 10.1.0.2 accept comment "vmlet:spoof-ip:tn1i1"
 *     iifname "tn1i1" arp saddr ip 10.1.0.2 accept comment "vmlet:spoof-arp:tn1i1"
 *     (same for tn1i2 10.1.0.3 and tn2i1 10.2.0.2)
 *     iifname "tn*" drop comment "vmlet:spoof-default" }
 * }
 */
static const char *const golden[] = {
	"{\"table\":{\"family\":\"inet\",\"name\":\"vmlet\"}}",
	"{\"chain\":{\"family\":\"inet\",\"table\":\"vmlet\",\"name\":\"forward\",\"type\":\"filter\",\"hook\":\"forward\",\"prio\":0,\"policy\":\"accept\"}}",
	"{\"chain\":{\"family\":\"inet\",\"table\":\"vmlet\",\"name\":\"input\",\"type\":\"filter\",\"hook\":\"input\",\"prio\":0,\"policy\":\"accept\"}}",
	"{\"chain\":{\"family\":\"inet\",\"table\":\"vmlet\",\"name\":\"prerouting\",\"type\":\"nat\",\"hook\":\"prerouting\",\"prio\":-100,\"policy\":\"accept\"}}",
	"{\"chain\":{\"family\":\"inet\",\"table\":\"vmlet\",\"name\":\"postrouting\",\"type\":\"nat\",\"hook\":\"postrouting\",\"prio\":100,\"policy\":\"accept\"}}",
	"{\"rule\":{\"family\":\"inet\",\"table\":\"vmlet\",\"chain\":\"forward\",\"comment\":\"vmlet:intra:1\",\"expr\":[{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{\"key\":\"iifname\"}},\"right\":\"br-tenant-1\"}},{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{\"key\":\"oifname\"}},\"right\":\"br-tenant-1\"}},{\"match\":{\"op\":\"==\",\"left\":{\"payload\":{\"protocol\":\"ip\",\"field\":\"saddr\"}},\"right\":{\"prefix\":{\"addr\":\"10.1.0.0\",\"len\":24}}}},{\"accept\":null}]}}",
	"{\"rule\":{\"family\":\"inet\",\"table\":\"vmlet\",\"chain\":\"forward\",\"comment\":\"vmlet:isolate:1\",\"expr\":[{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{\"key\":\"iifname\"}},\"right\":\"br-tenant-1\"}},{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{\"key\":\"oifname\"}},\"right\":\"br-tenant-*\"}},{\"match\":{\"op\":\"!=\",\"left\":{\"meta\":{\"key\":\"oifname\"}},\"right\":\"br-tenant-1\"}},{\"drop\":null}]}}",
	"{\"rule\":{\"family\":\"inet\",\"table\":\"vmlet\",\"chain\":\"forward\",\"comment\":\"vmlet:intra:2\",\"expr\":[{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{\"key\":\"iifname\"}},\"right\":\"br-tenant-2\"}},{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{\"key\":\"oifname\"}},\"right\":\"br-tenant-2\"}},{\"match\":{\"op\":\"==\",\"left\":{\"payload\":{\"protocol\":\"ip\",\"field\":\"saddr\"}},\"right\":{\"prefix\":{\"addr\":\"10.2.0.0\",\"len\":16}}}},{\"accept\":null}]}}",
	"{\"rule\":{\"family\":\"inet\",\"table\":\"vmlet\",\"chain\":\"forward\",\"comment\":\"vmlet:isolate:2\",\"expr\":[{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{\"key\":\"iifname\"}},\"right\":\"br-tenant-2\"}},{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{\"key\":\"oifname\"}},\"right\":\"br-tenant-*\"}},{\"match\":{\"op\":\"!=\",\"left\":{\"meta\":{\"key\":\"oifname\"}},\"right\":\"br-tenant-2\"}},{\"drop\":null}]}}",
	"{\"rule\":{\"family\":\"inet\",\"table\":\"vmlet\",\"chain\":\"forward\",\"comment\":\"vmlet:established\",\"expr\":[{\"match\":{\"op\":\"in\",\"left\":{\"ct\":{\"key\":\"state\"}},\"right\":[\"established\",\"related\"]}},{\"accept\":null}]}}",
	"{\"rule\":{\"family\":\"inet\",\"table\":\"vmlet\",\"chain\":\"forward\",\"comment\":\"vmlet:egress:1\",\"expr\":[{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{\"key\":\"iifname\"}},\"right\":\"br-tenant-1\"}},{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{\"key\":\"oifname\"}},\"right\":\"up0\"}},{\"match\":{\"op\":\"==\",\"left\":{\"payload\":{\"protocol\":\"ip\",\"field\":\"saddr\"}},\"right\":{\"prefix\":{\"addr\":\"10.1.0.0\",\"len\":24}}}},{\"accept\":null}]}}",
	"{\"rule\":{\"family\":\"inet\",\"table\":\"vmlet\",\"chain\":\"forward\",\"comment\":\"vmlet:egress:2\",\"expr\":[{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{\"key\":\"iifname\"}},\"right\":\"br-tenant-2\"}},{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{\"key\":\"oifname\"}},\"right\":\"up0\"}},{\"match\":{\"op\":\"==\",\"left\":{\"payload\":{\"protocol\":\"ip\",\"field\":\"saddr\"}},\"right\":{\"prefix\":{\"addr\":\"10.2.0.0\",\"len\":16}}}},{\"accept\":null}]}}",
	"{\"rule\":{\"family\":\"inet\",\"table\":\"vmlet\",\"chain\":\"forward\",\"comment\":\"vmlet:publish-fwd:tcp:8080\",\"expr\":[{\"match\":{\"op\":\"!=\",\"left\":{\"meta\":{\"key\":\"iifname\"}},\"right\":\"br-tenant-*\"}},{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{\"key\":\"oifname\"}},\"right\":\"br-tenant-1\"}},{\"match\":{\"op\":\"==\",\"left\":{\"payload\":{\"protocol\":\"ip\",\"field\":\"daddr\"}},\"right\":\"10.1.0.2\"}},{\"match\":{\"op\":\"==\",\"left\":{\"payload\":{\"protocol\":\"tcp\",\"field\":\"dport\"}},\"right\":80}},{\"match\":{\"op\":\"in\",\"left\":{\"ct\":{\"key\":\"status\"}},\"right\":\"dnat\"}},{\"accept\":null}]}}",
	"{\"rule\":{\"family\":\"inet\",\"table\":\"vmlet\",\"chain\":\"forward\",\"comment\":\"vmlet:publish-fwd:udp:5353\",\"expr\":[{\"match\":{\"op\":\"!=\",\"left\":{\"meta\":{\"key\":\"iifname\"}},\"right\":\"br-tenant-*\"}},{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{\"key\":\"oifname\"}},\"right\":\"br-tenant-2\"}},{\"match\":{\"op\":\"==\",\"left\":{\"payload\":{\"protocol\":\"ip\",\"field\":\"daddr\"}},\"right\":\"10.2.0.2\"}},{\"match\":{\"op\":\"==\",\"left\":{\"payload\":{\"protocol\":\"udp\",\"field\":\"dport\"}},\"right\":53}},{\"match\":{\"op\":\"in\",\"left\":{\"ct\":{\"key\":\"status\"}},\"right\":\"dnat\"}},{\"accept\":null}]}}",
	"{\"rule\":{\"family\":\"inet\",\"table\":\"vmlet\",\"chain\":\"forward\",\"comment\":\"vmlet:tenant-out\",\"expr\":[{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{\"key\":\"iifname\"}},\"right\":\"br-tenant-*\"}},{\"drop\":null}]}}",
	"{\"rule\":{\"family\":\"inet\",\"table\":\"vmlet\",\"chain\":\"forward\",\"comment\":\"vmlet:tenant-in\",\"expr\":[{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{\"key\":\"oifname\"}},\"right\":\"br-tenant-*\"}},{\"drop\":null}]}}",
	"{\"rule\":{\"family\":\"inet\",\"table\":\"vmlet\",\"chain\":\"input\",\"comment\":\"vmlet:gateway-only:1\",\"expr\":[{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{\"key\":\"iifname\"}},\"right\":\"br-tenant-1\"}},{\"match\":{\"op\":\"!=\",\"left\":{\"payload\":{\"protocol\":\"ip\",\"field\":\"daddr\"}},\"right\":\"10.1.0.1\"}},{\"match\":{\"op\":\"==\",\"left\":{\"fib\":{\"result\":\"type\",\"flags\":[\"daddr\"]}},\"right\":\"local\"}},{\"drop\":null}]}}",
	"{\"rule\":{\"family\":\"inet\",\"table\":\"vmlet\",\"chain\":\"input\",\"comment\":\"vmlet:gateway-only:2\",\"expr\":[{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{\"key\":\"iifname\"}},\"right\":\"br-tenant-2\"}},{\"match\":{\"op\":\"!=\",\"left\":{\"payload\":{\"protocol\":\"ip\",\"field\":\"daddr\"}},\"right\":\"10.2.0.1\"}},{\"match\":{\"op\":\"==\",\"left\":{\"fib\":{\"result\":\"type\",\"flags\":[\"daddr\"]}},\"right\":\"local\"}},{\"drop\":null}]}}",
	"{\"rule\":{\"family\":\"inet\",\"table\":\"vmlet\",\"chain\":\"prerouting\",\"comment\":\"vmlet:publish:tcp:8080\",\"expr\":[{\"match\":{\"op\":\"!=\",\"left\":{\"meta\":{\"key\":\"iifname\"}},\"right\":\"br-tenant-*\"}},{\"match\":{\"op\":\"==\",\"left\":{\"fib\":{\"result\":\"type\",\"flags\":[\"daddr\"]}},\"right\":\"local\"}},{\"match\":{\"op\":\"==\",\"left\":{\"payload\":{\"protocol\":\"tcp\",\"field\":\"dport\"}},\"right\":8080}},{\"dnat\":{\"family\":\"ip\",\"addr\":\"10.1.0.2\",\"port\":80}}]}}",
	"{\"rule\":{\"family\":\"inet\",\"table\":\"vmlet\",\"chain\":\"prerouting\",\"comment\":\"vmlet:publish:udp:5353\",\"expr\":[{\"match\":{\"op\":\"!=\",\"left\":{\"meta\":{\"key\":\"iifname\"}},\"right\":\"br-tenant-*\"}},{\"match\":{\"op\":\"==\",\"left\":{\"fib\":{\"result\":\"type\",\"flags\":[\"daddr\"]}},\"right\":\"local\"}},{\"match\":{\"op\":\"==\",\"left\":{\"payload\":{\"protocol\":\"udp\",\"field\":\"dport\"}},\"right\":5353}},{\"dnat\":{\"family\":\"ip\",\"addr\":\"10.2.0.2\",\"port\":53}}]}}",
	"{\"rule\":{\"family\":\"inet\",\"table\":\"vmlet\",\"chain\":\"postrouting\",\"comment\":\"vmlet:masq:1\",\"expr\":[{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{\"key\":\"oifname\"}},\"right\":\"up0\"}},{\"match\":{\"op\":\"==\",\"left\":{\"payload\":{\"protocol\":\"ip\",\"field\":\"saddr\"}},\"right\":{\"prefix\":{\"addr\":\"10.1.0.0\",\"len\":24}}}},{\"masquerade\":null}]}}",
	"{\"rule\":{\"family\":\"inet\",\"table\":\"vmlet\",\"chain\":\"postrouting\",\"comment\":\"vmlet:masq:2\",\"expr\":[{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{\"key\":\"oifname\"}},\"right\":\"up0\"}},{\"match\":{\"op\":\"==\",\"left\":{\"payload\":{\"protocol\":\"ip\",\"field\":\"saddr\"}},\"right\":{\"prefix\":{\"addr\":\"10.2.0.0\",\"len\":16}}}},{\"masquerade\":null}]}}",
	"{\"table\":{\"family\":\"bridge\",\"name\":\"vmlet\"}}",
	"{\"chain\":{\"family\":\"bridge\",\"table\":\"vmlet\",\"name\":\"prerouting\",\"type\":\"filter\",\"hook\":\"prerouting\",\"prio\":-200,\"policy\":\"accept\"}}",
	"{\"rule\":{\"family\":\"bridge\",\"table\":\"vmlet\",\"chain\":\"prerouting\",\"comment\":\"vmlet:spoof-ip:tn1i1\",\"expr\":[{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{\"key\":\"iifname\"}},\"right\":\"tn1i1\"}},{\"match\":{\"op\":\"==\",\"left\":{\"payload\":{\"protocol\":\"ip\",\"field\":\"saddr\"}},\"right\":\"10.1.0.2\"}},{\"accept\":null}]}}",
	"{\"rule\":{\"family\":\"bridge\",\"table\":\"vmlet\",\"chain\":\"prerouting\",\"comment\":\"vmlet:spoof-arp:tn1i1\",\"expr\":[{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{\"key\":\"iifname\"}},\"right\":\"tn1i1\"}},{\"match\":{\"op\":\"==\",\"left\":{\"payload\":{\"protocol\":\"arp\",\"field\":\"saddr ip\"}},\"right\":\"10.1.0.2\"}},{\"accept\":null}]}}",
	"{\"rule\":{\"family\":\"bridge\",\"table\":\"vmlet\",\"chain\":\"prerouting\",\"comment\":\"vmlet:spoof-ip:tn1i2\",\"expr\":[{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{\"key\":\"iifname\"}},\"right\":\"tn1i2\"}},{\"match\":{\"op\":\"==\",\"left\":{\"payload\":{\"protocol\":\"ip\",\"field\":\"saddr\"}},\"right\":\"10.1.0.3\"}},{\"accept\":null}]}}",
	"{\"rule\":{\"family\":\"bridge\",\"table\":\"vmlet\",\"chain\":\"prerouting\",\"comment\":\"vmlet:spoof-arp:tn1i2\",\"expr\":[{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{\"key\":\"iifname\"}},\"right\":\"tn1i2\"}},{\"match\":{\"op\":\"==\",\"left\":{\"payload\":{\"protocol\":\"arp\",\"field\":\"saddr ip\"}},\"right\":\"10.1.0.3\"}},{\"accept\":null}]}}",
	"{\"rule\":{\"family\":\"bridge\",\"table\":\"vmlet\",\"chain\":\"prerouting\",\"comment\":\"vmlet:spoof-ip:tn2i1\",\"expr\":[{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{\"key\":\"iifname\"}},\"right\":\"tn2i1\"}},{\"match\":{\"op\":\"==\",\"left\":{\"payload\":{\"protocol\":\"ip\",\"field\":\"saddr\"}},\"right\":\"10.2.0.2\"}},{\"accept\":null}]}}",
	"{\"rule\":{\"family\":\"bridge\",\"table\":\"vmlet\",\"chain\":\"prerouting\",\"comment\":\"vmlet:spoof-arp:tn2i1\",\"expr\":[{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{\"key\":\"iifname\"}},\"right\":\"tn2i1\"}},{\"match\":{\"op\":\"==\",\"left\":{\"payload\":{\"protocol\":\"arp\",\"field\":\"saddr ip\"}},\"right\":\"10.2.0.2\"}},{\"accept\":null}]}}",
	"{\"rule\":{\"family\":\"bridge\",\"table\":\"vmlet\",\"chain\":\"prerouting\",\"comment\":\"vmlet:spoof-default\",\"expr\":[{\"match\":{\"op\":\"==\",\"left\":{\"meta\":{\"key\":\"iifname\"}},\"right\":\"tn*\"}},{\"drop\":null}]}}",
};

/* ---- pure: rendering ------------------------------------------------------- */

static void test_render_golden(void **state)
{
	struct fixture f;
	struct vmlet_err err;
	json_t *r = NULL, *o;
	size_t i;

	fixture_init(&f);
	assert_int_equal(nft_render(&f.m, &r, &err), 0);
	assert_int_equal(json_array_size(r), sizeof(golden) / sizeof(golden[0]));
	json_array_foreach(r, i, o) {
		char *s = json_dumps(o, JSON_COMPACT);

		assert_non_null(s);
		if (strcmp(s, golden[i]))
			print_message("object %zu:\n got  %s\n want %s\n", i, s, golden[i]);
		assert_string_equal(s, golden[i]);
		free(s);
	}
	json_decref(r);
}

static bool has_comment_prefix(json_t *r, const char *prefix)
{
	size_t i;
	json_t *o;

	json_array_foreach(r, i, o) {
		const char *c = json_string_value(json_object_get(json_object_get(o, "rule"), "comment"));

		if (c && !strncmp(c, prefix, strlen(prefix)))
			return true;
	}
	return false;
}

/* No uplink: no egress accept and no masquerade, the rest unchanged. */
static void test_render_no_uplink(void **state)
{
	struct fixture f;
	struct vmlet_err err;
	json_t *r = NULL;

	fixture_init(&f);
	f.m.uplink[0] = '\0';
	assert_int_equal(nft_render(&f.m, &r, &err), 0);
	assert_false(has_comment_prefix(r, "vmlet:egress:"));
	assert_false(has_comment_prefix(r, "vmlet:masq:"));
	assert_true(has_comment_prefix(r, "vmlet:isolate:2"));
	assert_true(has_comment_prefix(r, "vmlet:publish:tcp:8080"));
	assert_int_equal(json_array_size(r), sizeof(golden) / sizeof(golden[0]) - 4);
	json_decref(r);
}

/* An empty model still renders both tables with their default rules
 * (stale bridges and TAPs stay isolated). */
static void test_render_empty(void **state)
{
	struct nft_model m = {0};
	struct vmlet_err err;
	json_t *r = NULL;

	assert_int_equal(nft_render(&m, &r, &err), 0);
	assert_true(has_comment_prefix(r, "vmlet:established"));
	assert_true(has_comment_prefix(r, "vmlet:tenant-out"));
	assert_true(has_comment_prefix(r, "vmlet:tenant-in"));
	assert_true(has_comment_prefix(r, "vmlet:spoof-default"));
	assert_false(has_comment_prefix(r, "vmlet:intra:"));
	json_decref(r);
}

/* The transaction: for each table add + delete (replace whether or not it
 * exists), then only adds, inet first. */
static void test_render_commands(void **state)
{
	struct fixture f;
	struct vmlet_err err;
	json_t *c = NULL, *list, *o;
	size_t i, n_delete = 0;
	const char *first_bridge_family = NULL;

	fixture_init(&f);
	assert_int_equal(nft_render_commands(&f.m, &c, &err), 0);
	list = json_object_get(c, "nftables");
	assert_true(json_is_array(list));
	assert_int_equal(json_array_size(list), sizeof(golden) / sizeof(golden[0]) + 4);
	json_array_foreach(list, i, o) {
		json_t *del = json_object_get(o, "delete");

		assert_int_equal(json_object_size(o), 1);
		if (del) {
			n_delete++;
			/* each delete directly follows the add of the same table */
			assert_true(json_equal(del, json_object_get(json_array_get(list, i - 1), "add")));
			assert_non_null(json_object_get(del, "table"));
		} else {
			assert_non_null(json_object_get(o, "add"));
		}
	}
	assert_int_equal(n_delete, 2);
	first_bridge_family = json_string_value(json_object_get(
		json_object_get(json_object_get(json_array_get(list, 1), "delete"), "table"), "family"));
	assert_string_equal(first_bridge_family, "inet");
	json_decref(c);
}

/* ---- pure: hostile models -------------------------------------------------- */

struct hostile {
	const char *what;
	void (*mutate)(struct fixture *f);
	const char *want; /* substring of the error message */
};

#define SETNAME(dst, s) snprintf((dst), IFNAMSIZ, "%s", (s))

static void h_addr_outside(struct fixture *f) { f->in[0].addr = IP4(10, 2, 0, 5); }
static void h_addr_gateway(struct fixture *f) { f->in[0].addr = IP4(10, 1, 0, 1); }
static void h_addr_network(struct fixture *f) { f->in[0].addr = IP4(10, 1, 0, 0); }
static void h_addr_bcast(struct fixture *f) { f->in[0].addr = IP4(10, 1, 0, 255); }
static void h_bridge_other(struct fixture *f) { SETNAME(f->t[0].bridge, "br-tenant-2"); }
static void h_bridge_pad(struct fixture *f) { SETNAME(f->t[0].bridge, "br-tenant-01"); }
static void h_bridge_eth(struct fixture *f) { SETNAME(f->t[0].bridge, "eth0"); }
static void h_bridge_wild(struct fixture *f) { SETNAME(f->t[0].bridge, "br-tenant-*"); }
static void h_bridge_unterm(struct fixture *f) { memset(f->t[0].bridge, 'b', IFNAMSIZ); }
static void h_tap_other(struct fixture *f) { SETNAME(f->in[0].tap, "tn2i7"); }
static void h_tap_zero(struct fixture *f) { SETNAME(f->in[0].tap, "tn1i01"); }
static void h_tap_noidx(struct fixture *f) { SETNAME(f->in[0].tap, "tn1i"); }
static void h_tap_alpha(struct fixture *f) { SETNAME(f->in[0].tap, "tn1ix"); }
static void h_tap_long(struct fixture *f) { SETNAME(f->in[0].tap, "tn1i123456789"); }
static void h_tap_quote(struct fixture *f) { SETNAME(f->in[0].tap, "tn1i1\" accept"); }
static void h_tap_unterm(struct fixture *f) { memset(f->in[0].tap, '1', IFNAMSIZ); }
static void h_host_port0(struct fixture *f) { f->p[0].host_port = 0; }
static void h_host_port70000(struct fixture *f) { f->p[0].host_port = 70000; }
static void h_guest_port0(struct fixture *f) { f->p[0].guest_port = 0; }
static void h_guest_port70000(struct fixture *f) { f->p[0].guest_port = 70000; }
static void h_dup_port(struct fixture *f)
{
	f->p[1].proto = NFT_PROTO_TCP;
	f->p[1].host_port = 8080;
}
static void h_dup_tap(struct fixture *f) { SETNAME(f->in[1].tap, "tn1i1"); }
static void h_dup_addr(struct fixture *f) { f->in[1].addr = f->in[0].addr; }
static void h_dup_net(struct fixture *f)
{
	f->t[1].net_id = 1;
	SETNAME(f->t[1].bridge, "br-tenant-1");
}
static void h_overlap(struct fixture *f)
{
	f->t[1].subnet = IP4(10, 1, 0, 0);
	f->t[1].prefix = 16;
}
static void h_net0(struct fixture *f)
{
	f->t[0].net_id = 0;
	SETNAME(f->t[0].bridge, "br-tenant-0");
}
static void h_net4095(struct fixture *f)
{
	f->t[0].net_id = 4095;
	SETNAME(f->t[0].bridge, "br-tenant-4095");
}
static void h_prefix15(struct fixture *f) { f->t[1].prefix = 15; }
static void h_prefix30(struct fixture *f) { f->t[0].prefix = 30; }
static void h_public(struct fixture *f) { f->t[0].subnet = IP4(8, 8, 8, 0); }
static void h_hostbits(struct fixture *f) { f->t[0].subnet = IP4(10, 1, 0, 5); }
static void h_pub_net(struct fixture *f) { f->p[0].net_id = 9; }
static void h_pub_addr(struct fixture *f) { f->p[0].addr = IP4(10, 1, 0, 50); }
static void h_pub_other(struct fixture *f) { f->p[0].addr = IP4(10, 2, 0, 2); }
static void h_pub_proto(struct fixture *f) { f->p[0].proto = 3; }
static void h_inst_net(struct fixture *f)
{
	f->in[2].net_id = 3;
	SETNAME(f->in[2].tap, "tn3i1");
}
static void h_up_wild(struct fixture *f) { SETNAME(f->m.uplink, "eth*"); }
static void h_up_bridge(struct fixture *f) { SETNAME(f->m.uplink, "br-tenant-9"); }
static void h_up_tap(struct fixture *f) { SETNAME(f->m.uplink, "tn5"); }
static void h_up_space(struct fixture *f) { SETNAME(f->m.uplink, "a b"); }
static void h_up_quote(struct fixture *f) { SETNAME(f->m.uplink, "e\"th0"); }
static void h_up_unterm(struct fixture *f) { memset(f->m.uplink, 'e', IFNAMSIZ); }
static void h_too_many(struct fixture *f) { f->m.n_tenants = NFT_MAX_TENANTS + 1; }
static void h_null_arr(struct fixture *f) { f->m.instances = NULL; }

static const struct hostile hostiles[] = {
	{"address outside its subnet", h_addr_outside, "instances[0].addr: 10.2.0.5 is outside net 1's subnet 10.1.0.0/24"},
	{"address = gateway", h_addr_gateway, "instances[0].addr: 10.1.0.1 is the network, gateway or broadcast"},
	{"address = network", h_addr_network, "instances[0].addr: 10.1.0.0 is the network"},
	{"address = broadcast", h_addr_bcast, "instances[0].addr: 10.1.0.255 is the network"},
	{"bridge of another tenant", h_bridge_other, "tenants[0].bridge: \"br-tenant-2\" must be \"br-tenant-1\""},
	{"bridge zero-padded", h_bridge_pad, "tenants[0].bridge"},
	{"bridge foreign name", h_bridge_eth, "tenants[0].bridge: \"eth0\""},
	{"bridge wildcard", h_bridge_wild, "tenants[0].bridge"},
	{"bridge unterminated", h_bridge_unterm, "tenants[0].bridge"},
	{"tap of another tenant", h_tap_other, "instances[0].tap: \"tn2i7\" must be \"tn1i<n>\""},
	{"tap zero-padded", h_tap_zero, "instances[0].tap"},
	{"tap without index", h_tap_noidx, "instances[0].tap"},
	{"tap non-numeric", h_tap_alpha, "instances[0].tap"},
	{"tap index too long", h_tap_long, "instances[0].tap"},
	{"tap with a quote", h_tap_quote, "instances[0].tap: \"tn1i1\\\" accept\""},
	{"tap unterminated", h_tap_unterm, "instances[0].tap"},
	{"host port 0", h_host_port0, "publishes[0].host_port: 0 out of range 1..65535"},
	{"host port 70000", h_host_port70000, "publishes[0].host_port: 70000 out of range"},
	{"guest port 0", h_guest_port0, "publishes[0].guest_port: 0 out of range"},
	{"guest port 70000", h_guest_port70000, "publishes[0].guest_port: 70000 out of range"},
	{"duplicate host port", h_dup_port, "tcp/8080 is already published by publishes["},
	{"duplicate tap", h_dup_tap, "\"tn1i1\" is used twice"},
	{"duplicate address", h_dup_addr, "10.1.0.2 duplicates instances["},
	{"duplicate net id", h_dup_net, "net_id: 1 duplicates tenants["},
	{"overlapping subnets", h_overlap, "overlaps tenants["},
	{"net id 0", h_net0, "tenants[0].net_id: 0 out of range 1..4094"},
	{"net id 4095", h_net4095, "tenants[0].net_id: 4095 out of range"},
	{"prefix /15", h_prefix15, "tenants[1].subnet: prefix /15 out of range"},
	{"prefix /30", h_prefix30, "tenants[0].subnet: prefix /30 out of range"},
	{"public subnet", h_public, "8.8.8.0/24 is not a private"},
	{"host bits set", h_hostbits, "10.1.0.5/24 has host bits set"},
	{"publish for unknown tenant", h_pub_net, "publishes[0].net_id: 9 is not a tenant"},
	{"publish to no instance", h_pub_addr, "publishes[0].addr: 10.1.0.50 is not an instance of net 1"},
	{"publish to another tenant's instance", h_pub_other, "publishes[0].addr: 10.2.0.2 is not an instance of net 1"},
	{"publish with bad proto", h_pub_proto, "publishes[0].proto: 3"},
	{"instance of unknown tenant", h_inst_net, "instances[2].net_id: 3 is not a tenant"},
	{"uplink wildcard", h_up_wild, "uplink: \"eth*\""},
	{"uplink = tenant bridge", h_up_bridge, "uplink: \"br-tenant-9\""},
	{"uplink = tap", h_up_tap, "uplink: \"tn5\""},
	{"uplink with a blank", h_up_space, "uplink: \"a b\""},
	{"uplink with a quote", h_up_quote, "uplink"},
	{"uplink unterminated", h_up_unterm, "uplink"},
	{"too many tenants", h_too_many, "tenants: 1025 entries"},
	{"instances NULL", h_null_arr, "instances: 3 entries"},
};

/* Every hostile model is refused by validate, render, apply and read with
 * 400 and a message naming the field; apply refuses before touching the
 * kernel (this test runs as any user in the current netns). */
static void test_hostile_models(void **state)
{
	for (size_t i = 0; i < sizeof(hostiles) / sizeof(hostiles[0]); i++) {
		struct fixture f;
		struct vmlet_err err;
		struct nft_verify v;
		json_t *keep = json_object(), *r = keep; /* render must reset r */

		fixture_init(&f);
		hostiles[i].mutate(&f);
		memset(&err, 0, sizeof(err));
		if (nft_model_validate(&f.m, &err) != -1 || !strstr(err.msg, hostiles[i].want))
			fail_msg("%s: got \"%s\", want \"%s\"", hostiles[i].what, err.msg,
				 hostiles[i].want);
		assert_int_equal(err.code, VMLET_E_INVALID);
		assert_int_equal(nft_render(&f.m, &r, &err), -1);
		assert_null(r);
		json_decref(keep);
		assert_int_equal(err.code, VMLET_E_INVALID);
		assert_int_equal(nft_apply(&f.m, &err), -1);
		assert_int_equal(err.code, VMLET_E_INVALID);
		assert_int_equal(nft_read(&f.m, &v, &err), -1);
		assert_int_equal(err.code, VMLET_E_INVALID);
		assert_int_equal(v.n_checks, 0);
		nft_verify_free(&v);
	}
	assert_int_equal(nft_model_validate(NULL, NULL), -1);
}

/* Edge values that are fine: same port on tcp and udp, tap index 0 and 8
 * digits, net id 4094, /16 and /29 subnets in each RFC 1918 range. */
static void test_model_edges_ok(void **state)
{
	struct fixture f;
	struct vmlet_err err;

	fixture_init(&f);
	f.p[1].host_port = 8080; /* udp/8080 next to tcp/8080 */
	SETNAME(f.in[0].tap, "tn1i0");
	SETNAME(f.in[1].tap, "tn1i99999999");
	if (nft_model_validate(&f.m, &err) != 0)
		fail_msg("%s", err.msg);

	fixture_init(&f);
	f.t[1] = (struct nft_tenant){4094, "br-tenant-4094", IP4(192, 168, 7, 8), 29};
	f.in[2] = (struct nft_instance){4094, "tn4094i1", IP4(192, 168, 7, 14)};
	f.p[1].net_id = 4094;
	f.p[1].addr = IP4(192, 168, 7, 14);
	f.t[0].subnet = IP4(172, 31, 0, 0);
	f.t[0].prefix = 16;
	f.in[0].addr = IP4(172, 31, 200, 9);
	f.in[1].addr = IP4(172, 31, 0, 2);
	f.p[0].addr = IP4(172, 31, 200, 9);
	if (nft_model_validate(&f.m, &err) != 0)
		fail_msg("%s", err.msg);

	/* 172.32.0.0/16 is just outside 172.16.0.0/12 */
	f.t[0].subnet = IP4(172, 32, 0, 0);
	assert_int_equal(nft_model_validate(&f.m, &err), -1);
	assert_non_null(strstr(err.msg, "not a private"));
}

/* ---- pure: the port whitelist (moby-derp) ---------------------------------- */

static void test_whitelist_parse(void **state)
{
	struct nft_whitelist *wl = calloc(1, sizeof(*wl));
	struct vmlet_err err;

	assert_non_null(wl);
	assert_int_equal(nft_whitelist_parse("", wl, &err), 0);
	assert_int_equal(wl->n, 0);
	assert_int_equal(nft_whitelist_parse(NULL, wl, &err), 0);
	assert_int_equal(wl->n, 0);
	assert_int_equal(nft_whitelist_parse(" web:tcp:80, web:tcp:443\tmail:tcp:25 ,\n"
					     "game:udp:27000-27015,web:udp:80",
					     wl, &err),
			 0);
	assert_int_equal(wl->n, 5);
	assert_string_equal(wl->e[3].tenant, "game");
	assert_int_equal(wl->e[3].proto, NFT_PROTO_UDP);
	assert_int_equal(wl->e[3].lo, 27000);
	assert_int_equal(wl->e[3].hi, 27015);
	assert_int_equal(wl->e[0].lo, 80);
	assert_int_equal(wl->e[0].hi, 80);
	/* same tenant overlapping itself is fine */
	assert_int_equal(nft_whitelist_parse("a:tcp:1-100 a:tcp:50", wl, &err), 0);
	/* 1 and 65535 are ports */
	assert_int_equal(nft_whitelist_parse("a:tcp:1 a:udp:65535", wl, &err), 0);

	static const struct {
		const char *text, *want;
	} bad[] = {
		{"web", "port_whitelist[0]: \"web\" must be tenant:proto:port"},
		{"web:tcp", "port_whitelist[0]"},
		{"web:tcp:80 web:sctp:80", "port_whitelist[1]: protocol \"sctp\" must be tcp or udp"},
		{"Web:tcp:80", "tenant \"Web\" must match"},
		{"-web:tcp:80", "tenant \"-web\""},
		{"web:tcp:0", "port \"0\" must be 1..65535"},
		{"web:tcp:70000", "port \"70000\""},
		{"web:tcp:65536", "port \"65536\""},
		{"web:tcp:+80", "port \"+80\""},
		{"web:tcp:80-", "port \"80-\""},
		{"web:tcp:-80", "port \"-80\""},
		{"web:tcp:90-80", "range 90-80 is reversed"},
		{"web:tcp:80:81", "port \"80:81\""},
		{"web:tcp:8 0", "port_whitelist[1]"},
		{"web:tcp:80 mail:tcp:70-90", "port_whitelist[1]: tcp 70-90 of tenant mail overlaps port_whitelist[0] of tenant web"},
		{"web:tcp:80-90 mail:tcp:90", "overlaps port_whitelist[0] of tenant web"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&err, 0, sizeof(err));
		if (nft_whitelist_parse(bad[i].text, wl, &err) != -1 || !strstr(err.msg, bad[i].want))
			fail_msg("\"%s\": got \"%s\", want \"%s\"", bad[i].text, err.msg, bad[i].want);
		assert_int_equal(err.code, VMLET_E_INVALID);
		assert_int_equal(wl->n, 0); /* a refused whitelist allows nothing */
	}
	/* mail:tcp:80 next to web:udp:80 is fine: different protocols */
	assert_int_equal(nft_whitelist_parse("web:udp:80 mail:tcp:80", wl, &err), 0);
	/* more than NFT_WL_MAX entries */
	{
		size_t cap = (NFT_WL_MAX + 1) * 16, o = 0;
		char *text = malloc(cap);

		assert_non_null(text);
		for (int i = 0; i <= NFT_WL_MAX; i++)
			o += (size_t)snprintf(text + o, cap - o, "t:tcp:%d ", 1000 + i);
		assert_int_equal(nft_whitelist_parse(text, wl, &err), -1);
		assert_non_null(strstr(err.msg, "more than 256 entries"));
		free(text);
	}
	free(wl);
}

static void test_publish_allowed(void **state)
{
	struct nft_whitelist *wl = calloc(1, sizeof(*wl));
	struct vmlet_err err;
	uint32_t lo, hi;

	assert_non_null(wl);
	assert_int_equal(nft_whitelist_parse("web:tcp:80 web:tcp:40000 game:udp:27000-27015", wl, &err), 0);
	assert_int_equal(nft_publish_allowed(wl, "web", NFT_PROTO_TCP, 80, &err), 0);
	assert_int_equal(nft_publish_allowed(wl, "game", NFT_PROTO_UDP, 27000, &err), 0);
	assert_int_equal(nft_publish_allowed(wl, "game", NFT_PROTO_UDP, 27015, &err), 0);

	/* no whitelist entry, no publish */
	assert_int_equal(nft_publish_allowed(wl, "web", NFT_PROTO_TCP, 81, &err), -1);
	assert_int_equal(err.code, VMLET_E_FORBIDDEN);
	assert_non_null(strstr(err.msg, "tenant web may not publish tcp/81: the port whitelist has no entry"));
	/* the entry is for tcp, not udp */
	assert_int_equal(nft_publish_allowed(wl, "web", NFT_PROTO_UDP, 80, &err), -1);
	assert_int_equal(err.code, VMLET_E_FORBIDDEN);
	/* only the tenant named may publish the port */
	assert_int_equal(nft_publish_allowed(wl, "game", NFT_PROTO_TCP, 80, &err), -1);
	assert_int_equal(err.code, VMLET_E_FORBIDDEN);
	assert_non_null(strstr(err.msg, "gives it to tenant web"));
	assert_int_equal(nft_publish_allowed(wl, "game", NFT_PROTO_UDP, 27016, &err), -1);
	/* an ephemeral port is no exception: whitelisted for web, refused for
	 * others, and a non-whitelisted ephemeral port is refused to all */
	assert_int_equal(nft_ephemeral_range(&lo, &hi, &err), 0);
	assert_int_equal(nft_publish_allowed(wl, "web", NFT_PROTO_TCP, 40000, &err), 0);
	assert_int_equal(nft_publish_allowed(wl, "game", NFT_PROTO_TCP, 40000, &err), -1);
	assert_int_equal(nft_publish_allowed(wl, "web", NFT_PROTO_TCP, lo == 40000 ? lo + 1 : lo, &err), -1);
	assert_int_equal(err.code, VMLET_E_FORBIDDEN);
	assert_int_equal(nft_publish_allowed(wl, "web", NFT_PROTO_TCP, hi == 40000 ? hi - 1 : hi, &err), -1);
	/* an empty whitelist (or none at all) allows nothing */
	assert_int_equal(nft_publish_allowed(NULL, "web", NFT_PROTO_TCP, 80, &err), -1);
	assert_int_equal(err.code, VMLET_E_FORBIDDEN);
	/* bad input */
	assert_int_equal(nft_publish_allowed(wl, "Web", NFT_PROTO_TCP, 80, &err), -1);
	assert_int_equal(err.code, VMLET_E_INVALID);
	assert_int_equal(nft_publish_allowed(wl, NULL, NFT_PROTO_TCP, 80, &err), -1);
	assert_int_equal(nft_publish_allowed(wl, "web", 7, 80, &err), -1);
	assert_int_equal(err.code, VMLET_E_INVALID);
	assert_int_equal(nft_publish_allowed(wl, "web", NFT_PROTO_TCP, 0, &err), -1);
	assert_int_equal(err.code, VMLET_E_INVALID);
	assert_int_equal(nft_publish_allowed(wl, "web", NFT_PROTO_TCP, 70000, &err), -1);
	assert_int_equal(err.code, VMLET_E_INVALID);
	free(wl);
}

static void test_ephemeral(void **state)
{
	struct nft_whitelist *wl = calloc(1, sizeof(*wl));
	struct vmlet_err err;
	uint32_t lo = 0, hi = 0, port = 0, want_lo, want_hi;
	const uint32_t taken[] = {40003, 40004};
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");

	assert_non_null(wl);
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%u %u", &want_lo, &want_hi), 2);
	fclose(f);
	assert_int_equal(nft_ephemeral_range(&lo, &hi, &err), 0);
	assert_int_equal(lo, want_lo);
	assert_int_equal(hi, want_hi);

	/* ephemeral ports never squat on whitelisted ones, of any tenant */
	assert_int_equal(nft_whitelist_parse("web:tcp:40000-40001 game:tcp:40002 game:udp:40005", wl, &err), 0);
	assert_int_equal(nft_publish_pick_ephemeral(wl, NFT_PROTO_TCP, 40000, 40010, taken, 2, &port, &err), 0);
	assert_int_equal(port, 40005);
	assert_int_equal(nft_publish_pick_ephemeral(wl, NFT_PROTO_UDP, 40005, 40010, NULL, 0, &port, &err), 0);
	assert_int_equal(port, 40006);
	assert_int_equal(nft_publish_pick_ephemeral(wl, NFT_PROTO_TCP, 40000, 40004, taken, 2, &port, &err), -1);
	assert_int_equal(err.code, VMLET_E_CONFLICT);
	assert_int_equal(nft_publish_pick_ephemeral(wl, NFT_PROTO_TCP, 0, 10, NULL, 0, &port, &err), -1);
	assert_int_equal(err.code, VMLET_E_INVALID);
	assert_int_equal(nft_publish_pick_ephemeral(wl, NFT_PROTO_TCP, 10, 9, NULL, 0, &port, &err), -1);
	assert_int_equal(nft_publish_pick_ephemeral(wl, 0, 10, 20, NULL, 0, &port, &err), -1);
	free(wl);
}

/* ---- root: the kernel ---------------------------------------------------------- */

/* A fresh network namespace for this test (the kernel's ruleset there is
 * empty); false with a reason when that is not possible. */
static bool enter_new_netns(void)
{
	if (geteuid() != 0) {
		print_message("SKIP: needs root (nftables in a new network namespace)\n");
		return false;
	}
	if (unshare(CLONE_NEWNET) < 0) {
		print_message("SKIP: unshare(CLONE_NEWNET): %s\n", strerror(errno));
		return false;
	}
	return true;
}

/* The test's own libnftables context (an independent look at the kernel,
 * not through hostd/nft.c). *out gets the output buffer when asked. */
static int tnft(const char *cmd, unsigned flags, char **out)
{
	struct nft_ctx *c = nft_ctx_new(NFT_CTX_DEFAULT);
	int rc;

	assert_non_null(c);
	nft_ctx_output_set_flags(c, flags);
	nft_ctx_buffer_output(c);
	nft_ctx_buffer_error(c);
	rc = nft_run_cmd_from_buffer(c, cmd);
	if (out)
		*out = strdup(nft_ctx_get_output_buffer(c));
	if (rc != 0 && getenv("TEST_NFT_DEBUG"))
		print_message("nft %s: %s\n", cmd, nft_ctx_get_error_buffer(c));
	nft_ctx_free(c);
	return rc;
}

/* Handle of the rule carrying comment in table family vmlet, -1 if none. */
static long rule_handle(const char *family, const char *comment)
{
	char cmd[64], *out = NULL;
	json_t *doc, *o;
	size_t i;
	long h = -1;

	snprintf(cmd, sizeof(cmd), "list table %s vmlet", family);
	assert_int_equal(tnft(cmd, NFT_CTX_OUTPUT_JSON | NFT_CTX_OUTPUT_HANDLE, &out), 0);
	doc = json_loads(out, 0, NULL);
	assert_non_null(doc);
	json_array_foreach(json_object_get(doc, "nftables"), i, o) {
		json_t *r = json_object_get(o, "rule");
		const char *c = json_string_value(json_object_get(r, "comment"));

		if (c && !strcmp(c, comment))
			h = (long)json_integer_value(json_object_get(r, "handle"));
	}
	json_decref(doc);
	free(out);
	return h;
}

static void print_failed(const struct nft_verify *v)
{
	for (size_t i = 0; i < v->n_checks; i++)
		if (!v->checks[i].ok)
			print_message("  FAIL %s\n    expected %s\n    found    %s\n", v->checks[i].name,
				      v->checks[i].expected, v->checks[i].found);
}

/* Read back; return the number of failed checks, printing them when
 * that is not the number the caller expects (SIZE_MAX: any number). */
static size_t verify_failures_ex(const struct nft_model *m, struct nft_verify *v, size_t expect)
{
	struct vmlet_err err;

	if (nft_read(m, v, &err) != 0)
		fail_msg("nft_read: %s", err.msg);
	if (expect != SIZE_MAX && v->n_failed != expect)
		print_failed(v);
	return v->n_failed;
}
#define verify_failures(m, v) verify_failures_ex((m), (v), 0)

static const struct nft_check *find_check(const struct nft_verify *v, const char *name)
{
	for (size_t i = 0; i < v->n_checks; i++)
		if (!strcmp(v->checks[i].name, name))
			return &v->checks[i];
	return NULL;
}

static void test_apply_read_verify(void **state)
{
	struct fixture f;
	struct vmlet_err err;
	struct nft_verify v;
	const struct nft_check *c;
	char *out = NULL;

	if (!enter_new_netns())
		skip();
	fixture_init(&f);
	if (nft_apply(&f.m, &err) != 0)
		fail_msg("nft_apply: %s", err.msg);
	assert_int_equal(verify_failures(&f.m, &v), 0);
	/* 2 tables + 5 chains + 24 rules + 5 orders */
	assert_int_equal(v.n_checks, 2 + 5 + 24 + 5);
	c = find_check(&v, "rule vmlet:isolate:1");
	assert_non_null(c);
	assert_true(c->ok);
	assert_string_equal(c->expected, c->found);
	assert_non_null(strstr(c->found, "\"chain\":\"forward\""));
	assert_non_null(find_check(&v, "chain bridge vmlet prerouting"));
	c = find_check(&v, "order inet vmlet forward");
	assert_non_null(c);
	assert_non_null(strstr(c->expected, "vmlet:intra:1 vmlet:isolate:1 vmlet:intra:2"));
	nft_verify_free(&v);

	/* An independent look: the kernel holds the rules as nft prints them. */
	assert_int_equal(tnft("list table inet vmlet", 0, &out), 0);
	assert_non_null(strstr(out, "iifname \"br-tenant-1\" oifname \"br-tenant-*\" oifname != \"br-tenant-1\" drop comment \"vmlet:isolate:1\""));
	assert_non_null(strstr(out, "dnat ip to 10.1.0.2:80 comment \"vmlet:publish:tcp:8080\""));
	assert_non_null(strstr(out, "oifname \"up0\" ip saddr 10.2.0.0/16 masquerade"));
	free(out);
	assert_int_equal(tnft("list table bridge vmlet", 0, &out), 0);
	assert_non_null(strstr(out, "iifname \"tn1i2\" ip saddr 10.1.0.3 accept"));
	assert_non_null(strstr(out, "iifname \"tn*\" drop"));
	free(out);

	/* Applying the same model again changes nothing visible. */
	assert_int_equal(nft_apply(&f.m, &err), 0);
	assert_int_equal(verify_failures(&f.m, &v), 0);
	nft_verify_free(&v);
}

/* Without our tables every check fails (nft_read is not vacuous). */
static void test_read_without_tables(void **state)
{
	struct fixture f;
	struct nft_verify v;
	const struct nft_check *c;

	if (!enter_new_netns())
		skip();
	fixture_init(&f);
	assert_int_equal(verify_failures_ex(&f.m, &v, 2 + 5 + 24), 2 + 5 + 24);
	c = find_check(&v, "table inet vmlet");
	assert_non_null(c);
	assert_false(c->ok);
	assert_string_equal(c->found, "(missing)");
	c = find_check(&v, "rule vmlet:masq:2");
	assert_non_null(c);
	assert_string_equal(c->found, "(missing)");
	nft_verify_free(&v);
}

static void test_verify_detects_tampering(void **state)
{
	struct fixture f;
	struct vmlet_err err;
	struct nft_verify v;
	const struct nft_check *c;
	char cmd[256];
	long h;

	if (!enter_new_netns())
		skip();
	fixture_init(&f);
	assert_int_equal(nft_apply(&f.m, &err), 0);

	/* 1. a rule deleted out of band is named */
	h = rule_handle("inet", "vmlet:isolate:1");
	assert_true(h > 0);
	snprintf(cmd, sizeof(cmd), "delete rule inet vmlet forward handle %ld", h);
	assert_int_equal(tnft(cmd, 0, NULL), 0);
	assert_int_equal(verify_failures_ex(&f.m, &v, 1), 1);
	c = find_check(&v, "rule vmlet:isolate:1");
	assert_non_null(c);
	assert_false(c->ok);
	assert_string_equal(c->found, "(missing)");
	assert_non_null(strstr(c->expected, "\"drop\""));
	nft_verify_free(&v);
	/* ... and repaired by applying again */
	assert_int_equal(nft_apply(&f.m, &err), 0);
	assert_int_equal(verify_failures(&f.m, &v), 0);
	nft_verify_free(&v);

	/* 2. a rule changed behind its comment */
	h = rule_handle("bridge", "vmlet:spoof-ip:tn1i1");
	assert_true(h > 0);
	snprintf(cmd, sizeof(cmd),
		 "replace rule bridge vmlet prerouting handle %ld iifname \"tn1i1\" accept comment \"vmlet:spoof-ip:tn1i1\"",
		 h);
	assert_int_equal(tnft(cmd, 0, NULL), 0);
	assert_int_equal(verify_failures_ex(&f.m, &v, 1), 1);
	c = find_check(&v, "rule vmlet:spoof-ip:tn1i1");
	assert_non_null(c);
	assert_false(c->ok);
	assert_null(strstr(c->found, "10.1.0.2"));
	assert_non_null(strstr(c->expected, "10.1.0.2"));
	nft_verify_free(&v);

	/* 3. a foreign rule inserted into our chain */
	assert_int_equal(nft_apply(&f.m, &err), 0);
	assert_int_equal(tnft("insert rule inet vmlet forward iifname \"br-tenant-1\" accept", 0, NULL), 0);
	assert_int_equal(verify_failures_ex(&f.m, &v, 1), 1);
	assert_true(!strncmp(v.checks[v.n_checks - 1].name, "unexpected inet rule handle ", 28));
	assert_non_null(strstr(v.checks[v.n_checks - 1].found, "br-tenant-1"));
	nft_verify_free(&v);

	/* 4. our own rule moved (deleted and appended at the end) */
	assert_int_equal(nft_apply(&f.m, &err), 0);
	h = rule_handle("inet", "vmlet:established");
	snprintf(cmd, sizeof(cmd), "delete rule inet vmlet forward handle %ld", h);
	assert_int_equal(tnft(cmd, 0, NULL), 0);
	assert_int_equal(tnft("add rule inet vmlet forward ct state established,related accept comment \"vmlet:established\"", 0, NULL), 0);
	assert_int_equal(verify_failures_ex(&f.m, &v, 1), 1);
	c = find_check(&v, "order inet vmlet forward");
	assert_non_null(c);
	assert_false(c->ok);
	nft_verify_free(&v);

	/* 5. a chain added to our table, a chain's policy changed */
	assert_int_equal(nft_apply(&f.m, &err), 0);
	assert_int_equal(tnft("add chain inet vmlet sneaky", 0, NULL), 0);
	assert_int_equal(tnft("add chain bridge vmlet prerouting { policy drop; }", 0, NULL), 0);
	assert_int_equal(verify_failures_ex(&f.m, &v, 2), 2);
	c = find_check(&v, "chain bridge vmlet prerouting");
	assert_non_null(c);
	assert_false(c->ok);
	assert_non_null(strstr(c->found, "\"policy\":\"drop\""));
	nft_verify_free(&v);

	/* 6. a whole table dropped */
	assert_int_equal(nft_apply(&f.m, &err), 0);
	assert_int_equal(tnft("delete table bridge vmlet", 0, NULL), 0);
	assert_int_equal(verify_failures_ex(&f.m, &v, 1 + 1 + 7), 1 + 1 + 7);
	nft_verify_free(&v);

	assert_int_equal(nft_apply(&f.m, &err), 0);
	assert_int_equal(verify_failures(&f.m, &v), 0);
	nft_verify_free(&v);
}

/* A model B replaces model A completely; nft_remove drops both tables,
 * twice is fine; a foreign table (with a drop policy!) is left alone. */
static void test_replace_and_remove(void **state)
{
	struct fixture a, b;
	struct vmlet_err err;
	struct nft_verify v;
	char *out = NULL;

	if (!enter_new_netns())
		skip();
	assert_int_equal(tnft("add table inet other; add chain inet other c { type filter hook forward priority 10; policy drop; }", 0, NULL), 0);
	fixture_init(&a);
	fixture_init(&b);
	b.m.n_tenants = 1;
	b.m.n_instances = 2;
	b.m.n_publishes = 1;
	b.p[0].host_port = 9090;
	assert_int_equal(nft_apply(&a.m, &err), 0);
	assert_int_equal(nft_apply(&b.m, &err), 0);
	assert_int_equal(verify_failures(&b.m, &v), 0);
	nft_verify_free(&v);
	assert_true(verify_failures_ex(&a.m, &v, SIZE_MAX) > 0);
	nft_verify_free(&v);
	assert_int_equal(rule_handle("inet", "vmlet:publish:tcp:8080"), -1);
	assert_true(rule_handle("inet", "vmlet:publish:tcp:9090") > 0);
	assert_int_equal(rule_handle("bridge", "vmlet:spoof-ip:tn2i1"), -1);

	assert_int_equal(nft_remove(&err), 0);
	assert_int_equal(nft_remove(&err), 0);
	assert_int_not_equal(tnft("list table inet vmlet", 0, NULL), 0);
	assert_int_not_equal(tnft("list table bridge vmlet", 0, NULL), 0);
	assert_int_equal(tnft("list ruleset", 0, &out), 0);
	assert_non_null(strstr(out, "table inet other"));
	assert_non_null(strstr(out, "policy drop"));
	free(out);
}

/* A transaction the kernel refuses changes nothing. The refusal is real:
 * another netlink socket owns `bridge vmlet` (flags owner), so the kernel
 * refuses our delete of it — which comes after inet vmlet was already
 * deleted and re-added with model B in the same batch. */
static void test_apply_is_atomic(void **state)
{
	struct fixture a, b;
	struct vmlet_err err;
	struct nft_verify v;
	struct nft_ctx *owner;
	char *out = NULL;

	if (!enter_new_netns())
		skip();
	fixture_init(&a);
	fixture_init(&b);
	b.m.n_tenants = 1;
	b.m.n_instances = 2;
	b.m.n_publishes = 1;
	b.p[0].host_port = 9090;
	assert_int_equal(nft_apply(&a.m, &err), 0);

	owner = nft_ctx_new(NFT_CTX_DEFAULT);
	assert_non_null(owner);
	nft_ctx_buffer_error(owner);
	assert_int_equal(nft_run_cmd_from_buffer(owner, "delete table bridge vmlet"), 0);
	if (nft_run_cmd_from_buffer(owner, "add table bridge vmlet { flags owner; }") != 0) {
		print_message("SKIP: table flag owner unsupported: %s\n", nft_ctx_get_error_buffer(owner));
		nft_ctx_free(owner);
		skip();
	}
	memset(&err, 0, sizeof(err));
	assert_int_equal(nft_apply(&b.m, &err), -1);
	assert_int_equal(err.code, VMLET_E_INTERNAL);
	assert_non_null(strstr(err.msg, "refused (nothing changed)"));
	print_message("refusal: %s\n", err.msg);

	/* inet vmlet is still model A, rule for rule. */
	assert_int_equal(tnft("list table inet vmlet", 0, &out), 0);
	assert_non_null(strstr(out, "vmlet:publish:tcp:8080"));
	assert_non_null(strstr(out, "vmlet:intra:2"));
	assert_null(strstr(out, "vmlet:publish:tcp:9090"));
	free(out);
	assert_int_equal(nft_read(&a.m, &v, &err), 0);
	for (size_t i = 0; i < v.n_checks; i++) {
		const struct nft_check *c = &v.checks[i];
		bool bridge = strstr(c->name, "bridge") || strstr(c->name, "spoof");

		if (!bridge && !c->ok)
			fail_msg("%s failed after a refused apply: found %s", c->name, c->found);
	}
	nft_verify_free(&v);

	/* The owner goes away, its table with it; now B applies. */
	nft_ctx_free(owner);
	assert_int_equal(nft_apply(&b.m, &err), 0);
	assert_int_equal(verify_failures(&b.m, &v), 0);
	nft_verify_free(&v);
}

/* ---- root: real traffic -------------------------------------------------------- */

/* Waits (ms). A packet that is allowed arrives well within REACH_MS; a
 * dropped one is given NOREACH_MS to show up. Every child also has an
 * alarm() so that nothing can hang the test. */
#define REACH_MS 5000
#define NOREACH_MS 1000
#define CHILD_ALARM_S 15

#define NODE_UP IP4(192, 0, 2, 1)   /* node's address on the uplink */
#define UPLINK IP4(192, 0, 2, 2)    /* the uplink namespace */
#define G11 IP4(10, 1, 0, 2)        /* tenant 1, tn1i1 */
#define G12 IP4(10, 1, 0, 3)        /* tenant 1, tn1i2 */
#define G21 IP4(10, 2, 0, 2)        /* tenant 2, tn2i1 */
#define GW1 IP4(10, 1, 0, 1)
#define GW2 IP4(10, 2, 0, 1)

enum { NS_NODE, NS_G11, NS_G12, NS_G21, NS_UP, NS_COUNT };

static struct {
	bool tried, ready;
	char why[160];
	int fd[NS_COUNT];
	struct fixture f;
} net = {.fd = {-1, -1, -1, -1, -1}};

/* Run `ip -batch -` in namespace fd with the given commands. */
static bool ns_ip(int fd, const char *batch)
{
	int p[2], status;
	pid_t pid;

	if (pipe(p) < 0)
		return false;
	pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		alarm(CHILD_ALARM_S);
		if (setns(fd, CLONE_NEWNET) < 0 || dup2(p[0], 0) < 0)
			_exit(127);
		close(p[0]);
		close(p[1]);
		execlp("ip", "ip", "-batch", "-", (char *)NULL);
		_exit(127);
	}
	close(p[0]);
	if (write(p[1], batch, strlen(batch)) != (ssize_t)strlen(batch)) {
		close(p[1]);
		waitpid(pid, &status, 0);
		return false;
	}
	close(p[1]);
	if (waitpid(pid, &status, 0) != pid)
		return false;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* A new namespace held by an fd (not close-on-exec: `ip ... netns
 * /proc/<pid>/fd/<n>` opens it by that path); the caller stays where it was. */
static int new_netns(void)
{
	int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC), fd = -1;

	if (self < 0)
		return -1;
	if (unshare(CLONE_NEWNET) == 0)
		fd = open("/proc/self/ns/net", O_RDONLY);
	if (setns(self, CLONE_NEWNET) < 0) {
		close(self);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(self);
	return fd;
}

static int write_sysctl(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, value, strlen(value));
	close(fd);
	return n == (ssize_t)strlen(value) ? 0 : -1;
}

/* Build the namespaces once (first traffic test); the process itself
 * becomes the node. */
static void traffic_setup(void)
{
	char b[2048];
	pid_t me = getpid();
	static const struct {
		int ns;
		const char *tap, *bridge, *addr, *gw;
	} guests[] = {
		{NS_G11, "tn1i1", "br-tenant-1", "10.1.0.2/24", "10.1.0.1"},
		{NS_G12, "tn1i2", "br-tenant-1", "10.1.0.3/24", "10.1.0.1"},
		{NS_G21, "tn2i1", "br-tenant-2", "10.2.0.2/16", "10.2.0.1"},
	};

	fixture_init(&net.f);
	if (geteuid() != 0) {
		snprintf(net.why, sizeof(net.why), "needs root (network namespaces)");
		return;
	}
	if (access("/usr/sbin/ip", X_OK) && access("/sbin/ip", X_OK) && access("/usr/bin/ip", X_OK)) {
		snprintf(net.why, sizeof(net.why), "iproute2's ip is not installed");
		return;
	}
	if (unshare(CLONE_NEWNET) < 0) {
		snprintf(net.why, sizeof(net.why), "unshare: %s", strerror(errno));
		return;
	}
	net.fd[NS_NODE] = open("/proc/self/ns/net", O_RDONLY);
	for (int i = NS_G11; i < NS_COUNT; i++)
		if ((net.fd[i] = new_netns()) < 0) {
			snprintf(net.why, sizeof(net.why), "creating a namespace: %s", strerror(errno));
			return;
		}
	if (write_sysctl("/proc/sys/net/ipv4/ip_forward", "1") < 0) {
		snprintf(net.why, sizeof(net.why), "ip_forward: %s", strerror(errno));
		return;
	}
	/* The node: two tenant bridges with their gateways, the uplink. */
	snprintf(b, sizeof(b),
		 "link set lo up\n"
		 "link add br-tenant-1 type bridge\n"
		 "link add br-tenant-2 type bridge\n"
		 "addr add 10.1.0.1/24 dev br-tenant-1\n"
		 "addr add 10.2.0.1/16 dev br-tenant-2\n"
		 "link set br-tenant-1 up\n"
		 "link set br-tenant-2 up\n"
		 "link add up0 type veth peer name eth0 netns /proc/%d/fd/%d\n"
		 "addr add 192.0.2.1/24 dev up0\n"
		 "link set up0 up\n",
		 (int)me, net.fd[NS_UP]);
	if (!ns_ip(net.fd[NS_NODE], b)) {
		snprintf(net.why, sizeof(net.why), "setting up the node namespace failed");
		return;
	}
	/* Each guest: a veth whose node end is named like its TAP. */
	for (size_t i = 0; i < sizeof(guests) / sizeof(guests[0]); i++) {
		snprintf(b, sizeof(b),
			 "link add %s type veth peer name eth0 netns /proc/%d/fd/%d\n"
			 "link set %s master %s\n"
			 "link set %s up\n",
			 guests[i].tap, (int)me, net.fd[guests[i].ns], guests[i].tap, guests[i].bridge,
			 guests[i].tap);
		if (!ns_ip(net.fd[NS_NODE], b))
			goto fail;
		snprintf(b, sizeof(b),
			 "link set lo up\n"
			 "link set eth0 up\n"
			 "addr add %s dev eth0\n"
			 "route add default via %s\n",
			 guests[i].addr, guests[i].gw);
		if (!ns_ip(net.fd[guests[i].ns], b))
			goto fail;
	}
	/* The uplink knows the way to tenant 1 (so that masquerading, not
	 * routing, is what the egress test observes, and so that a direct
	 * connection to a guest is possible unless the rules stop it). */
	if (!ns_ip(net.fd[NS_UP], "link set lo up\n"
				   "link set eth0 up\n"
				   "addr add 192.0.2.2/24 dev eth0\n"
				   "route add 10.1.0.0/24 via 192.0.2.1\n"))
		goto fail;
	net.ready = true;
	return;
fail:
	snprintf(net.why, sizeof(net.why), "setting up guests/uplink with ip failed");
	return;
}

static void traffic_teardown(void)
{
	for (int i = 0; i < NS_COUNT; i++)
		if (net.fd[i] >= 0)
			close(net.fd[i]);
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static struct sockaddr_in sin_of(uint32_t addr, uint16_t port)
{
	struct sockaddr_in s = {.sin_family = AF_INET, .sin_port = htons(port)};

	s.sin_addr.s_addr = htonl(addr);
	return s;
}

/* ---- servers: a child in a namespace that reports the first peer ---- */

struct server {
	pid_t pid;
	int rfd; /* reads the peer address (4 bytes) or EOF */
};

/* Listen (tcp) or bind (udp) on port in namespace ns; wait up to ms for
 * one connection / datagram. Returns once the socket is ready. */
static void server_start(struct server *s, int ns, int type, uint16_t port, int ms)
{
	int p[2];
	char ready;

	assert_int_equal(pipe(p), 0);
	s->pid = fork();
	assert_true(s->pid >= 0);
	if (s->pid == 0) {
		struct sockaddr_in a = sin_of(INADDR_ANY, port), peer;
		socklen_t pl = sizeof(peer);
		int fd, one = 1;
		struct pollfd pfd;
		char buf[64];

		alarm(CHILD_ALARM_S);
		close(p[0]);
		if (setns(ns, CLONE_NEWNET) < 0)
			_exit(2);
		fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
		if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
		    bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
		    (type == SOCK_STREAM && listen(fd, 4) < 0))
			_exit(2);
		if (write(p[1], "R", 1) != 1)
			_exit(2);
		pfd = (struct pollfd){.fd = fd, .events = POLLIN};
		if (poll(&pfd, 1, ms) != 1)
			_exit(1);
		if (type == SOCK_STREAM) {
			int c = accept(fd, (struct sockaddr *)&peer, &pl);

			if (c < 0)
				_exit(1);
			close(c);
		} else if (recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&peer, &pl) < 0) {
			_exit(1);
		}
		if (write(p[1], &peer.sin_addr.s_addr, 4) != 4)
			_exit(2);
		_exit(0);
	}
	close(p[1]);
	s->rfd = p[0];
	assert_int_equal(read(s->rfd, &ready, 1), 1);
}

/* true when the server saw a peer (its address in *peer). */
static bool server_result(struct server *s, uint32_t *peer)
{
	uint32_t a = 0;
	ssize_t n = read(s->rfd, &a, 4);
	int status;

	close(s->rfd);
	assert_int_equal(waitpid(s->pid, &status, 0), s->pid);
	assert_true(WIFEXITED(status));
	assert_true(WEXITSTATUS(status) < 2);
	if (n != 4)
		return false;
	if (peer)
		*peer = ntohl(a);
	return true;
}

/* ---- clients: a child in a namespace; exit 0 = success ---- */

enum client_kind { C_TCP, C_UDP, C_PING, C_RAW_UDP };

struct client {
	enum client_kind kind;
	uint32_t src; /* C_RAW_UDP: the source address written into the packet */
	uint32_t dst;
	uint16_t port;
	int ms;
};

static int client_tcp(const struct client *c)
{
	struct sockaddr_in d = sin_of(c->dst, c->port);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), e = 0;
	socklen_t el = sizeof(e);
	struct pollfd pfd = {.fd = fd, .events = POLLOUT};

	if (fd < 0)
		return 2;
	if (connect(fd, (struct sockaddr *)&d, sizeof(d)) == 0)
		return 0;
	if (errno != EINPROGRESS || poll(&pfd, 1, c->ms) != 1)
		return 1;
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el);
	return e == 0 ? 0 : 1;
}

/* A few datagrams over the wait (the first may wait for ARP). */
static int client_udp(const struct client *c)
{
	struct sockaddr_in d = sin_of(c->dst, c->port);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	if (fd < 0)
		return 2;
	for (int i = 0; i < 5; i++) {
		sendto(fd, "vmlet", 5, 0, (struct sockaddr *)&d, sizeof(d));
		usleep(100 * 1000);
	}
	return 0;
}

static uint16_t csum(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)(p[len - 1] << 8);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

/* ICMP echo over a raw socket; success = an echo reply from dst with our id. */
static int client_ping(const struct client *c)
{
	struct sockaddr_in d = sin_of(c->dst, 0);
	int fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
	uint16_t id = (uint16_t)getpid();
	long deadline = now_ms() + c->ms, next_send = 0;
	uint16_t seq = 0;

	if (fd < 0)
		return 2;
	for (;;) {
		long now = now_ms(), wait;
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		uint8_t buf[1500];
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n;

		if (now >= deadline)
			return 1;
		if (now >= next_send) {
			struct icmphdr h = {.type = ICMP_ECHO};

			h.un.echo.id = htons(id);
			h.un.echo.sequence = htons(++seq);
			h.checksum = csum(&h, sizeof(h));
			sendto(fd, &h, sizeof(h), 0, (struct sockaddr *)&d, sizeof(d));
			next_send = now + 200;
		}
		wait = (next_send < deadline ? next_send : deadline) - now;
		if (poll(&pfd, 1, (int)(wait > 0 ? wait : 1)) != 1)
			continue;
		n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
		if (n >= (ssize_t)sizeof(struct iphdr)) {
			size_t hl = (size_t)(buf[0] & 0x0f) * 4;
			const struct icmphdr *r = (const struct icmphdr *)(buf + hl);

			if ((size_t)n >= hl + sizeof(*r) && r->type == ICMP_ECHOREPLY &&
			    ntohs(r->un.echo.id) == id && from.sin_addr.s_addr == d.sin_addr.s_addr)
				return 0;
		}
	}
}

/* A UDP datagram with a source address of our choosing (IP_HDRINCL). */
static int client_raw_udp(const struct client *c)
{
	struct {
		struct iphdr ip;
		struct udphdr udp;
		char data[8];
	} __attribute__((packed)) pkt;
	struct sockaddr_in d = sin_of(c->dst, 0);
	int fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);

	if (fd < 0)
		return 2;
	memset(&pkt, 0, sizeof(pkt));
	pkt.ip.version = 4;
	pkt.ip.ihl = 5;
	pkt.ip.ttl = 64;
	pkt.ip.protocol = IPPROTO_UDP;
	pkt.ip.tot_len = htons(sizeof(pkt));
	pkt.ip.saddr = htonl(c->src);
	pkt.ip.daddr = htonl(c->dst);
	pkt.udp.source = htons(40999);
	pkt.udp.dest = htons(c->port);
	pkt.udp.len = htons(sizeof(pkt.udp) + sizeof(pkt.data));
	memcpy(pkt.data, "spoofed", 8); /* UDP checksum 0: none */
	for (int i = 0; i < 5; i++) {
		sendto(fd, &pkt, sizeof(pkt), 0, (struct sockaddr *)&d, sizeof(d));
		usleep(100 * 1000);
	}
	return 0;
}

static bool client_run(int ns, const struct client *c)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		int r = 2;

		alarm(CHILD_ALARM_S);
		if (setns(ns, CLONE_NEWNET) < 0)
			_exit(2);
		switch (c->kind) {
		case C_TCP: r = client_tcp(c); break;
		case C_UDP: r = client_udp(c); break;
		case C_PING: r = client_ping(c); break;
		case C_RAW_UDP: r = client_raw_udp(c); break;
		}
		_exit(r);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_true(WEXITSTATUS(status) < 2);
	return WEXITSTATUS(status) == 0;
}

/* ---- what the tests ask ---- */

static int budget(bool expect) { return expect ? REACH_MS : NOREACH_MS; }

/* TCP from ns `from` to dst:port, server in ns `to` on listen_port. */
static bool tcp_reaches(int from, int to, uint32_t dst, uint16_t port, uint16_t listen_port,
			bool expect, uint32_t *peer)
{
	struct server s;
	struct client c = {C_TCP, 0, dst, port, budget(expect)};

	server_start(&s, net.fd[to], SOCK_STREAM, listen_port, budget(expect) + 500);
	client_run(net.fd[from], &c);
	return server_result(&s, peer);
}

static bool udp_reaches(int from, int to, uint32_t dst, uint16_t port, uint16_t listen_port,
			bool expect, uint32_t *peer)
{
	struct server s;
	struct client c = {C_UDP, 0, dst, port, 0};

	server_start(&s, net.fd[to], SOCK_DGRAM, listen_port, budget(expect) + 500);
	client_run(net.fd[from], &c);
	return server_result(&s, peer);
}

static bool spoof_reaches(int from, int to, uint32_t src, uint32_t dst, uint16_t port,
			  bool expect, uint32_t *peer)
{
	struct server s;
	struct client c = {C_RAW_UDP, src, dst, port, 0};

	server_start(&s, net.fd[to], SOCK_DGRAM, port, budget(expect) + 500);
	client_run(net.fd[from], &c);
	return server_result(&s, peer);
}

static bool ping_reaches(int from, uint32_t dst, bool expect)
{
	struct client c = {C_PING, 0, dst, 0, budget(expect)};

	return client_run(net.fd[from], &c);
}

static void traffic_rules(bool on)
{
	struct vmlet_err err;
	struct nft_verify v;

	if (!on) {
		assert_int_equal(nft_remove(&err), 0);
		return;
	}
	if (nft_apply(&net.f.m, &err) != 0)
		fail_msg("nft_apply: %s", err.msg);
	assert_int_equal(verify_failures(&net.f.m, &v), 0);
	nft_verify_free(&v);
}

/* The kernel tests before move the process to namespaces of their own:
 * come back to the node first. */
#define NEED_NET()                                                                             \
	do {                                                                                   \
		if (!net.tried) {                                                              \
			net.tried = true;                                                      \
			traffic_setup();                                                       \
		}                                                                              \
		if (!net.ready) {                                                              \
			print_message("SKIP: %s\n", net.why);                                  \
			skip();                                                                \
		}                                                                              \
		assert_int_equal(setns(net.fd[NS_NODE], CLONE_NEWNET), 0);                     \
	} while (0)

/* Without vmlet's tables everything below passes: each negative check of
 * the later tests can fail. */
static void test_traffic_control_without_rules(void **state)
{
	uint32_t peer = 0;

	NEED_NET();
	traffic_rules(false);
	assert_true(ping_reaches(NS_G11, G21, true));
	assert_true(ping_reaches(NS_G11, GW2, true));
	assert_true(tcp_reaches(NS_G11, NS_G21, G21, 7001, 7001, true, NULL));
	assert_true(udp_reaches(NS_G21, NS_G11, G11, 7002, 7002, true, NULL));
	assert_true(spoof_reaches(NS_G11, NS_G12, IP4(10, 1, 0, 9), G12, 7003, true, &peer));
	assert_int_equal(peer, IP4(10, 1, 0, 9));
	assert_true(tcp_reaches(NS_UP, NS_G11, G11, 7004, 7004, true, NULL));
	/* not masqueraded: the uplink sees the guest's own address */
	assert_true(tcp_reaches(NS_G11, NS_UP, UPLINK, 7005, 7005, true, &peer));
	assert_int_equal(peer, G11);
	/* nothing is published */
	assert_false(tcp_reaches(NS_UP, NS_G11, NODE_UP, 8080, 80, false, NULL));
}

static void test_traffic_intra_tenant(void **state)
{
	uint32_t peer = 0;

	NEED_NET();
	traffic_rules(true);
	assert_true(ping_reaches(NS_G11, G12, true));
	assert_true(ping_reaches(NS_G12, G11, true));
	assert_true(ping_reaches(NS_G11, GW1, true));
	assert_true(ping_reaches(NS_G21, GW2, true));
	assert_true(tcp_reaches(NS_G11, NS_G12, G12, 7101, 7101, true, &peer));
	assert_int_equal(peer, G11);
	assert_true(udp_reaches(NS_G12, NS_G11, G11, 7102, 7102, true, &peer));
	assert_int_equal(peer, G12);
}

static void test_traffic_cross_tenant(void **state)
{
	NEED_NET();
	traffic_rules(true);
	assert_false(ping_reaches(NS_G11, G21, false));
	assert_false(ping_reaches(NS_G21, G11, false));
	assert_false(tcp_reaches(NS_G11, NS_G21, G21, 7201, 7201, false, NULL));
	assert_false(tcp_reaches(NS_G21, NS_G12, G12, 7202, 7202, false, NULL));
	assert_false(udp_reaches(NS_G21, NS_G11, G11, 7203, 7203, false, NULL));
	assert_false(udp_reaches(NS_G11, NS_G21, G21, 7204, 7204, false, NULL));
	/* nor at the other tenant's gateway on the host */
	assert_false(ping_reaches(NS_G11, GW2, false));
	assert_false(ping_reaches(NS_G21, GW1, false));
}

static void test_traffic_spoofing(void **state)
{
	uint32_t peer = 0;

	NEED_NET();
	traffic_rules(true);
	/* the same raw sender with its true address gets through ... */
	assert_true(spoof_reaches(NS_G11, NS_G12, G11, G12, 7301, true, &peer));
	assert_int_equal(peer, G11);
	/* ... a forged one does not: bridged (same tenant) */
	assert_false(spoof_reaches(NS_G11, NS_G12, IP4(10, 1, 0, 9), G12, 7302, false, NULL));
	/* routed, claiming to be another instance of its tenant */
	assert_true(spoof_reaches(NS_G11, NS_UP, G11, UPLINK, 7303, true, &peer));
	assert_int_equal(peer, NODE_UP);
	assert_false(spoof_reaches(NS_G11, NS_UP, G12, UPLINK, 7304, false, NULL));
	/* claiming an address of another tenant */
	assert_false(spoof_reaches(NS_G11, NS_UP, G21, UPLINK, 7305, false, NULL));
}

static void test_traffic_egress_masquerade(void **state)
{
	uint32_t peer = 0;

	NEED_NET();
	traffic_rules(true);
	assert_true(tcp_reaches(NS_G11, NS_UP, UPLINK, 7401, 7401, true, &peer));
	assert_int_equal(peer, NODE_UP);
	assert_true(tcp_reaches(NS_G21, NS_UP, UPLINK, 7402, 7402, true, &peer));
	assert_int_equal(peer, NODE_UP);
	assert_true(udp_reaches(NS_G12, NS_UP, UPLINK, 7403, 7403, true, &peer));
	assert_int_equal(peer, NODE_UP);
}

static void test_traffic_published_ports(void **state)
{
	uint32_t peer = 0;

	NEED_NET();
	traffic_rules(true);
	/* tcp 8080 -> 10.1.0.2:80, the client's address preserved */
	assert_true(tcp_reaches(NS_UP, NS_G11, NODE_UP, 8080, 80, true, &peer));
	assert_int_equal(peer, UPLINK);
	/* udp 5353 -> 10.2.0.2:53 */
	assert_true(udp_reaches(NS_UP, NS_G21, NODE_UP, 5353, 53, true, &peer));
	assert_int_equal(peer, UPLINK);
	/* only what the model publishes: not 8081, not tcp/5353, not the
	 * guest directly although the uplink has a route to it */
	assert_false(tcp_reaches(NS_UP, NS_G11, NODE_UP, 8081, 80, false, NULL));
	assert_false(tcp_reaches(NS_UP, NS_G21, NODE_UP, 5353, 53, false, NULL));
	assert_false(tcp_reaches(NS_UP, NS_G11, G11, 7501, 7501, false, NULL));
	/* a tenant cannot use the published port to reach another tenant */
	assert_false(tcp_reaches(NS_G21, NS_G11, NODE_UP, 8080, 80, false, NULL));
}

/* An operator (or a bug) re-attaches tn1i1 to tenant 2's bridge. The
 * bridge table still accepts 10.1.0.2 from tn1i1, but the host answers
 * ARP for any of its addresses on any bridge, so the guest could route
 * into tenant 2 through br-tenant-2; intra:2 only forwards tenant 2's
 * subnet. One-way UDP, since replies would go to br-tenant-1 anyway. */
static void test_traffic_tap_moved(void **state)
{
	static const char move[] = "link set tn1i1 master br-tenant-2\n";
	static const char back[] = "link set tn1i1 master br-tenant-1\n";
	static const char flush[] = "neigh flush dev eth0\n";
	bool without, with;

	NEED_NET();
	assert_true(ns_ip(net.fd[NS_NODE], move));
	assert_true(ns_ip(net.fd[NS_G11], flush));
	traffic_rules(false);
	without = udp_reaches(NS_G11, NS_G21, G21, 7601, 7601, true, NULL);
	traffic_rules(true);
	with = udp_reaches(NS_G11, NS_G21, G21, 7602, 7602, false, NULL);
	assert_true(ns_ip(net.fd[NS_NODE], back));
	assert_true(ns_ip(net.fd[NS_G11], flush));
	assert_true(without);
	assert_false(with);
	/* back home, it works again */
	assert_true(ping_reaches(NS_G11, G12, true));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* pure */
		cmocka_unit_test(test_render_golden),
		cmocka_unit_test(test_render_no_uplink),
		cmocka_unit_test(test_render_empty),
		cmocka_unit_test(test_render_commands),
		cmocka_unit_test(test_hostile_models),
		cmocka_unit_test(test_model_edges_ok),
		cmocka_unit_test(test_whitelist_parse),
		cmocka_unit_test(test_publish_allowed),
		cmocka_unit_test(test_ephemeral),
		/* the kernel, one namespace per test */
		cmocka_unit_test(test_apply_read_verify),
		cmocka_unit_test(test_read_without_tables),
		cmocka_unit_test(test_verify_detects_tampering),
		cmocka_unit_test(test_replace_and_remove),
		cmocka_unit_test(test_apply_is_atomic),
		/* traffic, in the namespaces built by the first of them */
		cmocka_unit_test(test_traffic_control_without_rules),
		cmocka_unit_test(test_traffic_intra_tenant),
		cmocka_unit_test(test_traffic_cross_tenant),
		cmocka_unit_test(test_traffic_spoofing),
		cmocka_unit_test(test_traffic_egress_masquerade),
		cmocka_unit_test(test_traffic_published_ports),
		cmocka_unit_test(test_traffic_tap_moved),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);

	traffic_teardown();
	return r;
}
