/* FETCH and UID FETCH over the session and the fake backend
 * (test_imap_fake.h): every item and macro, every kind of section against
 * the in-memory reference (mime_section_fetch), partials, \Seen (set, not
 * set by PEEK, not set read-only), output that is far larger than the
 * session's output limit, messages expunged meanwhile and bad syntax. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/session.h"
#include "imap/imap_session.h"
#include "mime/mime_bodystructure.h"
#include "mime/mime_envelope.h"
#include "mime/mime_section.h"
#include "imap_drain_harness.h"

/* A multipart with a nested message/rfc822 that is multipart itself. */
#define M_MULTI                                                                                   \
	"From: Alice <alice@example.org>\r\n"                                                     \
	"To: Bob <bob@example.test>, carol@example.net\r\n"                                       \
	"Subject: Multi\r\n"                                                                      \
	"Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n"                                                \
	"Message-ID: <m1@example.org>\r\n"                                                        \
	"MIME-Version: 1.0\r\n"                                                                   \
	"Content-Type: multipart/mixed; boundary=\"b1\"\r\n"                                      \
	"\r\n"                                                                                    \
	"preamble\r\n"                                                                            \
	"--b1\r\n"                                                                                \
	"Content-Type: text/plain; charset=us-ascii\r\n"                                          \
	"\r\n"                                                                                    \
	"part one\r\n"                                                                            \
	"--b1\r\n"                                                                                \
	"Content-Type: message/rfc822\r\n"                                                        \
	"\r\n"                                                                                    \
	"From: Carol <carol@example.net>\r\n"                                                     \
	"Subject: Inner\r\n"                                                                      \
	"MIME-Version: 1.0\r\n"                                                                   \
	"Content-Type: multipart/alternative; boundary=\"b2\"\r\n"                                \
	"\r\n"                                                                                    \
	"--b2\r\n"                                                                                \
	"Content-Type: text/plain\r\n"                                                            \
	"\r\n"                                                                                    \
	"inner plain\r\n"                                                                         \
	"--b2\r\n"                                                                                \
	"Content-Type: text/html\r\n"                                                             \
	"\r\n"                                                                                    \
	"<p>inner html</p>\r\n"                                                                   \
	"--b2--\r\n"                                                                              \
	"--b1--\r\n"
#define M_LF "Subject: bare\nX-Other: one\n  folded\n\nline one\nline two\n"
#define M_NUL "Subject: nul\r\n\r\na\0b\r\n"
#define M_NUL_LEN (sizeof(M_NUL) - 1)

static void t_expect(struct t *t, const char *in, const char *want)
{
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		t_feed(t, in, bytewise);
		char *out = t_take(t);
		ck_assert_msg(strcmp(out, want) == 0, "input %s(bytewise=%d)\ngot:\n%s\nwant:\n%s", in, bytewise, out,
			      want);
		free(out);
	}
}

static struct fake_box *t_inbox(struct t *t)
{
	return fake_box_existing(&t->f, ACCOUNT, "INBOX");
}

/* A session logged in as bob with INBOX selected (EXAMINEd when
 * read_only) holding the three messages above. */
static void t_open(struct t *t, bool read_only)
{
	t_init(t);
	struct fake_box *b = t_inbox(t);
	fake_box_append(&t->f, b, M_MULTI, strlen(M_MULTI), IMAP_FLAGGED, 0, 1057049557);
	fake_box_append(&t->f, b, M_LF, strlen(M_LF), IMAP_SEEN, 0, 1700000000);
	fake_box_append(&t->f, b, M_NUL, M_NUL_LEN, 0, 0, 86400 * 365);
	b->recent_upto = b->uidnext;   /* nothing \Recent: simpler FLAGS */
	t_login(t, read_only);
}

/* The reference answer for BODY[spec] of msg, from the MIME module. */
static char *ref_section(const char *msg, size_t len, const char *spec, size_t *len_r)
{
	struct mime_tree *tree = mime_parse(msg, len);
	struct mime_section sec;
	const char *error;
	struct buf out;

	buf_init(&out, 1 << 24);
	ck_assert_int_eq(mime_section_resolve(tree, spec, strlen(spec), &sec, &error), 0);
	ck_assert_int_eq(mime_section_fetch(&sec, msg, len, &out), 0);
	mime_section_free(&sec);
	mime_tree_free(&tree);
	char *s = xmalloc(buf_len(&out) + 1);
	memcpy(s, buf_ptr(&out), buf_len(&out));
	s[buf_len(&out)] = '\0';
	*len_r = buf_len(&out);
	buf_free(&out);
	return s;
}

/* "* seq FETCH (label {n}\r\nbytes)\r\ntag OK ..." with the reference
 * bytes, the partial window [origin, origin+plen) applied. */
static void expect_section(struct t *t, uint32_t seq, const char *msg, size_t msglen, const char *cmd_spec,
			   const char *spec, const char *label, int64_t origin, int64_t plen)
{
	size_t rlen;
	char *ref = ref_section(msg, msglen, spec, &rlen);
	size_t from = 0, n = rlen;
	if (origin >= 0) {
		from = (size_t)origin < rlen ? (size_t)origin : rlen;
		n = rlen - from;
		if (plen >= 0 && (size_t)plen < n)
			n = (size_t)plen;
	}
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "f FETCH %u %s\r\n", seq, cmd_spec);
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		t_feed(t, cmd, bytewise);
		size_t olen;
		char *out = t_take_len(t, &olen);
		char head[512];
		int hn = snprintf(head, sizeof(head), "* %u FETCH (%s {%zu}\r\n", seq, label, n);
		const char *tail = ")\r\nf OK FETCH completed\r\n";
		ck_assert_msg(olen == (size_t)hn + n + strlen(tail), "%s: length %zu, want %zu:\n%s", cmd, olen,
			      (size_t)hn + n + strlen(tail), out);
		ck_assert_msg(memcmp(out, head, (size_t)hn) == 0, "%s: got\n%s", cmd, out);
		ck_assert_msg(memcmp(out + hn, ref + from, n) == 0, "%s: bytes differ:\n%s", cmd, out);
		ck_assert_msg(memcmp(out + hn + n, tail, strlen(tail)) == 0, "%s: got\n%s", cmd, out);
		free(out);
	}
	free(ref);
}

START_TEST(fetch_simple_items)
{
	struct t t;
	t_open(&t, false);
	t_expect(&t, "f FETCH 1 FLAGS\r\n", "* 1 FETCH (FLAGS (\\Flagged))\r\nf OK FETCH completed\r\n");
	t_expect(&t, "f FETCH 1:3 (UID RFC822.SIZE)\r\n",
		 "* 1 FETCH (UID 1 RFC822.SIZE 578)\r\n* 2 FETCH (UID 2 RFC822.SIZE 61)\r\n"
		 "* 3 FETCH (UID 3 RFC822.SIZE 21)\r\nf OK FETCH completed\r\n");
	t_expect(&t, "f FETCH 2,1 INTERNALDATE\r\n",
		 "* 1 FETCH (INTERNALDATE \"01-Jul-2003 08:52:37 +0000\")\r\n"
		 "* 2 FETCH (INTERNALDATE \"14-Nov-2023 22:13:20 +0000\")\r\nf OK FETCH completed\r\n");
	t_expect(&t, "f FETCH 3 FAST\r\n",
		 "* 3 FETCH (FLAGS () INTERNALDATE \"01-Jan-1971 00:00:00 +0000\" RFC822.SIZE 21)\r\n"
		 "f OK FETCH completed\r\n");
	/* UID FETCH: UID first and once */
	t_expect(&t, "u UID FETCH 2:3 (FLAGS UID)\r\n",
		 "* 2 FETCH (UID 2 FLAGS (\\Seen))\r\n* 3 FETCH (UID 3 FLAGS ())\r\nu OK UID FETCH completed\r\n");
	t_expect(&t, "u UID FETCH 3 uid\r\n", "* 3 FETCH (UID 3)\r\nu OK UID FETCH completed\r\n");

	/* ENVELOPE, BODY and BODYSTRUCTURE are the MIME module's */
	struct mime_tree *tree = mime_parse(M_MULTI, strlen(M_MULTI));
	struct buf env, body, bs, want;
	buf_init(&env, 1 << 16);
	buf_init(&body, 1 << 16);
	buf_init(&bs, 1 << 16);
	buf_init(&want, 1 << 18);
	ck_assert_int_eq(mime_envelope_write(tree->root->envelope, &env), 0);
	ck_assert_int_eq(mime_bodystructure_write(tree->root, false, &body), 0);
	ck_assert_int_eq(mime_bodystructure_write(tree->root, true, &bs), 0);
	buf_printf(&want, "* 1 FETCH (ENVELOPE %.*s BODY %.*s BODYSTRUCTURE %.*s)\r\nf OK FETCH completed\r\n",
		   (int)buf_len(&env), buf_ptr(&env), (int)buf_len(&body), buf_ptr(&body), (int)buf_len(&bs),
		   buf_ptr(&bs));
	buf_append(&want, "", 1);
	t_expect(&t, "f FETCH 1 (ENVELOPE BODY BODYSTRUCTURE)\r\n", buf_ptr(&want));
	buf_append(&env, "", 1);
	ck_assert(strstr(buf_ptr(&env), "\"Multi\"") != NULL);
	env.len--;
	buf_reset(&want);
	buf_printf(&want,
		   "* 1 FETCH (FLAGS (\\Flagged) INTERNALDATE \"01-Jul-2003 08:52:37 +0000\" RFC822.SIZE 578 "
		   "ENVELOPE %.*s BODY %.*s)\r\nf OK FETCH completed\r\n",
		   (int)buf_len(&env), buf_ptr(&env), (int)buf_len(&body), buf_ptr(&body));
	buf_append(&want, "", 1);
	t_expect(&t, "f FETCH 1 FULL\r\n", buf_ptr(&want));
	buf_reset(&want);
	buf_printf(&want,
		   "* 1 FETCH (FLAGS (\\Flagged) INTERNALDATE \"01-Jul-2003 08:52:37 +0000\" RFC822.SIZE 578 "
		   "ENVELOPE %.*s)\r\nf OK FETCH completed\r\n",
		   (int)buf_len(&env), buf_ptr(&env));
	buf_append(&want, "", 1);
	t_expect(&t, "f FETCH 1 all\r\n", buf_ptr(&want));
	buf_free(&env);
	buf_free(&body);
	buf_free(&bs);
	buf_free(&want);
	mime_tree_free(&tree);
	t_close(&t);
}
END_TEST

START_TEST(fetch_sections)
{
	static const struct {
		const char *spec;
	} specs[] = {
		{ "" },          { "HEADER" },   { "TEXT" },      { "1" },        { "1.MIME" },  { "2" },
		{ "2.MIME" },    { "2.HEADER" }, { "2.TEXT" },    { "2.1" },      { "2.2" },     { "2.2.MIME" },
		{ "2.1.TEXT" },  { "3" },        { "9.9" },       { "1.HEADER" }, { "2.1.1" },
		{ "HEADER.FIELDS (Subject From)" }, { "HEADER.FIELDS.NOT (Subject Date Message-ID)" },
		{ "2.HEADER.FIELDS (subject)" },    { "HEADER.FIELDS (X-None)" },
	};
	struct t t;
	t_open(&t, false);
	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		char cmd[256], label[256];
		snprintf(cmd, sizeof(cmd), "BODY.PEEK[%s]", specs[i].spec);
		snprintf(label, sizeof(label), "BODY[%s]", specs[i].spec);
		expect_section(&t, 1, M_MULTI, strlen(M_MULTI), cmd, specs[i].spec, label, -1, -1);
		expect_section(&t, 2, M_LF, strlen(M_LF), cmd, specs[i].spec, label, -1, -1);
		expect_section(&t, 3, M_NUL, M_NUL_LEN, cmd, specs[i].spec, label, -1, -1);
	}
	/* Hand-checked answers for the reference's corners. */
	t_expect(&t, "f FETCH 2 BODY.PEEK[TEXT]\r\n",
		 "* 2 FETCH (BODY[TEXT] {20}\r\nline one\r\nline two\r\n)\r\nf OK FETCH completed\r\n");
	t_expect(&t, "f FETCH 3 BODY.PEEK[TEXT]\r\n",
		 "* 3 FETCH (BODY[TEXT] {5}\r\na\x80" "b\r\n)\r\nf OK FETCH completed\r\n");
	t_expect(&t, "f FETCH 2 BODY.PEEK[HEADER.FIELDS (X-OTHER)]\r\n",
		 "* 2 FETCH (BODY[HEADER.FIELDS (X-OTHER)] {26}\r\nX-Other: one\r\n  folded\r\n\r\n)\r\n"
		 "f OK FETCH completed\r\n");
	t_expect(&t, "f FETCH 1 BODY.PEEK[2.2]\r\n",
		 "* 1 FETCH (BODY[2.2] {17}\r\n<p>inner html</p>)\r\nf OK FETCH completed\r\n");
	/* keywords in capitals, header names as sent */
	t_expect(&t, "f FETCH 2 body.peek[header.fields (subject)]\r\n",
		 "* 2 FETCH (BODY[HEADER.FIELDS (subject)] {17}\r\nSubject: bare\r\n\r\n)\r\nf OK FETCH completed\r\n");
	/* RFC822.HEADER does not set \Seen; several literals in one response */
	t_expect(&t, "f FETCH 3 (RFC822.HEADER RFC822.SIZE BODY.PEEK[TEXT]<1.2>)\r\n",
		 "* 3 FETCH (RFC822.HEADER {16}\r\nSubject: nul\r\n\r\n RFC822.SIZE 21 BODY[TEXT]<1> {2}\r\n\x80" "b)\r\n"
		 "f OK FETCH completed\r\n");
	t_close(&t);
}
END_TEST

START_TEST(fetch_partials)
{
	static const struct {
		int64_t origin, len;
	} windows[] = { { 0, 10 }, { 5, -1 }, { 0, 0 }, { 679, 5 }, { 680, 5 }, { 100000, 3 }, { 3, 1 },
				{ 12, 30 }, { 32, 5 }, { 33, 2 } };
	struct t t;
	t_open(&t, false);
	for (size_t i = 0; i < sizeof(windows) / sizeof(windows[0]); i++) {
		static const char *const specs[] = { "", "TEXT", "HEADER.FIELDS (Subject)", "2.1" };
		for (size_t k = 0; k < sizeof(specs) / sizeof(specs[0]); k++) {
			char cmd[256], label[256];
			if (windows[i].len >= 0)
				snprintf(cmd, sizeof(cmd), "BODY.PEEK[%s]<%lld.%lld>", specs[k],
					 (long long)windows[i].origin, (long long)windows[i].len);
			else
				snprintf(cmd, sizeof(cmd), "BODY.PEEK[%s]<%lld>", specs[k], (long long)windows[i].origin);
			if (windows[i].len == 0)
				continue;  /* <n.0> is not valid IMAP */
			snprintf(label, sizeof(label), "BODY[%s]<%lld>", specs[k], (long long)windows[i].origin);
			expect_section(&t, 1, M_MULTI, strlen(M_MULTI), cmd, specs[k], label, windows[i].origin,
				       windows[i].len);
			/* the bare-LF message: converted bytes are counted */
			expect_section(&t, 2, M_LF, strlen(M_LF), cmd, specs[k], label, windows[i].origin,
				       windows[i].len);
		}
	}
	t_expect(&t, "f FETCH 2 BODY.PEEK[]<13.6>\r\n",
		 "* 2 FETCH (BODY[]<13> {6}\r\n\r\nX-Ot)\r\nf OK FETCH completed\r\n");
	t_expect(&t, "f FETCH 2 BODY.PEEK[]<900>\r\n", "* 2 FETCH (BODY[]<900> {0}\r\n)\r\nf OK FETCH completed\r\n");
	t_close(&t);
}
END_TEST

static uint32_t fake_flags_of(struct t *t, uint32_t uid)
{
	return fake_msg_find(t_inbox(t), uid)->flags;
}

START_TEST(fetch_sets_seen)
{
	struct t t;
	t_open(&t, false);
	/* PEEK and RFC822.HEADER leave \Seen alone */
	t_expect(&t, "f FETCH 1 (BODY.PEEK[1] RFC822.HEADER)\r\n",
		 "* 1 FETCH (BODY[1] {8}\r\npart one RFC822.HEADER {231}\r\n"
		 "From: Alice <alice@example.org>\r\nTo: Bob <bob@example.test>, carol@example.net\r\n"
		 "Subject: Multi\r\nDate: Tue, 1 Jul 2003 10:52:37 +0200\r\nMessage-ID: <m1@example.org>\r\n"
		 "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n)\r\n"
		 "f OK FETCH completed\r\n");
	ck_assert_uint_eq(fake_flags_of(&t, 1), IMAP_FLAGGED);

	/* BODY[1]: FLAGS comes with it, \Seen is stored before the OK, and
	 * the change notification that follows is not reported again. */
	t_feed(&t, "f FETCH 1 BODY[1]\r\n", false);
	char *out = t_take(&t);
	ck_assert_str_eq(out, "* 1 FETCH (BODY[1] {8}\r\npart one FLAGS (\\Flagged \\Seen))\r\nf OK FETCH completed\r\n");
	free(out);
	ck_assert_uint_eq(fake_flags_of(&t, 1), IMAP_FLAGGED | IMAP_SEEN);
	t_expect(&t, "n NOOP\r\n", "n OK NOOP completed\r\n");
	/* already \Seen: no FLAGS, nothing stored */
	t_expect(&t, "f FETCH 1 BODY[1]\r\n", "* 1 FETCH (BODY[1] {8}\r\npart one)\r\nf OK FETCH completed\r\n");

	/* RFC822.TEXT sets it too; FLAGS asked for is not repeated */
	t_feed(&t, "f FETCH 3 (FLAGS RFC822.TEXT)\r\n", false);
	out = t_take(&t);
	ck_assert_str_eq(out, "* 3 FETCH (FLAGS (\\Seen) RFC822.TEXT {5}\r\na\x80" "b\r\n)\r\nf OK FETCH completed\r\n");
	free(out);
	ck_assert_uint_eq(fake_flags_of(&t, 3), IMAP_SEEN);

	/* RFC822 on a range: only the unseen get FLAGS; UID FETCH too */
	fake_set_flags(&t.f, ACCOUNT, "INBOX", 3, 0);
	t_feed(&t, "n NOOP\r\n", false);
	free(t_take(&t));
	t_feed(&t, "u UID FETCH 2:3 RFC822\r\n", false);
	out = t_take(&t);
	ck_assert_str_eq(out, "* 2 FETCH (UID 2 RFC822 {61}\r\nSubject: bare\r\nX-Other: one\r\n  folded\r\n\r\n"
			      "line one\r\nline two\r\n)\r\n"
			      "* 3 FETCH (UID 3 RFC822 {21}\r\nSubject: nul\r\n\r\na\x80" "b\r\n FLAGS (\\Seen))\r\n"
			      "u OK UID FETCH completed\r\n");
	free(out);
	ck_assert_uint_eq(fake_flags_of(&t, 3), IMAP_SEEN);
	t_close(&t);
}
END_TEST

START_TEST(fetch_read_only_keeps_seen)
{
	struct t t;
	t_open(&t, true);
	t_expect(&t, "f FETCH 3 BODY[TEXT]\r\n", "* 3 FETCH (BODY[TEXT] {5}\r\na\x80" "b\r\n)\r\nf OK FETCH completed\r\n");
	ck_assert_uint_eq(fake_flags_of(&t, 3), 0);
	ck_assert_uint_eq(t.f.n_pending, 0);
	t_close(&t);
}
END_TEST

START_TEST(fetch_seen_store_fails)
{
	struct t t;
	t_open(&t, false);
	t.f.fail = IMAP_TEMPFAIL;
	t_feed(&t, "f FETCH 3 BODY[TEXT]\r\n", false);
	char *out = t_take(&t);
	ck_assert_str_eq(out, "* 3 FETCH (BODY[TEXT] {5}\r\na\x80" "b\r\n FLAGS (\\Seen))\r\n"
			      "f NO [UNAVAILABLE] Temporary server failure, try again later\r\n");
	free(out);
	t_close(&t);
}
END_TEST

START_TEST(fetch_gone)
{
	struct t t;
	t_open(&t, false);
	fake_make_gone(&t.f, ACCOUNT, "INBOX", 2);
	t_expect(&t, "f FETCH 1:3 RFC822.SIZE\r\n",
		 "* 1 FETCH (RFC822.SIZE 578)\r\n* 3 FETCH (RFC822.SIZE 21)\r\n"
		 "f NO [EXPUNGEISSUED] Some messages were expunged\r\n");
	t_expect(&t, "f FETCH 2 BODY.PEEK[]\r\n", "f NO [EXPUNGEISSUED] Some messages were expunged\r\n");
	/* FLAGS alone needs no file */
	t_expect(&t, "f FETCH 2 FLAGS\r\n", "* 2 FETCH (FLAGS (\\Seen))\r\nf OK FETCH completed\r\n");
	/* gone before a body item: nothing marked \Seen */
	fake_make_gone(&t.f, ACCOUNT, "INBOX", 3);
	t_expect(&t, "f FETCH 3 BODY[]\r\n", "f NO [EXPUNGEISSUED] Some messages were expunged\r\n");
	ck_assert_uint_eq(t.f.n_pending, 0);
	/* expunged by another session: the view keeps its numbers, the
	 * EXPUNGE is not told after FETCH */
	fake_remove(&t.f, ACCOUNT, "INBOX", 1);
	t_expect(&t, "f FETCH 1 RFC822.SIZE\r\n", "f NO [EXPUNGEISSUED] Some messages were expunged\r\n");
	t_close(&t);
}
END_TEST

START_TEST(fetch_bad)
{
	static const char *const bad[] = {
		"f FETCH 4 FLAGS\r\n",
		"f FETCH 0 FLAGS\r\n",
		"f FETCH 1 (FOO)\r\n",
		"f FETCH 1 FOO\r\n",
		"f FETCH 1 ()\r\n",
		"f FETCH 1\r\n",
		"f FETCH 1 FLAGS FLAGS\r\n",
		"f FETCH 1 BINARY[]\r\n",
		"f FETCH 1 BODY.PEEK\r\n",
		"f FETCH 1 (FLAGS ALL)\r\n",
		"f FETCH 1 \"FLAGS\"\r\n",
		"f FETCH x FLAGS\r\n",
		"f FETCH 1 RFC822.PEEK[]\r\n",
	};
	struct t t;
	t_open(&t, false);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		t_feed(&t, bad[i], false);
		char *out = t_take(&t);
		ck_assert_msg(strncmp(out, "f BAD ", 6) == 0, "%s: %s", bad[i], out);
		free(out);
		/* the bad-command counter must not end the session here */
		t_feed(&t, "n NOOP\r\n", false);
		free(t_take(&t));
	}
	t_close(&t);

	/* UIDs that are not there are skipped; none at all is a plain OK */
	t_open(&t, false);
	t_expect(&t, "u UID FETCH 7:9 FLAGS\r\n", "u OK UID FETCH completed\r\n");
	t_expect(&t, "u UID FETCH 3:* FLAGS\r\n", "* 3 FETCH (UID 3 FLAGS ())\r\nu OK UID FETCH completed\r\n");
	t_close(&t);
}
END_TEST

/* FETCH output far beyond the session's output limit goes out in bounded
 * steps, byte-exact. */
START_TEST(fetch_drains_big_output)
{
	cfg.write_buffer_max = 64 * 1024;
	struct t t;
	t_open(&t, false);
	/* a 1 MiB message with bare LFs (every line grows by one byte) */
	size_t n = 1 << 20;
	char *big = xmalloc(n + 64);
	size_t off = (size_t)sprintf(big, "Subject: big\n\n");
	size_t lines = 0;
	while (off + 40 < n) {
		off += (size_t)sprintf(big + off, "line %06zu of the big test message\n", lines++);
	}
	big[off] = '\0';
	fake_deliver(&t.f, ACCOUNT, "INBOX", big);
	t_feed(&t, "n NOOP\r\n", false);
	free(t_take(&t));

	t.drains = 0;
	t.step_max = 0;
	expect_section(&t, 4, big, off, "BODY.PEEK[]", "", "BODY[]", -1, -1);
	ck_assert_uint_ge(t.drains, 2 * 16);
	ck_assert_uint_le(t.step_max, cfg.write_buffer_max);
	/* partials in the middle of the converted bytes, and TEXT */
	expect_section(&t, 4, big, off, "BODY.PEEK[TEXT]<500000.300000>", "TEXT", "BODY[TEXT]<500000>", 500000, 300000);
	expect_section(&t, 4, big, off, "BODY.PEEK[HEADER.FIELDS.NOT (X)]", "HEADER.FIELDS.NOT (X)",
		       "BODY[HEADER.FIELDS.NOT (X)]", -1, -1);

	/* a command pipelined behind a long FETCH waits for its end */
	t_feed(&t, "f FETCH 4 BODY.PEEK[TEXT]<0.200000>\r\nn NOOP\r\n", false);
	size_t plen;
	char *piped = t_take_len(&t, &plen);
	const char *tail = ")\r\nf OK FETCH completed\r\nn OK NOOP completed\r\n";
	ck_assert_uint_gt(plen, 200000);
	ck_assert_str_eq(piped + plen - strlen(tail), tail);
	free(piped);

	/* many messages: ENVELOPE BODYSTRUCTURE of each, in steps */
	struct fake_box *b = t_inbox(&t);
	for (int i = 0; i < 3000; i++)
		fake_box_append(&t.f, b, M_MULTI, strlen(M_MULTI), 0, 0, 1000);
	fake_notify(&t.f, b, IMAP_CHANGE_NEW, 5, 3004);
	t_feed(&t, "n NOOP\r\n", false);
	free(t_take(&t));
	t.drains = 0;
	t.step_max = 0;
	t_feed(&t, "f FETCH 5:* (ENVELOPE BODYSTRUCTURE)\r\n", false);
	size_t olen;
	char *out = t_take_len(&t, &olen);
	ck_assert_uint_ge(t.drains, 10);
	ck_assert_uint_le(t.step_max, cfg.write_buffer_max);
	size_t count = 0;
	for (const char *p = out; (p = strstr(p, " FETCH (ENVELOPE (")) != NULL; p++)
		count++;
	ck_assert_uint_eq(count, 3000);
	ck_assert(strstr(out, "* 3004 FETCH (ENVELOPE") != NULL);
	ck_assert_str_eq(out + olen - strlen("f OK FETCH completed\r\n"), "f OK FETCH completed\r\n");
	free(out);
	free(big);
	t_close(&t);
}
END_TEST

/* One response far larger than the output limit, made of many items. */
START_TEST(fetch_many_items)
{
	cfg.write_buffer_max = 16 * 1024;
	struct t t;
	t_open(&t, false);
	struct buf cmd;
	buf_init(&cmd, 1 << 16);
	buf_printf(&cmd, "f FETCH 1 (BODYSTRUCTURE");
	for (int i = 0; i < 199; i++)
		buf_printf(&cmd, " BODYSTRUCTURE");
	buf_printf(&cmd, " UID)\r\n");
	buf_append(&cmd, "", 1);
	t.drains = 0;
	t.step_max = 0;
	t_feed(&t, buf_ptr(&cmd), false);
	char *out = t_take(&t);
	ck_assert_msg(t.drains >= 4, "%.300s", out);
	ck_assert_uint_le(t.step_max, cfg.write_buffer_max);
	size_t count = 0;
	for (const char *p = out; (p = strstr(p, "BODYSTRUCTURE ((\"text\" \"plain\"")) != NULL; p++)
		count++;
	ck_assert_uint_eq(count, 200);
	ck_assert(strncmp(out, "* 1 FETCH (BODYSTRUCTURE ((", 27) == 0);
	ck_assert(strstr(out, "\"mixed\" (\"boundary\" \"b1\") NIL NIL NIL) UID 1)\r\nf OK FETCH completed\r\n") != NULL);
	free(out);
	buf_free(&cmd);
	t_close(&t);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("imap_fetch");
	TCase *tc = tcase_create("fetch");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, fetch_simple_items);
	tcase_add_test(tc, fetch_sections);
	tcase_add_test(tc, fetch_partials);
	tcase_add_test(tc, fetch_sets_seen);
	tcase_add_test(tc, fetch_read_only_keeps_seen);
	tcase_add_test(tc, fetch_seen_store_fails);
	tcase_add_test(tc, fetch_gone);
	tcase_add_test(tc, fetch_bad);
	tcase_add_test(tc, fetch_drains_big_output);
	tcase_add_test(tc, fetch_many_items);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(suite());
}
