/*
 * HEADER.FIELDS filter (see mime_hdrfilter.h). A field is matched on the
 * name before its colon (blanks before the colon ignored, RFC 5322 2.2),
 * or on the whole line when it has no colon; its lines are sent exactly as
 * written except that each ends in CRLF, as every IMAP server sends them.
 */

#include "mime/mime_hdrfilter.h"

#include <string.h>
#include <strings.h>

enum {
	HF_START,    /* at the beginning of a line */
	HF_NAME,     /* reading a field name */
	HF_CONTENT,  /* the rest of a line */
	HF_DONE,     /* after the blank line */
};

void mime_hdrfilter_init(struct mime_hdrfilter *f, char *const *fields, size_t nfields,
			 bool exclude)
{
	memset(f, 0, sizeof(*f));
	f->fields = fields;
	f->nfields = nfields;
	f->exclude = exclude;
	f->state = HF_START;
}

/* Send len bytes of a kept field, NULs as 0x80 (IMAP literals cannot
 * carry NUL). */
static int emit(struct mime_hdrfilter *f, struct buf *out, const char *data, size_t len)
{
	if (!f->keep)
		return 0;
	while (len > 0) {
		const char *z = memchr(data, '\0', len);
		size_t n = z != NULL ? (size_t)(z - data) : len;
		if (buf_append(out, data, n) < 0)
			return -1;
		if (z == NULL)
			break;
		if (buf_append(out, "\x80", 1) < 0)
			return -1;
		data += n + 1;
		len -= n + 1;
	}
	return 0;
}

static void decide(struct mime_hdrfilter *f, bool long_name)
{
	size_t n = f->nname;
	bool match = false;

	while (n > 0 && (f->name[n - 1] == ' ' || f->name[n - 1] == '\t'))
		n--;
	for (size_t i = 0; i < f->nfields && !long_name; i++) {
		if (strlen(f->fields[i]) == n && strncasecmp(f->fields[i], f->name, n) == 0) {
			match = true;
			break;
		}
	}
	f->keep = match != f->exclude;
	f->state = HF_CONTENT;
}

static int content_byte(struct mime_hdrfilter *f, struct buf *out, char c)
{
	switch (f->state) {
	case HF_START:
		/* RFC 5322 2.2.3: a line starting with WSP continues the
		 * field before it and shares its fate */
		if ((c == ' ' || c == '\t') && f->have_field) {
			f->state = HF_CONTENT;
			return emit(f, out, &c, 1);
		}
		f->state = HF_NAME;
		f->nname = 0;
		f->have_field = true;
		/* fall through */
	case HF_NAME:
		if (c == ':') {
			decide(f, false);
			if (emit(f, out, f->name, f->nname) < 0)
				return -1;
			return emit(f, out, &c, 1);
		}
		if (f->nname < MIME_HDRFILTER_NAME_MAX) {
			f->name[f->nname++] = c;
			return 0;
		}
		decide(f, true);
		if (emit(f, out, f->name, f->nname) < 0)
			return -1;
		return emit(f, out, &c, 1);
	case HF_CONTENT:
		return emit(f, out, &c, 1);
	}
	return 0;
}

static int line_end(struct mime_hdrfilter *f, struct buf *out)
{
	switch (f->state) {
	case HF_START:
		/* the blank line ends the header and is always sent */
		f->state = HF_DONE;
		f->done = true;
		return buf_append(out, "\r\n", 2);
	case HF_NAME:
		/* no colon: the whole line is the name */
		decide(f, false);
		if (emit(f, out, f->name, f->nname) < 0)
			return -1;
		break;
	}
	f->state = HF_START;
	return emit(f, out, "\r\n", 2);
}

int mime_hdrfilter_feed(struct mime_hdrfilter *f, const void *data, size_t len, struct buf *out)
{
	const char *s = data;

	for (size_t i = 0; i < len && !f->done; i++) {
		if (f->state == HF_CONTENT && !f->held_cr) {
			/* the rest of a line: pass it on in one piece */
			size_t j = i;
			while (j < len && s[j] != '\r' && s[j] != '\n')
				j++;
			if (j > i) {
				if (emit(f, out, s + i, j - i) < 0)
					return -1;
				i = j;
				if (i == len)
					break;
			}
		}
		char c = s[i];
		if (f->held_cr) {
			f->held_cr = false;
			if (c == '\n') {
				if (line_end(f, out) < 0)
					return -1;
				continue;
			}
			if (content_byte(f, out, '\r') < 0)
				return -1;
		}
		if (c == '\r') {
			f->held_cr = true;
			continue;
		}
		if (c == '\n') {
			if (line_end(f, out) < 0)
				return -1;
			continue;
		}
		if (content_byte(f, out, c) < 0)
			return -1;
	}
	return 0;
}

int mime_hdrfilter_finish(struct mime_hdrfilter *f, struct buf *out)
{
	if (f->done)
		return 0;
	if (f->held_cr) {
		f->held_cr = false;
		if (content_byte(f, out, '\r') < 0)
			return -1;
	}
	if (f->state == HF_NAME) {
		decide(f, false);
		if (emit(f, out, f->name, f->nname) < 0)
			return -1;
	}
	f->state = HF_DONE;
	f->done = true;
	return 0;
}
