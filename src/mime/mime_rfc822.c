/*
 * RFC 5322 / RFC 2045 lexical pieces (see mime_rfc822.h for the return
 * convention). Written to be forgiving in the same places real servers are:
 * mail in the wild is full of unbalanced quotes and stray specials, and a
 * parser that gives up early shows the user an empty From.
 */

#include "mime/mime_rfc822.h"

#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"

#define U_FFFD "\xef\xbf\xbd"

void mime__str_add(struct mime__str *s, const void *data, size_t len)
{
	if (s->len + len + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 64;
		while (cap < s->len + len + 1)
			cap *= 2;
		s->data = xrealloc(s->data, cap);
		s->cap = cap;
	}
	if (len > 0)
		memcpy(s->data + s->len, data, len);
	s->len += len;
	s->data[s->len] = '\0';
}

void mime__str_addc(struct mime__str *s, char c)
{
	mime__str_add(s, &c, 1);
}

void mime__str_adds(struct mime__str *s, const char *cstr)
{
	mime__str_add(s, cstr, strlen(cstr));
}

void mime__str_truncate(struct mime__str *s, size_t len)
{
	if (len < s->len) {
		s->len = len;
		s->data[len] = '\0';
	}
}

void mime__str_free(struct mime__str *s)
{
	free(s->data);
	memset(s, 0, sizeof(*s));
}

bool mime__is_atext(unsigned char c)
{
	if (c >= 0x80)
		return true;
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

bool mime__is_token(unsigned char c)
{
	return (mime__is_atext(c) && c != '/' && c != '=' && c != '?') || c == '.';
}

/* Append bytes from start to the cursor, turning NULs into U+FFFD when
 * asked to. */
static void add_span(struct mime__lex *lx, struct mime__str *out,
		     const unsigned char *start, const unsigned char *stop)
{
	if (out == NULL)
		return;
	if (!lx->nul_repl) {
		mime__str_add(out, start, (size_t)(stop - start));
		return;
	}
	const unsigned char *p = start;
	while (p < stop) {
		const unsigned char *z = memchr(p, '\0', (size_t)(stop - p));
		if (z == NULL) {
			mime__str_add(out, p, (size_t)(stop - p));
			break;
		}
		mime__str_add(out, p, (size_t)(z - p));
		mime__str_adds(out, U_FFFD);
		p = z + 1;
	}
}

/* Append start..stop without a CR that ends it (used where (CR)LF folds). */
static void add_span_unfold(struct mime__lex *lx, struct mime__str *out,
			    const unsigned char *start, const unsigned char *stop)
{
	if (stop > start && stop[-1] == '\r')
		stop--;
	add_span(lx, out, start, stop);
}

int mime__skip_comment(struct mime__lex *lx)
{
	const unsigned char *start;
	int level = 1;

	if (lx->comment != NULL)
		mime__str_truncate(lx->comment, 0);
	start = ++lx->p;
	for (; lx->p < lx->end; lx->p++) {
		switch (*lx->p) {
		case '(':
			level++;
			break;
		case ')':
			if (--level == 0) {
				add_span(lx, lx->comment, start, lx->p);
				lx->p++;
				return lx->p < lx->end ? 1 : 0;
			}
			break;
		case '\n':
			add_span_unfold(lx, lx->comment, start, lx->p);
			start = lx->p + 1;
			break;
		case '\\':
			if (lx->p + 1 >= lx->end)
				return -1;
			/* A backslash before a line end or NUL escapes
			 * nothing; it stays in the text. */
			if (lx->p[1] == '\r' || lx->p[1] == '\n' || lx->p[1] == '\0')
				break;
			add_span(lx, lx->comment, start, lx->p);
			lx->p++;
			start = lx->p;
			break;
		}
	}
	return -1; /* missing ')' */
}

int mime__skip_lwsp(struct mime__lex *lx)
{
	while (lx->p < lx->end) {
		unsigned char c = *lx->p;
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			lx->p++;
			continue;
		}
		if (c != '(')
			break;
		if (mime__skip_comment(lx) < 0)
			return -1;
	}
	return lx->p < lx->end ? 1 : 0;
}

int mime__parse_atom(struct mime__lex *lx, struct mime__str *out)
{
	const unsigned char *start = lx->p;

	if (lx->p >= lx->end || !mime__is_atext(*lx->p))
		return -1;
	while (lx->p < lx->end && mime__is_atext(*lx->p))
		lx->p++;
	mime__str_add(out, start, (size_t)(lx->p - start));
	return mime__skip_lwsp(lx);
}

int mime__parse_dot_atom(struct mime__lex *lx, struct mime__str *out)
{
	const unsigned char *start;
	int ret;

	/* RFC 5322 3.2.3 dot-atom; whitespace around the dots is allowed
	 * for RFC 822's sake. */
	if (lx->p >= lx->end || !mime__is_atext(*lx->p))
		return -1;
	start = lx->p++;
	for (;;) {
		while (lx->p < lx->end && mime__is_atext(*lx->p))
			lx->p++;
		if (start == lx->p)
			return -1;
		mime__str_add(out, start, (size_t)(lx->p - start));
		if (lx->p >= lx->end)
			return 0;
		if ((ret = mime__skip_lwsp(lx)) <= 0)
			return ret;
		if (*lx->p != '.')
			return 1;
		lx->p++;
		mime__str_addc(out, '.');
		if (mime__skip_lwsp(lx) <= 0)
			return -1;
		start = lx->p;
	}
}

int mime__parse_token(struct mime__lex *lx, struct mime__str *out)
{
	const unsigned char *start = lx->p;

	while (lx->p < lx->end && mime__is_token(*lx->p))
		lx->p++;
	mime__str_add(out, start, (size_t)(lx->p - start));
	if (lx->p >= lx->end)
		return 0;
	return mime__skip_lwsp(lx);
}

int mime__parse_quoted(struct mime__lex *lx, struct mime__str *out)
{
	const unsigned char *start;

	lx->p++; /* the opening quote */
	for (start = lx->p; lx->p < lx->end; lx->p++) {
		switch (*lx->p) {
		case '"':
			add_span(lx, out, start, lx->p);
			lx->p++;
			return mime__skip_lwsp(lx);
		case '\n':
			/* folding whitespace: drop the (CR)LF */
			add_span_unfold(lx, out, start, lx->p);
			start = lx->p + 1;
			break;
		case '\\':
			if (lx->p + 1 >= lx->end)
				return -1;
			if (lx->p[1] == '\r' || lx->p[1] == '\n' || lx->p[1] == '\0')
				break;
			add_span(lx, out, start, lx->p);
			lx->p++;
			start = lx->p;
			break;
		}
	}
	return -1; /* missing '"' */
}

/* A run of atext and dots, as obs-phrase allows ("John Q. Public"). */
static int parse_atom_or_dot(struct mime__lex *lx, struct mime__str *out)
{
	const unsigned char *start = lx->p;

	while (lx->p < lx->end && (mime__is_atext(*lx->p) || *lx->p == '.'))
		lx->p++;
	mime__str_add(out, start, (size_t)(lx->p - start));
	if (lx->p >= lx->end)
		return 0;
	return mime__skip_lwsp(lx);
}

int mime__parse_phrase(struct mime__lex *lx, struct mime__str *out)
{
	int ret;

	/* RFC 5322 3.2.5 phrase / obs-phrase; the words are joined with
	 * one space. */
	if (lx->p >= lx->end)
		return 0;
	if (*lx->p == '.')
		return -1;
	for (;;) {
		if (*lx->p == '"')
			ret = mime__parse_quoted(lx, out);
		else
			ret = parse_atom_or_dot(lx, out);
		if (ret <= 0)
			return ret;
		unsigned char c = *lx->p;
		if (!mime__is_atext(c) && c != '"' && c != '.')
			break;
		mime__str_addc(out, ' ');
	}
	return mime__skip_lwsp(lx);
}

static int parse_domain_literal(struct mime__lex *lx, struct mime__str *out)
{
	const unsigned char *start = lx->p++;

	/* RFC 5322 3.4.1 domain-literal, kept with its brackets. */
	for (; lx->p < lx->end; lx->p++) {
		switch (*lx->p) {
		case '[':
			return -1;
		case ']':
			lx->p++;
			add_span(lx, out, start, lx->p);
			return mime__skip_lwsp(lx);
		case '\n':
			add_span_unfold(lx, out, start, lx->p);
			start = lx->p + 1;
			break;
		case '\\':
			if (lx->p + 1 >= lx->end)
				return -1;
			/* the quoted-pair is kept as written */
			lx->p++;
			if (*lx->p == '\r' || *lx->p == '\n' || *lx->p == '\0')
				lx->p--;
			break;
		}
	}
	return -1;
}

int mime__parse_domain(struct mime__lex *lx, struct mime__str *out)
{
	lx->p++; /* '@' */
	if (mime__skip_lwsp(lx) <= 0)
		return -1;
	if (*lx->p == '[')
		return parse_domain_literal(lx, out);
	return mime__parse_dot_atom(lx, out);
}

int mime__parse_content_type(struct mime__lex *lx, struct mime__str *out)
{
	size_t orig = out->len;
	int ret;

	/* RFC 2045 5.1: type "/" subtype, then nothing or ";". Anything
	 * else makes the whole value unusable, and it is reported as "". */
	if (mime__skip_lwsp(lx) <= 0)
		return -1;
	if (mime__parse_token(lx, out) <= 0 || out->len == orig)
		goto fail;
	if (*lx->p != '/')
		goto fail;
	lx->p++;
	if (mime__skip_lwsp(lx) <= 0)
		goto fail;
	mime__str_addc(out, '/');
	size_t sub = out->len;
	if ((ret = mime__parse_token(lx, out)) < 0 || out->len == sub ||
	    (lx->p < lx->end && *lx->p != ';'))
		goto fail;
	return ret;
fail:
	mime__str_truncate(out, orig);
	return -1;
}

int mime__parse_param(struct mime__lex *lx, struct mime__str *name, struct mime__str *value)
{
	int ret;

	mime__str_truncate(name, 0);
	mime__str_truncate(value, 0);
	if (lx->p >= lx->end)
		return 0;
	if (*lx->p != ';')
		return -1;
	lx->p++;
	if (mime__skip_lwsp(lx) <= 0)
		return -1;
	if (mime__parse_token(lx, name) <= 0)
		return -1;
	if (*lx->p != '=')
		return -1;
	lx->p++;
	if ((ret = mime__skip_lwsp(lx)) <= 0) {
		/* no value */
	} else if (*lx->p == '"') {
		ret = mime__parse_quoted(lx, value);
	} else if (*lx->p == '=') {
		/* Broken but common: name==?utf-8?b?...?= unquoted. Take
		 * everything up to the next separator. */
		const unsigned char *start = lx->p;
		while (lx->p < lx->end && *lx->p != ';' && *lx->p != ' ' &&
		       *lx->p != '\t' && *lx->p != '\r' && *lx->p != '\n')
			lx->p++;
		mime__str_add(value, start, (size_t)(lx->p - start));
	} else {
		ret = mime__parse_token(lx, value);
	}
	return ret < 0 ? -1 : 1;
}
