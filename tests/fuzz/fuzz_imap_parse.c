/* Fuzz target for imap/imap_parse and imap/imap_seqset.
 *
 * Input: 1 parameter byte, then what a client sends.
 *   byte 0  bits 0-1: limits (literal_max, command_max) = (64, 256),
 *           (1024, 4096), (8, 64), (4096, 1024); bits 2-3: literal pieces
 *           (whole, 1 byte, 3 bytes, 17 bytes); bits 4-7: "*" for
 *           sequence sets (0, 1, 10, 2^32-1 ... by value % 4)
 *
 * The stream is cut into lines at LF (a CR before it dropped) as the session
 * driver does, and literal bytes handed over in pieces. Checks: statuses are
 * coherent (a literal never longer than the rest of the stream is asked
 * for, a refused or skipped literal is over a limit), the buffered command
 * never passes command_max, a tokenized command has a tag and name, token
 * spans nest inside their parents and strings are NUL-terminated; an atom
 * that parses as a sequence set gives sorted disjoint ranges whose size,
 * membership and iteration agree. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/imap_parse.h"
#include "imap/imap_seqset.h"

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
	abort(); } } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_seqset(const char *s, size_t len, uint32_t star)
{
	struct imap_seqset set;
	const char *err = NULL;
	imap_seqset_init(&set);
	if (imap_seqset_parse(&set, s, len, star, &err) < 0) {
		CHECK(err != NULL && set.count == 0);
		imap_seqset_free(&set);
		return;
	}
	CHECK(set.count >= 1 && set.count <= len / 2 + 1);
	uint64_t size = imap_seqset_size(&set);
	uint64_t sum = 0;
	for (size_t i = 0; i < set.count; i++) {
		CHECK(set.r[i].lo <= set.r[i].hi);
		if (i > 0)
			CHECK((uint64_t)set.r[i - 1].hi + 1 < set.r[i].lo);
		CHECK(imap_seqset_contains(&set, set.r[i].lo));
		CHECK(imap_seqset_contains(&set, set.r[i].hi));
		if (set.r[i].lo > 0)
			CHECK(!imap_seqset_contains(&set, set.r[i].lo - 1) || i > 0);
		sum += (uint64_t)set.r[i].hi - set.r[i].lo + 1;
	}
	CHECK(sum == size);
	uint64_t cursor = 0;
	uint32_t v, prev = 0;
	for (unsigned k = 0; k < 64 && imap_seqset_next(&set, &cursor, &v); k++) {
		CHECK(k == 0 || v > prev);
		CHECK(imap_seqset_contains(&set, v));
		prev = v;
	}
	imap_seqset_free(&set);
}

static void check_args(const struct imap_arg *a, size_t n, uint32_t star)
{
	for (size_t i = 0; i < n; i++) {
		CHECK(a[i].span >= 1 && a[i].span <= n - i);
		CHECK(a[i].str != NULL && a[i].str[a[i].len] == '\0');
		if (a[i].type == IMAP_ARG_LIST || a[i].type == IMAP_ARG_SECTION) {
			/* the children exactly fill the span */
			size_t j = i + 1, count = 0;
			while (j < i + a[i].span) {
				j += a[j].span;
				count++;
			}
			CHECK(j == i + a[i].span);
			CHECK(count == a[i].count);
		} else {
			CHECK(a[i].span == 1);
		}
		if (a[i].type == IMAP_ARG_SECTION) {
			CHECK(a[i].sec_name + a[i].sec_name_len <= a[i].str + a[i].len);
			CHECK(a[i].sec_text + a[i].sec_text_len <= a[i].str + a[i].len);
			CHECK(a[i].has_partial || !a[i].has_partial_len);
			CHECK(!a[i].has_partial_len || a[i].partial_len > 0);
		}
		if (a[i].type == IMAP_ARG_ATOM || a[i].type == IMAP_ARG_NUMBER)
			check_seqset(a[i].str, a[i].len, star);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t lit_max[4] = { 64, 1024, 8, 4096 };
	static const size_t cmd_max[4] = { 256, 4096, 64, 1024 };
	static const size_t pieces[4] = { SIZE_MAX, 1, 3, 17 };
	static const uint32_t stars[4] = { 0, 1, 10, UINT32_MAX };
	if (size < 1)
		return 0;
	size_t lm = lit_max[data[0] & 3], cm = cmd_max[data[0] & 3];
	size_t piece = pieces[(data[0] >> 2) & 3];
	uint32_t star = stars[(data[0] >> 4) & 3];
	const char *s = (const char *)data + 1;
	size_t len = size - 1, pos = 0;
	struct imap_parser *p = imap_parser_new(lm, cm);
	size_t buffered = 0;   /* our own count of the command's bytes */

	while (pos < len) {
		const char *lf = memchr(s + pos, '\n', len - pos);
		size_t n = lf ? (size_t)(lf - (s + pos)) : len - pos;
		size_t next = pos + n + (lf ? 1 : 0);
		if (n > 0 && lf && s[pos + n - 1] == '\r')
			n--;
		uint64_t lit = 0;
		bool sync = false;
		enum imap_parse_status st = imap_parser_line(p, s + pos, n, &lit, &sync);
		pos = next;
		const char *tag = imap_parser_tag(p);
		CHECK(tag != NULL && tag[0] != '\0');
		switch (st) {
		case IMAP_PARSE_COMPLETE: {
			struct imap_command cmd;
			const char *err = NULL;
			buffered += n;
			CHECK(buffered <= cm);
			if (imap_parser_command(p, &cmd, &err) == 0) {
				CHECK(cmd.tag != NULL && cmd.name != NULL);
				CHECK(strcmp(cmd.tag, tag) == 0 || strlen(cmd.tag) > 64);
				CHECK(cmd.nargs <= cmd.ntokens);
				check_args(cmd.args, cmd.ntokens, star);
				size_t top = 0, k = 0;
				while (k < cmd.ntokens) {
					k += cmd.args[k].span;
					top++;
				}
				CHECK(k == cmd.ntokens && top == cmd.nargs);
			} else {
				CHECK(err != NULL);
			}
			imap_parser_reset(p);
			buffered = 0;
			break;
		}
		case IMAP_PARSE_LITERAL:
		case IMAP_PARSE_SKIP:
			if (st == IMAP_PARSE_LITERAL) {
				CHECK(lit <= lm);
				buffered += n + 2 + lit;
				CHECK(buffered <= cm);
			} else {
				CHECK(!sync);
				buffered = 0;
			}
			if (lit > len - pos)
				lit = len - pos;   /* the stream ends inside it */
			while (lit > 0) {
				size_t k = lit < piece ? (size_t)lit : piece;
				CHECK(imap_parser_literal_left(p) >= k);
				CHECK(imap_parser_bytes(p, s + pos, k) == IMAP_PARSE_MORE);
				pos += k;
				lit -= k;
			}
			break;
		case IMAP_PARSE_LITERAL_TOO_BIG:
		case IMAP_PARSE_TOO_LONG:
		case IMAP_PARSE_FATAL:
			buffered = 0;
			CHECK(imap_parser_literal_left(p) == 0);
			break;
		default:
			CHECK(0);
		}
	}
	imap_parser_free(&p);
	CHECK(p == NULL);
	return 0;
}
