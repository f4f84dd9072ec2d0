/*
 * Charset conversion to UTF-8 (see mime_charset.h). The common charsets
 * are done by hand so that SEARCH over ordinary mail never calls into
 * iconv, whose first use of a charset may read conversion modules from
 * disk.
 */

#include "mime/mime_charset.h"

#include <errno.h>
#include <iconv.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

static const char replacement[] = "\xef\xbf\xbd";

static bool name_is(const char *cs, const char *const *names)
{
	for (; *names != NULL; names++) {
		if (strcasecmp(cs, *names) == 0)
			return true;
	}
	return false;
}

static int latin1_to_utf8(const unsigned char *s, size_t len, struct buf *out)
{
	char tmp[512];
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		if (n + 2 > sizeof(tmp)) {
			if (buf_append(out, tmp, n) < 0)
				return -1;
			n = 0;
		}
		if (s[i] < 0x80) {
			tmp[n++] = (char)s[i];
		} else {
			tmp[n++] = (char)(0xc0 | s[i] >> 6);
			tmp[n++] = (char)(0x80 | (s[i] & 0x3f));
		}
	}
	return buf_append(out, tmp, n);
}

static int via_iconv(const char *charset, const char *s, size_t len, struct buf *out)
{
	iconv_t cd = iconv_open("UTF-8", charset);
	char tmp[1024];

	if (cd == (iconv_t)-1)
		return buf_append(out, s, len);  /* unknown: keep the bytes */
	char *in = (char *)s;
	size_t inleft = len;
	int rc = 0;
	while (inleft > 0 && rc == 0) {
		char *o = tmp;
		size_t oleft = sizeof(tmp);
		size_t r = iconv(cd, &in, &inleft, &o, &oleft);
		if (o > tmp && buf_append(out, tmp, (size_t)(o - tmp)) < 0) {
			rc = -1;
			break;
		}
		if (r != (size_t)-1 || errno == E2BIG)
			continue;
		/* EILSEQ: an invalid byte; EINVAL: a sequence cut off by
		 * the end. Either way one replacement character. */
		if (buf_append(out, replacement, 3) < 0)
			rc = -1;
		if (errno == EINVAL)
			break;
		in++;
		inleft--;
	}
	iconv_close(cd);
	return rc;
}

int mime_charset_to_utf8(const char *charset, const void *data, size_t len, struct buf *out)
{
	static const char *const passthrough[] = {
		"us-ascii", "ascii", "utf-8", "utf8", "ansi_x3.4-1968", "x-unknown", NULL
	};
	static const char *const latin1[] = {
		"iso-8859-1", "iso8859-1", "latin1", "l1", NULL
	};

	if (len == 0)
		return 0;
	if (charset == NULL || *charset == '\0' || name_is(charset, passthrough))
		return buf_append(out, data, len);
	if (name_is(charset, latin1))
		return latin1_to_utf8(data, len, out);
	return via_iconv(charset, data, len, out);
}
