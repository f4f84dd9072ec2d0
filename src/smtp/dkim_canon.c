/*
 * DKIM canonicalization, RFC 6376 3.4.
 *
 * The body is canonicalized as a stream: a DKIM signer sees the message
 * once, as it is spooled, and must not hold it in memory (DESIGN.md,
 * contract 5). The only look-ahead the algorithms need is "is this empty
 * line the last thing in the body?" and "is this WSP run at the end of its
 * line?"; both are answered by withholding - a count of line ends and one
 * flag - until the next character of text arrives or the body ends.
 *
 * Line ends: CRLF and a lone LF are both a line end (our store keeps LF,
 * the wire has CRLF). A CR followed by anything but LF is text.
 */
#include "smtp/dkim_canon.h"

#include <limits.h>
#include <string.h>

static bool dkim_is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

const char *dkim_canon_name(enum dkim_canon_alg alg)
{
	return alg == DKIM_CANON_RELAXED ? "relaxed" : "simple";
}

/* ------------------------------------------------------------------ */
/* Header fields                                                       */

int dkim_header_name(const char *field, size_t len, const char **name_r, size_t *name_len_r)
{
	const char *colon = memchr(field, ':', len);

	if (colon == NULL)
		return -1;
	size_t n = (size_t)(colon - field);
	/* RFC 6376 3.4.2: delete any WSP before the colon. */
	while (n > 0 && dkim_is_wsp((unsigned char)field[n - 1]))
		n--;
	if (n == 0)
		return -1;
	*name_r = field;
	*name_len_r = n;
	return 0;
}

/* Appends to a buf through a small stack buffer; the caller has checked
 * the room for everything it will put, so buf_append cannot fail. */
struct dkim_stage {
	struct buf *out;
	size_t n;
	char tmp[256];
};

static void dkim_stage_flush(struct dkim_stage *st)
{
	buf_append(st->out, st->tmp, st->n);
	st->n = 0;
}

static void dkim_stage_put(struct dkim_stage *st, char c)
{
	if (st->n == sizeof(st->tmp))
		dkim_stage_flush(st);
	st->tmp[st->n++] = c;
}

/* Simple (RFC 6376 3.4.1): no change, except that every line end is CRLF. */
static int dkim_header_canon_simple(const char *field, size_t len, struct buf *out)
{
	struct dkim_stage st = { .out = out };
	size_t need = len + 2;

	for (size_t i = 0; i < len; i++) {
		if (field[i] == '\n' && (i == 0 || field[i - 1] != '\r'))
			need++;
	}
	if (buf_room(out) < need)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (field[i] == '\n' && (i == 0 || field[i - 1] != '\r'))
			dkim_stage_put(&st, '\r');
		dkim_stage_put(&st, field[i]);
	}
	dkim_stage_put(&st, '\r');
	dkim_stage_put(&st, '\n');
	dkim_stage_flush(&st);
	return (int)need;
}

/* Relaxed (RFC 6376 3.4.2). The canonical form is never longer than the
 * field plus CRLF. */
static int dkim_header_canon_relaxed(const char *field, size_t len, struct buf *out)
{
	struct dkim_stage st = { .out = out };
	const char *name;
	size_t name_len, start = buf_len(out);

	if (dkim_header_name(field, len, &name, &name_len) < 0)
		return -1;
	if (buf_room(out) < len + 2)
		return -1;
	for (size_t i = 0; i < name_len; i++) {
		unsigned char c = (unsigned char)name[i];
		dkim_stage_put(&st, (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c));
	}
	dkim_stage_put(&st, ':');

	const char *colon = memchr(field, ':', len);
	bool wsp = false;         /* a WSP run is pending */
	bool text = false;        /* some value text has been written */
	for (size_t i = (size_t)(colon - field) + 1; i < len; i++) {
		unsigned char c = (unsigned char)field[i];
		/* Unfold: a line end (CRLF or LF) inside the field vanishes;
		 * the WSP that must follow it stays. */
		if (c == '\n')
			continue;
		if (c == '\r' && i + 1 < len && field[i + 1] == '\n')
			continue;
		if (dkim_is_wsp(c)) {
			wsp = true;
			continue;
		}
		/* WSP at the start of the value (after the colon) is dropped,
		 * inside it becomes one SP, and at the end it is never written
		 * because no text follows it. */
		if (wsp && text)
			dkim_stage_put(&st, ' ');
		wsp = false;
		dkim_stage_put(&st, (char)c);
		text = true;
	}
	dkim_stage_put(&st, '\r');
	dkim_stage_put(&st, '\n');
	dkim_stage_flush(&st);
	return (int)(buf_len(out) - start);
}

int dkim_header_canon(enum dkim_canon_alg alg, const char *field, size_t len, struct buf *out)
{
	if (len > INT_MAX / 2 - 2)
		return -1;
	if (alg == DKIM_CANON_RELAXED)
		return dkim_header_canon_relaxed(field, len, out);
	return dkim_header_canon_simple(field, len, out);
}

/* ------------------------------------------------------------------ */
/* The body                                                            */

void dkim_body_canon_init(struct dkim_body_canon *c, enum dkim_canon_alg alg, dkim_canon_out_fn *out,
			  void *ctx)
{
	memset(c, 0, sizeof(*c));
	c->alg = alg;
	c->out = out;
	c->ctx = ctx;
}

static void dkim_body_flush(struct dkim_body_canon *c)
{
	if (c->olen > 0) {
		c->out(c->ctx, c->obuf, c->olen);
		c->olen = 0;
	}
}

static void dkim_body_put(struct dkim_body_canon *c, char ch)
{
	if (c->olen == sizeof(c->obuf))
		dkim_body_flush(c);
	c->obuf[c->olen++] = ch;
	c->length++;
}

/* Text follows: the withheld line ends and WSP were not trailing after all. */
static void dkim_body_release(struct dkim_body_canon *c)
{
	for (; c->pending_crlf > 0; c->pending_crlf--) {
		dkim_body_put(c, '\r');
		dkim_body_put(c, '\n');
	}
	if (c->pending_wsp) {
		/* RFC 6376 3.4.4 a: a WSP run inside a line becomes one SP. */
		dkim_body_put(c, ' ');
		c->pending_wsp = false;
	}
}

static void dkim_body_text(struct dkim_body_canon *c, unsigned char ch)
{
	if (c->pending_crlf > 0 || c->pending_wsp)
		dkim_body_release(c);
	dkim_body_put(c, (char)ch);
}

static void dkim_body_line_end(struct dkim_body_canon *c)
{
	/* RFC 6376 3.4.4 a: WSP at the end of a line is removed. */
	c->pending_wsp = false;
	c->pending_crlf++;
}

void dkim_body_canon_feed(struct dkim_body_canon *c, const void *data, size_t len)
{
	const unsigned char *p = data;
	bool relaxed = c->alg == DKIM_CANON_RELAXED;

	if (c->finished)
		return;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = p[i];
		if (c->pending_cr) {
			c->pending_cr = false;
			if (ch == '\n') {
				dkim_body_line_end(c);
				continue;
			}
			dkim_body_text(c, '\r');   /* a lone CR is text */
		}
		if (ch == '\r') {
			c->pending_cr = true;
		} else if (ch == '\n') {
			dkim_body_line_end(c);
		} else if (relaxed && dkim_is_wsp(ch)) {
			c->pending_wsp = true;
		} else {
			dkim_body_text(c, ch);
		}
	}
	dkim_body_flush(c);
}

void dkim_body_canon_finish(struct dkim_body_canon *c)
{
	if (c->finished)
		return;
	if (c->pending_cr) {
		c->pending_cr = false;
		dkim_body_text(c, '\r');
	}
	/* Whatever line ends are still withheld are trailing empty lines
	 * (RFC 6376 3.4.3, 3.4.4 b): all but the one ending the last line of
	 * text go. A last line without a line end gets one (3.4.3, 3.4.4).
	 * Trailing WSP of that last line goes as at any line end. */
	if (c->length > 0) {
		c->pending_wsp = false;
		dkim_body_put(c, '\r');
		dkim_body_put(c, '\n');
	} else if (c->alg == DKIM_CANON_SIMPLE) {
		/* RFC 6376 3.4.3: an empty body is one CRLF. Relaxed leaves it
		 * empty (3.4.4, as corrected by erratum 1384). */
		dkim_body_put(c, '\r');
		dkim_body_put(c, '\n');
	}
	c->pending_crlf = 0;
	c->pending_wsp = false;
	c->finished = true;
	dkim_body_flush(c);
}
