#ifndef POSTBOTE_MIME_ENVELOPE_H
#define POSTBOTE_MIME_ENVELOPE_H

/*
 * IMAP ENVELOPE (RFC 3501 7.4.2) from the envelope a parse kept.
 *
 * Values are sent as they are in the header, not RFC 2047-decoded
 * (clients decode them; that is also what Dovecot sends). The subject and
 * display names are cleaned for reading: white space runs become one
 * space, line breaks vanish. Sender and Reply-To default to From
 * (RFC 3501 7.4.2: "the server MUST set ... to the same value as from").
 */

#include "core/buf.h"
#include "mime/mime_tree.h"

/* Append "(date subject from sender reply-to to cc bcc in-reply-to
 * message-id)"; a NULL env gives ten NILs. Returns 0, or -1 when it does
 * not fit in out (which is then unchanged). */
int mime_envelope_write(const struct mime_envelope *env, struct buf *out);

#endif
