/* libFuzzer: hostd/nft.c's two inputs. First byte even: the rest is a
 * port whitelist text; odd: the rest fills a small model (tenants,
 * instances, publishes, uplink) byte for byte. Whatever is accepted must
 * satisfy what the rules rely on: whitelist entries well-formed with one
 * owner per port; a valid model renders, and the rendering is
 * deterministic. Refusals carry 400 and a message. Never a crash or leak. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hostd/nft.h"
#include "shared/validate.h"

static void fuzz_whitelist(const uint8_t *data, size_t size)
{
	static struct nft_whitelist wl;
	struct vmlet_err err;
	char *text = malloc(size + 1);

	if (!text)
		return;
	memcpy(text, data, size);
	text[size] = '\0';
	err.msg[0] = '\0';
	if (nft_whitelist_parse(text, &wl, &err) < 0) {
		if (!err.msg[0] || err.code != VMLET_E_INVALID || wl.n != 0)
			abort();
		free(text);
		return;
	}
	if (wl.n > NFT_WL_MAX)
		abort();
	for (size_t i = 0; i < wl.n; i++) {
		const struct nft_wl_entry *e = &wl.e[i];

		if (!vmlet_id_ok(e->tenant) || e->lo < 1 || e->lo > e->hi ||
		    (e->proto != NFT_PROTO_TCP && e->proto != NFT_PROTO_UDP))
			abort();
		for (size_t j = 0; j < i; j++)
			if (wl.e[j].proto == e->proto && wl.e[j].lo <= e->hi && e->lo <= wl.e[j].hi &&
			    strcmp(wl.e[j].tenant, e->tenant))
				abort();
		/* the owner may publish its lowest port, nobody else */
		if (nft_publish_allowed(&wl, e->tenant, e->proto, e->lo, &err) != 0)
			abort();
		if (nft_publish_allowed(&wl, "zz-not-a-tenant-in-the-list-zz", e->proto, e->lo, &err) == 0 &&
		    strcmp(e->tenant, "zz-not-a-tenant-in-the-list-zz"))
			abort();
	}
	free(text);
}

/* Take n bytes from the input (zeros once it runs out). */
static void take(const uint8_t **p, size_t *left, void *dst, size_t n)
{
	size_t k = n < *left ? n : *left;

	memset(dst, 0, n);
	memcpy(dst, *p, k);
	*p += k;
	*left -= k;
}

static void fuzz_model(const uint8_t *data, size_t size)
{
	struct nft_tenant t[4];
	struct nft_instance in[6];
	struct nft_publish pub[4];
	struct nft_model m;
	struct vmlet_err err;
	uint8_t counts[3];
	json_t *a = NULL, *b = NULL;

	memset(&m, 0, sizeof(m));
	take(&data, &size, counts, sizeof(counts));
	take(&data, &size, m.uplink, sizeof(m.uplink));
	take(&data, &size, t, sizeof(t));
	take(&data, &size, in, sizeof(in));
	take(&data, &size, pub, sizeof(pub));
	m.tenants = t;
	m.n_tenants = counts[0] % 5;
	m.instances = in;
	m.n_instances = counts[1] % 7;
	m.publishes = pub;
	m.n_publishes = counts[2] % 5;
	err.msg[0] = '\0';
	if (nft_model_validate(&m, &err) < 0) {
		if (!err.msg[0] || err.code != VMLET_E_INVALID)
			abort();
		if (nft_render(&m, &a, &err) == 0 || a)
			abort();
		return;
	}
	if (nft_render(&m, &a, &err) != 0 || nft_render(&m, &b, &err) != 0 || !json_equal(a, b))
		abort();
	json_decref(a);
	json_decref(b);
	if (nft_render_commands(&m, &a, &err) != 0)
		abort();
	json_decref(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] % 2 == 0)
		fuzz_whitelist(data + 1, size - 1);
	else
		fuzz_model(data + 1, size - 1);
	return 0;
}
