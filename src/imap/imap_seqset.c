/*
 * IMAP sequence sets (RFC 3501 9). A set is a list of closed ranges with
 * "*" already resolved; normalizing sorts and merges them so that
 * membership is a binary search and iteration never repeats a number
 * (RFC 3501 6.4.5 answers each message once, in order).
 */

#include "imap/imap_seqset.h"

#include <stdlib.h>

#include "core/xalloc.h"

void imap_seqset_init(struct imap_seqset *set)
{
	set->r = NULL;
	set->count = 0;
	set->cap = 0;
	set->normalized = true;
}

void imap_seqset_free(struct imap_seqset *set)
{
	free(set->r);
	imap_seqset_init(set);
}

static void add_range(struct imap_seqset *set, uint32_t a, uint32_t b)
{
	if (set->count == set->cap) {
		set->cap = set->cap ? set->cap * 2 : 8;
		set->r = xrealloc(set->r, set->cap * sizeof(*set->r));
	}
	set->r[set->count].lo = a < b ? a : b;
	set->r[set->count].hi = a < b ? b : a;
	set->count++;
}

/* seq-number = nz-number / "*" */
static int read_seqnum(const char *s, size_t len, size_t *pos, uint32_t star, uint32_t *v_r,
		       const char **error_r)
{
	size_t i = *pos;
	if (i < len && s[i] == '*') {
		*v_r = star;
		*pos = i + 1;
		return 0;
	}
	uint64_t v = 0;
	size_t start = i;
	while (i < len && s[i] >= '0' && s[i] <= '9') {
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > UINT32_MAX) {
			*error_r = "Number too large in sequence set";
			return -1;
		}
		i++;
	}
	if (i == start) {
		*error_r = i < len ? "Invalid character in sequence set" : "Empty part in sequence set";
		return -1;
	}
	if (v == 0) {
		*error_r = "Invalid number 0 in sequence set";
		return -1;
	}
	*v_r = (uint32_t)v;
	*pos = i;
	return 0;
}

int imap_seqset_parse(struct imap_seqset *set, const char *s, size_t len, uint32_t star,
		      const char **error_r)
{
	size_t pos = 0;

	set->count = 0;
	set->normalized = true;
	for (;;) {
		uint32_t a, b;
		if (read_seqnum(s, len, &pos, star, &a, error_r) < 0)
			goto fail;
		b = a;
		if (pos < len && s[pos] == ':') {
			pos++;
			if (read_seqnum(s, len, &pos, star, &b, error_r) < 0)
				goto fail;
		}
		add_range(set, a, b);
		if (pos == len)
			break;
		if (s[pos] != ',') {
			*error_r = "Invalid character in sequence set";
			goto fail;
		}
		pos++;
	}
	set->normalized = set->count <= 1;
	return 0;
fail:
	set->count = 0;
	set->normalized = true;
	return -1;
}

static int cmp_range(const void *x, const void *y)
{
	const struct imap_seqrange *a = x, *b = y;
	if (a->lo != b->lo)
		return a->lo < b->lo ? -1 : 1;
	return a->hi < b->hi ? -1 : a->hi > b->hi;
}

void imap_seqset_normalize(struct imap_seqset *set)
{
	if (set->normalized)
		return;
	qsort(set->r, set->count, sizeof(*set->r), cmp_range);
	size_t out = 0;
	for (size_t i = 0; i < set->count; i++) {
		if (out > 0 && (uint64_t)set->r[i].lo <= (uint64_t)set->r[out - 1].hi + 1) {
			if (set->r[i].hi > set->r[out - 1].hi)
				set->r[out - 1].hi = set->r[i].hi;
			continue;
		}
		set->r[out++] = set->r[i];
	}
	set->count = out;
	set->normalized = true;
}

bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n)
{
	if (!set->normalized) {
		for (size_t i = 0; i < set->count; i++)
			if (n >= set->r[i].lo && n <= set->r[i].hi)
				return true;
		return false;
	}
	size_t lo = 0, hi = set->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (n < set->r[mid].lo)
			hi = mid;
		else if (n > set->r[mid].hi)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

uint64_t imap_seqset_size(struct imap_seqset *set)
{
	uint64_t n = 0;
	imap_seqset_normalize(set);
	for (size_t i = 0; i < set->count; i++)
		n += (uint64_t)set->r[i].hi - set->r[i].lo + 1;
	return n;
}

/* The cursor is the next number to return, plus one (0 = not started). */
bool imap_seqset_next(struct imap_seqset *set, uint64_t *cursor, uint32_t *n_r)
{
	imap_seqset_normalize(set);
	uint64_t want = *cursor == 0 ? 0 : *cursor;
	for (size_t i = 0; i < set->count; i++) {
		if ((uint64_t)set->r[i].hi < want)
			continue;
		uint64_t v = want > set->r[i].lo ? want : set->r[i].lo;
		*n_r = (uint32_t)v;
		*cursor = v + 1;
		return true;
	}
	return false;
}
