/*
 * dovecot-keywords: the letter -> IMAP keyword map of a Maildir folder, in
 * Dovecot's format so the letters in file names keep their meaning when a
 * mailbox moves between Dovecot and postbote.
 *
 * The parser is as lenient as Dovecot's reader (a bad line costs that line,
 * never the folder), and keeps every name it can store even when it is not
 * an IMAP atom: dropping it would free its letter, and the next new keyword
 * would silently take over every message that still carries that letter.
 */

#include "maildir/keywords.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/xalloc.h"
#include "maildir/uidlist.h"

void keywords_free(struct keywords *kw)
{
	for (size_t i = 0; i < KEYWORDS_MAX; i++)
		free(kw->names[i]);
	memset(kw, 0, sizeof(*kw));
}

/* One line "<index> <name>"; false when it cannot be used. */
static bool parse_line(const char *line, size_t len, struct keywords *kw)
{
	const char *sp = memchr(line, ' ', len);
	size_t digits, name_len;
	unsigned idx = 0;

	if (sp == NULL)
		return false;
	digits = (size_t)(sp - line);
	if (digits == 0 || digits > 3)
		return false;
	for (size_t i = 0; i < digits; i++) {
		if (line[i] < '0' || line[i] > '9')
			return false;
		idx = idx * 10 + (unsigned)(line[i] - '0');
	}
	if (idx >= KEYWORDS_MAX)
		return false;
	name_len = len - digits - 1;
	if (name_len == 0 || name_len > KEYWORDS_NAME_MAX || memchr(sp + 1, '\0', name_len) != NULL ||
	    memchr(sp + 1, '\r', name_len) != NULL)
		return false;

	free(kw->names[idx]);  /* the later line for an index wins, as in Dovecot */
	kw->names[idx] = xstrndup(sp + 1, name_len);
	return true;
}

unsigned keywords_parse(const char *text, size_t len, struct keywords *kw)
{
	const char *p = text, *end = text + len;
	unsigned ignored = 0;

	memset(kw, 0, sizeof(*kw));
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t llen = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);

		if (llen > 0 && !parse_line(p, llen, kw))
			ignored++;
		p = nl != NULL ? nl + 1 : end;
	}
	kw->ignored_lines = ignored;
	return ignored;
}

int keywords_read(const char *path, struct keywords *kw, bool *missing_r, char **error_r)
{
	char *buf;
	size_t len;

	memset(kw, 0, sizeof(*kw));
	/* The file is tiny (26 lines): read whole, then parsed. */
	if (fileio_read_file(path, KEYWORDS_FILE_MAX, &buf, &len, missing_r, error_r) < 0)
		return -1;
	if (*missing_r)
		return 0;
	keywords_parse(buf, len, kw);
	free(buf);
	return 0;
}

char *keywords_format(const struct keywords *kw, size_t *len_r)
{
	size_t cap = 1, len = 0;
	char *s;

	for (size_t i = 0; i < KEYWORDS_MAX; i++) {
		if (kw->names[i] != NULL)
			cap += 4 + strlen(kw->names[i]);
	}
	s = xmalloc(cap);
	s[0] = '\0';
	for (size_t i = 0; i < KEYWORDS_MAX; i++) {
		if (kw->names[i] != NULL)
			len += (size_t)snprintf(s + len, cap - len, "%zu %s\n", i, kw->names[i]);
	}
	*len_r = len;
	return s;
}

int keywords_write(const char *path, const struct keywords *kw, bool durable, char **error_r)
{
	size_t len;
	char *text = keywords_format(kw, &len);
	int ret = maildir__lockfile_replace(path, text, len, durable, error_r);

	free(text);
	return ret;
}

bool keywords_valid_name(const char *name)
{
	size_t len = 0;

	for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++, len++) {
		/* RFC 3501 9: atom-char = <any CHAR except atom-specials>;
		 * atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards /
		 * quoted-specials / resp-specials */
		if (*p <= 0x20 || *p >= 0x7f)
			return false;
		if (strchr("(){%*\"\\]", *p) != NULL)
			return false;
		if (len >= KEYWORDS_NAME_MAX)
			return false;
	}
	return len > 0;
}

/* ASCII case-insensitive equality, whatever the locale. */
static bool equal_icase(const char *a, const char *b)
{
	for (;; a++, b++) {
		unsigned char x = (unsigned char)*a, y = (unsigned char)*b;
		if (x >= 'A' && x <= 'Z')
			x = (unsigned char)(x - 'A' + 'a');
		if (y >= 'A' && y <= 'Z')
			y = (unsigned char)(y - 'A' + 'a');
		if (x != y)
			return false;
		if (x == '\0')
			return true;
	}
}

int keywords_lookup(const struct keywords *kw, const char *name)
{
	for (int i = 0; i < KEYWORDS_MAX; i++) {
		if (kw->names[i] != NULL && equal_icase(kw->names[i], name))
			return i;
	}
	return -1;
}

int keywords_add(struct keywords *kw, const char *name)
{
	int idx;

	if (!keywords_valid_name(name))
		return -1;
	idx = keywords_lookup(kw, name);
	if (idx >= 0)
		return idx;
	for (int i = 0; i < KEYWORDS_MAX; i++) {
		if (kw->names[i] == NULL) {
			kw->names[i] = xstrdup(name);
			return i;
		}
	}
	return -1;
}

const char *keywords_name(const struct keywords *kw, int index)
{
	if (index < 0 || index >= KEYWORDS_MAX)
		return NULL;
	return kw->names[index];
}
