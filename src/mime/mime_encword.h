#ifndef POSTBOTE_MIME_ENCWORD_H
#define POSTBOTE_MIME_ENCWORD_H

/*
 * RFC 2047 encoded words, decoded to UTF-8 for SEARCH (IMAP ENVELOPE sends
 * header values undecoded; RFC 3501 6.4.4 wants SEARCH to match the
 * decoded text).
 */

#include <stddef.h>

#include "core/buf.h"

/* Append the header value in[0..len) to out with every encoded word
 * ("=?charset?B|Q?text?=", charset possibly with an RFC 2231 "*lang")
 * decoded and converted to UTF-8. White space between two adjacent encoded
 * words is dropped (RFC 2047 6.2) and adjacent words in the same charset
 * are joined before conversion, so a character split across two words
 * survives. CR and LF (folding) are dropped; everything else is copied. A
 * malformed word is copied as it is. Returns 0, or -1 if out is full. */
int mime_encword_decode(const char *in, size_t len, struct buf *out);

#endif
