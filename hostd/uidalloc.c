#include "hostd/uidalloc.h"

#include <stdlib.h>

int uidalloc_check_range(const struct uid_range *r, struct vmlet_err *err)
{
	if (!r || r->count == 0)
		return vmlet_err_set(err, VMLET_E_INVALID, 0, "uid range: count must be at least 1");
	if (r->base < UIDALLOC_MIN_BASE)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "uid range: base %u overlaps the system and login ids "
				     "0..%u (nobody is 65534); it must be >= %u",
				     r->base, UIDALLOC_MIN_BASE - 1, UIDALLOC_MIN_BASE);
	/* The last id, base + count - 1, must stay below 0xffffffff. */
	if ((uint64_t)r->base + r->count - 1 >= UINT32_MAX)
		return vmlet_err_set(err, VMLET_E_INVALID, 0,
				     "uid range: base %u + count %u reaches uid 4294967295 "
				     "((uid_t)-1)", r->base, r->count);
	return 0;
}

bool uidalloc_in_range(const struct uid_range *r, uint32_t uid)
{
	return r && uid >= r->base && (uint64_t)uid < (uint64_t)r->base + r->count;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

int uidalloc_pick(const struct uid_range *r, const uint32_t *in_use, size_t n, uint32_t *out,
		  struct vmlet_err *err)
{
	uint32_t *taken = NULL, next;
	size_t m = 0;

	if (uidalloc_check_range(r, err) < 0)
		return -1;
	if (n > 0) {
		taken = malloc(n * sizeof(*taken));
		if (!taken)
			return vmlet_err_set(err, VMLET_E_INTERNAL, 0, "uid range: out of memory");
		for (size_t i = 0; i < n; i++)
			if (uidalloc_in_range(r, in_use[i]))
				taken[m++] = in_use[i];
		qsort(taken, m, sizeof(*taken), cmp_u32);
	}
	/* Walk the sorted ids: the first gap above base is the answer. */
	next = r->base;
	for (size_t i = 0; i < m; i++) {
		if (taken[i] > next)
			break;
		if (taken[i] == next)
			next++;
	}
	free(taken);
	if (!uidalloc_in_range(r, next))
		return vmlet_err_set(err, VMLET_E_UNAVAILABLE, 0,
				     "uid range %u..%u: all %u uids are in use by live instances",
				     r->base, (uint32_t)((uint64_t)r->base + r->count - 1), r->count);
	*out = next;
	return 0;
}
