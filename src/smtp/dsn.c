/*
 * Delivery status notifications (see dsn.h for the layout and the reasons).
 *
 * The report is written in three stages: our headers and the first two
 * parts (built in a bounded struct buf), the original copied chunk by chunk
 * from the read callback, and the closing delimiter. Before the first
 * stage the part of the original that will be returned is walked once
 * (the same walk that copies it) to pick a boundary that no line of it
 * starts with, and to learn whether it holds 8-bit octets, so the
 * Content-Transfer-Encoding labels are true.
 */
#include "smtp/dsn.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TEXT_MAX 2000              /* of any one string taken from the caller */
#define WRAP 72                    /* columns of the text part */
#define FOLD 76                    /* header lines are folded before this */
#define CHUNK (64 * 1024)          /* reading the original */
#define BOUNDARY_TRIES 8

static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
				       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

char *smtp_dsn_date(time_t t, char out[32])
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL) {
		t = 0;
		gmtime_r(&t, &tm);
	}
	/* RFC 5322 3.3, numeric zone; no strftime: %a/%b follow the locale. */
	snprintf(out, 32, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7], tm.tm_mday,
		 months[tm.tm_mon % 12], (tm.tm_year + 1900) % 10000, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return out;
}

bool smtp_dsn_wanted(const char *sender, unsigned notify, enum smtp_dsn_action action)
{
	if (sender == NULL || sender[0] == '\0')
		return false; /* never bounce a bounce */
	if (notify & SMTP_NOTIFY_NEVER)
		return false;
	if (notify == 0)
		return true;
	return (notify & (action == SMTP_DSN_FAILED ? SMTP_NOTIFY_FAILURE : SMTP_NOTIFY_DELAY)) != 0;
}

/* ---- output ---- */

struct out {
	smtp_dsn_write_fn wr;
	void *ctx;
	uint64_t size;
	bool eightbit;
	bool failed;
};

static void emit(struct out *o, const void *data, size_t len)
{
	const unsigned char *p = data;

	if (o->failed || len == 0)
		return;
	for (size_t i = 0; i < len && !o->eightbit; i++) {
		if (p[i] >= 0x80)
			o->eightbit = true;
	}
	if (o->wr(o->ctx, data, len) < 0) {
		o->failed = true;
		return;
	}
	o->size += len;
}

/* Append s (at most TEXT_MAX octets of it) with control characters (CR
 * and LF included) as '?', and octets >= 0x80 as '?' unless utf8. */
static void put_clean(struct buf *b, const char *s, bool utf8)
{
	char tmp[TEXT_MAX];
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p != '\0' && n < sizeof(tmp); p++) {
		bool ok = (*p >= ' ' && *p < 0x7f) || (utf8 && *p >= 0x80);
		tmp[n++] = ok ? (char)*p : '?';
	}
	buf_append(b, tmp, n);
}

static bool has_8bit(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; p != NULL && *p; p++) {
		if (*p >= 0x80)
			return true;
	}
	return false;
}

/* A header field body, cleaned and folded (RFC 5322 2.2.3): a line is
 * broken before a space once it passes FOLD columns; the space stays as
 * the continuation's leading white space, so unfolding gives the text back.
 * A word too long for a line is broken hard at 900 octets (RFC 5322 2.1.1:
 * 998 at most). col is where the value starts. */
static void put_folded(struct buf *b, const char *s, size_t col, bool utf8)
{
	struct buf clean;

	buf_init(&clean, TEXT_MAX);
	put_clean(&clean, s, utf8);
	const char *p = buf_ptr(&clean), *end = p + buf_len(&clean);
	while (p < end) {
		/* The next word with its leading spaces. */
		const char *w = p;
		while (w < end && *w == ' ')
			w++;
		const char *we = w;
		while (we < end && *we != ' ')
			we++;
		size_t n = (size_t)(we - p);
		if (col > 1 && col + n > FOLD && w > p) {
			buf_append(b, "\n", 1); /* the space(s) at p start the continuation */
			col = 0;
		}
		while (n > 900) {
			buf_append(b, p, 900);
			buf_append(b, "\n ", 2);
			p += 900;
			n -= 900;
			col = 1;
		}
		buf_append(b, p, n);
		col += n;
		p = we;
	}
	buf_free(&clean);
}

/* Text for the human part: words wrapped at WRAP columns, every line
 * indented by indent spaces (so none can start with "--"). */
static void put_wrapped(struct buf *b, const char *s, size_t indent, bool utf8)
{
	struct buf clean;
	size_t col = 0;

	buf_init(&clean, TEXT_MAX);
	put_clean(&clean, s, utf8);
	const char *p = buf_ptr(&clean), *end = p + buf_len(&clean);
	while (p < end) {
		while (p < end && *p == ' ')
			p++;
		const char *w = p;
		while (p < end && *p != ' ')
			p++;
		size_t n = (size_t)(p - w);
		if (n == 0)
			break;
		/* A word too long for any line goes out in pieces of 900, each
		 * on a line of its own (RFC 5322 2.1.1: 998 at most). */
		while (n > 900) {
			if (col > 0)
				buf_append(b, "\n", 1);
			for (size_t i = 0; i < indent; i++)
				buf_append(b, " ", 1);
			buf_append(b, w, 900);
			w += 900;
			n -= 900;
			col = indent + 900;
		}
		if (col > 0 && col + 1 + n > WRAP) {
			buf_append(b, "\n", 1);
			col = 0;
		}
		if (col == 0) {
			for (size_t i = 0; i < indent; i++)
				buf_append(b, " ", 1);
			col = indent;
		} else {
			buf_append(b, " ", 1);
			col++;
		}
		buf_append(b, w, n);
		col += n;
	}
	if (col > 0)
		buf_append(b, "\n", 1);
	buf_free(&clean);
}

/* Characters safe in a Message-ID and a boundary: letters, digits, '.', '-'. */
static void put_token(struct buf *b, const char *s, size_t max)
{
	size_t n = 0;

	for (const char *p = s; *p != '\0' && n < max; p++, n++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
			  c == '-';
		buf_append(b, ok ? p : "-", 1);
	}
	if (n == 0)
		buf_append(b, "x", 1);
}

/* ---- the original ---- */

typedef void (*sink_fn)(void *ctx, const char *p, size_t n);

struct walk {
	smtp_dsn_read_fn rd;
	void *rd_ctx;
	bool headers_only;
	bool headers_cut;     /* out */
	bool failed;          /* out: a read failed */
};

/*
 * Hand the part of the original we return to sink, in pieces: all of it,
 * or its header section: everything before the empty line ("\n" or "\r\n"
 * at a line start), at most SMTP_DSN_HEADERS_MAX octets and then up to the
 * end of the line under way, never more than twice the maximum.
 */
static void walk_original(struct walk *w, sink_fn sink, void *sink_ctx)
{
	char *chunk = malloc(CHUNK);
	char *stage = malloc(CHUNK + 2);
	uint64_t off = 0, given = 0;
	bool line_start = true, cr_held = false, done = false;

	w->failed = false;
	w->headers_cut = false;
	if (chunk == NULL || stage == NULL) {
		w->failed = true;
		done = true;
	}
	while (!done) {
		ssize_t got = w->rd(w->rd_ctx, off, chunk, CHUNK);
		if (got < 0) {
			w->failed = true;
			break;
		}
		if (got == 0)
			break;
		off += (uint64_t)got;
		if (!w->headers_only) {
			sink(sink_ctx, chunk, (size_t)got);
			continue;
		}
		size_t n = 0;
		for (size_t i = 0; i < (size_t)got && !done; i++) {
			char c = chunk[i];
			if (cr_held) {
				cr_held = false;
				if (c == '\n') {
					done = true; /* "\r\n": the empty line */
					break;
				}
				stage[n++] = '\r'; /* a CR that starts a line is content */
				given++;
			} else if (line_start) {
				if (c == '\n') {
					done = true; /* "\n": the empty line */
					break;
				}
				if (c == '\r') {
					cr_held = true; /* "\r\n" or content? the next octet says */
					continue;
				}
				if (given >= SMTP_DSN_HEADERS_MAX) {
					w->headers_cut = true; /* another field past the limit */
					done = true;
					break;
				}
			}
			stage[n++] = c;
			given++;
			line_start = c == '\n';
			if (!line_start && given >= 2 * (uint64_t)SMTP_DSN_HEADERS_MAX) {
				stage[n++] = '\n';
				w->headers_cut = true;
				done = true;
			}
		}
		sink(sink_ctx, stage, n);
	}
	free(chunk);
	free(stage);
}

/* The scan: does a line start with "--" boundary? Any 8-bit octets? */
struct scan {
	const char *pat;     /* "--" boundary */
	size_t pat_len;
	size_t pos;          /* octets of pat matched at this line start */
	bool matching;       /* still matching this line */
	bool collision;
	bool eightbit;
	bool line_start;
};

static void scan_sink(void *ctx, const char *p, size_t n)
{
	struct scan *s = ctx;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c >= 0x80)
			s->eightbit = true;
		if (s->line_start) {
			s->matching = true;
			s->pos = 0;
		}
		if (s->matching) {
			if (c == (unsigned char)s->pat[s->pos]) {
				if (++s->pos == s->pat_len) {
					s->collision = true;
					s->matching = false;
				}
			} else {
				s->matching = false;
			}
		}
		s->line_start = c == '\n';
	}
}

static void copy_sink(void *ctx, const char *p, size_t n)
{
	emit(ctx, p, n);
}

/* ---- rendering ---- */

static const char *status_of(const struct smtp_dsn_rcpt *r)
{
	if (r->status != NULL && r->status[0] != '\0')
		return r->status;
	return r->action == SMTP_DSN_FAILED ? "5.0.0" : "4.0.0";
}

/* "rfc822;" or "utf-8;" (RFC 6533 3) for an address. */
static const char *addr_type(const char *a)
{
	return has_8bit(a) ? "utf-8" : "rfc822";
}

static void human_part(struct buf *g, const struct smtp_dsn *d, bool utf8, enum smtp_dsn_returned returned,
		       bool full_too_big, bool headers_cut)
{
	char date[32];
	bool any_failed = false, any_delayed = false;
	time_t until = 0;

	for (size_t i = 0; i < d->n_rcpts; i++) {
		if (d->rcpts[i].action == SMTP_DSN_FAILED) {
			any_failed = true;
		} else {
			any_delayed = true;
			if (d->rcpts[i].retry_until > until)
				until = d->rcpts[i].retry_until;
		}
	}
	buf_printf(g, "This is the mail delivery system at ");
	put_clean(g, d->reporting_mta, false);
	buf_printf(g, ".\n");
	for (int pass = 0; pass < 2; pass++) {
		enum smtp_dsn_action want = pass == 0 ? SMTP_DSN_FAILED : SMTP_DSN_DELAYED;
		if (pass == 0 && !any_failed)
			continue;
		if (pass == 1 && !any_delayed)
			continue;
		if (want == SMTP_DSN_FAILED) {
			buf_printf(g, "\nYour message could not be delivered to the recipients below.\n"
				      "The mail system has given up on them for the reasons shown.\n");
		} else {
			buf_printf(g, "\nYour message has not been delivered yet to the recipients below.\n");
			if (until != 0)
				buf_printf(g, "The mail system will keep trying until %s;\n", smtp_dsn_date(until, date));
			else
				buf_printf(g, "The mail system will keep trying;\n");
			buf_printf(g, "you do not need to send the message again.\n");
		}
		for (size_t i = 0; i < d->n_rcpts; i++) {
			const struct smtp_dsn_rcpt *r = &d->rcpts[i];
			if (r->action != want)
				continue;
			buf_printf(g, "\n<");
			put_clean(g, r->address, utf8);
			buf_printf(g, ">:");
			if (r->diagnostic != NULL && r->remote_mta != NULL) {
				buf_printf(g, " host ");
				put_clean(g, r->remote_mta, false);
				buf_printf(g, " said:\n");
				put_wrapped(g, r->diagnostic, 4, false);
			} else if (r->diagnostic != NULL || r->text != NULL) {
				buf_printf(g, "\n");
				put_wrapped(g, r->diagnostic != NULL ? r->diagnostic : r->text, 4, utf8);
			} else {
				buf_printf(g, "\n    status %s\n", status_of(r));
			}
		}
	}
	buf_printf(g, "\n");
	switch (returned) {
	case SMTP_DSN_RETURNED_FULL:
		buf_printf(g, "The original message is attached.\n");
		break;
	case SMTP_DSN_RETURNED_HEADERS:
		if (full_too_big)
			buf_printf(g, "The original message was %" PRIu64 " octets, more than the %" PRIu64
				      " octets\nreturned in full, so only its header is attached.\n",
				   d->original_size, d->full_max ? d->full_max : (uint64_t)SMTP_DSN_FULL_MAX_DEFAULT);
		else
			buf_printf(g, "The header of the original message is attached.\n");
		if (headers_cut)
			buf_printf(g, "It was longer than %u octets and has been cut short.\n",
				   (unsigned)SMTP_DSN_HEADERS_MAX);
		break;
	case SMTP_DSN_RETURNED_NONE:
		break;
	}
}

static void status_part(struct buf *g, const struct smtp_dsn *d, bool utf8)
{
	char date[32];

	/* RFC 3464 2.2: per-message fields. */
	buf_printf(g, "Reporting-MTA: dns; ");
	put_clean(g, d->reporting_mta, false);
	buf_printf(g, "\n");
	if (d->envid != NULL) {
		buf_printf(g, "Original-Envelope-Id: ");
		put_clean(g, d->envid, false);
		buf_printf(g, "\n");
	}
	if (d->arrival != 0)
		buf_printf(g, "Arrival-Date: %s\n", smtp_dsn_date(d->arrival, date));
	/* RFC 3464 2.3: per-recipient fields, each group after an empty line. */
	for (size_t i = 0; i < d->n_rcpts; i++) {
		const struct smtp_dsn_rcpt *r = &d->rcpts[i];
		buf_printf(g, "\n");
		if (r->orcpt != NULL && strchr(r->orcpt, ';') != NULL) {
			buf_printf(g, "Original-Recipient: ");
			put_clean(g, r->orcpt, utf8);
			buf_printf(g, "\n");
		}
		buf_printf(g, "Final-Recipient: %s; ", addr_type(r->address));
		put_clean(g, r->address, utf8);
		buf_printf(g, "\nAction: %s\n", r->action == SMTP_DSN_FAILED ? "failed" : "delayed");
		buf_printf(g, "Status: ");
		put_clean(g, status_of(r), false);
		buf_printf(g, "\n");
		if (r->remote_mta != NULL) {
			buf_printf(g, "Remote-MTA: dns; ");
			put_clean(g, r->remote_mta, false);
			buf_printf(g, "\n");
		}
		if (r->diagnostic != NULL) {
			buf_printf(g, "Diagnostic-Code: smtp; ");
			put_folded(g, r->diagnostic, strlen("Diagnostic-Code: smtp; "), false);
			buf_printf(g, "\n");
		}
		if (r->last_attempt != 0)
			buf_printf(g, "Last-Attempt-Date: %s\n", smtp_dsn_date(r->last_attempt, date));
		if (r->action == SMTP_DSN_DELAYED && r->retry_until != 0)
			buf_printf(g, "Will-Retry-Until: %s\n", smtp_dsn_date(r->retry_until, date));
	}
}

/* Pick a boundary that no line of the returned original starts with. The
 * first candidate is predictable (tests rely on it); the next ones add
 * random octets, so a message crafted to collide with them cannot exist. */
static int pick_boundary(const struct smtp_dsn *d, struct walk *w, bool have_original, char *boundary,
			 size_t size, bool *eightbit_r)
{
	*eightbit_r = false;
	for (int attempt = 0; attempt < BOUNDARY_TRIES; attempt++) {
		struct buf b;
		buf_init(&b, size - 1);
		buf_append(&b, "=_postbote_", 11);
		put_token(&b, d->unique != NULL ? d->unique : "dsn", 40);
		if (attempt > 0)
			buf_printf(&b, "_%08" PRIx32 "%08" PRIx32, arc4random(), arc4random());
		snprintf(boundary, size, "%.*s", (int)buf_len(&b), buf_ptr(&b));
		buf_free(&b);
		if (!have_original)
			return 0;

		char pat[96];
		snprintf(pat, sizeof(pat), "--%s", boundary);
		struct scan s = { .pat = pat, .pat_len = strlen(pat), .line_start = true };
		walk_original(w, scan_sink, &s);
		if (w->failed)
			return -1;
		*eightbit_r = s.eightbit;
		if (!s.collision)
			return 0;
	}
	return -1;
}

int smtp_dsn_render(const struct smtp_dsn *d, smtp_dsn_read_fn rd, void *rd_ctx, smtp_dsn_write_fn wr,
		    void *wr_ctx, struct smtp_dsn_info *info_r, const char **error_r)
{
	struct smtp_dsn_info info = { 0 };
	struct out o = { .wr = wr, .ctx = wr_ctx };
	const char *dummy;
	char date[32], boundary[80];
	bool utf8, orig_8bit;

	if (error_r == NULL)
		error_r = &dummy;
	if (d->n_rcpts == 0 || d->rcpts == NULL || d->sender == NULL || d->sender[0] == '\0' ||
	    d->reporting_mta == NULL) {
		*error_r = "DSN without recipients, sender or reporting MTA";
		return -1;
	}
	for (size_t i = 0; i < d->n_rcpts; i++) {
		if (d->rcpts[i].address == NULL) {
			*error_r = "DSN recipient without an address";
			return -1;
		}
	}

	/* What to return (RFC 3461 4.3). */
	uint64_t full_max = d->full_max ? d->full_max : SMTP_DSN_FULL_MAX_DEFAULT;
	struct walk w = { .rd = rd, .rd_ctx = rd_ctx, .headers_only = true };
	if (rd != NULL) {
		info.returned = SMTP_DSN_RETURNED_HEADERS;
		if (d->ret == SMTP_RET_FULL) {
			if (d->original_size <= full_max) {
				info.returned = SMTP_DSN_RETURNED_FULL;
				w.headers_only = false;
			} else {
				info.full_too_big = true;
			}
		}
	}
	if (pick_boundary(d, &w, rd != NULL, boundary, sizeof(boundary), &orig_8bit) < 0) {
		*error_r = w.failed ? "cannot read the original message" : "no usable MIME boundary";
		return -1;
	}
	info.headers_cut = w.headers_cut;

	utf8 = has_8bit(d->sender);
	for (size_t i = 0; i < d->n_rcpts; i++)
		utf8 = utf8 || has_8bit(d->rcpts[i].address) || has_8bit(d->rcpts[i].orcpt);

	/* Our headers and the first two parts. Every string taken from the
	 * caller is cut at TEXT_MAX and appears at most a few times per
	 * recipient, so the bound below is never reached. */
	struct buf g;
	buf_init(&g, 64 * 1024 + d->n_rcpts * (8 * TEXT_MAX + 1024));
	bool any_failed = false;
	for (size_t i = 0; i < d->n_rcpts; i++)
		any_failed = any_failed || d->rcpts[i].action == SMTP_DSN_FAILED;

	buf_printf(&g, "From: Mail Delivery System <MAILER-DAEMON@");
	put_clean(&g, d->reporting_mta, false);
	buf_printf(&g, ">\nTo: <");
	put_clean(&g, d->sender, utf8);
	buf_printf(&g, ">\nSubject: %s\n",
		   any_failed ? "Undelivered Mail Returned to Sender" : "Delayed Mail (still being retried)");
	buf_printf(&g, "Date: %s\n", smtp_dsn_date(d->now, date));
	buf_printf(&g, "Message-ID: <");
	put_token(&g, d->unique != NULL ? d->unique : "dsn", 200);
	buf_printf(&g, ".dsn@");
	put_token(&g, d->reporting_mta, 255);
	buf_printf(&g, ">\n");
	/* RFC 3834 5: so that auto-responders leave it alone. */
	buf_printf(&g, "Auto-Submitted: auto-replied\nMIME-Version: 1.0\n");
	buf_printf(&g, "Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"%s\"\n", boundary);
	bool returned_8bit = info.returned != SMTP_DSN_RETURNED_NONE && orig_8bit;
	if (returned_8bit || utf8)
		buf_printf(&g, "Content-Transfer-Encoding: 8bit\n"); /* RFC 2045 6.4: as its most 8-bit part */
	buf_printf(&g, "\nThis is a MIME-encapsulated message.\n");

	buf_printf(&g, "\n--%s\nContent-Description: Notification\nContent-Type: text/plain; charset=%s\n", boundary,
		   utf8 ? "utf-8" : "us-ascii");
	if (utf8)
		buf_printf(&g, "Content-Transfer-Encoding: 8bit\n");
	buf_printf(&g, "\n");
	human_part(&g, d, utf8, info.returned, info.full_too_big, info.headers_cut);

	buf_printf(&g, "\n--%s\nContent-Description: Delivery report\nContent-Type: message/%sdelivery-status\n",
		   boundary, utf8 ? "global-" : "");
	if (utf8)
		buf_printf(&g, "Content-Transfer-Encoding: 8bit\n");
	buf_printf(&g, "\n");
	status_part(&g, d, utf8);

	if (info.returned != SMTP_DSN_RETURNED_NONE) {
		bool full = info.returned == SMTP_DSN_RETURNED_FULL;
		buf_printf(&g, "\n--%s\nContent-Description: %s\nContent-Type: %s\n", boundary,
			   full ? "Undelivered Message" : "Undelivered Message Headers",
			   full ? (utf8 ? "message/global" : "message/rfc822")
				: (utf8 ? "message/global-headers" : "text/rfc822-headers"));
		if (returned_8bit)
			buf_printf(&g, "Content-Transfer-Encoding: 8bit\n");
		buf_printf(&g, "\n");
	}
	emit(&o, buf_ptr(&g), buf_len(&g));
	buf_free(&g);

	if (info.returned != SMTP_DSN_RETURNED_NONE) {
		walk_original(&w, copy_sink, &o);
		if (w.failed) {
			*error_r = "cannot read the original message";
			return -1;
		}
	}
	/* RFC 2046 5.1.1: the line break before the delimiter belongs to it. */
	char tail[96];
	int n = snprintf(tail, sizeof(tail), "\n--%s--\n", boundary);
	emit(&o, tail, (size_t)n);
	if (o.failed) {
		*error_r = "cannot write the DSN";
		return -1;
	}
	info.size = o.size;
	info.eightbit = o.eightbit;
	info.smtputf8 = utf8;
	if (info_r != NULL)
		*info_r = info;
	return 0;
}

/* ---- file descriptors ---- */

static ssize_t fd_read(void *ctx, uint64_t off, void *data, size_t len)
{
	int fd = *(const int *)ctx;

	for (;;) {
		ssize_t n = pread(fd, data, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		return n;
	}
}

static int buf_write(void *ctx, const void *data, size_t len)
{
	return buf_append(ctx, data, len);
}

static int fd_write(void *ctx, const void *data, size_t len)
{
	int fd = *(const int *)ctx;
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int smtp_dsn_render_buf(const struct smtp_dsn *d, int original_fd, struct buf *out, struct smtp_dsn_info *info_r,
			const char **error_r)
{
	return smtp_dsn_render(d, original_fd >= 0 ? fd_read : NULL, &original_fd, buf_write, out, info_r, error_r);
}

int smtp_dsn_render_fd(const struct smtp_dsn *d, int original_fd, int out_fd, struct smtp_dsn_info *info_r,
		       const char **error_r)
{
	return smtp_dsn_render(d, original_fd >= 0 ? fd_read : NULL, &original_fd, fd_write, &out_fd, info_r,
			       error_r);
}
