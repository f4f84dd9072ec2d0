/* Fuzz target for maildir/mdname.
 *
 * 1. The input as a file name to mdname_parse(). A refusal must have one of
 *    the documented reasons. A success must describe the name (base before
 *    the first ':', flags only from ":2,", other letters sorted, unique and
 *    neither flags nor keywords), and rewriting it with mdname_with_info()
 *    must keep the base, sizes, flags, keywords and other letters, be
 *    idempotent, and give back the very same name when it was already
 *    canonical; it fails only when the result would pass MDNAME_MAX.
 * 2. The input's bytes as the parts of mdname_new(): the name always fits,
 *    parses, has the sizes, and no '/', ':' or ',' from the host. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maildir/mdname.h"

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
	abort(); } } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool known_letter(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c != 0 && strchr("DFPRST", c) != NULL);
}

static void check_parse(const char *name, size_t size)
{
	struct mdname_info r, r2;
	char out[MDNAME_MAX + 1], out2[MDNAME_MAX + 1];

	if (mdname_parse(name, size, &r) < 0) {
		bool bad = size == 0 || size > MDNAME_MAX || name[0] == '.' || name[0] == ':';
		for (size_t i = 0; i < size && !bad; i++)
			bad = name[i] == '/' || name[i] == '\0' || name[i] == '\r' || name[i] == '\n';
		CHECK(bad);
		return;
	}

	CHECK(size >= 1 && size <= MDNAME_MAX && name[0] != '.');
	CHECK(r.base_len >= 1 && r.base_len <= size);
	CHECK(memchr(name, ':', r.base_len) == NULL);
	CHECK(r.base_len == size ? r.info == MDNAME_INFO_NONE : name[r.base_len] == ':');
	CHECK((r.flags & ~MDNAME_FLAGS_ALL) == 0 && (r.keywords & ~MDNAME_KEYWORDS_ALL) == 0);
	if (r.info != MDNAME_INFO_2)
		CHECK(r.flags == 0 && r.keywords == 0 && r.other[0] == '\0' && !r.other_overflow);
	size_t olen = strlen(r.other);
	CHECK(olen <= MDNAME_OTHER_MAX);
	CHECK(!r.other_overflow || olen == MDNAME_OTHER_MAX);
	for (size_t i = 0; i < olen; i++) {
		CHECK(!known_letter((unsigned char)r.other[i]));
		CHECK(i == 0 || (unsigned char)r.other[i - 1] < (unsigned char)r.other[i]);
	}
	if (!r.has_size)
		CHECK(r.size == 0);
	if (!r.has_vsize)
		CHECK(r.vsize == 0);

	size_t expect = r.base_len + 3 + (size_t)__builtin_popcount(r.flags) +
			(size_t)__builtin_popcount(r.keywords) + olen;
	int n = mdname_with_info(out, sizeof(out), name, r.base_len, r.flags, r.keywords, r.other);
	if (expect > MDNAME_MAX) {
		CHECK(n == -1);
		return;
	}
	CHECK(n >= 0 && (size_t)n == expect && strlen(out) == expect);
	CHECK(memcmp(out, name, r.base_len) == 0);
	CHECK(mdname_parse(out, (size_t)n, &r2) == 0);
	CHECK(r2.base_len == r.base_len && r2.info == MDNAME_INFO_2);
	CHECK(r2.has_size == r.has_size && r2.size == r.size);
	CHECK(r2.has_vsize == r.has_vsize && r2.vsize == r.vsize);
	CHECK(r2.flags == r.flags && r2.keywords == r.keywords);
	CHECK(strcmp(r2.other, r.other) == 0 && !r2.other_overflow);

	/* Idempotent, also in place. */
	CHECK(mdname_with_info(out2, sizeof(out2), out, r2.base_len, r2.flags, r2.keywords, r2.other) == n);
	CHECK(strcmp(out, out2) == 0);
	CHECK(mdname_with_info(out2, sizeof(out2), out2, r2.base_len, r2.flags, r2.keywords, r2.other) == n);
	CHECK(strcmp(out, out2) == 0);

	/* A canonical name (":2," and strictly ascending letters) is rebuilt
	 * exactly. */
	if (r.info == MDNAME_INFO_2 && !r.other_overflow) {
		bool canonical = true;
		for (size_t i = r.base_len + 4; i < size && canonical; i++)
			canonical = (unsigned char)name[i - 1] < (unsigned char)name[i];
		if (canonical)
			CHECK((size_t)n == size && memcmp(out, name, size) == 0);
	}

	/* Changing the flags changes only the info. */
	n = mdname_with_info(out2, sizeof(out2), name, r.base_len, r.flags ^ MDNAME_SEEN, r.keywords, NULL);
	if (n >= 0) {
		CHECK(mdname_parse(out2, (size_t)n, &r2) == 0);
		CHECK(r2.flags == (r.flags ^ MDNAME_SEEN) && r2.base_len == r.base_len);
	}
}

static uint64_t take(const uint8_t **p, size_t *left, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n && *left > 0; i++, (*p)++, (*left)--)
		v = (v << 8) | **p;
	return v;
}

static void check_new(const uint8_t *data, size_t size)
{
	struct mdname_unique u;
	struct mdname_info r;
	char host[512], out[MDNAME_MAX + 1];
	uint64_t msize, vsize;
	size_t hlen;
	int n;

	u.sec = take(&data, &size, 8);
	u.usec = (uint32_t)take(&data, &size, 4);
	u.pid = (uint32_t)take(&data, &size, 4);
	u.counter = take(&data, &size, 8);
	msize = take(&data, &size, 8);
	vsize = take(&data, &size, 8);
	hlen = size < sizeof(host) - 1 ? size : sizeof(host) - 1;
	memcpy(host, data, hlen);
	host[hlen] = '\0';
	u.host = host;

	n = mdname_new(out, sizeof(out), &u, msize, vsize);
	CHECK(n > 0 && (size_t)n == strlen(out));
	CHECK(mdname_parse(out, (size_t)n, &r) == 0);
	CHECK(r.info == MDNAME_INFO_NONE && r.base_len == (size_t)n);
	CHECK(r.has_size && r.size == msize && r.has_vsize && r.vsize == vsize);
	/* The host part is everything between the third '.' ... and the ','
	 * of S=: it holds no ',' ':' or '/' of its own. */
	const char *comma = strstr(out, ",S=");
	CHECK(comma != NULL && strchr(comma + 1, ',') == strstr(out, ",W="));
	CHECK(strpbrk(out, "/:") == NULL);
	const char *h = strchr(strchr(out, '.') + 1, '.') + 1;
	CHECK(comma - h <= MDNAME_HOST_MAX && comma - h >= 1);
	CHECK(memchr(h, ',', (size_t)(comma - h)) == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_parse((const char *)data, size);
	check_new(data, size);
	return 0;
}
