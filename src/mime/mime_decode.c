/*
 * base64 and quoted-printable decoders (see mime_decode.h). Both keep their
 * whole state in a few bytes so a decoder can live in a SEARCH context for
 * the length of a part fed in arbitrary pieces.
 */

#include "mime/mime_decode.h"

#include <string.h>
#include <strings.h>

void mime_b64dec_init(struct mime_b64dec *d)
{
	memset(d, 0, sizeof(*d));
}

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int mime_b64dec_feed(struct mime_b64dec *d, const void *in, size_t len, struct buf *out)
{
	const unsigned char *s = in;
	unsigned char tmp[768];
	size_t n = 0;

	for (size_t i = 0; i < len && !d->done; i++) {
		int v;
		if (s[i] == '=') {
			/* RFC 2045 6.8: padding ends the data */
			d->done = true;
			break;
		}
		if ((v = b64val(s[i])) < 0)
			continue;  /* line breaks and garbage are ignored */
		d->acc = (d->acc << 6) | (uint32_t)v;
		d->nbits += 6;
		if (d->nbits >= 8) {
			d->nbits -= 8;
			tmp[n++] = (unsigned char)(d->acc >> d->nbits);
			d->acc &= (1u << d->nbits) - 1;
			if (n == sizeof(tmp)) {
				if (buf_append(out, tmp, n) < 0)
					return -1;
				n = 0;
			}
		}
	}
	return buf_append(out, tmp, n);
}

void mime_b64dec_finish(struct mime_b64dec *d)
{
	d->acc = 0;
	d->nbits = 0;
	d->done = true;
}

enum {
	QP_TEXT,
	QP_CR,       /* CR seen, maybe CRLF */
	QP_EQ,       /* "=" */
	QP_EQ_HEX,   /* "=" and one hex digit */
	QP_EQ_BLANK, /* "=" and blanks: a soft break with trailing blanks? */
	QP_EQ_CR,    /* "=" [blanks] CR */
};

void mime_qpdec_init(struct mime_qpdec *d)
{
	memset(d, 0, sizeof(*d));
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

struct qpout {
	struct buf *out;
	char tmp[512];
	size_t n;
	int rc;
};

static void put(struct qpout *o, const void *data, size_t len)
{
	const char *s = data;
	for (size_t i = 0; i < len; i++) {
		if (o->n == sizeof(o->tmp)) {
			if (buf_append(o->out, o->tmp, o->n) < 0)
				o->rc = -1;
			o->n = 0;
		}
		o->tmp[o->n++] = s[i];
	}
}

static void put_blanks(struct mime_qpdec *d, struct qpout *o)
{
	put(o, d->blank, d->nblank);
	d->nblank = 0;
}

/* One input byte; returns whether it was consumed (false: run it again in
 * the new state). */
static int qp_byte(struct mime_qpdec *d, struct qpout *o, unsigned char c)
{
	int h;

	switch (d->state) {
	case QP_TEXT:
		if (c == '=') {
			put_blanks(d, o);
			d->state = QP_EQ;
		} else if (c == ' ' || c == '\t') {
			if (d->nblank == sizeof(d->blank))
				put_blanks(d, o);  /* too long to be padding */
			d->blank[d->nblank++] = (char)c;
		} else if (c == '\r') {
			d->state = QP_CR;
		} else if (c == '\n') {
			d->nblank = 0;  /* trailing blanks go */
			put(o, "\n", 1);
		} else {
			put_blanks(d, o);
			put(o, &c, 1);
		}
		return 1;
	case QP_CR:
		d->state = QP_TEXT;
		if (c == '\n') {
			d->nblank = 0;
			put(o, "\r\n", 2);
			return 1;
		}
		put_blanks(d, o);
		put(o, "\r", 1);
		return 0;
	case QP_EQ:
		if ((h = hexval(c)) >= 0) {
			d->hex = (char)c;
			d->state = QP_EQ_HEX;
		} else if (c == ' ' || c == '\t') {
			d->blank[d->nblank++] = (char)c;
			d->state = QP_EQ_BLANK;
		} else if (c == '\r') {
			d->state = QP_EQ_CR;
		} else if (c == '\n') {
			d->state = QP_TEXT;  /* soft line break */
		} else {
			put(o, "=", 1);
			d->state = QP_TEXT;
			return 0;
		}
		return 1;
	case QP_EQ_HEX:
		d->state = QP_TEXT;
		if ((h = hexval(c)) >= 0) {
			unsigned char b = (unsigned char)(hexval((unsigned char)d->hex) << 4 | h);
			put(o, &b, 1);
			return 1;
		}
		put(o, "=", 1);
		put(o, &d->hex, 1);
		return 0;
	case QP_EQ_BLANK:
		if (c == ' ' || c == '\t') {
			if (d->nblank < sizeof(d->blank)) {
				d->blank[d->nblank++] = (char)c;
				return 1;
			}
		} else if (c == '\r') {
			d->state = QP_EQ_CR;
			return 1;
		} else if (c == '\n') {
			d->nblank = 0;
			d->state = QP_TEXT;
			return 1;
		}
		/* "=" and blanks and text: nothing was escaped */
		put(o, "=", 1);
		put_blanks(d, o);
		d->state = QP_TEXT;
		return 0;
	case QP_EQ_CR:
		if (c == '\n') {
			d->nblank = 0;
			d->state = QP_TEXT;
			return 1;
		}
		put(o, "=", 1);
		put_blanks(d, o);
		put(o, "\r", 1);
		d->state = QP_TEXT;
		return 0;
	}
	return 1;
}

int mime_qpdec_feed(struct mime_qpdec *d, const void *in, size_t len, struct buf *out)
{
	const unsigned char *s = in;
	struct qpout o = { .out = out };

	for (size_t i = 0; i < len && o.rc == 0;) {
		if (qp_byte(d, &o, s[i]))
			i++;
	}
	if (o.rc == 0 && buf_append(out, o.tmp, o.n) < 0)
		o.rc = -1;
	return o.rc;
}

int mime_qpdec_finish(struct mime_qpdec *d, struct buf *out)
{
	struct qpout o = { .out = out };

	switch (d->state) {
	case QP_CR:
		put(&o, "\r", 1);
		break;
	case QP_EQ:
	case QP_EQ_BLANK:
		put(&o, "=", 1);
		break;
	case QP_EQ_HEX:
		put(&o, "=", 1);
		put(&o, &d->hex, 1);
		break;
	case QP_EQ_CR:
		put(&o, "=\r", 2);
		break;
	}
	/* blanks at the very end are trailing blanks */
	d->nblank = 0;
	d->state = QP_TEXT;
	if (o.rc == 0 && buf_append(out, o.tmp, o.n) < 0)
		o.rc = -1;
	return o.rc;
}

enum mime_cte mime_cte_parse(const char *encoding)
{
	if (encoding == NULL)
		return MIME_CTE_IDENTITY;
	if (strcasecmp(encoding, "base64") == 0)
		return MIME_CTE_BASE64;
	if (strcasecmp(encoding, "quoted-printable") == 0)
		return MIME_CTE_QP;
	return MIME_CTE_IDENTITY;
}
