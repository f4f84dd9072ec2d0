/*
 * MIME parameter lists and the two header values made of them
 * (Content-Type, Content-Disposition). See mime_params.h for the RFC 2231
 * merge rules; the code below keeps to them even where they look odd
 * (plain parameters first in header order, then the merged RFC 2231 ones
 * sorted by name), because that order is what clients see in BODYSTRUCTURE
 * from other servers.
 */

#include "mime/mime_params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xalloc.h"
#include "mime/mime_charset.h"
#include "mime/mime_encword.h"

struct rfc2231_seg {
	char *key;          /* name without the '*' parts */
	char *value;
	unsigned int idx;
	bool extended;
	size_t order;       /* position in the header, for a stable sort */
};

static void params_push(struct mime__params *p, char *name, char *value)
{
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 8;
		p->v = xrealloc(p->v, p->cap * sizeof(*p->v));
	}
	p->v[p->n].name = name;
	p->v[p->n].value = value;
	p->n++;
}

void mime__params_free(struct mime__params *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->v[i].name);
		free(p->v[i].value);
	}
	free(p->v);
	memset(p, 0, sizeof(*p));
}

const char *mime__params_get(const struct mime__params *p, const char *name)
{
	for (size_t i = 0; i < p->n; i++) {
		if (strcasecmp(p->v[i].name, name) == 0)
			return p->v[i].value;
	}
	return NULL;
}

static int seg_cmp(const struct rfc2231_seg *a, const struct rfc2231_seg *b)
{
	int r = strcmp(a->key, b->key);
	if (r != 0)
		return r;
	if (a->idx != b->idx)
		return a->idx < b->idx ? -1 : 1;
	return a->order < b->order ? -1 : (a->order > b->order);
}

/* Insertion sort: lists are short and the order of equal keys must not
 * depend on the C library. */
static void segs_sort(struct rfc2231_seg *s, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		struct rfc2231_seg tmp = s[i];
		size_t j = i;
		while (j > 0 && seg_cmp(&s[j - 1], &tmp) > 0) {
			s[j] = s[j - 1];
			j--;
		}
		s[j] = tmp;
	}
}

/* Merge the collected RFC 2231 segments into out. */
static void merge_segments(struct rfc2231_seg *segs, size_t n, struct mime__params *out)
{
	struct mime__str val = { 0 };

	segs_sort(segs, n);
	for (size_t i = 0, next; i < n; i = next) {
		bool ok = true, have_ext = false;
		unsigned int want = 0;
		size_t j;

		for (j = i; j < n; j++) {
			if (strcasecmp(segs[i].key, segs[j].key) != 0)
				break;
			if (segs[j].idx != want)
				ok = false;
			have_ext |= segs[j].extended;
			want++;
		}
		next = j;
		if (!ok) {
			/* RFC 2231 3: a set with a hole is not a set; show
			 * the pieces as they were named. */
			for (j = i; j < next; j++) {
				char *name = xasprintf(segs[j].extended ? "%s*%u*" : "%s*%u",
						       segs[j].key, segs[j].idx);
				params_push(out, name, xstrdup(segs[j].value));
			}
			continue;
		}
		mime__str_truncate(&val, 0);
		if (have_ext && !segs[i].extended)
			mime__str_adds(&val, "''");
		for (j = i; j < next; j++) {
			const char *v = segs[j].value;
			if (have_ext && !segs[j].extended) {
				/* keep the joined value decodable */
				for (; *v != '\0'; v++) {
					if (*v == '%')
						mime__str_adds(&val, "%25");
					else
						mime__str_addc(&val, *v);
				}
			} else {
				mime__str_adds(&val, v);
			}
		}
		char *name = have_ext ? xasprintf("%s*", segs[i].key) : xstrdup(segs[i].key);
		params_push(out, name, xstrdup(mime__str_c(&val)));
	}
	mime__str_free(&val);
}

int mime__params_parse(struct mime__lex *lx, struct mime__params *out)
{
	struct mime__str name = { 0 }, value = { 0 };
	struct rfc2231_seg *segs = NULL;
	size_t nsegs = 0, capsegs = 0, order = 0;
	unsigned int idx = 0;   /* carried over on purpose, see below */
	bool broken = false, saved_repl = lx->nul_repl;
	int ret;

	lx->nul_repl = true;
	while ((ret = mime__parse_param(lx, &name, &value)) != 0) {
		if (ret < 0) {
			/* skip one byte and try again: a stray character
			 * should not lose the parameters after it */
			broken = true;
			if (lx->p >= lx->end)
				break;
			lx->p++;
			continue;
		}
		const char *key = mime__str_c(&name);
		const char *star = strchr(key, '*');
		bool is2231 = false, extended = false;
		if (star != NULL) {
			const char *p = star;
			/* "name*" alone keeps the index of the previous
			 * segment; servers behave so, and it only matters
			 * for headers that mix both forms. */
			if (p[1] != '\0') {
				p++;
				idx = 0;
				for (; *p >= '0' && *p <= '9'; p++) {
					if (idx < 100000000)
						idx = idx * 10 + (unsigned int)(*p - '0');
				}
			}
			if (*p == '*') {
				extended = true;
				p++;
			}
			is2231 = *p == '\0';
		}
		if (!is2231) {
			params_push(out, xstrdup(key), xstrdup(mime__str_c(&value)));
			continue;
		}
		if (nsegs == capsegs) {
			capsegs = capsegs ? capsegs * 2 : 8;
			segs = xrealloc(segs, capsegs * sizeof(*segs));
		}
		segs[nsegs].key = xstrndup(key, (size_t)(star - key));
		segs[nsegs].value = xstrdup(mime__str_c(&value));
		segs[nsegs].idx = idx;
		segs[nsegs].extended = extended;
		segs[nsegs].order = order++;
		nsegs++;
	}
	lx->nul_repl = saved_repl;
	if (nsegs > 0)
		merge_segments(segs, nsegs, out);
	for (size_t i = 0; i < nsegs; i++) {
		free(segs[i].key);
		free(segs[i].value);
	}
	free(segs);
	mime__str_free(&name);
	mime__str_free(&value);
	return broken ? -1 : 0;
}

void mime__ctype_parse(const void *value, size_t len, struct mime__ctype *out)
{
	struct mime__lex lx;
	struct mime__str both = { 0 };

	memset(out, 0, sizeof(*out));
	mime__lex_init(&lx, value, len);
	mime__skip_lwsp(&lx);
	int ret = mime__parse_content_type(&lx, &both);
	const char *s = mime__str_c(&both);
	const char *slash = strchr(s, '/');
	if (slash != NULL) {
		mime__str_add(&out->type, s, (size_t)(slash - s));
		mime__str_adds(&out->subtype, slash + 1);
	} else {
		mime__str_adds(&out->type, s);
		mime__str_add(&out->subtype, "", 0);
	}
	mime__str_add(&out->type, "", 0);
	mime__str_free(&both);
	out->ok = ret >= 0;
	if (out->ok)
		(void)mime__params_parse(&lx, &out->params);
}

void mime__ctype_free(struct mime__ctype *ct)
{
	mime__str_free(&ct->type);
	mime__str_free(&ct->subtype);
	mime__params_free(&ct->params);
}

int mime__disposition_parse(const void *value, size_t len, struct mime__str *disp,
			    struct mime__params *params)
{
	struct mime__lex lx;

	mime__lex_init(&lx, value, len);
	mime__skip_lwsp(&lx);
	if (mime__parse_token(&lx, disp) < 0) {
		mime__str_truncate(disp, 0);
		return -1;
	}
	mime__str_add(disp, "", 0);
	(void)mime__params_parse(&lx, params);
	return 0;
}

const char *mime_part_param(const struct mime_part *part, const char *name)
{
	for (uint32_t i = 0; i < part->nparams; i++) {
		if (strcasecmp(part->params[i].name, name) == 0)
			return part->params[i].value;
	}
	return NULL;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int mime_param_decode(const struct mime_param *p, struct buf *out)
{
	size_t nlen = strlen(p->name);
	const char *v = p->value;

	if (nlen == 0 || p->name[nlen - 1] != '*')
		return mime_encword_decode(v, strlen(v), out);

	/* RFC 2231 4: charset'language'percent-encoded */
	const char *q1 = strchr(v, '\'');
	const char *q2 = q1 != NULL ? strchr(q1 + 1, '\'') : NULL;
	if (q2 == NULL)
		return buf_append(out, v, strlen(v));
	char charset[64];
	size_t clen = (size_t)(q1 - v);
	if (clen >= sizeof(charset))
		clen = 0;  /* absurd charset name: treat as unknown */
	memcpy(charset, v, clen);
	charset[clen] = '\0';

	struct mime__str raw = { 0 };
	for (const char *s = q2 + 1; *s != '\0'; s++) {
		int hi, lo;
		if (*s == '%' && (hi = hexval((unsigned char)s[1])) >= 0 &&
		    (lo = hexval((unsigned char)s[2])) >= 0) {
			mime__str_addc(&raw, (char)(hi << 4 | lo));
			s += 2;
		} else {
			mime__str_addc(&raw, *s);
		}
	}
	int rc = mime_charset_to_utf8(clen > 0 ? charset : "us-ascii",
				      mime__str_c(&raw), raw.len, out);
	mime__str_free(&raw);
	return rc;
}
