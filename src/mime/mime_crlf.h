#ifndef POSTBOTE_MIME_CRLF_H
#define POSTBOTE_MIME_CRLF_H

/*
 * Message bytes as IMAP sends them: a LF without a CR before it becomes
 * CRLF (RFC 3501 2.3.4 counts sizes in CRLF lines; Maildir files may hold
 * bare LFs) and NUL becomes 0x80 (literals may not carry NUL). Streaming:
 * the state carries the last byte across calls, so a range may be
 * converted in pieces of any size. The result has exactly the "virtual"
 * size the parser counted for the same range.
 */

#include <stddef.h>

#include "core/buf.h"

struct mime_crlf {
	unsigned char last;
};

static inline void mime_crlf_init(struct mime_crlf *c) { c->last = 0; }

/* Convert from in into out as far as out's maximum allows. Returns the
 * number of input bytes consumed: len, or fewer when out filled up (call
 * again with the rest once it has drained). */
size_t mime_crlf_convert(struct mime_crlf *c, const void *in, size_t len, struct buf *out);

#endif
