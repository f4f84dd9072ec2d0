#ifndef POSTBOTE_TEST_JSON_MINI_H
#define POSTBOTE_TEST_JSON_MINI_H

/*
 * The smallest JSON reader the tests need (RFC 8259 objects, arrays,
 * strings with all escapes, numbers, true/false/null), for reading the
 * reference answers of a test corpus. Header-only so a suite can use it
 * without a build change. Test input only: it trusts the file it reads
 * (nesting is capped at 64 to stay safe, sizes are not).
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum json_type {
	JSON_NULL,
	JSON_BOOL,
	JSON_NUMBER,
	JSON_STRING,
	JSON_ARRAY,
	JSON_OBJECT,
};

struct json {
	enum json_type type;
	bool b;
	double num;
	char *str;              /* JSON_STRING (UTF-8, NUL-terminated) */
	size_t len;
	struct json *items;     /* JSON_ARRAY values / JSON_OBJECT values */
	char **keys;            /* JSON_OBJECT keys */
	size_t n;
};

struct json_rd {
	const char *p;
	const char *end;
	int depth;
};

static inline void json_free(struct json *j)
{
	free(j->str);
	for (size_t i = 0; i < j->n; i++) {
		json_free(&j->items[i]);
		if (j->keys != NULL)
			free(j->keys[i]);
	}
	free(j->items);
	free(j->keys);
	memset(j, 0, sizeof(*j));
}

static inline void json__ws(struct json_rd *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

static inline int json__hex4(const char *p, unsigned int *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		*v <<= 4;
		if (c >= '0' && c <= '9')
			*v |= (unsigned int)(c - '0');
		else if (c >= 'a' && c <= 'f')
			*v |= (unsigned int)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			*v |= (unsigned int)(c - 'A' + 10);
		else
			return -1;
	}
	return 0;
}

static inline size_t json__utf8(unsigned int cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* A string starting at the opening quote; *out is malloc()ed. */
static inline int json__string(struct json_rd *r, char **out, size_t *len_r)
{
	size_t cap = 64, n = 0;
	char *s = malloc(cap);

	r->p++;
	while (r->p < r->end && *r->p != '"') {
		char tmp[8];
		size_t k = 1;
		if (n + 8 > cap) {
			cap *= 2;
			s = realloc(s, cap);
		}
		if (*r->p != '\\') {
			s[n++] = *r->p++;
			continue;
		}
		if (++r->p >= r->end)
			break;
		switch (*r->p) {
		case 'b': tmp[0] = '\b'; break;
		case 'f': tmp[0] = '\f'; break;
		case 'n': tmp[0] = '\n'; break;
		case 'r': tmp[0] = '\r'; break;
		case 't': tmp[0] = '\t'; break;
		case 'u': {
			unsigned int cp, lo;
			if (r->end - r->p < 5 || json__hex4(r->p + 1, &cp) < 0)
				goto bad;
			r->p += 4;
			if (cp >= 0xd800 && cp < 0xdc00 && r->end - r->p >= 7 &&
			    r->p[1] == '\\' && r->p[2] == 'u' && json__hex4(r->p + 3, &lo) == 0 &&
			    lo >= 0xdc00 && lo < 0xe000) {
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				r->p += 6;
			}
			k = json__utf8(cp, tmp);
			break;
		}
		default:
			tmp[0] = *r->p;
			break;
		}
		memcpy(s + n, tmp, k);
		n += k;
		r->p++;
	}
	if (r->p >= r->end)
		goto bad;
	r->p++;
	s[n] = '\0';
	*out = s;
	*len_r = n;
	return 0;
bad:
	free(s);
	return -1;
}

static inline int json__value(struct json_rd *r, struct json *j)
{
	memset(j, 0, sizeof(*j));
	json__ws(r);
	if (r->p >= r->end || ++r->depth > 64)
		return -1;
	int rc = 0;
	char c = *r->p;
	if (c == '"') {
		j->type = JSON_STRING;
		rc = json__string(r, &j->str, &j->len);
	} else if (c == '{' || c == '[') {
		bool obj = c == '{';
		j->type = obj ? JSON_OBJECT : JSON_ARRAY;
		r->p++;
		json__ws(r);
		if (r->p < r->end && *r->p == (obj ? '}' : ']')) {
			r->p++;
		} else {
			for (;;) {
				char *key = NULL;
				size_t klen;
				json__ws(r);
				if (obj) {
					if (r->p >= r->end || *r->p != '"' || json__string(r, &key, &klen) < 0)
						return -1;
					json__ws(r);
					if (r->p >= r->end || *r->p != ':') {
						free(key);
						return -1;
					}
					r->p++;
				}
				j->items = realloc(j->items, (j->n + 1) * sizeof(*j->items));
				if (obj)
					j->keys = realloc(j->keys, (j->n + 1) * sizeof(*j->keys));
				if (obj)
					j->keys[j->n] = key;
				rc = json__value(r, &j->items[j->n]);
				j->n++;
				if (rc < 0)
					return -1;
				json__ws(r);
				if (r->p < r->end && *r->p == ',') {
					r->p++;
					continue;
				}
				if (r->p < r->end && *r->p == (obj ? '}' : ']')) {
					r->p++;
					break;
				}
				return -1;
			}
		}
	} else if (r->end - r->p >= 4 && memcmp(r->p, "null", 4) == 0) {
		j->type = JSON_NULL;
		r->p += 4;
	} else if (r->end - r->p >= 4 && memcmp(r->p, "true", 4) == 0) {
		j->type = JSON_BOOL;
		j->b = true;
		r->p += 4;
	} else if (r->end - r->p >= 5 && memcmp(r->p, "false", 5) == 0) {
		j->type = JSON_BOOL;
		r->p += 5;
	} else {
		char *endp;
		char tmp[64];
		size_t k = 0;
		while (r->p + k < r->end && k < sizeof(tmp) - 1 &&
		       strchr("+-0123456789.eE", r->p[k]) != NULL) {
			tmp[k] = r->p[k];
			k++;
		}
		tmp[k] = '\0';
		j->type = JSON_NUMBER;
		j->num = strtod(tmp, &endp);
		if (k == 0 || *endp != '\0')
			return -1;
		r->p += k;
	}
	r->depth--;
	return rc;
}

/* Parse a whole document. Returns 0, or -1 (and *out freed) on bad input. */
static inline int json_parse(const char *text, size_t len, struct json *out)
{
	struct json_rd r = { text, text + len, 0 };

	if (json__value(&r, out) < 0) {
		json_free(out);
		return -1;
	}
	json__ws(&r);
	if (r.p != r.end) {
		json_free(out);
		return -1;
	}
	return 0;
}

/* The member named key of an object, or NULL. */
static inline const struct json *json_get(const struct json *obj, const char *key)
{
	if (obj == NULL || obj->type != JSON_OBJECT)
		return NULL;
	for (size_t i = 0; i < obj->n; i++) {
		if (strcmp(obj->keys[i], key) == 0)
			return &obj->items[i];
	}
	return NULL;
}

#endif
