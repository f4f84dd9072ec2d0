#ifndef POSTBOTE_MIME_HDRFILTER_H
#define POSTBOTE_MIME_HDRFILTER_H

/*
 * BODY[HEADER.FIELDS (...)] and BODY[HEADER.FIELDS.NOT (...)] (RFC 3501
 * 6.4.5): the header fields of a message whose names are (or are not) in a
 * list, each with its continuation lines, every line ending in CRLF, then
 * the blank line that ends the header if the message had one. Fed the
 * header bytes in pieces of any size.
 */

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

#define MIME_HDRFILTER_NAME_MAX 256

struct mime_hdrfilter {
	char *const *fields;       /* names to match, case-insensitively */
	size_t nfields;
	bool exclude;              /* .NOT */
	int state;
	bool keep;                 /* the current field is sent */
	bool held_cr;
	bool have_field;           /* a field started: WSP lines continue it */
	bool done;                 /* the blank line was seen */
	size_t nname;
	char name[MIME_HDRFILTER_NAME_MAX];
};

/* fields must stay valid while the filter is used. */
void mime_hdrfilter_init(struct mime_hdrfilter *f, char *const *fields, size_t nfields,
			 bool exclude);
/* Filter len more header bytes into out. Returns 0, or -1 if out is full
 * (the filter cannot be resumed then). */
int mime_hdrfilter_feed(struct mime_hdrfilter *f, const void *data, size_t len, struct buf *out);
/* The header ended (without a blank line if none was fed). */
int mime_hdrfilter_finish(struct mime_hdrfilter *f, struct buf *out);

#endif
