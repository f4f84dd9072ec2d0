/*
 * Unit tests for src/mime: the parser (folding, boundaries in any chunking,
 * nesting, limits, malformed mail), RFC 2047 and RFC 2231 decoding, the
 * transfer-encoding decoders, the IMAP string writer, the renderers, the
 * section resolver and header filter, and the serialized form including
 * corrupt input.
 *
 * Every message is parsed whole, one byte at a time, and split in two at
 * every position, from a buffer that ends at an unreadable page; all must
 * give the same tree (compared in serialized form).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "mime/imapstr.h"
#include "mime/mime_bodystructure.h"
#include "mime/mime_crlf.h"
#include "mime/mime_decode.h"
#include "mime/mime_encword.h"
#include "mime/mime_envelope.h"
#include "mime/mime_hdrfilter.h"
#include "mime/mime_params.h"
#include "mime/mime_parse.h"
#include "mime/mime_section.h"
#include "mime/mime_serial.h"
#include "testutil.h"

#define BIG (8u * 1024 * 1024)

/* ---- helpers ---- */

/* Whether b holds exactly the NUL-terminated string want. */
static bool buf_is(const struct buf *b, const char *want)
{
	return buf_len(b) == strlen(want) && memcmp(buf_ptr(b), want, buf_len(b)) == 0;
}

static struct mime_tree *parse_in(const char *msg, size_t len, size_t split, size_t chunk)
{
	struct mime_parser *p = mime_parser_new(NULL);

	if (split > 0) {
		mime_parser_feed(p, msg, split);
		mime_parser_feed(p, msg + split, len - split);
	} else {
		for (size_t off = 0; off < len; off += chunk)
			mime_parser_feed(p, msg + off, len - off < chunk ? len - off : chunk);
	}
	return mime_parser_finish(&p);
}

static void serialize(const struct mime_tree *t, struct buf *out)
{
	buf_init(out, BIG);
	ck_assert_int_eq(mime_tree_serialize(t, out), 0);
}

static bool same_tree(const struct mime_tree *a, const struct mime_tree *b)
{
	struct buf x, y;
	serialize(a, &x);
	serialize(b, &y);
	bool same = buf_len(&x) == buf_len(&y) && memcmp(buf_ptr(&x), buf_ptr(&y), buf_len(&x)) == 0;
	buf_free(&x);
	buf_free(&y);
	return same;
}

/* Parse len bytes whole, byte by byte and split at every position (the
 * last only for short messages); all must agree. */
static struct mime_tree *parse_all_ways(const char *text, size_t len)
{
	char *msg = guard_copy(text, len);
	struct mime_tree *whole = parse_in(msg, len, 0, len > 0 ? len : 1);
	struct mime_tree *bytes = parse_in(msg, len, 0, 1);

	ck_assert_msg(same_tree(whole, bytes), "byte-at-a-time parse differs");
	mime_tree_free(&bytes);
	size_t step = len > 2000 ? len / 97 + 1 : 1;
	for (size_t split = 1; split < len; split += step) {
		struct mime_tree *t = parse_in(msg, len, split, 0);
		ck_assert_msg(same_tree(whole, t), "parse split at %zu differs", split);
		mime_tree_free(&t);
	}
	guard_free(msg, len);
	return whole;
}

static struct mime_tree *parse_str(const char *text)
{
	return parse_all_ways(text, strlen(text));
}

static char *render_body(const struct mime_tree *t, bool ext)
{
	struct buf b;
	buf_init(&b, BIG);
	ck_assert_int_eq(mime_bodystructure_write(t->root, ext, &b), 0);
	char *s = strndup(buf_ptr(&b), buf_len(&b));
	buf_free(&b);
	return s;
}

static char *render_envelope(const struct mime_envelope *env)
{
	struct buf b;
	buf_init(&b, BIG);
	ck_assert_int_eq(mime_envelope_write(env, &b), 0);
	char *s = strndup(buf_ptr(&b), buf_len(&b));
	buf_free(&b);
	return s;
}

#define ck_render_body(t, ext, want) do { \
	char *got_ = render_body((t), (ext)); \
	ck_assert_str_eq(got_, (want)); \
	free(got_); \
} while (0)

#define ck_render_env(env, want) do { \
	char *got_ = render_envelope(env); \
	ck_assert_str_eq(got_, (want)); \
	free(got_); \
} while (0)

/* The bytes BODY[spec] sends for msg. */
static char *section(const struct mime_tree *t, const char *msg, const char *spec, size_t *len_r)
{
	struct mime_section sec;
	const char *error;
	struct buf b;

	ck_assert_msg(mime_section_resolve(t, spec, strlen(spec), &sec, &error) == 0,
		      "%s: %s", spec, error);
	buf_init(&b, BIG);
	ck_assert_int_eq(mime_section_fetch(&sec, msg, strlen(msg), &b), 0);
	if (sec.kind == MIME_SECTION_BYTES)
		ck_assert_uint_eq(sec.size, buf_len(&b));
	mime_section_free(&sec);
	*len_r = buf_len(&b);
	char *s = malloc(buf_len(&b) + 1);
	memcpy(s, buf_ptr(&b), buf_len(&b));
	s[buf_len(&b)] = '\0';
	buf_free(&b);
	return s;
}

#define ck_section(t, msg, spec, want) do { \
	size_t n_; \
	char *got_ = section((t), (msg), (spec), &n_); \
	ck_assert_msg(n_ == strlen(want) && memcmp(got_, (want), n_) == 0, \
		      "[%s] = \"%s\", want \"%s\"", (spec), got_, (want)); \
	free(got_); \
} while (0)

/* ---- header parsing ---- */

START_TEST(header_folding)
{
	const char *msg =
		"From: A <a@example.org>\r\n"
		"Subject:   first\r\n"
		" second\r\n"
		"\tthird\r\n"
		"Content-Type: text/plain;\r\n"
		"\tcharset=\"iso-8859-1\";\r\n"
		"  format=flowed\r\n"
		"\r\n"
		"body\r\n";
	struct mime_tree *t = parse_str(msg);

	/* blanks after the colon skipped, folds joined with LF (RFC 5322
	 * 2.2.3), and ENVELOPE shows it cleaned for reading */
	ck_assert_str_eq(t->root->envelope->subject, "first\n second\n\tthird");
	ck_render_env(t->root->envelope,
		"(NIL \"first second third\" ((\"A\" NIL \"a\" \"example.org\")) "
		"((\"A\" NIL \"a\" \"example.org\")) ((\"A\" NIL \"a\" \"example.org\")) "
		"NIL NIL NIL NIL NIL)");
	ck_render_body(t, true, "(\"text\" \"plain\" (\"charset\" \"iso-8859-1\" \"format\" \"flowed\") "
		       "NIL NIL \"7bit\" 6 1 NIL NIL NIL NIL)");
	ck_assert_uint_eq(t->root->header.lines, 8);
	ck_assert_uint_eq(t->root->header.physical, strlen(msg) - 6);
	mime_tree_free(&t);
}
END_TEST

START_TEST(header_oddities)
{
	/* a line without colon is a field named by the whole line; the
	 * header goes on until the blank line */
	const char *msg =
		"From mbox-style line\r\n"
		"Subject:\r\n"
		"Date:\t \r\n"
		"Message-ID : <id@x>\r\n"
		"\r\n"
		"b";
	struct mime_tree *t = parse_str(msg);
	ck_assert_str_eq(t->root->envelope->subject, "");
	/* a value of blanks only keeps all but the first */
	ck_assert_str_eq(t->root->envelope->date, " ");
	/* blanks before the colon are not part of the name */
	ck_assert_str_eq(t->root->envelope->message_id, "<id@x>");
	ck_assert_uint_eq(t->root->body.physical, 1);
	ck_assert_uint_eq(t->root->body.lines, 0);
	mime_tree_free(&t);

	/* no blank line at all: everything is header */
	t = parse_str("Subject: x\r\nthis is not a header\r\nneither is this");
	ck_assert_uint_eq(t->root->body.physical, 0);
	ck_assert_uint_eq(t->root->header.physical, 49);
	ck_assert_uint_eq(t->root->header.lines, 2);
	ck_render_body(t, false, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)");
	mime_tree_free(&t);

	/* empty message */
	t = parse_all_ways("", 0);
	ck_assert_uint_eq(mime_tree_size(t), 0);
	ck_render_env(t->root->envelope, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
	mime_tree_free(&t);
}
END_TEST

START_TEST(bare_lf_and_nul)
{
	/* a Maildir file may hold LF line ends; IMAP sizes count CRLF */
	const char msg[] = "Subject: a\0b\nX: y\n\nline1\r\nline\0 2\nend";
	size_t len = sizeof(msg) - 1;
	struct mime_tree *t = parse_all_ways(msg, len);

	ck_assert_uint_eq(t->root->header.physical, 19);
	ck_assert_uint_eq(t->root->header.virtual_size, 22);
	ck_assert_uint_eq(t->root->body.physical, 18);
	ck_assert_uint_eq(t->root->body.virtual_size, 19);
	ck_assert_uint_eq(t->root->body.lines, 2);
	ck_assert_uint_eq(mime_tree_size(t), 41);
	/* NUL in a header value becomes U+FFFD */
	ck_assert_str_eq(t->root->envelope->subject, "a\xef\xbf\xbd" "b");

	/* section bytes: CRLF everywhere, NUL as 0x80, size as announced */
	struct mime_section sec;
	const char *error;
	struct buf b;
	buf_init(&b, 1024);
	ck_assert_int_eq(mime_section_resolve(t, "TEXT", 4, &sec, &error), 0);
	ck_assert_int_eq(mime_section_fetch(&sec, msg, len, &b), 0);
	ck_assert_uint_eq(buf_len(&b), sec.size);
	ck_assert(buf_is(&b, "line1\r\nline\x80 2\r\nend"));
	mime_section_free(&sec);
	buf_free(&b);
	mime_tree_free(&t);
}
END_TEST

START_TEST(long_header_truncated)
{
	size_t n = MIME_HEADER_VALUE_MAX * 2;
	char *msg = malloc(n + 100);
	int k = sprintf(msg, "MIME-Version: 1.0\r\nContent-Description: ");
	memset(msg + k, 'x', n);
	strcpy(msg + k + n, "\r\nSubject: s\r\n\r\nbody");
	struct mime_tree *t = parse_all_ways(msg, strlen(msg));

	ck_assert(t->root->flags & MIME_PART_TRUNCATED);
	ck_assert_uint_eq(strlen(t->root->description), MIME_HEADER_VALUE_MAX);
	ck_assert_str_eq(t->root->envelope->subject, "s");
	ck_assert_uint_eq(t->root->header.physical, strlen(msg) - 4);
	ck_assert_uint_eq(t->root->body.physical, 4);
	mime_tree_free(&t);
	free(msg);
}
END_TEST

/* ---- boundaries ---- */

static const char multipart_msg[] =
	"MIME-Version: 1.0\r\n"
	"Content-Type: multipart/mixed; boundary=\"=_outer\"\r\n"
	"\r\n"
	"preamble\r\n"
	"--=_outer\r\n"
	"Content-Type: text/plain\r\n"
	"\r\n"
	"one\r\n"
	"--=_outer   \r\n"
	"Content-Type: multipart/alternative; boundary=\"=_outer-inner\"\r\n"
	"\r\n"
	"--=_outer-inner\r\n"
	"\r\n"
	"two\r\n"
	"--=_outer-inner\r\n"
	"Content-Type: text/html; charset=utf-8\r\n"
	"\r\n"
	"<p>three</p>\r\n"
	"--=_outer-inner--\r\n"
	"inner epilogue\r\n"
	"--=_outer\r\n"
	"Content-Type: message/rfc822\r\n"
	"\r\n"
	"Subject: inside\r\n"
	"From: x@y\r\n"
	"\r\n"
	"four\r\n"
	"--=_outer--\r\n"
	"epilogue\r\n";

START_TEST(boundaries_any_chunking)
{
	struct mime_tree *t = parse_str(multipart_msg);

	ck_assert_uint_eq(t->nparts, 7);
	ck_render_body(t, false,
		"((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0)"
		"((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0)"
		"(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 12 0) \"alternative\")"
		"(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 34 (NIL \"inside\" ((NIL NIL \"x\" \"y\")) "
		"((NIL NIL \"x\" \"y\")) ((NIL NIL \"x\" \"y\")) NIL NIL NIL NIL NIL) "
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 4 0) 3) \"mixed\")");
	/* RFC 3501 6.4.5 section numbers */
	ck_section(t, multipart_msg, "1", "one");
	ck_section(t, multipart_msg, "1.MIME", "Content-Type: text/plain\r\n\r\n");
	ck_section(t, multipart_msg, "2.1", "two");
	ck_section(t, multipart_msg, "2.2", "<p>three</p>");
	ck_section(t, multipart_msg, "2.2.MIME", "Content-Type: text/html; charset=utf-8\r\n\r\n");
	ck_section(t, multipart_msg, "3.HEADER", "Subject: inside\r\nFrom: x@y\r\n\r\n");
	ck_section(t, multipart_msg, "3.TEXT", "four");
	ck_section(t, multipart_msg, "3.1", "four");
	ck_section(t, multipart_msg, "3.HEADER.FIELDS (SUBJECT)", "Subject: inside\r\n\r\n");
	ck_section(t, multipart_msg, "1.HEADER", "");
	ck_section(t, multipart_msg, "4", "");
	ck_section(t, multipart_msg, "2.3", "");
	ck_section(t, multipart_msg, "1.1", "one");
	ck_section(t, multipart_msg, "1.2", "");

	/* the multipart's body: preamble, boundary lines, parts, epilogues */
	size_t n;
	char *text = section(t, multipart_msg, "TEXT", &n);
	ck_assert(strncmp(text, "preamble\r\n--=_outer\r\n", 21) == 0);
	const char *tail = "\r\n--=_outer--\r\nepilogue\r\n";
	ck_assert(n > strlen(tail) && strcmp(text + n - strlen(tail), tail) == 0);
	free(text);
	mime_tree_free(&t);
}
END_TEST

START_TEST(boundary_prefixes)
{
	/* RFC 2046 5.1.1: a boundary matches as a line prefix; the longest
	 * (innermost first) wins, and "--" after it closes */
	const char *msg =
		"Content-Type: multipart/mixed; boundary=\"a\"\r\n"
		"\r\n"
		"--a\r\n"
		"Content-Type: multipart/mixed; boundary=\"ab\"\r\n"
		"\r\n"
		"--ab\r\n"
		"\r\n"
		"x\r\n"
		"--abc\r\n"
		"\r\n"
		"y\r\n"
		"--a--\r\n";
	struct mime_tree *t = parse_str(msg);

	/* "--abc" is the inner boundary "ab" with junk after it */
	ck_render_body(t, false,
		"(((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0)"
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0) \"mixed\") \"mixed\")");
	mime_tree_free(&t);

	/* a boundary with trailing dashes of its own */
	t = parse_str("Content-Type: multipart/mixed; boundary=\"a--\"\r\n\r\n"
		      "--a--\r\n\r\nx\r\n--a----\r\n");
	ck_assert_uint_eq(t->root->nchildren, 1);
	ck_render_body(t, false, "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0) \"mixed\")");
	mime_tree_free(&t);
}
END_TEST

START_TEST(malformed_multiparts)
{
	/* never closed: the last part runs to the end */
	const char *msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nabc\r\nmore";
	struct mime_tree *t = parse_str(msg);
	ck_render_body(t, false, "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 9 1) \"mixed\")");
	ck_section(t, msg, "1", "abc\r\nmore");
	mime_tree_free(&t);

	/* no boundary parameter: no parts, one empty text part is shown */
	t = parse_str("MIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n\r\nBlah\r\n");
	ck_render_body(t, true, "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 "
		       "NIL NIL NIL NIL) \"alternative\" NIL NIL NIL NIL)");
	mime_tree_free(&t);

	/* the boundary never appears: all preamble */
	t = parse_str("Content-Type: multipart/mixed; boundary=zz\r\n\r\nno parts here\r\n");
	ck_assert_uint_eq(t->root->nchildren, 0);
	ck_assert_uint_eq(t->root->body.physical, 15);
	mime_tree_free(&t);

	/* a boundary cuts a part's header short; the CRLF before it is the
	 * boundary's (so the header loses its last line end) */
	msg = "Content-Type: multipart/mixed; boundary=q\r\n\r\n"
	      "--q\r\nContent-Type: text/html\r\n--q\r\nX: y\r\n\r\n\r\n--q--";
	t = parse_str(msg);
	ck_assert_uint_eq(t->root->nchildren, 2);
	ck_assert_uint_eq(t->root->children->header.physical, 23);
	ck_assert_uint_eq(t->root->children->header.lines, 0);
	ck_assert_uint_eq(t->root->children->body.physical, 0);
	ck_section(t, msg, "1.MIME", "Content-Type: text/html");
	ck_section(t, msg, "2", "");
	ck_section(t, msg, "2.MIME", "X: y\r\n\r\n");
	mime_tree_free(&t);

	/* a blank line right before the boundary: its CRLF is the boundary's */
	msg = "Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\nA: b\r\n\r\n--q--\r\n";
	t = parse_str(msg);
	ck_section(t, msg, "1.MIME", "A: b\r\n");
	mime_tree_free(&t);
}
END_TEST

START_TEST(digest_and_rfc822)
{
	const char *msg =
		"Content-Type: multipart/digest; boundary=d\r\n\r\n"
		"--d\r\n\r\nSubject: one\r\n\r\nbody one\r\n"
		"--d\r\nContent-Type: text/plain\r\n\r\nnot a message\r\n"
		"--d--\r\n";
	struct mime_tree *t = parse_str(msg);

	/* RFC 2046 5.1.5: digest parts default to message/rfc822 */
	ck_assert(t->root->children->flags & MIME_PART_RFC822);
	ck_assert(!(t->root->children->next->flags & MIME_PART_RFC822));
	ck_assert_str_eq(t->root->children->children->envelope->subject, "one");
	ck_section(t, msg, "1.1", "body one");
	ck_section(t, msg, "1.HEADER", "Subject: one\r\n\r\n");
	ck_section(t, msg, "2", "not a message");
	mime_tree_free(&t);

	/* message/rfc822 at the root; the part inside has no MIME-Version,
	 * so its Content-Description is not believed (RFC 2045 4) */
	msg = "Content-Type: message/rfc822\r\n\r\n"
	      "Content-Description: ignored\r\nSubject: inner\r\n\r\ninner body\r\n";
	t = parse_str(msg);
	ck_assert(t->root->flags & MIME_PART_RFC822);
	ck_assert_ptr_null(t->root->children->description);
	/* BODY[1] of a single part is its body: here the whole message
	 * inside; its own body is 1.1 */
	ck_section(t, msg, "1", "Content-Description: ignored\r\nSubject: inner\r\n\r\ninner body\r\n");
	ck_section(t, msg, "1.1", "inner body\r\n");
	ck_section(t, msg, "TEXT", "Content-Description: ignored\r\nSubject: inner\r\n\r\ninner body\r\n");
	ck_section(t, msg, "HEADER.FIELDS (content-type)", "Content-Type: message/rfc822\r\n\r\n");
	ck_section(t, msg, "1.HEADER.FIELDS.NOT (Subject)", "Content-Description: ignored\r\n\r\n");
	mime_tree_free(&t);
}
END_TEST

START_TEST(depth_limit)
{
	struct buf b;
	buf_init(&b, BIG);
	for (int i = 0; i < 150; i++)
		ck_assert_int_eq(buf_printf(&b, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i), 0);
	ck_assert_int_eq(buf_printf(&b, "\r\ndeep\r\n"), 0);
	struct mime_tree *t = parse_in(buf_ptr(&b), buf_len(&b), 0, 7);

	ck_assert(t->flags & MIME_TREE_OVERFLOW);
	unsigned int depth = 0;
	const struct mime_part *p = t->root;
	while (p->children != NULL) {
		p = p->children;
		depth++;
	}
	ck_assert_uint_lt(depth, MIME_MAX_DEPTH);
	ck_assert(p->flags & MIME_PART_OVERFLOW);
	/* it still renders and round-trips */
	char *s = render_body(t, true);
	ck_assert_ptr_nonnull(s);
	free(s);
	struct buf ser;
	const char *error;
	serialize(t, &ser);
	struct mime_tree *back = mime_tree_deserialize(buf_ptr(&ser), buf_len(&ser), &error);
	ck_assert_msg(back != NULL, "%s", error);
	ck_assert(same_tree(t, back));
	mime_tree_free(&back);
	buf_free(&ser);
	mime_tree_free(&t);

	/* message/rfc822 inside message/rfc822 inside ... */
	buf_reset(&b);
	for (int i = 0; i < 200; i++)
		ck_assert_int_eq(buf_printf(&b, "Content-Type: message/rfc822\r\n\r\n"), 0);
	t = parse_in(buf_ptr(&b), buf_len(&b), 0, 1);
	ck_assert(t->flags & MIME_TREE_OVERFLOW);
	ck_assert_uint_le(t->nparts, MIME_MAX_DEPTH);
	mime_tree_free(&t);
	buf_free(&b);
}
END_TEST

START_TEST(part_limit)
{
	struct buf b;
	buf_init(&b, BIG);
	ck_assert_int_eq(buf_printf(&b, "Content-Type: multipart/mixed; boundary=x\r\n\r\n"), 0);
	for (int i = 0; i < MIME_MAX_PARTS + 100; i++)
		ck_assert_int_eq(buf_printf(&b, "--x\r\n\r\n%d\r\n", i), 0);
	ck_assert_int_eq(buf_printf(&b, "--x--\r\n"), 0);
	struct mime_tree *t = mime_parse(buf_ptr(&b), buf_len(&b));

	ck_assert_uint_eq(t->nparts, MIME_MAX_PARTS);
	ck_assert(t->root->flags & MIME_PART_OVERFLOW);
	/* the rest of the message stayed in the multipart's body */
	ck_assert_uint_eq(t->root->header.physical + t->root->body.physical, buf_len(&b));
	mime_tree_free(&t);
	buf_free(&b);
}
END_TEST

/* ---- Content-* and parameters ---- */

START_TEST(content_fields)
{
	const char *msg =
		"MIME-Version: 1.0\r\n"
		"Content-Type: Application/X-Thing; Name*0=\"a b\"; name*1=c; plain=1\r\n"
		"Content-Transfer-Encoding: BASE64 (comment)\r\n"
		"Content-ID: <cid@x>\r\n"
		"Content-Description: folded\r\n description\r\n"
		"Content-Disposition: inline\r\n"
		"Content-Disposition: attachment; filename*=utf-8''%C3%A4.txt\r\n"
		"Content-Language: en-US, de\r\n"
		"Content-Location: http://x/\r\n"
		"Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n"
		"\r\n"
		"QUJD\r\n";
	struct mime_tree *t = parse_str(msg);

	ck_render_body(t, true,
		"(\"Application\" \"X-Thing\" (\"plain\" \"1\" \"Name\" \"a bc\") \"<cid@x>\" "
		"\"folded description\" \"BASE64\" 6 \"Q2hlY2sgSW50ZWdyaXR5IQ==\" "
		"(\"attachment\" (\"filename*\" \"utf-8''%C3%A4.txt\")) (\"en-US\" \"de\") \"http://x/\")");
	ck_render_body(t, false,
		"(\"Application\" \"X-Thing\" (\"plain\" \"1\" \"Name\" \"a bc\") \"<cid@x>\" "
		"\"folded description\" \"BASE64\" 6)");
	ck_assert_str_eq(mime_part_param(t->root, "NAME"), "a bc");

	struct buf b;
	buf_init(&b, 256);
	ck_assert_int_eq(mime_param_decode(&t->root->disp_params[0], &b), 0);
	ck_assert_uint_eq(buf_len(&b), 6);
	ck_assert(memcmp(buf_ptr(&b), "\xc3\xa4.txt", 6) == 0);
	buf_free(&b);
	mime_tree_free(&t);

	/* a broken Content-Type is shown as "" "" */
	t = parse_str("Content-Type: text; charset=us-ascii\r\n\r\nx");
	ck_render_body(t, false, "(\"\" \"\" NIL NIL NIL \"7bit\" 1)");
	mime_tree_free(&t);
}
END_TEST

START_TEST(rfc2231)
{
	static const struct {
		const char *value;
		const char *want;   /* BODYSTRUCTURE parameter list */
	} cases[] = {
		/* continuations join in index order (RFC 2231 3) */
		{ "a/b; x*1=\"world\"; x*0=\"hello \"", "(\"x\" \"hello world\")" },
		/* an extended segment makes the whole value extended; plain
		 * segments get their '%' escaped */
		{ "a/b; t*0*=us-ascii'en'50%25; t*1=%", "(\"t*\" \"us-ascii'en'50%25%25\")" },
		/* a missing index leaves the pieces apart */
		{ "a/b; k*0=x; k*2=y", "(\"k*0\" \"x\" \"k*2\" \"y\")" },
		/* plain parameters first, in order; merged ones after */
		{ "a/b; z*0=1; b=2; a=3", "(\"b\" \"2\" \"a\" \"3\" \"z\" \"1\")" },
		/* a lone extended parameter stays raw */
		{ "a/b; title*=us-ascii'en'This%20is", "(\"title*\" \"us-ascii'en'This%20is\")" },
		/* broken parameters are skipped, good ones kept */
		{ "a/b; ; x; y=1;", "(\"y\" \"1\")" },
		{ "a/b; name==?utf-8?q?x?=", "(\"name\" \"=?utf-8?q?x?=\")" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char msg[512], want[512];
		snprintf(msg, sizeof(msg), "Content-Type: %s\r\n\r\n", cases[i].value);
		snprintf(want, sizeof(want), "(\"a\" \"b\" %s NIL NIL \"7bit\" 0)", cases[i].want);
		struct mime_tree *t = parse_str(msg);
		ck_render_body(t, false, want);
		mime_tree_free(&t);
	}

	/* decoding to UTF-8 (RFC 2231 4) */
	struct mime_param p = { "title*", "iso-8859-1'fr'caf%E9%20cr%e8me" };
	struct buf b;
	buf_init(&b, 256);
	ck_assert_int_eq(mime_param_decode(&p, &b), 0);
	ck_assert(buf_is(&b, "caf\xc3\xa9 cr\xc3\xa8me"));
	buf_reset(&b);
	struct mime_param q = { "name", "=?utf-8?q?r=C3=A9sum=C3=A9.pdf?=" };
	ck_assert_int_eq(mime_param_decode(&q, &b), 0);
	ck_assert_uint_eq(buf_len(&b), 12);
	ck_assert(memcmp(buf_ptr(&b), "r\xc3\xa9sum\xc3\xa9.pdf", 12) == 0);
	buf_free(&b);

	/* a boundary given in continuations works */
	const char *msg = "Content-Type: multipart/mixed; boundary*0=ab; boundary*1=cd\r\n\r\n"
			  "--abcd\r\n\r\nx\r\n--abcd--\r\n";
	struct mime_tree *t = parse_str(msg);
	ck_assert_uint_eq(t->root->nchildren, 1);
	mime_tree_free(&t);
}
END_TEST

/* ---- ENVELOPE ---- */

START_TEST(envelope_addresses)
{
	const char *msg =
		"From: \"Quoted \\\"Name\\\"\" <q@example.test>\r\n"
		"Sender: s@example.test (The Sender)\r\n"
		"To: Group: a@x, \"B\" <b@y>;, <bare@z>, undisclosed recipients\r\n"
		"Cc: broken@, <@route1,@route2:r@d>, onlyname\r\n"
		"Cc: second@cc\r\n"
		"Bcc:\r\n"
		"Reply-To: \r\n"
		"In-Reply-To: <a@b>\r\n"
		"Subject: =?utf-8?q?not_decoded?=\r\n"
		"Subject: last one wins\r\n"
		"\r\n";
	struct mime_tree *t = parse_str(msg);

	ck_render_env(t->root->envelope,
		"(NIL \"last one wins\" "
		"((\"Quoted \\\"Name\\\"\" NIL \"q\" \"example.test\")) "
		"((\"The Sender\" NIL \"s\" \"example.test\")) "
		"((\"Quoted \\\"Name\\\"\" NIL \"q\" \"example.test\")) "
		"((NIL NIL \"Group\" NIL)(NIL NIL \"a\" \"x\")(\"B\" NIL \"b\" \"y\")(NIL NIL NIL NIL)"
		"(NIL NIL \"bare\" \"z\")(\"undisclosed recipients\" NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")) "
		"((NIL NIL \"broken\" \"MISSING_DOMAIN\")(NIL \"@route1,@route2\" \"r\" \"d\")"
		"(NIL NIL \"onlyname\" \"MISSING_DOMAIN\")(NIL NIL \"second\" \"cc\")) "
		"NIL \"<a@b>\" NIL)");
	mime_tree_free(&t);

	/* one Cc: line per address: all of them, in order */
	struct buf m;
	buf_init(&m, 65536);
	for (int i = 0; i < 300; i++)
		ck_assert_int_eq(buf_printf(&m, "Cc: u%d@x\r\n", i), 0);
	ck_assert_int_eq(buf_printf(&m, "\r\n"), 0);
	t = mime_parse(buf_ptr(&m), buf_len(&m));
	ck_assert_uint_eq(t->root->envelope->naddr[MIME_ADDR_CC], 300);
	for (int i = 0; i < 300; i++) {
		char want[16];
		snprintf(want, sizeof(want), "u%d", i);
		ck_assert_str_eq(t->root->envelope->addr[MIME_ADDR_CC][i].mailbox, want);
	}
	mime_tree_free(&t);
	buf_free(&m);

	/* RFC 2047 words are sent as they are; SEARCH decodes them */
	struct buf b;
	buf_init(&b, 256);
	const char *subj = "=?utf-8?q?not_decoded?=";
	ck_assert_int_eq(mime_encword_decode(subj, strlen(subj), &b), 0);
	ck_assert_uint_eq(buf_len(&b), 11);
	ck_assert(memcmp(buf_ptr(&b), "not decoded", 11) == 0);
	buf_free(&b);
}
END_TEST

/* ---- RFC 2047 ---- */

START_TEST(encoded_words)
{
	static const struct {
		const char *in;
		const char *out;
	} cases[] = {
		{ "=?utf-8?B?SGVsbG8=?=", "Hello" },
		{ "=?ISO-8859-1?Q?J=F6rg_M=FCller?=", "J\xc3\xb6rg M\xc3\xbcller" },
		/* white space between encoded words vanishes (6.2) */
		{ "=?utf-8?q?a?= \t =?utf-8?q?b?=", "ab" },
		{ "=?utf-8?q?a?= b =?utf-8?q?c?=", "a b c" },
		/* a character split across words survives */
		{ "=?utf-8?Q?=C3?= =?utf-8?Q?=A4?=", "\xc3\xa4" },
		/* malformed words stay as they are */
		{ "=?utf-8?X?abc?=", "=?utf-8?X?abc?=" },
		{ "=?utf-8?Q?a b?=", "=?utf-8?Q?a b?=" },
		{ "=?utf-8?Q?abc", "=?utf-8?Q?abc" },
		{ "a = b =? c", "a = b =? c" },
		/* folding is undone */
		{ "one\r\n two", "one two" },
		/* RFC 2231 5 language suffix */
		{ "=?utf-8*en?Q?hi?=", "hi" },
		/* unknown charsets keep their bytes */
		{ "=?x-no-such-charset?Q?a=FFb?=", "a\xff" "b" },
		/* iconv does the others */
		{ "=?windows-1252?Q?=80?=", "\xe2\x82\xac" },
		{ "=?koi8-r?B?8NLJ18XU?=", "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b;
		buf_init(&b, 1024);
		ck_assert_int_eq(mime_encword_decode(cases[i].in, strlen(cases[i].in), &b), 0);
		ck_assert_msg(buf_len(&b) == strlen(cases[i].out) &&
			      memcmp(buf_ptr(&b), cases[i].out, buf_len(&b)) == 0,
			      "decode(%s) = \"%.*s\"", cases[i].in, (int)buf_len(&b), buf_ptr(&b));
		buf_free(&b);
	}
}
END_TEST

/* ---- transfer encodings ---- */

START_TEST(base64_decoder)
{
	const char *in = "SGVs\r\nbG8g!d29y\nbGQ=\r\nignored";
	size_t len = strlen(in);

	for (size_t chunk = 1; chunk <= len; chunk++) {
		struct mime_b64dec d;
		struct buf b;
		buf_init(&b, 64);
		mime_b64dec_init(&d);
		for (size_t off = 0; off < len; off += chunk)
			ck_assert_int_eq(mime_b64dec_feed(&d, in + off, len - off < chunk ? len - off : chunk, &b), 0);
		mime_b64dec_finish(&d);
		ck_assert_uint_eq(buf_len(&b), 11);
		ck_assert(memcmp(buf_ptr(&b), "Hello world", 11) == 0);
		buf_free(&b);
	}
	/* a full output buffer is reported */
	struct mime_b64dec d;
	struct buf small;
	buf_init(&small, 3);
	mime_b64dec_init(&d);
	ck_assert_int_eq(mime_b64dec_feed(&d, "SGVsbG8=", 8, &small), -1);
	buf_free(&small);
}
END_TEST

START_TEST(qp_decoder)
{
	static const struct {
		const char *in;
		const char *out;
	} cases[] = {
		/* =XX, soft breaks, trailing blanks dropped (RFC 2045 6.7) */
		{ "a=3Db=\r\nc  \r\nd=\ne\t\r\n=4", "a=bc\r\nde\r\n=4" },
		{ "caf=C3=A9", "caf\xc3\xa9" },
		/* "=" not starting an escape is kept */
		{ "1 = 2 =ZZ =4x", "1 = 2 =ZZ =4x" },
		/* soft break with blanks after the "=" */
		{ "x= \t\r\ny", "xy" },
		{ "blank at end   ", "blank at end" },
		{ "lf only\nnext", "lf only\nnext" },
		{ "cr\ralone", "cr\ralone" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i].in);
		for (size_t chunk = 1; chunk <= len; chunk++) {
			struct mime_qpdec d;
			struct buf b;
			buf_init(&b, 256);
			mime_qpdec_init(&d);
			for (size_t off = 0; off < len; off += chunk)
				ck_assert_int_eq(mime_qpdec_feed(&d, cases[i].in + off,
								 len - off < chunk ? len - off : chunk, &b), 0);
			ck_assert_int_eq(mime_qpdec_finish(&d, &b), 0);
			ck_assert_msg(buf_len(&b) == strlen(cases[i].out) &&
				      memcmp(buf_ptr(&b), cases[i].out, buf_len(&b)) == 0,
				      "qp(%s) in %zu-byte chunks = \"%.*s\"", cases[i].in, chunk,
				      (int)buf_len(&b), buf_ptr(&b));
			buf_free(&b);
		}
	}
	ck_assert_int_eq(mime_cte_parse("Quoted-Printable"), MIME_CTE_QP);
	ck_assert_int_eq(mime_cte_parse("BASE64"), MIME_CTE_BASE64);
	ck_assert_int_eq(mime_cte_parse("8bit"), MIME_CTE_IDENTITY);
	ck_assert_int_eq(mime_cte_parse(NULL), MIME_CTE_IDENTITY);
}
END_TEST

/* ---- IMAP strings ---- */

START_TEST(imapstr_every_byte)
{
	for (int c = 0; c < 256; c++) {
		char in[3] = { 'a', (char)c, 'z' };
		char want[32];
		struct buf b;

		buf_init(&b, 64);
		ck_assert_int_eq(imapstr_write(&b, in, 3), 0);
		if (c == '"' || c == '\\')
			snprintf(want, sizeof(want), "\"a\\%cz\"", c);
		else if (c != 0 && c < 0x80 && c != '\r' && c != '\n')
			snprintf(want, sizeof(want), "\"a%cz\"", c);
		else
			snprintf(want, sizeof(want), "{3}\r\na%cz", c == 0 ? 0x80 : c);
		ck_assert_msg(buf_len(&b) == strlen(want) && memcmp(buf_ptr(&b), want, buf_len(&b)) == 0,
			      "byte 0x%02x written as \"%.*s\"", c, (int)buf_len(&b), buf_ptr(&b));
		buf_free(&b);
	}
}
END_TEST

START_TEST(imapstr_forms)
{
	struct buf b;
	buf_init(&b, 256);

#define CK_OUT(want) do { \
	ck_assert_msg(buf_is(&b, want), "got \"%.*s\", want \"%s\"", \
		      (int)buf_len(&b), buf_ptr(&b), want); \
	buf_reset(&b); \
} while (0)

	ck_assert_int_eq(imapstr_write(&b, "", 0), 0);
	CK_OUT("\"\"");
	ck_assert_int_eq(imapstr_write(&b, "\"\"\"\"", 4), 0);
	CK_OUT("\"\\\"\\\"\\\"\\\"\"");
	/* many escapes: a literal is shorter */
	ck_assert_int_eq(imapstr_write(&b, "\\\\\\\\\\", 5), 0);
	CK_OUT("{5}\r\n\\\\\\\\\\");
	ck_assert_int_eq(imapstr_write_nstring(&b, NULL), 0);
	CK_OUT("NIL");
	ck_assert_int_eq(imapstr_write_nstring(&b, "NIL"), 0);
	CK_OUT("\"NIL\"");
	ck_assert_int_eq(imapstr_write_astring(&b, "INBOX", 5), 0);
	CK_OUT("INBOX");
	ck_assert_int_eq(imapstr_write_astring(&b, "a]b", 3), 0);
	CK_OUT("a]b");
	ck_assert_int_eq(imapstr_write_astring(&b, "nil", 3), 0);
	CK_OUT("\"nil\"");
	ck_assert_int_eq(imapstr_write_astring(&b, "a b", 3), 0);
	CK_OUT("\"a b\"");
	ck_assert_int_eq(imapstr_write_astring(&b, "", 0), 0);
	CK_OUT("\"\"");
	ck_assert_int_eq(imapstr_write_astring(&b, "a{", 2), 0);
	CK_OUT("\"a{\"");
	ck_assert_int_eq(imapstr_write_human(&b, "  a \t\r\n b  ", 11), 0);
	CK_OUT("\"a b\"");
	ck_assert_int_eq(imapstr_write_human(&b, " \r\n ", 4), 0);
	CK_OUT("\"\"");
	ck_assert_int_eq(imapstr_write_human(&b, "x\0y", 3), 0);
	CK_OUT("{3}\r\nx\x80y");
	ck_assert_int_eq(imapstr_write_nolf(&b, "a\r\nb"), 0);
	CK_OUT("\"a b\"");
	ck_assert_int_eq(imapstr_write_nolf(&b, "a\r\n\tb"), 0);
	CK_OUT("\"a\tb\"");
	ck_assert_int_eq(imapstr_write_nolf(&b, "a\n"), 0);
	CK_OUT("\"a\"");
	ck_assert_int_eq(imapstr_write_nolf(&b, NULL), 0);
	CK_OUT("NIL");
	buf_free(&b);

	/* nothing is half-written into a buffer that is too small */
	struct buf small;
	buf_init(&small, 6);
	ck_assert_int_eq(buf_append(&small, "xy", 2), 0);
	ck_assert_int_eq(imapstr_write(&small, "abc", 3), -1);
	ck_assert_int_eq(imapstr_write(&small, "a\nc", 3), -1);
	ck_assert_uint_eq(buf_len(&small), 2);
	ck_assert_int_eq(imapstr_write(&small, "ab", 2), 0);
	ck_assert_uint_eq(buf_len(&small), 6);
	buf_free(&small);
#undef CK_OUT
}
END_TEST

/* ---- sections ---- */

START_TEST(section_specs)
{
	static const char *const bad[] = {
		"1.", ".1", "0", "1.0", "01", "FOO", "1.FOO", "MIME", "1..2",
		"HEADER.FIELDS", "HEADER.FIELDS ()", "HEADER.FIELDS (A", "HEADER.FIELDS (A) x",
		"HEADER.FIELDS (\"A)", "TEXT.MIME", "1MIME", "HEADERX",
		"1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23.24.25.26.27.28",
	};
	struct mime_tree *t = mime_parse("A: b\r\n\r\nx", 9);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct mime_section sec;
		const char *error = NULL;
		ck_assert_msg(mime_section_resolve(t, bad[i], strlen(bad[i]), &sec, &error) == -1,
			      "[%s] accepted", bad[i]);
		ck_assert_ptr_nonnull(error);
		mime_section_free(&sec);
	}
	mime_tree_free(&t);
}
END_TEST

START_TEST(header_fields)
{
	const char *msg =
		"Subject: one\r\n"
		"X-Long: a\r\n"
		"  continued\r\n"
		"subject : two\n"
		"NoColon\r\n"
		"From: f\r\n"
		"\r\n"
		"Subject: in body\r\n";
	struct mime_tree *t = parse_str(msg);

	ck_section(t, msg, "HEADER.FIELDS (SUBJECT)", "Subject: one\r\nsubject : two\r\n\r\n");
	ck_section(t, msg, "header.fields (\"x-long\" from)",
		   "X-Long: a\r\n  continued\r\nFrom: f\r\n\r\n");
	ck_section(t, msg, "HEADER.FIELDS.NOT (Subject X-Long From)", "NoColon\r\n\r\n");
	ck_section(t, msg, "HEADER.FIELDS (nocolon)", "NoColon\r\n\r\n");
	ck_section(t, msg, "HEADER.FIELDS (Absent)", "\r\n");
	ck_section(t, msg, "1.HEADER.FIELDS (Subject)", "");
	ck_section(t, msg, "1", "Subject: in body\r\n");
	mime_tree_free(&t);

	/* no blank line: no CRLF after the fields */
	msg = "A: 1\r\nB: 2";
	t = parse_str(msg);
	ck_section(t, msg, "HEADER.FIELDS (B)", "B: 2");
	ck_section(t, msg, "HEADER.FIELDS.NOT (B)", "A: 1\r\n");
	mime_tree_free(&t);

	/* the filter fed a byte at a time */
	const char *hdr = "a: 1\r\nb: 2\r\n c\r\nA:3\r\n\r\n";
	char *fields[] = { "A" };
	struct mime_hdrfilter f;
	struct buf b;
	buf_init(&b, 256);
	mime_hdrfilter_init(&f, fields, 1, false);
	for (size_t i = 0; i < strlen(hdr); i++)
		ck_assert_int_eq(mime_hdrfilter_feed(&f, hdr + i, 1, &b), 0);
	ck_assert_int_eq(mime_hdrfilter_finish(&f, &b), 0);
	ck_assert(buf_is(&b, "a: 1\r\nA:3\r\n\r\n"));
	buf_free(&b);
}
END_TEST

START_TEST(crlf_resumable)
{
	const char *in = "a\nb\r\nc\0\n\n";
	size_t len = 9, want_len = 12;
	const char *want = "a\r\nb\r\nc\x80\r\n\r\n";

	/* an output buffer of one byte: the caller drains and resumes */
	struct mime_crlf c;
	struct buf out, all;
	buf_init(&out, 1);
	buf_init(&all, 64);
	mime_crlf_init(&c);
	size_t off = 0;
	while (off < len) {
		off += mime_crlf_convert(&c, in + off, len - off, &out);
		ck_assert_int_eq(buf_append(&all, buf_ptr(&out), buf_len(&out)), 0);
		buf_reset(&out);
		/* "\r\n" needs two bytes of room */
		if (off < len && in[off] == '\n') {
			struct buf two;
			buf_init(&two, 2);
			off += mime_crlf_convert(&c, in + off, 1, &two);
			ck_assert_int_eq(buf_append(&all, buf_ptr(&two), buf_len(&two)), 0);
			buf_free(&two);
		}
	}
	ck_assert_uint_eq(buf_len(&all), want_len);
	ck_assert(memcmp(buf_ptr(&all), want, want_len) == 0);
	buf_free(&out);
	buf_free(&all);
}
END_TEST

/* ---- hooks ---- */

struct hook_log {
	struct buf headers;
	struct buf body[8];
	int nparts;
	const struct mime_part *parts[8];
};

static void on_header(void *ctx, const struct mime_part *part, const char *name, size_t nlen,
		      const char *value, size_t vlen, bool truncated)
{
	struct hook_log *log = ctx;
	ck_assert(!truncated);
	ck_assert_int_eq(buf_printf(&log->headers, "%.*s=%.*s|", (int)nlen, name, (int)vlen, value), 0);
}

static void on_body(void *ctx, const struct mime_part *part, const void *data, size_t len)
{
	struct hook_log *log = ctx;
	int i;
	for (i = 0; i < log->nparts && log->parts[i] != part; i++)
		;
	if (i == log->nparts) {
		ck_assert_int_lt(log->nparts, 8);
		log->parts[log->nparts++] = part;
	}
	ck_assert_int_eq(buf_append(&log->body[i], data, len), 0);
}

START_TEST(parse_hooks)
{
	struct hook_log log;
	struct mime_parse_hooks hooks = { on_header, on_body, &log };

	memset(&log, 0, sizeof(log));
	buf_init(&log.headers, 4096);
	for (int i = 0; i < 8; i++)
		buf_init(&log.body[i], 4096);
	struct mime_parser *p = mime_parser_new(&hooks);
	for (size_t i = 0; multipart_msg[i] != '\0'; i++)
		mime_parser_feed(p, multipart_msg + i, 1);
	struct mime_tree *t = mime_parser_finish(&p);

	ck_assert(strstr(buf_ptr(&log.headers), "Subject=inside|From=x@y|") != NULL);
	ck_assert(strstr(buf_ptr(&log.headers),
			 "Content-Type=multipart/alternative; boundary=\"=_outer-inner\"|") != NULL);
	/* every leaf gets exactly its body */
	for (int i = 0; i < log.nparts; i++) {
		const struct mime_part *part = log.parts[i];
		if (part->flags & MIME_PART_MULTIPART)
			continue;
		ck_assert_uint_eq(buf_len(&log.body[i]), part->body.physical);
		ck_assert(memcmp(buf_ptr(&log.body[i]), multipart_msg + mime_part_body_offset(part),
				 part->body.physical) == 0);
	}
	mime_tree_free(&t);
	buf_free(&log.headers);
	for (int i = 0; i < 8; i++)
		buf_free(&log.body[i]);
}
END_TEST

/* ---- serialized form ---- */

static uint32_t fnv1a(const unsigned char *p, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 16777619u;
	}
	return h;
}

/* The bytes of a non-empty buffer (a function, so the compiler does not
 * take buf_ptr()'s "" for an empty buffer as the source of a long copy). */
__attribute__((noinline)) static const unsigned char *serialized_bytes(const struct buf *b)
{
	ck_assert_uint_gt(buf_len(b), 0);
	return (const unsigned char *)buf_ptr(b);
}

static void fix_checksum(unsigned char *d, size_t len)
{
	uint32_t h = fnv1a(d, len - 4);
	for (int i = 0; i < 4; i++)
		d[len - 4 + i] = (unsigned char)(h >> (8 * i));
}

START_TEST(serial_round_trip)
{
	const char *msgs[] = {
		multipart_msg,
		"",
		"Subject: x\r\n\r\n",
		"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: s\r\n\r\nb\r\n--d--",
	};

	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		struct mime_tree *t = mime_parse(msgs[i], strlen(msgs[i]));
		struct buf a, b;
		const char *error;
		serialize(t, &a);
		struct mime_tree *back = mime_tree_deserialize(buf_ptr(&a), buf_len(&a), &error);
		ck_assert_msg(back != NULL, "%s", error);
		serialize(back, &b);
		ck_assert_uint_eq(buf_len(&a), buf_len(&b));
		ck_assert(memcmp(buf_ptr(&a), buf_ptr(&b), buf_len(&a)) == 0);
		ck_assert_uint_eq(back->nparts, t->nparts);
		char *r1 = render_body(t, true), *r2 = render_body(back, true);
		ck_assert_str_eq(r1, r2);
		free(r1);
		free(r2);
		mime_tree_free(&back);
		mime_tree_free(&t);
		buf_free(&a);
		buf_free(&b);
	}

	/* an output buffer that is too small is left as it was */
	struct mime_tree *t = mime_parse(multipart_msg, strlen(multipart_msg));
	struct buf small;
	buf_init(&small, 16);
	ck_assert_int_eq(mime_tree_serialize(t, &small), -1);
	ck_assert_uint_eq(buf_len(&small), 0);
	buf_free(&small);
	mime_tree_free(&t);
}
END_TEST

START_TEST(serial_corrupt)
{
	struct mime_tree *t = mime_parse(multipart_msg, strlen(multipart_msg));
	struct buf ser;
	const char *error;

	serialize(t, &ser);
	size_t len = buf_len(&ser);
	unsigned char *d = malloc(len);
	const unsigned char *orig = serialized_bytes(&ser);

	/* every truncation is refused */
	for (size_t n = 0; n < len; n++) {
		memcpy(d, orig, n);
		char *g = guard_copy(d, n);
		ck_assert_ptr_null(mime_tree_deserialize(g, n, &error));
		ck_assert_ptr_nonnull(error);
		guard_free(g, n);
	}
	/* every flipped bit is caught by the checksum */
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			memcpy(d, orig, len);
			d[i] ^= (unsigned char)(1u << bit);
			ck_assert_ptr_null(mime_tree_deserialize(d, len, &error));
		}
	}
	/* and with a matching checksum, bad structure is still caught or
	 * gives a tree that is safe to use */
	static const unsigned char values[] = { 0x00, 0x01, 0x02, 0x7f, 0x80, 0xff };
	for (size_t i = 0; i < len - 4; i++) {
		for (size_t v = 0; v < sizeof(values); v++) {
			memcpy(d, orig, len);
			if (d[i] == values[v])
				continue;
			d[i] = values[v];
			fix_checksum(d, len);
			char *g = guard_copy(d, len);
			struct mime_tree *back = mime_tree_deserialize(g, len, &error);
			if (back != NULL) {
				char *r = render_body(back, true);
				free(r);
				struct buf again;
				serialize(back, &again);
				buf_free(&again);
				struct mime_section sec;
				const char *e2;
				if (mime_section_resolve(back, "3.TEXT", 6, &sec, &e2) == 0 &&
				    sec.kind == MIME_SECTION_BYTES)
					ck_assert_uint_le(sec.offset + sec.length,
							  mime_part_end_offset(back->root));
				mime_section_free(&sec);
				mime_tree_free(&back);
			} else {
				ck_assert_ptr_nonnull(error);
			}
			guard_free(g, len);
		}
	}
	/* other versions and garbage */
	memcpy(d, orig, len);
	d[4] = MIME_SERIAL_VERSION + 1;
	fix_checksum(d, len);
	ck_assert_ptr_null(mime_tree_deserialize(d, len, &error));
	ck_assert_str_eq(error, "unsupported version");
	ck_assert_ptr_null(mime_tree_deserialize("PBMT", 4, &error));
	ck_assert_ptr_null(mime_tree_deserialize("", 0, &error));
	memcpy(d, orig, len);
	d[0] = 'X';
	ck_assert_ptr_null(mime_tree_deserialize(d, len, &error));

	free(d);
	buf_free(&ser);
	mime_tree_free(&t);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("mime");
	TCase *tc;

	tc = tcase_create("parse");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, header_folding);
	tcase_add_test(tc, header_oddities);
	tcase_add_test(tc, bare_lf_and_nul);
	tcase_add_test(tc, long_header_truncated);
	tcase_add_test(tc, boundaries_any_chunking);
	tcase_add_test(tc, boundary_prefixes);
	tcase_add_test(tc, malformed_multiparts);
	tcase_add_test(tc, digest_and_rfc822);
	tcase_add_test(tc, depth_limit);
	tcase_add_test(tc, part_limit);
	tcase_add_test(tc, parse_hooks);
	suite_add_tcase(s, tc);

	tc = tcase_create("fields");
	tcase_add_test(tc, content_fields);
	tcase_add_test(tc, rfc2231);
	tcase_add_test(tc, envelope_addresses);
	tcase_add_test(tc, encoded_words);
	suite_add_tcase(s, tc);

	tc = tcase_create("decode");
	tcase_add_test(tc, base64_decoder);
	tcase_add_test(tc, qp_decoder);
	suite_add_tcase(s, tc);

	tc = tcase_create("imapstr");
	tcase_add_test(tc, imapstr_every_byte);
	tcase_add_test(tc, imapstr_forms);
	suite_add_tcase(s, tc);

	tc = tcase_create("section");
	tcase_add_test(tc, section_specs);
	tcase_add_test(tc, header_fields);
	tcase_add_test(tc, crlf_resumable);
	suite_add_tcase(s, tc);

	tc = tcase_create("serial");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, serial_round_trip);
	tcase_add_test(tc, serial_corrupt);
	suite_add_tcase(s, tc);

	return testutil_run(s);
}
