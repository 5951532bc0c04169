/* Tenant bridges and TAPs through rtnetlink with libnl-3 (see netlink.h).
 * Model: OpenBSD vmd's priv.c, which acts only on interfaces it can prove
 * are its own; here the proof is the IFLA_IFALIAS mark plus name and kind.
 *
 * Writes go through libnl-route's request builders (rtnl_link_*, rtnl_addr_*)
 * and one small exchange loop of ours, so the kernel's errno and extack
 * message reach the caller. Reads are raw RTM_GETLINK / RTM_GETADDR
 * replies parsed here, because libnl's link object has no tun attributes
 * (owner, group, persist) and verify needs them from the kernel, not from
 * /sys (which shows the netns it was mounted in). */
#include "hostd/netlink.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>

#include "hostd/uidalloc.h"
#include "shared/cleanup.h"
#include "shared/log.h"
#include "shared/validate.h"

#define BRIDGE_PREFIX "br-tenant-"
#define TAP_PREFIX "tn"
#define ALIAS_BRIDGE "vmlet:tenant="
#define ALIAS_TAP "vmlet:tap="
#define ALIAS_BUF 48 /* our longest: "vmlet:tap=4094/65535" */

#define MAC_ROLE_GUEST 0xfc
#define MAC_ROLE_TAP 0xfd
#define MAC_ROLE_BRIDGE 0xfe

#define TUN_PATH "/dev/net/tun"
/* vnet_hdr: QEMU's virtio-net passes checksum/TSO offloads through it
 * (it probes the flag on an fd it is given). One queue: one holder. */
#define TAP_FLAGS (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)

#define IP_FORWARD_PATH "/proc/sys/net/ipv4/ip_forward"

/* Temporary link groups for batched deletes: vmlet's range ("vml" << 8),
 * far from the small numbers people give groups by hand. */
#define BATCH_GROUP_BASE 0x766d6c00u
#define BATCH_GROUP_TRIES 256u
#define DUMP_RETRIES 5
#define EXTACK_MAX 160
#define FOREIGN_LIST_MAX 200

struct net_ctx {
	struct nl_sock *sk;
};

/* ---- validation and names ------------------------------------------------- */

static int check_net_id(unsigned net_id, struct vmlet_err *err)
{
	if (net_id < NET_ID_MIN || net_id > NET_ID_MAX)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "net_id: %u out of range %d..%d",
				     net_id, NET_ID_MIN, NET_ID_MAX);
	return 0;
}

static int check_index(unsigned index, struct vmlet_err *err)
{
	if (index > NET_INDEX_MAX)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "index: %u out of range 0..%u (the MAC holds 16 bits)", index,
				     NET_INDEX_MAX);
	return 0;
}

/* A TAP owned by root or by nobody in particular ((uid_t)-1 disables the
 * kernel's owner check: anyone could attach) is never what hostd means. */
static int check_owner(uid_t uid, gid_t gid, struct vmlet_err *err)
{
	if (uid < UIDALLOC_MIN_BASE || uid == (uid_t)-1)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "owner_uid: %u is not a per-instance uid (%u..%u)", (unsigned)uid,
				     UIDALLOC_MIN_BASE, (unsigned)((uid_t)-1 - 1));
	if (gid < UIDALLOC_MIN_BASE || gid == (gid_t)-1)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "owner_gid: %u is not a per-instance gid (%u..%u)", (unsigned)gid,
				     UIDALLOC_MIN_BASE, (unsigned)((gid_t)-1 - 1));
	return 0;
}

static __attribute__((format(printf, 3, 4))) int
fmt_ifname(char name[NET_IFNAME_MAX], struct vmlet_err *err, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(name, NET_IFNAME_MAX, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= NET_IFNAME_MAX)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "interface name would exceed %d characters (IFNAMSIZ)",
				     NET_IFNAME_MAX - 1);
	return 0;
}

int net_bridge_name(unsigned net_id, char name[NET_IFNAME_MAX], struct vmlet_err *err)
{
	if (check_net_id(net_id, err) < 0)
		return -1;
	return fmt_ifname(name, err, BRIDGE_PREFIX "%u", net_id);
}

int net_tap_name(unsigned net_id, unsigned index, char name[NET_IFNAME_MAX], struct vmlet_err *err)
{
	if (check_net_id(net_id, err) < 0 || check_index(index, err) < 0)
		return -1;
	return fmt_ifname(name, err, TAP_PREFIX "%ui%u", net_id, index);
}

static void mac_build(uint8_t role, unsigned net_id, unsigned index, uint8_t mac[NET_MAC_LEN])
{
	mac[0] = 0x02; /* locally administered, unicast */
	mac[1] = role;
	mac[2] = (uint8_t)(net_id >> 8);
	mac[3] = (uint8_t)net_id;
	mac[4] = (uint8_t)(index >> 8);
	mac[5] = (uint8_t)index;
}

int net_guest_mac(unsigned net_id, unsigned index, uint8_t mac[NET_MAC_LEN], struct vmlet_err *err)
{
	if (check_net_id(net_id, err) < 0 || check_index(index, err) < 0)
		return -1;
	mac_build(MAC_ROLE_GUEST, net_id, index, mac);
	return 0;
}

int net_tap_mac(unsigned net_id, unsigned index, uint8_t mac[NET_MAC_LEN], struct vmlet_err *err)
{
	if (check_net_id(net_id, err) < 0 || check_index(index, err) < 0)
		return -1;
	mac_build(MAC_ROLE_TAP, net_id, index, mac);
	return 0;
}

int net_bridge_mac(unsigned net_id, uint8_t mac[NET_MAC_LEN], struct vmlet_err *err)
{
	if (check_net_id(net_id, err) < 0)
		return -1;
	mac_build(MAC_ROLE_BRIDGE, net_id, 0, mac);
	return 0;
}

void net_mac_format(const uint8_t mac[NET_MAC_LEN], char out[NET_MAC_STR])
{
	snprintf(out, NET_MAC_STR, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
		 mac[4], mac[5]);
}

int net_gateway(const char *subnet, uint32_t *gateway, unsigned *prefix, struct vmlet_err *err)
{
	uint32_t net;

	if (vmlet_validate_tenant_subnet("subnet", subnet, err) < 0 ||
	    vmlet_parse_cidr4("subnet", subnet, &net, prefix, err) < 0)
		return -1;
	*gateway = net + 1; /* /16../29: never the broadcast address */
	return 0;
}

static void format_ip4(uint32_t a, char buf[16])
{
	snprintf(buf, 16, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
}

/* Strict decimal: digits only, no leading zero, <= max. */
static bool parse_uint(const char **pp, unsigned max, unsigned *out)
{
	const char *p = *pp;
	unsigned long v = 0;

	if (*p < '0' || *p > '9' || (*p == '0' && p[1] >= '0' && p[1] <= '9'))
		return false;
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > max)
			return false;
	}
	*pp = p;
	*out = (unsigned)v;
	return true;
}

static bool skip_prefix(const char **pp, const char *prefix)
{
	size_t n = strlen(prefix);

	if (strncmp(*pp, prefix, n) != 0)
		return false;
	*pp += n;
	return true;
}

static bool parse_bridge_alias(const char *s, unsigned *net_id)
{
	return skip_prefix(&s, ALIAS_BRIDGE) && parse_uint(&s, NET_ID_MAX, net_id) &&
	       *net_id >= NET_ID_MIN && *s == '\0';
}

static bool parse_tap_alias(const char *s, unsigned *net_id, unsigned *index)
{
	return skip_prefix(&s, ALIAS_TAP) && parse_uint(&s, NET_ID_MAX, net_id) &&
	       *net_id >= NET_ID_MIN && *s++ == '/' && parse_uint(&s, NET_INDEX_MAX, index) &&
	       *s == '\0';
}

static bool parse_bridge_name(const char *s, unsigned *net_id)
{
	return skip_prefix(&s, BRIDGE_PREFIX) && parse_uint(&s, NET_ID_MAX, net_id) &&
	       *net_id >= NET_ID_MIN && *s == '\0';
}

static bool parse_tap_name(const char *s, unsigned *net_id, unsigned *index)
{
	return skip_prefix(&s, TAP_PREFIX) && parse_uint(&s, NET_ID_MAX, net_id) &&
	       *net_id >= NET_ID_MIN && *s++ == 'i' && parse_uint(&s, NET_INDEX_MAX, index) &&
	       *s == '\0';
}

static void bridge_alias(unsigned net_id, char buf[ALIAS_BUF])
{
	snprintf(buf, ALIAS_BUF, ALIAS_BRIDGE "%u", net_id);
}

static void tap_alias(unsigned net_id, unsigned index, char buf[ALIAS_BUF])
{
	snprintf(buf, ALIAS_BUF, ALIAS_TAP "%u/%u", net_id, index);
}

/* The ownership rule of netlink.h, on a link read from the kernel.
 * full_alias is the whole IFLA_IFALIAS (l->alias may be cut). */
static void classify(struct net_link *l, const char *full_alias)
{
	char want[NET_IFNAME_MAX];
	uint8_t mac[NET_MAC_LEN];
	unsigned a, b;

	l->role = NET_ROLE_FOREIGN;
	l->net_id = 0;
	l->index = 0;
	if (parse_bridge_alias(full_alias, &a)) {
		if (strcmp(l->kind, "bridge") == 0 && net_bridge_name(a, want, NULL) == 0 &&
		    strcmp(want, l->name) == 0) {
			l->role = NET_ROLE_BRIDGE;
			l->net_id = a;
		}
	} else if (parse_tap_alias(full_alias, &a, &b)) {
		if (strcmp(l->kind, "tun") == 0 && l->tap && net_tap_name(a, b, want, NULL) == 0 &&
		    strcmp(want, l->name) == 0) {
			l->role = NET_ROLE_TAP;
			l->net_id = a;
			l->index = b;
		}
	} else if (full_alias[0] == '\0' && strcmp(l->kind, "bridge") == 0 &&
		   parse_bridge_name(l->name, &a) && l->has_mac) {
		/* Created by bridge_ensure, which died before setting the alias. */
		mac_build(MAC_ROLE_BRIDGE, a, 0, mac);
		if (memcmp(mac, l->mac, NET_MAC_LEN) == 0) {
			l->role = NET_ROLE_BRIDGE;
			l->net_id = a;
		}
	}
}

static bool is_our_bridge(const struct net_link *l, unsigned net_id)
{
	return l->role == NET_ROLE_BRIDGE && l->net_id == net_id;
}

static bool is_our_tap(const struct net_link *l, unsigned net_id, unsigned index)
{
	return l->role == NET_ROLE_TAP && l->net_id == net_id && l->index == index;
}

/* "kind=veth alias=\"x\"" for refusal messages; kernel strings are escaped. */
static const char *describe(const struct net_link *l, char *buf, size_t len)
{
	char k[NET_KIND_MAX * 4 + 8], a[NET_ALIAS_MAX * 4 + 8];

	snprintf(buf, len, "kind=%s alias=%s",
		 l->kind[0] ? vlog_str(l->kind, k, sizeof(k)) : "none",
		 l->alias[0] ? vlog_str(l->alias, a, sizeof(a)) : "none");
	return buf;
}

/* ---- the exchange loop ---------------------------------------------------- */

struct exchange {
	uint32_t seq;
	bool done;
	bool interrupted; /* a dump changed under us: retry */
	int kerr;         /* errno from the kernel's NLMSG_ERROR */
	int nlerr;        /* libnl's own failure (NLE_*), when no kernel answer */
	char ext[EXTACK_MAX];
};

static int on_done(struct nl_msg *msg, void *arg)
{
	(void)msg;
	((struct exchange *)arg)->done = true;
	return NL_STOP;
}

/* Replies to an earlier, abandoned request are dropped, not misread. */
static int on_seq(struct nl_msg *msg, void *arg)
{
	return nlmsg_hdr(msg)->nlmsg_seq == ((struct exchange *)arg)->seq ? NL_OK : NL_SKIP;
}

static int on_intr(struct nl_msg *msg, void *arg)
{
	(void)msg;
	((struct exchange *)arg)->interrupted = true;
	return NL_OK;
}

static int on_err(struct sockaddr_nl *who, struct nlmsgerr *e, void *arg)
{
	struct exchange *x = arg;
	struct nlmsghdr *h = (struct nlmsghdr *)((char *)e - NLMSG_HDRLEN);
	struct nlattr *tb[NLMSGERR_ATTR_MAX + 1];

	(void)who;
	if (h->nlmsg_seq != x->seq)
		return NL_SKIP;
	x->kerr = e->error < 0 ? -e->error : EIO;
	x->done = true;
	/* NETLINK_CAP_ACK: the TLVs follow the bare nlmsgerr. */
	if ((h->nlmsg_flags & NLM_F_ACK_TLVS) && (h->nlmsg_flags & NLM_F_CAPPED) &&
	    h->nlmsg_len > NLMSG_HDRLEN + sizeof(*e) &&
	    nla_parse(tb, NLMSGERR_ATTR_MAX, (struct nlattr *)(e + 1),
		      (int)(h->nlmsg_len - NLMSG_HDRLEN - sizeof(*e)), NULL) == 0 &&
	    tb[NLMSGERR_ATTR_MSG] && nla_len(tb[NLMSGERR_ATTR_MSG]) > 0) {
		const char *m = nla_data(tb[NLMSGERR_ATTR_MSG]);
		int n = nla_len(tb[NLMSGERR_ATTR_MSG]);
		snprintf(x->ext, sizeof(x->ext), "%.*s", m[n - 1] == '\0' ? n - 1 : n, m);
	}
	return NL_STOP;
}

/* Send msg and read until its ack, error or end of dump; replies go to
 * on_valid. 0, or -1 with x->kerr (kernel errno) or x->nlerr set. */
static int exchange(struct net_ctx *ctx, struct nl_msg *msg, nl_recvmsg_msg_cb_t on_valid,
		    void *arg, struct exchange *x)
{
	struct nl_cb *cb = nl_cb_alloc(NL_CB_DEFAULT);
	int r;

	memset(x, 0, sizeof(*x));
	if (!cb) {
		x->nlerr = NLE_NOMEM;
		return -1;
	}
	nl_cb_set(cb, NL_CB_FINISH, NL_CB_CUSTOM, on_done, x);
	nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, on_done, x);
	nl_cb_set(cb, NL_CB_SEQ_CHECK, NL_CB_CUSTOM, on_seq, x);
	nl_cb_set(cb, NL_CB_DUMP_INTR, NL_CB_CUSTOM, on_intr, x);
	nl_cb_err(cb, NL_CB_CUSTOM, on_err, x);
	if (on_valid)
		nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, on_valid, arg);
	r = nl_send_auto(ctx->sk, msg);
	if (r < 0) {
		nl_cb_put(cb);
		x->nlerr = -r;
		return -1;
	}
	x->seq = nlmsg_hdr(msg)->nlmsg_seq;
	while (!x->done) {
		r = nl_recvmsgs(ctx->sk, cb);
		if (r < 0 && !x->done) {
			x->nlerr = -r;
			break;
		}
	}
	nl_cb_put(cb);
	return x->done && x->kerr == 0 ? 0 : -1;
}

/* Fill err from a failed exchange: "what: strerror (kernel says: ...)". */
static __attribute__((format(printf, 3, 4))) int
xerr(struct vmlet_err *err, const struct exchange *x, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (x->kerr)
		return vmlet_err_set(err, VMLET_E_INTERNAL, x->kerr, "%s: %s%s%s%s", what,
				     strerror(x->kerr), x->ext[0] ? " (kernel: " : "", x->ext,
				     x->ext[0] ? ")" : "");
	return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "%s: netlink: %s", what,
			     nl_geterror(x->nlerr));
}

static int nomem(struct vmlet_err *err, const char *what)
{
	return vmlet_err_set(err, VMLET_E_INTERNAL, ENOMEM, "%s: out of memory", what);
}

/* ---- reading links ---------------------------------------------------------- */

static struct nla_policy link_policy[IFLA_MAX + 1] = {
	[IFLA_IFNAME] = { .type = NLA_STRING, .maxlen = IFNAMSIZ },
	[IFLA_IFALIAS] = { .type = NLA_STRING },
	[IFLA_MASTER] = { .type = NLA_U32 },
	[IFLA_GROUP] = { .type = NLA_U32 },
	[IFLA_LINKINFO] = { .type = NLA_NESTED },
};

static struct nla_policy info_policy[IFLA_INFO_MAX + 1] = {
	[IFLA_INFO_KIND] = { .type = NLA_STRING },
	[IFLA_INFO_DATA] = { .type = NLA_NESTED },
};

static struct nla_policy tun_policy[IFLA_TUN_MAX + 1] = {
	[IFLA_TUN_OWNER] = { .type = NLA_U32 },
	[IFLA_TUN_GROUP] = { .type = NLA_U32 },
	[IFLA_TUN_TYPE] = { .type = NLA_U8 },
	[IFLA_TUN_PERSIST] = { .type = NLA_U8 },
};

static void parse_tun(struct net_link *l, struct nlattr *data)
{
	struct nlattr *tb[IFLA_TUN_MAX + 1];

	if (nla_parse_nested(tb, IFLA_TUN_MAX, data, tun_policy) < 0)
		return;
	if (tb[IFLA_TUN_TYPE])
		l->tap = nla_get_u8(tb[IFLA_TUN_TYPE]) == IFF_TAP;
	if (tb[IFLA_TUN_PERSIST])
		l->persist = nla_get_u8(tb[IFLA_TUN_PERSIST]) != 0;
	if (tb[IFLA_TUN_OWNER]) {
		l->has_owner = true;
		l->owner = nla_get_u32(tb[IFLA_TUN_OWNER]);
	}
	if (tb[IFLA_TUN_GROUP]) {
		l->has_group = true;
		l->owner_group = nla_get_u32(tb[IFLA_TUN_GROUP]);
	}
}

/* 0 and *l filled, or -1 for a message that is not a well-formed link. */
static int parse_link(struct nlmsghdr *h, struct net_link *l)
{
	struct nlattr *tb[IFLA_MAX + 1], *info[IFLA_INFO_MAX + 1];
	const struct ifinfomsg *ifi;
	const char *alias = "";

	memset(l, 0, sizeof(*l));
	if (h->nlmsg_type != RTM_NEWLINK || h->nlmsg_len < NLMSG_LENGTH(sizeof(*ifi)) ||
	    nlmsg_parse(h, sizeof(*ifi), tb, IFLA_MAX, link_policy) < 0 || !tb[IFLA_IFNAME])
		return -1;
	ifi = nlmsg_data(h);
	l->ifindex = ifi->ifi_index;
	l->up = (ifi->ifi_flags & IFF_UP) != 0;
	snprintf(l->name, sizeof(l->name), "%s", nla_get_string(tb[IFLA_IFNAME]));
	if (tb[IFLA_IFALIAS])
		alias = nla_get_string(tb[IFLA_IFALIAS]);
	snprintf(l->alias, sizeof(l->alias), "%s", alias);
	if (tb[IFLA_MASTER])
		l->master = (int)nla_get_u32(tb[IFLA_MASTER]);
	if (tb[IFLA_GROUP])
		l->group = nla_get_u32(tb[IFLA_GROUP]);
	if (tb[IFLA_ADDRESS] && nla_len(tb[IFLA_ADDRESS]) == NET_MAC_LEN) {
		l->has_mac = true;
		memcpy(l->mac, nla_data(tb[IFLA_ADDRESS]), NET_MAC_LEN);
	}
	if (tb[IFLA_LINKINFO] &&
	    nla_parse_nested(info, IFLA_INFO_MAX, tb[IFLA_LINKINFO], info_policy) == 0) {
		if (info[IFLA_INFO_KIND])
			snprintf(l->kind, sizeof(l->kind), "%s", nla_get_string(info[IFLA_INFO_KIND]));
		if (strcmp(l->kind, "tun") == 0 && info[IFLA_INFO_DATA])
			parse_tun(l, info[IFLA_INFO_DATA]);
	}
	classify(l, alias);
	return 0;
}

struct link_vec {
	struct net_link *v;
	size_t n, cap;
	bool oom;
};

static void link_vec_free(struct link_vec *vec)
{
	free(vec->v);
	memset(vec, 0, sizeof(*vec));
}

static int on_link(struct nl_msg *msg, void *arg)
{
	struct link_vec *vec = arg;
	struct net_link l;

	if (parse_link(nlmsg_hdr(msg), &l) < 0)
		return NL_SKIP;
	if (vec->n == vec->cap) {
		size_t cap = vec->cap ? vec->cap * 2 : 32;
		struct net_link *v = realloc(vec->v, cap * sizeof(*v));
		if (!v) {
			vec->oom = true;
			return NL_SKIP;
		}
		vec->v = v;
		vec->cap = cap;
	}
	vec->v[vec->n++] = l;
	return NL_OK;
}

static int dump_links(struct net_ctx *ctx, struct link_vec *vec, struct vmlet_err *err)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	struct exchange x;

	for (int attempt = 0;; attempt++) {
		struct nl_msg *msg = nlmsg_alloc_simple(RTM_GETLINK, NLM_F_DUMP);
		int r;

		if (!msg || nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO) < 0) {
			nlmsg_free(msg);
			return nomem(err, "listing links");
		}
		vec->n = 0;
		vec->oom = false;
		r = exchange(ctx, msg, on_link, vec, &x);
		nlmsg_free(msg);
		if (r < 0)
			return xerr(err, &x, "listing links (RTM_GETLINK dump)");
		if (vec->oom)
			return nomem(err, "listing links");
		if (!x.interrupted)
			return 0;
		if (attempt == DUMP_RETRIES)
			return vmlet_err_set(err, VMLET_E_UNAVAILABLE, EAGAIN,
					     "listing links: the link table kept changing during "
					     "%d dumps",
					     DUMP_RETRIES + 1);
	}
}

/* One link by name. *found = false (and 0) when there is none. */
static int get_link(struct net_ctx *ctx, const char *name, struct net_link *out, bool *found,
		    struct vmlet_err *err)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	struct link_vec vec = { 0 };
	struct nl_msg *msg = nlmsg_alloc_simple(RTM_GETLINK, NLM_F_ACK);
	struct exchange x;
	int r;

	*found = false;
	if (!msg || nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO) < 0 ||
	    nla_put_string(msg, IFLA_IFNAME, name) < 0) {
		nlmsg_free(msg);
		return nomem(err, "looking up a link");
	}
	r = exchange(ctx, msg, on_link, &vec, &x);
	nlmsg_free(msg);
	if (r < 0 && x.kerr == ENODEV) {
		link_vec_free(&vec);
		return 0;
	}
	if (r < 0) {
		link_vec_free(&vec);
		return xerr(err, &x, "looking up %s (RTM_GETLINK)", name);
	}
	if (vec.oom || vec.n != 1) {
		link_vec_free(&vec);
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
				     "looking up %s: the kernel answered with %zu links", name,
				     vec.n);
	}
	*out = vec.v[0];
	*found = true;
	link_vec_free(&vec);
	return 0;
}

/* ---- reading addresses -------------------------------------------------------- */

struct addr_set {
	int ifindex;
	size_t n;
	struct net_addr4 a[NET_ADDRS_MAX];
	bool truncated;
};

static int on_addr(struct nl_msg *msg, void *arg)
{
	struct addr_set *set = arg;
	struct nlmsghdr *h = nlmsg_hdr(msg);
	struct nlattr *tb[IFA_MAX + 1], *a;
	const struct ifaddrmsg *ifa;
	uint32_t be;

	if (h->nlmsg_type != RTM_NEWADDR || h->nlmsg_len < NLMSG_LENGTH(sizeof(*ifa)) ||
	    nlmsg_parse(h, sizeof(*ifa), tb, IFA_MAX, NULL) < 0)
		return NL_SKIP;
	ifa = nlmsg_data(h);
	if (ifa->ifa_family != AF_INET || (int)ifa->ifa_index != set->ifindex)
		return NL_SKIP;
	a = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
	if (!a || nla_len(a) != 4)
		return NL_SKIP;
	if (set->n == NET_ADDRS_MAX) {
		set->truncated = true;
		return NL_SKIP;
	}
	memcpy(&be, nla_data(a), 4);
	set->a[set->n].addr = ntohl(be);
	set->a[set->n].prefix = ifa->ifa_prefixlen;
	set->n++;
	return NL_OK;
}

static int dump_addrs(struct net_ctx *ctx, int ifindex, struct addr_set *set,
		      struct vmlet_err *err)
{
	struct ifaddrmsg ifa = { .ifa_family = AF_INET };
	struct exchange x;

	for (int attempt = 0;; attempt++) {
		struct nl_msg *msg = nlmsg_alloc_simple(RTM_GETADDR, NLM_F_DUMP);
		int r;

		if (!msg || nlmsg_append(msg, &ifa, sizeof(ifa), NLMSG_ALIGNTO) < 0) {
			nlmsg_free(msg);
			return nomem(err, "listing addresses");
		}
		memset(set, 0, sizeof(*set));
		set->ifindex = ifindex;
		r = exchange(ctx, msg, on_addr, set, &x);
		nlmsg_free(msg);
		if (r < 0)
			return xerr(err, &x, "listing IPv4 addresses (RTM_GETADDR dump)");
		if (!x.interrupted)
			return 0;
		if (attempt == DUMP_RETRIES)
			return vmlet_err_set(err, VMLET_E_UNAVAILABLE, EAGAIN,
					     "listing addresses: the table kept changing");
	}
}

static bool addrs_have(const struct addr_set *set, uint32_t addr, unsigned prefix)
{
	for (size_t i = 0; i < set->n; i++)
		if (set->a[i].addr == addr && set->a[i].prefix == prefix)
			return true;
	return false;
}

/* ---- writing ------------------------------------------------------------------ */

/* Send a libnl-built request and wait for its ack. */
static int request(struct net_ctx *ctx, struct nl_msg *msg, struct exchange *x)
{
	nlmsg_hdr(msg)->nlmsg_flags |= NLM_F_ACK;
	return exchange(ctx, msg, NULL, NULL, x);
}

struct link_change {
	const char *alias;  /* NULL: leave */
	const uint8_t *mac; /* NULL: leave */
	int master;         /* < 0: leave */
	bool up;            /* set IFF_UP */
	bool set_group;
	uint32_t group;
};

/* One RTM_NEWLINK on an existing ifindex (libnl needs the index on the
 * "old" object; the change object carries only what changes). */
static int link_change(struct net_ctx *ctx, int ifindex, const char *name,
		       const struct link_change *c, struct vmlet_err *err)
{
	struct rtnl_link *old = rtnl_link_alloc(), *chg = rtnl_link_alloc();
	struct nl_addr *mac = NULL;
	struct nl_msg *msg = NULL;
	struct exchange x;
	int r = -1;

	if (!old || !chg)
		goto oom;
	rtnl_link_set_ifindex(old, ifindex);
	if (c->alias) {
		rtnl_link_set_ifalias(chg, c->alias);
		if (!rtnl_link_get_ifalias(chg))
			goto oom;
	}
	if (c->mac) {
		if (!(mac = nl_addr_build(AF_LLC, c->mac, NET_MAC_LEN)))
			goto oom;
		rtnl_link_set_addr(chg, mac);
	}
	if (c->master >= 0)
		rtnl_link_set_master(chg, c->master);
	if (c->up)
		rtnl_link_set_flags(chg, IFF_UP);
	if (c->set_group)
		rtnl_link_set_group(chg, c->group);
	if (rtnl_link_build_change_request(old, chg, 0, &msg) < 0)
		goto oom;
	if (request(ctx, msg, &x) < 0)
		xerr(err, &x, "changing %s (ifindex %d)", name, ifindex);
	else
		r = 0;
	goto out;
oom:
	nomem(err, "changing a link");
out:
	nlmsg_free(msg);
	nl_addr_put(mac);
	rtnl_link_put(old);
	rtnl_link_put(chg);
	return r;
}

/* Delete one link by ifindex; gone already is fine. */
static int link_delete(struct net_ctx *ctx, int ifindex, const char *name, struct vmlet_err *err)
{
	struct rtnl_link *l = rtnl_link_alloc();
	struct nl_msg *msg = NULL;
	struct exchange x;
	int r;

	if (!l)
		return nomem(err, "deleting a link");
	rtnl_link_set_ifindex(l, ifindex);
	r = rtnl_link_build_delete_request(l, &msg);
	rtnl_link_put(l);
	if (r < 0)
		return nomem(err, "deleting a link");
	r = request(ctx, msg, &x);
	nlmsg_free(msg);
	if (r < 0 && x.kerr != ENODEV)
		return xerr(err, &x, "deleting %s (ifindex %d)", name, ifindex);
	return 0;
}

static int group_delete(struct net_ctx *ctx, uint32_t group, struct vmlet_err *err)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	struct nl_msg *msg = nlmsg_alloc_simple(RTM_DELLINK, 0);
	struct exchange x;
	int r;

	if (!msg || nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO) < 0 ||
	    nla_put_u32(msg, IFLA_GROUP, group) < 0) {
		nlmsg_free(msg);
		return nomem(err, "deleting links");
	}
	r = request(ctx, msg, &x);
	nlmsg_free(msg);
	if (r < 0 && x.kerr != ENODEV)
		return xerr(err, &x, "deleting link group %#x", group);
	return 0;
}

static const struct net_link *find_ifindex(const struct link_vec *vec, int ifindex)
{
	for (size_t i = 0; i < vec->n; i++)
		if (vec->v[i].ifindex == ifindex)
			return &vec->v[i];
	return NULL;
}

static const struct net_link *find_name(const struct link_vec *vec, const char *name)
{
	for (size_t i = 0; i < vec->n; i++)
		if (strcmp(vec->v[i].name, name) == 0)
			return &vec->v[i];
	return NULL;
}

static bool group_in_use(const struct link_vec *vec, uint32_t group)
{
	for (size_t i = 0; i < vec->n; i++)
		if (vec->v[i].group == group)
			return true;
	return false;
}

/* Delete victims (links of ours, as found in the dump `now`) in one kernel
 * batch. unregister_netdevice_many() waits for RCU once per batch, where
 * one RTM_DELLINK per link waits once per link: deleting 100 TAPs one by
 * one takes ~2 s here, as one group ~30 ms. The batch is a link group
 * that no link uses; after moving the victims into it the table is read
 * again and the group delete is sent only if the group holds exactly
 * the victims. Otherwise (someone else joined it) the victims get their
 * groups back and are deleted one by one. */
static int delete_batch(struct net_ctx *ctx, const struct net_link *victims, size_t n,
			const struct link_vec *now, struct vmlet_err *err)
{
	struct link_vec after = { 0 };
	uint32_t group = 0;
	bool exact = true;
	size_t moved = 0, members = 0;
	int r = 0;

	if (n == 0)
		return 0;
	if (n == 1)
		return link_delete(ctx, victims[0].ifindex, victims[0].name, err);
	for (uint32_t k = 0; k < BATCH_GROUP_TRIES && !group; k++)
		if (!group_in_use(now, BATCH_GROUP_BASE + k))
			group = BATCH_GROUP_BASE + k;
	if (!group)
		goto one_by_one;
	for (; moved < n; moved++) {
		struct link_change c = { .master = -1, .set_group = true, .group = group };
		struct vmlet_err e;
		if (link_change(ctx, victims[moved].ifindex, victims[moved].name, &c, &e) < 0) {
			if (e.sys_errno == ENODEV)
				continue; /* gone already */
			exact = false;
			break;
		}
	}
	if (exact) {
		if (dump_links(ctx, &after, err) < 0) {
			exact = false;
		} else {
			for (size_t i = 0; i < after.n && exact; i++) {
				bool victim = false;
				if (after.v[i].group != group)
					continue;
				for (size_t j = 0; j < n && !victim; j++)
					victim = victims[j].ifindex == after.v[i].ifindex;
				exact = victim;
				members++;
			}
		}
	}
	link_vec_free(&after);
	if (exact) {
		if (members == 0)
			return 0;
		r = group_delete(ctx, group, err);
		vlog(VLOG_INFO, "net_links_removed", "count=%zu batched=1 group=%#x ok=%d", n,
		     group, r == 0);
		return r;
	}
	/* Put back the groups we changed, then take the slow path. */
	for (size_t i = 0; i < moved; i++) {
		struct link_change c = { .master = -1, .set_group = true,
					 .group = victims[i].group };
		link_change(ctx, victims[i].ifindex, victims[i].name, &c, NULL);
	}
one_by_one:
	for (size_t i = 0; i < n; i++)
		if (link_delete(ctx, victims[i].ifindex, victims[i].name, err) < 0)
			r = -1;
	vlog(VLOG_INFO, "net_links_removed", "count=%zu batched=0 ok=%d", n, r == 0);
	return r;
}

/* ---- context ------------------------------------------------------------------- */

int net_open(struct net_ctx **out, struct vmlet_err *err)
{
	struct net_ctx *ctx = calloc(1, sizeof(*ctx));
	int one = 1, fd, r;

	*out = NULL;
	if (!ctx || !(ctx->sk = nl_socket_alloc())) {
		free(ctx);
		return nomem(err, "opening rtnetlink");
	}
	/* Acks are asked for per request (dumps end with NLMSG_DONE). */
	nl_socket_disable_auto_ack(ctx->sk);
	/* Dump datagrams can be larger than libnl's default buffer. */
	nl_socket_enable_msg_peek(ctx->sk);
	if ((r = nl_connect(ctx->sk, NETLINK_ROUTE)) < 0) {
		nl_socket_free(ctx->sk);
		free(ctx);
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "connecting rtnetlink: %s",
				     nl_geterror(r));
	}
	fd = nl_socket_get_fd(ctx->sk);
	/* Extended acks carry the kernel's reason ("Device already exists");
	 * capped acks do not echo our request back. Best effort: older
	 * kernels only lose the text. */
	(void)setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	(void)setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	*out = ctx;
	return 0;
}

void net_close(struct net_ctx *ctx)
{
	if (!ctx)
		return;
	nl_socket_free(ctx->sk); /* closes it */
	free(ctx);
}

/* ---- bridges -------------------------------------------------------------------- */

static int bridge_create(struct net_ctx *ctx, const char *name, const uint8_t *mac, bool *exists,
			 struct vmlet_err *err)
{
	struct rtnl_link *l = rtnl_link_bridge_alloc();
	struct nl_addr *addr = nl_addr_build(AF_LLC, mac, NET_MAC_LEN);
	struct nl_msg *msg = NULL;
	struct exchange x;
	int r = -1;

	*exists = false;
	if (!l || !addr) {
		nomem(err, "creating a bridge");
		goto out;
	}
	rtnl_link_set_name(l, name);
	/* A MAC given at creation is "set" (addr_assign_type), so the bridge
	 * keeps it instead of taking its lowest port's. */
	rtnl_link_set_addr(l, addr);
	if (rtnl_link_build_add_request(l, NLM_F_CREATE | NLM_F_EXCL, &msg) < 0) {
		nomem(err, "creating a bridge");
		goto out;
	}
	if (request(ctx, msg, &x) == 0) {
		r = 0;
	} else if (x.kerr == EEXIST) {
		*exists = true; /* someone else won the race: judged by the caller */
		r = 0;
	} else {
		xerr(err, &x, "creating bridge %s (RTM_NEWLINK)", name);
	}
out:
	nlmsg_free(msg);
	nl_addr_put(addr);
	rtnl_link_put(l);
	return r;
}

static int addr_add(struct net_ctx *ctx, int ifindex, const char *name, uint32_t addr,
		    unsigned prefix, struct vmlet_err *err)
{
	uint32_t mask = prefix ? UINT32_MAX << (32 - prefix) : 0;
	uint32_t be = htonl(addr), bcast = htonl((addr & mask) | ~mask);
	struct rtnl_addr *ra = rtnl_addr_alloc();
	struct nl_addr *local = nl_addr_build(AF_INET, &be, 4);
	struct nl_addr *brd = nl_addr_build(AF_INET, &bcast, 4);
	struct nl_msg *msg = NULL;
	struct exchange x;
	char ip[16];
	int r = -1;

	format_ip4(addr, ip);
	if (!ra || !local || !brd) {
		nomem(err, "adding an address");
		goto out;
	}
	nl_addr_set_prefixlen(local, (int)prefix);
	rtnl_addr_set_ifindex(ra, ifindex);
	if (rtnl_addr_set_local(ra, local) < 0 || rtnl_addr_set_broadcast(ra, brd) < 0) {
		nomem(err, "adding an address");
		goto out;
	}
	rtnl_addr_set_prefixlen(ra, (int)prefix);
	if (rtnl_addr_build_add_request(ra, NLM_F_CREATE | NLM_F_EXCL, &msg) < 0) {
		nomem(err, "adding an address");
		goto out;
	}
	if (request(ctx, msg, &x) == 0 || x.kerr == EEXIST)
		r = 0;
	else
		xerr(err, &x, "adding %s/%u to %s (RTM_NEWADDR)", ip, prefix, name);
out:
	nlmsg_free(msg);
	nl_addr_put(local);
	nl_addr_put(brd);
	rtnl_addr_put(ra);
	return r;
}

static int refuse_foreign(const struct net_link *l, const char *what, struct vmlet_err *err)
{
	char d[NET_ALIAS_MAX * 4 + NET_KIND_MAX * 4 + 32];

	return vmlet_err_set(err, VMLET_E_CONFLICT, 0,
			     "%s: interface %s exists and is not vmlet's (%s): refusing to use it",
			     what, l->name, describe(l, d, sizeof(d)));
}

int net_bridge_ensure(struct net_ctx *ctx, unsigned net_id, const char *subnet, int *ifindex,
		      struct vmlet_err *err)
{
	char name[NET_IFNAME_MAX], alias[ALIAS_BUF], ip[16];
	uint8_t mac[NET_MAC_LEN];
	struct link_change c = { .master = -1 };
	struct addr_set addrs;
	struct net_link l;
	uint32_t gw;
	unsigned prefix;
	bool found, exists, created = false;

	if (net_bridge_name(net_id, name, err) < 0 || net_gateway(subnet, &gw, &prefix, err) < 0)
		return -1;
	mac_build(MAC_ROLE_BRIDGE, net_id, 0, mac);
	bridge_alias(net_id, alias);
	format_ip4(gw, ip);
	if (get_link(ctx, name, &l, &found, err) < 0)
		return -1;
	if (!found) {
		if (bridge_create(ctx, name, mac, &exists, err) < 0)
			return -1;
		created = !exists;
		if (get_link(ctx, name, &l, &found, err) < 0)
			return -1;
		if (!found)
			return vmlet_err_set(err, VMLET_E_CONFLICT, 0,
					     "bridge %s vanished while being created", name);
	}
	if (!is_our_bridge(&l, net_id))
		return refuse_foreign(&l, "bridge_ensure", err);
	if (strcmp(l.alias, alias) != 0)
		c.alias = alias;
	if (!l.has_mac || memcmp(l.mac, mac, NET_MAC_LEN) != 0)
		c.mac = mac;
	c.up = !l.up;
	if ((c.alias || c.mac || c.up) && link_change(ctx, l.ifindex, name, &c, err) < 0)
		return -1;
	if (dump_addrs(ctx, l.ifindex, &addrs, err) < 0)
		return -1;
	if (!addrs_have(&addrs, gw, prefix)) {
		if (addr_add(ctx, l.ifindex, name, gw, prefix, err) < 0)
			return -1;
	}
	for (size_t i = 0; i < addrs.n; i++) {
		char other[16];
		if (addrs.a[i].addr == gw && addrs.a[i].prefix == prefix)
			continue;
		format_ip4(addrs.a[i].addr, other);
		vlog(VLOG_WARN, "net_bridge_extra_address", "bridge=%s address=%s/%u", name, other,
		     addrs.a[i].prefix);
	}
	/* Read back what the kernel now has. */
	if (get_link(ctx, name, &l, &found, err) < 0 || dump_addrs(ctx, l.ifindex, &addrs, err) < 0)
		return -1;
	if (!found || l.role != NET_ROLE_BRIDGE || strcmp(l.alias, alias) != 0 || !l.up ||
	    !addrs_have(&addrs, gw, prefix))
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
				     "bridge %s read back: found=%d alias_ok=%d up=%d gateway %s/%u "
				     "present=%d",
				     name, found, found && strcmp(l.alias, alias) == 0, found && l.up,
				     ip, prefix, addrs_have(&addrs, gw, prefix));
	if (created || c.alias || c.mac || c.up)
		vlog(VLOG_INFO, "net_bridge_ensured",
		     "bridge=%s ifindex=%d created=%d completed=%d gateway=%s/%u", name, l.ifindex,
		     created, !created && c.alias != NULL, ip, prefix);
	if (ifindex)
		*ifindex = l.ifindex;
	return 0;
}

int net_bridge_remove(struct net_ctx *ctx, unsigned net_id, struct vmlet_err *err)
{
	char name[NET_IFNAME_MAX], list[FOREIGN_LIST_MAX] = "";
	struct link_vec now = { 0 };
	const struct net_link *br;
	struct net_link *victims = NULL;
	size_t nv = 0, nforeign = 0;
	int r = -1;

	if (net_bridge_name(net_id, name, err) < 0)
		return -1;
	if (dump_links(ctx, &now, err) < 0)
		return -1;
	br = find_name(&now, name);
	if (br && !is_our_bridge(br, net_id)) {
		refuse_foreign(br, "bridge_remove", err);
		goto out;
	}
	if (!(victims = calloc(now.n + 1, sizeof(*victims)))) {
		nomem(err, "removing a bridge");
		goto out;
	}
	for (size_t i = 0; i < now.n; i++) {
		const struct net_link *l = &now.v[i];
		if (l->role == NET_ROLE_TAP && l->net_id == net_id) {
			victims[nv++] = *l;
		} else if (br && l->master == br->ifindex) {
			size_t used = strlen(list);
			char q[VLOG_STR_MAX];
			if (used < sizeof(list) - 1)
				snprintf(list + used, sizeof(list) - used, "%s%s", nforeign ? ", " : "",
					 vlog_str(l->name, q, sizeof(q)));
			nforeign++;
		}
	}
	if (nforeign) {
		vmlet_err_set(err, VMLET_E_CONFLICT, 0,
			      "bridge_remove: %s has %zu port(s) that are not this tenant's TAPs "
			      "(%s): refusing to remove it",
			      name, nforeign, list);
		goto out;
	}
	if (br)
		victims[nv++] = *br;
	if (delete_batch(ctx, victims, nv, &now, err) < 0)
		goto out;
	/* Read back: nothing of this net may be left. */
	if (dump_links(ctx, &now, err) < 0)
		goto out;
	for (size_t i = 0; i < now.n; i++) {
		const struct net_link *l = &now.v[i];
		if ((l->role != NET_ROLE_FOREIGN && l->net_id == net_id) ||
		    strcmp(l->name, name) == 0) {
			vmlet_err_set(err, VMLET_E_INTERNAL, 0,
				      "bridge_remove: %s is still there after deleting", l->name);
			goto out;
		}
	}
	if (nv)
		vlog(VLOG_INFO, "net_bridge_removed", "bridge=%s links=%zu", name, nv);
	r = 0;
out:
	free(victims);
	link_vec_free(&now);
	return r;
}

/* ---- TAPs ------------------------------------------------------------------------ */

/* TUNSETIFF on name with flags; the fd, or -1 with errno. */
static int tun_attach(const char *name, int flags)
{
	_cleanup_close_ int fd = open(TUN_PATH, O_RDWR | O_CLOEXEC);
	struct ifreq ifr;

	if (fd < 0)
		return -1;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_flags = (short)flags;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		return -1;
	return vmlet_take_fd(&fd);
}

static int tun_set_owner(int fd, const char *name, uid_t uid, gid_t gid, struct vmlet_err *err)
{
	if (ioctl(fd, TUNSETOWNER, (unsigned long)uid) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "TUNSETOWNER %u on %s", (unsigned)uid,
				     name);
	if (ioctl(fd, TUNSETGROUP, (unsigned long)gid) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "TUNSETGROUP %u on %s", (unsigned)gid,
				     name);
	return 0;
}

static int tap_create(struct net_ctx *ctx, const char *name, unsigned net_id, unsigned index,
		      uid_t uid, gid_t gid, int br_ifindex, struct vmlet_err *err)
{
	char alias[ALIAS_BUF];
	uint8_t mac[NET_MAC_LEN];
	_cleanup_close_ int fd = -1;
	struct net_link l;
	bool found;

	/* IFF_TUN_EXCL: create, never attach to one that appeared meanwhile. */
	fd = tun_attach(name, TAP_FLAGS | IFF_TUN_EXCL);
	if (fd < 0) {
		if (errno == EBUSY || errno == EINVAL)
			return vmlet_err_set(err, VMLET_E_CONFLICT, errno,
					     "tap_ensure: %s appeared while being created", name);
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "TUNSETIFF %s (%s)", name, TUN_PATH);
	}
	if (tun_set_owner(fd, name, uid, gid, err) < 0)
		return -1;
	if (get_link(ctx, name, &l, &found, err) < 0)
		return -1;
	if (!found)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "%s missing right after TUNSETIFF",
				     name);
	tap_alias(net_id, index, alias);
	mac_build(MAC_ROLE_TAP, net_id, index, mac);
	struct link_change c = { .alias = alias, .mac = mac, .master = br_ifindex, .up = true };
	if (link_change(ctx, l.ifindex, name, &c, err) < 0)
		return -1;
	/* Only now make it outlive our fd: a failure (or crash) before this
	 * point leaves no TAP behind, and no TAP of ours lacks its alias. */
	if (ioctl(fd, TUNSETPERSIST, 1UL) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "TUNSETPERSIST on %s", name);
	return 0;
}

/* Change owner/group of an existing TAP: needs an attach, so it fails
 * (409) while a VMM holds it. */
static int tap_reown(const char *name, uid_t uid, gid_t gid, const struct net_link *l,
		     struct vmlet_err *err)
{
	_cleanup_close_ int fd = tun_attach(name, TAP_FLAGS);

	if (fd < 0) {
		if (errno == EBUSY)
			return vmlet_err_set(err, VMLET_E_CONFLICT, EBUSY,
					     "tap_ensure: %s is owned by %u:%u and in use; cannot "
					     "give it to %u:%u",
					     name, l->owner, l->owner_group, (unsigned)uid,
					     (unsigned)gid);
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "TUNSETIFF %s (%s)", name, TUN_PATH);
	}
	if (tun_set_owner(fd, name, uid, gid, err) < 0)
		return -1;
	vlog(VLOG_INFO, "net_tap_reowned", "tap=%s uid=%u gid=%u", name, (unsigned)uid,
	     (unsigned)gid);
	return 0;
}

int net_tap_ensure(struct net_ctx *ctx, unsigned net_id, unsigned index, uid_t owner_uid,
		   gid_t owner_gid, int *ifindex, struct vmlet_err *err)
{
	char name[NET_IFNAME_MAX], brname[NET_IFNAME_MAX], alias[ALIAS_BUF];
	uint8_t mac[NET_MAC_LEN];
	struct net_link br, l;
	bool found, created = false;

	if (net_tap_name(net_id, index, name, err) < 0 || net_bridge_name(net_id, brname, err) < 0 ||
	    check_owner(owner_uid, owner_gid, err) < 0)
		return -1;
	tap_alias(net_id, index, alias);
	mac_build(MAC_ROLE_TAP, net_id, index, mac);
	if (get_link(ctx, brname, &br, &found, err) < 0)
		return -1;
	if (!found)
		return vmlet_err_set(err, VMLET_E_NOT_FOUND, 0,
				     "tap_ensure: bridge %s does not exist (ensure the tenant network "
				     "first)",
				     brname);
	if (!is_our_bridge(&br, net_id))
		return refuse_foreign(&br, "tap_ensure", err);
	if (get_link(ctx, name, &l, &found, err) < 0)
		return -1;
	if (!found) {
		if (tap_create(ctx, name, net_id, index, owner_uid, owner_gid, br.ifindex, err) < 0)
			return -1;
		created = true;
	} else {
		struct link_change c = { .master = -1 };
		if (!is_our_tap(&l, net_id, index))
			return refuse_foreign(&l, "tap_ensure", err);
		if ((!l.has_owner || l.owner != owner_uid || !l.has_group ||
		     l.owner_group != owner_gid) &&
		    tap_reown(name, owner_uid, owner_gid, &l, err) < 0)
			return -1;
		if (!l.has_mac || memcmp(l.mac, mac, NET_MAC_LEN) != 0)
			c.mac = mac;
		if (l.master != br.ifindex)
			c.master = br.ifindex;
		c.up = !l.up;
		if ((c.mac || c.master >= 0 || c.up) && link_change(ctx, l.ifindex, name, &c, err) < 0)
			return -1;
	}
	if (get_link(ctx, name, &l, &found, err) < 0)
		return -1;
	if (!found || !is_our_tap(&l, net_id, index) || l.master != br.ifindex || !l.up ||
	    !l.persist || !l.has_owner || l.owner != owner_uid || !l.has_group ||
	    l.owner_group != owner_gid || !l.has_mac || memcmp(l.mac, mac, NET_MAC_LEN) != 0)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0,
				     "tap %s read back: found=%d ours=%d master=%d (want %d) up=%d "
				     "persist=%d owner=%u:%u (want %u:%u)",
				     name, found, found && is_our_tap(&l, net_id, index), l.master,
				     br.ifindex, l.up, l.persist, l.owner, l.owner_group,
				     (unsigned)owner_uid, (unsigned)owner_gid);
	if (created)
		vlog(VLOG_INFO, "net_tap_created", "tap=%s ifindex=%d bridge=%s uid=%u gid=%u", name,
		     l.ifindex, brname, (unsigned)owner_uid, (unsigned)owner_gid);
	if (ifindex)
		*ifindex = l.ifindex;
	return 0;
}

int net_tap_open_fd(struct net_ctx *ctx, unsigned net_id, unsigned index, int *fd_out,
		    struct vmlet_err *err)
{
	char name[NET_IFNAME_MAX];
	_cleanup_close_ int fd = -1;
	struct net_link l, again;
	struct ifreq ifr;
	bool found;

	*fd_out = -1;
	if (net_tap_name(net_id, index, name, err) < 0)
		return -1;
	if (get_link(ctx, name, &l, &found, err) < 0)
		return -1;
	if (!found)
		return vmlet_err_set(err, VMLET_E_NOT_FOUND, 0, "tap_open_fd: %s does not exist",
				     name);
	if (!is_our_tap(&l, net_id, index))
		return refuse_foreign(&l, "tap_open_fd", err);
	fd = tun_attach(name, TAP_FLAGS);
	if (fd < 0) {
		if (errno == EBUSY)
			return vmlet_err_set(err, VMLET_E_CONFLICT, EBUSY,
					     "tap_open_fd: %s is already attached to another holder",
					     name);
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "TUNSETIFF %s (%s)", name, TUN_PATH);
	}
	/* TUNSETIFF creates a fresh TAP when the name is gone: make sure we
	 * hold the persistent one we checked (same ifindex, still ours). */
	memset(&ifr, 0, sizeof(ifr));
	if (ioctl(fd, TUNGETIFF, &ifr) < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "TUNGETIFF on %s", name);
	if (!(ifr.ifr_flags & IFF_PERSIST))
		return vmlet_err_set(err, VMLET_E_NOT_FOUND, 0,
				     "tap_open_fd: %s disappeared while being opened", name);
	if (get_link(ctx, name, &again, &found, err) < 0)
		return -1;
	if (!found || again.ifindex != l.ifindex || !is_our_tap(&again, net_id, index))
		return vmlet_err_set(err, VMLET_E_CONFLICT, 0,
				     "tap_open_fd: %s was replaced while being opened", name);
	*fd_out = vmlet_take_fd(&fd);
	return 0;
}

int net_tap_remove(struct net_ctx *ctx, unsigned net_id, unsigned index, struct vmlet_err *err)
{
	char name[NET_IFNAME_MAX];
	struct net_link l;
	bool found;

	if (net_tap_name(net_id, index, name, err) < 0)
		return -1;
	if (get_link(ctx, name, &l, &found, err) < 0)
		return -1;
	if (!found)
		return 0;
	if (!is_our_tap(&l, net_id, index))
		return refuse_foreign(&l, "tap_remove", err);
	if (link_delete(ctx, l.ifindex, name, err) < 0)
		return -1;
	vlog(VLOG_INFO, "net_tap_removed", "tap=%s", name);
	return 0;
}

/* ---- forwarding ------------------------------------------------------------------ */

int net_ip_forward_enable(struct vmlet_err *err)
{
	char buf[8] = "";
	ssize_t n;

	{
		_cleanup_close_ int fd = open(IP_FORWARD_PATH, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "opening %s", IP_FORWARD_PATH);
		if (write(fd, "1\n", 2) != 2)
			return vmlet_err_sys(err, VMLET_E_INTERNAL, "writing %s", IP_FORWARD_PATH);
	}
	_cleanup_close_ int fd = open(IP_FORWARD_PATH, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "opening %s", IP_FORWARD_PATH);
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0)
		return vmlet_err_sys(err, VMLET_E_INTERNAL, "reading %s", IP_FORWARD_PATH);
	buf[n] = '\0';
	if (strcmp(buf, "1\n") != 0 && strcmp(buf, "1") != 0)
		return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "%s reads back %.4s after writing 1",
				     IP_FORWARD_PATH, buf);
	return 0;
}

/* ---- read back ---------------------------------------------------------------------- */

static int cmp_link_name(const void *a, const void *b)
{
	return strcmp(((const struct net_link *)a)->name, ((const struct net_link *)b)->name);
}

void net_state_free(struct net_state *st)
{
	if (!st)
		return;
	free(st->links);
	st->links = NULL;
	st->nlinks = 0;
}

int net_read(struct net_ctx *ctx, unsigned net_id, struct net_state *out, struct vmlet_err *err)
{
	char name[NET_IFNAME_MAX];
	struct link_vec now = { 0 };
	struct addr_set addrs;
	const struct net_link *br;
	int br_ifindex = 0;
	unsigned a, b;

	memset(out, 0, sizeof(*out));
	if (net_bridge_name(net_id, name, err) < 0)
		return -1;
	out->net_id = net_id;
	if (dump_links(ctx, &now, err) < 0)
		return -1;
	br = find_name(&now, name);
	if (br) {
		br_ifindex = br->ifindex;
		out->bridge_exists = true;
		out->bridge = *br;
		if (dump_addrs(ctx, br->ifindex, &addrs, err) < 0) {
			link_vec_free(&now);
			return -1;
		}
		out->naddrs = addrs.n;
		memcpy(out->addrs, addrs.a, sizeof(out->addrs));
		out->addrs_truncated = addrs.truncated;
	}
	/* Compact the dump in place to the links verify looks at (br points
	 * into it: only br_ifindex is used from here on). */
	for (size_t i = 0; i < now.n; i++) {
		const struct net_link *l = &now.v[i];
		bool keep = (br_ifindex > 0 && l->master == br_ifindex) ||
			    (l->role == NET_ROLE_TAP && l->net_id == net_id) ||
			    (parse_tap_name(l->name, &a, &b) && a == net_id);
		if (keep)
			now.v[out->nlinks++] = *l;
	}
	qsort(now.v, out->nlinks, sizeof(*now.v), cmp_link_name);
	out->links = now.v; /* ownership moves to out */
	if (!out->nlinks) {
		free(now.v);
		out->links = NULL;
	}
	return 0;
}

int net_list_ours(struct net_ctx *ctx, struct net_link **out, size_t *n, struct vmlet_err *err)
{
	struct link_vec now = { 0 };
	size_t k = 0;

	*out = NULL;
	*n = 0;
	if (dump_links(ctx, &now, err) < 0)
		return -1;
	for (size_t i = 0; i < now.n; i++)
		if (now.v[i].role != NET_ROLE_FOREIGN)
			now.v[k++] = now.v[i];
	if (!k) {
		link_vec_free(&now);
		return 0;
	}
	qsort(now.v, k, sizeof(*now.v), cmp_link_name);
	*out = now.v;
	*n = k;
	return 0;
}

int net_remove_links(struct net_ctx *ctx, const struct net_link *links, size_t n,
		     struct vmlet_err *err)
{
	struct link_vec now = { 0 };
	struct net_link *victims = NULL;
	size_t nv = 0;
	int r = -1;

	if (n == 0)
		return 0;
	if (n > 1000000 || !links)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "remove_links: bad list (%zu)", n);
	if (dump_links(ctx, &now, err) < 0)
		return -1;
	if (!(victims = calloc(n, sizeof(*victims)))) {
		nomem(err, "removing links");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const struct net_link *want = &links[i], *cur = find_ifindex(&now, want->ifindex);
		if (!cur)
			continue; /* gone already */
		if (want->role == NET_ROLE_FOREIGN || cur->role != want->role ||
		    cur->net_id != want->net_id || cur->index != want->index ||
		    strcmp(cur->name, want->name) != 0) {
			char q[VLOG_STR_MAX];
			vmlet_err_set(err, VMLET_E_CONFLICT, 0,
				      "remove_links: ifindex %d is now %s, not the vmlet interface "
				      "given: refusing to remove anything",
				      want->ifindex, vlog_str(cur->name, q, sizeof(q)));
			goto out;
		}
		bool dup = false;
		for (size_t j = 0; j < nv && !dup; j++)
			dup = victims[j].ifindex == cur->ifindex;
		if (!dup)
			victims[nv++] = *cur;
	}
	r = delete_batch(ctx, victims, nv, &now, err);
out:
	free(victims);
	link_vec_free(&now);
	return r;
}
