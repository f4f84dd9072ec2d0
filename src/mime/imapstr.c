/*
 * IMAP string writer (see imapstr.h). Each function measures first and
 * writes second, so a response built from many strings never ends up with
 * half a literal in it when the output buffer reaches its maximum.
 */

#include "mime/imapstr.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Switching to a literal after a few escapes keeps odd strings readable
 * and no longer than necessary. */
#define QUOTED_MAX_ESCAPES 4

static bool is_atom_char(unsigned char c)
{
	/* RFC 3501 9: ATOM-CHAR = any CHAR except atom-specials; ASTRING-CHAR
	 * adds "]" */
	if (c <= 0x1f || c >= 0x7f)
		return false;
	return strchr("(){ %*\"\\", c) == NULL;
}

static int write_literal(struct buf *out, const unsigned char *s, size_t len)
{
	char head[32];
	int hn = snprintf(head, sizeof(head), "{%zu}\r\n", len);

	if ((size_t)hn + len > buf_room(out))
		return -1;
	(void)buf_append(out, head, (size_t)hn);
	const unsigned char *p = s, *end = s + len;
	while (p < end) {
		const unsigned char *z = memchr(p, '\0', (size_t)(end - p));
		if (z == NULL) {
			(void)buf_append(out, p, (size_t)(end - p));
			break;
		}
		(void)buf_append(out, p, (size_t)(z - p));
		(void)buf_append(out, "\x80", 1);
		p = z + 1;
	}
	return 0;
}

int imapstr_write(struct buf *out, const void *data, size_t len)
{
	const unsigned char *s = data;
	size_t escapes = 0;

	for (size_t i = 0; i < len; i++) {
		if (!imapstr_is_text_char(s[i]))
			return write_literal(out, s, len);
		if ((s[i] == '"' || s[i] == '\\') && ++escapes > QUOTED_MAX_ESCAPES)
			return write_literal(out, s, len);
	}
	if (len + escapes + 2 > buf_room(out))
		return -1;
	(void)buf_append(out, "\"", 1);
	size_t start = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\') {
			(void)buf_append(out, s + start, i - start);
			(void)buf_append(out, "\\", 1);
			start = i;
		}
	}
	(void)buf_append(out, s + start, len - start);
	(void)buf_append(out, "\"", 1);
	return 0;
}

int imapstr_write_nstring(struct buf *out, const char *s)
{
	if (s == NULL)
		return buf_append(out, "NIL", 3);
	return imapstr_write(out, s, strlen(s));
}

int imapstr_write_astring(struct buf *out, const void *data, size_t len)
{
	const unsigned char *s = data;
	size_t i;

	for (i = 0; i < len; i++) {
		if (!is_atom_char(s[i]) && s[i] != ']')
			break;
	}
	if (i == len && len > 0 && !(len == 3 && strncasecmp(data, "NIL", 3) == 0))
		return buf_append(out, data, len);
	return imapstr_write(out, data, len);
}

int imapstr_write_nolf(struct buf *out, const char *s)
{
	if (s == NULL)
		return buf_append(out, "NIL", 3);
	size_t len = strlen(s);
	if (strpbrk(s, "\r\n") == NULL)
		return imapstr_write(out, s, len);

	struct buf tmp;
	buf_init(&tmp, len);
	for (size_t i = 0; i < len; i++) {
		char c = s[i], next = s[i + 1];
		if (c != '\r' && c != '\n')
			(void)buf_append(&tmp, &c, 1);
		else if (next != ' ' && next != '\t' && next != '\r' && next != '\n' && next != '\0')
			(void)buf_append(&tmp, " ", 1);
	}
	int rc = imapstr_write(out, buf_ptr(&tmp), buf_len(&tmp));
	buf_free(&tmp);
	return rc;
}

int imapstr_write_human(struct buf *out, const void *data, size_t len)
{
	const unsigned char *s = data;
	struct buf tmp;
	bool blank = true;  /* start as if after white space: lead goes */

	buf_init(&tmp, len);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = s[i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			if (!blank)
				(void)buf_append(&tmp, " ", 1);
			blank = true;
			continue;
		}
		blank = false;
		if (c == '\0')
			c = 0x80;
		(void)buf_append(&tmp, &c, 1);
	}
	size_t n = buf_len(&tmp);
	if (n > 0 && blank)
		n--;  /* the trailing space */
	int rc = imapstr_write(out, buf_ptr(&tmp), n);
	buf_free(&tmp);
	return rc;
}
