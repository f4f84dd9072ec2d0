/*
 * Streaming RFC 5322 + MIME parser (contract in mime_parse.h).
 *
 * Why it is shaped so: a message arrives in chunks split anywhere, may be
 * tens of megabytes, and the only things that need lookahead are "is this
 * line a boundary?" and "does this header field continue on the next
 * line?". So the parser is a state machine over lines that keeps at most
 * the first PEEK_MAX bytes of a line (enough to recognise any boundary)
 * plus the one header field being assembled; body bytes are counted and
 * passed on, never stored. Bytes held back for a decision (a line's
 * beginning, the CRLF that may turn out to precede a boundary, a CR that
 * may be the first half of a CRLF) are "replayed" through the ordinary
 * states once the decision is made, so every byte is handled by exactly
 * one piece of code whatever the chunking was.
 *
 * Where the RFCs allow more than one reading, this parser takes Dovecot's
 * (see mime_parse.h), because IMAP clients cache BODYSTRUCTURE and section
 * sizes and compare them with what other servers said.
 *
 * What it must never do: allocate in proportion to a body, recurse in
 * proportion to the input, or fail on bad input.
 */

#include "mime/mime_parse.h"

#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "mime/mime_header.h"
#include "mime/mime_rfc822.h"

/* "--" boundary "--": the most of a line needed to recognise a boundary */
#define PEEK_MAX (2 + MIME_BOUNDARY_MAX + 2)
/* header names longer than this match nothing we keep */
#define NAME_KEPT 256

enum pstate {
	PS_HDR_START,   /* at the first byte of a header line */
	PS_HDR_EOH,     /* at the first line after the header's blank line */
	PS_HDR_LINE,    /* inside a header line */
	PS_BODY_START,  /* at the first byte of a body line, boundaries active */
	PS_BODY_MID,    /* inside a body line, boundaries active */
	PS_BODY_RAW,    /* no boundary can follow: everything is body */
	PS_SKIP_LINE,   /* after "--boundary" up to the end of its line */
};

enum peek_result {
	PEEK_MORE,
	PEEK_NOT,
	PEEK_BOUNDARY,
};

struct bound {
	struct mime_part *part;     /* the multipart it delimits */
	size_t len;
	char s[MIME_BOUNDARY_MAX];
};

struct mime_parser {
	struct mime_tree *tree;
	struct mime_part *part;     /* the part bytes go to now */
	struct mime_parse_hooks hooks;
	enum pstate st;
	unsigned int depth;         /* of part; the root is 0 */
	bool eof;
	unsigned char last_chr;     /* last body byte committed (for bare-LF counting) */

	struct bound *bounds;       /* innermost last; MIME_MAX_DEPTH slots */
	size_t nbounds;

	unsigned char peek[PEEK_MAX];   /* beginning of the current line */
	size_t npeek;
	const unsigned char *replay;    /* held bytes to run through again */
	size_t nreplay;

	unsigned char nl[2];        /* line end held back in a body */
	size_t nnl;
	bool held_cr;               /* body CR held back: maybe half a CRLF */

	/* the header of the current part */
	struct mime__hdrstate hs;
	bool hdr_any;               /* a header line was read */
	size_t prev_nl;             /* newline bytes of the last header line */

	/* the header line being read */
	bool l_cont;                /* continues the previous field */
	bool l_colon;
	bool l_cr;                  /* a CR is held: maybe the line end */
	size_t l_len;               /* content bytes so far */

	/* the header field being assembled */
	bool f_open;
	bool f_keep;                /* its value is captured */
	bool f_lead;                /* still in the blanks after the colon */
	bool f_trunc;
	bool f_name_long;
	enum mime__hdr f_kind;
	size_t f_namelen;
	char f_name[NAME_KEPT];
	struct mime__str f_value;
};

static void size_add(struct mime_size *dst, const struct mime_size *src)
{
	dst->physical += src->physical;
	dst->virtual_size += src->virtual_size;
	dst->lines = src->lines > UINT32_MAX - dst->lines ? UINT32_MAX : dst->lines + src->lines;
}

/* Count committed body bytes into part. A LF not preceded by CR costs one
 * virtual byte more (it is sent as CRLF). */
static void body_add(struct mime_parser *p, struct mime_part *part,
		     const unsigned char *data, size_t len)
{
	uint64_t lines = 0, bare = 0;

	if (len == 0)
		return;
	if (data[0] == '\n') {
		lines++;
		bare += p->last_chr != '\r';
	}
	const unsigned char *s = data + 1, *end = data + len, *lf;
	while (s < end && (lf = memchr(s, '\n', (size_t)(end - s))) != NULL) {
		lines++;
		bare += lf[-1] != '\r';
		s = lf + 1;
	}
	p->last_chr = data[len - 1];
	part->body.physical += len;
	part->body.virtual_size += len + bare;
	part->body.lines = lines > UINT32_MAX - part->body.lines ? UINT32_MAX
		: part->body.lines + (uint32_t)lines;
	if (p->hooks.body != NULL)
		p->hooks.body(p->hooks.ctx, part, data, len);
}

static void commit_nl(struct mime_parser *p, struct mime_part *part)
{
	body_add(p, part, p->nl, p->nnl);
	p->nnl = 0;
}

/* The current part is complete: its size joins its parent's body. */
static void finish_part(struct mime_parser *p)
{
	struct mime_part *part = p->part;

	size_add(&part->parent->body, &part->header);
	size_add(&part->parent->body, &part->body);
	p->part = part->parent;
	p->depth--;
}

static void start_header(struct mime_parser *p)
{
	struct mime_part *part = p->part;

	memset(&p->hs, 0, sizeof(p->hs));
	p->hdr_any = false;
	p->prev_nl = 0;
	p->f_open = false;
	p->l_cr = false;
	p->st = PS_HDR_START;
	/* RFC 3501 7.4.2: an envelope belongs to a message, i.e. the root
	 * and the inside of every message/rfc822 part */
	if (part->parent == NULL || (part->parent->flags & MIME_PART_RFC822))
		part->envelope = mime_tree_alloc(p->tree, sizeof(*part->envelope));
}

static void new_child(struct mime_parser *p, bool is_mime)
{
	struct mime_part *parent = p->part;
	struct mime_part *child = mime_tree_add_child(p->tree, parent);

	child->offset = mime_part_end_offset(parent);
	if (is_mime)
		child->flags |= MIME_PART_IS_MIME;  /* RFC 2046 5.1: inside a multipart */
	p->part = child;
	p->depth++;
	start_header(p);
}

static void set_body_state(struct mime_parser *p)
{
	p->st = p->nbounds > 0 ? PS_BODY_START : PS_BODY_RAW;
	p->nnl = 0;
	p->held_cr = false;
}

static void overflow(struct mime_parser *p, struct mime_part *part, uint32_t clear)
{
	part->flags &= ~clear;
	part->flags |= MIME_PART_OVERFLOW;
	p->tree->flags |= MIME_TREE_OVERFLOW;
}

/* ---- header fields ---- */

static void field_value_addc(struct mime_parser *p, char c)
{
	if (p->f_value.len < MIME_HEADER_VALUE_MAX)
		mime__str_addc(&p->f_value, c);
	else
		p->f_trunc = true;
}

static void field_open(struct mime_parser *p, size_t namelen)
{
	enum mime__hdr kind = MIME__HDR_OTHER;

	if (!p->f_name_long)
		kind = mime__hdr_lookup(p->f_name, namelen);
	if (mime__hdr_is_envelope(kind) && p->part->envelope == NULL)
		kind = MIME__HDR_OTHER;
	p->f_kind = kind;
	p->f_namelen = namelen;
	p->f_keep = kind != MIME__HDR_OTHER || p->hooks.header != NULL;
	p->f_open = true;
	p->f_trunc = false;
	mime__str_truncate(&p->f_value, 0);
}

static void field_finish(struct mime_parser *p)
{
	if (!p->f_open)
		return;
	p->f_open = false;
	if (!p->f_keep)
		return;
	const char *value = mime__str_c(&p->f_value);
	if (p->hooks.header != NULL)
		p->hooks.header(p->hooks.ctx, p->part, p->f_name, p->f_namelen,
				value, p->f_value.len, p->f_trunc);
	if (p->f_trunc && p->f_kind != MIME__HDR_OTHER)
		p->part->flags |= MIME_PART_TRUNCATED;
	mime__hdr_apply(p->tree, p->part, &p->hs, p->f_kind, value, p->f_value.len);
}

/* A byte of header line content (not the line end). */
static void hdr_content(struct mime_parser *p, unsigned char c)
{
	p->l_len++;
	if (p->l_cont) {
		if (p->f_keep)
			field_value_addc(p, (char)c);
	} else if (!p->l_colon) {
		if (c == ':') {
			/* RFC 5322 2.2: name ":" value; blanks before the
			 * colon are not part of the name */
			size_t n = p->f_namelen;
			while (n > 0 && (p->f_name[n - 1] == ' ' || p->f_name[n - 1] == '\t'))
				n--;
			p->l_colon = true;
			field_open(p, n);
			p->f_lead = true;
		} else if (p->f_namelen < NAME_KEPT) {
			p->f_name[p->f_namelen++] = (char)c;
		} else {
			p->f_name_long = true;
		}
	} else if (p->f_keep) {
		if (p->f_lead) {
			if (c == ' ' || c == '\t') {
				field_value_addc(p, (char)c);
				return;
			}
			/* the blanks after the colon are not value */
			p->f_lead = false;
			p->f_trunc = false;
			mime__str_truncate(&p->f_value, 0);
		}
		field_value_addc(p, (char)c);
	}
}

static void header_blank_line(struct mime_parser *p);
static void finish_header(struct mime_parser *p, size_t moved_nl);

/* The first byte of a header line is c (and it is not a boundary). */
static void hdr_start_line(struct mime_parser *p, unsigned char c)
{
	/* RFC 5322 2.2.3: a line starting with WSP continues the field */
	p->l_cont = (c == ' ' || c == '\t') && p->hdr_any;
	if (p->l_cont) {
		if (p->f_keep)
			field_value_addc(p, '\n');
	} else {
		field_finish(p);
		p->f_namelen = 0;
		p->f_name_long = false;
	}
	p->l_colon = false;
	p->l_cr = false;
	p->l_len = 0;
	p->st = PS_HDR_LINE;
}

/* The header line ends, with a LF or (has_nl false) at the end of input. */
static void hdr_end_line(struct mime_parser *p, bool has_nl)
{
	struct mime_part *part = p->part;
	size_t nl = 0;

	if (has_nl) {
		nl = p->l_cr ? 2 : 1;
	} else if (p->l_cr) {
		hdr_content(p, '\r');
	}
	p->l_cr = false;
	part->header.physical += p->l_len + nl;
	part->header.virtual_size += p->l_len + (has_nl ? 2 : 0);
	if (has_nl && part->header.lines < UINT32_MAX)
		part->header.lines++;

	if (!p->l_cont && p->l_len == 0 && has_nl) {
		p->prev_nl = nl;
		header_blank_line(p);
		return;
	}
	if (!p->l_cont && !p->l_colon) {
		/* no colon: the whole line is the name, the value empty */
		field_open(p, p->f_namelen);
		p->f_lead = false;
	} else if (!p->l_cont && p->f_lead && p->f_keep && p->f_value.len > 0) {
		/* a value of blanks only loses just the first one */
		memmove(p->f_value.data, p->f_value.data + 1, p->f_value.len);
		p->f_value.len--;
	}
	p->f_lead = false;
	p->hdr_any = true;
	p->prev_nl = nl;
	p->st = PS_HDR_START;
}

/* The header is over. moved_nl is the size of the newline ending its last
 * line when that newline turned out to precede a boundary: RFC 2046 5.1.1
 * makes the CRLF before a boundary part of the boundary, so it moves to
 * the enclosing body. */
static void finish_header(struct mime_parser *p, size_t moved_nl)
{
	struct mime_part *part = p->part;

	field_finish(p);
	if (moved_nl > 0 && part->parent != NULL) {
		part->header.lines--;
		part->header.physical -= moved_nl;
		part->header.virtual_size -= 2;
		part->parent->body.lines++;
		part->parent->body.physical += moved_nl;
		part->parent->body.virtual_size += 2;
	}
	if (!(part->flags & MIME_PART_IS_MIME)) {
		part->flags &= ~(uint32_t)(MIME_PART_MULTIPART | MIME_PART_RFC822 |
					  MIME_PART_TEXT | MIME_PART_DIGEST);
		mime__hdr_forget_content(part);
	}
	if (!p->hs.seen_ct || !(part->flags & MIME_PART_IS_MIME)) {
		/* RFC 2046 5.1.5: inside multipart/digest the default is
		 * message/rfc822; elsewhere RFC 2045 5.2 text/plain */
		if (part->parent != NULL && (part->parent->flags & MIME_PART_DIGEST))
			part->flags |= MIME_PART_RFC822;
		else
			part->flags |= MIME_PART_TEXT;
	}
	p->last_chr = '\n';

	if (p->nbounds > 0 && p->bounds[p->nbounds - 1].part == part) {
		/* its own boundary was pushed at the blank line */
		set_body_state(p);
		return;
	}
	if (part->flags & MIME_PART_RFC822) {
		if (p->depth + 1 < MIME_MAX_DEPTH && p->tree->nparts < MIME_MAX_PARTS) {
			/* RFC 2046 5.2.1: the body is a message of its own */
			new_child(p, false);
			return;
		}
		overflow(p, part, MIME_PART_RFC822);
	}
	set_body_state(p);
}

/* The blank line ending the header was read. A multipart's boundary
 * becomes active now, before the first body line is looked at, so that a
 * boundary that is a prefix of an enclosing one is told apart from it. */
static void header_blank_line(struct mime_parser *p)
{
	struct mime_part *part = p->part;

	field_finish(p);
	if (p->hs.have_boundary &&
	    (part->flags & (MIME_PART_IS_MIME | MIME_PART_MULTIPART)) ==
	    (MIME_PART_IS_MIME | MIME_PART_MULTIPART)) {
		if (p->depth + 1 >= MIME_MAX_DEPTH || p->nbounds >= MIME_MAX_DEPTH) {
			overflow(p, part, MIME_PART_MULTIPART);
		} else {
			if (p->bounds == NULL)
				p->bounds = xcalloc(MIME_MAX_DEPTH, sizeof(*p->bounds));
			struct bound *b = &p->bounds[p->nbounds++];
			b->part = part;
			b->len = p->hs.boundary_len;
			memcpy(b->s, p->hs.boundary, b->len);
		}
	}
	if (p->nbounds == 0) {
		finish_header(p, 0);
		return;
	}
	/* Whether the blank line's newline belongs to the header depends on
	 * the next line: if it is an enclosing part's boundary, the newline
	 * is that boundary's (as Dovecot counts it). */
	p->st = PS_HDR_EOH;
}

/* ---- boundaries ---- */

/* Decide whether the line in peek is a boundary line (RFC 2046 5.1.1):
 * "--" and a boundary of an enclosing multipart as a prefix, the innermost
 * and then the longest winning; "--" right after it closes the multipart. */
static enum peek_result peek_decide(struct mime_parser *p, size_t *bi_r, bool *close_r)
{
	if (p->nbounds == 0)
		return PEEK_NOT;
	if (p->npeek >= 1 && p->peek[0] != '-')
		return PEEK_NOT;
	if (p->npeek >= 2 && p->peek[1] != '-')
		return PEEK_NOT;
	const unsigned char *lf = memchr(p->peek, '\n', p->npeek);
	if (lf == NULL && p->npeek < PEEK_MAX && !p->eof)
		return PEEK_MORE;
	if (p->npeek < 2)
		return PEEK_NOT;

	const unsigned char *d = p->peek + 2;
	size_t size = p->npeek - 2, find = size;
	bool exact = p->eof;
	if (lf != NULL) {
		find = (size_t)(lf - d);
		if (find > 0 && d[find - 1] == '\r')
			find--;
		exact = true;
	}
	/* "--foo--" may close "foo" or open "foo--": a boundary that is
	 * the whole line, or the whole line but a closing "--", is taken at
	 * once even if an outer, longer one would also match */
	bool dashes = find >= 2 && d[find - 2] == '-' && d[find - 1] == '-';
	size_t best = SIZE_MAX;
	for (size_t i = p->nbounds; i-- > 0;) {
		const struct bound *b = &p->bounds[i];
		if (b->len > find || memcmp(b->s, d, b->len) != 0)
			continue;
		if (best != SIZE_MAX && p->bounds[best].len >= b->len)
			continue;
		best = i;
		if (exact && (b->len == find || (dashes && b->len + 2 == find)))
			break;
	}
	if (best == SIZE_MAX)
		return PEEK_NOT;
	size_t len = p->bounds[best].len;
	*bi_r = best;
	*close_r = size >= len + 2 && d[len] == '-' && d[len + 1] == '-';
	return PEEK_BOUNDARY;
}

/* The line in peek is boundary bi: close the parts inside its multipart
 * and start skipping the rest of the line. */
static void take_boundary(struct mime_parser *p, size_t bi, bool close)
{
	struct bound b = p->bounds[bi];

	while (p->part != b.part)
		finish_part(p);
	/* a closing boundary ends its multipart; any boundary forgets the
	 * ones nested inside it (their multiparts were never closed) */
	p->nbounds = close ? bi : bi + 1;
	size_t prefix = 2 + b.len + (close ? 2 : 0);
	commit_nl(p, p->part);
	body_add(p, p->part, p->peek, prefix);
	p->replay = p->peek + prefix;
	p->nreplay = p->npeek - prefix;
	p->npeek = 0;
	p->st = PS_SKIP_LINE;
}

static void after_boundary_line(struct mime_parser *p)
{
	if (p->nbounds > 0 && p->bounds[p->nbounds - 1].part == p->part) {
		if (p->tree->nparts >= MIME_MAX_PARTS) {
			/* the rest of the message stays in this body */
			overflow(p, p->part, 0);
			p->nbounds = 0;
			set_body_state(p);
			return;
		}
		new_child(p, true);
		return;
	}
	/* epilogue (RFC 2046 5.1.1): belongs to the multipart */
	set_body_state(p);
}

/* ---- the states ---- */

static bool step_line_start(struct mime_parser *p, const unsigned char *src, size_t n,
			    size_t *used_r)
{
	bool hdr = p->st == PS_HDR_START, eoh = p->st == PS_HDR_EOH;
	size_t used = 0, bi = 0;
	bool close = false;
	enum peek_result r;

	if (hdr && p->npeek == 0 && p->nbounds == 0) {
		/* nothing can cut this header short: no need to peek */
		*used_r = 0;
		if (n > 0) {
			hdr_start_line(p, src[0]);
			return true;
		}
		if (p->eof) {
			finish_header(p, 0);
			return true;
		}
		return false;
	}
	r = peek_decide(p, &bi, &close);
	while (r == PEEK_MORE && used < n) {
		p->peek[p->npeek++] = src[used++];
		r = peek_decide(p, &bi, &close);
	}
	*used_r = used;
	if (r == PEEK_MORE)
		return used > 0;

	if (eoh) {
		/* peek is kept: the body sees the same line again */
		if (r == PEEK_BOUNDARY && p->bounds[bi].part != p->part)
			finish_header(p, p->prev_nl);
		else
			finish_header(p, 0);
		return true;
	}
	if (hdr) {
		if (r == PEEK_BOUNDARY && p->bounds[bi].part != p->part) {
			/* a boundary cuts the header short; keep peek: the
			 * body state sees the same line */
			finish_header(p, p->prev_nl);
			return true;
		}
		if (p->npeek == 0) {
			/* end of input right at a line start */
			finish_header(p, 0);
			return true;
		}
		hdr_start_line(p, p->peek[0]);
	} else if (r == PEEK_BOUNDARY) {
		take_boundary(p, bi, close);
		return true;
	} else {
		commit_nl(p, p->part);
		p->st = PS_BODY_MID;
		p->held_cr = false;
	}
	p->replay = p->peek;
	p->nreplay = p->npeek;
	p->npeek = 0;
	return true;
}

static bool step_hdr_line(struct mime_parser *p, const unsigned char *src, size_t n,
			  size_t *used_r)
{
	size_t i = 0;

	while (i < n) {
		if ((p->l_colon || p->l_cont) && !p->f_keep) {
			/* a value nobody keeps: just count it */
			const unsigned char *lf = memchr(src + i, '\n', n - i);
			size_t end = lf != NULL ? (size_t)(lf - src) : n;
			if (end > i) {
				if (p->l_cr)
					p->l_len++;
				p->l_cr = src[end - 1] == '\r';
				p->l_len += end - i - (p->l_cr ? 1 : 0);
			}
			i = end;
			if (lf == NULL)
				break;
			i++;
			hdr_end_line(p, true);
			*used_r = i;
			return true;
		}
		unsigned char c = src[i++];
		if (c == '\n') {
			hdr_end_line(p, true);
			*used_r = i;
			return true;
		}
		if (p->l_cr) {
			p->l_cr = false;
			hdr_content(p, '\r');
		}
		if (c == '\r')
			p->l_cr = true;
		else
			hdr_content(p, c);
	}
	*used_r = i;
	if (i > 0)
		return true;
	if (p->eof) {
		hdr_end_line(p, false);
		finish_header(p, 0);
		return true;
	}
	return false;
}

static bool step_body_mid(struct mime_parser *p, const unsigned char *src, size_t n,
			  size_t *used_r)
{
	*used_r = 0;
	if (n == 0) {
		if (p->eof && p->held_cr) {
			p->held_cr = false;
			body_add(p, p->part, (const unsigned char *)"\r", 1);
			return true;
		}
		return false;
	}
	if (p->held_cr) {
		p->held_cr = false;
		if (src[0] == '\n') {
			p->nl[0] = '\r';
			p->nl[1] = '\n';
			p->nnl = 2;
			p->st = PS_BODY_START;
			*used_r = 1;
			return true;
		}
		body_add(p, p->part, (const unsigned char *)"\r", 1);
	}
	const unsigned char *lf = memchr(src, '\n', n);
	if (lf == NULL) {
		size_t k = n;
		if (src[n - 1] == '\r') {
			k--;
			p->held_cr = true;
		}
		body_add(p, p->part, src, k);
		*used_r = n;
		return true;
	}
	size_t k = (size_t)(lf - src);
	if (k > 0 && src[k - 1] == '\r') {
		body_add(p, p->part, src, k - 1);
		p->nl[0] = '\r';
		p->nl[1] = '\n';
		p->nnl = 2;
	} else {
		body_add(p, p->part, src, k);
		p->nl[0] = '\n';
		p->nnl = 1;
	}
	p->st = PS_BODY_START;
	*used_r = k + 1;
	return true;
}

static bool step_body_start(struct mime_parser *p, const unsigned char *src, size_t n,
			    size_t *used_r)
{
	if (n == 0 && p->npeek == 0) {
		*used_r = 0;
		if (p->eof && p->nnl > 0) {
			commit_nl(p, p->part);
			return true;
		}
		return false;
	}
	return step_line_start(p, src, n, used_r);
}

static bool step_skip_line(struct mime_parser *p, const unsigned char *src, size_t n,
			   size_t *used_r)
{
	*used_r = 0;
	if (n == 0)
		return false;
	const unsigned char *lf = memchr(src, '\n', n);
	size_t k = lf != NULL ? (size_t)(lf - src) + 1 : n;

	body_add(p, p->part, src, k);
	*used_r = k;
	if (lf != NULL) {
		after_boundary_line(p);
		return true;
	}
	return k > 0;
}

static bool step(struct mime_parser *p, const unsigned char *src, size_t n, size_t *used_r)
{
	switch (p->st) {
	case PS_HDR_START:
	case PS_HDR_EOH:
		return step_line_start(p, src, n, used_r);
	case PS_HDR_LINE:
		return step_hdr_line(p, src, n, used_r);
	case PS_BODY_START:
		return step_body_start(p, src, n, used_r);
	case PS_BODY_MID:
		return step_body_mid(p, src, n, used_r);
	case PS_BODY_RAW:
		body_add(p, p->part, src, n);
		*used_r = n;
		return n > 0;
	case PS_SKIP_LINE:
		return step_skip_line(p, src, n, used_r);
	}
	*used_r = 0;
	return false;
}

static void run(struct mime_parser *p, const unsigned char *data, size_t len)
{
	for (;;) {
		bool replaying = p->nreplay > 0;
		const unsigned char *src = replaying ? p->replay : data;
		size_t n = replaying ? p->nreplay : len;
		size_t used = 0;

		if (!step(p, src, n, &used))
			return;
		if (used == 0)
			continue;
		if (replaying) {
			p->replay += used;
			p->nreplay -= used;
		} else {
			data += used;
			len -= used;
		}
	}
}

struct mime_parser *mime_parser_new(const struct mime_parse_hooks *hooks)
{
	struct mime_parser *p = xcalloc(1, sizeof(*p));

	if (hooks != NULL)
		p->hooks = *hooks;
	p->tree = mime_tree_new();
	p->part = p->tree->root;
	start_header(p);
	return p;
}

void mime_parser_feed(struct mime_parser *p, const void *data, size_t len)
{
	if (len > 0)
		run(p, data, len);
}

void mime_parser_free(struct mime_parser **pp)
{
	struct mime_parser *p = *pp;

	if (p == NULL)
		return;
	*pp = NULL;
	mime_tree_free(&p->tree);
	mime__str_free(&p->f_value);
	free(p->bounds);
	free(p);
}

struct mime_tree *mime_parser_finish(struct mime_parser **pp)
{
	struct mime_parser *p = *pp;

	p->eof = true;
	run(p, NULL, 0);
	while (p->part->parent != NULL)
		finish_part(p);
	struct mime_tree *t = p->tree;
	p->tree = NULL;
	mime_parser_free(pp);
	return t;
}

struct mime_tree *mime_parse(const void *data, size_t len)
{
	struct mime_parser *p = mime_parser_new(NULL);

	mime_parser_feed(p, data, len);
	return mime_parser_finish(&p);
}
