#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "imap/imap_parse.h"
#include "imap/imap_seqset.h"
#include "mime/imapstr.h"
#include "testutil.h"

/* Drive the parser as the session does: whole lines (each ending at a guard
 * page), and a literal's bytes in pieces: split 0 gives them at once, 1 one
 * byte at a time, k > 1 cut once after k bytes. Stops at the first status
 * other than LITERAL/SKIP/MORE; *conts_r counts continuations that would be
 * sent, *used_r the wire bytes consumed. */
static enum imap_parse_status drive(struct imap_parser *p, const char *wire, size_t len, size_t split,
				    int *conts_r, size_t *used_r)
{
	size_t pos = 0;
	int conts = 0;
	for (;;) {
		const char *end = NULL;
		for (size_t i = pos; i + 1 < len; i++)
			if (wire[i] == '\r' && wire[i + 1] == '\n') {
				end = wire + i;
				break;
			}
		size_t n = end ? (size_t)(end - (wire + pos)) : len - pos;
		char *g = guard_copy(wire + pos, n);
		uint64_t lit = 0;
		bool sync = false;
		enum imap_parse_status st = imap_parser_line(p, g, n, &lit, &sync);
		guard_free(g, n);
		pos += n + (end ? 2 : 0);
		if (st != IMAP_PARSE_LITERAL && st != IMAP_PARSE_SKIP) {
			if (conts_r)
				*conts_r = conts;
			if (used_r)
				*used_r = pos;
			return st;
		}
		if (st == IMAP_PARSE_LITERAL && sync)
			conts++;
		ck_assert_uint_le(lit, len - pos);
		size_t left = (size_t)lit;
		while (left > 0) {
			size_t piece = left;
			if (split == 1)
				piece = 1;
			else if (split > 1 && left == (size_t)lit && split < left)
				piece = split;
			ck_assert_uint_eq(imap_parser_literal_left(p), left);
			g = guard_copy(wire + pos, piece);
			ck_assert_int_eq(imap_parser_bytes(p, g, piece), IMAP_PARSE_MORE);
			guard_free(g, piece);
			pos += piece;
			left -= piece;
		}
		ck_assert_uint_eq(imap_parser_literal_left(p), 0);
	}
}

static int parse_wire(struct imap_parser *p, const char *wire, size_t len, size_t split,
		      struct imap_command *cmd, const char **error)
{
	imap_parser_reset(p);
	ck_assert_int_eq(drive(p, wire, len, split, NULL, NULL), IMAP_PARSE_COMPLETE);
	return imap_parser_command(p, cmd, error);
}

#define S(lit) lit, sizeof(lit) - 1

static void ck_str(const struct imap_arg *a, enum imap_arg_type type, const char *s, size_t len)
{
	ck_assert_int_eq(a->type, type);
	ck_assert_uint_eq(a->len, len);
	ck_assert(memcmp(a->str, s, len) == 0);
	ck_assert_int_eq(a->str[len], '\0');
}

START_TEST(every_token_type)
{
	static const char wire[] =
		"a001 fetch 1:*,3 (FLAGS \\Seen \\* NIL nil \"a\\\\b\\\"c\" {5}\r\nx\0\r\ny 42 "
		"BODY.PEEK[1.2.HEADER.FIELDS (From \"To\")]<0.100> BINARY[3] body[] "
		"BODY[2.MIME] BODY[TEXT]<7> (a (b ())) \"\") [x]";
	struct imap_parser *p = imap_parser_new(1000, 4096);
	for (size_t split = 0; split < 8; split++) {
		struct imap_command cmd;
		const char *err;
		ck_assert_int_eq(parse_wire(p, S(wire), split, &cmd, &err), 0);
		ck_assert_str_eq(cmd.tag, "a001");
		ck_assert(imap_command_is(&cmd, "FETCH"));
		ck_assert(!cmd.uid);
		ck_assert_uint_eq(cmd.nargs, 3);
		const struct imap_arg *a = cmd.args;
		ck_str(a, IMAP_ARG_ATOM, S("1:*,3"));
		a = imap_arg_next(a);
		ck_assert_int_eq(a->type, IMAP_ARG_LIST);
		ck_assert_uint_eq(a->count, 15);
		const struct imap_arg *third = imap_arg_next(a);
		const struct imap_arg *e = a + 1;
		ck_str(e, IMAP_ARG_ATOM, S("FLAGS")); e = imap_arg_next(e);
		ck_str(e, IMAP_ARG_FLAG, S("\\Seen")); e = imap_arg_next(e);
		ck_str(e, IMAP_ARG_FLAG, S("\\*")); e = imap_arg_next(e);
		ck_str(e, IMAP_ARG_NIL, S("NIL")); e = imap_arg_next(e);
		ck_str(e, IMAP_ARG_NIL, S("nil")); e = imap_arg_next(e);
		ck_str(e, IMAP_ARG_QUOTED, S("a\\b\"c")); e = imap_arg_next(e);
		ck_str(e, IMAP_ARG_LITERAL, S("x\0\r\ny")); e = imap_arg_next(e);
		ck_assert_int_eq(e->type, IMAP_ARG_NUMBER);
		ck_assert_uint_eq(e->num, 42);
		e = imap_arg_next(e);
		ck_assert_int_eq(e->type, IMAP_ARG_SECTION);
		ck_assert_uint_eq(e->len, strlen("BODY.PEEK[1.2.HEADER.FIELDS (From \"To\")]<0.100>"));
		ck_assert(memcmp(e->sec_name, "BODY.PEEK", e->sec_name_len) == 0 && e->sec_name_len == 9);
		ck_assert(e->sec_part_len == 3 && memcmp(e->sec_part, "1.2", 3) == 0);
		ck_assert(e->sec_text_len == 13 && memcmp(e->sec_text, "HEADER.FIELDS", 13) == 0);
		ck_assert(e->has_partial && e->has_partial_len);
		ck_assert_uint_eq(e->partial_origin, 0);
		ck_assert_uint_eq(e->partial_len, 100);
		ck_assert_uint_eq(e->count, 2);
		ck_str(e + 1, IMAP_ARG_ATOM, S("From"));
		ck_str(e + 2, IMAP_ARG_QUOTED, S("To"));
		e = imap_arg_next(e);
		ck_assert_int_eq(e->type, IMAP_ARG_SECTION);
		ck_assert(e->sec_name_len == 6 && e->sec_part_len == 1 && e->sec_text_len == 0 && !e->has_partial);
		e = imap_arg_next(e);
		ck_assert(e->type == IMAP_ARG_SECTION && e->sec_part_len == 0 && e->sec_text_len == 0);
		e = imap_arg_next(e);
		ck_assert(e->type == IMAP_ARG_SECTION && e->sec_text_len == 4 && memcmp(e->sec_text, "MIME", 4) == 0);
		e = imap_arg_next(e);
		ck_assert(e->type == IMAP_ARG_SECTION && e->has_partial && !e->has_partial_len && e->partial_origin == 7);
		e = imap_arg_next(e);
		ck_assert(e->type == IMAP_ARG_LIST && e->count == 2 && e->span == 5);
		ck_assert(e[2].type == IMAP_ARG_LIST && e[2].count == 2 && e[4].type == IMAP_ARG_LIST && e[4].count == 0);
		e = imap_arg_next(e);
		ck_str(e, IMAP_ARG_QUOTED, S(""));
		ck_assert_ptr_eq(imap_arg_next(e), third);
		ck_str(third, IMAP_ARG_ATOM, S("[x]"));
		ck_assert_uint_eq(cmd.ntokens, (size_t)(imap_arg_next(third) - cmd.args));
	}
	imap_parser_free(&p);
	ck_assert_ptr_null(p);
}
END_TEST

START_TEST(uid_command_and_astring)
{
	struct imap_parser *p = imap_parser_new(100, 1000);
	struct imap_command cmd;
	const char *err, *s;
	size_t n;
	ck_assert_int_eq(parse_wire(p, S("T1 Uid store 1:3,5 +FLAGS.SILENT (\\Seen $Junk)"), 0, &cmd, &err), 0);
	ck_assert(cmd.uid);
	ck_assert(imap_command_is(&cmd, "STORE"));
	ck_assert_uint_eq(cmd.nargs, 3);
	ck_str(&cmd.args[1], IMAP_ARG_ATOM, S("+FLAGS.SILENT"));
	ck_assert(imap_arg_astring(&cmd.args[0], &s, &n) && n == 5);
	ck_assert(!imap_arg_astring(&cmd.args[2], &s, &n));
	ck_assert_int_eq(parse_wire(p, S("T2 NOOP"), 0, &cmd, &err), 0);
	ck_assert(imap_command_is(&cmd, "noop"));
	ck_assert_uint_eq(cmd.nargs, 0);
	ck_assert_int_eq(parse_wire(p, S("T3 LIST \"\" *"), 0, &cmd, &err), 0);
	ck_str(&cmd.args[1], IMAP_ARG_ATOM, S("*"));
	ck_assert_int_eq(parse_wire(p, S("T4 STATUS INBOX (MESSAGES UIDNEXT)"), 0, &cmd, &err), 0);
	ck_assert_uint_eq(cmd.nargs, 2);
	imap_parser_free(&p);
}
END_TEST

/* Two literals with CR, LF and NUL, cut at every boundary. */
START_TEST(literal_every_boundary)
{
	static const char wire[] = "L1 LOGIN {7}\r\nb\r\no\0b\n {10}\r\n\"se\\cret\r\n";
	struct imap_parser *p = imap_parser_new(64, 256);
	for (size_t split = 0; split <= 11; split++) {
		struct imap_command cmd;
		const char *err;
		int conts = -1;
		size_t used = 0;
		imap_parser_reset(p);
		ck_assert_int_eq(drive(p, S(wire), split, &conts, &used), IMAP_PARSE_COMPLETE);
		ck_assert_int_eq(conts, 2);
		ck_assert_uint_eq(used, sizeof(wire) - 1);
		ck_assert_str_eq(imap_parser_tag(p), "L1");
		ck_assert_int_eq(imap_parser_command(p, &cmd, &err), 0);
		ck_assert_uint_eq(cmd.nargs, 2);
		ck_str(&cmd.args[0], IMAP_ARG_LITERAL, S("b\r\no\0b\n"));
		ck_str(&cmd.args[1], IMAP_ARG_LITERAL, S("\"se\\cret\r\n"));
	}
	imap_parser_free(&p);
}
END_TEST

START_TEST(literal_plus_and_zero)
{
	static const char wire[] = "A1 APPEND INBOX (\\Seen) {10+}\r\nHello\r\nBye {0}\r\n";
	struct imap_parser *p = imap_parser_new(64, 256);
	for (size_t split = 0; split < 3; split++) {
		struct imap_command cmd;
		const char *err;
		int conts = -1;
		imap_parser_reset(p);
		ck_assert_int_eq(drive(p, S(wire), split, &conts, NULL), IMAP_PARSE_COMPLETE);
		ck_assert_int_eq(conts, 1); /* only the {0} */
		ck_assert_msg(imap_parser_command(p, &cmd, &err) == 0, "%s", err);
		ck_assert_uint_eq(cmd.nargs, 4);
		ck_str(&cmd.args[3], IMAP_ARG_LITERAL, S("Hello\r\nBye"));
		ck_str(&cmd.args[4], IMAP_ARG_LITERAL, S(""));
	}
	imap_parser_free(&p);
}
END_TEST

START_TEST(literal_over_max_sync)
{
	struct imap_parser *p = imap_parser_new(10, 100);
	uint64_t n = 99;
	bool sync = true;
	ck_assert_int_eq(imap_parser_line(p, S("big APPEND INBOX {11}"), &n, &sync), IMAP_PARSE_LITERAL_TOO_BIG);
	ck_assert(n == 0 && !sync);
	ck_assert_str_eq(imap_parser_tag(p), "big");
	ck_assert_int_eq(imap_parser_line(p, S("x APPEND INBOX {99999999999}"), &n, &sync), IMAP_PARSE_LITERAL_TOO_BIG);
	ck_assert_str_eq(imap_parser_tag(p), "x");
	/* fits the literal limit but not the command */
	ck_assert_int_eq(imap_parser_line(p, S("c LOGIN {10}"), &n, &sync), IMAP_PARSE_LITERAL);
	ck_assert_int_eq(imap_parser_bytes(p, "0123456789", 10), IMAP_PARSE_MORE);
	char line[90];
	memset(line, 'a', sizeof(line));
	line[0] = ' ';
	ck_assert_int_eq(imap_parser_line(p, line, sizeof(line), &n, &sync), IMAP_PARSE_TOO_LONG);
	ck_assert_str_eq(imap_parser_tag(p), "c");
	/* and the parser works again */
	ck_assert_int_eq(imap_parser_line(p, S("ok NOOP"), &n, &sync), IMAP_PARSE_COMPLETE);
	struct imap_command cmd;
	const char *err;
	ck_assert_int_eq(imap_parser_command(p, &cmd, &err), 0);
	ck_assert_str_eq(cmd.tag, "ok");
	imap_parser_free(&p);
}
END_TEST

START_TEST(literal_over_max_nonsync)
{
	static const char wire[] = "A2 APPEND INBOX {12+}\r\n0123456789ab {3+}\r\nabc\r\nA3 NOOP";
	struct imap_parser *p = imap_parser_new(10, 100);
	for (size_t split = 0; split < 3; split++) {
		size_t used = 0;
		int conts = -1;
		imap_parser_reset(p);
		ck_assert_int_eq(drive(p, S(wire), split, &conts, &used), IMAP_PARSE_LITERAL_TOO_BIG);
		ck_assert_int_eq(conts, 0);
		ck_assert_str_eq(imap_parser_tag(p), "A2");
		ck_assert_uint_eq(used, sizeof(wire) - 1 - strlen("A3 NOOP"));
		ck_assert_int_eq(drive(p, wire + used, strlen("A3 NOOP"), split, NULL, NULL), IMAP_PARSE_COMPLETE);
		struct imap_command cmd;
		const char *err;
		ck_assert_int_eq(imap_parser_command(p, &cmd, &err), 0);
		ck_assert_str_eq(cmd.tag, "A3");
	}
	/* a synchronizing literal inside the dropped command ends it at once */
	uint64_t n;
	bool sync;
	imap_parser_reset(p);
	ck_assert_int_eq(imap_parser_line(p, S("A4 X {20+}"), &n, &sync), IMAP_PARSE_SKIP);
	ck_assert_uint_eq(n, 20);
	ck_assert_uint_eq(imap_parser_literal_left(p), 20);
	imap_parser_bytes(p, "01234567890123456789", 20);
	ck_assert_int_eq(imap_parser_line(p, S(" {5}"), &n, &sync), IMAP_PARSE_LITERAL_TOO_BIG);
	ck_assert_str_eq(imap_parser_tag(p), "A4");
	/* no way to skip a length past 32 bits */
	ck_assert_int_eq(imap_parser_line(p, S("A5 X {99999999999+}"), &n, &sync), IMAP_PARSE_FATAL);
	/* over the command size with {n+}: skip, then TOO_LONG */
	ck_assert_int_eq(imap_parser_line(p, S("A6 X {9+}"), &n, &sync), IMAP_PARSE_LITERAL);
	imap_parser_bytes(p, "123456789", 9);
	char big[95];
	memset(big, 'z', sizeof(big));
	memcpy(big + sizeof(big) - 5, " {4+}", 5);
	ck_assert_int_eq(imap_parser_line(p, big, sizeof(big), &n, &sync), IMAP_PARSE_SKIP);
	ck_assert_uint_eq(n, 4);
	imap_parser_bytes(p, "abcd", 4);
	ck_assert_int_eq(imap_parser_line(p, S(""), &n, &sync), IMAP_PARSE_TOO_LONG);
	ck_assert_str_eq(imap_parser_tag(p), "A6");
	imap_parser_free(&p);
}
END_TEST

START_TEST(malformed)
{
	static const char *const bad[] = {
		"",
		" NOOP",
		"NOOP",
		"+tag NOOP",
		"* NOOP",
		"A1",
		"A1 ",
		"A1 (NOOP",
		"A1 UID",
		"A1 UID ",
		"A1 X (a b",
		"A1 X a)",
		"A1 X ((a) b))",
		"A1 X \"abc",
		"A1 X \"a\\nb\"",
		"A1 X \"a\\",
		"A1 X \"caf\xc3\xa9\"",
		"A1 X caf\xc3\xa9",
		"A1 X \xff",
		"A1 X a  b",
		"A1 X a ",
		"A1 X (a  b)",
		"A1 X ( a)",
		"A1 X \\",
		"A1 X \\\\Seen",
		"A1 X \"a\"b",
		"A1 X a\x01",
		"A1 X {3",
		"A1 X {3}x",
		"A1 X {x}",
		"A1 FETCH 1 BODY[",
		"A1 FETCH 1 BODY[0]",
		"A1 FETCH 1 BODY[01]",
		"A1 FETCH 1 BODY[1.]",
		"A1 FETCH 1 BODY[MIME]",
		"A1 FETCH 1 BODY[FOO]",
		"A1 FETCH 1 BODY[HEADER.FIELDS]",
		"A1 FETCH 1 BODY[HEADER.FIELDS ()]",
		"A1 FETCH 1 BODY[HEADER.FIELDS (a (b))]",
		"A1 FETCH 1 BODY[]<1.0>",
		"A1 FETCH 1 BODY[]<1",
		"A1 FETCH 1 BODY[]<99999999999>",
		"A1 FETCH 1 BINARY[TEXT]",
		"A1 X (((((((((((((((((a)))))))))))))))))",
	};
	struct imap_parser *p = imap_parser_new(100, 1000);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct imap_command cmd;
		const char *err = NULL;
		uint64_t n;
		bool sync;
		imap_parser_reset(p);
		char *g = guard_copy(bad[i], strlen(bad[i]));
		ck_assert_int_eq(imap_parser_line(p, g, strlen(bad[i]), &n, &sync), IMAP_PARSE_COMPLETE);
		guard_free(g, strlen(bad[i]));
		if (imap_parser_command(p, &cmd, &err) != -1)
			ck_abort_msg("accepted: %s", bad[i]);
		ck_assert_ptr_nonnull(err);
	}
	/* the nesting bound itself is fine */
	struct imap_command cmd;
	const char *err;
	ck_assert_int_eq(parse_wire(p, S("A1 X ((((((((((((((((a))))))))))))))))"), 0, &cmd, &err), 0);
	/* an empty line has no tag to answer */
	uint64_t n;
	bool sync;
	imap_parser_reset(p);
	ck_assert_int_eq(imap_parser_line(p, "", 0, &n, &sync), IMAP_PARSE_COMPLETE);
	ck_assert_str_eq(imap_parser_tag(p), "*");
	imap_parser_free(&p);
}
END_TEST

static void seq_ok(const char *s, uint32_t star, const char *want_ranges, uint64_t size)
{
	struct imap_seqset set;
	const char *err = NULL;
	char got[256] = "";
	imap_seqset_init(&set);
	char *g = guard_copy(s, strlen(s));
	ck_assert_msg(imap_seqset_parse(&set, g, strlen(s), star, &err) == 0, "%s: %s", s, err);
	guard_free(g, strlen(s));
	ck_assert_uint_eq(imap_seqset_size(&set), size);
	for (size_t i = 0; i < set.count; i++) {
		size_t l = strlen(got);
		snprintf(got + l, sizeof(got) - l, "%s%u:%u", i ? "," : "", set.r[i].lo, set.r[i].hi);
	}
	ck_assert_str_eq(got, want_ranges);
	/* iteration and membership agree */
	uint64_t cursor = 0, seen = 0;
	uint32_t v, prev = 0;
	while (seen < 10000 && imap_seqset_next(&set, &cursor, &v)) {
		ck_assert(seen == 0 || v > prev);
		ck_assert(imap_seqset_contains(&set, v));
		prev = v;
		seen++;
	}
	if (size < 10000)
		ck_assert_uint_eq(seen, size);
	imap_seqset_free(&set);
}

static void seq_bad(const char *s)
{
	struct imap_seqset set;
	const char *err = NULL;
	imap_seqset_init(&set);
	char *g = guard_copy(s, strlen(s));
	ck_assert_msg(imap_seqset_parse(&set, g, strlen(s), 10, &err) == -1, "accepted %s", s);
	guard_free(g, strlen(s));
	ck_assert_ptr_nonnull(err);
	ck_assert_uint_eq(set.count, 0);
	imap_seqset_free(&set);
}

START_TEST(seqsets)
{
	seq_ok("1", 10, "1:1", 1);
	seq_ok("*", 10, "10:10", 1);
	seq_ok("1,3:5,7:*,*", 10, "1:1,3:5,7:10", 8);
	seq_ok("5:3", 10, "3:5", 3);
	seq_ok("*:4", 10, "4:10", 7);
	seq_ok("20:*", 10, "10:20", 11);     /* UID n:* past the last UID */
	seq_ok("4,2,3,1", 10, "1:4", 4);     /* adjacent ones merge */
	seq_ok("1:5,3:8,20", 10, "1:8,20:20", 9);
	seq_ok("4294967295", 10, "4294967295:4294967295", 1);
	seq_ok("1:4294967295", 5, "1:4294967295", 4294967295ull);
	seq_ok("*", 0, "0:0", 1);            /* empty mailbox: * is 0 */
	seq_bad("");
	seq_bad("0");
	seq_bad("1:0");
	seq_bad("4294967296");
	seq_bad("99999999999999999999999");
	seq_bad("1,,2");
	seq_bad(",1");
	seq_bad("1,");
	seq_bad("1:");
	seq_bad(":2");
	seq_bad("1::2");
	seq_bad("1:2:3");
	seq_bad("a");
	seq_bad("1 ,2");
	seq_bad("-1");
	seq_bad("**");

	struct imap_seqset set;
	const char *err;
	imap_seqset_init(&set);
	ck_assert_int_eq(imap_seqset_parse(&set, S("9,2:4"), 9, &err), 0);
	ck_assert(imap_seqset_contains(&set, 3) && imap_seqset_contains(&set, 9));
	ck_assert(!imap_seqset_contains(&set, 5) && !imap_seqset_contains(&set, 1));
	imap_seqset_normalize(&set);
	ck_assert(imap_seqset_contains(&set, 3) && !imap_seqset_contains(&set, 8));
	imap_seqset_free(&set);
}
END_TEST

/* imapstr_write then parse: the same bytes back, for every byte class. */
START_TEST(imapstr_round_trip)
{
	struct { const char *s; size_t len; } cases[] = {
		{ S("") }, { S("plain") }, { S("with space and (parens)") }, { S("q\"uo\\te") },
		{ S("{5}") }, { S("8-bit caf\xc3\xa9 \xff\x80") }, { S("cr\rhere") }, { S("lf\nhere") },
		{ S("crlf\r\n") }, { S("\r\n") }, { S("\x01\x1f\x7f tab\t") }, { S("NIL") },
	};
	char all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (char)i;
	struct imap_parser *p = imap_parser_new(4096, 8192);
	for (size_t k = 0; k <= sizeof(cases) / sizeof(cases[0]); k++) {
		const char *s = k < sizeof(cases) / sizeof(cases[0]) ? cases[k].s : all + 1;
		size_t len = k < sizeof(cases) / sizeof(cases[0]) ? cases[k].len : 255;
		struct buf b;
		buf_init(&b, 8192);
		ck_assert_int_eq(buf_printf(&b, "R%zu X ", k), 0);
		ck_assert_int_eq(imapstr_write(&b, s, len), 0);
		ck_assert_int_eq(buf_append(&b, " end", 4), 0);
		for (size_t split = 0; split < 3; split++) {
			struct imap_command cmd;
			const char *err = NULL, *got;
			size_t got_len;
			ck_assert_msg(parse_wire(p, buf_ptr(&b), buf_len(&b), split, &cmd, &err) == 0, "%zu: %s", k, err);
			ck_assert_uint_eq(cmd.nargs, 2);
			ck_assert(imap_arg_astring(&cmd.args[0], &got, &got_len));
			ck_assert_uint_eq(got_len, len);
			ck_assert(memcmp(got, s, len) == 0);
		}
		buf_free(&b);
	}
	/* NUL is sent as 0x80 by design (imapstr.h) */
	struct buf b;
	buf_init(&b, 100);
	ck_assert_int_eq(buf_printf(&b, "N X "), 0);
	ck_assert_int_eq(imapstr_write(&b, "a\0b", 3), 0);
	struct imap_command cmd;
	const char *err;
	ck_assert_int_eq(parse_wire(p, buf_ptr(&b), buf_len(&b), 0, &cmd, &err), 0);
	ck_str(&cmd.args[0], IMAP_ARG_LITERAL, S("a\x80" "b"));
	buf_free(&b);
	imap_parser_free(&p);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("imap_parse");
	TCase *tc = tcase_create("parse");
	tcase_add_test(tc, every_token_type);
	tcase_add_test(tc, uid_command_and_astring);
	tcase_add_test(tc, literal_every_boundary);
	tcase_add_test(tc, literal_plus_and_zero);
	tcase_add_test(tc, literal_over_max_sync);
	tcase_add_test(tc, literal_over_max_nonsync);
	tcase_add_test(tc, malformed);
	suite_add_tcase(s, tc);
	TCase *ts = tcase_create("seqset");
	tcase_add_test(ts, seqsets);
	tcase_add_test(ts, imapstr_round_trip);
	suite_add_tcase(s, ts);
	return testutil_run(s);
}
