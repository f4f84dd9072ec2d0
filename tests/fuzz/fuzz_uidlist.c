/* Fuzz target for maildir/uidlist: any bytes go to uidlist_parse(). A
 * failure must name its line and leave nothing behind; a success must be a
 * list the rest of the store can trust (uids ascending and never
 * UINT32_MAX, next_uid above the last, bases that are file names, each
 * found by its base and its uid), and formatting it must give text that
 * parses back to the same list and formats to the same text again. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maildir/uidlist.h"

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
	abort(); } } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool is_zero(const struct uidlist *ul)
{
	static const struct uidlist zero;
	return memcmp(ul, &zero, sizeof(zero)) == 0;
}

static bool str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static void check_list(struct uidlist *ul)
{
	uint32_t prev = 0;

	CHECK(ul->version == 1 || ul->version == 3);
	CHECK(ul->uidvalidity != 0);
	CHECK(ul->guid[0] == '\0' ||
	      (strlen(ul->guid) == 32 && strspn(ul->guid, "0123456789abcdefABCDEF") == 32));
	CHECK(ul->extra_header == NULL || strpbrk(ul->extra_header, "\r\n") == NULL);
	CHECK(ul->n <= ul->cap);
	for (size_t i = 0; i < ul->n; i++) {
		const struct uidlist_entry *e = &ul->entries[i];
		size_t blen = strlen(e->base);

		CHECK(e->uid > prev && e->uid != UINT32_MAX);
		prev = e->uid;
		CHECK(blen > 0 && blen <= UIDLIST_BASE_MAX);
		CHECK(strpbrk(e->base, "/:\r\n") == NULL);
		CHECK(e->ext == NULL || (e->ext[0] >= 'A' && e->ext[0] <= 'Z' && strpbrk(e->ext, "\r\n") == NULL));
		CHECK(uidlist_find_base(ul, e->base, blen) == e);
		CHECK(uidlist_find_uid(ul, e->uid) == e);
	}
	CHECK(ul->next_uid > prev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct uidlist ul, again;
	char *err = NULL, *text, *text2;
	size_t len, len2;

	if (uidlist_parse((const char *)data, size, &ul, &err) < 0) {
		CHECK(err != NULL && strncmp(err, "line ", 5) == 0 && strlen(err) < 300);
		CHECK(is_zero(&ul));
		free(err);
		return 0;
	}
	CHECK(err == NULL);
	check_list(&ul);

	text = uidlist_format(&ul, &len);
	CHECK(strlen(text) == len);
	if (uidlist_parse(text, len, &again, &err) != 0) {
		fprintf(stderr, "formatted list does not parse: %s\n", err);
		abort();
	}
	check_list(&again);
	CHECK(again.version == 3);
	CHECK(again.uidvalidity == ul.uidvalidity);
	CHECK(again.next_uid == ul.next_uid);
	CHECK(strcmp(again.guid, ul.guid) == 0);
	CHECK(str_eq(again.extra_header, ul.extra_header));
	CHECK(again.n == ul.n);
	for (size_t i = 0; i < ul.n; i++) {
		const struct uidlist_entry *a = &ul.entries[i], *b = &again.entries[i];
		CHECK(a->uid == b->uid);
		CHECK(strcmp(a->base, b->base) == 0);
		CHECK(a->has_size == b->has_size && (!a->has_size || a->size == b->size));
		CHECK(a->has_vsize == b->has_vsize && (!a->has_vsize || a->vsize == b->vsize));
		CHECK(str_eq(a->ext, b->ext));
	}
	text2 = uidlist_format(&again, &len2);
	CHECK(len2 == len && memcmp(text, text2, len) == 0);
	free(text);
	free(text2);
	uidlist_free(&again);

	/* The next message gets next_uid; removing it keeps next_uid up. */
	uint32_t next = ul.next_uid;
	struct uidlist_entry *e = uidlist_add(&ul, 0, "fuzz-new-entry", 14);
	if (next == UINT32_MAX) {
		CHECK(e == NULL);
	} else if (e != NULL) {
		CHECK(e->uid == next && ul.next_uid == next + 1);
		CHECK(uidlist_remove_uid(&ul, next) == 0);
		CHECK(ul.next_uid == next + 1);
	} else {
		CHECK(uidlist_find_base(&ul, "fuzz-new-entry", 14) != NULL);
	}
	if (ul.n > 0) {
		uint32_t first = ul.entries[0].uid;
		CHECK(uidlist_remove_uid(&ul, first) == 0);
		CHECK(uidlist_find_uid(&ul, first) == NULL);
		check_list(&ul);
	}

	uidlist_free(&ul);
	CHECK(is_zero(&ul));
	uidlist_free(&ul);
	return 0;
}
