#ifndef POSTBOTE_MIME_BODYSTRUCTURE_H
#define POSTBOTE_MIME_BODYSTRUCTURE_H

/*
 * IMAP BODY and BODYSTRUCTURE (RFC 3501 7.4.2) of a part and everything in
 * it.
 *
 * The conventions are the ones clients see from Dovecot: a part without
 * Content-Type is "text" "plain" with charset us-ascii; a text part without
 * a charset parameter gets ("charset" "us-ascii"); a multipart without any
 * body part shows one empty text/plain part (RFC 3501 requires at least
 * one); a missing Content-Transfer-Encoding is "7bit"; sizes are in CRLF
 * bytes; Content-ID, -Description, -MD5 and -Location are sent with their
 * line breaks removed. BODYSTRUCTURE adds every extension field: for a
 * multipart the parameters (boundary...), disposition, language and
 * location; for a single part MD5, disposition, language and location.
 */

#include <stdbool.h>

#include "core/buf.h"
#include "mime/mime_tree.h"

/* Append "(" body ")" for part: BODYSTRUCTURE when extended, BODY
 * otherwise. Returns 0, or -1 when it does not fit (out unchanged). */
int mime_bodystructure_write(const struct mime_part *part, bool extended, struct buf *out);

#endif
