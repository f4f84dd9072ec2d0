#ifndef POSTBOTE_MIME_SECTION_H
#define POSTBOTE_MIME_SECTION_H

/*
 * IMAP BODY[section] (RFC 3501 6.4.5) resolved against a parsed tree:
 * which bytes of the message file to send, and how many bytes that will
 * be, without reading the message again.
 *
 * The answers are Dovecot's for the corners the RFC leaves open: a part
 * number that names nothing gives an empty string (not NIL); "1" of a
 * single-part message is its body; N.HEADER, N.TEXT and N.HEADER.FIELDS of
 * a part that is not message/rfc822 are empty; N.MIME of a message/rfc822
 * part is its own MIME header. Bytes are sent with every bare LF as CRLF
 * and every NUL as 0x80 (mime_crlf.h), which is what the sizes count.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "mime/mime_tree.h"

enum mime_section_kind {
	MIME_SECTION_EMPTY,          /* send "" */
	MIME_SECTION_BYTES,          /* send [offset, offset+length) through mime_crlf */
	MIME_SECTION_HEADER_FIELDS,  /* send that range through mime_hdrfilter */
};

enum mime_section_text {
	MIME_SECTION_TEXT_NONE,      /* BODY[] or BODY[1.2] */
	MIME_SECTION_TEXT_HEADER,
	MIME_SECTION_TEXT_FIELDS,
	MIME_SECTION_TEXT_FIELDS_NOT,
	MIME_SECTION_TEXT_TEXT,
	MIME_SECTION_TEXT_MIME,
};

/* The most header names HEADER.FIELDS may list, and their longest. */
#define MIME_SECTION_MAX_FIELDS 256
#define MIME_SECTION_FIELD_MAX 256

struct mime_section {
	/* the parsed specifier */
	char number[64];             /* "1.2.3", "" for the message itself */
	enum mime_section_text text;
	char **fields;               /* HEADER.FIELDS names, sorted, unique */
	size_t nfields;

	/* the resolution */
	enum mime_section_kind kind;
	const struct mime_part *part;  /* whose header or body is sent */
	uint64_t offset;             /* physical byte range in the message */
	uint64_t length;
	uint64_t size;               /* bytes that will be sent (BYTES only;
	                                HEADER.FIELDS is known after filtering) */
};

/* Parse the text between "[" and "]" (len bytes; keywords are
 * case-insensitive; header names are atoms or quoted strings) and resolve
 * it against t. Returns 0, or -1 with *error_r set (a static string) when
 * the specifier is not valid IMAP, which the server answers with BAD.
 * Free with mime_section_free() in both cases. */
int mime_section_resolve(const struct mime_tree *t, const char *spec, size_t len,
			 struct mime_section *out, const char **error_r);
void mime_section_free(struct mime_section *sec);

/* Produce the bytes of a resolved section from a message that is in memory
 * (msg, len bytes: the same message the tree was parsed from). Appends to
 * out; returns 0, or -1 if out is full. The IMAP server, which reads the
 * file in pieces, does the same with mime_crlf / mime_hdrfilter. */
int mime_section_fetch(const struct mime_section *sec, const void *msg, size_t len,
		       struct buf *out);

#endif
