/*
 * LF -> CRLF and NUL -> 0x80 for section output (see mime_crlf.h).
 */

#include "mime/mime_crlf.h"

#include <string.h>

size_t mime_crlf_convert(struct mime_crlf *c, const void *in, size_t len, struct buf *out)
{
	const unsigned char *s = in;
	size_t i = 0;

	while (i < len) {
		/* copy the run up to the next byte that needs care */
		size_t j = i;
		while (j < len && s[j] != '\n' && s[j] != '\0')
			j++;
		if (j > i) {
			size_t run = j - i;
			if (run > buf_room(out))
				run = buf_room(out);
			if (run == 0)
				return i;  /* out is full */
			(void)buf_append(out, s + i, run);
			c->last = s[i + run - 1];
			i += run;
			continue;
		}
		if (s[i] == '\0') {
			if (buf_append(out, "\x80", 1) < 0)
				return i;
			c->last = 0x80;
		} else if (c->last == '\r') {
			if (buf_append(out, "\n", 1) < 0)
				return i;
			c->last = '\n';
		} else {
			if (buf_append(out, "\r\n", 2) < 0)
				return i;
			c->last = '\n';
		}
		i++;
	}
	return i;
}
