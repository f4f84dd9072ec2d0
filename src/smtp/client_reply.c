/*
 * The SMTP client's reply parser (see client_reply.h).
 *
 * A line is collected in a fixed buffer of SMTP_REPLY_LINE_MAX octets, so the
 * limit holds before the line end arrives; the text of the lines of one
 * reply is kept in a bounded struct buf, with a NUL after each line so that
 * callers get C strings. Nothing here allocates more than those two bounds,
 * whatever the server sends.
 */
#include "smtp/client_reply.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/strnum.h"
#include "core/xalloc.h"

struct line_pos {
	size_t off, len;
	struct smtp_esc esc;
	size_t esc_len;
};

struct smtp_reply_parser {
	char line[SMTP_REPLY_LINE_MAX];  /* the line being read, without its LF */
	size_t line_len;
	unsigned code;                   /* of the reply being read, 0 before its first line */
	size_t n_lines;
	struct buf text;                 /* line texts, each followed by a NUL */
	bool done;                       /* the last call returned DONE: start afresh */
	const char *error;               /* sticky */
	struct line_pos pos[SMTP_REPLY_LINES_MAX];
	struct smtp_reply_line lines[SMTP_REPLY_LINES_MAX];
};

struct smtp_reply_parser *smtp_reply_parser_new(void)
{
	struct smtp_reply_parser *p = xcalloc(1, sizeof(*p));
	/* Every line's text plus its NUL. */
	buf_init(&p->text, SMTP_REPLY_TEXT_MAX + SMTP_REPLY_LINES_MAX);
	return p;
}

void smtp_reply_parser_free(struct smtp_reply_parser **pp)
{
	if (*pp == NULL)
		return;
	buf_free(&(*pp)->text);
	free(*pp);
	*pp = NULL;
}

static void start_reply(struct smtp_reply_parser *p)
{
	p->code = 0;
	p->n_lines = 0;
	p->done = false;
	buf_reset(&p->text);
}

void smtp_reply_parser_reset(struct smtp_reply_parser *p)
{
	start_reply(p);
	p->line_len = 0;
	p->error = NULL;
}

bool smtp_reply_parser_partial(const struct smtp_reply_parser *p)
{
	return !p->done && (p->line_len > 0 || p->n_lines > 0);
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* 1-3 digits at text[*i]; moves *i past them. */
static bool esc_number(const char *text, size_t len, size_t *i, uint16_t *v)
{
	size_t start = *i;
	unsigned n = 0;

	while (*i < len && is_digit(text[*i]) && *i - start < 3)
		n = n * 10 + (unsigned)(text[(*i)++] - '0');
	if (*i == start || (*i < len && is_digit(text[*i])))
		return false;
	*v = (uint16_t)n;
	return true;
}

size_t smtp_esc_parse(const char *text, size_t len, struct smtp_esc *esc_r)
{
	struct smtp_esc esc = { 0 };
	size_t i = 0;

	memset(esc_r, 0, sizeof(*esc_r));
	/* RFC 3463 2: class "." subject "." detail; class is 2, 4 or 5. */
	if (len < 5 || (text[0] != '2' && text[0] != '4' && text[0] != '5') || text[1] != '.')
		return 0;
	esc.cls = (uint8_t)(text[0] - '0');
	i = 2;
	if (!esc_number(text, len, &i, &esc.subject) || i >= len || text[i] != '.')
		return 0;
	i++;
	if (!esc_number(text, len, &i, &esc.detail))
		return 0;
	if (i < len && text[i] != ' ')
		return 0;
	*esc_r = esc;
	return i < len ? i + 1 : i;
}

char *smtp_esc_format(const struct smtp_esc *esc, char out[12])
{
	out[0] = '\0';
	if (esc->cls != 0) {
		/* Each number is at most 999: "5.999.999" fits. */
		unsigned s = esc->subject % 1000, d = esc->detail % 1000;
		size_t o = 0;
		out[o++] = (char)('0' + esc->cls % 10);
		out[o++] = '.';
		if (s >= 100)
			out[o++] = (char)('0' + s / 100);
		if (s >= 10)
			out[o++] = (char)('0' + s / 10 % 10);
		out[o++] = (char)('0' + s % 10);
		out[o++] = '.';
		if (d >= 100)
			out[o++] = (char)('0' + d / 100);
		if (d >= 10)
			out[o++] = (char)('0' + d / 10 % 10);
		out[o++] = (char)('0' + d % 10);
		out[o] = '\0';
	}
	return out;
}

static enum smtp_reply_status fail(struct smtp_reply_parser *p, const char *why, const char **error_r)
{
	p->error = why;
	if (error_r != NULL)
		*error_r = why;
	return SMTP_REPLY_ERROR;
}

/* A complete line in p->line (its CR, if any, still there). Returns 1 when
 * it ended the reply, 0 when more lines follow, -1 on error. */
static int take_line(struct smtp_reply_parser *p)
{
	const char *l = p->line;
	size_t len = p->line_len;

	if (len > 0 && l[len - 1] == '\r')
		len--; /* a bare LF is as good as CRLF */
	if (memchr(l, '\0', len) != NULL) {
		p->error = "NUL byte in reply";
		return -1;
	}
	/* RFC 5321 4.2: Reply-code = %x32-35 %x30-35 %x30-39. */
	if (len < 3 || l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '5' || !is_digit(l[2])) {
		p->error = "reply does not start with a valid code";
		return -1;
	}
	if (len > 3 && l[3] != ' ' && l[3] != '-') {
		p->error = "reply code not followed by a space or '-'";
		return -1;
	}
	unsigned code = (unsigned)(l[0] - '0') * 100 + (unsigned)(l[1] - '0') * 10 + (unsigned)(l[2] - '0');
	if (p->n_lines > 0 && code != p->code) {
		p->error = "reply lines with different codes";
		return -1;
	}
	if (p->n_lines >= SMTP_REPLY_LINES_MAX) {
		p->error = "reply has too many lines";
		return -1;
	}
	const char *text = len > 4 ? l + 4 : "";
	size_t text_len = len > 4 ? len - 4 : 0;
	if (buf_len(&p->text) + text_len + 1 > SMTP_REPLY_TEXT_MAX + p->n_lines + 1) {
		p->error = "reply is too long";
		return -1;
	}
	struct line_pos *pos = &p->pos[p->n_lines];
	pos->off = buf_len(&p->text);
	pos->len = text_len;
	pos->esc_len = smtp_esc_parse(text, text_len, &pos->esc);
	if (pos->esc_len > 0 && pos->esc.cls != l[0] - '0') {
		/* RFC 2034 4: the class must match the reply; otherwise it is
		 * just text. */
		pos->esc_len = 0;
		memset(&pos->esc, 0, sizeof(pos->esc));
	}
	if (buf_append(&p->text, text, text_len) < 0 || buf_append(&p->text, "", 1) < 0) {
		p->error = "reply is too long";
		return -1;
	}
	p->code = code;
	p->n_lines++;
	return len > 3 && l[3] == '-' ? 0 : 1;
}

static void fill_reply(struct smtp_reply_parser *p, struct smtp_reply *r)
{
	const char *base = buf_ptr(&p->text);

	memset(r, 0, sizeof(*r));
	r->code = p->code;
	r->n_lines = p->n_lines;
	r->lines = p->lines;
	for (size_t i = 0; i < p->n_lines; i++) {
		p->lines[i].text = base + p->pos[i].off;
		p->lines[i].len = p->pos[i].len;
		p->lines[i].esc = p->pos[i].esc;
		p->lines[i].esc_len = p->pos[i].esc_len;
		if (r->esc.cls == 0)
			r->esc = p->pos[i].esc;
	}
}

enum smtp_reply_status smtp_reply_parse(struct smtp_reply_parser *p, const char *data, size_t len,
					size_t *consumed_r, struct smtp_reply *reply_r, const char **error_r)
{
	size_t i = 0;

	*consumed_r = 0;
	if (p->error != NULL)
		return fail(p, p->error, error_r);
	if (p->done)
		start_reply(p);
	while (i < len) {
		const char *lf = memchr(data + i, '\n', len - i);
		size_t n = lf != NULL ? (size_t)(lf - (data + i)) : len - i;

		/* SMTP_REPLY_LINE_MAX includes the line end: at most MAX - 1
		 * octets before the LF (a CR among them). */
		if (p->line_len + n > SMTP_REPLY_LINE_MAX - 1) {
			*consumed_r = i;
			return fail(p, "reply line too long", error_r);
		}
		memcpy(p->line + p->line_len, data + i, n);
		p->line_len += n;
		i += n;
		if (lf == NULL)
			break;
		i++; /* the LF */
		int rc = take_line(p);
		p->line_len = 0;
		if (rc < 0) {
			*consumed_r = i;
			return fail(p, p->error, error_r);
		}
		if (rc == 1) {
			fill_reply(p, reply_r);
			p->done = true;
			*consumed_r = i;
			return SMTP_REPLY_DONE;
		}
	}
	*consumed_r = i;
	return SMTP_REPLY_NEED_MORE;
}

/* Append text[0..len) to out, printable ASCII only. */
static void summary_put(char *out, size_t size, size_t *o, const char *text, size_t len)
{
	for (size_t i = 0; i < len && *o + 1 < size; i++) {
		unsigned char c = (unsigned char)text[i];
		out[(*o)++] = (c >= ' ' && c < 0x7f) ? (char)c : '?';
	}
}

static bool esc_eq(const struct smtp_esc *a, const struct smtp_esc *b)
{
	return a->cls == b->cls && a->subject == b->subject && a->detail == b->detail;
}

size_t smtp_reply_summary(const struct smtp_reply *r, char *out, size_t size)
{
	char code[4];
	size_t o = 0;

	if (size == 0)
		return 0;
	code[0] = (char)('0' + r->code / 100 % 10);
	code[1] = (char)('0' + r->code / 10 % 10);
	code[2] = (char)('0' + r->code % 10);
	code[3] = '\0';
	summary_put(out, size, &o, code, 3);
	for (size_t i = 0; i < r->n_lines; i++) {
		const struct smtp_reply_line *l = &r->lines[i];
		const char *t = l->text;
		size_t n = l->len;
		if (i > 0 && l->esc.cls != 0 && esc_eq(&l->esc, &r->lines[0].esc)) {
			t += l->esc_len;
			n -= l->esc_len;
		}
		if (n == 0)
			continue;
		summary_put(out, size, &o, " ", 1);
		summary_put(out, size, &o, t, n);
	}
	out[o] = '\0';
	return o;
}

/* Does the keyword at kw[0..n) equal name (without case)? */
static bool keyword_is(const char *kw, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp(kw, name, n) == 0;
}

static void ehlo_auth_mechs(struct smtp_ehlo *e, const char *p, const char *end)
{
	while (p < end) {
		while (p < end && *p == ' ')
			p++;
		const char *w = p;
		while (p < end && *p != ' ')
			p++;
		size_t n = (size_t)(p - w);
		if (n == 0)
			break;
		if (keyword_is(w, n, "PLAIN"))
			e->auth_mechs |= SMTP_EHLO_AUTH_PLAIN;
		else if (keyword_is(w, n, "LOGIN"))
			e->auth_mechs |= SMTP_EHLO_AUTH_LOGIN;
		else
			e->auth_mechs |= SMTP_EHLO_AUTH_OTHER;
	}
}

void smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_ehlo *e)
{
	memset(e, 0, sizeof(*e));
	/* Line 0 is "domain [greeting]" (RFC 5321 4.1.1.1). */
	for (size_t i = 1; i < r->n_lines; i++) {
		const char *t = r->lines[i].text, *end = t + r->lines[i].len;
		const char *kw = t;
		while (t < end && *t != ' ' && *t != '=')
			t++;
		size_t n = (size_t)(t - kw);
		const char *params = t < end ? t + 1 : end;

		if (keyword_is(kw, n, "PIPELINING")) {
			e->pipelining = true;
		} else if (keyword_is(kw, n, "SIZE")) {
			/* RFC 1870 4: "SIZE" [SP number]; 0 means no fixed limit. */
			uint64_t v = 0;
			size_t vn = 0;
			while (params + vn < end && params[vn] != ' ')
				vn++;
			e->size = true;
			e->size_max = strnum_u64(params, vn, &v) ? v : 0;
		} else if (keyword_is(kw, n, "8BITMIME")) {
			e->eightbitmime = true;
		} else if (keyword_is(kw, n, "SMTPUTF8")) {
			e->smtputf8 = true;
		} else if (keyword_is(kw, n, "STARTTLS")) {
			e->starttls = true;
		} else if (keyword_is(kw, n, "AUTH")) {
			e->auth = true;
			ehlo_auth_mechs(e, params, end);
		} else if (keyword_is(kw, n, "CHUNKING")) {
			e->chunking = true;
		} else if (keyword_is(kw, n, "DSN")) {
			e->dsn = true;
		} else if (keyword_is(kw, n, "ENHANCEDSTATUSCODES")) {
			e->enhancedstatuscodes = true;
		}
	}
}
