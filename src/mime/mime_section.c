/*
 * BODY[section] specifiers (RFC 3501 6.4.5 and the grammar in 9) and their
 * resolution against a parsed tree (see mime_section.h for the answers to
 * the questions the RFC leaves open).
 */

#include "mime/mime_section.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xalloc.h"
#include "mime/mime_crlf.h"
#include "mime/mime_hdrfilter.h"

static bool is_astring_char(unsigned char c)
{
	/* RFC 3501 9: ASTRING-CHAR */
	return c > 0x20 && c < 0x7f && strchr("(){%*\"\\", c) == NULL;
}

static bool word_at(const char *s, size_t len, size_t *i, const char *word)
{
	size_t n = strlen(word);

	if (len - *i < n || strncasecmp(s + *i, word, n) != 0)
		return false;
	*i += n;
	return true;
}

static int add_field(struct mime_section *sec, const char *name, size_t n, const char **error_r)
{
	if (n == 0 || n > MIME_SECTION_FIELD_MAX) {
		*error_r = "Invalid header field name";
		return -1;
	}
	for (size_t i = 0; i < sec->nfields; i++) {
		if (strlen(sec->fields[i]) == n && strncasecmp(sec->fields[i], name, n) == 0)
			return 0;  /* listed twice */
	}
	if (sec->nfields == MIME_SECTION_MAX_FIELDS) {
		*error_r = "Too many header field names";
		return -1;
	}
	sec->fields = xrealloc(sec->fields, (sec->nfields + 1) * sizeof(*sec->fields));
	sec->fields[sec->nfields++] = xstrndup(name, n);
	return 0;
}

static int cmp_field(const void *a, const void *b)
{
	return strcasecmp(*(char *const *)a, *(char *const *)b);
}

/* header-list = "(" header-fld-name *(SP header-fld-name) ")" */
static int parse_field_list(struct mime_section *sec, const char *s, size_t len, size_t i,
			    const char **error_r)
{
	if (i < len && s[i] == ' ')
		i++;
	if (i >= len || s[i] != '(') {
		*error_r = "Missing header field list";
		return -1;
	}
	i++;
	for (;;) {
		while (i < len && s[i] == ' ')
			i++;
		if (i >= len) {
			*error_r = "Unterminated header field list";
			return -1;
		}
		if (s[i] == ')') {
			i++;
			break;
		}
		char name[MIME_SECTION_FIELD_MAX + 1];
		size_t n = 0;
		if (s[i] == '"') {
			for (i++; i < len && s[i] != '"'; i++) {
				if (s[i] == '\\' && i + 1 < len)
					i++;
				if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0' || n == sizeof(name)) {
					*error_r = "Invalid header field name";
					return -1;
				}
				name[n++] = s[i];
			}
			if (i >= len) {
				*error_r = "Unterminated quoted string";
				return -1;
			}
			i++;
		} else {
			for (; i < len && is_astring_char((unsigned char)s[i]) && s[i] != ')'; i++) {
				if (n == sizeof(name)) {
					*error_r = "Invalid header field name";
					return -1;
				}
				name[n++] = s[i];
			}
			if (n == 0) {
				*error_r = "Invalid header field list";
				return -1;
			}
		}
		if (add_field(sec, name, n, error_r) < 0)
			return -1;
		if (i < len && s[i] != ' ' && s[i] != ')') {
			*error_r = "Invalid header field list";
			return -1;
		}
	}
	if (i != len || sec->nfields == 0) {
		*error_r = i != len ? "Junk after header field list" : "Empty header field list";
		return -1;
	}
	qsort(sec->fields, sec->nfields, sizeof(*sec->fields), cmp_field);
	return 0;
}

static int parse_spec(struct mime_section *sec, const char *s, size_t len, const char **error_r)
{
	size_t i = 0;

	/* section-part = nz-number *("." nz-number) */
	while (i < len && s[i] >= '0' && s[i] <= '9') {
		if (s[i] == '0') {
			*error_r = "Invalid section number";
			return -1;
		}
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i + 1 < len && s[i] == '.' && s[i + 1] >= '0' && s[i + 1] <= '9')
			i++;
		else
			break;
	}
	if (i >= sizeof(sec->number)) {
		*error_r = "Section number too long";
		return -1;
	}
	memcpy(sec->number, s, i);
	sec->number[i] = '\0';
	if (i == len) {
		sec->text = MIME_SECTION_TEXT_NONE;
		return 0;
	}
	if (i > 0) {
		if (s[i] != '.' || i + 1 == len) {
			*error_r = "Invalid section";
			return -1;
		}
		i++;
	}
	if (word_at(s, len, &i, "MIME")) {
		if (sec->number[0] == '\0') {
			*error_r = "MIME needs a part number";
			return -1;
		}
		sec->text = MIME_SECTION_TEXT_MIME;
	} else if (word_at(s, len, &i, "TEXT")) {
		sec->text = MIME_SECTION_TEXT_TEXT;
	} else if (word_at(s, len, &i, "HEADER.FIELDS.NOT")) {
		sec->text = MIME_SECTION_TEXT_FIELDS_NOT;
		return parse_field_list(sec, s, len, i, error_r);
	} else if (word_at(s, len, &i, "HEADER.FIELDS")) {
		sec->text = MIME_SECTION_TEXT_FIELDS;
		return parse_field_list(sec, s, len, i, error_r);
	} else if (word_at(s, len, &i, "HEADER")) {
		sec->text = MIME_SECTION_TEXT_HEADER;
	} else {
		*error_r = "Unknown section text";
		return -1;
	}
	if (i != len) {
		*error_r = "Junk after section";
		return -1;
	}
	return 0;
}

static void set_range(struct mime_section *sec, const struct mime_part *part, bool header)
{
	sec->kind = MIME_SECTION_BYTES;
	sec->part = part;
	if (header) {
		sec->offset = part->offset;
		sec->length = part->header.physical;
		sec->size = part->header.virtual_size;
	} else {
		sec->offset = mime_part_body_offset(part);
		sec->length = part->body.physical;
		sec->size = part->body.virtual_size;
	}
}

int mime_section_resolve(const struct mime_tree *t, const char *spec, size_t len,
			 struct mime_section *out, const char **error_r)
{
	const struct mime_part *part = t->root;

	memset(out, 0, sizeof(*out));
	out->kind = MIME_SECTION_EMPTY;
	if (parse_spec(out, spec, len, error_r) < 0)
		return -1;

	if (out->number[0] == '\0') {
		if (out->text == MIME_SECTION_TEXT_NONE) {
			/* BODY[]: the whole message */
			out->kind = MIME_SECTION_BYTES;
			out->part = part;
			out->offset = 0;
			out->length = part->header.physical + part->body.physical;
			out->size = mime_tree_size(t);
			return 0;
		}
	} else {
		part = mime_tree_find(t, out->number, strlen(out->number));
		if (part == NULL)
			return 0;  /* no such part: empty */
		switch (out->text) {
		case MIME_SECTION_TEXT_NONE:
			set_range(out, part, false);
			return 0;
		case MIME_SECTION_TEXT_MIME:
			set_range(out, part, true);
			return 0;
		default:
			/* HEADER, TEXT and HEADER.FIELDS name the message
			 * inside a message/rfc822 part; other parts have
			 * none */
			if (!(part->flags & MIME_PART_RFC822) || part->children == NULL)
				return 0;
			part = part->children;
			break;
		}
	}
	switch (out->text) {
	case MIME_SECTION_TEXT_HEADER:
		set_range(out, part, true);
		break;
	case MIME_SECTION_TEXT_TEXT:
		set_range(out, part, false);
		break;
	case MIME_SECTION_TEXT_FIELDS:
	case MIME_SECTION_TEXT_FIELDS_NOT:
		set_range(out, part, true);
		out->kind = MIME_SECTION_HEADER_FIELDS;
		out->size = 0;
		break;
	default:
		break;
	}
	return 0;
}

void mime_section_free(struct mime_section *sec)
{
	for (size_t i = 0; i < sec->nfields; i++)
		free(sec->fields[i]);
	free(sec->fields);
	sec->fields = NULL;
	sec->nfields = 0;
}

int mime_section_fetch(const struct mime_section *sec, const void *msg, size_t len,
		       struct buf *out)
{
	const char *m = msg;
	uint64_t start = sec->offset, n = sec->length;

	if (sec->kind == MIME_SECTION_EMPTY)
		return 0;
	if (start > len)
		start = len;
	if (n > len - start)
		n = len - start;
	if (sec->kind == MIME_SECTION_BYTES) {
		struct mime_crlf c;
		mime_crlf_init(&c);
		return mime_crlf_convert(&c, m + start, (size_t)n, out) == n ? 0 : -1;
	}
	struct mime_hdrfilter f;
	mime_hdrfilter_init(&f, sec->fields, sec->nfields,
			    sec->text == MIME_SECTION_TEXT_FIELDS_NOT);
	if (mime_hdrfilter_feed(&f, m + start, (size_t)n, out) < 0)
		return -1;
	return mime_hdrfilter_finish(&f, out);
}
