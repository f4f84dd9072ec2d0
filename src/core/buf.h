#ifndef POSTBOTE_CORE_BUF_H
#define POSTBOTE_CORE_BUF_H

/*
 * A byte buffer with a hard maximum, for data whose size a peer controls.
 * Appending past the maximum fails (returns -1) and leaves the buffer as it
 * was; the caller turns that into a protocol error. Data is kept contiguous:
 * consumed bytes at the front are dropped by buf_consume() and compacted
 * lazily, so reading and appending are both cheap.
 */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct buf {
	char *data;     /* storage; readable bytes are data[off .. off+len) */
	size_t off;     /* consumed prefix not yet compacted away */
	size_t len;     /* readable bytes */
	size_t cap;     /* allocated size of data */
	size_t max;     /* the most readable bytes this buffer may ever hold */
};

/* Start an empty buffer that will never hold more than max bytes. Nothing is
 * allocated until the first append. */
void buf_init(struct buf *b, size_t max);
/* Free the storage; the buffer is empty and reusable afterwards. */
void buf_free(struct buf *b);

/* Never NULL, even before the first append (so NULL + 0 never happens). */
static inline const char *buf_ptr(const struct buf *b) { return b->data ? b->data + b->off : ""; }
static inline size_t buf_len(const struct buf *b) { return b->len; }
/* How many more bytes may be appended before the maximum. */
static inline size_t buf_room(const struct buf *b) { return b->max - b->len; }

/* Append len bytes. Returns 0, or -1 (buffer unchanged) past the maximum. */
int buf_append(struct buf *b, const void *data, size_t len);
/* Append a formatted string. Returns 0, or -1 (buffer unchanged) past the
 * maximum. */
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Drop the first n readable bytes (n <= buf_len). */
void buf_consume(struct buf *b, size_t n);
/* Drop everything readable, keeping the storage. */
void buf_reset(struct buf *b);
/* Give back storage beyond what the readable bytes need when more than keep
 * bytes are allocated: an idle connection should not hold on to the high
 * water mark of its largest reply. An empty buffer frees its storage. */
void buf_shrink(struct buf *b, size_t keep);

#endif
