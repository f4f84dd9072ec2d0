/* Unit tests for src/smtp/dsn.c: whether a DSN is due, and the rendered
 * report, taken apart again with a small MIME splitter so that every part
 * and every field is checked where it must be. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "smtp/dsn.h"
#include "testutil.h"

#define NOW ((time_t)1700000000)      /* Tue, 14 Nov 2023 22:13:20 +0000 */
#define ARRIVAL ((time_t)1699990000)  /* Tue, 14 Nov 2023 19:26:40 +0000 */

static const char ORIGINAL[] = "Return-Path: <alice@example.net>\n"
			       "From: Alice <alice@example.net>\n"
			       "To: bob@example.org\n"
			       "Subject: lunch\n"
			       "Message-ID: <1@example.net>\n"
			       "\n"
			       "Shall we?\n"
			       "--\n"
			       "Alice\n";
static const char ORIGINAL_HEADERS[] = "Return-Path: <alice@example.net>\n"
				       "From: Alice <alice@example.net>\n"
				       "To: bob@example.org\n"
				       "Subject: lunch\n"
				       "Message-ID: <1@example.net>\n";

/* ---- reading the original from memory ---- */

struct mem {
	const char *data;
	size_t len;
	size_t max_read;     /* pieces of at most this (0: any) */
	bool fail;
};

static ssize_t mem_read(void *ctx, uint64_t off, void *buf, size_t len)
{
	struct mem *m = ctx;
	if (m->fail)
		return -1;
	if (off >= m->len)
		return 0;
	size_t n = m->len - (size_t)off;
	if (n > len)
		n = len;
	if (m->max_read && n > m->max_read)
		n = m->max_read;
	memcpy(buf, m->data + off, n);
	return (ssize_t)n;
}

static int buf_wr(void *ctx, const void *data, size_t len)
{
	return buf_append(ctx, data, len);
}

/* ---- a minimal MIME splitter ---- */

struct part {
	const char *hdr;     /* header lines, each ending in LF */
	size_t hdr_len;
	const char *body;
	size_t body_len;
};

struct report {
	struct buf raw;      /* NUL-terminated copy */
	struct smtp_dsn_info info;
	struct part top;
	char boundary[128];
	int n_parts;
	struct part parts[4];
};

static void split_part(const char *p, size_t len, struct part *out)
{
	const char *end = p + len;
	const char *blank = NULL;
	/* The header ends at the first empty line (or at once if the part
	 * starts with one). */
	if (len > 0 && p[0] == '\n') {
		blank = p;
	} else {
		for (const char *q = p; q + 1 < end; q++) {
			if (q[0] == '\n' && q[1] == '\n') {
				blank = q + 1;
				break;
			}
		}
	}
	ck_assert_ptr_nonnull(blank);
	out->hdr = p;
	out->hdr_len = (size_t)(blank - p);
	out->body = blank + 1;
	out->body_len = (size_t)(end - (blank + 1));
}

/* The value of header field name (without case) in h[0..len), unfolded
 * into out; NULL when absent. */
static const char *field(const char *h, size_t len, const char *name, char *out, size_t size)
{
	size_t nl = strlen(name);
	const char *end = h + len;

	for (const char *line = h; line < end;) {
		const char *eol = memchr(line, '\n', (size_t)(end - line));
		if (eol == NULL)
			eol = end;
		if ((size_t)(eol - line) > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
			size_t o = 0;
			const char *v = line + nl + 1;
			while (v < eol && *v == ' ')
				v++;
			for (;;) {
				while (v < eol && o + 1 < size)
					out[o++] = *v++;
				/* continuation lines start with white space */
				if (eol + 1 < end && (eol[1] == ' ' || eol[1] == '\t')) {
					v = eol + 1;
					eol = memchr(v, '\n', (size_t)(end - v));
					if (eol == NULL)
						eol = end;
					continue;
				}
				break;
			}
			out[o] = '\0';
			return out;
		}
		line = eol + 1;
	}
	return NULL;
}

/* Take the rendered report apart: top header, boundary, parts. Checks on
 * the way that the structure is sound. */
static void take_apart(struct report *r)
{
	const char *s = buf_ptr(&r->raw);
	size_t len = buf_len(&r->raw);
	char ct[512];

	ck_assert_ptr_null(memchr(s, '\0', len));
	split_part(s, len, &r->top);
	ck_assert_ptr_nonnull(field(r->top.hdr, r->top.hdr_len, "Content-Type", ct, sizeof(ct)));
	ck_assert_msg(strncmp(ct, "multipart/report; report-type=delivery-status;", 46) == 0, "%s", ct);
	const char *b = strstr(ct, "boundary=\"");
	ck_assert_ptr_nonnull(b);
	b += 10;
	const char *q = strchr(b, '"');
	ck_assert_ptr_nonnull(q);
	ck_assert_uint_le((size_t)(q - b), 70); /* RFC 2046 5.1.1 */
	snprintf(r->boundary, sizeof(r->boundary), "%.*s", (int)(q - b), b);

	/* Walk the body's lines: "--B" starts a part, "--B--" ends them all;
	 * the LF before a delimiter belongs to it. */
	char open[160], close[160];
	snprintf(open, sizeof(open), "--%s", r->boundary);
	snprintf(close, sizeof(close), "--%s--", r->boundary);
	const char *body = r->top.body, *end = body + r->top.body_len;
	const char *part_start = NULL;
	bool closed = false;
	r->n_parts = 0;
	for (const char *line = body; line < end && !closed;) {
		const char *eol = memchr(line, '\n', (size_t)(end - line));
		ck_assert_ptr_nonnull(eol); /* every line ends in LF */
		size_t n = (size_t)(eol - line);
		bool is_open = n == strlen(open) && memcmp(line, open, n) == 0;
		bool is_close = n == strlen(close) && memcmp(line, close, n) == 0;
		/* Nothing else may start with the delimiter. */
		ck_assert(is_open || is_close || !(n >= strlen(open) && memcmp(line, open, strlen(open)) == 0));
		if (is_open || is_close) {
			if (part_start != NULL) {
				ck_assert_int_lt(r->n_parts, 4);
				size_t plen = line > part_start ? (size_t)(line - 1 - part_start) : 0;
				split_part(part_start, plen, &r->parts[r->n_parts++]);
			}
			part_start = eol + 1;
			closed = is_close;
		}
		line = eol + 1;
	}
	ck_assert(closed);
	ck_assert_msg(buf_ptr(&r->raw)[len - 1] == '\n', "no final LF");
	/* Output line ends are LF: no CR anywhere unless the original had one. */
}

static void render(const struct smtp_dsn *d, struct mem *m, struct report *r)
{
	const char *err = NULL;

	memset(r, 0, sizeof(*r));
	buf_init(&r->raw, 64 * 1024 * 1024);
	int rc = smtp_dsn_render(d, m ? mem_read : NULL, m, buf_wr, &r->raw, &r->info, &err);
	ck_assert_msg(rc == 0, "render: %s", err ? err : "?");
	ck_assert_uint_eq(r->info.size, buf_len(&r->raw));
	buf_append(&r->raw, "", 1);
	r->raw.len--; /* NUL after the data for strstr */
	take_apart(r);
}

static bool part_has(const struct part *p, const char *needle)
{
	size_t n = strlen(needle);
	for (size_t i = 0; i + n <= p->body_len; i++) {
		if (memcmp(p->body + i, needle, n) == 0)
			return true;
	}
	return false;
}

static bool hdr_is(const struct part *p, const char *name, const char *want)
{
	char v[1024];
	if (field(p->hdr, p->hdr_len, name, v, sizeof(v)) == NULL)
		return want == NULL;
	return want != NULL && strcmp(v, want) == 0;
}

/* A failed recipient as the queue would describe it. */
static struct smtp_dsn_rcpt failed_bob(void)
{
	struct smtp_dsn_rcpt r = {
		.address = "bob@example.org",
		.orcpt = "rfc822;Bob@Example.org",
		.action = SMTP_DSN_FAILED,
		.status = "5.1.1",
		.remote_mta = "mx.example.org",
		.diagnostic = "550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown",
		.last_attempt = NOW - 60,
	};
	return r;
}

static struct smtp_dsn dsn_for(const struct smtp_dsn_rcpt *rcpts, size_t n)
{
	struct smtp_dsn d = {
		.reporting_mta = "mail.example.net",
		.sender = "alice@example.net",
		.unique = "Q123.1",
		.now = NOW,
		.arrival = ARRIVAL,
		.rcpts = rcpts,
		.n_rcpts = n,
		.original_size = sizeof(ORIGINAL) - 1,
	};
	return d;
}

/* ---- tests ---- */

START_TEST(wanted)
{
	ck_assert(!smtp_dsn_wanted("", 0, SMTP_DSN_FAILED));       /* never bounce a bounce */
	ck_assert(!smtp_dsn_wanted(NULL, 0, SMTP_DSN_FAILED));
	ck_assert(!smtp_dsn_wanted("", SMTP_NOTIFY_FAILURE, SMTP_DSN_FAILED));
	ck_assert(smtp_dsn_wanted("a@b", 0, SMTP_DSN_FAILED));
	ck_assert(smtp_dsn_wanted("a@b", 0, SMTP_DSN_DELAYED));
	ck_assert(!smtp_dsn_wanted("a@b", SMTP_NOTIFY_NEVER, SMTP_DSN_FAILED));
	ck_assert(!smtp_dsn_wanted("a@b", SMTP_NOTIFY_NEVER, SMTP_DSN_DELAYED));
	ck_assert(smtp_dsn_wanted("a@b", SMTP_NOTIFY_FAILURE, SMTP_DSN_FAILED));
	ck_assert(!smtp_dsn_wanted("a@b", SMTP_NOTIFY_FAILURE, SMTP_DSN_DELAYED));
	ck_assert(!smtp_dsn_wanted("a@b", SMTP_NOTIFY_DELAY, SMTP_DSN_FAILED));
	ck_assert(smtp_dsn_wanted("a@b", SMTP_NOTIFY_DELAY, SMTP_DSN_DELAYED));
	ck_assert(!smtp_dsn_wanted("a@b", SMTP_NOTIFY_SUCCESS, SMTP_DSN_FAILED));
	ck_assert(!smtp_dsn_wanted("a@b", SMTP_NOTIFY_SUCCESS, SMTP_DSN_DELAYED));
	ck_assert(smtp_dsn_wanted("a@b", SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY,
				  SMTP_DSN_DELAYED));
}
END_TEST

START_TEST(dates)
{
	char d[32];
	ck_assert_str_eq(smtp_dsn_date(0, d), "Thu, 01 Jan 1970 00:00:00 +0000");
	ck_assert_str_eq(smtp_dsn_date(NOW, d), "Tue, 14 Nov 2023 22:13:20 +0000");
	ck_assert_str_eq(smtp_dsn_date(951782400, d), "Tue, 29 Feb 2000 00:00:00 +0000");
}
END_TEST

START_TEST(failed_headers_only)
{
	struct smtp_dsn_rcpt r = failed_bob();
	struct smtp_dsn d = dsn_for(&r, 1);
	struct mem m = { ORIGINAL, sizeof(ORIGINAL) - 1, 0, false };
	struct report rep;

	render(&d, &m, &rep);
	/* Top-level header. */
	const struct part *t = &rep.top;
	ck_assert(hdr_is(t, "From", "Mail Delivery System <MAILER-DAEMON@mail.example.net>"));
	ck_assert(hdr_is(t, "To", "<alice@example.net>"));
	ck_assert(hdr_is(t, "Subject", "Undelivered Mail Returned to Sender"));
	ck_assert(hdr_is(t, "Date", "Tue, 14 Nov 2023 22:13:20 +0000"));
	ck_assert(hdr_is(t, "Message-ID", "<Q123.1.dsn@mail.example.net>"));
	ck_assert(hdr_is(t, "Auto-Submitted", "auto-replied"));
	ck_assert(hdr_is(t, "MIME-Version", "1.0"));
	ck_assert(hdr_is(t, "Content-Transfer-Encoding", NULL));
	ck_assert_str_eq(rep.boundary, "=_postbote_Q123.1");
	ck_assert_int_eq(rep.n_parts, 3);

	/* 1: the human-readable part. */
	const struct part *h = &rep.parts[0];
	ck_assert(hdr_is(h, "Content-Type", "text/plain; charset=us-ascii"));
	ck_assert(part_has(h, "This is the mail delivery system at mail.example.net.\n"));
	ck_assert(part_has(h, "could not be delivered"));
	ck_assert(part_has(h, "\n<bob@example.org>: host mx.example.org said:\n"
			      "    550 5.1.1 <bob@example.org>: Recipient address rejected: User\n    unknown\n"));
	ck_assert(part_has(h, "The header of the original message is attached.\n"));

	/* 2: the machine-readable report, field by field in order. */
	const struct part *s = &rep.parts[1];
	ck_assert(hdr_is(s, "Content-Type", "message/delivery-status"));
	char want[1024];
	snprintf(want, sizeof(want),
		 "Reporting-MTA: dns; mail.example.net\n"
		 "Arrival-Date: Tue, 14 Nov 2023 19:26:40 +0000\n"
		 "\n"
		 "Original-Recipient: rfc822;Bob@Example.org\n"
		 "Final-Recipient: rfc822; bob@example.org\n"
		 "Action: failed\n"
		 "Status: 5.1.1\n"
		 "Remote-MTA: dns; mx.example.org\n"
		 "Diagnostic-Code: smtp; 550 5.1.1 <bob@example.org>: Recipient address\n"
		 " rejected: User unknown\n"
		 "Last-Attempt-Date: Tue, 14 Nov 2023 22:12:20 +0000\n");
	ck_assert_uint_eq(s->body_len, strlen(want));
	ck_assert_mem_eq(s->body, want, strlen(want));
	ck_assert(!part_has(s, "Will-Retry-Until"));
	ck_assert(!part_has(s, "Original-Envelope-Id"));

	/* 3: the original's header, exactly, without the empty line. */
	const struct part *o = &rep.parts[2];
	ck_assert(hdr_is(o, "Content-Type", "text/rfc822-headers"));
	ck_assert_uint_eq(o->body_len, strlen(ORIGINAL_HEADERS));
	ck_assert_mem_eq(o->body, ORIGINAL_HEADERS, strlen(ORIGINAL_HEADERS));

	ck_assert_int_eq(rep.info.returned, SMTP_DSN_RETURNED_HEADERS);
	ck_assert(!rep.info.eightbit && !rep.info.smtputf8 && !rep.info.full_too_big && !rep.info.headers_cut);
	ck_assert_ptr_null(memchr(buf_ptr(&rep.raw), '\r', buf_len(&rep.raw)));
	buf_free(&rep.raw);
}
END_TEST

START_TEST(ret_full)
{
	struct smtp_dsn_rcpt r = failed_bob();
	struct smtp_dsn d = dsn_for(&r, 1);
	d.ret = SMTP_RET_FULL;
	d.envid = "ENV-42";
	struct report rep;

	/* Read in small pieces: the walk must not care. */
	for (size_t piece = 0; piece < 8; piece++) {
		struct mem m = { ORIGINAL, sizeof(ORIGINAL) - 1, piece, false };
		render(&d, &m, &rep);
		ck_assert_int_eq(rep.n_parts, 3);
		const struct part *o = &rep.parts[2];
		ck_assert(hdr_is(o, "Content-Type", "message/rfc822"));
		ck_assert(hdr_is(o, "Content-Description", "Undelivered Message"));
		ck_assert_uint_eq(o->body_len, sizeof(ORIGINAL) - 1);
		ck_assert_mem_eq(o->body, ORIGINAL, sizeof(ORIGINAL) - 1);
		ck_assert(part_has(&rep.parts[1], "Original-Envelope-Id: ENV-42\n"));
		ck_assert(part_has(&rep.parts[0], "The original message is attached.\n"));
		ck_assert_int_eq(rep.info.returned, SMTP_DSN_RETURNED_FULL);
		buf_free(&rep.raw);
	}

	/* An original without a final line end comes back exactly too. */
	static const char nofinal[] = "Subject: x\n\nno newline";
	struct mem m2 = { nofinal, sizeof(nofinal) - 1, 0, false };
	d.original_size = sizeof(nofinal) - 1;
	render(&d, &m2, &rep);
	ck_assert_uint_eq(rep.parts[2].body_len, sizeof(nofinal) - 1);
	ck_assert_mem_eq(rep.parts[2].body, nofinal, sizeof(nofinal) - 1);
	buf_free(&rep.raw);
}
END_TEST

START_TEST(ret_full_too_big)
{
	struct smtp_dsn_rcpt r = failed_bob();
	struct smtp_dsn d = dsn_for(&r, 1);
	struct mem m = { ORIGINAL, sizeof(ORIGINAL) - 1, 0, false };
	struct report rep;

	d.ret = SMTP_RET_FULL;
	d.full_max = 50;
	render(&d, &m, &rep);
	ck_assert(hdr_is(&rep.parts[2], "Content-Type", "text/rfc822-headers"));
	ck_assert_mem_eq(rep.parts[2].body, ORIGINAL_HEADERS, strlen(ORIGINAL_HEADERS));
	ck_assert(rep.info.full_too_big);
	ck_assert_int_eq(rep.info.returned, SMTP_DSN_RETURNED_HEADERS);
	char note[256];
	snprintf(note, sizeof(note), "The original message was %zu octets, more than the 50 octets\n"
				     "returned in full, so only its header is attached.\n", sizeof(ORIGINAL) - 1);
	ck_assert(part_has(&rep.parts[0], note));
	buf_free(&rep.raw);

	/* RET=HDRS asks for the header in any case. */
	d.ret = SMTP_RET_HDRS;
	d.full_max = 0;
	render(&d, &m, &rep);
	ck_assert(hdr_is(&rep.parts[2], "Content-Type", "text/rfc822-headers"));
	ck_assert(!rep.info.full_too_big);
	buf_free(&rep.raw);
}
END_TEST

START_TEST(delay_warning)
{
	struct smtp_dsn_rcpt r = {
		.address = "carol@example.org",
		.action = SMTP_DSN_DELAYED,
		.status = "4.4.1",
		.text = "connect to mx.example.org[192.0.2.1] failed: Connection refused",
		.last_attempt = NOW - 30,
		.retry_until = ARRIVAL + 5 * 86400,
	};
	struct smtp_dsn d = dsn_for(&r, 1);
	struct mem m = { ORIGINAL, sizeof(ORIGINAL) - 1, 0, false };
	struct report rep;

	render(&d, &m, &rep);
	ck_assert(hdr_is(&rep.top, "Subject", "Delayed Mail (still being retried)"));
	const struct part *h = &rep.parts[0];
	ck_assert(part_has(h, "has not been delivered yet"));
	ck_assert(part_has(h, "will keep trying until Sun, 19 Nov 2023 19:26:40 +0000;\n"));
	ck_assert(part_has(h, "<carol@example.org>:\n    connect to mx.example.org[192.0.2.1] failed: Connection"
			      " refused\n"));
	ck_assert(!part_has(h, "could not be delivered"));
	const struct part *s = &rep.parts[1];
	ck_assert(part_has(s, "\nFinal-Recipient: rfc822; carol@example.org\nAction: delayed\nStatus: 4.4.1\n"));
	ck_assert(part_has(s, "Will-Retry-Until: Sun, 19 Nov 2023 19:26:40 +0000\n"));
	ck_assert(!part_has(s, "Remote-MTA"));       /* never connected */
	ck_assert(!part_has(s, "Diagnostic-Code"));  /* no reply from a server */
	ck_assert(!part_has(s, "Original-Recipient"));
	buf_free(&rep.raw);
}
END_TEST

START_TEST(several_recipients)
{
	struct smtp_dsn_rcpt r[3] = { failed_bob(), failed_bob(), failed_bob() };
	r[1].address = "dave@example.org";
	r[1].orcpt = NULL;
	r[1].status = NULL; /* defaults by action */
	r[1].diagnostic = NULL;
	r[1].remote_mta = NULL;
	r[1].text = "message of 20000000 octets exceeds the limit of 10000000 octets announced by mx (SIZE)";
	r[2].address = "erin@example.org";
	r[2].action = SMTP_DSN_DELAYED;
	r[2].status = "4.2.2";
	r[2].diagnostic = "452 4.2.2 Mailbox full";
	struct smtp_dsn d = dsn_for(r, 3);
	struct report rep;

	render(&d, NULL, &rep); /* no original at hand: two parts */
	ck_assert_int_eq(rep.n_parts, 2);
	ck_assert_int_eq(rep.info.returned, SMTP_DSN_RETURNED_NONE);
	ck_assert(hdr_is(&rep.top, "Subject", "Undelivered Mail Returned to Sender"));
	const struct part *h = &rep.parts[0];
	ck_assert(part_has(h, "<bob@example.org>: host mx.example.org said:"));
	ck_assert(part_has(h, "<dave@example.org>:\n    message of 20000000 octets"));
	ck_assert(part_has(h, "has not been delivered yet"));
	ck_assert(part_has(h, "<erin@example.org>: host mx.example.org said:\n    452 4.2.2 Mailbox full\n"));
	ck_assert(!part_has(h, "attached"));
	const struct part *s = &rep.parts[1];
	ck_assert(part_has(s, "\nFinal-Recipient: rfc822; dave@example.org\nAction: failed\nStatus: 5.0.0\n"
			      "Last-Attempt-Date"));
	ck_assert(part_has(s, "\nFinal-Recipient: rfc822; erin@example.org\nAction: delayed\nStatus: 4.2.2\n"
			      "Remote-MTA: dns; mx.example.org\nDiagnostic-Code: smtp; 452 4.2.2 Mailbox full\n"));
	/* Three recipient groups, each after an empty line. */
	int groups = 0;
	for (size_t i = 0; i + 2 <= s->body_len; i++)
		groups += s->body[i] == '\n' && s->body[i + 1] == '\n';
	ck_assert_int_eq(groups, 3);
	buf_free(&rep.raw);
}
END_TEST

START_TEST(boundary_cannot_collide)
{
	/* An original that contains our first boundary, as a delimiter and
	 * as a close delimiter. */
	static const char evil[] = "Subject: trap\n"
				   "X: y\n"
				   "--=_postbote_Q123.1\n"
				   "\n"
				   "--=_postbote_Q123.1\n"
				   "Content-Type: text/plain\n\nfake part\n"
				   "--=_postbote_Q123.1--\n"
				   "after\n";
	struct smtp_dsn_rcpt r = failed_bob();
	struct smtp_dsn d = dsn_for(&r, 1);
	struct mem m = { evil, sizeof(evil) - 1, 3, false };
	struct report rep;

	d.ret = SMTP_RET_FULL;
	d.original_size = sizeof(evil) - 1;
	render(&d, &m, &rep);
	ck_assert_str_ne(rep.boundary, "=_postbote_Q123.1");
	ck_assert_int_eq(strncmp(rep.boundary, "=_postbote_Q123.1_", 18), 0);
	ck_assert_int_eq(rep.n_parts, 3); /* take_apart checked no other line starts with it */
	ck_assert_uint_eq(rep.parts[2].body_len, sizeof(evil) - 1);
	ck_assert_mem_eq(rep.parts[2].body, evil, sizeof(evil) - 1);
	buf_free(&rep.raw);

	/* In the header-only return the header line counts too. */
	d.ret = SMTP_RET_HDRS;
	render(&d, &m, &rep);
	ck_assert_str_ne(rep.boundary, "=_postbote_Q123.1");
	ck_assert_mem_eq(rep.parts[2].body, "Subject: trap\nX: y\n--=_postbote_Q123.1\n", 39);
	buf_free(&rep.raw);

	/* The body's lines do not matter when only the header is returned. */
	static const char body_only[] = "Subject: x\n\n--=_postbote_Q123.1\n";
	struct mem m2 = { body_only, sizeof(body_only) - 1, 0, false };
	render(&d, &m2, &rep);
	ck_assert_str_eq(rep.boundary, "=_postbote_Q123.1");
	buf_free(&rep.raw);
}
END_TEST

START_TEST(hostile_reply_stays_in_its_field)
{
	struct smtp_dsn_rcpt r = failed_bob();
	char diag[1400];
	/* Control characters, a fake header, 8-bit text, a long run of words
	 * and one word longer than a line may be. */
	size_t o = (size_t)snprintf(diag, sizeof(diag), "550 5.7.1 bad\r\nX-Injected: yes\n--=_postbote_Q123.1 \xc3\xa9 ");
	for (int i = 0; i < 40; i++)
		o += (size_t)snprintf(diag + o, sizeof(diag) - o, "word%02d ", i);
	memset(diag + o, 'L', 1000);
	diag[o + 1000] = '\0';
	r.diagnostic = diag;
	struct smtp_dsn d = dsn_for(&r, 1);
	struct report rep;

	render(&d, NULL, &rep);
	const char *raw = buf_ptr(&rep.raw);
	ck_assert_ptr_null(strstr(raw, "\nX-Injected"));
	ck_assert_ptr_null(memchr(raw, '\r', buf_len(&rep.raw)));
	ck_assert(!rep.info.eightbit); /* the 8-bit octets became '?' */
	const struct part *s = &rep.parts[1];
	/* Every line of the report is short enough, and the field unfolds to
	 * the cleaned text. */
	for (const char *line = s->body; line < s->body + s->body_len;) {
		const char *eol = memchr(line, '\n', (size_t)(s->body + s->body_len - line));
		ck_assert_uint_le((size_t)(eol - line), 998);
		line = eol + 1;
	}
	char v[4096];
	ck_assert_ptr_nonnull(field(s->body, s->body_len, "Diagnostic-Code", v, sizeof(v)));
	static const char start[] = "smtp; 550 5.7.1 bad??X-Injected: yes?--=_postbote_Q123.1 ?? word00 word01";
	ck_assert_int_eq(strncmp(v, start, strlen(start)), 0);
	ck_assert_ptr_nonnull(strstr(v, "word39 LLLL"));
	/* No line of the whole report is longer than RFC 5322 allows. */
	for (const char *line = raw; line < raw + buf_len(&rep.raw);) {
		const char *eol = memchr(line, '\n', (size_t)(raw + buf_len(&rep.raw) - line));
		ck_assert_uint_le((size_t)(eol - line), 998);
		line = eol + 1;
	}
	ck_assert(part_has(&rep.parts[0], "word39\n    LLLLLLLLLL"));
	/* The human part holds it indented. */
	ck_assert(part_has(&rep.parts[0], "\n    550 5.7.1 bad??X-Injected: yes?--=_postbote_Q123.1 ?? word00"));
	buf_free(&rep.raw);
}
END_TEST

START_TEST(eightbit_original)
{
	static const char latin[] = "Subject: =?utf-8?q?caf=C3=A9?=\nContent-Type: text/plain; charset=utf-8\n"
				    "Content-Transfer-Encoding: 8bit\n\ncaf\xc3\xa9\n";
	struct smtp_dsn_rcpt r = failed_bob();
	struct smtp_dsn d = dsn_for(&r, 1);
	struct mem m = { latin, sizeof(latin) - 1, 0, false };
	struct report rep;

	/* Headers only: 7-bit, no label needed. */
	render(&d, &m, &rep);
	ck_assert(hdr_is(&rep.top, "Content-Transfer-Encoding", NULL));
	ck_assert(!rep.info.eightbit);
	buf_free(&rep.raw);
	/* In full: 8bit on the part and on the multipart (RFC 2045 6.4). */
	d.ret = SMTP_RET_FULL;
	d.original_size = sizeof(latin) - 1;
	render(&d, &m, &rep);
	ck_assert(hdr_is(&rep.top, "Content-Transfer-Encoding", "8bit"));
	ck_assert(hdr_is(&rep.parts[2], "Content-Transfer-Encoding", "8bit"));
	ck_assert(rep.info.eightbit);
	ck_assert(!rep.info.smtputf8);
	buf_free(&rep.raw);
}
END_TEST

START_TEST(utf8_addresses)
{
	struct smtp_dsn_rcpt r = failed_bob();
	r.address = "j\xc3\xb6rg@example.org";
	r.orcpt = "utf-8;j\xc3\xb6rg@example.org";
	struct smtp_dsn d = dsn_for(&r, 1);
	struct mem m = { ORIGINAL, sizeof(ORIGINAL) - 1, 0, false };
	struct report rep;

	render(&d, &m, &rep);
	ck_assert(rep.info.smtputf8);
	ck_assert(rep.info.eightbit);
	ck_assert(hdr_is(&rep.parts[0], "Content-Type", "text/plain; charset=utf-8"));
	ck_assert(hdr_is(&rep.parts[1], "Content-Type", "message/global-delivery-status"));
	ck_assert(hdr_is(&rep.parts[2], "Content-Type", "message/global-headers"));
	ck_assert(part_has(&rep.parts[1], "Final-Recipient: utf-8; j\xc3\xb6rg@example.org\n"));
	ck_assert(part_has(&rep.parts[0], "<j\xc3\xb6rg@example.org>: host"));
	buf_free(&rep.raw);
}
END_TEST

START_TEST(original_shapes)
{
	struct smtp_dsn_rcpt r = failed_bob();
	struct smtp_dsn d = dsn_for(&r, 1);
	struct report rep;
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "A: 1\r\nB: 2\r\n\r\nbody\r\n", "A: 1\r\nB: 2\r\n" },   /* CRLF */
		{ "A: 1\nB: 2\n", "A: 1\nB: 2\n" },                       /* no body */
		{ "", "" },                                               /* empty */
		{ "\nbody only\n", "" },                                  /* no header */
		{ "A: 1\n\rX: odd\n\nbody\n", "A: 1\n\rX: odd\n" },        /* a CR that is content */
		{ "A: 1\n\r\n", "A: 1\n" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (size_t piece = 0; piece < 4; piece++) {
			struct mem m = { cases[i].in, strlen(cases[i].in), piece, false };
			render(&d, &m, &rep);
			ck_assert_uint_eq(rep.parts[2].body_len, strlen(cases[i].want));
			ck_assert_mem_eq(rep.parts[2].body, cases[i].want, strlen(cases[i].want));
			buf_free(&rep.raw);
		}
	}
}
END_TEST

START_TEST(huge_header_is_cut)
{
	size_t len = SMTP_DSN_HEADERS_MAX + 100 * 1024;
	char *big = malloc(len + 16);
	size_t o = 0;
	while (o + 40 < len)
		o += (size_t)sprintf(big + o, "X-Filler: %028zu\n", o); /* 39-octet lines */
	o += (size_t)sprintf(big + o, "\nbody\n");
	struct smtp_dsn_rcpt r = failed_bob();
	struct smtp_dsn d = dsn_for(&r, 1);
	struct mem m = { big, o, 0, false };
	struct report rep;

	render(&d, &m, &rep);
	ck_assert(rep.info.headers_cut);
	const struct part *p = &rep.parts[2];
	ck_assert_uint_ge(p->body_len, SMTP_DSN_HEADERS_MAX);
	ck_assert_uint_lt(p->body_len, SMTP_DSN_HEADERS_MAX + 40);
	ck_assert_int_eq(p->body[p->body_len - 1], '\n');
	ck_assert_mem_eq(p->body, big, p->body_len);
	ck_assert(part_has(&rep.parts[0], "has been cut short"));
	buf_free(&rep.raw);

	/* A long last line past the limit is returned whole... */
	memset(big, 'x', len);
	big[len - 1] = '\n';
	m.len = len;
	render(&d, &m, &rep);
	ck_assert(!rep.info.headers_cut);
	ck_assert_uint_eq(rep.parts[2].body_len, len);
	buf_free(&rep.raw);
	/* ...but an endless one is cut hard at twice the limit. */
	size_t len2 = 2 * SMTP_DSN_HEADERS_MAX + 1000;
	big = realloc(big, len2);
	memset(big, 'x', len2);
	m.data = big;
	m.len = len2;
	render(&d, &m, &rep);
	ck_assert(rep.info.headers_cut);
	ck_assert_uint_eq(rep.parts[2].body_len, 2 * SMTP_DSN_HEADERS_MAX + 1);
	ck_assert_int_eq(rep.parts[2].body[2 * SMTP_DSN_HEADERS_MAX], '\n');
	buf_free(&rep.raw);
	free(big);
}
END_TEST

START_TEST(errors)
{
	struct smtp_dsn_rcpt r = failed_bob();
	struct smtp_dsn d = dsn_for(&r, 1);
	struct mem m = { ORIGINAL, sizeof(ORIGINAL) - 1, 0, true };
	struct buf out;
	const char *err = NULL;

	buf_init(&out, 1 << 20);
	ck_assert_int_eq(smtp_dsn_render(&d, mem_read, &m, buf_wr, &out, NULL, &err), -1);
	ck_assert_str_eq(err, "cannot read the original message");
	/* A write that fails. */
	struct buf tiny;
	buf_init(&tiny, 100);
	m.fail = false;
	ck_assert_int_eq(smtp_dsn_render(&d, mem_read, &m, buf_wr, &tiny, NULL, &err), -1);
	ck_assert_str_eq(err, "cannot write the DSN");
	buf_free(&tiny);
	/* No sender (never bounce a bounce), no recipients. */
	d.sender = "";
	ck_assert_int_eq(smtp_dsn_render(&d, NULL, NULL, buf_wr, &out, NULL, &err), -1);
	d.sender = "alice@example.net";
	d.n_rcpts = 0;
	ck_assert_int_eq(smtp_dsn_render(&d, NULL, NULL, buf_wr, &out, NULL, NULL), -1);
	buf_free(&out);
}
END_TEST

START_TEST(file_descriptors)
{
	/* The fd variants give the same bytes as the callback one. */
	char orig_path[] = "/tmp/test_dsn_origXXXXXX", out_path[] = "/tmp/test_dsn_outXXXXXX";
	int ofd = mkstemp(orig_path), wfd = mkstemp(out_path);
	ck_assert_int_ge(ofd, 0);
	ck_assert_int_ge(wfd, 0);
	unlink(orig_path);
	unlink(out_path);
	ck_assert_int_eq(write(ofd, ORIGINAL, sizeof(ORIGINAL) - 1), (ssize_t)(sizeof(ORIGINAL) - 1));

	struct smtp_dsn_rcpt r = failed_bob();
	struct smtp_dsn d = dsn_for(&r, 1);
	d.ret = SMTP_RET_FULL;
	struct smtp_dsn_info info;
	const char *err = NULL;
	struct buf a;
	buf_init(&a, 1 << 20);
	ck_assert_int_eq(smtp_dsn_render_buf(&d, ofd, &a, &info, &err), 0);
	ck_assert_uint_eq(info.size, buf_len(&a));
	ck_assert_int_eq(smtp_dsn_render_fd(&d, ofd, wfd, &info, &err), 0);
	ck_assert_uint_eq(info.size, buf_len(&a));
	char *back = malloc(buf_len(&a));
	ck_assert_int_eq(pread(wfd, back, buf_len(&a), 0), (ssize_t)buf_len(&a));
	ck_assert_mem_eq(back, buf_ptr(&a), buf_len(&a));
	static const char tail[] = "\n\nShall we?\n--\nAlice\n\n--=_postbote_Q123.1--\n";
	ck_assert_ptr_nonnull(memmem(buf_ptr(&a), buf_len(&a), tail, strlen(tail)));
	free(back);
	/* Without an original. */
	buf_reset(&a);
	ck_assert_int_eq(smtp_dsn_render_buf(&d, -1, &a, &info, &err), 0);
	ck_assert_int_eq(info.returned, SMTP_DSN_RETURNED_NONE);
	/* A write error on a closed descriptor. */
	ck_assert_int_eq(smtp_dsn_render_fd(&d, ofd, -1, &info, &err), -1);
	buf_free(&a);
	close(ofd);
	close(wfd);
}
END_TEST

static Suite *dsn_suite(void)
{
	Suite *s = suite_create("dsn");
	TCase *tc = tcase_create("dsn");

	tcase_add_test(tc, wanted);
	tcase_add_test(tc, dates);
	tcase_add_test(tc, failed_headers_only);
	tcase_add_test(tc, ret_full);
	tcase_add_test(tc, ret_full_too_big);
	tcase_add_test(tc, delay_warning);
	tcase_add_test(tc, several_recipients);
	tcase_add_test(tc, boundary_cannot_collide);
	tcase_add_test(tc, hostile_reply_stays_in_its_field);
	tcase_add_test(tc, eightbit_original);
	tcase_add_test(tc, utf8_addresses);
	tcase_add_test(tc, original_shapes);
	tcase_add_test(tc, huge_header_is_cut);
	tcase_add_test(tc, errors);
	tcase_add_test(tc, file_descriptors);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(dsn_suite());
}
