/* Tests for core/linereader: line splitting, line ends, the line limit
 * (reported once, before the LF when it can be), exact-byte reads, discard
 * and the buffer maximum.
 *
 * Most cases are a script of expected results (a line, an overlong line,
 * some exact bytes) run against the same input fed in several ways: whole,
 * one byte at a time, and in small chunks. The driver feeds the next chunk
 * only when the reader says it needs more, as a session would. Inputs come
 * from guard_copy(), so reading past them crashes. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/linereader.h"
#include "testutil.h"

enum step_op {
	STEP_LINE,      /* next() returns this line (bare_lf as given) */
	STEP_TOO_LONG,  /* next() reports an overlong line */
	STEP_TAKE,      /* take() returns exactly these bytes, maybe in pieces */
};

struct step {
	enum step_op op;
	const char *data;
	size_t len;
	bool bare_lf;
};

#define LINE(s)      { STEP_LINE, (s), sizeof(s) - 1, false }
#define LINE_LF(s)   { STEP_LINE, (s), sizeof(s) - 1, true }
#define TOO_LONG     { STEP_TOO_LONG, NULL, 0, false }
#define TAKE(s)      { STEP_TAKE, (s), sizeof(s) - 1, false }

/* The chunk sizes every script is run with; 0 means the whole input. */
static const size_t chunks[] = { 0, 1, 2, 3, 7 };

/* Feed the next chunk of the input; returns false when it is used up. */
static bool feed_more(struct linereader *lr, const char *in, size_t len, size_t *pos, size_t chunk)
{
	size_t n = len - *pos;

	if (n == 0)
		return false;
	if (chunk != 0 && n > chunk)
		n = chunk;
	ck_assert_int_eq(linereader_feed(lr, in + *pos, n), 0);
	*pos += n;
	return true;
}

static void run_script_chunked(const char *input, size_t len, size_t line_max, size_t buffer_max,
			       const struct step *steps, size_t n_steps, size_t chunk)
{
	char *in = guard_copy(input, len);
	struct linereader lr;
	size_t pos = 0;

	linereader_init(&lr, line_max, buffer_max);
	for (size_t i = 0; i < n_steps; i++) {
		const struct step *st = &steps[i];
		size_t got = 0;

		for (;;) {
			const char *line, *data;
			size_t llen;

			if (st->op == STEP_TAKE) {
				size_t n = linereader_take(&lr, st->len - got, &data);
				ck_assert_uint_le(n, st->len - got);
				ck_assert_msg(memcmp(data, st->data + got, n) == 0,
					      "step %zu (chunk %zu): take returned wrong bytes", i, chunk);
				got += n;
				if (got == st->len)
					break;
			} else {
				enum linereader_status s = linereader_next(&lr, &line, &llen);
				if (s == LINEREADER_LINE) {
					ck_assert_msg(st->op == STEP_LINE,
						      "step %zu (chunk %zu): got line \"%.*s\", wanted too-long",
						      i, chunk, (int)llen, line);
					ck_assert_msg(llen == st->len && memcmp(line, st->data, llen) == 0,
						      "step %zu (chunk %zu): got \"%.*s\" (%zu), wanted \"%.*s\"",
						      i, chunk, (int)llen, line, llen, (int)st->len, st->data);
					ck_assert_msg(lr.line_bare_lf == st->bare_lf,
						      "step %zu (chunk %zu): bare_lf %d", i, chunk, lr.line_bare_lf);
					ck_assert_uint_le(llen + 2, line_max);
					break;
				}
				if (s == LINEREADER_TOO_LONG) {
					ck_assert_msg(st->op == STEP_TOO_LONG,
						      "step %zu (chunk %zu): unexpected too-long", i, chunk);
					break;
				}
			}
			ck_assert_msg(feed_more(&lr, in, len, &pos, chunk),
				      "step %zu (chunk %zu): input ended first", i, chunk);
			ck_assert_uint_le(linereader_buffered(&lr), buffer_max);
		}
	}
	/* Whatever is left yields nothing more: no extra line, no second
	 * too-long report. */
	for (;;) {
		const char *line;
		size_t llen;
		enum linereader_status s = linereader_next(&lr, &line, &llen);
		ck_assert_msg(s == LINEREADER_NEED_MORE, "chunk %zu: extra result %d", chunk, s);
		if (!feed_more(&lr, in, len, &pos, chunk))
			break;
	}
	linereader_free(&lr);
	guard_free(in, len);
}

static void run_script(const char *input, size_t len, size_t line_max, size_t buffer_max,
		       const struct step *steps, size_t n_steps)
{
	for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++)
		run_script_chunked(input, len, line_max, buffer_max, steps, n_steps, chunks[c]);
}

#define RUN(input, line_max, buffer_max, ...) do { \
	static const struct step steps_[] = { __VA_ARGS__ }; \
	run_script((input), sizeof(input) - 1, (line_max), (buffer_max), \
		   steps_, sizeof(steps_) / sizeof(steps_[0])); \
} while (0)

START_TEST(test_split_across_feeds)
{
	struct linereader lr;
	const char *line;
	size_t len;

	linereader_init(&lr, 1000, 4096);
	ck_assert_int_eq(linereader_feed(&lr, "EHLO exa", 8), 0);
	ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_NEED_MORE);
	ck_assert_int_eq(linereader_feed(&lr, "mple.org\r", 9), 0);
	ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_NEED_MORE);
	ck_assert_int_eq(linereader_feed(&lr, "\n", 1), 0);
	ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_LINE);
	ck_assert_uint_eq(len, 16);
	ck_assert(memcmp(line, "EHLO example.org", 16) == 0);
	ck_assert(!lr.line_bare_lf);
	ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_NEED_MORE);
	ck_assert_uint_eq(linereader_buffered(&lr), 0);
	linereader_free(&lr);

	RUN("EHLO example.org\r\n", 1000, 4096, LINE("EHLO example.org"));
}
END_TEST

START_TEST(test_several_lines)
{
	/* SMTP pipelining (RFC 2920): one packet, several commands. */
	RUN("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n",
	    1000, 4096,
	    LINE("MAIL FROM:<a@example.org>"), LINE("RCPT TO:<b@example.org>"),
	    LINE("RCPT TO:<c@example.org>"), LINE("DATA"));
	/* A partial line left behind stays buffered. */
	RUN("A1 NOOP\r\nA2 NO", 1000, 4096, LINE("A1 NOOP"));
}
END_TEST

START_TEST(test_line_ends)
{
	RUN("USER alice\r\nPASS x\nSTAT\r\n\r\n\n.\n", 255, 1024,
	    LINE("USER alice"), LINE_LF("PASS x"), LINE("STAT"), LINE(""), LINE_LF(""), LINE_LF("."));
	/* Only the CR right before the LF goes; others stay in the line. */
	RUN("a\r\r\nb\rc\n\r\n", 100, 100, LINE("a\r"), LINE_LF("b\rc"), LINE(""));
	/* A lone CR is not a line end (RFC 5321 2.3.8). */
	RUN("QUIT\rNOOP\r\n", 100, 100, LINE("QUIT\rNOOP"));
}
END_TEST

START_TEST(test_too_long_before_lf)
{
	/* line_max 10: 8 octets + CRLF fit; the 9th octet cannot, whatever
	 * comes next, so it is reported then, once, not when the LF comes. */
	struct linereader lr;
	const char *line;
	size_t len;
	char *in = guard_copy("123456789abcdefghij", 19);

	/* One byte at a time. */
	linereader_init(&lr, 10, 64);
	for (size_t i = 0; i < 8; i++) {
		ck_assert_int_eq(linereader_feed(&lr, in + i, 1), 0);
		ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_NEED_MORE);
	}
	ck_assert_int_eq(linereader_feed(&lr, in + 8, 1), 0);
	ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_TOO_LONG);
	ck_assert_uint_eq(linereader_buffered(&lr), 0); /* discarded, not kept */
	for (size_t i = 9; i < 19; i++) {
		ck_assert_int_eq(linereader_feed(&lr, in + i, 1), 0);
		ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_NEED_MORE);
		ck_assert_uint_eq(linereader_buffered(&lr), 0);
	}
	ck_assert_int_eq(linereader_feed(&lr, "\r", 1), 0);
	ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_NEED_MORE);
	ck_assert_int_eq(linereader_feed(&lr, "\n", 1), 0);
	ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_NEED_MORE);
	ck_assert_int_eq(linereader_feed(&lr, "QUIT\r\n", 6), 0);
	ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_LINE);
	ck_assert_uint_eq(len, 4);
	ck_assert(memcmp(line, "QUIT", 4) == 0);
	linereader_free(&lr);

	/* Whole: the overlong start arrives without its LF. */
	linereader_init(&lr, 10, 64);
	ck_assert_int_eq(linereader_feed(&lr, in, 19), 0);
	ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_TOO_LONG);
	ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_NEED_MORE);
	ck_assert_int_eq(linereader_feed(&lr, in, 19), 0); /* more of the same line */
	ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_NEED_MORE);
	ck_assert_int_eq(linereader_feed(&lr, "xyz\r\nQUIT\r\n", 11), 0);
	ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_LINE);
	ck_assert_uint_eq(len, 4);
	ck_assert(memcmp(line, "QUIT", 4) == 0);
	ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_NEED_MORE);
	linereader_free(&lr);
	guard_free(in, 19);

	/* A line longer than the whole buffer is still reported once and
	 * skipped, as long as the caller reads between feeds. */
	static const char longer[] =
		"0123456789012345678901234567890123456789012345678901234567890123456789\r\nok\r\n";
	static const struct step steps[] = { TOO_LONG, LINE("ok") };
	for (size_t c = 1; c < sizeof(chunks) / sizeof(chunks[0]); c++) /* not whole: > buffer */
		run_script_chunked(longer, sizeof(longer) - 1, 10, 16, steps, 2, chunks[c]);
}
END_TEST

START_TEST(test_too_long_in_one_feed)
{
	RUN("123456789\r\nok\r\n", 10, 64, TOO_LONG, LINE("ok"));
	RUN("a\r\n123456789012345\r\n123456789012345\nb\r\n", 10, 64,
	    LINE("a"), TOO_LONG, TOO_LONG, LINE("b"));
}
END_TEST

START_TEST(test_boundary)
{
	/* RFC 5321 4.5.3.1.4 counts the CRLF: line_max 10 is 8 octets + CRLF. */
	RUN("12345678\r\n", 10, 10, LINE("12345678"));
	RUN("123456789\r\nx\r\n", 10, 20, TOO_LONG, LINE("x"));
	/* A bare LF counts as CRLF too, so the limit is the same for all. */
	RUN("12345678\n", 10, 10, LINE_LF("12345678"));
	RUN("123456789\nx\n", 10, 20, TOO_LONG, LINE_LF("x"));
	/* Exactly at the SMTP limit: 998 octets + CRLF = 1000. */
	char ok[1000], bad[1003];
	memset(ok, 'a', 998);
	memcpy(ok + 998, "\r\n", 2);
	memset(bad, 'b', 999);
	memcpy(bad + 999, "\r\nx\n", 4);
	for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		struct step s1[] = { { STEP_LINE, ok, 998, false } };
		struct step s2[] = { TOO_LONG, LINE_LF("x") };
		run_script_chunked(ok, sizeof(ok), 1000, 1000, s1, 1, chunks[c]);
		run_script_chunked(bad, sizeof(bad), 1000, 2000, s2, 2, chunks[c]);
	}
	/* The smallest limit: only an empty line fits. */
	RUN("\r\n\nx\r\n\r\n", 2, 8, LINE(""), LINE_LF(""), TOO_LONG, LINE(""));
}
END_TEST

START_TEST(test_nul_bytes)
{
	RUN("a\0b\r\n\0\r\n\0\0\0\n", 100, 100, LINE("a\0b"), LINE("\0"), LINE_LF("\0\0\0"));
}
END_TEST

START_TEST(test_take)
{
	/* An IMAP literal arriving in the same packet as its command line
	 * (RFC 3501 4.3), then the rest of the command and the next one. */
	RUN("A1 APPEND INBOX {12}\r\nHello\r\nWorld\r\nA2 NOOP\r\n", 1024, 4096,
	    LINE("A1 APPEND INBOX {12}"), TAKE("Hello\r\nWorl"), TAKE("d"), LINE(""), LINE("A2 NOOP"));
	/* A literal with NULs and LFs inside, and a non-synchronising one
	 * (RFC 7888) followed directly by more of the line. */
	RUN("A1 X {4+}\r\n\n\0\r\n rest\r\n", 1024, 4096,
	    LINE("A1 X {4+}"), TAKE("\n\0\r\n"), LINE(" rest"));
	/* BDAT (RFC 3030): chunk data, then the next command. */
	RUN("BDAT 5 LAST\r\n12345QUIT\r\n", 1000, 4096,
	    LINE("BDAT 5 LAST"), TAKE("12345"), LINE("QUIT"));

	/* Take returns only what is there, and 0 when nothing is. */
	struct linereader lr;
	const char *data;
	linereader_init(&lr, 100, 100);
	ck_assert_uint_eq(linereader_take(&lr, 10, &data), 0);
	ck_assert_int_eq(linereader_feed(&lr, "abc", 3), 0);
	ck_assert_uint_eq(linereader_take(&lr, 10, &data), 3);
	ck_assert(memcmp(data, "abc", 3) == 0);
	ck_assert_uint_eq(linereader_buffered(&lr), 0);
	ck_assert_uint_eq(linereader_take(&lr, 0, &data), 0);
	linereader_free(&lr);
}
END_TEST

START_TEST(test_take_after_partial_scan)
{
	/* next() remembers how far it searched; take() must reset that, or a
	 * LF inside the taken bytes' successor would be missed. */
	struct linereader lr;
	const char *line, *data;
	size_t len;

	linereader_init(&lr, 100, 100);
	ck_assert_int_eq(linereader_feed(&lr, "abcdef", 6), 0);
	ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_NEED_MORE);
	ck_assert_uint_eq(linereader_take(&lr, 4, &data), 4);
	ck_assert(memcmp(data, "abcd", 4) == 0);
	ck_assert_int_eq(linereader_feed(&lr, "\r\n", 2), 0);
	ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_LINE);
	ck_assert_uint_eq(len, 2);
	ck_assert(memcmp(line, "ef", 2) == 0);
	linereader_free(&lr);
}
END_TEST

START_TEST(test_discard)
{
	/* STARTTLS (RFC 3207 4): plaintext pipelined after the command must
	 * not be read as if it came over TLS. */
	static const char in[] = "STARTTLS\r\nRCPT TO:<evil@example.org>\r\nDATA";

	for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		struct linereader lr;
		const char *line;
		size_t len, pos = 0;
		size_t chunk = chunks[c];
		char *g = guard_copy(in, sizeof(in) - 1);

		linereader_init(&lr, 1000, 4096);
		while (linereader_next(&lr, &line, &len) != LINEREADER_LINE)
			ck_assert(feed_more(&lr, g, sizeof(in) - 1, &pos, chunk));
		ck_assert_uint_eq(len, 8);
		ck_assert(memcmp(line, "STARTTLS", 8) == 0);
		/* The rest of the burst arrives while the handshake is pending;
		 * the session does not read lines then. */
		while (feed_more(&lr, g, sizeof(in) - 1, &pos, chunk))
			;
		ck_assert_uint_gt(linereader_buffered(&lr), 0);
		linereader_discard(&lr);
		ck_assert_uint_eq(linereader_buffered(&lr), 0);
		ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_NEED_MORE);
		ck_assert_int_eq(linereader_feed(&lr, "EHLO good\r\n", 11), 0);
		ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_LINE);
		ck_assert_uint_eq(len, 9);
		ck_assert(memcmp(line, "EHLO good", 9) == 0);
		linereader_free(&lr);
		guard_free(g, sizeof(in) - 1);
	}

	/* Discard also ends the skipping of an overlong line. */
	struct linereader lr;
	const char *line;
	size_t len;
	linereader_init(&lr, 10, 100);
	ck_assert_int_eq(linereader_feed(&lr, "aaaaaaaaaaaaaaaa", 16), 0);
	ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_TOO_LONG);
	linereader_discard(&lr);
	ck_assert_int_eq(linereader_feed(&lr, "ok\r\n", 4), 0);
	ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_LINE);
	ck_assert_uint_eq(len, 2);
	linereader_free(&lr);
}
END_TEST

START_TEST(test_trim)
{
	/* A long line grows the buffer; trimming between lines gives the
	 * storage back and keeps a partial line that is still arriving. */
	struct linereader lr;
	const char *line;
	size_t len;
	char big[20000];

	memset(big, 'a', sizeof(big));
	big[sizeof(big) - 2] = '\r';
	big[sizeof(big) - 1] = '\n';
	linereader_init(&lr, 65536, 65536 + 4096);
	ck_assert_int_eq(linereader_feed(&lr, big, sizeof(big)), 0);
	ck_assert_int_eq(linereader_feed(&lr, "a1 NO", 5), 0);
	ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_LINE);
	ck_assert_uint_eq(len, sizeof(big) - 2);
	ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_NEED_MORE);
	ck_assert_uint_ge(lr.in.cap, sizeof(big));
	linereader_trim(&lr);
	ck_assert_uint_le(lr.in.cap, 1024);
	ck_assert_uint_eq(linereader_buffered(&lr), 5);
	ck_assert_int_eq(linereader_feed(&lr, "OP\r\n", 4), 0);
	ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_LINE);
	ck_assert_uint_eq(len, 7);
	ck_assert(memcmp(line, "a1 NOOP", 7) == 0);
	ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_NEED_MORE);
	linereader_trim(&lr);
	ck_assert_int_eq(linereader_feed(&lr, "a2 X\r\n", 6), 0);
	ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_LINE);
	ck_assert(memcmp(line, "a2 X", 4) == 0);
	linereader_free(&lr);
}
END_TEST

START_TEST(test_buffer_max)
{
	struct linereader lr;
	const char *line;
	size_t len;
	char *in = guard_copy("abc\r\ndef\r\nghi\r\nj", 16);

	/* Whole: 16 octets fit in 16, one more does not, and a refused feed
	 * appends nothing. */
	linereader_init(&lr, 10, 16);
	ck_assert_int_eq(linereader_feed(&lr, in, 16), 0);
	ck_assert_int_eq(linereader_feed(&lr, "k", 1), -1);
	ck_assert_uint_eq(linereader_buffered(&lr), 16);
	ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_LINE);
	ck_assert(len == 3 && memcmp(line, "abc", 3) == 0);
	/* Reading frees room. */
	ck_assert_int_eq(linereader_feed(&lr, "k\r\n", 3), 0);
	ck_assert_int_eq(linereader_feed(&lr, "0123", 4), -1);
	ck_assert_uint_eq(linereader_buffered(&lr), 14);
	ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_LINE);
	ck_assert(len == 3 && memcmp(line, "def", 3) == 0);
	ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_LINE);
	ck_assert(len == 3 && memcmp(line, "ghi", 3) == 0);
	ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_LINE);
	ck_assert(len == 2 && memcmp(line, "jk", 2) == 0);
	ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_NEED_MORE);
	linereader_free(&lr);

	/* One byte at a time, a peer that floods without us reading. */
	linereader_init(&lr, 10, 16);
	for (size_t i = 0; i < 16; i++)
		ck_assert_int_eq(linereader_feed(&lr, in + i, 1), 0);
	ck_assert_int_eq(linereader_feed(&lr, "x", 1), -1);
	ck_assert_uint_eq(linereader_buffered(&lr), 16);
	linereader_free(&lr);

	/* A single feed bigger than the buffer is refused whole. */
	linereader_init(&lr, 10, 8);
	ck_assert_int_eq(linereader_feed(&lr, in, 16), -1);
	ck_assert_uint_eq(linereader_buffered(&lr), 0);
	/* buffer_max below line_max is raised to line_max. */
	ck_assert_int_eq(linereader_feed(&lr, in, 10), 0);
	ck_assert_int_eq(linereader_feed(&lr, "x", 1), -1);
	linereader_free(&lr);
	guard_free(in, 16);
}
END_TEST

START_TEST(test_set_line_max)
{
	struct linereader lr;
	const char *line;
	size_t len;

	linereader_init(&lr, 10, 10);
	linereader_set_line_max(&lr, 20);
	ck_assert_int_eq(linereader_feed(&lr, "0123456789abcdef\r\n", 18), 0);
	ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_LINE);
	ck_assert_uint_eq(len, 16);
	linereader_set_line_max(&lr, 10);
	ck_assert_int_eq(linereader_feed(&lr, "0123456789abcdef\r\n", 18), 0);
	ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_TOO_LONG);
	ck_assert_int_eq(linereader_next(&lr, &line, &len), LINEREADER_NEED_MORE);
	linereader_free(&lr);
}
END_TEST

static Suite *linereader_suite(void)
{
	Suite *s = suite_create("linereader");
	TCase *tc = tcase_create("lines");

	tcase_add_test(tc, test_split_across_feeds);
	tcase_add_test(tc, test_several_lines);
	tcase_add_test(tc, test_line_ends);
	tcase_add_test(tc, test_too_long_before_lf);
	tcase_add_test(tc, test_too_long_in_one_feed);
	tcase_add_test(tc, test_boundary);
	tcase_add_test(tc, test_nul_bytes);
	suite_add_tcase(s, tc);

	tc = tcase_create("bytes");
	tcase_add_test(tc, test_take);
	tcase_add_test(tc, test_take_after_partial_scan);
	tcase_add_test(tc, test_discard);
	tcase_add_test(tc, test_trim);
	tcase_add_test(tc, test_buffer_max);
	tcase_add_test(tc, test_set_line_max);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(linereader_suite());
}
