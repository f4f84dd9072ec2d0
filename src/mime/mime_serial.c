/*
 * Serialized parse trees (layout in mime_serial.h). The reader treats its
 * input as hostile: the bytes come from a database file that may be
 * corrupt or from an older version, and a bad cache entry must cost a
 * reparse, never a crash. So every length is checked against what is left
 * before anything is allocated, and the structural rules the renderers rely
 * on (depth, part count, nesting of byte ranges, one child per
 * message/rfc822) are verified, not assumed.
 */

#include "mime/mime_serial.h"

#include <stdbool.h>
#include <string.h>

#define MAGIC "PBMT"

enum {
	HAS_TYPE = 1u << 0,
	HAS_ENCODING = 1u << 1,
	HAS_ID = 1u << 2,
	HAS_DESCRIPTION = 1u << 3,
	HAS_MD5 = 1u << 4,
	HAS_LOCATION = 1u << 5,
	HAS_DISPOSITION = 1u << 6,
	HAS_ENVELOPE = 1u << 7,
	HAS_ALL = (1u << 8) - 1,
};

enum {
	ENV_DATE = 1u << 0,
	ENV_SUBJECT = 1u << 1,
	ENV_IN_REPLY_TO = 1u << 2,
	ENV_MESSAGE_ID = 1u << 3,
	ENV_ALL = (1u << 4) - 1,
};

static const uint32_t known_part_flags =
	MIME_PART_MULTIPART | MIME_PART_RFC822 | MIME_PART_TEXT | MIME_PART_IS_MIME |
	MIME_PART_DIGEST | MIME_PART_OVERFLOW | MIME_PART_TRUNCATED;

static uint32_t fnv1a(const unsigned char *p, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 16777619u;
	}
	return h;
}

/* ---- writer ---- */

static int put_varint(struct buf *b, uint64_t v)
{
	unsigned char tmp[10];
	size_t n = 0;

	do {
		tmp[n] = (unsigned char)(v & 0x7f);
		v >>= 7;
		if (v != 0)
			tmp[n] |= 0x80;
		n++;
	} while (v != 0);
	return buf_append(b, tmp, n);
}

static int put_str(struct buf *b, const char *s)
{
	size_t n = strlen(s);
	return put_varint(b, n) | buf_append(b, s, n);
}

static int put_size(struct buf *b, const struct mime_size *s)
{
	return put_varint(b, s->physical) | put_varint(b, s->virtual_size) | put_varint(b, s->lines);
}

static int put_params(struct buf *b, const struct mime_param *p, uint32_t n)
{
	int rc = put_varint(b, n);
	for (uint32_t i = 0; i < n; i++)
		rc |= put_str(b, p[i].name) | put_str(b, p[i].value);
	return rc;
}

static int put_envelope(struct buf *b, const struct mime_envelope *e)
{
	unsigned int bits = (e->date ? ENV_DATE : 0) | (e->subject ? ENV_SUBJECT : 0) |
		(e->in_reply_to ? ENV_IN_REPLY_TO : 0) | (e->message_id ? ENV_MESSAGE_ID : 0);
	int rc = put_varint(b, bits);

	if (e->date)
		rc |= put_str(b, e->date);
	if (e->subject)
		rc |= put_str(b, e->subject);
	if (e->in_reply_to)
		rc |= put_str(b, e->in_reply_to);
	if (e->message_id)
		rc |= put_str(b, e->message_id);
	for (int f = 0; f < MIME_ADDR_COUNT; f++) {
		rc |= put_varint(b, e->naddr[f]);
		for (uint32_t i = 0; i < e->naddr[f]; i++) {
			const struct mime_address *a = &e->addr[f][i];
			unsigned int ab = (a->name ? 1 : 0) | (a->route ? 2 : 0) |
				(a->mailbox ? 4 : 0) | (a->domain ? 8 : 0);
			rc |= put_varint(b, ab);
			if (a->name)
				rc |= put_str(b, a->name);
			if (a->route)
				rc |= put_str(b, a->route);
			if (a->mailbox)
				rc |= put_str(b, a->mailbox);
			if (a->domain)
				rc |= put_str(b, a->domain);
		}
	}
	return rc;
}

static int put_part(struct buf *b, const struct mime_part *p)
{
	unsigned int has = (p->type ? HAS_TYPE : 0) | (p->encoding ? HAS_ENCODING : 0) |
		(p->id ? HAS_ID : 0) | (p->description ? HAS_DESCRIPTION : 0) |
		(p->md5 ? HAS_MD5 : 0) | (p->location ? HAS_LOCATION : 0) |
		(p->disposition ? HAS_DISPOSITION : 0) | (p->envelope ? HAS_ENVELOPE : 0);
	int rc = 0;

	rc |= put_varint(b, p->flags) | put_varint(b, p->nchildren) | put_varint(b, p->offset);
	rc |= put_size(b, &p->header) | put_size(b, &p->body);
	rc |= put_varint(b, has);
	if (p->type)
		rc |= put_str(b, p->type) | put_str(b, p->subtype);
	if (p->encoding)
		rc |= put_str(b, p->encoding);
	if (p->id)
		rc |= put_str(b, p->id);
	if (p->description)
		rc |= put_str(b, p->description);
	if (p->md5)
		rc |= put_str(b, p->md5);
	if (p->location)
		rc |= put_str(b, p->location);
	if (p->disposition)
		rc |= put_str(b, p->disposition);
	rc |= put_params(b, p->params, p->nparams);
	rc |= put_params(b, p->disp_params, p->ndisp_params);
	rc |= put_varint(b, p->nlanguages);
	for (uint32_t i = 0; i < p->nlanguages; i++)
		rc |= put_str(b, p->languages[i]);
	if (p->envelope)
		rc |= put_envelope(b, p->envelope);
	for (const struct mime_part *c = p->children; c != NULL; c = c->next)
		rc |= put_part(b, c);
	return rc;
}

int mime_tree_serialize(const struct mime_tree *t, struct buf *out)
{
	struct buf b;
	unsigned char sum[4];
	int rc = 0;

	buf_init(&b, buf_room(out));
	rc |= buf_append(&b, MAGIC, 4);
	unsigned char head[2] = { MIME_SERIAL_VERSION, (unsigned char)t->flags };
	rc |= buf_append(&b, head, 2);
	rc |= put_varint(&b, t->nparts);
	rc |= put_part(&b, t->root);
	uint32_t h = fnv1a((const unsigned char *)buf_ptr(&b), buf_len(&b));
	for (int i = 0; i < 4; i++)
		sum[i] = (unsigned char)(h >> (8 * i));
	rc |= buf_append(&b, sum, 4);
	if (rc == 0)
		rc = buf_append(out, buf_ptr(&b), buf_len(&b));
	buf_free(&b);
	return rc < 0 ? -1 : 0;
}

/* ---- reader ---- */

struct rd {
	const unsigned char *p;
	const unsigned char *end;
	struct mime_tree *t;
	uint32_t nparts;        /* announced */
	uint32_t seen;          /* read so far */
	const char *error;
};

static bool fail(struct rd *r, const char *msg)
{
	if (r->error == NULL)
		r->error = msg;
	return false;
}

static bool get_varint(struct rd *r, uint64_t *v)
{
	uint64_t x = 0;

	for (unsigned int shift = 0; shift < 64; shift += 7) {
		if (r->p >= r->end)
			return fail(r, "truncated");
		unsigned char c = *r->p++;
		if (shift == 63 && (c & 0x7e) != 0)
			return fail(r, "varint overflow");
		x |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			*v = x;
			return true;
		}
	}
	return fail(r, "varint too long");
}

static bool get_u32(struct rd *r, uint32_t *v, uint32_t max)
{
	uint64_t x;

	if (!get_varint(r, &x))
		return false;
	if (x > max)
		return fail(r, "value out of range");
	*v = (uint32_t)x;
	return true;
}

static bool get_str(struct rd *r, const char **s)
{
	uint64_t n;

	if (!get_varint(r, &n))
		return false;
	if (n > (uint64_t)(r->end - r->p))
		return fail(r, "string past the end");
	if (memchr(r->p, '\0', (size_t)n) != NULL)
		return fail(r, "NUL in string");
	*s = mime_tree_strdup(r->t, r->p, (size_t)n);
	if (*s == NULL)
		return fail(r, "strings exceed the limit");
	r->p += n;
	return true;
}

/* A count of items that each take at least min bytes. */
static bool get_count(struct rd *r, uint32_t *n, size_t min)
{
	if (!get_u32(r, n, UINT32_MAX))
		return false;
	if ((uint64_t)*n * min > (uint64_t)(r->end - r->p))
		return fail(r, "count past the end");
	return true;
}

static bool get_size(struct rd *r, struct mime_size *s)
{
	uint64_t phys, virt;
	uint32_t lines;

	if (!get_varint(r, &phys) || !get_varint(r, &virt) || !get_u32(r, &lines, UINT32_MAX))
		return false;
	/* a bare LF adds one virtual byte; nothing else does */
	if (phys > UINT64_MAX / 4 || virt < phys || virt - phys > lines)
		return fail(r, "inconsistent sizes");
	s->physical = phys;
	s->virtual_size = virt;
	s->lines = lines;
	return true;
}

static bool get_params(struct rd *r, struct mime_param **out, uint32_t *count)
{
	uint32_t n;

	if (!get_count(r, &n, 2))
		return false;
	*count = n;
	*out = NULL;
	if (n == 0)
		return true;
	*out = mime_tree_alloc(r->t, n * sizeof(**out));
	for (uint32_t i = 0; i < n; i++) {
		if (!get_str(r, &(*out)[i].name) || !get_str(r, &(*out)[i].value))
			return false;
	}
	return true;
}

static bool get_envelope(struct rd *r, struct mime_envelope *e)
{
	uint32_t bits;

	if (!get_u32(r, &bits, ENV_ALL))
		return false;
	if ((bits & ENV_DATE) && !get_str(r, &e->date))
		return false;
	if ((bits & ENV_SUBJECT) && !get_str(r, &e->subject))
		return false;
	if ((bits & ENV_IN_REPLY_TO) && !get_str(r, &e->in_reply_to))
		return false;
	if ((bits & ENV_MESSAGE_ID) && !get_str(r, &e->message_id))
		return false;
	for (int f = 0; f < MIME_ADDR_COUNT; f++) {
		uint32_t n;
		if (!get_count(r, &n, 1))
			return false;
		if (n > MIME_MAX_ADDRESSES)
			return fail(r, "too many addresses");
		e->naddr[f] = n;
		if (n == 0)
			continue;
		e->addr[f] = mime_tree_alloc(r->t, n * sizeof(*e->addr[f]));
		for (uint32_t i = 0; i < n; i++) {
			struct mime_address *a = &e->addr[f][i];
			uint32_t ab;
			if (!get_u32(r, &ab, 15))
				return false;
			if ((ab & 1) && !get_str(r, &a->name))
				return false;
			if ((ab & 2) && !get_str(r, &a->route))
				return false;
			if ((ab & 4) && !get_str(r, &a->mailbox))
				return false;
			if ((ab & 8) && !get_str(r, &a->domain))
				return false;
		}
	}
	return true;
}

static bool get_part(struct rd *r, struct mime_part *p, unsigned int depth)
{
	uint32_t nchildren, has;
	uint64_t offset;

	if (depth >= MIME_MAX_DEPTH)
		return fail(r, "too deep");
	if (++r->seen > r->nparts)
		return fail(r, "more parts than announced");
	if (!get_u32(r, &p->flags, known_part_flags) || !get_u32(r, &nchildren, MIME_MAX_PARTS) ||
	    !get_varint(r, &offset) || !get_size(r, &p->header) || !get_size(r, &p->body) ||
	    !get_u32(r, &has, HAS_ALL))
		return false;
	p->offset = offset;
	if ((p->flags & MIME_PART_MULTIPART) && (p->flags & MIME_PART_RFC822))
		return fail(r, "multipart and message/rfc822 at once");
	if ((p->flags & MIME_PART_RFC822) ? nchildren != 1
	    : (!(p->flags & MIME_PART_MULTIPART) && nchildren != 0))
		return fail(r, "wrong number of children");
	if (p->offset > UINT64_MAX / 4 || p->header.physical > UINT64_MAX / 4 - p->offset ||
	    p->body.physical > UINT64_MAX / 4 - p->offset - p->header.physical)
		return fail(r, "offsets out of range");

	if ((has & HAS_TYPE) && (!get_str(r, &p->type) || !get_str(r, &p->subtype)))
		return false;
	if ((has & HAS_ENCODING) && !get_str(r, &p->encoding))
		return false;
	if ((has & HAS_ID) && !get_str(r, &p->id))
		return false;
	if ((has & HAS_DESCRIPTION) && !get_str(r, &p->description))
		return false;
	if ((has & HAS_MD5) && !get_str(r, &p->md5))
		return false;
	if ((has & HAS_LOCATION) && !get_str(r, &p->location))
		return false;
	if ((has & HAS_DISPOSITION) && !get_str(r, &p->disposition))
		return false;
	if (!get_params(r, &p->params, &p->nparams) ||
	    !get_params(r, &p->disp_params, &p->ndisp_params))
		return false;
	uint32_t nlang;
	if (!get_count(r, &nlang, 1))
		return false;
	if (nlang > 0) {
		p->languages = mime_tree_alloc(r->t, nlang * sizeof(*p->languages));
		p->nlanguages = nlang;
		for (uint32_t i = 0; i < nlang; i++) {
			if (!get_str(r, &p->languages[i]))
				return false;
		}
	}
	if (has & HAS_ENVELOPE) {
		p->envelope = mime_tree_alloc(r->t, sizeof(*p->envelope));
		if (!get_envelope(r, p->envelope))
			return false;
	}

	/* children: in order, inside this part's body, not overlapping */
	uint64_t cursor = mime_part_body_offset(p), end = mime_part_end_offset(p);
	for (uint32_t i = 0; i < nchildren; i++) {
		if (r->seen >= r->nparts)
			return fail(r, "more parts than announced");
		struct mime_part *c = mime_tree_add_child(r->t, p);
		if (!get_part(r, c, depth + 1))
			return false;
		if (c->offset < cursor || mime_part_end_offset(c) > end)
			return fail(r, "part outside its parent");
		cursor = mime_part_end_offset(c);
	}
	return true;
}

struct mime_tree *mime_tree_deserialize(const void *data, size_t len, const char **error_r)
{
	const unsigned char *d = data;
	struct rd r;

	*error_r = NULL;
	if (len < 4 + 2 + 1 + 4 || memcmp(d, MAGIC, 4) != 0) {
		*error_r = "not a serialized MIME tree";
		return NULL;
	}
	if (d[4] != MIME_SERIAL_VERSION) {
		*error_r = "unsupported version";
		return NULL;
	}
	uint32_t want = (uint32_t)d[len - 4] | (uint32_t)d[len - 3] << 8 |
		(uint32_t)d[len - 2] << 16 | (uint32_t)d[len - 1] << 24;
	if (fnv1a(d, len - 4) != want) {
		*error_r = "checksum mismatch";
		return NULL;
	}
	if (d[5] & ~(MIME_TREE_TRUNCATED | MIME_TREE_OVERFLOW)) {
		*error_r = "unknown tree flags";
		return NULL;
	}

	memset(&r, 0, sizeof(r));
	r.p = d + 6;
	r.end = d + len - 4;
	r.t = mime_tree_new();
	r.t->flags = d[5];
	if (get_u32(&r, &r.nparts, MIME_MAX_PARTS) && r.nparts >= 1 &&
	    get_part(&r, r.t->root, 0)) {
		if (r.t->root->offset != 0)
			fail(&r, "root not at offset 0");
		else if (r.seen != r.nparts)
			fail(&r, "fewer parts than announced");
		else if (r.p != r.end)
			fail(&r, "trailing bytes");
	} else if (r.error == NULL) {
		fail(&r, "no parts");
	}
	if (r.error != NULL) {
		*error_r = r.error;
		mime_tree_free(&r.t);
		return NULL;
	}
	return r.t;
}
