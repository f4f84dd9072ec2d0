#ifndef POSTBOTE_MIME_CHARSET_H
#define POSTBOTE_MIME_CHARSET_H

/*
 * Text in a named charset to UTF-8, for SEARCH and for decoded header and
 * parameter values. US-ASCII, UTF-8 and ISO-8859-1 are converted here
 * (they are most mail); every other charset goes through iconv(3).
 */

#include <stddef.h>

#include "core/buf.h"

/* Append len bytes of data, written in charset (a MIME charset name, any
 * case; NULL or "" means US-ASCII), to out as UTF-8. A byte sequence that
 * is not valid in the charset becomes U+FFFD; a charset that is not known
 * at all is copied unchanged (mail often lies about its charset, and the
 * bytes are still the best guess). Returns 0, or -1 when out is full (out
 * then holds part of the text). */
int mime_charset_to_utf8(const char *charset, const void *data, size_t len, struct buf *out);

#endif
