/* SEARCH: the text matchers over streamed messages (with a tiny in-memory
 * reader whose reads return at most `piece` bytes, so every chunk boundary
 * is tried), and the whole command over the session and the fake backend:
 * every key, OR/NOT/nesting, charsets, dates, bad syntax, long answers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/session.h"
#include "core/xalloc.h"
#include "imap/imap_search_private.h"
#include "imap/imap_session.h"
#include "imap_drain_harness.h"

/* ---- a reader over one message in memory ---- */

struct memmsg {
	const char *data;
	size_t len;
	size_t piece;       /* most bytes one read returns */
	int opened;
};

static void *mem_open(void *ctx, struct imap_mailbox *mb, uint32_t uid, enum imap_status *status_r)
{
	struct memmsg *m = ctx;

	(void)mb;
	if (uid == 0) {
		*status_r = IMAP_GONE;
		return NULL;
	}
	m->opened++;
	*status_r = IMAP_OK;
	return m;
}

static ssize_t mem_pread(void *reader, void *buf, size_t len, uint64_t offset)
{
	struct memmsg *m = reader;

	if (offset >= m->len)
		return 0;
	size_t n = m->len - (size_t)offset;
	if (n > len)
		n = len;
	if (n > m->piece)
		n = m->piece;
	memcpy(buf, m->data + offset, n);
	return (ssize_t)n;
}

static void mem_close(void *reader)
{
	struct memmsg *m = reader;
	m->opened--;
}

/* Whether key (kind, field, needle) matches msg, read in pieces of every
 * size from 1 up and whole: all answers must agree. */
static bool matches(const char *msg, enum imap__stext_kind kind, const char *field, const char *needle)
{
	static const size_t pieces[] = { 1, 2, 3, 5, 7, 13, 64, 1 << 20 };
	struct memmsg m = { .data = msg, .len = strlen(msg) };
	struct imap_backend be;
	int answer = -1;

	memset(&be, 0, sizeof(be));
	be.ctx = &m;
	be.message_open = mem_open;
	be.message_pread = mem_pread;
	be.message_close = mem_close;
	for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		struct imap__stext_key k;
		m.piece = pieces[i];
		imap__stext_init(&k, kind, field ? xstrdup(field) : NULL, needle, strlen(needle));
		ck_assert_int_eq(imap__stext_run(&be, NULL, 1, &k, 1), IMAP_OK);
		ck_assert_int_eq(m.opened, 0);
		if (answer < 0)
			answer = k.found;
		ck_assert_msg(answer == k.found, "piece %zu disagrees for %s", pieces[i], needle);
		imap__stext_free(&k);
	}
	return answer == 1;
}

START_TEST(test_fold)
{
	char s[] = "ABC xyz \xc3\x80\xc3\x89\xc3\x9e \xc3\x97 \xc4\x80\xc4\x9e\xc5\x81\xc5\xb8 \xc4\xb0 Stra\xc3\x9f" "e";
	imap__fold(s, strlen(s));
	ck_assert_str_eq(s, "abc xyz \xc3\xa0\xc3\xa9\xc3\xbe \xc3\x97 "
			    "\xc4\x81\xc4\x9f\xc5\x82\xc3\xbf \xc4\xb0 stra\xc3\x9f" "e");
	/* U+013F (odd, upper) becomes U+0140: the lead byte changes */
	char t[] = "\xc4\xbf";
	imap__fold(t, 2);
	ck_assert_str_eq(t, "\xc5\x80");
}
END_TEST

#define SIMPLE "From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: Quarterly Report\r\n" \
	       "X-Empty:\r\n\r\nThe numbers are in. Regards\r\n"

START_TEST(test_headers)
{
	ck_assert(matches(SIMPLE, IMAP__STEXT_HEADER, "SUBJECT", "quarterly"));
	ck_assert(matches(SIMPLE, IMAP__STEXT_HEADER, "subject", "LY REP"));
	ck_assert(!matches(SIMPLE, IMAP__STEXT_HEADER, "Subject", "numbers"));
	ck_assert(matches(SIMPLE, IMAP__STEXT_HEADER, "FROM", "ALICE@EXAMPLE"));
	ck_assert(!matches(SIMPLE, IMAP__STEXT_HEADER, "CC", ""));
	ck_assert(matches(SIMPLE, IMAP__STEXT_HEADER, "X-Empty", ""));
	ck_assert(matches(SIMPLE, IMAP__STEXT_HEADER, "to", ""));
	ck_assert(!matches(SIMPLE, IMAP__STEXT_HEADER, "X-Empty", "a"));
	/* BODY is the body only, TEXT both */
	ck_assert(!matches(SIMPLE, IMAP__STEXT_BODY, NULL, "alice"));
	ck_assert(matches(SIMPLE, IMAP__STEXT_BODY, NULL, "NUMBERS ARE"));
	ck_assert(matches(SIMPLE, IMAP__STEXT_TEXT, NULL, "alice"));
	ck_assert(matches(SIMPLE, IMAP__STEXT_TEXT, NULL, "subject: quarterly"));
	ck_assert(matches(SIMPLE, IMAP__STEXT_TEXT, NULL, "regards"));
	ck_assert(!matches(SIMPLE, IMAP__STEXT_TEXT, NULL, "regardless"));
	ck_assert(matches(SIMPLE, IMAP__STEXT_BODY, NULL, ""));
	/* the last byte of the message, and one past it */
	ck_assert(matches(SIMPLE, IMAP__STEXT_BODY, NULL, "regards\r\n"));
	ck_assert(!matches(SIMPLE, IMAP__STEXT_BODY, NULL, "regards\r\n\r\n"));
}
END_TEST

START_TEST(test_encoded_words)
{
	const char *msg = "Subject: =?ISO-8859-1?Q?Caf=E9_cr=E8me?= and\r\n =?UTF-8?B?w5xiZXI=?= more\r\n"
			  "From: =?utf-8?q?J=C3=B6rg?= <j@example.org>\r\n\r\nbody\r\n";
	ck_assert(matches(msg, IMAP__STEXT_HEADER, "SUBJECT", "caf\xc3\xa9 cr\xc3\xa8me"));
	ck_assert(matches(msg, IMAP__STEXT_HEADER, "SUBJECT", "CAF\xc3\x89"));
	ck_assert(matches(msg, IMAP__STEXT_HEADER, "SUBJECT", "\xc3\xbc" "ber more"));
	ck_assert(matches(msg, IMAP__STEXT_HEADER, "FROM", "J\xc3\x96RG"));
	ck_assert(!matches(msg, IMAP__STEXT_HEADER, "SUBJECT", "=?ISO"));
	ck_assert(matches(msg, IMAP__STEXT_TEXT, NULL, "j\xc3\xb6rg"));
}
END_TEST

#define MULTI "From: a@example.org\r\nSubject: parts\r\nMIME-Version: 1.0\r\n" \
	"Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\npreamble secret\r\n" \
	"--XX\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" \
	"SGVsbG8gYmFzZTY0IHdvcmxkLCBzdXBlcmNhbGlmcmFnaWxpc3RpYw==\r\n" \
	"--XX\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" \
	"Soft line=\r\nbreak with caf=E9 and =3D sign\r\n" \
	"--XX\r\nContent-Type: application/octet-stream\r\n\r\nbinaryneedle\r\n" \
	"--XX\r\nContent-Type: message/rfc822\r\n\r\nFrom: inner@example.com\r\nSubject: inner subject\r\n\r\n" \
	"inner body text\r\n" \
	"--XX--\r\nepilogue\r\n"

START_TEST(test_bodies)
{
	ck_assert(matches(MULTI, IMAP__STEXT_BODY, NULL, "base64 world"));
	ck_assert(matches(MULTI, IMAP__STEXT_BODY, NULL, "SUPERCALIFRAGILISTIC"));
	ck_assert(!matches(MULTI, IMAP__STEXT_BODY, NULL, "SGVsbG8"));
	ck_assert(matches(MULTI, IMAP__STEXT_BODY, NULL, "soft linebreak"));
	ck_assert(matches(MULTI, IMAP__STEXT_BODY, NULL, "CAF\xc3\x89 and = sign"));
	ck_assert(!matches(MULTI, IMAP__STEXT_BODY, NULL, "binaryneedle"));
	ck_assert(!matches(MULTI, IMAP__STEXT_BODY, NULL, "preamble"));
	ck_assert(!matches(MULTI, IMAP__STEXT_BODY, NULL, "epilogue"));
	ck_assert(matches(MULTI, IMAP__STEXT_BODY, NULL, "inner body"));
	/* no match across two parts */
	ck_assert(!matches(MULTI, IMAP__STEXT_BODY, NULL, "supercalifragilisticsoft"));
	/* header keys look at the message's own header only */
	ck_assert(!matches(MULTI, IMAP__STEXT_HEADER, "FROM", "inner@"));
	ck_assert(matches(MULTI, IMAP__STEXT_HEADER, "FROM", "a@example"));
	ck_assert(matches(MULTI, IMAP__STEXT_TEXT, NULL, "inner subject"));
}
END_TEST

START_TEST(test_bare_lf_and_long)
{
	/* lines shorter than the needle: the match spans several pieces */
	const char *shortlines = "Subject: x\r\n\nab\r\ncd\r\nef\r\ngh\r\n";
	ck_assert(matches(shortlines, IMAP__STEXT_BODY, NULL, "b\r\ncd\r\nef\r\ng"));
	ck_assert(matches(shortlines, IMAP__STEXT_BODY, NULL, "AB\r\nCD"));
	ck_assert(!matches(shortlines, IMAP__STEXT_BODY, NULL, "b\r\ncd\r\nxf"));
	ck_assert(!matches(shortlines, IMAP__STEXT_BODY, NULL, "h\r\nab"));
	const char *lf = "Subject: lf\n\nline one\nline two\n";
	ck_assert(matches(lf, IMAP__STEXT_BODY, NULL, "one\nline"));
	ck_assert(matches(lf, IMAP__STEXT_HEADER, "subject", "LF"));

	/* A body much larger than every buffer, the needle at the end and
	 * straddling the 32 KiB read chunks. */
	size_t n = 300 * 1024;
	char *big = xmalloc(n + 200);
	size_t off = (size_t)sprintf(big, "Subject: big\r\n\r\n");
	while (off < n) {
		memcpy(big + off, "abcdefghij\r\n", 12);
		off += 12;
	}
	strcpy(big + off, "the needle is here\r\n");
	struct memmsg m = { .data = big, .len = strlen(big), .piece = 1 << 20 };
	struct imap_backend be;
	memset(&be, 0, sizeof(be));
	be.ctx = &m;
	be.message_open = mem_open;
	be.message_pread = mem_pread;
	be.message_close = mem_close;
	struct imap__stext_key k[3];
	imap__stext_init(&k[0], IMAP__STEXT_BODY, NULL, "NEEDLE IS", 9);
	imap__stext_init(&k[1], IMAP__STEXT_BODY, NULL, "j\r\nabcdefghij\r\nthe", 18);
	imap__stext_init(&k[2], IMAP__STEXT_TEXT, NULL, "jabc", 4);
	ck_assert_int_eq(imap__stext_run(&be, NULL, 1, k, 3), IMAP_OK);
	ck_assert(k[0].found);
	ck_assert(k[1].found);
	ck_assert(!k[2].found);
	/* gone */
	ck_assert_int_eq(imap__stext_run(&be, NULL, 0, k, 3), IMAP_GONE);
	for (int i = 0; i < 3; i++)
		imap__stext_free(&k[i]);
	free(big);
}
END_TEST

/* ---- dates ---- */

static int64_t sent_day(const char *s)
{
	int64_t day = -99999;
	return imap__search_sent_day(s, &day) == 0 ? day : -99999;
}

static int64_t search_day(const char *s)
{
	int64_t day = -99999;
	return imap__search_date(s, strlen(s), &day) == 0 ? day : -99999;
}

START_TEST(test_dates)
{
	/* days since 1970-01-01, from Python's datetime */
	ck_assert_int_eq(search_day("1-Jan-1970"), 0);
	ck_assert_int_eq(search_day("01-Feb-1994"), 8797);
	ck_assert_int_eq(search_day("29-feb-2024"), 19782);
	ck_assert_int_eq(search_day("31-Dec-1969"), -1);
	ck_assert_int_eq(search_day("1-Mar-2000"), 11017);
	static const char *const bad[] = { "", "1-Feb-94", "32-Jan-2020", "0-Jan-2020", "29-Feb-2023", "29-Feb-1900",
					   "31-Apr-2020", "1-Foo-2020", "1-Feb-2020x", "1 Feb 2020", "123-Feb-2020",
					   "1-Feb-", "-Feb-2020", "1-February-2020" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(search_day(bad[i]) == -99999, "%s", bad[i]);

	ck_assert_int_eq(sent_day("Tue, 1 Jul 2003 10:52:37 +0200"), 12234);
	/* RFC 3501 6.4.4: time and zone are disregarded */
	ck_assert_int_eq(sent_day("1 Jul 2003 01:00:00 +0200"), 12234);
	ck_assert_int_eq(sent_day("Mon, 30 Jun 2003 22:30 -0200"), 12233);
	ck_assert_int_eq(sent_day("30 Jun 2003 22:30:00 EDT"), 12233);
	ck_assert_int_eq(sent_day("30 Jun 2003 22:30:00 GMT"), 12233);
	ck_assert_int_eq(sent_day("  (comment) Tue,  1 Jul 03 10:52:37 +0000 (UTC)"), 12234);
	ck_assert_int_eq(sent_day("1 Jul 99"), 10773);
	ck_assert_int_eq(sent_day("1 Jul 2003"), 12234);
	ck_assert_int_eq(sent_day("1 jul 2003 12:00:00 +0000"), 12234);
	static const char *const bad_sent[] = { "", "garbage", "Tue, 31 Jun 2003 10:00:00 +0000", "1 Foo 2003",
						"Tue, Jul 1 2003", "1 Jul" };
	for (size_t i = 0; i < sizeof(bad_sent) / sizeof(bad_sent[0]); i++)
		ck_assert_msg(sent_day(bad_sent[i]) == -99999, "%s", bad_sent[i]);
	ck_assert_int_eq(imap__search_day_of(-1), -1);
	ck_assert_int_eq(imap__search_day_of(-86400), -1);
	ck_assert_int_eq(imap__search_day_of(-86401), -2);
	ck_assert_int_eq(imap__search_day_of(86399), 0);
}
END_TEST

/* ---- the command over the session ---- */

#define S1 "From: Alice <alice@example.org>\r\nTo: bob@example.test\r\nCc: Carol <carol@example.net>\r\n" \
	   "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= from Alice\r\nDate: Mon, 3 Feb 2020 23:30:00 -0500\r\n" \
	   "X-Tag: alpha\r\n\r\nHello Bob, the PASSWORD is swordfish.\r\n"
#define S2 "From: Bob <bob@example.test>\r\nTo: alice@example.org\r\nSubject: Meeting\r\n" \
	   "Date: 10 Mar 21 08:00 GMT\r\nMIME-Version: 1.0\r\n" \
	   "Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\n" \
	   "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" \
	   "VGhlIHNlY3JldCBtZWV0aW5nIGlzIGF0IG5vb24u\r\n--zz\r\n" \
	   "Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" \
	   "Bring the agen=\r\nda, please.\r\n--zz--\r\n"
#define S3_HEAD "Subject: lf\nContent-Type: text/plain; charset=iso-8859-1\n\ncaf\xe9 au lait\n"
#define S4 "Subject: hello\r\nBcc: dave@example.com\r\nDate: Wed, 15 Jun 2022 12:00:00 +0000\r\n\r\nshort\r\n"

/* "tag SEARCH keys" answers "* SEARCH" + want, fed whole and bytewise. */
static void t_search(struct t *t, const char *cmd, const char *keys, const char *want)
{
	char in[1024], expect[1024];
	snprintf(in, sizeof(in), "s %s %s\r\n", cmd, keys);
	snprintf(expect, sizeof(expect), "* SEARCH%s%s\r\ns OK %s completed\r\n", want[0] ? " " : "", want, cmd);
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		t_feed(t, in, bytewise);
		char *out = t_take(t);
		ck_assert_msg(strcmp(out, expect) == 0, "%s(bytewise=%d)\ngot:\n%s\nwant:\n%s", in, bytewise, out,
			      expect);
		free(out);
	}
}

static void t_expect(struct t *t, const char *in, const char *want)
{
	t_feed(t, in, false);
	char *out = t_take(t);
	ck_assert_msg(strcmp(out, want) == 0, "%s\ngot:\n%s\nwant:\n%s", in, out, want);
	free(out);
}

/* INBOX with uids 10, 11, 20 and 21; 21 is \Recent. */
static void t_open(struct t *t)
{
	t_init(t);
	struct fake_box *b = fake_box_existing(&t->f, ACCOUNT, "INBOX");
	b->keywords[0] = xstrdup("$Work");
	b->uidnext = 10;
	fake_box_append(&t->f, b, S1, strlen(S1), IMAP_SEEN | IMAP_ANSWERED, 0, 1580792400); /* 2020-02-04 05:00 */
	fake_box_append(&t->f, b, S2, strlen(S2), IMAP_FLAGGED | IMAP_DELETED, 1, 1615363200); /* 2021-03-10 */
	b->uidnext = 20;
	char s3[2100];
	size_t n = (size_t)snprintf(s3, sizeof(s3), "%s", S3_HEAD);
	while (n < 2000)
		n += (size_t)snprintf(s3 + n, sizeof(s3) - n, "filler line\n");
	fake_box_append(&t->f, b, s3, n, IMAP_DRAFT, 0, 1641038400);  /* 2022-01-01 12:00 */
	b->recent_upto = 20;
	fake_box_append(&t->f, b, S4, strlen(S4), 0, 0, 1655251200);   /* 2022-06-15 */
	t_login(t, false);
}

START_TEST(search_flags_and_numbers)
{
	static const struct {
		const char *keys, *want;
	} cases[] = {
		{ "ALL", "1 2 3 4" },
		{ "ANSWERED", "1" },       { "UNANSWERED", "2 3 4" },
		{ "DELETED", "2" },        { "UNDELETED", "1 3 4" },
		{ "DRAFT", "3" },          { "UNDRAFT", "1 2 4" },
		{ "FLAGGED", "2" },        { "UNFLAGGED", "1 3 4" },
		{ "SEEN", "1" },           { "UNSEEN", "2 3 4" },
		{ "RECENT", "4" },         { "NEW", "4" },          { "OLD", "1 2 3" },
		{ "KEYWORD $Work", "2" },  { "KEYWORD $work", "2" }, { "UNKEYWORD $Work", "1 3 4" },
		{ "KEYWORD Nope", "" },    { "UNKEYWORD Nope", "1 2 3 4" },
		{ "KEYWORD \\Seen", "1" }, { "UNKEYWORD \\Seen", "2 3 4" },
		{ "2:3", "2 3" },          { "*", "4" },            { "2,4 UNSEEN", "2 4" },
		{ "4:2", "2 3 4" },        { "UID 20:*", "3 4" },   { "UID 11,21", "2 4" },
		{ "UID 99", "" },          { "UID 1:9", "" },       { "UID 25:*", "4" },
		{ "seen answered", "1" },  { "SEEN FLAGGED", "" },
		{ "OR SEEN FLAGGED", "1 2" },
		{ "NOT SEEN", "2 3 4" },   { "NOT NOT SEEN", "1" },
		{ "(OR SEEN DRAFT) NOT 3", "1" },
		{ "OR (SEEN ANSWERED) (DRAFT UNSEEN)", "1 3" },
		{ "NOT (OR SEEN (OR FLAGGED RECENT))", "3" },
		{ "OR OR SEEN FLAGGED DRAFT", "1 2 3" },
		{ "((((ALL))))", "1 2 3 4" },
		{ "LARGER 1000", "3" },    { "SMALLER 1000", "1 2 4" }, { "LARGER 100000", "" },
		{ "BEFORE 4-Feb-2020", "" }, { "ON 4-Feb-2020", "1" }, { "ON \"04-feb-2020\"", "1" },
		{ "SINCE 1-Jan-2022", "3 4" }, { "BEFORE 1-Jan-2022", "1 2" }, { "SINCE 11-Mar-2021 BEFORE 2-Jan-2022", "3" },
		/* SENT*: the Date header's day as written; no Date header, no match */
		{ "SENTON 3-Feb-2020", "1" }, { "SENTON 4-Feb-2020", "" },
		{ "SENTBEFORE 1-Jan-2021", "1" }, { "SENTSINCE 1-Jan-2021", "2 4" },
		{ "SENTON 10-Mar-2021", "2" }, { "NOT SENTON 10-Mar-2021", "1 3 4" },
	};
	struct t t;
	t_open(&t);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		t_search(&t, "SEARCH", cases[i].keys, cases[i].want);
	t_search(&t, "UID SEARCH", "ALL", "10 11 20 21");
	t_search(&t, "UID SEARCH", "2:3", "11 20");
	t_search(&t, "UID SEARCH", "UID 11:20 UNSEEN", "11 20");
	t_search(&t, "SEARCH", "CHARSET US-ASCII SEEN", "1");
	t_search(&t, "SEARCH", "charset utf-8 SEEN", "1");
	t_close(&t);
}
END_TEST

START_TEST(search_text)
{
	static const struct {
		const char *keys, *want;
	} cases[] = {
		{ "FROM alice", "1" },          { "FROM \"BOB@\"", "2" },  { "TO bob", "1" },
		{ "TO alice", "2" },            { "CC carol", "1" },       { "BCC dave", "4" },
		{ "CC \"\"", "1" },             { "SUBJECT meeting", "2" }, { "SUBJECT \"from ALICE\"", "1" },
		{ "HEADER X-Tag alpha", "1" },  { "HEADER x-tag \"\"", "1" }, { "HEADER X-None \"\"", "" },
		{ "HEADER Content-Type iso-8859", "3" },
		{ "BODY swordfish", "1" },      { "BODY password", "1" },  { "BODY alice", "" },
		{ "BODY \"secret meeting\"", "2" }, { "BODY agenda", "2" }, { "BODY VGhl", "" },
		{ "TEXT alice", "1 2" },         { "TEXT swordfish", "1" },  { "TEXT \"filler line\"", "3" },
		{ "TEXT \"\"", "1 2 3 4" },      { "BODY \"\"", "1 2 3 4" },
		{ "OR BODY swordfish BODY agenda", "1 2" },
		{ "NOT BODY swordfish", "2 3 4" },
		{ "SEEN BODY agenda", "" },      { "FLAGGED NOT FROM alice", "2" },
		{ "OR SEEN SUBJECT hello", "1 4" },
	};
	struct t t;
	t_open(&t);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		t_search(&t, "SEARCH", cases[i].keys, cases[i].want);
	/* 8-bit search strings come as literals: RFC 2047 and Latin-1 text
	 * are compared in UTF-8, case folded */
	t_search(&t, "SEARCH", "CHARSET UTF-8 SUBJECT {7+}\r\nGR\xc3\x9c\xc3\x9f" "E", "1");
	t_search(&t, "SEARCH", "CHARSET UTF-8 BODY {5+}\r\nCAF\xc3\x89", "3");
	t_search(&t, "SEARCH", "CHARSET UTF-8 TEXT {5+}\r\ncaf\xc3\xa9", "3");
	/* a message whose file vanished matches no text key */
	fake_make_gone(&t.f, ACCOUNT, "INBOX", 10);
	t_search(&t, "SEARCH", "BODY swordfish", "");
	t_search(&t, "SEARCH", "SEEN", "1");
	t_close(&t);
}
END_TEST

START_TEST(search_errors)
{
	static const char *const bad[] = {
		"s SEARCH\r\n",
		"s SEARCH FOO\r\n",
		"s SEARCH BEFORE 32-Jan-2020\r\n",
		"s SEARCH BEFORE 1-Foo-2020\r\n",
		"s SEARCH SENTON 31-Feb-2020\r\n",
		"s SEARCH ON 1-Jan-20\r\n",
		"s SEARCH LARGER x\r\n",
		"s SEARCH OR SEEN\r\n",
		"s SEARCH NOT\r\n",
		"s SEARCH HEADER X\r\n",
		"s SEARCH ()\r\n",
		"s SEARCH 0\r\n",
		"s SEARCH 1:x\r\n",
		"s SEARCH UID\r\n",
		"s SEARCH CHARSET\r\n",
		"s SEARCH CHARSET UTF-8\r\n",
		"s SEARCH (SEEN\r\n",
		"s SEARCH KEYWORD (a)\r\n",
	};
	struct t t;
	t_open(&t);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		t_feed(&t, bad[i], false);
		char *out = t_take(&t);
		ck_assert_msg(strncmp(out, "s BAD ", 6) == 0, "%s: %s", bad[i], out);
		free(out);
		t_feed(&t, "n NOOP\r\n", false);
		free(t_take(&t));
	}
	t_expect(&t, "s SEARCH CHARSET ISO-8859-1 SEEN\r\n", "s NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset\r\n");
	t_expect(&t, "s SEARCH CHARSET KOI8-R ALL\r\n", "s NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset\r\n");
	t_close(&t);
}
END_TEST

/* A result line far longer than the output limit goes out in steps. */
START_TEST(search_long_answer)
{
	cfg.write_buffer_max = 16 * 1024;
	struct t t;
	t_open(&t);
	struct fake_box *b = fake_box_existing(&t.f, ACCOUNT, "INBOX");
	for (int i = 0; i < 20000; i++)
		fake_box_append(&t.f, b, S4, strlen(S4), i % 2 ? IMAP_SEEN : 0, 0, 1000);
	fake_notify(&t.f, b, IMAP_CHANGE_NEW, 22, b->uidnext - 1);
	t_feed(&t, "n NOOP\r\n", false);
	free(t_take(&t));
	t.drains = 0;
	t.step_max = 0;
	t_feed(&t, "s UID SEARCH UNSEEN\r\n", false);
	char *out = t_take(&t);
	ck_assert_uint_ge(t.drains, 5);
	ck_assert_uint_le(t.step_max, cfg.write_buffer_max);
	/* uids 22, 24, ... of the new ones, after 11 and 20 and 21 */
	ck_assert(strncmp(out, "* SEARCH 11 20 21 22 24 26 ", 27) == 0);
	size_t count = 0;
	for (const char *p = out; *p != '\r'; p++)
		count += *p == ' ';
	ck_assert_uint_eq(count, 1 + 3 + 10000);
	ck_assert(strstr(out, " 20020\r\ns OK UID SEARCH completed\r\n") != NULL);
	free(out);
	t_close(&t);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("imap_search");
	TCase *tc = tcase_create("text");
	tcase_add_test(tc, test_fold);
	tcase_add_test(tc, test_headers);
	tcase_add_test(tc, test_encoded_words);
	tcase_add_test(tc, test_bodies);
	tcase_add_test(tc, test_bare_lf_and_long);
	tcase_add_test(tc, test_dates);
	suite_add_tcase(s, tc);
	tc = tcase_create("command");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, search_flags_and_numbers);
	tcase_add_test(tc, search_text);
	tcase_add_test(tc, search_errors);
	tcase_add_test(tc, search_long_answer);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(suite());
}
