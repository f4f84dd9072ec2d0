#include "core/linereader.h"

#include <string.h>

void linereader_init(struct linereader *lr, size_t line_max, size_t buffer_max)
{
	memset(lr, 0, sizeof(*lr));
	if (buffer_max < line_max)
		buffer_max = line_max;
	buf_init(&lr->in, buffer_max);
	lr->line_max = line_max;
}

void linereader_free(struct linereader *lr)
{
	buf_free(&lr->in);
}

void linereader_set_line_max(struct linereader *lr, size_t line_max)
{
	lr->line_max = line_max;
	if (lr->in.max < line_max)
		lr->in.max = line_max;
}

int linereader_feed(struct linereader *lr, const void *data, size_t len)
{
	return buf_append(&lr->in, data, len);
}

enum linereader_status linereader_next(struct linereader *lr, const char **line_r, size_t *len_r)
{
	for (;;) {
		size_t avail = buf_len(&lr->in);
		/* Not buf_ptr() of a buffer that never held data: its storage
		 * is NULL and NULL + 0 is undefined (UBSan stops on it). */
		const char *p = avail > 0 ? buf_ptr(&lr->in) : NULL;
		const char *lf = avail > lr->scanned ?
			memchr(p + lr->scanned, '\n', avail - lr->scanned) : NULL;

		if (lr->skipping) {
			if (lf == NULL) {
				if (avail > 0)
					lr->skip_cr = p[avail - 1] == '\r';
				buf_reset(&lr->in);
				lr->scanned = 0;
				return LINEREADER_NEED_MORE;
			}
			lr->end_bare_lf = !(lf > p ? lf[-1] == '\r' : lr->skip_cr);
			buf_consume(&lr->in, (size_t)(lf - p) + 1);
			lr->scanned = 0;
			lr->skipping = false;
			continue;
		}
		if (lf == NULL) {
			/* A line that already fills line_max without its LF can
			 * only grow past it: report now, not when the LF comes
			 * (which may be never). One CR fits before the LF. */
			bool ends_cr = avail > 0 && p[avail - 1] == '\r';
			if ((ends_cr ? avail + 1 : avail + 2) > lr->line_max) {
				lr->skip_cr = ends_cr;
				buf_reset(&lr->in);
				lr->scanned = 0;
				lr->skipping = true;
				return LINEREADER_TOO_LONG;
			}
			lr->scanned = avail;
			return LINEREADER_NEED_MORE;
		}

		size_t total = (size_t)(lf - p) + 1; /* line with its LF */
		size_t len = total - 1;
		bool cr = len > 0 && p[len - 1] == '\r';
		if (cr)
			len--;
		buf_consume(&lr->in, total);
		lr->scanned = 0;
		lr->prev_bare_lf = lr->end_bare_lf;
		lr->end_bare_lf = !cr;
		/* Count the line end as CRLF even when the peer sent a bare LF,
		 * so the limit means the same for every client. */
		if (len + 2 > lr->line_max)
			return LINEREADER_TOO_LONG;
		lr->line_bare_lf = !cr;
		*line_r = p;
		*len_r = len;
		return LINEREADER_LINE;
	}
}

size_t linereader_take(struct linereader *lr, size_t want, const char **data_r)
{
	size_t n = buf_len(&lr->in);

	if (n > want)
		n = want;
	/* Never NULL, even with nothing buffered (see linereader_next). */
	*data_r = buf_len(&lr->in) > 0 ? buf_ptr(&lr->in) : "";
	buf_consume(&lr->in, n);
	lr->scanned = 0;
	return n;
}

/* Storage kept while nothing is buffered: none, as for the session's
 * output (an idle connection should cost its socket and TLS state). */
#define LINEREADER_KEEP 0

void linereader_trim(struct linereader *lr)
{
	buf_shrink(&lr->in, LINEREADER_KEEP);
}

void linereader_discard(struct linereader *lr)
{
	buf_reset(&lr->in);
	lr->scanned = 0;
	lr->skipping = false;
}
