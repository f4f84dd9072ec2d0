#ifndef POSTBOTE_CORE_XALLOC_H
#define POSTBOTE_CORE_XALLOC_H

/*
 * Allocation for small, fixed-size objects the server itself decides to make
 * (a session struct, a config string). These abort on failure: there is no
 * sensible protocol answer when a few hundred bytes cannot be had.
 *
 * Anything a peer can make grow (input buffers, literals, message data) must
 * NOT use these; it is bounded and fails soft (see buf.h).
 */

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a fresh string; aborts on failure. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
