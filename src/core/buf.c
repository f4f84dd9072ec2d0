#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"

void buf_init(struct buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->off = b->len = b->cap = 0;
}

/* Make room for extra bytes at the end: compact first, grow second. The
 * maximum was checked by the caller, so growth here is bounded by max. */
static void buf_reserve(struct buf *b, size_t extra)
{
	size_t need = b->len + extra;

	if (b->off + need <= b->cap)
		return;
	if (b->off > 0) {
		memmove(b->data, b->data + b->off, b->len);
		b->off = 0;
		if (need <= b->cap)
			return;
	}
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	if (cap > b->max && need <= b->max)
		cap = b->max;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
}

int buf_append(struct buf *b, const void *data, size_t len)
{
	if (len > buf_room(b))
		return -1;
	if (len == 0)
		return 0;
	buf_reserve(b, len);
	memcpy(b->data + b->off + b->len, data, len);
	b->len += len;
	return 0;
}

int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	char small[512];

	va_copy(ap2, ap);
	int n = vsnprintf(small, sizeof(small), fmt, ap2);
	va_end(ap2);
	if (n < 0 || (size_t)n > buf_room(b))
		return -1;
	if ((size_t)n < sizeof(small))
		return buf_append(b, small, (size_t)n);
	/* Longer than the stack buffer: rare (big untagged responses). */
	char *tmp = xmalloc((size_t)n + 1);
	vsnprintf(tmp, (size_t)n + 1, fmt, ap);
	int rc = buf_append(b, tmp, (size_t)n);
	free(tmp);
	return rc;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->off = b->len = 0;
		return;
	}
	b->off += n;
	b->len -= n;
}

void buf_reset(struct buf *b)
{
	b->off = b->len = 0;
}

void buf_shrink(struct buf *b, size_t keep)
{
	if (b->cap <= keep)
		return;
	if (b->len == 0) {
		buf_free(b);
		return;
	}
	size_t cap = 256;
	while (cap < b->len)
		cap *= 2;
	if (cap >= b->cap)
		return;
	memmove(b->data, b->data + b->off, b->len);
	b->off = 0;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
}
