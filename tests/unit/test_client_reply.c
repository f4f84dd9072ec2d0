/* Unit tests for src/smtp/client_reply.c: the SMTP client's reply parser and
 * the EHLO keyword reader. Every input is fed whole and in pieces of every
 * size from one byte up, each piece ending at a guard page. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/client_reply.h"
#include "testutil.h"

#define MAXR 8

struct parsed {
	int n;                       /* replies, or -1 after an error */
	unsigned code[MAXR];
	size_t lines[MAXR];
	char summary[MAXR][512];
	char esc[MAXR][12];
	const char *error;
	size_t leftover;             /* bytes buffered of an unfinished reply */
};

/* Feed in[0..len) in pieces of `piece` octets (0 = whole), every piece
 * copied to end at a guard page. */
static void parse_pieces(const char *in, size_t len, size_t piece, struct parsed *out)
{
	struct smtp_reply_parser *p = smtp_reply_parser_new();
	size_t off = 0;

	memset(out, 0, sizeof(*out));
	if (piece == 0)
		piece = len > 0 ? len : 1;
	while (off < len && out->n >= 0) {
		size_t n = len - off < piece ? len - off : piece;
		char *g = guard_copy(in + off, n);
		size_t pos = 0;
		while (pos < n) {
			struct smtp_reply r;
			size_t used;
			const char *err = NULL;
			enum smtp_reply_status st = smtp_reply_parse(p, g + pos, n - pos, &used, &r, &err);
			ck_assert_uint_le(used, n - pos);
			pos += used;
			if (st == SMTP_REPLY_ERROR) {
				out->n = -1;
				out->error = err;
				break;
			}
			if (st == SMTP_REPLY_NEED_MORE) {
				ck_assert_uint_eq(pos, n);
				break;
			}
			ck_assert_int_lt(out->n, MAXR);
			out->code[out->n] = r.code;
			out->lines[out->n] = r.n_lines;
			smtp_reply_summary(&r, out->summary[out->n], sizeof(out->summary[0]));
			smtp_esc_format(&r.esc, out->esc[out->n]);
			/* Lines are C strings of their stated length. */
			for (size_t i = 0; i < r.n_lines; i++)
				ck_assert_uint_eq(strlen(r.lines[i].text), r.lines[i].len);
			out->n++;
		}
		guard_free(g, n);
		off += n;
	}
	if (out->n >= 0)
		out->leftover = smtp_reply_parser_partial(p) ? 1 : 0;
	smtp_reply_parser_free(&p);
	ck_assert_ptr_null(p);
}

/* Parse whole and in every piece size up to 16, and a few larger; all runs
 * must agree. Returns the result of the whole run. */
static struct parsed parse(const char *in)
{
	static const size_t sizes[] = { 1, 2, 3, 4, 5, 7, 8, 13, 16, 64, 1000, 4093 };
	size_t len = strlen(in);
	struct parsed whole, part;

	parse_pieces(in, len, 0, &whole);
	/* Long inputs (the limit tests) skip the smallest pieces: one mmap
	 * per byte of a 4 KiB line or 70 KiB of text takes seconds. */
	for (size_t s = len > 1024 ? 9 : 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		parse_pieces(in, len, sizes[s], &part);
		ck_assert_int_eq(part.n, whole.n);
		for (int i = 0; i < whole.n; i++) {
			ck_assert_uint_eq(part.code[i], whole.code[i]);
			ck_assert_str_eq(part.summary[i], whole.summary[i]);
		}
		if (whole.n < 0)
			ck_assert_str_eq(part.error, whole.error);
	}
	return whole;
}

START_TEST(single_line)
{
	struct parsed r = parse("250 2.1.0 Sender OK\r\n");
	ck_assert_int_eq(r.n, 1);
	ck_assert_uint_eq(r.code[0], 250);
	ck_assert_uint_eq(r.lines[0], 1);
	ck_assert_str_eq(r.esc[0], "2.1.0");
	ck_assert_str_eq(r.summary[0], "250 2.1.0 Sender OK");
	ck_assert_uint_eq(r.leftover, 0);
}
END_TEST

START_TEST(multi_line)
{
	struct parsed r = parse("250-mx.example.org Hello\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n");
	ck_assert_int_eq(r.n, 1);
	ck_assert_uint_eq(r.lines[0], 4);
	ck_assert_str_eq(r.summary[0], "250 mx.example.org Hello PIPELINING SIZE 10240000 8BITMIME");
}
END_TEST

START_TEST(several_replies_in_one_read)
{
	/* A pipelined answer: MAIL, two RCPTs, DATA. */
	struct parsed r = parse("250 2.1.0 OK\r\n250 2.1.5 OK\r\n550 5.1.1 No such user\r\n354 Go ahead\r\n");
	ck_assert_int_eq(r.n, 4);
	ck_assert_uint_eq(r.code[0], 250);
	ck_assert_uint_eq(r.code[2], 550);
	ck_assert_str_eq(r.esc[2], "5.1.1");
	ck_assert_uint_eq(r.code[3], 354);
	ck_assert_str_eq(r.esc[3], "");
}
END_TEST

START_TEST(bare_lf_and_empty_text)
{
	struct parsed r = parse("220 mx ESMTP\n250-\n250\n221\r\n");
	ck_assert_int_eq(r.n, 3);
	ck_assert_uint_eq(r.code[0], 220);
	ck_assert_uint_eq(r.code[1], 250);
	ck_assert_uint_eq(r.lines[1], 2);
	ck_assert_str_eq(r.summary[1], "250");
	ck_assert_str_eq(r.summary[2], "221");
}
END_TEST

START_TEST(partial_reply_waits)
{
	struct parsed r = parse("250-first\r\n250-second\r\n25");
	ck_assert_int_eq(r.n, 0);
	ck_assert_uint_eq(r.leftover, 1);
	r = parse("250 done\r\n250-next");
	ck_assert_int_eq(r.n, 1);
	ck_assert_uint_eq(r.leftover, 1);
}
END_TEST

START_TEST(enhanced_codes)
{
	struct parsed r;

	/* Per line, the repeated code is left out of the summary. */
	r = parse("550-5.1.1 The account does not exist.\r\n550 5.1.1 Please check the address.\r\n");
	ck_assert_str_eq(r.esc[0], "5.1.1");
	ck_assert_str_eq(r.summary[0], "550 5.1.1 The account does not exist. Please check the address.");
	/* Three-digit subject and detail. */
	r = parse("452 4.123.456 busy\r\n");
	ck_assert_str_eq(r.esc[0], "4.123.456");
	/* A code whose class differs from the reply's is only text. */
	r = parse("550 2.0.0 confused\r\n");
	ck_assert_str_eq(r.esc[0], "");
	ck_assert_str_eq(r.summary[0], "550 2.0.0 confused");
	/* Not codes: too many digits, no space after, wrong class, no detail. */
	r = parse("550 5.1.1234 x\r\n");
	ck_assert_str_eq(r.esc[0], "");
	r = parse("550 5.1.1x\r\n");
	ck_assert_str_eq(r.esc[0], "");
	r = parse("550 3.1.1 x\r\n");
	ck_assert_str_eq(r.esc[0], "");
	r = parse("550 5.1. x\r\n");
	ck_assert_str_eq(r.esc[0], "");
	/* A code alone, with nothing after it. */
	r = parse("250 2.0.0\r\n");
	ck_assert_str_eq(r.esc[0], "2.0.0");
	/* The reply's code is the first line's that has one. */
	r = parse("451-try later\r\n451 4.7.1 greylisted\r\n");
	ck_assert_str_eq(r.esc[0], "4.7.1");
	ck_assert_str_eq(r.summary[0], "451 try later 4.7.1 greylisted");
}
END_TEST

START_TEST(esc_parse_direct)
{
	struct smtp_esc e;
	char out[12];

	ck_assert_uint_eq(smtp_esc_parse("5.7.1 Relay denied", 18, &e), 6);
	ck_assert_str_eq(smtp_esc_format(&e, out), "5.7.1");
	ck_assert_uint_eq(smtp_esc_parse("2.0.0", 5, &e), 5);
	ck_assert_uint_eq(smtp_esc_parse("2.0.0 x", 3, &e), 0); /* cut short: read only len */
	ck_assert_uint_eq(e.cls, 0);
	ck_assert_uint_eq(smtp_esc_parse("5.999.999 x", 11, &e), 10);
	ck_assert_str_eq(smtp_esc_format(&e, out), "5.999.999");
	ck_assert_uint_eq(smtp_esc_parse("", 0, &e), 0);
	ck_assert_uint_eq(smtp_esc_parse("6.1.1 x", 7, &e), 0);
	ck_assert_uint_eq(smtp_esc_parse("5..1 x", 6, &e), 0);
	e.cls = 0;
	ck_assert_str_eq(smtp_esc_format(&e, out), "");
}
END_TEST

START_TEST(bad_codes)
{
	static const char *const bad[] = {
		"199 informational is not SMTP\r\n",
		"600 too high\r\n",
		"260 second digit 6\r\n",
		"25 short\r\n",
		"2500 four digits\r\n",
		"250x no separator\r\n",
		"abc\r\n",
		"\r\n",
		"\n",
		" 250 leading space\r\n",
		"+OK pop3\r\n",
		"* OK imap\r\n",
		"-ERR\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct parsed r = parse(bad[i]);
		ck_assert_msg(r.n == -1, "accepted: %s", bad[i]);
		ck_assert_ptr_nonnull(r.error);
	}
}
END_TEST

START_TEST(continuation_code_mismatch)
{
	struct parsed r = parse("250-first\r\n251 second\r\n");
	ck_assert_int_eq(r.n, -1);
	ck_assert_str_eq(r.error, "reply lines with different codes");
	/* Class differs too. */
	r = parse("250-first\r\n550 second\r\n");
	ck_assert_int_eq(r.n, -1);
}
END_TEST

START_TEST(nul_byte)
{
	struct smtp_reply_parser *p = smtp_reply_parser_new();
	static const char in[] = "250 a\0b\r\n";
	struct smtp_reply r;
	size_t used;
	const char *err;

	ck_assert_int_eq(smtp_reply_parse(p, in, sizeof(in) - 1, &used, &r, &err), SMTP_REPLY_ERROR);
	ck_assert_str_eq(err, "NUL byte in reply");
	smtp_reply_parser_free(&p);
}
END_TEST

START_TEST(error_is_sticky_until_reset)
{
	struct smtp_reply_parser *p = smtp_reply_parser_new();
	struct smtp_reply r;
	size_t used;
	const char *err = NULL;

	ck_assert_int_eq(smtp_reply_parse(p, "xyz\r\n", 5, &used, &r, &err), SMTP_REPLY_ERROR);
	ck_assert_int_eq(smtp_reply_parse(p, "250 ok\r\n", 8, &used, &r, &err), SMTP_REPLY_ERROR);
	ck_assert_int_eq(smtp_reply_parse(p, "250 ok\r\n", 8, &used, &r, NULL), SMTP_REPLY_ERROR);
	smtp_reply_parser_reset(p);
	ck_assert_int_eq(smtp_reply_parse(p, "250 ok\r\n", 8, &used, &r, &err), SMTP_REPLY_DONE);
	ck_assert_uint_eq(used, 8);
	ck_assert_uint_eq(r.code, 250);
	/* Reset also drops a partial reply. */
	ck_assert_int_eq(smtp_reply_parse(p, "250-a\r\n25", 9, &used, &r, &err), SMTP_REPLY_NEED_MORE);
	ck_assert(smtp_reply_parser_partial(p));
	smtp_reply_parser_reset(p);
	ck_assert(!smtp_reply_parser_partial(p));
	ck_assert_int_eq(smtp_reply_parse(p, "221 bye\r\n", 9, &used, &r, &err), SMTP_REPLY_DONE);
	ck_assert_uint_eq(r.n_lines, 1);
	smtp_reply_parser_free(&p);
}
END_TEST

/* A line of `len` octets including "\r\n", made of "250 " and 'x's. */
static char *make_line(size_t len, char sep, bool bare_lf)
{
	char *s = malloc(len + 1);
	memset(s, 'x', len);
	memcpy(s, "250", 3);
	s[3] = sep;
	if (bare_lf) {
		s[len - 1] = '\n';
	} else {
		s[len - 2] = '\r';
		s[len - 1] = '\n';
	}
	s[len] = '\0';
	return s;
}

START_TEST(line_limit)
{
	char *ok = make_line(SMTP_REPLY_LINE_MAX, ' ', false);
	char *ok_lf = make_line(SMTP_REPLY_LINE_MAX, ' ', true);
	char *over = make_line(SMTP_REPLY_LINE_MAX + 1, ' ', false);
	struct parsed r;

	r = parse(ok);
	ck_assert_int_eq(r.n, 1);
	r = parse(ok_lf);
	ck_assert_int_eq(r.n, 1);
	r = parse(over);
	ck_assert_int_eq(r.n, -1);
	ck_assert_str_eq(r.error, "reply line too long");

	/* The limit holds before the line end arrives. */
	struct smtp_reply_parser *p = smtp_reply_parser_new();
	struct smtp_reply rep;
	size_t used;
	const char *err;
	ck_assert_int_eq(smtp_reply_parse(p, over, SMTP_REPLY_LINE_MAX - 1, &used, &rep, &err), SMTP_REPLY_NEED_MORE);
	ck_assert_int_eq(smtp_reply_parse(p, over + SMTP_REPLY_LINE_MAX - 1, 1, &used, &rep, &err), SMTP_REPLY_ERROR);
	smtp_reply_parser_free(&p);
	free(ok);
	free(ok_lf);
	free(over);
}
END_TEST

START_TEST(lines_and_text_limits)
{
	/* SMTP_REPLY_LINES_MAX lines are fine, one more is not. */
	size_t cap = (SMTP_REPLY_LINES_MAX + 1) * 8 + 1;
	char *s = malloc(cap);
	size_t o = 0;
	for (int i = 0; i < SMTP_REPLY_LINES_MAX - 1; i++)
		o += (size_t)sprintf(s + o, "250-%02d\r\n", i % 100);
	strcpy(s + o, "250 zz\r\n");
	struct parsed r = parse(s);
	ck_assert_int_eq(r.n, 1);
	ck_assert_uint_eq(r.lines[0], SMTP_REPLY_LINES_MAX);
	o = 0;
	for (int i = 0; i < SMTP_REPLY_LINES_MAX; i++)
		o += (size_t)sprintf(s + o, "250-%02d\r\n", i % 100);
	strcpy(s + o, "250 zz\r\n");
	r = parse(s);
	ck_assert_int_eq(r.n, -1);
	ck_assert_str_eq(r.error, "reply has too many lines");
	free(s);

	/* 64 KiB of text in one reply, then more. */
	size_t line = 4000, n = SMTP_REPLY_TEXT_MAX / (line - 6) + 2;
	s = malloc(n * line + 1);
	o = 0;
	for (size_t i = 0; i < n; i++) {
		char *l = make_line(line, i + 1 < n ? '-' : ' ', false);
		memcpy(s + o, l, line);
		o += line;
		free(l);
	}
	s[o] = '\0';
	r = parse(s);
	ck_assert_int_eq(r.n, -1);
	ck_assert_str_eq(r.error, "reply is too long");
	free(s);
}
END_TEST

START_TEST(summary_is_clean_and_bounded)
{
	struct smtp_reply_parser *p = smtp_reply_parser_new();
	static const char in[] = "550 bad\x01text\xc3\xa9 here\r\n";
	struct smtp_reply r;
	size_t used;
	char out[64];

	ck_assert_int_eq(smtp_reply_parse(p, in, sizeof(in) - 1, &used, &r, NULL), SMTP_REPLY_DONE);
	smtp_reply_summary(&r, out, sizeof(out));
	ck_assert_str_eq(out, "550 bad?text?? here");
	ck_assert_uint_eq(smtp_reply_summary(&r, out, 8), 7);
	ck_assert_str_eq(out, "550 bad");
	ck_assert_uint_eq(smtp_reply_summary(&r, out, 1), 0);
	ck_assert_str_eq(out, "");
	smtp_reply_parser_free(&p);
}
END_TEST

static struct smtp_ehlo ehlo_of(const char *in)
{
	struct smtp_reply_parser *p = smtp_reply_parser_new();
	struct smtp_reply r;
	struct smtp_ehlo e;
	size_t used;

	ck_assert_int_eq(smtp_reply_parse(p, in, strlen(in), &used, &r, NULL), SMTP_REPLY_DONE);
	smtp_ehlo_parse(&r, &e);
	smtp_reply_parser_free(&p);
	return e;
}

START_TEST(ehlo_keywords)
{
	struct smtp_ehlo e = ehlo_of("250-mx.example.org Hello [192.0.2.1]\r\n"
				     "250-PIPELINING\r\n250-SIZE 35882577\r\n250-8BITMIME\r\n"
				     "250-STARTTLS\r\n250-AUTH PLAIN LOGIN CRAM-MD5\r\n"
				     "250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250-DSN\r\n250 SMTPUTF8\r\n");
	ck_assert(e.pipelining && e.size && e.eightbitmime && e.starttls && e.auth);
	ck_assert(e.enhancedstatuscodes && e.chunking && e.dsn && e.smtputf8);
	ck_assert_uint_eq(e.size_max, 35882577);
	ck_assert_uint_eq(e.auth_mechs, SMTP_EHLO_AUTH_PLAIN | SMTP_EHLO_AUTH_LOGIN | SMTP_EHLO_AUTH_OTHER);
}
END_TEST

START_TEST(ehlo_variants)
{
	struct smtp_ehlo e;

	/* Only a greeting line: nothing announced. */
	e = ehlo_of("250 mx.example.org\r\n");
	ck_assert(!e.pipelining && !e.size && !e.starttls && !e.auth);
	/* The first line is the name, even if it looks like a keyword. */
	e = ehlo_of("250-PIPELINING\r\n250 8bitmime\r\n");
	ck_assert(!e.pipelining);
	ck_assert(e.eightbitmime); /* case does not matter */
	/* SIZE without a number, with 0, with garbage: no limit. */
	e = ehlo_of("250-mx\r\n250 SIZE\r\n");
	ck_assert(e.size);
	ck_assert_uint_eq(e.size_max, 0);
	e = ehlo_of("250-mx\r\n250 SIZE 0\r\n");
	ck_assert_uint_eq(e.size_max, 0);
	e = ehlo_of("250-mx\r\n250 SIZE 12x\r\n");
	ck_assert(e.size);
	ck_assert_uint_eq(e.size_max, 0);
	e = ehlo_of("250-mx\r\n250 SIZE 99999999999999999999999\r\n");
	ck_assert_uint_eq(e.size_max, 0);
	/* The old "AUTH=" form; LOGIN only. */
	e = ehlo_of("250-mx\r\n250 AUTH=LOGIN\r\n");
	ck_assert(e.auth);
	ck_assert_uint_eq(e.auth_mechs, SMTP_EHLO_AUTH_LOGIN);
	/* AUTH with no mechanism; a keyword that only starts like one. */
	e = ehlo_of("250-mx\r\n250-AUTH\r\n250 STARTTLSX\r\n");
	ck_assert(e.auth);
	ck_assert_uint_eq(e.auth_mechs, 0);
	ck_assert(!e.starttls);
	/* An extension with an esc-looking parameter and odd spacing. */
	e = ehlo_of("250-mx\r\n250-AUTH  plain   \r\n250 DSN\r\n");
	ck_assert_uint_eq(e.auth_mechs, SMTP_EHLO_AUTH_PLAIN);
	ck_assert(e.dsn);
}
END_TEST

static Suite *client_reply_suite(void)
{
	Suite *s = suite_create("client_reply");
	TCase *tc = tcase_create("parser");

	tcase_add_test(tc, single_line);
	tcase_add_test(tc, multi_line);
	tcase_add_test(tc, several_replies_in_one_read);
	tcase_add_test(tc, bare_lf_and_empty_text);
	tcase_add_test(tc, partial_reply_waits);
	tcase_add_test(tc, enhanced_codes);
	tcase_add_test(tc, esc_parse_direct);
	tcase_add_test(tc, bad_codes);
	tcase_add_test(tc, continuation_code_mismatch);
	tcase_add_test(tc, nul_byte);
	tcase_add_test(tc, error_is_sticky_until_reset);
	tcase_add_test(tc, line_limit);
	tcase_add_test(tc, lines_and_text_limits);
	tcase_add_test(tc, summary_is_clean_and_bounded);
	suite_add_tcase(s, tc);
	tc = tcase_create("ehlo");
	tcase_add_test(tc, ehlo_keywords);
	tcase_add_test(tc, ehlo_variants);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(client_reply_suite());
}
