/*
 * RFC 2047 decoding (see mime_encword.h). The decoded bytes of a run of
 * encoded words in one charset are collected first and converted once:
 * mailers split UTF-8 text into words at byte, not character, boundaries.
 */

#include "mime/mime_encword.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "mime/mime_charset.h"
#include "mime/mime_decode.h"

#define CHARSET_MAX 64

struct word {
	char charset[CHARSET_MAX];
	char enc;             /* 'B' or 'Q' */
	const char *text;
	size_t text_len;
	size_t end;           /* index just past "?=" */
};

/* Is there an encoded word at in[i]? RFC 2047 2: no white space inside. */
static bool parse_word(const char *in, size_t len, size_t i, struct word *w)
{
	size_t p = i + 2, cs;

	if (i + 2 > len || in[i] != '=' || in[i + 1] != '?')
		return false;
	for (cs = p; p < len && in[p] != '?'; p++) {
		if (in[p] == ' ' || in[p] == '\t' || in[p] == '\r' || in[p] == '\n')
			return false;
	}
	if (p >= len || p == cs || p - cs >= CHARSET_MAX)
		return false;
	memcpy(w->charset, in + cs, p - cs);
	w->charset[p - cs] = '\0';
	/* RFC 2231 5: charset*language */
	char *star = strchr(w->charset, '*');
	if (star != NULL)
		*star = '\0';
	p++;
	if (p + 2 > len || in[p + 1] != '?')
		return false;
	w->enc = (char)(in[p] & ~0x20);
	if (w->enc != 'B' && w->enc != 'Q')
		return false;
	p += 2;
	w->text = in + p;
	for (; p + 1 < len; p++) {
		if (in[p] == '?' && in[p + 1] == '=') {
			w->text_len = (size_t)(in + p - w->text);
			w->end = p + 2;
			return true;
		}
		if (in[p] == ' ' || in[p] == '\t' || in[p] == '\r' || in[p] == '\n')
			return false;
	}
	return false;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decoded bytes waiting for conversion. */
struct pending {
	char charset[CHARSET_MAX];
	struct buf bytes;
};

static int flush(struct pending *pd, struct buf *out)
{
	int rc = 0;
	if (buf_len(&pd->bytes) > 0)
		rc = mime_charset_to_utf8(pd->charset, buf_ptr(&pd->bytes), buf_len(&pd->bytes), out);
	buf_reset(&pd->bytes);
	return rc;
}

static int decode_word(const struct word *w, struct pending *pd, struct buf *out)
{
	if (strcasecmp(pd->charset, w->charset) != 0) {
		if (flush(pd, out) < 0)
			return -1;
		strcpy(pd->charset, w->charset);
	}
	if (w->enc == 'B') {
		struct mime_b64dec d;
		mime_b64dec_init(&d);
		return mime_b64dec_feed(&d, w->text, w->text_len, &pd->bytes);
	}
	/* RFC 2047 4.2: "_" is a space, "=XX" a byte */
	for (size_t i = 0; i < w->text_len; i++) {
		char c = w->text[i];
		int hi, lo;
		if (c == '_') {
			c = ' ';
		} else if (c == '=' && i + 2 < w->text_len &&
			   (hi = hexval(w->text[i + 1])) >= 0 &&
			   (lo = hexval(w->text[i + 2])) >= 0) {
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		if (buf_append(&pd->bytes, &c, 1) < 0)
			return -1;
	}
	return 0;
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int mime_encword_decode(const char *in, size_t len, struct buf *out)
{
	struct pending pd;
	struct word w;
	size_t i = 0;
	int rc = 0;

	pd.charset[0] = '\0';
	buf_init(&pd.bytes, buf_room(out) + 16);
	while (i < len && rc == 0) {
		if (in[i] == '=' && parse_word(in, len, i, &w)) {
			rc = decode_word(&w, &pd, out);
			i = w.end;
			/* white space up to the next encoded word vanishes */
			size_t j = i;
			while (j < len && is_ws(in[j]))
				j++;
			if (j > i && j < len && parse_word(in, len, j, &w))
				i = j;
			continue;
		}
		if (flush(&pd, out) < 0) {
			rc = -1;
			break;
		}
		if (in[i] == '\r' || in[i] == '\n') {
			i++;  /* unfold */
			continue;
		}
		size_t j = i + 1;
		while (j < len && in[j] != '=' && in[j] != '\r' && in[j] != '\n')
			j++;
		rc = buf_append(out, in + i, j - i);
		i = j;
	}
	if (rc == 0)
		rc = flush(&pd, out);
	buf_free(&pd.bytes);
	return rc;
}
