/*
 * MX ordering and the RFC 5321 5.1 / RFC 7505 rules (see mx_order.h).
 * MX answers are small (a handful of records), so the sorts here are plain
 * insertion sorts: stable, in place, obviously correct.
 */
#include "smtp/mx_order.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "core/xalloc.h"

static uint32_t default_rng(void *ctx)
{
	(void)ctx;
	return arc4random();
}

/* Host names compare without case and without a trailing dot. */
static size_t host_len(const char *h)
{
	size_t n = strlen(h);
	return n > 0 && h[n - 1] == '.' ? n - 1 : n;
}

static bool host_eq(const char *a, const char *b)
{
	size_t na = host_len(a), nb = host_len(b);
	return na == nb && strncasecmp(a, b, na) == 0;
}

static bool is_root(const char *h)
{
	return host_len(h) == 0;
}

void smtp_mx_sort(struct smtp_mx *mx, size_t n, smtp_mx_rng rng, void *rng_ctx)
{
	if (rng == NULL)
		rng = default_rng;
	for (size_t i = 1; i < n; i++) {
		struct smtp_mx m = mx[i];
		size_t j = i;
		while (j > 0 && mx[j - 1].pref > m.pref) {
			mx[j] = mx[j - 1];
			j--;
		}
		mx[j] = m;
	}
	/* Fisher-Yates within each run of equal preference (the modulo bias
	 * of a 32-bit value over a handful of records is negligible). */
	for (size_t lo = 0; lo < n;) {
		size_t hi = lo + 1;
		while (hi < n && mx[hi].pref == mx[lo].pref)
			hi++;
		for (size_t i = hi - 1; i > lo; i--) {
			size_t j = lo + rng(rng_ctx) % (i - lo + 1);
			struct smtp_mx t = mx[i];
			mx[i] = mx[j];
			mx[j] = t;
		}
		lo = hi;
	}
}

enum smtp_mx_verdict smtp_mx_plan(const struct smtp_mx *records, size_t n, const char *domain, const char *self,
				  smtp_mx_rng rng, void *rng_ctx, struct smtp_mx *out, size_t max, size_t *n_r)
{
	*n_r = 0;
	if (n == 0) {
		/* RFC 5321 5.1: no MX, the domain is its own MX at 0. */
		if (max > 0) {
			out[0].pref = 0;
			out[0].host = domain;
			*n_r = 1;
		}
		return SMTP_MX_IMPLICIT;
	}

	/* Real hosts only, each once at its best preference. */
	struct smtp_mx *list = xmalloc(n * sizeof(*list)); /* a DNS answer: small */
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (records[i].host == NULL || is_root(records[i].host))
			continue;
		size_t j = 0;
		while (j < k && !host_eq(list[j].host, records[i].host))
			j++;
		if (j < k) {
			if (records[i].pref < list[j].pref)
				list[j].pref = records[i].pref;
			continue;
		}
		list[k++] = records[i];
	}
	if (k == 0) {
		free(list);
		return SMTP_MX_NULL; /* RFC 7505 3 */
	}
	smtp_mx_sort(list, k, rng, rng_ctx);

	/* RFC 5321 5.1: never send to ourselves or to an MX we would relay
	 * back from: drop self and everything not better than it. */
	if (self != NULL) {
		for (size_t i = 0; i < k; i++) {
			if (host_eq(list[i].host, self)) {
				uint16_t mine = list[i].pref;
				size_t keep = 0;
				while (keep < k && list[keep].pref < mine)
					keep++;
				k = keep;
				break;
			}
		}
		if (k == 0) {
			free(list);
			return SMTP_MX_LOOP;
		}
	}
	size_t m = k < max ? k : max;
	memcpy(out, list, m * sizeof(*out));
	*n_r = m;
	free(list);
	return SMTP_MX_HOSTS;
}

static bool addr_eq(const struct smtp_mx_addr *a, const struct smtp_mx_addr *b)
{
	if (a->family != b->family)
		return false;
	if (a->family == AF_INET)
		return memcmp(&a->u.v4, &b->u.v4, sizeof(a->u.v4)) == 0;
	return memcmp(&a->u.v6, &b->u.v6, sizeof(a->u.v6)) == 0;
}

/* Append one address unless it is listed already; false when out is full. */
static bool add_target(const char *host, const struct smtp_mx_addr *a, struct smtp_mx_target *out, size_t max,
		       size_t *n)
{
	for (size_t i = 0; i < *n; i++) {
		if (addr_eq(&out[i].addr, a))
			return true;
	}
	if (*n >= max)
		return false;
	out[*n].host = host;
	out[*n].addr = *a;
	(*n)++;
	return true;
}

size_t smtp_mx_targets(const struct smtp_mx_host *hosts, size_t n, unsigned flags, struct smtp_mx_target *out,
		       size_t max)
{
	size_t count = 0;
	bool v4_only = (flags & SMTP_MX_IPV4_ONLY) != 0;
	bool v4_first = (flags & SMTP_MX_IPV4_FIRST) != 0;

	for (size_t h = 0; h < n; h++) {
		const struct smtp_mx_host *x = &hosts[h];
		size_t n6 = v4_only ? 0 : x->n_aaaa;
		size_t i4 = 0, i6 = 0;
		bool turn6 = !v4_first;

		while (i4 < x->n_a || i6 < n6) {
			struct smtp_mx_addr a;
			memset(&a, 0, sizeof(a));
			bool take6 = i6 < n6 && (turn6 || i4 >= x->n_a);
			if (take6) {
				a.family = AF_INET6;
				a.u.v6 = x->aaaa[i6++];
			} else {
				a.family = AF_INET;
				a.u.v4 = x->a[i4++];
			}
			turn6 = !take6;
			if (!add_target(x->host, &a, out, max, &count))
				return count;
		}
	}
	return count;
}
