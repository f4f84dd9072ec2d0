#ifndef POSTBOTE_MIME_HEADER_H
#define POSTBOTE_MIME_HEADER_H

/*
 * What the parser keeps from a part's header fields: the Content-* values
 * (RFC 2045 5-9, RFC 2183, RFC 3066 Content-Language, RFC 2557
 * Content-Location, RFC 1864 Content-MD5) and, for a message (the root or
 * the inside of a message/rfc822 part), the ENVELOPE fields. Folder-private.
 *
 * A field arrives complete: name, and the value as it is seen by servers
 * that compute BODYSTRUCTURE (whitespace after the colon skipped, folded
 * lines joined with LF, CRs of the folds dropped).
 */

#include <stdbool.h>
#include <stddef.h>

#include "mime/mime_tree.h"

enum mime__hdr {
	MIME__HDR_OTHER = 0,
	MIME__HDR_CONTENT_TYPE,
	MIME__HDR_CONTENT_TRANSFER_ENCODING,
	MIME__HDR_CONTENT_ID,
	MIME__HDR_CONTENT_DESCRIPTION,
	MIME__HDR_CONTENT_DISPOSITION,
	MIME__HDR_CONTENT_LANGUAGE,
	MIME__HDR_CONTENT_LOCATION,
	MIME__HDR_CONTENT_MD5,
	MIME__HDR_MIME_VERSION,
	/* envelope fields, in RFC 3501 ENVELOPE order */
	MIME__HDR_DATE,
	MIME__HDR_SUBJECT,
	MIME__HDR_FROM,
	MIME__HDR_SENDER,
	MIME__HDR_REPLY_TO,
	MIME__HDR_TO,
	MIME__HDR_CC,
	MIME__HDR_BCC,
	MIME__HDR_IN_REPLY_TO,
	MIME__HDR_MESSAGE_ID,
};

/* The field a header name (before the colon, trailing blanks removed)
 * stands for, ASCII case-insensitively; MIME__HDR_OTHER for the rest. */
enum mime__hdr mime__hdr_lookup(const char *name, size_t len);

static inline bool mime__hdr_is_envelope(enum mime__hdr h)
{
	return h >= MIME__HDR_DATE;
}

/* Per-part state the parser needs from the header while it is read. */
struct mime__hdrstate {
	bool seen_ct;                       /* the first Content-Type was applied */
	bool have_boundary;                 /* it was multipart with a boundary */
	size_t boundary_len;
	char boundary[MIME_BOUNDARY_MAX];
};

/* Apply one complete field to part: Content-* values (the first one of each
 * counts; a Content-Disposition without parameters may be replaced by a
 * later one), MIME-Version and Content-Type make the part MIME, the first
 * Content-Type sets the structural flags and the boundary in st, envelope
 * fields go to part->envelope when it has one (see struct mime_envelope
 * for repeated ones). */
void mime__hdr_apply(struct mime_tree *t, struct mime_part *part, struct mime__hdrstate *st,
		     enum mime__hdr h, const char *value, size_t len);

/* Forget the Content-* values of a part that turned out not to be MIME
 * (RFC 2045 4: without MIME-Version they do not apply). */
void mime__hdr_forget_content(struct mime_part *part);

#endif
