/*
 * SEARCH text keys over a streamed message (see imap_search_text.h).
 *
 * The message goes through mime_parse with hooks: header fields arrive
 * whole (at most MIME_HEADER_VALUE_MAX bytes) and are matched at once;
 * body bytes arrive in pieces, are decoded (base64, quoted-printable),
 * converted to UTF-8 a line batch at a time (so a multibyte character is
 * never cut in two by a chunk boundary) and fed to the body matchers, each
 * of which keeps the last needle-length-minus-one bytes it saw so that a
 * match straddling two pieces is found.
 */
#include "imap/imap_search_text.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/xalloc.h"
#include "mime/mime_charset.h"
#include "mime/mime_decode.h"
#include "mime/mime_encword.h"
#include "mime/mime_parse.h"

#define STEXT_READ_CHUNK (32 * 1024)
/* Decoded bytes held back waiting for a line end before conversion. */
#define STEXT_PENDING_MAX (64 * 1024)

/* ---- folding ---- */

/* The lower-case partner of a code point of U+00C0..U+017F, or cp. */
static unsigned fold_latin(unsigned cp)
{
	if (cp >= 0xc0 && cp <= 0xde && cp != 0xd7)
		return cp + 0x20;
	if (cp == 0x178)
		return 0xff;
	if ((cp >= 0x100 && cp <= 0x12f) || (cp >= 0x132 && cp <= 0x137) || (cp >= 0x14a && cp <= 0x177))
		return cp | 1u;  /* pairs: even upper, odd lower */
	if ((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17e))
		return (cp & 1u) ? cp + 1 : cp;  /* pairs: odd upper, even lower */
	return cp;
}

void imap__fold(char *s, size_t len)
{
	unsigned char *p = (unsigned char *)s;

	for (size_t i = 0; i < len; i++) {
		if (p[i] >= 'A' && p[i] <= 'Z') {
			p[i] = (unsigned char)(p[i] - 'A' + 'a');
		} else if ((p[i] == 0xc3 || p[i] == 0xc4 || p[i] == 0xc5) && i + 1 < len &&
			   (p[i + 1] & 0xc0) == 0x80) {
			/* Two-byte sequences stay two bytes long. */
			unsigned cp = fold_latin((unsigned)(p[i] & 0x1f) << 6 | (p[i + 1] & 0x3fu));
			p[i] = (unsigned char)(0xc0 | cp >> 6);
			p[i + 1] = (unsigned char)(0x80 | (cp & 0x3f));
			i++;
		}
	}
}

/* ---- matchers ---- */

void imap__stext_init(struct imap__stext_key *key, enum imap__stext_kind kind, char *field,
		      const char *needle, size_t len)
{
	memset(key, 0, sizeof(*key));
	key->kind = kind;
	key->field = field;
	key->needle = xmalloc(len + 1);
	memcpy(key->needle, needle, len);
	key->needle[len] = '\0';
	imap__fold(key->needle, len);
	key->len = len;
	key->join = xmalloc(2 * len + 1);
}

void imap__stext_free(struct imap__stext_key *key)
{
	free(key->field);
	free(key->needle);
	free(key->join);
	key->field = key->needle = key->join = NULL;
}

/* Feed folded text; a match may span this piece and the ones before. */
static void match_feed(struct imap__stext_key *k, const char *data, size_t len)
{
	size_t keep = k->len - 1;

	if (k->found || len == 0)
		return;
	if (k->len == 0) {
		k->found = true;
		return;
	}
	size_t head = len < keep ? len : keep;
	memcpy(k->join + k->tlen, data, head);
	if (k->tlen > 0 && memmem(k->join, k->tlen + head, k->needle, k->len) != NULL) {
		k->found = true;
		return;
	}
	if (memmem(data, len, k->needle, k->len) != NULL) {
		k->found = true;
		return;
	}
	if (len >= keep) {
		memcpy(k->join, data + len - keep, keep);
		k->tlen = keep;
	} else {
		/* join holds tail + all of data: keep its last bytes */
		size_t total = k->tlen + len;
		size_t n = total < keep ? total : keep;
		memmove(k->join, k->join + total - n, n);
		k->tlen = n;
	}
}

static void match_once(struct imap__stext_key *k, const char *data, size_t len)
{
	k->tlen = 0;
	match_feed(k, data, len);
	k->tlen = 0;
}

/* ---- the parse ---- */

struct stext_run {
	struct imap__stext_key *keys;
	size_t n;
	bool want_body;
	bool want_text_headers;

	struct buf hval;            /* one decoded header value */

	const struct mime_part *part;   /* whose body is being decoded */
	bool part_text;
	const char *charset;
	enum mime_cte cte;
	struct mime_b64dec b64;
	struct mime_qpdec qp;
	struct buf decoded;         /* decoded, not yet converted */
	struct buf utf8;
};

static bool all_found(const struct stext_run *r)
{
	for (size_t i = 0; i < r->n; i++) {
		if (!r->keys[i].found)
			return false;
	}
	return true;
}

static void on_header(void *ctx, const struct mime_part *part, const char *name, size_t name_len,
		      const char *value, size_t value_len, bool truncated)
{
	struct stext_run *r = ctx;
	bool root = part->parent == NULL;

	(void)truncated;
	if (!root && !r->want_text_headers)
		return;
	buf_reset(&r->hval);
	if (r->want_text_headers) {
		buf_append(&r->hval, name, name_len);
		buf_append(&r->hval, ": ", 2);
	}
	size_t vstart = buf_len(&r->hval);
	mime_encword_decode(value, value_len, &r->hval);
	char *v = (char *)buf_ptr(&r->hval);
	imap__fold(v, buf_len(&r->hval));
	for (size_t i = 0; i < r->n; i++) {
		struct imap__stext_key *k = &r->keys[i];
		if (k->kind == IMAP__STEXT_TEXT) {
			match_once(k, v, buf_len(&r->hval));
		} else if (k->kind == IMAP__STEXT_HEADER && root && strlen(k->field) == name_len &&
			   strncasecmp(k->field, name, name_len) == 0) {
			/* RFC 3501 6.4.4: an empty string matches every
			 * message that has the field. */
			if (k->len == 0)
				k->found = true;
			else
				match_once(k, v + vstart, buf_len(&r->hval) - vstart);
		}
	}
}

static void body_matchers(struct stext_run *r, char *text, size_t len)
{
	imap__fold(text, len);
	for (size_t i = 0; i < r->n; i++) {
		if (r->keys[i].kind != IMAP__STEXT_HEADER)
			match_feed(&r->keys[i], text, len);
	}
}

/* Convert decoded text up to its last line end (all of it at the end of
 * the part, or when too much is held back). */
static void convert_pending(struct stext_run *r, bool all)
{
	const char *d = buf_ptr(&r->decoded);
	size_t len = buf_len(&r->decoded);
	size_t n = len;

	if (!all && len < STEXT_PENDING_MAX) {
		const char *lf = NULL;
		for (size_t i = len; i > 0; i--) {
			if (d[i - 1] == '\n') {
				lf = d + i;
				break;
			}
		}
		if (lf == NULL)
			return;
		n = (size_t)(lf - d);
	}
	buf_reset(&r->utf8);
	mime_charset_to_utf8(r->charset, d, n, &r->utf8);
	body_matchers(r, (char *)buf_ptr(&r->utf8), buf_len(&r->utf8));
	buf_consume(&r->decoded, n);
}

static void part_end(struct stext_run *r)
{
	if (r->part == NULL)
		return;
	if (r->part_text) {
		if (r->cte == MIME_CTE_QP)
			mime_qpdec_finish(&r->qp, &r->decoded);
		else if (r->cte == MIME_CTE_BASE64)
			mime_b64dec_finish(&r->b64);
		convert_pending(r, true);
	}
	buf_reset(&r->decoded);
	for (size_t i = 0; i < r->n; i++)
		r->keys[i].tlen = 0;  /* no match across parts */
	r->part = NULL;
}

static const char *part_charset(const struct mime_part *part)
{
	for (uint32_t i = 0; i < part->nparams; i++) {
		if (part->params[i].name != NULL && strcasecmp(part->params[i].name, "charset") == 0)
			return part->params[i].value;
	}
	return NULL;
}

static void on_body(void *ctx, const struct mime_part *part, const void *data, size_t len)
{
	struct stext_run *r = ctx;

	if (!r->want_body || (part->flags & MIME_PART_MULTIPART))
		return;
	if (part != r->part) {
		part_end(r);
		r->part = part;
		r->part_text = (part->flags & MIME_PART_TEXT) != 0;
		r->charset = part_charset(part);
		r->cte = mime_cte_parse(part->encoding);
		mime_b64dec_init(&r->b64);
		mime_qpdec_init(&r->qp);
	}
	if (!r->part_text)
		return;
	const char *p = data;
	while (len > 0) {
		/* Decoding never grows the text, apart from the few
		 * blanks quoted-printable holds back: feed what fits. */
		size_t room = buf_room(&r->decoded);
		size_t n = room > 128 ? room - 128 : 0;
		if (n > len)
			n = len;
		if (n == 0) {
			convert_pending(r, true);
			continue;
		}
		if (r->cte == MIME_CTE_BASE64)
			mime_b64dec_feed(&r->b64, p, n, &r->decoded);
		else if (r->cte == MIME_CTE_QP)
			mime_qpdec_feed(&r->qp, p, n, &r->decoded);
		else
			buf_append(&r->decoded, p, n);
		p += n;
		len -= n;
		convert_pending(r, false);
	}
}

enum imap_status imap__stext_run(const struct imap_backend *be, struct imap_mailbox *mb, uint32_t uid,
				 struct imap__stext_key *keys, size_t n)
{
	struct stext_run r;
	enum imap_status st = IMAP_OK;

	memset(&r, 0, sizeof(r));
	r.keys = keys;
	r.n = n;
	for (size_t i = 0; i < n; i++) {
		keys[i].found = false;
		keys[i].tlen = 0;
		if (keys[i].kind != IMAP__STEXT_HEADER)
			r.want_body = true;
		if (keys[i].kind != IMAP__STEXT_HEADER && keys[i].len == 0)
			keys[i].found = true;  /* the empty string is in every text */
		if (keys[i].kind == IMAP__STEXT_TEXT)
			r.want_text_headers = true;
	}
	void *reader = be->message_open(be->ctx, mb, uid, &st);
	if (reader == NULL)
		return st == IMAP_OK ? IMAP_TEMPFAIL : st;

	/* A header value is at most MIME_HEADER_VALUE_MAX bytes; decoded to
	 * UTF-8 it can grow threefold (a Latin-1 byte becomes two, a broken
	 * one three). */
	buf_init(&r.hval, 4 * MIME_HEADER_VALUE_MAX + 512);
	buf_init(&r.decoded, STEXT_PENDING_MAX + STEXT_READ_CHUNK);
	buf_init(&r.utf8, 3 * (STEXT_PENDING_MAX + STEXT_READ_CHUNK) + 16);
	struct mime_parse_hooks hooks = { .header = on_header, .body = on_body, .ctx = &r };
	struct mime_parser *p = mime_parser_new(&hooks);
	char *chunk = xmalloc(STEXT_READ_CHUNK);
	uint64_t off = 0;
	for (;;) {
		ssize_t got = be->message_pread(reader, chunk, STEXT_READ_CHUNK, off);
		if (got <= 0)
			break;
		mime_parser_feed(p, chunk, (size_t)got);
		off += (uint64_t)got;
		if (all_found(&r))
			break;
	}
	struct mime_tree *t = mime_parser_finish(&p);
	part_end(&r);
	mime_tree_free(&t);
	free(chunk);
	be->message_close(reader);
	buf_free(&r.hval);
	buf_free(&r.decoded);
	buf_free(&r.utf8);
	return IMAP_OK;
}
